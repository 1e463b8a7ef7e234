"""Experiment tooling of the reference assemblies: variants, paired seeds, tables.

Declared comparisons run an assembly once a variant (the same data, seed and budget unless the
variant's flags change them) through the harness's [`run`][harness.run] and tabulate the results:
[`run_variants`][] for a table of rows, [`run_paired`][] for two variants on paired seeds with
the mean difference and its 95% t-interval.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from harness import Assembly, run
from torch import Tensor, nn

__all__ = [
    "paired_difference",
    "parameter_count",
    "results_row",
    "results_table",
    "run_paired",
    "run_variants",
    "save_comparison",
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


def run_variants(
    assembly: Assembly, argv: Sequence[str], variants: Mapping[str, Sequence[str]], out: Path
) -> dict[str, dict[str, Any]]:
    """Run ``assembly`` once a variant, ``argv`` plus the variant's flags, each with its outputs
    in ``out/<variant>`` (the name up to " (", spaces as underscores): same data, seed and
    budget unless the variant's flags change them. Returns each run's summary."""
    summaries = {}
    for name, flags in variants.items():
        folder = name.split(" (")[0].replace(" ", "_").replace("/", "_")
        summaries[name] = run(assembly, [*argv, *flags, "--out", str(out / folder)])
    return summaries


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


def run_paired(
    assembly: Assembly,
    argv: Sequence[str],
    variants: Mapping[str, Sequence[str]],
    seeds: Sequence[int],
    out: Path,
    metrics: Mapping[str, str],
    title: str,
) -> dict[str, Any]:
    """Declared comparison of two variants on the same data and budget, paired by ``--seed``.

    Each variant runs once a seed (``argv`` without its own ``--out``, ``--seed`` and ``--seeds``,
    plus the variant's flags and ``--seed``; outputs in
    ``out/<variant>_seed<k>``). For every task and every ``metrics`` entry
    (``{column: results key}``, values in [0, 1]) the table gives both means and the mean
    difference (second minus first) with its 95% t-interval over the seeds
    (:func:`paired_difference`); ``*`` marks a difference outside the seed noise. Returns the
    ``report`` (per-seed values too), the ``summaries`` and the table ``text``; the report goes to
    ``out/comparison.json``.
    """
    if len(variants) != 2:
        raise ValueError(f"variants: expected two to compare, got {list(variants)}")
    (a, fa), (b, fb) = variants.items()
    runs = {f"{name}_seed{seed}": [*flags, "--seed", str(seed)]
            for seed in seeds for name, flags in ((a, fa), (b, fb))}  # fmt: skip
    base = without_flags(without_seeds(argv), valued=("--out", "--seed"))  # set here, per run
    summaries = run_variants(assembly, base, runs, out)
    rows: dict[str, dict[str, str]] = {}
    report: dict[str, Any] = {}
    for task in summaries[f"{a}_seed{seeds[0]}"]["results_tensors"]:
        for column, key in metrics.items():
            per = {name: [float(summaries[f"{name}_seed{s}"]["results_tensors"][task][key]) * 100
                          for s in seeds] for name in (a, b)}  # fmt: skip
            d = paired_difference(per[a], per[b])
            report[f"{task} {column}"] = {**per, **d}
            rows.setdefault(f"{a} [{task}]", {})[column] = f"{d['a']:.2f}"
            rows.setdefault(f"{b} [{task}]", {})[column] = f"{d['b']:.2f}"
            rows.setdefault(f"{b} - {a} [{task}]", {})[column] = (
                f"{d['diff']:+.2f}±{d['half']:.2f}" + ("*" if d["shown"] else "")
            )
    text = results_table(
        f"{title} (%), seeds {list(seeds)}: means; differences with 95% t-intervals, * outside "
        "the seed noise",
        rows,
        list(metrics),
    )
    save_comparison(out, report, text)
    return {"report": report, "summaries": summaries, "text": text}


def save_comparison(out: Path, report: Any, text: str) -> None:
    """Print a comparison's tables and write its report to ``out/comparison.json``."""
    print("\n" + text)
    out.mkdir(parents=True, exist_ok=True)
    (out / "comparison.json").write_text(json.dumps(report, indent=1))
    print(f"saved comparison.json in {out}")


def parameter_count(model: nn.Module) -> int:
    """The number of parameters (buffers, such as frozen text tables, not counted)."""
    return sum(p.numel() for p in model.parameters())


def results_row(
    results: Mapping[str, Tensor], metrics: Sequence[str], constraint: str = "with"
) -> dict[str, float]:
    """``{metric: percentage}`` of ``results["{constraint}/{metric}"]``, one decimal; metrics
    the results lack are left out."""
    return {m: round(100 * float(results[f"{constraint}/{m}"]), 1) for m in metrics
            if f"{constraint}/{m}" in results}  # fmt: skip


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
