"""RePro / UASAN trajectory-pair motion features (`trajectory_pair_motion`)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dsgg_layers import (
    MOTION_GROUP_TAGS,
    elementwise_generalized_box_iou,
    trajectory_pair_motion,
)


def _giou_plus_one(a, b):
    """The code's bbox_GIoU for one pair of boxes, transcribed with Python floats."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]) + 1)
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]) + 1)
    inter = iw * ih
    area = lambda x: (x[2] - x[0] + 1) * (x[3] - x[1] + 1)  # noqa: E731
    union = area(a) + area(b) - inter
    hull = (max(a[2], b[2]) - min(a[0], b[0]) + 1) * (max(a[3], b[3]) - min(a[1], b[1]) + 1)
    return inter / union - (hull - union) / hull


def _reference(s_traj, s_begin, o_traj, o_begin, thr=-0.3):
    """The code's get_relative_position_feature + get_giou_tags for one pair, as loops."""
    ends = []
    for sb, ob in ((s_traj[0], o_traj[0]), (s_traj[-1], o_traj[-1])):
        sx, sy = (sb[0] + sb[2]) / 2, (sb[1] + sb[3]) / 2
        ox, oy = (ob[0] + ob[2]) / 2, (ob[1] + ob[3]) / 2
        sw, sh, ow, oh = sb[2] - sb[0], sb[3] - sb[1], ob[2] - ob[0], ob[3] - ob[1]
        ends.append([(sx - ox) / ow, (sy - oy) / oh, math.log(sw) - math.log(ow),
                     math.log(sh) - math.log(oh),
                     math.log(sw) + math.log(sh) - math.log(ow) - math.log(oh)])  # fmt: skip
    rel = [v for q in range(5) for v in (ends[0][q], ends[1][q])]
    s_end, o_end = s_begin + len(s_traj), o_begin + len(o_traj)
    rel += [(s_begin - o_begin) / 30, (s_end - o_end) / 30]
    g0 = _giou_plus_one(s_traj[0], o_traj[0])
    g1 = _giou_plus_one(s_traj[-1], o_traj[-1])
    tag = (g0 >= thr, g1 >= thr, g1 - g0 >= 0)
    return rel, [g0, g1, g1 - g0], MOTION_GROUP_TAGS.index(tag)


def _random_pairs(gen, pairs, frames, dtype=torch.float64):
    xy = torch.rand(pairs, 2, frames, 2, generator=gen, dtype=dtype) * 100
    wh = 1 + torch.rand(pairs, 2, frames, 2, generator=gen, dtype=dtype) * 60
    boxes = torch.cat((xy, xy + wh), -1)  # (pairs, 2 roles, F, 4)
    begin = torch.randint(0, frames, (pairs, 2), generator=gen)
    length = torch.randint(1, frames + 1, (pairs, 2), generator=gen)
    end = torch.minimum(begin + length, torch.tensor(frames))
    t = torch.arange(frames)
    mask = (t >= begin[..., None]) & (t < end[..., None])  # (pairs, 2, F)
    return boxes, mask, begin, end


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 12))
def test_equals_the_public_code_formulas(seed, frames):
    gen = torch.Generator().manual_seed(seed)
    boxes, mask, begin, end = _random_pairs(gen, 7, frames)
    garbage = boxes.masked_fill(~mask[..., None], math.nan)  # outside the durations
    out = trajectory_pair_motion(garbage[:, 0], mask[:, 0], garbage[:, 1], mask[:, 1])
    for i in range(7):
        s = boxes[i, 0, begin[i, 0] : end[i, 0]].tolist()
        o = boxes[i, 1, begin[i, 1] : end[i, 1]].tolist()
        rel, giou, group = _reference(s, int(begin[i, 0]), o, int(begin[i, 1]))
        torch.testing.assert_close(out.relative[i], torch.tensor(rel, dtype=torch.float64))
        torch.testing.assert_close(out.giou[i], torch.tensor(giou, dtype=torch.float64))
        assert int(out.group[i]) == group


def test_hand_computed_case():
    # subject 10 x 20 at centre (5, 10) then (25, 10); object 20 x 10 at (50, 5), frames 1-3
    s = torch.tensor([[[0.0, 0, 10, 20], [0, 0, 10, 20], [20, 0, 30, 20], [0, 0, 0, 0]]])
    o = torch.tensor([[[0.0, 0, 0, 0], [40, 0, 60, 10], [40, 0, 60, 10], [40, 0, 60, 10]]])
    sm = torch.tensor([[True, True, True, False]])
    om = torch.tensor([[False, True, True, True]])
    out = trajectory_pair_motion(s, sm, o, om, frame_scale=2.0)
    lw = math.log(10 / 20)
    lh = math.log(20 / 10)
    expected = [(5 - 50) / 20, (25 - 50) / 20, (10 - 5) / 10, (10 - 5) / 10, lw, lw, lh, lh,
                lw + lh, lw + lh, (0 - 1) / 2, (3 - 4) / 2]  # fmt: skip
    torch.testing.assert_close(out.relative[0], torch.tensor(expected))


