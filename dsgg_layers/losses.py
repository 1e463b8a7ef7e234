"""Losses of the papers' blocks.

- [`category_weighted_bce`][] / [`CategoryWeightedLoss`][]: MoSA's category-weighted loss
  (*MoSA*, arXiv:2604.19631, Sec. 2.4, Eq. 11-12; not legible in the paper's text, the
  reading used is on the MoSA docs page):
  per-class weights ``w_c ∝ f_c^(-beta)`` from the class frequencies ``f_c``, normalised to mean 1
  over the classes seen, in a binary cross-entropy over the multi-label targets.
- [`softmax_focal_loss`][] / [`SoftmaxFocalLoss`][]: RS-Net's relation scoring loss (*RS-Net:
  Context-Aware Relation Scoring for Dynamic Scene Graph Generation*, arXiv:2511.08651, Sec. 3.5,
  Eq. 9), the focal loss of Lin et al. (ICCV 2017) over the softmax of ``C`` classes (2 there).
- [`multilabel_margin_loss`][]: the multi-label margin loss of RS-Net's Eq. 8 (the paper's
  unnormalised double sum) and, with ``normalize=True``, the convention of
  `torch.nn.MultiLabelMarginLoss` that STTran-family code trains with.
- [`multilabel_focal_loss`][] and [`inverse_log_frequency`][]: the class-weighted focal loss
  TR²'s public code trains spatial and contacting predicates with (*Cross-Modality Time-Variant
  Relation Learning for Generating Dynamic Scene Graphs*, ICRA 2023, arXiv:2305.08522, Eq. 3:
  "BCE ... gathered in a focal loss form"): one focal term per pair on the sum of its binary
  cross-entropies, weighted by the mean inverse-log-frequency of the pair's labels.
- [`sigmoid_focal_loss`][] / [`SigmoidFocalLoss`][]: the focal loss of Lin et al. on
  independent sigmoids, the classification loss of DETR-style set prediction (ARN, *End-to-End
  Entity-Predicate Association Reasoning for Dynamic Scene Graph Generation*, Eq. 7).
- [`embedding_alignment_loss`][]: ARN's L1 alignment of predicate embeddings to CLIP image
  embeddings (Sec. 3.5; weight 20, its largest term).
- [`sttran_predicate_loss`][]: the predicate loss STTran's public code trains with on Action
  Genome's three predicate groups (cross-entropy on attention, the margin loss on the sigmoid
  scores of spatial and contacting, or binary cross-entropy with its ``bce_loss`` option).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Iterable, Mapping
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dsgg_layers._checks import (
    check_choice,
    check_positive,
    check_tensor,
    is_compiling,
    values_readable,
)
from dsgg_layers._ops import Reduction, masked_reduce
from dsgg_layers.rows import MaskOrRows, ValidRows, split_mask
from dsgg_layers.vocab import PREDICATE_GROUPS

__all__ = [
    "CategoryWeightedLoss",
    "FocalLoss",
    "SigmoidFocalLoss",
    "SoftmaxFocalLoss",
    "category_weighted_bce",
    "class_weights",
    "embedding_alignment_loss",
    "feature_distillation_loss",
    "inverse_log_frequency",
    "label_frequencies",
    "multilabel_focal_loss",
    "multilabel_margin_loss",
    "sigmoid_focal_loss",
    "softmax_focal_loss",
    "sttran_predicate_loss",
    "tr2_predicate_loss",
]


def _on_valid_samples(*per_sample: str):
    """A loss decorator: given a [`ValidRows`][dsgg_layers.rows.ValidRows] ``mask`` that
    describes its samples, the loss runs on the valid samples only.

    The ``per_sample`` arguments (``(..., C)`` or ``(...)`` over the mask's grid) are gathered to
    ``(N, C)`` / ``(N,)``, the loss is called without a mask (the mean of the valid samples is the
    masked mean), and a ``reduction="none"`` output is scattered back to the grid (0 at padding).
    Otherwise (a bool mask, rows of another grid, under ``torch.compile``) the loss runs as
    written, reading a ``ValidRows`` as its mask.
    """

    def wrap(fn):
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def loss(*args: Any, **kwargs: Any) -> Any:
            if is_compiling():
                return fn(*args, **kwargs)
            bound = signature.bind(*args, **kwargs)
            rows = bound.arguments.get("mask")
            xs = [bound.arguments.get(name) for name in per_sample]
            lead = None if not isinstance(rows, ValidRows) else rows.shape
            if lead is None or not all(
                isinstance(x, Tensor) and tuple(x.shape[: len(lead)]) == lead
                and x.dim() <= len(lead) + 1 for x in xs
            ):  # fmt: skip
                return fn(*args, **kwargs)
            for name, x in zip(per_sample, xs, strict=True):
                bound.arguments[name] = rows.take(x)
            bound.arguments["mask"] = None
            out = fn(*bound.args, **bound.kwargs)
            if bound.arguments.get("reduction", "mean") != "none" or not isinstance(out, Tensor):
                return out
            return rows.put(out)

        return loss

    return wrap


def class_weights(frequencies: Tensor, beta: float = 0.5) -> Tensor:
    """Per-class weights ``w_c ∝ f_c^(-beta)``, normalised to mean 1 over the classes seen.

    A class never seen (``f_c = 0``) gets the largest weight of the seen classes: it is rarer
    than all of them, and a rarer class never gets a smaller weight. ``beta = 0`` gives 1 for
    every class; larger ``beta`` favours rare classes more (1 is inverse frequency).

    Args:
        frequencies: count (or frequency) of positives of each class, ``>= 0``.
        beta: the exponent, ``>= 0``.

    Shape:
        - frequencies: ``(C,)``
        - output: ``(C,)`` float32

    Raises:
        TypeError: ``frequencies`` is not a tensor.
        ValueError: it is not 1-d, has a negative or non-finite entry, or ``beta`` is negative
            or not finite.

    Examples:
        >>> class_weights(torch.tensor([100, 25, 0]), beta=0.5)
        tensor([0.6667, 1.3333, 1.3333])
        >>> class_weights(torch.tensor([100, 25, 4]), beta=0.0)
        tensor([1., 1., 1.])
    """
    check_tensor(frequencies, "frequencies", ("C",))
    check_positive(beta, "beta", integer=False, allow_zero=True)
    f = frequencies.detach().double()
    if not bool(((f >= 0) & torch.isfinite(f)).all()):
        raise ValueError(f"frequencies: expected finite counts >= 0, got {frequencies.tolist()}")
    seen = f > 0
    if not bool(seen.any()):
        return torch.ones_like(f, dtype=torch.float32)
    w = torch.where(seen, f.clamp(min=torch.finfo(f.dtype).tiny) ** -beta, 0.0)
    w = w / w[seen].mean()
    return torch.where(seen, w, w[seen].max()).float()


@_on_valid_samples("logits", "targets")
def category_weighted_bce(
    logits: Tensor,
    targets: Tensor,
    weights: Tensor,
    *,
    mask: MaskOrRows | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    """Binary cross-entropy with a weight per class, over multi-label targets.

    ``loss[n, c] = w_c * BCE(logits[n, c], targets[n, c])``; ``"mean"`` averages over every valid
    sample and class, so with all weights 1 and no ``mask`` it is exactly
    `torch.nn.functional.binary_cross_entropy_with_logits`.

    Args:
        logits: class logits.
        targets: multi-label targets in ``[0, 1]`` (bool or float).
        weights: per-class weights ([`class_weights`][]).
        mask: ``True`` for the samples to count (e.g. the pairs that exist); padded samples add
            nothing and get no gradient, whatever their logits and targets hold (NaN included).
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Shape:
        - logits, targets: ``(..., C)``
        - weights: ``(C,)``
        - mask: ``(...)``
        - output: scalar, or ``(..., C)`` with ``"none"`` (0 at masked samples)

    Raises:
        TypeError, ValueError: shapes or dtypes disagree, ``reduction`` is unknown, or (CPU
            tensors) a counted target lies outside ``[0, 1]`` or is NaN.

    Examples:
        >>> logits, targets = torch.randn(4, 3), torch.rand(4, 3) > 0.5
        >>> plain = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets.float())
        >>> torch.equal(category_weighted_bce(logits, targets, torch.ones(3)), plain)
        True
    """
    dims: dict[str, tuple[int, str]] = {}
    check_tensor(logits, "logits", ("...", "C"), dims=dims, dtype="float")
    check_tensor(targets, "targets", (*logits.shape[:-1], "C"), dims=dims)
    check_tensor(weights, "weights", ("C",), dims=dims, dtype="float")
    check_choice(reduction, "reduction", ("mean", "sum", "none"))
    mask, _ = split_mask(mask)
    targets = targets.to(logits.dtype)
    weight = weights.to(logits.dtype)
    if mask is None:
        _check_targets(targets, None)
        if logits.numel() == 0 and reduction == "mean":  # no sample: 0, not 0 / 0
            return logits.sum()
        return F.binary_cross_entropy_with_logits(
            logits, targets, weight=weight, reduction=reduction
        )
    check_tensor(mask, "mask", tuple(logits.shape[:-1]), dims=dims, dtype="bool")
    _check_targets(targets, mask)
    # masked samples may hold anything (NaN, inf): replace them before the loss, so that no
    # 0 * NaN reaches the sum or the gradient
    padded = ~mask.unsqueeze(-1)
    logits, targets = logits.masked_fill(padded, 0.0), targets.masked_fill(padded, 0.0)
    loss = F.binary_cross_entropy_with_logits(logits, targets, weight=weight, reduction="none")
    loss = loss.masked_fill(padded, 0.0)
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    return loss.sum() / (mask.sum() * logits.shape[-1]).clamp(min=1)


def _check_targets(targets: Tensor, mask: Tensor | None) -> None:
    """Targets in [0, 1] at the counted samples (CPU only: reading values costs no sync)."""
    if not values_readable(targets, mask):
        return
    t = targets if mask is None else targets[mask]
    bad = ~((t >= 0) & (t <= 1))  # NaN fails both
    if bool(bad.any()):
        raise ValueError(f"targets: expected values in [0, 1], got {t[bad][0].item()}")


class CategoryWeightedLoss(nn.Module):
    """MoSA's category-weighted loss (Eq. 11-12) as a module holding the class weights.

    The weights ([`class_weights`][] of ``frequencies`` with ``beta``) are a buffer, saved with
    the model. See [`category_weighted_bce`][] for the loss.

    Args:
        frequencies: positives of each class in the training set ([`label_frequencies`][]).
        beta: the exponent of ``w_c ∝ f_c^(-beta)``; 0 is plain BCE.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Shape:
        - logits, targets: ``(..., C)``; mask: ``(...)``
        - output: scalar, or ``(..., C)`` with ``"none"``

    Raises:
        TypeError, ValueError: as [`class_weights`][] and [`category_weighted_bce`][].

    Examples:
        >>> loss = CategoryWeightedLoss(torch.tensor([500, 50, 5]), beta=0.5)
        >>> loss.weights
        tensor([0.2118, 0.6699, 2.1183])
        >>> loss(torch.zeros(2, 3), torch.ones(2, 3)).round(decimals=4)
        tensor(0.6931)
    """

    weights: Tensor

    def __init__(
        self, frequencies: Tensor, beta: float = 0.5, *, reduction: Reduction = "mean"
    ) -> None:
        super().__init__()
        check_choice(reduction, "reduction", ("mean", "sum", "none"))
        check_tensor(frequencies, "frequencies", ("C",))
        self.beta, self.reduction = float(beta), reduction
        self.register_buffer("frequencies", frequencies.detach().clone().double())
        self.register_buffer("weights", class_weights(frequencies, beta))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Recompute the weights from the stored frequencies (there are no parameters)."""
        self.weights.copy_(class_weights(self.frequencies, self.beta))

    def extra_repr(self) -> str:
        return f"classes={self.weights.numel()}, beta={self.beta}, reduction={self.reduction!r}"

    def forward(self, logits: Tensor, targets: Tensor, mask: MaskOrRows | None = None) -> Tensor:
        """The weighted binary cross-entropy; see [`category_weighted_bce`][]."""
        return category_weighted_bce(
            logits, targets, self.weights, mask=mask, reduction=self.reduction
        )


