"""Losses: MoSA's category-weighted loss; RS-Net's focal and margin losses; STTran's convention."""

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from dsgg_layers import (
    CategoryWeightedLoss,
    SigmoidFocalLoss,
    SoftmaxFocalLoss,
    category_weighted_bce,
    class_weights,
    embedding_alignment_loss,
    inverse_log_frequency,
    label_frequencies,
    multilabel_focal_loss,
    multilabel_margin_loss,
    sigmoid_focal_loss,
    softmax_focal_loss,
    sttran_predicate_loss,
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


# ------------------------------------------------------------------ RS-Net's losses (Eq. 8-9)


@given(st.integers(0, 6), st.integers(2, 5), st.integers(0, 10_000))
def test_focal_with_gamma_zero_and_no_alpha_is_exactly_cross_entropy(n, C, seed):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n + 1, C, generator=g, dtype=torch.float64)
    target = torch.randint(0, C, (n + 1,), generator=g)
    for reduction in ("mean", "sum"):
        ref = F.cross_entropy(logits, target, reduction=reduction)
        assert torch.equal(softmax_focal_loss(logits, target, gamma=0.0, reduction=reduction), ref)
    torch.testing.assert_close(
        softmax_focal_loss(logits, target, gamma=0.0, reduction="none"),
        F.cross_entropy(logits, target, reduction="none"),
    )


def test_focal_loss_by_hand():
    # p = softmax([ln 3, 0]) = [0.75, 0.25]
    logits = torch.tensor([[math.log(3.0), 0.0], [math.log(3.0), 0.0]], dtype=torch.float64)
    target = torch.tensor([0, 1])
    got = softmax_focal_loss(logits, target, alpha=(0.25, 0.75), gamma=2.0, reduction="none")
    want = torch.tensor([-0.25 * 0.25**2 * math.log(0.75), -0.75 * 0.75**2 * math.log(0.25)],
                        dtype=torch.float64)  # fmt: skip
    torch.testing.assert_close(got, want)
    # bool targets: True = class 0 ("meaningful", RS-Net's [1, 0])
    torch.testing.assert_close(
        softmax_focal_loss(logits, torch.tensor([True, False]), reduction="none"),
        softmax_focal_loss(logits, target, reduction="none"),
    )
    # easy samples count less than hard ones, more so with larger gamma
    easy, hard = torch.tensor([[3.0, -3.0]]), torch.tensor([[-1.0, 1.0]])
    zero = torch.tensor([0])
    ratio = [float(softmax_focal_loss(easy, zero, gamma=gm) / softmax_focal_loss(hard, zero,
                                                                                   gamma=gm))
             for gm in (0.0, 1.0, 2.0)]  # fmt: skip
    assert ratio[0] > ratio[1] > ratio[2]


def test_focal_loss_masks_garbage_and_is_defined_on_empty_input():
    logits = torch.randn(4, 2, requires_grad=True)
    target = torch.tensor([0, 1, 1, 0])
    mask = torch.tensor([True, False, True, False])
    dirty = logits.detach().clone()
    dirty[~mask] = float("nan")
    dirty.requires_grad_()
    clean = softmax_focal_loss(logits[mask], target[mask])
    got = softmax_focal_loss(dirty, target.masked_fill(~mask, 7), mask=mask)
    torch.testing.assert_close(got, clean)
    got.backward()
    assert torch.isfinite(dirty.grad).all() and dirty.grad[~mask].abs().sum() == 0
    empty = torch.zeros(0, 2, requires_grad=True)
    out = softmax_focal_loss(empty, torch.zeros(0, dtype=torch.long))
    assert out.item() == 0
    out.backward()
    assert softmax_focal_loss(torch.zeros(3, 2), torch.zeros(3).long(), mask=torch.zeros(3,
                              dtype=torch.bool)).item() == 0  # fmt: skip


