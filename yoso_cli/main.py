"""The ``yoso`` Typer app: one visible table of subcommands, each a thin module in ``commands/``."""

from __future__ import annotations

from types import ModuleType

import typer

from .commands import bench, build_kernels, convert, env, finetune, predict, pretrain

app = typer.Typer(
    name="yoso",
    help="YOSO long-context transformers: pretrain, fine-tune, predict, benchmark, convert.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# name -> module; each module defines `command`, whose docstring is its help, and may define
# `EPILOG`, text shown after the options (examples).
COMMANDS = {
    "build-kernels": build_kernels,
    "pretrain": pretrain,
    "finetune": finetune,
    "predict": predict,
    "bench": bench,
    "convert": convert,
    "env": env,
}


def register(target: typer.Typer, commands: dict[str, ModuleType]) -> None:
    """Add each module's ``command`` to ``target`` under its name, with the module's ``EPILOG``."""
    for name, module in commands.items():
        target.command(name, epilog=getattr(module, "EPILOG", None))(module.command)


register(app, COMMANDS)


if __name__ == "__main__":
    app()
