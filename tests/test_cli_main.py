"""The command table: every subcommand is listed, and --help loads no heavy module."""

from __future__ import annotations

import shlex
import subprocess
import sys

import typer
import typer.core
from typer.testing import CliRunner

from yoso_cli.main import COMMANDS, app

EXPECTED = {"build-kernels", "pretrain", "finetune", "predict", "bench", "convert", "env"}


def test_help_lists_every_command():
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    assert set(COMMANDS) == EXPECTED
    for name in EXPECTED:
        assert name in result.output


def _examples(help_text: str, name: str) -> list[list[str]]:
    """The arguments of each ``yoso NAME`` in a help's ``Examples:`` (one paragraph an example, in
    pipelines too, after VAR=value or a launcher such as ``torchrun ... $(which yoso)``)."""
    block = help_text.split("Examples:", 1)[1].replace("\\\n", " ")  # continued lines joined
    examples = []
    for paragraph in block.split("\n\n"):
        words = shlex.split(paragraph)
        segment: list[str] = []
        for word in [*words, "|"]:
            if word not in ("|", "<", ">", "2>", "&&", ";"):
                segment.append(word)
                continue
            for i in range(1, len(segment)):
                if segment[i - 1] in ("yoso", "$(which", "yoso)") or segment[i - 1].endswith("yoso)"):
                    if segment[i] == name:
                        examples.append(segment[i + 1 :])
                        break
            segment = []
    return examples


def test_each_command_has_help_options_and_examples_that_parse():
    """Every command documents each option and ends with examples that are valid usage of it."""
    group = typer.main.get_command(app)
    for name in EXPECTED:
        command = group.commands[name]
        assert command.help and command.help.strip().split("\n")[0], name
        options = [p for p in command.params if isinstance(p, typer.core.TyperOption)]
        assert options and all(p.help for p in options), (name, [p.name for p in options if not p.help])
        examples = _examples(command.help, name)
        assert len(examples) >= 2, f"yoso {name} has fewer than two examples: {examples}"
        for args in examples:
            with command.make_context(name, list(args)) as ctx:  # raises on an unknown option or a bad value
                assert ctx.command is command


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
