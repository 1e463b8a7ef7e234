"""MoSA motion attributes (Eq. 3-6 as read in SPEC.md) and the Motion Feature Extractor."""

import copy
import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from dsgg_layers.motion import MotionFeatureExtractor, MotionInteraction, motion_attributes


def loop_reference(subj, obj, mask, times, window, image_size=None, eps=1e-6):
    """The four attributes by the definitions, one (video, pair, frame) at a time."""
    B, T, P, _ = subj.shape
    out = torch.zeros(B, T, P, 4, dtype=torch.float64)
    diag = 1.0 if image_size is None else math.hypot(*image_size)

    def center(b):
        return ((b[0] + b[2]) / 2, (b[1] + b[3]) / 2)

    def iou(a, c):
        iw = max(0.0, min(a[2], c[2]) - max(a[0], c[0]))
        ih = max(0.0, min(a[3], c[3]) - max(a[1], c[1]))
        inter = iw * ih
        union = (a[2] - a[0]) * (a[3] - a[1]) + (c[2] - c[0]) * (c[3] - c[1]) - inter
        return inter / union if union > 0 else 0.0

    for b in range(B):
        for p in range(P):
            prev = None
            for t in range(T):
                if not mask[b, t, p]:
                    continue
                s, o = subj[b, t, p].tolist(), obj[b, t, p].tolist()
                cs, co = center(s), center(o)
                d = math.dist(cs, co) / diag
                v = c = 0.0
                if prev is not None:
                    tp, dp, csp, cop = prev
                    dt = float(times[b, t] - times[b, tp])
                    v = (d - dp) / dt if dt > 0 else 0.0
                    ds = (cs[0] - csp[0], cs[1] - csp[1])
                    do = (co[0] - cop[0], co[1] - cop[1])
                    ns, no = math.hypot(*ds), math.hypot(*do)
                    if ns > eps and no > eps:
                        c = (ds[0] * do[0] + ds[1] * do[1]) / (ns * no)
                ious = [
                    iou(subj[b, k, p].tolist(), obj[b, k, p].tolist())
                    for k in range(max(0, t - window + 1), t + 1)
                    if mask[b, k, p]
                ]
                out[b, t, p] = torch.tensor([d, v, sum(ious) / len(ious), c])
                prev = (t, d, cs, co)
    return out


