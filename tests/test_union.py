"""UASAN blocks: VisualRefiner, SemanticAwareContextEncoder, UnionRelationDecoder,
UnionRelationPredictor, feature_distillation_loss."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dsgg_layers import (
    SemanticAwareContextEncoder,
    UnionAwareRelationHead,
    UnionRelationDecoder,
    UnionRelationPredictor,
    VisualRefiner,
    feature_distillation_loss,
)


def _attn(m, q, k, v, q_pos=None, k_pos=None, key_mask=None):
    """Multi-head attention written out from the module's projection weights."""
    H, d = m.num_heads, m.head_dim
    qq = m.q_proj(q if q_pos is None else q + q_pos)
    kk = m.k_proj(k if k_pos is None else k + k_pos)
    vv = m.v_proj(v)

    def heads(x):
        return x.unflatten(-1, (H, d)).transpose(-3, -2)

    logits = heads(qq) @ heads(kk).transpose(-1, -2) / math.sqrt(d)
    if key_mask is not None:
        logits = logits.masked_fill(~key_mask[..., None, None, :], -math.inf)
    w = logits.softmax(-1)
    return m.out_proj((w @ heads(vv)).transpose(-3, -2).flatten(-2))


def _data(seed=0, lead=(2, 5), n=(3, 3, 3, 2), d=8, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(*lead, k, d, generator=g, dtype=dtype) for k in n]


# --------------------------------------------------------------------------- VisualRefiner


def test_refiner_equals_the_two_attentions_written_out():
    torch.manual_seed(0)
    m = VisualRefiner(8, num_tokens=4, nhead=2).eval()
    feats = torch.randn(3, 6, 8)
    mask = torch.tensor([[True] * 6, [True, True, False, True, False, False], [True] + [False] * 5])
    V = _attn(m.concepts.attn, m.tokens, m.tokens, m.tokens)
    expected = _attn(m.read.attn, V.expand(3, 4, 8), feats, feats, key_mask=mask)
    torch.testing.assert_close(m(feats, mask), expected)


def test_refiner_padding_never_leaks_and_empty_rows_are_zero():
    torch.manual_seed(0)
    m = VisualRefiner(8, num_tokens=4, nhead=2)
    feats = torch.randn(3, 5, 8)
    mask = torch.tensor([[True, True, False, False, True], [False] * 5, [True] * 5])
    garbage = feats.masked_fill(~mask[..., None], math.nan).requires_grad_()
    clean = m(feats, mask)
    out = m(garbage, mask)
    torch.testing.assert_close(out, clean)
    assert (out[1] == 0).all()
    out.sum().backward()
    assert torch.isfinite(garbage.grad).all() and (garbage.grad[~mask] == 0).all()
    # batch invariance: a trajectory's tokens do not depend on the others
    torch.testing.assert_close(m(feats[2:], mask[2:]), clean[2:])
    assert m(torch.zeros(0, 5, 8)).shape == (0, 4, 8)
    assert m.no_weight_decay() == {"tokens"} and "num_tokens=4" in repr(m)


