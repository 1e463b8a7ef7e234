"""Box math: formats, areas, centres, union boxes and IoU.

Every function works on any number of leading batch dims and is differentiable. Boxes are
``xyxy`` (``x1, y1, x2, y2``) unless a function says otherwise. Degenerate boxes (zero width or
height, or ``x2 < x1``) have area 0, and the IoU of two boxes whose union is empty is defined as
0 — never NaN, and with finite gradients.

``legacy=True`` selects the "+1 pixel" convention of the Fast R-CNN era evaluators (the one the
public Action Genome evaluator uses): a box covers the integer pixels ``x1..x2`` inclusive, so
its width is ``x2 - x1 + 1``.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from dsgg_layers._checks import check_choice, check_tensor

__all__ = [
    "box_area",
    "box_center",
    "box_convert",
    "box_iou",
    "box_union",
    "elementwise_box_iou",
    "normalize_boxes",
]

BoxFormat = Literal["xyxy", "xywh", "cxcywh"]
_FORMATS = ("xyxy", "xywh", "cxcywh")


def _check_boxes(boxes: object, name: str) -> Tensor:
    return check_tensor(boxes, name, ("...", 4), dtype="float")


def _extent(boxes: Tensor, legacy: bool) -> tuple[Tensor, Tensor]:
    """Width and height of xyxy boxes, clamped at 0."""
    offset = 1.0 if legacy else 0.0
    w = (boxes[..., 2] - boxes[..., 0] + offset).clamp(min=0)
    h = (boxes[..., 3] - boxes[..., 1] + offset).clamp(min=0)
    return w, h


def _safe_div(num: Tensor, den: Tensor) -> Tensor:
    """``num / den`` where ``den > 0`` and 0 elsewhere, with finite gradients everywhere."""
    positive = den > 0
    return torch.where(positive, num / torch.where(positive, den, torch.ones_like(den)), 0.0)


def box_convert(boxes: Tensor, in_fmt: BoxFormat, out_fmt: BoxFormat) -> Tensor:
    """Convert boxes between ``xyxy``, ``xywh`` (corner + size) and ``cxcywh`` (centre + size).

    Args:
        boxes: boxes in ``in_fmt``.
        in_fmt: format of ``boxes``.
        out_fmt: format to return.

    Shape:
        - boxes: ``(..., 4)``
        - output: ``(..., 4)``

    Raises:
        TypeError: ``boxes`` is not a floating point tensor.
        ValueError: the last dim is not 4, or a format is unknown.

    Examples:
        >>> box_convert(torch.tensor([[10.0, 20.0, 30.0, 40.0]]), "xywh", "xyxy")
        tensor([[10., 20., 40., 60.]])
    """
    _check_boxes(boxes, "boxes")
    check_choice(in_fmt, "in_fmt", _FORMATS)
    check_choice(out_fmt, "out_fmt", _FORMATS)
    if in_fmt == out_fmt:
        return boxes.clone()
    a, b, c, d = boxes.unbind(-1)
    if in_fmt == "xywh":
        a, b, c, d = a, b, a + c, b + d
    elif in_fmt == "cxcywh":
        a, b, c, d = a - c / 2, b - d / 2, a + c / 2, b + d / 2
    # a, b, c, d is now xyxy
    if out_fmt == "xywh":
        return torch.stack((a, b, c - a, d - b), dim=-1)
    if out_fmt == "cxcywh":
        return torch.stack(((a + c) / 2, (b + d) / 2, c - a, d - b), dim=-1)
    return torch.stack((a, b, c, d), dim=-1)


def box_area(boxes: Tensor, *, legacy: bool = False) -> Tensor:
    """Area of ``xyxy`` boxes; degenerate boxes have area 0.

    Args:
        boxes: ``xyxy`` boxes.
        legacy: use the "+1 pixel" convention (width ``x2 - x1 + 1``).

    Shape:
        - boxes: ``(..., 4)``
        - output: ``(...)``

    Raises:
        TypeError: ``boxes`` is not a floating point tensor.
        ValueError: the last dim is not 4.

    Examples:
        >>> box_area(torch.tensor([[0.0, 0.0, 2.0, 3.0], [1.0, 1.0, 1.0, 5.0]]))
        tensor([6., 0.])
        >>> box_area(torch.tensor([0.0, 0.0, 2.0, 3.0]), legacy=True)
        tensor(12.)
    """
    _check_boxes(boxes, "boxes")
    w, h = _extent(boxes, legacy)
    return w * h


def box_center(boxes: Tensor) -> Tensor:
    """Centres ``(cx, cy)`` of ``xyxy`` boxes.

    Shape:
        - boxes: ``(..., 4)``
        - output: ``(..., 2)``

    Raises:
        TypeError: ``boxes`` is not a floating point tensor.
        ValueError: the last dim is not 4.

    Examples:
        >>> box_center(torch.tensor([0.0, 0.0, 2.0, 4.0]))
        tensor([1., 2.])
    """
    _check_boxes(boxes, "boxes")
    return (boxes[..., :2] + boxes[..., 2:]) / 2


def box_union(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Smallest ``xyxy`` box enclosing both boxes, elementwise (the "union box" of a relation).

    Args:
        boxes1: ``xyxy`` boxes, e.g. subjects.
        boxes2: ``xyxy`` boxes broadcastable with ``boxes1``, e.g. objects.

    Shape:
        - boxes1, boxes2: ``(..., 4)`` (broadcastable)
        - output: ``(..., 4)``

    Raises:
        TypeError: an input is not a floating point tensor.
        ValueError: a last dim is not 4, or the shapes do not broadcast.

    Examples:
        >>> box_union(torch.tensor([0.0, 0.0, 2.0, 2.0]), torch.tensor([1.0, -1.0, 3.0, 1.0]))
        tensor([ 0., -1.,  3.,  2.])
    """
    _check_boxes(boxes1, "boxes1")
    _check_boxes(boxes2, "boxes2")
    _check_broadcast(boxes1, boxes2)
    lt = torch.minimum(boxes1[..., :2], boxes2[..., :2])
    rb = torch.maximum(boxes1[..., 2:], boxes2[..., 2:])
    return torch.cat((lt, rb), dim=-1)


