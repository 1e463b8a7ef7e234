"""ARN / OED query scheme: paired query positions and the temporal memory."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dsgg_layers import PairQueries, TemporalMemory
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
