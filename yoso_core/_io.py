"""Atomic writes: a file or a directory appears whole at its path or not at all.

``atomic_write`` writes into a temporary file beside the target (same directory, so the rename
cannot cross file systems), flushes it to disk and renames it into place; on any failure the
temporary file is removed and the target is left as it was. ``staged_dir`` does the same for a
directory: it is written into ``.tmp-NAME-PID`` beside the target and swapped in by
``replace_dir``. Files get the mode of any file the process creates (``0666`` less the umask),
although ``mkstemp`` and safetensors create theirs ``0600``. ``LineFile`` streams lines into a file
that keeps every whole line written when the disk fills or the process is stopped.
``storage_errors`` turns the failure of a write (a full disk, a read-only or forbidden folder)
into one ``StorageError`` that names the folder, the space needed and free, and the fix. This
module imports nothing else of yoso.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path


class StorageError(Exception):
    """A write that the disk refused (full, read-only, forbidden) or a target that is unsafe to replace;
    the message names the place and the fix."""


@functools.cache
def file_mode() -> int:
    """The mode a newly created file gets in this process: ``0666`` less the umask. Read once: setting
    the umask to read it would briefly change it for every thread of the process."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def normalise_modes(folder: Path) -> None:
    """Give every file directly in ``folder`` the ordinary mode (mkstemp and safetensors make ``0600``)."""
    mode = file_mode()
    for path in folder.iterdir():
        if path.is_file() and not path.is_symlink():
            os.chmod(path, mode)


def mount_point(path: str | os.PathLike) -> Path:
    """The mount point of the file system that holds ``path`` (or would, for a path not yet made)."""
    here = Path(os.path.realpath(path))
    while not here.exists() and here != here.parent:
        here = here.parent
    while not os.path.ismount(here) and here != here.parent:
        here = here.parent
    return here


def human_bytes(n: float) -> str:
    """``1.5 MiB``-style size."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover


def free_bytes(path: str | os.PathLike) -> int | None:
    """Free space for this user on the file system of ``path``, or None when it cannot be read."""
    try:
        return shutil.disk_usage(mount_point(path)).free
    except OSError:
        return None


# What torch (``PytorchStreamWriter failed writing file``, ``iostream error``, ``[enforce fail at
# inline_container.cc] unexpected pos``) and safetensors say when a write fails part-way; their
# errors carry no errno.
_WRITE_FAILURES = (
    "file write failed",
    "iostream",
    "failed writing",
    "no space left",
    "write error",
    "inline_container",
    "ioerror",
)


def _write_errno(exc: BaseException) -> int | None:
    """The errno of a failed write, or None when ``exc`` is not one (ENOSPC for torch's and
    safetensors' messages of a failed write)."""
    if isinstance(exc, OSError):
        return exc.errno if exc.errno is not None else errno.EIO
    text = str(exc).lower()
    if isinstance(exc, RuntimeError) or type(exc).__name__ == "SafetensorError":
        if any(part in text for part in _WRITE_FAILURES) or "os error 28" in text:
            return errno.ENOSPC if ("no space" in text or "os error 28" in text) else errno.EIO
    return None


def describe_write_failure(
    exc: BaseException, folder: str | os.PathLike, what: str, fix: str, needed: int | None = None
) -> str | None:
    """One line saying why writing ``what`` into ``folder`` failed and how to fix it; None when
    ``exc`` is no write failure. The disk is called full on ENOSPC (or EDQUOT), or when a write
    failure that carries no errno (torch's and safetensors' messages) comes with free space below
    ``needed``; any other error is not taken for a full disk, however little space is free."""
    code = _write_errno(exc)
    if code is None:
        return None
    free = free_bytes(folder)
    short = needed is not None and free is not None and free < needed
    disk = mount_point(folder)
    if code == errno.EIO and short and getattr(exc, "errno", None) is None:
        code = errno.ENOSPC
    if code in (errno.ENOSPC, errno.EDQUOT):
        space = f"{human_bytes(free)} free" if free is not None else "no space free"
        if needed is not None:
            space += f", about {human_bytes(needed)} needed"
        return (
            f"no space left on the disk holding {str(folder)!r} (mounted at {str(disk)!r}; {space}) "
            f"while writing {what}; free space there or {fix}"
        )
    if code == errno.EROFS:
        return f"cannot write {what}: {str(folder)!r} is on a read-only file system ({str(disk)!r}); {fix}"
    if code in (errno.EACCES, errno.EPERM):
        return f"cannot write {what}: permission denied in {str(folder)!r}; {fix}"
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc).splitlines()[0]
    return f"cannot write {what} in {str(folder)!r} ({reason}); {fix}"


