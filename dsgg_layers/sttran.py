"""STTran adapter: STTran's ``entry`` dict to pair tracks and back, and a simple track linker.

STTran (*Spatial-Temporal Transformer for Dynamic Scene Graph Generation*, Cong et al., ICCV
2021) and the code built on it (DSG-DETR, TEMPURA) keep one video's relations *flat*: its
``object_detector`` returns an ``entry`` with ``boxes (N, 5)`` rows ``[frame, x1, y1, x2, y2]``,
box ``labels`` / ``pred_labels`` and ``scores`` / ``pred_scores``, ``pair_idx (Q, 2)`` rows
``[subject box, object box]`` and ``im_idx (Q,)`` (float) the frame of each pair, sorted by frame.
The library's blocks work on pair tracks ``(B, T, P, ...)``, which need the identity of each
object across frames: STTran has none. [`from_sttran`][] builds it (the object class on ground
truth boxes, where Action Genome has one object of a class per frame; [`link_tracks`][] on
detections) and returns an [`STTranPairs`][] that maps any per-pair tensor to tracks and back.

**Where a block goes in STTran.** ``transformer.forward`` runs the spatial encoder
(``local_attention``) and the temporal decoder in one call. A forward hook on
``local_attention`` is the seam that needs no copy of STTran's code: it sees the spatial
output ``(l, b, D)`` (frame-padded, sequence first, pairs in ``entry`` order) and may return a
changed one, which the temporal decoder then reads. [`STTranPairs.padded_to_rows`][] and
[`STTranPairs.rows_to_padded`][] convert that layout; the MoSA docs page has the hook.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor

from dsgg_layers._checks import check_choice, check_tensor
from dsgg_layers.boxes import box_iou
from dsgg_layers.layout import TrackIndex, build_track_index, flat_to_tracks, tracks_to_flat
from dsgg_layers.vocab import PREDICATE_GROUPS, PREDICATES

__all__ = ["STTranPairs", "from_sttran", "link_tracks", "sttran_to_tracks"]


@dataclass(frozen=True)
class STTranPairs:
    """One STTran video's pairs as pair tracks (``B = 1``), with the maps back to its rows.

    Attributes:
        index: flat pair rows (``entry`` order) <-> the grid.
        mask: ``(1, T, P)`` ``True`` where the pair exists.
        subject_boxes: ``(1, T, P, 4)`` ``xyxy`` (``entry["boxes"]`` units), 0 where padded.
        object_boxes: ``(1, T, P, 4)`` ``xyxy``, 0 where padded.
        object_labels: ``(1, T, P)`` STTran's classes (``__background__`` = 0), -1 where padded.
        frame_times: ``(1, T)`` the frame of each slot (``im_idx``, or the given frame numbers).
        frame_counts: ``(b,)`` pairs in each of STTran's frames (for the frame-padded layout).

    Examples:
        >>> entry = {"boxes": torch.tensor([[0, 0.0, 0, 9, 9], [0, 5, 5, 20, 20],
        ...                                 [1, 1, 1, 9, 9], [1, 6, 6, 21, 21]]),
        ...          "labels": torch.tensor([1, 8, 1, 8]),
        ...          "pair_idx": torch.tensor([[0, 1], [2, 3]]),
        ...          "im_idx": torch.tensor([0.0, 1.0])}
        >>> pairs = from_sttran(entry)
        >>> pairs.mask.shape, pairs.to_tracks(torch.arange(2.0)[:, None])[0, :, 0, 0].tolist()
        (torch.Size([1, 2, 1]), [0.0, 1.0])
    """

    index: TrackIndex
    mask: Tensor
    subject_boxes: Tensor
    object_boxes: Tensor
    object_labels: Tensor
    frame_times: Tensor
    frame_counts: Tensor

    def to_tracks(self, rows: Tensor) -> Tensor:
        """Per-pair rows ``(Q, ...)`` in ``entry`` order -> tracks ``(1, T, P, ...)`` (0 padded)."""
        return flat_to_tracks(rows, self.index)[0]

    def to_rows(self, tracks: Tensor) -> Tensor:
        """Tracks ``(1, T, P, ...)`` -> per-pair rows ``(Q, ...)`` in ``entry`` order."""
        return tracks_to_flat(tracks, self.index)

    def _padded_mask(self, length: int) -> Tensor:
        slots = torch.arange(length, device=self.frame_counts.device)
        return slots < self.frame_counts.unsqueeze(-1)  # (b, l): True for real pairs

    def padded_to_rows(self, padded: Tensor) -> Tensor:
        """STTran's frame-padded ``(l, b, D)`` (``local_attention``'s layout) -> rows ``(Q, D)``."""
        check_tensor(padded, "padded", ("l", self.frame_counts.shape[0], "D"))
        most = int(self.frame_counts.max()) if self.frame_counts.numel() else 0
        if padded.shape[0] < most:  # the pairs past its length would be dropped
            raise ValueError(
                f"padded: expected l >= the largest frame's pair count {most}, got "
                f"{padded.shape[0]}"
            )
        return padded.transpose(0, 1)[self._padded_mask(padded.shape[0])]

    def rows_to_padded(self, rows: Tensor, length: int) -> Tensor:
        """Rows ``(Q, D)`` -> STTran's frame-padded ``(length, b, D)``, zeros at padding."""
        check_tensor(rows, "rows", (int(self.frame_counts.sum()), "D"))
        most = int(self.frame_counts.max()) if self.frame_counts.numel() else 0
        if isinstance(length, bool) or not isinstance(length, int) or length < most:
            raise ValueError(
                f"length: expected an int >= the largest frame's pair count {most}, got {length!r}"
            )
        mask = self._padded_mask(length)
        out = rows.new_zeros(mask.shape[0], length, rows.shape[-1])
        out[mask] = rows
        return out.transpose(0, 1)


