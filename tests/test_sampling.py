"""RS-Net's positive/negative pairs and negative sampling (dsgg_layers.sampling) vs loops."""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from dsgg_layers import assign_relations, cap_negatives, filter_negatives
from dsgg_layers.boxes import box_union, elementwise_box_iou


def boxes(g, shape, grid=4):
    """Boxes on a coarse grid, so that overlaps above 0.5 and exact duplicates are common."""
    xy = torch.randint(0, grid, (*shape, 2), generator=g).float() * 10
    wh = torch.randint(1, 3, (*shape, 2), generator=g).float() * 10
    return torch.cat((xy, xy + wh), -1)


def scene(seed, B=2, T=3, P=4, G=3, classes=3):
    g = torch.Generator().manual_seed(seed)
    det = dict(
        subject_boxes=boxes(g, (B, T, P)),
        object_boxes=boxes(g, (B, T, P)),
        object_labels=torch.randint(1, classes + 1, (B, T, P), generator=g),
        mask=torch.rand(B, T, P, generator=g) > 0.2,
    )
    gt = dict(
        gt_subject_boxes=boxes(g, (B, T, G)),
        gt_object_boxes=boxes(g, (B, T, G)),
        gt_object_labels=torch.randint(1, classes + 1, (B, T, G), generator=g),
        gt_mask=torch.rand(B, T, G, generator=g) > 0.2,
        gt_relations=torch.rand(B, T, G, 5, generator=g) > 0.5,
    )
    # some detections copy a ground-truth pair (shifted a little): positives exist
    copy = torch.rand(B, T, min(P, G), generator=g) > 0.4
    for key, src in (("subject_boxes", "gt_subject_boxes"), ("object_boxes", "gt_object_boxes")):
        shifted = gt[src][:, :, : min(P, G)] + 1.0
        det[key][:, :, : min(P, G)] = torch.where(copy[..., None], shifted,
                                                  det[key][:, :, : min(P, G)])  # fmt: skip
    det["object_labels"][:, :, : min(P, G)] = torch.where(
        copy, gt["gt_object_labels"][:, :, : min(P, G)], det["object_labels"][:, :, : min(P, G)]
    )
    if P >= 2 * G:  # second detections of the first G pairs (near-duplicates, shifted more)
        dup = torch.rand(B, T, G, generator=g) > 0.3
        for key in ("subject_boxes", "object_boxes"):
            shifted = det[key][:, :, :G] + torch.randint(0, 5, (B, T, G, 1), generator=g)
            det[key][:, :, G : 2 * G] = torch.where(dup[..., None], shifted,
                                                    det[key][:, :, G : 2 * G])  # fmt: skip
        det["object_labels"][:, :, G : 2 * G] = torch.where(
            dup, det["object_labels"][:, :, :G], det["object_labels"][:, :, G : 2 * G]
        )
    return det, gt


def iou(a, b):
    return float(elementwise_box_iou(a, b))


def assign_loop(det, gt, thr=0.5):
    B, T, P = det["mask"].shape
    G = gt["gt_mask"].shape[-1]
    matched = torch.full((B, T, P), -1)
    for b in range(B):
        for t in range(T):
            for p in range(P):
                if not det["mask"][b, t, p]:
                    continue
                best, arg = -1.0, -1
                for k in range(G):
                    if not gt["gt_mask"][b, t, k] or not gt["gt_relations"][b, t, k].any():
                        continue
                    if det["object_labels"][b, t, p] != gt["gt_object_labels"][b, t, k]:
                        continue
                    i_s = iou(det["subject_boxes"][b, t, p], gt["gt_subject_boxes"][b, t, k])
                    i_o = iou(det["object_boxes"][b, t, p], gt["gt_object_boxes"][b, t, k])
                    v = min(i_s, i_o)
                    if v >= thr and v > best:
                        best, arg = v, k
                matched[b, t, p] = arg
    return matched


@given(st.integers(0, 10_000))
def test_assignment_matches_the_loop_reference(seed):
    det, gt = scene(seed)
    a = assign_relations(**det, **gt)
    ref = assign_loop(det, gt)
    assert torch.equal(a.matched, ref)
    assert torch.equal(a.positive, ref >= 0)
    assert torch.equal(a.negative, det["mask"] & (ref < 0))
    b, t, p = (ref >= 0).nonzero(as_tuple=True)
    assert torch.equal(a.relations[b, t, p], gt["gt_relations"][b, t, ref[b, t, p]])
    assert not a.relations[ref < 0].any()


