"""ARN's association attention, PAP and HA: the sum-of-logits identity, HA against PyTorch's
attention, the fusion variants, padding, gradients and compile."""

import pytest
import torch
from torch import nn

from dsgg_layers import (
    AssociationAttention,
    AssociationReasoning,
    HierarchicalAttention,
    PredicateAssociationParser,
)


def feats(*shape, seed=0, dtype=torch.float64):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def test_logits_are_the_sum_of_the_per_branch_logits():
    torch.manual_seed(0)
    D, H, Q, S = 12, 3, 5, 7
    att = AssociationAttention(D, H, num_cues=2).double()
    spatial, contacting = feats(2, Q, D, seed=1), feats(2, Q, D, seed=2)
    memory, pos_t, pos_o = feats(2, S, D, seed=3), feats(2, S, D, seed=4), feats(2, Q, D, seed=5)
    q_comp = att.cues([spatial, contacting])
    _, weights = att.attn(q_comp, memory, memory, query_pos=pos_o, key_pos=pos_t, need_weights=True)
    # explicit, branch by branch: each branch's reduced block through its slice of W_q
    Wq, bq = att.attn.q_proj.weight, att.attn.q_proj.bias
    k = (memory + pos_t) @ att.attn.k_proj.weight.T + att.attn.k_proj.bias  # (2, S, D)
    half = D // 2
    blocks = [att.reduce[0](spatial), att.reduce[1](contacting)]
    per_branch = [b @ Wq[:, i * half : (i + 1) * half].T for i, b in enumerate(blocks)]
    shared = pos_o @ Wq.T + bq  # the query position and bias, counted once
    hd = D // H
    logits = 0
    for q in (*per_branch, shared):  # Q^T K = Q_S^T K + Q_C^T K (+ the position term)
        qh = q.unflatten(-1, (H, hd)).transpose(1, 2)
        kh = k.unflatten(-1, (H, hd)).transpose(1, 2)
        logits = logits + qh @ kh.transpose(-1, -2) / hd**0.5
    torch.testing.assert_close(weights, logits.softmax(-1))
    # and the concatenation is what the attention saw
    torch.testing.assert_close(q_comp, torch.cat(blocks, -1))


def test_hierarchical_attention_equals_pytorch_attention_plus_linear():
    torch.manual_seed(0)
    D, H = 8, 2
    ha = HierarchicalAttention(D, H).double()
    ref = nn.MultiheadAttention(D, H, batch_first=True).double()
    with torch.no_grad():
        a = ha.layer.attn
        ref.in_proj_weight.copy_(torch.cat([a.q_proj.weight, a.k_proj.weight, a.v_proj.weight]))
        ref.in_proj_bias.copy_(torch.cat([a.q_proj.bias, a.k_proj.bias, a.v_proj.bias]))
        ref.out_proj.weight.copy_(a.out_proj.weight)
        ref.out_proj.bias.copy_(a.out_proj.bias)
    cur, cues, comp = feats(3, 2, 6, D).unbind(0)
    f, _ = ref(cur, cues, comp)
    torch.testing.assert_close(ha(cur, cues, comp), ha.layer.mlp(f) + cur)
    printed = HierarchicalAttention(D, H, residual="output").double()  # Eq. 13 as printed
    printed.load_state_dict(ha.state_dict())
    torch.testing.assert_close(printed(cur, cues, comp), ha.layer.mlp(f) + f)


@pytest.mark.parametrize("fusion", ["arn", "add", "nonlinear"])
def test_pap_fusion_variants_follow_their_formulas(fusion):
    torch.manual_seed(0)
    pap = PredicateAssociationParser(8, 2, 3, fusion=fusion).double()
    branches = [feats(2, 4, 8, seed=i) for i in range(3)]
    entity, memory = feats(2, 4, 8, seed=7), feats(2, 9, 8, seed=8)
    out = pap(branches, entity, memory)
    for b, (fused, q_comp, f_comp) in enumerate(out):
        cur = branches[b]
        if fusion == "arn":
            want = pap.fuse[b](torch.cat((cur + pap.branch_embedding[b], entity), -1))
        elif fusion == "nonlinear":
            want = cur + pap.fuse[b](entity)
        else:
            want = cur + entity
        torch.testing.assert_close(fused, want)
        others = [x for i, x in enumerate(branches) if i != b]
        f2, q2 = pap.attention[b](others, memory)
        torch.testing.assert_close(f_comp, f2)
        torch.testing.assert_close(q_comp, q2)
    assert pap.no_weight_decay() == {"branch_embedding"}
    reasoning = AssociationReasoning(8, 2, fusion=fusion).double()
    got = reasoning(branches, entity, memory)
    parsed = reasoning.pap(branches, entity, memory)
    for ha, g, (fused, cues, comp) in zip(reasoning.ha, got, parsed, strict=True):
        torch.testing.assert_close(g, ha(fused, cues, comp))
    plain = AssociationReasoning(8, 2, hierarchical=False).double()
    torch.testing.assert_close(plain(branches, entity, memory)[0],
                               plain.pap(branches, entity, memory)[0][0])  # fmt: skip


