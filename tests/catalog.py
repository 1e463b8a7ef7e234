"""The paper of every exported name, and the paper -> block tables generated from it.

``CATALOG`` maps every name of ``dsgg_layers.__all__`` (and the subpackage names the tables
cite) to the papers it serves (``"library"``: shared machinery). The README's and the docs
home's paper -> block tables are generated from it (``python tests/catalog.py --write``); a test
checks that both are current. Together with the block registry (tests/registry.py: factories and
example inputs of every module) it is the one source of what the library holds.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Paper:
    title: str
    page: str | None  # the docs page (docs/<page>)
    example: str | None
    status: str


PAPERS = {
    "mosa": Paper("MoSA: Motion-Guided Semantic Alignment for DSGG (arXiv:2604.19631)", "mosa.md",
                  "examples/mosa.py", "available"),
    "sttran": Paper("STTran (ICCV 2021): the relation backbone, and a drop-in for its code", None,
                    None, "available"),
    "rsnet": Paper("RS-Net: Context-Aware Relation Scoring for DSGG (arXiv:2511.08651)",
                   "rsnet.md", "examples/rsnet.py", "available"),
    "tr2": Paper("TR²: Cross-Modality Time-Variant Relation Learning for Generating Dynamic "
                 "Scene Graphs (ICRA 2023, arXiv:2305.08522)", "tr2.md", "examples/tr2.py",
                 "available (paper and code forms side by side on the TR² page)"),
    "arn": Paper("ARN: End-to-End Entity-Predicate Association Reasoning for DSGG", "arn.md",
                 "examples/arn.py", "available; objects are the one-stage assembly's bottleneck at "
                 "the CPU budget (ARN page)"),
    "uasan": Paper("UASAN: Open-Vocabulary Video Scene Graph Generation via Union-aware "
                   "Semantic Alignment", "uasan.md", "examples/uasan.py",
                   "in progress: blocks in the paper's and the code's form, data, metrics"),
}  # fmt: skip

_LIB = ("library",)
CATALOG: dict[str, tuple[str, ...]] = {
    # MoSA
    "motion_attributes": ("mosa",), "MotionFeatureExtractor": ("mosa",),
    "MotionInteraction": ("mosa",), "ActionSemanticMatcher": ("mosa",),
    "CategoryWeightedLoss": ("mosa",), "category_weighted_bce": ("mosa",),
    "class_weights": ("mosa",), "MOTION_GROUP_TAGS": ("mosa",), "NUM_MOTION_ATTRIBUTES": ("mosa",),
    # STTran
    "SpatialTemporalEncoder": ("sttran", "tr2"), "STTranPairs": ("sttran",),
    "sttran_to_tracks": ("sttran",), "from_sttran": ("sttran",), "link_tracks": ("sttran",),
    # RS-Net
    "SpatialContextEncoder": ("rsnet",), "TemporalContextEncoder": ("rsnet",),
    "RelationScoringDecoder": ("rsnet",), "RelationScorer": ("rsnet",),
    "RelationScores": ("rsnet",), "ContextFusion": ("rsnet",), "triplet_score": ("rsnet",),
    "assign_relations": ("rsnet",), "RelationAssignment": ("rsnet",),
    "filter_negatives": ("rsnet",), "cap_negatives": ("rsnet",),
    "softmax_focal_loss": ("rsnet",), "SoftmaxFocalLoss": ("rsnet",), "FocalLoss": ("rsnet",),
    "multilabel_margin_loss": ("rsnet",), "sttran_predicate_loss": ("rsnet", "sttran"),
    # TR²
    "MessageToken": ("tr2",), "TemporalDifferenceGuidance": ("tr2",), "guidance_loss": ("tr2",),
    "relation_text_targets": ("tr2",), "track_differences": ("tr2",), "label_changes": ("tr2",),
    "change_share": ("tr2",), "track_ranks": ("tr2",), "SentenceClassifier": ("tr2",),
    "multilabel_focal_loss": ("tr2",), "inverse_log_frequency": ("tr2",),
    "tr2_predicate_loss": ("tr2",),
    "text.tr2_prompts": ("tr2",), "text.tr2_sentences": ("tr2",),
    # ARN
    "AssociationAttention": ("arn",), "PredicateAssociationParser": ("arn",),
    "HierarchicalAttention": ("arn",), "AssociationReasoning": ("arn",),
    "TripletCategoryClassifier": ("arn",), "sigmoid_focal_loss": ("arn",),
    "SigmoidFocalLoss": ("arn",), "embedding_alignment_loss": ("arn",),
    "generalized_box_iou": ("arn",), "elementwise_generalized_box_iou": ("arn",),
    "linear_sum_assignment": ("arn",), "PairHungarianMatcher": ("arn",), "PairQueries": ("arn",),
    "pair_matching_cost": ("arn",), "MatchIndex": ("arn",), "match_index": ("arn",),
    "query_targets": ("arn",),
    "matched_class_loss": ("arn",), "matched_box_losses": ("arn",), "stack_references": ("arn",),
    "TemporalMemory": ("arn",), "reference_frames": ("arn",), "text.arn_prompts": ("arn",),
    "data.render_maps": ("arn",), "data.with_union_features": ("tr2",),
    "AnchorBoxes": ("arn",), "refine_boxes": ("arn",), "matched_localization": ("arn",),
    "oed_memory": ("arn",), "oed_predicate_probs": ("arn",), "valid_from_padding": ("arn",),
    # UASAN
    "VisualRefiner": ("uasan",), "SemanticAwareContextEncoder": ("uasan",),
    "ContextEncoding": ("uasan",), "UnionRelationDecoder": ("uasan",),
    "UnionRelationPredictor": ("uasan",), "UnionAwareRelationHead": ("uasan",),
    "RelationFeatures": ("uasan",), "data.SegmentPairs": ("uasan",),
    "data.segment_pairs": ("uasan",), "data.pair_geometry": ("uasan",),
    "RelationQueryDecoder": ("uasan",),
    "feature_distillation_loss": ("uasan",), "UnionRelationHead": ("uasan",),
    "UnionHeadOutput": ("uasan",), "token_cosine_logits": ("uasan",),
    "uasan_head_state_dict": ("uasan",), "PromptLearner": ("uasan",),
    "GroupedPromptLearner": ("uasan",), "TextTower": ("uasan",), "OpenCLIPTextTower": ("uasan",),
    "WordTower": ("uasan",), "text.StaticEmbeddingTower": ("uasan",),
    "trajectory_pair_motion": ("uasan",),
    "TrajectoryPairMotion": ("uasan",), "data.VidVRDVideo": ("uasan",),
    "data.load_vidvrd": ("uasan",), "data.segment_video": ("uasan",),
    "data.SyntheticVidVRD": ("uasan",), "metrics.VidVRDEvaluator": ("uasan",),
    "metrics.associate_relations": ("uasan",), "metrics.OpenVocabularyEvaluator": ("uasan",),
    # shared machinery
    **dict.fromkeys((
        "TransformerEncoderLayer", "TransformerEncoder", "TransformerDecoderLayer",
        "TransformerDecoder", "AttentionBlock", "MaskedMultiheadAttention",
        "masked_attention", "ValidRows",
        "MaskOrRows", "rowwise", "split_mask", "LearnableTokens", "prepend_tokens",
        "split_tokens", "LearnedPositions", "sinusoidal_positions", "MaskedPooling",
        "masked_pool", "previous_frame_index", "gather_previous", "gather_frames",
        "box_area", "box_center", "box_convert", "box_iou", "box_union", "elementwise_box_iou",
        "normalize_boxes", "image_size_like", "person_object_pairs", "build_track_index",
        "TrackIndex", "flat_to_tracks", "tracks_to_flat", "PairTracks", "collate_tracks",
        "split_tracks", "track_sizes", "padding_fraction", "bucket_batches",
        "BucketBatchSampler", "label_frequencies", "text", "vocab", "__version__",
    ), _LIB),
}  # fmt: skip


def resolve(name: str) -> object:
    """The object a catalog name stands for (``text.tr2_prompts``: in ``dsgg_layers.text``)."""
    module, _, attr = name.rpartition(".")
    return getattr(importlib.import_module("dsgg_layers" + (f".{module}" if module else "")), attr)


def api_page(name: str) -> str:
    """``api/<module>.md``, the API page of the module whose ``__all__`` holds ``name``."""
    module, _, attr = name.rpartition(".")
    if module:
        return f"api/{module}.md"
    for path in sorted((ROOT / "dsgg_layers").glob("*.py")):
        if path.stem.startswith("_"):
            continue
        mod = importlib.import_module(f"dsgg_layers.{path.stem}")
        if attr in getattr(mod, "__all__", ()):
            return f"api/{path.stem}.md"
    raise KeyError(f"{name}: in no module's __all__")


HIDDEN = {"FocalLoss"}  # the deprecated alias of SoftmaxFocalLoss: not advertised
PAPER_NAMES = {  # what the papers call the blocks, shown beside them
    "MotionFeatureExtractor": "MFE", "MotionInteraction": "MIM", "ActionSemanticMatcher": "ASM",
    "PredicateAssociationParser": "PAP", "HierarchicalAttention": "HA",
}  # fmt: skip


def _name(n: str) -> str:
    return f"`{n}`" + (f" ({PAPER_NAMES[n]})" if n in PAPER_NAMES else "")


def _cell(key: str, links: bool) -> str:
    names = [n for n, keys in CATALOG.items() if key in keys and n not in HIDDEN]
    if links:
        groups: list[tuple[str, list[str]]] = []
        for n in names:
            page = api_page(n)
            if groups and groups[-1][0] == page:
                groups[-1][1].append(n)
            else:
                groups.append((page, [n]))
        cell = ", ".join(f"[{', '.join(_name(n) for n in ns)}]({p})" for p, ns in groups)
    else:
        cell = ", ".join(_name(n) for n in names)
    paper = PAPERS[key]
    extra = []
    if paper.example:
        extra.append(f"`{paper.example}`")
    if links and paper.page:
        extra.append(f"[the {key_name(key)} page]({paper.page})")
    return cell + ("; " + ", ".join(extra) if extra else "")


def key_name(key: str) -> str:
    return {"mosa": "MoSA", "sttran": "STTran", "rsnet": "RS-Net", "tr2": "TR²", "arn": "ARN",
            "uasan": "UASAN"}[key]  # fmt: skip


def paper_table(links: bool) -> str:
    """The paper -> block table (markdown); ``links``: names link to their API pages (docs)."""
    lines = ["| paper | blocks | status |", "| --- | --- | --- |"]
    for key, paper in PAPERS.items():
        lines.append(f"| {paper.title} | {_cell(key, links)} | {paper.status} |")
    return "\n".join(lines)


START = "<!-- generated by tests/catalog.py: the paper -> block table -->"
END = "<!-- end of the generated table -->"
TARGETS = {ROOT / "README.md": False, ROOT / "docs" / "index.md": True}


def with_table(text: str, links: bool) -> str:
    """``text`` with the generated table between the markers."""
    head, sep, rest = text.partition(START)
    _, sep2, tail = rest.partition(END)
    if not sep or not sep2:
        raise ValueError("the table markers are missing")
    return f"{head}{START}\n{paper_table(links)}\n{END}{tail}"


if __name__ == "__main__":
    if "--write" not in sys.argv:
        print(paper_table(links=False))
    else:
        for path, links in TARGETS.items():
            path.write_text(with_table(path.read_text(), links))
            print(f"wrote the table into {path}")
