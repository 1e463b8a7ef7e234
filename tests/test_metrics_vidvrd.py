"""VidVRD relation detection / tagging metrics: vIoU, greedy matching, AP, R@K, P@K."""

from __future__ import annotations

import math
import random
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dsgg_layers.metrics import VidVRDEvaluator, vidvrd_metrics, volume_iou

# The loop reference written VidVRD-helper's way (per video: sort, scan every ground truth, vIoU
# frame by frame) is the one the benchmark times against: benchmarks/vidvrd_eval.py.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from vidvrd_eval import loop_reference, viou_loop

# ------------------------------------------------------------------------------ fixtures


def _traj(box, n, shift=(0.0, 0.0)):
    return [[box[0] + shift[0] * i, box[1] + shift[1] * i, box[2] + shift[0] * i,
             box[3] + shift[1] * i] for i in range(n)]  # fmt: skip


def _rel(triplet, begin, end, sub, obj, score=None):
    r = {"triplet": list(triplet), "duration": [begin, end],
         "sub_traj": _traj(sub, end - begin), "obj_traj": _traj(obj, end - begin)}  # fmt: skip
    if score is not None:
        r["score"] = score
    return r


SUB, OBJ = (0.0, 0.0, 9.0, 9.0), (20.0, 20.0, 29.0, 29.0)  # 100 "+1" pixels each


def _random_dataset(rng: random.Random, videos=6, names=("a", "b"), preds=("p", "q", "r")):
    gt, pr = {}, {}
    for v in range(videos):
        frames = rng.randint(2, 20)

        def inst(score=None, frames=frames):
            b = rng.randrange(frames - 1)
            e = rng.randint(b + 1, frames)
            n = e - b
            trip = (rng.choice(names), rng.choice(preds), rng.choice(names))
            sub = [[x := rng.uniform(0, 20), y := rng.uniform(0, 20), x + rng.uniform(0, 15),
                    y + rng.uniform(0, 15)] for _ in range(n)]  # fmt: skip
            obj = [[x := rng.uniform(0, 20), y := rng.uniform(0, 20), x + rng.uniform(0, 15),
                    y + rng.uniform(0, 15)] for _ in range(n)]  # fmt: skip
            r = {"triplet": list(trip), "duration": [b, e], "sub_traj": sub, "obj_traj": obj}
            if score is not None:
                r["score"] = score
            return r

        gt[f"v{v}"] = [inst() for _ in range(rng.randint(0, 4))]
        p = [inst(rng.choice([0.1, 0.5, 0.9, rng.random()])) for _ in range(rng.randint(0, 8))]
        # near-copies of ground truth, so that matches happen
        for g in gt[f"v{v}"]:
            if rng.random() < 0.7:
                c = dict(g, score=rng.random())
                c["sub_traj"] = [[x + rng.uniform(-2, 2) for x in b] for b in g["sub_traj"]]
                p.append(c)
                if rng.random() < 0.3:
                    p.append(dict(c, score=rng.random()))  # a duplicate
        rng.shuffle(p)
        pr[f"v{v}"] = p
    return gt, pr


def _close(a, b):
    assert set(a) == set(b)
    for k in a:
        assert float(a[k]) == pytest.approx(b[k], abs=1e-9), k


# ------------------------------------------------------------------------------------ vIoU


def test_volume_iou_hand_computed_partial_overlap():
    # durations [0, 4) and [2, 6), identical 10 x 10 boxes: overlap 2 frames of 100 pixels,
    # volumes 400 + 400: 200 / 600
    a = torch.tensor([[0.0, 0, 9, 9]] * 6)
    m1 = torch.tensor([1, 1, 1, 1, 0, 0], dtype=torch.bool)
    m2 = torch.tensor([0, 0, 1, 1, 1, 1], dtype=torch.bool)
    assert float(volume_iou(a, m1, a, m2)) == pytest.approx(1 / 3)
    # no temporal overlap
    assert float(volume_iou(a, m1, a, ~m1)) == 0.0
    # plain areas: 81 a frame
    assert float(volume_iou(a, m1, a, m2, legacy=False)) == pytest.approx(1 / 3)
    # half-overlapping boxes in the same frames: "+1" areas, 5 x 10 overlap -> 50 / 150
    b = a + torch.tensor([5.0, 0, 5, 0])
    assert float(volume_iou(a, m1, b, m1)) == pytest.approx(50 / 150)


