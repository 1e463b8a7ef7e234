"""The spatial-temporal relation block written the way the field's public code writes it.

The in-run baseline of ``benchmarks/relation_block.py`` and the loop reference of
``tests/test_relation.py``. It follows the structure of STTran's public transformer (one video per
call; flat rows with a frame index; a Python loop over the frames to pad each frame's rows for the
spatial encoder; a Python loop over sliding windows of frames to build the temporal sequences and
another to scatter the outputs back and average them) and computes the same function as
:class:`dsgg_layers.SpatialTemporalEncoder` with the same weights: within a window, each pair's
rows form one sequence (the library's track-wise temporal attention).

This file is a measurement baseline and a test oracle, not part of the library.
"""

from __future__ import annotations

import torch
from torch import Tensor

from dsgg_layers import SpatialTemporalEncoder, sinusoidal_positions


def sttran_style_forward(
    block: SpatialTemporalEncoder,
    features: Tensor,
    frame_index: Tensor,
    pair_index: Tensor,
    num_frames: int,
) -> Tensor:
    """One video: ``features (N, D)`` rows sorted by frame, ``frame_index``/``pair_index (N,)``."""
    D = features.shape[-1]
    counts = [int((frame_index == t).sum()) for t in range(num_frames)]
    longest = max(counts, default=0)
    # spatial encoder: pad the rows of every frame, one call for the video
    if block.spatial is not None and longest:
        rel_input = features.new_zeros(num_frames, longest, D)
        masks = torch.zeros(num_frames, longest, dtype=torch.bool, device=features.device)
        for t in range(num_frames):
            rows = frame_index == t
            rel_input[t, : counts[t]] = features[rows]
            masks[t, : counts[t]] = True
        local = block.spatial(rel_input, masks)
        features = torch.cat([local[t, : counts[t]] for t in range(num_frames)])
    if block.temporal is None or not len(features):
        return features
    # temporal encoder: sliding windows of w frames; each pair's rows in a window are a sequence
    w = block.temporal_window or num_frames
    w = min(w, num_frames)
    starts = range(num_frames - w + 1)
    sequences, seq_masks, owners = [], [], []
    for j in starts:
        rows = ((frame_index >= j) & (frame_index < j + w)).nonzero().flatten()
        pairs = pair_index[rows].unique()
        slot = torch.searchsorted(pairs, pair_index[rows])
        seq = features.new_zeros(len(pairs), w, D)
        seq_mask = torch.zeros(len(pairs), w, dtype=torch.bool, device=features.device)
        seq[slot, frame_index[rows] - j] = features[rows]
        seq_mask[slot, frame_index[rows] - j] = True
        sequences.append(seq)
        seq_masks.append(seq_mask)
        owners.append((rows, slot, frame_index[rows] - j, len(pairs)))
    pos = sinusoidal_positions(w, D, dtype=features.dtype).to(features.device)
    output = block.temporal(torch.cat(sequences), torch.cat(seq_masks), pos=pos)
    total = torch.zeros_like(features)
    count = features.new_zeros(len(features))
    offset = 0
    for rows, slot, k, n in owners:  # scatter each window's outputs back to its rows
        total[rows] += output[offset + slot, k]
        count[rows] += 1
        offset += n
    return total / count.unsqueeze(-1)
