"""VidVRD / VidOR annotations: loading, segmenting, the open-vocabulary splits.

The annotation format of VidVRD (ACM MM 2017) and VidOR, one JSON file a video, as
``xdshang/VidVRD-helper`` reads it:

- ``video_id``, ``frame_count``, ``width``, ``height`` (and ``fps``);
- ``subject/objects``: ``[{"tid": int, "category": str}, ...]``;
- ``trajectories``: one list a frame (``frame_count`` of them), each
  ``[{"tid": int, "bbox": {"xmin", "ymin", "xmax", "ymax"}}, ...]``;
- ``relation_instances``: ``[{"subject_tid", "object_tid", "predicate", "begin_fid",
  "end_fid"}, ...]`` with ``[begin_fid, end_fid)`` in frames.

[`VidVRDVideo`][] holds one video as tensors (``(N, F, 4)`` boxes of the ``N`` trajectories
on the video's ``F`` frames, with a presence mask); [`VidVRDVideo.relation_instances`][]
gives the ground truth in the form [`VidVRDEvaluator`][dsgg_layers.metrics.vidvrd.VidVRDEvaluator]
(and the helper's ``evaluate``) reads. [`segment_video`][] cuts a duration into the 30-frame
segments, stride 15, that VidVRD's methods predict on. [`VIDVRD_OBJECT_SPLITS`][] and
[`VIDVRD_PREDICATE_SPLITS`][] are RePro's open-vocabulary base/novel splits (objects 25/10,
predicates 71/61), which UASAN uses.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from dsgg_layers._checks import check_positive

__all__ = [
    "VIDVRD_OBJECT_SPLITS",
    "VIDVRD_PREDICATE_SPLITS",
    "VidVRDVideo",
    "load_vidvrd",
    "segment_video",
]

VIDVRD_OBJECT_SPLITS: dict[str, tuple[str, ...]] = {
    "base": (
        "airplane", "bicycle", "bird", "bus", "car", "dog", "domestic_cat", "elephant", "hamster",
        "lion", "monkey", "rabbit", "sheep", "snake", "squirrel", "tiger", "train", "turtle",
        "whale", "zebra", "ball", "frisbee", "sofa", "skateboard", "person",
    ),
    "novel": (
        "horse", "watercraft", "giant_panda", "fox", "red_panda", "cattle", "motorcycle", "bear",
        "antelope", "lizard",
    ),
}  # fmt: skip
"""RePro's VidVRD object split (its ``VidVRD_class_spilt_info.json``): 25 base, 10 novel."""

VIDVRD_PREDICATE_SPLITS: dict[str, tuple[str, ...]] = {
    "base": (
        "behind", "chase", "creep_behind", "creep_beneath", "creep_front", "creep_left",
        "creep_right", "fall_off", "faster", "fly_above", "fly_next_to", "fly_past", "fly_toward",
        "fly_with", "follow", "front", "jump_beneath", "jump_front", "jump_left", "jump_next_to",
        "jump_right", "jump_toward", "larger", "left", "lie_behind", "lie_front", "lie_left",
        "lie_next_to", "lie_right", "move_behind", "move_beneath", "move_front", "move_left",
        "move_right", "move_with", "next_to", "play", "ride", "right", "run_behind", "run_front",
        "run_left", "run_past", "run_right", "run_with", "sit_above", "sit_front", "sit_left",
        "sit_right", "stand_behind", "stand_front", "stand_left", "stand_next_to", "stand_right",
        "stop_behind", "stop_front", "stop_left", "stop_right", "swim_front", "swim_left",
        "swim_right", "swim_with", "taller", "touch", "walk_behind", "walk_front", "walk_left",
        "walk_next_to", "walk_right", "walk_with", "watch",
    ),
    "novel": (
        "above", "away", "beneath", "bite", "creep_above", "creep_away", "creep_next_to",
        "creep_past", "creep_toward", "drive", "feed", "fight", "fly_away", "fly_behind",
        "fly_front", "fly_left", "fly_right", "hold", "jump_above", "jump_away", "jump_behind",
        "jump_past", "jump_with", "kick", "lie_above", "lie_beneath", "lie_inside", "lie_with",
        "move_above", "move_away", "move_next_to", "move_past", "move_toward", "past", "pull",
        "run_above", "run_away", "run_beneath", "run_next_to", "run_toward", "sit_behind",
        "sit_beneath", "sit_inside", "sit_next_to", "stand_above", "stand_beneath",
        "stand_inside", "stand_with", "stop_above", "stop_beneath", "stop_next_to", "stop_with",
        "swim_behind", "swim_beneath", "swim_next_to", "toward", "walk_above", "walk_away",
        "walk_beneath", "walk_past", "walk_toward",
    ),
}  # fmt: skip
"""RePro's VidVRD predicate split (its ``VidVRD_pred_class_spilt_info_v2.json``): 71 base,
61 novel."""


