"""TR²'s message token and temporal-difference guidance (dsgg_layers.message) vs loops."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dsgg_layers import (
    MessageToken,
    TemporalDifferenceGuidance,
    change_share,
    guidance_loss,
    label_changes,
    relation_text_targets,
    track_differences,
)


def grid(seed=0, B=2, T=5, P=3, D=8, p=0.3, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, T, P, D, generator=g, dtype=dtype)
    mask = torch.rand(B, T, P, generator=g) > p
    return x, mask


def message_loop(token, x, mask):
    """Eq. 1 pair by pair, frame by frame, with the previous *existing* frame."""
    B, T, P, D = x.shape
    out = torch.zeros(B, T, P, 2 * D, dtype=x.dtype)
    for b in range(B):
        for p in range(P):
            prev = None
            for t in range(T):
                if not mask[b, t, p]:
                    continue
                cur = x[b, t, p]
                zero = torch.zeros_like(cur)
                gate = token.gate(zero if prev is None else prev, cur)
                if prev is None:
                    value = zero if token.first == "zero" else cur
                else:
                    value = prev
                out[b, t, p] = torch.cat((cur, value * gate))
                prev = cur
    return out


@pytest.mark.parametrize("first", ["self", "zero"])
@given(seed=st.integers(0, 10_000))
def test_message_token_matches_the_loop_reference(first, seed):
    token = MessageToken(8, 6, first=first).double()
    x, mask = grid(seed, dtype=torch.float64)
    torch.testing.assert_close(token(x, mask), message_loop(token, x, mask))


def test_message_token_looks_back_to_the_previous_existing_frame():
    token = MessageToken(2).double()
    x = torch.tensor([[1.0, 2.0], [100.0, 100.0], [3.0, 4.0]], dtype=torch.float64)[:, None]
    mask = torch.tensor([[True], [False], [True]])
    out = token(x, mask)
    gate = token.gate(x[0, 0], x[2, 0])  # frame 2 looks back to frame 0, skipping frame 1
    torch.testing.assert_close(out[2, 0, 2:], x[0, 0] * gate)
    assert out[1].abs().sum() == 0
    # the first frame: the gate sees zeros; "self" gates the frame itself, "zero" gives 0
    first_gate = token.gate(torch.zeros(2, dtype=torch.float64), x[0, 0])
    torch.testing.assert_close(out[0, 0, 2:], x[0, 0] * first_gate)
    token.first = "zero"
    assert token(x, mask)[0, 0, 2:].abs().sum() == 0
    assert ((first_gate > -1) & (first_gate < 1)).all()


def test_message_token_padding_never_leaks_and_gradcheck():
    token = MessageToken(4, 5).double()
    x, mask = grid(D=4, dtype=torch.float64)
    clean = token(x, mask)
    dirty = x.masked_fill(~mask.unsqueeze(-1), float("nan")).requires_grad_()
    out = token(dirty, mask)
    torch.testing.assert_close(out, clean)
    assert out[~mask].abs().sum() == 0
    out.sum().backward()
    assert torch.isfinite(dirty.grad).all() and dirty.grad[~mask].abs().sum() == 0
    small = x[:1, :3, :2].clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda v: token(v, mask[:1, :3, :2]), (small,))


def test_message_token_errors_and_empty_inputs():
    token = MessageToken(4)
    with pytest.raises(ValueError, match=r"x: expected shape \(\.\.\., T, P, 4\)"):
        token(torch.randn(1, 2, 3, 5), torch.ones(1, 2, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="first: expected one of 'self', 'zero'"):
        MessageToken(4, first="prev")
    with pytest.raises(TypeError, match="x: expected"):
        token(torch.randn(1, 2, 3, 4, dtype=torch.float64), torch.ones(1, 2, 3, dtype=torch.bool))
    for shape in [(0, 3, 2), (2, 0, 2), (2, 3, 0), (1, 1, 1)]:
        x = torch.randn(*shape, 4, requires_grad=True)
        out = token(x, torch.ones(shape, dtype=torch.bool))
        assert out.shape == (*shape, 8)
        out.sum().backward()
        assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize("training", [False, True])
def test_compiled_message_token_matches_eager(training):
    torch._dynamo.reset()
    token = MessageToken(8).train(training)
    x, mask = grid()
    compiled = torch.compile(token, fullgraph=True)
    torch.testing.assert_close(compiled(x, mask), token(x, mask))


def test_track_differences_skip_missing_frames():
    x = torch.tensor([[1.0], [9.0], [4.0], [6.0]])[:, None]  # (T=4, P=1, D=1)
    mask = torch.tensor([[True], [False], [True], [True]])
    d, valid = track_differences(x, mask)
    assert d.flatten().tolist() == [0.0, 0.0, 3.0, 2.0]
    assert valid.flatten().tolist() == [False, False, True, True]


def test_relation_text_targets_are_the_mean_of_the_labelled_sentences():
    sentences = torch.randn(4, 3, 5)
    rel = torch.tensor([[True, True, False], [False, False, False], [False, False, True]])
    labels = torch.tensor([2, 99, 1])  # 99: no label there, never read
    target, has = relation_text_targets(rel, labels, sentences)
    torch.testing.assert_close(target[0], (sentences[2, 0] + sentences[2, 1]) / 2)
    assert target[1].abs().sum() == 0 and has.tolist() == [True, False, True]
    torch.testing.assert_close(target[2], sentences[1, 2])
    with pytest.raises(ValueError, match=r"object_labels: expected classes in \[0, 4\)"):
        relation_text_targets(rel, torch.tensor([2, 0, 7]), sentences)


def guidance_loop(x, s, mask, mode, project):
    B, T, P, _ = x.shape
    errs = []
    for b in range(B):
        for p in range(P):
            prev = None
            for t in range(T):
                if not mask[b, t, p]:
                    continue
                if mode == "direct":
                    errs.append((project(x[b, t, p]) - s[b, t, p]) ** 2)
                elif prev is not None:
                    dx = project(x[b, t, p] - x[b, prev, p])
                    errs.append((dx - (s[b, t, p] - s[b, prev, p])) ** 2)
                prev = t
    return torch.stack(errs).mean() if errs else torch.tensor(0.0, dtype=x.dtype)


@pytest.mark.parametrize("mode", ["difference", "direct"])
@given(seed=st.integers(0, 10_000))
def test_guidance_loss_matches_the_loop_reference(mode, seed):
    x, mask = grid(seed, D=6, dtype=torch.float64)
    s, _ = grid(seed + 1, D=4, dtype=torch.float64)
    proj = torch.nn.Linear(6, 4).double()
    got = guidance_loss(x, s, mask, mode=mode, projection=proj)
    torch.testing.assert_close(got, guidance_loop(x, s, mask, mode, proj))


def test_guidance_is_zero_when_feature_steps_equal_text_steps_and_without_tracks():
    x, mask = grid(D=4, dtype=torch.float64)
    s = 3.0 * x + 7.0  # the projection 3x maps feature steps onto text steps exactly
    proj = torch.nn.Linear(4, 4, bias=True).double()
    with torch.no_grad():
        proj.weight.copy_(3.0 * torch.eye(4))
        proj.bias.zero_()
    assert (
        float(guidance_loss(x, s, mask, projection=proj).detach()) < 1e-24
    )  # float64 rounding only
    assert guidance_loss(x, s, mask, projection=proj, mode="direct") > 0  # the offset 7
    one = torch.zeros_like(mask)
    one[0, 0, 0] = True  # no track with two entries: 0, not NaN
    assert guidance_loss(x, s, one, projection=proj) == 0


def test_guidance_gradients_reach_the_projections_not_the_sentences():
    tables = {"attention": torch.randn(5, 3, 4), "spatial": torch.randn(5, 6, 4)}
    guide = TemporalDifferenceGuidance(8, tables)
    x, mask = grid(D=8)
    g = torch.Generator().manual_seed(1)
    rel = {k: torch.rand(*mask.shape, t.shape[1], generator=g) > 0.4 for k, t in tables.items()}
    labels = torch.randint(0, 5, mask.shape, generator=g)
    x.requires_grad_()
    losses = guide(x, mask, rel, labels)
    sum(losses.values()).backward()
    for name in tables:
        assert guide.projections[name].weight.grad.abs().sum() > 0
        assert not guide.sentences(name).requires_grad
    assert [n for n, _ in guide.named_parameters()] == [
        "projections.attention.weight", "projections.attention.bias",
        "projections.spatial.weight", "projections.spatial.bias",
    ]  # fmt: skip
    assert x.grad[~mask].abs().sum() == 0
    # each group's loss is guidance_loss with that group's table and projection
    target, has = relation_text_targets(rel["spatial"], labels, tables["spatial"])
    ref = guidance_loss(x, target, mask & has, projection=guide.projections["spatial"])
    torch.testing.assert_close(losses["spatial"], ref)
    with pytest.raises(ValueError, match="relations: expected the groups"):
        guide(x, mask, {"attention": rel["attention"]}, labels)
    with pytest.raises(ValueError, match="sentences: expected one text width"):
        TemporalDifferenceGuidance(8, {"a": torch.randn(2, 3, 4), "b": torch.randn(2, 3, 5)})
    # a padded pair's label is never read (formerly out-of-range labels there raised), nor its
    # relations
    junk_labels = labels.masked_fill(~mask, 999)
    junk_rel = {k: v | ~mask[..., None] for k, v in rel.items()}
    again = guide(x.detach(), mask, junk_rel, junk_labels)
    for name in tables:
        torch.testing.assert_close(again[name], losses[name].detach())
    # masks and features of the wrong kind are named, not raw torch errors
    with pytest.raises(TypeError, match="mask"):
        guide(x, mask.float(), rel, labels)
    with pytest.raises(TypeError, match="x: expected dtype torch.float32"):
        guide(x.detach().double(), mask, rel, labels)
    with pytest.raises(ValueError, match="relations"):
        guide(x, mask, [rel["attention"]], labels)


def test_guidance_gradcheck_and_compile():
    x, mask = grid(B=1, T=4, P=2, D=3, dtype=torch.float64)
    s, _ = grid(1, B=1, T=4, P=2, D=2, dtype=torch.float64)
    proj = torch.nn.Linear(3, 2).double()
    x.requires_grad_()
    assert torch.autograd.gradcheck(lambda v: guidance_loss(v, s, mask, projection=proj), (x,))
    torch._dynamo.reset()
    fn = torch.compile(lambda v: guidance_loss(v, s, mask, projection=proj), fullgraph=True)
    torch.testing.assert_close(fn(x.detach()), guidance_loss(x.detach(), s, mask, projection=proj))


def test_label_changes_compare_with_the_previous_existing_frame():
    rel = torch.tensor([[1, 0], [0, 1], [1, 0], [1, 0]]).bool()[:, None]  # (T=4, P=1, C=2)
    mask = torch.tensor([[True], [False], [True], [True]])
    changed, valid = label_changes(rel, mask)
    assert valid.flatten().tolist() == [False, False, True, True]
    assert changed.flatten().tolist() == [False, False, False, False]  # frame 1 is skipped
    mask[1] = True
    changed, _ = label_changes(rel, mask)
    assert changed.flatten().tolist() == [False, True, True, False]


def test_binary_guidance_is_a_change_classifier_on_feature_differences():
    tables = {"spatial": torch.randn(5, 6, 4)}
    guide = TemporalDifferenceGuidance(8, tables, mode="binary")
    assert guide.projections["spatial"].out_features == 1
    x, mask = grid(D=8)
    g = torch.Generator().manual_seed(2)
    rel = {"spatial": torch.rand(*mask.shape, 6, generator=g) > 0.5}
    loss = guide(x, mask, rel, torch.zeros(mask.shape, dtype=torch.long))["spatial"]
    # loop reference: BCE over the pair-frames with an earlier frame
    terms = []
    B, T, P, _ = x.shape
    clf = guide.projections["spatial"]
    for b in range(B):
        for p in range(P):
            prev = None
            for t in range(T):
                if not mask[b, t, p]:
                    continue
                if prev is not None:
                    logit = clf(x[b, t, p] - x[b, prev, p])[0]
                    y = float((rel["spatial"][b, t, p] != rel["spatial"][b, prev, p]).any())
                    terms.append(torch.nn.functional.binary_cross_entropy_with_logits(
                        logit, torch.tensor(y)))  # fmt: skip
                prev = t
    torch.testing.assert_close(loss, torch.stack(terms).mean())
    loss.backward()
    assert clf.weight.grad.abs().sum() > 0


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.integers(0, 5), st.integers(0, 4))
def test_change_share_matches_a_loop_reference(seed, T, P):
    g = torch.Generator().manual_seed(seed)
    rel = torch.rand(3, T, P, 4, generator=g) > 0.6
    mask = torch.rand(3, T, P, generator=g) > 0.3
    got = change_share(rel, mask)
    assert got.shape == (3,)
    for b in range(3):
        changed = total = 0
        for p in range(P):
            previous = None
            for t in range(T):
                if not mask[b, t, p]:
                    continue
                if previous is not None:
                    total += 1
                    changed += int(not torch.equal(rel[b, t, p], previous))
                previous = rel[b, t, p]
        assert float(got[b]) == pytest.approx(changed / max(total, 1))