@contextlib.contextmanager
def storage_errors(
    folder: str | os.PathLike, what: str, fix: str, needed: int | None = None
) -> Iterator[None]:
    """Turn a failed write inside the block into StorageError (see ``describe_write_failure``)."""
    try:
        yield
    except StorageError:
        raise
    except Exception as exc:
        message = describe_write_failure(exc, folder, what, fix, needed)
        if message is None:
            raise
        raise StorageError(message) from exc


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
        os.chmod(tmp, file_mode())  # mkstemp makes it 0600
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
    try:
        tmp.rename(target)
    except BaseException:
        old.rename(target)  # the old directory goes back: the target is as it was
        raise
    remove_path(old)


def check_not_enclosing(target: str | os.PathLike) -> None:
    """StorageError when replacing ``target`` would replace the folder that holds it: a link such as
    ``run/final -> run`` (or ``-> ..``), whose real path is the link's own folder or one above it."""
    target = Path(target)
    location = swap_location(target)
    home = Path(os.path.realpath(target.parent))
    if home == location or location in home.parents:
        raise StorageError(
            f"{str(target)!r} is a symbolic link to {str(location)!r}, which holds it: replacing it would "
            "delete everything there; remove the link, or point it at a folder of its own"
        )


@contextlib.contextmanager
def staged_dir(target: str | os.PathLike, keep: Callable[[str], bool] | None = None) -> Iterator[Path]:
    """A fresh ``.tmp-NAME-PID`` directory beside ``target`` to write into; renamed onto it on success.

    When the block raises (anything, KeyboardInterrupt included), the temporary directory is
    removed and ``target`` is left as it was. Entries of an existing ``target`` whose name
    ``keep`` accepts (and the block did not write) are moved into the new directory just before
    the swap, so they survive it; they are moved back when the swap fails.
    """
    location = swap_location(target)
    check_not_enclosing(target)
    location.parent.mkdir(parents=True, exist_ok=True)
    tmp = location.with_name(f".tmp-{location.name}-{os.getpid()}")
    if os.path.lexists(tmp):
        remove_path(tmp)
    tmp.mkdir()
    try:
        yield tmp
        normalise_modes(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    moved: list[str] = []
    try:
        if keep is not None and location.is_dir():
            for path in sorted(location.iterdir()):
                if keep(path.name) and not os.path.lexists(tmp / path.name):
                    os.rename(path, tmp / path.name)  # same file system: a rename
                    moved.append(path.name)
        replace_dir(tmp, location)
    except BaseException:
        for name in moved:
            with contextlib.suppress(OSError):
                os.rename(tmp / name, location / name)
        shutil.rmtree(tmp, ignore_errors=True)
        raise


class LineFile:
    """Lines written to a temporary file beside ``path`` and renamed onto it by ``close``.

    Each ``write_line`` goes to disk unbuffered; a write that fails (a full disk) is cut back to the
    last whole line and raises StorageError, and ``close`` still renames what was written, so the
    file holds every whole line written before the failure, as a pipe's reader would have.
    """

    def __init__(self, path: str | os.PathLike, fix: str = "choose another --output") -> None:
        self.path = Path(path)
        self.fix = fix
        self.tmp = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}")
        self.fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, file_mode())
        self.size = 0  # bytes of whole lines on disk
        self.lines = 0

    def _write(self, data: bytes) -> int:
        return os.write(self.fd, data)

    def write_line(self, text: str) -> None:
        """Write ``text`` and a newline; StorageError when the disk refuses (cut back to whole lines)."""
        data = (text + "\n").encode("utf-8")
        done = 0
        try:
            while done < len(data):
                done += self._write(data[done:])
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.ftruncate(self.fd, self.size)
            message = describe_write_failure(
                exc, self.path.parent, f"{str(self.path)!r} after {self.lines} line(s)", self.fix
            )
            raise StorageError(message) from exc
        self.size += len(data)
        self.lines += 1

    def close(self) -> None:
        """Rename the temporary file onto ``path`` (whatever was written); idempotent."""
        if self.fd < 0:
            return
        fd, self.fd = self.fd, -1
        try:
            with contextlib.suppress(OSError):
                os.fsync(fd)
            os.close(fd)
            os.replace(self.tmp, self.path)
        finally:
            self.tmp.unlink(missing_ok=True)
