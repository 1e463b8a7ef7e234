"""Tensor and module helpers the blocks share (not part of the public API).

Written once here so that no module imports another module's private names: zeroing padded
rows, resetting a module's children, and reducing a masked per-sample loss.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

Reduction = Literal["mean", "sum", "none"]


def zero_padding(x: Tensor, mask: Tensor | None) -> Tensor:
    """``x`` with the rows where ``mask`` is False replaced by 0; ``mask`` covers the leading
    dims of ``x`` (``(..., N)`` for ``x (..., N, C)``, or fewer: ``(...)`` for ``(..., L, C)``)."""
    if mask is None:
        return x
    return x.masked_fill(~mask.view(*mask.shape, *([1] * (x.dim() - mask.dim()))), 0.0)


def reset_children(module: nn.Module) -> None:
    """Each child's own ``reset_parameters`` (an attention's Xavier init, PyTorch's defaults
    for linear maps and norms), descending only into children without one (``nn.Sequential``):
    a child's reset is never undone by resetting what is inside it."""
    for child in module.children():
        if hasattr(child, "reset_parameters"):
            child.reset_parameters()
        else:
            reset_children(child)


def mlp(
    d_in: int, hidden: int, out: int, *, depth: int = 2, last_bias: bool = True
) -> nn.Sequential:
    """``Linear -> ReLU -> (Linear -> ReLU) x (depth - 2) -> Linear``, the last without a bias
    when ``last_bias`` is false (the layers at indices 0, 2, 4, ... of the ``Sequential``)."""
    layers: list[nn.Module] = [nn.Linear(d_in, hidden), nn.ReLU()]
    for _ in range(depth - 2):
        layers += [nn.Linear(hidden, hidden), nn.ReLU()]
    layers.append(nn.Linear(hidden, out, bias=last_bias))
    return nn.Sequential(*layers)


def masked_reduce(loss: Tensor, mask: Tensor | None, reduction: Reduction) -> Tensor:
    """Reduce per-sample losses ``(...)`` (already 0 at masked samples); ``"mean"`` divides by
    the counted samples (0 when there are none, not 0 / 0)."""
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    if mask is None:
        return loss.mean() if loss.numel() else loss.sum()
    total = loss.sum(dtype=torch.promote_types(loss.dtype, torch.float32))  # no fp16 overflow
    return (total / mask.sum().clamp(min=1)).to(loss.dtype)


def content_mean(x: Tensor, ids: Tensor) -> Tensor:
    """The mean of ``x (..., T, D)`` over the tokens between the start token (position 0) and
    the end token (the highest id of each row of ``ids (..., T)``): a static text tower's
    pooling."""
    pos = torch.arange(ids.shape[-1], device=ids.device)
    content = (pos >= 1) & (pos < ids.argmax(-1, keepdim=True))
    count = content.sum(-1, keepdim=True).clamp(min=1)
    return (x * content[..., None]).sum(-2) / count


def pack_token_rows(rows: list[list[int]], context_length: int, unit: str) -> Tensor:
    """``(N, context_length)`` ids: each row ``[start, *tokens, end]``, 0 after it.

    Raises:
        ValueError: a row does not fit (names the text and its ``unit``: words, tokens).
    """
    out = torch.zeros(len(rows), context_length, dtype=torch.long)
    for i, row in enumerate(rows):
        if len(row) > context_length:
            raise ValueError(
                f"texts[{i}]: {len(row) - 2} {unit} do not fit context_length "
                f"{context_length} with the start and end tokens"
            )
        out[i, : len(row)] = torch.tensor(row, dtype=torch.long)
    return out
