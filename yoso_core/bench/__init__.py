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

The package, one module per job: ``config`` (what to run, the rows), ``timing``, ``cases`` (one
callable per implementation and length), ``memory`` (the child process), ``runner``, ``targets``
and ``output``. Every public name is importable from ``yoso_core.bench``; they load on first use,
so importing the package (or ``bench.config``) stays light, as ``yoso_core`` does.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_SUBMODULES = ("config", "timing", "cases", "memory", "runner", "targets", "output")

# Each public name and the module that defines it.
_EXPORTS = {
    "ATTENTION_IMPLS": "config",
    "MODEL_IMPLS": "config",
    "BASELINE": "config",
    "DTYPE_NAMES": "config",
    "MEMORY_MODES": "config",
    "MEMORY_CUDA": "config",
    "MEMORY_CHILD": "config",
    "MEMORY_CHILD_RU": "config",
    "FIELDS": "config",
    "BenchConfig": "config",
    "auto_hash_code_len": "config",
    "BenchRow": "config",
    "Timing": "config",
    "classify_failure": "timing",
    "time_interleaved": "timing",
    "DTYPES": "cases",
    "attention_impls": "cases",
    "attention_inputs": "cases",
    "attention_call": "cases",
    "model_config": "config",
    "model_impls": "cases",
    "model_note": "cases",
    "build_model": "cases",
    "model_call": "cases",
    "make_call": "cases",
    "cpu_memory_guard": "memory",
    "measure_cpu_call": "memory",
    "measure_cuda_call": "memory",
    "child_measure": "memory",
    "run_bench": "runner",
    "add_ratios": "runner",
    "Pick": "targets",
    "Target": "targets",
    "TARGETS": "targets",
    "TargetCheck": "targets",
    "check_target": "targets",
    "check_targets": "targets",
    "json_lines": "output",
    "csv_text": "output",
    "write_csv": "output",
    "PLOT_MISSING": "output",
    "require_matplotlib": "output",
    "write_plot": "output",
}

__all__ = [
    "ATTENTION_IMPLS",
    "BASELINE",
    "BenchConfig",
    "BenchRow",
    "DTYPES",
    "DTYPE_NAMES",
    "FIELDS",
    "MEMORY_CHILD",
    "MEMORY_CHILD_RU",
    "MEMORY_CUDA",
    "MEMORY_MODES",
    "MODEL_IMPLS",
    "PLOT_MISSING",
    "Pick",
    "TARGETS",
    "Target",
    "TargetCheck",
    "Timing",
    "add_ratios",
    "attention_call",
    "attention_impls",
    "attention_inputs",
    "auto_hash_code_len",
    "build_model",
    "check_target",
    "check_targets",
    "child_measure",
    "classify_failure",
    "cpu_memory_guard",
    "csv_text",
    "json_lines",
    "make_call",
    "measure_cpu_call",
    "measure_cuda_call",
    "model_call",
    "model_config",
    "model_impls",
    "model_note",
    "require_matplotlib",
    "run_bench",
    "time_interleaved",
    "write_csv",
    "write_plot",
]

if TYPE_CHECKING:
    from .cases import (
        DTYPES,
        attention_call,
        attention_impls,
        attention_inputs,
        build_model,
        make_call,
        model_call,
        model_impls,
        model_note,
    )
    from .config import (
        ATTENTION_IMPLS,
        BASELINE,
        DTYPE_NAMES,
        FIELDS,
        MEMORY_CHILD,
        MEMORY_CHILD_RU,
        MEMORY_CUDA,
        MEMORY_MODES,
        MODEL_IMPLS,
        BenchConfig,
        BenchRow,
        Timing,
        auto_hash_code_len,
        model_config,
    )
    from .memory import child_measure, cpu_memory_guard, measure_cpu_call, measure_cuda_call
    from .output import PLOT_MISSING, csv_text, json_lines, require_matplotlib, write_csv, write_plot
    from .runner import add_ratios, run_bench
    from .targets import TARGETS, Pick, Target, TargetCheck, check_target, check_targets
    from .timing import classify_failure, time_interleaved


def __getattr__(name: str) -> Any:
    """Load a public name, or a submodule, on first use."""
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