def _as_tensor(entry: Mapping[str, Any], key: str) -> Tensor:
    if key not in entry:
        raise ValueError(f"entry: missing key {key!r} (has {sorted(entry)})")
    return torch.as_tensor(entry[key])


def _gt_box(record: Mapping[str, Any], key: str, where: str, rows: bool = False) -> Tensor:
    """One ``xyxy`` box of a ground-truth record (the first row of ``(n, 4)`` when ``rows``)."""
    if not isinstance(record, Mapping) or key not in record:
        raise ValueError(f"{where}: expected a dict with {key!r}")
    box = torch.as_tensor(record[key], dtype=torch.float32)
    box = box.reshape(-1, 4)[:1] if rows and box.numel() % 4 == 0 else box
    if box.numel() != 4:
        raise ValueError(f"{where}['{key}']: expected one xyxy box, got shape {tuple(box.shape)}")
    return box.reshape(4)


def _index_tensor(entry: Mapping[str, Any], key: str, size: int | None = None) -> Tensor:
    """``entry[key]`` as int64 indices: whole numbers (STTran keeps some as floats), >= 0, and
    below ``size`` when given (a negative index would wrap to the last box silently)."""
    raw = _as_tensor(entry, key)
    values = raw.double() if raw.is_floating_point() else raw
    bad = (values < 0) | (values != values.floor()) if raw.is_floating_point() else values < 0
    if size is not None:
        bad = bad | (values >= size)
    if raw.numel() and bool(bad.any()):
        bound = f"[0, {size})" if size is not None else ">= 0"
        raise ValueError(
            f"entry['{key}']: expected whole-number indices in {bound}, got "
            f"{values[bad].flatten()[0].item()}"
        )
    return raw.long()


