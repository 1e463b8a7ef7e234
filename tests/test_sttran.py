"""STTran adapter: an entry built the way STTran's object_detector.py builds it (PredCls), its
pair tracks, the frame-padded layout of its spatial encoder, and the track linker."""

import pytest
import torch

from dsgg_layers import from_sttran, link_tracks


def sttran_predcls_entry(gt_annotation):
    """The PredCls branch of STTran's object detector, for one video (ground-truth boxes)."""
    boxes, labels, human_idx, pair, im_idx = [], [], [], [], []
    for i, frame in enumerate(gt_annotation):
        for m in frame:
            if "person_bbox" in m:
                human_idx.append(len(boxes))
                boxes.append([i, *m["person_bbox"][0]])
                labels.append(1)
            else:
                boxes.append([i, *m["bbox"]])
                labels.append(m["class"])
                im_idx.append(i)
                pair.append([human_idx[i], len(boxes) - 1])
    return {
        "boxes": torch.tensor(boxes, dtype=torch.float32),
        "labels": torch.tensor(labels),
        "scores": torch.ones(len(boxes)),
        "im_idx": torch.tensor(im_idx, dtype=torch.float),
        "pair_idx": torch.tensor(pair),
        "human_idx": torch.tensor(human_idx).view(-1, 1),
    }


def annotation(seed=0, frames=5, classes=(3, 8, 12, 20)):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(frames):
        frame = [{"person_bbox": (torch.rand(1, 4, generator=g).sort(-1).values * 100).tolist()}]
        for c in classes:
            if torch.rand(1, generator=g) < 0.6:
                box = (torch.rand(4, generator=g).sort().values * 100).tolist()
                frame.append({"class": c, "bbox": box})
        out.append(frame)
    return out


def test_pairs_land_on_their_class_track_with_their_boxes():
    gt = annotation()
    entry = sttran_predcls_entry(gt)
    p = from_sttran(entry)
    Q = len(entry["im_idx"])
    assert int(p.mask.sum()) == Q
    rows = torch.arange(Q, dtype=torch.float32)[:, None]
    back = p.to_rows(p.to_tracks(rows))
    assert torch.equal(back, rows)  # every pair round-trips to itself
    # each pair's slot holds its boxes and label; each track holds one class
    s, o = entry["pair_idx"].unbind(1)
    assert torch.equal(p.to_rows(p.subject_boxes), entry["boxes"][s, 1:])
    assert torch.equal(p.to_rows(p.object_boxes), entry["boxes"][o, 1:])
    assert torch.equal(p.to_rows(p.object_labels), entry["labels"][o])
    for track in range(p.mask.shape[2]):
        labels = p.object_labels[0, :, track][p.mask[0, :, track]]
        assert len(labels.unique()) == 1
    assert p.frame_times.tolist() == [list(range(len(gt)))]
    p2 = from_sttran(entry, frame_times=torch.arange(len(gt)) * 10 + 7)
    assert p2.frame_times.tolist() == [[10 * t + 7 for t in range(len(gt))]]


def test_frame_padded_layout_round_trips_like_sttran_pads():
    entry = sttran_predcls_entry(annotation(1))
    p = from_sttran(entry)
    im_idx = entry["im_idx"].long()
    feats = torch.randn(len(im_idx), 6)
    b, length = int(im_idx.max()) + 1, int(torch.bincount(im_idx).max())
    rel_input = torch.zeros(length, b, 6)
    for i in range(b):  # STTran's own padding loop
        rel_input[: int((im_idx == i).sum()), i] = feats[im_idx == i]
    assert torch.equal(p.padded_to_rows(rel_input), feats)
    assert torch.equal(p.rows_to_padded(feats, length), rel_input)
    with pytest.raises(ValueError, match="padded"):
        p.padded_to_rows(torch.zeros(length, b + 1, 6))


def test_sgdet_links_by_iou_and_class_tracks_refuse_duplicates():
    entry = {
        "boxes": torch.tensor([[0, 0.0, 0, 9, 9], [0, 5, 5, 20, 20], [0, 40, 40, 60, 60],
                               [1, 0.0, 0, 9, 9], [1, 41, 41, 61, 61], [1, 6, 6, 21, 21]]),
        "pred_labels": torch.tensor([1, 8, 8, 1, 8, 8]),
        "pair_idx": torch.tensor([[0, 1], [0, 2], [3, 4], [3, 5]]),
        "im_idx": torch.tensor([0.0, 0.0, 1.0, 1.0]),
    }  # fmt: skip
    p = from_sttran(entry, mode="sgdet")
    assert p.mask.shape == (1, 2, 2) and bool(p.mask.all())
    # each track keeps its cup: the one near (5, 5) and the one near (40, 40)
    tracks = p.object_boxes[0, :, :, 0]
    assert (tracks[1] - tracks[0]).abs().max() <= 1.0
    with pytest.raises(ValueError, match="track_by='iou'"):
        from_sttran(entry, mode="sgcls", track_by="class") if "pred_labels" in entry else None
    with pytest.raises(ValueError, match="missing key 'labels'"):
        from_sttran(entry, mode="predcls")
    with pytest.raises(ValueError, match="mode"):
        from_sttran(entry, mode="detection")


def test_link_tracks_rules():
    boxes = torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 10], [1, 1, 11, 11], [80, 80, 90, 90],
                          [2, 2, 12, 12]])  # fmt: skip
    labels = torch.tensor([1, 2, 1, 1, 1])
    frames = torch.tensor([0, 0, 1, 1, 3])
    ids = link_tracks(boxes, labels, frames)
    assert ids[0] == ids[2]  # same class, overlapping: one track
    assert ids[1] != ids[0]  # another class never joins
    assert ids[3] not in (ids[0], ids[1])  # far away: a new track
    assert ids[4] != ids[2]  # frame 3 is 2 frames after frame 1 > max_gap=1
    assert link_tracks(boxes, labels, frames, max_gap=2)[4] == ids[2]
    assert link_tracks(boxes[:0], labels[:0], frames[:0]).shape == (0,)
    with pytest.raises(ValueError, match="iou_threshold"):
        link_tracks(boxes, labels, frames, iou_threshold=0.0)
    with pytest.raises(TypeError, match="labels"):
        link_tracks(boxes, labels.float(), frames)
