"""MoSA motion blocks: motion attributes of subject-object pairs and their encoder.

Implements the Motion Feature Extractor (MFE) of *MoSA: Motion-guided Semantic Alignment for
Dynamic Scene Graph Generation* (seeds/000, Sec. 2.2, Eq. 3-6). The paper's text lost Eq. 3-6;
this module follows the reading of ``SPEC.md`` §2 "MoSA":

1. distance ``d_t = ||cs_t - co_t||_2`` between the box centres (Eq. 3), divided by the image
   diagonal when ``image_size`` is given (boxes in pixels), as is otherwise (boxes already
   normalised to ``[0, 1]``);
2. approach velocity ``v_t = (d_t - d_t') / (tau_t - tau_t')`` (Eq. 4), ``t'`` the previous frame
   in which the pair exists and ``tau`` the frame times; 0 at a pair's first frame;
3. sliding-window mean IoU ``m_t = mean_k IoU(bs_k, bo_k)`` over the frames ``k`` of the last
   ``window`` frame slots up to ``t`` in which the pair exists (Eq. 5);
4. direction consistency ``c_t = cos(cs_t - cs_t', co_t - co_t')`` (Eq. 6), 0 when either
   displacement is (near) zero or there is no previous frame.

Everything is vectorised over ``(..., T, P)``: the previous frame of each pair comes from a
cumulative max over frame indices, the window mean from cumulative sums.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from dsgg_layers._checks import check_positive, check_tensor
from dsgg_layers.boxes import box_center, elementwise_box_iou

__all__ = ["NUM_MOTION_ATTRIBUTES", "MotionFeatureExtractor", "motion_attributes"]

NUM_MOTION_ATTRIBUTES = 4
"""Channels of :func:`motion_attributes`: distance, velocity, window IoU, direction consistency."""


def _previous_frame(mask: Tensor) -> Tensor:
    """``(..., T, P)`` index of the previous frame in which the pair exists, -1 if none."""
    T = mask.shape[-2]
    frames = torch.arange(T, device=mask.device).view(T, 1)
    last_valid = torch.where(mask, frames, -1).cummax(dim=-2).values  # last valid index <= t
    return torch.cat((torch.full_like(last_valid[..., :1, :], -1), last_valid[..., :-1, :]), dim=-2)


def _gather_time(x: Tensor, index: Tensor) -> Tensor:
    """``x[..., index[t, p], p, :]`` for ``x (..., T, P, C)`` and ``index (..., T, P)`` >= 0."""
    return torch.gather(x, -3, index.unsqueeze(-1).expand(*index.shape, x.shape[-1]))


def motion_attributes(
    subject_boxes: Tensor,
    object_boxes: Tensor,
    mask: Tensor,
    frame_times: Tensor | None = None,
    *,
    image_size: Tensor | tuple[float, float] | None = None,
    window: int = 3,
    eps: float = 1e-6,
) -> Tensor:
    """The four MoSA motion attributes of every pair in every frame (Eq. 3-6).

    Args:
        subject_boxes: ``xyxy`` subject boxes (pixels with ``image_size``, else normalised).
        object_boxes: ``xyxy`` object boxes, same convention.
        mask: ``True`` where the pair exists in that frame.
        frame_times: real time (e.g. frame number) of each frame slot; default ``0, 1, 2, ...``.
            Must increase along ``T`` over the frames where a pair exists.
        image_size: ``(width, height)``, or ``(..., 2)`` with one size per video; distances are
            divided by the image diagonal.
        window: number of frame slots of the sliding IoU window (Eq. 5).
        eps: displacements shorter than this count as "no motion" (direction consistency 0).

    Returns:
        ``[distance, velocity, window IoU, direction consistency]`` in the last dim; exactly 0 at
        padded positions; never NaN.

    Shape:
        - subject_boxes, object_boxes: ``(..., T, P, 4)``
        - mask: ``(..., T, P)``
        - frame_times: ``(..., T)``
        - image_size: ``(2,)`` or ``(..., 2)``
        - output: ``(..., T, P, 4)``

    Raises:
        TypeError: boxes are not floating point, or ``mask`` is not bool.
        ValueError: shapes disagree, or ``window`` is not a positive int.

    Examples:
        >>> # one pair over three frames: the object moves towards the person, then away
        >>> subject = torch.tensor([[0.0, 0.0, 0.2, 0.2]]).expand(3, 1, 4)
        >>> obj = torch.tensor([[[0.6, 0.0, 0.8, 0.2]], [[0.3, 0.0, 0.5, 0.2]],
        ...                     [[0.5, 0.0, 0.7, 0.2]]])
        >>> attrs = motion_attributes(subject, obj, torch.ones(3, 1, dtype=torch.bool))
        >>> attrs[:, 0].round(decimals=3)
        tensor([[ 0.6000,  0.0000,  0.0000,  0.0000],
                [ 0.3000, -0.3000,  0.0000,  0.0000],
                [ 0.5000,  0.2000,  0.0000,  0.0000]])
    """
    dims: dict[str, tuple[int, str]] = {}
    check_tensor(subject_boxes, "subject_boxes", ("...", "T", "P", 4), dims=dims, dtype="float")
    check_tensor(object_boxes, "object_boxes", ("...", "T", "P", 4), dims=dims, dtype="float")
    check_tensor(mask, "mask", ("...", "T", "P"), dims=dims, dtype="bool")
    check_positive(window, "window")
    if frame_times is not None:
        check_tensor(frame_times, "frame_times", ("...", "T"), dims=dims)
    T = subject_boxes.shape[-3]
    dtype = subject_boxes.dtype
    valid = mask.unsqueeze(-1)

    # Eq. 3: centre distance, optionally normalised by the image diagonal.
    cs, co = box_center(subject_boxes), box_center(object_boxes)
    distance = torch.linalg.vector_norm(cs - co, dim=-1)
    if image_size is not None:
        if isinstance(image_size, Tensor):
            check_tensor(image_size, "image_size", ("...", 2))
            diag = torch.linalg.vector_norm(image_size.to(dtype), dim=-1)[..., None, None]
        else:
            if len(image_size) != 2 or min(image_size) <= 0:
                raise ValueError(f"image_size: expected positive (width, height), got {image_size}")
            diag = torch.tensor(math.hypot(*image_size), dtype=dtype, device=distance.device)
        distance = distance / diag
    distance = distance.masked_fill(~mask, 0.0)

    # The previous frame in which the pair exists (index scan, no loop).
    prev = _previous_frame(mask)
    has_prev = (prev >= 0) & mask
    prev_ = prev.clamp(min=0)

    # Eq. 4: approach velocity per unit of real time.
    if frame_times is None:
        dt = (torch.arange(T, device=prev.device).unsqueeze(-1) - prev).to(dtype)
    else:
        t_now = frame_times.to(dtype).unsqueeze(-1).expand_as(distance)
        dt = t_now - torch.gather(t_now, -2, prev_)
    prev_distance = torch.gather(distance, -2, prev_)
    ok_dt = has_prev & (dt > 0)
    velocity = torch.where(
        ok_dt, (distance - prev_distance) / torch.where(ok_dt, dt, torch.ones_like(dt)), 0.0
    )

    # Eq. 5: mean IoU over the valid frames of the window (cumulative sums along T).
    iou = elementwise_box_iou(subject_boxes, object_boxes).masked_fill(~mask, 0.0)
    zero = torch.zeros_like(iou[..., :1, :])
    iou_cum = torch.cat((zero, iou.cumsum(dim=-2)), dim=-2)  # (..., T + 1, P)
    count_cum = torch.cat((zero, mask.to(dtype).cumsum(dim=-2)), dim=-2)
    start = (torch.arange(T, device=iou.device) + 1 - window).clamp(min=0)
    iou_sum = iou_cum[..., 1:, :] - iou_cum.index_select(-2, start)
    count = count_cum[..., 1:, :] - count_cum.index_select(-2, start)
    window_iou = torch.where(mask, iou_sum / count.clamp(min=1.0), 0.0)

    # Eq. 6: cosine between the subject's and the object's displacement since t'.
    ds = cs - _gather_time(cs, prev_)
    do = co - _gather_time(co, prev_)
    ns = torch.linalg.vector_norm(ds, dim=-1)
    no = torch.linalg.vector_norm(do, dim=-1)
    moving = has_prev & (ns > eps) & (no > eps)
    denom = torch.where(moving, ns * no, torch.ones_like(ns))
    direction = torch.where(moving, (ds * do).sum(-1) / denom, 0.0).clamp(-1.0, 1.0)

    out = torch.stack((distance, velocity, window_iou, direction), dim=-1)
    return out.masked_fill(~valid, 0.0)


class MotionFeatureExtractor(nn.Module):
    """MoSA's Motion Feature Extractor (MFE): motion attributes, then an MLP to ``D`` channels.

    ``f_mot = MLP([d_t, v_t, m_t, c_t])`` (seeds/000, Sec. 2.2, Eq. 3-6 and the text after Eq. 6;
    the equations follow ``SPEC.md``, see :func:`motion_attributes`). Padded positions output 0.

    Args:
        out_features: width ``D`` of the motion features.
        hidden_features: hidden width of the two-layer MLP (default ``out_features``).
        window: frame slots of the sliding IoU window.
        normalize_input: apply a ``LayerNorm`` to the 4 raw attributes first (their scales
            differ: distances ~0.1-1, velocities depend on the frame interval).

    Shape:
        - subject_boxes, object_boxes: ``(..., T, P, 4)`` ``xyxy``
        - mask: ``(..., T, P)`` bool; frame_times: ``(..., T)``
        - output: ``(..., T, P, D)``; with ``return_attributes=True`` also ``(..., T, P, 4)``

    Raises:
        TypeError, ValueError: as :func:`motion_attributes`.

    Examples:
        >>> mfe = MotionFeatureExtractor(32)
        >>> boxes = torch.rand(2, 5, 3, 4).sort(-1).values  # valid xyxy: x1 <= x2, y1 <= y2
        >>> mask = torch.ones(2, 5, 3, dtype=torch.bool)
        >>> feats, attrs = mfe(boxes, boxes.flip(2), mask, return_attributes=True)
        >>> feats.shape, attrs.shape
        (torch.Size([2, 5, 3, 32]), torch.Size([2, 5, 3, 4]))
    """

    def __init__(
        self,
        out_features: int,
        hidden_features: int | None = None,
        *,
        window: int = 3,
        normalize_input: bool = True,
    ) -> None:
        super().__init__()
        check_positive(out_features, "out_features")
        check_positive(window, "window")
        hidden = out_features if hidden_features is None else hidden_features
        check_positive(hidden, "hidden_features")
        self.out_features = out_features
        self.window = window
        self.norm = nn.LayerNorm(NUM_MOTION_ATTRIBUTES) if normalize_input else nn.Identity()
        self.mlp = nn.Sequential(
            nn.Linear(NUM_MOTION_ATTRIBUTES, hidden),
            nn.ReLU(),
            nn.Linear(hidden, out_features),
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Default ``nn.Linear`` / ``nn.LayerNorm`` initialisation."""
        for module in self.modules():
            if module is not self and hasattr(module, "reset_parameters"):
                module.reset_parameters()

    def extra_repr(self) -> str:
        return f"out_features={self.out_features}, window={self.window}"

    def forward(
        self,
        subject_boxes: Tensor,
        object_boxes: Tensor,
        mask: Tensor,
        frame_times: Tensor | None = None,
        *,
        image_size: Tensor | tuple[float, float] | None = None,
        return_attributes: bool = False,
    ) -> Tensor | tuple[Tensor, Tensor]:
        """Motion features (and the raw attributes when ``return_attributes``)."""
        attrs = motion_attributes(
            subject_boxes,
            object_boxes,
            mask,
            frame_times,
            image_size=image_size,
            window=self.window,
        )
        feats = self.mlp(self.norm(attrs)).masked_fill(~mask.unsqueeze(-1), 0.0)
        return (feats, attrs) if return_attributes else feats
