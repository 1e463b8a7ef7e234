"""Video visual relation detection and tagging (VidVRD / VidOR), as VidVRD-helper scores them.

The protocol of ``evaluation/visual_relation_detection.py`` of ``xdshang/VidVRD-helper``, which
the VidVRD and VidOR papers' tables (RePro, UASAN, ...) come from:

**Relation instances.** A ground-truth or predicted instance is a ``triplet`` (subject class,
predicate, object class), a ``duration`` ``[begin, end)`` in frames, and the subject's and the
object's trajectories: one ``xyxy`` box per frame of the duration (``sub_traj``, ``obj_traj``).
Predictions also have a ``score``. These are the keys of the helper's JSON files.

**vIoU** of two trajectories ([`volume_iou`][]): the summed intersection areas over the frames
both durations cover, divided by the two *whole* trajectory volumes minus that overlap, so a
prediction that is too long or too short is penalised. Areas use the "+1 pixel" convention
(``(x2 - x1 + 1) * (y2 - y1 + 1)``) unless ``legacy=False``.

**Detection.** Per video, predictions in descending score order (ties keep the given order) are
matched greedily: a prediction takes the not-yet-matched ground-truth instance *of the same
triplet* with the highest ``min(vIoU_subject, vIoU_object)``, if that is ``>= viou_threshold``
(0.5); on ties the first such ground truth. **AP** is the VOC all-point average precision of
that ranking (precision envelope, summed over the recall steps), **mAP** its mean over the
videos that have ground truth (a video with ground truth and no prediction counts 0).
**R@K** keeps each video's top K predictions and divides the *total* number of hits by the total
number of ground-truth instances (a dataset-level ratio, not a mean over videos).

**Tagging** ignores trajectories: each video's predicted triplets are deduplicated in score order
and **P@K** is the share of the first ``min(K, unique predicted triplets)`` that occur in the
video's ground truth, averaged over the videos with ground truth (0 for a video with no
prediction).

**Open vocabulary** (RePro, UASAN): the ``novel`` protocol scores only ground-truth instances
whose predicate is novel, with the classifier restricted to the novel predicates; ``predicates=``
keeps exactly those ground-truth instances and predictions (a video left without ground truth is
skipped, as any video without ground truth is). The ``all`` protocol is the default (no filter).

Scores are computed in float64 (the helper accumulates in float32: differences in the 7th digit).
"""

from __future__ import annotations

import itertools
import math
import numbers
import warnings
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from dsgg_layers._checks import check_positive
from dsgg_layers.metrics.base import SummableMetric

__all__ = ["OpenVocabularyEvaluator", "VidVRDEvaluator", "vidvrd_metrics", "volume_iou"]

Relation = Mapping[str, Any]


