"""Masked multi-head attention and the transformer layers every block is built from.

Written once and used by every encoder and decoder of the library (spatial attention over the
pairs of a frame, temporal attention along a pair track, cross-attention to a memory).

Conventions, the same everywhere in ``dsgg_layers``:

- **Masks are ``True`` where an entry is valid.** ``key_mask``/``mask``/``memory_mask`` are bool
  ``(..., S)`` tensors, ``True`` = the key takes part. This is the *opposite* of
  ``nn.MultiheadAttention``'s ``key_padding_mask`` (``True`` = ignore) and the same as the
  bool ``attn_mask`` of `torch.nn.functional.scaled_dot_product_attention`.
- **Positions are added to queries and keys, not values** (DETR, STTran, RS-Net Eq. 3-4):
  ``query_pos`` and ``key_pos`` are separate additive terms applied before the projections.
- **No NaN from empty rows.** A query that has no valid key (all keys masked, or no keys at all)
  outputs exactly 0, and so does a query whose own ``query_mask`` entry is ``False``; no gradient
  flows from those rows.
- **Any leading batch dims.** Inputs are ``(..., L, D)``; the leading dims of queries, keys and
  masks must be equal (masks may also broadcast).

The math runs in `torch.nn.functional.scaled_dot_product_attention`, except when attention
weights are requested (``need_weights=True``), where it is written out so the weights can be
returned.

**Padding costs no matrix products.** With ``skip_padding=True`` (the default) and a validity
mask, [`MaskedMultiheadAttention`][], the encoder and decoder layers and their stacks run
their row-wise work (projections, feed-forward networks, norms: nearly all the FLOPs) on the
valid rows only, gathered into ``(N, D)``
([`dsgg_layers.rows.ValidRows`][dsgg_layers.rows.ValidRows]); only the attention itself runs on the
padded grid. The outputs are those of the padded computation (up to float rounding). The valid rows
have a data-dependent count: on a GPU, building them costs a host sync, which a caller avoids by
building them once per batch and passing them in place of the mask (every mask argument takes a
bool tensor or its [`ValidRows`][dsgg_layers.rows.ValidRows]); under ``torch.compile`` the
padded path runs instead.

**Padding never leaks.** Whatever padded positions hold (zeros, NaN, ±Inf, 3e38 as left by
``torch.empty``), valid outputs and gradients are those of zero padding, and the gradient at
padded positions is exactly 0, on every path (valid rows, padded grid, ``need_weights``,
``attn_mask``, cross-attention to a padded memory, compiled): each block replaces padded
entries with 0 (``masked_fill``, not a product) before they meet a matrix product.

**One body.** Every layer is a sequence of residual sub-layers written once
(`_ResidualLayer._sublayer`: ``x + drop(part(norm(x)))`` pre-norm, ``norm(x +
drop(part(x)))`` post-norm), the parts being self-attention, cross-attention and the
feed-forward network; the same body runs on the padded grid or on the valid rows, which differ
only in how attention is called.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable
from typing import Literal, overload

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dsgg_layers._checks import (
    check_broadcastable,
    check_choice,
    check_param_dtype,
    check_positive,
    check_tensor,
)
from dsgg_layers._ops import reset_children, zero_padding
from dsgg_layers.rows import MaskOrRows, ValidRows, resolve_rows, rowwise, split_mask

__all__ = [
    "AttentionBlock",
    "MaskedMultiheadAttention",
    "TransformerDecoder",
    "TransformerDecoderLayer",
    "TransformerEncoder",
    "TransformerEncoderLayer",
    "masked_attention",
]


def masked_attention(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    *,
    key_mask: Tensor | None = None,
    attn_mask: Tensor | None = None,
    dropout_p: float = 0.0,
    scale: float | None = None,
    need_weights: bool = False,
) -> tuple[Tensor, Tensor | None]:
    """Scaled dot-product attention with bool masks, safe for fully masked rows.

    Computes ``softmax(q k^T * scale + mask) v`` over the keys that are valid in ``key_mask`` and
    allowed by ``attn_mask``. A query row with no allowed key gives 0 (not NaN), and its weights
    are all 0.

    Args:
        query: queries, already split into heads.
        key: keys.
        value: values.
        key_mask: ``True`` where a key is valid; broadcast over heads and queries.
        attn_mask: ``True`` where query ``l`` may attend to key ``s``; broadcastable to
            ``(..., H, L, S)``.
        dropout_p: dropout probability on the attention weights (pass 0 at evaluation).
        scale: scale of the logits; default ``1 / sqrt(E)``.
        need_weights: also return the attention weights.

    Shape:
        - query: ``(..., H, L, E)``
        - key: ``(..., H, S, E)``
        - value: ``(..., H, S, Ev)``
        - key_mask: ``(..., S)``
        - attn_mask: broadcastable to ``(..., H, L, S)``
        - output: ``(..., H, L, Ev)``; weights ``(..., H, L, S)`` or ``None``

    Raises:
        TypeError: an input is not a tensor, or a mask is not bool.
        ValueError: shapes disagree.

    Examples:
        >>> q = torch.randn(2, 4, 3, 8)           # (B, H, L, E)
        >>> k = v = torch.randn(2, 4, 5, 8)       # (B, H, S, E)
        >>> key_mask = torch.tensor([[True] * 5, [False] * 5])  # 2nd video: no valid key
        >>> out, _ = masked_attention(q, k, v, key_mask=key_mask)
        >>> out.shape, bool(out[1].abs().sum() == 0)
        (torch.Size([2, 4, 3, 8]), True)
    """
    dims: dict[str, tuple[int, str]] = {}
    check_tensor(query, "query", ("...", "H", "L", "E"), dims=dims, dtype="float")
    check_tensor(key, "key", ("...", "H", "S", "E"), dims=dims, dtype="float")
    if (
        isinstance(dropout_p, bool)
        or not isinstance(dropout_p, int | float)
        or not (0.0 <= dropout_p < 1.0)
    ):
        raise ValueError(f"dropout_p: expected a probability in [0, 1), got {dropout_p!r}")
    if scale is not None and (
        isinstance(scale, bool) or not isinstance(scale, int | float) or not 0 < scale < math.inf
    ):
        raise ValueError(f"scale: expected a positive finite number or None, got {scale!r}")
    check_tensor(value, "value", ("...", "H", "S", "*"), dims=dims, dtype="float")
    for name, t in (("key", key), ("value", value)):
        if t.dtype != query.dtype:
            raise TypeError(f"{name}: expected the dtype of query ({query.dtype}), got {t.dtype}")
    *lead, H, L, _ = query.shape
    S = key.shape[-2]
    if key_mask is not None:
        check_tensor(key_mask, "key_mask", ("...", "S"), dims=dims, dtype="bool")
        invalid = ~key_mask[..., None, :, None]  # padded keys hold 0, whatever they held
        key, value = key.masked_fill(invalid, 0.0), value.masked_fill(invalid, 0.0)
    if attn_mask is not None:
        check_tensor(attn_mask, "attn_mask", ("...", S), dtype="bool")
        check_broadcastable(attn_mask, "attn_mask", (*lead, H, L, S))
    allowed = _allowed(key_mask, attn_mask)
    out, weights, has_key = _attention(query, key, value, allowed, dropout_p, scale, need_weights)
    return (out if has_key is None else out.masked_fill(~has_key, 0.0)), weights


def _allowed(key_mask: Tensor | None, attn_mask: Tensor | None) -> Tensor | None:
    """Which key each query may attend to, ``(..., H or 1, L or 1, S)``; ``None`` = all."""
    allowed = None if key_mask is None else key_mask[..., None, None, :]
    if attn_mask is not None:
        allowed = attn_mask if allowed is None else allowed & attn_mask
    return allowed


def _attention(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    allowed: Tensor | None,
    dropout_p: float,
    scale: float | None,
    need_weights: bool,
) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """[`masked_attention`][] after its checks, without zeroing the rows that have no key.

    Returns ``(out, weights, has_key)``: ``out`` rows without an allowed key hold finite values
    (when the inputs are finite) to be discarded or zeroed with ``has_key``, a bool tensor
    broadcastable to ``(..., H, L, 1)``, or ``None`` when every row has a key (no mask at all).
    This is the one place where "does this query row have any key" is decided.
    """
    *lead, H, L, E = query.shape
    S, Ev = key.shape[-2], value.shape[-1]
    n = math.prod(lead)
    if n == 0 or L == 0 or S == 0:  # nothing to attend from or to: every row is empty
        out = query.new_zeros(*lead, H, L, Ev)
        weights = query.new_zeros(*lead, H, L, S) if need_weights else None
        return out, weights, torch.zeros(*lead, 1, 1, 1, dtype=torch.bool, device=query.device)
    # Fused SDPA kernels want exactly one batch dim: fold the leading dims into it.
    q = query.reshape(n, H, L, E)
    k = key.reshape(n, H, S, E)
    v = value.reshape(n, H, S, Ev)
    has_key: Tensor | None = None
    safe: Tensor | None = None
    if allowed is not None:
        allowed = allowed.reshape((1,) * (len(lead) + 3 - allowed.dim()) + allowed.shape)
        allowed = allowed.expand(*lead, *allowed.shape[-3:]).reshape(n, *allowed.shape[-3:])
        has_key = allowed.any(dim=-1, keepdim=True)
        # Rows with no allowed key attend to everything (finite); the caller zeroes them.
        safe = allowed | ~has_key
    weights: Tensor | None = None
    if not need_weights:
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=safe, dropout_p=dropout_p, scale=scale
        )
    else:
        scale_ = 1.0 / math.sqrt(E) if scale is None else scale
        # scale the queries before the product, as the fused kernels do: in half precision the
        # unscaled q.k overflows (40 * 40 * 64 = 102400 > 65504) where the scaled logit fits
        logits = torch.matmul(q * scale_, k.transpose(-2, -1))
        if safe is not None:
            logits = logits.masked_fill(~safe, float("-inf"))
        weights = logits.softmax(dim=-1)
        if has_key is not None:
            weights = weights.masked_fill(~has_key, 0.0)
        dropped = F.dropout(weights, p=dropout_p) if dropout_p > 0 else weights
        out = torch.matmul(dropped, v)
        weights = weights.reshape(*lead, H, L, S)
    out = out.reshape(*lead, H, L, Ev)
    return out, weights, None if has_key is None else has_key.reshape(*lead, *has_key.shape[-3:])


class MaskedMultiheadAttention(nn.Module):
    """Multi-head attention with bool validity masks and separate query/key positions.

    ``out = W_o · Attn((q + query_pos) W_q, (k + key_pos) W_k, v W_v)``: the positional terms
    enter queries and keys but not values, as in DETR, STTran and RS-Net (Eq. 3-4). Rows of the
    output whose ``query_mask`` is ``False``, or that have no valid key, are exactly 0, and
    whatever padded queries, keys, values or positions hold never reaches a valid row.

    Args:
        embed_dim: width ``D`` of queries and of the output.
        num_heads: number of heads; must divide ``embed_dim``.
        dropout: dropout on the attention weights (training only).
        bias: add biases to the projections.
        kdim: width of keys (default ``embed_dim``).
        vdim: width of values (default ``embed_dim``).
        skip_padding: project only the valid rows when masks are given (see the module
            docstring); needs ``query_mask`` (and ``key_mask`` in cross-attention) of the
            inputs' exact leading shape, and no ``attn_mask`` or weights.

    Shape:
        - query: ``(..., L, D)``
        - key: ``(..., S, kdim)``; default ``query`` (self-attention)
        - value: ``(..., S, vdim)``; default ``key`` (without ``key_pos``)
        - query_mask: ``(..., L)`` bool, ``True`` = valid
        - key_mask: ``(..., S)`` bool, ``True`` = valid; defaults to ``query_mask`` in
          self-attention
        - attn_mask: ``(L, S)`` or ``(..., L, S)`` bool, ``True`` = may attend
        - query_pos: broadcastable to ``(..., L, D)``; key_pos: to ``(..., S, kdim)``
        - query_mask, key_mask may also be their [`ValidRows`][] (built once per batch); with
          ``key_mask`` rows and no ``query_mask``, every query is a row (learned queries)
        - query_rows, key_rows: deprecated (pass the rows as the masks)
        - output: ``(..., L, D)``; weights ``(..., H, L, S)`` or ``None``

    Raises:
        TypeError: an input is not a tensor, or a mask is not bool.
        ValueError: shapes disagree, or ``embed_dim`` is not divisible by ``num_heads``.

    Examples:
        >>> attn = MaskedMultiheadAttention(16, num_heads=4)
        >>> x = torch.randn(2, 5, 16)                       # (B, P, D): pairs of a frame
        >>> mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
        >>> out, weights = attn(x, query_mask=mask, need_weights=True)
        >>> out.shape, weights.shape, bool(out[0, 3:].abs().sum() == 0)
        (torch.Size([2, 5, 16]), torch.Size([2, 4, 5, 5]), True)
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        *,
        dropout: float = 0.0,
        bias: bool = True,
        kdim: int | None = None,
        vdim: int | None = None,
        skip_padding: bool = True,
    ) -> None:
        super().__init__()
        check_positive(embed_dim, "embed_dim")
        check_positive(num_heads, "num_heads")
        if embed_dim % num_heads != 0:
            raise ValueError(
                f"embed_dim: expected a multiple of num_heads={num_heads}, got {embed_dim}"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout: expected a probability in [0, 1), got {dropout}")
        for name, d in (("kdim", kdim), ("vdim", vdim)):
            if d is not None:
                check_positive(d, name)
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.kdim = embed_dim if kdim is None else kdim
        self.vdim = embed_dim if vdim is None else vdim
        self.dropout = dropout
        self.skip_padding = skip_padding
        self.q_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.k_proj = nn.Linear(self.kdim, embed_dim, bias=bias)
        self.v_proj = nn.Linear(self.vdim, embed_dim, bias=bias)
        self.out_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Xavier-uniform projections and zero biases, as ``nn.MultiheadAttention``."""
        for proj in (self.q_proj, self.k_proj, self.v_proj):
            nn.init.xavier_uniform_(proj.weight)
            if proj.bias is not None:
                nn.init.zeros_(proj.bias)
        nn.init.xavier_uniform_(self.out_proj.weight)
        if self.out_proj.bias is not None:
            nn.init.zeros_(self.out_proj.bias)

    def extra_repr(self) -> str:
        extra = f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, dropout={self.dropout}"
        if self.kdim != self.embed_dim or self.vdim != self.embed_dim:
            extra += f", kdim={self.kdim}, vdim={self.vdim}"
        return extra

    def _split_heads(self, x: Tensor) -> Tensor:
        # (..., N, D) -> (..., H, N, D / H)
        return x.unflatten(-1, (self.num_heads, self.head_dim)).transpose(-3, -2)

    def _merge_heads(self, x: Tensor) -> Tensor:
        # (..., H, N, D / H) -> (..., N, D)
        return x.transpose(-3, -2).flatten(-2)

    def _check(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        query_mask: Tensor | None,
        key_mask: Tensor | None,
        attn_mask: Tensor | None,
        query_pos: Tensor | None,
        key_pos: Tensor | None,
        self_attention: bool,
    ) -> None:
        """Types, dtypes and shapes of every argument (never values)."""
        dims: dict[str, tuple[int, str]] = {}
        check_tensor(query, "query", ("...", "L", self.embed_dim), dims=dims, dtype="float")
        check_tensor(key, "key", ("...", "S", self.kdim), dims=dims, dtype="float")
        check_tensor(value, "value", ("...", "S", self.vdim), dims=dims, dtype="float")
        if query_mask is not None:
            check_tensor(query_mask, "query_mask", ("...", "L"), dims=dims, dtype="bool")
        if key_mask is not None:
            name = "query_mask" if self_attention and key_mask is query_mask else "key_mask"
            check_tensor(key_mask, name, ("...", "S"), dims=dims, dtype="bool")
        if attn_mask is not None:
            check_tensor(attn_mask, "attn_mask", ("...", "*", "*"), dtype="bool")
            check_broadcastable(attn_mask, "attn_mask", (*query.shape[:-1], key.shape[-2]))
        if query_pos is not None:
            check_broadcastable(query_pos, "query_pos", query.shape)
        if key_pos is not None:
            check_broadcastable(key_pos, "key_pos", key.shape)
        for name, pos in (("query_pos", query_pos), ("key_pos", key_pos)):
            if pos is not None:
                check_tensor(pos, name, None, dims=dims, dtype="float")
        check_param_dtype(self.q_proj.weight, ("query", query), ("key", key), ("value", value))

    def forward(
        self,
        query: Tensor,
        key: Tensor | None = None,
        value: Tensor | None = None,
        *,
        query_mask: MaskOrRows | None = None,
        key_mask: MaskOrRows | None = None,
        attn_mask: Tensor | None = None,
        query_pos: Tensor | None = None,
        key_pos: Tensor | None = None,
        need_weights: bool = False,
        query_rows: ValidRows | None = None,
        key_rows: ValidRows | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """Attend from ``query`` to ``key``/``value``; see the class docstring for shapes."""
        query_mask, query_rows = split_mask(
            query_mask, query_rows, name="query_mask", old="query_rows"
        )
        key_mask, key_rows = split_mask(key_mask, key_rows, name="key_mask", old="key_rows")
        self_attention = key is None
        if key is None:
            key = query
            key_pos = query_pos if key_pos is None else key_pos
            if key_mask is None:
                key_mask, key_rows = query_mask, query_rows if key_rows is None else key_rows
        value = key if value is None else value
        self._check(query, key, value, query_mask, key_mask, attn_mask, query_pos, key_pos,
                    self_attention)  # fmt: skip
        if attn_mask is None and not need_weights:
            queries = resolve_rows(
                self.skip_padding, query_mask, query.shape[:-1], query_rows, "query_mask"
            )
            if queries is None and query_mask is None and key_rows is not None:
                # Unmasked queries (learned tokens) reading keys given as rows: all queries are
                # rows, known without a sync.
                queries = resolve_rows(
                    self.skip_padding, ValidRows.full(query.shape[:-1], query.device),
                    query.shape[:-1],
                )  # fmt: skip
            if queries is not None and key_mask is query_mask and key_rows is query_rows:
                keys: ValidRows | None = queries
            else:
                keys = resolve_rows(
                    queries is not None, key_mask, key.shape[:-1], key_rows, "key_mask"
                )
            if queries is not None and keys is not None:
                return queries.scatter(
                    self._forward_gathered(query, key, value, queries, keys, query_pos, key_pos)
                ), None
        return self._forward_grid(
            query, key, value, query_mask, key_mask, attn_mask, query_pos, key_pos, need_weights
        )

    def _forward_gathered(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        queries: ValidRows,
        keys: ValidRows,
        query_pos: Tensor | None,
        key_pos: Tensor | None,
    ) -> Tensor:
        """Gather the valid rows of the grids (each once) and run [`forward_rows`][]."""
        q_rows = queries.gather(query)
        k_rows = q_rows if key is query and keys is queries else keys.gather(key)
        qpos_rows = None if query_pos is None else queries.gather(query_pos)
        if key_pos is query_pos and keys is queries:  # self-attention positions
            kpos_rows = qpos_rows
        else:
            kpos_rows = None if key_pos is None else keys.gather(key_pos)
        v_rows = k_rows if value is key else keys.gather(value)
        return self.forward_rows(
            q_rows, queries, k_rows, keys, v_rows, query_pos=qpos_rows, key_pos=kpos_rows
        )

    def _forward_grid(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        query_mask: Tensor | None,
        key_mask: Tensor | None,
        attn_mask: Tensor | None,
        query_pos: Tensor | None,
        key_pos: Tensor | None,
        need_weights: bool,
    ) -> tuple[Tensor, Tensor | None]:
        """Attention on the padded grid; padded rows are set to 0 before every projection."""
        q_in = zero_padding(query if query_pos is None else query + query_pos, query_mask)
        if key is query and key_pos is query_pos and key_mask is query_mask:
            k_in = q_in  # self-attention: the keys are the queries
        else:
            k_in = zero_padding(key if key_pos is None else key + key_pos, key_mask)
        v_in = zero_padding(value, key_mask)
        if attn_mask is not None:
            attn_mask = attn_mask.unsqueeze(-3)  # broadcast over heads
        out, weights, has_key = _attention(
            self._split_heads(self.q_proj(q_in)),
            self._split_heads(self.k_proj(k_in)),
            self._split_heads(self.v_proj(v_in)),
            _allowed(key_mask, attn_mask),
            self.dropout if self.training else 0.0,
            None,
            need_weights,
        )
        out = self.out_proj(self._merge_heads(out))
        # Padded queries and queries with no key are exactly 0 after the projection too.
        valid = None if has_key is None else has_key.squeeze(-3)  # (..., L or 1, 1)
        if query_mask is not None:
            qm = query_mask.unsqueeze(-1)
            valid = qm if valid is None else valid & qm
        return (out if valid is None else out.masked_fill(~valid, 0.0)), weights

    def forward_rows(
        self,
        query: Tensor,
        queries: ValidRows,
        key: Tensor | None = None,
        keys: ValidRows | None = None,
        value: Tensor | None = None,
        *,
        query_pos: Tensor | None = None,
        key_pos: Tensor | None = None,
    ) -> Tensor:
        """Attention on the valid rows of a grid (no checks; the layers call it).

        ``query (Nq, D)`` are the rows of the grid described by ``queries``, likewise ``key``
        and ``value`` of ``keys``; ``key=None`` is self-attention over the query rows (with
        ``key_pos`` defaulting to ``query_pos``), ``value=None`` takes the keys. Projections run
        on the rows, attention on the grid. Returns the output rows ``(Nq, D)``; a query with no
        valid key gets 0.
        """
        if key is None:
            key, keys = query, queries
            key_pos = query_pos if key_pos is None else key_pos
        if keys is None:
            raise ValueError("keys: expected the ValidRows of the key grid along with key")
        value = key if value is None else value
        q = self.q_proj(query if query_pos is None else query + query_pos)
        k = self.k_proj(key if key_pos is None else key + key_pos)
        v = self.v_proj(value)
        # Rows without a valid key (padding, in self-attention) come out finite and are dropped
        # by the gather below; valid rows without keys (cross-attention) are zeroed after it.
        out, _, has_key = _attention(
            self._split_heads(queries.scatter(q)),
            self._split_heads(keys.scatter(k)),
            self._split_heads(keys.scatter(v)),
            keys.mask[..., None, None, :],
            self.dropout if self.training else 0.0,
            None,
            False,
        )
        out = self.out_proj(queries.gather(self._merge_heads(out)))
        if keys is not queries:  # a valid query whose keys are all padding outputs 0
            assert has_key is not None  # the key mask was given
            has_key = has_key.squeeze(-3).expand(*queries.shape, 1)
            out = out.masked_fill(~queries.gather(has_key), 0.0)
        return out


def _activation(name: str):
    check_choice(name, "activation", ("relu", "gelu"))
    return F.relu if name == "relu" else F.gelu


class _ResidualLayer(nn.Module):
    """What the encoder and decoder layers share: the residual sub-layer and the feed-forward.

    Subclasses own ``linear1``, ``linear2``, ``dropout`` (inside the feed-forward network),
    ``activation`` and ``norm_first``, named as in `torch.nn.TransformerEncoderLayer`.
    """

    norm_first: bool
    linear1: nn.Linear
    linear2: nn.Linear
    dropout: nn.Dropout

    def _sublayer(
        self, x: Tensor, part, norm: nn.Module | None, dropout: nn.Module
    ) -> Tensor:  # fmt: skip
        """One residual sub-layer around ``part``: pre-norm or post-norm (``norm=None``: none)."""
        if self.norm_first:
            return x + dropout(part(x if norm is None else norm(x)))
        out = x + dropout(part(x))
        return out if norm is None else norm(out)

    def _feedforward(self, x: Tensor) -> Tensor:
        return self.linear2(self.dropout(self.activation(self.linear1(x))))

    @property
    def skip_padding(self) -> bool:
        """Whether the layer runs its row-wise work on the valid rows only."""
        return all(m.skip_padding for m in self._attentions())

    @skip_padding.setter
    def skip_padding(self, value: bool) -> None:
        for m in self._attentions():
            m.skip_padding = value

    def _attentions(self) -> list[MaskedMultiheadAttention]:
        return [m for m in self.children() if isinstance(m, MaskedMultiheadAttention)]


class TransformerEncoderLayer(_ResidualLayer):
    """Self-attention + feed-forward layer over ``(..., N, D)`` with a bool validity mask.

    Like `torch.nn.TransformerEncoderLayer` (same parameter names), with the library's
    conventions: any leading batch dims (``(B, T, P, D)`` attends over pairs ``P``; transpose to
    attend over frames), ``mask`` is ``True`` for valid rows, ``pos`` is added to queries and keys
    only, and padded rows come out as exactly 0.

    Args:
        d_model: width ``D``.
        nhead: number of attention heads.
        dim_feedforward: hidden width of the feed-forward network.
        dropout: dropout in attention, after each sub-layer and inside the feed-forward network.
        activation: ``"relu"`` or ``"gelu"``.
        norm_first: pre-norm (``x + f(norm(x))``) instead of post-norm (``norm(x + f(x))``).
        layer_norm_eps: epsilon of the layer norms.
        skip_padding: with a ``mask`` of the exact shape ``(..., N)`` and no ``attn_mask`` or
            weights, run projections, feed-forward network and norms on the valid rows only
            (see the module docstring).
        ffn_norm: the norm of the feed-forward sub-layer (default). ``False`` leaves it out
            (``x + FFN(x)``, no ``norm2``): TR²'s public temporal layers (and STTran's temporal
            decoder) end that way.

    Shape:
        - x: ``(..., N, D)``
        - mask: ``(..., N)`` bool, ``True`` = valid
        - pos: broadcastable to ``(..., N, D)``
        - attn_mask: ``(N, N)`` or ``(..., N, N)`` bool, ``True`` = may attend
        - mask may also be its [`ValidRows`][] (``rows=`` is deprecated)
        - output: ``(..., N, D)``; with ``need_weights=True`` also ``(..., H, N, N)``

    Raises:
        TypeError, ValueError: as [`MaskedMultiheadAttention`][].

    Examples:
        >>> layer = TransformerEncoderLayer(32, nhead=4, dim_feedforward=64, dropout=0.0)
        >>> x = torch.randn(2, 6, 3, 32)                 # (B, T, P, D)
        >>> mask = torch.rand(2, 6, 3) > 0.3
        >>> y = layer(x, mask)                            # attention among the pairs of a frame
        >>> y.shape, bool(y[~mask].abs().sum() == 0)
        (torch.Size([2, 6, 3, 32]), True)
    """

    def __init__(
        self,
        d_model: int,
        nhead: int,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        activation: Literal["relu", "gelu"] = "relu",
        *,
        norm_first: bool = False,
        layer_norm_eps: float = 1e-5,
        skip_padding: bool = True,
        ffn_norm: bool = True,
    ) -> None:
        super().__init__()
        check_positive(dim_feedforward, "dim_feedforward")
        self.activation_name = activation
        self.activation = _activation(activation)
        self.norm_first = norm_first
        self.d_model = d_model
        self.self_attn = MaskedMultiheadAttention(
            d_model, nhead, dropout=dropout, skip_padding=skip_padding
        )
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        check_positive(layer_norm_eps, "layer_norm_eps", integer=False)
        self.norm1 = nn.LayerNorm(d_model, eps=layer_norm_eps)
        self.norm2 = nn.LayerNorm(d_model, eps=layer_norm_eps) if ffn_norm else None
        self.dropout = nn.Dropout(dropout)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Reset attention, feed-forward and norm parameters."""
        self.self_attn.reset_parameters()
        for module in (self.linear1, self.linear2, self.norm1, self.norm2):
            if module is not None:
                module.reset_parameters()

    def extra_repr(self) -> str:
        extra = f"activation={self.activation_name!r}, norm_first={self.norm_first}"
        return extra + (", ffn_norm=False" if self.norm2 is None else "")

    def _body(self, x: Tensor, attend) -> Tensor:
        x = self._sublayer(x, attend, self.norm1, self.dropout1)
        return self._sublayer(x, self._feedforward, self.norm2, self.dropout2)

    def _check_inputs(self, x: Tensor, mask: Tensor | None, pos: Tensor | None) -> None:
        """Shapes, dtypes and devices of the caller's arguments, named as the caller names them."""
        dims: dict[str, tuple[int, str]] = {}
        check_tensor(x, "x", ("...", "N", self.d_model), dims=dims, dtype="float")
        check_param_dtype(self.linear1.weight, ("x", x))
        if mask is not None:
            check_tensor(mask, "mask", tuple(x.shape[:-1]), dims=dims, dtype="bool")
        if pos is not None:
            check_tensor(pos, "pos", None, dims=dims, dtype="float")
            check_broadcastable(pos, "pos", x.shape)

    def _resolve(self, x: Tensor, mask: Tensor | None, rows: ValidRows | None) -> ValidRows | None:
        """The rows to run on, or ``None``: the grid (inputs checked by [`_check_inputs`][])."""
        return resolve_rows(self.skip_padding, mask, x.shape[:-1], rows)

    def forward_rows(self, x: Tensor, rows: ValidRows, pos: Tensor | None = None) -> Tensor:
        """The layer on the valid rows ``x (N, D)`` of the grid ``rows`` (no checks).

        ``pos (N, D)``: the positions of those rows. Returns the output rows ``(N, D)``.
        """
        return self._body(x, lambda h: self.self_attn.forward_rows(h, rows, query_pos=pos))

    @overload
    def forward(
        self,
        x: Tensor,
        mask: MaskOrRows | None = ...,
        *,
        pos: Tensor | None = ...,
        attn_mask: Tensor | None = ...,
        need_weights: Literal[False] = ...,
        rows: ValidRows | None = ...,
    ) -> Tensor: ...

    @overload
    def forward(
        self,
        x: Tensor,
        mask: MaskOrRows | None = ...,
        *,
        pos: Tensor | None = ...,
        attn_mask: Tensor | None = ...,
        need_weights: Literal[True],
        rows: ValidRows | None = ...,
    ) -> tuple[Tensor, Tensor]: ...

    def forward(
        self,
        x: Tensor,
        mask: MaskOrRows | None = None,
        *,
        pos: Tensor | None = None,
        attn_mask: Tensor | None = None,
        need_weights: bool = False,
        rows: ValidRows | None = None,
    ) -> Tensor | tuple[Tensor, Tensor]:
        """Encode ``x``; returns ``(output, weights)`` when ``need_weights`` is true."""
        mask, rows = split_mask(mask, rows)
        self._check_inputs(x, mask, pos)
        resolved = None if attn_mask is not None or need_weights else self._resolve(x, mask, rows)
        if resolved is not None:
            return _encode_rows((self,), None, x, resolved, pos)
        x, weights = self._forward_grid(zero_padding(x, mask), mask, pos, attn_mask, need_weights)
        return (x, weights) if need_weights else x  # type: ignore[return-value]

    def _forward_grid(
        self,
        x: Tensor,
        mask: Tensor | None,
        pos: Tensor | None,
        attn_mask: Tensor | None,
        need_weights: bool,
    ) -> tuple[Tensor, Tensor | None]:
        """The layer on the padded grid; ``x`` is already 0 at padding, and so is the output."""
        weights: list[Tensor | None] = []

        def attend(h: Tensor) -> Tensor:
            out, w = self.self_attn(h, query_mask=mask, query_pos=pos, attn_mask=attn_mask,
                                    need_weights=need_weights)  # fmt: skip
            weights.append(w)
            return out

        return zero_padding(self._body(x, attend), mask), weights[0]


