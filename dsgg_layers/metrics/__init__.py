"""Metrics: the Action Genome scene-graph evaluator (R@K, mR@K, P@K) and VidVRD-helper's
relation detection and tagging (mAP, R@K, P@K)."""

from dsgg_layers.metrics.action_genome import (
    CONSTRAINTS,
    ActionGenomeEvaluator,
    action_genome_metrics,
    format_results,
    predicate_probabilities,
    sttran_to_tracks,
)
from dsgg_layers.metrics.vidvrd import VidVRDEvaluator, vidvrd_metrics, volume_iou

__all__ = [
    "CONSTRAINTS",
    "ActionGenomeEvaluator",
    "VidVRDEvaluator",
    "action_genome_metrics",
    "format_results",
    "predicate_probabilities",
    "sttran_to_tracks",
    "vidvrd_metrics",
    "volume_iou",
]
