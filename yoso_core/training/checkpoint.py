"""Training checkpoints: written whole or not at all, found again by ``--resume DIR|auto``.

A checkpoint ``OUTPUT_DIR/checkpoints/step-N/`` holds

    model.safetensors    weights (tied tensors stored once)
    config.json          the model config, so the directory also loads with ``from_pretrained``
    optimizer.pt         AdamW state          scheduler.pt   learning-rate schedule state
    rng.pt               per process: RNG states (python, numpy, torch CPU, every CUDA device)
                         and the loss sums not yet logged
    trainer_state.json   step, data position (micro-batches consumed), world size, seed

It is written into ``checkpoints/.tmp-step-N-PID`` and renamed into place (``staged_dir``), so a
process killed while saving leaves only a temporary directory, which ``latest_checkpoint`` ignores.
A save that fails (a full disk, Ctrl-C) removes its temporary directory on the way out; what a
SIGKILL leaves behind is removed by ``sweep_stale`` when the next run starts in the same output
directory. A target that is a symbolic link (``final -> /data/model``) keeps its link: the
directory it points to is replaced.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_model, save_model
from torch import nn

from .._io import (  # noqa: F401  (re-exported)
    check_not_enclosing,
    remove_path,
    replace_dir,
    staged_dir,
    storage_errors,
    swap_location,
)
from ..saved import weights_bytes

FIX = "choose another --output-dir (earlier checkpoints are intact: --resume auto goes on from the last)"


_STEP_DIR = re.compile(r"^step-(\d+)$")
# what a swap leaves when its process dies half-way: .tmp-NAME-PID (being written), .old-NAME-PID
_STAGING = re.compile(r"^\.(?:tmp|old)-.+-(\d+)$")
STATE_FILE = "trainer_state.json"


def capture_rng_state() -> dict[str, Any]:
    """The RNG states of python, numpy (when installed), torch and every CUDA device."""
    state: dict[str, Any] = {"python": random.getstate(), "torch": torch.get_rng_state()}
    try:
        import numpy as np

        kind, keys, pos, has_gauss, cached = np.random.get_state()
        state["numpy"] = (kind, torch.from_numpy(keys.astype("int64")), pos, has_gauss, cached)
    except ImportError:
        pass
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Restore states captured by ``capture_rng_state``."""
    python = state["python"]
    random.setstate((python[0], tuple(python[1]), python[2]))
    torch.set_rng_state(state["torch"])
    if "numpy" in state:
        import numpy as np

        kind, keys, pos, has_gauss, cached = state["numpy"]
        np.random.set_state((kind, keys.numpy().astype("uint32"), pos, has_gauss, cached))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def checkpoint_root(output_dir: str | os.PathLike) -> Path:
    """``OUTPUT_DIR/checkpoints``."""
    return Path(output_dir) / "checkpoints"


def list_checkpoints(output_dir: str | os.PathLike) -> list[Path]:
    """Complete checkpoints of a run, oldest first (temporary directories are not listed)."""
    root = checkpoint_root(output_dir)
    if not root.is_dir():
        return []
    found = []
    for path in root.iterdir():
        match = _STEP_DIR.match(path.name)
        if match and (path / STATE_FILE).is_file():
            found.append((int(match.group(1)), path))
    return [path for _, path in sorted(found)]


def latest_checkpoint(output_dir: str | os.PathLike) -> Path | None:
    """The newest complete checkpoint, or None."""
    checkpoints = list_checkpoints(output_dir)
    return checkpoints[-1] if checkpoints else None


def _pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this machine (one of another user counts as alive)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale(output_dir: str | os.PathLike) -> list[Path]:
    """Remove what dead processes left of directory swaps in ``output_dir`` and its checkpoints/.

    Only ``.tmp-NAME-PID`` / ``.old-NAME-PID`` entries whose process no longer runs are removed
    (a run holds the output directory's lock while it writes them); returns what was removed.
    """
    removed = []
    for folder in (Path(output_dir), checkpoint_root(output_dir)):
        if not folder.is_dir():
            continue
        for path in folder.iterdir():
            match = _STAGING.match(path.name)
            if match and (int(match.group(1)) == os.getpid() or not _pid_alive(int(match.group(1)))):
                with contextlib.suppress(OSError):
                    remove_path(path)
                    removed.append(path)
    return removed


