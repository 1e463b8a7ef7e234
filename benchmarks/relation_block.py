"""Spatial-temporal relation block: many videos per call (library) vs one video per call (field).

Workload: the pair tracks of the synthetic benchmark at the size of Action Genome's test set
(1,737 videos, about 41,700 key frames; PredCls about 2.2 pairs a frame, SGDet about 5.7), with
random 1936-d pair features (the width STTran-family models use). The block: 1 spatial encoder
layer + 3 temporal encoder layers, 8 heads, FFN 2048 (`dsgg_layers.SpatialTemporalEncoder`).

Side by side in one run, on the same videos and weights:

- `sttran-style`: `_sttran_style.py`, the same math written as the field's public code writes it
  (one video per call, Python loops over frames, temporal windows of 2 frames), on a subset of
  the videos; its videos/s is extrapolated to the workload;
- `library`: `SpatialTemporalEncoder(temporal_window=2)` (the same function: the script checks
  the outputs agree) over length-bucketed batches of the workload: on the padded grid
  (`skip_padding=False`) and on the valid pairs (the default), eager fp32, bf16 autocast, and
  `torch.compile` (default; reduce-overhead on CUDA; compiled graphs run on the padded grid);
  and the library's default whole-track temporal attention, fp32 and bf16;
- training: forward + backward + AdamW step (the baseline one video a step, as STTran trains).

It also measures the machine's matrix-product throughput (a 8192 x 1936 x 2048 GEMM, fp32 and
bf16) and prints the speed bound it implies for the block: videos/s <= GEMM FLOP/s / (FLOPs of
the block's matrix products for one video's pairs).

    python benchmarks/relation_block.py                  # CPU: 2 threads, 200 library videos
    python benchmarks/relation_block.py --device cuda    # the whole workload
    python benchmarks/relation_block.py --quick          # CI size
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
from _sttran_style import sttran_style_forward

from dsgg_layers import SpatialTemporalEncoder, bucket_batches, padding_fraction, track_sizes
from dsgg_layers.data import SyntheticActionGenome, SyntheticConfig


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn: Callable[[], object], device: torch.device) -> float:
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def load_masks(mode: str, num_videos: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    cfg = SyntheticConfig.action_genome_test_scale(num_test_videos=num_videos, seed=seed)
    g = SyntheticActionGenome(cfg, split="test", mode=mode).batch()
    return g.mask, g.frame_mask


def features_for(mask: torch.Tensor, d: int, seed: int, device, dtype=torch.float32):
    gen = torch.Generator(device="cpu").manual_seed(seed)
    x = torch.randn(*mask.shape, d, generator=gen).to(device, dtype)
    return x.masked_fill(~mask.to(device).unsqueeze(-1), 0.0)


class Workload:
    """Length-bucketed batches of one task's pair tracks (features made per batch, untimed)."""

    def __init__(self, mask, frame_mask, videos: int, max_videos: int, d: int, device) -> None:
        self.mask, self.frame_mask = mask[:videos], frame_mask[:videos]
        self.sizes = track_sizes(self.mask, self.frame_mask)
        self.batches = bucket_batches(self.sizes, max_videos=max_videos)
        self.d, self.device = d, device
        self.inputs = []
        for i, b in enumerate(self.batches):
            T, P = (int(v) for v in self.sizes[b].amax(0))
            m = self.mask[b, :T, :P]
            self.inputs.append((features_for(m, d, i, device), m.to(device),
                                self.frame_mask[b, :T].to(device)))  # fmt: skip

    @property
    def pairs(self) -> int:
        return int(self.mask.sum())


def gemm_flops(device, dtype) -> float:
    """FLOP/s of one large matrix product, (8192 x 1936) @ (1936 x 2048): best of 8."""
    a = torch.randn(8192, 1936, device=device, dtype=dtype)
    w = torch.randn(2048, 1936, device=device, dtype=dtype)
    for _ in range(2):  # warm-up: kernel selection, weight packing
        a @ w.T
    best = min(timed(lambda: a @ w.T, device) for _ in range(8))
    return 2 * 8192 * 1936 * 2048 / best