def test_gradcheck_batch_invariance_empty_and_compile():
    torch.manual_seed(0)
    model = AssociationReasoning(4, 2, 2).double()
    a, b, e = (feats(1, 3, 4, seed=i).requires_grad_() for i in range(3))
    memory = feats(1, 5, 4, seed=9)
    assert torch.autograd.gradcheck(lambda x, y, z: torch.cat(model([x, y], z, memory), -1),
                                    (a, b, e))  # fmt: skip
    branches = [feats(3, 4, 4, seed=i) for i in range(2)]
    entity, mem = feats(3, 4, 4, seed=5), feats(3, 6, 4, seed=6)
    full = model(branches, entity, mem)
    part = model([x[1:] for x in branches], entity[1:], mem[1:])
    torch.testing.assert_close(part[0], full[0][1:])
    empty = model([torch.zeros(2, 0, 4, dtype=torch.float64)] * 2,
                  torch.zeros(2, 0, 4, dtype=torch.float64), mem[:2])  # fmt: skip
    assert empty[0].shape == (2, 0, 4)
    m32 = AssociationReasoning(8, 2).eval()
    x = [torch.randn(2, 5, 8) for _ in range(3)]
    ent, memory32 = torch.randn(2, 5, 8), torch.randn(2, 7, 8)
    qm = torch.tensor([[True, True, False, True, False], [True] * 5])
    eager = m32(x, ent, memory32, query_mask=qm)
    compiled = torch.compile(lambda *a: m32(*a, query_mask=qm), fullgraph=True)
    for c, e_ in zip(compiled(x, ent, memory32), eager, strict=True):
        torch.testing.assert_close(c, e_, rtol=1e-4, atol=1e-5)


def test_errors_and_repr():
    with pytest.raises(ValueError, match="d_model: expected a multiple of num_cues=3, got 8"):
        AssociationAttention(8, 2, num_cues=3)
    att = AssociationAttention(8, 2)
    with pytest.raises(ValueError, match="cues: expected 2 branch features, got 1"):
        att([torch.randn(1, 3, 8)], torch.randn(1, 4, 8))
    with pytest.raises(ValueError, match=r"memory: expected shape"):
        att([torch.randn(1, 3, 8)] * 2, torch.randn(1, 4, 6))
    with pytest.raises(ValueError, match="num_branches: expected an int >= 2"):
        PredicateAssociationParser(8, 2, 1)
    with pytest.raises(ValueError, match="fusion: expected one of"):
        PredicateAssociationParser(8, 2, fusion="sum")
    with pytest.raises(ValueError, match=r"entity: expected shape \(1, 3, 8\)"):
        PredicateAssociationParser(8, 2)([torch.randn(1, 3, 8)] * 3, torch.randn(1, 2, 8),
                                         torch.randn(1, 4, 8))  # fmt: skip
    with pytest.raises(ValueError, match="residual: expected one of"):
        HierarchicalAttention(8, 2, residual="none")
    assert "fusion='arn'" in repr(PredicateAssociationParser(8, 2))


def test_masks_of_the_wrong_kind_are_named():
    """A float, int or list mask gets a TypeError naming the argument (formerly raw torch
    errors: `~` on a float, `masked_fill_ only supports boolean masks`, AttributeError)."""
    reasoning = AssociationReasoning(16, 4)
    branches = [torch.randn(2, 5, 16) for _ in range(3)]
    entity, memory = torch.randn(2, 5, 16), torch.randn(2, 7, 16)
    cases = [
        ("query_mask", torch.ones(2, 5)),
        ("query_mask", [[True] * 5] * 2),
        ("memory_mask", torch.ones(2, 7, dtype=torch.long)),
        ("memory_mask", torch.ones(2, 7)),
    ]
    for name, bad in cases:
        with pytest.raises(TypeError, match=f"{name}: expected a bool tensor or a ValidRows"):
            reasoning(branches, entity, memory, **{name: bad})
    ha = HierarchicalAttention(16, 4)
    with pytest.raises(TypeError, match="mask: expected a bool tensor"):
        ha(entity, entity, entity, torch.ones(2, 5))
