"""examples/harness.py: the shared harness of the reference assemblies, tested with a tiny model
that keeps the model contract (so these tests say nothing about MoSA and everything about the
loop, the data, the batches, the checkpoints and the outputs)."""

import json
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dsgg_layers import ActionSemanticMatcher, LearnableTokens, change_share
from dsgg_layers.data import SyntheticActionGenome, SyntheticConfig, VideoGraph

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))
import ag_task  # noqa: E402
import experiments  # noqa: E402
import harness  # noqa: E402
import runtime  # noqa: E402


class Tiny(nn.Module):
    """A linear predicate classifier over the pair features, with dropout: the contract only."""

    def __init__(
        self, feature_dim: int, *, returns_tensor: bool = False, crash_at_step: int = -1
    ) -> None:
        super().__init__()
        self.proj = nn.Linear(2 * feature_dim, 26)
        self.drop = nn.Dropout(0.3)
        self.returns_tensor = returns_tensor
        self.crash_at_step, self.steps = crash_at_step, 0

    def forward(self, g: VideoGraph, *, task: str = "predcls", rows=None):
        if self.training:
            if self.steps == self.crash_at_step:
                raise RuntimeError("the machine went away")
            self.steps += 1
        logits = self.proj(self.drop(torch.cat((g.subject_features, g.object_features), -1)))
        if self.training:
            loss = F.binary_cross_entropy_with_logits(
                logits.float()[g.mask], g.relations[g.mask].float()
            )
            return loss if self.returns_tensor else {"bce": loss, "zero": loss.detach() * 0}
        return {
            "mask": g.mask,
            "subject_boxes": g.subject_boxes,
            "object_boxes": g.object_boxes,
            "object_labels": g.object_labels,
            "predicate_scores": logits.float().sigmoid(),
        }


def _tiny(**kwargs) -> harness.Assembly:
    def build(args, data):
        return Tiny(data.train[0].object_features.shape[-1], **kwargs)

    return harness.Assembly("tiny", "a tiny assembly", build, chart_title="tiny")


def _run(tmp_path: Path, *flags: str, **kwargs) -> dict:
    argv = ["--quick", "--random-text", "--threads", "2", "--out", str(tmp_path), *flags]
    return harness.run(_tiny(**kwargs), argv)


def _args(*flags: str):
    return harness.make_parser(_tiny()).parse_args(["--quick", *flags])


# ------------------------------------------------------------------------------------ the loop


def test_a_tiny_model_keeping_the_contract_runs_end_to_end(tmp_path, capsys):
    summary = _run(tmp_path, "--epochs", "2")
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["assembly"] == "tiny"
    assert set(saved["results"]) == set(harness.TASKS)
    assert [sorted(h) for h in saved["history"]] == [
        ["bce", "epoch", "loss", "seconds", "zero"]
    ] * 2
    assert saved["history"][1]["bce"] < saved["history"][0]["bce"]  # it trains
    assert (tmp_path / "tiny.pt").is_file() and (tmp_path / "checkpoint.pt").is_file()
    assert (tmp_path / "per_predicate_recall.png").stat().st_size > 1000
    assert isinstance(summary["model"], Tiny)
    printed = capsys.readouterr().out
    assert "predcls" in printed and "semi" in printed and "seconds per epoch" in printed


def test_a_model_returning_a_tensor_in_training_is_told_the_contract(tmp_path):
    with pytest.raises(TypeError, match="dict of named losses"):
        _run(tmp_path, returns_tensor=True)


def test_constraints_ks_and_tasks_flags_reach_the_evaluator(tmp_path):
    flags = ("--tasks", "sgdet", "--constraints", "with", "topk", "--top-k-per-pair", "3")
    results = _run(tmp_path, "--epochs", "1", *flags, "--ks", "5")["results_tensors"]
    assert set(results) == {"sgdet"}
    assert {"with/R@5", "top3/R@5", "top3/mR@5"} <= set(results["sgdet"])
    assert not any(k.startswith(("no/", "semi/")) or k.endswith("@20") for k in results["sgdet"])


