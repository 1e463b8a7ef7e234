"""VidVRD / VidOR annotation loader, segments, open-vocabulary splits."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from dsgg_layers.data import (
    VIDVRD_OBJECT_SPLITS,
    VIDVRD_PREDICATE_SPLITS,
    VidVRDVideo,
    load_vidvrd,
    segment_video,
)
from dsgg_layers.metrics import vidvrd_metrics


def _bbox(x, y, w=10, h=10):
    return {"xmin": x, "ymin": y, "xmax": x + w, "ymax": y + h}


def _anno(vid="ILSVRC2015_train_00005003", frames=40):
    """A VidVRD-format annotation: a dog runs past a still ball; the ball appears at frame 5."""
    trajs = []
    for f in range(frames):
        rois = [{"tid": 3, "bbox": _bbox(2 * f, 10), "generated": 0}]
        if f >= 5:
            rois.append({"tid": 7, "bbox": _bbox(40, 12, 8, 8), "generated": 1})
        trajs.append(rois)
    return {
        "version": "VERSION 1.0", "video_id": vid, "frame_count": frames, "fps": 30,
        "width": 320, "height": 240,
        "subject/objects": [{"tid": 3, "category": "dog"}, {"tid": 7, "category": "ball"}],
        "trajectories": trajs,
        "relation_instances": [
            {"subject_tid": 3, "object_tid": 7, "predicate": "run_past", "begin_fid": 5,
             "end_fid": 35},
            {"subject_tid": 7, "object_tid": 3, "predicate": "front", "begin_fid": 10,
             "end_fid": 20},
        ],
    }  # fmt: skip


def test_parse_boxes_masks_and_relation_instances():
    video = VidVRDVideo.from_json(_anno())
    assert video.boxes.shape == (2, 40, 4) and video.box_mask.shape == (2, 40)
    assert (
        video.box_mask[0].all() and video.box_mask[1, 5:].all() and not video.box_mask[1, :5].any()
    )
    assert torch.equal(video.boxes[0, 7], torch.tensor([14.0, 10, 24, 20]))
    assert (video.boxes[1, :5] == 0).all()
    gt = video.relation_instances()
    assert gt[0]["triplet"] == ["dog", "run_past", "ball"] and gt[0]["duration"] == [5, 35]
    assert len(gt[0]["sub_traj"]) == 30 and gt[0]["sub_traj"][0] == [10.0, 10.0, 20.0, 20.0]
    assert gt[1]["subject_tid"] == 7 and gt[1]["obj_traj"][0] == [20.0, 10.0, 30.0, 20.0]
    assert video.fps == 30.0 and video.categories == ["dog", "ball"]
    # the ground truth scores itself perfectly
    pred = {video.video_id: [dict(r, score=1.0) for r in gt]}
    r = vidvrd_metrics(pred, {video.video_id: gt})
    assert float(r["mAP"]) == 1.0 and float(r["R@50"]) == 1.0


def test_file_round_trip_and_folders(tmp_path):
    a, b = _anno("a"), _anno("b", frames=36)
    b["relation_instances"] = b["relation_instances"][:1]
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "a.json").write_text(json.dumps(a))
    (tmp_path / "train" / "sub").mkdir()
    (tmp_path / "train" / "sub" / "b.json").write_text(json.dumps(b))  # VidOR nests folders
    videos = load_vidvrd(tmp_path / "train")
    assert [v.video_id for v in videos] == ["a", "b"]
    again = VidVRDVideo.from_json(json.loads(json.dumps(videos[0].to_json())))
    for field in ("boxes", "box_mask", "track_ids", "subjects", "objects", "begin", "end"):
        assert torch.equal(getattr(again, field), getattr(videos[0], field)), field
    assert again.relation_instances() == videos[0].relation_instances()
    single = load_vidvrd(tmp_path / "train" / "a.json")
    assert len(single) == 1 and single[0].predicates == ["run_past", "front"]
    with pytest.raises(FileNotFoundError, match="path"):
        load_vidvrd(tmp_path / "missing")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"bad.json: not valid JSON"):
        load_vidvrd(tmp_path / "bad.json")


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda a: a.pop("frame_count"), r"missing 'frame_count'"),
        (lambda a: a["trajectories"].pop(), r"one list a frame \(40\), got 39"),
        (lambda a: a["trajectories"][2].append({"tid": 99, "bbox": _bbox(0, 0)}),
         r"\['trajectories'\]\[2\]\[1\]: tid 99"),
        (lambda a: a["trajectories"][0][0]["bbox"].pop("ymax"), r"\['bbox'\]: missing 'ymax'"),
        (lambda a: a["relation_instances"][1].update(end_fid=41), r"\[10, 41\)"),
        (lambda a: a["relation_instances"][0].update(object_tid=5), r"'object_tid'\]: tid 5"),
        (lambda a: a["relation_instances"][0].pop("predicate"), r"missing 'predicate'"),
        (lambda a: a["subject/objects"].append({"tid": 3, "category": "cat"}), "repeated tids"),
        (lambda a: a.update(width="320"), r"\['width'\]: expected"),
        (lambda a: a["trajectories"][0][0]["bbox"].update(xmin=float("nan")),
         r"\['trajectories'\]\[0\]\[0\]\['bbox'\]: expected finite coordinates"),
        (lambda a: a["trajectories"][1][0]["bbox"].update(ymax=float("inf")), "finite"),
    ],
)  # fmt: skip
def test_malformed_annotations_name_the_field(edit, match):
    anno = copy.deepcopy(_anno())
    edit(anno)
    with pytest.raises(ValueError, match=match):
        VidVRDVideo.from_json(anno, source="x.json")


def test_relation_instance_on_frames_without_a_box_raises():
    anno = _anno()
    anno["relation_instances"][0]["begin_fid"] = 2  # the ball appears at frame 5
    video = VidVRDVideo.from_json(anno)
    with pytest.raises(ValueError, match=r"instance 0: the object \(tid 7\).*\[2, 35\)"):
        video.relation_instances()


def test_segments_as_the_helper():
    assert segment_video(0, 75).tolist() == [[0, 30], [15, 45], [30, 60], [45, 75]]
    assert segment_video(0, 74).tolist() == [[0, 30], [15, 45], [30, 60]]  # tail dropped
    assert segment_video(10, 40).tolist() == [[10, 40]]
    assert segment_video(0, 29).shape == (0, 2)
    assert segment_video(0, 10, length=4, stride=3).tolist() == [[0, 4], [3, 7], [6, 10]]
    for begin, end in [(0, 30), (0, 100), (7, 200), (0, 5)]:
        ref = [(i, i + 30) for i in range(begin, end - 30 + 1, 15)]
        assert [tuple(s) for s in segment_video(begin, end).tolist()] == ref
    assert VidVRDVideo.from_json(_anno()).segments().tolist() == [[0, 30]]
    assert segment_video(0, 74, cover_tail=True).tolist()[-1] == [44, 74]
    assert segment_video(0, 75, cover_tail=True).tolist() == segment_video(0, 75).tolist()
    assert segment_video(0, 29, cover_tail=True).shape == (0, 2)
    with pytest.raises(ValueError, match="stride"):
        segment_video(0, 10, stride=0)
    with pytest.raises(TypeError, match="end"):
        segment_video(0, 10.0)


def test_open_vocabulary_splits():
    assert len(VIDVRD_OBJECT_SPLITS["base"]) == 25 and len(VIDVRD_OBJECT_SPLITS["novel"]) == 10
    assert len(VIDVRD_PREDICATE_SPLITS["base"]) == 71
    assert len(VIDVRD_PREDICATE_SPLITS["novel"]) == 61
    for splits in (VIDVRD_OBJECT_SPLITS, VIDVRD_PREDICATE_SPLITS):
        assert not set(splits["base"]) & set(splits["novel"])
        assert len(set(splits["base"])) == len(splits["base"])
    assert "person" in VIDVRD_OBJECT_SPLITS["base"] and "bite" in VIDVRD_PREDICATE_SPLITS["novel"]


def test_box_noise_moves_present_boxes_only_and_is_reproducible():
    video = VidVRDVideo.from_json(_anno())
    noisy = video.with_box_noise(3.0, seed=1)
    present = video.box_mask
    moved = (noisy.boxes - video.boxes).abs()
    assert (moved[present] > 0).any() and (moved[~present] == 0).all()
    assert 1.0 < float(moved[present].std()) < 5.0  # about 3 px
    assert torch.equal(noisy.boxes, video.with_box_noise(3.0, seed=1).boxes)
    assert not torch.equal(noisy.boxes, video.with_box_noise(3.0, seed=2).boxes)
    assert torch.equal(video.with_box_noise(0.0, seed=1).boxes, video.boxes)
    assert noisy.relation_instances()[0]["triplet"] == video.relation_instances()[0]["triplet"]
    with pytest.raises(ValueError, match="std"):
        video.with_box_noise(-1.0, seed=0)
