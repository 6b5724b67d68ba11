"""The command table: every subcommand is listed, and --help loads no heavy module."""

from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner

from yoso_cli.main import COMMANDS, app

EXPECTED = {"build-kernels", "pretrain", "finetune", "predict", "bench", "convert", "env"}


def test_help_lists_every_command():
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    assert set(COMMANDS) == EXPECTED
    for name in EXPECTED:
        assert name in result.output


def test_each_command_has_help():
    for name in EXPECTED:
        result = CliRunner().invoke(app, [name, "--help"])
        assert result.exit_code == 0, (name, result.output)


def test_imports_stay_light():
    code = (
        "import sys, yoso_core, yoso_cli.main; "
        "heavy = [m for m in ('torch', 'transformers', 'datasets') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"importing the CLI loaded {out.stdout.strip()}"


def test_help_of_every_command_stays_light():
    code = (
        "import sys; from typer.testing import CliRunner; from yoso_cli.main import app; "
        f"codes = [CliRunner().invoke(app, [name, '--help']).exit_code for name in {sorted(EXPECTED)!r}]; "
        "heavy = [m for m in ('torch', 'transformers', 'datasets') if m in sys.modules]; "
        "print(codes, ','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"{[0] * len(EXPECTED)}", f"`yoso CMD --help` gave {out.stdout.strip()}"