def from_sttran(
    entry: Mapping[str, Any],
    *,
    mode: Literal["predcls", "sgcls", "sgdet"] = "predcls",
    track_by: Literal["class", "iou"] | None = None,
    track_ids: Tensor | None = None,
    frame_times: Tensor | None = None,
    iou_threshold: float = 0.5,
) -> STTranPairs:
    """Pair tracks of one STTran ``entry`` (as its ``object_detector`` builds it).

    Args:
        entry: STTran's dict: ``boxes``, ``pair_idx``, ``im_idx`` and the box labels
            (``labels`` in PredCls, ``pred_labels`` otherwise).
        mode: which labels to read: ``"predcls"`` -> ``labels``, else ``pred_labels``.
        track_by: how objects are linked across frames when ``track_ids`` is not given:
            ``"class"`` (the object class is its identity: Action Genome's ground truth has at
            most one object of a class per frame) or ``"iou"`` ([`link_tracks`][]). Default:
            ``"class"`` in PredCls / SGCls, ``"iou"`` in SGDet.
        track_ids: ``(N,)`` your own track id of every box (overrides ``track_by``).
        frame_times: ``(b,)`` real frame numbers of STTran's frames (default ``0 .. b-1``).
        iou_threshold: the linker's IoU threshold (``track_by="iou"``).

    Returns:
        An [`STTranPairs`][].

    Shape:
        - entry["boxes"]: ``(N, 5)``; entry["pair_idx"]: ``(Q, 2)``; entry["im_idx"]: ``(Q,)``

    Raises:
        ValueError: a key is missing, shapes disagree, ``mode`` / ``track_by`` is unknown, or
            two pairs of one frame land on the same track (``track_by="class"`` with two objects
            of a class in a frame: use ``"iou"``).

    Examples:
        >>> entry = {"boxes": torch.tensor([[0, 0.0, 0, 9, 9], [0, 5, 5, 20, 20],
        ...                                 [0, 30, 5, 40, 20], [1, 6, 6, 21, 21]]),
        ...          "pred_labels": torch.tensor([1, 8, 8, 8]),          # two cups in frame 0
        ...          "pair_idx": torch.tensor([[0, 1], [0, 2], [0, 3]]),
        ...          "im_idx": torch.tensor([0.0, 0.0, 1.0])}
        >>> pairs = from_sttran(entry, mode="sgdet")                      # linked by IoU
        >>> pairs.mask[0].tolist()            # the first cup continues into frame 1
        [[True, True], [True, False]]
    """
    check_choice(mode, "mode", ("predcls", "sgcls", "sgdet"))
    track_by = track_by or ("iou" if mode == "sgdet" else "class")
    check_choice(track_by, "track_by", ("class", "iou"))
    boxes = _as_tensor(entry, "boxes").float()
    check_tensor(boxes, "entry['boxes']", ("N", 5))
    labels = _as_tensor(entry, "labels" if mode == "predcls" else "pred_labels").long()
    check_tensor(labels, "entry labels", (boxes.shape[0],))
    pair_idx = _index_tensor(entry, "pair_idx", len(boxes))
    check_tensor(pair_idx, "entry['pair_idx']", ("Q", 2))
    im_idx = _index_tensor(entry, "im_idx")  # STTran stores it as float
    check_tensor(im_idx, "entry['im_idx']", (pair_idx.shape[0],))
    subj, obj = pair_idx[:, 0], pair_idx[:, 1]
    if track_ids is None:
        box_frame = boxes[:, 0].long()
        if track_by == "class":
            track_ids = labels
        else:
            track_ids = link_tracks(boxes[:, 1:], labels, box_frame, iou_threshold=iou_threshold)
    check_tensor(track_ids, "track_ids", (boxes.shape[0],), dtype="int")
    video = torch.zeros_like(im_idx)
    try:
        index = build_track_index(video, im_idx, track_ids[obj].long())
    except ValueError as error:
        raise ValueError(
            f"entry: two pairs of one frame share a track ({error}); with track_by='class' this "
            "means two objects of a class in a frame: use track_by='iou' or pass track_ids"
        ) from None
    b = int(im_idx.max()) + 1 if len(im_idx) else 0
    counts = torch.bincount(im_idx, minlength=b)
    slot_frames = index.frame_ids  # (1, T): the im_idx of each slot
    if frame_times is not None:
        check_tensor(frame_times, "frame_times", (b,), dtype="int")
        if b > 1 and bool((frame_times[1:] <= frame_times[:-1]).any()):
            raise ValueError(
                f"frame_times: expected increasing frame numbers, got {frame_times.tolist()[:8]}"
            )
        slot_frames = frame_times.to(slot_frames.device)[slot_frames] * index.frame_mask
    subject_boxes, mask = flat_to_tracks(boxes[subj, 1:], index)
    return STTranPairs(
        index=index,
        mask=mask,
        subject_boxes=subject_boxes,
        object_boxes=flat_to_tracks(boxes[obj, 1:], index)[0],
        object_labels=flat_to_tracks(labels[obj], index, fill_value=-1)[0],
        frame_times=slot_frames,
        frame_counts=counts,
    )


