"""The Action Genome loader on small files written in the real format."""

import pickle

import numpy as np
import pytest
import torch

from dsgg_layers.data import (
    ActionGenome,
    SyntheticActionGenome,
    SyntheticConfig,
    VideoGraph,
    write_action_genome,
)
from dsgg_layers.vocab import PREDICATES, object_index


def person(box=(10.0, 20.0, 110.0, 250.0), n=1):
    return {
        "bbox": np.array([box] * n, dtype=np.float32).reshape(n, 4),
        "bbox_score": np.ones(n, dtype=np.float32),
        "bbox_size": (480, 270),
        "bbox_mode": "xyxy",
        "keypoints": np.zeros((n, 17, 3), dtype=np.float32),
        "keypoints_logits": np.zeros((n, 17), dtype=np.float32),
    }


def obj(cls, bbox=(200.0, 100.0, 40.0, 30.0), att=("lookingat",), spa=("infrontof",),
        con=("holding",), split="train", visible=True):  # fmt: skip
    return {
        "class": cls,
        "bbox": bbox if visible else None,
        "attention_relationship": list(att) if visible else None,
        "spatial_relationship": list(spa) if visible else None,
        "contacting_relationship": list(con) if visible else None,
        "metadata": {"tag": f"x/{cls}/0", "set": split},
        "visible": visible,
    }


def write(root, persons, objects):
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    with (root / "annotations" / "person_bbox.pkl").open("wb") as f:
        pickle.dump(persons, f)
    with (root / "annotations" / "object_bbox_and_relationship.pkl").open("wb") as f:
        pickle.dump(objects, f)


def video_frames(name, frames, objects_per_frame, split="train"):
    persons = {f"{name}/{t:06d}.png": person() for t in frames}
    objects = {f"{name}/{t:06d}.png": objects_per_frame(t, split) for t in frames}
    return persons, objects


def rows(g: VideoGraph):
    """(frame number, class) -> (object box, person box, relations, features...) of a video."""
    m = g.mask[0]
    out = {}
    for t, p in m.nonzero().tolist():
        key = (int(g.frame_times[0, t]), int(g.object_labels[0, t, p]))
        extra = (g.subject_features, g.object_features, g.union_features)
        feats = [x[0, t, p] for x in extra if x is not None]
        out[key] = (g.object_boxes[0, t, p], g.subject_boxes[0, t, p], g.relations[0, t, p], *feats)
    return out


def test_round_trip_of_the_synthetic_benchmark(tmp_path):
    cfg = SyntheticConfig(num_videos=12, num_test_videos=5)
    train, test = SyntheticActionGenome(cfg), SyntheticActionGenome(cfg, split="test")
    write_action_genome(train, tmp_path, split="train")
    write_action_genome(test, tmp_path, split="test")
    loaded = ActionGenome(tmp_path, "train", features=tmp_path / "features")
    assert [v.video_ids for v in loaded] == [v.video_ids for v in train]
    for original, back in zip(train, loaded, strict=True):
        assert torch.equal(original.frame_times, back.frame_times)
        a, b = rows(original), rows(back)
        assert a.keys() == b.keys()
        for key in a:
            for x, y in zip(a[key], b[key], strict=True):
                assert torch.equal(x, y), key
    assert len(ActionGenome(tmp_path, "test")) == 5
    # the graphs collate and give the evaluator's targets
    assert loaded.batch().targets()["relations"].shape[-1] == 26


def test_the_public_filtering_rules(tmp_path):
    persons, objects = {}, {}
    for name, frames in (("A.mp4", [3, 1, 2, 7]), ("B.mp4", [5, 6]), ("C.mp4", [1, 2, 3])):
        p, o = video_frames(
            name, frames, lambda t, s: [obj("cupglassbottle"), obj("table", bbox=(0.0, 0, 100, 90))]
        )
        persons |= p
        objects |= o
    persons["A.mp4/000007.png"] = person(n=0)  # no person box: frame dropped
    objects["A.mp4/000002.png"] = [
        obj("cupglassbottle", visible=False)
    ]  # nothing visible: frame dropped
    objects["C.mp4/000002.png"] = [obj("cupglassbottle", split="test"), obj("table", split="train")]
    write(tmp_path, persons, objects)
    data = ActionGenome(tmp_path, "train")
    # A keeps frames 1, 3 -> 2 frames -> too short; B has 2 frames; C loses frame 2 to the test set
    assert [v.video_ids[0] for v in data] == []
    assert data.stats == {
        "frames_in_split": 8,
        "no_visible_object": 1,
        "no_person": 1,
        "short_videos": 3,
    }
    data = ActionGenome(tmp_path, "train", min_frames=2)
    assert [v.video_ids[0] for v in data] == ["A.mp4", "B.mp4", "C.mp4"]
    a = data[0]
    assert a.frame_times.tolist() == [[1, 3]]  # sorted by frame number
    # one track per object class, ordered by class index (cup/glass/bottle 10, table 31)
    assert a.object_labels[0, 0].tolist() == [object_index("cupglassbottle"), object_index("table")]
    assert ActionGenome(tmp_path, "test", min_frames=1)[0].video_ids == ("C.mp4",)


