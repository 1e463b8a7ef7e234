"""Prompt templates of the papers, and their CLIP text embeddings (open_clip, cached on disk).

The only module of the library that imports ``open_clip`` (lazily, when text is encoded; install
it with the ``clip`` extra: ``pip install "dsgg-layers[clip]"``).

**Templates** (the object and predicate words are natural phrases: [`PREDICATE_PHRASES`][],
[`OBJECT_PHRASES`][]):

- MoSA (*MoSA: Motion-Guided Semantic Alignment for Dynamic Scene Graph Generation*,
  arXiv:2604.19631, Sec. 2.4): "textual descriptions for all subject-relationship-object pairs";
  [`mosa_prompts`][] gives, for each predicate, the sentence with every object class
  ("a person holding a cup or glass or bottle", "a bed beneath a person", ...), to be averaged
  per predicate into the ``(26, E)`` matrix of the Action Semantic Matcher.
- ARN (*End-to-End Entity-Predicate Association Reasoning for Dynamic Scene Graph
  Generation*, Sec. 3.2): per predicate group, "The person is [attention] at the [object]",
  "The [object] is [spatial] the person", "a photo of a person maybe [contacting] the [object]"
  (one embedding per triplet category, i.e. predicate and object), and "a photo of person and
  a [object]" for the object classes: [`arn_prompts`][], [`arn_object_prompts`][].
- TR² (*Cross-Modality Time-Variant Relation Learning for Generating Dynamic Scene Graphs*,
  ICRA 2023, arXiv:2305.08522, Sec. III-C): ``"a photo of a [subject] [predicate] a [object]"``
  for a labelled triplet, spatial ones in Action Genome's object -> person direction:
  [`tr2_prompt`][]; the whole ``(objects, predicates)`` table of sentences in the public
  code's wording or the plain template's: [`tr2_prompts`][], encoded by
  [`tr2_sentences`][].
- UASAN (*Open-Vocabulary Video Scene Graph Generation via Union-aware Semantic Alignment*,
  Sec. 3.3): the class words themselves, to follow learnable context tokens:
  [`class_words`][].

**Encoding.** [`encode_prompts`][] runs an open_clip text tower over the prompts in batches and
returns L2-normalised ``(C, E)`` embeddings; a prompt given as a list of sentences is encoded
sentence by sentence and averaged (prompt ensembling), then normalised again. Embeddings are
cached on disk, keyed by model name, pretrained tag and prompt text, so a prompt is encoded once
per model. ``pretrained=None`` builds the tower with random weights from a fixed seed (offline,
deterministic: the tests use it); pass ``pretrained="openai"`` (or another open_clip tag) for
real embeddings.
"""

from __future__ import annotations

import functools
import hashlib
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dsgg_layers._checks import check_choice, check_positive, check_tensor
from dsgg_layers._ops import content_mean, pack_token_rows
from dsgg_layers.vocab import OBJECT_CLASSES, PREDICATE_GROUP_OF, PREDICATE_GROUPS, PREDICATES

__all__ = [
    "OBJECT_PHRASES",
    "PREDICATE_PHRASES",
    "StaticEmbeddingTower",
    "arn_object_prompts",
    "arn_prompts",
    "class_words",
    "default_cache_dir",
    "encode_prompts",
    "mosa_prompts",
    "tr2_prompt",
    "tr2_prompts",
    "tr2_sentences",
]

PREDICATE_PHRASES: MappingProxyType[str, str] = MappingProxyType(
    {p: p.replace("_", " ") for p in PREDICATES}
    | {
        "unsure": "unsure about",
        "in": "in",
        "have_it_on_the_back": "having on the back",
        "not_contacting": "not contacting",
        "other_relationship": "somehow related to",
        "carrying": "carrying",
    }
)
"""A natural phrase for each predicate ("looking at", "in front of", "drinking from", ...)."""

OBJECT_PHRASES: MappingProxyType[str, str] = MappingProxyType(
    {c: c.replace("/", " or ") for c in OBJECT_CLASSES}
)
"""A natural phrase for each object class ("cup or glass or bottle", "sofa or couch", ...)."""

