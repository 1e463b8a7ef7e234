"""The reference assemblies in examples/ run end to end (--quick size) and write their outputs."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

from dsgg_layers import sttran_predicate_loss, tr2_predicate_loss
from dsgg_layers.data import segment_video
from dsgg_layers.data.trajectory import predicate_words

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))
import ag_task  # noqa: E402
import harness  # noqa: E402
import runtime  # noqa: E402  (examples/harness.py, the assemblies' shared harness)


def _load(name: str):
    spec = importlib.util.spec_from_file_location(
        f"examples_{name}", ROOT / "examples" / f"{name}.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def mosa():
    return _load("mosa")


@pytest.fixture(scope="module")
def quick_run(mosa, tmp_path_factory):
    out = tmp_path_factory.mktemp("mosa")
    summary = mosa.main(["--quick", "--out", str(out), "--threads", "2"])
    return out, summary


def test_mosa_quick_run_writes_outputs(quick_run):
    out, summary = quick_run
    assert (out / "mosa.pt").is_file()
    assert (out / "per_predicate_recall.png").stat().st_size > 1000
    saved = json.loads((out / "results.json").read_text())
    assert set(saved["results"]) == {"predcls", "sgcls", "sgdet"}
    for task, results in summary["results_tensors"].items():
        for key, value in results.items():
            assert torch.isfinite(value).all(), (task, key)
        assert 0.0 <= float(results["with/R@20"]) <= 1.0
        assert float(results["no/R@50"]) >= float(results["with/R@50"]) - 1e-6
    assert len(saved["epoch_seconds"]) == 2
    assert [set(h) >= {"loss", "relation", "object"} for h in saved["history"]] == [True, True]
    assert set(saved["report"]) == {"predcls", "sgcls", "sgdet"}  # MoSA's motion report


def _args(mosa, *flags: str):
    return harness.make_parser(mosa.ASSEMBLY).parse_args(["--quick", *flags])


def test_mosa_checkpoint_reloads_and_predicts_the_same(mosa, quick_run):
    out, summary = quick_run
    ckpt = torch.load(out / "mosa.pt", weights_only=True)
    args = _args(mosa, "--random-text")  # the text embeddings come from the checkpoint
    data = ag_task.load_data(args)
    model = mosa.build_model(args, data)
    model.load_state_dict(ckpt["model"])
    model.eval()
    batch = mosa.VideoGraph.collate(data.test["predcls"][:3])
    trained = summary["model"].eval()
    with torch.no_grad():
        got, want = model.predicate_logits(batch), trained.predicate_logits(batch)
    assert got.shape == (*batch.mask.shape, 26) and torch.isfinite(got).all()
    torch.testing.assert_close(got, want, rtol=0, atol=0)  # the model that was saved
    fresh = mosa.build_model(args, data).eval()
    with torch.no_grad():
        assert not torch.allclose(fresh.predicate_logits(batch), want)  # one not saved differs


def test_mosa_quick_run_learns(mosa, quick_run):
    """Two epochs beat the same model untrained on the same test videos (PredCls R@20)."""
    _, summary = quick_run
    args = _args(mosa, "--random-text")
    data = ag_task.load_data(args)
    torch.manual_seed(args.seed)
    untrained = mosa.build_model(args, data)
    floor = harness.evaluate(untrained, {"predcls": data.test["predcls"]}, args)
    trained = float(summary["results_tensors"]["predcls"]["with/R@20"])
    assert trained > float(floor["predcls"]["with/R@20"]) + 0.05, (trained, floor)


def test_mosa_keeps_the_model_contract(mosa):
    """Training: a dict of named losses; evaluation: the evaluator's predictions for each task."""
    args = _args(mosa, "--random-text")
    data = ag_task.load_data(args)
    model = mosa.build_model(args, data)
    batch = mosa.VideoGraph.collate(data.train[:3])
    losses = model.train()(batch)
    assert set(losses) == {"relation", "object"}
    assert all(v.ndim == 0 and torch.isfinite(v) for v in losses.values())
    model.eval()
    for task in harness.TASKS:
        graph = mosa.VideoGraph.collate(data.test[task][:3])
        with torch.no_grad():
            preds = model(graph, task=task)
        ev = ag_task.ActionGenomeEvaluator()
        ev.update(preds, graph.targets())  # the evaluator takes them as they are
        assert 0.0 <= float(ev.compute()["with/R@20"]) <= 1.0
        assert preds["predicate_scores"].shape == (*graph.mask.shape, 26)
        if task == "sgcls":  # classified by the model, never the person class
            assert (preds["object_labels"][graph.mask] > 0).all()
            assert "object_scores" in preds


