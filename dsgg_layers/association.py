"""ARN's association reasoning: predicate association parsing and hierarchical attention.

*End-to-End Entity-Predicate Association Reasoning for Dynamic Scene Graph Generation* (ARN,
Sec. 3.3-3.4, Fig. 3) refines each predicate branch (attention, spatial, contacting) of a
DETR-style predicate decoder with the other branches and the paired entities:

- [`AssociationAttention`][] (Eq. 8-9 = Eq. 11, written once): the other branches' features
  are each reduced by a linear layer and concatenated into the complementary cues ``Q_comp``;
  a cross-attention of ``Q_comp`` (with the object query position ``e^o``) over the
  spatio-temporal memory (``K = F_vit + p_t``, ``V = F_vit``) gives ``F_comp``. Because the query
  is a concatenation, its attention logits are the **sum** of the per-branch logits
  (``Q^T K = Q_S^T K + Q_C^T K``, Eq. 9): no branch dominates the weights by construction.
- [`PredicateAssociationParser`][] (PAP, Sec. 3.3): for every branch, the association
  attention above and the entity fusion ``MLP([F^pred + e^pred, F^E])`` (Eq. 10), ``e^pred`` a
  learned embedding of the branch; Table 4's variants as ``fusion="add"`` (entity features added)
  and ``"nonlinear"`` (a nonlinear map of the entity features added).
- [`HierarchicalAttention`][] (HA, Eq. 12-13): the second level, ``Q_cur`` (the fused branch
  feature) attends over the queries' cues ``Q_comp`` as keys with ``F_comp`` as values, then
  ``Linear(.) + Q_cur``.

Everything is batched over frames and queries; the branches (three in Action Genome) are a
short loop over modules, each with its own weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor, nn

from dsgg_layers._checks import check_choice, check_positive, check_tensor
from dsgg_layers._ops import zero_padding
from dsgg_layers.attention import AttentionBlock, MaskedMultiheadAttention
from dsgg_layers.rows import MaskOrRows, ValidRows, rowwise, split_mask

__all__ = [
    "AssociationAttention",
    "AssociationReasoning",
    "HierarchicalAttention",
    "PredicateAssociationParser",
]

Fusion = Literal["arn", "add", "nonlinear"]


class AssociationAttention(nn.Module):
    """A predicate branch's queries, plus what the other branches found, read the image
    memory (ARN's association attention, Eq. 8-9, 11).

    ``Q_comp = [R_1 F_1, ..., R_k F_k]`` (each of the ``k`` other branches reduced to
    ``D / k`` by its own linear map ``R_i``, concatenated), then
    ``F_comp = Attn((Q_comp + e^o) W_q, (F_vit + p_t) W_k, F_vit W_v)``. The logits are linear in
    the concatenated query, so they equal the sum over branches of the logits each branch's
    block alone would give (Eq. 9; tested against that sum).

    Args:
        d_model: width ``D`` of the branch features and of the memory.
        nhead: attention heads.
        num_cues: ``k``, the other branches (2 for Action Genome's three groups); must divide
            ``D``.
        dropout: attention dropout.

    Shape:
        - cues: ``k`` tensors ``(..., Q, D)``
        - memory: ``(..., S, D)``; memory_pos: broadcastable to it (``p_t``)
        - query_pos: broadcastable to ``(..., Q, D)`` (``e^o``)
        - query_mask: ``(..., Q)``; memory_mask: ``(..., S)`` bool, ``True`` = valid
        - output: ``(F_comp, Q_comp)``, both ``(..., Q, D)`` (0 at masked queries)

    Raises:
        TypeError, ValueError: a shape disagrees, the wrong number of cues is given, or ``D`` is
            not divisible by ``num_cues`` or ``nhead``.

    Examples:
        >>> att = AssociationAttention(16, 4, num_cues=2)
        >>> spatial, contacting = torch.randn(2, 10, 16), torch.randn(2, 10, 16)  # (frames, Q, D)
        >>> memory = torch.randn(2, 49, 16)                                      # 7 x 7 features
        >>> f_comp, q_comp = att([spatial, contacting], memory)
        >>> f_comp.shape, q_comp.shape
        (torch.Size([2, 10, 16]), torch.Size([2, 10, 16]))
    """

    def __init__(self, d_model: int, nhead: int, num_cues: int = 2, *, dropout: float = 0.0):
        super().__init__()
        check_positive(d_model, "d_model")
        check_positive(num_cues, "num_cues")
        if d_model % num_cues:
            raise ValueError(f"d_model: expected a multiple of num_cues={num_cues}, got {d_model}")
        self.d_model, self.num_cues = d_model, num_cues
        self.reduce = nn.ModuleList(nn.Linear(d_model, d_model // num_cues)
                                    for _ in range(num_cues))  # fmt: skip
        self.attn = MaskedMultiheadAttention(d_model, nhead, dropout=dropout)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """PyTorch's default for the reductions; the attention's own reset."""
        for lin in self.reduce:
            lin.reset_parameters()
        self.attn.reset_parameters()

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, num_cues={self.num_cues}"

    def cues(self, others: Sequence[Tensor]) -> Tensor:
        """``Q_comp``: the other branches reduced and concatenated, ``(..., Q, D)``."""
        self._check_cues(others)
        return self._cues(*others)

    def _check_cues(self, others: Sequence[Tensor]) -> None:
        if len(others) != self.num_cues:
            raise ValueError(f"cues: expected {self.num_cues} branch features, got {len(others)}")
        for i, x in enumerate(others):
            check_tensor(x, f"cues[{i}]", (*others[0].shape[:-1], self.d_model), dtype="float")

    def _cues(self, *others: Tensor) -> Tensor:
        return torch.cat([r(x) for r, x in zip(self.reduce, others, strict=True)], -1)

    def forward(
        self,
        others: Sequence[Tensor],
        memory: Tensor,
        *,
        memory_pos: Tensor | None = None,
        query_pos: Tensor | None = None,
        query_mask: MaskOrRows | None = None,
        memory_mask: MaskOrRows | None = None,
    ) -> tuple[Tensor, Tensor]:
        """``(F_comp, Q_comp)``; see the class docstring. Masks may be
        [`ValidRows`][dsgg_layers.rows.ValidRows]: then every projection runs on the valid
        rows."""
        self._check_cues(others)
        split_mask(query_mask, name="query_mask")  # bool tensors or ValidRows, named otherwise
        split_mask(memory_mask, name="memory_mask")
        # padded rows never reach a weight (0 * NaN would reach a gradient)
        q_comp = rowwise(self._cues, query_mask, *others)
        check_tensor(memory, "memory", (*q_comp.shape[:-2], "S", self.d_model), dtype="float")
        if not isinstance(memory_mask, ValidRows):  # rows are gathered: padding never read
            memory = zero_padding(memory, memory_mask)
        f_comp, _ = self.attn(
            q_comp, memory, memory, query_mask=query_mask, key_mask=memory_mask,
            query_pos=query_pos, key_pos=memory_pos,
        )  # fmt: skip
        return f_comp, q_comp


class HierarchicalAttention(nn.Module):
    """Each branch attends to the other branches' queries to refine its own (ARN's
    hierarchical attention, HA, Eq. 12-13): ``Linear(Attn(Q_cur, Q_comp, F_comp)) + Q_cur``.

    Each query's current-branch feature ``Q_cur`` attends over the complementary cues ``Q_comp``
    of the frame's queries (keys) and carries their level-1 outputs ``F_comp`` (values; the
    first level is [`AssociationAttention`][]). Eq. 12 prints the value as ``F_sup``, a
    symbol the paper never defines; its text says the level-1 output ``F_comp``, which is used.
    Eq. 13 adds the attention output itself (``Linear(F) + F``) while the text adds the input
    ``Q_cur``: ``residual="query"`` (default, the text; a residual around the whole block, as
    every transformer sublayer) or ``"output"`` (Eq. 13 as printed).

    Args:
        d_model: width ``D``.
        nhead: attention heads.
        dropout: attention dropout.
        residual: ``"query"`` or ``"output"``.

    Shape:
        - current, cues, comp: ``(..., Q, D)``; mask: ``(..., Q)`` bool
        - output: ``(..., Q, D)`` (0 at masked queries)

    Raises:
        TypeError, ValueError: a shape disagrees or an option is invalid.

    Examples:
        >>> ha = HierarchicalAttention(16, 4)
        >>> cur, cues, comp = torch.randn(3, 2, 10, 16).unbind(0)
        >>> ha(cur, cues, comp).shape
        torch.Size([2, 10, 16])
    """

    def __init__(
        self,
        d_model: int,
        nhead: int,
        *,
        dropout: float = 0.0,
        residual: Literal["query", "output"] = "query",
    ) -> None:
        super().__init__()
        check_choice(residual, "residual", ("query", "output"))
        self.d_model, self.residual = d_model, residual
        self.layer = AttentionBlock(  # Linear(Attn(Q_cur, Q_comp, F_comp)) + Q_cur (or + F)
            MaskedMultiheadAttention(d_model, nhead, dropout=dropout),
            nn.Linear(d_model, d_model),
            attn_residual=False,
            mlp_residual="input" if residual == "query" else True,
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The attention's own reset; PyTorch's default for the linear map."""
        self.layer.reset_parameters()

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, residual={self.residual!r}"

    def forward(
        self, current: Tensor, cues: Tensor, comp: Tensor, mask: MaskOrRows | None = None
    ) -> Tensor:
        """Level 2 and the linear map with its residual."""
        dims: dict[str, tuple[int, str]] = {}
        check_tensor(current, "current", ("...", "Q", self.d_model), dims=dims, dtype="float")
        check_tensor(cues, "cues", tuple(current.shape), dtype="float")
        check_tensor(comp, "comp", tuple(current.shape), dtype="float")
        split_mask(mask)
        if not isinstance(mask, ValidRows):  # rows are gathered: padding never read
            current, cues, comp = (zero_padding(x, mask) for x in (current, cues, comp))
        return self.layer(current, cues, comp, mask=mask, key_mask=mask)


