"""Action Genome model helpers the pair-track assemblies share (MoSA, RS-Net, TR², ARN).

The inputs of a pair (subject, object and union features, class semantics, boxes), the object
predictions a task asks for, the share of pair-frames whose relations change, and the text
embeddings of prompts (real CLIP, or ``--random-text``).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from dsgg_layers.data import VideoGraph
from dsgg_layers.message import label_changes
from dsgg_layers.text import encode_prompts

__all__ = [
    "label_change_share",
    "object_predictions",
    "pair_input_dim",
    "pair_inputs",
    "text_embeddings",
]


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
