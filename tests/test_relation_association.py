"""Greedy relational association (VidVRD baseline, RePro / UASAN's VidVRD-II presets)."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from dsgg_layers.metrics import (
    ASSOCIATION_PRESETS,
    associate_relations,
    segment_triplet_score,
    vidvrd_metrics,
)

# ------------------------------------------------------------ a list-based loop reference


def _area(b):
    return (b[2] - b[0] + 1) * (b[3] - b[1] + 1)


def _inter(a, b):
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]) + 1)
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]) + 1)
    return w * h


def _cubic(r1, r2):
    i = sum(_inter(a, b) for a, b in zip(r1, r2, strict=True))
    return i / max(sum(map(_area, r1)) + sum(map(_area, r2)) - i, 1e-8)


def _ref_link(t1, t2, tol):
    (s1, r1), (s2, r2) = t1, t2
    e1, e2 = s1 + len(r1), s2 + len(r2)
    a, b = max(s1, s2), min(e1, e2)
    if a < b:
        return _cubic(r1[a - s1 : b - s1], r2[a - s2 : b - s2])
    if a - b < tol:
        return _cubic([r1[-1]], [r2[0]]) if e1 <= s2 else _cubic([r1[0]], [r2[-1]])
    return None


def _ref_join(t1, t2):
    (s1, r1), (s2, r2) = t1, t2
    e1, e2 = s1 + len(r1), s2 + len(r2)
    rois = []
    for p in range(min(s1, s2), max(e1, e2)):
        in1, in2 = s1 <= p < e1, s2 <= p < e2
        if in1 and in2:
            rois.append([(x + y) / 2 for x, y in zip(r1[p - s1], r2[p - s2], strict=True)])
        elif in1:
            rois.append(list(r1[p - s1]))
        elif in2:
            rois.append(list(r2[p - s2]))
        else:
            (fs, fr), (ss, sr) = ((s1, r1), (s2, r2)) if e1 < s2 else ((s2, r2), (s1, r1))
            p0, p1 = fs + len(fr) - 1, ss  # VidVRD-II's Trajectory.join: np.interp per coordinate
            rois.append([float(np.interp(p, [p0, p1], [x, y]))
                         for x, y in zip(fr[-1], sr[0], strict=True)])  # fmt: skip
    return (min(s1, s2), rois)


def _ref_associate(segments, preset):
    cfg = ASSOCIATION_PRESETS[preset]
    thr, tol, mode = cfg["linkage_threshold"], cfg["gap_tolerance"], cfg["score"]

    def score(r):
        return sum(r["confs"]) / (len(r["confs"]) if mode == "mean" else 1)

    def ok(x):
        return x is not None and (x > thr if cfg["strict"] else x >= thr)

    video, last = [], []
    for key in sorted(segments):
        last.sort(key=score, reverse=True)
        rels = sorted(segments[key], key=lambda r: r["score"], reverse=True)[: cfg["segment_topk"]]
        cur = []
        for j in rels:
            r = {
                "triplet": tuple(j["triplet"]),
                "confs": [j["score"]],
                "s": (j["duration"][0], j["sub_traj"]),
                "o": (j["duration"][0], j["obj_traj"]),
            }
            for a in last:
                if a["triplet"] == r["triplet"] and ok(_ref_link(a["s"], r["s"], tol)) \
                        and ok(_ref_link(a["o"], r["o"], tol)):  # fmt: skip
                    a["s"], a["o"] = _ref_join(a["s"], r["s"]), _ref_join(a["o"], r["o"])
                    a["confs"].append(j["score"])
                    cur.append(a)
                    last.remove(a)
                    break
            else:
                video.append(r)
                cur.append(r)
        last = cur
    out = []
    for r in video:
        (ss, sr), (os_, orr) = r["s"], r["o"]
        a, b = max(ss, os_), min(ss + len(sr), os_ + len(orr))
        if b - a >= cfg["min_frames"]:
            out.append({"triplet": list(r["triplet"]), "score": score(r), "duration": [a, b],
                        "sub_traj": sr[a - ss : b - ss],
                        "obj_traj": orr[a - os_ : b - os_], "score_list": r["confs"]})  # fmt: skip
    out.sort(key=lambda r: r["score"], reverse=True)
    if cfg["video_topk"]:
        out = out[: cfg["video_topk"]]
    if cfg["nms_threshold"] is not None:
        kept = []
        for r in out:

            def enc(k, key, r=r):
                a, b = (
                    max(k["duration"][0], r["duration"][0]),
                    min(k["duration"][1], r["duration"][1]),
                )
                if a >= b:
                    return 0.0
                kb = k[key][a - k["duration"][0] : b - k["duration"][0]]
                rb = r[key][a - r["duration"][0] : b - r["duration"][0]]
                return sum(_inter(x, y) for x, y in zip(kb, rb, strict=True)) / sum(
                    map(_area, r[key])
                )

            if not any(k["triplet"] == r["triplet"] and enc(k, "sub_traj") > cfg["nms_threshold"]
                       and enc(k, "obj_traj") > cfg["nms_threshold"] for k in kept):  # fmt: skip
                kept.append(r)
        out = kept
    return out


def _random_segments(seed, n_seg=5):
    rng = random.Random(seed)
    tracks = [[rng.uniform(0, 40), rng.uniform(0, 40), rng.uniform(-1, 1), rng.uniform(-1, 1)]
              for _ in range(4)]  # fmt: skip
    segs = {}
    starts = [0, 15, 30, 60, 75, 90][:n_seg]
    for s in starts:
        rels = []
        for _ in range(rng.randint(0, 6)):
            a, b = rng.sample(range(4), 2)
            trip = ["x", rng.choice(["p", "q"]), "y"]

            def traj(t, s=s):
                x, y, vx, vy = tracks[t]
                jit = rng.uniform(-3, 3)
                return [[x + vx * f + jit, y + vy * f, x + vx * f + 12 + jit, y + vy * f + 12]
                        for f in range(s, s + 30)]  # fmt: skip

            score = rng.choice([0.2, 0.5, rng.random()])
            rels.append({"triplet": trip, "score": score, "duration": [s, s + 30],
                         "sub_traj": traj(a), "obj_traj": traj(b)})  # fmt: skip
        segs[(s, s + 30)] = rels
    return segs


def _same(got, ref):
    assert len(got) == len(ref)
    for g, r in zip(got, ref, strict=True):
        assert g["triplet"] == r["triplet"] and g["duration"] == r["duration"]
        assert g["score"] == pytest.approx(r["score"]) and g["score_list"] == r["score_list"]
        for key in ("sub_traj", "obj_traj"):  # exactly: the helper's arithmetic, in float64
            assert g[key] == r[key]


@pytest.mark.parametrize("preset", ["vidvrd", "repro", "uasan"])
@pytest.mark.parametrize("seed", range(12))
def test_equals_the_loop_reference(preset, seed):
    segs = _random_segments(seed)
    _same(associate_relations(segs, preset), _ref_associate(segs, preset))


# ---------------------------------------------------------------------- hand cases


def _rel(start, end, sub, obj, score=0.5, triplet=("dog", "chase", "cat")):
    n = end - start
    return {"triplet": list(triplet), "score": score, "duration": [start, end],
            "sub_traj": [list(sub)] * n, "obj_traj": [list(obj)] * n}  # fmt: skip


SUB, OBJ = (0.0, 0.0, 9.0, 9.0), (20.0, 0.0, 29.0, 9.0)


def test_overlapping_segments_link_and_average():
    moved = (2.0, 0.0, 11.0, 9.0)  # overlap 8 / 12 columns with SUB: cubic IoU 0.667
    segs = {(0, 30): [_rel(0, 30, SUB, OBJ, 0.4)], (15, 45): [_rel(15, 45, moved, OBJ, 0.6)]}
    out = associate_relations(segs, "repro")
    assert len(out) == 1 and out[0]["duration"] == [0, 45]
    assert out[0]["score"] == pytest.approx(1.0)  # sum
    assert out[0]["sub_traj"][0] == list(SUB) and out[0]["sub_traj"][20] == [1.0, 0.0, 10.0, 9.0]
    assert out[0]["sub_traj"][40] == list(moved)
    assert associate_relations(segs, "vidvrd")[0]["score"] == pytest.approx(0.5)  # mean
    assert len(associate_relations(segs, "uasan")) == 2  # 0.667 does not pass 0.8


def test_gap_is_bridged_by_boundary_boxes_and_interpolated():
    far = (4.0, 0.0, 13.0, 9.0)  # boundary IoU with SUB: 6 / 14
    segs = {(0, 30): [_rel(0, 30, SUB, OBJ)], (40, 70): [_rel(40, 70, SUB, OBJ)]}
    out = associate_relations(segs, "repro")  # gap of 10 frames < 30, same boxes: IoU 1
    assert len(out) == 1 and out[0]["duration"] == [0, 70]
    segs = {(0, 30): [_rel(0, 30, SUB, OBJ)], (60, 90): [_rel(60, 90, SUB, OBJ)]}
    assert len(associate_relations(segs, "repro")) == 2  # a gap of 30 frames is too long
    seg2 = {(0, 30): [_rel(0, 30, SUB, OBJ)], (35, 65): [_rel(35, 65, far, OBJ)]}
    joined = associate_relations(seg2, "repro", linkage_threshold=0.0)[0]["sub_traj"]
    # frames 30..34 between SUB at 29 and far at 35: x0 goes 0 -> 4 in 6 steps
    assert len(joined) == 65 and joined[32][0] == pytest.approx(4 * 3 / 6)
    assert len(associate_relations(seg2, "vidvrd", linkage_threshold=0.0)) == 2  # no gaps


def test_gap_filling_is_exact_as_np_interp():
    # equal boxes across a gap stay exactly equal ((1 - w) * y0 + w * y1 gave 119.00000000000001)
    box = (119.0, 7.3, 163.7, 201.1)
    segs = {(0, 30): [_rel(0, 30, box, OBJ)], (37, 67): [_rel(37, 67, box, OBJ)]}
    out = associate_relations(segs, "repro")
    assert len(out) == 1 and all(b == list(box) for b in out[0]["sub_traj"])
    # unequal boxes: bit for bit np.interp's y0 + slope * (x - x0)
    rng = random.Random(0)
    a = [rng.uniform(0, 50), rng.uniform(0, 50), rng.uniform(150, 300), rng.uniform(150, 300)]
    b = [x + rng.uniform(-9, 9) for x in a]  # overlapping: the boundary boxes link
    segs = {(0, 30): [_rel(0, 30, a, OBJ)], (41, 71): [_rel(41, 71, b, OBJ)]}
    joined = associate_relations(segs, "repro", linkage_threshold=0.0)[0]["sub_traj"]
    for p in range(30, 41):
        assert joined[p] == [
            float(np.interp(p, [29, 41], [x, y])) for x, y in zip(a, b, strict=True)
        ]


def test_instances_keep_their_segment_scores_and_extra_keys():
    first = {**_rel(0, 30, SUB, OBJ, 0.25), "segment": 0, "track_ids": (3, 4)}
    second = {**_rel(15, 45, SUB, OBJ, 0.5), "segment": 1, "track_ids": (3, 4)}
    third = {**_rel(30, 60, SUB, OBJ, 0.75), "segment": 2}  # no track_ids: None there
    out = associate_relations({(0, 30): [first], (15, 45): [second], (30, 60): [third]}, "repro")
    assert len(out) == 1
    assert out[0]["score_list"] == [0.25, 0.5, 0.75] and out[0]["score"] == 1.5
    assert out[0]["segment"] == [0, 1, 2] and out[0]["track_ids"] == [(3, 4), (3, 4), None]
    lone = associate_relations({(0, 30): [first]}, "uasan")[0]
    assert lone["score_list"] == [0.25] and lone["segment"] == [0]
    # the evaluator reads what it needs and ignores the extra keys
    gt = {"v": [{"triplet": list(first["triplet"]), "duration": [0, 60],
                 "sub_traj": [list(SUB)] * 60, "obj_traj": [list(OBJ)] * 60}]}  # fmt: skip
    assert float(vidvrd_metrics({"v": out}, gt)["mAP"]) == 1.0


def test_strict_linkage_and_cooccurrence_and_suppression():
    half = (0.0, 0.0, 9.0, 9.0)
    shifted = (0.0, 0.0, 9.0, 9.0)
    segs = {(0, 30): [_rel(0, 30, SUB, OBJ)], (15, 45): [_rel(15, 45, shifted, OBJ)]}
    assert len(associate_relations(segs, "repro", linkage_threshold=1.0)) == 2  # strict >
    assert len(associate_relations(segs, "vidvrd", linkage_threshold=1.0)) == 1  # >=
    one = {(0, 30): [dict(_rel(0, 30, SUB, OBJ), sub_duration=[0, 30], obj_duration=[29, 59],
                          obj_traj=[list(OBJ)] * 30)]}  # fmt: skip
    one[(0, 30)][0].pop("duration")
    assert associate_relations(one, "repro") == []  # subject and object share one frame
    assert len(associate_relations(one, "repro", min_frames=1)) == 1
    dup = {(0, 30): [_rel(0, 30, SUB, OBJ, 0.9), _rel(0, 30, half, OBJ, 0.3)]}
    assert len(associate_relations(dup, "repro")) == 2
    assert len(associate_relations(dup, "uasan")) == 1  # the lower one is covered: suppressed
    assert segment_triplet_score(torch.tensor(0.3), torch.tensor(0.6), torch.tensor(0.9)) == \
        pytest.approx(0.6)  # fmt: skip


def test_output_scores_with_the_evaluator():
    segs = {(0, 30): [_rel(0, 30, SUB, OBJ)], (15, 45): [_rel(15, 45, SUB, OBJ)]}
    pred = associate_relations(segs, "repro")
    gt = [{"triplet": ["dog", "chase", "cat"], "duration": [0, 45],
           "sub_traj": [list(SUB)] * 45, "obj_traj": [list(OBJ)] * 45}]  # fmt: skip
    assert float(vidvrd_metrics({"v": pred}, {"v": gt})["mAP"]) == 1.0


def test_errors():
    with pytest.raises(ValueError, match="preset"):
        associate_relations({}, "vidor")
    with pytest.raises(ValueError, match=r"unknown settings \['nms'\]"):
        associate_relations({}, nms=0.5)
    with pytest.raises(ValueError, match=r"segments\[\(0, 30\)\]\[0\]: missing 'score'"):
        associate_relations({(0, 30): [{"triplet": ["a", "b", "c"]}]})
    bad = _rel(0, 30, SUB, OBJ)
    bad["sub_traj"] = bad["sub_traj"][:5]
    with pytest.raises(ValueError, match=r"'sub_traj'\]: expected 30 boxes"):
        associate_relations({(0, 30): [bad]})
    with pytest.raises(ValueError, match="score"):
        associate_relations({}, score="max")
    three = _rel(0, 3, SUB, OBJ)
    three["obj_traj"] = [[0.0, 0.0, 1.0]] * 3  # 3-number boxes
    with pytest.raises(
        ValueError, match=r"\[\(0, 30\)\]\[0\]\['obj_traj'\]: expected 3 boxes of 4"
    ):
        associate_relations({(0, 30): [three]})
    with pytest.raises(ValueError, match="end > begin"):
        associate_relations({(0, 30): [dict(_rel(0, 3, SUB, OBJ), duration=[3, 3])]})
    with pytest.raises(ValueError, match="min_frames"):
        associate_relations({}, min_frames=0)
    assert associate_relations({}) == []
    # a list of relations where the segments' dict belongs: named, not KeyError: 0
    with pytest.raises(TypeError, match=r"segments: expected a dict \{\(start, end\)"):
        associate_relations([_rel(0, 30, SUB, OBJ)])
    with pytest.raises(ValueError, match=r"segments: expected \(start, end\) keys"):
        associate_relations({0: [_rel(0, 30, SUB, OBJ)]})
    # a negative top-k would silently drop the last item
    for key in ("segment_topk", "video_topk"):
        with pytest.raises(ValueError, match=key):
            associate_relations({}, **{key: -1})
        with pytest.raises(ValueError, match=key):
            associate_relations({}, **{key: 0})
    assert associate_relations({(0, 30): [_rel(0, 30, SUB, OBJ)]}, video_topk=None)
    # NaN scores and boxes are named instead of ranked or passed through
    with pytest.raises(ValueError, match="finite 'score'"):
        associate_relations({(0, 30): [dict(_rel(0, 30, SUB, OBJ), score=float("nan"))]})
    nan_box = _rel(0, 30, SUB, OBJ)
    nan_box["obj_traj"] = [[float("nan"), 0.0, 1.0, 1.0], *nan_box["obj_traj"][1:]]
    with pytest.raises(ValueError, match="finite boxes"):
        associate_relations({(0, 30): [nan_box]})
