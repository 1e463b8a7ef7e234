"""The spatial-temporal relation block: attention over the pairs of a frame, then along each track.

The block the field's networks share (STTran's "glocal" transformer, TR²'s relation feature
fusion in *Cross-Modality Time-Variant Relation Learning for Generating Dynamic Scene Graphs*,
ICRA 2023, Sec. III-B; the backbone of MoSA): a **spatial encoder** in which the pairs of
each frame attend to each other, then a **temporal encoder** in which each pair attends to itself
in the other frames of its track, with a temporal position embedding on queries and keys. On
pair tracks ``(B, T, P, D)`` both are reshapes of one batched call; no loop over videos, frames
or pairs.

The temporal attention spans the whole track by default. ``temporal_window=w`` gives STTran's
sliding windows instead (w = 2 in its code): the track is cut into every run of ``w``
consecutive frame slots, each window is encoded on its own (positions = offsets within the
window), and a frame's output is the mean of its outputs over the windows that contain it.
Windows are one batched call too (``unfold``, then a scatter-add of the ``w`` offsets).

**Not STTran's decoder.** The windows follow STTran's *idea*, not its exact computation. STTran's
public temporal decoder attends over *all* pairs of both frames of a window (one sequence a
window, not one a pair track), adds two *learned* position embeddings (one per frame of the
window) instead of sinusoidal offsets, keeps each frame's output from a single window
(``mode='latter'``) instead of averaging the windows, and has no norm after its feed-forward
network. Here every temporal sequence is one pair's track (the pair attends to itself in other
frames), as the TR² and MoSA papers describe their temporal stage.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dsgg_layers._checks import (
    check_choice,
    check_device,
    check_positive,
    check_tensor,
    values_readable,
)
from dsgg_layers.attention import TransformerEncoder, TransformerEncoderLayer
from dsgg_layers.positions import sinusoidal_positions
from dsgg_layers.rows import MaskOrRows, ValidRows, split_mask
from dsgg_layers.temporal import track_ranks

__all__ = ["SpatialTemporalEncoder"]


class SpatialTemporalEncoder(nn.Module):
    """Spatial encoder over the pairs of each frame, then temporal encoder along each pair track.

    ``x <- SpatialEncoder(x)`` over ``P`` in every frame, then ``x <- TemporalEncoder(x, pos)``
    over ``T`` for every pair track, ``pos`` sinusoidal frame-slot positions added to queries and
    keys (STTran; TR² Sec. III-B). With ``temporal_window=w`` the temporal encoder runs on
    STTran's sliding windows of ``w`` frame slots and averages (see the module docstring). Padded
    entries output 0 and never affect the others; a video's output does not depend on the rest of
    the batch.

    Args:
        d_model: width ``D``.
        nhead: attention heads.
        dim_feedforward: hidden width of the feed-forward networks.
        spatial_layers: layers of the spatial encoder (0: none).
        temporal_layers: layers of the temporal encoder (0: none).
        dropout: dropout of the transformer layers.
        temporal_window: ``None`` (the whole track) or STTran's window size ``w >= 1``.
        positions: the temporal positions: ``"slot"`` (default: the frame's slot in the video,
            [`sinusoidal_positions`][]), ``"rank"`` (the frame's rank
            within the pair's track, with tensor2tensor's frequencies: TR²'s public code; whole
            tracks only) or ``"frame"`` (the code's tensor2tensor layout indexed by the frame's
            slot, its absolute index in the video, instead of its rank; whole tracks only). A
            track without gaps that starts at the first frame gets the same positions from all
            three layouts' indices; ``"rank"`` and ``"frame"`` share the frequencies.
        temporal_ffn_norm: the temporal layers' norm after the feed-forward sub-layer (default).
            ``False``: none, as TR²'s public temporal layers (``TransformerEncoderLayer``'s
            ``ffn_norm``); the spatial layers keep theirs.
        norm_first: pre-norm layers.
        skip_padding: run the layers' projections and feed-forward networks on the valid pairs
            only (the default; see [`dsgg_layers.attention`][dsgg_layers.attention]). Padding then
            costs memory traffic, not matrix products; the outputs are the same up to float
            rounding.

    Shape:
        - x: ``(..., T, P, D)``
        - mask: ``(..., T, P)`` bool, ``True`` where the pair exists
        - output: ``(..., T, P, D)``

    Raises:
        TypeError, ValueError: a shape or dtype disagrees, or an option is invalid.

    Examples:
        >>> block = SpatialTemporalEncoder(64, nhead=4, dim_feedforward=128, temporal_layers=2)
        >>> x, mask = torch.randn(3, 10, 4, 64), torch.rand(3, 10, 4) > 0.3  # (B, T, P, D)
        >>> y = block(x, mask)
        >>> y.shape, bool(y[~mask].abs().sum() == 0)
        (torch.Size([3, 10, 4, 64]), True)
    """

    positions: Tensor

    def __init__(
        self,
        d_model: int,
        nhead: int = 8,
        dim_feedforward: int = 2048,
        *,
        spatial_layers: int = 1,
        temporal_layers: int = 3,
        dropout: float = 0.1,
        temporal_window: int | None = None,
        norm_first: bool = False,
        skip_padding: bool = True,
        positions: Literal["slot", "rank", "frame"] = "slot",
        temporal_ffn_norm: bool = True,
    ) -> None:
        super().__init__()
        check_choice(positions, "positions", ("slot", "rank", "frame"))
        if positions in ("rank", "frame") and temporal_window is not None:
            raise ValueError(
                f"positions: {positions!r} numbers a whole track; got "
                f"temporal_window={temporal_window}"
            )
        self.temporal_ffn_norm = bool(temporal_ffn_norm)
        self.positions = positions
        for value, name in (
            (spatial_layers, "spatial_layers"),
            (temporal_layers, "temporal_layers"),
        ):
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"{name}: expected an int >= 0, got {value!r}")
        if temporal_window is not None:
            check_positive(temporal_window, "temporal_window")
        self.d_model = d_model
        self.temporal_window = temporal_window

        def layer(ffn_norm: bool = True) -> TransformerEncoderLayer:
            return TransformerEncoderLayer(
                d_model,
                nhead,
                dim_feedforward,
                dropout,
                norm_first=norm_first,
                skip_padding=skip_padding,
                ffn_norm=ffn_norm,
            )

        self.spatial = TransformerEncoder(layer(), spatial_layers) if spatial_layers else None
        self.temporal = (
            TransformerEncoder(layer(self.temporal_ffn_norm), temporal_layers)
            if temporal_layers
            else None
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-initialise both encoders."""
        for module in (self.spatial, self.temporal):
            if module is not None:
                module.reset_parameters()

    def extra_repr(self) -> str:
        extra = f"d_model={self.d_model}, temporal_window={self.temporal_window}, " \
            f"positions={self.positions!r}"  # fmt: skip
        return extra + ("" if self.temporal_ffn_norm else ", temporal_ffn_norm=False")

    def forward(
        self,
        x: Tensor,
        mask: MaskOrRows,
        frame_mask: Tensor | None = None,
        *,
        rows: ValidRows | None = None,
    ) -> Tensor:
        """Encode the pair tracks: [`forward_spatial`][], then [`forward_temporal`][].

        ``mask`` may be its [`ValidRows`][dsgg_layers.rows.ValidRows] ``(..., T, P)``, built
        once for the batch (the temporal half uses their transpose); ``rows=`` is deprecated.
        """
        mask = _rows_or_mask(*split_mask(mask, rows))
        return self.forward_temporal(self.forward_spatial(x, mask), mask, frame_mask)

    def _check(self, x: Tensor, mask: Tensor) -> None:
        dims: dict[str, tuple[int, str]] = {}
        check_tensor(x, "x", ("...", "T", "P", self.d_model), dims=dims, dtype="float")
        check_tensor(mask, "mask", (*x.shape[:-1],), dims=dims, dtype="bool")

    def forward_spatial(
        self, x: Tensor, mask: MaskOrRows, *, rows: ValidRows | None = None
    ) -> Tensor:
        """The spatial encoder alone: attention over the pairs ``P`` of each frame.

        Blocks that work between the two halves (MoSA's motion interaction) call the halves
        separately.
        """
        mask, rows = split_mask(mask, rows)
        self._check(x, mask)
        if self.spatial is None:
            return x.masked_fill(~mask.unsqueeze(-1), 0.0)
        return self.spatial(x, _rows_or_mask(mask, rows))

    def forward_temporal(
        self,
        x: Tensor,
        mask: MaskOrRows,
        frame_mask: Tensor | None = None,
        *,
        rows: ValidRows | None = None,
    ) -> Tensor:
        """The temporal encoder alone: attention along each pair track (``T``).

        ``frame_mask (..., T)`` marks a video's real frame slots (a prefix); it matters only with
        ``temporal_window``, whose windows must not run into the padding. By default a video's
        frames run up to its last frame slot in which some pair exists. A pair outside it is an
        error (checked on the CPU; its output would be 0).
        """
        mask, rows = split_mask(mask, rows)
        self._check(x, mask)
        if frame_mask is not None:
            check_tensor(frame_mask, "frame_mask", (*mask.shape[:-1],), dtype="bool")
            check_device(frame_mask, "frame_mask", mask.device, "mask")
            if values_readable(mask) and bool((mask.any(-1) & ~frame_mask).any()):
                raise ValueError("frame_mask: a pair exists in a frame slot it marks as not real")
        if self.temporal is None:
            return x.masked_fill(~mask.unsqueeze(-1), 0.0)
        xt, mt = x.transpose(-3, -2), mask.transpose(-2, -1)  # (..., P, T, D): along each track
        T = xt.shape[-2]
        w = self.temporal_window
        if self.positions == "rank" or w is None or w >= T:  # whole tracks
            if self.positions == "rank":  # per pair: (..., P, T, D)
                index: Tensor | int = track_ranks(mask).transpose(-2, -1)
            else:  # the frame's slot; "frame" with tensor2tensor's frequencies
                index = T
            t2t = self.positions != "slot"
            pos = sinusoidal_positions(index, self.d_model, dtype=x.dtype, tensor2tensor=t2t)
            pos = pos.to(x.device)
            tracks = mt if rows is None else rows.transpose(-2, -1)
            return self.temporal(xt, tracks, pos=pos).transpose(-3, -2)
        real = mask.any(-1) if frame_mask is None else frame_mask  # (..., T)
        slots = torch.arange(1, T + 1, device=mask.device)
        length = torch.where(real, slots, 0).amax(-1)  # (...,) frames of each video
        return self._windowed(self.temporal, xt, mt, length, w).transpose(-3, -2)

    def _windowed(
        self, temporal: TransformerEncoder, xt: Tensor, mt: Tensor, length: Tensor, w: int
    ) -> Tensor:
        """STTran's sliding windows of ``w`` slots along ``T``, outputs averaged per frame.

        The windows of a video are those that start at ``0 .. max(length - w, 0)``: none runs
        into the padding (a video shorter than ``w`` has one window, its whole track).
        """
        T = xt.shape[-2]
        W = T - w + 1
        windows = xt.unfold(-2, w, 1).movedim(-1, -2)  # (..., P, W, w, D)
        wmask = mt.unfold(-1, w, 1)  # (..., P, W, w)
        last_start = (length - w).clamp(min=0).unsqueeze(-1)  # (..., 1)
        valid = torch.arange(W, device=xt.device) <= last_start  # (..., W) windows of the video
        wmask = wmask & valid.unsqueeze(-2).unsqueeze(-1)
        pos = sinusoidal_positions(w, self.d_model, dtype=xt.dtype).to(xt.device)
        y = temporal(windows, wmask, pos=pos)  # entries outside the windows come out 0
        valid_f = valid.to(xt.dtype)
        out = torch.zeros_like(xt)
        count = torch.zeros_like(valid_f[..., :1]).expand(*valid.shape[:-1], T)
        for k in range(w):  # the w offsets of a window (a constant), not the frames
            out = out + F.pad(y[..., k, :], (0, 0, k, T - W - k))
            count = count + F.pad(valid_f, (k, T - W - k))
        return out / count.clamp(min=1.0).unsqueeze(-2).unsqueeze(-1)


def _rows_or_mask(mask: Tensor | None, rows: ValidRows | None) -> MaskOrRows:
    """What to pass down: the rows when the caller has them, else the mask tensor."""
    if rows is not None:
        return rows
    if mask is None:
        raise ValueError("mask: expected the pair mask, got None")
    return mask
