"""Literal defaults of yoso_core's options, read from its source without importing it.

The CLI shows (and uses) the library's defaults, so they cannot drift; reading the definitions
instead of importing them keeps ``--help`` from loading torch. Every command takes its defaults
this one way: a dataclass's fields (``TrainConfig``, ``ConvertOptions``, ``BenchConfig``) or a
function's keyword parameters (``predict``).
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

_EMPTY = {"list": list, "dict": dict, "tuple": tuple, "set": set}


def _literal(node: ast.expr) -> Any:
    """The value of a literal default: ``8``, ``field(default=8)``, ``field(default_factory=lambda: [8])``
    or ``field(default_factory=dict)`` (an empty ``list``, ``dict``, ``tuple`` or ``set``).

    ValueError for anything else (a call, a name).
    """
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "field":
        for keyword in node.keywords:
            if keyword.arg == "default":
                return ast.literal_eval(keyword.value)
            if keyword.arg == "default_factory" and isinstance(keyword.value, ast.Lambda):
                return ast.literal_eval(keyword.value.body)
            if keyword.arg == "default_factory" and isinstance(keyword.value, ast.Name):
                if keyword.value.id in _EMPTY:
                    return _EMPTY[keyword.value.id]()
        raise ValueError("a field without a literal default")
    return ast.literal_eval(node)


def _pairs(node: ast.ClassDef | ast.FunctionDef) -> list[tuple[str, ast.expr]]:
    """``(name, default expression)`` of a class's annotated fields or a function's parameters."""
    if isinstance(node, ast.ClassDef):
        return [
            (item.target.id, item.value)
            for item in node.body
            if isinstance(item, ast.AnnAssign)
            and isinstance(item.target, ast.Name)
            and item.value is not None
        ]
    args = node.args
    positional = args.posonlyargs + args.args
    pairs = list(zip((a.arg for a in positional[len(positional) - len(args.defaults) :]), args.defaults))
    pairs += [(a.arg, d) for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is not None]
    return pairs


def library_defaults(module: str, name: str) -> dict[str, Any]:
    """``{option: default}`` of the dataclass or function ``name`` in ``yoso_core/<module>``.

    ``module`` is a path such as ``"training/config.py"``. Defaults that are not literals (nor a
    ``field`` of one) are left out.
    """
    import yoso_core

    source = Path(yoso_core.__file__).parent / module
    tree = ast.parse(source.read_text(encoding="utf-8"))
    kinds = (ast.ClassDef, ast.FunctionDef)
    node = next(n for n in tree.body if isinstance(n, kinds) and n.name == name)
    defaults: dict[str, Any] = {}
    for option, value in _pairs(node):
        try:
            defaults[option] = _literal(value)
        except ValueError:
            continue
    return defaults