class PredicateAssociationParser(nn.Module):
    """Each predicate branch reads the memory with the other branches' cues, and its feature is
    fused with the paired subject-object feature (ARN's predicate association parser, PAP,
    Sec. 3.3).

    For branch ``b`` with feature ``F^b`` and the paired-entity feature ``F^E`` (e.g. the sum
    or concatenation of the subject and object query outputs, projected to ``D``):

    - ``F_comp^b, Q_comp^b = AssociationAttention_b(others, memory)`` (Eq. 8-9, 11);
    - ``F_fusion^b = MLP([F^b + e^b, F^E])`` (Eq. 10; ``fusion="arn"``), ``e^b`` a learned
      ``(D,)`` embedding of the branch; ``"add"``: ``F^b + F^E``; ``"nonlinear"``:
      ``F^b + MLP(F^E)`` (the paper's Table 4 alternatives; their exact form is not given).

    ``forward`` returns, per branch, ``(F_fusion, Q_comp, F_comp)``: the inputs of
    [`HierarchicalAttention`][]. [`AssociationReasoning`][] chains the two.

    Args:
        d_model: width ``D``.
        nhead: attention heads.
        num_branches: predicate branches (Action Genome: 3).
        fusion: ``"arn"`` (default), ``"add"`` or ``"nonlinear"``.
        dropout: attention dropout.

    Shape:
        - branches: ``num_branches`` tensors ``(..., Q, D)``; entity: ``(..., Q, D)``
        - memory: ``(..., S, D)``; memory_pos, query_pos, masks as [`AssociationAttention`][]
        - output: ``num_branches`` tuples of three ``(..., Q, D)`` tensors

    Raises:
        TypeError, ValueError: a shape disagrees or an option is invalid.

    Examples:
        >>> pap = PredicateAssociationParser(16, 4, num_branches=3)
        >>> branches = [torch.randn(2, 10, 16) for _ in range(3)]
        >>> out = pap(branches, torch.randn(2, 10, 16), torch.randn(2, 49, 16))
        >>> len(out), [t.shape for t in out[0]][0]
        (3, torch.Size([2, 10, 16]))
    """

    def __init__(
        self,
        d_model: int,
        nhead: int,
        num_branches: int = 3,
        *,
        fusion: Fusion = "arn",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        check_choice(fusion, "fusion", ("arn", "add", "nonlinear"))
        if isinstance(num_branches, bool) or not isinstance(num_branches, int) or num_branches < 2:
            raise ValueError(f"num_branches: expected an int >= 2, got {num_branches!r}")
        self.d_model, self.num_branches, self.fusion = d_model, num_branches, fusion
        self.attention = nn.ModuleList(
            AssociationAttention(d_model, nhead, num_branches - 1, dropout=dropout)
            for _ in range(num_branches)
        )
        self.branch_embedding = nn.Parameter(torch.zeros(num_branches, d_model))
        in_features = 2 * d_model if fusion == "arn" else d_model
        self.fuse = (
            None
            if fusion == "add"
            else nn.ModuleList(
                nn.Sequential(nn.Linear(in_features, d_model), nn.ReLU(),
                              nn.Linear(d_model, d_model))
                for _ in range(num_branches)
            )
        )  # fmt: skip
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Attention resets, default linear maps, branch embeddings ~ N(0, 0.02) (DETR's
        learned-embedding scale)."""
        for att in self.attention:
            att.reset_parameters()
        if self.fuse is not None:
            for mlp in self.fuse:
                for m in mlp:
                    if isinstance(m, nn.Linear):
                        m.reset_parameters()
        nn.init.normal_(self.branch_embedding, std=0.02)

    def no_weight_decay(self) -> set[str]:
        """The branch embeddings are learned tokens: no weight decay."""
        return {"branch_embedding"}

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, num_branches={self.num_branches}, fusion={self.fusion!r}"

    def forward(
        self,
        branches: Sequence[Tensor],
        entity: Tensor,
        memory: Tensor,
        *,
        memory_pos: Tensor | None = None,
        query_pos: Tensor | None = None,
        query_mask: MaskOrRows | None = None,
        memory_mask: MaskOrRows | None = None,
    ) -> list[tuple[Tensor, Tensor, Tensor]]:
        """``(F_fusion, Q_comp, F_comp)`` of every branch."""
        if len(branches) != self.num_branches:
            raise ValueError(
                f"branches: expected {self.num_branches} branch features, got {len(branches)}"
            )
        shape = tuple(branches[0].shape)
        for i, x in enumerate(branches):
            check_tensor(x, f"branches[{i}]", (*shape[:-1], self.d_model), dtype="float")
        check_tensor(entity, "entity", shape, dtype="float")
        split_mask(query_mask, name="query_mask")
        out = []
        for b, current in enumerate(branches):
            others = [x for i, x in enumerate(branches) if i != b]
            f_comp, q_comp = self.attention[b](
                others, memory, memory_pos=memory_pos, query_pos=query_pos,
                query_mask=query_mask, memory_mask=memory_mask,
            )  # fmt: skip
            fused = rowwise(lambda x, e, b=b: self._fuse(b, x, e), query_mask, current, entity)
            out.append((fused, q_comp, f_comp))
        return out

    def _fuse(self, b: int, current: Tensor, entity: Tensor) -> Tensor:
        """Branch ``b``'s feature joined with the entity feature (``fusion``)."""
        if self.fusion == "arn":
            return self.fuse[b](torch.cat((current + self.branch_embedding[b], entity), -1))
        if self.fusion == "nonlinear":
            return current + self.fuse[b](entity)
        return current + entity


class AssociationReasoning(nn.Module):
    """The predicate branches exchange cues twice, through the memory (PAP) and through each
    other's queries (HA): ARN's last predicate-decoder stage (Fig. 3).

    Args:
        d_model: width ``D``.
        nhead: attention heads.
        num_branches: predicate branches (Action Genome: 3).
        fusion: PAP's entity fusion (``"arn"``, ``"add"``, ``"nonlinear"``).
        hierarchical: apply HA (``False``: PAP's fused features only, the ``+ PAP`` row of
            ARN's Table 3).
        dropout: attention dropout.
        residual: HA's residual (see [`HierarchicalAttention`][]).

    Shape:
        As [`PredicateAssociationParser`][]; output: the refined ``(..., Q, D)`` feature of
        every branch.

    Raises:
        TypeError, ValueError: as the two blocks.

    Examples:
        >>> arn = AssociationReasoning(16, 4)
        >>> out = arn([torch.randn(2, 10, 16) for _ in range(3)], torch.randn(2, 10, 16),
        ...           torch.randn(2, 49, 16))
        >>> [o.shape for o in out][0]
        torch.Size([2, 10, 16])
    """

    def __init__(
        self,
        d_model: int,
        nhead: int,
        num_branches: int = 3,
        *,
        fusion: Fusion = "arn",
        hierarchical: bool = True,
        dropout: float = 0.0,
        residual: Literal["query", "output"] = "query",
    ) -> None:
        super().__init__()
        self.pap = PredicateAssociationParser(d_model, nhead, num_branches, fusion=fusion,
                                              dropout=dropout)  # fmt: skip
        self.ha = (
            nn.ModuleList(HierarchicalAttention(d_model, nhead, dropout=dropout,
                                                residual=residual)
                          for _ in range(num_branches))
            if hierarchical
            else None
        )  # fmt: skip

    def reset_parameters(self) -> None:
        """Reset PAP and HA."""
        self.pap.reset_parameters()
        if self.ha is not None:
            for ha in self.ha:
                ha.reset_parameters()

    def forward(
        self,
        branches: Sequence[Tensor],
        entity: Tensor,
        memory: Tensor,
        *,
        memory_pos: Tensor | None = None,
        query_pos: Tensor | None = None,
        query_mask: MaskOrRows | None = None,
        memory_mask: MaskOrRows | None = None,
    ) -> list[Tensor]:
        """The refined feature of every branch."""
        parsed = self.pap(branches, entity, memory, memory_pos=memory_pos, query_pos=query_pos,
                          query_mask=query_mask, memory_mask=memory_mask)  # fmt: skip
        if self.ha is None:
            return [fused for fused, _, _ in parsed]
        return [ha(fused, cues, comp, query_mask)
                for ha, (fused, cues, comp) in zip(self.ha, parsed, strict=True)]  # fmt: skip