def test_change_strata_report_recall_by_how_often_relations_change(tmp_path, capsys):
    flags = ("--tasks", "predcls", "--constraints", "with", "--ks", "20")
    results = _run(tmp_path, "--epochs", "1", *flags, "--change-strata", "0.3", "0.5")
    r = results["results_tensors"]["predcls"]
    counts = [int(r[f"num_frames/stratum{i}"]) for i in range(3)]
    assert sum(counts) == int(r["num_frames"])
    # the overall recall is the frame-weighted mean of the strata's
    mean = sum(c * float(r[f"with/R@20/stratum{i}"]) for i, c in enumerate(counts)) / sum(counts)
    assert mean == pytest.approx(float(r["with/R@20"]))
    assert "by share of changing pair-frames" in capsys.readouterr().out
    # each video lands in the stratum of its own share
    data = ag_task.load_data(_args())
    video = data.test["predcls"][0]
    target = video.targets()
    share = float(change_share(target["relations"], target["mask"]))
    want = 0 if share < 0.3 else 1 if share < 0.5 else 2
    assert (ag_task.change_strata(target, [0.3, 0.5]) == want).all()
    with pytest.raises(ValueError, match=r"--change-strata: expected edges in \(0, 1\)"):
        _run(tmp_path, "--epochs", "1", *flags, "--change-strata", "1.5")


def test_resume_continues_exactly_where_the_run_stopped(tmp_path):
    """Two epochs in one go == a run that dies in its second epoch, then ``--resume`` from its
    checkpoint (optimizer, schedule and the dropout RNG included)."""
    whole = _run(tmp_path / "whole", "--epochs", "2")["model"].state_dict()
    data = ag_task.load_data(_args())
    steps = len(harness.make_loader(data.train, _args(), runtime.Distributed(), train=True))
    with pytest.raises(RuntimeError, match="went away"):
        _run(tmp_path / "part", "--epochs", "2", crash_at_step=steps + 1)
    ckpt = tmp_path / "part" / "checkpoint.pt"
    assert torch.load(ckpt, weights_only=True)["epoch"] == 0
    resumed = _run(tmp_path / "rest", "--epochs", "2", "--resume", str(ckpt))
    assert [h["epoch"] for h in resumed["history"]] == [0, 1]
    for name, value in resumed["model"].state_dict().items():
        torch.testing.assert_close(value, whole[name], rtol=0, atol=0, msg=name)
    with pytest.raises(ValueError, match="--epochs 1: .* planned for 2 epochs"):
        _run(tmp_path / "shorter", "--epochs", "1", "--resume", str(ckpt))
    other = _run(tmp_path / "other", "--epochs", "2", "--seed", "1")["model"].state_dict()
    assert not torch.equal(other["proj.weight"], whole["proj.weight"])


def test_seed_repeats_a_run_and_deterministic_turns_on_deterministic_algorithms(tmp_path):
    before = torch.are_deterministic_algorithms_enabled()
    try:
        a = _run(tmp_path / "a", "--epochs", "1", "--deterministic")
        assert torch.are_deterministic_algorithms_enabled()
    finally:
        torch.use_deterministic_algorithms(before)
    b = _run(tmp_path / "b", "--epochs", "1")
    for key, value in a["results_tensors"]["predcls"].items():
        torch.testing.assert_close(value, b["results_tensors"]["predcls"][key], msg=key)


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_amp_trains_with_finite_losses(tmp_path, amp):
    summary = _run(tmp_path, "--epochs", "1", "--amp", amp)
    assert all(torch.isfinite(torch.tensor(h["loss"])) for h in summary["history"])
    for value in summary["results_tensors"]["predcls"].values():
        assert torch.isfinite(value).all()


# ------------------------------------------------------------------------------------- the data


def test_the_test_split_is_built_once_and_shared_by_predcls_and_sgcls():
    data = ag_task.load_data(_args())
    assert data.test["predcls"] is data.test["sgcls"]
    for truth, detected in zip(data.test["predcls"], data.test["sgdet"], strict=True):
        assert truth is detected.ground_truth
    cfg = SyntheticConfig(num_videos=40, num_test_videos=16)
    alone = list(SyntheticActionGenome(cfg, split="test", mode="predcls"))
    for got, want in zip(data.test["predcls"], alone, strict=True):
        for name in ("object_features", "union_features", "subject_boxes", "relations", "mask"):
            assert torch.equal(getattr(got, name), getattr(want, name)), name
    assert torch.equal(data.frequencies, ag_task.label_frequencies(data.train))