def _encode_rows(
    layers: Iterable[TransformerEncoderLayer],
    norm: nn.Module | None,
    x: Tensor,
    rows: ValidRows,
    pos: Tensor | None,
) -> Tensor:
    """Encoder layers on the valid rows: gathered once, scattered once."""

    def step(h: Tensor, p: Tensor | None) -> Tensor:
        for layer in layers:
            h = layer.forward_rows(h, rows, p)
        return h

    return _run_rows(rows, x, pos, norm, step)


def _run_rows(
    rows: ValidRows, x: Tensor, pos: Tensor | None, norm: nn.Module | None, step
) -> Tensor:
    """Gather the valid rows of ``x`` (and ``pos``) once, run ``step(h, pos_rows)``, then
    ``norm``, and scatter back once."""
    h = step(rows.gather(x), None if pos is None else rows.gather(pos))
    return rows.scatter(h if norm is None else norm(h))


class TransformerDecoderLayer(_ResidualLayer):
    """(Optional) self-attention, cross-attention to a memory, and feed-forward.

    The DETR-style decoder layer: queries ``(..., L, D)`` attend to each other (unless
    ``self_attention=False``), then to a memory ``(..., S, D)``; ``query_pos`` enters the
    queries of both attentions and the keys of the self-attention, ``memory_pos`` the keys of the
    cross-attention. Padded queries come out as exactly 0; a query with no valid memory entry
    gets no cross-attention update (it is 0, not NaN). With ``mask`` and ``memory_mask`` of the
    inputs' exact shapes, the row-wise work runs on the valid rows (as the encoder layer).

    Args:
        d_model: width ``D``.
        nhead: number of attention heads.
        dim_feedforward: hidden width of the feed-forward network.
        dropout: dropout in attention, after each sub-layer and inside the feed-forward network.
        activation: ``"relu"`` or ``"gelu"``.
        norm_first: pre-norm instead of post-norm.
        layer_norm_eps: epsilon of the layer norms.
        self_attention: include the self-attention sub-layer.
        memory_dim: width of the memory (default ``d_model``).
        skip_padding: run the row-wise work on the valid rows (see the module docstring).

    Shape:
        - x: ``(..., L, D)``; memory: ``(..., S, memory_dim)``
        - mask: ``(..., L)`` bool; memory_mask: ``(..., S)`` bool; ``True`` = valid
        - query_pos: broadcastable to ``(..., L, D)``; memory_pos: to ``(..., S, memory_dim)``
        - self_attn_mask: ``(..., L, L)``; cross_attn_mask: ``(..., L, S)``; bool, ``True`` =
          may attend
        - mask, memory_mask may also be their [`ValidRows`][] (``rows=`` and ``memory_rows=``
          are deprecated)
        - output: ``(..., L, D)``; with ``need_weights=True`` also the self-attention weights
          ``(..., H, L, L)`` (``None`` without self-attention) and cross-attention weights
          ``(..., H, L, S)``

    Raises:
        TypeError, ValueError: as [`MaskedMultiheadAttention`][].

    Examples:
        >>> layer = TransformerDecoderLayer(32, nhead=4, dim_feedforward=64, dropout=0.0)
        >>> queries = torch.randn(2, 3, 32)          # (B, L, D)
        >>> memory = torch.randn(2, 10, 32)          # (B, S, D)
        >>> memory_mask = torch.arange(10) < torch.tensor([[4], [10]])
        >>> layer(queries, memory, memory_mask=memory_mask).shape
        torch.Size([2, 3, 32])
    """

    def __init__(
        self,
        d_model: int,
        nhead: int,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        activation: Literal["relu", "gelu"] = "relu",
        *,
        norm_first: bool = False,
        layer_norm_eps: float = 1e-5,
        self_attention: bool = True,
        memory_dim: int | None = None,
        skip_padding: bool = True,
    ) -> None:
        super().__init__()
        check_positive(dim_feedforward, "dim_feedforward")
        self.activation_name = activation
        self.activation = _activation(activation)
        self.norm_first = norm_first
        self.d_model = d_model
        if memory_dim is not None:
            check_positive(memory_dim, "memory_dim")
        self.memory_dim = d_model if memory_dim is None else memory_dim
        self.self_attn = (
            MaskedMultiheadAttention(d_model, nhead, dropout=dropout, skip_padding=skip_padding)
            if self_attention
            else None
        )
        self.cross_attn = MaskedMultiheadAttention(
            d_model, nhead, dropout=dropout, kdim=memory_dim, vdim=memory_dim,
            skip_padding=skip_padding,
        )  # fmt: skip
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        check_positive(layer_norm_eps, "layer_norm_eps", integer=False)
        self.norm1 = nn.LayerNorm(d_model, eps=layer_norm_eps) if self_attention else None
        self.norm2 = nn.LayerNorm(d_model, eps=layer_norm_eps)
        self.norm3 = nn.LayerNorm(d_model, eps=layer_norm_eps)
        self.dropout = nn.Dropout(dropout)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.dropout3 = nn.Dropout(dropout)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Reset attention, feed-forward and norm parameters."""
        for module in (
            self.self_attn,
            self.cross_attn,
            self.linear1,
            self.linear2,
            self.norm1,
            self.norm2,
            self.norm3,
        ):
            if module is not None:
                module.reset_parameters()

    def extra_repr(self) -> str:
        return (
            f"activation={self.activation_name!r}, norm_first={self.norm_first}, "
            f"self_attention={self.self_attn is not None}"
        )

    def _body(self, x: Tensor, self_attend, cross_attend) -> Tensor:
        if self.self_attn is not None:
            x = self._sublayer(x, self_attend, self.norm1, self.dropout1)
        x = self._sublayer(x, cross_attend, self.norm2, self.dropout2)
        return self._sublayer(x, self._feedforward, self.norm3, self.dropout3)

    def _resolve(
        self,
        x: Tensor,
        memory: Tensor,
        mask: Tensor | None,
        memory_mask: Tensor | None,
        rows: ValidRows | None,
        memory_rows: ValidRows | None,
    ) -> tuple[ValidRows, ValidRows] | None:
        """The query and memory rows to run on, or ``None``: the padded grid (inputs checked by
        [`_check_inputs`][])."""
        queries = resolve_rows(self.skip_padding, mask, x.shape[:-1], rows)
        if queries is None:
            return None
        keys = resolve_rows(True, memory_mask, memory.shape[:-1], memory_rows, "memory_mask")
        return None if keys is None else (queries, keys)

    def _check_inputs(
        self,
        x: Tensor,
        memory: Tensor,
        mask: Tensor | None,
        memory_mask: Tensor | None,
        query_pos: Tensor | None,
        memory_pos: Tensor | None,
    ) -> None:
        """Shapes, dtypes and devices of the caller's arguments, named as the caller names them."""
        dims: dict[str, tuple[int, str]] = {}
        check_tensor(x, "x", ("...", "L", self.d_model), dims=dims, dtype="float")
        check_tensor(memory, "memory", ("...", "S", self.memory_dim), dims=dims, dtype="float")
        check_param_dtype(self.linear1.weight, ("x", x), ("memory", memory))
        for value, name, like in ((mask, "mask", x), (memory_mask, "memory_mask", memory)):
            if value is not None:
                check_tensor(value, name, tuple(like.shape[:-1]), dims=dims, dtype="bool")
        for value, name, like in ((query_pos, "query_pos", x), (memory_pos, "memory_pos", memory)):
            if value is not None:
                check_tensor(value, name, None, dims=dims, dtype="float")
                check_broadcastable(value, name, like.shape)

    def forward_rows(
        self,
        x: Tensor,
        rows: ValidRows,
        memory: Tensor,
        memory_rows: ValidRows,
        query_pos: Tensor | None = None,
        memory_pos: Tensor | None = None,
    ) -> Tensor:
        """The layer on the valid rows ``x (N, D)`` of ``rows`` against the memory rows
        ``memory (M, memory_dim)`` of ``memory_rows`` (no checks); positions are rows too."""
        sa = self.self_attn
        return self._body(
            x,
            None if sa is None else lambda h: sa.forward_rows(h, rows, query_pos=query_pos),
            lambda h: self.cross_attn.forward_rows(
                h, rows, memory, memory_rows, query_pos=query_pos, key_pos=memory_pos
            ),
        )

    def forward(
        self,
        x: Tensor,
        memory: Tensor,
        mask: MaskOrRows | None = None,
        memory_mask: MaskOrRows | None = None,
        *,
        query_pos: Tensor | None = None,
        memory_pos: Tensor | None = None,
        self_attn_mask: Tensor | None = None,
        cross_attn_mask: Tensor | None = None,
        need_weights: bool = False,
        rows: ValidRows | None = None,
        memory_rows: ValidRows | None = None,
    ) -> Tensor | tuple[Tensor, tuple[Tensor | None, Tensor | None]]:
        """Decode ``x`` against ``memory``.

        Returns ``out``, or ``(out, (w_self, w_cross))`` when ``need_weights`` is true.
        """
        mask, rows = split_mask(mask, rows)
        memory_mask, memory_rows = split_mask(
            memory_mask, memory_rows, name="memory_mask", old="memory_rows"
        )
        self._check_inputs(x, memory, mask, memory_mask, query_pos, memory_pos)
        plain = self_attn_mask is None and cross_attn_mask is None and not need_weights
        resolved = self._resolve(x, memory, mask, memory_mask, rows, memory_rows) if plain else None
        if resolved is not None:
            return _decode_rows((self,), None, x, memory, resolved, query_pos, memory_pos)
        x, weights = self._forward_grid(
            zero_padding(x, mask), memory, mask, memory_mask, query_pos, memory_pos,
            self_attn_mask, cross_attn_mask, need_weights,
        )  # fmt: skip
        return (x, weights) if need_weights else x

    def _forward_grid(
        self,
        x: Tensor,
        memory: Tensor,
        mask: Tensor | None,
        memory_mask: Tensor | None,
        query_pos: Tensor | None,
        memory_pos: Tensor | None,
        self_attn_mask: Tensor | None,
        cross_attn_mask: Tensor | None,
        need_weights: bool,
    ) -> tuple[Tensor, tuple[Tensor | None, Tensor | None]]:
        """The layer on the padded grid; ``x`` is already 0 at padding, and so is the output."""
        weights: dict[str, Tensor | None] = {"self": None, "cross": None}

        def self_attend(h: Tensor) -> Tensor:
            assert self.self_attn is not None
            out, weights["self"] = self.self_attn(
                h, query_mask=mask, query_pos=query_pos, attn_mask=self_attn_mask,
                need_weights=need_weights,
            )  # fmt: skip
            return out

        def cross_attend(h: Tensor) -> Tensor:
            out, weights["cross"] = self.cross_attn(
                h, memory, query_mask=mask, key_mask=memory_mask, attn_mask=cross_attn_mask,
                query_pos=query_pos, key_pos=memory_pos, need_weights=need_weights,
            )  # fmt: skip
            return out

        x = zero_padding(self._body(x, self_attend, cross_attend), mask)
        return x, (weights["self"], weights["cross"])


