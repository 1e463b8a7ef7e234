"""dsgg_layers: composable PyTorch building blocks for dynamic (video) scene graph generation.

The public API is re-exported here; each block also lives in the module named after its concern
(``dsgg_layers.boxes``, ``dsgg_layers.layout``, ``dsgg_layers.attention``, ...). Data
(``dsgg_layers.data``) and metrics (``dsgg_layers.metrics``) are namespaces of their own.
"""

from dsgg_layers import text, vocab
from dsgg_layers.association import (
    AssociationAttention,
    AssociationReasoning,
    HierarchicalAttention,
    PredicateAssociationParser,
)
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
    elementwise_generalized_box_iou,
    generalized_box_iou,
    image_size_like,
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
    FocalLoss,
    SigmoidFocalLoss,
    category_weighted_bce,
    class_weights,
    embedding_alignment_loss,
    feature_distillation_loss,
    inverse_log_frequency,
    label_frequencies,
    multilabel_focal_loss,
    multilabel_margin_loss,
    sigmoid_focal_loss,
    softmax_focal_loss,
    sttran_predicate_loss,
)
from dsgg_layers.matching import PairHungarianMatcher, linear_sum_assignment
from dsgg_layers.message import (
    MessageToken,
    TemporalDifferenceGuidance,
    change_share,
    guidance_loss,
    label_changes,
    relation_text_targets,
    track_differences,
)
from dsgg_layers.motion import (
    MOTION_GROUP_TAGS,
    NUM_MOTION_ATTRIBUTES,
    MotionFeatureExtractor,
    MotionInteraction,
    TrajectoryPairMotion,
    motion_attributes,
    trajectory_pair_motion,
)
from dsgg_layers.pooling import MaskedPooling, masked_pool
from dsgg_layers.positions import LearnedPositions, sinusoidal_positions
from dsgg_layers.prompts import (
    GroupedPromptLearner,
    OpenCLIPTextTower,
    PromptLearner,
    TextTower,
    WordTower,
)
from dsgg_layers.queries import PairQueries, TemporalMemory, reference_frames
from dsgg_layers.relation import SpatialTemporalEncoder
from dsgg_layers.rows import ValidRows
from dsgg_layers.sampling import (
    RelationAssignment,
    assign_relations,
    cap_negatives,
    filter_negatives,
)
from dsgg_layers.scoring import (
    ContextFusion,
    RelationScorer,
    RelationScores,
    RelationScoringDecoder,
    SpatialContextEncoder,
    TemporalContextEncoder,
    triplet_score,
)
from dsgg_layers.semantic import (
    ActionSemanticMatcher,
    SentenceClassifier,
    TripletCategoryClassifier,
)
from dsgg_layers.sttran import STTranPairs, from_sttran, link_tracks, sttran_to_tracks
from dsgg_layers.temporal import (
    gather_frames,
    gather_previous,
    previous_frame_index,
    track_ranks,
)
from dsgg_layers.tokens import LearnableTokens, prepend_tokens, split_tokens
from dsgg_layers.union import (
    ContextEncoding,
    RelationQueryDecoder,
    SemanticAwareContextEncoder,
    UnionRelationDecoder,
    UnionRelationPredictor,
    VisualRefiner,
)
from dsgg_layers.union_head import (
    UnionHeadOutput,
    UnionRelationHead,
    token_cosine_logits,
    uasan_head_state_dict,
)

__version__ = "0.1.0.dev0"

__all__ = [
    "MOTION_GROUP_TAGS",
    "NUM_MOTION_ATTRIBUTES",
    "ActionSemanticMatcher",
    "AssociationAttention",
    "AssociationReasoning",
    "BucketBatchSampler",
    "CategoryWeightedLoss",
    "ContextEncoding",
    "ContextFusion",
    "FocalLoss",
    "GroupedPromptLearner",
    "HierarchicalAttention",
    "LearnableTokens",
    "LearnedPositions",
    "MaskedMultiheadAttention",
    "MaskedPooling",
    "MessageToken",
    "MotionFeatureExtractor",
    "MotionInteraction",
    "OpenCLIPTextTower",
    "PairHungarianMatcher",
    "PairQueries",
    "PairTracks",
    "PredicateAssociationParser",
    "PromptLearner",
    "RelationAssignment",
    "RelationQueryDecoder",
    "RelationScorer",
    "RelationScores",
    "RelationScoringDecoder",
    "STTranPairs",
    "SemanticAwareContextEncoder",
    "SentenceClassifier",
    "SigmoidFocalLoss",
    "SpatialContextEncoder",
    "SpatialTemporalEncoder",
    "TemporalContextEncoder",
    "TemporalDifferenceGuidance",
    "TemporalMemory",
    "TextTower",
    "TrackIndex",
    "TrajectoryPairMotion",
    "TransformerDecoder",
    "TransformerDecoderLayer",
    "TransformerEncoder",
    "TransformerEncoderLayer",
    "TripletCategoryClassifier",
    "UnionHeadOutput",
    "UnionRelationDecoder",
    "UnionRelationHead",
    "UnionRelationPredictor",
    "ValidRows",
    "VisualRefiner",
    "WordTower",
    "__version__",
    "assign_relations",
    "box_area",
    "box_center",
    "box_convert",
    "box_iou",
    "box_union",
    "bucket_batches",
    "build_track_index",
    "cap_negatives",
    "category_weighted_bce",
    "change_share",
    "class_weights",
    "collate_tracks",
    "elementwise_box_iou",
    "elementwise_generalized_box_iou",
    "embedding_alignment_loss",
    "feature_distillation_loss",
    "filter_negatives",
    "flat_to_tracks",
    "from_sttran",
    "gather_frames",
    "gather_previous",
    "generalized_box_iou",
    "guidance_loss",
    "image_size_like",
    "inverse_log_frequency",
    "label_changes",
    "label_frequencies",
    "linear_sum_assignment",
    "link_tracks",
    "masked_attention",
    "masked_pool",
    "motion_attributes",
    "multilabel_focal_loss",
    "multilabel_margin_loss",
    "normalize_boxes",
    "padding_fraction",
    "person_object_pairs",
    "prepend_tokens",
    "previous_frame_index",
    "reference_frames",
    "relation_text_targets",
    "sigmoid_focal_loss",
    "sinusoidal_positions",
    "softmax_focal_loss",
    "split_tokens",
    "split_tracks",
    "sttran_predicate_loss",
    "sttran_to_tracks",
    "text",
    "token_cosine_logits",
    "track_differences",
    "track_ranks",
    "track_sizes",
    "tracks_to_flat",
    "trajectory_pair_motion",
    "triplet_score",
    "uasan_head_state_dict",
    "vocab",
]
