"""Compile the yoso operators ahead of time into the kernel cache (``yoso build-kernels``).

Two libraries are built with ``torch.utils.cpp_extension``:

- ``yoso_cpu``: the operator schemas (``csrc/ops.cpp``) and the CPU kernels (``csrc/cpu``), as one
  complete shared library per instruction-set variant (``isa``: ``yoso_cpu_avx512.so``,
  ``yoso_cpu_avx2.so``, ``yoso_cpu_baseline.so`` on x86-64), of which a process loads exactly one;
- ``yoso_cuda``: the CUDA kernels (``csrc/cuda``), loaded after ``yoso_cpu``,

so a CPU-only machine and a CUDA machine both work, and one build serves every CPU of the
architecture. Each compilation runs in a child process (so a failed build cannot leave
half-registered operators in the caller) into a temporary folder; the files are renamed into
place, beside their metadata (``cache``), only once every variant has compiled and those this
CPU runs have loaded.
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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from . import cache, isa, toolchain
from .cache import CUDA_FLAGS


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
    variants: tuple[str, ...] = ()  # the CPU library's instruction-set variants, best first


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
    variant: str | None = None,
) -> None:
    """Compile library ``kind`` (CPU: variant ``variant``) in a child process into ``build_dir``.

    The file is ``build_dir / cache.library_name(kind, variant)``; KernelBuildError with the
    compiler's output on failure.
    """
    name = Path(cache.library_name(kind, variant)).stem
    flags = isa.compile_flags(variant) if kind == "cpu" else list(isa.COMMON_FLAGS)
    # a variant this CPU cannot run is compiled but not loaded (its initialisers may use its instructions)
    load = kind != "cpu" or variant in isa.supported()
    sources = cache.source_files(kind)
    if kind == "cpu":
        sources = [_unity_source(build_dir, name, sources)]
    command = [
        sys.executable,
        "-m",
        "yoso_core.kernels.build",
        kind,
        name,
        json.dumps(flags),
        "1" if load else "0",
        str(build_dir),
        str(cpu_library),
        *(str(p) for p in sources),
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
        what = f"{kind} kernels ({variant})" if variant else f"{kind} kernels"
        raise KernelBuildError(f"compiling the {what} failed (exit {process.returncode}):\n{shown}")


def _unity_source(build_dir: Path, name: str, sources: list[Path]) -> Path:
    """One translation unit that includes every CPU source, so a variant parses torch's headers once.

    The sources share no names at file scope (each keeps its helpers in its own named or anonymous
    namespace block, and every name differs), and TORCH_LIBRARY_IMPL blocks are unique per use.
    """
    unity = build_dir / f"{name}.cpp"
    lines = [f'#include "{path}"' for path in sources]
    unity.write_text(
        "// Every CPU source of yoso, compiled as one unit (generated by the build).\n"
        + "\n".join(lines)
        + "\n"
    )
    return unity


def _cached(kind: str, key: str, archs: str, variants: tuple[str, ...]) -> tuple[dict | None, str]:
    """The metadata of a usable cached build of ``kind`` (None when there is none) and, when a cached
    build exists but is damaged, why it must be rebuilt."""
    meta = cache.read_metadata(kind, key)
    names = variants if kind == "cpu" else (None,)
    if not any(cache.library_path(kind, key, v).is_file() for v in names):
        return None, ""
    damage = next((d for v in names if (d := cache.verify_library(kind, key, v)) is not None), None)
    if damage is not None:
        return None, f"rebuilt: the cached library failed its check ({damage})"
    if kind == "cuda" and (meta or {}).get("archs") != archs:
        return None, ""
    return meta, ""


def build_library(
    kind: str,
    archs: str = "",
    *,
    force: bool = False,
    verbose: bool = False,
    on_output: Callable[[str], None] = print,
) -> BuildResult:
    """Build library ``kind`` into the cache (unless a build for this key exists and not ``force``).

    For ``"cpu"`` every instruction-set variant of this architecture is built (``isa.variants``);
    the result's ``path`` is the variant this process loads.
    """
    import torch

    digest = cache.sources_hash()
    key = cache.build_key(digest)
    variants = isa.variants() if kind == "cpu" else ()
    if kind == "cuda":
        ok, why = toolchain.cuda_buildable()
        if not ok:
            raise KernelBuildError(f"cannot build the CUDA kernels: {why}")
        archs = toolchain.parse_archs(archs or toolchain.default_archs())
    else:
        archs = platform.machine()
    target = cache.library_path(kind, key)  # for the CPU, raises IsaError for an unusable $YOSO_CPU_ISA
    problem = cache.kernel_root_problem()
    if problem is not None:
        raise ValueError(problem)
    note = ""
    if not force:
        meta, note = _cached(kind, key, archs, variants)
        if meta is not None:
            return BuildResult(kind, target, meta.get("archs", archs), 0.0, cached=True, variants=variants)
    start = time.perf_counter()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        build_dir = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".build-{kind}-"))
    except OSError as exc:
        raise ValueError(cache_unwritable(exc)) from None
    try:

        def compile_one(variant: str | None) -> tuple[Path, dict]:
            began = time.perf_counter()
            variant_dir = build_dir / (variant or kind)
            variant_dir.mkdir()
            _compile(kind, archs, variant_dir, cache.library_path("cpu", key), verbose, on_output, variant)
            built = variant_dir / cache.library_name(kind, variant)
            record = {
                "library": built.name,
                "size": built.stat().st_size,
                "sha256": cache.file_sha256(built),
            }
            if variant is not None:
                record["flags"] = isa.compile_flags(variant)
                record["seconds"] = round(time.perf_counter() - began, 1)
            return built, record

        # the variants are independent compiles of one unit each: as many at once as there are cores
        names = variants or (None,)
        with ThreadPoolExecutor(max_workers=max(1, min(len(names), os.cpu_count() or 1))) as pool:
            files = dict(zip(names, pool.map(compile_one, names)))
        if cache.sources_hash() != digest:  # never file a library under a key of other sources
            raise KernelBuildError(
                f"the kernel sources in {cache.CSRC} changed while the {kind} kernels compiled; "
                "run the build again"
            )
        seconds = time.perf_counter() - start
        nvcc = toolchain.find_nvcc() if kind == "cuda" else None
        metadata = {
            **(files[None][1] if kind != "cpu" else {"variants": {v: files[v][1] for v in variants}}),
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
            for variant, (built, _) in files.items():
                os.replace(built, cache.library_path(kind, key, variant))
        except OSError as exc:
            raise ValueError(cache_unwritable(exc)) from None
    finally:
        shutil.rmtree(build_dir, ignore_errors=True)
    return BuildResult(kind, target, archs, seconds, cached=False, note=note, variants=variants)


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
    ValueError for a malformed ``archs``, ``cuda=True`` where CUDA cannot be built or a
    ``$YOSO_CPU_ISA`` this CPU cannot run (``isa.IsaError``), and
    KernelBuildError with the compiler's output when compilation (or the check's process) fails.
    """
    if archs is not None:
        archs = toolchain.parse_archs(archs)
    isa.select()  # an unusable $YOSO_CPU_ISA is a usage error before anything is compiled
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


