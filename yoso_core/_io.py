"""Atomic writes: a file or a directory appears whole at its path or not at all.

``atomic_write`` writes into a temporary file beside the target (same directory, so the rename
cannot cross file systems), flushes it to disk and renames it into place; on any failure the
temporary file is removed and the target is left as it was. ``staged_dir`` does the same for a
directory: it is written into ``.tmp-NAME-PID`` beside the target and swapped in by
``replace_dir``. This module imports nothing else of yoso.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> None:
    """Write through ``write(tmp)`` into a temporary file beside ``path``, fsync it, rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.tmp-", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def swap_location(target: str | os.PathLike) -> Path:
    """Where a directory swap onto ``target`` happens: the real path, so a symbolic link is followed.

    ``final -> /data/run/final`` replaces ``/data/run/final`` and the link stays; the temporary
    directory must be made beside this path (a rename cannot cross file systems).
    """
    return Path(os.path.realpath(target))


def remove_path(path: Path) -> None:
    """Delete a directory tree, a file or a link (a link itself, never what it points to)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def replace_dir(tmp: Path, target: Path) -> None:
    """Rename the finished directory ``tmp`` to ``target``, replacing any ``target`` whole.

    A ``target`` that is a symbolic link is followed (its link stays); ``tmp`` must lie beside
    ``swap_location(target)``.
    """
    target = swap_location(target)
    if not os.path.lexists(target):
        tmp.rename(target)
        return
    old = target.with_name(f".old-{target.name}-{os.getpid()}")
    if os.path.lexists(old):
        remove_path(old)
    target.rename(old)
    tmp.rename(target)
    remove_path(old)


@contextlib.contextmanager
def staged_dir(target: str | os.PathLike) -> Iterator[Path]:
    """A fresh ``.tmp-NAME-PID`` directory beside ``target`` to write into; renamed onto it on success.

    When the block raises (anything, KeyboardInterrupt included), the temporary directory is
    removed and ``target`` is left as it was.
    """
    location = swap_location(target)
    location.parent.mkdir(parents=True, exist_ok=True)
    tmp = location.with_name(f".tmp-{location.name}-{os.getpid()}")
    if os.path.lexists(tmp):
        remove_path(tmp)
    tmp.mkdir()
    try:
        yield tmp
        replace_dir(tmp, location)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
