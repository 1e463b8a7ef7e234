"""UASAN's relation stage: what the context encoder and the union decoder cost over the pair MLP.

Workload: subject-object pairs of 30-frame segments: each pair's subject, object and union-region
frame features (30 frames, width d) read by one `VisualRefiner` into L concept tokens, and two
motion tokens; random features. d = 256, L = 32 (a BLIP-2 Q-Former's 32 query tokens), 8 heads,
FFN 1024; 256 pairs on the CPU, 4096 on a GPU; fp32, best of 2 after a warm-up of every variant.

Side by side in one run, a training step (forward, a loss, backward) and inference, of Table 4's
rows as `examples/uasan.py` builds them:

the refiner, then `UnionAwareRelationHead` at each `stage`:

- A (pair only): an MLP on the pooled subject and object tokens;
- B (+ union, motion): the MLP on the four pooled parts;
- C (+ context encoder): `SemanticAwareContextEncoder` over `[F_S; F_O; U; F_mot]`, mean-pooled,
  a linear layer;
- full: C's encoder, `UnionRelationDecoder` and `UnionRelationPredictor` (Eq. 11), and the
  L_fg feature;
- code head: the public code's `UnionRelationHead` (3 slot-position encoder layers, 3
  query-decoder layers, FFN d as the code, four branches scored token by token against six
  groups of 10 classes; `--head code` in the example);

and the ratio of each to A.

    python benchmarks/uasan_blocks.py                 # CPU, 2 threads
    python benchmarks/uasan_blocks.py --device cuda   # 4096 pairs
    python benchmarks/uasan_blocks.py --quick         # CI size
"""

from __future__ import annotations

import argparse

import torch
from torch import nn

from dsgg_layers import UnionAwareRelationHead, UnionRelationHead, VisualRefiner

try:  # run as a script (benchmarks/ on the path) or imported by gpu_suite.py
    from mosa_blocks import variant_rows
except ImportError:  # pragma: no cover
    from benchmarks.mosa_blocks import variant_rows


class Stage(nn.Module):
    """Frame features of a pair -> its relation feature, as one of Table 4's rows."""

    def __init__(self, d: int, tokens: int, ff: int, variant: str) -> None:
        super().__init__()
        self.variant = variant
        self.refiner = VisualRefiner(d, tokens, 8)
        if variant == "code":
            self.head = UnionRelationHead(d, 8, num_tokens=tokens, dropout=0.0)
            g = torch.Generator().manual_seed(1)
            self.register_buffer("pair_classes", torch.randn(6, 10, 2 * d, generator=g))
            self.register_buffer("union_classes", torch.randn(6, 10, d, generator=g))
        else:
            stage = {"a": "pair", "b": "union", "c": "encoder", "full": "full"}[variant]
            self.head = UnionAwareRelationHead(d, 8, ff, stage=stage)

    def forward(self, subject, object_, union, motion):
        s, o, u = self.refiner(subject), self.refiner(object_), self.refiner(union)
        if self.variant == "code":  # the motion tokens' first channels stand in for the features
            group = (motion[:, 0, 0] > 0).long() + 2 * (motion[:, 0, 1] > 0).long()
            out = self.head(s, o, u, motion[:, 0, :12], motion[:, 1, :3],
                            pair_classes=self.pair_classes, union_classes=self.union_classes,
                            group=group)  # fmt: skip
            return out.scores.mean()
        return sum(x.pow(2).mean() for x in self.head(s, o, u, motion) if x is not None)


VARIANTS = {"A (pair only)": "a", "B (+ union, motion)": "b", "C (+ context encoder)": "c",
            "full (+ union decoder)": "full", "code head (UnionRelationHead)": "code"}  # fmt: skip


def run(
    device: torch.device,
    *,
    quick: bool = False,
    pairs: int | None = None,
    threads: int = 2,
    seed: int = 0,
) -> str:
    """Run the benchmark and return its Markdown report (also used by ``gpu_suite.py``)."""
    d, L, ff = (32, 4, 64) if quick else (256, 32, 1024)
    pairs = pairs or (16 if quick else 4096 if device.type == "cuda" else 256)
    where = (
        torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {threads} threads"
    )
    g = torch.Generator().manual_seed(seed)
    frames = [torch.randn(pairs, 30, d, generator=g).to(device) for _ in range(3)]
    motion = torch.randn(pairs, 2, d, generator=g).to(device)
    inputs = (*frames, motion)
    torch.manual_seed(seed)
    models = {name: Stage(d, L, ff, v).to(device) for name, v in VARIANTS.items()}
    first = next(iter(models.values()))
    for m in models.values():  # the same refiner inside: only the relation stage differs
        m.refiner.load_state_dict(first.refiner.state_dict())
    lines = [
        f"# UASAN relation stage; {where}; torch {torch.__version__}",
        f"\n{pairs} pairs, 30 frames a track, L = {L} concept tokens, d = {d} (FFN {ff}), "
        "8 heads, fp32, best of 2 after a warm-up.\n",
        "| variant | params (M) | inference (s) | / A | training step (s) | / A |",
        "| --- | --- | --- | --- | --- | --- |",
    ]

    def step(m):
        m(*inputs).backward()
        m.zero_grad(set_to_none=True)

    lines += variant_rows(models, lambda m: m(*inputs), step, device, digits=3)
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="CI size: 16 pairs, width 32")
    p.add_argument("--pairs", type=int, default=None, help="default: cpu 256, cuda 4096")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(run(torch.device(args.device), quick=args.quick, pairs=args.pairs,
              threads=args.threads, seed=args.seed))  # fmt: skip


if __name__ == "__main__":
    main()
