"""ARN reference assembly: a one-stage (DETR-style) model trained end to end from frames.

ARN (*End-to-End Entity-Predicate Association Reasoning for Dynamic Scene Graph Generation*)
assembled from the library's blocks, on frames rendered from the synthetic benchmark
(`dsgg_layers.data.render_maps`: low-resolution multi-channel maps, a stand-in for a backbone's
output that trains on a CPU):

    rendered frame -> patch embedding + learned positions -> transformer encoder
      -> entity decoder over paired queries (PairQueries: e^s, e^o)     -> boxes, object classes
      -> one predicate decoder a group over the temporal memory         (TemporalMemory,
         (key frame + 2 references within +-4), positions e^o + e^pred    reference_frames)
      -> PAP + HA in the last layer                                     (AssociationReasoning)
      -> triplet-category classifiers from the group prompts' CLIP text (TripletCategoryClassifier)
    training: Hungarian matching (PairHungarianMatcher: object 1, predicate 2, box 2.5, GIoU 1),
              sigmoid focal losses, box L1 + GIoU.

Evaluated on SGDet (the model finds its own boxes), with and no constraint.

    python examples/arn.py                     # ARN, SGDet
    python examples/studies.py arn-table3      # the paper's Table 3 rows, paired seeds
    python examples/arn.py --loss ce --classifier linear --no-pap --no-ha   # one row
    python examples/arn.py --input rgb                  # RGB frames through a small CNN
    python examples/arn.py --input rgb --backbone resnet18 --image-size 128  # torchvision's

The CLIP L1 alignment term (weight 20 in the paper) needs CLIP image embeddings of the frames,
which rendered maps do not have: it is off here (`embedding_alignment_loss` is the block).
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dsgg_layers import (
    AssociationReasoning,
    LearnedPositions,
    PairHungarianMatcher,
    PairQueries,
    TemporalMemory,
    TransformerDecoderLayer,
    TransformerEncoder,
    TransformerEncoderLayer,
    TripletCategoryClassifier,
    box_convert,
    elementwise_generalized_box_iou,
    reference_frames,
    sigmoid_focal_loss,
)
from dsgg_layers.data import VideoGraph, render_images, render_maps
from dsgg_layers.text import arn_prompts
from dsgg_layers.vocab import OBJECT_CLASSES, PREDICATE_GROUPS

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the shared harness, beside this file
import harness
import pair_models
from ag_task import Data
from harness import Assembly

GROUPS = tuple(PREDICATE_GROUPS)
NUM_OBJECTS = len(OBJECT_CLASSES)


def _backbone(name: str, d: int) -> tuple[nn.Module, int]:
    """A CNN for RGB frames and its stride: a small one, or torchvision's ResNet-18 (random
    weights: none can be downloaded here) up to its stride-16 stage."""
    if name == "small":
        conv = [nn.Conv2d(3, 32, 3, 2, 1), nn.ReLU(), nn.Conv2d(32, 64, 3, 2, 1), nn.ReLU(),
                nn.Conv2d(64, d, 3, 2, 1)]  # fmt: skip
        return nn.Sequential(*conv), 8
    try:
        from torchvision.models import resnet18
    except ImportError as e:
        raise ImportError("--backbone resnet18 needs torchvision (pip install torchvision)") from e
    r = resnet18(weights=None)
    layers = [r.conv1, r.bn1, r.relu, r.maxpool, r.layer1, r.layer2, r.layer3, nn.Conv2d(256, d, 1)]
    return nn.Sequential(*layers), 16


class ARN(nn.Module):
    """One-stage ARN on rendered frames; keeps the harness's contract (losses in training, the
    evaluator's SGDet predictions in evaluation).

    Args:
        channels: channels a group of the rendered maps (three groups).
        text: ``{group: (P, 35, E)}`` triplet-prompt embeddings (the 35 non-person objects).
        d_model, nhead, dim_feedforward: transformer sizes.
        num_queries: query pairs a frame.
        grid: side of the rendered maps; patch: side of a patch (tokens = (grid / patch)^2).
        loss: ``"focal"`` (sigmoid focal, ARN) or ``"ce"`` (softmax object cross-entropy with a
            no-object class and binary cross-entropy for predicates: Table 3's baseline).
        classifier: ``"clip"`` (triplet categories from the prompts) or ``"linear"``.
        pap, ha: the association blocks (Table 3's last rows).
        references: reference frames a key frame (OED: 2), within ``window``.
        entity_layers: layers of the entity decoder.
        aux: DETR's auxiliary losses: boxes and classes from every entity-decoder layer (the
            heads shared), trained on the last layer's matching.
        input: ``"maps"`` (``render_maps``, patch embedding) or ``"rgb"`` (``render_images``
            through a CNN backbone).
        image_size: side of the RGB images.
        backbone: ``"small"`` (three stride-2 convolutions, stride 8) or ``"resnet18"``
            (torchvision's, random weights, up to its stride-16 stage; needs torchvision).
    """

    def __init__(
        self,
        channels: int,
        text: dict[str, Tensor],
        *,
        d_model: int = 64,
        nhead: int = 4,
        dim_feedforward: int = 128,
        num_queries: int = 8,
        grid: int = 32,
        patch: int = 4,
        loss: str = "focal",
        classifier: str = "clip",
        pap: bool = True,
        ha: bool = True,
        references: int = 2,
        window: int = 4,
        entity_layers: int = 2,
        aux: bool = True,
        input: str = "maps",
        image_size: int = 64,
        backbone: str = "small",
    ) -> None:
        super().__init__()
        self.grid, self.loss_kind, self.classifier_kind = grid, loss, classifier
        self.references, self.window = references, window
        self.channels, self.input, self.image_size = channels, input, image_size
        if input == "maps":
            self.patch = nn.Conv2d(3 * channels, d_model, patch, stride=patch)
            tokens = (grid // patch) ** 2
        else:
            self.patch, stride = _backbone(backbone, d_model)
            tokens = ((image_size + stride - 1) // stride) ** 2  # the convolutions round up
        self.pos = LearnedPositions(tokens, d_model)

        def enc() -> TransformerEncoderLayer:
            return TransformerEncoderLayer(d_model, nhead, dim_feedforward, 0.0)

        def dec() -> TransformerDecoderLayer:
            return TransformerDecoderLayer(d_model, nhead, dim_feedforward, 0.0)

        self.encoder = TransformerEncoder(enc(), 1)
        self.entity_decoder = nn.ModuleList(dec() for _ in range(entity_layers))
        self.aux = aux
        self.queries = PairQueries(num_queries, d_model, len(GROUPS))
        self.memory = TemporalMemory(references + 1, d_model)
        self.predicate_decoders = nn.ModuleList(dec() for _ in GROUPS)
        self.reasoning = (
            AssociationReasoning(d_model, nhead, len(GROUPS), hierarchical=ha) if pap else None
        )
        self.sub_box = pair_models.mlp(d_model, d_model, 4)
        self.obj_box = pair_models.mlp(d_model, d_model, 4)
        self.object_head = nn.Linear(d_model, NUM_OBJECTS + (1 if loss == "ce" else 0))
        if loss == "focal":  # Lin et al.'s prior: every class starts at 1%
            nn.init.constant_(self.object_head.bias, -math.log(99.0))
        if classifier == "clip":
            self.heads = nn.ModuleDict({g: TripletCategoryClassifier(d_model, text[g])
                                        for g in GROUPS})  # fmt: skip
        else:
            self.heads = nn.ModuleDict({g: nn.Linear(d_model, text[g].shape[0]) for g in GROUPS})
            if loss == "focal":
                for head in self.heads.values():
                    nn.init.constant_(head.bias, -math.log(99.0))
        self.matcher = PairHungarianMatcher(
            class_activation="softmax" if loss == "ce" else "sigmoid"
        )

    # ------------------------------------------------------------------------ the network

    def _encode(self, maps: Tensor) -> Tensor:
        """``(N, C, H, W)`` -> ``(N, S, D)`` encoder features."""
        x = self.patch(maps).flatten(2).transpose(1, 2)
        pos = self.pos(x.shape[1])
        return self.encoder(x, pos=pos)

    def outputs(self, scene: VideoGraph) -> tuple[dict[str, Tensor], Tensor]:
        """Per existing frame: box, class and predicate outputs, and the frames' ``(B, T)``
        index (``frame_mask.nonzero()``)."""
        if self.input == "maps":
            maps = render_maps(scene, size=self.grid, channels=self.channels)  # (B, T, 3C, H, W)
        else:
            maps = render_images(scene, size=self.image_size)  # (B, T, 3, H, W)
        B, T = maps.shape[:2]
        feats = self._encode(maps.flatten(0, 1)).unflatten(0, (B, T))  # (B, T, S, D)
        frames = scene.frame_mask.nonzero()  # (N, 2): the key frames
        mode = "random" if self.training else "nearest"
        ref, ok = reference_frames(scene.frame_mask, self.references, self.window, mode=mode)
        b, t = frames[:, 0], frames[:, 1]
        slots = torch.cat((t[:, None], ref[b, t]), 1)  # (N, 1 + R)
        present = torch.cat((torch.ones_like(t[:, None], dtype=torch.bool), ok[b, t]), 1)
        memory, mem_pos, mem_mask = self.memory(feats[b[:, None], slots], frame_mask=present)
        key = feats[b, t]
        pos = self.queries()
        Q = pos["subject_pos"].shape[0]
        query_pos = torch.cat((pos["subject_pos"], pos["object_pos"]))
        h = torch.zeros(len(b), 2 * Q, key.shape[-1], device=key.device)
        key_pos = self.pos(key.shape[1])
        aux = []
        for i, layer in enumerate(self.entity_decoder):
            h = layer(h, key, query_pos=query_pos, memory_pos=key_pos)
            if self.aux and self.training and i < len(self.entity_decoder) - 1:
                aux.append(self._entity_outputs(h[:, :Q], h[:, Q:]))
        sub, obj = h[:, :Q], h[:, Q:]
        entity = sub + obj
        branches = [dec(entity, memory, memory_mask=mem_mask, query_pos=pos["predicate_pos"][i],
                        memory_pos=mem_pos)
                    for i, dec in enumerate(self.predicate_decoders)]  # fmt: skip
        if self.reasoning is not None:
            branches = self.reasoning(
                branches, entity, memory, memory_pos=mem_pos, query_pos=pos["object_pos"],
                memory_mask=mem_mask,
            )  # fmt: skip
        out = self._entity_outputs(sub, obj)
        category, predicate = {}, []
        for g, x in zip(GROUPS, branches, strict=True):
            logits = self.heads[g](x)
            category[g] = logits
            if self.classifier_kind == "clip":
                head = self.heads[g]
                per = logits.unflatten(-1, (head.num_predicates, head.num_objects)).amax(-1)
                predicate.append(per)  # Eq. 15 in logit space (sigmoid is monotone)
            else:
                predicate.append(logits)
        out["predicate_logits"] = torch.cat(predicate, -1)
        out["category_logits"] = category  # type: ignore[assignment]
        out["aux"] = aux  # type: ignore[assignment]
        return out, frames

    def _entity_outputs(self, sub: Tensor, obj: Tensor) -> dict[str, Tensor]:
        return {
            "subject_boxes": self.sub_box(sub).sigmoid(),
            "object_boxes": self.obj_box(obj).sigmoid(),
            "object_logits": self.object_head(obj),
        }

    # ------------------------------------------------------------------------- training

    def forward(self, g: VideoGraph, *, task: str = "sgdet", rows: Any = None) -> dict[str, Tensor]:
        """Losses in training, SGDet predictions in evaluation (every task is SGDet here)."""
        scene = g.ground_truth
        out, frames = self.outputs(scene)
        if self.training:
            return self.losses(out, self.targets(scene, frames))
        return self.predictions(g, scene, out, frames)

    @staticmethod
    def targets(scene: VideoGraph, frames: Tensor) -> dict[str, Tensor]:
        """The annotated pairs of the key frames, boxes ``cxcywh`` normalised."""
        b, t = frames[:, 0], frames[:, 1]
        subj, obj = scene.normalized_boxes()
        return {
            "object_labels": scene.object_labels[b, t].clamp(min=0),
            "predicates": scene.relations[b, t],
            "subject_boxes": box_convert(subj[b, t], "xyxy", "cxcywh"),
            "object_boxes": box_convert(obj[b, t], "xyxy", "cxcywh"),
            "mask": scene.mask[b, t] & scene.relations[b, t].any(-1),
        }

    def losses(self, out: dict[str, Any], tgt: dict[str, Tensor]) -> dict[str, Tensor]:
        matched = self.matcher({k: out[k] for k in self.matcher_keys}, tgt)
        dev = tgt["mask"].device
        q_idx = torch.cat([q for q, _ in matched]).to(dev)
        t_idx = torch.cat([t for _, t in matched]).to(dev)
        f_idx = torch.cat([torch.full_like(q, i) for i, (q, _) in enumerate(matched)]).to(dev)
        n = max(len(q_idx), 1)
        idx = (f_idx, q_idx, t_idx)
        losses = self._entity_losses(out, tgt, idx, n)
        for i, layer in enumerate(out["aux"]):  # the last layer's matching for every layer
            losses |= {f"{k}_{i}": v for k, v in self._entity_losses(layer, tgt, idx, n).items()}
        N, Q = out["object_logits"].shape[:2]
        labels = tgt["object_labels"][f_idx, t_idx]
        predicates = torch.zeros_like(out["predicate_logits"], dtype=torch.bool)
        predicates[f_idx, q_idx] = tgt["predicates"][f_idx, t_idx]
        pred_loss = out["predicate_logits"].new_zeros(())
        for g, span in PREDICATE_GROUPS.items():
            target = predicates[..., span]
            logits = out["category_logits"][g]
            if self.classifier_kind == "clip":
                obj = torch.zeros(N, Q, dtype=torch.long, device=labels.device)
                obj[f_idx, q_idx] = (labels - 1).clamp(min=0)  # the table has no person column
                target = self.heads[g].category_targets(target, obj)
            if self.loss_kind == "ce":
                pred_loss = pred_loss + F.binary_cross_entropy_with_logits(
                    logits, target.float(), reduction="sum") / n  # fmt: skip
            else:
                pred_loss = pred_loss + sigmoid_focal_loss(logits, target, alpha=0.25,
                                                           reduction="sum") / n  # fmt: skip
        losses["predicate"] = 2.0 * pred_loss
        return losses

    matcher_keys = ("subject_boxes", "object_boxes", "object_logits", "predicate_logits")

    def _entity_losses(
        self, out: dict[str, Tensor], tgt: dict[str, Tensor], idx: tuple[Tensor, ...], n: int
    ) -> dict[str, Tensor]:
        """Object class (weight 1), box L1 (2.5) and GIoU (1) of one layer's outputs."""
        f_idx, q_idx, t_idx = idx
        N, Q = out["object_logits"].shape[:2]
        labels = tgt["object_labels"][f_idx, t_idx]
        losses: dict[str, Tensor] = {}
        if self.loss_kind == "ce":
            cls = torch.full((N, Q), NUM_OBJECTS, dtype=torch.long, device=labels.device)
            cls[f_idx, q_idx] = labels
            losses["object"] = F.cross_entropy(out["object_logits"].flatten(0, 1), cls.flatten())
        else:
            onehot = torch.zeros_like(out["object_logits"])
            onehot[f_idx, q_idx, labels] = 1.0
            losses["object"] = sigmoid_focal_loss(out["object_logits"], onehot, alpha=0.25,
                                                  reduction="sum") / n  # fmt: skip
        l1, giou = out["subject_boxes"].new_zeros(()), out["subject_boxes"].new_zeros(())
        for key in ("subject_boxes", "object_boxes"):
            p, t = out[key][f_idx, q_idx], tgt[key][f_idx, t_idx]
            l1 = l1 + (p - t).abs().sum() / n
            pb, tb = box_convert(p, "cxcywh", "xyxy"), box_convert(t, "cxcywh", "xyxy")
            giou = giou + (1 - elementwise_generalized_box_iou(pb, tb)).sum() / n
        losses["box_l1"], losses["box_giou"] = 2.5 * l1, giou
        return losses

    # ----------------------------------------------------------------------- evaluation

    def predictions(
        self, g: VideoGraph, scene: VideoGraph, out: dict[str, Any], frames: Tensor
    ) -> dict[str, Tensor]:
        """The evaluator's SGDet predictions, ``(B, T, Q, ...)``, boxes in pixels."""
        B, T = scene.frame_mask.shape
        Q = out["object_logits"].shape[1]
        dev = out["object_logits"].device
        if self.loss_kind == "ce":
            probs = out["object_logits"].softmax(-1)[..., :NUM_OBJECTS]
        else:
            probs = out["object_logits"].sigmoid()
        scores, labels = probs[..., 1:].max(-1)  # never the person as the object
        labels = labels + 1
        size = scene.image_size[frames[:, 0]].repeat(1, 2)[:, None]  # (N, 1, 4): w, h, w, h

        def grid(x: Tensor, fill: float = 0.0) -> Tensor:
            full = torch.full((B, T, *x.shape[1:]), fill, dtype=x.dtype, device=dev)
            full[frames[:, 0], frames[:, 1]] = x
            return full

        boxes = {k: box_convert(out[k], "cxcywh", "xyxy") * size
                 for k in ("subject_boxes", "object_boxes")}  # fmt: skip
        mask = torch.zeros(B, T, Q, dtype=torch.bool, device=dev)
        mask[frames[:, 0], frames[:, 1]] = True
        return {
            "mask": mask,
            "subject_boxes": grid(boxes["subject_boxes"]),
            "object_boxes": grid(boxes["object_boxes"]),
            "object_labels": grid(labels),
            "object_scores": grid(scores),
            "predicate_scores": grid(out["predicate_logits"].float().sigmoid()),
        }


# ------------------------------------------------------------------------------ flags and runs


def add_arguments(p: argparse._ActionsContainer) -> None:
    """ARN's own flags: sizes and the rows of Table 3; a batch of 4 videos by default (a
    DETR-style model needs optimiser steps more than large batches: at 8 epochs, 16 videos a
    batch gave SGDet no-constraint R@20 2.2 and 4 videos 6.0, at 1.1x the time)."""
    p.set_defaults(batch_size=4, tasks=["sgdet"], constraints=["with", "no"])
    p.add_argument("--d-model", type=int, default=64)
    p.add_argument("--queries", type=int, default=8, help="query pairs a frame")
    p.add_argument("--grid", type=int, default=32, help="side of the rendered maps")
    p.add_argument("--channels", type=int, default=8, help="rendered channels a group (x3)")
    p.add_argument("--patch", type=int, default=4, help="side of an encoder patch (token)")
    p.add_argument("--loss", choices=("focal", "ce"), default="focal")
    p.add_argument("--classifier", choices=("clip", "linear"), default="clip")
    p.add_argument("--no-pap", action="store_true", help="ablation: no PAP (and no HA)")
    p.add_argument("--no-ha", action="store_true", help="ablation: PAP without HA")
    p.add_argument("--no-aux", action="store_true", help="no auxiliary entity-decoder losses")
    p.add_argument("--input", choices=("maps", "rgb"), default="maps", help="rendered frames")
    p.add_argument("--image-size", type=int, default=64, help="side of the RGB frames")
    p.add_argument("--backbone", choices=("small", "resnet18"), default="small",
                   help="CNN for --input rgb")  # fmt: skip


def build_model(args: argparse.Namespace, data: Data) -> ARN:
    """The ARN model the command line asks for."""
    prompts = arn_prompts()
    text = {}
    for g, rows in prompts.items():
        flat = pair_models.text_embeddings(args, [s for row in rows for s in row])
        text[g] = flat.view(len(rows), len(rows[0]), flat.shape[-1])
    return ARN(args.channels, text, d_model=args.d_model, num_queries=args.queries, grid=args.grid,
               patch=args.patch,
               loss=args.loss, classifier=args.classifier, pap=not args.no_pap,
               ha=not (args.no_pap or args.no_ha), aux=not args.no_aux, input=args.input,
               image_size=args.image_size, backbone=args.backbone)  # fmt: skip


ASSEMBLY = Assembly(
    name="arn",
    description="Train and evaluate the one-stage ARN reference assembly on rendered frames.",
    build_model=build_model,
    add_arguments=add_arguments,
    chart_title="ARN per-predicate recall (SGDet)",
)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Train and evaluate ARN as the flags ask; returns the run's summary."""
    return harness.run(ASSEMBLY, argv)


if __name__ == "__main__":
    main()
