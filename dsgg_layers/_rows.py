"""The valid rows of a padded grid (private: the blocks use it, users pass grids and masks).

A pair-track batch ``(..., L, D)`` with a bool mask ``(..., L)`` is mostly padding when videos
differ in length or in pairs a frame (a third to a half of the cells of a typical batch). The
row-wise work of a transformer layer (projections, feed-forward network, norms) does not mix
rows, so it can run on the valid rows alone: :class:`ValidRows` gathers them into ``(N, D)``
and scatters results back into a zero grid. Attention, which does mix rows, still runs on the
grid. Padding then costs memory traffic, not matrix products.

Both directions are one ``index_select`` / ``index_copy`` with the flat positions of the valid
entries (row-major order of the mask), computed once per mask; both are differentiable.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def _is_compiling() -> bool:
    """``torch.compiler.is_compiling()`` (torch >= 2.3), or dynamo's own flag on torch 2.2."""
    is_compiling = getattr(getattr(torch, "compiler", None), "is_compiling", None)
    if is_compiling is None:  # pragma: no cover - torch 2.2
        return bool(torch._dynamo.is_compiling())
    return bool(is_compiling())


def use_valid_rows(enabled: bool, mask: Tensor | None, shape: torch.Size) -> bool:
    """Whether a block should run its row-wise work on the valid rows of ``mask``.

    Only with a mask of exactly the grid's leading shape, and never while ``torch.compile``
    traces: the number of valid rows is data-dependent, which a full graph cannot hold, so the
    compiled graph computes on the padded grid (the outputs are the same).
    """
    return (
        enabled and mask is not None and tuple(mask.shape) == tuple(shape) and not _is_compiling()
    )


class ValidRows:
    """The ``True`` entries of a bool grid ``mask (..., L)``, in row-major order.

    Args:
        mask: ``True`` where a row is valid.

    Shape:
        - mask: ``(..., L)``
        - :meth:`gather`: ``(..., L, C)`` (or broadcastable to it) -> ``(N, C)``
        - :meth:`scatter`: ``(N, C)`` -> ``(..., L, C)``, zeros at the padded rows
    """

    def __init__(self, mask: Tensor) -> None:
        self.mask = mask
        self.shape = tuple(mask.shape)
        self.index = mask.reshape(-1).nonzero().squeeze(-1)

    def __len__(self) -> int:
        return self.index.numel()

    def gather(self, x: Tensor) -> Tensor:
        """The valid rows of ``x``; ``x`` may broadcast over the leading dims (positions)."""
        C = x.shape[-1]
        if x.shape[:-1] != self.shape:
            L = self.shape[-1] if self.shape else 1
            if x.dim() >= 2 and x.shape[-2] == L and math.prod(x.shape[:-2]) == 1:
                # (L, C) broadcast over the leading dims: row i sits at position i mod L.
                return x.reshape(L, C).index_select(0, self.index % max(L, 1))
            x = x.expand(*self.shape, C)
        return x.reshape(-1, C).index_select(0, self.index)

    def scatter(self, rows: Tensor) -> Tensor:
        """The grid ``(..., L, C)`` holding ``rows`` at the valid entries and 0 elsewhere."""
        C = rows.shape[-1]
        grid = rows.new_zeros(math.prod(self.shape), C)
        return grid.index_copy_(0, self.index, rows).view(*self.shape, C)