def test_focal_loss_gradcheck_and_errors():
    logits = torch.randn(5, 2, dtype=torch.float64, requires_grad=True)
    target = torch.tensor([0, 1, 1, 0, 1])
    assert torch.autograd.gradcheck(
        lambda x: softmax_focal_loss(x, target, alpha=(0.3, 0.7), gamma=1.5), (logits,)
    )
    with pytest.raises(ValueError, match=r"target: expected class indices in \[0, 2\)"):
        softmax_focal_loss(logits, torch.tensor([0, 1, 2, 0, 1]))
    with pytest.raises(ValueError, match="gamma: expected a value >= 0"):
        softmax_focal_loss(logits, target, gamma=-1.0)
    with pytest.raises(ValueError, match="target: a bool target needs 2 classes"):
        softmax_focal_loss(torch.randn(5, 3), target.bool())
    with pytest.raises(ValueError, match=r"alpha: expected shape \(2,\)"):
        softmax_focal_loss(logits, target, alpha=(1.0, 1.0, 1.0))
    loss = SoftmaxFocalLoss((0.5, 0.5), 1.0)
    assert "gamma=1.0" in repr(loss) and loss.alpha.tolist() == [0.5, 0.5]
    torch.testing.assert_close(
        loss(logits, target), softmax_focal_loss(logits, target, alpha=(0.5, 0.5), gamma=1.0)
    )


def _torch_index(target):
    """torch.nn.MultiLabelMarginLoss's target: the positive indices, then -1."""
    index = torch.arange(target.shape[-1]).expand_as(target)
    return torch.where(target, index, -1).sort(-1, descending=True).values


@given(st.integers(1, 6), st.integers(1, 8), st.integers(0, 10_000))
def test_margin_loss_normalised_is_torchs_and_eq_8_is_c_times_it(n, C, seed):
    g = torch.Generator().manual_seed(seed)
    scores = torch.rand(n, C, generator=g, dtype=torch.float64)
    target = torch.rand(n, C, generator=g) > 0.6
    torch_loss = torch.nn.MultiLabelMarginLoss(reduction="none")(scores, _torch_index(target))
    ours = multilabel_margin_loss(scores, target, normalize=True, reduction="none")
    torch.testing.assert_close(ours, torch_loss)
    torch.testing.assert_close(multilabel_margin_loss(scores, target, reduction="none"),
                               C * torch_loss)  # fmt: skip
    torch.testing.assert_close(multilabel_margin_loss(scores, target, normalize=True),
                               torch_loss.mean())  # fmt: skip


def test_margin_loss_by_hand_and_its_degenerate_samples():
    s = torch.tensor([[0.9, 0.2, 0.6], [0.1, 0.5, 0.3]])
    t = torch.tensor([[True, False, False], [True, True, False]])
    # sample 0: (1 - .9 + .2) + (1 - .9 + .6) = 1.0; sample 1: (1 - .1 + .3) + (1 - .5 + .3) = 2.0
    torch.testing.assert_close(multilabel_margin_loss(s, t, reduction="none"),
                               torch.tensor([1.0, 2.0]))  # fmt: skip
    none, every = torch.zeros_like(t), torch.ones_like(t)
    assert multilabel_margin_loss(s, none, reduction="sum") == 0
    assert multilabel_margin_loss(s, every, reduction="sum") == 0
    mask = torch.tensor([True, False])
    dirty = s.clone().requires_grad_()
    out = multilabel_margin_loss(dirty.masked_fill(~mask[:, None], float("nan")), t, mask=mask)
    torch.testing.assert_close(out, torch.tensor(1.0))
    out.backward()
    assert dirty.grad[1].abs().sum() == 0
    with pytest.raises(TypeError, match="target: expected a bool tensor"):
        multilabel_margin_loss(s, t.long())


def _sttran_reference(logits, target, loss):
    """The loss as STTran's public code writes it (per group, flat rows)."""
    att = slice(0, 3)
    has = target[:, att].any(-1)
    out = {"attention": F.cross_entropy(logits[has][:, att], target[has][:, att].float()
                                        .argmax(-1))}  # fmt: skip
    for name, g in (("spatial", slice(3, 9)), ("contacting", slice(9, 26))):
        if loss == "bce":
            out[name] = F.binary_cross_entropy_with_logits(logits[:, g], target[:, g].to(logits))
        else:
            out[name] = F.multilabel_margin_loss(logits[:, g].sigmoid(), _torch_index(target[:, g]))
    return out


