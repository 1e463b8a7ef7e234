"""The one input-validation helper: its messages name the argument and both shapes."""

import pytest
import torch

from dsgg_layers._checks import check_broadcastable, check_choice, check_positive, check_tensor


def test_named_dims_bind_across_arguments():
    dims = {}
    check_tensor(torch.zeros(2, 5, 3, 4), "subject_boxes", ("...", "T", "P", 4), dims=dims)
    assert dims["T"] == (5, "subject_boxes") and dims["..."] == ((2,), "subject_boxes")
    check_tensor(torch.zeros(2, 5, 3), "mask", ("...", "T", "P"), dims=dims)  # consistent: fine
    with pytest.raises(ValueError, match=r"mask: expected shape \(\.\.\., T, P\) with P=3 \(from"):
        check_tensor(torch.zeros(2, 5, 4), "mask", ("...", "T", "P"), dims=dims)
    with pytest.raises(
        ValueError, match=r"with \.\.\. = \(2,\) \(from subject_boxes\), got \(7, 5"
    ):
        check_tensor(torch.zeros(7, 5, 3), "mask", ("...", "T", "P"), dims=dims)


def test_shape_messages():
    with pytest.raises(ValueError, match=r"x: expected shape \(N, 4\), got \(3, 5\)"):
        check_tensor(torch.zeros(3, 5), "x", ("N", 4))
    with pytest.raises(ValueError, match=r"x: expected shape \(\.\.\., N, 4\), got \(4,\)"):
        check_tensor(torch.zeros(4), "x", ("...", "N", 4))
    with pytest.raises(ValueError, match=r"x: expected shape \(N, N\) with N the same"):
        check_tensor(torch.zeros(3, 4), "x", ("N", "N"))
    assert check_tensor(torch.zeros(3, 3), "x", ("N", "*")).shape == (3, 3)


def test_type_messages():
    with pytest.raises(TypeError, match="x: expected a torch.Tensor, got ndarray"):
        check_tensor(__import__("numpy").zeros(3), "x")
    with pytest.raises(TypeError, match="m: expected a bool tensor, got dtype torch.float32"):
        check_tensor(torch.zeros(3), "m", dtype="bool")
    with pytest.raises(TypeError, match="i: expected an integer or torch.float64 tensor"):
        check_tensor(torch.zeros(3), "i", dtype=("int", torch.float64))


def test_scalar_checks():
    check_positive(3, "n")
    check_positive(0, "n", allow_zero=True)
    check_positive(0.5, "p", integer=False)
    with pytest.raises(TypeError, match="n: expected an int, got bool"):
        check_positive(True, "n")
    with pytest.raises(ValueError, match="n: expected a value >= 0, got -1"):
        check_positive(-1, "n", allow_zero=True)
    with pytest.raises(ValueError, match="mode: expected one of 'a', 'b', got 'c'"):
        check_choice("c", "mode", ("a", "b"))
    check_broadcastable(torch.zeros(1, 3), "m", (2, 3))
    with pytest.raises(
        ValueError, match=r"m: expected a shape that broadcasts to \(3,\), got \(2,"
    ):
        check_broadcastable(torch.zeros(2, 3), "m", (3,))
