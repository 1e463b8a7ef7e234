"""ActionSemanticMatcher: logits against text embeddings, temperature, open vocabulary."""

import math

import pytest
import torch
import torch.nn.functional as F

from dsgg_layers import ActionSemanticMatcher, SentenceClassifier, TripletCategoryClassifier
from dsgg_layers.text import class_words, encode_prompts


def text(C=6, E=16, seed=0):
    return F.normalize(torch.randn(C, E, generator=torch.Generator().manual_seed(seed)), dim=-1)


@pytest.mark.parametrize("similarity", ["dot", "cosine"])
def test_logits_match_the_formula(similarity):
    asm = ActionSemanticMatcher(10, text(), similarity=similarity)
    with torch.no_grad():
        asm.logit_scale.fill_(math.log(3.0))
        asm.logit_bias.fill_(-0.5)
    x = torch.randn(4, 10)
    f = x @ asm.proj.weight.T
    E = asm.text_embeddings
    if similarity == "cosine":
        f, E = F.normalize(f, dim=-1), F.normalize(E, dim=-1)
    torch.testing.assert_close(asm(x), 3.0 * f @ E.T - 0.5)
    torch.testing.assert_close(asm.probabilities(asm(x)), torch.sigmoid(asm(x)))
    # softmax: the single-label use (UASAN's cos / tau, ARN's CLIP-initialised classifier)
    logits = asm(x)
    want = torch.exp(logits) / torch.exp(logits).sum(-1, keepdim=True)
    torch.testing.assert_close(asm.probabilities(logits, "softmax"), want)
    with pytest.raises(ValueError, match="kind"):
        asm.probabilities(logits, "tanh")


def test_temperature_is_clamped_and_can_be_fixed():
    asm = ActionSemanticMatcher(10, text(), similarity="cosine")
    assert asm.logit_scale.item() == pytest.approx(math.log(1 / 0.07))
    with torch.no_grad():
        asm.logit_scale.fill_(10.0)  # exp(10) > 100: clamped
    x = torch.randn(3, 10)
    f = F.normalize(x @ asm.proj.weight.T, dim=-1)
    torch.testing.assert_close(asm(x), 100.0 * f @ asm.text_embeddings.T)
    fixed = ActionSemanticMatcher(10, text(), learnable_temperature=False, bias=False)
    assert "logit_scale" not in dict(fixed.named_parameters())
    assert fixed.no_weight_decay() == set()
    assert asm.no_weight_decay() == {"logit_scale", "logit_bias"}
    assert asm.no_weight_decay() <= set(dict(asm.named_parameters()))


def test_open_vocabulary_swap_and_state_dict():
    asm = ActionSemanticMatcher(10, text(C=6))
    x = torch.randn(2, 5, 10)
    before = asm(x)
    asm.set_text_embeddings(text(C=6)[:2])
    torch.testing.assert_close(asm(x), before[..., :2])  # the same weights score the new set
    assert asm.num_classes == 2 and "text_embeddings" in asm.state_dict()
    asm.set_text_embeddings(text(C=9, seed=3))
    assert asm(x).shape == (2, 5, 9)
    with pytest.raises(
        ValueError, match=r"text_embeddings: expected shape \(C, 16\), got \(3, 8\)"
    ):
        asm.set_text_embeddings(torch.randn(3, 8))


def test_with_clip_text_embeddings(tmp_path):
    E = encode_prompts(class_words(), cache_dir=tmp_path)  # random-weight CLIP, offline
    asm = ActionSemanticMatcher(32, E, similarity="cosine")
    assert asm(torch.randn(7, 32)).shape == (7, 26) and "classes=26" in repr(asm)


