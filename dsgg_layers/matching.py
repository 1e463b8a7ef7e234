"""Set-prediction matching: the assignment solver and the Hungarian matcher of paired queries.

DETR-style scene graph generators (OED; ARN, *End-to-End Entity-Predicate Association Reasoning
for Dynamic Scene Graph Generation*, Sec. 3.4) predict a fixed set of ``Q`` subject-object
query pairs per frame and train them against the frame's ``G`` annotated pairs through a
one-to-one matching of least total cost:

- [`linear_sum_assignment`][]: the optimal assignment of a ``(N, M)`` cost matrix. Uses
  ``scipy.optimize.linear_sum_assignment`` when SciPy is installed (``pip install
  "dsgg-layers[scipy]"``) and the library's own shortest-augmenting-path solver (Jonker and
  Volgenant's method with potentials, ``O(N^2 M)``, rows vectorised) otherwise; both give an
  optimal assignment (tested against brute force).
- [`pair_matching_cost`][] / [`PairHungarianMatcher`][]: the cost of every query pair
  against every annotated pair, batched over frames, and the per-frame assignment. The costs are
  OED's, weighted as ARN trains: object class ``1`` (minus the probability of the annotated
  class), predicate ``2`` (per predicate group, minus the mean of the probabilities of the
  annotated predicates and of the complements of the others, halved: OED's soft multi-label
  cost), box ``2.5`` (the larger of the subject's and the object's L1 distances, ``cxcywh``
  normalised boxes) and GIoU ``1`` (the larger of the two ``-GIoU``; the paper gives no GIoU
  weight, OED uses 1). OED's public code weighs the predicate cost ``1``, not ``2``, and takes
  the object class and attention probabilities by softmax:
  [`PairHungarianMatcher.oed`][] is that configuration, and an output's ``predicate_probs``
  (e.g. from [`oed_predicate_probs`][dsgg_layers.oed.oed_predicate_probs]) replace the
  sigmoid of ``predicate_logits`` when a model's groups use different activations.

The assignment itself is a loop over frames (each frame is its own problem, as in every DETR
matcher); it runs without gradients, outside the forward pass. The costs are one batched
computation.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
from torch import Tensor, nn

from dsgg_layers._checks import check_choice, check_tensor, values_readable
from dsgg_layers.boxes import box_convert, generalized_box_iou
from dsgg_layers.vocab import PREDICATE_GROUPS

__all__ = [
    "PairHungarianMatcher",
    "linear_sum_assignment",
    "pair_matching_cost",
]

Backend = Literal["auto", "scipy", "native"]


def _has_scipy() -> bool:
    return importlib.util.find_spec("scipy") is not None


def _solve_native(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``r`` and columns ``c`` of an optimal assignment of ``cost`` (``N <= M``)."""
    n, m = cost.shape
    u = np.zeros(n + 1)
    v = np.zeros(m + 1)
    owner = np.zeros(m + 1, dtype=np.int64)  # owner[j]: the row (1-based) holding column j
    way = np.zeros(m + 1, dtype=np.int64)
    padded = np.zeros((n + 1, m + 1))
    padded[1:, 1:] = cost
    for i in range(1, n + 1):  # one augmenting path a row
        owner[0] = i
        j0 = 0
        min_slack = np.full(m + 1, np.inf)
        used = np.zeros(m + 1, dtype=bool)
        while True:
            used[j0] = True
            i0 = owner[j0]
            free = ~used
            free[0] = False
            slack = padded[i0] - u[i0] - v
            better = free & (slack < min_slack)
            min_slack[better] = slack[better]
            way[better] = j0
            candidates = np.where(free, min_slack, np.inf)
            j1 = int(np.argmin(candidates))
            delta = candidates[j1]
            u[owner[used]] += delta
            v[used] -= delta
            min_slack[free] -= delta
            j0 = j1
            if owner[j0] == 0:
                break
        while j0:  # flip the path
            j1 = way[j0]
            owner[j0] = owner[j1]
            j0 = j1
    cols = np.nonzero(owner[1:])[0]
    rows = owner[1:][cols] - 1
    order = np.argsort(rows)
    return rows[order], cols[order]