def label_frequencies(videos: Iterable[Any]) -> Tensor:
    """Positives of each class over a dataset of graphs with ``relations`` and ``mask``.

    Works with any items that have a bool ``relations (..., C)`` and ``mask (...)``, such as
    [`dsgg_layers.data.VideoGraph`][dsgg_layers.data.graph.VideoGraph].

    Args:
        videos: the training videos (e.g. a dataset).

    Returns:
        ``(C,)`` int64 counts of positive labels over the existing pairs.

    Raises:
        TypeError: an item has no ``relations`` or ``mask``.
        ValueError: ``videos`` is empty.

    Examples:
        >>> from types import SimpleNamespace
        >>> v = SimpleNamespace(relations=torch.tensor([[1, 0], [1, 1]]).bool(),
        ...                     mask=torch.tensor([True, False]))
        >>> label_frequencies([v, v])
        tensor([2, 0])
    """
    total: Tensor | None = None
    for i, v in enumerate(videos):
        if not hasattr(v, "relations") or not hasattr(v, "mask"):
            raise TypeError(f"videos[{i}]: expected an item with relations and mask")
        dims: dict[str, tuple[int, str]] = {}
        check_tensor(v.mask, f"videos[{i}].mask", ("...",), dims=dims, dtype="bool")
        check_tensor(v.relations, f"videos[{i}].relations", (*v.mask.shape, "C"), dims=dims,
                     dtype=("bool", "int"))  # fmt: skip
        counts = v.relations[v.mask].long().sum(0)
        total = counts if total is None else total + counts
    if total is None:
        raise ValueError("videos: expected at least one item, got none")
    return total


