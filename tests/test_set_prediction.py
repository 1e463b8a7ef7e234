"""Set-prediction losses against a loop over the matches, written out from DETR's definitions,
and the helpers one-stage models share (frame targets, reference stacks)."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from dsgg_layers import (
    PairHungarianMatcher,
    box_convert,
    generalized_box_iou,
    match_index,
    matched_box_losses,
    matched_class_loss,
    query_targets,
    reference_frames,
    stack_references,
)
from dsgg_layers.data import SyntheticActionGenome, SyntheticConfig, VideoGraph


def _outputs(g, N=3, Q=4, C=5, G=2):
    box = lambda *s: torch.cat((torch.rand(*s, 2, generator=g) * 0.5 + 0.25,  # noqa: E731
                                torch.rand(*s, 2, generator=g) * 0.2 + 0.05), -1)  # fmt: skip
    out = {"object_logits": torch.randn(N, Q, C, generator=g),
           "subject_boxes": box(N, Q), "object_boxes": box(N, Q)}  # fmt: skip
    tgt = {"object_labels": torch.randint(0, C, (N, G), generator=g),
           "subject_boxes": box(N, G), "object_boxes": box(N, G)}  # fmt: skip
    return out, tgt


def _matches(g, N=3, Q=4, G=2):
    out = []
    for _ in range(N):
        k = int(torch.randint(0, G + 1, (), generator=g))
        out.append((torch.randperm(Q, generator=g)[:k], torch.randperm(G, generator=g)[:k]))
    return out


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**16))
def test_losses_equal_a_loop_over_the_matches(seed):
    g = torch.Generator().manual_seed(seed)
    out, tgt = _outputs(g)
    matches = _matches(g)
    idx = match_index(matches)
    n = max(sum(len(q) for q, _ in matches), 1)
    l1 = giou = focal = 0.0
    onehot = torch.zeros_like(out["object_logits"])
    cls = torch.zeros(out["object_logits"].shape[:2], dtype=torch.long)
    for f, (qs, ts) in enumerate(matches):  # the reference: one match at a time
        for q, t in zip(qs.tolist(), ts.tolist(), strict=True):
            for key in ("subject_boxes", "object_boxes"):
                p, y = out[key][f, q], tgt[key][f, t]
                l1 += float((p - y).abs().sum())
                xy = box_convert(torch.stack((p, y)), "cxcywh", "xyxy")
                giou += 1 - float(generalized_box_iou(xy[:1], xy[1:]))
            onehot[f, q, tgt["object_labels"][f, t]] = 1
    p = out["object_logits"].sigmoid()
    ce = F.binary_cross_entropy_with_logits(out["object_logits"], onehot, reduction="none")
    p_t = p * onehot + (1 - p) * (1 - onehot)
    focal = float(((0.25 * onehot + 0.75 * (1 - onehot)) * (1 - p_t) ** 2 * ce).sum())
    got_l1, got_giou = matched_box_losses(out, tgt, idx)
    assert float(got_l1) == pytest.approx(l1 / n, rel=1e-5, abs=1e-6)
    assert float(got_giou) == pytest.approx(giou / n, rel=1e-5, abs=1e-6)
    got = matched_class_loss(out["object_logits"], tgt["object_labels"], idx)
    assert float(got) == pytest.approx(focal / n, rel=1e-5)
    labels = tgt["object_labels"].clamp(max=3)  # 4 classes and the no-object column (4)
    cls = torch.full_like(cls, 4)
    for f, (qs, ts) in enumerate(matches):
        for q, t in zip(qs.tolist(), ts.tolist(), strict=True):
            cls[f, q] = labels[f, t]
    want = F.cross_entropy(out["object_logits"].flatten(0, 1), cls.flatten())
    got = matched_class_loss(out["object_logits"], labels, idx, loss="ce")
    torch.testing.assert_close(got, want)


def test_query_targets_place_values_at_their_queries_only():
    g = torch.Generator().manual_seed(0)
    matches = _matches(g)
    idx = match_index(matches)
    values = torch.rand(3, 2, 6, generator=g) > 0.5
    out = query_targets(values, idx, 4, fill=False)
    for f, (qs, ts) in enumerate(matches):
        for q in range(4):
            hit = (qs == q).nonzero()
            want = values[f, ts[hit[0, 0]]] if len(hit) else torch.zeros(6, dtype=torch.bool)
            assert torch.equal(out[f, q], want)


def test_gradients_reach_only_matched_boxes_and_all_logits():
    g = torch.Generator().manual_seed(1)
    out, tgt = _outputs(g)
    out = {k: v.requires_grad_() for k, v in out.items()}
    idx = match_index([(torch.tensor([2]), torch.tensor([1])), (torch.tensor([]),) * 2,
                       (torch.tensor([0]), torch.tensor([0]))])  # fmt: skip
    l1, giou = matched_box_losses(out, tgt, idx)
    (l1 + giou + matched_class_loss(out["object_logits"], tgt["object_labels"], idx)).backward()
    grad = out["subject_boxes"].grad.abs().sum(-1)
    assert grad[0, 2] > 0 and grad[2, 0] > 0 and grad.sum() == grad[0, 2] + grad[2, 0]
    assert (out["object_logits"].grad.abs().sum(-1) > 0).all()  # focal: unmatched too


def test_with_no_match_at_all_the_losses_are_finite():
    out, tgt = _outputs(torch.Generator().manual_seed(2))
    idx = match_index([(torch.tensor([]), torch.tensor([]))] * 3)
    assert idx.normalizer == 1 and len(match_index([]).query) == 0
    l1, giou = matched_box_losses(out, tgt, idx)
    assert float(l1) == 0 and float(giou) == 0
    assert torch.isfinite(matched_class_loss(out["object_logits"], tgt["object_labels"], idx))


def test_errors_name_the_argument():
    out, tgt = _outputs(torch.Generator().manual_seed(3))
    idx = match_index([(torch.tensor([0]), torch.tensor([0]))] * 3)
    with pytest.raises(ValueError, match=r"matches\[0\]"):
        match_index([(torch.tensor([0, 1]), torch.tensor([0]))])
    with pytest.raises(ValueError, match="loss"):
        matched_class_loss(out["object_logits"], tgt["object_labels"], idx, loss="bce")
    with pytest.raises(TypeError, match="labels"):
        matched_class_loss(out["object_logits"], tgt["object_labels"].float(), idx)
    with pytest.raises(ValueError, match="subject_boxes"):
        matched_box_losses({**out, "subject_boxes": out["subject_boxes"][..., :3]}, tgt, idx)
    with pytest.raises(ValueError, match="keys"):
        matched_box_losses(out, tgt, idx, keys=())


def test_frame_targets_feed_the_matcher():
    videos = list(SyntheticActionGenome(SyntheticConfig(num_videos=2, seed=0), "train"))
    graph = VideoGraph.collate(videos)
    tgt = graph.frame_targets()
    frames = graph.frame_mask.nonzero()
    assert tgt["subject_boxes"].shape[:2] == (len(frames), graph.mask.shape[2])
    b, t = frames[0].tolist()
    p = int(tgt["mask"][0].nonzero()[0, 0])
    sub = graph.normalized_boxes()[0][b, t, p]
    torch.testing.assert_close(box_convert(tgt["subject_boxes"][0, p], "cxcywh", "xyxy"), sub)
    assert torch.equal(tgt["mask"], graph.mask[frames[:, 0], frames[:, 1]]
                       & graph.relations[frames[:, 0], frames[:, 1]].any(-1))  # fmt: skip
    Q = 5
    out = {"object_logits": torch.zeros(len(frames), Q, 37),
           "predicate_logits": torch.zeros(len(frames), Q, 26),
           "subject_boxes": torch.full((len(frames), Q, 4), 0.5),
           "object_boxes": torch.full((len(frames), Q, 4), 0.5)}  # fmt: skip
    idx = match_index(PairHungarianMatcher()(out, tgt))
    assert len(idx.query) == int(tgt["mask"].sum().clamp(max=Q * len(frames)))
    with pytest.raises(ValueError, match="frames"):
        graph.frame_targets(torch.zeros(3, dtype=torch.long))


def test_stack_references_gathers_the_key_frame_and_its_references():
    mask = torch.tensor([[True, True, False, True, True, True]])
    feats = torch.arange(6.0).view(1, 6, 1, 1).expand(1, 6, 2, 3)
    index, valid = reference_frames(mask, 2, 2)
    frames = mask.nonzero()
    stacked, present = stack_references(feats, frames, index, valid)
    assert stacked.shape == (5, 3, 2, 3) and present[:, 0].all()
    for n, (b, t) in enumerate(frames.tolist()):
        assert stacked[n, 0, 0, 0] == t
        for r in range(2):
            assert stacked[n, 1 + r, 0, 0] == index[b, t, r] and present[n, 1 + r] == valid[b, t, r]
    with pytest.raises(ValueError, match="index"):
        stack_references(feats, frames, index[..., :3, :], valid)


def test_matched_localization_counts_over_annotated_pairs():
    from dsgg_layers.set_prediction import MatchIndex, matched_localization

    box = torch.tensor([0.5, 0.5, 0.2, 0.2])
    shifted = torch.tensor([0.55, 0.5, 0.2, 0.2])  # IoU 0.6: found
    far = torch.tensor([0.62, 0.5, 0.2, 0.2])  # IoU 0.25: not found
    out = {
        "subject_boxes": torch.stack([box, shifted, far])[None],
        "object_boxes": torch.stack([far, box, shifted])[None],
        "object_labels": torch.tensor([[3, 5, 7]]),
    }
    tgt = {
        "subject_boxes": box.expand(1, 3, 4),
        "object_boxes": box.expand(1, 3, 4),
        "object_labels": torch.tensor([[3, 9, 7]]),
        "mask": torch.tensor([[True, True, True]]),
    }
    # queries 0 and 1 matched to targets 0 and 1; target 2 is annotated but unmatched
    idx = MatchIndex(torch.tensor([0, 0]), torch.tensor([0, 1]), torch.tensor([0, 1]))
    counts = matched_localization(out, tgt, idx)
    assert counts.tolist() == [3, 2, 1, 1]  # subjects 0, 1 found; object 1 found; class of 0
    assert counts.dtype == torch.int64
    assert matched_localization(out, tgt, idx, iou=0.2).tolist() == [3, 2, 2, 1]
    empty = MatchIndex(*(torch.zeros(0, dtype=torch.long),) * 3)
    none = {**tgt, "mask": torch.zeros(1, 3, dtype=torch.bool)}
    assert matched_localization(out, none, empty).tolist() == [0, 0, 0, 0]
    with pytest.raises(ValueError, match="iou"):
        matched_localization(out, tgt, idx, iou=0.0)
    with pytest.raises(TypeError, match="object_labels"):
        matched_localization({**out, "object_labels": out["object_labels"].float()}, tgt, idx)
