"""Flat rows <-> pair tracks: lossless, matches a loop reference, handles empty frames."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from dsgg_layers import (
    TrackIndex,
    build_track_index,
    flat_to_tracks,
    person_object_pairs,
    tracks_to_flat,
)

# Unique (video, frame, track) triples with sparse, non-contiguous ids, in random order.
triples = st.lists(
    st.tuples(
        st.sampled_from([3, 11, 40, 41]),
        st.integers(0, 30),
        st.sampled_from([-2, 0, 5, 6, 100]),
    ),
    unique=True,
    max_size=40,
).flatmap(lambda rows: st.permutations(rows))


def ids(rows):
    cols = list(zip(*rows, strict=True)) if rows else ([], [], [])
    return tuple(torch.tensor(c, dtype=torch.long) for c in cols)


def loop_reference(rows):
    """Grid slot of each row by plain Python: ranks of sorted unique ids."""
    videos = sorted({v for v, _, _ in rows})
    frames = {v: sorted({f for w, f, _ in rows if w == v}) for v in videos}
    tracks = {v: sorted({k for w, _, k in rows if w == v}) for v in videos}
    slots = [(videos.index(v), frames[v].index(f), tracks[v].index(k)) for v, f, k in rows]
    T = max((len(f) for f in frames.values()), default=0)
    P = max((len(k) for k in tracks.values()), default=0)
    return slots, (len(videos), T, P), frames, tracks


@given(rows=triples)
def test_round_trip_and_loop_reference(rows):
    video, frame, track = ids(rows)
    index = build_track_index(video, frame, track)
    slots, shape, frames, tracks = loop_reference(rows)
    assert index.shape == shape
    assert (
        list(zip(index.batch.tolist(), index.time.tolist(), index.track.tolist(), strict=True))
        == slots
    )
    for b, v in enumerate(sorted(frames)):
        assert index.video_ids[b] == v
        n_f, n_k = len(frames[v]), len(tracks[v])
        assert index.frame_ids[b, :n_f].tolist() == frames[v]
        assert index.frame_mask[b].tolist() == [True] * n_f + [False] * (shape[1] - n_f)
        assert index.track_ids[b, :n_k].tolist() == tracks[v]
        assert index.track_mask[b].tolist() == [True] * n_k + [False] * (shape[2] - n_k)

    feats = torch.randn(len(rows), 3, 2)
    grid, mask = flat_to_tracks(feats, index)
    assert grid.shape == (*shape, 3, 2)
    assert int(mask.sum()) == len(rows)
    assert (grid[~mask] == 0).all()
    assert torch.equal(tracks_to_flat(grid, index), feats)
    # and the other way round: a grid that is 0 off the mask survives grid -> flat -> grid
    again, _ = flat_to_tracks(tracks_to_flat(grid, index), index)
    assert torch.equal(again, grid)


def test_empty_frames_and_videos_get_slots():
    video = torch.tensor([1, 1, 1])
    frame = torch.tensor([10, 30, 30])
    track = torch.tensor([7, 7, 8])
    frames = (torch.tensor([1, 1, 1, 2]), torch.tensor([10, 20, 30, 5]))  # frame 20, video 2
    index = build_track_index(video, frame, track, frames=frames)
    assert index.shape == (2, 3, 2)
    assert index.frame_ids.tolist() == [[10, 20, 30], [5, 0, 0]]
    assert index.frame_mask.tolist() == [[True, True, True], [True, False, False]]
    assert index.track_mask.tolist() == [[True, True], [False, False]]
    grid, mask = flat_to_tracks(torch.tensor([1.0, 2.0, 3.0]), index)
    assert mask[0, 1].sum() == 0 and mask[1].sum() == 0  # the empty frame and the empty video
    assert grid.tolist() == [[[1.0, 0.0], [0.0, 0.0], [2.0, 3.0]], [[0.0, 0.0]] * 3]


def test_no_rows_at_all():
    empty = torch.zeros(0, dtype=torch.long)
    index = build_track_index(empty, empty, empty)
    assert index.shape == (0, 0, 0)
    grid, mask = flat_to_tracks(torch.zeros(0, 8), index)
    assert grid.shape == (0, 0, 0, 8) and mask.shape == (0, 0, 0)
    assert tracks_to_flat(grid, index).shape == (0, 8)
    # only empty frames
    index = build_track_index(empty, empty, empty, frames=(torch.tensor([4]), torch.tensor([9])))
    assert index.shape == (1, 1, 0)
    assert flat_to_tracks(torch.zeros(0, 2), index)[0].shape == (1, 1, 0, 2)


def test_gradients_flow_both_ways_and_not_from_padding():
    index = build_track_index(
        torch.tensor([0, 0, 1]), torch.tensor([0, 1, 0]), torch.tensor([0, 1, 0])
    )
    x = torch.randn(3, 4, requires_grad=True)
    grid, mask = flat_to_tracks(x, index)
    (grid * torch.arange(grid.numel()).view_as(grid)).sum().backward()
    want = torch.arange(grid.numel()).view_as(grid).float()[mask]
    torch.testing.assert_close(x.grad, want)

    g = torch.randn(*index.shape, 4, requires_grad=True)
    tracks_to_flat(g, index).sum().backward()
    assert (g.grad[mask] == 1).all() and (g.grad[~mask] == 0).all()
    assert torch.autograd.gradcheck(
        lambda y: flat_to_tracks(y, index)[0],
        (torch.randn(3, 2, dtype=torch.float64, requires_grad=True),),
    )


def test_from_mask_round_trip():
    mask = torch.rand(2, 4, 3) > 0.5
    index = TrackIndex.from_mask(mask)
    assert torch.equal(index.mask, mask)
    grid = torch.randn(2, 4, 3, 5).masked_fill(~mask.unsqueeze(-1), 0)
    flat = tracks_to_flat(grid, index)
    assert torch.equal(flat, grid[mask])
    assert torch.equal(flat_to_tracks(flat, index)[0], grid)


def test_duplicate_rows_are_an_error():
    with pytest.raises(ValueError, match="rows 0 and 2 both have video 5, frame 1, track 3"):
        build_track_index(torch.tensor([5, 5, 5]), torch.tensor([1, 2, 1]), torch.tensor([3, 3, 3]))


def test_errors():
    long3 = torch.tensor([0, 0, 0])
    with pytest.raises(
        TypeError, match=r"frame_ids: expected an integer tensor, got dtype torch\.float32"
    ):
        build_track_index(long3, torch.zeros(3), long3)
    with pytest.raises(
        ValueError,
        match=r"track_ids: expected shape \(N,\) with N=3 \(from video_ids\), got \(2,\)",
    ):
        build_track_index(long3, long3, torch.tensor([0, 1]))
    with pytest.raises(TypeError, match="frames: expected a pair"):
        build_track_index(long3, long3, torch.tensor([0, 1, 2]), frames=torch.tensor([0]))
    index = build_track_index(long3, long3, torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match=r"x: expected shape \(3, \.\.\.\), got \(4, 2\)"):
        flat_to_tracks(torch.zeros(4, 2), index)
    with pytest.raises(
        ValueError, match=r"grid: expected shape \(1, 1, 3, \.\.\.\), got \(1, 2, 3\)"
    ):
        tracks_to_flat(torch.zeros(1, 2, 3), index)
    with pytest.raises(TypeError, match="index: expected a TrackIndex, got dict"):
        tracks_to_flat(torch.zeros(1, 1, 3), {})


# --- person-object pairs ---------------------------------------------------------------------


def detections():
    """Two videos. Video 0: frame 0 person+cup+door; frame 5 person+cup; frame 9 cup only.
    Video 1: frame 2 person only."""
    boxes = torch.tensor(
        [
            [0.0, 0, 10, 10],  # 0 person v0 f0
            [5.0, 5, 20, 20],  # 1 cup    v0 f0
            [30.0, 0, 40, 5],  # 2 door   v0 f0
            [1.0, 1, 11, 11],  # 3 person v0 f5
            [6.0, 6, 21, 21],  # 4 cup    v0 f5
            [6.0, 6, 22, 22],  # 5 cup    v0 f9 (no person)
            [0.0, 0, 5, 5],  # 6 person v1 f2
        ]
    )
    labels = torch.tensor([0, 10, 12, 0, 10, 10, 0])
    video = torch.tensor([0, 0, 0, 0, 0, 0, 1])
    frame = torch.tensor([0, 0, 0, 5, 5, 9, 2])
    track = torch.tensor([0, 1, 2, 0, 1, 1, 0])
    return boxes, labels, video, frame, track


def test_person_object_pairs():
    boxes, labels, video, frame, track = detections()
    pt = person_object_pairs(boxes, labels, video, frame, track)
    assert pt.pairs.tolist() == [[0, 1], [0, 2], [3, 4]]
    # frames with no pair still get a slot; the person-only video is all padding
    assert pt.frame_times.tolist() == [[0, 5, 9], [2, 0, 0]]
    assert pt.mask.tolist() == [
        [[True, True], [True, False], [False, False]],
        [[False, False], [False, False], [False, False]],
    ]
    assert pt.object_labels[0].tolist() == [[10, 12], [10, -1], [-1, -1]]
    assert pt.subject_index[0, :, 0].tolist() == [0, 3, -1]
    assert pt.object_index[0, :, 0].tolist() == [1, 4, -1]
    torch.testing.assert_close(pt.subject_boxes[0, 1, 0], boxes[3])
    torch.testing.assert_close(pt.object_boxes[0, 0, 1], boxes[2])
    torch.testing.assert_close(pt.union_boxes[0, 0, 1], torch.tensor([0.0, 0, 40, 10]))
    assert (pt.union_boxes[~pt.mask] == 0).all() and (pt.subject_boxes[~pt.mask] == 0).all()
    # the flat pairs and the grid agree through the index
    torch.testing.assert_close(tracks_to_flat(pt.object_boxes, pt.index), boxes[pt.pairs[:, 1]])


def test_person_object_pairs_with_two_persons():
    boxes, labels, video, frame, track = detections()
    boxes = torch.cat((boxes, torch.tensor([[50.0, 50, 60, 60]])))
    labels = torch.cat((labels, torch.tensor([0])))
    video, frame = torch.cat((video, torch.tensor([0]))), torch.cat((frame, torch.tensor([0])))
    track = torch.cat((track, torch.tensor([9])))
    with pytest.raises(ValueError, match="video 0, frame 0 has 2 detections of person_label=0"):
        person_object_pairs(boxes, labels, video, frame, track)
    scores = torch.tensor([0.5, 1, 1, 1, 1, 1, 1, 0.9])
    pt = person_object_pairs(boxes, labels, video, frame, track, scores=scores)
    assert pt.pairs[:2].tolist() == [[7, 1], [7, 2]]  # the higher-scoring person is the subject


def test_person_object_pairs_empty():
    empty = torch.zeros(0, dtype=torch.long)
    pt = person_object_pairs(torch.zeros(0, 4), empty, empty, empty, empty)
    assert pt.mask.shape == (0, 0, 0) and pt.pairs.shape == (0, 2)
