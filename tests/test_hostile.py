"""Hostile input, tried as a new user would: bad dtypes, shapes and devices, empty and degenerate
input, NaN / Inf / huge values at valid and at padded positions, half precision, malformed files.

Every case asserts its outcome: the exact error type and that the message names the argument,
or the exact reference value. The promises these tests hold are listed in docs/reliability.md.
"""

from __future__ import annotations

import pytest
import torch

from dsgg_layers import (
    CategoryWeightedLoss,
    MotionFeatureExtractor,
    box_area,
    box_iou,
    category_weighted_bce,
    class_weights,
    collate_tracks,
    elementwise_box_iou,
    image_size_like,
    motion_attributes,
    normalize_boxes,
    person_object_pairs,
)
from dsgg_layers.metrics import ActionGenomeEvaluator, sttran_to_tracks

NAN, INF = float("nan"), float("inf")


def _finite_grads(*tensors: torch.Tensor) -> bool:
    return all(t.grad is not None and bool(torch.isfinite(t.grad).all()) for t in tensors)


# ----------------------------------------------------------------------------------------- boxes


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_iou_of_large_boxes_is_exact(dtype):
    """A 400 x 400 px box has area 160000, beyond float16's 65504: computed in float32."""
    a = torch.tensor([[0.0, 0, 400, 400]])
    b = torch.tensor([[0.0, 0, 400, 200]])
    assert box_iou(a.to(dtype), b.to(dtype)).item() == 0.5
    assert elementwise_box_iou(a.to(dtype), b.to(dtype)).item() == 0.5
    assert box_iou(a.to(dtype), b.to(dtype)).dtype == dtype
    assert box_area(a.to(dtype)).item() == 160000.0  # float32 area, not inf
    assert elementwise_box_iou(a.half(), b.float()).dtype == torch.float32


@pytest.mark.parametrize(
    "size",
    [
        (0, 100),
        (100, -1),
        (NAN, 100),
        (INF, 100),
        torch.tensor([0.0, 100.0]),
        torch.tensor([[100.0, NAN]]),
    ],
)
def test_image_sizes_must_be_positive_and_finite(size):
    boxes = torch.zeros(1, 2, 4)
    with pytest.raises(ValueError, match="image_size: expected positive finite sizes"):
        image_size_like(size, boxes)
    with pytest.raises(ValueError, match="image_size: expected positive finite sizes"):
        normalize_boxes(boxes, size)


# ---------------------------------------------------------------------------------------- motion


def _track(T: int = 3):
    s = torch.tensor([0.0, 0, 300, 300]).expand(T, 1, 4).clone()
    o = s + torch.arange(T, dtype=torch.float32).view(T, 1, 1) * 20 + 100
    return s, o, torch.ones(T, 1, dtype=torch.bool)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_motion_attributes_of_pixel_boxes_in_half_precision_match_float32(dtype):
    s, o, m = _track()
    want = motion_attributes(s, o, m)
    got = motion_attributes(s.to(dtype), o.to(dtype), m)
    assert got.dtype == dtype and torch.isfinite(got).all()
    torch.testing.assert_close(got.float(), want, rtol=2e-2, atol=1e-2)


def test_motion_attributes_refuse_decreasing_times_and_accept_repeated_ones():
    s, o, m = _track()
    with pytest.raises(ValueError, match="frame_times: expected times that never decrease"):
        motion_attributes(s, o, m, torch.tensor([0.0, 2.0, 1.0]))
    repeated = motion_attributes(s, o, m, torch.tensor([0.0, 0.0, 1.0]))
    assert repeated[1, 0, 1] == 0.0 and torch.isfinite(repeated).all()


@pytest.mark.parametrize("value", [NAN, INF])
def test_motion_attributes_refuse_non_finite_valid_boxes_and_ignore_padded_ones(value):
    s, o, m = _track()
    bad = o.clone()
    bad[1, 0, 2] = value
    with pytest.raises(ValueError, match="object_boxes: expected finite values at a valid"):
        motion_attributes(s, bad, m)
    m[1, 0] = False  # the same garbage in a padded frame: no effect, no NaN gradient
    s.requires_grad_()
    bad.requires_grad_()
    out = motion_attributes(s, bad, m)
    assert torch.isfinite(out).all() and (out[1] == 0).all()
    out.sum().backward()
    assert _finite_grads(s, bad) and (bad.grad[1] == 0).all()


def test_a_non_finite_batch_never_reaches_the_running_statistics():
    """On an accelerator boxes are not read; a NaN batch must not poison the statistics."""
    mfe = MotionFeatureExtractor(8).train()
    s, o, m = _track(4)
    mfe(s, o, m)
    before = (mfe.running_mean.clone(), mfe.running_var.clone())
    x = torch.full((1, 4, 1, 4), NAN)
    mfe._standardize(x, m.unsqueeze(0))  # the attributes a NaN box would give
    assert torch.equal(mfe.running_mean, before[0]) and torch.equal(mfe.running_var, before[1])


# ---------------------------------------------------------------------------------------- layout


@pytest.mark.parametrize("score", [-INF, INF, -1e30])
def test_person_object_pairs_keep_a_frame_whose_person_score_is_extreme(score):
    boxes = torch.tensor([[0.0, 0, 10, 10], [5, 5, 20, 20]])
    zero = torch.tensor([0, 0])
    tracks = person_object_pairs(
        boxes, torch.tensor([0, 3]), zero, zero, torch.tensor([0, 1]),
        scores=torch.tensor([score, 0.9]),
    )  # fmt: skip
    assert tracks.mask.tolist() == [[[True]]]


def test_person_object_pairs_refuse_nan_scores():
    boxes = torch.tensor([[0.0, 0, 10, 10], [5, 5, 20, 20]])
    zero = torch.tensor([0, 0])
    with pytest.raises(ValueError, match="scores: expected no NaN, got NaN at row 0"):
        person_object_pairs(boxes, torch.tensor([0, 3]), zero, zero, torch.tensor([0, 1]),
                            scores=torch.tensor([NAN, 0.9]))  # fmt: skip


# -------------------------------------------------------------------------------------- batching


def test_collate_tracks_never_casts():
    m = torch.ones(2, 1, dtype=torch.bool)
    with pytest.raises(TypeError, match=r"tensors\[1\]: expected dtype torch.float32"):
        collate_tracks([torch.ones(2, 1), torch.ones(2, 1, dtype=torch.float64)], [m, m])
    with pytest.raises(TypeError, match=r"tensors\[1\]: expected dtype torch.int64"):
        collate_tracks([torch.ones(2, 1, dtype=torch.long), torch.full((2, 1), 0.5)], [m, m])
    with pytest.raises(ValueError, match="fill: expected a value representable in torch.int64"):
        collate_tracks([torch.ones(2, 1, dtype=torch.long)], [m], fill=0.5)
    x, _ = collate_tracks([torch.ones(2, 1, dtype=torch.float64)], [m])
    assert x.dtype == torch.float64


# ---------------------------------------------------------------------------------------- losses


@pytest.mark.parametrize("beta", [NAN, INF, -0.5])
def test_class_weights_refuse_bad_beta(beta):
    with pytest.raises(ValueError, match="beta: expected"):
        class_weights(torch.tensor([3, 1]), beta)
    with pytest.raises(ValueError, match="beta: expected"):
        CategoryWeightedLoss(torch.tensor([3, 1]), beta)


