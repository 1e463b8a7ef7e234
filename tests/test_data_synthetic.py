"""The synthetic Action Genome benchmark: reproducible, rule-labelled, and it rewards motion."""

import numpy as np
import pytest
import torch

from dsgg_layers.boxes import elementwise_box_iou
from dsgg_layers.data import MOTION_PREDICATES, SyntheticActionGenome, SyntheticConfig, VideoGraph
from dsgg_layers.data.probe import motion_probe
from dsgg_layers.motion import motion_attributes
from dsgg_layers.vocab import PREDICATE_GROUPS, PREDICATES

SMALL = SyntheticConfig(num_videos=60, num_test_videos=30)


@pytest.fixture(scope="module")
def train():
    return SyntheticActionGenome()  # the default benchmark, as the README's main job uses it


def same(a: VideoGraph, b: VideoGraph) -> bool:
    return a.video_ids == b.video_ids and all(
        torch.equal(x, y)
        for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
        if isinstance(x, torch.Tensor)
    )


def test_reproducible_and_independent_of_dataset_size():
    a = SyntheticActionGenome(SMALL)
    b = SyntheticActionGenome(SMALL)
    assert all(same(x, y) for x, y in zip(a, b, strict=True))
    bigger = SyntheticActionGenome(SMALL.replace(num_videos=80))
    assert all(same(x, y) for x, y in zip(a, bigger, strict=False))  # the first 60 are the same
    other = SyntheticActionGenome(SMALL.replace(seed=1))
    assert not same(a[0], other[0])
    test = SyntheticActionGenome(SMALL, split="test")
    assert len(test) == 30 and not set(a.batch().video_ids) & set(test.batch().video_ids)


def test_label_rules(train):
    g = train.batch()
    rel, mask = g.relations, g.mask
    per_group = {k: rel[..., s].sum(-1) for k, s in PREDICATE_GROUPS.items()}
    assert (per_group["attention"][mask] == 1).all()  # exactly one attention predicate
    contacting = per_group["contacting"][mask]  # one, or two where the situation is ambiguous
    assert ((contacting == 1) | (contacting == 2)).all() and (contacting == 1).float().mean() > 0.7
    plain = SyntheticActionGenome(SMALL.replace(label_ambiguity=0.0)).batch()
    assert (plain.relations[..., PREDICATE_GROUPS["contacting"]].sum(-1)[plain.mask] == 1).all()
    assert (per_group["spatial"][mask] >= 1).all()  # side / front / behind, plus extras
    assert not rel[~mask].any()
    # the contacting predicates of a pair are the same in every frame of its track
    contact = (rel[..., PREDICATE_GROUPS["contacting"]].long() << torch.arange(17)).sum(-1)
    first = contact.masked_fill(~mask, 1 << 20).amin(1, keepdim=True)
    assert (contact[mask] == first.expand_as(contact)[mask]).all()
    # AG's one-object-per-class: a class appears once per frame
    labels = g.object_labels.masked_fill(~mask, -1)
    for b in range(5):
        for t in range(int(g.frame_mask[b].sum())):
            present = labels[b, t][labels[b, t] >= 0]
            assert present.unique().numel() == present.numel()


def test_long_tail_with_every_predicate(train):
    counts = train.batch().relations.flatten(0, 2).sum(0)
    assert (counts > 0).all(), dict(zip(PREDICATES, counts.tolist(), strict=True))
    contacting = counts[PREDICATE_GROUPS["contacting"]].float()
    assert contacting.max() / contacting.min() > 20  # AG's contacting predicates are long-tailed
    names = PREDICATES[PREDICATE_GROUPS["contacting"]]
    top2 = {names[i] for i in contacting.topk(2).indices.tolist()}
    assert top2 == {"holding", "not_contacting"}  # AG's head predicates
    frames, pairs = train.batch().num_frames, train.batch().num_pairs
    assert 2.0 < pairs / frames < 2.6  # AG's test set has about 2.1 pairs a frame