@pytest.mark.parametrize("count", [33, 65, 7])
def test_every_rank_takes_the_same_number_of_training_steps(count):
    data = ag_task.load_data(_args("--train-videos", str(count)))
    args = _args("--train-videos", str(count))
    shares = []
    for rank in range(2):
        env = runtime.Distributed(rank=rank, world=2)
        loader = harness.make_loader(data.train, args, env, train=True)
        loader.batch_sampler.set_epoch(3)
        shares.append([i for b in loader.batch_sampler for i in b])
        assert len(loader) == len(list(loader.batch_sampler))
    steps = [
        len(harness.make_loader(data.train, args, runtime.Distributed(r, 2), train=True))
        for r in range(2)
    ]
    assert steps[0] == steps[1] >= (1 if count > 16 else 0)
    assert not set(shares[0]) & set(shares[1])  # no video on both ranks


def test_evaluation_shares_cover_every_test_video_once():
    data = ag_task.load_data(_args())
    args = _args()
    seen = []
    for rank in range(3):
        env = runtime.Distributed(rank, 3)
        loader = harness.make_loader(data.test["sgdet"], args, env, train=False)
        seen += [i for b in loader.batch_sampler for i in b]
    assert sorted(seen) == list(range(len(data.test["sgdet"])))


def test_the_loader_gives_the_valid_rows_of_each_batch():
    data = ag_task.load_data(_args())
    loader = harness.make_loader(data.train, _args(), runtime.Distributed(), train=True)
    for batch, rows in loader:
        assert isinstance(batch, VideoGraph) and rows.matches(batch.mask)
        assert len(rows) == int(batch.mask.sum())


# -------------------------------------------------------------------------------- optimisation


class _Decays(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.tokens = LearnableTokens(2, 8)
        self.asm = ActionSemanticMatcher(8, torch.randn(3, 4))
        self.linear = nn.Linear(8, 8)
        self.norm = nn.LayerNorm(8)


def test_param_groups_follow_the_modules_no_weight_decay():
    model = _Decays()
    decay, no_decay = harness.param_groups(model, 0.05)
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    name = {id(p): n for n, p in model.named_parameters()}
    skipped = {name[id(p)] for p in no_decay["params"]}
    assert {"tokens.tokens", "asm.logit_scale"} <= skipped  # from no_weight_decay()
    assert {"linear.bias", "norm.weight", "norm.bias"} <= skipped  # vectors
    assert {name[id(p)] for p in decay["params"]} == {"linear.weight", "asm.proj.weight"}
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


def test_param_groups_reject_a_no_weight_decay_name_that_is_not_a_parameter():
    model = _Decays()
    model.linear.no_weight_decay = lambda: {"scale"}
    with pytest.raises(ValueError, match=r"linear.no_weight_decay\(\): no parameter named 'scale'"):
        harness.param_groups(model, 0.01)


def test_synthetic_flag_changes_the_benchmark_and_names_bad_fields():
    args = _args("--synthetic", "feature_noise=0.0", "frames=3,4")
    data = ag_task.load_data(args)
    assert all(3 <= v.mask.shape[1] <= 4 for v in data.train)
    plain = ag_task.load_data(_args())
    assert not torch.equal(data.train[0].object_features, plain.train[0].object_features)
    with pytest.raises(ValueError, match="--synthetic: expected FIELD=VALUE"):
        ag_task.load_data(_args("--synthetic", "nope=1"))


def test_comparison_helpers():
    argv = ["--quick", "--variant", "rsnet", "--ablation", "--out", "x", "--seed", "1"]
    assert experiments.without_flags(argv, "--ablation", valued=("--variant", "--out")) == [
        "--quick", "--seed", "1"
    ]  # fmt: skip
    assert experiments.without_seeds(["--seeds", "0", "1", "--quick"]) == ["--quick"]
    rows = {"a": {"R@10": 1.5, "x": 2}, "long name": {"R@10": 3.0}}
    text = experiments.results_table("title", rows, ("R@10", "x", "never"))
    lines = text.splitlines()
    assert lines[0] == "title" and "never" not in text
    assert lines[1].split() == ["R@10", "x"] and lines[3].split() == ["long", "name", "3.0", "-"]
    assert experiments.parameter_count(nn.Linear(3, 2)) == 8
