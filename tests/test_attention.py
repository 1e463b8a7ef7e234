"""Masked attention against naive references and against torch.nn's own layers."""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from dsgg_layers import (
    AttentionBlock,
    MaskedMultiheadAttention,
    TransformerDecoder,
    TransformerDecoderLayer,
    TransformerEncoder,
    TransformerEncoderLayer,
    ValidRows,
    masked_attention,
)


def naive_attention(q, k, v, allowed):
    """One query row at a time: softmax over the allowed keys only, 0 if there are none."""
    out = torch.zeros(*q.shape[:-1], v.shape[-1], dtype=q.dtype)
    for idx in torch.cartesian_prod(*[torch.arange(n) for n in q.shape[:-1]]).tolist():
        *lead, row = idx
        keys = [s for s in range(k.shape[-2]) if allowed[(*lead, row, s)]]
        if not keys:
            continue
        logits = torch.stack([q[tuple(idx)] @ k[(*lead, s)] for s in keys]) / math.sqrt(q.shape[-1])
        w = logits.softmax(0)
        out[tuple(idx)] = sum(wi * v[(*lead, s)] for wi, s in zip(w, keys, strict=True))
    return out


@given(
    B=st.integers(1, 3),
    L=st.integers(1, 4),
    S=st.integers(1, 5),
    seed=st.integers(0, 2**16),
    use_attn_mask=st.booleans(),
    need_weights=st.booleans(),
)
def test_masked_attention_matches_naive(B, L, S, seed, use_attn_mask, need_weights):
    g = torch.Generator().manual_seed(seed)
    H, E = 2, 3
    q = torch.randn(B, H, L, E, generator=g, dtype=torch.float64)
    k = torch.randn(B, H, S, E, generator=g, dtype=torch.float64)
    v = torch.randn(B, H, S, 4, generator=g, dtype=torch.float64)
    key_mask = torch.rand(B, S, generator=g) > 0.4
    attn_mask = torch.rand(L, S, generator=g) > 0.3 if use_attn_mask else None
    allowed = key_mask[:, None, None, :].expand(B, H, L, S)
    if attn_mask is not None:
        allowed = allowed & attn_mask
    out, w = masked_attention(
        q, k, v, key_mask=key_mask, attn_mask=attn_mask, need_weights=need_weights
    )
    torch.testing.assert_close(out, naive_attention(q, k, v, allowed))
    if need_weights:
        assert (w[~allowed] == 0).all()
        sums = w.sum(-1)
        has_key = allowed.any(-1)
        torch.testing.assert_close(sums[has_key], torch.ones_like(sums[has_key]))
        assert (sums[~has_key] == 0).all()


def test_fully_masked_rows_are_zero_with_finite_gradients():
    q = torch.randn(2, 2, 3, 4, requires_grad=True)
    k = torch.randn(2, 2, 5, 4, requires_grad=True)
    v = torch.randn(2, 2, 5, 4, requires_grad=True)
    key_mask = torch.tensor([[False] * 5, [True, False, True, False, False]])
    for need_weights in (False, True):
        out, _ = masked_attention(q, k, v, key_mask=key_mask, need_weights=need_weights)
        assert (out[0] == 0).all() and torch.isfinite(out).all()
        out.sum().backward()
        for t in (q, k, v):
            assert torch.isfinite(t.grad).all()
        assert (q.grad[0] == 0).all() and (k.grad[0] == 0).all() and (v.grad[0] == 0).all()
        assert (v.grad[1, :, [1, 3, 4]] == 0).all()  # masked keys get no gradient
        for t in (q, k, v):
            t.grad = None


def test_no_keys_and_no_queries():
    q = torch.randn(2, 1, 3, 4)
    out, w = masked_attention(
        q, torch.zeros(2, 1, 0, 4), torch.zeros(2, 1, 0, 6), need_weights=True
    )
    assert out.shape == (2, 1, 3, 6) and (out == 0).all() and w.shape == (2, 1, 3, 0)
    out, _ = masked_attention(
        torch.zeros(0, 1, 3, 4), torch.zeros(0, 1, 2, 4), torch.zeros(0, 1, 2, 4)
    )
    assert out.shape == (0, 1, 3, 4)