def test_assignment_needs_the_same_class_and_both_boxes():
    box = torch.tensor([[[[0.0, 0, 10, 10]]]])
    far = torch.tensor([[[[50.0, 50, 60, 60]]]])
    one, mask = torch.tensor([[[1]]]), torch.ones(1, 1, 1, dtype=torch.bool)
    assert assign_relations(box, box, one, mask, box, box, one, mask).positive.all()
    assert not assign_relations(box, box, one + 1, mask, box, box, one, mask).positive.any()
    assert not assign_relations(box, far, one, mask, box, box, one, mask).positive.any()
    rel = torch.zeros(1, 1, 1, 4, dtype=torch.bool)  # an annotated pair without relation
    assert not assign_relations(box, box, one, mask, box, box, one, mask,
                                gt_relations=rel).positive.any()  # fmt: skip
    # no ground truth at all: every detection is a negative candidate
    none = assign_relations(box, box, one, mask, box[..., :0, :], box[..., :0, :], one[..., :0],
                            mask[..., :0], gt_relations=rel[..., :0, :])  # fmt: skip
    assert none.negative.all() and none.relations.shape == (1, 1, 1, 4)


def test_assignment_errors_name_the_argument():
    det, gt = scene(0)
    with pytest.raises(ValueError, match="gt_object_labels: expected shape"):
        assign_relations(**det, **{**gt, "gt_object_labels": gt["gt_object_labels"][..., :1]})
    with pytest.raises(TypeError, match="object_labels: expected an integer tensor"):
        assign_relations(**{**det, "object_labels": det["object_labels"].float()}, **gt)
    with pytest.raises(ValueError, match=r"iou_threshold: expected a value in \(0, 1\]"):
        assign_relations(**det, **gt, iou_threshold=1.5)


def filter_loop(neg, pos, s, o, labels, thr, which):
    keep = neg.clone()
    B, T, P = neg.shape
    for b in range(B):
        for t in range(T):
            for n in range(P):
                if not neg[b, t, n] or pos[b, t, n]:
                    keep[b, t, n] = False if pos[b, t, n] else keep[b, t, n]
                    continue
                for q in range(P):
                    if not pos[b, t, q] or labels[b, t, q] != labels[b, t, n]:
                        continue
                    i_s = iou(s[b, t, n], s[b, t, q])
                    i_o = iou(o[b, t, n], o[b, t, q])
                    i_u = iou(box_union(s[b, t, n], o[b, t, n]), box_union(s[b, t, q], o[b, t, q]))
                    v = {"both": min(i_s, i_o), "subject": i_s, "object": i_o, "union": i_u}[which]
                    if v > thr:
                        keep[b, t, n] = False
    return keep


@pytest.mark.parametrize("which", ["both", "subject", "object", "union"])
@given(seed=st.integers(0, 10_000))
def test_filter_matches_the_loop_reference(which, seed):
    det, gt = scene(seed, P=6)
    a = assign_relations(**det, **gt)
    args = (a.negative, a.positive, det["subject_boxes"], det["object_boxes"],
            det["object_labels"])  # fmt: skip
    kept = filter_negatives(*args, boxes=which)
    assert torch.equal(kept, filter_loop(*args, 0.5, which))
    assert not (kept & ~a.negative).any()


def test_filter_drops_a_near_duplicate_of_a_positive_only():
    s = torch.tensor([[[0.0, 0, 10, 10]] * 4])
    o = torch.tensor([[[20.0, 0, 30, 10], [21, 0, 31, 10], [21, 0, 31, 10], [60, 60, 70, 70]]])
    labels = torch.tensor([[5, 5, 6, 5]])  # pair 2: the same box, another class: kept
    pos = torch.tensor([[True, False, False, False]])
    kept = filter_negatives(~pos, pos, s, o, labels)
    assert kept.tolist() == [[False, False, True, True]]
    # subject labels count when given
    subj = torch.tensor([[0, 1, 0, 0]])
    kept = filter_negatives(~pos, pos, s, o, labels, subject_labels=subj)
    assert kept.tolist() == [[False, True, True, True]]
    with pytest.raises(ValueError, match="boxes: expected one of 'both'"):
        filter_negatives(~pos, pos, s, o, labels, boxes="max")


@pytest.mark.parametrize("per", ["video", "frame"])
@given(seed=st.integers(0, 10_000), ratio=st.sampled_from([0.0, 0.5, 1.0, 1.2, 3.0]))
def test_cap_keeps_exactly_the_allowed_number_of_negatives(per, seed, ratio):
    g = torch.Generator().manual_seed(seed)
    pos = torch.rand(3, 4, 6, generator=g) > 0.8
    neg = ~pos & (torch.rand(3, 4, 6, generator=g) > 0.3)
    kept = cap_negatives(neg, pos, ratio=ratio, per=per, generator=g)
    assert not (kept & ~neg).any()
    dims = (-1,) if per == "frame" else (-2, -1)
    n_pos, n_neg, n_kept = pos.sum(dims), neg.sum(dims), kept.sum(dims)
    allowed = torch.floor(n_pos.double() * ratio + 1e-9).long()
    assert torch.equal(n_kept, torch.minimum(n_neg, allowed))
    assert (n_kept.double() <= ratio * n_pos.double() + 1e-9).all()