@pytest.mark.parametrize(
    ("flag", "check"),
    [
        ("--no-mfe", lambda m: m.mfe is None and m.mim is None),
        ("--no-mim", lambda m: m.mim is not None and m.mim.fusion == "concat"),
        ("--no-asm", lambda m: all(isinstance(h, torch.nn.Linear) for h in m.heads)),
    ],
)
def test_mosa_ablation_flags_build_the_ablated_model(mosa, flag, check):
    args = _args(mosa, "--random-text", flag)
    data = ag_task.load_data(args)
    model = mosa.build_model(args, data)
    assert check(model)
    batch = mosa.VideoGraph.collate(data.train[:2])
    logits = model.predicate_logits(batch)
    assert logits.shape == (*batch.mask.shape, 26) and torch.isfinite(logits).all()
    sum(model(batch).values()).backward()


def test_mosa_runs_under_bf16_autocast_on_cpu(mosa):
    args = _args(mosa, "--random-text", "--amp", "bf16")
    data = ag_task.load_data(args)
    model = mosa.build_model(args, data)
    batch = mosa.VideoGraph.collate(data.train[:4])
    with runtime.autocast(args.amp, torch.device("cpu")):
        logits = model.predicate_logits(batch)
        losses = model(batch)
    assert logits.dtype == torch.bfloat16
    assert torch.isfinite(logits.float()).all()
    sum(losses.values()).backward()


def test_mosa_two_processes_with_uneven_shards_finish_and_merge(mosa, tmp_path):
    """33 videos on 2 ranks, batches of 16: 17 + 16 videos would be 2 steps vs 1 (a DDP hang:
    without the fix the run never ends; with it, about 12 s on 2 cores)."""
    import subprocess

    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
           str(ROOT / "examples" / "mosa.py"), "--quick", "--train-videos", "33",
           "--threads", "1", "--out", str(tmp_path)]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=180, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    saved = json.loads((tmp_path / "results.json").read_text())
    test = ag_task.load_data(_args(mosa)).test
    for task in ("predcls", "sgdet"):
        frames = sum(int(g.ground_truth.mask.any(-1).sum()) for g in test[task])
        assert saved["results"][task]["num_frames"] == frames  # both ranks' frames merged


# ------------------------------------------------------------------------------- RS-Net


@pytest.fixture(scope="module")
def rsnet():
    return _load("rsnet")


def test_rsnet_model_keeps_the_harness_contract(rsnet):
    args = harness.make_parser(rsnet.ASSEMBLY).parse_args(["--quick", "--variant", "rsnet"])
    data = ag_task.load_data(args, "sgdet")
    assert all(v.gt is not None for v in data.train)  # trained on detections
    model = rsnet.build_model(args, data)
    batch, rows = harness._collate(data.train[:3])
    losses = model(batch, rows=rows)
    assert set(losses) == {"attention", "spatial", "contacting", "object", "scoring"}
    sum(losses.values()).backward()
    assert model.scorer.decoder.mlp[0].weight.grad.abs().sum() > 0
    model.eval()
    test, test_rows = harness._collate(data.test["sgdet"][:2])
    with torch.no_grad():
        ranked = model(test, task="sgdet", rows=test_rows)["predicate_scores"]
        model.rescore = False
        plain = model(test, task="sgdet", rows=test_rows)["predicate_scores"]
        p0 = model.scorer(model.front.inputs(test), test.mask).score
    torch.testing.assert_close(ranked, plain * p0.unsqueeze(-1))  # Eq. 6
    baseline = rsnet.build_model(
        harness.make_parser(rsnet.ASSEMBLY).parse_args(["--quick", "--variant", "baseline"]), data
    )
    assert baseline.scorer is None and "scoring" not in baseline(batch, rows=rows)
    with pytest.raises(ValueError, match="g: expected detected pairs"):
        baseline(batch.replace(gt=None), rows=rows)


