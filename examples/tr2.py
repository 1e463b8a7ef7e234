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
    training: attention cross-entropy, class-weighted focal loss for spatial / contacting
              (multilabel_focal_loss), object loss x 10, and the guidance of the feature
              differences by the sentence differences, one projection a group
              (TemporalDifferenceGuidance, Eq. 2)

The union feature stands in for the code's CLIP image embedding of the union crop on the
synthetic benchmark; with real data, ``--union-clip DIR`` replaces it with precomputed CLIP
embeddings (one ``<video_id>.pt`` a video: a ``(T, P, E)`` tensor in the graph's pair order).

    python examples/tr2.py                       # TR², every task, with / no / top-6
    python examples/tr2.py --guidance binary     # one variant (any flag below)
    python examples/studies.py tr2-table4 tr2-table3 tr2-fig4   # the paper's tables, paired seeds

Recall is also reported by how often a video's relations change (--change-strata, default 0.3
0.45: TR²'s Fig. 5). `python examples/tr2.py --help` lists every flag.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dsgg_layers import (
    MessageToken,
    SentenceClassifier,
    SpatialTemporalEncoder,
    TemporalDifferenceGuidance,
    ValidRows,
    inverse_log_frequency,
    multilabel_focal_loss,
    softmax_focal_loss,
)
from dsgg_layers.data import VideoGraph
from dsgg_layers.metrics import predicate_probabilities
from dsgg_layers.text import tr2_prompts
from dsgg_layers.vocab import OBJECT_CLASSES, PREDICATE_GROUPS, PREDICATES

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the shared harness, beside this file
import harness
import pair_models
from ag_task import Data
from harness import Assembly
from pair_models import object_predictions, pair_inputs

# ------------------------------------------------------------------------------------ the model


