"""Metrics: the Action Genome scene-graph evaluator (R@K, mR@K, P@K)."""

from dsgg_layers.metrics.action_genome import (
    CONSTRAINTS,
    ActionGenomeEvaluator,
    action_genome_metrics,
    format_results,
    predicate_probabilities,
    sttran_to_tracks,
)

__all__ = [
    "CONSTRAINTS",
    "ActionGenomeEvaluator",
    "action_genome_metrics",
    "format_results",
    "predicate_probabilities",
    "sttran_to_tracks",
]
