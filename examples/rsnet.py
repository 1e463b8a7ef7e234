"""RS-Net reference assembly: an STTran-style baseline, with and without RS-Net, side by side.

RS-Net (*RS-Net: Context-Aware Relation Scoring for Dynamic Scene Graph Generation*,
arXiv:2511.08651) wraps an existing DSGG model without changing it (Sec. 3.4, Fig. 3):

    pair representation x (Eq. 1: subject, object, union features, class semantics, boxes)
      |-> baseline: projection -> spatial-temporal block -> r        (SpatialTemporalEncoder)
      |-> RS-Net:   spatial context encoder (frame tokens)           (RelationScorer, Eq. 2-5)
      |             -> temporal context encoder (video token) -> ĉ_tmp, p0 of every pair
      -> context fusion [r, ĉ_tmp] -> attention / spatial / contacting heads  (ContextFusion)
      -> triplet score s_sub * s_obj * s_rel * p0                             (triplet_score)

Both train on the detector's pairs (as STTran trains for SGDet): a detected pair is positive
when both boxes match an annotated pair of the same classes (assign_relations); STTran's
predicate loss on the positives; RS-Net adds its scorer's focal loss (Eq. 9) on the positives
and the sampled negatives (filter_negatives, cap_negatives: at most 1.2 a positive).

    python examples/rsnet.py                     # STTran-style + RS-Net (SGDet, SGCls)
    python examples/rsnet.py --variant baseline  # the same model without RS-Net
    python examples/studies.py rsnet rsnet-table4   # both side by side, Table 4, paired seeds
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from dsgg_layers import (
    ContextFusion,
    RelationAssignment,
    RelationScorer,
    SoftmaxFocalLoss,
    SpatialTemporalEncoder,
    ValidRows,
    assign_relations,
    cap_negatives,
    filter_negatives,
    sttran_predicate_loss,
    triplet_score,
)
from dsgg_layers.data import VideoGraph
from dsgg_layers.metrics import predicate_probabilities
from dsgg_layers.vocab import PREDICATE_GROUPS

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the shared harness, beside this file
import harness
import pair_models
from ag_task import Data
from harness import Assembly, choice
from pair_models import PairFrontEnd


class STTranRSNet(nn.Module):
    """The STTran-style baseline, optionally wrapped by RS-Net; keeps the harness's contract.

    In training it takes detected pairs (``graph.gt`` the annotation) and returns ``L_rel``
    (STTran's three terms), ``L_od`` (``"object"``) and with RS-Net ``L_RSN`` (``"scoring"``,
    Eq. 9), unit weights (Eq. 10); with RS-Net the predicted scores are re-weighted by ``p0``.

    Args:
        feature_dim, union_dim: widths of the box and union-region features.
        class_semantics: ``(36, S)`` semantic vectors of the object classes.
        d_model: width of the baseline and of RS-Net's ``d_m`` (the paper does not give it).
        rsnet, temporal, fusion, rescore: add RS-Net; its temporal context (``"token"``,
            ``"mean"``, ``None``), context fusion and the ``p0`` re-scoring (Table 4, Eq. 6).
        gamma, alpha, neg_ratio, cap_per, overlap_boxes: the focal loss (the paper gives no
            parameters) and the negative sampling (Sec. 4.2; ``dsgg_layers.sampling``).
        multi_label, one_to_one: STTran's loss for spatial and contacting (``"margin"`` or
            ``"bce"``); label one detection per annotated pair (STTran) or every match.
        seed: seed of RS-Net's parts, its dropout and the negative sampling.
    """

    def __init__(
        self,
        feature_dim: int,
        union_dim: int,
        class_semantics: Tensor,
        *,
        d_model: int = 128,
        rsnet: bool = True,
        temporal: str | None = "token",
        fusion: bool = True,
        rescore: bool = True,
        gamma: float = 2.0,
        alpha: tuple[float, float] | None = None,
        neg_ratio: float = 1.2,
        cap_per: str = "video",
        overlap_boxes: str = "both",
        multi_label: str = "margin",
        one_to_one: bool = True,
        seed: int = 0,
    ) -> None:
        super().__init__()
        in_dim = pair_models.pair_input_dim(feature_dim, union_dim, class_semantics)
        # The baseline's modules first, from the global seed: the same weights with or without
        # RS-Net. RS-Net's parts (and the heads, whose width depends on the fusion) draw from
        # a stream of their own, so that adding them changes nothing else.
        self.front = PairFrontEnd(feature_dim, union_dim, class_semantics, d_model)
        self.block = SpatialTemporalEncoder(d_model, 4, 2 * d_model, temporal_layers=2)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed + 1)
            self.scorer = RelationScorer(in_dim, d_model, dim_feedforward=2 * d_model,
                                         temporal=temporal) if rsnet else None  # fmt: skip
            context = 0 if self.scorer is None else self.scorer.context_features
            self.fuse = bool(fusion and context)
            sizes = [g.stop - g.start for g in PREDICATE_GROUPS.values()]
            self.heads = ContextFusion(d_model, context if self.fuse else 0, sizes,
                                       fuse=self.fuse)  # fmt: skip
        self.focal = SoftmaxFocalLoss(alpha, gamma)
        self.rescore = rescore and rsnet
        self.neg_ratio, self.cap_per, self.overlap_boxes = neg_ratio, cap_per, overlap_boxes
        self.multi_label, self.one_to_one = multi_label, one_to_one
        self.sampler = torch.Generator().manual_seed(seed)  # negatives: reproducible per run
        self.scorer_rng = torch.Generator().manual_seed(seed + 2)  # the scorer's dropout

    def _score(self, x: Tensor, mask: Any) -> Any:
        """RS-Net's scores; in training its dropout draws from its own stream, so that the
        baseline's dropout masks are those of the run without RS-Net."""
        if self.scorer is None:
            return None
        if not self.training:
            return self.scorer(x, mask)
        seed = int(torch.randint(2**62, (1,), generator=self.scorer_rng))
        devices = [x.device] if x.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            return self.scorer(x, mask)

    def _predicates(
        self, g: VideoGraph, object_probs: Tensor | None, rows: ValidRows | None
    ) -> tuple[Tensor, Any]:
        """Predicate logits ``(B, T, P, 26)`` and RS-Net's scores (``None`` without it)."""
        x = self.front.inputs(g, object_probs)
        mask = g.mask if rows is None else rows  # every block takes the rows as its mask
        scores = self._score(x, mask)
        r = self.block(self.front.pair_proj(x), mask)
        context = scores.video_context if self.fuse and scores is not None else None
        return self.heads(r, context, mask), scores

    def forward(self, g: VideoGraph, *, task: str = "sgdet", rows: ValidRows | None = None):
        if self.training:
            return self.losses(g, rows)
        preds, object_probs = self.front.predictions(g, task)
        logits, scores = self._predicates(g, object_probs, rows)
        preds["predicate_scores"] = predicate_probabilities(logits.float())
        if self.rescore and scores is not None:  # Eq. 6
            preds["predicate_scores"] = triplet_score(
                preds["predicate_scores"], scores.score.float()
            )
        return preds

    def assign(self, g: VideoGraph) -> RelationAssignment:
        """Positive and negative detected pairs of ``g`` against its ground truth ``g.gt``."""
        gt = g.ground_truth
        return assign_relations(
            g.subject_boxes, g.object_boxes, g.object_labels, g.mask,
            gt.subject_boxes, gt.object_boxes, gt.object_labels, gt.mask,
            gt_relations=gt.relations, one_to_one=self.one_to_one,
        )  # fmt: skip

    def sample_negatives(
        self, g: VideoGraph, a: RelationAssignment, generator: torch.Generator
    ) -> tuple[Tensor, Tensor]:
        """The negatives after the near-duplicate rule, and after the cap (Sec. 4.2)."""
        kept = filter_negatives(a.negative, a.positive, g.subject_boxes, g.object_boxes,
                                g.object_labels, boxes=self.overlap_boxes)  # fmt: skip
        capped = cap_negatives(kept, a.positive, ratio=self.neg_ratio, per=self.cap_per,
                               generator=generator)  # fmt: skip
        return kept, capped

    def losses(self, g: VideoGraph, rows: ValidRows | None) -> dict[str, Tensor]:
        """Training on detected pairs: L_rel on the positives, L_od, and RS-Net's L_RSN."""
        if g.gt is None:
            raise ValueError("g: expected detected pairs with their ground truth in g.gt")
        a = self.assign(g)
        logits, scores = self._predicates(g, None, rows)
        out = sttran_predicate_loss(logits.float(), a.relations, mask=a.positive,
                                    multi_label=self.multi_label)  # fmt: skip
        out["object"] = self.front.object_loss(g.gt)
        if scores is not None:
            _, negative = self.sample_negatives(g, a, self.sampler)
            out["scoring"] = self.focal(scores.logits.float(), a.positive,
                                        mask=a.positive | negative)  # fmt: skip
        return out