def volume_iou(
    boxes1: Tensor, mask1: Tensor, boxes2: Tensor, mask2: Tensor, *, legacy: bool = True
) -> Tensor:
    """vIoU of trajectories on a shared frame axis, elementwise over the leading dims.

    ``overlap = sum_f [mask1 & mask2] area(box1_f ∩ box2_f)``;
    ``vIoU = overlap / (sum_f [mask1] area(box1_f) + sum_f [mask2] area(box2_f) - overlap)``,
    0 where both trajectories are empty. Boxes where a mask is False are never read; an
    inverted box (``x2 < x1`` or ``y2 < y1``) has area 0, so the vIoU stays in ``[0, 1]``.

    Args:
        boxes1: ``xyxy`` boxes, one per frame.
        mask1: bool, ``True`` on the frames of the first trajectory's duration.
        boxes2: the second trajectory's boxes.
        mask2: the second trajectory's frames.
        legacy: areas in the "+1 pixel" convention of VidVRD-helper (default) or plain.

    Shape:
        - boxes1, boxes2: ``(..., F, 4)`` (broadcastable to each other)
        - mask1, mask2: ``(..., F)``
        - output: ``(...)`` float

    Raises:
        TypeError, ValueError: a box tensor is not floating point with a last dim of 4, or a
            mask is not bool with the boxes' leading shape.

    Examples:
        >>> a = torch.tensor([[0.0, 0, 9, 9], [0, 0, 9, 9]])     # 2 frames of 10 x 10 (+1 areas)
        >>> b = torch.tensor([[0.0, 0, 9, 9], [0, 0, 0, 0]])     # the first frame only
        >>> float(volume_iou(a, torch.tensor([True, True]), b, torch.tensor([True, False])))
        0.5
    """
    for name, boxes, mask in (("1", boxes1, mask1), ("2", boxes2, mask2)):
        ok = isinstance(boxes, Tensor) and boxes.is_floating_point() and boxes.shape[-1:] == (4,)
        if not ok:
            got = f"{boxes.dtype} {tuple(boxes.shape)}" if isinstance(boxes, Tensor) else boxes
            raise TypeError(f"boxes{name}: expected a float tensor (..., F, 4), got {got!r}")
        if not isinstance(mask, Tensor) or mask.dtype != torch.bool:
            raise TypeError(f"mask{name}: expected a bool tensor, got {type(mask).__name__}")
        if mask.shape != boxes.shape[:-1]:
            raise ValueError(
                f"mask{name}: expected the boxes' leading shape {tuple(boxes.shape[:-1])}, "
                f"got {tuple(mask.shape)}"
            )
    one = 1.0 if legacy else 0.0
    work = torch.promote_types(torch.promote_types(boxes1.dtype, boxes2.dtype), torch.float32)
    b1 = torch.where(mask1[..., None], boxes1.to(work), 0.0)  # padding is never read
    b2 = torch.where(mask2[..., None], boxes2.to(work), 0.0)  # (areas overflow float16)

    def area(b: Tensor) -> Tensor:  # an inverted box (x2 < x1) is empty, not negative
        wh = (b[..., 2:] - b[..., :2] + one).clamp(min=0)
        return wh[..., 0] * wh[..., 1]

    lt, rb = torch.maximum(b1[..., :2], b2[..., :2]), torch.minimum(b1[..., 2:], b2[..., 2:])
    wh = (rb - lt + one).clamp(min=0)
    overlap = (wh[..., 0] * wh[..., 1] * (mask1 & mask2)).sum(-1)
    v1 = (area(b1) * mask1).sum(-1)
    v2 = (area(b2) * mask2).sum(-1)
    union = v1 + v2 - overlap
    return torch.where(union > 0, overlap / union.clamp(min=torch.finfo(union.dtype).tiny), 0.0)


# ------------------------------------------------------------------------------- conversion


def _check_relation(r: Any, video: str, i: int, what: str, scored: bool) -> None:
    where = f"{what}[{video!r}][{i}]"
    if not isinstance(r, Mapping):
        raise TypeError(f"{where}: expected a dict, got {type(r).__name__}")
    keys = ("triplet", "duration", "sub_traj", "obj_traj") + (("score",) if scored else ())
    missing = [k for k in keys if k not in r]
    if missing:
        raise ValueError(f"{where}: missing {missing} (has {sorted(r)})")
    triplet = r["triplet"]
    if isinstance(triplet, str) or not isinstance(triplet, Sequence) or len(triplet) != 3:
        raise ValueError(f"{where}['triplet']: expected 3 names, got {triplet!r}")
    duration = r["duration"]
    ok = (
        isinstance(duration, Sequence)
        and len(duration) == 2
        and all(isinstance(x, numbers.Integral) and not isinstance(x, bool) for x in duration)
    )
    if not ok or not 0 <= duration[0] < duration[1]:
        raise ValueError(f"{where}['duration']: expected ints 0 <= begin < end, got {duration!r}")
    begin, end = int(duration[0]), int(duration[1])
    for key in ("sub_traj", "obj_traj"):
        if len(r[key]) != end - begin:
            raise ValueError(
                f"{where}[{key!r}]: expected one box per frame of the duration "
                f"({end - begin}), got {len(r[key])}"
            )
    if scored:
        try:
            score = float(r["score"])
        except (TypeError, ValueError):
            score = math.nan
        if isinstance(r["score"], bool) or not math.isfinite(score):
            raise ValueError(f"{where}['score']: expected a finite number, got {r['score']!r}")


