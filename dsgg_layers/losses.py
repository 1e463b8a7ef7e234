"""Losses of the papers' blocks.

- :func:`category_weighted_bce` / :class:`CategoryWeightedLoss`: MoSA's category-weighted loss
  (*MoSA*, arXiv:2604.19631, Sec. 2.4, Eq. 11-12; not legible in the paper's text, the
  reading used is on the MoSA docs page):
  per-class weights ``w_c ∝ f_c^(-beta)`` from the class frequencies ``f_c``, normalised to mean 1
  over the classes seen, in a binary cross-entropy over the multi-label targets.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dsgg_layers._checks import check_choice, check_positive, check_tensor, values_readable

__all__ = [
    "CategoryWeightedLoss",
    "category_weighted_bce",
    "class_weights",
    "label_frequencies",
]

Reduction = Literal["mean", "sum", "none"]


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


def category_weighted_bce(
    logits: Tensor,
    targets: Tensor,
    weights: Tensor,
    *,
    mask: Tensor | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    """Binary cross-entropy with a weight per class, over multi-label targets.

    ``loss[n, c] = w_c * BCE(logits[n, c], targets[n, c])``; ``"mean"`` averages over every valid
    sample and class, so with all weights 1 and no ``mask`` it is exactly
    :func:`torch.nn.functional.binary_cross_entropy_with_logits`.

    Args:
        logits: class logits.
        targets: multi-label targets in ``[0, 1]`` (bool or float).
        weights: per-class weights (:func:`class_weights`).
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

    The weights (:func:`class_weights` of ``frequencies`` with ``beta``) are a buffer, saved with
    the model. See :func:`category_weighted_bce` for the loss.

    Args:
        frequencies: positives of each class in the training set (:func:`label_frequencies`).
        beta: the exponent of ``w_c ∝ f_c^(-beta)``; 0 is plain BCE.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Shape:
        - logits, targets: ``(..., C)``; mask: ``(...)``
        - output: scalar, or ``(..., C)`` with ``"none"``

    Raises:
        TypeError, ValueError: as :func:`class_weights` and :func:`category_weighted_bce`.

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

    def forward(self, logits: Tensor, targets: Tensor, mask: Tensor | None = None) -> Tensor:
        """The weighted binary cross-entropy; see :func:`category_weighted_bce`."""
        return category_weighted_bce(
            logits, targets, self.weights, mask=mask, reduction=self.reduction
        )


def label_frequencies(videos: Iterable[Any]) -> Tensor:
    """Positives of each class over a dataset of graphs with ``relations`` and ``mask``.

    Works with any items that have a bool ``relations (..., C)`` and ``mask (...)``, such as
    :class:`dsgg_layers.data.VideoGraph`.

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
