"""A synthetic VidVRD-format benchmark: object trajectories, relation instances that start and
stop, open-vocabulary predicates named by the visual facts that decide them.

The trajectory-level counterpart of
[`SyntheticActionGenome`][dsgg_layers.data.synthetic.SyntheticActionGenome], for open-vocabulary
video relation detection (VidVRD / VidOR, UASAN): every video is a [`VidVRDVideo`][]
(the annotation format), plus per-frame object features.

**World.** A few objects of [`TRAJECTORY_OBJECTS`][] move over the whole video (some enter
late or leave early): phases of standing still and of moving at 1.5-4 px a frame in a random
direction, bouncing off the image borders. An object's per-frame feature is its class prototype,
a motion component proportional to its speed, and noise.

**Predicates** (between every ordered pair of objects, not person-centric) are named by two
words for the visual facts that decide them: the subject's **verb** (``move`` when its speed
exceeds 1 px a frame, else ``stand``) and a **relation** word: the dominant direction of the
subject from the object (``left``, ``right``, ``above``, ``below``, always one), ``toward`` /
``away`` when their distance shrinks / grows by more than 2 px over 4 frames, ``touch`` when the
boxes overlap. A pair-frame holds ``verb_word`` for each of its words (multi-label); a relation
instance is a run of at least ``min_span`` frames where a predicate holds.

**Open vocabulary.** `TRAJECTORY_PREDICATE_SPLITS` holds 10 base and 4 novel predicates;
every word of a novel predicate occurs in some base predicate ("stand_toward" from "stand_left"
and "move_toward"), so a text encoder that composes words
([`WordTower`][dsgg_layers.prompts.WordTower], the offline stand-in for CLIP) can name a novel
predicate zero-shot.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from dsgg_layers._checks import check_choice
from dsgg_layers.data.vidvrd import VidVRDVideo

__all__ = [
    "TRAJECTORY_OBJECTS",
    "TRAJECTORY_PREDICATES",
    "TRAJECTORY_PREDICATE_SPLITS",
    "TRAJECTORY_WORDS",
    "SyntheticVidVRD",
    "SyntheticVidVRDConfig",
    "predicate_words",
]

TRAJECTORY_OBJECTS = ("person", "dog", "cat", "car", "ball", "bicycle", "horse", "bird")
"""The object categories (VidVRD names)."""

_VERBS = ("move", "stand")
_RELATIONS = ("left", "right", "above", "below", "toward", "away", "touch")
TRAJECTORY_PREDICATES = tuple(f"{v}_{r}" for v in _VERBS for r in _RELATIONS)
"""The 14 predicates, ``verb_relation``."""

TRAJECTORY_PREDICATE_SPLITS: dict[str, tuple[str, ...]] = {
    "novel": ("move_right", "move_above", "stand_toward", "stand_touch"),
}
TRAJECTORY_PREDICATE_SPLITS["base"] = tuple(
    p for p in TRAJECTORY_PREDICATES if p not in TRAJECTORY_PREDICATE_SPLITS["novel"]
)
"""10 base, 4 novel predicates; every word of a novel one occurs in a base one."""

TRAJECTORY_WORDS = (*TRAJECTORY_OBJECTS, *_VERBS, *_RELATIONS)
"""Every word of the benchmark's class names
(a [`WordTower`][dsgg_layers.prompts.WordTower] vocabulary)."""


def predicate_words(name: str, suffix: str = "") -> str:
    """A class name as words (``"move_toward"`` -> ``"move toward"``), each word followed by
    ``suffix`` (the synonyms of
    [`WordTower.with_synonyms`][dsgg_layers.prompts.WordTower.with_synonyms]).

    Examples:
        >>> predicate_words("stand_touch"), predicate_words("stand_touch", "'")
        ('stand touch', "stand' touch'")
    """
    return " ".join(w + suffix for w in name.split("_"))


@dataclass(frozen=True)
class SyntheticVidVRDConfig:
    """Settings of [`SyntheticVidVRD`][].

    Args:
        num_videos: videos of the train split.
        num_test_videos: videos of the test split.
        frames: inclusive range of a video's frame count.
        objects: inclusive range of objects a video.
        image_size: ``(width, height)``.
        feature_dim: width of the per-frame object features.
        feature_noise: standard deviation of their noise.
        min_span: fewest frames of a relation instance.
        seed: the world's and the videos' seed.
    """

    num_videos: int = 120
    num_test_videos: int = 40
    frames: tuple[int, int] = (90, 150)
    objects: tuple[int, int] = (2, 4)
    image_size: tuple[int, int] = (320, 240)
    feature_dim: int = 32
    feature_noise: float = 0.5
    min_span: int = 8
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("num_videos", "num_test_videos", "feature_dim", "min_span", "seed"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"{name}: expected a non-negative int, got {v!r}")
        for name, low in (("frames", 31), ("objects", 2)):
            lo, hi = getattr(self, name)
            if not (isinstance(lo, int) and isinstance(hi, int) and low <= lo <= hi):
                raise ValueError(f"{name}: expected ints {low} <= low <= high, got {(lo, hi)}")
        noise = self.feature_noise
        ok = isinstance(noise, int | float) and not isinstance(noise, bool)
        if not (ok and 0 <= noise < float("inf")):
            raise ValueError(f"feature_noise: expected a finite value >= 0, got {noise!r}")


class SyntheticVidVRD:
    """The synthetic trajectory benchmark: a sequence of [`VidVRDVideo`][]
    with ``features`` ``(N, F, feature_dim)``. See the module docstring for the rules.

    Args:
        config: the settings (default [`SyntheticVidVRDConfig`][]).
        split: ``"train"`` or ``"test"`` (the same world, other videos).

    Examples:
        >>> data = SyntheticVidVRD(SyntheticVidVRDConfig(num_videos=2, num_test_videos=1))
        >>> video = data[0]
        >>> video.boxes.shape[1] == video.frame_count, video.features.shape[-1]
        (True, 32)
        >>> all(p in TRAJECTORY_PREDICATES for p in video.predicates)
        True
    """

    def __init__(
        self, config: SyntheticVidVRDConfig | None = None, split: Literal["train", "test"] = "train"
    ) -> None:
        check_choice(split, "split", ("train", "test"))
        self.config = config or SyntheticVidVRDConfig()
        self.split = split
        rng = np.random.default_rng(self.config.seed)
        D = self.config.feature_dim
        self.prototypes = rng.normal(0, 1, (len(TRAJECTORY_OBJECTS), D))
        self.motion_code = rng.normal(0, 1, D) / np.sqrt(D) * 4
        self.sizes = rng.uniform(20, 60, (len(TRAJECTORY_OBJECTS), 2))

    def __len__(self) -> int:
        return self.config.num_videos if self.split == "train" else self.config.num_test_videos

    def __getitem__(self, index: int) -> VidVRDVideo:
        if not 0 <= index < len(self):
            raise IndexError(f"index: expected 0 <= index < {len(self)}, got {index}")
        return self._video(index)

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def _video(self, index: int) -> VidVRDVideo:
        cfg = self.config
        rng = np.random.default_rng([cfg.seed, 0 if self.split == "train" else 1, index])
        F = int(rng.integers(cfg.frames[0], cfg.frames[1] + 1))
        N = int(rng.integers(cfg.objects[0], cfg.objects[1] + 1))
        W, H = cfg.image_size
        cats = rng.integers(0, len(TRAJECTORY_OBJECTS), N)
        wh = self.sizes[cats] * rng.uniform(0.8, 1.2, (N, 2))
        # velocities: 2-4 phases, each standing still or moving in a random direction
        bounds = np.sort(rng.integers(1, F, (N, 3)), 1)
        phase = (np.arange(F)[None, :, None] >= bounds[:, None, :]).sum(-1)  # (N, F)
        moving = rng.random((N, 4)) < 0.6
        speed = rng.uniform(1.5, 4.0, (N, 4)) * moving
        angle = rng.uniform(0, 2 * np.pi, (N, 4))
        v = np.stack((np.cos(angle), np.sin(angle)), -1) * speed[..., None]  # (N, 4, 2)
        vel = np.take_along_axis(v, phase[..., None].repeat(2, -1), 1)  # (N, F, 2)
        room = np.array([W, H]) - wh  # the centre moves within [wh / 2, size - wh / 2]
        start = rng.uniform(0, 1, (N, 2)) * room
        raw = start[:, None] + np.cumsum(vel, 1) - vel[:, :1]
        folded = np.abs((raw / room[:, None]) % 2 - 1)  # reflect off the borders
        centre = (1 - folded) * room[:, None] + wh[:, None] / 2
        boxes = np.concatenate((centre - wh[:, None] / 2, centre + wh[:, None] / 2), -1)
        # presence: most objects the whole video, some a sub-range of >= 40 frames
        present = np.ones((N, F), dtype=bool)
        partial = rng.random(N) < 0.25
        for n in np.nonzero(partial)[0]:
            length = int(rng.integers(min(40, F), F + 1))
            b = int(rng.integers(0, F - length + 1))
            present[n] = False
            present[n, b : b + length] = True
        speed_f = np.linalg.norm(np.diff(centre, axis=1, prepend=centre[:, :1]), axis=-1)
        speed_f[:, 0] = speed_f[:, 1] if F > 1 else 0
        feats = (
            self.prototypes[cats][:, None]
            + speed_f[..., None] * self.motion_code
            + rng.normal(0, cfg.feature_noise, (N, F, cfg.feature_dim))
        )
        subj, obj, preds, begin, end = self._relations(centre, boxes, speed_f, present, wh)
        return VidVRDVideo(
            video_id=f"synthetic_{self.split}_{index:05d}", frame_count=F, width=W, height=H,
            fps=30.0, track_ids=torch.arange(N), categories=[TRAJECTORY_OBJECTS[c] for c in cats],
            boxes=torch.tensor(boxes * present[..., None], dtype=torch.float32),
            box_mask=torch.tensor(present), subjects=torch.tensor(subj, dtype=torch.long),
            objects=torch.tensor(obj, dtype=torch.long), predicates=preds,
            begin=torch.tensor(begin, dtype=torch.long), end=torch.tensor(end, dtype=torch.long),
            features=torch.tensor(feats * present[..., None], dtype=torch.float32),
        )  # fmt: skip

    def _relations(self, centre, boxes, speed, present, wh):
        """Relation instances of every ordered pair: runs of >= min_span frames."""
        N, F = present.shape
        i, j = np.nonzero(~np.eye(N, dtype=bool))  # ordered pairs
        both = present[i] & present[j]  # (P, F)
        d = centre[i] - centre[j]  # (P, F, 2): subject relative to object
        dist = np.linalg.norm(d, axis=-1)
        ahead = np.concatenate((dist[:, 4:], np.repeat(dist[:, -1:], min(4, F), 1)), 1)[:, :F]
        change = ahead - dist
        horizontal = np.abs(d[..., 0]) / wh[j, None, 0] >= np.abs(d[..., 1]) / wh[j, None, 1]
        b1, b2 = boxes[i], boxes[j]
        overlap = np.minimum(b1[..., 2:], b2[..., 2:]) > np.maximum(b1[..., :2], b2[..., :2])
        words = {
            "left": horizontal & (d[..., 0] < 0), "right": horizontal & (d[..., 0] >= 0),
            "above": ~horizontal & (d[..., 1] < 0), "below": ~horizontal & (d[..., 1] >= 0),
            "toward": change < -2.0, "away": change > 2.0, "touch": overlap.all(-1),
        }  # fmt: skip
        moving = speed[i] > 1.0
        subj, obj, preds, begin, end = [], [], [], [], []
        for verb, on in (("move", moving), ("stand", ~moving)):
            for word, holds in words.items():
                rows, starts, stops = _runs(holds & on & both)
                keep = stops - starts >= self.config.min_span
                subj.extend(i[rows[keep]].tolist())
                obj.extend(j[rows[keep]].tolist())
                preds.extend([f"{verb}_{word}"] * int(keep.sum()))
                begin.extend(starts[keep].tolist())
                end.extend(stops[keep].tolist())
        return subj, obj, preds, begin, end


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The True runs of each row of ``(P, F)``: their rows, first frames and end frames
    (exclusive), in row-major order."""
    P, F = mask.shape
    padded = np.zeros((P, F + 2), dtype=np.int8)
    padded[:, 1:-1] = mask
    diff = np.diff(padded, axis=1)  # (P, F + 1): +1 at a run's first frame, -1 at its end
    rows, starts = np.nonzero(diff == 1)
    _, stops = np.nonzero(diff == -1)
    return rows, starts, stops
