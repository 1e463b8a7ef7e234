"""Action Genome evaluator speed: the library's vectorised evaluator vs the public per-frame style.

Workload: the synthetic benchmark at the size of AG's test set (1,737 videos, about 41,000 key
frames; PredCls about 2.1 pairs a frame, SGDet about 6), with predictions that are noisy copies of
the ground truth. Both implementations run in this process on the same frames; the per-frame
baseline runs on a subset of frames and its time is given per frame and extrapolated.

    python benchmarks/evaluator.py            # full size, 2 threads
    python benchmarks/evaluator.py --quick    # CI size
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from _public_style_evaluator import evaluate_frame

from dsgg_layers.data import SyntheticActionGenome, SyntheticConfig
from dsgg_layers.metrics import ActionGenomeEvaluator

CONSTRAINTS = ("with", "semi", "no")


def workload(mode: str, num_videos: int, seed: int):
    cfg = SyntheticConfig.action_genome_test_scale(num_test_videos=num_videos, seed=seed)
    g = SyntheticActionGenome(cfg, split="test", mode=mode).batch()
    gen = torch.Generator().manual_seed(seed)
    noise = torch.rand(g.relations.shape, generator=gen)
    scores = (0.55 * g.relations.float() + 0.5 * noise).clamp(max=1.0)
    preds = dict(predicate_scores=scores, mask=g.mask, subject_boxes=g.subject_boxes,
                 object_boxes=g.object_boxes, object_labels=g.object_labels)  # fmt: skip
    if g.object_scores is not None:
        preds["object_scores"] = g.object_scores
    return g, preds, g.targets()


def frames_for_baseline(g, preds, target, limit: int):
    """Per-frame dicts of NumPy arrays, the input format of the per-frame baseline."""
    out = []
    B, T = g.frame_mask.shape
    for b in range(B):
        for t in range(T):
            if not g.frame_mask[b, t] or len(out) >= limit:
                continue
            pm, gm = preds["mask"][b, t], target["mask"][b, t]
            scores = preds.get("object_scores")
            pred = dict(
                person=preds["subject_boxes"][b, t][pm][0].numpy() if pm.any() else np.zeros(4),
                boxes=preds["object_boxes"][b, t][pm].numpy(),
                labels=preds["object_labels"][b, t][pm].numpy(),
                scores=(
                    scores[b, t][pm] if scores is not None else torch.ones(int(pm.sum()))
                ).numpy(),
                predicates=preds["predicate_scores"][b, t][pm].double().numpy(),
            )
            gt = dict(
                person=target["subject_boxes"][b, t][gm][0].numpy() if gm.any() else np.zeros(4),
                boxes=target["object_boxes"][b, t][gm].numpy(),
                labels=target["object_labels"][b, t][gm].numpy(),
                relations=target["relations"][b, t][gm].numpy(),
            )
            out.append((pred, gt))
    return out


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run(
    device: torch.device,
    *,
    quick: bool = False,
    baseline_frames: int = 3000,
    threads: int = 2,
    seed: int = 0,
) -> str:
    """Run the benchmark and return its Markdown report (also used by ``gpu_suite.py``).

    The library evaluator runs on ``device`` (its inputs moved there beforehand, untimed); the
    per-frame baseline always runs on the CPU in NumPy.
    """
    num_videos = 60 if quick else 1737
    baseline_frames = min(baseline_frames, 300 if quick else baseline_frames)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    lines = [f"# Action Genome evaluator; library on {where}, {threads} CPU threads, "
             f"torch {torch.__version__}"]  # fmt: skip
    rows = []
    for mode in ("predcls", "sgdet"):
        g, preds, target = workload(mode, num_videos, seed)
        on_device = lambda d: {k: v.to(device) for k, v in d.items()}  # noqa: E731
        dev_preds, dev_target = on_device(preds), on_device(target)
        ev = ActionGenomeEvaluator(constraints=CONSTRAINTS, ks=(10, 20, 50, 100))
        ev.update(dev_preds, dev_target)  # warm-up (allocator, threads, kernels)
        ev.reset()
        _sync(device)
        start = time.perf_counter()
        ev.update(dev_preds, dev_target)
        ev.compute()
        _sync(device)
        lib_time = time.perf_counter() - start
        frames = frames_for_baseline(g, preds, target, baseline_frames)
        base_time, base_r20 = 0.0, {}
        for c in CONSTRAINTS:
            start = time.perf_counter()
            rec = [evaluate_frame(p, t, c) for p, t in frames]
            base_time += time.perf_counter() - start
            rec = [r[20] for r in rec if r is not None]
            base_r20[c] = sum(rec) / len(rec)
        # the library on exactly the baseline's frames, to compare the numbers
        sub = ActionGenomeEvaluator(constraints=CONSTRAINTS, ks=(20,))
        n_sub = len(frames)
        flat = lambda x: x.reshape(-1, *x.shape[2:])  # noqa: E731
        order = g.frame_mask.flatten().nonzero().squeeze(1)[:n_sub]
        sub.update({k: flat(v)[order] for k, v in preds.items()},
                   {k: flat(v)[order] for k, v in target.items()})  # fmt: skip
        sub_r = sub.compute()
        per_frame_ms = 1000 * base_time / max(n_sub, 1)
        rows.append(
            (mode, g.num_frames, g.num_pairs, lib_time, per_frame_ms, n_sub, base_r20, sub_r)
        )
    lines.append("")
    lines.append(
        f"| task | frames | pairs | library on {device.type}, 3 constraints (s) "
        "| public-style, 3 constraints (ms/frame) | public-style, extrapolated (s) | speed-up |"
    )
    lines.append("| --- | --- | --- | --- | --- | --- | --- |")
    for mode, nf, npairs, lib, ms, _, _, _ in rows:
        extrap = ms * nf / 1000
        cells = f"{lib:.2f} | {ms:.2f} | {extrap:.1f} | {extrap / lib:.0f}x"
        lines.append(f"| {mode} | {nf} | {npairs} | {cells} |")
    lines.append("")
    lines.append("Agreement on the baseline's frames (R@20, %):")
    lines.append(
        "| task | frames | "
        + " | ".join(f"{c}: library / public-style" for c in CONSTRAINTS)
        + " |"
    )
    lines.append("| --- | --- | " + " | ".join("---" for _ in CONSTRAINTS) + " |")
    for mode, _, _, _, _, n_sub, base, sub in rows:
        cells = " | ".join(
            f"{100 * float(sub[f'{c}/R@20']):.2f} / {100 * base[c]:.2f}" for c in CONSTRAINTS
        )
        lines.append(f"| {mode} | {n_sub} | {cells} |")
    target_s = 3.0
    worst = max(r[3] for r in rows)
    if not quick:
        verdict = "met" if worst < target_s else "MISSED"
        lines.append(
            f"\nTarget: every task under {target_s:.0f} s -> {verdict} (slowest {worst:.2f} s)"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="CI size (60 videos)")
    parser.add_argument("--device", default="cpu", help="where the library evaluator runs")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--baseline-frames", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        run(
            torch.device(args.device),
            quick=args.quick,
            baseline_frames=args.baseline_frames,
            threads=args.threads,
            seed=args.seed,
        )
    )


if __name__ == "__main__":
    main()
