"""The run-time of the reference assemblies: processes, seeds, precision, checkpoints.

What [`harness`][harness] needs from its surroundings (as torchvision's ``references/utils.py``
serves its engines): the DDP process group of ``torchrun``, seeding and deterministic
algorithms, autocast for ``--amp``, atomic checkpoints and the RNG state they carry.
"""

from __future__ import annotations

import os
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

__all__ = [
    "Distributed",
    "autocast",
    "progress",
    "pyplot",
    "rng_state",
    "save_checkpoint",
    "seed_everything",
    "set_rng_state",
]


@dataclass
class Distributed:
    """This process's place: rank, world size and device (``world == 1`` without torchrun)."""

    rank: int = 0
    world: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @classmethod
    def start(cls, device: str) -> Distributed:
        """Join the process group when started by ``torchrun`` (nccl on CUDA, gloo on CPU)."""
        world, rank = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0"))
        dev = torch.device(device)
        if world > 1:
            dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
            if dev.type == "cuda":
                dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
                torch.cuda.set_device(dev)
        return cls(rank, world, dev)

    def stop(self, *, together: bool = True) -> None:
        """Leave the process group; ``together``: wait for every rank first (a rank that tears
        the group down while another still works, rank 0 writing the outputs, can abort in the
        backend's threads: seen once in CI with gloo, ``terminate called without an active
        exception``). After an error, ``together=False``: the other ranks may be gone."""
        if self.world > 1 and dist.is_initialized():
            if together:
                dist.barrier()
            dist.destroy_process_group()


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python, NumPy and torch; with ``deterministic``, deterministic algorithms only
    (``warn_only``: an op without a deterministic kernel warns rather than stops the run)."""
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002  (the global generator, for code that uses it)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def autocast(amp: str, device: torch.device) -> torch.autocast:
    """Autocast for ``--amp`` (``"none"``: disabled)."""
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)
    return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)  # never a half-written checkpoint


def rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def progress(iterable: Any = None, *, desc: str, **kwargs: Any) -> Any:
    """A tqdm bar over ``iterable`` (or of ``total=``), or ``iterable`` itself where tqdm is not
    installed (the examples extra): callers iterate either, and check for ``update``."""
    try:
        from tqdm.auto import tqdm
    except ImportError:  # the examples extra is not installed: no progress bar
        return iterable
    return tqdm(iterable, desc=desc, dynamic_ncols=True, **kwargs)


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the file-only Agg backend, or ``None`` where matplotlib is not
    installed (the examples extra): the charts are then skipped."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt
