"""The Action Genome recall computed the way the field's public evaluator is structured.

One frame at a time, NumPy: the ground-truth triplet list, three 26-wide score rows per pair
(attention, spatial flipped, contacting), an argsort, class intersection, a "+1 pixel" IoU
matrix, and the union of matched ground truth within the top K. Written for this benchmark from
the protocol (see docs/metrics.md), as the in-run baseline of ``benchmarks/evaluator.py``.
"""

from __future__ import annotations

import numpy as np

ATT, SPA, CON = slice(0, 3), slice(3, 9), slice(9, 26)


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise "+1 pixel" IoU of (N, 4) and (M, 4) boxes."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(rb - lt + 1, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    area = lambda x: (x[:, 2] - x[:, 0] + 1) * (x[:, 3] - x[:, 1] + 1)  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None, :] - inter)


def evaluate_frame(pred: dict, gt: dict, mode: str, ks=(10, 20, 50), semi=0.9) -> dict:
    """Recall at each K of one frame (None when it has no ground truth)."""
    # ground truth: boxes [person, objects...], triplets [subject, object, predicate]
    n_obj = len(gt["labels"])
    gt_boxes = np.concatenate((gt["person"][None], gt["boxes"]))
    gt_classes = np.concatenate(([0], gt["labels"]))
    gt_rels = []
    for m in range(n_obj):
        for r in np.nonzero(gt["relations"][m])[0]:
            gt_rels.append((m + 1, 0, r) if 3 <= r < 9 else (0, m + 1, r))
    if not gt_rels:
        return None
    gt_rels = np.array(gt_rels)
    # predictions: rows of 26 scores, 3 per pair
    n = len(pred["labels"])
    if n == 0:
        return {k: 0.0 for k in ks}
    boxes = np.concatenate((pred["person"][None], pred["boxes"]))
    classes = np.concatenate(([0], pred["labels"]))
    obj_scores = np.concatenate(([1.0], pred["scores"]))
    pair_idx = np.stack((np.zeros(n, dtype=int), np.arange(1, n + 1)), 1)
    rel_inds = np.concatenate((pair_idx, pair_idx[:, ::-1], pair_idx))
    rel_scores = np.zeros((3 * n, 26))
    rel_scores[:n, ATT] = pred["predicates"][:, ATT]
    rel_scores[n : 2 * n, SPA] = pred["predicates"][:, SPA]
    rel_scores[2 * n :, CON] = pred["predicates"][:, CON]
    if mode == "with":
        rels = np.column_stack((rel_inds, rel_scores.argmax(1)))
        pscores = rel_scores.max(1)
    elif mode == "semi":
        rows, pscores = [], []
        for i in range(3 * n):
            if i < n:
                rows.append((*rel_inds[i], rel_scores[i].argmax()))
                pscores.append(rel_scores[i].max())
            else:
                for k in np.where(rel_scores[i] > semi)[0]:
                    rows.append((*rel_inds[i], k))
                    pscores.append(rel_scores[i, k])
        rels, pscores = np.array(rows, dtype=int).reshape(-1, 3), np.array(pscores)
    else:  # "no"
        overall = obj_scores[rel_inds].prod(1)[:, None] * rel_scores
        order = np.argsort(-overall.ravel())[:100]
        r_i, p_i = np.unravel_index(order, overall.shape)
        rels = np.column_stack((rel_inds[r_i], p_i))
        pscores = rel_scores[r_i, p_i]
    if len(rels) == 0:
        return {k: 0.0 for k in ks}
    scores = obj_scores[rels[:, 0]] * obj_scores[rels[:, 1]] * pscores
    rels = rels[np.argsort(scores)[::-1]]
    # matching: classes and predicate equal, both boxes IoU >= 0.5
    gt_trip = np.column_stack((gt_classes[gt_rels[:, 0]], gt_rels[:, 2], gt_classes[gt_rels[:, 1]]))
    pr_trip = np.column_stack((classes[rels[:, 0]], rels[:, 2], classes[rels[:, 1]]))
    same = (gt_trip[:, None, :] == pr_trip[None, :, :]).all(-1)
    sub_iou = _iou(gt_boxes[gt_rels[:, 0]], boxes[rels[:, 0]])
    obj_iou = _iou(gt_boxes[gt_rels[:, 1]], boxes[rels[:, 1]])
    matched = same & (sub_iou >= 0.5) & (obj_iou >= 0.5)
    pred_to_gt = [np.nonzero(matched[:, j])[0] for j in range(len(rels))]
    out = {}
    for k in ks:
        hit = set()
        for m in pred_to_gt[:k]:
            hit.update(m.tolist())
        out[k] = len(hit) / len(gt_rels)
    return out