def test_refiner_gradcheck_and_errors():
    torch.manual_seed(0)
    m = VisualRefiner(4, num_tokens=2, nhead=2).double()
    x = torch.randn(2, 3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(m, (x,))
    with pytest.raises(ValueError, match="features"):
        m(torch.randn(2, 3, 5, dtype=torch.float64))
    with pytest.raises(ValueError, match="mask"):
        m(x, torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="num_tokens"):
        VisualRefiner(4, num_tokens=0)


# ------------------------------------------------------------- SemanticAwareContextEncoder


@pytest.mark.parametrize("residual", [True, False])
def test_relation_token_goes_to_queries_and_keys_only(residual):
    torch.manual_seed(0)
    enc = SemanticAwareContextEncoder(8, nhead=2, dim_feedforward=16, residual=residual).eval()
    with torch.no_grad():
        enc.relation_token.normal_()  # large enough to matter
    parts = _data()
    x = torch.cat(parts, -2)
    f = enc.relation_token
    if residual:
        layer = enc.encoder.layers[0]
        a = _attn(layer.self_attn, x, x, x, f, f)
        h = layer.norm1(x + a)
        expected = layer.norm2(h + layer.linear2(layer.activation(layer.linear1(h))))
    else:
        expected = enc.layer.norm2(enc.layer.mlp(_attn(enc.layer.attn, x, x, x, f, f)))
    out = enc(*parts)
    torch.testing.assert_close(out.encoded, expected)
    torch.testing.assert_close(out.union, expected[..., 6:9, :])
    # the token in the values too would give another output
    if not residual:
        wrong = enc.layer.norm2(enc.layer.mlp(_attn(enc.layer.attn, x + f, x + f, x + f)))
        assert not torch.allclose(wrong, expected, atol=1e-4)


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 1000), st.booleans())
def test_encoder_padding_and_batch_invariance(seed, residual):
    torch.manual_seed(seed)
    enc = SemanticAwareContextEncoder(8, nhead=2, dim_feedforward=16, residual=residual).eval()
    parts = _data(seed)
    mask = torch.rand(2, 5, generator=torch.Generator().manual_seed(seed)) > 0.4
    clean = enc(*parts, mask=mask).encoded
    garbage = [p.masked_fill(~mask[..., None, None], math.nan) for p in parts]
    out = enc(*garbage, mask=mask).encoded
    torch.testing.assert_close(out[mask], clean[mask])
    assert (out[~mask] == 0).all()
    # one pair alone gives what it gives among others
    alone = enc(*(p[1:, 2:3] for p in parts)).encoded
    torch.testing.assert_close(alone[0, 0], enc(*parts).encoded[1, 2], rtol=1e-5, atol=1e-5)


def test_encoder_gradients_compile_and_errors():
    torch.manual_seed(0)
    enc = SemanticAwareContextEncoder(4, nhead=2, dim_feedforward=8).double()
    parts = [p.requires_grad_() for p in _data(0, (2,), (1, 1, 2, 1), 4, torch.float64)]
    assert torch.autograd.gradcheck(lambda *p: enc(*p).encoded, parts)
    for residual in (True, False):
        for train in (False, True):
            m = SemanticAwareContextEncoder(8, nhead=2, dim_feedforward=16, residual=residual)
            m.train(train)
            p, mask = _data(1), torch.tensor([[True, False, True, True, False]] * 2)
            torch._dynamo.reset()
            eager = m(*p, mask=mask).encoded
            compiled = torch.compile(lambda *a, m=m, k=mask: m(*a, mask=k).encoded, fullgraph=True)
            torch.testing.assert_close(compiled(*p), eager, rtol=1e-4, atol=1e-5)
    m = SemanticAwareContextEncoder(8, nhead=2, dim_feedforward=16)
    p = _data()
    with pytest.raises(ValueError, match=r"motion: expected the leading dims \(2, 5\)"):
        m(*p[:3], torch.randn(2, 4, 2, 8))
    with pytest.raises(ValueError, match="union"):
        m(p[0], p[1], torch.randn(2, 5, 3, 7), p[3])
    with pytest.raises(ValueError, match="mask"):
        m(*p, mask=torch.ones(2, 4, dtype=torch.bool))
    assert m.no_weight_decay() == {"relation_token"} and "residual=True" in repr(m)


# -------------------------------------------------------------- decoder and predictor