def test_batch_invariance_empty_gradcheck_and_compile():
    asm = ActionSemanticMatcher(6, text(C=4, E=5), similarity="cosine").double()
    x = torch.randn(3, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(asm, (x,))
    torch.testing.assert_close(asm(x[1:]), asm(x)[1:])
    assert asm(torch.zeros(0, 6, dtype=torch.float64)).shape == (0, 4)
    m = ActionSemanticMatcher(8, text(), similarity="dot")
    y = torch.randn(2, 3, 8)
    torch.testing.assert_close(torch.compile(m, fullgraph=True)(y), m(y), rtol=1e-5, atol=1e-5)


def test_errors():
    with pytest.raises(ValueError, match="similarity: expected one of 'dot', 'cosine'"):
        ActionSemanticMatcher(8, text(), similarity="l2")
    with pytest.raises(ValueError, match=r"text_embeddings: expected shape \(C, E\), got \(16,\)"):
        ActionSemanticMatcher(8, torch.randn(16))
    with pytest.raises(ValueError, match=r"input: expected shape \(\.\.\., 8\), got \(2, 7\)"):
        ActionSemanticMatcher(8, text())(torch.randn(2, 7))
    with pytest.raises(ValueError, match="temperature: expected a value > 0"):
        ActionSemanticMatcher(8, text(), temperature=0.0)


# ------------------------------------------------------- SentenceClassifier (TR²'s public code)


def sentences(O=5, C=4, E=6, seed=0):  # noqa: E741
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(O, C, E, generator=g), dim=-1)


def test_sentence_classifier_matches_a_loop_reference():
    S = sentences()
    head = SentenceClassifier(8, S)
    x = torch.randn(2, 3, 4, 8)
    labels = torch.randint(0, 5, (2, 3, 4))
    got = head(x, labels)
    assert got.shape == (2, 3, 4, 4)
    W, b = head.proj.weight, head.proj.bias
    for i in range(2):
        for t in range(3):
            for p in range(4):
                want = S[labels[i, t, p]] @ (x[i, t, p] @ W.T + b)  # the code: Linear, then dot
                torch.testing.assert_close(got[i, t, p], want)
    # batch invariance; no bias
    torch.testing.assert_close(head(x[1:], labels[1:]), got[1:])
    assert SentenceClassifier(8, S, bias=False).proj.bias is None


def test_sentence_classifier_padding_gradients_and_empty():
    S = sentences()
    head = SentenceClassifier(8, S)
    x = torch.randn(6, 8)
    labels = torch.tensor([1, 4, 0, 2, 3, 1])
    mask = torch.tensor([True, False, True, True, False, True])
    dirty_x = x.clone()
    dirty_x[~mask] = float("nan")
    dirty_x.requires_grad_()
    dirty_labels = labels.masked_fill(~mask, 999)  # out of range, but padding
    out = head(dirty_x, dirty_labels, mask)
    torch.testing.assert_close(out[mask], head(x[mask], labels[mask]))
    assert (out[~mask] == 0).all()
    out.sum().backward()
    assert torch.isfinite(head.proj.weight.grad).all() and torch.isfinite(dirty_x.grad).all()
    assert (dirty_x.grad[~mask] == 0).all()
    assert head.sentences.grad is None and not head.sentences.requires_grad
    assert head(torch.zeros(0, 8), torch.zeros(0, dtype=torch.long)).shape == (0, 4)
    # gradcheck (float64)
    h64 = SentenceClassifier(3, sentences(O=3, C=2, E=4).double()).double()
    x64 = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    lab = torch.tensor([0, 2, 1, 2])
    assert torch.autograd.gradcheck(lambda v: h64(v, lab), (x64,))
    # compile == eager
    y = torch.randn(2, 3, 8)
    lab2 = torch.randint(0, 5, (2, 3))
    compiled = torch.compile(lambda a, b: head(a, b), fullgraph=True)
    torch.testing.assert_close(compiled(y, lab2), head(y, lab2), rtol=1e-5, atol=1e-5)


