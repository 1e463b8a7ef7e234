"""The Python in README.md and docs/ runs as written.

Fenced ```python blocks are run (each file's blocks in order, in one namespace); blocks that only
illustrate (paths to real data, downloads) are fenced ```py and shown, not run.
"""

import re
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
FILES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)


@pytest.mark.parametrize("path", [p for p in FILES if blocks(p)], ids=lambda p: p.name)
def test_python_blocks_run(path):
    namespace: dict = {}
    for block in blocks(path):
        exec(compile(block, str(path), "exec"), namespace)


def test_readme_example_round_trips_features():
    namespace: dict = {}
    for block in blocks(ROOT / "README.md"):
        exec(compile(block, "README.md", "exec"), namespace)
    feats = namespace["feats"]
    assert feats.shape == (5, 64) and torch.isfinite(feats).all()


def test_mosa_snippet_returns_flat_rows():
    namespace: dict = {}
    for block in blocks(ROOT / "docs" / "mosa.md"):
        exec(compile(block, "mosa.md", "exec"), namespace)
    assert namespace["rel_features"].shape == (3, 64)
    # the hook on STTran's own attribute path fired: the rows are motion-aware, not the plain ones
    assert not torch.allclose(namespace["rel_features"], namespace["plain"])
    assert torch.isfinite(namespace["rel_features"]).all()
    # the hook computes MFE + MIM on the pair tracks of STTran's spatial output
    from dsgg_layers import from_sttran

    model, entry = namespace["model"].eval(), namespace["entry"]
    got = model(entry)
    p = from_sttran(entry)
    x = p.to_tracks(2 * entry["features"][entry["pair_idx"][:, 1]])  # the stand-in doubles
    m = model.mfe(p.subject_boxes, p.object_boxes, p.mask, p.frame_times, image_size=(480, 270))
    torch.testing.assert_close(got, p.to_rows(model.mim(x, m, p.mask)))
    assert not torch.allclose(got, namespace["plain"])


def test_math_renderer_is_served_with_the_site():
    """Equations render offline: KaTeX's files are in docs/, none is loaded from a CDN."""
    config = (ROOT / "mkdocs.yml").read_text()
    assets = re.findall(r"^\s+- ((?:assets|javascripts)/\S+\.(?:js|css))$", config, flags=re.M)
    assert "assets/katex/katex.min.js" in assets and "assets/katex/katex.min.css" in assets
    for asset in assets:
        assert (ROOT / "docs" / asset).is_file(), asset
    assert "http" not in "".join(re.findall(r"extra_(?:javascript|css):\n((?:\s+- .*\n)+)", config))
    fonts = re.findall(
        r"url\((fonts/[^)]+\.woff2)\)", (ROOT / "docs/assets/katex/katex.min.css").read_text()
    )
    assert fonts and all((ROOT / "docs/assets/katex" / f).is_file() for f in fonts)


SPHINX_ROLE = re.compile(r":(?:func|class|meth|attr|mod|data|exc|obj):`")


def test_docstrings_use_markdown_cross_references_not_sphinx_roles():
    """mkdocstrings renders Markdown: a Sphinx role (``:func:`x` ``) would show as raw text.
    Cross-references are autorefs links, ``[`name`][]`` (scoped) or ``[`name`][full.path]``."""
    raw = []
    for path in sorted((ROOT / "dsgg_layers").rglob("*.py")):
        for i, line in enumerate(path.read_text().splitlines(), 1):
            if SPHINX_ROLE.search(line):
                raw.append(f"{path.relative_to(ROOT)}:{i}")
    assert not raw, f"Sphinx roles in docstrings: {raw[:10]}"


@pytest.mark.slow
def test_built_site_has_no_raw_roles_and_links_cross_references(tmp_path):
    """The API pages as a reader sees them: every cross-reference resolved (the build is strict:
    an unknown target fails it) and rendered as a link, no raw role left."""
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings")
    import subprocess
    import sys

    site = tmp_path / "site"
    build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr[-2000:]
    pages = {p: p.read_text() for p in site.rglob("*.html")}
    raw = [str(p.relative_to(site)) for p, html in pages.items() if SPHINX_ROLE.search(html)]
    assert not raw, f"raw Sphinx roles in {raw}"
    union = pages[site / "api" / "union" / "index.html"]
    # a cross-module reference became a link to the other page's anchor
    assert 'href="../attention/#dsgg_layers.attention.MaskedMultiheadAttention"' in union


def _modules() -> list[str]:
    pkg = ROOT / "dsgg_layers"
    out = []
    for path in sorted(pkg.rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        if any(part.startswith("_") for part in rel.parts[1:]):
            continue  # private modules, and packages' __init__ (listed as the package)
        out.append(".".join(rel.parts))
    return out


def test_docs_home_lists_every_module_and_every_module_has_an_api_page():
    home = (ROOT / "docs" / "index.md").read_text()
    api = "".join(p.read_text() for p in (ROOT / "docs" / "api").glob("*.md"))
    for name in _modules():
        package = ".".join(name.split(".")[:2])  # data.graph is listed as dsgg_layers.data
        listed = name if name.count(".") == 1 else package
        assert f"[`{listed}`]" in home, f"{listed} is not in the docs home's module table"
        assert f"::: {name}\n" in api, f"{name} has no API page (::: {name})"


def test_wide_display_equations_scroll():
    """A display equation wider than the page scrolls (MoSA's Eq. 3-6 were cut off at 1400 px)."""
    config = (ROOT / "mkdocs.yml").read_text()
    sheets = re.findall(r"^\s+- (stylesheets/\S+\.css)$", config, flags=re.M)
    css = "".join((ROOT / "docs" / s).read_text() for s in sheets)
    rule = re.search(r"\.katex-display\s*\{([^}]*)\}", css)
    assert rule and re.search(r"overflow-x:\s*auto", rule.group(1))