def run_self_check(timeout: float = 600.0, variant: str | None = None) -> list[CheckResult]:
    """Run ``yoso_core.attention.selfcheck`` in a child process and return its results.

    A child process, like the compile: the libraries are loaded and run there, so a library that
    crashes the process that maps it is reported as a KernelBuildError instead of killing the caller.
    ``variant`` checks that CPU variant (``$YOSO_CPU_ISA`` in the child) instead of the default one.
    """
    command = [sys.executable, "-m", "yoso_core.attention.selfcheck", "--json"]
    env = {**os.environ, isa.ENV_VAR: variant} if variant else None
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
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


def _child_main(
    kind: str, name: str, flags: str, load: str, build_dir: str, cpu_library: str, *sources: str
) -> None:
    """Entry of the child process: compile with cpp_extension and, with ``load == "1"``, load the library."""
    import torch
    from torch.utils import cpp_extension

    if kind == "cuda" and Path(cpu_library).is_file():
        torch.ops.load_library(cpu_library)  # the schemas the CUDA implementations attach to
    if load != "1":  # a variant this CPU cannot run: compiled, never mapped here
        torch.ops.load_library = lambda path: None
    cpp_extension.load(
        name=name,
        sources=list(sources),
        extra_cflags=json.loads(flags),
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