def test_sentence_classifier_errors_and_repr():
    with pytest.raises(ValueError, match=r"sentences: expected shape \(O, C, E\), got \(4, 6\)"):
        SentenceClassifier(8, torch.randn(4, 6))
    bad = sentences()
    bad[0, 0, 0] = float("inf")
    with pytest.raises(ValueError, match="sentences: expected finite values"):
        SentenceClassifier(8, bad)
    head = SentenceClassifier(8, sentences())
    with pytest.raises(
        ValueError, match=r"object_labels: expected classes in \[0, 5\), got \[0, 5\]"
    ):
        head(torch.randn(2, 8), torch.tensor([0, 5]))
    with pytest.raises(ValueError, match=r"object_labels: expected shape \(2,\)"):
        head(torch.randn(2, 8), torch.tensor([0, 1, 2]))
    with pytest.raises(TypeError, match="object_labels"):
        head(torch.randn(2, 8), torch.tensor([0.0, 1.0]))
    assert "objects=5, classes=4, embed_dim=6" in repr(head)


# ------------------------------------------------- TripletCategoryClassifier (ARN, Eq. 15)


def test_trainable_text_is_a_parameter_that_learns_and_swaps():
    asm = ActionSemanticMatcher(6, text(), similarity="cosine", trainable_text=True)
    assert isinstance(asm.text_embeddings, torch.nn.Parameter)
    assert asm.text_parameters() == [asm.text_embeddings]
    asm(torch.randn(3, 6)).sum().backward()
    assert asm.text_embeddings.grad.abs().sum() > 0
    asm.set_text_embeddings(text(C=3))
    assert isinstance(asm.text_embeddings, torch.nn.Parameter) and asm.num_classes == 3
    frozen = ActionSemanticMatcher(6, text(), similarity="cosine")
    assert frozen.text_parameters() == [] and "text_embeddings" in dict(frozen.named_buffers())


def test_triplet_categories_max_targets_and_loop_reference():
    torch.manual_seed(0)
    P, O, E = 3, 4, 8  # noqa: E741
    table = F.normalize(torch.randn(P, O, E), dim=-1)
    clf = TripletCategoryClassifier(5, table)
    x = torch.randn(2, 6, 5)
    logits = clf(x)
    assert logits.shape == (2, 6, P * O)
    probs = clf.predicate_probabilities(logits)
    for p in range(P):  # Eq. 15: the largest of the predicate's categories, in sigmoid space
        want = torch.stack([logits[..., p * O + o].sigmoid() for o in range(O)], -1).amax(-1)
        torch.testing.assert_close(probs[..., p], want)
    # the rows start at the prompts' embeddings, predicate-major
    torch.testing.assert_close(clf.matcher.text_embeddings[2 * O + 1], table[2, 1])
    predicates = torch.tensor([[True, False, True], [False, False, False]])
    labels = torch.tensor([2, 99])  # no predicate: the label is not read
    t = clf.category_targets(predicates, labels)
    assert t.shape == (2, P * O)
    assert t[0].nonzero().flatten().tolist() == [0 * O + 2, 2 * O + 2] and not t[1].any()
    names = clf.no_weight_decay()
    assert {"matcher.logit_scale", "matcher.logit_bias", "matcher.text_embeddings"} == names
    assert clf.text_parameters() == [clf.matcher.text_embeddings]
    with pytest.raises(
        ValueError, match=r"object_labels: expected classes in \[0, 4\), got \[0, 4\]"
    ):
        clf.category_targets(predicates, torch.tensor([4, 0]))
    with pytest.raises(ValueError, match=r"text_embeddings: expected shape \(P, O, E\)"):
        TripletCategoryClassifier(5, torch.randn(3, 8))
    assert "predicates=3, objects=4" in repr(clf)
    # the focal-loss prior: every category starts near 1% (cosine in [-1, 1] times 1 / 0.07)
    assert clf.matcher.logit_bias.item() == pytest.approx(-math.log(99.0))
    assert TripletCategoryClassifier(5, table, prior=None).matcher.logit_bias.item() == 0
    with pytest.raises(ValueError, match=r"prior: expected None or a probability in \(0, 1\)"):
        TripletCategoryClassifier(5, table, prior=1.0)
