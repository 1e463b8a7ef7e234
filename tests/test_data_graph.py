"""VideoGraph: validation, collation, indexing, device moves, serialisation."""

import pytest
import torch

from dsgg_layers.data import VideoGraph


def video(name, T, P, valid=None, feature_dim=4):
    g = VideoGraph.empty([name], T, P, feature_dim=feature_dim, union_dim=3)
    mask = torch.ones(1, T, P, dtype=torch.bool) if valid is None else valid.view(1, T, P)
    boxes = torch.rand(1, T, P, 4) * mask.unsqueeze(-1)
    return g.replace(
        mask=mask,
        subject_boxes=boxes,
        object_boxes=boxes.flip(-1),
        object_labels=torch.randint(1, 36, (1, T, P)).masked_fill(~mask, -1),
        relations=(torch.rand(1, T, P, 26) > 0.8) & mask.unsqueeze(-1),
        frame_times=torch.arange(T).view(1, T) * 3 + 5,
        image_size=torch.tensor([[480.0, 270.0]]),
        object_features=torch.randn(1, T, P, feature_dim) * mask.unsqueeze(-1),
    )


def test_collate_pads_and_indexing_trims_back():
    a = video("a", 2, 3)
    b = video("b", 5, 1)
    g = VideoGraph.collate([a, b])
    assert g.mask.shape == (2, 5, 3) and g.video_ids == ("a", "b")
    assert g.frame_mask.tolist() == [[True, True, False, False, False], [True] * 5]
    assert (g.object_labels[0, 2:] == -1).all() and not g.relations[1, :, 1:].any()
    for i, original in enumerate((a, b)):
        back = g[i]
        for name in ("mask", "subject_boxes", "object_labels", "relations", "frame_times"):
            assert torch.equal(getattr(back, name), getattr(original, name)), name
        assert torch.equal(back.object_features, original.object_features)
    assert g[-1].video_ids == ("b",)
    assert g[[1, 0]].video_ids == ("b", "a") and g[0:1].mask.shape == (1, 5, 3)
    assert g.num_frames == 7 and g.num_pairs == 11


def test_trims_to_the_last_used_track():
    valid = torch.tensor([[True, False, False], [False, True, False]])
    g = VideoGraph.collate([video("a", 2, 3, valid), video("b", 1, 1)])
    assert g[0].mask.shape == (1, 2, 2)  # track 2 is never used


def test_gt_is_collated_and_targets_come_from_it():
    det = video("a", 3, 4).replace(gt=video("a", 3, 2))
    det2 = video("b", 2, 1).replace(gt=video("b", 2, 5))
    g = VideoGraph.collate([det, det2])
    assert g.gt.mask.shape == (2, 3, 5)
    assert g.targets()["mask"] is g.gt.mask
    assert g[1].gt.mask.shape == (1, 2, 5)
    plain = video("c", 2, 2)
    assert plain.ground_truth is plain and plain.targets()["relations"] is plain.relations


def test_state_dict_round_trip_and_to(tmp_path):
    g = VideoGraph.collate([video("a", 3, 2), video("b", 2, 2)]).replace(gt=None)
    torch.save(g.state_dict(), tmp_path / "g.pt")
    back = VideoGraph.from_state_dict(torch.load(tmp_path / "g.pt", weights_only=True))
    assert back.video_ids == g.video_ids and torch.equal(back.relations, g.relations)
    moved = g.to("cpu")
    assert moved.device.type == "cpu" and torch.equal(moved.object_boxes, g.object_boxes)


def test_validation_errors():
    g = video("a", 2, 3)
    with pytest.raises(ValueError, match=r"mask: expected shape \(B, T, P\) with T=2"):
        g.replace(mask=torch.ones(1, 3, 3, dtype=torch.bool))
    with pytest.raises(TypeError, match="relations: expected a bool tensor"):
        g.replace(relations=torch.zeros(1, 2, 3, 26))
    with pytest.raises(ValueError, match=r"relations: expected shape \(B, T, P, 26\)"):
        g.replace(relations=torch.zeros(1, 2, 3, 25, dtype=torch.bool))
    with pytest.raises(
        ValueError,
        match=r"frame_times: expected shape \(B, T\) with B=2 \(from video_ids\), got \(1, 2\)",
    ):
        g.replace(video_ids=("a", "b"))
    with pytest.raises(ValueError, match=r"union_features: expected shape \(B, T, P, U\)"):
        g.replace(union_features=torch.zeros(1, 2, 4, 3))
    with pytest.raises(ValueError, match="gt: expected the same"):
        g.replace(gt=video("a", 3, 1))
    with pytest.raises(ValueError, match="graphs: expected at least one"):
        VideoGraph.collate([])
    with pytest.raises(ValueError, match="graphs: union_features is set in some graphs"):
        VideoGraph.collate([g, g.replace(union_features=None)])
    with pytest.raises(IndexError, match="video 3 out of range"):
        g[3]


