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
from typing import Any

_SUBMODULES = ("config", "timing", "cases", "memory", "runner", "targets", "output")

# The public names, listed once, by the module that defines each.
_PUBLIC = {
    "config": (
        "ATTENTION_IMPLS",
        "MODEL_IMPLS",
        "BASELINE",
        "DTYPE_NAMES",
        "MEMORY_MODES",
        "MEMORY_CUDA",
        "MEMORY_CHILD",
        "MEMORY_CHILD_RU",
        "FIELDS",
        "BenchConfig",
        "auto_hash_code_len",
        "BenchRow",
        "Timing",
        "model_config",
    ),
    "timing": ("classify_failure", "time_interleaved"),
    "cases": (
        "DTYPES",
        "attention_impls",
        "attention_inputs",
        "attention_call",
        "model_impls",
        "model_note",
        "build_model",
        "model_call",
        "make_call",
    ),
    "memory": ("cpu_memory_guard", "measure_cpu_call", "measure_cuda_call", "child_measure"),
    "runner": ("run_bench", "add_ratios"),
    "targets": ("Pick", "Target", "TARGETS", "TargetCheck", "check_target", "check_targets"),
    "output": ("json_lines", "csv_text", "write_csv", "PLOT_MISSING", "require_matplotlib", "write_plot"),
}
# Each public name and the module that defines it.
_EXPORTS = {name: module for module, names in _PUBLIC.items() for name in names}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """Load a public name, or a submodule, on first use."""
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