@pytest.mark.parametrize("loss", ["margin", "bce"])
def test_sttran_predicate_loss_is_sttrans_code(loss):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 5, 26, generator=g, dtype=torch.float64)
    target = torch.rand(2, 5, 26, generator=g) > 0.7
    target[0, 0, :3] = False  # a pair without an attention label
    mask = torch.rand(2, 5, generator=g) > 0.3
    got = sttran_predicate_loss(logits, target, mask=mask, multi_label=loss)
    want = _sttran_reference(logits[mask], target[mask], loss)
    for key in want:
        torch.testing.assert_close(got[key], want[key])
    with pytest.raises(ValueError, match="multi_label: expected one of 'margin', 'bce'"):
        sttran_predicate_loss(logits, target, multi_label="focal")
    empty = sttran_predicate_loss(logits[:, :0], target[:, :0])
    assert all(v.item() == 0 for v in empty.values())


def _focal_reference(logits, target, alpha, gamma):
    """-alpha_y (1 - p_y)^gamma log p_y, written from the softmax."""
    p = logits.double().softmax(-1).gather(-1, target[..., None]).squeeze(-1)
    a = 1.0 if alpha is None else torch.tensor(alpha, dtype=torch.float64)[target]
    return -a * (1 - p) ** gamma * p.log()


@given(st.integers(0, 10_000), st.floats(0.0, 4.0), st.booleans())
def test_focal_loss_matches_its_formula(seed, gamma, use_alpha):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(3, 5, 2, generator=g, dtype=torch.float64) * 3
    target = torch.randint(0, 2, (3, 5), generator=g)
    mask = torch.rand(3, 5, generator=g) > 0.3
    alpha = (0.3, 0.7) if use_alpha else None
    ref = _focal_reference(logits, target, alpha, gamma)
    got = softmax_focal_loss(logits, target, alpha=alpha, gamma=gamma, reduction="none")
    torch.testing.assert_close(got, ref)
    masked = softmax_focal_loss(logits, target, alpha=alpha, gamma=gamma, mask=mask)
    torch.testing.assert_close(masked, ref[mask].sum() / max(int(mask.sum()), 1))


def test_masked_means_do_not_overflow_in_half_precision():
    n = 200_000  # the sum of n losses of 0.69 overflows float16 (max 65504)
    logits = torch.zeros(n, 2, dtype=torch.float16)
    target = torch.zeros(n, dtype=torch.long)
    mask = torch.ones(n, dtype=torch.bool)
    out = softmax_focal_loss(logits, target, gamma=0.0, mask=mask)
    assert out.dtype == torch.float16 and torch.isfinite(out)
    torch.testing.assert_close(out.float(), torch.tensor(math.log(2.0)), atol=1e-3, rtol=0)
    scores = torch.full((50_000, 17), 0.5, dtype=torch.float16)
    t = torch.zeros(50_000, 17, dtype=torch.bool)
    t[:, 0] = True
    out = multilabel_margin_loss(scores, t, mask=torch.ones(50_000, dtype=torch.bool))
    assert torch.isfinite(out) and float(out) == 16.0  # 16 negatives x margin 1


# ------------------------------------------------------------- TR²'s class-weighted focal loss


@given(st.lists(st.integers(0, 100_000), min_size=1, max_size=20))
def test_inverse_log_frequency_properties(n):
    w = inverse_log_frequency(torch.tensor(n))
    assert w.shape == (len(n),) and torch.isfinite(w).all() and (w > 0).all()
    assert abs(float(w.mean()) - 1.0) < 1e-5
    order = sorted(range(len(n)), key=lambda i: max(n[i], 2))
    assert all(w[a] >= w[b] - 1e-6 for a, b in itertools.pairwise(order))


def test_inverse_log_frequency_by_hand_and_errors():
    w = inverse_log_frequency(torch.tensor([4.0, 16.0]))  # 1/log4 : 1/log16 = 2 : 1
    torch.testing.assert_close(w, torch.tensor([4 / 3, 2 / 3]))
    # counts below 2 are clamped (log 1 = 0 would divide by zero)
    torch.testing.assert_close(inverse_log_frequency(torch.tensor([0, 1, 2])), torch.ones(3))
    for bad in ([3.0, -1.0], [3.0, float("nan")], [3.0, float("inf")]):
        with pytest.raises(ValueError, match="counts: expected finite non-negative counts"):
            inverse_log_frequency(torch.tensor(bad))
    with pytest.raises(ValueError, match="counts: expected at least one class"):
        inverse_log_frequency(torch.zeros(0))


