"""Experiment tooling of the reference assemblies: declared studies, paired seeds, verdicts.

A [`Study`][] is data: an assembly, its rows (flags), the metrics, the reference row, the
paper's numbers, and the steps the paper claims (each row against the reference, or a ladder of
consecutive rows; each step's claimed direction). [`run_study`][] runs every row once a seed
(the same data and budget; model seeds paired across rows) through the harness's
[`run`][harness.run], resumably (a finished run's ``run.json`` is read, not re-run), and
reports each row's mean and each step's mean paired difference with its 95% t-interval over the
seeds (Student's t, ``n - 1`` degrees of freedom) and a verdict ([`verdict`][]): **holds** (the
interval excludes 0 in the paper's direction), **reversed** (excludes 0 the other way) or
**not shown** (includes 0, or one seed). Markdown and JSON reports and a chart (bars with
intervals) go to the output folder. ``examples/studies.py`` declares the papers' studies;
``examples/<paper>.py --ablation --seeds N`` runs its paper's table.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import runtime
from harness import Assembly, run
from torch import Tensor, nn

__all__ = [
    "Study",
    "paired_difference",
    "parameter_count",
    "results_table",
    "run_study",
    "run_sweep",
    "steps_of",
    "verdict",
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


def verdict(diff: float, half: float, direction: int = 1) -> str:
    """``"holds"`` when the interval ``diff +- half`` excludes 0 on the side of ``direction``
    (+1: the paper claims an increase, -1 a decrease), ``"reversed"`` when it excludes 0 on the
    other side, ``"not shown"`` when it includes 0 or is undefined (one seed: ``half`` nan)."""
    if direction not in (1, -1):
        raise ValueError(f"direction: expected +1 or -1, got {direction!r}")
    if not half == half or abs(diff) <= half:  # nan half (one seed), or 0 inside the interval
        return "not shown"
    return "holds" if diff * direction > 0 else "reversed"


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
        ladder: the steps are consecutive rows (an ablation ladder: each row adds one part)
            instead of every row against ``reference``.
        claims: row label -> the direction (+1 / -1) the paper claims for the step into that
            row (default +1: the step improves every metric).
        report: ``(runs, args) -> (text, report)`` extra lines of the study (throughput, data
            statistics), from the first seed's runs ``{label: summary}``.
        headline: the column a sweep's chart shows (default the first of ``metrics``).
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
    ladder: bool = False
    claims: Mapping[str, int] = field(default_factory=dict)
    headline: str = ""

    def __post_init__(self) -> None:
        if self.headline and self.headline not in self.metrics:
            raise ValueError(f"headline: {self.headline!r} is not one of {list(self.metrics)}")
        if self.reference is not None and self.reference not in self.variants:
            raise ValueError(f"reference: {self.reference!r} is not one of {list(self.variants)}")
        for label, direction in self.claims.items():
            if label not in self.variants or direction not in (1, -1):
                raise ValueError(f"claims: {label!r}: {direction!r} (rows: {list(self.variants)})")


def steps_of(study: Study) -> list[tuple[str, str]]:
    """The ``(from, to)`` rows of the study's steps (see [`Study`][])."""
    rows = list(study.variants)
    if study.ladder:
        return list(itertools.pairwise(rows))
    ref = study.reference
    return [] if ref is None else [(ref, r) for r in rows if r != ref]


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


def _fresh_or_saved(study: Study, key: tuple[str, ...], folder: Path) -> dict[str, Any]:
    """The run of ``key``: read from ``folder/run.json`` when a finished run with these flags is
    there (resuming), else run now and save it."""
    saved = folder / "run.json"
    if saved.is_file():
        record = json.loads(saved.read_text())
        if record.get("argv") == list(key):
            return {"results_tensors": record["results"], "params": record["params"],
                    "resumed": True}  # fmt: skip
    summary = run(study.assembly, [*key, "--out", str(folder)])
    results = {t: {k: v.tolist() if isinstance(v, Tensor) else v for k, v in r.items()}
               for t, r in summary["results_tensors"].items()}  # vectors too  # fmt: skip
    summary["params"] = parameter_count(summary["model"])
    folder.mkdir(parents=True, exist_ok=True)
    saved.write_text(json.dumps({"argv": list(key), "results": results,
                                 "params": summary["params"]}))  # fmt: skip
    return summary