def test_motion_rules_show_in_the_attributes(train):
    g = train.batch()
    attrs = motion_attributes(g.subject_boxes, g.object_boxes, g.mask, g.frame_times,
                              image_size=g.image_size)  # fmt: skip
    has_prev = g.mask & torch.cat((torch.zeros_like(g.mask[:, :1]), g.mask[:, :-1]), 1)

    def median(predicate, channel, absolute=False):
        sel = has_prev & g.relations[..., PREDICATES.index(predicate)]
        x = attrs[sel][:, channel]
        return float((x.abs() if absolute else x).median())

    # carrying: the object moves with the walking person, same direction
    assert median("carrying", 3) > 0.95
    assert median("holding", 3, True) < 0.8 and median("touching", 3, True) < 0.8
    # touching: the person reaches to and fro toward a still object; holding: nothing moves
    assert median("touching", 1, True) > 3 * median("holding", 1, True)
    # drinking: the cup swings between hand and mouth (medians 0.0034 and 0.0002 when written)
    assert median("drinking_from", 1, True) > 3 * median("holding", 1, True)


@pytest.mark.slow
def test_motion_decides_the_motion_predicates(train):
    """The single-frame probe stays near chance; seeing motion attributes adds a large margin.

    Measured with this config and seed (see docs/data.md): single-frame 0.35, with motion 0.66
    balanced accuracy over the four predicates (chance 0.25). Asserted with a margin.
    """
    test = SyntheticActionGenome(train.config, split="test")
    result = motion_probe(train, test)
    single = result["single_frame"]["balanced_accuracy"]
    motion = result["with_motion"]["balanced_accuracy"]
    assert single < 0.45
    assert motion - single > 0.15, result
    # holding, touching and carrying look the same in one frame
    for p in ("holding", "touching", "carrying"):
        assert result["single_frame"]["recall"][p] < 0.45, result
    assert set(result["with_motion"]["recall"]) == set(MOTION_PREDICATES)


def test_variants():
    pred = SyntheticActionGenome(SMALL, split="test", mode="predcls")
    sgcls = SyntheticActionGenome(SMALL, split="test", mode="sgcls")
    # no duplicate tracks (they carry relations too: see the det_duplicates test)
    sgdet = SyntheticActionGenome(SMALL.replace(det_duplicates=0.0), split="test", mode="sgdet")
    assert all(same(a, b) for a, b in zip(pred, sgcls, strict=True))
    det = sgdet.batch()
    assert det.gt is not None and same(VideoGraph.collate(list(pred)), det.gt)
    assert det.object_scores is not None and det.subject_scores is not None
    assert 8.0 < det.num_pairs / det.num_frames < 11.0  # about 9.5 detected pairs a frame
    scores = det.object_scores[det.mask]
    assert ((scores > 0) & (scores <= 1)).all()
    # detected pairs carry the relations of the ground-truth pair they overlap with IoU >= 0.5
    gt = det.gt
    labelled = det.relations.any(-1)
    P = gt.mask.shape[2]
    iou = elementwise_box_iou(det.object_boxes[:, :, :P], gt.object_boxes)
    assert (iou[labelled[:, :, :P]] >= 0.5).all() and not labelled[:, :, P:].any()
    assert (det.relations[:, :, :P] <= gt.relations).all()
    # some detections are wrong: missed objects, spurious tracks, wrong classes
    assert (
        det.object_labels[:, :, :P][det.mask[:, :, :P]]
        != gt.object_labels[:, :, :P][det.mask[:, :, :P]]
    ).any()
    assert det.mask[:, :, P:].any()
    assert (gt.mask & ~det.mask[:, :, :P]).any()


