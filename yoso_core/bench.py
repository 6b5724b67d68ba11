"""Benchmarks: YOSO against softmax attention, side by side on the same inputs in one process.

Two levels:

- attention: ``scaled_dot_product_attention`` (softmax), YOSO-E and sampled YOSO on each backend
  that can run on the device (the pure-PyTorch reference and the compiled kernel), on
  ``(batch, heads, seq, head_dim)`` inputs;
- model: our ``YosoModel`` (sampled mode) against a softmax encoder of the same size (transformers'
  ``RobertaModel`` with SDPA attention) and against transformers' ``YosoModel`` when importable.

Timing: every implementation is warmed up, then the repeats are interleaved (one call of each in
turn) so that machine noise spreads evenly; the median and the min-max are reported, with the
ratio of softmax's median to each median (``speedup_vs_softmax``). Memory: on CUDA, the growth of
``torch.cuda.max_memory_allocated`` over one call; on CPU, one call in a child process per row,
measuring the growth of its peak resident set size (``VmHWM`` in ``/proc/self/status``, reset
before the call). The child also guards the main process: a row that runs out of memory or past
its time budget there is reported as such and never timed, and the longer lengths of that
implementation are skipped. On CPU the timed rows run under ``cpu_memory_guard``: the address space
is capped at what the process uses plus the memory available, so a row that needs more (with
``--memory none`` nothing measured it first) fails with an allocation error, reported as ``oom``,
instead of drawing the kernel's OOM killer onto the whole run.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from .config import MAX_HASH_CODE_LEN, MAX_NUM_HASH, MIN_HASH_CODE_LEN, MIN_NUM_HASH

ATTENTION_IMPLS = ("sdpa", "yoso-e", "yoso-reference", "yoso-cpu", "yoso-cuda")
MODEL_IMPLS = ("softmax", "yoso", "transformers-yoso")
BASELINE = {"attention": "sdpa", "model": "softmax"}
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
MEMORY_MODES = ("auto", "process", "none")

MEMORY_CUDA = "cuda max_memory_allocated growth over one call"
MEMORY_CHILD = "child process: peak RSS growth over one call (VmHWM)"
MEMORY_CHILD_RU = "child process: peak RSS growth over one call (ru_maxrss; VmHWM reset unavailable)"

# Fields of a row, in the order of the CSV columns.
FIELDS = (
    "level",
    "impl",
    "seq_len",
    "mode",
    "status",
    "median_ms",
    "min_ms",
    "max_ms",
    "repeats",
    "speedup_vs_softmax",
    "peak_mem_mib",
    "memory_vs_softmax",
    "batch",
    "heads",
    "head_dim",
    "num_hash",
    "hash_code_len",
    "dtype",
    "device",
    "model",
    "memory_method",
    "note",
)


@dataclass
class BenchConfig:
    """What to benchmark; each field is the ``yoso bench`` option of the same name."""

    seq_len: list[int] = field(default_factory=lambda: [1024, 4096])
    batch: int = 1
    heads: int = 12
    head_dim: int = 64
    num_hash: int = 32
    hash_code_len: int | str = 8  # or "auto": round(log2(seq_len)) per length, the paper's setting
    dtype: str = "float32"  # or several, comma-separated ("float32,bfloat16"), timed one after the other
    device: str = "cpu"
    backward: bool = False
    repeats: int = 5
    warmup: int = 1
    time_budget: float = 120.0  # seconds per row, warm-up and repeats together
    memory: str = "auto"  # auto: CUDA allocator stats on CUDA, a child process per row on CPU
    model_level: bool = False
    model: str = "base"  # a size of yoso_core.sizes.MODEL_SIZES or a model directory
    impls: list[str] | None = None  # a subset of the implementations; None = all
    model_overrides: dict[str, Any] = field(default_factory=dict)  # YosoConfig fields, e.g. a small vocab

    def check(self) -> None:
        """Raise ValueError naming the option, the value and what would be valid."""
        if not self.seq_len:
            raise ValueError("--seq-len needs at least one length, e.g. --seq-len 1024 4096")
        for n in self.seq_len:
            if isinstance(n, bool) or not isinstance(n, int) or n < 1:
                raise ValueError(f"--seq-len values must be positive integers, got {n!r}")
        for name in ("batch", "heads", "head_dim", "repeats"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be a positive integer, got {value!r}")
        if isinstance(self.warmup, bool) or not isinstance(self.warmup, int) or self.warmup < 0:
            raise ValueError(f"--warmup must be an integer >= 0, got {self.warmup!r}")
        if not MIN_NUM_HASH <= self.num_hash <= MAX_NUM_HASH:
            raise ValueError(f"--num-hash must be in [{MIN_NUM_HASH}, {MAX_NUM_HASH}], got {self.num_hash}")
        if self.hash_code_len != "auto" and (
            isinstance(self.hash_code_len, bool)
            or not isinstance(self.hash_code_len, int)
            or not MIN_HASH_CODE_LEN <= self.hash_code_len <= MAX_HASH_CODE_LEN
        ):
            raise ValueError(
                f"--hash-code-len must be auto or an integer in [{MIN_HASH_CODE_LEN}, {MAX_HASH_CODE_LEN}], "
                f"got {self.hash_code_len!r}"
            )
        for dtype in self.dtypes:
            if dtype not in DTYPES:
                raise ValueError(
                    f"--dtype must be one of {', '.join(DTYPES)} (or several, comma-separated), got {dtype!r}"
                )
        if self.device not in ("cpu", "cuda"):
            raise ValueError(f"--device must be cpu or cuda, got {self.device!r}")
        if self.device == "cuda" and not torch.cuda.is_available():
            raise ValueError(
                "--device cuda needs a CUDA GPU and a CUDA build of torch; none is available here, "
                "use --device cpu"
            )
        if not self.time_budget > 0:
            raise ValueError(f"--time-budget must be a positive number of seconds, got {self.time_budget!r}")
        if self.memory not in MEMORY_MODES:
            raise ValueError(f"--memory must be one of {', '.join(MEMORY_MODES)}, got {self.memory!r}")
        known = MODEL_IMPLS if self.model_level else ATTENTION_IMPLS
        for impl in self.impls or ():
            if impl not in known:
                level = "model" if self.model_level else "attention"
                raise ValueError(
                    f"--impl {impl!r} is not one of the {level}-level implementations; choose from "
                    f"{', '.join(known)}"
                )
        if self.model_level:
            from .sizes import MODEL_SIZES

            if self.model not in MODEL_SIZES and not (Path(self.model) / "config.json").is_file():
                raise ValueError(
                    f"--model must be one of {', '.join(MODEL_SIZES)} or a directory with a "
                    f"config.json, got {self.model!r}"
                )
            try:
                model_config(self, max(self.seq_len))
            except (ValueError, TypeError, OSError) as exc:
                raise ValueError(f"--model {self.model}: {exc}") from exc

    @property
    def dtypes(self) -> list[str]:
        """The dtypes to time, in order: ``dtype`` split at commas."""
        return [part.strip() for part in str(self.dtype).split(",")]

    def code_len(self, seq_len: int) -> int:
        """The hash code length at ``seq_len``: the fixed one, or round(log2(seq_len)) clamped for auto."""
        if self.hash_code_len != "auto":
            return int(self.hash_code_len)
        return auto_hash_code_len(seq_len)

    @property
    def mode(self) -> str:
        """``forward`` or ``forward+backward``, as the rows report it."""
        return "forward+backward" if self.backward else "forward"


def auto_hash_code_len(seq_len: int) -> int:
    """``round(log2(seq_len))`` within the supported code lengths (12 at 4,096, 14 at 16,384)."""
    return min(MAX_HASH_CODE_LEN, max(MIN_HASH_CODE_LEN, round(math.log2(max(1, seq_len)))))


@dataclass
class BenchRow:
    """One implementation at one sequence length: its timings, memory and ratios to softmax."""

    level: str
    impl: str
    seq_len: int
    mode: str
    status: str = "ok"  # ok | oom | timeout | skipped | error
    median_ms: float | None = None
    min_ms: float | None = None
    max_ms: float | None = None
    repeats: int = 0
    speedup_vs_softmax: float | None = None  # softmax median / this median: > 1 is faster
    peak_mem_mib: float | None = None
    memory_vs_softmax: float | None = None  # this peak / softmax peak: < 1 is smaller
    batch: int = 1
    heads: int = 0
    head_dim: int = 0
    num_hash: int | None = None
    hash_code_len: int | None = None
    dtype: str = "float32"
    device: str = "cpu"
    model: str | None = None
    memory_method: str | None = None
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        """The row as a flat dict with the keys of FIELDS."""
        return {name: getattr(self, name) for name in FIELDS}


@dataclass
class Timing:
    """Wall-clock seconds of the timed repeats of one implementation, and why it stopped if it did."""

    seconds: list[float] = field(default_factory=list)
    status: str = "ok"
    note: str = ""


# ---------------------------------------------------------------------------------------------
# Timing and failure classification


def classify_failure(exc: BaseException) -> tuple[str, str]:
    """``("oom", message)`` for an allocation failure, else ``("error", message)``; one line."""
    text = f"{type(exc).__name__}: {exc}".strip().splitlines()[0][:300]
    oom_types = (MemoryError, getattr(torch, "OutOfMemoryError", MemoryError))
    lowered = str(exc).lower()
    if isinstance(exc, oom_types) or "out of memory" in lowered or "can't allocate memory" in lowered:
        return "oom", text
    return "error", text


def time_interleaved(
    calls: dict[str, Callable[[], None]],
    *,
    warmup: int,
    repeats: int,
    budget_s: float,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, Timing]:
    """Warm up each call, then time ``repeats`` rounds of one call of each in turn.

    An implementation whose warm-up and repeats so far pass ``budget_s`` stops there: ``timeout``
    when it could not finish a single timed repeat, else ``ok`` with fewer repeats and a note. A
    call that raises is classified by ``classify_failure`` and not called again.
    """
    results = {name: Timing() for name in calls}
    spent = dict.fromkeys(calls, 0.0)
    active = list(calls)

    def run(name: str) -> float | None:
        start = clock()
        try:
            calls[name]()
        except Exception as exc:  # reported per row; the other implementations continue
            results[name].status, results[name].note = classify_failure(exc)
            active.remove(name)
            return None
        elapsed = clock() - start
        spent[name] += elapsed
        return elapsed

    for name in list(active):
        for _ in range(warmup):
            if run(name) is None:
                break
        if name in active and spent[name] > budget_s:
            results[name].status = "timeout"
            results[name].note = f"warm-up took {spent[name]:.1f} s, over the {budget_s:g} s time budget"
            active.remove(name)
    for round_index in range(repeats):
        for name in list(active):
            elapsed = run(name)
            if elapsed is None:
                continue
            results[name].seconds.append(elapsed)
            if spent[name] > budget_s and round_index < repeats - 1:
                results[name].note = (
                    f"stopped after {round_index + 1} of {repeats} repeats: over the "
                    f"{budget_s:g} s time budget"
                )
                active.remove(name)
    return results


def _summary(seconds: list[float]) -> tuple[float, float, float]:
    """(median, min, max) in milliseconds."""
    return statistics.median(seconds) * 1e3, min(seconds) * 1e3, max(seconds) * 1e3


# ---------------------------------------------------------------------------------------------
# What to run: one callable per implementation and length


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def attention_impls(cfg: BenchConfig) -> list[tuple[str, str | None]]:
    """The attention-level implementations for ``cfg.device``, each with a reason when it cannot run."""
    from .attention.kernels import compiled_backend

    found: list[tuple[str, str | None]] = [("sdpa", None), ("yoso-e", None), ("yoso-reference", None)]
    backend, why = compiled_backend(cfg.device)
    found.append((f"yoso-{cfg.device}", None if backend is not None else why))
    return [(impl, why) for impl, why in found if cfg.impls is None or impl in cfg.impls]


def attention_inputs(cfg: BenchConfig, seq_len: int) -> tuple[torch.Tensor, ...]:
    """Seeded ``(batch, heads, seq, head_dim)`` unit-vector query and key, value and output gradient."""
    gen = torch.Generator().manual_seed(seq_len)
    shape = (cfg.batch, cfg.heads, seq_len, cfg.head_dim)
    q, k, v, g = (torch.randn(shape, generator=gen) for _ in range(4))
    q, k = torch.nn.functional.normalize(q, dim=-1), torch.nn.functional.normalize(k, dim=-1)
    dtype, device = DTYPES[cfg.dtype], torch.device(cfg.device)
    q, k, v, g = (t.to(device=device, dtype=dtype) for t in (q, k, v, g))
    if cfg.backward:
        q, k, v = (t.requires_grad_() for t in (q, k, v))
    return q, k, v, g


def attention_call(cfg: BenchConfig, impl: str, inputs: tuple[torch.Tensor, ...]) -> Callable[[], None]:
    """One forward (and backward with ``cfg.backward``) of ``impl`` on ``inputs``, synchronised."""
    from .attention import yoso_attention

    q, k, v, g = inputs
    device = q.device
    if impl == "sdpa":

        def forward():
            return torch.nn.functional.scaled_dot_product_attention(q, k, v)
    elif impl == "yoso-e":

        def forward():
            return yoso_attention(q, k, v, hash_code_len=cfg.hash_code_len, expectation=True)
    else:
        backend = impl.removeprefix("yoso-")
        gen = torch.Generator(device=device).manual_seed(0)

        def forward():
            return yoso_attention(
                q,
                k,
                v,
                num_hash=cfg.num_hash,
                hash_code_len=cfg.hash_code_len,
                backend=backend,
                generator=gen,
            )

    if cfg.backward:

        def call():
            for t in (q, k, v):
                t.grad = None
            forward().backward(g)
            _sync(device)
    else:

        def call():
            with torch.no_grad():
                forward()
            _sync(device)

    return call


def model_config(cfg: BenchConfig, max_len: int):
    """The YosoConfig of the benchmarked size: a named size or a directory's, positions for ``max_len``."""
    from .config import YosoConfig
    from .sizes import MODEL_SIZES

    if cfg.model in MODEL_SIZES:
        base = dict(MODEL_SIZES[cfg.model])
    elif json.loads((Path(cfg.model) / "config.json").read_text()).get("model_type") == "roberta":
        # a softmax baseline trained by `yoso finetune --attention softmax`: same sizes, its length
        # is two rows shorter than its position table (RoBERTa's ids start at 2)
        theirs = json.loads((Path(cfg.model) / "config.json").read_text())
        keep = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size")
        base = {k: theirs[k] for k in keep if k in theirs}
        base["max_position_embeddings"] = int(theirs.get("max_position_embeddings", 2)) - 2
    else:
        base = YosoConfig.from_pretrained(cfg.model).to_diff_dict()
    base = {k: v for k, v in base.items() if k not in ("architectures", "transformers_version", "model_type")}
    fields = {
        **base,
        **cfg.model_overrides,
        "use_expectation": False,
        "num_hash": cfg.num_hash,
        "hash_code_len": cfg.hash_code_len,
    }
    fields["max_position_embeddings"] = max(int(fields.get("max_position_embeddings", 0)), max_len)
    return YosoConfig(**fields)


