"""RS-Net's relation scoring blocks (dsgg_layers.scoring): tokens, positions, masks, fusion."""

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from dsgg_layers import (
    ContextFusion,
    RelationScorer,
    RelationScoringDecoder,
    SpatialContextEncoder,
    TemporalContextEncoder,
    TrackIndex,
    tracks_to_flat,
    triplet_score,
)
from dsgg_layers.layout import build_track_index


def grid(seed=0, B=2, T=5, P=3, D=16, p=0.3, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, T, P, D, generator=g, dtype=dtype)
    mask = torch.rand(B, T, P, generator=g) > p
    return x, mask


def scorer(D=16, in_features=None, **kw):
    kw.setdefault("dim_feedforward", 32)
    kw.setdefault("dropout", 0.0)
    return RelationScorer(in_features or D, D, **kw).eval()


# ------------------------------------------------------------------ spatial context encoder


def test_spatial_token_comes_first_and_matches_the_encoder_on_the_concatenation():
    enc = SpatialContextEncoder(16, 4, 2, 32, dropout=0.0).eval()
    x, mask = grid()
    ctx, pairs = enc(x, mask)
    token = enc.token.tokens.expand(*x.shape[:2], 1, 16)
    zmask = torch.cat((mask.any(-1, keepdim=True), mask), -1)
    ref = enc.encoder(torch.cat((token, x), -2), zmask)
    torch.testing.assert_close(ctx, ref[..., 0, :])
    torch.testing.assert_close(pairs, ref[..., 1:, :])


def test_a_frame_without_pairs_has_no_context_and_pairs_only_see_their_frame():
    enc = SpatialContextEncoder(16, 4, 2, 32, dropout=0.0).eval()
    x, mask = grid(T=4)
    mask[0, 1] = False
    ctx, pairs = enc(x, mask)
    assert ctx[0, 1].abs().sum() == 0 and pairs[~mask].abs().sum() == 0
    x2 = x.clone()
    x2[0, 2] += 5.0  # another frame changes: frame 3's outputs do not
    ctx2, pairs2 = enc(x2, mask)
    torch.testing.assert_close(ctx2[0, 3], ctx[0, 3])
    torch.testing.assert_close(pairs2[0, 3], pairs[0, 3])
    assert not torch.allclose(ctx2[0, 2], ctx[0, 2])


def test_spatial_encoder_errors_name_the_argument():
    enc = SpatialContextEncoder(16, 4, 1, 32)
    x, mask = grid()
    with pytest.raises(ValueError, match=r"x: expected shape \(\.\.\., T, P, 16\)"):
        enc(x[..., :8], mask)
    with pytest.raises(ValueError, match="mask: expected shape"):
        enc(x, mask[:, :2])
    with pytest.raises(TypeError, match="mask: expected a bool tensor"):
        enc(x, mask.float())
    with pytest.raises(ValueError, match="embed_dim: expected a multiple of num_heads=3"):
        SpatialContextEncoder(16, 3)


# ----------------------------------------------------------------- temporal context encoder


def _by_hand(enc, z, pos):
    """One post-norm layer, one head, written out: positions on queries and keys only."""
    layer = enc.encoder.layers[0]
    a = layer.self_attn
    q, k, v = a.q_proj(z + pos), a.k_proj(z + pos), a.v_proj(z)
    w = (q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])).softmax(-1)
    h = layer.norm1(z + a.out_proj(w @ v))
    return layer.norm2(h + layer.linear2(torch.relu(layer.linear1(h))))


def test_temporal_positions_enter_queries_and_keys_but_not_values():
    enc = TemporalContextEncoder(8, nhead=1, num_layers=1, dim_feedforward=16, dropout=0.0)
    enc.eval()
    with torch.no_grad():
        enc.positions.weight.normal_(0, 1.0)  # large positions: any leak into V shows
    c = torch.randn(1, 5, 8)
    video, frames = enc(c, torch.ones(1, 5, dtype=torch.bool))
    z = torch.cat((enc.token.tokens[None], c), 1)
    pos = enc.positions.weight[:6]
    ref = _by_hand(enc, z, pos)
    torch.testing.assert_close(video, ref[:, 0])
    torch.testing.assert_close(frames, ref[:, 1:])
    leaked = _by_hand(enc, z + pos, torch.zeros_like(pos))  # positions in the values too
    assert not torch.allclose(video, leaked[:, 0], atol=1e-3)