def test_sgdet_training_data_needs_detector_boxes(tmp_path):
    args = _args_of(harness.Assembly("x", "x", lambda a, d: None), "--ag-root", str(tmp_path))
    with pytest.raises(ValueError, match="--ag-root: this assembly trains on detected pairs"):
        ag_task.load_data(args, "sgdet")
    with pytest.raises(ValueError, match="train_mode: expected one of 'predcls', 'sgdet'"):
        ag_task.load_data(args, "sgcls")


def _args_of(assembly, *flags: str):
    return harness.make_parser(assembly).parse_args(["--quick", *flags])


def test_rsnet_and_baseline_start_from_the_same_baseline_weights(rsnet):
    args = harness.make_parser(rsnet.ASSEMBLY).parse_args(["--quick"])
    data = ag_task.load_data(args, "sgdet")
    models = {}
    for variant in ("baseline", "rsnet"):
        torch.manual_seed(0)
        args.variant = variant
        models[variant] = rsnet.build_model(args, data)
    base, wrapped = models["baseline"].state_dict(), models["rsnet"].state_dict()
    shared = [k for k in base if k.startswith(("pair_proj", "block", "object_classifier"))]
    assert shared and all(torch.equal(base[k], wrapped[k]) for k in shared)
    # and RS-Net's dropout does not move the baseline's global random stream
    batch, rows = harness._collate(data.train[:2])
    after = {}
    for variant, model in models.items():
        torch.manual_seed(1)
        model.train()(batch, rows=rows)
        after[variant] = torch.rand(3)
    assert torch.equal(after["baseline"], after["rsnet"])


# ---------------------------------------------------------------------------------- TR²


@pytest.fixture(scope="module")
def tr2():
    return _load("tr2")


def _tr2_args(tr2, *flags: str):
    return harness.make_parser(tr2.ASSEMBLY).parse_args(["--quick", "--random-text", *flags])


def test_tr2_quick_run_reports_every_task_top6_and_strata(tr2, tmp_path, capsys):
    summary = tr2.main(["--quick", "--random-text", "--out", str(tmp_path), "--threads", "2"])
    results = summary["results_tensors"]
    assert set(results) == {"predcls", "sgcls", "sgdet"}
    for r in results.values():
        assert {"with/R@10", "no/R@50", "top6/R@20", "with/R@20/stratum2"} <= set(r)
    assert set(summary["history"][0]) >= {"attention", "spatial", "contacting", "object",
                                          "guidance_attention", "guidance_contacting"}  # fmt: skip
    assert 0.05 < summary["model"].train_change_share < 0.95
    printed = capsys.readouterr().out
    assert "relation changes:" in printed and "by share of changing pair-frames" in printed
    assert (tmp_path / "tr2.pt").is_file()