def test_volume_iou_ignores_padding_and_degenerate_boxes_are_finite():
    a = torch.tensor([[0.0, 0, 9, 9], [0, 0, 9, 9], [math.nan, math.inf, -math.inf, 3e38]])
    m = torch.tensor([True, True, False])
    out = volume_iou(a, m, a.clone(), m)
    assert float(out) == pytest.approx(1.0)
    zero = torch.zeros(2, 4)
    none = torch.zeros(2, dtype=torch.bool)
    assert float(volume_iou(zero, none, zero, none)) == 0.0  # both empty
    assert float(volume_iou(zero, m[:2], zero, m[:2], legacy=False)) == 0.0  # zero-area, plain
    assert float(volume_iou(zero, m[:2], zero, m[:2])) == 1.0  # "+1": one pixel each
    # an inverted box is empty (area 0), never a negative area that lifts the vIoU above 1
    inverted = torch.tensor([[0.0, 9, 9, 0]])  # y2 < y1
    square, one = torch.tensor([[0.0, 0, 9, 9]]), torch.tensor([True])
    for legacy in (True, False):
        assert float(volume_iou(inverted, one, square, one, legacy=legacy)) == 0.0
    both = torch.tensor([[0.0, 0, 9, 9], [0, 9, 9, 0]])  # a good frame, then an inverted one
    v = volume_iou(
        both, torch.tensor([True, True]), square.expand(2, 4), torch.tensor([True, True])
    )
    assert float(v) == pytest.approx(0.5)  # overlap 100 over 100 + 200 - 100


def test_volume_iou_errors():
    with pytest.raises(TypeError, match="boxes1"):
        volume_iou(torch.zeros(3, 4, dtype=torch.long), torch.ones(3, dtype=torch.bool),
                   torch.zeros(3, 4), torch.ones(3, dtype=torch.bool))  # fmt: skip
    with pytest.raises(TypeError, match="mask2"):
        volume_iou(torch.zeros(3, 4), torch.ones(3, dtype=torch.bool), torch.zeros(3, 4),
                   torch.ones(3))  # fmt: skip
    with pytest.raises(ValueError, match=r"mask1.*\(3,\).*\(2,\)"):
        volume_iou(torch.zeros(3, 4), torch.ones(2, dtype=torch.bool), torch.zeros(3, 4),
                   torch.ones(3, dtype=torch.bool))  # fmt: skip


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000))
def test_volume_iou_equals_the_frame_loop(seed):
    rng = random.Random(seed)
    frames = rng.randint(1, 12)
    b1, e1 = sorted(rng.sample(range(frames + 1), 2))
    b2, e2 = sorted(rng.sample(range(frames + 1), 2))
    t1 = [[x := rng.uniform(0, 9), y := rng.uniform(0, 9), x + rng.uniform(0, 9),
           y + rng.uniform(0, 9)] for _ in range(e1 - b1)]  # fmt: skip
    t2 = [[x := rng.uniform(0, 9), y := rng.uniform(0, 9), x + rng.uniform(0, 9),
           y + rng.uniform(0, 9)] for _ in range(e2 - b2)]  # fmt: skip
    boxes = torch.zeros(2, frames, 4, dtype=torch.float64)
    mask = torch.zeros(2, frames, dtype=torch.bool)
    boxes[0, b1:e1], mask[0, b1:e1] = torch.tensor(t1, dtype=torch.float64).view(-1, 4), True
    boxes[1, b2:e2], mask[1, b2:e2] = torch.tensor(t2, dtype=torch.float64).view(-1, 4), True
    got = float(volume_iou(boxes[0], mask[0], boxes[1], mask[1]))
    assert got == pytest.approx(viou_loop(t1, (b1, e1), t2, (b2, e2)), abs=1e-12)
    assert got == pytest.approx(float(volume_iou(boxes[1], mask[1], boxes[0], mask[0])))


# ------------------------------------------------------------------------------ evaluator