def _tr2_focal_reference(logits, target, alpha, gamma):
    """TR²'s code, sample by sample, with the intended alpha index (its alpha[g - 1] fixed)."""
    out = []
    for x, y in zip(logits, target, strict=True):
        p = torch.sigmoid(x)
        loss = -(y * p.log() + (1 - y) * (1 - p).log()).sum()
        pt = torch.exp(-loss)
        labels = y.nonzero().flatten().tolist()
        a = sum(float(alpha[g]) for g in labels) / len(labels) if labels else 1.0
        out.append(a * (1 - pt) ** gamma * loss)
    return torch.stack(out).mean()


@given(st.integers(1, 8), st.integers(1, 7), st.floats(0.0, 3.0), st.integers(0, 10_000))
def test_multilabel_focal_matches_the_codes_formula(n, C, gamma, seed):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, C, generator=g, dtype=torch.float64) * 2
    target = torch.rand(n, C, generator=g) > 0.6
    alpha = inverse_log_frequency(torch.randint(1, 5000, (C,), generator=g)).double()
    got = multilabel_focal_loss(logits, target, alpha=alpha, gamma=gamma)
    torch.testing.assert_close(got, _tr2_focal_reference(logits, target.double(), alpha, gamma))
    plain = F.binary_cross_entropy_with_logits(logits, target.double(), reduction="none").sum(-1)
    torch.testing.assert_close(multilabel_focal_loss(logits, target, gamma=0.0), plain.mean())


def test_multilabel_focal_by_hand_masking_and_degenerate_input():
    # one sample, C = 2, logits 0: BCE sum = 2 log 2, p_t = 1/4, alpha mean of (1, 3) = 2
    x = torch.zeros(1, 2, dtype=torch.float64)
    got = multilabel_focal_loss(
        x, torch.tensor([[True, True]]), alpha=torch.tensor([1.0, 3.0]).double()
    )
    torch.testing.assert_close(
        got, torch.tensor(2 * (0.75**2) * 2 * math.log(2), dtype=torch.float64)
    )
    logits = torch.randn(5, 4)
    target = torch.rand(5, 4) > 0.5
    mask = torch.tensor([True, False, True, True, False])
    dirty = logits.clone()
    dirty[~mask] = float("nan")
    dirty.requires_grad_()
    out = multilabel_focal_loss(dirty, target, alpha=torch.ones(4), mask=mask)
    torch.testing.assert_close(
        out, multilabel_focal_loss(logits[mask], target[mask], alpha=torch.ones(4))
    )
    out.backward()
    assert torch.isfinite(dirty.grad).all() and (dirty.grad[~mask] == 0).all()
    empty = torch.zeros(0, 4, requires_grad=True)
    e = multilabel_focal_loss(empty, torch.zeros(0, 4, dtype=torch.bool))
    assert e.item() == 0
    e.backward()
    half = multilabel_focal_loss(
        torch.full((3, 17), 30.0).half(), torch.zeros(3, 17, dtype=torch.bool)
    )
    assert half.dtype == torch.float16 and torch.isfinite(half)
    x64 = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    t = torch.rand(4, 3) > 0.5
    assert torch.autograd.gradcheck(
        lambda v: multilabel_focal_loss(v, t, alpha=torch.tensor([0.5, 1.0, 1.5]).double()), (x64,)
    )
    with pytest.raises(ValueError, match=r"target: expected shape \(4, 3\)"):
        multilabel_focal_loss(x64, t[:, :2])
    with pytest.raises(ValueError, match=r"alpha: expected shape \(3,\)"):
        multilabel_focal_loss(x64, t, alpha=torch.ones(2).double())
    with pytest.raises(ValueError, match="gamma: expected a value >= 0"):
        multilabel_focal_loss(x64, t, gamma=-1.0)


# ------------------------------------------------------------ sigmoid focal loss (ARN, Eq. 7)