def _decode_rows(
    layers: Iterable[TransformerDecoderLayer],
    norm: nn.Module | None,
    x: Tensor,
    memory: Tensor,
    rows: tuple[ValidRows, ValidRows],
    query_pos: Tensor | None,
    memory_pos: Tensor | None,
) -> Tensor:
    """Decoder layers on the valid rows: queries and memory gathered once, scattered once."""
    queries, keys = rows
    m = keys.gather(memory)
    mpos = None if memory_pos is None else keys.gather(memory_pos)

    def step(h: Tensor, qpos: Tensor | None) -> Tensor:
        for layer in layers:
            h = layer.forward_rows(h, queries, m, keys, qpos, mpos)
        return h

    return _run_rows(queries, x, query_pos, norm, step)


class _LayerStack(nn.Module):
    """``num_layers`` independent copies of a layer and an optional final norm."""

    def __init__(self, layer: nn.Module, num_layers: int, norm: nn.Module | None = None) -> None:
        super().__init__()
        kind = self._layer_type()
        if not isinstance(layer, kind):
            raise TypeError(f"layer: expected a {kind.__name__}, got {type(layer).__name__}")
        check_positive(num_layers, "num_layers")
        if norm is not None and not isinstance(norm, nn.Module):
            raise TypeError(f"norm: expected an nn.Module or None, got {type(norm).__name__}")
        self.layers = nn.ModuleList(copy.deepcopy(layer) for _ in range(num_layers))
        self.norm = norm
        self.reset_parameters()

    @staticmethod
    def _layer_type() -> type[nn.Module]:
        raise NotImplementedError

    def reset_parameters(self) -> None:
        """Re-initialise every layer (so copies do not start equal)."""
        for layer in self.layers:
            layer.reset_parameters()
        if self.norm is not None and hasattr(self.norm, "reset_parameters"):
            self.norm.reset_parameters()

    def _finish(self, x: Tensor, mask: Tensor | None) -> Tensor:
        """The final norm on the grid; padded rows back to 0."""
        return x if self.norm is None else zero_padding(self.norm(x), mask)