def _flat(relations: Sequence[Relation], where: Sequence[str]) -> dict[str, Tensor]:
    """The relations' trajectories as flat ``(L, 4)`` box rows (subject, object), with each
    relation's first row, begin frame and length (``where[i]`` names relation ``i`` in errors)."""
    begin = torch.tensor([r["duration"][0] for r in relations], dtype=torch.long)
    length = torch.tensor([r["duration"][1] - r["duration"][0] for r in relations],
                          dtype=torch.long)  # fmt: skip
    out = {"begin": begin, "length": length, "first": torch.cumsum(length, 0) - length}
    for key in ("sub_traj", "obj_traj"):
        flat = [box for r in relations for box in r[key]]
        try:  # np.fromiter over the chained numbers: 4x faster than torch.tensor on the lists
            ok = sum(map(len, flat)) == 4 * len(flat)
            if ok:
                numbers = itertools.chain.from_iterable(flat)
                array = np.fromiter(numbers, dtype=np.float64, count=4 * len(flat))
                out[key] = torch.from_numpy(array).view(-1, 4)
        except (ValueError, TypeError):
            ok = False
        if not ok:  # find the culprit, to name it
            for r, name in zip(relations, where, strict=True):
                if any(not isinstance(b, Sequence) or len(b) != 4 for b in r[key]):
                    raise ValueError(f"{name}: expected {key} boxes of 4 numbers")
            raise ValueError(f"{key}: expected boxes of 4 numbers")
        if not bool(torch.isfinite(out[key]).all()):  # a NaN box would silently score 0
            bad = ~torch.isfinite(out[key]).all(-1)
            owner = int(torch.searchsorted(out["first"], bad.nonzero()[0], right=True)) - 1
            raise ValueError(f"{where[owner]}: expected finite {key} boxes, got "
                             f"{out[key][bad][0].tolist()}")  # fmt: skip
    return out


def _box_areas(b: Tensor, one: float) -> Tensor:  # VidVRD-helper's areas (an inverted box's too)
    return (b[:, 2] - b[:, 0] + one) * (b[:, 3] - b[:, 1] + one)


def _volumes(x: dict[str, Tensor], key: str, one: float) -> Tensor:
    """Each relation's trajectory volume (its boxes' areas summed)."""
    owner = torch.repeat_interleave(torch.arange(len(x["length"])), x["length"])
    areas = _box_areas(x[key], one)
    return torch.zeros(len(x["length"]), dtype=torch.float64).index_add_(0, owner, areas)


def _pair_viou(p: dict[str, Tensor], g: dict[str, Tensor], pi: Tensor, gi: Tensor,
               legacy: bool) -> Tensor:  # fmt: skip
    """``min(vIoU_sub, vIoU_obj)`` of the relation pairs ``(pi[m], gi[m])``: intersections over
    their common frames only (gathered as flat rows), whole-trajectory volumes."""
    one = 1.0 if legacy else 0.0
    start = torch.maximum(p["begin"][pi], g["begin"][gi])
    stop = torch.minimum(p["begin"][pi] + p["length"][pi], g["begin"][gi] + g["length"][gi])
    n = (stop - start).clamp(min=0)
    pair = torch.repeat_interleave(torch.arange(len(pi)), n)
    k = torch.arange(int(n.sum())) - (torch.cumsum(n, 0) - n)[pair]
    p_rows = (p["first"][pi] + start - p["begin"][pi])[pair] + k
    g_rows = (g["first"][gi] + start - g["begin"][gi])[pair] + k
    best = None
    for key in ("sub_traj", "obj_traj"):
        a, b = p[key][p_rows], g[key][g_rows]
        lt, rb = torch.maximum(a[:, :2], b[:, :2]), torch.minimum(a[:, 2:], b[:, 2:])
        wh = (rb - lt + one).clamp(min=0)
        inter = torch.zeros(len(pi), dtype=torch.float64).index_add_(0, pair, wh[:, 0] * wh[:, 1])

        union = _volumes(p, key, one)[pi] + _volumes(g, key, one)[gi] - inter
        viou = torch.where(union > 0, inter / union.clamp(min=1e-300), 0.0)
        best = viou if best is None else torch.minimum(best, viou)
    assert best is not None
    return best


# ------------------------------------------------------------------------------- evaluator