def test_tr2_model_contract_gradients_and_options(tr2):
    args = _tr2_args(tr2)
    data = ag_task.load_data(args)
    model = tr2.build_model(args, data)
    batch, rows = harness._collate(data.train[:3])
    losses = model(batch, rows=rows)
    assert set(losses) == {"attention", "spatial", "contacting", "object", "guidance_attention",
                           "guidance_spatial", "guidance_contacting"}  # fmt: skip
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    for name in ("attention", "spatial", "contacting"):  # every group's projection learns
        assert model.guidance.projections[name].weight.grad.abs().sum() > 0
        assert model.heads[name].proj.weight.grad.abs().sum() > 0
    assert model.token.linear1.weight.grad.abs().sum() > 0
    assert not any(b.requires_grad for b in model.buffers())  # sentence tables stay frozen
    model.eval()
    test, test_rows = harness._collate(data.test["sgdet"][:2])
    with torch.no_grad():
        preds = model(test, task="sgdet", rows=test_rows)
    scores = preds["predicate_scores"]
    assert scores.shape[-1] == 26 and ((scores >= 0) & (scores <= 1)).all()
    # the ablations build the ablated model
    flags = ("--no-spatial", "--no-decoder", "--no-token", "--guidance", "none")
    plain = tr2.build_model(_tr2_args(tr2, *flags, "--classifier", "linear"), data)
    assert plain.encoder.spatial is None and plain.encoder.temporal is None
    assert plain.token is None and plain.guidance is None
    assert isinstance(plain.heads["spatial"], torch.nn.Linear)
    assert set(plain(batch, rows=rows)) == {"attention", "spatial", "contacting", "object"}
    binary = tr2.build_model(_tr2_args(tr2, "--guidance", "binary"), data)
    assert (
        binary.guidance.mode == "binary"
        and binary.guidance.projections["spatial"].out_features == 1
    )
    # the code's temporal layers (default) have no norm after the feed-forward; the spatial do
    assert all(layer.norm2 is None for layer in model.encoder.temporal.layers)
    assert all(layer.norm2 is not None for layer in model.encoder.spatial.layers)
    standard = tr2.build_model(_tr2_args(tr2, "--temporal-norm", "standard",
                                         "--positions", "frame"), data)  # fmt: skip
    assert all(layer.norm2 is not None for layer in standard.encoder.temporal.layers)
    assert standard.encoder.positions == "frame"
    assert all(torch.isfinite(v) for v in standard(batch, rows=rows).values())
    # --loss margin: STTran's predicate loss on the same logits, the focal one by default
    margin = tr2.build_model(_tr2_args(tr2, "--loss", "margin", "--guidance", "none"), data)
    torch.manual_seed(0)  # the same dropout draws in both calls
    _, logits = margin.predicate_logits(batch, batch.object_labels, rows=rows)
    want = sttran_predicate_loss(logits.float(), batch.relations.bool(), mask=rows)
    torch.manual_seed(0)
    got = margin(batch, rows=rows)
    for name in ("attention", "spatial", "contacting"):
        torch.testing.assert_close(got[name], want[name])
    focal = tr2_predicate_loss(logits.float(), batch.relations.bool(), mask=rows,
                               alpha={"spatial": margin.alpha_spatial,
                                      "contacting": margin.alpha_contacting})  # fmt: skip
    assert not torch.allclose(got["spatial"], focal["spatial"])


def test_tr2_sentence_table_follows_the_wording(tr2):
    args = _tr2_args(tr2)
    table = tr2.sentence_table(args)
    assert table.shape == (36, 26, 512)
    assert torch.allclose(table.norm(dim=-1), torch.ones(36, 26), atol=1e-5)
    scaled = tr2.sentence_table(_tr2_args(tr2, "--sentence-scale", "9.1"))  # the code's norm
    torch.testing.assert_close(scaled, 9.1 * table)


def test_union_features_from_files_replace_the_union_features(tr2, tmp_path):
    from dsgg_layers.data import with_union_features

    args = _tr2_args(tr2)
    data = ag_task.load_data(args)
    videos = data.train[:2]
    for v in videos:
        T, P = v.mask.shape[1:]
        torch.save(torch.full((T, P, 7), 0.5), tmp_path / f"{v.video_ids[0]}.pt")
    out = with_union_features(videos, tmp_path)
    assert out[0].union_features.shape[-1] == 7 and (out[1].union_features == 0.5).all()
    assert torch.equal(out[0].object_features, videos[0].object_features)
    with pytest.raises(FileNotFoundError, match="folder: no"):
        with_union_features(data.train[2:3], tmp_path)
    v = videos[0]
    torch.save(torch.zeros(1, 1, 7), tmp_path / f"{v.video_ids[0]}.pt")
    with pytest.raises(ValueError, match=r"folder: .*expected a \(T, P, E\) tensor"):
        with_union_features([v], tmp_path)


# ---------------------------------------------------------------------------------- ARN


@pytest.fixture(scope="module")
def arn():
    return _load("arn")


