"""Many videos per call: length bucketing, pair-track collation, splitting results back, a sampler.

Pair tracks pad every video of a batch to the batch's longest ``T`` and widest ``P``. Batching
videos of similar size keeps that padding small: [`bucket_batches`][] sorts videos by
``(T, P)`` and cuts the order into batches under a video count and a padded-cell budget;
[`BucketBatchSampler`][] does the same for training, with seeded shuffling within buckets and
of the batch order, and a rank's share of the batches for DDP. [`collate_tracks`][] stacks
per-video tensors into one padded batch and [`split_tracks`][] cuts a batched result back into
per-video tensors
([`VideoGraph.collate`][dsgg_layers.data.graph.VideoGraph.collate] does the former for whole
graphs).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch import Tensor
from torch.utils.data import Sampler

from dsgg_layers._checks import (
    check_device,
    check_fill,
    check_positive,
    check_tensor,
    values_readable,
)

__all__ = [
    "BucketBatchSampler",
    "bucket_batches",
    "collate_tracks",
    "padding_fraction",
    "split_tracks",
    "track_sizes",
]


def _sizes(sizes: Sequence[tuple[int, int]] | Tensor) -> Tensor:
    if isinstance(sizes, Tensor):
        t = sizes
    else:
        try:
            t = torch.as_tensor(list(sizes) if len(sizes) else [], dtype=None)
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(
                f"sizes: expected (frames, pairs) pairs of ints, got {sizes!r}"
            ) from None
        if t.numel() == 0:
            t = t.long().reshape(0, 2) if t.dim() < 2 else t.long()
    if t.is_floating_point() or t.dtype == torch.bool or t.is_complex():
        raise TypeError(f"sizes: expected integer (frames, pairs), got dtype {t.dtype}")
    t = t.long()
    if t.ndim != 2 or t.shape[1] != 2:
        raise ValueError(
            f"sizes: expected (N, 2) (frames, pairs) per video, got shape {tuple(t.shape)}"
        )
    if bool((t < 0).any()):
        raise ValueError("sizes: expected frames and pairs >= 0")
    return t


def track_sizes(mask: Tensor, frame_mask: Tensor | None = None) -> Tensor:
    """``(frames, pair tracks)`` of each video of a padded batch: the ``sizes`` of the others.

    A video's frames are its frame slots up to the last real one (``frame_mask``; without it,
    up to the last slot in which some pair exists); its pair tracks run up to the last track
    that exists in some frame. Slicing ``[:frames, :pairs]`` therefore keeps all of a video.

    Args:
        mask: ``True`` where a pair exists.
        frame_mask: ``True`` at a video's real frame slots.

    Returns:
        ``(B, 2)`` long tensor.

    Shape:
        - mask: ``(B, T, P)``
        - frame_mask: ``(B, T)``
        - output: ``(B, 2)``

    Raises:
        TypeError: a mask is not bool.
        ValueError: the shapes disagree.

    Examples:
        >>> mask = torch.zeros(2, 4, 3, dtype=torch.bool)
        >>> mask[0, :2, 0] = True
        >>> mask[1, 3, 2] = True
        >>> track_sizes(mask)
        tensor([[2, 1],
                [4, 3]])
    """
    dims: dict[str, tuple[int, str]] = {}
    check_tensor(mask, "mask", ("B", "T", "P"), dims=dims, dtype="bool")
    frames_real = mask.any(2)
    if frame_mask is not None:
        check_tensor(frame_mask, "frame_mask", ("B", "T"), dims=dims, dtype="bool")
        if values_readable(mask) and bool((frames_real & ~frame_mask).any()):
            raise ValueError("frame_mask: a pair exists in a frame slot it marks as not real")
        frames_real = frame_mask
    B, T, P = mask.shape
    slots = torch.arange(1, T + 1, device=mask.device)
    tracks = torch.arange(1, P + 1, device=mask.device)
    frames = (
        torch.where(frames_real, slots, 0).amax(1) if T else mask.new_zeros(B, dtype=torch.long)
    )
    pairs = (
        torch.where(mask.any(1), tracks, 0).amax(1) if P else mask.new_zeros(B, dtype=torch.long)
    )
    return torch.stack((frames, pairs), 1)


def bucket_batches(
    sizes: Sequence[tuple[int, int]] | Tensor,
    *,
    max_videos: int = 64,
    max_cells: int | None = None,
) -> list[list[int]]:
    """Batches of video indices with little padding: sorted by ``(P, T)``, then cut greedily.

    A batch ends when it holds ``max_videos`` videos or when adding the next video would make the
    padded grid ``videos x max T x max P`` exceed ``max_cells`` (a video larger than the budget
    alone gets a batch of its own). Every index appears in exactly one batch.

    Args:
        sizes: ``(frames, pair tracks)`` of each video.
        max_videos: most videos a batch.
        max_cells: most padded ``T x P`` cells a batch (``None``: no limit).

    Returns:
        Lists of indices into ``sizes``, in increasing ``(P, T)`` order.

    Raises:
        ValueError: ``sizes`` is not ``(N, 2)`` non-negative, or a limit is not positive.

    Examples:
        >>> bucket_batches([(24, 2), (3, 1), (25, 2), (4, 1)], max_videos=2)  # (frames, pairs)
        [[1, 3], [0, 2]]
    """
    t = _sizes(sizes)
    check_positive(max_videos, "max_videos")
    if max_cells is not None:
        check_positive(max_cells, "max_cells")
    # pairs first: they take few values, so a batch mostly shares its P and spans a short T range
    order = sorted(range(len(t)), key=lambda i: (int(t[i, 1]), int(t[i, 0]), i))
    batches: list[list[int]] = []
    current: list[int] = []
    T = P = 0
    for i in order:
        f, p = int(t[i, 0]), int(t[i, 1])
        nT, nP = max(T, f), max(P, p)
        full = len(current) >= max_videos
        over = max_cells is not None and (len(current) + 1) * nT * nP > max_cells
        if current and (full or over):
            batches.append(current)
            current, nT, nP = [], f, p
        current.append(i)
        T, P = nT, nP
    if current:
        batches.append(current)
    return batches


def padding_fraction(
    sizes: Sequence[tuple[int, int]] | Tensor, batches: Sequence[Sequence[int]]
) -> float:
    """Fraction of the padded ``T x P`` cells of ``batches`` that belong to no video's grid.

    Args:
        sizes: ``(T_i, P_i)`` of every video.
        batches: the videos (indices into ``sizes``) of each batch.

    Returns:
        Padded cells over all cells of the batches' grids (0 for no cells).

    Raises:
        ValueError: an index is not an int in range, or repeats.

    Examples:
        >>> padding_fraction([(2, 1), (4, 1)], [[0, 1]])
        0.25
    """
    t = _sizes(sizes)
    seen: set[int] = set()
    for b in batches:
        for i in b:
            if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < len(t) or i in seen:
                raise ValueError(
                    f"batches: expected int indices in [0, {len(t)}), each at most once, got {i!r}"
                )
            seen.add(i)
    padded = sum(len(b) * int(t[b, 0].max()) * int(t[b, 1].max()) for b in batches if len(b))
    used = sum(int(t[i, 0]) * int(t[i, 1]) for b in batches for i in b)
    return 0.0 if padded == 0 else 1.0 - used / padded


class BucketBatchSampler(Sampler[list[int]]):
    """A training batch sampler that buckets videos by their pairs and frames.

    Each epoch the videos are shuffled, sorted by size within chunks of ``bucket_size`` batches
    (so batches hold similar videos but still differ between epochs), cut as
    [`bucket_batches`][] cuts, and the batch order is shuffled. With ``num_replicas > 1`` each
    rank takes every ``num_replicas``-th batch (the batch count is first rounded down to a
    multiple of ``num_replicas`` so that every rank runs the same number of steps). Call
    [`set_epoch`][] every epoch, as with `torch.utils.data.DistributedSampler`.

    Args:
        sizes: ``(frames, pair tracks)`` of each video.
        max_videos: most videos a batch.
        max_cells: most padded cells a batch.
        shuffle: shuffle (else: the deterministic order of [`bucket_batches`][]).
        bucket_size: batches per sorting chunk.
        seed: base seed; the epoch is added.
        num_replicas: DDP world size.
        rank: this process's rank.

    Examples:
        >>> sampler = BucketBatchSampler([(5, 1), (20, 3), (6, 1), (21, 3)], max_videos=2)
        >>> sorted(sorted(b) for b in sampler)
        [[0, 2], [1, 3]]
        >>> loader = torch.utils.data.DataLoader(range(4), batch_sampler=sampler)
    """

    def __init__(
        self,
        sizes: Sequence[tuple[int, int]] | Tensor,
        *,
        max_videos: int = 64,
        max_cells: int | None = None,
        shuffle: bool = True,
        bucket_size: int = 50,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        self.sizes = _sizes(sizes)
        check_positive(max_videos, "max_videos")
        check_positive(bucket_size, "bucket_size")
        check_positive(num_replicas, "num_replicas")
        if max_cells is not None:
            check_positive(max_cells, "max_cells")
        check_positive(seed, "seed", allow_zero=True)
        check_positive(rank, "rank", allow_zero=True)
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank: expected 0 <= rank < num_replicas={num_replicas}, got {rank}")
        self.max_videos, self.max_cells = max_videos, max_cells
        self.shuffle, self.bucket_size, self.seed = shuffle, bucket_size, seed
        self.num_replicas, self.rank = num_replicas, rank
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Use ``seed + epoch`` for the next iteration."""
        check_positive(epoch, "epoch", allow_zero=True)
        self.epoch = epoch

    def _batches(self) -> list[list[int]]:
        if not self.shuffle:
            batches = bucket_batches(
                self.sizes, max_videos=self.max_videos, max_cells=self.max_cells
            )
        else:
            g = torch.Generator().manual_seed(self.seed + self.epoch)
            perm = torch.randperm(len(self.sizes), generator=g)
            chunk = self.bucket_size * self.max_videos
            batches = []
            for start in range(0, len(perm), chunk):
                idx = perm[start : start + chunk]
                local = bucket_batches(
                    self.sizes[idx], max_videos=self.max_videos, max_cells=self.max_cells
                )
                batches += [[int(idx[i]) for i in b] for b in local]
            order = torch.randperm(len(batches), generator=g).tolist()
            batches = [batches[i] for i in order]
        if self.num_replicas > 1:
            usable = len(batches) - len(batches) % self.num_replicas
            batches = batches[self.rank : usable : self.num_replicas]
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self._batches())

    def __len__(self) -> int:
        return len(self._batches())


