"""The performance targets, checked against the rows that measured them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .config import BenchRow, auto_hash_code_len


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
