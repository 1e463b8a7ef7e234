"""A trajectory batch cut into fixed-length segments, with every ordered pair of trajectories.

VidVRD-style relation detectors (VidVRD, RePro, UASAN) predict on short overlapping segments
(30 frames, stride 15: [`segment_video`][dsgg_layers.data.vidvrd.segment_video]) and link the
segment predictions into video-level instances
([`associate_relations`][dsgg_layers.metrics.associate_relations]). [`segment_pairs`][] does the
cutting for a whole padded [`TrajectoryBatch`][dsgg_layers.data.TrajectoryBatch] at once (one
gather, no loop over videos or segments); [`SegmentPairs`][] then gives each ordered pair's
boxes, masks and training labels, and turns per-pair predicate scores back into segment
triplets in VidVRD-helper's JSON form.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from dsgg_layers._checks import check_positive, check_tensor
from dsgg_layers.boxes import box_iou
from dsgg_layers.data.batch import TrajectoryBatch

__all__ = ["SegmentPairs", "pair_geometry", "segment_pairs"]


def pair_geometry(subject: Tensor, object: Tensor) -> Tensor:
    """A pair's layout in its union box: both boxes in the union box's unit frame, their IoU and
    the log of their area ratio (10 values; scale- and translation-free).

    Args:
        subject: ``(..., 4)`` ``xyxy`` boxes.
        object: ``(..., 4)`` ``xyxy`` boxes.

    Returns:
        ``(..., 10)``: ``[subject in union (4), object in union (4), IoU, log(area_s / area_o)]``
        (sides and areas clamped at 1, pixels).

    Raises:
        TypeError, ValueError: not float tensors of matching ``(..., 4)`` shapes.

    Examples:
        >>> s, o = torch.tensor([0.0, 0.0, 10.0, 10.0]), torch.tensor([10.0, 0.0, 20.0, 10.0])
        >>> pair_geometry(s, o).tolist()
        [0.0, 0.0, 0.5, 1.0, 0.5, 0.0, 1.0, 1.0, 0.0, 0.0]
    """
    check_tensor(subject, "subject", ("...", 4), dtype="float")
    check_tensor(object, "object", tuple(subject.shape), dtype="float")
    lo = torch.minimum(subject[..., :2], object[..., :2])
    span = (torch.maximum(subject[..., 2:], object[..., 2:]) - lo).clamp(min=1.0)
    lo, span = torch.cat((lo, lo), -1), torch.cat((span, span), -1)
    iou = box_iou(subject.unsqueeze(-2), object.unsqueeze(-2)).squeeze(-1)

    def area(b: Tensor) -> Tensor:
        return ((b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])).clamp(min=1.0)

    ratio = (area(subject) / area(object)).log()
    return torch.cat(((subject - lo) / span, (object - lo) / span, iou, ratio[..., None]), -1)


@dataclass(frozen=True)
class SegmentPairs:
    """A [`TrajectoryBatch`][dsgg_layers.data.TrajectoryBatch] cut into segments, with every
    ordered pair ``(subject, object)`` of distinct trajectory slots (built by
    [`segment_pairs`][]).

    Shape:
        - starts, segment_mask: ``(B, S)``: each segment's first frame; whether it exists
          (fits in its video)
        - boxes: ``(B, S, N, L, 4)`` ``xyxy``; mask: ``(B, S, N, L)`` (a trajectory's frames
          in the segment, ``False`` in a segment that does not exist); features:
          ``(B, S, N, L, D)``
        - subject, object: ``(P,)`` slot indices, ``P = N (N - 1)``
        - derived: ``subject_mask`` / ``object_mask`` / ``pair_mask`` ``(B, S, P, L)``,
          ``subject_boxes`` / ``object_boxes`` ``(B, S, P, L, 4)``, ``pair_valid``
          ``(B, S, P)`` (subject and object share at least two frames: a motion needs two),
          ``trajectory_valid`` ``(B, S, N)``

    Examples:
        >>> from dsgg_layers.data import SyntheticVidVRD, SyntheticVidVRDConfig
        >>> from dsgg_layers.data.trajectory import TRAJECTORY_OBJECTS, TRAJECTORY_PREDICATES
        >>> videos = list(SyntheticVidVRD(SyntheticVidVRDConfig(num_videos=1), "train"))
        >>> batch = TrajectoryBatch.collate(videos, objects=TRAJECTORY_OBJECTS,
        ...                                 predicates=TRAJECTORY_PREDICATES)
        >>> seg = segment_pairs(batch)
        >>> seg.pair_mask.shape == seg.subject_mask.shape, seg.union_geometry().shape[-1]
        (True, 10)
    """

    starts: Tensor
    segment_mask: Tensor
    length: int
    boxes: Tensor
    mask: Tensor
    features: Tensor
    subject: Tensor
    object: Tensor

    @property
    def subject_mask(self) -> Tensor:
        return self.mask[:, :, self.subject]

    @property
    def object_mask(self) -> Tensor:
        return self.mask[:, :, self.object]

    @property
    def pair_mask(self) -> Tensor:
        """``(B, S, P, L)``: the frames where subject and object are both present."""
        return self.subject_mask & self.object_mask

    @property
    def subject_boxes(self) -> Tensor:
        return self.boxes[:, :, self.subject]

    @property
    def object_boxes(self) -> Tensor:
        return self.boxes[:, :, self.object]

    @property
    def pair_valid(self) -> Tensor:
        """``(B, S, P)``: pairs sharing at least two frames of the segment."""
        return self.pair_mask.sum(-1) >= 2

    @property
    def trajectory_valid(self) -> Tensor:
        """``(B, S, N)``: trajectories present in the segment."""
        return self.mask.any(-1)

    def union_geometry(self) -> Tensor:
        """``(B, S, P, L, 10)``: [`pair_geometry`][] frame by frame, 0 where the pair is not
        both present."""
        geo = pair_geometry(self.subject_boxes, self.object_boxes)
        return geo.masked_fill(~self.pair_mask[..., None], 0.0)

    def labels(self, batch: TrajectoryBatch, num_predicates: int) -> Tensor:
        """``(B, S, P, K)`` bool: the predicates a pair holds for at least half a segment
        (the ground-truth instances of ``batch``, an instance's ``[begin, end)`` against the
        segment's frames); only for valid pairs."""
        check_positive(num_predicates, "num_predicates")
        B, S, P = self.pair_valid.shape
        dev = self.starts.device
        N = self.mask.shape[2]
        pair_of = torch.full((N, N), -1, dtype=torch.long, device=dev)
        pair_of[self.subject, self.object] = torch.arange(P, device=dev)
        start = self.starts[:, :, None]  # (B, S, 1)
        overlap = (torch.minimum(batch.rel_end[:, None], start + self.length)
                   - torch.maximum(batch.rel_begin[:, None], start))  # (B, S, R)  # fmt: skip
        hold = (overlap >= self.length // 2) & batch.rel_mask[:, None]
        # (b, s, pair, predicate) of each held instance, as flat indices: no host sync
        pair = pair_of[batch.rel_subject, batch.rel_object]  # (B, R)
        out = torch.zeros(B * S * P * num_predicates, dtype=torch.bool, device=dev)
        b = torch.arange(B, device=dev)[:, None, None]
        s = torch.arange(S, device=dev)[None, :, None]
        flat = ((b * S + s) * P + pair[:, None]) * num_predicates + batch.rel_predicate[:, None]
        flat = torch.where(hold & (pair[:, None] >= 0), flat, out.numel())  # dropped
        out = torch.cat((out, out.new_zeros(1))).index_fill(0, flat.flatten(), True)[:-1]
        return out.view(B, S, P, num_predicates) & self.pair_valid[..., None]

    def segment_relations(
        self,
        scores: Tensor,
        predicates: Sequence[str],
        object_labels: Tensor,
        object_scores: Tensor,
        objects: Sequence[str],
        *,
        top: int = 3,
    ) -> list[dict[tuple[int, int], list[dict[str, Any]]]]:
        """Per-pair predicate scores -> each video's segment triplets in VidVRD-helper's form
        (``{(start, end): [relation, ...]}``, what
        [`associate_relations`][dsgg_layers.metrics.associate_relations] takes).

        Every valid pair of every existing segment contributes its ``top`` predicates; a
        triplet's score is the product of the predicate's and both classes' scores (UASAN's
        code). A trajectory's part spans its first to its last present frame of the segment
        (tracks with gaps need their missing boxes interpolated first: the JSON form wants a
        box for every frame of a duration).

        Args:
            scores: ``(B, S, P, K)`` predicate scores.
            predicates: the ``K`` predicate names.
            object_labels: ``(B, S, N)`` class indices into ``objects``.
            object_scores: ``(B, S, N)`` class scores.
            objects: the class names.
            top: predicates kept a pair.

        Raises:
            TypeError, ValueError: shapes disagree with the segments (named).
        """
        B, S, P = self.pair_valid.shape
        check_tensor(scores, "scores", (B, S, P, len(predicates)), dtype="float")
        check_tensor(object_labels, "object_labels", tuple(self.mask.shape[:3]))
        check_tensor(object_scores, "object_scores", tuple(self.mask.shape[:3]), dtype="float")
        check_positive(top, "top")
        pv, pc = scores.topk(min(top, scores.shape[-1]), -1)  # (B, S, P, k)
        i, j = self.subject, self.object
        score = pv * object_scores[:, :, i, None] * object_scores[:, :, j, None]
        keep = (self.pair_valid & self.segment_mask[..., None])[..., None].expand_as(pv)
        # the first and last present frame of each trajectory in each segment
        frames = torch.arange(self.length, device=self.mask.device)
        first = torch.where(self.mask, frames, self.length).amin(-1)  # (B, S, N)
        last = torch.where(self.mask, frames, -1).amax(-1) + 1
        starts, first, last = self.starts.tolist(), first.tolist(), last.tolist()
        labels, boxes = object_labels.tolist(), self.boxes
        out: list[dict[tuple[int, int], list[dict[str, Any]]]] = [{} for _ in range(B)]
        # building the helper's JSON (Python lists): post-processing, not the forward pass
        for b, s, p, c in keep.nonzero().tolist():
            st, rel = starts[b][s], {}
            n_s, n_o = int(i[p]), int(j[p])
            rel["triplet"] = [objects[labels[b][s][n_s]], predicates[int(pc[b, s, p, c])],
                              objects[labels[b][s][n_o]]]  # fmt: skip
            rel["score"] = float(score[b, s, p, c])
            for key, n in (("sub", n_s), ("obj", n_o)):
                a, e = first[b][s][n], last[b][s][n]
                rel[f"{key}_duration"] = [st + a, st + e]
                rel[f"{key}_traj"] = boxes[b, s, n, a:e].tolist()
            out[b].setdefault((st, st + self.length), []).append(rel)
        return out


def segment_pairs(
    batch: TrajectoryBatch, length: int = 30, stride: int = 15, *, cover_tail: bool = False
) -> SegmentPairs:
    """Cut every video of ``batch`` into segments ``[s, s + length)``, ``s = 0, stride, ...``
    (VidVRD-helper's ``segment_video`` over each video's frames; padded to the longest video's
    segment count), and pair every two distinct trajectory slots.

    Args:
        batch: the padded trajectories.
        length: frames a segment (30).
        stride: frames between segment starts (15).
        cover_tail: also a segment ending at each video's last frame when the regular ones leave
            frames uncovered (``segment_video``'s option; not the helper's behaviour).

    Returns:
        The [`SegmentPairs`][].

    Raises:
        TypeError, ValueError: ``length`` or ``stride`` not a positive int.

    Examples:
        >>> from dsgg_layers.data import SyntheticVidVRD, SyntheticVidVRDConfig
        >>> from dsgg_layers.data.trajectory import TRAJECTORY_OBJECTS, TRAJECTORY_PREDICATES
        >>> videos = list(SyntheticVidVRD(SyntheticVidVRDConfig(num_videos=2), "train"))
        >>> batch = TrajectoryBatch.collate(videos, objects=TRAJECTORY_OBJECTS,
        ...                                 predicates=TRAJECTORY_PREDICATES)
        >>> seg = segment_pairs(batch)
        >>> N = batch.mask.shape[1]
        >>> seg.boxes.shape[2:] == (N, 30, 4), seg.pair_valid.shape[-1] == N * (N - 1)
        (True, True)
        >>> seg.labels(batch, len(TRAJECTORY_PREDICATES)).dtype
        torch.bool
    """
    check_positive(length, "length")
    check_positive(stride, "stride")
    T = batch.mask.shape[-1]
    dev = batch.mask.device
    starts = torch.arange(0, max(T - length + 1, 1), stride, device=dev)
    starts = starts.expand(len(batch.frames), -1)
    ok = starts + length <= batch.frames[:, None]
    if cover_tail:
        last = (starts + length).masked_fill(~ok, 0).amax(-1)  # the helper's last segment end
        tail = (batch.frames - length).clamp(min=0)
        starts = torch.cat((starts, tail[:, None]), 1)
        ok = torch.cat((ok, ((last < batch.frames) & (batch.frames >= length))[:, None]), 1)
    index = (starts[..., None] + torch.arange(length, device=dev)).clamp(max=T - 1)
    S = index.shape[1]

    def cut(x: Tensor) -> Tensor:  # (B, N, T, ...) -> (B, S, N, L, ...)
        idx = index.flatten(1)[:, None, :]
        idx = idx.view(*idx.shape, *([1] * (x.dim() - 3)))
        idx = idx.expand(x.shape[0], x.shape[1], -1, *x.shape[3:])
        return x.gather(2, idx).unflatten(2, (S, length)).transpose(1, 2)

    N = batch.mask.shape[1]
    i, j = (~torch.eye(N, dtype=torch.bool, device=dev)).nonzero(as_tuple=True)
    mask = cut(batch.mask) & ok[:, :, None, None]
    return SegmentPairs(starts, ok, length, cut(batch.boxes), mask, cut(batch.features), i, j)
