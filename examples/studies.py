"""The papers' comparisons, declared as data, and one command that runs them.

Each [`Study`][experiments.Study] is one table of a paper (an ablation ladder, a component
switched off, the paper's form against the public code's): variants of one reference assembly,
run on the same data and budget, paired by seed. Differences come with 95% t-intervals over the
seeds; one whose interval holds 0 is "not shown".

Usage::

    python examples/studies.py --list
    python examples/studies.py tr2-table4 --seeds 0 1 2          # any assembly flags follow
    python examples/studies.py rsnet rsnet-table4 --quick --seeds 0 1   # runs shared

The tables print and go to ``<--out>/<study>.json``; every run keeps its own outputs
(``results.json``, checkpoints) in ``<--out>/<flags>_seed<k>``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

import torch

from dsgg_layers.data import SyntheticConfig, SyntheticVidVRDConfig

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the shared harness, beside this file
import ag_task
import arn
import harness
import mosa
import rsnet
import runtime
import tr2
import uasan
from experiments import Study, run_study, run_sweep

# ------------------------------------------------------------------------------------- metrics


def _ag(*metrics: str, constraint: str = "with") -> dict[str, str]:
    """Action Genome columns: ``R@20`` -> ``with/R@20`` (the ``no`` constraint prefixed)."""
    prefix = "" if constraint == "with" else f"{constraint} "
    return {f"{prefix}{m}": f"{constraint}/{m}" for m in metrics}


_STRATA = {f"R@20 s{i}": f"with/R@20/stratum{i}" for i in range(8)}
_VIDVRD = {f"{split} {m}": f"{split}/{m}" for split in ("novel", "all")
           for m in ("mAP", "R@50", "R@100")}  # fmt: skip


def _paper(columns: Sequence[str], table: Mapping[str, Sequence[float]]) -> dict[str, Any]:
    return {row: dict(zip(columns, values, strict=True)) for row, values in table.items()}


# ------------------------------------------------------------------------ the papers' numbers

# RS-Net, Action Genome SGDet with constraint: Table 2 (STTran retrained, and with RS-Net) and
# Table 4 (Ours-STTran: R@10, R@20, P@10, P@20).
RSNET_TABLE_2 = {
    "baseline": {"R@10": 25.1, "R@20": 33.9, "P@10": 17.9, "P@20": 14.2, "mR@10": 16.5,
                 "mR@20": 20.8},
    "RS-Net": {"R@10": 28.3, "R@20": 34.8, "P@10": 20.7, "P@20": 14.9, "mR@10": 18.9,
               "mR@20": 23.2},
}  # fmt: skip
RSNET_TABLE_4 = {
    "no temporal encoder (so no fusion)": (28.0, 34.6, 20.6, 14.8),
    "mean token": (28.1, 34.6, 20.7, 14.8),
    "no context fusion": (28.0, 34.7, 20.6, 14.8),
    "RS-Net (learnable token, with fusion)": (28.3, 34.8, 20.7, 14.9),
}
# TR², Action Genome PredCls with constraint, R@10 / R@20 / R@50 (Tables I, III, IV).
TR2_TABLE_I = {"STTran-style": (68.6, 71.8, 71.8), "TR²": (70.9, 73.8, 73.8)}
TR2_TABLE_IV = {
    "none": (69.5, 72.3, 72.3),
    "temporal only": (70.2, 73.1, 73.1),
    "spatial only": (69.7, 72.5, 72.5),
    "spatial + decoder": (70.5, 73.3, 73.4),
    "spatial + token": (70.0, 72.8, 72.9),
    "all (TR²)": (70.9, 73.8, 73.8),
}
TR2_TABLE_III = {"direct (Eq. 4)": (70.1, 73.0, 73.0), "difference (Eq. 2)": (70.9, 73.8, 73.8)}
# ARN, Action Genome SGDet no constraint: Table 3's R@10 and mR@10.
ARN_TABLE_3 = {
    "baseline (cross-entropy)": (28.4, 19.6),
    "+ focal loss": (31.7, 25.6),
    "+ CLIP init": (34.4, 27.1),
    "+ PAP": (35.3, 27.9),
    "+ HA (ARN)": (37.6, 29.7),
}
# UASAN, VidVRD open-vocabulary SGDet: Table 4's novel mAP.
UASAN_TABLE_4 = {"A (pair only)": 6.76, "B (+ union, motion)": 7.69,
                 "C (+ context encoder)": 10.09, "full (+ union decoder)": 11.05}  # fmt: skip


# ---------------------------------------------------------------------- the studies' own lines


@torch.no_grad()
def _throughput(model: torch.nn.Module, args: argparse.Namespace, videos: Sequence[Any]) -> float:
    """Frames a second of the model's SGDet inference on ``videos``, data loading excluded."""
    env = runtime.Distributed()
    model.eval()
    batches = [(b.to(env.device), r.to(env.device))
               for b, r in harness.make_loader(videos, args, env, train=False)]  # fmt: skip
    frames = sum(int(b.frame_mask.sum()) for b, _ in batches)
    model(batches[0][0], task="sgdet", rows=batches[0][1])  # warm-up
    start = time.perf_counter()
    for b, r in batches:
        model(b, task="sgdet", rows=r)
    if env.device.type == "cuda":
        torch.cuda.synchronize(env.device)
    return frames / (time.perf_counter() - start)


