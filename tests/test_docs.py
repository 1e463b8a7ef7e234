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
