"""The Action Genome vocabulary (36 object classes, 26 predicates in three groups) and `Vocabulary`.

Object classes are in the order of the public annotation files (``person`` is index 0; STTran's
code prepends a ``__background__`` class, so its object indices are these plus one). Predicates
are in the order of the public ``relationship_classes.txt``: attention (3), spatial (6),
contacting (17). The raw annotation files spell names without separators (``closetcabinet``,
``lookingat``, ``notcontactingwith``); [`normalize_object_name`][] and
[`normalize_predicate_name`][] map them to the names used here.

>>> len(OBJECT_CLASSES), len(PREDICATES)
(36, 26)
>>> PREDICATES[PREDICATE_GROUPS["spatial"]]
('above', 'beneath', 'in_front_of', 'behind', 'on_the_side_of', 'in')
>>> normalize_predicate_name("notcontactingwith"), normalize_object_name("sofacouch")
('not_contacting', 'sofa/couch')
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from types import MappingProxyType

__all__ = [
    "ACTION_GENOME",
    "ATTENTION_PREDICATES",
    "CONTACTING_PREDICATES",
    "OBJECT_CLASSES",
    "PERSON_INDEX",
    "PREDICATES",
    "PREDICATE_GROUPS",
    "PREDICATE_GROUP_OF",
    "SPATIAL_PREDICATES",
    "Vocabulary",
    "normalize_object_name",
    "normalize_predicate_name",
    "object_index",
    "predicate_index",
]

OBJECT_CLASSES: tuple[str, ...] = (
    "person", "bag", "bed", "blanket", "book", "box", "broom", "chair", "closet/cabinet",
    "clothes", "cup/glass/bottle", "dish", "door", "doorknob", "doorway", "floor", "food",
    "groceries", "laptop", "light", "medicine", "mirror", "paper/notebook", "phone/camera",
    "picture", "pillow", "refrigerator", "sandwich", "shelf", "shoe", "sofa/couch", "table",
    "television", "towel", "vacuum", "window",
)  # fmt: skip
"""The 36 object classes, in the order of the public annotation files."""

PERSON_INDEX: int = 0
"""Index of ``person`` in [`OBJECT_CLASSES`][]: the subject of every relation."""

ATTENTION_PREDICATES: tuple[str, ...] = ("looking_at", "not_looking_at", "unsure")
"""Attention predicates (person -> object; exactly one per pair)."""

SPATIAL_PREDICATES: tuple[str, ...] = (
    "above", "beneath", "in_front_of", "behind", "on_the_side_of", "in",
)  # fmt: skip
"""Spatial predicates (object -> person in the public evaluator; multi-label)."""

CONTACTING_PREDICATES: tuple[str, ...] = (
    "carrying", "covered_by", "drinking_from", "eating", "have_it_on_the_back", "holding",
    "leaning_on", "lying_on", "not_contacting", "other_relationship", "sitting_on",
    "standing_on", "touching", "twisting", "wearing", "wiping", "writing_on",
)  # fmt: skip
"""Contacting predicates (person -> object; multi-label)."""

PREDICATES: tuple[str, ...] = ATTENTION_PREDICATES + SPATIAL_PREDICATES + CONTACTING_PREDICATES
"""All 26 predicates: attention, then spatial, then contacting."""

PREDICATE_GROUPS: MappingProxyType[str, slice] = MappingProxyType(
    {
        "attention": slice(0, 3),
        "spatial": slice(3, 9),
        "contacting": slice(9, 26),
    }
)
"""Index range of each predicate group in [`PREDICATES`][] (read-only mapping)."""

PREDICATE_GROUP_OF: MappingProxyType[str, str] = MappingProxyType(
    {p: g for g, s in PREDICATE_GROUPS.items() for p in PREDICATES[s]}
)
"""The group of each predicate, e.g. ``PREDICATE_GROUP_OF["holding"] == "contacting"``."""


def _squash(name: str) -> str:
    """Lower case without separators; ``""`` (matches nothing) for any other character, so that
    ``"3bed3"`` or ``"bed!"`` are not taken for ``"bed"``."""
    low = name.strip().lower()
    return re.sub(r"[ _/-]", "", low) if re.fullmatch(r"[a-z _/-]+", low) else ""


_OBJECT_BY_KEY = {_squash(c): c for c in OBJECT_CLASSES}
_PREDICATE_BY_KEY = {_squash(p): p for p in PREDICATES}
# Raw spelling of the annotation files that is not just the name without separators.
_PREDICATE_BY_KEY["notcontactingwith"] = "not_contacting"


def normalize_object_name(name: str) -> str:
    """Map any spelling of an Action Genome object class to its name in [`OBJECT_CLASSES`][].

    Case and separators (``_``, ``/``, ``-``, spaces) are ignored, so the raw ``closetcabinet``
    and the STTran spelling ``closet/cabinet`` both give ``closet/cabinet``; any other character
    (a digit, punctuation) makes the name unknown.

    Args:
        name: a raw or normalised class name.

    Raises:
        TypeError: ``name`` is not a string.
        ValueError: ``name`` is not an Action Genome object class.

    Examples:
        >>> normalize_object_name("cupglassbottle")
        'cup/glass/bottle'
    """
    return _normalize(name, _OBJECT_BY_KEY, "object class")


def normalize_predicate_name(name: str) -> str:
    """Map any spelling of an Action Genome predicate to its name in [`PREDICATES`][].

    Args:
        name: a raw (``lookingat``, ``notcontactingwith``) or normalised predicate name.

    Raises:
        TypeError: ``name`` is not a string.
        ValueError: ``name`` is not an Action Genome predicate.

    Examples:
        >>> normalize_predicate_name("infrontof")
        'in_front_of'
    """
    return _normalize(name, _PREDICATE_BY_KEY, "predicate")


def _normalize(name: str, table: dict[str, str], what: str) -> str:
    if not isinstance(name, str):
        raise TypeError(f"name: expected a str, got {type(name).__name__}")
    try:
        return table[_squash(name)]
    except KeyError:
        raise ValueError(f"name: {name!r} is not an Action Genome {what}") from None


def object_index(name: str) -> int:
    """Index of an object class (any spelling) in [`OBJECT_CLASSES`][].

    Examples:
        >>> object_index("phonecamera")
        23
    """
    return OBJECT_CLASSES.index(normalize_object_name(name))


def predicate_index(name: str) -> int:
    """Index of a predicate (any spelling) in [`PREDICATES`][].

    Examples:
        >>> predicate_index("writingon")
        25
    """
    return PREDICATES.index(normalize_predicate_name(name))


@dataclass(frozen=True)
class Vocabulary:
    """The class names of a dataset: predicates in contiguous groups, objects and subjects.

    Action Genome's is the default everywhere ([`ACTION_GENOME`][]: 26 predicates in the
    attention / spatial / contacting groups, 36 object classes, the person as the only subject).
    VidVRD-style data has one group of predicates and subjects from the object classes:
    [`single_group`][].

    Args:
        predicates: predicate names, in label order.
        groups: ``(name, start, stop)`` ranges of the predicate groups, contiguous, in order,
            covering every predicate.
        object_classes: object class names, in label order.
        subject_classes: subject class names; ``None`` means the object classes.
        name: the dataset's name (for messages and reprs).

    Raises:
        ValueError: names repeat, or the groups do not tile the predicates.

    Examples:
        >>> ACTION_GENOME.num_predicates, list(ACTION_GENOME.predicate_groups)
        (26, ['attention', 'spatial', 'contacting'])
        >>> vrd = Vocabulary.single_group(["ride", "chase"], ["dog", "person", "bicycle"])
        >>> vrd.num_predicates, vrd.predicate_groups, vrd.subject_classes
        (2, {'predicate': slice(0, 2, None)}, ('dog', 'person', 'bicycle'))
    """

    predicates: tuple[str, ...]
    groups: tuple[tuple[str, int, int], ...]
    object_classes: tuple[str, ...]
    subject_classes: tuple[str, ...] | None = None
    name: str = ""

    def __post_init__(self) -> None:
        for what in ("predicates", "object_classes", "subject_classes"):
            names = getattr(self, what)
            if names is None and what == "subject_classes":
                continue
            if isinstance(names, str) or not isinstance(names, Sequence):
                raise TypeError(f"{what}: expected a sequence of names, got {names!r}")
            if not all(isinstance(n, str) and n for n in names):
                raise TypeError(f"{what}: expected non-empty str names, got {list(names)[:4]}")
            object.__setattr__(self, what, tuple(names))
        groups = []
        for g in self.groups:
            if not (isinstance(g, Sequence) and len(g) == 3 and isinstance(g[0], str)):
                raise TypeError(f"groups: expected (name, start, stop) items, got {g!r}")
            groups.append((g[0], int(g[1]), int(g[2])))
        object.__setattr__(self, "groups", tuple(groups))
        if self.subject_classes is None:
            object.__setattr__(self, "subject_classes", self.object_classes)
        for what in ("predicates", "object_classes", "subject_classes"):
            if not getattr(self, what):
                raise ValueError(f"{what}: expected at least one name, got none")
        for what, names in (
            ("predicates", self.predicates),
            ("object_classes", self.object_classes),
            ("subject_classes", self.subject_classes),
            ("groups", [g for g, _, _ in self.groups]),
        ):
            if len(set(names)) != len(names):
                raise ValueError(f"{what}: expected unique names, got {list(names)}")
        stop = 0
        for group, a, b in self.groups:
            if a != stop or b <= a:
                raise ValueError(
                    f"groups: expected contiguous non-empty ranges in order, got {group!r} = "
                    f"[{a}, {b}) after {stop}"
                )
            stop = b
        if stop != len(self.predicates):
            raise ValueError(
                f"groups: expected ranges covering the {len(self.predicates)} predicates, "
                f"they end at {stop}"
            )

    @classmethod
    def single_group(
        cls,
        predicates: Sequence[str],
        object_classes: Sequence[str],
        *,
        subject_classes: Sequence[str] | None = None,
        group: str = "predicate",
        name: str = "",
    ) -> Vocabulary:
        """One group holding every predicate (VidVRD / VidOR style)."""
        if isinstance(predicates, str) or not isinstance(predicates, Sequence):
            raise TypeError(f"predicates: expected a sequence of names, got {predicates!r}")
        return cls(
            predicates, ((group, 0, len(predicates)),), object_classes, subject_classes, name
        )

    @property
    def num_predicates(self) -> int:
        """Number of predicate classes (the width of a graph's ``relations``)."""
        return len(self.predicates)

    @property
    def predicate_groups(self) -> dict[str, slice]:
        """Index range of each predicate group, in order."""
        return {g: slice(a, b) for g, a, b in self.groups}

    def to_dict(self) -> dict[str, object]:
        """Plain lists and strings (``torch.save`` with ``weights_only`` loading)."""
        return {
            "predicates": list(self.predicates),
            "groups": [list(g) for g in self.groups],
            "object_classes": list(self.object_classes),
            "subject_classes": list(self.subject_classes or ()),
            "name": self.name,
        }

    @classmethod
    def from_dict(cls, state: dict[str, object]) -> Vocabulary:
        """Inverse of [`to_dict`][]."""
        return cls(
            tuple(state["predicates"]),  # type: ignore[arg-type]
            tuple(tuple(g) for g in state["groups"]),  # type: ignore[union-attr, misc]
            tuple(state["object_classes"]),  # type: ignore[arg-type]
            tuple(state["subject_classes"]) or None,  # type: ignore[arg-type]
            str(state.get("name", "")),
        )


ACTION_GENOME = Vocabulary(
    PREDICATES,
    tuple((g, s.start, s.stop) for g, s in PREDICATE_GROUPS.items()),
    OBJECT_CLASSES,
    ("person",),
    "Action Genome",
)
"""Action Genome's vocabulary: the default of [`VideoGraph`][dsgg_layers.data.graph.VideoGraph]."""
