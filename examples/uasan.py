"""UASAN reference assembly: open-vocabulary video relation detection on trajectories.

UASAN (*Open-Vocabulary Video Scene Graph Generation via Union-aware Semantic Alignment*) on the
synthetic VidVRD-format benchmark, trained on the **base** predicates only: 30-frame segments,
every ordered pair (`segment_pairs`) -> concept tokens (`VisualRefiner`) of each trajectory and
union region, two motion tokens (`trajectory_pair_motion`) -> the relation head
(`UnionAwareRelationHead`, Eq. 5-11, or the code's `UnionRelationHead`) -> cos / tau against
prompt-learned predicate embeddings (`PromptLearner` over the offline `WordTower`; UASAN: BLIP-2).
Losses: L_traj, L_union, L_fg (sigmoid focal, as the code; L_dis needs BLIP-2: off). Segment
triplets -> video instances (`associate_relations`) -> detection and tagging on the **novel**
predicates and on **all**; PredCls, SGCls, SGDet (tracker-like 3 px box noise). See the docs.

    python examples/uasan.py                  # UASAN, all three tasks
    python examples/uasan.py --variant a      # Table 4's rows: a, b, c, full; c-parts
    python examples/uasan.py --head code      # the public code's relation head
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dsgg_layers import (
    GroupedPromptLearner,
    OpenCLIPTextTower,
    PromptLearner,
    UnionAwareRelationHead,
    UnionRelationHead,
    VisualRefiner,
    WordTower,
    sigmoid_focal_loss,
    trajectory_pair_motion,
)
from dsgg_layers.data import (
    TRAJECTORY_PREDICATE_SPLITS,
    TRAJECTORY_WORDS,
    SyntheticVidVRD,
    SyntheticVidVRDConfig,
    TrajectoryBatch,
    segment_pairs,
)
from dsgg_layers.data.trajectory import TRAJECTORY_OBJECTS, TRAJECTORY_PREDICATES, predicate_words
from dsgg_layers.metrics import OpenVocabularyEvaluator, associate_relations
from dsgg_layers.text import StaticEmbeddingTower

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the shared harness, beside this file
import harness
from ag_task import Data
from harness import Assembly

SEG, STRIDE = 30, 15
BASE, NOVEL = TRAJECTORY_PREDICATE_SPLITS["base"], TRAJECTORY_PREDICATE_SPLITS["novel"]
BASE_COLS = torch.tensor([list(TRAJECTORY_PREDICATES).index(p) for p in BASE])
collate = partial(TrajectoryBatch.collate, objects=TRAJECTORY_OBJECTS,
                  predicates=TRAJECTORY_PREDICATES)  # fmt: skip


def load_data(args: argparse.Namespace) -> Data:
    sizes = (8, 4) if args.quick else (args.train_videos or 120, args.test_videos)
    cfg = SyntheticVidVRDConfig(*sizes, seed=args.data_seed)
    train = [(v, v) for v in SyntheticVidVRD(cfg, "train")]
    test_videos = list(SyntheticVidVRD(cfg, "test"))
    tracked = [(v.with_box_noise(3.0, i), v) for i, v in enumerate(test_videos)]  # a tracker's
    same = [(v, v) for v in test_videos]
    test = {t: v for t, v in (("predcls", same), ("sgcls", same), ("sgdet", tracked))
            if t in args.tasks}  # fmt: skip
    return Data(train, test, torch.zeros(0), torch.zeros(len(TRAJECTORY_PREDICATES)))


class UASAN(nn.Module):
    """UASAN on trajectory segments (losses in training, predictions in evaluation); the flags'
    options: ``variant`` Table 4's rows a, b, c (c-parts: with B's head), full; ``head`` paper
    (Eq. 5-11) or code (`UnionRelationHead`); ``chance``; ``cover_tail``; ``novel_words`` the
    cosine of the novel names' words to the base ones (WordTower synonyms; 1: the same words)."""

    def __init__(self, feature_dim: int, d_model: int = 64, *, variant: str = "full",
                 tokens: int = 4, nhead: int = 4, context: int = 4, temperature: float = 0.1,
                 chance: bool = False, tower: Any = None, cover_tail: bool = False,
                 head: str = "paper", novel_words: float = 1.0) -> None:  # fmt: skip
        super().__init__()
        d = d_model
        if head == "code" and variant != "full":
            raise ValueError(f"head: 'code' replaces the full head, got variant {variant!r}")
        self.variant, self.chance, self.cover_tail, self.head = variant, chance, cover_tail, head
        self._chance_draws = torch.Generator().manual_seed(0)
        self.frame_in, self.union_in = nn.Linear(feature_dim + 4, d), nn.Linear(10, d)
        self.refiner = VisualRefiner(d, tokens, nhead)
        self.motion_in = nn.ModuleList([nn.Linear(12, d), nn.Linear(3, d)])
        self.suffix = sfx = "'" if novel_words < 1 else ""  # novel names: synonyms at that cosine
        if tower is not None and sfx:
            raise ValueError(f"novel_words: {novel_words} needs WordTower's synonyms (--text word)")
        tower = tower or WordTower.with_synonyms(TRAJECTORY_WORDS, d, novel_words, suffix=sfx)
        E = tower.embed_dim

        def prompts(names: Sequence[str], kind: type = PromptLearner, **kw: Any) -> Any:
            words = [*map(predicate_words, names)]
            return kind(tower, words, context, temperature=temperature, **kw)

        self.predicates = prompts(BASE)
        self.objects = prompts(TRAJECTORY_OBJECTS)
        self.object_head = nn.Linear(d, E)
        if head == "code":
            if E != d:
                raise ValueError(f"head: 'code' needs the text width {E} to equal d_model {d}")
            # the code's 3 + 3 layers, feed-forward d, dropout 0.1; temperatures learned from tau
            self.code_head = UnionRelationHead(d, nhead, num_tokens=tokens, temperature=temperature)
            self.pair_prompts = prompts(BASE, GroupedPromptLearner, num_groups=6)
            self.union_prompts = prompts(BASE, GroupedPromptLearner, num_groups=6,
                                         subject_object=False)  # fmt: skip
        else:  # Table 4's rows a, b, c and the full head (Eq. 5-11)
            stage = {"a": "pair", "b": "union", "full": "full"}.get(variant, "encoder")
            self.relation = UnionAwareRelationHead(d, nhead, 2 * d, E, stage=stage, readout=
                                                   variant.partition("-")[2] or "mean")  # fmt: skip
            if variant == "full":
                self.fg_predicates = prompts(BASE)

    def tokens(self, batch: TrajectoryBatch) -> dict[str, Any]:
        """Everything a pair of a segment needs, ``(B, S, P, ...)``."""
        seg = segment_pairs(batch, SEG, STRIDE, cover_tail=self.cover_tail)
        norm = seg.boxes / batch.size.repeat(1, 2)[:, None, None, None]
        x = self.frame_in(torch.cat((seg.features, norm), -1))  # (B, S, N, SEG, d)
        traj = self.refiner(x, seg.mask)  # (B, S, N, L, d)
        motion = trajectory_pair_motion(seg.subject_boxes, seg.subject_mask, seg.object_boxes,
                                        seg.object_mask)  # fmt: skip
        u = self.refiner(self.union_in(seg.union_geometry()), seg.pair_mask)  # (B, S, P, L, d)
        mot = torch.stack((self.motion_in[0](motion.relative), self.motion_in[1](motion.giou)), -2)
        return {"seg": seg, "subject": traj[:, :, seg.subject], "object": traj[:, :, seg.object],
                "union": u, "motion": mot, "trajectory": traj, "pair_ok": seg.pair_valid,
                "m": motion}  # fmt: skip

    def code_head_output(self, t: dict[str, Tensor]) -> Any:  # against the prompts' class names
        m = t["m"]
        return self.code_head(t["subject"], t["object"], t["union"], m.relative, m.giou,
                              pair_classes=self.pair_prompts(), group=m.group,
                              union_classes=self.union_prompts(), mask=t["pair_ok"])  # fmt: skip

    def relation_features(self, t: dict[str, Tensor]) -> dict[str, Tensor]:
        """``r_{s,o}`` and the L_fg feature (the code head: scored in code_head_output)."""
        if self.head == "code":
            return {}
        r = self.relation(t["subject"], t["object"], t["union"], t["motion"], t["pair_ok"])
        return {k: v for k, v in (("union", r.relation), ("fg", r.fine_grained)) if v is not None}

    def forward(self, batch: TrajectoryBatch, *, task: str = "sgdet", rows: Any = None) -> Any:
        t = self.tokens(batch)
        feats = self.relation_features(t)
        obj_logits = self.objects.logits(self.object_head(t["trajectory"].mean(-2)))
        if self.training:
            return self.losses(batch, t, feats, obj_logits)
        return self.predictions(batch, t, feats, obj_logits, task)

    def losses(self, batch, t, feats, obj_logits) -> dict[str, Tensor]:
        labels = t["seg"].labels(batch, len(TRAJECTORY_PREDICATES))
        target = labels[..., BASE_COLS.to(batch.mask.device)].float()
        ok = t["pair_ok"]

        def focal(logits: Tensor) -> Tensor:  # summed over predicates, mean over pairs
            loss = sigmoid_focal_loss(logits, target, alpha=0.25, mask=ok, reduction="sum")
            return loss / ok.sum().clamp(min=1)

        losses = {}
        if self.head == "code":  # the code releases no loss: focal on each branch's logits
            out = self.code_head_output(t)
            for name in ("pair", "pair_encoded", "union", "union_encoded"):
                losses[name] = focal(getattr(out, name))
        for name in feats:
            learner = self.predicates if name == "union" else self.fg_predicates
            losses[name] = focal(learner.logits(feats[name]))
        tok = t["seg"].trajectory_valid
        labels = batch.labels[:, None].expand(-1, obj_logits.shape[1], -1)
        losses["traj"] = F.cross_entropy(obj_logits[tok], labels[tok]) if tok.any() else \
            obj_logits.sum() * 0  # fmt: skip
        return losses

    @torch.no_grad()
    def predictions(self, batch, t, feats, obj_logits, task) -> dict[str, dict[str, list]]:
        """Video-level relation instances per protocol: ``{"novel": {vid: [...]}, "all": ...}``."""
        obj_prob = obj_logits.softmax(-1)  # (B, S, N, C)
        if task == "predcls":
            labels = batch.labels[:, None].expand(-1, obj_prob.shape[1], -1)
            scores = torch.ones_like(labels, dtype=torch.float)
        else:
            scores, labels = obj_prob.max(-1)
        names_ = ("predicates", "fg_predicates", "pair_prompts", "union_prompts")
        learners = [getattr(self, n) for n in names_ if hasattr(self, n)]
        out = {}
        for proto, names in (("novel", NOVEL), ("all", TRAJECTORY_PREDICATES)):
            with contextlib.ExitStack() as stack:  # each learner on these names, then back
                words = [predicate_words(p, self.suffix * (p in NOVEL)) for p in names]
                _ = [stack.enter_context(lr.using_class_names(words)) for lr in learners]
                if self.head == "code":
                    probs = self.code_head_output(t).scores / 4  # the code's sum of 4 sigmoids
                else:
                    probs = self.predicates.logits(feats["union"]).sigmoid()
                if "fg" in feats:
                    probs = (probs + self.fg_predicates.logits(feats["fg"]).sigmoid()) / 2
            if self.chance:  # one generator for the whole evaluation: new draws every batch
                probs = torch.rand(probs.shape, generator=self._chance_draws).to(probs.device)
            segments = t["seg"].segment_relations(probs, names, labels, scores, TRAJECTORY_OBJECTS)
            out[proto] = {g.video_id: associate_relations(seg, "uasan")
                          for g, seg in zip(batch.truth, segments, strict=True)}  # fmt: skip
        return out


