"""Action Genome: read the real annotation files into [`VideoGraph`][] pair tracks.

Reads ``annotations/person_bbox.pkl`` and ``annotations/object_bbox_and_relationship.pkl`` of
Action Genome, and optionally precomputed per-box features, and yields each video as a
``VideoGraph`` (``B = 1``): the person is the subject of every pair, each object class is a pair
track (Action Genome annotates one object of a class per frame), the real frame numbers are the
frame times, and the relations are the 26-d labels of
[`dsgg_layers.vocab.PREDICATES`][dsgg_layers.vocab.PREDICATES].

**The public code's rules, kept** (STTran's ``dataloader/action_genome.py``):

- a frame belongs to the split named by ``metadata['set']`` of its first object;
- a frame counts only if some object is ``visible``; invisible objects are skipped;
- frames without a person box are dropped;
- videos are kept only with more than 2 frames (``min_frames=3``);
- object boxes are ``(x, y, w, h)`` and become ``xyxy``; person boxes are already ``xyxy``;
- SGCls / SGDet evaluate with small objects removed: ``min_box_size=16`` drops objects whose
  short edge is at most 16 pixels (the public code reads a pre-filtered file instead,
  ``object_bbox_and_relationship_filtersmall.pkl``; pass it as ``object_file`` to use it).

**Chosen here** (the public code is silent or accidental): frames are sorted by frame number
(the public code keeps the pickle's key order); a predicate listed twice for one object counts
once; a frame with more than one person box uses the first, as the public code does.

Raw names in the files are normalised with [`normalize_object_name`][] and
[`normalize_predicate_name`][], so both ``lookingat`` / ``closetcabinet``
and ``looking_at`` / ``closet/cabinet`` spellings load.

**Features** (optional, ``features=<dir>``): one ``<video id>.npz`` per video (e.g.
``001YG.mp4.npz``) with arrays ``person_frames (n,)`` and ``person (n, F)`` (the person box's
features per frame number), ``object_frames (m,)``, ``object_classes (m,)`` (indices into
[`OBJECT_CLASSES`][dsgg_layers.vocab.OBJECT_CLASSES]) and ``objects (m, F)``, and optionally ``union
(m, U)`` (the union region of the person and that object). [`write_action_genome`][] writes this
format.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from dsgg_layers._checks import check_choice, check_positive
from dsgg_layers.data.graph import VideoGraph, VideoGraphDataset
from dsgg_layers.layout import build_track_index, flat_to_tracks
from dsgg_layers.vocab import (
    OBJECT_CLASSES,
    PREDICATE_GROUPS,
    PREDICATES,
    normalize_object_name,
    normalize_predicate_name,
)

__all__ = ["ActionGenome", "write_action_genome"]

_REL_KEYS = {
    "attention": "attention_relationship",
    "spatial": "spatial_relationship",
    "contacting": "contacting_relationship",
}
# Raw spellings (the names without separators), as the annotation files use.
_RAW_PREDICATE = {p: p.replace("_", "") for p in PREDICATES} | {
    "not_contacting": "notcontactingwith"
}
_RAW_OBJECT = {c: c.replace("/", "") for c in OBJECT_CLASSES}


def _load_pickle(path: Path) -> Any:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (expected Action Genome's annotations)")
    with path.open("rb") as f:
        try:
            return pickle.load(f)  # the user's own annotation files
        except Exception as e:  # unpickling junk raises almost anything: name the file
            raise ValueError(f"{path}: not a readable pickle ({type(e).__name__}: {e})") from e


def _split_key(key: object, source: str) -> tuple[str, int]:
    if not isinstance(key, str) or key.count("/") != 1:
        raise ValueError(f"{source}: key {key!r} is not of the form 'VIDEO.mp4/FRAME.png'")
    video, frame = key.split("/")
    stem = frame.rsplit(".", 1)[0]
    if not stem.isdigit():
        raise ValueError(f"{source}: key {key!r} has no frame number ('{frame}')")
    return video, int(stem)


class _Frame:
    """The kept objects of one frame, parsed and checked."""

    __slots__ = ("classes", "frame", "key", "object_boxes", "person_box", "relations", "video")

    def __init__(
        self,
        key: str,
        person: Mapping[str, Any],
        objects: Sequence[Mapping[str, Any]],
        min_box_size: float | None,
    ) -> None:
        self.key = key
        self.video, self.frame = _split_key(key, "person_bbox.pkl")
        bbox = np.asarray(
            person.get("bbox") if isinstance(person, Mapping) else None, dtype=np.float64
        )
        if bbox.ndim != 2 or bbox.shape[1] != 4:
            raise ValueError(
                f"person_bbox.pkl: frame {key!r}: 'bbox' must be an (n, 4) array, got shape "
                f"{bbox.shape}"
            )
        if len(bbox) and not np.isfinite(bbox[0]).all():
            raise ValueError(f"person_bbox.pkl: frame {key!r}: 'bbox' is not finite: {bbox[0]}")
        self.person_box = bbox[0] if len(bbox) else None
        classes, boxes, relations = [], [], []
        for i, obj in enumerate(objects):
            where = f"object_bbox_and_relationship.pkl: frame {key!r}, object {i}"
            if not isinstance(obj, Mapping) or "visible" not in obj or "class" not in obj:
                raise ValueError(f"{where}: expected a dict with 'class' and 'visible'")
            if not obj["visible"]:
                continue
            try:
                cls = OBJECT_CLASSES.index(normalize_object_name(obj["class"]))
            except (ValueError, TypeError):
                raise ValueError(f"{where}: unknown class {obj['class']!r}") from None
            if obj.get("bbox") is None:
                raise ValueError(f"{where}: visible object {obj['class']!r} has no bbox")
            x, y, w, h = (float(v) for v in np.asarray(obj["bbox"], dtype=np.float64).reshape(4))
            if not all(np.isfinite((x, y, w, h))) or w < 0 or h < 0:
                raise ValueError(f"{where}: expected a finite (x, y, w, h) bbox, got {obj['bbox']}")
            if min_box_size is not None and min(w, h) <= min_box_size:
                continue
            labels = np.zeros(len(PREDICATES), dtype=bool)
            for group, field in _REL_KEYS.items():
                names = obj.get(field) or []
                if isinstance(names, str):
                    names = [names]
                for name in names:
                    try:
                        r = PREDICATES.index(normalize_predicate_name(name))
                    except (ValueError, TypeError):
                        raise ValueError(
                            f"{where}: unknown predicate {name!r} in {field}"
                        ) from None
                    if not PREDICATE_GROUPS[group].start <= r < PREDICATE_GROUPS[group].stop:
                        raise ValueError(f"{where}: predicate {name!r} is not a {group} predicate")
                    labels[r] = True
            if cls in classes:
                raise ValueError(f"{where}: a second {OBJECT_CLASSES[cls]!r} in one frame")
            classes.append(cls)
            boxes.append((x, y, x + w, y + h))
            relations.append(labels)
        self.classes = classes
        self.object_boxes = boxes
        self.relations = relations


class ActionGenome(VideoGraphDataset):
    """Action Genome videos as [`VideoGraph`][] items, read from the real annotation files.

    Args:
        root: the dataset folder, holding ``annotations/person_bbox.pkl`` and
            ``annotations/object_bbox_and_relationship.pkl``.
        split: ``"train"`` or ``"test"`` (``metadata['set']`` of a frame's first object).
        object_file: another object file to read instead (e.g. the public code's
            ``object_bbox_and_relationship_filtersmall.pkl``).
        min_box_size: drop objects whose short edge is at most this many pixels (16 for SGCls
            and SGDet, as the public code); ``None`` keeps all.
        min_frames: keep videos with at least this many frames (the public code: 3).
        features: a folder of per-video ``.npz`` feature files (see the module docstring).
        videos: load only these video ids.

    Attributes:
        videos: the loaded videos.
        stats: counts of what was read and dropped (frames of the split, frames without an
            object or a person, videos too short).

    Shape:
        Each item: a ``VideoGraph`` with ``B = 1``, ``T`` frames, ``P`` object classes.

    Raises:
        FileNotFoundError: an annotation or feature file is missing.
        ValueError: a file is malformed (the message names the file, frame key and field).

    Examples:
        >>> import tempfile
        >>> from dsgg_layers.data import SyntheticActionGenome, SyntheticConfig
        >>> root = tempfile.mkdtemp()
        >>> synthetic = SyntheticActionGenome(SyntheticConfig(num_videos=3, num_test_videos=0))
        >>> write_action_genome(synthetic, root, split="train")
        >>> data = ActionGenome(root, split="train")
        >>> len(data), data[0].relations.shape[-1]
        (3, 26)
    """

    def __init__(
        self,
        root: str | Path,
        split: Literal["train", "test"] = "train",
        *,
        object_file: str | Path | None = None,
        min_box_size: float | None = None,
        min_frames: int = 3,
        features: str | Path | None = None,
        videos: Iterable[str] | None = None,
    ) -> None:
        check_choice(split, "split", ("train", "test"))
        check_positive(min_frames, "min_frames")
        if isinstance(videos, str):  # a str would be a set of letters: nothing would match
            raise TypeError(f"videos: expected an iterable of video ids, got the str {videos!r}")
        root = Path(root)
        self.root, self.split = root, split
        persons = _load_pickle(root / "annotations" / "person_bbox.pkl")
        default_objects = root / "annotations" / "object_bbox_and_relationship.pkl"
        objects = _load_pickle(Path(object_file) if object_file is not None else default_objects)
        for name, table in (("person_bbox.pkl", persons), ("object file", objects)):
            if not isinstance(table, Mapping):
                raise ValueError(
                    f"{name}: expected a dict of frame keys, got {type(table).__name__}"
                )
        wanted = set(videos) if videos is not None else None
        stats = dict.fromkeys(
            ("frames_in_split", "no_visible_object", "no_person", "short_videos"), 0
        )
        by_video: dict[str, list[_Frame]] = {}
        sizes: dict[str, tuple[float, float]] = {}
        for key, person in persons.items():
            if key not in objects:
                raise ValueError(f"object file: frame {key!r} of person_bbox.pkl is missing")
            objs = objects[key]
            if not isinstance(objs, Sequence) or not objs:
                raise ValueError(
                    f"object file: frame {key!r}: expected a non-empty list of objects"
                )
            meta = objs[0].get("metadata") if isinstance(objs[0], Mapping) else None
            if not isinstance(meta, Mapping) or "set" not in meta:
                raise ValueError(f"object file: frame {key!r}, object 0: no metadata['set']")
            if meta["set"] != split:
                continue
            video, _ = _split_key(key, "person_bbox.pkl")
            if wanted is not None and video not in wanted:
                continue
            stats["frames_in_split"] += 1
            frame = _Frame(key, person, objs, min_box_size)
            if not frame.classes:
                stats["no_visible_object"] += 1
                continue
            if frame.person_box is None:
                stats["no_person"] += 1
                continue
            by_video.setdefault(video, []).append(frame)
            if "bbox_size" in person:
                sizes.setdefault(video, tuple(float(v) for v in person["bbox_size"]))
        super().__init__()
        for video in sorted(by_video):
            frames = sorted(by_video[video], key=lambda f: f.frame)
            if len(frames) < min_frames:
                stats["short_videos"] += 1
                continue
            feats = _load_features(Path(features), video) if features is not None else None
            self.videos.append(_video_graph(video, frames, sizes.get(video, (480.0, 270.0)), feats))
        self.stats = stats


def _load_features(folder: Path, video: str) -> dict[str, np.ndarray]:
    path = folder / f"{video}.npz"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no feature file for video {video!r}")
    with np.load(path) as data:
        feats = {k: data[k] for k in data.files}
    for k in ("person_frames", "person", "object_frames", "object_classes", "objects"):
        if k not in feats:
            raise ValueError(f"{path}: missing array {k!r}")
    for k, v in feats.items():
        if np.issubdtype(v.dtype, np.floating) and not np.isfinite(v).all():
            raise ValueError(f"{path}: array {k!r} holds {int((~np.isfinite(v)).sum())} NaN/Inf")
    for rows, index in (("person", "person_frames"), ("objects", "object_frames"),
                        ("objects", "object_classes"), ("union", "object_frames")):  # fmt: skip
        if rows not in feats:
            continue
        if feats[rows].ndim != 2 or feats[index].ndim != 1 or len(feats[rows]) != len(feats[index]):
            raise ValueError(
                f"{path}: expected {rows!r} (n, F) with one row per entry of {index!r} (n,), got "
                f"{feats[rows].shape} and {feats[index].shape}"
            )
    return feats


def _feature_rows(
    feats: dict[str, np.ndarray], frame_no: list[int], classes: list[int], video: str
) -> tuple[list[int], list[int]]:
    """Rows of the person and object feature arrays for each (frame, class) pair."""
    person = {int(t): i for i, t in enumerate(feats["person_frames"])}
    pairs = zip(feats["object_frames"].tolist(), feats["object_classes"].tolist(), strict=True)
    objects = {(int(t), int(c)): i for i, (t, c) in enumerate(pairs)}
    try:
        p_rows = [person[t] for t in frame_no]
        o_rows = [objects[t, c] for t, c in zip(frame_no, classes, strict=True)]
    except KeyError as e:
        raise ValueError(f"features of {video!r}: none for frame/class {e.args[0]}") from None
    return p_rows, o_rows


def _video_graph(
    video: str, frames: list[_Frame], size: tuple[float, float], feats: dict[str, np.ndarray] | None
) -> VideoGraph:
    """One video's frames -> a VideoGraph with one track per object class."""
    frame_no = [f.frame for f in frames for _ in f.classes]
    classes = [c for f in frames for c in f.classes]
    every_frame = torch.tensor([f.frame for f in frames])
    index = build_track_index(
        torch.zeros(len(classes), dtype=torch.long),
        torch.tensor(frame_no),
        torch.tensor(classes),
        frames=(torch.zeros_like(every_frame), every_frame),
    )

    def grid(rows: Sequence[Any], dtype: torch.dtype, width: int, fill: float = 0) -> torch.Tensor:
        flat = torch.tensor(np.asarray(rows), dtype=dtype).reshape(len(classes), width)
        return flat_to_tracks(flat, index, fill_value=fill)[0]

    person = [f.person_box for f in frames for _ in f.classes]
    values: dict[str, Any] = {
        "subject_boxes": grid(person, torch.float32, 4),
        "object_boxes": grid([b for f in frames for b in f.object_boxes], torch.float32, 4),
        "object_labels": grid(classes, torch.long, 1, -1)[..., 0],
        "relations": grid([r for f in frames for r in f.relations], torch.bool, len(PREDICATES)),
    }
    if feats is not None:
        p_rows, o_rows = _feature_rows(feats, frame_no, classes, video)
        for name, array, rows in (
            ("subject_features", "person", p_rows),
            ("object_features", "objects", o_rows),
            ("union_features", "union", o_rows),
        ):
            if array in feats:
                values[name] = grid(feats[array][rows], torch.float32, feats[array].shape[1])
    return VideoGraph(
        video_ids=(video,),
        frame_times=index.frame_ids,
        frame_mask=index.frame_mask,
        image_size=torch.tensor([size], dtype=torch.float32),
        mask=index.mask,
        **values,
    )


def write_action_genome(
    videos: Iterable[VideoGraph],
    root: str | Path,
    *,
    split: Literal["train", "test"] = "train",
    features: bool = True,
    append: bool = True,
) -> None:
    """Write videos in Action Genome's annotation format (and the feature format of the loader).

    Writes ``annotations/person_bbox.pkl`` and ``annotations/object_bbox_and_relationship.pkl``
    under ``root`` with the field layout of the real files (person boxes ``xyxy`` with
    ``bbox_score``, ``bbox_size``, ``bbox_mode``, ``keypoints``; objects with ``class``,
    ``bbox`` ``(x, y, w, h)``, the three relationship lists, ``metadata`` ``{'tag', 'set'}`` and
    ``visible``), and ``annotations/object_classes.txt`` / ``relationship_classes.txt`` (when
    missing). Names are spelled as the real files spell them: the class lists in the raw
    spellings (``closetcabinet``, ``lookingat``), the pickles in the separated names
    (``closet/cabinet``, ``looking_at``) that public loaders (STTran's) look up after respelling
    the lists. An object of the video that is not in a frame is written
    as an invisible record, as the real files do. With ``features`` and features in the graphs,
    ``features/<video>.npz`` files are written too. Only ground-truth pairs are written (a
    graph's ``gt`` when it has one).

    Args:
        videos: graphs (each video's pairs: person subject, one object per class per frame).
        root: the folder to write into (created if needed).
        split: the ``metadata['set']`` of the frames written.
        features: also write the per-video feature files.
        append: add to existing annotation files in ``root`` instead of replacing them.

    Raises:
        ValueError: a frame has two objects of one class, or a valid pair's object label is not
            a class (e.g. the padding label -1).

    Examples:
        >>> import tempfile
        >>> from dsgg_layers.data import SyntheticActionGenome, SyntheticConfig
        >>> root = tempfile.mkdtemp()
        >>> write_action_genome(SyntheticActionGenome(SyntheticConfig(num_videos=2)), root)
        >>> sorted(p.stem for p in (Path(root) / "annotations").iterdir())
        ['object_bbox_and_relationship', 'object_classes', 'person_bbox', 'relationship_classes']
    """
    check_choice(split, "split", ("train", "test"))
    root = Path(root)
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    p_path = root / "annotations" / "person_bbox.pkl"
    o_path = root / "annotations" / "object_bbox_and_relationship.pkl"
    persons: dict[str, Any] = _load_pickle(p_path) if append and p_path.is_file() else {}
    objects: dict[str, Any] = _load_pickle(o_path) if append and o_path.is_file() else {}
    _write_class_lists(root / "annotations")
    for graph in videos:
        for b in range(len(graph)):
            rows = _write_video(graph[b].ground_truth, split, persons, objects)
            if features and rows["person"] and rows["objects"]:
                (root / "features").mkdir(exist_ok=True)
                arrays = {k: np.asarray(v) for k, v in rows.items() if v}
                np.savez(root / "features" / f"{graph.video_ids[b]}.npz", **arrays)
    with p_path.open("wb") as f:
        pickle.dump(persons, f)
    with o_path.open("wb") as f:
        pickle.dump(objects, f)


def _numpy(x: torch.Tensor) -> np.ndarray:
    """Features as float32 NumPy rows, whatever their dtype, device or autograd state."""
    return x.detach().to("cpu", torch.float32).numpy()


def _write_class_lists(folder: Path) -> None:
    """``object_classes.txt`` and ``relationship_classes.txt`` in the raw spellings of the real
    files (public loaders read them, then respell a few entries: ``closetcabinet`` becomes
    ``closet/cabinet``, ``lookingat`` becomes ``looking_at``)."""
    for name, names in (
        ("object_classes.txt", [_RAW_OBJECT[c] for c in OBJECT_CLASSES]),
        ("relationship_classes.txt", [_RAW_PREDICATE[p] for p in PREDICATES]),
    ):
        path = folder / name
        if not path.is_file():
            path.write_text("\n".join(names) + "\n")


def _person_record(box: np.ndarray, size: tuple[int, int]) -> dict[str, Any]:
    return {
        "bbox": box[None].astype(np.float32),
        "bbox_score": np.ones(1, dtype=np.float32),
        "bbox_size": size,
        "bbox_mode": "xyxy",
        "keypoints": np.zeros((1, 17, 3), dtype=np.float32),
        "keypoints_logits": np.zeros((1, 17), dtype=np.float32),
    }


def _object_record(
    name: str, meta: dict[str, str], box: Sequence[float] | None, relations: torch.Tensor | None
) -> dict[str, Any]:
    """A visible object (box ``xyxy`` and its 26 labels) or, without a box, an invisible one."""
    record: dict[str, Any] = {"class": name, "metadata": meta, "visible": box is not None}
    if box is None or relations is None:
        return record | {"bbox": None} | dict.fromkeys(_REL_KEYS.values())
    x1, y1, x2, y2 = box
    record["bbox"] = (x1, y1, x2 - x1, y2 - y1)
    for group, field in _REL_KEYS.items():
        span = range(PREDICATE_GROUPS[group].start, PREDICATE_GROUPS[group].stop)
        record[field] = [PREDICATES[r] for r in span if relations[r]]  # the pickles' spelling
    return record


def _write_video(
    g: VideoGraph, split: str, persons: dict[str, Any], objects: dict[str, Any]
) -> dict[str, list[Any]]:
    """Add one video (``B = 1``) to the two annotation tables; return its feature rows."""
    video = g.video_ids[0]
    size = (int(g.image_size[0, 0]), int(g.image_size[0, 1]))
    mask, labels = g.mask[0], g.object_labels[0]
    classes = sorted({int(c) for c in labels[mask].tolist()})
    if classes and not 0 <= classes[0] <= classes[-1] < len(OBJECT_CLASSES):
        bad = classes[0] if classes[0] < 0 else classes[-1]  # -1 would be written as 'window'
        raise ValueError(
            f"videos: video {video!r} has object label {bad} at a valid pair, expected "
            f"0..{len(OBJECT_CLASSES) - 1}"
        )
    rows: dict[str, list[Any]] = {
        k: []
        for k in ("person_frames", "person", "object_frames", "object_classes", "objects", "union")
    }
    for t in range(int(g.frame_mask[0].sum())):
        present = mask[t].nonzero().flatten().tolist()
        if not present:
            continue
        frame = int(g.frame_times[0, t])
        key = f"{video}/{frame:06d}.png"
        persons[key] = _person_record(
            g.subject_boxes[0, t, present[0]].detach().cpu().double().numpy(), size
        )
        by_class: dict[int, int] = {}
        for p in present:
            if int(labels[t, p]) in by_class:
                name = OBJECT_CLASSES[int(labels[t, p])]
                raise ValueError(f"videos: frame {key!r} has two objects of class {name!r}")
            by_class[int(labels[t, p])] = p
        records = []
        for c in classes:
            name = OBJECT_CLASSES[c]  # the pickles spell classes as public loaders look them up
            meta = {"tag": f"{video}/{_RAW_OBJECT[name]}/{frame:06d}", "set": split}
            p = by_class.get(c)
            box = None if p is None else g.object_boxes[0, t, p].double().tolist()
            records.append(
                _object_record(name, meta, box, None if p is None else g.relations[0, t, p])
            )
            if p is not None and g.object_features is not None:
                rows["object_frames"].append(frame)
                rows["object_classes"].append(c)
                rows["objects"].append(_numpy(g.object_features[0, t, p]))
                if g.union_features is not None:
                    rows["union"].append(_numpy(g.union_features[0, t, p]))
        objects[key] = records
        if g.subject_features is not None:
            rows["person_frames"].append(frame)
            rows["person"].append(_numpy(g.subject_features[0, t, present[0]]))
    return rows