def test_leading_dims_are_folded():
    q, k, v = torch.randn(2, 3, 4, 5, 8), torch.randn(2, 3, 4, 6, 8), torch.randn(2, 3, 4, 6, 8)
    key_mask = torch.rand(2, 3, 6) > 0.3
    out, _ = masked_attention(q, k, v, key_mask=key_mask)
    flat, _ = masked_attention(
        q.flatten(0, 1), k.flatten(0, 1), v.flatten(0, 1), key_mask=key_mask.flatten(0, 1)
    )
    torch.testing.assert_close(out, flat.view_as(out))


def _copy_mha(ours: MaskedMultiheadAttention, ref: nn.MultiheadAttention) -> None:
    D = ours.embed_dim
    with torch.no_grad():
        ref.in_proj_weight.copy_(
            torch.cat((ours.q_proj.weight, ours.k_proj.weight, ours.v_proj.weight))
        )
        ref.in_proj_bias.copy_(torch.cat((ours.q_proj.bias, ours.k_proj.bias, ours.v_proj.bias)))
        ref.out_proj.weight.copy_(ours.out_proj.weight)
        ref.out_proj.bias.copy_(ours.out_proj.bias)
    assert ref.in_proj_weight.shape == (3 * D, D)


def test_mha_matches_torch_with_positions_on_queries_and_keys_only():
    ours = MaskedMultiheadAttention(16, 4)
    ref = nn.MultiheadAttention(16, 4, batch_first=True)
    _copy_mha(ours, ref)
    x, mem = torch.randn(3, 5, 16), torch.randn(3, 7, 16)
    qpos, kpos = torch.randn(5, 16), torch.randn(3, 7, 16)
    mem_mask = torch.rand(3, 7) > 0.3
    mem_mask[:, 0] = True  # torch gives NaN for rows with no key; compare where defined
    out, w = ours(x, mem, query_pos=qpos, key_pos=kpos, key_mask=mem_mask, need_weights=True)
    want, want_w = ref(
        x + qpos, mem + kpos, mem, key_padding_mask=~mem_mask, average_attn_weights=False
    )
    torch.testing.assert_close(out, want)
    torch.testing.assert_close(w, want_w)
    # self-attention: key defaults to query (with its position), value to the raw query
    out, _ = ours(x, query_pos=qpos)
    torch.testing.assert_close(out, ref(x + qpos, x + qpos, x)[0])


@given(seed=st.integers(0, 2**16))
def test_mha_padding_never_leaks(seed):
    g = torch.Generator().manual_seed(seed)
    attn = MaskedMultiheadAttention(8, 2)
    x = torch.randn(2, 6, 8, generator=g)
    mask = torch.rand(2, 6, generator=g) > 0.5
    out, _ = attn(x, query_mask=mask)
    assert (out[~mask] == 0).all()
    # changing what sits in padded slots changes no valid output
    noise = torch.randn(2, 6, 8, generator=g) * 100
    out2, _ = attn(torch.where(mask.unsqueeze(-1), x, noise), query_mask=mask)
    torch.testing.assert_close(out2, out)


def test_mha_gradcheck_with_empty_rows():
    attn = MaskedMultiheadAttention(4, 2).double()
    x = torch.randn(2, 3, 4, dtype=torch.float64, requires_grad=True)
    mem = torch.randn(2, 5, 4, dtype=torch.float64, requires_grad=True)
    key_mask = torch.tensor([[True, False, True, True, False], [False] * 5])
    qmask = torch.tensor([[True, True, False], [True, True, True]])
    assert torch.autograd.gradcheck(
        lambda a, b: attn(a, b, query_mask=qmask, key_mask=key_mask)[0], (x, mem)
    )
    out, _ = attn(x, mem, key_mask=key_mask)
    assert (out[1] == 0).all()


def _encoder_pair(norm_first):
    ours = TransformerEncoderLayer(16, 4, 32, dropout=0.0, norm_first=norm_first).eval()
    ref = nn.TransformerEncoderLayer(
        16, 4, 32, dropout=0.0, batch_first=True, norm_first=norm_first
    ).eval()
    _copy_mha(ours.self_attn, ref.self_attn)
    ref.linear1.load_state_dict(ours.linear1.state_dict())
    ref.linear2.load_state_dict(ours.linear2.state_dict())
    ref.norm1.load_state_dict(ours.norm1.state_dict())
    ref.norm2.load_state_dict(ours.norm2.state_dict())
    return ours, ref


