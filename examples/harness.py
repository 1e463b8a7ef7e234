"""The shared harness of the reference assemblies in ``examples/``.

One harness trains and evaluates every assembly, as torchvision's ``references/detection/engine.py``
serves every detection model, because every assembly's model keeps one contract:

    model.train()
    losses = model(graph, rows=rows)              # a dict of named scalar losses (summed here)
    model.eval()
    preds = model(graph, task=task, rows=rows)    # predictions in the evaluator's input format

- ``graph`` is a batch (:class:`~dsgg_layers.data.VideoGraph`) on the device; it carries the
  targets (``relations``, ``object_labels``), so the model computes its own losses.
- ``rows`` are the :class:`~dsgg_layers.ValidRows` of ``graph.mask``, found once per batch on the
  CPU by the data loader (the model may build them itself when given ``None``).
- ``task`` is ``"predcls"``, ``"sgcls"`` or ``"sgdet"``. Everything task-specific (classifying the
  objects in SGCls, using the detector's classes and scores in SGDet) lives in the model: this
  module never looks at the task.
- Predictions are the ``preds`` mapping of
  :class:`~dsgg_layers.metrics.ActionGenomeEvaluator` (``predicate_scores``, ``mask``,
  ``subject_boxes``, ``object_boxes``, ``object_labels``, optional ``object_scores``); a
  VidVRD-style assembly will bring its own evaluator through :attr:`Assembly.make_evaluator`.

An assembly is an :class:`Assembly`: its name, its model builder and its own flags (model sizes,
ablations). :func:`run` does the rest: data (the synthetic benchmark, or Action Genome with
``--ag-root``), length-bucketed batches (:class:`~dsgg_layers.BucketBatchSampler`, the same number
of steps on every DDP rank), AMP, weight-decay groups from the modules' ``no_weight_decay()``,
DDP, progress bars, evaluation (PredCls / SGCls / SGDet x with / semi / no constraint, and top-k
per pair when asked), ``results.json``, the per-predicate recall chart, checkpoints and
``--resume``, ``--seed`` and ``--deterministic``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn

from dsgg_layers import BucketBatchSampler, ValidRows, bucket_batches, label_frequencies
from dsgg_layers._checks import check_choice
from dsgg_layers.data import ActionGenome, SyntheticActionGenome, SyntheticConfig, VideoGraph
from dsgg_layers.message import change_share
from dsgg_layers.metrics import ActionGenomeEvaluator, format_results
from dsgg_layers.text import class_words, encode_prompts
from dsgg_layers.vocab import OBJECT_CLASSES, PREDICATES

__all__ = [
    "TASKS",
    "Assembly",
    "Data",
    "Distributed",
    "autocast",
    "change_strata",
    "evaluate",
    "load_data",
    "make_loader",
    "make_parser",
    "param_groups",
    "plot_per_predicate",
    "run",
    "seed_everything",
    "synthetic_changes",
    "train_one_epoch",
]

TASKS = ("predcls", "sgcls", "sgdet")


# --------------------------------------------------------------------------- the assembly spec


@dataclass
class Data:
    """What :func:`load_data` gives an assembly.

    Attributes:
        train: the training videos (``B = 1`` graphs, ground-truth pairs).
        test: the test videos of each task; tasks whose data are the same share one list.
        class_semantics: ``(36, S)`` semantic vectors of the object classes.
        frequencies: ``(26,)`` positives of each predicate over ``train``.
    """

    train: list[VideoGraph]
    test: dict[str, list[VideoGraph]]
    class_semantics: Tensor
    frequencies: Tensor


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
    """

    name: str
    description: str
    build_model: Callable[[argparse.Namespace, Data], nn.Module]
    add_arguments: Callable[[argparse.ArgumentParser], None] = lambda parser: None
    highlight: Sequence[str] = ()
    chart_title: str = ""
    report: Callable[[dict[str, dict[str, Tensor]]], tuple[str, Any]] | None = None
    make_evaluator: Callable[[argparse.Namespace], Any] | None = None
    train_mode: str = "predcls"
    load_data: Callable[[argparse.Namespace], Data] | None = None
    collate: Callable[[Sequence[Any]], Any] | None = None
    sizes: Callable[[Sequence[Any]], Tensor] | None = None
    format_results: Callable[[dict[str, Tensor]], str] | None = None


