"""Building the target: the YOSO model from mapped tensors, its check, and the atomic write into DST."""

from __future__ import annotations

import json
import os
import re
import warnings
from pathlib import Path
from typing import Any

import torch

from ..saved import weights_bytes
from .keymaps import TIED, _names
from .options import (
    DTYPES,
    POSITION_OFFSET,
    SOURCES,
    TOKENIZER_FILES,
    WEIGHT_FILES,
    ConvertError,
    ConvertOptions,
    ConvertReport,
)
from .sources import _dtype_name, _from_original, _from_softmax, _from_transformers, _resolve_dir


def extend_positions(table: torch.Tensor, max_positions: int) -> torch.Tensor:
    """A YOSO position table for ``max_positions`` ids: the learned rows copied in blocks.

    ``table`` is ``(n + 2, hidden)`` with rows 0-1 reserved; row ``2 + j`` of the result is learned
    row ``2 + j % n``, so each block of ``n`` positions repeats what the source learned.
    """
    learned = table[POSITION_OFFSET:]  # (n, hidden)
    n = learned.shape[0]
    reps = -(-max_positions // n)
    blocks = learned.repeat(reps, 1)[:max_positions]  # (max_positions, hidden)
    return torch.cat([table[:POSITION_OFFSET], blocks], dim=0)


def _yoso_overrides(fields: dict[str, Any], opts: ConvertOptions, report: ConvertReport) -> None:
    for name in ("use_expectation", "num_hash", "hash_code_len", "conv_window"):
        value = getattr(opts, name)
        if value is None:
            continue
        from ..config import YosoConfig

        old = fields.get(name, getattr(YosoConfig(), name))
        if old != value:
            report.config_changes.append(f"{name}: {old} -> {value}")
        fields[name] = value


def build_target(state: dict[str, torch.Tensor], fields: dict[str, Any], arch: str, report: ConvertReport):
    """Our model of ``arch`` loaded from ``state`` after exhaustive key and shape checks."""
    from .. import modeling
    from ..config import YosoConfig, check_model_config

    try:
        config = YosoConfig(**fields)
        check_model_config(config)  # constraints between fields, checked where a model is built
    except (ValueError, TypeError) as exc:
        raise ConvertError(f"the converted configuration is invalid: {exc}") from exc
    config.architectures = [arch]
    torch.manual_seed(0)
    model = getattr(modeling, arch)(config).eval()
    expected = model.state_dict()
    if arch == "YosoModel":  # the bare encoder's keys have no "yoso." prefix
        state = {k.removeprefix("yoso."): v for k, v in state.items()}
        tied = {}
    else:
        state, tied = dict(state), TIED
    for key, partner in tied.items():
        if key in expected and key not in state and partner in state:
            state[key] = state[partner]
    for key in list(expected):
        if key.endswith("attention.self.conv.weight") and key not in state:
            state[key] = torch.zeros_like(expected[key])  # a new YOSO-C branch that adds nothing at first
            report.initialised.append(key)
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing:
        raise ConvertError(
            f"{len(missing)} key(s) of the YOSO model are not provided by the source: {_names(missing)}"
        )
    if unexpected:
        raise ConvertError(
            f"{len(unexpected)} converted key(s) have no place in the YOSO model: {_names(unexpected)}"
        )
    bad = [
        f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if tuple(state[k].shape) != tuple(v.shape)
    ]
    if bad:
        raise ConvertError(f"{len(bad)} shape mismatch(es), source vs YOSO: {'; '.join(bad[:8])}")
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()}, strict=True)
    report.mapped = len(state)
    return model


def _check_forward(model, arch: str) -> None:
    """One short forward pass; a converted model must run and give finite outputs."""
    cfg = model.config
    n = min(16, cfg.max_position_embeddings)
    gen = torch.Generator().manual_seed(0)
    ids = (
        torch.randint(3, cfg.vocab_size, (2, n), generator=gen)
        if cfg.vocab_size > 3
        else torch.zeros(2, n, dtype=torch.long)
    )
    if arch == "YosoForMultipleChoice":
        ids = ids[:, None, :].expand(2, 2, n)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="yoso: using the slow pure-PyTorch attention")
        out = model(input_ids=ids)
    first = out[0] if isinstance(out, tuple) else next(v for v in out.values() if isinstance(v, torch.Tensor))
    if not torch.isfinite(first).all():
        raise ConvertError("the converted model gives non-finite outputs on a test input")


