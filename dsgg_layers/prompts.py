"""Prompt learning (CoOp style) for open-vocabulary classifiers: UASAN's predicate embeddings.

UASAN (*Open-Vocabulary Video Scene Graph Generation via Union-aware Semantic Alignment*,
Sec. 3.2, Eq. 9-10) builds each predicate's embedding from ``L_rel`` learnable word embeddings
followed by the predicate's own words, through a frozen text encoder:
``W_rel(c) = [w_1, ..., w_L, c]``, ``r_c = TextEnc(W_rel(c))``; a pair's relation feature ``r``
is classified by ``softmax(cos(r, r_c) / tau)`` (the public code trains a sigmoid focal loss on
``cos / tau`` instead: both are a choice of loss on [`PromptLearner.logits`][]).

UASAN's text side is a BLIP-2 Q-Former; the library uses **open_clip's text tower**
([`OpenCLIPTextTower`][]), or any module with the same three methods ([`TextTower`][]),
such as the synthetic benchmark's small deterministic encoder. RePro's and UASAN's public code
learn **grouped** prompts: one context a motion group, and (RePro) separate subject and object
contexts whose features are concatenated ([`GroupedPromptLearner`][]). Because only the context
embeddings are learned, a [`PromptLearner`][] can be given **new class names at inference**
([`PromptLearner.set_class_names`][]) without retraining: that is what makes the classifier
open-vocabulary.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dsgg_layers._checks import check_positive, check_tensor
from dsgg_layers._ops import content_mean, pack_token_rows
from dsgg_layers.union_head import token_cosine_logits

__all__ = [
    "GroupedPromptLearner",
    "OpenCLIPTextTower",
    "PromptLearner",
    "TextTower",
    "WordTower",
]


@runtime_checkable
class TextTower(Protocol):
    """What [`PromptLearner`][] needs from a text encoder.

    - ``width``: the token-embedding width; ``embed_dim``: the output width.
    - ``tokenize(texts) -> (N, T)`` token ids: a start token first (the context goes right
      after it), the end token the highest id of its row, 0 after it (open_clip's layout).
    - ``embed_tokens(ids) -> (N, T, width)`` the input embeddings of the ids.
    - ``encode_embeddings(x, ids) -> (N, embed_dim)`` the text features of input embeddings
      ``x`` (``ids`` tell where each sequence ends).

    Examples:
        >>> isinstance(object(), TextTower)
        False
    """

    width: int
    embed_dim: int

    def tokenize(self, texts: Sequence[str]) -> Tensor: ...

    def embed_tokens(self, ids: Tensor) -> Tensor: ...

    def encode_embeddings(self, x: Tensor, ids: Tensor) -> Tensor: ...


class OpenCLIPTextTower(nn.Module):
    """An open_clip model's text tower, split at its token embeddings (a [`TextTower`][]).

    ``encode_embeddings(embed_tokens(tokenize(t)), tokenize(t))`` equals the model's own
    ``encode_text(tokenize(t))``: positional embeddings, the causal transformer, the final
    norm, pooling by the model's ``text_pool_type`` (``"argmax"``: the end-of-text token, the
    highest id) and the text projection. The image tower is not kept.

    Args:
        model: an ``open_clip`` CLIP model (``open_clip.create_model(...)``).
        tokenizer: its tokenizer (``open_clip.get_tokenizer(name)``).

    Shape:
        - tokenize: ``N`` texts -> ``(N, context_length)`` ids
        - embed_tokens: ``(N, T)`` -> ``(N, T, width)``
        - encode_embeddings: ``(N, T, width)``, ids ``(N, T)`` -> ``(N, embed_dim)``

    Raises:
        TypeError: ``model`` is not an open_clip CLIP model.

    Examples:
        >>> tower = OpenCLIPTextTower.from_name("ViT-B-32")   # random weights offline
        >>> ids = tower.tokenize(["a person riding a horse"])
        >>> tower.encode_embeddings(tower.embed_tokens(ids), ids).shape
        torch.Size([1, 512])
    """

    def __init__(self, model: nn.Module, tokenizer: Any) -> None:
        super().__init__()
        for name in ("token_embedding", "positional_embedding", "transformer", "ln_final"):
            if not hasattr(model, name):
                raise TypeError(f"model: expected an open_clip CLIP model (it has no {name!r})")
        self.token_embedding = model.token_embedding
        self.positional_embedding = model.positional_embedding
        self.transformer = model.transformer
        self.ln_final = model.ln_final
        self.text_projection = model.text_projection
        self.register_buffer("attn_mask", getattr(model, "attn_mask", None), persistent=False)
        self.pool_type = getattr(model, "text_pool_type", "argmax")
        self.eos_id = getattr(model, "text_eos_id", None)
        self.tokenizer = tokenizer
        self.width = int(self.token_embedding.weight.shape[1])
        proj = self.text_projection
        if proj is None:
            self.embed_dim = self.width
        elif isinstance(proj, nn.Linear):
            self.embed_dim = proj.out_features
        else:
            self.embed_dim = int(proj.shape[1])

    @classmethod
    def from_name(cls, model: str = "ViT-B-32", pretrained: str | None = None) -> OpenCLIPTextTower:
        """The text tower of ``open_clip.create_model(model, pretrained)`` (random weights from
        seed 0 without ``pretrained``; needs the ``clip`` extra)."""
        from dsgg_layers.text import open_clip_text_tower

        clip, tokenizer = open_clip_text_tower(model, pretrained)
        return cls(clip, tokenizer)

    def tokenize(self, texts: Sequence[str]) -> Tensor:
        """``(N, context_length)`` token ids."""
        return self.tokenizer(list(texts)).to(self.token_embedding.weight.device)

    def embed_tokens(self, ids: Tensor) -> Tensor:
        """``(N, T, width)`` input embeddings."""
        return self.token_embedding(ids)

    def encode_embeddings(self, x: Tensor, ids: Tensor) -> Tensor:
        """``(N, T, width)`` input embeddings -> ``(N, embed_dim)`` text features."""
        cast = self.transformer.get_cast_dtype() if hasattr(self.transformer, "get_cast_dtype") \
            else x.dtype  # fmt: skip
        x = x.to(cast) + self.positional_embedding.to(cast)
        x = self.transformer(x, attn_mask=self.attn_mask)
        x = self.ln_final(x)
        rows = torch.arange(x.shape[0], device=x.device)
        if self.pool_type == "argmax":
            x = x[rows, ids.argmax(-1)]
        elif self.pool_type == "eos" and self.eos_id is not None:
            x = x[rows, (ids == self.eos_id).int().argmax(-1)]
        elif self.pool_type == "first":
            x = x[:, 0]
        elif self.pool_type == "last":
            x = x[:, -1]
        else:
            raise ValueError(f"text_pool_type: {self.pool_type!r} is not supported")
        proj = self.text_projection
        if proj is None:
            return x
        return proj(x) if isinstance(proj, nn.Linear) else x @ proj


class PromptLearner(nn.Module):
    """Learnable context words in front of each class name, through a frozen text tower.

    The prompt of class ``c`` is tokenized as ``placeholder x L`` + the class name + ``suffix``
    (CoOp's "X X X X name."); the placeholders' input embeddings are replaced by the ``L``
    learnable context vectors ``w_1..w_L`` (shared by every class: CoOp's unified context, Eq. 9)
    and the sequence goes through the tower (Eq. 10). The tower is frozen in place
    (``requires_grad=False``, kept in eval mode): gradients reach only `context`.

    Args:
        tower: a [`TextTower`][] ([`OpenCLIPTextTower`][], or the synthetic benchmark's).
        class_names: the class names (e.g. the base predicates for training).
        num_context: ``L_rel``, the number of context vectors (CoOp's default 16; RePro's and
            UASAN's public configs: 10).
        init: words whose token embeddings initialise the context (e.g. ``"a video of"``,
            which sets ``L`` to its token count when ``num_context`` is ``None``); default a
            normal draw with ``std``.
        temperature: ``tau`` of [`logits`][] (0.01: CLIP's logit scale of 100).
        placeholder: the word standing for each context slot (one token).
        suffix: appended to each class name.
        std: standard deviation of the random context initialisation.

    Shape:
        - forward: ``(C, embed_dim)`` L2-normalised class embeddings
        - logits: features ``(..., embed_dim)`` -> ``(..., C)``

    Raises:
        TypeError: ``tower`` is not a [`TextTower`][].
        ValueError: no class names, ``num_context`` not positive, or the prompts do not fit the
            tower's context length.

    Examples:
        >>> tower = WordTower(["move", "left", "right", "up"], dim=16)
        >>> learner = PromptLearner(tower, ["move left", "move right"], num_context=4)
        >>> learner().shape
        torch.Size([2, 16])
        >>> learner.set_class_names(["move up", "move left", "move right"])   # new classes
        >>> learner.logits(torch.randn(5, 16)).shape
        torch.Size([5, 3])
    """

    def __init__(
        self,
        tower: TextTower,
        class_names: Sequence[str],
        num_context: int | None = 8,
        *,
        init: str | None = None,
        temperature: float = 0.01,
        placeholder: str = "X",
        suffix: str = ".",
        std: float = 0.02,
    ) -> None:
        super().__init__()
        if not isinstance(tower, TextTower):
            raise TypeError(
                "tower: expected a TextTower (width, embed_dim, tokenize, embed_tokens, "
                f"encode_embeddings), got {type(tower).__name__}"
            )
        check_positive(temperature, "temperature", integer=False)
        check_positive(std, "std", integer=False)
        self.tower = tower
        for p in tower.parameters() if isinstance(tower, nn.Module) else ():
            p.requires_grad_(False)
        init_vectors = None
        if init is not None:
            ids = tower.tokenize([init])
            n = int(_content_length(ids[0]))
            with torch.no_grad():
                init_vectors = tower.embed_tokens(ids)[0, 1 : 1 + n].float()
            num_context = n if num_context is None else num_context
            if num_context != n:
                raise ValueError(
                    f"num_context: expected {n}, the token count of init={init!r}, "
                    f"got {num_context}"
                )
        if num_context is None:
            raise ValueError("num_context: expected a positive int (or init words), got None")
        check_positive(num_context, "num_context")
        self.num_context, self.temperature = num_context, float(temperature)
        self.placeholder, self.suffix, self.std = placeholder, suffix, float(std)
        self.context = nn.Parameter(torch.empty(num_context, tower.width))
        self._init_vectors = init_vectors
        self.reset_parameters()
        self.class_names: tuple[str, ...] = ()
        self.set_class_names(class_names)

    def reset_parameters(self) -> None:
        """The context: the ``init`` words' embeddings, or a normal draw with ``std``."""
        with torch.no_grad():
            if self._init_vectors is not None:
                self.context.copy_(self._init_vectors)
            else:
                nn.init.normal_(self.context, std=self.std)

    def no_weight_decay(self) -> set[str]:
        """The context vectors (word embeddings)."""
        return {"context"}

    def extra_repr(self) -> str:
        return (
            f"num_classes={len(self.class_names)}, num_context={self.num_context}, "
            f"temperature={self.temperature}"
        )

    def train(self, mode: bool = True) -> PromptLearner:
        super().train(mode)
        if isinstance(self.tower, nn.Module):
            self.tower.eval()  # frozen: no dropout, whatever the learner's mode
        return self

    @torch.no_grad()
    def set_class_names(self, class_names: Sequence[str]) -> None:
        """Use these classes from now on (no retraining: the context is kept)."""
        names = tuple(class_names)
        if not names or not all(isinstance(n, str) and n.strip() for n in names):
            raise ValueError(f"class_names: expected non-empty names, got {list(class_names)!r}")
        prefix = " ".join([self.placeholder] * self.num_context)
        ids = self.tower.tokenize([f"{prefix} {n}{self.suffix}" for n in names])
        lengths = _content_length(ids)
        # a tokenizer that truncates (open_clip) keeps the end token last: a prompt that fills
        # the whole context may have lost words, so it counts as too long
        short = [n for n, k in zip(names, lengths.tolist(), strict=True)
                 if k < self.num_context + 1 or k >= ids.shape[1] - 2]  # fmt: skip
        if short:
            raise ValueError(
                f"class_names: the prompts of {short[:3]} do not fit the tower's context length "
                f"{ids.shape[1]} with {self.num_context} context words"
            )
        slots = ids[:, 1 : 1 + self.num_context]
        if not bool((slots == slots[:1, :1]).all()):
            raise ValueError(
                f"placeholder: expected {self.placeholder!r} to be one token of the tower "
                "(each context slot must be one token)"
            )
        self.class_names = names
        self.register_buffer("token_ids", ids, persistent=False)
        self.register_buffer("token_embeddings", self.tower.embed_tokens(ids), persistent=False)

    @contextlib.contextmanager
    def using_class_names(self, class_names: Sequence[str]) -> Iterator[PromptLearner]:
        """[`set_class_names`][] for the duration of a ``with`` block, then the previous
        classes again (evaluating on novel classes without forgetting the training ones).

        Examples:
            >>> tower = WordTower(["move", "left", "right", "up"], dim=16)
            >>> learner = PromptLearner(tower, ["move left", "move right"], num_context=4)
            >>> with learner.using_class_names(["move up"]):
            ...     learner().shape
            torch.Size([1, 16])
            >>> learner.class_names
            ('move left', 'move right')
        """
        previous = self.class_names
        self.set_class_names(class_names)
        try:
            yield self
        finally:
            self.set_class_names(previous)

    def forward(self) -> Tensor:
        """``(C, embed_dim)`` L2-normalised class embeddings (Eq. 10)."""
        x = self.token_embeddings
        ctx = self.context.to(x.dtype).expand(x.shape[0], -1, -1)
        x = torch.cat((x[:, :1], ctx, x[:, 1 + self.num_context :]), 1)
        return F.normalize(self.tower.encode_embeddings(x, self.token_ids).float(), dim=-1)

    def logits(self, features: Tensor, class_embeddings: Tensor | None = None) -> Tensor:
        """``cos(features, r_c) / tau`` for every class: softmax for UASAN's probabilities,
        sigmoid (focal loss) for its public code's; ``class_embeddings`` default ``self()``."""
        e = self() if class_embeddings is None else class_embeddings
        check_tensor(features, "features", ("...", e.shape[-1]), dtype="float")
        return F.normalize(features, dim=-1) @ e.to(features.dtype).T / self.temperature


class GroupedPromptLearner(PromptLearner):
    """One learnable context a motion group, and optionally a subject and an object context
    (RePro's ``PromptLearner_Grouped``; UASAN's code builds on it).

    RePro (*Compositional Prompt Tuning with Motion Cues for Open-vocabulary Video Relation
    Detection*, ICLR 2023, Sec. 3.2) keeps ``G = 6`` prompt sets, one a motion group (see
    [`trajectory_pair_motion`][dsgg_layers.motion.trajectory_pair_motion]), and in each a
    **subject** context and an
    **object** context: the class's text feature is the two prompts' unit features
    concatenated and scaled by ``1 / sqrt(2)`` (a unit vector of twice the width). Its public
    configs use 10 context words. UASAN's code uses the grouped subject-object prompts for its
    pair branches and a grouped single context (``subject_object=False``) for its union
    branches. A pair is scored against the set of its group ([`logits`][] with ``group``).

    The prompts are built as [`PromptLearner`][]'s (same tokenisation, placeholders,
    ``set_class_names``); all ``G x R x C`` prompts go through the frozen tower in one call.
    RePro's prompts have no suffix after the class name: pass ``suffix=""`` to match them.

    Args:
        tower: a [`TextTower`][], as [`PromptLearner`][]'s.
        class_names: the class names.
        num_context: context words (RePro: 10).
        init: words whose embeddings start every group's and role's context.
        temperature: ``tau`` of [`logits`][].
        placeholder: the word standing for each context slot.
        suffix: appended to each class name (RePro: none, ``""``).
        std: standard deviation of the random context initialisation.
        num_groups: ``G``, prompt sets (RePro: 6 motion groups).
        subject_object: separate subject and object contexts (RePro; ``R = 2``) or one
            (``R = 1``).

    Shape:
        - forward: ``(G, C, R * embed_dim)`` unit class embeddings
        - logits: features ``(..., R * embed_dim)``, group ``(...)`` -> ``(..., C)``

    Raises:
        TypeError, ValueError: as [`PromptLearner`][]; ``num_groups`` not positive; a group
            id out of range.

    Examples:
        >>> tower = WordTower(["move", "left", "right"], dim=8)
        >>> repro = GroupedPromptLearner(tower, ["move left", "move right"], num_context=10,
        ...                              num_groups=6, suffix="")
        >>> e = repro()
        >>> e.shape, bool(torch.allclose(e.norm(dim=-1), torch.ones(6, 2)))
        (torch.Size([6, 2, 16]), True)
        >>> repro.logits(torch.randn(4, 16), group=torch.tensor([0, 5, 2, 2])).shape
        torch.Size([4, 2])
    """

    def __init__(
        self,
        tower: TextTower,
        class_names: Sequence[str],
        num_context: int | None = 10,
        *,
        num_groups: int = 6,
        subject_object: bool = True,
        init: str | None = None,
        temperature: float = 0.01,
        placeholder: str = "X",
        suffix: str = ".",
        std: float = 0.02,
    ) -> None:
        check_positive(num_groups, "num_groups")
        self.num_groups, self.num_roles = num_groups, 2 if subject_object else 1
        super().__init__(
            tower, class_names, num_context, init=init, temperature=temperature,
            placeholder=placeholder, suffix=suffix, std=std,
        )  # fmt: skip
        shape = (num_groups, self.num_roles, self.num_context, tower.width)
        self.context = nn.Parameter(torch.empty(shape))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Every context: the ``init`` words' embeddings, or a normal draw with ``std``."""
        with torch.no_grad():
            if self._init_vectors is not None:
                self.context.copy_(self._init_vectors.expand_as(self.context))
            else:
                nn.init.normal_(self.context, std=self.std)

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, num_groups={self.num_groups}, "
            f"subject_object={self.num_roles == 2}"
        )

    def forward(self) -> Tensor:
        """``(G, C, R * embed_dim)`` unit class embeddings, one set a group."""
        x = self.token_embeddings  # (C, T, w)
        C, T, w = x.shape
        G, R, L = self.num_groups, self.num_roles, self.num_context
        ctx = self.context.to(x.dtype)[:, :, None].expand(G, R, C, L, w)
        rest = (x[:, :1], x[:, 1 + L :])
        prompts = torch.cat(
            (rest[0].expand(G, R, C, 1, w), ctx, rest[1].expand(G, R, C, T - 1 - L, w)), -2
        )
        ids = self.token_ids.repeat(G * R, 1)
        e = self.tower.encode_embeddings(prompts.reshape(G * R * C, T, w), ids).float()
        e = F.normalize(e, dim=-1).view(G, R, C, -1).transpose(1, 2)  # (G, C, R, E)
        return e.reshape(G, C, -1) / R**0.5

    def logits(  # type: ignore[override]
        self,
        features: Tensor,
        class_embeddings: Tensor | None = None,
        *,
        group: Tensor | None = None,
    ) -> Tensor:
        """``cos(features, r_c) / tau`` against the set of each row's ``group`` (default
        ``self()``; ``group`` may be left out when ``G = 1``)."""
        e = self() if class_embeddings is None else class_embeddings
        check_tensor(features, "features", ("...", e.shape[-1]), dtype="float")
        return token_cosine_logits(features.unsqueeze(-2), e, self.temperature, group=group)


def _content_length(ids: Tensor) -> Tensor:
    """Tokens between the start and the end token of each row (ids ``(..., T)``, the end token
    the highest id, 0 padding)."""
    return ids.argmax(-1) - 1


class WordTower(nn.Module):
    """A small deterministic text tower over a fixed vocabulary: the synthetic stand-in for CLIP.

    Pretrained CLIP weights cannot be assumed (tests and CI run offline), and a randomly
    initialised CLIP gives unseen class names no meaning. This tower gives every word of its
    vocabulary a fixed random vector (from ``seed``) and encodes a text as the **mean of its
    tokens' input embeddings** (context vectors included), so a class named by words seen in
    other classes ("move left fast") gets an embedding built from them: zero-shot recognition of
    such a class is possible, as with a real text encoder's compositionality. A
    [`TextTower`][]; no parameters (nothing to freeze).

    Texts are lower-cased, ``"."`` is a word of its own; ids: 0 padding, 1 start, the words
    from 2, the end token last (the highest id). The placeholder ``"x"`` and ``"."`` are always
    in the vocabulary.

    [`with_synonyms`][dsgg_layers.prompts.WordTower.with_synonyms] adds, for every word, a
    synonym at a chosen cosine: a language dial for zero-shot names (1: the same words, 0:
    unrelated ones).

    Args:
        vocabulary: the words.
        dim: the embedding width (``width == embed_dim``).
        seed: the word vectors' seed.
        context_length: token ids a text (start and end included).
        related: extra words, ``{word: (vocabulary word, cosine)}``: each gets a vector at that
            cosine to the vocabulary word's, of the same norm, the rest an independent random
            direction (its own stream: the vocabulary's vectors stay as they were).

    Shape:
        - tokenize: ``N`` texts -> ``(N, context_length)`` ids
        - embed_tokens: ``(N, T)`` -> ``(N, T, dim)``
        - encode_embeddings: ``(N, T, dim)``, ids ``(N, T)`` -> ``(N, dim)``

    Raises:
        ValueError: an empty vocabulary, a text with a word outside it (named), or a text
            longer than ``context_length``.

    Examples:
        >>> tower = WordTower(["move", "left", "right"], dim=8)
        >>> ids = tower.tokenize(["move left", "move right"])
        >>> ids[0, :5].tolist()
        [1, 2, 3, 7, 0]
        >>> e = tower.encode_embeddings(tower.embed_tokens(ids), ids)
        >>> torch.allclose(e[0], (tower.table[2] + tower.table[3]) / 2)
        True
    """

    def __init__(
        self,
        vocabulary: Sequence[str],
        dim: int = 64,
        *,
        seed: int = 0,
        context_length: int = 16,
        related: Mapping[str, tuple[str, float]] | None = None,
    ) -> None:
        super().__init__()
        check_positive(dim, "dim")
        check_positive(context_length, "context_length")
        words = list(dict.fromkeys(w.lower() for w in vocabulary))
        if not words:
            raise ValueError("vocabulary: expected at least one word, got none")
        for extra in ("x", "."):
            if extra not in words:
                words.append(extra)
        self.related = {}
        for word, (base, cosine) in (related or {}).items():
            if word.lower() in words or base.lower() not in words or not -1 <= cosine <= 1:
                raise ValueError(
                    f"related: {word!r} -> ({base!r}, {cosine}): expected a new word, a "
                    "vocabulary word and a cosine in [-1, 1]"
                )
            self.related[word.lower()] = (base.lower(), float(cosine))
        words += list(self.related)
        self.words = tuple(words)
        self.index = {w: i + 2 for i, w in enumerate(words)}
        self.eot = len(words) + 2
        self.width = self.embed_dim = dim
        self.context_length, self.seed = context_length, seed
        self.register_buffer("table", torch.empty(self.eot + 1, dim))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Draw the word vectors from ``seed`` (the same table every time: the tower is a fixed
        function of its vocabulary, dimension and seed)."""
        g = torch.Generator().manual_seed(self.seed)
        table = torch.randn(self.eot + 1, self.width, generator=g) / self.width**0.5
        own = torch.Generator().manual_seed(self.seed + 7919)  # the related words' stream
        for word, (base, cosine) in self.related.items():  # a few words, at construction
            v = table[self.index[base]]
            r = torch.randn(self.width, generator=own)
            r = r - (r @ v) / (v @ v) * v  # orthogonal to the word's vector
            table[self.index[word]] = cosine * v + (1 - cosine**2) ** 0.5 * v.norm() * r / r.norm()
        with torch.no_grad():
            self.table.copy_(table.to(self.table))

    def extra_repr(self) -> str:
        return f"words={len(self.words)}, dim={self.width}, context_length={self.context_length}"

    @classmethod
    def with_synonyms(
        cls, vocabulary: Sequence[str], dim: int, similarity: float, *, suffix: str = "'", **kw: Any
    ) -> WordTower:
        """A tower whose every word ``w`` also has a synonym ``w + suffix`` at cosine
        ``similarity`` (``related``): name unseen classes with the synonyms to set how much
        language they share with the seen ones. ``suffix=""`` adds none (each word is its own
        synonym: ``similarity`` must be 1).

        Examples:
            >>> tower = WordTower.with_synonyms(["stand", "left"], dim=16, similarity=0.5)
            >>> t = tower.table
            >>> round(float(torch.cosine_similarity(t[tower.index["stand'"]],
            ...                                     t[tower.index["stand"]], dim=0)), 3)
            0.5
        """
        if not suffix and similarity != 1:
            raise ValueError(f"suffix: '' names a word's synonym by the word: similarity must be "
                             f"1, got {similarity}")  # fmt: skip
        words = list(dict.fromkeys(w.lower() for w in vocabulary))
        related = {w + suffix: (w, similarity) for w in words} if suffix else {}
        return cls(words, dim, related=related, **kw)

    def tokenize(self, texts: Sequence[str]) -> Tensor:
        """``(N, context_length)`` ids."""
        rows = []
        for i, text in enumerate(texts):
            tokens = text.lower().replace(".", " . ").split()
            unknown = [w for w in tokens if w not in self.index]
            if unknown:
                raise ValueError(f"texts[{i}]: words {unknown} are not in the vocabulary")
            rows.append([1, *(self.index[w] for w in tokens), self.eot])
        return pack_token_rows(rows, self.context_length, "words").to(self.table.device)

    def embed_tokens(self, ids: Tensor) -> Tensor:
        """``(N, T, dim)`` the word vectors of the ids."""
        return self.table[ids]

    def encode_embeddings(self, x: Tensor, ids: Tensor) -> Tensor:
        """The mean of the input embeddings between the start and the end token."""
        check_tensor(x, "x", (*ids.shape, self.width), dtype="float")
        return content_mean(x, ids)