def random_tracks(seed, B=2, T=6, P=3, p_valid=0.7, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(B, T, P, 2, 2, generator=g, dtype=dtype)
    wh = torch.rand(B, T, P, 2, 2, generator=g, dtype=dtype) * 0.4
    boxes = torch.cat((xy, xy + wh), -1)  # (B, T, P, 2, 4): subject and object
    mask = torch.rand(B, T, P, generator=g) < p_valid
    times = torch.cumsum(torch.randint(1, 5, (B, T), generator=g), 1)
    return boxes[..., 0, :], boxes[..., 1, :], mask, times


def test_hand_computed_case():
    # Subject fixed at centre (1, 1); the object's centre moves (5, 1) -> (3, 1) -> (3, 1) -> (2, 1)
    # at frame times 0, 2, 3, 7, the third frame missing.
    subj = torch.tensor([0.0, 0.0, 2.0, 2.0]).expand(1, 4, 1, 4)
    obj = torch.tensor([[4.0, 0, 6, 2], [2.0, 0, 4, 2], [2.0, 0, 4, 2], [1.0, 0, 3, 2]])
    obj = obj.view(1, 4, 1, 4)
    mask = torch.tensor([True, True, False, True]).view(1, 4, 1)
    times = torch.tensor([[0, 2, 3, 7]])
    out = motion_attributes(subj, obj, mask, times, window=2)[0, :, 0]
    # Eq. 3: distance; Eq. 4: (d_t - d_t') / (tau_t - tau_t') with t' the previous valid frame.
    torch.testing.assert_close(out[:, 0], torch.tensor([4.0, 2.0, 0.0, 1.0]))
    torch.testing.assert_close(out[:, 1], torch.tensor([0.0, -1.0, 0.0, -0.2]))
    # Eq. 5: IoU(frame 1) = 0 (the boxes touch), frame 3 = 1/3; the window of 2 slots at frame 3
    # holds frames 2 (missing) and 3 only.
    torch.testing.assert_close(out[:, 2], torch.tensor([0.0, 0.0, 0.0, 1 / 3]))
    # Eq. 6: the subject never moves, so direction consistency is 0 everywhere.
    assert (out[:, 3] == 0).all()


def test_direction_consistency_values():
    # Both move right: +1; opposite ways: -1; perpendicular: 0.
    subj = torch.tensor([[0.0, 0, 1, 1], [1.0, 0, 2, 1]]).view(1, 2, 1, 4).expand(1, 2, 3, 4)
    obj = torch.tensor(
        [
            [[5.0, 5, 6, 6], [5.0, 5, 6, 6], [5.0, 5, 6, 6]],
            [[6.0, 5, 7, 6], [4.0, 5, 5, 6], [5.0, 6, 6, 7]],
        ]
    ).view(1, 2, 3, 4)
    out = motion_attributes(subj, obj, torch.ones(1, 2, 3, dtype=torch.bool))
    torch.testing.assert_close(out[0, 1, :, 3], torch.tensor([1.0, -1.0, 0.0]))
    assert (out[0, 0, :, 3] == 0).all()  # no previous frame


def test_image_size_normalises_distance_and_velocity():
    subj, obj, mask, times = random_tracks(0)
    px = motion_attributes(subj * 100, obj * 100, mask, times, image_size=(300.0, 400.0))
    unit = motion_attributes(subj, obj, mask, times)
    torch.testing.assert_close(px[..., :2], unit[..., :2] * 100 / 500)
    torch.testing.assert_close(px[..., 2:], unit[..., 2:])
    # one size per video
    sizes = torch.tensor([[300.0, 400.0], [30.0, 40.0]], dtype=torch.float64)
    per_video = motion_attributes(subj * 100, obj * 100, mask, times, image_size=sizes)
    torch.testing.assert_close(per_video[0], px[0])
    torch.testing.assert_close(per_video[1, ..., 0], unit[1, ..., 0] * 100 / 50)


@given(seed=st.integers(0, 2**16), window=st.integers(1, 7), use_times=st.booleans())
def test_matches_loop_reference(seed, window, use_times):
    subj, obj, mask, times = random_tracks(seed)
    if not use_times:
        times_ = torch.arange(subj.shape[1]).expand(subj.shape[0], -1)
    else:
        times_ = times
    got = motion_attributes(subj, obj, mask, times if use_times else None, window=window)
    torch.testing.assert_close(got, loop_reference(subj, obj, mask, times_, window))


@given(seed=st.integers(0, 2**16))
def test_properties(seed):
    subj, obj, mask, times = random_tracks(seed)
    out = motion_attributes(subj, obj, mask, times)
    swapped = motion_attributes(obj, subj, mask, times)
    torch.testing.assert_close(out[..., :3], swapped[..., :3])  # symmetric in subject/object
    torch.testing.assert_close(out[..., 3], swapped[..., 3])  # cosine is symmetric too
    assert (out[..., 0] >= 0).all()
    assert ((out[..., 2] >= 0) & (out[..., 2] <= 1)).all()
    assert ((out[..., 3] >= -1) & (out[..., 3] <= 1)).all()
    assert (out[~mask] == 0).all() and torch.isfinite(out).all()


def test_velocity_sign_follows_approach():
    t = torch.arange(5, dtype=torch.float64)
    subj = torch.tensor([0.0, 0, 1, 1], dtype=torch.float64).expand(1, 5, 1, 4)
    approach = torch.stack((10 - t, torch.zeros(5), 11 - t, torch.ones(5)), -1).view(1, 5, 1, 4)
    leave = torch.stack((2 + t, torch.zeros(5), 3 + t, torch.ones(5)), -1).view(1, 5, 1, 4)
    mask = torch.ones(1, 5, 1, dtype=torch.bool)
    assert (motion_attributes(subj, approach, mask)[0, 1:, 0, 1] < 0).all()
    assert (motion_attributes(subj, leave, mask)[0, 1:, 0, 1] > 0).all()


@given(seed=st.integers(0, 2**16))
def test_padding_never_changes_valid_outputs(seed):
    subj, obj, mask, times = random_tracks(seed)
    out = motion_attributes(subj, obj, mask, times)
    g = torch.Generator().manual_seed(seed + 1)

    def junk(x):
        noise = torch.rand(x.shape, generator=g, dtype=x.dtype) * 50
        return torch.where(mask.unsqueeze(-1), x, noise)

    torch.testing.assert_close(motion_attributes(junk(subj), junk(obj), mask, times), out)


def test_batch_invariance_and_leading_dims():
    subj, obj, mask, times = random_tracks(3, B=4)
    out = motion_attributes(subj, obj, mask, times)
    for b in range(4):
        torch.testing.assert_close(motion_attributes(subj[b], obj[b], mask[b], times[b]), out[b])
    stacked = motion_attributes(subj.view(2, 2, *subj.shape[1:]), obj.view(2, 2, *obj.shape[1:]),
                                mask.view(2, 2, *mask.shape[1:]), times.view(2, 2, -1))  # fmt: skip
    torch.testing.assert_close(stacked.view_as(out), out)


def test_degenerate_inputs():
    # one-frame video, empty frames, a fully masked track, zero-area and coincident boxes
    point = torch.tensor([1.0, 1.0, 1.0, 1.0])
    subj = point.expand(1, 1, 2, 4).clone().requires_grad_()
    obj = point.expand(1, 1, 2, 4).clone().requires_grad_()
    mask = torch.tensor([[[True, False]]])
    out = motion_attributes(subj, obj, mask)
    assert (out == 0).all()
    out.sum().backward()
    assert torch.isfinite(subj.grad).all() and torch.isfinite(obj.grad).all()
    empty = motion_attributes(
        torch.zeros(2, 0, 3, 4), torch.zeros(2, 0, 3, 4), torch.zeros(2, 0, 3, dtype=torch.bool)
    )
    assert empty.shape == (2, 0, 3, 4)
    none = motion_attributes(
        torch.rand(1, 4, 2, 4), torch.rand(1, 4, 2, 4), torch.zeros(1, 4, 2, dtype=torch.bool)
    )
    assert (none == 0).all()
    # repeated frame times: velocity is 0, not inf
    subj, obj, mask, _ = random_tracks(1)
    same = torch.zeros(subj.shape[0], subj.shape[1], dtype=torch.long)
    assert torch.isfinite(motion_attributes(subj, obj, mask, same)).all()


def test_gradcheck():
    subj, obj, mask, times = random_tracks(5, B=1, T=4, P=2, p_valid=0.8)
    subj.requires_grad_()
    obj.requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: motion_attributes(a, b, mask, times), (subj, obj))