def run_study(
    study: Study,
    argv: Sequence[str],
    seeds: Sequence[int],
    out: Path,
    cache: dict[tuple[str, ...], dict[str, Any]] | None = None,
    *,
    json_name: str | None = None,
) -> dict[str, Any]:
    """Run ``study`` on ``seeds`` and report it (see the module docstring).

    ``argv`` holds the assembly's flags shared by every run (without ``--out``, ``--seed``,
    ``--seeds``); each run's outputs go to ``out/<flags>_seed<k>``, with its ``run.json`` (a
    later call with the same flags reads it instead of running again). ``cache`` (flags and
    seed -> summary) lets several studies of one command share their runs. Returns the
    ``report`` (per-seed values and the ``steps`` with verdicts), the ``summaries``
    (``{label: [summary a seed]}``) and the ``text``; the report goes to
    ``out/<json_name>`` (default ``<study>.json``), the text to ``.md`` beside it and the chart
    of the steps to ``.png``.
    """
    if not seeds:
        raise ValueError("seeds: expected at least one seed, got none")
    cache = {} if cache is None else cache
    base = _set_unless_given(without_flags(without_seeds(argv), valued=("--out", "--seed")),
                             study.base)  # fmt: skip
    summaries: dict[str, list[dict[str, Any]]] = {}
    bar = runtime.progress(total=len(study.variants) * len(seeds), desc=study.name)
    for label, flags in study.variants.items():
        summaries[label] = []
        for seed in seeds:
            key = (*base, *flags, "--seed", str(seed))
            if key not in cache:
                folder = "_".join(f.strip("-") for f in flags)[:80] or "default"
                cache[key] = _fresh_or_saved(study, key, out / f"{folder}_seed{seed}")
            summaries[label].append(cache[key])
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    first = next(iter(summaries.values()))[0]
    report: dict[str, Any] = {"study": study.name, "title": study.title, "seeds": list(seeds),
                              "phenomenon": study.phenomenon, "steps": []}  # fmt: skip
    lines = []
    for task in first["results_tensors"]:
        rows, task_report = _study_rows(study, summaries, task)
        report[task] = task_report
        report["steps"] += _steps(study, summaries, task)
        paper = dict.fromkeys(c for r in rows.values() for c in r if c.startswith("paper "))
        cols = [*(c for m in study.metrics for c in (m, f"Δ {m}")), *paper, "params (M)"]
        lines.append(results_table(
            f"{study.title}, {task} (%), seeds {list(seeds)}: means"
            + (f"; Δ vs {study.reference!r} with 95% t-intervals, * outside the seed noise"
               if study.reference is not None and len(seeds) > 1 else ""),
            rows, cols))  # fmt: skip
    if report["steps"]:
        lines.append(_steps_table(report["steps"], len(seeds)))
    if study.report is not None:
        runs = {k: v[0] for k, v in summaries.items()}
        if all("model" in r for r in runs.values()):
            extra_text, extra = study.report(runs, base)
            report["extra"] = extra
            lines.append(extra_text)
        else:
            lines.append("(the study's extra report needs fresh runs: some were read from disk)")
    if study.phenomenon:
        lines.append(f"phenomenon: {study.phenomenon}")
    text = "\n\n".join(lines)
    print("\n" + text)
    out.mkdir(parents=True, exist_ok=True)
    path = out / (json_name or f"{study.name}.json")
    path.write_text(json.dumps(report, indent=1))
    path.with_suffix(".md").write_text(f"# {study.title}\n\n```\n{text}\n```\n")
    if report["steps"]:
        _chart(report["steps"], study.title, path.with_suffix(".png"))
    return {"report": report, "summaries": summaries, "text": text}


def _steps(
    study: Study, summaries: Mapping[str, Sequence[dict[str, Any]]], task: str
) -> list[dict[str, Any]]:
    """Every step and metric: the mean paired difference (points), its 95% t-interval and the
    verdict against the paper's claimed direction."""
    out = []
    for before, after in steps_of(study):
        for column, key in study.metrics.items():
            a = [s["results_tensors"].get(task, {}).get(key) for s in summaries[before]]
            b = [s["results_tensors"].get(task, {}).get(key) for s in summaries[after]]
            if None in a or None in b:
                continue
            d = paired_difference([100 * float(x) for x in a], [100 * float(x) for x in b])
            direction = study.claims.get(after, 1)
            lo, hi = d["diff"] - d["half"], d["diff"] + d["half"]
            out.append({"step": f"{before} -> {after}", "task": task, "metric": column,
                        "mean_diff": d["diff"], "ci95": [lo, hi], "claimed": direction,
                        "verdict": verdict(d["diff"], d["half"], direction)})  # fmt: skip
    return out


def _steps_table(steps: Sequence[Mapping[str, Any]], n: int) -> str:
    lines = [f"steps ({n} paired seeds; Δ in points, 95% t-interval; verdict against the "
             "paper's claimed direction)"]  # fmt: skip
    for s in steps:
        lo, hi = s["ci95"]
        interval = "n/a" if lo != lo else f"[{lo:+.1f}, {hi:+.1f}]"
        lines.append(f"  {s['task']:6s} {s['step']:60.60s} {s['metric']:>12s} "
                     f"{s['mean_diff']:+6.1f} {interval:>16s}  {s['verdict']}")  # fmt: skip
    return "\n".join(lines)


