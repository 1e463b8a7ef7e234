"""masked_pool / MaskedPooling: values vs a loop reference, empty groups, garbage padding,
gradients, compile."""

import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dsgg_layers import MaskedPooling, masked_pool

MODES = ("mean", "max", "first")


def loop_pool(x, mask, dim, mode):
    """One group at a time, the definition written out."""
    xm = x.movedim(dim % mask.dim(), -2)  # (..., N, D)
    mm = mask.movedim(dim % mask.dim(), -1)
    out = torch.zeros(*xm.shape[:-2], xm.shape[-1], dtype=x.dtype)
    for idx in itertools.product(*map(range, mm.shape[:-1])):
        rows = xm[idx][mm[idx]]
        if len(rows) == 0:
            continue
        out[idx] = {"mean": rows.mean(0), "max": rows.amax(0), "first": rows[0]}[mode]
    return out


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), p=st.floats(0.0, 1.0), dim=st.sampled_from([-1, -2, 0]),
       mode=st.sampled_from(MODES))  # fmt: skip
def test_matches_loop_reference(seed, p, dim, mode):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(3, 4, 5, 6, generator=g, dtype=torch.float64)
    mask = torch.rand(3, 4, 5, generator=g) < p
    torch.testing.assert_close(
        masked_pool(x, mask, dim=dim, mode=mode), loop_pool(x, mask, dim, mode)
    )


def test_hand_values_and_module():
    x = torch.tensor([[[1.0, -1], [3, 5], [100, 100]]])  # (1, P=3, 2)
    mask = torch.tensor([[False, True, True]])
    assert masked_pool(x, mask, mode="mean").tolist() == [[51.5, 52.5]]
    assert masked_pool(x, mask, mode="max").tolist() == [[100.0, 100.0]]
    assert masked_pool(x, mask, mode="first").tolist() == [[3.0, 5.0]]
    pool = MaskedPooling(dim=-1, mode="first")
    assert torch.equal(pool(x, mask), masked_pool(x, mask, mode="first"))
    assert "first" in repr(pool)


def test_errors():
    x, mask = torch.randn(2, 3, 4), torch.ones(2, 3, dtype=torch.bool)
    with pytest.raises(ValueError, match="mode"):
        masked_pool(x, mask, mode="median")
    with pytest.raises(ValueError, match="dim"):
        masked_pool(x, mask, dim=2)
    with pytest.raises(TypeError, match="mask"):
        masked_pool(x, mask.float())
    with pytest.raises(ValueError, match="mask"):
        masked_pool(x, mask[:, :2])
    with pytest.raises(TypeError, match="x"):
        masked_pool(x.long(), mask)
    with pytest.raises(ValueError, match="mode"):
        MaskedPooling(mode="sum")


@pytest.mark.parametrize("mode", MODES)
def test_empty_groups_garbage_padding_and_gradients(mode):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 4, 3, generator=g, dtype=torch.float64)
    mask = torch.rand(2, 4, generator=g) < 0.5
    mask[1] = False  # an empty group
    mask[0, 1] = True
    ref = masked_pool(x, mask, mode=mode)
    assert (ref[1] == 0).all()
    for value in (float("nan"), float("inf"), float("-inf"), 3e38):
        bad = x.masked_fill(~mask.unsqueeze(-1), value).requires_grad_()
        out = masked_pool(bad, mask, mode=mode)
        assert torch.equal(out, ref)
        out.sum().backward()
        assert (bad.grad[~mask] == 0).all() and torch.isfinite(bad.grad).all()
    leaf = x.clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda t: masked_pool(t, mask, mode=mode), (leaf,))


@pytest.mark.parametrize("mode", MODES)
def test_empty_inputs_and_batch_invariance(mode):
    for shape in ((0, 3, 4), (2, 0, 4)):
        out = masked_pool(torch.randn(shape), torch.ones(shape[:-1], dtype=torch.bool), mode=mode)
        assert out.shape == (shape[0], 4) and (out == 0).all()
    x, mask = torch.randn(4, 5, 3), torch.rand(4, 5) > 0.4
    whole = masked_pool(x, mask, mode=mode)
    torch.testing.assert_close(
        masked_pool(x[1:3], mask[1:3], mode=mode), whole[1:3], rtol=0, atol=0
    )


def test_fp16_and_compile():
    x, mask = torch.randn(2, 5, 3), torch.rand(2, 5) > 0.4
    assert torch.isfinite(masked_pool(x.half(), mask, mode="mean")).all()
    for mode in MODES:
        compiled = torch.compile(
            lambda a, m, mode=mode: masked_pool(a, m, mode=mode), fullgraph=True
        )
        torch.testing.assert_close(compiled(x, mask), masked_pool(x, mask, mode=mode))
