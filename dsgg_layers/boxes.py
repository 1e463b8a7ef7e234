"""Box math: formats, areas, centres, union boxes, IoU and generalized IoU.

Every function works on any number of leading batch dims and is differentiable. Boxes are
``xyxy`` (``x1, y1, x2, y2``) unless a function says otherwise. Degenerate boxes (zero width or
height, or ``x2 < x1``) have area 0, and the IoU of two boxes whose union is empty is defined as
0 — never NaN, and with finite gradients; a box with a NaN/Inf coordinate has IoU 0 with every
box and passes no gradient to it. Areas and IoU of float16/bfloat16 boxes are computed in
float32 (the area of a 256 x 256 px box overflows float16); IoU is returned in the boxes' dtype.

Generalized IoU (Rezatofighi et al., *Generalized Intersection over Union*, CVPR 2019), the box
cost and loss of DETR-style set prediction: ``IoU - (|C| - |A u B|) / |C|`` with ``C`` the
smallest box enclosing both. Where ``|C| = 0`` (both boxes the same point or collinear
degenerate boxes) the second term is defined as 0 (torchvision gives NaN there); a box with a
NaN/Inf coordinate has GIoU -1 (the worst value) with every box and passes no gradient.

``legacy=True`` selects the "+1 pixel" convention of the Fast R-CNN era evaluators (the one the
public Action Genome evaluator uses): a box covers the integer pixels ``x1..x2`` inclusive, so
its width is ``x2 - x1 + 1``.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor

from dsgg_layers._checks import check_choice, check_device, check_tensor, values_readable

__all__ = [
    "box_area",
    "box_center",
    "box_convert",
    "box_iou",
    "box_union",
    "elementwise_box_iou",
    "elementwise_generalized_box_iou",
    "generalized_box_iou",
    "image_size_like",
    "normalize_boxes",
]

BoxFormat = Literal["xyxy", "xywh", "cxcywh"]
_FORMATS = ("xyxy", "xywh", "cxcywh")


def _check_boxes(boxes: object, name: str) -> Tensor:
    return check_tensor(boxes, name, ("...", 4), dtype="float")


def _check_pair(boxes1: object, boxes2: object) -> None:
    """Both box arguments: floating point ``(..., 4)`` tensors on one device."""
    _check_boxes(boxes1, "boxes1")
    _check_boxes(boxes2, "boxes2")
    check_device(boxes2, "boxes2", boxes1.device, "boxes1")  # type: ignore[union-attr]


def _upcast(boxes: Tensor) -> Tensor:
    """Half-precision boxes in float32: a 256 x 256 px area (65536) overflows float16."""
    return boxes.float() if boxes.dtype in (torch.float16, torch.bfloat16) else boxes


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
        - output: ``(...)``, float32 for float16/bfloat16 boxes (a 256 x 256 px area overflows
          float16), else the boxes' dtype.

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
    w, h = _extent(_upcast(boxes), legacy)
    return w * h


def box_center(boxes: Tensor) -> Tensor:
    """Centres ``(cx, cy)`` of ``xyxy`` boxes.

    Args:
        boxes: ``xyxy`` boxes.

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
    _check_pair(boxes1, boxes2)
    _check_broadcast(boxes1, boxes2)
    lt = torch.minimum(boxes1[..., :2], boxes2[..., :2])
    rb = torch.maximum(boxes1[..., 2:], boxes2[..., 2:])
    return torch.cat((lt, rb), dim=-1)


def _check_pairwise(boxes1: object, boxes2: object) -> None:
    """``(..., N, 4)`` and ``(..., M, 4)`` float boxes on one device, leading dims broadcasting."""
    check_tensor(boxes1, "boxes1", ("...", "N", 4), dtype="float")
    check_tensor(boxes2, "boxes2", ("...", "M", 4), dtype="float")
    check_device(boxes2, "boxes2", boxes1.device, "boxes1")  # type: ignore[union-attr]
    try:
        torch.broadcast_shapes(boxes1.shape[:-2], boxes2.shape[:-2])  # type: ignore[union-attr]
    except RuntimeError:
        raise ValueError(
            "boxes1 and boxes2: expected leading dims that broadcast, "
            f"got {tuple(boxes1.shape)} and {tuple(boxes2.shape)}"  # type: ignore[union-attr]
        ) from None