@pytest.mark.parametrize("freq", [[1.0, NAN], [1.0, INF], [1.0, -1.0]])
def test_class_weights_refuse_bad_frequencies(freq):
    with pytest.raises(ValueError, match="frequencies: expected finite counts >= 0"):
        class_weights(torch.tensor(freq))


def test_garbage_at_masked_samples_gives_zero_gradient_and_the_clean_loss():
    logits = torch.randn(3, 4, dtype=torch.float64)
    targets = (torch.rand(3, 4) > 0.5).double()
    mask = torch.tensor([True, False, True])
    clean = category_weighted_bce(logits, targets, torch.ones(4), mask=mask)
    dirty_logits = logits.clone()
    dirty_logits[1] = torch.tensor([NAN, INF, -INF, 1e308])
    dirty_targets = targets.clone()
    dirty_targets[1] = NAN
    dirty_logits.requires_grad_()
    loss = category_weighted_bce(dirty_logits, dirty_targets, torch.ones(4), mask=mask)
    loss.backward()
    assert loss.item() == clean.item()
    assert (dirty_logits.grad[1] == 0).all() and torch.isfinite(dirty_logits.grad).all()


@pytest.mark.parametrize("value", [NAN, 2.0, -1.0])
def test_targets_outside_zero_one_at_counted_samples_are_refused(value):
    targets = torch.zeros(2, 3)
    targets[0, 1] = value
    with pytest.raises(ValueError, match=r"targets: expected values in \[0, 1\]"):
        category_weighted_bce(torch.zeros(2, 3), targets, torch.ones(3))
    with pytest.raises(ValueError, match=r"targets: expected values in \[0, 1\]"):
        category_weighted_bce(torch.zeros(2, 3), targets, torch.ones(3),
                              mask=torch.tensor([True, True]))  # fmt: skip


# --------------------------------------------------------------------------------------- metrics


def _side(P: int, T: int = 2) -> dict[str, torch.Tensor]:
    return {
        "mask": torch.ones(T, P, dtype=torch.bool),
        "subject_boxes": torch.tensor([0.0, 0, 50, 50]).expand(T, P, 4).clone(),
        "object_boxes": torch.tensor([10.0, 10, 60, 60]).expand(T, P, 4).clone(),
        "object_labels": torch.full((T, P), 3),
    }


def _target(G: int, T: int = 2) -> dict[str, torch.Tensor]:
    t = _side(G, T)
    t["relations"] = torch.zeros(T, G, 26, dtype=torch.bool)
    t["relations"][..., 0] = True
    return t


def _preds(P: int, T: int = 2) -> dict[str, torch.Tensor]:
    p = _side(P, T)
    p["predicate_scores"] = torch.full((T, P, 26), 0.1)
    p["predicate_scores"][..., 0] = 0.9
    return p


def test_a_video_without_predicted_pairs_scores_zero_recall():
    ev = ActionGenomeEvaluator()
    ev.update(_preds(0), _target(2))
    r = ev.compute()
    assert r["num_frames"].item() == 2 and r["with/R@20"].item() == 0.0


def test_frames_without_ground_truth_pairs_count_nothing():
    ev = ActionGenomeEvaluator()
    ev.update(_preds(2), _target(0))
    ev.update(_preds(0), _target(0))
    ev.update(_preds(1), _target(1))
    r = ev.compute()
    assert r["num_frames"].item() == 2 and r["with/R@20"].item() == 1.0


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        (
            "predicate_scores",
            NAN,
            r"preds\['predicate_scores'\]: expected probabilities in \[0, 1\]",
        ),
        ("predicate_scores", -0.5, r"preds\['predicate_scores'\]: expected probabilities"),
        ("predicate_scores", 3.0, r"preds\['predicate_scores'\]: expected probabilities"),
        ("object_scores", NAN, r"preds\['object_scores'\]: expected scores in \[0, 1\]"),
        ("subject_boxes", NAN, r"preds\['subject_boxes'\]: expected finite boxes"),
        ("object_boxes", INF, r"preds\['object_boxes'\]: expected finite boxes"),
    ],
)
def test_the_evaluator_refuses_values_that_would_rank_wrongly(key, value, message):
    preds = _preds(2)
    if key == "object_scores":
        preds[key] = torch.ones(2, 2)
    preds[key].view(-1)[0] = value
    with pytest.raises(ValueError, match=message):
        ActionGenomeEvaluator().update(preds, _target(2))


def test_the_evaluator_ignores_garbage_at_padded_pairs():
    preds, target = _preds(3), _target(2)
    want = ActionGenomeEvaluator()
    want.update({k: v[:, :2] for k, v in preds.items()}, target)
    preds["mask"][:, 2] = False
    preds["predicate_scores"][:, 2] = NAN
    preds["subject_boxes"][:, 2] = INF
    got = ActionGenomeEvaluator()
    got.update(preds, target)
    for key, value in want.compute().items():
        torch.testing.assert_close(got.compute()[key], value, msg=key)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_boxes_of_large_pictures_still_match(dtype):
    preds, target = _preds(2), _target(2)
    for d in (preds, target):
        for key in ("subject_boxes", "object_boxes"):
            d[key] = (d[key] * 8).to(dtype)  # boxes of 400 px and more
    ev = ActionGenomeEvaluator()
    ev.update(preds, target)
    assert ev.compute()["with/R@20"].item() == 1.0


@pytest.mark.parametrize(
    ("key", "index"),
    [
        ("attention_relationship", 3),
        ("spatial_relationship", 6),
        ("contacting_relationship", 17),
        ("spatial_relationship", -1),
    ],
)
def test_sttran_ground_truth_indices_outside_their_group_are_refused(key, index):
    entry = {
        "boxes": torch.tensor([[0, 0.0, 0, 10, 10], [0, 5, 5, 20, 20]]),
        "labels": torch.tensor([1, 7]),
        "scores": torch.ones(2),
        "pair_idx": torch.tensor([[0, 1]]),
        "im_idx": torch.tensor([0]),
        "attention_distribution": torch.zeros(1, 3),
        "spatial_distribution": torch.zeros(1, 6),
        "contacting_distribution": torch.zeros(1, 17),
    }
    obj = {"class": 7, "bbox": [5.0, 5, 20, 20], "attention_relationship": [0],
           "spatial_relationship": [], "contacting_relationship": []}  # fmt: skip
    obj[key] = [index]
    gt = [[{"person_bbox": [[0.0, 0, 10, 10]]}, obj]]
    with pytest.raises(ValueError, match=rf"gt_annotation\[0\]\[1\]\['{key}'\]: expected indices"):
        sttran_to_tracks(entry, gt)
    with pytest.raises(ValueError, match=rf"\['{key}'\]: expected indices in \[0, "):
        ActionGenomeEvaluator().update_sttran(entry, gt)


# ------------------------------------------------------------------------- data, text, vocab


def _sttran_lookup(annotations):
    """The public STTran loader's name rules: read the class lists, respell a few entries, then
    look every pickle name up with ``list.index`` (a reimplementation of the rule, not its code)."""
    objects = ["__background__", *(annotations / "object_classes.txt").read_text().split()]
    for i, name in {9: "closet/cabinet", 11: "cup/glass/bottle", 23: "paper/notebook",
                    24: "phone/camera", 31: "sofa/couch"}.items():  # fmt: skip
        objects[i] = name
    relations = (annotations / "relationship_classes.txt").read_text().split()
    respelled = {0: "looking_at", 1: "not_looking_at", 5: "in_front_of", 7: "on_the_side_of",
                 10: "covered_by", 11: "drinking_from", 13: "have_it_on_the_back",
                 15: "leaning_on", 16: "lying_on", 17: "not_contacting",
                 18: "other_relationship", 19: "sitting_on", 20: "standing_on",
                 25: "writing_on"}  # fmt: skip
    for i, name in respelled.items():
        relations[i] = name
    return objects, relations[0:3], relations[3:9], relations[9:]