def test_variants_scored_by_the_evaluator():
    """Oracle predicate scores on each variant: PredCls is perfect without constraint, SGCls
    loses what its object classes get wrong, SGDet what the detector misses or mislocates."""
    from dsgg_layers.metrics import action_genome_metrics

    results = {}
    for mode in ("predcls", "sgcls", "sgdet"):
        g = SyntheticActionGenome(SMALL, split="test", mode=mode).batch()
        labels = g.object_labels
        if mode == "sgcls":  # a classifier that gets every fifth object wrong
            wrong = (torch.arange(labels.numel()).view_as(labels) % 5) == 0
            labels = torch.where(wrong & g.mask, labels % 35 + 1, labels)
        preds = dict(predicate_scores=g.relations.float(), mask=g.mask, object_labels=labels,
                     subject_boxes=g.subject_boxes, object_boxes=g.object_boxes)  # fmt: skip
        if g.object_scores is not None:
            preds["object_scores"] = g.object_scores
        results[mode] = action_genome_metrics(preds, g.targets(), ks=(20, 50))
    assert float(results["predcls"]["no/R@50"]) == 1.0
    assert 0.0 < float(results["predcls"]["with/R@20"]) < 1.0  # spatial is multi-label
    assert 0.6 < float(results["sgcls"]["no/R@50"]) < 0.95
    assert 0.3 < float(results["sgdet"]["no/R@50"]) < float(results["sgcls"]["no/R@50"])


def test_save_and_load(tmp_path):
    data = SyntheticActionGenome(SMALL, split="test", mode="sgdet")
    data.save(tmp_path / "syn.pt")
    back = SyntheticActionGenome.load(tmp_path / "syn.pt")
    assert back.config == data.config and back.mode == "sgdet" and len(back) == len(data)
    assert all(same(a, b) for a, b in zip(data, back, strict=True))
    assert torch.equal(back.class_semantics, data.class_semantics)


def test_test_scale_config():
    cfg = SyntheticConfig.action_genome_test_scale(num_test_videos=20)
    g = SyntheticActionGenome(cfg, split="test").batch()
    assert 20 <= g.num_frames / len(g) <= 28


def test_errors():
    with pytest.raises(ValueError, match="split: expected one of 'train', 'test', got 'val'"):
        SyntheticActionGenome(SMALL, split="val")
    with pytest.raises(ValueError, match="mode: expected one of 'predcls', 'sgcls', 'sgdet'"):
        SyntheticActionGenome(SMALL, mode="sgdets")
    with pytest.raises(ValueError, match=r"frames: expected a range \(lo, hi\)"):
        SyntheticConfig(frames=(5, 2))
    with pytest.raises(ValueError, match="walking: expected a probability"):
        SyntheticConfig(walking=1.5, shifting=0.0)
    with pytest.raises(ValueError, match="walking \\+ shifting: expected at most 1"):
        SyntheticConfig(walking=0.6, shifting=0.6)


