"""One training run per output directory: an exclusive lock on ``OUTPUT_DIR/.lock``.

Two runs writing the same ``metrics.jsonl``, checkpoints and ``final/`` would interleave them, so
``lock_output_dir`` takes an exclusive ``flock`` on ``OUTPUT_DIR/.lock`` and writes its pid, host
and start time there; a second run fails at once, naming the process that holds the lock. The
kernel drops the lock when its process ends, however it ends (SIGKILL included), so a lock file
left by a dead process is simply taken over. Under torchrun only rank 0 takes the lock.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from .config import ConfigError

LOCK_FILE = ".lock"


class OutputDirLocked(ConfigError):
    """Another live run holds the output directory."""


@dataclass
class OutputLock:
    """A held lock; ``release()`` (or process exit) gives it up."""

    path: Path
    fd: int
    created_dir: bool

    def release(self) -> None:
        """Remove the lock file and unlock; remove the output directory if this run made it (still empty)."""
        if self.fd < 0:
            return
        with contextlib.suppress(OSError):
            self.path.unlink()
        os.close(self.fd)  # closing drops the flock
        self.fd = -1
        if self.created_dir:
            with contextlib.suppress(OSError):
                self.path.parent.rmdir()  # only when empty


def _holder(path: Path) -> str:
    """Who holds the lock, from the lock file: "pid 123 on host, since 10:02:03", or what is known."""
    try:
        info = json.loads(path.read_text())
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info["started"]))
        return f"pid {info['pid']} on {info['host']}, running since {when}"
    except (OSError, ValueError, KeyError, TypeError):
        return "a process that is starting"


def _check_dir(output_dir: Path) -> bool:
    """Create ``output_dir`` if needed (True when created); ConfigError when it is a file or unwritable."""
    if output_dir.exists() and not output_dir.is_dir():
        raise ConfigError(f"--output-dir {str(output_dir)!r} is a file, not a directory; choose a directory")
    created = not output_dir.exists()
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise ConfigError(
            f"--output-dir {str(output_dir)!r} cannot be created: a file is in the way on its path"
        ) from None
    except OSError as exc:
        raise ConfigError(
            f"--output-dir {str(output_dir)!r} cannot be created ({exc.strerror}); "
            "choose a writable directory"
        ) from None
    if not os.access(output_dir, os.W_OK | os.X_OK):
        raise ConfigError(f"--output-dir {str(output_dir)!r} is not writable; choose a writable directory")
    return created


def lock_output_dir(output_dir: str | os.PathLike) -> OutputLock:
    """Take the output directory's lock (creating the directory); OutputDirLocked names the holder.

    ConfigError (exit 2 in the CLI) when ``output_dir`` is a file, cannot be created or is not writable.
    """
    import fcntl

    output_dir = Path(output_dir)
    created = _check_dir(output_dir)
    path = output_dir / LOCK_FILE
    for _ in range(10):  # retried when the file was replaced between opening and locking it
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise ConfigError(
                f"--output-dir {str(output_dir)!r} is not writable ({exc.strerror}); "
                "choose a writable directory"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise OutputDirLocked(
                    f"--output-dir {str(output_dir)!r} is in use by another training run ({_holder(path)}); "
                    "wait for it to finish, or choose another --output-dir"
                ) from None
            raise ConfigError(
                f"--output-dir {str(output_dir)!r} cannot be locked ({exc.strerror}); "
                "choose a directory on a local file system"
            ) from None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if not same:  # the holder released (and removed) it meanwhile: lock the new file
            os.close(fd)
            continue
        info = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
        os.ftruncate(fd, 0)
        os.write(fd, (json.dumps(info) + "\n").encode())
        return OutputLock(path, fd, created)
    raise ConfigError(f"--output-dir {str(output_dir)!r}: its lock file keeps changing; try again")
