"""The catalog (tests/catalog.py): every exported name has its paper, the generated tables are
current, every block and function documents its sections, and the differentiable functions
pass gradcheck in float64."""

from __future__ import annotations

import inspect
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import dsgg_layers as L
from dsgg_layers.data import pair_geometry

sys.path.insert(0, str(Path(__file__).resolve().parent))
from catalog import CATALOG, PAPERS, ROOT, TARGETS, api_page, resolve, with_table
from registry import ENTRIES, UNREGISTERED


def test_every_exported_name_has_its_paper_and_resolves():
    assert set(L.__all__) <= set(CATALOG), sorted(set(L.__all__) - set(CATALOG))
    for name, keys in CATALOG.items():
        resolve(name)  # raises when the name is gone
        assert keys and set(keys) <= {*PAPERS, "library"}, name
        if keys != ("library",):
            assert (ROOT / "docs" / api_page(name)).is_file(), name


def test_the_readme_and_docs_tables_are_generated_from_the_catalog():
    for path, links in TARGETS.items():
        text = path.read_text()
        assert text == with_table(text, links), f"{path.name}: run python tests/catalog.py --write"


def _public() -> list[tuple[str, object]]:
    out = []
    for name in L.__all__:
        obj = getattr(L, name)
        if inspect.isfunction(obj) or (inspect.isclass(obj) and issubclass(obj, nn.Module)):
            out.append((name, obj))
    return out


@pytest.mark.parametrize(("name", "obj"), _public(), ids=[n for n, _ in _public()])
def test_every_block_and_function_documents_its_sections(name, obj):
    doc = inspect.getdoc(obj) or ""
    if inspect.isclass(obj):
        init = inspect.signature(obj.__init__).parameters
        wanted = ["Shape:", "Raises:", "Example"] + (["Args:"] if len(init) > 1 else [])
    else:
        wanted = ["Example"] + (["Args:"] if inspect.signature(obj).parameters else [])
        assert "Returns:" in doc or "Shape:" in doc, f"{name}: no Returns: or Shape: section"
    missing = [w for w in wanted if w not in doc]
    assert not missing, f"{name}: its docstring lacks {missing}"


def test_every_module_is_registered_in_the_battery():
    modules = {n for n, o in _public() if inspect.isclass(o)}
    assert modules - UNREGISTERED <= {e.name.split("(")[0] for e in ENTRIES}


# ----------------------------------------------- gradcheck of the differentiable functions


def _boxes(*lead):
    g = torch.Generator().manual_seed(len(lead))
    xy = torch.rand(*lead, 2, generator=g, dtype=torch.float64) * 0.5
    wh = 0.1 + torch.rand(*lead, 2, generator=g, dtype=torch.float64) * 0.4
    return torch.cat((xy, xy + wh), -1)


def _r(*shape):
    return torch.randn(*shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))


_MASK = torch.tensor([[True, False, True], [True, True, False]])
_MATCH = L.MatchIndex(torch.tensor([0, 1]), torch.tensor([2, 0]), torch.tensor([1, 0]))


def _cxcywh(*lead):
    return L.box_convert(_boxes(*lead), "xyxy", "cxcywh")