@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_layer_matches_torch(norm_first):
    ours, ref = _encoder_pair(norm_first)
    x = torch.randn(3, 6, 16)
    mask = torch.rand(3, 6) > 0.4
    mask[:, 0] = True
    out = ours(x, mask)
    want = ref(x, src_key_padding_mask=~mask)
    torch.testing.assert_close(out[mask], want[mask])
    assert (out[~mask] == 0).all()


@pytest.mark.parametrize("norm_first", [False, True])
def test_decoder_layer_matches_torch(norm_first):
    ours = TransformerDecoderLayer(16, 4, 32, dropout=0.0, norm_first=norm_first).eval()
    ref = nn.TransformerDecoderLayer(
        16, 4, 32, dropout=0.0, batch_first=True, norm_first=norm_first
    ).eval()
    _copy_mha(ours.self_attn, ref.self_attn)
    _copy_mha(ours.cross_attn, ref.multihead_attn)
    for name in ("linear1", "linear2", "norm1", "norm2", "norm3"):
        getattr(ref, name).load_state_dict(getattr(ours, name).state_dict())
    x, mem = torch.randn(2, 4, 16), torch.randn(2, 7, 16)
    mask, mem_mask = torch.rand(2, 4) > 0.3, torch.rand(2, 7) > 0.3
    mask[:, 0] = mem_mask[:, 0] = True
    out = ours(x, mem, mask, mem_mask)
    want = ref(x, mem, tgt_key_padding_mask=~mask, memory_key_padding_mask=~mem_mask)
    torch.testing.assert_close(out[mask], want[mask])
    assert (out[~mask] == 0).all()


def test_encoder_over_pairs_and_over_frames_on_a_grid():
    layer = TransformerEncoderLayer(8, 2, 16, dropout=0.0)
    x = torch.randn(2, 5, 3, 8)  # (B, T, P, D)
    mask = torch.rand(2, 5, 3) > 0.3
    spatial = layer(x, mask)
    # spatial attention = the same layer on each frame separately
    for b in range(2):
        for t in range(5):
            torch.testing.assert_close(spatial[b, t], layer(x[b, t], mask[b, t]))
    temporal = layer(x.transpose(1, 2), mask.transpose(1, 2)).transpose(1, 2)
    torch.testing.assert_close(temporal[1, :, 2], layer(x[1, :, 2], mask[1, :, 2]))


def test_batch_invariance():
    layer = TransformerDecoderLayer(8, 2, 16, dropout=0.0)
    x, mem = torch.randn(4, 3, 8), torch.randn(4, 6, 8)
    mask, mem_mask = torch.rand(4, 3) > 0.3, torch.rand(4, 6) > 0.3
    batched = layer(x, mem, mask, mem_mask)
    for i in range(4):
        alone = layer(x[i : i + 1], mem[i : i + 1], mask[i : i + 1], mem_mask[i : i + 1])
        torch.testing.assert_close(batched[i : i + 1], alone)


def test_layers_with_all_padding_are_finite():
    enc = TransformerEncoderLayer(8, 2, 16)
    dec = TransformerDecoderLayer(8, 2, 16)
    x = torch.randn(2, 4, 8, requires_grad=True)
    none = torch.zeros(2, 4, dtype=torch.bool)
    y = dec(enc(x, none), torch.randn(2, 3, 8), none, torch.zeros(2, 3, dtype=torch.bool))
    assert (y == 0).all()
    y.sum().backward()
    assert torch.equal(x.grad, torch.zeros_like(x))  # all padding: exactly zero gradient