# ---------------------------------------------------------------------------------------- flags


def make_parser(assembly: Assembly) -> argparse.ArgumentParser:
    """The harness's flags, then the assembly's own."""
    p = argparse.ArgumentParser(description=assembly.description)
    add = p.add_argument
    g = p.add_argument_group("data")
    g.add_argument("--ag-root", default=None, help="Action Genome folder (annotations/, features/)")
    g.add_argument("--data-seed", type=int, default=0, help="seed of the synthetic benchmark")
    g.add_argument("--train-videos", type=int, default=None, help="synthetic training videos")
    g.add_argument("--quick", action="store_true", help="a tiny run (tests, CI)")
    g.add_argument(
        "--synthetic", nargs="+", default=[], metavar="FIELD=VALUE",
        help="SyntheticConfig fields to change, e.g. feature_noise=2.0 frames=10,20",
    )  # fmt: skip
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
    g = p.add_argument_group("evaluation")
    g.add_argument("--tasks", nargs="+", choices=TASKS, default=list(TASKS))
    g.add_argument(
        "--constraints", nargs="+", choices=("with", "semi", "no", "topk"),
        default=["with", "semi", "no"], help="topk: the top-k predicates of every pair",
    )  # fmt: skip
    g.add_argument("--ks", nargs="+", type=int, default=[10, 20, 50], help="the K of R@K")
    g.add_argument("--top-k-per-pair", type=int, default=6, help="k of the topk constraint")
    g.add_argument(
        "--change-strata", nargs="+", type=float, default=None, metavar="EDGE",
        help="also report R@K by how often a video's relations change (TR²'s Fig. 5): videos "
        "binned by their share of changing pair-frames at these edges, e.g. 0.3 0.45",
    )  # fmt: skip
    g = p.add_argument_group("text")
    g.add_argument("--clip-model", default="ViT-B-32")
    g.add_argument("--clip-pretrained", default=None, help="open_clip weights (e.g. openai)")
    g.add_argument(
        "--random-text", action="store_true",
        help="random unit text embeddings instead of CLIP's (needs no open_clip)",
    )  # fmt: skip
    add("--out", default=f"runs/{assembly.name}", help="checkpoint, results and chart go here")
    add("--device", default="cpu")
    add("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    g = p.add_argument_group(assembly.name)
    assembly.add_arguments(g)
    return p


# ----------------------------------------------------------------------------- run environment


@dataclass
class Distributed:
    """This process's place: rank, world size and device (``world == 1`` without torchrun)."""

    rank: int = 0
    world: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @classmethod
    def start(cls, device: str) -> Distributed:
        """Join the process group when started by ``torchrun`` (nccl on CUDA, gloo on CPU)."""
        world, rank = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0"))
        dev = torch.device(device)
        if world > 1:
            dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
            if dev.type == "cuda":
                dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
                torch.cuda.set_device(dev)
        return cls(rank, world, dev)

    def stop(self, *, together: bool = True) -> None:
        """Leave the process group; ``together``: wait for every rank first (a rank that tears
        the group down while another still works, rank 0 writing the outputs, can abort in the
        backend's threads: seen once in CI with gloo, ``terminate called without an active
        exception``). After an error, ``together=False``: the other ranks may be gone."""
        if self.world > 1 and dist.is_initialized():
            if together:
                dist.barrier()
            dist.destroy_process_group()


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python, NumPy and torch; with ``deterministic``, deterministic algorithms only
    (``warn_only``: an op without a deterministic kernel warns rather than stops the run)."""
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002  (the global generator, for code that uses it)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def autocast(amp: str, device: torch.device) -> torch.autocast:
    """Autocast for ``--amp`` (``"none"``: disabled)."""
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)
    return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)


# ------------------------------------------------------------------------------------- the data


def load_data(args: argparse.Namespace, train_mode: str = "predcls") -> Data:
    """The synthetic benchmark (default) or Action Genome (``--ag-root``).

    The synthetic test split is generated once, in SGDet mode: its ground-truth graphs are the
    PredCls and SGCls test videos (one list, shared), its detections the SGDet ones. The
    training videos are the annotated pairs (``train_mode="predcls"``) or the detector's pairs
    with their ground truth in ``graph.gt`` (``"sgdet"``).

    Raises:
        ValueError: ``train_mode`` is unknown, or ``"sgdet"`` with ``--ag-root`` (the
            annotation files have no detector boxes).
    """
    check_choice(train_mode, "train_mode", ("predcls", "sgdet"))
    if args.ag_root is not None and train_mode == "sgdet":
        raise ValueError(
            "--ag-root: this assembly trains on detected pairs, and the Action Genome annotation "
            "files have no detector boxes; run a detector and give its boxes as VideoGraphs "
            "with the ground truth in graph.gt"
        )
    if args.ag_root is None:
        cfg = SyntheticConfig(seed=args.data_seed).replace(**synthetic_changes(args.synthetic))
        if args.quick:
            cfg = cfg.replace(num_videos=40, num_test_videos=16)
        if args.train_videos is not None:
            cfg = cfg.replace(num_videos=args.train_videos)
        train = SyntheticActionGenome(cfg, split="train", mode=train_mode)
        detected = list(SyntheticActionGenome(cfg, split="test", mode="sgdet"))
        truth = [v.ground_truth for v in detected]
        test = {"predcls": truth, "sgcls": truth, "sgdet": detected}
        semantics = train.class_semantics
        train_videos = list(train)
    else:
        root = Path(args.ag_root)
        feats = root / "features"
        train_videos = list(ActionGenome(root, "train", features=feats))
        test = {
            "predcls": list(ActionGenome(root, "test", features=feats)),
            "sgcls": list(ActionGenome(root, "test", features=feats, min_box_size=16)),
        }  # SGDet needs a detector's boxes, which the annotation files do not have
        semantics = encode_prompts(
            class_words(OBJECT_CLASSES), model=args.clip_model, pretrained=args.clip_pretrained
        )
    test = {task: videos for task, videos in test.items() if task in args.tasks}
    return Data(train_videos, test, semantics, label_frequencies(train_videos))


def synthetic_changes(items: Sequence[str]) -> dict[str, Any]:
    """``["feature_noise=2.0", "frames=10,20"]`` -> ``SyntheticConfig`` field changes (numbers,
    and comma-separated pairs for the range fields).

    Raises:
        ValueError: an item is not ``FIELD=VALUE`` or names no field of ``SyntheticConfig``.
    """
    fields = {f.name: f for f in dataclasses.fields(SyntheticConfig)}
    out: dict[str, Any] = {}
    for item in items:
        name, sep, raw = item.partition("=")
        if not sep or name not in fields:
            raise ValueError(
                f"--synthetic: expected FIELD=VALUE with a SyntheticConfig field, got {item!r}"
            )
        parts = [float(v) if "." in v or "e" in v else int(v) for v in raw.split(",")]
        out[name] = tuple(parts) if len(parts) > 1 else parts[0]
    return out


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
    env: Distributed,
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
        with autocast(args.amp, device):
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


def _evaluator(args: argparse.Namespace) -> ActionGenomeEvaluator:
    edges = getattr(args, "change_strata", None) or ()
    if any(not 0.0 < e < 1.0 for e in edges):
        raise ValueError(f"--change-strata: expected edges in (0, 1), got {list(edges)}")
    return ActionGenomeEvaluator(
        constraints=args.constraints, ks=args.ks, top_k_per_pair=args.top_k_per_pair,
        num_strata=len(edges) + 1 if edges else 0,
    )  # fmt: skip


def change_strata(target: Mapping[str, Tensor], edges: Sequence[float]) -> Tensor:
    """The stratum of every frame ``(B, T)``: its video's share of pair-frames whose relations
    change (:func:`~dsgg_layers.message.change_share` of the ground truth), binned at ``edges``
    (stratum ``i`` holds shares in ``[edges[i-1], edges[i])``)."""
    relations, mask = target["relations"] != 0, target["mask"]
    share = change_share(relations, mask)  # (B,)
    bins = torch.tensor(sorted(edges), dtype=share.dtype, device=share.device)
    return torch.bucketize(share, bins, right=True).unsqueeze(-1).expand(mask.shape[:-1])


@torch.no_grad()
def evaluate(
    model: nn.Module,
    test: Mapping[str, Sequence[Any]],
    args: argparse.Namespace,
    env: Distributed | None = None,
    make_evaluator: Callable[[argparse.Namespace], Any] | None = None,
    assembly: Assembly | None = None,
) -> dict[str, dict[str, Tensor]]:
    """Every task's metrics; with DDP each rank scores its share and the sums are all-reduced
    (``assembly``: its ``collate`` and ``sizes`` for another dataset format)."""
    env = Distributed() if env is None else env
    make = _evaluator if make_evaluator is None else make_evaluator
    model.eval()
    results = {}
    for task, videos in test.items():
        evaluator = make(args)
        loader = make_loader(videos, args, env, train=False, assembly=assembly)
        for batch, rows in _progress(loader, env, task):
            batch = batch.to(env.device, non_blocking=True)
            with autocast(args.amp, env.device):
                preds = model(batch, task=task, rows=rows.to(env.device, non_blocking=True))
            target = batch.targets()
            if getattr(args, "change_strata", None):
                evaluator.update(preds, target, strata=change_strata(target, args.change_strata))
            else:
                evaluator.update(preds, target)
        evaluator.sync()
        results[task] = evaluator.compute()
    return results


# -------------------------------------------------------------------------------------- outputs


def _strata_table(results: Mapping[str, Tensor], edges: Sequence[float], ks: Sequence[int]) -> str:
    """R@K with constraint of each change-share stratum (rows), as percentages."""
    bounds = [0.0, *sorted(edges), 1.0]
    lines = ["by share of changing pair-frames (R@K with constraint, %):"]
    for i in range(len(bounds) - 1):
        if f"num_frames/stratum{i}" not in results or f"with/R@{ks[0]}/stratum{i}" not in results:
            return ""
        recall = [100 * float(results[f"with/R@{k}/stratum{i}"]) for k in ks]
        cells = "  ".join(f"R@{k} {r:5.1f}" for k, r in zip(ks, recall, strict=True))
        span = f"[{bounds[i]:.2f}, {bounds[i + 1]:.2f}" + ("]" if i == len(bounds) - 2 else ")")
        lines.append(f"  {span}  {cells}  ({int(results[f'num_frames/stratum{i}'])} frames)")
    return "\n".join(lines)


def _progress(iterable: Any, env: Distributed, desc: str, **kwargs: Any) -> Any:
    try:
        from tqdm.auto import tqdm
    except ImportError:  # the examples extra is not installed: no progress bar
        return iterable
    return tqdm(iterable, desc=desc, disable=env.rank != 0, dynamic_ncols=True, leave=False,
                **kwargs)  # fmt: skip


def plot_per_predicate(
    results: Mapping[str, Tensor],
    frequencies: Tensor,
    path: Path,
    *,
    highlight: Sequence[str] = (),
    title: str = "",
    k: int = 20,
) -> bool:
    """Bar chart of per-predicate R@k (with constraint), predicates from head to tail;
    ``highlight``-ed predicates in red. ``False`` when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    recall = results[f"with/recall_per_predicate@{k}"] * 100
    order = torch.argsort(frequencies, descending=True).tolist()
    fig, ax = plt.subplots(figsize=(12, 4))
    colors = ["tab:red" if PREDICATES[i] in highlight else "tab:blue" for i in order]
    ax.bar(range(len(order)), [float(recall[i]) for i in order], color=colors)
    ax.set_xticks(range(len(order)), [PREDICATES[i] for i in order], rotation=70, ha="right",
                  fontsize=8)  # fmt: skip
    ax.set_ylabel(f"R@{k} (%), with constraint")
    ax.set_ylim(0, 100)
    ax.set_title(title or "per-predicate recall, head to tail")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def _save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)  # never a half-written checkpoint