def _check_broadcast(boxes1: Tensor, boxes2: Tensor) -> None:
    try:
        torch.broadcast_shapes(boxes1.shape, boxes2.shape)
    except RuntimeError:
        raise ValueError(
            "boxes1 and boxes2: expected broadcastable shapes (..., 4), "
            f"got {tuple(boxes1.shape)} and {tuple(boxes2.shape)}"
        ) from None


def iou_unchecked(boxes1: Tensor, boxes2: Tensor, legacy: bool, *, finite: bool = False) -> Tensor:
    """IoU of broadcast-aligned xyxy boxes (no checks), computed in at least float32 and
    returned in the boxes' (promoted) dtype: IoU lies in [0, 1], areas do not.

    ``finite=True``: the caller knows the boxes that matter are finite and discards the rest
    (the evaluator), so the non-finite guard is skipped (a non-finite box gives NaN there)."""
    dtype = torch.promote_types(boxes1.dtype, boxes2.dtype)
    iou = _iou_finite if finite else _iou32
    return iou(_upcast(boxes1), _upcast(boxes2), legacy).to(dtype)


def _iou32(boxes1: Tensor, boxes2: Tensor, legacy: bool) -> Tensor:
    # A box with a NaN/Inf coordinate has IoU 0 with every box (the division guard gives 0), and
    # no gradient flows through it: when a gradient is wanted, the non-finite values are
    # replaced before any arithmetic (0 * NaN would reach the other box's gradient through the
    # max / min). Without autograd the replacement is skipped: it costs a few passes over the
    # boxes and changes no value.
    if not (torch.is_grad_enabled() and (boxes1.requires_grad or boxes2.requires_grad)):
        return _iou_finite(boxes1, boxes2, legacy)
    ok1, ok2 = torch.isfinite(boxes1).all(-1), torch.isfinite(boxes2).all(-1)
    boxes1 = torch.where(ok1.unsqueeze(-1), boxes1, 0.0)
    boxes2 = torch.where(ok2.unsqueeze(-1), boxes2, 0.0)
    return torch.where(ok1 & ok2, _iou_finite(boxes1, boxes2, legacy), 0.0)


def _iou_finite(boxes1: Tensor, boxes2: Tensor, legacy: bool) -> Tensor:
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
    _check_pair(boxes1, boxes2)
    _check_broadcast(boxes1, boxes2)
    return iou_unchecked(boxes1, boxes2, legacy)


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
    _check_pairwise(boxes1, boxes2)
    return iou_unchecked(boxes1.unsqueeze(-2), boxes2.unsqueeze(-3), legacy)


def giou_unchecked(boxes1: Tensor, boxes2: Tensor, legacy: bool = False) -> Tensor:
    """Generalized IoU of broadcast-aligned xyxy boxes (no checks), in at least float32; -1 and
    no gradient where a box is not finite (see the module docstring)."""
    dtype = torch.promote_types(boxes1.dtype, boxes2.dtype)
    b1, b2 = _upcast(boxes1), _upcast(boxes2)
    ok1, ok2 = torch.isfinite(b1).all(-1), torch.isfinite(b2).all(-1)
    b1 = torch.where(ok1.unsqueeze(-1), b1, 0.0)
    b2 = torch.where(ok2.unsqueeze(-1), b2, 0.0)
    lt = torch.maximum(b1[..., :2], b2[..., :2])
    rb = torch.minimum(b1[..., 2:], b2[..., 2:])
    inter_w, inter_h = _extent(torch.cat((lt, rb), dim=-1), legacy)
    inter = inter_w * inter_h
    w1, h1 = _extent(b1, legacy)
    w2, h2 = _extent(b2, legacy)
    union = w1 * h1 + w2 * h2 - inter
    hull_lt = torch.minimum(b1[..., :2], b2[..., :2])
    hull_rb = torch.maximum(b1[..., 2:], b2[..., 2:])
    hull_w, hull_h = _extent(torch.cat((hull_lt, hull_rb), dim=-1), legacy)
    hull = hull_w * hull_h
    giou = _safe_div(inter, union) - _safe_div(hull - union, hull)
    return torch.where(ok1 & ok2, giou, -1.0).to(dtype)


