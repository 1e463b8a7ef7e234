"""MoSA reference assembly: train and evaluate on Action Genome format data.

MoSA (*MoSA: Motion-Guided Semantic Alignment for Dynamic Scene Graph Generation*,
arXiv:2604.19631) assembled from the library's blocks, end to end:

    pair features (object visual + class semantics + union region + boxes)
      -> spatial encoder over the pairs of each frame    (TransformerEncoder over P)
      -> motion features + motion interaction            (MotionFeatureExtractor, MotionInteraction)
      -> temporal encoder along each pair track          (TransformerEncoder over T)
      -> action semantic matching, a text matrix a group (ActionSemanticMatcher x 3, sigmoid)

trained with the category-weighted loss (CategoryWeightedLoss) and evaluated with the Action
Genome evaluator on PredCls, SGCls and SGDet, with, semi and no constraint. This file holds only
MoSA: its model (keeping the harness's contract: a dict of losses in training, the evaluator's
predictions in evaluation), its loss and its flags; examples/harness.py does the rest.

By default it trains on the built-in synthetic benchmark (dsgg_layers.data.SyntheticActionGenome)
and finishes in a few minutes on 2 CPU cores:

    python examples/mosa.py                         # the README's main job
    python examples/mosa.py --no-mfe                # ablations: --no-mfe, --no-mim, --no-asm
    python examples/mosa.py --device cuda --amp bf16
    torchrun --nproc_per_node=4 examples/mosa.py --device cuda
    python examples/mosa.py --resume runs/mosa/checkpoint.pt   # continue a run that stopped
    python examples/mosa.py --ag-root data/ag --clip-pretrained openai   # real Action Genome

Outputs go to --out (default runs/mosa): the weights (mosa.pt), the last epoch's checkpoint
(checkpoint.pt, for --resume), the results (results.json) and a per-predicate recall bar chart
(per_predicate_recall.png). `python examples/mosa.py --help` lists every flag.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from dsgg_layers import (
    ActionSemanticMatcher,
    CategoryWeightedLoss,
    MotionFeatureExtractor,
    MotionInteraction,
    TransformerEncoder,
    TransformerEncoderLayer,
    ValidRows,
    sinusoidal_positions,
)
from dsgg_layers.data import MOTION_PREDICATES, VideoGraph
from dsgg_layers.text import mosa_prompts
from dsgg_layers.vocab import PREDICATE_GROUPS, PREDICATES

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the shared harness, beside this file
from ag_task import Data
from harness import Assembly, run
from pair_models import PairFrontEnd, text_embeddings

# ------------------------------------------------------------------------------------ the model


class MoSA(nn.Module):
    """MoSA: spatial encoder, MFE + MIM, temporal encoder, ASM (MoSA, arXiv:2604.19631, Fig. 2).

    Keeps the harness's contract: in training ``model(graph, rows=rows)`` returns the named
    losses (``"relation"``: the category-weighted loss, Eq. 12; ``"object"``: cross-entropy of
    the object classifier SGCls uses); in evaluation ``model(graph, task=task, rows=rows)``
    returns the Action Genome evaluator's predictions.

    Args:
        feature_dim: width of the per-box visual features.
        union_dim: width of the union-region features.
        class_semantics: ``(36, S)`` semantic vectors of the object classes.
        text_embeddings: ``(26, E)`` text embeddings of the predicates (for ASM).
        frequencies: ``(26,)`` positives of each predicate in the training set (loss weights).
        beta: exponent of the category-weighted loss.
        d_model, nhead, dim_feedforward, dropout: transformer sizes.
        spatial_layers, temporal_layers: encoder depths.
        motion: use MFE (and MIM); ``False`` is the ``--no-mfe`` ablation.
        fusion: ``"attention"`` (MIM) or ``"concat"`` (the ``--no-mim`` ablation).
        semantic: classify with ASM; ``False`` is the ``--no-asm`` ablation (a linear layer).
        motion_skip: MIM's linear motion path (``--mim-motion-skip``; not in the paper).
    """

    def __init__(
        self,
        feature_dim: int,
        union_dim: int,
        class_semantics: Tensor,
        text_embeddings: Tensor,
        frequencies: Tensor,
        *,
        beta: float = 0.5,
        d_model: int = 128,
        nhead: int = 4,
        dim_feedforward: int = 256,
        dropout: float = 0.1,
        spatial_layers: int = 1,
        temporal_layers: int = 2,
        motion: bool = True,
        fusion: str = "attention",
        semantic: bool = True,
        motion_skip: bool = False,
    ) -> None:
        super().__init__()
        self.front = PairFrontEnd(feature_dim, union_dim, class_semantics, d_model)
        layer = lambda: TransformerEncoderLayer(d_model, nhead, dim_feedforward, dropout)  # noqa: E731
        self.spatial = TransformerEncoder(layer(), spatial_layers)
        self.mfe = MotionFeatureExtractor(d_model) if motion else None
        self.mim = (
            MotionInteraction(
                d_model, nhead, dropout=dropout, fusion=fusion, motion_skip=motion_skip
            )
            if motion
            else None
        )
        self.temporal = TransformerEncoder(layer(), temporal_layers)
        groups = list(PREDICATE_GROUPS.values())
        if semantic:
            self.heads = nn.ModuleList(
                ActionSemanticMatcher(d_model, text_embeddings[g]) for g in groups
            )
        else:
            self.heads = nn.ModuleList(nn.Linear(d_model, g.stop - g.start) for g in groups)
        self.criterion = CategoryWeightedLoss(frequencies, beta=beta)
        self.d_model = d_model

    def predicate_logits(
        self, g: VideoGraph, object_probs: Tensor | None = None, rows: ValidRows | None = None
    ) -> Tensor:
        """Predicate logits ``(B, T, P, 26)`` of every pair in every frame.

        ``rows``: the valid rows of ``g.mask``, found once for all blocks (built here when not
        given; the harness's data loader finds them on the CPU).
        """
        rows = ValidRows(g.mask) if rows is None else rows  # every block takes them as its mask
        x = self.spatial(self.front(g, object_probs), rows)  # pairs of a frame
        if self.mfe is not None and self.mim is not None:
            motion = self.mfe(g.subject_boxes, g.object_boxes, rows, g.frame_times,
                              image_size=g.image_size)  # fmt: skip
            x = self.mim(x, motion, rows)
        # along each pair's track: (B, P, T, D), positions = frame slots
        T = g.mask.shape[1]
        pos = sinusoidal_positions(T, self.d_model, dtype=x.dtype, device=x.device)
        x = self.temporal(x.transpose(1, 2), rows.transpose(1, 2), pos=pos).transpose(1, 2)
        return torch.cat([head(x) for head in self.heads], -1)

    def forward(
        self, g: VideoGraph, *, task: str = "predcls", rows: ValidRows | None = None
    ) -> dict[str, Tensor]:
        """Losses in training (ground-truth pairs), predictions in evaluation (``task``)."""
        if self.training:
            logits = self.predicate_logits(g, rows=rows).float()
            return {
                "relation": self.criterion(logits, g.relations, g.mask),
                "object": self.front.object_loss(g),
            }
        preds, object_probs = self.front.predictions(g, task)
        logits = self.predicate_logits(g, object_probs, rows)
        preds["predicate_scores"] = logits.float().sigmoid()
        return preds


# ------------------------------------------------------------------------------ flags and report


def add_arguments(p: argparse._ActionsContainer) -> None:
    """MoSA's own flags: its sizes, its loss and its ablations."""
    p.add_argument("--d-model", type=int, default=128)
    p.add_argument("--nhead", type=int, default=4)
    p.add_argument("--beta", type=float, default=0.5, help="category-weighted loss exponent")
    p.add_argument("--no-mfe", action="store_true", help="ablation: no motion features (no MIM)")
    p.add_argument("--no-mim", action="store_true", help="ablation: fuse motion by concatenation")
    p.add_argument("--no-asm", action="store_true", help="ablation: a linear classifier, not ASM")
    p.add_argument(
        "--mim-motion-skip", action="store_true",
        help="MIM adds a linear motion path to its residual (motion reaches one-pair frames)",
    )  # fmt: skip


def build_model(args: argparse.Namespace, data: Data) -> MoSA:
    """The MoSA model the command-line ``args`` ask for (feature widths from the data)."""
    example = data.train[0]
    return MoSA(
        example.object_features.shape[-1],
        example.union_features.shape[-1],
        data.class_semantics,
        text_embeddings(args, mosa_prompts()),
        data.frequencies,
        beta=args.beta,
        d_model=args.d_model,
        nhead=args.nhead,
        motion=not args.no_mfe,
        fusion="concat" if args.no_mim else "attention",
        semantic=not args.no_asm,
        motion_skip=args.mim_motion_skip,
    )


def motion_report(results: dict[str, dict[str, Tensor]]) -> tuple[str, dict[str, object]]:
    """Per-predicate R@20 (with constraint) of the motion-decided predicates, per task."""
    motion = {
        task: {
            p: round(100 * float(r["with/recall_per_predicate@20"][PREDICATES.index(p)]), 1)
            for p in MOTION_PREDICATES
        }
        for task, r in results.items()
        if "with/recall_per_predicate@20" in r
    }
    lines = ["motion-decided predicates, per-predicate R@20 with constraint (%):"]
    lines += [
        f"  {t:8s} " + "  ".join(f"{p}={v}" for p, v in row.items()) for t, row in motion.items()
    ]
    return "\n".join(lines), motion


ASSEMBLY = Assembly(
    name="mosa",
    description="Train and evaluate the MoSA reference assembly.",
    build_model=build_model,
    add_arguments=add_arguments,
    highlight=MOTION_PREDICATES,
    chart_title="MoSA per-predicate recall (head to tail; red: motion-decided predicates)",
    report=motion_report,
)


def main(argv: Sequence[str] | None = None) -> dict[str, object]:
    """Run the assembly (see ``python examples/mosa.py --help``); returns the run's summary."""
    return run(ASSEMBLY, argv)


if __name__ == "__main__":
    main()