class TR2(nn.Module):
    """TR²: relation feature fusion, message token, sentence classifier, text guidance.

    Keeps the harness's contract: in training ``model(graph, rows=rows)`` returns the named
    losses (``"attention"``, ``"spatial"``, ``"contacting"``, ``"object"`` and one
    ``"guidance_<group>"`` a group); in evaluation ``model(graph, task=task, rows=rows)`` returns
    the Action Genome evaluator's predictions.

    Args:
        feature_dim: width of the per-box visual features.
        union_dim: width of the union-region features (or of the CLIP union embeddings).
        class_semantics: ``(36, S)`` semantic vectors of the object classes.
        sentences: ``(36, 26, E)`` embeddings of the prompted sentences (``tr2_sentences``).
        frequencies: ``(26,)`` training positives of each predicate (the focal weights).
        d_model, nhead, dim_feedforward, dropout: transformer sizes.
        spatial_layers, temporal_layers: encoder depths (the code: 1 and 3).
        spatial: use the spatial encoder (Table IV).
        decoder: use the temporal encoder (the paper's "decoder"; Table IV).
        token: use the message token (Table IV).
        guidance: ``"difference"`` (Eq. 2), ``"direct"`` (Eq. 4), ``"binary"`` (TR²^bin) or
            ``"none"``.
        classifier: ``"sentence"`` (the code's PredCls / SGCls heads) or ``"linear"``.
        positions: ``"rank"`` (the code), ``"slot"`` (the frame's slot in the video) or
            ``"frame"`` (the code's layout indexed by the frame's slot instead of its rank).
        temporal_norm: ``"code"`` (no norm after the temporal layers' feed-forward, as the
            code) or ``"standard"`` (a post-norm there too).
        first: the message token at a track's first frame, ``"self"`` (code) or ``"zero"``.
        object_weight: weight of the object loss (the code's ``-object_loss 10``).
        gamma: focal exponent of the spatial / contacting loss.
        guidance_weight: weight of each group's guidance loss (the code: 1).
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
    ) -> None:
        super().__init__()
        self.register_buffer("class_semantics", class_semantics.float())
        in_dim = pair_models.pair_input_dim(feature_dim, union_dim, class_semantics)
        self.pair_proj = nn.Sequential(nn.Linear(in_dim, d_model), nn.LayerNorm(d_model))
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
        self.classifier = classifier
        self.guidance = (
            None if guidance == "none" else TemporalDifferenceGuidance(width, tables, mode=guidance)
        )
        self.object_classifier = nn.Linear(feature_dim, len(OBJECT_CLASSES))
        for group in ("spatial", "contacting"):
            alpha = inverse_log_frequency(frequencies[PREDICATE_GROUPS[group]])
            self.register_buffer(f"alpha_{group}", alpha)
        self.object_weight, self.gamma, self.guidance_weight = object_weight, gamma, guidance_weight

    def relation_features(
        self, g: VideoGraph, object_probs: Tensor | None = None, rows: ValidRows | None = None
    ) -> Tensor:
        """Fused relation features ``(B, T, P, W)`` (``W = 2 d_model`` with the token)."""
        rows = ValidRows(g.mask) if rows is None else rows
        x = self.pair_proj(pair_inputs(g, self.class_semantics, object_probs))
        x = self.encoder(x, rows)
        return x if self.token is None else self.token(x, rows)

    def predicate_logits(self, x: Tensor, object_labels: Tensor, mask: ValidRows) -> Tensor:
        """The 26 predicate logits ``(B, T, P, 26)``, group by group."""
        if self.classifier == "sentence":
            parts = [self.heads[g](x, object_labels, mask) for g in PREDICATE_GROUPS]
        else:
            parts = [self.heads[g](x) for g in PREDICATE_GROUPS]
        return torch.cat(parts, -1)

    def classify_objects(self, g: VideoGraph) -> Tensor:
        """Object class logits ``(B, T, P, 36)`` from the object features (SGCls)."""
        return self.object_classifier(g.object_features)

    def forward(
        self, g: VideoGraph, *, task: str = "predcls", rows: ValidRows | None = None
    ) -> dict[str, Tensor]:
        """Losses in training (ground-truth pairs), predictions in evaluation (``task``)."""
        if self.training:
            return self.losses(g, rows)
        preds, object_probs = object_predictions(g, task, lambda: self.classify_objects(g))
        rows = ValidRows(g.mask) if rows is None else rows
        x = self.relation_features(g, object_probs, rows)
        logits = self.predicate_logits(x, preds["object_labels"], rows)
        preds["predicate_scores"] = predicate_probabilities(logits.float())
        return preds

    def losses(self, g: VideoGraph, rows: ValidRows | None) -> dict[str, Tensor]:
        mask, relations = g.mask, g.relations.bool()
        rows = ValidRows(mask) if rows is None else rows
        x = self.relation_features(g, rows=rows)
        logits = self.predicate_logits(x, g.object_labels, rows).float()
        att = PREDICATE_GROUPS["attention"]
        has_att = mask & relations[..., att].any(-1)
        out = {  # cross-entropy (the focal loss at gamma 0 is exactly it; 0 without a label)
            "attention": softmax_focal_loss(logits[..., att], relations[..., att].long().argmax(-1),
                                            gamma=0.0, mask=has_att),
        }  # fmt: skip
        for group in ("spatial", "contacting"):
            s = PREDICATE_GROUPS[group]
            out[group] = multilabel_focal_loss(
                logits[..., s], relations[..., s], alpha=getattr(self, f"alpha_{group}"),
                gamma=self.gamma, mask=mask,
            )  # fmt: skip
        objects = self.classify_objects(g).float()
        out["object"] = self.object_weight * F.cross_entropy(objects[mask], g.object_labels[mask])
        if self.guidance is not None:
            groups = {name: relations[..., s] for name, s in PREDICATE_GROUPS.items()}
            for name, loss in self.guidance(x.float(), mask, groups, g.object_labels).items():
                out[f"guidance_{name}"] = self.guidance_weight * loss
        return out


# ------------------------------------------------------------------------------ flags and model


def add_arguments(p: argparse._ActionsContainer) -> None:
    """TR²'s own flags: sizes, its parts (Table IV), guidance (Table III, Fig. 4), options."""
    p.set_defaults(constraints=["with", "no", "topk"], change_strata=[0.3, 0.45])
    p.add_argument("--d-model", type=int, default=128)
    p.add_argument("--nhead", type=int, default=4)
    p.add_argument("--spatial-layers", type=int, default=1)
    p.add_argument("--temporal-layers", type=int, default=3)
    p.add_argument("--no-spatial", action="store_true", help="ablation: no spatial encoder")
    p.add_argument("--no-decoder", action="store_true", help="ablation: no temporal encoder")
    p.add_argument("--no-token", action="store_true", help="ablation: no message token")
    p.add_argument(
        "--guidance",
        choices=("difference", "direct", "binary", "none"),
        default="difference",
        help="text guidance: Eq. 2, Eq. 4, TR²^bin, none",
    )
    p.add_argument("--guidance-weight", type=float, default=1.0)
    p.add_argument(
        "--classifier",
        choices=("sentence", "linear"),
        default="sentence",
        help="object-conditioned sentence classifier (code) or linear heads",
    )
    p.add_argument(
        "--positions",
        choices=("rank", "slot", "frame"),
        default="rank",
        help="temporal positions: rank within the track (code), frame slot, or the code's "
        "layout indexed by frame slot",
    )
    p.add_argument(
        "--temporal-norm",
        choices=("code", "standard"),
        default="code",
        help="temporal layers: no norm after the feed-forward (code) or a post-norm there",
    )
    p.add_argument(
        "--first",
        choices=("self", "zero"),
        default="self",
        help="message token at a track's first frame: code (self) or Eq. 1 (zero)",
    )
    p.add_argument("--object-weight", type=float, default=10.0, help="object loss weight")
    p.add_argument("--gamma", type=float, default=2.0, help="focal exponent (spatial/contacting)")
    p.add_argument(
        "--wording",
        choices=("code", "template"),
        default="code",
        help="prompted sentences: the code's wording or the paper's template",
    )
    p.add_argument(
        "--union-clip",
        default=None,
        metavar="DIR",
        help="precomputed CLIP union embeddings, <video_id>.pt (T, P, E) each",
    )