def test_hand_computed_detection_and_tagging():
    gt = {
        "v": [_rel("apb", 0, 4, SUB, OBJ), _rel("apb", 0, 4, OBJ, SUB), _rel("aqb", 0, 4, SUB, OBJ)]
    }
    pred = {"v": [
        _rel("apb", 0, 4, SUB, OBJ, score=0.9),   # rank 1: hits gt 0
        _rel("apb", 0, 4, SUB, OBJ, score=0.8),   # rank 2: a duplicate, gt 0 taken -> miss
        _rel("arb", 0, 4, SUB, OBJ, score=0.7),   # rank 3: a triplet not in the ground truth
        _rel("aqb", 2, 6, SUB, OBJ, score=0.6),   # rank 4: vIoU 1/3 (two frames late) -> miss
        _rel("apb", 0, 4, OBJ, SUB, score=0.5),   # rank 5: hits gt 1
    ]}  # fmt: skip
    r = vidvrd_metrics(pred, gt, det_ks=(1, 5), tag_ks=(1, 2, 5))
    # hits [1, 0, 0, 0, 1]: precision [1, .5, 1/3, .25, .4], recall [1/3, 1/3, 1/3, 1/3, 2/3]
    # envelope at the recall steps: 1 (rank 1), .4 (rank 5): AP = 1/3 * 1 + 1/3 * .4
    assert float(r["mAP"]) == pytest.approx(1 / 3 + 0.4 / 3)
    assert float(r["R@1"]) == pytest.approx(1 / 3) and float(r["R@5"]) == pytest.approx(2 / 3)
    # unique triplets by score: apb (in gt), arb (not), aqb (in gt)
    assert float(r["P@1"]) == 1.0 and float(r["P@2"]) == 0.5
    assert float(r["P@5"]) == pytest.approx(2 / 3)  # divided by min(5, 3 unique)
    _close(r, loop_reference(gt, pred, det_ks=(1, 5), tag_ks=(1, 2, 5)))


def test_ties_keep_the_given_order_and_the_first_ground_truth():
    gt = {
        "v": [_rel("apb", 0, 2, SUB, OBJ), _rel("apb", 0, 2, SUB, OBJ)]
    }  # two identical instances
    pred = {"v": [_rel("aqb", 0, 2, SUB, OBJ, score=0.5), _rel("apb", 0, 2, SUB, OBJ, score=0.5)]}
    r = vidvrd_metrics(pred, gt, tag_ks=(1,))
    # equal scores: the miss stays first; one hit of two ground truths
    assert float(r["mAP"]) == pytest.approx(0.5 * 0.5)
    assert float(r["P@1"]) == 0.0
    assert float(r["R@50"]) == 0.5


def test_a_video_without_prediction_counts_zero_and_one_without_ground_truth_is_skipped():
    gt = {"v1": [_rel("apb", 0, 2, SUB, OBJ)], "v2": [_rel("apb", 0, 2, SUB, OBJ)], "v3": []}
    hit = [_rel("apb", 0, 2, SUB, OBJ, score=1.0)]
    pred = {"v1": hit, "v3": hit, "only-in-predictions": hit}
    r = vidvrd_metrics(pred, gt)
    assert float(r["mAP"]) == 0.5 and float(r["R@50"]) == 0.5 and float(r["P@1"]) == 0.5


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000))
def test_evaluator_equals_the_loop_reference(seed):
    gt, pred = _random_dataset(random.Random(seed))
    if not any(gt.values()):
        assert float(vidvrd_metrics(pred, gt)["mAP"]) == 0.0
        return
    _close(vidvrd_metrics(pred, gt), loop_reference(gt, pred))


def test_state_is_summable_video_by_video_and_by_merge():
    gt, pred = _random_dataset(random.Random(3), videos=10)
    whole = vidvrd_metrics(pred, gt)
    one = VidVRDEvaluator()
    a, b = VidVRDEvaluator(), VidVRDEvaluator()
    for i, vid in enumerate(gt):
        one.update(pred, {vid: gt[vid]})
        (a if i % 2 else b).update(pred, {vid: gt[vid]})
    a.merge(b)
    for ev in (one, a):
        _close(ev.compute(), {k: float(v) for k, v in whole.items()})
    one.reset()
    assert float(one.compute()["mAP"]) == 0.0
    with pytest.raises(ValueError, match="viou_threshold"):
        a.merge(VidVRDEvaluator(viou_threshold=0.3))


