"""The engine of the reference assemblies: training, DDP, AMP, checkpoints, evaluation.

One engine trains and evaluates every assembly (as torchvision's ``references/`` engine serves
every detection model), because every assembly's model keeps one contract::

    model.train()
    losses = model(batch, rows=rows)              # a dict of named scalar losses (summed here)
    model.eval()
    preds = model(batch, task=task, rows=rows)    # the evaluator's predictions for this task

``batch`` keeps the ``dsgg_layers.data.Batch`` contract (``VideoGraph``, ``TrajectoryBatch``);
``rows`` are the ``ValidRows`` of ``batch.mask``, found once per batch on the CPU by the loader;
everything task-specific lives in the model. The task's data, evaluator and outputs are
``ag_task``'s (Action Genome) unless the [`Assembly`][] brings its own. The docs' assemblies page
lists what [`run`][] does and every flag.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ag_task
import runtime
import torch
from torch import Tensor, nn

from dsgg_layers import BucketBatchSampler, ValidRows, bucket_batches
from dsgg_layers.data import VideoGraph

__all__ = [
    "TASKS",
    "Assembly",
    "choice",
    "evaluate",
    "make_loader",
    "make_parser",
    "param_groups",
    "run",
    "train_one_epoch",
]

TASKS = ("predcls", "sgcls", "sgdet")


# --------------------------------------------------------------------------- the assembly spec


@dataclass
class Assembly:
    """One reference assembly: what the harness needs to know about it.

    Attributes:
        name: file stem of its outputs (``<name>.pt``) and default ``--out`` (``runs/<name>``).
        description: the command line's help text.
        build_model: ``(args, data) -> model`` keeping the contract of this module.
        add_arguments: declares the assembly's own flags (model sizes, ablations).
        highlight: predicates drawn in red in the per-predicate chart.
        chart_title: title of the chart.
        report: ``(results) -> (text, json)``: an extra printed report and its ``results.json``
            entry (e.g. MoSA's recall of motion-decided predicates).
        make_evaluator: ``(args) -> evaluator`` with ``update(preds, target)``, ``sync()`` and
            ``compute()``; default the Action Genome evaluator with ``--constraints``/``--ks``.
        train_mode: ``"predcls"`` (default: train on the annotated pairs) or ``"sgdet"`` (train on
            the detector's pairs, each graph holding its ground truth in ``graph.gt``: what a
            model that learns from unannotated detections, such as RS-Net, needs).
        load_data: ``(args) -> Data`` for another dataset than Action Genome's format (UASAN's
            VidVRD videos); its items then need ``collate`` (``items -> batch``) and ``sizes``
            (``items -> (n, 2)`` sizes for length bucketing), a batch type keeping the
            ``dsgg_layers.data.Batch`` contract (``.mask``, ``.to(device)``, ``.targets()``),
            such as ``TrajectoryBatch``.
        format_results: ``(results) -> text`` of one task's metrics (default the Action Genome
            table of R@K and mR@K).
        model_report: ``(model) -> (text, json)``: what the trained model measured about itself
            during evaluation (ARN's localisation of the matched queries), printed and merged
            into ``results.json`` at the top level.
    """

    name: str
    description: str
    build_model: Callable[[argparse.Namespace, ag_task.Data], nn.Module]
    add_arguments: Callable[[argparse.ArgumentParser], None] = lambda parser: None
    highlight: Sequence[str] = ()
    chart_title: str = ""
    report: Callable[[dict[str, dict[str, Tensor]]], tuple[str, Any]] | None = None
    make_evaluator: Callable[[argparse.Namespace], Any] | None = None
    train_mode: str = "predcls"
    load_data: Callable[[argparse.Namespace], ag_task.Data] | None = None
    collate: Callable[[Sequence[Any]], Any] | None = None
    sizes: Callable[[Sequence[Any]], Tensor] | None = None
    format_results: Callable[[dict[str, Tensor]], str] | None = None
    model_report: Callable[[nn.Module], tuple[str, dict[str, Any]]] | None = None


# ---------------------------------------------------------------------------------------- flags


def choice(p: Any, flag: str, choices: Sequence[str], help: str = "") -> None:
    """An assembly's flag that picks one of ``choices``; the first is the default."""
    p.add_argument(flag, choices=tuple(choices), default=choices[0], help=help)


def make_parser(assembly: Assembly) -> argparse.ArgumentParser:
    """The harness's flags, then the assembly's own."""
    p = argparse.ArgumentParser(description=assembly.description)
    add = p.add_argument
    ag_task.add_arguments(p)  # data, evaluation and text: the Action Genome task's flags
    g = p.add_argument_group("training")
    g.add_argument("--epochs", type=int, default=25)
    g.add_argument("--batch-size", type=int, default=16, help="most videos a batch")
    g.add_argument("--max-cells", type=int, default=None, help="most padded T x P cells a batch")
    g.add_argument(
        "--bucket-size", type=int, default=1,
        help="batches per sorting chunk: 1 (default) mixes video sizes in a batch, larger values "
        "sort more and pad less (docs: the trade-off measured)",
    )  # fmt: skip
    g.add_argument("--lr", type=float, default=1e-3)
    g.add_argument("--weight-decay", type=float, default=0.01)
    g.add_argument("--clip-grad", type=float, default=5.0, help="gradient norm limit (0: none)")
    g.add_argument("--amp", choices=("none", "bf16", "fp16"), default="none")
    g.add_argument("--workers", type=int, default=0, help="data loader processes")
    g.add_argument("--seed", type=int, default=0, help="model initialisation and batch order")
    g.add_argument("--deterministic", action="store_true", help="deterministic algorithms only")
    g.add_argument("--resume", default=None, help="a checkpoint.pt to continue from")
    g.add_argument("--quick", action="store_true", help="a tiny run (tests, CI)")
    g.add_argument("--tasks", nargs="+", choices=TASKS, default=list(TASKS))
    add("--out", default=f"runs/{assembly.name}", help="checkpoint, results and chart go here")
    add("--device", default="cpu")
    add("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    add(
        "--ablation",
        action="store_true",
        help="run the paper's ablation table instead (examples/studies.py), --seeds paired seeds",
    )
    add("--seeds", type=int, default=3, help="seeds 0..N-1 of --ablation")
    g = p.add_argument_group(assembly.name)
    assembly.add_arguments(g)
    return p


# ----------------------------------------------------------------------------- run environment


# ------------------------------------------------------------------------------------- the data


class CollateWithRows:
    """A ``DataLoader``'s ``collate_fn``: a batch type's ``collate`` (the ``Batch`` contract),
    then the batch's valid rows, found once per batch, on the CPU (picklable for workers)."""

    def __init__(self, collate: Callable[[Sequence[Any]], Any] = VideoGraph.collate) -> None:
        self.collate = collate

    def __call__(self, items: Sequence[Any]) -> tuple[Any, ValidRows]:
        batch = self.collate(items)
        return batch, ValidRows(batch.mask)


_collate = CollateWithRows()  # VideoGraph's


def make_loader(
    videos: Sequence[Any],
    args: argparse.Namespace,
    env: runtime.Distributed,
    *,
    train: bool,
    assembly: Assembly | None = None,
) -> torch.utils.data.DataLoader:
    """Batches of ``(graph, rows)`` with little padding.

    Training: a :class:`~dsgg_layers.BucketBatchSampler` (shuffled, ``--seed``; call
    ``loader.batch_sampler.set_epoch``) whose DDP share gives every rank the same number of steps.
    Evaluation: this rank's videos (``videos[rank::world]``; no collective runs per step, so the
    shares may differ) cut by :func:`~dsgg_layers.bucket_batches`. An ``assembly`` with its own
    ``collate`` and ``sizes`` (another dataset format) batches its items with them.
    """
    sizes = VideoGraph.sizes if assembly is None or assembly.sizes is None else assembly.sizes
    collate = _collate if assembly is None or assembly.collate is None else \
        CollateWithRows(assembly.collate)  # fmt: skip
    if train:
        sampler: Iterable[list[int]] = BucketBatchSampler(
            sizes(videos), max_videos=args.batch_size, max_cells=args.max_cells,
            bucket_size=args.bucket_size, seed=args.seed, num_replicas=env.world, rank=env.rank,
        )  # fmt: skip
    else:
        mine = list(range(env.rank, len(videos), env.world))
        local = bucket_batches(
            sizes([videos[i] for i in mine]), max_videos=args.batch_size, max_cells=args.max_cells
        )
        sampler = [[mine[i] for i in b] for b in local]
    return torch.utils.data.DataLoader(
        videos,  # type: ignore[arg-type]
        batch_sampler=sampler,
        collate_fn=collate,
        num_workers=args.workers,
        pin_memory=env.device.type == "cuda",
    )


# --------------------------------------------------------------------------------- optimisation


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups: decay on weight matrices; none on the parameters a module lists in its
    ``no_weight_decay()`` (learnable tokens, temperatures, position tables) nor on vectors
    (biases, norm scales).

    Raises:
        ValueError: a module's ``no_weight_decay()`` names a parameter it does not have.
    """
    skip: set[str] = set()
    for prefix, module in model.named_modules():
        names = getattr(module, "no_weight_decay", None)
        if not callable(names):
            continue
        own = dict(module.named_parameters())
        for name in names():
            if name not in own:
                where = prefix or type(model).__name__
                raise ValueError(f"{where}.no_weight_decay(): no parameter named {name!r}")
            skip.add(f"{prefix}.{name}" if prefix else name)
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if name in skip or p.ndim <= 1 else decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def train_one_epoch(
    model: nn.Module,
    loader: torch.utils.data.DataLoader,
    optimizer: torch.optim.Optimizer,
    schedule: torch.optim.lr_scheduler.LRScheduler,
    scaler: torch.amp.GradScaler,
    args: argparse.Namespace,
    device: torch.device,
) -> dict[str, float]:
    """One pass over ``loader``; the mean of each loss (and of their sum, ``"loss"``)."""
    model.train()
    sums: dict[str, float] = {}
    steps = 0
    for batch, rows in loader:
        batch = batch.to(device, non_blocking=True)
        rows = rows.to(device, non_blocking=True)
        with runtime.autocast(args.amp, device):
            losses = model(batch, rows=rows)
        if not isinstance(losses, Mapping) or not losses:
            raise TypeError(
                f"model in training: expected a dict of named losses, got {type(losses).__name__}"
            )
        loss = sum(v.float() for v in losses.values())
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if args.clip_grad > 0:
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), args.clip_grad)
        scaler.step(optimizer)
        scaler.update()
        schedule.step()
        for name, value in (("loss", loss), *losses.items()):
            sums[name] = sums.get(name, 0.0) + float(value.detach())
        steps += 1
    return {name: total / max(steps, 1) for name, total in sums.items()}


# ----------------------------------------------------------------------------------- evaluation


@torch.no_grad()
def evaluate(
    model: nn.Module,
    test: Mapping[str, Sequence[Any]],
    args: argparse.Namespace,
    env: runtime.Distributed | None = None,
    make_evaluator: Callable[[argparse.Namespace], Any] | None = None,
    assembly: Assembly | None = None,
) -> dict[str, dict[str, Tensor]]:
    """Every task's metrics; with DDP each rank scores its share and the sums are all-reduced
    (``assembly``: its ``collate`` and ``sizes`` for another dataset format)."""
    env = runtime.Distributed() if env is None else env
    make = ag_task.make_evaluator if make_evaluator is None else make_evaluator
    model.eval()
    results = {}
    for task, videos in test.items():
        evaluator = make(args)
        loader = make_loader(videos, args, env, train=False, assembly=assembly)
        for batch, rows in runtime.progress(loader, desc=task, disable=env.rank != 0, leave=False):
            batch = batch.to(env.device, non_blocking=True)
            with runtime.autocast(args.amp, env.device):
                preds = model(batch, task=task, rows=rows.to(env.device, non_blocking=True))
            target = batch.targets()
            edges = getattr(args, "change_strata", None)
            if edges:
                evaluator.update(preds, target, strata=ag_task.change_strata(target, edges))
            else:
                evaluator.update(preds, target)
        evaluator.sync()
        results[task] = evaluator.compute()
    return results


# ------------------------------------------------------------------------------------------ run


def run(assembly: Assembly, argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Train and evaluate ``assembly`` as the command line ``argv`` asks.

    Writes, on rank 0, under ``--out``: ``checkpoint.pt`` after every epoch (model, optimizer,
    schedule, scaler, RNG: what ``--resume`` needs), ``<name>.pt`` (the trained weights and the
    arguments), ``results.json`` and ``per_predicate_recall.png``.

    Returns:
        ``args``, ``epoch_seconds``, ``history`` (mean losses per epoch), ``results`` (lists),
        ``results_tensors``, ``model`` (the trained model, unwrapped) and the assembly's report.
    """
    args = make_parser(assembly).parse_args(argv)
    if args.ablation:  # the paper's table, declared in studies.py (imported here: no cycle)
        import experiments
        import studies

        rest = experiments.without_flags(list(argv or sys.argv[1:]), "--ablation", valued=())
        rest = experiments.without_seeds(rest)
        study = studies.STUDIES[studies.ABLATIONS[assembly.name]]
        return experiments.run_study(study, rest, list(range(args.seeds)), Path(args.out),
                                     json_name="experiment.json")  # fmt: skip
    if args.quick:
        args.epochs = min(args.epochs, 2)
    env = runtime.Distributed.start(args.device)
    try:
        summary = _run(assembly, args, env)
    except BaseException:
        env.stop(together=False)  # another rank may be gone: no barrier to wait at
        raise
    env.stop()
    return summary


def _run(assembly: Assembly, args: argparse.Namespace, env: runtime.Distributed) -> dict[str, Any]:
    if args.threads:
        torch.set_num_threads(args.threads)
    runtime.seed_everything(args.seed, args.deterministic)
    data = (
        ag_task.load_data(args, assembly.train_mode)
        if assembly.load_data is None
        else assembly.load_data(args)
    )
    model = assembly.build_model(args, data).to(env.device)  # the model, unwrapped: saved, scored
    trained = (  # wrapped once: what the training loop calls
        nn.parallel.DistributedDataParallel(
            model, device_ids=[env.device.index] if env.device.type == "cuda" else None
        )
        if env.world > 1
        else model
    )
    loader = make_loader(data.train, args, env, train=True, assembly=assembly)
    if len(loader) == 0:  # DDP: the batch count is rounded down to a multiple of the ranks
        raise ValueError(
            f"--batch-size {args.batch_size}: {len(data.train)} training videos make no batch "
            f"for each of {env.world} processes; use a smaller batch or fewer processes"
        )
    optimizer = torch.optim.AdamW(param_groups(model, args.weight_decay), lr=args.lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, args.lr, total_steps=max(args.epochs * len(loader), 1), pct_start=0.1
    )
    scaler = torch.amp.GradScaler(env.device.type, enabled=args.amp == "fp16")
    out = Path(args.out)
    history: list[dict[str, float]] = []
    first = 0
    if args.resume is not None:
        ckpt = torch.load(args.resume, map_location="cpu", weights_only=True)
        if ckpt["args"]["epochs"] != args.epochs:  # the one-cycle schedule spans the planned run
            raise ValueError(
                f"--epochs {args.epochs}: the run in {args.resume} was planned for "
                f"{ckpt['args']['epochs']} epochs (its learning-rate schedule); resume with "
                f"--epochs {ckpt['args']['epochs']}"
            )
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        schedule.load_state_dict(ckpt["schedule"])
        scaler.load_state_dict(ckpt["scaler"])
        runtime.set_rng_state(ckpt["rng"])
        history, first = ckpt["history"], ckpt["epoch"] + 1
    if env.rank == 0:
        out.mkdir(parents=True, exist_ok=True)
    bar = runtime.progress(
        range(first, args.epochs),
        desc="epochs",
        disable=env.rank != 0,
        leave=False,
        initial=first,
        total=args.epochs,
    )
    for epoch in bar:
        loader.batch_sampler.set_epoch(epoch)
        start = time.perf_counter()
        losses = train_one_epoch(trained, loader, optimizer, schedule, scaler, args, env.device)
        if env.device.type == "cuda":
            torch.cuda.synchronize(env.device)
        history.append({"epoch": epoch, "seconds": time.perf_counter() - start, **losses})
        if hasattr(bar, "set_postfix"):
            bar.set_postfix(loss=f"{losses.get('loss', float('nan')):.4f}")
        if env.rank == 0:
            runtime.save_checkpoint(out / "checkpoint.pt", {
                "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "schedule": schedule.state_dict(), "scaler": scaler.state_dict(),
                "rng": runtime.rng_state(), "epoch": epoch, "history": history, "args": vars(args),
            })  # fmt: skip
    results = evaluate(model, data.test, args, env, assembly.make_evaluator, assembly)
    summary: dict[str, Any] = {
        "assembly": assembly.name,
        "args": vars(args),
        "epoch_seconds": [h["seconds"] for h in history],
        "history": history,
    }
    if env.rank == 0:
        ag_task.write_outputs(assembly, args, data, model, results, summary, out)
    summary["results_tensors"] = results
    summary["model"] = model
    return summary