def test_decoder_equals_eq_7_8_and_takes_a_shared_query():
    torch.manual_seed(0)
    dec = UnionRelationDecoder(8, nhead=2, dim_feedforward=16).eval()
    enc = torch.randn(2, 5, 11, 8)
    mask = torch.rand(2, 5, 11) > 0.3
    mask[0, 0] = False  # a pair with no token
    t = _attn(dec.layer.attn, dec.relation_token.expand(2, 5, 1, 8), enc, enc, key_mask=mask)
    t = t.squeeze(-2)
    expected = dec.layer.norm2(t + dec.layer.mlp(t))
    out = dec(enc, mask)
    torch.testing.assert_close(out[mask.any(-1)], expected[mask.any(-1)])
    assert (out[0, 0] == 0).all()
    q = torch.randn(8)
    t2 = _attn(dec.layer.attn, q.expand(2, 5, 1, 8), enc, enc).squeeze(-2)
    torch.testing.assert_close(dec(enc, query=q), dec.layer.norm2(t2 + dec.layer.mlp(t2)))
    with pytest.raises(ValueError, match="query"):
        dec(enc, query=torch.randn(3, 8))
    with pytest.raises(ValueError, match="encoded"):
        dec(torch.randn(2, 5, 11, 7))
    dd = UnionRelationDecoder(4, nhead=2, dim_feedforward=8).double()
    x = torch.randn(2, 3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(dd, (x,))


def test_predictor_mean_pools_each_term_and_zeroes_padding():
    torch.manual_seed(0)
    pred = UnionRelationPredictor(8, hidden=16, out_dim=6)
    dec, eu, u, mo = (
        torch.randn(4, 8),
        torch.randn(4, 3, 8),
        torch.randn(4, 3, 8),
        torch.randn(4, 2, 8),
    )
    expected = pred.norm(pred.mlp(dec + eu.mean(-2) + u.mean(-2) + mo.mean(-2)))
    torch.testing.assert_close(pred(dec, eu, u, mo), expected)
    mask = torch.tensor([True, False, True, False])
    bad = [x.clone() for x in (dec, eu, u, mo)]
    for x in bad:
        x[~mask] = math.nan
    out = pred(*bad, mask=mask)
    torch.testing.assert_close(out[mask], expected[mask])
    assert (out[~mask] == 0).all()
    with pytest.raises(ValueError, match="motion"):
        pred(dec, eu, u, torch.randn(3, 2, 8))
    assert "out_dim=6" in repr(pred)
    # no motion tokens, no union token: those terms add 0 (not NaN), gradients finite
    d = dec.clone().requires_grad_()
    none = pred(d, torch.zeros(4, 0, 8), torch.zeros(4, 0, 8), torch.zeros(4, 0, 8))
    torch.testing.assert_close(none, pred.norm(pred.mlp(dec)))
    none.sum().backward()
    assert torch.isfinite(d.grad).all()
    no_motion = pred(dec, eu, u, torch.zeros(4, 0, 8))
    torch.testing.assert_close(no_motion, pred.norm(pred.mlp(dec + eu.mean(-2) + u.mean(-2))))


# ---------------------------------------------------------------------- distillation


def test_feature_distillation_loss_norms_mask_and_detached_teacher():
    s = torch.zeros(3, 2, 2, requires_grad=True)
    t = torch.tensor([3.0, 4.0]).expand(3, 2, 2).clone().requires_grad_()
    assert float(feature_distillation_loss(s, t).detach()) == pytest.approx(5.0)
    assert float(feature_distillation_loss(s, t, norm="mse").detach()) == pytest.approx(12.5)
    assert float(feature_distillation_loss(s, t, norm="l1").detach()) == pytest.approx(3.5)
    t2 = t.detach().clone()
    t2[1] = math.nan  # a padded trajectory
    mask = torch.tensor([True, False, True])
    loss = feature_distillation_loss(s, t2, mask)
    assert float(loss.detach()) == pytest.approx(5.0)
    loss.backward()
    assert torch.isfinite(s.grad).all() and (s.grad[1] == 0).all()
    feature_distillation_loss(s, t).backward()
    assert t.grad is None  # the teacher is frozen
    same = feature_distillation_loss(t.detach(), t.detach())  # zero distance: finite gradient
    assert float(same) == 0.0
    x = t.detach().clone().requires_grad_()
    feature_distillation_loss(x, t.detach()).backward()
    assert torch.isfinite(x.grad).all()
    assert feature_distillation_loss(s, t, reduction="none").shape == (3,)
    with pytest.raises(ValueError, match="teacher"):
        feature_distillation_loss(s, torch.zeros(3, 2, 3))
    with pytest.raises(ValueError, match="norm"):
        feature_distillation_loss(s, t, norm="cos")
    for norm in ("l2", "mse", "l1"):  # no tokens, or no channels: 0 with a finite gradient
        for shape in ((3, 0, 2), (3, 2, 0)):
            e = torch.zeros(shape, requires_grad=True)
            loss = feature_distillation_loss(e, torch.zeros(shape), norm=norm)
            assert float(loss) == 0.0, (norm, shape)
            loss.backward()
            assert torch.isfinite(e.grad).all()


@pytest.mark.parametrize("train", [False, True])
def test_refiner_decoder_predictor_compile_equals_eager(train):
    torch.manual_seed(0)
    refiner = VisualRefiner(8, num_tokens=3, nhead=2).train(train)
    decoder = UnionRelationDecoder(8, nhead=2, dim_feedforward=16).train(train)
    predictor = UnionRelationPredictor(8).train(train)
    feats = torch.randn(4, 6, 8)
    mask = torch.rand(4, 6) > 0.3
    pair = mask.any(-1)

    def run(f, m, p):
        tokens = refiner(f, m)
        dec = decoder(tokens, m[:, :3])
        return predictor(dec, tokens, tokens, tokens[:, :2], p)

    torch._dynamo.reset()
    eager = run(feats, mask, pair)
    compiled = torch.compile(run, fullgraph=True)(feats, mask, pair)
    torch.testing.assert_close(compiled, eager, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("residual", [True, False])
def test_encoder_reset_keeps_the_attention_init(residual):
    # resetting the encoder must not re-reset the attention's projections to nn.Linear's
    # default (non-zero biases) after the attention set Xavier weights and zero biases
    enc = SemanticAwareContextEncoder(8, nhead=2, dim_feedforward=16, residual=residual)
    attn = enc.encoder.layers[0].self_attn if residual else enc.layer.attn
    for proj in (attn.q_proj, attn.k_proj, attn.v_proj, attn.out_proj):
        assert (proj.bias == 0).all()
    enc.reset_parameters()
    assert (attn.out_proj.bias == 0).all()


def test_union_aware_head_is_its_parts_composed_as_printed():
    """Each stage against the blocks composed by hand (Eq. 5-11; Table 4's rows)."""
    torch.manual_seed(0)
    s, o, u, m = (torch.randn(2, 5, k, 8) for k in (3, 3, 4, 2))
    mask = torch.rand(2, 5) > 0.3
    full = UnionAwareRelationHead(8, 2, 16, 6).eval()
    enc = full.encoder(s, o, u, m, mask=mask)
    dec = full.decoder(enc.encoded, query=full.encoder.relation_token)
    want = full.predictor(dec, enc.union, u, m, mask)
    fg = full.fine_grained_head(torch.cat((s.mean(-2), o.mean(-2)), -1)) * mask[..., None]
    out = full(s, o, u, m, mask)
    torch.testing.assert_close(out.relation, want)
    torch.testing.assert_close(out.fine_grained, fg)
    pair = UnionAwareRelationHead(8, 2, out_dim=6, stage="pair")
    want = pair.relation_head(torch.cat((s.mean(-2), o.mean(-2)), -1)) * mask[..., None]
    torch.testing.assert_close(pair(s, o, u, m, mask).relation, want)
    union = UnionAwareRelationHead(8, 2, out_dim=6, stage="union")
    cat = torch.cat([x.mean(-2) for x in (s, o, u, m)], -1)
    torch.testing.assert_close(union(s, o, u, m).relation, union.relation_head(cat))
    encoder = UnionAwareRelationHead(8, 2, 16, 6, stage="encoder")
    enc = encoder.encoder(s, o, u, m, mask=mask)
    want = encoder.relation_head(enc.encoded.mean(-2)) * mask[..., None]
    torch.testing.assert_close(encoder(s, o, u, m, mask).relation, want)
    parts = UnionAwareRelationHead(8, 2, 16, 6, stage="encoder", readout="parts").eval()
    enc = parts.encoder(s, o, u, m, mask=mask).encoded  # (2, 5, 3 + 3 + 4 + 2, 8)
    means = [enc[..., a:b, :].mean(-2) for a, b in ((0, 3), (3, 6), (6, 10), (10, 12))]
    want = parts.relation_head(torch.cat(means, -1)) * mask[..., None]
    torch.testing.assert_close(parts(s, o, u, m, mask).relation, want)
    assert "readout='parts'" in repr(parts)
    with pytest.raises(ValueError, match="readout"):
        UnionAwareRelationHead(8, 2, stage="encoder", readout="max")
    assert out.relation[~mask].abs().sum() == 0 and "stage='full'" in repr(full)
    with pytest.raises(ValueError, match="stage"):
        UnionAwareRelationHead(8, 2, stage="b")
    with pytest.raises(ValueError, match="motion"):
        full(s, o, u, m[..., :4])
