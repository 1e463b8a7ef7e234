"""UASAN blocks: visual refiner, semantic-aware context encoder, union-relation decoder.

Implements Sec. 3.2 of *Open-Vocabulary Video Scene Graph Generation via Union-aware Semantic
Alignment* (UASAN), Eq. 4-8 and 11, on the library's attention body
(:class:`~dsgg_layers.attention.MaskedMultiheadAttention`,
:class:`~dsgg_layers.attention.TransformerEncoderLayer`):

- :class:`VisualRefiner` (Eq. 4): ``L`` learnable concept tokens, self-attention among them
  (``V = Attn(Q, Q, Q)``), then cross-attention to a trajectory's (or union region's) features
  (``F_v = Attn(V, F, F)``): ``(..., L, d)`` "visual-aware" tokens; trained by distillation to a
  frozen teacher (:func:`~dsgg_layers.losses.feature_distillation_loss`).
- :class:`SemanticAwareContextEncoder` (Eq. 5-6): the token sequence ``[F_S; F_O; U; F_mot]`` of
  each subject-object pair, a learnable relation token ``f_r`` added to the queries and keys only,
  attention, MLP, norm.
- :class:`UnionRelationDecoder` (Eq. 7-8): ``t_r = MHA(f_r, F_enc, F_enc)``,
  ``F_dec = Norm(t_r + MLP(t_r))``.
- :class:`UnionRelationPredictor` (Eq. 11): ``R = Norm(MLP(F_dec + F_enc[U] + U + F_mot))``.

Padding is per pair: a ``mask`` ``(...)`` marks the valid pairs (trajectories); every output row
of a padded pair is 0 and nothing a padded pair holds reaches a valid one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor, nn

from dsgg_layers._checks import check_positive, check_tensor
from dsgg_layers.attention import (
    MaskedMultiheadAttention,
    TransformerEncoderLayer,
    _zero_padding,
)

__all__ = [
    "ContextEncoding",
    "SemanticAwareContextEncoder",
    "UnionRelationDecoder",
    "UnionRelationPredictor",
    "VisualRefiner",
]


def _token(d_model: int) -> nn.Parameter:
    return nn.Parameter(torch.empty(d_model))


def _init_token(p: nn.Parameter, std: float = 0.02) -> None:
    nn.init.trunc_normal_(p, std=std, a=-2 * std, b=2 * std)


def _reset_children(module: nn.Module) -> None:
    """Each child's own ``reset_parameters`` (an attention's Xavier init, PyTorch's defaults
    for linear maps and norms), descending only into children without one (``nn.Sequential``):
    a child's reset is never undone by resetting what is inside it."""
    for child in module.children():
        if hasattr(child, "reset_parameters"):
            child.reset_parameters()
        else:
            _reset_children(child)


def _mlp(d_model: int, hidden: int, out: int | None = None) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_model, hidden), nn.ReLU(), nn.Linear(hidden, out or d_model))


def _check_pair_mask(mask: Tensor | None, lead: Sequence[int]) -> None:
    if mask is not None:
        check_tensor(mask, "mask", tuple(lead), dtype="bool")