class TransformerEncoder(_LayerStack):
    """A stack of ``num_layers`` copies of a [`TransformerEncoderLayer`][].

    The same ``mask``, ``pos`` and ``attn_mask`` are given to every layer; on the valid-rows
    path the rows are gathered once for the whole stack.

    Args:
        layer: the layer to copy (each copy is re-initialised independently).
        num_layers: number of layers.
        norm: optional final norm (e.g. ``nn.LayerNorm(D)`` with pre-norm layers).

    Shape:
        As [`TransformerEncoderLayer`][].

    Raises:
        TypeError: ``layer`` is not a [`TransformerEncoderLayer`][].
        ValueError: ``num_layers`` is not positive.

    Examples:
        >>> encoder = TransformerEncoder(TransformerEncoderLayer(16, 4, 32), num_layers=2)
        >>> encoder(torch.randn(3, 7, 16), torch.ones(3, 7, dtype=torch.bool)).shape
        torch.Size([3, 7, 16])
    """

    @staticmethod
    def _layer_type() -> type[nn.Module]:
        return TransformerEncoderLayer

    def forward(
        self,
        x: Tensor,
        mask: MaskOrRows | None = None,
        *,
        pos: Tensor | None = None,
        attn_mask: Tensor | None = None,
        rows: ValidRows | None = None,
    ) -> Tensor:
        """Run the layers in turn (on the valid rows throughout, when the layers skip padding)."""
        mask, rows = split_mask(mask, rows)
        first: TransformerEncoderLayer = self.layers[0]
        first._check_inputs(x, mask, pos)
        resolved = None if attn_mask is not None else first._resolve(x, mask, rows)
        if resolved is not None:
            return _encode_rows(self.layers, self.norm, x, resolved, pos)
        x = zero_padding(x, mask)  # once: every layer's output is 0 at padding again
        for layer in self.layers:
            x, _ = layer._forward_grid(x, mask, pos, attn_mask, False)
        return self._finish(x, mask)


