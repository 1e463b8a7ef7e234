"""Declared studies (examples/studies.py) and the study runner (examples/experiments.py)."""

import json
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))
import experiments  # noqa: E402
import harness  # noqa: E402
import studies  # noqa: E402


def test_paired_difference_and_its_interval():
    d = experiments.paired_difference([1.0, 2.0, 3.0], [2.0, 4.0, 6.0])  # diffs 1, 2, 3: sd 1
    assert d["diff"] == 2.0 and d["half"] == pytest.approx(4.303 / 3**0.5)  # 2.48: not shown
    assert d["shown"] == 0.0
    d = experiments.paired_difference([1.0, 2.0, 3.0], [3.0, 4.1, 4.9])  # diffs 2, 2.1, 1.9: sd 0.1
    assert d["half"] == pytest.approx(4.303 * 0.1 / 3**0.5) and d["shown"] == 1.0
    assert experiments.paired_difference([1.0], [2.0])["shown"] == 0.0
    with pytest.raises(ValueError, match="a, b: expected paired values"):
        experiments.paired_difference([1.0], [1.0, 2.0])


@pytest.mark.parametrize("study", list(studies.STUDIES.values()), ids=list(studies.STUDIES))
def test_every_declared_variant_parses_with_its_assembly(study):
    parser = harness.make_parser(study.assembly)
    for label, flags in study.variants.items():
        parser.parse_args([*study.base, *flags])  # exits (SystemExit) on a flag that rotted
        assert study.reference is None or study.reference in study.variants, label
    for label in study.paper:
        assert label in study.variants, f"{study.name}: paper numbers for no row {label!r}"


