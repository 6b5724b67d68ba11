"""Peak memory: CUDA allocator statistics, or one call in a child process on CPU."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from typing import Any

import torch

from .cases import make_call
from .config import MEMORY_CHILD, MEMORY_CHILD_RU, BenchConfig
from .timing import classify_failure


def _proc_kib(path: str, key: str) -> int | None:
    """The ``key:`` field (in KiB) of a /proc file such as /proc/self/status or /proc/meminfo."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _proc_status_kib(key: str) -> int | None:
    return _proc_kib("/proc/self/status", key)


def _meminfo_kib(key: str) -> int | None:
    return _proc_kib("/proc/meminfo", key)


@contextlib.contextmanager
def cpu_memory_guard() -> Iterator[None]:
    """Cap the address space at its current size plus ``MemAvailable`` for the block (Linux).

    An allocation past the cap fails with a catchable error (``classify_failure``: oom) where the
    kernel's OOM killer would otherwise end the whole process. Memory that other processes take
    meanwhile is not foreseen. A no-op where the limit cannot be read or set.
    """
    try:
        import resource

        size, available = _proc_status_kib("VmSize"), _meminfo_kib("MemAvailable")
        old = resource.getrlimit(resource.RLIMIT_AS)
        if size is None or available is None:
            raise ValueError("no /proc")
        limit = (size + available) * 1024
        if old[0] != resource.RLIM_INFINITY and old[0] <= limit:
            raise ValueError("a tighter limit is set already")
        resource.setrlimit(resource.RLIMIT_AS, (limit, old[1]))
    except (ImportError, OSError, ValueError):
        yield
        return
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, old)


def _reset_peak_rss() -> bool:
    """Reset this process's VmHWM to its current RSS (Linux >= 4.0); False where that is impossible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def measure_cpu_call(call: Callable[[], None], warm: Callable[[], None] | None = None) -> dict[str, Any]:
    """Peak RSS growth and time of one ``call`` in this process, after an optional small warm-up."""
    import resource

    if warm is not None:
        warm()  # thread pools and kernels initialise here, not inside the measured call
    can_reset = _reset_peak_rss()
    before = _proc_status_kib("VmRSS") or 0
    ru_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    call()
    seconds = time.perf_counter() - start
    hwm = _proc_status_kib("VmHWM") if can_reset else None
    if hwm is not None:
        peak_kib, method = hwm - before, MEMORY_CHILD
    else:
        peak_kib, method = (
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - max(before, ru_before),
            MEMORY_CHILD_RU,
        )
    # The whole process at that peak, the model, its inputs and the Python runtime included: what
    # has to fit in the machine's memory.
    whole_kib = hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "status": "ok",
        "peak_mib": max(peak_kib, 0) / 1024,
        "process_peak_mib": whole_kib / 1024,
        "seconds": seconds,
        "method": method,
    }


def measure_cuda_call(call: Callable[[], None], device: torch.device) -> float:
    """MiB allocated at the peak of one ``call`` beyond what was allocated before it."""
    torch.cuda.synchronize(device)
    before = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    call()
    torch.cuda.synchronize(device)
    return (torch.cuda.max_memory_allocated(device) - before) / 2**20


def child_measure(cfg: BenchConfig, level: str, impl: str, seq_len: int) -> dict[str, Any]:
    """Measure one row's memory in a fresh Python process; report OOM kills and time-outs as such."""
    spec = json.dumps({"config": asdict(cfg), "level": level, "impl": impl, "seq_len": seq_len})
    # The budget covers the call; the child also needs time to import torch and build its inputs.
    timeout = cfg.time_budget + 60.0
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "yoso_core.bench", "--child"],
            input=spec,
            text=True,
            capture_output=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return {
            "status": "timeout",
            "note": f"one call did not finish within the {cfg.time_budget:g} s budget",
        }
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode == 0 and lines:
        return json.loads(lines[-1])
    if proc.returncode < 0:
        sig = -proc.returncode
        why = "most likely out of memory (the kernel's OOM killer)" if sig == 9 else "killed"
        return {
            "status": "oom" if sig == 9 else "error",
            "note": f"child process killed by signal {sig}: {why}",
        }
    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1][:300]
    return {"status": "error", "note": f"child process exited {proc.returncode}: {tail}"}


def _child_main() -> int:
    """Entry of the measuring child: a JSON spec on stdin, one JSON result line on stdout."""
    spec = json.loads(sys.stdin.read())
    cfg = BenchConfig(**spec["config"])
    level, impl, seq_len = spec["level"], spec["impl"], spec["seq_len"]
    try:
        call = make_call(cfg, level, impl, seq_len)
        small = min(seq_len, 16)
        warm = make_call(cfg, level, impl, small) if small < seq_len else None
        result = measure_cpu_call(call, warm)
        if result["seconds"] > cfg.time_budget:
            result.update(
                status="timeout",
                note=f"one call took {result['seconds']:.1f} s, over the {cfg.time_budget:g} s budget",
            )
    except Exception as exc:
        status, note = classify_failure(exc)
        result = {"status": status, "note": note}
    print(json.dumps(result), flush=True)
    return 0