def _negatives(videos: Sequence[Any], model: Any, seed: int) -> dict[str, float]:
    """Mean per training video: detected pair-frames, positives, negative candidates, negatives
    kept by the near-duplicate rule and by the cap (what ``p0`` learns from)."""
    gen = torch.Generator().manual_seed(seed)
    keys = ("pair-frames", "positives", "negatives", "after filter", "after cap")
    totals = dict.fromkeys(keys, 0.0)
    for v in videos:
        a = model.assign(v)
        kept, capped = model.sample_negatives(v, a, gen)
        for key, m in zip(keys, (v.mask, a.positive, a.negative, kept, capped), strict=True):
            totals[key] += int(m.sum())
    return {k: round(v / max(len(videos), 1), 1) for k, v in totals.items()}


def rsnet_report(runs: Mapping[str, dict[str, Any]], argv: Sequence[str]) -> tuple[str, Any]:
    """SGDet frames a second of both models and RS-Net's training pairs per video."""
    args = harness.make_parser(rsnet.ASSEMBLY).parse_args(list(argv))
    data = ag_task.load_data(args, rsnet.ASSEMBLY.train_mode)
    speed = {n: round(_throughput(s["model"], args, data.test["sgdet"]), 1)
             for n, s in runs.items() if "sgdet" in data.test}  # fmt: skip
    stats = _negatives(data.train, runs["RS-Net"]["model"], args.seed)
    text = ("SGDet frames/s (first seed): " + ", ".join(f"{n} {v}" for n, v in speed.items())
            + "\ntraining pairs per SGDet video (mean): "
            + ", ".join(f"{k} {v}" for k, v in stats.items()))  # fmt: skip
    return text, {"frames_per_second": speed, "negatives_per_video": stats}


def tr2_report(runs: Mapping[str, dict[str, Any]], argv: Sequence[str]) -> tuple[str, Any]:
    """How often a pair's relations change between its frames (what TR²'s guidance learns)."""
    share = next(iter(runs.values()))["model"].train_change_share
    text = (
        f"relation changes: {100 * share:.1f}% of annotated training pair-frames differ from the "
        "pair's previous frame; R@20 s<i>: PredCls R@20 in change-share stratum i"
    )
    return text, {"train_change_share": share}


# ------------------------------------------------------------------------------------- studies

_TR2 = dict(assembly=tr2.ASSEMBLY, metrics=_ag("R@10", "R@20", "R@50") | _STRATA,
            base=("--tasks", "predcls"), report=tr2_report)  # fmt: skip
_TR2_PAPER = ("R@10", "R@20", "R@50")
_TR2_STTRAN = ["--classifier", "linear", "--positions", "slot", "--no-token", "--guidance", "none",
               "--temporal-norm", "standard"]  # fmt: skip