def elementwise_generalized_box_iou(
    boxes1: Tensor, boxes2: Tensor, *, legacy: bool = False
) -> Tensor:
    """Generalized IoU of corresponding ``xyxy`` boxes, in ``[-1, 1]`` (the loss is ``1 - GIoU``).

    Args:
        boxes1: ``xyxy`` boxes.
        boxes2: ``xyxy`` boxes broadcastable with ``boxes1``.
        legacy: the "+1 pixel" convention for every area, the hull's included (RePro's and
            UASAN's motion groups use it).

    Shape:
        - boxes1, boxes2: ``(..., 4)`` (broadcastable)
        - output: ``(...)``

    Raises:
        TypeError: an input is not a floating point tensor.
        ValueError: a last dim is not 4, or the shapes do not broadcast.

    Examples:
        >>> a = torch.tensor([[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0]])
        >>> b = torch.tensor([[0.0, 0.0, 1.0, 1.0], [2.0, 0.0, 3.0, 1.0]])
        >>> elementwise_generalized_box_iou(a, b)            # same box; 1 unit apart: 0 - 1/3
        tensor([ 1.0000, -0.3333])
    """
    _check_pair(boxes1, boxes2)
    _check_broadcast(boxes1, boxes2)
    return giou_unchecked(boxes1, boxes2, legacy)


def generalized_box_iou(boxes1: Tensor, boxes2: Tensor, *, legacy: bool = False) -> Tensor:
    """Pairwise generalized IoU between two sets of ``xyxy`` boxes (DETR's matching cost).

    Args:
        boxes1: ``xyxy`` boxes.
        boxes2: ``xyxy`` boxes.
        legacy: the "+1 pixel" convention for every area, the hull's included.

    Shape:
        - boxes1: ``(..., N, 4)``
        - boxes2: ``(..., M, 4)``
        - output: ``(..., N, M)``

    Raises:
        TypeError: an input is not a floating point tensor.
        ValueError: an input is not ``(..., K, 4)``, or the leading dims do not broadcast.

    Examples:
        >>> a = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
        >>> b = torch.tensor([[1.0, 1.0, 3.0, 3.0], [4.0, 0.0, 6.0, 2.0]])
        >>> generalized_box_iou(a, b)
        tensor([[-0.0794, -0.3333]])
    """
    _check_pairwise(boxes1, boxes2)
    return giou_unchecked(boxes1.unsqueeze(-2), boxes2.unsqueeze(-3), legacy)