def test_arn_quick_run_is_one_stage_sgdet(arn, tmp_path):
    summary = arn.main(["--quick", "--random-text", "--out", str(tmp_path), "--threads", "2"])
    results = summary["results_tensors"]
    assert set(results) == {"sgdet"}
    assert {"with/R@20", "no/R@50", "no/mR@10"} <= set(results["sgdet"])
    assert set(summary["history"][0]) >= {"object", "predicate", "box_l1", "box_giou"}
    assert (tmp_path / "arn.pt").is_file()
    saved = json.loads((tmp_path / "results.json").read_text())
    share = saved["localisation"]  # fractions of the annotated test pairs, after matching
    assert set(share) == {"person_found", "object_found", "object_class"}
    assert all(0.0 <= v <= 1.0 for v in share.values())
    assert int(summary["model"].found[0]) > 0  # annotated test pairs were counted


def test_arn_model_contract_gradients_and_ablation_flags(arn):
    args = harness.make_parser(arn.ASSEMBLY).parse_args(["--quick", "--random-text"])
    data = ag_task.load_data(args)
    model = arn.build_model(args, data)
    batch, rows = harness._collate(data.train[:2])
    losses = model(batch, rows=rows)
    entity = {"object", "box_l1", "box_giou"}
    # DETR's auxiliary losses: the first of the two entity-decoder layers has its own terms
    proposals = {"proposal_class", "proposal_l1", "proposal_giou"}  # the object tokens' losses
    assert set(losses) == {"predicate", *entity, *(f"{k}_0" for k in entity), *proposals}
    assert all(torch.isfinite(v) for v in losses.values())
    first = model.entities.layers[0]
    grad = torch.autograd.grad(
        losses["box_l1_0"], list(first.parameters()), allow_unused=True, retain_graph=True
    )
    assert any(g is not None and g.abs().sum() > 0 for g in grad)  # the aux term reaches layer 0
    sum(losses.values()).backward()
    assert model.reasoning.ha[0].layer.mlp.weight.grad.abs().sum() > 0  # HA learns
    assert model.reasoning.pap.attention[1].reduce[0].weight.grad.abs().sum() > 0
    assert model.heads["contacting"].matcher.text_embeddings.grad.abs().sum() > 0  # CLIP rows
    assert model.entities.sub_box[0].weight.grad.abs().sum() > 0
    assert model.entities.anchors.anchors.grad.abs().sum() > 0  # the anchors learn
    assert model.entities.token_box[0].weight.grad.abs().sum() > 0  # and the token proposals
    model.eval()
    test, test_rows = harness._collate(data.test["sgdet"][:2])
    with torch.no_grad():
        preds = model(test, task="sgdet", rows=test_rows)
    Q = model.queries.num_queries
    assert preds["predicate_scores"].shape == (*test.frame_mask.shape, Q, 26)
    assert torch.equal(preds["mask"].any(-1), test.ground_truth.frame_mask)
    assert (preds["object_labels"][preds["mask"]] >= 1).all()  # never the person as object
    w, h = test.image_size[0].tolist()
    boxes = preds["object_boxes"][preds["mask"]]
    assert (boxes[:, 0::2] <= w + 1e-3).all() and (boxes[:, 1::2] <= h + 1e-3).all()
    for flags, check in [
        (["--no-pap"], lambda m: m.reasoning is None),
        (["--no-ha"], lambda m: m.reasoning.ha is None),
        (["--classifier", "linear"], lambda m: isinstance(m.heads["spatial"], torch.nn.Linear)),
        (["--loss", "ce"], lambda m: m.entities.object_head.out_features == 37),
        (["--no-anchors"], lambda m: m.entities.anchors is None),
        (["--no-proposals"], lambda m: m.entities.token_box is None),
        (["--no-aux"], lambda m: not m.aux),
        (["--channels", "4"], lambda m: m.frames.patch.in_channels == 12),
        (
            ["--input", "rgb"],
            lambda m: m.frames.input == "rgb" and m.frames.pos.num_positions == 64,
        ),
        (["--input", "rgb", "--image-size", "100"], lambda m: m.frames.pos.num_positions == 169),
    ]:
        a = harness.make_parser(arn.ASSEMBLY).parse_args(["--quick", "--random-text", *flags])
        m = arn.build_model(a, data)
        assert check(m), flags
        keys = set(m(batch, rows=rows))
        assert keys >= {"object", "predicate", "box_l1", "box_giou"}
        assert ("object_0" in keys) == m.aux, flags
        plain = "--no-proposals" in flags or "--no-anchors" in flags  # OED's free queries
        assert ("proposal_class" in keys) == (not plain), flags


