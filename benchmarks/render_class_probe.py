"""How much of an object's class the rendered maps hold: the ceiling of a one-stage model's
object classification on `render_maps`.

For every annotated object of the synthetic benchmark, the mean of the object channel group
(`render_maps`' group 1) over the cells its box covers is the best a detector with a perfect box
could read; a linear classifier (softmax regression, Adam, full batch) trained on the training
split's objects and scored on the test split's gives the share of classes that reading recovers.
The maps project each object's 64-dim feature to `channels` numbers by a fixed random map, so
the ceiling rises with `channels` (the benchmark's look-alike classes keep it below 100%).

    python benchmarks/render_class_probe.py                       # channels 8 16 32 64
    python benchmarks/render_class_probe.py --quick               # CI size
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from dsgg_layers.data import SyntheticActionGenome, SyntheticConfig, render_maps


def box_means(config: SyntheticConfig, split: str, channels: int, size: int = 32):
    """``(objects, channels)`` box means of the object channels and the objects' classes."""
    feats, labels = [], []
    centre = (torch.arange(size) + 0.5) / size
    for g in SyntheticActionGenome(config, split=split):  # one video at a time: a script
        maps = render_maps(g, size=size, channels=channels)[0, :, channels : 2 * channels]
        b = g.normalized_boxes()[1][0]  # (T, P, 4) object boxes, normalised xyxy
        x_in = (centre >= b[..., 0:1]) & (centre <= b[..., 2:3])
        y_in = (centre >= b[..., 1:2]) & (centre <= b[..., 3:4])
        cover = (y_in.unsqueeze(-1) & x_in.unsqueeze(-2)).float()  # (T, P, H, W)
        area = cover.sum((-1, -2))
        mean = torch.einsum("tphw,tchw->tpc", cover, maps) / area.clamp(min=1)[..., None]
        valid = g.mask[0] & (area > 0)
        feats.append(mean[valid])
        labels.append(g.object_labels[0][valid])
    return torch.cat(feats), torch.cat(labels)


def probe(channels: int, config: SyntheticConfig, steps: int) -> tuple[float, float]:
    """Train and test accuracy of the linear probe."""
    x_tr, y_tr = box_means(config, "train", channels)
    x_te, y_te = box_means(config, "test", channels)
    lin = torch.nn.Linear(channels, 36)
    opt = torch.optim.Adam(lin.parameters(), lr=1e-2)
    for _ in range(steps):
        opt.zero_grad()
        F.cross_entropy(lin(x_tr), y_tr).backward()
        opt.step()
    with torch.no_grad():
        train = float((lin(x_tr).argmax(1) == y_tr).float().mean())
        test = float((lin(x_te).argmax(1) == y_te).float().mean())
    return train, test


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--channels", type=int, nargs="+", default=[8, 16, 32, 64])
    p.add_argument("--videos", type=int, default=None, help="training videos (default all)")
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--quick", action="store_true", help="CI size: 8 channels, 40 videos")
    args = p.parse_args()
    if args.quick:
        args.channels, args.videos, args.steps = [8], 40, 50
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = SyntheticConfig()
    if args.videos is not None:
        config = SyntheticConfig(num_videos=args.videos, num_test_videos=max(args.videos // 4, 1))
    print("channels a group | linear probe on the object's box mean: train / test accuracy")
    for c in args.channels:
        train, test = probe(c, config, args.steps)
        print(f"{c:16d} | {100 * train:.1f}% / {100 * test:.1f}%")


if __name__ == "__main__":
    main()
