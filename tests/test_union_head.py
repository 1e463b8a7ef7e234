"""UASAN's public relation head (the code's form): token_cosine_logits, RelationQueryDecoder,
the slot-position encoder, UnionRelationHead, uasan_head_state_dict, VisualRefiner(residual).

The reference is a transcription of UASAN's public code, written here from its equations with
``nn.MultiheadAttention`` (sequence-first, as the code): ``models/modules.py``'s post-norm
encoder and decoder layers, and ``DistillModel_v13.forward_inference_bsz1`` from the concept
tokens on. Its parameters carry the code's names; they are loaded into the library's head with
``uasan_head_state_dict``.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from dsgg_layers import (
    RelationQueryDecoder,
    SemanticAwareContextEncoder,
    UnionRelationHead,
    VisualRefiner,
    token_cosine_logits,
    uasan_head_state_dict,
)

# ------------------------------------------------------------------ the code, transcribed


class CodeEncoderLayer(nn.Module):
    """``models/modules.py::TransformerEncoderLayer.forward_post``."""

    def __init__(self, d, nhead, ff):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d, nhead, dropout=0.0)
        self.linear1, self.linear2 = nn.Linear(d, ff), nn.Linear(ff, d)
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)

    def forward(self, src, pos):
        q = k = src + pos
        src = self.norm1(src + self.self_attn(q, k, value=src)[0])
        return self.norm2(src + self.linear2(F.relu(self.linear1(src))))


class CodeDecoderLayer(nn.Module):
    """``models/modules.py::TransformerDecoderLayer.forward_post``."""

    def __init__(self, d, nhead, ff):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d, nhead, dropout=0.0)
        self.multihead_attn = nn.MultiheadAttention(d, nhead, dropout=0.0)
        self.linear1, self.linear2 = nn.Linear(d, ff), nn.Linear(ff, d)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)

    def forward(self, tgt, memory, pos, query_pos):
        q = k = tgt + query_pos
        tgt = self.norm1(tgt + self.self_attn(q, k, value=tgt)[0])
        tgt2 = self.multihead_attn(query=tgt + query_pos, key=memory + pos, value=memory)[0]
        tgt = self.norm2(tgt + tgt2)
        return self.norm3(tgt + self.linear2(F.relu(self.linear1(tgt))))


def _mlp3(d_in, hidden, out):
    return nn.Sequential(
        nn.Linear(d_in, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
        nn.Linear(hidden, out, bias=False),
    )  # fmt: skip


class CodeHead(nn.Module):
    """``DistillModel_v13``'s head with the code's module names; ``forward`` transcribes
    ``forward_inference_bsz1`` from ``s_embds``, ``o_embds`` and the Q-Former's union output."""

    def __init__(self, d=16, nhead=4, L=3, layers=2, union_in=24):
        super().__init__()
        self.L = L
        self.trajpair_proj = _mlp3(2 * d, 4 * d, 2 * d)
        self.encode_proj = _mlp3(2 * d, 4 * d, 2 * d)
        self.relpos2embd = nn.Sequential(nn.Linear(12, d), nn.ReLU(), nn.Linear(d, 2 * d, False))
        self.relpos2embd_1 = nn.Sequential(nn.Linear(12, d // 2), nn.ReLU(), nn.Linear(d // 2, d))
        self.relgiou2embd = nn.Sequential(nn.Linear(3, d // 2), nn.ReLU(), nn.Linear(d // 2, d))
        self.union2embd = nn.Sequential(nn.Linear(union_in, 2 * d), nn.ReLU(), nn.Linear(2 * d, d))
        self.union2embd_1 = nn.Sequential(nn.Linear(d, 2 * d), nn.ReLU(), nn.Linear(2 * d, d))
        enc, dec = CodeEncoderLayer(d, nhead, d), CodeDecoderLayer(d, nhead, d)
        self.encoder_layers = nn.ModuleList(copy.deepcopy(enc) for _ in range(layers))
        self.decoder_layers = nn.ModuleList(copy.deepcopy(dec) for _ in range(layers))
        for m in self.modules():  # distinct, non-trivial values everywhere
            for p in m.parameters(recurse=False):
                nn.init.normal_(p, std=0.3)
        self.query_embed = nn.Embedding(1, d)
        self.pos_embed = nn.Embedding(3 * L + 2, d)
        self.temperature = nn.Parameter(torch.tensor([0.5]))
        self.rel_temperature = nn.Parameter(torch.tensor([0.7]))
        self.n_groups = 6

    def forward(self, s_embds, o_embds, union_hidden, relpos_feat, rel_giou, prompt_ids,
                classifier_weights, single_classifier_weights):  # fmt: skip
        n = lambda x: F.normalize(x, dim=-1)  # noqa: E731
        rel_feats = n(self.union2embd_1(n(self.union2embd(union_hidden))))
        giou_tags = torch.stack(
            [rel_giou[:, 0], rel_giou[:, 1], rel_giou[:, 1] - rel_giou[:, 0]], -1
        )
        rel_giou_emb = n(self.relgiou2embd(giou_tags)).unsqueeze(1)
        rel_pos_emb = n(self.relpos2embd_1(relpos_feat)).unsqueeze(1)
        bts = s_embds.shape[0]
        input_feats = torch.cat([rel_feats, s_embds, o_embds, rel_pos_emb, rel_giou_emb], 1)
        input_feats = input_feats.permute(1, 0, 2)
        pos = self.pos_embed(torch.arange(input_feats.size(0)))[:, None, :].expand(-1, bts, -1)
        for layer in self.encoder_layers:
            input_feats = layer(input_feats, pos)
        query_embed = self.query_embed.weight[None].expand(self.n_groups, -1, -1)[prompt_ids]
        query_embed = query_embed.permute(1, 0, 2)
        tgt = torch.zeros_like(query_embed)
        for layer in self.decoder_layers:
            tgt = layer(tgt, input_feats, pos, query_embed)
        L = self.L
        encoded_rel = input_feats[:L].permute(1, 0, 2)
        enc_s, enc_o = (
            input_feats[L : 2 * L].permute(1, 0, 2),
            input_feats[2 * L : 3 * L].permute(1, 0, 2),
        )
        so = n(self.trajpair_proj(torch.cat([s_embds, o_embds], -1)))
        relpos = n(self.relpos2embd(relpos_feat)).unsqueeze(1)
        combined = n(so + relpos)
        cw = classifier_weights[prompt_ids]
        logits = torch.bmm(cw, combined.permute(0, 2, 1)).mean(2) / self.temperature
        combined_v1 = n(so + relpos + n(self.encode_proj(torch.cat([enc_s, enc_o], -1))))
        logits_v1 = torch.bmm(cw, combined_v1.permute(0, 2, 1)).mean(2) / self.temperature
        rel_output = n(rel_feats + rel_pos_emb + rel_giou_emb)
        scw = single_classifier_weights[prompt_ids]
        rel_logits = torch.bmm(scw, rel_output.permute(0, 2, 1)).mean(2) / self.rel_temperature
        rel_encode = n(encoded_rel + tgt.permute(1, 0, 2))
        rel_v1 = n(rel_feats + rel_pos_emb + rel_giou_emb + rel_encode)
        rel_logits_v1 = torch.bmm(scw, rel_v1.permute(0, 2, 1)).mean(2) / self.rel_temperature
        probs = (
            logits.sigmoid() + rel_logits.sigmoid() + rel_logits_v1.sigmoid() + logits_v1.sigmoid()
        )
        return probs, logits, logits_v1, rel_logits, rel_logits_v1


def _code_inputs(seed=0, pairs=5, d=16, L=3, union_in=24, C=7):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    unit = lambda x: F.normalize(x, dim=-1)  # noqa: E731
    return {
        "s": unit(r(pairs, L, d)), "o": unit(r(pairs, L, d)), "u": r(pairs, L, union_in),
        "relpos": r(pairs, 12), "giou": r(pairs, 2),
        "group": torch.randint(0, 6, (pairs,), generator=g),
        "pair_cls": unit(r(6, C, 2 * d)), "union_cls": unit(r(6, C, d)),
    }  # fmt: skip


def _ours(head, x, mask=None):
    giou3 = torch.stack([x["giou"][:, 0], x["giou"][:, 1], x["giou"][:, 1] - x["giou"][:, 0]], -1)
    return head(x["s"], x["o"], x["u"], x["relpos"], giou3, pair_classes=x["pair_cls"],
                union_classes=x["union_cls"], group=x["group"], mask=mask)  # fmt: skip


def _loaded_pair(seed=0):
    torch.manual_seed(seed)
    code = CodeHead().eval()
    head = UnionRelationHead(16, 4, num_tokens=3, num_layers=2, union_in_dim=24).eval()
    head.load_state_dict(uasan_head_state_dict(code.state_dict(), num_tokens=3))
    return code, head


# ----------------------------------------------------------------- values vs the code


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_head_equals_the_transcribed_code_after_loading_its_state_dict(seed):
    code, head = _loaded_pair(seed)
    x = _code_inputs(seed)
    expected = code(x["s"], x["o"], x["u"], x["relpos"], x["giou"], x["group"],
                    x["pair_cls"], x["union_cls"])  # fmt: skip
    out = _ours(head, x)
    for got, want in zip(
        (out.scores, out.pair, out.pair_encoded, out.union, out.union_encoded), expected,
        strict=True,
    ):  # fmt: skip
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def test_state_dict_mapping_refuses_missing_or_mismatched_checkpoints():
    code, _ = _loaded_pair()
    sd = code.state_dict()
    with pytest.raises(KeyError, match="trajpair_proj"):
        uasan_head_state_dict({k: v for k, v in sd.items() if not k.startswith("trajpair")})
    with pytest.raises(KeyError, match="pos_embed"):
        uasan_head_state_dict({k: v for k, v in sd.items() if k != "pos_embed.weight"},
                              num_tokens=3)  # fmt: skip
    with pytest.raises(ValueError, match="num_tokens"):
        uasan_head_state_dict(sd, num_tokens=32)
    # a module the code shares with its teacher is found under teacher_model. too
    moved = {
        (f"teacher_model.{k}" if k.startswith("relgiou2embd") else k): v for k, v in sd.items()
    }
    assert set(uasan_head_state_dict(moved, num_tokens=3)) == set(
        uasan_head_state_dict(sd, num_tokens=3)
    )


def test_every_group_selects_its_class_set_and_the_query_is_shared():
    _, head = _loaded_pair()
    x = _code_inputs(3)
    out = _ours(head, x)
    for g in range(6):  # the same pairs scored against group g's set alone
        alone = _ours(head, {**x, "group": torch.full_like(x["group"], g),
                             "pair_cls": x["pair_cls"], "union_cls": x["union_cls"]})  # fmt: skip
        rows = x["group"] == g
        torch.testing.assert_close(out.pair[rows], alone.pair[rows])
    assert head.decoder.query_pos.shape == (1, 16)  # the code's nn.Embedding(1, d)


# ------------------------------------------------------------------- token_cosine_logits


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 5), st.booleans())
def test_token_cosine_logits_is_the_mean_of_per_token_cosines(seed, L, grouped):
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randn(4, L, 6, generator=g, dtype=torch.float64)
    classes = torch.randn(*((3,) if grouped else ()), 5, 6, generator=g, dtype=torch.float64)
    group = torch.randint(0, 3, (4,), generator=g) if grouped else None
    mask = torch.rand(4, L, generator=g) > 0.3
    tau = 0.3
    got = token_cosine_logits(tokens, classes, tau, group=group, mask=mask)
    for i in range(4):  # the loop reference: every token, every class, cosine, mean, / tau
        cls = classes[group[i]] if grouped else classes
        valid = [t for t in range(L) if mask[i, t]]
        for c in range(5):
            cos = [float(F.cosine_similarity(tokens[i, t], cls[c], dim=0)) for t in valid]
            want = sum(cos) / max(len(cos), 1) / tau
            assert math.isclose(float(got[i, c]), want, rel_tol=1e-9, abs_tol=1e-12)


def test_token_cosine_logits_hand_case_errors_and_gradcheck():
    tokens = torch.tensor([[[3.0, 4.0], [0.0, -1.0]]])
    classes = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    # class 0: (0.6 + 0) / 2; class 1: (0.8 - 1) / 2
    torch.testing.assert_close(token_cosine_logits(tokens, classes), torch.tensor([[0.3, -0.1]]))
    torch.testing.assert_close(
        token_cosine_logits(tokens, classes, torch.tensor([0.5])), torch.tensor([[0.6, -0.2]])
    )
    with pytest.raises(ValueError, match="class_embeddings"):
        token_cosine_logits(tokens, torch.randn(2, 3))
    with pytest.raises(ValueError, match="group"):
        token_cosine_logits(tokens, torch.randn(3, 2, 2))
    with pytest.raises(ValueError, match="group"):
        token_cosine_logits(tokens, torch.randn(3, 2, 2), group=torch.tensor([3]))
    with pytest.raises(ValueError, match="temperature"):
        token_cosine_logits(tokens, classes, 0.0)
    with pytest.raises(ValueError, match="mask"):
        token_cosine_logits(tokens, classes, mask=torch.ones(1, 3, dtype=torch.bool))
    x = torch.randn(2, 3, 4, dtype=torch.float64, requires_grad=True)
    c = torch.randn(2, 5, 4, dtype=torch.float64, requires_grad=True)
    grp = torch.tensor([1, 0])
    assert torch.autograd.gradcheck(lambda a, b: token_cosine_logits(a, b, group=grp), (x, c))
    # garbage at masked tokens reaches neither the output nor a gradient
    mask = torch.tensor([[True, False]])
    dirty = tokens.clone()
    dirty[0, 1] = math.nan
    dirty.requires_grad_()
    out = token_cosine_logits(dirty, classes, mask=mask)
    torch.testing.assert_close(out, token_cosine_logits(tokens[:, :1], classes))
    out.sum().backward()
    assert torch.isfinite(dirty.grad).all() and (dirty.grad[0, 1] == 0).all()
    # half precision stays finite
    half = token_cosine_logits(tokens.half(), classes.half(), 0.02)
    assert half.dtype == torch.float16 and torch.isfinite(half).all()
    # empty rows and fully masked rows
    assert token_cosine_logits(torch.zeros(0, 3, 2), classes).shape == (0, 2)
    none = token_cosine_logits(tokens, classes, mask=torch.zeros(1, 2, dtype=torch.bool))
    assert (none == 0).all()


# ------------------------------------------------------- the head: padding, grads, compile


def test_head_padding_never_leaks_and_gradients_stay_finite():
    _, head = _loaded_pair()
    head.train()
    x = _code_inputs(4)
    mask = torch.tensor([True, False, True, True, False])
    torch.manual_seed(0)
    clean = _ours(head.eval(), x, mask)
    dirty = {k: v.clone() for k, v in x.items()}
    for k in ("s", "o", "u", "relpos", "giou"):
        dirty[k][~mask] = math.nan
        dirty[k].requires_grad_(True)
    out = _ours(head, dirty, mask)
    for a, b in zip(out, clean, strict=True):
        torch.testing.assert_close(a, b)
        assert (a[~mask] == 0).all()
    out.scores.sum().backward()
    for k in ("s", "o", "u", "relpos", "giou"):
        assert torch.isfinite(dirty[k].grad).all() and (dirty[k].grad[~mask] == 0).all()
    assert all(torch.isfinite(p.grad).all() for p in head.parameters() if p.grad is not None)
    # batch invariance: a pair's scores do not depend on the other pairs
    sub = {k: (v[2:] if k not in ("pair_cls", "union_cls") else v) for k, v in x.items()}
    torch.testing.assert_close(_ours(head, sub).scores, _ours(head, x).scores[2:])
    # no pairs at all
    empty = {k: (v[:0] if k not in ("pair_cls", "union_cls") else v) for k, v in x.items()}
    assert _ours(head, empty).scores.shape == (0, 7)


def test_head_gradcheck_float64():
    torch.manual_seed(0)
    head = UnionRelationHead(4, 2, num_tokens=1, num_layers=1, dropout=0.0).double().eval()
    r = lambda *s: torch.randn(*s, dtype=torch.float64)  # noqa: E731
    s, o, u = (r(2, 1, 4).requires_grad_() for _ in range(3))
    rel, giou = r(2, 12), r(2, 3)
    pc, uc = r(6, 3, 8), r(6, 3, 4)
    grp = torch.tensor([0, 4])

    def f(s, o, u):
        out = head(s, o, u, rel, giou, pair_classes=pc, union_classes=uc, group=grp)
        return out.pair_encoded, out.union_encoded

    assert torch.autograd.gradcheck(f, (s, o, u))


@pytest.mark.parametrize("train", [False, True])
def test_head_and_code_blocks_compile_equals_eager(train):
    torch.manual_seed(0)
    head = UnionRelationHead(16, 4, num_tokens=3, num_layers=2, dropout=0.0).train(train)
    x = _code_inputs(5, union_in=16)
    mask = torch.tensor([True, True, False, True, True])
    giou3 = torch.cat((x["giou"], x["giou"][:, 1:] - x["giou"][:, :1]), -1)

    def run(s, o, u, rel, gi, m):
        return head(s, o, u, rel, gi, pair_classes=x["pair_cls"], union_classes=x["union_cls"],
                    group=x["group"], mask=m).scores  # fmt: skip

    args = (x["s"], x["o"], x["u"], x["relpos"], giou3, mask)
    torch._dynamo.reset()
    eager = run(*args)
    compiled = torch.compile(run, fullgraph=True)(*args)
    torch.testing.assert_close(compiled, eager, rtol=1e-4, atol=1e-5)


def test_head_errors_name_the_argument():
    head = UnionRelationHead(8, 2, num_tokens=2, num_layers=1)
    x = {"s": torch.randn(3, 2, 8), "rel": torch.randn(3, 12), "giou": torch.randn(3, 3)}
    kw = {"pair_classes": torch.randn(4, 16), "union_classes": torch.randn(4, 8)}
    s, rel, giou = x["s"], x["rel"], x["giou"]
    with pytest.raises(ValueError, match="object"):
        head(s, torch.randn(3, 3, 8), s, rel, giou, **kw)
    with pytest.raises(ValueError, match="relative"):
        head(s, s, s, torch.randn(3, 11), giou, **kw)
    with pytest.raises(ValueError, match="pair_classes"):
        head(s, s, s, rel, giou, pair_classes=torch.randn(4, 8), union_classes=kw["union_classes"])
    with pytest.raises(ValueError, match="union_classes"):
        head(s, s, s, rel, giou, pair_classes=kw["pair_classes"], union_classes=torch.randn(5, 8))
    with pytest.raises(ValueError, match="group"):
        head(s, s, s, rel, giou, pair_classes=torch.randn(6, 4, 16),
             union_classes=torch.randn(6, 4, 8))  # fmt: skip
    with pytest.raises(ValueError, match="mask"):
        head(s, s, s, rel, giou, mask=torch.ones(4, dtype=torch.bool), **kw)
    with pytest.raises(ValueError, match="temperature"):
        UnionRelationHead(8, 2, temperature=0.0)
    assert head.no_weight_decay() >= {"temperature", "encoder.slot_positions"}
    assert "num_tokens=2" in repr(head)


# ------------------------------------------------------ the code-form encoder and decoder


def test_slot_encoder_adds_one_position_a_token_at_every_layer():
    torch.manual_seed(0)
    enc = SemanticAwareContextEncoder(8, 2, 8, num_layers=2, positions="slot", num_slots=9).eval()
    parts = [torch.randn(4, n, 8) for n in (2, 2, 2, 2)]
    x = torch.cat(parts, -2)
    pos = enc.slot_positions[:8]
    h = x
    for layer in enc.encoder.layers:  # written out: q = k = h + pos at every layer
        a = torch.nn.functional.scaled_dot_product_attention
        att = layer.self_attn
        q = att.q_proj(h + pos).unflatten(-1, (2, 4)).transpose(-3, -2)
        k = att.k_proj(h + pos).unflatten(-1, (2, 4)).transpose(-3, -2)
        v = att.v_proj(h).unflatten(-1, (2, 4)).transpose(-3, -2)
        o = att.out_proj(a(q, k, v).transpose(-3, -2).flatten(-2))
        h = layer.norm1(h + o)
        h = layer.norm2(h + layer.linear2(F.relu(layer.linear1(h))))
    torch.testing.assert_close(enc(*parts).encoded, h, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="num_slots"):
        enc(*[torch.randn(4, 3, 8)] * 4)  # 12 tokens, 9 slots
    with pytest.raises(ValueError, match="num_slots"):
        SemanticAwareContextEncoder(8, 2, 8, positions="slot")
    with pytest.raises(ValueError, match="num_slots"):
        SemanticAwareContextEncoder(8, 2, 8, num_slots=4)
    with pytest.raises(ValueError, match="num_layers"):
        SemanticAwareContextEncoder(8, 2, 8, residual=False, num_layers=2)
    with pytest.raises(ValueError, match="positions"):
        SemanticAwareContextEncoder(8, 2, 8, positions="rank")
    assert enc.no_weight_decay() == {"slot_positions"} and "num_slots=9" in repr(enc)


def test_slot_encoder_padding_gradcheck_and_compile():
    torch.manual_seed(0)
    enc = SemanticAwareContextEncoder(4, 2, 8, num_layers=2, positions="slot", num_slots=6)
    parts = [torch.randn(3, n, 4) for n in (2, 1, 2, 1)]
    mask = torch.tensor([True, False, True])
    clean = enc.eval()(*parts, mask=mask).encoded
    dirty = [p.clone().index_fill_(0, torch.tensor([1]), math.nan).requires_grad_() for p in parts]
    out = enc(*dirty, mask=mask).encoded
    torch.testing.assert_close(out, clean)
    out.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in dirty)
    enc64 = copy.deepcopy(enc).double()
    xs = [p.double().requires_grad_() for p in parts]
    assert torch.autograd.gradcheck(lambda *a: enc64(*a).encoded, xs)
    for train in (False, True):  # dropout 0: training mode computes the same
        enc.train(train)
        torch._dynamo.reset()
        eager = enc(*parts, mask=mask).encoded
        compiled = torch.compile(lambda *a: enc(*a, mask=mask).encoded, fullgraph=True)(*parts)
        torch.testing.assert_close(compiled, eager, rtol=1e-4, atol=1e-5)


def test_query_decoder_equals_the_transcribed_code_decoder():
    torch.manual_seed(0)
    dec = RelationQueryDecoder(8, 2, 8, num_layers=2).eval()
    code = nn.ModuleList(CodeDecoderLayer(8, 2, 8) for _ in range(2)).eval()
    sd = {}
    for i, layer in enumerate(dec.decoder.layers):
        for ours, theirs in (("self_attn", "self_attn"), ("cross_attn", "multihead_attn")):
            m = getattr(layer, ours)
            sd[f"{i}.{theirs}.in_proj_weight"] = torch.cat([m.q_proj.weight, m.k_proj.weight,
                                                            m.v_proj.weight])  # fmt: skip
            sd[f"{i}.{theirs}.in_proj_bias"] = torch.cat([m.q_proj.bias, m.k_proj.bias,
                                                          m.v_proj.bias])  # fmt: skip
            sd[f"{i}.{theirs}.out_proj.weight"] = m.out_proj.weight
            sd[f"{i}.{theirs}.out_proj.bias"] = m.out_proj.bias
        for part in ("linear1", "linear2", "norm1", "norm2", "norm3"):
            for leaf in ("weight", "bias"):
                sd[f"{i}.{part}.{leaf}"] = getattr(getattr(layer, part), leaf)
    code.load_state_dict(sd)
    memory, pos = torch.randn(5, 7, 8), torch.randn(7, 8)
    qpos = dec.query_pos[0].expand(1, 5, 8)
    tgt = torch.zeros(1, 5, 8)
    mem_sf, pos_sf = memory.transpose(0, 1), pos[:, None].expand(7, 5, 8)
    for layer in code:
        tgt = layer(tgt, mem_sf, pos_sf, qpos)
    torch.testing.assert_close(dec(memory, memory_pos=pos), tgt[0], rtol=1e-5, atol=1e-5)


def test_query_decoder_groups_padding_gradcheck_compile_and_errors():
    torch.manual_seed(0)
    dec = RelationQueryDecoder(4, 2, 8, num_layers=2, num_groups=3)
    mem = torch.randn(4, 5, 4)
    mask = torch.rand(4, 5) > 0.3
    mask[2] = False
    group = torch.tensor([0, 2, 1, 2])
    clean = dec.eval()(mem, mask, group=group)
    assert (clean[2] == 0).all()
    dirty = mem.masked_fill(~mask[..., None], math.nan).requires_grad_()
    out = dec(dirty, mask, group=group)
    torch.testing.assert_close(out, clean)
    out.sum().backward()
    assert torch.isfinite(dirty.grad).all() and (dirty.grad[~mask] == 0).all()
    # each group has its own query position
    same = dec(mem, mask, group=torch.zeros(4, dtype=torch.long))
    assert not torch.allclose(same[1], clean[1])
    d64 = copy.deepcopy(dec).double()
    m64 = mem.double().requires_grad_()
    assert torch.autograd.gradcheck(lambda m: d64(m, group=group), (m64,))
    for train in (False, True):  # dropout 0: training mode computes the same
        dec.train(train)
        torch._dynamo.reset()
        compiled = torch.compile(lambda m: dec(m, mask, group=group), fullgraph=True)(mem)
        torch.testing.assert_close(compiled, clean, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="group"):
        dec(mem)
    with pytest.raises(ValueError, match="group"):
        dec(mem, group=torch.tensor([0, 1, 2, 3]))
    with pytest.raises(ValueError, match="mask"):
        dec(mem, torch.ones(4, 4, dtype=torch.bool), group=group)
    assert dec.no_weight_decay() == {"query_pos"} and "num_groups=3" in repr(dec)


# ------------------------------------------------------------ VisualRefiner, one input token


def test_refiner_refuses_one_token_without_residual_and_reads_it_with_one():
    torch.manual_seed(0)
    plain = VisualRefiner(8, num_tokens=4, nhead=2)
    with pytest.raises(ValueError, match="residual=True"):
        plain(torch.randn(3, 1, 8))
    m = VisualRefiner(8, num_tokens=4, nhead=2, residual=True).eval()
    feats = torch.randn(3, 1, 8)
    out = m(feats)
    assert (out[:, 0] - out[:, 1]).abs().max() > 1e-3  # the tokens differ
    # written out: V = Norm(Q + SA(Q)), F_v = Norm(V + CA(V, F))
    sa, ca = m.concepts.attn, m.read.attn
    Q = m.tokens
    V = m.concepts.norm1(Q + sa(Q)[0])  # the attention itself is checked in test_union.py
    expected = m.read.norm1(V + ca.out_proj(ca.v_proj(feats)).expand(3, 4, 8))  # one key: weight 1
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    mask = torch.tensor([[True], [False], [True]])
    masked = m(feats.masked_fill(~mask[..., None], math.nan), mask)
    assert (masked[1] == 0).all() and torch.isfinite(masked).all()
    m64 = copy.deepcopy(m).double()
    x = torch.randn(2, 3, 8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(m64, (x,))
    for train in (False, True):  # dropout 0: training mode computes the same
        m.train(train)
        torch._dynamo.reset()
        compiled = torch.compile(m, fullgraph=True)(feats)
        torch.testing.assert_close(compiled, out, rtol=1e-4, atol=1e-5)
    assert "residual=True" in repr(m)


def test_head_degenerate_inputs_fp16_empty_and_fully_masked():
    torch.manual_seed(0)
    head = UnionRelationHead(16, 4, num_tokens=3, num_layers=1).eval()
    x = _code_inputs(6, union_in=16)
    giou3 = torch.cat((x["giou"], x["giou"][:, 1:] - x["giou"][:, :1]), -1)
    kw = {"pair_classes": x["pair_cls"], "union_classes": x["union_cls"], "group": x["group"]}
    parts = (x["s"], x["o"], x["u"], x["relpos"], giou3)
    half = head.half()(*(p.half() for p in parts), pair_classes=kw["pair_classes"].half(),
                       union_classes=kw["union_classes"].half(), group=kw["group"])  # fmt: skip
    assert half.scores.dtype == torch.float16 and torch.isfinite(half.scores).all()
    head.float()
    none = torch.zeros(5, dtype=torch.bool)
    leaves = [p.clone().requires_grad_() for p in parts]
    out = head(*leaves, **kw, mask=none)
    assert all((o == 0).all() for o in out)
    out.scores.sum().backward()
    assert all(torch.isfinite(p.grad).all() and (p.grad == 0).all() for p in leaves)
    empty = head(*(p[:0] for p in parts), pair_classes=kw["pair_classes"],
                 union_classes=kw["union_classes"], group=kw["group"][:0])  # fmt: skip
    assert empty.scores.shape == (0, 7)