def _yoso_backend(device: str) -> str:
    from .attention.kernels import compiled_backend

    backend, _ = compiled_backend(device)
    return device if backend is not None else "reference"


def model_impls(cfg: BenchConfig) -> list[tuple[str, str | None]]:
    """The model-level implementations, each with a reason when it cannot run."""
    found: list[tuple[str, str | None]] = [("softmax", None), ("yoso", None)]
    try:
        from transformers import YosoModel  # noqa: F401

        found.append(("transformers-yoso", None))
    except ImportError as exc:
        found.append(("transformers-yoso", f"transformers' YosoModel cannot be imported: {exc}"))
    return [(impl, why) for impl, why in found if cfg.impls is None or impl in cfg.impls]


def model_note(cfg: BenchConfig, impl: str) -> str:
    """What exactly a model-level row runs."""
    if impl == "softmax":
        return "transformers RobertaModel, SDPA attention, same hidden size, layers and heads"
    if impl == "yoso":
        return f"yoso_core YosoModel, sampled attention, {_yoso_backend(cfg.device)} backend"
    return (
        "transformers YosoModel in its expectation mode (YOSO-E): its sampled mode has no CPU path "
        "and needs a CUDA kernel downloaded from the hub"
    )


def build_model(cfg: BenchConfig, impl: str, max_len: int) -> torch.nn.Module:
    """A randomly initialised model of the benchmarked size for ``impl``, on the device and dtype."""
    import transformers

    from .modeling import YosoModel

    config = model_config(cfg, max_len)
    torch.manual_seed(0)
    if impl == "yoso":
        model = YosoModel(config)
        backend = _yoso_backend(cfg.device)
        for module in model.modules():
            if hasattr(module, "backend"):
                module.backend = backend
    else:
        shared = dict(
            vocab_size=config.vocab_size,
            hidden_size=config.hidden_size,
            num_hidden_layers=config.num_hidden_layers,
            num_attention_heads=config.num_attention_heads,
            intermediate_size=config.intermediate_size,
            hidden_act=config.hidden_act,
            hidden_dropout_prob=config.hidden_dropout_prob,
            attention_probs_dropout_prob=config.attention_probs_dropout_prob,
            type_vocab_size=config.type_vocab_size,
            layer_norm_eps=config.layer_norm_eps,
        )
        if impl == "softmax":
            # RoBERTa's position ids start at 2 like YOSO's, so its table needs two more rows.
            theirs = transformers.RobertaConfig(
                **shared, max_position_embeddings=config.max_position_embeddings + 2
            )
            model = transformers.RobertaModel._from_config(theirs, attn_implementation="sdpa")
        else:
            theirs = transformers.YosoConfig(
                **shared,
                max_position_embeddings=config.max_position_embeddings,
                use_expectation=True,
                hash_code_len=cfg.hash_code_len,
                num_hash=cfg.num_hash,
            )
            model = transformers.YosoModel(theirs)
    return model.to(device=cfg.device, dtype=DTYPES[cfg.dtype])


