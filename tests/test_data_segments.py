"""Segments of a trajectory batch: against VidVRD-helper's segmentation, loops over the
instances, and the pair geometry written out by hand."""

import math

import pytest
import torch
from host_sync import HostSyncs
from hypothesis import given, settings
from hypothesis import strategies as st

from dsgg_layers.data import (
    SyntheticVidVRD,
    SyntheticVidVRDConfig,
    TrajectoryBatch,
    pair_geometry,
    segment_pairs,
    segment_video,
)
from dsgg_layers.data.trajectory import TRAJECTORY_OBJECTS, TRAJECTORY_PREDICATES
from dsgg_layers.metrics import associate_relations

K = len(TRAJECTORY_PREDICATES)


@pytest.fixture(scope="module")
def batch():
    videos = list(SyntheticVidVRD(SyntheticVidVRDConfig(num_videos=4, seed=3), "train"))
    return TrajectoryBatch.collate(videos, objects=TRAJECTORY_OBJECTS,
                                   predicates=TRAJECTORY_PREDICATES)  # fmt: skip


@pytest.mark.parametrize("cover_tail", [False, True])
@pytest.mark.parametrize(("length", "stride"), [(30, 15), (20, 7)])
def test_segments_are_the_helpers_and_hold_the_videos_frames(batch, cover_tail, length, stride):
    seg = segment_pairs(batch, length, stride, cover_tail=cover_tail)
    for b, v in enumerate(batch.truth):
        want = segment_video(0, v.frame_count, length, stride, cover_tail=cover_tail)
        got = seg.starts[b][seg.segment_mask[b]]
        assert sorted(got.tolist()) == want[:, 0].tolist()
        for s in range(seg.starts.shape[1]):  # every segment's frames are the video's, in order
            if not seg.segment_mask[b, s]:
                assert not seg.mask[b, s].any()  # a segment that does not exist has no frames
                continue
            start = int(seg.starts[b, s])
            frames = slice(start, start + length)
            assert torch.equal(seg.boxes[b, s], batch.boxes[b, :, frames])
            assert torch.equal(seg.mask[b, s], batch.mask[b, :, frames])
            assert torch.equal(seg.features[b, s], batch.features[b, :, frames])


def test_pairs_are_every_ordered_pair_of_distinct_slots(batch):
    seg = segment_pairs(batch)
    N = batch.mask.shape[1]
    pairs = list(zip(seg.subject.tolist(), seg.object.tolist(), strict=True))
    assert len(pairs) == N * (N - 1) == len(set(pairs)) and all(i != j for i, j in pairs)
    assert torch.equal(seg.pair_mask, seg.subject_mask & seg.object_mask)
    assert torch.equal(seg.pair_valid, seg.pair_mask.sum(-1) >= 2)
    assert torch.equal(seg.subject_boxes, seg.boxes[:, :, seg.subject])
    assert torch.equal(seg.trajectory_valid, seg.mask.any(-1))


def test_labels_are_the_instances_held_for_half_a_segment(batch):
    seg = segment_pairs(batch)
    labels = seg.labels(batch, K)
    want = torch.zeros_like(labels)
    pair_of = {
        (int(i), int(j)): p for p, (i, j) in enumerate(zip(seg.subject, seg.object, strict=True))
    }
    for b, v in enumerate(batch.truth):  # a loop over instances and segments: the reference
        for s in range(seg.starts.shape[1]):
            start = int(seg.starts[b, s])
            for i, o, q, b0, e0 in zip(v.subjects.tolist(), v.objects.tolist(), v.predicates,
                                       v.begin.tolist(), v.end.tolist(), strict=True):  # fmt: skip
                p = pair_of[(i, o)]
                if min(e0, start + 30) - max(b0, start) >= 15 and seg.pair_valid[b, s, p]:
                    want[b, s, p, TRAJECTORY_PREDICATES.index(q)] = True
    assert want.any() and torch.equal(labels, want)
    with HostSyncs() as syncs:  # the labels need no host sync (a GPU keeps running)
        seg.labels(batch, K)
    assert not syncs.ops, syncs.ops
    with pytest.raises(ValueError, match="num_predicates"):
        seg.labels(batch, 0)


