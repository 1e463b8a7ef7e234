"""Input validation shared by every block (private: import the blocks, not this).

One helper, [`check_tensor`][], checks type, dtype and shape of a tensor argument and raises
``TypeError`` (not a tensor, wrong dtype) or ``ValueError`` (wrong shape) with a message that
names the argument, the expected shape and the shape received. Named dimensions are bound across
calls through a ``dims`` dictionary, so that ``mask`` is checked against the ``T`` and ``P`` that
``subject_boxes`` fixed:

>>> import torch
>>> dims = {}
>>> _ = check_tensor(torch.zeros(2, 5, 3, 4), "subject_boxes", ("...", "T", "P", 4), dims=dims)
>>> check_tensor(torch.zeros(2, 4, 3, dtype=torch.bool), "mask", ("...", "T", "P"), dims=dims)
Traceback (most recent call last):
  ...
ValueError: mask: expected shape (..., T, P) with T=5 (from subject_boxes), got (2, 4, 3)

[`check_tensor`][] runs on shapes and dtypes only (never on values), so it costs nothing on the
GPU and is traced away by ``torch.compile``. Value checks ([`check_finite`][] and the like) run
only where reading values is free: on CPU tensors, outside ``torch.compile``
([`values_readable`][]); on an accelerator they would wait for the device, so there the
library documents what happens instead.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch
from torch import Tensor

__all__ = [
    "check_broadcastable",
    "check_choice",
    "check_device",
    "check_fill",
    "check_finite",
    "check_int",
    "check_param_dtype",
    "check_positive",
    "check_tensor",
    "values_readable",
]

#: A dimension in a shape pattern: an int (that exact size), a name (bound across calls through
#: ``dims``), ``"*"`` (any size) or ``"..."`` (any number of dims, at most once per pattern).
Dim = int | str

_DTYPE_KINDS = {
    "float": ("a floating point", lambda dt: dt.is_floating_point),
    "bool": ("a bool", lambda dt: dt == torch.bool),
    "int": (
        "an integer",
        lambda dt: not dt.is_floating_point and not dt.is_complex and dt != torch.bool,
    ),
}

DtypeSpec = str | torch.dtype | Sequence[str | torch.dtype]

_DEVICE = "<device>"  # the key of ``dims`` that binds the device of the tensors checked together


def _format_shape(shape: Iterable[Dim]) -> str:
    parts = [str(d) for d in shape]
    return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"


def _dtype_ok(dtype: torch.dtype, spec: DtypeSpec) -> tuple[bool, str]:
    specs = [spec] if isinstance(spec, (str, torch.dtype)) else list(spec)
    words = []
    for s in specs:
        if isinstance(s, torch.dtype):
            if dtype == s:
                return True, ""
            words.append(str(s))
        else:
            word, ok = _DTYPE_KINDS[s]
            if ok(dtype):
                return True, ""
            words.append(word)
    return False, " or ".join(words)


def check_tensor(
    value: object,
    name: str,
    shape: Sequence[Dim] | None = None,
    *,
    dims: dict[str, tuple[int, str]] | None = None,
    dtype: DtypeSpec | None = None,
) -> Tensor:
    """Check that ``value`` is a tensor of the given dtype kind and shape pattern.

    Args:
        value: the argument to check.
        name: the argument's name, used in error messages.
        shape: a pattern such as ``("...", "T", "P", 4)``; ``None`` skips the shape check.
        dims: named sizes bound so far, ``{name: (size, argument that bound it)}``; updated in place
            with the names this call binds. ``"..."`` binds the dims it stands for too, and the
            first tensor binds the device: tensors checked with one ``dims`` share a device.
        dtype: ``"float"``, ``"bool"``, ``"int"``, a ``torch.dtype``, or a sequence of these.

    Returns:
        ``value`` unchanged, so that the call can be used inline.

    Raises:
        TypeError: ``value`` is not a tensor, or its dtype does not match ``dtype``.
        ValueError: its shape does not match ``shape`` or the sizes bound in ``dims``, or its
            device is not the one bound in ``dims``.
    """
    if not isinstance(value, Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(value).__name__}")
    if dtype is not None:
        ok, expected = _dtype_ok(value.dtype, dtype)
        if not ok:
            raise TypeError(f"{name}: expected {expected} tensor, got dtype {value.dtype}")
    if dims is not None:  # tensors checked together live on one device
        bound_device = dims.get(_DEVICE)
        if bound_device is not None:
            check_device(value, name, *bound_device)  # type: ignore[arg-type]
        dims.setdefault(_DEVICE, (value.device, name))  # type: ignore[arg-type]
    if shape is None:
        return value
    if dims is None:
        dims = {}
    pattern = list(shape)
    got = tuple(value.shape)
    if pattern.count("...") > 1:
        raise RuntimeError(f"shape pattern {pattern} has more than one '...'")  # programming error
    ellipsis = pattern.index("...") if "..." in pattern else None
    head = pattern if ellipsis is None else pattern[:ellipsis]
    tail = [] if ellipsis is None else pattern[ellipsis + 1 :]
    fixed = len(head) + len(tail)
    if (ellipsis is None and len(got) != fixed) or len(got) < fixed:
        raise ValueError(f"{name}: expected shape {_format_shape(pattern)}, got {got}")
    matched = list(zip(head, got[: len(head)], strict=True))
    matched += zip(tail, got[len(got) - len(tail) :], strict=True)
    bound: dict[str, tuple[int, str]] = {}
    conflicts = []
    if ellipsis is not None:
        middle = got[len(head) : len(got) - len(tail)]
        if "..." in dims and dims["..."][0] != middle:
            prev, src = dims["..."]
            conflicts.append(f"... = {prev} (from {src})")
        bound["..."] = (middle, name)  # type: ignore[assignment]
    for want, size in matched:
        if isinstance(want, int):
            if size != want:
                conflicts.append("")
        elif want != "*":
            if want in dims and dims[want][0] != size:
                conflicts.append(f"{want}={dims[want][0]} (from {dims[want][1]})")
            elif want in bound and bound[want][0] != size:
                conflicts.append(f"{want} the same in every place it appears")
            bound.setdefault(want, (size, name))
    if conflicts:
        detail = ", ".join(c for c in conflicts if c)
        with_ = f" with {detail}" if detail else ""
        raise ValueError(f"{name}: expected shape {_format_shape(pattern)}{with_}, got {got}")
    for key, val in bound.items():
        dims.setdefault(key, val)
    return value


def check_device(value: Tensor, name: str, device: torch.device, source: str) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``value`` is on ``device`` (that of
    ``source``, named in the message)."""
    if value.device != device:
        raise ValueError(f"{name}: expected device {device} (of {source}), got {value.device}")


