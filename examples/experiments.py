"""Experiment tooling of the reference assemblies: declared studies, paired seeds, tables.

A [`Study`][] is data: an assembly, its variants (flags), the metrics, the reference row, the
paper's numbers. [`run_study`][] runs every variant once a seed (the same data and budget; seeds
paired across variants) through the harness's [`run`][harness.run] and tabulates each row's mean
and, against the reference row, the mean paired difference with its 95% t-interval: a difference
whose interval holds 0 is "not shown". ``examples/studies.py`` declares the papers' studies.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import Assembly, run
from torch import nn

__all__ = [
    "Study",
    "paired_difference",
    "parameter_count",
    "results_table",
    "run_study",
    "without_flags",
    "without_seeds",
]


def without_flags(
    argv: Sequence[str], *switches: str, valued: Sequence[str] = ("--out",)
) -> list[str]:
    """``argv`` without the ``switches`` and without the ``valued`` flags and their values (the
    flags a comparison sets itself for each variant)."""
    out, skip = [], False
    for item in argv:
        if skip:
            skip = False
        elif item in valued:
            skip = True
        elif item not in switches:
            out.append(item)
    return out


_T95 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228)  # t_{0.975, df}


def paired_difference(a: Sequence[float], b: Sequence[float]) -> dict[str, float]:
    """Seeds paired by position: the means of ``a`` and ``b`` and the mean of ``b - a`` with
    the half-width of its 95% t-interval (``nan`` with one pair); ``shown`` is 1.0 when the
    interval excludes 0 (the difference is outside the seed noise), else 0.0."""
    if len(a) != len(b) or not a:
        raise ValueError(f"a, b: expected paired values, got {len(a)} and {len(b)}")
    n = len(a)
    diffs = [y - x for x, y in zip(a, b, strict=True)]
    mean = sum(diffs) / n
    if n > 1:
        sd = (sum((d - mean) ** 2 for d in diffs) / (n - 1)) ** 0.5
        half = _T95[min(n - 1, len(_T95)) - 1] * sd / n**0.5
    else:
        half = float("nan")
    return {"a": sum(a) / n, "b": sum(b) / n, "diff": mean, "half": half,
            "shown": float(n > 1 and abs(mean) > half)}  # fmt: skip


def without_seeds(argv: Sequence[str]) -> list[str]:
    """``argv`` without ``--seeds`` and the numbers after it."""
    out, skipping = [], False
    for item in argv:
        if item == "--seeds":
            skipping = True
        elif skipping and item.isdigit():
            continue
        else:
            skipping = False
            out.append(item)
    return out


def parameter_count(model: nn.Module) -> int:
    """The number of parameters (buffers, such as frozen text tables, not counted)."""
    return sum(p.numel() for p in model.parameters())


def results_table(title: str, rows: Mapping[str, Mapping[str, Any]], columns: Sequence[str]) -> str:
    """A plain-text table: one line a row, the ``columns`` some row has, "-" where a row lacks
    one."""
    cols = [c for c in columns if any(c in r for r in rows.values())]
    width = max(len(n) for n in rows) + 2
    cw = [max(12, len(c) + 2) for c in cols]  # a long column name keeps a gap before it
    lines = [title, " " * width + "".join(f"{c:>{w}}" for c, w in zip(cols, cw, strict=True))]
    for name, r in rows.items():
        cells = "".join(f"{r[c]:>{w}}" if c in r else f"{'-':>{w}}"
                        for c, w in zip(cols, cw, strict=True))  # fmt: skip
        lines.append(f"{name:<{width}}" + cells)
    return "\n".join(lines)


@dataclass(frozen=True)
class Study:
    """A declared comparison: one table of variants of one assembly.

    Attributes:
        name: the study's name on the command line (``tr2-table4``).
        assembly: the [`Assembly`][harness.Assembly] that runs the variants.
        title: the table's title.
        variants: row label -> the flags that make it, in table order. Rows with the same flags
            run once a seed.
        metrics: column -> results key (values in [0, 1]; shown in %). Keys a run lacks are
            left out.
        reference: the row the others are compared with, paired by seed (``None``: no
            differences).
        base: flags added unless the command line sets them (e.g. ``--tasks predcls``).
        paper: row label -> ``{column: the paper's number}``.
        phenomenon: the benchmark dial the effect depends on (what a reader turns to see it
            vanish).
        report: ``(runs, args) -> (text, report)`` extra lines of the study (throughput, data
            statistics), from the first seed's runs ``{label: summary}``.
    """

    name: str
    assembly: Assembly
    title: str
    variants: Mapping[str, Sequence[str]]
    metrics: Mapping[str, str]
    reference: str | None = None
    base: Sequence[str] = ()
    paper: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    phenomenon: str = ""
    report: Callable[[Mapping[str, dict[str, Any]], Sequence[str]], tuple[str, Any]] | None = None

    def __post_init__(self) -> None:
        if self.reference is not None and self.reference not in self.variants:
            raise ValueError(f"reference: {self.reference!r} is not one of {list(self.variants)}")


def _set_unless_given(argv: Sequence[str], flags: Sequence[str]) -> list[str]:
    """``argv`` plus each of ``flags`` (``--name values...``) the command line does not set."""
    out, i = list(argv), 0
    while i < len(flags):
        j = i + 1
        while j < len(flags) and not flags[j].startswith("--"):
            j += 1
        if flags[i] not in argv:
            out += flags[i:j]
        i = j
    return out


def run_study(
    study: Study,
    argv: Sequence[str],
    seeds: Sequence[int],
    out: Path,
    cache: dict[tuple[str, ...], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Run ``study`` on ``seeds`` and tabulate it (see the module docstring).

    ``argv`` holds the assembly's flags shared by every run (without ``--out``, ``--seed``,
    ``--seeds``); each run's outputs go to ``out/<flags>_seed<k>``. ``cache`` (flags and seed
    -> summary) lets several studies of one command share their runs. Returns the ``report``
    (per-seed values too), the ``summaries`` (``{label: [summary a seed]}``) and the ``text``;
    the report goes to ``out/<study>.json``.
    """
    if not seeds:
        raise ValueError("seeds: expected at least one seed, got none")
    cache = {} if cache is None else cache
    base = _set_unless_given(without_flags(without_seeds(argv), valued=("--out", "--seed")),
                             study.base)  # fmt: skip
    summaries: dict[str, list[dict[str, Any]]] = {}
    for label, flags in study.variants.items():
        summaries[label] = []
        for seed in seeds:
            key = (*base, *flags, "--seed", str(seed))
            if key not in cache:
                folder = "_".join(f.strip("-") for f in flags)[:80] or "default"
                cache[key] = run(study.assembly,
                                 [*key, "--out", str(out / f"{folder}_seed{seed}")])  # fmt: skip
            summaries[label].append(cache[key])
    first = next(iter(summaries.values()))[0]
    report: dict[str, Any] = {"seeds": list(seeds), "phenomenon": study.phenomenon}
    lines = []
    for task in first["results_tensors"]:
        rows, task_report = _study_rows(study, summaries, task)
        report[task] = task_report
        paper = dict.fromkeys(c for r in rows.values() for c in r if c.startswith("paper "))
        cols = [*(c for m in study.metrics for c in (m, f"Δ {m}")), *paper, "params (M)"]
        lines.append(results_table(
            f"{study.title}, {task} (%), seeds {list(seeds)}: means"
            + (f"; Δ vs {study.reference!r} with 95% t-intervals, * outside the seed noise"
               if study.reference is not None and len(seeds) > 1 else ""),
            rows, cols))  # fmt: skip
    if study.report is not None:
        extra_text, extra = study.report({k: v[0] for k, v in summaries.items()}, base)
        report["extra"] = extra
        lines.append(extra_text)
    if study.phenomenon:
        lines.append(f"phenomenon: {study.phenomenon}")
    text = "\n\n".join(lines)
    print("\n" + text)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{study.name}.json").write_text(json.dumps(report, indent=1))
    return {"report": report, "summaries": summaries, "text": text}


def _study_rows(
    study: Study, summaries: Mapping[str, Sequence[dict[str, Any]]], task: str
) -> tuple[dict[str, dict[str, str]], dict[str, Any]]:
    """The table rows of one task: means, paired differences against the reference, the
    paper's numbers and the parameter count; and the per-seed report."""

    def values(label: str, key: str) -> list[float] | None:
        runs = [s["results_tensors"].get(task, {}) for s in summaries[label]]
        if any(key not in r for r in runs):
            return None
        return [100 * float(r[key]) for r in runs]

    rows: dict[str, dict[str, str]] = {}
    report: dict[str, Any] = {}
    for label in study.variants:
        row, rep = {}, {}
        for column, key in study.metrics.items():
            v = values(label, key)
            if v is None:
                continue
            rep[column] = {"seeds": v, "mean": sum(v) / len(v)}
            row[column] = f"{sum(v) / len(v):.1f}"
            ref = None if study.reference is None else values(study.reference, key)
            if ref is not None and label != study.reference and len(v) > 1:
                d = paired_difference(ref, v)
                rep[column] |= {"diff": d["diff"], "half": d["half"], "shown": bool(d["shown"])}
                row[f"Δ {column}"] = f"{d['diff']:+.1f}±{d['half']:.1f}" + "*" * bool(d["shown"])
        for column, value in study.paper.get(label, {}).items():
            row[f"paper {column}"] = f"{value}"
        row["params (M)"] = f"{parameter_count(summaries[label][0]['model']) / 1e6:.3f}"
        rows[label], report[label] = row, rep
    return rows, report
