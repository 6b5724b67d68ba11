"""`yoso build-kernels`: compile the C++/OpenMP (and CUDA) kernels into the per-user cache."""

from __future__ import annotations

import sys

import typer

from ..errors import EXIT_FAILURE, fail


def command(
    cuda: bool | None = typer.Option(
        None,
        "--cuda/--no-cuda",
        help="Build the CUDA kernels too (default: when nvcc and a CUDA torch exist).",
    ),
    arch: str | None = typer.Option(
        None,
        "--arch",
        help='CUDA compute capabilities, e.g. "8.0;9.0" (default: the visible GPU\'s, else 8.0;9.0).',
    ),
    force: bool = typer.Option(
        False, "--force", help="Rebuild even when a build for this torch and sources exists."
    ),
    verbose: bool = typer.Option(False, "--verbose", help="Show the compiler's commands and output."),
) -> None:
    """Build the compiled kernels for this torch, then check them against the reference.

    Builds go to ~/.cache/yoso/kernels/<torch>-<cuda>-<sources hash>/ ($YOSO_KERNEL_DIR overrides
    the folder), so a stale build is never loaded. A cached library whose size or SHA-256 differs
    from its build metadata (a truncated copy, a full disk) is rebuilt, --force or not. A failed
    build prints the compiler's error and exits 1.

    Examples:

        yoso build-kernels

        yoso build-kernels --no-cuda

        CUDA_HOME=/usr/local/cuda yoso build-kernels --cuda --arch "8.0;9.0" --force
    """
    from rich.console import Console
    from rich.table import Table

    from yoso_core.kernels import build

    console = Console(stderr=True)
    status = None

    def on_start(kind: str) -> None:
        nonlocal status
        if status is not None:
            status.stop()
        if kind == "check":
            message, wait = "checking the kernels against the reference ...", ""
        else:
            message = f"compiling the {'CUDA' if kind == 'cuda' else 'CPU'} kernels ..."
            wait = " (a minute or two)"
        if verbose:
            console.print(message)
        else:
            status = console.status(message.replace(" ...", f"{wait} ..."))
            status.start()

    def on_output(line: str) -> None:
        print(line, file=sys.stderr)

    try:
        built = build.build_kernels(
            cuda, arch, force=force, verbose=verbose, check=True, on_start=on_start, on_output=on_output
        )
    except ValueError as exc:
        fail(str(exc))
    except build.KernelBuildError as exc:
        if status is not None:
            status.stop()
        print(str(exc), file=sys.stderr)
        fail(
            "building the kernels failed (compiler output above); rerun with --verbose for every command",
            EXIT_FAILURE,
        )
    finally:
        if status is not None:
            status.stop()

    table = Table(title="yoso kernels")
    for column in ("what", "archs", "where", "seconds"):
        table.add_column(column, overflow="fold")
    for r in built.libraries:
        what = f"{r.kind} kernels" + (" (cached)" if r.cached else "")
        archs = f"{r.archs} ({', '.join(r.variants)})" if r.variants else r.archs
        table.add_row(what, archs, str(r.path), f"{r.seconds:.1f}")
    console.print(table)
    for r in built.libraries:
        if r.note:
            console.print(f"{r.kind} kernels {r.note}")

    check_table = Table(title="self-check against the reference")
    for column in ("device", "operator", "error", "result"):
        check_table.add_column(column)
    for c in built.checks:
        result = "[green]ok[/]" if c.passed else "[red]FAILED[/]"
        check_table.add_row(c.device, c.op, f"{c.error:.2e}", result)
    console.print(check_table)
    if built.failed:
        fail(
            f"the self-check failed for {', '.join(built.failed)}; rebuild with --force --verbose",
            EXIT_FAILURE,
        )