class _Model(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.lin = nn.Linear(width, 1)


def test_run_study_tabulates_means_paired_differences_and_shares_runs(tmp_path, monkeypatch):
    calls = []

    def fake_run(assembly, argv):  # R@20 = 0.10 + seed / 100, +0.05 with --better
        calls.append(argv)
        seed = int(argv[argv.index("--seed") + 1])
        r = 0.10 + seed / 100 + (0.05 if "--better" in argv else 0.0) + 0.001 * seed**2
        return {"results_tensors": {"predcls": {"with/R@20": torch.tensor(r)}},
                "model": _Model(3 if "--better" in argv else 1)}  # fmt: skip

    monkeypatch.setattr(experiments, "run", fake_run)
    study = experiments.Study(
        "s", harness.Assembly("toy", "", lambda a, d: None), "toy study",
        {"base": [], "better": ["--better"], "same as base": []},
        {"R@20": "with/R@20", "R@50": "with/R@50"}, reference="base", base=("--tasks", "predcls"),
        paper={"better": {"R@20": 42.0}}, phenomenon="a dial",
    )  # fmt: skip
    out = experiments.run_study(study, ["--quick", "--seeds", "7", "--seed", "9", "--out", "x"],
                                [0, 1, 2], tmp_path)  # fmt: skip
    assert len(calls) == 6  # "same as base" shares the base runs
    assert all(c[:3] == ["--quick", "--tasks", "predcls"] and "9" not in c for c in calls)
    row = out["report"]["predcls"]["better"]["R@20"]
    assert row["seeds"] == pytest.approx([15.0, 16.1, 17.4])
    assert row["diff"] == pytest.approx(5.0, abs=1e-5) and row["half"] < 1e-5  # float32 results
    assert "R@50" not in out["report"]["predcls"]["base"]  # a key the runs lack is left out
    assert "+5.0±0.0*" in out["text"] and "42.0" in out["text"] and "phenomenon: a dial" in out[
        "text"]  # fmt: skip
    assert json.loads((tmp_path / "s.json").read_text())["seeds"] == [0, 1, 2]
    with pytest.raises(ValueError, match="reference: 'nope'"):
        experiments.Study("t", study.assembly, "", {"a": []}, {}, reference="nope")


def test_the_studies_command_lists_and_refuses_unknown_names(capsys):
    assert studies.main(["--list"]) == {}
    assert "tr2-table4" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        studies.main(["no-such-study"])


def test_a_quick_study_end_to_end(tmp_path):
    out = studies.main(["tr2-table3", "--quick", "--random-text", "--seeds", "0", "1",
                        "--epochs", "1", "--threads", "2", "--out", str(tmp_path)])  # fmt: skip
    result = out["tr2-table3"]
    rows = result["report"]["predcls"]
    assert list(rows) == ["direct (Eq. 4)", "difference (Eq. 2)"]
    assert len(rows["difference (Eq. 2)"]["R@20"]["seeds"]) == 2
    assert "diff" in rows["difference (Eq. 2)"]["R@20"]
    assert "70.9" in result["text"] and "relation changes:" in result["text"]
    assert (tmp_path / "guidance_direct_seed1" / "results.json").is_file()
    assert (tmp_path / "tr2-table3.json").is_file()


def test_verdicts_by_hand():
    # diffs 1, 2, 3: mean 2, sd 1, t(0.975, 2) = 4.303: half 2.48 -> the interval holds 0
    d = experiments.paired_difference([0.0, 0.0, 0.0], [1.0, 2.0, 3.0])
    assert experiments.verdict(d["diff"], d["half"], +1) == "not shown"
    # diffs 2, 2.1, 1.9: half 0.248 -> excludes 0 above
    d = experiments.paired_difference([1.0, 2.0, 3.0], [3.0, 4.1, 4.9])
    assert experiments.verdict(d["diff"], d["half"], +1) == "holds"
    assert experiments.verdict(d["diff"], d["half"], -1) == "reversed"
    assert experiments.verdict(-2.0, 0.5, +1) == "reversed"
    assert experiments.verdict(-2.0, 0.5, -1) == "holds"
    assert experiments.verdict(5.0, float("nan"), +1) == "not shown"  # one seed: no interval
    assert experiments.verdict(0.5, 0.5, +1) == "not shown"  # 0 on the interval's edge
    with pytest.raises(ValueError, match="direction"):
        experiments.verdict(1.0, 0.1, 0)


def _toy(ladder: bool, claims=None):
    return experiments.Study(
        "s", harness.Assembly("toy", "", lambda a, d: None), "toy study",
        {"base": [], "better": ["--better"], "worse": ["--worse"]},
        {"R@20": "with/R@20"}, reference="base", ladder=ladder, claims=claims or {},
    )  # fmt: skip


def test_steps_verdicts_resume_and_reports(tmp_path, monkeypatch):
    calls = []

    def fake_run(assembly, argv):  # --better: +5 points, --worse: -3 points, seed noise 0.1
        calls.append(argv)
        seed = int(argv[argv.index("--seed") + 1])
        r = 0.10 + 0.001 * seed + 0.05 * ("--better" in argv) - 0.03 * ("--worse" in argv)
        per_class = torch.tensor([r, r / 2])  # a vector result, as the evaluators' per-predicate
        return {"results_tensors": {"predcls": {"with/R@20": torch.tensor(r, dtype=torch.float64),
                                                "with/R@20/per_class": per_class}},
                "model": _Model(1)}  # fmt: skip

    monkeypatch.setattr(experiments, "run", fake_run)
    assert experiments.steps_of(_toy(True)) == [("base", "better"), ("better", "worse")]
    assert experiments.steps_of(_toy(False)) == [("base", "better"), ("base", "worse")]
    out = experiments.run_study(_toy(False, {"worse": -1}), [], [0, 1, 2], tmp_path,
                                json_name="experiment.json")  # fmt: skip
    steps = {s["step"]: s for s in out["report"]["steps"]}
    assert steps["base -> better"]["verdict"] == "holds"
    assert steps["base -> better"]["mean_diff"] == pytest.approx(5.0)
    assert steps["base -> worse"]["verdict"] == "holds"  # the paper claims a decrease
    lo, hi = steps["base -> worse"]["ci95"]
    assert lo <= -3.0 <= hi
    saved = json.loads((tmp_path / "experiment.json").read_text())
    assert {"step", "metric", "mean_diff", "ci95", "verdict"} <= set(saved["steps"][0])
    assert (tmp_path / "experiment.md").is_file()
    assert len(calls) == 9
    # resumed: a second call with the same flags reads every run.json and runs nothing
    again = experiments.run_study(_toy(True), [], [0, 1, 2], tmp_path)
    assert len(calls) == 9
    ladder = {s["step"]: s["verdict"] for s in again["report"]["steps"]}
    assert ladder == {"base -> better": "holds", "better -> worse": "reversed"}
    assert "params (M)" in again["text"] and "reversed" in again["text"]


def test_ablation_flag_runs_the_papers_table(tmp_path):
    uasan = pytest.importorskip("uasan")
    out = uasan.main(["--ablation", "--quick", "--seeds", "2", "--epochs", "1", "--threads", "1",
                      "--out", str(tmp_path)])  # fmt: skip
    report = json.loads((tmp_path / "experiment.json").read_text())
    assert report["study"] == studies.ABLATIONS["uasan"] and report["seeds"] == [0, 1]
    assert len(report["steps"]) == 4 * len(studies.STUDIES["uasan-table4"].metrics) * 3  # tasks
    assert all(s["verdict"] in ("holds", "reversed", "not shown") for s in report["steps"])
    assert out["summaries"] and (tmp_path / "experiment.png").is_file()
    assert set(studies.ABLATIONS) == {"mosa", "rsnet", "tr2", "arn", "uasan"}
    assert all(name in studies.STUDIES for name in studies.ABLATIONS.values())


def test_sweep_reports_each_steps_effect_against_the_dial(tmp_path, monkeypatch):
    def fake_run(assembly, argv):  # --better gains 10 points times the dial's value
        seed = int(argv[argv.index("--seed") + 1])
        items = argv[argv.index("--synthetic") + 1 :]
        dial = float(next(i for i in items if i.startswith("text_coupling=")).split("=")[1])
        assert "feature_noise=2.0" in items  # the command line's own changes are kept
        r = 0.2 + 0.001 * seed**2 + 0.1 * dial * ("--better" in argv)
        return {"results_tensors": {"predcls": {"with/R@20": torch.tensor(r, dtype=torch.float64)}},
                "model": _Model(1)}  # fmt: skip

    monkeypatch.setattr(experiments, "run", fake_run)
    study = experiments.Study("s", harness.Assembly("toy", "", lambda a, d: None), "toy",
                              {"base": [], "better": ["--better"]}, {"R@20": "with/R@20"},
                              reference="base")  # fmt: skip
    argv = ["--synthetic", "feature_noise=2.0", "--quick"]
    assert experiments.with_synthetic(argv, "x=1") == [
        "--synthetic", "feature_noise=2.0", "x=1", "--quick"]  # fmt: skip
    assert experiments.with_synthetic(["--quick"], "x=1") == ["--quick", "--synthetic", "x=1"]
    report = experiments.run_sweep(study, argv, [0, 1, 2], tmp_path, "text_coupling",
                                   [0.0, 0.5, 1.0])  # fmt: skip
    (step,) = report["steps"]
    assert step["mean_diff"] == pytest.approx([0.0, 5.0, 10.0], abs=1e-6)
    assert step["verdict"] == ["not shown", "holds", "holds"]
    saved = json.loads((tmp_path / "sweep_s.json").read_text())
    assert saved["values"] == [0.0, 0.5, 1.0] and saved["dial"] == "text_coupling"
    assert (tmp_path / "text_coupling=0.5" / "s.json").is_file()
    with pytest.raises(ValueError, match="values"):
        experiments.run_sweep(study, argv, [0], tmp_path, "text_coupling", [])


def test_sweep_over_an_assembly_flag(tmp_path, monkeypatch):
    def fake_run(assembly, argv):  # --better gains 10 points with --text word, none otherwise
        seed = int(argv[argv.index("--seed") + 1])
        assert "--synthetic" not in argv
        text = argv[argv.index("--text") + 1]
        r = 0.2 + 0.001 * seed**2 + 0.1 * ("--better" in argv and text == "word")
        return {"results_tensors": {"predcls": {"with/R@20": torch.tensor(r, dtype=torch.float64)}},
                "model": _Model(1)}  # fmt: skip

    monkeypatch.setattr(experiments, "run", fake_run)
    study = experiments.Study("s", harness.Assembly("toy", "", lambda a, d: None), "toy",
                              {"base": [], "better": ["--better"]}, {"R@20": "with/R@20"},
                              reference="base", headline="R@20")  # fmt: skip
    report = experiments.run_sweep(study, ["--quick"], [0, 1], tmp_path, "--text",
                                   ["clip", "word"])  # fmt: skip
    (step,) = report["steps"]
    assert step["mean_diff"] == pytest.approx([0.0, 10.0], abs=1e-6)
    assert (tmp_path / "text=word" / "s.json").is_file()
    with pytest.raises(ValueError, match="headline"):
        experiments.Study("s", study.assembly, "toy", study.variants, study.metrics,
                          headline="P@10")  # fmt: skip
    # the command line: a benchmark field stays a field, any other name is the flag
    assert studies._DIALS >= {"bystanders", "text_coupling", "feature_noise"}
    assert "text" not in studies._DIALS