class VidVRDEvaluator(SummableMetric):
    """Relation detection (mAP, R@K) and tagging (P@K) on VidVRD / VidOR, VidVRD-helper's way.

    A torchmetrics-style metric: [`update`][] with the predictions and ground truth of some
    videos (``update(preds, target)``), [`compute`][] for the results, [`reset`][] to start
    again. The state is a set of sums (AP and tagging precision summed over videos, hits and
    ground-truth counts), so updating video by video,
    [`merge`][dsgg_layers.metrics.base.SummableMetric.merge] and
    [`sync`][dsgg_layers.metrics.base.SummableMetric.sync] give the numbers of one call. The
    protocol is documented in [`dsgg_layers.metrics.vidvrd`][dsgg_layers.metrics.vidvrd].

    Inputs are the helper's JSON structures: ``{video id: [relation instance, ...]}``, each
    instance a dict with ``triplet`` ``[subject, predicate, object]``, ``duration``
    ``[begin, end)`` and ``sub_traj`` / ``obj_traj`` (``end - begin`` ``xyxy`` boxes); predictions
    also have ``score``. A prediction file's ``"results"`` entry is the ``prediction`` mapping.

    Args:
        viou_threshold: the vIoU both trajectories need with the ground truth's (0.5).
        det_ks: the K of detection R@K (50, 100).
        tag_ks: the K of tagging P@K (1, 5, 10).
        predicates: score only these predicates (the open-vocabulary ``novel`` protocol; see the
            module's notes); ``None``: every instance (``all``).
        legacy: "+1 pixel" areas in vIoU (VidVRD-helper's convention).

    Raises:
        TypeError, ValueError: an option is invalid, or an instance is malformed (the message
            names the video and the instance).

    Examples:
        >>> box = [[0.0, 0.0, 9.0, 9.0]] * 3
        >>> gt = {"v": [dict(triplet=["dog", "chase", "cat"], duration=[0, 3],
        ...                  sub_traj=box, obj_traj=box)]}
        >>> pred = {"v": [dict(gt["v"][0], score=0.9),
        ...               dict(gt["v"][0], triplet=["dog", "bite", "cat"], score=0.95)]}
        >>> ev = VidVRDEvaluator()
        >>> ev.update(pred, gt)
        >>> {k: round(float(v), 3) for k, v in ev.compute().items()}
        {'mAP': 0.5, 'R@50': 1.0, 'R@100': 1.0, 'P@1': 0.0, 'P@5': 0.5, 'P@10': 0.5}
    """

    settings = ("viou_threshold", "det_ks", "tag_ks", "predicates", "legacy")

    def __init__(
        self,
        viou_threshold: float = 0.5,
        det_ks: Sequence[int] = (50, 100),
        tag_ks: Sequence[int] = (1, 5, 10),
        *,
        predicates: Collection[str] | None = None,
        legacy: bool = True,
    ) -> None:
        if (
            isinstance(viou_threshold, bool)
            or not isinstance(viou_threshold, (int, float))
            or not (0.0 < viou_threshold <= 1.0)
        ):
            raise ValueError(f"viou_threshold: expected a number in (0, 1], got {viou_threshold!r}")
        for name, ks in (("det_ks", det_ks), ("tag_ks", tag_ks)):
            if not isinstance(ks, Sequence):
                raise TypeError(f"{name}: expected a sequence of ints, got {ks!r}")
            if not ks or len(set(ks)) != len(ks):
                raise ValueError(f"{name}: expected distinct Ks, got {ks!r}")
            for k in ks:
                check_positive(k, name)
        if predicates is not None and (
            isinstance(predicates, str) or not all(isinstance(p, str) for p in predicates)
        ):
            raise TypeError(f"predicates: expected a collection of names, got {predicates!r}")
        if not isinstance(legacy, bool):
            raise TypeError(f"legacy: expected a bool, got {legacy!r}")
        self.viou_threshold = float(viou_threshold)
        self.det_ks, self.tag_ks = tuple(det_ks), tuple(tag_ks)
        self.predicates = None if predicates is None else frozenset(predicates)
        self.legacy = legacy
        self.chunk = 64  # videos scored at once: bounds the (videos, P, G) and (videos, P, P) work
        self.reset()

    def __repr__(self) -> str:
        novel = "" if self.predicates is None else f", predicates=<{len(self.predicates)}>"
        return (
            f"{type(self).__name__}(viou_threshold={self.viou_threshold}, det_ks={self.det_ks}, "
            f"tag_ks={self.tag_ks}{novel}, legacy={self.legacy})"
        )

    def reset(self) -> None:
        """Forget every video seen so far."""
        f64 = torch.float64
        self.state: dict[str, Tensor] = {
            "num_videos": torch.zeros((), dtype=torch.long),
            "num_gt": torch.zeros((), dtype=torch.long),
            "ap_sum": torch.zeros((), dtype=f64),
            "hits": torch.zeros(len(self.det_ks), dtype=torch.long),
            "tag_precision_sum": torch.zeros(len(self.tag_ks), dtype=f64),
        }
        """The summable state: videos with ground truth and their ground-truth instances, the
        sum of the videos' AP, the hits within each video's top K, the sum of the videos' P@K."""

    def _keep(self, relations: Sequence[Relation]) -> list[Relation]:
        if self.predicates is None:
            return list(relations)
        return [r for r in relations if r["triplet"][1] in self.predicates]

    @torch.no_grad()
    def update(
        self,
        preds: Mapping[str, Sequence[Relation]],
        target: Mapping[str, Sequence[Relation]],
    ) -> None:
        """Score the videos of ``target`` (the ground truth) against ``preds`` (videos only in
        ``preds`` are ignored, as in the helper; a video of ``target`` missing from ``preds`` has
        no prediction). The order is torchmetrics' and [`ActionGenomeEvaluator`][]'s,
        ``(preds, target)``.

        The ground-truth-first order of earlier releases still works for one release: a first
        argument holding an instance without ``score`` is ground truth, so the two are swapped,
        with a ``DeprecationWarning``.
        """
        preds, target = _in_order(preds, target)
        groundtruth, prediction = target, preds
        for what, data in (("target", groundtruth), ("preds", prediction)):
            if not isinstance(data, Mapping):
                raise TypeError(
                    f"{what}: expected {{video id: [relations]}}, got {type(data).__name__}"
                )
        videos = []
        for vid, gt in groundtruth.items():
            pred = prediction.get(vid, [])
            for i, r in enumerate(gt):
                _check_relation(r, vid, i, "target", scored=False)
            for i, r in enumerate(pred):
                _check_relation(r, vid, i, "preds", scored=True)
            gt, pred = self._keep(gt), self._keep(pred)
            if gt:
                videos.append((vid, gt, pred))
        for k in range(0, len(videos), self.chunk):  # the state is summable: chunks add up
            self._add(self._score(videos[k : k + self.chunk]))

    def _score(self, videos: list[tuple[str, list[Relation], list[Relation]]]) -> dict[str, Tensor]:
        """All videos at once: a join of predictions and ground truth on (video, triplet), vIoU
        for those pairs only, greedy matching one rank at a time, then AP, R@K and P@K."""
        V = len(videos)
        P = max(1, max(len(p) for _, _, p in videos))
        G = max(len(g) for _, g, _ in videos)
        ids: dict[tuple[str, ...], int] = {}
        gts: list[Relation] = []
        preds: list[Relation] = []
        g_where: list[str] = []
        p_where: list[str] = []
        g_vid, g_pos, g_tid, p_vid, p_rank, p_tid = [], [], [], [], [], []
        for v, (vid, gt, pred) in enumerate(videos):
            gts.extend(gt)
            g_where.extend(f"target[{vid!r}][{i}]" for i in range(len(gt)))
            g_vid.extend([v] * len(gt))
            g_pos.extend(range(len(gt)))
            g_tid.extend(ids.setdefault(tuple(r["triplet"]), len(ids)) for r in gt)
            order = sorted(range(len(pred)), key=lambda i: -float(pred[i]["score"]))  # stable
            ranked = [pred[i] for i in order]
            preds.extend(ranked)
            p_where.extend(f"preds[{vid!r}][{i}]" for i in order)
            p_vid.extend([v] * len(ranked))
            p_rank.extend(range(len(ranked)))
            p_tid.extend(ids.setdefault(tuple(r["triplet"]), len(ids)) for r in ranked)
        T = max(len(ids), 1)
        g_key = torch.tensor(g_vid, dtype=torch.long) * T + torch.tensor(g_tid, dtype=torch.long)
        p_key = torch.tensor(p_vid, dtype=torch.long) * T + torch.tensor(p_tid, dtype=torch.long)
        # the join: every (prediction, ground truth) of the same video and triplet
        sorted_keys, perm = torch.sort(g_key, stable=True)
        lo = torch.searchsorted(sorted_keys, p_key)
        count = torch.searchsorted(sorted_keys, p_key, right=True) - lo
        pi = torch.repeat_interleave(torch.arange(len(preds)), count)
        offset = torch.arange(len(pi)) - (torch.cumsum(count, 0) - count)[pi]
        gi = perm[lo[pi] + offset]
        # pairs whose durations do not overlap have vIoU 0: their boxes are never read
        p_dur = torch.tensor([r["duration"] for r in preds], dtype=torch.long).reshape(-1, 2)
        g_dur = torch.tensor([r["duration"] for r in gts], dtype=torch.long).reshape(-1, 2)
        meet = (p_dur[pi, 0] < g_dur[gi, 1]) & (g_dur[gi, 0] < p_dur[pi, 1])
        pi, gi = pi[meet], gi[meet]
        ov = torch.full((V, P, G), -1.0, dtype=torch.float64)  # -1: never a match
        gf = _flat(gts, g_where)
        if len(pi):
            used = torch.unique(pi)  # read the boxes of these predictions only
            remap = torch.full((len(preds),), -1, dtype=torch.long)
            remap[used] = torch.arange(len(used))
            chosen = used.tolist()
            pf = _flat([preds[i] for i in chosen], [p_where[i] for i in chosen])
            vals = _pair_viou(pf, gf, remap[pi], gi, self.legacy)
            pv, pr = torch.tensor(p_vid)[pi], torch.tensor(p_rank)[pi]
            ov[pv, pr, torch.tensor(g_pos, dtype=torch.long)[gi]] = vals
        pred_valid = torch.zeros(V, P, dtype=torch.bool)
        pred_ids = torch.full((V, P), -1, dtype=torch.long)
        in_gt = torch.zeros(V, P, dtype=torch.bool)
        if preds:
            pv_all, pr_all = torch.tensor(p_vid), torch.tensor(p_rank)
            pred_valid[pv_all, pr_all] = True
            pred_ids[pv_all, pr_all] = torch.tensor(p_tid, dtype=torch.long)
            in_gt[pv_all, pr_all] = count > 0
        gt_valid = torch.arange(G) < torch.tensor([len(g) for _, g, _ in videos])[:, None]
        # greedy matching in score order, all videos at once, only at ranks with a candidate
        detected = torch.zeros(V, G, dtype=torch.bool)
        tp = torch.zeros(V, P, dtype=torch.bool)
        rows = torch.arange(V)
        ranks = ((ov >= self.viou_threshold).any(-1).any(0)).nonzero().flatten().tolist()
        for r in ranks:
            cand = ov[:, r].masked_fill(detected, -1.0)
            best, k = cand.max(-1)  # the first maximum on ties, as the helper's strict '>'
            hit = (best >= self.viou_threshold) & pred_valid[:, r]
            tp[:, r] = hit
            detected[rows[hit], k[hit]] = True
        num_gt = gt_valid.sum(-1)
        return {
            "num_videos": torch.tensor(V),
            "num_gt": num_gt.sum(),
            "ap_sum": _average_precision(tp, pred_valid, num_gt).sum(),
            "hits": torch.stack([tp[:, :k].sum() for k in self.det_ks]),
            "tag_precision_sum": _tagging_precision(pred_ids, pred_valid, in_gt, self.tag_ks).sum(
                0
            ),
        }

    def compute(self) -> dict[str, Tensor]:
        """``mAP``, ``R@K`` (each of ``det_ks``) and ``P@K`` (each of ``tag_ks``), as fractions
        (0 before any video with ground truth)."""
        s = self.state
        videos = s["num_videos"].clamp(min=1).double()
        out = {"mAP": s["ap_sum"] / videos}
        for i, k in enumerate(self.det_ks):
            out[f"R@{k}"] = s["hits"][i].double() / s["num_gt"].clamp(min=1).double()
        for i, k in enumerate(self.tag_ks):
            out[f"P@{k}"] = s["tag_precision_sum"][i] / videos
        return out


