"""SpatialTemporalEncoder, the spatial-temporal relation block, vs an STTran-style loop."""

import importlib.util
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dsgg_layers import SpatialTemporalEncoder, sinusoidal_positions, track_ranks

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location(
    "_sttran_style", ROOT / "benchmarks" / "_sttran_style.py"
)
sttran_style = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = sttran_style
_spec.loader.exec_module(sttran_style)


def block64(window=None, layers=(1, 2), d=16):
    torch.manual_seed(0)
    block = SpatialTemporalEncoder(d, nhead=2, dim_feedforward=24, spatial_layers=layers[0],
                                   temporal_layers=layers[1], dropout=0.0,
                                   temporal_window=window)  # fmt: skip
    return block.double().eval()


def random_video(seed, T=6, P=3, D=16, p_valid=0.7):
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(1, T, P, generator=g) < p_valid
    x = torch.randn(1, T, P, D, generator=g, dtype=torch.float64)
    return x.masked_fill(~mask.unsqueeze(-1), 0.0), mask


def test_sinusoidal_positions_hand_values_and_errors():
    pe = sinusoidal_positions(torch.tensor([0, 2]), 4)
    # position 2, dim 4: frequencies 1 and 1/100 -> [sin 2, sin 0.02, cos 2, cos 0.02]
    want = torch.tensor([[0.0, 0.0, 1.0, 1.0], [0.909297, 0.019999, -0.416147, 0.999800]])
    torch.testing.assert_close(pe, want, atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="dim: expected an even width, got 3"):
        sinusoidal_positions(3, 3)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), T=st.integers(1, 7), P=st.integers(1, 4),
       window=st.sampled_from([None, 1, 2, 3]))  # fmt: skip
def test_matches_the_sttran_style_loop_reference(seed, T, P, window):
    block = block64(window)
    x, mask = random_video(seed, T, P)
    frame, pair = mask[0].nonzero().unbind(1)  # flat rows sorted by frame, as STTran keeps them
    with torch.no_grad():
        want = sttran_style.sttran_style_forward(block, x[mask], frame, pair, T)
        got = block(x, mask, torch.ones(1, T, dtype=torch.bool))
    torch.testing.assert_close(got[mask], want, atol=1e-10, rtol=1e-10)
    assert (got[~mask] == 0).all()


def test_batch_invariance_and_padding_never_leaks():
    block = block64(2)
    videos = [random_video(s, T=3 + s, P=1 + s % 3) for s in range(4)]
    T = max(x.shape[1] for x, _ in videos)
    P = max(x.shape[2] for x, _ in videos)
    xb = torch.randn(4, T, P, 16, dtype=torch.float64) * 50  # garbage in the padding
    mb = torch.zeros(4, T, P, dtype=torch.bool)
    fb = torch.zeros(4, T, dtype=torch.bool)
    for b, (x, m) in enumerate(videos):
        xb[b, : x.shape[1], : x.shape[2]] = torch.where(
            m[0].unsqueeze(-1), x[0], xb[b, : x.shape[1], : x.shape[2]]
        )
        mb[b, : m.shape[1], : m.shape[2]] = m[0]
        fb[b, : m.shape[1]] = True
    out = block(xb, mb, fb)
    for b, (x, m) in enumerate(videos):
        alone = block(x, m, torch.ones(1, x.shape[1], dtype=torch.bool))[0]
        torch.testing.assert_close(out[b, : x.shape[1], : x.shape[2]][m[0]], alone[m[0]])
    assert (out[~mb] == 0).all()


def test_degenerate_inputs_are_finite():
    block = block64(2)
    for T, P, p in ((1, 3, 1.0), (5, 2, 0.0), (4, 0, 1.0), (3, 2, 0.5)):
        x, mask = random_video(1, T, P, p_valid=p)
        if T == 3:
            mask[:, 1] = False  # an empty frame in the middle
        out = block(x, mask)
        assert out.shape == x.shape and torch.isfinite(out).all()
        assert (out[~mask] == 0).all()
    x, mask = random_video(2, 4, 2)
    x.requires_grad_()
    block(x, mask).sum().backward()
    assert torch.isfinite(x.grad).all() and (x.grad[~mask] == 0).all()