# ARN's attention template reads "The person is [p] at the [object]": the predicate without "at".
_ARN_ATTENTION = {"looking_at": "looking", "not_looking_at": "not looking", "unsure": "unsure"}


def _a(phrase: str) -> str:
    """The phrase with its indefinite article."""
    return ("an " if phrase[:1].lower() in "aeiou" else "a ") + phrase


def _names(names: object, what: str) -> list[str]:
    """``names`` as a non-empty list of str (one str is refused: it would be one name a letter)."""
    if isinstance(names, str) or not isinstance(names, Sequence):
        raise TypeError(f"{what}: expected a sequence of names, got {names!r}")
    out = list(names)
    if not out:
        raise ValueError(f"{what}: expected at least one name, got none")
    for n in out:
        if not isinstance(n, str):
            raise TypeError(f"{what}: expected str names, got {n!r}")
    return out


def _objects(objects: Sequence[str] | None) -> list[str]:
    names = list(OBJECT_CLASSES[1:]) if objects is None else _names(objects, "objects")
    for name in names:
        if name not in OBJECT_PHRASES:
            raise ValueError(f"objects: {name!r} is not an Action Genome object class")
    return names


def _sentence(subject: str, predicate: str, obj: str, lead: str = "") -> str:
    """Subject-predicate-object in Action Genome's direction (spatial: object -> person)."""
    if PREDICATE_GROUP_OF[predicate] == "spatial" and subject == "person":
        subject, obj = obj, subject
    return f"{lead}{_a(OBJECT_PHRASES.get(subject, subject))} {PREDICATE_PHRASES[predicate]} " + _a(
        OBJECT_PHRASES.get(obj, obj)
    )


def mosa_prompts(objects: Sequence[str] | None = None) -> list[list[str]]:
    """MoSA's triplet descriptions: for each of the 26 predicates, one sentence per object class.

    Args:
        objects: the object classes to describe (default: all but ``person``).

    Returns:
        26 lists (in [`PREDICATES`][dsgg_layers.vocab.PREDICATES] order) of ``len(objects)``
        sentences; [`encode_prompts`][] averages each list into one embedding.

    Raises:
        ValueError: an object is not an Action Genome class.

    Examples:
        >>> prompts = mosa_prompts(["cup/glass/bottle", "bed"])
        >>> prompts[PREDICATES.index("holding")]
        ['a person holding a cup or glass or bottle', 'a person holding a bed']
        >>> prompts[PREDICATES.index("beneath")][1]
        'a bed beneath a person'
    """
    names = _objects(objects)
    return [[_sentence("person", p, o) for o in names] for p in PREDICATES]


def arn_prompts(objects: Sequence[str] | None = None) -> dict[str, list[list[str]]]:
    """ARN's triplet prompts, per predicate group: one sentence per (predicate, object).

    Args:
        objects: the object classes (default: all but ``person``).

    Returns:
        ``{"attention": [...], "spatial": [...], "contacting": [...]}``; each a list over the
        group's predicates of a list over ``objects`` of sentences. Flatten a group's lists for
        one embedding per triplet category, as ARN's classifier initialisation uses them.

    Examples:
        >>> p = arn_prompts(["cup/glass/bottle"])
        >>> p["attention"][0][0]
        'The person is looking at the cup or glass or bottle'
        >>> p["spatial"][2][0]
        'The cup or glass or bottle is in front of the person'
        >>> p["contacting"][PREDICATES.index("drinking_from") - 9][0]
        'a photo of a person maybe drinking from the cup or glass or bottle'
    """
    names = _objects(objects)
    templates = {
        "attention": lambda p, o: f"The person is {_ARN_ATTENTION[p]} at the {o}",
        "spatial": lambda p, o: f"The {o} is {PREDICATE_PHRASES[p]} the person",
        "contacting": lambda p, o: f"a photo of a person maybe {PREDICATE_PHRASES[p]} the {o}",
    }
    out = {}
    for group, span in PREDICATE_GROUPS.items():
        fill = templates[group]
        out[group] = [[fill(p, OBJECT_PHRASES[o]) for o in names] for p in PREDICATES[span]]
    return out


