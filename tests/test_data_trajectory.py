"""The synthetic VidVRD-format trajectory benchmark."""

from __future__ import annotations

import json

import pytest
import torch

from dsgg_layers import WordTower
from dsgg_layers.data import VidVRDVideo
from dsgg_layers.data.trajectory import (
    TRAJECTORY_OBJECTS,
    TRAJECTORY_PREDICATE_SPLITS,
    TRAJECTORY_PREDICATES,
    TRAJECTORY_WORDS,
    SyntheticVidVRD,
    SyntheticVidVRDConfig,
    predicate_words,
)

SMALL = SyntheticVidVRDConfig(num_videos=6, num_test_videos=3)


def test_deterministic_and_splits_differ():
    a, b = SyntheticVidVRD(SMALL)[2], SyntheticVidVRD(SMALL)[2]
    assert torch.equal(a.boxes, b.boxes) and a.predicates == b.predicates
    assert torch.equal(a.features, b.features)
    test = SyntheticVidVRD(SMALL, "test")[2]
    assert test.video_id != a.video_id and not torch.equal(test.boxes[:1, :5], a.boxes[:1, :5])
    assert len(SyntheticVidVRD(SMALL, "test")) == 3
    with pytest.raises(IndexError):
        SyntheticVidVRD(SMALL)[6]
    with pytest.raises(ValueError, match="split"):
        SyntheticVidVRD(SMALL, "val")
    with pytest.raises(ValueError, match="frames"):
        SyntheticVidVRDConfig(frames=(10, 20))
    for bad in (-0.5, float("nan"), float("inf")):  # NaN passed `< 0` and made NaN features
        with pytest.raises(ValueError, match="feature_noise: expected a finite value >= 0"):
            SyntheticVidVRDConfig(feature_noise=bad)


def test_videos_are_valid_annotations_whose_relations_follow_the_rules():
    for video in SyntheticVidVRD(SMALL):
        gt = video.relation_instances()  # raises if a box is missing in a duration
        assert gt and all(
            e - b >= SMALL.min_span for b, e in zip(video.begin, video.end, strict=True)
        )
        again = VidVRDVideo.from_json(json.loads(json.dumps(video.to_json())))
        assert again.relation_instances() == gt
        assert set(video.categories) <= set(TRAJECTORY_OBJECTS)
        assert (video.features[~video.box_mask] == 0).all()
        centre = (video.boxes[..., :2] + video.boxes[..., 2:]) / 2
        for s, o, p, b, e in zip(video.subjects, video.objects, video.predicates, video.begin,
                                 video.end, strict=True):  # fmt: skip
            assert s != o
            verb, word = p.split("_")
            d = centre[s, b:e] - centre[o, b:e]
            c = centre[s, b - 1 : e] if b > 0 and video.box_mask[s, b - 1] else centre[s, b:e]
            speed = (c[1:] - c[:-1]).norm(dim=-1)  # the subject's speed decides the verb
            assert ((speed > 1.0 - 1e-4) if verb == "move" else (speed <= 1.0 + 1e-4)).all(), p
            if word == "left":
                assert (d[:, 0] < 0).all()
            elif word == "right":
                assert (d[:, 0] >= 0).all()
            elif word == "above":
                assert (d[:, 1] < 0).all()
            elif word == "below":
                assert (d[:, 1] >= 0).all()
            elif word == "touch":
                sb, ob = video.boxes[s, b:e], video.boxes[o, b:e]
                assert (
                    torch.minimum(sb[:, 2:], ob[:, 2:]) > torch.maximum(sb[:, :2], ob[:, :2])
                ).all()


def test_open_vocabulary_split_is_composable_by_words():
    base, novel = TRAJECTORY_PREDICATE_SPLITS["base"], TRAJECTORY_PREDICATE_SPLITS["novel"]
    assert (
        len(base) == 10 and len(novel) == 4 and set(base) | set(novel) == set(TRAJECTORY_PREDICATES)
    )
    base_words = {w for p in base for w in p.split("_")}
    assert all(set(p.split("_")) <= base_words for p in novel)
    tower = WordTower(TRAJECTORY_WORDS)
    tower.tokenize([predicate_words(p) for p in TRAJECTORY_PREDICATES])  # all in the vocabulary
    counts = {p: 0 for p in TRAJECTORY_PREDICATES}
    for video in SyntheticVidVRD(SMALL):
        for p in video.predicates:
            counts[p] += 1
    assert all(counts[p] > 0 for p in novel)  # novel predicates do occur
