"""The kernel cache: build key, paths and build metadata; a stale or damaged build is never loaded.

Libraries live in ``<root>/<key>/`` where ``root`` is ``$YOSO_KERNEL_DIR`` or
``~/.cache/yoso/kernels`` and ``key`` joins the torch version, its CUDA version and a hash of the
sources, the compiler flags and the machine architecture (not the CPU's instruction sets: the CPU
library is built once per instruction-set variant, ``isa``, and the variant is chosen when it is
loaded). A JSON file of build metadata sits beside each library, with the size and SHA-256 of
each file (of each variant, for the CPU library): a cached library is checked against them before
it is loaded (``verify_library``), so a truncated or damaged file is reported and rebuilt instead
of crashing the process that maps it. Depends on nothing outside ``kernels``.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
from pathlib import Path

from . import isa as isa_module

CSRC = Path(__file__).resolve().parent.parent / "csrc"
KINDS = ("cpu", "cuda")
CUDA_FLAGS = ["-O3", "--expt-relaxed-constexpr"]


def kernel_root() -> Path:
    """The cache folder holding every build: ``$YOSO_KERNEL_DIR`` or ``~/.cache/yoso/kernels``."""
    override = os.environ.get("YOSO_KERNEL_DIR")
    if override:
        return Path(override).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "yoso" / "kernels"


def kernel_root_problem() -> str | None:
    """Why the cache folder cannot hold builds (a file is in the way), or None when it can."""
    root = kernel_root()
    source = "$YOSO_KERNEL_DIR" if os.environ.get("YOSO_KERNEL_DIR") else "the kernel cache"
    for path in (root, *root.parents):
        if path.exists():
            if path.is_dir():
                return None
            return (
                f"{source} {str(root)!r} cannot be a folder: {str(path)!r} is a file; set YOSO_KERNEL_DIR "
                "to a directory (or unset it for ~/.cache/yoso/kernels)"
            )
    return None


def source_files(kind: str) -> list[Path]:
    """The sources compiled into library ``kind`` ("cpu" or "cuda")."""
    if kind == "cpu":
        return [CSRC / "ops.cpp", *sorted((CSRC / "cpu").glob("*.cpp"))]
    if kind == "cuda":
        return sorted((CSRC / "cuda").glob("*.cu"))
    raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")


def cpu_flag_sets(machine: str | None = None) -> dict[str, list[str]]:
    """The compiler flags of every CPU variant built for ``machine`` (default: this one), best first."""
    return {isa: isa_module.compile_flags(isa, machine) for isa in isa_module.variants(machine)}


def sources_hash() -> str:
    """Hash of every source and header, the compiler flags of every variant and the machine architecture.

    Not of the CPU's instruction sets: one build serves every CPU of the architecture.
    """
    digest = hashlib.sha256()
    for path in sorted(
        p for p in CSRC.rglob("*") if p.is_file() and p.suffix in {".h", ".cuh", ".cpp", ".cu"}
    ):
        digest.update(str(path.relative_to(CSRC)).encode())
        digest.update(path.read_bytes())
    for isa, flags in cpu_flag_sets().items():
        digest.update(f"{isa}: {' '.join(flags)}\n".encode())
    digest.update(" ".join(CUDA_FLAGS).encode())
    digest.update(platform.machine().encode())
    return digest.hexdigest()


def build_key(digest: str | None = None) -> str:
    """``torch<version>-<cuXY|nocuda>-<hash>``: a build is loaded only by the torch it was built for.

    ``digest`` is a ``sources_hash()`` the caller already has (default: computed here).
    """
    import torch

    cuda = f"cu{torch.version.cuda}" if torch.version.cuda else "nocuda"
    version = re.sub(r"[^A-Za-z0-9.]+", "_", torch.__version__)
    return f"torch{version}-{cuda}-{(digest or sources_hash())[:16]}"


def kernel_dir(key: str | None = None) -> Path:
    """Where this torch's build of these sources lives.

    Pass the ``build_key()`` you already have as ``key`` (here and below): computing it hashes every source.
    """
    return kernel_root() / (key or build_key())


def library_name(kind: str, isa: str | None = None) -> str:
    """File name of library ``kind``: ``yoso_cuda.so``, or ``yoso_cpu_<isa>.so`` for a CPU variant.

    ``isa`` defaults to the variant this process loads (``isa.select()``, which raises IsaError
    for an unusable ``$YOSO_CPU_ISA``).
    """
    if kind == "cpu":
        return f"yoso_cpu_{isa or isa_module.select()}.so"
    return f"yoso_{kind}.so"


def library_path(kind: str, key: str | None = None, isa: str | None = None) -> Path:
    """Path of the shared library ``kind`` (for the CPU: variant ``isa``, see ``library_name``)."""
    return kernel_dir(key) / library_name(kind, isa)


def metadata_path(kind: str, key: str | None = None) -> Path:
    """Path of the build metadata (JSON) beside library ``kind``."""
    return kernel_dir(key) / f"yoso_{kind}.json"


def read_metadata(kind: str, key: str | None = None) -> dict | None:
    """The build metadata of library ``kind``, or None when it is not built (or unreadable)."""
    try:
        meta = json.loads(metadata_path(kind, key).read_text())
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, read in blocks (reading, unlike mapping, is safe on a truncated file)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_record(kind: str, meta: dict, isa: str | None = None) -> dict | None:
    """The part of build metadata ``meta`` that describes one file: the CUDA library's whole
    metadata, or the CPU variant ``isa``'s entry under ``variants`` (None when it has none)."""
    if kind != "cpu":
        return meta
    record = (meta.get("variants") or {}).get(isa or isa_module.select())
    return record if isinstance(record, dict) else None


def verify_library(kind: str, key: str | None = None, isa: str | None = None) -> str | None:
    """Why the cached library ``kind`` (CPU: variant ``isa``, default the one this process loads)
    must not be loaded (missing, or not the file its build wrote), or None.

    A library is loaded only when its size and SHA-256 equal those in its build metadata:
    mapping a truncated shared library kills the process with SIGBUS, beyond any error handling.
    """
    key = key or build_key()
    path = library_path(kind, key, isa)
    if not path.is_file():
        return f"{path} does not exist"
    meta = read_metadata(kind, key)
    if meta is None:
        return f"{path} has no readable build metadata ({metadata_path(kind, key).name})"
    meta = file_record(kind, meta, isa) or {}
    if "size" not in meta or "sha256" not in meta:
        return f"{path} has no size and checksum in its build metadata (an older build)"
    try:
        size = path.stat().st_size
        if size != meta["size"]:
            return f"{path} is damaged: {size} bytes, but its build wrote {meta['size']}"
        if file_sha256(path) != meta["sha256"]:
            return f"{path} is damaged: its SHA-256 differs from the one its build recorded"
    except OSError as exc:
        return f"{path} cannot be read: {exc.strerror or exc}"
    return None
