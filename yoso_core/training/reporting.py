"""What a run tells its user: a rich progress bar and log lines on stderr, metrics as JSON lines.

``OUTPUT_DIR/metrics.jsonl`` gets one object per logged training step
(``{"step", "split": "train", "loss", "learning_rate", "tokens_per_second", "epoch"}``) and one per
evaluation (``{"step", "split": "validation", <task metrics>}``). A resumed run first drops the
lines written after its checkpoint, so the file never holds a step twice.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import Any

from .._io import atomic_write_text, storage_errors

FIX = "choose another --output-dir"


def finite_or_none(value: Any) -> Any:
    """NaN and infinities become None, so a record is strict JSON."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


class MetricsLog:
    """Append-only JSON-lines metrics file."""

    def __init__(self, path: str | os.PathLike, *, resume_step: int | None):
        self.path = Path(path)
        lines: list[str] = []
        if resume_step is not None and self.path.is_file():
            for line in self.path.read_text().splitlines():
                try:
                    if json.loads(line).get("step", 0) <= resume_step:
                        lines.append(line)
                except json.JSONDecodeError:
                    break  # a line cut by a crash ends the readable part
        with storage_errors(self.path.parent, str(self.path), FIX):
            atomic_write_text(self.path, "".join(line + "\n" for line in lines))

    def write(self, record: dict[str, Any]) -> None:
        """Append one record (non-finite floats become null so every line is strict JSON)."""
        clean = {k: finite_or_none(v) for k, v in record.items()}
        with storage_errors(self.path.parent, str(self.path), FIX), open(self.path, "a") as f:
            f.write(json.dumps(clean) + "\n")


def format_metrics(values: dict[str, Any]) -> str:
    """``name value`` pairs for a log line."""
    parts = []
    for name, value in values.items():
        if isinstance(value, float):
            parts.append(f"{name} {value:.4g}")
        else:
            parts.append(f"{name} {value}")
    return "  ".join(parts)


class Progress:
    """A rich progress bar on stderr (loss, learning rate, tokens/s, ETA); silent when disabled."""

    def __init__(self, total: int, start: int, *, enabled: bool, description: str):
        self.enabled = enabled
        if not enabled:
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TextColumn,
            TimeRemainingColumn,
        )
        from rich.progress import Progress as RichProgress

        # Logs piped to a file get long lines rather than an 80-column cut.
        self.console = Console(file=sys.stderr, width=None if sys.stderr.isatty() else 160)
        self._bar = RichProgress(
            TextColumn("[bold]{task.description}"),
            BarColumn(bar_width=12),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}  lr {task.fields[lr]}  {task.fields[tps]} tok/s  ETA"),
            TimeRemainingColumn(),
            console=self.console,
        )
        self._task = self._bar.add_task(description, total=total, completed=start, loss="-", lr="-", tps="-")
        self._bar.start()

    def update(self, step: int, loss: float, lr: float, tokens_per_second: float) -> None:
        """Move the bar to ``step`` and show the latest numbers."""
        if self.enabled:
            self._bar.update(
                self._task,
                completed=step,
                loss=f"{loss:.3f}",
                lr=f"{lr:.1e}",
                tps=f"{tokens_per_second:,.0f}",
            )

    def advance(self, step: int) -> None:
        """Move the bar to ``step`` (the numbers shown change at the next ``update``)."""
        if self.enabled:
            self._bar.update(self._task, completed=step)

    def log(self, message: str) -> None:
        """A log line above the bar."""
        if self.enabled:
            self.console.print(message, markup=False, highlight=False)

    def close(self) -> None:
        """Stop the bar (leaving its last state on screen)."""
        if self.enabled:
            self._bar.stop()
