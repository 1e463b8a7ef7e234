"""MoSA motion blocks: motion attributes of subject-object pairs, their encoder, and MIM.

Implements the Motion Feature Extractor (MFE) of *MoSA: Motion-Guided Semantic Alignment for
Dynamic Scene Graph Generation* (arXiv:2604.19631, Sec. 2.2, Eq. 3-6). The paper's extracted
text lost Eq. 3-6; this module follows the reading written out on the MoSA docs page:

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

from typing import Literal, NamedTuple

import torch
from torch import Tensor, nn

from dsgg_layers._checks import (
    autocasting,
    check_choice,
    check_finite,
    check_param_dtype,
    check_positive,
    check_tensor,
    values_readable,
)
from dsgg_layers.attention import MaskedMultiheadAttention
from dsgg_layers.boxes import box_center, elementwise_box_iou, giou_unchecked, image_size_like
from dsgg_layers.rows import MaskOrRows, ValidRows, resolve_rows, split_mask
from dsgg_layers.temporal import gather_frames, previous_frame_index

__all__ = [
    "MOTION_GROUP_TAGS",
    "NUM_MOTION_ATTRIBUTES",
    "MotionFeatureExtractor",
    "MotionInteraction",
    "TrajectoryPairMotion",
    "motion_attributes",
    "trajectory_pair_motion",
]

NUM_MOTION_ATTRIBUTES = 4
"""Channels of [`motion_attributes`][]: distance, velocity, window IoU, direction consistency."""


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
            Must not decrease along ``T`` over the frames where a pair exists (checked on the
            CPU; on an accelerator a decreasing time gives velocity 0); a repeated time gives
            velocity 0.
        image_size: ``(width, height)``, ``(B, 2)`` one size per video along the boxes' first
            dim, or ``(..., 2)`` like the boxes ([`image_size_like`][]);
            distances are divided by the image diagonal.
        window: number of frame slots of the sliding IoU window (Eq. 5).
        eps: displacements shorter than this count as "no motion" (direction consistency 0).

    Returns:
        ``[distance, velocity, window IoU, direction consistency]`` in the last dim, in the
        boxes' dtype (computed in float32 for float16/bfloat16 boxes); exactly 0 at padded
        positions, whatever they hold; never NaN for finite boxes at the valid positions.

    Shape:
        - subject_boxes, object_boxes: ``(..., T, P, 4)``
        - mask: ``(..., T, P)``
        - frame_times: ``(..., T)``
        - image_size: ``(2,)``, ``(B, 2)`` or ``(B, ..., T, P, 2)``
        - output: ``(..., T, P, 4)``

    Raises:
        TypeError: boxes are not floating point, or ``mask`` is not bool.
        ValueError: shapes disagree, ``window`` is not a positive int, ``image_size`` is not
            positive and finite, or (CPU tensors) a box at a valid position is not finite or
            ``frame_times`` decrease.

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
    check_positive(eps, "eps", integer=False, allow_zero=True)
    if frame_times is not None:
        check_tensor(frame_times, "frame_times", ("...", "T"), dims=dims)
    check_finite(subject_boxes, "subject_boxes", mask)  # CPU only: no device sync
    check_finite(object_boxes, "object_boxes", mask)
    T = subject_boxes.shape[-3]
    out_dtype = torch.promote_types(subject_boxes.dtype, object_boxes.dtype)
    # Half-precision boxes are computed in float32: squared pixel distances and areas of boxes
    # of a few hundred pixels overflow float16 (65504).
    dtype = torch.float32 if out_dtype in (torch.float16, torch.bfloat16) else out_dtype
    subject_boxes, object_boxes = subject_boxes.to(dtype), object_boxes.to(dtype)
    valid = mask.unsqueeze(-1)
    # Padded positions may hold anything (NaN, inf): replace them before any arithmetic, so
    # that neither the cumulative sums nor a gradient carries them to a valid position.
    subject_boxes = subject_boxes.masked_fill(~valid, 0.0)
    object_boxes = object_boxes.masked_fill(~valid, 0.0)
    if frame_times is not None:
        frame_times = frame_times.masked_fill(~mask.any(-1), 0)

    # Eq. 3: centre distance, optionally normalised by the image diagonal.
    cs, co = box_center(subject_boxes), box_center(object_boxes)
    distance = torch.linalg.vector_norm(cs - co, dim=-1)
    if image_size is not None:  # one rule for sizes: (2,), (B, 2) or like the boxes
        diag = torch.linalg.vector_norm(image_size_like(image_size, subject_boxes), dim=-1)
        distance = distance / diag
    distance = distance.masked_fill(~mask, 0.0)

    # The previous frame in which the pair exists (index scan, no loop).
    prev = previous_frame_index(mask)
    has_prev = (prev >= 0) & mask
    prev_ = prev.clamp(min=0)

    # Eq. 4: approach velocity per unit of real time.
    if frame_times is None:
        dt = (torch.arange(T, device=prev.device).unsqueeze(-1) - prev).to(dtype)
    else:
        t_now = frame_times.to(dtype).unsqueeze(-1).expand_as(distance)
        dt = t_now - torch.gather(t_now, -2, prev_)
    prev_distance = torch.gather(distance, -2, prev_)
    if (
        frame_times is not None
        and values_readable(dt, has_prev)
        and bool((has_prev & (dt < 0)).any())
    ):
        raise ValueError(
            "frame_times: expected times that never decrease along T over the frames where a pair "
            f"exists, got {frame_times.flatten()[:8].tolist()}"
        )
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
    ds = cs - gather_frames(cs, prev_)
    do = co - gather_frames(co, prev_)
    ns = torch.linalg.vector_norm(ds, dim=-1)
    no = torch.linalg.vector_norm(do, dim=-1)
    moving = has_prev & (ns > eps) & (no > eps)
    denom = torch.where(moving, ns * no, torch.ones_like(ns))
    direction = torch.where(moving, (ds * do).sum(-1) / denom, 0.0).clamp(-1.0, 1.0)

    out = torch.stack((distance, velocity, window_iou, direction), dim=-1)
    return out.masked_fill(~valid, 0.0).to(out_dtype)


MOTION_GROUP_TAGS = (
    (False, False, False),
    (False, False, True),
    (False, True, True),
    (True, False, False),
    (True, True, False),
    (True, True, True),
)
"""The six motion groups of [`trajectory_pair_motion`][], as ``(start GIoU >= threshold, end
GIoU >= threshold, end GIoU >= start GIoU)``: group ``i`` is row ``i`` (the other two
combinations cannot occur). RePro picks one of six prompt sets by the group."""

_GROUP_OF_CODE = (0, 1, 2, 2, 3, 3, 4, 5)  # 4 s + 2 e + d -> group (codes 2 and 5 cannot occur)


class TrajectoryPairMotion(NamedTuple):
    """What [`trajectory_pair_motion`][] returns.

    Examples:
        >>> m = torch.ones(1, 1, dtype=torch.bool)
        >>> box = torch.tensor([[[0.0, 0, 4, 4]]])
        >>> relative, giou, group = trajectory_pair_motion(box, m, box, m)
        >>> relative.shape, giou.tolist(), group.tolist()
        (torch.Size([1, 12]), [[1.0, 1.0, 0.0]], [5])
    """

    relative: Tensor
    """``(..., 12)``: relative position at the first and last boxes, interleaved by quantity."""
    giou: Tensor
    """``(..., 3)``: ``[GIoU_start, GIoU_end, GIoU_end - GIoU_start]`` (UASAN's second token)."""
    group: Tensor
    """``(...)`` long: the motion group, an index into [`MOTION_GROUP_TAGS`][]."""


def _endpoints(boxes: Tensor, mask: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """First and last valid boxes ``(..., 4)`` and the duration ``[begin, end)`` of each
    trajectory; zeros for an empty one."""
    F = mask.shape[-1]
    valid = mask.any(-1)
    begin = mask.int().argmax(-1)  # the first True (argmax returns the first maximum)
    last = F - 1 - mask.flip(-1).int().argmax(-1)

    def pick(i: Tensor) -> Tensor:
        box = boxes.gather(-2, i[..., None, None].expand(*i.shape, 1, 4)).squeeze(-2)
        return torch.where(valid[..., None], box, 0.0)  # padding garbage never read

    return pick(begin), pick(last), begin * valid, (last + 1) * valid


def trajectory_pair_motion(
    subject_boxes: Tensor,
    subject_mask: Tensor,
    object_boxes: Tensor,
    object_mask: Tensor,
    *,
    giou_threshold: float = -0.3,
    frame_scale: float = 30.0,
    min_size: float = 1.0,
) -> TrajectoryPairMotion:
    """Trajectory-pair motion features as RePro's and UASAN's public code computes them.

    Only the **first and last box** of each trajectory are used (each trajectory's own, so the
    subject's first box may be from another frame than the object's). With centres ``(x, y)``
    and sizes ``w = x2 - x1``, ``h = y2 - y1`` (no "+1"), at the start and at the end:

    - ``rx = (x_s - x_o) / w_o``, ``ry = (y_s - y_o) / h_o``;
    - ``rw = log(w_s / w_o)``, ``rh = log(h_s / h_o)``, ``ra = rw + rh`` (log area ratio);
    - ``rt = [(begin_s - begin_o), (end_s - end_o)] / frame_scale`` (durations ``[begin, end)``).

    ``relative`` is ``[rx_start, rx_end, ry_start, ry_end, rw_start, rw_end, rh_start, rh_end,
    ra_start, ra_end, rt_begin, rt_end]`` (the code's interleaved layout, its
    ``get_relative_position_feature``). The GIoU of the subject's and object's first boxes and of
    their last boxes ("+1 pixel" areas, the code's ``bbox_GIoU``) gives the motion group
    ([`MOTION_GROUP_TAGS`][]; the code's ``get_giou_tags`` with ``giou_th = -0.3``).

    Unlike the code, the result is finite for finite boxes: widths and heights are clamped at
    ``min_size`` (1 pixel; the code gives inf/NaN on zero-width boxes), and a pair with an empty
    trajectory (or a frame axis of length 0) gets zeros (group 0). Boxes where a mask is False
    are never read; a NaN or inf box where it is True raises (on the CPU, where reading the
    values costs no device sync).

    Args:
        subject_boxes: ``xyxy`` boxes of the subject's trajectory on a frame axis (e.g. a
            30-frame segment), in pixels.
        subject_mask: ``True`` on the frames the subject's trajectory covers.
        object_boxes: the object's boxes, on the same frame axis.
        object_mask: the frames the object's trajectory covers.
        giou_threshold: the GIoU that counts as "close" in the motion group (-0.3).
        frame_scale: frames dividing the duration offsets (30, the segment length).
        min_size: smallest width / height used in the ratios and logs.

    Shape:
        - subject_boxes, object_boxes: ``(..., F, 4)``
        - subject_mask, object_mask: ``(..., F)`` bool
        - output: ``relative (..., 12)``, ``giou (..., 3)``, ``group (...)``

    Raises:
        TypeError, ValueError: a tensor has the wrong dtype, or shapes disagree (the message names
            the argument); ``min_size`` or ``frame_scale`` is not positive; a box is not finite
            where its mask is True.

    Examples:
        >>> s = torch.tensor([[[0.0, 0, 10, 10], [20, 0, 30, 10]]])   # moves right by 20 px
        >>> o = torch.tensor([[[40.0, 0, 50, 10], [40, 0, 50, 10]]])  # still
        >>> m = torch.ones(1, 2, dtype=torch.bool)
        >>> out = trajectory_pair_motion(s, m, o, m)
        >>> out.relative[0, :2]                       # rx at the start and end: -40/10, -20/10
        tensor([-4., -2.])
        >>> out.giou[0, :2]                           # "+1" areas: apart, then within -0.3
        tensor([-0.5686, -0.2903])
        >>> out.group                                 # (False, True, True): coming close
        tensor([2])

    Reference:
        *Compositional Prompt Tuning with Motion Cues for Open-vocabulary Video Relation
        Detection* (RePro, ICLR 2023), Sec. 3.2; *Open-Vocabulary Video Scene Graph Generation
        via Union-aware Semantic Alignment* (UASAN), its motion tokens.
    """
    dims: dict[str, tuple[int, str]] = {}
    check_tensor(subject_boxes, "subject_boxes", ("...", "F", 4), dims=dims, dtype="float")
    check_tensor(subject_mask, "subject_mask", ("...", "F"), dims=dims, dtype="bool")
    check_tensor(object_boxes, "object_boxes", ("...", "F", 4), dims=dims, dtype="float")
    check_tensor(object_mask, "object_mask", ("...", "F"), dims=dims, dtype="bool")
    check_positive(frame_scale, "frame_scale", integer=False)
    check_positive(min_size, "min_size", integer=False)
    check_finite(subject_boxes, "subject_boxes", subject_mask)
    check_finite(object_boxes, "object_boxes", object_mask)
    dtype = subject_boxes.dtype
    lead = subject_mask.shape[:-1]
    if subject_mask.shape[-1] == 0:  # no frames: every pair is empty
        group = torch.zeros(lead, dtype=torch.long, device=subject_mask.device)
        return TrajectoryPairMotion(subject_boxes.new_zeros(*lead, 12),
                                    subject_boxes.new_zeros(*lead, 3), group)  # fmt: skip
    work = torch.promote_types(dtype, torch.float32)
    s_first, s_last, s_begin, s_end = _endpoints(subject_boxes.to(work), subject_mask)
    o_first, o_last, o_begin, o_end = _endpoints(object_boxes.to(work), object_mask)
    both = subject_mask.any(-1) & object_mask.any(-1)
    s_box = torch.stack((s_first, s_last), -2)  # (..., 2, 4): start, end
    o_box = torch.stack((o_first, o_last), -2)
    s_c, o_c = (s_box[..., :2] + s_box[..., 2:]) / 2, (o_box[..., :2] + o_box[..., 2:]) / 2
    s_wh = (s_box[..., 2:] - s_box[..., :2]).clamp(min=min_size)
    o_wh = (o_box[..., 2:] - o_box[..., :2]).clamp(min=min_size)
    rxy = (s_c - o_c) / o_wh  # (..., 2 ends, 2 axes)
    rwh = s_wh.log() - o_wh.log()
    ra = rwh.sum(-1, keepdim=True)
    rt = torch.stack((s_begin - o_begin, s_end - o_end), -1).to(work) / frame_scale
    per_end = torch.cat((rxy, rwh, ra), -1)  # (..., 2 ends, 5 quantities)
    relative = torch.cat((per_end.transpose(-1, -2).flatten(-2), rt), -1)  # interleaved
    g = giou_unchecked(s_box, o_box, legacy=True)  # (..., 2)
    giou = torch.cat((g, g[..., 1:] - g[..., :1]), -1)
    relative = torch.where(both[..., None], relative, 0.0)
    giou = torch.where(both[..., None], giou, 0.0)
    code = (
        4 * (g[..., 0] >= giou_threshold).long()
        + 2 * (g[..., 1] >= giou_threshold).long()
        + (g[..., 1] >= g[..., 0]).long()
    )
    table = torch.tensor(_GROUP_OF_CODE, device=code.device)
    group = torch.where(both, table[code], 0)
    return TrajectoryPairMotion(relative.to(dtype), giou.to(dtype), group)


class MotionFeatureExtractor(nn.Module):
    """MoSA's Motion Feature Extractor (MFE): motion attributes, then an MLP to ``D`` channels.

    ``f_mot = MLP([d_t, s * v_t, m_t, c_t])`` (MoSA, arXiv:2604.19631, Sec. 2.2, Eq. 3-6 and
    the text after Eq. 6; the reading of the equations is on the MoSA docs page, see
    [`motion_attributes`][]). Padded positions
    output 0.

    The attributes have different scales: distances and window IoU lie in ``[0, 1]``, direction
    consistency in ``[-1, 1]``, but a velocity per real frame is small (a pair that closes 0.1 of
    the image diagonal in a second of 25 fps video moves 0.004 a frame). The paper does not say
    how the attributes are scaled; this module offers two means, both before the MLP:

    - ``velocity_scale`` (``s``) multiplies the velocity, so that it reaches the MLP at the scale
      of the others; the default 25 reads it per second of Action Genome's 25 fps videos.
    - ``standardize=True`` (default) standardises each attribute with statistics over the
      existing pairs, as `torch.nn.BatchNorm1d` does per channel, without affine
      parameters: batch statistics in training (running estimates updated with ``momentum``),
      the running estimates in evaluation. Padding never enters the statistics. As with batch
      norm, a video's output in training mode depends on the rest of the batch; in evaluation
      mode it does not. (A LayerNorm across the four channels would mix quantities of different
      kinds, so this module does not use one.)

    Args:
        out_features: width ``D`` of the motion features.
        hidden_features: hidden width of the two-layer MLP (default ``out_features``).
        window: frame slots of the sliding IoU window.
        velocity_scale: factor applied to the velocity before the MLP.
        standardize: standardise the (scaled) attributes with running statistics.
        momentum: update rate of the running statistics.

    Shape:
        - subject_boxes, object_boxes: ``(..., T, P, 4)`` ``xyxy``
        - mask: ``(..., T, P)`` bool; frame_times: ``(..., T)``
        - output: ``(..., T, P, D)``; with ``return_attributes=True`` also the raw (unscaled)
          attributes ``(..., T, P, 4)``

    Raises:
        TypeError, ValueError: as [`motion_attributes`][].

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
        velocity_scale: float = 25.0,
        standardize: bool = True,
        momentum: float = 0.1,
    ) -> None:
        super().__init__()
        check_positive(out_features, "out_features")
        check_positive(window, "window")
        check_positive(velocity_scale, "velocity_scale", integer=False)
        if not 0.0 < momentum <= 1.0:
            raise ValueError(f"momentum: expected a value in (0, 1], got {momentum}")
        hidden = out_features if hidden_features is None else hidden_features
        check_positive(hidden, "hidden_features")
        self.out_features = out_features
        self.window = window
        self.velocity_scale = float(velocity_scale)
        self.standardize = standardize
        self.momentum = float(momentum)
        scale = torch.tensor([1.0, self.velocity_scale, 1.0, 1.0])
        self.register_buffer("attribute_scale", scale, persistent=False)
        self.register_buffer("running_mean", torch.zeros(NUM_MOTION_ATTRIBUTES))
        self.register_buffer("running_var", torch.ones(NUM_MOTION_ATTRIBUTES))
        self.mlp = nn.Sequential(
            nn.Linear(NUM_MOTION_ATTRIBUTES, hidden),
            nn.ReLU(),
            nn.Linear(hidden, out_features),
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Default ``nn.Linear`` initialisation; running statistics back to mean 0, variance 1."""
        for module in self.mlp:
            if isinstance(module, nn.Linear):
                module.reset_parameters()
        self.running_mean.zero_()
        self.running_var.fill_(1.0)

    def extra_repr(self) -> str:
        return (
            f"out_features={self.out_features}, window={self.window}, "
            f"velocity_scale={self.velocity_scale}, standardize={self.standardize}"
        )

    def _standardize(self, x: Tensor, mask: Tensor) -> Tensor:
        """Per-attribute standardisation over the existing pairs (batch norm without affine).

        Statistics in at least float32: a half-precision sum over more than 65504 pairs
        overflows."""
        dtype = x.dtype
        x = x.float() if dtype in (torch.float16, torch.bfloat16) else x
        if self.training:
            m = mask.unsqueeze(-1).to(x.dtype)
            n = m.sum(dim=tuple(range(m.dim() - 1)))  # (1,): existing pairs in the batch
            dims = tuple(range(x.dim() - 1))
            mean = (x * m).sum(dims) / n.clamp(min=1.0)
            var = (((x - mean) * m) ** 2).sum(dims) / n.clamp(min=1.0)
            with torch.no_grad():  # unbiased running variance, as batch norm keeps it
                # a batch with a non-finite attribute never reaches the running statistics
                # (checked on the device, without a sync): one bad batch would poison them
                finite = torch.isfinite(mean) & torch.isfinite(var)
                seen = ((n > 1) & finite).to(x.dtype)
                rate = (self.momentum * seen).to(self.running_mean.dtype)
                unbiased = var.detach() * n / (n - 1).clamp(min=1.0)
                mean_, var_ = mean.detach().nan_to_num(0.0), unbiased.nan_to_num(1.0)
                self.running_mean.lerp_(mean_.to(self.running_mean.dtype), rate)
                self.running_var.lerp_(var_.to(self.running_var.dtype), rate)
        else:
            mean = self.running_mean.to(x.dtype)
            var = self.running_var.to(x.dtype)
        return ((x - mean) * torch.rsqrt(var + 1e-5)).to(dtype)

    def forward(
        self,
        subject_boxes: Tensor,
        object_boxes: Tensor,
        mask: MaskOrRows,
        frame_times: Tensor | None = None,
        *,
        image_size: Tensor | tuple[float, float] | None = None,
        return_attributes: bool = False,
        rows: ValidRows | None = None,
    ) -> Tensor | tuple[Tensor, Tensor]:
        """Motion features (and the raw attributes when ``return_attributes``).

        ``mask`` may be its [`ValidRows`][dsgg_layers.rows.ValidRows], built once for the batch
        (else the MLP builds them from ``mask``); ``rows=`` is deprecated.
        """
        mask, rows = split_mask(mask, rows)
        attrs = motion_attributes(
            subject_boxes,
            object_boxes,
            mask,
            frame_times,
            image_size=image_size,
            window=self.window,
        )
        scaled = attrs * self.attribute_scale.to(attrs.dtype)
        if self.standardize:
            scaled = self._standardize(scaled, mask)
        weight = self.mlp[0].weight
        if not autocasting(weight.device.type):
            scaled = scaled.to(weight.dtype)  # attributes of boxes in any dtype meet the MLP's
        resolved = resolve_rows(True, mask, scaled.shape[:-1], rows)
        if resolved is not None:  # the MLP on existing pairs only
            feats = resolved.scatter(self.mlp(resolved.gather(scaled)))
        else:
            feats = self.mlp(scaled).masked_fill(~mask.unsqueeze(-1), 0.0)
        return (feats, attrs) if return_attributes else feats


class MotionInteraction(nn.Module):
    """Attention among the pairs of a frame in which motion features steer the weights
    (MoSA's Motion Interaction Module, MIM).

    ``fused = Attn(Q = f_mot, K = V = f_spa)`` over the pairs of each frame (Eq. 7), then
    ``joint = Norm(f_spa + Dropout(fused))`` (Eq. 8, with the norm). ``fusion="concat"`` is the
    paper's ablation without MIM: ``fused = Linear([f_spa, f_mot])``, same residual and norm.
    Padded pairs output 0 and are never attended to. (MoSA, arXiv:2604.19631, Sec. 2.3; Eq. 7-8
    are not legible in the paper's text; the reading used is on the MoSA docs page.)

    **Frames with one pair.** Motion enters Eq. 7 only through the queries, i.e. through the
    attention weights. In a frame with a single pair there is a single key, its weight is exactly
    1 whatever the query, and ``fused = W_o W_v f_spa`` does not depend on motion: the output of
    such a pair ignores its motion and the gradient to the motion features (and to MFE) is zero
    (up to rounding in the softmax's backward). In a video with one object every frame is like
    that. ``motion_skip=True`` (not in the paper; off by default) adds a learned linear path for
    the pair's own motion to the residual, ``joint = Norm(f_spa + Dropout(fused) + W_m f_mot)``,
    so that motion reaches every pair while the attention keeps the paper's form. (A linear skip
    was chosen over adding the pair's own motion as an extra key: that would change the attention
    of every frame, not only of the one-pair ones.)

    Args:
        d_model: width ``D`` of the spatial and motion features.
        nhead: attention heads (``fusion="attention"``).
        dropout: dropout on the attention weights and the fused features.
        fusion: ``"attention"`` (MIM) or ``"concat"`` (the ablation).
        motion_skip: add ``W_m f_mot`` to the residual (see above).

    Shape:
        - spatial: ``(..., P, D)`` relation features from the spatial encoder
        - motion: ``(..., P, D)`` motion features ([`MotionFeatureExtractor`][])
        - mask: ``(..., P)`` bool, ``True`` where the pair exists
        - output: ``(..., P, D)``

    Raises:
        TypeError, ValueError: a shape or dtype disagrees, or ``fusion`` is unknown.

    Examples:
        >>> mim = MotionInteraction(32, nhead=4)
        >>> spatial, motion = torch.randn(2, 6, 3, 32), torch.randn(2, 6, 3, 32)  # (B, T, P, D)
        >>> mask = torch.rand(2, 6, 3) > 0.3
        >>> out = mim(spatial, motion, mask)
        >>> out.shape, bool(out[~mask].abs().sum() == 0)
        (torch.Size([2, 6, 3, 32]), True)
    """

    def __init__(
        self,
        d_model: int,
        nhead: int = 8,
        *,
        dropout: float = 0.1,
        fusion: Literal["attention", "concat"] = "attention",
        motion_skip: bool = False,
    ) -> None:
        super().__init__()
        check_choice(fusion, "fusion", ("attention", "concat"))
        self.d_model, self.fusion, self.motion_skip = d_model, fusion, motion_skip
        if fusion == "attention":
            self.attn: MaskedMultiheadAttention | None = MaskedMultiheadAttention(
                d_model, nhead, dropout=dropout
            )
            self.concat: nn.Linear | None = None
        else:
            check_positive(d_model, "d_model")
            self.attn, self.concat = None, nn.Linear(2 * d_model, d_model)
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(d_model)
        self.motion_proj = nn.Linear(d_model, d_model) if motion_skip else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Reset the attention (or concat projection), the norm and the motion skip."""
        for module in (self.attn, self.concat, self.norm, self.motion_proj):
            if module is not None:
                module.reset_parameters()

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, fusion={self.fusion!r}, motion_skip={self.motion_skip}"

    def forward(
        self,
        spatial: Tensor,
        motion: Tensor,
        mask: MaskOrRows | None = None,
        *,
        rows: ValidRows | None = None,
    ) -> Tensor:
        """Fuse motion into the spatial relation features; see the class docstring.

        ``mask`` may be its [`ValidRows`][dsgg_layers.rows.ValidRows]; ``rows=`` is deprecated.
        """
        mask, rows = split_mask(mask, rows)
        dims: dict[str, tuple[int, str]] = {}
        check_tensor(spatial, "spatial", ("...", "P", self.d_model), dims=dims, dtype="float")
        check_tensor(motion, "motion", ("...", "P", self.d_model), dims=dims, dtype="float")
        check_param_dtype(self.norm.weight, ("spatial", spatial), ("motion", motion))
        if mask is not None:
            check_tensor(mask, "mask", ("...", "P"), dims=dims, dtype="bool")
        skip = self.attn.skip_padding if self.attn is not None else True
        resolved = resolve_rows(skip, mask, spatial.shape[:-1], rows)
        if resolved is not None:  # every row-wise part on the existing pairs only
            s, m = resolved.gather(spatial), resolved.gather(motion)

            def attend_rows() -> Tensor:
                assert self.attn is not None and resolved is not None
                return self.attn.forward_rows(m, resolved, s, resolved)

            return resolved.scatter(self._fuse(s, m, attend_rows))
        if mask is not None:
            spatial = spatial.masked_fill(~mask.unsqueeze(-1), 0.0)  # padding never leaks
            motion = motion.masked_fill(~mask.unsqueeze(-1), 0.0)

        def attend() -> Tensor:
            assert self.attn is not None
            return self.attn(motion, spatial, spatial, query_mask=mask, key_mask=mask)[0]

        out = self._fuse(spatial, motion, attend)
        return out if mask is None else out.masked_fill(~mask.unsqueeze(-1), 0.0)

    def _fuse(self, spatial: Tensor, motion: Tensor, attend) -> Tensor:
        """Eq. 7-8 on rows or on the grid; ``attend()`` gives MIM's attention output."""
        if self.attn is not None:
            fused = attend()
        else:
            assert self.concat is not None  # set in __init__ for fusion="concat"
            fused = self.concat(torch.cat((spatial, motion), -1))
        joint = spatial + self.dropout(fused)
        if self.motion_proj is not None:
            joint = joint + self.motion_proj(motion)
        return self.norm(joint)
