"""Build the compiled yoso operators ahead of time into a per-user cache; a stale build is never loaded.

Two shared libraries are built with ``torch.utils.cpp_extension``:

- ``yoso_cpu``: the operator schemas (``csrc/ops.cpp``) and the CPU kernels (``csrc/cpu``);
- ``yoso_cuda``: the CUDA kernels (``csrc/cuda``), loaded after ``yoso_cpu``,

so a CPU-only machine and a CUDA machine both work. They live in ``<root>/<key>/`` where ``root``
is ``$YOSO_KERNEL_DIR`` or ``~/.cache/yoso/kernels`` and ``key`` joins the torch version, its CUDA
version and a hash of the sources, the compiler flags and the CPU's instruction sets. A JSON file
of build metadata sits beside each library, with the library's size and SHA-256: a cached library
is checked against them before it is loaded (``verify_library``), so a truncated or damaged file
is reported and rebuilt instead of crashing the process that maps it. Compilation runs in a child
process (so a failed build cannot leave half-registered operators in the caller) into a temporary
folder that is renamed into place only once the library loads.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

CSRC = Path(__file__).resolve().parent / "csrc"
KINDS = ("cpu", "cuda")
DEFAULT_ARCHS = "8.0;9.0"
CPU_FLAGS = ["-O3", "-march=native", "-mprefer-vector-width=512", "-fopenmp"]
CUDA_FLAGS = ["-O3", "--expt-relaxed-constexpr"]
_ARCH_PATTERN = re.compile(r"^\d+\.\d+[af]?(\+PTX)?$")


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


def _cpu_signature() -> str:
    """The instruction sets ``-march=native`` compiles for, so a cache shared between machines stays safe."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    except OSError:
        pass
    return platform.processor() or platform.machine()


def sources_hash() -> str:
    """Hash of every source and header, the compiler flags and the CPU's instruction sets."""
    digest = hashlib.sha256()
    for path in sorted(
        p for p in CSRC.rglob("*") if p.is_file() and p.suffix in {".h", ".cuh", ".cpp", ".cu"}
    ):
        digest.update(str(path.relative_to(CSRC)).encode())
        digest.update(path.read_bytes())
    digest.update(" ".join(CPU_FLAGS + CUDA_FLAGS).encode())
    digest.update(_cpu_signature().encode())
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


def library_path(kind: str, key: str | None = None) -> Path:
    """Path of the shared library ``kind`` for this torch and these sources."""
    return kernel_dir(key) / f"yoso_{kind}.so"


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


def verify_library(kind: str, key: str | None = None) -> str | None:
    """Why the cached library ``kind`` must not be loaded (missing, or not the file its build wrote), or None.

    A library is loaded only when its size and SHA-256 equal those in its build metadata:
    mapping a truncated shared library kills the process with SIGBUS, beyond any error handling.
    """
    key = key or build_key()
    path = library_path(kind, key)
    if not path.is_file():
        return f"{path} does not exist"
    meta = read_metadata(kind, key)
    if meta is None:
        return f"{path} has no readable build metadata ({metadata_path(kind, key).name})"
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


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


def _child_env(kind: str, archs: str) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("MAX_JOBS", str(max(1, os.cpu_count() or 1)))
    if kind == "cuda":
        home = cuda_home()
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
        "yoso_core.kernels_build",
        kind,
        str(build_dir),
        str(cpu_library),
        *(str(p) for p in source_files(kind)),
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

    digest = sources_hash()
    key = build_key(digest)
    target = library_path(kind, key)
    if kind == "cuda":
        ok, why = cuda_buildable()
        if not ok:
            raise KernelBuildError(f"cannot build the CUDA kernels: {why}")
        archs = parse_archs(archs or default_archs())
    else:
        archs = platform.machine()
    problem = kernel_root_problem()
    if problem is not None:
        raise ValueError(problem)
    note = ""
    if target.is_file() and not force:
        meta = read_metadata(kind, key) or {}
        damage = verify_library(kind, key)
        if damage is None and (kind != "cuda" or meta.get("archs") == archs):
            return BuildResult(kind, target, meta.get("archs", archs), 0.0, cached=True)
        if damage is not None:
            note = f"rebuilt: the cached library failed its check ({damage})"
    target.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    build_dir = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".build-{kind}-"))
    try:
        _compile(kind, archs, build_dir, library_path("cpu", key), verbose, on_output)
        if sources_hash() != digest:  # never file a library under a key of other sources
            raise KernelBuildError(
                f"the kernel sources in {CSRC} changed while the {kind} kernels compiled; run the build again"
            )
        built = build_dir / f"yoso_{kind}.so"
        seconds = time.perf_counter() - start
        nvcc = find_nvcc() if kind == "cuda" else None
        metadata = {
            "library": target.name,
            "size": built.stat().st_size,
            "sha256": file_sha256(built),
            "kind": kind,
            "torch": torch.__version__,
            "cuda": torch.version.cuda,
            "nvcc": nvcc_version(nvcc) if nvcc else None,
            "archs": archs,
            "sources_hash": digest,
            "key": key,
            "python": platform.python_version(),
            "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "seconds": round(seconds, 1),
        }
        # metadata first: a library in place always has the metadata it is verified against
        _write_atomic(metadata_path(kind, key), json.dumps(metadata, indent=2) + "\n")
        os.replace(built, target)
    finally:
        shutil.rmtree(build_dir, ignore_errors=True)
    return BuildResult(kind, target, archs, seconds, cached=False, note=note)


