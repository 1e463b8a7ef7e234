"""Padding never leaks: whatever padded positions hold (NaN, ±Inf, 3e38), every block gives
bit-identical valid outputs and gradients to zero padding, exactly zero gradients at the padding,
and exactly zero outputs at padded rows, on every path (valid rows, padded grid, need_weights,
attn_mask, cross-attention to a padded memory, compiled)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

from dsgg_layers import (
    AssociationReasoning,
    ContextFusion,
    MaskedMultiheadAttention,
    MessageToken,
    MotionFeatureExtractor,
    MotionInteraction,
    RelationScorer,
    SentenceClassifier,
    SpatialTemporalEncoder,
    TransformerDecoder,
    TransformerDecoderLayer,
    TransformerEncoder,
    TransformerEncoderLayer,
    masked_attention,
    motion_attributes,
)

GARBAGE = [float("nan"), float("inf"), float("-inf"), 3e38]


def fill(x: torch.Tensor, mask: torch.Tensor, value: float) -> torch.Tensor:
    """``x`` with the rows where ``mask`` is False (``mask`` aligned from the left) set to value."""
    m = mask.reshape(*mask.shape, *([1] * (x.dim() - mask.dim())))
    return x.masked_fill(~m, value)


def run(
    fn: Callable[..., torch.Tensor],
    inputs: list[tuple[torch.Tensor, torch.Tensor]],
    module: nn.Module | None,
    value: float,
    out_mask: torch.Tensor,
):
    """Output, input gradients and parameter gradients with the padding set to ``value``."""
    if module is not None:
        module.zero_grad(set_to_none=True)
    leaves = [fill(x, m, value).detach().requires_grad_() for x, m in inputs]
    out = fn(*leaves)
    weight = torch.linspace(-1, 1, out.shape[-1], dtype=out.dtype)
    kept = fill(out, out_mask, 0.0)  # the loss sees the valid outputs only
    (kept * weight).sum().backward()
    params = [] if module is None else [p.grad for p in module.parameters()]
    return out.detach(), [t.grad for t in leaves], params


def assert_no_leak(fn, inputs, module=None, out_mask=None, *, zero_padded_output=True):
    out_mask = inputs[0][1] if out_mask is None else out_mask
    out0, g0, p0 = run(fn, inputs, module, 0.0, out_mask)
    for value in GARBAGE:
        out, g, p = run(fn, inputs, module, value, out_mask)
        valid = fill(torch.ones_like(out, dtype=torch.bool), out_mask, False)
        assert torch.equal(out[valid], out0[valid]), f"valid outputs changed with {value}"
        assert torch.isfinite(out[valid]).all()
        if zero_padded_output:
            assert (out[~valid] == 0).all(), f"padded outputs not 0 with {value}"
        for (x, m), grad, grad0 in zip(inputs, g, g0, strict=True):
            if grad is None:  # an input the path does not use (e.g. positions)
                assert grad0 is None
                continue
            pad = ~fill(torch.ones_like(x, dtype=torch.bool), m, False)
            assert (grad[pad] == 0).all(), f"gradient at padding not exactly 0 with {value}"
            assert torch.equal(grad, grad0), f"input gradients changed with {value}"
        for a, b in zip(p, p0, strict=True):
            assert (a is None and b is None) or torch.equal(a, b), f"param grads, {value}"


def grid(seed=0, B=2, T=4, P=3, D=8, p_valid=0.6):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, T, P, D, generator=g, dtype=torch.float64)
    mask = torch.rand(B, T, P, generator=g) < p_valid
    mask[0, 0, 0] = True  # at least one valid row
    mask[1, 1] = False  # a frame with no pair at all
    return x, mask


def test_fill_helper_sets_only_the_padding():
    x, mask = grid()
    y = fill(x, mask, float("nan"))
    assert torch.isnan(y[~mask]).all() and torch.equal(y[mask], x[mask])


@pytest.mark.parametrize("need_weights", [False, True])
def test_masked_attention(need_weights):
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(2, 2, 5, 4, generator=g, dtype=torch.float64) for _ in range(3))
    key_mask = torch.tensor([[True, True, False, True, False], [False] * 5])
    # padding lives on the keys and values: mask (B, S) broadcast over heads via a permuted view
    kmask = key_mask[:, None, :].expand(2, 2, 5)

    def fn(k, v):
        return masked_attention(q, k, v, key_mask=key_mask, need_weights=need_weights)[0]

    out_mask = torch.ones(2, 2, 5, dtype=torch.bool)
    assert_no_leak(fn, [(k, kmask), (v, kmask)], out_mask=out_mask, zero_padded_output=False)


@pytest.mark.parametrize("skip_padding", [True, False])
@pytest.mark.parametrize("mode", ["plain", "weights", "attn_mask", "pos"])
def test_self_attention(skip_padding, mode):
    torch.manual_seed(0)
    attn = MaskedMultiheadAttention(8, 2, skip_padding=skip_padding).double()
    x, mask = grid()
    pos = torch.randn(x.shape, dtype=torch.float64)
    attn_mask = torch.rand(3, 3) < 0.7

    def fn(x, pos):
        kwargs = {"need_weights": mode == "weights", "query_pos": pos if mode == "pos" else None}
        if mode == "attn_mask":
            kwargs["attn_mask"] = attn_mask
        return attn(x, query_mask=mask, **kwargs)[0]

    assert_no_leak(fn, [(x, mask), (pos, mask)], attn)


@pytest.mark.parametrize("skip_padding", [True, False])
def test_cross_attention_to_padded_memory(skip_padding):
    torch.manual_seed(0)
    attn = MaskedMultiheadAttention(8, 2, kdim=6, vdim=6, skip_padding=skip_padding).double()
    x, mask = grid(P=3)
    memory, memory_mask = grid(seed=1, P=5, D=6)
    memory_mask[0, 2] = False  # valid queries whose memory is all padding

    def fn(x, memory):
        return attn(x, memory, query_mask=mask, key_mask=memory_mask)[0]

    assert_no_leak(fn, [(x, mask), (memory, memory_mask)], attn)


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("mode", ["rows", "grid", "weights", "attn_mask"])
def test_encoder_layer_and_stack(norm_first, mode):
    torch.manual_seed(0)
    layer = TransformerEncoderLayer(8, 2, 16, dropout=0.0, norm_first=norm_first,
                                    skip_padding=mode == "rows").double()  # fmt: skip
    x, mask = grid()
    pos = torch.randn(x.shape, dtype=torch.float64)
    attn_mask = torch.rand(3, 3) < 0.7

    def fn(x, pos):
        if mode == "weights":
            return layer(x, mask, pos=pos, need_weights=True)[0]
        return layer(x, mask, pos=pos, attn_mask=attn_mask if mode == "attn_mask" else None)

    assert_no_leak(fn, [(x, mask), (pos, mask)], layer)
    stack = TransformerEncoder(layer, 2, norm=nn.LayerNorm(8)).double()

    def fn_stack(x, pos):
        return stack(x, mask, pos=pos, attn_mask=attn_mask if mode == "attn_mask" else None)

    assert_no_leak(fn_stack, [(x, mask), (pos, mask)], stack)


@pytest.mark.parametrize("skip_padding", [True, False])
@pytest.mark.parametrize("self_attention", [True, False])
def test_decoder_layer_and_stack(skip_padding, self_attention):
    torch.manual_seed(0)
    layer = TransformerDecoderLayer(8, 2, 16, dropout=0.0, self_attention=self_attention,
                                    memory_dim=6, skip_padding=skip_padding).double()  # fmt: skip
    x, mask = grid(P=3)
    memory, memory_mask = grid(seed=1, P=5, D=6)
    qpos = torch.randn(x.shape, dtype=torch.float64)

    def fn(x, memory, qpos):
        return layer(x, memory, mask, memory_mask, query_pos=qpos)

    inputs = [(x, mask), (memory, memory_mask), (qpos, mask)]
    assert_no_leak(fn, inputs, layer)
    stack = TransformerDecoder(layer, 2, norm=nn.LayerNorm(8)).double()
    assert_no_leak(lambda x, m, p: stack(x, m, mask, memory_mask, query_pos=p), inputs, stack)

    def fn_weights(x, memory, qpos):
        return layer(x, memory, mask, memory_mask, query_pos=qpos, need_weights=True)[0]

    assert_no_leak(fn_weights, inputs, layer)


@pytest.mark.parametrize("skip_padding", [True, False])
@pytest.mark.parametrize("window", [None, 2])
def test_relation_block(skip_padding, window):
    torch.manual_seed(0)
    block = SpatialTemporalEncoder(
        8, 2, 16, temporal_layers=2, dropout=0.0, temporal_window=window, skip_padding=skip_padding
    ).double()
    x, mask = grid(B=3, T=6, P=4)
    assert_no_leak(lambda x: block(x, mask), [(x, mask)], block)


def test_motion_attributes_and_mfe():
    g = torch.Generator().manual_seed(3)
    boxes = torch.rand(2, 6, 3, 4, generator=g, dtype=torch.float64).sort(-1).values
    subject, obj = boxes[..., [0, 1, 2, 3]], boxes.flip(2)
    _, mask = grid(T=6, P=3)
    times = torch.arange(6, dtype=torch.float64).expand(2, 6).clone()
    fn = lambda s, o: motion_attributes(s, o, mask, times, image_size=(1.0, 1.0))  # noqa: E731
    assert_no_leak(fn, [(subject, mask), (obj, mask)])
    mfe = MotionFeatureExtractor(8).double()
    assert_no_leak(lambda s, o: mfe(s, o, mask, times), [(subject, mask), (obj, mask)], mfe)


@pytest.mark.parametrize("fusion", ["attention", "concat"])
def test_motion_interaction(fusion):
    torch.manual_seed(0)
    mim = MotionInteraction(8, 2, dropout=0.0, fusion=fusion).double()
    x, mask = grid()
    motion = torch.randn(x.shape, dtype=torch.float64)
    assert_no_leak(lambda a, b: mim(a, b, mask), [(x, mask), (motion, mask)], mim)


@pytest.mark.parametrize("temporal", ["token", "mean", None])
def test_relation_scorer(temporal):
    torch.manual_seed(0)
    sizes = dict(nhead=2, spatial_layers=1, temporal_layers=1, dim_feedforward=16, dropout=0.0)
    scorer = RelationScorer(8, 8, temporal=temporal, **sizes).double()
    x, mask = grid(B=3, T=5, P=3)
    mask[2, 3:] = False  # a shorter video

    def fn(x):
        out = scorer(x, mask)
        parts = [out.logits, out.pairs]
        if out.video_context is not None:  # the video context, where the video has pairs
            parts.append(out.video_context[:, None, None].expand(*mask.shape, -1) * mask[..., None])
        return torch.cat(parts, -1)

    assert_no_leak(fn, [(x, mask)], scorer)


@pytest.mark.parametrize("first", ["self", "zero"])
def test_message_token(first):
    torch.manual_seed(0)
    token = MessageToken(8, 6, first=first).double()
    x, mask = grid(B=2, T=5, P=3)
    assert_no_leak(lambda x: token(x, mask), [(x, mask)], token)


def test_sentence_classifier_with_garbage_labels_at_padding():
    torch.manual_seed(0)
    table = torch.nn.functional.normalize(torch.randn(5, 4, 6, dtype=torch.float64), dim=-1)
    head = SentenceClassifier(8, table).double()
    x, mask = grid(B=2, T=5, P=3)
    labels = torch.randint(0, 5, mask.shape).masked_fill(~mask, 99)  # out of range, padding only
    assert_no_leak(lambda v: head(v, labels, mask), [(x, mask)], head)


@pytest.mark.parametrize("fusion", ["arn", "nonlinear"])
def test_association_reasoning(fusion):
    torch.manual_seed(0)
    model = AssociationReasoning(8, 2, 3, fusion=fusion).double()
    g = torch.Generator().manual_seed(1)
    qmask = torch.rand(2, 5, generator=g) < 0.6
    qmask[0, 0], qmask[1] = True, False  # a frame without a valid query
    mmask = torch.rand(2, 7, generator=g) < 0.7
    mmask[:, 0] = True
    a, s, c, e = (torch.randn(2, 5, 8, generator=g, dtype=torch.float64) for _ in range(4))
    memory = torch.randn(2, 7, 8, generator=g, dtype=torch.float64)

    def fn(a, s, c, e, memory):
        return torch.cat(model([a, s, c], e, memory, query_mask=qmask, memory_mask=mmask), -1)

    inputs = [(a, qmask), (s, qmask), (c, qmask), (e, qmask), (memory, mmask)]
    assert_no_leak(fn, inputs, model, out_mask=qmask)


def test_context_fusion():
    fusion = ContextFusion(8, 4, (2, 3)).double()
    x, mask = grid()
    ctx = torch.randn(2, 4, dtype=torch.float64)
    assert_no_leak(lambda r: fusion(r, ctx, mask), [(x, mask)], fusion)


@pytest.mark.parametrize("training", [False, True])
def test_compiled_relation_block(training):
    torch.manual_seed(0)
    block = SpatialTemporalEncoder(8, 2, 16, temporal_layers=1, dropout=0.0).train(training)
    x, mask = grid()
    x = x.float()
    compiled = torch.compile(block, fullgraph=True)
    assert_no_leak(lambda x: compiled(x, mask), [(x, mask)], block)
