"""dsgg_layers: composable PyTorch building blocks for dynamic (video) scene graph generation.

The public API is re-exported here; each block also lives in the module named after its concern
(``dsgg_layers.boxes``, ``dsgg_layers.layout``, ``dsgg_layers.attention``, ...). Data
(``dsgg_layers.data``) and metrics (``dsgg_layers.metrics``) are namespaces of their own.
"""

from dsgg_layers import text, vocab
from dsgg_layers.attention import (
    MaskedMultiheadAttention,
    TransformerDecoder,
    TransformerDecoderLayer,
    TransformerEncoder,
    TransformerEncoderLayer,
    masked_attention,
)
from dsgg_layers.batching import (
    BucketBatchSampler,
    bucket_batches,
    collate_tracks,
    padding_fraction,
    split_tracks,
    track_sizes,
)
from dsgg_layers.boxes import (
    box_area,
    box_center,
    box_convert,
    box_iou,
    box_union,
    elementwise_box_iou,
    normalize_boxes,
)
from dsgg_layers.layout import (
    PairTracks,
    TrackIndex,
    build_track_index,
    flat_to_tracks,
    person_object_pairs,
    tracks_to_flat,
)
from dsgg_layers.losses import (
    CategoryWeightedLoss,
    category_weighted_bce,
    class_weights,
    label_frequencies,
)
from dsgg_layers.motion import (
    NUM_MOTION_ATTRIBUTES,
    MotionFeatureExtractor,
    MotionInteraction,
    motion_attributes,
)
from dsgg_layers.relation import SpatialTemporalEncoder, sinusoidal_positions
from dsgg_layers.semantic import ActionSemanticMatcher

__version__ = "0.1.0.dev0"

__all__ = [
    "NUM_MOTION_ATTRIBUTES",
    "ActionSemanticMatcher",
    "BucketBatchSampler",
    "CategoryWeightedLoss",
    "MaskedMultiheadAttention",
    "MotionFeatureExtractor",
    "MotionInteraction",
    "PairTracks",
    "SpatialTemporalEncoder",
    "TrackIndex",
    "TransformerDecoder",
    "TransformerDecoderLayer",
    "TransformerEncoder",
    "TransformerEncoderLayer",
    "__version__",
    "box_area",
    "box_center",
    "box_convert",
    "box_iou",
    "box_union",
    "bucket_batches",
    "build_track_index",
    "category_weighted_bce",
    "class_weights",
    "collate_tracks",
    "elementwise_box_iou",
    "flat_to_tracks",
    "label_frequencies",
    "masked_attention",
    "motion_attributes",
    "normalize_boxes",
    "padding_fraction",
    "person_object_pairs",
    "sinusoidal_positions",
    "split_tracks",
    "text",
    "track_sizes",
    "tracks_to_flat",
    "vocab",
]