def verify_against(theirs, ours, arch: str) -> float:
    """Max |difference| of our and transformers' outputs on a seeded unpadded input, in expectation mode.

    transformers' sampled mode has no CPU path, so both models run YOSO-E here; the weights checked
    are the same either way.
    """
    saved = []
    for model in (theirs, ours):
        for module in model.modules():
            if hasattr(module, "use_expectation") and hasattr(module, "num_hash"):
                saved.append((module, module.use_expectation))
                module.use_expectation = True
    try:
        cfg = ours.config
        n = min(24, cfg.max_position_embeddings)
        gen = torch.Generator().manual_seed(0)
        shape = (2, 3, n) if arch == "YosoForMultipleChoice" else (2, n)
        ids = torch.randint(3, max(cfg.vocab_size, 4), shape, generator=gen)
        with torch.no_grad():
            a, b = theirs(input_ids=ids), ours(input_ids=ids)
        diffs = [
            (x.float() - y.float()).abs().max().item()
            for x, y in zip(a.to_tuple(), b.to_tuple())
            if isinstance(x, torch.Tensor)
        ]
        return max(diffs)
    finally:
        for module, value in saved:
            module.use_expectation = value


def looks_like_model_dir(path: Path) -> bool:
    """Whether ``path`` is a saved model directory: a ``config.json`` and a weights file."""
    return (path / "config.json").is_file() and any((path / name).is_file() for name in WEIGHT_FILES)


def check_destination(src: str | Path, dst: str | Path, force: bool) -> None:
    """ConvertError unless ``dst`` may be written: absent, or (``force``) a model dir not holding SRC."""
    from .._io import swap_location

    dst = Path(dst)
    if not os.path.lexists(dst):
        return
    if not force:
        raise ConvertError(f"DST {dst} already exists; choose a new directory or pass --force to replace it")
    real_dst = swap_location(dst)
    if Path(src).exists():
        real_src = swap_location(src)
        if real_src == real_dst or real_dst in real_src.parents:
            raise ConvertError(
                f"--force would delete DST {dst}, which holds SRC {src}; choose a DST outside SRC"
            )
    if not os.path.lexists(real_dst):
        return  # a link to nothing yet: the model is written where it points
    if not real_dst.is_dir():
        raise ConvertError(
            f"DST {dst} is a file, not a model directory; --force replaces only model directories"
        )
    if any(real_dst.iterdir()) and not looks_like_model_dir(real_dst):
        raise ConvertError(
            f"DST {dst} does not look like a model directory (no config.json with model weights), so "
            "--force will not delete it; choose another DST, or remove it yourself"
        )


def written_by_conversion(name: str) -> bool:
    """Whether a file of this name is one a conversion writes (config, weights, tokenizer files):
    what ``--force`` may replace in an existing DST; everything else there is kept."""
    return (
        name in ("config.json", "generation_config.json")
        or name in WEIGHT_FILES
        or name in TOKENIZER_FILES
        or re.fullmatch(r"(model|pytorch_model)-\d+-of-\d+\.(safetensors|bin)", name) is not None
    )


def _tokenizer_files(src_dir: Path | None, positions_changed: int | None) -> dict[str, bytes]:
    """The tokenizer files of ``src_dir`` to copy into DST, by name, with the ``model_max_length`` of
    ``tokenizer_config.json`` set to ``positions_changed`` when the position table changed.

    Read before anything is written, so that a SRC that cannot be read is reported as such, never
    as a failure to write DST.
    """
    files: dict[str, bytes] = {}
    if src_dir is None:
        return files
    for name in TOKENIZER_FILES:
        if (src_dir / name).is_file():
            files[name] = (src_dir / name).read_bytes()
    if positions_changed is not None and "tokenizer_config.json" in files:
        tok = json.loads(files["tokenizer_config.json"])
        if "model_max_length" in tok:
            tok["model_max_length"] = positions_changed
            files["tokenizer_config.json"] = (json.dumps(tok, indent=2) + "\n").encode("utf-8")
    return files


