"""Masked pooling over one axis of a pair-track grid: mean, max or the first valid entry.

Pool the pairs of each frame into a frame feature (``dim=-1`` on a ``(B, T, P)`` mask), the
frames of each track into a track feature (``dim=-2``), or read a context token back (``"first"``).
Padding never enters: padded entries are replaced before any arithmetic (whatever they hold,
NaN included), a group with no valid entry pools to exactly 0, and padded entries get exactly 0
gradient.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from dsgg_layers._checks import check_choice, check_int, check_tensor
from dsgg_layers.rows import MaskOrRows, split_mask

__all__ = ["MaskedPooling", "masked_pool"]

PoolMode = Literal["mean", "max", "first"]


def masked_pool(x: Tensor, mask: MaskOrRows, *, dim: int = -1, mode: PoolMode = "mean") -> Tensor:
    """Pool ``x`` over the valid entries of the mask axis ``dim``.

    Args:
        x: the grid.
        mask: ``True`` where an entry is valid (or its [`ValidRows`][dsgg_layers.rows.ValidRows]:
            the pooling reads the mask only).
        dim: the mask axis to pool over.
        mode: ``"mean"``, ``"max"`` (per channel) or ``"first"`` (the first valid entry along the
            axis, e.g. a token put in front by
            [`prepend_tokens`][dsgg_layers.tokens.prepend_tokens]).

    Returns:
        ``x`` without the axis ``dim``; exactly 0 for groups without a valid entry.

    Shape:
        - x: ``(..., N, D)``; mask: ``x.shape[:-1]``
        - output: ``x.shape`` without the mask axis ``dim``

    Raises:
        TypeError: ``x`` is not floating point or ``mask`` not bool.
        ValueError: shapes disagree, ``dim`` is not an axis of the mask, or ``mode`` unknown.

    Examples:
        >>> x = torch.tensor([[[1.0], [3.0], [100.0]], [[5.0], [7.0], [9.0]]])   # (T=2, P=3, 1)
        >>> mask = torch.tensor([[True, True, False], [False, False, False]])
        >>> masked_pool(x, mask, mode="mean").flatten().tolist()   # pairs of each frame
        [2.0, 0.0]
        >>> masked_pool(x, mask, mode="max").flatten().tolist()
        [3.0, 0.0]
    """
    check_choice(mode, "mode", ("mean", "max", "first"))
    mask, _ = split_mask(mask, stacklevel=3)
    dims: dict[str, tuple[int, str]] = {}
    check_tensor(x, "x", ("...", "D"), dims=dims, dtype="float")
    check_tensor(mask, "mask", tuple(x.shape[:-1]), dims=dims, dtype="bool")
    check_int(dim, "dim")
    nd = mask.dim()
    if not -nd <= dim < nd:
        raise ValueError(f"dim: expected an axis of the mask (-{nd}..{nd - 1}), got {dim}")
    axis = dim % nd
    if x.shape[axis] == 0:  # no entries at all: every group is empty (zeros, in the graph)
        return x.sum(axis)
    m = mask.unsqueeze(-1)
    any_valid = mask.any(axis).unsqueeze(-1)
    if mode == "mean":  # sum and count in at least float32: half precision overflows at 65504
        acc = torch.promote_types(x.dtype, torch.float32)
        total = x.masked_fill(~m, 0.0).sum(axis, dtype=acc)
        count = mask.sum(axis).unsqueeze(-1).clamp(min=1).to(acc)
        return (total / count).to(x.dtype)
    if mode == "max":
        best = x.masked_fill(~m, float("-inf")).amax(axis)
        return best.masked_fill(~any_valid, 0.0)
    # first: the first valid entry along the axis (index 0 when there is none, then zeroed)
    first = mask.to(torch.uint8).argmax(axis, keepdim=True).unsqueeze(-1)  # (..., 1, ..., 1)
    index = first.expand(*first.shape[:-1], x.shape[-1])
    picked = x.masked_fill(~m, 0.0).gather(axis, index).squeeze(axis)
    return picked.masked_fill(~any_valid, 0.0)


class MaskedPooling(nn.Module):
    """[`masked_pool`][] as a module (no parameters).

    Args:
        dim: the mask axis to pool over.
        mode: ``"mean"``, ``"max"`` or ``"first"``.

    Shape:
        As [`masked_pool`][].

    Raises:
        ValueError: ``mode`` is unknown; as [`masked_pool`][].

    Examples:
        >>> pool = MaskedPooling(dim=-2, mode="mean")          # the frames of each pair track
        >>> pool(torch.randn(2, 5, 3, 8), torch.rand(2, 5, 3) > 0.5).shape
        torch.Size([2, 3, 8])
    """

    def __init__(self, dim: int = -1, mode: PoolMode = "mean") -> None:
        super().__init__()
        check_choice(mode, "mode", ("mean", "max", "first"))
        self.dim, self.mode = dim, mode

    def reset_parameters(self) -> None:
        """Nothing to reset (no parameters); present for the library's module contract."""

    def extra_repr(self) -> str:
        return f"dim={self.dim}, mode={self.mode!r}"

    def forward(self, x: Tensor, mask: MaskOrRows) -> Tensor:
        """Pool ``x`` over the valid entries of the axis `dim`."""
        return masked_pool(x, mask, dim=self.dim, mode=self.mode)