def segment_video(
    begin: int, end: int, length: int = 30, stride: int = 15, *, cover_tail: bool = False
) -> Tensor:
    """The segments ``[s, s + length)`` for ``s = begin, begin + stride, ...`` that fit in
    ``[begin, end)`` (VidVRD-helper's ``segment_video``: a duration shorter than ``length`` has
    none, frames after the last full segment are in none).

    Args:
        begin: the duration's first frame.
        end: the duration's end (exclusive).
        length: frames a segment (30).
        stride: frames between segment starts (15).
        cover_tail: also a last segment ``[end - length, end)`` when the helper's leave frames
            at the end uncovered (not the helper's behaviour: an option).

    Returns:
        ``(S, 2)`` long ``[start, end)`` rows.

    Raises:
        TypeError, ValueError: a value is not an int, or ``length`` / ``stride`` not positive.

    Examples:
        >>> segment_video(0, 75).tolist()
        [[0, 30], [15, 45], [30, 60], [45, 75]]
        >>> segment_video(0, 29).shape
        torch.Size([0, 2])
        >>> segment_video(0, 80, cover_tail=True).tolist()[-2:]   # frames 75-79 covered too
        [[45, 75], [50, 80]]
    """
    for name, v in (("begin", begin), ("end", end)):
        if isinstance(v, bool) or not isinstance(v, int):
            raise TypeError(f"{name}: expected an int, got {type(v).__name__}")
    check_positive(length, "length")
    check_positive(stride, "stride")
    starts = torch.arange(begin, max(end - length + 1, begin), stride)
    if cover_tail and len(starts) and int(starts[-1]) + length < end:
        starts = torch.cat((starts, torch.tensor([end - length])))
    return torch.stack((starts, starts + length), -1)


def _need(d: Any, key: str, where: str, kind: type | tuple[type, ...]) -> Any:
    if not isinstance(d, Mapping) or key not in d:
        raise ValueError(f"{where}: missing {key!r}")
    v = d[key]
    if not isinstance(v, kind) or isinstance(v, bool):
        raise ValueError(f"{where}[{key!r}]: expected {kind}, got {type(v).__name__}")
    return v


