"""The ``yoso`` command line: a thin Typer shell over ``yoso_core``."""
