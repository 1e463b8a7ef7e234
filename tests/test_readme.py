"""The code in README.md runs as written."""

import re
from pathlib import Path

import torch

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_blocks_run():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README.md has no python example"
    for block in blocks:
        namespace: dict = {}
        exec(compile(block, str(README), "exec"), namespace)
    # the first example round-trips its features through the pair-track layout
    feats = namespace["feats"]
    assert feats.shape == (5, 64)
    assert torch.isfinite(feats).all()
