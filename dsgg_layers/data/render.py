"""Rendering a [`VideoGraph`][] into low-resolution feature maps.

One-stage (DETR-style) models read frames, not boxes and per-box features. To train them on
the synthetic benchmark without images, [`render_maps`][] paints every annotated pair into a
small grid, a stand-in for a backbone's output that trains on a CPU: three channel groups, the
subject's feature (projected to ``C`` channels by a fixed random map) averaged over the cells of
the subject box, the object's over the object box and the union feature over the union box, plus
Gaussian noise. The maps hold what the per-box features hold, but where, not for which box: a
model must find the boxes (its queries) before it can read them.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from dsgg_layers._checks import check_positive, values_readable
from dsgg_layers.boxes import box_union
from dsgg_layers.data.graph import VideoGraph
from dsgg_layers.vocab import OBJECT_CLASSES

__all__ = ["render_images", "render_maps"]


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
        TypeError, ValueError: the graph has no features, a size is not positive, or ``noise``
            is negative or not finite.

    Examples:
        >>> from dsgg_layers.data import SyntheticActionGenome, SyntheticConfig
        >>> g = SyntheticActionGenome(SyntheticConfig(num_videos=1, num_test_videos=1))[0]
        >>> render_maps(g, size=16, channels=4).shape[-3:]
        torch.Size([12, 16, 16])
    """
    check_positive(size, "size")
    check_positive(channels, "channels")
    _check_noise(noise)
    feats = (graph.subject_features, graph.object_features, graph.union_features)
    if any(f is None for f in feats):
        raise ValueError("graph: expected subject, object and union features to render")
    subj, obj = graph.normalized_boxes()
    boxes = (subj, obj, box_union(subj, obj))
    B, T = graph.mask.shape[:2]
    maps = torch.empty(B, T, 3 * channels, size, size, device=graph.mask.device)
    for i, (box, f) in enumerate(zip(boxes, feats, strict=True)):  # one group's slice each
        proj = f.float() @ _projection(f.shape[-1], channels, seed * 3 + i).to(f.device)
        _paint(box, proj, graph.mask, size, out=maps[:, :, i * channels : (i + 1) * channels])
    return _noisy(maps, noise, seed)


def _paint(
    boxes: Tensor, values: Tensor, mask: Tensor, size: int, *, out: Tensor | None = None
) -> Tensor:
    """``(B, T, C, size, size)`` (written into ``out`` when given): each cell the mean of
    ``values (B, T, P, C)`` over the valid boxes ``(B, T, P, 4)`` (normalised ``xyxy``) whose box
    holds the cell's centre; 0 where none."""
    centre = (torch.arange(size, dtype=torch.float32, device=mask.device) + 0.5) / size
    x_in = (centre >= boxes[..., 0:1]) & (centre <= boxes[..., 2:3])  # (B, T, P, W)
    y_in = (centre >= boxes[..., 1:2]) & (centre <= boxes[..., 3:4])  # (B, T, P, H)
    cover = (y_in.unsqueeze(-1) & x_in.unsqueeze(-2) & mask[..., None, None]).float()
    values = values.masked_fill(~mask[..., None], 0.0)  # padded pairs' garbage (NaN) never read
    total = torch.einsum("btphw,btpc->btchw", cover, values)
    return torch.div(total, cover.sum(2).unsqueeze(2).clamp(min=1), out=out)


def _check_noise(noise: float) -> None:
    if isinstance(noise, bool) or not isinstance(noise, int | float) or not 0 <= noise < math.inf:
        raise ValueError(f"noise: expected a finite value >= 0, got {noise!r}")


def _noisy(x: Tensor, noise: float, seed: int) -> Tensor:
    """``x + noise * N(0, 1)`` in place (the same draw for every call of a shape and seed)."""
    if not noise:
        return x
    g = torch.Generator().manual_seed(seed + 1)
    return x.add_(torch.randn(x.shape, generator=g).to(x.device).mul_(noise))


def render_images(
    graph: VideoGraph, *, size: int = 64, noise: float = 0.05, seed: int = 0
) -> Tensor:
    """Paint each frame's annotated boxes into ``size x size`` RGB images, for a CNN backbone.

    Each object class has a fixed colour (from ``seed``; the person's is the subject's), painted
    into its box: the object boxes first, the person's box over them where they overlap (cells
    where several objects overlap get their mean colour), a grey background, plus Gaussian
    noise. Unlike [`render_maps`][] the images hold only classes and places, what a detector
    sees; the relations must be inferred from the geometry over the frames.

    Args:
        graph: the videos (ground-truth pairs).
        size: the images' side.
        noise: standard deviation of the added noise.
        seed: the colours' and the noise's seed.

    Returns:
        ``(B, T, 3, size, size)`` float32 in about ``[0, 1]``.

    Raises:
        ValueError: ``size`` is not positive, ``noise`` is negative or not finite, or (on the
            CPU) an object label at a valid pair is not a class.

    Examples:
        >>> from dsgg_layers.data import SyntheticActionGenome, SyntheticConfig
        >>> g = SyntheticActionGenome(SyntheticConfig(num_videos=1, num_test_videos=1))[0]
        >>> render_images(g, size=32).shape[-3:]
        torch.Size([3, 32, 32])
    """
    check_positive(size, "size")
    _check_noise(noise)
    gen = torch.Generator().manual_seed(seed)
    palette = torch.rand(max(len(OBJECT_CLASSES), 1), 3, generator=gen).to(graph.mask.device)
    subj, obj = graph.normalized_boxes()
    mask = graph.mask
    labels = graph.object_labels.masked_fill(~mask, 0)  # padded pairs' labels never read
    if values_readable(labels) and labels.numel() and not 0 <= int(labels.min()) <= int(
        labels.max()) < len(palette):  # fmt: skip
        raise ValueError(f"graph.object_labels: expected classes in [0, {len(palette)}) at the "
                         f"valid pairs, got {int(labels.min())}..{int(labels.max())}")  # fmt: skip
    objects = _paint(obj, palette[labels.clamp(0, len(palette) - 1)], mask, size)
    person = _paint(subj, palette[0].expand(*mask.shape, 3), mask, size)
    covered = lambda boxes: _paint(boxes, torch.ones(*mask.shape, 1, device=mask.device),  # noqa: E731
                                   mask, size) > 0  # fmt: skip
    has_obj, has_person = covered(obj), covered(subj)
    image = torch.full_like(objects, 0.5)
    image = torch.where(has_obj, objects, image)
    image = torch.where(has_person, person, image)
    return _noisy(image, noise, seed)
