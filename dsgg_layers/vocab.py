"""The Action Genome vocabulary: 36 object classes, 26 predicates in three groups (SPEC §4).

Object classes are in the order of the public annotation files (``person`` is index 0; STTran's
code prepends a ``__background__`` class, so its object indices are these plus one). Predicates
are in the order of the public ``relationship_classes.txt``: attention (3), spatial (6),
contacting (17). The raw annotation files spell names without separators (``closetcabinet``,
``lookingat``, ``notcontactingwith``); :func:`normalize_object_name` and
:func:`normalize_predicate_name` map them to the names used here.

>>> len(OBJECT_CLASSES), len(PREDICATES)
(36, 26)
>>> PREDICATES[PREDICATE_GROUPS["spatial"]]
('above', 'beneath', 'in_front_of', 'behind', 'on_the_side_of', 'in')
>>> normalize_predicate_name("notcontactingwith"), normalize_object_name("sofacouch")
('not_contacting', 'sofa/couch')
"""

from __future__ import annotations

import re
from types import MappingProxyType

__all__ = [
    "ATTENTION_PREDICATES",
    "CONTACTING_PREDICATES",
    "OBJECT_CLASSES",
    "PERSON_INDEX",
    "PREDICATES",
    "PREDICATE_GROUPS",
    "PREDICATE_GROUP_OF",
    "SPATIAL_PREDICATES",
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
"""Index of ``person`` in :data:`OBJECT_CLASSES`: the subject of every relation."""

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
"""Index range of each predicate group in :data:`PREDICATES` (read-only mapping)."""

PREDICATE_GROUP_OF: MappingProxyType[str, str] = MappingProxyType(
    {p: g for g, s in PREDICATE_GROUPS.items() for p in PREDICATES[s]}
)
"""The group of each predicate, e.g. ``PREDICATE_GROUP_OF["holding"] == "contacting"``."""


def _squash(name: str) -> str:
    return re.sub(r"[^a-z]", "", name.lower())


_OBJECT_BY_KEY = {_squash(c): c for c in OBJECT_CLASSES}
_PREDICATE_BY_KEY = {_squash(p): p for p in PREDICATES}
# Raw spelling of the annotation files that is not just the name without separators.
_PREDICATE_BY_KEY["notcontactingwith"] = "not_contacting"


def normalize_object_name(name: str) -> str:
    """Map any spelling of an Action Genome object class to its name in :data:`OBJECT_CLASSES`.

    Case and separators (``_``, ``/``, spaces) are ignored, so the raw ``closetcabinet`` and the
    STTran spelling ``closet/cabinet`` both give ``closet/cabinet``.

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
    """Map any spelling of an Action Genome predicate to its name in :data:`PREDICATES`.

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
    """Index of an object class (any spelling) in :data:`OBJECT_CLASSES`.

    Examples:
        >>> object_index("phonecamera")
        23
    """
    return OBJECT_CLASSES.index(normalize_object_name(name))


def predicate_index(name: str) -> int:
    """Index of a predicate (any spelling) in :data:`PREDICATES`.

    Examples:
        >>> predicate_index("writingon")
        25
    """
    return PREDICATES.index(normalize_predicate_name(name))