def test_written_annotations_load_under_the_public_loaders_rules(tmp_path):
    import pickle

    from dsgg_layers.data import SyntheticActionGenome, SyntheticConfig, write_action_genome
    from dsgg_layers.vocab import OBJECT_CLASSES, PREDICATES

    g = SyntheticActionGenome(SyntheticConfig(num_videos=1, num_test_videos=1, objects=(2, 2)))[0]
    labels = g.object_labels.clone()
    labels[..., 0] = torch.where(g.mask[..., 0], 8, -1)  # track 0: closet/cabinet
    labels[..., 1] = torch.where(g.mask[..., 1], 10, -1)  # track 1: cup/glass/bottle
    data = [g.replace(object_labels=labels)]
    write_action_genome(data, tmp_path)
    objects, att, spa, con = _sttran_lookup(tmp_path / "annotations")
    with (tmp_path / "annotations" / "object_bbox_and_relationship.pkl").open("rb") as f:
        table = pickle.load(f)
    seen_classes, seen_predicates = set(), set()
    for records in table.values():
        for r in (r for r in records if r["visible"]):
            cls = objects.index(r["class"])  # raises as STTran's loader would
            assert OBJECT_CLASSES[cls - 1] == r["class"]
            seen_classes.add(r["class"])
            for names, group in ((r["attention_relationship"], att),
                                 (r["spatial_relationship"], spa),
                                 (r["contacting_relationship"], con)):  # fmt: skip
                for name in names:
                    assert group[group.index(name)] in PREDICATES
                    seen_predicates.add(name)
    assert seen_classes == {"closet/cabinet", "cup/glass/bottle"}  # the separated spellings
    assert any("_" in p for p in seen_predicates)


def test_writing_a_padding_label_at_a_valid_pair_is_refused(tmp_path):
    from dsgg_layers.data import SyntheticActionGenome, SyntheticConfig, write_action_genome

    g = SyntheticActionGenome(SyntheticConfig(num_videos=1, num_test_videos=1))[0]
    labels = g.object_labels.clone()
    labels[g.mask] = -1
    with pytest.raises(ValueError, match="videos: video .* has object label -1 at a valid pair"):
        write_action_genome([g.replace(object_labels=labels)], tmp_path)


@pytest.mark.parametrize("field", ["person", "object"])
def test_the_loader_refuses_non_finite_boxes(tmp_path, field):
    import pickle

    from dsgg_layers.data import (
        ActionGenome,
        SyntheticActionGenome,
        SyntheticConfig,
        write_action_genome,
    )

    write_action_genome(SyntheticActionGenome(SyntheticConfig(num_videos=2)), tmp_path)
    name = "person_bbox.pkl" if field == "person" else "object_bbox_and_relationship.pkl"
    path = tmp_path / "annotations" / name
    table = pickle.loads(path.read_bytes())
    key = sorted(table)[0]
    if field == "person":
        table[key]["bbox"] = table[key]["bbox"].copy()
        table[key]["bbox"][0, 2] = NAN
        match = "person_bbox.pkl: frame .*'bbox' is not finite"
    else:
        record = next(r for r in table[key] if r["visible"])
        record["bbox"] = (1.0, 2.0, INF, 3.0)
        match = "object_bbox_and_relationship.pkl: frame .*expected a finite"
    path.write_bytes(pickle.dumps(table))
    with pytest.raises(ValueError, match=match):
        list(ActionGenome(tmp_path, "train"))


def test_the_loader_refuses_non_finite_features(tmp_path):
    import numpy as np

    from dsgg_layers.data import (
        ActionGenome,
        SyntheticActionGenome,
        SyntheticConfig,
        write_action_genome,
    )

    write_action_genome(SyntheticActionGenome(SyntheticConfig(num_videos=2)), tmp_path)
    path = sorted((tmp_path / "features").iterdir())[0]
    arrays = dict(np.load(path))
    arrays["objects"][0, 0] = NAN
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=r"array 'objects' holds 1 NaN/Inf"):
        list(ActionGenome(tmp_path, "train", features=tmp_path / "features"))


@pytest.mark.parametrize("name", ["3bed3", "bed!", "b3d", "", "  "])
def test_vocabulary_refuses_names_with_other_characters(name):
    from dsgg_layers.vocab import normalize_object_name

    with pytest.raises(ValueError, match="is not an Action Genome object class"):
        normalize_object_name(name)


def test_an_unreachable_object_count_is_refused_not_a_hang():
    from dsgg_layers.data import SyntheticConfig

    with pytest.raises(ValueError, match=r"objects: expected at most 35 objects a video"):
        SyntheticConfig(objects=(36, 40))


@pytest.mark.parametrize("content", [b"not a zip", b"", "pickle"])
def test_a_corrupt_text_cache_is_reported_and_rewritten(tmp_path, content):
    from dsgg_layers import text

    path = text._cache_path(tmp_path, "ViT-B-32", None)
    path.parent.mkdir(parents=True, exist_ok=True)
    if content == "pickle":
        torch.save({"a sentence": torch.tensor([NAN, 1.0])}, path)  # readable, not embeddings
    else:
        path.write_bytes(content)
    with pytest.warns(RuntimeWarning, match="text embedding cache .* is corrupt"):
        emb = text.encode_prompts(["a person holding a cup"], cache_dir=tmp_path)
    assert emb.shape == (1, 512) and torch.isfinite(emb).all()
    stored = torch.load(path, weights_only=True)
    assert list(stored) == ["a person holding a cup"]  # rewritten with good embeddings


def test_topk_ties_keep_the_predicate_order():
    """All 26 scores tied: top-k keeps the first k predicates (a stable sort), as "no" does."""
    from dsgg_layers.metrics import action_genome_metrics

    target = _target(1, T=1)  # looking_at, the first predicate
    preds = _preds(1, T=1)
    preds["predicate_scores"] = torch.full((1, 1, 26), 0.5)
    r = action_genome_metrics(preds, target, constraints=["topk", "no"], ks=[6])
    assert r["top6/R@6"].item() == 1.0 and r["no/R@6"].item() == 1.0


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("iou_threshold", 0.9),
        ("legacy_iou", False),
        ("semi_threshold", 0.5),
        ("no_constraint_top", 5),
        ("precision_denominator", "available"),
        ("top_k_per_pair", 3),
        ("person_label", 1),
    ],
)
def test_merging_evaluators_of_different_protocols_is_refused(option, value):
    a, b = ActionGenomeEvaluator(), ActionGenomeEvaluator(**{option: value})
    with pytest.raises(ValueError, match=f"other: expected {option}="):
        a.merge(b)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"semi_threshold": NAN}, ValueError, "semi_threshold: expected a number in"),
        ({"semi_threshold": 2.0}, ValueError, "semi_threshold: expected a number in"),
        ({"legacy_iou": "no"}, TypeError, "legacy_iou: expected a bool"),
        ({"person_label": "x"}, TypeError, "person_label: expected an int"),
        ({"ks": [10, 10]}, ValueError, "ks: expected no repeats"),
    ],
)
def test_evaluator_options_are_checked_at_construction(kwargs, error, message):
    with pytest.raises(error, match=message):
        ActionGenomeEvaluator(**kwargs)