def _average_precision(tp: Tensor, valid: Tensor, num_gt: Tensor) -> Tensor:
    """VOC all-point AP of each row's ranking: ``(V, P)`` hits -> ``(V,)``."""
    cum_tp = (tp & valid).cumsum(-1).double()
    ranks = torch.arange(1, tp.shape[-1] + 1, dtype=torch.float64)
    recall = cum_tp / num_gt[:, None].clamp(min=1).double()
    precision = torch.where(valid, cum_tp / ranks, 0.0)
    envelope = precision.flip(-1).cummax(-1).values.flip(-1)  # max over this rank and later ones
    steps = torch.diff(recall, dim=-1, prepend=recall.new_zeros(recall.shape[0], 1))
    return (steps * envelope).sum(-1)


def _tagging_precision(ids: Tensor, valid: Tensor, in_gt: Tensor, ks: Sequence[int]) -> Tensor:
    """P@K of each video's deduplicated triplets: ``(V, len(ks))``."""
    P = ids.shape[-1]
    earlier = torch.ones(P, P, dtype=torch.bool).tril(-1)  # [i, j]: j ranks before i
    repeat = ((ids[:, :, None] == ids[:, None, :]) & earlier & valid[:, None, :]).any(-1)
    first = valid & ~repeat  # the first (highest-scored) occurrence of each triplet
    in_gt = in_gt & first
    rank = first.cumsum(-1)  # 1-based rank among the unique triplets
    unique = first.sum(-1)
    out = []
    for k in ks:
        cut = unique.clamp(max=k)
        hits = (in_gt & (rank <= k)).sum(-1).double()
        out.append(torch.where(cut > 0, hits / cut.clamp(min=1), 0.0))
    return torch.stack(out, -1)