def test_extractor_matches_functional_and_masks():
    mfe = MotionFeatureExtractor(16, window=4)
    subj, obj, mask, times = random_tracks(2, dtype=torch.float32)
    feats, attrs = mfe(subj, obj, mask, times, return_attributes=True)
    torch.testing.assert_close(attrs, motion_attributes(subj, obj, mask, times, window=4))
    assert feats.shape == (*mask.shape, 16) and (feats[~mask] == 0).all()
    torch.testing.assert_close(mfe(subj, obj, mask, times), feats)
    assert "window=4" in repr(mfe)


def test_errors():
    boxes = torch.zeros(2, 5, 3, 4)
    mask = torch.ones(2, 5, 3, dtype=torch.bool)
    with pytest.raises(ValueError, match=r"mask: expected shape \(\.\.\., T, P\) with T=5"):
        motion_attributes(boxes, boxes, mask[:, :4])
    with pytest.raises(TypeError, match="mask: expected a bool tensor"):
        motion_attributes(boxes, boxes, mask.float())
    with pytest.raises(ValueError, match=r"object_boxes: expected shape \(\.\.\., T, P, 4\)"):
        motion_attributes(boxes, torch.zeros(2, 5, 3, 5), mask)
    with pytest.raises(ValueError, match=r"frame_times: expected shape \(\.\.\., T\) with T=5"):
        motion_attributes(boxes, boxes, mask, torch.zeros(2, 6))
    with pytest.raises(ValueError, match="window: expected a value > 0, got 0"):
        motion_attributes(boxes, boxes, mask, window=0)
    with pytest.raises(ValueError, match="image_size: expected positive"):
        motion_attributes(boxes, boxes, mask, image_size=(0, 3))


# --- MotionFeatureExtractor scaling and MotionInteraction ---------------------------------------