class TransformerDecoder(_LayerStack):
    """A stack of ``num_layers`` copies of a [`TransformerDecoderLayer`][].

    Args:
        layer: the layer to copy (each copy is re-initialised independently).
        num_layers: number of layers.
        norm: optional final norm.

    Shape:
        As [`TransformerDecoderLayer`][].

    Raises:
        TypeError: ``layer`` is not a [`TransformerDecoderLayer`][].
        ValueError: ``num_layers`` is not positive.

    Examples:
        >>> decoder = TransformerDecoder(TransformerDecoderLayer(16, 4, 32), num_layers=3)
        >>> decoder(torch.randn(2, 5, 16), torch.randn(2, 9, 16)).shape
        torch.Size([2, 5, 16])
    """

    @staticmethod
    def _layer_type() -> type[nn.Module]:
        return TransformerDecoderLayer

    def forward(
        self,
        x: Tensor,
        memory: Tensor,
        mask: MaskOrRows | None = None,
        memory_mask: MaskOrRows | None = None,
        *,
        query_pos: Tensor | None = None,
        memory_pos: Tensor | None = None,
        self_attn_mask: Tensor | None = None,
        cross_attn_mask: Tensor | None = None,
        rows: ValidRows | None = None,
        memory_rows: ValidRows | None = None,
    ) -> Tensor:
        """Run the layers in turn (on the valid rows throughout, when the layers skip padding)."""
        mask, rows = split_mask(mask, rows)
        memory_mask, memory_rows = split_mask(
            memory_mask, memory_rows, name="memory_mask", old="memory_rows"
        )
        first: TransformerDecoderLayer = self.layers[0]
        first._check_inputs(x, memory, mask, memory_mask, query_pos, memory_pos)
        plain = self_attn_mask is None and cross_attn_mask is None
        resolved = (
            first._resolve(x, memory, mask, memory_mask, rows, memory_rows) if plain else None
        )
        if resolved is not None:
            return _decode_rows(self.layers, self.norm, x, memory, resolved, query_pos, memory_pos)
        x = zero_padding(x, mask)  # once: every layer's output is 0 at padding again
        for layer in self.layers:
            x, _ = layer._forward_grid(x, memory, mask, memory_mask, query_pos, memory_pos,
                                       self_attn_mask, cross_attn_mask, False)  # fmt: skip
        return self._finish(x, mask)