def _write(
    model, dst: Path, src_dir: Path | None, report: ConvertReport, positions_changed: int | None
) -> None:
    """Save into a temporary directory beside ``dst``, copy tokenizer files, then rename into place.

    A ``dst`` that is a symbolic link keeps its link; the directory it points to is replaced. When
    ``dst`` exists (``--force``), what a conversion did not write there (a README.md, a folder of
    data) is moved into the new directory just before the swap, so it survives.
    """
    from .._io import staged_dir, storage_errors, swap_location

    location = swap_location(dst)
    # what DST holds that a conversion does not write: moved into the new directory, and reported
    kept = (
        sorted(p.name for p in location.iterdir() if not written_by_conversion(p.name))
        if location.is_dir()
        else []
    )
    fix = "choose another DST (on a writable disk with space)"
    needed = weights_bytes(model)
    tokenizer_files = _tokenizer_files(src_dir, positions_changed)  # SRC is read before DST is written
    with storage_errors(location.parent, f"the converted model {str(dst)!r}", fix, needed=needed):
        with staged_dir(dst, keep=set(kept).__contains__) as tmp:
            model.save_pretrained(tmp)
            for name, data in tokenizer_files.items():
                (tmp / name).write_bytes(data)
            report.files = sorted(p.name for p in tmp.iterdir())
    if kept:
        report.notes.append(f"kept in DST (not written by a conversion): {', '.join(kept)}")


def convert(src: str | Path, dst: str | Path, opts: ConvertOptions) -> ConvertReport:
    """Convert the checkpoint at ``src`` (``opts.source`` kind) to a YOSO model directory at ``dst``."""
    if opts.source not in SOURCES:
        raise ConvertError(f"--from must be one of {', '.join(SOURCES)}, got {opts.source!r}")
    if opts.dtype is not None and opts.dtype not in DTYPES:
        raise ConvertError(f"--dtype must be one of {', '.join(DTYPES)}, got {opts.dtype!r}")
    if opts.max_position_embeddings is not None and opts.max_position_embeddings < 1:
        raise ConvertError(f"--max-position-embeddings must be positive, got {opts.max_position_embeddings}")
    if opts.num_attention_heads is not None:
        if opts.source != "original":
            raise ConvertError(
                f"--num-attention-heads is for --from original only; --from {opts.source} reads it "
                "from the checkpoint's config"
            )
        if opts.num_attention_heads < 1:
            raise ConvertError(f"--num-attention-heads must be positive, got {opts.num_attention_heads}")
    dst = Path(dst)
    check_destination(src, dst, opts.force)
    report = ConvertReport(source=opts.source, src=str(src), dst=str(dst))
    theirs = None
    src_dir: Path | None = None
    if opts.source == "original":
        state, fields, arch = _from_original(Path(src), opts, report)
    elif opts.source in ("roberta", "bert"):
        src_dir = _resolve_dir(str(src))
        state, fields, arch = _from_softmax(str(src_dir), opts, report)
    else:
        src_dir = _resolve_dir(str(src))
        state, fields, arch, theirs, source_dtype = _from_transformers(str(src_dir), opts, report)
        report.dropped = []
    report.architecture = arch
    if theirs is None:
        source_dtype = _dtype_name({t.dtype for t in state.values() if t.is_floating_point()})

    if theirs is not None and opts.verify:
        # Check the load against transformers before any option changes the model.
        report.max_abs_diff = verify_against(theirs, build_target(state, fields, arch, report), arch)
        if not report.max_abs_diff <= 1e-5:
            raise ConvertError(
                f"outputs differ from transformers' by {report.max_abs_diff:.2e} (> 1e-5); the "
                "checkpoint did not load faithfully"
            )

    trained_window = fields.get("conv_window")
    if opts.conv_window is not None and trained_window is not None and opts.conv_window != trained_window:
        raise ConvertError(
            f"--conv-window {opts.conv_window} would discard the checkpoint's trained convolution "
            f"of window {trained_window}; leave --conv-window out"
        )
    _yoso_overrides(fields, opts, report)

    positions_changed = None
    if opts.max_position_embeddings is not None:
        old = int(fields["max_position_embeddings"])
        new = opts.max_position_embeddings
        if new != old:
            key = "yoso.embeddings.position_embeddings.weight"
            state[key] = extend_positions(state[key], new)
            fields["max_position_embeddings"] = new
            positions_changed = new
            how = (
                f"learned rows 2..{old + 1} copied in {-(-new // old)} block(s)"
                if new > old
                else f"truncated to the first {new} positions"
            )
            report.config_changes.append(f"max_position_embeddings: {old} -> {new} ({how})")

    model = build_target(state, fields, arch, report)
    if opts.verify:
        _check_forward(model, arch)
    dtype = opts.dtype or source_dtype
    if dtype is not None and dtype != "float32":
        model = model.to(DTYPES[dtype])
        report.notes.append(f"weights saved in {dtype}" + ("" if opts.dtype else " like the source's"))
    _write(model, dst, src_dir, report, positions_changed)
    return report
