"""Exit codes and one-line error reporting shared by every command."""

from __future__ import annotations

import sys
from typing import NoReturn

import typer

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Print ``error: message`` on stderr and exit: code 2 for bad usage or input, 1 for runtime failure."""
    print(f"error: {message}", file=sys.stderr)
    raise typer.Exit(code)
