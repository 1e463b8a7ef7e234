"""Package-level checks: public API, version, docstrings."""

import importlib
import inspect
import re
from pathlib import Path

import pytest

import dsgg_layers

ROOT = Path(__file__).resolve().parents[1]
MODULES = sorted(  # every public module of the package (a new one is checked without listing it)
    p.stem for p in (ROOT / "dsgg_layers").glob("*.py") if not p.stem.startswith("_")
)
# Namespaces whose names are not re-exported at the top level: module -> its package.
SUBPACKAGE_MODULES = {
    "data.batch": "data",
    "data.graph": "data",
    "data.action_genome": "data",
    "data.synthetic": "data",
    "data.probe": "data",
    "data.segments": "data",
    "data.language": "data",
    "metrics.action_genome": "metrics",
    "metrics.base": "metrics",
    "metrics.vidvrd": "metrics",
    "metrics.relation_association": "metrics",
}


def test_version_single_source():
    pyproject = (ROOT / "pyproject.toml").read_text()
    # the version is read from the package, never written twice
    assert 'dynamic = ["version"]' in pyproject
    assert re.fullmatch(r"\d+\.\d+\.\d+(\.dev\d+|rc\d+)?", dsgg_layers.__version__)


def test_all_names_exist_and_are_unique():
    assert len(dsgg_layers.__all__) == len(set(dsgg_layers.__all__))
    for name in dsgg_layers.__all__:
        assert hasattr(dsgg_layers, name), name


@pytest.mark.parametrize("module_name", MODULES)
def test_module_all_is_reexported(module_name):
    module = importlib.import_module(f"dsgg_layers.{module_name}")
    for name in module.__all__:
        assert hasattr(module, name), f"{module_name}.{name}"
        if module_name not in ("text", "vocab"):  # exported as namespaces
            assert getattr(dsgg_layers, name) is getattr(module, name), name


@pytest.mark.parametrize(("module_name", "package"), sorted(SUBPACKAGE_MODULES.items()))
def test_subpackage_exports(module_name, package):
    module = importlib.import_module(f"dsgg_layers.{module_name}")
    pkg = importlib.import_module(f"dsgg_layers.{package}")
    for name in module.__all__:
        assert name in pkg.__all__, f"{module_name}.{name} is not re-exported by {package}"
        assert getattr(pkg, name) is getattr(module, name), name


def _public_callables():
    for module_name in [*MODULES, *SUBPACKAGE_MODULES]:
        module = importlib.import_module(f"dsgg_layers.{module_name}")
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isfunction(obj) or inspect.isclass(obj):
                yield f"{module_name}.{name}", obj


@pytest.mark.parametrize(("qualname", "obj"), list(_public_callables()))
def test_public_docstrings_have_example(qualname, obj):
    doc = inspect.getdoc(obj) or ""
    assert doc, f"{qualname} has no docstring"
    assert "Example:" in doc or ">>>" in doc, f"{qualname} has no runnable example"
    if inspect.isclass(obj) and issubclass(obj, __import__("torch").nn.Module):
        assert "Shape:" in doc, f"{qualname} has no Shape section"
        # OpenCLIPTextTower holds a pretrained model's modules: nothing of its own to initialise
        if obj.__name__ != "OpenCLIPTextTower":
            assert hasattr(obj, "reset_parameters"), f"{qualname} has no reset_parameters"


def test_py_typed_is_shipped():
    assert (ROOT / "dsgg_layers" / "py.typed").exists()


def test_no_private_name_is_imported_across_modules():
    """A name another module needs is public (or lives in a private helper module such as
    ``_checks`` / ``_ops`` under a public name), never reached for with a leading underscore."""
    import ast

    found = []
    for path in sorted((ROOT / "dsgg_layers").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("dsgg_layers"):
                found += [f"{path.name}: {node.module}.{a.name}" for a in node.names
                          if a.name.startswith("_")]  # fmt: skip
    assert not found, found