def model_call(cfg: BenchConfig, model: torch.nn.Module, seq_len: int) -> Callable[[], None]:
    """One forward (or training step: forward and backward, no optimiser) of ``model`` on seeded ids."""
    device = torch.device(cfg.device)
    gen = torch.Generator().manual_seed(seq_len)
    vocab = model.config.vocab_size
    ids = torch.randint(3, vocab, (cfg.batch, seq_len), generator=gen).to(device)
    mask = torch.ones(cfg.batch, seq_len, dtype=torch.long, device=device)
    if cfg.backward:
        model.train()

        def call():
            model.zero_grad(set_to_none=True)
            out = model(input_ids=ids, attention_mask=mask).last_hidden_state
            out.float().pow(2).mean().backward()
            _sync(device)
    else:
        model.eval()

        def call():
            with torch.no_grad():
                model(input_ids=ids, attention_mask=mask)
            _sync(device)

    return call


def make_call(
    cfg: BenchConfig, level: str, impl: str, seq_len: int, inputs: tuple[torch.Tensor, ...] | None = None
) -> Callable[[], None]:
    """The callable of ``impl`` at ``seq_len``; attention ones run on ``inputs`` when given (shared)."""
    if level == "attention":
        return attention_call(cfg, impl, inputs if inputs is not None else attention_inputs(cfg, seq_len))
    return model_call(cfg, build_model(cfg, impl, max(cfg.seq_len)), seq_len)


