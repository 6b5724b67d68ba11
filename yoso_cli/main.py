"""The ``yoso`` Typer app: one visible table of subcommands, each a thin module in ``commands/``."""

from __future__ import annotations

import typer

from .commands import bench, build_kernels, convert, env, finetune, predict, pretrain
from .errors import fail, quiet_on_closed_stdout

app = typer.Typer(
    name="yoso",
    help="YOSO long-context transformers: pretrain, fine-tune, predict, benchmark, convert.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# name -> module; each module defines `command`, whose docstring is its help. A closed stdout
# (`yoso predict ... | head -1`) ends any of them quietly with exit code 0.
COMMANDS = {
    "build-kernels": build_kernels,
    "pretrain": pretrain,
    "finetune": finetune,
    "predict": predict,
    "bench": bench,
    "convert": convert,
    "env": env,
}


@app.callback()
def _check_environment(ctx: typer.Context) -> None:
    """An unusable $YOSO_CPU_ISA is a usage error (exit 2) for every command; `yoso env` reports it."""
    from yoso_core.kernels import isa

    if ctx.invoked_subcommand == "env":
        return
    try:
        isa.select()
    except isa.IsaError as exc:
        fail(str(exc))


for _name, _module in COMMANDS.items():
    app.command(_name)(quiet_on_closed_stdout(_module.command))


if __name__ == "__main__":
    app()
