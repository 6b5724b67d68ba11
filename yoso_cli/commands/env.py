"""`yoso env` (not available yet)."""

from __future__ import annotations

from ..errors import not_built


def command() -> None:
    """Not available in this version yet."""
    not_built("env")
