"""Exit codes and one-line error reporting shared by every command."""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from collections.abc import Callable
from typing import Any, NoReturn

import typer

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Print ``error: message`` on stderr and exit: code 2 for bad usage or input, 1 for runtime failure."""
    print(f"error: {message}", file=sys.stderr)
    raise typer.Exit(code)


def quiet_on_closed_stdout(command: Callable[..., Any]) -> Callable[..., Any]:
    """``command``, exiting 0 quietly when the reader of stdout goes away (``yoso ... | head -1``),
    as Unix filters do: what it read were whole lines, and stopping is what it asked for."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except BrokenPipeError:
            with contextlib.suppress(OSError, ValueError, AttributeError):
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, sys.stdout.fileno())  # so the flush at exit does not fail again
            raise typer.Exit(EXIT_OK) from None

    return run