def check_broadcastable(value: Tensor, name: str, shape: Sequence[int]) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``value`` broadcasts to exactly ``shape``."""
    try:
        ok = torch.broadcast_shapes(value.shape, tuple(shape)) == tuple(shape)
    except RuntimeError:
        ok = False
    if not ok:
        raise ValueError(
            f"{name}: expected a shape that broadcasts to {_format_shape(shape)}, "
            f"got {tuple(value.shape)}"
        )


def check_choice(value: object, name: str, choices: Sequence[object]) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``value`` is one of ``choices``."""
    if value not in choices:
        options = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name}: expected one of {options}, got {value!r}")


def check_positive(
    value: object, name: str, *, integer: bool = True, allow_zero: bool = False
) -> None:
    """Raise ``TypeError``/``ValueError`` naming ``name`` unless ``value`` is a positive number."""
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        kind = "an int" if integer else "a number"
        raise TypeError(f"{name}: expected {kind}, got {type(value).__name__}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{name}: expected a finite number, got {value}")
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name}: expected a value {bound}, got {value}")


def check_fill(value: object, name: str, dtype: torch.dtype) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``value`` is exactly representable in
    ``dtype`` (a -1 padding in a bool tensor would become ``True``, 0.5 in an int one 0)."""
    if not isinstance(value, int | float):  # bool is an int here: False / True pad bool grids
        raise TypeError(f"{name}: expected a number, got {value!r}")
    if dtype.is_floating_point:
        return
    if dtype == torch.bool:
        ok = value in (0, 1)
    else:
        info = torch.iinfo(dtype)
        ok = float(value).is_integer() and info.min <= value <= info.max
    if not ok:
        raise ValueError(f"{name}: expected a value representable in {dtype}, got {value!r}")


def check_int(value: object, name: str) -> None:
    """Raise ``TypeError`` naming ``name`` unless ``value`` is an int (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name}: expected an int, got {value!r}")


