"""PromptLearner (CoOp-style context, UASAN Eq. 9-10), OpenCLIPTextTower, WordTower."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dsgg_layers import (
    GroupedPromptLearner,
    OpenCLIPTextTower,
    PromptLearner,
    TextTower,
    WordTower,
)

WORDS = ["move", "left", "right", "up", "down", "fast", "slow", "toward", "away"]


def test_word_tower_ids_encoding_and_errors():
    tower = WordTower(WORDS, dim=8)
    assert isinstance(tower, TextTower)
    ids = tower.tokenize(["Move left.", "x x up"])
    eot = tower.eot
    assert ids[0, :5].tolist() == [1, 2, 3, tower.index["."], eot]
    assert int(ids.argmax(-1)[1]) == 4 and eot == ids.max()
    e = tower.encode_embeddings(tower.embed_tokens(ids), ids)
    x = tower.index["x"]
    expected = (2 * tower.table[x] + tower.table[tower.index["up"]]) / 3
    torch.testing.assert_close(e[1], expected)
    with pytest.raises(ValueError, match=r"texts\[0\]: words \['jump'\]"):
        tower.tokenize(["jump left"])
    with pytest.raises(ValueError, match="context_length"):
        WordTower(WORDS, context_length=4).tokenize(["move left fast"])
    with pytest.raises(ValueError, match="vocabulary"):
        WordTower([])
    table = tower.table.clone()
    tower.table.mul_(0)
    tower.reset_parameters()  # the seed's table again
    torch.testing.assert_close(tower.table, table)


@pytest.mark.parametrize("similarity", [0.0, 0.35, 0.8, 1.0])
def test_word_tower_synonyms_sit_at_the_asked_cosine(similarity):
    plain = WordTower(WORDS, dim=32)
    tower = WordTower.with_synonyms(WORDS, 32, similarity)
    t = tower.table
    n = len(WORDS)
    torch.testing.assert_close(t[2 : 2 + n], plain.table[2 : 2 + n])  # the words stay
    for w in WORDS:
        a, b = t[tower.index[w]], t[tower.index[w + "'"]]
        torch.testing.assert_close(F.cosine_similarity(a, b, dim=0), torch.tensor(similarity),
                                   atol=1e-5, rtol=0)  # fmt: skip
        torch.testing.assert_close(a.norm(), b.norm())
    # a name in synonyms: its embedding at the same cosine structure as the words' (zero-shot
    # names share that much language with the seen ones)
    ids, syn = tower.tokenize(["move left"]), tower.tokenize(["move' left'"])
    e, f = (tower.encode_embeddings(tower.embed_tokens(i), i)[0] for i in (ids, syn))
    if similarity == 1.0:
        torch.testing.assert_close(e, f)
    else:
        assert F.cosine_similarity(e, f, dim=0) < 0.999
    assert tower.words[: n + 2] == plain.words  # ids of the words unchanged
    same = WordTower.with_synonyms(WORDS, 32, 1.0, suffix="")  # no synonyms: the plain tower
    assert same.words == plain.words and torch.equal(same.table, plain.table)


def test_word_tower_related_errors():
    with pytest.raises(ValueError, match="related: 'move'"):
        WordTower(WORDS, related={"move": ("left", 0.5)})  # not a new word
    with pytest.raises(ValueError, match="related: 'jump'"):
        WordTower(WORDS, related={"jump": ("hop", 0.5)})  # no such vocabulary word
    with pytest.raises(ValueError, match="cosine in"):
        WordTower(WORDS, related={"jump": ("move", 1.5)})
    with pytest.raises(ValueError, match="similarity must be 1"):
        WordTower.with_synonyms(WORDS, 8, 0.5, suffix="")


def test_prompt_learner_is_the_mean_of_context_and_name_words():
    torch.manual_seed(0)
    tower = WordTower(WORDS, dim=8)
    learner = PromptLearner(tower, ["move left", "move right fast"], num_context=3)
    out = learner()
    t = tower.table
    for i, name in enumerate(["move left", "move right fast"]):
        words = [t[tower.index[w]] for w in name.split()] + [t[tower.index["."]]]
        mean = (learner.context.sum(0) + sum(words)) / (3 + len(words))
        torch.testing.assert_close(out[i], F.normalize(mean, dim=-1))
    feats = torch.randn(4, 8)
    torch.testing.assert_close(learner.logits(feats), F.normalize(feats, dim=-1) @ out.T / 0.01)


def test_new_class_names_without_retraining_and_zero_shot_composition():
    torch.manual_seed(0)
    tower = WordTower(WORDS, dim=32)
    learner = PromptLearner(tower, ["move left", "move right"], num_context=2)
    before = learner()
    learner.set_class_names(["move up", "move right", "move left", "move down fast"])
    after = learner()
    torch.testing.assert_close(after[2], before[0])  # same name, same context: same embedding
    torch.testing.assert_close(after[1], before[1])
    assert learner.class_names[3] == "move down fast" and after.shape == (4, 32)
    # a feature that points at "move down fast" is classified as it, though never trained on
    assert int(learner.logits(after[3]).argmax()) == 3
    assert "num_classes=4" in repr(learner)


def test_gradients_reach_only_the_context_and_init_words():
    pytest.importorskip("open_clip")
    tower = _tiny_open_clip_tower()
    learner = PromptLearner(tower, ["dog", "chasing cat"], num_context=4)
    learner.train()
    assert not tower.training  # frozen tower stays in eval mode
    loss = learner().sum() + learner.logits(torch.randn(3, tower.embed_dim)).logsumexp(-1).sum()
    loss.backward()
    assert learner.context.grad is not None and learner.context.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in tower.parameters())
    assert [n for n, p in learner.named_parameters() if p.requires_grad] == ["context"]
    assert learner.no_weight_decay() == {"context"}
    init = PromptLearner(tower, ["dog"], num_context=None, init="a video of")
    ids = tower.tokenize(["a video of"])
    torch.testing.assert_close(init.context, tower.embed_tokens(ids)[0, 1:4])
    with pytest.raises(ValueError, match="num_context: expected 3"):
        PromptLearner(tower, ["dog"], num_context=5, init="a video of")
    long_name = " ".join(["dog"] * 20)  # open_clip truncates it to the context length (16)
    with pytest.raises(ValueError, match="do not fit the tower's context length 16"):
        PromptLearner(tower, ["cat", long_name], num_context=4)


def test_open_clip_plumbing_equals_encode_text():
    open_clip = pytest.importorskip("open_clip")
    model, tokenizer = _tiny_open_clip()
    tower = OpenCLIPTextTower(model, tokenizer)
    learner = PromptLearner(tower, ["dog", "red car"], num_context=3)
    x_id = int(tokenizer(["X"])[0, 1])
    with torch.no_grad():
        learner.context.copy_(model.token_embedding.weight[x_id].expand(3, -1))
        ref = model.encode_text(tokenizer(["X X X dog.", "X X X red car."]))
    torch.testing.assert_close(learner(), F.normalize(ref, dim=-1), rtol=1e-5, atol=1e-5)
    assert tower.embed_dim == ref.shape[-1] and isinstance(open_clip.__version__, str)


def test_errors():
    tower = WordTower(WORDS, dim=8)
    with pytest.raises(TypeError, match="tower"):
        PromptLearner(torch.nn.Linear(2, 2), ["move"])
    with pytest.raises(ValueError, match="class_names"):
        PromptLearner(tower, [])
    with pytest.raises(ValueError, match="num_context"):
        PromptLearner(tower, ["move"], num_context=0)
    with pytest.raises(ValueError, match="temperature"):
        PromptLearner(tower, ["move"], temperature=0.0)
    with pytest.raises(ValueError, match="context_length 6"):
        PromptLearner(WordTower(WORDS, context_length=6), ["move"], num_context=4)
    with pytest.raises(TypeError, match="open_clip"):
        OpenCLIPTextTower(torch.nn.Linear(2, 2), None)


def _tiny_open_clip():
    from open_clip.model import CLIP
    from open_clip.tokenizer import SimpleTokenizer

    torch.manual_seed(0)
    model = CLIP(
        embed_dim=16,
        vision_cfg={"layers": 1, "width": 64, "head_width": 32, "patch_size": 16, "image_size": 32},
        text_cfg={"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
    )
    return model.eval(), SimpleTokenizer(context_length=16)


def _tiny_open_clip_tower():
    return OpenCLIPTextTower(*_tiny_open_clip())


def test_prompt_learner_compiles():
    torch.manual_seed(0)
    learner = PromptLearner(WordTower(WORDS, dim=8), ["move left", "move up"], num_context=2)
    feats = torch.randn(3, 8)
    torch._dynamo.reset()
    eager = learner.logits(feats)
    compiled = torch.compile(lambda x: learner.logits(x), fullgraph=True)(feats)
    torch.testing.assert_close(compiled, eager, rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------- GroupedPromptLearner


def _repro_reference(learner, tower):
    """RePro's ``PromptLearner_Grouped.forward`` + ``reset_classifier_weights``, transcribed:
    for each group, ``[prefix, ctx, suffix]`` per role through the text encoder, unit features,
    subject and object concatenated and divided by sqrt(2)."""
    ids = learner.token_ids
    emb = tower.embed_tokens(ids)
    L = learner.num_context
    prefix, suffix = emb[:, :1], emb[:, 1 + L :]
    groups = []
    for g in range(learner.num_groups):
        roles = []
        for r in range(learner.num_roles):
            ctx = learner.context[g, r][None].expand(ids.shape[0], -1, -1)
            x = torch.cat([prefix, ctx, suffix], 1)
            roles.append(F.normalize(tower.encode_embeddings(x, ids), dim=-1))
        groups.append(torch.cat(roles, -1) / len(roles) ** 0.5)
    return torch.stack(groups)


@pytest.mark.parametrize("subject_object", [True, False])
def test_grouped_prompts_equal_repros_transcribed_forward(subject_object):
    torch.manual_seed(0)
    tower = WordTower(WORDS, dim=8, context_length=20)
    learner = GroupedPromptLearner(tower, ["move left", "move right fast", "up"],
                                   subject_object=subject_object, suffix="")  # fmt: skip
    assert learner.num_context == 10 and learner.context.shape == (6, 1 + subject_object, 10, 8)
    out = learner()
    torch.testing.assert_close(out, _repro_reference(learner, tower))
    assert out.shape == (6, 3, 8 * (1 + subject_object))
    torch.testing.assert_close(out.norm(dim=-1), torch.ones(6, 3))
    # a row is scored against its group's set
    feats, group = torch.randn(5, out.shape[-1]), torch.tensor([0, 5, 3, 3, 1])
    expected = torch.stack([F.normalize(feats[i], dim=-1) @ out[group[i]].T for i in range(5)])
    torch.testing.assert_close(learner.logits(feats, group=group), expected / 0.01)


def test_grouped_prompts_gradients_new_names_compile_and_errors():
    torch.manual_seed(0)
    tower = WordTower(WORDS, dim=8, context_length=20)
    learner = GroupedPromptLearner(tower, ["move left", "move up"], num_context=3, num_groups=2)
    learner.logits(torch.randn(4, 16), group=torch.tensor([0, 1, 1, 0])).sum().backward()
    assert learner.context.grad is not None and learner.context.grad.abs().sum() > 0
    assert all(p.grad is None for p in tower.parameters())
    before = learner()
    learner.set_class_names(["move up", "move left", "move down fast"])
    after = learner()
    torch.testing.assert_close(after[:, 1], before[:, 0])  # same name, same contexts
    assert after.shape == (2, 3, 16) and "num_groups=2" in repr(learner)
    with pytest.raises(ValueError, match="group"):
        learner.logits(torch.randn(4, 16))
    with pytest.raises(ValueError, match="group"):
        learner.logits(torch.randn(2, 16), group=torch.tensor([0, 2]))
    with pytest.raises(ValueError, match="num_groups"):
        GroupedPromptLearner(tower, ["move"], num_groups=0)
    # init words start every group's and role's context
    init = GroupedPromptLearner(tower, ["move"], None, num_groups=2, init="move left")
    torch.testing.assert_close(init.context[1, 1], tower.table[[tower.index["move"],
                                                                tower.index["left"]]])  # fmt: skip
    # double precision gradients and compile == eager
    l64 = GroupedPromptLearner(WordTower(WORDS, dim=4).double(), ["move left"], num_context=2,
                               num_groups=2).double()  # fmt: skip
    x = torch.randn(3, 8, dtype=torch.float64, requires_grad=True)
    grp = torch.tensor([1, 0, 1])
    assert torch.autograd.gradcheck(lambda f: l64.logits(f, group=grp), (x,))
    feats = torch.randn(4, 16)
    grp4 = torch.tensor([0, 1, 1, 0])
    torch._dynamo.reset()
    eager = learner.logits(feats, group=grp4)
    compiled = torch.compile(lambda f: learner.logits(f, group=grp4), fullgraph=True)(feats)
    torch.testing.assert_close(compiled, eager, rtol=1e-4, atol=1e-5)


def test_using_class_names_restores_the_classes_even_on_error():
    tower = WordTower(["move", "left", "right", "up"], dim=16)
    learner = PromptLearner(tower, ["move left", "move right"], num_context=2)
    before = learner().detach()
    with learner.using_class_names(["move up"]) as same:
        assert same is learner and learner().shape == (1, 16)
    torch.testing.assert_close(learner(), before)
    with pytest.raises(RuntimeError, match="boom"), learner.using_class_names(["up"]):
        raise RuntimeError("boom")
    assert learner.class_names == ("move left", "move right")
    with pytest.raises(ValueError, match="class_names"), learner.using_class_names([]):
        pass
    assert learner.class_names == ("move left", "move right")
