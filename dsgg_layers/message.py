"""TR²'s message token and temporal-difference text guidance.

*Cross-Modality Time-Variant Relation Learning for Generating Dynamic Scene Graphs* (TR², ICRA
2023, arXiv:2305.08522, Sec. III-B and III-C) models how a pair's relation changes from one
frame to the next:

- [`MessageToken`][] (Eq. 1): a gate ``m = g([e_prev, e_cur])`` computed from the pair's
  features at its previous existing frame and now; the output ``[e_cur, e_prev * m]``.
- [`track_differences`][]: ``x_t - x_prev`` along each pair track (the previous frame in
  which the pair exists), the quantity Eq. 2 supervises.
- [`relation_text_targets`][]: per pair and frame, the mean text embedding of the frame's
  ground-truth predicates for the pair's object class (the sentence table of prompted
  sentences).
- [`guidance_loss`][] / [`TemporalDifferenceGuidance`][] (Eq. 2 and 4): a learned projection
  of the feature differences regressed onto the text differences (``"difference"``), or of the
  features onto the text (``"direct"``, Table III), one projection per predicate group as the
  public code does; ``"binary"`` is the paper's TR²^bin (Sec. IV, Fig. 4): a classifier on the
  feature difference predicts whether the pair's label set changed ([`label_changes`][]).
- [`change_share`][]: how often a video's pairs change their labels, the quantity TR²'s Fig. 5
  stratifies recall by (``ActionGenomeEvaluator(num_strata=...)``).

Everything runs on pair tracks ``(..., T, P, D)`` with a scan for the previous frame
([`previous_frame_index`][dsgg_layers.temporal.previous_frame_index]): no loop over frames, pairs or
videos.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dsgg_layers._checks import (
    check_choice,
    check_param_dtype,
    check_positive,
    check_tensor,
    values_readable,
)
from dsgg_layers._ops import masked_reduce
from dsgg_layers.rows import MaskOrRows, ValidRows, resolve_rows, split_mask
from dsgg_layers.temporal import gather_previous, previous_frame_index

__all__ = [
    "MessageToken",
    "TemporalDifferenceGuidance",
    "change_share",
    "guidance_loss",
    "label_changes",
    "relation_text_targets",
    "track_differences",
]

GuidanceMode = Literal["difference", "direct", "binary"]


class MessageToken(nn.Module):
    """A gate over the previous frame's feature, appended to the current one (TR²'s
    short-term message token, Eq. 1): ``[e_cur, e_prev * g([e_prev, e_cur])]``.

    ``e_prev`` is the pair's feature at the previous frame in which it exists (across missing
    frames). The gate is the public code's feed-forward network, a vector in (-1, 1):
    ``tanh(W3 tanh(W2 (W1 [e_prev; e_cur] + b1) + b2) + b3)`` (no activation after ``W1``). At a
    track's first frame there is no ``e_prev``: the gate's input uses zeros for it, and the gated
    value is the frame's own feature (``first="self"``, the code) or zero (``first="zero"``, the
    equation read literally).

    Args:
        d_model: width ``D`` of the features.
        hidden_features: width of the gate's hidden layers (the paper does not give it; default
            ``D``).
        first: ``"self"`` (default, the code) or ``"zero"``.

    Shape:
        - x: ``(..., T, P, D)``; mask: ``(..., T, P)`` bool
        - output: ``(..., T, P, 2 D)``, 0 at padded pairs

    Raises:
        TypeError, ValueError: a shape or dtype disagrees, or an option is invalid.

    Examples:
        >>> token = MessageToken(16)
        >>> x, mask = torch.randn(2, 5, 3, 16), torch.rand(2, 5, 3) > 0.3
        >>> y = token(x, mask)
        >>> y.shape, torch.equal(y[..., :16][mask], x[mask])    # the first half is e_cur
        (torch.Size([2, 5, 3, 32]), True)
    """

    def __init__(
        self,
        d_model: int,
        hidden_features: int | None = None,
        *,
        first: Literal["self", "zero"] = "self",
    ) -> None:
        super().__init__()
        check_positive(d_model, "d_model")
        hidden = d_model if hidden_features is None else hidden_features
        check_positive(hidden, "hidden_features")
        check_choice(first, "first", ("self", "zero"))
        self.d_model, self.hidden_features, self.first = d_model, hidden, first
        self.linear1 = nn.Linear(2 * d_model, hidden)
        self.linear2 = nn.Linear(hidden, hidden)
        self.linear3 = nn.Linear(hidden, d_model)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """PyTorch's default initialisation of the three linear layers."""
        for m in (self.linear1, self.linear2, self.linear3):
            m.reset_parameters()

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, hidden_features={self.hidden_features}, " \
            f"first={self.first!r}"  # fmt: skip

    def gate(self, previous: Tensor, current: Tensor) -> Tensor:
        """``g([e_prev, e_cur])``, in (-1, 1)."""
        h = self.linear1(torch.cat((previous, current), -1))
        return torch.tanh(self.linear3(torch.tanh(self.linear2(h))))

    def forward(self, x: Tensor, mask: MaskOrRows) -> Tensor:
        """``[e_cur, e_prev * m]`` for every pair and frame.

        With ``mask`` given as (or resolved to) [`ValidRows`][dsgg_layers.rows.ValidRows], the
        gate runs on the existing pairs only.
        """
        mask, rows = split_mask(mask)
        dims: dict[str, tuple[int, str]] = {}
        check_tensor(x, "x", ("...", "T", "P", self.d_model), dims=dims, dtype="float")
        check_tensor(mask, "mask", tuple(x.shape[:-1]), dims=dims, dtype="bool")
        check_param_dtype(self.linear1.weight, ("x", x))
        resolved = resolve_rows(True, mask, x.shape[:-1], rows)
        if resolved is not None:
            return resolved.scatter(self._forward_rows(x, resolved))
        x = x.masked_fill(~mask.unsqueeze(-1), 0.0)
        previous, has_previous = gather_previous(x, mask)  # 0 where there is none
        m = self.gate(previous, x)
        value = previous if self.first == "zero" else torch.where(
            has_previous.unsqueeze(-1), previous, x)  # fmt: skip
        return torch.cat((x, value * m), -1).masked_fill(~mask.unsqueeze(-1), 0.0)

    def _forward_rows(self, x: Tensor, rows: ValidRows) -> Tensor:
        """The token of the valid rows ``(N, 2 D)``: each row's previous frame is found on the
        mask (its flat position moves back ``t - t'`` frames of ``P`` pairs), then read."""
        P = x.shape[-2]
        prev_t = previous_frame_index(rows.mask).reshape(-1).index_select(0, rows.index)
        t = rows.index.div(P, rounding_mode="floor") % x.shape[-3]
        has_previous = (prev_t >= 0).unsqueeze(-1)
        source = torch.where(has_previous.squeeze(-1), rows.index + (prev_t - t) * P, rows.index)
        flat = x.reshape(-1, self.d_model)
        current = flat.index_select(0, rows.index)
        previous = flat.index_select(0, source).masked_fill(~has_previous, 0.0)
        m = self.gate(previous, current)
        value = previous if self.first == "zero" else torch.where(has_previous, previous, current)
        return torch.cat((current, value * m), -1)