def _unscored(relations: Mapping[str, Sequence[Relation]]) -> bool:
    """Whether some instance lacks a ``score``: ground truth, not predictions."""
    return isinstance(relations, Mapping) and any(
        isinstance(r, Mapping) and "score" not in r for rels in relations.values() for r in rels
    )


def _in_order(
    preds: Mapping[str, Sequence[Relation]],
    target: Mapping[str, Sequence[Relation]],
    stacklevel: int = 4,  # _in_order, update, its no_grad wrapper, the caller
) -> tuple[Mapping[str, Sequence[Relation]], Mapping[str, Sequence[Relation]]]:
    """``(preds, target)``; the ground-truth-first order of earlier releases swapped back, with
    a ``DeprecationWarning`` (it goes in the next release)."""
    if _unscored(preds) and not _unscored(target):
        warnings.warn(
            "VidVRDEvaluator.update / vidvrd_metrics take (preds, target) now, as "
            "ActionGenomeEvaluator and torchmetrics; the ground-truth-first order is deprecated",
            DeprecationWarning,
            stacklevel=stacklevel,
        )
        return target, preds
    return preds, target


def vidvrd_metrics(
    preds: Mapping[str, Sequence[Relation]],
    target: Mapping[str, Sequence[Relation]],
    **options: Any,
) -> dict[str, Tensor]:
    """Functional twin of [`VidVRDEvaluator`][]: one ``update`` then ``compute``.

    Args:
        preds: the predictions, as [`VidVRDEvaluator.update`][].
        target: the ground truth, as [`VidVRDEvaluator.update`][].
        **options: the evaluator's arguments (``viou_threshold``, ``det_ks``, ...).

    Returns:
        As [`VidVRDEvaluator.compute`][].

    Examples:
        >>> box = [[0.0, 0.0, 9.0, 9.0]] * 2
        >>> gt = {"v": [dict(triplet=["a", "p", "b"], duration=[0, 2], sub_traj=box, obj_traj=box)]}
        >>> pred = {"v": [dict(gt["v"][0], duration=[1, 3], score=1.0)]}   # one frame late
        >>> float(vidvrd_metrics(pred, gt)["R@50"])                         # vIoU 1/3 < 0.5
        0.0
    """
    evaluator = VidVRDEvaluator(**options)
    evaluator.update(*_in_order(preds, target, stacklevel=3))
    return evaluator.compute()