def test_attention_weights_and_positions_in_layers():
    enc = TransformerEncoderLayer(8, 2, 16, dropout=0.0)
    x, pos = torch.randn(2, 5, 8), torch.randn(5, 8)
    out, w = enc(x, pos=pos, need_weights=True)
    assert w.shape == (2, 2, 5, 5)
    torch.testing.assert_close(out, enc(x, pos=pos))
    assert not torch.allclose(out, enc(x))
    dec = TransformerDecoderLayer(8, 2, 16, dropout=0.0, self_attention=False, memory_dim=6)
    out, (w_self, w_cross) = dec(x, torch.randn(2, 9, 6), need_weights=True)
    assert w_self is None and w_cross.shape == (2, 2, 5, 9)


def test_stacks_reinitialise_copies():
    enc = TransformerEncoder(TransformerEncoderLayer(8, 2, 16), 3, norm=nn.LayerNorm(8))
    dec = TransformerDecoder(TransformerDecoderLayer(8, 2, 16), 2)
    w = [layer.linear1.weight for layer in enc.layers]
    assert not torch.equal(w[0], w[1])
    x = torch.randn(2, 5, 8)
    mask = torch.tensor([[True] * 5, [True, True, False, False, False]])
    y = enc(x, mask)
    assert y.shape == x.shape and (y[1, 2:] == 0).all()
    assert dec(y, x, mask, mask).shape == (2, 5, 8)
    assert "norm_first=False" in repr(enc)


def test_gradcheck_encoder_layer():
    layer = TransformerEncoderLayer(4, 2, 8, dropout=0.0).double()
    x = torch.randn(2, 3, 4, dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[True, True, False], [True, False, False]])
    assert torch.autograd.gradcheck(lambda a: layer(a, mask), (x,))


def test_compile_matches_eager():
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.enc = TransformerEncoderLayer(16, 4, 32, dropout=0.0)
            self.dec = TransformerDecoderLayer(16, 4, 32, dropout=0.0)

        def forward(self, x, mask):
            h = self.enc(x, mask)  # over pairs
            return self.dec(
                h.transpose(1, 2), h.transpose(1, 2), mask.transpose(1, 2), mask.transpose(1, 2)
            )

    block = Block().eval()
    x = torch.randn(2, 4, 3, 16)
    mask = torch.rand(2, 4, 3) > 0.3
    mask[0, 0] = False  # an empty frame
    compiled = torch.compile(block, fullgraph=True)
    torch.testing.assert_close(compiled(x, mask), block(x, mask), rtol=1e-4, atol=1e-5)


