"""render_maps: the synthetic videos painted into low-resolution maps for one-stage models."""

import pytest
import torch

from dsgg_layers.data import (
    SyntheticActionGenome,
    SyntheticConfig,
    VideoGraph,
    render_images,
    render_maps,
)
from dsgg_layers.data.render import _projection
from dsgg_layers.vocab import OBJECT_CLASSES


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
    # NaN (not only large values) at padded pairs never reaches a map
    nan = graph.replace(object_features=graph.object_features.masked_fill(
        ~graph.mask.unsqueeze(-1), float("nan")))  # fmt: skip
    assert (~graph.mask).any()
    torch.testing.assert_close(render_maps(nan, size=8, channels=2, noise=0.0), maps)
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="noise: expected a finite value >= 0"):
            render_maps(graph, noise=bad)
        with pytest.raises(ValueError, match="noise: expected a finite value >= 0"):
            render_images(graph, noise=bad)
    # labels at padded pairs are never read; a valid pair's label outside the classes is named
    junk = graph.replace(object_labels=graph.object_labels.masked_fill(~graph.mask, 999))
    torch.testing.assert_close(render_images(junk, size=8, noise=0.0),
                               render_images(graph, size=8, noise=0.0))  # fmt: skip
    wrong = graph.object_labels.clone()
    wrong[graph.mask.nonzero()[0].unbind()] = 999
    with pytest.raises(ValueError, match=r"graph.object_labels: expected classes in \[0, 36\)"):
        render_images(graph.replace(object_labels=wrong), size=8)
    with pytest.raises(ValueError, match="graph: expected subject, object and union features"):
        render_maps(graph.replace(union_features=None))


def test_render_images_paint_class_colours_person_on_top(graph):
    size = 32
    images = render_images(graph, size=size, noise=0.0)
    assert images.shape == (*graph.mask.shape[:2], 3, size, size)
    full = graph
    images = images[0]
    mask, labels = graph.mask[0], graph.object_labels[0]
    palette = torch.rand(len(OBJECT_CLASSES), 3, generator=torch.Generator().manual_seed(0))
    subj, obj = (b[0] for b in full.normalized_boxes())
    centre = (torch.arange(size) + 0.5) / size
    checked = 0
    for t in range(mask.shape[0]):
        for p in mask[t].nonzero().flatten().tolist():
            box, label = obj[t, p], int(labels[t, p])
            xs = [x for x in range(size) if box[0] <= centre[x] <= box[2]]
            inside = [(y, x) for y in range(size) for x in xs if box[1] <= centre[y] <= box[3]]
            for y, x in inside:
                in_person = (subj[t, p, 0] <= centre[x] <= subj[t, p, 2]) and (
                    subj[t, p, 1] <= centre[y] <= subj[t, p, 3]
                )
                others = [q for q in mask[t].nonzero().flatten().tolist() if q != p
                          and obj[t, q, 0] <= centre[x] <= obj[t, q, 2]
                          and obj[t, q, 1] <= centre[y] <= obj[t, q, 3]]  # fmt: skip
                if not in_person and not others:
                    torch.testing.assert_close(images[t, :, y, x], palette[label])
                    checked += 1
                elif in_person:
                    torch.testing.assert_close(images[t, :, y, x], palette[0])
    assert checked > 0
    nothing = render_images(graph.replace(mask=torch.zeros_like(graph.mask)), size=8, noise=0.0)
    assert (nothing == 0.5).all()  # no box: the grey background
    with pytest.raises(ValueError, match="noise"):
        render_images(graph, noise=-1.0)