def test_pair_geometry_by_hand_and_its_invariances():
    s = torch.tensor([0.0, 0.0, 10.0, 10.0])
    o = torch.tensor([5.0, 0.0, 25.0, 20.0])
    # union box [0, 0, 25, 20]: subject [0, 0, .4, .5], object [.2, 0, 1, 1]; IoU 50 / 450
    want = [0.0, 0.0, 0.4, 0.5, 0.2, 0.0, 1.0, 1.0, 50 / 450, math.log(100 / 400)]
    torch.testing.assert_close(pair_geometry(s, o), torch.tensor(want))
    assert pair_geometry(torch.zeros(0, 4), torch.zeros(0, 4)).shape == (0, 10)
    with pytest.raises(ValueError, match="object"):
        pair_geometry(s, torch.zeros(2, 4))


@settings(max_examples=30, deadline=None)
@given(shift=st.tuples(st.floats(-50, 50), st.floats(-50, 50)), scale=st.floats(1.0, 4.0),
       seed=st.integers(0, 2**16))  # fmt: skip
def test_pair_geometry_ignores_translation_and_scale(shift, scale, seed):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(2, 2, generator=g, dtype=torch.float64) * 40
    boxes = torch.cat((xy, xy + 5 + torch.rand(2, 2, generator=g, dtype=torch.float64) * 30), -1)
    moved = (boxes + torch.tensor(shift, dtype=torch.float64).repeat(2)) * scale
    torch.testing.assert_close(pair_geometry(*moved), pair_geometry(*boxes))


def test_segment_relations_are_the_top_predicates_of_each_valid_pair(batch):
    seg = segment_pairs(batch)
    B, S, P = seg.pair_valid.shape
    g = torch.Generator().manual_seed(0)
    scores = torch.rand(B, S, P, K, generator=g)
    labels = batch.labels[:, None].expand(-1, S, -1)
    cls_scores = torch.rand(labels.shape, generator=g)
    out = seg.segment_relations(scores, TRAJECTORY_PREDICATES, labels, cls_scores,
                                TRAJECTORY_OBJECTS, top=2)  # fmt: skip
    assert len(out) == B
    for b in range(B):  # the reference: a loop over segments, pairs and predicates
        n = int((seg.pair_valid[b] & seg.segment_mask[b, :, None]).sum()) * 2
        assert sum(len(r) for r in out[b].values()) == n
        for (start, end), rels in out[b].items():
            s = seg.starts[b].tolist().index(start)
            assert end - start == 30
            for r in rels:
                sub, obj = r["sub_duration"], r["obj_duration"]
                assert start <= sub[0] < sub[1] <= end and len(r["sub_traj"]) == sub[1] - sub[0]
                assert len(r["obj_traj"]) == obj[1] - obj[0]
                names = [TRAJECTORY_OBJECTS[int(x)] for x in labels[b, s]]
                p = next(p for p in range(P)
                         if names[seg.subject[p]] == r["triplet"][0]
                         and names[seg.object[p]] == r["triplet"][2]
                         and seg.boxes[b, s, seg.subject[p], sub[0] - start].tolist()
                         == r["sub_traj"][0]
                         and seg.boxes[b, s, seg.object[p], obj[0] - start].tolist()
                         == r["obj_traj"][0])  # fmt: skip
                c = TRAJECTORY_PREDICATES.index(r["triplet"][1])
                assert c in scores[b, s, p].topk(2).indices.tolist()
                want = scores[b, s, p, c] * cls_scores[b, s, seg.subject[p]] * \
                    cls_scores[b, s, seg.object[p]]  # fmt: skip
                assert r["score"] == pytest.approx(float(want), rel=1e-6)
    video = associate_relations(out[0], "uasan")  # what the association takes
    assert video and all(set(r) >= {"triplet", "score", "duration"} for r in video)
    with pytest.raises(ValueError, match="scores"):
        seg.segment_relations(scores[..., :3], TRAJECTORY_PREDICATES, labels, cls_scores,
                              TRAJECTORY_OBJECTS)  # fmt: skip


def test_segment_pairs_errors_and_a_video_shorter_than_a_segment(batch):
    with pytest.raises(ValueError, match="length"):
        segment_pairs(batch, 0)
    with pytest.raises(ValueError, match="stride"):
        segment_pairs(batch, 30, -1)
    seg = segment_pairs(batch, length=10_000)  # longer than every video: no segment exists
    assert not seg.segment_mask.any() and not seg.mask.any() and not seg.pair_valid.any()
    assert not seg.labels(batch, K).any()
