"""The Action Genome evaluator against a per-frame reference of the public protocol, and by hand."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dsgg_layers.metrics import (
    ActionGenomeEvaluator,
    action_genome_metrics,
    format_results,
    predicate_probabilities,
    sttran_to_tracks,
)

KS = (1, 2, 5, 10, 20, 100)
ATT, SPA, CON = range(0, 3), range(3, 9), range(9, 26)


# ---------------------------------------------------------------------------------------------
# An independent reference: triplet lists, one frame at a time, as the public evaluator does.


def legacy_iou(a, b):
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]) + 1)
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]) + 1)
    inter = iw * ih
    area = lambda r: max(0.0, r[2] - r[0] + 1) * max(0.0, r[3] - r[1] + 1)  # noqa: E731
    union = area(a) + area(b) - inter
    return inter / union if union > 0 else 0.0


def ref_frame(preds, gts, constraint, *, semi=0.9, top=100, topk=6, thr=0.5):
    """preds: dicts with sub/obj box, cls, score and 26 scores; gts: dicts with sub/obj box, cls
    and a list of predicates. Returns (gt triplets, ranked pred triplets, matches per pred)."""
    gt_trip = []
    for g in gts:
        for r in g["rels"]:
            if r in SPA:  # object -> person
                gt_trip.append((g["obj_cls"], r, g["sub_cls"], g["obj_box"], g["sub_box"]))
            else:
                gt_trip.append((g["sub_cls"], r, g["obj_cls"], g["sub_box"], g["obj_box"]))

    def triplet(p, r, score):
        s = score * p["sub_score"] * p["obj_score"]
        if r in SPA:
            return (s, p["obj_cls"], r, p["sub_cls"], p["obj_box"], p["sub_box"])
        return (s, p["sub_cls"], r, p["obj_cls"], p["sub_box"], p["obj_box"])

    rows = []  # the public code's rows: every pair's attention row, then spatial, then contacting
    if constraint == "topk":
        for p in preds:
            order = sorted(range(26), key=lambda r: -p["scores"][r])[:topk]
            rows += [triplet(p, r, p["scores"][r]) for r in order]
    else:
        for group in (ATT, SPA, CON):
            for p in preds:
                sc = p["scores"]
                if constraint == "with" or (constraint == "semi" and group is ATT):
                    r = max(group, key=lambda r: sc[r])
                    rows.append(triplet(p, r, sc[r]))
                elif constraint == "semi":
                    rows += [triplet(p, r, sc[r]) for r in group if sc[r] > semi]
                else:  # "no"
                    rows += [triplet(p, r, sc[r]) for r in group]
    ranked = sorted(rows, key=lambda t: -t[0])  # Python's sort is stable
    if constraint == "no":
        ranked = ranked[:top]
    matches = []
    for _, s, r, o, sb, ob in ranked:
        matches.append(
            {
                i
                for i, (gs, gr, go, gsb, gob) in enumerate(gt_trip)
                if (gs, gr, go) == (s, r, o)
                and legacy_iou(sb, gsb) >= thr
                and legacy_iou(ob, gob) >= thr
            }
        )
    return gt_trip, ranked, matches


def ref_metrics(frames, constraint, ks=KS, **kw):
    """R@K, the three mR@K and P@K over frames (lists of (preds, gts)) by the definitions."""
    recalls = {k: [] for k in ks}
    precisions = {k: [] for k in ks}
    hits = {k: [0] * 26 for k in ks}
    counts = [0] * 26
    present = {k: [[] for _ in range(26)] for k in ks}
    frame_all = {k: [[] for _ in range(26)] for k in ks}
    for preds, gts in frames:
        gt_trip, _, matches = ref_frame(preds, gts, constraint, **kw)
        if not gt_trip:
            continue
        n_r = [sum(1 for t in gt_trip if t[1] == r) for r in range(26)]
        for r in range(26):
            counts[r] += n_r[r]
        for k in ks:
            matched = set().union(*matches[:k]) if matches else set()
            recalls[k].append(len(matched) / len(gt_trip))
            precisions[k].append(sum(1 for m in matches[:k] if m) / k)
            h_r = [sum(1 for i in matched if gt_trip[i][1] == r) for r in range(26)]
            for r in range(26):
                hits[k][r] += h_r[r]
                if n_r[r]:
                    present[k][r].append(h_r[r] / n_r[r])
                frame_all[k][r].append(h_r[r] / n_r[r] if n_r[r] else 0.0)
    out = {}
    mean = lambda xs: sum(xs) / len(xs) if xs else 0.0  # noqa: E731
    for k in ks:
        out[f"R@{k}"] = mean(recalls[k])
        out[f"P@{k}"] = mean(precisions[k])
        out[f"mR@{k}"] = mean([hits[k][r] / counts[r] if counts[r] else 0.0 for r in range(26)])
        out[f"mR@{k}/frame_present"] = mean([mean(present[k][r]) for r in range(26)])
        out[f"mR@{k}/frame_all"] = mean([mean(frame_all[k][r]) for r in range(26)])
    return out


# ---------------------------------------------------------------------------------------------
# Random frames, as tensors for the evaluator and as dicts for the reference.


def random_frames(seed, num_frames=6, sgdet=False, num_classes=4):
    g = torch.Generator().manual_seed(seed)
    rand = lambda *s: torch.rand(*s, generator=g)  # noqa: E731
    frames = []
    for _ in range(num_frames):
        n_gt = int(torch.randint(0, 4, (1,), generator=g))
        person = (rand(4) * 20).sort().values[[0, 1, 2, 3]]
        person = torch.tensor([person[0], person[1], person[0] + 30, person[1] + 40]).round()
        gts = []
        for _ in range(n_gt):
            xy = (rand(2) * 50).round()
            box = torch.cat((xy, xy + 5 + (rand(2) * 20).round()))
            rels = [int(torch.randint(0, 3, (1,), generator=g))]
            rels += [r for r in range(3, 26) if rand(1) < 0.12]
            gts.append(dict(sub_box=person.tolist(), obj_box=box.tolist(), sub_cls=0,
                            obj_cls=int(torch.randint(1, num_classes, (1,), generator=g)),
                            rels=rels))  # fmt: skip
        preds = []
        randint = lambda lo, hi: int(torch.randint(lo, hi, (1,), generator=g))  # noqa: E731

        def jitter(box):
            return (torch.tensor(box) + (rand(4) - 0.5) * 12).round().tolist() if sgdet else box

        for gt in gts:
            if sgdet and rand(1) < 0.2:
                continue  # missed
            right = not sgdet or rand(1) < 0.8
            cls = gt["obj_cls"] if right else randint(1, num_classes)
            preds.append(dict(sub_box=jitter(gt["sub_box"]), obj_box=jitter(gt["obj_box"]),
                              sub_cls=0, obj_cls=cls))  # fmt: skip
        for _ in range(randint(0, 3) if sgdet else 0):  # spurious detections
            xy = (rand(2) * 50).round()
            box = torch.cat((xy, xy + 5 + (rand(2) * 20).round())).tolist()
            preds.append(dict(sub_box=person.tolist(), obj_box=box, sub_cls=0,
                              obj_cls=randint(1, num_classes)))  # fmt: skip
        for p in preds:
            p["scores"] = predicate_probabilities(torch.randn(26, generator=g) * 2).tolist()
            p["sub_score"] = float(rand(1) * 0.5 + 0.5) if sgdet else 1.0
            p["obj_score"] = float(rand(1) * 0.5 + 0.5) if sgdet else 1.0
        frames.append((preds, gts))
    return frames


def to_tensors(frames):
    F = len(frames)
    P = max([len(p) for p, _ in frames] + [1])
    G = max([len(g) for _, g in frames] + [1])
    preds = dict(
        predicate_scores=torch.zeros(F, P, 26), mask=torch.zeros(F, P, dtype=torch.bool),
        subject_boxes=torch.zeros(F, P, 4), object_boxes=torch.zeros(F, P, 4),
        object_labels=torch.full((F, P), -1), subject_labels=torch.full((F, P), -1),
        subject_scores=torch.zeros(F, P), object_scores=torch.zeros(F, P),
    )  # fmt: skip
    target = dict(
        relations=torch.zeros(F, G, 26, dtype=torch.long), mask=torch.zeros(F, G, dtype=torch.bool),
        subject_boxes=torch.zeros(F, G, 4), object_boxes=torch.zeros(F, G, 4),
        object_labels=torch.full((F, G), -1),
    )  # fmt: skip
    for f, (ps, gs) in enumerate(frames):
        for i, p in enumerate(ps):
            preds["predicate_scores"][f, i] = torch.tensor(p["scores"])
            preds["mask"][f, i] = True
            preds["subject_boxes"][f, i] = torch.tensor(p["sub_box"])
            preds["object_boxes"][f, i] = torch.tensor(p["obj_box"])
            preds["object_labels"][f, i] = p["obj_cls"]
            preds["subject_labels"][f, i] = p["sub_cls"]
            preds["subject_scores"][f, i] = p["sub_score"]
            preds["object_scores"][f, i] = p["obj_score"]
        for j, gt in enumerate(gs):
            target["mask"][f, j] = True
            target["subject_boxes"][f, j] = torch.tensor(gt["sub_box"])
            target["object_boxes"][f, j] = torch.tensor(gt["obj_box"])
            target["object_labels"][f, j] = gt["obj_cls"]
            for r in gt["rels"]:
                target["relations"][f, j, r] += 1
    return preds, target


def assert_matches_reference(results, frames, constraint, name=None, **kw):
    ref = ref_metrics(frames, constraint, **kw)
    name = name or constraint
    for key, want in ref.items():
        got = float(results[f"{name}/{key}"])
        assert got == pytest.approx(want, abs=1e-9), (name, key, got, want)


@settings(max_examples=25)
@given(seed=st.integers(0, 2**20), sgdet=st.booleans())
def test_matches_the_reference_protocol(seed, sgdet):
    frames = random_frames(seed, sgdet=sgdet)
    preds, target = to_tensors(frames)
    results = action_genome_metrics(preds, target, constraints=("with", "semi", "no", "topk"),
                                    ks=KS, semi_threshold=0.6)  # fmt: skip
    for c in ("with", "semi", "no"):
        assert_matches_reference(results, frames, c, semi=0.6)
    assert_matches_reference(results, frames, "topk", name="top6")


def test_no_constraint_cut_and_top_k_settings():
    frames = random_frames(3, num_frames=8)
    preds, target = to_tensors(frames)
    results = action_genome_metrics(preds, target, constraints=("no", "topk"), ks=KS,
                                    no_constraint_top=7, top_k_per_pair=2)  # fmt: skip
    assert_matches_reference(results, frames, "no", top=7)
    assert_matches_reference(results, frames, "topk", name="top2", topk=2)


# ---------------------------------------------------------------------------------------------
# Hand-built cases


def frame_tensors(pred_pairs, gt_pairs):
    """One frame from short tuples: pred (obj_box, obj_cls, {predicate: score}, obj_score) and
    gt (obj_box, obj_cls, [predicates]); the person box is (0, 0, 10, 10) everywhere."""
    return to_tensors([(
        [dict(sub_box=[0.0, 0, 10, 10], obj_box=list(b), sub_cls=0, obj_cls=c,
              scores=[s.get(r, 0.01) for r in range(26)], sub_score=1.0, obj_score=os)
         for b, c, s, os in pred_pairs],
        [dict(sub_box=[0.0, 0, 10, 10], obj_box=list(b), sub_cls=0, obj_cls=c, rels=list(r))
         for b, c, r in gt_pairs],
    )])  # fmt: skip


BOX = (20.0, 20, 40, 40)


def metrics(pred_pairs, gt_pairs, **kw):
    return action_genome_metrics(*frame_tensors(pred_pairs, gt_pairs), **kw)


def test_frame_without_predictions_counts_zero_and_frame_without_gt_is_skipped():
    with_gt = frame_tensors([], [(BOX, 2, [0, 3])])
    without_gt = frame_tensors([(BOX, 2, {0: 0.9}, 1.0)], [])
    right = frame_tensors([(BOX, 2, {0: 0.9, 3: 0.9}, 1.0)], [(BOX, 2, [0, 3])])
    ev = ActionGenomeEvaluator(constraints=["with"], ks=[10])
    for preds, target in (with_gt, without_gt, right):
        ev.update(preds, target)
    r = ev.compute()
    assert int(r["num_frames"]) == 2  # the frame without ground truth is skipped
    assert float(r["with/R@10"]) == 0.5  # (0 + 1) / 2


def test_wrong_object_class_never_matches():
    r = metrics([(BOX, 3, {0: 0.9}, 1.0)], [(BOX, 2, [0])], constraints=["no"], ks=[100])
    assert float(r["no/R@100"]) == 0.0 and float(r["no/P@100"]) == 0.0


def test_iou_threshold_is_inclusive_in_the_legacy_convention():
    # GT object 21 x 21 pixels (legacy +1); prediction shifted so that IoU is exactly 0.5 / below.
    gt_box = (0.0, 100, 20, 120)  # area 441
    # shifted by 7 px: intersection 14 * 21 = 294, union 882 - 294 = 588 -> IoU 0.5
    at = (7.0, 100, 27, 120)
    below = (8.0, 100, 28, 120)  # intersection 273, union 609 -> 0.448
    for box, want in ((at, 1.0), (below, 0.0)):
        r = metrics([(box, 2, {0: 0.9}, 1.0)], [(gt_box, 2, [0])], constraints=["with"], ks=[10])
        assert float(r["with/R@10"]) == want
    # without the legacy convention the same shift of 7 px is IoU 260 / 540 < 0.5
    r = metrics([(at, 2, {0: 0.9}, 1.0)], [(gt_box, 2, [0])], constraints=["with"], ks=[10],
                legacy_iou=False)  # fmt: skip
    assert float(r["with/R@10"]) == 0.0


def test_with_constraint_takes_one_predicate_per_group():
    # the pair has two spatial predicates in the ground truth; "with" can only get one of them
    scores = {0: 0.9, 3: 0.8, 5: 0.7, 14: 0.6}
    options = dict(constraints=["with", "semi", "no"], ks=[10], semi_threshold=0.65)
    r = metrics([(BOX, 2, scores, 1.0)], [(BOX, 2, [0, 3, 5, 14])], **options)
    assert float(r["with/R@10"]) == 0.75
    assert float(r["semi/R@10"]) == 0.75  # 14 (0.6) is not above 0.65
    assert float(r["no/R@10"]) == 1.0


def test_semi_threshold_is_strict():
    r = metrics([(BOX, 2, {0: 0.9, 3: 0.9, 4: 0.95}, 1.0)], [(BOX, 2, [3])], constraints=["semi"],
                ks=[10])  # fmt: skip
    assert float(r["semi/R@10"]) == 0.0  # 0.9 is not > 0.9; 4 is above but wrong
    r = metrics(
        [(BOX, 2, {0: 0.9, 3: 0.9001}, 1.0)], [(BOX, 2, [3])], constraints=["semi"], ks=[10]
    )
    assert float(r["semi/R@10"]) == 1.0


def test_ties_keep_the_row_order():
    # Two pairs, same object class and box as the single GT pair: attention scores tie exactly.
    # The stable ranking keeps the rows' order (pair 0 first), so only pair 0's triplet is in the
    # top 1. Pair 0 predicts not_looking_at (wrong), pair 1 looking_at (right).
    preds = [(BOX, 2, {1: 0.5}, 1.0), (BOX, 2, {0: 0.5}, 1.0)]
    r = metrics(preds, [(BOX, 2, [0])], constraints=["with"], ks=[1, 2])
    assert float(r["with/R@1"]) == 0.0 and float(r["with/R@2"]) == 1.0
    swapped = metrics(preds[::-1], [(BOX, 2, [0])], constraints=["with"], ks=[1])
    assert float(swapped["with/R@1"]) == 1.0


def test_duplicates():
    # Two identical predicted pairs both match the same GT triplet: recall counts it once,
    # precision counts both predictions.
    preds = [(BOX, 2, {0: 0.9}, 1.0), (BOX, 2, {0: 0.8}, 1.0)]
    r = metrics(
        preds, [(BOX, 2, [0])], constraints=["with"], ks=[2], precision_denominator="available"
    )
    assert float(r["with/R@2"]) == 1.0 and float(r["with/P@2"]) == 1.0
    # A predicate annotated twice counts twice, and one prediction matches both copies.
    r = metrics([(BOX, 2, {3: 0.9}, 1.0)], [(BOX, 2, [3, 3, 14])], constraints=["with"], ks=[10])
    assert float(r["with/R@10"]) == pytest.approx(2 / 3)


def test_scores_multiply_subject_and_object_scores():
    # The confident pair has a low detector score: its triplet ranks below the other pair's.
    preds = [(BOX, 2, {0: 0.9}, 0.1), ((50.0, 50, 70, 70), 3, {0: 0.5}, 1.0)]
    gts = [(BOX, 2, [0]), ((50.0, 50, 70, 70), 3, [0])]
    r = metrics(preds, gts, constraints=["with"], ks=[1])
    assert float(r["with/R@1"]) == 0.5
    r_ref = ref_metrics([frame_dicts(preds, gts)], "with", ks=(1,))
    assert r_ref["R@1"] == 0.5


def frame_dicts(pred_pairs, gt_pairs):
    return (
        [dict(sub_box=[0.0, 0, 10, 10], obj_box=list(b), sub_cls=0, obj_cls=c,
              scores=[s.get(r, 0.01) for r in range(26)], sub_score=1.0, obj_score=os)
         for b, c, s, os in pred_pairs],
        [dict(sub_box=[0.0, 0, 10, 10], obj_box=list(b), sub_cls=0, obj_cls=c, rels=list(r))
         for b, c, r in gt_pairs],
    )  # fmt: skip


def test_mean_recall_definitions_by_hand():
    # Frame 1: looking_at (hit) and holding (miss). Frame 2: looking_at (miss) x 3 pairs.
    f1 = frame_dicts([(BOX, 2, {0: 0.9, 9: 0.9}, 1.0)], [(BOX, 2, [0, 14])])
    boxes = [(20.0 + 30 * i, 20, 40 + 30 * i, 40) for i in range(3)]
    f2 = frame_dicts([(b, 2 + i, {1: 0.9}, 1.0) for i, b in enumerate(boxes)],
                     [(b, 2 + i, [0]) for i, b in enumerate(boxes)])  # fmt: skip
    preds, target = to_tensors([f1, f2])
    r = action_genome_metrics(preds, target, constraints=["with"], ks=[10])
    # looking_at: 1 hit of 4 overall; per frame 1/1 and 0/3; holding 0 of 1.
    assert float(r["with/mR@10"]) == pytest.approx((1 / 4 + 0) / 26)
    assert float(r["with/mR@10/frame_present"]) == pytest.approx(((1 + 0) / 2 + 0) / 26)
    assert float(r["with/mR@10/frame_all"]) == pytest.approx(((1 + 0) / 2 + 0 / 2) / 26)
    assert float(r["with/R@10"]) == pytest.approx((1 / 2 + 0) / 2)
    per = r["with/recall_per_predicate@10"]
    assert per[0] == pytest.approx(0.25) and per[14] == 0 and per.shape == (26,)
    # P@K: frame 1 has 1 right of 3 triplets, frame 2 none of 9
    assert float(r["with/P@10"]) == pytest.approx((1 / 10 + 0) / 2)
    r = action_genome_metrics(
        preds, target, constraints=["with"], ks=[10], precision_denominator="available"
    )
    assert float(r["with/P@10"]) == pytest.approx((1 / 3 + 0) / 2)


def test_chunks_merge_and_state_add_up():
    frames = random_frames(11, num_frames=12, sgdet=True)
    whole = action_genome_metrics(*to_tensors(frames), ks=KS)
    a, b = ActionGenomeEvaluator(ks=KS), ActionGenomeEvaluator(ks=KS)
    a.update(*to_tensors(frames[:5]))
    b.update(*to_tensors(frames[5:]))
    a.merge(b)
    merged = a.compute()
    for key, value in whole.items():
        torch.testing.assert_close(merged[key], value)
    a.reset()
    assert float(a.compute()["with/R@10"]) == 0.0 and int(a.compute()["num_frames"]) == 0
    a.sync()  # no process group: a no-op


def test_pair_track_leading_dims():
    frames = random_frames(5, num_frames=6)
    preds, target = to_tensors(frames)
    flat = action_genome_metrics(preds, target)
    as_tracks = {k: v.view(2, 3, *v.shape[1:]) for k, v in preds.items()}
    target_tracks = {k: v.view(2, 3, *v.shape[1:]) for k, v in target.items()}
    tracked = action_genome_metrics(as_tracks, target_tracks)
    for key, value in flat.items():
        torch.testing.assert_close(tracked[key], value)


def test_sttran_adapter_matches_the_tensor_path():
    # One video of two frames in STTran's formats (classes with __background__ = 0, person = 1).
    entry = {
        "boxes": torch.tensor([[0, 0.0, 0, 10, 10], [0, 20, 20, 40, 40], [1, 0, 0, 10, 10],
                               [1, 20, 20, 40, 40], [1, 50, 50, 60, 60]]),
        "pred_labels": torch.tensor([1, 3, 1, 3, 5]),
        "pred_scores": torch.tensor([1.0, 0.9, 0.8, 0.9, 0.4]),
        "pair_idx": torch.tensor([[0, 1], [2, 3], [2, 4]]),
        "im_idx": torch.tensor([0, 1, 1]),
        "attention_distribution": torch.tensor([[3.0, 0, 0], [0, 3, 0], [3, 0, 0]]),
        "spatial_distribution": torch.rand(3, 6),
        "contacting_distribution": torch.rand(3, 17),
    }  # fmt: skip
    gt = [
        [{"person_bbox": [[0.0, 0, 10, 10]]},
         {"class": 3, "bbox": [20.0, 20, 40, 40], "attention_relationship": [0],
          "spatial_relationship": [1, 1], "contacting_relationship": [5]}],
        [{"person_bbox": [[0.0, 0, 10, 10]]},
         {"class": 3, "bbox": [20.0, 20, 40, 40], "attention_relationship": [1],
          "spatial_relationship": [], "contacting_relationship": None}],
    ]  # fmt: skip
    preds, target = sttran_to_tracks(entry, gt, mode="sgdet")
    assert preds["mask"].tolist() == [[True, False], [True, True]]
    assert target["relations"][0, 0].nonzero().flatten().tolist() == [0, 4, 14]
    assert target["relations"][0, 0, 4] == 2  # listed twice
    ev = ActionGenomeEvaluator(constraints=["with"], ks=[10])
    ev.update_sttran(entry, gt, mode="sgdet")
    r = ev.compute()
    # frame 0: attention right (softmax of [3, 0, 0]) and frame 1: attention right as well
    per = r["with/recall_per_predicate@10"]
    assert per[0] == 1.0 and per[1] == 1.0
    with pytest.raises(ValueError, match="entry: missing keys"):
        sttran_to_tracks(entry, gt, mode="predcls")
    with pytest.raises(ValueError, match=r"entry\['im_idx'\]: frames must be in \[0, 1\)"):
        sttran_to_tracks(entry, gt[:1], mode="sgdet")


def test_format_results_and_probabilities():
    r = metrics([(BOX, 2, {0: 0.9}, 1.0)], [(BOX, 2, [0])], constraints=["with", "no"], ks=[10, 20])
    table = format_results(r, metrics=("R", "P"))
    assert table.splitlines()[0].split() == ["constraint", "R@10", "R@20", "P@10", "P@20"]
    assert table.splitlines()[1].split()[:2] == ["with", "100.0"]
    p = predicate_probabilities(torch.randn(4, 26))
    torch.testing.assert_close(p[:, :3].sum(-1), torch.ones(4))
    assert ((p[:, 3:] > 0) & (p[:, 3:] < 1)).all()


def test_empty_batches():
    preds, target = to_tensors([([], [])])
    r = action_genome_metrics(preds, target)
    assert int(r["num_frames"]) == 0 and all(math.isfinite(float(v.sum())) for v in r.values())


def test_errors():
    preds, target = frame_tensors([(BOX, 2, {0: 0.9}, 1.0)], [(BOX, 2, [0])])
    with pytest.raises(ValueError, match=r"preds: missing keys \['mask'\]"):
        action_genome_metrics({k: v for k, v in preds.items() if k != "mask"}, target)
    with pytest.raises(
        ValueError, match=r"preds\['predicate_scores'\]: expected shape \(\.\.\., P, 26\)"
    ):
        action_genome_metrics(dict(preds, predicate_scores=torch.zeros(1, 1, 25)), target)
    with pytest.raises(ValueError, match="preds and target: expected the same leading"):
        action_genome_metrics(preds, {k: v.expand(2, *v.shape[1:]) for k, v in target.items()})
    with pytest.raises(TypeError, match=r"target\['relations'\]: expected a bool or an integer"):
        action_genome_metrics(preds, dict(target, relations=target["relations"].float()))
    with pytest.raises(
        ValueError, match=r"target\['object_boxes'\]: expected shape \(\.\.\., G, 4\)"
    ):
        action_genome_metrics(preds, dict(target, object_boxes=torch.zeros(1, 2, 4)))
    with pytest.raises(
        ValueError, match="constraints: expected one of 'with', 'semi', 'no', 'topk'"
    ):
        ActionGenomeEvaluator(constraints=["none"])
    with pytest.raises(ValueError, match="iou_threshold: expected a value in"):
        ActionGenomeEvaluator(iou_threshold=0)
    with pytest.raises(ValueError, match=r"other: expected ks=\(10,\) as this one, got \(20,\)"):
        ActionGenomeEvaluator(ks=[10]).merge(ActionGenomeEvaluator(ks=[20]))
    with pytest.raises(TypeError, match="preds: expected a mapping of tensors, got list"):
        action_genome_metrics([], target)


@settings(max_examples=10)
@given(seed=st.integers(0, 2**20), num_strata=st.integers(1, 3))
def test_strata_are_the_metrics_of_their_frames(seed, num_strata):
    frames = random_frames(seed, num_frames=10, sgdet=True)
    g = torch.Generator().manual_seed(seed)
    strata = torch.randint(0, num_strata, (10,), generator=g)
    ev = ActionGenomeEvaluator(constraints=("with", "no"), ks=(5, 20), num_strata=num_strata)
    ev.update(*to_tensors(frames), strata=strata)
    got = ev.compute()
    plain = action_genome_metrics(*to_tensors(frames), constraints=("with", "no"), ks=(5, 20))
    for key, value in plain.items():  # the overall numbers do not change
        torch.testing.assert_close(got[key], value)
    for s in range(num_strata):
        mine = [f for f, k in zip(frames, strata.tolist(), strict=True) if k == s]
        if mine:
            want = action_genome_metrics(*to_tensors(mine), constraints=("with", "no"), ks=(5, 20))
        else:
            want = {"num_frames": torch.tensor(0), "with/R@5": 0.0, "with/R@20": 0.0,
                    "no/R@5": 0.0, "no/R@20": 0.0}  # fmt: skip
        assert int(got[f"num_frames/stratum{s}"]) == int(want["num_frames"])
        for key in ("with/R@5", "with/R@20", "no/R@5", "no/R@20"):
            assert float(got[f"{key}/stratum{s}"]) == pytest.approx(float(want[key]), abs=1e-9)


def test_strata_merge_and_errors():
    frames = random_frames(3, num_frames=8)
    strata = torch.tensor([0, 1, 1, 0, 2, 2, 0, 1])
    whole = ActionGenomeEvaluator(ks=(10,), num_strata=3)
    whole.update(*to_tensors(frames), strata=strata)
    a, b = (
        ActionGenomeEvaluator(ks=(10,), num_strata=3),
        ActionGenomeEvaluator(ks=(10,), num_strata=3),
    )
    a.update(*to_tensors(frames[:3]), strata=strata[:3])
    b.update(*to_tensors(frames[3:]), strata=strata[3:])
    a.merge(b)
    for key, value in whole.compute().items():
        torch.testing.assert_close(a.compute()[key], value)
    with pytest.raises(ValueError, match="other: expected num_strata=3"):
        a.merge(ActionGenomeEvaluator(ks=(10,)))
    preds, target = to_tensors(frames)
    with pytest.raises(
        ValueError, match=r"strata: expected the stratum of each frame \(num_strata=3\)"
    ):
        a.update(preds, target)
    with pytest.raises(ValueError, match="strata: this evaluator has num_strata=0"):
        ActionGenomeEvaluator().update(preds, target, strata=strata)
    with pytest.raises(ValueError, match=r"strata: expected values in \[0, 3\), got \[0, 3\]"):
        a.update(preds, target, strata=strata.clamp(max=2) + (strata == 2).long())
    with pytest.raises(ValueError, match=r"strata: expected shape \(8,\)"):
        a.update(preds, target, strata=strata[:4])
    with pytest.raises(ValueError, match="num_strata: expected a value >= 0"):
        ActionGenomeEvaluator(num_strata=-1)
