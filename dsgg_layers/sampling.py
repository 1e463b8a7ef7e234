"""Positive and negative detected pairs for relation scoring (RS-Net, Sec. 4.2), vectorised.

*RS-Net: Context-Aware Relation Scoring for Dynamic Scene Graph Generation* (arXiv:2511.08651)
trains its relation score on every detected pair, with or without an annotated relation:

1. [`assign_relations`][]: a detected pair is **positive** when its subject and object boxes
   both overlap those of an annotated ground-truth pair of the same frame with IoU >= 0.5 and the
   same classes, and takes that pair's relations (the paper does not say how it labels pairs).
   With ``one_to_one=True`` an annotated pair labels only its best-overlapping detection, as
   STTran's public code does in SGDet training (its ``assign_relations`` gives each ground-truth
   box the detection of largest IoU > 0.5 not yet taken, and that detection the ground truth's
   class; ``same_class=False`` drops the class condition as it does): second detections of an
   annotated object are then negatives. Every other detected pair is a negative candidate.
2. [`filter_negatives`][]: a negative that shares the subject/object class combination of a
   positive of the same frame and overlaps it with IoU > 0.5 is dropped (a near-duplicate of a
   positive: a second detection of the same object, which would teach the scorer to reject what
   it must accept).
3. [`cap_negatives`][]: if the negatives still exceed 1.2 times the positives, the excess is
   discarded at random (seeded generator).

The paper leaves open which boxes the IoU of step 2 uses and whether the cap of step 3 counts a
frame or the whole batch (one video in the paper): both are arguments (defaults: both boxes; per
video). Its motivating sentence ("negatives that share the class combination of a positive but
exhibit poor spatial alignment, low IoU with the ground truth, are noisy") and its rule (drop
those that overlap a positive *above* 0.5) describe different negatives; this module implements
the rule, the only one the paper states precisely.

Everything is a batched tensor computation on the ``(..., T, P)`` pair grid (``(..., T, P, P)``
or ``(..., T, P, G)`` comparisons within a frame); no loop over videos, frames or pairs.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import torch
from torch import Tensor

from dsgg_layers._checks import check_choice, check_positive, check_tensor
from dsgg_layers.boxes import box_iou, box_union

__all__ = ["RelationAssignment", "assign_relations", "cap_negatives", "filter_negatives"]

OverlapBoxes = Literal["both", "subject", "object", "union"]


class RelationAssignment(NamedTuple):
    """What [`assign_relations`][] returns.

    Attributes:
        positive: ``(..., T, P)`` bool, the detected pairs matched to an annotated pair.
        negative: ``(..., T, P)`` bool, the other detected pairs (the negative candidates).
        matched: ``(..., T, P)`` int64, the index ``g`` of the matched ground-truth pair (-1
            for none).
        relations: ``(..., T, P, C)`` bool, the matched pair's relations (none for the others),
            or ``None`` when no ``gt_relations`` were given.

    Examples:
        >>> box = torch.tensor([[[[0.0, 0.0, 10.0, 10.0]]]])
        >>> labels, mask = torch.tensor([[[3]]]), torch.ones(1, 1, 1, dtype=torch.bool)
        >>> a = assign_relations(box, box, labels, mask, box, box, labels, mask)
        >>> a.positive.tolist(), a.negative.tolist(), a.relations is None
        ([[[True]]], [[[False]]], True)
    """

    positive: Tensor
    negative: Tensor
    matched: Tensor
    relations: Tensor | None


def _same_class(
    object_labels: Tensor,
    other_object_labels: Tensor,
    subject_labels: Tensor | None,
    other_subject_labels: Tensor | None,
) -> Tensor:
    """``(..., P, Q)``: pairs ``p`` and ``q`` of a frame have the same class combination."""
    same = object_labels.unsqueeze(-1) == other_object_labels.unsqueeze(-2)
    if subject_labels is not None and other_subject_labels is not None:
        same = same & (subject_labels.unsqueeze(-1) == other_subject_labels.unsqueeze(-2))
    return same


def assign_relations(
    subject_boxes: Tensor,
    object_boxes: Tensor,
    object_labels: Tensor,
    mask: Tensor,
    gt_subject_boxes: Tensor,
    gt_object_boxes: Tensor,
    gt_object_labels: Tensor,
    gt_mask: Tensor,
    *,
    gt_relations: Tensor | None = None,
    subject_labels: Tensor | None = None,
    gt_subject_labels: Tensor | None = None,
    iou_threshold: float = 0.5,
    one_to_one: bool = False,
    same_class: bool = True,
) -> RelationAssignment:
    """Label detected pairs positive or negative against the annotated pairs of their frame.

    A detected pair is positive when some annotated pair of the same frame (with a relation, when
    ``gt_relations`` is given) has the same object class (and subject class, when both subject
    labels are given; no class condition with ``same_class=False``) and both its boxes overlap
    the detected ones with IoU >= ``iou_threshold``; it is matched to the one whose smaller box
    IoU is largest (the first on ties). RS-Net (arXiv:2511.08651, Sec. 4.2) does not say how it
    labels pairs.

    ``one_to_one=True`` keeps, for every annotated pair, only its best-overlapping detection
    among those that qualify (a detection that is the best of several annotated pairs takes the
    one it overlaps most): duplicate detections become negatives. STTran's public code assigns
    one detection to each ground-truth box this way (greedily, giving a box whose best detection
    is taken its next best; here it gets none, which differs only when two annotated objects
    overlap one detection above the threshold).

    Args:
        subject_boxes: ``xyxy`` subject boxes of the detected pairs.
        object_boxes: ``xyxy`` object boxes of the detected pairs.
        object_labels: detected object classes.
        mask: ``True`` where a detected pair exists.
        gt_subject_boxes: subject boxes of the annotated pairs, on the same frames (``T``) and
            videos.
        gt_object_boxes: object boxes of the annotated pairs.
        gt_object_labels: object classes of the annotated pairs.
        gt_mask: ``True`` where an annotated pair exists.
        gt_relations: the annotated relations (multi-label); pairs without any are not matched.
        subject_labels: detected subject classes (optional; Action Genome's subject is always
            the person).
        gt_subject_labels: annotated subject classes (optional).
        iou_threshold: the IoU both boxes need (0.5, Action Genome's detection criterion).
        one_to_one: at most one detection per annotated pair.
        same_class: require the detected classes to be the annotated ones.

    Returns:
        [`RelationAssignment`][].

    Shape:
        - detected: boxes ``(..., T, P, 4)``, labels and mask ``(..., T, P)``
        - ground truth: boxes ``(..., T, G, 4)``, labels and mask ``(..., T, G)``,
          relations ``(..., T, G, C)``

    Raises:
        TypeError, ValueError: shapes, dtypes or devices disagree, or ``iou_threshold`` is not
            in ``(0, 1]``.

    Examples:
        >>> box = torch.tensor([[[[0.0, 0.0, 10.0, 10.0]]]])            # (T=1, P=1)
        >>> labels, mask = torch.tensor([[[3]]]), torch.ones(1, 1, 1, dtype=torch.bool)
        >>> a = assign_relations(box, box, labels, mask, box, box + 1.0, labels, mask)
        >>> a.positive.tolist(), a.matched.tolist()
        ([[[True]]], [[[0]]])
    """
    dims: dict[str, tuple[int, str]] = {}
    check_tensor(subject_boxes, "subject_boxes", ("...", "T", "P", 4), dims=dims, dtype="float")
    lead = tuple(subject_boxes.shape[:-1])
    check_tensor(object_boxes, "object_boxes", (*lead, 4), dims=dims, dtype="float")
    check_tensor(object_labels, "object_labels", lead, dims=dims, dtype="int")
    check_tensor(mask, "mask", lead, dims=dims, dtype="bool")
    check_tensor(gt_subject_boxes, "gt_subject_boxes", ("...", "T", "G", 4), dims=dims,
                 dtype="float")  # fmt: skip
    glead = tuple(gt_subject_boxes.shape[:-1])
    check_tensor(gt_object_boxes, "gt_object_boxes", (*glead, 4), dims=dims, dtype="float")
    check_tensor(gt_object_labels, "gt_object_labels", glead, dims=dims, dtype="int")
    check_tensor(gt_mask, "gt_mask", glead, dims=dims, dtype="bool")
    if gt_relations is not None:
        check_tensor(gt_relations, "gt_relations", (*glead, "C"), dims=dims, dtype="bool")
    for value, name, shape in ((subject_labels, "subject_labels", lead),
                               (gt_subject_labels, "gt_subject_labels", glead)):  # fmt: skip
        if value is not None:
            check_tensor(value, name, shape, dims=dims, dtype="int")
    check_positive(iou_threshold, "iou_threshold", integer=False)
    if iou_threshold > 1:
        raise ValueError(f"iou_threshold: expected a value in (0, 1], got {iou_threshold}")
    iou = torch.minimum(box_iou(subject_boxes, gt_subject_boxes),
                        box_iou(object_boxes, gt_object_boxes))  # fmt: skip  # (..., T, P, G)
    annotated = gt_mask if gt_relations is None else gt_mask & gt_relations.any(-1)
    ok = (iou >= iou_threshold) & annotated.unsqueeze(-2) & mask.unsqueeze(-1)
    if same_class:
        ok = ok & _same_class(object_labels, gt_object_labels, subject_labels, gt_subject_labels)
    best = iou.masked_fill(~ok, -1.0)
    if one_to_one and best.shape[-1] and best.shape[-2]:
        # each annotated pair keeps its best detection only (first on ties)
        top = best.argmax(-2, keepdim=True)  # (..., T, 1, G)
        keep = torch.arange(best.shape[-2], device=best.device)[:, None] == top
        best = best.masked_fill(~keep, -1.0)
    if best.shape[-1]:
        value, index = best.max(-1)
        positive = value >= 0
    else:  # no annotated pair in any frame
        positive = torch.zeros_like(mask)
        index = torch.zeros(mask.shape, dtype=torch.long, device=mask.device)
    matched = torch.where(positive, index, -1)
    relations = None
    if gt_relations is not None:
        C = gt_relations.shape[-1]
        gathered = torch.gather(
            gt_relations, -2, index.clamp(min=0).unsqueeze(-1).expand(*index.shape, C)
        ) if best.shape[-1] else torch.zeros(*mask.shape, C, dtype=torch.bool,
                                             device=mask.device)  # fmt: skip
        relations = gathered & positive.unsqueeze(-1)
    return RelationAssignment(positive, mask & ~positive, matched, relations)


def _overlap(a_subject: Tensor, a_object: Tensor, boxes: OverlapBoxes) -> Tensor:
    """``(..., P, P)`` IoU between the pairs of a frame, by the boxes ``boxes`` names."""
    if boxes == "subject":
        return box_iou(a_subject, a_subject)
    if boxes == "object":
        return box_iou(a_object, a_object)
    if boxes == "union":
        union = box_union(a_subject, a_object)
        return box_iou(union, union)
    return torch.minimum(box_iou(a_subject, a_subject), box_iou(a_object, a_object))


def filter_negatives(
    negative: Tensor,
    positive: Tensor,
    subject_boxes: Tensor,
    object_boxes: Tensor,
    object_labels: Tensor,
    *,
    subject_labels: Tensor | None = None,
    iou_threshold: float = 0.5,
    boxes: OverlapBoxes = "both",
) -> Tensor:
    """Drop the negatives that nearly duplicate a positive of their frame (RS-Net, Sec. 4.2).

    A negative is dropped when a positive pair of the same frame has the same object class (and
    subject class, with ``subject_labels``) and overlaps it with IoU > ``iou_threshold``.

    Args:
        negative: the candidate negatives ([`assign_relations`][]).
        positive: the positives.
        subject_boxes: ``xyxy`` subject boxes of the detected pairs.
        object_boxes: ``xyxy`` object boxes of the detected pairs.
        object_labels: detected object classes.
        subject_labels: detected subject classes (optional).
        iou_threshold: the overlap above which a negative is dropped (paper: 0.5).
        boxes: the boxes whose IoU is compared, which the paper does not say: ``"both"``
            (default; the subject boxes and the object boxes each overlap above the threshold,
            as positives are matched), ``"subject"``, ``"object"`` or ``"union"`` (the pairs'
            union boxes).

    Returns:
        ``(..., T, P)`` bool: the negatives kept.

    Shape:
        - negative, positive, object_labels, subject_labels: ``(..., T, P)``
        - subject_boxes, object_boxes: ``(..., T, P, 4)``

    Raises:
        TypeError, ValueError: shapes or dtypes disagree, or an option is invalid.

    Examples:
        >>> s = torch.tensor([[[0.0, 0, 10, 10]] * 3])                  # (T=1, P=3)
        >>> o = torch.tensor([[[20.0, 0, 30, 10], [21, 0, 31, 10], [60, 60, 70, 70]]])
        >>> labels = torch.tensor([[5, 5, 5]])
        >>> pos, neg = torch.tensor([[True, False, False]]), torch.tensor([[False, True, True]])
        >>> filter_negatives(neg, pos, s, o, labels).tolist()   # pair 1 duplicates the positive
        [[False, False, True]]
    """
    dims: dict[str, tuple[int, str]] = {}
    check_tensor(negative, "negative", ("...", "T", "P"), dims=dims, dtype="bool")
    lead = tuple(negative.shape)
    check_tensor(positive, "positive", lead, dims=dims, dtype="bool")
    check_tensor(subject_boxes, "subject_boxes", (*lead, 4), dims=dims, dtype="float")
    check_tensor(object_boxes, "object_boxes", (*lead, 4), dims=dims, dtype="float")
    check_tensor(object_labels, "object_labels", lead, dims=dims, dtype="int")
    if subject_labels is not None:
        check_tensor(subject_labels, "subject_labels", lead, dims=dims, dtype="int")
    check_positive(iou_threshold, "iou_threshold", integer=False, allow_zero=True)
    check_choice(boxes, "boxes", ("both", "subject", "object", "union"))
    overlap = _overlap(subject_boxes, object_boxes, boxes)  # (..., T, P, Q)
    same = _same_class(object_labels, object_labels, subject_labels, subject_labels)
    near = (overlap > iou_threshold) & same & positive.unsqueeze(-2)
    return negative & ~positive & ~near.any(-1)


def cap_negatives(
    negative: Tensor,
    positive: Tensor,
    *,
    ratio: float = 1.2,
    per: Literal["video", "frame"] = "video",
    generator: torch.Generator | None = None,
) -> Tensor:
    """Keep at most ``floor(ratio * positives)`` negatives, discarding the excess at random.

    RS-Net (arXiv:2511.08651, Sec. 4.2): "if the number of negative relations still exceeds 1.2
    times that of the positives, we randomly discard the excess negatives". Which negatives are
    kept is a uniform random choice among the group's negatives, drawn from ``generator``
    (reproducible with a seeded one and the same batching: the random keys are drawn over the
    padded batch). A group without positives keeps no negative.

    Args:
        negative: the negatives (after [`filter_negatives`][]).
        positive: the positives.
        ratio: the most negatives a positive (paper: 1.2).
        per: the group the count is over: ``"video"`` (default: the paper's batch is one video)
            or ``"frame"``.
        generator: the random generator (its device is where the random keys are drawn; they are
            moved to the masks' device).

    Returns:
        ``(..., T, P)`` bool: the negatives kept; in every group at most
        ``min(#negatives, floor(ratio * #positives))``, exactly that many.

    Shape:
        - negative, positive: ``(..., T, P)``

    Raises:
        TypeError, ValueError: shapes or dtypes disagree, or an option is invalid.

    Examples:
        >>> neg = torch.tensor([[[False, True, True, True, True]]])
        >>> pos = torch.tensor([[[True, False, False, False, False]]])
        >>> gen = torch.Generator().manual_seed(0)
        >>> int(cap_negatives(neg, pos, generator=gen).sum())    # floor(1.2 * 1) = 1
        1
    """
    dims: dict[str, tuple[int, str]] = {}
    check_tensor(negative, "negative", ("...", "T", "P"), dims=dims, dtype="bool")
    check_tensor(positive, "positive", tuple(negative.shape), dims=dims, dtype="bool")
    check_positive(ratio, "ratio", integer=False, allow_zero=True)
    check_choice(per, "per", ("video", "frame"))
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator: expected a torch.Generator, got {type(generator).__name__}")
    group = negative.shape[-1:] if per == "frame" else negative.shape[-2:]
    neg = negative.flatten(-len(group))  # (..., N): empty leading dims are fine
    pos = positive.flatten(-len(group))
    # floor(ratio * positives) in integers: exact for ratios with up to 6 decimals
    per_million = round(ratio * 1_000_000)
    cap = torch.div(pos.sum(-1, keepdim=True) * per_million, 1_000_000, rounding_mode="floor")
    device = negative.device if generator is None else generator.device
    keys = torch.rand(neg.shape, generator=generator, device=device).to(negative.device)
    keys = keys.masked_fill(~neg, 2.0)  # non-negatives rank last
    rank = keys.argsort(-1).argsort(-1)
    return (neg & (rank < cap)).reshape(negative.shape)
