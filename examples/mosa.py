"""MoSA reference assembly: train and evaluate on Action Genome format data.

MoSA (*MoSA: Motion-Guided Semantic Alignment for Dynamic Scene Graph Generation*,
arXiv:2604.19631) assembled from the library's blocks, end to end:

    pair features (object visual + class semantics + union region + boxes)
      -> spatial encoder over the pairs of each frame    (TransformerEncoder over P)
      -> motion features + motion interaction            (MotionFeatureExtractor, MotionInteraction)
      -> temporal encoder along each pair track          (TransformerEncoder over T)
      -> action semantic matching, a text matrix a group (ActionSemanticMatcher x 3, sigmoid)

trained with the category-weighted loss (CategoryWeightedLoss) and evaluated with the Action
Genome evaluator on PredCls, SGCls and SGDet, with and without constraint.

By default it trains on the built-in synthetic benchmark (dsgg_layers.data.SyntheticActionGenome)
and finishes in a few minutes on 2 CPU cores:

    python examples/mosa.py                         # the README's main job
    python examples/mosa.py --no-mfe                # ablations: --no-mfe, --no-mim, --no-asm
    python examples/mosa.py --device cuda --amp bf16
    torchrun --nproc_per_node=4 examples/mosa.py --device cuda
    python examples/mosa.py --ag-root data/ag --clip-pretrained openai   # real Action Genome

Outputs go to --out (default runs/mosa): the checkpoint (mosa.pt), the results (results.json) and
a per-predicate recall bar chart (per_predicate_recall.png).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from dsgg_layers import (
    ActionSemanticMatcher,
    CategoryWeightedLoss,
    MotionFeatureExtractor,
    MotionInteraction,
    TransformerEncoder,
    TransformerEncoderLayer,
    ValidRows,
    label_frequencies,
    sinusoidal_positions,
)
from dsgg_layers.data import (
    MOTION_PREDICATES,
    ActionGenome,
    SyntheticActionGenome,
    SyntheticConfig,
    VideoGraph,
)
from dsgg_layers.metrics import ActionGenomeEvaluator, format_results
from dsgg_layers.text import class_words, encode_prompts, mosa_prompts
from dsgg_layers.vocab import OBJECT_CLASSES, PREDICATE_GROUPS, PREDICATES

TASKS = ("predcls", "sgcls", "sgdet")


# ------------------------------------------------------------------------------------ the model


class MoSA(nn.Module):
    """MoSA: spatial encoder, MFE + MIM, temporal encoder, ASM (MoSA, arXiv:2604.19631, Fig. 2).

    Args:
        feature_dim: width of the per-box visual features.
        union_dim: width of the union-region features.
        class_semantics: ``(36, S)`` semantic vectors of the object classes.
        text_embeddings: ``(26, E)`` text embeddings of the predicates (for ASM).
        d_model, nhead, dim_feedforward, dropout: transformer sizes.
        spatial_layers, temporal_layers: encoder depths.
        motion: use MFE (and MIM); ``False`` is the ``--no-mfe`` ablation.
        fusion: ``"attention"`` (MIM) or ``"concat"`` (the ``--no-mim`` ablation).
        semantic: classify with ASM; ``False`` is the ``--no-asm`` ablation (a linear layer).
        motion_skip: MIM's linear motion path (``--mim-motion-skip``; not in the paper).
    """

    def __init__(
        self,
        feature_dim: int,
        union_dim: int,
        class_semantics: Tensor,
        text_embeddings: Tensor,
        *,
        d_model: int = 128,
        nhead: int = 4,
        dim_feedforward: int = 256,
        dropout: float = 0.1,
        spatial_layers: int = 1,
        temporal_layers: int = 2,
        motion: bool = True,
        fusion: str = "attention",
        semantic: bool = True,
        motion_skip: bool = False,
    ) -> None:
        super().__init__()
        self.register_buffer("class_semantics", class_semantics.float())
        in_dim = 2 * feature_dim + union_dim + class_semantics.shape[1] + 8
        self.pair_proj = nn.Sequential(nn.Linear(in_dim, d_model), nn.LayerNorm(d_model))
        layer = lambda: TransformerEncoderLayer(d_model, nhead, dim_feedforward, dropout)  # noqa: E731
        self.spatial = TransformerEncoder(layer(), spatial_layers)
        self.mfe = MotionFeatureExtractor(d_model) if motion else None
        self.mim = (
            MotionInteraction(
                d_model, nhead, dropout=dropout, fusion=fusion, motion_skip=motion_skip
            )
            if motion
            else None
        )
        self.temporal = TransformerEncoder(layer(), temporal_layers)
        groups = list(PREDICATE_GROUPS.values())
        if semantic:
            self.heads = nn.ModuleList(
                ActionSemanticMatcher(d_model, text_embeddings[g]) for g in groups
            )
        else:
            self.heads = nn.ModuleList(nn.Linear(d_model, g.stop - g.start) for g in groups)
        self.object_classifier = nn.Linear(feature_dim, len(OBJECT_CLASSES))
        self.d_model = d_model

    def pair_features(self, g: VideoGraph, object_probs: Tensor | None = None) -> Tensor:
        boxes = torch.cat(g.normalized_boxes(), -1)
        if object_probs is None:  # the classes given (PredCls, SGDet's detector labels)
            semantics = self.class_semantics[g.object_labels.clamp(min=0)]
        else:  # SGCls: the class distribution the object classifier predicts
            semantics = object_probs @ self.class_semantics
        x = torch.cat(
            (g.subject_features, g.object_features, g.union_features, semantics, boxes), -1
        )
        return self.pair_proj(x)

    def forward(
        self, g: VideoGraph, object_probs: Tensor | None = None, rows: ValidRows | None = None
    ) -> Tensor:
        """Predicate logits ``(B, T, P, 26)`` of every pair in every frame.

        ``rows``: the valid rows of ``g.mask``, found once for all blocks (built here when not
        given; pass them from the data loader to find them on the CPU).
        """
        mask = g.mask
        rows = ValidRows(mask) if rows is None else rows
        x = self.spatial(self.pair_features(g, object_probs), mask, rows=rows)  # pairs of a frame
        if self.mfe is not None and self.mim is not None:
            motion = self.mfe(g.subject_boxes, g.object_boxes, mask, g.frame_times,
                              image_size=g.image_size, rows=rows)  # fmt: skip
            x = self.mim(x, motion, mask, rows=rows)
        # along each pair's track: (B, P, T, D), positions = frame slots
        T = mask.shape[1]
        pos = sinusoidal_positions(T, self.d_model, dtype=x.dtype, device=x.device)
        x = self.temporal(x.transpose(1, 2), mask.transpose(1, 2), pos=pos,
                          rows=rows.transpose(1, 2)).transpose(1, 2)  # fmt: skip
        return torch.cat([head(x) for head in self.heads], -1)

    def classify_objects(self, g: VideoGraph) -> Tensor:
        """Object class logits ``(B, T, P, 36)`` from the object features (SGCls)."""
        return self.object_classifier(g.object_features)


def build_model(
    args: argparse.Namespace, example: VideoGraph, semantics: Tensor, text: Tensor
) -> MoSA:
    """The MoSA model the command-line ``args`` ask for (feature widths from ``example``)."""
    return MoSA(
        example.object_features.shape[-1],
        example.union_features.shape[-1],
        semantics,
        text,
        d_model=args.d_model,
        nhead=args.nhead,
        motion=not args.no_mfe,
        fusion="concat" if args.no_mim else "attention",
        semantic=not args.no_asm,
        motion_skip=args.mim_motion_skip,
    )


# -------------------------------------------------------------------------------------- the data


def load_data(
    args: argparse.Namespace,
) -> tuple[list[VideoGraph], dict[str, list[VideoGraph]], Tensor]:
    """Training videos, test videos per task, and the class semantics."""
    if args.ag_root is None:
        cfg = SyntheticConfig(seed=args.data_seed)
        if args.quick:
            cfg = cfg.replace(num_videos=40, num_test_videos=16)
        if args.train_videos is not None:
            cfg = cfg.replace(num_videos=args.train_videos)
        train = SyntheticActionGenome(cfg, split="train", mode="predcls")
        test = {task: list(SyntheticActionGenome(cfg, split="test", mode=task)) for task in TASKS}
        return list(train), test, train.class_semantics
    root = Path(args.ag_root)
    feats = root / "features"
    train = list(ActionGenome(root, "train", features=feats))
    test = {
        "predcls": list(ActionGenome(root, "test", features=feats)),
        "sgcls": list(ActionGenome(root, "test", features=feats, min_box_size=16)),
    }  # SGDet needs a detector's boxes, which the annotation files do not have
    semantics = encode_prompts(
        class_words(OBJECT_CLASSES), model=args.clip_model, pretrained=args.clip_pretrained
    )
    return train, test, semantics


def batches(
    videos: Sequence[VideoGraph], size: int, *, shuffle: bool, seed: int
) -> Iterator[VideoGraph]:
    order = (
        torch.randperm(len(videos), generator=torch.Generator().manual_seed(seed))
        if shuffle
        else torch.arange(len(videos))
    )
    for start in range(0, len(videos), size):
        yield VideoGraph.collate([videos[int(i)] for i in order[start : start + size]])


# ----------------------------------------------------------------------------- train / evaluate


def autocast(args: argparse.Namespace, device: torch.device):
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(args.amp)
    return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)


def train(
    model: nn.Module,
    videos: list[VideoGraph],
    args: argparse.Namespace,
    device: torch.device,
    rank: int,
    world: int,
) -> list[float]:
    core = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
    criterion = CategoryWeightedLoss(label_frequencies(videos), beta=args.beta).to(device)
    decay, no_decay = [], []
    for name, p in core.named_parameters():
        skip = p.ndim < 2 or name.endswith(("logit_scale", "logit_bias"))
        (no_decay if skip else decay).append(p)
    optimizer = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": args.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=args.lr,
    )
    mine = videos[rank::world]
    if world > 1:  # every rank takes the same number of steps, or DDP's all-reduce waits forever
        per_rank = math.ceil(len(videos) / world)
        mine = mine + videos[: per_rank - len(mine)]  # wrap around, as DistributedSampler does
    steps = args.epochs * math.ceil(len(mine) / args.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, args.lr, total_steps=steps, pct_start=0.1
    )
    scaler = torch.amp.GradScaler(device.type, enabled=args.amp == "fp16")
    epoch_times = []
    progress = _progress(range(args.epochs), rank, "epochs")
    for epoch in progress:
        model.train()
        start, total, count = time.perf_counter(), 0.0, 0
        for batch in batches(mine, args.batch_size, shuffle=True, seed=args.seed * 1000 + epoch):
            rows = ValidRows(batch.mask).to(device, non_blocking=True)  # found on the CPU
            batch = batch.to(device)
            with autocast(args, device):
                logits = model(batch, rows=rows)
                loss = criterion(logits.float(), batch.relations, batch.mask)
                obj = core.classify_objects(batch).float()
                loss = loss + F.cross_entropy(obj[batch.mask], batch.object_labels[batch.mask])
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            scaler.step(optimizer)
            scaler.update()
            schedule.step()
            total, count = total + loss.item(), count + 1
        if device.type == "cuda":
            torch.cuda.synchronize()
        epoch_times.append(time.perf_counter() - start)
        if hasattr(progress, "set_postfix"):
            progress.set_postfix(loss=f"{total / max(count, 1):.4f}")
    return epoch_times


@torch.no_grad()
def evaluate(
    model: nn.Module,
    test: dict[str, list[VideoGraph]],
    args: argparse.Namespace,
    device: torch.device,
    rank: int,
    world: int,
) -> dict[str, dict[str, Tensor]]:
    core = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
    core.eval()
    results = {}
    for task, videos in test.items():
        evaluator = ActionGenomeEvaluator(constraints=("with", "no"), ks=(10, 20, 50))
        for batch in batches(videos[rank::world], args.batch_size, shuffle=False, seed=0):
            rows = ValidRows(batch.mask).to(device, non_blocking=True)
            batch = batch.to(device)
            with autocast(args, device):
                preds = {
                    "mask": batch.mask,
                    "subject_boxes": batch.subject_boxes,
                    "object_boxes": batch.object_boxes,
                }
                if task == "sgcls":  # predict the classes of the ground-truth boxes
                    probs = core.classify_objects(batch).float().softmax(-1)
                    probs[..., 0] = 0  # the person is the subject, never an object
                    scores, labels = probs.max(-1)
                    logits = core(batch, probs / probs.sum(-1, keepdim=True), rows)
                    preds |= {"object_labels": labels, "object_scores": scores}
                else:  # PredCls: given classes; SGDet: the detector's classes and scores
                    logits = core(batch, rows=rows)
                    preds["object_labels"] = batch.object_labels
                    if batch.object_scores is not None:
                        preds["object_scores"] = batch.object_scores
            preds["predicate_scores"] = logits.float().sigmoid()
            evaluator.update(preds, batch.targets())
        evaluator.sync()
        results[task] = evaluator.compute()
    return results


def _progress(iterable, rank: int, desc: str):
    try:
        from tqdm.auto import tqdm
    except ImportError:  # the examples extra is not installed: no progress bar
        return iterable
    return tqdm(iterable, desc=desc, disable=rank != 0, dynamic_ncols=True)


def plot_per_predicate(
    results: dict[str, dict[str, Tensor]], frequencies: Tensor, path: Path
) -> bool:
    """Bar chart of PredCls per-predicate R@20 (with constraint), predicates by frequency."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    recall = results["predcls"]["with/recall_per_predicate@20"] * 100
    order = torch.argsort(frequencies, descending=True).tolist()
    fig, ax = plt.subplots(figsize=(12, 4))
    colors = ["tab:red" if PREDICATES[i] in MOTION_PREDICATES else "tab:blue" for i in order]
    ax.bar(range(26), [float(recall[i]) for i in order], color=colors)
    ax.set_xticks(range(26), [PREDICATES[i] for i in order], rotation=70, ha="right", fontsize=8)
    ax.set_ylabel("R@20 (%), PredCls, with constraint")
    ax.set_ylim(0, 100)
    ax.set_title("MoSA per-predicate recall (head to tail; red: motion-decided predicates)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


# ------------------------------------------------------------------------------------------ main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Train and evaluate the MoSA reference assembly.")
    p.add_argument("--ag-root", default=None, help="Action Genome folder (annotations/, features/)")
    p.add_argument("--out", default="runs/mosa", help="where the checkpoint, results and chart go")
    p.add_argument("--epochs", type=int, default=25)
    p.add_argument("--batch-size", type=int, default=16, help="videos per batch")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--beta", type=float, default=0.5, help="category-weighted loss exponent")
    p.add_argument("--d-model", type=int, default=128)
    p.add_argument("--nhead", type=int, default=4)
    p.add_argument("--device", default="cpu")
    p.add_argument("--amp", choices=("none", "bf16", "fp16"), default="none")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    p.add_argument("--seed", type=int, default=0, help="model initialisation and batch order")
    p.add_argument("--data-seed", type=int, default=0, help="seed of the synthetic benchmark")
    p.add_argument("--clip-model", default="ViT-B-32")
    p.add_argument(
        "--clip-pretrained",
        default=None,
        help="open_clip weights for the text embeddings (e.g. openai); default random",
    )
    p.add_argument(
        "--random-text",
        action="store_true",
        help="random unit predicate embeddings instead of CLIP's (needs no open_clip)",
    )
    p.add_argument(
        "--no-mfe", action="store_true", help="ablation: no motion features (and no MIM)"
    )
    p.add_argument("--no-mim", action="store_true", help="ablation: fuse motion by concatenation")
    p.add_argument("--no-asm", action="store_true", help="ablation: a linear classifier, not ASM")
    p.add_argument(
        "--mim-motion-skip",
        action="store_true",
        help="MIM adds a linear motion path to its residual (motion reaches one-pair frames)",
    )
    p.add_argument("--quick", action="store_true", help="a tiny run (tests, CI)")
    p.add_argument(
        "--train-videos", type=int, default=None, help="synthetic training videos (default: all)"
    )
    args = p.parse_args(argv)
    if args.quick:
        args.epochs = min(args.epochs, 2)
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, object]:
    args = parse_args(argv)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if world > 1:  # started by torchrun
        dist.init_process_group("nccl" if args.device.startswith("cuda") else "gloo")
    device = torch.device(args.device)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    train_videos, test_videos, semantics = load_data(args)
    if args.random_text:  # no text tower needed (machines without open_clip, GPU suite)
        gen = torch.Generator().manual_seed(args.seed)
        text = F.normalize(torch.randn(len(PREDICATES), 512, generator=gen), dim=-1)
    else:
        text = encode_prompts(
            mosa_prompts(), model=args.clip_model, pretrained=args.clip_pretrained
        )
    model = build_model(args, train_videos[0], semantics, text).to(device)
    if world > 1:
        model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )

    epoch_times = train(model, train_videos, args, device, rank, world)
    results = evaluate(model, test_videos, args, device, rank, world)
    frequencies = label_frequencies(train_videos)
    summary: dict[str, object] = {"args": vars(args), "epoch_seconds": epoch_times}
    if rank == 0:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        core = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
        torch.save({"model": core.state_dict(), "args": vars(args)}, out / "mosa.pt")
        for task, r in results.items():
            print(f"\n{task}")
            print(format_results(r, metrics=("R", "mR"), ks=(10, 20, 50)))
        motion = {
            task: {
                p: round(100 * float(r["with/recall_per_predicate@20"][PREDICATES.index(p)]), 1)
                for p in MOTION_PREDICATES
            }
            for task, r in results.items()
        }
        print("\nmotion-decided predicates, per-predicate R@20 with constraint (%):")
        for task, row in motion.items():
            print(f"  {task:8s} " + "  ".join(f"{p}={v}" for p, v in row.items()))
        mean_epoch = sum(epoch_times) / len(epoch_times)
        print(f"\nseconds per epoch: {mean_epoch:.2f} ({args.device}, amp={args.amp})")
        summary["results"] = {
            task: {k: v.tolist() for k, v in r.items()} for task, r in results.items()
        }
        summary["motion_predicates"] = motion
        (out / "results.json").write_text(json.dumps(summary, indent=1))
        if plot_per_predicate(results, frequencies, out / "per_predicate_recall.png"):
            print(f"saved mosa.pt, results.json and per_predicate_recall.png in {out}")
    if world > 1:
        dist.destroy_process_group()
    summary["results_tensors"] = results
    summary["model"] = (
        model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
    )
    return summary


if __name__ == "__main__":
    main()
