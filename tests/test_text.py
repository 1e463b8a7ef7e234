"""Prompt templates and open_clip text embeddings (random weights: no download)."""

import sys

import pytest
import torch

from dsgg_layers import text
from dsgg_layers.text import (
    arn_object_prompts,
    arn_prompts,
    class_words,
    encode_prompts,
    mosa_prompts,
    tr2_prompt,
    tr2_prompts,
    tr2_sentences,
)
from dsgg_layers.vocab import OBJECT_CLASSES, PREDICATES


def test_mosa_prompts_cover_every_predicate_and_object():
    prompts = mosa_prompts()
    assert len(prompts) == 26 and all(len(p) == 35 for p in prompts)
    assert prompts[PREDICATES.index("drinking_from")][
        OBJECT_CLASSES.index("cup/glass/bottle") - 1
    ] == ("a person drinking from a cup or glass or bottle")
    # spatial predicates read object -> person, as Action Genome's triplets
    assert (
        prompts[PREDICATES.index("above")][OBJECT_CLASSES.index("light") - 1]
        == "a light above a person"
    )
    assert prompts[PREDICATES.index("looking_at")][OBJECT_CLASSES.index("laptop") - 1] == (
        "a person looking at a laptop"
    )


def test_arn_prompts_follow_the_three_templates():
    p = arn_prompts()
    assert [len(p[g]) for g in ("attention", "spatial", "contacting")] == [3, 6, 17]
    assert (
        p["attention"][1][OBJECT_CLASSES.index("door") - 1]
        == "The person is not looking at the door"
    )
    assert p["spatial"][0][0] == "The bag is above the person"
    assert p["contacting"][-1][0] == "a photo of a person maybe writing on the bag"
    assert arn_object_prompts()[:2] == [
        "a photo of person and a bag",
        "a photo of person and a bed",
    ]


def test_tr2_and_class_words():
    assert (
        tr2_prompt("person", "lying_on", "sofa/couch")
        == "a photo of a person lying on a sofa or couch"
    )
    assert tr2_prompt("person", "beneath", "floor") == "a photo of a floor beneath a person"
    assert tr2_prompt("person", "looking_at", "window") == "a photo of a person looking at a window"
    assert class_words()[:3] == ["looking at", "not looking at", "unsure about"]
    assert len(set(class_words())) == 26
    with pytest.raises(ValueError, match="predicate: 'flying' is not an Action Genome predicate"):
        tr2_prompt("person", "flying", "bed")
    with pytest.raises(ValueError, match="objects: 'dog' is not an Action Genome object class"):
        mosa_prompts(["dog"])
    with pytest.raises(ValueError, match="names: 'dog' is neither"):
        class_words(["dog"])


def test_tr2_prompts_code_wording_and_template():
    table = tr2_prompts()
    assert len(table) == 36 and all(len(row) == 26 for row in table)
    row = table[OBJECT_CLASSES.index("cup/glass/bottle")]
    by = dict(zip(PREDICATES, row, strict=True))
    # the public code's wording, sentence for sentence
    assert by["looking_at"] == "a photo of a person looking at a cup or glass or bottle"
    assert by["unsure"] == "a photo of a person unsure a cup or glass or bottle"
    for p, phrase in [("above", "above"), ("beneath", "beneath"), ("in_front_of", "in front of"),
                      ("behind", "behind"), ("on_the_side_of", "on the side of")]:  # fmt: skip
        assert by[p] == f"a photo of a cup or glass or bottle {phrase} a person"
    assert by["in"] == "a photo of a person in a cup or glass or bottle"  # person-first
    assert by["other_relationship"] == "a photo of a person and a cup or glass or bottle"
    assert (
        by["have_it_on_the_back"]
        == "a photo of a person having a cup or glass or bottle on the back"
    )
    assert by["not_contacting"] == "a photo of a person not contacting a cup or glass or bottle"
    assert by["drinking_from"] == "a photo of a person drinking from a cup or glass or bottle"
    assert table[OBJECT_CLASSES.index("paper/notebook")][PREDICATES.index("holding")] == (
        "a photo of a person holding a notebook or paper"
    )
    assert all(len(set(r)) == 26 for r in table)  # no two predicates share a sentence
    # the template: tr2_prompt's sentence in every cell
    tpl = tr2_prompts(["bed", "floor"], wording="template")
    assert tpl[1] == [tr2_prompt("person", p, "floor") for p in PREDICATES]
    assert tpl[0][PREDICATES.index("in")] == "a photo of a bed in a person"
    with pytest.raises(ValueError, match="wording: expected one of"):
        tr2_prompts(wording="paper")
    with pytest.raises(ValueError, match="objects: 'dog' is not an Action Genome object class"):
        tr2_prompts(["dog"])
    with pytest.raises(TypeError, match="objects: expected a sequence of names"):
        tr2_prompts("bed")


def test_tr2_sentences_is_the_encoded_table(tmp_path):
    objects = ["bed", "door", "shoe"]
    table = tr2_sentences(objects, cache_dir=tmp_path)
    assert table.shape == (3, 26, 512) and table.dtype == torch.float32
    flat = encode_prompts([s for row in tr2_prompts(objects) for s in row], cache_dir=tmp_path)
    torch.testing.assert_close(table[1, 5], flat[26 + 5])  # row o, column p
    torch.testing.assert_close(table.norm(dim=-1), torch.ones(3, 26))
    assert not torch.equal(table, tr2_sentences(objects, wording="template", cache_dir=tmp_path))


