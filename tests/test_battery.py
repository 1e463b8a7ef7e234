"""The shared battery, written once and driven by the block registry (tests/registry.py)."""

from __future__ import annotations

import copy
import inspect
import math
import sys
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

import dsgg_layers

sys.path.insert(0, str(Path(__file__).resolve().parent))
from host_sync import HostSyncs
from registry import ENTRIES, UNREGISTERED, Entry

from dsgg_layers import ValidRows

IDS = [e.name for e in ENTRIES]
PADDED = [e for e in ENTRIES if e.padded is not None]
MASKED = [e for e in ENTRIES if e.mask_at]


def _run(entry: Entry, module: nn.Module, args: tuple, kwargs: dict) -> list[Tensor]:
    return entry.outputs(module(*args, **kwargs))


def _inputs(entry: Entry, dtype: torch.dtype = torch.float32, seed: int = 0):
    return entry.inputs(torch.Generator().manual_seed(seed), dtype)


def _rows(x: Tensor, valid: Tensor | None) -> Tensor:
    return x if valid is None else x[valid]


def test_registry_covers_every_exported_module_but_the_listed_ones():
    exported = {n for n in dsgg_layers.__all__
                if inspect.isclass(getattr(dsgg_layers, n))
                and issubclass(getattr(dsgg_layers, n), nn.Module)}  # fmt: skip
    registered = {e.name.split("(")[0] for e in ENTRIES}
    assert registered <= exported, registered - exported
    assert exported - registered == UNREGISTERED, (
        f"register these blocks (tests/registry.py): {sorted(exported - registered - UNREGISTERED)}"
        f"; registered now, drop from UNREGISTERED: {sorted(UNREGISTERED & registered)}"
    )
    assert len(set(IDS)) == len(IDS)


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_smoke_shapes_and_finite_outputs(entry):
    torch.manual_seed(0)
    module = entry.make().eval()
    args, kwargs = _inputs(entry)
    outs = _run(entry, module, args, kwargs)
    assert outs and all(isinstance(o, Tensor) and torch.isfinite(o).all() for o in outs)
    again = _run(entry, module, *_inputs(entry))  # deterministic in evaluation mode
    for a, b in zip(outs, again, strict=True):
        assert torch.equal(a, b)
    assert entry.paper  # every block names its paper (or the library)


@pytest.mark.parametrize("entry", PADDED, ids=[e.name for e in PADDED])
def test_garbage_at_padding_never_reaches_a_valid_output_or_gradient(entry):
    torch.manual_seed(0)
    module = entry.make().train()  # dropout 0: training computes what evaluation does
    args, kwargs = _inputs(entry)
    assert entry.padded(args, kwargs), f"{entry.name}: no padded input to test"
    clean = _run(entry, module, args, kwargs)
    dirty_args, dirty_kwargs = copy.deepcopy(args), copy.deepcopy(kwargs)
    dirty_padded = entry.padded(dirty_args, dirty_kwargs)
    invalid_of = []
    for x, valid in dirty_padded:
        invalid = ~valid.view(*valid.shape, *([1] * (x.dim() - valid.dim())))
        x.masked_fill_(invalid.expand_as(x), math.nan)
        x.requires_grad_(True)
        invalid_of.append(invalid.expand_as(x))
    dirty = _run(entry, module, dirty_args, dirty_kwargs)
    valid_out = entry.valid_out(args, kwargs)
    for c, d, valid in zip(clean, dirty, valid_out, strict=True):
        assert torch.equal(_rows(c, valid), _rows(d, valid)), f"{entry.name}: padding leaked"
    module.zero_grad(set_to_none=True)
    sum(_rows(d, v).sum() for d, v in zip(dirty, valid_out, strict=True)).backward()
    for (x, _), invalid in zip(dirty_padded, invalid_of, strict=True):
        assert x.grad is not None and torch.isfinite(x.grad).all(), f"{entry.name}: NaN gradient"
        assert (x.grad[invalid] == 0).all(), f"{entry.name}: gradient at padding"
    for name, p in module.named_parameters():
        if p.grad is not None:
            assert torch.isfinite(p.grad).all(), f"{entry.name}: NaN reached {name}'s gradient"


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_gradcheck_float64(entry):
    if "gradcheck" in entry.skip:
        pytest.skip(entry.skip["gradcheck"])
    torch.manual_seed(0)
    module = entry.make().double().eval()
    args, kwargs = _inputs(entry, torch.float64)
    args = list(args)
    for i in entry.grad_inputs:
        args[i] = args[i].detach().requires_grad_()

    def f(*xs):
        a = list(args)
        for i, x in zip(entry.grad_inputs, xs, strict=True):
            a[i] = x
        return tuple(_run(entry, module, tuple(a), kwargs))

    assert torch.autograd.gradcheck(f, tuple(args[i] for i in entry.grad_inputs))


