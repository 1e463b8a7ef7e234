"""``VideoGraph``: a batch of videos' relations as pair tracks, the unit the data side yields.

A [`VideoGraph`][] holds everything a DSGG model needs about a batch of videos in the
pair-track layout of the library (``(B, T, P, ...)`` + bool ``mask``, see the "Pair-track
layout" docs page): subject and object boxes,
object classes, the 26 Action Genome predicate labels of every pair in every frame, optional
per-box and union-region features, detector scores, and the real frame numbers. The Action Genome
loader and the synthetic benchmark both produce it; [`VideoGraph.collate`][] pads many videos
into one batch and indexing (``graph[i]``) takes single videos back out, trimmed.

A single video is a ``VideoGraph`` with ``B = 1``: there is one type for both.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from dsgg_layers._checks import check_positive, check_tensor, values_readable
from dsgg_layers.boxes import box_convert, box_union, normalize_boxes
from dsgg_layers.vocab import ACTION_GENOME, PREDICATES, Vocabulary

__all__ = ["VideoGraph", "VideoGraphDataset", "with_union_features"]

NUM_PREDICATES = len(PREDICATES)

# Value of padded entries, by field; fields not listed pad with 0.
_FILL = {
    "object_labels": -1,
    "subject_labels": -1,
    "mask": False,
    "frame_mask": False,
    "relations": False,
}
# Fields laid out (B, T, P, ...).
_PAIR_FIELDS = (
    "mask",
    "subject_boxes",
    "object_boxes",
    "object_labels",
    "subject_labels",
    "relations",
    "subject_scores",
    "object_scores",
    "subject_features",
    "object_features",
    "union_features",
)


@dataclass(frozen=True)
class VideoGraph:
    """A batch of videos' pairs, boxes, labels and features as pair tracks.

    Boxes are ``xyxy`` in pixels of the video's frames (``image_size``). ``relations[b, t, p]``
    is the multi-hot predicate vector of pair ``p`` in frame ``t`` in the order of
    ``vocabulary.predicates``: Action Genome's 26 (attention, spatial, contacting) by default,
    any single-group vocabulary for VidVRD-style data
    ([`single_group`][dsgg_layers.vocab.Vocabulary.single_group]). The subject of every pair is the
    person unless ``subject_labels`` says otherwise.

    **Extra fields.** ``pair_extras`` (``(B, T, P, ...)`` tensors) and ``frame_extras``
    (``(B, T, ...)``) carry whatever else a model needs (track ids, depth, a detector's
    embeddings): they pad with 0 (``False``), collate, move and split like the built-in fields.

    **Frame times.** ``frame_times`` holds the real frame numbers of the frame slots; it is what
    [`TrackIndex`][dsgg_layers.layout.TrackIndex] calls ``frame_ids`` (the frame number of each flat
    row, kept per slot), and what [`motion_attributes`][dsgg_layers.motion.motion_attributes] takes
    as ``frame_times``.

    When the pairs are *detections* (SGDet), ``gt`` holds the ground-truth pairs of the same
    frames (same ``B`` and ``T``, its own ``P``), and ``relations`` holds the labels assigned to
    the detected pairs for training; otherwise ``gt`` is ``None`` and the pairs are the ground
    truth.

    Attributes:
        video_ids: ``B`` names, e.g. ``"001YG.mp4"``.
        frame_times: ``(B, T)`` real frame numbers of the key frames, 0 where padded.
        frame_mask: ``(B, T)`` ``True`` where the frame exists (a prefix of each row).
        image_size: ``(B, 2)`` ``(width, height)`` of each video's frames.
        mask: ``(B, T, P)`` ``True`` where the pair exists in that frame.
        subject_boxes: ``(B, T, P, 4)`` ``xyxy`` person boxes.
        object_boxes: ``(B, T, P, 4)`` ``xyxy`` object boxes.
        object_labels: ``(B, T, P)`` object classes (indices into
            [`OBJECT_CLASSES`][dsgg_layers.vocab.OBJECT_CLASSES]), -1 where padded.
        relations: ``(B, T, P, 26)`` bool predicate labels.
        subject_scores: ``(B, T, P)`` detector scores of the subjects, or ``None`` (all 1).
        object_scores: ``(B, T, P)`` detector scores of the objects, or ``None`` (all 1).
        subject_features: ``(B, T, P, F)`` per-box features of the subject, or ``None``.
        object_features: ``(B, T, P, F)`` per-box features of the object, or ``None``.
        union_features: ``(B, T, P, U)`` features of the union region, or ``None``.
        gt: the ground-truth pairs when these pairs are detections, else ``None``.
        subject_labels: ``(B, T, P)`` subject classes (indices into
            ``vocabulary.subject_classes``), -1 where padded; ``None``: the person.
        vocabulary: the class names ([`ACTION_GENOME`][dsgg_layers.vocab.ACTION_GENOME] by default).
        pair_extras: more ``(B, T, P, ...)`` fields, by name.
        frame_extras: more ``(B, T, ...)`` fields, by name.

    Raises:
        TypeError, ValueError: at construction, a field has the wrong dtype or a shape that
            disagrees with the others (the message names the field).

    Examples:
        >>> g = VideoGraph.empty(["a.mp4", "b.mp4"], num_frames=3, num_pairs=2)
        >>> g.mask.shape, g.relations.shape, len(g)
        (torch.Size([2, 3, 2]), torch.Size([2, 3, 2, 26]), 2)
        >>> VideoGraph.collate([g, g]).mask.shape
        torch.Size([4, 3, 2])
        >>> g[0].mask.shape          # one video, trimmed: this one has no pair at all
        torch.Size([1, 3, 0])
    """

    video_ids: tuple[str, ...]
    frame_times: Tensor
    frame_mask: Tensor
    image_size: Tensor
    mask: Tensor
    subject_boxes: Tensor
    object_boxes: Tensor
    object_labels: Tensor
    relations: Tensor
    subject_scores: Tensor | None = None
    object_scores: Tensor | None = None
    subject_features: Tensor | None = None
    object_features: Tensor | None = None
    union_features: Tensor | None = None
    gt: VideoGraph | None = None
    subject_labels: Tensor | None = None
    vocabulary: Vocabulary = ACTION_GENOME
    pair_extras: Mapping[str, Tensor] = field(default_factory=dict)
    frame_extras: Mapping[str, Tensor] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "video_ids", _video_ids(self.video_ids))
        dims: dict[str, tuple[int, str]] = {"B": (len(self.video_ids), "video_ids")}
        check_tensor(self.frame_times, "frame_times", ("B", "T"), dims=dims, dtype="int")
        check_tensor(self.frame_mask, "frame_mask", ("B", "T"), dims=dims, dtype="bool")
        check_tensor(self.image_size, "image_size", ("B", 2), dims=dims, dtype="float")
        check_tensor(self.mask, "mask", ("B", "T", "P"), dims=dims, dtype="bool")
        if values_readable(self.frame_mask, self.mask):  # (no device sync on a GPU)
            fm = self.frame_mask
            if bool((fm[:, 1:] & ~fm[:, :-1]).any()):
                raise ValueError("frame_mask: expected a prefix of each row (the existing frames "
                                 "first, then padding), got a gap")  # fmt: skip
            if bool((self.mask & ~fm[..., None]).any()):
                raise ValueError("mask: a pair on a frame that frame_mask says does not "
                                 "exist (every frame-level block would drop it)")  # fmt: skip
        for name in ("subject_boxes", "object_boxes"):
            check_tensor(getattr(self, name), name, ("B", "T", "P", 4), dims=dims, dtype="float")
        check_tensor(self.object_labels, "object_labels", ("B", "T", "P"), dims=dims, dtype="int")
        if not isinstance(self.vocabulary, Vocabulary):
            raise TypeError(
                f"vocabulary: expected a Vocabulary, got {type(self.vocabulary).__name__}"
            )
        R = self.vocabulary.num_predicates
        check_tensor(self.relations, "relations", ("B", "T", "P", R), dims=dims, dtype="bool")
        if self.subject_labels is not None:
            check_tensor(
                self.subject_labels, "subject_labels", ("B", "T", "P"), dims=dims, dtype="int"
            )
        for extras, what, shape in (
            ("pair_extras", "per-pair", ("B", "T", "P", "...")),
            ("frame_extras", "per-frame", ("B", "T", "...")),
        ):
            value = getattr(self, extras)
            if not isinstance(value, Mapping):
                raise TypeError(f"{extras}: expected a mapping of names to tensors")
            object.__setattr__(self, extras, dict(value))
            for key, x in value.items():
                check_tensor(x, f"{extras}[{key!r}] ({what})", shape, dims=dict(dims))
        for name in ("subject_scores", "object_scores"):
            if getattr(self, name) is not None:
                check_tensor(getattr(self, name), name, ("B", "T", "P"), dims=dims, dtype="float")
        for name, width in (
            ("subject_features", "F"),
            ("object_features", "F"),
            ("union_features", "U"),
        ):
            if getattr(self, name) is not None:
                shape = ("B", "T", "P", width)
                check_tensor(getattr(self, name), name, shape, dims=dims, dtype="float")
        if self.gt is not None:
            if not isinstance(self.gt, VideoGraph):
                raise TypeError(f"gt: expected a VideoGraph or None, got {type(self.gt).__name__}")
            if self.gt.vocabulary != self.vocabulary:
                raise ValueError(
                    f"gt: expected the graph's vocabulary ({self.vocabulary.num_predicates} "
                    f"predicates), got one with {self.gt.vocabulary.num_predicates}"
                )
            if self.gt.frame_times.shape != self.frame_times.shape:
                raise ValueError(
                    f"gt: expected the same (B, T) = {tuple(self.frame_times.shape)} as the "
                    f"pairs, got {tuple(self.gt.frame_times.shape)}"
                )

    # ----------------------------------------------------------------------------- construction

    @classmethod
    def empty(
        cls,
        video_ids: Sequence[str],
        num_frames: int,
        num_pairs: int,
        *,
        feature_dim: int | None = None,
        union_dim: int | None = None,
        vocabulary: Vocabulary = ACTION_GENOME,
    ) -> VideoGraph:
        """A graph with every frame present and every pair padded (all zeros / -1 / False).

        Args:
            video_ids: the ``B`` video names.
            num_frames: ``T``.
            num_pairs: ``P``.
            feature_dim: ``F``; allocate subject and object features when given.
            union_dim: ``U``; allocate union features when given.
            vocabulary: the class names (the width of ``relations``).

        Examples:
            >>> VideoGraph.empty(["v"], 2, 1, feature_dim=8).object_features.shape
            torch.Size([1, 2, 1, 8])
        """
        video_ids = _video_ids(video_ids)
        for name, value in (("num_frames", num_frames), ("num_pairs", num_pairs)):
            check_positive(value, name, allow_zero=True)
        for name, value in (("feature_dim", feature_dim), ("union_dim", union_dim)):
            if value is not None:
                check_positive(value, name, allow_zero=True)
        B, T, P = len(video_ids), num_frames, num_pairs
        feats = None if feature_dim is None else torch.zeros(B, T, P, feature_dim)
        return cls(
            video_ids=tuple(video_ids),
            frame_times=torch.arange(T).expand(B, T).clone(),
            frame_mask=torch.ones(B, T, dtype=torch.bool),
            image_size=torch.ones(B, 2),
            mask=torch.zeros(B, T, P, dtype=torch.bool),
            subject_boxes=torch.zeros(B, T, P, 4),
            object_boxes=torch.zeros(B, T, P, 4),
            object_labels=torch.full((B, T, P), -1, dtype=torch.long),
            relations=torch.zeros(B, T, P, vocabulary.num_predicates, dtype=torch.bool),
            subject_features=feats,
            object_features=None if feats is None else feats.clone(),
            union_features=None if union_dim is None else torch.zeros(B, T, P, union_dim),
            vocabulary=vocabulary,
        )

    @classmethod
    def collate(cls, graphs: Sequence[VideoGraph]) -> VideoGraph:
        """Pad several graphs to a common ``(T, P)`` and stack them into one batch.

        Graphs must agree on which optional fields they have and on feature widths.

        Args:
            graphs: the graphs to join, in order.

        Returns:
            One graph with ``B = sum of their B``.

        Raises:
            ValueError: ``graphs`` is empty, or the graphs differ in their optional fields, their
                vocabulary or a feature / extras width.

        Examples:
            >>> a = VideoGraph.empty(["a"], num_frames=2, num_pairs=3)
            >>> b = VideoGraph.empty(["b"], num_frames=5, num_pairs=1)
            >>> g = VideoGraph.collate([a, b])
            >>> g.mask.shape, g.frame_mask.sum(1).tolist()
            (torch.Size([2, 5, 3]), [2, 5])
        """
        graphs = list(graphs)
        if not graphs:
            raise ValueError("graphs: expected at least one VideoGraph, got none")
        for g in graphs:
            if not isinstance(g, VideoGraph):
                raise TypeError(f"graphs: expected VideoGraph items, got {type(g).__name__}")
        if any(g.vocabulary != graphs[0].vocabulary for g in graphs):
            names = sorted({g.vocabulary.name or "unnamed" for g in graphs})
            raise ValueError(f"graphs: expected one vocabulary, got several ({', '.join(names)})")
        T = max(g.frame_times.shape[1] for g in graphs)
        P = max(g.mask.shape[2] for g in graphs)
        values: dict[str, object] = {"video_ids": sum((g.video_ids for g in graphs), ())}
        for f in dataclasses.fields(cls):
            name = f.name
            if name == "video_ids":
                continue
            items = [getattr(g, name) for g in graphs]
            if name == "vocabulary":
                values[name] = items[0]  # one vocabulary: checked above
                continue
            if name in ("pair_extras", "frame_extras"):
                keys = set(items[0])
                if any(set(x) != keys for x in items):
                    raise ValueError(f"graphs: {name} have different keys")
                size = (T, P) if name == "pair_extras" else (T,)
                for k in keys:
                    _check_widths(f"{name}[{k!r}]", [x[k] for x in items], lead=1 + len(size))
                values[name] = {
                    k: torch.cat([_pad(x[k], size, 0) for x in items]) for k in sorted(keys)
                }
                continue
            present = [x is not None for x in items]
            if any(present) and not all(present):
                raise ValueError(f"graphs: {name} is set in some graphs and None in others")
            if all(present) and name != "gt":
                _check_widths(name, items)  # type: ignore[arg-type]
            if not all(present):
                values[name] = None
            elif name == "gt":
                values[name] = cls.collate(items)  # type: ignore[arg-type]
            elif name == "image_size":
                values[name] = torch.cat(items)  # type: ignore[arg-type]
            else:
                size = (T,) if name in ("frame_times", "frame_mask") else (T, P)
                values[name] = torch.cat([_pad(x, size, _FILL.get(name, 0)) for x in items])  # type: ignore[arg-type]
        return cls(**values)  # type: ignore[arg-type]

    # ---------------------------------------------------------------------------------- access

    @staticmethod
    def sizes(videos: Sequence[VideoGraph]) -> Tensor:
        """``(frames, pairs)`` of each video, ``(n, 2)``, for length bucketing (the
        [`Batch`][dsgg_layers.data.batch.Batch] contract)."""
        return torch.tensor([v.mask.shape[1:3] for v in videos], dtype=torch.long).reshape(-1, 2)

    def __len__(self) -> int:
        return len(self.video_ids)

    def __getitem__(self, item: int | slice | Sequence[int] | Tensor) -> VideoGraph:
        """Videos ``item`` of the batch; a single video is trimmed to its own ``T`` and ``P``."""
        if isinstance(item, int):
            if not -len(self) <= item < len(self):
                raise IndexError(f"item: video {item} out of range for a batch of {len(self)}")
            item = item % len(self)
            T = int(self.frame_mask[item].sum())
            valid_tracks = self.mask[item].any(0).nonzero()
            own = self.gt[item] if self.gt is not None else None
            P = int(valid_tracks.max()) + 1 if valid_tracks.numel() else 0
            return self._select([item], T, P, own)
        if isinstance(item, slice):
            idx = list(range(len(self)))[item]
        else:
            if isinstance(item, Tensor) and item.dtype == torch.bool:  # a mask over the videos
                if item.shape != (len(self),):
                    raise IndexError(
                        f"item: expected a bool mask of shape ({len(self)},), got "
                        f"{tuple(item.shape)}"
                    )
                item = item.nonzero().flatten()
            raw = item.tolist() if isinstance(item, Tensor) else list(item)
            if any(isinstance(i, bool) or not isinstance(i, int) for i in raw):
                raise TypeError(f"item: expected int indices, got {raw[:4]}")
            bad = [i for i in raw if not -len(self) <= i < len(self)]
            if bad:
                raise IndexError(f"item: video {bad[0]} out of range for a batch of {len(self)}")
            idx = [i % len(self) for i in raw]
        gt = self.gt._select(idx, None, None, None) if self.gt is not None else None
        return self._select(idx, None, None, gt)

    def _select(
        self, idx: list[int], T: int | None, P: int | None, gt: VideoGraph | None
    ) -> VideoGraph:
        rows = torch.tensor(idx, dtype=torch.long, device=self.mask.device)
        values: dict[str, object] = {"video_ids": tuple(self.video_ids[i] for i in idx), "gt": gt}

        def take(x: Tensor, per_pair: bool) -> Tensor:
            x = x.index_select(0, rows)
            if T is not None:
                x = x[:, :T]
            return x[:, :, :P] if P is not None and per_pair else x

        for f in dataclasses.fields(self):
            name = f.name
            x = getattr(self, name)
            if name in ("video_ids", "gt"):
                continue
            if name == "vocabulary":
                values[name] = x
                continue
            if name in ("pair_extras", "frame_extras"):
                values[name] = {k: take(v, name == "pair_extras") for k, v in x.items()}
                continue
            if x is None:
                values[name] = None
                continue
            x = x.index_select(0, rows)
            if T is not None and name != "image_size":
                x = x[:, :T]
            if P is not None and name in _PAIR_FIELDS:
                x = x[:, :, :P]
            values[name] = x
        return type(self)(**values)  # type: ignore[arg-type]

    def to(self, device: torch.device | str, *, non_blocking: bool = False) -> VideoGraph:
        """This graph with every tensor moved to ``device``."""
        values: dict[str, object] = {}
        for f in dataclasses.fields(self):
            x = getattr(self, f.name)
            if isinstance(x, (Tensor, VideoGraph)):
                x = x.to(device, non_blocking=non_blocking)
            elif f.name in ("pair_extras", "frame_extras"):
                x = {k: v.to(device, non_blocking=non_blocking) for k, v in x.items()}
            values[f.name] = x
        return type(self)(**values)  # type: ignore[arg-type]

    def replace(self, **changes: object) -> VideoGraph:
        """A copy with some fields replaced (validated again)."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    @property
    def device(self) -> torch.device:
        """The device of the tensors."""
        return self.mask.device

    @property
    def ground_truth(self) -> VideoGraph:
        """The ground-truth pairs: ``gt`` when these pairs are detections, else ``self``."""
        return self if self.gt is None else self.gt

    @property
    def num_frames(self) -> int:
        """Number of existing frames over the batch."""
        return int(self.frame_mask.sum())

    @property
    def num_pairs(self) -> int:
        """Number of existing (pair, frame) entries over the batch."""
        return int(self.mask.sum())

    def normalized_boxes(self) -> tuple[Tensor, Tensor]:
        """Subject and object boxes divided by each video's image size, in ``[0, 1]``.

        Examples:
            >>> g = VideoGraph.empty(["v"], 2, 1)
            >>> [b.shape for b in g.normalized_boxes()]
            [torch.Size([1, 2, 1, 4]), torch.Size([1, 2, 1, 4])]
        """
        return (
            normalize_boxes(self.subject_boxes, self.image_size),
            normalize_boxes(self.object_boxes, self.image_size),
        )

    def union_boxes(self, *, normalized: bool = False) -> Tensor:
        """The union box of every pair (``xyxy``; in ``[0, 1]`` when ``normalized``); 0 at
        padded pairs.

        Examples:
            >>> VideoGraph.empty(["v"], 2, 1).union_boxes(normalized=True).shape
            torch.Size([1, 2, 1, 4])
        """
        subject, obj = self.normalized_boxes() if normalized else (
            self.subject_boxes, self.object_boxes)  # fmt: skip
        return box_union(subject, obj).masked_fill(~self.mask.unsqueeze(-1), 0.0)

    def frame_targets(self, frames: Tensor | None = None) -> dict[str, Tensor]:
        """The annotated pairs of some frames as a DETR-style matcher and loss take them
        ([`PairHungarianMatcher`][dsgg_layers.matching.PairHungarianMatcher]): one row a frame.

        Args:
            frames: ``(N, 2)`` ``(video, frame)`` indices (default: every existing frame,
                ``frame_mask.nonzero()``).

        Returns:
            ``object_labels`` ``(N, P)`` (padding 0), ``predicates`` ``(N, P, K)``,
            ``subject_boxes`` / ``object_boxes`` ``(N, P, 4)`` ``cxcywh`` in ``[0, 1]``, and
            ``mask`` ``(N, P)``: the pairs that exist and hold a predicate.

        Examples:
            >>> g = VideoGraph.empty(["v"], 2, 3)
            >>> tgt = g.frame_targets(torch.tensor([[0, 1]]))
            >>> tgt["subject_boxes"].shape, tgt["mask"].shape
            (torch.Size([1, 3, 4]), torch.Size([1, 3]))
        """
        if frames is None:
            frames = self.frame_mask.nonzero()
        check_tensor(frames, "frames", ("N", 2), dtype="int")
        b, t = frames[:, 0], frames[:, 1]
        subject, obj = (box_convert(x[b, t], "xyxy", "cxcywh") for x in self.normalized_boxes())
        return {
            "object_labels": self.object_labels[b, t].clamp(min=0),
            "predicates": self.relations[b, t], "subject_boxes": subject, "object_boxes": obj,
            "mask": self.mask[b, t] & self.relations[b, t].any(-1),
        }  # fmt: skip

    def targets(self) -> dict[str, Tensor]:
        """The ground truth as the keyword arguments of the Action Genome evaluator.

        Examples:
            >>> sorted(VideoGraph.empty(["v"], 1, 1).targets())
            ['mask', 'object_boxes', 'object_labels', 'relations', 'subject_boxes']
        """
        g = self.ground_truth
        out = {
            "subject_boxes": g.subject_boxes,
            "object_boxes": g.object_boxes,
            "object_labels": g.object_labels,
            "relations": g.relations,
            "mask": g.mask,
        }
        if g.subject_labels is not None:  # else the evaluator's person_label is the subject
            out["subject_labels"] = g.subject_labels
        return out

    def state_dict(self) -> dict[str, object]:
        """Plain tensors and strings (for ``torch.save``; loads with ``weights_only=True``)."""
        out: dict[str, object] = {}
        for f in dataclasses.fields(self):
            x = getattr(self, f.name)
            out[f.name] = x.state_dict() if isinstance(x, VideoGraph) else x
        out["video_ids"] = list(self.video_ids)
        out["vocabulary"] = self.vocabulary.to_dict()
        out["pair_extras"], out["frame_extras"] = dict(self.pair_extras), dict(self.frame_extras)
        return out

    @classmethod
    def from_state_dict(cls, state: dict[str, object]) -> VideoGraph:
        """Inverse of [`state_dict`][]."""
        values = dict(state)
        if isinstance(values.get("vocabulary"), dict):
            values["vocabulary"] = Vocabulary.from_dict(values["vocabulary"])  # type: ignore[arg-type]
        if values.get("gt") is not None:
            values["gt"] = cls.from_state_dict(values["gt"])  # type: ignore[arg-type]
        return cls(**values)  # type: ignore[arg-type]