# ------------------------------------------------------------------------------------ UASAN


@pytest.fixture(scope="module")
def uasan():
    return _load("uasan")


def test_uasan_quick_run_scores_every_task_on_novel_and_all(uasan, tmp_path):
    summary = uasan.main(["--quick", "--out", str(tmp_path), "--threads", "1"])
    results = summary["results_tensors"]
    assert set(results) == {"predcls", "sgcls", "sgdet"}
    for r in results.values():
        assert {"novel/mAP", "novel/R@50", "all/R@100", "all/P@10"} <= set(r)
        assert all(0.0 <= float(v) <= 1.0 for v in r.values())
    assert set(summary["history"][0]) >= {"union", "fg", "traj"}
    assert (tmp_path / "uasan.pt").is_file()


def test_uasan_contract_labels_gradients_and_variants(uasan):
    args = harness.make_parser(uasan.ASSEMBLY).parse_args(["--quick"])
    data = uasan.load_data(args)
    batch, rows = harness.CollateWithRows(uasan.collate)(data.train[:3])
    model = uasan.build_model(args, data)
    t = model.tokens(batch)
    expected = [len(segment_video(0, v.frame_count)) for v in batch.truth]
    assert t["seg"].segment_mask.sum(1).tolist() == expected  # the helper's 30 / 15 segments
    tail_args = harness.make_parser(uasan.ASSEMBLY).parse_args(["--quick", "--cover-tail"])
    tail_model = uasan.build_model(tail_args, data)
    tail_seg = tail_model.tokens(batch)["seg"]
    for b, v in enumerate(batch.truth):  # the tail segment where the regular ones leave frames
        want = segment_video(0, v.frame_count, cover_tail=True)[:, 0].tolist()
        assert sorted(tail_seg.starts[b][tail_seg.segment_mask[b]].tolist()) == want
    tail_losses = tail_model(batch, rows=rows)
    assert all(torch.isfinite(x) for x in tail_losses.values())
    losses = model(batch, rows=rows)
    assert set(losses) == {"union", "fg", "traj"} and all(
        torch.isfinite(v) for v in losses.values()
    )
    sum(losses.values()).backward()
    assert model.predicates.context.grad.abs().sum() > 0  # the prompts learn
    assert model.refiner.tokens.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.predicates.tower.parameters())
    model.eval()
    test, test_rows = harness.CollateWithRows(uasan.collate)(data.test["sgdet"][:2])
    preds = model(test, task="sgdet", rows=test_rows)
    assert set(preds) == {"novel", "all"}
    novel_names = set(uasan.NOVEL)
    for rels in preds["novel"].values():
        assert all(r["triplet"][1] in novel_names for r in rels)  # restricted classifier
    assert model.predicates.class_names == tuple(map(predicate_words, uasan.BASE))  # restored
    for variant, expected in (("a", {"union", "traj"}), ("b", {"union", "traj"}),
                              ("c", {"union", "traj"}),
                              ("c-parts", {"union", "traj"})):  # fmt: skip
        a = harness.make_parser(uasan.ASSEMBLY).parse_args(["--quick", "--variant", variant])
        m = uasan.build_model(a, data)
        assert set(m(batch, rows=rows)) == expected, variant
        if variant.startswith("c"):  # C's encoder, read by a linear map or by B's MLP
            assert m.relation.readout == ("parts" if variant == "c-parts" else "mean")
    # --novel-words: the novel names in synonyms at that cosine (1: the words themselves)
    a = harness.make_parser(uasan.ASSEMBLY).parse_args(["--quick", "--novel-words", "0.2"])
    m = uasan.build_model(a, data).eval()
    assert m.suffix == "'" and "move'" in m.predicates.tower.words
    with torch.no_grad():
        preds = m(batch, task="predcls", rows=rows)
    assert set(preds) == {"novel", "all"}
    assert model.suffix == "" and "move'" not in model.predicates.tower.words
    with pytest.raises(ValueError, match="novel_words: 0.2 needs WordTower's synonyms"):
        uasan.build_model(harness.make_parser(uasan.ASSEMBLY).parse_args(
            ["--quick", "--novel-words", "0.2", "--text", "wordllama"]), data)  # fmt: skip