def test_difficulty_knobs_change_only_what_they_name():
    import numpy as np

    from dsgg_layers.data.synthetic import _LOOK_ALIKES, _MOTION_CODE, _World
    from dsgg_layers.vocab import OBJECT_CLASSES, PREDICATE_GROUPS

    base = SyntheticConfig(num_videos=6, num_test_videos=1, class_similarity=0.0, code_sharing=0.0,
                           text_coupling=0.0)  # fmt: skip
    # class_similarity: look-alike prototypes move toward their group's mean, others stay
    plain, alike = _World(base), _World(base.replace(class_similarity=0.75))
    group = [OBJECT_CLASSES.index(c) for c in _LOOK_ALIKES[1]]  # sofa, chair, bed
    spread = lambda w: np.linalg.norm(w.prototypes[group] - w.prototypes[group].mean(0), axis=1)  # noqa: E731
    np.testing.assert_allclose(spread(alike), 0.25 * spread(plain), rtol=1e-12)
    person = OBJECT_CLASSES.index("person")
    np.testing.assert_array_equal(alike.prototypes[person], plain.prototypes[person])
    # code_sharing: the single-frame behaviours' codes move toward their mean; the motion
    # predicates' one code stays
    shared = _World(base.replace(code_sharing=0.5))
    single = [c for c in plain.codes if c != _MOTION_CODE]
    mean = np.mean([plain.codes[c] for c in single], axis=0)
    for code in single:
        np.testing.assert_allclose(
            shared.codes[code] - mean, 0.5 * (plain.codes[code] - mean), atol=1e-12
        )
    np.testing.assert_array_equal(shared.codes[_MOTION_CODE], plain.codes[_MOTION_CODE])
    # annotation_noise: only spatial labels flip, at about the asked rate; nothing else moves
    clean = SyntheticActionGenome(base)
    noisy = SyntheticActionGenome(base.replace(annotation_noise=0.3))
    flipped = total = 0
    spatial = PREDICATE_GROUPS["spatial"]
    for a, b in zip(clean, noisy, strict=True):
        assert torch.equal(a.object_boxes, b.object_boxes)
        assert torch.equal(a.object_features, b.object_features)
        diff = a.relations[a.mask] != b.relations[b.mask]
        assert not diff[:, : spatial.start].any() and not diff[:, spatial.stop :].any()
        flipped += int(diff.any(-1).sum())
        total += int(a.mask.sum())
    assert 0.2 < flipped / total < 0.4, flipped / total


def test_label_ambiguity_adds_a_second_contacting_label_the_situation_allows():
    from dsgg_layers.data.synthetic import _BEHAVIOURS
    from dsgg_layers.vocab import OBJECT_CLASSES

    base = SyntheticConfig(num_videos=60, num_test_videos=1, label_ambiguity=0.0)
    contacting = PREDICATE_GROUPS["contacting"]
    motion = [PREDICATES.index(p) for p in MOTION_PREDICATES]
    seconds = single_frame_pairs = 0
    for a, b in zip(
        SyntheticActionGenome(base),
        SyntheticActionGenome(base.replace(label_ambiguity=0.5)),
        strict=True,
    ):
        assert torch.equal(a.object_boxes, b.object_boxes)
        assert torch.equal(a.union_features, b.union_features)
        added = b.relations & ~a.relations
        assert not (a.relations & ~b.relations).any()  # only additions
        assert not added[..., : contacting.start].any() and not added[..., contacting.stop :].any()
        assert not added[..., motion].any()
        for p in range(a.mask.shape[-1]):
            track = a.relations[0, :, p][a.mask[0, :, p]]
            if not len(track) or track[:, motion].any():
                assert not added[0, :, p].any()  # motion pairs get no second label
                continue
            single_frame_pairs += 1
            extra = added[0, :, p][a.mask[0, :, p]]
            if extra.any():
                seconds += 1
                assert (extra == extra[0]).all()  # one label for the whole track
                (col,) = extra[0].nonzero()[:, 0].tolist()
                cls = OBJECT_CLASSES[int(a.object_labels[0, :, p][a.mask[0, :, p]][0])]
                assert cls in _BEHAVIOURS[PREDICATES[col]].classes
    assert 0.2 < seconds / single_frame_pairs < 0.5, (seconds, single_frame_pairs)


def test_attention_coupling_makes_people_look_at_what_they_hold():
    from dsgg_layers.vocab import PREDICATES

    base = SyntheticConfig(num_videos=40, num_test_videos=1)
    looked = {}
    for coupling in (0.0, 0.9):
        data = SyntheticActionGenome(base.replace(attention_coupling=coupling))
        hits = total = 0
        for v, ref in zip(data, SyntheticActionGenome(base), strict=True):
            assert torch.equal(v.object_boxes, ref.object_boxes)  # only the gaze changes
            rel = v.relations[v.mask]
            held = rel[:, PREDICATES.index("holding")]
            hits += int((held & rel[:, PREDICATES.index("looking_at")]).sum())
            total += int(held.sum())
        looked[coupling] = hits / total
    assert looked[0.9] > looked[0.0] + 0.3, looked