def test_extractor_scales_velocity_before_the_mlp():
    mfe = MotionFeatureExtractor(8, velocity_scale=10.0, standardize=False)
    subj, obj, mask, times = random_tracks(4, dtype=torch.float32)
    feats, attrs = mfe(subj, obj, mask, times, return_attributes=True)
    want = mfe.mlp(attrs * torch.tensor([1.0, 10.0, 1.0, 1.0])).masked_fill(~mask.unsqueeze(-1), 0)
    torch.testing.assert_close(feats, want)
    with pytest.raises(ValueError, match="velocity_scale: expected a value > 0"):
        MotionFeatureExtractor(8, velocity_scale=0.0)


def test_extractor_standardizes_with_masked_batch_statistics():
    mfe = MotionFeatureExtractor(8, momentum=0.25)
    fresh = copy.deepcopy(mfe)
    subj, obj, mask, times = random_tracks(6, dtype=torch.float32)
    feats, attrs = mfe(subj, obj, mask, times, return_attributes=True)
    scaled = attrs * torch.tensor([1.0, 25.0, 1.0, 1.0])
    rows = scaled[mask]  # only the existing pairs count
    mean, var = rows.mean(0), rows.var(0, unbiased=False)
    want = mfe.mlp((scaled - mean) / torch.sqrt(var + 1e-5)).masked_fill(~mask.unsqueeze(-1), 0)
    torch.testing.assert_close(feats, want)
    torch.testing.assert_close(mfe.running_mean, 0.25 * mean)
    torch.testing.assert_close(mfe.running_var, 0.75 + 0.25 * rows.var(0, unbiased=True))
    # padding (any values) never enters the statistics
    noisy = subj.masked_fill(~mask.unsqueeze(-1), 123.0)
    torch.testing.assert_close(fresh(noisy, obj, mask, times), feats)


def test_extractor_eval_uses_running_statistics_and_is_batch_invariant():
    mfe = MotionFeatureExtractor(8)
    subj, obj, mask, times = random_tracks(7, B=3, dtype=torch.float32)
    for _ in range(3):
        mfe(subj, obj, mask, times)
    mfe.eval()
    before = mfe.running_mean.clone()
    whole = mfe(subj, obj, mask, times)
    for b in range(3):
        one = mfe(subj[b : b + 1], obj[b : b + 1], mask[b : b + 1], times[b : b + 1])
        torch.testing.assert_close(one[0], whole[b])
    assert torch.equal(mfe.running_mean, before)
    # an empty batch changes nothing and gives no NaN, in training too
    mfe.train()
    out = mfe(subj, obj, torch.zeros_like(mask), times)
    assert (out == 0).all() and torch.equal(mfe.running_mean, before)
    mfe.reset_parameters()
    assert (mfe.running_mean == 0).all() and (mfe.running_var == 1).all()
    with pytest.raises(ValueError, match=r"momentum: expected a value in \(0, 1\], got 0"):
        MotionFeatureExtractor(8, momentum=0)


