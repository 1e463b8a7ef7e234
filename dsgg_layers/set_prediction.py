"""DETR-style set-prediction losses for pair queries (OED, ARN).

A one-stage model predicts ``Q`` pairs a frame (subject box, object box and class, predicates);
[`PairHungarianMatcher`][dsgg_layers.matching.PairHungarianMatcher] assigns each annotated pair
one query, and the losses compare each matched query with its pair (DETR's ``SetCriterion``,
OED's ``SetCriterionDSGG``). The pieces, written once here:

- [`match_index`][]: the matcher's per-frame ``(query, target)`` lists as three flat index
  tensors ([`MatchIndex`][]), with DETR's loss normaliser (the matched count, at least 1).
- [`query_targets`][]: a per-target quantity placed at its matched query (the rest ``fill``):
  the targets of a classification over every query.
- [`matched_class_loss`][]: the object classes, sigmoid focal on the matched one-hot targets
  (ARN, OED with focal) or softmax cross-entropy with a no-object class (DETR).
- [`matched_box_losses`][]: L1 and ``1 - GIoU`` of the matched subject and object boxes.
- [`matched_localization`][]: how many annotated pairs the matched queries find (subject box,
  object box at IoU >= 0.5, object class): the diagnostic of a one-stage model's detector half.

Examples:
    >>> matches = [(torch.tensor([2]), torch.tensor([0])), (torch.tensor([]), torch.tensor([]))]
    >>> idx = match_index(matches)
    >>> idx.frame.tolist(), idx.query.tolist(), idx.target.tolist(), idx.normalizer
    ([0], [2], [0], 1)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from dsgg_layers._checks import check_choice, check_tensor
from dsgg_layers.boxes import box_convert, elementwise_box_iou, elementwise_generalized_box_iou
from dsgg_layers.losses import sigmoid_focal_loss

__all__ = [
    "MatchIndex",
    "match_index",
    "matched_box_losses",
    "matched_class_loss",
    "matched_localization",
    "query_targets",
]


class MatchIndex(NamedTuple):
    """The matched (frame, query, target) triples, flat, and DETR's loss normaliser.

    Examples:
        >>> idx = MatchIndex(torch.tensor([0, 0]), torch.tensor([3, 1]), torch.tensor([0, 1]))
        >>> idx.normalizer, MatchIndex(*(torch.zeros(0, dtype=torch.long),) * 3).normalizer
        (2, 1)
    """

    frame: Tensor
    """``(M,)`` the frame (row of the outputs) of each match."""
    query: Tensor
    """``(M,)`` the matched query."""
    target: Tensor
    """``(M,)`` the matched target slot of that frame."""

    @property
    def normalizer(self) -> int:
        """The number of matches, at least 1 (what the summed losses are divided by)."""
        return max(int(self.query.numel()), 1)


def match_index(
    matches: Sequence[tuple[Tensor, Tensor]], device: torch.device | str | None = None
) -> MatchIndex:
    """The matcher's output (one ``(query_index, target_index)`` pair a frame) as a
    [`MatchIndex`][] on ``device``.

    Args:
        matches: one ``(query_index, target_index)`` pair of equal-length int tensors a frame
            ([`PairHungarianMatcher`][dsgg_layers.matching.PairHungarianMatcher]'s output).
        device: where the indices go (default: where they are).

    Returns:
        The [`MatchIndex`][], frames numbered by their position in ``matches``.

    Raises:
        ValueError: a frame's two index tensors differ in length.

    Examples:
        >>> idx = match_index([(torch.tensor([1, 0]), torch.tensor([0, 2])), (torch.tensor([4]),
        ...                    torch.tensor([1]))])
        >>> idx.frame.tolist(), idx.query.tolist(), idx.target.tolist()
        ([0, 0, 1], [1, 0, 4], [0, 2, 1])
    """
    for i, (q, t) in enumerate(matches):
        if q.shape != t.shape:
            raise ValueError(
                f"matches[{i}]: expected query and target indices of one length, got "
                f"{tuple(q.shape)} and {tuple(t.shape)}"
            )
    if not matches:
        empty = torch.zeros(0, dtype=torch.long, device=device)
        return MatchIndex(empty, empty, empty)
    query = torch.cat([q.long() for q, _ in matches]).to(device)
    target = torch.cat([t.long() for _, t in matches]).to(device)
    frame = torch.cat([torch.full_like(q.long(), i) for i, (q, _) in enumerate(matches)])
    return MatchIndex(frame.to(device), query, target)


def query_targets(
    values: Tensor, index: MatchIndex, num_queries: int, fill: float | bool = 0
) -> Tensor:
    """``values`` ``(N, G, ...)`` (one a target slot) placed at their matched queries:
    ``(N, num_queries, ...)``, ``fill`` at the unmatched ones.

    Args:
        values: ``(N, G, ...)`` a quantity of every target slot (classes, predicate labels).
        index: the matches.
        num_queries: ``Q``.
        fill: the value of the unmatched queries.

    Returns:
        ``(N, Q, ...)``, the dtype of ``values``.

    Raises:
        TypeError, ValueError: ``values`` has fewer than two dims.

    Examples:
        >>> idx = MatchIndex(torch.tensor([0]), torch.tensor([2]), torch.tensor([1]))
        >>> query_targets(torch.tensor([[5, 7]]), idx, 3, fill=-1).tolist()
        [[-1, -1, 7]]
    """
    check_tensor(values, "values", ("N", "G", "..."))
    out = values.new_full((values.shape[0], num_queries, *values.shape[2:]), fill)
    out[index.frame, index.query] = values[index.frame, index.target]
    return out


def matched_class_loss(
    logits: Tensor,
    labels: Tensor,
    index: MatchIndex,
    *,
    loss: Literal["focal", "ce"] = "focal",
    alpha: float = 0.25,
    gamma: float = 2.0,
) -> Tensor:
    """The object classification loss of every query against its matched pair's class.

    - ``"focal"``: sigmoid focal (``alpha``, ``gamma``) on one-hot targets (0 for unmatched
      queries), summed and divided by the matches ([`MatchIndex.normalizer`][]): ARN, Eq. 7.
    - ``"ce"``: softmax cross-entropy over ``C`` classes and a last no-object column (the
      unmatched queries' target), averaged over the queries: DETR.

    Args:
        logits: ``(N, Q, C)`` (focal) or ``(N, Q, C + 1)`` (ce).
        labels: ``(N, G)`` the targets' classes.
        index: the matches.
        loss: ``"focal"`` or ``"ce"``.
        alpha: the focal loss's weight of the positives.
        gamma: the focal loss's focusing exponent.

    Returns:
        The loss, a scalar.

    Raises:
        TypeError, ValueError: an unknown ``loss``, or shapes that disagree.

    Examples:
        >>> idx = MatchIndex(torch.tensor([0]), torch.tensor([1]), torch.tensor([0]))
        >>> logits = torch.full((1, 2, 3), -9.0)
        >>> logits[0, 1, 2] = 9.0                          # query 1 says class 2, as annotated
        >>> float(matched_class_loss(logits, torch.tensor([[2]]), idx)) < 1e-3
        True
    """
    check_choice(loss, "loss", ("focal", "ce"))
    check_tensor(logits, "logits", ("N", "Q", "C"), dtype="float")
    check_tensor(labels, "labels", (logits.shape[0], "G"), dtype="int")
    N, Q, C = logits.shape
    matched = labels[index.frame, index.target]
    if loss == "ce":
        cls = torch.full((N, Q), C - 1, dtype=torch.long, device=logits.device)
        cls[index.frame, index.query] = matched
        return F.cross_entropy(logits.flatten(0, 1), cls.flatten())
    onehot = torch.zeros_like(logits)
    onehot[index.frame, index.query, matched] = 1.0
    total = sigmoid_focal_loss(logits, onehot, alpha=alpha, gamma=gamma, reduction="sum")
    return total / index.normalizer


def matched_box_losses(
    outputs: Mapping[str, Tensor],
    targets: Mapping[str, Tensor],
    index: MatchIndex,
    keys: Sequence[str] = ("subject_boxes", "object_boxes"),
) -> tuple[Tensor, Tensor]:
    """L1 and ``1 - GIoU`` of the matched boxes (``cxcywh``, normalised), summed over ``keys``
    and the matches and divided by [`MatchIndex.normalizer`][].

    Args:
        outputs: ``{key: (N, Q, 4)}`` predicted boxes.
        targets: ``{key: (N, G, 4)}`` annotated boxes.
        index: the matches.
        keys: the boxes of a pair (subject and object).

    Returns:
        ``(l1, giou)``, two scalars.

    Raises:
        TypeError, ValueError: a box tensor is not ``(N, *, 4)`` float.

    Examples:
        >>> box = torch.tensor([[[0.5, 0.5, 0.2, 0.2]]])
        >>> idx = MatchIndex(torch.tensor([0]), torch.tensor([0]), torch.tensor([0]))
        >>> out = {"subject_boxes": box, "object_boxes": box + 0.1}
        >>> tgt = {"subject_boxes": box, "object_boxes": box}
        >>> [round(float(x), 3) for x in matched_box_losses(out, tgt, idx)]   # GIoU 0.087
        [0.4, 0.913]
    """
    l1 = giou = None
    for key in keys:
        check_tensor(outputs[key], f"outputs[{key!r}]", ("N", "Q", 4), dtype="float")
        check_tensor(targets[key], f"targets[{key!r}]", (outputs[key].shape[0], "G", 4),
                     dtype="float")  # fmt: skip
        p = outputs[key][index.frame, index.query]
        t = targets[key][index.frame, index.target]
        a = (p - t).abs().sum() / index.normalizer
        pb, tb = box_convert(p, "cxcywh", "xyxy"), box_convert(t, "cxcywh", "xyxy")
        b = (1 - elementwise_generalized_box_iou(pb, tb)).sum() / index.normalizer
        l1, giou = (a, b) if l1 is None else (l1 + a, giou + b)
    if l1 is None or giou is None:
        raise ValueError("keys: expected at least one box key, got none")
    return l1, giou


def matched_localization(
    outputs: Mapping[str, Tensor],
    targets: Mapping[str, Tensor],
    index: MatchIndex,
    *,
    iou: float = 0.5,
) -> Tensor:
    """Counts of the annotated pairs whose matched query finds them: ``(pairs, subject found,
    object found, object class right)``, a summable ``(4,)`` int64 tensor.

    A pair's subject (object) is found when the matched query's box overlaps the annotated one
    at ``IoU >= iou``; its class is right when the query's predicted object label is the
    annotated one (whatever the box). ``pairs`` counts every valid target slot, matched or not,
    so the fractions ``counts[1:] / counts[0]`` are over the annotated pairs.

    Args:
        outputs: ``subject_boxes``, ``object_boxes`` ``(N, Q, 4)`` (``cxcywh``, normalised) and
            ``object_labels`` ``(N, Q)`` int, the predicted class of each query.
        targets: ``subject_boxes``, ``object_boxes`` ``(N, G, 4)``, ``object_labels``
            ``(N, G)`` and ``mask`` ``(N, G)`` bool.
        index: the matches (of valid target slots).
        iou: the overlap that counts as found.

    Returns:
        ``(4,)`` int64 counts.

    Raises:
        TypeError, ValueError: a tensor has the wrong shape or dtype, or ``iou`` is outside
            ``(0, 1]``.

    Examples:
        >>> box = torch.tensor([[[0.5, 0.5, 0.2, 0.2], [0.2, 0.2, 0.1, 0.1]]])
        >>> out = {"subject_boxes": box, "object_boxes": box.flip(1),
        ...        "object_labels": torch.tensor([[3, 4]])}
        >>> tgt = {"subject_boxes": box, "object_boxes": box,
        ...        "object_labels": torch.tensor([[3, 4]]), "mask": torch.tensor([[True, True]])}
        >>> idx = MatchIndex(torch.tensor([0, 0]), torch.tensor([0, 1]), torch.tensor([0, 1]))
        >>> matched_localization(out, tgt, idx).tolist()   # objects swapped: boxes wrong
        [2, 2, 0, 2]
    """
    if not 0 < iou <= 1:
        raise ValueError(f"iou: expected a value in (0, 1], got {iou}")
    dims: dict[str, tuple[int, str]] = {}
    for key in ("subject_boxes", "object_boxes"):
        check_tensor(outputs[key], f"outputs[{key!r}]", ("N", "Q", 4), dims=dims, dtype="float")
        check_tensor(targets[key], f"targets[{key!r}]", ("N", "G", 4), dims=dims, dtype="float")
    check_tensor(outputs["object_labels"], "outputs['object_labels']", ("N", "Q"), dims=dims,
                 dtype="int")  # fmt: skip
    check_tensor(targets["object_labels"], "targets['object_labels']", ("N", "G"), dims=dims,
                 dtype="int")  # fmt: skip
    check_tensor(targets["mask"], "targets['mask']", ("N", "G"), dims=dims, dtype="bool")
    found = []
    for key in ("subject_boxes", "object_boxes"):
        p = box_convert(outputs[key][index.frame, index.query].float(), "cxcywh", "xyxy")
        t = box_convert(targets[key][index.frame, index.target].float(), "cxcywh", "xyxy")
        found.append(int((elementwise_box_iou(p, t) >= iou).sum()))
    label = outputs["object_labels"][index.frame, index.query]
    right = int((label == targets["object_labels"][index.frame, index.target]).sum())
    return torch.tensor([int(targets["mask"].sum()), *found, right])