def image_size_like(
    image_size: Tensor | tuple[float, float] | list[float], boxes: Tensor, name: str = "image_size"
) -> Tensor:
    """The image size as a ``(..., 2)`` tensor that broadcasts against ``boxes[..., :2]``.

    The one rule of the library for image sizes, used by every function that takes one:

    - ``(width, height)``: a pair of numbers or a ``(2,)`` tensor, the same for every box;
    - ``(B, 2)``: one size per video, along the **first** dim of the boxes (their batch dim);
    - ``(..., 2)`` with as many dims as the boxes: sizes that broadcast box by box.

    Anything else raises; sizes must be positive and finite (checked for Python numbers and CPU
    tensors; the values of a tensor on an accelerator are not read, which would wait for the
    device).

    Args:
        image_size: the size, in one of the three forms above.
        boxes: the ``(..., 4)`` boxes it applies to.
        name: the argument name used in error messages.

    Shape:
        - boxes: ``(B, ..., 4)``
        - output: ``(2,)``, or ``(B, 1, ..., 1, 2)``, or the given ``(..., 2)``

    Raises:
        TypeError: ``image_size`` is neither a pair of numbers nor a tensor.
        ValueError: its shape fits none of the forms, or a size is not positive and finite.

    Examples:
        >>> boxes = torch.zeros(3, 5, 2, 4)                       # (B, T, P, 4)
        >>> image_size_like((640, 480), boxes).shape
        torch.Size([2])
        >>> image_size_like(torch.tensor([[640.0, 480], [320, 240], [100, 100]]), boxes).shape
        torch.Size([3, 1, 1, 2])
    """
    if not isinstance(image_size, Tensor):
        if not isinstance(image_size, (tuple, list)) or len(image_size) != 2:
            raise TypeError(
                f"{name}: expected (width, height) or a tensor (2,), (B, 2) or (..., 2), got "
                f"{image_size!r}"
            )
        if not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v < math.inf
            for v in image_size
        ):
            raise ValueError(f"{name}: expected positive finite sizes, got {tuple(image_size)}")
        return torch.tensor(image_size, dtype=boxes.dtype, device=boxes.device)
    check_device(image_size, name, boxes.device, "the boxes")
    if values_readable(image_size) and not bool(
        ((image_size > 0) & torch.isfinite(image_size)).all()
    ):
        bad = image_size[~((image_size > 0) & torch.isfinite(image_size))]
        raise ValueError(
            f"{name}: expected positive finite sizes, got {bad.flatten()[:4].tolist()}"
        )
    size = image_size.to(boxes.dtype)
    shape = tuple(size.shape)
    if shape == (2,):
        return size
    if size.dim() == boxes.dim() and shape[-1] == 2:
        try:
            torch.broadcast_shapes(size.shape[:-1], boxes.shape[:-1])
        except RuntimeError:
            pass
        else:
            return size
    if size.dim() == 2 and shape[-1] == 2 and boxes.dim() >= 2 and shape[0] == boxes.shape[0]:
        return size.reshape(shape[0], *([1] * (boxes.dim() - 2)), 2)
    raise ValueError(
        f"{name}: expected (2,), (B, 2) with B = boxes.shape[0] = "
        f"{boxes.shape[0] if boxes.dim() else '-'}, or {boxes.dim()} dims broadcasting with the "
        f"boxes {tuple(boxes.shape)}; got {shape}"
    )


def normalize_boxes(boxes: Tensor, image_size: Tensor | tuple[float, float]) -> Tensor:
    """Divide ``xyxy`` pixel boxes by the image size, giving coordinates in ``[0, 1]``.

    Args:
        boxes: ``xyxy`` boxes in pixels.
        image_size: ``(width, height)`` for every box, ``(B, 2)`` one size per video along the
            boxes' first dim, or ``(..., 2)`` with the boxes' number of dims (see
            [`image_size_like`][]).

    Shape:
        - boxes: ``(B, ..., 4)``
        - image_size: ``(2,)``, ``(B, 2)`` or ``(B, ..., 2)``
        - output: ``(B, ..., 4)``

    Raises:
        TypeError: ``boxes`` is not a floating point tensor, or ``image_size`` not a size.
        ValueError: the last dim is not 4, or ``image_size`` has none of the accepted shapes.

    Examples:
        >>> normalize_boxes(torch.tensor([48.0, 27.0, 480.0, 270.0]), (480, 270))
        tensor([0.1000, 0.1000, 1.0000, 1.0000])
        >>> boxes = torch.tensor([[[10.0, 10, 20, 20]], [[10.0, 10, 20, 20]]])   # (B=2, P=1, 4)
        >>> normalize_boxes(boxes, torch.tensor([[100.0, 100], [20, 20]]))[:, 0, 2].tolist()
        [0.20000000298023224, 1.0]
    """
    _check_boxes(boxes, "boxes")
    size = image_size_like(image_size, boxes)
    return boxes / torch.cat((size, size), dim=-1)
