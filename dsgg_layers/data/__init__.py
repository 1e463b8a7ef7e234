"""Data: the :class:`VideoGraph` container, the Action Genome loader and the synthetic benchmark."""

from dsgg_layers.data.action_genome import ActionGenome, write_action_genome
from dsgg_layers.data.graph import VideoGraph, VideoGraphDataset
from dsgg_layers.data.probe import motion_probe
from dsgg_layers.data.render import render_maps
from dsgg_layers.data.synthetic import MOTION_PREDICATES, SyntheticActionGenome, SyntheticConfig

__all__ = [
    "MOTION_PREDICATES",
    "ActionGenome",
    "SyntheticActionGenome",
    "SyntheticConfig",
    "VideoGraph",
    "VideoGraphDataset",
    "motion_probe",
    "render_maps",
    "write_action_genome",
]
