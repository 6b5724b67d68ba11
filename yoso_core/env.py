"""What ``yoso env`` reports: versions, threads, GPUs, and the state of the compiled kernels.

For bug reports and first runs: every field is plain JSON, and nothing here raises when torch has
no CUDA, nvcc is missing or a library fails to load; the report says so instead.
"""

from __future__ import annotations

import os
import platform
from importlib import metadata


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _gpus() -> list[dict]:
    import torch

    if not torch.cuda.is_available():
        return []
    gpus = []
    for index in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(index)
        gpus.append(
            {
                "index": index,
                "name": props.name,
                "capability": f"{props.major}.{props.minor}",
                "memory_gib": round(props.total_memory / 2**30, 1),
            }
        )
    return gpus


def _kernel_report(kind: str, key: str) -> dict:
    from .attention import ops
    from .kernels import cache, isa

    meta = cache.read_metadata(kind, key) or {}
    try:
        variant = isa.select() if kind == "cpu" else None
    except isa.IsaError as exc:  # an unusable $YOSO_CPU_ISA: reported, nothing loaded
        return {
            "built": any(cache.library_path(kind, key, v).is_file() for v in isa.variants()),
            "path": None,
            "intact": False,
            "variant": None,
            "variants": sorted((meta.get("variants") or {}), key=isa.ISAS.index),
            "archs": meta.get("archs"),
            "built_at": meta.get("built_at"),
            "torch": meta.get("torch"),
            "size": None,
            "sha256": None,
            "loads": False,
            "error": str(exc),
        }
    path = cache.library_path(kind, key, variant)
    record = cache.file_record(kind, meta, variant) or {}
    built = path.is_file()
    # checked before loading: mapping a truncated library would kill this report with SIGBUS
    damage = cache.verify_library(kind, key, variant) if built else None
    if not built:
        loads, why = False, "not built; run `yoso build-kernels`"
    elif damage is not None:
        loads, why = False, f"{damage}; run `yoso build-kernels` to rebuild it"
    else:
        loads, why = ops.load(kind)
    report = {
        "built": built,
        "path": str(path) if built else None,
        "intact": built and damage is None,
        "archs": meta.get("archs"),
        "built_at": meta.get("built_at"),
        "torch": meta.get("torch"),
        "size": record.get("size"),
        "sha256": record.get("sha256"),
        "loads": loads,
        "error": why or None,
    }
    if kind == "cpu":  # which of the built variants this process uses
        report["variant"] = (ops.loaded_variant() or variant) if loads else None
        report["variants"] = sorted((meta.get("variants") or {}), key=isa.ISAS.index)
    return report


def environment_report() -> dict:
    """Versions, CPU threads, GPUs, nvcc, and which kernels are built for this torch and whether they load."""
    import torch

    from .kernels import cache, isa, toolchain

    nvcc = toolchain.find_nvcc()
    root = cache.kernel_root()
    key = cache.build_key()
    other_builds = (
        sorted(p.name for p in root.iterdir() if p.is_dir() and p.name != key) if root.is_dir() else []
    )
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "yoso": _version("yoso"),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "transformers": _version("transformers"),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda_available": torch.cuda.is_available(),
        "gpus": _gpus(),
        "nvcc": {"path": str(nvcc), "version": toolchain.nvcc_version(nvcc)} if nvcc else None,
        "kernel_root": str(root),
        "kernel_root_error": cache.kernel_root_problem(),
        "kernel_key": key,
        "cpu_isa": isa.report(),
        "kernels": {kind: _kernel_report(kind, key) for kind in cache.KINDS},
        "other_builds": other_builds,
    }