@dataclass
class VidVRDVideo:
    """One VidVRD / VidOR video's annotation, as tensors.

    Attributes:
        video_id: the video's id.
        frame_count, width, height: the video's size; ``fps`` its frame rate (0 if absent).
        track_ids: ``(N,)`` the trajectories' ``tid``.
        categories: the ``N`` trajectories' object categories.
        boxes: ``(N, F, 4)`` ``xyxy`` boxes (0 where absent), ``F = frame_count``.
        box_mask: ``(N, F)`` bool, where each trajectory has a box.
        subjects, objects: ``(R,)`` indices into the trajectories of each relation instance.
        predicates: the ``R`` predicates.
        begin, end: ``(R,)`` the instances' ``[begin_fid, end_fid)``.
        features: optional ``(N, F, D)`` per-frame trajectory features (not part of the JSON
            format: the synthetic benchmark's, or a user's own extractor's).

    Examples:
        >>> anno = {"video_id": "v", "frame_count": 2, "width": 64, "height": 48,
        ...         "subject/objects": [{"tid": 0, "category": "dog"},
        ...                             {"tid": 1, "category": "ball"}],
        ...         "trajectories": [[{"tid": 0, "bbox": dict(xmin=0, ymin=0, xmax=9, ymax=9)},
        ...                           {"tid": 1, "bbox": dict(xmin=20, ymin=0, xmax=29, ymax=9)}],
        ...                          [{"tid": 0, "bbox": dict(xmin=5, ymin=0, xmax=14, ymax=9)},
        ...                           {"tid": 1, "bbox": dict(xmin=20, ymin=0, xmax=29, ymax=9)}]],
        ...         "relation_instances": [{"subject_tid": 0, "object_tid": 1,
        ...                                 "predicate": "chase", "begin_fid": 0, "end_fid": 2}]}
        >>> video = VidVRDVideo.from_json(anno)
        >>> video.boxes.shape, video.relation_instances()[0]["triplet"]
        (torch.Size([2, 2, 4]), ['dog', 'chase', 'ball'])
        >>> again = VidVRDVideo.from_json(video.to_json())      # a round trip
        >>> again.relation_instances() == video.relation_instances()
        True
    """

    video_id: str
    frame_count: int
    width: int
    height: int
    fps: float
    track_ids: Tensor
    categories: list[str]
    boxes: Tensor
    box_mask: Tensor
    subjects: Tensor
    objects: Tensor
    predicates: list[str]
    begin: Tensor
    end: Tensor
    features: Tensor | None = None

    @classmethod
    def from_json(cls, anno: Mapping[str, Any], source: str = "annotation") -> VidVRDVideo:
        """Parse one annotation dict (``source`` names it in error messages)."""
        if not isinstance(anno, Mapping):
            raise ValueError(f"{source}: expected a JSON object, got {type(anno).__name__}")
        vid = _need(anno, "video_id", source, str)
        frames = _need(anno, "frame_count", source, int)
        width = _need(anno, "width", source, int)
        height = _need(anno, "height", source, int)
        objs = _need(anno, "subject/objects", source, list)
        trajs = _need(anno, "trajectories", source, list)
        rels = _need(anno, "relation_instances", source, list)
        if len(trajs) != frames:
            raise ValueError(
                f"{source}['trajectories']: expected one list a frame ({frames}), got {len(trajs)}"
            )
        tids, cats = [], []
        for i, o in enumerate(objs):
            tids.append(_need(o, "tid", f"{source}['subject/objects'][{i}]", int))
            cats.append(_need(o, "category", f"{source}['subject/objects'][{i}]", str))
        index = {t: i for i, t in enumerate(tids)}
        if len(index) != len(tids):
            raise ValueError(f"{source}['subject/objects']: repeated tids {tids}")
        rows, cols, coords = [], [], []
        for f, frame in enumerate(trajs):
            if not isinstance(frame, list):
                raise ValueError(f"{source}['trajectories'][{f}]: expected a list of boxes")
            for j, roi in enumerate(frame):
                where = f"{source}['trajectories'][{f}][{j}]"
                tid = _need(roi, "tid", where, int)
                if tid not in index:
                    raise ValueError(f"{where}: tid {tid} is not in 'subject/objects'")
                box = _need(roi, "bbox", where, Mapping)
                xyxy = [_need(box, k, f"{where}['bbox']", (int, float))
                        for k in ("xmin", "ymin", "xmax", "ymax")]  # fmt: skip
                if not all(math.isfinite(v) for v in xyxy):  # json.loads reads NaN and Infinity
                    raise ValueError(f"{where}['bbox']: expected finite coordinates, got {xyxy}")
                coords.append(xyxy)
                rows.append(index[tid])
                cols.append(f)
        boxes = torch.zeros(len(tids), frames, 4)
        mask = torch.zeros(len(tids), frames, dtype=torch.bool)
        if rows:
            r, c = torch.tensor(rows), torch.tensor(cols)
            boxes[r, c] = torch.tensor(coords, dtype=torch.float32)
            mask[r, c] = True
        subj, obj, preds, begin, end = [], [], [], [], []
        for i, rel in enumerate(rels):
            where = f"{source}['relation_instances'][{i}]"
            s, o = _need(rel, "subject_tid", where, int), _need(rel, "object_tid", where, int)
            b, e = _need(rel, "begin_fid", where, int), _need(rel, "end_fid", where, int)
            for name, t in (("subject_tid", s), ("object_tid", o)):
                if t not in index:
                    raise ValueError(f"{where}[{name!r}]: tid {t} is not in 'subject/objects'")
            if not 0 <= b < e <= frames:
                raise ValueError(
                    f"{where}: expected 0 <= begin_fid < end_fid <= frame_count ({frames}), "
                    f"got [{b}, {e})"
                )
            subj.append(index[s])
            obj.append(index[o])
            preds.append(_need(rel, "predicate", where, str))
            begin.append(b)
            end.append(e)
        return cls(
            video_id=vid, frame_count=frames, width=width, height=height,
            fps=float(anno.get("fps", 0) or 0), track_ids=torch.tensor(tids, dtype=torch.long),
            categories=cats, boxes=boxes, box_mask=mask,
            subjects=torch.tensor(subj, dtype=torch.long),
            objects=torch.tensor(obj, dtype=torch.long), predicates=preds,
            begin=torch.tensor(begin, dtype=torch.long), end=torch.tensor(end, dtype=torch.long),
        )  # fmt: skip

    def to_json(self) -> dict[str, Any]:
        """The annotation dict again (what [`from_json`][] reads)."""
        trajs: list[list[dict[str, Any]]] = [[] for _ in range(self.frame_count)]
        for n, f in self.box_mask.nonzero().tolist():
            x1, y1, x2, y2 = self.boxes[n, f].tolist()
            trajs[f].append({"tid": int(self.track_ids[n]),
                             "bbox": {"xmin": x1, "ymin": y1, "xmax": x2, "ymax": y2}})  # fmt: skip
        return {
            "video_id": self.video_id, "frame_count": self.frame_count, "width": self.width,
            "height": self.height, "fps": self.fps,
            "subject/objects": [{"tid": int(t), "category": c}
                                for t, c in zip(self.track_ids.tolist(), self.categories,
                                                strict=True)],
            "trajectories": trajs,
            "relation_instances": [
                {"subject_tid": int(self.track_ids[s]), "object_tid": int(self.track_ids[o]),
                 "predicate": p, "begin_fid": b, "end_fid": e}
                for s, o, p, b, e in zip(self.subjects.tolist(), self.objects.tolist(),
                                         self.predicates, self.begin.tolist(), self.end.tolist(),
                                         strict=True)
            ],
        }  # fmt: skip

    def relation_instances(self) -> list[dict[str, Any]]:
        """The ground-truth relation instances in VidVRD-helper's form (``triplet``,
        ``subject_tid``, ``object_tid``, ``duration``, ``sub_traj``, ``obj_traj``).

        Raises:
            ValueError: a trajectory has no box on a frame of its instance's duration.
        """
        out = []
        for i, (s, o, p, b, e) in enumerate(zip(self.subjects.tolist(), self.objects.tolist(),
                                                self.predicates, self.begin.tolist(),
                                                self.end.tolist(), strict=True)):  # fmt: skip
            for role, t in (("subject", s), ("object", o)):
                if not bool(self.box_mask[t, b:e].all()):
                    raise ValueError(
                        f"{self.video_id}: relation instance {i}: the {role} (tid "
                        f"{int(self.track_ids[t])}) has no box on some frames of [{b}, {e})"
                    )
            out.append({
                "triplet": [self.categories[s], p, self.categories[o]],
                "subject_tid": int(self.track_ids[s]), "object_tid": int(self.track_ids[o]),
                "duration": [b, e],
                "sub_traj": self.boxes[s, b:e].tolist(), "obj_traj": self.boxes[o, b:e].tolist(),
            })  # fmt: skip
        return out

    def segments(self, length: int = 30, stride: int = 15) -> Tensor:
        """[`segment_video`][] over the whole video."""
        return segment_video(0, self.frame_count, length, stride)

    def with_box_noise(self, std: float, seed: int) -> VidVRDVideo:
        """The video with Gaussian noise of ``std`` pixels on every present box (a tracker's
        view of the ground truth: the SGDet input of a trajectory benchmark); reproducible
        from ``seed``.

        Raises:
            ValueError: ``std`` is negative.

        Examples:
            >>> anno = {"video_id": "v", "frame_count": 1, "width": 64, "height": 48,
            ...         "subject/objects": [{"tid": 0, "category": "dog"}],
            ...         "trajectories": [[{"tid": 0, "bbox": {"xmin": 1, "ymin": 2,
            ...                                              "xmax": 9, "ymax": 8}}]],
            ...         "relation_instances": []}
            >>> video = VidVRDVideo.from_json(anno)
            >>> noisy = video.with_box_noise(3.0, seed=0)
            >>> bool((noisy.boxes != video.boxes).any()), noisy.categories == video.categories
            (True, True)
        """
        if not std >= 0:
            raise ValueError(f"std: expected a non-negative number of pixels, got {std}")
        g = torch.Generator().manual_seed(seed)
        noise = torch.randn(self.boxes.shape, generator=g) * std
        return replace(self, boxes=(self.boxes + noise) * self.box_mask[..., None])


def load_vidvrd(path: str | Path) -> list[VidVRDVideo]:
    """The videos of a VidVRD / VidOR annotation file, or of every ``*.json`` in a folder
    (recursively, sorted by path: VidOR nests its files in sub-folders).

    Raises:
        FileNotFoundError: nothing to read at ``path``.
        ValueError: a file is not valid JSON or not a valid annotation (the message names the
            file and the field).
    """
    path = Path(path)
    files = sorted(path.rglob("*.json")) if path.is_dir() else [path]
    if not files or not files[0].exists():
        raise FileNotFoundError(f"path: no VidVRD annotation file at {path}")
    videos = []
    for f in files:
        try:
            anno = json.loads(f.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:  # a binary file: no text
            raise ValueError(f"{f}: not valid JSON ({e})") from None
        videos.append(VidVRDVideo.from_json(anno, source=str(f)))
    return videos