def test_novel_protocol_keeps_only_those_predicates():
    gt = {
        "v": [_rel("apb", 0, 2, SUB, OBJ), _rel("aqb", 0, 2, SUB, OBJ)],
        "w": [_rel("apb", 0, 2, SUB, OBJ)],
    }
    pred = {"v": [_rel("apb", 0, 2, SUB, OBJ, score=0.9), _rel("aqb", 0, 2, OBJ, SUB, score=0.95)]}
    novel = vidvrd_metrics(pred, gt, predicates={"q"})
    # only v has a q instance; its one prediction misses (swapped boxes)
    assert float(novel["mAP"]) == 0.0 and float(novel["P@1"]) == 1.0
    every = vidvrd_metrics(pred, gt)
    assert float(every["R@50"]) == pytest.approx(1 / 3)


def test_malformed_input_errors():
    good = _rel("apb", 0, 2, SUB, OBJ)
    with pytest.raises(TypeError, match="target"):
        vidvrd_metrics({}, [good])
    with pytest.raises(ValueError, match=r"preds\['v'\]\[0\].*score"):
        vidvrd_metrics({"v": [good]}, {"v": [good]})
    with pytest.raises(ValueError, match=r"target\['v'\]\[0\]\['duration'\]"):
        vidvrd_metrics({}, {"v": [dict(good, duration=[2, 2])]})
    with pytest.raises(ValueError, match=r"sub_traj.*\(2\), got 1"):
        vidvrd_metrics({}, {"v": [dict(good, sub_traj=good["sub_traj"][:1])]})
    with pytest.raises(ValueError, match="triplet"):
        vidvrd_metrics({}, {"v": [dict(good, triplet=["a", "b"])]})
    with pytest.raises(ValueError, match=r"target\['v'\].*4 numbers"):
        vidvrd_metrics({}, {"v": [dict(good, obj_traj=[[0, 0, 1], [0, 0, 1]])]})
    with pytest.raises(ValueError, match="score"):
        vidvrd_metrics({"v": [dict(good, score=math.nan)]}, {"v": [good]})
    with pytest.raises(ValueError, match="viou_threshold"):
        VidVRDEvaluator(viou_threshold=0.0)
    with pytest.raises(ValueError, match="det_ks"):
        VidVRDEvaluator(det_ks=(50, 50))
    with pytest.raises(TypeError, match="predicates"):
        VidVRDEvaluator(predicates="chase")
    assert "viou_threshold=0.5" in repr(VidVRDEvaluator())


def test_numpy_numbers_chunks_fp16_and_more_input_errors():
    import numpy as np

    gt, pred = _random_dataset(random.Random(5), videos=7)
    whole = vidvrd_metrics(pred, gt)
    chunked = VidVRDEvaluator()
    chunked.chunk = 2  # videos scored a few at a time: the same sums
    chunked.update(pred, gt)
    _close(chunked.compute(), {k: float(v) for k, v in whole.items()})
    as_numpy = {v: [dict(r, score=np.float32(r["score"]),
                         duration=[np.int64(r["duration"][0]), np.int64(r["duration"][1])])
                    for r in rs] for v, rs in pred.items()}  # fmt: skip
    _close(vidvrd_metrics(as_numpy, gt), {k: float(v) for k, v in whole.items()})
    big = torch.tensor([[0.0, 0, 999, 999]], dtype=torch.float16)
    one = torch.ones(1, dtype=torch.bool)
    assert float(volume_iou(big, one, big, one)) == 1.0  # areas computed in float32
    good = _rel("apb", 0, 2, SUB, OBJ)
    with pytest.raises(ValueError, match=r"\['triplet'\]"):
        vidvrd_metrics({}, {"v": [dict(good, triplet="apb")]})
    with pytest.raises(ValueError, match=r"target\['v'\]\[0\]\['duration'\]"):
        vidvrd_metrics({}, {"v": [dict(good, duration=[0, 2, 4])]})
    with pytest.raises(TypeError, match="det_ks"):
        VidVRDEvaluator(det_ks=50)


