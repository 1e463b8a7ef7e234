"""The VidVRD evaluator at VidVRD-test scale against a per-video loop written VidVRD-helper's way.

Workload: 200 test videos of the synthetic trajectory benchmark (`SyntheticVidVRD`, 90-150
frames, 2-4 objects, about 46 ground-truth relation instances a video; VidVRD's test set has 200
videos), and 200 predictions a video (the top-200 that RePro and
UASAN keep after association): every ground-truth instance jittered by a few pixels and shifted
by a few frames, the rest false positives with random spans and boxes, half of them with a
triplet of the video (hard negatives: what a detector's top-200 holds), half random.

Side by side in one run: `VidVRDEvaluator` (vIoU only for same-triplet pairs, greedy matching of
all videos at once, AP / R@K / P@K vectorised) and a loop reference with the helper's structure
(per video: sort, for each prediction scan every ground truth, vIoU frame by frame in Python;
per-video AP; tagging with list membership), the same numbers from both, and the speed-up.

    python benchmarks/vidvrd_eval.py            # 200 videos
    python benchmarks/vidvrd_eval.py --quick    # CI size (20 videos)
"""

from __future__ import annotations

import argparse
import random
import time

import torch

from dsgg_layers.data import SyntheticVidVRD, SyntheticVidVRDConfig
from dsgg_layers.data.trajectory import TRAJECTORY_OBJECTS, TRAJECTORY_PREDICATES
from dsgg_layers.metrics import VidVRDEvaluator


def workload(videos: int, preds_per_video: int, seed: int):
    """Ground truth and predictions in the helper's JSON form."""
    data = SyntheticVidVRD(SyntheticVidVRDConfig(num_test_videos=videos, seed=seed), "test")
    rng = random.Random(seed)
    gt, pred = {}, {}
    for video in data:
        truth = video.relation_instances()
        gt[video.video_id] = truth
        out = []
        for r in truth:
            shift = rng.randint(-3, 3)
            b, e = max(r["duration"][0] + shift, 0), r["duration"][1] + shift
            n = e - b
            jit = [rng.uniform(-3, 3) for _ in range(4)]
            box = [[c + j for c, j in zip(r["sub_traj"][min(i, len(r["sub_traj"]) - 1)], jit,
                                           strict=True)] for i in range(n)]  # fmt: skip
            obox = [r["obj_traj"][min(i, len(r["obj_traj"]) - 1)] for i in range(n)]
            out.append({"triplet": r["triplet"], "score": rng.random(), "duration": [b, e],
                        "sub_traj": box, "obj_traj": obox})  # fmt: skip
        F = video.frame_count
        while len(out) < preds_per_video:
            b = rng.randrange(F - 10)
            e = rng.randint(b + 5, F)
            if truth and rng.random() < 0.5:  # a hard negative: a triplet of the video
                trip = list(rng.choice(truth)["triplet"])
            else:
                trip = [rng.choice(TRAJECTORY_OBJECTS), rng.choice(TRAJECTORY_PREDICATES),
                        rng.choice(TRAJECTORY_OBJECTS)]  # fmt: skip
            x, y = rng.uniform(0, 250), rng.uniform(0, 180)
            traj = [[x, y, x + 40, y + 40]] * (e - b)
            out.append({"triplet": trip, "score": rng.random(), "duration": [b, e],
                        "sub_traj": traj, "obj_traj": traj})  # fmt: skip
        pred[video.video_id] = out
    return gt, pred


# ----------------------------------------------------- the loop reference, the helper's way


def viou_loop(t1, d1, t2, d2):
    """vIoU of two trajectories frame by frame in Python, "+1" areas (the helper's ``viou``)."""
    if d1[0] >= d2[1] or d1[1] <= d2[0]:
        return 0.0
    overlap = 0.0
    for f in range(max(d1[0], d2[0]), min(d1[1], d2[1])):
        a, b = t1[f - d1[0]], t2[f - d2[0]]
        w = min(a[2], b[2]) - max(a[0], b[0]) + 1
        h = min(a[3], b[3]) - max(a[1], b[1]) + 1
        overlap += max(0.0, w) * max(0.0, h)
    v1 = sum((b[2] - b[0] + 1) * (b[3] - b[1] + 1) for b in t1)
    v2 = sum((b[2] - b[0] + 1) * (b[3] - b[1] + 1) for b in t2)
    return overlap / (v1 + v2 - overlap)


