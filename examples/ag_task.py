"""The Action Genome task of the harness: its flags, its data, its evaluator, its outputs.

[`harness`][harness] is the engine (training, DDP, AMP, checkpoints, the evaluation loop); this
module is what it runs by default: the synthetic benchmark or Action Genome (``--ag-root``), the
[`ActionGenomeEvaluator`][dsgg_layers.metrics.ActionGenomeEvaluator] of ``--constraints`` /
``--ks`` / ``--change-strata``, the printed tables, ``results.json`` and the per-predicate chart.
An assembly with another dataset format brings its own (``Assembly.load_data``,
``make_evaluator``, ``format_results``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import runtime  # examples/runtime.py, beside this file
import torch
from torch import Tensor, nn

from dsgg_layers import label_frequencies
from dsgg_layers._checks import check_choice
from dsgg_layers.data import ActionGenome, SyntheticActionGenome, SyntheticConfig, VideoGraph
from dsgg_layers.message import change_share
from dsgg_layers.metrics import ActionGenomeEvaluator, format_results
from dsgg_layers.text import class_words, encode_prompts
from dsgg_layers.vocab import OBJECT_CLASSES, PREDICATES

__all__ = [
    "Data",
    "add_arguments",
    "change_strata",
    "load_data",
    "make_evaluator",
    "plot_per_predicate",
    "strata_table",
    "synthetic_changes",
    "write_outputs",
]


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The task's flags: data, evaluation (but ``--tasks``) and text."""
    g = p.add_argument_group("data")
    g.add_argument("--ag-root", default=None, help="Action Genome folder (annotations/, features/)")
    g.add_argument("--data-seed", type=int, default=0, help="seed of the synthetic benchmark")
    g.add_argument("--train-videos", type=int, default=None, help="synthetic training videos")
    g.add_argument(
        "--synthetic", nargs="+", default=[], metavar="FIELD=VALUE",
        help="SyntheticConfig fields to change, e.g. feature_noise=2.0 frames=10,20",
    )  # fmt: skip
    g = p.add_argument_group("evaluation")
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
    g.add_argument(
        "--clip-model",
        default="ViT-B-32",
        help="an open_clip model, or wordllama: offline text with real semantics",
    )
    g.add_argument("--clip-pretrained", default=None, help="open_clip weights (e.g. openai)")
    g.add_argument(
        "--random-text", action="store_true",
        help="random unit text embeddings instead of CLIP's (needs no open_clip)",
    )  # fmt: skip


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


def make_evaluator(args: argparse.Namespace) -> ActionGenomeEvaluator:
    """The Action Genome evaluator of ``--constraints``, ``--ks``, ``--top-k-per-pair`` and
    ``--change-strata``."""
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


def strata_table(results: Mapping[str, Tensor], edges: Sequence[float], ks: Sequence[int]) -> str:
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
    plt = runtime.pyplot()
    if plt is None:
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


def write_outputs(
    assembly: Any,
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
            print(strata_table(r, args.change_strata, args.ks))
    if assembly.report is not None:
        text, extra = assembly.report(results)
        print("\n" + text)
        summary["report"] = extra
    if assembly.model_report is not None:
        text, extra = assembly.model_report(model)
        print("\n" + text)
        summary |= extra
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