def test_errors():
    block = SpatialTemporalEncoder(16, nhead=2, dim_feedforward=8)
    x, mask = torch.randn(2, 3, 4, 16), torch.ones(2, 3, 4, dtype=torch.bool)
    with pytest.raises(ValueError, match=r"x: expected shape \(\.\.\., T, P, 16\)"):
        block(torch.randn(2, 3, 4, 8), mask)
    with pytest.raises(ValueError, match=r"mask: expected shape \(2, 3, 4\)"):
        block(x, mask[:, :2])
    with pytest.raises(TypeError, match="mask: expected a bool tensor"):
        block(x, mask.float())
    with pytest.raises(ValueError, match="temporal_window: expected a value > 0, got 0"):
        SpatialTemporalEncoder(16, 2, temporal_window=0)
    with pytest.raises(ValueError, match="temporal_layers: expected an int >= 0, got -1"):
        SpatialTemporalEncoder(16, 2, temporal_layers=-1)
    assert "temporal_window=None" in repr(block)


def test_halves_compose_and_zero_layers_is_identity_on_valid_entries():
    block = block64(None)
    x, mask = random_video(3)
    torch.testing.assert_close(
        block(x, mask), block.forward_temporal(block.forward_spatial(x, mask), mask)
    )
    none = block64(None, layers=(0, 0))
    torch.testing.assert_close(none(x, mask), x)


def test_gradcheck():
    block = block64(2, layers=(1, 1), d=4)
    x, mask = random_video(4, T=3, P=2, D=4)
    x.requires_grad_()
    assert torch.autograd.gradcheck(lambda t: block(t, mask), (x,))


