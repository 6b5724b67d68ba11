"""Backends of sampled YOSO: the pure-PyTorch reference and the compiled extension.

A backend bundles the operators (``fast_hash``, ``lsh_cumulation``, ``lsh_weighted_cumulation``
and ``lsh_backward``, the three gradients at once) behind the reference signatures.
``resolve_backend`` picks one for a device: ``"auto"`` takes the compiled kernel when it is built
and loads, else the reference with one warning; an explicit compiled backend that cannot run
raises with every reason.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch

from . import hashing, sampled

BACKENDS = ("auto", "reference", "cpu", "cuda")
COMPILED_DEVICES = ("cpu", "cuda")


@dataclass(frozen=True)
class Backend:
    """One implementation of the sampled-attention operators."""

    name: str
    fast_hash: Callable[..., torch.Tensor]
    lsh_cumulation: Callable[..., torch.Tensor]
    lsh_weighted_cumulation: Callable[..., torch.Tensor]
    lsh_backward: Callable[..., tuple[torch.Tensor, torch.Tensor, torch.Tensor]]


REFERENCE = Backend(
    "reference",
    hashing.fast_hash,
    sampled.lsh_cumulation,
    sampled.lsh_weighted_cumulation,
    sampled.lsh_backward,
)

_warned_fallback = False


def compiled_backend(device_type: str) -> tuple[Backend | None, str]:
    """The compiled backend for ``device_type`` and, when it is unavailable, why.

    The library is loaded on first use from the cache ``yoso build-kernels`` fills; nothing is
    compiled here, so a missing build costs nothing but the reason it returns.
    """
    if device_type not in COMPILED_DEVICES:
        return (
            None,
            f"yoso has no compiled kernels for device {device_type!r} (only {', '.join(COMPILED_DEVICES)})",
        )
    from . import ops  # imported lazily: loading is the only work done for a compiled backend

    usable, why = ops.load(device_type)
    if not usable:
        return None, why
    return (
        Backend(
            device_type, ops.fast_hash, ops.lsh_cumulation, ops.lsh_weighted_cumulation, ops.lsh_backward
        ),
        "",
    )


def backend_named(name: str) -> Backend:
    """The backend ``name`` ("reference", "cpu" or "cuda") itself, for an operator handed its name."""
    if name == "reference":
        return REFERENCE
    backend, why = compiled_backend(name)
    if backend is None:
        raise RuntimeError(f"backend {name!r} is unavailable: {why}")
    return backend


def resolve_backend(name: str, device: torch.device) -> Backend:
    """Pick the backend ``name`` for tensors on ``device``; see the module docstring."""
    global _warned_fallback
    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {name!r}")
    if name == "reference":
        return REFERENCE
    device_type = torch.device(device).type
    if name != "auto":
        if name != device_type:
            raise ValueError(f"backend {name!r} cannot run tensors on device {device_type!r}; use 'auto'")
        return backend_named(name)
    backend, why = compiled_backend(device_type)
    if backend is not None:
        return backend
    if device_type in COMPILED_DEVICES:
        from ..kernels import isa

        isa.select()  # an unusable $YOSO_CPU_ISA is an error (IsaError), not a silent fallback
    if not _warned_fallback:
        _warned_fallback = True
        warnings.warn(f"yoso: using the slow pure-PyTorch attention because {why}", stacklevel=3)
    return REFERENCE