def test_uasan_code_head_trains_every_branch_and_scores_novel_names(uasan):
    args = harness.make_parser(uasan.ASSEMBLY).parse_args(["--quick", "--head", "code"])
    data = uasan.load_data(args)
    model = uasan.build_model(args, data)
    batch, rows = harness.CollateWithRows(uasan.collate)(data.train[:3])
    losses = model(batch, rows=rows)
    assert set(losses) == {"pair", "pair_encoded", "union", "union_encoded", "traj"}
    sum(losses.values()).backward()
    for learner in (model.pair_prompts, model.union_prompts):
        assert learner.context.grad.abs().sum() > 0 and learner.context.shape[:2] in {
            (6, 2),
            (6, 1),
        }
    assert model.code_head.encoder.slot_positions.grad.abs().sum() > 0
    assert model.code_head.temperature.grad is not None
    model.eval()
    test, test_rows = harness.CollateWithRows(uasan.collate)(data.test["sgdet"][:2])
    preds = model(test, task="sgdet", rows=test_rows)
    for rels in preds["novel"].values():
        assert all(r["triplet"][1] in set(uasan.NOVEL) for r in rels)
        assert all(0.0 <= r["score"] for r in rels)
    assert model.pair_prompts.class_names == tuple(map(predicate_words, uasan.BASE))  # restored
    with pytest.raises(ValueError, match="head"):
        uasan.UASAN(4, 8, variant="a", head="code")


def test_uasan_with_open_clip_text_tower(uasan):
    pytest.importorskip("open_clip")
    args = harness.make_parser(uasan.ASSEMBLY).parse_args(["--quick", "--text", "clip"])
    data = uasan.load_data(args)
    model = uasan.build_model(args, data)
    assert model.predicates.context.shape == (4, 512)  # ViT-B-32's token width
    batch, rows = harness.CollateWithRows(uasan.collate)(data.train[:2])
    losses = model(batch, rows=rows)
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert model.predicates.context.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.predicates.tower.parameters())


def test_arn_rgb_frames_through_a_resnet(arn):
    pytest.importorskip("torchvision")
    flags = ["--quick", "--random-text", "--input", "rgb", "--backbone", "resnet18",
             "--image-size", "64"]  # fmt: skip
    args = harness.make_parser(arn.ASSEMBLY).parse_args(flags)
    data = ag_task.load_data(args)
    model = arn.build_model(args, data)
    batch, rows = harness._collate(data.train[:1])
    losses = model(batch, rows=rows)
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert model.frames.patch[0].weight.grad.abs().sum() > 0  # the backbone trains


def test_entity_decoder_proposals_assign_the_centre_token(arn):
    pair_models = sys.modules["pair_models"]
    side, C = 8, 5
    box = torch.tensor([0.3, 0.6, 0.2, 0.1])  # centre in cell x = 2, y = 4: token 4 * 8 + 2
    tgt = {"object_boxes": box.expand(1, 2, 4).clone(), "object_labels": torch.tensor([[3, 1]]),
           "mask": torch.tensor([[True, False]])}  # fmt: skip
    boxes = torch.rand(1, side * side, 4) * 0.5 + 0.25
    logits = torch.full((1, side * side, C), -9.0)
    boxes[0, 34], logits[0, 34, 3] = box, 9.0
    out = {"proposals": {"object_boxes": boxes, "object_logits": logits}}
    losses = pair_models.EntityDecoder.proposal_losses(out, tgt)
    assert float(losses["proposal_l1"]) < 1e-6 and float(losses["proposal_giou"]) < 1e-6
    assert float(losses["proposal_class"]) < 1e-3
    boxes[0, 34] = torch.tensor([0.7, 0.2, 0.1, 0.1])  # the centre token's box is wrong
    assert float(pair_models.EntityDecoder.proposal_losses(out, tgt)["proposal_l1"]) > 0.5
    assert pair_models.EntityDecoder.proposal_losses({}, tgt) == {}
