"""The valid rows of a padded grid: built once per batch, passed down to every block.

A pair-track batch ``(..., L, D)`` with a bool mask ``(..., L)`` is mostly padding when videos
differ in length or in pairs a frame (a third to a half of the cells of a typical batch). The
row-wise work of a transformer layer (projections, feed-forward network, norms) does not mix
rows, so it can run on the valid rows alone: [`ValidRows`][] gathers them into ``(N, D)``
and scatters results back into a zero grid. Attention, which does mix rows, still runs on the
grid. Padding then costs memory traffic, not matrix products, and garbage at padded positions
never enters a matrix product.

Both directions are one ``index_select`` / ``index_copy`` with the flat positions of the valid
entries (row-major order of the mask); both are differentiable.

**Build it once.** Finding the valid entries (``nonzero``) has a data-dependent size: on a GPU it
waits for the device (a host sync). Every block that takes a ``mask`` builds its own
[`ValidRows`][] when it is not given one; to pay once per batch, build it where the batch is
made (on the CPU, e.g. in a ``collate_fn``), move it with the batch ([`ValidRows.to`][]) and
pass it to the blocks **in place of the mask**: every block's ``mask`` argument takes a bool
tensor or a [`ValidRows`][] (which carries its mask). [`ValidRows.transpose`][] gives the rows of
the transposed grid (the temporal view ``(B, P, T)`` of a ``(B, T, P)`` batch) and
[`ValidRows.prepend`][] those of the grid with always-valid tokens in front (a context token
per frame), both without another sync.

The keywords ``rows=`` / ``query_rows=`` / ``key_rows=`` / ``memory_rows=`` of release 0.x still
work for one release and warn (a ``DeprecationWarning``).

Under ``torch.compile`` the blocks ignore ``rows`` and compute on the padded grid (a full graph
cannot hold a data-dependent size); the outputs are the same.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any, TypeAlias

import torch
from torch import Tensor

from dsgg_layers._checks import check_device, check_tensor, is_compiling

__all__ = ["MaskOrRows", "ValidRows", "rowwise", "split_mask"]


class ValidRows:
    """The ``True`` entries of a bool grid ``mask (..., L)``, in row-major order.

    Args:
        mask: ``True`` where a row is valid.

    Shape:
        - mask: ``(..., L)``
        - [`gather`][]: ``(..., L, C)`` (or broadcastable to it) -> ``(N, C)``,
          ``N = mask.sum()``
        - [`scatter`][]: ``(N, C)`` -> ``(..., L, C)``, zeros at the padded rows

    Raises:
        TypeError: ``mask`` is not a bool tensor.

    Examples:
        >>> mask = torch.tensor([[True, False, True], [False, False, True]])
        >>> rows = ValidRows(mask)
        >>> x = torch.arange(12.0).view(2, 3, 2)
        >>> len(rows), rows.gather(x).tolist()
        (3, [[0.0, 1.0], [4.0, 5.0], [10.0, 11.0]])
        >>> rows.scatter(rows.gather(x))[0, 1].tolist()   # padding comes back as 0
        [0.0, 0.0]
        >>> rows.transpose(0, 1).gather(x.transpose(0, 1)).tolist()  # the (L, B) view
        [[0.0, 1.0], [4.0, 5.0], [10.0, 11.0]]
    """

    __slots__ = ("index", "mask", "shape")

    def __init__(self, mask: Tensor) -> None:
        check_tensor(mask, "mask", ("...",), dtype="bool")
        self.mask = mask
        self.shape = tuple(mask.shape)
        self.index = mask.reshape(-1).nonzero().squeeze(-1)

    @classmethod
    def _from_index(cls, mask: Tensor, index: Tensor) -> ValidRows:
        rows = cls.__new__(cls)
        rows.mask, rows.shape, rows.index = mask, tuple(mask.shape), index
        return rows

    @classmethod
    def full(cls, shape: Sequence[int], device: torch.device | str | None = None) -> ValidRows:
        """The rows of an all-``True`` grid of ``shape`` (no ``nonzero``, no host sync)."""
        mask = torch.ones(tuple(shape), dtype=torch.bool, device=device)
        return cls._from_index(mask, torch.arange(mask.numel(), device=mask.device))

    def __len__(self) -> int:
        return self.index.numel()

    def __repr__(self) -> str:
        return f"ValidRows(shape={self.shape}, rows={len(self)}, device={self.mask.device})"

    @property
    def device(self) -> torch.device:
        return self.mask.device

    def to(self, device: torch.device | str, non_blocking: bool = False) -> ValidRows:
        """The same rows on ``device`` (no host sync: the row count is already known)."""
        return ValidRows._from_index(
            self.mask.to(device, non_blocking=non_blocking),
            self.index.to(device, non_blocking=non_blocking),
        )

    def matches(self, mask: Tensor) -> bool:
        """Whether these rows describe a grid of ``mask``'s shape on ``mask``'s device.

        Only shapes and devices are compared, never values (that would sync).
        """
        return self.shape == tuple(mask.shape) and self.mask.device == mask.device

    def transpose(self, dim0: int, dim1: int) -> ValidRows:
        """The rows of the grid ``mask.transpose(dim0, dim1)``, without a host sync.

        ``dim0`` and ``dim1`` index the mask's dims. Row ``i`` of the result is the valid entry
        at position ``i`` in the row-major order of the transposed grid.
        """
        nd = len(self.shape)
        for name, d in (("dim0", dim0), ("dim1", dim1)):
            if isinstance(d, bool) or not isinstance(d, int) or not -nd <= d < max(nd, 1):
                raise ValueError(f"{name}: expected a dim of the {nd}-d mask, got {d!r}")
        d0, d1 = (d % nd if nd else 0 for d in (dim0, dim1))
        if d0 == d1:
            return self
        coords = list(torch.unravel_index(self.index, self.shape))
        coords[d0], coords[d1] = coords[d1], coords[d0]
        shape = list(self.shape)
        shape[d0], shape[d1] = shape[d1], shape[d0]
        flat = torch.zeros_like(self.index)
        for c, size in zip(coords, shape, strict=True):
            flat = flat * size + c
        index, _ = flat.sort()
        return ValidRows._from_index(self.mask.transpose(d0, d1), index)

    def prepend(self, num: int) -> ValidRows:
        """The rows of the grid with ``num`` always-valid entries in front along the last dim.

        The mask ``(..., L)`` becomes ``(..., num + L)``: a learnable token in front of every
        frame's pairs, valid in every frame. No host sync: the row count is ``len(self)`` plus
        ``num`` per frame.
        """
        if isinstance(num, bool) or not isinstance(num, int) or num < 0:
            raise ValueError(f"num: expected a non-negative int, got {num!r}")
        if num == 0:
            return self
        if not self.shape:
            raise ValueError("prepend: the rows of a 0-d mask have no last dim")
        L = self.shape[-1]
        lead = math.prod(self.shape[:-1])
        frame, pos = self.index.div(max(L, 1), rounding_mode="floor"), self.index % max(L, 1)
        moved = frame * (L + num) + num + pos
        tokens = (torch.arange(lead, device=self.device) * (L + num)).unsqueeze(-1)
        tokens = (tokens + torch.arange(num, device=self.device)).reshape(-1)
        index, _ = torch.cat((tokens, moved)).sort()
        front = self.mask.new_ones(*self.shape[:-1], num)
        return ValidRows._from_index(torch.cat((front, self.mask), -1), index)

    def gather(self, x: Tensor) -> Tensor:
        """The valid rows of ``x``; ``x`` may broadcast over the leading dims (positions)."""
        if not isinstance(x, Tensor) or x.dim() < 1:
            raise TypeError(f"x: expected a tensor (..., {self.shape[-1] if self.shape else 1}, C)")
        C = x.shape[-1]
        check_device(x, "x", self.device, "the rows")
        if x.shape[:-1] != self.shape:
            try:
                torch.broadcast_shapes(x.shape[:-1], self.shape)
            except RuntimeError:
                raise ValueError(
                    f"x: expected a shape that broadcasts to {(*self.shape, C)}, got "
                    f"{tuple(x.shape)}"
                ) from None
            L = self.shape[-1] if self.shape else 1
            if x.dim() >= 2 and x.shape[-2] == L and math.prod(x.shape[:-2]) == 1:
                # (L, C) broadcast over the leading dims: row i sits at position i mod L.
                return x.reshape(L, C).index_select(0, self.index % max(L, 1))
            x = x.expand(*self.shape, C)
        return x.reshape(-1, C).index_select(0, self.index)

    def gather_outer(self, x: Tensor) -> Tensor:
        """For each valid row, the entry of ``x (*shape[:k], C)`` it sits in: ``x`` indexes the
        grid's first ``k = x.dim() - 1`` dims (a video's context for each of its pairs).
        Returns ``(N, C)``, without expanding ``x`` to the grid."""
        k = x.dim() - 1
        if not isinstance(x, Tensor) or k < 0 or tuple(x.shape[:-1]) != self.shape[:k]:
            raise ValueError(
                f"x: expected (*{self.shape[:k] if k >= 0 else ()}, C) of the grid {self.shape}, "
                f"got {tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__}"
            )
        check_device(x, "x", self.device, "the rows")
        inner = max(math.prod(self.shape[k:]), 1)
        outer = self.index.div(inner, rounding_mode="floor")
        return x.reshape(-1, x.shape[-1]).index_select(0, outer)

    def take(self, x: Tensor) -> Tensor:
        """The valid entries of ``x (*shape, *trailing)``: ``(N, *trailing)`` (any number of
        trailing dims, none included; ``x`` must have the grid's shape in front)."""
        lead = len(self.shape)
        if not isinstance(x, Tensor) or tuple(x.shape[:lead]) != self.shape:
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"x: expected a tensor of shape ({self.shape}, ...), got {got}")
        trailing = tuple(x.shape[lead:])
        flat = x.reshape(*self.shape, math.prod(trailing))
        return self.gather(flat).reshape(len(self), *trailing)

    def put(self, rows: Tensor) -> Tensor:
        """The grid ``(*shape, *trailing)`` holding ``rows (N, *trailing)`` at the valid entries
        and 0 elsewhere (the inverse of [`take`][])."""
        if not isinstance(rows, Tensor) or rows.dim() < 1:
            raise ValueError(f"rows: expected a tensor ({len(self)}, ...), got {rows!r}")
        trailing = tuple(rows.shape[1:])
        grid = self.scatter(rows.reshape(rows.shape[0], math.prod(trailing)))
        return grid.reshape(*self.shape, *trailing)

    def scatter(self, rows: Tensor) -> Tensor:
        """The grid ``(..., L, C)`` holding ``rows`` at the valid entries and 0 elsewhere."""
        check_tensor(rows, "rows", (len(self), "C"))
        check_device(rows, "rows", self.device, "the rows")
        C = rows.shape[-1]
        grid = rows.new_zeros(math.prod(self.shape), C)
        return grid.index_copy_(0, self.index, rows).view(*self.shape, C)


