"""Data: the [`VideoGraph`][] container, the Action Genome and VidVRD / VidOR loaders and the
synthetic benchmark."""

from dsgg_layers.data.action_genome import ActionGenome, write_action_genome
from dsgg_layers.data.batch import Batch, TrajectoryBatch
from dsgg_layers.data.graph import VideoGraph, VideoGraphDataset, with_union_features
from dsgg_layers.data.language import (
    PREDICATE_TEXT_SIMILARITY,
    predicate_text_similarity,
    predicate_text_vectors,
)
from dsgg_layers.data.probe import motion_probe
from dsgg_layers.data.render import render_images, render_maps
from dsgg_layers.data.segments import SegmentPairs, pair_geometry, segment_pairs
from dsgg_layers.data.synthetic import MOTION_PREDICATES, SyntheticActionGenome, SyntheticConfig
from dsgg_layers.data.trajectory import (
    TRAJECTORY_PREDICATE_SPLITS,
    TRAJECTORY_WORDS,
    SyntheticVidVRD,
    SyntheticVidVRDConfig,
)
from dsgg_layers.data.vidvrd import (
    VIDVRD_OBJECT_SPLITS,
    VIDVRD_PREDICATE_SPLITS,
    VidVRDVideo,
    load_vidvrd,
    segment_video,
)

__all__ = [
    "MOTION_PREDICATES",
    "PREDICATE_TEXT_SIMILARITY",
    "TRAJECTORY_PREDICATE_SPLITS",
    "TRAJECTORY_WORDS",
    "VIDVRD_OBJECT_SPLITS",
    "VIDVRD_PREDICATE_SPLITS",
    "ActionGenome",
    "Batch",
    "SegmentPairs",
    "SyntheticActionGenome",
    "SyntheticConfig",
    "SyntheticVidVRD",
    "SyntheticVidVRDConfig",
    "TrajectoryBatch",
    "VidVRDVideo",
    "VideoGraph",
    "VideoGraphDataset",
    "load_vidvrd",
    "motion_probe",
    "pair_geometry",
    "predicate_text_similarity",
    "predicate_text_vectors",
    "render_images",
    "render_maps",
    "segment_pairs",
    "segment_video",
    "with_union_features",
    "write_action_genome",
]
