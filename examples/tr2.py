"""TR² reference assembly: relation feature fusion, message token and text guidance.

TR² (*Cross-Modality Time-Variant Relation Learning for Generating Dynamic Scene Graphs*, ICRA
2023, arXiv:2305.08522) assembled from the library's blocks, as its public code runs it:

    pair representation (subject, object, union features, class semantics, boxes)
      -> spatial encoder over the pairs of each frame, no positions  (SpatialTemporalEncoder,
      -> temporal encoder along each pair track, the whole track,     positions="rank",
         positions = the frame's rank in its track (on queries and keys),  temporal_ffn_norm=False)
         no norm after the feed-forward (the code's temporal layers)
      -> message token [e_cur, e_prev * g(e_prev, e_cur)]             (MessageToken, Eq. 1)
      -> predicates: each group against the pair's object-class sentences
         "a photo of a person [predicate] a [object]"                 (SentenceClassifier)
    training: the code's predicate loss (tr2_predicate_loss), object loss x 10, and the
              guidance of the feature differences by the sentence differences, one
              projection a group (TemporalDifferenceGuidance, Eq. 2)

The union feature stands in for the code's CLIP image embedding of the union crop;
``--union-clip DIR`` reads precomputed ones (``with_union_features``). Recall is also reported
by how often a video's relations change (``--change-strata``: TR²'s Fig. 5).

    python examples/tr2.py                       # TR², every task, with / no / top-6
    python examples/studies.py tr2-table4 tr2-table3 tr2-fig4   # the paper's tables, paired seeds
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
    MessageToken,
    SentenceClassifier,
    SpatialTemporalEncoder,
    TemporalDifferenceGuidance,
    ValidRows,
    inverse_log_frequency,
    sttran_predicate_loss,
    tr2_predicate_loss,
)
from dsgg_layers.data import VideoGraph, with_union_features
from dsgg_layers.metrics import predicate_probabilities
from dsgg_layers.text import tr2_prompts
from dsgg_layers.vocab import PREDICATE_GROUPS

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the shared harness, beside this file
import harness
import pair_models
from ag_task import Data
from harness import Assembly, choice
from pair_models import PairFrontEnd


class TR2(nn.Module):
    """TR²: relation feature fusion, message token, sentence classifier, text guidance.

    The harness's contract: the named losses in training (one ``"guidance_<group>"`` a group
    among them), the evaluator's predictions in evaluation.

    Args:
        feature_dim, union_dim: widths of the box and union-region (or CLIP union) features.
        class_semantics: ``(36, S)`` semantic vectors of the object classes.
        sentences: ``(36, 26, E)`` embeddings of the prompted sentences (``tr2_sentences``).
        frequencies: ``(26,)`` training positives of each predicate (the focal weights).
        d_model, nhead, dim_feedforward, dropout, spatial_layers, temporal_layers: sizes (the
            code's depths: 1 and 3).
        spatial, decoder, token: use the spatial encoder, the temporal encoder (the paper's
            "decoder") and the message token (Table IV).
        guidance, classifier, positions, temporal_norm, first: as the flags of the same names
            (``--help``); the defaults are the public code's.
        object_weight, gamma, guidance_weight: the object loss weight (the code: 10), the focal
            exponent of the spatial / contacting loss, each group's guidance weight (1).
        loss: the predicate loss: ``"focal"`` (the code's) or ``"margin"`` (STTran's).
    """

    def __init__(
        self,
        feature_dim: int,
        union_dim: int,
        class_semantics: Tensor,
        sentences: Tensor,
        frequencies: Tensor,
        *,
        d_model: int = 128,
        nhead: int = 4,
        dim_feedforward: int = 256,
        dropout: float = 0.1,
        spatial_layers: int = 1,
        temporal_layers: int = 3,
        spatial: bool = True,
        decoder: bool = True,
        token: bool = True,
        guidance: str = "difference",
        classifier: str = "sentence",
        positions: str = "rank",
        temporal_norm: str = "code",
        first: str = "self",
        object_weight: float = 10.0,
        gamma: float = 2.0,
        guidance_weight: float = 1.0,
        loss: str = "focal",
    ) -> None:
        super().__init__()
        self.front = PairFrontEnd(feature_dim, union_dim, class_semantics, d_model)
        self.encoder = SpatialTemporalEncoder(
            d_model, nhead, dim_feedforward, dropout=dropout, positions=positions,
            temporal_ffn_norm=temporal_norm == "standard",
            spatial_layers=spatial_layers if spatial else 0,
            temporal_layers=temporal_layers if decoder else 0,
        )  # fmt: skip
        self.token = MessageToken(d_model, first=first) if token else None
        width = 2 * d_model if token else d_model
        tables = {g: sentences[:, s] for g, s in PREDICATE_GROUPS.items()}  # group columns
        if classifier == "sentence":
            self.heads = nn.ModuleDict({g: SentenceClassifier(width, t) for g, t in tables.items()})
        else:
            self.heads = nn.ModuleDict({g: nn.Linear(width, t.shape[1]) for g, t in tables.items()})
        self.classifier, self.loss = classifier, loss
        self.guidance = (
            None if guidance == "none" else TemporalDifferenceGuidance(width, tables, mode=guidance)
        )
        for group in ("spatial", "contacting"):
            alpha = inverse_log_frequency(frequencies[PREDICATE_GROUPS[group]])
            self.register_buffer(f"alpha_{group}", alpha)
        self.object_weight, self.gamma, self.guidance_weight = object_weight, gamma, guidance_weight

    def predicate_logits(
        self, g: VideoGraph, object_labels: Tensor, object_probs: Tensor | None = None,
        rows: ValidRows | None = None,
    ) -> tuple[Tensor, Tensor]:  # fmt: skip
        """Relation features ``(B, T, P, W)`` and the 26 predicate logits, group by group."""
        rows = ValidRows(g.mask) if rows is None else rows
        x = self.encoder(self.front(g, object_probs), rows)
        x = x if self.token is None else self.token(x, rows)
        if self.classifier == "sentence":
            parts = [self.heads[k](x, object_labels, rows) for k in PREDICATE_GROUPS]
        else:
            parts = [self.heads[k](x) for k in PREDICATE_GROUPS]
        return x, torch.cat(parts, -1)

    def forward(
        self, g: VideoGraph, *, task: str = "predcls", rows: ValidRows | None = None
    ) -> dict[str, Tensor]:
        """Losses in training (ground-truth pairs), predictions in evaluation (``task``)."""
        if self.training:
            return self.losses(g, rows)
        preds, object_probs = self.front.predictions(g, task)
        _, logits = self.predicate_logits(g, preds["object_labels"], object_probs, rows)
        preds["predicate_scores"] = predicate_probabilities(logits.float())
        return preds

    def losses(self, g: VideoGraph, rows: ValidRows | None) -> dict[str, Tensor]:
        relations = g.relations.bool()
        rows = ValidRows(g.mask) if rows is None else rows
        x, logits = self.predicate_logits(g, g.object_labels, rows=rows)
        alpha = {group: getattr(self, f"alpha_{group}") for group in ("spatial", "contacting")}
        out = (sttran_predicate_loss(logits.float(), relations, mask=rows) if self.loss == "margin"
               else tr2_predicate_loss(logits.float(), relations, mask=rows, alpha=alpha,
                                       gamma=self.gamma))  # fmt: skip
        out["object"] = self.object_weight * self.front.object_loss(g)
        if self.guidance is not None:
            groups = {name: relations[..., s] for name, s in PREDICATE_GROUPS.items()}
            for name, loss in self.guidance(x.float(), g.mask, groups, g.object_labels).items():
                out[f"guidance_{name}"] = self.guidance_weight * loss
        return out


# ------------------------------------------------------------------------------ flags and model


def add_arguments(p: argparse._ActionsContainer) -> None:
    """TR²'s own flags: sizes, its parts (Table IV), guidance (Table III, Fig. 4), options."""
    # fmt: off
    p.set_defaults(constraints=["with", "no", "topk"], change_strata=[0.3, 0.45])
    p.add_argument("--d-model", type=int, default=128)
    p.add_argument("--nhead", type=int, default=4)
    p.add_argument("--spatial-layers", type=int, default=1)
    p.add_argument("--temporal-layers", type=int, default=3)
    p.add_argument("--no-spatial", action="store_true", help="ablation: no spatial encoder")
    p.add_argument("--no-decoder", action="store_true", help="ablation: no temporal encoder")
    p.add_argument("--no-token", action="store_true", help="ablation: no message token")
    choice(p, "--guidance", ("difference", "direct", "binary", "none"),
           "text guidance: Eq. 2, Eq. 4, TR²^bin, none")
    p.add_argument("--guidance-weight", type=float, default=1.0)
    choice(p, "--classifier", ("sentence", "linear"),
           "object-conditioned sentence classifier (code) or linear heads")
    choice(p, "--positions", ("rank", "slot", "frame"), "temporal positions: rank within the "
           "track (code), frame slot, or the code's layout indexed by frame slot")
    choice(p, "--temporal-norm", ("code", "standard"),
           "temporal layers: no norm after the feed-forward (code) or a post-norm there")
    choice(p, "--first", ("self", "zero"),
           "message token at a track's first frame: code (self) or Eq. 1 (zero)")
    p.add_argument("--object-weight", type=float, default=10.0, help="object loss weight")
    p.add_argument("--gamma", type=float, default=2.0, help="focal exponent (spatial/contacting)")
    choice(p, "--loss", ("focal", "margin"), "predicate loss: focal (code) or STTran's margin")
    p.add_argument("--sentence-scale", type=float, default=1.0, help="sentence norm (code: 9.1)")
    choice(p, "--wording", ("code", "template"),
           "prompted sentences: the code's wording or the paper's template")
    p.add_argument("--union-clip", default=None, metavar="DIR",
                   help="precomputed CLIP union embeddings, <video_id>.pt (T, P, E) each")
    # fmt: on


def sentence_table(args: argparse.Namespace) -> Tensor:
    """The ``(36, 26, E)`` sentence embeddings (``--random-text``: random unit vectors), unit
    norm times ``--sentence-scale`` (the code's CLIP embeddings are not normalised: 9.1)."""
    return args.sentence_scale * pair_models.text_table(args, tr2_prompts(wording=args.wording))


def build_model(args: argparse.Namespace, data: Data) -> TR2:
    """The TR² model the command line asks for (feature widths from the data)."""
    if args.union_clip is not None:
        data.train[:] = with_union_features(data.train, args.union_clip)
        for task, videos in data.test.items():
            data.test[task] = with_union_features(videos, args.union_clip)
    example = data.train[0]
    model = TR2(
        example.object_features.shape[-1], example.union_features.shape[-1],
        data.class_semantics, sentence_table(args), data.frequencies,
        d_model=args.d_model, nhead=args.nhead, spatial_layers=args.spatial_layers,
        temporal_layers=args.temporal_layers, spatial=not args.no_spatial,
        decoder=not args.no_decoder, token=not args.no_token, guidance=args.guidance,
        classifier=args.classifier, positions=args.positions, first=args.first,
        temporal_norm=args.temporal_norm,
        object_weight=args.object_weight, gamma=args.gamma, guidance_weight=args.guidance_weight,
        loss=args.loss,
    )  # fmt: skip
    model.train_change_share = share = pair_models.label_change_share(data.train)
    print(f"relation changes: {100 * share:.1f}% of annotated training pair-frames change")
    return model


ASSEMBLY = Assembly(name="tr2", description="Train and evaluate the TR² reference assembly.",
                    build_model=build_model, add_arguments=add_arguments,
                    chart_title="TR² per-predicate recall (head to tail)")  # fmt: skip


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Train and evaluate TR² as the flags ask; returns the run's summary."""
    return harness.run(ASSEMBLY, argv)


if __name__ == "__main__":
    main()
