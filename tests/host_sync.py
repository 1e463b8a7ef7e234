"""A dispatch mode that records the operators that make a host wait for the device.

On a GPU these ops block until the device is done: their output size or value is data
dependent (``nonzero``, boolean indexing, ``masked_select``, ``unique``, ``repeat_interleave``
without ``output_size``) or they read a value back (``item``, ``bool(t)``, ``tolist``). On the CPU
nothing waits, but the same ops run, so a CPU test can tell that a block would sync on a GPU.
"""

from __future__ import annotations

import torch
from torch.utils._python_dispatch import TorchDispatchMode

aten = torch.ops.aten

_SYNCING = {
    aten.nonzero.default,
    aten.nonzero_static.default,
    aten._local_scalar_dense.default,
    aten.masked_select.default,
    aten._unique2.default,
    aten.unique_dim.default,
    aten.unique_consecutive.default,
}


class HostSyncs(TorchDispatchMode):
    """Collects the names of the syncing ops run inside the ``with`` block in ``self.ops``."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _SYNCING:
            self.ops.append(str(func))
        elif func is aten.index.Tensor and any(
            isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in (args[1] or ())
        ):
            self.ops.append("aten.index.Tensor (bool mask)")
        elif func is aten.repeat_interleave.Tensor and kwargs.get("output_size") is None:
            self.ops.append(str(func))
        return func(*args, **kwargs)
