"""The Action Genome scene-graph evaluator: R@K, mR@K (three definitions) and P@K.

Follows the protocol of STTran's public evaluator (``lib/evaluation_recall.py`` of
``yrcong/STTran``), which the papers' tables come from, so that numbers are comparable:

**Triplets.** Attention and contacting triplets are ``person -> object``; spatial triplets are
``object -> person``. The score of a predicted triplet is
``subject score x object score x predicate score`` (object scores are 1 for ground-truth boxes,
the detector's or classifier's class probability otherwise). Predicate scores are taken as given:
STTran's models give attention as a softmax and spatial/contacting as independent sigmoids;
[`predicate_probabilities`][] converts logits that way.

**Predicate choice** (``constraints``):

- ``"with"``: every pair gives three triplets, the argmax of *each group* (attention, spatial,
  contacting), although spatial and contacting are multi-label.
- ``"semi"``: the attention argmax, plus every spatial and contacting predicate whose score is
  strictly above ``semi_threshold`` (0.9 in the public test script).
- ``"no"``: every (pair, predicate) is a triplet; the top ``no_constraint_top`` (100) of a frame are
  kept. (The public code ranks 3 x 26 cells per pair, most of them zero-filled; the zero cells only
  duplicate or reverse triplets that already rank above them, so leaving them out changes no
  recall.)
- ``"topk"`` (TR²): the three group vectors of a pair are summed into one 26-d vector and its top
  ``top_k_per_pair`` (6) predicates are kept.

**Ranking.** Triplets are ranked per frame by score, descending, with a stable sort: ties keep the
order of the public code's rows (all attention triplets, then spatial, then contacting; pairs in
their given order). The public code sorts ties with NumPy's unstable quicksort, so tied triplets
can rank differently there.

**Matching.** A ground-truth triplet is matched within the top K when a predicted triplet ranked
below K has the same subject class, object class and predicate, and (in every task, as the public
code; the boxes are the ground truth's in PredCls/SGCls) both its boxes have IoU ``>=
iou_threshold`` (0.5) with the ground truth's. IoU uses the "+1 pixel" convention of the public
code's ``bbox_overlaps`` unless ``legacy_iou=False``. A ground-truth triplet counts once however
many predictions match it; a prediction may match several (duplicate) ground-truth triplets.

**R@K** is the mean over frames that have ground truth of (matched ground-truth triplets) /
(ground-truth triplets of the frame); a frame with no prediction counts 0; frames without
ground truth are skipped (the public code asserts they do not occur).

**mR@K**, in the three incompatible definitions of the public code (all average over the 26
predicates, a predicate without ground truth counting 0):

- ``"dataset"`` (default; TEMPURA's evaluator, from VCTree's): per predicate, hits and
  ground-truth counts summed over all frames, recall = hits / count.
- ``"frame_present"`` (DSG-DETR's): per frame, the recall of each predicate present in its
  ground truth; a predicate's recalls averaged over the frames where it is present.
- ``"frame_all"`` (STKET's): per frame, every predicate's recall, 0 where absent; averaged over
  all evaluated frames.

MoSA and ARN compare their mR@K with TEMPURA's published numbers, i.e. with ``"dataset"``; RS-Net
reports mR@K on retrained baselines without naming the definition; TR² reports no mR@K.

**P@K** (RS-Net; no public code): per frame, the number of top-K triplets that match some
ground-truth triplet, divided by K (default) or by ``min(K, number of triplets)``
(``precision_denominator="available"``), averaged over the frames that have ground truth.

**Per-predicate recall**: the dataset-level hits / counts of each predicate (the bars of the
papers' per-class figures).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from dsgg_layers._checks import check_choice, check_positive, check_tensor
from dsgg_layers.boxes import iou_unchecked
from dsgg_layers.metrics.base import SummableMetric
from dsgg_layers.sttran import sttran_to_tracks
from dsgg_layers.vocab import PREDICATE_GROUPS, PREDICATES

__all__ = [
    "CONSTRAINTS",
    "ActionGenomeEvaluator",
    "action_genome_metrics",
    "format_results",
    "predicate_probabilities",
    "sttran_to_tracks",
]

Constraint = Literal["with", "semi", "no", "topk"]
CONSTRAINTS: tuple[str, ...] = ("with", "semi", "no", "topk")
"""Predicate-choice settings: with / semi / no constraint, and top-k per pair (TR²)."""

NUM_PREDICATES = len(PREDICATES)
_GROUPS = tuple(PREDICATE_GROUPS.values())  # attention, spatial, contacting slices
_SETTINGS = ("constraints", "ks", "semi_threshold", "no_constraint_top", "top_k_per_pair",
             "iou_threshold", "legacy_iou", "precision_denominator", "person_label",
             "num_strata")  # fmt: skip
_PRED_KEYS = ("predicate_scores", "mask", "subject_boxes", "object_boxes", "object_labels")
_TARGET_KEYS = ("relations", "mask", "subject_boxes", "object_boxes", "object_labels")


def predicate_probabilities(logits: Tensor) -> Tensor:
    """STTran's predicate scores from logits: softmax over attention, sigmoid elsewhere.

    Args:
        logits: the 26 predicate logits in [`PREDICATES`][dsgg_layers.vocab.PREDICATES] order.

    Shape:
        - logits: ``(..., 26)``
        - output: ``(..., 26)``

    Raises:
        TypeError: ``logits`` is not a floating point tensor.
        ValueError: the last dim is not 26.

    Examples:
        >>> p = predicate_probabilities(torch.zeros(26))
        >>> p[:3], p[3]
        (tensor([0.3333, 0.3333, 0.3333]), tensor(0.5000))
    """
    check_tensor(logits, "logits", ("...", NUM_PREDICATES), dtype="float")
    att = PREDICATE_GROUPS["attention"]
    return torch.cat((logits[..., att].softmax(-1), logits[..., att.stop :].sigmoid()), -1)


def _flatten_frames(x: Tensor, tail: int) -> Tensor:
    """``(..., *tail dims)`` -> ``(F, *tail dims)`` (also when a tail dim is 0: no pairs)."""
    lead = x.shape[: x.dim() - tail]
    return x.reshape(math.prod(lead), *x.shape[x.dim() - tail :])


def _check_values(x: dict[str, Tensor]) -> None:
    """Values the ranking trusts: probabilities in [0, 1] and finite boxes at the valid pairs.

    A NaN score would take the top-K slots (NaN sorts first), a logit or a negative score would
    invert the ranking once multiplied by the object scores, and a NaN box never matches: each
    gives a wrong recall without a word, so they are refused. Reading the values costs one sync,
    which the evaluator pays anyway.
    """
    p, g = x["p_mask"], x["g_mask"]
    checks = [
        ("preds['predicate_scores']", x["p_scores"][p], "probabilities in [0, 1] (see "
         "predicate_probabilities for logits)", lambda v: (v >= 0) & (v <= 1)),
    ]  # fmt: skip
    for key in ("object_scores", "subject_scores"):
        if "p_" + key in x:
            checks.append((f"preds['{key}']", x["p_" + key][p], "scores in [0, 1]",
                           lambda v: (v >= 0) & (v <= 1)))  # fmt: skip
    for prefix, name, m in (("p_", "preds", p), ("g_", "target", g)):
        for key in ("subject_boxes", "object_boxes"):
            checks.append((f"{name}['{key}']", x[prefix + key][m], "finite boxes", torch.isfinite))
    checks.append(("target['relations']", x["g_relations"][g], "counts >= 0", lambda v: v >= 0))
    for name, values, what, ok in checks:
        bad = ~ok(values)
        if bool(bad.any()):
            raise ValueError(
                f"{name}: expected {what} at the valid pairs, got {values[bad].flatten()[0].item()}"
            )


def _check_inputs(preds: Mapping[str, Any], target: Mapping[str, Any]) -> dict[str, Tensor]:
    """Validate the two dicts; return every tensor flattened to frames ``(F, P, ...)``."""
    for name, keys, d in (("preds", _PRED_KEYS, preds), ("target", _TARGET_KEYS, target)):
        if not isinstance(d, Mapping):
            raise TypeError(f"{name}: expected a mapping of tensors, got {type(d).__name__}")
        missing = [k for k in keys if k not in d]
        if missing:
            raise ValueError(f"{name}: missing keys {missing}; expected at least {list(keys)}")
    pd: dict[str, tuple[int, str]] = {}
    td: dict[str, tuple[int, str]] = {}
    scores_shape = ("...", "P", NUM_PREDICATES)
    check_tensor(
        preds["predicate_scores"], "preds['predicate_scores']", scores_shape, dims=pd, dtype="float"
    )
    check_tensor(preds["mask"], "preds['mask']", ("...", "P"), dims=pd, dtype="bool")
    rel_shape, rel_dtype = ("...", "G", NUM_PREDICATES), ("bool", "int")
    check_tensor(target["relations"], "target['relations']", rel_shape, dims=td, dtype=rel_dtype)
    check_tensor(target["mask"], "target['mask']", ("...", "G"), dims=td, dtype="bool")
    if pd["..."][0] != td["..."][0]:
        raise ValueError(
            "preds and target: expected the same leading (frame) dims, got "
            f"{tuple(pd['...'][0])} and {tuple(td['...'][0])}"
        )
    out: dict[str, Tensor] = {}
    sides = (("p_", "preds", preds, pd, "P"), ("g_", "target", target, td, "G"))
    for prefix, name, d, dims, w in sides:
        for key in ("subject_boxes", "object_boxes"):
            check_tensor(d[key], f"{name}['{key}']", ("...", w, 4), dims=dims, dtype="float")
            out[prefix + key] = _flatten_frames(d[key], 2)
        for key in ("object_labels", "subject_labels"):
            if d.get(key) is not None:
                check_tensor(d[key], f"{name}['{key}']", ("...", w), dims=dims, dtype="int")
                out[prefix + key] = _flatten_frames(d[key], 1)
    for key in ("object_scores", "subject_scores"):
        if preds.get(key) is not None:
            check_tensor(preds[key], f"preds['{key}']", ("...", "P"), dims=pd, dtype="float")
            out["p_" + key] = _flatten_frames(preds[key], 1)
    out["p_scores"] = _flatten_frames(preds["predicate_scores"], 2)
    out["p_mask"] = _flatten_frames(preds["mask"], 1)
    out["g_relations"] = _flatten_frames(target["relations"], 2)
    out["g_mask"] = _flatten_frames(target["mask"], 1)
    return out


class ActionGenomeEvaluator(SummableMetric):
    """R@K, mR@K and P@K on Action Genome, with the public evaluator's protocol.

    A torchmetrics-style metric: [`update`][] with the predictions and ground truth of some
    frames, [`compute`][] for the results, [`reset`][] to start again. The state is a set of
    sums (`state`), so evaluating in chunks, merging evaluators
    ([`merge`][dsgg_layers.metrics.base.SummableMetric.merge]) or all-reducing across processes
    ([`sync`][dsgg_layers.metrics.base.SummableMetric.sync]) gives the same numbers as one call. The
    protocol (which predicates become triplets, how they are ranked and matched, how each metric is
    averaged) is documented in
    [`dsgg_layers.metrics.action_genome`][dsgg_layers.metrics.action_genome].

    Inputs are pair tracks, or any leading dims that index frames: ``preds`` and ``target`` are
    mappings of tensors whose leading dims ``(...)`` (e.g. ``(B, T)``) are the same and index the
    same frames; ``P`` (predicted pairs) and ``G`` (ground-truth pairs) are independent.

    ``preds`` keys:

    - ``predicate_scores`` ``(..., P, 26)``: probabilities (see [`predicate_probabilities`][]).
    - ``mask`` ``(..., P)`` bool; ``subject_boxes``, ``object_boxes`` ``(..., P, 4)`` ``xyxy``.
    - ``object_labels`` ``(..., P)``; optional ``subject_labels`` (default
      ``person_label``), ``object_scores`` and ``subject_scores`` ``(..., P)`` (default 1).

    ``target`` keys:

    - ``relations`` ``(..., G, 26)``: bool, or integer multiplicities (a predicate listed twice
      in an annotation counts twice, as in the public code).
    - ``mask``, ``subject_boxes``, ``object_boxes``, ``object_labels``, optional
      ``subject_labels``, as in ``preds``.
      [`dsgg_layers.data.VideoGraph.targets`][dsgg_layers.data.graph.VideoGraph.targets] gives it.

    Args:
        constraints: which predicate choices to evaluate (see [`CONSTRAINTS`][]).
        ks: the K of R@K, mR@K and P@K.
        semi_threshold: score a spatial/contacting predicate must exceed in ``"semi"``.
        no_constraint_top: triplets kept per frame in ``"no"``.
        top_k_per_pair: predicates kept per pair in ``"topk"`` (TR² uses 6).
        iou_threshold: IoU both boxes need with the ground truth's.
        legacy_iou: IoU in the "+1 pixel" convention of the public evaluator.
        precision_denominator: ``"k"`` (default) or ``"available"`` (``min(K, #triplets)``).
        person_label: the class of the subject when ``subject_labels`` is not given.
        num_strata: ``S > 0`` also reports R@K within each of ``S`` strata of frames, given to
            [`update`][] as ``strata`` (e.g. videos binned by how often their pairs'
            relations change, TR²'s Fig. 5:
            [`dsgg_layers.message.change_share`][dsgg_layers.message.change_share]).

    Shape:
        See the keys above; ``(...)`` are frame dims, flattened inside; ``strata``: ``(...)``.

    Raises:
        TypeError, ValueError: a key is missing, a tensor has the wrong dtype or a shape that
            disagrees with the others (the message names the key), or an option is invalid.

    Examples:
        >>> ev = ActionGenomeEvaluator(constraints=("with", "no"), ks=(10, 20))
        >>> box = torch.tensor([[[0.0, 0, 10, 10]]])             # (frames=1, pairs=1, 4)
        >>> rel = torch.zeros(1, 1, 26, dtype=torch.bool)
        >>> rel[0, 0, [0, 3, 14]] = True                          # looking_at, above, holding
        >>> target = dict(relations=rel, mask=torch.ones(1, 1, dtype=torch.bool),
        ...               subject_boxes=box, object_boxes=box, object_labels=torch.tensor([[5]]))
        >>> scores = torch.full((1, 1, 26), 0.1)
        >>> scores[0, 0, [0, 3, 9]] = 0.8                         # holding loses to carrying
        >>> preds = dict(target, predicate_scores=scores)      # the same boxes and classes
        >>> ev.update(preds, target)
        >>> results = ev.compute()
        >>> round(float(results["with/R@10"]), 4), round(float(results["no/R@20"]), 4)
        (0.6667, 1.0)
    """

    settings = _SETTINGS

    def __init__(
        self,
        constraints: Sequence[Constraint] = ("with", "semi", "no"),
        ks: Sequence[int] = (10, 20, 50, 100),
        *,
        semi_threshold: float = 0.9,
        no_constraint_top: int = 100,
        top_k_per_pair: int = 6,
        iou_threshold: float = 0.5,
        legacy_iou: bool = True,
        precision_denominator: Literal["k", "available"] = "k",
        person_label: int = 0,
        num_strata: int = 0,
    ) -> None:
        constraints = tuple(constraints)
        if not constraints:
            raise ValueError("constraints: expected at least one, got none")
        for c in constraints:
            check_choice(c, "constraints", CONSTRAINTS)
        if len(set(constraints)) != len(constraints):
            raise ValueError(f"constraints: expected no repeats, got {constraints}")
        ks = tuple(ks)
        if not ks:
            raise ValueError("ks: expected at least one K, got none")
        for k in ks:
            check_positive(k, "ks")
        if len(set(ks)) != len(ks):
            raise ValueError(f"ks: expected no repeats, got {ks}")
        if (
            isinstance(semi_threshold, bool)
            or not isinstance(semi_threshold, (int, float))
            or not (0.0 <= semi_threshold <= 1.0)
        ):
            raise ValueError(f"semi_threshold: expected a number in [0, 1], got {semi_threshold!r}")
        if not isinstance(legacy_iou, bool):
            raise TypeError(f"legacy_iou: expected a bool, got {legacy_iou!r}")
        if isinstance(person_label, bool) or not isinstance(person_label, int):
            raise TypeError(f"person_label: expected an int, got {person_label!r}")
        check_positive(no_constraint_top, "no_constraint_top")
        check_positive(top_k_per_pair, "top_k_per_pair")
        check_positive(num_strata, "num_strata", allow_zero=True)
        check_choice(precision_denominator, "precision_denominator", ("k", "available"))
        if not 0.0 < iou_threshold <= 1.0:
            raise ValueError(f"iou_threshold: expected a value in (0, 1], got {iou_threshold}")
        self.constraints = constraints
        self.ks = ks
        self.semi_threshold = float(semi_threshold)
        self.no_constraint_top = no_constraint_top
        self.top_k_per_pair = min(top_k_per_pair, NUM_PREDICATES)
        self.iou_threshold = float(iou_threshold)
        self.legacy_iou = legacy_iou
        self.precision_denominator = precision_denominator
        self.person_label = person_label
        self.num_strata = num_strata
        self.reset()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(constraints={self.constraints}, ks={self.ks}, "
            f"semi_threshold={self.semi_threshold}, iou_threshold={self.iou_threshold}, "
            f"legacy_iou={self.legacy_iou})"
        )

    # ---------------------------------------------------------------------------------- state

    def reset(self) -> None:
        """Forget every frame seen so far."""
        K, C, R = len(self.ks), len(self.constraints), NUM_PREDICATES
        f64 = torch.float64
        self.state: dict[str, Tensor] = {
            "num_frames": torch.zeros((), dtype=torch.long),
            "counts": torch.zeros(R, dtype=torch.long),
            "frames_present": torch.zeros(R, dtype=torch.long),
            "recall_sum": torch.zeros(C, K, dtype=f64),
            "precision_sum": torch.zeros(C, K, dtype=f64),
            "hits": torch.zeros(C, K, R, dtype=torch.long),
            "present_recall_sum": torch.zeros(C, K, R, dtype=f64),
            "stratum_frames": torch.zeros(self.num_strata, dtype=torch.long),
            "stratum_recall_sum": torch.zeros(self.num_strata, C, K, dtype=f64),
        }
        """The summable state: frames with ground truth; per predicate ground-truth counts and
        the frames where it is present; per constraint and K the sums of per-frame recall and
        precision, the per-predicate hits and the sums of per-frame per-predicate recall; per
        stratum the frames with ground truth and their recall sums."""

    # --------------------------------------------------------------------------------- update

    @torch.no_grad()
    def update(
        self, preds: Mapping[str, Any], target: Mapping[str, Any], strata: Tensor | None = None
    ) -> None:
        """Score the frames of one batch; see the class docstring for the keys.

        ``strata``: the stratum in ``[0, num_strata)`` of every frame ``(...)``, needed (and
        only accepted) when the evaluator has ``num_strata > 0``.
        """
        x = _check_inputs(preds, target)
        lead = tuple(preds["mask"].shape[:-1])
        if strata is None and self.num_strata:
            raise ValueError(
                f"strata: expected the stratum of each frame (num_strata={self.num_strata}), "
                "got None"
            )
        if strata is not None and not self.num_strata:
            raise ValueError(
                "strata: this evaluator has num_strata=0; create it with num_strata to use strata"
            )
        _check_values(x)
        if strata is None:
            self._add(self._state(x))
            return
        check_tensor(strata, "strata", lead, dtype="int")
        flat = strata.reshape(-1).to(x["p_mask"].device)
        if flat.numel():
            lo, hi = int(flat.min()), int(flat.max())
            if lo < 0 or hi >= self.num_strata:
                raise ValueError(
                    f"strata: expected values in [0, {self.num_strata}), got [{lo}, {hi}]"
                )
        for s in flat.unique().tolist():  # a handful of strata, never one call per frame
            frames = (flat == s).nonzero().squeeze(1)
            part = self._state({k: v[frames] for k, v in x.items()})
            self._add(part)
            for key, value in (("stratum_frames", "num_frames"),
                               ("stratum_recall_sum", "recall_sum")):  # fmt: skip
                self.state[key][s] += part[value].to(self.state[key].device)

    def _state(self, x: dict[str, Tensor]) -> dict[str, Tensor]:
        return _bucketed_state(
            _compact(x),
            self.constraints,
            self.ks,
            semi_threshold=self.semi_threshold,
            no_constraint_top=self.no_constraint_top,
            top_k_per_pair=self.top_k_per_pair,
            iou_threshold=self.iou_threshold,
            legacy_iou=self.legacy_iou,
            precision_denominator=self.precision_denominator,
            person_label=self.person_label,
        )

    def update_sttran(
        self,
        entry: Mapping[str, Any],
        gt_annotation: Sequence[Sequence[Mapping[str, Any]]],
        *,
        mode: Literal["predcls", "sgcls", "sgdet"] = "predcls",
        attention_softmax: bool = True,
    ) -> None:
        """Score one video given STTran's flat prediction dict and ground-truth annotation.

        See [`sttran_to_tracks`][] for the formats (STTran's classes, with ``__background__``
        at 0 and the person at 1, are used as they are on both sides).

        ``attention_softmax``: STTran's evaluator softmaxes ``attention_distribution`` (its
        model outputs logits), so the default does too. TEMPURA's model softmaxes attention
        itself and its evaluator does not: pass ``attention_softmax=False`` for TEMPURA outputs,
        or they are softmaxed twice (a flatter attention distribution, a different ranking).

        Raises:
            ValueError: as [`sttran_to_tracks`][] (e.g. a relation index outside its group)
                and [`update`][] (e.g. scores outside ``[0, 1]``).
        """
        preds, target = sttran_to_tracks(
            entry, gt_annotation, mode=mode, attention_softmax=attention_softmax
        )
        self.update(preds, target)  # both carry subject_labels: person_label is not used

    # -------------------------------------------------------------------------------- compute

    def compute(self) -> dict[str, Tensor]:
        """The metrics of every frame seen since the last [`reset`][].

        Returns:
            A flat dict of tensors, for each constraint ``c`` and ``k`` in ``ks``:
            ``"{c}/R@{k}"``, ``"{c}/mR@{k}"`` (the ``"dataset"`` definition),
            ``"{c}/mR@{k}/frame_present"``, ``"{c}/mR@{k}/frame_all"``, ``"{c}/P@{k}"`` and
            ``"{c}/recall_per_predicate@{k}"`` ``(26,)``; plus ``"num_frames"`` (frames with
            ground truth). ``"topk"`` is named ``"top{top_k_per_pair}"``. Values are fractions
            in [0, 1] (multiply by 100 for the papers' percentages); 0 before any frame. With
            ``num_strata = S``: ``"{c}/R@{k}/stratum{s}"`` and ``"num_frames/stratum{s}"`` for
            ``s < S``.
        """
        s = {k: v.double() for k, v in self.state.items()}
        n = s["num_frames"].clamp(min=1)
        per_pred = s["hits"] / s["counts"].clamp(min=1)  # (C, K, R); 0 where count is 0
        present = s["present_recall_sum"] / s["frames_present"].clamp(min=1)
        out: dict[str, Tensor] = {"num_frames": self.state["num_frames"].clone()}
        for ci, c in enumerate(self.constraints):
            name = f"top{self.top_k_per_pair}" if c == "topk" else c
            for ki, k in enumerate(self.ks):
                out[f"{name}/R@{k}"] = s["recall_sum"][ci, ki] / n
                out[f"{name}/mR@{k}"] = per_pred[ci, ki].mean()
                out[f"{name}/mR@{k}/frame_present"] = present[ci, ki].mean()
                out[f"{name}/mR@{k}/frame_all"] = (s["present_recall_sum"][ci, ki] / n).mean()
                out[f"{name}/P@{k}"] = s["precision_sum"][ci, ki] / n
                out[f"{name}/recall_per_predicate@{k}"] = per_pred[ci, ki]
                for si in range(self.num_strata):
                    frames = s["stratum_frames"][si].clamp(min=1)
                    out[f"{name}/R@{k}/stratum{si}"] = s["stratum_recall_sum"][si, ci, ki] / frames
        for si in range(self.num_strata):
            out[f"num_frames/stratum{si}"] = self.state["stratum_frames"][si].clone()
        return out


# ---------------------------------------------------------------------------------- the math


def _candidates(
    scores: Tensor, valid: Tensor, constraint: str, *, semi_threshold: float, top_k: int
) -> tuple[Tensor, Tensor, Tensor]:
    """The triplets a constraint makes of each frame's pairs, in the public code's row order.

    Returns ``(score (F, M), pair (F, M), predicate (F, M))``; invalid entries score ``-inf``.
    """
    Fr, P, R = scores.shape
    neg = torch.tensor(float("-inf"), dtype=scores.dtype, device=scores.device)
    pairs = torch.arange(P, device=scores.device)
    if constraint == "with":
        best = [scores[..., g].max(-1) for g in _GROUPS]  # per group: (F, P) values, indices
        score = torch.cat([v for v, _ in best], 1)  # (F, 3P): attention rows, spatial, contacting
        pred = torch.cat([i + g.start for (_, i), g in zip(best, _GROUPS, strict=True)], 1)
        pair = pairs.repeat(3).expand(Fr, -1)
        score = torch.where(valid.repeat(1, 3), score, neg)
        return score, pair, pred
    if constraint == "topk":  # ties keep the predicate order (a stable sort, not topk's order)
        score, pred = torch.sort(scores, dim=-1, descending=True, stable=True)
        score, pred = score[..., :top_k], pred[..., :top_k]  # (F, P, k), sorted per pair
        pair = pairs.view(1, P, 1).expand(Fr, P, top_k)
        score = torch.where(valid.unsqueeze(-1), score, neg)
        return score.flatten(1), pair.flatten(1), pred.flatten(1)
    # "semi" and "no": (pair, predicate) cells, rows in the order attention, spatial, contacting.
    keep = valid.unsqueeze(-1).expand(Fr, P, R)
    if constraint == "semi":
        att = _GROUPS[0]
        is_best_att = F.one_hot(scores[..., att].argmax(-1), att.stop - att.start).bool()
        keep = keep & torch.cat((is_best_att, scores[..., att.stop :] > semi_threshold), -1)
    cells = [(scores[..., g], keep[..., g], g.start) for g in _GROUPS]
    score = torch.cat([torch.where(k, s, neg).flatten(1) for s, k, _ in cells], 1)
    pair = torch.cat([pairs.view(P, 1).expand(P, s.shape[-1]).flatten() for s, _, _ in cells])
    pred = torch.cat(
        [torch.arange(g.start, g.stop, device=scores.device).repeat(P) for g in _GROUPS]
    )
    return score, pair.expand(Fr, -1), pred.expand(Fr, -1)


def _compact(x: dict[str, Tensor]) -> dict[str, Tensor]:
    """Keep the frames that have ground truth, and pack each frame's pairs to the front.

    Frames without ground truth and ground-truth pairs without a relation contribute nothing;
    packing (a stable sort of the masks) keeps the pairs' order, so ties rank as before, and lets
    ``P`` and ``G`` shrink to the largest count of a frame.
    """
    g_mask = x["g_mask"] & (x["g_relations"] != 0).any(-1)
    frames = g_mask.any(1).nonzero().squeeze(1)
    out: dict[str, Tensor] = {}
    for prefix, mask in (("p_", x["p_mask"][frames]), ("g_", g_mask[frames])):
        n = int(mask.sum(1).max()) if len(frames) else 0
        order = torch.sort(mask.to(torch.uint8), dim=1, descending=True, stable=True).indices
        order = order[:, :n]
        for key, v in x.items():
            if key.startswith(prefix):
                v = v[frames]
                index = order.view(*order.shape, *[1] * (v.dim() - 2))
                out[key] = torch.gather(v, 1, index.expand(*order.shape, *v.shape[2:]))
        out[prefix + "mask"] = torch.gather(mask, 1, order)
    return out


# Frames are evaluated in buckets of similar pair counts, each packed to its own width, so that
# a few crowded frames do not pad every other frame; and in chunks of frames, which bounds the
# memory and keeps the working set in cache. The state is a sum, so the parts add up.
_BUCKET_EDGES = (2, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256)
_CHUNK_FRAMES = 4096


def _bucketed_state(x: dict[str, Tensor], *args: Any, **kwargs: Any) -> dict[str, Tensor]:
    counts = x["p_mask"].sum(1)
    bucket = torch.bucketize(counts, torch.tensor(_BUCKET_EDGES, device=counts.device))
    total: dict[str, Tensor] | None = None
    for b in bucket.unique().tolist():  # a handful of buckets and chunks, never one per frame
        frames = (bucket == b).nonzero().squeeze(1)
        for chunk in frames.split(_CHUNK_FRAMES):
            part = _frame_state(_compact({k: v[chunk] for k, v in x.items()}), *args, **kwargs)
            total = part if total is None else {k: total[k] + v for k, v in part.items()}
    return total if total is not None else _frame_state(x, *args, **kwargs)


def _frame_state(
    x: dict[str, Tensor],
    constraints: Sequence[str],
    ks: Sequence[int],
    *,
    semi_threshold: float,
    no_constraint_top: int,
    top_k_per_pair: int,
    iou_threshold: float,
    legacy_iou: bool,
    precision_denominator: str,
    person_label: int,
) -> dict[str, Tensor]:
    """The summable state of packed frames (see [`ActionGenomeEvaluator.reset`][])."""
    p_mask, g_mask = x["p_mask"], x["g_mask"]
    Fr, P = p_mask.shape
    G = g_mask.shape[1]
    dev = p_mask.device
    R = NUM_PREDICATES
    rel = x["g_relations"].to(torch.int32) * g_mask.unsqueeze(-1)  # (F, G, R) multiplicities
    gt_count = rel.sum((1, 2))  # (F,)
    has_gt = gt_count > 0
    counts_fr = rel.sum(1)  # (F, R)

    # Which predicted pair can stand for which ground-truth pair: classes and both boxes.
    def labels(prefix: str, key: str, n: int) -> Tensor:
        v = x.get(f"{prefix}_{key}")
        return (
            v if v is not None else torch.full((Fr, n), person_label, dtype=torch.long, device=dev)
        )

    same = labels("p", "subject_labels", P).unsqueeze(2) == labels(
        "g", "subject_labels", G
    ).unsqueeze(1)
    same &= x["p_object_labels"].unsqueeze(2) == x["g_object_labels"].unsqueeze(1)
    # the boxes of valid pairs were checked finite; NaN at padded pairs fails ">=" and is
    # masked below, so the non-finite guard of the public IoU is not needed here
    iou = lambda key: iou_unchecked(  # noqa: E731
        x[f"p_{key}"].unsqueeze(2), x[f"g_{key}"].unsqueeze(1), legacy_iou, finite=True
    )
    iou_s, iou_o = iou("subject_boxes"), iou("object_boxes")
    pair_match = same & (iou_s >= iou_threshold) & (iou_o >= iou_threshold)
    pair_match &= p_mask.unsqueeze(2) & g_mask.unsqueeze(1)
    match_f = pair_match.to(torch.float32)  # (F, P, G)
    # A predicted (pair, predicate) is right when a matching ground-truth pair has that predicate.
    correct = torch.bmm(match_f, (rel > 0).to(torch.float32)) > 0  # (F, P, R)

    # Subject and object scores multiply every predicate score of the pair.
    pair_score = torch.ones(Fr, P, dtype=x["p_scores"].dtype, device=dev)
    for key in ("p_subject_scores", "p_object_scores"):
        if key in x:
            pair_score = pair_score * x[key].to(pair_score.dtype)

    C, K = len(constraints), len(ks)
    recall_sum = torch.zeros(C, K, dtype=torch.float64, device=dev)
    precision_sum = torch.zeros(C, K, dtype=torch.float64, device=dev)
    hits = torch.zeros(C, K, R, dtype=torch.long, device=dev)
    present_recall_sum = torch.zeros(C, K, R, dtype=torch.float64, device=dev)
    present = counts_fr > 0
    big = torch.iinfo(torch.int32).max
    for ci, c in enumerate(constraints):
        score, pair, pred = _candidates(
            x["p_scores"], p_mask, c, semi_threshold=semi_threshold, top_k=top_k_per_pair
        )
        # The triplet score; thresholds (semi) applied to the predicate score alone, as in the
        # public code. Dead entries stay -inf (-inf * 0 would be NaN, which sorts first).
        score = torch.where(torch.isneginf(score), score, score * torch.gather(pair_score, 1, pair))
        keep = min(score.shape[1], no_constraint_top if c == "no" else max(ks))
        order = torch.sort(score, dim=1, descending=True, stable=True).indices[:, :keep]
        top_score = torch.gather(score, 1, order)
        kept = top_score > float("-inf")  # (F, keep)
        top_pair, top_pred = torch.gather(pair, 1, order), torch.gather(pred, 1, order)
        rank = torch.arange(keep, dtype=torch.int32, device=dev).expand(Fr, keep)
        # Rank of each (pair, predicate) cell in its frame, "big" where not kept. Kept cells are
        # distinct; the others are sent to a spare column that is dropped.
        flat = top_pair * R + top_pred
        cell = torch.full((Fr, P * R + 1), big, dtype=torch.int32, device=dev)
        cell.scatter_(1, flat.masked_fill(~kept, P * R), torch.where(kept, rank, big))
        cell = cell[:, : P * R].view(Fr, P, R)
        top_correct = torch.gather(correct.view(Fr, P * R), 1, flat) & kept
        n_kept = kept.sum(1)
        for ki, k in enumerate(ks):
            in_top = (cell < k).to(torch.float32)  # (F, P, R)
            # a ground-truth triplet is hit when a matching pair has it within the top k
            hit = torch.bmm(match_f.transpose(1, 2), in_top) > 0  # (F, G, R)
            hit_count = (rel * hit).sum(1)  # (F, R)
            frame_recall = hit_count.sum(1).double() / gt_count.clamp(min=1)
            recall_sum[ci, ki] = frame_recall[has_gt].sum()
            hits[ci, ki] = hit_count.sum(0)
            per_pred = hit_count.double() / counts_fr.clamp(min=1)
            present_recall_sum[ci, ki] = (per_pred * present).sum(0)
            right = top_correct[:, :k].sum(1).double()
            den = float(k) if precision_denominator == "k" else n_kept.clamp(max=k).clamp(min=1)
            precision_sum[ci, ki] = (right / den)[has_gt].sum()
    return {
        "num_frames": has_gt.sum(),
        "counts": counts_fr.sum(0),
        "frames_present": present.sum(0),
        "recall_sum": recall_sum,
        "precision_sum": precision_sum,
        "hits": hits,
        "present_recall_sum": present_recall_sum,
    }


# ------------------------------------------------------------------------- functional + tools


def action_genome_metrics(
    preds: Mapping[str, Any], target: Mapping[str, Any], **options: Any
) -> dict[str, Tensor]:
    """Functional twin of [`ActionGenomeEvaluator`][]: one ``update`` then ``compute``.

    Args:
        preds: as [`ActionGenomeEvaluator.update`][].
        target: as [`ActionGenomeEvaluator.update`][].
        **options: the evaluator's arguments (``constraints``, ``ks``, ...).

    Returns:
        As [`ActionGenomeEvaluator.compute`][].

    Examples:
        >>> box = torch.tensor([[[0.0, 0, 10, 10]]])
        >>> rel = torch.zeros(1, 1, 26, dtype=torch.bool)
        >>> rel[0, 0, 1] = True                                   # not_looking_at
        >>> target = dict(relations=rel, mask=torch.ones(1, 1, dtype=torch.bool),
        ...               subject_boxes=box, object_boxes=box, object_labels=torch.tensor([[3]]))
        >>> preds = dict(target, predicate_scores=rel.float())
        >>> float(action_genome_metrics(preds, target, constraints=["with"], ks=[10])["with/R@10"])
        1.0
    """
    evaluator = ActionGenomeEvaluator(**options)
    evaluator.update(preds, target)
    return evaluator.compute()


def format_results(
    results: Mapping[str, Tensor], *, metrics: Sequence[str] = ("R", "mR"), ks: Sequence[int] = ()
) -> str:
    """A text table of [`ActionGenomeEvaluator.compute`][] results, in percent.

    Args:
        results: the dict ``compute`` returned.
        metrics: which of ``"R"``, ``"mR"``, ``"P"`` to show.
        ks: which K (default: every K in ``results``).

    Examples:
        >>> results = {"with/R@10": torch.tensor(0.5), "with/mR@10": torch.tensor(0.25)}
        >>> print(format_results(results))
        constraint   R@10  mR@10
        with         50.0   25.0
    """
    for m in metrics:
        check_choice(m, "metrics", ("R", "mR", "P"))
    names: list[str] = []
    all_ks: list[int] = []
    for key in results:
        parts = key.split("/")
        if len(parts) == 2 and "@" in parts[1]:
            metric, k = parts[1].split("@")
            if metric in ("R", "mR", "P"):
                if not k.isdigit():
                    raise ValueError(f"results: key {key!r} has no integer K")
                if parts[0] not in names:
                    names.append(parts[0])
                if int(k) not in all_ks:
                    all_ks.append(int(k))
    missing = [k for k in ks if k not in all_ks]
    if missing:
        raise ValueError(f"ks: {missing} not in the results (they hold K = {sorted(all_ks)})")
    ks = list(ks) or sorted(all_ks)
    cols = [f"{m}@{k}" for m in metrics for k in ks]
    cols = [c for c in cols if any(f"{n}/{c}" in results for n in names)]
    lines = ["constraint " + "".join(f"{c:>7}" for c in cols)]
    for n in names:
        vals = [results.get(f"{n}/{c}") for c in cols]
        cells = "".join(f"{100 * float(v):7.1f}" if v is not None else f"{'-':>7}" for v in vals)
        lines.append(f"{n:<11}" + cells)
    return "\n".join(lines)