def arn_object_prompts(objects: Sequence[str] | None = None) -> list[str]:
    """ARN's object prompts, "a photo of person and a [object]".

    Examples:
        >>> arn_object_prompts(["bed", "shoe"])
        ['a photo of person and a bed', 'a photo of person and a shoe']
    """
    return [f"a photo of person and a {OBJECT_PHRASES[o]}" for o in _objects(objects)]


def tr2_prompt(subject: str, predicate: str, obj: str) -> str:
    """TR²'s prompted sentence of a triplet, ``"a photo of a [subject] [predicate] a [object]"``.

    Spatial predicates read in Action Genome's direction (the object is the subject).

    Args:
        subject: the subject class (``"person"``).
        predicate: a predicate of [`PREDICATES`][dsgg_layers.vocab.PREDICATES].
        obj: the object class.

    Raises:
        ValueError: the predicate is unknown.

    Examples:
        >>> tr2_prompt("person", "sitting_on", "bed")
        'a photo of a person sitting on a bed'
        >>> tr2_prompt("person", "in_front_of", "television")
        'a photo of a television in front of a person'
    """
    if predicate not in PREDICATE_PHRASES:
        raise ValueError(f"predicate: {predicate!r} is not an Action Genome predicate")
    return _sentence(subject, predicate, obj, lead="a photo of ")


# The public code's wording (its sentence generator): its own phrase for a few predicates and
# objects, "a" before every noun, object-first for five of the six spatial predicates ("in"
# stays person-first) and "having a [object] on the back".
_TR2_CODE_PREDICATES = {"other_relationship": "and"}
_TR2_CODE_OBJECTS = {"paper/notebook": "notebook or paper"}
_TR2_CODE_OBJECT_FIRST = ("above", "beneath", "in_front_of", "behind", "on_the_side_of")


def _tr2_code_sentence(predicate: str, obj: str) -> str:
    o = _TR2_CODE_OBJECTS.get(obj, OBJECT_PHRASES[obj])
    if predicate == "have_it_on_the_back":
        return f"a photo of a person having a {o} on the back"
    p = _TR2_CODE_PREDICATES.get(predicate, predicate.replace("_", " "))
    if predicate in _TR2_CODE_OBJECT_FIRST:
        return f"a photo of a {o} {p} a person"
    return f"a photo of a person {p} a {o}"


def tr2_prompts(
    objects: Sequence[str] | None = None, *, wording: Literal["code", "template"] = "code"
) -> list[list[str]]:
    """TR²'s prompted sentences for every (object class, predicate): the sentence table.

    ``wording="code"`` (default) is the sentence generator of the public code, which produced
    the published numbers: ``"a photo of a person <predicate> a <object>"``, object-first
    (``"a photo of a <object> <predicate> a person"``) for ``above``, ``beneath``,
    ``in_front_of``, ``behind`` and ``on_the_side_of`` but person-first for ``in``,
    ``other_relationship`` rendered as "and", ``"a photo of a person having a <object> on the
    back"`` for ``have_it_on_the_back``, and "a" before every noun. ``wording="template"`` is
    the paper's template as [`tr2_prompt`][] fills it (the library's predicate phrases,
    "a"/"an", every spatial predicate object-first).

    Args:
        objects: the object classes, one row each (default: all 36 of
            [`OBJECT_CLASSES`][dsgg_layers.vocab.OBJECT_CLASSES], so that row ``i`` is object label
            ``i``).
        wording: ``"code"`` or ``"template"``.

    Returns:
        ``len(objects)`` lists of 26 sentences
        (in [`PREDICATES`][dsgg_layers.vocab.PREDICATES] order).

    Raises:
        TypeError: ``objects`` is a str or holds a non-str.
        ValueError: an object is not an Action Genome class, or ``wording`` is unknown.

    Examples:
        >>> table = tr2_prompts(["bed", "paper/notebook"])
        >>> table[0][PREDICATES.index("beneath")], table[0][PREDICATES.index("in")]
        ('a photo of a bed beneath a person', 'a photo of a person in a bed')
        >>> table[1][PREDICATES.index("other_relationship")]
        'a photo of a person and a notebook or paper'
        >>> tr2_prompts(["bed"], wording="template")[0][PREDICATES.index("in")]
        'a photo of a bed in a person'
    """
    check_choice(wording, "wording", ("code", "template"))
    names = list(OBJECT_CLASSES) if objects is None else _names(objects, "objects")
    for name in names:
        if name not in OBJECT_PHRASES:
            raise ValueError(f"objects: {name!r} is not an Action Genome object class")
    if wording == "code":
        return [[_tr2_code_sentence(p, o) for p in PREDICATES] for o in names]
    return [[tr2_prompt("person", p, o) for p in PREDICATES] for o in names]