def test_format_results_names_bad_metrics_ks_and_keys():
    from dsgg_layers.metrics import format_results

    results = {"with/R@10": torch.tensor(0.5)}
    with pytest.raises(ValueError, match="metrics: expected one of 'R', 'mR', 'P'"):
        format_results(results, metrics=["recall"])
    with pytest.raises(ValueError, match=r"ks: \[20\] not in the results"):
        format_results(results, ks=[20])
    with pytest.raises(ValueError, match="results: key 'with/R@ten' has no integer K"):
        format_results({"with/R@ten": torch.tensor(0.5)})


def test_targets_carry_the_subject_labels_so_a_perfect_prediction_scores_one():
    from dsgg_layers.data import VideoGraph
    from dsgg_layers.metrics import action_genome_metrics

    box = torch.tensor([0.0, 0, 9, 9]).view(1, 1, 1, 4)
    rel = torch.zeros(1, 1, 1, 26, dtype=torch.bool)
    rel[..., 0] = True
    g = VideoGraph.empty(["v"], 1, 1).replace(
        mask=torch.ones(1, 1, 1, dtype=torch.bool), subject_boxes=box, object_boxes=box,
        object_labels=torch.full((1, 1, 1), 5), subject_labels=torch.full((1, 1, 1), 2),
        relations=rel,
    )  # fmt: skip
    target = g.targets()
    preds = dict(target, predicate_scores=rel.float())
    assert action_genome_metrics(preds, target, ks=[10])["with/R@10"].item() == 1.0


def test_video_graph_indexing_takes_bool_masks_and_names_bad_indices():
    from dsgg_layers.data import VideoGraph

    g = VideoGraph.empty(["a", "b", "c"], 2, 1)
    assert g[torch.tensor([False, False, True])].video_ids == ("c",)
    assert g[[-1, 0]].video_ids == ("c", "a")
    with pytest.raises(IndexError, match="item: video 5 out of range for a batch of 3"):
        g[[5]]
    with pytest.raises(IndexError, match=r"item: expected a bool mask of shape \(3,\)"):
        g[torch.tensor([True, False])]


@pytest.mark.parametrize("ids", ["a.mp4", [1, 2]])
def test_video_ids_must_be_a_sequence_of_str(ids):
    from dsgg_layers.data import VideoGraph

    with pytest.raises(TypeError, match="video_ids: expected"):
        VideoGraph.empty(ids, 2, 1)


@pytest.mark.parametrize(("frames", "pairs"), [(-1, 1), (1, -2), (2.5, 1)])
def test_video_graph_sizes_are_checked(frames, pairs):
    from dsgg_layers.data import VideoGraph

    with pytest.raises((TypeError, ValueError), match="num_frames|num_pairs"):
        VideoGraph.empty(["a"], frames, pairs)


def test_collate_names_the_field_whose_widths_differ():
    from dsgg_layers.data import VideoGraph

    a, b = (
        VideoGraph.empty(["a"], 2, 1, feature_dim=8),
        VideoGraph.empty(["b"], 3, 2, feature_dim=16),
    )
    with pytest.raises(ValueError, match=r"graphs: subject_features have different trailing"):
        VideoGraph.collate([a, b])
    a = VideoGraph.empty(["a"], 2, 1).replace(pair_extras={"d": torch.zeros(1, 2, 1, 3)})
    b = VideoGraph.empty(["b"], 2, 1).replace(pair_extras={"d": torch.zeros(1, 2, 1, 5)})
    with pytest.raises(ValueError, match=r"graphs: pair_extras\['d'\] have different trailing"):
        VideoGraph.collate([a, b])


def test_a_ground_truth_of_another_vocabulary_is_refused():
    from dsgg_layers.data import VideoGraph
    from dsgg_layers.vocab import Vocabulary

    vrd = Vocabulary.single_group(["ride", "chase"], ["dog", "person"])
    with pytest.raises(ValueError, match="gt: expected the graph's vocabulary"):
        VideoGraph.empty(["v"], 1, 1).replace(gt=VideoGraph.empty(["v"], 1, 1, vocabulary=vrd))


def test_a_single_video_id_string_is_refused_by_the_loader(tmp_path):
    from dsgg_layers.data import (
        ActionGenome,
        SyntheticActionGenome,
        SyntheticConfig,
        write_action_genome,
    )

    write_action_genome(SyntheticActionGenome(SyntheticConfig(num_videos=2)), tmp_path)
    with pytest.raises(TypeError, match="videos: expected an iterable of video ids, got the str"):
        ActionGenome(tmp_path, videos="synTR00000.mp4")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"groups": [("a", 0, 1), ("a", 1, 2)]}, "groups: expected unique names"),
        ({"predicates": "ab"}, "predicates: expected a sequence of names"),
        ({"object_classes": ["x", ""]}, "object_classes: expected non-empty str names"),
    ],
)
def test_vocabularies_refuse_duplicates_and_strings(kwargs, message):
    from dsgg_layers.vocab import Vocabulary

    base = {"predicates": ["p", "q"], "object_classes": ["x", "y"], "groups": [("all", 0, 2)]}
    with pytest.raises((TypeError, ValueError), match=message):
        Vocabulary(**(base | kwargs))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"seed": -1}, "seed: expected a non-negative int"),
        ({"frames": 5}, r"frames: expected a range \(lo, hi\) of two ints"),
        ({"objects": (2.5, 3)}, r"objects: expected a range \(lo, hi\) of two ints"),
        ({"box_noise": NAN}, "box_noise: expected a finite number >= 0"),
        ({"feature_noise": INF}, "feature_noise: expected a finite number >= 0"),
        ({"det_spurious": -1.0}, "det_spurious: expected a finite number >= 0"),
        ({"image_size": (20, 20)}, r"image_size: expected at least \(300, 250\)"),
    ],
)
def test_synthetic_configs_are_checked(kwargs, message):
    from dsgg_layers.data import SyntheticConfig

    with pytest.raises((TypeError, ValueError), match=message):
        SyntheticConfig(**kwargs)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda t: t.class_words("holding"), "names: expected a sequence of names"),
        (lambda t: t.mosa_prompts("bed"), "objects: expected a sequence of names"),
        (lambda t: t.mosa_prompts([]), "objects: expected at least one name"),
        (lambda t: t.class_words([["holding"]]), "names: expected str names"),
    ],
)
def test_prompt_builders_refuse_a_single_string(call, message):
    from dsgg_layers import text

    with pytest.raises((TypeError, ValueError), match=message):
        call(text)


def test_tensors_on_another_device_are_named():
    """The 'meta' device stands in for an accelerator on this CPU-only machine."""
    from dsgg_layers import TransformerEncoderLayer

    x = torch.randn(2, 3, 8, device="meta")
    with pytest.raises(ValueError, match="mask: expected device meta .of x., got cpu"):
        TransformerEncoderLayer(8, 2).to("meta")(x, torch.ones(2, 3, dtype=torch.bool))
    s, o, m = _track()
    with pytest.raises(ValueError, match="object_boxes: expected device cpu .of subject_boxes"):
        motion_attributes(s, o.to("meta"), m)