def linear_sum_assignment(
    cost: Tensor | np.ndarray, *, backend: Backend = "auto"
) -> tuple[Tensor, Tensor]:
    """An assignment of rows to columns of least total cost (each used at most once).

    ``min(N, M)`` pairs are assigned; rows come out sorted, as SciPy returns them.

    Args:
        cost: ``(N, M)`` finite costs.
        backend: ``"auto"`` (SciPy when installed, else the library's solver), ``"scipy"`` or
            ``"native"``.

    Returns:
        ``(rows, cols)``, two ``(min(N, M),)`` int64 CPU tensors.

    Raises:
        TypeError, ValueError: ``cost`` is not a 2-d real array, holds NaN/Inf, or ``backend``
            is unknown.
        ImportError: ``backend="scipy"`` without SciPy (the message names the extra).

    Examples:
        >>> cost = torch.tensor([[4.0, 1.0, 3.0], [2.0, 0.0, 5.0], [3.0, 2.0, 2.0]])
        >>> rows, cols = linear_sum_assignment(cost, backend="native")
        >>> cols.tolist(), float(cost[rows, cols].sum())
        ([1, 0, 2], 5.0)
    """
    check_choice(backend, "backend", ("auto", "scipy", "native"))
    if isinstance(cost, Tensor):
        check_tensor(cost, "cost", ("N", "M"), dtype=("float", "int"))
        array = cost.detach().to("cpu", torch.float64).numpy()
    elif isinstance(cost, np.ndarray):
        if cost.ndim != 2 or not np.issubdtype(cost.dtype, np.number):
            raise ValueError(f"cost: expected a 2-d real array, got shape {cost.shape}")
        array = cost.astype(np.float64)
    else:
        raise TypeError(f"cost: expected a Tensor or an ndarray, got {type(cost).__name__}")
    if not np.isfinite(array).all():
        raise ValueError("cost: expected finite costs, got NaN/Inf")
    use_scipy = backend == "scipy" or (backend == "auto" and _has_scipy())
    if backend == "scipy" and not _has_scipy():
        raise ImportError(
            'linear_sum_assignment(backend="scipy") needs SciPy: pip install "dsgg-layers[scipy]"'
        )
    n, m = array.shape
    if n == 0 or m == 0:
        rows = cols = np.zeros(0, dtype=np.int64)
    elif use_scipy:
        from scipy.optimize import linear_sum_assignment as scipy_lsa

        rows, cols = scipy_lsa(array)
    elif n <= m:
        rows, cols = _solve_native(array)
    else:
        c, r = _solve_native(array.T)
        order = np.argsort(r)
        rows, cols = r[order], c[order]
    return torch.as_tensor(rows, dtype=torch.int64), torch.as_tensor(cols, dtype=torch.int64)


def _soft_multilabel_cost(prob: Tensor, target: Tensor) -> Tensor:
    """OED's predicate cost of ``(B, Q, R)`` probabilities against ``(B, G, R)`` 0/1 targets:
    ``-(mean p over the positives + mean (1 - p) over the negatives) / 2``, ``(B, Q, G)``."""
    pos = target / (target.sum(-1, keepdim=True) + 1e-4)
    neg = (1 - target) / ((1 - target).sum(-1, keepdim=True) + 1e-4)
    return -(prob @ pos.transpose(-1, -2) + (1 - prob) @ neg.transpose(-1, -2)) / 2


