"""All-reduce of a metric's summable state, whatever the process group's backend."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


def all_reduce_state(state: dict[str, Tensor], group: Any = None) -> None:
    """Sum ``state`` across processes in place (a no-op without ``torch.distributed``).

    The state lives on the CPU; an NCCL group only reduces CUDA tensors, so there each tensor
    travels to this process's GPU and back.
    """
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return
    device = None
    if dist.get_backend(group) == "nccl":
        device = torch.device("cuda", torch.cuda.current_device())
    for k, v in state.items():
        t = v if device is None else v.to(device)
        dist.all_reduce(t, op=dist.ReduceOp.SUM, group=group)
        state[k] = t if device is None else t.to(v.device)
