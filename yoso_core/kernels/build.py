"""Compile the yoso operators ahead of time into the kernel cache (``yoso build-kernels``).

Two shared libraries are built with ``torch.utils.cpp_extension``:

- ``yoso_cpu``: the operator schemas (``csrc/ops.cpp``) and the CPU kernels (``csrc/cpu``);
- ``yoso_cuda``: the CUDA kernels (``csrc/cuda``), loaded after ``yoso_cpu``,

so a CPU-only machine and a CUDA machine both work. Compilation runs in a child process (so a
failed build cannot leave half-registered operators in the caller) into a temporary folder that is
renamed into place, beside its metadata (``cache``), only once the library loads.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from . import cache, toolchain
from .cache import CPU_FLAGS, CUDA_FLAGS


class KernelBuildError(RuntimeError):
    """A compiler is missing or compilation failed; the message holds the compiler's error."""


@dataclass(frozen=True)
class BuildResult:
    """One library that is now in the cache: what, for which archs, where, and how long it took."""

    kind: str
    path: Path
    archs: str
    seconds: float
    cached: bool
    note: str = ""  # e.g. why a cached library was rebuilt


@dataclass(frozen=True)
class CheckResult:
    """One operator against the reference on one device: worst relative error, and whether it passed."""

    device: str
    op: str
    error: float
    passed: bool


@dataclass(frozen=True)
class KernelBuild:
    """What ``build_kernels`` did: the libraries now in the cache and, when checked, each operator's check."""

    libraries: list[BuildResult]
    checks: list[CheckResult]

    @property
    def failed(self) -> list[str]:
        """``"<device> <operator>"`` for every check that failed (empty when all passed or none ran)."""
        return [f"{c.device} {c.op}" for c in self.checks if not c.passed]


def cache_unwritable(exc: OSError) -> str:
    """One line for a kernel cache that cannot be written: the folder, why, and the fix."""
    root = cache.kernel_root()
    source = "$YOSO_KERNEL_DIR" if os.environ.get("YOSO_KERNEL_DIR") else "the kernel cache"
    why = {
        errno.EROFS: "is on a read-only file system",
        errno.EACCES: "is not writable (permission denied)",
        errno.EPERM: "is not writable (permission denied)",
        errno.ENOSPC: "is on a full disk",
        errno.EDQUOT: "is over its disk quota",
    }.get(exc.errno, f"cannot be written ({exc.strerror or exc})")
    return (
        f"{source} {str(root)!r} {why}; set YOSO_KERNEL_DIR to a writable folder with space "
        "(e.g. YOSO_KERNEL_DIR=$HOME/yoso-kernels yoso build-kernels)"
    )


def _write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file beside it; on failure the temporary is removed."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _child_env(kind: str, archs: str) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("MAX_JOBS", str(max(1, os.cpu_count() or 1)))
    if kind == "cuda":
        home = toolchain.cuda_home()
        if home is not None:
            env.setdefault("CUDA_HOME", str(home))
        env["TORCH_CUDA_ARCH_LIST"] = archs.replace(";", " ")
    return env


def _compile(
    kind: str,
    archs: str,
    build_dir: Path,
    cpu_library: Path,
    verbose: bool,
    on_output: Callable[[str], None],
) -> None:
    """Compile library ``kind`` in a child process; KernelBuildError with its output on failure."""
    command = [
        sys.executable,
        "-m",
        "yoso_core.kernels.build",
        kind,
        str(build_dir),
        str(cpu_library),
        *(str(p) for p in cache.source_files(kind)),
    ]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=_child_env(kind, archs),
    )
    lines: list[str] = []
    assert process.stdout is not None
    for line in process.stdout:
        lines.append(line)
        if verbose:
            on_output(line.rstrip("\n"))
    if process.wait() != 0:
        # the compiler's own output comes before the Python traceback of cpp_extension
        output = "".join(lines)
        compiler = output.split("Traceback (most recent call last)")[0].splitlines()
        errors = [ln for ln in compiler if "error" in ln.lower()]
        shown = "\n".join(errors[:20] if errors else output.splitlines()[-40:])
        raise KernelBuildError(f"compiling the {kind} kernels failed (exit {process.returncode}):\n{shown}")