def test_reach_scale_widens_the_reach_of_a_shifting_person_only():
    import numpy as np

    from dsgg_layers.data.synthetic import _SHIFT, _Video, _World

    cfg = SyntheticConfig(num_videos=1, num_test_videos=1)
    sways = {}
    for scale in (1.0, 3.0):
        c = cfg.replace(reach_scale=scale)
        world, spans = _World(c), []
        for i in range(40):
            v = _Video(c, world, np.random.default_rng([c.seed, 0, i]))
            if v.mode == _SHIFT:
                spans.append(np.ptp(v.person_center, axis=0).max())
        sways[scale] = np.asarray(spans)
    assert len(sways[1.0]) > 3
    np.testing.assert_allclose(sways[3.0], 3 * sways[1.0], rtol=1e-9)


def test_det_duplicates_append_shifted_second_detections():
    base = SyntheticConfig(num_videos=1, num_test_videos=30, det_duplicates=0.0, bystanders=0)
    plain = SyntheticActionGenome(base, split="test", mode="sgdet")
    dup = SyntheticActionGenome(base.replace(det_duplicates=0.5), split="test", mode="sgdet")
    added = 0
    for a, b in zip(plain, dup, strict=True):
        p = a.mask.shape[-1]
        extra = b.mask.shape[-1] - p
        added += extra
        for name in ("mask", "object_boxes", "object_labels", "relations", "object_features"):
            assert torch.equal(getattr(a, name), getattr(b, name)[:, :, :p])  # the rest stays
        assert torch.equal(a.gt.relations, b.gt.relations)
        if extra:
            new = b.mask[..., p:]
            assert new.any()
            assert (b.object_scores[..., p:][new] < 0.9 + 1e-6).all()
            labelled = b.relations[..., p:, :].any(-1)
            assert not (labelled & ~new).any()  # no relations where nothing was detected
    assert 0.2 * 30 < added < 30 * 4 * 0.8, added


def test_bystanders_append_unannotated_objects_with_real_confidences():
    base = SyntheticConfig(num_videos=1, num_test_videos=30, bystanders=0)
    plain = SyntheticActionGenome(base, split="test", mode="sgdet")
    more = SyntheticActionGenome(base.replace(bystanders=3.0), split="test", mode="sgdet")
    added, scores = 0, []
    for a, b in zip(plain, more, strict=True):
        p = a.mask.shape[-1]
        added += b.mask.shape[-1] - p
        for name in ("mask", "object_boxes", "object_labels", "relations", "object_features",
                     "object_scores"):  # fmt: skip
            assert torch.equal(getattr(a, name), getattr(b, name)[:, :, :p])  # the rest stays
        assert torch.equal(a.gt.relations, b.gt.relations)
        assert torch.equal(a.gt.object_features, b.gt.object_features)
        assert not b.relations[:, :, p:].any()  # unannotated
        scores.append(b.object_scores[:, :, p:][b.mask[:, :, p:]])
    scores = torch.cat(scores)
    assert 30 * 3 * 0.6 < added < 30 * 3 * 1.4, added
    assert float(scores.max()) > 0.9  # confident, like the real detections (spurious ones < 0.6)
    with pytest.raises(ValueError, match="bystanders: expected a finite number >= 0"):
        SyntheticConfig(bystanders=-1.0)


def _data_hash(cfg):
    import hashlib

    h = hashlib.sha256()
    for split in ("train", "test"):
        for v in SyntheticActionGenome(cfg, split):
            for k in sorted(vars(v)):
                x = getattr(v, k)
                if isinstance(x, torch.Tensor):
                    h.update(k.encode())
                    h.update(x.contiguous().numpy().tobytes())
    return h.hexdigest()


