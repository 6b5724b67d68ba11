"""Output: JSON lines, CSV and the plot, each written atomically."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .._io import atomic_write
from .config import FIELDS, BenchRow


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
    atomic_write(Path(path), lambda tmp: tmp.write_text(text))


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
    atomic_write(out, lambda tmp: fig.savefig(tmp, format=out.suffix.lstrip(".") or "png", dpi=120))
    plt.close(fig)