def test_features_of_any_dtype_or_autograd_state_are_written(tmp_path):
    from dsgg_layers.data import (
        ActionGenome,
        SyntheticActionGenome,
        SyntheticConfig,
        write_action_genome,
    )

    g = SyntheticActionGenome(SyntheticConfig(num_videos=1, num_test_videos=0))[0]
    odd = g.replace(subject_features=g.subject_features.bfloat16(),
                    object_features=g.object_features.clone().requires_grad_(),
                    union_features=g.union_features.half())  # fmt: skip
    write_action_genome([odd], tmp_path)
    back = ActionGenome(tmp_path, "train", features=tmp_path / "features", min_frames=1)[0]
    assert back.object_features.dtype == torch.float32
    assert torch.isfinite(back.subject_features).all()


@pytest.mark.parametrize("change", ["1-d person", "short object_frames", "short union"])
def test_malformed_feature_files_name_the_file_and_array(tmp_path, change):
    import numpy as np

    from dsgg_layers.data import (
        ActionGenome,
        SyntheticActionGenome,
        SyntheticConfig,
        write_action_genome,
    )

    write_action_genome(SyntheticActionGenome(SyntheticConfig(num_videos=1, num_test_videos=0)),
                        tmp_path)  # fmt: skip
    path = next((tmp_path / "features").iterdir())
    arrays = dict(np.load(path))
    if change == "1-d person":
        arrays["person"] = arrays["person"][:, 0]
    elif change == "short object_frames":
        arrays["object_frames"] = arrays["object_frames"][:-1]
    else:
        arrays["union"] = arrays["union"][:-1]
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=rf"{path.name}: expected '\w+' \(n, F\) with one row"):
        ActionGenome(tmp_path, features=tmp_path / "features", min_frames=1)


def test_min_frames_is_checked(tmp_path):
    from dsgg_layers.data import ActionGenome

    with pytest.raises(TypeError, match="min_frames: expected an int"):
        ActionGenome(tmp_path, min_frames="3")


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"predicates": []}, ValueError, "predicates: expected at least two distinct"),
        ({"predicates": ["holding", "holding"]}, ValueError, "predicates: expected at least two"),
        ({"predicates": "holding"}, TypeError, "predicates: expected a sequence"),
        ({"hidden": 0}, ValueError, "hidden: expected a value > 0"),
        ({"steps": 20.5}, TypeError, "steps: expected an int"),
        ({"train": []}, ValueError, "train: expected at least one video"),
    ],
)
def test_motion_probe_arguments_are_checked(kwargs, error, message):
    from dsgg_layers.data import SyntheticActionGenome, SyntheticConfig, motion_probe

    cfg = SyntheticConfig(num_videos=2, num_test_videos=1)
    args = {"train": SyntheticActionGenome(cfg), "test": SyntheticActionGenome(cfg, "test"),
            "steps": 20} | kwargs  # fmt: skip
    with pytest.raises(error, match=message):
        motion_probe(**args)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda V: V.single_group("abc", ["x"]), "predicates: expected a sequence of names"),
        (lambda V: V.single_group(["a"], "dog"), "object_classes: expected a sequence of names"),
        (lambda V: V.single_group(["a"], ["x"], subject_classes=["p", "p"]), "subject_classes: "),
        (lambda V: V.single_group(["a"], []), "object_classes: expected at least one name"),
        (lambda V: V.single_group([1, 2], ["x"]), "predicates: expected non-empty str names"),
        (lambda V: V(("a",), (("g", 0),), ("x",)), r"groups: expected \(name, start, stop\)"),
        (lambda V: V(("a",), (("g", 0, 1),), ("x",), ()), "subject_classes: expected at least one"),
    ],
)
def test_vocabulary_arguments_are_named(call, message):
    from dsgg_layers.vocab import Vocabulary

    with pytest.raises((TypeError, ValueError), match=message):
        call(Vocabulary)


def test_vocabulary_round_trips_exactly():
    from dsgg_layers.vocab import ACTION_GENOME, Vocabulary

    custom = Vocabulary.single_group(
        ["ride", "chase"], ["dog", "person"], subject_classes=["person"]
    )
    for v in (ACTION_GENOME, custom):
        assert Vocabulary.from_dict(v.to_dict()) == v


# ------------------------------------------------------------------- blocks, second sweep


def test_a_non_finite_box_has_iou_zero_and_passes_no_gradient():
    a = torch.tensor([[0.0, 0.0, NAN, 1.0], [0.0, 0.0, 1.0, 1.0]], requires_grad=True)
    b = torch.tensor([[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 2.0, 2.0]], requires_grad=True)
    iou = box_iou(a, b)
    assert iou[0].tolist() == [0.0, 0.0] and iou[1].tolist() == [1.0, 0.25]
    iou.sum().backward()
    assert torch.isfinite(b.grad).all() and (a.grad[0] == 0).all()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_motion_features_train_under_autocast_with_half_boxes(dtype):
    b = torch.rand(2, 5, 3, 4).sort(-1).values
    m = torch.ones(2, 5, 3, dtype=torch.bool)
    mfe = MotionFeatureExtractor(16).train()
    with torch.autocast("cpu", dtype=dtype):
        out = mfe(b.to(dtype), b.flip(2).to(dtype), m)
    assert torch.isfinite(out).all() and mfe.running_mean.dtype == torch.float32
    assert not torch.equal(mfe.running_mean, torch.zeros(4))


@pytest.mark.parametrize(
    ("x", "fill"),
    [
        (torch.tensor([False]), -1),
        (torch.tensor([7], dtype=torch.uint8), -1),
        (torch.tensor([7]), 0.5),
        (torch.tensor([7]), NAN),
    ],
)
def test_flat_to_tracks_refuses_a_fill_the_dtype_cannot_hold(x, fill):
    from dsgg_layers import TrackIndex, flat_to_tracks

    index = TrackIndex.from_mask(torch.tensor([[[True, False]]]))
    with pytest.raises(ValueError, match="fill_value: expected a value representable in"):
        flat_to_tracks(x, index, fill_value=fill)
    assert flat_to_tracks(torch.tensor([True]), index, fill_value=False)[0].tolist() == [
        [[True, False]]
    ]


def test_an_empty_batch_has_loss_zero_with_and_without_a_mask():
    logits = torch.zeros(0, 3, requires_grad=True)
    for mask in (None, torch.zeros(0, dtype=torch.bool)):
        loss = category_weighted_bce(logits, torch.zeros(0, 3), torch.ones(3), mask=mask)
        assert loss.item() == 0.0
        loss.backward()


def test_label_frequencies_names_a_non_bool_mask_and_bad_relations():
    from types import SimpleNamespace as V

    from dsgg_layers import label_frequencies

    rel = torch.tensor([[True, False], [True, True]])
    with pytest.raises(TypeError, match=r"videos\[0\].mask: expected a bool tensor"):
        label_frequencies([V(relations=rel, mask=torch.tensor([1, 0]))])
    with pytest.raises(TypeError, match=r"videos\[0\].relations: expected a bool or an integer"):
        label_frequencies([V(relations=torch.tensor([[0.6, NAN]]), mask=torch.tensor([True]))])
    with pytest.raises(ValueError, match=r"videos\[0\].relations: expected shape \(3, C\)"):
        label_frequencies([V(relations=rel, mask=torch.ones(3, dtype=torch.bool))])


@pytest.mark.parametrize("n", [700, 70000])
def test_half_precision_mean_pooling_accumulates_in_float32(n):
    from dsgg_layers import masked_pool

    value = 100.0 if n == 700 else 1e-3
    x = torch.full((1, n, 1), value).half()
    out = masked_pool(x, torch.ones(1, n, dtype=torch.bool), mode="mean")
    assert out.dtype == torch.float16
    torch.testing.assert_close(out.float(), torch.tensor([[value]]), rtol=1e-3, atol=0)


