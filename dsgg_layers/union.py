"""UASAN blocks: visual refiner, semantic-aware context encoder, union-relation decoder.

Implements Sec. 3.2 of *Open-Vocabulary Video Scene Graph Generation via Union-aware Semantic
Alignment* (UASAN), Eq. 4-8 and 11, on the library's attention body
([`MaskedMultiheadAttention`][],
[`TransformerEncoderLayer`][]):

- [`VisualRefiner`][] (Eq. 4): ``L`` learnable concept tokens, self-attention among them
  (``V = Attn(Q, Q, Q)``), then cross-attention to a trajectory's (or union region's) features
  (``F_v = Attn(V, F, F)``): ``(..., L, d)`` "visual-aware" tokens; trained by distillation to a
  frozen teacher ([`feature_distillation_loss`][dsgg_layers.losses.feature_distillation_loss]).
- [`SemanticAwareContextEncoder`][] (Eq. 5-6): the token sequence ``[F_S; F_O; U; F_mot]`` of
  each subject-object pair, a learnable relation token ``f_r`` added to the queries and keys only,
  attention, MLP, norm.
- [`UnionRelationDecoder`][] (Eq. 7-8): ``t_r = MHA(f_r, F_enc, F_enc)``,
  ``F_dec = Norm(t_r + MLP(t_r))``.
- [`UnionRelationPredictor`][] (Eq. 11): ``R = Norm(MLP(F_dec + F_enc[U] + U + F_mot))``.
- [`UnionAwareRelationHead`][]: the three together as the paper prints them (Eq. 5-11), with
  the L_fg feature and Table 4's ablation rows (``stage``).

UASAN's public code computes its relation head differently from the equations; the blocks offer
the code's form too, named: ``SemanticAwareContextEncoder(positions="slot", num_layers=3)`` (a
learned position for every token slot, at every layer), [`RelationQueryDecoder`][] (the code's
DETR-style decoder, a sibling of [`UnionRelationDecoder`][]), ``VisualRefiner(residual=True)``
and, in [`dsgg_layers.union_head`][dsgg_layers.union_head], the code's four-branch per-token scoring
([`UnionRelationHead`][dsgg_layers.union_head.UnionRelationHead]).

Padding is per pair: a ``mask`` ``(...)`` marks the valid pairs (trajectories); every output row
of a padded pair is 0 and nothing a padded pair holds reaches a valid one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor, nn

from dsgg_layers._checks import (
    check_choice,
    check_group,
    check_positive,
    check_tensor,
)
from dsgg_layers._ops import mlp, reset_children, zero_padding
from dsgg_layers.attention import (
    AttentionBlock,
    MaskedMultiheadAttention,
    TransformerDecoder,
    TransformerDecoderLayer,
    TransformerEncoder,
    TransformerEncoderLayer,
)
from dsgg_layers.rows import MaskOrRows, ValidRows, rowwise, split_mask

__all__ = [
    "ContextEncoding",
    "RelationFeatures",
    "RelationQueryDecoder",
    "SemanticAwareContextEncoder",
    "UnionAwareRelationHead",
    "UnionRelationDecoder",
    "UnionRelationPredictor",
    "VisualRefiner",
]


def _token(d_model: int) -> nn.Parameter:
    return nn.Parameter(torch.empty(d_model))


def _init_token(p: nn.Parameter, std: float = 0.02) -> None:
    nn.init.trunc_normal_(p, std=std, a=-2 * std, b=2 * std)


def _check_pair_mask(mask: Tensor | None, lead: Sequence[int]) -> None:
    if mask is not None:
        check_tensor(mask, "mask", tuple(lead), dtype="bool")


class VisualRefiner(nn.Module):
    """Concept tokens that read a trajectory's features (UASAN, Sec. 3.2, Eq. 4).

    ``V = Attn(Q, Q, Q)`` over the ``L`` learnable tokens ``Q`` (it does not depend on the input,
    so it is computed once a call and broadcast to every trajectory), then
    ``F_v = Attn(V, F, F)`` with the trajectory's features ``F`` (its frames', a ViT's patch
    tokens) as keys and values. As printed, neither attention has a residual or a norm; with
    ``residual=False`` (default) neither has one here.

    **One input token.** Without a residual, a trajectory given as one vector (``S = 1``, what
    UASAN's public code feeds its BLIP-2 Q-Former) makes every output token the same vector
    (softmax over one key is 1: each token gets ``W_o W_v F``), so the ``L`` tokens carry
    nothing more than one. That input is **refused** (``ValueError``) without a residual.
    ``residual=True`` is the Q-Former's sub-layer form, ``V = Norm(Q + Attn(Q, Q, Q))``,
    ``F_v = Norm(V + Attn(V, F, F))`` (post-norm): each token keeps its own concept next to what
    it read, so the tokens differ for any ``S``, one included. (The Q-Former also has
    feed-forward layers and 12 layers; this is its attention pattern, not the Q-Former.)

    Args:
        d_model: width ``d`` of the features and tokens.
        num_tokens: ``L`` (UASAN distils into a BLIP-2 Q-Former's 32 query tokens: 32).
        nhead: attention heads.
        dropout: attention dropout.
        residual: Eq. 4 as printed (``False``) or the Q-Former's residual-and-norm form.

    Shape:
        - features: ``(..., S, d)``; mask: ``(..., S)`` bool (``True`` = valid feature)
        - output: ``(..., L, d)``; 0 for a trajectory with no valid feature

    Raises:
        TypeError, ValueError: a size is not positive, the inputs' shapes or dtypes are wrong,
            or ``S = 1`` without ``residual``.

    Examples:
        >>> refiner = VisualRefiner(16, num_tokens=4, nhead=2)
        >>> refiner(torch.randn(3, 10, 16)).shape                   # 3 trajectories, 10 frames
        torch.Size([3, 4, 16])
        >>> qformer_like = VisualRefiner(16, num_tokens=4, nhead=2, residual=True)
        >>> out = qformer_like(torch.randn(3, 1, 16))              # one vector a trajectory
        >>> bool((out[:, 0] - out[:, 1]).abs().max() > 0)          # the tokens differ
        True
    """

    def __init__(
        self,
        d_model: int,
        num_tokens: int = 32,
        nhead: int = 8,
        *,
        dropout: float = 0.0,
        residual: bool = False,
    ) -> None:
        super().__init__()
        check_positive(d_model, "d_model")
        check_positive(num_tokens, "num_tokens")
        self.d_model, self.num_tokens, self.residual = d_model, num_tokens, bool(residual)
        self.tokens = nn.Parameter(torch.empty(num_tokens, d_model))

        def block() -> AttentionBlock:  # a bare attention, or Norm(q + Attn(q, ...))
            norm = nn.LayerNorm(d_model) if self.residual else None
            attn = MaskedMultiheadAttention(d_model, nhead, dropout=dropout)
            return AttentionBlock(attn, norm1=norm, attn_residual=self.residual)

        self.concepts, self.read = block(), block()  # V = Attn(Q, Q, Q); F_v = Attn(V, F, F)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Tokens: truncated normal (std 0.02); attentions and norms: their own initialisation."""
        _init_token(self.tokens)
        reset_children(self)

    def no_weight_decay(self) -> set[str]:
        """The learnable tokens (no weight decay, as ViT's class token)."""
        return {"tokens"}

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, num_tokens={self.num_tokens}, residual={self.residual}"

    def forward(self, features: Tensor, mask: MaskOrRows | None = None) -> Tensor:
        """``(..., S, d)`` features -> ``(..., L, d)`` visual-aware tokens. With ``mask`` a
        [`ValidRows`][dsgg_layers.rows.ValidRows], keys and values are projected on the valid
        features only."""
        tensor_mask, _ = split_mask(mask)  # checked here; the attention takes either form
        check_tensor(features, "features", ("...", "S", self.d_model), dtype="float")
        if tensor_mask is not None:
            check_tensor(tensor_mask, "mask", tuple(features.shape[:-1]), dtype="bool")
        if features.shape[-2] == 1 and not self.residual:
            raise ValueError(
                f"features: one input token (shape {tuple(features.shape)}) makes every output "
                "token identical under Eq. 4 as printed; pass residual=True (the Q-Former's "
                "form) to read one vector a trajectory"
            )
        concepts = self.concepts(self.tokens.to(features.dtype))  # (L, d), for every trajectory
        query = concepts.expand(*features.shape[:-2], *concepts.shape)
        out = self.read(query, features, key_mask=mask)
        return zero_padding(out, None if tensor_mask is None else tensor_mask.any(-1))


class ContextEncoding(NamedTuple):
    """What [`SemanticAwareContextEncoder`][] returns.

    Examples:
        >>> enc = SemanticAwareContextEncoder(8, nhead=2, dim_feedforward=16)
        >>> x = torch.randn(5, 2, 8)                  # 5 pairs, 2 tokens a part
        >>> out = enc(x, x, x, x[:, :1])
        >>> out.encoded.shape, out.union.shape
        (torch.Size([5, 7, 8]), torch.Size([5, 2, 8]))
    """

    encoded: Tensor
    """``(..., S, d)``: the encoded sequence, ``S = L_S + L_O + L_U + L_mot``."""
    union: Tensor
    """``(..., L_U, d)``: its union-region part, ``F_enc[U]`` of Eq. 11."""


class SemanticAwareContextEncoder(nn.Module):
    """Attention within each pair's "sentence" ``[F_S; F_O; U; F_mot]`` (UASAN, Eq. 5-6).

    A learnable relation token ``f_r`` is added to the **queries and keys only** (a positional
    term: the values are the tokens themselves), "to reduce the influence of the order of the
    components". Eq. 6 as printed, ``Norm(MLP(Attn(F + f_r, F + f_r, F)))``, has no residual
    connection; ``residual=True`` (default) is the standard post-norm transformer layer
    (``Norm(x + Attn)``, then ``Norm(x + MLP)``), whose output keeps each token's own content
    next to its context: the subject, object and union parts are read back separately (Eq. 11
    reads ``F_enc[U]``), which a residual-free layer blurs into one average. ``residual=False``
    is Eq. 6 literally.

    **The public code's form** (``positions="slot"``, ``num_layers=3``): instead of one relation
    token shared by all tokens, UASAN's code holds a learned table with **one row per token
    slot** of the sentence (``num_slots`` rows, ``nn.Embedding(98, 256)`` for its
    ``32 + 32 + 32 + 1 + 1`` tokens), added to the queries and keys of every layer of a
    3-layer post-norm encoder. Slot ``k`` is the ``k``-th token of ``[F_S; F_O; U; F_mot]``
    here (the code orders its sentence ``[U; F_S; F_O; F_mot]``: a checkpoint's rows are
    permuted on loading, see
    [`uasan_head_state_dict`][dsgg_layers.union_head.uasan_head_state_dict]; attention does not
    depend on the order otherwise). The table is initialised as the code's ``nn.Embedding``,
    standard normal.

    Args:
        d_model: width ``d``.
        nhead: attention heads.
        dim_feedforward: hidden width of the MLP ``phi_enc``.
        dropout: dropout in the attention and the MLP.
        residual: the standard layer (default) or Eq. 6 as printed (one layer only).
        num_layers: encoder layers (the paper: 1; the code: 3).
        positions: ``"token"`` (the paper's one relation token) or ``"slot"`` (the code's table
            of one position per token slot).
        num_slots: rows of the slot table (``positions="slot"``): the longest sentence.

    Shape:
        - subject, object, union, motion: ``(..., L_S, d)``, ``(..., L_O, d)``, ``(..., L_U, d)``,
          ``(..., L_mot, d)`` (same leading dims ``(...)``: one row a pair)
        - mask: ``(...)`` bool, ``True`` = valid pair (default: all)
        - output: [`ContextEncoding`][]; rows of padded pairs are 0

    Raises:
        TypeError, ValueError: the parts' widths, leading dims or dtypes disagree (the message
            names the part), an option is invalid, or a sentence is longer than ``num_slots``.

    Examples:
        >>> enc = SemanticAwareContextEncoder(16, nhead=4, dim_feedforward=32)
        >>> parts = [torch.randn(2, 6, n, 16) for n in (4, 4, 4, 2)]   # (B, P, tokens, d)
        >>> enc(*parts, mask=torch.ones(2, 6, dtype=torch.bool)).encoded.shape
        torch.Size([2, 6, 14, 16])
        >>> code = SemanticAwareContextEncoder(16, 4, 16, num_layers=3, positions="slot",
        ...                                    num_slots=14)
        >>> code(*parts).encoded.shape, tuple(code.token_positions(14).shape)
        (torch.Size([2, 6, 14, 16]), (14, 16))
    """

    def __init__(
        self,
        d_model: int,
        nhead: int = 8,
        dim_feedforward: int = 2048,
        dropout: float = 0.0,
        *,
        residual: bool = True,
        num_layers: int = 1,
        positions: str = "token",
        num_slots: int | None = None,
    ) -> None:
        super().__init__()
        check_positive(d_model, "d_model")
        check_positive(num_layers, "num_layers")
        check_choice(positions, "positions", ("token", "slot"))
        if not residual and num_layers != 1:
            raise ValueError(
                f"num_layers: Eq. 6 as printed (residual=False) is one layer, got {num_layers}"
            )
        if positions == "slot":
            if num_slots is None:
                raise ValueError("num_slots: expected the slot table's size with positions='slot'")
            check_positive(num_slots, "num_slots")
        elif num_slots is not None:
            raise ValueError(f"num_slots: only with positions='slot', got {num_slots}")
        self.d_model, self.residual, self.num_layers = d_model, residual, num_layers
        self.positions, self.num_slots = positions, num_slots
        if positions == "slot":
            self.slot_positions = nn.Parameter(torch.empty(int(num_slots or 0), d_model))
        else:
            self.relation_token = _token(d_model)
        if residual:
            layer = TransformerEncoderLayer(d_model, nhead, dim_feedforward, dropout)
            self.encoder = TransformerEncoder(layer, num_layers)
        else:  # Eq. 5-6 as printed: Norm(MLP(Attn(x))), no residual
            self.layer = AttentionBlock(
                MaskedMultiheadAttention(d_model, nhead, dropout=dropout),
                mlp(d_model, dim_feedforward, d_model), norm2=nn.LayerNorm(d_model),
                attn_residual=False, mlp_residual=False,
            )  # fmt: skip
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Relation token: truncated normal (std 0.02); slot table: standard normal (the code's
        ``nn.Embedding``); the layers: their own resets."""
        if self.positions == "slot":
            nn.init.normal_(self.slot_positions)
        else:
            _init_token(self.relation_token)
        reset_children(self)

    def no_weight_decay(self) -> set[str]:
        """The relation token, or the slot table."""
        return {"slot_positions" if self.positions == "slot" else "relation_token"}

    def extra_repr(self) -> str:
        extra = f"d_model={self.d_model}, residual={self.residual}, positions={self.positions!r}"
        if self.num_layers != 1:
            extra += f", num_layers={self.num_layers}"
        return extra + (f", num_slots={self.num_slots}" if self.positions == "slot" else "")

    def token_positions(self, length: int) -> Tensor:
        """What is added to the queries and keys of a sentence of ``length`` tokens: the
        relation token ``(d,)``, or the first ``length`` rows of the slot table ``(length, d)``
        (the memory positions of [`RelationQueryDecoder`][] in the code's form)."""
        if self.positions == "token":
            return self.relation_token
        if length > int(self.num_slots or 0):
            raise ValueError(
                f"num_slots: a sentence of {length} tokens needs {length} slot positions, the "
                f"table has {self.num_slots}"
            )
        return self.slot_positions[:length]

    def forward(
        self,
        subject: Tensor,
        object: Tensor,
        union: Tensor,
        motion: Tensor,
        *,
        mask: MaskOrRows | None = None,
    ) -> ContextEncoding:
        """Encode each pair's sentence; see the class docstring. With ``mask`` a
        [`ValidRows`][dsgg_layers.rows.ValidRows], the existing pairs only are encoded."""
        mask, rows = split_mask(mask)
        parts = {"subject": subject, "object": object, "union": union, "motion": motion}
        for name, x in parts.items():
            check_tensor(x, name, ("...", "L", self.d_model), dtype="float")
            if x.shape[:-2] != subject.shape[:-2]:
                raise ValueError(
                    f"{name}: expected the leading dims {tuple(subject.shape[:-2])} of subject, "
                    f"got {tuple(x.shape[:-2])}"
                )
        lead = subject.shape[:-2]
        _check_pair_mask(mask, lead)
        if rows is not None:
            return rowwise(self._encode, rows, subject, object, union, motion)
        return self._encode(subject, object, union, motion, mask)

    def _encode(
        self, subject: Tensor, object: Tensor, union: Tensor, motion: Tensor,
        mask: Tensor | None = None,
    ) -> ContextEncoding:  # fmt: skip
        lead = subject.shape[:-2]
        x = torch.cat((subject, object, union, motion), -2)
        token_mask = None if mask is None else mask[..., None].expand(*lead, x.shape[-2])
        pos = self.token_positions(x.shape[-2]).to(x.dtype)
        if self.residual:
            out = self.encoder(x, token_mask, pos=pos)
        else:
            out = self.layer(x, mask=token_mask, pos=pos)
        out = zero_padding(out, mask)
        start = subject.shape[-2] + object.shape[-2]
        return ContextEncoding(out, out[..., start : start + union.shape[-2], :])


class UnionRelationDecoder(nn.Module):
    """One relation token reads the encoded sentence (UASAN, Eq. 7-8).

    ``t_r = MHA(f_r, F_enc, F_enc)``, ``F_dec = Norm(t_r + MLP(t_r))``. ``f_r`` is the decoder's
    own learnable token unless a ``query`` is given (e.g. the encoder's ``relation_token``: the
    paper writes the same symbol for both).

    Args:
        d_model: width ``d``.
        nhead: attention heads.
        dim_feedforward: hidden width of ``phi_dec``.
        dropout: attention dropout.

    Shape:
        - encoded: ``(..., S, d)``; mask: ``(..., S)`` bool (``True`` = valid token)
        - query: ``(d,)`` or ``(..., d)`` (optional)
        - output: ``(..., d)``; 0 for a row without a valid token

    Raises:
        TypeError, ValueError: shapes or dtypes are wrong (the message names the argument).

    Examples:
        >>> dec = UnionRelationDecoder(16, nhead=4, dim_feedforward=32)
        >>> dec(torch.randn(2, 6, 14, 16)).shape
        torch.Size([2, 6, 16])
    """

    def __init__(
        self, d_model: int, nhead: int = 8, dim_feedforward: int = 2048, dropout: float = 0.0
    ) -> None:
        super().__init__()
        check_positive(d_model, "d_model")
        self.d_model = d_model
        self.relation_token = _token(d_model)
        self.layer = AttentionBlock(  # t_r = MHA(f_r, F_enc, F_enc); Norm(t_r + MLP(t_r))
            MaskedMultiheadAttention(d_model, nhead, dropout=dropout),
            mlp(d_model, dim_feedforward, d_model),
            norm2=nn.LayerNorm(d_model),
            attn_residual=False,
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Relation token: truncated normal (std 0.02); the layers: their own resets."""
        _init_token(self.relation_token)
        reset_children(self)

    def no_weight_decay(self) -> set[str]:
        """The relation token."""
        return {"relation_token"}

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}"

    def forward(
        self, encoded: Tensor, mask: MaskOrRows | None = None, *, query: Tensor | None = None
    ) -> Tensor:
        """``(..., S, d)`` -> ``(..., d)`` union-aware relation tokens. With ``mask`` a
        [`ValidRows`][dsgg_layers.rows.ValidRows], keys and values are projected on the valid
        tokens only."""
        tensor_mask, _ = split_mask(mask)  # checked here; the attention takes either form
        check_tensor(encoded, "encoded", ("...", "S", self.d_model), dtype="float")
        if tensor_mask is not None:
            check_tensor(tensor_mask, "mask", tuple(encoded.shape[:-1]), dtype="bool")
        q = self.relation_token if query is None else query
        check_tensor(q, "query", ("...", self.d_model), dtype="float")
        lead = encoded.shape[:-2]
        try:
            q = q.to(encoded.dtype).expand(*lead, self.d_model)
        except RuntimeError:
            raise ValueError(
                f"query: expected (d,) or a shape that broadcasts to {(*lead, self.d_model)}, "
                f"got {tuple(q.shape)}"
            ) from None
        out = self.layer(q.unsqueeze(-2), encoded, key_mask=mask).squeeze(-2)
        return zero_padding(out, None if tensor_mask is None else tensor_mask.any(-1))


class RelationQueryDecoder(nn.Module):
    """A DETR-style decoder: one query a pair reads the encoded sentence (UASAN's public code).

    The code's sibling of [`UnionRelationDecoder`][] (Eq. 7-8, one cross-attention). Each
    pair's query starts with **zero content** and a learned **query position** added at every
    layer; each of ``num_layers`` post-norm layers runs self-attention (queries and keys get the
    position), cross-attention to the sentence (keys = memory + ``memory_pos``, values = the
    memory), then the feed-forward network, each with residual and norm
    ([`TransformerDecoderLayer`][]). The code's ``memory_pos`` is the
    encoder's slot table ([`SemanticAwareContextEncoder.token_positions`][]).

    **Its "per-group query" is one vector.** The code builds the query position as
    ``nn.Embedding(1, d)`` expanded to the six motion groups and indexed by the pair's group:
    every group gets the same vector. ``num_groups=1`` (default) is that; ``num_groups=G`` gives
    each group its own query position (what the indexing suggests was meant), selected by
    ``group``.

    Args:
        d_model: width ``d``.
        nhead: attention heads.
        dim_feedforward: hidden width of the feed-forward networks (the code: ``d``).
        dropout: dropout of the layers.
        num_layers: decoder layers (the code: 3).
        num_groups: rows of the query-position table (the code: 1, shared by all groups).

    Shape:
        - encoded: ``(..., S, d)``; mask: ``(..., S)`` bool (``True`` = valid token)
        - memory_pos: broadcastable to ``(..., S, d)`` (optional)
        - group: ``(...)`` long in ``[0, num_groups)`` (needed when ``num_groups > 1``)
        - output: ``(..., d)``; 0 for a row without a valid token

    Raises:
        TypeError, ValueError: shapes, dtypes or group ids are wrong (the message names the
            argument).

    Examples:
        >>> dec = RelationQueryDecoder(16, nhead=4, dim_feedforward=16, num_layers=2)
        >>> dec(torch.randn(2, 6, 14, 16), memory_pos=torch.randn(14, 16)).shape
        torch.Size([2, 6, 16])
        >>> per_group = RelationQueryDecoder(16, 4, 16, num_groups=6)
        >>> per_group(torch.randn(5, 14, 16), group=torch.tensor([0, 1, 2, 5, 5])).shape
        torch.Size([5, 16])
    """

    def __init__(
        self,
        d_model: int,
        nhead: int = 8,
        dim_feedforward: int = 2048,
        dropout: float = 0.0,
        *,
        num_layers: int = 3,
        num_groups: int = 1,
    ) -> None:
        super().__init__()
        check_positive(d_model, "d_model")
        check_positive(num_groups, "num_groups")
        self.d_model, self.num_groups = d_model, num_groups
        self.query_pos = nn.Parameter(torch.empty(num_groups, d_model))
        layer = TransformerDecoderLayer(d_model, nhead, dim_feedforward, dropout)
        self.decoder = TransformerDecoder(layer, num_layers)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Query positions: standard normal (the code's ``nn.Embedding``); layers: their own."""
        nn.init.normal_(self.query_pos)
        reset_children(self)

    def no_weight_decay(self) -> set[str]:
        """The query positions."""
        return {"query_pos"}

    def extra_repr(self) -> str:
        return (
            f"d_model={self.d_model}, num_layers={len(self.decoder.layers)}, "
            f"num_groups={self.num_groups}"
        )

    def forward(
        self,
        encoded: Tensor,
        mask: MaskOrRows | None = None,
        *,
        memory_pos: Tensor | None = None,
        group: Tensor | None = None,
    ) -> Tensor:
        """``(..., S, d)`` -> ``(..., d)`` decoded relation queries. With ``mask`` a
        [`ValidRows`][dsgg_layers.rows.ValidRows], the layers run on the valid memory rows
        (and on one query a pair, whose output is 0 where the pair has no valid token)."""
        mask, rows = split_mask(mask)
        check_tensor(encoded, "encoded", ("...", "S", self.d_model), dtype="float")
        lead = tuple(encoded.shape[:-2])
        if mask is not None:
            check_tensor(mask, "mask", tuple(encoded.shape[:-1]), dtype="bool")
        check_group(group, lead, self.num_groups, "query positions")
        if group is None:
            qpos = self.query_pos[0].expand(*lead, 1, self.d_model)
        else:
            qpos = self.query_pos[group].unsqueeze(-2)
        qpos = qpos.to(encoded.dtype)
        query = torch.zeros_like(qpos)
        if rows is not None:  # every query is a row: known without a sync
            queries = ValidRows.full(query.shape[:-1], query.device)
            out = self.decoder(query, encoded, queries, rows, query_pos=qpos, memory_pos=memory_pos)
            return zero_padding(out.squeeze(-2), rows.mask.any(-1))
        query_mask = None if mask is None else mask.any(-1, keepdim=True)
        out = self.decoder(query, encoded, query_mask, mask, query_pos=qpos, memory_pos=memory_pos)
        return out.squeeze(-2)


class UnionRelationPredictor(nn.Module):
    """The relation feature of a pair (UASAN, Eq. 11): ``Norm(MLP(F_dec + F_enc[U] + U + F_mot))``.

    The four terms do not have the same number of tokens (``F_dec`` one, ``F_enc[U]`` and ``U``
    ``L_U``, ``F_mot`` ``L_mot``), so the sum cannot be taken as printed: each multi-token term is
    **mean-pooled over its tokens** first (the paper's text: "aggregate the multiple union region
    features, motion information, and union-aware tokens"), giving one ``(..., d)`` vector; a
    term with no tokens (``L = 0``: no motion, no union token) adds 0.

    Args:
        d_model: width ``d``.
        hidden: hidden width of ``phi_pre`` (default ``d``).
        out_dim: width of ``R`` (default ``d``; the prompt embeddings' width when they differ).

    Shape:
        - decoded: ``(..., d)``; encoded_union, union: ``(..., L_U, d)``; motion ``(..., L_mot, d)``
        - mask: ``(...)`` bool (optional)
        - output: ``(..., out_dim)``; 0 at padded pairs

    Raises:
        TypeError, ValueError: shapes or dtypes are wrong (the message names the argument).

    Examples:
        >>> pred = UnionRelationPredictor(16)
        >>> x = torch.randn(6, 4, 16)
        >>> pred(torch.randn(6, 16), x, x, torch.randn(6, 2, 16)).shape
        torch.Size([6, 16])
    """

    def __init__(self, d_model: int, hidden: int | None = None, out_dim: int | None = None):
        super().__init__()
        check_positive(d_model, "d_model")
        self.d_model, self.out_dim = d_model, out_dim or d_model
        self.mlp = mlp(d_model, hidden or d_model, self.out_dim)
        self.norm = nn.LayerNorm(self.out_dim)

    def reset_parameters(self) -> None:
        """PyTorch's defaults."""
        reset_children(self)

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, out_dim={self.out_dim}"

    def forward(
        self,
        decoded: Tensor,
        encoded_union: Tensor,
        union: Tensor,
        motion: Tensor,
        mask: MaskOrRows | None = None,
    ) -> Tensor:
        """The pairs' relation features ``r_{s,o}`` (on the existing pairs only when ``mask``
        is a [`ValidRows`][dsgg_layers.rows.ValidRows])."""
        check_tensor(decoded, "decoded", ("...", self.d_model), dtype="float")
        lead = tuple(decoded.shape[:-1])
        for name, x in (("encoded_union", encoded_union), ("union", union), ("motion", motion)):
            check_tensor(x, name, (*lead, "L", self.d_model), dtype="float")
        _check_pair_mask(split_mask(mask)[0], lead)
        # garbage in a padded pair never reaches the MLP (rows: never read)
        return rowwise(self._predict, mask, decoded, encoded_union, union, motion)

    def _predict(self, decoded: Tensor, encoded_union: Tensor, union: Tensor, motion: Tensor):
        # a token set may be empty (no motion tokens, no union token): it then adds 0, not NaN
        means = [x.sum(-2) / max(x.shape[-2], 1) for x in (encoded_union, union, motion)]
        return self.norm(self.mlp(decoded + means[0] + means[1] + means[2]))


class RelationFeatures(NamedTuple):
    """What [`UnionAwareRelationHead`][] returns.

    Examples:
        >>> head = UnionAwareRelationHead(8, nhead=2, stage="union")
        >>> out = head(*(torch.randn(3, 2, 8) for _ in range(4)))
        >>> out.relation.shape, out.fine_grained is None      # L_fg only with stage="full"
        (torch.Size([3, 8]), True)
    """

    relation: Tensor
    """``(..., out_dim)``: ``r_{s,o}``, scored against the predicate prompts (L_union)."""
    fine_grained: Tensor | None
    """``(..., out_dim)``: the subject-object feature of L_fg (``stage="full"``), else ``None``."""


_STAGES = ("pair", "union", "encoder", "full")


class UnionAwareRelationHead(nn.Module):
    """UASAN's relation head as the paper prints it (Sec. 3.3, Eq. 5-11 and L_fg of Eq. 12),
    with the rows of its Table 4 as ``stage``.

    - ``"pair"`` (Table 4, a): an MLP on the mean subject and object tokens, ``[s; o]``.
    - ``"union"`` (b): an MLP on ``[s; o; u; m]``, the union and motion tokens' means added.
    - ``"encoder"`` (c): the [`SemanticAwareContextEncoder`][] over ``[F_S; F_O; U; F_mot]``,
      then a linear map of the mean encoded sentence (``readout="mean"``, the row as printed);
      ``readout="parts"`` reads the encoded sentence as ``"union"`` reads its input instead
      (an MLP on the four parts' means, side by side): the encoder without the change of head.
    - ``"full"``: the encoder, [`UnionRelationDecoder`][] (its query the encoder's relation
      token: the paper writes one symbol for both) and [`UnionRelationPredictor`][] (Eq. 11);
      also the fine-grained feature ``MLP([s; o])`` that L_fg scores against its own prompts.

    The public code computes its head otherwise: [`UnionRelationHead`][dsgg_layers.union_head.
    UnionRelationHead] (layers, positions and four branches scored token by token).

    Args:
        d_model: width ``d`` of the tokens.
        nhead: attention heads.
        dim_feedforward: hidden width of the encoder's and decoder's MLPs (default ``2 d``).
        out_dim: width of the features (the prompt embeddings'; default ``d``).
        stage: ``"pair"``, ``"union"``, ``"encoder"`` or ``"full"``.
        dropout: attention dropout.
        readout: ``stage="encoder"``'s head: ``"mean"`` (default) or ``"parts"`` (above).

    Shape:
        - subject, object, union, motion: ``(..., L_i, d)``, the same leading dims
        - mask: ``(...)`` bool, the valid pairs (or its [`ValidRows`][dsgg_layers.rows.ValidRows]:
          then nothing runs on the padded pairs)
        - output: [`RelationFeatures`][], each ``(..., out_dim)``, 0 at padded pairs

    Raises:
        TypeError, ValueError: an unknown ``stage``, or shapes or dtypes are wrong (named).

    Examples:
        >>> head = UnionAwareRelationHead(16, nhead=4, out_dim=8)
        >>> s, o, u, m = (torch.randn(5, k, 16) for k in (4, 4, 4, 2))   # 5 pairs
        >>> out = head(s, o, u, m, mask=torch.tensor([True, True, False, True, True]))
        >>> out.relation.shape, out.fine_grained.shape, bool((out.relation[2] == 0).all())
        (torch.Size([5, 8]), torch.Size([5, 8]), True)
    """

    def __init__(
        self,
        d_model: int,
        nhead: int = 8,
        dim_feedforward: int | None = None,
        out_dim: int | None = None,
        *,
        stage: str = "full",
        dropout: float = 0.0,
        readout: str = "mean",
    ) -> None:
        super().__init__()
        check_choice(stage, "stage", _STAGES)
        check_choice(readout, "readout", ("mean", "parts"))
        check_positive(d_model, "d_model")
        d, E = d_model, out_dim or d_model
        check_positive(E, "out_dim")
        ff = dim_feedforward or 2 * d
        self.d_model, self.out_dim, self.stage, self.readout = d, E, stage, readout
        if stage in ("pair", "union"):
            self.relation_head = mlp((2 if stage == "pair" else 4) * d, d, E)
        else:
            self.encoder = SemanticAwareContextEncoder(d, nhead, ff, dropout)
            if stage == "encoder":
                self.relation_head = nn.Linear(d, E) if readout == "mean" else mlp(4 * d, d, E)
            else:
                self.decoder = UnionRelationDecoder(d, nhead, ff, dropout)
                self.predictor = UnionRelationPredictor(d, out_dim=E)
                self.fine_grained_head = mlp(2 * d, d, E)

    def reset_parameters(self) -> None:
        """Each part's own reset."""
        reset_children(self)

    def extra_repr(self) -> str:
        extra = f", readout={self.readout!r}" if self.stage == "encoder" else ""
        return f"d_model={self.d_model}, out_dim={self.out_dim}, stage={self.stage!r}{extra}"

    def forward(
        self,
        subject: Tensor,
        object: Tensor,
        union: Tensor,
        motion: Tensor,
        mask: MaskOrRows | None = None,
    ) -> RelationFeatures:
        """The pairs' relation features; see the class docstring."""
        parts = {"subject": subject, "object": object, "union": union, "motion": motion}
        for name, x in parts.items():
            check_tensor(x, name, (*subject.shape[:-2], "L", self.d_model), dtype="float")
        _check_pair_mask(split_mask(mask)[0], subject.shape[:-2])
        if self.stage in ("pair", "union"):
            used = (subject, object) if self.stage == "pair" else tuple(parts.values())
            return RelationFeatures(rowwise(self._pooled_head, mask, *used), None)
        enc = self.encoder(subject, object, union, motion, mask=mask)
        if self.stage == "encoder":
            if self.readout == "mean":
                return RelationFeatures(rowwise(self._pooled_head, mask, enc.encoded), None)
            sizes = [x.shape[-2] for x in parts.values()]  # the parts read apart, as "union"
            read = lambda e: self._pooled_head(*e.split(sizes, -2))  # noqa: E731
            return RelationFeatures(rowwise(read, mask, enc.encoded), None)
        token = self.encoder.relation_token
        decoded = rowwise(lambda e: self.decoder(e, query=token), mask, enc.encoded)
        relation = self.predictor(decoded, enc.union, union, motion, mask)
        fine = rowwise(lambda s, o: self.fine_grained_head(torch.cat((s.mean(-2), o.mean(-2)), -1)),
                       mask, subject, object)  # fmt: skip
        return RelationFeatures(relation, fine)

    def _pooled_head(self, *tokens: Tensor) -> Tensor:
        """``relation_head`` on the token-mean of each input, concatenated."""
        return self.relation_head(torch.cat([x.mean(-2) for x in tokens], -1))