class AttentionBlock(nn.Module):
    """A transformer block assembled from the parts it is given, as timm's ``Block``: an
    attention, an optional feed-forward part and optional norms, each residual on or off.

    The papers print blocks that are not the standard layer ([`TransformerEncoderLayer`][]):
    UASAN's decoder is ``Norm(t + MLP(t))`` after an attention without a residual, its context
    encoder ``Norm(MLP(Attn(x)))``, its visual refiner a bare attention, ARN's HA
    ``Linear(Attn(q)) + q``. Each is this block with its printed parts and residuals (post-norm):

        h = attn(x, key, value) (+ x if attn_residual);    h = norm1(h)
        y = mlp(h) (+ h if mlp_residual, + x if mlp_residual == "input");    y = norm2(y)

    With ``norm_first`` each norm is applied to its part's input instead (pre-norm, timm's
    form): ``h = attn(norm1(x)) (+ x)``, ``y = mlp(norm2(h)) (+ h)``.

    Args:
        attn: the attention, called as [`MaskedMultiheadAttention`][] (query, key, value,
            ``query_mask``, ``key_mask``, ``query_pos``, ``key_pos``; returns
            ``(output, weights)``).
        mlp: a row-wise map ``(..., D) -> (..., D)`` (an MLP, a linear map), or ``None``.
        norm1: the attention sub-layer's norm, or ``None``.
        norm2: the feed-forward sub-layer's norm, or ``None`` (needs ``mlp``).
        attn_residual: add the block's input to the attention's output.
        mlp_residual: ``True`` adds the feed-forward part's input, ``"input"`` the block's
            input, ``False`` nothing.
        norm_first: pre-norm instead of post-norm.

    Shape:
        - x: ``(..., L, D)``; key: ``(..., S, kdim)`` and value ``(..., S, vdim)`` (default:
          self-attention on ``x``)
        - mask: ``(..., L)`` bool, ``True`` = valid query; key_mask: ``(..., S)`` (default
          ``mask`` in self-attention); either may be its [`ValidRows`][dsgg_layers.rows.ValidRows]:
          with ``mask`` as rows, the row-wise parts run on the valid rows only
        - pos, key_pos: broadcastable to ``x`` and ``key`` (``key_pos`` defaults to ``pos`` in
          self-attention)
        - output: ``(..., L, D)``, 0 at invalid queries

    Raises:
        TypeError: a part is not an ``nn.Module``.
        ValueError: ``norm2`` without ``mlp``, an unknown ``mlp_residual``, or ``attn`` not
            ``D`` wide; inputs as [`MaskedMultiheadAttention`][].

    Examples:
        >>> D = 16
        >>> block = AttentionBlock(MaskedMultiheadAttention(D, 4), nn.Linear(D, D),
        ...                        norm2=nn.LayerNorm(D), attn_residual=False)  # Norm(t + W t)
        >>> x, mask = torch.randn(2, 5, D), torch.rand(2, 5) > 0.3
        >>> y = block(x, mask=mask)
        >>> y.shape, bool(y[~mask].abs().sum() == 0)
        (torch.Size([2, 5, 16]), True)
    """

    def __init__(
        self,
        attn: nn.Module,
        mlp: nn.Module | None = None,
        *,
        norm1: nn.Module | None = None,
        norm2: nn.Module | None = None,
        attn_residual: bool = True,
        mlp_residual: bool | Literal["input"] = True,
        norm_first: bool = False,
    ) -> None:
        super().__init__()
        for name, part in (("attn", attn), ("mlp", mlp), ("norm1", norm1), ("norm2", norm2)):
            if part is not None and not isinstance(part, nn.Module):
                raise TypeError(f"{name}: expected an nn.Module, got {type(part).__name__}")
        if attn is None:
            raise TypeError("attn: expected an nn.Module, got None")
        if norm2 is not None and mlp is None:
            raise ValueError("norm2: the feed-forward sub-layer's norm needs an mlp, got None")
        if mlp_residual not in (True, False, "input"):
            raise ValueError(f"mlp_residual: expected True, False or 'input', got {mlp_residual!r}")
        self.attn, self.mlp, self.norm1, self.norm2 = attn, mlp, norm1, norm2
        self.attn_residual, self.mlp_residual = bool(attn_residual), mlp_residual
        self.norm_first = bool(norm_first)
        self.d_model = getattr(attn, "embed_dim", None)

    def reset_parameters(self) -> None:
        """Each part's own reset (inside an ``nn.Sequential``: its layers')."""
        reset_children(self)

    def extra_repr(self) -> str:
        return (f"attn_residual={self.attn_residual}, mlp_residual={self.mlp_residual!r}, "
                f"norm_first={self.norm_first}")  # fmt: skip

    def forward(
        self,
        x: Tensor,
        key: Tensor | None = None,
        value: Tensor | None = None,
        *,
        mask: MaskOrRows | None = None,
        key_mask: MaskOrRows | None = None,
        pos: Tensor | None = None,
        key_pos: Tensor | None = None,
    ) -> Tensor:
        """The block on ``x``; see the class docstring."""
        if self.d_model is not None:
            check_tensor(x, "x", ("...", "L", self.d_model), dtype="float")
        if key is None:
            key_mask = mask if key_mask is None else key_mask
            key_pos = pos if key_pos is None else key_pos
        h = x
        if self.norm_first and self.norm1 is not None:
            h = rowwise(self.norm1, mask, x)
        a, _ = self.attn(h, key, value, query_mask=mask, key_mask=key_mask, query_pos=pos,
                         key_pos=key_pos)  # fmt: skip
        return rowwise(self._post, mask, a, x)

    def _post(self, a: Tensor, x: Tensor) -> Tensor:
        """Everything after the attention (row-wise): residuals, norms, the feed-forward part."""
        h = x + a if self.attn_residual else a
        if self.norm1 is not None and not self.norm_first:
            h = self.norm1(h)
        if self.mlp is None:
            return h
        y = self.mlp(self.norm2(h) if self.norm_first and self.norm2 is not None else h)
        if self.mlp_residual is True:
            y = y + h
        elif self.mlp_residual == "input":
            y = y + x
        if self.norm2 is not None and not self.norm_first:
            y = self.norm2(y)
        return y
