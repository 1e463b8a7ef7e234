"""The Action Genome pair front end the pair-track assemblies share (MoSA, RS-Net, TR²), and
their helpers (ARN's too).

[`PairFrontEnd`][] holds what every two-stage Action Genome model starts and ends with: the
object classes' semantics, a pair's inputs (subject, object and union features, class
semantics, boxes) and their projection, the object classifier SGCls uses, its loss, and the
object side of a task's predictions. The helpers: the share of pair-frames whose relations
change, the text embeddings of prompts (real CLIP, or ``--random-text``), the two-layer MLP
the heads of ARN and UASAN use, and the one-stage models' frame encoder ([`FrameEncoder`][]:
rendered frames -> patch or CNN features -> a transformer encoder) and entity decoder
([`EntityDecoder`][]: paired queries -> each layer's boxes and object classes).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dsgg_layers import (
    AnchorBoxes,
    LearnedPositions,
    TransformerDecoderLayer,
    TransformerEncoder,
    TransformerEncoderLayer,
    refine_boxes,
)
from dsgg_layers.data import VideoGraph, render_images, render_maps
from dsgg_layers.message import label_changes
from dsgg_layers.set_prediction import MatchIndex, matched_box_losses, matched_class_loss
from dsgg_layers.text import encode_prompts
from dsgg_layers.vocab import OBJECT_CLASSES

__all__ = [
    "EntityDecoder",
    "FrameEncoder",
    "PairFrontEnd",
    "label_change_share",
    "mlp",
    "object_predictions",
    "pair_input_dim",
    "pair_inputs",
    "text_embeddings",
    "text_table",
]


def mlp(d_in: int, hidden: int, out: int) -> nn.Sequential:
    """``Linear -> ReLU -> Linear``."""
    return nn.Sequential(nn.Linear(d_in, hidden), nn.ReLU(), nn.Linear(hidden, out))


def pair_input_dim(feature_dim: int, union_dim: int, class_semantics: Tensor) -> int:
    """The width of :func:`pair_inputs`: ``2 F + U + S + 8`` (subject, object, union, class
    semantics, two normalised boxes)."""
    return 2 * feature_dim + union_dim + class_semantics.shape[1] + 8


def label_change_share(videos: Iterable[VideoGraph]) -> float:
    """The share of annotated pair-frames (with an earlier frame) whose label set differs from
    the pair's previous frame, pooled over ``videos`` (their ground truth)."""
    changed = total = 0
    for v in videos:  # the videos of a split, once: a statistic, not a forward pass
        g = v.ground_truth
        c, valid = label_changes(g.relations.bool(), g.mask)
        changed, total = changed + int(c.sum()), total + int(valid.sum())
    return changed / max(total, 1)


def pair_inputs(
    g: VideoGraph, class_semantics: Tensor, object_probs: Tensor | None = None
) -> Tensor:
    """The per-pair input of the assemblies: subject, object and union features, the object's
    class semantics and both normalised boxes, ``(B, T, P, 2F + U + S + 8)``.

    The semantics are those of the given classes (PredCls, SGDet's detector labels), or the
    class distribution ``object_probs`` predicted for SGCls mixes them.
    """
    boxes = torch.cat(g.normalized_boxes(), -1)
    if object_probs is None:
        semantics = class_semantics[g.object_labels.clamp(min=0)]
    else:
        semantics = object_probs @ class_semantics
    return torch.cat(
        (g.subject_features, g.object_features, g.union_features, semantics, boxes), -1
    )


def object_predictions(
    g: VideoGraph, task: str, object_logits: Callable[[], Tensor]
) -> tuple[dict[str, Tensor], Tensor | None]:
    """The object side of the evaluator's predictions for ``task``, and for SGCls the predicted
    class distribution (normalised, the person excluded) to condition the predicates on.

    SGCls classifies the ground-truth boxes with ``object_logits()`` (never as the person, the
    subject); PredCls takes the given classes, SGDet the detector's classes and scores.
    """
    preds = {"mask": g.mask, "subject_boxes": g.subject_boxes, "object_boxes": g.object_boxes}
    if task != "sgcls":
        preds["object_labels"] = g.object_labels
        if g.object_scores is not None:
            preds["object_scores"] = g.object_scores
        return preds, None
    probs = object_logits().float().softmax(-1)
    probs[..., 0] = 0
    scores, labels = probs.max(-1)
    preds |= {"object_labels": labels, "object_scores": scores}
    return preds, probs / probs.sum(-1, keepdim=True)


def text_embeddings(args: argparse.Namespace, prompts: Sequence[Any], dim: int = 512) -> Tensor:
    """CLIP text embeddings of ``prompts`` (``--clip-model``, ``--clip-pretrained``), or, with
    ``--random-text``, random unit vectors from ``--seed`` (machines without open_clip)."""
    if args.random_text:
        gen = torch.Generator().manual_seed(args.seed)
        return F.normalize(torch.randn(len(prompts), dim, generator=gen), dim=-1)
    return encode_prompts(prompts, model=args.clip_model, pretrained=args.clip_pretrained)


