"""positions: sinusoidal encodings (hand values, device) and LearnedPositions."""

import pytest
import torch

from dsgg_layers import LearnedPositions, sinusoidal_positions
from dsgg_layers.relation import SpatialTemporalEncoder  # noqa: F401  (the block still imports it)


def test_sinusoidal_hand_values_device_and_dtype():
    pe = sinusoidal_positions(torch.tensor([0.0, 1.0]), 2)
    torch.testing.assert_close(pe, torch.tensor([[0.0, 1.0], [0.8414709848, 0.5403023059]]))
    assert sinusoidal_positions(3, 4, dtype=torch.float64, device="cpu").dtype == torch.float64
    with pytest.raises(ValueError, match="dim"):
        sinusoidal_positions(3, 5)


def test_learned_positions():
    torch.manual_seed(0)
    pos = LearnedPositions(4, 6)
    assert pos(3).shape == (3, 6) and torch.equal(pos(3), pos.weight[:3])
    idx = torch.tensor([[3, 0], [1, 1]])
    assert torch.equal(pos(idx), pos.weight[idx])
    assert pos.no_weight_decay() == {"weight"} and "num_positions=4" in repr(pos)
    assert pos.weight.abs().max() <= 0.04 + 1e-6
    with pytest.raises(ValueError, match="index"):
        pos(5)
    with pytest.raises(ValueError, match="index"):
        pos(torch.tensor([4]))
    with pytest.raises(TypeError, match="index"):
        pos(torch.tensor([1.0]))
    with pytest.raises(ValueError, match="num_positions"):
        LearnedPositions(0, 6)
    assert pos(torch.zeros(0, dtype=torch.long)).shape == (0, 6)
    pos(2).sum().backward()
    assert pos.weight.grad[:2].eq(1).all() and pos.weight.grad[2:].eq(0).all()
