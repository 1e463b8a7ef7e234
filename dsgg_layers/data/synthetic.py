"""A synthetic Action-Genome-format benchmark on which motion and context decide the predicates.

The library's embedded default dataset (the data of the README's main job). A seeded generator
draws videos of one person and a few objects moving over irregularly sampled key frames, with
per-box visual features, class semantics and union-region features, and labels every pair in every
frame with the 26 Action Genome predicates by rules:

- **Contacting** (one per pair, long-tailed like AG's; a second one where the situation is
  ambiguous). Four predicates are decided by *motion over several frames only*: ``touching``
  (the object stays put while the person reaches toward it and back),
  ``holding`` (the hand moves the object about while the person stands still), ``carrying`` (the
  object moves with a walking person) and ``drinking_from`` (the cup repeatedly approaches the
  mouth). The four share one union-region appearance code, one distribution of the object's
  position relative to the person in a single frame (along the hand-mouth segment, with the
  arcsine law of an oscillation) and overlapping object classes, so a single frame cannot tell
  them apart. The other contacting predicates (sitting_on, wearing, not_contacting, ...) are
  decided by geometry, object class and an appearance code that the rare ones largely share with
  the frequent ones, visible in one frame.
- **Spatial** (object -> person, multi-label) by geometry: ``on_the_side_of`` when the boxes barely
  overlap horizontally, else ``in_front_of``/``behind`` by a latent depth that the object
  features reveal noisily; ``above``/``beneath`` by the object's height against the person's;
  ``in`` when a much larger object contains the person's centre.
- **Attention** (one per pair) by a latent gaze: the person looks at one of the objects (or
  nowhere), switching now and then; ``looking_at`` when the object lies within 20 degrees of the
  gaze, ``unsure`` in frames where the face is hidden; the person's features show the gaze
  direction noisily. People mostly look at what their hands are busy with.

The difficulty comes from the sources Action Genome has (``SyntheticConfig``'s difficulty fields):
look-alike object classes, rare predicates that look like frequent ones, objects that leave and
re-enter the view, multi-label contacting annotations, and detectors that jitter, miss,
duplicate, invent and misclassify boxes.

Three variants, as on Action Genome: PredCls and SGCls use the ground-truth pairs (SGCls models
must predict the object classes from the features); SGDet pairs the detected person with detected
objects: boxes jittered, objects missed, spurious detections (persistent false-positive tracks),
wrong classes, detector scores; detected pairs inherit the relations of the ground-truth pair they
overlap with IoU >= 0.5.

Everything is reproducible from ``SyntheticConfig.seed``: each video is drawn from its own
generator seeded by ``(seed, split, index)``, so a video does not depend on how many others are
drawn, and the "world" (class prototypes, appearance codes) from ``seed`` alone, shared by the
splits.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from dsgg_layers._checks import check_choice
from dsgg_layers.data.graph import VideoGraph, VideoGraphDataset
from dsgg_layers.data.language import predicate_text_vectors
from dsgg_layers.vocab import OBJECT_CLASSES, PREDICATE_GROUPS, PREDICATES

__all__ = [
    "MOTION_PREDICATES",
    "SyntheticActionGenome",
    "SyntheticConfig",
]

Mode = Literal["predcls", "sgcls", "sgdet"]
Split = Literal["train", "test"]
_MODES = ("predcls", "sgcls", "sgdet")
_SPLITS = ("train", "test")

MOTION_PREDICATES: tuple[str, ...] = ("touching", "holding", "carrying", "drinking_from")
"""The contacting predicates that only motion over several frames decides on this benchmark."""

_P = {name: i for i, name in enumerate(PREDICATES)}
_C = {name: i for i, name in enumerate(OBJECT_CLASSES)}

# Object size (width, height) ranges in pixels of a 480 x 270 frame, by class.
_SMALL = ((14, 26), (16, 32))
_MEDIUM = ((30, 60), (28, 55))
_LARGE = ((70, 130), (60, 120))
_HUGE = ((160, 300), (70, 130))
_SIZE = {c: _MEDIUM for c in OBJECT_CLASSES}
_SIZE.update(
    {
        c: _SMALL
        for c in ("cup/glass/bottle", "phone/camera", "doorknob", "medicine", "food", "sandwich")
    }
)
_SIZE.update({c: _SMALL for c in ("dish", "shoe", "light")})
_SIZE.update(
    {c: _LARGE for c in ("chair", "table", "door", "doorway", "shelf", "closet/cabinet", "window")}
)
_SIZE.update({c: _LARGE for c in ("refrigerator", "blanket", "television")})
_SIZE.update({c: _HUGE for c in ("bed", "sofa/couch", "floor")})

_HANDHELD = (
    "cup/glass/bottle", "phone/camera", "book", "bag", "food", "box", "paper/notebook", "laptop",
    "dish", "medicine", "towel", "pillow", "sandwich", "groceries", "clothes", "shoe", "broom",
)  # fmt: skip
# The class list of holding, touching and carrying: a cup in about 30% of cases (the list is drawn
# from uniformly), so that a cup alone does not give drinking_from away.
_HANDHELD_CUPS = _HANDHELD + ("cup/glass/bottle",) * 6


@dataclass(frozen=True)
class _Behaviour:
    """How a contacting predicate looks: object classes, placement, motion, appearance code."""

    weight: float  # relative frequency (long-tailed, after AG's)
    classes: tuple[str, ...]
    anchor: str  # placement relative to the person (see _Video._place)
    moves: bool  # the object moves with the person (else it stays where it is in the world)
    modes: tuple[str, ...]  # what the person may be doing: "still", "shifting", "walking"
    depth: float  # probability that the object is in front of the person
    code: str  # union-region appearance code


_STILL, _SHIFT, _WALK = "still", "shifting", "walking"
_NOT_WALKING = (_STILL, _SHIFT)
_ANY = (_STILL, _SHIFT, _WALK)
_SEATS = ("chair", "sofa/couch", "bed", "floor", "table")
_FURNITURE = ("table", "door", "shelf", "closet/cabinet", "refrigerator", "doorway", "window")
_BEHAVIOURS: dict[str, _Behaviour] = {
    # The four motion-decided predicates: same classes (drinking: cups), same placement law, same
    # appearance code; only the dynamics differ.
    "holding": _Behaviour(0.24, _HANDHELD_CUPS, "segment", True, (_STILL,), 0.85, "hand"),
    "touching": _Behaviour(0.10, _HANDHELD_CUPS, "segment", False, (_SHIFT,), 0.85, "hand"),
    "carrying": _Behaviour(0.10, _HANDHELD_CUPS, "segment", True, (_WALK,), 0.85, "hand"),
    "drinking_from": _Behaviour(0.05, ("cup/glass/bottle",), "drink", True, (_STILL,), 0.9, "hand"),
    # Decided in a single frame by geometry and appearance.
    "not_contacting": _Behaviour(0.20, OBJECT_CLASSES[1:], "far", False, _ANY, 0.5, "none"),
    "sitting_on": _Behaviour(0.08, _SEATS, "seat", False, _NOT_WALKING, 0.3, "sit"),
    "wearing": _Behaviour(0.04, ("clothes", "shoe", "bag"), "worn", True, _ANY, 0.6, "wear"),
    "other_relationship": _Behaviour(
        0.03, OBJECT_CLASSES[1:], "near", False, _NOT_WALKING, 0.5, "other"
    ),
    "standing_on": _Behaviour(0.03, ("floor",), "floor", False, _ANY, 0.2, "stand"),
    "lying_on": _Behaviour(
        0.025, ("bed", "sofa/couch", "floor"), "bed", False, (_STILL,), 0.3, "lie"
    ),
    "eating": _Behaviour(0.025, ("food", "sandwich"), "mouth", True, (_STILL,), 0.9, "eat"),
    "leaning_on": _Behaviour(0.02, _FURNITURE, "beside", False, _NOT_WALKING, 0.5, "lean"),
    "covered_by": _Behaviour(
        0.015, ("blanket", "clothes", "pillow"), "cover", False, (_STILL,), 0.8, "cover"
    ),
    "wiping": _Behaviour(
        0.01,
        ("table", "dish", "towel", "mirror", "window"),
        "hand",
        False,
        _NOT_WALKING,
        0.8,
        "wipe",
    ),
    "writing_on": _Behaviour(
        0.008, ("paper/notebook", "book"), "hand", False, _NOT_WALKING, 0.9, "write"
    ),
    "twisting": _Behaviour(
        0.006,
        ("doorknob", "medicine", "cup/glass/bottle"),
        "hand",
        False,
        _NOT_WALKING,
        0.8,
        "twist",
    ),
    "have_it_on_the_back": _Behaviour(0.004, ("bag",), "back", True, _ANY, 0.05, "back"),
}
_CODES = tuple(sorted({b.code for b in _BEHAVIOURS.values()}))
_MOTION_CODE = _BEHAVIOURS["holding"].code  # the one look of the four motion predicates
_HANDS_BUSY = frozenset(("holding", "drinking_from", "eating", "wiping", "writing_on", "twisting"))
_SPATIAL = tuple(range(PREDICATE_GROUPS["spatial"].start, PREDICATE_GROUPS["spatial"].stop))
# The most objects a video can hold: the classes the least permissive mode of the person allows.
_MAX_OBJECTS = min(
    len({c for spec in _BEHAVIOURS.values() if mode in spec.modes for c in spec.classes})
    for mode in (_STILL, _SHIFT, _WALK)
)


@dataclass(frozen=True)
class SyntheticConfig:
    """Everything that decides the synthetic benchmark; equal configs give equal data.

    The defaults make a benchmark that a small model learns in a few minutes on a CPU (the
    README's main job) and that is about as hard as Action Genome for an STTran-style baseline
    (``benchmarks/synthetic_profile.py``), with two phenomena the papers exploit at a
    documented level (``bystanders``, ``text_coupling``: 0 gives the benchmark of before
    2026-12-07 bit for bit); [`action_genome_test_scale`][] matches the size of
    Action Genome's test set (the performance benchmarks' workload). Setting the difficulty
    fields ``class_similarity``, ``code_sharing``, ``label_ambiguity``, ``attention_coupling``
    and ``det_duplicates`` to 0, ``reach_scale`` to 1, ``objects=(1, 4)``, ``visibility=0.9``,
    ``det_jitter=0.05`` and ``det_accuracy=0.8`` gives the easy benchmark of versions before
    the difficulty fields.

    Args:
        num_videos: videos per split (``{"train": n, "test": m}`` via ``num_test_videos``).
        num_test_videos: videos of the test split.
        frames: inclusive range of key frames per video.
        objects: inclusive range of objects per video (at most 35: one per object class).
        frame_gap: inclusive range of real frames between consecutive key frames.
        image_size: ``(width, height)`` of the frames.
        feature_dim: width ``F`` of the per-box visual features.
        union_dim: width ``U`` of the union-region features.
        semantic_dim: width of the class-semantics vectors.
        walking: probability that the person walks through the video.
        shifting: probability that the person shifts their weight back and forth (a reach of
            6-10 px times ``reach_scale`` toward the object they touch); otherwise they stand
            still.
        visibility: probability that an object is annotated in a frame (it leaves the view or
            is occluded otherwise); with up to 6 objects at 0.65, about 2.3 pairs a frame, as on
            Action Genome, with more crowded frames than with fewer, always-visible objects.
        box_noise: standard deviation of the annotation noise on box corners, in pixels.
        feature_noise: standard deviation of the noise on visual features.
        union_noise: standard deviation of the noise on union features.
        unsure: probability that a frame hides the person's face (attention ``unsure``).
        det_jitter: SGDet box jitter, as a fraction of the box size.
        det_miss: SGDet probability of missing an object in a frame.
        det_spurious: SGDet mean number of spurious (false-positive) tracks per video.
        det_accuracy: SGDet probability that a detection has the right class.
        det_duplicates: SGDet probability that an object also has a duplicate detection track
            (a shifted box of the same class that non-maximum suppression let through, in about
            70% of the frames where the object is detected, with a lower score; it inherits the
            object's relations where it overlaps it with IoU >= 0.5, as any detection does).
        bystanders: SGDet mean number of unannotated objects per video: real objects of the
            scene that the person has no relation with, so Action Genome's annotators left them
            out, but that the detector finds like any object (same confidences, same class
            accuracy, in about 80% of the frames). Their pairs are RS-Net's "pairs that merely
            coexist in the frame": negatives that the detector's confidence cannot tell apart.
            They look like any object the person does not touch (the union look of
            ``not_contacting``), placed anywhere in the frame. 0 adds none. The default, 4
            (3.2 a frame, against about 2.3 annotated pairs a frame), is a judgment from how the
            real data are made, not a count: Action Genome annotates only the objects a person
            interacts with (about 2 boxes a frame: 476,229 on 234,253 frames), while STTran's
            SGDet detector keeps every detection of its 35 classes that scores over 0.1 after
            per-class NMS, and indoor Charades rooms show several of those classes (floor,
            door, window, light, table, chair, shelf, ...) in most frames; so at least as many
            unannotated as annotated objects a frame.
        class_similarity: how far the appearance prototypes of visually similar object classes
            (Action Genome's look-alikes: cup/glass/bottle, dish, food; sofa, chair, bed; ...)
            are pulled toward their group's mean (0: distinct classes, 1: one appearance a group).
            Makes SGCls and SGDet harder, as on Action Genome.
        code_sharing: how far the union-region appearance codes of the single-frame contacting
            behaviours (all but the four motion predicates, which already share one look) are
            pulled toward their mean (0: every behaviour has its own look, 1: one look): the rare
            ones then look like the frequent ``not_contacting`` and ``sitting_on`` and must be
            told apart by geometry, object class and context.
        text_coupling: how far each contacting behaviour's appearance code (after
            ``code_sharing``) is pulled toward its predicate's direction in text space
            ([`PREDICATE_TEXT_SIMILARITY`][dsgg_layers.data.language.PREDICATE_TEXT_SIMILARITY],
            measured with WordLlama; a random isometry into the union width, norm kept): 0
            independent of any text, 1 the text geometry itself. Real data: a relation's look
            and its sentence are related (CLIP is trained to align them), which is what the
            text-based heads exploit (MoSA's ASM, TR²'s sentence classifier, ARN's
            CLIP-initialised classifier); ``--random-text`` keeps the control without it. The
            default, 0.5 (the looks' similarities then correlate 0.65 with the texts'), is a
            middle level, not a measurement: the real one needs CLIP image embeddings of
            Action Genome's union crops, which cannot be computed offline.
        annotation_noise: probability that a ground-truth pair-frame has one spatial label
            flipped (added or removed), the multi-label ambiguity of Action Genome's annotations.
        label_ambiguity: probability that a ground-truth pair carries, over its whole track, a
            second contacting label: another single-frame behaviour that its object class and the
            person's mode also allow (sitting on a floor also "standing on" it, a worn bag also
            "on the back"), the multi-label contacting annotations of Action Genome. The motion
            predicates neither get nor give a second label, so that motion still decides them.
        reach_scale: factor on the reach of a person who shifts their weight toward the object
            they touch (6-10 px at 1): a larger reach shows ``touching``'s motion in more frames
            (at 1, a model calls nearly every ``touching`` pair ``holding``).
        gaze_switching: probability that, at a key frame, the person's gaze picks a new target
            (one of the objects or nowhere, the current one included): how often the attention
            predicates change, the main source of relation changes (TR²'s phenomenon: 38.9%
            of the annotated training pair-frames differ from the pair's previous frame at the
            default 0.35, 31.2% at 0, 49.5% at 1: ``benchmarks/synthetic_profile.py``'s
            statistic; spatial changes and ``attention_coupling`` make the rest). The change is
            visible: the person's features show the gaze. Action Genome's share is not
            published; the default is the benchmark's rate since its first version.
        attention_coupling: probability that, in a frame, the person looks at an object their
            hands are busy with (holding, drinking from, eating, wiping, writing on, twisting):
            the co-occurrence between attention and contacting predicates of Action Genome.
        seed: the seed of everything.

    Examples:
        >>> SyntheticConfig(num_videos=10).replace(seed=3).seed
        3
    """

    num_videos: int = 600
    num_test_videos: int = 200
    frames: tuple[int, int] = (6, 16)
    objects: tuple[int, int] = (1, 6)
    frame_gap: tuple[int, int] = (2, 8)
    image_size: tuple[int, int] = (480, 270)
    feature_dim: int = 64
    union_dim: int = 64
    semantic_dim: int = 32
    walking: float = 0.3
    shifting: float = 0.3
    visibility: float = 0.65
    box_noise: float = 0.5
    feature_noise: float = 1.0
    union_noise: float = 1.0
    unsure: float = 0.05
    det_jitter: float = 0.1
    det_miss: float = 0.1
    det_spurious: float = 5.5
    det_accuracy: float = 0.6
    det_duplicates: float = 0.1
    bystanders: float = 4.0
    class_similarity: float = 0.75
    code_sharing: float = 0.8
    text_coupling: float = 0.5
    annotation_noise: float = 0.0
    label_ambiguity: float = 0.25
    attention_coupling: float = 0.6
    gaze_switching: float = 0.35
    reach_scale: float = 6.0
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("num_videos", "num_test_videos", "feature_dim", "union_dim", "semantic_dim"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name}: expected a non-negative int, got {value!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise ValueError(f"seed: expected a non-negative int, got {self.seed!r}")
        for name in ("frames", "objects", "frame_gap"):
            value = getattr(self, name)
            if not (
                isinstance(value, tuple | list)
                and len(value) == 2
                and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
            ):
                raise TypeError(f"{name}: expected a range (lo, hi) of two ints, got {value!r}")
            lo, hi = value
            if not 1 <= lo <= hi:
                raise ValueError(
                    f"{name}: expected a range (lo, hi) with 1 <= lo <= hi, got {(lo, hi)}"
                )
        w, h = self.image_size
        if not (isinstance(w, int | float) and isinstance(h, int | float)) or not (
            w >= 300 and h >= 250 and math.isfinite(w) and math.isfinite(h)
        ):  # the person box is up to 95 x 215 px, placed with a 5 px margin
            raise ValueError(f"image_size: expected at least (300, 250), got {self.image_size!r}")
        for name in ("box_noise", "feature_noise", "union_noise", "det_jitter", "det_spurious",
                     "reach_scale", "bystanders"):  # fmt: skip
            value = getattr(self, name)
            if not (isinstance(value, int | float) and 0 <= value < math.inf):
                raise ValueError(f"{name}: expected a finite number >= 0, got {value!r}")
        for name in ("walking", "shifting", "visibility", "unsure", "det_miss", "det_accuracy",
                     "det_duplicates", "class_similarity", "code_sharing", "text_coupling",
                     "annotation_noise",
                     "label_ambiguity", "attention_coupling", "gaze_switching"):  # fmt: skip
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name}: expected a probability, got {getattr(self, name)}")
        if self.objects[1] > _MAX_OBJECTS:  # one object per class: more never fit (a hang)
            raise ValueError(
                f"objects: expected at most {_MAX_OBJECTS} objects a video (one per class the "
                f"person's behaviours allow), got {self.objects}"
            )
        if self.walking + self.shifting > 1:
            raise ValueError(
                f"walking + shifting: expected at most 1, got {self.walking + self.shifting}"
            )

    def replace(self, **changes: object) -> SyntheticConfig:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    @classmethod
    def action_genome_test_scale(cls, **changes: object) -> SyntheticConfig:
        """Action Genome's test-set size: 1,737 videos of about 24 key frames (about 41,000
        frames), about 2.1 ground-truth pairs a frame and about 6 detected pairs in SGDet.

        Examples:
            >>> SyntheticConfig.action_genome_test_scale().num_test_videos
            1737
        """
        base = cls(
            num_videos=0, num_test_videos=1737, frames=(20, 28), objects=(1, 4), visibility=0.85
        )
        return base.replace(**changes)


# Object classes that look alike in Action Genome's frames (confused by detectors and SGCls).
_LOOK_ALIKES = (
    ("cup/glass/bottle", "dish", "food", "sandwich", "groceries"),
    ("sofa/couch", "chair", "bed"),
    ("paper/notebook", "book", "laptop", "phone/camera", "picture"),
    ("closet/cabinet", "shelf", "refrigerator", "table"),
    ("door", "doorway", "doorknob", "window", "mirror"),
    ("towel", "clothes", "blanket", "pillow", "shoe", "bag"),
    ("television", "light", "vacuum", "broom", "medicine"),
)


class _World:
    """What all videos of a seed share: class prototypes, appearance codes, projections."""

    def __init__(self, cfg: SyntheticConfig) -> None:
        rng = np.random.default_rng([cfg.seed, 7919])
        F, U = cfg.feature_dim, cfg.union_dim
        self.prototypes = rng.standard_normal((len(OBJECT_CLASSES), F)) * 0.45
        self.semantics = rng.standard_normal((len(OBJECT_CLASSES), cfg.semantic_dim))
        self.semantics /= np.linalg.norm(self.semantics, axis=1, keepdims=True)
        self.codes = {
            c: v for c, v in zip(_CODES, rng.standard_normal((len(_CODES), U)) * 0.6, strict=True)
        }
        if cfg.code_sharing > 0:  # the single-frame behaviours' looks pulled toward their mean
            shared = [c for c in _CODES if c != _MOTION_CODE]
            mean = np.mean([self.codes[c] for c in shared], axis=0)
            for c in shared:
                self.codes[c] = (1 - cfg.code_sharing) * self.codes[c] + cfg.code_sharing * mean
        if cfg.text_coupling > 0:  # the final looks follow the predicates' text (own stream)
            text = predicate_text_vectors()
            gauss = np.random.default_rng([cfg.seed, 104729]).standard_normal((U, text.shape[1]))
            proj = np.linalg.qr(gauss)[0].T if U >= text.shape[1] else gauss.T  # isometric
            for c in _CODES:
                rows = [PREDICATES.index(p) for p, b in _BEHAVIOURS.items() if b.code == c]
                t = text[rows].mean(0) @ proj
                t *= np.linalg.norm(self.codes[c]) / np.linalg.norm(t)
                self.codes[c] = (1 - cfg.text_coupling) * self.codes[c] + cfg.text_coupling * t
        self.geometry = rng.standard_normal((8, U)) * 0.5
        # Directions in feature space of the latent depth, the gaze and the hidden face.
        self.depth, self.gaze_x, self.gaze_y, self.hidden = _unit(rng.standard_normal((4, F)))
        if cfg.class_similarity > 0:  # look-alike classes pulled toward their group's mean
            for group in _LOOK_ALIKES:
                idx = [OBJECT_CLASSES.index(c) for c in group]
                mean = self.prototypes[idx].mean(0)
                self.prototypes[idx] = (1 - cfg.class_similarity) * self.prototypes[
                    idx
                ] + cfg.class_similarity * mean


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _reflect(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Fold ``x`` into ``[lo, hi]`` like a ball bouncing between walls (a triangle wave)."""
    span = hi - lo
    y = np.mod(x - lo, 2 * span)
    return lo + np.where(y > span, 2 * span - y, y)


