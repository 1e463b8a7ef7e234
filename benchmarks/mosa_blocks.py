"""MoSA's blocks: motion attributes over the whole workload, and the MoSA head's overhead.

Workload: the pair tracks, boxes and frame numbers of the synthetic benchmark at the size of
Action Genome's test set (1,737 videos, about 41,700 key frames; PredCls about 2.2 pairs a frame,
SGDet about 5.7), length-bucketed; random 1936-d pair features.

Side by side in one run:

- `motion_attributes` (MoSA Eq. 3-6) over every pair of every frame of the workload, on the
  device asked for;
- the plain spatial-temporal block (1 spatial + 3 temporal layers, 8 heads, FFN 2048) against the
  full MoSA head on the same videos (spatial encoder -> MFE + MIM -> temporal encoder -> three
  ASMs over the 26 predicates), and each MoSA block alone: the overhead ratios.

    python benchmarks/mosa_blocks.py                 # CPU, 2 threads (head on 100 videos)
    python benchmarks/mosa_blocks.py --device cuda   # the whole workload
    python benchmarks/mosa_blocks.py --quick         # CI size
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from dsgg_layers import (
    ActionSemanticMatcher,
    MotionFeatureExtractor,
    MotionInteraction,
    SpatialTemporalEncoder,
    bucket_batches,
    motion_attributes,
    track_sizes,
)
from dsgg_layers.data import SyntheticActionGenome, SyntheticConfig
from dsgg_layers.vocab import PREDICATE_GROUPS


def batches(g, max_videos: int, device):
    sizes = track_sizes(g.mask, g.frame_mask)
    out = []
    for b in bucket_batches(sizes, max_videos=max_videos):
        T, P = (int(v) for v in sizes[b].amax(0))
        tracks = [t[b, :T, :P].to(device) for t in (g.mask, g.subject_boxes, g.object_boxes)]
        out.append((*tracks, g.frame_times[b, :T].to(device), g.image_size[b].to(device)))
    return out


def variant_rows(models: dict, infer, train, device, digits: int = 1) -> list[str]:
    """Markdown rows ``| name | params (M) | inference (s) | / first | training step (s) |
    / first |`` of every model, the first being the reference. ``infer(m)`` runs inference
    (under ``no_grad``, in eval mode), ``train(m)`` a training step (train mode). Every model is
    run once before any timing: first calls pay one-off costs (thread pools, kernels)."""
    for m in models.values():
        m.eval()
        with torch.no_grad():
            infer(m)
        m.train()
        train(m)
    rows, base = [], None
    for name, m in models.items():
        m.eval()
        with torch.no_grad():
            t_inf = best_of(lambda m=m: infer(m), device, 2)
        m.train()
        t_train = best_of(lambda m=m: train(m), device, 2)
        base = base or (t_inf, t_train)
        params = sum(p.numel() for p in m.parameters()) / 1e6
        rows.append(
            f"| {name} | {params:.{digits}f} | {t_inf:.3f} | {t_inf / base[0]:.2f}x | "
            f"{t_train:.3f} | {t_train / base[1]:.2f}x |"
        )
    return rows


def best_of(fn, device, repeats: int = 3) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return min(times)


class MoSAHead(torch.nn.Module):
    """Spatial encoder -> MFE + MIM -> temporal encoder -> ASM per predicate group."""

    def __init__(self, block: SpatialTemporalEncoder, d: int, text: torch.Tensor) -> None:
        super().__init__()
        self.block = block
        self.mfe = MotionFeatureExtractor(d)
        self.mim = MotionInteraction(d, 8, dropout=0.0)
        self.asm = torch.nn.ModuleList(
            ActionSemanticMatcher(d, text[g]) for g in PREDICATE_GROUPS.values()
        )

    def forward(self, x, mask, subject_boxes, object_boxes, times, size):
        x = self.block.forward_spatial(x, mask)
        motion = self.mfe(subject_boxes, object_boxes, mask, times, image_size=size)
        x = self.block.forward_temporal(self.mim(x, motion, mask), mask)
        return torch.cat([asm(x) for asm in self.asm], -1)


def run(
    device: torch.device,
    *,
    quick: bool = False,
    head_videos: int | None = None,
    max_videos: int = 64,
    threads: int = 2,
    seed: int = 0,
) -> str:
    """Run the benchmark and return its Markdown report (also used by ``gpu_suite.py``)."""
    d, ff, total = (128, 256, 40) if quick else (1936, 2048, 1737)
    head_videos = head_videos or (total if device.type == "cuda" or quick else 100)
    where = (
        torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {threads} threads"
    )
    lines = [f"# MoSA blocks; {where}; torch {torch.__version__}"]
    graphs = {}
    lines.append(f"\n## Motion attributes over the whole workload ({device.type})\n")
    lines.append("| task | videos | frames | pairs | seconds | target < 0.2 s |")
    lines.append("| --- | --- | --- | --- | --- | --- |")
    for task in ("predcls", "sgdet"):
        cfg = SyntheticConfig.action_genome_test_scale(num_test_videos=total, seed=seed)
        g = SyntheticActionGenome(cfg, split="test", mode=task).batch()
        graphs[task] = g
        work = batches(g, 256, device)

        def attrs(work=work):
            for mask, bs, bo, times, size in work:
                motion_attributes(bs, bo, mask, times, image_size=size)

        with torch.no_grad():
            t = best_of(attrs, device)
        frames, pairs = int(g.frame_mask.sum()), int(g.mask.sum())
        verdict = "met" if t < 0.2 else "missed"
        lines.append(f"| {task} | {total} | {frames} | {pairs} | {t:.3f} | {verdict} |")

    torch.manual_seed(seed)
    block = SpatialTemporalEncoder(d, 8, ff, spatial_layers=1, temporal_layers=3, dropout=0.0).to(
        device
    )
    text = F.normalize(torch.randn(26, 512), dim=-1)
    head = MoSAHead(block, d, text).to(device).eval()
    block.eval()
    lines.append(f"\n## MoSA head vs the plain block, inference, d={d}, FFN {ff}, "
                 f"{head_videos} videos ({device.type})\n")  # fmt: skip
    lines.append(
        "| task | plain block (s) | MFE | MIM | ASM x3 | MoSA head (s) | head / plain | target |"
    )
    lines.append("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for task, g in graphs.items():
        work = []
        for i, (mask, bs, bo, times, size) in enumerate(
            batches(g[:head_videos], max_videos, device)
        ):
            gen = torch.Generator().manual_seed(i)
            x = (
                torch.randn(*mask.shape, d, generator=gen)
                .to(device)
                .masked_fill(~mask.unsqueeze(-1), 0)
            )
            work.append((x, mask, bs, bo, times, size))

        fns = {
            "plain": lambda work=work: [block(x, m) for x, m, *_ in work],
            "mfe": lambda work=work: [
                head.mfe(s, o, m, t, image_size=z) for _, m, s, o, t, z in work
            ],
            "mim": lambda work=work: [head.mim(x, x, m) for x, m, *_ in work],
            "asm": lambda work=work: [a(x) for x, *_ in work for a in head.asm],
            "full": lambda work=work: [head(*w) for w in work],
        }
        with torch.no_grad():
            t = {name: best_of(fn, device, 2) for name, fn in fns.items()}
        ratio = t["full"] / t["plain"]
        cells = " | ".join(f"{t[k]:.3f}" for k in ("plain", "mfe", "mim", "asm", "full"))
        verdict = "met (<= 1.3x)" if ratio <= 1.3 else "missed (> 1.3x)"
        lines.append(f"| {task} | {cells} | {ratio:.2f}x | {verdict} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="CI size: 40 videos, width 128")
    p.add_argument("--head-videos", type=int, default=None, help="default: cpu 100, cuda all")
    p.add_argument("--max-videos", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(
        run(
            torch.device(args.device),
            quick=args.quick,
            head_videos=args.head_videos,
            max_videos=args.max_videos,
            threads=args.threads,
            seed=args.seed,
        )
    )


if __name__ == "__main__":
    main()