def block_flops_per_pair(d: int, ff: int, layers: int) -> int:
    """FLOPs of the projections and feed-forward network of ``layers`` layers, one pair-frame."""
    return layers * (8 * d * d + 4 * d * ff)


def run_library(block, work: Workload, *, amp: torch.dtype | None, train: bool, opt=None,
                inputs=None):  # fmt: skip
    def go():
        for x, m, f in work.inputs if inputs is None else inputs:
            with torch.autocast(
                work.device.type, dtype=amp or torch.float32, enabled=amp is not None
            ):
                if train:
                    out = block(x, m, f)
                    out.float().square().mean().backward()
                    opt.step()
                    opt.zero_grad(set_to_none=True)
                else:
                    with torch.no_grad():
                        block(x, m, f)

    return go


def flat_videos(work: Workload, count: int, device):
    """Per-video flat rows (STTran's input format) of the first ``count`` videos."""
    videos = []
    for v in range(min(count, len(work.mask))):
        T = int(work.frame_mask[v].sum())
        m = work.mask[v, :T]
        frame, pair = m.nonzero().unbind(1)
        x = features_for(m[None], work.d, 10_000 + v, device)[0][m]
        videos.append((x, frame.to(device), pair.to(device), T, m))
    return videos


def run_baseline(block, videos, *, train: bool, opt=None):
    def go():
        for x, frame, pair, T, _ in videos:
            if train:
                out = sttran_style_forward(block, x, frame, pair, T)
                out.square().mean().backward()
                opt.step()
                opt.zero_grad(set_to_none=True)
            else:
                with torch.no_grad():
                    sttran_style_forward(block, x, frame, pair, T)

    return go


def agreement(block, videos) -> float:
    """Largest |library - sttran-style| over the baseline's videos (same weights, eval)."""
    worst = 0.0
    with torch.no_grad():
        for x, frame, pair, T, m in videos:
            want = sttran_style_forward(block, x, frame, pair, T)
            grid = torch.zeros(1, T, m.shape[1], x.shape[-1], device=x.device)
            grid[0][m.to(x.device)] = x
            got = block(
                grid, m[None].to(x.device), torch.ones(1, T, dtype=torch.bool, device=x.device)
            )
            worst = max(
                worst, float((got[0][m.to(x.device)] - want).abs().max()) if len(want) else 0.0
            )
    return worst


def best_time(fn: Callable[[], object], device: torch.device, repeats: int) -> float:
    """Shortest of ``repeats`` timed calls of ``fn`` (each a pass over the workload)."""
    return min(timed(fn, device) for _ in range(repeats))