def track_differences(x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """``x_t - x_prev`` along each pair track, and where it is defined.

    ``x_prev`` is the feature at the previous frame in which the pair exists (TR², Eq. 2's
    ``e_i - e_{i-1}`` over a track's consecutive entries, across missing frames).

    Args:
        x: per-pair features.
        mask: ``True`` where the pair exists.

    Returns:
        ``(difference, valid)``: 0 where the pair has no earlier frame or does not exist;
        ``valid`` marks the others.

    Shape:
        - x: ``(..., T, P, D)``; mask: ``(..., T, P)``
        - output: ``(..., T, P, D)`` and ``(..., T, P)`` bool

    Raises:
        TypeError, ValueError: shapes or dtypes disagree.

    Examples:
        >>> x = torch.tensor([[[1.0]], [[5.0]], [[4.0]]])        # (T=3, P=1, D=1)
        >>> mask = torch.tensor([[True], [False], [True]])
        >>> d, valid = track_differences(x, mask)
        >>> d.flatten().tolist(), valid.flatten().tolist()      # frame 2 minus frame 0
        ([0.0, 0.0, 3.0], [False, False, True])
    """
    previous, valid = gather_previous(x, mask)
    diff = x.masked_fill(~mask.unsqueeze(-1), 0.0) - previous
    return diff.masked_fill(~valid.unsqueeze(-1), 0.0), valid


def relation_text_targets(
    relations: Tensor, object_labels: Tensor, sentences: Tensor
) -> tuple[Tensor, Tensor]:
    """The mean sentence embedding of each pair-frame's annotated predicates.

    ``sentences[o, c]`` embeds "a photo of a person <predicate c> a <object o>" (TR², Sec.
    III-C); a pair-frame's target is the mean over its annotated predicates ``c`` of
    ``sentences[object class, c]``, and is defined where it has at least one.

    Args:
        relations: bool multi-label predicates of one group.
        object_labels: the pairs' object classes (any value where ``relations`` is all False).
        sentences: ``(O, C, E)`` the sentence table of the group.

    Returns:
        ``(target (..., E), has_label (...))``; 0 where there is no label.

    Shape:
        - relations: ``(..., C)``; object_labels: ``(...)``; sentences: ``(O, C, E)``

    Raises:
        TypeError, ValueError: shapes or dtypes disagree, or (CPU) a labelled pair's object class
            is outside ``[0, O)``.

    Examples:
        >>> sentences = torch.arange(12.0).view(2, 3, 2)         # 2 objects, 3 predicates, E=2
        >>> rel = torch.tensor([[True, False, True]])
        >>> relation_text_targets(rel, torch.tensor([1]), sentences)[0]   # mean of [6, 7], [10, 11]
        tensor([[8., 9.]])
    """
    dims: dict[str, tuple[int, str]] = {}
    check_tensor(sentences, "sentences", ("O", "C", "E"), dims=dims, dtype="float")
    check_tensor(relations, "relations", ("...", "C"), dims=dims, dtype="bool")
    check_tensor(object_labels, "object_labels", tuple(relations.shape[:-1]), dims=dims,
                 dtype="int")  # fmt: skip
    has = relations.any(-1)
    labels = object_labels.masked_fill(~has, 0)
    num_objects = sentences.shape[0]
    if values_readable(labels) and labels.numel():
        lo, hi = int(labels.min()), int(labels.max())
        if lo < 0 or hi >= num_objects:
            raise ValueError(
                f"object_labels: expected classes in [0, {num_objects}), got [{lo}, {hi}]"
            )
    # sum_c w_c S[o, c] as one fused embedding-bag over the flattened table: no (..., C, E)
    # intermediate (the sentence table is small; the pair grid, padding included, is not)
    n_obj, C, E = sentences.shape
    weights = relations.to(sentences.dtype)
    weights = weights / weights.sum(-1, keepdim=True).clamp(min=1)
    index = labels.unsqueeze(-1) * C + torch.arange(C, device=labels.device)
    target = F.embedding_bag(
        index.reshape(-1, C), sentences.reshape(n_obj * C, E), mode="sum",
        per_sample_weights=weights.reshape(-1, C),
    )  # fmt: skip
    return target.reshape(*relations.shape[:-1], E), has


def label_changes(relations: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Whether each pair's label set differs from its previous existing frame's.

    The target of TR²'s binary guidance (TR²^bin, Sec. IV, Fig. 4), and the quantity its Fig. 5
    stratifies recall by.

    Args:
        relations: bool multi-label predicates (one group, or all).
        mask: ``True`` where the pair exists.

    Returns:
        ``(changed, valid)``: ``changed`` is defined where ``valid`` (the pair has an earlier
        frame) and False elsewhere.

    Shape:
        - relations: ``(..., T, P, C)``; mask: ``(..., T, P)``
        - output: two ``(..., T, P)`` bool tensors

    Raises:
        TypeError, ValueError: shapes or dtypes disagree.

    Examples:
        >>> rel = torch.tensor([[[1, 0]], [[1, 0]], [[0, 1]]]).bool()      # (T=3, P=1, C=2)
        >>> changed, valid = label_changes(rel, torch.ones(3, 1, dtype=torch.bool))
        >>> changed.flatten().tolist(), valid.flatten().tolist()
        ([False, False, True], [False, True, True])
    """
    dims: dict[str, tuple[int, str]] = {}
    check_tensor(relations, "relations", ("...", "T", "P", "C"), dims=dims, dtype="bool")
    check_tensor(mask, "mask", tuple(relations.shape[:-1]), dims=dims, dtype="bool")
    previous, valid = gather_previous(relations.to(torch.uint8), mask)
    changed = (previous != relations.to(torch.uint8)).any(-1) & valid
    return changed, valid


def change_share(relations: Tensor, mask: Tensor) -> Tensor:
    """The share of a video's pair-frames whose label set differs from the pair's previous frame.

    Counted over the pair-frames that have an earlier frame ([`label_changes`][]); 0 for a
    video without any (one-frame videos, pairs seen once). TR² (Fig. 5) reports its gain over
    STTran against this share; bin it (``torch.bucketize``) into the ``strata`` of
    [`ActionGenomeEvaluator`][dsgg_layers.metrics.action_genome.ActionGenomeEvaluator] for recall by
    stratum.

    Args:
        relations: bool multi-label predicates.
        mask: ``True`` where the pair exists.

    Shape:
        - relations: ``(..., T, P, C)``; mask: ``(..., T, P)``
        - output: ``(...)`` float, in ``[0, 1]``

    Raises:
        TypeError, ValueError: shapes or dtypes disagree.

    Examples:
        >>> rel = torch.tensor([[[1, 0]], [[1, 0]], [[0, 1]]]).bool()      # (T=3, P=1, C=2)
        >>> change_share(rel, torch.ones(3, 1, dtype=torch.bool))           # 1 change of 2
        tensor(0.5000)
    """
    changed, valid = label_changes(relations, mask)
    total = valid.sum((-1, -2))
    return changed.sum((-1, -2)) / total.clamp(min=1)


def guidance_loss(
    prediction: Tensor,
    target: Tensor,
    mask: Tensor,
    *,
    mode: GuidanceMode = "difference",
    projection: nn.Module | None = None,
) -> Tensor:
    """TR²'s guidance of relation features by text (Eq. 2 or Eq. 4), element-mean squared error.

    ``"difference"`` (Eq. 2): ``mean (P(x_t - x_prev) - (s_t - s_prev))^2`` over the pair-frames
    whose track has an earlier entry and where both entries have a target; ``P`` is
    ``projection`` (applied to the difference, bias included, as the public code does).
    ``"direct"`` (Eq. 4, Table III): ``mean (P(x_t) - s_t)^2`` over the pair-frames with a
    target. No valid pair-frame gives 0 (the public code's ``MSELoss`` gives NaN there).

    Args:
        prediction: the fused relation features ``x``.
        target: the text targets ``s`` ([`relation_text_targets`][]).
        mask: ``True`` where the pair exists and has a target.
        mode: ``"difference"`` or ``"direct"``.
        projection: the learned map from feature width to text width (identity when ``None``).

    Shape:
        - prediction: ``(..., T, P, D)``; target: ``(..., T, P, E)``; mask: ``(..., T, P)``
        - output: scalar

    Raises:
        TypeError, ValueError: shapes or dtypes disagree, or ``mode`` is unknown.

    Examples:
        >>> x = torch.tensor([[[0.0]], [[1.0]], [[3.0]]])            # (T=3, P=1, D=1)
        >>> s = torch.tensor([[[5.0]], [[6.0]], [[8.0]]])            # same steps: loss 0
        >>> guidance_loss(x, s, torch.ones(3, 1, dtype=torch.bool))
        tensor(0.)
    """
    check_choice(mode, "mode", ("difference", "direct"))
    dims: dict[str, tuple[int, str]] = {}
    check_tensor(prediction, "prediction", ("...", "T", "P", "D"), dims=dims, dtype="float")
    check_tensor(target, "target", (*prediction.shape[:-1], "E"), dims=dims, dtype="float")
    check_tensor(mask, "mask", tuple(prediction.shape[:-1]), dims=dims, dtype="bool")
    project = (lambda v: v) if projection is None else projection
    if mode == "difference":
        x, valid = track_differences(prediction, mask)
        s, _ = track_differences(target, mask)
    else:
        x, valid = prediction.masked_fill(~mask.unsqueeze(-1), 0.0), mask
        s = target.masked_fill(~mask.unsqueeze(-1), 0.0)
    out = project(x)
    if out.shape[-1] != s.shape[-1]:
        raise ValueError(
            f"projection: expected outputs of the text width {s.shape[-1]}, got {out.shape[-1]}"
        )
    err = (out - s.to(out.dtype)).pow(2).masked_fill(~valid.unsqueeze(-1), 0.0)
    return masked_reduce(err.mean(-1), valid, "mean")  # every counted row has E elements


class TemporalDifferenceGuidance(nn.Module):
    """A loss that makes a pair's feature change follow its relation's text change (TR²'s
    guidance, Eq. 2 / 4), with one learned projection per predicate group.

    Holds one ``nn.Linear(in_features, text_features)`` per group and the groups' sentence
    tables (buffers, frozen: no gradient reaches them). ``forward`` returns one loss per group
    (weight 1 each in the public code, summed by the caller).

    Args:
        in_features: width of the fused relation features (``2 D`` after [`MessageToken`][]).
        sentences: ``{group: (O, C_group, E)}`` sentence tables (e.g. CLIP embeddings of TR²'s
            prompted sentences).
        mode: ``"difference"`` (Eq. 2, default), ``"direct"`` (Eq. 4) or ``"binary"``
            (TR²^bin: one linear classifier a group on the feature difference, binary
            cross-entropy against [`label_changes`][] of the group, a mean over the pair-frames
            with an earlier frame; the sentence tables are then not used).

    Shape:
        - x: ``(..., T, P, in_features)``; mask: ``(..., T, P)``
        - relations: ``{group: (..., T, P, C_group)}`` bool; object_labels: ``(..., T, P)``
        - output: ``{group: scalar}``

    Raises:
        TypeError, ValueError: shapes or dtypes disagree, or an option is invalid.

    Examples:
        >>> tables = {"attention": torch.randn(36, 3, 8), "spatial": torch.randn(36, 6, 8)}
        >>> guide = TemporalDifferenceGuidance(16, tables)
        >>> x, mask = torch.randn(1, 4, 2, 16), torch.ones(1, 4, 2, dtype=torch.bool)
        >>> rel = {g: torch.rand(1, 4, 2, t.shape[1]) > 0.5 for g, t in tables.items()}
        >>> sorted(guide(x, mask, rel, torch.randint(1, 36, (1, 4, 2))))
        ['attention', 'spatial']
    """

    def __init__(
        self, in_features: int, sentences: dict[str, Tensor], *, mode: GuidanceMode = "difference"
    ) -> None:
        super().__init__()
        check_positive(in_features, "in_features")
        check_choice(mode, "mode", ("difference", "direct", "binary"))
        if not sentences:
            raise ValueError("sentences: expected at least one group, got none")
        self.in_features, self.mode, self.groups = in_features, mode, tuple(sentences)
        widths = set()
        for name, table in sentences.items():
            check_tensor(table, f"sentences[{name!r}]", ("O", "C", "E"), dtype="float")
            widths.add(table.shape[-1])
            self.register_buffer(f"sentences_{name}", table.detach().clone())
        if len(widths) != 1:
            raise ValueError(f"sentences: expected one text width, got {sorted(widths)}")
        self.text_features = widths.pop()
        out_features = 1 if mode == "binary" else self.text_features
        self.projections = nn.ModuleDict(
            {name: nn.Linear(in_features, out_features) for name in self.groups}
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """PyTorch's default initialisation of the projections."""
        for m in self.projections.values():
            m.reset_parameters()

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, text_features={self.text_features}, " \
            f"groups={self.groups}, mode={self.mode!r}"  # fmt: skip

    def sentences(self, group: str) -> Tensor:
        """The sentence table of ``group``."""
        return getattr(self, f"sentences_{group}")

    def forward(
        self,
        x: Tensor,
        mask: MaskOrRows,
        relations: dict[str, Tensor],
        object_labels: Tensor,
    ) -> dict[str, Tensor]:
        """One guidance loss per group (the differences need the grid: a
        [`ValidRows`][dsgg_layers.rows.ValidRows] mask is read as its mask)."""
        mask, _ = split_mask(mask)
        check_tensor(mask, "mask", None, dtype="bool")
        check_tensor(x, "x", (*mask.shape, "D"), dtype="float")
        check_param_dtype(next(iter(self.projections.values())).weight, ("x", x))
        if not isinstance(relations, dict) or set(relations) != set(self.groups):
            got = sorted(relations) if isinstance(relations, dict) else type(relations).__name__
            raise ValueError(f"relations: expected the groups {sorted(self.groups)}, got {got}")
        out = {}
        for name in self.groups:
            check_tensor(relations[name], f"relations[{name!r}]", (*mask.shape, "C"),
                         dtype="bool")  # fmt: skip
            if self.mode == "binary":
                out[name] = self._binary(x, mask, relations[name], self.projections[name])
                continue
            # padded pairs' relations (and their labels, any value) are never read
            target, has = relation_text_targets(relations[name] & mask[..., None], object_labels,
                                                 self.sentences(name))  # fmt: skip
            out[name] = guidance_loss(x, target, mask & has, mode=self.mode,
                                      projection=self.projections[name])  # fmt: skip
        return out

    @staticmethod
    def _binary(x: Tensor, mask: Tensor, relations: Tensor, classifier: nn.Module) -> Tensor:
        """TR²^bin: does the feature difference tell that the label set changed?"""
        check_tensor(x, "x", (*mask.shape, "D"), dtype="float")
        changed, valid = label_changes(relations, mask)
        diff, _ = track_differences(x, mask)
        logits = classifier(diff).squeeze(-1)
        loss = nn.functional.binary_cross_entropy_with_logits(
            logits, changed.to(logits.dtype), reduction="none"
        ).masked_fill(~valid, 0.0)
        return masked_reduce(loss, valid, "mean")
