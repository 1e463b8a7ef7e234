"""Greedy relational association: segment-level relation triplets -> video-level instances.

VidVRD's methods predict relation triplets on short overlapping segments (30 frames, stride 15,
[`segment_video`][dsgg_layers.data.vidvrd.segment_video]) and link them, segment after segment, into
video-level relation instances that [`VidVRDEvaluator`][dsgg_layers.metrics.vidvrd.VidVRDEvaluator]
scores. The published pipelines differ in the details, which move mAP by points; each is a named
preset of
[`associate_relations`][] ([`ASSOCIATION_PRESETS`][]):

- ``"vidvrd"``: VidVRD-helper's baseline (``greedy_relational_association``, ACM MM 2017). A
  segment's top 100 predictions, best first, each extend the best-scored instance touched in the
  *previous* segment with the same triplet whose subject and object trajectories both have a
  cubic IoU ``>= 0.5`` with the prediction's over their overlapping frames ("+1" areas);
  overlapping boxes are averaged; an instance's score is the **mean** of its segment scores.
  The code has two bugs, and the preset implements the intent: a new instance that starts after
  the first segment gets score 1 (not its prediction's), and trajectory objects shared by several
  predictions are extended through each other (here every instance owns its boxes).
- ``"repro"``: VidVRD-II's ``greedy_relation_association``, which RePro runs: linkage with a
  **strict** ``> 0.5``; a prediction separated from an instance by a gap shorter than 30 frames
  is linked through the IoU of the boundary boxes and the gap filled by linear interpolation;
  score the **sum** of the segment scores; instances whose subject and object co-occur for at
  most one frame are dropped; the top 200 a video are kept; no suppression.
- ``"uasan"``: as ``"repro"`` with linkage ``> 0.8`` and an asymmetric suppression at 0.8: an
  instance is dropped when a higher-scored one with the same triplet covers more than 80% of its
  subject's and of its object's trajectory volume (intersection over the lower one's volume).

A segment triplet's score combines the predicate, subject and object scores
([`segment_triplet_score`][]): their mean in RePro's code, their product in UASAN's.

The algorithm is sequential by definition (each segment links to the instances the previous
one left); within a segment the links are resolved from one precomputed link matrix.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor

__all__ = ["ASSOCIATION_PRESETS", "associate_relations", "segment_triplet_score"]

ASSOCIATION_PRESETS: dict[str, dict[str, Any]] = {
    "vidvrd": {"linkage_threshold": 0.5, "strict": False, "gap_tolerance": 0, "score": "mean",
               "segment_topk": 100, "video_topk": None, "nms_threshold": None, "min_frames": 1},
    "repro": {"linkage_threshold": 0.5, "strict": True, "gap_tolerance": 30, "score": "sum",
              "segment_topk": 200, "video_topk": 200, "nms_threshold": None, "min_frames": 2},
    "uasan": {"linkage_threshold": 0.8, "strict": True, "gap_tolerance": 30, "score": "sum",
              "segment_topk": 200, "video_topk": 200, "nms_threshold": 0.8, "min_frames": 2},
}  # fmt: skip
"""The published association settings (see the module docstring): linkage threshold and whether
it is strict, the gap (frames) bridged by boundary-box IoU, the instance score (``"mean"`` or
``"sum"`` of segment scores), predictions kept a segment, instances kept a video, the
suppression threshold (``None``: off) and the fewest frames subject and object must share."""


def segment_triplet_score(
    predicate: Tensor,
    subject: Tensor,
    object: Tensor,
    mode: Literal["mean", "product"] = "mean",
) -> Tensor:
    """A segment triplet's score from its predicate, subject and object scores.

    ``"mean"`` (RePro's code) or ``"product"`` (UASAN's code).

    Examples:
        >>> p, s, o = torch.tensor([0.5]), torch.tensor([0.8]), torch.tensor([0.5])
        >>> segment_triplet_score(p, s, o), segment_triplet_score(p, s, o, "product")
        (tensor([0.6000]), tensor([0.2000]))
    """
    if mode == "mean":
        return (predicate + subject + object) / 3
    if mode == "product":
        return predicate * subject * object
    raise ValueError(f"mode: expected 'mean' or 'product', got {mode!r}")


@dataclass
class _Track:
    start: int
    boxes: Tensor  # (L, 4) float64, frames [start, start + L)

    @property
    def end(self) -> int:
        return self.start + self.boxes.shape[0]

    def during(self, a: int, b: int) -> Tensor:
        return self.boxes[a - self.start : b - self.start]


def _areas(b: Tensor) -> Tensor:
    return (b[..., 2] - b[..., 0] + 1) * (b[..., 3] - b[..., 1] + 1)


def _intersection(b1: Tensor, b2: Tensor) -> Tensor:
    w = torch.minimum(b1[..., 2], b2[..., 2]) - torch.maximum(b1[..., 0], b2[..., 0]) + 1
    h = torch.minimum(b1[..., 3], b2[..., 3]) - torch.maximum(b1[..., 1], b2[..., 1]) + 1
    return (w.clamp(min=0) * h.clamp(min=0)).sum(-1)


def _cubic_iou(b1: Tensor, b2: Tensor) -> float:
    inter = _intersection(b1, b2)
    union = _areas(b1).sum(-1) + _areas(b2).sum(-1) - inter
    return float(inter / union.clamp(min=1e-8))


def _link_iou(t1: _Track, t2: _Track, tolerance: int) -> float | None:
    """Cubic IoU over the common frames; across a gap shorter than ``tolerance``, the IoU of the
    boundary boxes (VidVRD-II's ``cubic_intersection``); else ``None``: never linked, whatever
    the threshold (the baseline's explicit temporal-overlap test)."""
    a, b = max(t1.start, t2.start), min(t1.end, t2.end)
    if a < b:
        return _cubic_iou(t1.during(a, b), t2.during(a, b))
    if a - b < tolerance:
        first, second = (t1, t2) if t1.end <= t2.start else (t2, t1)
        return _cubic_iou(first.boxes[-1:], second.boxes[:1])
    return None


def _enclose(keep: _Track, other: _Track) -> float:
    """Intersection over the common frames / ``other``'s whole volume."""
    a, b = max(keep.start, other.start), min(keep.end, other.end)
    if a >= b:
        return 0.0
    inter = _intersection(keep.during(a, b), other.during(a, b))
    return float(inter / _areas(other.boxes).sum().clamp(min=1e-8))


def _join(t1: _Track, t2: _Track) -> _Track:
    """Union of the frames: boxes averaged where both have one, copied where one has, linearly
    interpolated across a gap between them in ``np.interp``'s form, ``y0 + slope * (x - x0)``
    (VidVRD-II's ``Trajectory.join``): exact at the ends and between equal boxes, which
    ``(1 - w) * y0 + w * y1`` is not (119 becomes 119.00000000000001)."""
    start, end = min(t1.start, t2.start), max(t1.end, t2.end)
    out = torch.zeros(end - start, 4, dtype=t1.boxes.dtype)
    count = torch.zeros(end - start, 1, dtype=t1.boxes.dtype)
    for t in (t1, t2):
        out[t.start - start : t.end - start] += t.boxes
        count[t.start - start : t.end - start] += 1
    first, second = (t1, t2) if t1.start <= t2.start else (t2, t1)
    if first.end < second.start:  # a gap: from the last box of one to the first of the other
        p0, p1 = first.end - 1, second.start
        frames = torch.arange(first.end, second.start, dtype=out.dtype)[:, None]
        y0, y1 = first.boxes[-1], second.boxes[0]
        slope = (y1 - y0) / (p1 - p0)
        out[first.end - start : second.start - start] = slope * (frames - p0) + y0
        count[first.end - start : second.start - start] = 1
    return _Track(start, out / count)


_KNOWN_KEYS = frozenset(
    ("triplet", "score", "duration", "sub_duration", "obj_duration", "sub_traj", "obj_traj")
)


@dataclass
class _Instance:
    triplet: tuple[str, str, str]
    sub: _Track
    obj: _Track
    scores: list[float] = field(default_factory=list)
    extras: dict[str, list[Any]] = field(default_factory=dict)

    def score(self, mode: str) -> float:
        return sum(self.scores) / (len(self.scores) if mode == "mean" else 1)

    def extend(self, other: _Instance) -> None:
        """Link ``other`` (one segment's prediction): tracks joined, its score and its extra
        keys' values appended (a key one side lacks gets ``None`` there)."""
        before = len(self.scores)
        self.sub, self.obj = _join(self.sub, other.sub), _join(self.obj, other.obj)
        self.scores.extend(other.scores)
        for key in set(self.extras) | set(other.extras):
            mine = self.extras.get(key, [None] * before)
            self.extras[key] = mine + other.extras.get(key, [None] * len(other.scores))


def _instance(r: Mapping[str, Any], where: str) -> _Instance:
    for key in ("triplet", "score", "sub_traj", "obj_traj"):
        if key not in r:
            raise ValueError(f"{where}: missing {key!r}")
    sd = r.get("sub_duration", r.get("duration"))
    od = r.get("obj_duration", r.get("duration"))
    if sd is None or od is None:
        raise ValueError(f"{where}: missing 'duration' (or 'sub_duration' and 'obj_duration')")
    tracks = []
    for key, d in (("sub_traj", sd), ("obj_traj", od)):
        if len(d) != 2 or not d[0] < d[1]:
            raise ValueError(f"{where}: expected a duration [begin, end) with end > begin, got {d}")
        rows = r[key]
        if len(rows) != d[1] - d[0] or any(len(b) != 4 for b in rows):
            raise ValueError(
                f"{where}[{key!r}]: expected {d[1] - d[0]} boxes of 4 numbers for the duration "
                f"{list(d)}, got {len(rows)} rows"
            )
        tracks.append(_Track(int(d[0]), torch.tensor(rows, dtype=torch.float64).reshape(-1, 4)))
    if not all(bool(torch.isfinite(t.boxes).all()) for t in tracks):
        raise ValueError(f"{where}: expected finite boxes in 'sub_traj' and 'obj_traj'")
    score = float(r["score"])
    if not math.isfinite(score):
        raise ValueError(f"{where}: expected a finite 'score', got {score}")
    extras = {k: [v] for k, v in r.items() if k not in _KNOWN_KEYS}
    return _Instance(tuple(r["triplet"]), tracks[0], tracks[1], [score], extras)


def associate_relations(
    segments: Mapping[tuple[int, int], Sequence[Mapping[str, Any]]],
    preset: str = "repro",
    **overrides: Any,
) -> list[dict[str, Any]]:
    """Link one video's segment-level relation triplets into video-level relation instances.

    Args:
        segments: ``{(start, end): [relation, ...]}``, each relation a dict with ``triplet``,
            ``score``, ``duration`` (or ``sub_duration`` and ``obj_duration``) and
            ``sub_traj`` / ``obj_traj`` (one ``xyxy`` box a frame of the duration), in video
            frames.
        preset: ``"vidvrd"``, ``"repro"`` or ``"uasan"`` ([`ASSOCIATION_PRESETS`][]).
        **overrides: any setting of the preset (``linkage_threshold``, ``strict``,
            ``gap_tolerance``, ``score``, ``segment_topk``, ``video_topk``, ``nms_threshold``,
            ``min_frames``).

    Returns:
        The video's relation instances in VidVRD-helper's prediction form (``triplet``,
        ``score``, ``duration``, ``sub_traj``, ``obj_traj``), best first: the ``prediction[vid]``
        list of [`VidVRDEvaluator`][dsgg_layers.metrics.vidvrd.VidVRDEvaluator]. Each instance stays
        traceable to its segments, as in RePro's and UASAN's association code: ``score_list`` holds
        the linked segment predictions' scores in the order they were linked, and every other key a
        segment prediction carried (e.g. ``"segment"``, a track id) comes out as the list of its
        values, one per linked prediction (``None`` where a prediction lacked it).

    Raises:
        TypeError: ``segments`` is not a mapping.
        ValueError: an unknown preset or setting, a ``segment_topk`` / ``video_topk`` below 1,
            a key that is not ``(start, end)``, or a malformed relation (named): a missing key,
            a wrong number of boxes, a NaN or inf score or box.

    Examples:
        >>> box = [[0.0, 0.0, 9.0, 9.0]]
        >>> seg = lambda s: dict(triplet=["dog", "chase", "cat"], score=0.5, duration=[s, s + 30],
        ...                      sub_traj=box * 30, obj_traj=box * 30)
        >>> out = associate_relations({(0, 30): [seg(0)], (15, 45): [seg(15)]})
        >>> len(out), out[0]["duration"], out[0]["score"]            # linked, scores summed
        (1, [0, 45], 1.0)
        >>> out[0]["score_list"]
        [0.5, 0.5]
    """
    if preset not in ASSOCIATION_PRESETS:
        raise ValueError(f"preset: expected one of {sorted(ASSOCIATION_PRESETS)}, got {preset!r}")
    cfg = dict(ASSOCIATION_PRESETS[preset])
    unknown = set(overrides) - set(cfg)
    if unknown:
        raise ValueError(f"overrides: unknown settings {sorted(unknown)} (known: {sorted(cfg)})")
    cfg.update(overrides)
    if cfg["score"] not in ("mean", "sum"):
        raise ValueError(f"score: expected 'mean' or 'sum', got {cfg['score']!r}")
    if not isinstance(cfg["min_frames"], int) or cfg["min_frames"] < 1:
        raise ValueError(f"min_frames: expected an int >= 1, got {cfg['min_frames']!r}")
    for key in ("segment_topk", "video_topk"):  # a negative slice would drop the last items
        k = cfg[key]
        if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
            raise ValueError(f"{key}: expected None or an int >= 1, got {k!r}")
    if not isinstance(segments, Mapping):
        raise TypeError(
            "segments: expected a dict {(start, end): [relation, ...]} of one video's segments, "
            f"got {type(segments).__name__}"
        )
    for key in segments:
        if not (isinstance(key, tuple) and len(key) == 2):
            raise ValueError(f"segments: expected (start, end) keys, got {key!r}")
    thr, mode = float(cfg["linkage_threshold"]), cfg["score"]

    def linked(iou: float | None) -> bool:
        if iou is None:
            return False
        return iou > thr if cfg["strict"] else iou >= thr

    instances: list[_Instance] = []
    active: list[_Instance] = []
    for key in sorted(segments, key=lambda s: s[0]):
        preds = [_instance(r, f"segments[{key}][{i}]") for i, r in enumerate(segments[key])]
        preds.sort(key=lambda r: r.scores[0], reverse=True)
        preds = preds[: cfg["segment_topk"]]
        active.sort(key=lambda r: r.score(mode), reverse=True)
        # the link matrix of this segment: prediction i may extend active instance j
        link = torch.zeros(len(preds), len(active), dtype=torch.bool)
        for i, p in enumerate(preds):
            for j, a in enumerate(active):
                if a.triplet == p.triplet and linked(_link_iou(a.sub, p.sub, cfg["gap_tolerance"])):
                    link[i, j] = linked(_link_iou(a.obj, p.obj, cfg["gap_tolerance"]))
        free = torch.ones(len(active), dtype=torch.bool)
        current = []
        for i, p in enumerate(preds):
            js = (link[i] & free).nonzero()
            if len(js):
                j = int(js[0])
                a = active[j]
                a.extend(p)
                free[j] = False
                current.append(a)
            else:
                instances.append(p)
                current.append(p)
        active = current
    results = []
    for r in instances:
        a, b = max(r.sub.start, r.obj.start), min(r.sub.end, r.obj.end)
        if b - a < cfg["min_frames"]:
            continue  # subject and object (almost) never together: not a relation instance
        results.append((r, a, b))
    results.sort(key=lambda x: x[0].score(mode), reverse=True)
    if cfg["video_topk"] is not None:
        results = results[: cfg["video_topk"]]
    nms = cfg["nms_threshold"]
    if nms is not None and nms < 1:
        kept: list[tuple[_Instance, int, int]] = []
        for cand in results:
            r = cand[0]
            if not any(k.triplet == r.triplet and _enclose(k.sub, r.sub) > nms
                       and _enclose(k.obj, r.obj) > nms for k, _, _ in kept):  # fmt: skip
                kept.append(cand)
        results = kept
    return [
        {"triplet": list(r.triplet), "score": r.score(mode), "duration": [a, b],
         "sub_traj": r.sub.during(a, b).tolist(), "obj_traj": r.obj.during(a, b).tolist(),
         "score_list": list(r.scores), **{k: list(v) for k, v in r.extras.items()}}
        for r, a, b in results
    ]  # fmt: skip
