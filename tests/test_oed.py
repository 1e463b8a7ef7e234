"""The seam to OED's tensors: layout, mask convention, predicate probabilities and its matcher.

The matcher test transcribes the cost formula of OED's ``models/matcher.py``
(``HungarianMatcherDSGG.forward``, guanw-pku/OED) with its own tensor layout (targets
concatenated over frames, sequence of per-frame sizes) and checks costs and assignments.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dsgg_layers import (
    AssociationReasoning,
    PairHungarianMatcher,
    PairQueries,
    TemporalMemory,
    linear_sum_assignment,
    oed_memory,
    oed_predicate_probs,
    pair_matching_cost,
    valid_from_padding,
)
from dsgg_layers.boxes import box_convert, generalized_box_iou


def _oed_tensors(seed: int = 0, S: int = 12, n: int = 3, D: int = 16):
    g = torch.Generator().manual_seed(seed)
    memory = torch.randn(S, n, D, generator=g)
    pos = torch.randn(S, n, D, generator=g)
    padding = torch.zeros(n, S, dtype=torch.bool)
    padding[:, S - 3 :] = True  # the last three pixels of every frame are padding
    padding[2, S - 5 :] = True  # one reference frame is smaller
    return memory, pos, padding


def test_valid_from_padding_inverts_and_checks_dtype():
    pad = torch.tensor([[True, False], [False, False]])
    assert valid_from_padding(pad).tolist() == [[False, True], [True, True]]
    with pytest.raises(TypeError, match="padding_mask"):
        valid_from_padding(pad.int())
    with pytest.raises(TypeError, match="mask_x"):
        valid_from_padding([[True]], "mask_x")


@pytest.mark.parametrize("key_index", [0, 1, 2])
def test_oed_memory_layout(key_index):
    memory, pos, padding = _oed_tensors()
    feats, p, valid = oed_memory(memory, padding, pos, key_index=key_index)
    order = [key_index] + [i for i in range(3) if i != key_index]
    for slot, frame in enumerate(order):
        assert torch.equal(feats[slot], memory[:, frame])
        assert torch.equal(p[slot], pos[:, frame])
        assert torch.equal(valid[slot], ~padding[frame])


def test_oed_memory_errors():
    memory, pos, padding = _oed_tensors()
    with pytest.raises(ValueError, match="key_index"):
        oed_memory(memory, padding, key_index=3)
    with pytest.raises(ValueError, match="key_index"):
        oed_memory(memory, padding, key_index=-1)
    with pytest.raises(TypeError, match="padding_mask"):
        oed_memory(memory, padding.float())
    with pytest.raises(ValueError, match="padding_mask"):
        oed_memory(memory, padding.T)  # (S, n): the transposed mask
    with pytest.raises(ValueError, match="pos"):
        oed_memory(memory, padding, pos[:, :2])
    assert oed_memory(memory, padding)[1] is None


def test_temporal_memory_token_mask_and_errors():
    tm = TemporalMemory(3, 16)
    feats = torch.randn(3, 12, 16)
    token = torch.ones(3, 12, dtype=torch.bool)
    token[1, 5:] = False
    _, _, mask = tm(feats, frame_mask=torch.tensor([True, True, False]), token_mask=token)
    expected = torch.cat([torch.ones(12), (torch.arange(12) < 5).float(), torch.zeros(12)]).bool()
    assert torch.equal(mask, expected)
    with pytest.raises(ValueError, match="token_mask"):
        tm(feats, token_mask=token[:, :5])
    with pytest.raises(TypeError, match="token_mask"):
        tm(feats, token_mask=token.float())


def test_pair_queries_shared_is_oed_single_embedding():
    q = PairQueries(10, 16, shared=True)
    oed_query_embed = torch.nn.Embedding(10, 16)  # OED's CDNDSGG.query_embed
    with torch.no_grad():
        q.subject_pos.weight.copy_(oed_query_embed.weight)
    pos = q()
    assert torch.equal(pos["subject_pos"], oed_query_embed.weight)
    assert torch.equal(pos["object_pos"], oed_query_embed.weight)
    assert sum(p.numel() for p in q.parameters()) == 10 * 16 + 3 * 16
    assert "shared=True" in repr(q)
    q.reset_parameters()
    assert torch.equal(q()["subject_pos"], q()["object_pos"])
    q.load_state_dict(q.state_dict())
    with pytest.raises(TypeError, match="shared"):
        PairQueries(10, 16, shared=1)
    assert PairQueries(10, 16)().keys() == pos.keys()


def test_association_reasoning_on_oed_tensors_equals_our_layout():
    """OED's tensors through the seam give what the blocks give on the library's own layout,
    and the padded pixels never reach the output; the unconverted mask changes it silently."""
    torch.manual_seed(0)
    Q, D, n, S = 7, 16, 3, 12
    memory, pos, padding = _oed_tensors(S=S, n=n, D=D)
    cur_idx = 1
    queries, memory_of = PairQueries(Q, D, shared=True), TemporalMemory(n, D)
    reasoning = AssociationReasoning(D, 4).eval()
    # OED's CDN.forward: instance and predicate decoder stacks (L, n, Q, D); CDNDSGG reads the
    # key frame's last layer. One predicate decoder feeds its three heads: the feature 3 times.
    hopd = torch.randn(3, n, Q, D)
    interaction = torch.randn(3, n, Q, D)
    entity, predicate = hopd[-1, cur_idx : cur_idx + 1], interaction[-1, cur_idx : cur_idx + 1]

    feats, mpos, valid = oed_memory(memory, padding, pos, key_index=cur_idx)
    mem, mem_pos, mem_mask = memory_of(feats, spatial_pos=mpos, token_mask=valid)
    run = lambda m, mask: reasoning(  # noqa: E731
        [predicate] * 3, entity, m.unsqueeze(0), memory_pos=mem_pos.unsqueeze(0),
        query_pos=queries()["object_pos"], memory_mask=mask.unsqueeze(0))  # fmt: skip
    out = run(mem, mem_mask)

    # the library's layout built by hand: frames batch first, key frame first, valid = ~padding
    order = [cur_idx, 0, 2]
    ours = torch.stack([memory[:, f] for f in order])
    ours_pos = torch.stack([pos[:, f] for f in order])
    ours_valid = torch.stack([~padding[f] for f in order])
    mem2, pos2, mask2 = memory_of(ours, spatial_pos=ours_pos, token_mask=ours_valid)
    assert torch.equal(mem2, mem) and torch.equal(pos2, mem_pos) and torch.equal(mask2, mem_mask)
    out2 = reasoning([predicate] * 3, entity, mem2.unsqueeze(0), memory_pos=pos2.unsqueeze(0),
                     query_pos=queries()["object_pos"], memory_mask=mask2.unsqueeze(0))  # fmt: skip
    for a, b in zip(out, out2, strict=True):
        assert a.shape == (1, Q, D)
        torch.testing.assert_close(a, b)

    # garbage at OED's padded pixels never reaches the output
    garbage = memory.clone()
    garbage[padding.T] = 1e6
    feats_g, _, _ = oed_memory(garbage, padding, pos, key_index=cur_idx)
    mem_g, _, _ = memory_of(feats_g, spatial_pos=mpos, token_mask=valid)
    for a, b in zip(out, run(mem_g, mem_mask), strict=True):
        torch.testing.assert_close(a, b)

    # why the conversion is explicit: OED's mask passed as if it were ours changes the output
    wrong = torch.stack([padding[f] for f in order]).flatten()
    assert any(not torch.allclose(a, b) for a, b in zip(out, run(mem, wrong), strict=True))


@given(st.integers(0, 2**16), st.integers(1, 4))
@settings(max_examples=25, deadline=None)
def test_oed_predicate_probs_groups(seed, lead):
    g = torch.Generator().manual_seed(seed)
    a, s, c = (torch.randn(lead, k, generator=g) * 5 for k in (4, 6, 17))
    p = oed_predicate_probs(a, s, c)
    assert p.shape == (lead, 26)
    torch.testing.assert_close(p[:, :3], a.softmax(-1)[:, :3])
    torch.testing.assert_close(p[:, 3:9], s.sigmoid())
    torch.testing.assert_close(p[:, 9:], c.sigmoid())
    rest = a.softmax(-1)[:, 3]  # the background column takes the rest
    torch.testing.assert_close(p[:, :3].sum(-1) + rest, torch.ones(lead))


def test_oed_predicate_probs_hand_case_and_errors():
    a = torch.log(torch.tensor([[1.0, 2.0, 3.0, 4.0]]))  # softmax 0.1 0.2 0.3 (background 0.4)
    p = oed_predicate_probs(a, torch.zeros(1, 6), torch.full((1, 17), float("inf")))
    torch.testing.assert_close(p[0, :3], torch.tensor([0.1, 0.2, 0.3]))
    assert p[0, 3:9].eq(0.5).all() and p[0, 9:].eq(1.0).all()
    with pytest.raises(ValueError, match="spatial_logits"):
        oed_predicate_probs(torch.zeros(2, 4), torch.zeros(3, 6), torch.zeros(2, 17))
    with pytest.raises(ValueError, match="attention_logits"):
        oed_predicate_probs(torch.zeros(2, 1), torch.zeros(2, 6), torch.zeros(2, 17))
    with pytest.raises(TypeError, match="contacting_logits"):
        oed_predicate_probs(torch.zeros(2, 4), torch.zeros(2, 6), torch.zeros(2, 17).long())


def _oed_matcher_cost(outputs, targets, w_obj=1.0, w_rel=1.0, w_bbox=2.5, w_giou=1.0):
    """A transcription of OED's ``HungarianMatcherDSGG.forward`` cost (its layout: frames'
    targets concatenated; ``attn_logits`` 3 + 1 columns), returning per-frame cost blocks."""
    bs, nq = outputs["pred_obj_logits"].shape[:2]
    obj_p = outputs["pred_obj_logits"].flatten(0, 1).softmax(-1)
    attn_p = outputs["pred_attn_logits"].flatten(0, 1).softmax(-1)
    spat_p = outputs["pred_spatial_logits"].flatten(0, 1).sigmoid()
    cont_p = outputs["pred_contacting_logits"].flatten(0, 1).sigmoid()
    sub_b, obj_b = outputs["pred_sub_boxes"].flatten(0, 1), outputs["pred_obj_boxes"].flatten(0, 1)
    cat = lambda k: torch.cat([t[k] for t in targets])  # noqa: E731
    t_obj, t_sub, t_objb = cat("obj_labels"), cat("sub_boxes"), cat("obj_boxes")
    t_attn, t_spat, t_cont = (cat(k).T for k in ("attn_labels", "spatial_labels",
                                                  "contacting_labels"))  # fmt: skip
    c_obj = -obj_p[:, t_obj]
    c_sub = torch.cdist(sub_b, t_sub, p=1)
    c_objb = torch.cdist(obj_b, t_objb, p=1) * (t_objb != 0).any(dim=1).unsqueeze(0)
    c_bbox = torch.stack((c_sub, c_objb)).max(dim=0)[0]
    xyxy = lambda b: box_convert(b, "cxcywh", "xyxy")  # noqa: E731
    g_sub = -generalized_box_iou(xyxy(sub_b), xyxy(t_sub))
    g_obj = -generalized_box_iou(xyxy(obj_b), xyxy(t_objb)) + g_sub * (t_objb == 0).all(
        dim=1).unsqueeze(0)  # fmt: skip
    c_giou = torch.stack((g_sub, g_obj)).max(dim=0)[0]

    def soft(p, t):
        pos = p.matmul(t) / (t.sum(dim=0, keepdim=True) + 1e-4)
        return -(pos + (1 - p).matmul(1 - t) / ((1 - t).sum(dim=0, keepdim=True) + 1e-4)) / 2

    c_rel = soft(attn_p[:, : t_attn.shape[0]], t_attn) + soft(spat_p, t_spat) + soft(cont_p, t_cont)
    C = w_obj * c_obj + w_rel * c_rel + w_bbox * c_bbox + w_giou * c_giou
    return C.view(bs, nq, -1).split([len(t["obj_labels"]) for t in targets], -1)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_oed_matcher_matches_a_transcription_of_oed_code(seed):
    g = torch.Generator().manual_seed(seed)
    B, Q, C = 3, 9, 36
    sizes = [2, 0, 4]  # a frame without annotated pairs too
    outputs = {
        "pred_obj_logits": torch.randn(B, Q, C + 1, generator=g) * 3,  # no-object column last
        "pred_attn_logits": torch.randn(B, Q, 4, generator=g) * 3,
        "pred_spatial_logits": torch.randn(B, Q, 6, generator=g) * 3,
        "pred_contacting_logits": torch.randn(B, Q, 17, generator=g) * 3,
        "pred_sub_boxes": torch.rand(B, Q, 4, generator=g) * 0.5 + 0.25,
        "pred_obj_boxes": torch.rand(B, Q, 4, generator=g) * 0.5 + 0.25,
    }
    targets = []
    for k in sizes:
        attn = torch.zeros(k, 3)
        attn[torch.arange(k), torch.randint(0, 3, (k,), generator=g)] = 1
        targets.append({
            "obj_labels": torch.randint(1, C, (k,), generator=g),
            "sub_boxes": torch.rand(k, 4, generator=g) * 0.5 + 0.25,
            "obj_boxes": torch.rand(k, 4, generator=g) * 0.5 + 0.25,
            "attn_labels": attn,
            "spatial_labels": (torch.rand(k, 6, generator=g) > 0.6).float(),
            "contacting_labels": (torch.rand(k, 17, generator=g) > 0.8).float(),
        })  # fmt: skip
    expected = _oed_matcher_cost(outputs, targets)

    # the same frames in the library's padded layout
    G = max(sizes)

    def stack(key):  # the frames' targets, zero-padded to G, with OED's three label groups joined
        rows = [torch.cat([t[k] for k in key], -1) for t in targets]
        return torch.stack([torch.cat([r, r.new_zeros(G - len(r), *r.shape[1:])]) for r in rows])

    ours_t = {
        "object_labels": stack(["obj_labels"]),
        "predicates": stack(["attn_labels", "spatial_labels", "contacting_labels"]),
        "subject_boxes": stack(["sub_boxes"]),
        "object_boxes": stack(["obj_boxes"]),
        "mask": torch.arange(G)[None] < torch.tensor(sizes)[:, None],
    }
    ours_o = {
        "object_logits": outputs["pred_obj_logits"],
        "predicate_probs": oed_predicate_probs(outputs["pred_attn_logits"],
                                               outputs["pred_spatial_logits"],
                                               outputs["pred_contacting_logits"]),
        "subject_boxes": outputs["pred_sub_boxes"], "object_boxes": outputs["pred_obj_boxes"],
    }  # fmt: skip
    matcher = PairHungarianMatcher.oed()
    cost = pair_matching_cost(ours_o, ours_t, cost_class=1.0, cost_predicate=1.0,
                              class_activation="softmax")  # fmt: skip
    matched = matcher(ours_o, ours_t)
    for b, k in enumerate(sizes):
        torch.testing.assert_close(cost[b, :, :k], expected[b][b])
        rows, cols = linear_sum_assignment(expected[b][b])
        assert matched[b][0].tolist() == rows.tolist()
        assert matched[b][1].tolist() == cols.tolist()

    # the default (ARN's paper weights, sigmoid object classes) is a different cost
    default = pair_matching_cost(ours_o, ours_t)  # weights 1 / 2 / 2.5 / 1, sigmoid classes
    assert not torch.allclose(default[0, :, :2], expected[0][0])


def test_matcher_predicate_inputs_exactly_one():
    o = dict(object_logits=torch.randn(1, 2, 5), subject_boxes=torch.rand(1, 2, 4),
             object_boxes=torch.rand(1, 2, 4))  # fmt: skip
    t = dict(object_labels=torch.tensor([[1]]), predicates=torch.zeros(1, 1, 26),
             subject_boxes=torch.rand(1, 1, 4), object_boxes=torch.rand(1, 1, 4),
             mask=torch.tensor([[True]]))  # fmt: skip
    with pytest.raises(ValueError, match="neither"):
        pair_matching_cost(o, t)
    zeros = torch.zeros(1, 2, 26)
    both = {**o, "predicate_logits": zeros, "predicate_probs": zeros}
    with pytest.raises(ValueError, match="exactly one"):
        pair_matching_cost(both, t)
    # probabilities are used as given: p = sigmoid(logits) gives the same cost
    logits = torch.randn(1, 2, 26)
    torch.testing.assert_close(
        pair_matching_cost({**o, "predicate_logits": logits}, t),
        pair_matching_cost({**o, "predicate_probs": logits.sigmoid()}, t),
    )
    m = PairHungarianMatcher.oed()
    assert (m.cost_class, m.cost_predicate, m.cost_bbox, m.cost_giou) == (1.0, 1.0, 2.5, 1.0)
    assert m.class_activation == "softmax"