def collate_tracks(
    tensors: Sequence[Tensor], masks: Sequence[Tensor], *, fill: float = 0.0
) -> tuple[Tensor, Tensor]:
    """Stack per-video pair tracks into one batch padded to the largest ``T`` and ``P``.

    Args:
        tensors: one ``(T_i, P_i, *F)`` tensor per video (same trailing dims ``F``).
        masks: their ``(T_i, P_i)`` bool masks.
        fill: value of the padded entries.

    Returns:
        ``(B, T, P, *F)`` and the ``(B, T, P)`` mask.

    Raises:
        TypeError: a tensor's dtype differs from the first's (nothing is cast), or a mask is
            not bool.
        ValueError: no tensors, a count, shape or device mismatch, or a fractional ``fill`` for
            integer tensors.

    Examples:
        >>> xs = [torch.ones(2, 1, 3), torch.ones(4, 2, 3)]
        >>> x, m = collate_tracks(xs, [torch.ones(x.shape[:2], dtype=torch.bool) for x in xs])
        >>> x.shape, m.sum().item()
        (torch.Size([2, 4, 2, 3]), 10)
    """
    for name, value in (("tensors", tensors), ("masks", masks)):
        if isinstance(value, Tensor) or not isinstance(value, Sequence):
            raise TypeError(
                f"{name}: expected a sequence (list) of tensors, got {type(value).__name__}"
            )
    if not tensors:
        raise ValueError("tensors: expected at least one tensor, got none")
    if len(tensors) != len(masks):
        raise ValueError(f"masks: expected {len(tensors)} masks (one per tensor), got {len(masks)}")
    check_tensor(tensors[0], "tensors[0]", ("T", "P", "..."))
    trailing = tuple(tensors[0].shape[2:])
    first = tensors[0]
    for i, (x, m) in enumerate(zip(tensors, masks, strict=True)):
        check_tensor(x, f"tensors[{i}]", ("T", "P", *trailing))
        check_tensor(m, f"masks[{i}]", tuple(x.shape[:2]), dtype="bool")
        if x.dtype != first.dtype:  # never cast silently (float64 -> float32, float -> int)
            raise TypeError(
                f"tensors[{i}]: expected dtype {first.dtype} (of tensors[0]), got {x.dtype}"
            )
        check_device(x, f"tensors[{i}]", first.device, "tensors[0]")
        check_device(m, f"masks[{i}]", first.device, "tensors[0]")
    check_fill(fill, "fill", first.dtype)
    T = max(x.shape[0] for x in tensors)
    P = max(x.shape[1] for x in tensors)
    out = first.new_full((len(tensors), T, P, *trailing), fill)
    mask = torch.zeros(len(tensors), T, P, dtype=torch.bool, device=first.device)
    for b, (x, m) in enumerate(zip(tensors, masks, strict=True)):  # copies, not compute
        out[b, : x.shape[0], : x.shape[1]] = x
        mask[b, : m.shape[0], : m.shape[1]] = m
    return out, mask


def split_tracks(x: Tensor, sizes: Sequence[tuple[int, int]] | Tensor) -> list[Tensor]:
    """Cut a batched result ``(B, T, P, ...)`` back into per-video ``(T_i, P_i, ...)`` views.

    Args:
        x: the batched result.
        sizes: ``(T_i, P_i)`` of every video of the batch.

    Returns:
        One view a video, without its padding.

    Raises:
        ValueError: ``x`` has not ``len(sizes)`` videos, or a video is larger than its grid.

    Examples:
        >>> parts = split_tracks(torch.zeros(2, 4, 2, 3), [(2, 1), (4, 2)])
        >>> [tuple(p.shape) for p in parts]
        [(2, 1, 3), (4, 2, 3)]
    """
    t = _sizes(sizes)
    check_tensor(x, "x", (len(t), "T", "P", "..."))
    if len(t) and (int(t[:, 0].max()) > x.shape[1] or int(t[:, 1].max()) > x.shape[2]):
        raise ValueError(
            f"sizes: a video is larger than the batch grid (T={x.shape[1]}, P={x.shape[2]})"
        )
    return [x[b, : int(f), : int(p)] for b, (f, p) in enumerate(t.tolist())]
