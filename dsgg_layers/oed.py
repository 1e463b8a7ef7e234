"""The seam to OED's tensors: its layout and mask convention converted to the library's, explicitly.

OED (*OED: Towards One-stage End-to-End Dynamic Scene Graph Generation*, Wang et al., CVPR
2024) is the one-stage model ARN (*End-to-End Entity-Predicate Association Reasoning
for Dynamic Scene Graph Generation*) extends. Its public code keeps DETR's conventions, which
differ from the library's in three ways that fail silently when mixed:

- **sequence first**: the encoder memory is ``(S, n, D)`` (``S = h * w`` tokens, ``n`` frames:
  the key frame and its references stacked in the batch), the library's blocks are batch first;
- **True means padding**: OED's ``mask`` ``(n, S)`` (from DETR's ``NestedTensor``) marks the
  padded pixels; every mask of this library marks the **valid** entries. An unconverted mask
  raises nothing and inverts what the attention reads;
- **the key frame anywhere**: OED's key frame sits at ``cur_idx`` among the ``n`` frames; the
  library's [`TemporalMemory`][dsgg_layers.queries.TemporalMemory] expects it in slot 0.

[`oed_memory`][] converts all three at once; [`oed_predicate_probs`][] computes OED's predicate
probabilities (the attention group is a softmax over its 3 classes and a background column, the
other two groups sigmoids), which
[`PairHungarianMatcher.oed`][dsgg_layers.matching.PairHungarianMatcher.oed] matches exactly as
OED's ``HungarianMatcherDSGG`` does. docs/arn.md ("Drop PAP + HA into OED") shows the whole
path, on tensors of OED's shapes.
"""

from __future__ import annotations

import torch
from torch import Tensor

from dsgg_layers._checks import check_int, check_tensor

__all__ = ["oed_memory", "oed_predicate_probs", "valid_from_padding"]


def valid_from_padding(padding_mask: Tensor, name: str = "padding_mask") -> Tensor:
    """The library's mask (True = valid) from a PyTorch / DETR padding mask (True = padding).

    ``nn.MultiheadAttention``'s ``key_padding_mask``, DETR's ``NestedTensor.mask`` and OED's
    ``mask`` all mark padding; every ``mask`` of this library marks what is valid. This is the
    one place the two meet: ``~padding_mask``, after checking it is a bool tensor (a float or int
    mask would be ambiguous: ``~`` on an int is a bitwise not).

    Args:
        padding_mask: bool tensor, True where an entry is padding.
        name: the argument's name in error messages.

    Returns:
        The bool mask of valid entries, same shape.

    Raises:
        TypeError: ``padding_mask`` is not a bool tensor.

    Examples:
        >>> valid_from_padding(torch.tensor([[False, False, True]]))
        tensor([[ True,  True, False]])
    """
    check_tensor(padding_mask, name, dtype="bool")
    return ~padding_mask


