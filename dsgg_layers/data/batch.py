"""The batch contract a training or evaluation loop needs, and the trajectory batch.

A loop (the reference assemblies' harness, or yours) needs five things of a batch type, and
[`VideoGraph`][dsgg_layers.data.graph.VideoGraph] (pair tracks, Action Genome) and
[`TrajectoryBatch`][] (object trajectories, VidVRD / VidOR) both provide them:

- ``collate(items)``: a padded batch from a list of items (a ``DataLoader``'s ``collate_fn``);
- ``sizes(items)``: ``(n, 2)`` sizes of the items, for length bucketing
  ([`bucket_batches`][dsgg_layers.batching.bucket_batches]);
- ``batch.to(device, non_blocking=...)``;
- ``batch.mask``: the padding mask, whose [`ValidRows`][dsgg_layers.rows.ValidRows] the loop
  builds once per batch;
- ``batch.targets()``: the ground truth an evaluator's ``update(preds, target)`` takes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor

from dsgg_layers.data.vidvrd import VidVRDVideo

__all__ = ["Batch", "TrajectoryBatch"]


@runtime_checkable
class Batch(Protocol):
    """What a loop needs of a batch type (see the module docstring).

    Examples:
        >>> from dsgg_layers.data import VideoGraph
        >>> isinstance(VideoGraph.empty(["v"], 3, 4, feature_dim=8), Batch)
        True
    """

    @property
    def mask(self) -> Tensor: ...

    @classmethod
    def collate(cls, items: Sequence[Any]) -> Any: ...

    @staticmethod
    def sizes(items: Sequence[Any]) -> Tensor: ...

    def to(self, device: torch.device | str, *, non_blocking: bool = False) -> Any: ...

    def targets(self) -> Any: ...


def _items(items: Sequence[Any]) -> list[tuple[VidVRDVideo, VidVRDVideo]]:
    """``(input, ground truth)`` pairs; a bare video is its own ground truth."""
    out = []
    for i, item in enumerate(items):
        pair = (item, item) if isinstance(item, VidVRDVideo) else tuple(item)
        if len(pair) != 2 or not all(isinstance(v, VidVRDVideo) for v in pair):
            raise TypeError(
                f"items[{i}]: expected a VidVRDVideo or an (input, ground truth) pair of them, "
                f"got {type(item).__name__}"
            )
        out.append(pair)
    return out


@dataclass
class TrajectoryBatch:
    """Padded videos of object trajectories (VidVRD / VidOR; the trajectory benchmark).

    Built by [`collate`][] from [`VidVRDVideo`][dsgg_layers.data.vidvrd.VidVRDVideo] items, or
    ``(input, ground truth)`` pairs of them (the input's boxes may be a tracker's, the ground
    truth's are the annotation's). Classes and predicates become indices into the
    ``objects`` and ``predicates`` vocabularies given to [`collate`][].

    Shape:
        - boxes: ``(B, N, F, 4)`` ``xyxy``; mask: ``(B, N, F)`` bool (a trajectory's frames)
        - features: ``(B, N, F, D)``; labels: ``(B, N)``; size: ``(B, 2)`` ``(width, height)``
        - frames: ``(B,)`` each video's frame count
        - rel_subject, rel_object, rel_predicate, rel_begin, rel_end, rel_mask: ``(B, R)``, the
          ground-truth relation instances (``[begin, end)`` in frames)
        - truth: the ground-truth videos ([`targets`][])

    Examples:
        >>> from dsgg_layers.data import SyntheticVidVRD, SyntheticVidVRDConfig
        >>> from dsgg_layers.data.trajectory import TRAJECTORY_OBJECTS, TRAJECTORY_PREDICATES
        >>> videos = list(SyntheticVidVRD(SyntheticVidVRDConfig(num_videos=2), "train"))
        >>> batch = TrajectoryBatch.collate(videos, objects=TRAJECTORY_OBJECTS,
        ...                                 predicates=TRAJECTORY_PREDICATES)
        >>> batch.boxes.shape[0], batch.mask.dtype, len(batch.targets())
        (2, torch.bool, 2)
        >>> TrajectoryBatch.sizes(videos).shape
        torch.Size([2, 2])
    """

    boxes: Tensor
    mask: Tensor
    features: Tensor
    labels: Tensor
    size: Tensor
    frames: Tensor
    rel_subject: Tensor
    rel_object: Tensor
    rel_predicate: Tensor
    rel_begin: Tensor
    rel_end: Tensor
    rel_mask: Tensor
    truth: list[VidVRDVideo]

    @classmethod
    def collate(
        cls, items: Sequence[Any], *, objects: Sequence[str], predicates: Sequence[str]
    ) -> TrajectoryBatch:
        """Pad ``items`` (videos, or ``(input, ground truth)`` pairs) into one batch.

        Raises:
            TypeError: an item is not a video or a pair of videos.
            ValueError: no items, feature widths differ, or a class or predicate is not in its
                vocabulary (named).
        """
        pairs = _items(items)
        if not pairs:
            raise ValueError("items: expected at least one video, got none")
        obj_index = {c: i for i, c in enumerate(objects)}
        pred_index = {p: i for i, p in enumerate(predicates)}
        B = len(pairs)
        N = max(v.boxes.shape[0] for v, _ in pairs)
        T = max(v.frame_count for v, _ in pairs)
        R = max(max(len(g.predicates) for _, g in pairs), 1)
        D = pairs[0][0].features.shape[-1]
        if any(v.features.shape[-1] != D for v, _ in pairs):
            widths = sorted({int(v.features.shape[-1]) for v, _ in pairs})
            raise ValueError(f"items: the videos' feature widths differ: {widths}")
        out = {
            "boxes": torch.zeros(B, N, T, 4), "mask": torch.zeros(B, N, T, dtype=torch.bool),
            "features": torch.zeros(B, N, T, D), "labels": torch.zeros(B, N, dtype=torch.long),
            "size": torch.zeros(B, 2), "frames": torch.zeros(B, dtype=torch.long),
            **{k: torch.zeros(B, R, dtype=torch.long)
               for k in ("rel_subject", "rel_object", "rel_predicate", "rel_begin", "rel_end")},
            "rel_mask": torch.zeros(B, R, dtype=torch.bool),
        }  # fmt: skip

        def index(table: dict[str, int], name: str, what: str, video: str) -> int:
            if name not in table:
                raise ValueError(f"{what}: {name!r} of video {video!r} is not in the vocabulary")
            return table[name]

        for b, (v, g) in enumerate(pairs):  # padding a list of videos: data preparation
            n, f, r = v.boxes.shape[0], v.frame_count, len(g.predicates)
            out["boxes"][b, :n, :f] = v.boxes
            out["mask"][b, :n, :f] = v.box_mask
            out["features"][b, :n, :f] = v.features
            out["labels"][b, :n] = torch.tensor(
                [index(obj_index, c, "objects", v.video_id) for c in v.categories],
                dtype=torch.long,
            )
            out["size"][b] = torch.tensor([v.width, v.height], dtype=torch.float32)
            out["frames"][b] = f
            out["rel_subject"][b, :r], out["rel_object"][b, :r] = g.subjects, g.objects
            out["rel_predicate"][b, :r] = torch.tensor(
                [index(pred_index, p, "predicates", g.video_id) for p in g.predicates],
                dtype=torch.long,
            )
            out["rel_begin"][b, :r], out["rel_end"][b, :r] = g.begin, g.end
            out["rel_mask"][b, :r] = True
        return cls(**out, truth=[g for _, g in pairs])

    @staticmethod
    def sizes(items: Sequence[Any]) -> Tensor:
        """``(frames, trajectories)`` of each item's input video, ``(n, 2)``, for bucketing."""
        pairs = _items(items)
        return torch.tensor([[v.frame_count, v.boxes.shape[0]] for v, _ in pairs],
                            dtype=torch.long).reshape(-1, 2)  # fmt: skip

    def to(self, device: torch.device | str, *, non_blocking: bool = False) -> TrajectoryBatch:
        """The batch with every tensor on ``device`` (the ground-truth videos stay)."""
        moved = {f.name: getattr(self, f.name).to(device, non_blocking=non_blocking)
                 for f in fields(self) if isinstance(getattr(self, f.name), Tensor)}  # fmt: skip
        return replace(self, **moved)

    def targets(self) -> dict[str, list[dict[str, Any]]]:
        """The ground truth as the VidVRD evaluators take it: ``{video id: relation instances}``
        (``VidVRDVideo.relation_instances``); the videos themselves are ``truth``."""
        return {v.video_id: v.relation_instances() for v in self.truth}