def link_tracks(
    boxes: Tensor,
    labels: Tensor,
    frame_ids: Tensor,
    *,
    iou_threshold: float = 0.5,
    max_gap: int = 1,
) -> Tensor:
    """Link detections of one video into tracks by class and IoU (a simple greedy tracker).

    Frame by frame in time order, each detection joins the track of the same class whose last
    box (seen at most ``max_gap`` before, in ``frame_ids`` units) overlaps it most, if that IoU
    reaches ``iou_threshold`` and no other detection of the frame took the track; otherwise it
    starts a new track. The same rule as SORT-style trackers without motion prediction. The loop
    runs over the frames of the video (the assignment of a frame depends on the previous one);
    the IoUs inside a frame are one matrix.

    Args:
        boxes: ``xyxy`` boxes of all detections.
        labels: class of each detection.
        frame_ids: frame of each detection (STTran's frame index ``0 .. b-1``, or real frame
            numbers with a ``max_gap`` in those units).
        iou_threshold: the smallest IoU that continues a track.
        max_gap: the largest step in ``frame_ids`` from a track's last detection to the next.

    Returns:
        ``(N,)`` long track ids, ``0 .. K-1`` in order of appearance.

    Shape:
        - boxes: ``(N, 4)``; labels, frame_ids: ``(N,)``

    Raises:
        TypeError, ValueError: dtypes or lengths disagree, or a threshold is out of range.

    Examples:
        >>> boxes = torch.tensor([[0.0, 0, 10, 10], [50, 50, 60, 60],    # frame 0: cup, cup
        ...                       [1.0, 1, 11, 11], [51, 50, 61, 60]])   # frame 1: both moved
        >>> link_tracks(boxes, torch.tensor([3, 3, 3, 3]), torch.tensor([0, 0, 1, 1])).tolist()
        [0, 1, 0, 1]
    """
    dims: dict[str, tuple[int, str]] = {}
    check_tensor(boxes, "boxes", ("N", 4), dims=dims, dtype="float")
    check_tensor(labels, "labels", ("N",), dims=dims, dtype="int")
    check_tensor(frame_ids, "frame_ids", ("N",), dims=dims, dtype="int")
    if not 0.0 < iou_threshold <= 1.0:
        raise ValueError(f"iou_threshold: expected a value in (0, 1], got {iou_threshold}")
    if isinstance(max_gap, bool) or not isinstance(max_gap, int):
        raise TypeError(f"max_gap: expected an int, got {max_gap!r}")
    if max_gap < 1:
        raise ValueError(f"max_gap: expected an int >= 1, got {max_gap}")
    n = boxes.shape[0]
    ids = torch.full((n,), -1, dtype=torch.long)
    if n == 0:
        return ids.to(boxes.device)
    boxes_c, labels_c, frames_c = boxes.detach().cpu(), labels.cpu(), frame_ids.cpu()
    frames, frame_slot = torch.unique(frames_c, return_inverse=True)
    track_box = boxes_c.new_zeros(0, 4)
    track_label = labels_c.new_zeros(0)
    track_seen = torch.zeros(0, dtype=torch.long)
    for f in range(len(frames)):  # sequential by nature: frame f extends the tracks of f - 1
        rows = (frame_slot == f).nonzero().squeeze(1)
        iou = (
            box_iou(boxes_c[rows], track_box) if len(track_box) else boxes_c.new_zeros(len(rows), 0)
        )
        now = int(frames[f])
        ok = (labels_c[rows, None] == track_label[None]) & (now - track_seen <= max_gap)[None]
        iou = torch.where(ok & (iou >= iou_threshold), iou, torch.zeros_like(iou))
        taken = torch.zeros(len(rows), dtype=torch.bool)
        while iou.numel() and float(iou.max()) > 0:  # greedy: best remaining overlap first
            flat = int(iou.argmax())
            r, t = divmod(flat, iou.shape[1])
            ids[rows[r]], taken[r] = t, True
            track_box[t], track_seen[t] = boxes_c[rows[r]], now
            iou[r, :], iou[:, t] = 0, 0
        new = rows[~taken]
        ids[new] = torch.arange(len(track_box), len(track_box) + len(new))
        track_box = torch.cat((track_box, boxes_c[new]))
        track_label = torch.cat((track_label, labels_c[new]))
        track_seen = torch.cat((track_seen, torch.full((len(new),), now)))
    return ids.to(boxes.device)