MaskOrRows: TypeAlias = Tensor | ValidRows
"""What a block's ``mask`` argument takes: a bool tensor, or the [`ValidRows`][] of one."""


def split_mask(
    mask: Tensor | ValidRows | None,
    rows: ValidRows | None = None,
    *,
    name: str = "mask",
    old: str = "rows",
    stacklevel: int = 5,
) -> tuple[Tensor | None, ValidRows | None]:
    """``(mask tensor, rows)`` of a ``mask`` argument that may be a [`ValidRows`][].

    ``rows`` is the value of a block's deprecated keyword ``old`` (``rows=``, ``query_rows=``
    ...): given, it warns once per call site and is used as before. ``stacklevel`` counts from
    this function to the user's line (5 for a module's ``forward``: ``__call__`` adds two
    frames; 3 for a function).

    Returns:
        ``(mask, rows)``: the bool tensor (or ``None``) and the rows (``None`` unless given).

    Args:
        mask: the block's mask argument: a bool tensor, its [`ValidRows`][], or ``None``.
        rows: the value of the deprecated keyword (``None`` when not given).
        name: the mask argument's name, for messages.
        old: the deprecated keyword's name, for messages.
        stacklevel: see above.

    Raises:
        TypeError: ``mask`` is neither a bool tensor nor a [`ValidRows`][].
        ValueError: rows are given both ways and differ, or describe another grid than
            ``mask``.

    Examples:
        >>> mask = torch.tensor([True, False, True])
        >>> m, rows = split_mask(ValidRows(mask))
        >>> m.tolist(), len(rows)
        ([True, False, True], 2)
        >>> split_mask(mask)[1] is None
        True
    """
    if rows is not None:
        warnings.warn(
            f"{old}= is deprecated and goes in the next release: pass the ValidRows as {name}= "
            "(it carries its mask)",
            DeprecationWarning,
            stacklevel=stacklevel,
        )
        if not isinstance(rows, ValidRows):
            raise TypeError(f"{old}: expected a ValidRows, got {type(rows).__name__}")
    if isinstance(mask, ValidRows):
        if rows is not None and rows is not mask:
            raise ValueError(f"{old}: given along with a ValidRows {name}; pass one of them")
        return mask.mask, mask
    if mask is not None and not isinstance(mask, Tensor):
        raise TypeError(f"{name}: expected a bool tensor or a ValidRows, got {type(mask).__name__}")
    if mask is not None and mask.dtype != torch.bool:
        raise TypeError(f"{name}: expected a bool tensor or a ValidRows, got dtype {mask.dtype}")
    if rows is not None and mask is not None and not rows.matches(mask):
        raise ValueError(
            f"{old}: expected the ValidRows of {name} (shape {tuple(mask.shape)} on "
            f"{mask.device}), got {rows.shape} on {rows.device}"
        )
    return mask, rows


