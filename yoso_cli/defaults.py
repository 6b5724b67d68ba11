"""Literal field defaults of a yoso_core dataclass, read from its source without importing it.

The CLI shows (and uses) the library's defaults, so they cannot drift; reading the class body
instead of importing it keeps ``--help`` from loading torch.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any


def dataclass_defaults(module: str, class_name: str) -> dict[str, Any]:
    """``{field: default}`` of ``class_name`` in ``yoso_core/<module>``, e.g. ``"training/config.py"``.

    Fields whose default is not a literal (a factory) are left out.
    """
    import yoso_core

    source = Path(yoso_core.__file__).parent / module
    tree = ast.parse(source.read_text(encoding="utf-8"))
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == class_name)
    defaults: dict[str, Any] = {}
    for node in cls.body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            try:
                defaults[node.target.id] = ast.literal_eval(node.value)
            except ValueError:
                continue
    return defaults