def vidvrd_graph(video: str, T: int, P: int, seed: int = 0) -> VideoGraph:
    from dsgg_layers.vocab import Vocabulary

    vocab = Vocabulary.single_group(
        [f"pred{i}" for i in range(132)], ["person", "dog", "car"], name="VidVRD"
    )
    g = torch.Generator().manual_seed(seed)
    base = VideoGraph.empty([video], T, P, vocabulary=vocab)
    mask = torch.rand(1, T, P, generator=g) < 0.7
    return base.replace(
        mask=mask,
        subject_labels=torch.randint(0, 3, (1, T, P), generator=g).masked_fill(~mask, -1),
        object_labels=torch.randint(0, 3, (1, T, P), generator=g).masked_fill(~mask, -1),
        relations=(torch.rand(1, T, P, 132, generator=g) < 0.05) & mask[..., None],
        pair_extras={
            "track_id": torch.randint(1, 9, (1, T, P), generator=g),
            "depth": torch.rand(1, T, P, 1, generator=g),
        },
        frame_extras={"blur": torch.rand(1, T, generator=g)},
    )


def test_video_graph_beyond_action_genome_collates_splits_and_saves(tmp_path):
    a, b = vidvrd_graph("a", 3, 2, 0), vidvrd_graph("b", 5, 4, 1)
    batch = VideoGraph.collate([a, b])
    assert batch.relations.shape == (2, 5, 4, 132)
    assert batch.subject_labels.shape == (2, 5, 4) and (batch.subject_labels[0, 3:] == -1).all()
    assert batch.pair_extras["track_id"].shape == (2, 5, 4)
    assert batch.pair_extras["depth"].shape == (2, 5, 4, 1)
    assert batch.frame_extras["blur"].shape == (2, 5)
    assert (batch.pair_extras["track_id"][0, :, 2:] == 0).all()  # padded with 0
    back = batch[0]
    for name in ("track_id", "depth"):
        assert torch.equal(back.pair_extras[name][:, :, : a.mask.shape[2]][back.mask],
                           a.pair_extras[name][a.mask])  # fmt: skip
    assert torch.equal(back.frame_extras["blur"], a.frame_extras["blur"])
    assert back.vocabulary == a.vocabulary and back.vocabulary.name == "VidVRD"
    torch.save(batch.state_dict(), tmp_path / "g.pt")
    loaded = VideoGraph.from_state_dict(torch.load(tmp_path / "g.pt", weights_only=True))
    assert loaded.vocabulary == batch.vocabulary
    assert torch.equal(loaded.pair_extras["depth"], batch.pair_extras["depth"])
    assert torch.equal(loaded.subject_labels, batch.subject_labels)
    assert loaded.to("cpu").frame_extras["blur"].shape == (2, 5)


def test_video_graph_field_errors():
    a = vidvrd_graph("a", 3, 2)
    with pytest.raises(ValueError, match="relations"):
        a.replace(relations=torch.zeros(1, 3, 2, 26, dtype=torch.bool))
    with pytest.raises(ValueError, match="pair_extras"):
        a.replace(pair_extras={"x": torch.zeros(1, 4, 2)})
    with pytest.raises(ValueError, match="frame_extras"):
        a.replace(frame_extras={"x": torch.zeros(2, 3)})
    with pytest.raises(TypeError, match="subject_labels"):
        a.replace(subject_labels=torch.zeros(1, 3, 2))
    with pytest.raises(TypeError, match="vocabulary"):
        a.replace(vocabulary="VidVRD")
    with pytest.raises(ValueError, match="one vocabulary"):
        VideoGraph.collate([a, VideoGraph.empty(["b"], 2, 1)])
    with pytest.raises(ValueError, match="different keys"):
        VideoGraph.collate([a, a.replace(pair_extras={})])


def test_vocabulary_validation():
    from dsgg_layers.vocab import ACTION_GENOME, Vocabulary

    assert ACTION_GENOME.predicate_groups["spatial"] == slice(3, 9)
    assert Vocabulary.from_dict(ACTION_GENOME.to_dict()) == ACTION_GENOME
    with pytest.raises(ValueError, match="groups"):
        Vocabulary(("a", "b"), (("g", 0, 1),), ("x",))
    with pytest.raises(ValueError, match="groups"):
        Vocabulary(("a", "b"), (("g", 1, 2),), ("x",))
    with pytest.raises(ValueError, match="unique"):
        Vocabulary.single_group(["a", "a"], ["x"])
