"""The Batch contract: VideoGraph and TrajectoryBatch both keep it."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from dsgg_layers.data import (
    Batch,
    SyntheticActionGenome,
    SyntheticConfig,
    SyntheticVidVRD,
    SyntheticVidVRDConfig,
    TrajectoryBatch,
    VideoGraph,
)
from dsgg_layers.data.trajectory import TRAJECTORY_OBJECTS, TRAJECTORY_PREDICATES

VOCAB = {"objects": TRAJECTORY_OBJECTS, "predicates": TRAJECTORY_PREDICATES}


def _videos(n=3):
    return list(SyntheticVidVRD(SyntheticVidVRDConfig(num_videos=n, seed=1), "train"))


def test_trajectory_batch_pads_every_video_exactly():
    videos = _videos()
    batch = TrajectoryBatch.collate(videos, **VOCAB)
    assert isinstance(batch, Batch)
    for b, v in enumerate(videos):
        n, f = v.boxes.shape[0], v.frame_count
        torch.testing.assert_close(batch.boxes[b, :n, :f], v.boxes)
        assert torch.equal(batch.mask[b, :n, :f], v.box_mask) and not batch.mask[b, n:].any()
        assert not batch.mask[b, :, f:].any() and int(batch.frames[b]) == f
        assert [TRAJECTORY_OBJECTS[i] for i in batch.labels[b, :n]] == list(v.categories)
        r = len(v.predicates)
        names = [TRAJECTORY_PREDICATES[i] for i in batch.rel_predicate[b, :r]]
        assert names == list(v.predicates) and int(batch.rel_mask[b].sum()) == r
        assert batch.rel_begin[b, :r].tolist() == v.begin.tolist()
    assert batch.targets() == {v.video_id: v.relation_instances() for v in videos}
    assert batch.truth == videos
    assert TrajectoryBatch.sizes(videos).tolist() == [[v.frame_count, v.boxes.shape[0]]
                                                      for v in videos]  # fmt: skip


def test_trajectory_batch_takes_input_and_ground_truth_pairs():
    videos = _videos(2)
    noisy = [dataclasses.replace(v, boxes=v.boxes + 1.0) for v in videos]
    batch = TrajectoryBatch.collate(list(zip(noisy, videos, strict=True)), **VOCAB)
    n, f = videos[0].boxes.shape[0], videos[0].frame_count
    torch.testing.assert_close(batch.boxes[0, :n, :f], noisy[0].boxes)  # the input's boxes
    assert batch.truth == videos  # the ground truth's relations
    assert batch.targets() == {v.video_id: v.relation_instances() for v in videos}
    moved = batch.to("meta")
    assert moved.boxes.device.type == "meta" and moved.truth is batch.truth


def test_trajectory_batch_errors_name_the_item():
    videos = _videos(2)
    with pytest.raises(TypeError, match=r"items\[1\]"):
        TrajectoryBatch.collate([videos[0], "not a video"], **VOCAB)
    with pytest.raises(ValueError, match="at least one"):
        TrajectoryBatch.collate([], **VOCAB)
    with pytest.raises(ValueError, match="objects: .* is not in the vocabulary"):
        TrajectoryBatch.collate(videos, objects=["nothing"], predicates=TRAJECTORY_PREDICATES)
    with pytest.raises(ValueError, match="predicates: .* is not in the vocabulary"):
        TrajectoryBatch.collate(videos, objects=TRAJECTORY_OBJECTS, predicates=["none"])
    wide = dataclasses.replace(videos[1], features=torch.zeros(*videos[1].features.shape[:-1], 3))
    with pytest.raises(ValueError, match="feature widths"):
        TrajectoryBatch.collate([videos[0], wide], **VOCAB)


def test_video_graph_keeps_the_batch_contract():
    graphs = list(SyntheticActionGenome(SyntheticConfig(num_videos=3, seed=0), "train"))
    assert isinstance(VideoGraph.collate(graphs), Batch)
    sizes = VideoGraph.sizes(graphs)
    assert sizes.tolist() == [list(g.mask.shape[1:3]) for g in graphs]