def build_kernels(
    cuda: bool | None = None,
    archs: str | None = None,
    *,
    force: bool = False,
    verbose: bool = False,
    on_start: Callable[[str], None] = lambda kind: None,
    on_output: Callable[[str], None] = print,
) -> list[BuildResult]:
    """Build the CPU library and, when ``cuda`` (default: nvcc and a CUDA torch are present), the CUDA one.

    ``archs`` is a list like ``"8.0;9.0"`` (default: the visible GPUs', else ``8.0;9.0``). Raises
    ValueError for a malformed ``archs`` or ``cuda=True`` where CUDA cannot be built, and
    KernelBuildError with the compiler's output when compilation fails.
    """
    if archs is not None:
        archs = parse_archs(archs)
    buildable, why = cuda_buildable()
    if cuda is None:
        cuda = buildable
    elif cuda and not buildable:
        raise ValueError(f"--cuda was given but {why}; pass --no-cuda to build the CPU kernels only")
    results = []
    for kind in ("cpu", "cuda") if cuda else ("cpu",):
        on_start(kind)
        results.append(build_library(kind, archs or "", force=force, verbose=verbose, on_output=on_output))
    return results


@dataclass(frozen=True)
class CheckResult:
    """One operator against the reference on one device: worst relative error, and whether it passed."""

    device: str
    op: str
    error: float
    passed: bool


def self_check(devices: list[str] | None = None, seed: int = 0) -> list[CheckResult]:
    """Compare every compiled operator with the reference on small random inputs on each device present.

    Codes must be identical; cumulations within 1e-5 relative (float32). A device whose library
    does not load is reported as failed with an infinite error.
    """
    import torch

    from .attention import hashing, ops
    from .attention.backends import REFERENCE, compiled_backend

    if devices is None:
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    ops.forget_failures()
    results = []
    gen = torch.Generator().manual_seed(seed)
    bh, n_q, n_k, d, num_hash, tau = 3, 37, 29, 48, 8, 6
    x = torch.randn(bh, n_q, d, generator=gen)
    diagonals = hashing.draw_fast_hash_diagonals(bh, d, num_hash, tau, torch.device("cpu"), gen)
    q_codes = torch.randint(0, 1 << tau, (bh, n_q, num_hash), generator=gen, dtype=torch.int32)
    k_codes = torch.randint(0, 1 << tau, (bh, n_k, num_hash), generator=gen, dtype=torch.int32)
    q_mask = (torch.rand(bh, n_q, generator=gen) > 0.2).float()
    k_mask = (torch.rand(bh, n_k, generator=gen) > 0.2).float()
    value = torch.randn(bh, n_k, d, generator=gen)
    q_weight = torch.randn(bh, n_q, 24, generator=gen)
    k_weight = torch.randn(bh, n_k, 24, generator=gen)
    query = torch.randn(bh, n_q, d, generator=gen)
    grad = torch.randn(bh, n_q, d, generator=gen)

    def outputs(backend, device: str) -> dict[str, torch.Tensor]:
        """Every operator of ``backend`` on the inputs above, moved to ``device``."""
        q_c, k_c, q_m, k_m, v = (t.to(device) for t in (q_codes, k_codes, q_mask, k_mask, value))
        backward_args = (q_c, k_c, q_m, k_m, query.to(device), x[:, :n_k].to(device), v, grad.to(device))
        return {
            "fast_hash": backend.fast_hash(x.to(device), diagonals.to(device), num_hash, tau),
            "lsh_cumulation": backend.lsh_cumulation(q_c, k_c, q_m, k_m, v, tau),
            "lsh_weighted_cumulation": backend.lsh_weighted_cumulation(
                q_c, k_c, q_m, k_m, q_weight.to(device), k_weight.to(device), v, tau
            ),
            "lsh_backward": torch.cat(backend.lsh_backward(*backward_args, tau), dim=1),
        }

    expected = outputs(REFERENCE, "cpu")
    for device in devices:
        backend, _ = compiled_backend(device)
        if backend is None:
            results.extend(CheckResult(device, op, float("inf"), False) for op in expected)
            continue
        got = outputs(backend, device)
        for op, want in expected.items():
            have = got[op].cpu()
            if op == "fast_hash":
                error = (have != want).float().mean().item()
                passed = error == 0.0
            else:
                error = ((have - want).abs().max() / want.abs().max().clamp_min(1e-30)).item()
                passed = error <= 1e-5
            results.append(CheckResult(device, op, error, passed))
    return results


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