def oed_memory(
    memory: Tensor,
    padding_mask: Tensor,
    pos: Tensor | None = None,
    *,
    key_index: int = 0,
) -> tuple[Tensor, Tensor | None, Tensor]:
    """OED's encoder memory as the library's frames: batch first, key frame first, valid mask.

    OED's ``CDN.forward`` encodes the key frame and its references together: ``memory``
    ``(S, n, D)``, the positions ``pos`` ``(S, n, D)`` (its ``pos_embed`` after ``flatten(2)
    .permute(2, 0, 1)``) and ``mask`` ``(n, S)`` True at padded pixels; the key frame is
    ``cur_idx``. This returns ``features`` ``(n, S, D)`` with the key frame in slot 0 and the
    references after it in OED's order, the positions likewise, and ``token_mask`` ``(n, S)``
    True at **valid** tokens: the inputs of
    [`TemporalMemory`][dsgg_layers.queries.TemporalMemory] ``(features, spatial_pos=pos,
    token_mask=token_mask)`` with ``num_frames = n``.

    Args:
        memory: ``(S, n, D)`` float, OED's encoder output.
        padding_mask: ``(n, S)`` bool, True at padding (OED's ``mask.flatten(1)``).
        pos: ``(S, n, D)`` float, the positions (optional).
        key_index: the key frame's position among the ``n`` frames (OED's ``cur_idx``).

    Returns:
        ``(features (n, S, D), pos (n, S, D) or None, token_mask (n, S))``.

    Raises:
        TypeError: a tensor or the mask has the wrong dtype (the mask must be bool).
        ValueError: the shapes disagree or ``key_index`` is outside ``[0, n)``.

    Examples:
        >>> memory, mask = torch.randn(6, 3, 8), torch.zeros(3, 6, dtype=torch.bool)
        >>> mask[:, 4:] = True                                 # two padded pixels a frame
        >>> feats, _, valid = oed_memory(memory, mask, key_index=1)
        >>> feats.shape, valid[0].tolist(), bool((feats[0] == memory[:, 1]).all())
        (torch.Size([3, 6, 8]), [True, True, True, True, False, False], True)
    """
    dims: dict[str, tuple[int, str]] = {}
    check_tensor(memory, "memory", ("S", "n", "D"), dims=dims, dtype="float")
    check_tensor(padding_mask, "padding_mask", ("n", "S"), dims=dims, dtype="bool")
    if pos is not None:
        check_tensor(pos, "pos", ("S", "n", "D"), dims=dims, dtype="float")
    check_int(key_index, "key_index")
    n = memory.shape[1]
    if not 0 <= key_index < n:
        raise ValueError(f"key_index: expected 0 <= key_index < {n} (memory {tuple(memory.shape)})"
                         f", got {key_index}")  # fmt: skip
    order = torch.tensor([key_index] + [i for i in range(n) if i != key_index],
                         device=memory.device)  # fmt: skip
    features = memory.transpose(0, 1).index_select(0, order)
    pos = None if pos is None else pos.transpose(0, 1).index_select(0, order)
    return features, pos, valid_from_padding(padding_mask).index_select(0, order)


def oed_predicate_probs(
    attention_logits: Tensor, spatial_logits: Tensor, contacting_logits: Tensor
) -> Tensor:
    """OED's predicate probabilities in Action Genome's order ``(attention, spatial, contacting)``.

    OED's heads give the attention group ``3 + 1`` logits (a background column last, trained with
    cross-entropy), the spatial ``6`` and the contacting ``17`` (trained as sigmoids). Its matcher
    and its inference take ``softmax`` over the attention logits and keep the first three, and
    ``sigmoid`` of the others; this concatenates them into the ``(..., 26)`` probabilities of
    [`PREDICATES`][dsgg_layers.vocab.PREDICATES] (OED's label order is the same).

    Args:
        attention_logits: ``(..., A + 1)`` float, background column last.
        spatial_logits: ``(..., Sp)`` float.
        contacting_logits: ``(..., C)`` float.

    Returns:
        ``(..., A + Sp + C)`` probabilities in ``[0, 1]``.

    Raises:
        TypeError, ValueError: a tensor is not float or the leading shapes disagree.

    Examples:
        >>> p = oed_predicate_probs(torch.zeros(2, 4), torch.zeros(2, 6), torch.zeros(2, 17))
        >>> p.shape, p[0, :3].tolist(), float(p[0, 3])
        (torch.Size([2, 26]), [0.25, 0.25, 0.25], 0.5)
    """
    dims: dict[str, tuple[int, str]] = {}
    check_tensor(attention_logits, "attention_logits", ("...", "A"), dims=dims, dtype="float")
    check_tensor(spatial_logits, "spatial_logits", ("...", "Sp"), dims=dims, dtype="float")
    check_tensor(contacting_logits, "contacting_logits", ("...", "C"), dims=dims, dtype="float")
    if attention_logits.shape[-1] < 2:
        raise ValueError("attention_logits: expected at least one class and the background "
                         f"column, got shape {tuple(attention_logits.shape)}")  # fmt: skip
    attention = attention_logits.softmax(-1)[..., :-1]
    return torch.cat((attention, spatial_logits.sigmoid(), contacting_logits.sigmoid()), -1)
