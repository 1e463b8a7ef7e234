"""Set-prediction matching: the assignment solvers against brute force; the pair matcher's costs
against a per-pair loop of their definitions."""

import itertools
import sys

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dsgg_layers import PairHungarianMatcher, generalized_box_iou, linear_sum_assignment
from dsgg_layers.boxes import box_convert
from dsgg_layers.matching import pair_matching_cost
from dsgg_layers.vocab import PREDICATE_GROUPS


def brute_force(cost: np.ndarray) -> float:
    n, m = cost.shape
    if n == 0 or m == 0:
        return 0.0
    if n <= m:
        return min(
            sum(cost[i, c] for i, c in enumerate(p)) for p in itertools.permutations(range(m), n)
        )
    return brute_force(cost.T)


@settings(max_examples=80, deadline=None)
@given(st.integers(0, 5), st.integers(0, 5), st.integers(0, 10_000), st.booleans())
def test_native_solver_is_optimal_against_brute_force(n, m, seed, ties):
    rng = np.random.default_rng(seed)
    cost = rng.integers(0, 3, (n, m)).astype(float) if ties else rng.normal(size=(n, m))
    rows, cols = linear_sum_assignment(cost, backend="native")
    k = min(n, m)
    assert len(rows) == len(cols) == k
    assert len(set(rows.tolist())) == k and len(set(cols.tolist())) == k  # one-to-one
    assert rows.tolist() == sorted(rows.tolist())
    assert cost[rows.numpy(), cols.numpy()].sum() == pytest.approx(brute_force(cost), abs=1e-9)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 30), st.integers(1, 30), st.integers(0, 10_000))
