"""Matching relation features against text embeddings of the predicate classes.

[`ActionSemanticMatcher`][] is MoSA's Action Semantic Matching (ASM; *MoSA*,
arXiv:2604.19631, Sec. 2.4, Eq. 10): relation features are projected into the text space and
scored against a ``(C, E)`` matrix of class text embeddings (built with
[`dsgg_layers.text.encode_prompts`][dsgg_layers.text.encode_prompts]), giving one
logit per class; ``sigmoid`` of the logits gives the multi-label probabilities. The text matrix
is a buffer that
[`set_text_embeddings`][dsgg_layers.semantic.ActionSemanticMatcher.set_text_embeddings] replaces, so
that a trained matcher scores a new class set at inference (open vocabulary).

[`SentenceClassifier`][] is TR²'s predicate classifier in its public code (*Cross-Modality
Time-Variant Relation Learning for Generating Dynamic Scene Graphs*, ICRA 2023, arXiv:2305.08522;
not in the paper): the text matrix depends on the pair's object class, an ``(O, C, E)`` table
of prompted-sentence embeddings
([`dsgg_layers.text.tr2_sentences`][dsgg_layers.text.tr2_sentences]), and a pair's logits are its
projected feature dotted with the ``C`` sentences of its object class.

[`TripletCategoryClassifier`][] is ARN's classifier (*End-to-End Entity-Predicate Association
Reasoning for Dynamic Scene Graph Generation*, Sec. 3.2 and Eq. 15): one class per (predicate,
object) triplet category of a predicate group, its rows initialised from the CLIP embeddings of
the group's triplet prompts and fine-tuned; a predicate's score is the largest score of its
categories.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor, nn

from dsgg_layers._checks import (
    check_choice,
    check_param_dtype,
    check_positive,
    check_tensor,
    values_readable,
)
from dsgg_layers.rows import MaskOrRows, resolve_rows, split_mask

__all__ = ["ActionSemanticMatcher", "SentenceClassifier", "TripletCategoryClassifier"]

_MAX_LOGIT_SCALE = math.log(100.0)  # CLIP's clamp of the learnable temperature


def _unit(x: Tensor, eps: float = 1e-6) -> Tensor:
    """Rows scaled to norm 1; a (near-)zero row, such as a padded one, gives 0 with zero gradient
    (``F.normalize`` gives it a gradient of ``1 / eps``, which overflows half precision). Norms in
    at least float32."""
    acc = torch.promote_types(x.dtype, torch.float32)
    x32 = x.to(acc)
    norm = torch.linalg.vector_norm(x32, dim=-1, keepdim=True)
    big = norm > eps
    return torch.where(big, x32 / torch.where(big, norm, 1.0), 0.0).to(x.dtype)


def _check_text(text_embeddings: Tensor) -> None:
    """Finite embeddings (read once, when they are set: no cost per step)."""
    if not bool(torch.isfinite(text_embeddings).all()):
        raise ValueError("text_embeddings: expected finite values, got NaN/Inf")


class ActionSemanticMatcher(nn.Module):
    """A classifier whose class weights are the classes' text embeddings (MoSA's action
    semantic matching, ASM): ``s = scale * (f W) E^T + b`` against embeddings ``E``.

    ``f`` are relation features, ``W`` a learned projection into the text space and ``E`` the
    ``(C, E)`` text embeddings (Eq. 10; the equation is not legible in the paper's text, the
    reading used is on the MoSA docs page). With ``similarity="cosine"`` both ``f W`` and the
    rows of ``E`` are L2-normalised first (CLIP style); with ``"dot"`` (the paper's) they are
    used as they are.
    ``scale = exp(logit_scale)`` is a learnable temperature (clamped at 100, as CLIP does) unless
    ``learnable_temperature=False``; ``b`` is one learnable bias shared by all classes, so that a
    new class set needs no new parameter.

    **A generic text-embedding classifier.** Nothing here is specific to MoSA's predicates: with
    ``similarity="cosine"`` and [`probabilities`][] ``(kind="softmax")`` it is the
    ``softmax(cos(f, E) / tau)`` classifier of UASAN (*Open-Vocabulary Video Scene Graph
    Generation via Union-aware Semantic Alignment*) and ARN's classifier initialised from CLIP
    text embeddings (*End-to-End Entity-Predicate Association Reasoning for Dynamic Scene Graph
    Generation*); [`set_text_embeddings`][] swaps the class set (open vocabulary).

    Args:
        in_features: width ``D`` of the relation features.
        text_embeddings: the ``(C, E)`` class text embeddings (copied into a buffer, or into a
            parameter with ``trainable_text``).
        similarity: ``"dot"`` or ``"cosine"``.
        learnable_temperature: learn ``logit_scale`` (else keep its initial value).
        temperature: initial temperature, ``scale = 1 / temperature``; default 1 for ``"dot"``
            and 0.07 (CLIP's) for ``"cosine"``.
        bias: learn the shared bias ``b`` (initialised at 0).
        trainable_text: make the text embeddings a parameter, initialised from the given ones
            (ARN's CLIP-initialised classifier rows, fine-tuned with their own learning rate:
            [`text_parameters`][]); default a frozen buffer.

    Shape:
        - input: ``(..., D)``
        - output: ``(..., C)`` logits

    Raises:
        TypeError, ValueError: ``text_embeddings`` is not a ``(C, E)`` float tensor, the input
            width is not ``D``, or an option is invalid.

    Examples:
        >>> E = torch.nn.functional.normalize(torch.randn(26, 512), dim=-1)  # encode_prompts(...)
        >>> asm = ActionSemanticMatcher(256, E, similarity="cosine")
        >>> logits = asm(torch.randn(2, 8, 3, 256))                           # (B, T, P, D)
        >>> logits.shape, asm.probabilities(logits).max() <= 1
        (torch.Size([2, 8, 3, 26]), tensor(True))
        >>> asm.probabilities(logits, "softmax").sum(-1).allclose(torch.ones(2, 8, 3))
        True
        >>> asm.set_text_embeddings(E[:5])          # another class set, same weights
        >>> asm(torch.randn(4, 256)).shape
        torch.Size([4, 5])
    """

    text_embeddings: Tensor

    def __init__(
        self,
        in_features: int,
        text_embeddings: Tensor,
        *,
        similarity: Literal["dot", "cosine"] = "dot",
        learnable_temperature: bool = True,
        temperature: float | None = None,
        bias: bool = True,
        trainable_text: bool = False,
    ) -> None:
        super().__init__()
        check_positive(in_features, "in_features")
        check_choice(similarity, "similarity", ("dot", "cosine"))
        check_tensor(text_embeddings, "text_embeddings", ("C", "E"), dtype="float")
        _check_text(text_embeddings)
        if temperature is None:
            temperature = 1.0 if similarity == "dot" else 0.07
        check_positive(temperature, "temperature", integer=False)
        low = math.exp(-_MAX_LOGIT_SCALE)  # below it the clamped scale never learns
        if temperature < low:
            raise ValueError(f"temperature: expected at least {low:.4g}, got {temperature}")
        self.in_features = in_features
        self.embed_dim = text_embeddings.shape[1]
        self.similarity = similarity
        self.initial_logit_scale = math.log(1.0 / temperature)
        self.proj = nn.Linear(in_features, self.embed_dim, bias=False)
        self.trainable_text = bool(trainable_text)
        text = text_embeddings.detach().clone().float()
        if self.trainable_text:
            self.text_embeddings = nn.Parameter(text)
        else:
            self.register_buffer("text_embeddings", text)
        scale = torch.tensor(self.initial_logit_scale)
        if learnable_temperature:
            self.logit_scale = nn.Parameter(scale)
        else:
            self.register_buffer("logit_scale", scale)
        self.logit_bias = nn.Parameter(torch.zeros(())) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Reset the projection, the temperature and the bias."""
        self.proj.reset_parameters()
        with torch.no_grad():
            self.logit_scale.fill_(self.initial_logit_scale)
            if self.logit_bias is not None:
                self.logit_bias.zero_()

    def no_weight_decay(self) -> set[str]:
        """Parameters that weight decay should skip: the temperature and the bias."""
        names = {"logit_scale"} if isinstance(self.logit_scale, nn.Parameter) else set()
        return names | ({"logit_bias"} if self.logit_bias is not None else set())

    def extra_repr(self) -> str:
        C, E = self.text_embeddings.shape
        return (
            f"in_features={self.in_features}, classes={C}, embed_dim={E}, "
            f"similarity={self.similarity!r}"
        )

    @property
    def num_classes(self) -> int:
        """``C``: the number of classes of the current text embeddings."""
        return self.text_embeddings.shape[0]

    def set_text_embeddings(self, text_embeddings: Tensor) -> None:
        """Replace the class text embeddings (any number of classes, same width ``E``).

        Raises:
            TypeError, ValueError: not a ``(C, E)`` float tensor with this matcher's ``E``.
        """
        check_tensor(text_embeddings, "text_embeddings", ("C", self.embed_dim), dtype="float")
        _check_text(text_embeddings)
        text = text_embeddings.detach().clone().to(self.text_embeddings.device, torch.float32)
        if self.trainable_text:
            self.text_embeddings = nn.Parameter(text)
        else:
            self.text_embeddings = text

    def text_parameters(self) -> list[nn.Parameter]:
        """The trainable text embeddings (empty when they are a buffer): give them their own
        optimizer group, e.g. ARN's learning rate of 1e-5."""
        return [self.text_embeddings] if self.trainable_text else []

    def forward(self, x: Tensor) -> Tensor:
        """Logits of every class for every relation feature."""
        check_tensor(x, "input", ("...", self.in_features), dtype="float")
        check_param_dtype(self.proj.weight, ("input", x))
        f = self.proj(x)
        text = self.text_embeddings.to(f.dtype)
        if self.similarity == "cosine":
            f, text = _unit(f), _unit(text)
        logits = f @ text.transpose(0, 1) * self.logit_scale.clamp(max=_MAX_LOGIT_SCALE).exp()
        return logits if self.logit_bias is None else logits + self.logit_bias

    @staticmethod
    def probabilities(
        logits: Tensor, kind: Literal["sigmoid", "softmax"] = "sigmoid"
    ) -> Tensor:  # fmt: skip
        """Class probabilities from the logits.

        ``"sigmoid"``: independent multi-label probabilities (MoSA's predicates, several of which
        can hold at once). ``"softmax"``: one distribution over the classes (a single-label
        classifier, as UASAN's ``cos / tau`` predicate classifier and ARN's CLIP-initialised
        classifier use it).

        Raises:
            ValueError: ``kind`` is unknown.
        """
        check_choice(kind, "kind", ("sigmoid", "softmax"))
        return logits.sigmoid() if kind == "sigmoid" else logits.softmax(-1)


class SentenceClassifier(nn.Module):
    """Object-conditioned sentence classifier: ``logits_c = (x W + b) . S[o, c]``.

    ``S`` is an ``(O, C, E)`` table of sentence embeddings (one sentence per object class ``o``
    and predicate ``c``, e.g. TR²'s ``"a photo of a person <predicate> a <object>"``), ``o`` the
    pair's object class. TR²'s public code classifies each predicate group this way in PredCls
    and SGCls (one ``Linear(relation width -> 512)`` a group, CLIP's unnormalised embeddings, no
    temperature; in SGDet it uses linear heads): the paper does not mention it. The product is
    computed against every object's sentences at once and the pair's class is picked out, so
    memory grows with ``O * C`` logits per pair, never with ``O * C * E``.

    Args:
        in_features: width ``D`` of the relation features.
        sentences: the ``(O, C, E)`` table (copied into a buffer; frozen).
        bias: give the projection a bias (the code's ``nn.Linear`` has one).

    Shape:
        - x: ``(..., D)``; object_labels: ``(...)`` integer classes in ``[0, O)``; optional mask
          ``(...)`` bool (labels where it is False are not read: padding may hold any value)
        - output: ``(..., C)`` logits (0 where ``mask`` is False)

    Raises:
        TypeError, ValueError: a shape or dtype disagrees, the table is not finite, or (CPU) a
            label is outside ``[0, O)``.

    Examples:
        >>> S = torch.nn.functional.normalize(torch.randn(36, 17, 512), dim=-1)  # tr2_sentences
        >>> head = SentenceClassifier(64, S)
        >>> x, labels = torch.randn(2, 5, 3, 64), torch.randint(1, 36, (2, 5, 3))
        >>> head(x, labels).shape
        torch.Size([2, 5, 3, 17])
        >>> f = head.proj(x[0, 0, 0])                     # the same, for one pair, by hand
        >>> torch.allclose(head(x, labels)[0, 0, 0], S[labels[0, 0, 0]] @ f, atol=1e-5)
        True
    """

    sentences: Tensor

    def __init__(self, in_features: int, sentences: Tensor, *, bias: bool = True) -> None:
        super().__init__()
        check_positive(in_features, "in_features")
        check_tensor(sentences, "sentences", ("O", "C", "E"), dtype="float")
        if not bool(torch.isfinite(sentences).all()):
            raise ValueError("sentences: expected finite values, got NaN/Inf")
        self.in_features = in_features
        self.num_objects, self.num_classes, self.embed_dim = sentences.shape
        self.proj = nn.Linear(in_features, self.embed_dim, bias=bias)
        self.register_buffer("sentences", sentences.detach().clone().float())
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """PyTorch's default initialisation of the projection."""
        self.proj.reset_parameters()

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, objects={self.num_objects}, "
            f"classes={self.num_classes}, embed_dim={self.embed_dim}"
        )

    def forward(self, x: Tensor, object_labels: Tensor, mask: MaskOrRows | None = None) -> Tensor:
        """Logits of the ``C`` classes, against each pair's object-class sentences (on the
        valid rows when a mask is given)."""
        mask, rows = split_mask(mask)
        dims: dict[str, tuple[int, str]] = {}
        check_tensor(x, "x", ("...", self.in_features), dims=dims, dtype="float")
        check_tensor(object_labels, "object_labels", tuple(x.shape[:-1]), dtype="int")
        check_param_dtype(self.proj.weight, ("x", x))
        labels = object_labels
        if mask is not None:
            check_tensor(mask, "mask", tuple(x.shape[:-1]), dtype="bool")
            labels = labels.masked_fill(~mask, 0)
        if labels.numel() and values_readable(labels):
            lo, hi = int(labels.min()), int(labels.max())
            if lo < 0 or hi >= self.num_objects:
                raise ValueError(
                    f"object_labels: expected classes in [0, {self.num_objects}), got [{lo}, {hi}]"
                )
        resolved = resolve_rows(True, mask, x.shape[:-1], rows)
        if resolved is not None:
            picked = resolved.gather(labels.unsqueeze(-1)).squeeze(-1)
            return resolved.scatter(self._logits(resolved.gather(x), picked))
        if mask is not None:
            x = x.masked_fill(~mask.unsqueeze(-1), 0.0)  # padding reaches no weight gradient
        logits = self._logits(x, labels)
        return logits if mask is None else logits.masked_fill(~mask.unsqueeze(-1), 0.0)

    def _logits(self, x: Tensor, labels: Tensor) -> Tensor:
        f = self.proj(x)
        n_obj, C, E = self.sentences.shape
        table = self.sentences.to(f.dtype).reshape(n_obj * C, E)
        every = (f @ table.transpose(0, 1)).unflatten(-1, (n_obj, C))  # (..., O, C)
        index = labels.unsqueeze(-1).unsqueeze(-1).expand(*labels.shape, 1, C)
        return every.gather(-2, index).squeeze(-2)


class TripletCategoryClassifier(nn.Module):
    """ARN's triplet-category classifier of one predicate group (Sec. 3.2, Eq. 15).

    Classes are the ``P x O`` (predicate, object) categories of the group, predicate-major
    (category ``p * O + o``). Their logits come from an [`ActionSemanticMatcher`][] with
    ``similarity="cosine"``, a learnable temperature and a projection to the text width (the
    paper does not give its ``sim`` or the projection: cosine with CLIP's temperature is the
    choice here, the form CLIP's embeddings are made for), and the text rows trainable
    (``trainable_text``; ARN fine-tunes them at a learning rate of 1e-5:
    [`text_parameters`][]). Probabilities are sigmoids (Eq. 7 and ARN's inference; its text
    says softmax). A predicate's probability is the largest of its categories' (Eq. 15), so
    the category's object need not agree with the detected object class.

    Args:
        in_features: width ``D`` of the predicate features.
        text_embeddings: ``(P, O, E)`` CLIP embeddings of the group's triplet prompts
            ([`text.arn_prompts`][dsgg_layers.text.arn_prompts], one sentence per predicate and
            object).
        trainable_text: fine-tune the text rows (default ``True``, as ARN).
        temperature: initial temperature (default CLIP's 0.07).
        prior: the initial probability of every category, set through the shared bias
            (``-log((1 - prior) / prior)``, Lin et al.'s focal-loss initialisation: with
            hundreds of categories and a bias of 0, the first steps of a focal loss are spent
            pushing every negative down); ``None`` keeps the bias at 0.

    Shape:
        - input: ``(..., D)``
        - output: ``(..., P * O)`` category logits; [`predicate_probabilities`][] gives
          ``(..., P)``

    Raises:
        TypeError, ValueError: ``text_embeddings`` is not a ``(P, O, E)`` float tensor, or the
            input width is not ``D``.

    Examples:
        >>> E = torch.nn.functional.normalize(torch.randn(3, 35, 512), dim=-1)  # attention group
        >>> clf = TripletCategoryClassifier(256, E)
        >>> logits = clf(torch.randn(2, 100, 256))                   # (frames, queries, D)
        >>> logits.shape, clf.predicate_probabilities(logits).shape
        (torch.Size([2, 100, 105]), torch.Size([2, 100, 3]))
    """

    def __init__(
        self,
        in_features: int,
        text_embeddings: Tensor,
        *,
        trainable_text: bool = True,
        temperature: float = 0.07,
        prior: float | None = 0.01,
    ) -> None:
        super().__init__()
        check_tensor(text_embeddings, "text_embeddings", ("P", "O", "E"), dtype="float")
        if prior is not None and not 0.0 < prior < 1.0:
            raise ValueError(f"prior: expected None or a probability in (0, 1), got {prior}")
        self.prior = prior
        self.num_predicates, self.num_objects, _ = text_embeddings.shape
        self.matcher = ActionSemanticMatcher(
            in_features, text_embeddings.flatten(0, 1), similarity="cosine",
            temperature=temperature, trainable_text=trainable_text,
        )  # fmt: skip
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Reset the projection, temperature and bias (the text rows keep their values)."""
        self.matcher.reset_parameters()
        if self.prior is not None and self.matcher.logit_bias is not None:
            with torch.no_grad():
                self.matcher.logit_bias.fill_(-math.log((1 - self.prior) / self.prior))

    def no_weight_decay(self) -> set[str]:
        """The matcher's temperature and bias, and the text rows (initialised from CLIP: decay
        would pull them to 0)."""
        names = {f"matcher.{n}" for n in self.matcher.no_weight_decay()}
        return names | {"matcher.text_embeddings" for _ in self.matcher.text_parameters()}

    def text_parameters(self) -> list[nn.Parameter]:
        """The trainable text rows (their own learning rate in ARN)."""
        return self.matcher.text_parameters()

    def extra_repr(self) -> str:
        return f"predicates={self.num_predicates}, objects={self.num_objects}"

    def forward(self, x: Tensor) -> Tensor:
        """Category logits ``(..., P * O)``."""
        return self.matcher(x)

    def predicate_logits(self, logits: Tensor) -> Tensor:
        """``(..., P)``: each predicate's largest category logit (Eq. 15 before the sigmoid,
        which is monotone: what a sigmoid loss or a matcher takes)."""
        check_tensor(logits, "logits", ("...", self.num_predicates * self.num_objects),
                     dtype="float")  # fmt: skip
        return logits.unflatten(-1, (self.num_predicates, self.num_objects)).amax(-1)

    def predicate_probabilities(self, logits: Tensor) -> Tensor:
        """``(..., P)``: each predicate's largest category probability (Eq. 15)."""
        return self.predicate_logits(logits).sigmoid()

    def category_targets(self, predicates: Tensor, object_labels: Tensor) -> Tensor:
        """The category targets ``(..., P * O)`` of annotated predicates and object classes:
        category ``(p, o)`` is 1 where predicate ``p`` holds and the object is of class ``o``.

        Args:
            predicates: ``(..., P)`` bool labels of the group.
            object_labels: ``(...)`` object classes in ``[0, O)`` (the table's columns; for
                Action Genome with ``arn_prompts()``, the label minus one: the person has no
                column). Labels are read only where a predicate holds.

        Raises:
            TypeError, ValueError: shapes or dtypes disagree, or (CPU) a labelled object class
                is outside ``[0, O)``.
        """
        check_tensor(predicates, "predicates", ("...", self.num_predicates), dtype="bool")
        check_tensor(object_labels, "object_labels", tuple(predicates.shape[:-1]), dtype="int")
        has = predicates.any(-1)
        labels = object_labels.masked_fill(~has, 0)
        if labels.numel() and values_readable(labels):
            lo, hi = int(labels.min()), int(labels.max())
            if lo < 0 or hi >= self.num_objects:
                raise ValueError(
                    f"object_labels: expected classes in [0, {self.num_objects}), got [{lo}, {hi}]"
                )
        onehot = torch.nn.functional.one_hot(labels, self.num_objects).bool()
        return (predicates.unsqueeze(-1) & onehot.unsqueeze(-2)).flatten(-2)