# --------------------------------------------------------------------------- RS-Net (Eq. 8-9)


@_on_valid_samples("logits", "target")
def softmax_focal_loss(
    logits: Tensor,
    target: Tensor,
    *,
    alpha: Tensor | tuple[float, ...] | None = None,
    gamma: float = 2.0,
    mask: MaskOrRows | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    """Focal loss over the softmax of ``C`` classes: ``-alpha_y (1 - p_y)^gamma log p_y``.

    RS-Net's relation scoring loss (*RS-Net: Context-Aware Relation Scoring for Dynamic Scene
    Graph Generation*, arXiv:2511.08651, Sec. 3.5, Eq. 9) with ``C = 2``: class 0 "meaningful
    relation" (the decoder's ``p0``), class 1 "irrelevant". Eq. 9 as printed sums
    ``alpha_c (1 - p_c)^gamma log p_c`` over both classes without the target's indicator; this is
    read as the focal loss of Lin et al. (*Focal Loss for Dense Object Detection*, ICCV 2017),
    whose sum keeps the true class only (with both terms the loss would push ``p0`` and ``p1`` up
    together, which a softmax cannot do). ``gamma = 0`` and ``alpha = None`` is exactly
    `torch.nn.functional.cross_entropy`.

    The paper gives no ``alpha_c`` or ``gamma``. Defaults: ``gamma = 2`` (Lin et al.'s choice) and
    no ``alpha`` (RS-Net's negative sampling already balances the classes to at most 1.2
    negatives a positive, so class weights would count the balance twice).

    Args:
        logits: class logits (before the softmax).
        target: the true class of each sample (int), or for two classes a bool ``True`` =
            class 0, "meaningful" (RS-Net's ``[1, 0]`` target).
        alpha: per-class weights ``(C,)`` (Eq. 9's ``alpha_c``), or ``None`` for none.
        gamma: the focusing exponent (``>= 0``).
        mask: ``True`` for the samples to count; the others add nothing and get no gradient,
            whatever their logits and targets hold.
        reduction: ``"mean"`` (over the counted samples; Eq. 9 sums, which scales the loss
            with the number of pairs in a batch), ``"sum"`` (Eq. 9) or ``"none"``.

    Shape:
        - logits: ``(..., C)``
        - target, mask: ``(...)``
        - output: scalar, or ``(...)`` with ``"none"`` (0 at masked samples)

    Raises:
        TypeError, ValueError: shapes or dtypes disagree, ``gamma`` is negative, ``reduction`` is
            unknown, or (CPU tensors) a counted target is not a class index.

    Examples:
        >>> logits, target = torch.randn(5, 2), torch.tensor([0, 1, 1, 0, 1])
        >>> ce = torch.nn.functional.cross_entropy(logits, target)
        >>> torch.allclose(softmax_focal_loss(logits, target, gamma=0.0), ce)
        True
        >>> easy = softmax_focal_loss(torch.tensor([[4.0, -4.0]]), torch.tensor([0]))
        >>> bool(easy < 1e-6)    # a well-classified sample hardly counts
        True
    """
    dims: dict[str, tuple[int, str]] = {}
    check_tensor(logits, "logits", ("...", "C"), dims=dims, dtype="float")
    check_tensor(target, "target", tuple(logits.shape[:-1]), dims=dims, dtype=("int", "bool"))
    check_positive(gamma, "gamma", integer=False, allow_zero=True)
    check_choice(reduction, "reduction", ("mean", "sum", "none"))
    mask, _ = split_mask(mask)
    C = logits.shape[-1]
    if target.dtype == torch.bool:
        if C != 2:
            raise ValueError(f"target: a bool target needs 2 classes, got logits with C={C}")
        target = (~target).long()  # True = meaningful = class 0
    if mask is not None:
        check_tensor(mask, "mask", tuple(logits.shape[:-1]), dims=dims, dtype="bool")
        logits = logits.masked_fill(~mask.unsqueeze(-1), 0.0)
        target = target.masked_fill(~mask, 0)
    if values_readable(target) and target.numel():
        lo, hi = int(target.min()), int(target.max())
        if lo < 0 or hi >= C:
            raise ValueError(f"target: expected class indices in [0, {C}), got [{lo}, {hi}]")
    weight = None
    if alpha is not None:
        weight = torch.as_tensor(alpha, dtype=logits.dtype, device=logits.device)
        check_tensor(weight, "alpha", (C,), dtype="float")
    flat_logits, flat_target = logits.reshape(-1, C), target.long().reshape(-1)
    if (
        gamma == 0
        and weight is None
        and mask is None
        and reduction != "none"
        and C
        and target.numel()
    ):
        return F.cross_entropy(flat_logits, flat_target, reduction=reduction)  # exactly CE
    loss = F.cross_entropy(flat_logits, flat_target, reduction="none").reshape(target.shape)
    if gamma > 0:
        loss = loss * (1 - (-loss).exp()).clamp(min=0) ** gamma
    if weight is not None:
        loss = loss * weight[target.long()]
    if mask is not None:
        loss = loss.masked_fill(~mask, 0.0)
    return masked_reduce(loss, mask, reduction)


class SoftmaxFocalLoss(nn.Module):
    """[`softmax_focal_loss`][] as a module (RS-Net's ``L_RSN``, Eq. 9).

    ``alpha`` is a buffer (a configuration tensor, saved with the model).

    Args:
        alpha: per-class weights ``(C,)`` or ``None``.
        gamma: the focusing exponent (default 2, Lin et al.; RS-Net gives none).
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Shape:
        As [`softmax_focal_loss`][].

    Raises:
        TypeError, ValueError: as [`softmax_focal_loss`][].

    Examples:
        >>> loss = SoftmaxFocalLoss(gamma=2.0)
        >>> loss(torch.zeros(3, 2), torch.tensor([True, False, True])).round(decimals=4)
        tensor(0.1733)
    """

    alpha: Tensor | None

    def __init__(
        self,
        alpha: Tensor | tuple[float, ...] | None = None,
        gamma: float = 2.0,
        *,
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__()
        check_positive(gamma, "gamma", integer=False, allow_zero=True)
        check_choice(reduction, "reduction", ("mean", "sum", "none"))
        self.gamma, self.reduction = float(gamma), reduction
        if alpha is not None:
            alpha = torch.as_tensor(alpha, dtype=torch.get_default_dtype())
            check_tensor(alpha, "alpha", ("C",), dtype="float")
        self.register_buffer("alpha", alpha)

    def reset_parameters(self) -> None:
        """Nothing to reset (no parameters)."""

    def extra_repr(self) -> str:
        alpha = None if self.alpha is None else self.alpha.tolist()
        return f"alpha={alpha}, gamma={self.gamma}, reduction={self.reduction!r}"

    def forward(self, logits: Tensor, target: Tensor, mask: MaskOrRows | None = None) -> Tensor:
        """The focal loss; see [`softmax_focal_loss`][]."""
        return softmax_focal_loss(logits, target, alpha=self.alpha, gamma=self.gamma, mask=mask,
                                  reduction=self.reduction)  # fmt: skip


class FocalLoss(SoftmaxFocalLoss):
    """Deprecated name of [`SoftmaxFocalLoss`][] (the twin of [`softmax_focal_loss`][], as
    [`SigmoidFocalLoss`][] is of [`sigmoid_focal_loss`][]); warns, then is removed in the next
    release.

    Args:
        *args: as [`SoftmaxFocalLoss`][].
        **kwargs: as [`SoftmaxFocalLoss`][].

    Shape:
        As [`SoftmaxFocalLoss`][].

    Raises:
        ValueError: as [`SoftmaxFocalLoss`][].

    Examples:
        >>> import warnings
        >>> with warnings.catch_warnings():
        ...     warnings.simplefilter("ignore", DeprecationWarning)
        ...     isinstance(FocalLoss(), SoftmaxFocalLoss)
        True
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        import warnings

        warnings.warn(
            "FocalLoss is deprecated: use SoftmaxFocalLoss (same arguments)",
            DeprecationWarning,
            stacklevel=2,
        )
        super().__init__(*args, **kwargs)


@_on_valid_samples("scores", "target")
def multilabel_margin_loss(
    scores: Tensor,
    target: Tensor,
    *,
    margin: float = 1.0,
    normalize: bool = False,
    mask: MaskOrRows | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    """Multi-label margin loss: ``sum_{m in S+} sum_{n in S-} max(0, margin - s_m + s_n)``.

    Per sample, every annotated class ``m`` must score ``margin`` above every other class
    ``n``. ``normalize=False`` is RS-Net's Eq. 8 (*RS-Net*, arXiv:2511.08651, Sec. 3.5): the
    unnormalised double sum. ``normalize=True`` divides each sample's sum by the number of
    classes ``C``, which is `torch.nn.MultiLabelMarginLoss` (the loss STTran-family code
    trains its spatial and contacting predicates with, on sigmoid scores): the two differ by the
    factor ``C`` only. A sample with no annotated class (or all classes annotated) adds 0.

    Args:
        scores: the predicted scores ``s`` (STTran: sigmoid probabilities).
        target: bool, ``True`` for the annotated classes ``S+``.
        margin: the margin (1 in both).
        normalize: divide each sample's sum by ``C`` (torch's convention).
        mask: ``True`` for the samples to count; the others add nothing and get no gradient.
        reduction: ``"mean"`` over the counted samples (torch's default), ``"sum"`` or
            ``"none"``.

    Shape:
        - scores, target: ``(..., C)``
        - mask: ``(...)``
        - output: scalar, or ``(...)`` with ``"none"``

    Raises:
        TypeError, ValueError: shapes or dtypes disagree, or ``reduction`` is unknown.

    Examples:
        >>> s = torch.tensor([[0.9, 0.2, 0.6]])
        >>> t = torch.tensor([[True, False, False]])
        >>> multilabel_margin_loss(s, t)   # (1 - 0.9 + 0.2) + (1 - 0.9 + 0.6)
        tensor(1.)
        >>> index = torch.tensor([[0, -1, -1]])           # torch's form of the same target
        >>> torch.nn.MultiLabelMarginLoss()(s, index) * 3
        tensor(1.)
    """
    dims: dict[str, tuple[int, str]] = {}
    check_tensor(scores, "scores", ("...", "C"), dims=dims, dtype="float")
    check_tensor(target, "target", tuple(scores.shape), dims=dims, dtype="bool")
    check_positive(margin, "margin", integer=False, allow_zero=True)
    check_choice(reduction, "reduction", ("mean", "sum", "none"))
    mask, _ = split_mask(mask)
    if mask is not None:
        check_tensor(mask, "mask", tuple(scores.shape[:-1]), dims=dims, dtype="bool")
        scores = scores.masked_fill(~mask.unsqueeze(-1), 0.0)
        target = target & mask.unsqueeze(-1)
    # (..., C, C): every (positive m, negative n) pair of classes of a sample
    hinge = (margin - scores.unsqueeze(-1) + scores.unsqueeze(-2)).clamp(min=0)
    both = target.unsqueeze(-1) & ~target.unsqueeze(-2)
    loss = hinge.masked_fill(~both, 0.0).sum((-2, -1))
    if normalize:
        loss = loss / scores.shape[-1]
    return masked_reduce(loss, mask, reduction)


# ------------------------------------------------------------------------------ TR² (Eq. 3)


def inverse_log_frequency(counts: Tensor) -> Tensor:
    """Class weights ``alpha_c ∝ 1 / log(n_c)``, normalised to mean 1 (TR²'s focal weights).

    TR²'s public code builds them from the training counts of the spatial and contacting
    predicates. ``log(n)`` is 0 for ``n = 1`` and undefined below: counts are clamped at 2 first
    (a class seen at most twice gets the largest weight, ``1 / log 2``).

    Args:
        counts: ``(C,)`` training positives of each class.

    Returns:
        ``(C,)`` float weights of mean 1.

    Raises:
        TypeError, ValueError: ``counts`` is not a 1-d tensor with at least one class, or holds
            a negative, NaN or infinite count (on the CPU).

    Examples:
        >>> w = inverse_log_frequency(torch.tensor([10.0, 100.0, 1000.0]))
        >>> w.round(decimals=3), w.mean()        # 1/1 : 1/2 : 1/3, scaled to mean 1
        (tensor([1.6360, 0.8180, 0.5450]), tensor(1.))
    """
    check_tensor(counts, "counts", ("C",), dtype=("int", "float"))
    if counts.numel() == 0:
        raise ValueError("counts: expected at least one class, got none")
    if values_readable(counts) and not bool(((counts >= 0) & (counts < float("inf"))).all()):
        raise ValueError(f"counts: expected finite non-negative counts, got {counts.tolist()}")
    inv = 1.0 / counts.double().clamp(min=2).log()
    return (inv / inv.mean()).to(torch.get_default_dtype())


@_on_valid_samples("logits", "target")
def multilabel_focal_loss(
    logits: Tensor,
    target: Tensor,
    *,
    alpha: Tensor | None = None,
    gamma: float = 2.0,
    mask: MaskOrRows | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    """A focal term per sample on the sum of its binary cross-entropies (TR²'s code).

    ``l = sum_c BCE(logit_c, y_c)``, ``p_t = exp(-l)`` (the probability that every label of the
    sample is right), loss ``alpha_s (1 - p_t)^gamma l`` with ``alpha_s`` the mean of
    ``alpha_c`` over the sample's positive classes (1 for a sample with none, or without
    ``alpha``). This is how TR²'s public code reads Eq. 3's "BCE ... gathered in a focal loss
    form" for the spatial and contacting predicates, with ``gamma = 2`` and
    ``alpha = inverse_log_frequency(training counts)``. The code indexes ``alpha`` with the
    label minus one (so label 0 reads the last class's weight): the intended index is used here.
    Computed from logits (``binary_cross_entropy_with_logits``), not from probabilities as the
    code does: the same value, stable for large logits. ``gamma = 0``, no ``alpha``: the
    per-sample sum of binary cross-entropies.

    Args:
        logits: ``(..., C)`` class logits.
        target: ``(..., C)`` bool (or 0/1 float) multi-label targets.
        alpha: ``(C,)`` class weights, or ``None``.
        gamma: the focusing exponent (``>= 0``).
        mask: ``(...)`` ``True`` for the samples to count (the others add nothing and get no
            gradient, whatever they hold).
        reduction: ``"mean"`` (over the counted samples, as the code), ``"sum"`` or ``"none"``.

    Shape:
        - logits, target: ``(..., C)``; mask: ``(...)``
        - output: scalar, or ``(...)`` with ``"none"``

    Raises:
        TypeError, ValueError: shapes or dtypes disagree, ``gamma`` is negative or
            ``reduction`` unknown.

    Examples:
        >>> logits, target = torch.randn(4, 6), torch.rand(4, 6) > 0.7
        >>> bce = torch.nn.functional.binary_cross_entropy_with_logits(
        ...     logits, target.float(), reduction="none").sum(-1).mean()
        >>> torch.allclose(multilabel_focal_loss(logits, target, gamma=0.0), bce)
        True
    """
    dims: dict[str, tuple[int, str]] = {}
    check_tensor(logits, "logits", ("...", "C"), dims=dims, dtype="float")
    check_tensor(target, "target", tuple(logits.shape), dims=dims, dtype=("bool", "float"))
    check_positive(gamma, "gamma", integer=False, allow_zero=True)
    check_choice(reduction, "reduction", ("mean", "sum", "none"))
    mask, _ = split_mask(mask)
    y = target.to(logits.dtype)
    if mask is not None:
        check_tensor(mask, "mask", tuple(logits.shape[:-1]), dims=dims, dtype="bool")
        logits = logits.masked_fill(~mask.unsqueeze(-1), 0.0)
        y = y.masked_fill(~mask.unsqueeze(-1), 0.0)
    acc = torch.promote_types(logits.dtype, torch.float32)  # the sum over classes, fp16-safe
    loss = F.binary_cross_entropy_with_logits(logits.to(acc), y.to(acc), reduction="none").sum(-1)
    if gamma > 0:
        loss = loss * (1 - (-loss).exp()).clamp(min=0) ** gamma
    if alpha is not None:
        check_tensor(alpha, "alpha", (logits.shape[-1],), dtype="float")
        positives = y.to(acc)
        count = positives.sum(-1)
        mean_alpha = (positives @ alpha.to(acc)) / count.clamp(min=1)
        loss = loss * torch.where(count > 0, mean_alpha, torch.ones_like(mean_alpha))
    if mask is not None:
        loss = loss.masked_fill(~mask, 0.0)
    return masked_reduce(loss, mask, reduction).to(logits.dtype)


# ------------------------------------------------------------------------------- ARN (Eq. 7)


@_on_valid_samples("logits", "targets")
def sigmoid_focal_loss(
    logits: Tensor,
    targets: Tensor,
    *,
    alpha: float | None = None,
    gamma: float = 2.0,
    mask: MaskOrRows | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    """Focal loss on independent sigmoids: ``-alpha_t (1 - p_t)^gamma log p_t`` per element.

    The classification loss of DETR-style set prediction (Lin et al., *Focal Loss for Dense
    Object Detection*, ICCV 2017; ARN, Eq. 7, whose text says softmax while its Eq. 7 and its
    inference use sigmoids: sigmoids here). ``p_t = p`` where the target is 1 and ``1 - p``
    where it is 0; ``alpha_t = alpha`` and ``1 - alpha`` likewise (no weighting when ``alpha``
    is ``None``). Equal to `torchvision.ops.sigmoid_focal_loss` with the same ``alpha``
    and ``gamma`` (torchvision's default ``alpha`` is 0.25); ``gamma = 0``, ``alpha = None`` is
    binary cross-entropy. The cross-entropy is taken from the logits and ``1 - p_t`` as a
    sigmoid of the logit, so logits of +-100 give finite values and gradients, for every
    ``gamma`` (``1 - p_t`` is kept above the smallest normal float before the power).

    Args:
        logits: ``(..., C)`` logits.
        targets: ``(..., C)`` targets in ``[0, 1]`` (bool or float).
        alpha: the weight of the positives in ``[0, 1]``, or ``None``.
        gamma: the focusing exponent (``>= 0``).
        mask: ``(...)`` ``True`` for the samples to count; the others add nothing and get no
            gradient.
        reduction: ``"mean"`` (over the counted elements), ``"sum"`` (what DETR divides by the
            number of targets) or ``"none"`` (``(..., C)``).

    Shape:
        - logits, targets: ``(..., C)``; mask: ``(...)``
        - output: scalar, or ``(..., C)`` with ``"none"``

    Raises:
        TypeError, ValueError: shapes or dtypes disagree, ``alpha`` is outside ``[0, 1]``,
            ``gamma`` is negative or ``reduction`` unknown.

    Examples:
        >>> x, y = torch.randn(4, 3), torch.rand(4, 3) > 0.5
        >>> bce = torch.nn.functional.binary_cross_entropy_with_logits(x, y.float())
        >>> torch.allclose(sigmoid_focal_loss(x, y, gamma=0.0), bce)
        True
        >>> sigmoid_focal_loss(torch.tensor([[100.0, -100.0]]), torch.tensor([[1.0, 0.0]]))
        tensor(0.)
    """
    dims: dict[str, tuple[int, str]] = {}
    check_tensor(logits, "logits", ("...", "C"), dims=dims, dtype="float")
    check_tensor(targets, "targets", tuple(logits.shape), dims=dims, dtype=("bool", "float"))
    check_positive(gamma, "gamma", integer=False, allow_zero=True)
    check_choice(reduction, "reduction", ("mean", "sum", "none"))
    if alpha is not None and (isinstance(alpha, bool) or not 0.0 <= float(alpha) <= 1.0):
        raise ValueError(f"alpha: expected None or a number in [0, 1], got {alpha!r}")
    mask, _ = split_mask(mask)
    acc = torch.promote_types(logits.dtype, torch.float32)
    x, t = logits.to(acc), targets.to(acc)
    if mask is not None:
        check_tensor(mask, "mask", tuple(logits.shape[:-1]), dims=dims, dtype="bool")
        keep = mask.unsqueeze(-1)
        x, t = x.masked_fill(~keep, 0.0), t.masked_fill(~keep, 0.0)
    loss = F.binary_cross_entropy_with_logits(x, t, reduction="none")
    if gamma > 0:
        # 1 - p_t = t * sigmoid(-x) + (1 - t) * sigmoid(x), exact in the tails
        # (kept above the smallest normal float: at 0, the gradient of miss ** gamma for
        # gamma < 1 is infinite and times a zero loss NaN)
        miss = t * torch.sigmoid(-x) + (1 - t) * torch.sigmoid(x)
        loss = loss * miss.clamp(min=torch.finfo(miss.dtype).tiny).pow(gamma)
    if alpha is not None:
        loss = loss * (alpha * t + (1 - alpha) * (1 - t))
    if mask is not None:
        loss = loss.masked_fill(~mask.unsqueeze(-1), 0.0)
    if reduction == "none":
        return loss.to(logits.dtype)
    if reduction == "sum" or loss.numel() == 0:
        return loss.sum().to(logits.dtype)
    if mask is None:
        return loss.mean().to(logits.dtype)
    return (loss.sum() / (mask.sum() * logits.shape[-1]).clamp(min=1)).to(logits.dtype)


class SigmoidFocalLoss(nn.Module):
    """[`sigmoid_focal_loss`][] as a module (ARN's classification loss, Eq. 7).

    Args:
        alpha: the weight of the positives, or ``None``.
        gamma: the focusing exponent (default 2).
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Shape:
        As [`sigmoid_focal_loss`][].

    Raises:
        TypeError, ValueError: as [`sigmoid_focal_loss`][].

    Examples:
        >>> SigmoidFocalLoss(alpha=0.25)(torch.zeros(2, 3), torch.ones(2, 3))
        tensor(0.0433)
    """

    def __init__(
        self, alpha: float | None = None, gamma: float = 2.0, *, reduction: Reduction = "mean"
    ) -> None:
        super().__init__()
        check_positive(gamma, "gamma", integer=False, allow_zero=True)
        check_choice(reduction, "reduction", ("mean", "sum", "none"))
        if alpha is not None and (isinstance(alpha, bool) or not 0.0 <= float(alpha) <= 1.0):
            raise ValueError(f"alpha: expected None or a number in [0, 1], got {alpha!r}")
        self.alpha, self.gamma, self.reduction = alpha, float(gamma), reduction

    def reset_parameters(self) -> None:
        """Nothing to reset (no parameters)."""

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, gamma={self.gamma}, reduction={self.reduction!r}"

    def forward(self, logits: Tensor, targets: Tensor, mask: MaskOrRows | None = None) -> Tensor:
        """The focal loss; see [`sigmoid_focal_loss`][]."""
        return sigmoid_focal_loss(logits, targets, alpha=self.alpha, gamma=self.gamma,
                                  mask=mask, reduction=self.reduction)  # fmt: skip


def embedding_alignment_loss(
    embeddings: Tensor,
    image_embeddings: Tensor,
    mask: MaskOrRows | None = None,
    *,
    normalize: bool = True,
    reduction: Reduction = "mean",
) -> Tensor:
    """L1 distance between predicate embeddings and CLIP image embeddings (ARN, Sec. 3.5).

    ARN follows earlier work in pulling its predicate embeddings (the predicate features
    projected to the text width, what its triplet classifier compares with the text rows)
    towards CLIP's image embeddings with an L1 loss of weight 20. The paper does not say which
    image embedding: the default of the reference assembly is the whole frame's, as in the work
    it follows (pass a union-crop embedding per pair for the other reading). ``normalize``
    L2-normalises both sides first (CLIP's embedding space is compared by angle; without it the
    loss also pulls the norms).

    Args:
        embeddings: ``(..., E)`` predicate embeddings.
        image_embeddings: CLIP image embeddings broadcastable to ``embeddings`` (e.g.
            ``(frames, 1, E)`` for one per frame).
        mask: ``(...)`` ``True`` for the embeddings to count (matched queries).
        normalize: L2-normalise both sides.
        reduction: ``"mean"`` (over counted elements, as ``nn.L1Loss``), ``"sum"`` or ``"none"``
            (``(...)``, the per-embedding mean absolute difference).

    Shape:
        - embeddings: ``(..., E)``; image_embeddings: broadcastable; mask: ``(...)``
        - output: scalar, or ``(...)`` with ``"none"``

    Raises:
        TypeError, ValueError: shapes or dtypes disagree.

    Examples:
        >>> e = torch.tensor([[3.0, 4.0]])
        >>> embedding_alignment_loss(e, torch.tensor([[0.6, 0.8]]))        # same direction
        tensor(0.)
        >>> embedding_alignment_loss(e, torch.tensor([[0.0, 0.0]]), normalize=False)
        tensor(3.5000)
    """
    check_tensor(embeddings, "embeddings", ("...", "E"), dtype="float")
    check_tensor(image_embeddings, "image_embeddings", ("...", embeddings.shape[-1]),
                 dtype="float")  # fmt: skip
    check_choice(reduction, "reduction", ("mean", "sum", "none"))
    try:
        target = image_embeddings.expand_as(embeddings)
    except RuntimeError:
        raise ValueError(
            f"image_embeddings: expected a shape that broadcasts to {tuple(embeddings.shape)}, "
            f"got {tuple(image_embeddings.shape)}"
        ) from None
    x, y = embeddings, target.to(embeddings.dtype)
    mask, _ = split_mask(mask)
    if mask is not None:
        check_tensor(mask, "mask", tuple(embeddings.shape[:-1]), dtype="bool")
        x, y = x.masked_fill(~mask.unsqueeze(-1), 0.0), y.masked_fill(~mask.unsqueeze(-1), 0.0)
    if normalize:
        x, y = F.normalize(x, dim=-1), F.normalize(y, dim=-1)
    loss = (x - y).abs().mean(-1)
    if mask is not None:
        loss = loss.masked_fill(~mask, 0.0)
    return masked_reduce(loss, mask, reduction)


def feature_distillation_loss(
    student: Tensor,
    teacher: Tensor,
    mask: MaskOrRows | None = None,
    *,
    norm: Literal["l2", "mse", "l1"] = "l2",
    reduction: Reduction = "mean",
) -> Tensor:
    """Distance between a student's tokens and a frozen teacher's (UASAN, Eq. 4).

    UASAN distils its visual refiner's tokens ``F_v`` into a frozen bridge encoder's output
    ``F'_M = BridgeEnc(F_M)`` with ``L_dis = ||F_v - F'_M||`` and does not say which norm.
    Default ``"l2"``: the Euclidean distance of each token, averaged over the tokens (the norm
    as written, taken token by token so that the loss does not grow with ``L``); ``"mse"``: the
    mean squared difference; ``"l1"``: the mean absolute difference. The teacher side is
    detached (it is frozen).

    Args:
        student: ``(..., L, d)`` tokens (e.g. [`VisualRefiner`][dsgg_layers.union.VisualRefiner]'s).
        teacher: the teacher's tokens, the same shape.
        mask: ``(...)`` ``True`` for the rows (trajectories) that count.
        norm: ``"l2"``, ``"mse"`` or ``"l1"`` (see above).
        reduction: ``"mean"`` over counted rows, ``"sum"`` or ``"none"`` (``(...)``).

    Shape:
        - student, teacher: ``(..., L, d)``; mask: ``(...)``
        - output: scalar, or ``(...)`` with ``"none"``

    Raises:
        TypeError, ValueError: shapes or dtypes disagree, or an option is unknown.

    Examples:
        >>> s = torch.zeros(2, 4, 3)
        >>> t = torch.zeros(2, 4, 3)
        >>> t[..., 0] = 3.0
        >>> t[..., 1] = 4.0
        >>> feature_distillation_loss(s, t)                       # each token 5 away
        tensor(5.)
        >>> feature_distillation_loss(s, t, norm="mse")           # (9 + 16) / 3
        tensor(8.3333)
    """
    check_tensor(student, "student", ("...", "L", "d"), dtype="float")
    check_tensor(teacher, "teacher", tuple(student.shape), dtype="float")
    check_choice(norm, "norm", ("l2", "mse", "l1"))
    check_choice(reduction, "reduction", ("mean", "sum", "none"))
    mask, _ = split_mask(mask)
    if mask is not None:
        check_tensor(mask, "mask", tuple(student.shape[:-2]), dtype="bool")
    diff = student - teacher.detach().to(student.dtype)
    if mask is not None:  # garbage in padded rows never reaches the loss or its gradient
        diff = diff.masked_fill(~mask[..., None, None], 0.0)
    if norm == "l2":
        sq = diff.square().sum(-1)  # sqrt with a finite gradient at 0
        per_token = torch.where(sq > 0, sq.clamp(min=torch.finfo(sq.dtype).tiny).sqrt(), 0.0)
    elif norm == "mse":  # means over sizes that may be 0 (no tokens, no channels): 0, not NaN
        per_token = diff.square().sum(-1) / max(diff.shape[-1], 1)
    else:
        per_token = diff.abs().sum(-1) / max(diff.shape[-1], 1)
    loss = per_token.sum(-1) / max(per_token.shape[-1], 1)
    if mask is not None:
        loss = loss.masked_fill(~mask, 0.0)
    return masked_reduce(loss, mask, reduction)


def _predicate_groups(groups: dict[str, slice] | None) -> dict[str, slice]:
    """Action Genome's predicate groups by default; otherwise the three, checked."""
    groups = dict(PREDICATE_GROUPS) if groups is None else groups
    if set(groups) != {"attention", "spatial", "contacting"}:
        raise ValueError(
            f"groups: expected attention, spatial and contacting, got {sorted(groups)}"
        )
    return groups


@_on_valid_samples("logits", "relations")
def sttran_predicate_loss(
    logits: Tensor,
    relations: Tensor,
    *,
    mask: MaskOrRows | None = None,
    multi_label: Literal["margin", "bce"] = "margin",
    groups: dict[str, slice] | None = None,
) -> dict[str, Tensor]:
    """The predicate loss of STTran's public code, one term per Action Genome predicate group.

    - ``"attention"``: cross-entropy over the attention group, on the samples that have an
      attention label (the first one when several are set);
    - ``"spatial"``, ``"contacting"``: with ``multi_label="margin"`` (STTran's default)
      `torch.nn.MultiLabelMarginLoss` on the sigmoid of the group's logits, i.e.
      [`multilabel_margin_loss`][] with ``normalize=True``; with ``"bce"`` (its ``bce_loss``
      option) binary cross-entropy on the logits.

    Each term is a mean over its counted samples (0 without any). RS-Net's Eq. 8 writes the
    margin loss unnormalised ([`multilabel_margin_loss`][] with ``normalize=False``); this is
    what the code that produced the baselines' numbers trains with.

    Args:
        logits: the predicate logits, groups in ``groups`` order.
        relations: bool multi-label targets.
        mask: ``True`` for the samples (pairs) to count.
        multi_label: ``"margin"`` or ``"bce"`` for the spatial and contacting groups.
        groups: ``{"attention": slice, "spatial": slice, "contacting": slice}`` (default
            Action Genome's,
            [`dsgg_layers.vocab.PREDICATE_GROUPS`][dsgg_layers.vocab.PREDICATE_GROUPS]).

    Shape:
        - logits, relations: ``(..., C)`` (26 on Action Genome)
        - mask: ``(...)``
        - output: a dict of three scalars

    Raises:
        TypeError, ValueError: shapes or dtypes disagree, or an option is unknown.

    Examples:
        >>> logits, rel = torch.randn(4, 26), torch.zeros(4, 26, dtype=torch.bool)
        >>> rel[:, 0] = rel[:, 3] = rel[:, 9] = True
        >>> sorted(sttran_predicate_loss(logits, rel))
        ['attention', 'contacting', 'spatial']
    """
    groups = _predicate_groups(groups)
    dims: dict[str, tuple[int, str]] = {}
    check_tensor(logits, "logits", ("...", "C"), dims=dims, dtype="float")
    check_tensor(relations, "relations", tuple(logits.shape), dims=dims, dtype="bool")
    check_choice(multi_label, "multi_label", ("margin", "bce"))
    mask, _ = split_mask(mask)
    if mask is None:
        mask = torch.ones(logits.shape[:-1], dtype=torch.bool, device=logits.device)
    check_tensor(mask, "mask", tuple(logits.shape[:-1]), dims=dims, dtype="bool")
    logits = logits.masked_fill(~mask.unsqueeze(-1), 0.0)
    att = groups["attention"]
    att_target = relations[..., att]
    has_att = att_target.any(-1) & mask
    ce = F.cross_entropy(
        logits[..., att].reshape(-1, att.stop - att.start),
        att_target.long().argmax(-1).reshape(-1),
        reduction="none",
    ).reshape(mask.shape)
    out = {"attention": masked_reduce(ce.masked_fill(~has_att, 0.0), has_att, "mean")}
    for name in ("spatial", "contacting"):
        g = groups[name]
        if multi_label == "margin":
            out[name] = multilabel_margin_loss(
                logits[..., g].sigmoid(), relations[..., g], normalize=True, mask=mask
            )
        else:
            out[name] = category_weighted_bce(
                logits[..., g], relations[..., g],
                torch.ones(g.stop - g.start, dtype=logits.dtype, device=logits.device), mask=mask,
            )  # fmt: skip
    return out


@_on_valid_samples("logits", "relations")
def tr2_predicate_loss(
    logits: Tensor,
    relations: Tensor,
    *,
    mask: MaskOrRows | None = None,
    alpha: Mapping[str, Tensor] | None = None,
    gamma: float = 2.0,
    groups: dict[str, slice] | None = None,
) -> dict[str, Tensor]:
    """The predicate loss of TR²'s public code, one term per Action Genome predicate group.

    - ``"attention"``: cross-entropy over the attention group on the samples that have an
      attention label ([`softmax_focal_loss`][] at ``gamma=0``, which is exactly it);
    - ``"spatial"``, ``"contacting"``: [`multilabel_focal_loss`][], a focal term on the sum of the
      group's binary cross-entropies, weighted by the group's ``alpha`` (the code:
      [`inverse_log_frequency`][] of the training positives).

    (TR², *Cross-Modality Time-Variant Relation Learning for Generating Dynamic Scene Graphs*,
    ICRA 2023, arXiv:2305.08522; the paper names the losses, its public code fixes them.)

    Args:
        logits: the predicate logits, groups in ``groups`` order.
        relations: bool multi-label targets.
        mask: ``True`` for the samples (pairs) to count.
        alpha: ``{"spatial": (C_s,), "contacting": (C_c,)}`` class weights (default none).
        gamma: the focal exponent of the spatial and contacting terms.
        groups: ``{"attention": slice, "spatial": slice, "contacting": slice}`` (default
            Action Genome's).

    Shape:
        - logits, relations: ``(..., C)``; mask: ``(...)``
        - output: a dict of three scalars

    Raises:
        TypeError, ValueError: shapes or dtypes disagree, or ``groups`` lacks a group.

    Examples:
        >>> logits, rel = torch.randn(4, 26), torch.zeros(4, 26, dtype=torch.bool)
        >>> rel[:, 0] = rel[:, 3] = rel[:, 9] = True
        >>> sorted(tr2_predicate_loss(logits, rel))
        ['attention', 'contacting', 'spatial']
    """
    groups = _predicate_groups(groups)
    check_tensor(logits, "logits", ("...", "C"), dtype="float")
    check_tensor(relations, "relations", tuple(logits.shape), dtype="bool")
    mask, _ = split_mask(mask)
    att = groups["attention"]
    has_att = relations[..., att].any(-1)
    has_att = has_att if mask is None else has_att & mask
    out = {"attention": softmax_focal_loss(logits[..., att], relations[..., att].long().argmax(-1),
                                           gamma=0.0, mask=has_att)}  # fmt: skip
    for name in ("spatial", "contacting"):
        g = groups[name]
        out[name] = multilabel_focal_loss(
            logits[..., g], relations[..., g], gamma=gamma, mask=mask,
            alpha=None if alpha is None else alpha[name],
        )  # fmt: skip
    return out
