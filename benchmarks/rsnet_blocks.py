"""RS-Net's relation scorer: its cost next to the plain spatial-temporal block it wraps.

Workload: the pair tracks of the synthetic benchmark at the size of Action Genome's test set
(1,737 videos; SGDet about 5.7 pairs a frame, PredCls about 2.2), length-bucketed; random pair
features of width 1936 (STTran's pair representation).

Side by side in one run, inference:

- the plain block: STTran's width (d = 1936; 1 spatial + 3 temporal layers, 8 heads, FFN 2048)
  and its predicate heads;
- the same with RS-Net wrapped around it (`RelationScorer`: input projection, spatial context
  encoder 2 layers, temporal context encoder 4 layers over the frame tokens, 3-layer decoder;
  `ContextFusion` heads; the triplet score), at d_m = 1936 (the baseline's width), 768 and 512
  (the paper's +32 M parameters over STTran fit d_m of about 700);
- each part alone; and the ratio (wrapped / plain) against the target of 1.3x.

    python benchmarks/rsnet_blocks.py                 # CPU, 2 threads (60 videos)
    python benchmarks/rsnet_blocks.py --device cuda   # the whole workload
    python benchmarks/rsnet_blocks.py --quick         # CI size
"""

from __future__ import annotations

import argparse

import torch

from dsgg_layers import (
    ContextFusion,
    RelationScorer,
    SpatialTemporalEncoder,
    triplet_score,
)
from dsgg_layers.data import SyntheticActionGenome, SyntheticConfig
from dsgg_layers.metrics import predicate_probabilities

try:  # run as a script (benchmarks/ on the path) or imported by gpu_suite.py
    from mosa_blocks import batches, best_of
except ImportError:  # pragma: no cover
    from benchmarks.mosa_blocks import batches, best_of


def workload(task: str, videos: int, d: int, max_videos: int, device, seed: int):
    """Batches ``(x, mask)`` of random ``d``-wide pair features on the benchmark's tracks."""
    cfg = SyntheticConfig.action_genome_test_scale(num_test_videos=videos, seed=seed)
    g = SyntheticActionGenome(cfg, split="test", mode=task).batch()
    out = []
    for i, (mask, *_) in enumerate(batches(g, max_videos, device)):  # MoSA's length buckets
        gen = torch.Generator().manual_seed(seed + i)
        x = torch.randn(*mask.shape, d, generator=gen).to(device)
        out.append((x.masked_fill(~mask.unsqueeze(-1), 0), mask))
    return out, int(g.frame_mask.sum()), int(g.mask.sum())


class Plain(torch.nn.Module):
    """The baseline: the spatial-temporal block and one linear head a predicate group."""

    def __init__(self, d: int, ff: int) -> None:
        super().__init__()
        self.block = SpatialTemporalEncoder(d, 8, ff, spatial_layers=1, temporal_layers=3,
                                            dropout=0.0)  # fmt: skip
        self.heads = ContextFusion(d, 0, fuse=False)

    def forward(self, x, mask):
        return predicate_probabilities(self.heads(self.block(x, mask), None, mask))


class Wrapped(torch.nn.Module):
    """The baseline with RS-Net: scorer on the input, context fusion, triplet score (Eq. 6)."""

    def __init__(self, d: int, ff: int, d_m: int) -> None:
        super().__init__()
        self.block = SpatialTemporalEncoder(d, 8, ff, spatial_layers=1, temporal_layers=3,
                                            dropout=0.0)  # fmt: skip
        self.scorer = RelationScorer(d, d_m, dim_feedforward=ff, dropout=0.0)
        self.heads = ContextFusion(d, d_m)

    def forward(self, x, mask):
        s = self.scorer(x, mask)
        logits = self.heads(self.block(x, mask), s.video_context, mask)
        return triplet_score(predicate_probabilities(logits), s.score)


def run(
    device: torch.device,
    *,
    quick: bool = False,
    videos: int | None = None,
    max_videos: int = 64,
    threads: int = 2,
    seed: int = 0,
) -> str:
    """Run the benchmark and return its Markdown report (also used by ``gpu_suite.py``)."""
    d, ff, widths = (128, 256, (128, 64)) if quick else (1936, 2048, (1936, 768, 512))
    videos = videos or (40 if quick else 1737 if device.type == "cuda" else 60)
    where = (
        torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {threads} threads"
    )
    torch.manual_seed(seed)
    plain = Plain(d, ff).to(device).eval()
    wrapped = {w: Wrapped(d, ff, w).to(device).eval() for w in widths}
    for m in wrapped.values():  # the same baseline inside: only RS-Net's parts differ
        m.block.load_state_dict(plain.block.state_dict())
    params = {"plain": sum(p.numel() for p in plain.parameters())}
    for w, m in wrapped.items():
        params[w] = sum(p.numel() for p in m.parameters())
    lines = [
        f"# RS-Net relation scorer; {where}; torch {torch.__version__}",
        f"\nInference, d = {d} (FFN {ff}), {videos} videos a task, fp32, best of 2 after a "
        "warm-up. Parameters: plain "
        f"{params['plain'] / 1e6:.1f} M; "
        + "; ".join(f"with RS-Net d_m={w}: {params[w] / 1e6:.1f} M" for w in widths)
        + ".\n",
        "| task | frames | pairs | plain (s) | d_m | scorer alone (s) | wrapped (s) | "
        "wrapped / plain | target |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for task in ("sgdet", "predcls"):
        work, frames, pairs = workload(task, videos, d, max_videos, device, seed)
        with torch.no_grad():
            t_plain = best_of(lambda work=work: [plain(x, m) for x, m in work], device, 2)
            for w, m in wrapped.items():
                t_scorer = best_of(lambda work=work, m=m: [m.scorer(x, k) for x, k in work],
                                   device, 2)  # fmt: skip
                t_wrapped = best_of(lambda work=work, m=m: [m(x, k) for x, k in work], device, 2)
                ratio = t_wrapped / t_plain
                verdict = "met" if ratio <= 1.3 else "missed"
                lines.append(
                    f"| {task} | {frames} | {pairs} | {t_plain:.3f} | {w} | "
                    f"{t_scorer:.3f} | {t_wrapped:.3f} | {ratio:.2f}x | {verdict} |"
                )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="CI size: 40 videos, width 128")
    p.add_argument("--videos", type=int, default=None, help="default: cpu 60, cuda 1737")
    p.add_argument("--max-videos", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(run(torch.device(args.device), quick=args.quick, videos=args.videos,
              max_videos=args.max_videos, threads=args.threads, seed=args.seed))  # fmt: skip


if __name__ == "__main__":
    main()