def test_text_coupling_zero_is_the_benchmark_as_it_was():
    # the hash of this config's data before the dials existed (commit b475249): both at 0
    cfg = SyntheticConfig(num_videos=6, num_test_videos=3, seed=5, text_coupling=0, bystanders=0)
    want = "e3603a3b0b41b659b23bfeb223c7ff7c7a91a243d6e941265f6f0915b85e73ba"
    assert _data_hash(cfg) == want
    assert _data_hash(cfg.replace(text_coupling=0.5)) != want
    assert _data_hash(cfg.replace(bystanders=4.0)) == want  # bystanders touch SGDet only


def test_text_coupling_moves_the_looks_toward_the_text_geometry():
    from dsgg_layers.data.language import predicate_text_vectors
    from dsgg_layers.data.synthetic import _BEHAVIOURS, _CODES, _World

    text = predicate_text_vectors()
    T = np.stack([text[[PREDICATES.index(p) for p, b in _BEHAVIOURS.items() if b.code == c]]
                  .mean(0) for c in _CODES])  # fmt: skip
    T /= np.linalg.norm(T, axis=1, keepdims=True)
    iu = np.triu_indices(len(_CODES), 1)

    def agreement(coupling, sharing):  # the looks' and the texts' cosines, correlated
        w = _World(SyntheticConfig(code_sharing=sharing, text_coupling=coupling))
        C = np.stack([w.codes[c] for c in _CODES])
        C -= C.mean(0)  # centred: what tells the looks apart
        C /= np.linalg.norm(C, axis=1, keepdims=True)
        return np.corrcoef((C @ C.T)[iu], (T @ T.T)[iu])[0, 1]

    for sharing in (0.0, 0.8):  # with and without the default code sharing
        values = [agreement(x, sharing) for x in (0.0, 0.5, 0.75, 1.0)]
        assert values == sorted(values) and values[0] < 0.3 and values[-1] > 0.9, values
    with pytest.raises(ValueError, match="text_coupling"):
        SyntheticConfig(text_coupling=1.5)


def test_the_stored_text_geometry_is_wordllamas():
    pytest.importorskip("wordllama")
    from dsgg_layers.data import PREDICATE_TEXT_SIMILARITY, predicate_text_similarity
    from dsgg_layers.text import StaticEmbeddingTower

    measured = predicate_text_similarity(StaticEmbeddingTower.from_wordllama().encode)
    stored = torch.tensor(PREDICATE_TEXT_SIMILARITY)
    assert (measured - stored).abs().max() <= 1e-3
    i = {p: k for k, p in enumerate(PREDICATES)}
    assert stored[i["holding"], i["carrying"]] > stored[i["holding"], i["sitting_on"]]


def test_gaze_switching_moves_the_relation_changes_and_nothing_else():
    from dsgg_layers import label_changes

    def label_change_share(videos):  # pair-frames whose labels differ from the previous frame
        pairs = [label_changes(v.relations.bool(), v.mask) for v in videos]
        return sum(int(c.sum()) for c, _ in pairs) / sum(int(m.sum()) for _, m in pairs)

    base = SyntheticConfig(num_videos=60, num_test_videos=1)
    plain = SyntheticActionGenome(base)
    assert base.gaze_switching == 0.35  # the default draws the gaze chain as it always did
    shares = {}
    for g in (0.0, 0.35, 1.0):
        data = plain if g == 0.35 else SyntheticActionGenome(base.replace(gaze_switching=g))
        shares[g] = label_change_share(data)
        for a, b in zip(plain, data, strict=True):  # only the attention predicates move
            assert torch.equal(a.relations[..., 3:], b.relations[..., 3:])
            assert torch.equal(a.object_boxes, b.object_boxes)
            assert torch.equal(a.union_features, b.union_features)
    assert shares[0.0] < shares[0.35] < shares[1.0], shares
    assert shares[1.0] - shares[0.0] > 0.1, shares
    with pytest.raises(ValueError, match="gaze_switching"):
        SyntheticConfig(gaze_switching=1.5)