def sttran_to_tracks(
    entry: Mapping[str, Any],
    gt_annotation: Sequence[Sequence[Mapping[str, Any]]],
    *,
    mode: Literal["predcls", "sgcls", "sgdet"] = "predcls",
    attention_softmax: bool = True,
) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Convert STTran's flat prediction dict and ground truth of one video to evaluator inputs.

    ``entry`` is the dict STTran's model returns for a video: ``boxes`` ``(N, 5)`` rows
    ``[frame, x1, y1, x2, y2]``; class labels and scores of the boxes (``labels``/``scores`` in
    PredCls, ``pred_labels``/``pred_scores`` otherwise); ``pair_idx`` ``(Q, 2)`` rows
    ``[subject box, object box]``; ``im_idx`` ``(Q,)`` the frame of each pair; and
    ``attention_distribution`` ``(Q, 3)``, ``spatial_distribution`` ``(Q, 6)``,
    ``contacting_distribution`` ``(Q, 17)`` (attention as logits, softmaxed here as the public
    evaluator does unless ``attention_softmax=False``; TEMPURA's model outputs softmaxed
    attention and its evaluator does not softmax again, so pass ``attention_softmax=False`` for
    TEMPURA outputs).

    ``gt_annotation`` has one list per frame: ``{"person_bbox": (1, 4)}`` first, then one dict per
    object with ``class`` and ``bbox`` (``xyxy``) and the group-local indices
    ``attention_relationship``, ``spatial_relationship``, ``contacting_relationship``, as STTran's
    loader makes them. Classes are STTran's (``__background__`` = 0, person = 1).

    Args:
        entry: STTran's prediction dict of the video.
        gt_annotation: STTran's ground truth of the video, one list a frame.
        mode: the task (the label and score keys of ``entry`` it reads).
        attention_softmax: softmax the attention logits (STTran) or not (TEMPURA).

    Returns:
        ``(preds, target)`` for the ``update`` of
        [`ActionGenomeEvaluator`][dsgg_layers.metrics.action_genome.ActionGenomeEvaluator]
        with ``person_label=1``; frames are the ``len(gt_annotation)`` frames of the video, and
        the relations count repeated annotation entries.

    Raises:
        ValueError: a key is missing, a pair refers to a frame outside the annotation, or a
            relation index lies outside its group (3 attention, 6 spatial, 17 contacting).

    Examples:
        >>> entry = {"boxes": torch.tensor([[0, 0.0, 0, 10, 10], [0, 5, 5, 20, 20]]),
        ...          "labels": torch.tensor([1, 7]), "scores": torch.ones(2),
        ...          "pair_idx": torch.tensor([[0, 1]]), "im_idx": torch.tensor([0]),
        ...          "attention_distribution": torch.tensor([[5.0, 0, 0]]),
        ...          "spatial_distribution": torch.rand(1, 6),
        ...          "contacting_distribution": torch.rand(1, 17)}
        >>> gt = [[{"person_bbox": [[0.0, 0, 10, 10]]},
        ...        {"class": 7, "bbox": [5.0, 5, 20, 20], "attention_relationship": [0],
        ...         "spatial_relationship": [], "contacting_relationship": []}]]
        >>> preds, target = sttran_to_tracks(entry, gt)
        >>> preds["predicate_scores"].shape, int(target["relations"].sum())
        (torch.Size([1, 1, 26]), 1)
    """
    check_choice(mode, "mode", ("predcls", "sgcls", "sgdet"))
    label_key, score_key = (
        ("labels", "scores") if mode == "predcls" else ("pred_labels", "pred_scores")
    )
    needed = ("boxes", "pair_idx", "im_idx", label_key, score_key, "attention_distribution",
              "spatial_distribution", "contacting_distribution")  # fmt: skip
    missing = [k for k in needed if k not in entry]
    if missing:
        raise ValueError(f"entry: missing keys {missing} (mode={mode!r})")
    as_t = lambda v, dt=None: torch.as_tensor(v, dtype=dt).detach().cpu()  # noqa: E731
    boxes = as_t(entry["boxes"], torch.float32)
    check_tensor(boxes, "entry['boxes']", ("N", 5))  # [frame, x1, y1, x2, y2], not (N, 4)
    boxes = boxes[:, 1:]
    labels = as_t(entry[label_key]).long()
    box_scores = as_t(entry[score_key], torch.float32)
    pair_idx = _index_tensor(entry, "pair_idx", len(boxes)).detach().cpu()
    check_tensor(pair_idx, "entry['pair_idx']", ("Q", 2))
    im_idx = _index_tensor(entry, "im_idx").detach().cpu()
    check_tensor(im_idx, "entry['im_idx']", (pair_idx.shape[0],))
    dists = []
    for key, width in zip(("attention_distribution", "spatial_distribution",
                           "contacting_distribution"), (3, 6, 17), strict=True):  # fmt: skip
        d = as_t(entry[key], torch.float32)
        check_tensor(d, f"entry['{key}']", (pair_idx.shape[0], width))  # Q rows, the group's width
        dists.append(d)
    att = dists[0].softmax(-1) if attention_softmax else dists[0]
    scores = torch.cat((att, dists[1], dists[2]), -1)
    num_frames = len(gt_annotation)
    if im_idx.numel() and (int(im_idx.max()) >= num_frames or int(im_idx.min()) < 0):
        raise ValueError(
            f"entry['im_idx']: frames must be in [0, {num_frames}) (the frames of "
            f"gt_annotation), got {int(im_idx.min())}..{int(im_idx.max())}"
        )
    s, o = pair_idx[:, 0], pair_idx[:, 1]
    rows = torch.arange(len(im_idx))
    zeros = torch.zeros_like(im_idx)
    every_frame = (torch.arange(num_frames), torch.zeros(num_frames, dtype=torch.long))
    index = build_track_index(im_idx, zeros, rows, frames=every_frame)

    # One "video" per frame, one track per pair (ranked by row): the grid (F, 1, P) packs each
    # frame's pairs to the front in row order.
    def grid(v: Tensor, fill: float = 0) -> Tensor:
        return flat_to_tracks(v, index, fill_value=fill)[0].flatten(1, 2)

    mask = grid(torch.ones(len(im_idx), dtype=torch.bool), False)
    preds = {
        "predicate_scores": grid(scores),
        "mask": mask,
        "subject_boxes": grid(boxes[s]),
        "object_boxes": grid(boxes[o]),
        "subject_labels": grid(labels[s], -1),
        "object_labels": grid(labels[o], -1),
        "subject_scores": grid(box_scores[s]),
        "object_scores": grid(box_scores[o]),
    }
    # Ground truth: one pair per annotated object, relations with their group offsets.
    G = max((len(frame) - 1 for frame in gt_annotation), default=0)
    rel = torch.zeros(num_frames, G, len(PREDICATES), dtype=torch.long)
    g_mask = torch.zeros(num_frames, G, dtype=torch.bool)
    g_sub = torch.zeros(num_frames, G, 4)
    g_obj = torch.zeros(num_frames, G, 4)
    g_lab = torch.full((num_frames, G), -1, dtype=torch.long)
    groups = list(PREDICATE_GROUPS.values())
    offsets = [g.start for g in groups]
    sizes = [g.stop - g.start for g in groups]
    keys = ("attention_relationship", "spatial_relationship", "contacting_relationship")
    for f, frame in enumerate(gt_annotation):  # annotation parsing, not a forward pass
        person = _gt_box(frame[0], "person_bbox", f"gt_annotation[{f}][0]", rows=True)
        for j, obj in enumerate(frame[1:]):
            where = f"gt_annotation[{f}][{j + 1}]"
            if not isinstance(obj, Mapping) or "class" not in obj:
                raise ValueError(f"{where}: expected a dict with 'class' and 'bbox'")
            g_mask[f, j] = True
            g_sub[f, j] = person
            g_obj[f, j] = _gt_box(obj, "bbox", where)
            g_lab[f, j] = int(obj["class"])
            for key, off, size in zip(keys, offsets, sizes, strict=True):
                for r in (
                    as_t(obj.get(key) if obj.get(key) is not None else []).reshape(-1).tolist()
                ):
                    if not (float(r).is_integer() and 0 <= r < size):  # never another group's
                        raise ValueError(
                            f"gt_annotation[{f}][{j + 1}]['{key}']: expected indices in "
                            f"[0, {size}), got {r}"
                        )
                    rel[f, j, off + int(r)] += 1
    target = {
        "relations": rel,
        "mask": g_mask,
        "subject_boxes": g_sub,
        "object_boxes": g_obj,
        "object_labels": g_lab,
        "subject_labels": torch.where(g_mask, 1, -1),
    }
    return preds, target