def test_encode_normalised_deterministic_and_ensembled(tmp_path):
    sentences = ["a person holding a cup", "a bed beneath a person", "a person sitting on a chair"]
    e = encode_prompts(sentences, cache_dir=tmp_path)
    assert e.shape == (3, 512) and e.dtype == torch.float32
    torch.testing.assert_close(e.norm(dim=1), torch.ones(3))
    assert not torch.allclose(e[0], e[1])
    # random weights come from a fixed seed: a fresh tower gives the same embeddings
    text.open_clip_text_tower.cache_clear()
    torch.testing.assert_close(encode_prompts(sentences, cache=False), e)
    # a list of sentences is the normalised mean of its sentences
    ens = encode_prompts([sentences[:2]], cache_dir=tmp_path)
    torch.testing.assert_close(ens[0], torch.nn.functional.normalize(e[:2].mean(0), dim=0))


def test_cache_is_used_and_keyed_by_model_and_tag(tmp_path, monkeypatch):
    first = encode_prompts(["a person wiping a table"], cache_dir=tmp_path)
    files = list(tmp_path.iterdir())
    assert len(files) == 1 and "ViT-B-32" in files[0].name

    def no_model(*args):
        raise AssertionError("the text tower was built although the cache has the prompt")

    monkeypatch.setattr(text, "open_clip_text_tower", no_model)
    torch.testing.assert_close(
        encode_prompts(["a person wiping a table"], cache_dir=tmp_path), first
    )
    with pytest.raises(AssertionError, match="text tower was built"):
        encode_prompts(["a new sentence"], cache_dir=tmp_path)
    # another pretrained tag or model is another cache file
    a = text._cache_path(tmp_path, "ViT-B-32", None)
    b = text._cache_path(tmp_path, "ViT-B-32", "openai")
    c = text._cache_path(tmp_path, "ViT-B-16", None)
    assert len({a, b, c}) == 3


def test_missing_open_clip_names_the_extra(monkeypatch, tmp_path):
    text.open_clip_text_tower.cache_clear()
    monkeypatch.setitem(sys.modules, "open_clip", None)
    with pytest.raises(
        ImportError, match=r"optional 'clip' extra: pip install 'dsgg-layers\[clip\]'"
    ):
        encode_prompts(["anything"], cache_dir=tmp_path)
    text.open_clip_text_tower.cache_clear()


def test_errors(tmp_path):
    with pytest.raises(ValueError, match="prompts: expected at least one prompt"):
        encode_prompts([], cache_dir=tmp_path)
    with pytest.raises(TypeError, match="prompts: expected a sequence of prompts, got str"):
        encode_prompts("a sentence", cache_dir=tmp_path)
    with pytest.raises(TypeError, match=r"prompts\[1\]: expected a string or a list of strings"):
        encode_prompts(["ok", 3], cache_dir=tmp_path)
    with pytest.raises(ValueError, match=r"prompts\[0\]: expected at least one sentence"):
        encode_prompts([[]], cache_dir=tmp_path)


def test_static_embedding_tower_has_real_neighbours_offline():
    pytest.importorskip("wordllama")
    from dsgg_layers.prompts import PromptLearner
    from dsgg_layers.text import StaticEmbeddingTower

    tower = StaticEmbeddingTower.from_wordllama()
    assert tower.width == tower.embed_dim == 256 and "dim=256" in repr(tower)
    e = tower.encode(["holding", "carrying", "sitting on", "eating", "drinking from"])
    assert e[0] @ e[1] > e[0] @ e[2]  # holding is nearer carrying than sitting on
    assert e[3] @ e[4] > e[3] @ e[2]
    torch.testing.assert_close(e.norm(dim=-1), torch.ones(5))
    torch.testing.assert_close(StaticEmbeddingTower.from_wordllama().encode(["holding"]), e[:1])
    # the mean of the tokens' vectors, without the tokenizer's start token (written out)
    ids = tower.tokenizer.encode("a person holding a cup").ids[1:]
    want = torch.nn.functional.normalize(tower.table[torch.tensor(ids) + 2].mean(0), dim=0)
    torch.testing.assert_close(tower.encode(["a person holding a cup"])[0], want)
    # a text tower for prompt learning: the context takes part, gradients reach it only
    learner = PromptLearner(tower, ["holding a cup", "sitting on a chair"], num_context=4)
    learner().sum().backward()
    assert learner.context.grad.abs().sum() > 0 and not tower.table.requires_grad
    with pytest.raises(ValueError, match="context_length"):
        tower.tokenize(["word " * 40])


def test_encode_prompts_with_wordllama_caches_and_averages(tmp_path):
    pytest.importorskip("wordllama")
    from dsgg_layers.text import StaticEmbeddingTower

    e = encode_prompts(["a person holding a cup", ["a bed", "a sofa"]], model="wordllama",
                       cache_dir=tmp_path)  # fmt: skip
    tower = StaticEmbeddingTower.from_wordllama()
    torch.testing.assert_close(e[0], tower.encode(["a person holding a cup"])[0])
    pair = tower.encode(["a bed", "a sofa"]).mean(0)
    torch.testing.assert_close(e[1], torch.nn.functional.normalize(pair, dim=0))
    assert list(tmp_path.glob("wordllama-*.pt"))  # cached like CLIP's


def test_static_embedding_tower_errors():
    from dsgg_layers.text import StaticEmbeddingTower

    with pytest.raises(ValueError, match="table"):
        StaticEmbeddingTower(torch.zeros(0, 4), object())
    with pytest.raises(TypeError, match="table"):
        StaticEmbeddingTower(torch.zeros(3, 4, dtype=torch.long), object())