GRADCHECK = {  # name -> (function of the float inputs, the float inputs)
    "box_area": (L.box_area, (_boxes(3),)),
    "box_center": (L.box_center, (_boxes(3),)),
    "box_union": (L.box_union, (_boxes(3), _boxes(3, 1)[:, 0])),
    "box_iou": (L.box_iou, (_boxes(3), _boxes(2))),
    "generalized_box_iou": (L.generalized_box_iou, (_boxes(3), _boxes(2))),
    "elementwise_box_iou": (L.elementwise_box_iou, (_boxes(3), _boxes(3, 1)[:, 0])),
    "elementwise_generalized_box_iou": (
        L.elementwise_generalized_box_iou, (_boxes(3), _boxes(3, 1)[:, 0])),
    "box_convert": (lambda b: L.box_convert(b, "xyxy", "cxcywh"), (_boxes(3),)),
    "normalize_boxes": (lambda b: L.normalize_boxes(b, (2.0, 3.0)), (_boxes(3),)),
    "motion_attributes": (lambda s, o: L.motion_attributes(s, o, torch.ones(2, 4, 1).bool(),
                                                           image_size=(1.0, 1.0)),
                          (_boxes(2, 4, 1), _boxes(2, 4, 1, 1)[..., 0, :])),
    "masked_pool": (lambda x: L.masked_pool(x, _MASK, mode="mean"), (_r(2, 3, 4),)),
    "masked_attention": (lambda q, k, v: L.masked_attention(q, k, v, key_mask=_MASK)[0],
                         (_r(2, 1, 3, 4), _r(2, 1, 3, 4), _r(2, 1, 3, 4))),  # (B, H, L, E)
    "prepend_tokens": (lambda x, t: L.prepend_tokens(x, _MASK, t)[0], (_r(2, 3, 4), _r(1, 4))),
    "gather_previous": (lambda x: L.gather_previous(x, _MASK)[0], (_r(2, 3, 4),)),
    "track_differences": (lambda x: L.track_differences(x, _MASK)[0], (_r(2, 3, 4),)),
    "category_weighted_bce": (
        lambda x: L.category_weighted_bce(x, (_r(2, 3, 4) > 0).double(), torch.ones(4).double(),
                                          mask=_MASK), (_r(2, 3, 4),)),
    "softmax_focal_loss": (lambda x: L.softmax_focal_loss(x, torch.zeros(2, 3).long(), mask=_MASK),
                           (_r(2, 3, 4),)),
    "sigmoid_focal_loss": (lambda x: L.sigmoid_focal_loss(x, _r(2, 3, 4) > 0, mask=_MASK),
                           (_r(2, 3, 4),)),
    "multilabel_focal_loss": (lambda x: L.multilabel_focal_loss(x, _r(2, 3, 4) > 0, mask=_MASK),
                              (_r(2, 3, 4),)),
    "multilabel_margin_loss": (lambda s: L.multilabel_margin_loss(s, _r(2, 3, 4) > 0, mask=_MASK),
                               (_r(2, 3, 4),)),
    "feature_distillation_loss": (lambda a, b: L.feature_distillation_loss(a, b, _MASK[0]),
                                  (_r(3, 2, 4), _r(3, 2, 4))),
    "embedding_alignment_loss": (lambda a, b: L.embedding_alignment_loss(a, b, _MASK),
                                 (_r(2, 3, 4), _r(2, 3, 4))),
    "token_cosine_logits": (
        lambda t: L.token_cosine_logits(t, F.normalize(_r(5, 4), dim=-1), torch.tensor(0.1)),
        (_r(3, 2, 4),)),
    "triplet_score": (L.triplet_score, (_r(2, 3, 4).sigmoid(), _r(2, 3).sigmoid())),
    "matched_class_loss": (
        lambda x: L.matched_class_loss(x, torch.tensor([[1, 3], [0, 2]]), _MATCH), (_r(2, 3, 4),)),
    "matched_box_losses": (
        lambda s, o: sum(L.matched_box_losses({"subject_boxes": s, "object_boxes": o},
                                              {"subject_boxes": _cxcywh(2, 2),
                                               "object_boxes": _cxcywh(2, 2)}, _MATCH)),
        (_cxcywh(2, 3), _cxcywh(2, 3))),
    "pair_geometry": (lambda s, o: pair_geometry(s * 20, o * 20),
                      (_boxes(3), _boxes(3, 1)[:, 0])),
}  # fmt: skip


@pytest.mark.parametrize("name", list(GRADCHECK))
def test_differentiable_functions_pass_gradcheck(name):
    fn, inputs = GRADCHECK[name]
    leaves = tuple(x.detach().clone().requires_grad_() for x in inputs)
    assert torch.autograd.gradcheck(fn, leaves)
