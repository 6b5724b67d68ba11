"""`yoso bench`: time and memory of YOSO against softmax attention on this machine."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

from yoso_core.bench.config import ATTENTION_IMPLS, MODEL_IMPLS

from ..defaults import library_defaults
from ..errors import fail

DEFAULTS = library_defaults("bench/config.py", "BenchConfig")


def _lengths(seq_len: list[str] | None, extra: list[str] | None) -> list[int] | None:
    """``--seq-len`` values (repeated, comma lists, or several after one flag) as integers."""
    if not seq_len:
        if extra:
            fail(f"unexpected argument {extra[0]!r}; lengths go after --seq-len, e.g. --seq-len 1024 4096")
        return None
    values: list[int] = []
    for item in [*seq_len, *(extra or [])]:
        for part in item.split(","):
            part = part.strip()
            if not part:
                continue
            try:
                values.append(int(part))
            except ValueError:
                fail(f"--seq-len takes whole numbers, got {part!r}; e.g. --seq-len 1024 4096")
    return values


def _check_output_file(path: Path | None, flag: str, example: str) -> None:
    """One error line, before any row runs, when ``path`` cannot become a file we write."""
    if path is None:
        return
    if path.is_dir():
        fail(f"{flag} {path} is a directory; give a file name, e.g. {flag} {path / example}")
    parent = next((p for p in path.absolute().parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        fail(f"{flag} {path}: {parent} is a file, not a directory; give a path in a directory")
    if parent is not None and not os.access(parent, os.W_OK | os.X_OK):
        fail(f"{flag} {path}: {parent} is not writable; give a path in a writable directory")


def command(
    extra: list[str] | None = typer.Argument(None, hidden=True, metavar="LENGTHS"),
    seq_len: list[str] | None = typer.Option(
        None,
        "--seq-len",
        "-n",
        help="Sequence lengths: repeat the flag, or list values after one flag "
        f"(--seq-len 1024 4096 16384); default {' '.join(map(str, DEFAULTS['seq_len']))}.",
    ),
    batch: int = typer.Option(DEFAULTS["batch"], help="Batch size."),
    heads: int = typer.Option(DEFAULTS["heads"], help="Attention heads (attention level)."),
    head_dim: int = typer.Option(DEFAULTS["head_dim"], help="Head dimension (attention level)."),
    num_hash: int = typer.Option(DEFAULTS["num_hash"], help="Hash functions of sampled YOSO."),
    hash_code_len: str = typer.Option(
        str(DEFAULTS["hash_code_len"]),
        help="Bits per hash code (YOSO and YOSO-E), or auto: round(log2(n)) at each length, "
        "clamped to [8, 16] as for a new model in `yoso pretrain`.",
    ),
    dtype: str = typer.Option(
        DEFAULTS["dtype"],
        help="float32, float16 or bfloat16; several comma-separated (float32,bfloat16) side by side.",
    ),
    device: str = typer.Option(DEFAULTS["device"], help="cpu or cuda."),
    backward: bool = typer.Option(
        DEFAULTS["backward"],
        "--backward",
        help="Time forward+backward (a training step at the model level) instead of forward only.",
    ),
    repeats: int = typer.Option(DEFAULTS["repeats"], help="Timed repeats per row, after the warm-up."),
    warmup: int = typer.Option(DEFAULTS["warmup"], help="Untimed warm-up calls per row."),
    time_budget: float = typer.Option(
        DEFAULTS["time_budget"],
        help="Seconds per row; a row past it is reported as a time-out "
        "(or with fewer repeats) and the rest continue.",
    ),
    memory: str = typer.Option(
        DEFAULTS["memory"],
        help="Peak memory: auto (CUDA allocator on cuda, a child process per "
        "row on cpu), process, or none (faster, no memory column; nothing runs a row in a child "
        "first, so on cpu the timed rows are capped at the memory available when they start: a row "
        "past it is reported as oom, but memory other programs take meanwhile can still draw the "
        "OOM killer onto the whole run).",
    ),
    model_level: bool = typer.Option(
        DEFAULTS["model_level"], "--model-level", help="Benchmark whole encoders instead of attention alone."
    ),
    model: str = typer.Option(
        DEFAULTS["model"], help="Model size (tiny, small, base) or a model directory, with --model-level."
    ),
    gradient_checkpointing: bool = typer.Option(
        DEFAULTS["gradient_checkpointing"],
        "--gradient-checkpointing",
        help="With --model-level --backward: recompute each layer's activations in the backward "
        "(less memory, more time), as `yoso pretrain --gradient-checkpointing` trains.",
    ),
    impl: list[str] | None = typer.Option(
        None,
        "--impl",
        help=f"Only these implementations (repeatable): {', '.join(ATTENTION_IMPLS)}; "
        f"or at the model level {', '.join(MODEL_IMPLS)}.",
    ),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object per row on stdout."),
    csv_path: Path | None = typer.Option(None, "--csv", help="Write the rows to this CSV file."),
    plot_path: Path | None = typer.Option(
        None,
        "--plot",
        help="Draw time and memory against length (log-log) into this PNG file; needs matplotlib.",
    ),
    targets: bool = typer.Option(
        True,
        "--targets/--no-targets",
        help="Check the performance targets (docs/bench.md) that were measured.",
    ),
) -> None:
    """Benchmark softmax (SDPA), YOSO-E and sampled YOSO on every available backend, side by side.

    Each row is warmed up, then the implementations are timed in turn on the same inputs; the table
    shows the median, the min-max, the speed-up over softmax and the peak memory. A row that runs out
    of memory or time is reported and the rest continue.

    Examples:

      yoso bench --seq-len 1024 4096 16384

      yoso bench --seq-len 4096 --backward --json > bench.jsonl

      yoso bench --seq-len 512 2048 --csv bench.csv --plot bench.png

      yoso bench --model-level --model base --seq-len 4096 --repeats 3

      yoso bench --model-level --model base --seq-len 65536 --backward --dtype bfloat16 \
        --gradient-checkpointing --hash-code-len auto

      yoso bench --device cuda --dtype float16 --seq-len 4096 16384 65536

      yoso bench --seq-len 4096 16384 --impl sdpa --impl yoso-cpu --dtype float32,bfloat16 --backward

      yoso bench --seq-len 4096 16384 --impl sdpa --impl yoso-cpu --hash-code-len auto --backward
    """
    from rich.console import Console

    from yoso_core import bench

    cfg = bench.BenchConfig(
        batch=batch,
        heads=heads,
        head_dim=head_dim,
        num_hash=num_hash,
        hash_code_len=_code_len(hash_code_len),
        dtype=dtype,
        device=device,
        backward=backward,
        repeats=repeats,
        warmup=warmup,
        time_budget=time_budget,
        memory=memory,
        model_level=model_level,
        model=model,
        gradient_checkpointing=gradient_checkpointing,
        impls=impl or None,
    )
    lengths = _lengths(seq_len, extra)
    if lengths is not None:
        cfg.seq_len = lengths
    try:
        cfg.check()
        if plot_path is not None:
            bench.require_matplotlib()
    except (ValueError, RuntimeError) as exc:
        fail(str(exc))
    _check_output_file(csv_path, "--csv", "bench.csv")
    _check_output_file(plot_path, "--plot", "bench.png")
    console = Console(stderr=True)
    if not console.is_terminal:
        console.width = max(console.width, 150)  # logs and CI: no wrapping of the table
    rows = bench.run_bench(cfg, progress=lambda message: console.log(message))
    console.print(_table(rows, cfg))
    if targets:
        checks = [c for c in bench.check_targets(rows) if c.status != "not measured"]
        if checks:
            console.print(_targets_table(checks))
    if json_out:
        sys.stdout.write(bench.json_lines(rows))
        sys.stdout.flush()
    if csv_path is not None:
        bench.write_csv(rows, csv_path)
        console.print(f"wrote {csv_path}")
    if plot_path is not None:
        bench.write_plot(rows, plot_path)
        console.print(f"wrote {plot_path}")


def _code_len(text: str) -> int | str:
    """``--hash-code-len``: "auto" or a whole number (range-checked by BenchConfig.check)."""
    text = text.strip()
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        return text  # BenchConfig.check names it


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _table(rows, cfg):
    from rich.table import Table

    level = "model" if cfg.model_level else "attention"
    shape = f"model {cfg.model}" if cfg.model_level else f"{cfg.heads} heads x {cfg.head_dim}"
    if cfg.gradient_checkpointing:
        shape += ", gradient checkpointing"
    table = Table(
        title=f"yoso bench, {level} level, {cfg.mode}: batch {cfg.batch}, {shape}, "
        f"{cfg.dtype} on {cfg.device}, m={cfg.num_hash}, tau={cfg.hash_code_len}"
    )
    several_dtypes, auto_tau = len(cfg.dtypes) > 1, cfg.hash_code_len == "auto"
    for name, justify in (
        ("seq", "right"),
        *((("dtype", "left"),) if several_dtypes else ()),
        *((("tau", "right"),) if auto_tau else ()),
        ("impl", "left"),
        ("status", "left"),
        ("median ms", "right"),
        ("min-max ms", "right"),
        ("x softmax", "right"),
        ("peak MiB", "right"),
        ("mem / softmax", "right"),
        ("note", "left"),
    ):
        table.add_column(name, justify=justify, overflow="fold")
    notes: list[str] = []  # long notes repeat across lengths: print each once, below the table
    for r in rows:
        spread = "-" if r.min_ms is None else f"{r.min_ms:.2f}-{r.max_ms:.2f}"
        if r.note and r.note not in notes:
            notes.append(r.note)
        mark = f"[{notes.index(r.note) + 1}]" if r.note else ""
        table.add_row(
            str(r.seq_len),
            *((r.dtype,) if several_dtypes else ()),
            *((_fmt(r.hash_code_len, "d"),) if auto_tau else ()),
            r.impl,
            r.status,
            _fmt(r.median_ms, ".2f"),
            spread,
            _fmt(r.speedup_vs_softmax, ".2f"),
            _fmt(r.peak_mem_mib, ".1f"),
            _fmt(r.memory_vs_softmax, ".3f"),
            mark,
        )
    methods = sorted({r.memory_method for r in rows if r.memory_method})
    lines = ["peak memory: " + ("; ".join(methods) if methods else "not measured")]
    lines += [f"[{i}] {note}" for i, note in enumerate(notes, 1)]
    table.caption = "\n".join(lines)
    table.caption_justify = "left"
    return table


def _targets_table(checks):
    from rich.table import Table

    table = Table(title="performance targets")
    for name in ("target", "required", "measured", "status"):
        table.add_column(name)
    for c in checks:
        style = {"met": "green", "missed": "red"}.get(c.status, "")
        table.add_row(c.target, c.required, c.measured, f"[{style}]{c.status}[/]" if style else c.status)
    return table
