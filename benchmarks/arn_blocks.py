"""ARN's association reasoning (PAP + HA): its cost over the plain predicate-decoder layer.

Workload: an OED-style last predicate-decoder stage on key frames: ``Q`` query pairs a frame, a
temporal memory of the key frame and two reference frames (``3 x S`` tokens, ``S`` a stride-32
feature map of a 608 x 1024 frame: 19 x 32), width 256, 8 heads, FFN 2048 (DETR's sizes); three
predicate branches (Action Genome's groups), random features.

Side by side in one run, inference and a training step (forward, a stand-in loss, backward):

- plain: one `TransformerDecoderLayer` a branch (self-attention over the queries,
  cross-attention over the memory, feed-forward network);
- + PAP: the same, then `PredicateAssociationParser` (each branch's association attention over
  the memory and the entity fusion);
- + PAP + HA: `AssociationReasoning` (PAP, then `HierarchicalAttention` a branch);

and the ratio of each to the plain layers.

    python benchmarks/arn_blocks.py                 # CPU, 2 threads (8 key frames)
    python benchmarks/arn_blocks.py --device cuda   # 64 key frames
    python benchmarks/arn_blocks.py --quick         # CI size
"""

from __future__ import annotations

import argparse

import torch

from dsgg_layers import AssociationReasoning, TemporalMemory, TransformerDecoderLayer

try:  # run as a script (benchmarks/ on the path) or imported by gpu_suite.py
    from mosa_blocks import variant_rows
except ImportError:  # pragma: no cover
    from benchmarks.mosa_blocks import variant_rows


class Stage(torch.nn.Module):
    """Three predicate branches' last decoder layer, optionally with PAP (+ HA)."""

    def __init__(self, d: int, ff: int, association: str) -> None:
        super().__init__()
        self.layers = torch.nn.ModuleList(
            TransformerDecoderLayer(d, 8, ff, dropout=0.0) for _ in range(3)
        )
        self.memory = TemporalMemory(3, d)
        self.reasoning = (
            None
            if association == "none"
            else AssociationReasoning(d, 8, 3, hierarchical=association == "pap+ha")
        )

    def forward(self, branches, entity, frames, query_pos):
        memory, pos, mask = self.memory(frames)
        out = [layer(x, memory, memory_mask=mask, query_pos=query_pos, memory_pos=pos)
               for layer, x in zip(self.layers, branches, strict=True)]  # fmt: skip
        if self.reasoning is not None:
            out = self.reasoning(out, entity, memory, memory_pos=pos, query_pos=query_pos,
                                 memory_mask=mask)  # fmt: skip
        return sum(o.pow(2).mean() for o in out)


VARIANTS = {"plain decoder layers": "none", "+ PAP": "pap", "+ PAP + HA (ARN)": "pap+ha"}


def run(
    device: torch.device,
    *,
    quick: bool = False,
    frames: int | None = None,
    queries: int = 100,
    threads: int = 2,
    seed: int = 0,
) -> str:
    """Run the benchmark and return its Markdown report (also used by ``gpu_suite.py``)."""
    d, ff, S = (64, 128, 48) if quick else (256, 2048, 19 * 32)
    frames = frames or (2 if quick else 64 if device.type == "cuda" else 8)
    where = (
        torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {threads} threads"
    )
    g = torch.Generator().manual_seed(seed)
    branches = [torch.randn(frames, queries, d, generator=g).to(device) for _ in range(3)]
    entity = torch.randn(frames, queries, d, generator=g).to(device)
    memory = torch.randn(frames, 3, S, d, generator=g).to(device)
    query_pos = torch.randn(queries, d, generator=g).to(device)
    inputs = (branches, entity, memory, query_pos)
    torch.manual_seed(seed)
    models = {name: Stage(d, ff, a).to(device) for name, a in VARIANTS.items()}
    plain = next(iter(models.values()))
    for m in models.values():  # the same decoder layers inside: only ARN's parts differ
        m.layers.load_state_dict(plain.layers.state_dict())
    lines = [
        f"# ARN association reasoning; {where}; torch {torch.__version__}",
        f"\n{frames} key frames, {queries} query pairs, memory 3 x {S} tokens, d = {d} "
        f"(FFN {ff}), 8 heads, 3 branches, fp32, best of 2 after a warm-up.\n",
        "| variant | params (M) | inference (s) | / plain | training step (s) | / plain |",
        "| --- | --- | --- | --- | --- | --- |",
    ]

    def step(m):
        m(*inputs).backward()
        m.zero_grad(set_to_none=True)

    lines += variant_rows(models, lambda m: m(*inputs), step, device, digits=2)
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="CI size: 2 frames, width 64")
    p.add_argument("--frames", type=int, default=None, help="default: cpu 8, cuda 64")
    p.add_argument("--queries", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(run(torch.device(args.device), quick=args.quick, frames=args.frames,
              queries=args.queries, threads=args.threads, seed=args.seed))  # fmt: skip


if __name__ == "__main__":
    main()
