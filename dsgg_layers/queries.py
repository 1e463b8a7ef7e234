"""Query scheme of one-stage (DETR-style) video scene graph models: paired queries and a
temporal memory with learned frame encodings.

ARN (*End-to-End Entity-Predicate Association Reasoning for Dynamic Scene Graph Generation*,
Sec. 3.1) builds on OED's query scheme:

- [`PairQueries`][] (Eq. 1, Eq. 4): ``Q`` query pairs, a subject half and an object half with
  paired learned position embeddings ``e^s``, ``e^o``; each predicate branch ``i`` decodes with
  the positions ``e^o + e^pred_i`` (a learned embedding a branch).
- [`TemporalMemory`][]: the encoder features of the key frame and its reference frames
  (OED: 2 reference frames within +-4 frames) with a learned encoding a frame slot, flattened
  into one memory of ``F * S`` tokens with its mask: what the predicate decoders attend to.
- [`reference_frames`][]: which frames are the references of every key frame (the nearest
  existing ones within the window, or a random draw of them), batched.
- [`AnchorBoxes`][] and [`refine_boxes`][]: learned anchor boxes as the queries' positions,
  refined layer by layer; the remedy for DETR's slow convergence that DAB-DETR (Liu et al.,
  ICLR 2022: anchor boxes as queries, their sine embedding as the query position) and
  Deformable DETR (Zhu et al., ICLR 2021, Sec. A.4: iterative bounding box refinement) give.
  Not in ARN or OED (their queries are OED's free embeddings); an option for one-stage models
  that must localise on a small budget.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from dsgg_layers._checks import check_choice, check_positive, check_tensor
from dsgg_layers.positions import LearnedPositions, sinusoidal_positions
from dsgg_layers.rows import MaskOrRows, split_mask

__all__ = [
    "AnchorBoxes",
    "PairQueries",
    "TemporalMemory",
    "reference_frames",
    "refine_boxes",
    "stack_references",
]


class PairQueries(nn.Module):
    """Paired subject / object query positions and the predicate branches' positions.

    Args:
        num_queries: ``Q``, query pairs a frame.
        d_model: width ``D``.
        num_branches: predicate branches (Action Genome: 3).
        shared: one embedding per query pair for both halves (``e^s = e^o``), as OED's code
            has it (``query_embed = nn.Embedding(num_queries, hidden_dim)``, no subject /
            object split); load OED's weight into ``subject_pos.weight``. ARN's paired
            ``e^s``, ``e^o`` when ``False`` (default).

    Shape:
        - output of ``forward()``: ``subject_pos`` ``(Q, D)`` (``e^s``), ``object_pos`` ``(Q, D)``
          (``e^o``) and ``predicate_pos`` ``(num_branches, Q, D)`` (``e^o + e^pred_i``)

    Raises:
        ValueError: a size is not positive.

    Examples:
        >>> q = PairQueries(100, 256)
        >>> pos = q()
        >>> pos["subject_pos"].shape, pos["predicate_pos"].shape
        (torch.Size([100, 256]), torch.Size([3, 100, 256]))
    """

    def __init__(
        self, num_queries: int, d_model: int, num_branches: int = 3, *, shared: bool = False
    ) -> None:
        super().__init__()
        check_positive(num_branches, "num_branches")
        if not isinstance(shared, bool):
            raise TypeError(f"shared: expected a bool, got {type(shared).__name__}")
        self.num_queries, self.d_model, self.num_branches = num_queries, d_model, num_branches
        self.shared = shared
        self.subject_pos = LearnedPositions(num_queries, d_model)
        self.object_pos = self.subject_pos if shared else LearnedPositions(num_queries, d_model)
        self.predicate_embed = LearnedPositions(num_branches, d_model)

    def reset_parameters(self) -> None:
        """Reset the tables (truncated normal, std 0.02)."""
        for table in dict.fromkeys((self.subject_pos, self.object_pos, self.predicate_embed)):
            table.reset_parameters()

    def extra_repr(self) -> str:
        return f"num_queries={self.num_queries}, d_model={self.d_model}, " \
            f"num_branches={self.num_branches}, shared={self.shared}"  # fmt: skip

    def forward(self) -> dict[str, Tensor]:
        """The position embeddings (see Shape)."""
        e_o = self.object_pos(self.num_queries)
        return {
            "subject_pos": self.subject_pos(self.num_queries),
            "object_pos": e_o,
            "predicate_pos": e_o.unsqueeze(0) + self.predicate_embed(self.num_branches)[:, None],
        }


class TemporalMemory(nn.Module):
    """Frame features of a key frame and its references, one memory with learned frame encodings.

    ``memory[f, s] = features[f, s]``, ``pos[f, s] = spatial_pos[f, s] + frame_encoding[f]``
    (slot ``f = 0`` the key frame, then the references), flattened to ``F * S`` tokens; the
    tokens of missing reference frames (``frame_mask`` False, e.g. at a video's start) are
    masked out, and so are padded tokens within a frame (``token_mask`` False, e.g. the padded
    pixels of a DETR ``NestedTensor``; from OED's tensors see
    [`oed_memory`][dsgg_layers.oed.oed_memory]).

    Args:
        num_frames: ``F``, frame slots (OED: 1 key + 2 references).
        d_model: width ``D``.

    Shape:
        - features: ``(..., F, S, D)``; spatial_pos: broadcastable to it (optional)
        - frame_mask: ``(..., F)`` bool (optional; default every frame present)
        - token_mask: ``(..., F, S)`` bool, True at valid tokens (optional; default all)
        - output: ``(memory (..., F*S, D), pos (..., F*S, D), mask (..., F*S))``

    Raises:
        TypeError, ValueError: a shape or dtype disagrees.

    Examples:
        >>> tm = TemporalMemory(3, 32)
        >>> feats = torch.randn(2, 3, 49, 32)            # (key frames, F, 7 x 7, D)
        >>> memory, pos, mask = tm(feats, frame_mask=torch.tensor([[1, 1, 0], [1, 1, 1]]).bool())
        >>> memory.shape, int(mask[0].sum()), int(mask[1].sum())
        (torch.Size([2, 147, 32]), 98, 147)
    """

    def __init__(self, num_frames: int, d_model: int) -> None:
        super().__init__()
        self.num_frames, self.d_model = num_frames, d_model
        self.frame_encoding = LearnedPositions(num_frames, d_model)

    def reset_parameters(self) -> None:
        """Reset the frame encodings."""
        self.frame_encoding.reset_parameters()

    def extra_repr(self) -> str:
        return f"num_frames={self.num_frames}, d_model={self.d_model}"

    def forward(
        self,
        features: Tensor,
        *,
        spatial_pos: Tensor | None = None,
        frame_mask: MaskOrRows | None = None,
        token_mask: Tensor | None = None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """The flattened memory, its positions and its mask (a bool tensor, True at valid
        tokens; the frame mask may be given as its [`ValidRows`][dsgg_layers.rows.ValidRows])."""
        frame_mask, _ = split_mask(frame_mask, name="frame_mask")
        dims: dict[str, tuple[int, str]] = {}
        check_tensor(features, "features", ("...", self.num_frames, "S", self.d_model),
                     dims=dims, dtype="float")  # fmt: skip
        lead, S = features.shape[:-3], features.shape[-2]
        enc = self.frame_encoding(self.num_frames).to(features.dtype)[:, None, :]  # (F, 1, D)
        pos = enc.expand(self.num_frames, S, self.d_model)
        if spatial_pos is not None:
            pos = pos + spatial_pos
        pos = pos.expand(*lead, self.num_frames, S, self.d_model)
        if frame_mask is None:
            frame_mask = torch.ones(*lead, self.num_frames, dtype=torch.bool,
                                    device=features.device)  # fmt: skip
        check_tensor(frame_mask, "frame_mask", (*lead, self.num_frames), dtype="bool")
        mask = frame_mask.unsqueeze(-1).expand(*lead, self.num_frames, S)
        if token_mask is not None:
            check_tensor(token_mask, "token_mask", (*lead, self.num_frames, S), dtype="bool")
            mask = mask & token_mask
        return features.flatten(-3, -2), pos.flatten(-3, -2), mask.flatten(-2)


def reference_frames(
    frame_mask: Tensor,
    num_references: int = 2,
    window: int = 4,
    *,
    mode: Literal["nearest", "random"] = "nearest",
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """The reference frames of every key frame: existing frames within ``+-window``, not itself.

    ``"nearest"`` takes them by distance (the previous frame before the next at equal
    distance: ``t-1, t+1, t-2, t+2, ...``), a deterministic choice for evaluation;
    ``"random"`` draws them uniformly among the window's existing frames (training, as OED
    samples its references). A key frame with fewer candidates gets invalid slots (its own index,
    ``valid`` False): give ``valid`` to [`TemporalMemory`][] as the frame mask of those slots.

    Args:
        frame_mask: ``(..., T)`` bool, ``True`` where a frame exists.
        num_references: ``R``, references a key frame (OED: 2).
        window: the largest distance (OED: 4).
        mode: ``"nearest"`` or ``"random"``.
        generator: the random draw's generator (``"random"``).

    Returns:
        ``(index, valid)``, both ``(..., T, R)``: frame indices into ``T``, and which are real.

    Raises:
        TypeError, ValueError: ``frame_mask`` is not bool, or a size or option is invalid.

    Examples:
        >>> mask = torch.tensor([True, True, False, True, True])     # frame 2 is missing
        >>> index, valid = reference_frames(mask, 2, 2)
        >>> index.tolist()
        [[1, 0], [0, 3], [1, 3], [4, 1], [3, 4]]
        >>> valid[0].tolist(), valid[4].tolist()      # frames 0 and 4 have one reference only
        ([True, False], [True, False])
    """
    check_tensor(frame_mask, "frame_mask", ("...", "T"), dtype="bool")
    check_positive(num_references, "num_references")
    check_positive(window, "window")
    check_choice(mode, "mode", ("nearest", "random"))
    T = frame_mask.shape[-1]
    device = frame_mask.device
    distance = torch.arange(1, window + 1, device=device).repeat_interleave(2)
    offsets = distance * torch.tensor([-1, 1], device=device).repeat(window)  # -1, 1, -2, 2, ...
    t = torch.arange(T, device=device)
    cand = t[:, None] + offsets  # (T, 2W)
    inside = (cand >= 0) & (cand < T)
    cand_c = cand.clamp(0, max(T - 1, 0))
    lead = frame_mask.shape[:-1]
    exists = (
        torch.gather(frame_mask.unsqueeze(-2).expand(*lead, T, T), -1, cand_c.expand(*lead, T, -1))
        & inside
    )  # (..., T, 2W)
    if mode == "nearest":
        order = torch.arange(offsets.numel(), device=device, dtype=torch.float32)
        priority = order.expand(exists.shape)
    else:
        priority = torch.rand(exists.shape, generator=generator).to(device)
    priority = torch.where(exists, priority, torch.full_like(priority, float("inf")))
    k = min(num_references, offsets.numel())
    chosen = priority.topk(k, dim=-1, largest=False).indices  # (..., T, k)
    valid = torch.gather(exists, -1, chosen)
    index = torch.gather(cand_c.expand(*lead, T, -1), -1, chosen)
    index = torch.where(valid, index, t[:, None].expand_as(index))
    if k < num_references:  # more references asked than the window holds
        pad = (*index.shape[:-1], num_references - k)
        index = torch.cat((index, t[:, None].expand(pad)), -1)
        valid = torch.cat((valid, valid.new_zeros(pad)), -1)
    return index, valid


def stack_references(
    features: Tensor, frames: Tensor, index: Tensor, valid: Tensor
) -> tuple[Tensor, Tensor]:
    """Each key frame's features and its references', stacked as [`TemporalMemory`][]'s frame
    slots (slot 0 the key frame).

    Args:
        features: ``(B, T, ...)`` per-frame features (e.g. ``(B, T, S, D)`` encoder tokens).
        frames: ``(N, 2)`` ``(video, frame)`` indices of the key frames.
        index: ``(B, T, R)`` reference frame indices ([`reference_frames`][]'s first output).
        valid: ``(B, T, R)`` which references are real (its second output).

    Returns:
        ``(stacked, frame_mask)``: ``(N, 1 + R, ...)`` and ``(N, 1 + R)`` bool (the key frame
        always present; a reference where ``valid``).

    Raises:
        TypeError, ValueError: shapes or dtypes disagree.

    Examples:
        >>> feats = torch.arange(6.0).view(1, 6, 1)             # one video, 6 frames
        >>> index, valid = reference_frames(torch.ones(1, 6, dtype=torch.bool), 2, 2)
        >>> stacked, mask = stack_references(feats, torch.tensor([[0, 3]]), index, valid)
        >>> stacked.flatten().tolist(), mask.tolist()
        ([3.0, 2.0, 4.0], [[True, True, True]])
    """
    check_tensor(features, "features", ("B", "T", "..."))
    check_tensor(frames, "frames", ("N", 2), dtype="int")
    check_tensor(index, "index", (*features.shape[:2], "R"), dtype="int")
    check_tensor(valid, "valid", tuple(index.shape), dtype="bool")
    b, t = frames[:, 0], frames[:, 1]
    slots = torch.cat((t[:, None], index[b, t]), 1)  # (N, 1 + R)
    present = torch.cat((torch.ones_like(t[:, None], dtype=torch.bool), valid[b, t]), 1)
    return features[b[:, None], slots], present


def refine_boxes(boxes: Tensor, delta: Tensor, *, eps: float = 1e-5) -> Tensor:
    """One step of iterative box refinement: ``sigmoid(logit(boxes) + delta)``.

    The offsets act in logit space, so the refined box stays in ``[0, 1]`` and a zero offset
    keeps the box (Deformable DETR's iterative refinement; DAB-DETR's anchor update). Detach
    ``boxes`` before the next layer to train each layer's offsets on their own, as both do.

    Args:
        boxes: ``(..., 4)`` normalised boxes (any format of four coordinates in ``[0, 1]``,
            usually ``cxcywh``), clamped to ``[eps, 1 - eps]`` before the logit.
        delta: ``(..., 4)`` offsets (broadcast against ``boxes``).
        eps: the clamp.

    Returns:
        ``(..., 4)`` refined boxes in ``(0, 1)``.

    Raises:
        TypeError, ValueError: the tensors are not float ``(..., 4)``.

    Examples:
        >>> box = torch.tensor([[0.5, 0.5, 0.2, 0.2]])
        >>> refine_boxes(box, torch.zeros(1, 4))
        tensor([[0.5000, 0.5000, 0.2000, 0.2000]])
        >>> refine_boxes(box, torch.tensor([[2.0, 0.0, 0.0, 0.0]]))[0, 0]   # sigmoid(0 + 2)
        tensor(0.8808)
    """
    check_tensor(boxes, "boxes", ("...", 4), dtype="float")
    check_tensor(delta, "delta", ("...", 4), dtype="float")
    b = boxes.clamp(eps, 1 - eps)
    return torch.sigmoid(torch.log(b) - torch.log1p(-b) + delta)


class AnchorBoxes(nn.Module):
    """Learned anchor boxes and the query position of any box: DAB-DETR's queries.

    ``forward()`` gives the ``A`` anchors, ``sigmoid`` of a learned ``(A, 4)`` table (``cxcywh``,
    normalised): the boxes a decoder starts from. ``position(boxes)`` embeds boxes as positions
    of width ``D``: each coordinate's sinusoidal encoding (``D / 4`` wide, the coordinate scaled
    by ``scale``, so ``1 / scale`` of the image is the finest step) through a two-layer MLP. A
    decoder layer takes ``position(current boxes)`` as its query positions, predicts offsets,
    and [`refine_boxes`][] moves the boxes for the next layer (DAB-DETR, Sec. 4). Embedding the
    memory tokens' own cells with the same ``position`` puts queries and keys in one space: a
    query then attends to the tokens near its box from the first step.

    Args:
        num_anchors: ``A``, boxes (e.g. ``2 Q`` for the subject and object halves of ``Q``
            pair queries).
        d_model: width ``D`` (a multiple of 8).
        scale: the coordinates' scale in the sinusoidal encoding.
        size: the anchors' initial width and height (centres start uniform in the image).

    Shape:
        - ``forward()``: ``(A, 4)``
        - ``position(boxes)``: ``(..., 4)`` -> ``(..., D)``

    Raises:
        ValueError: a size is not positive, ``d_model`` is not a multiple of 8 or ``size`` is
            outside ``(0, 1)``.

    Examples:
        >>> anchors = AnchorBoxes(16, 32)
        >>> boxes = anchors()
        >>> boxes.shape, anchors.position(boxes).shape
        (torch.Size([16, 4]), torch.Size([16, 32]))
        >>> anchors.no_weight_decay()
        {'anchors'}
    """

    def __init__(
        self, num_anchors: int, d_model: int, *, scale: float = 100.0, size: float = 0.2
    ) -> None:
        super().__init__()
        check_positive(num_anchors, "num_anchors")
        check_positive(d_model, "d_model")
        check_positive(scale, "scale", integer=False)
        if d_model % 8:
            raise ValueError(f"d_model: expected a multiple of 8 (4 sinusoidal encodings), got "
                             f"{d_model}")  # fmt: skip
        if not 0 < size < 1:
            raise ValueError(f"size: expected a value in (0, 1), got {size}")
        self.num_anchors, self.d_model, self.scale, self.size = num_anchors, d_model, scale, size
        self.anchors = nn.Parameter(torch.empty(num_anchors, 4))
        self.head = nn.Sequential(nn.Linear(d_model, d_model), nn.ReLU(),
                                  nn.Linear(d_model, d_model))  # fmt: skip
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Centres uniform in ``(0.05, 0.95)``, sides ``size`` (DAB-DETR's random centres),
        stored as logits; the MLP's default initialisation."""
        with torch.no_grad():
            centre = torch.rand(self.num_anchors, 2) * 0.9 + 0.05
            side = torch.full((self.num_anchors, 2), self.size)
            box = torch.cat((centre, side), -1)
            self.anchors.copy_(torch.log(box) - torch.log1p(-box))
        for m in self.head:
            if isinstance(m, nn.Linear):
                m.reset_parameters()

    def no_weight_decay(self) -> set[str]:
        """The anchors are learned positions: no weight decay."""
        return {"anchors"}

    def extra_repr(self) -> str:
        return (f"num_anchors={self.num_anchors}, d_model={self.d_model}, scale={self.scale}, "
                f"size={self.size}")  # fmt: skip

    def forward(self) -> Tensor:
        """The anchors, ``(A, 4)`` normalised ``cxcywh``."""
        return self.anchors.sigmoid()

    def position(self, boxes: Tensor) -> Tensor:
        """The position embedding ``(..., D)`` of normalised boxes ``(..., 4)``."""
        check_tensor(boxes, "boxes", ("...", 4), dtype="float")
        sine = sinusoidal_positions(boxes * self.scale, self.d_model // 4, dtype=boxes.dtype)
        return self.head(sine.flatten(-2))