@given(st.integers(0, 6), st.integers(1, 5), st.floats(0.0, 3.0), st.integers(0, 10_000))
def test_sigmoid_focal_matches_its_formula_and_torchvision(n, C, gamma, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, C, generator=g, dtype=torch.float64) * 3
    y = (torch.rand(n, C, generator=g) > 0.5).double()
    p = torch.sigmoid(x)
    pt = p * y + (1 - p) * (1 - y)
    for alpha in (None, 0.25, 0.9):
        a = 1.0 if alpha is None else alpha * y + (1 - alpha) * (1 - y)
        want = -a * (1 - pt) ** gamma * torch.log(pt)
        got = sigmoid_focal_loss(x, y, alpha=alpha, gamma=gamma, reduction="none")
        torch.testing.assert_close(got, want)
        if n:
            torch.testing.assert_close(
                sigmoid_focal_loss(x, y, alpha=alpha, gamma=gamma), want.mean()
            )
    ops = pytest.importorskip("torchvision.ops")
    tv = ops.sigmoid_focal_loss(x, y, alpha=0.25, gamma=gamma, reduction="sum")
    torch.testing.assert_close(
        sigmoid_focal_loss(x, y, alpha=0.25, gamma=gamma, reduction="sum"), tv
    )


def test_sigmoid_focal_is_bce_stable_masked_and_defined_on_empty_input():
    x, y = torch.randn(5, 4), torch.rand(5, 4) > 0.5
    bce = F.binary_cross_entropy_with_logits(x, y.float())
    torch.testing.assert_close(sigmoid_focal_loss(x, y, gamma=0.0), bce)
    extreme = torch.tensor([[100.0, -100.0, 100.0, -100.0]], requires_grad=True)
    target = torch.tensor([[1.0, 0.0, 0.0, 1.0]])  # right, right, wrong, wrong
    loss = sigmoid_focal_loss(extreme, target, alpha=0.25, reduction="none")
    assert torch.isfinite(loss).all() and loss[0, 0] == 0
    assert float(loss[0, 2].detach()) == pytest.approx(75.0)  # BCE 100, (1 - p_t) = 1, alpha_t 0.75
    loss.sum().backward()
    assert torch.isfinite(extreme.grad).all()
    for gamma in (0.25, 0.5, 1.0, 1.5):  # gamma < 1: (1 - p_t)^gamma has an infinite slope at 0
        e = extreme.detach().requires_grad_()
        (g,) = torch.autograd.grad(sigmoid_focal_loss(e, target, gamma=gamma, reduction="sum"), e)
        assert torch.isfinite(g).all(), gamma
        assert g[0, :2].abs().max() < 1e-6 and g[0, 2] > 0.9 and g[0, 3] < -0.9, gamma
    mask = torch.tensor([True, False, True, False, True])
    dirty = x.clone()
    dirty[~mask] = float("nan")
    dirty.requires_grad_()
    out = sigmoid_focal_loss(dirty, y, mask=mask)
    torch.testing.assert_close(out, sigmoid_focal_loss(x[mask], y[mask]))
    out.backward()
    assert torch.isfinite(dirty.grad).all() and (dirty.grad[~mask] == 0).all()
    e = sigmoid_focal_loss(torch.zeros(0, 3, requires_grad=True), torch.zeros(0, 3))
    assert e.item() == 0
    assert sigmoid_focal_loss(x, y, mask=torch.zeros(5, dtype=torch.bool)).item() == 0
    half = sigmoid_focal_loss(torch.full((2, 3), 20.0).half(), torch.zeros(2, 3))
    assert half.dtype == torch.float16 and torch.isfinite(half)
    x64 = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: sigmoid_focal_loss(v, y[:3], alpha=0.3), (x64,))
    module = SigmoidFocalLoss(alpha=0.25, reduction="sum")
    torch.testing.assert_close(module(x, y), sigmoid_focal_loss(x, y, alpha=0.25, reduction="sum"))
    assert "alpha=0.25" in repr(module)
    compiled = torch.compile(lambda a, b: sigmoid_focal_loss(a, b, alpha=0.25), fullgraph=True)
    torch.testing.assert_close(compiled(x, y), sigmoid_focal_loss(x, y, alpha=0.25))
    with pytest.raises(ValueError, match=r"alpha: expected None or a number in \[0, 1\]"):
        sigmoid_focal_loss(x, y, alpha=1.5)
    with pytest.raises(ValueError, match=r"targets: expected shape \(5, 4\)"):
        sigmoid_focal_loss(x, y[:, :2])
    with pytest.raises(ValueError, match="gamma: expected a value >= 0"):
        SigmoidFocalLoss(gamma=-1.0)