def with_union_clip(videos: Sequence[VideoGraph], folder: str | Path) -> list[VideoGraph]:
    """The videos with their union features replaced by precomputed CLIP embeddings.

    Raises:
        FileNotFoundError: a video has no ``<video_id>.pt`` in ``folder``.
        ValueError: an embedding's ``(T, P)`` differs from the video's.
    """
    out = []
    for v in videos:
        path = Path(folder) / f"{v.video_ids[0]}.pt"
        if not path.is_file():
            raise FileNotFoundError(f"--union-clip: no {path.name} in {folder}")
        emb = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(emb, Tensor) or emb.dim() != 3 or emb.shape[:2] != v.mask.shape[1:]:
            shape = tuple(emb.shape) if isinstance(emb, Tensor) else type(emb).__name__
            raise ValueError(
                f"--union-clip: {path.name}: expected a (T, P, E) tensor with (T, P) = "
                f"{tuple(v.mask.shape[1:])}, got {shape}"
            )
        out.append(dataclasses.replace(v, union_features=emb.float().unsqueeze(0)))
    return out


def sentence_table(args: argparse.Namespace) -> Tensor:
    """The ``(36, 26, E)`` sentence embeddings (``--random-text``: random unit vectors)."""
    prompts = [s for row in tr2_prompts(wording=args.wording) for s in row]
    flat = pair_models.text_embeddings(args, prompts)
    return flat.view(len(OBJECT_CLASSES), len(PREDICATES), flat.shape[-1])


def build_model(args: argparse.Namespace, data: Data) -> TR2:
    """The TR² model the command line asks for (feature widths from the data)."""
    if args.union_clip is not None:
        data.train[:] = with_union_clip(data.train, args.union_clip)
        for task, videos in data.test.items():
            data.test[task] = with_union_clip(videos, args.union_clip)
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
    )  # fmt: skip
    model.train_change_share = pair_models.label_change_share(data.train)
    return model


ASSEMBLY = Assembly(
    name="tr2",
    description="Train and evaluate the TR² reference assembly.",
    build_model=build_model,
    add_arguments=add_arguments,
    chart_title="TR² per-predicate recall (head to tail)",
)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Train and evaluate TR² as the flags ask; returns the run's summary."""
    summary = harness.run(ASSEMBLY, argv)
    share = summary["model"].train_change_share
    print(f"relation changes: {100 * share:.1f}% of annotated training pair-frames differ from "
          "the pair's previous frame")  # fmt: skip
    return summary


if __name__ == "__main__":
    main()
