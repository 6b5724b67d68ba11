"""The ``--device`` choices and how one becomes a torch device; the ``--dtype`` names and their dtypes."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

DEVICES = ("auto", "cpu", "cuda")
DTYPE_NAMES = ("float32", "float16", "bfloat16")  # the --dtype choices of bench and convert


def torch_dtypes() -> dict[str, torch.dtype]:
    """The torch dtype of each name in ``DTYPE_NAMES``."""
    import torch

    return {name: getattr(torch, name) for name in DTYPE_NAMES}


def pick_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` -> the local CUDA device when there is one, else CPU; ``cuda`` without a GPU is an error."""
    import torch

    if name == "cuda" or (name == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise ValueError("--device cuda: no CUDA device is available; use --device cpu or auto")
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    return torch.device("cpu")
