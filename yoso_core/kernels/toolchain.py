"""The toolchain for the CUDA library: nvcc, the CUDA toolkit, and the architectures to build for."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

DEFAULT_ARCHS = "8.0;9.0"
_ARCH_PATTERN = re.compile(r"^\d+\.\d+[af]?(\+PTX)?$")


def find_nvcc() -> Path | None:
    """nvcc under ``$CUDA_HOME`` (or ``$CUDA_PATH``), in /usr/local/cuda, or on ``PATH``; None if absent."""
    for var in ("CUDA_HOME", "CUDA_PATH"):
        home = os.environ.get(var)
        if home and (Path(home) / "bin" / "nvcc").is_file():
            return Path(home) / "bin" / "nvcc"
    default = Path("/usr/local/cuda/bin/nvcc")
    if default.is_file():
        return default
    found = shutil.which("nvcc")
    return Path(found).resolve() if found else None


def cuda_home() -> Path | None:
    """The CUDA toolkit folder holding nvcc and the CUDA headers, when it can be told from nvcc."""
    nvcc = find_nvcc()
    if nvcc is None:
        return None
    home = nvcc.parent.parent
    return home if (home / "include" / "cuda_runtime.h").is_file() else None


def nvcc_version(nvcc: Path) -> str | None:
    """``13.0`` from ``nvcc --version``, or None when it cannot be run."""
    try:
        text = subprocess.run([str(nvcc), "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"release (\d+\.\d+)", text)
    return match.group(1) if match else None


def cuda_buildable() -> tuple[bool, str]:
    """Whether the CUDA library can be built here and, if not, why."""
    import torch

    if torch.version.cuda is None:
        return False, f"this torch ({torch.__version__}) is a CPU-only build"
    if find_nvcc() is None:
        return False, "nvcc was not found (set CUDA_HOME to the CUDA toolkit)"
    return True, ""


def default_archs() -> str:
    """The visible GPUs' compute capabilities, else ``8.0;9.0``."""
    import torch

    if torch.cuda.is_available():
        caps = {torch.cuda.get_device_capability(i) for i in range(torch.cuda.device_count())}
        return ";".join(f"{major}.{minor}" for major, minor in sorted(caps))
    return DEFAULT_ARCHS


def parse_archs(archs: str) -> str:
    """Normalise ``"8.0;9.0"`` / ``"8.0 9.0"`` / ``"8.0,9.0"``; ValueError naming the bad entry."""
    parts = [p for p in re.split(r"[;, ]+", archs.strip()) if p]
    if not parts:
        raise ValueError(f'--arch must list compute capabilities like "8.0;9.0", got {archs!r}')
    for part in parts:
        if not _ARCH_PATTERN.match(part):
            raise ValueError(
                f'--arch entry {part!r} is not a compute capability like "8.0", "9.0" or "9.0a"; '
                f'pass e.g. --arch "8.0;9.0"'
            )
    return ";".join(parts)
