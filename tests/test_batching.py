"""Length bucketing, pair-track collation and splitting, and the training batch sampler."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dsgg_layers import (
    BucketBatchSampler,
    bucket_batches,
    collate_tracks,
    padding_fraction,
    split_tracks,
    track_sizes,
)

sizes_strategy = st.lists(st.tuples(st.integers(0, 40), st.integers(0, 8)), min_size=1, max_size=60)


@settings(max_examples=60, deadline=None)
@given(
    sizes=sizes_strategy, max_videos=st.integers(1, 9), max_cells=st.none() | st.integers(1, 400)
)
def test_bucket_batches_partition_and_respect_limits(sizes, max_videos, max_cells):
    batches = bucket_batches(sizes, max_videos=max_videos, max_cells=max_cells)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(len(sizes)))  # every video exactly once
    for b in batches:
        assert 1 <= len(b) <= max_videos
        T = max(sizes[i][0] for i in b)
        P = max(sizes[i][1] for i in b)
        if max_cells is not None and len(b) > 1:
            assert len(b) * T * P <= max_cells
    keys = [(sizes[i][1], sizes[i][0]) for i in flat]
    assert keys == sorted(keys)  # increasing (P, T)


def random_sizes(n, seed):
    g = torch.Generator().manual_seed(seed)
    frames = torch.randint(3, 60, (n,), generator=g)
    return torch.stack((frames, torch.randint(1, 9, (n,), generator=g)), 1)


def test_bucketing_pads_far_less_than_arrival_order():
    sizes = random_sizes(2000, 0)
    naive = [list(range(i, min(i + 32, 2000))) for i in range(0, 2000, 32)]
    bucketed = bucket_batches(sizes, max_videos=32)
    # measured: 0.17 bucketed, 0.70 in arrival order
    assert padding_fraction(sizes, bucketed) < 0.25 < 0.6 < padding_fraction(sizes, naive)
    assert padding_fraction(sizes, [[0]]) == 0.0


def test_sampler_shuffles_per_epoch_and_is_reproducible():
    sizes = random_sizes(2000, 1)
    sampler = BucketBatchSampler(sizes, max_videos=32, seed=3)
    epoch0 = list(sampler)
    assert sorted(i for b in epoch0 for i in b) == list(range(2000))
    assert list(sampler) == epoch0  # same epoch, same batches
    sampler.set_epoch(1)
    epoch1 = list(sampler)
    assert epoch1 != epoch0 and sorted(i for b in epoch1 for i in b) == list(range(2000))
    assert len(sampler) == len(epoch1)
    # batches stay tight although they are shuffled (measured 0.27; arrival order 0.70)
    assert padding_fraction(sizes, epoch1) < 0.35
    fixed = BucketBatchSampler(sizes, max_videos=16, shuffle=False)
    assert list(fixed) == bucket_batches(sizes, max_videos=16)


def test_sampler_ranks_split_the_batches():
    sizes = [(t, 2) for t in range(3, 53)]
    ranks = [
        list(BucketBatchSampler(sizes, max_videos=4, num_replicas=3, rank=r)) for r in range(3)
    ]
    assert len({len(r) for r in ranks}) == 1  # the same number of steps on every rank
    seen = [i for r in ranks for b in r for i in b]
    assert len(seen) == len(set(seen))  # no video on two ranks
    with pytest.raises(ValueError, match="rank: expected 0 <= rank < num_replicas=2, got 2"):
        BucketBatchSampler(sizes, num_replicas=2, rank=2)
    loader = torch.utils.data.DataLoader(
        list(range(50)), batch_sampler=ranks and BucketBatchSampler(sizes, max_videos=4)
    )
    assert sum(len(b) for b in loader) == 50


def test_collate_and_split_round_trip():
    g = torch.Generator().manual_seed(0)
    shapes = [(3, 1), (7, 4), (1, 2), (5, 0)]
    xs = [torch.randn(T, P, 6, generator=g) for T, P in shapes]
    ms = [torch.rand(T, P, generator=g) > 0.3 for T, P in shapes]
    x, mask = collate_tracks(xs, ms, fill=-1.0)
    assert x.shape == (4, 7, 4, 6) and mask.shape == (4, 7, 4)
    assert mask.sum() == sum(int(m.sum()) for m in ms)
    assert (x[0, 3:] == -1).all()
    for part, original in zip(split_tracks(x, shapes), xs, strict=True):
        assert torch.equal(part, original)
    for part, original in zip(split_tracks(mask, shapes), ms, strict=True):
        assert torch.equal(part, original)


def test_track_sizes_recover_the_collated_sizes():
    g = torch.Generator().manual_seed(1)
    shapes = [(3, 1), (7, 4), (1, 2), (5, 3), (2, 2)]
    ms = []
    for T, P in shapes:
        m = torch.rand(T, P, generator=g) > 0.5
        m[-1, 0] = m[0, -1] = True  # the last frame and the last track exist
        ms.append(m)
    _x, mask = collate_tracks([torch.zeros(*m.shape, 1) for m in ms], ms)
    assert track_sizes(mask).tolist() == [list(s) for s in shapes]
    # frame_mask: a video's real frames, also where no pair exists in the last ones
    frame_mask = mask.any(2)
    frame_mask[0, :6] = True
    mask[0, 2:] = False
    mask[0, :2, 0] = True
    assert track_sizes(mask, frame_mask)[0].tolist() == [6, 1]
    assert track_sizes(mask)[0].tolist() == [2, 1]
    assert track_sizes(torch.zeros(3, 0, 2, dtype=torch.bool)).tolist() == [[0, 0]] * 3
    assert track_sizes(torch.zeros(0, 4, 2, dtype=torch.bool)).shape == (0, 2)


def test_errors():
    with pytest.raises(TypeError, match="mask: expected a bool tensor"):
        track_sizes(torch.zeros(2, 3, 4))
    with pytest.raises(ValueError, match=r"frame_mask: expected shape \(B, T\) with T=3"):
        track_sizes(torch.zeros(2, 3, 4, dtype=torch.bool), torch.ones(2, 5, dtype=torch.bool))
    with pytest.raises(
        ValueError, match=r"sizes: expected \(N, 2\) \(frames, pairs\) per video, got shape \(3,\)"
    ):
        bucket_batches([1, 2, 3])
    with pytest.raises(ValueError, match="max_videos: expected a value > 0, got 0"):
        bucket_batches([(1, 1)], max_videos=0)
    with pytest.raises(ValueError, match="tensors: expected at least one tensor"):
        collate_tracks([], [])
    with pytest.raises(ValueError, match="masks: expected 1 masks"):
        collate_tracks([torch.zeros(2, 1, 3)], [])
    with pytest.raises(ValueError, match=r"masks\[0\]: expected shape \(2, 1\)"):
        collate_tracks([torch.zeros(2, 1, 3)], [torch.zeros(2, 2, dtype=torch.bool)])
    with pytest.raises(ValueError, match=r"tensors\[1\]: expected shape \(T, P, 3\)"):
        collate_tracks([torch.zeros(2, 1, 3), torch.zeros(2, 1, 4)],
                       [torch.zeros(2, 1, dtype=torch.bool)] * 2)  # fmt: skip
    with pytest.raises(ValueError, match="sizes: a video is larger than the batch grid"):
        split_tracks(torch.zeros(1, 2, 2), [(3, 1)])