def pair_matching_cost(
    outputs: dict[str, Tensor],
    targets: dict[str, Tensor],
    *,
    cost_class: float = 1.0,
    cost_predicate: float = 2.0,
    cost_bbox: float = 2.5,
    cost_giou: float = 1.0,
    class_activation: Literal["sigmoid", "softmax"] = "sigmoid",
    groups: Sequence[slice] | None = None,
) -> Tensor:
    """The matching cost of every query pair against every annotated pair, ``(B, Q, G)``.

    ``cost_class * (-p_class) + cost_predicate * sum_groups soft-multilabel cost +
    cost_bbox * max(L1_sub, L1_obj) + cost_giou * max(-GIoU_sub, -GIoU_obj)`` (OED's costs,
    ARN's weights; see the module docstring). Padded targets get cost 0 (mask them out).

    Args:
        outputs: ``object_logits`` ``(B, Q, O)``, ``predicate_logits`` ``(B, Q, R)`` (their
            sigmoid is the probability) **or** ``predicate_probs`` ``(B, Q, R)`` (used as given:
            OED's per-group activations, [`oed_predicate_probs`][dsgg_layers.oed.
            oed_predicate_probs]), ``subject_boxes`` and ``object_boxes`` ``(B, Q, 4)``
            ``cxcywh`` normalised. With ``class_activation="softmax"`` the object logits may
            carry a no-object column last (DETR, OED): labels index the first ``O - 1``.
        targets: ``object_labels`` ``(B, G)``, ``predicates`` ``(B, G, R)`` 0/1, ``subject_boxes``
            and ``object_boxes`` ``(B, G, 4)`` ``cxcywh`` normalised, ``mask`` ``(B, G)`` bool.
        cost_class: weight of the object class cost.
        cost_predicate: weight of the predicate cost.
        cost_bbox: weight of the box L1 cost.
        cost_giou: weight of the GIoU cost.
        class_activation: object class probabilities by ``"sigmoid"`` (focal-loss training, ARN)
            or ``"softmax"`` (OED).
        groups: the predicate groups whose costs are summed (default Action Genome's three;
            ``[slice(None)]`` for one group).

    Returns:
        ``(B, Q, G)`` costs.

    Raises:
        TypeError, ValueError: a key is missing, a shape disagrees, or (on the CPU) an
            annotated object label is outside the logits' columns.

    Examples:
        >>> out = dict(object_logits=torch.randn(1, 4, 5), predicate_logits=torch.randn(1, 4, 26),
        ...            subject_boxes=torch.rand(1, 4, 4), object_boxes=torch.rand(1, 4, 4))
        >>> tgt = dict(object_labels=torch.tensor([[2, 3]]), predicates=torch.rand(1, 2, 26) > 0.8,
        ...            subject_boxes=torch.rand(1, 2, 4), object_boxes=torch.rand(1, 2, 4),
        ...            mask=torch.tensor([[True, True]]))
        >>> pair_matching_cost(out, tgt).shape
        torch.Size([1, 4, 2])
    """
    check_choice(class_activation, "class_activation", ("sigmoid", "softmax"))
    for name, d, keys in (
        ("outputs", outputs, ("object_logits", "subject_boxes", "object_boxes")),
        ("targets", targets, ("object_labels", "predicates", "subject_boxes", "object_boxes",
                              "mask")),
    ):  # fmt: skip
        missing = [k for k in keys if k not in d]
        if missing:
            raise ValueError(f"{name}: missing keys {missing}; expected {list(keys)}")
    given = [k for k in ("predicate_logits", "predicate_probs") if k in outputs]
    if len(given) != 1:
        raise ValueError("outputs: expected exactly one of 'predicate_logits' and "
                         f"'predicate_probs', got {given or 'neither'}")  # fmt: skip
    dims: dict[str, tuple[int, str]] = {}
    check_tensor(outputs["object_logits"], "outputs['object_logits']", ("B", "Q", "O"),
                 dims=dims, dtype="float")  # fmt: skip
    check_tensor(outputs[given[0]], f"outputs['{given[0]}']", ("B", "Q", "R"), dims=dims,
                 dtype="float")  # fmt: skip
    for key in ("subject_boxes", "object_boxes"):
        check_tensor(outputs[key], f"outputs['{key}']", ("B", "Q", 4), dims=dims, dtype="float")
        check_tensor(targets[key], f"targets['{key}']", ("B", "G", 4), dims=dims, dtype="float")
    check_tensor(targets["object_labels"], "targets['object_labels']", ("B", "G"), dims=dims,
                 dtype="int")  # fmt: skip
    check_tensor(targets["predicates"], "targets['predicates']", ("B", "G", "R"), dims=dims,
                 dtype=("bool", "int", "float"))  # fmt: skip
    check_tensor(targets["mask"], "targets['mask']", ("B", "G"), dims=dims, dtype="bool")
    mask = targets["mask"]
    logits = outputs["object_logits"].float()
    prob = logits.sigmoid() if class_activation == "sigmoid" else logits.softmax(-1)
    labels = targets["object_labels"].masked_fill(~mask, 0)
    if values_readable(labels) and labels.numel():  # on the GPU: no sync, clamped
        low, high = int(labels.min()), int(labels.max())
        if low < 0 or high >= prob.shape[-1]:
            raise ValueError(
                f"targets['object_labels']: expected classes in [0, {prob.shape[-1]}) at the "
                f"valid pairs (object_logits has {prob.shape[-1]} columns), got {low}..{high}"
            )
    labels = labels.clamp(0, prob.shape[-1] - 1)
    index = labels.unsqueeze(1).expand(-1, prob.shape[1], -1)
    cost = cost_class * -prob.gather(-1, index)  # (B, Q, G)
    p_pred = (outputs["predicate_probs"].float() if given[0] == "predicate_probs"
              else outputs["predicate_logits"].float().sigmoid())  # fmt: skip
    t_pred = targets["predicates"].float().masked_fill(~mask.unsqueeze(-1), 0.0)
    spans = list(PREDICATE_GROUPS.values()) if groups is None else list(groups)
    for s in spans:
        cost = cost + cost_predicate * _soft_multilabel_cost(p_pred[..., s], t_pred[..., s])
    l1, giou = [], []
    for key in ("subject_boxes", "object_boxes"):
        pb, tb = outputs[key].float(), targets[key].float().masked_fill(~mask.unsqueeze(-1), 0.0)
        l1.append(torch.cdist(pb, tb, p=1))
        giou.append(-generalized_box_iou(box_convert(pb, "cxcywh", "xyxy"),
                                         box_convert(tb, "cxcywh", "xyxy")))  # fmt: skip
    cost = cost + cost_bbox * torch.maximum(*l1) + cost_giou * torch.maximum(*giou)
    return cost.masked_fill(~mask.unsqueeze(1), 0.0)