# ------------------------------------------------------ ARN's L1 alignment to CLIP embeddings


def test_embedding_alignment_is_l1_masked_and_broadcasts_per_frame():
    g = torch.Generator().manual_seed(0)
    e = torch.randn(2, 5, 8, generator=g, dtype=torch.float64)
    img = torch.randn(2, 1, 8, generator=g, dtype=torch.float64)  # one embedding a frame
    want = torch.nn.L1Loss()(e, img.expand_as(e))
    torch.testing.assert_close(embedding_alignment_loss(e, img, normalize=False), want)
    unit = lambda v: v / v.norm(dim=-1, keepdim=True)  # noqa: E731
    torch.testing.assert_close(embedding_alignment_loss(e, img),
                               (unit(e) - unit(img)).abs().mean())  # fmt: skip
    mask = torch.rand(2, 5, generator=g) > 0.4
    mask[0, 0] = True
    dirty = e.masked_fill(~mask.unsqueeze(-1), float("nan")).requires_grad_()
    out = embedding_alignment_loss(dirty, img, mask)
    torch.testing.assert_close(out, embedding_alignment_loss(e[mask], img.expand_as(e)[mask]))
    out.backward()
    assert torch.isfinite(dirty.grad).all() and (dirty.grad[~mask] == 0).all()
    x = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    y = torch.randn(3, 4, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda v: embedding_alignment_loss(v, y), (x,))
    assert embedding_alignment_loss(torch.zeros(0, 4), torch.zeros(0, 4)).item() == 0
    with pytest.raises(ValueError, match="image_embeddings: expected a shape that broadcasts"):
        embedding_alignment_loss(e, torch.randn(3, 1, 8, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"image_embeddings: expected shape \(\.\.\., 8\)"):
        embedding_alignment_loss(e, torch.randn(2, 1, 4, dtype=torch.float64))


def test_focal_loss_is_a_deprecated_name_of_softmax_focal_loss():
    from dsgg_layers import FocalLoss

    logits, target = torch.randn(5, 2), torch.randint(0, 2, (5,))
    with pytest.warns(DeprecationWarning, match="SoftmaxFocalLoss"):
        old = FocalLoss((0.25, 0.75), 2.0)
    new = SoftmaxFocalLoss((0.25, 0.75), 2.0)
    assert isinstance(old, SoftmaxFocalLoss)
    torch.testing.assert_close(old(logits, target), new(logits, target))


def test_tr2_predicate_loss_is_the_codes_composition_and_runs_on_rows():
    from dsgg_layers import (
        ValidRows,
        inverse_log_frequency,
        multilabel_focal_loss,
        softmax_focal_loss,
        tr2_predicate_loss,
    )
    from dsgg_layers.vocab import PREDICATE_GROUPS

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 4, 26, generator=g)
    relations = torch.rand(2, 3, 4, 26, generator=g) > 0.8
    mask = torch.rand(2, 3, 4, generator=g) > 0.3
    alpha = {k: inverse_log_frequency(torch.rand(s.stop - s.start) * 100 + 1)
             for k, s in PREDICATE_GROUPS.items() if k != "attention"}  # fmt: skip
    att = PREDICATE_GROUPS["attention"]
    has_att = mask & relations[..., att].any(-1)
    want = {"attention": softmax_focal_loss(logits[..., att], relations[..., att].long().argmax(-1),
                                            gamma=0.0, mask=has_att)}  # fmt: skip
    for k in ("spatial", "contacting"):
        s = PREDICATE_GROUPS[k]
        want[k] = multilabel_focal_loss(logits[..., s], relations[..., s], alpha=alpha[k],
                                        gamma=2.0, mask=mask)  # fmt: skip
    for m in (mask, ValidRows(mask)):
        got = tr2_predicate_loss(logits, relations, mask=m, alpha=alpha)
        for k in want:
            torch.testing.assert_close(got[k], want[k])
    with pytest.raises(ValueError, match="groups: expected attention, spatial and contacting"):
        tr2_predicate_loss(logits, relations, groups={"attention": att})
