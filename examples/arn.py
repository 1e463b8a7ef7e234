"""ARN reference assembly: a one-stage (DETR-style) model trained end to end from frames.

ARN (*End-to-End Entity-Predicate Association Reasoning for Dynamic Scene Graph Generation*) on
frames rendered from the synthetic benchmark (`render_maps`: a backbone's output, CPU-sized):
frame encoder -> entity decoder over paired queries (`PairQueries`) -> boxes and classes; one
predicate decoder a group over the temporal memory (`TemporalMemory`: key frame + 2 references
within +-4) -> PAP + HA (`AssociationReasoning`) -> triplet-category classifiers from the group
prompts' CLIP text (`TripletCategoryClassifier`). Training: Hungarian matching (object 1,
predicate 2, box 2.5, GIoU 1), sigmoid focal losses, box L1 + GIoU (`set_prediction`). SGDet.
The CLIP L1 alignment term needs CLIP image embeddings: off (`embedding_alignment_loss`).

    python examples/arn.py                     # ARN, SGDet
    python examples/studies.py arn-table3      # the paper's Table 3 rows, paired seeds
    python examples/arn.py --input rgb --backbone resnet18 --image-size 128  # torchvision's
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dsgg_layers import (
    AssociationReasoning,
    PairHungarianMatcher,
    PairQueries,
    TemporalMemory,
    TransformerDecoderLayer,
    TripletCategoryClassifier,
    ValidRows,
    box_convert,
    reference_frames,
    sigmoid_focal_loss,
    stack_references,
)
from dsgg_layers.data import VideoGraph
from dsgg_layers.set_prediction import (
    match_index,
    matched_box_losses,
    matched_class_loss,
    matched_localization,
    query_targets,
)
from dsgg_layers.text import arn_prompts
from dsgg_layers.vocab import OBJECT_CLASSES, PREDICATE_GROUPS

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the shared harness, beside this file
import harness
import pair_models
from ag_task import Data
from harness import Assembly

GROUPS = tuple(PREDICATE_GROUPS)
NUM_OBJECTS = len(OBJECT_CLASSES)


class ARN(nn.Module):
    """One-stage ARN on rendered frames (losses in training, SGDet predictions in evaluation).

    ``text``: ``{group: (P, 35, E)}`` triplet-prompt embeddings; ``loss``: ``"focal"`` (ARN) or
    ``"ce"`` (Table 3's baseline: softmax with a no-object class, BCE predicates);
    ``classifier``: ``"clip"`` (triplet categories) or ``"linear"``; ``pap``, ``ha``: Table 3's
    last rows; ``references`` within ``window`` (OED: 2); ``aux``: DETR's auxiliary losses;
    ``anchors``: see [`EntityDecoder`][pair_models.EntityDecoder]; ``frames``: the
    [`FrameEncoder`][pair_models.FrameEncoder]'s options.
    """

    def __init__(self, channels: int, text: dict[str, Tensor], *, d_model: int = 64,
                 nhead: int = 4, dim_feedforward: int = 128, num_queries: int = 8,
                 loss: str = "focal", classifier: str = "clip", pap: bool = True, ha: bool = True,
                 references: int = 2, window: int = 4, entity_layers: int = 2, aux: bool = True,
                 anchors: bool = True, proposals: bool = True, **frames: Any) -> None:  # fmt: skip
        super().__init__()
        self.loss_kind, self.classifier_kind = loss, classifier
        self.references, self.window, self.aux = references, window, aux
        self.frames = pair_models.FrameEncoder(d_model, nhead, dim_feedforward, channels=channels,
                                               **frames)  # fmt: skip
        dec = partial(TransformerDecoderLayer, d_model, nhead, dim_feedforward, 0.0)
        self.entities = pair_models.EntityDecoder(
            d_model, nhead, dim_feedforward, num_queries, NUM_OBJECTS + (loss == "ce"),
            layers=entity_layers, anchors=anchors, proposals=proposals)  # fmt: skip
        self.queries = PairQueries(num_queries, d_model, len(GROUPS))
        self.memory = TemporalMemory(references + 1, d_model)
        self.predicate_decoders = nn.ModuleList(dec() for _ in GROUPS)
        self.reasoning = (
            AssociationReasoning(d_model, nhead, len(GROUPS), hierarchical=ha) if pap else None
        )
        self.heads = nn.ModuleDict({g: TripletCategoryClassifier(d_model, text[g])
                                    if classifier == "clip" else nn.Linear(d_model, len(text[g]))
                                    for g in GROUPS})  # fmt: skip
        heads = [self.entities.object_head, *(() if classifier == "clip" else self.heads.values())]
        for lin in heads if loss == "focal" else ():  # Lin et al.'s prior: 1% a class
            nn.init.constant_(lin.bias, -math.log(99.0))
        activation = "softmax" if loss == "ce" else "sigmoid"
        self.matcher = PairHungarianMatcher(class_activation=activation)
        self.found = torch.zeros(4, dtype=torch.long)  # evaluation: matched_localization counts

    def outputs(self, scene: VideoGraph) -> tuple[dict[str, Any], Tensor]:
        """Per existing frame: box, class and predicate outputs, and the frames' ``(B, T)``
        index (``frame_mask.nonzero()``)."""
        feats = self.frames(scene)  # (B, T, S, D)
        frames = scene.frame_mask.nonzero()  # (N, 2): the key frames
        mode = "random" if self.training else "nearest"
        ref = reference_frames(scene.frame_mask, self.references, self.window, mode=mode)
        stacked, present = stack_references(feats, frames, *ref)  # (N, 1 + R, S, D)
        memory, mem_pos, mem_mask = self.memory(stacked, frame_mask=present)
        key, pos = stacked[:, 0], self.queries()
        Q = pos["subject_pos"].shape[0]
        query_pos = torch.cat((pos["subject_pos"], pos["object_pos"]))
        h, layers = self.entities(key, self.frames.pos(key.shape[1]), query_pos)
        entity = h[:, :Q] + h[:, Q:]
        branches = [dec(entity, memory, memory_mask=mem_mask, query_pos=pos["predicate_pos"][i],
                        memory_pos=mem_pos)
                    for i, dec in enumerate(self.predicate_decoders)]  # fmt: skip
        if self.reasoning is not None:
            branches = self.reasoning(branches, entity, memory, memory_pos=mem_pos,
                                      query_pos=pos["object_pos"],
                                      memory_mask=mem_mask)  # fmt: skip
        out = dict(layers[-1])
        aux = layers[:-1] if self.aux and self.training else []
        category, predicate = {}, []
        for g, x in zip(GROUPS, branches, strict=True):
            category[g] = logits = self.heads[g](x)
            clip = self.classifier_kind == "clip"  # Eq. 15 in logit space
            predicate.append(self.heads[g].predicate_logits(logits) if clip else logits)
        out |= {"predicate_logits": torch.cat(predicate, -1), "category_logits": category,
                "aux": aux}  # type: ignore[dict-item]  # fmt: skip
        return out, frames

    def forward(self, g: VideoGraph, *, task: str = "sgdet", rows: Any = None) -> dict[str, Tensor]:
        """Losses in training, SGDet predictions in evaluation (every task is SGDet here)."""
        scene = g.ground_truth
        out, frames = self.outputs(scene)
        tgt = scene.frame_targets(frames)
        return self.losses(out, tgt) if self.training else self.predictions(scene, out, frames, tgt)

    def losses(self, out: dict[str, Any], tgt: dict[str, Tensor]) -> dict[str, Tensor]:
        keys = ("subject_boxes", "object_boxes", "object_logits", "predicate_logits")
        idx = match_index(self.matcher({k: out[k] for k in keys}, tgt), tgt["mask"].device)
        losses = self._entity_losses(out, tgt, idx) | self.entities.proposal_losses(out, tgt)
        for i, layer in enumerate(out["aux"]):  # the last layer's matching for every layer
            losses |= {f"{k}_{i}": v for k, v in self._entity_losses(layer, tgt, idx).items()}
        Q = out["object_logits"].shape[1]
        predicates = query_targets(tgt["predicates"], idx, Q, fill=False)
        objects = query_targets((tgt["object_labels"] - 1).clamp(min=0), idx, Q)  # no person
        pred_loss = out["predicate_logits"].new_zeros(())
        for g, span in PREDICATE_GROUPS.items():
            target, logits = predicates[..., span], out["category_logits"][g]
            if self.classifier_kind == "clip":
                target = self.heads[g].category_targets(target, objects)
            if self.loss_kind == "ce":
                loss = F.binary_cross_entropy_with_logits(logits, target.float(), reduction="sum")
            else:
                loss = sigmoid_focal_loss(logits, target, alpha=0.25, reduction="sum")
            pred_loss = pred_loss + loss / idx.normalizer
        losses["predicate"] = 2.0 * pred_loss
        return losses

    def _entity_losses(self, out: dict[str, Tensor], tgt: dict[str, Tensor], idx: Any):
        """Object class (weight 1), box L1 (2.5) and GIoU (1) of one layer's outputs."""
        l1, giou = matched_box_losses(out, tgt, idx)
        cls = matched_class_loss(out["object_logits"], tgt["object_labels"], idx,
                                 loss=self.loss_kind)  # fmt: skip
        return {"object": cls, "box_l1": 2.5 * l1, "box_giou": giou}

    def predictions(self, scene: VideoGraph, out: dict[str, Any], frames: Tensor, tgt: Any):
        """The evaluator's SGDet predictions, ``(B, T, Q, ...)``, boxes in pixels; counts what
        the matched queries find (``self.found``)."""
        logits = out["object_logits"]
        probs = logits.softmax(-1)[..., :NUM_OBJECTS] if self.loss_kind == "ce" else \
            logits.sigmoid()  # fmt: skip
        scores, labels = probs[..., 1:].max(-1)  # never the person as the object
        keys = ("subject_boxes", "object_boxes", "object_logits", "predicate_logits")
        idx = match_index(self.matcher({k: out[k] for k in keys}, tgt), labels.device)
        self.found += matched_localization(out | {"object_labels": labels + 1}, tgt, idx)
        size = scene.image_size[frames[:, 0]].repeat(1, 2)[:, None]  # (N, 1, 4): w, h, w, h
        per_frame = {
            "mask": torch.ones_like(scores, dtype=torch.bool),
            **{k: box_convert(out[k], "cxcywh", "xyxy").clamp(0, 1) * size
               for k in ("subject_boxes", "object_boxes")},
            "object_labels": labels + 1, "object_scores": scores,
            "predicate_scores": out["predicate_logits"].float().sigmoid(),
        }  # fmt: skip
        rows = ValidRows(scene.frame_mask)  # the key frames back into the (B, T) grid
        return {k: rows.put(x) for k, x in per_frame.items()}


def add_arguments(p: argparse._ActionsContainer) -> None:
    """Sizes and Table 3's rows; 4 videos a batch (more optimiser steps: docs/arn.md)."""
    p.set_defaults(batch_size=4, tasks=["sgdet"], constraints=["with", "no"])
    p.add_argument("--d-model", type=int, default=64)
    p.add_argument("--queries", type=int, default=8, help="query pairs a frame")
    p.add_argument("--grid", type=int, default=32, help="side of the rendered maps")
    p.add_argument("--channels", type=int, default=8, help="rendered channels a group (x3)")
    p.add_argument("--patch", type=int, default=4, help="side of an encoder patch (token)")
    harness.choice(p, "--loss", ("focal", "ce"))
    harness.choice(p, "--classifier", ("clip", "linear"))
    p.add_argument("--no-pap", action="store_true", help="ablation: no PAP (and no HA)")
    p.add_argument("--no-ha", action="store_true", help="ablation: PAP without HA")
    p.add_argument("--no-aux", action="store_true", help="no auxiliary entity-decoder losses")
    p.add_argument("--no-anchors", action="store_true", help="OED's free queries, no proposals")
    p.add_argument("--no-proposals", action="store_true", help="no token proposals (one-stage)")
    harness.choice(p, "--input", ("maps", "rgb"), "rendered frames")
    harness.choice(p, "--backbone", ("small", "resnet18"), "CNN for --input rgb")
    p.add_argument("--image-size", type=int, default=64, help="side of the RGB frames")


def build_model(args: argparse.Namespace, data: Data) -> ARN:
    """The ARN model the command line asks for."""
    text = {g: pair_models.text_table(args, rows) for g, rows in arn_prompts().items()}
    return ARN(args.channels, text, d_model=args.d_model, num_queries=args.queries,
               loss=args.loss, classifier=args.classifier, pap=not args.no_pap,
               ha=not (args.no_pap or args.no_ha), aux=not args.no_aux, anchors=not args.no_anchors,
               proposals=not (args.no_proposals or args.no_anchors),
               grid=args.grid, patch=args.patch, input=args.input, image_size=args.image_size,
               backbone=args.backbone)  # fmt: skip


def localisation(model: ARN) -> tuple[str, dict[str, Any]]:
    """What the matched queries found on the test set: fractions of the annotated pairs."""
    pairs, *hits = model.found.tolist()
    keys = ("person_found", "object_found", "object_class")
    share = {k: round(h / max(pairs, 1), 4) for k, h in zip(keys, hits, strict=True)}
    text = f"matched queries on {pairs} annotated test pairs: " + ", ".join(
        f"{k} {100 * v:.1f}%" for k, v in share.items())  # fmt: skip
    return text, {"localisation": share}


ASSEMBLY = Assembly(
    name="arn", description="Train and evaluate the one-stage ARN on rendered frames.",
    build_model=build_model, add_arguments=add_arguments,
    chart_title="ARN per-predicate recall (SGDet)", model_report=localisation,
)  # fmt: skip


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Train and evaluate ARN as the flags ask; returns the run's summary."""
    return harness.run(ASSEMBLY, argv)


if __name__ == "__main__":
    main()