def _check_broadcast(boxes1: Tensor, boxes2: Tensor) -> None:
    try:
        torch.broadcast_shapes(boxes1.shape, boxes2.shape)
    except RuntimeError:
        raise ValueError(
            "boxes1 and boxes2: expected broadcastable shapes (..., 4), "
            f"got {tuple(boxes1.shape)} and {tuple(boxes2.shape)}"
        ) from None


def _iou(boxes1: Tensor, boxes2: Tensor, legacy: bool) -> Tensor:
    """IoU of broadcast-aligned xyxy boxes (no checks)."""
    lt = torch.maximum(boxes1[..., :2], boxes2[..., :2])
    rb = torch.minimum(boxes1[..., 2:], boxes2[..., 2:])
    inter_w, inter_h = _extent(torch.cat((lt, rb), dim=-1), legacy)
    inter = inter_w * inter_h
    w1, h1 = _extent(boxes1, legacy)
    w2, h2 = _extent(boxes2, legacy)
    union = w1 * h1 + w2 * h2 - inter
    return _safe_div(inter, union)


def elementwise_box_iou(boxes1: Tensor, boxes2: Tensor, *, legacy: bool = False) -> Tensor:
    """IoU of corresponding ``xyxy`` boxes (e.g. subject vs object of each pair).

    Two boxes whose union has zero area (both degenerate) have IoU 0.

    Args:
        boxes1: ``xyxy`` boxes.
        boxes2: ``xyxy`` boxes broadcastable with ``boxes1``.
        legacy: use the "+1 pixel" convention.

    Shape:
        - boxes1, boxes2: ``(..., 4)`` (broadcastable)
        - output: ``(...)``

    Raises:
        TypeError: an input is not a floating point tensor.
        ValueError: a last dim is not 4, or the shapes do not broadcast.

    Examples:
        >>> a = torch.tensor([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 0.0, 0.0]])
        >>> b = torch.tensor([[1.0, 0.0, 3.0, 2.0], [0.0, 0.0, 0.0, 0.0]])
        >>> elementwise_box_iou(a, b)
        tensor([0.3333, 0.0000])
    """
    _check_boxes(boxes1, "boxes1")
    _check_boxes(boxes2, "boxes2")
    _check_broadcast(boxes1, boxes2)
    return _iou(boxes1, boxes2, legacy)


