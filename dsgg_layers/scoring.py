"""RS-Net's relation scoring: context tokens, a meaningful-relation score, context fusion.

*RS-Net: Context-Aware Relation Scoring for Dynamic Scene Graph Generation* (arXiv:2511.08651,
Sec. 3.3-3.4) learns, from all detected pairs, whether a pair holds a meaningful relation, and
wraps that score around an existing DSGG model without changing its architecture:

- [`SpatialContextEncoder`][] (Eq. 2): per frame, a learned context token ``c_t`` in front of
  the frame's pair features, self-attention among them; gives the frame context ``ĉ_t`` and the
  enriched pair features ``x̂``.
- [`TemporalContextEncoder`][] (Eq. 3-4): a learned video token ``c_tmp`` in front of the
  frame contexts, self-attention over the whole video with a learned position embedding on
  queries and keys only; gives the video context ``ĉ_tmp``. ``mode="mean"`` is the paper's
  "mean token" ablation (Table 4).
- [`RelationScoringDecoder`][] (Eq. 5): a 3-layer ReLU MLP on ``[x̂, ĉ_tmp]`` to two logits;
  the softmax's first entry ``p0`` is the relation score.
- [`RelationScorer`][]: the three composed, on pair tracks (or on flat rows).
- [`ContextFusion`][] (Sec. 3.4): the baseline's predicate feature ``r`` concatenated with
  ``ĉ_tmp``, then one linear head per predicate group.
- [`triplet_score`][] (Eq. 6): ``s_sub * s_obj * s_rel * p0``.

RS-Net has no public code; every choice the paper leaves open is an argument whose default is
documented where it is declared. Its losses are
[`dsgg_layers.losses.softmax_focal_loss`][dsgg_layers.losses.softmax_focal_loss] (Eq. 9) and
[`dsgg_layers.losses.multilabel_margin_loss`][dsgg_layers.losses.multilabel_margin_loss] (Eq. 8);
its training pairs come from [`dsgg_layers.sampling`][dsgg_layers.sampling] (Sec. 4.2).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Literal, NamedTuple

import torch
from torch import Tensor, nn

from dsgg_layers._checks import (
    check_broadcastable,
    check_choice,
    check_param_dtype,
    check_positive,
    check_tensor,
)
from dsgg_layers.attention import TransformerEncoder, TransformerEncoderLayer
from dsgg_layers.layout import TrackIndex, flat_to_tracks, tracks_to_flat
from dsgg_layers.pooling import masked_pool
from dsgg_layers.positions import LearnedPositions
from dsgg_layers.rows import MaskOrRows, ValidRows, resolve_rows, split_mask
from dsgg_layers.tokens import LearnableTokens

__all__ = [
    "ContextFusion",
    "RelationScorer",
    "RelationScores",
    "RelationScoringDecoder",
    "SpatialContextEncoder",
    "TemporalContextEncoder",
    "triplet_score",
]

TemporalMode = Literal["token", "mean"]


def _encoder(
    d_model: int, nhead: int, num_layers: int, dim_feedforward: int, dropout: float
) -> TransformerEncoder:
    layer = TransformerEncoderLayer(d_model, nhead, dim_feedforward, dropout)
    return TransformerEncoder(layer, num_layers)


def _with_token(
    encoder: TransformerEncoder,
    token: LearnableTokens,
    x: Tensor,
    rows: ValidRows,
    pos: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """A context token in front of each group of ``x (..., N, D)``, encoded on the valid rows.

    The token is made valid in every group, so its rows are known without a sync
    ([`ValidRows.prepend`][dsgg_layers.rows.ValidRows.prepend]); a group without a valid entry
    then has a token that attends only to itself, whose output is set to 0 as on the grid (where
    that token is padding). Every other output equals the grid's.
    """
    z = torch.cat((token.tokens.to(x.dtype).expand(*x.shape[:-2], 1, -1), x), -2)
    z = encoder(z, rows.prepend(1), pos=pos)
    context = z[..., 0, :].masked_fill(~rows.mask.any(-1, keepdim=True), 0.0)
    return context, z[..., 1:, :]


class SpatialContextEncoder(nn.Module):
    """A learned context token per frame, encoded with the frame's pairs (RS-Net, Eq. 2).

    ``Z_t = [c_t, x_t^1, ..., x_t^K(t)]`` goes through ``num_layers`` transformer encoder
    layers over the pairs of the frame (masked: a frame attends to its own pairs only). The
    first output token is the frame context ``ĉ_t``; the others are the pair features ``x̂``
    enriched with the frame's context. The token of a frame without pairs is padding: its
    ``ĉ_t`` is 0 and it is not a frame of the video (``frame_mask``).

    Args:
        d_model: width ``d_m`` (the paper does not give it; the 32 M parameters it adds to
            STTran fit ``d_m`` of about 700 with these layers, narrower than STTran's 1936).
        nhead: attention heads (paper: 4).
        num_layers: encoder layers (paper: 2).
        dim_feedforward: hidden width of the feed-forward networks (not given; default 2048,
            STTran's and `torch.nn.TransformerEncoderLayer`'s).
        dropout: dropout of the layers.

    Shape:
        - x: ``(..., T, P, d_m)`` pair features (already projected to ``d_m``)
        - mask: ``(..., T, P)`` bool, ``True`` where the pair exists
        - output: ``(frame_context (..., T, d_m), pairs (..., T, P, d_m))``, 0 at padding

    Raises:
        TypeError, ValueError: a shape or dtype disagrees, or an option is invalid.

    Examples:
        >>> enc = SpatialContextEncoder(32, nhead=4, dim_feedforward=64)
        >>> x, mask = torch.randn(2, 5, 3, 32), torch.rand(2, 5, 3) > 0.3   # (B, T, P, D)
        >>> ctx, pairs = enc(x, mask)
        >>> ctx.shape, pairs.shape, bool(pairs[~mask].abs().sum() == 0)
        (torch.Size([2, 5, 32]), torch.Size([2, 5, 3, 32]), True)
    """

    def __init__(
        self,
        d_model: int,
        nhead: int = 4,
        num_layers: int = 2,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        check_positive(d_model, "d_model")
        self.d_model = d_model
        self.token = LearnableTokens(1, d_model, dim=-1)
        self.encoder = _encoder(d_model, nhead, num_layers, dim_feedforward, dropout)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-initialise the token and the encoder."""
        self.token.reset_parameters()
        self.encoder.reset_parameters()

    def no_weight_decay(self) -> set[str]:
        """The context token."""
        return {"token.tokens"}

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, num_layers={len(self.encoder.layers)}"

    def forward(self, x: Tensor, mask: MaskOrRows) -> tuple[Tensor, Tensor]:
        """Returns ``(frame_context, pairs)``; the frames are ``mask.any(-1)``."""
        mask, rows = split_mask(mask)
        dims: dict[str, tuple[int, str]] = {}
        check_tensor(x, "x", ("...", "T", "P", self.d_model), dims=dims, dtype="float")
        check_tensor(mask, "mask", tuple(x.shape[:-1]), dims=dims, dtype="bool")
        if rows is not None:  # the token's rows are known without a sync: see _with_token
            return _with_token(self.encoder, self.token, x, rows)
        z, zmask = self.token(x, mask)  # (..., T, 1 + P, D): the token first in every frame
        z = self.encoder(z, zmask)
        return z[..., 0, :], z[..., 1:, :]


class TemporalContextEncoder(nn.Module):
    """One context vector for the whole video, attended from its frames' context tokens
    (RS-Net, Eq. 3-4).

    ``mode="token"``: ``Z = [c_tmp, ĉ_1, ..., ĉ_T]`` with a learned token ``c_tmp``, encoded by
    ``num_layers`` transformer layers over the whole video, a learned position embedding
    ``E_pos`` (one row per slot: the token, then frame slot ``t``) added to the queries and keys
    only, never to the values (Eq. 4), in every layer (Eq. 4 writes one attention; the library's
    layers add ``pos`` to the queries and keys of each). The first output token is the video
    context ``ĉ_tmp``.
    ``mode="mean"``: ``ĉ_mean``, the mean of the video's frame contexts, and no layers (the
    paper's "mean token" ablation, Table 4). Positions are frame *slots* (the order of the
    sampled frames), not frame times, as Eq. 4's ``(T + 1) x d_m`` table implies.

    Args:
        d_model: width ``d_m``.
        nhead: attention heads (paper: 4).
        num_layers: encoder layers (paper: 4).
        dim_feedforward: hidden width of the feed-forward networks (default 2048, as the spatial
            encoder).
        dropout: dropout of the layers.
        max_frames: the most frames a video may have (rows of ``E_pos`` less one). The paper
            sizes ``E_pos`` by ``T``; a learned table needs a bound: default 512 (Action Genome
            annotates at most a few hundred frames of a video).
        mode: ``"token"`` (the paper's method) or ``"mean"``.

    Shape:
        - frame_context: ``(..., T, d_m)``
        - frame_mask: ``(..., T)`` bool, ``True`` for the video's frames
        - output: ``(video_context (..., d_m), frames (..., T, d_m))``: 0 for a video without
          frames; ``frames`` are the encoded frame contexts (the input with ``mode="mean"``)

    Raises:
        TypeError, ValueError: a shape or dtype disagrees, ``T > max_frames``, or an option is
            invalid.

    Examples:
        >>> enc = TemporalContextEncoder(32, dim_feedforward=64)
        >>> ctx, frames = torch.randn(2, 7, 32), torch.arange(7) < torch.tensor([[7], [4]])
        >>> video, _ = enc(ctx, frames)
        >>> video.shape
        torch.Size([2, 32])
    """

    def __init__(
        self,
        d_model: int,
        nhead: int = 4,
        num_layers: int = 4,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        *,
        max_frames: int = 512,
        mode: TemporalMode = "token",
    ) -> None:
        super().__init__()
        check_positive(d_model, "d_model")
        check_positive(max_frames, "max_frames")
        check_choice(mode, "mode", ("token", "mean"))
        self.d_model, self.max_frames, self.mode = d_model, max_frames, mode
        self.token: LearnableTokens | None = None
        self.positions: LearnedPositions | None = None
        self.encoder: TransformerEncoder | None = None
        if mode == "token":
            self.token = LearnableTokens(1, d_model, dim=-1)
            self.positions = LearnedPositions(max_frames + 1, d_model)
            self.encoder = _encoder(d_model, nhead, num_layers, dim_feedforward, dropout)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-initialise the token, the position table and the encoder."""
        for module in (self.token, self.positions, self.encoder):
            if module is not None:
                module.reset_parameters()

    def no_weight_decay(self) -> set[str]:
        """The video token and the position table."""
        return {"token.tokens", "positions.weight"} if self.mode == "token" else set()

    def extra_repr(self) -> str:
        layers = 0 if self.encoder is None else len(self.encoder.layers)
        return f"d_model={self.d_model}, mode={self.mode!r}, num_layers={layers}, " \
            f"max_frames={self.max_frames}"  # fmt: skip

    def forward(self, frame_context: Tensor, frame_mask: MaskOrRows) -> tuple[Tensor, Tensor]:
        """Returns ``(video_context, frames)``."""
        frame_mask, rows = split_mask(frame_mask, name="frame_mask")
        dims: dict[str, tuple[int, str]] = {}
        check_tensor(frame_context, "frame_context", ("...", "T", self.d_model), dims=dims,
                     dtype="float")  # fmt: skip
        check_tensor(frame_mask, "frame_mask", tuple(frame_context.shape[:-1]), dims=dims,
                     dtype="bool")  # fmt: skip
        T = frame_context.shape[-2]
        if T > self.max_frames:
            raise ValueError(
                f"frame_context: expected at most max_frames={self.max_frames} frames, got "
                f"{T} (shape {tuple(frame_context.shape)}); build the encoder with a larger "
                "max_frames"
            )
        if self.mode == "mean":
            frames = frame_context.masked_fill(~frame_mask.unsqueeze(-1), 0.0)
            return masked_pool(frames, frame_mask, dim=-1), frames
        token, positions, encoder = self.token, self.positions, self.encoder
        if token is None or positions is None or encoder is None:  # pragma: no cover
            raise RuntimeError("mode='token' without its token, positions or encoder")
        check_param_dtype(token.tokens, ("frame_context", frame_context))
        pos = positions(T + 1).to(frame_context.dtype)  # queries and keys only (the layers' pos)
        if rows is not None:
            return _with_token(encoder, token, frame_context, rows, pos)
        z, zmask = token(frame_context, frame_mask)  # (..., 1 + T, D)
        z = encoder(z, zmask, pos=pos)
        return z[..., 0, :], z[..., 1:, :]


class RelationScoringDecoder(nn.Module):
    """An MLP that scores how likely a pair is related at all (RS-Net's relation scoring,
    Eq. 5): ``[x̂, ĉ_tmp]`` -> two logits.

    ``num_layers`` linear layers with ReLU between them (paper: 3); the softmax of the output is
    ``p = [p0, p1]``, ``p0`` the probability that the pair holds a meaningful relation.

    Args:
        in_features: width of the input (``2 d_m`` with the video context, ``d_m`` without).
        hidden_features: width of the hidden layers (not given; default ``in_features // 2``,
            narrowing towards the two outputs).
        num_layers: linear layers (``>= 1``).

    Shape:
        - x: ``(..., in_features)``
        - output: ``(..., 2)`` logits

    Raises:
        TypeError, ValueError: a shape or dtype disagrees, or an option is invalid.

    Examples:
        >>> dec = RelationScoringDecoder(64)
        >>> dec(torch.randn(5, 64)).softmax(-1)[:, 0].shape     # p0 of five pairs
        torch.Size([5])
    """

    def __init__(
        self, in_features: int, hidden_features: int | None = None, num_layers: int = 3
    ) -> None:
        super().__init__()
        check_positive(in_features, "in_features")
        check_positive(num_layers, "num_layers")
        hidden = max(in_features // 2, 1) if hidden_features is None else hidden_features
        check_positive(hidden, "hidden_features")
        self.in_features, self.hidden_features = in_features, hidden
        widths = [in_features] + [hidden] * (num_layers - 1) + [2]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(itertools.pairwise(widths)):
            if i:
                layers.append(nn.ReLU())
            layers.append(nn.Linear(a, b))
        self.mlp = nn.Sequential(*layers)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-initialise the linear layers (PyTorch's default initialisation)."""
        for m in self.mlp:
            if isinstance(m, nn.Linear):
                m.reset_parameters()

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, hidden_features={self.hidden_features}"

    def forward(self, x: Tensor) -> Tensor:
        """The two logits; ``logits.softmax(-1)[..., 0]`` is ``p0``."""
        check_tensor(x, "x", ("...", self.in_features), dtype="float")
        check_param_dtype(self.mlp[0].weight, ("x", x))
        return self.mlp(x)


class RelationScores(NamedTuple):
    """What [`RelationScorer`][] returns.

    Attributes:
        logits: ``(..., T, P, 2)`` the decoder's logits (0 at padded pairs).
        score: ``(..., T, P)`` the relation score ``p0`` (0 at padded pairs).
        frame_context: ``(..., T, d_m)`` the frame contexts ``ĉ_t`` (0 for frames without
            pairs).
        video_context: ``(..., d_m)`` the video context ``ĉ_tmp``, or ``None`` without a
            temporal encoder.
        pairs: ``(..., T, P, d_m)`` the pair features enriched by the spatial encoder ``x̂``.

    Examples:
        >>> scorer = RelationScorer(8, 8, nhead=2, dim_feedforward=16)
        >>> out = scorer(torch.randn(1, 3, 2, 8), torch.ones(1, 3, 2, dtype=torch.bool))
        >>> out.logits.shape, out.score.shape, out.frame_context.shape
        (torch.Size([1, 3, 2, 2]), torch.Size([1, 3, 2]), torch.Size([1, 3, 8]))
    """

    logits: Tensor
    score: Tensor
    frame_context: Tensor
    video_context: Tensor | None
    pairs: Tensor


class RelationScorer(nn.Module):
    """RS-Net: the spatial and temporal context encoders and the scoring decoder (Sec. 3.3).

    ``x`` (the baseline's pre-transformer pair representation, Eq. 1: subject, object and union
    features with the projected class distributions) is projected to ``d_m``, encoded per frame
    with a context token ([`SpatialContextEncoder`][]), the frame contexts encoded over the
    video ([`TemporalContextEncoder`][]), and every pair scored from ``[x̂, ĉ_tmp]``
    ([`RelationScoringDecoder`][]). A video's scores do not depend on the other videos of
    the batch; padded pairs score 0 and never affect the others.

    Args:
        in_features: width of the input pair representation.
        d_model: ``d_m`` (not given in the paper; see [`SpatialContextEncoder`][]).
        nhead: attention heads of both encoders (paper: 4).
        spatial_layers: layers of the spatial encoder (paper: 2).
        temporal_layers: layers of the temporal encoder (paper: 4).
        dim_feedforward: hidden width of the encoders' feed-forward networks (default 2048).
        dropout: dropout of the encoders.
        temporal: ``"token"`` (the paper), ``"mean"`` (mean of the frame contexts) or ``None``
            (no temporal encoder: the decoder sees ``x̂`` alone), the rows of Table 4.
        max_frames: see [`TemporalContextEncoder`][].
        hidden_features: width of the decoder's hidden layers (see
            [`RelationScoringDecoder`][]).
        decoder_layers: linear layers of the decoder (paper: 3).

    Shape:
        - x: ``(..., T, P, in_features)``
        - mask: ``(..., T, P)`` bool, ``True`` where the pair exists
        - output: [`RelationScores`][]

    Raises:
        TypeError, ValueError: a shape or dtype disagrees, or an option is invalid.

    Examples:
        >>> scorer = RelationScorer(48, 32, dim_feedforward=64)
        >>> x, mask = torch.randn(2, 6, 4, 48), torch.rand(2, 6, 4) > 0.3
        >>> out = scorer(x, mask)
        >>> out.score.shape, out.video_context.shape, bool(out.score[~mask].abs().sum() == 0)
        (torch.Size([2, 6, 4]), torch.Size([2, 32]), True)
    """

    def __init__(
        self,
        in_features: int,
        d_model: int,
        *,
        nhead: int = 4,
        spatial_layers: int = 2,
        temporal_layers: int = 4,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        temporal: TemporalMode | None = "token",
        max_frames: int = 512,
        hidden_features: int | None = None,
        decoder_layers: int = 3,
    ) -> None:
        super().__init__()
        check_positive(in_features, "in_features")
        check_positive(d_model, "d_model")
        check_choice(temporal, "temporal", ("token", "mean", None))
        self.in_features, self.d_model, self.temporal_mode = in_features, d_model, temporal
        self.input_proj = nn.Linear(in_features, d_model)
        self.spatial = SpatialContextEncoder(
            d_model, nhead, spatial_layers, dim_feedforward, dropout
        )
        self.temporal = (
            None
            if temporal is None
            else TemporalContextEncoder(d_model, nhead, temporal_layers, dim_feedforward,
                                        dropout, max_frames=max_frames, mode=temporal)
        )  # fmt: skip
        width = d_model if temporal is None else 2 * d_model
        self.decoder = RelationScoringDecoder(width, hidden_features, decoder_layers)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-initialise every part."""
        self.input_proj.reset_parameters()
        for module in (self.spatial, self.temporal, self.decoder):
            if module is not None:
                module.reset_parameters()

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, d_model={self.d_model}, " \
            f"temporal={self.temporal_mode!r}"  # fmt: skip

    @property
    def context_features(self) -> int:
        """Width of `RelationScores.video_context` (0 without a temporal encoder)."""
        return 0 if self.temporal is None else self.d_model

    def forward(
        self, x: Tensor, mask: MaskOrRows, frame_mask: MaskOrRows | None = None
    ) -> RelationScores:
        """Score every pair of the pair tracks ``x``.

        ``frame_mask`` (default ``mask.any(-1)``) is the frames' mask for the temporal encoder;
        give both masks as [`ValidRows`][dsgg_layers.rows.ValidRows] (built with the batch) and
        no step syncs the host.
        """
        mask, rows = split_mask(mask)
        frame_mask, frame_rows = split_mask(frame_mask, name="frame_mask")
        dims: dict[str, tuple[int, str]] = {}
        check_tensor(x, "x", ("...", "T", "P", self.in_features), dims=dims, dtype="float")
        check_tensor(mask, "mask", tuple(x.shape[:-1]), dims=dims, dtype="bool")
        check_param_dtype(self.input_proj.weight, ("x", x))
        if frame_mask is not None:
            check_tensor(frame_mask, "frame_mask", tuple(x.shape[:-2]), dims=dims, dtype="bool")
        resolved = resolve_rows(True, mask, x.shape[:-1], rows)
        if resolved is None:
            h = self.input_proj(x.masked_fill(~mask.unsqueeze(-1), 0.0))
        else:  # the projection on the existing pairs only
            h = resolved.scatter(self.input_proj(resolved.gather(x)))
        frame_context, pairs = self.spatial(h, mask if resolved is None else resolved)
        video_context = None
        if self.temporal is not None:
            frames = mask.any(-1) if frame_mask is None else frame_mask
            video_context, _ = self.temporal(frame_context, frames if frame_rows is None
                                             else frame_rows)  # fmt: skip
        if resolved is not None:
            features = resolved.gather(pairs)
            if video_context is not None:
                features = torch.cat((features, resolved.gather_outer(video_context)), -1)
            logits = resolved.scatter(self.decoder(features))
        else:
            features = pairs
            if video_context is not None:
                ctx = video_context.unsqueeze(-2).unsqueeze(-2).expand_as(pairs)
                features = torch.cat((pairs, ctx), -1)
            logits = self.decoder(features).masked_fill(~mask.unsqueeze(-1), 0.0)
        wide = torch.promote_types(logits.dtype, torch.float32)  # half logits: softmax in fp32
        score = logits.softmax(-1, dtype=wide)[..., 0].to(logits.dtype).masked_fill(~mask, 0.0)
        return RelationScores(logits, score, frame_context, video_context, pairs)

    def forward_flat(self, x: Tensor, index: TrackIndex) -> tuple[Tensor, Tensor]:
        """Score flat rows (STTran's layout): ``x (N, in_features)`` described by ``index``
        ([`build_track_index`][dsgg_layers.layout.build_track_index]); returns
        ``(logits (N, 2), score (N,))`` in the rows' order.

        The temporal positions are the index's frame slots: a frame without any row gets no
        slot unless the index was built with ``frames=`` (all frames of the video), and the later
        frames then take earlier positions.
        """
        grid, mask = flat_to_tracks(x, index)
        out = self.forward(grid, mask)
        return tracks_to_flat(out.logits, index), tracks_to_flat(out.score, index)


class ContextFusion(nn.Module):
    """The predicate heads on a pair's feature joined with the video's context (RS-Net's
    context fusion, Sec. 3.4): ``[r, ĉ_tmp]`` -> one linear head per predicate group.

    Replaces the baseline's predicate heads: each pair's post-transformer predicate feature
    ``r`` is concatenated with its video's context ``ĉ_tmp`` and classified by one linear
    layer per group (Action Genome: attention 3, spatial 6, contacting 17). With
    ``fuse=False`` the heads see ``r`` alone (Table 4's "no context fusion"; the baseline's
    heads).

    Args:
        in_features: width of ``r``.
        context_features: width of ``ĉ_tmp`` ([`RelationScorer.context_features`][]).
        group_sizes: classes of each predicate group, in output order.
        fuse: concatenate the context (``False``: the heads ignore it).

    Shape:
        - r: ``(..., T, P, in_features)``
        - context: ``(..., context_features)`` (one per video), or ``None`` when not fused
        - mask: ``(..., T, P)`` bool (optional)
        - output: ``(..., T, P, sum(group_sizes))`` logits, the groups side by side (0 at
          padded pairs)

    Raises:
        TypeError, ValueError: a shape or dtype disagrees, or an option is invalid.

    Examples:
        >>> fusion = ContextFusion(32, 16)
        >>> r, ctx = torch.randn(2, 5, 3, 32), torch.randn(2, 16)
        >>> fusion(r, ctx).shape                      # 3 + 6 + 17 Action Genome predicates
        torch.Size([2, 5, 3, 26])
    """

    def __init__(
        self,
        in_features: int,
        context_features: int,
        group_sizes: Sequence[int] = (3, 6, 17),
        *,
        fuse: bool = True,
    ) -> None:
        super().__init__()
        check_positive(in_features, "in_features")
        check_positive(context_features, "context_features", allow_zero=not fuse)
        if not group_sizes:
            raise ValueError("group_sizes: expected at least one group, got none")
        for size in group_sizes:
            check_positive(size, "group_sizes")
        self.in_features, self.context_features = in_features, context_features
        self.group_sizes, self.fuse = tuple(group_sizes), bool(fuse)
        width = in_features + (context_features if fuse else 0)
        self.heads = nn.ModuleList(nn.Linear(width, size) for size in self.group_sizes)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-initialise the heads."""
        for head in self.heads:
            head.reset_parameters()

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, context_features={self.context_features}, " \
            f"group_sizes={self.group_sizes}, fuse={self.fuse}"  # fmt: skip

    def forward(
        self, r: Tensor, context: Tensor | None = None, mask: MaskOrRows | None = None
    ) -> Tensor:
        """The logits of every group, concatenated (on the valid rows when a mask is given)."""
        mask, rows = split_mask(mask)
        dims: dict[str, tuple[int, str]] = {}
        check_tensor(r, "r", ("...", "T", "P", self.in_features), dims=dims, dtype="float")
        check_param_dtype(self.heads[0].weight, ("r", r))
        if mask is not None:
            check_tensor(mask, "mask", tuple(r.shape[:-1]), dims=dims, dtype="bool")
        if self.fuse:
            if context is None:
                raise ValueError("context: expected the video context (fuse=True), got None")
            check_tensor(context, "context", (*r.shape[:-3], self.context_features), dims=dims,
                         dtype="float")  # fmt: skip
            context = context.to(r.dtype)
        resolved = resolve_rows(True, mask, r.shape[:-1], rows)
        if resolved is not None:  # the heads on the existing pairs only
            h = resolved.gather(r)
            if context is not None and self.fuse:
                h = torch.cat((h, resolved.gather_outer(context)), -1)
            return resolved.scatter(torch.cat([head(h) for head in self.heads], -1))
        if mask is not None:
            r = r.masked_fill(~mask.unsqueeze(-1), 0.0)
        if self.fuse and context is not None:
            ctx = context.unsqueeze(-2).unsqueeze(-2).expand(*r.shape[:-1], -1)
            r = torch.cat((r, ctx), -1)
        out = torch.cat([head(r) for head in self.heads], -1)
        return out if mask is None else out.masked_fill(~mask.unsqueeze(-1), 0.0)

    def split(self, logits: Tensor) -> tuple[Tensor, ...]:
        """The logits of each group, in ``group_sizes`` order."""
        return logits.split(list(self.group_sizes), -1)


def triplet_score(
    predicate_scores: Tensor,
    relation_score: Tensor,
    subject_scores: Tensor | None = None,
    object_scores: Tensor | None = None,
) -> Tensor:
    """RS-Net's triplet score (Eq. 6): ``s_sub * s_obj * s_rel * p0``.

    The Action Genome evaluator
    ([`ActionGenomeEvaluator`][dsgg_layers.metrics.action_genome.ActionGenomeEvaluator]), like the
    public one, multiplies the subject and object detection scores in itself: give it
    ``triplet_score(predicate_scores, p0)`` as its ``predicate_scores`` and the detection scores
    as usual. Pass ``subject_scores``/``object_scores`` here for the full product.

    Args:
        predicate_scores: ``s_rel``, one score per predicate.
        relation_score: ``p0`` of each pair (`RelationScores.score`).
        subject_scores: detection confidence of each pair's subject (optional).
        object_scores: detection confidence of each pair's object (optional).

    Shape:
        - predicate_scores: ``(..., C)``
        - relation_score, subject_scores, object_scores: ``(...)``
        - output: ``(..., C)``

    Raises:
        TypeError, ValueError: a shape or dtype disagrees.

    Examples:
        >>> triplet_score(torch.tensor([[0.5, 1.0]]), torch.tensor([0.8]), torch.tensor([1.0]),
        ...               torch.tensor([0.5]))
        tensor([[0.2000, 0.4000]])
    """
    dims: dict[str, tuple[int, str]] = {}
    check_tensor(predicate_scores, "predicate_scores", ("...", "C"), dims=dims, dtype="float")
    lead = tuple(predicate_scores.shape[:-1])
    out = predicate_scores
    for value, name in ((relation_score, "relation_score"), (subject_scores, "subject_scores"),
                        (object_scores, "object_scores")):  # fmt: skip
        if value is None:
            continue
        check_tensor(value, name, None, dims=dims, dtype="float")
        check_broadcastable(value, name, lead)
        out = out * value.unsqueeze(-1)
    return out