STUDIES: dict[str, Study] = {s.name: s for s in (
    Study("mosa-ladder", mosa.ASSEMBLY, "MoSA: the ablation ladder (motion, then ASM)",
          {"linear, no motion (--no-mfe --no-asm)": ["--no-mfe", "--no-asm"],
           "+ MFE + MIM (--no-asm)": ["--no-asm"], "+ ASM (MoSA)": []},
          _ag("R@10", "R@20", "mR@20") | _ag("R@20", "mR@20", constraint="no"), ladder=True,
          phenomenon="--synthetic walking=P shifting=P: how often motion decides a predicate"),
    Study("mosa-mfe", mosa.ASSEMBLY, "MoSA: motion features (MFE + MIM) on and off",
          {"no MFE (--no-mfe)": ["--no-mfe"], "MoSA": []},
          _ag("R@10", "R@20", "mR@20") | _ag("R@20", "mR@20", constraint="no"),
          reference="no MFE (--no-mfe)"),
    Study("mosa-mim", mosa.ASSEMBLY, "MoSA: MIM (attention) against concatenation",
          {"concat (--no-mim)": ["--no-mim"], "MoSA": []},
          _ag("R@10", "R@20", "mR@20"), reference="concat (--no-mim)"),
    Study("mosa-asm", mosa.ASSEMBLY, "MoSA: ASM against a linear classifier",
          {"linear (--no-asm)": ["--no-asm"], "MoSA": []},
          _ag("R@10", "R@20", "mR@20"), reference="linear (--no-asm)"),
    Study("mosa-motion-skip", mosa.ASSEMBLY, "MoSA: MIM's motion skip (not in the paper)",
          {"paper form": [], "--mim-motion-skip": ["--mim-motion-skip"]},
          _ag("R@20", "mR@20"), reference="paper form"),
    Study("rsnet", rsnet.ASSEMBLY, "STTran-style baseline with and without RS-Net",
          {"baseline": ["--variant", "baseline"], "RS-Net": ["--variant", "rsnet"]},
          _ag("R@10", "R@20", "R@50", "P@10", "P@20", "mR@10", "mR@20"),
          reference="baseline", report=rsnet_report, headline="P@10",
          paper=RSNET_TABLE_2),
    Study("rsnet-table4", rsnet.ASSEMBLY, "RS-Net Table 4 (SGDet with constraint)",
          {"no temporal encoder (so no fusion)": ["--variant", "rsnet", "--temporal", "none"],
           "mean token": ["--variant", "rsnet", "--temporal", "mean"],
           "no context fusion": ["--variant", "rsnet", "--no-fusion"],
           "no re-scoring (p0 unused)": ["--variant", "rsnet", "--no-rescore"],
           "RS-Net (learnable token, with fusion)": ["--variant", "rsnet"],
           "baseline (no RS-Net)": ["--variant", "baseline"]},
          _ag("R@10", "R@20", "P@10", "P@20"), reference="RS-Net (learnable token, with fusion)",
          base=("--tasks", "sgdet"),
          phenomenon="--synthetic bystanders=N: unannotated objects near the person",
          claims={"no temporal encoder (so no fusion)": -1, "mean token": -1,
                  "no context fusion": -1, "no re-scoring (p0 unused)": -1,
                  "baseline (no RS-Net)": -1},
          paper=_paper(("R@10", "R@20", "P@10", "P@20"), RSNET_TABLE_4)),
    Study("tr2-table4", title="TR² Table IV (PredCls with constraint)",
          variants={"none": ["--no-spatial", "--no-decoder", "--no-token"],
                    "temporal only": ["--no-spatial"],
                    "spatial only": ["--no-decoder", "--no-token"],
                    "spatial + decoder": ["--no-token"],
                    "spatial + token": ["--no-decoder"],
                    "all (TR²)": []},
          reference="none", paper=_paper(_TR2_PAPER, TR2_TABLE_IV), **_TR2),
    Study("tr2-table3", title="TR² Table III (guidance: direct against difference)",
          variants={"direct (Eq. 4)": ["--guidance", "direct"], "difference (Eq. 2)": []},
          reference="direct (Eq. 4)", paper=_paper(_TR2_PAPER, TR2_TABLE_III),
          phenomenon="--synthetic gaze_switching=X: how often relations change", **_TR2),
    Study("tr2-fig4", title="TR² Fig. 4 (no, binary and difference guidance)",
          variants={"no guidance (TR²⁻)": ["--guidance", "none"],
                    "binary (TR²^bin)": ["--guidance", "binary"],
                    "difference (TR²)": []},
          reference="no guidance (TR²⁻)",
          phenomenon="--synthetic gaze_switching=X: how often relations change", **_TR2),
    Study("tr2-baseline", title="TR² against an STTran-style model (Table I's rows)",
          variants={"STTran-style": _TR2_STTRAN,
                    "TR²": []},
          reference="STTran-style",
          paper=_paper(_TR2_PAPER, TR2_TABLE_I), **_TR2),
    Study("tr2-parts", title="TR²: which part costs (each switched to the STTran-style choice)",
          variants={"TR²": [],
                    "linear heads": ["--classifier", "linear"],
                    "frame-slot positions": ["--positions", "slot"],
                    "no message token": ["--no-token"],
                    "no guidance": ["--guidance", "none"],
                    "STTran's margin loss": ["--loss", "margin"],
                    "random text": ["--random-text"],
                    "the code's sentence norm (9.1)": ["--sentence-scale", "9.1"],
                    "all five (STTran-style)": _TR2_STTRAN},
          reference="TR²", phenomenon="--synthetic text_coupling=X with --clip-model wordllama",
          claims={r: -1 for r in ("linear heads", "frame-slot positions", "no message token",
                                  "no guidance", "STTran's margin loss", "random text",
                                  "all five (STTran-style)")}, **_TR2),
    Study("tr2-text", title="TR² against the language dial (its gain and its text's)",
          variants={"TR²": [], "STTran-style": _TR2_STTRAN, "random text": ["--random-text"]},
          reference="TR²", phenomenon="--synthetic text_coupling=X with --clip-model wordllama",
          claims={"STTran-style": -1, "random text": -1}, **_TR2),
    Study("tr2-temporal-norm", tr2.ASSEMBLY, "TR² temporal layers: post-norm against the code's",
          {"standard": ["--temporal-norm", "standard"], "code": ["--temporal-norm", "code"]},
          _ag("R@10", "R@20", "mR@20"), reference="standard", base=("--tasks", "predcls")),
    Study("arn-table3", arn.ASSEMBLY, "ARN Table 3 (SGDet)",
          {"baseline (cross-entropy)": ["--loss", "ce", "--classifier", "linear", "--no-pap"],
           "+ focal loss": ["--classifier", "linear", "--no-pap"],
           "+ CLIP init": ["--no-pap"],
           "+ PAP": ["--no-ha"],
           "+ HA (ARN)": []},
          _ag("R@10", "R@20", "R@50", "mR@10", "mR@20", constraint="no") | _ag("R@20"),
          reference="baseline (cross-entropy)", ladder=True,
          paper=_paper(("no R@10", "no mR@10"), ARN_TABLE_3)),
    Study("uasan-table4", uasan.ASSEMBLY, "UASAN Table 4 (synthetic trajectories)",
          {"chance (random scores)": ["--chance", "--epochs", "1"],
           "A (pair only)": ["--variant", "a"],
           "B (+ union, motion)": ["--variant", "b"],
           "C (+ context encoder)": ["--variant", "c"],
           "full (+ union decoder)": ["--variant", "full"]},
          _VIDVRD, reference="A (pair only)", ladder=True,
          paper={k: {"novel mAP": v} for k, v in UASAN_TABLE_4.items()}),
    Study("uasan-c-readout", uasan.ASSEMBLY, "UASAN: row C's cost, the encoder or its head?",
          {"B (+ union, motion)": ["--variant", "b"], "C (+ context encoder)": ["--variant", "c"],
           "C, read by B's head (--variant c-parts)": ["--variant", "c-parts"]},
          _VIDVRD, reference="B (+ union, motion)"),
    Study("uasan-heads", uasan.ASSEMBLY, "UASAN: the paper's head against the public code's",
          {"paper": ["--head", "paper"], "code": ["--head", "code"]},
          _VIDVRD, reference="paper"),
)}  # fmt: skip


