"""The benchmark: every implementation at every length, one row each, ratios to softmax."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from dataclasses import replace

import torch

from .cases import attention_impls, attention_inputs, make_call, model_config, model_impls, model_note
from .config import BASELINE, MEMORY_CUDA, BenchConfig, BenchRow
from .memory import child_measure, cpu_memory_guard, measure_cuda_call
from .timing import _summary, classify_failure, time_interleaved


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
                    if level == "model" and result.get("process_peak_mib"):
                        whole = f"whole process peak {result['process_peak_mib']:,.0f} MiB"
                        row.note = f"{row.note}; {whole}" if row.note else whole
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
