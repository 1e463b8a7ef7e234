"""Every block compiles with ``torch.compile(fullgraph=True)`` (a graph break is an error) and
gives the eager output, on CPU, at small sizes."""

import pytest
import torch
import torch.nn.functional as F

from dsgg_layers import (
    ActionSemanticMatcher,
    CategoryWeightedLoss,
    MaskedMultiheadAttention,
    MotionFeatureExtractor,
    MotionInteraction,
    SpatialTemporalEncoder,
    TransformerDecoderLayer,
    TransformerEncoderLayer,
    box_iou,
    category_weighted_bce,
    elementwise_box_iou,
    motion_attributes,
)


def tracks(seed=0, B=2, T=5, P=3, D=16):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, T, P, D, generator=g)
    mask = torch.rand(B, T, P, generator=g) > 0.3
    xy = torch.rand(B, T, P, 2, 2, generator=g)
    boxes = torch.cat((xy, xy + torch.rand(B, T, P, 2, 2, generator=g) * 0.3), -1)
    times = torch.cumsum(torch.randint(1, 9, (B, T), generator=g), 1)
    return x, mask, boxes[..., 0, :], boxes[..., 1, :], times


def _mfe():
    mfe = MotionFeatureExtractor(16).eval()
    mfe.running_var.fill_(0.5)
    return mfe


CASES = {
    "motion_attributes": (
        lambda: None,
        lambda m, x, k, s, o, t: motion_attributes(s, o, k, t, window=3),
    ),
    "MotionFeatureExtractor": (_mfe, lambda m, x, k, s, o, t: m(s, o, k, t, image_size=(640, 480))),
    "MotionInteraction": (
        lambda: MotionInteraction(16, 4).eval(),
        lambda m, x, k, s, o, t: m(x, x.flip(-1), k),
    ),
    "MotionInteraction(concat)": (
        lambda: MotionInteraction(16, fusion="concat").eval(),
        lambda m, x, k, s, o, t: m(x, x.flip(-1), k),
    ),
    "ActionSemanticMatcher": (
        lambda: ActionSemanticMatcher(
            16, F.normalize(torch.randn(7, 12), dim=-1), similarity="cosine"
        ),
        lambda m, x, k, s, o, t: m(x),
    ),
    "CategoryWeightedLoss": (
        lambda: CategoryWeightedLoss(torch.arange(1.0, 17.0)),
        lambda m, x, k, s, o, t: m(x, x > 0, k),
    ),
    "category_weighted_bce": (
        lambda: None,
        lambda m, x, k, s, o, t: category_weighted_bce(x, x > 0.5, torch.ones(16)),
    ),
    "MaskedMultiheadAttention": (
        lambda: MaskedMultiheadAttention(16, 4).eval(),
        lambda m, x, k, s, o, t: m(x, x, x, query_mask=k, key_mask=k)[0],
    ),
    "TransformerEncoderLayer": (
        lambda: TransformerEncoderLayer(16, 4, 32).eval(),
        lambda m, x, k, s, o, t: m(x, k),
    ),
    "TransformerDecoderLayer": (
        lambda: TransformerDecoderLayer(16, 4, 32).eval(),
        lambda m, x, k, s, o, t: m(x, x.flip(-2), k, k.flip(-1)),
    ),
    "SpatialTemporalEncoder": (
        lambda: SpatialTemporalEncoder(16, 4, 32, temporal_layers=2).eval(),
        lambda m, x, k, s, o, t: m(x, k),
    ),
    "SpatialTemporalEncoder(window=2)": (
        lambda: SpatialTemporalEncoder(16, 4, 32, temporal_layers=2, temporal_window=2).eval(),
        lambda m, x, k, s, o, t: m(x, k),
    ),
    "box_iou": (lambda: None, lambda m, x, k, s, o, t: box_iou(s.flatten(0, -2), o.flatten(0, -2))),
    "elementwise_box_iou": (lambda: None, lambda m, x, k, s, o, t: elementwise_box_iou(s, o)),
}


@pytest.mark.parametrize("name", list(CASES))
def test_fullgraph_compile_matches_eager(name):
    torch._dynamo.reset()  # one fresh compile per case: the cases share the wrapper's code object
    build, call = CASES[name]
    torch.manual_seed(0)
    module = build()
    inputs = tracks()
    eager = call(module, *inputs)
    compiled = torch.compile(lambda *a: call(module, *a), fullgraph=True)
    torch.testing.assert_close(compiled(*inputs), eager, rtol=1e-4, atol=1e-5)