def _chart(steps: Sequence[Mapping[str, Any]], title: str, path: Path) -> None:
    """Bars of the steps' mean differences with their intervals, coloured by verdict."""
    plt = runtime.pyplot()
    if plt is None:  # the examples extra is not installed: no chart
        return
    colours = {"holds": "#2a9d8f", "reversed": "#e76f51", "not shown": "#9e9e9e"}
    labels = [f"{s['task']} | {s['step'].split(' -> ')[-1][:28]} | {s['metric']}" for s in steps]
    diffs = [s["mean_diff"] for s in steps]
    errs = [0.0 if s["ci95"][0] != s["ci95"][0] else s["mean_diff"] - s["ci95"][0] for s in steps]
    fig, ax = plt.subplots(figsize=(8, 0.35 * len(steps) + 1.5))
    ax.barh(range(len(steps)), diffs, xerr=errs, color=[colours[s["verdict"]] for s in steps],
            capsize=3)  # fmt: skip
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_yticks(range(len(steps)), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("paired difference (points), 95% interval")
    ax.set_title(title, fontsize=9)
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in colours.values()]
    ax.legend(handles, list(colours), fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


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
        first = summaries[label][0]
        params = first["params"] if "params" in first else parameter_count(first["model"])
        row["params (M)"] = f"{params / 1e6:.3f}"
        rows[label], report[label] = row, rep
    return rows, report


def with_synthetic(argv: Sequence[str], item: str) -> list[str]:
    """``argv`` with ``item`` (``FIELD=VALUE``) added to its ``--synthetic`` changes (the flag
    takes several; a second ``--synthetic`` would replace the first)."""
    out = list(argv)
    if "--synthetic" not in out:
        return [*out, "--synthetic", item]
    i = out.index("--synthetic") + 1
    while i < len(out) and not out[i].startswith("--"):
        i += 1
    return [*out[:i], item, *out[i:]]


def run_sweep(
    study: Study,
    argv: Sequence[str],
    seeds: Sequence[int],
    out: Path,
    dial: str,
    values: Sequence[float | str],
    cache: dict[tuple[str, ...], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """``study`` at every value of a dial: a benchmark field (``--synthetic dial=value``) or,
    when ``dial`` starts with ``--``, an assembly flag (``--text``: its value follows it). Each
    step's paired difference and verdict against the dial go to ``out/sweep_<study>.json`` and
    a chart (``study.headline`` of each task). Each value's runs and report go to
    ``out/<dial>=<value>`` (resumable, as [`run_study`][])."""
    if not values:
        raise ValueError("values: expected at least one value of the dial, got none")
    cache = {} if cache is None else cache
    rows: dict[tuple[str, str, str], dict[str, list[Any]]] = {}
    flag = dial.startswith("--")
    for value in values:
        run_argv = [*argv, dial, str(value)] if flag else with_synthetic(argv, f"{dial}={value}")
        result = run_study(study, run_argv, seeds, out / f"{dial.lstrip('-')}={value}",
                           cache)  # fmt: skip
        for s in result["report"]["steps"]:
            row = rows.setdefault((s["task"], s["step"], s["metric"]),
                                  {"mean_diff": [], "ci95": [], "verdict": []})  # fmt: skip
            for key in row:
                row[key].append(s[key])
    report = {"study": study.name, "dial": dial, "values": list(values), "seeds": list(seeds),
              "steps": [{"task": t, "step": st, "metric": m, **v}
                        for (t, st, m), v in rows.items()]}  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    (out / f"sweep_{study.name}.json").write_text(json.dumps(report, indent=1))
    _sweep_chart(report, study, out / f"sweep_{study.name}.png")
    return report


def _sweep_chart(report: Mapping[str, Any], study: Study, path: Path) -> None:
    plt = runtime.pyplot()
    if plt is None:  # the examples extra is not installed: no chart
        return
    first = study.headline or next(iter(study.metrics))
    steps = [s for s in report["steps"] if s["metric"] == first]
    numeric = all(isinstance(v, int | float) for v in report["values"])
    xs = report["values"] if numeric else [str(v) for v in report["values"]]
    order = sorted(range(len(xs)), key=lambda i: xs[i]) if numeric else list(range(len(xs)))
    tasks = sorted({s["task"] for s in steps})
    fig, axes = plt.subplots(1, max(len(tasks), 1), figsize=(4.5 * max(len(tasks), 1), 3.5),
                             squeeze=False)  # fmt: skip
    for ax, task in zip(axes[0], tasks, strict=False):
        for s in (s for s in steps if s["task"] == task):
            err = [0.0 if lo != lo else d - lo
                   for d, (lo, _) in zip(s["mean_diff"], s["ci95"], strict=True)]  # fmt: skip
            ax.errorbar([xs[i] for i in order], [s["mean_diff"][i] for i in order],
                        yerr=[err[i] for i in order], capsize=3, marker="o",
                        label=s["step"].split(" -> ")[-1][:30])  # fmt: skip
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_xlabel(report["dial"])
        ax.set_ylabel(f"Δ {first} (points), 95% interval")
        ax.set_title(task, fontsize=9)
        ax.legend(fontsize=7)
    fig.suptitle(study.title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
