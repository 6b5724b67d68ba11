"""``python -m yoso_cli`` (and ``torchrun -m yoso_cli``): the ``yoso`` command."""

from .main import app

app(prog_name="yoso")