def test_errors():
    with pytest.raises(ValueError, match="embed_dim: expected a multiple of num_heads=3, got 8"):
        MaskedMultiheadAttention(8, 3)
    with pytest.raises(ValueError, match=r"dropout: expected a probability in \[0, 1\), got 1.5"):
        MaskedMultiheadAttention(8, 2, dropout=1.5)
    with pytest.raises(TypeError, match="num_heads: expected an int, got float"):
        MaskedMultiheadAttention(8, 2.0)
    attn = MaskedMultiheadAttention(8, 2)
    with pytest.raises(
        ValueError, match=r"query: expected shape \(\.\.\., L, 8\), got \(2, 3, 7\)"
    ):
        attn(torch.zeros(2, 3, 7))
    message = r"query_mask: expected a bool tensor or a ValidRows, got dtype torch\.int64"
    with pytest.raises(TypeError, match=message):
        attn(torch.zeros(2, 3, 8), query_mask=torch.ones(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"key_mask: expected shape \(\.\.\., S\) with S=5"):
        attn(
            torch.zeros(2, 3, 8), torch.zeros(2, 5, 8), key_mask=torch.ones(2, 4, dtype=torch.bool)
        )
    with pytest.raises(
        ValueError, match=r"attn_mask: expected a shape that broadcasts to \(2, 3, 5\)"
    ):
        attn(
            torch.zeros(2, 3, 8), torch.zeros(2, 5, 8), attn_mask=torch.ones(3, 4, dtype=torch.bool)
        )
    with pytest.raises(ValueError, match="activation: expected one of 'relu', 'gelu', got 'tanh'"):
        TransformerEncoderLayer(8, 2, activation="tanh")
    with pytest.raises(TypeError, match="layer: expected a TransformerEncoderLayer, got Linear"):
        TransformerEncoder(nn.Linear(2, 2), 2)
    with pytest.raises(ValueError, match="num_layers: expected a value > 0, got 0"):
        TransformerDecoder(TransformerDecoderLayer(8, 2), 0)


def _block_from_layer(layer: TransformerEncoderLayer) -> AttentionBlock:
    """The standard layer's own parts, assembled by the block."""
    ffn = nn.Sequential(layer.linear1, nn.ReLU(), layer.linear2)
    return AttentionBlock(layer.self_attn, ffn, norm1=layer.norm1, norm2=layer.norm2,
                          norm_first=layer.norm_first)  # fmt: skip


@given(seed=st.integers(0, 2**16), norm_first=st.booleans(), rows=st.booleans())
def test_block_with_the_standard_parts_is_the_encoder_layer(seed, norm_first, rows):
    torch.manual_seed(seed)
    layer = TransformerEncoderLayer(8, 2, 16, dropout=0.0, norm_first=norm_first).eval()
    x, mask = torch.randn(2, 5, 8), torch.rand(2, 5) > 0.3
    pos = torch.randn(2, 5, 8)
    m = ValidRows(mask) if rows else mask
    out = _block_from_layer(layer)(x, mask=m, pos=pos)
    torch.testing.assert_close(out, layer(x, mask, pos=pos), rtol=1e-5, atol=1e-5)


def test_block_printed_forms_by_hand():
    """Each residual / norm option against its formula written out with the parts."""
    torch.manual_seed(0)
    attn, lin, n1, n2 = (
        MaskedMultiheadAttention(8, 2),
        nn.Linear(8, 8),
        nn.LayerNorm(8),
        nn.LayerNorm(8),
    )
    for p in (*n1.parameters(), *n2.parameters()):  # norms that are not the identity
        nn.init.normal_(p)
    x, key, value = torch.randn(3, 4, 8), torch.randn(3, 6, 8), torch.randn(3, 6, 8)
    a = attn(x, key, value)[0]
    cases = [
        (dict(attn_residual=False), a),
        (dict(norm1=n1), n1(x + a)),
        (dict(mlp=lin, norm2=n2, attn_residual=False), n2(a + lin(a))),  # UASAN Eq. 7-8
        (dict(mlp=lin, norm2=n2, attn_residual=False, mlp_residual=False), n2(lin(a))),  # Eq. 5-6
        (dict(mlp=lin, attn_residual=False, mlp_residual="input"), x + lin(a)),  # ARN HA
        (dict(mlp=lin, attn_residual=False), a + lin(a)),  # HA, Eq. 13 as printed
    ]
    for kw, want in cases:
        block = AttentionBlock(attn, **kw)
        torch.testing.assert_close(block(x, key, value), want, msg=str(kw))
    pre = AttentionBlock(attn, lin, norm1=n1, norm2=n2, norm_first=True)
    h = x + attn(n1(x), key, value)[0]
    torch.testing.assert_close(pre(x, key, value), h + lin(n2(h)))
    assert "mlp_residual=True" in repr(pre) and "norm_first=True" in repr(pre)


def test_block_errors_and_degenerate_inputs():
    attn = MaskedMultiheadAttention(8, 2)
    with pytest.raises(TypeError, match="attn: expected an nn.Module"):
        AttentionBlock(lambda q: q)
    with pytest.raises(TypeError, match="mlp: expected an nn.Module"):
        AttentionBlock(attn, torch.relu)
    with pytest.raises(ValueError, match="norm2: .* needs an mlp"):
        AttentionBlock(attn, norm2=nn.LayerNorm(8))
    with pytest.raises(ValueError, match="mlp_residual: expected True, False or 'input'"):
        AttentionBlock(attn, nn.Linear(8, 8), mlp_residual="query")
    block = AttentionBlock(attn, nn.Linear(8, 8), norm2=nn.LayerNorm(8))
    with pytest.raises(ValueError, match=r"x: .*\(2, 3, 6\)"):
        block(torch.randn(2, 3, 6))
    assert block(torch.randn(0, 3, 8)).shape == (0, 3, 8)
    x = torch.randn(2, 3, 8, requires_grad=True)
    out = block(x, mask=torch.zeros(2, 3, dtype=torch.bool))  # fully masked
    assert (out == 0).all()
    out.sum().backward()
    assert torch.isfinite(x.grad).all() and (x.grad == 0).all()