class VideoGraphDataset(torch.utils.data.Dataset):
    """A map-style dataset of single-video [`VideoGraph`][] items held in ``videos``.

    The base of the library's datasets
    ([`ActionGenome`][dsgg_layers.data.action_genome.ActionGenome],
    [`SyntheticActionGenome`][dsgg_layers.data.synthetic.SyntheticActionGenome]); wrap your own list
    of graphs with it.

    Args:
        videos: one graph per video.

    Examples:
        >>> from dsgg_layers.data import SyntheticActionGenome, SyntheticConfig
        >>> data = SyntheticActionGenome(SyntheticConfig(num_videos=3), split="train")
        >>> mine = VideoGraphDataset(list(data)[:2])
        >>> len(mine), mine.batch().mask.shape[0]
        (2, 2)
    """

    videos: list[VideoGraph]

    def __init__(self, videos: Sequence[VideoGraph] = ()) -> None:
        self.videos = list(videos)

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, index: int) -> VideoGraph:
        return self.videos[index]

    def __iter__(self) -> Iterator[VideoGraph]:
        return iter(self.videos)

    def batch(self) -> VideoGraph:
        """All videos collated into one padded batch."""
        return VideoGraph.collate(self.videos)


def with_union_features(videos: Sequence[VideoGraph], folder: str | Path) -> list[VideoGraph]:
    """The videos with their union features replaced by precomputed ones, e.g. the CLIP image
    embeddings of the union crops that TR²'s public code classifies (``folder/<video_id>.pt``:
    a ``(T, P, E)`` float tensor in the graph's pair order, one file a ``B = 1`` video).

    Args:
        videos: ``B = 1`` graphs.
        folder: where the ``<video_id>.pt`` files are.

    Returns:
        New graphs (the others' fields shared) with ``union_features (1, T, P, E)``.

    Raises:
        FileNotFoundError: a video has no ``<video_id>.pt`` in ``folder``.
        ValueError: a file does not hold a ``(T, P, E)`` tensor of the video's ``(T, P)``.

    Examples:
        >>> import tempfile
        >>> g = VideoGraph.empty(["v0"], num_frames=1, num_pairs=2)
        >>> with tempfile.TemporaryDirectory() as d:
        ...     torch.save(torch.ones(1, 2, 3), f"{d}/v0.pt")
        ...     with_union_features([g], d)[0].union_features.shape
        torch.Size([1, 1, 2, 3])
    """
    out = []
    for v in videos:
        path = Path(folder) / f"{v.video_ids[0]}.pt"
        if not path.is_file():
            raise FileNotFoundError(f"folder: no {path.name} in {folder}")
        try:
            emb = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # a junk or truncated file: name it
            raise ValueError(f"folder: {path.name}: not a readable tensor file ({e})") from e
        if not isinstance(emb, Tensor) or emb.dim() != 3 or emb.shape[:2] != v.mask.shape[1:]:
            shape = tuple(emb.shape) if isinstance(emb, Tensor) else type(emb).__name__
            raise ValueError(
                f"folder: {path.name}: expected a (T, P, E) tensor with (T, P) = "
                f"{tuple(v.mask.shape[1:])}, got {shape}"
            )
        out.append(dataclasses.replace(v, union_features=emb.float().unsqueeze(0)))
    return out