def _boxes(center: np.ndarray, size: np.ndarray) -> np.ndarray:
    """``xyxy`` boxes from centres ``(..., 2)`` and sizes ``(..., 2)``."""
    return np.concatenate((center - size / 2, center + size / 2), axis=-1)


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lt, rb = np.maximum(a[..., :2], b[..., :2]), np.minimum(a[..., 2:], b[..., 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=-1)
    area = lambda r: np.prod(np.clip(r[..., 2:] - r[..., :2], 0, None), axis=-1)  # noqa: E731
    union = area(a) + area(b) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def _matched(
    person: np.ndarray, boxes: np.ndarray, gt_person: np.ndarray, gt_boxes: np.ndarray
) -> np.ndarray:
    """Detected pairs ``(T, N)`` whose person and object boxes both overlap the ground truth's
    with IoU >= 0.5 (they take its relations)."""
    return (_iou(boxes, gt_boxes) >= 0.5) & (_iou(person, gt_person)[:, None] >= 0.5)


def _jitter(
    boxes: np.ndarray, rng: np.random.Generator, sigma: float, clip: np.ndarray
) -> np.ndarray:
    """``boxes`` with corner noise of ``sigma`` times the box size, clipped to the image."""
    wh = np.concatenate([boxes[..., 2:] - boxes[..., :2]] * 2, -1)
    out = np.clip(boxes + rng.normal(0, sigma, boxes.shape) * wh, 0, clip)
    out[..., 2:] = np.maximum(out[..., 2:], out[..., :2])
    return out


_GAZE_SWITCHING = 0.35  # the default: the gaze chain of the main stream, as it always was


def _own_stream(rng: np.random.Generator, key: int) -> np.random.Generator:
    """A generator keyed by ``key`` under ``rng``'s seed, spawning nothing: unlike
    [`_substream`][], creating it leaves the later substreams as they were."""
    seq = rng.bit_generator.seed_seq
    return np.random.default_rng(
        np.random.SeedSequence(seq.entropy, spawn_key=(*seq.spawn_key, 2**31 + key))
    )


def _substream(rng: np.random.Generator) -> np.random.Generator:
    """A generator of its own, spawned from ``rng``'s seed: drawing from it leaves ``rng``'s
    draws as they were (how each difficulty field changes only what it names)."""
    return np.random.default_rng(rng.bit_generator.seed_seq.spawn(1)[0])


def _placed_boxes(
    rng: np.random.Generator, classes: np.ndarray, T: int, wobble: float, W: float, H: float
) -> np.ndarray:
    """``(T, k, 4)`` boxes of objects that stay in place: a size of the class, a random centre,
    a per-frame wobble of ``wobble`` px; clipped to the frame."""
    boxes = np.zeros((T, len(classes), 4))
    for j, c in enumerate(classes):  # k tracks (data generation, not a model)
        (w0, w1), (h0, h1) = _SIZE[OBJECT_CLASSES[c]]
        size = np.array([rng.uniform(w0, w1), rng.uniform(h0, h1)])
        center = rng.uniform(size / 2, np.array([W, H]) - size / 2) + rng.normal(0, wobble, (T, 2))
        boxes[:, j] = _boxes(center, size)
    return np.clip(boxes, 0, np.array([W, H, W, H]))


def _misclassified(rng: np.random.Generator, classes: np.ndarray, T: int) -> np.ndarray:
    """``(T, k)``: for every frame, an object class other than each track's true one."""
    num_objects = len(OBJECT_CLASSES) - 1  # classes 1..35 (0 is the person)
    return 1 + (classes - 1 + rng.integers(1, num_objects, size=(T, len(classes)))) % num_objects


def _append_tracks(d: dict[str, np.ndarray], extra: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The detections ``d`` with the tracks of ``extra`` appended along the track axis."""
    return {
        key: d[key] if key not in extra else np.concatenate((d[key], extra[key]), 1) for key in d
    }


class _Video:
    """One video drawn from its own generator: ground truth and detections, as numpy arrays."""

    def __init__(self, cfg: SyntheticConfig, world: _World, rng: np.random.Generator) -> None:
        self.cfg, self.world, self.rng = cfg, world, rng
        W, H = cfg.image_size
        T = int(rng.integers(cfg.frames[0], cfg.frames[1] + 1))
        gaps = rng.integers(*cfg.frame_gap, size=T, endpoint=True)
        self.tau = (rng.integers(1, 40) + np.cumsum(gaps)).astype(np.int64)
        tau = self.tau.astype(np.float64)[:, None]

        # The person stands still, shifts their weight to and fro, or walks.
        pw, ph = rng.uniform(50, 85), rng.uniform(140, 205)
        self.person_size = np.array([pw, ph])
        r = rng.random()
        walk, shift = cfg.walking, cfg.walking + cfg.shifting
        self.mode = _WALK if r < walk else _SHIFT if r < shift else _STILL
        lo, hi = np.array([pw / 2 + 5, ph / 2 + 5]), np.array([W - pw / 2 - 5, H - ph / 2 - 5])
        c0 = rng.uniform(lo, hi)

        # The objects: a behaviour (contacting predicate) the person's mode allows, then a class
        # it allows (one object per class, as on Action Genome), then where it sits.
        n = int(rng.integers(cfg.objects[0], cfg.objects[1] + 1))
        names = [b for b, spec in _BEHAVIOURS.items() if self.mode in spec.modes]
        weights = np.array([_BEHAVIOURS[b].weight for b in names])
        self.behaviours: list[str] = []
        self.classes: list[int] = []
        while len(self.classes) < n:
            b = names[rng.choice(len(names), p=weights / weights.sum())]
            free = [c for c in _BEHAVIOURS[b].classes if _C[c] not in self.classes]
            if free:
                self.behaviours.append(b)
                self.classes.append(_C[free[rng.integers(len(free))]])
        places = [self._place(b, c, c0) for b, c in zip(self.behaviours, self.classes, strict=True)]

        # The person's path. Shifting sways toward the first touched object (a reach), so that
        # the distance to it changes while the object stays put.
        if self.mode == _WALK:
            direction = np.array([rng.choice([-1.0, 1.0]), rng.uniform(-0.15, 0.15)])
            pc = _reflect(c0 + tau * rng.uniform(1.0, 2.2) * direction, lo, hi)
        else:
            touched = [
                p[0] for p, b in zip(places, self.behaviours, strict=True) if b == "touching"
            ]
            direction = _unit(touched[0][0]) if touched else np.array([1.0, 0.0])
            amplitude = rng.uniform(6, 10) if self.mode == _SHIFT else rng.uniform(0.0, 0.5)
            if self.mode == _SHIFT:
                amplitude *= cfg.reach_scale
            wave = np.sin(2 * np.pi * tau / rng.uniform(20, 40) + rng.uniform(0, 2 * np.pi))
            pc = c0 + wave * amplitude * direction
        self.person_center = pc

        # Objects that move with the person keep their offset; the others stay where they were.
        centers = []
        for (offset, center, _), b in zip(places, self.behaviours, strict=True):
            if center is None:
                center = (
                    pc + offset
                    if _BEHAVIOURS[b].moves
                    else np.broadcast_to(pc[0] + offset[0], pc.shape)
                )
            centers.append(center)
        self.object_center = np.stack(centers, axis=1)  # (T, N, 2)
        self.object_size = np.stack([p[2] for p in places])  # (N, 2)
        self.front = np.array([rng.random() < _BEHAVIOURS[b].depth for b in self.behaviours])

        # Visibility: each object in most frames, and every frame shows at least one object.
        vis = rng.random((T, n)) < cfg.visibility
        vis[~vis.any(1), rng.integers(n)] = True
        self.visible = vis

        clip = np.array([W, H, W, H], dtype=np.float64)
        noise = rng.normal(0, cfg.box_noise, size=(T, n + 1, 4))
        self.person_boxes = np.clip(_boxes(pc, self.person_size) + noise[:, 0], 0, clip)
        boxes = np.clip(_boxes(self.object_center, self.object_size) + noise[:, 1:], 0, clip)
        boxes[..., 2:] = np.maximum(boxes[..., 2:], boxes[..., :2])
        self.object_boxes = boxes
        self.relations = self._label()
        if cfg.label_ambiguity > 0:  # a stream of its own: the other draws stay as they were
            self._second_labels(_substream(rng))
        if cfg.annotation_noise > 0:  # a stream of its own: the other draws stay as they were
            noise_rng = _substream(rng)
            flip = noise_rng.random(self.relations.shape[:2]) < cfg.annotation_noise
            which = noise_rng.integers(0, len(_SPATIAL), size=self.relations.shape[:2])
            t, k = np.nonzero(flip)
            cols = np.asarray(_SPATIAL)[which[t, k]]
            self.relations[t, k, cols] = ~self.relations[t, k, cols]

    def _second_labels(self, rng: np.random.Generator) -> None:
        """Give some pairs a second contacting label their situation also allows (multi-label)."""
        for k, (b, c) in enumerate(zip(self.behaviours, self.classes, strict=True)):
            if b in MOTION_PREDICATES or rng.random() >= self.cfg.label_ambiguity:
                continue
            name = OBJECT_CLASSES[c]
            others = [
                o
                for o, spec in _BEHAVIOURS.items()
                if o not in (b, "not_contacting", *MOTION_PREDICATES)
                and name in spec.classes
                and self.mode in spec.modes
            ]
            if others:
                second = others[rng.integers(len(others))]
                self.relations[:, k, _P[second]] = self.visible[:, k]

    def _place(
        self, behaviour: str, cls: int, c0: np.ndarray
    ) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray]:
        """Where an object sits: ``(offset from the person (T, 2), None, size)`` or, for objects
        placed in the world, ``(None, centre (T, 2), size)``."""
        rng, cfg = self.rng, self.cfg
        W, H = cfg.image_size
        T = len(self.tau)
        (w0, w1), (h0, h1) = _SIZE[OBJECT_CLASSES[cls]]
        size = np.array([rng.uniform(w0, w1), rng.uniform(h0, h1)])
        pw, ph = self.person_size
        tau = self.tau.astype(np.float64)[:, None]
        side = rng.choice([-1.0, 1.0])
        hand = np.array([side * 0.55 * pw, 0.05 * ph])
        mouth = np.array([side * 0.1 * pw, -0.36 * ph])
        anchor = _BEHAVIOURS[behaviour].anchor
        if anchor in ("segment", "drink"):
            # A point on the hand-mouth segment. Drinking moves it to and fro; otherwise it stays
            # at a point drawn from the arcsine law, the law of the drinking oscillation's
            # position, so that one frame cannot tell drinking from holding.
            if anchor == "drink":
                phase = 2 * np.pi * tau / rng.uniform(14, 30) + rng.uniform(0, 2 * np.pi)
                u = 0.5 - 0.5 * np.cos(phase)
            else:
                u = np.full_like(tau, 0.5 - 0.5 * np.cos(rng.uniform(0, np.pi)))
            return hand + u * (mouth - hand), None, size
        if anchor == "far":  # somewhere away from the person
            for _ in range(20):
                spot = rng.uniform(size / 2, np.array([W, H]) - size / 2)
                if np.linalg.norm(spot - c0) > 0.6 * pw + 0.5 * size[0] + 40:
                    break
            return None, np.broadcast_to(spot, (T, 2)), size
        if anchor == "floor":  # a wide box under the person's feet
            feet = c0[1] + ph / 2
            size = np.array([rng.uniform(0.7, 1.0) * W, max(H - feet + rng.uniform(15, 40), 20)])
            return None, np.broadcast_to([W / 2, H - size[1] / 2], (T, 2)), size
        if anchor == "worn":
            name = OBJECT_CLASSES[cls]
            if name == "shoe":
                offset = np.array([side * 0.15 * pw, 0.45 * ph])
            elif name == "clothes":
                offset, size = np.array([0.0, -0.05 * ph]), np.array([0.8 * pw, 0.45 * ph])
            else:
                offset = np.array([side * 0.35 * pw, 0.0])
        elif anchor == "seat":
            offset = np.array([rng.uniform(-0.1, 0.1) * pw, 0.3 * ph + size[1] * 0.2])
        elif anchor == "bed":
            offset = np.array([rng.uniform(-0.2, 0.2) * pw, 0.15 * ph])
            size = np.maximum(size, [1.6 * pw, 0.6 * ph])
        elif anchor == "back":
            offset = np.array([side * 0.1 * pw, -0.18 * ph])
        elif anchor == "mouth":
            offset = mouth + rng.normal(0, 3, size=2)
        elif anchor == "beside":
            offset = np.array([side * (0.5 * pw + 0.4 * size[0]), -0.05 * ph])
        elif anchor == "cover":
            offset, size = np.array([0.0, 0.25 * ph]), np.array([1.3 * pw, 0.55 * ph])
        elif anchor == "hand":
            offset = hand + np.array([side * 6.0, 8.0])
        else:  # "near"
            offset = rng.uniform([-0.8 * pw, -0.4 * ph], [0.8 * pw, 0.4 * ph])
        return np.broadcast_to(offset, (T, 2)), None, size

    # -------------------------------------------------------------------------------- labels

    def _label(self) -> np.ndarray:
        rng, cfg = self.rng, self.cfg
        T, n = self.visible.shape
        rel = np.zeros((T, n, len(PREDICATES)), dtype=bool)
        pb, ob = self.person_boxes[:, None], self.object_boxes
        # Spatial, object -> person, by geometry and the latent depth.
        ow, pw = ob[..., 2] - ob[..., 0], pb[..., 2] - pb[..., 0]
        overlap = np.clip(
            np.minimum(ob[..., 2], pb[..., 2]) - np.maximum(ob[..., 0], pb[..., 0]), 0, None
        )
        side = overlap < 0.3 * np.maximum(np.minimum(ow, pw), 1e-6)
        ph = pb[..., 3] - pb[..., 1]
        oy = (ob[..., 1] + ob[..., 3]) / 2
        pcx, pcy = (pb[..., 0] + pb[..., 2]) / 2, (pb[..., 1] + pb[..., 3]) / 2
        contains = (
            (ob[..., 0] <= pcx) & (pcx <= ob[..., 2]) & (ob[..., 1] <= pcy) & (pcy <= ob[..., 3])
        )
        area = lambda b: (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])  # noqa: E731
        rel[..., _P["on_the_side_of"]] = side
        rel[..., _P["in_front_of"]] = ~side & self.front
        rel[..., _P["behind"]] = ~side & ~self.front
        rel[..., _P["above"]] = oy < pb[..., 1] + 0.2 * ph
        rel[..., _P["beneath"]] = oy > pb[..., 1] + 0.8 * ph
        rel[..., _P["in"]] = contains & (area(ob) > 1.5 * area(pb))
        # Contacting: the behaviour.
        for k, b in enumerate(self.behaviours):
            rel[:, k, _P[b]] = True
        # Attention: a latent gaze target that switches now and then (-1: looking nowhere).
        head = self.person_center + np.array([0.0, -0.38 * self.person_size[1]])
        target = np.empty(T, dtype=np.int64)
        current = int(rng.integers(-1, n))
        for t in range(T):  # a Markov chain over the key frames (data generation, not a model)
            if rng.random() < _GAZE_SWITCHING:
                current = int(rng.integers(-1, n))
            target[t] = current
        if cfg.gaze_switching != _GAZE_SWITCHING:  # a stream of its own: the rest stays
            own = _own_stream(rng, 1)
            switch = own.random(T) < cfg.gaze_switching
            switch[0] = True  # the first frame's target, drawn as every other
            picks = own.integers(-1, n, size=T)
            target = picks[np.maximum.accumulate(np.where(switch, np.arange(T), 0))]
        if cfg.attention_coupling > 0:  # people look at what their hands are busy with
            busy = [k for k, b in enumerate(self.behaviours) if b in _HANDS_BUSY]
            if busy:  # a stream of its own: the other draws stay as they were
                gaze_rng = _substream(rng)
                look = gaze_rng.random(T) < cfg.attention_coupling
                target = np.where(look, np.asarray(busy)[gaze_rng.integers(len(busy), size=T)],
                                  target)  # fmt: skip
        to_obj = self.object_center - head[:, None]  # (T, n, 2)
        angle = np.where(target >= 0, 0.0, rng.uniform(-np.pi, np.pi, T))
        aim = np.where(
            (target >= 0)[:, None],
            to_obj[np.arange(T), np.clip(target, 0, None)],
            np.stack((np.cos(angle), np.sin(angle)), -1),
        )
        theta = np.arctan2(aim[:, 1], aim[:, 0]) + rng.normal(0, np.deg2rad(5), T)
        self.gaze = np.stack((np.cos(theta), np.sin(theta)), -1)  # (T, 2)
        cos = (to_obj @ self.gaze[:, :, None])[..., 0] / np.maximum(
            np.linalg.norm(to_obj, axis=-1), 1e-6
        )
        looking = cos > math.cos(math.radians(20))
        self.hidden = rng.random(T) < cfg.unsure
        att = np.where(looking, _P["looking_at"], _P["not_looking_at"])
        att = np.where(self.hidden[:, None], _P["unsure"], att)
        rel[np.arange(T)[:, None], np.arange(n)[None], att] = True
        rel[~self.visible] = False
        return rel

    # ------------------------------------------------------------------------------ features

    def features(
        self,
        person_boxes: np.ndarray,
        object_boxes: np.ndarray,
        classes: np.ndarray,
        codes: Sequence[str],
        front: np.ndarray,
        extra_noise: float = 0.0,
    ) -> tuple[np.ndarray, ...]:
        """Subject, object and union features of pairs ``(T, N)`` given their boxes."""
        rng, cfg, world = self.rng, self.cfg, self.world
        T, n = object_boxes.shape[:2]
        F, U = cfg.feature_dim, cfg.union_dim
        sigma = cfg.feature_noise + extra_noise
        gaze = np.where(self.hidden[:, None], rng.standard_normal((T, 2)) * 0.5, self.gaze)
        person = (
            world.prototypes[0]
            + 1.5 * (gaze[:, :1] * world.gaze_x + gaze[:, 1:] * world.gaze_y)
            + 1.5 * self.hidden[:, None] * world.hidden
            + rng.normal(0, 0.3, size=(T, F))
        )
        subj = np.broadcast_to(person[:, None], (T, n, F))
        obj = (
            world.prototypes[classes][None]
            + 0.7 * np.where(front, 1.0, -1.0)[None, :, None] * world.depth
            + rng.normal(0, sigma, size=(T, n, F)) * 0.35
        )
        W, H = cfg.image_size
        scale = np.array([W, H, W, H])
        geo = np.concatenate((person_boxes[:, None].repeat(n, 1) / scale, object_boxes / scale), -1)
        code = np.stack([world.codes[c] for c in codes])[None]  # (1, n, U)
        union = code + geo @ world.geometry + rng.normal(0, cfg.union_noise, size=(T, n, U)) * 0.35
        return subj, obj, union

    # ----------------------------------------------------------------------------- detections

    def detections(self) -> dict[str, np.ndarray]:
        """SGDet: jittered, missed, spurious and misclassified detections, paired per frame."""
        rng, cfg = self.rng, self.cfg
        W, H = cfg.image_size
        T, n = self.visible.shape
        clip = np.array([W, H, W, H], dtype=np.float64)
        person = _jitter(self.person_boxes, rng, cfg.det_jitter, clip)
        person_found = rng.random(T) > 0.02
        k = int(rng.poisson(cfg.det_spurious))
        spur_classes = rng.integers(1, len(OBJECT_CLASSES), size=k)
        spur_boxes = _placed_boxes(rng, spur_classes, T, 3.0, W, H)  # false-positive tracks
        boxes = np.concatenate(
            (_jitter(self.object_boxes, rng, cfg.det_jitter, clip), spur_boxes), 1
        )
        found = np.concatenate(
            (self.visible & (rng.random((T, n)) > cfg.det_miss), rng.random((T, k)) < 0.7), 1
        )
        found &= person_found[:, None]
        true_classes = np.concatenate((self.classes, spur_classes)).astype(np.int64)
        right = rng.random((T, n + k)) < np.r_[np.full(n, cfg.det_accuracy), np.zeros(k)]
        labels = np.where(right, true_classes, _misclassified(rng, true_classes, T))
        scores = np.where(
            right, rng.uniform(0.5, 1.0, (T, n + k)), rng.uniform(0.2, 0.7, (T, n + k))
        )
        scores[:, n:] = rng.uniform(0.2, 0.6, (T, k))
        # Detected pairs take the relations of their ground-truth pair when both boxes overlap it.
        match = _matched(person, boxes[:, :n], self.person_boxes, self.object_boxes)
        relations = np.zeros((T, n + k, len(PREDICATES)), dtype=bool)
        relations[:, :n] = self.relations & match[..., None]
        relations &= found[..., None]
        codes = [_BEHAVIOURS[b].code for b in self.behaviours] + ["none"] * k
        front = np.r_[self.front, rng.random(k) < 0.5]
        subj, obj, union = self.features(person, boxes, true_classes, codes, front, extra_noise=0.5)
        out = {
            "person_boxes": person, "object_boxes": boxes, "mask": found, "labels": labels,
            "scores": scores, "relations": relations, "subj": subj, "obj": obj, "union": union,
        }  # fmt: skip
        if cfg.det_duplicates > 0:  # drawn after everything else: the other detections stay
            out = self._duplicates(out, n)
        if cfg.bystanders > 0:  # after the duplicates: neither changes the other
            out = self._bystanders(out)
        return out

    def _bystanders(self, d: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Append detections of unannotated scene objects (no relation, real confidences)."""
        cfg, (W, H) = self.cfg, self.cfg.image_size
        rng = _substream(self.rng)
        k = int(rng.poisson(cfg.bystanders))
        if not k:
            return d
        T = d["object_boxes"].shape[0]
        classes = rng.integers(1, len(OBJECT_CLASSES), size=k)
        boxes = _placed_boxes(rng, classes, T, 2.0, W, H)
        found = d["mask"].any(1, keepdims=True) & (rng.random((T, k)) < 0.8)
        right = rng.random((T, k)) < cfg.det_accuracy
        labels = np.where(right, classes, _misclassified(rng, classes, T))
        scores = np.where(right, rng.uniform(0.5, 1.0, (T, k)), rng.uniform(0.2, 0.7, (T, k)))
        front = rng.random(k) < 0.5
        subj, obj, union = self.features(
            d["person_boxes"], boxes, classes, ["none"] * k, front, extra_noise=0.5
        )
        extra = {
            "object_boxes": boxes, "mask": found, "labels": labels, "scores": scores,
            "relations": np.zeros((T, k, d["relations"].shape[-1]), dtype=bool),
            "subj": subj, "obj": obj, "union": union,
        }  # fmt: skip
        return _append_tracks(d, extra)

    def _duplicates(self, d: dict[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
        """Append second detections of some objects (NMS let a shifted box of the same class
        through), in the frames where the object was detected, with a lower score."""
        cfg, W, H = self.cfg, *self.cfg.image_size
        rng = _substream(self.rng)
        picked = np.flatnonzero(rng.random(n) < cfg.det_duplicates)
        if not len(picked):
            return d
        T = d["object_boxes"].shape[0]
        boxes = _jitter(d["object_boxes"][:, picked], rng, 0.15, np.array([W, H, W, H]))
        found = d["mask"][:, picked] & (rng.random((T, len(picked))) < 0.7)
        scores = d["scores"][:, picked] * rng.uniform(0.5, 0.9, (T, len(picked)))
        match = _matched(d["person_boxes"], boxes, self.person_boxes, self.object_boxes[:, picked])
        relations = self.relations[:, picked] & (match & found)[..., None]
        codes = [_BEHAVIOURS[self.behaviours[j]].code for j in picked]
        classes = np.asarray(self.classes, dtype=np.int64)[picked]
        feats = self.features(
            d["person_boxes"], boxes, classes, codes, self.front[picked], extra_noise=0.5
        )
        extra = {
            "object_boxes": boxes, "mask": found, "labels": d["labels"][:, picked],
            "scores": scores, "relations": relations, "obj": feats[1], "union": feats[2],
            "subj": feats[0],
        }  # fmt: skip
        return _append_tracks(d, extra)


def _graph(
    video_id: str,
    v: _Video,
    person: np.ndarray,
    objects: np.ndarray,
    mask: np.ndarray,
    labels: np.ndarray,
    relations: np.ndarray,
    feats: tuple[np.ndarray, ...],
    scores: np.ndarray | None = None,
    gt: VideoGraph | None = None,
) -> VideoGraph:
    T, n = mask.shape
    f32 = lambda x: torch.tensor(np.asarray(x, dtype=np.float32))[None]  # noqa: E731
    m = torch.as_tensor(mask)[None]
    zero = lambda x: x.masked_fill(~m.reshape(*m.shape, *[1] * (x.dim() - 3)), 0)  # noqa: E731
    subj_boxes = np.broadcast_to(person[:, None], (T, n, 4))
    return VideoGraph(
        video_ids=(video_id,),
        frame_times=torch.as_tensor(v.tau)[None],
        frame_mask=torch.ones(1, T, dtype=torch.bool),
        image_size=torch.tensor([v.cfg.image_size], dtype=torch.float32),
        mask=m,
        subject_boxes=zero(f32(subj_boxes)),
        object_boxes=zero(f32(objects)),
        object_labels=torch.tensor(np.broadcast_to(labels, (T, n)), dtype=torch.long)[
            None
        ].masked_fill(~m, -1),
        relations=torch.as_tensor(relations)[None] & m[..., None],
        subject_scores=None if scores is None else zero(torch.ones(1, T, n)),
        object_scores=None if scores is None else zero(f32(scores)),
        subject_features=zero(f32(feats[0])),
        object_features=zero(f32(feats[1])),
        union_features=zero(f32(feats[2])),
        gt=gt,
    )


class SyntheticActionGenome(VideoGraphDataset):
    """The synthetic benchmark as a dataset of single-video [`VideoGraph`][] items.

    Args:
        config: the generator's settings ([`SyntheticConfig`][]); default the README's
            main-job benchmark.
        split: ``"train"`` or ``"test"``; the two splits share the world (classes, appearance)
            and never share a video.
        mode: ``"predcls"``/``"sgcls"`` (ground-truth pairs) or ``"sgdet"`` (detected pairs, with
            the ground truth in ``graph.gt``).

    Attributes:
        videos: the generated videos, each a ``VideoGraph`` with ``B = 1``.
        class_semantics: ``(36, semantic_dim)`` unit vectors, one per object class (the "class
            semantics" input of the MoSA assembly; word vectors on real data).

    Shape:
        Each item: ``(1, T, P, ...)`` with ``F = config.feature_dim``, ``U = config.union_dim``.

    Raises:
        ValueError: ``split`` or ``mode`` is unknown.

    Examples:
        >>> data = SyntheticActionGenome(SyntheticConfig(num_videos=4, num_test_videos=2))
        >>> len(data), data[0].relations.shape[-1], data[0].object_features.shape[-1]
        (4, 26, 64)
        >>> SyntheticActionGenome(data.config, split="test", mode="sgdet")[0].gt is not None
        True
    """

    def __init__(
        self, config: SyntheticConfig | None = None, split: Split = "train", mode: Mode = "predcls"
    ) -> None:
        check_choice(split, "split", _SPLITS)
        check_choice(mode, "mode", _MODES)
        self.config = SyntheticConfig() if config is None else config
        self.split, self.mode = split, mode
        world = _World(self.config)
        self.class_semantics = torch.as_tensor(world.semantics, dtype=torch.float32)
        count = self.config.num_videos if split == "train" else self.config.num_test_videos
        super().__init__([self._make(world, i) for i in range(count)])

    def _make(self, world: _World, index: int) -> VideoGraph:
        cfg = self.config
        rng = np.random.default_rng([cfg.seed, _SPLITS.index(self.split), index])
        v = _Video(cfg, world, rng)
        name = f"syn{'TR' if self.split == 'train' else 'TE'}{index:05d}.mp4"
        classes = np.asarray(v.classes, dtype=np.int64)
        codes = [_BEHAVIOURS[b].code for b in v.behaviours]
        feats = v.features(v.person_boxes, v.object_boxes, classes, codes, v.front)
        gt = _graph(name, v, v.person_boxes, v.object_boxes, v.visible, classes, v.relations, feats)
        if self.mode != "sgdet":
            return gt
        d = v.detections()
        feats = (d["subj"], d["obj"], d["union"])
        boxes = (d["person_boxes"], d["object_boxes"])
        return _graph(
            name, v, *boxes, d["mask"], d["labels"], d["relations"], feats, d["scores"], gt=gt
        )

    # ----------------------------------------------------------------------------------- disk

    def save(self, path: str | Path) -> None:
        """Write the dataset to one file (``torch.save`` of plain tensors, strings and numbers)."""
        state = {
            "config": dataclasses.asdict(self.config),
            "split": self.split,
            "mode": self.mode,
            "class_semantics": self.class_semantics,
            "videos": [v.state_dict() for v in self.videos],
        }
        torch.save(state, Path(path))

    @classmethod
    def load(cls, path: str | Path) -> SyntheticActionGenome:
        """Read a dataset written by [`save`][] (safely: ``weights_only=True``)."""
        try:
            state = torch.load(Path(path), weights_only=True)
        except Exception as e:  # a junk or truncated file: name it
            raise ValueError(f"{path}: not a saved dataset ({type(e).__name__}: {e})") from e
        if not isinstance(state, dict) or not {"config", "split", "mode"} <= set(state):
            raise ValueError(f"{path}: not a saved dataset (expected what save() writes)")
        self = cls.__new__(cls)
        config = {k: tuple(v) if isinstance(v, list) else v for k, v in state["config"].items()}
        self.config = SyntheticConfig(**config)
        self.split, self.mode = state["split"], state["mode"]
        self.class_semantics = state["class_semantics"]
        self.videos = [VideoGraph.from_state_dict(v) for v in state["videos"]]
        return self
