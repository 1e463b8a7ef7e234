"""The valid-rows path (``skip_padding=True``): same outputs and gradients as the padded grid,
matrix products on the valid rows only, and the padded path under ``torch.compile``."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from dsgg_layers import (
    MaskedMultiheadAttention,
    MotionInteraction,
    SpatialContextEncoder,
    SpatialTemporalEncoder,
    TransformerEncoder,
    TransformerEncoderLayer,
)
from dsgg_layers.rows import ValidRows, rowwise, split_mask


def set_skip_padding(module: nn.Module, value: bool) -> nn.Module:
    for m in module.modules():
        if isinstance(m, MaskedMultiheadAttention):
            m.skip_padding = value
    return module


def grid(seed, B=2, T=4, P=3, D=8, p_valid=0.6, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, T, P, D, generator=g, dtype=dtype)
    mask = torch.rand(B, T, P, generator=g) < p_valid
    return x.masked_fill(~mask.unsqueeze(-1), 0.0), mask


def both_paths(module, fn, *inputs):
    """Output and input gradients with skip_padding on, then off (same weights)."""
    results = []
    for skip in (True, False):
        set_skip_padding(module, skip)
        leaves = [t.detach().requires_grad_() for t in inputs]
        out = fn(module, *leaves)
        (out * torch.linspace(-1, 1, out.shape[-1], dtype=out.dtype)).sum().backward()
        results.append((out.detach(), [t.grad for t in leaves]))
    set_skip_padding(module, True)
    return results


def assert_same(results):
    (out_rows, grads_rows), (out_grid, grads_grid) = results
    torch.testing.assert_close(out_rows, out_grid)
    for a, b in zip(grads_rows, grads_grid, strict=True):
        torch.testing.assert_close(a, b)


def test_valid_rows_gather_scatter_round_trip():
    mask = torch.tensor([[True, False, True], [False, False, True]])
    rows = ValidRows(mask)
    x = torch.arange(12.0).view(2, 3, 2)
    assert len(rows) == 3
    torch.testing.assert_close(rows.gather(x), torch.tensor([[0.0, 1], [4, 5], [10, 11]]))
    back = rows.scatter(rows.gather(x))
    torch.testing.assert_close(back, x.masked_fill(~mask.unsqueeze(-1), 0.0))
    pos = torch.tensor([[100.0], [200.0], [300.0]])  # (L, C), broadcast over the leading dim
    torch.testing.assert_close(rows.gather(pos), torch.tensor([[100.0], [300.0], [300.0]]))


@settings(deadline=None, max_examples=25)
@given(
    seed=st.integers(0, 2**16),
    p_valid=st.sampled_from([0.0, 0.3, 0.7, 1.0]),
    norm_first=st.booleans(),
    with_pos=st.booleans(),
)
def test_encoder_layer_rows_equal_grid(seed, p_valid, norm_first, with_pos):
    torch.manual_seed(seed)
    layer = TransformerEncoderLayer(8, 2, 16, dropout=0.0, norm_first=norm_first).double()
    x, mask = grid(seed, p_valid=p_valid)
    pos = torch.randn(3, 8, dtype=torch.float64) if with_pos else None
    assert_same(both_paths(layer, lambda m, a: m(a, mask, pos=pos), x))


@settings(deadline=None, max_examples=25)
@given(seed=st.integers(0, 2**16), p_valid=st.sampled_from([0.0, 0.5, 1.0]))
def test_cross_attention_rows_equal_grid(seed, p_valid):
    torch.manual_seed(seed)
    attn = MaskedMultiheadAttention(8, 2, kdim=6, vdim=6).double()
    q, q_mask = grid(seed, p_valid=0.7)
    kv, kv_mask = grid(seed + 1, D=6, P=5, p_valid=p_valid)
    kv_mask[0, 0] = False  # a frame whose queries have no valid key: output 0, not NaN
    q_pos, k_pos = torch.randn(3, 8, dtype=torch.float64), torch.randn(5, 6, dtype=torch.float64)

    def fn(m, a, b):
        return m(a, b, b.flip(-1), query_mask=q_mask, key_mask=kv_mask,
                 query_pos=q_pos, key_pos=k_pos)[0]  # fmt: skip

    results = both_paths(attn, fn, q, kv)
    assert_same(results)
    assert (results[0][0][0, 0] == 0).all()


def test_encoder_stack_and_relation_block_rows_equal_grid():
    torch.manual_seed(0)
    enc = TransformerEncoder(
        TransformerEncoderLayer(8, 2, 16, dropout=0.0), 2, norm=nn.LayerNorm(8)
    )
    x, mask = grid(1)
    pos = torch.randn(4, 3, 8, dtype=torch.float64)  # the grid's own shape, no broadcast
    assert_same(both_paths(enc.double(), lambda m, a: m(a, mask, pos=pos), x))
    for window in (None, 2):
        block = SpatialTemporalEncoder(8, 2, 16, temporal_layers=2, dropout=0.0,
                                       temporal_window=window).double()  # fmt: skip
        x, mask = grid(2, B=3, T=6, P=4)
        assert_same(both_paths(block, lambda m, a, mask=mask: m(a, mask), x))
    mim = MotionInteraction(8, 2, dropout=0.0).double()
    x, mask = grid(3)
    assert_same(both_paths(mim, lambda m, a, b: m(a, b, mask), x, x.flip(-1)))


def test_matrix_products_see_only_the_valid_rows():
    block = SpatialTemporalEncoder(8, 2, 16, temporal_layers=2, dropout=0.0)
    x, mask = grid(4, B=3, T=6, P=4, dtype=torch.float32)
    seen = []
    for module in block.modules():
        if isinstance(module, nn.Linear):
            module.register_forward_hook(lambda m, args, out: seen.append(args[0][..., 0].numel()))
    block(x, mask)
    assert seen and set(seen) == {int(mask.sum())}
    seen.clear()
    set_skip_padding(block, False)(x, mask)
    assert set(seen) == {3 * 6 * 4}  # the padded grid's rows (spatial and temporal)


def test_skip_padding_is_configurable_and_off_with_weights():
    layer = TransformerEncoderLayer(8, 2, 16, dropout=0.0, skip_padding=False)
    assert layer.skip_padding is False and layer.self_attn.skip_padding is False
    layer.skip_padding = True
    assert layer.self_attn.skip_padding is True
    block = SpatialTemporalEncoder(8, 2, 16, skip_padding=False)
    assert all(not m.skip_padding for m in block.modules() if hasattr(m, "skip_padding"))
    seen = []
    layer.linear1.register_forward_hook(lambda m, args, out: seen.append(args[0].shape))
    x, mask = torch.randn(2, 5, 8), torch.rand(2, 5) > 0.5
    layer(x, mask)
    assert seen[-1] == (int(mask.sum()), 8)
    layer(x, mask, need_weights=True)  # attention weights: the padded path
    assert seen[-1] == (2, 5, 8)


def test_empty_and_degenerate_grids():
    block = SpatialTemporalEncoder(8, 2, 16, temporal_layers=1, dropout=0.0)
    for shape in ((0, 4, 3), (2, 0, 3), (2, 4, 0)):
        x = torch.randn(*shape, 8, requires_grad=True)
        out = block(x, torch.ones(shape, dtype=torch.bool))
        assert out.shape == x.shape
        out.sum().backward()
    x = torch.randn(2, 4, 3, 8, requires_grad=True)
    out = block(x, torch.zeros(2, 4, 3, dtype=torch.bool))  # fully masked
    assert (out == 0).all()
    out.sum().backward()
    assert torch.equal(x.grad, torch.zeros_like(x))  # padding gets exactly zero gradient


def test_bf16_autocast_rows_close_to_grid():
    torch.manual_seed(0)
    block = SpatialTemporalEncoder(32, 4, 64, temporal_layers=2, dropout=0.0).eval()
    x, mask = grid(5, B=3, T=6, P=4, D=32, dtype=torch.float32)
    outs = []
    for skip in (True, False):
        set_skip_padding(block, skip)
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            outs.append(block(x, mask).float())
    torch.testing.assert_close(outs[0], outs[1], rtol=0.05, atol=0.05)
    assert (outs[0][~mask] == 0).all()


@pytest.mark.parametrize("window", [None, 2])
def test_compiled_block_takes_the_padded_path_and_matches(window):
    block = SpatialTemporalEncoder(16, 4, 32, temporal_layers=1, dropout=0.0,
                                   temporal_window=window).eval()  # fmt: skip
    x, mask = grid(6, D=16, dtype=torch.float32)
    compiled = torch.compile(block, fullgraph=True)
    torch.testing.assert_close(compiled(x, mask), block(x, mask), rtol=1e-4, atol=1e-5)


# ---------------------------------------------------- a mask argument takes its ValidRows


@given(st.integers(0, 2**31 - 1), st.integers(0, 3), st.floats(0.0, 1.0))
@settings(max_examples=40, deadline=None)
def test_prepend_equals_the_rows_of_the_extended_mask(seed, num, p_valid):
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(2, 3, 4, generator=g) < p_valid
    got = ValidRows(mask).prepend(num)
    want = ValidRows(torch.cat((torch.ones(2, 3, num, dtype=torch.bool), mask), -1))
    assert torch.equal(got.index, want.index) and torch.equal(got.mask, want.mask)


def test_full_rows_and_gather_outer():
    full = ValidRows.full((2, 3))
    assert torch.equal(full.index, torch.arange(6)) and full.mask.all()
    mask = torch.tensor([[[True, False], [False, True]], [[False, False], [True, True]]])
    rows = ValidRows(mask)  # (B=2, T=2, P=2): rows (0,0,0) (0,1,1) (1,1,0) (1,1,1)
    video = torch.tensor([[10.0], [20.0]])
    assert rows.gather_outer(video).flatten().tolist() == [10.0, 10.0, 20.0, 20.0]
    frame = torch.arange(4.0).view(2, 2, 1)
    assert rows.gather_outer(frame).flatten().tolist() == [0.0, 1.0, 3.0, 3.0]
    with pytest.raises(ValueError, match=r"x: expected \(\*\(2,\), C\) of the grid"):
        rows.gather_outer(torch.zeros(3, 1))


def test_rowwise_runs_on_the_rows_and_equals_the_grid():
    mask = torch.tensor([[True, False, True], [False, False, True]])
    x = torch.randn(2, 3, 4, 5).masked_fill(~mask[..., None, None], float("nan"))
    seen = []

    def fn(t):
        seen.append(t.shape[0])
        return t.sum(-2) * 2

    on_rows = rowwise(fn, ValidRows(mask), x)
    on_grid = rowwise(fn, mask, x)
    assert seen == [3, 2]  # the valid rows only, then the whole grid
    assert torch.equal(on_rows, on_grid) and torch.isfinite(on_rows).all()
    assert (on_rows[~mask] == 0).all()


def test_old_rows_keywords_warn_at_the_callers_line_and_still_work():
    torch.manual_seed(0)
    layer = TransformerEncoderLayer(8, 2, 16, dropout=0.0).eval()
    x, mask = grid(0, dtype=torch.float32)
    want = layer(x, ValidRows(mask))
    with pytest.warns(
        DeprecationWarning, match=r"rows= is deprecated .* pass the ValidRows as mask="
    ) as rec:
        got = layer(x, mask, rows=ValidRows(mask))
    assert rec[0].filename == __file__
    torch.testing.assert_close(got, want)
    attn = MaskedMultiheadAttention(8, 2).eval()
    with pytest.warns(DeprecationWarning, match="query_rows= is deprecated"):
        attn(x, query_mask=mask, query_rows=ValidRows(mask))
    with pytest.raises(
        ValueError, match=r"rows: expected the ValidRows of mask \(shape \(2, 4, 3\)"
    ):
        with pytest.warns(DeprecationWarning):
            layer(x, mask, rows=ValidRows(mask[:, :2]))
    with pytest.raises(TypeError, match="mask: expected a bool tensor or a ValidRows, got list"):
        split_mask([True])


def test_context_tokens_on_rows_match_the_grid_also_for_frames_without_pairs():
    torch.manual_seed(0)
    enc = SpatialContextEncoder(8, nhead=2, num_layers=1, dim_feedforward=16, dropout=0.0).eval()
    x, mask = grid(1, dtype=torch.float32)
    mask[0, 1] = False  # a frame without pairs: its token is valid on rows, padding on the grid
    want, got = enc(x, mask), enc(x, ValidRows(mask))
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert (got[0][0, 1] == 0).all()


def test_take_and_put_handle_any_trailing_dims_and_no_valid_row():
    mask = torch.tensor([[True, False, True], [False, False, True]])
    rows = ValidRows(mask)
    x = torch.arange(2 * 3 * 2 * 2.0).view(2, 3, 2, 2)
    taken = rows.take(x)
    assert taken.shape == (3, 2, 2) and torch.equal(taken, x[mask])
    assert torch.equal(rows.take(x[..., 0, 0]), x[..., 0, 0][mask])  # no trailing dim
    back = rows.put(taken)
    assert torch.equal(back[mask], x[mask]) and (back[~mask] == 0).all()
    empty = ValidRows(torch.zeros(2, 3, dtype=torch.bool))
    assert empty.take(x).shape == (0, 2, 2)
    assert torch.equal(empty.put(empty.take(x)), torch.zeros_like(x))
    with pytest.raises(ValueError, match=r"x: expected a tensor of shape \(\(2, 3\), \.\.\.\)"):
        rows.take(torch.zeros(3, 2))