class PairHungarianMatcher(nn.Module):
    """One-to-one matching of query pairs to annotated pairs, frame by frame (ARN / OED).

    Args:
        cost_class: weight of the object class cost (ARN: 1).
        cost_predicate: weight of the predicate cost (ARN's paper: 2; OED's code: 1).
        cost_bbox: weight of the box L1 cost (ARN: 2.5).
        cost_giou: weight of the GIoU cost (OED: 1; ARN gives none).
        class_activation: ``"sigmoid"`` (default; ARN's focal loss) or ``"softmax"`` (OED).
        groups: predicate groups (default Action Genome's three).
        backend: the assignment solver (see [`linear_sum_assignment`][]).

    Shape:
        As [`pair_matching_cost`][]; returns one ``(query_index, target_index)`` pair of int64
        tensors a frame (``min(Q, G_b)`` long, ``G_b`` the frame's annotated pairs).

    Raises:
        TypeError, ValueError: as [`pair_matching_cost`][].

    Examples:
        >>> matcher = PairHungarianMatcher()
        >>> box = torch.tensor([[[0.5, 0.5, 0.2, 0.2]]])
        >>> out = dict(object_logits=torch.tensor([[[-5.0, 5.0], [5.0, -5.0]]]),
        ...            predicate_logits=torch.zeros(1, 2, 26),
        ...            subject_boxes=box.expand(1, 2, 4), object_boxes=box.expand(1, 2, 4))
        >>> tgt = dict(object_labels=torch.tensor([[0]]), predicates=torch.zeros(1, 1, 26),
        ...            subject_boxes=box, object_boxes=box, mask=torch.tensor([[True]]))
        >>> [(q.tolist(), t.tolist()) for q, t in matcher(out, tgt)]   # query 1 predicts class 0
        [([1], [0])]
    """

    def __init__(
        self,
        cost_class: float = 1.0,
        cost_predicate: float = 2.0,
        cost_bbox: float = 2.5,
        cost_giou: float = 1.0,
        *,
        class_activation: Literal["sigmoid", "softmax"] = "sigmoid",
        groups: Sequence[slice] | None = None,
        backend: Backend = "auto",
    ) -> None:
        super().__init__()
        weights = (cost_class, cost_predicate, cost_bbox, cost_giou)
        if any(isinstance(w, bool) or not isinstance(w, (int, float)) or w < 0 for w in weights):
            raise ValueError(f"costs: expected weights >= 0, got {weights}")
        if not any(weights):
            raise ValueError("costs: expected at least one weight > 0, got all 0")
        check_choice(class_activation, "class_activation", ("sigmoid", "softmax"))
        check_choice(backend, "backend", ("auto", "scipy", "native"))
        self.cost_class, self.cost_predicate, self.cost_bbox, self.cost_giou = weights
        self.class_activation, self.groups, self.backend = class_activation, groups, backend

    @classmethod
    def oed(cls, *, groups: Sequence[slice] | None = None, backend: Backend = "auto"
            ) -> PairHungarianMatcher:  # fmt: skip
        """OED's ``HungarianMatcherDSGG`` as its code runs (``main.py``'s defaults): object
        class 1 (softmax, no-object column last), predicate 1, box 2.5, GIoU 1. Give it
        ``predicate_probs`` from [`oed_predicate_probs`][dsgg_layers.oed.oed_predicate_probs]
        to reproduce its costs and assignments (tested against a transcription of its code).
        OED also zeroes the object-box cost of targets without an object box; the library's
        targets always have one.

        Examples:
            >>> PairHungarianMatcher.oed().cost_predicate
            1.0
        """
        return cls(1.0, 1.0, 2.5, 1.0, class_activation="softmax", groups=groups, backend=backend)

    def reset_parameters(self) -> None:
        """Nothing to reset: the matcher has no parameters (its costs are configuration)."""

    def extra_repr(self) -> str:
        return (
            f"cost_class={self.cost_class}, cost_predicate={self.cost_predicate}, "
            f"cost_bbox={self.cost_bbox}, cost_giou={self.cost_giou}, "
            f"class_activation={self.class_activation!r}, backend={self.backend!r}"
        )

    @torch.no_grad()
    def forward(
        self, outputs: dict[str, Tensor], targets: dict[str, Tensor]
    ) -> list[tuple[Tensor, Tensor]]:
        """The matched ``(query_index, target_index)`` of every frame; target indices are
        positions among the frame's ``G`` slots (valid ones only)."""
        cost = pair_matching_cost(
            outputs, targets, cost_class=self.cost_class, cost_predicate=self.cost_predicate,
            cost_bbox=self.cost_bbox, cost_giou=self.cost_giou,
            class_activation=self.class_activation, groups=self.groups,
        ).cpu()  # fmt: skip
        mask = targets["mask"].cpu()
        out = []
        for b in range(cost.shape[0]):  # one assignment problem a frame
            valid = mask[b].nonzero().squeeze(1)
            rows, cols = linear_sum_assignment(cost[b][:, valid], backend=self.backend)
            out.append((rows, valid[cols]))
        return out
