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