def add_arguments(p: argparse._ActionsContainer) -> None:
    """RS-Net's own flags: the model, its sizes, the ablations and the sampling."""
    p.set_defaults(tasks=["sgdet", "sgcls"], constraints=["with"])
    choice(p, "--variant", ("rsnet", "baseline"), "the STTran-style model with RS-Net, or not")
    # fmt: off
    p.add_argument("--d-model", type=int, default=128)
    choice(p, "--temporal", ("token", "mean", "none"),
           "RS-Net's video context: learned token, mean of frames, none")
    p.add_argument("--no-fusion", action="store_true", help="ablation: no context fusion")
    p.add_argument("--no-rescore", action="store_true",
                   help="ablation: do not multiply the triplet scores by p0")
    p.add_argument("--gamma", type=float, default=2.0, help="focal loss gamma")
    p.add_argument("--alpha", type=float, nargs=2, default=None, metavar=("POS", "NEG"),
                   help="focal loss alpha of the positive and negative class (default none)")
    p.add_argument("--neg-ratio", type=float, default=1.2, help="most negatives a positive")
    choice(p, "--cap-per", ("video", "frame"), "the cap on negatives: per video or per frame")
    choice(p, "--overlap-boxes", ("both", "subject", "object", "union"),
           "the IoU of the near-duplicate rule")
    choice(p, "--assignment", ("one-to-one", "all"),
           "label one detection per annotated pair (STTran) or every match")
    choice(p, "--multi-label", ("margin", "bce"),
           "spatial/contacting loss: STTran's default (margin) or BCE")
    # fmt: on