def save_checkpoint(
    output_dir: str | os.PathLike,
    step: int,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    rng_states: list[dict[str, Any]],
    state: dict[str, Any],
    write_extra: Callable[[Path], None] | None = None,
    keep: int | None = None,
) -> Path:
    """Write ``checkpoints/step-{step}`` atomically and return it; keep only the newest ``keep``.

    ``rng_states`` has one entry per process (index = rank), e.g. ``{"rng": capture_rng_state(), ...}``;
    ``write_extra(tmp_dir)`` adds files (tokenizer, config.yaml) before the rename.
    """
    root = checkpoint_root(output_dir)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step}"
    # a rerun from an older checkpoint overwrites a later one; a failed save leaves nothing behind.
    # Weights, then AdamW's two moments of each: about three times the weights.
    needed = 3 * weights_bytes(model)
    with storage_errors(root, f"checkpoint {final.name}", FIX, needed=needed), staged_dir(final) as tmp:
        save_model(model, str(tmp / "model.safetensors"))
        if hasattr(model, "config"):
            model.config.save_pretrained(tmp)
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
        torch.save(rng_states, tmp / "rng.pt")
        if write_extra is not None:
            write_extra(tmp)
        (tmp / STATE_FILE).write_text(json.dumps({**state, "step": step}, indent=2))
        for path in tmp.iterdir():
            if path.is_file():
                with open(path, "rb") as f:
                    os.fsync(f.fileno())
    if keep is not None:
        for path in list_checkpoints(output_dir)[:-keep]:
            remove_path(path)
    return final


def read_state(path: str | os.PathLike) -> dict[str, Any]:
    """The ``trainer_state.json`` of a checkpoint."""
    return json.loads((Path(path) / STATE_FILE).read_text())


class UnreadableCheckpoint(Exception):
    """A file of a checkpoint that cannot be read (missing, truncated, corrupt); ``path`` names it.

    Told apart from a checkpoint that reads but does not fit the model (a ValueError or
    RuntimeError of loading the state): the fix differs.
    """

    def __init__(self, path: Path, exc: BaseException) -> None:
        from ..saved import one_line_reason

        super().__init__(f"cannot read {path} ({one_line_reason(exc)})")
        self.path = path


def _read(path: Path, read: Callable[[Path], Any]) -> Any:
    """``read(path)``, any failure of which is an UnreadableCheckpoint naming ``path``."""
    try:
        return read(path)
    except Exception as exc:  # torch.load raises OSError, RuntimeError, UnpicklingError, EOFError, ...
        raise UnreadableCheckpoint(path, exc) from exc


def load_checkpoint(
    path: str | os.PathLike,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    map_location: str | torch.device = "cpu",
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Load weights, optimiser and scheduler state in place; return (trainer state, per-rank RNG states).

    UnreadableCheckpoint when a file cannot be read; ValueError (or torch's RuntimeError) when what
    was read does not fit ``model``, ``optimizer`` or ``scheduler``.
    """
    path = Path(path)
    try:
        missing, unexpected = load_model(
            model, str(path / "model.safetensors"), strict=False, device=str(map_location)
        )
    except (OSError, SafetensorError) as exc:  # reading the file; a shape that does not fit is a RuntimeError
        raise UnreadableCheckpoint(path / "model.safetensors", exc) from exc
    if unexpected or any(not _is_tied(model, name) for name in missing):
        raise ValueError(
            f"checkpoint {path} does not fit the model: missing {missing}, unexpected {unexpected}"
        )
    optimizer.load_state_dict(
        _read(path / "optimizer.pt", lambda p: torch.load(p, map_location=map_location, weights_only=True))
    )
    scheduler.load_state_dict(_read(path / "scheduler.pt", lambda p: torch.load(p, weights_only=True)))
    rng_states = _read(path / "rng.pt", lambda p: torch.load(p, weights_only=True))
    return read_state(path), rng_states


def _is_tied(model: nn.Module, name: str) -> bool:
    """Whether parameter ``name`` shares storage with another parameter (stored once on disk)."""
    params = dict(model.named_parameters(remove_duplicate=False))
    target = params.get(name)
    return target is not None and any(
        other is not name and p.data_ptr() == target.data_ptr()
        for other, p in params.items()
        if other != name
    )
