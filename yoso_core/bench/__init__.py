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
and ``output``. Every public name is importable from ``yoso_core.bench``.
"""

from __future__ import annotations

from .cases import (
    attention_call,
    attention_impls,
    attention_inputs,
    build_model,
    make_call,
    model_call,
    model_config,
    model_impls,
    model_note,
)
from .config import (
    ATTENTION_IMPLS,
    BASELINE,
    DTYPES,
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
)
from .memory import child_measure, cpu_memory_guard, measure_cpu_call, measure_cuda_call
from .output import PLOT_MISSING, csv_text, json_lines, require_matplotlib, write_csv, write_plot
from .runner import add_ratios, run_bench
from .targets import TARGETS, Pick, Target, TargetCheck, check_target, check_targets
from .timing import classify_failure, time_interleaved

__all__ = [
    "ATTENTION_IMPLS",
    "BASELINE",
    "BenchConfig",
    "BenchRow",
    "DTYPES",
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