def _rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


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
    if args.quick:
        args.epochs = min(args.epochs, 2)
    env = Distributed.start(args.device)
    try:
        summary = _run(assembly, args, env)
    except BaseException:
        env.stop(together=False)  # another rank may be gone: no barrier to wait at
        raise
    env.stop()
    return summary


def _run(assembly: Assembly, args: argparse.Namespace, env: Distributed) -> dict[str, Any]:
    if args.threads:
        torch.set_num_threads(args.threads)
    seed_everything(args.seed, args.deterministic)
    data = (
        load_data(args, assembly.train_mode)
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
        _set_rng_state(ckpt["rng"])
        history, first = ckpt["history"], ckpt["epoch"] + 1
    if env.rank == 0:
        out.mkdir(parents=True, exist_ok=True)
    bar = _progress(range(first, args.epochs), env, "epochs", initial=first, total=args.epochs)
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
            _save_checkpoint(out / "checkpoint.pt", {
                "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "schedule": schedule.state_dict(), "scaler": scaler.state_dict(),
                "rng": _rng_state(), "epoch": epoch, "history": history, "args": vars(args),
            })  # fmt: skip
    results = evaluate(model, data.test, args, env, assembly.make_evaluator, assembly)
    summary: dict[str, Any] = {
        "assembly": assembly.name,
        "args": vars(args),
        "epoch_seconds": [h["seconds"] for h in history],
        "history": history,
    }
    if env.rank == 0:
        _write_outputs(assembly, args, data, model, results, summary, out)
    summary["results_tensors"] = results
    summary["model"] = model
    return summary


def _write_outputs(
    assembly: Assembly,
    args: argparse.Namespace,
    data: Data,
    model: nn.Module,
    results: dict[str, dict[str, Tensor]],
    summary: dict[str, Any],
    out: Path,
) -> None:
    torch.save({"model": model.state_dict(), "args": vars(args)}, out / f"{assembly.name}.pt")
    for task, r in results.items():
        print(f"\n{task}")
        if assembly.format_results is not None:
            print(assembly.format_results(r))
        else:
            print(format_results(r, metrics=("R", "mR"), ks=args.ks))
        if getattr(args, "change_strata", None):
            print(_strata_table(r, args.change_strata, args.ks))
    if assembly.report is not None:
        text, extra = assembly.report(results)
        print("\n" + text)
        summary["report"] = extra
    seconds = summary["epoch_seconds"]
    if seconds:
        mean = sum(seconds) / len(seconds)
        print(f"\nseconds per epoch: {mean:.2f} ({args.device}, amp={args.amp})")
    summary["results"] = {t: {k: v.tolist() for k, v in r.items()} for t, r in results.items()}
    (out / "results.json").write_text(json.dumps(summary, indent=1))
    saved = [f"{assembly.name}.pt", "checkpoint.pt", "results.json"]
    chart = "predcls" in results and "with/recall_per_predicate@20" in results["predcls"]
    if chart and plot_per_predicate(
        results["predcls"], data.frequencies, out / "per_predicate_recall.png",
        highlight=assembly.highlight, title=assembly.chart_title,
    ):  # fmt: skip
        saved.append("per_predicate_recall.png")
    print(f"saved {', '.join(saved)} in {out}")