def build_library(
    kind: str,
    archs: str = "",
    *,
    force: bool = False,
    verbose: bool = False,
    on_output: Callable[[str], None] = print,
) -> BuildResult:
    """Build library ``kind`` into the cache (unless a build for this key exists and not ``force``)."""
    import torch

    digest = cache.sources_hash()
    key = cache.build_key(digest)
    target = cache.library_path(kind, key)
    if kind == "cuda":
        ok, why = toolchain.cuda_buildable()
        if not ok:
            raise KernelBuildError(f"cannot build the CUDA kernels: {why}")
        archs = toolchain.parse_archs(archs or toolchain.default_archs())
    else:
        archs = platform.machine()
    problem = cache.kernel_root_problem()
    if problem is not None:
        raise ValueError(problem)
    note = ""
    if target.is_file() and not force:
        meta = cache.read_metadata(kind, key) or {}
        damage = cache.verify_library(kind, key)
        if damage is None and (kind != "cuda" or meta.get("archs") == archs):
            return BuildResult(kind, target, meta.get("archs", archs), 0.0, cached=True)
        if damage is not None:
            note = f"rebuilt: the cached library failed its check ({damage})"
    start = time.perf_counter()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        build_dir = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".build-{kind}-"))
    except OSError as exc:
        raise ValueError(cache_unwritable(exc)) from None
    try:
        _compile(kind, archs, build_dir, cache.library_path("cpu", key), verbose, on_output)
        if cache.sources_hash() != digest:  # never file a library under a key of other sources
            raise KernelBuildError(
                f"the kernel sources in {cache.CSRC} changed while the {kind} kernels compiled; "
                "run the build again"
            )
        built = build_dir / f"yoso_{kind}.so"
        seconds = time.perf_counter() - start
        nvcc = toolchain.find_nvcc() if kind == "cuda" else None
        metadata = {
            "library": target.name,
            "size": built.stat().st_size,
            "sha256": cache.file_sha256(built),
            "kind": kind,
            "torch": torch.__version__,
            "cuda": torch.version.cuda,
            "nvcc": toolchain.nvcc_version(nvcc) if nvcc else None,
            "archs": archs,
            "sources_hash": digest,
            "key": key,
            "python": platform.python_version(),
            "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "seconds": round(seconds, 1),
        }
        # metadata first: a library in place always has the metadata it is verified against
        try:
            _write_atomic(cache.metadata_path(kind, key), json.dumps(metadata, indent=2) + "\n")
            os.replace(built, target)
        except OSError as exc:
            raise ValueError(cache_unwritable(exc)) from None
    finally:
        shutil.rmtree(build_dir, ignore_errors=True)
    return BuildResult(kind, target, archs, seconds, cached=False, note=note)


def build_kernels(
    cuda: bool | None = None,
    archs: str | None = None,
    *,
    force: bool = False,
    verbose: bool = False,
    check: bool = True,
    on_start: Callable[[str], None] = lambda kind: None,
    on_output: Callable[[str], None] = print,
) -> KernelBuild:
    """Build the CPU library and, when ``cuda`` (default: nvcc and a CUDA torch are present), the CUDA one.

    ``archs`` is a list like ``"8.0;9.0"`` (default: the visible GPUs', else ``8.0;9.0``). With
    ``check`` the built operators are then compared with the reference (``run_self_check``) and
    the results returned in ``checks``; a failed check is a result, not an exception. ``on_start``
    is called with each library's kind before it is built, and with ``"check"`` before the check. Raises
    ValueError for a malformed ``archs`` or ``cuda=True`` where CUDA cannot be built, and
    KernelBuildError with the compiler's output when compilation (or the check's process) fails.
    """
    if archs is not None:
        archs = toolchain.parse_archs(archs)
    buildable, why = toolchain.cuda_buildable()
    if cuda is None:
        cuda = buildable
    elif cuda and not buildable:
        raise ValueError(f"--cuda was given but {why}; pass --no-cuda to build the CPU kernels only")
    results = []
    for kind in ("cpu", "cuda") if cuda else ("cpu",):
        on_start(kind)
        results.append(build_library(kind, archs or "", force=force, verbose=verbose, on_output=on_output))
    if check:
        on_start("check")
    return KernelBuild(results, run_self_check() if check else [])


def run_self_check(timeout: float = 600.0) -> list[CheckResult]:
    """Run ``yoso_core.attention.selfcheck`` in a child process and return its results.

    A child process, like the compile: the libraries are loaded and run there, so a library that
    crashes the process that maps it is reported as a KernelBuildError instead of killing the caller.
    """
    command = [sys.executable, "-m", "yoso_core.attention.selfcheck", "--json"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise KernelBuildError(
            f"the self-check of the kernels did not finish within {timeout:.0f} s"
        ) from exc
    try:
        rows = json.loads(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else None
    except (IndexError, ValueError):
        rows = None
    if not isinstance(rows, list):
        output = (done.stderr or done.stdout).strip().splitlines()[-20:]
        raise KernelBuildError(
            f"the self-check of the kernels failed (exit {done.returncode}):\n" + "\n".join(output)
        )
    return [CheckResult(r["device"], r["op"], float(r["error"]), bool(r["passed"])) for r in rows]


def _child_main(kind: str, build_dir: str, cpu_library: str, *sources: str) -> None:
    """Entry of the child process: compile with cpp_extension and check that the library loads."""
    import torch
    from torch.utils import cpp_extension

    if kind == "cuda" and Path(cpu_library).is_file():
        torch.ops.load_library(cpu_library)  # the schemas the CUDA implementations attach to
    cpp_extension.load(
        name=f"yoso_{kind}",
        sources=list(sources),
        extra_cflags=CPU_FLAGS,
        extra_cuda_cflags=CUDA_FLAGS,
        # at::parallel_for is OpenMP in torch's headers; libgomp.so.1 resolves to the copy torch loaded
        extra_ldflags=["-fopenmp"] if kind == "cpu" else [],
        build_directory=build_dir,
        verbose=True,
        with_cuda=kind == "cuda",
        is_python_module=False,
    )


if __name__ == "__main__":
    _child_main(*sys.argv[1:])