def run(
    device: torch.device,
    *,
    quick: bool = False,
    videos: int | None = None,
    baseline_videos: int | None = None,
    max_videos: int | None = None,
    tasks: str | None = None,
    compile_modes: tuple[str, ...] | None = None,
    repeats: int | None = None,
    threads: int = 2,
    seed: int = 0,
) -> str:
    """Run the benchmark and return its Markdown report (also used by ``gpu_suite.py``)."""
    cuda = device.type == "cuda"
    d, ff, total_videos = (128, 256, 24) if quick else (1936, 2048, 1737)
    videos = videos or (total_videos if cuda or quick else 200)
    base_videos = baseline_videos or (4 if quick else 100 if cuda else 20)
    max_videos = max_videos or (64 if cuda else 16)
    repeats = repeats or (3 if cuda else 1)
    if compile_modes is None:
        compile_modes = ("default", "reduce-overhead") if cuda else ("default",)
    torch.manual_seed(seed)
    block = SpatialTemporalEncoder(d, 8, ff, spatial_layers=1, temporal_layers=3, dropout=0.0,
                                   temporal_window=2).to(device)  # fmt: skip
    whole = SpatialTemporalEncoder(d, 8, ff, temporal_layers=3, dropout=0.0).to(device)
    whole.load_state_dict(block.state_dict())
    padded = SpatialTemporalEncoder(d, 8, ff, temporal_layers=3, dropout=0.0, temporal_window=2,
                                    skip_padding=False).to(device)  # fmt: skip
    padded.load_state_dict(block.state_dict())
    whole_padded = SpatialTemporalEncoder(d, 8, ff, temporal_layers=3, dropout=0.0,
                                          skip_padding=False).to(device)  # fmt: skip
    whole_padded.load_state_dict(block.state_dict())
    gpu = torch.cuda.get_device_name(device) if cuda else f"CPU, {threads} threads"
    lines = [f"# Spatial-temporal relation block, d={d}, FFN {ff}, 1+3 layers, 8 heads; {gpu}; "
             f"torch {torch.__version__}"]  # fmt: skip
    peak = {name: gemm_flops(device, dt) for name, dt in (("fp32", torch.float32),
                                                          ("bf16", torch.bfloat16))}  # fmt: skip
    per_pair = block_flops_per_pair(d, ff, 4)
    lines.append(f"\nGEMM throughput: fp32 {peak['fp32'] / 1e9:.0f} GFLOP/s, bf16 "
                 f"{peak['bf16'] / 1e9:.0f} GFLOP/s; the block's matrix products: "
                 f"{per_pair / 1e6:.0f} MFLOP a pair-frame (whole track; windows of 2 run the 3 "
                 f"temporal layers twice for most frames); each library row is the best of "
                 f"{repeats} passes over the workload")  # fmt: skip
    tasks = tasks or ("predcls" if quick else "predcls,sgdet")
    for task in tasks.split(","):
        mask, frame_mask = load_masks(task, total_videos, seed)
        work = Workload(mask, frame_mask, videos, max_videos, d, device)
        base = flat_videos(work, base_videos, device)
        for m in (block, whole, padded, whole_padded):
            m.eval()
        pad = padding_fraction(work.sizes, work.batches)
        diff = agreement(block, base)
        pairs_per_video = work.pairs / len(work.mask)
        bound = {k: v / (per_pair * pairs_per_video) for k, v in peak.items()}
        lines.append(f"\n## {task}: {len(work.mask)} of {total_videos} videos timed, "
                     f"{work.pairs} pairs, {len(work.batches)} batches, padding {pad:.0%}; "
                     f"baseline on {len(base)} videos; max |library - sttran-style| = "
                     f"{diff:.1e}; GEMM bound for the whole-track block: fp32 "
                     f"{bound['fp32']:.1f}, bf16 {bound['bf16']:.1f} videos/s\n")  # fmt: skip
        rows = []

        def measure(name, kind, fn, count, warm=None, rows=rows):
            if warm is not None:
                warm()
            if cuda:
                torch.cuda.reset_peak_memory_stats(device)
            t = best_time(fn, device, 1 if kind == "training" else repeats)
            mem = torch.cuda.max_memory_allocated(device) / 2**30 if cuda else float("nan")
            rows.append((name, kind, count / t, mem))

        def library(name, model, amp, *, train=False, opt=None, work=work):
            """Time one library configuration over the workload, after a one-batch warm-up."""
            go = run_library(model, work, amp=amp, train=train, opt=opt)
            warm = run_library(model, work, amp=amp, train=train, opt=opt, inputs=work.inputs[:1])
            measure(name, "training" if train else "inference", go, len(work.mask), warm=warm)

        measure("sttran-style, one video per call, window 2", "inference",
                run_baseline(block, base, train=False), len(base),
                warm=run_baseline(block, base[:1], train=False))  # fmt: skip
        configs = [
            ("library, window 2, fp32, padded grid", padded, None),
            ("library, window 2, fp32", block, None),
            ("library, window 2, bf16 autocast", block, torch.bfloat16),
            ("library, whole track, fp32, padded grid", whole_padded, None),
            ("library, whole track, fp32", whole, None),
            ("library, whole track, bf16 autocast, padded grid", whole_padded, torch.bfloat16),
            ("library, whole track, bf16 autocast", whole, torch.bfloat16),
        ]
        for name, model, amp in configs:
            library(name, model, amp)
        for mode in compile_modes:
            targets = [("window 2, fp32", block, None),
                       ("whole track, bf16 autocast", whole, torch.bfloat16)]  # fmt: skip
            for label, model, amp in targets[1:] if quick else targets:
                compiled = torch.compile(model, mode=mode, dynamic=True)
                go = run_library(compiled, work, amp=amp, train=False)
                name = f"library, {label}, compile {mode}"
                try:  # the warm-up pass compiles every shape
                    measure(name, "inference", go, len(work.mask), warm=go)
                except Exception as error:  # a compiler failure is a result, not the end of a run
                    if not cuda:
                        raise
                    rows.append((f"{name}: failed, {type(error).__name__}: {str(error)[:80]}",
                                 "inference", float("nan"), float("nan")))  # fmt: skip
        # training: forward + backward + AdamW step
        block.train()
        opt = torch.optim.AdamW(block.parameters(), lr=1e-5)
        train_base = base[: max(2, len(base) // 2)]
        measure("sttran-style, one video per step, window 2", "training",
                run_baseline(block, train_base, train=True, opt=opt), len(train_base),
                warm=run_baseline(block, train_base[:1], train=True, opt=opt))  # fmt: skip
        library("library, window 2, fp32", block, None, train=True, opt=opt)
        if cuda:
            library("library, window 2, bf16 autocast", block, torch.bfloat16, train=True, opt=opt)
        whole.train()
        opt_whole = torch.optim.AdamW(whole.parameters(), lr=1e-5)
        if cuda:
            library("library, whole track, fp32", whole, None, train=True, opt=opt_whole)
        library("library, whole track, bf16 autocast", whole, torch.bfloat16, train=True,
                opt=opt_whole)  # fmt: skip
        base_rate = {kind: rate for name, kind, rate, _ in rows if name.startswith("sttran")}
        mem_col = " peak memory (GiB) |" if cuda else ""
        lines.append("| implementation | pass | videos/s | whole workload (s) | vs sttran-style |"
                     + mem_col)  # fmt: skip
        lines.append("| --- | --- | --- | --- | --- |" + (" --- |" if cuda else ""))
        for name, kind, rate, mem in rows:
            cells = (f"| {name} | {kind} | {rate:.1f} | {total_videos / rate:.2f} | "
                     f"{rate / base_rate[kind]:.1f}x |")  # fmt: skip
            lines.append(cells + (f" {mem:.2f} |" if cuda else ""))
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="CI size: few videos, width 128")
    p.add_argument(
        "--videos", type=int, default=None, help="library videos (default: cpu 200, cuda all)"
    )
    p.add_argument("--baseline-videos", type=int, default=None, help="default: cpu 20, cuda 100")
    p.add_argument(
        "--max-videos", type=int, default=None, help="videos per library batch (cpu 16, cuda 64)"
    )
    p.add_argument("--tasks", default=None, help="default: predcls,sgdet (--quick: predcls)")
    p.add_argument("--repeats", type=int, default=None, help="passes a row, best kept (cuda 3)")
    p.add_argument("--no-compile", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    report = run(
        torch.device(args.device),
        quick=args.quick,
        videos=args.videos,
        baseline_videos=args.baseline_videos,
        max_videos=args.max_videos,
        tasks=args.tasks,
        compile_modes=() if args.no_compile else None,
        repeats=args.repeats,
        threads=args.threads,
        seed=args.seed,
    )
    print(report)


if __name__ == "__main__":
    main()