class VisualRefiner(nn.Module):
    """Concept tokens that read a trajectory's features (UASAN, Sec. 3.2, Eq. 4).

    ``V = Attn(Q, Q, Q)`` over the ``L`` learnable tokens ``Q`` (it does not depend on the input,
    so it is computed once a call and broadcast to every trajectory), then
    ``F_v = Attn(V, F, F)`` with the trajectory's features ``F`` (its frames', a ViT's patch
    tokens, or one vector, ``S = 1``) as keys and values. As printed, neither attention has a
    residual or a norm; neither has one here.

    Args:
        d_model: width ``d`` of the features and tokens.
        num_tokens: ``L`` (UASAN distils into a BLIP-2 Q-Former's 32 query tokens: 32).
        nhead: attention heads.
        dropout: attention dropout.

    Shape:
        - features: ``(..., S, d)``; mask: ``(..., S)`` bool (``True`` = valid feature)
        - output: ``(..., L, d)``; 0 for a trajectory with no valid feature

    Raises:
        TypeError, ValueError: a size is not positive, or the inputs' shapes or dtypes are wrong.

    Examples:
        >>> refiner = VisualRefiner(16, num_tokens=4, nhead=2)
        >>> refiner(torch.randn(3, 10, 16)).shape                   # 3 trajectories, 10 frames
        torch.Size([3, 4, 16])
    """

    def __init__(
        self, d_model: int, num_tokens: int = 32, nhead: int = 8, *, dropout: float = 0.0
    ) -> None:
        super().__init__()
        check_positive(d_model, "d_model")
        check_positive(num_tokens, "num_tokens")
        self.d_model, self.num_tokens = d_model, num_tokens
        self.tokens = nn.Parameter(torch.empty(num_tokens, d_model))
        self.self_attn = MaskedMultiheadAttention(d_model, nhead, dropout=dropout)
        self.cross_attn = MaskedMultiheadAttention(d_model, nhead, dropout=dropout)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Tokens: truncated normal (std 0.02); attentions: their own initialisation."""
        _init_token(self.tokens)
        _reset_children(self)

    def no_weight_decay(self) -> set[str]:
        """The learnable tokens (no weight decay, as ViT's class token)."""
        return {"tokens"}

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, num_tokens={self.num_tokens}"

    def forward(self, features: Tensor, mask: Tensor | None = None) -> Tensor:
        """``(..., S, d)`` features -> ``(..., L, d)`` visual-aware tokens."""
        check_tensor(features, "features", ("...", "S", self.d_model), dtype="float")
        if mask is not None:
            check_tensor(mask, "mask", tuple(features.shape[:-1]), dtype="bool")
        tokens = self.tokens.to(features.dtype)
        concepts, _ = self.self_attn(tokens)  # (L, d), shared by every trajectory
        query = concepts.expand(*features.shape[:-2], *concepts.shape)
        out, _ = self.cross_attn(query, features, key_mask=mask)
        return _zero_padding(out, None if mask is None else mask.any(-1))


class ContextEncoding(NamedTuple):
    """What :class:`SemanticAwareContextEncoder` returns.

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

    Args:
        d_model: width ``d``.
        nhead: attention heads.
        dim_feedforward: hidden width of the MLP ``phi_enc``.
        dropout: dropout in the attention and the MLP.
        residual: the standard layer (default) or Eq. 6 as printed.

    Shape:
        - subject, object, union, motion: ``(..., L_S, d)``, ``(..., L_O, d)``, ``(..., L_U, d)``,
          ``(..., L_mot, d)`` (same leading dims ``(...)``: one row a pair)
        - mask: ``(...)`` bool, ``True`` = valid pair (default: all)
        - output: :class:`ContextEncoding`; rows of padded pairs are 0

    Raises:
        TypeError, ValueError: the parts' widths, leading dims or dtypes disagree (the message
            names the part).

    Examples:
        >>> enc = SemanticAwareContextEncoder(16, nhead=4, dim_feedforward=32)
        >>> parts = [torch.randn(2, 6, n, 16) for n in (4, 4, 4, 2)]   # (B, P, tokens, d)
        >>> enc(*parts, mask=torch.ones(2, 6, dtype=torch.bool)).encoded.shape
        torch.Size([2, 6, 14, 16])
    """

    def __init__(
        self,
        d_model: int,
        nhead: int = 8,
        dim_feedforward: int = 2048,
        dropout: float = 0.0,
        *,
        residual: bool = True,
    ) -> None:
        super().__init__()
        check_positive(d_model, "d_model")
        self.d_model, self.residual = d_model, residual
        self.relation_token = _token(d_model)
        if residual:
            self.layer = TransformerEncoderLayer(d_model, nhead, dim_feedforward, dropout)
        else:
            self.attn = MaskedMultiheadAttention(d_model, nhead, dropout=dropout)
            self.mlp = _mlp(d_model, dim_feedforward)
            self.norm = nn.LayerNorm(d_model)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Relation token: truncated normal (std 0.02); the layers: their own resets."""
        _init_token(self.relation_token)
        _reset_children(self)

    def no_weight_decay(self) -> set[str]:
        """The relation token."""
        return {"relation_token"}

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, residual={self.residual}"

    def forward(
        self,
        subject: Tensor,
        object: Tensor,
        union: Tensor,
        motion: Tensor,
        *,
        mask: Tensor | None = None,
    ) -> ContextEncoding:
        """Encode each pair's sentence; see the class docstring."""
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
        x = torch.cat(list(parts.values()), -2)
        token_mask = None if mask is None else mask[..., None].expand(*lead, x.shape[-2])
        pos = self.relation_token.to(x.dtype)
        if self.residual:
            out = self.layer(x, token_mask, pos=pos)
        else:
            a, _ = self.attn(x, query_mask=token_mask, query_pos=pos, key_pos=pos)
            out = self.norm(self.mlp(a))
        out = _zero_padding(out, mask)
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
        self.attn = MaskedMultiheadAttention(d_model, nhead, dropout=dropout)
        self.mlp = _mlp(d_model, dim_feedforward)
        self.norm = nn.LayerNorm(d_model)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Relation token: truncated normal (std 0.02); the layers: their own resets."""
        _init_token(self.relation_token)
        _reset_children(self)

    def no_weight_decay(self) -> set[str]:
        """The relation token."""
        return {"relation_token"}

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}"

    def forward(
        self, encoded: Tensor, mask: Tensor | None = None, *, query: Tensor | None = None
    ) -> Tensor:
        """``(..., S, d)`` -> ``(..., d)`` union-aware relation tokens."""
        check_tensor(encoded, "encoded", ("...", "S", self.d_model), dtype="float")
        if mask is not None:
            check_tensor(mask, "mask", tuple(encoded.shape[:-1]), dtype="bool")
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
        t, _ = self.attn(q.unsqueeze(-2), encoded, key_mask=mask)
        t = t.squeeze(-2)
        out = self.norm(t + self.mlp(t))
        return _zero_padding(out, None if mask is None else mask.any(-1))


class UnionRelationPredictor(nn.Module):
    """The relation feature of a pair (UASAN, Eq. 11): ``Norm(MLP(F_dec + F_enc[U] + U + F_mot))``.

    The four terms do not have the same number of tokens (``F_dec`` one, ``F_enc[U]`` and ``U``
    ``L_U``, ``F_mot`` ``L_mot``), so the sum cannot be taken as printed: each multi-token term is
    **mean-pooled over its tokens** first (the paper's text: "aggregate the multiple union region
    features, motion information, and union-aware tokens"), giving one ``(..., d)`` vector.

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
        self.mlp = _mlp(d_model, hidden or d_model, self.out_dim)
        self.norm = nn.LayerNorm(self.out_dim)

    def reset_parameters(self) -> None:
        """PyTorch's defaults."""
        _reset_children(self)

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, out_dim={self.out_dim}"

    def forward(
        self,
        decoded: Tensor,
        encoded_union: Tensor,
        union: Tensor,
        motion: Tensor,
        mask: Tensor | None = None,
    ) -> Tensor:
        """The pairs' relation features ``r_{s,o}``."""
        check_tensor(decoded, "decoded", ("...", self.d_model), dtype="float")
        lead = tuple(decoded.shape[:-1])
        for name, x in (("encoded_union", encoded_union), ("union", union), ("motion", motion)):
            check_tensor(x, name, (*lead, "L", self.d_model), dtype="float")
        _check_pair_mask(mask, lead)
        total = decoded + encoded_union.mean(-2) + union.mean(-2) + motion.mean(-2)
        total = _zero_padding(
            total, mask
        )  # garbage in a padded pair never reaches the MLP's output
        return _zero_padding(self.norm(self.mlp(total)), mask)