def _video_ids(video_ids: object) -> tuple[str, ...]:
    """``video_ids`` as a tuple of str; one str is refused (it would be one video a letter)."""
    if isinstance(video_ids, str) or not isinstance(video_ids, Sequence):
        raise TypeError(f"video_ids: expected a sequence of str (one per video), got {video_ids!r}")
    ids = tuple(video_ids)
    if not all(isinstance(v, str) for v in ids):
        raise TypeError(f"video_ids: expected str items, got {ids[:4]!r}")
    return ids


def _check_widths(name: str, items: Sequence[Tensor], lead: int = 3) -> None:
    """Raise ``ValueError`` naming the field unless the items agree past their padded dims."""
    widths = {tuple(x.shape[lead:]) for x in items}
    if len(widths) > 1:
        raise ValueError(f"graphs: {name} have different trailing shapes {sorted(widths)}")


def _pad(x: Tensor, size: tuple[int, ...], fill: float | int | bool) -> Tensor:
    """Pad dims ``1 .. len(size)`` of ``x`` at the end up to ``size`` with ``fill``."""
    if tuple(x.shape[1 : 1 + len(size)]) == size:
        return x
    out = x.new_full((x.shape[0], *size, *x.shape[1 + len(size) :]), fill)
    out[(slice(None), *(slice(0, n) for n in x.shape[1 : 1 + len(size)]))] = x
    return out
