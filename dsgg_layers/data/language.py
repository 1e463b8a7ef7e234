"""The benchmark's language: the text geometry of Action Genome's predicates, as data.

The synthetic benchmark's ``text_coupling`` dial
([`SyntheticConfig`][dsgg_layers.data.SyntheticConfig]) pulls the predicates' appearance codes
toward this geometry, so that text-based heads (MoSA's ASM, TR²'s sentence classifier, ARN's
CLIP-initialised classifier) find in the pictures what real CLIP text gives them on real data:
predicates whose sentences are near look alike.

[`PREDICATE_TEXT_SIMILARITY`][] was measured once with [`predicate_text_similarity`][] from
WordLlama's static embeddings ([`StaticEmbeddingTower`][dsgg_layers.text.StaticEmbeddingTower],
``l2_supercat_256``) and is stored here, so that generating the benchmark needs no text model
(a test re-measures it when ``wordllama`` is installed).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

__all__ = ["PREDICATE_TEXT_SIMILARITY", "predicate_text_similarity", "predicate_text_vectors"]

# fmt: off
PREDICATE_TEXT_SIMILARITY: tuple[tuple[float, ...], ...] = (
    (1.000, 0.838, -0.011, 0.068, 0.027, -0.056, -0.064, -0.077, 0.051,
     -0.159, -0.015, -0.108, -0.061, -0.156, -0.131, -0.080, -0.046, -0.072,
     -0.113, -0.035, -0.048, -0.189, -0.088, 0.091, -0.172, -0.129),
    (0.838, 1.000, 0.123, 0.028, -0.089, -0.142, -0.150, -0.118, -0.084,
     -0.167, -0.088, -0.129, -0.098, -0.118, -0.151, -0.073, -0.042, 0.265,
     -0.148, -0.028, -0.072, -0.179, -0.117, -0.058, -0.136, -0.108),
    (-0.011, 0.123, 1.000, -0.044, -0.146, -0.158, 0.007, -0.149, -0.084,
     -0.028, 0.000, 0.050, -0.028, -0.042, -0.022, -0.039, -0.105, 0.149,
     -0.118, -0.116, -0.096, -0.082, -0.043, -0.152, 0.022, -0.074),
    (0.068, 0.028, -0.044, 1.000, 0.207, -0.095, 0.023, 0.014, 0.194,
     -0.011, -0.071, -0.008, -0.034, -0.154, -0.026, -0.127, -0.088, -0.067,
     0.012, 0.059, -0.112, -0.163, 0.053, 0.138, -0.069, -0.048),
    (0.027, -0.089, -0.146, 0.207, 1.000, 0.106, 0.139, -0.032, 0.127,
     -0.071, -0.052, -0.056, 0.035, -0.099, -0.022, -0.089, -0.052, -0.149,
     0.009, -0.018, -0.136, -0.016, -0.042, 0.007, -0.011, -0.032),
    (-0.056, -0.142, -0.158, -0.095, 0.106, 1.000, 0.332, 0.091, 0.102,
     -0.037, 0.074, -0.042, -0.109, 0.055, 0.012, -0.044, -0.104, -0.214,
     -0.047, -0.049, 0.023, -0.075, -0.176, 0.157, -0.059, -0.020),
    (-0.064, -0.150, 0.007, 0.023, 0.139, 0.332, 1.000, 0.035, 0.155,
     -0.077, -0.002, 0.012, -0.094, 0.051, -0.062, -0.075, -0.188, -0.254,
     0.027, 0.029, 0.058, -0.159, -0.139, 0.108, -0.098, 0.008),
    (-0.077, -0.118, -0.149, 0.014, -0.032, 0.091, 0.035, 1.000, -0.012,
     -0.089, -0.072, -0.089, -0.032, 0.135, -0.134, 0.047, 0.141, -0.125,
     -0.084, 0.044, 0.044, -0.113, -0.151, -0.104, -0.112, 0.044),
    (0.051, -0.084, -0.084, 0.194, 0.127, 0.102, 0.155, -0.012, 1.000,
     0.129, -0.003, 0.024, 0.051, -0.150, 0.082, -0.163, -0.119, -0.201,
     0.123, -0.166, 0.061, -0.090, -0.087, 0.398, -0.079, -0.114),
    (-0.159, -0.167, -0.028, -0.011, -0.071, -0.037, -0.077, -0.089, 0.129,
     1.000, -0.020, 0.006, -0.108, -0.028, 0.334, -0.131, -0.102, -0.044,
     0.045, -0.163, -0.122, 0.097, 0.018, -0.041, 0.003, -0.185),
    (-0.015, -0.088, 0.000, -0.071, -0.052, 0.074, -0.002, -0.072, -0.003,
     -0.020, 1.000, -0.216, -0.087, -0.041, -0.049, -0.068, -0.105, -0.067,
     -0.148, 0.034, 0.140, -0.004, -0.114, 0.165, 0.077, -0.031),
    (-0.108, -0.129, 0.050, -0.008, -0.056, -0.042, 0.012, -0.089, 0.024,
     0.006, -0.216, 1.000, 0.070, -0.122, 0.041, -0.040, -0.063, -0.053,
     0.000, -0.024, -0.138, -0.111, -0.004, 0.013, -0.024, -0.046),
    (-0.061, -0.098, -0.028, -0.034, 0.035, -0.109, -0.094, -0.032, 0.051,
     -0.108, -0.087, 0.070, 1.000, -0.019, -0.145, -0.024, -0.165, -0.016,
     -0.018, -0.012, -0.065, -0.039, -0.006, 0.009, -0.014, -0.083),
    (-0.156, -0.118, -0.042, -0.154, -0.099, 0.055, 0.051, 0.135, -0.150,
     -0.028, -0.041, -0.122, -0.019, 1.000, -0.124, 0.056, -0.019, 0.006,
     0.002, 0.001, -0.002, -0.022, -0.041, -0.210, -0.101, -0.072),
    (-0.131, -0.151, -0.022, -0.026, -0.022, 0.012, -0.062, -0.134, 0.082,
     0.334, -0.049, 0.041, -0.145, -0.124, 1.000, -0.130, -0.170, 0.011,
     -0.038, -0.025, -0.025, 0.184, -0.133, 0.000, -0.064, -0.045),
    (-0.080, -0.073, -0.039, -0.127, -0.089, -0.044, -0.075, 0.047, -0.163,
     -0.131, -0.068, -0.040, -0.024, 0.056, -0.130, 1.000, 0.079, -0.153,
     -0.225, -0.059, 0.218, -0.018, -0.118, -0.055, -0.070, -0.006),
    (-0.046, -0.042, -0.105, -0.088, -0.052, -0.104, -0.188, 0.141, -0.119,
     -0.102, -0.105, -0.063, -0.165, -0.019, -0.170, 0.079, 1.000, -0.075,
     -0.019, 0.054, -0.024, -0.085, 0.012, -0.013, -0.202, 0.079),
    (-0.072, 0.265, 0.149, -0.067, -0.149, -0.214, -0.254, -0.125, -0.201,
     -0.044, -0.067, -0.053, -0.016, 0.006, 0.011, -0.153, -0.075, 1.000,
     -0.125, -0.038, -0.125, 0.195, -0.021, -0.191, 0.056, -0.117),
    (-0.113, -0.148, -0.118, 0.012, 0.009, -0.047, 0.027, -0.084, 0.123,
     0.045, -0.148, 0.000, -0.018, 0.002, -0.038, -0.225, -0.019, -0.125,
     1.000, -0.003, -0.132, -0.011, 0.180, 0.047, 0.009, -0.077),
    (-0.035, -0.028, -0.116, 0.059, -0.018, -0.049, 0.029, 0.044, -0.166,
     -0.163, 0.034, -0.024, -0.012, 0.001, -0.025, -0.059, 0.054, -0.038,
     -0.003, 1.000, -0.181, -0.070, -0.154, -0.118, -0.213, 0.103),
    (-0.048, -0.072, -0.096, -0.112, -0.136, 0.023, 0.058, 0.044, 0.061,
     -0.122, 0.140, -0.138, -0.065, -0.002, -0.025, 0.218, -0.024, -0.125,
     -0.132, -0.181, 1.000, -0.106, -0.102, 0.098, -0.063, -0.052),
    (-0.189, -0.179, -0.082, -0.163, -0.016, -0.075, -0.159, -0.113, -0.090,
     0.097, -0.004, -0.111, -0.039, -0.022, 0.184, -0.018, -0.085, 0.195,
     -0.011, -0.070, -0.106, 1.000, -0.004, -0.116, 0.093, -0.143),
    (-0.088, -0.117, -0.043, 0.053, -0.042, -0.176, -0.139, -0.151, -0.087,
     0.018, -0.114, -0.004, -0.006, -0.041, -0.133, -0.118, 0.012, -0.021,
     0.180, -0.154, -0.102, -0.004, 1.000, -0.084, 0.077, -0.085),
    (0.091, -0.058, -0.152, 0.138, 0.007, 0.157, 0.108, -0.104, 0.398,
     -0.041, 0.165, 0.013, 0.009, -0.210, 0.000, -0.055, -0.013, -0.191,
     0.047, -0.118, 0.098, -0.116, -0.084, 1.000, -0.024, -0.088),
    (-0.172, -0.136, 0.022, -0.069, -0.011, -0.059, -0.098, -0.112, -0.079,
     0.003, 0.077, -0.024, -0.014, -0.101, -0.064, -0.070, -0.202, 0.056,
     0.009, -0.213, -0.063, 0.093, 0.077, -0.024, 1.000, -0.028),
    (-0.129, -0.108, -0.074, -0.048, -0.032, -0.020, 0.008, 0.044, -0.114,
     -0.185, -0.031, -0.046, -0.083, -0.072, -0.045, -0.006, 0.079, -0.117,
     -0.077, 0.103, -0.052, -0.143, -0.085, -0.088, -0.028, 1.000),
)
# fmt: on
"""``(26, 26)`` cosine similarities of Action Genome's predicates (``vocab.PREDICATES`` order)
in WordLlama's text space: each predicate's sentences "a person <predicate> a <object>" over
the 35 objects, centred per object (the object's share removed: 62% of the variance in real
CLIP), averaged, normalised. Rounded to 3 decimals. E.g. holding-carrying 0.334,
holding-sitting_on -0.044."""


def predicate_text_similarity(
    encode: Callable[[Sequence[str]], Tensor],
    predicates: Sequence[str] | None = None,
    objects: Sequence[str] | None = None,
) -> Tensor:
    """Measure the predicates' text geometry with a text encoder (how
    [`PREDICATE_TEXT_SIMILARITY`][] was made).

    Args:
        encode: texts -> ``(N, E)`` embeddings (e.g. ``StaticEmbeddingTower.encode``, or a
            CLIP text tower's).
        predicates: the predicates' words (default Action Genome's, ``text.class_words()``).
        objects: the object names (default Action Genome's 35 non-person classes).

    Returns:
        ``(P, P)`` cosine similarities of the per-object-centred sentence embeddings.

    Examples:
        >>> table = {"a": [1.0, 0.0], "b": [0.0, 1.0]}
        >>> enc = lambda texts: torch.tensor([[len(t) % 3, 1.0] for t in texts])
        >>> predicate_text_similarity(enc, ["hold", "carry"], ["cup"]).shape
        torch.Size([2, 2])
    """
    from dsgg_layers.text import class_words
    from dsgg_layers.vocab import OBJECT_CLASSES

    predicates = list(class_words() if predicates is None else predicates)
    if objects is None:
        objects = [o.replace("_", " ").replace("/", " or ") for o in OBJECT_CLASSES[1:]]
    x = torch.stack([encode([f"a person {p} a {o}" for p in predicates]) for o in objects])
    centred = torch.nn.functional.normalize(x - x.mean(1, keepdim=True), dim=-1).mean(0)
    centred = torch.nn.functional.normalize(centred, dim=-1)
    return centred @ centred.T


def predicate_text_vectors(similarity: Sequence[Sequence[float]] | None = None) -> np.ndarray:
    """Vectors whose Gram matrix is ``similarity`` (default [`PREDICATE_TEXT_SIMILARITY`][]):
    ``(P, P)``, from its eigendecomposition (negative eigenvalues, from rounding, set to 0),
    each row of norm 1.

    Examples:
        >>> v = predicate_text_vectors([[1.0, 0.5], [0.5, 1.0]])
        >>> round(float(v[0] @ v[1]), 3)
        0.5
    """
    gram = np.asarray(PREDICATE_TEXT_SIMILARITY if similarity is None else similarity, float)
    gram = (gram + gram.T) / 2
    values, vectors = np.linalg.eigh(gram)
    v = vectors * np.sqrt(np.clip(values, 0.0, None))
    return v / np.linalg.norm(v, axis=1, keepdims=True)
