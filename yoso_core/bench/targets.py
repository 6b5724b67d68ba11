"""The performance targets: one table of records (docs/bench.md), checked against the measured rows."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .config import BenchRow, auto_hash_code_len

FWD, BWD = "forward", "forward+backward"


@dataclass(frozen=True)
class Pick:
    """The row a target reads: one implementation at one length, mode and dtype.

    ``impl="sampled"`` is the fastest sampled-YOSO row (any compiled or reference backend);
    ``hash_code_len`` is a code length, ``"auto"`` (``round(log2(seq_len))``) or ``None`` (any);
    ``dtype=None`` takes any dtype. Only rows with status ``ok`` count.
    """

    impl: str
    seq_len: int
    mode: str = FWD
    dtype: str | None = "float32"
    hash_code_len: int | str | None = None
    level: str = "attention"

    def code_len(self) -> int | None:
        """The code length the row must have, ``None`` for any."""
        if self.hash_code_len == "auto":
            return auto_hash_code_len(self.seq_len)
        return None if self.hash_code_len is None else int(self.hash_code_len)

    def find(self, rows: list[BenchRow]) -> BenchRow | None:
        """The row this pick names among ``rows``, or ``None`` when the run did not measure it."""
        tau = self.code_len()
        found = [
            r
            for r in rows
            if r.level == self.level
            and r.seq_len == self.seq_len
            and r.mode == self.mode
            and (self.dtype is None or r.dtype == self.dtype)
            and (tau is None or r.hash_code_len == tau)
            and r.status == "ok"
        ]
        if self.impl != "sampled":
            return next((r for r in found if r.impl == self.impl), None)
        sampled = [r for r in found if r.impl.startswith("yoso-") and r.impl != "yoso-e" and r.median_ms]
        return min(sampled, key=lambda r: r.median_ms) if sampled else None


@dataclass(frozen=True)
class Target:
    """One performance target: ``numerator / denominator`` of ``quantity`` compared with ``required``.

    ``comparison`` is ``">="`` (a speed-up: larger is better) or ``"<="`` (a growth or a memory
    ratio: smaller is better); ``note`` follows the requirement in the report. A target with
    ``model`` set is checked only when the denominator's row (our model) is of that size.
    """

    what: str
    required: float
    comparison: str
    numerator: Pick
    denominator: Pick
    note: str = ""
    quantity: str = "median_ms"
    model: str | None = None

    @property
    def requirement(self) -> str:
        """The requirement as the report prints it, e.g. ``>= 10x faster``."""
        return f"{self.comparison} {self.required:g}x" + (f" {self.note}" if self.note else "")

    def met(self, value: float) -> bool:
        """Whether a measured ratio meets the target."""
        return value >= self.required if self.comparison == ">=" else value <= self.required


def _sdpa(n: int, mode: str, dtype: str = "float32") -> Pick:
    return Pick("sdpa", n, mode, dtype)


def _sampled(n: int, mode: str, dtype: str = "float32", tau: int | str | None = 8) -> Pick:
    return Pick("sampled", n, mode, dtype, tau)


def _model(impl: str) -> Pick:
    return Pick(impl, 4096, FWD, None, None, "model")


# The targets of the design and the kernel issues. Attention level: batch 1 x 12 heads x 64,
# num_hash 32, against SDPA in the same dtype; "auto" is round(log2(n)). Documented in docs/bench.md.
TARGETS: tuple[Target, ...] = (
    Target(
        "sampled YOSO forward vs SDPA at 4096, float32, tau 8",
        10.0,
        ">=",
        _sdpa(4096, FWD),
        _sampled(4096, FWD),
        "faster",
    ),
    Target(
        "sampled YOSO forward vs SDPA at 16384, float32, tau 8",
        40.0,
        ">=",
        _sdpa(16384, FWD),
        _sampled(16384, FWD),
        "faster",
    ),
    Target(
        "sampled YOSO forward+backward vs SDPA at 4096, float32, tau 8",
        8.0,
        ">=",
        _sdpa(4096, BWD),
        _sampled(4096, BWD),
        "faster",
    ),
    Target(
        "sampled YOSO forward+backward vs SDPA at 16384, float32, tau 8",
        30.0,
        ">=",
        _sdpa(16384, BWD),
        _sampled(16384, BWD),
        "faster",
    ),
    Target(
        "sampled YOSO forward vs SDPA at 4096, bfloat16, tau 8",
        5.0,
        ">=",
        _sdpa(4096, FWD, "bfloat16"),
        _sampled(4096, FWD, "bfloat16"),
        "faster",
    ),
    Target(
        "sampled YOSO forward vs SDPA at 16384, bfloat16, tau 8",
        20.0,
        ">=",
        _sdpa(16384, FWD, "bfloat16"),
        _sampled(16384, FWD, "bfloat16"),
        "faster",
    ),
    Target(
        "sampled YOSO forward+backward vs SDPA at 4096, bfloat16, tau 8",
        4.0,
        ">=",
        _sdpa(4096, BWD, "bfloat16"),
        _sampled(4096, BWD, "bfloat16"),
        "faster",
    ),
    Target(
        "sampled YOSO forward+backward vs SDPA at 4096, float32, tau log2(n)=12",
        8.0,
        ">=",
        _sdpa(4096, BWD),
        _sampled(4096, BWD, tau="auto"),
        "faster",
    ),
    Target(
        "sampled YOSO forward+backward vs SDPA at 16384, float32, tau log2(n)=14",
        30.0,
        ">=",
        _sdpa(16384, BWD),
        _sampled(16384, BWD, tau="auto"),
        "faster",
    ),
    Target(
        "sampled YOSO forward time growth 4096 -> 16384, float32, tau 8",
        4.5,
        "<=",
        _sampled(16384, FWD),
        _sampled(4096, FWD),
    ),
    Target(
        "sampled YOSO forward+backward time growth 4096 -> 16384, float32, tau 8",
        4.5,
        "<=",
        _sampled(16384, BWD),
        _sampled(4096, BWD),
    ),
    Target(
        "sampled YOSO forward bfloat16 vs float32 at 4096, tau 8",
        1.0,
        ">=",
        _sampled(4096, FWD),
        _sampled(4096, FWD, "bfloat16"),
        "(bf16 no slower)",
    ),
    Target(
        "sampled YOSO forward+backward bfloat16 vs float32 at 4096, tau 8",
        1.0,
        ">=",
        _sampled(4096, BWD),
        _sampled(4096, BWD, "bfloat16"),
        "(bf16 no slower)",
    ),
    Target(
        "sampled YOSO forward bfloat16 vs float32 at 16384, tau 8",
        1.0,
        ">=",
        _sampled(16384, FWD),
        _sampled(16384, FWD, "bfloat16"),
        "(bf16 no slower)",
    ),
    Target(
        "sampled YOSO forward+backward bfloat16 vs float32 at 16384, tau 8",
        1.0,
        ">=",
        _sampled(16384, BWD),
        _sampled(16384, BWD, "bfloat16"),
        "(bf16 no slower)",
    ),
    Target(
        "sampled YOSO forward peak memory vs YOSO-E at 16384",
        0.1,
        "<=",
        _sampled(16384, FWD, tau=None),
        Pick("yoso-e", 16384, FWD),
        quantity="peak_mem_mib",
    ),
    Target(
        "sampled YOSO forward+backward peak memory vs YOSO-E at 16384",
        0.1,
        "<=",
        _sampled(16384, BWD, tau=None),
        Pick("yoso-e", 16384, BWD),
        quantity="peak_mem_mib",
    ),
    Target(
        "base model forward vs transformers YosoModel at 4096",
        5.0,
        ">=",
        _model("transformers-yoso"),
        _model("yoso"),
        "faster",
        model="base",
    ),
    Target(
        "base model forward vs softmax encoder at 4096",
        1.0,
        ">=",
        _model("softmax"),
        _model("yoso"),
        "(no slower)",
        model="base",
    ),
)


@dataclass
class TargetCheck:
    """One performance target, what it requires, what was measured and whether it is met."""

    target: str
    required: str
    measured: str
    status: str  # met | missed | not measured


def check_target(target: Target, rows: list[BenchRow]) -> TargetCheck | None:
    """Check one target; ``None`` when it does not apply to these rows (another model size)."""
    num_row, den_row = target.numerator.find(rows), target.denominator.find(rows)
    if target.model is not None and den_row is not None and den_row.model != target.model:
        return None
    num = getattr(num_row, target.quantity) if num_row is not None else None
    den = getattr(den_row, target.quantity) if den_row is not None else None
    if num is None or den is None or not den:
        return TargetCheck(target.what, target.requirement, "-", "not measured")
    value = num / den
    status = "met" if target.met(value) else "missed"
    return TargetCheck(target.what, target.requirement, f"{value:.2f}x", status)


def check_targets(rows: Iterable[BenchRow], targets: Iterable[Target] = TARGETS) -> list[TargetCheck]:
    """Check the performance targets (``TARGETS``) against the rows that measured them, in table order."""
    rows = list(rows)
    checks = (check_target(target, rows) for target in targets)
    return [check for check in checks if check is not None]