def test_video_length_is_a_mask_padding_frames_change_nothing():
    enc = TemporalContextEncoder(16, dim_feedforward=32, dropout=0.0).eval()
    c = torch.randn(1, 4, 16)
    alone, frames = enc(c, torch.ones(1, 4, dtype=torch.bool))
    padded = torch.cat((c, torch.full((1, 3, 16), float("nan"))), 1)
    fmask = torch.arange(7) < 4
    out, frames_p = enc(padded, fmask[None])
    torch.testing.assert_close(out, alone)
    torch.testing.assert_close(frames_p[:, :4], frames)
    assert frames_p[:, 4:].abs().sum() == 0


def test_mean_mode_is_the_masked_mean_of_the_frame_contexts_and_has_no_parameters():
    enc = TemporalContextEncoder(4, mode="mean")
    c = torch.tensor([[[1.0, 2, 3, 4], [3, 2, 1, 0], [100, 100, 100, 100]]])
    video, _ = enc(c, torch.tensor([[True, True, False]]))
    torch.testing.assert_close(video, torch.tensor([[2.0, 2, 2, 2]]))
    assert not list(enc.parameters()) and enc.no_weight_decay() == set()


def test_temporal_encoder_refuses_too_many_frames_and_unknown_modes():
    enc = TemporalContextEncoder(8, nhead=2, max_frames=3, dim_feedforward=16)
    with pytest.raises(ValueError, match="frame_context: expected at most max_frames=3"):
        enc(torch.randn(1, 4, 8), torch.ones(1, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="mode: expected one of 'token', 'mean'"):
        TemporalContextEncoder(8, mode="max")
    with pytest.raises(ValueError, match="frame_mask: expected shape"):
        enc(torch.randn(1, 3, 8), torch.ones(1, 2, dtype=torch.bool))


def test_a_video_without_frames_has_a_zero_context():
    enc = TemporalContextEncoder(8, nhead=2, dim_feedforward=16).eval()
    video, frames = enc(torch.randn(2, 3, 8), torch.tensor([[True] * 3, [False] * 3]))
    assert video[1].abs().sum() == 0 and frames[1].abs().sum() == 0
    assert video[0].abs().sum() > 0


# ------------------------------------------------------------------------- decoder / scorer


def test_decoder_is_a_three_layer_relu_mlp_to_two_logits():
    dec = RelationScoringDecoder(12, 6)
    linears = [m for m in dec.mlp if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(12, 6), (6, 6), (6, 2)]
    x = torch.randn(3, 12)
    ref = linears[2](torch.relu(linears[1](torch.relu(linears[0](x)))))
    torch.testing.assert_close(dec(x), ref)


@pytest.mark.parametrize("temporal", ["token", "mean", None])
def test_scorer_is_the_composition_of_its_parts(temporal):
    m = scorer(temporal=temporal, in_features=24)
    x, mask = grid(D=24)
    out = m(x, mask)
    h = m.input_proj(x.masked_fill(~mask.unsqueeze(-1), 0))
    ctx, pairs = m.spatial(h, mask)
    torch.testing.assert_close(out.frame_context, ctx)
    torch.testing.assert_close(out.pairs, pairs)
    feats = pairs
    if temporal is None:
        assert out.video_context is None and m.context_features == 0
    else:
        video, _ = m.temporal(ctx, mask.any(-1))
        torch.testing.assert_close(out.video_context, video)
        feats = torch.cat((pairs, video[:, None, None].expand_as(pairs)), -1)
    logits = m.decoder(feats)
    torch.testing.assert_close(out.logits[mask], logits[mask])
    torch.testing.assert_close(out.score[mask], logits.softmax(-1)[..., 0][mask])
    assert out.score[~mask].abs().sum() == 0 and out.logits[~mask].abs().sum() == 0
    assert ((out.score >= 0) & (out.score <= 1)).all()


def test_scorer_is_batch_invariant_and_ignores_garbage_at_padding():
    m = scorer()
    x, mask = grid(B=3, T=6, P=4)
    mask[1, 4:] = False  # a shorter video
    mask[2, :, 3] = False  # fewer pairs
    out = m(x, mask)
    for b in range(3):
        T = int(mask[b].any(-1).nonzero().max()) + 1
        P = int(mask[b].any(0).nonzero().max()) + 1
        alone = m(x[b : b + 1, :T, :P], mask[b : b + 1, :T, :P])
        torch.testing.assert_close(alone.score[0], out.score[b, :T, :P], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(alone.video_context[0], out.video_context[b], rtol=1e-5,
                                   atol=1e-6)  # fmt: skip
    dirty = x.masked_fill(~mask.unsqueeze(-1), float("nan"))
    dirty = dirty.requires_grad_()
    out2 = m(dirty, mask)
    torch.testing.assert_close(out2.score, out.score)
    (out2.score.sum() + out2.video_context.sum()).backward()
    assert torch.isfinite(dirty.grad).all() and dirty.grad[~mask].abs().sum() == 0


def test_scorer_on_empty_inputs_is_defined_and_differentiable():
    m = scorer().train()
    for shape in [(2, 3, 0), (0, 3, 2), (2, 1, 1)]:
        x = torch.randn(*shape, 16, requires_grad=True)
        mask = torch.full(shape, shape[-1] == 1, dtype=torch.bool)
        out = m(x, mask)
        assert out.score.shape == shape and torch.isfinite(out.score).all()
        (out.logits.sum() + out.video_context.sum()).backward()
        assert torch.isfinite(x.grad).all()


def test_fully_masked_video_scores_zero_and_fp16_under_autocast_is_finite():
    m = scorer()
    x, mask = grid()
    mask[0] = False
    out = m(x, mask)
    assert out.score[0].abs().sum() == 0 and out.video_context[0].abs().sum() == 0
    with torch.autocast("cpu", dtype=torch.bfloat16):
        half = m(x, mask)
    assert torch.isfinite(half.score.float()).all()
    torch.testing.assert_close(half.score.float(), out.score, atol=0.05, rtol=0)


def test_forward_flat_gives_the_grid_scores_in_row_order():
    m = scorer()
    x, mask = grid()
    mask[..., 0] = True
    index = TrackIndex.from_mask(mask)
    rows = tracks_to_flat(x, index)
    logits, score = m.forward_flat(rows, index)
    out = m(x, mask)
    torch.testing.assert_close(score, tracks_to_flat(out.score, index))
    torch.testing.assert_close(logits, tracks_to_flat(out.logits, index))
    # an index built from ids (STTran's flat rows) too; frames without a row would get no slot
    # (and shift the later frames' positions): here every frame slot has a pair
    b, t, p = mask.nonzero(as_tuple=True)
    assert mask.any(-1).all()
    index2 = build_track_index(b, t, p)
    torch.testing.assert_close(m.forward_flat(rows, index2)[1], score)


def test_scorer_gradcheck_float64():
    m = RelationScorer(6, 4, nhead=2, spatial_layers=1, temporal_layers=1, dim_feedforward=8,
                       dropout=0.0).double()  # fmt: skip
    x = torch.randn(1, 3, 2, 6, dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[[True, True], [True, False], [False, True]]])
    assert torch.autograd.gradcheck(lambda x: m(x, mask).score, (x,))


def test_scorer_tokens_and_positions_are_excluded_from_weight_decay():
    m = scorer()
    names = set()
    for prefix, module in m.named_modules():
        if hasattr(module, "no_weight_decay") and module is not m:
            names |= {f"{prefix}.{n}" for n in module.no_weight_decay()}
    assert {"spatial.token.tokens", "temporal.token.tokens", "temporal.positions.weight"} <= names
    params = dict(m.named_parameters())
    assert names <= set(params)
    assert "temporal='token'" in repr(m)


def test_scorer_errors_name_the_argument():
    m = scorer(in_features=24)
    x, mask = grid(D=24)
    with pytest.raises(ValueError, match=r"x: expected shape \(\.\.\., T, P, 24\)"):
        m(x[..., :16], mask)
    with pytest.raises(ValueError, match="temporal: expected one of 'token', 'mean', None"):
        RelationScorer(8, 8, temporal="max")
    with pytest.raises(TypeError, match="x: expected a floating point tensor"):
        m(x.long(), mask)


@given(st.integers(1, 4), st.integers(1, 5), st.integers(0, 4), st.integers(0, 10_000))
def test_scores_are_probabilities_at_pairs_and_zero_elsewhere(B, T, P, seed):
    m = scorer()
    x, mask = grid(seed, B, T, P)
    out = m(x, mask)
    assert ((out.score[mask] > 0) & (out.score[mask] < 1)).all()
    assert out.score[~mask].abs().sum() == 0


# --------------------------------------------------------------------------- context fusion


def test_context_fusion_is_one_linear_head_a_group_on_the_concatenation():
    fusion = ContextFusion(8, 4, (3, 6, 17))
    r, ctx = torch.randn(2, 3, 5, 8), torch.randn(2, 4)
    out = fusion(r, ctx)
    cat = torch.cat((r, ctx[:, None, None].expand(2, 3, 5, 4)), -1)
    ref = torch.cat([F.linear(cat, h.weight, h.bias) for h in fusion.heads], -1)
    torch.testing.assert_close(out, ref)
    assert [t.shape[-1] for t in fusion.split(out)] == [3, 6, 17]


def test_context_fusion_off_ignores_the_context_and_masks_padding():
    fusion = ContextFusion(8, 0, (2, 3), fuse=False)
    r = torch.randn(1, 2, 3, 8)
    mask = torch.tensor([[[True, False, True], [False, False, True]]])
    out = fusion(r.masked_fill(~mask.unsqueeze(-1), float("nan")), None, mask)
    assert out.shape == (1, 2, 3, 5) and out[~mask].abs().sum() == 0
    torch.testing.assert_close(out[mask], fusion(r)[mask])
    with pytest.raises(ValueError, match="context: expected the video context"):
        ContextFusion(8, 4)(r, None)
    with pytest.raises(ValueError, match=r"context: expected shape \(1, 4\)"):
        ContextFusion(8, 4)(r, torch.randn(2, 4))
    with pytest.raises(ValueError, match="group_sizes: expected at least one group"):
        ContextFusion(8, 4, ())


# ---------------------------------------------------------------------------- triplet score


def test_triplet_score_is_the_product_of_eq_6():
    s_rel = torch.tensor([[0.5, 0.25], [1.0, 0.0]])
    p0 = torch.tensor([0.8, 0.5])
    s_sub, s_obj = torch.tensor([1.0, 0.5]), torch.tensor([0.5, 1.0])
    out = triplet_score(s_rel, p0, s_sub, s_obj)
    torch.testing.assert_close(out, torch.tensor([[0.2, 0.1], [0.25, 0.0]]))
    torch.testing.assert_close(triplet_score(s_rel, p0), s_rel * p0[:, None])
    with pytest.raises(ValueError, match="relation_score: expected a shape that broadcasts"):
        triplet_score(s_rel, torch.ones(3))


# ------------------------------------------------------------------------------- compile


@pytest.mark.parametrize("training", [False, True])
def test_compiled_scorer_matches_eager_in_eval_and_train(training):
    torch._dynamo.reset()
    m = scorer().train(training)
    x, mask = grid()
    x = x.requires_grad_()
    eager = m(x, mask)
    (g_eager,) = torch.autograd.grad(eager.score.sum(), x)
    compiled = torch.compile(lambda x, k: m(x, k).score, fullgraph=True)
    out = compiled(x, mask)
    (g_comp,) = torch.autograd.grad(out.sum(), x)
    torch.testing.assert_close(out, eager.score, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(g_comp, g_eager, rtol=1e-4, atol=1e-5)


def test_decoder_and_fusion_name_a_dtype_that_differs_from_their_parameters():
    with pytest.raises(TypeError, match="x: expected"):
        RelationScoringDecoder(8)(torch.randn(2, 8, dtype=torch.float64))
    with pytest.raises(TypeError, match="r: expected"):
        ContextFusion(8, 4)(torch.randn(1, 2, 3, 8, dtype=torch.float64), torch.randn(1, 4))


def test_half_precision_scorer_is_finite_and_close_to_float32():
    m = scorer()
    x, mask = grid()
    half = RelationScorer(16, 16, dim_feedforward=32, dropout=0.0).eval()
    half.load_state_dict(m.state_dict())
    out = half.half()(x.half(), mask)
    assert out.score.dtype == torch.float16 and torch.isfinite(out.score).all()
    torch.testing.assert_close(out.score.float(), m(x, mask).score, atol=0.02, rtol=0)