def text_table(args: argparse.Namespace, rows: Sequence[Sequence[str]]) -> Tensor:
    """[`text_embeddings`][] of a table of sentences (rows of equal length): ``(R, C, E)``."""
    flat = text_embeddings(args, [s for row in rows for s in row])
    return flat.view(len(rows), len(rows[0]), flat.shape[-1])


class PairFrontEnd(nn.Module):
    """A pair's inputs and their projection; the object classifier, its loss and predictions.

    Args:
        feature_dim: width of the per-box visual features.
        union_dim: width of the union-region features.
        class_semantics: ``(36, S)`` semantic vectors of the object classes (a buffer).
        d_model: width of the projection (``Linear`` + ``LayerNorm``).

    Shape:
        - [`inputs`][]: ``(B, T, P, 2F + U + S + 8)``; [`forward`][]: ``(B, T, P, d_model)``
        - [`object_logits`][]: ``(B, T, P, 36)``
    """

    def __init__(self, feature_dim: int, union_dim: int, class_semantics: Tensor, d_model: int):
        super().__init__()
        self.register_buffer("class_semantics", class_semantics.float())
        in_dim = pair_input_dim(feature_dim, union_dim, class_semantics)
        self.pair_proj = nn.Sequential(nn.Linear(in_dim, d_model), nn.LayerNorm(d_model))
        self.object_classifier = nn.Linear(feature_dim, len(OBJECT_CLASSES))

    def inputs(self, g: VideoGraph, object_probs: Tensor | None = None) -> Tensor:
        """[`pair_inputs`][] with these class semantics."""
        return pair_inputs(g, self.class_semantics, object_probs)

    def forward(self, g: VideoGraph, object_probs: Tensor | None = None) -> Tensor:
        """The projected pair inputs."""
        return self.pair_proj(self.inputs(g, object_probs))

    def object_logits(self, g: VideoGraph) -> Tensor:
        """Object class logits from the object features (float32)."""
        return self.object_classifier(g.object_features).float()

    def object_loss(self, g: VideoGraph) -> Tensor:
        """Cross-entropy of the object classifier on the existing pairs."""
        return F.cross_entropy(self.object_logits(g)[g.mask], g.object_labels[g.mask])

    def predictions(self, g: VideoGraph, task: str) -> tuple[dict[str, Tensor], Tensor | None]:
        """[`object_predictions`][] with this classifier."""
        return object_predictions(g, task, lambda: self.object_logits(g))


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