def test_cosine_matching_in_half_precision_keeps_zero_rows_finite():
    from dsgg_layers import ActionSemanticMatcher

    emb = torch.nn.functional.normalize(torch.randn(5, 12), dim=-1)
    asm = ActionSemanticMatcher(8, emb, similarity="cosine").half()
    x = torch.randn(4, 8).half()
    x[2:] = 0
    out = asm(x)
    out.float().sum().backward()
    assert torch.isfinite(out).all() and torch.isfinite(asm.proj.weight.grad).all()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"text_embeddings": torch.full((5, 12), NAN)}, "text_embeddings: expected finite values"),
        ({"temperature": 0.005}, "temperature: expected at least 0.01"),
    ],
)
def test_semantic_matcher_refuses_nan_text_and_an_unlearnable_temperature(kwargs, message):
    from dsgg_layers import ActionSemanticMatcher

    args = {"text_embeddings": torch.randn(5, 12)} | kwargs
    with pytest.raises(ValueError, match=message):
        ActionSemanticMatcher(8, **args)


def _entry(**changes):
    L = torch.tensor
    boxes = L([[0, 0.0, 0, 9, 9], [0, 5, 5, 20, 20], [1, 1, 1, 9, 9], [1, 6, 6, 21, 21]])
    entry = {"boxes": boxes, "labels": L([1, 8, 1, 8]), "im_idx": L([0.0, 1.0]),
             "pair_idx": L([[0, 1], [2, 3]])}  # fmt: skip
    return entry | changes


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"pair_idx": torch.tensor([[0, 1], [2, -1]])}, r"entry\['pair_idx'\]: expected whole"),
        ({"pair_idx": torch.tensor([[0, 1], [2, 7]])}, r"entry\['pair_idx'\]: expected whole"),
        ({"im_idx": torch.tensor([0.0, -1.0])}, r"entry\['im_idx'\]: expected whole-number"),
        ({"im_idx": torch.tensor([0.0, NAN])}, r"entry\['im_idx'\]: expected whole-number"),
        ({"im_idx": torch.tensor([0.0, 0.7])}, r"entry\['im_idx'\]: expected whole-number"),
    ],
)
def test_sttran_indices_are_checked(changes, message):
    from dsgg_layers import from_sttran

    with pytest.raises(ValueError, match=message):
        from_sttran(_entry(**changes))


def test_sttran_padded_layout_shorter_than_a_frame_is_refused():
    from dsgg_layers import from_sttran

    L = torch.tensor
    p = from_sttran({"boxes": L([[0, 0.0, 0, 9, 9], [0, 5, 5, 20, 20], [0, 30, 5, 40, 20]]),
                     "labels": L([1, 8, 9]), "pair_idx": L([[0, 1], [0, 2]]),
                     "im_idx": L([0.0, 0.0])})  # fmt: skip
    with pytest.raises(ValueError, match="padded: expected l >= the largest frame's pair count 2"):
        p.padded_to_rows(torch.zeros(1, 1, 4))


def test_sttran_distribution_widths_are_checked():
    entry = _entry(
        scores=torch.ones(4),
        attention_distribution=torch.zeros(2, 3),
        spatial_distribution=torch.rand(2, 5),
        contacting_distribution=torch.rand(2, 17),
    )
    gt = [[{"person_bbox": [[0.0, 0, 9, 9]]}, {"class": 8, "bbox": [5.0, 5, 20, 20]}]] * 2
    with pytest.raises(
        ValueError, match=r"entry\['spatial_distribution'\]: expected shape \(2, 6\)"
    ):
        sttran_to_tracks(entry, gt)


def test_half_precision_attention_weights_path_matches_the_fused_path():
    from dsgg_layers import masked_attention

    q = torch.full((1, 1, 2, 64), 40.0).half()
    k = torch.full((1, 1, 3, 64), 40.0).half()
    v = torch.randn(1, 1, 3, 64).half()
    fused, _ = masked_attention(q, k, v)
    out, w = masked_attention(q, k, v, need_weights=True)
    assert torch.isfinite(out).all() and torch.isfinite(w).all()
    torch.testing.assert_close(out, fused, rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"scale": NAN}, "scale: expected a positive finite number"),
        ({"scale": INF}, "scale: expected a positive finite number"),
        ({"dropout_p": 1.5}, r"dropout_p: expected a probability in \[0, 1\)"),
        ({"dropout_p": NAN}, r"dropout_p: expected a probability in \[0, 1\)"),
    ],
)
def test_attention_scale_and_dropout_are_checked(kwargs, message):
    from dsgg_layers import masked_attention

    q = torch.randn(1, 1, 2, 8)
    with pytest.raises(ValueError, match=message):
        masked_attention(q, q, q, **kwargs)


def test_valid_rows_transpose_refuses_dims_outside_the_mask():
    from dsgg_layers import ValidRows

    rows = ValidRows(torch.ones(2, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="dim1: expected a dim of the 2-d mask, got 5"):
        rows.transpose(0, 5)


def test_tokens_must_be_float_and_on_x_device():
    from dsgg_layers import prepend_tokens

    x, m = torch.randn(2, 3, 8), torch.ones(2, 3, dtype=torch.bool)
    with pytest.raises(TypeError, match="tokens: expected a floating point tensor"):
        prepend_tokens(x, m, torch.ones(1, 8, dtype=torch.long))
    with pytest.raises(ValueError, match="mask: expected device meta .of x., got cpu"):
        prepend_tokens(x.to("meta"), m, torch.ones(1, 8))


def test_track_sizes_refuse_pairs_outside_the_frame_mask():
    from dsgg_layers import track_sizes

    mask = torch.zeros(1, 4, 1, dtype=torch.bool)
    mask[0, :3, 0] = True
    with pytest.raises(ValueError, match="frame_mask: a pair exists in a frame slot"):
        track_sizes(mask, torch.tensor([[True, False, False, False]]))


@pytest.mark.parametrize("sizes", [[], torch.zeros(0, 2, dtype=torch.long)])
def test_no_videos_make_no_batches(sizes):
    from dsgg_layers import BucketBatchSampler, bucket_batches

    assert bucket_batches(sizes) == []
    assert list(BucketBatchSampler(sizes)) == []


def test_fractional_sizes_are_refused():
    from dsgg_layers import bucket_batches

    with pytest.raises(TypeError, match="sizes: expected integer"):
        bucket_batches([(1.5, 2)])


def test_windowed_temporal_encoder_refuses_pairs_outside_the_frame_mask():
    from dsgg_layers import SpatialTemporalEncoder

    blk = SpatialTemporalEncoder(16, 4, 32, temporal_layers=1, temporal_window=2).eval()
    x, m = torch.randn(1, 6, 2, 16), torch.ones(1, 6, 2, dtype=torch.bool)
    frame_mask = torch.tensor([[True, True, True, False, False, False]])
    with pytest.raises(ValueError, match="frame_mask: a pair exists in a frame slot"):
        blk(x, m, frame_mask)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda f: f(-3, 4), ValueError, "positions: expected a value >= 0"),
        (lambda f: f(3.0, 4), TypeError, "positions: expected an int n or a tensor"),
        (lambda f: f(3, 4, base=NAN), ValueError, "base: expected a finite number"),
        (lambda f: f(3, 4, base=0.0), ValueError, "base: expected a value > 0"),
        (lambda f: f(3, 4, dtype=torch.long), TypeError, "dtype: expected a floating point"),
    ],
)
def test_sinusoidal_positions_arguments_are_named(call, error, message):
    from dsgg_layers import sinusoidal_positions

    with pytest.raises(error, match=message):
        call(sinusoidal_positions)