def mim_inputs(seed=0, B=2, T=3, P=4, D=8, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    spatial = torch.randn(B, T, P, D, generator=g, dtype=dtype)
    motion = torch.randn(B, T, P, D, generator=g, dtype=dtype)
    mask = torch.rand(B, T, P, generator=g) > 0.3
    return spatial, motion, mask


def test_mim_attention_matches_its_definition():
    mim = MotionInteraction(8, nhead=2, dropout=0.0).eval()
    spatial, motion, mask = mim_inputs()
    fused, _ = mim.attn(motion, spatial, spatial, query_mask=mask, key_mask=mask)
    want = mim.norm(spatial + fused).masked_fill(~mask.unsqueeze(-1), 0)
    torch.testing.assert_close(mim(spatial, motion, mask), want)
    # attention is among the pairs of one frame: each frame alone gives the same
    out = mim(spatial, motion, mask)
    for b in range(2):
        for t in range(3):
            torch.testing.assert_close(
                mim(spatial[b, t], motion[b, t], mask[b, t]), out[b, t], rtol=1e-5, atol=1e-6
            )


def test_mim_concat_is_the_ablation():
    mim = MotionInteraction(8, fusion="concat", dropout=0.0)
    spatial, motion, mask = mim_inputs(1)
    want = mim.norm(spatial + mim.concat(torch.cat((spatial, motion), -1)))
    torch.testing.assert_close(mim(spatial, motion, mask), want.masked_fill(~mask.unsqueeze(-1), 0))
    assert "fusion='concat'" in repr(mim)


@given(seed=st.integers(0, 2**16), fusion=st.sampled_from(["attention", "concat"]))
def test_mim_padding_and_batch_invariance(seed, fusion):
    mim = MotionInteraction(8, nhead=2, dropout=0.0, fusion=fusion).eval()
    spatial, motion, mask = mim_inputs(seed)
    out = mim(spatial, motion, mask)
    assert (out[~mask] == 0).all() and torch.isfinite(out).all()
    noise = torch.randn_like(spatial) * 100
    junk = lambda x: torch.where(mask.unsqueeze(-1), x, noise)  # noqa: E731
    torch.testing.assert_close(mim(junk(spatial), junk(motion), mask), out)
    torch.testing.assert_close(mim(spatial[1:], motion[1:], mask[1:]), out[1:])


def test_mim_empty_frames_gradcheck_and_compile():
    mim = MotionInteraction(4, nhead=2, dropout=0.0).double()
    spatial, motion, mask = mim_inputs(2, D=4, dtype=torch.float64)
    mask[0, 0] = False  # an empty frame
    spatial.requires_grad_()
    motion.requires_grad_()
    assert torch.autograd.gradcheck(lambda s, m: mim(s, m, mask), (spatial, motion))
    out = mim(spatial, motion, mask)
    assert (out[0, 0] == 0).all()
    empty = mim(
        torch.zeros(0, 5, 4, dtype=torch.float64), torch.zeros(0, 5, 4, dtype=torch.float64)
    )
    assert empty.shape == (0, 5, 4)
    m32 = MotionInteraction(8, nhead=2, dropout=0.0).eval()
    s, m, k = mim_inputs(3)
    compiled = torch.compile(m32, fullgraph=True)
    torch.testing.assert_close(compiled(s, m, k), m32(s, m, k), rtol=1e-4, atol=1e-5)


def test_mim_errors():
    mim = MotionInteraction(8, nhead=2)
    s, m, k = mim_inputs()
    with pytest.raises(ValueError, match=r"motion: expected shape \(\.\.\., P, 8\) with P=4"):
        mim(s, m[..., :3, :], k)
    with pytest.raises(ValueError, match=r"spatial: expected shape \(\.\.\., P, 8\)"):
        mim(s[..., :4], m, k)
    with pytest.raises(TypeError, match="mask: expected a bool tensor"):
        mim(s, m, k.float())
    with pytest.raises(ValueError, match="fusion: expected one of 'attention', 'concat'"):
        MotionInteraction(8, fusion="sum")


def test_mim_one_pair_frames_ignore_motion_unless_motion_skip():
    """Eq. 7 with one key: weight 1, output independent of motion, zero gradient to it."""
    torch.manual_seed(0)
    spatial = torch.randn(2, 4, 1, 16, dtype=torch.float64)  # every frame has one pair
    mask = torch.ones(2, 4, 1, dtype=torch.bool)
    paper = MotionInteraction(16, 4, dropout=0.0).double()
    m1 = torch.randn(2, 4, 1, 16, dtype=torch.float64, requires_grad=True)
    out1 = paper(spatial, m1, mask)
    out2 = paper(spatial, torch.randn_like(m1), mask)
    assert torch.equal(out1, out2)  # motion does not matter at all
    w = torch.randn(16, dtype=torch.float64)  # (not a sum of squares: constant after a norm)
    (out1 * w).sum().backward()
    assert m1.grad.abs().max() < 1e-12  # zero up to rounding in the softmax backward
    skip = MotionInteraction(16, 4, dropout=0.0, motion_skip=True).double()
    m1.grad = None
    out = skip(spatial, m1, mask)
    assert not torch.allclose(out, skip(spatial, torch.randn_like(m1), mask))
    (out * w).sum().backward()
    assert m1.grad.abs().max() > 1e-3
    assert "motion_skip=True" in repr(skip)
    # padding still never leaks with the skip
    x = torch.randn(2, 3, 16, dtype=torch.float64)
    pmask = torch.tensor([[True, False, True], [False, False, False]])
    bad = x.masked_fill(~pmask.unsqueeze(-1), float("nan"))
    ref = skip(x.masked_fill(~pmask.unsqueeze(-1), 0.0), x, pmask)
    assert torch.equal(
        skip(bad, bad, pmask),
        skip(x.masked_fill(~pmask.unsqueeze(-1), 0), x.masked_fill(~pmask.unsqueeze(-1), 0), pmask),
    )
    assert torch.isfinite(ref).all()
