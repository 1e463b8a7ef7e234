"""The statistics of benchmarks/synthetic_profile.py, on hand-made graphs with known answers."""

import importlib.util
import math
import sys
from pathlib import Path

import torch

from dsgg_layers.data import VideoGraph
from dsgg_layers.vocab import PREDICATES

ROOT = Path(__file__).resolve().parents[1]


def _profile():
    spec = importlib.util.spec_from_file_location(
        "synthetic_profile", ROOT / "benchmarks" / "synthetic_profile.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _graph(labels_per_frame):
    """One pair track over len(labels_per_frame) frames with the given predicate names."""
    T = len(labels_per_frame)
    rel = torch.zeros(1, T, 1, len(PREDICATES), dtype=torch.bool)
    for t, names in enumerate(labels_per_frame):
        for n in names:
            rel[0, t, 0, PREDICATES.index(n)] = True
    box = torch.tensor([0.0, 0, 10, 10]).expand(1, T, 1, 4).clone()
    return VideoGraph.empty(["v"], T, 1).replace(
        mask=torch.ones(1, T, 1, dtype=torch.bool), relations=rel, subject_boxes=box,
        object_boxes=box, object_labels=torch.full((1, T, 1), 3),
    )  # fmt: skip


def test_label_change_share_counts_frames_whose_set_differs_from_the_previous():
    p = _profile()
    g = _graph([["looking_at", "holding"], ["looking_at", "holding"], ["looking_at"],
                ["not_looking_at"]])  # fmt: skip
    # frames 2 and 3 of the 3 with a previous frame
    assert p.pair_models.label_change_share([g]) == 2 / 3


def test_mutual_information_is_the_entropy_when_one_group_decides_the_other():
    p = _profile()
    g = _graph([["looking_at", "holding"], ["not_looking_at", "touching"]] * 2)
    mi = p.group_mutual_information([g])
    assert math.isclose(mi["contacting"], 1.0, rel_tol=1e-9)  # two equally likely, tied pairs
    assert mi["spatial"] == 0.0  # no spatial labels at all


def test_unannotated_detections_count_tracks_matching_no_ground_truth_pair():
    p = _profile()
    gt = _graph([["looking_at"], ["looking_at"]])
    det_boxes = torch.tensor([[0.0, 0, 10, 10], [50.0, 50, 60, 60]]).expand(1, 2, 2, 4).clone()
    det = VideoGraph.empty(["v"], 2, 2).replace(
        mask=torch.ones(1, 2, 2, dtype=torch.bool), subject_boxes=det_boxes[..., :1, :].expand(
            1, 2, 2, 4).clone(), object_boxes=det_boxes, object_labels=torch.full((1, 2, 2), 3),
        gt=gt,
    )  # fmt: skip
    tracks, unmatched = p.unannotated_detections([det])
    assert (tracks, unmatched) == (2.0, 1.0)
