"""Every GPU measurement of the benchmarks in one call, with Markdown tables as it goes.

GPU time is rare here (a few sessions get 15 minutes of one H100/H200), so this one script runs
the GPU rows of every benchmark in a fixed order, most wanted first, within a time budget:

1. the machine: GPU, torch, device-to-device copy bandwidth, GEMM throughput;
2. the spatial-temporal relation block over the whole synthetic AG-test-scale workload, PredCls
   (`relation_block.run`): inference and training, fp32 and bf16 autocast, eager and
   `torch.compile` (default and reduce-overhead), valid rows vs padded grid, peak memory,
   against the in-run STTran-style baseline;
3. the MoSA blocks (`mosa_blocks.run`): `motion_attributes` over the workload on the GPU, and the
   MoSA head / plain block ratio;
4. RS-Net's relation scorer (`rsnet_blocks.run`): the plain block with and without RS-Net
   wrapped around it at d = 1936, SGDet and PredCls, the overhead ratio;
5. TR²'s message token, guidance and sentence classifier (`tr2_blocks.run`): their cost over
   the plain block at d = 1936, inference and a training step;
5b. ARN's PAP + HA over the plain predicate-decoder layers (`arn_blocks.run`, 64 key frames);
5c. UASAN's relation stage, Table 4's rows (`uasan_blocks.run`, 4096 pairs);
6. the Action Genome evaluator with its inputs on the GPU (`evaluator.run`);
7. `examples/mosa.py --device cuda --amp bf16` for a few epochs, with random text embeddings
   (the GPU machine has no open_clip);
8. the relation block on SGDet (eager only: PredCls has the compile rows).

A section that fails prints its traceback and the suite goes on; a section that would start after
``--budget`` seconds is skipped and says so. Tables are printed as each section ends and, when the
environment variable ``OUT`` is set, appended to ``$OUT/gpu_suite.md``. The library is imported
from the working tree (run with ``PYTHONPATH=.``) and needs nothing beyond torch and numpy
(tqdm and matplotlib are used when present).

    PYTHONPATH=. python benchmarks/gpu_suite.py                         # on a GPU machine
    PYTHONPATH=. python benchmarks/gpu_suite.py --device cpu --quick    # CI: every path, small
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import arn_blocks  # noqa: E402
import evaluator  # noqa: E402
import mosa_blocks  # noqa: E402
import relation_block  # noqa: E402
import rsnet_blocks  # noqa: E402
import tr2_blocks  # noqa: E402
import uasan_blocks  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def machine(device: torch.device, quick: bool) -> str:
    """GPU name, versions, copy bandwidth and GEMM throughput (median of 10 after 3 warm-ups)."""
    lines = [f"# Machine\n\ntorch {torch.__version__}, Python {sys.version.split()[0]}"]
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        lines.append(f"{p.name}, {p.multi_processor_count} SMs, "
                     f"{p.total_memory / 2**30:.0f} GiB, CUDA {torch.version.cuda}")  # fmt: skip
    n = 2**20 if quick else 2**29  # 4 MiB or 2 GiB of fp32
    src = torch.randn(n, device=device)
    dst = torch.empty_like(src)

    def median(fn: Callable[[], object]) -> float:
        for _ in range(3):
            fn()
        times = []
        for _ in range(10):
            _sync(device)
            start = time.perf_counter()
            fn()
            _sync(device)
            times.append(time.perf_counter() - start)
        return sorted(times)[len(times) // 2]

    t = median(lambda: dst.copy_(src))
    lines.append(f"\n| probe | result |\n| --- | --- |\n| copy (read + write) | "
                 f"{2 * 4 * n / t / 1e9:.0f} GB/s |")  # fmt: skip
    size = 512 if quick else 8192
    for name, dtype, tf32 in (("fp32", torch.float32, False), ("tf32", torch.float32, True),
                              ("bf16", torch.bfloat16, False)):  # fmt: skip
        if name == "tf32" and device.type != "cuda":
            continue
        a = torch.randn(size, size, device=device, dtype=dtype)
        b = torch.randn(size, size, device=device, dtype=dtype)
        old = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = tf32
        try:
            t = median(lambda a=a, b=b: a @ b)
        finally:
            torch.backends.cuda.matmul.allow_tf32 = old
        lines.append(f"| GEMM {size}^3 {name} | {2 * size**3 / t / 1e12:.1f} TFLOP/s |")
    return "\n".join(lines)


def mosa_epochs(device: torch.device, quick: bool, epochs: int) -> str:
    """``examples/mosa.py`` on ``device`` with bf16 autocast (random text embeddings)."""
    spec = importlib.util.spec_from_file_location(
        "examples_mosa", HERE.parent / "examples" / "mosa.py"
    )
    mosa = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mosa)
    amp = "bf16" if device.type == "cuda" else "none"
    argv = ["--device", str(device), "--amp", amp, "--random-text", "--epochs", str(epochs)]
    if quick:
        argv.append("--quick")
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            summary = mosa.main([*argv, "--out", out])
        total = time.perf_counter() - start
    results = summary["results_tensors"]
    lines = [f"# examples/mosa.py {' '.join(argv)}\n",
             "| epoch | seconds |", "| --- | --- |"]  # fmt: skip
    lines += [f"| {i + 1} | {s:.2f} |" for i, s in enumerate(summary["epoch_seconds"])]
    lines.append(f"\nwhole run (data, training, evaluation of 3 tasks): {total:.1f} s\n")
    lines.append("| task | with R@20 | with mR@20 | no R@20 |\n| --- | --- | --- | --- |")
    for task, r in results.items():
        cells = [100 * float(r[k]) for k in ("with/R@20", "with/mR@20", "no/R@20")]
        lines.append(f"| {task} | " + " | ".join(f"{c:.1f}" for c in cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--quick", action="store_true", help="small sizes, no compile (CI)")
    p.add_argument("--budget", type=float, default=300.0, help="seconds; later sections skipped")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    p.add_argument("--mosa-epochs", type=int, default=3)
    p.add_argument("--skip", default="", help="comma-separated section names to leave out")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("gpu_suite: --device cuda but torch sees no GPU (use --device cpu)")
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    q = args.quick
    no_compile = () if q and device.type == "cpu" else None
    sections: list[tuple[str, Callable[[], str]]] = [
        ("machine", lambda: machine(device, q)),
        ("relation_predcls", lambda: relation_block.run(
            device, quick=q, tasks="predcls", compile_modes=no_compile, threads=threads)),
        ("mosa_blocks", lambda: mosa_blocks.run(device, quick=q, threads=threads)),
        ("rsnet_blocks", lambda: rsnet_blocks.run(device, quick=q, threads=threads)),
        ("tr2_blocks", lambda: tr2_blocks.run(device, quick=q, threads=threads)),
        ("arn_blocks", lambda: arn_blocks.run(device, quick=q, threads=threads)),
        ("uasan_blocks", lambda: uasan_blocks.run(device, quick=q, threads=threads)),
        ("evaluator", lambda: evaluator.run(
            device, quick=q, baseline_frames=1000, threads=threads)),
        ("mosa_example", lambda: mosa_epochs(device, q, 1 if q else args.mosa_epochs)),
        ("relation_sgdet", lambda: relation_block.run(
            device, quick=q, tasks="sgdet", compile_modes=(), threads=threads)),
    ]  # fmt: skip
    skip = {s for s in args.skip.split(",") if s}
    unknown = skip - {name for name, _ in sections}
    if unknown:
        raise SystemExit(f"gpu_suite: unknown sections in --skip: {sorted(unknown)}")
    out = Path(os.environ["OUT"]) / "gpu_suite.md" if os.environ.get("OUT") else None
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    header = f"<!-- gpu_suite.py {' '.join(argv or sys.argv[1:])}; {stamp} -->"
    print(header, flush=True)
    if out is not None:
        out.write_text(header + "\n")
    start = time.perf_counter()
    failed = []
    for name, fn in sections:
        elapsed = time.perf_counter() - start
        if name in skip:
            continue
        if elapsed > args.budget:
            text = f"# {name}: skipped ({elapsed:.0f} s spent, budget {args.budget:.0f} s)"
        else:
            t0 = time.perf_counter()
            try:
                text = fn()
            except Exception:  # one broken section must not cost the others their GPU time
                failed.append(name)
                text = f"# {name}: FAILED\n\n```\n{traceback.format_exc()}```"
            text += f"\n\n<!-- section {name}: {time.perf_counter() - t0:.1f} s -->"
        print("\n" + text, flush=True)
        if out is not None:
            with out.open("a") as f:
                f.write("\n" + text + "\n")
    print(f"\ngpu_suite: {time.perf_counter() - start:.0f} s; failed: {failed or 'none'}")
    if failed:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