def resolve_rows(
    enabled: bool,
    mask: Tensor | ValidRows | None,
    shape: Sequence[int],
    rows: ValidRows | None = None,
    name: str = "mask",
) -> ValidRows | None:
    """The [`ValidRows`][] a block should run on, or ``None`` for the padded grid.

    ``None`` unless ``enabled``, a mask of exactly the grid's leading ``shape`` is given, and
    ``torch.compile`` is not tracing. ``rows`` given by the caller are checked against the mask's
    shape and device (never its values) and used; otherwise they are built from the mask.

    Raises:
        TypeError: ``rows`` is not a [`ValidRows`][], or ``mask`` is not bool.
        ValueError: ``rows`` are given without a mask, or describe another grid than ``mask``.
    """
    if isinstance(mask, ValidRows):
        mask, rows = mask.mask, mask
    if rows is not None:
        if not isinstance(rows, ValidRows):
            raise TypeError(f"rows: expected a ValidRows, got {type(rows).__name__}")
        if mask is None:
            raise ValueError(f"rows: given without {name}; pass the mask they were built from")
    if not enabled or mask is None or tuple(mask.shape) != tuple(shape) or is_compiling():
        return None
    check_tensor(mask, name, ("...",), dtype="bool")
    if rows is None:  # checked above: skip ValidRows' own check of the mask
        return ValidRows._from_index(mask, mask.reshape(-1).nonzero().squeeze(-1))
    if not rows.matches(mask):
        raise ValueError(
            f"rows: expected the ValidRows of a mask of shape {tuple(mask.shape)} on "
            f"{mask.device}, got {rows.shape} on {rows.device}"
        )
    return rows


