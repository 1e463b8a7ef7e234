"""UASAN reference assembly: open-vocabulary video relation detection on trajectories.

UASAN (*Open-Vocabulary Video Scene Graph Generation via Union-aware Semantic Alignment*)
assembled from the library's blocks, on the synthetic VidVRD-format trajectory benchmark
(`dsgg_layers.data.SyntheticVidVRD`), trained on the **base** predicates only:

    a video -> 30-frame segments, stride 15 (segment_video)
      -> each trajectory's frame features -> concept tokens            (VisualRefiner)
      -> every ordered pair present in the segment:
         subject, object, union-region tokens, two motion tokens       (trajectory_pair_motion)
      -> [F_S; F_O; U; F_mot] with a relation token on Q/K             (SemanticAwareContextEncoder)
      -> relation token reads the sentence -> Eq. 11 predictor         (UnionRelationDecoder,
                                                                         UnionRelationPredictor)
      -> cos / tau against prompt-learned predicate embeddings        (PromptLearner, WordTower)
    losses (Eq. 12, unit weights): L_traj (object classes), L_union (the union-aware relation),
    L_fg (subject-object concatenation, its own prompts); sigmoid focal on cos / tau, as the
    public code. L_dis needs a bridge encoder's features (BLIP-2), which the synthetic benchmark
    does not have: it is off here (`feature_distillation_loss` is the block).
    inference: the top predicates of every pair and segment -> segment triplets (score: the
    product of predicate and class scores, UASAN's code) -> video-level instances
    (associate_relations, preset "uasan") -> relation detection (mAP, R@50, R@100) and tagging
    (P@1, P@5, P@10) on the **novel** predicates (classifier restricted to them) and on **all**.

Tasks: PredCls (given trajectories and classes), SGCls (given trajectories, predicted classes),
SGDet (trajectories jittered by a few pixels, as from a tracker, predicted classes).

    python examples/uasan.py                  # UASAN, all three tasks
    python examples/uasan.py --variant a      # pair only
    python examples/uasan.py --head code      # the public code's relation head (UnionRelationHead)
    python examples/studies.py uasan-table4 uasan-heads   # Table 4; paper vs code head

The text side is `WordTower`, the library's offline stand-in for CLIP (a novel predicate's name
is made of words seen in base predicates); UASAN uses a BLIP-2 Q-Former.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import replace
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
    SemanticAwareContextEncoder,
    UnionRelationDecoder,
    UnionRelationHead,
    UnionRelationPredictor,
    VisualRefiner,
    WordTower,
    box_iou,
    sigmoid_focal_loss,
    trajectory_pair_motion,
)
from dsgg_layers.data import (
    TRAJECTORY_PREDICATE_SPLITS,
    TRAJECTORY_WORDS,
    SyntheticVidVRD,
    SyntheticVidVRDConfig,
    TrajectoryBatch,
    VidVRDVideo,
)
from dsgg_layers.data.trajectory import TRAJECTORY_OBJECTS, TRAJECTORY_PREDICATES
from dsgg_layers.metrics import OpenVocabularyEvaluator, associate_relations

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the shared harness, beside this file
import harness
from ag_task import Data
from harness import Assembly

SEG, STRIDE = 30, 15
BASE = TRAJECTORY_PREDICATE_SPLITS["base"]
NOVEL = TRAJECTORY_PREDICATE_SPLITS["novel"]
PRED_INDEX = {p: i for i, p in enumerate(TRAJECTORY_PREDICATES)}
BASE_COLS = torch.tensor([PRED_INDEX[p] for p in BASE])


def _words(names: Sequence[str]) -> list[str]:
    return [n.replace("_", " ") for n in names]


# ---------------------------------------------------------------------------------- batches


# the library's trajectory batch (the Batch contract), over the benchmark's vocabularies
collate = partial(TrajectoryBatch.collate, objects=TRAJECTORY_OBJECTS,
                  predicates=TRAJECTORY_PREDICATES)  # fmt: skip


def _jittered(video: VidVRDVideo, seed: int) -> VidVRDVideo:
    """A tracker's view: the trajectories with 3 px box noise (SGDet)."""
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(video.boxes.shape, generator=g) * 3.0
    boxes = (video.boxes + noise) * video.box_mask[..., None]
    return replace(video, boxes=boxes)