def test_native_solver_equals_scipy_in_cost(n, m, seed):
    pytest.importorskip("scipy")
    cost = torch.randn(n, m, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    r1, c1 = linear_sum_assignment(cost, backend="native")
    r2, c2 = linear_sum_assignment(cost, backend="scipy")
    assert float(cost[r1, c1].sum()) == pytest.approx(float(cost[r2, c2].sum()), abs=1e-9)


def test_solver_degenerate_inputs_and_errors(monkeypatch):
    for shape in ((0, 3), (3, 0), (0, 0)):
        rows, cols = linear_sum_assignment(torch.zeros(shape))
        assert rows.shape == cols.shape == (0,) and rows.dtype == torch.int64
    rows, cols = linear_sum_assignment(torch.tensor([[1, 0], [0, 1]]), backend="native")  # ints
    assert cols.tolist() == [1, 0]
    with pytest.raises(ValueError, match="cost: expected finite costs"):
        linear_sum_assignment(torch.tensor([[0.0, float("inf")]]))
    with pytest.raises(ValueError, match=r"cost: expected shape \(N, M\)"):
        linear_sum_assignment(torch.zeros(2, 2, 2))
    with pytest.raises(TypeError, match="cost: expected a Tensor or an ndarray, got list"):
        linear_sum_assignment([[1.0]])
    with pytest.raises(ValueError, match="backend: expected one of"):
        linear_sum_assignment(torch.zeros(1, 1), backend="lapjv")
    monkeypatch.setitem(sys.modules, "scipy", None)
    monkeypatch.setattr("dsgg_layers.matching._has_scipy", lambda: False)
    with pytest.raises(ImportError, match=r"dsgg-layers\[scipy\]"):
        linear_sum_assignment(torch.zeros(1, 1), backend="scipy")
    rows, cols = linear_sum_assignment(torch.tensor([[2.0, 1.0]]))  # auto falls back to native
    assert cols.tolist() == [1]


def random_problem(seed, B=2, Q=5, G=3, num_classes=6, R=26):
    g = torch.Generator().manual_seed(seed)

    def box(*shape):  # cxcywh, inside the image
        centre = torch.rand(*shape, 2, generator=g) * 0.6 + 0.2
        return torch.cat((centre, torch.rand(*shape, 2, generator=g) * 0.3 + 0.05), -1)

    outputs = dict(
        object_logits=torch.randn(B, Q, num_classes, generator=g),
        predicate_logits=torch.randn(B, Q, R, generator=g),
        subject_boxes=box(B, Q),
        object_boxes=box(B, Q),
    )
    mask = torch.rand(B, G, generator=g) > 0.3
    mask[0, 0] = True
    targets = dict(
        object_labels=torch.randint(0, num_classes, (B, G), generator=g),
        predicates=torch.rand(B, G, R, generator=g) > 0.8,
        subject_boxes=box(B, G),
        object_boxes=box(B, G),
        mask=mask,
    )
    return outputs, targets  # fmt: skip


def loop_cost(outputs, targets, b, q, t, weights=(1.0, 2.0, 2.5, 1.0)):
    """One entry of the cost matrix from its definition (OED's costs, ARN's weights)."""
    wc, wp, wb, wg = weights
    p = outputs["object_logits"][b, q].sigmoid()
    cost = -wc * p[targets["object_labels"][b, t]]
    pp = outputs["predicate_logits"][b, q].sigmoid()
    for s in PREDICATE_GROUPS.values():
        y = targets["predicates"][b, t, s].float()
        x = pp[s]
        pos = (x * y).sum() / (y.sum() + 1e-4)
        neg = ((1 - x) * (1 - y)).sum() / ((1 - y).sum() + 1e-4)
        cost = cost - wp * (pos + neg) / 2
    l1 = [
        (outputs[k][b, q] - targets[k][b, t]).abs().sum() for k in ("subject_boxes", "object_boxes")
    ]
    gi = [
        -generalized_box_iou(box_convert(outputs[k][b, q : q + 1], "cxcywh", "xyxy"),
                             box_convert(targets[k][b, t : t + 1], "cxcywh", "xyxy"))[0, 0]
        for k in ("subject_boxes", "object_boxes")
    ]  # fmt: skip
    return cost + wb * max(l1) + wg * max(gi)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pair_cost_matches_a_loop_of_its_definition(seed):
    outputs, targets = random_problem(seed)
    cost = pair_matching_cost(outputs, targets)
    B, Q, G = cost.shape
    for b in range(B):
        for q in range(Q):
            for t in range(G):
                if targets["mask"][b, t]:
                    torch.testing.assert_close(cost[b, q, t], loop_cost(outputs, targets, b, q, t))
                else:
                    assert cost[b, q, t] == 0


def test_matcher_is_optimal_per_frame_and_ignores_padding():
    outputs, targets = random_problem(3, B=3, Q=4, G=5)
    targets["mask"][2] = False  # a frame without annotations
    garbage = dict(targets)
    for key in ("subject_boxes", "object_boxes"):
        garbage[key] = targets[key].masked_fill(~targets["mask"].unsqueeze(-1), float("nan"))
    garbage["object_labels"] = targets["object_labels"].masked_fill(~targets["mask"], 999)
    matcher = PairHungarianMatcher(backend="native")
    got = matcher(outputs, garbage)
    cost = pair_matching_cost(outputs, targets)
    for b, (q, t) in enumerate(got):
        valid = targets["mask"][b].nonzero().squeeze(1)
        assert len(q) == min(4, len(valid)) and set(t.tolist()) <= set(valid.tolist())
        best = brute_force(cost[b][:, valid].double().numpy())
        assert float(cost[b][q, t].sum()) == pytest.approx(best, abs=1e-5)
    assert got[2][0].numel() == 0
    # more targets than queries: every query is matched
    assert len(got[0][0]) == min(4, int(targets["mask"][0].sum()))
    assert "cost_predicate=2.0" in repr(matcher)


def test_matcher_finds_the_planted_assignment_and_errors():
    outputs, targets = random_problem(5, B=1, Q=6, G=3)
    perm = torch.tensor([4, 0, 2])  # plant the targets in queries 4, 0, 2
    for key in ("subject_boxes", "object_boxes"):
        outputs[key][0, perm] = targets[key][0]
    outputs["object_logits"][0, perm] = -10.0
    outputs["object_logits"][0, perm, targets["object_labels"][0]] = 10.0
    outputs["predicate_logits"][0, perm] = targets["predicates"][0].float() * 20 - 10
    targets["mask"][:] = True
    ((q, t),) = PairHungarianMatcher()(outputs, targets)
    assert dict(zip(t.tolist(), q.tolist(), strict=True)) == {0: 4, 1: 0, 2: 2}
    with pytest.raises(ValueError, match=r"targets: missing keys \['mask'\]"):
        PairHungarianMatcher()(outputs, {k: v for k, v in targets.items() if k != "mask"})
    with pytest.raises(ValueError, match="costs: expected at least one weight > 0"):
        PairHungarianMatcher(0, 0, 0, 0)
    with pytest.raises(ValueError, match=r"outputs\['subject_boxes'\]: expected shape"):
        PairHungarianMatcher()(dict(outputs, subject_boxes=torch.zeros(1, 6, 5)), targets)


def test_out_of_range_labels_are_named_not_clamped():
    outputs, targets = random_problem(6, B=2, Q=4, G=3)
    width = outputs["object_logits"].shape[-1]
    targets["mask"][:] = True
    bad = dict(targets, object_labels=targets["object_labels"].clone())
    bad["object_labels"][1, 2] = width  # one past the last column (formerly clamped)
    with pytest.raises(ValueError, match=r"targets\['object_labels'\]: expected classes in \[0, "):
        pair_matching_cost(outputs, bad)
    bad["object_labels"][1, 2] = -1
    with pytest.raises(ValueError, match="object_labels"):
        PairHungarianMatcher()(outputs, bad)
    # garbage labels at padded target slots are never read
    padded = dict(bad, mask=targets["mask"].clone())
    padded["mask"][1, 2] = False
    assert pair_matching_cost(outputs, padded).shape == (2, 4, 3)