def build_model(args: argparse.Namespace, data: Data) -> STTranRSNet:
    """The model the command line asks for (``--variant baseline`` has no RS-Net)."""
    g = data.train[0]
    return STTranRSNet(
        g.object_features.shape[-1], g.union_features.shape[-1], data.class_semantics,
        d_model=args.d_model, rsnet=args.variant != "baseline",
        temporal=None if args.temporal == "none" else args.temporal, fusion=not args.no_fusion,
        rescore=not args.no_rescore, gamma=args.gamma,
        alpha=None if args.alpha is None else tuple(args.alpha), neg_ratio=args.neg_ratio,
        cap_per=args.cap_per, overlap_boxes=args.overlap_boxes, multi_label=args.multi_label,
        one_to_one=args.assignment == "one-to-one", seed=args.seed,
    )  # fmt: skip


ASSEMBLY = Assembly(
    name="rsnet",
    description="Train and evaluate the STTran-style model with RS-Net (or without).",
    build_model=build_model,
    add_arguments=add_arguments,
    chart_title="RS-Net per-predicate recall (head to tail)",
    train_mode="sgdet",
)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Train and evaluate the model the flags ask for; returns the run's summary."""
    return harness.run(ASSEMBLY, argv)


if __name__ == "__main__":
    main()