# ---------------------------------------------------------------------------------------------
# Peak memory


def _proc_status_kib(key: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _meminfo_kib(key: str) -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


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
    if can_reset and _proc_status_kib("VmHWM") is not None:
        peak_kib, method = _proc_status_kib("VmHWM") - before, MEMORY_CHILD
    else:
        peak_kib, method = (
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - max(before, ru_before),
            MEMORY_CHILD_RU,
        )
    return {"status": "ok", "peak_mib": max(peak_kib, 0) / 1024, "seconds": seconds, "method": method}


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


# ---------------------------------------------------------------------------------------------
# The benchmark


def run_bench(cfg: BenchConfig, progress: Callable[[str], None] | None = None) -> list[BenchRow]:
    """Run every implementation of the chosen level at every length; one row each, ratios filled in.

    Several dtypes are timed one after the other; ``hash_code_len="auto"`` times each length with its
    own code length. Ratios compare rows of one length, mode and dtype.
    """
    cfg.check()
    if len(cfg.dtypes) == 1 and cfg.hash_code_len != "auto":
        return _run_single(cfg, progress)
    rows: list[BenchRow] = []
    for dtype in cfg.dtypes:
        groups = [[n] for n in sorted(set(cfg.seq_len))] if cfg.hash_code_len == "auto" else [cfg.seq_len]
        for lengths in groups:
            sub = replace(cfg, dtype=dtype, seq_len=lengths, hash_code_len=cfg.code_len(lengths[0]))
            rows.extend(_run_single(sub, progress))
    add_ratios(rows)
    return rows


def _run_single(cfg: BenchConfig, progress: Callable[[str], None] | None = None) -> list[BenchRow]:
    """run_bench for one dtype and one fixed code length."""
    say = progress or (lambda message: None)
    level = "model" if cfg.model_level else "attention"
    found = model_impls(cfg) if cfg.model_level else attention_impls(cfg)
    memory_mode = "none" if cfg.memory == "none" else ("cuda" if cfg.device == "cuda" else "process")
    failed: dict[str, tuple[str, str]] = {}  # impl -> (status, why) at a shorter length
    rows: list[BenchRow] = []
    for seq_len in sorted(set(cfg.seq_len)):
        row_of: dict[str, BenchRow] = {}
        runnable: list[str] = []
        for impl, why in found:
            row = _blank_row(cfg, level, impl, seq_len)
            row_of[impl] = row
            if why is not None:
                row.status, row.note = "skipped", why
            elif impl in failed:
                status, where = failed[impl]
                row.status, row.note = status, f"skipped: {where}"
            elif memory_mode == "process":
                say(f"{level} {impl} seq {seq_len}: measuring memory in a child process")
                result = child_measure(cfg, level, impl, seq_len)
                if result["status"] == "ok":
                    row.peak_mem_mib, row.memory_method = result["peak_mib"], result["method"]
                    runnable.append(impl)
                else:
                    row.status, row.note = result["status"], result.get("note", "")
                    if row.status in ("oom", "timeout"):
                        failed[impl] = (row.status, f"{row.status} at seq {seq_len}")
            else:
                runnable.append(impl)
        if runnable:
            say(f"{level} seq {seq_len}: timing {', '.join(runnable)}")
            with cpu_memory_guard() if cfg.device == "cpu" else contextlib.nullcontext():
                _time_rows(cfg, level, runnable, seq_len, row_of, failed, memory_mode)
        rows.extend(row_of.values())
    add_ratios(rows)
    return rows


def _blank_row(cfg: BenchConfig, level: str, impl: str, seq_len: int) -> BenchRow:
    row = BenchRow(
        level=level,
        impl=impl,
        seq_len=seq_len,
        mode=cfg.mode,
        batch=cfg.batch,
        dtype=cfg.dtype,
        device=cfg.device,
    )
    if level == "attention":
        row.heads, row.head_dim = cfg.heads, cfg.head_dim
        if impl != "sdpa":
            row.hash_code_len = cfg.hash_code_len
            row.num_hash = None if impl == "yoso-e" else cfg.num_hash
    else:
        config = model_config(cfg, max(cfg.seq_len))
        row.heads, row.head_dim = config.num_attention_heads, config.hidden_size // config.num_attention_heads
        row.model = cfg.model
        if impl != "softmax":
            row.hash_code_len = cfg.hash_code_len
            row.num_hash = cfg.num_hash if impl == "yoso" else None
        row.note = model_note(cfg, impl)
    return row


def _time_rows(
    cfg: BenchConfig,
    level: str,
    impls: list[str],
    seq_len: int,
    row_of: dict[str, BenchRow],
    failed: dict[str, tuple[str, str]],
    memory_mode: str,
) -> None:
    try:
        inputs = attention_inputs(cfg, seq_len) if level == "attention" else None
    except Exception as exc:
        status, note = classify_failure(exc)
        for impl in impls:
            row_of[impl].status, row_of[impl].note = status, f"building the inputs failed: {note}"
        return
    calls: dict[str, Callable[[], None]] = {}
    for impl in impls:  # one implementation that cannot be built does not stop the others
        try:
            calls[impl] = make_call(cfg, level, impl, seq_len, inputs)
        except Exception as exc:
            status, note = classify_failure(exc)
            row_of[impl].status, row_of[impl].note = status, f"building it failed: {note}"
            if status == "oom":
                failed[impl] = (status, f"oom at seq {seq_len}")
    timings = time_interleaved(calls, warmup=cfg.warmup, repeats=cfg.repeats, budget_s=cfg.time_budget)
    for impl, timing in timings.items():
        row = row_of[impl]
        row.status = timing.status
        row.note = "; ".join(part for part in (row.note, timing.note) if part)
        if timing.seconds:
            row.median_ms, row.min_ms, row.max_ms = _summary(timing.seconds)
            row.repeats = len(timing.seconds)
        if timing.status in ("oom", "timeout"):
            failed[impl] = (timing.status, f"{timing.status} at seq {seq_len}")
        if memory_mode == "cuda" and timing.status == "ok":
            try:
                row.peak_mem_mib = measure_cuda_call(calls[impl], torch.device(cfg.device))
                row.memory_method = MEMORY_CUDA
            except Exception as exc:
                row.status, row.note = classify_failure(exc)
    del calls, inputs
    if cfg.device == "cuda":
        torch.cuda.empty_cache()


def add_ratios(rows: Iterable[BenchRow]) -> None:
    """Fill ``speedup_vs_softmax`` (softmax median / median), ``memory_vs_softmax`` (peak / softmax peak)."""
    rows = list(rows)
    base = {
        (r.level, r.seq_len, r.mode, r.dtype): r
        for r in rows
        if r.impl == BASELINE[r.level] and r.status == "ok"
    }
    for r in rows:
        b = base.get((r.level, r.seq_len, r.mode, r.dtype))
        r.speedup_vs_softmax = r.memory_vs_softmax = None
        if b is None or r.status != "ok":
            continue
        if r.median_ms and b.median_ms:
            r.speedup_vs_softmax = b.median_ms / r.median_ms
        if r.peak_mem_mib is not None and b.peak_mem_mib:
            r.memory_vs_softmax = r.peak_mem_mib / b.peak_mem_mib


# ---------------------------------------------------------------------------------------------
# DESIGN.md's performance targets


@dataclass
class TargetCheck:
    """One performance target, what it requires, what was measured and whether it is met."""

    target: str
    required: str
    measured: str
    status: str  # met | missed | not measured


def _best_sampled(
    rows: list[BenchRow], seq_len: int, mode: str, dtype: str = "float32", tau: int | None = None
) -> BenchRow | None:
    """The fastest sampled-YOSO row at one length, mode and dtype (and code length, when given)."""
    sampled = [
        r
        for r in rows
        if r.level == "attention"
        and r.impl.startswith("yoso-")
        and r.impl != "yoso-e"
        and r.seq_len == seq_len
        and r.mode == mode
        and r.dtype == dtype
        and (tau is None or r.hash_code_len == tau)
        and r.status == "ok"
        and r.median_ms
    ]
    return min(sampled, key=lambda r: r.median_ms) if sampled else None


def _find(
    rows: list[BenchRow], level: str, impl: str, seq_len: int, mode: str, dtype: str | None = None
) -> BenchRow | None:
    for r in rows:
        if (
            (r.level, r.impl, r.seq_len, r.mode) == (level, impl, seq_len, mode)
            and (dtype is None or r.dtype == dtype)
            and r.status == "ok"
        ):
            return r
    return None


# The attention-level targets at batch 1 x 12 heads x 64, m = 32: (what, dtype, code length,
# mode, length, required speed-up over SDPA in the same dtype). "auto" is round(log2(n)).
SPEEDUP_TARGETS: tuple[tuple[str, int | str, str, int, float], ...] = (
    ("float32", 8, "forward", 4096, 10.0),
    ("float32", 8, "forward", 16384, 40.0),
    ("float32", 8, "forward+backward", 4096, 8.0),
    ("float32", 8, "forward+backward", 16384, 30.0),
    ("bfloat16", 8, "forward", 4096, 5.0),
    ("bfloat16", 8, "forward", 16384, 20.0),
    ("bfloat16", 8, "forward+backward", 4096, 4.0),
    ("float32", "auto", "forward+backward", 4096, 8.0),
    ("float32", "auto", "forward+backward", 16384, 30.0),
)


def check_targets(rows: Iterable[BenchRow]) -> list[TargetCheck]:
    """Check the performance targets (DESIGN.md and the kernel issues) against the rows that measured them."""
    rows = list(rows)
    checks: list[TargetCheck] = []

    def ratio_check(
        target: str,
        required: float,
        num: float | None,
        den: float | None,
        what: str,
        larger_is_better: bool = True,
    ) -> None:
        if num is None or den is None or not den:
            checks.append(TargetCheck(target, what, "-", "not measured"))
            return
        value = num / den
        ok = value >= required if larger_is_better else value <= required
        checks.append(TargetCheck(target, what, f"{value:.2f}x", "met" if ok else "missed"))

    def median(r: BenchRow | None) -> float | None:
        return r.median_ms if r is not None else None

    def tau_at(tau: int | str, n: int) -> int:
        return auto_hash_code_len(n) if tau == "auto" else int(tau)

    def label(tau: int | str, n: int) -> str:
        return f"tau log2(n)={tau_at(tau, n)}" if tau == "auto" else f"tau {tau}"

    for dtype, tau, mode, n, need in SPEEDUP_TARGETS:
        ratio_check(
            f"sampled YOSO {mode} vs SDPA at {n}, {dtype}, {label(tau, n)}",
            need,
            median(_find(rows, "attention", "sdpa", n, mode, dtype)),
            median(_best_sampled(rows, n, mode, dtype, tau_at(tau, n))),
            f">= {need:g}x faster",
        )
    for dtype, tau, mode in (("float32", 8, "forward"), ("float32", 8, "forward+backward")):
        a, b = _best_sampled(rows, 4096, mode, dtype, tau), _best_sampled(rows, 16384, mode, dtype, tau)
        ratio_check(
            f"sampled YOSO {mode} time growth 4096 -> 16384, {dtype}, tau {tau}",
            4.5,
            median(b),
            median(a),
            "<= 4.5x",
            larger_is_better=False,
        )
    for n in (4096, 16384):
        for mode in ("forward", "forward+backward"):
            ratio_check(
                f"sampled YOSO {mode} bfloat16 vs float32 at {n}, tau 8",
                1.0,
                median(_best_sampled(rows, n, mode, "float32", 8)),
                median(_best_sampled(rows, n, mode, "bfloat16", 8)),
                ">= 1x (bf16 no slower)",
            )
    for mode in ("forward", "forward+backward"):
        e, s = _find(rows, "attention", "yoso-e", 16384, mode, "float32"), _best_sampled(rows, 16384, mode)
        ratio_check(
            f"sampled YOSO {mode} peak memory vs YOSO-E at 16384",
            0.1,
            s.peak_mem_mib if s else None,
            e.peak_mem_mib if e else None,
            "<= 0.1x",
            larger_is_better=False,
        )
    ours = _find(rows, "model", "yoso", 4096, "forward")
    if ours is None or ours.model == "base":
        ratio_check(
            "base model forward vs transformers YosoModel at 4096",
            5.0,
            median(_find(rows, "model", "transformers-yoso", 4096, "forward")),
            median(ours),
            ">= 5x faster",
        )
        ratio_check(
            "base model forward vs softmax encoder at 4096",
            1.0,
            median(_find(rows, "model", "softmax", 4096, "forward")),
            median(ours),
            ">= 1x (no slower)",
        )
    return checks


# ---------------------------------------------------------------------------------------------
# Output: JSON lines, CSV, plot


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Write through ``write(tmp)`` into a temporary file beside ``path``, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _clean(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def json_lines(rows: Iterable[BenchRow]) -> str:
    """One JSON object per row, one per line."""
    return "".join(json.dumps({k: _clean(v) for k, v in r.as_dict().items()}) + "\n" for r in rows)


def csv_text(rows: Iterable[BenchRow]) -> str:
    """The rows as CSV with a header of FIELDS; empty cells for missing values."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(FIELDS), lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: "" if v is None else v for k, v in r.as_dict().items()})
    return buf.getvalue()


def write_csv(rows: Iterable[BenchRow], path: str | Path) -> None:
    """Write ``csv_text(rows)`` to ``path`` atomically."""
    text = csv_text(rows)
    _atomic_write(Path(path), lambda tmp: tmp.write_text(text))


PLOT_MISSING = "--plot needs matplotlib, which is not installed; install it with: pip install 'yoso[plot]'"


def require_matplotlib() -> None:
    """Raise RuntimeError with the install command when matplotlib is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise RuntimeError(PLOT_MISSING) from exc


def write_plot(rows: Iterable[BenchRow], path: str | Path) -> None:
    """Time and peak memory against sequence length on log-log axes, one line per implementation."""
    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in rows if r.status == "ok"]
    fig, (ax_time, ax_mem) = plt.subplots(1, 2, figsize=(11, 4.5))
    series: dict[str, list[BenchRow]] = {}
    for r in rows:
        series.setdefault(f"{r.impl} ({r.level})" if r.level == "model" else r.impl, []).append(r)
    for label, points in series.items():
        points.sort(key=lambda r: r.seq_len)
        timed = [r for r in points if r.median_ms]
        if timed:
            ax_time.plot([r.seq_len for r in timed], [r.median_ms for r in timed], marker="o", label=label)
        sized = [r for r in points if r.peak_mem_mib]
        if sized:
            ax_mem.plot([r.seq_len for r in sized], [r.peak_mem_mib for r in sized], marker="o", label=label)
    mode = rows[0].mode if rows else "forward"
    if rows:
        r = rows[0]
        shape = f"model {r.model}" if r.level == "model" else f"{r.heads} heads x {r.head_dim}"
        fig.suptitle(
            f"yoso bench, {r.level} level, {mode}: batch {r.batch}, {shape}, {r.dtype} on {r.device}"
        )
    for ax, ylabel in ((ax_time, f"median time of one {mode} (ms)"), (ax_mem, "peak memory (MiB)")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("sequence length")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    fig.tight_layout()
    out = Path(path)
    _atomic_write(out, lambda tmp: fig.savefig(tmp, format=out.suffix.lstrip(".") or "png", dpi=120))
    plt.close(fig)


if __name__ == "__main__" and "--child" in sys.argv:
    sys.exit(_child_main())
