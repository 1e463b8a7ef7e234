"""The metric contract both evaluators keep: torchmetrics' shape, with a summable state.

``update(preds, target)`` adds a batch's contribution to `SummableMetric.state`, a dict of
tensors that **add up** (sums and counts, never averages), so that evaluating in chunks,
[`merge`][dsgg_layers.metrics.base.SummableMetric.merge]-ing evaluators, or all-reducing across
processes ([`sync`][dsgg_layers.metrics.base.SummableMetric.sync]) gives the numbers of one
call; ``compute()`` turns the sums into the metrics; ``reset()`` starts again. Each evaluator
has a functional twin (``action_genome_metrics``, ``vidvrd_metrics``): one ``update``, then
``compute``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from torch import Tensor

from dsgg_layers.metrics._sync import all_reduce_state

__all__ = ["SummableMetric"]


class SummableMetric:
    """Base of the library's evaluators: a summable state, ``merge`` and ``sync`` written once.

    A subclass sets [`settings`][] (the names of the options that define its protocol: two
    evaluators whose settings differ have sums that do not add up) and implements ``reset``
    (which creates `state`), ``update(preds, target)`` and ``compute``.

    Examples:
        >>> import torch
        >>> class Accuracy(SummableMetric):
        ...     def __init__(self):
        ...         self.reset()
        ...     def reset(self):
        ...         self.state = {"hits": torch.zeros(()), "count": torch.zeros(())}
        ...     def update(self, preds, target):
        ...         n = torch.tensor(float(target.numel()))
        ...         self._add({"hits": (preds == target).sum(), "count": n})
        ...     def compute(self):
        ...         return {"accuracy": self.state["hits"] / self.state["count"].clamp(min=1)}
        >>> a, b = Accuracy(), Accuracy()
        >>> a.update(torch.tensor([1, 2]), torch.tensor([1, 0]))
        >>> b.update(torch.tensor([3]), torch.tensor([3]))
        >>> a.merge(b)
        >>> round(float(a.compute()["accuracy"]), 4)           # 2 hits of 3, as one evaluator
        0.6667
    """

    settings: ClassVar[tuple[str, ...]] = ()
    """The options that define the protocol (checked equal by [`merge`][])."""
    state: dict[str, Tensor]
    """The summable state (sums and counts)."""

    def reset(self) -> None:
        """Forget everything seen so far (creates `state`)."""
        raise NotImplementedError

    def update(self, preds: Any, target: Any) -> None:
        """Add a batch's predictions and ground truth."""
        raise NotImplementedError

    def compute(self) -> dict[str, Tensor]:
        """The metrics of everything seen so far."""
        raise NotImplementedError

    def merge(self, other: SummableMetric) -> None:
        """Add another evaluator's state to this one (same type and settings)."""
        if not isinstance(other, type(self)):
            raise TypeError(f"other: expected a {type(self).__name__}, got {type(other).__name__}")
        for name in self.settings:  # the sums of different protocols do not add up
            mine, theirs = getattr(self, name), getattr(other, name)
            if mine != theirs:
                raise ValueError(f"other: expected {name}={mine!r} as this one, got {theirs!r}")
        self._add(other.state)

    def sync(self, group: Any = None) -> None:
        """All-reduce (sum) the state across processes when ``torch.distributed`` is running.

        A no-op in a single process. Call it on every process before ``compute``.
        """
        all_reduce_state(self.state, group)

    def _add(self, state: Mapping[str, Tensor]) -> None:
        """Add a partial state (sums and counts) to `state`, on the state's devices."""
        for k, v in state.items():
            self.state[k] = self.state[k] + v.to(self.state[k].device)
