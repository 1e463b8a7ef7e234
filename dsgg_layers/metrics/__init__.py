"""Metrics: the Action Genome scene-graph evaluator (R@K, mR@K, P@K) and VidVRD-helper's
relation detection and tagging (mAP, R@K, P@K) with the greedy relational association that
produces video-level instances."""

from dsgg_layers.metrics.action_genome import (
    CONSTRAINTS,
    ActionGenomeEvaluator,
    action_genome_metrics,
    format_results,
    predicate_probabilities,
    sttran_to_tracks,
)
from dsgg_layers.metrics.base import SummableMetric
from dsgg_layers.metrics.relation_association import (
    ASSOCIATION_PRESETS,
    associate_relations,
    segment_triplet_score,
)
from dsgg_layers.metrics.vidvrd import (
    OpenVocabularyEvaluator,
    VidVRDEvaluator,
    vidvrd_metrics,
    volume_iou,
)

__all__ = [
    "ASSOCIATION_PRESETS",
    "CONSTRAINTS",
    "ActionGenomeEvaluator",
    "OpenVocabularyEvaluator",
    "SummableMetric",
    "VidVRDEvaluator",
    "action_genome_metrics",
    "associate_relations",
    "format_results",
    "predicate_probabilities",
    "segment_triplet_score",
    "sttran_to_tracks",
    "vidvrd_metrics",
    "volume_iou",
]