class OpenVocabularyEvaluator(SummableMetric):
    """The open-vocabulary protocol: [`VidVRDEvaluator`][] on the novel predicates and on all.

    Open-vocabulary VidVRD papers (RePro, UASAN) report each metric twice: **novel**, the
    instances of the predicates unseen in training, scored with the classifier restricted to
    them, and **all**, every instance with the full classifier. The two evaluations take two
    prediction sets of the same videos, ``preds = {"novel": ..., "all": ...}``, against one ground
    truth. The state is the two evaluators' (summable: [`merge`][] and [`sync`][] keep the
    contract); [`compute`][] prefixes their metrics with ``novel/`` and ``all/``.

    Args:
        novel: the novel predicates' names.
        **kwargs: the [`VidVRDEvaluator`][] options shared by both (``viou_threshold``,
            ``det_ks``, ``tag_ks``, ``legacy``).

    Raises:
        TypeError, ValueError: as [`VidVRDEvaluator`][]; ``preds`` lacks ``"novel"`` or
            ``"all"``.

    Examples:
        >>> box = [[0.0, 0.0, 9.0, 9.0]] * 3
        >>> gt = {"v": [dict(triplet=["dog", "chase", "cat"], duration=[0, 3],
        ...                  sub_traj=box, obj_traj=box)]}
        >>> hit = dict(gt["v"][0], score=0.9)
        >>> ev = OpenVocabularyEvaluator(novel={"chase"})
        >>> ev.update({"novel": {"v": [hit]}, "all": {"v": [hit]}}, gt)
        >>> sorted(ev.compute())[:3]
        ['all/P@1', 'all/P@10', 'all/P@5']
    """

    settings = ("novel",)

    def __init__(self, novel: Collection[str], **kwargs: Any) -> None:
        if isinstance(novel, str) or not all(isinstance(p, str) for p in novel):
            raise TypeError(f"novel: expected a collection of predicate names, got {novel!r}")
        self.novel = frozenset(novel)
        self.novel_evaluator = VidVRDEvaluator(predicates=self.novel, **kwargs)
        self.all_evaluator = VidVRDEvaluator(**kwargs)

    @property
    def state(self) -> dict[str, Tensor]:  # type: ignore[override]
        """Both evaluators' sums, prefixed (a view: [`merge`][] and [`sync`][] update them)."""
        return {**{f"novel/{k}": v for k, v in self.novel_evaluator.state.items()},
                **{f"all/{k}": v for k, v in self.all_evaluator.state.items()}}  # fmt: skip

    def reset(self) -> None:
        """Forget everything seen so far."""
        self.novel_evaluator.reset()
        self.all_evaluator.reset()

    def update(self, preds: Mapping[str, Mapping[str, Any]], target: Mapping[str, Any]) -> None:
        """Add the novel and all predictions of some videos and their ground truth."""
        if not isinstance(preds, Mapping) or set(preds) != {"novel", "all"}:
            got = sorted(preds) if isinstance(preds, Mapping) else type(preds).__name__
            raise ValueError(f"preds: expected the keys 'novel' and 'all', got {got}")
        self.novel_evaluator.update(preds["novel"], target)
        self.all_evaluator.update(preds["all"], target)

    def compute(self) -> dict[str, Tensor]:
        """``novel/<metric>`` and ``all/<metric>`` of everything seen so far."""
        return {**{f"novel/{k}": v for k, v in self.novel_evaluator.compute().items()},
                **{f"all/{k}": v for k, v in self.all_evaluator.compute().items()}}  # fmt: skip

    def merge(self, other: SummableMetric) -> None:
        """Add another open-vocabulary evaluator's sums (same novel set and options)."""
        if not isinstance(other, OpenVocabularyEvaluator):
            raise TypeError(
                f"other: expected a OpenVocabularyEvaluator, got {type(other).__name__}"
            )
        if other.novel != self.novel:
            raise ValueError("other: expected the same novel predicates as this one")
        self.novel_evaluator.merge(other.novel_evaluator)
        self.all_evaluator.merge(other.all_evaluator)

    def sync(self, group: Any = None) -> None:
        """All-reduce both evaluators' sums across processes (a no-op in one process)."""
        self.novel_evaluator.sync(group)
        self.all_evaluator.sync(group)

    @staticmethod
    def format_results(
        results: Mapping[str, Tensor],
        metrics: Sequence[str] = ("mAP", "R@50", "R@100", "P@1", "P@5", "P@10"),
    ) -> str:
        """A table of [`compute`][]'s results in percent: one row a split (novel, all), one
        column a metric.

        Examples:
            >>> r = {f"{s}/{m}": torch.tensor(0.5) for s in ("novel", "all") for m in ("mAP",)}
            >>> print(OpenVocabularyEvaluator.format_results(r, ["mAP"]))
            split        mAP
            novel      50.00
            all        50.00
        """
        lines = [f"{'split':<8}" + "".join(f"{m:>8}" for m in metrics)]
        for split in ("novel", "all"):
            cells = "".join(f"{float(results[f'{split}/{m}']) * 100:>8.2f}" for m in metrics)
            lines.append(f"{split:<8}{cells}")
        return "\n".join(lines)
