"""MoSA's category-weighted loss: weights, exact plain-BCE case, masking, frequencies."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from dsgg_layers import (
    CategoryWeightedLoss,
    category_weighted_bce,
    class_weights,
    label_frequencies,
)
from dsgg_layers.data import SyntheticActionGenome, SyntheticConfig

counts = st.lists(st.integers(0, 10_000), min_size=1, max_size=30)


@given(freq=counts, beta=st.floats(0.0, 2.0))
def test_weight_properties(freq, beta):
    f = torch.tensor(freq)
    w = class_weights(f, beta)
    seen = f > 0
    assert torch.isfinite(w).all() and (w > 0).all()
    if seen.any():
        assert w[seen].mean().item() == pytest.approx(1.0, rel=1e-5)
        # a rarer class never gets a smaller weight
        order = torch.argsort(f.double() + torch.rand(len(f)) * 1e-3)  # ties in any order
        for i, j in zip(order[:-1].tolist(), order[1:].tolist(), strict=True):
            if f[i] < f[j]:
                assert w[i] >= w[j] - 1e-6
        assert (w[~seen] == w[seen].max()).all()
    else:
        assert (w == 1).all()
    assert (class_weights(f, 0.0) == 1).all()


def test_weights_by_hand():
    # f^-1 = [0.01, 0.04, 0.25] -> mean 0.1 -> [0.1, 0.4, 2.5]
    torch.testing.assert_close(
        class_weights(torch.tensor([100, 25, 4]), beta=1.0), torch.tensor([0.1, 0.4, 2.5])
    )


@given(seed=st.integers(0, 2**16))
def test_beta_zero_is_plain_bce_exactly(seed):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(5, 7, 26, generator=g)
    targets = torch.rand(5, 7, 26, generator=g) > 0.8
    ones = class_weights(torch.randint(0, 50, (26,), generator=g), beta=0.0)
    for reduction in ("mean", "sum", "none"):
        got = category_weighted_bce(logits, targets, ones, reduction=reduction)
        want = F.binary_cross_entropy_with_logits(logits, targets.float(), reduction=reduction)
        assert torch.equal(got, want), reduction
    loss = CategoryWeightedLoss(torch.randint(1, 50, (26,), generator=g), beta=0.0)
    assert torch.equal(
        loss(logits, targets), F.binary_cross_entropy_with_logits(logits, targets.float())
    )


def test_weighted_values_and_mask():
    logits = torch.randn(4, 3, requires_grad=True)
    targets = torch.tensor([[1, 0, 0], [0, 1, 1], [1, 1, 0], [0, 0, 1]]).bool()
    w = torch.tensor([0.5, 1.0, 2.0])
    per = F.binary_cross_entropy_with_logits(logits, targets.float(), reduction="none") * w
    torch.testing.assert_close(category_weighted_bce(logits, targets, w), per.mean())
    mask = torch.tensor([True, False, True, True])
    got = category_weighted_bce(logits, targets, w, mask=mask)
    torch.testing.assert_close(got, per[mask].mean())
    got.backward()
    assert (logits.grad[1] == 0).all() and (logits.grad[mask] != 0).all()
    none = category_weighted_bce(logits, targets, w, mask=mask, reduction="none")
    assert (none[1] == 0).all()
    torch.testing.assert_close(
        category_weighted_bce(logits, targets, w, mask=mask, reduction="sum"), per[mask].sum()
    )
    empty = category_weighted_bce(logits, targets, w, mask=torch.zeros(4, dtype=torch.bool))
    assert empty.item() == 0.0


def test_gradcheck_and_module():
    logits = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    targets = torch.rand(3, 4) > 0.5
    w = torch.tensor([0.2, 1.0, 1.3, 1.5], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: category_weighted_bce(x, targets, w), (logits,))
    loss = CategoryWeightedLoss(torch.tensor([10, 0, 3, 7]), beta=0.5)
    assert set(loss.state_dict()) == {"frequencies", "weights"}
    assert "classes=4, beta=0.5" in repr(loss)
    loss.weights.zero_()
    loss.reset_parameters()
    torch.testing.assert_close(loss.weights, class_weights(torch.tensor([10, 0, 3, 7]), 0.5))


def test_label_frequencies_of_a_dataset():
    data = SyntheticActionGenome(SyntheticConfig(num_videos=20, num_test_videos=0))
    f = label_frequencies(data)
    b = data.batch()
    assert torch.equal(f, b.relations[b.mask].sum(0))
    assert f.shape == (26,) and f.dtype == torch.long


def test_errors():
    with pytest.raises(ValueError, match="beta: expected a value >= 0"):
        class_weights(torch.tensor([1, 2]), beta=-1)
    with pytest.raises(ValueError, match="frequencies: expected finite counts >= 0"):
        class_weights(torch.tensor([1, -2]))
    with pytest.raises(ValueError, match=r"targets: expected shape \(4, C\) with C=3"):
        category_weighted_bce(torch.zeros(4, 3), torch.zeros(4, 2), torch.ones(3))
    with pytest.raises(ValueError, match=r"weights: expected shape \(C,\) with C=3"):
        category_weighted_bce(torch.zeros(4, 3), torch.zeros(4, 3), torch.ones(2))
    with pytest.raises(ValueError, match=r"mask: expected shape \(4,\)"):
        category_weighted_bce(
            torch.zeros(4, 3),
            torch.zeros(4, 3),
            torch.ones(3),
            mask=torch.ones(3, dtype=torch.bool),
        )
    with pytest.raises(ValueError, match="reduction: expected one of 'mean', 'sum', 'none'"):
        CategoryWeightedLoss(torch.ones(3), reduction="avg")
    with pytest.raises(ValueError, match="videos: expected at least one item"):
        label_frequencies([])
    with pytest.raises(TypeError, match=r"videos\[0\]: expected an item with relations and mask"):
        label_frequencies([object()])
