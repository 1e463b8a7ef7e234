"""UASAN's public relation head: four branches scored token by token (the code's form).

The UASAN paper (*Open-Vocabulary Video Scene Graph Generation via Union-aware Semantic
Alignment*, Sec. 3.2, Eq. 4-11) pools a pair's tokens into one relation feature
([`UnionRelationPredictor`][dsgg_layers.union.UnionRelationPredictor]) and classifies it by cosine
against prompt embeddings. Its public code (``DistillModel_v13.forward_inference_bsz1``) computes
something else, offered here under its own names so that a user can reproduce the code or load its
checkpoints:

- [`token_cosine_logits`][]: each of a pair's tokens is scored by cosine against the class
  embeddings (selected by the pair's motion group), the scores are **averaged over the tokens**
  and divided by a temperature. Because the cosine is linear in the unit token, this is the dot
  product of the class's unit embedding with the **mean of the unit tokens** (not re-normalised),
  which is how it is computed: one matrix product a group, no ``(pairs, classes, tokens)``
  tensor.
- [`UnionRelationHead`][]: the code's whole head on top of the concept tokens. The sentence
  ``[F_S; F_O; U; pos; giou]`` goes through a 3-layer encoder with a position per token slot
  ([`SemanticAwareContextEncoder`][] with ``positions="slot"``) and a
  3-layer DETR-style query decoder ([`RelationQueryDecoder`][]); four
  branches (pair, pair-encoded, union, union-encoded) are scored with
  [`token_cosine_logits`][], two learned temperatures (pair, union); the prediction is the
  **sum of the four sigmoids**.
- [`uasan_head_state_dict`][]: a checkpoint's parameter names (the code's modules) mapped to
  the head's, for ``head.load_state_dict``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dsgg_layers._checks import check_group, check_positive, check_tensor
from dsgg_layers._ops import mlp, reset_children, zero_padding
from dsgg_layers.rows import MaskOrRows, rowwise, split_mask
from dsgg_layers.union import RelationQueryDecoder, SemanticAwareContextEncoder

__all__ = [
    "UnionHeadOutput",
    "UnionRelationHead",
    "token_cosine_logits",
    "uasan_head_state_dict",
]


def token_cosine_logits(
    tokens: Tensor,
    class_embeddings: Tensor,
    temperature: Tensor | float = 1.0,
    *,
    group: Tensor | None = None,
    mask: Tensor | None = None,
) -> Tensor:
    """The mean over a row's tokens of ``cos(token, class) / temperature`` (UASAN's code).

    With ``G`` sets of class embeddings ``(G, C, E)`` (one a motion group, RePro's and UASAN's
    grouped prompts), each row uses the set ``group`` names. Since
    ``mean_l cos(t_l, c) = (mean_l t_l / |t_l|) . c / |c|``, the tokens are averaged after
    normalisation and scored once: ``G`` matrix products, the row's set picked afterwards.

    Args:
        tokens: a row's tokens.
        class_embeddings: ``(C, E)``, or ``(G, C, E)`` with ``group``.
        temperature: a positive number or a scalar tensor (a learned temperature).
        group: ``(...)`` long in ``[0, G)``: each row's set (needed when ``G > 1``).
        mask: ``(..., L)`` bool, ``True`` = a valid token; the mean is over valid tokens
            (a row without one gets 0).

    Shape:
        - tokens: ``(..., L, E)``
        - output: ``(..., C)``

    Raises:
        TypeError, ValueError: shapes or dtypes disagree, a group id is out of range, or the
            temperature is not positive.

    Examples:
        >>> tokens = torch.tensor([[[1.0, 0.0], [0.0, 2.0]]])     # one row, two tokens
        >>> classes = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
        >>> token_cosine_logits(tokens, classes)                  # (1 + 0) / 2, (0.71 + 0.71) / 2
        tensor([[0.5000, 0.7071]])
    """
    check_tensor(tokens, "tokens", ("...", "L", "E"), dtype="float")
    E = tokens.shape[-1]
    check_tensor(class_embeddings, "class_embeddings", None, dtype="float")
    if class_embeddings.dim() not in (2, 3) or class_embeddings.shape[-1] != E:
        raise ValueError(
            f"class_embeddings: expected (C, {E}) or (G, C, {E}) for tokens of width {E}, got "
            f"{tuple(class_embeddings.shape)}"
        )
    if isinstance(temperature, Tensor):
        check_tensor(temperature, "temperature", None, dtype="float")
        if temperature.numel() != 1:
            raise ValueError(
                f"temperature: expected one value, got shape {tuple(temperature.shape)}"
            )
        temperature = temperature.reshape(())
    else:
        check_positive(temperature, "temperature", integer=False)
    lead = tuple(tokens.shape[:-2])
    groups = class_embeddings.shape[0] if class_embeddings.dim() == 3 else 1
    check_group(group if class_embeddings.dim() == 3 else None, lead, groups)
    if mask is None:
        mean = F.normalize(tokens, dim=-1).mean(-2)
    else:
        check_tensor(mask, "mask", tuple(tokens.shape[:-1]), dtype="bool")
        # masked tokens are zeroed before any arithmetic: garbage there reaches no gradient
        unit = F.normalize(zero_padding(tokens, mask), dim=-1)
        count = mask.sum(-1, keepdim=True).clamp(min=1).to(unit.dtype)
        mean = unit.sum(-2) / count
    classes = F.normalize(class_embeddings, dim=-1).to(mean.dtype)
    if classes.dim() == 2:
        logits = mean @ classes.T
    else:
        every = torch.einsum("...e,gce->...gc", mean, classes)  # (..., G, C)
        pick = group.view(*lead, 1, 1).expand(*lead, 1, classes.shape[1])  # type: ignore[union-attr]
        logits = every.gather(-2, pick).squeeze(-2)
    return logits / temperature


class UnionHeadOutput(NamedTuple):
    """What [`UnionRelationHead`][] returns: the prediction and each branch's logits.

    Examples:
        >>> out = UnionHeadOutput(*[torch.zeros(3, 5)] * 5)
        >>> out.scores.shape
        torch.Size([3, 5])
    """

    scores: Tensor
    """``(..., C)``: the sum of the four branches' sigmoids (in ``[0, 4]``; the code's score)."""
    pair: Tensor
    """``(..., C)``: subject-object tokens + relative position, pair classes."""
    pair_encoded: Tensor
    """``(..., C)``: the pair branch plus the encoded subject-object tokens."""
    union: Tensor
    """``(..., C)``: union tokens + position and GIoU tokens, union classes."""
    union_encoded: Tensor
    """``(..., C)``: the union branch plus the encoded union tokens and the decoded query."""


class UnionRelationHead(nn.Module):
    """UASAN's public relation head (``DistillModel_v13.forward_inference_bsz1``), from the
    concept tokens to the predicate scores.

    With ``s, o, u`` a pair's unit subject, object and union tokens ``(L, d)``, ``p`` its 12-d
    relative position and ``g`` its ``[giou_s, giou_e, giou_e - giou_s]``, and ``n(x)`` the L2
    normalisation:

    - ``u <- n(phi_u(u))``; the position and GIoU tokens ``p_u = n(phi_pu(p))``,
      ``g_u = n(phi_g(g))``;
    - the sentence ``[s; o; u; p_u; g_u]`` through the slot-position encoder (``num_layers``)
      and the query decoder (``num_layers``, the slot table as memory positions): encoded
      ``s', o', u'`` and the decoded query ``q``;
    - pair: ``n(n(phi_so([s, o])) + n(phi_p(p)))``, scored against the pair classes;
    - pair-encoded: the same plus ``n(phi_enc([s', o']))``;
    - union: ``n(u + p_u + g_u)``, scored against the union classes;
    - union-encoded: ``n(u + p_u + g_u + n(u' + q))``;

    each by [`token_cosine_logits`][] with the pair's motion group, the pair branches over
    `temperature`, the union branches over `union_temperature`; ``scores`` is the
    sum of the four sigmoids. The widths follow the code's, scaled by ``d`` (its ``d = 256``):
    ``phi_so`` and ``phi_enc`` ``2d -> 4d -> 4d -> 2d`` (no last bias), ``phi_p``
    ``12 -> d -> 2d`` (no last bias), ``phi_pu`` ``12 -> d/2 -> d``, ``phi_g`` ``3 -> d/2 -> d``,
    ``phi_u`` ``d -> 2d -> d``; pair classes are ``2d`` wide (subject and object prompt
    features concatenated: [`GroupedPromptLearner`][dsgg_layers.prompts.GroupedPromptLearner]),
        union classes
    ``d``. ``union_in_dim`` adds the code's input projection of the union features
    (``union2embd``, ``union_in_dim -> 2d -> d``, normalised). The subject and object tokens are
    normalised on entry (the code's tokens come normalised). The code releases no training
    loss for this head; the library's reference assembly trains each branch's logits with a
    sigmoid focal loss.

    Args:
        d_model: token width ``d`` (the code: 256).
        nhead: attention heads (the code: 8).
        num_tokens: tokens of each of the subject, object and union parts (the code: 32).
        dim_feedforward: feed-forward width of the encoder and decoder (default ``d``, the code).
        dropout: dropout of the encoder and decoder (the code: 0.1).
        num_layers: encoder and decoder layers (the code: 3 each).
        position_dim: width of the relative-position feature (12).
        giou_dim: width of the GIoU feature (3).
        union_in_dim: width of raw union features to project (``None``: the union tokens come
            at ``d``).
        temperature: initial value of both temperatures (the code's config: 0.02125).
        query_groups: rows of the decoder's query-position table (the code: 1, one vector
            shared by the groups; see [`RelationQueryDecoder`][]).

    Shape:
        - subject, object, union: ``(..., L, d)`` (union ``(..., L, union_in_dim)`` with it)
        - relative: ``(..., position_dim)``; giou: ``(..., giou_dim)``
        - pair_classes: ``(C, 2d)`` or ``(G, C, 2d)``; union_classes: ``(C, d)`` or ``(G, C, d)``
        - group: ``(...)`` long, the motion group (needed with ``G > 1`` sets, or
          ``query_groups > 1``)
        - mask: ``(...)`` bool, ``True`` = valid pair
        - output: [`UnionHeadOutput`][], each ``(..., C)``; 0 at padded pairs

    Raises:
        TypeError, ValueError: shapes, dtypes or group ids are wrong (the message names the
            argument).

    Examples:
        >>> head = UnionRelationHead(16, nhead=4, num_tokens=3, num_layers=1).eval()
        >>> tok = lambda: torch.randn(5, 3, 16)                  # 5 pairs, 3 tokens a part
        >>> out = head(tok(), tok(), tok(), torch.randn(5, 12), torch.randn(5, 3),
        ...            pair_classes=torch.randn(6, 7, 32), union_classes=torch.randn(6, 7, 16),
        ...            group=torch.tensor([0, 1, 2, 3, 4]))
        >>> out.scores.shape, bool(((out.scores >= 0) & (out.scores <= 4)).all())
        (torch.Size([5, 7]), True)
    """

    def __init__(
        self,
        d_model: int = 256,
        nhead: int = 8,
        *,
        num_tokens: int = 32,
        dim_feedforward: int | None = None,
        dropout: float = 0.1,
        num_layers: int = 3,
        position_dim: int = 12,
        giou_dim: int = 3,
        union_in_dim: int | None = None,
        temperature: float = 0.02125,
        query_groups: int = 1,
    ) -> None:
        super().__init__()
        for value, name in ((d_model, "d_model"), (num_tokens, "num_tokens"),
                            (position_dim, "position_dim"), (giou_dim, "giou_dim")):  # fmt: skip
            check_positive(value, name)
        if d_model < 2:
            raise ValueError(f"d_model: expected at least 2 (phi_pu and phi_g are d/2 wide), "
                             f"got {d_model}")  # fmt: skip
        check_positive(temperature, "temperature", integer=False)
        d, ff = d_model, dim_feedforward or d_model
        self.d_model, self.num_tokens = d, num_tokens
        self.position_dim, self.giou_dim, self.union_in_dim = position_dim, giou_dim, union_in_dim
        self.initial_temperature = float(temperature)
        self.pair_proj = mlp(2 * d, 4 * d, 2 * d, depth=3, last_bias=False)
        self.encoded_pair_proj = mlp(2 * d, 4 * d, 2 * d, depth=3, last_bias=False)
        self.position_proj = mlp(position_dim, d, 2 * d, last_bias=False)
        self.union_position_proj = mlp(position_dim, d // 2, d)
        self.giou_proj = mlp(giou_dim, d // 2, d)
        if union_in_dim is not None:
            check_positive(union_in_dim, "union_in_dim")
            self.union_input = mlp(union_in_dim, 2 * d, d)
        self.union_proj = mlp(d, 2 * d, d)
        self.encoder = SemanticAwareContextEncoder(
            d, nhead, ff, dropout, num_layers=num_layers, positions="slot",
            num_slots=3 * num_tokens + 2,
        )  # fmt: skip
        self.decoder = RelationQueryDecoder(
            d, nhead, ff, dropout, num_layers=num_layers, num_groups=query_groups
        )
        self.temperature = nn.Parameter(torch.empty(()))
        self.union_temperature = nn.Parameter(torch.empty(()))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Projections: PyTorch's defaults; encoder and decoder: their own resets; both
        temperatures: ``temperature``."""
        reset_children(self)
        with torch.no_grad():
            self.temperature.fill_(self.initial_temperature)
            self.union_temperature.fill_(self.initial_temperature)

    def no_weight_decay(self) -> set[str]:
        """The slot table, the query positions and the temperatures."""
        return {"encoder.slot_positions", "decoder.query_pos", "temperature",
                "union_temperature"}  # fmt: skip

    def extra_repr(self) -> str:
        return (
            f"d_model={self.d_model}, num_tokens={self.num_tokens}, "
            f"union_in_dim={self.union_in_dim}"
        )

    def forward(
        self,
        subject: Tensor,
        object: Tensor,
        union: Tensor,
        relative: Tensor,
        giou: Tensor,
        *,
        pair_classes: Tensor,
        union_classes: Tensor,
        group: Tensor | None = None,
        mask: MaskOrRows | None = None,
    ) -> UnionHeadOutput:
        """Score every pair against the classes; see the class docstring.

        With ``mask`` a [`ValidRows`][dsgg_layers.rows.ValidRows] the whole head runs on the
        existing pairs only (it treats pairs independently) and scatters back.
        """
        mask, rows = split_mask(mask)
        d, L = self.d_model, self.num_tokens
        dims: dict[str, tuple[int, str]] = {}
        check_tensor(subject, "subject", ("...", L, d), dims=dims, dtype="float")
        lead = tuple(subject.shape[:-2])
        check_tensor(object, "object", (*lead, L, d), dtype="float")
        check_tensor(union, "union", (*lead, L, self.union_in_dim or d), dtype="float")
        check_tensor(relative, "relative", (*lead, self.position_dim), dtype="float")
        check_tensor(giou, "giou", (*lead, self.giou_dim), dtype="float")
        if mask is not None:
            check_tensor(mask, "mask", lead, dtype="bool")
        for value, name, width in ((pair_classes, "pair_classes", 2 * d),
                                   (union_classes, "union_classes", d)):  # fmt: skip
            check_tensor(value, name, None, dtype="float")
            if value.dim() not in (2, 3) or value.shape[-1] != width:
                raise ValueError(
                    f"{name}: expected (C, {width}) or (G, C, {width}), got {tuple(value.shape)}"
                )
        if pair_classes.shape[-2] != union_classes.shape[-2]:
            raise ValueError(
                f"union_classes: expected the {pair_classes.shape[-2]} classes of pair_classes, "
                f"got {union_classes.shape[-2]}"
            )
        if rows is not None:
            return rowwise(
                lambda *xs: self._score(*xs, pair_classes, union_classes, None),
                rows, subject, object, union, relative, giou, group,
            )  # fmt: skip
        return self._score(
            subject, object, union, relative, giou, group, pair_classes, union_classes, mask
        )

    def _score(
        self,
        subject: Tensor,
        object: Tensor,
        union: Tensor,
        relative: Tensor,
        giou: Tensor,
        group: Tensor | None,
        pair_classes: Tensor,
        union_classes: Tensor,
        mask: Tensor | None,
    ) -> UnionHeadOutput:
        """The head on checked inputs (a grid with ``mask``, or the valid rows without)."""
        L, lead = self.num_tokens, tuple(subject.shape[:-2])
        # padded pairs are zeroed on entry: nothing they hold reaches an output or a gradient
        subject, object, union, relative, giou = (
            zero_padding(x, mask) for x in (subject, object, union, relative, giou)
        )
        s, o = F.normalize(subject, dim=-1), F.normalize(object, dim=-1)
        if self.union_in_dim is not None:
            union = self.union_input(union)
        u = F.normalize(self.union_proj(F.normalize(union, dim=-1)), dim=-1)
        p_u = F.normalize(self.union_position_proj(relative), dim=-1).unsqueeze(-2)
        g_u = F.normalize(self.giou_proj(giou), dim=-1).unsqueeze(-2)
        enc = self.encoder(s, o, u, torch.cat((p_u, g_u), -2), mask=mask)
        S = enc.encoded.shape[-2]
        token_mask = None if mask is None else mask[..., None].expand(*lead, S)
        q_group = group if self.decoder.num_groups > 1 else None
        decoded = self.decoder(
            enc.encoded, token_mask, memory_pos=self.encoder.token_positions(S), group=q_group
        )
        enc_so = torch.cat((enc.encoded[..., :L, :], enc.encoded[..., L : 2 * L, :]), -1)

        so = F.normalize(self.pair_proj(torch.cat((s, o), -1)), dim=-1)
        rel = F.normalize(self.position_proj(relative), dim=-1).unsqueeze(-2)
        pair = F.normalize(so + rel, dim=-1)
        pair_enc = F.normalize(
            so + rel + F.normalize(self.encoded_pair_proj(enc_so), dim=-1), dim=-1
        )
        union_base = u + p_u + g_u
        union_t = F.normalize(union_base, dim=-1)
        union_enc = F.normalize(
            union_base + F.normalize(enc.union + decoded.unsqueeze(-2), dim=-1), dim=-1
        )
        logits = [
            token_cosine_logits(pair, pair_classes, self.temperature, group=group),
            token_cosine_logits(pair_enc, pair_classes, self.temperature, group=group),
            token_cosine_logits(union_t, union_classes, self.union_temperature, group=group),
            token_cosine_logits(union_enc, union_classes, self.union_temperature, group=group),
        ]
        logits = [zero_padding(x, mask) for x in logits]
        scores = zero_padding(sum(x.sigmoid() for x in logits), mask)
        return UnionHeadOutput(scores, *logits)  # type: ignore[arg-type]


# --------------------------------------------------------------------- checkpoint names

_PROJECTIONS = {
    "trajpair_proj": "pair_proj",
    "encode_proj": "encoded_pair_proj",
    "relpos2embd": "position_proj",
    "relpos2embd_1": "union_position_proj",
    "relgiou2embd": "giou_proj",
    "union2embd": "union_input",
    "union2embd_1": "union_proj",
}
_LAYER_PARTS = {
    "linear1": "linear1",
    "linear2": "linear2",
    "norm1": "norm1",
    "norm2": "norm2",
    "norm3": "norm3",
}


def _split_attention(
    out: dict[str, Tensor], src: Mapping[str, Tensor], code: str, ours: str
) -> None:
    """``nn.MultiheadAttention``'s packed ``in_proj`` -> the library's q/k/v projections."""
    w = src[f"{code}.in_proj_weight"]
    for name, part in zip(("q", "k", "v"), w.chunk(3, 0), strict=True):
        out[f"{ours}.{name}_proj.weight"] = part.clone()
    b = src.get(f"{code}.in_proj_bias")
    if b is not None:
        for name, part in zip(("q", "k", "v"), b.chunk(3, 0), strict=True):
            out[f"{ours}.{name}_proj.bias"] = part.clone()
    out[f"{ours}.out_proj.weight"] = src[f"{code}.out_proj.weight"].clone()
    if f"{code}.out_proj.bias" in src:
        out[f"{ours}.out_proj.bias"] = src[f"{code}.out_proj.bias"].clone()


def uasan_head_state_dict(
    state_dict: Mapping[str, Tensor], *, num_tokens: int = 32
) -> dict[str, Tensor]:
    """A UASAN checkpoint's relation-head parameters, named as [`UnionRelationHead`][]'s.

    Maps the code's modules (``DistillModel_v13``: ``trajpair_proj``, ``encode_proj``,
    ``relpos2embd``, ``relpos2embd_1``, ``relgiou2embd``, ``union2embd``, ``union2embd_1``,
    ``encoder_layers.i``, ``decoder_layers.i``, ``query_embed``, ``pos_embed``,
    ``temperature``, ``rel_temperature``; a module the code shares with its teacher is also
    found under ``teacher_model.``) to the head's. ``nn.MultiheadAttention``'s packed input
    projection is split into the library's query, key and value projections, and the slot
    table's rows are permuted from the code's sentence order ``[U; S; O; pos; giou]`` to the
    head's ``[S; O; U; pos; giou]``. Everything else (the Q-Former, the teacher, the class
    embeddings) is left out: the code's ``classifier_weights`` ``(G, C, 2d)`` and
    ``single_classifier_weights`` ``(G, C, d)`` are the head's ``pair_classes`` and
    ``union_classes``. Build the head with ``union_in_dim`` when the checkpoint has
    ``union2embd`` and you feed raw union features.

    Args:
        state_dict: the checkpoint (e.g. ``torch.load(path)["model_state_dict"]``).
        num_tokens: tokens of each part (the code: 32).

    Returns:
        ``{name: tensor}`` for ``head.load_state_dict`` (copies).

    Raises:
        KeyError: a parameter the head needs is missing (named).
        ValueError: the slot table does not have ``3 * num_tokens + 2`` rows.

    Examples:
        >>> head = UnionRelationHead(16, 4, num_tokens=2, num_layers=1)
        >>> mapped = uasan_head_state_dict(_code_names_example(head), num_tokens=2)
        >>> head.load_state_dict(mapped)
        <All keys matched successfully>
    """
    src = dict(state_dict)
    out: dict[str, Tensor] = {}

    def find(name: str) -> str:
        for candidate in (name, f"teacher_model.{name}"):
            if any(k.startswith(candidate + ".") for k in src):
                return candidate
        return ""

    for code, ours in _PROJECTIONS.items():
        prefix = find(code)
        if not prefix:
            if code == "union2embd":
                continue  # optional: only with union_in_dim
            raise KeyError(f"state_dict: no parameters of {code!r} (the head's {ours!r})")
        for key, value in src.items():
            if key.startswith(prefix + "."):
                out[f"{ours}.{key[len(prefix) + 1 :]}"] = value.clone()
    for code, ours, attentions in (
        ("encoder_layers", "encoder.encoder.layers", (("self_attn", "self_attn"),)),
        ("decoder_layers", "decoder.decoder.layers",
         (("self_attn", "self_attn"), ("multihead_attn", "cross_attn"))),
    ):  # fmt: skip
        indices = sorted({int(k.split(".")[1]) for k in src if k.startswith(code + ".")})
        if not indices:
            raise KeyError(f"state_dict: no {code!r}")
        for i in indices:
            for a_code, a_ours in attentions:
                _split_attention(out, src, f"{code}.{i}.{a_code}", f"{ours}.{i}.{a_ours}")
            for part_code, part_ours in _LAYER_PARTS.items():
                for leaf in ("weight", "bias"):
                    key = f"{code}.{i}.{part_code}.{leaf}"
                    if key in src:
                        out[f"{ours}.{i}.{part_ours}.{leaf}"] = src[key].clone()
    for key in ("pos_embed.weight", "query_embed.weight", "temperature", "rel_temperature"):
        if key not in src:
            raise KeyError(f"state_dict: no {key!r}")
    L = num_tokens
    pos = src["pos_embed.weight"]
    if pos.shape[0] != 3 * L + 2:
        raise ValueError(
            f"num_tokens: a slot table of {pos.shape[0]} rows is not 3 * {L} + 2 (pass the "
            "checkpoint's num_tokens)"
        )
    order = torch.cat((torch.arange(L, 3 * L), torch.arange(0, L), torch.arange(3 * L, 3 * L + 2)))
    out["encoder.slot_positions"] = pos[order].clone()
    out["decoder.query_pos"] = src["query_embed.weight"].clone()
    out["temperature"] = src["temperature"].reshape(()).clone()
    out["union_temperature"] = src["rel_temperature"].reshape(()).clone()
    return out


def _code_names_example(head: UnionRelationHead) -> dict[str, Tensor]:
    """The code's names for a head's parameters (the inverse map; for the docstring example
    and tests)."""
    sd = head.state_dict()
    out: dict[str, Tensor] = {}
    for code, ours in _PROJECTIONS.items():
        for key, value in sd.items():
            if key.startswith(ours + "."):
                out[f"{code}.{key[len(ours) + 1 :]}"] = value
    for code, ours, attentions in (
        ("encoder_layers", "encoder.encoder.layers", (("self_attn", "self_attn"),)),
        ("decoder_layers", "decoder.decoder.layers",
         (("self_attn", "self_attn"), ("multihead_attn", "cross_attn"))),
    ):  # fmt: skip
        n = len({k.split(".")[3] for k in sd if k.startswith(ours + ".")})
        for i in range(n):
            for a_code, a_ours in attentions:
                pre = f"{ours}.{i}.{a_ours}"
                out[f"{code}.{i}.{a_code}.in_proj_weight"] = torch.cat(
                    [sd[f"{pre}.{x}_proj.weight"] for x in "qkv"]
                )
                out[f"{code}.{i}.{a_code}.in_proj_bias"] = torch.cat(
                    [sd[f"{pre}.{x}_proj.bias"] for x in "qkv"]
                )
                out[f"{code}.{i}.{a_code}.out_proj.weight"] = sd[f"{pre}.out_proj.weight"]
                out[f"{code}.{i}.{a_code}.out_proj.bias"] = sd[f"{pre}.out_proj.bias"]
            for part in _LAYER_PARTS:
                for leaf in ("weight", "bias"):
                    key = f"{ours}.{i}.{part}.{leaf}"
                    if key in sd:
                        out[f"{code}.{i}.{part}.{leaf}"] = sd[key]
    L = head.num_tokens
    back = torch.cat((torch.arange(2 * L, 3 * L), torch.arange(0, 2 * L),
                      torch.arange(3 * L, 3 * L + 2)))  # fmt: skip
    out["pos_embed.weight"] = sd["encoder.slot_positions"][back]
    out["query_embed.weight"] = sd["decoder.query_pos"]
    out["temperature"] = sd["temperature"].reshape(1)
    out["rel_temperature"] = sd["union_temperature"].reshape(1)
    return out