def rowwise(fn: Callable[..., Any], mask: Tensor | ValidRows | None, *xs: Tensor | None) -> Any:
    """``fn(*xs)`` for a function that treats the rows of a grid independently (linear layers,
    MLPs, norms, a whole per-pair head): on the valid rows only when ``mask`` is a
    [`ValidRows`][] (no compute on padding, no host sync), else on the grid with the padded rows
    of the inputs and of the outputs set to 0 (no garbage reaches a weight or a gradient).

    Each input has the mask's shape as its leading dims and any trailing dims (``None`` passes
    through); on the rows path ``fn`` sees ``(N, *trailing)``. ``fn`` returns a tensor or a tuple
    (a `NamedTuple` too) of them, each with the mask's shape in front (``(N, ...)`` on rows).

    Args:
        fn: the row-wise function.
        mask: the grid's mask, its [`ValidRows`][], or ``None`` (no padding).
        *xs: its inputs.

    Shape:
        - mask: ``(..., L)``; xs: ``(..., L, *trailing_i)``
        - output: ``(..., L, *trailing_out)``

    Examples:
        >>> mask = torch.tensor([[True, False, True]])
        >>> x = torch.tensor([[[1.0], [float("nan")], [3.0]]])     # garbage at the padding
        >>> rowwise(lambda t: t * 10, ValidRows(mask), x).flatten().tolist()
        [10.0, 0.0, 30.0]
        >>> rowwise(lambda t: t * 10, mask, x).flatten().tolist()  # the grid: same result
        [10.0, 0.0, 30.0]
    """
    if isinstance(mask, ValidRows) and not is_compiling():
        rows = mask
        return _map_out(rows.put, fn(*(None if x is None else rows.take(x) for x in xs)))
    m = mask.mask if isinstance(mask, ValidRows) else mask
    if m is None:
        return fn(*xs)

    def zero(x: Tensor | None) -> Tensor | None:
        if x is None or not x.is_floating_point():
            return x
        return x.masked_fill(~m.view(*m.shape, *([1] * (x.dim() - m.dim()))), 0.0)

    return _map_out(zero, fn(*(zero(x) for x in xs)))


def _map_out(f, out):
    if isinstance(out, Tensor):
        return f(out)
    mapped = [f(o) for o in out]
    return type(out)(*mapped) if hasattr(out, "_fields") else type(out)(mapped)