def test_boxes_relations_and_small_box_filter(tmp_path):
    persons = {
        "V.mp4/000010.png": person(n=2),
        "V.mp4/000020.png": person(),
        "V.mp4/000030.png": person(),
    }
    objects = {
        k: [obj("cupglassbottle", bbox=(200.0, 100.0, 40.0, 30.0), att=["notlookingat"],
                spa=["infrontof", "beneath"], con=["notcontactingwith", "holding", "holding"]),
            obj("closetcabinet", bbox=(0.0, 0.0, 16.0, 50.0), att=["unsure"], spa=[], con=[])]
        for k in persons
    }  # fmt: skip
    write(tmp_path, persons, objects)
    g = ActionGenome(tmp_path, "train")[0]
    cup = g.object_labels[0, 0].tolist().index(object_index("cup/glass/bottle"))
    torch.testing.assert_close(g.object_boxes[0, 0, cup], torch.tensor([200.0, 100, 240, 130]))
    torch.testing.assert_close(g.subject_boxes[0, 0, cup], torch.tensor([10.0, 20, 110, 250]))
    names = [PREDICATES[i] for i in g.relations[0, 0, cup].nonzero().flatten()]
    assert names == ["not_looking_at", "beneath", "in_front_of", "holding", "not_contacting"]
    assert g.image_size.tolist() == [[480.0, 270.0]]
    small = ActionGenome(tmp_path, "train", min_box_size=16)[0]  # the 16 px wide closet goes
    assert small.mask.shape[-1] == 1 and small.object_labels[0, 0, 0] == object_index(
        "cup/glass/bottle"
    )
    # the normalised spellings load the same
    spelled = {"cupglassbottle": "cup/glass/bottle", "closetcabinet": "closet/cabinet"}
    for frame in objects.values():
        for o in frame:
            o["class"] = spelled[o["class"]]
            contacting = o["contacting_relationship"]
            o["contacting_relationship"] = [
                "not_contacting" if n == "notcontactingwith" else n for n in contacting
            ]
    other = tmp_path / "other.pkl"
    with other.open("wb") as f:
        pickle.dump(objects, f)
    again = ActionGenome(tmp_path, "train", object_file=other)[0]
    assert torch.equal(again.relations, g.relations) and torch.equal(
        again.object_boxes, g.object_boxes
    )


F1, F2, F3 = "V.mp4/000001.png", "V.mp4/000002.png", "V.mp4/000003.png"
MALFORMED = {
    "key": (
        lambda p, o: (p.update({"bad-key": person()}), o.update({"bad-key": [obj("bed")]})),
        "key 'bad-key' is not of the form",
    ),
    "missing frame": (lambda p, o: o.pop(F2), f"frame '{F2}' of person_bbox.pkl is missing"),
    "no bbox": (
        lambda p, o: o[F1][0].update(bbox=None),
        f"frame '{F1}', object 0: visible object 'cupglassbottle' has no bbox",
    ),
    "class": (lambda p, o: o[F1][0].update({"class": "dog"}), "object 0: unknown class 'dog'"),
    "predicate": (
        lambda p, o: o[F2][0].update(spatial_relationship=["flying"]),
        "unknown predicate 'flying' in spatial_relationship",
    ),
    "group": (
        lambda p, o: o[F2][0].update(spatial_relationship=["holding"]),
        "predicate 'holding' is not a spatial predicate",
    ),
    "metadata": (lambda p, o: o[F1][0].pop("metadata"), r"object 0: no metadata\['set'\]"),
    "person": (
        lambda p, o: p[F1].update(bbox=np.zeros((1, 5))),
        rf"frame '{F1}': 'bbox' must be an \(n, 4\) array",
    ),
    "duplicate": (
        lambda p, o: o[F3].append(obj("cupglassbottle")),
        "a second 'cup/glass/bottle' in one frame",
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_files_name_the_frame(tmp_path, case):
    change, message = MALFORMED[case]
    persons, objects = video_frames(
        "V.mp4", [1, 2, 3], lambda t, s: [obj("cupglassbottle"), obj("bed")]
    )
    change(persons, objects)
    write(tmp_path, persons, objects)
    with pytest.raises(ValueError, match=message):
        ActionGenome(tmp_path, "train")


def test_missing_files_and_features(tmp_path):
    with pytest.raises(FileNotFoundError, match="person_bbox.pkl: no such file"):
        ActionGenome(tmp_path)
    persons, objects = video_frames("V.mp4", [1, 2, 3], lambda t, s: [obj("cupglassbottle")])
    write(tmp_path, persons, objects)
    with pytest.raises(FileNotFoundError, match=r"V\.mp4\.npz: no feature file for video 'V\.mp4'"):
        ActionGenome(tmp_path, features=tmp_path / "features")
    (tmp_path / "features").mkdir()
    arrays = dict(person_frames=np.array([1, 2, 3]), person=np.zeros((3, 4)))
    arrays |= dict(object_frames=np.array([1, 2]), object_classes=np.array([10, 10]))
    np.savez(tmp_path / "features" / "V.mp4.npz", objects=np.zeros((2, 4)), **arrays)
    with pytest.raises(ValueError, match=r"features of 'V\.mp4': none for frame/class \(3, 10\)"):
        ActionGenome(tmp_path, features=tmp_path / "features")
    with pytest.raises(ValueError, match="split: expected one of 'train', 'test'"):
        ActionGenome(tmp_path, split="val")
