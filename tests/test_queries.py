"""ARN / OED query scheme: paired query positions and the temporal memory."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dsgg_layers import AnchorBoxes, PairQueries, TemporalMemory, refine_boxes
from dsgg_layers.positions import sinusoidal_positions
from dsgg_layers.queries import reference_frames


def test_pair_queries_follow_eq_1_and_4():
    q = PairQueries(5, 8, num_branches=3)
    pos = q()
    torch.testing.assert_close(pos["subject_pos"], q.subject_pos.weight)
    torch.testing.assert_close(pos["object_pos"], q.object_pos.weight)
    for i in range(3):  # e^o + e^pred_i
        torch.testing.assert_close(pos["predicate_pos"][i],
                                   q.object_pos.weight + q.predicate_embed.weight[i])  # fmt: skip
    sum(v.sum() for v in pos.values()).backward()
    assert all(p.grad is not None for p in q.parameters())
    names = {n for m in q.modules() if hasattr(m, "no_weight_decay") and m is not q
             for n in m.no_weight_decay()}  # fmt: skip
    assert names == {"weight"}  # every table is a learned position table: no decay
    assert "num_queries=5" in repr(q)


def test_temporal_memory_layout_positions_and_mask():
    tm = TemporalMemory(3, 4)
    feats = torch.randn(2, 3, 5, 4)
    spatial = torch.randn(5, 4)
    frame_mask = torch.tensor([[True, False, True], [True, True, True]])
    memory, pos, mask = tm(feats, spatial_pos=spatial, frame_mask=frame_mask)
    assert memory.shape == pos.shape == (2, 15, 4) and mask.shape == (2, 15)
    for f in range(3):  # token f * S + s is frame slot f, position s
        torch.testing.assert_close(memory[:, f * 5 : (f + 1) * 5], feats[:, f])
        torch.testing.assert_close(pos[0, f * 5 + 2], spatial[2] + tm.frame_encoding.weight[f])
        assert mask[0, f * 5 : (f + 1) * 5].tolist() == [bool(frame_mask[0, f])] * 5
    m2, _, k2 = tm(feats)
    assert k2.all() and torch.equal(m2, memory)
    compiled = torch.compile(lambda x: tm(x, frame_mask=frame_mask), fullgraph=True)
    for a, b in zip(compiled(feats), tm(feats, frame_mask=frame_mask), strict=True):
        torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match=r"features: expected shape \(\.\.\., 3, S, 4\)"):
        tm(torch.randn(2, 2, 5, 4))
    with pytest.raises(ValueError, match=r"frame_mask: expected shape \(2, 3\)"):
        tm(feats, frame_mask=torch.ones(2, 2, dtype=torch.bool))


def loop_references(mask, R, W, t):
    """The nearest existing frames within W of t, previous before next at equal distance."""
    T = len(mask)
    order = [t + s * d for d in range(1, W + 1) for s in (-1, 1)]
    return [c for c in order if 0 <= c < T and mask[c]][:R]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.booleans(), min_size=1, max_size=12), st.integers(1, 4), st.integers(1, 5))
def test_nearest_references_match_a_loop(mask, R, W):
    m = torch.tensor(mask)
    index, valid = reference_frames(m, R, W)
    assert index.shape == valid.shape == (len(mask), R)
    for t in range(len(mask)):
        want = loop_references(mask, R, W, t)
        got = index[t][valid[t]].tolist()
        assert got == want
        assert (index[t][~valid[t]] == t).all()


def test_random_references_stay_in_the_window_and_are_seeded():
    mask = torch.rand(3, 20, generator=torch.Generator().manual_seed(0)) > 0.3
    a, va = reference_frames(mask, 2, 4, mode="random", generator=torch.Generator().manual_seed(1))
    b, vb = reference_frames(mask, 2, 4, mode="random", generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and torch.equal(va, vb)
    t = torch.arange(20)[:, None]
    dist = (a - t).abs()
    assert ((dist >= 1) & (dist <= 4))[va].all()
    assert torch.gather(mask, 1, a.flatten(1)).view_as(a)[va].all()  # only existing frames
    assert (a[..., 0] != a[..., 1])[va.all(-1)].all()  # two different references
    with pytest.raises(ValueError, match="mode: expected one of"):
        reference_frames(mask, mode="all")
    with pytest.raises(TypeError, match="frame_mask"):
        reference_frames(mask.float())


# ---------------------------------------------------------------- anchor boxes and refinement


def test_refine_boxes_hand_cases_and_identity():
    box = torch.tensor([[0.5, 0.25, 0.2, 0.8]])
    torch.testing.assert_close(refine_boxes(box, torch.zeros(1, 4)), box)
    # logit(0.25) = -log 3; + log 3 -> 0.5
    delta = torch.tensor([[0.0, math.log(3.0), 0.0, 0.0]])
    torch.testing.assert_close(refine_boxes(box, delta)[0, 1], torch.tensor(0.5))
    out = refine_boxes(torch.tensor([[0.0, 1.0, 0.5, 0.5]]), torch.zeros(1, 4))  # clamped
    assert torch.isfinite(out).all() and 0 < out[0, 0] < 1e-4 and out[0, 1] > 1 - 1e-4
    assert refine_boxes(torch.zeros(0, 4), torch.zeros(0, 4)).shape == (0, 4)
    with pytest.raises(ValueError, match="delta"):
        refine_boxes(box, torch.zeros(1, 3))
    with pytest.raises(TypeError, match="boxes"):
        refine_boxes(box.long(), torch.zeros(1, 4))


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**16))
def test_refine_boxes_composes_in_logit_space(seed):
    g = torch.Generator().manual_seed(seed)
    box = torch.rand(5, 4, generator=g) * 0.9 + 0.05
    d1, d2 = torch.randn(5, 4, generator=g), torch.randn(5, 4, generator=g)
    once = refine_boxes(box, d1 + d2)
    twice = refine_boxes(refine_boxes(box, d1), d2)
    torch.testing.assert_close(once, twice, atol=1e-5, rtol=1e-4)
    assert ((once > 0) & (once < 1)).all()
    # monotone: a positive offset moves every coordinate up
    assert (refine_boxes(box, d1.abs() + 0.1) > box).all()


def test_refine_boxes_gradcheck_and_fp16():
    box = (torch.rand(3, 4, dtype=torch.float64) * 0.8 + 0.1).requires_grad_()
    delta = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(refine_boxes, (box, delta))
    half = refine_boxes(box.detach().half(), delta.detach().half())
    assert half.dtype == torch.float16 and torch.isfinite(half).all()


def test_anchor_boxes_init_position_and_errors():
    torch.manual_seed(0)
    a = AnchorBoxes(64, 32, size=0.25)
    boxes = a()
    assert boxes.shape == (64, 4)
    assert ((boxes[:, :2] >= 0.05 - 1e-6) & (boxes[:, :2] <= 0.95 + 1e-6)).all()
    torch.testing.assert_close(boxes[:, 2:], torch.full((64, 2), 0.25))
    pos = a.position(boxes)
    assert pos.shape == (64, 32)
    # the position depends on the box only: the same box gives the same embedding, batched
    twice = a.position(torch.stack([boxes, boxes]))
    torch.testing.assert_close(twice[0], twice[1])
    torch.testing.assert_close(twice[1], pos)
    # the encoding before the MLP: each coordinate's sinusoids, D / 4 wide, scaled by `scale`
    first = a.head[0]
    x = torch.tensor([[0.1, 0.2, 0.3, 0.4]])
    sine = torch.cat([sinusoidal_positions(x[0, i] * 100.0, 8)[None] for i in range(4)], -1)
    torch.testing.assert_close(first(sine), first(
        sinusoidal_positions(x * 100.0, 8).flatten(-2)))  # fmt: skip
    assert a.no_weight_decay() == {"anchors"} and "num_anchors=64" in repr(a)
    (pos.sum() + boxes.sum()).backward()
    assert a.anchors.grad is not None and a.head[0].weight.grad is not None
    assert a.position(torch.zeros(0, 4)).shape == (0, 32)
    with pytest.raises(ValueError, match="d_model"):
        AnchorBoxes(4, 12)
    with pytest.raises(ValueError, match="size"):
        AnchorBoxes(4, 16, size=1.0)
    with pytest.raises(ValueError, match="boxes"):
        a.position(torch.zeros(3, 2))
    a.reset_parameters()
    torch.testing.assert_close(a()[:, 2:], torch.full((64, 2), 0.25))


def test_anchor_position_is_nearer_for_nearer_boxes_at_init():
    """Before training, the embedding of two nearby boxes is nearer than that of far ones
    (a property of the sinusoids the MLP keeps at random initialisation, on average)."""
    torch.manual_seed(0)
    a = AnchorBoxes(4, 64)
    base = torch.tensor([0.5, 0.5, 0.2, 0.2])
    near = base + torch.tensor([0.01, 0.0, 0.0, 0.0])
    far = base + torch.tensor([0.4, 0.0, 0.0, 0.0])
    with torch.no_grad():
        e = a.position(torch.stack([base, near, far]))
    assert (e[0] - e[1]).norm() < (e[0] - e[2]).norm()
