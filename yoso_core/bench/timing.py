"""Timing and failure classification: interleaved repeats under a time budget."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch

from .config import Timing


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