def tr2_sentences(
    objects: Sequence[str] | None = None,
    *,
    wording: Literal["code", "template"] = "code",
    **encode: Any,
) -> Tensor:
    """The ``(O, 26, E)`` CLIP embeddings of [`tr2_prompts`][], encoded once and cached.

    Row ``o`` embeds the 26 sentences of object class ``o``: the table TR²'s guidance
    ([`TemporalDifferenceGuidance`][dsgg_layers.message.TemporalDifferenceGuidance], one group's
    columns each: ``table[:, PREDICATE_GROUPS[group]]``) and sentence classifier
    ([`SentenceClassifier`][dsgg_layers.semantic.SentenceClassifier]) read. Embeddings are
    L2-normalised ([`encode_prompts`][]); the public code keeps CLIP's unnormalised ``encode_text``
    output, whose scale its learned projections absorb.

    Args:
        objects: as [`tr2_prompts`][].
        wording: as [`tr2_prompts`][].
        **encode: passed to [`encode_prompts`][] (``model``, ``pretrained``, ``cache_dir``,
            ``device``, ...).

    Returns:
        ``(O, 26, E)`` float32.

    Raises:
        ImportError, TypeError, ValueError: as [`tr2_prompts`][] and [`encode_prompts`][].

    Examples:
        >>> import tempfile
        >>> table = tr2_sentences(["bed", "door"], cache_dir=tempfile.mkdtemp())
        >>> table.shape
        torch.Size([2, 26, 512])
    """
    table = tr2_prompts(objects, wording=wording)
    flat = encode_prompts([s for row in table for s in row], **encode)
    return flat.view(len(table), len(PREDICATES), flat.shape[-1])


def class_words(names: Sequence[str] | None = None) -> list[str]:
    """The class words of predicates or objects (UASAN's prompt learner puts them after its
    learnable context tokens).

    Args:
        names: predicates or object classes (default: the 26 predicates).

    Raises:
        TypeError: ``names`` is a str or holds a non-str.
        ValueError: ``names`` is empty, or a name is neither a predicate nor an object class.

    Examples:
        >>> class_words(["looking_at", "sofa/couch"])
        ['looking at', 'sofa or couch']
    """
    names = list(PREDICATES) if names is None else _names(names, "names")
    out = []
    for n in names:
        phrase = PREDICATE_PHRASES.get(n, OBJECT_PHRASES.get(n))
        if phrase is None:
            raise ValueError(f"names: {n!r} is neither an Action Genome predicate nor object class")
        out.append(phrase)
    return out


# ----------------------------------------------------------------------------------- encoding


def default_cache_dir() -> Path:
    """Where embeddings are cached: ``$DSGG_LAYERS_CACHE/text``, else
    ``~/.cache/dsgg_layers/text``.

    Examples:
        >>> default_cache_dir().name
        'text'
    """
    base = os.environ.get("DSGG_LAYERS_CACHE")
    return (Path(base) if base else Path.home() / ".cache" / "dsgg_layers") / "text"


