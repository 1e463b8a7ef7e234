"""render_maps: the synthetic videos painted into low-resolution maps for one-stage models."""

import pytest
import torch

from dsgg_layers.data import SyntheticActionGenome, SyntheticConfig, VideoGraph, render_maps
from dsgg_layers.data.render import _projection


@pytest.fixture(scope="module")
def graph():
    data = SyntheticActionGenome(SyntheticConfig(num_videos=3, num_test_videos=1))
    return VideoGraph.collate([data[0], data[1], data[2]])


def test_cells_hold_the_mean_projected_feature_of_the_boxes_covering_them(graph):
    maps = render_maps(graph, size=16, channels=4, noise=0.0)
    B, T = graph.mask.shape[:2]
    assert maps.shape == (B, T, 12, 16, 16)
    _, obj = graph.normalized_boxes()
    proj = graph.object_features @ _projection(graph.object_features.shape[-1], 4, 1)
    b, t = 0, 0
    for y in range(16):
        for x in range(16):
            cx, cy = (x + 0.5) / 16, (y + 0.5) / 16
            inside = [p for p in range(graph.mask.shape[2]) if graph.mask[b, t, p]
                      and obj[b, t, p, 0] <= cx <= obj[b, t, p, 2]
                      and obj[b, t, p, 1] <= cy <= obj[b, t, p, 3]]  # fmt: skip
            want = proj[b, t, inside].mean(0) if inside else torch.zeros(4)
            torch.testing.assert_close(maps[b, t, 4:8, y, x], want, atol=1e-5, rtol=1e-5)


def test_padding_paints_nothing_and_noise_is_seeded(graph):
    maps = render_maps(graph, size=8, channels=2, noise=0.0)
    dirty = graph.replace(object_features=graph.object_features.masked_fill(
        ~graph.mask.unsqueeze(-1), 1e6))  # fmt: skip
    torch.testing.assert_close(render_maps(dirty, size=8, channels=2, noise=0.0), maps)
    a = render_maps(graph, size=8, channels=2, noise=0.5, seed=3)
    assert torch.equal(a, render_maps(graph, size=8, channels=2, noise=0.5, seed=3))
    assert not torch.equal(a, render_maps(graph, size=8, channels=2, noise=0.5, seed=4))
    with pytest.raises(ValueError, match="noise: expected a value >= 0"):
        render_maps(graph, noise=-1.0)
    with pytest.raises(ValueError, match="graph: expected subject, object and union features"):
        render_maps(graph.replace(union_features=None))