def test_the_ground_truth_first_order_still_works_with_a_deprecation_warning():
    gt = {"v": [_rel("apb", 0, 4, SUB, OBJ)], "w": [_rel("aqb", 0, 4, SUB, OBJ)]}
    pred = {"v": [{**_rel("apb", 0, 4, SUB, OBJ), "score": 0.9}], "w": []}
    new = vidvrd_metrics(pred, gt)
    with pytest.warns(DeprecationWarning, match=r"\(preds, target\)") as caught:
        old = vidvrd_metrics(gt, pred)
    assert caught[0].filename == __file__  # the warning points at the caller's line
    assert {k: float(v) for k, v in old.items()} == {k: float(v) for k, v in new.items()}
    ev = VidVRDEvaluator()
    with pytest.warns(DeprecationWarning) as caught:
        ev.update(gt, pred)
    assert caught[0].filename == __file__
    assert float(ev.compute()["mAP"]) == float(new["mAP"]) == 0.5
    # no predictions at all: the new order is valid as it stands, nothing is swapped
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert float(vidvrd_metrics({"v": [], "w": []}, gt)["R@50"]) == 0.0


def test_open_vocabulary_evaluator_scores_novel_and_all_and_merges():
    from dsgg_layers.metrics import OpenVocabularyEvaluator, VidVRDEvaluator

    box = [[0.0, 0.0, 9.0, 9.0]] * 3
    gt = {f"v{i}": [dict(triplet=["dog", p, "cat"], duration=[0, 3], sub_traj=box, obj_traj=box)
                    for p in ("chase", "bite")] for i in range(3)}  # fmt: skip
    hit = {v: [dict(r, score=0.9) for r in rel] for v, rel in gt.items()}
    novel_only = {v: [r for r in rel if r["triplet"][1] == "chase"] for v, rel in hit.items()}
    ev = OpenVocabularyEvaluator(novel={"chase"})
    ev.update({"novel": novel_only, "all": hit}, gt)
    got = ev.compute()
    want_novel = VidVRDEvaluator(predicates={"chase"})
    want_novel.update(novel_only, gt)
    want_all = VidVRDEvaluator()
    want_all.update(hit, gt)
    for k, v in want_novel.compute().items():
        assert torch.equal(got[f"novel/{k}"], v)
    for k, v in want_all.compute().items():
        assert torch.equal(got[f"all/{k}"], v)
    parts = [OpenVocabularyEvaluator(novel={"chase"}) for _ in range(3)]
    for p, v in zip(parts, gt, strict=True):
        p.update({"novel": {v: novel_only[v]}, "all": {v: hit[v]}}, {v: gt[v]})
    parts[0].merge(parts[1])
    parts[0].merge(parts[2])
    parts[0].sync()  # one process: a no-op
    for k, v in parts[0].compute().items():
        torch.testing.assert_close(v, got[k])
    assert set(parts[0].state) == {f"{s}/{k}" for s in ("novel", "all")
                                   for k in ev.novel_evaluator.state}  # fmt: skip
    with pytest.raises(ValueError, match="preds: expected the keys 'novel' and 'all'"):
        ev.update({"all": hit}, gt)
    with pytest.raises(ValueError, match="other: expected the same novel predicates"):
        ev.merge(OpenVocabularyEvaluator(novel={"bite"}))
    with pytest.raises(TypeError, match="other: expected a OpenVocabularyEvaluator"):
        ev.merge(VidVRDEvaluator())
    with pytest.raises(TypeError, match="novel: expected a collection of predicate names"):
        OpenVocabularyEvaluator(novel="chase")


def test_non_finite_boxes_are_named():
    box = [[0.0, 0.0, 9.0, 9.0]] * 2
    rel = dict(triplet=["a", "b", "c"], duration=[0, 2], sub_traj=box, obj_traj=box)
    gt = {"v": [rel]}
    ok = dict(rel, score=0.5)
    nan = dict(rel, score=0.4, sub_traj=[[0.0, 0.0, 9.0, 9.0], [math.nan, 0.0, 9.0, 9.0]])
    # formerly scored silently (a NaN box matches nothing); now named, which relation and key
    with pytest.raises(ValueError, match=r"preds\['v'\]\[1\]: expected finite sub_traj boxes"):
        vidvrd_metrics({"v": [ok, nan]}, gt)
    inf = dict(rel, obj_traj=[[math.inf, 0.0, 9.0, 9.0], [0.0, 0.0, 9.0, 9.0]])
    with pytest.raises(ValueError, match=r"target\['v'\]\[0\]: expected finite obj_traj boxes"):
        vidvrd_metrics({"v": [ok]}, {"v": [inf]})