def box_iou(boxes1: Tensor, boxes2: Tensor, *, legacy: bool = False) -> Tensor:
    """Pairwise IoU between two sets of ``xyxy`` boxes.

    Leading batch dims must broadcast; the result holds the IoU of every box of ``boxes1`` with
    every box of ``boxes2``.

    Args:
        boxes1: ``xyxy`` boxes.
        boxes2: ``xyxy`` boxes.
        legacy: use the "+1 pixel" convention.

    Shape:
        - boxes1: ``(..., N, 4)``
        - boxes2: ``(..., M, 4)``
        - output: ``(..., N, M)``

    Raises:
        TypeError: an input is not a floating point tensor.
        ValueError: an input is not ``(..., K, 4)``, or the leading dims do not broadcast.

    Examples:
        >>> a = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
        >>> b = torch.tensor([[1.0, 1.0, 3.0, 3.0], [0.0, 0.0, 2.0, 2.0], [5.0, 5.0, 6.0, 6.0]])
        >>> box_iou(a, b)
        tensor([[0.1429, 1.0000, 0.0000]])
    """
    check_tensor(boxes1, "boxes1", ("...", "N", 4), dtype="float")
    check_tensor(boxes2, "boxes2", ("...", "M", 4), dtype="float")
    try:
        torch.broadcast_shapes(boxes1.shape[:-2], boxes2.shape[:-2])
    except RuntimeError:
        raise ValueError(
            "boxes1 and boxes2: expected leading dims that broadcast, "
            f"got {tuple(boxes1.shape)} and {tuple(boxes2.shape)}"
        ) from None
    return _iou(boxes1.unsqueeze(-2), boxes2.unsqueeze(-3), legacy)


def normalize_boxes(boxes: Tensor, image_size: Tensor | tuple[float, float]) -> Tensor:
    """Divide ``xyxy`` pixel boxes by the image size, giving coordinates in ``[0, 1]``.

    Args:
        boxes: ``xyxy`` boxes in pixels.
        image_size: ``(width, height)``, as a pair of numbers or a tensor ``(..., 2)`` that
            broadcasts with the boxes' leading dims (one size per video, say).

    Shape:
        - boxes: ``(..., 4)``
        - image_size: ``(2,)`` or ``(..., 2)``
        - output: ``(..., 4)``

    Raises:
        TypeError: ``boxes`` is not a floating point tensor.
        ValueError: the last dim is not 4, ``image_size`` is not ``(..., 2)`` or not positive.

    Examples:
        >>> normalize_boxes(torch.tensor([48.0, 27.0, 480.0, 270.0]), (480, 270))
        tensor([0.1000, 0.1000, 1.0000, 1.0000])
    """
    _check_boxes(boxes, "boxes")
    if not isinstance(image_size, Tensor):
        if len(image_size) != 2:
            raise ValueError(f"image_size: expected (width, height), got {image_size!r}")
        if min(image_size) <= 0:
            raise ValueError(f"image_size: expected positive sizes, got {tuple(image_size)}")
        image_size = torch.tensor(image_size, dtype=boxes.dtype, device=boxes.device)
    else:
        check_tensor(image_size, "image_size", ("...", 2))
    size = image_size.to(boxes.dtype)
    return boxes / torch.cat((size, size), dim=-1)
