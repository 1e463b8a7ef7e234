"""Rendering a :class:`~dsgg_layers.data.VideoGraph` into low-resolution feature maps.

One-stage (DETR-style) models read frames, not boxes and per-box features. To train them on
the synthetic benchmark without images, :func:`render_maps` paints every annotated pair into a
small grid, a stand-in for a backbone's output that trains on a CPU: three channel groups, the
subject's feature (projected to ``C`` channels by a fixed random map) averaged over the cells of
the subject box, the object's over the object box and the union feature over the union box, plus
Gaussian noise. The maps hold what the per-box features hold, but where, not for which box: a
model must find the boxes (its queries) before it can read them.
"""

from __future__ import annotations

import torch
from torch import Tensor

from dsgg_layers._checks import check_positive
from dsgg_layers.boxes import box_union
from dsgg_layers.data.graph import VideoGraph

__all__ = ["render_maps"]


def _projection(rows: int, cols: int, seed: int) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(rows, cols, generator=g) / rows**0.5


def render_maps(
    graph: VideoGraph,
    *,
    size: int = 32,
    channels: int = 8,
    noise: float = 0.1,
    seed: int = 0,
) -> Tensor:
    """Paint each frame's annotated pairs into a ``size x size`` grid of ``3 * channels`` maps.

    Channel group 0 holds the subjects' features, 1 the objects', 2 the union regions', each
    projected by a fixed random map (from ``seed``: the same for every video) and averaged over
    the pairs whose box covers a cell (a person shared by several pairs is painted once). A cell
    is covered when its centre lies in the box (boxes normalised by the image size). Padded
    pairs paint nothing; frames of a padded slot are 0 plus noise.

    Args:
        graph: the videos (ground-truth pairs, with features).
        size: the grid's side.
        channels: channels a group.
        noise: standard deviation of the added Gaussian noise (generator seeded by ``seed``).
        seed: the projections' and the noise's seed.

    Returns:
        ``(B, T, 3 * channels, size, size)`` float32.

    Raises:
        TypeError, ValueError: the graph has no features, or a size is not positive.

    Examples:
        >>> from dsgg_layers.data import SyntheticActionGenome, SyntheticConfig
        >>> g = SyntheticActionGenome(SyntheticConfig(num_videos=1, num_test_videos=1))[0]
        >>> render_maps(g, size=16, channels=4).shape[-3:]
        torch.Size([12, 16, 16])
    """
    check_positive(size, "size")
    check_positive(channels, "channels")
    if noise < 0:
        raise ValueError(f"noise: expected a value >= 0, got {noise}")
    feats = (graph.subject_features, graph.object_features, graph.union_features)
    if any(f is None for f in feats):
        raise ValueError("graph: expected subject, object and union features to render")
    subj, obj = graph.normalized_boxes()
    boxes = (subj, obj, box_union(subj, obj))
    centre = (torch.arange(size, dtype=torch.float32, device=graph.mask.device) + 0.5) / size
    mask = graph.mask
    maps = []
    for i, (box, f) in enumerate(zip(boxes, feats, strict=True)):
        x_in = (centre >= box[..., 0:1]) & (centre <= box[..., 2:3])  # (B, T, P, W)
        y_in = (centre >= box[..., 1:2]) & (centre <= box[..., 3:4])  # (B, T, P, H)
        cover = (y_in.unsqueeze(-1) & x_in.unsqueeze(-2) & mask[..., None, None]).float()
        proj = f.float() @ _projection(f.shape[-1], channels, seed * 3 + i).to(f.device)
        total = torch.einsum("btphw,btpc->btchw", cover, proj)
        count = cover.sum(2).unsqueeze(2)  # (B, T, 1, H, W)
        maps.append(total / count.clamp(min=1))
    out = torch.cat(maps, 2)
    if noise:
        g = torch.Generator().manual_seed(seed + 1)
        out = out + noise * torch.randn(out.shape, generator=g).to(out.device)
    return out