def loop_reference(gt, pred, thr=0.5, det_ks=(50, 100), tag_ks=(1, 5, 10)):
    """mAP, R@K and P@K as VidVRD-helper's ``evaluate`` computes them, one video at a time (also
    the tests' reference for :class:`~dsgg_layers.metrics.VidVRDEvaluator`)."""
    aps, hits, total, tags = [], dict.fromkeys(det_ks, 0), 0, {k: [] for k in tag_ks}
    for vid, g in gt.items():
        if not g:
            continue
        p = sorted(pred.get(vid, []), key=lambda r: r["score"], reverse=True)
        taken = [False] * len(g)
        tp = []
        for r in p:
            best, k = -1.0, -1
            for j, x in enumerate(g):
                if not taken[j] and tuple(r["triplet"]) == tuple(x["triplet"]):
                    s = viou_loop(r["sub_traj"], r["duration"], x["sub_traj"], x["duration"])
                    o = viou_loop(r["obj_traj"], r["duration"], x["obj_traj"], x["duration"])
                    if min(s, o) >= thr and min(s, o) > best:
                        best, k = min(s, o), j
            tp.append(k >= 0)
            if k >= 0:
                taken[k] = True
        cum, rec, prec = 0, [], []
        for i, t in enumerate(tp):
            cum += t
            rec.append(cum / len(g))
            prec.append(cum / (i + 1))
        mrec, mpre = [0.0, *rec, 1.0], [0.0, *prec, 0.0]
        for i in range(len(mpre) - 2, -1, -1):
            mpre[i] = max(mpre[i], mpre[i + 1])
        aps.append(sum((mrec[i + 1] - mrec[i]) * mpre[i + 1] for i in range(len(mrec) - 1)))
        total += len(g)
        for k in det_ks:
            hits[k] += sum(tp[:k])
        truth = {tuple(x["triplet"]) for x in g}
        unique = []
        for r in p:
            if tuple(r["triplet"]) not in unique:
                unique.append(tuple(r["triplet"]))
        for k in tag_ks:
            cut = min(k, len(unique))
            tags[k].append(sum(t in truth for t in unique[:cut]) / cut if cut else 0.0)
    out = {"mAP": sum(aps) / len(aps)}
    out |= {f"R@{k}": hits[k] / total for k in det_ks}
    out |= {f"P@{k}": sum(v) / len(v) for k, v in tags.items()}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--videos", type=int, default=200)
    p.add_argument("--predictions", type=int, default=200, help="predictions a video")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="CI size: 20 videos")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    videos = 20 if args.quick else args.videos
    gt, pred = workload(videos, args.predictions, args.seed)
    n_gt = sum(len(v) for v in gt.values())
    print(f"{videos} videos, {n_gt} ground-truth instances, {args.predictions} predictions a "
          f"video, {args.threads} threads")  # fmt: skip
    start = time.perf_counter()
    ev = VidVRDEvaluator()
    ev.update(pred, gt)
    ours = {k: float(v) for k, v in ev.compute().items()}
    t_ours = time.perf_counter() - start
    start = time.perf_counter()
    ref = loop_reference(gt, pred)
    t_ref = time.perf_counter() - start
    print(f"\n{'':<26}{'seconds':>10}" + "".join(f"{k:>8}" for k in ours))
    print(
        f"{'per-video loop (helper)':<26}{t_ref:>10.2f}" + "".join(f"{ref[k]:>8.4f}" for k in ours)
    )
    print(f"{'VidVRDEvaluator':<26}{t_ours:>10.2f}" + "".join(f"{ours[k]:>8.4f}" for k in ours))
    same = all(abs(ours[k] - ref[k]) < 1e-9 for k in ours)
    print(f"\nspeed-up {t_ref / t_ours:.1f}x; same numbers: {same}")
    if not same:
        raise SystemExit("the evaluator and the loop reference disagree")


if __name__ == "__main__":
    main()