def test_degenerate_inputs_are_finite_with_finite_gradients():
    s = torch.tensor([[[5.0, 5, 5, 5], [5, 5, 5, 9]]], requires_grad=True)  # zero width
    o = torch.tensor([[[0.0, 0, 0, 0], [0, 0, 0, 0]]], requires_grad=True)  # a point
    m = torch.ones(1, 2, dtype=torch.bool)
    out = trajectory_pair_motion(s, m, o, m)
    assert torch.isfinite(out.relative).all() and torch.isfinite(out.giou).all()
    (out.relative.sum() + out.giou.sum()).backward()
    assert torch.isfinite(s.grad).all() and torch.isfinite(o.grad).all()
    # an empty trajectory: zeros, group 0, no gradient from its garbage
    junk = torch.full((2, 3, 4), math.nan, requires_grad=True)
    mask = torch.tensor([[True, True, False], [False, False, False]])
    good = torch.tensor([[0.0, 0, 4, 4]]).expand(2, 3, 4)
    out = trajectory_pair_motion(good, mask, junk, torch.zeros(2, 3, dtype=torch.bool))
    assert (out.relative == 0).all() and (out.giou == 0).all() and (out.group == 0).all()
    out.relative.sum().backward()
    assert (junk.grad == 0).all()
    # no pairs, no frames
    empty = trajectory_pair_motion(
        torch.zeros(0, 5, 4),
        torch.zeros(0, 5, dtype=torch.bool),
        torch.zeros(0, 5, 4),
        torch.zeros(0, 5, dtype=torch.bool),
    )
    assert empty.relative.shape == (0, 12) and empty.giou.shape == (0, 3)
    # zero-length trajectories (a frame axis of length 0): zeros, group 0
    none = trajectory_pair_motion(
        torch.zeros(3, 0, 4),
        torch.zeros(3, 0, dtype=torch.bool),
        torch.zeros(3, 0, 4),
        torch.zeros(3, 0, dtype=torch.bool),
    )
    assert (none.relative == 0).all() and none.relative.shape == (3, 12)
    assert none.giou.shape == (3, 3) and none.group.tolist() == [0, 0, 0]
    half = trajectory_pair_motion(good.half(), mask, good.half() + 1, mask)
    assert half.relative.dtype == torch.float16 and torch.isfinite(half.relative).all()


def test_gradcheck_float64():
    gen = torch.Generator().manual_seed(0)
    boxes, mask, _, _ = _random_pairs(gen, 3, 4)
    s = boxes[:, 0].clone().requires_grad_()
    o = boxes[:, 1].clone().requires_grad_()

    def f(s, o):
        out = trajectory_pair_motion(s, mask[:, 0], o, mask[:, 1])
        return out.relative, out.giou

    assert torch.autograd.gradcheck(f, (s, o))


def test_batch_dims_and_groups_cover_the_six_tags():
    gen = torch.Generator().manual_seed(1)
    boxes, mask, _, _ = _random_pairs(gen, 60, 6)
    flat = trajectory_pair_motion(boxes[:, 0], mask[:, 0], boxes[:, 1], mask[:, 1])
    nested = trajectory_pair_motion(
        boxes[:, 0].view(6, 10, 6, 4),
        mask[:, 0].view(6, 10, 6),
        boxes[:, 1].view(6, 10, 6, 4),
        mask[:, 1].view(6, 10, 6),
    )
    torch.testing.assert_close(nested.relative.view(60, 12), flat.relative)
    assert torch.equal(nested.group.view(60), flat.group)
    # each group's tags hold for its GIoUs
    g0, g1 = flat.giou[:, 0], flat.giou[:, 1]
    for i, (a, b, c) in enumerate(MOTION_GROUP_TAGS):
        sel = flat.group == i
        assert ((g0[sel] >= -0.3) == a).all() and ((g1[sel] >= -0.3) == b).all()
        assert ((g1[sel] >= g0[sel]) == c).all()


def test_errors():
    b, m = torch.zeros(2, 3, 4), torch.ones(2, 3, dtype=torch.bool)
    with pytest.raises(TypeError, match="subject_mask"):
        trajectory_pair_motion(b, m.float(), b, m)
    with pytest.raises(ValueError, match="object_boxes"):
        trajectory_pair_motion(b, m, torch.zeros(2, 4, 4), m)
    with pytest.raises(ValueError, match="min_size"):
        trajectory_pair_motion(b, m, b, m, min_size=0.0)
    with pytest.raises(TypeError, match="subject_boxes"):
        trajectory_pair_motion(b.long(), m, b, m)
    nan = b.clone()
    nan[0, 1, 2] = math.nan  # one NaN box where the mask is True: named, not a NaN output
    with pytest.raises(ValueError, match="object_boxes: expected finite values"):
        trajectory_pair_motion(b, m, nan, m)
    off = m.clone()
    off[0, 1] = False  # the same NaN where the mask is False is never read
    assert torch.isfinite(trajectory_pair_motion(b, m, nan, off).relative).all()


def test_legacy_generalized_box_iou():
    a = torch.tensor([0.0, 0, 9, 9])
    b = torch.tensor([20.0, 0, 29, 9])
    # "+1": areas 100 each, hull 30 x 10 = 300: 0 - (300 - 200) / 300
    assert float(elementwise_generalized_box_iou(a, b, legacy=True)) == pytest.approx(-1 / 3)
    assert float(elementwise_generalized_box_iou(a, b)) == pytest.approx(-(261 - 162) / 261)