class FrameEncoder(nn.Module):
    """A one-stage model's frames -> encoder features ``(B, T, S, D)`` and their positions.

    ``input="maps"``: [`render_maps`][dsgg_layers.data.render_maps] (``3 * channels`` maps of
    side ``grid``, a stand-in for a backbone's output that trains on a CPU) through a patch
    embedding of side ``patch``; ``"rgb"``: [`render_images`][dsgg_layers.data.render_images]
    of side ``image_size`` through a CNN (``backbone``: ``"small"``, stride 8, or torchvision's
    ``"resnet18"``, stride 16). Then learned positions and one transformer encoder layer.
    """

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int, *, input: str = "maps",
                 channels: int = 8, grid: int = 32, patch: int = 4, image_size: int = 64,
                 backbone: str = "small") -> None:  # fmt: skip
        super().__init__()
        self.input, self.channels, self.grid, self.image_size = input, channels, grid, image_size
        if input == "maps":
            self.patch = nn.Conv2d(3 * channels, d_model, patch, stride=patch)
            tokens = (grid // patch) ** 2
        else:
            self.patch, stride = _backbone(backbone, d_model)
            tokens = ((image_size + stride - 1) // stride) ** 2  # the convolutions round up
        self.pos = LearnedPositions(tokens, d_model)
        layer = TransformerEncoderLayer(d_model, nhead, dim_feedforward, 0.0)
        self.encoder = TransformerEncoder(layer, 1)

    def forward(self, scene: VideoGraph) -> Tensor:
        """``(B, T, S, D)`` encoder features of every frame slot of ``scene``."""
        if self.input == "maps":
            maps = render_maps(scene, size=self.grid, channels=self.channels)  # (B, T, 3C, H, W)
        else:
            maps = render_images(scene, size=self.image_size)  # (B, T, 3, H, W)
        x = self.patch(maps.flatten(0, 1)).flatten(2).transpose(1, 2)
        return self.encoder(x, pos=self.pos(x.shape[1])).unflatten(0, maps.shape[:2])


def cell_boxes(side: int, device: torch.device | None = None) -> Tensor:
    """The ``(side * side, 4)`` normalised ``cxcywh`` boxes of a square token grid, row-major."""
    c = (torch.arange(side, device=device, dtype=torch.float32) + 0.5) / side
    cy, cx = torch.meshgrid(c, c, indexing="ij")
    return torch.stack((cx, cy, *(torch.full_like(cx, 1 / side),) * 2), -1).flatten(0, 1)


class EntityDecoder(nn.Module):
    """A one-stage model's entity decoder: ``Q`` pair queries (``2 Q`` rows, the subjects then
    the objects) over a frame's tokens -> every layer's boxes and object class logits.

    ``anchors=True``: each half has a learned anchor box ([`AnchorBoxes`][dsgg_layers.queries.
    AnchorBoxes]), a layer's query position is the embedding of its current box, it predicts
    offsets and [`refine_boxes`][dsgg_layers.queries.refine_boxes] moves the box for the next
    layer (DAB-DETR, Deformable DETR); the tokens' cells are embedded by the same map as the
    memory positions. ``False``: OED's free queries, the given positions (``query_pos``,
    ``memory_pos``), boxes regressed from scratch by every layer.
    """

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int, num_queries: int,
                 num_classes: int, *, layers: int = 2, anchors: bool = True,
                 proposals: bool = False) -> None:  # fmt: skip
        super().__init__()
        self.layers = nn.ModuleList(TransformerDecoderLayer(d_model, nhead, dim_feedforward, 0.0)
                                    for _ in range(layers))  # fmt: skip
        self.sub_box, self.obj_box = mlp(d_model, d_model, 4), mlp(d_model, d_model, 4)
        self.object_head = nn.Linear(d_model, num_classes)
        self.anchors = AnchorBoxes(2 * num_queries, d_model) if anchors or proposals else None
        self.num_queries = num_queries
        self.token_box = mlp(d_model, d_model, 4) if proposals else None
        self.token_class = nn.Linear(d_model, num_classes) if proposals else None
        if self.token_class is not None:  # the focal prior: every class starts at 1%
            nn.init.constant_(self.token_class.bias, -math.log(99.0))

    def forward(self, memory: Tensor, memory_pos: Tensor, query_pos: Tensor
                ) -> tuple[Tensor, list[dict[str, Tensor]]]:  # fmt: skip
        """``memory`` ``(N, S, D)`` (a square grid of tokens) -> the last hidden states
        ``(N, 2 Q, D)`` and every layer's ``subject_boxes`` / ``object_boxes`` ``(N, Q, 4)``
        and ``object_logits``."""
        Q, N = self.num_queries, memory.shape[0]
        h = memory.new_zeros(N, 2 * Q, memory.shape[-1])
        proposals = None
        if self.anchors is not None:
            cells = cell_boxes(math.isqrt(memory.shape[1]), memory.device)
            memory_pos = self.anchors.position(cells)
            ref = self.anchors().expand(N, 2 * Q, 4)
        if self.token_box is not None:  # two-stage: the best object tokens anchor the objects
            prior = torch.cat((cells[:, :2], 2 * cells[:, 2:]), -1)  # two cells wide
            proposals = {"object_boxes": refine_boxes(prior, self.token_box(memory)),
                         "object_logits": self.token_class(memory)}  # fmt: skip
            top = proposals["object_logits"][..., 1:].amax(-1).topk(Q, dim=1).indices
            picked = proposals["object_boxes"].gather(1, top[..., None].expand(N, Q, 4))
            ref = torch.cat((ref[:, :Q], picked.detach()), 1)
        outs = []
        for layer in self.layers:
            pos = query_pos if self.anchors is None else self.anchors.position(ref)
            h = layer(h, memory, query_pos=pos, memory_pos=memory_pos)
            delta = torch.cat((self.sub_box(h[:, :Q]), self.obj_box(h[:, Q:])), 1)
            boxes = delta.sigmoid() if self.anchors is None else refine_boxes(ref, delta)
            if self.anchors is not None:
                ref = boxes.detach()
            outs.append({"subject_boxes": boxes[:, :Q], "object_boxes": boxes[:, Q:],
                         "object_logits": self.object_head(h[:, Q:])})  # fmt: skip
        if proposals is not None:
            outs[-1]["proposals"] = proposals
        return h, outs

    @staticmethod
    def proposal_losses(out: dict[str, Any], tgt: dict[str, Tensor]) -> dict[str, Tensor]:
        """The object tokens' losses (two-stage): each annotated object is the target of the
        token whose cell holds its centre (CenterNet's assignment): focal class loss, box L1
        (weight 2.5) and GIoU. Empty without proposals."""
        p = out.get("proposals")
        if p is None:
            return {}
        side = math.isqrt(p["object_boxes"].shape[1])
        cell = (tgt["object_boxes"][..., :2] * side).long().clamp(0, side - 1)
        token = cell[..., 1] * side + cell[..., 0]
        frame, slot = tgt["mask"].nonzero(as_tuple=True)
        idx = MatchIndex(frame, token[frame, slot], slot)
        l1, giou = matched_box_losses(p, tgt, idx, keys=("object_boxes",))
        cls = matched_class_loss(p["object_logits"], tgt["object_labels"], idx)
        return {"proposal_class": cls, "proposal_l1": 2.5 * l1, "proposal_giou": giou}