ABLATIONS = {"mosa": "mosa-ladder", "rsnet": "rsnet-table4", "tr2": "tr2-table4",
             "arn": "arn-table3", "uasan": "uasan-table4"}  # fmt: skip
"""The study ``examples/<paper>.py --ablation`` runs: the paper's ablation table."""


_DIALS = {f.name for c in (SyntheticConfig, SyntheticVidVRDConfig) for f in fields(c)}


def _number(text: str) -> float | str:
    """A dial's value: a number where it reads as one (``0.5``), else the word (``wordllama``)."""
    try:
        return float(text)
    except ValueError:
        return text


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the named studies (see the module docstring); returns ``{study: result}``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("studies", nargs="*", metavar="STUDY", help="studies to run (--list)")
    p.add_argument("--list", action="store_true", help="list the studies and exit")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="paired seeds")
    p.add_argument("--out", default="runs/studies", help="folder of the runs and tables")
    p.add_argument(
        "--sweep",
        default=None,
        metavar="FIELD=V1,V2,...",
        help="run each study at these values of a benchmark field (bystanders=0,4) or, for any "
        "other name, of the assembly flag (text=word,wordllama: --text)",
    )
    args, rest = p.parse_known_args(argv)
    unknown = [n for n in args.studies if n not in STUDIES]
    if unknown:
        p.error(f"unknown studies {unknown}; choose from {list(STUDIES)}")
    if args.list or not args.studies:
        for s in STUDIES.values():
            print(f"{s.name:20s} {s.assembly.name:6s} {s.title}")
        return {}
    cache: dict[tuple[str, ...], dict[str, Any]] = {}
    results = {}
    for name in args.studies:  # studies of one assembly share their runs
        if args.sweep:
            dial, _, raw = args.sweep.partition("=")
            if dial not in _DIALS:  # not a benchmark field: an assembly flag (text -> --text)
                dial = "--" + dial.lstrip("-").replace("_", "-")
            values = [_number(v) for v in raw.split(",") if v]
            results[name] = run_sweep(STUDIES[name], rest, args.seeds, Path(args.out), dial,
                                      values, cache)  # fmt: skip
        else:
            results[name] = run_study(STUDIES[name], rest, args.seeds, Path(args.out), cache)
    return results


if __name__ == "__main__":
    main()