@pytest.mark.parametrize("std", [-1.0, 0.0, NAN])
def test_initialisation_std_is_checked(std):
    from dsgg_layers import LearnableTokens, LearnedPositions

    for cls in (LearnedPositions, LearnableTokens):
        with pytest.raises(ValueError, match="std: expected"):
            cls(2, 8, std=std)


def test_learned_positions_refuse_uint8_indices():
    from dsgg_layers import LearnedPositions

    with pytest.raises(TypeError, match="index: expected torch.int64 or torch.int32"):
        LearnedPositions(4, 8)(torch.tensor([1], dtype=torch.uint8))


@pytest.mark.parametrize("batches", [[[0, -1]], [[1, 1]], [[0, 5]], [[0.0, 1.0]]])
def test_padding_fraction_checks_its_batches(batches):
    from dsgg_layers import padding_fraction

    with pytest.raises(ValueError, match="batches: expected int indices in"):
        padding_fraction([(2, 1), (4, 1)], batches)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"max_cells": 0}, ValueError, "max_cells: expected a value > 0"),
        ({"num_replicas": 2, "rank": 0.5}, TypeError, "rank: expected an int"),
        ({"seed": 1.5}, TypeError, "seed: expected an int"),
        ({"seed": None}, TypeError, "seed: expected an int"),
    ],
)
def test_bucket_sampler_arguments_are_checked_at_construction(kwargs, error, message):
    from dsgg_layers import BucketBatchSampler

    with pytest.raises(error, match=message):
        BucketBatchSampler([(5, 1), (20, 3)], **kwargs)


def test_encoder_and_decoder_errors_name_the_callers_arguments():
    from dsgg_layers import TransformerDecoderLayer, TransformerEncoder, TransformerEncoderLayer

    layer = TransformerEncoderLayer(16, 4, 32)
    x = torch.randn(2, 3, 5, 16)
    with pytest.raises(ValueError, match=r"mask: expected shape \(2, 3, 5\)"):
        layer(x, torch.ones(2, 3, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"mask: expected shape \(2, 3, 5\)"):
        TransformerEncoder(layer, 2)(x, torch.ones(2, 3, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"x: expected shape \(\.\.\., N, 16\)"):
        layer(x[..., :8])
    dec = TransformerDecoderLayer(16, 4, 32)
    q, mem = torch.randn(2, 5, 16), torch.randn(2, 7, 16)
    m, mm = torch.ones(2, 5, dtype=torch.bool), torch.ones(2, 7, dtype=torch.bool)
    with pytest.raises(ValueError, match="query_pos: expected a shape that broadcasts"):
        dec(q, mem, m, mm, query_pos=torch.zeros(4, 16))
    with pytest.raises(ValueError, match="memory_pos: expected a shape that broadcasts"):
        dec(q, mem, m, mm, memory_pos=torch.zeros(4, 16))
    with pytest.raises(ValueError, match=r"memory_mask: expected shape \(2, 7\)"):
        dec(q, mem, m, torch.ones(2, 6, dtype=torch.bool))


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda a: a.MaskedMultiheadAttention(16, 4, kdim=0), ValueError, "kdim: expected a value"),
        (lambda a: a.MaskedMultiheadAttention(16, 4, vdim=2.5), TypeError, "vdim: expected an int"),
        (lambda a: a.TransformerDecoderLayer(16, 4, 32, memory_dim=0), ValueError, "memory_dim:"),
        (
            lambda a: a.TransformerEncoder(a.TransformerEncoderLayer(16, 4), 1, norm=5),
            TypeError,
            "norm: expected an nn.Module or None",
        ),
    ],
)
def test_attention_constructor_arguments_are_named(call, error, message):
    from dsgg_layers import attention

    with pytest.raises(error, match=message):
        call(attention)


def test_inputs_of_another_dtype_than_the_parameters_are_named_outside_autocast():
    from dsgg_layers import ActionSemanticMatcher, MotionInteraction, TransformerEncoderLayer

    x, m = torch.randn(2, 3, 16).half(), torch.ones(2, 3, dtype=torch.bool)
    with pytest.raises(TypeError, match="x: expected dtype torch.float32 .the module's param"):
        TransformerEncoderLayer(16, 4)(x, m)
    with pytest.raises(TypeError, match="spatial: expected dtype torch.float32"):
        MotionInteraction(16, 4)(x, x, m)
    with pytest.raises(TypeError, match="input: expected dtype torch.float32"):
        ActionSemanticMatcher(16, torch.randn(5, 8))(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # under autocast, mixed dtypes are fine
        assert torch.isfinite(TransformerEncoderLayer(16, 4)(x.bfloat16(), m).float()).all()


def test_half_precision_boxes_meet_a_float32_motion_extractor():
    s, o, m = _track()
    out = MotionFeatureExtractor(8).eval()(s.half(), o.half(), m)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (
            lambda: from_sttran_(frame_times=torch.tensor([20, 10])),
            ValueError,
            "frame_times: expected increasing frame numbers",
        ),
        (
            lambda: from_sttran_().rows_to_padded(torch.ones(3, 4), 1),
            ValueError,
            r"rows: expected shape \(2, D\)",
        ),
        (
            lambda: from_sttran_().rows_to_padded(torch.ones(2, 4), 0),
            ValueError,
            "length: expected an int >= the largest frame's pair count 1",
        ),
        (
            lambda: from_sttran_().rows_to_padded(torch.ones(2), 1),
            ValueError,
            r"rows: expected shape \(2, D\)",
        ),
    ],
)
def test_sttran_pairs_arguments_are_checked(call, error, message):
    with pytest.raises(error, match=message):
        call()


def from_sttran_(**kwargs):
    from dsgg_layers import from_sttran

    return from_sttran(_entry(), **kwargs)


@pytest.mark.parametrize(
    ("gt", "message"),
    [
        (
            [[{"person_bbox": [[0.0, 0, 10, 10]]}, {"bbox": [5.0, 5, 20, 20]}]],
            r"gt_annotation\[0\]\[1\]: expected a dict with 'class'",
        ),
        (
            [[{"person_bbox": [[0.0, 0, 10, 10]]}, {"class": 7, "bbox": [5.0, 5, 20]}]],
            r"gt_annotation\[0\]\[1\]\['bbox'\]: expected one xyxy box",
        ),
        (
            [[{"person_bbox": []}, {"class": 7, "bbox": [5.0, 5, 20, 20]}]],
            r"gt_annotation\[0\]\[0\]\['person_bbox'\]: expected one xyxy box",
        ),
    ],
)
def test_malformed_sttran_ground_truth_is_named(gt, message):
    entry = {"boxes": torch.tensor([[0, 0.0, 0, 10, 10], [0, 5, 5, 20, 20]]),
             "labels": torch.tensor([1, 7]), "scores": torch.ones(2),
             "pair_idx": torch.tensor([[0, 1]]), "im_idx": torch.tensor([0]),
             "attention_distribution": torch.zeros(1, 3), "spatial_distribution": torch.rand(1, 6),
             "contacting_distribution": torch.rand(1, 17)}  # fmt: skip
    with pytest.raises(ValueError, match=message):
        sttran_to_tracks(entry, gt)


