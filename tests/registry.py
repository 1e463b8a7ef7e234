"""The block registry: one entry a block, driving the shared battery (tests/test_battery.py).

An entry names the block and its paper, builds a small instance (dropout 0, so training mode
computes what evaluation mode does), makes example inputs from a generator and a dtype, and says
which inputs carry padding (the entries a mask marks invalid) and which output rows are valid.
The battery then checks every entry the same way: smoke and shapes, garbage at padding never
reaching a valid output or a parameter's gradient (the valid outputs bit-identical), gradcheck in
float64, and ``torch.compile(fullgraph=True)`` == eager in evaluation and training mode.

``UNREGISTERED`` lists the exported modules the battery does not cover yet; a test checks that
it is exactly the exported ``nn.Module`` classes without an entry, so a new block must register
(or be listed here on purpose) and the list can only shrink.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import dsgg_layers as L

Inputs = tuple[tuple[Any, ...], dict[str, Any]]


@dataclass
class Entry:
    """One block in the battery.

    ``inputs(g, dtype) -> (args, kwargs)``; ``padded(args, kwargs) -> [(tensor, valid), ...]``:
    inputs whose entries where ``valid`` (over the tensor's leading dims) is False may hold
    garbage; ``outputs(out) -> [tensor, ...]`` the outputs to compare and ``valid_out(args,
    kwargs) -> [mask or None, ...]`` their valid rows (``None``: all).
    """

    name: str
    paper: str
    make: Callable[[], nn.Module]
    inputs: Callable[[torch.Generator, torch.dtype], Inputs]
    padded: Callable[[tuple, dict], list[tuple[Tensor, Tensor]]] | None = None
    """``None``: the block takes no padding (the garbage test does not apply)."""
    outputs: Callable[[Any], list[Tensor]] = lambda out: [out]
    valid_out: Callable[[tuple, dict], list[Tensor | None]] = lambda a, k: [None]
    grad_inputs: Sequence[int] = (0,)
    """Positions in ``args`` of the float tensors gradcheck differentiates."""
    mask_at: tuple[int | str, ...] = ()
    """The mask arguments (a position in ``args`` or a name in ``kwargs``): each takes a bool
    tensor or its ``ValidRows``."""
    tags: tuple[str, ...] = field(default_factory=tuple)
    skip: dict[str, str] = field(default_factory=dict)
    """Battery checks that do not apply: ``{"gradcheck" | "compile": the reason}``."""


def _r(g: torch.Generator, dtype: torch.dtype, *shape: int) -> Tensor:
    return torch.randn(*shape, generator=g, dtype=dtype)


def _mask(g: torch.Generator, *shape: int, p: float = 0.7) -> Tensor:
    m = torch.rand(*shape, generator=g) < p
    m.view(-1, shape[-1])[:, 0] = True  # no fully padded row unless a test wants one
    return m


D = 8


def _tracks(g, dtype):  # (B, T, P, D) with a (B, T, P) mask
    x = _r(g, dtype, 2, 4, 3, D)
    return (x, _mask(g, 2, 4, 3)), {}


def _sentence(g, dtype, n=(2, 2, 2, 2)):
    parts = [_r(g, dtype, 3, k, D) for k in n]
    mask = torch.tensor([True, False, True])
    return tuple(parts), {"mask": mask}


def _pair_padding(a, k):
    return [(x, k["mask"]) for x in a]


def _head_inputs(g, dtype):
    L_ = 2
    s, o, u = (_r(g, dtype, 4, L_, D) for _ in range(3))
    rel, giou = _r(g, dtype, 4, 12), _r(g, dtype, 4, 3)
    kw = {
        "pair_classes": F.normalize(_r(g, dtype, 6, 5, 2 * D), dim=-1),
        "union_classes": F.normalize(_r(g, dtype, 6, 5, D), dim=-1),
        "group": torch.randint(0, 6, (4,), generator=g),
        "mask": torch.tensor([True, True, False, True]),
    }
    return (s, o, u, rel, giou), kw


def _multilabel(g, dtype):  # logits, 0/1 targets, a per-sample mask
    targets = (torch.rand(6, 3, generator=g) > 0.5).to(dtype)
    return (_r(g, dtype, 6, 3), targets, torch.tensor([True, False, True, True, False, True])), {}


def _branches(g, dtype):  # ARN: three predicate branches, the entity feature, the memory
    branches = tuple(_r(g, dtype, 2, 4, D) for _ in range(3))
    masks = {"query_mask": _mask(g, 2, 4), "memory_mask": _mask(g, 2, 6)}
    return (branches, _r(g, dtype, 2, 4, D), _r(g, dtype, 2, 6, D)), masks


def _branch_padding(a, k):
    queries = [*a[0], a[1]]
    return [*((b, k["query_mask"]) for b in queries), (a[2], k["memory_mask"])]


def _rows(g, dtype):  # (N, L, D) rows of tokens with an (N, L) mask
    return (_r(g, dtype, 3, 5, D), _mask(g, 3, 5)), {}


def _memory(g, dtype):  # queries (N, L, D), memory (N, S, D) and their masks
    return (_r(g, dtype, 3, 4, D), _r(g, dtype, 3, 6, D), _mask(g, 3, 4), _mask(g, 3, 6)), {}


def masked(name: str, paper: str, make: Callable[[], nn.Module], inputs=_rows, *,
           pooled: bool = False, **kw: Any) -> Entry:  # fmt: skip
    """A block called ``(x, mask, ...)``: ``x`` padded where ``mask`` is False; valid outputs
    at ``mask`` (or, ``pooled``, at the rows with some valid entry)."""
    kw.setdefault("valid_out", lambda a, k: [a[1].any(-1) if pooled else a[1]])
    kw.setdefault("mask_at", (1,))
    return Entry(name, paper, make, inputs, padded=lambda a, k: [(a[0], a[1])], **kw)


def decoder(name: str, paper: str, make: Callable[[], nn.Module]) -> Entry:
    """A block called ``(x, memory, mask, memory_mask)``."""
    return Entry(name, paper, make, _memory, padded=lambda a, k: [(a[0], a[2]), (a[1], a[3])],
                 valid_out=lambda a, k: [a[2]], grad_inputs=(0, 1), mask_at=(2, 3))  # fmt: skip


def multilabel_loss(name: str, paper: str, make: Callable[[], nn.Module]) -> Entry:
    """A loss called ``(logits, targets, mask)`` over samples."""
    return Entry(name, paper, make, _multilabel, padded=lambda a, k: [(a[0], a[2])], mask_at=(2,))


def branches(name: str, paper: str, make: Callable[[], nn.Module], outputs) -> Entry:
    """An ARN block over three predicate branches, the entity feature and the memory."""
    count = len(outputs(make()(*_branches(torch.Generator(), torch.float32)[0],
                                **_branches(torch.Generator(), torch.float32)[1])))  # fmt: skip
    return Entry(name, paper, make, _branches, padded=_branch_padding, outputs=outputs,
                 valid_out=lambda a, k: [k["query_mask"]] * count, grad_inputs=(1, 2),
                 mask_at=("query_mask", "memory_mask"))  # fmt: skip


def _layer(**kw: Any) -> L.TransformerEncoderLayer:
    return L.TransformerEncoderLayer(D, 2, 16, dropout=0.0, **kw)


def _dec_layer() -> L.TransformerDecoderLayer:
    return L.TransformerDecoderLayer(D, 2, 16, dropout=0.0)


ENTRIES: list[Entry] = [
    # the library's attention body
    masked("TransformerEncoderLayer", "library body (post-norm)", _layer),
    masked("TransformerEncoderLayer(ffn_norm=False)", "TR² public code, temporal layers",
           lambda: _layer(ffn_norm=False)),
    masked("TransformerEncoder", "library body", lambda: L.TransformerEncoder(_layer(), 2)),
    decoder("TransformerDecoderLayer", "library body (DETR-style)", _dec_layer),
    decoder("TransformerDecoder", "library body (DETR-style)",
            lambda: L.TransformerDecoder(_dec_layer(), 2)),
    Entry("MaskedMultiheadAttention", "library body (DETR-style positions)",
          lambda: L.MaskedMultiheadAttention(D, 2),
          lambda g, dt: ((_r(g, dt, 3, 5, D),), {"query_mask": _mask(g, 3, 5)}),
          padded=lambda a, k: [(a[0], k["query_mask"])], outputs=lambda out: [out[0]],
          valid_out=lambda a, k: [k["query_mask"]], mask_at=("query_mask",)),
    Entry("AttentionBlock", "library body (timm-style parts; UASAN Eq. 7-8 form)",
          lambda: L.AttentionBlock(L.MaskedMultiheadAttention(D, 2), nn.Linear(D, D),
                                   norm2=nn.LayerNorm(D), attn_residual=False),
          lambda g, dt: ((_r(g, dt, 3, 5, D),), {"mask": _mask(g, 3, 5)}),
          padded=lambda a, k: [(a[0], k["mask"])], valid_out=lambda a, k: [k["mask"]],
          mask_at=("mask",)),
    Entry("AttentionBlock(cross, norm_first)", "library body (pre-norm cross-attention)",
          lambda: L.AttentionBlock(L.MaskedMultiheadAttention(D, 2), nn.Linear(D, D),
                                   norm1=nn.LayerNorm(D), norm2=nn.LayerNorm(D),
                                   mlp_residual="input", norm_first=True),
          lambda g, dt: ((_r(g, dt, 3, 4, D), _r(g, dt, 3, 6, D)),
                         {"mask": _mask(g, 3, 4), "key_mask": _mask(g, 3, 6)}),
          padded=lambda a, k: [(a[0], k["mask"]), (a[1], k["key_mask"])],
          valid_out=lambda a, k: [k["mask"]], grad_inputs=(0, 1), mask_at=("mask", "key_mask")),
    masked("MaskedPooling", "library (pooling over one axis)",
           lambda: L.MaskedPooling(dim=-2, mode="mean"),
           lambda g, dt: ((_r(g, dt, 2, 5, 3, D), _mask(g, 2, 5, 3)), {}),
           valid_out=lambda a, k: [None]),
    masked("LearnableTokens", "RS-Net's context token (library)",
           lambda: L.LearnableTokens(1, D, dim=-1), _tracks, outputs=lambda out: [out[0]],
           valid_out=lambda a, k: [torch.cat((torch.ones_like(a[1][..., :1]), a[1]), -1)]),
    # MoSA
    Entry("MotionInteraction", "MoSA MIM", lambda: L.MotionInteraction(D, 2, dropout=0.0),
          lambda g, dt: ((_r(g, dt, 3, 4, D), _r(g, dt, 3, 4, D), _mask(g, 3, 4)), {}),
          padded=lambda a, k: [(a[0], a[2]), (a[1], a[2])], valid_out=lambda a, k: [a[2]],
          grad_inputs=(0, 1), mask_at=(2,)),
    Entry("ActionSemanticMatcher", "MoSA ASM",
          lambda: L.ActionSemanticMatcher(D, F.normalize(torch.randn(5, 6), dim=-1),
                                          similarity="cosine"),
          lambda g, dt: ((_r(g, dt, 3, 4, D),), {})),
    multilabel_loss("CategoryWeightedLoss", "MoSA Eq. 11-12",
                    lambda: L.CategoryWeightedLoss(torch.tensor([500.0, 50.0, 5.0]))),
    # RS-Net
    masked("SpatialContextEncoder", "RS-Net Eq. 2",
           lambda: L.SpatialContextEncoder(D, 2, 1, 16, dropout=0.0), _tracks,
           outputs=lambda out: list(out), valid_out=lambda a, k: [a[1].any(-1), a[1]]),
    masked("TemporalContextEncoder", "RS-Net Eq. 3-4",
           lambda: L.TemporalContextEncoder(D, 2, 1, 16, dropout=0.0, max_frames=8),
           outputs=lambda out: list(out), valid_out=lambda a, k: [None, a[1]]),
    masked("RelationScorer", "RS-Net Sec. 3.3",
           lambda: L.RelationScorer(D, D, nhead=2, spatial_layers=1, temporal_layers=1,
                                    dim_feedforward=16, dropout=0.0, max_frames=8),
           outputs=lambda out: [out.logits, out.score, out.pairs],
           valid_out=lambda a, k: [a[1]] * 3, mask_at=()),  # the frames' rows: built (a sync)
    masked("RelationScorer(frame_mask=)", "RS-Net Sec. 3.3, both masks given",
           lambda: L.RelationScorer(D, D, nhead=2, spatial_layers=1, temporal_layers=1,
                                    dim_feedforward=16, dropout=0.0, max_frames=8),
           lambda g, dt: ((*(x := _tracks(g, dt)[0])[:2], x[1].any(-1)), {}),
           outputs=lambda out: [out.logits, out.score, out.pairs],
           valid_out=lambda a, k: [a[1]] * 3, mask_at=(1, 2)),
    Entry("RelationScoringDecoder", "RS-Net Eq. 5", lambda: L.RelationScoringDecoder(D, 16),
          lambda g, dt: ((_r(g, dt, 3, 4, D),), {})),
    Entry("ContextFusion", "RS-Net Sec. 3.4", lambda: L.ContextFusion(D, 4, (2, 3)),
          lambda g, dt: ((_r(g, dt, 2, 4, 3, D), _r(g, dt, 2, 4), _mask(g, 2, 4, 3)), {}),
          padded=lambda a, k: [(a[0], a[2])], valid_out=lambda a, k: [a[2]],
          grad_inputs=(0, 1), mask_at=(2,)),
    Entry("SoftmaxFocalLoss", "RS-Net Eq. 9", lambda: L.SoftmaxFocalLoss((0.25, 0.75), 2.0),
          lambda g, dt: ((_r(g, dt, 6, 2), torch.randint(0, 2, (6,), generator=g),
                          _multilabel(g, dt)[0][2]), {}),
          padded=lambda a, k: [(a[0], a[2])], mask_at=(2,)),
    # TR²
    masked("SpatialTemporalEncoder(positions='frame')", "TR² Sec. III-B, public code",
           lambda: L.SpatialTemporalEncoder(D, 2, 16, temporal_layers=2, dropout=0.0,
                                            positions="frame", temporal_ffn_norm=False),
           _tracks),
    masked("MessageToken", "TR² Eq. 1", lambda: L.MessageToken(D), _tracks),
    Entry("SentenceClassifier", "TR² public code (object-conditioned sentences)",
          lambda: L.SentenceClassifier(D, F.normalize(torch.randn(4, 5, 6), dim=-1)),
          lambda g, dt: ((_r(g, dt, 2, 3, 4, D), torch.randint(0, 4, (2, 3, 4), generator=g)),
                         {"mask": _mask(g, 2, 3, 4)}),
          padded=lambda a, k: [(a[0], k["mask"])], valid_out=lambda a, k: [k["mask"]],
          mask_at=("mask",)),
    # ARN
    Entry("AssociationAttention", "ARN Eq. 8-9, 11",
          lambda: L.AssociationAttention(D, 2, num_cues=2),
          lambda g, dt: (((_r(g, dt, 2, 4, D), _r(g, dt, 2, 4, D)), _r(g, dt, 2, 6, D)),
                         {"query_mask": _mask(g, 2, 4), "memory_mask": _mask(g, 2, 6)}),
          padded=lambda a, k: [(a[0][0], k["query_mask"]), (a[0][1], k["query_mask"]),
                               (a[1], k["memory_mask"])],
          outputs=lambda out: list(out), valid_out=lambda a, k: [k["query_mask"]] * 2,
          grad_inputs=(1,), mask_at=("query_mask", "memory_mask")),
    branches("PredicateAssociationParser", "ARN Sec. 3.3",
             lambda: L.PredicateAssociationParser(D, 2, num_branches=3),
             lambda out: [t for branch in out for t in branch]),
    branches("AssociationReasoning", "ARN Fig. 3",
             lambda: L.AssociationReasoning(D, 2, num_branches=3), lambda out: list(out)),
    Entry("HierarchicalAttention", "ARN Eq. 12-13", lambda: L.HierarchicalAttention(D, 2),
          lambda g, dt: ((_r(g, dt, 2, 4, D), _r(g, dt, 2, 4, D), _r(g, dt, 2, 4, D),
                          _mask(g, 2, 4)), {}),
          padded=lambda a, k: [(a[0], a[3]), (a[1], a[3]), (a[2], a[3])],
          valid_out=lambda a, k: [a[3]], mask_at=(3,)),
    Entry("TripletCategoryClassifier", "ARN Sec. 3.2, Eq. 15",
          lambda: L.TripletCategoryClassifier(D, F.normalize(torch.randn(3, 4, 6), dim=-1)),
          lambda g, dt: ((_r(g, dt, 2, 5, D),), {})),
    multilabel_loss("SigmoidFocalLoss", "ARN Eq. 7", lambda: L.SigmoidFocalLoss(0.25, 2.0)),
    # UASAN, the paper's form and the public code's
    masked("VisualRefiner", "UASAN Eq. 4", lambda: L.VisualRefiner(D, num_tokens=3, nhead=2),
           pooled=True),
    masked("VisualRefiner(residual=True)", "UASAN Eq. 4, Q-Former form",
           lambda: L.VisualRefiner(D, num_tokens=3, nhead=2, residual=True),
           lambda g, dt: ((_r(g, dt, 3, 1, D), torch.tensor([[True], [False], [True]])), {}),
           pooled=True),
    Entry("SemanticAwareContextEncoder", "UASAN Eq. 5-6",
          lambda: L.SemanticAwareContextEncoder(D, 2, 16), _sentence, padded=_pair_padding,
          outputs=lambda out: [out.encoded], valid_out=lambda a, k: [k["mask"]],
          grad_inputs=(0, 2), mask_at=("mask",)),
    Entry("SemanticAwareContextEncoder(positions='slot')", "UASAN public code",
          lambda: L.SemanticAwareContextEncoder(D, 2, 16, num_layers=2, positions="slot",
                                                num_slots=8),
          _sentence, padded=_pair_padding, outputs=lambda out: [out.encoded],
          valid_out=lambda a, k: [k["mask"]], grad_inputs=(0, 2), mask_at=("mask",)),
    masked("UnionRelationDecoder", "UASAN Eq. 7-8", lambda: L.UnionRelationDecoder(D, 2, 16),
           pooled=True),
    *(Entry(f"UnionAwareRelationHead(stage={stage!r})", f"UASAN {paper}",
            lambda stage=stage: L.UnionAwareRelationHead(D, 2, 16, 6, stage=stage),
            lambda g, dt: _sentence(g, dt, (2, 2, 3, 2)),
            padded=lambda a, k, n=2 if stage == "pair" else 4: [(x, k["mask"]) for x in a[:n]],
            outputs=lambda out: [x for x in out if x is not None],
            valid_out=lambda a, k, stage=stage: [k["mask"]] * (2 if stage == "full" else 1),
            grad_inputs=(0, 1) if stage == "pair" else (0, 1, 2, 3), mask_at=("mask",))
      for stage, paper in (("pair", "Table 4 (a)"), ("union", "Table 4 (b)"),
                           ("encoder", "Table 4 (c)"), ("full", "Eq. 5-11, L_fg"))),
    Entry("UnionAwareRelationHead(stage='encoder', readout='parts')", "UASAN Table 4 (c), B's head",
          lambda: L.UnionAwareRelationHead(D, 2, 16, 6, stage="encoder", readout="parts"),
          lambda g, dt: _sentence(g, dt, (2, 2, 3, 2)),
          padded=lambda a, k: [(x, k["mask"]) for x in a[:4]],
          outputs=lambda out: [out.relation], valid_out=lambda a, k: [k["mask"]],
          grad_inputs=(0, 1, 2, 3), mask_at=("mask",)),
    masked("RelationQueryDecoder", "UASAN public code",
           lambda: L.RelationQueryDecoder(D, 2, 16, num_layers=2, num_groups=3),
           lambda g, dt: (_rows(g, dt)[0], {"group": torch.tensor([0, 2, 1])}), pooled=True),
    Entry("UnionRelationPredictor", "UASAN Eq. 11", lambda: L.UnionRelationPredictor(D),
          lambda g, dt: ((_r(g, dt, 3, D), _r(g, dt, 3, 2, D), _r(g, dt, 3, 2, D),
                          _r(g, dt, 3, 2, D), torch.tensor([True, False, True])), {}),
          padded=lambda a, k: [(x, a[4]) for x in a[:4]], valid_out=lambda a, k: [a[4]],
          mask_at=(4,)),
    Entry("UnionRelationHead", "UASAN public code",
          lambda: L.UnionRelationHead(D, 2, num_tokens=2, num_layers=1, dropout=0.0),
          _head_inputs, padded=lambda a, k: [(x, k["mask"]) for x in a],
          outputs=lambda out: list(out), valid_out=lambda a, k: [k["mask"]] * 5,
          grad_inputs=(0, 2), mask_at=("mask",)),
]  # fmt: skip


def _boxes(g, dtype, *lead):  # valid xyxy boxes in [0, 1]
    xy = torch.rand(*lead, 2, generator=g, dtype=dtype) * 0.5
    return torch.cat((xy, xy + 0.1 + torch.rand(*lead, 2, generator=g, dtype=dtype) * 0.4), -1)


def _motion(g, dt):
    mask = _mask(g, 2, 5, 3)
    return (_boxes(g, dt, 2, 5, 3), _boxes(g, dt, 2, 5, 3), mask), {"image_size": (1.0, 1.0)}


def _guidance(g, dt):
    rel = {
        k: torch.rand(1, 4, 2, n, generator=g) > 0.5 for k, n in (("attention", 3), ("spatial", 6))
    }
    labels = torch.randint(1, 5, (1, 4, 2), generator=g)
    return (_r(g, dt, 1, 4, 2, D), _mask(g, 1, 4, 2), rel, labels), {}


def _word_tower() -> L.WordTower:
    return L.WordTower(["move", "left", "right", "a", "photo", "of", "X", "."], dim=D)


def _matcher_inputs(g, dt):
    out = {
        "object_logits": _r(g, dt, 1, 4, 5),
        "predicate_logits": _r(g, dt, 1, 4, 26),
        "subject_boxes": _boxes(g, dt, 1, 4),
        "object_boxes": _boxes(g, dt, 1, 4),
    }
    tgt = {
        "object_labels": torch.randint(0, 5, (1, 2), generator=g),
        "predicates": (torch.rand(1, 2, 26, generator=g) > 0.8).to(dt),
        "subject_boxes": _boxes(g, dt, 1, 2),
        "object_boxes": _boxes(g, dt, 1, 2),
        "mask": torch.tensor([[True, False]]),
    }
    return (out, tgt), {}


_NO_GRAD = "no float input: the output depends on the parameters only (or is an assignment)"
ENTRIES += [
    Entry(
        "LearnedPositions",
        "library (DETR's learned position table)",
        lambda: L.LearnedPositions(6, D),
        lambda g, dt: ((4,), {}),
        grad_inputs=(),
        skip={"gradcheck": _NO_GRAD},
    ),
    Entry(
        "MotionFeatureExtractor",
        "MoSA MFE, Eq. 1-2",
        lambda: L.MotionFeatureExtractor(D, window=2),
        _motion,
        padded=lambda a, k: [(a[0], a[2]), (a[1], a[2])],
        valid_out=lambda a, k: [a[2]],
        grad_inputs=(0, 1),
        mask_at=(2,),
    ),
    Entry(
        "TemporalDifferenceGuidance",
        "TR² Eq. 2",
        lambda: L.TemporalDifferenceGuidance(
            D, {"attention": torch.randn(5, 3, 6), "spatial": torch.randn(5, 6, 6)}
        ),
        _guidance,
        outputs=lambda out: [out[k] for k in sorted(out)],
        padded=lambda a, k: [(a[0], a[1])],
        valid_out=lambda a, k: [None, None],
        mask_at=(1,),
    ),
    Entry(
        "TemporalMemory",
        "ARN (OED's temporal memory)",
        lambda: L.TemporalMemory(3, D),
        lambda g, dt: (
            (_r(g, dt, 2, 3, 4, D),),
            {"frame_mask": torch.tensor([[True, True, False], [True] * 3])},
        ),
        outputs=lambda out: [out[0], out[1]],
        padded=lambda a, k: [(a[0], k["frame_mask"])],
        valid_out=lambda a, k: [k["frame_mask"].repeat_interleave(4, -1)] * 2,
        mask_at=("frame_mask",),
    ),
    Entry(
        "PairQueries",
        "ARN (OED's pair queries)",
        lambda: L.PairQueries(4, D, 3),
        lambda g, dt: ((), {}),
        outputs=lambda out: [out[k] for k in sorted(out)],
        grad_inputs=(),
        skip={"gradcheck": _NO_GRAD},
    ),
    Entry(
        "AnchorBoxes",
        "ARN (anchor-box queries, DAB-DETR)",
        lambda: L.AnchorBoxes(6, 16),
        lambda g, dt: ((), {}),
        outputs=lambda out: [out],
        grad_inputs=(),
        skip={"gradcheck": _NO_GRAD},
    ),
    Entry(
        "PairHungarianMatcher",
        "ARN (OED's set matching)",
        L.PairHungarianMatcher,
        _matcher_inputs,
        outputs=lambda out: [t for pair in out for t in pair],
        grad_inputs=(),
        skip={
            "gradcheck": "an assignment: integer indices",
            "compile": "the assignment runs on the host (SciPy or the library's solver)",
        },
    ),
    Entry(
        "PromptLearner",
        "UASAN / RePro (CoOp prompts)",
        lambda: L.PromptLearner(_word_tower(), ["move left", "move right"], 2),
        lambda g, dt: ((), {}),
        grad_inputs=(),
        skip={"gradcheck": _NO_GRAD},
    ),
    Entry(
        "GroupedPromptLearner",
        "RePro / UASAN (grouped prompts)",
        lambda: L.GroupedPromptLearner(_word_tower(), ["move left", "move right"], 2, num_groups=2),
        lambda g, dt: ((), {}),
        grad_inputs=(),
        skip={"gradcheck": _NO_GRAD},
    ),
]

UNREGISTERED = {"FocalLoss", "OpenCLIPTextTower", "WordTower"}
"""Exported modules without an entry, on purpose: ``FocalLoss`` is the deprecated alias of
``SoftmaxFocalLoss`` (registered), ``OpenCLIPTextTower`` wraps an open_clip model (its tests
build one with random weights: tests/test_text.py), ``WordTower`` is a text tower without a
``forward`` (the prompt learners' entries run it). (``text.StaticEmbeddingTower``, not exported
at the top level, is a frozen pretrained table: tests/test_text.py checks it offline.)"""