def autocasting(device_type: str) -> bool:
    try:
        return bool(torch.is_autocast_enabled(device_type))
    except TypeError:  # pragma: no cover - torch < 2.4 takes no device type
        return (
            bool(torch.is_autocast_enabled())
            if device_type == "cuda"
            else bool(torch.is_autocast_cpu_enabled())
        )
    except RuntimeError:  # a device without autocast (meta): nothing is cast there
        return False


def check_param_dtype(weight: Tensor, *named: tuple[str, Tensor | None]) -> None:
    """Raise ``TypeError`` naming the argument whose dtype differs from the module's parameters
    (``weight``), unless autocast is on for their device (then mixed dtypes are its job)."""
    if autocasting(weight.device.type):
        return
    for name, t in named:
        if t is not None and t.dtype != weight.dtype:
            raise TypeError(
                f"{name}: expected dtype {weight.dtype} (the module's parameters; cast the module "
                f"or run under torch.autocast), got {t.dtype}"
            )


def is_compiling() -> bool:
    """``torch.compiler.is_compiling()`` (torch >= 2.3), or dynamo's own flag on torch 2.2."""
    is_compiling = getattr(getattr(torch, "compiler", None), "is_compiling", None)
    if is_compiling is None:  # pragma: no cover - torch 2.2
        return bool(torch._dynamo.is_compiling())
    return bool(is_compiling())


def values_readable(*tensors: Tensor | None) -> bool:
    """Whether reading these tensors' values is free: all on the CPU, and not under compile."""
    return not is_compiling() and all(t is None or t.device.type == "cpu" for t in tensors)


def check_finite(value: Tensor, name: str, where: Tensor | None = None) -> None:
    """Raise ``ValueError`` naming ``name`` if ``value`` holds NaN or +-Inf (only at ``where``,
    a bool mask over its leading dims, when given). A no-op where values are not readable."""
    if not values_readable(value, where):
        return
    if value.numel() == 0 or bool(torch.isfinite(value.sum(dtype=torch.float64))):
        return  # one pass, no temporaries: the sum of finite values is finite
    bad = ~torch.isfinite(value)
    if where is not None:  # reduce to where's dims without gathering: no copy on the happy path
        bad = bad.reshape(*where.shape, -1).any(-1) & where
    if bool(bad.any()):
        picked = value if where is None else value[where]
        bad = ~torch.isfinite(picked)
        first = picked[bad][0].item()
        at = " at a valid position" if where is not None else ""
        raise ValueError(
            f"{name}: expected finite values{at}, got {int(bad.sum())} non-finite (e.g. {first})"
        )


def check_group(
    group: Tensor | None, lead: Sequence[int], groups: int, what: str = "class-embedding sets"
) -> None:
    """``group``: ``None`` when there is one group, else a ``lead``-shaped int tensor of ids in
    ``[0, groups)`` (the range is checked when the values are readable without a sync)."""
    if group is None:
        if groups != 1:
            raise ValueError(f"group: needed to pick one of {groups} ({what}), got None")
        return
    check_tensor(group, "group", tuple(lead), dtype="int")
    if (
        values_readable(group)
        and group.numel()
        and (int(group.min()) < 0 or int(group.max()) >= groups)
    ):
        raise ValueError(
            f"group: expected ids in [0, {groups}), got [{int(group.min())}, {int(group.max())}]"
        )