def _open_clip() -> Any:
    try:
        import open_clip
    except ImportError as e:
        raise ImportError(
            "encode_prompts needs open_clip, which is the optional 'clip' extra: "
            "pip install 'dsgg-layers[clip]' (it needs a torchvision that matches your torch)"
        ) from e
    return open_clip


@functools.lru_cache(maxsize=4)
def open_clip_text_tower(model: str, pretrained: str | None) -> tuple[Any, Any]:
    """The open_clip model and tokenizer (random weights from seed 0 without ``pretrained``)."""
    open_clip = _open_clip()
    with torch.random.fork_rng():
        torch.manual_seed(0)
        clip = open_clip.create_model(model, pretrained=pretrained)
    return clip.eval(), open_clip.get_tokenizer(model)


def _read_cache(path: Path) -> dict[str, Tensor]:
    """The cached embeddings, or none (with a warning) when the file is corrupt: they are then
    encoded again and the file rewritten."""
    try:
        stored = torch.load(path, weights_only=True)
        ok = isinstance(stored, dict) and all(
            isinstance(k, str)
            and isinstance(v, Tensor)
            and v.dim() == 1
            and bool(v.isfinite().all())
            for k, v in stored.items()
        )
    except Exception as e:
        ok, reason = False, f"{type(e).__name__}: {e}"
    else:
        reason = "not a dict of finite embedding vectors"
    if ok:
        return stored
    warnings.warn(
        f"text embedding cache {path} is corrupt ({reason}); encoding again and rewriting it",
        RuntimeWarning,
        stacklevel=3,
    )
    return {}


def _cache_path(cache_dir: Path, model: str, pretrained: str | None) -> Path:
    tag = hashlib.sha256(f"{model}|{pretrained}".encode()).hexdigest()[:16]
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in model)
    return cache_dir / f"{safe}-{pretrained or 'random'}-{tag}.pt"


def encode_prompts(
    prompts: Sequence[str | Sequence[str]],
    *,
    model: str = "ViT-B-32",
    pretrained: str | None = None,
    cache_dir: str | Path | None = None,
    cache: bool = True,
    batch_size: int = 256,
    device: torch.device | str = "cpu",
) -> Tensor:
    """L2-normalised CLIP text embeddings of prompts, one row per prompt (or prompt ensemble).

    Args:
        prompts: ``C`` items, each a sentence or a list of sentences (averaged, then normalised).
        model: an open_clip model name (MoSA and TR² use ``"ViT-B-32"``), or ``"wordllama"``:
            WordLlama's static token vectors, mean-pooled ([`StaticEmbeddingTower`][], the
            ``text`` extra): offline, with real semantics, 256 wide (``pretrained`` unused).
        pretrained: an open_clip pretrained tag (``"openai"``, ...), or ``None`` for random
            weights from a fixed seed (offline; for tests).
        cache_dir: where to cache embeddings (default [`default_cache_dir`][]).
        cache: read and write the cache.
        batch_size: sentences per forward pass of the text tower.
        device: where to run the text tower.

    Returns:
        ``(C, E)`` float32 on the CPU, each row of norm 1.

    Raises:
        ImportError: open_clip is not installed (the message names the ``clip`` extra).
        TypeError: a prompt is neither a string nor a list of strings.
        ValueError: ``prompts`` or a prompt ensemble is empty.

    Examples:
        >>> import tempfile
        >>> e = encode_prompts(["a person holding a cup", ["a bed", "a sofa"]],
        ...                    cache_dir=tempfile.mkdtemp())
        >>> e.shape, torch.allclose(e.norm(dim=1), torch.ones(2))
        (torch.Size([2, 512]), True)
    """
    check_positive(batch_size, "batch_size")
    if isinstance(prompts, str) or not isinstance(prompts, Sequence):
        raise TypeError(f"prompts: expected a sequence of prompts, got {type(prompts).__name__}")
    if len(prompts) == 0:
        raise ValueError("prompts: expected at least one prompt, got none")
    groups: list[list[str]] = []
    for i, p in enumerate(prompts):
        items = [p] if isinstance(p, str) else list(p) if isinstance(p, Sequence) else None
        if items is None or not all(isinstance(s, str) for s in items):
            raise TypeError(f"prompts[{i}]: expected a string or a list of strings, got {p!r}")
        if not items:
            raise ValueError(f"prompts[{i}]: expected at least one sentence, got an empty list")
        groups.append(items)
    sentences = list(dict.fromkeys(s for g in groups for s in g))
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = _cache_path(folder, model, pretrained)
    stored: dict[str, Tensor] = {}
    if cache and path.is_file():
        stored = _read_cache(path)
    missing = [s for s in sentences if s not in stored]
    if missing:
        if model == "wordllama":
            stored.update(zip(missing, StaticEmbeddingTower.from_wordllama().encode(missing),
                              strict=True))  # fmt: skip
        else:
            clip, tokenizer = open_clip_text_tower(model, pretrained)
            clip = clip.to(device)
            with torch.no_grad():
                for start in range(0, len(missing), batch_size):
                    chunk = missing[start : start + batch_size]
                    emb = clip.encode_text(tokenizer(chunk).to(device)).float().cpu()
                    stored.update(zip(chunk, F.normalize(emb, dim=-1), strict=True))
        if cache:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            torch.save(stored, tmp)
            os.replace(tmp, path)  # atomic: a reader never sees half a file
    rows = [torch.stack([stored[s] for s in g]).mean(0) for g in groups]
    return torch.nn.functional.normalize(torch.stack(rows), dim=-1)


