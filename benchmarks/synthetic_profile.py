"""Profile of the synthetic Action Genome benchmark: how hard it is, next to Action Genome.

Trains an STTran-style baseline (pair features -> the library's `SpatialTemporalEncoder` ->
three predicate-group heads: attention softmax, spatial and contacting sigmoid; an object
classifier for SGCls) on the shared harness of `examples/`, with the harness's default budget,
and prints its R@K / mR@K table beside STTran's numbers on Action Genome (as the MoSA paper
reports them, Tables 1-2), the target bands, and the statistics the next papers rely on:

- detected pairs without annotation in SGDet (RS-Net's negatives), per video;
- the share of ground-truth pair-frames whose label set differs from the pair's previous frame
  (TR²'s relation changes);
- co-occurrence between the predicate groups: mutual information (bits) between the attention
  predicate and the spatial / contacting predicates of a pair-frame (ARN's association);

and writes a head-to-tail per-predicate recall chart beside the predicate frequency curve.

    python benchmarks/synthetic_profile.py                 # seed 0, default budget
    python benchmarks/synthetic_profile.py --seeds 0 1     # two seeds
    python benchmarks/synthetic_profile.py --quick         # CI size
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import Tensor, nn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "examples"))
import ag_task  # noqa: E402  (examples/ag_task.py)
import harness  # noqa: E402  (examples/harness.py)
import pair_models  # noqa: E402
import runtime  # noqa: E402

from dsgg_layers import (  # noqa: E402
    SpatialTemporalEncoder,
    ValidRows,
    box_iou,
    label_frequencies,
    sttran_predicate_loss,
)
from dsgg_layers._checks import check_choice  # noqa: E402
from dsgg_layers.data import SyntheticActionGenome, SyntheticConfig, VideoGraph  # noqa: E402
from dsgg_layers.metrics import predicate_probabilities  # noqa: E402
from dsgg_layers.vocab import PREDICATE_GROUPS, PREDICATES  # noqa: E402

# STTran on Action Genome, as the MoSA paper reports it (Tables 1-2): R@10/20/50 and mR@10/20/50,
# with and without constraint.
STTRAN_AG = {
    "predcls": {"with/R": (68.6, 71.8, 71.8), "with/mR": (37.8, 40.1, 40.2),
                "no/R": (77.9, 94.2, 99.1), "no/mR": (51.4, 67.7, 82.7)},
    "sgcls": {"with/R": (46.4, 47.5, 47.5), "with/mR": (27.3, 28.0, 28.0),
              "no/R": (54.0, 63.7, 66.4), "no/mR": (40.7, 50.1, 58.8)},
    "sgdet": {"with/R": (25.2, 34.1, 37.0), "with/mR": (16.6, 20.8, 22.2),
              "no/R": (24.6, 36.2, 48.8), "no/mR": (20.9, 29.7, 39.2)},
}  # fmt: skip
# The target bands of the benchmark for this baseline (R@20 / mR@20).
BANDS = {
    ("predcls", "with/R@20"): (66, 78), ("predcls", "with/mR@20"): (32, 48),
    ("predcls", "no/R@20"): (90, 97), ("predcls", "no/mR@20"): (58, 76),
    ("sgcls", "with/R@20"): (42, 54), ("sgcls", "with/mR@20"): (22, 34),
    ("sgdet", "with/R@20"): (28, 40), ("sgdet", "with/mR@20"): (15, 27),
}  # fmt: skip


# --------------------------------------------------------------------------- the baseline


class STTranBaseline(nn.Module):
    """Pair features, the spatial-temporal block, three group heads; keeps the harness contract.

    Attention is one label per pair (cross-entropy, softmax scores); spatial and contacting are
    multi-label with sigmoid scores, trained as STTran's public code trains them by default: the
    multi-label margin loss on the sigmoid scores (``loss="bce"``: its ``--bce_loss`` option).
    """

    def __init__(
        self,
        feature_dim: int,
        union_dim: int,
        class_semantics: Tensor,
        d_model: int,
        loss: str = "margin",
    ):
        super().__init__()
        check_choice(loss, "loss", ("margin", "bce"))
        self.loss = loss
        self.front = pair_models.PairFrontEnd(feature_dim, union_dim, class_semantics, d_model)
        self.block = SpatialTemporalEncoder(d_model, 4, 2 * d_model, temporal_layers=2)
        self.head = nn.Linear(d_model, len(PREDICATES))

    def logits(self, g: VideoGraph, object_probs: Tensor | None, rows: ValidRows | None) -> Tensor:
        return self.head(self.block(self.front(g, object_probs), g.mask if rows is None else rows))

    def forward(self, g: VideoGraph, *, task: str = "predcls", rows: ValidRows | None = None):
        if self.training:  # STTran's losses: attention CE, margin (or BCE) for the other groups
            logits = self.logits(g, None, rows).float()
            losses = sttran_predicate_loss(logits, g.relations.bool(), mask=g.mask,
                                           multi_label=self.loss)  # fmt: skip
            return {**losses, "object": self.front.object_loss(g)}
        preds, object_probs = self.front.predictions(g, task)
        logits = self.logits(g, object_probs, rows)
        preds["predicate_scores"] = predicate_probabilities(logits.float())
        return preds


def build(args: argparse.Namespace, data: ag_task.Data) -> STTranBaseline:
    g = data.train[0]
    return STTranBaseline(
        g.object_features.shape[-1], g.union_features.shape[-1], data.class_semantics, 128,
        loss=args.loss,
    )  # fmt: skip


def add_arguments(p: argparse._ActionsContainer) -> None:
    p.add_argument(
        "--loss",
        choices=("margin", "bce"),
        default="margin",
        help="spatial/contacting loss: STTran's default (margin) or its BCE option",
    )


ASSEMBLY = harness.Assembly(
    "sttran_baseline", "STTran-style baseline", build, add_arguments=add_arguments
)


# --------------------------------------------------------------------------- the statistics


def unannotated_detections(videos: list[VideoGraph]) -> tuple[float, float]:
    """Mean per SGDet video of detected pair tracks, and of those matching no annotated pair in
    any of their frames (same class, both boxes IoU >= 0.5)."""
    tracks, unmatched = [], []
    for v in videos:
        gt = v.ground_truth
        iou_s = box_iou(v.subject_boxes[0], gt.subject_boxes[0])  # (T, P, G)
        iou_o = box_iou(v.object_boxes[0], gt.object_boxes[0])
        same = v.object_labels[0].unsqueeze(-1) == gt.object_labels[0].unsqueeze(-2)
        hit = (iou_s >= 0.5) & (iou_o >= 0.5) & same & gt.mask[0].unsqueeze(-2)
        hit = (hit.any(-1) & v.mask[0]).any(0)  # (P,): matched in some frame
        exists = v.mask[0].any(0)
        tracks.append(int(exists.sum()))
        unmatched.append(int((exists & ~hit).sum()))
    return sum(tracks) / len(tracks), sum(unmatched) / len(unmatched)


def group_mutual_information(videos: list[VideoGraph]) -> dict[str, float]:
    """Mutual information (bits) between the attention predicate of a pair-frame and each of its
    spatial / contacting predicates (every label pair of a pair-frame counted once)."""
    att = PREDICATE_GROUPS["attention"]
    out = {}
    for group in ("spatial", "contacting"):
        sl = PREDICATE_GROUPS[group]
        joint = torch.zeros(att.stop - att.start, sl.stop - sl.start, dtype=torch.float64)
        for v in videos:
            rel = v.relations[0][v.mask[0]].double()  # (N, 26)
            joint += rel[:, att].T @ rel[:, sl]
        p = joint / joint.sum().clamp(min=1)
        pa, pb = p.sum(1, keepdim=True), p.sum(0, keepdim=True)
        terms = torch.where(p > 0, p * torch.log2(p / (pa * pb).clamp(min=1e-30)), 0.0)
        out[group] = float(terms.sum())
    return out


# --------------------------------------------------------------------------------- report


def table(results: dict[str, dict[str, Tensor]]) -> list[str]:
    lines = ["| run | R@10/20/50 with | mR@10/20/50 with | R@10/20/50 no | mR@10/20/50 no |",
             "| --- | --- | --- | --- | --- |"]  # fmt: skip
    for task in ("predcls", "sgcls", "sgdet"):
        if task not in results:
            continue
        r = results[task]
        kinds = (("with", "R"), ("with", "mR"), ("no", "R"), ("no", "mR"))
        cells = [
            " / ".join(f"{100 * float(r[f'{c}/{m}@{k}']):.1f}" for k in (10, 20, 50))
            for c, m in kinds
        ]
        ag = STTRAN_AG[task]
        ref = [
            " / ".join(f"{v:.1f}" for v in ag[k]) for k in ("with/R", "with/mR", "no/R", "no/mR")
        ]
        lines.append(f"| {task}, synthetic (baseline) | " + " | ".join(cells) + " |")
        lines.append(f"| {task}, Action Genome (STTran) | " + " | ".join(ref) + " |")
    return lines


def bands(results: dict[str, dict[str, Tensor]]) -> list[str]:
    lines = ["| task | metric | baseline | band | inside |", "| --- | --- | --- | --- | --- |"]
    for (task, key), (lo, hi) in BANDS.items():
        if task in results:
            v = 100 * float(results[task][key])
            lines.append(
                f"| {task} | {key} | {v:.1f} | {lo}-{hi} | {'yes' if lo <= v <= hi else 'no'} |"
            )
    return lines


def chart(results: dict[str, Tensor], frequencies: Tensor, path: Path) -> bool:
    plt = runtime.pyplot()
    if plt is None:
        return False
    order = torch.argsort(frequencies, descending=True).tolist()
    recall = results["with/recall_per_predicate@20"] * 100
    fig, ax = plt.subplots(figsize=(12, 4))
    ax.bar(range(len(order)), [float(recall[i]) for i in order], color="tab:blue")
    ax.set_ylabel("PredCls R@20 with constraint (%)")
    ax.set_ylim(0, 100)
    ax.set_xticks(range(len(order)), [PREDICATES[i] for i in order], rotation=70, ha="right",
                  fontsize=8)  # fmt: skip
    freq = ax.twinx()
    share = frequencies.double() / frequencies.sum()
    freq.plot(
        range(len(order)), [100 * float(share[i]) for i in order], color="tab:red", marker="."
    )
    freq.set_yscale("log")
    freq.set_ylabel("share of training labels (%, log)", color="tab:red")
    ax.set_title("STTran-style baseline on the synthetic benchmark: recall head to tail")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--quick", action="store_true", help="CI size (tiny data, 1 epoch)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=None, help="where the chart goes (default: a temp folder)")
    p.add_argument("--synthetic", nargs="+", default=[], metavar="FIELD=VALUE",
                   help="SyntheticConfig fields to change (as the harness's flag)")  # fmt: skip
    add_arguments(p)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = SyntheticConfig().replace(**ag_task.synthetic_changes(args.synthetic))
    if args.quick:
        cfg = cfg.replace(num_videos=40, num_test_videos=16)
    detected = list(SyntheticActionGenome(cfg, split="test", mode="sgdet"))
    train = list(SyntheticActionGenome(cfg, split="train"))
    n_tracks, n_unmatched = unannotated_detections(detected)
    mi = group_mutual_information(train)
    print("# Synthetic benchmark profile\n")
    print(f"- SGDet: {n_tracks:.1f} detected pair tracks a test video, {n_unmatched:.1f} of them "
          "matching no annotated pair (RS-Net's negatives)")  # fmt: skip
    print(f"- relation changes: {100 * pair_models.label_change_share(train):.1f}% of ground-truth "
          "pair-frames differ from the pair's previous frame (TR²)")  # fmt: skip
    print(f"- group association: MI(attention; spatial) = {mi['spatial']:.3f} bits, "
          f"MI(attention; contacting) = {mi['contacting']:.3f} bits (ARN)\n")  # fmt: skip
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp())
    frequencies = label_frequencies(train)
    for seed in args.seeds:
        argv_h = ["--seed", str(seed), "--out", str(out / f"seed{seed}"), "--random-text",
                  "--threads", str(args.threads), "--loss", args.loss,
                  *(["--quick"] if args.quick else []),
                  *(["--synthetic", *args.synthetic] if args.synthetic else [])]  # fmt: skip
        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            summary = harness.run(ASSEMBLY, argv_h)
        seconds = time.perf_counter() - start
        results = summary["results_tensors"]
        print(f"## Seed {seed} ({seconds:.0f} s: training and evaluation, harness defaults)\n")
        print("\n".join(table(results)) + "\n")
        print("\n".join(bands(results)) + "\n")
        top5 = set(torch.argsort(frequencies, descending=True)[:5].tolist())
        per_predicate = results["predcls"]["with/recall_per_predicate@20"].tolist()
        full = [PREDICATES[i] for i, v in enumerate(per_predicate) if v >= 1.0 and i not in top5]
        print(f"predicates outside the five most frequent at 100% PredCls R@20: {full or 'none'}\n")
        path = out / f"profile_seed{seed}.png"
        if chart(results["predcls"], frequencies, path):
            print(f"chart: {path}\n")


if __name__ == "__main__":
    main()