def add_arguments(p: argparse._ActionsContainer) -> None:
    harness.choice(p, "--variant", ("full", "a", "b", "c", "c-parts"), "Table 4's rows")
    harness.choice(p, "--head", ("paper", "code"), "Eq. 5-11, or the public code's head")
    harness.choice(p, "--text", ("word", "wordllama", "clip"), "prompt text tower: WordTower, "
                   "WordLlama's (offline) or open_clip's (--clip-model)")  # fmt: skip
    p.add_argument("--d-model", type=int, default=64)
    p.add_argument("--tokens", type=int, default=4, help="concept tokens of the visual refiner")
    p.add_argument("--test-videos", type=int, default=40)
    p.add_argument("--chance", action="store_true", help="random predicate scores (chance)")
    p.add_argument("--cover-tail", action="store_true", help="a segment ending at the last frame")
    p.add_argument("--novel-words", type=float, default=1.0, help="novel words' cosine to base")
    p.set_defaults(batch_size=8, epochs=15)


def build_model(args: argparse.Namespace, data: Data) -> UASAN:
    D = data.train[0][0].features.shape[-1]
    towers = {"clip": lambda: OpenCLIPTextTower.from_name(args.clip_model, args.clip_pretrained),
              "wordllama": StaticEmbeddingTower.from_wordllama, "word": lambda: None}  # fmt: skip
    tower = towers[args.text]()
    return UASAN(D, args.d_model, variant=args.variant, tokens=args.tokens, chance=args.chance,
                 tower=tower, cover_tail=args.cover_tail, head=args.head,
                 novel_words=args.novel_words)  # fmt: skip


ASSEMBLY = Assembly(name="uasan", description="Train and evaluate UASAN on synthetic trajectories.",
    build_model=build_model, add_arguments=add_arguments, load_data=load_data,
    make_evaluator=lambda args: OpenVocabularyEvaluator(novel=NOVEL), collate=collate,
    sizes=TrajectoryBatch.sizes, format_results=OpenVocabularyEvaluator.format_results)  # fmt: skip


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Train and evaluate UASAN as the flags ask; returns the run's summary."""
    return harness.run(ASSEMBLY, argv)


if __name__ == "__main__":
    main()
