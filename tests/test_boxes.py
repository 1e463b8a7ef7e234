"""Box math against a pure-Python brute force, with degenerate boxes on purpose."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from dsgg_layers import (
    box_area,
    box_center,
    box_convert,
    box_iou,
    box_union,
    elementwise_box_iou,
    elementwise_generalized_box_iou,
    generalized_box_iou,
    normalize_boxes,
)

# Coordinates on a small integer grid, so that touching, nested, identical and zero-area boxes
# come up often; sorted so that x1 <= x2 and y1 <= y2.
coord = st.integers(min_value=0, max_value=6).map(float)
xyxy = st.tuples(coord, coord, coord, coord).map(
    lambda c: (min(c[0], c[2]), min(c[1], c[3]), max(c[0], c[2]), max(c[1], c[3]))
)
box_lists = st.lists(xyxy, min_size=0, max_size=6)


def ref_iou(a, b, legacy=False):
    """IoU by the textbook formula on Python floats, 0 when the union is empty."""
    off = 1.0 if legacy else 0.0
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]) + off)
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]) + off)
    inter = iw * ih
    area = lambda r: max(0.0, r[2] - r[0] + off) * max(0.0, r[3] - r[1] + off)  # noqa: E731
    union = area(a) + area(b) - inter
    return inter / union if union > 0 else 0.0


def t(boxes, dtype=torch.float64):
    return torch.tensor(boxes, dtype=dtype).reshape(-1, 4)


@pytest.mark.parametrize("legacy", [False, True])
@given(a=box_lists, b=box_lists)
def test_box_iou_matches_brute_force(a, b, legacy):
    got = box_iou(t(a), t(b), legacy=legacy)
    want = torch.tensor([[ref_iou(x, y, legacy) for y in b] for x in a], dtype=torch.float64)
    assert got.shape == (len(a), len(b))
    torch.testing.assert_close(got, want.reshape(len(a), len(b)))
    assert ((got >= 0) & (got <= 1)).all()


@given(a=box_lists)
def test_elementwise_iou_is_the_diagonal_and_symmetric(a):
    boxes = t(a)
    other = boxes.flip(0)
    ew = elementwise_box_iou(boxes, other)
    torch.testing.assert_close(ew, box_iou(boxes, other).diagonal())
    torch.testing.assert_close(ew, elementwise_box_iou(other, boxes))


@given(a=box_lists)
def test_self_iou_is_one_for_boxes_with_area(a):
    boxes = t(a)
    iou = elementwise_box_iou(boxes, boxes)
    has_area = box_area(boxes) > 0
    assert (iou[has_area] == 1).all()
    assert (iou[~has_area] == 0).all()


def test_hand_cases():
    unit = [0.0, 0.0, 2.0, 2.0]
    cases = {
        "identical": (unit, unit, 1.0),
        "touching edge": (unit, [2.0, 0.0, 4.0, 2.0], 0.0),
        "nested": (unit, [0.0, 0.0, 1.0, 1.0], 0.25),
        "half overlap": (unit, [1.0, 0.0, 3.0, 2.0], 2.0 / 6.0),
        "two points": ([1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0], 0.0),
        "point inside box": ([1.0, 1.0, 1.0, 1.0], unit, 0.0),
    }
    for name, (a, b, want) in cases.items():
        got = elementwise_box_iou(torch.tensor(a), torch.tensor(b))
        assert got.item() == pytest.approx(want), name
    # legacy "+1": a single-pixel box has area 1 and IoU 1 with itself
    px = torch.tensor([3.0, 3.0, 3.0, 3.0])
    assert box_area(px, legacy=True).item() == 1.0
    assert elementwise_box_iou(px, px, legacy=True).item() == 1.0
    # legacy touching boxes share a column of pixels: 2x3 of the two 3x3 boxes
    a, b = torch.tensor([0.0, 0.0, 2.0, 2.0]), torch.tensor([2.0, 0.0, 4.0, 2.0])
    assert elementwise_box_iou(a, b, legacy=True).item() == pytest.approx(3 / 15)


def test_degenerate_boxes_have_finite_gradients():
    boxes = torch.tensor([[1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 2.0], [2.0, 2.0, 1.0, 1.0]])
    a = boxes.clone().requires_grad_()
    b = boxes.flip(0).clone().requires_grad_()
    iou = box_iou(a, b)
    assert torch.isfinite(iou).all() and (iou == 0).all()
    iou.sum().backward()
    assert torch.isfinite(a.grad).all() and torch.isfinite(b.grad).all()
    # reversed corners count as area 0, not negative
    assert (box_area(boxes) == 0).all()


@given(a=box_lists)
def test_convert_round_trips(a):
    boxes = t(a)
    for fmt in ("xywh", "cxcywh"):
        there = box_convert(boxes, "xyxy", fmt)
        torch.testing.assert_close(box_convert(there, fmt, "xyxy"), boxes)
    torch.testing.assert_close(
        box_convert(box_convert(boxes, "xyxy", "xywh"), "xywh", "cxcywh"),
        box_convert(boxes, "xyxy", "cxcywh"),
    )


def test_convert_values():
    xywh = torch.tensor([10.0, 20.0, 30.0, 40.0])
    torch.testing.assert_close(box_convert(xywh, "xywh", "xyxy"), torch.tensor([10.0, 20, 40, 60]))
    torch.testing.assert_close(
        box_convert(xywh, "xywh", "cxcywh"), torch.tensor([25.0, 40, 30, 40])
    )
    same = box_convert(xywh, "xywh", "xywh")
    assert torch.equal(same, xywh) and same.data_ptr() != xywh.data_ptr()


@given(a=box_lists, b=box_lists)
def test_union_box_encloses_both(a, b):
    n = min(len(a), len(b))
    x, y = t(a[:n]), t(b[:n])
    u = box_union(x, y)
    assert (u[:, :2] <= torch.minimum(x[:, :2], y[:, :2])).all()
    assert (u[:, 2:] >= torch.maximum(x[:, 2:], y[:, 2:])).all()
    # and is the smallest such box: each side touches one of the two boxes
    assert ((u == x) | (u == y)).all()


def test_center_and_normalize():
    boxes = torch.tensor([[0.0, 0.0, 4.0, 2.0], [1.0, 1.0, 1.0, 1.0]])
    torch.testing.assert_close(box_center(boxes), torch.tensor([[2.0, 1.0], [1.0, 1.0]]))
    got = normalize_boxes(boxes, (4, 2))
    torch.testing.assert_close(got, torch.tensor([[0.0, 0.0, 1.0, 1.0], [0.25, 0.5, 0.25, 0.5]]))
    # one image size per video, broadcast over the boxes of that video
    per_video = torch.tensor([[4.0, 2.0], [2.0, 1.0]]).unsqueeze(1)  # (B, 1, 2)
    out = normalize_boxes(boxes.expand(2, 2, 4), per_video)
    torch.testing.assert_close(out[1, 0], torch.tensor([0.0, 0.0, 2.0, 2.0]))


def test_any_leading_dims_and_broadcasting():
    a = torch.rand(2, 3, 5, 4).sort(-1).values
    b = torch.rand(3, 7, 4).sort(-1).values
    assert box_iou(a, b).shape == (2, 3, 5, 7)
    assert elementwise_box_iou(a, a[0, 0]).shape == (2, 3, 5)
    assert box_area(a).shape == (2, 3, 5)


def test_empty_inputs():
    empty = torch.zeros(0, 4)
    assert box_iou(empty, torch.rand(3, 4)).shape == (0, 3)
    assert box_iou(torch.rand(3, 4), empty).shape == (3, 0)
    assert elementwise_box_iou(empty, empty).shape == (0,)
    assert box_convert(empty, "xyxy", "cxcywh").shape == (0, 4)


@pytest.mark.parametrize("legacy", [False, True])
def test_gradcheck(legacy):
    # Random boxes with sides >= 1: overlapping pairs, away from the kinks of min/max/clamp.
    g = torch.Generator().manual_seed(0)

    def boxes():
        xy = torch.rand(6, 2, generator=g, dtype=torch.float64) * 4
        return torch.cat((xy, xy + 1 + torch.rand(6, 2, generator=g, dtype=torch.float64) * 3), -1)

    a, b = boxes(), boxes()
    assert (elementwise_box_iou(a, b) > 0).any()
    a.requires_grad_()
    b.requires_grad_()
    assert torch.autograd.gradcheck(lambda x, y: box_iou(x, y, legacy=legacy), (a, b))
    assert torch.autograd.gradcheck(lambda x, y: elementwise_box_iou(x, y, legacy=legacy), (a, b))
    assert torch.autograd.gradcheck(lambda x: box_area(x, legacy=legacy), (a,))
    assert torch.autograd.gradcheck(box_union, (a, b))
    assert torch.autograd.gradcheck(lambda x: box_convert(x, "cxcywh", "xyxy"), (a,))
    assert torch.autograd.gradcheck(lambda x: normalize_boxes(x, (640.0, 480.0)), (a,))


def test_half_precision_keeps_dtype():
    boxes = torch.tensor([[0.0, 0.0, 2.0, 2.0], [1.0, 0.0, 3.0, 2.0]], dtype=torch.bfloat16)
    iou = box_iou(boxes, boxes)
    assert iou.dtype == torch.bfloat16
    assert iou[0, 1].item() == pytest.approx(1 / 3, abs=1e-2)


def test_errors():
    with pytest.raises(TypeError, match=r"boxes: expected a torch\.Tensor, got list"):
        box_area([0.0, 0.0, 1.0, 1.0])
    with pytest.raises(TypeError, match="boxes1: expected a floating point tensor, got dtype"):
        box_iou(torch.zeros(2, 4, dtype=torch.long), torch.zeros(2, 4))
    with pytest.raises(ValueError, match=r"boxes2: expected shape \(\.\.\., M, 4\), got \(3, 5\)"):
        box_iou(torch.zeros(2, 4), torch.zeros(3, 5))
    with pytest.raises(ValueError, match=r"boxes1 and boxes2: expected broadcastable shapes"):
        elementwise_box_iou(torch.zeros(2, 4), torch.zeros(3, 4))
    with pytest.raises(ValueError, match=r"boxes1 and boxes2: expected leading dims"):
        box_iou(torch.zeros(2, 3, 4), torch.zeros(5, 3, 4))
    with pytest.raises(ValueError, match="in_fmt: expected one of 'xyxy', 'xywh', 'cxcywh'"):
        box_convert(torch.zeros(1, 4), "xxyy", "xyxy")
    with pytest.raises(ValueError, match="image_size: expected positive finite sizes"):
        normalize_boxes(torch.zeros(1, 4), (0, 10))
    with pytest.raises(ValueError, match=r"image_size: expected \(2,\), \(B, 2\)"):
        normalize_boxes(torch.zeros(1, 4), torch.ones(3))


def test_image_size_rule_one_size_per_video_along_the_batch_dim():
    from dsgg_layers import image_size_like

    boxes = torch.full((2, 5, 2, 4), 10.0)  # (B=2, T=5, P=2, 4): P == B must not confuse it
    sizes = torch.tensor([[100.0, 50.0], [20.0, 10.0]])
    out = normalize_boxes(boxes, sizes)
    assert torch.equal(out[0, ..., 0], torch.full((5, 2), 0.1))  # video 0 by its own size
    assert torch.equal(out[1, ..., 0], torch.full((5, 2), 0.5))
    assert torch.equal(out[1, ..., 1], torch.full((5, 2), 1.0))
    # the other two forms give the same numbers
    same = normalize_boxes(boxes, sizes[:, None, None, :])
    assert torch.equal(same, out)
    assert torch.equal(normalize_boxes(boxes, (100, 50)), normalize_boxes(boxes, sizes[0]))
    assert image_size_like(sizes, boxes).shape == (2, 1, 1, 2)


@pytest.mark.parametrize(
    ("size", "error", "match"),
    [
        (640, TypeError, "image_size: expected \\(width, height\\)"),
        ((1, 2, 3), TypeError, "image_size"),
        ((0, 10), ValueError, "positive"),
        (torch.ones(3, 2), ValueError, r"B = boxes.shape\[0\] = 2"),
        (torch.ones(2, 3), ValueError, "got \\(2, 3\\)"),
        (torch.ones(2, 5, 2), ValueError, "image_size"),
    ],
)
def test_image_size_rule_errors(size, error, match):
    with pytest.raises(error, match=match):
        normalize_boxes(torch.ones(2, 5, 2, 4), size)


def test_motion_attributes_follow_the_same_size_rule():
    from dsgg_layers import motion_attributes

    g = torch.Generator().manual_seed(0)
    boxes = torch.rand(2, 4, 2, 4, generator=g).sort(-1).values * 100
    mask = torch.ones(2, 4, 2, dtype=torch.bool)
    sizes = torch.tensor([[100.0, 100.0], [50.0, 200.0]])
    a = motion_attributes(boxes, boxes.flip(2), mask, image_size=sizes)
    b = motion_attributes(boxes, boxes.flip(2), mask, image_size=sizes[:, None, None, :])
    torch.testing.assert_close(a, b)
    one = motion_attributes(boxes[1:], boxes[1:].flip(2), mask[1:], image_size=(50.0, 200.0))
    torch.testing.assert_close(a[1:], one)
    with pytest.raises(ValueError, match="image_size"):
        motion_attributes(boxes, boxes, mask, image_size=torch.ones(3, 2))


# ------------------------------------------------------------------------- generalized IoU


def ref_giou(a, b):
    """GIoU by its definition on Python floats; the hull term 0 when the hull is empty."""
    hull = max(0.0, max(a[2], b[2]) - min(a[0], b[0])) * max(0.0, max(a[3], b[3]) - min(a[1], b[1]))
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    area = lambda r: max(0.0, r[2] - r[0]) * max(0.0, r[3] - r[1])  # noqa: E731
    union = area(a) + area(b) - iw * ih
    return ref_iou(a, b) - ((hull - union) / hull if hull > 0 else 0.0)


@given(a=box_lists, b=box_lists)
def test_generalized_iou_matches_its_definition_and_torchvision(a, b):
    got = generalized_box_iou(t(a), t(b))
    want = torch.tensor([[ref_giou(x, y) for y in b] for x in a], dtype=torch.float64)
    torch.testing.assert_close(got, want.reshape(len(a), len(b)))
    assert ((got >= -1) & (got <= 1)).all() and (got <= box_iou(t(a), t(b)) + 1e-12).all()
    if a:
        rev = a[::-1]
        want_e = [ref_giou(x, y) for x, y in zip(a, rev, strict=True)]
        got_e = elementwise_generalized_box_iou(t(a), t(rev))
        torch.testing.assert_close(got_e, torch.tensor(want_e, dtype=torch.float64))
    ops = pytest.importorskip("torchvision.ops")
    tv = ops.generalized_box_iou(t(a), t(b))
    defined = torch.isfinite(tv)  # torchvision gives NaN where the hull is empty
    torch.testing.assert_close(got[defined], tv[defined])


def test_generalized_iou_degenerate_non_finite_and_gradients():
    point = t([[1.0, 1.0, 1.0, 1.0]])
    assert generalized_box_iou(point, point).item() == 0.0  # empty hull: defined, not NaN
    bad = t([[0.0, 0.0, float("nan"), 1.0]])
    assert generalized_box_iou(bad, t([[0.0, 0.0, 1.0, 1.0]])).item() == -1.0
    a = t(
        [[0.0, 0.0, 2.0, 2.0], [1.0, 1.0, 1.0, 1.0], [0.0, 0.0, float("inf"), 1.0]]
    ).requires_grad_()
    b = t([[1.0, 1.0, 3.0, 3.0], [1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0]]).requires_grad_()
    elementwise_generalized_box_iou(a, b).sum().backward()
    assert torch.isfinite(a.grad).all() and torch.isfinite(b.grad).all()
    assert (a.grad[2] == 0).all()
    x = torch.tensor([[0.1, 0.2, 1.3, 1.1], [0.5, 0.4, 2.0, 2.5]], dtype=torch.float64,
                     requires_grad=True)  # fmt: skip
    y = torch.tensor([[0.3, 0.1, 1.0, 1.9]], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(generalized_box_iou, (x, y))
    half = generalized_box_iou(
        t([[0, 0, 300, 300]], torch.float16), t([[0, 0, 600, 300]], torch.float16)
    )
    assert half.dtype == torch.float16 and half.item() == pytest.approx(0.5, abs=1e-3)
    assert generalized_box_iou(t([]), t([[0.0, 0, 1, 1]])).shape == (0, 1)
    with pytest.raises(ValueError, match=r"boxes1: expected shape \(\.\.\., N, 4\)"):
        generalized_box_iou(torch.zeros(3, 5), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="boxes1 and boxes2: expected broadcastable shapes"):
        elementwise_generalized_box_iou(torch.zeros(3, 4), torch.zeros(2, 4))
    compiled = torch.compile(generalized_box_iou, fullgraph=True)
    torch.testing.assert_close(compiled(x.detach(), y.detach()), generalized_box_iou(x, y).detach())