class StaticEmbeddingTower(nn.Module):
    """A pretrained static-embedding text tower that works offline: token vectors, mean-pooled.

    Real text semantics without a download: the ``wordllama`` package (MIT; the ``text`` extra)
    ships a 256-wide token-embedding table distilled from a large language model, and its
    tokenizer, inside its 19 MB wheel
    ([`from_wordllama`][dsgg_layers.text.StaticEmbeddingTower.from_wordllama]). Chosen over
    GloVe-style word lists because those ship their vectors as a separate download, and over a
    randomly initialised CLIP tower because that has no semantics at all. A text is encoded as
    the **mean of its tokens' vectors** (WordLlama's own pooling, without its start token), so
    prompt context vectors ([`PromptLearner`][dsgg_layers.prompts.PromptLearner]) take part in
    the mean as [`WordTower`][dsgg_layers.prompts.WordTower]'s do.

    On Action Genome's sentences "a person <predicate> a <object>", centred per object, it puts
    ``holding`` nearest ``carrying`` (cosine 0.34) and far from ``sitting_on`` (-0.04),
    ``in_front_of`` near ``behind`` (0.27), and ``looking_at`` next to ``not_looking_at``
    (0.83; real CLIP does the same, reading the words rather than the negation). It is a
    [`TextTower`][dsgg_layers.prompts.TextTower]; the table is a frozen buffer.

    Ids follow the protocol: 0 padding, 1 start, a tokenizer id ``t`` as ``t + 2``, the end
    token last (the highest id). ``encode`` gives L2-normalised text embeddings directly.

    Args:
        table: ``(V, D)`` the token vectors (the tokenizer's ids index its rows).
        tokenizer: a ``tokenizers.Tokenizer`` (``encode(text).ids``).
        context_length: token ids a text (start and end included).
        skip_first: tokenizer ids to drop from the start of each encoding (its own start token:
            ``1`` for WordLlama's).

    Shape:
        - tokenize: ``N`` texts -> ``(N, context_length)`` ids
        - embed_tokens: ``(N, T)`` -> ``(N, T, D)``; encode_embeddings: ``(N, D)``
        - encode: ``N`` texts -> ``(N, D)``, each row of norm 1

    Raises:
        ImportError: ``from_wordllama`` without the ``wordllama`` package (names the extra).
        ValueError: a text longer than ``context_length`` tokens, or an empty table.

    Examples:
        >>> tower = StaticEmbeddingTower.from_wordllama()           # doctest: +SKIP
        >>> e = tower.encode(["holding", "carrying", "sitting on"])  # doctest: +SKIP
        >>> bool(e[0] @ e[1] > e[0] @ e[2])                          # doctest: +SKIP
        True
        >>> class Chars:                          # any tokenizer with encode(text).ids
        ...     def encode(self, text):
        ...         return type("E", (), {"ids": [ord(c) % 7 for c in text]})()
        >>> tiny = StaticEmbeddingTower(torch.randn(7, 4), Chars(), skip_first=0)
        >>> tiny.encode(["ab", "abc"]).shape
        torch.Size([2, 4])
    """

    def __init__(
        self, table: Tensor, tokenizer: Any, *, context_length: int = 32, skip_first: int = 1
    ) -> None:
        super().__init__()
        check_tensor(table, "table", ("V", "D"), dtype="float")
        check_positive(context_length, "context_length")
        if table.shape[0] == 0:
            raise ValueError("table: expected at least one token vector, got none")
        self.tokenizer, self.context_length, self.skip_first = tokenizer, context_length, skip_first
        self.width = self.embed_dim = int(table.shape[1])
        self.eot = int(table.shape[0]) + 2
        padded = torch.cat(
            (table.new_zeros(2, table.shape[1]), table, table.new_zeros(1, table.shape[1]))
        )
        self.register_buffer("table", padded.float())

    @classmethod
    def from_wordllama(cls, name: str = "l2_supercat", dim: int = 256) -> StaticEmbeddingTower:
        """WordLlama's shipped token vectors (``weights/<name>_<dim>.safetensors``) and tokenizer
        (``tokenizers/<name>_tokenizer_config.json``), read from the installed package's files
        (its own loader looks for the tokenizer elsewhere and tries a download: not used)."""
        import importlib.util
        from pathlib import Path

        spec = importlib.util.find_spec("wordllama")
        if spec is None or not spec.submodule_search_locations:
            raise ImportError(
                "StaticEmbeddingTower.from_wordllama needs the wordllama package: "
                "pip install 'dsgg_layers[text]'"
            )
        try:
            from safetensors.torch import load_file
            from tokenizers import Tokenizer
        except ImportError as e:  # pragma: no cover - wordllama depends on both
            raise ImportError("from_wordllama needs safetensors and tokenizers") from e
        root = Path(spec.submodule_search_locations[0])
        weights = root / "weights" / f"{name}_{dim}.safetensors"
        config = root / "tokenizers" / f"{name}_tokenizer_config.json"
        for path in (weights, config):
            if not path.is_file():
                raise ValueError(f"name, dim: the wordllama package has no {path.name}")
        table = load_file(str(weights))["embedding.weight"]
        return cls(table, Tokenizer.from_file(str(config)))

    def extra_repr(self) -> str:
        return f"tokens={self.eot - 2}, dim={self.width}, context_length={self.context_length}"

    def reset_parameters(self) -> None:
        """Nothing to reset: the table is pretrained and frozen."""

    def tokenize(self, texts: Sequence[str]) -> Tensor:
        """``(N, context_length)`` ids (see the class docstring)."""
        rows = [[1, *(t + 2 for t in list(self.tokenizer.encode(text).ids)[self.skip_first :]),
                 self.eot] for text in texts]  # tokenizing strings: data preparation  # fmt: skip
        return pack_token_rows(rows, self.context_length, "tokens").to(self.table.device)

    def embed_tokens(self, ids: Tensor) -> Tensor:
        """``(N, T, D)`` the token vectors of the ids (0 for padding, start and end)."""
        return self.table[ids]

    def encode_embeddings(self, x: Tensor, ids: Tensor) -> Tensor:
        """The mean of the input embeddings between the start and the end token."""
        check_tensor(x, "x", (*ids.shape, self.width), dtype="float")
        return content_mean(x, ids)

    @torch.no_grad()
    def encode(self, texts: Sequence[str]) -> Tensor:
        """``(N, D)`` L2-normalised embeddings of ``texts``."""
        ids = self.tokenize(texts)
        return F.normalize(self.encode_embeddings(self.embed_tokens(ids), ids), dim=-1)
