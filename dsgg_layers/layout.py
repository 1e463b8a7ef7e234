"""Pair tracks: converters between the flat layout of existing DSGG code and ``(B, T, P, D)`` grids.

Existing DSGG code (STTran, DSG-DETR, TEMPURA) keeps relations *flat*: one row per
subject-object pair and frame, with the frame each row belongs to. The blocks of this library work
on *pair tracks*: a dense grid ``x: (B, T, P, D)`` with a bool ``mask: (B, T, P)``, where the same
subject-object pair keeps the same ``p`` in every frame of its video (see the "Pair-track
layout" docs page).

The conversion is described once by a [`TrackIndex`][] (where each flat row lives in the grid,
and which original video, frame and track each grid slot stands for), built by
[`build_track_index`][] from per-row ids, and then applied to any number of tensors:

>>> video = torch.tensor([7, 7, 7, 9])          # video id of each flat row
>>> frame = torch.tensor([10, 10, 12, 3])      # frame number of each row
>>> track = torch.tensor([5, 2, 5, 2])         # track id (e.g. object id) of each row
>>> index = build_track_index(video, frame, track)
>>> index.shape                                # (B, T, P)
(2, 2, 2)
>>> feats = torch.arange(4.0).unsqueeze(1)     # (N, D) flat features
>>> grid, mask = flat_to_tracks(feats, index)
>>> grid[..., 0]
tensor([[[1., 0.],
         [0., 2.]],
<BLANKLINE>
        [[3., 0.],
         [0., 0.]]])
>>> torch.equal(tracks_to_flat(grid, index), feats)
True

Both directions are gathers/scatters by advanced indexing (no Python loop over rows, frames or
videos), differentiable, and lossless: ``tracks_to_flat(flat_to_tracks(x)) == x`` in the original
row order.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from dsgg_layers._checks import check_fill, check_tensor, values_readable
from dsgg_layers.boxes import box_union

__all__ = [
    "PairTracks",
    "TrackIndex",
    "build_track_index",
    "flat_to_tracks",
    "person_object_pairs",
    "tracks_to_flat",
]


@dataclass(frozen=True)
class TrackIndex:
    """Where each flat row lives in a pair-track grid, and what each grid slot stands for.

    Videos are ordered by id, frames by frame number within their video, tracks by track id
    within their video. Padded slots of ``frame_ids`` and ``track_ids`` hold 0; ``frame_mask``
    and ``track_mask`` tell them apart.

    Attributes:
        batch: ``(N,)`` video slot ``b`` of each flat row.
        time: ``(N,)`` frame slot ``t`` of each flat row.
        track: ``(N,)`` track slot ``p`` of each flat row.
        video_ids: ``(B,)`` original id of each video.
        frame_ids: ``(B, T)`` original frame number of each frame slot (the real frame times
            of Action Genome's key frames).
        frame_mask: ``(B, T)`` ``True`` where the frame exists.
        track_ids: ``(B, P)`` original track id of each track slot.
        track_mask: ``(B, P)`` ``True`` where the track exists.

    Examples:
        >>> index = build_track_index(torch.tensor([4, 4]), torch.tensor([30, 10]),
        ...                           torch.tensor([2, 2]))
        >>> index.shape, index.time.tolist(), index.frame_ids.tolist()
        ((1, 2, 1), [1, 0], [[10, 30]])
    """

    batch: Tensor
    time: Tensor
    track: Tensor
    video_ids: Tensor
    frame_ids: Tensor
    frame_mask: Tensor
    track_ids: Tensor
    track_mask: Tensor

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(B, T, P)``: videos, frame slots and track slots of the grid."""
        return (self.video_ids.shape[0], self.frame_ids.shape[1], self.track_ids.shape[1])

    @property
    def num_rows(self) -> int:
        """``N``: the number of flat rows."""
        return self.batch.shape[0]

    @property
    def mask(self) -> Tensor:
        """``(B, T, P)`` bool: ``True`` where a flat row lives."""
        mask = torch.zeros(self.shape, dtype=torch.bool, device=self.batch.device)
        mask[self.batch, self.time, self.track] = True
        return mask

    def to(self, device: torch.device | str) -> TrackIndex:
        """This index with every tensor moved to ``device``."""
        return TrackIndex(**{k: v.to(device) for k, v in self.__dict__.items()})

    @classmethod
    def from_mask(cls, mask: Tensor) -> TrackIndex:
        """The index of a grid's valid entries, in ``(b, t, p)`` row-major order.

        Ids are the slot positions (``video_ids = 0..B-1`` and so on); every frame slot exists.

        Args:
            mask: ``True`` where an entry is valid.

        Shape:
            - mask: ``(B, T, P)``

        Raises:
            TypeError: ``mask`` is not a bool tensor.
            ValueError: ``mask`` is not 3-d.

        Examples:
            >>> mask = torch.tensor([[[True, False], [True, True]]])
            >>> index = TrackIndex.from_mask(mask)
            >>> index.time.tolist(), index.track.tolist()
            ([0, 1, 1], [0, 0, 1])
        """
        check_tensor(mask, "mask", ("B", "T", "P"), dtype="bool")
        B, T, P = mask.shape
        batch, time, track = mask.nonzero(as_tuple=True)
        dev = mask.device
        arange = lambda n: torch.arange(n, device=dev)  # noqa: E731
        return cls(
            batch=batch,
            time=time,
            track=track,
            video_ids=arange(B),
            frame_ids=arange(T).expand(B, T).contiguous(),
            frame_mask=torch.ones(B, T, dtype=torch.bool, device=dev),
            track_ids=arange(P).expand(B, P).contiguous(),
            track_mask=torch.ones(B, P, dtype=torch.bool, device=dev),
        )


def _rank_within(group: Tensor, key: Tensor, num_groups: int) -> tuple[Tensor, Tensor, Tensor]:
    """Dense rank of each row's ``key`` among the distinct keys of its ``group``.

    Returns ``(rank (N,), table (G, K), table_mask (G, K))``: ``table[g, r]`` is the key of rank
    ``r`` in group ``g``. Vectorised with two ``unique`` calls and a bincount.
    """
    dev = key.device
    keys, key_code = torch.unique(key, return_inverse=True)
    combo = group * keys.numel() + key_code  # sorted by group, then by key
    combos, combo_code = torch.unique(combo, return_inverse=True)
    combo_group = torch.div(combos, max(keys.numel(), 1), rounding_mode="floor")
    combo_key = keys[combos - combo_group * keys.numel()]
    counts = torch.bincount(combo_group, minlength=num_groups)
    starts = counts.cumsum(0) - counts
    combo_rank = torch.arange(combos.numel(), device=dev) - starts[combo_group]
    width = int(counts.max()) if counts.numel() > 0 else 0
    table = torch.zeros(num_groups, width, dtype=key.dtype, device=dev)
    table_mask = torch.zeros(num_groups, width, dtype=torch.bool, device=dev)
    table[combo_group, combo_rank] = combo_key
    table_mask[combo_group, combo_rank] = True
    return combo_rank[combo_code], table, table_mask


def build_track_index(
    video_ids: Tensor,
    frame_ids: Tensor,
    track_ids: Tensor,
    *,
    frames: tuple[Tensor, Tensor] | None = None,
) -> TrackIndex:
    """Build the [`TrackIndex`][] of flat rows given their video, frame and track ids.

    Ids can be any integers (not necessarily contiguous or starting at 0): videos, frames within a
    video and tracks within a video are ranked in increasing id order. Frames and videos that have
    no row (empty frames, empty videos) can be given in ``frames`` so that they still get a slot.

    Args:
        video_ids: video of each row.
        frame_ids: frame number of each row (kept as the frame times of the grid).
        track_ids: track of each row, e.g. the object's id for person-object pairs; the same
            track id in two frames of a video is the same track.
        frames: optional ``(video_ids, frame_ids)`` of frames to include even where they hold no
            row; frames already present may be repeated.

    Returns:
        The [`TrackIndex`][] of shape ``(B, T, P)``.

    Shape:
        - video_ids, frame_ids, track_ids: ``(N,)`` integer
        - frames: two ``(F,)`` integer tensors

    Raises:
        TypeError: an id tensor is not an integer tensor.
        ValueError: lengths differ, or two rows share a (video, frame, track).

    Examples:
        >>> index = build_track_index(
        ...     torch.tensor([0, 0]), torch.tensor([4, 6]), torch.tensor([1, 1]),
        ...     frames=(torch.tensor([0, 0, 3]), torch.tensor([4, 5, 0])),
        ... )
        >>> index.shape, index.frame_ids.tolist(), index.frame_mask.tolist()
        ((2, 3, 1), [[4, 5, 6], [0, 0, 0]], [[True, True, True], [True, False, False]])
    """
    dims: dict[str, tuple[int, str]] = {}
    check_tensor(video_ids, "video_ids", ("N",), dims=dims, dtype="int")
    check_tensor(frame_ids, "frame_ids", ("N",), dims=dims, dtype="int")
    check_tensor(track_ids, "track_ids", ("N",), dims=dims, dtype="int")
    all_videos, all_frames = video_ids.long(), frame_ids.long()
    if frames is not None:
        if not isinstance(frames, (tuple, list)) or len(frames) != 2:
            raise TypeError("frames: expected a pair (video_ids, frame_ids) of tensors")
        fdims: dict[str, tuple[int, str]] = {}
        check_tensor(frames[0], "frames[0]", ("F",), dims=fdims, dtype="int")
        check_tensor(frames[1], "frames[1]", ("F",), dims=fdims, dtype="int")
        all_videos = torch.cat((all_videos, frames[0].long().to(video_ids.device)))
        all_frames = torch.cat((all_frames, frames[1].long().to(video_ids.device)))
    n = video_ids.shape[0]
    videos, all_batch = torch.unique(all_videos, return_inverse=True)
    num_videos = videos.numel()
    all_time, frame_table, frame_mask = _rank_within(all_batch, all_frames, num_videos)
    batch, time = all_batch[:n], all_time[:n]
    track, track_table, track_mask = _rank_within(batch, track_ids.long(), num_videos)
    index = TrackIndex(
        batch=batch,
        time=time,
        track=track,
        video_ids=videos,
        frame_ids=frame_table,
        frame_mask=frame_mask,
        track_ids=track_table,
        track_mask=track_mask,
    )
    _check_unique_slots(index, video_ids, frame_ids, track_ids)
    return index


def _check_unique_slots(
    index: TrackIndex, video_ids: Tensor, frame_ids: Tensor, track_ids: Tensor
) -> None:
    _, T, P = index.shape
    slot = (index.batch * T + index.time) * P + index.track
    order = torch.argsort(slot, stable=True)
    same = slot[order][1:] == slot[order][:-1]
    if bool(same.any()):
        k = int(same.nonzero()[0])
        i, j = int(order[k]), int(order[k + 1])
        raise ValueError(
            f"video_ids, frame_ids, track_ids: rows {i} and {j} both have video "
            f"{int(video_ids[i])}, frame {int(frame_ids[i])}, track {int(track_ids[i])}; "
            "each (video, frame, track) may appear once"
        )


def _check_index(index: object) -> TrackIndex:
    if not isinstance(index, TrackIndex):
        raise TypeError(f"index: expected a TrackIndex, got {type(index).__name__}")
    # A TrackIndex built by hand (not by build_track_index) may point outside its grid: checked
    # where reading the coordinates is free (CPU), else the scatter fails inside torch.
    if index.num_rows and values_readable(index.batch):
        for name, coord, size in zip(("batch", "time", "track"),
                                     (index.batch, index.time, index.track), index.shape,
                                     strict=True):  # fmt: skip
            if coord.shape != index.batch.shape or bool(((coord < 0) | (coord >= size)).any()):
                raise ValueError(
                    f"index: {name} coordinates outside the grid {index.shape} "
                    f"(got {coord.min().item()}..{coord.max().item()})"
                )
    return index


def flat_to_tracks(
    x: Tensor, index: TrackIndex, *, fill_value: float = 0.0
) -> tuple[Tensor, Tensor]:
    """Scatter flat rows into a pair-track grid.

    Args:
        x: one row per pair and frame, in the order the index was built from; any trailing dims
            (features, boxes, labels) are kept.
        index: from [`build_track_index`][] (or [`TrackIndex.from_mask`][]).
        fill_value: value of the padded entries.

    Returns:
        ``(grid, mask)``; gradients flow from ``grid`` back to ``x``.

    Shape:
        - x: ``(N, *F)``
        - grid: ``(B, T, P, *F)``
        - mask: ``(B, T, P)`` bool, ``True`` where a row lives

    Raises:
        TypeError: ``x`` is not a tensor or ``index`` is not a [`TrackIndex`][].
        ValueError: ``x`` does not have one row per row of the index.

    Examples:
        >>> index = TrackIndex.from_mask(torch.tensor([[[True, False], [False, True]]]))
        >>> grid, mask = flat_to_tracks(torch.tensor([5, 6]), index, fill_value=-1)
        >>> grid.tolist()
        [[[5, -1], [-1, 6]]]
    """
    index = _check_index(index)
    check_tensor(x, "x", (index.num_rows, "..."))
    check_fill(fill_value, "fill_value", x.dtype)
    grid = x.new_full((*index.shape, *x.shape[1:]), fill_value)
    grid = grid.index_put((index.batch, index.time, index.track), x)
    return grid, index.mask


def tracks_to_flat(grid: Tensor, index: TrackIndex) -> Tensor:
    """Gather the valid entries of a pair-track grid back into flat rows, in the index's order.

    Args:
        grid: a pair-track tensor (e.g. a block's output).
        index: the index the flat rows were described by.

    Returns:
        One row per row of the index; gradients flow back to ``grid``.

    Shape:
        - grid: ``(B, T, P, *F)``
        - output: ``(N, *F)``

    Raises:
        TypeError: ``grid`` is not a tensor or ``index`` is not a [`TrackIndex`][].
        ValueError: the grid's first three dims are not the index's ``(B, T, P)``.

    Examples:
        >>> index = TrackIndex.from_mask(torch.tensor([[[True, False], [False, True]]]))
        >>> tracks_to_flat(torch.tensor([[[5, -1], [-1, 6]]]), index)
        tensor([5, 6])
    """
    index = _check_index(index)
    B, T, P = index.shape
    check_tensor(grid, "grid", (B, T, P, "..."))
    return grid[index.batch, index.time, index.track]


@dataclass(frozen=True)
class PairTracks:
    """Person-object pair tracks built from per-frame detections (see [`person_object_pairs`][]).

    Attributes:
        index: flat pairs <-> grid; flat pair ``i`` is ``pairs[i]``.
        pairs: ``(N_pairs, 2)`` rows ``[subject_row, object_row]`` into the detections, in the
            order of the object detections (STTran's ``pair_idx``).
        mask: ``(B, T, P)`` ``True`` where the pair exists.
        subject_boxes: ``(B, T, P, 4)`` xyxy, 0 where padded.
        object_boxes: ``(B, T, P, 4)`` xyxy, 0 where padded.
        union_boxes: ``(B, T, P, 4)`` xyxy, 0 where padded.
        subject_index: ``(B, T, P)`` detection row of the subject, -1 where padded.
        object_index: ``(B, T, P)`` detection row of the object, -1 where padded.
        object_labels: ``(B, T, P)`` class of the object, -1 where padded.

    Examples:
        >>> boxes = torch.tensor([[0.0, 0, 10, 10], [5, 5, 20, 20]])
        >>> tracks = person_object_pairs(
        ...     boxes, torch.tensor([0, 3]), torch.tensor([0, 0]), torch.tensor([8, 8]),
        ...     torch.tensor([0, 1]))
        >>> tracks.pairs.tolist(), tracks.union_boxes[0, 0, 0].tolist()
        ([[0, 1]], [0.0, 0.0, 20.0, 20.0])
    """

    index: TrackIndex
    pairs: Tensor
    mask: Tensor
    subject_boxes: Tensor
    object_boxes: Tensor
    union_boxes: Tensor
    subject_index: Tensor
    object_index: Tensor
    object_labels: Tensor

    @property
    def frame_times(self) -> Tensor:
        """``(B, T)`` real frame numbers of the frame slots (0 where padded)."""
        return self.index.frame_ids


def person_object_pairs(
    boxes: Tensor,
    labels: Tensor,
    video_ids: Tensor,
    frame_ids: Tensor,
    track_ids: Tensor,
    *,
    person_label: int = 0,
    scores: Tensor | None = None,
) -> PairTracks:
    """Pair the person of each frame with every object of that frame, as pair tracks.

    Follows Action Genome's setting: each frame has (at most) one person, the subject of every
    relation; each object detection with a track id forms the pair track of that id. Every frame
    that has some detection gets a frame slot, so a frame with a person but no object, or with
    objects but no person, is an empty frame of the grid (all pairs masked); objects of a frame
    without a person form no pair.

    Args:
        boxes: xyxy boxes of all detections.
        labels: class of each detection; ``person_label`` marks the person.
        video_ids: video of each detection.
        frame_ids: frame number of each detection.
        track_ids: track id of each detection (object identity across frames of a video).
        person_label: the class index of the person.
        scores: detection scores; when given, the highest-scoring person of a frame is the
            subject (SGDet), otherwise a frame with two persons is an error.

    Returns:
        A [`PairTracks`][].

    Shape:
        - boxes: ``(N, 4)``; labels, video_ids, frame_ids, track_ids, scores: ``(N,)``

    Raises:
        TypeError: a tensor has the wrong dtype.
        ValueError: lengths differ, a frame has two persons and no ``scores``, a score is NaN,
            or an object track appears twice in one frame.

    Examples:
        >>> boxes = torch.tensor([[0.0, 0, 10, 10], [5, 5, 20, 20], [30, 0, 40, 5],
        ...                       [1.0, 1, 11, 11], [6, 6, 21, 21]])
        >>> labels = torch.tensor([0, 3, 7, 0, 3])          # person, cup, door, person, cup
        >>> video = torch.tensor([0, 0, 0, 0, 0])
        >>> frame = torch.tensor([0, 0, 0, 5, 5])
        >>> track = torch.tensor([0, 1, 2, 0, 1])
        >>> tracks = person_object_pairs(boxes, labels, video, frame, track)
        >>> tracks.mask.tolist()          # (B, T, P): the cup in both frames, the door in one
        [[[True, True], [True, False]]]
        >>> tracks.union_boxes[0, 1, 0].tolist(), tracks.frame_times.tolist()
        ([1.0, 1.0, 21.0, 21.0], [[0, 5]])
    """
    dims: dict[str, tuple[int, str]] = {}
    check_tensor(boxes, "boxes", ("N", 4), dims=dims, dtype="float")
    if isinstance(person_label, bool) or not isinstance(person_label, int):
        raise TypeError(f"person_label: expected an int, got {person_label!r}")
    check_tensor(labels, "labels", ("N",), dims=dims, dtype="int")
    check_tensor(video_ids, "video_ids", ("N",), dims=dims, dtype="int")
    check_tensor(frame_ids, "frame_ids", ("N",), dims=dims, dtype="int")
    check_tensor(track_ids, "track_ids", ("N",), dims=dims, dtype="int")
    if scores is not None:
        check_tensor(scores, "scores", ("N",), dims=dims, dtype="float")
    n, dev = boxes.shape[0], boxes.device
    rows = torch.arange(n, device=dev)
    # One code per (video, frame) so that frames can be compared and reduced over.
    _, frame_code = torch.unique(
        torch.stack((video_ids.long(), frame_ids.long())), dim=1, return_inverse=True
    )
    num_frames = int(frame_code.max()) + 1 if n > 0 else 0
    is_person = labels == person_label
    if scores is None:
        persons = torch.bincount(frame_code[is_person], minlength=num_frames)
        if bool((persons > 1).any()):
            f = int((persons > 1).nonzero()[0])
            r = int(rows[frame_code == f][0])
            raise ValueError(
                f"labels: video {int(video_ids[r])}, frame {int(frame_ids[r])} has "
                f"{int(persons[f])} detections of person_label={person_label}; pass scores to "
                "keep the highest-scoring one"
            )
        rank = torch.zeros(n, device=dev)
    else:
        rank = scores.detach().float()
        if bool(rank.isnan().any()):  # a NaN never wins a max: the frame would lose its pairs
            r = int(rank.isnan().nonzero()[0])
            raise ValueError(f"scores: expected no NaN, got NaN at row {r}")
    # The subject of a frame: its person with the highest rank (ties: the first row); -inf and
    # +inf scores rank like any other.
    neg_inf = float("-inf")
    person_rank = torch.where(is_person, rank, torch.full_like(rank, neg_inf))
    best = torch.full((num_frames,), neg_inf, device=dev).scatter_reduce(
        0, frame_code, person_rank, reduce="amax"
    )
    is_best = is_person & (person_rank == best[frame_code])
    subject_of_frame = torch.full((num_frames,), n, dtype=torch.long, device=dev).scatter_reduce(
        0, frame_code, torch.where(is_best, rows, n), reduce="amin"
    )
    subject_row = subject_of_frame[frame_code]
    is_pair = ~is_person & (subject_row < n)
    object_rows = rows[is_pair]
    pairs = torch.stack((subject_row[is_pair], object_rows), dim=1)
    index = build_track_index(
        video_ids[object_rows],
        frame_ids[object_rows],
        track_ids[object_rows],
        frames=(video_ids, frame_ids),
    )
    subject_index, mask = flat_to_tracks(pairs[:, 0], index, fill_value=-1)
    object_index, _ = flat_to_tracks(pairs[:, 1], index, fill_value=-1)
    subject_boxes, _ = flat_to_tracks(boxes[pairs[:, 0]], index)
    object_boxes, _ = flat_to_tracks(boxes[pairs[:, 1]], index)
    union_boxes = box_union(subject_boxes, object_boxes).masked_fill(~mask.unsqueeze(-1), 0.0)
    object_labels, _ = flat_to_tracks(labels[object_rows].long(), index, fill_value=-1)
    return PairTracks(
        index=index,
        pairs=pairs,
        mask=mask,
        subject_boxes=subject_boxes,
        object_boxes=object_boxes,
        union_boxes=union_boxes,
        subject_index=subject_index,
        object_index=object_index,
        object_labels=object_labels,
    )
