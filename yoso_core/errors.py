"""Errors shared across yoso_core that belong to no single layer."""

from __future__ import annotations


class ConfigError(ValueError):
    """A bad option value or configuration file; the message names the option and the fix."""