def load_data(args: argparse.Namespace) -> Data:
    cfg = SyntheticVidVRDConfig(num_videos=args.train_videos or 120,
                                num_test_videos=args.test_videos, seed=args.data_seed)  # fmt: skip
    if args.quick:
        cfg = SyntheticVidVRDConfig(num_videos=8, num_test_videos=4, seed=args.data_seed)
    train = [(v, v) for v in SyntheticVidVRD(cfg, "train")]
    test_videos = list(SyntheticVidVRD(cfg, "test"))
    test = {"predcls": [(v, v) for v in test_videos], "sgcls": [(v, v) for v in test_videos],
            "sgdet": [(_jittered(v, i), v) for i, v in enumerate(test_videos)]}  # fmt: skip
    test = {t: v for t, v in test.items() if t in args.tasks}
    return Data(train, test, torch.zeros(0), torch.zeros(len(TRAJECTORY_PREDICATES)))


# ------------------------------------------------------------------------------------ model


def _mlp(d_in: int, d: int, out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, d), nn.ReLU(), nn.Linear(d, out))


class UASAN(nn.Module):
    """UASAN on trajectory segments; keeps the harness's contract (losses in training, the
    evaluator's predictions in evaluation).

    Args:
        feature_dim: width of the per-frame trajectory features.
        d_model: width of the tokens.
        variant: ``"a"`` (pair only), ``"b"`` (+ union and motion), ``"c"`` (+ context encoder),
            ``"full"`` (+ union decoder and Eq. 11's predictor, and the L_fg head).
        tokens: concept tokens of the visual refiner.
        chance: in evaluation, random predicate scores (the chance level).
        tower: the prompts' text tower (default `WordTower` over the benchmark's words; an
            `OpenCLIPTextTower` with ``--text clip``); the relation features are projected to
            its ``embed_dim``.
        cover_tail: also a segment ending at each video's last frame (``segment_video``'s
            option; the helper leaves the frames after the last full segment uncovered).
        head: ``"paper"`` (Eq. 5-11: context encoder, union decoder, Eq. 11's predictor and the
            L_fg head) or ``"code"`` (the public code's `UnionRelationHead`: 3 + 3 layers, four
            branches scored token by token against grouped prompts); variant ``"full"`` only.
    """

    def __init__(
        self,
        feature_dim: int,
        d_model: int = 64,
        *,
        variant: str = "full",
        tokens: int = 4,
        nhead: int = 4,
        context: int = 4,
        temperature: float = 0.1,
        chance: bool = False,
        tower: Any = None,
        cover_tail: bool = False,
        head: str = "paper",
    ) -> None:
        super().__init__()
        d = d_model
        if head == "code" and variant != "full":
            raise ValueError(
                f"head: 'code' replaces the full model's head, got variant {variant!r}"
            )
        self.variant, self.chance, self.cover_tail, self.head = variant, chance, cover_tail, head
        self._chance_draws = torch.Generator().manual_seed(0)
        self.frame_in = nn.Linear(feature_dim + 4, d)
        self.union_in = nn.Linear(10, d)
        self.refiner = VisualRefiner(d, tokens, nhead)
        self.motion_in = nn.ModuleList([nn.Linear(12, d), nn.Linear(3, d)])
        tower = WordTower(TRAJECTORY_WORDS, dim=d) if tower is None else tower
        E = tower.embed_dim
        self.predicates = PromptLearner(tower, _words(BASE), context, temperature=temperature)
        self.objects = PromptLearner(tower, _words(TRAJECTORY_OBJECTS), context,
                                     temperature=temperature)  # fmt: skip
        self.object_head = nn.Linear(d, E)
        parts = {"a": 2, "b": 4}
        if head == "code":
            if E != d:
                raise ValueError(f"head: 'code' needs the text width {E} to equal d_model {d}")
            # the code's structure: 3 encoder and 3 decoder layers, feed-forward d, dropout 0.1;
            # both temperatures learned from the paper head's fixed tau
            self.code_head = UnionRelationHead(d, nhead, num_tokens=tokens, temperature=temperature)
            grouped = {"num_groups": 6, "temperature": temperature}
            self.pair_prompts = GroupedPromptLearner(tower, _words(BASE), context, **grouped)
            self.union_prompts = GroupedPromptLearner(tower, _words(BASE), context,
                                                      subject_object=False, **grouped)  # fmt: skip
        elif variant in parts:
            self.relation_head = _mlp(parts[variant] * d, d, E)
        else:
            self.encoder = SemanticAwareContextEncoder(d, nhead, 2 * d)
            if variant == "c":
                self.relation_head = nn.Linear(d, E)
            else:
                self.decoder = UnionRelationDecoder(d, nhead, 2 * d)
                self.predictor = UnionRelationPredictor(d, out_dim=E)
                self.fg_head = _mlp(2 * d, d, E)
                self.fg_predicates = PromptLearner(tower, _words(BASE), context,
                                                   temperature=temperature)  # fmt: skip

    # ------------------------------------------------------------------------- segments

    def segments(self, batch: TrajectoryBatch) -> tuple[Tensor, Tensor]:
        """Segment starts ``(B, S)`` (VidVRD-helper's 30 / 15 over the longest video, and with
        ``cover_tail`` one more a video ending at its last frame) and which exist ``(B, S)``."""
        T = batch.mask.shape[-1]
        dev = batch.mask.device
        regular = torch.arange(0, max(T - SEG + 1, 1), STRIDE, device=dev)
        starts = regular.expand(len(batch.frames), -1)
        ok = starts + SEG <= batch.frames[:, None]
        if self.cover_tail:
            last = (starts + SEG).masked_fill(~ok, 0).amax(-1)  # the helper's last segment end
            tail = (batch.frames - SEG).clamp(min=0)
            starts = torch.cat((starts, tail[:, None]), 1)
            ok = torch.cat((ok, ((last < batch.frames) & (batch.frames >= SEG))[:, None]), 1)
        return starts, ok

    def tokens(self, batch: TrajectoryBatch) -> dict[str, Tensor]:
        """Everything a pair of a segment needs, ``(B, S, P, ...)``."""
        starts, seg_ok = self.segments(batch)
        idx = starts[..., None] + torch.arange(SEG, device=starts.device)  # (B, S, SEG)
        idx = idx.clamp(max=batch.mask.shape[-1] - 1)
        S = idx.shape[1]
        flat = idx.flatten(1)[:, None, :]  # (B, 1, S * SEG): the frames of every segment

        def frames(x: Tensor) -> Tensor:  # (B, N, T, ...) -> (B, N, S, SEG, ...)
            index = flat.expand(x.shape[0], x.shape[1], -1)
            index = index.view(*index.shape, *([1] * (x.dim() - 3))).expand(
                *index.shape, *x.shape[3:]
            )
            return x.gather(2, index).unflatten(2, (S, SEG))

        N = batch.mask.shape[1]
        boxes = frames(batch.boxes)  # (B, N, S, SEG, 4)
        mask = frames(batch.mask) & seg_ok[:, None, :, None]
        feats = frames(batch.features)
        norm = boxes / batch.size.repeat(1, 2)[:, None, None, None]
        x = self.frame_in(torch.cat((feats, norm), -1)).transpose(1, 2)  # (B, S, N, SEG, d)
        m = mask.transpose(1, 2)  # (B, S, N, SEG)
        traj = self.refiner(x, m)  # (B, S, N, L, d)
        i, j = (~torch.eye(N, dtype=torch.bool, device=m.device)).nonzero(as_tuple=True)
        sub_m, obj_m = m[:, :, i], m[:, :, j]  # (B, S, P, SEG)
        both = sub_m & obj_m
        pair_ok = both.sum(-1) >= 2
        sb, ob = boxes.transpose(1, 2)[:, :, i], boxes.transpose(1, 2)[:, :, j]
        motion = trajectory_pair_motion(sb, sub_m, ob, obj_m)
        # union region, frame by frame: both boxes within the union box, their IoU, area ratio
        lo = torch.minimum(sb[..., :2], ob[..., :2])
        hi = torch.maximum(sb[..., 2:], ob[..., 2:])
        span = (hi - lo).clamp(min=1.0).repeat(1, 1, 1, 1, 2)
        rel_s = (sb - lo.repeat(1, 1, 1, 1, 2)) / span
        rel_o = (ob - lo.repeat(1, 1, 1, 1, 2)) / span
        iou = box_iou(sb.unsqueeze(-2), ob.unsqueeze(-2)).squeeze(-1)
        area = lambda b: ((b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])).clamp(min=1.0)  # noqa: E731
        ratio = (area(sb) / area(ob)).log()
        union = torch.cat((rel_s, rel_o, iou, ratio[..., None]), -1).masked_fill(
            ~both[..., None], 0
        )
        u = self.refiner(self.union_in(union), both)  # (B, S, P, L, d)
        mot = torch.stack((self.motion_in[0](motion.relative), self.motion_in[1](motion.giou)), -2)
        return {
            "subject": traj[:, :, i], "object": traj[:, :, j], "union": u, "motion": mot,
            "trajectory": traj, "traj_ok": m.any(-1), "pair_ok": pair_ok, "i": i, "j": j,
            "starts": starts, "sub_mask": sub_m, "obj_mask": obj_m, "boxes": boxes,
            "relative": motion.relative, "giou": motion.giou, "group": motion.group,
        }  # fmt: skip

    def code_head_output(self, t: dict[str, Tensor]) -> Any:
        """The code head's four branches against the prompts' current class names."""
        return self.code_head(
            t["subject"], t["object"], t["union"], t["relative"], t["giou"],
            pair_classes=self.pair_prompts(), union_classes=self.union_prompts(),
            group=t["group"], mask=t["pair_ok"],
        )  # fmt: skip

    def relation_features(self, t: dict[str, Tensor]) -> dict[str, Tensor]:
        """The relation features ``r_{s,o}`` of the variant (and the L_fg feature)."""
        if self.head == "code":
            return {}  # scored against the class names in use: code_head_output
        s, o = t["subject"].mean(-2), t["object"].mean(-2)
        if self.variant == "a":
            return {"union": self.relation_head(torch.cat((s, o), -1))}
        u, m = t["union"].mean(-2), t["motion"].mean(-2)
        if self.variant == "b":
            return {"union": self.relation_head(torch.cat((s, o, u, m), -1))}
        enc = self.encoder(t["subject"], t["object"], t["union"], t["motion"], mask=t["pair_ok"])
        if self.variant == "c":
            return {"union": self.relation_head(enc.encoded.mean(-2))}
        dec = self.decoder(enc.encoded, query=self.encoder.relation_token)
        r = self.predictor(dec, enc.union, t["union"], t["motion"], t["pair_ok"])
        return {"union": r, "fg": self.fg_head(torch.cat((s, o), -1))}

    # ------------------------------------------------------------------------- training

    def forward(self, batch: TrajectoryBatch, *, task: str = "sgdet", rows: Any = None) -> Any:
        t = self.tokens(batch)
        feats = self.relation_features(t)
        obj_logits = self.objects.logits(self.object_head(t["trajectory"].mean(-2)))
        if self.training:
            return self.losses(batch, t, feats, obj_logits)
        return self.predictions(batch, t, feats, obj_logits, task)

    def labels(self, batch: TrajectoryBatch, t: dict[str, Tensor]) -> Tensor:
        """``(B, S, P, 14)``: the predicates an instance holds for at least half a segment."""
        B, S, P = t["pair_ok"].shape
        N = batch.mask.shape[1]
        pair_of = torch.full((N, N), -1, dtype=torch.long, device=batch.mask.device)
        pair_of[t["i"], t["j"]] = torch.arange(P, device=batch.mask.device)
        start = t["starts"][:, :, None]  # (B, S, 1)
        overlap = (torch.minimum(batch.rel_end[:, None], start + SEG)
                   - torch.maximum(batch.rel_begin[:, None], start))  # (B, S, R)  # fmt: skip
        hold = (overlap >= SEG // 2) & batch.rel_mask[:, None]
        b, s, r = hold.nonzero(as_tuple=True)
        out = torch.zeros(B, S, P, len(TRAJECTORY_PREDICATES), dtype=torch.bool,
                          device=batch.mask.device)  # fmt: skip
        p = pair_of[batch.rel_subject[b, r], batch.rel_object[b, r]]
        out[b, s, p, batch.rel_predicate[b, r]] = True
        return out & t["pair_ok"][..., None]

    def losses(self, batch, t, feats, obj_logits) -> dict[str, Tensor]:
        target = self.labels(batch, t)[..., BASE_COLS.to(batch.mask.device)]
        ok = t["pair_ok"]
        n = ok.sum().clamp(min=1)
        losses = {}
        if self.head == "code":  # the code releases no loss: focal on each branch's logits
            out = self.code_head_output(t)
            for name in ("pair", "pair_encoded", "union", "union_encoded"):
                logits = getattr(out, name)
                loss = sigmoid_focal_loss(logits, target.float(), alpha=0.25, reduction="none")
                losses[name] = (loss.sum(-1) * ok).sum() / n
        for name, learner in (
            ("union", self.predicates),
            ("fg", getattr(self, "fg_predicates", None)),
        ):
            if name not in feats:
                continue
            logits = learner.logits(feats[name])
            loss = sigmoid_focal_loss(logits, target.float(), alpha=0.25, reduction="none")
            losses[name] = (loss.sum(-1) * ok).sum() / n
        labels = batch.labels[:, None].expand(-1, obj_logits.shape[1], -1)
        tok = t["traj_ok"]
        losses["traj"] = F.cross_entropy(obj_logits[tok], labels[tok]) if tok.any() else \
            obj_logits.sum() * 0  # fmt: skip
        return losses

    # ----------------------------------------------------------------------- evaluation

    @torch.no_grad()
    def predictions(self, batch, t, feats, obj_logits, task) -> dict[str, dict[str, list]]:
        """Video-level relation instances per protocol: ``{"novel": {vid: [...]}, "all": ...}``."""
        obj_prob = obj_logits.softmax(-1)  # (B, S, N, C)
        if task == "predcls":
            labels = batch.labels[:, None].expand(-1, obj_prob.shape[1], -1)
            scores = torch.ones_like(labels, dtype=torch.float)
        else:
            scores, labels = obj_prob.max(-1)
        out = {}
        code = self.head == "code"
        for proto, names in (("novel", NOVEL), ("all", TRAJECTORY_PREDICATES)):
            self.predicates.set_class_names(_words(names))
            if code:
                self.pair_prompts.set_class_names(_words(names))
                self.union_prompts.set_class_names(_words(names))
                probs = self.code_head_output(t).scores / 4  # the code's sum of 4 sigmoids
            else:
                probs = self.predicates.logits(feats["union"]).sigmoid()
            if "fg" in feats:
                self.fg_predicates.set_class_names(_words(names))
                probs = (probs + self.fg_predicates.logits(feats["fg"]).sigmoid()) / 2
            if self.chance:  # one generator for the whole evaluation: new draws every batch
                probs = torch.rand(probs.shape, generator=self._chance_draws).to(probs.device)
            out[proto] = self._instances(batch, t, probs, names, labels, scores)
        self.predicates.set_class_names(_words(BASE))
        if "fg" in feats:
            self.fg_predicates.set_class_names(_words(BASE))
        if code:
            self.pair_prompts.set_class_names(_words(BASE))
            self.union_prompts.set_class_names(_words(BASE))
        return out

    def _instances(self, batch, t, probs, names, labels, scores, top: int = 3):
        """Segment triplets (top predicates of every pair) -> video-level instances.

        A trajectory's segment part spans its first to its last present frame; the synthetic
        tracks have no gaps (a tracker's tracks with gaps would need their missing boxes
        interpolated first: the JSON form wants a box for every frame of a duration)."""
        k = min(top, probs.shape[-1])
        pv, pc = probs.topk(k, -1)  # (B, S, P, k)
        i, j = t["i"], t["j"]
        triplet_score = pv * scores[:, :, i, None] * scores[:, :, j, None]
        keep = t["pair_ok"][..., None].expand_as(pv)
        b_, s_, p_, c_ = keep.nonzero(as_tuple=True)
        starts = t["starts"].tolist()  # (B, S)
        rows = zip(b_.tolist(), s_.tolist(), p_.tolist(), c_.tolist(), strict=True)
        segments: list[dict] = [{} for _ in batch.truth]
        sub_m, obj_m, boxes = t["sub_mask"], t["obj_mask"], t["boxes"]
        for b, s, p, c in rows:  # turning tensors into the helper's JSON: post-processing
            sm, om = sub_m[b, s, p], obj_m[b, s, p]
            sub_name = TRAJECTORY_OBJECTS[int(labels[b, s, i[p]])]
            obj_name = TRAJECTORY_OBJECTS[int(labels[b, s, j[p]])]
            rel = {"triplet": [sub_name, names[int(pc[b, s, p, c])], obj_name],
                   "score": float(triplet_score[b, s, p, c])}  # fmt: skip
            for key, msk, n in (("sub", sm, i[p]), ("obj", om, j[p])):
                f = msk.nonzero().flatten()
                a, e = int(f[0]), int(f[-1]) + 1
                rel[f"{key}_duration"] = [starts[b][s] + a, starts[b][s] + e]
                rel[f"{key}_traj"] = boxes[b, n, s, a:e].tolist()
            segments[b].setdefault((starts[b][s], starts[b][s] + SEG), []).append(rel)
        return {g.video_id: associate_relations(seg, "uasan")
                for g, seg in zip(batch.truth, segments, strict=True)}  # fmt: skip


# ------------------------------------------------------------------------------- evaluation


METRICS = ("mAP", "R@50", "R@100", "P@1", "P@5", "P@10")


def format_results(results: dict[str, Tensor]) -> str:
    lines = [f"{'split':<8}" + "".join(f"{m:>8}" for m in METRICS)]
    for split in ("novel", "all"):
        lines.append(f"{split:<8}" + "".join(f"{float(results[f'{split}/{m}']) * 100:>8.2f}"
                                             for m in METRICS))  # fmt: skip
    return "\n".join(lines)


# ------------------------------------------------------------------------------ flags and runs


def add_arguments(p: argparse._ActionsContainer) -> None:
    p.add_argument("--variant", choices=("a", "b", "c", "full"), default="full")
    p.add_argument("--d-model", type=int, default=64)
    p.add_argument("--tokens", type=int, default=4, help="concept tokens of the visual refiner")
    p.add_argument("--test-videos", type=int, default=40)
    p.add_argument("--chance", action="store_true", help="random predicate scores (chance)")
    p.add_argument("--cover-tail", action="store_true",
                   help="also a segment ending at each video's last frame")  # fmt: skip
    p.add_argument(
        "--text",
        choices=("word", "clip"),
        default="word",
        help="prompt text tower: the offline WordTower, or open_clip's (--clip-model, "
        "--clip-pretrained; random weights without them give novel names no meaning)",
    )
    p.add_argument("--head", choices=("paper", "code"), default="paper",
                   help="the full model's head: Eq. 5-11 (paper) or the public code's")  # fmt: skip
    p.set_defaults(batch_size=8, epochs=15)


def build_model(args: argparse.Namespace, data: Data) -> UASAN:
    D = data.train[0][0].features.shape[-1]
    tower = None
    if args.text == "clip":
        tower = OpenCLIPTextTower.from_name(args.clip_model, args.clip_pretrained)
    return UASAN(D, args.d_model, variant=args.variant, tokens=args.tokens, chance=args.chance,
                 tower=tower, cover_tail=args.cover_tail, head=args.head)  # fmt: skip


ASSEMBLY = Assembly(
    name="uasan",
    description="Train and evaluate the UASAN reference assembly on synthetic trajectories.",
    build_model=build_model,
    add_arguments=add_arguments,
    make_evaluator=lambda args: OpenVocabularyEvaluator(novel=NOVEL),
    load_data=load_data,
    collate=collate,
    sizes=TrajectoryBatch.sizes,
    format_results=format_results,
)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Train and evaluate UASAN as the flags ask; returns the run's summary."""
    return harness.run(ASSEMBLY, argv)


if __name__ == "__main__":
    main()
