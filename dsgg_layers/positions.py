"""Position encodings: sinusoidal (fixed) and learned, for frame slots, window offsets, tokens.

One module for every block that adds positions to queries and keys (STTran's temporal decoder,
TR²'s relation feature fusion, RS-Net's context tokens, ARN's hierarchical attention):

- [`sinusoidal_positions`][]: the fixed encodings of *Attention Is All You Need* (Vaswani et
  al., NeurIPS 2017, Sec. 3.5), at integer or real positions;
- [`LearnedPositions`][]: a learned table, as STTran's decoder uses for the two frames of a
  window and DETR-style decoders for their queries.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from dsgg_layers._checks import check_positive, check_tensor, is_compiling

__all__ = ["LearnedPositions", "sinusoidal_positions"]


def sinusoidal_positions(
    positions: Tensor | int,
    dim: int,
    *,
    base: float = 10_000.0,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
    tensor2tensor: bool = False,
) -> Tensor:
    """Sinusoidal position encodings (Vaswani et al., 2017), ``[sin, cos]`` halves.

    Frequency ``i`` of the ``dim / 2`` is ``base^(-i / (dim / 2))``; with ``tensor2tensor=True``
    it is ``base^(-i / (dim / 2 - 1))``, so that the last frequency is exactly ``1 / base`` (the
    timing signal of tensor2tensor, which TR²'s public code uses for its temporal positions).

    Args:
        positions: integer or real positions, or ``n`` for ``0, 1, ..., n - 1``.
        dim: width of the encodings (even).
        base: the wavelength base.
        dtype: output dtype (default: the default float dtype).
        device: device of the output when ``positions`` is an int (default: the CPU); a tensor
            of positions keeps its own device.
        tensor2tensor: tensor2tensor's frequencies (see above).

    Shape:
        - positions: ``(...)``
        - output: ``(..., dim)``

    Raises:
        TypeError: ``positions`` is neither an int nor a real tensor, or ``dtype`` is not a
            floating point dtype.
        ValueError: ``dim`` is not a positive even number, ``n`` is negative, or ``base`` is
            not positive and finite.

    Examples:
        >>> sinusoidal_positions(3, 4)
        tensor([[ 0.0000,  0.0000,  1.0000,  1.0000],
                [ 0.8415,  0.0100,  0.5403,  0.9999],
                [ 0.9093,  0.0200, -0.4161,  0.9998]])
    """
    check_positive(dim, "dim")
    if dim % 2:
        raise ValueError(f"dim: expected an even width, got {dim}")
    check_positive(base, "base", integer=False)
    if isinstance(positions, bool) or not isinstance(positions, int | Tensor):
        raise TypeError(f"positions: expected an int n or a tensor of positions, got {positions!r}")
    if isinstance(positions, int):
        check_positive(positions, "positions", allow_zero=True)
        positions = torch.arange(positions, device=device)
    elif positions.dtype == torch.bool or positions.is_complex():
        raise TypeError(f"positions: expected integer or real positions, got {positions.dtype}")
    if dtype is not None and not dtype.is_floating_point:
        raise TypeError(f"dtype: expected a floating point dtype, got {dtype}")
    dtype = dtype or torch.get_default_dtype()
    half = dim // 2
    denominator = max(half - 1, 1) if tensor2tensor else half
    freq = torch.exp(
        -math.log(base)
        * torch.arange(half, device=positions.device, dtype=torch.float64)
        / denominator
    )
    angle = positions.to(torch.float64).unsqueeze(-1) * freq
    return torch.cat((angle.sin(), angle.cos()), -1).to(dtype)


class LearnedPositions(nn.Module):
    """A learned table of ``num_positions`` position embeddings of width ``dim``.

    ``forward(n)`` returns the first ``n`` rows ``(n, dim)``; ``forward(index)`` looks up an
    integer tensor of positions. Initialised from a truncated normal (std 0.02, as ViT and DETR
    do); the table is listed in [`no_weight_decay`][].

    Args:
        num_positions: rows of the table.
        dim: width of each embedding.
        std: standard deviation of the initialisation.

    Shape:
        - index: ``(...)`` integers in ``[0, num_positions)``, or an int ``n <= num_positions``
        - output: ``(..., dim)``, or ``(n, dim)``

    Raises:
        ValueError: ``num_positions`` or ``dim`` is not positive, ``n`` exceeds the table, or
            an index is out of range (checked for CPU indices; on a GPU the check would wait
            for the device, so an out-of-range index fails inside the lookup instead).
        TypeError: ``index`` is not an integer tensor.

    Examples:
        >>> pos = LearnedPositions(2, 8)      # STTran's two frames of a window
        >>> pos(2).shape, pos(torch.tensor([[0, 1, 1]])).shape
        (torch.Size([2, 8]), torch.Size([1, 3, 8]))
    """

    def __init__(self, num_positions: int, dim: int, *, std: float = 0.02) -> None:
        super().__init__()
        check_positive(num_positions, "num_positions")
        check_positive(dim, "dim")
        check_positive(std, "std", integer=False)
        self.num_positions, self.dim, self.std = num_positions, dim, float(std)
        self.weight = nn.Parameter(torch.empty(num_positions, dim))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Truncated normal, ``std``, cut at two standard deviations."""
        nn.init.trunc_normal_(self.weight, std=self.std, a=-2 * self.std, b=2 * self.std)

    def no_weight_decay(self) -> set[str]:
        """Parameter names to exclude from weight decay (the table)."""
        return {"weight"}

    def extra_repr(self) -> str:
        return f"num_positions={self.num_positions}, dim={self.dim}"

    def forward(self, index: Tensor | int) -> Tensor:
        """Embeddings of the first ``index`` positions, or of the positions in ``index``."""
        if isinstance(index, int):
            if not 0 <= index <= self.num_positions:
                raise ValueError(
                    f"index: expected at most num_positions={self.num_positions} positions, "
                    f"got {index}"
                )
            return self.weight[:index]
        check_tensor(index, "index", ("...",), dtype=(torch.int64, torch.int32))
        if index.numel() and index.device.type == "cpu" and not is_compiling():  # no sync
            lo, hi = int(index.min()), int(index.max())
            if lo < 0 or hi >= self.num_positions:
                raise ValueError(
                    f"index: expected positions in [0, {self.num_positions}), got [{lo}, {hi}]"
                )
        return nn.functional.embedding(index, self.weight)
