"""previous_frame_index / gather_previous: loop reference, hand values, garbage, gradients."""

import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dsgg_layers import gather_previous, previous_frame_index


def loop_previous(mask):
    *lead, T, P = mask.shape
    out = torch.full(mask.shape, -1, dtype=torch.long)
    for idx in itertools.product(*map(range, lead)):
        for p in range(P):
            last = -1
            for t in range(T):
                out[(*idx, t, p)] = last
                if mask[(*idx, t, p)]:
                    last = t
    return out


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), p=st.floats(0.0, 1.0), T=st.integers(0, 6))
def test_previous_index_matches_loop(seed, p, T):
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(2, T, 3, generator=g) < p
    assert torch.equal(previous_frame_index(mask), loop_previous(mask))


def test_gather_previous_hand_values():
    x = torch.arange(8.0).view(4, 2, 1)  # (T=4, P=2, 1)
    mask = torch.tensor([[True, False], [False, True], [True, True], [True, False]])
    prev, has = gather_previous(x, mask)
    assert has.tolist() == [[False, False], [False, False], [True, True], [True, False]]
    assert prev.squeeze(-1).tolist() == [[0, 0], [0, 0], [0, 3], [4, 0]]


def test_errors():
    with pytest.raises(TypeError, match="mask"):
        previous_frame_index(torch.ones(3, 2))
    with pytest.raises(ValueError, match="mask"):
        previous_frame_index(torch.ones(3, dtype=torch.bool))
    with pytest.raises(ValueError, match="mask"):
        gather_previous(torch.randn(2, 3, 4, 5), torch.ones(2, 3, 3, dtype=torch.bool))


def test_garbage_padding_gradients_and_gradcheck():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 5, 3, 4, generator=g, dtype=torch.float64)
    mask = torch.rand(2, 5, 3, generator=g) < 0.6
    ref, has = gather_previous(x, mask)
    for value in (float("nan"), float("inf"), 3e38):
        bad = x.masked_fill(~mask.unsqueeze(-1), value).requires_grad_()
        out, has2 = gather_previous(bad, mask)
        assert torch.equal(out, ref) and torch.equal(has, has2)
        out.sum().backward()
        assert (bad.grad[~mask] == 0).all() and torch.isfinite(bad.grad).all()
    leaf = x.clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda t: gather_previous(t, mask)[0], (leaf,))


def test_empty_one_frame_batch_invariance_compile():
    for shape in ((0, 3, 2), (2, 0, 2), (2, 3, 0)):
        prev, has = gather_previous(torch.randn(*shape, 4), torch.ones(shape, dtype=torch.bool))
        assert prev.shape == (*shape, 4) and not has.any()
    prev, has = gather_previous(torch.randn(2, 1, 3, 4), torch.ones(2, 1, 3, dtype=torch.bool))
    assert (prev == 0).all() and not has.any()  # one-frame videos: nothing to look back to
    x, mask = torch.randn(4, 6, 3, 2), torch.rand(4, 6, 3) > 0.3
    whole = gather_previous(x, mask)[0]
    assert torch.equal(gather_previous(x[2:], mask[2:])[0], whole[2:])
    compiled = torch.compile(gather_previous, fullgraph=True)
    assert torch.equal(compiled(x, mask)[0], whole)


def test_gather_frames_matches_indexing():
    from dsgg_layers import gather_frames

    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 5, 3, 4, generator=g)
    index = torch.randint(0, 5, (2, 5, 3), generator=g)
    out = gather_frames(x, index)
    for b, t, p in itertools.product(range(2), range(5), range(3)):
        assert torch.equal(out[b, t, p], x[b, index[b, t, p], p])