def test_sttran_boxes_without_the_frame_column_are_named():
    """STTran's ``entry['boxes']`` rows are ``[frame, x1, y1, x2, y2]``; ``(N, 4)`` boxes were
    read as a frame and three coordinates."""
    entry = {"boxes": torch.tensor([[0.0, 0, 10, 10], [5, 5, 20, 20]]),
             "labels": torch.tensor([1, 7]), "scores": torch.ones(2),
             "pair_idx": torch.tensor([[0, 1]]), "im_idx": torch.tensor([0]),
             "attention_distribution": torch.zeros(1, 3), "spatial_distribution": torch.rand(1, 6),
             "contacting_distribution": torch.rand(1, 17)}  # fmt: skip
    gt = [[{"person_bbox": [[0.0, 0, 10, 10]]}, {"class": 7, "bbox": [5.0, 5, 20, 20]}]]
    with pytest.raises(ValueError, match=r"entry\['boxes'\]: expected shape \(N, 5\)"):
        sttran_to_tracks(entry, gt)


def test_valid_rows_name_wrong_shapes_and_devices():
    from dsgg_layers import ValidRows

    rows = ValidRows(torch.tensor([[True, False, True], [False, False, True]]))
    with pytest.raises(ValueError, match="x: expected a shape that broadcasts to"):
        rows.gather(torch.zeros(2, 4, 2))
    with pytest.raises(ValueError, match=r"rows: expected shape \(3, C\), got \(5, 2\)"):
        rows.scatter(torch.zeros(5, 2))
    with pytest.raises(ValueError, match="rows: expected device cpu"):
        rows.scatter(torch.zeros(3, 2, device="meta"))


def test_a_frame_level_token_mask_broadcasts_over_videos():
    from dsgg_layers import prepend_tokens

    x, mask = torch.randn(2, 3, 4, 8), torch.ones(2, 3, 4, dtype=torch.bool)
    _, m = prepend_tokens(x, mask, torch.randn(1, 8), token_mask=torch.tensor([True, False, True]))
    assert m[..., 0].tolist() == [[True, False, True]] * 2


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda d: d.motion_attributes(*_track(), eps=-1.0), ValueError, "eps: expected a value"),
        (
            lambda d: d.box_union(torch.zeros(1, 4), torch.zeros(1, 4, device="meta")),
            ValueError,
            "boxes2: expected device cpu .of boxes1.",
        ),
        (
            lambda d: d.normalize_boxes(torch.zeros(1, 4), torch.ones(2, device="meta")),
            ValueError,
            "image_size: expected device cpu",
        ),
        (
            lambda d: d.image_size_like((True, 10), torch.zeros(1, 4)),
            ValueError,
            "image_size: expected positive finite sizes",
        ),
        (
            lambda d: d.category_weighted_bce(
                torch.zeros(2, 3),
                torch.zeros(2, 3),
                torch.ones(3),
                mask=torch.ones(2, dtype=torch.bool, device="meta"),
            ),
            ValueError,
            "mask: expected device cpu .of logits.",
        ),
        (
            lambda d: d.link_tracks(
                torch.zeros(0, 4),
                torch.zeros(0, dtype=torch.long),
                torch.zeros(0, dtype=torch.long),
                max_gap=1.0,
            ),
            TypeError,
            "max_gap: expected an int",
        ),
        (
            lambda d: d.collate_tracks(
                torch.ones(2, 3, 1, 3), torch.ones(2, 3, 1, dtype=torch.bool)
            ),
            TypeError,
            "tensors: expected a sequence",
        ),
    ],
)
def test_more_arguments_are_named(call, error, message):
    import dsgg_layers

    with pytest.raises(error, match=message):
        call(dsgg_layers)


@pytest.mark.parametrize("eps", [-1.0, NAN, 0.0])
def test_layer_norm_eps_is_checked(eps):
    from dsgg_layers import TransformerDecoderLayer, TransformerEncoderLayer

    for cls in (TransformerEncoderLayer, TransformerDecoderLayer):
        with pytest.raises(ValueError, match="layer_norm_eps: expected"):
            cls(16, 4, 32, layer_norm_eps=eps)


def test_masked_attention_names_a_key_of_another_dtype():
    from dsgg_layers import masked_attention

    q, k = torch.randn(2, 4, 3, 8), torch.randn(2, 4, 5, 8)
    with pytest.raises(TypeError, match=r"key: expected the dtype of query \(torch.float32\)"):
        masked_attention(q, k.double(), k)


def test_a_hand_built_track_index_outside_its_grid_is_named():
    from dsgg_layers import TrackIndex, flat_to_tracks

    L = torch.tensor
    index = TrackIndex(batch=L([0]), time=L([5]), track=L([0]), video_ids=L([0]),
                       frame_ids=L([[0]]), frame_mask=L([[True]]), track_ids=L([[0]]),
                       track_mask=L([[True]]))  # fmt: skip
    with pytest.raises(ValueError, match=r"index: time coordinates outside the grid \(1, 1, 1\)"):
        flat_to_tracks(L([1.0]), index)


def test_loaders_name_the_file_of_junk_content(tmp_path):
    """A binary JSON, a garbage pickle and junk checkpoints name the file (formerly
    UnicodeDecodeError, UnpicklingError, raw torch.load errors without the path)."""
    from dsgg_layers.data import (
        ActionGenome,
        SyntheticActionGenome,
        SyntheticConfig,
        load_vidvrd,
        with_union_features,
    )

    (tmp_path / "video.json").write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(ValueError, match=r"video\.json: not valid JSON"):
        load_vidvrd(tmp_path / "video.json")
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "person_bbox.pkl").write_bytes(b"garbage, not a pickle")
    with pytest.raises(ValueError, match=r"person_bbox\.pkl: not a readable pickle"):
        ActionGenome(tmp_path)
    (tmp_path / "junk.pt").write_bytes(b"junk checkpoint")
    with pytest.raises(ValueError, match=r"junk\.pt: not a saved dataset"):
        SyntheticActionGenome.load(tmp_path / "junk.pt")
    torch.save({"some": "dict"}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match=r"other\.pt: not a saved dataset"):
        SyntheticActionGenome.load(tmp_path / "other.pt")
    video = SyntheticActionGenome(SyntheticConfig(num_videos=1, num_test_videos=1))[0]
    (tmp_path / "union").mkdir()
    (tmp_path / "union" / f"{video.video_ids[0]}.pt").write_bytes(b"junk")
    with pytest.raises(ValueError, match=r"\.pt: not a readable tensor file"):
        with_union_features([video], tmp_path / "union")


def test_video_graph_frame_mask_gaps_and_orphan_pairs_are_named():
    """A frame_mask with a gap, or pairs on frames it says do not exist, were accepted and
    their pairs silently dropped by frame-level blocks."""
    from dsgg_layers.data import SyntheticActionGenome, SyntheticConfig

    g = SyntheticActionGenome(SyntheticConfig(num_videos=1, num_test_videos=1))[0]
    gap = g.frame_mask.clone()
    gap[0, 1] = False
    with pytest.raises(ValueError, match="frame_mask: expected a prefix of each row"):
        g.replace(frame_mask=gap)
    tail = g.frame_mask.clone()
    tail[0, -1] = False  # a prefix, but the last frame still holds pairs
    assert g.mask[0, -1].any()
    with pytest.raises(ValueError, match="mask: a pair on a frame that frame_mask says"):
        g.replace(frame_mask=tail)
    ok = g.replace(frame_mask=tail, mask=g.mask & tail[..., None])
    assert int(ok.frame_mask.sum()) == int(g.frame_mask.sum()) - 1