def test_cap_is_deterministic_with_a_seed_and_random_across_seeds():
    pos = torch.zeros(1, 10, 20, dtype=torch.bool)
    pos[:, :, 0] = True  # 10 positives, 190 negatives: keep 12
    neg = ~pos
    a = cap_negatives(neg, pos, generator=torch.Generator().manual_seed(1))
    b = cap_negatives(neg, pos, generator=torch.Generator().manual_seed(1))
    c = cap_negatives(neg, pos, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c) and int(a.sum()) == 12
    # per frame: each frame has one positive, keeps one negative
    f = cap_negatives(neg, pos, per="frame", generator=torch.Generator().manual_seed(1))
    assert f.sum(-1).tolist() == [[1] * 10]


def test_cap_uniformity_each_negative_is_kept_as_often():
    pos = torch.zeros(4000, 1, 6, dtype=torch.bool)
    pos[..., 0] = True  # 1 positive, 5 negatives: floor(1.2) = 1 kept, each with chance 1/5
    kept = cap_negatives(~pos, pos, generator=torch.Generator().manual_seed(0))
    share = kept[:, 0, 1:].double().mean(0)
    assert torch.allclose(share, torch.full((5,), 0.2, dtype=torch.float64), atol=0.03)


def test_cap_without_positives_keeps_nothing_and_errors_name_the_argument():
    neg = torch.ones(2, 3, 4, dtype=torch.bool)
    assert not cap_negatives(neg, ~neg).any()
    with pytest.raises(ValueError, match="per: expected one of 'video', 'frame'"):
        cap_negatives(neg, ~neg, per="batch")
    with pytest.raises(ValueError, match="ratio: expected a value >= 0"):
        cap_negatives(neg, ~neg, ratio=-1.0)
    with pytest.raises(TypeError, match="generator: expected a torch.Generator"):
        cap_negatives(neg, ~neg, generator=0)
    assert math.isclose(float(cap_negatives(neg[:, :0], ~neg[:, :0]).sum()), 0.0)


def one_to_one_loop(det, gt, thr=0.5):
    """Each annotated pair keeps its best qualifying detection; a detection kept by several
    annotated pairs takes the one it overlaps most."""
    B, T, P = det["mask"].shape
    G = gt["gt_mask"].shape[-1]
    matched = torch.full((B, T, P), -1)
    for b in range(B):
        for t in range(T):
            best = {}  # detection -> (iou, g)
            for k in range(G):
                if not gt["gt_mask"][b, t, k] or not gt["gt_relations"][b, t, k].any():
                    continue
                top, arg = -1.0, -1
                for p in range(P):
                    if not det["mask"][b, t, p]:
                        continue
                    if det["object_labels"][b, t, p] != gt["gt_object_labels"][b, t, k]:
                        continue
                    i_s = iou(det["subject_boxes"][b, t, p], gt["gt_subject_boxes"][b, t, k])
                    i_o = iou(det["object_boxes"][b, t, p], gt["gt_object_boxes"][b, t, k])
                    if min(i_s, i_o) >= thr and min(i_s, i_o) > top:
                        top, arg = min(i_s, i_o), p
                if arg >= 0 and (arg not in best or top > best[arg][0]):
                    best[arg] = (top, k)
            for p, (_, k) in best.items():
                matched[b, t, p] = k
    return matched


@given(st.integers(0, 10_000))
def test_one_to_one_assignment_matches_the_loop_reference(seed):
    det, gt = scene(seed, P=6)
    a = assign_relations(**det, **gt, one_to_one=True)
    assert torch.equal(a.matched, one_to_one_loop(det, gt))
    # every annotated pair labels at most one detection of its frame
    m = a.matched
    for g in range(gt["gt_mask"].shape[-1]):
        assert ((m == g).sum(-1) <= 1).all()
    assert not (a.positive & ~assign_relations(**det, **gt).positive).any()


def test_one_to_one_makes_duplicates_negatives_that_the_filter_then_drops():
    s = torch.tensor([[[0.0, 0, 10, 10]] * 2])
    o = torch.tensor([[[20.0, 0, 30, 10], [21, 0, 31, 10]]])  # a detection and its duplicate
    labels, mask = torch.tensor([[4, 4]]), torch.ones(1, 2, dtype=torch.bool)
    gt = (s[:, :1], o[:, :1] + 0.5, labels[:, :1], mask[:, :1])
    many = assign_relations(s, o, labels, mask, *gt)
    one = assign_relations(s, o, labels, mask, *gt, one_to_one=True)
    assert many.positive.tolist() == [[True, True]] and one.positive.tolist() == [[True, False]]
    kept = filter_negatives(one.negative, one.positive, s, o, labels)
    assert not kept.any()  # the duplicate shares the class and overlaps the positive
    other = assign_relations(s, o, labels + 1, mask, *gt, same_class=False)
    assert other.positive.all()  # STTran's assignment does not look at the detected class


@pytest.mark.parametrize("per", ["video", "frame"])
@pytest.mark.parametrize("shape", [(0, 3, 4), (2, 0, 4), (2, 3, 0)])
def test_cap_on_empty_grids(per, shape):
    neg = torch.ones(shape, dtype=torch.bool)
    assert cap_negatives(neg, neg, per=per).shape == shape
