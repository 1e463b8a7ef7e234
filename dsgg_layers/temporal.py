"""The previous frame of each pair track: its index, and the features found there.

A pair need not exist in every frame of its video. Blocks that compare a pair with itself one
step back (MoSA's velocity and direction, *MoSA*, Sec. 2.2, Eq. 4 and 6; TR²'s message token and
temporal-difference text guidance, *Cross-Modality Time-Variant Relation Learning for Generating
Dynamic Scene Graphs*, ICRA 2023, arXiv:2305.08522, Sec. III) need, for
every frame ``t``, the last earlier frame ``t' < t`` in which the same pair exists. Both
functions here are vectorised scans over ``T`` (a cumulative max of frame indices), with no loop
over frames, pairs or videos.
"""

from __future__ import annotations

import torch
from torch import Tensor

from dsgg_layers._checks import check_tensor

__all__ = ["gather_frames", "gather_previous", "previous_frame_index", "track_ranks"]


def previous_frame_index(mask: Tensor) -> Tensor:
    """Index of the previous frame in which each pair exists, ``-1`` where there is none.

    Args:
        mask: ``True`` where the pair exists in that frame.

    Returns:
        ``prev[..., t, p] = max {t' < t : mask[..., t', p]}``, or ``-1``. Defined at every
        position (padded ones too), so that it can index any ``(..., T, P)`` tensor.

    Shape:
        - mask: ``(..., T, P)``
        - output: ``(..., T, P)`` long

    Raises:
        TypeError: ``mask`` is not bool.
        ValueError: ``mask`` has fewer than 2 dims.

    Examples:
        >>> mask = torch.tensor([[True], [False], [True], [True]])   # one pair, T = 4
        >>> previous_frame_index(mask).flatten().tolist()
        [-1, 0, 0, 2]
    """
    check_tensor(mask, "mask", ("...", "T", "P"), dtype="bool")
    T = mask.shape[-2]
    frames = torch.arange(T, device=mask.device).view(T, 1)
    last_valid = torch.where(mask, frames, -1).cummax(dim=-2).values  # last valid index <= t
    return torch.cat((torch.full_like(last_valid[..., :1, :], -1), last_valid[..., :-1, :]), dim=-2)


def gather_previous(x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """The features of each pair at its previous existing frame.

    Args:
        x: per-pair features.
        mask: ``True`` where the pair exists in that frame.

    Returns:
        ``(previous, has_previous)``: ``previous[..., t, p] = x[..., t', p]`` for the frame
        ``t'`` of [`previous_frame_index`][], exactly 0 where the pair has no earlier frame
        or does not exist at ``t``; ``has_previous`` marks the positions where it has one (and
        exists at ``t``). Padded features never reach the output (nor get a gradient).

    Shape:
        - x: ``(..., T, P, D)``; mask: ``(..., T, P)``
        - output: ``(..., T, P, D)`` and ``(..., T, P)`` bool

    Raises:
        TypeError: ``mask`` is not bool.
        ValueError: shapes disagree.

    Examples:
        >>> x = torch.tensor([[[1.0]], [[2.0]], [[3.0]]])           # (T=3, P=1, D=1)
        >>> mask = torch.tensor([[True], [False], [True]])
        >>> prev, has = gather_previous(x, mask)
        >>> prev.flatten().tolist(), has.flatten().tolist()      # frame 2 looks back to frame 0
        ([0.0, 0.0, 1.0], [False, False, True])
    """
    dims: dict[str, tuple[int, str]] = {}
    check_tensor(x, "x", ("...", "T", "P", "D"), dims=dims)
    check_tensor(mask, "mask", ("...", "T", "P"), dims=dims, dtype="bool")
    if tuple(mask.shape) != tuple(x.shape[:-1]):
        raise ValueError(f"mask: expected shape {tuple(x.shape[:-1])}, got {tuple(mask.shape)}")
    prev = previous_frame_index(mask)
    has_prev = (prev >= 0) & mask
    gathered = gather_frames(x.masked_fill(~mask.unsqueeze(-1), 0), prev.clamp(min=0))
    return gathered.masked_fill(~has_prev.unsqueeze(-1), 0), has_prev


def gather_frames(x: Tensor, index: Tensor) -> Tensor:
    """``x[..., index[..., t, p], p, :]``: per pair, the features at frame ``index`` (no checks).

    The gather behind [`gather_previous`][], for callers that hold the index already
    (``previous_frame_index(mask).clamp(min=0)``, say).

    Args:
        x: per-pair features.
        index: the frame to read for each pair and output frame.

    Shape:
        - x: ``(..., T, P, C)``; index: ``(..., T', P)`` long in ``[0, T)``
        - output: ``(..., T', P, C)``

    Examples:
        >>> x = torch.arange(6.0).view(3, 2, 1)                  # (T=3, P=2, C=1)
        >>> gather_frames(x, torch.tensor([[0, 0], [0, 2]]))[..., 0].tolist()
        [[0.0, 1.0], [0.0, 5.0]]
    """
    return torch.gather(x, -3, index.unsqueeze(-1).expand(*index.shape, x.shape[-1]))


def track_ranks(mask: Tensor) -> Tensor:
    """The 0-based rank of each frame within its pair track (the pair's k-th existing frame).

    TR²'s public code positions a pair's frames by this rank, not by the frame's slot in the
    video: a pair missing from some frames has consecutive ranks across the gap.

    Args:
        mask: ``True`` where the pair exists in that frame.

    Returns:
        ``(..., T, P)`` long: the rank where the pair exists, 0 elsewhere.

    Shape:
        - mask: ``(..., T, P)``

    Raises:
        TypeError: ``mask`` is not bool.
        ValueError: ``mask`` has fewer than 2 dims.

    Examples:
        >>> mask = torch.tensor([[False], [True], [False], [True]])   # one pair, T = 4
        >>> track_ranks(mask).flatten().tolist()
        [0, 0, 0, 1]
    """
    check_tensor(mask, "mask", ("...", "T", "P"), dtype="bool")
    ranks = mask.long().cumsum(-2) - 1
    return ranks.clamp(min=0).masked_fill(~mask, 0)