@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_compile_equals_eager(entry, train):
    if "compile" in entry.skip:
        pytest.skip(entry.skip["compile"])
    torch.manual_seed(0)
    module = entry.make().train(train)
    args, kwargs = _inputs(entry)
    torch._dynamo.reset()
    eager = _run(entry, module, args, kwargs)
    compiled = torch.compile(lambda *a: _run(entry, module, a, kwargs), fullgraph=True)(*args)
    for c, e in zip(compiled, eager, strict=True):
        torch.testing.assert_close(c, e, rtol=1e-4, atol=1e-5)


def _with_rows(entry: Entry, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    """The same inputs with every mask argument given as its ``ValidRows``."""
    args, kwargs = list(args), dict(kwargs)
    for at in entry.mask_at:
        if isinstance(at, int):
            args[at] = ValidRows(args[at])
        else:
            kwargs[at] = ValidRows(kwargs[at])
    return tuple(args), kwargs


def test_every_block_with_padding_takes_its_mask_as_valid_rows():
    blocks = {e.name.split("(")[0] for e in PADDED}
    assert blocks <= {e.name.split("(")[0] for e in MASKED}


@pytest.fixture
def as_on_a_gpu(monkeypatch):
    """Value checks off, as on a GPU (on the CPU the blocks read values on purpose: it is free)."""
    for name, module in list(sys.modules.items()):
        if name.startswith("dsgg_layers") and hasattr(module, "values_readable"):
            monkeypatch.setattr(module, "values_readable", lambda *tensors: False)


@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("entry", MASKED, ids=[e.name for e in MASKED])
def test_valid_rows_as_mask_equal_the_tensor_mask_and_never_sync_the_host(
    entry, train, as_on_a_gpu
):
    torch.manual_seed(0)
    module = entry.make().train(train)
    args, kwargs = _inputs(entry)
    want = _run(entry, module, args, kwargs)
    rows_args, rows_kwargs = _with_rows(entry, args, kwargs)
    for i in entry.grad_inputs:
        rows_args[i].requires_grad_(True)
    with HostSyncs() as syncs:
        got = _run(entry, module, rows_args, rows_kwargs)
        sum(o.float().sum() for o in got if o.requires_grad).backward()
    assert syncs.ops == [], f"{entry.name}: host syncs with rows given: {syncs.ops}"
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-5)  # other matmul sizes: rounding


@pytest.mark.parametrize("entry", MASKED, ids=[e.name for e in MASKED])
def test_no_valid_row_at_all_gives_the_tensor_masks_output_finite(entry):
    torch.manual_seed(0)
    module = entry.make().eval()
    args, kwargs = _inputs(entry)
    args, kwargs = list(args), dict(kwargs)
    for at in entry.mask_at:  # every mask all False: nothing is valid
        if isinstance(at, int):
            args[at] = torch.zeros_like(args[at])
        else:
            kwargs[at] = torch.zeros_like(kwargs[at])
    want = _run(entry, module, tuple(args), kwargs)
    got = _run(entry, module, *_with_rows(entry, tuple(args), kwargs))
    for g, w in zip(got, want, strict=True):
        assert torch.isfinite(g).all(), f"{entry.name}: non-finite output on no valid row"
        torch.testing.assert_close(g, w)
