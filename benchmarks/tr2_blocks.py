"""TR²'s message token, text guidance and sentence classifier: their cost over the plain block.

Workload: the annotated pair tracks of the synthetic benchmark at the size of Action Genome's
test set (PredCls, about 2.2 pairs a frame), length-bucketed as MoSA's benchmark does; random
pair features of width d (the public code's relation feature is 1936 wide: CLIP union 512,
subject and object 512 each, two GloVe 200) and the benchmark's labels and object classes.

Side by side in one run, a training step (forward, loss, backward) and inference:

- the plain block: `SpatialTemporalEncoder` (1 spatial + 3 temporal layers, 8 heads, FFN 2048,
  rank positions) and one linear head a predicate group;
- + `MessageToken` (the heads read `2 d`);
- + the token and `TemporalDifferenceGuidance` (difference mode, one projection a group onto
  512-wide sentence tables; training only);
- + the token and `SentenceClassifier` heads (against the `(36, C, 512)` sentence tables);
- all three (TR² as its public code trains it);

and the ratio of each to the plain block.

    python benchmarks/tr2_blocks.py                 # CPU, 2 threads (60 videos, d = 1936)
    python benchmarks/tr2_blocks.py --device cuda   # the whole workload
    python benchmarks/tr2_blocks.py --quick         # CI size
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from dsgg_layers import (
    MessageToken,
    SentenceClassifier,
    SpatialTemporalEncoder,
    TemporalDifferenceGuidance,
    bucket_batches,
    track_sizes,
)
from dsgg_layers.data import SyntheticActionGenome, SyntheticConfig
from dsgg_layers.vocab import OBJECT_CLASSES, PREDICATE_GROUPS

try:  # run as a script (benchmarks/ on the path) or imported by gpu_suite.py
    from mosa_blocks import variant_rows
except ImportError:  # pragma: no cover
    from benchmarks.mosa_blocks import variant_rows

TEXT = 512  # CLIP ViT-B/32's text width


def workload(videos: int, d: int, max_videos: int, device, seed: int):
    """Batches ``(x, mask, relations, object_labels)`` on the benchmark's annotated tracks."""
    cfg = SyntheticConfig.action_genome_test_scale(num_test_videos=videos, seed=seed)
    g = SyntheticActionGenome(cfg, split="test", mode="predcls").batch()
    sizes = track_sizes(g.mask, g.frame_mask)
    out = []
    for i, b in enumerate(bucket_batches(sizes, max_videos=max_videos)):
        T, P = (int(v) for v in sizes[b].amax(0))
        mask = g.mask[b, :T, :P]
        gen = torch.Generator().manual_seed(seed + i)
        x = torch.randn(*mask.shape, d, generator=gen).masked_fill(~mask.unsqueeze(-1), 0)
        rel, labels = g.relations[b, :T, :P].bool(), g.object_labels[b, :T, :P].clamp(min=0)
        out.append(tuple(t.to(device) for t in (x, mask, rel, labels)))
    return out, int(g.frame_mask.sum()), int(g.mask.sum())


class Variant(torch.nn.Module):
    """The plain block with any of TR²'s parts; ``forward`` gives the logits and, in training
    with guidance, the guidance losses."""

    def __init__(self, d: int, ff: int, token: bool, guidance: bool, sentence: bool) -> None:
        super().__init__()
        self.block = SpatialTemporalEncoder(d, 8, ff, spatial_layers=1, temporal_layers=3,
                                            dropout=0.0, positions="rank")  # fmt: skip
        self.token = MessageToken(d) if token else None
        width = 2 * d if token else d
        gen = torch.Generator().manual_seed(0)
        tables = {
            g: F.normalize(torch.randn(len(OBJECT_CLASSES), s.stop - s.start, TEXT, generator=gen),
                           dim=-1)
            for g, s in PREDICATE_GROUPS.items()
        }  # fmt: skip
        self.sentence = sentence
        self.heads = torch.nn.ModuleDict(
            {g: SentenceClassifier(width, t) if sentence else torch.nn.Linear(width, t.shape[1])
             for g, t in tables.items()}
        )  # fmt: skip
        self.guidance = TemporalDifferenceGuidance(width, tables) if guidance else None

    def forward(self, x, mask, rel, labels):
        r = self.block(x, mask)
        if self.token is not None:
            r = self.token(r, mask)
        if self.sentence:
            logits = torch.cat([h(r, labels, mask) for h in self.heads.values()], -1)
        else:
            logits = torch.cat([h(r) for h in self.heads.values()], -1)
        loss = logits.float().sigmoid().mean()  # stands in for the predicate losses
        if self.training and self.guidance is not None:
            groups = {g: rel[..., s] for g, s in PREDICATE_GROUPS.items()}
            loss = loss + sum(self.guidance(r, mask, groups, labels).values())
        return loss


VARIANTS = {
    "plain block + linear heads": dict(token=False, guidance=False, sentence=False),
    "+ message token": dict(token=True, guidance=False, sentence=False),
    "+ token + guidance": dict(token=True, guidance=True, sentence=False),
    "+ token + sentence classifier": dict(token=True, guidance=False, sentence=True),
    "TR² (token + guidance + sentence classifier)": dict(token=True, guidance=True, sentence=True),
}


def run(
    device: torch.device,
    *,
    quick: bool = False,
    videos: int | None = None,
    max_videos: int = 64,
    threads: int = 2,
    seed: int = 0,
) -> str:
    """Run the benchmark and return its Markdown report (also used by ``gpu_suite.py``)."""
    d, ff = (128, 256) if quick else (1936, 2048)
    videos = videos or (40 if quick else 1737 if device.type == "cuda" else 60)
    where = (
        torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {threads} threads"
    )
    torch.manual_seed(seed)
    models = {name: Variant(d, ff, **kw).to(device) for name, kw in VARIANTS.items()}
    plain = next(iter(models.values()))
    for m in models.values():  # the same block inside: only TR²'s parts differ
        m.block.load_state_dict(plain.block.state_dict())
    work, frames, pairs = workload(videos, d, max_videos, device, seed)
    lines = [
        f"# TR² blocks; {where}; torch {torch.__version__}",
        f"\nPredCls tracks of {videos} videos ({frames} frames, {pairs} pair-frames), "
        f"d = {d} (FFN {ff}), text width {TEXT}, fp32, best of 2 after a warm-up.\n",
        "| variant | params (M) | inference (s) | / plain | training step (s) | / plain |",
        "| --- | --- | --- | --- | --- | --- |",
    ]

    def train_step(m):
        for batch in work:
            m(*batch).backward()
        m.zero_grad(set_to_none=True)

    lines += variant_rows(models, lambda m: [m(*b) for b in work], train_step, device)
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="CI size: 40 videos, width 128")
    p.add_argument("--videos", type=int, default=None, help="default: cpu 60, cuda 1737")
    p.add_argument("--max-videos", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(run(torch.device(args.device), quick=args.quick, videos=args.videos,
              max_videos=args.max_videos, threads=args.threads, seed=args.seed))  # fmt: skip


if __name__ == "__main__":
    main()