@pytest.mark.parametrize("window", [None, 2])
def test_compile_fullgraph_matches_eager(window):
    block = SpatialTemporalEncoder(16, nhead=2, dim_feedforward=24, temporal_layers=2,
                                   dropout=0.0, temporal_window=window).eval()  # fmt: skip
    x, mask = torch.randn(2, 5, 3, 16), torch.rand(2, 5, 3) > 0.3
    compiled = torch.compile(block, fullgraph=True)
    torch.testing.assert_close(compiled(x, mask), block(x, mask), rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------ rank positions (TR²'s code)


def test_rank_positions_number_each_track_across_its_gaps():
    block = SpatialTemporalEncoder(8, 2, 16, spatial_layers=0, temporal_layers=1, dropout=0.0,
                                   positions="rank").eval()  # fmt: skip
    x = torch.randn(1, 4, 2, 8)
    mask = torch.tensor([[[True, False], [False, True], [True, True], [True, True]]])
    ranks = track_ranks(mask)
    assert ranks[0].tolist() == [[0, 0], [0, 0], [1, 1], [2, 2]]
    pos = sinusoidal_positions(ranks.transpose(-2, -1), 8, tensor2tensor=True)
    ref = block.temporal(x.transpose(1, 2), mask.transpose(1, 2), pos=pos).transpose(1, 2)
    torch.testing.assert_close(block(x, mask), ref)
    # a pair that misses frames: its output equals the same pair with the gaps removed
    alone = block(x[:, [0, 2, 3], :1], mask[:, [0, 2, 3], :1])
    torch.testing.assert_close(block(x, mask)[:, [0, 2, 3], :1], alone)
    with pytest.raises(ValueError, match="positions: 'rank' numbers a whole track"):
        SpatialTemporalEncoder(8, 2, 16, temporal_window=2, positions="rank")
    with pytest.raises(ValueError, match="positions: expected one of 'slot', 'rank', 'frame'"):
        SpatialTemporalEncoder(8, 2, 16, positions="time")


def test_tensor2tensor_frequencies_end_at_one_over_the_base():
    pe = sinusoidal_positions(torch.tensor([1.0]), 8, tensor2tensor=True, dtype=torch.float64)
    f = torch.tensor([1.0, 1e-4 ** (1 / 3), 1e-4 ** (2 / 3), 1e-4], dtype=torch.float64)
    torch.testing.assert_close(pe[0], torch.cat((torch.sin(f), torch.cos(f))))
    plain = sinusoidal_positions(torch.tensor([1.0]), 8, dtype=torch.float64)
    assert not torch.allclose(plain, pe)  # the library's default divides by dim / 2


# ------------------------------------------------------------------- TR²'s code form


def _timing_signal(length, channels):
    """TR²'s ``lib/models/utils.py::get_timing_signal_1d``, transcribed."""
    import math

    position = torch.arange(length, dtype=torch.float64)
    n = channels // 2
    inc = math.log(1.0e4) / (n - 1)
    inv = torch.exp(torch.arange(n, dtype=torch.float64) * -inc)
    t = position[:, None] * inv[None]
    return torch.cat([torch.sin(t), torch.cos(t)], 1)


class _TR2TemporalLayer(torch.nn.Module):
    """TR²'s ``lib/models/feature_fusion.py::TransformerDecoderLayer.forward`` (its temporal
    layer), transcribed: q = k = x + pos, v = x; residual, norm; residual feed-forward, no norm."""

    def __init__(self, d, nhead, ff):
        super().__init__()
        self.multihead2 = torch.nn.MultiheadAttention(d, nhead, batch_first=True)
        self.linear1, self.linear2 = torch.nn.Linear(d, ff), torch.nn.Linear(ff, d)
        self.norm3 = torch.nn.LayerNorm(d)

    def forward(self, x, key_padding_mask, pos):
        tgt2 = self.multihead2(x + pos, x + pos, x, key_padding_mask=key_padding_mask)[0]
        tgt = self.norm3(x + tgt2)
        return tgt + self.linear2(torch.relu(self.linear1(tgt)))


def _load_tr2_layer(ours, theirs):
    a = ours.self_attn
    w = torch.cat([a.q_proj.weight, a.k_proj.weight, a.v_proj.weight])
    b = torch.cat([a.q_proj.bias, a.k_proj.bias, a.v_proj.bias])
    theirs.multihead2.in_proj_weight.data = w.detach().clone()
    theirs.multihead2.in_proj_bias.data = b.detach().clone()
    theirs.multihead2.out_proj.load_state_dict(a.out_proj.state_dict())
    theirs.linear1.load_state_dict(ours.linear1.state_dict())
    theirs.linear2.load_state_dict(ours.linear2.state_dict())
    theirs.norm3.load_state_dict(ours.norm1.state_dict())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_temporal_layer_without_ffn_norm_equals_tr2s_code(seed):
    torch.manual_seed(seed)
    block = SpatialTemporalEncoder(16, 2, 24, spatial_layers=0, temporal_layers=2, dropout=0.0,
                                   positions="rank", temporal_ffn_norm=False)  # fmt: skip
    block = block.double().eval()
    assert all(layer.norm2 is None for layer in block.temporal.layers)
    code = [_TR2TemporalLayer(16, 2, 24).double().eval() for _ in range(2)]
    for ours, theirs in zip(block.temporal.layers, code, strict=True):
        _load_tr2_layer(ours, theirs)
    # one video, every pair present in every frame: rank == frame index (the code's layout)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(1, 5, 3, 16, generator=g, dtype=torch.float64)
    mask = torch.ones(1, 5, 3, dtype=torch.bool)
    h = x[0].transpose(0, 1)  # (P, T, D): one sequence a track, as the code's r1
    pos = _timing_signal(5, 16)[None]
    for layer in code:
        h = layer(h, torch.zeros(3, 5, dtype=torch.bool), pos)
    torch.testing.assert_close(block(x, mask)[0], h.transpose(0, 1))
    # with the norm (the library's default) the outputs differ: the option matters
    normed = SpatialTemporalEncoder(16, 2, 24, spatial_layers=0, temporal_layers=2, dropout=0.0,
                                    positions="rank").double().eval()  # fmt: skip
    sd = {k: v for k, v in normed.state_dict().items()}
    sd.update(block.state_dict())
    normed.load_state_dict(sd)
    assert (normed(x, mask) - block(x, mask)).abs().max() > 1e-2


def test_frame_positions_index_the_code_layout_by_frame_slot():
    torch.manual_seed(0)
    block = SpatialTemporalEncoder(8, 2, 16, spatial_layers=0, temporal_layers=1, dropout=0.0,
                                   positions="frame").double().eval()  # fmt: skip
    x = torch.randn(2, 5, 2, 8, dtype=torch.float64)
    mask = torch.rand(2, 5, 2) > 0.3
    pos = _timing_signal(5, 8)  # row t: frame slot t, whatever the track's rank there
    ref = block.temporal(x.transpose(1, 2), mask.transpose(1, 2), pos=pos).transpose(1, 2)
    torch.testing.assert_close(block(x, mask), ref)
    # a track with a gap: frame positions keep the gap, rank positions close it
    gap = torch.tensor([[[True, True], [False, True], [True, True], [True, True], [True, True]]])
    rank = SpatialTemporalEncoder(8, 2, 16, spatial_layers=0, temporal_layers=1, dropout=0.0,
                                  positions="rank").double().eval()  # fmt: skip
    rank.load_state_dict(block.state_dict())
    a, b = block(x[:1], gap), rank(x[:1], gap)
    torch.testing.assert_close(a[..., 1, :], b[..., 1, :])  # no gap: the same positions
    assert (a[..., 0, :] - b[..., 0, :]).abs().max() > 1e-6
    # padding never leaks, gradients finite, gradcheck, compile == eager
    dirty = x.masked_fill(~mask[..., None], float("nan")).requires_grad_()
    out = block(dirty, mask)
    torch.testing.assert_close(out, block(x, mask))
    out.sum().backward()
    assert torch.isfinite(dirty.grad).all() and (dirty.grad[~mask] == 0).all()
    small = torch.randn(1, 3, 2, 8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: block(v, torch.ones(1, 3, 2, dtype=torch.bool)),
                                    (small,))  # fmt: skip
    with pytest.raises(ValueError, match="positions: 'frame' numbers a whole track"):
        SpatialTemporalEncoder(8, 2, 16, temporal_window=2, positions="frame")
    assert "temporal_ffn_norm=False" in repr(
        SpatialTemporalEncoder(8, 2, 16, temporal_ffn_norm=False)
    )


@pytest.mark.parametrize("train", [False, True])
def test_code_form_temporal_encoder_compiles(train):
    torch.manual_seed(0)
    block = SpatialTemporalEncoder(8, 2, 16, temporal_layers=2, dropout=0.0, positions="frame",
                                   temporal_ffn_norm=False).train(train)  # fmt: skip
    x, mask = torch.randn(2, 4, 3, 8), torch.rand(2, 4, 3) > 0.3
    torch._dynamo.reset()
    eager = block(x, mask)
    compiled = torch.compile(block, fullgraph=True)(x, mask)
    torch.testing.assert_close(compiled, eager, rtol=1e-4, atol=1e-5)


def test_layer_without_ffn_norm_padding_gradcheck_and_errors():
    from dsgg_layers import TransformerEncoderLayer

    torch.manual_seed(0)
    layer = TransformerEncoderLayer(8, 2, 16, dropout=0.0, ffn_norm=False).double()
    assert layer.norm2 is None and "ffn_norm=False" in repr(layer)
    layer.reset_parameters()  # no norm2 to reset: no error
    x = torch.randn(3, 5, 8, dtype=torch.float64)
    mask = torch.rand(3, 5) > 0.3
    h = layer.norm1(x + layer.self_attn(x, query_mask=mask)[0])
    expected = (h + layer.linear2(torch.relu(layer.linear1(h)))).masked_fill(~mask[..., None], 0)
    torch.testing.assert_close(layer(x, mask), expected)
    dirty = x.masked_fill(~mask[..., None], float("nan")).requires_grad_()
    out = layer(dirty, mask)
    torch.testing.assert_close(out, expected)
    out.sum().backward()
    assert torch.isfinite(dirty.grad).all() and (dirty.grad[~mask] == 0).all()
    small = torch.randn(2, 3, 8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(layer, (small,))
    pre = TransformerEncoderLayer(8, 2, 16, dropout=0.0, norm_first=True, ffn_norm=False)
    y = torch.randn(2, 3, 8)
    a = y + pre.self_attn(pre.norm1(y))[0]
    torch.testing.assert_close(pre(y), a + pre.linear2(torch.relu(pre.linear1(a))))
    with pytest.raises(ValueError, match="mask"):
        layer(x, torch.ones(3, 4, dtype=torch.bool))
