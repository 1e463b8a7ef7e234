import pytest

from dsgg_layers import vocab
from dsgg_layers.vocab import (
    OBJECT_CLASSES,
    PREDICATE_GROUP_OF,
    PREDICATE_GROUPS,
    PREDICATES,
    normalize_object_name,
    normalize_predicate_name,
    object_index,
    predicate_index,
)

# The raw spellings of the public annotation files (object_classes.txt and
# relationship_classes.txt of Action Genome), in file order.
RAW_OBJECTS = (
    "person bag bed blanket book box broom chair closetcabinet clothes cupglassbottle dish door "
    "doorknob doorway floor food groceries laptop light medicine mirror papernotebook phonecamera "
    "picture pillow refrigerator sandwich shelf shoe sofacouch table television towel vacuum "
    "window"
).split()
RAW_PREDICATES = (
    "lookingat notlookingat unsure above beneath infrontof behind onthesideof in carrying "
    "coveredby drinkingfrom eating haveitontheback holding leaningon lyingon notcontactingwith "
    "otherrelationship sittingon standingon touching twisting wearing wiping writingon"
).split()


def test_sizes_and_groups():
    assert len(OBJECT_CLASSES) == 36 and len(set(OBJECT_CLASSES)) == 36
    assert len(PREDICATES) == 26 and len(set(PREDICATES)) == 26
    sizes = {g: s.stop - s.start for g, s in PREDICATE_GROUPS.items()}
    assert sizes == {"attention": 3, "spatial": 6, "contacting": 17}
    # the groups tile 0..26 without gaps, in order
    bounds = [(s.start, s.stop) for s in PREDICATE_GROUPS.values()]
    assert bounds == [(0, 3), (3, 9), (9, 26)]
    assert PREDICATES[PREDICATE_GROUPS["attention"]] == vocab.ATTENTION_PREDICATES
    assert PREDICATES[PREDICATE_GROUPS["contacting"]] == vocab.CONTACTING_PREDICATES
    assert PREDICATE_GROUP_OF["in"] == "spatial"
    assert PREDICATE_GROUP_OF["unsure"] == "attention"
    assert OBJECT_CLASSES[vocab.PERSON_INDEX] == "person"


def test_raw_spellings_map_in_file_order():
    assert [normalize_object_name(n) for n in RAW_OBJECTS] == list(OBJECT_CLASSES)
    assert [normalize_predicate_name(n) for n in RAW_PREDICATES] == list(PREDICATES)
    assert [object_index(n) for n in RAW_OBJECTS] == list(range(36))
    assert [predicate_index(n) for n in RAW_PREDICATES] == list(range(26))


@pytest.mark.parametrize(
    ("raw", "name"),
    [
        ("not_contacting", "not_contacting"),
        ("notcontacting", "not_contacting"),
        ("Looking At", "looking_at"),
        ("on-the-side-of", "on_the_side_of"),
        ("have_it_on_the_back", "have_it_on_the_back"),
    ],
)
def test_predicate_spellings(raw, name):
    assert normalize_predicate_name(raw) == name


def test_names_are_idempotent():
    for name in OBJECT_CLASSES:
        assert normalize_object_name(name) == name
    for name in PREDICATES:
        assert normalize_predicate_name(name) == name


def test_errors():
    with pytest.raises(ValueError, match="'dog' is not an Action Genome object class"):
        normalize_object_name("dog")
    with pytest.raises(ValueError, match="not an Action Genome predicate"):
        predicate_index("flying")
    with pytest.raises(TypeError, match="name: expected a str, got int"):
        normalize_predicate_name(3)


def test_groups_are_read_only():
    with pytest.raises(TypeError):
        PREDICATE_GROUPS["attention"] = slice(0, 1)
