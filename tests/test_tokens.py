"""prepend_tokens / split_tokens / LearnableTokens: layout, masks, round trip, errors, compile,
and use with the encoder (tokens attend with the pairs of their frame)."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dsgg_layers import LearnableTokens, TransformerEncoderLayer, prepend_tokens, split_tokens


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), K=st.integers(1, 3), dim=st.sampled_from([-1, -2, 0]))
def test_round_trip_and_layout(seed, K, dim):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 4, 3, 5, generator=g)
    mask = torch.rand(2, 4, 3, generator=g) < 0.5
    tokens = torch.randn(K, 5, generator=g)
    y, m = prepend_tokens(x, mask, tokens, dim=dim)
    axis = dim % 3
    assert y.shape[axis] == x.shape[axis] + K and m.shape == y.shape[:-1]
    (tok, tmask), (rest, rmask) = split_tokens(y, K, dim=dim, mask=m)
    assert torch.equal(rest, x) and torch.equal(rmask, mask)
    # every group holds the same K tokens; valid where the group has any valid entry
    assert torch.equal(tok.movedim(axis, -2), tokens.expand_as(tok.movedim(axis, -2)))
    assert torch.equal(tmask, mask.any(axis, keepdim=True).expand_as(tmask))


def test_token_mask_per_group_tokens_and_module():
    x, mask = torch.randn(2, 3, 4, 8), torch.ones(2, 3, 4, dtype=torch.bool)
    y, m = prepend_tokens(
        x, mask, torch.randn(1, 8), token_mask=torch.tensor([True, False]).view(2, 1)
    )
    assert m[0, :, 0].all() and not m[1, :, 0].any()
    per_group = torch.randn(2, 3, 1, 8)  # one token a frame, different per frame
    y, _ = prepend_tokens(x, mask, per_group, dim=-1)
    assert torch.equal(y[:, :, :1], per_group)
    mod = LearnableTokens(2, 8, dim=-2)
    y, m = mod(x, mask)
    assert y.shape == (2, 5, 4, 8) and mod.no_weight_decay() == {"tokens"}
    (tok, _), (rest, _) = mod.split(y, m)
    assert torch.equal(rest, x) and tok.shape == (2, 2, 4, 8)
    assert "num_tokens=2" in repr(mod)
    before = mod.tokens.detach().clone()
    mod.reset_parameters()
    assert not torch.equal(before, mod.tokens) and mod.tokens.abs().max() <= 0.04 + 1e-6


def test_errors():
    x, mask = torch.randn(2, 3, 8), torch.ones(2, 3, dtype=torch.bool)
    with pytest.raises(ValueError, match="dim"):
        prepend_tokens(x, mask, torch.randn(1, 8), dim=2)
    with pytest.raises(ValueError, match="tokens"):
        prepend_tokens(x, mask, torch.randn(1, 7))
    with pytest.raises(ValueError, match="tokens"):
        prepend_tokens(x, mask, torch.randn(5, 1, 8))
    with pytest.raises(TypeError, match="mask"):
        prepend_tokens(x, mask.float(), torch.randn(1, 8))
    with pytest.raises(ValueError, match="num_tokens"):
        split_tokens(x, 4)
    with pytest.raises(ValueError, match="num_tokens"):
        LearnableTokens(0, 8)


def test_gradients_garbage_and_encoder_use():
    torch.manual_seed(0)
    layer = TransformerEncoderLayer(8, 2, 16, dropout=0.0).double()
    tokens = LearnableTokens(1, 8).double()
    x = torch.randn(2, 3, 4, 8, dtype=torch.float64)
    mask = torch.rand(2, 3, 4) > 0.4
    mask[1, 2] = False  # a frame without pairs: no token either

    def run(fill):
        xx = x.masked_fill(~mask.unsqueeze(-1), fill).requires_grad_()
        y, m = tokens(xx, mask)
        out = layer(y, m)
        (tok, _), _ = split_tokens(out, 1, mask=m)
        tok.sum().backward()
        return tok.detach(), xx.grad

    ref, g0 = run(0.0)
    assert (ref[1, 2] == 0).all()  # the empty frame's token is padding
    out, g = run(float("nan"))
    assert torch.equal(out, ref) and torch.equal(g, g0) and (g[~mask] == 0).all()
    leaf = tokens.tokens.detach().clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda t: prepend_tokens(x, mask, t)[0], (leaf,))


def test_empty_and_compile():
    for shape in ((0, 3), (2, 0)):
        y, m = prepend_tokens(
            torch.randn(*shape, 4), torch.ones(shape, dtype=torch.bool), torch.randn(1, 4)
        )
        assert (y.shape == (shape[0], shape[1] + 1, 4) and not m[:, 0].any()) or shape[1] != 0
    x, mask = torch.randn(2, 3, 4, 8), torch.rand(2, 3, 4) > 0.5
    mod = LearnableTokens(2, 8)
    compiled = torch.compile(mod, fullgraph=True)
    for a, b in zip(compiled(x, mask), mod(x, mask), strict=True):
        assert torch.equal(a, b)
