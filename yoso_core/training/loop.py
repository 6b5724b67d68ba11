"""``train(config)``: the whole training run behind `yoso pretrain` and `yoso finetune`.

Steps: data -> labels -> tokenizer -> features -> model -> AdamW + schedule -> (resume) -> loop of
optimiser steps, each ``gradient_accumulation_steps`` micro-batches, clipped, in fp32 or bf16
autocast -> evaluation every ``eval_every`` steps and at the end -> checkpoints every
``save_every`` steps and at the end -> ``OUTPUT_DIR/final`` (weights, config with task and labels,
tokenizer), loadable with ``from_pretrained`` here and in transformers.

Reproducibility across a kill and ``--resume``: the data order is a function of (seed, position),
MLM masks of (seed, micro-batch, rank), and the torch/python/numpy/CUDA RNG states (dropout and the
sampled hash functions) are saved in each checkpoint and restored, so the resumed run continues
with the same numbers the uninterrupted run would have drawn.
"""

from __future__ import annotations

import contextlib
import math
import random
import sys
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from ..inference import autocast
from ..saved import has_tokenizer, load_saved_config, one_line_reason, quiet_transformers, weights_bytes
from . import checkpoint as ckpt
from . import distributed
from .build import (
    build_model,
    check_tokenizer,
    effective_config,
    from_scratch,
    model_max_length,
    prepare_tokenizer,
    resolve_labels,
    saved_labels,
)
from .config import ConfigError, TrainConfig, save_config
from .evaluate import evaluate
from .lock import OutputLock, lock_output_dir
from .optim import build_optimizer, build_scheduler
from .reporting import MetricsLog, Progress, finite_or_none, format_metrics
from .schedule import BatchSchedule

RUN_TOKENIZER_DIR = "tokenizer"


@dataclass
class TrainResult:
    """What a finished run produced."""

    output_dir: str
    final_dir: str
    steps: int
    metrics: dict[str, float] = field(default_factory=dict)  # the last evaluation
    train_loss: float | None = None  # mean loss of the last logged steps
    resumed_from: str | None = None
    is_main: bool = True
    model: Any = field(default=None, repr=False, compare=False)  # the trained model (this process's copy)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (without the model)."""
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("is_main", "model")}
        data["metrics"] = {k: finite_or_none(v) for k, v in self.metrics.items()}
        data["train_loss"] = finite_or_none(self.train_loss)
        return data


@dataclass
class _LogWindow:
    """Running sums of the training steps since the last logged step."""

    loss: float = 0.0
    steps: int = 0
    tokens: int = 0
    start: float = field(default_factory=time.perf_counter)


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA)."""
    random.seed(seed)
    torch.manual_seed(seed)
    with contextlib.suppress(ImportError):
        import numpy as np

        np.random.seed(seed % 2**32)


def _resume_path(config: TrainConfig, output_dir: Path) -> Path | None:
    if config.resume is None:
        if ckpt.list_checkpoints(output_dir):
            raise ConfigError(
                f"--output-dir {str(output_dir)!r} already holds checkpoints; pass --resume auto to continue "
                "that run, or choose a new --output-dir"
            )
        return None
    if config.resume == "auto":
        return ckpt.latest_checkpoint(output_dir)
    return Path(config.resume)


def _check_resume(config: TrainConfig, resume: Path, info: distributed.DistInfo) -> None:
    """ConfigError, before any work, when the checkpoint was written by a run this one cannot continue."""
    import yaml

    state = ckpt.read_state(resume)
    written = (state.get("world_size"), state.get("batch_size"), state.get("gradient_accumulation_steps"))
    if written != (info.world_size, config.batch_size, config.gradient_accumulation_steps):
        raise ConfigError(
            f"--resume {resume}: the checkpoint was written by {written[0]} process(es) with "
            f"--batch-size {written[1]} and --gradient-accumulation-steps {written[2]}; resume with the "
            "same values"
        )
    if state.get("task") not in (None, config.task):
        raise ConfigError(
            f"--resume {resume}: the checkpoint is of task {state['task']!r}, not {config.task!r}; resume "
            f"with --task {state['task']} (or start a new run in another --output-dir)"
        )
    try:
        run_config = yaml.safe_load((resume / "run_config.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        run_config = {}  # older checkpoints: the model load reports what does not fit
    seq_len = run_config.get("seq_len") if isinstance(run_config, dict) else None
    if seq_len is not None and seq_len != config.seq_len:
        raise ConfigError(
            f"--resume {resume}: the checkpoint was trained with --seq-len {seq_len}, not {config.seq_len}; "
            f"resume with --seq-len {seq_len}"
        )
    step = int(state.get("step", 0))
    if step > config.max_steps:
        raise ConfigError(f"--resume {resume} is at step {step}, beyond --max-steps {config.max_steps}")


def _check_resume_labels(resume: Path, task: str, labels: list[str] | None) -> None:
    """ConfigError when the data's label set is not the one the checkpoint's head was trained on."""
    if labels is None:
        return
    try:
        known = saved_labels(load_saved_config(resume), task)
    except ConfigError:
        return  # load_checkpoint reports a checkpoint it cannot read
    if known and sorted(known) != sorted(labels):
        raise ConfigError(
            f"--resume {resume}: the checkpoint was trained on the labels {known}, but the data has "
            f"{sorted(labels)}; resume with the data it was trained on, or start a new --output-dir"
        )


def _tokenizer(
    config: TrainConfig,
    records: list[dict],
    resume: Path | None,
    output_dir: Path,
    info: distributed.DistInfo,
):
    """The run's tokenizer; one trained from scratch is built once (rank 0), saved and loaded by all."""
    from ..data import load_tokenizer

    max_length = model_max_length(config)
    if resume is not None and has_tokenizer(resume):
        return load_tokenizer(str(resume), max_length=max_length)
    if not (from_scratch(config) and config.tokenizer is None):
        return prepare_tokenizer(config, records)
    path = output_dir / RUN_TOKENIZER_DIR
    if info.is_main:
        tokenizer = prepare_tokenizer(config, records)
        with ckpt.storage_errors(output_dir, "the tokenizer", ckpt.FIX), ckpt.staged_dir(path) as tmp:
            tokenizer.save_pretrained(str(tmp))
    distributed.barrier(info)
    return load_tokenizer(str(path), max_length=max_length)


def _save_final(model, tokenizer, output_dir: Path) -> Path:
    """Write ``OUTPUT_DIR/final`` atomically (weights, config, tokenizer)."""
    final = output_dir / "final"
    needed = weights_bytes(model)
    with ckpt.storage_errors(output_dir, "the final model", ckpt.FIX, needed=needed):
        with ckpt.staged_dir(final) as tmp:  # a symlinked final/ keeps its link; its target is replaced
            model.save_pretrained(str(tmp))
            tokenizer.save_pretrained(str(tmp))
    return final


def _lock_output(config: TrainConfig, info: distributed.DistInfo) -> OutputLock | None:
    """Rank 0 locks the output directory and sweeps what dead runs left; every rank learns of a failure."""
    lock, error = None, None
    if info.is_main:
        try:
            lock = lock_output_dir(config.resolved_output_dir())
        except ConfigError as exc:
            error = exc
    if info.distributed and distributed.sum_across(info, 1.0 if error is not None else 0.0) > 0:
        if error is None:
            error = ConfigError(f"rank 0 could not take --output-dir {config.output_dir!r}; see its error")
    if error is not None:
        raise error
    if lock is not None:
        ckpt.sweep_stale(config.resolved_output_dir())
    return lock


def train(config: TrainConfig) -> TrainResult:
    """Train as ``config`` says (one process, or one rank under torchrun) and return the result.

    The output directory is locked for the run (``lock.lock_output_dir``): a second run into it
    fails with ``OutputDirLocked`` naming the first.
    """
    quiet_transformers()
    info = distributed.setup(config.device)
    try:
        lock = _lock_output(config, info)
        try:
            result = _train(config, info)
        finally:
            if lock is not None:
                lock.release()
    except BaseException:
        if info.distributed and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
        raise
    distributed.teardown(info)
    return result


def _nan_loss_hint(config: TrainConfig, model: torch.nn.Module) -> str:
    """What to change after a non-finite loss: fp32 is advised only to a run that is not fp32 already."""
    weights = {p.dtype for p in model.parameters()}
    if weights - {torch.float32}:
        kinds = ", ".join(sorted(str(d).removeprefix("torch.") for d in weights))
        return (
            f"the model's weights are {kinds}; train from float32 weights "
            "(yoso convert SRC DST --dtype float32) or lower --learning-rate"
        )
    if config.precision != "fp32":
        return "lower --learning-rate or use --precision fp32"
    return "lower --learning-rate (the run is already fp32), or raise --warmup-steps"


@dataclass
class _Prepared:
    """What fitting starts from: the data's features, tokenizer, model, optimiser and resumed state."""

    config: TrainConfig  # the options with the attention and hash_code_len the model really has
    output_dir: Path
    resume: Path | None
    val_records: list[dict]
    tokenizer: Any
    train_features: list[dict]
    val_features: list[dict]
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    step: int
    resumed_window: tuple[float, int]  # (loss sum, steps) of the training steps not yet logged
    resumed_train_seconds: float  # training time logged before the resumed checkpoint


def _train(config: TrainConfig, info: distributed.DistInfo) -> TrainResult:
    return _fit(config, info, _prepare(config, info))


def _prepare(config: TrainConfig, info: distributed.DistInfo) -> _Prepared:
    """Load and encode the data, build the tokenizer, model, optimiser and schedule; resume if asked."""
    from ..data import encode, load_task_data

    output_dir = config.resolved_output_dir()
    # a final/ that links to the run directory (or above) would replace it: refused before the work
    ckpt.check_not_enclosing(output_dir / "final")
    resume = _resume_path(config, output_dir)
    if resume is not None:
        _check_resume(config, resume, info)
    seed_everything(config.seed)
    data = load_task_data(
        config.task,
        train_file=config.train_file,
        validation_file=config.validation_file,
        dataset=config.dataset,
        dataset_config=config.dataset_config,
        seed=config.seed,
        seq_len=config.seq_len,
        num_train=config.num_train,
        num_validation=config.num_validation,
    )
    train_records, val_records = list(data["train"]), list(data.get("validation") or [])
    labels = resolve_labels(config, train_records + val_records)
    if resume is not None:
        _check_resume_labels(resume, config.task, labels)
    label2id = {name: i for i, name in enumerate(labels)} if labels is not None else None
    tokenizer = _tokenizer(config, train_records, resume, output_dir, info)
    check_tokenizer(config, tokenizer)
    encode_args = dict(seq_len=config.seq_len, label2id=label2id)
    if config.task == "qa" and config.stride is not None:
        encode_args["stride"] = config.stride
    train_features = encode(config.task, train_records, tokenizer, **encode_args)
    val_features = encode(config.task, val_records, tokenizer, **encode_args) if val_records else []
    if not train_features:
        raise ConfigError("the training data yields no features; check --train-file and --seq-len")

    seed_everything(config.seed)
    model = build_model(config, tokenizer, labels).to(info.device)
    model.train()
    if info.is_main and getattr(model, "new_tensors", None):
        names = model.new_tensors
        shown = ", ".join(names[:4]) + (", ..." if len(names) > 4 else "")
        print(
            f"the {config.task} head is new: {len(names)} tensor(s) initialised from the seed ({shown})",
            file=sys.stderr,
        )
    run_config = effective_config(config, model)
    if info.is_main:
        with ckpt.storage_errors(output_dir, "config.yaml", ckpt.FIX):
            output_dir.mkdir(parents=True, exist_ok=True)
            save_config(run_config, output_dir / "config.yaml")
    distributed.barrier(info)
    optimizer = build_optimizer(
        model,
        learning_rate=config.learning_rate,
        weight_decay=config.weight_decay,
        betas=(config.adam_beta1, config.adam_beta2),
        eps=config.adam_epsilon,
    )
    scheduler = build_scheduler(
        optimizer, warmup_steps=config.resolved_warmup_steps(), total_steps=config.max_steps
    )

    step = 0
    resumed_window = (0.0, 0)  # (loss sum, steps) of the training steps not yet logged
    resumed_train_seconds = 0.0
    if resume is not None:
        try:
            state, rng_states = ckpt.load_checkpoint(
                resume, model=model, optimizer=optimizer, scheduler=scheduler, map_location=info.device
            )
        except ckpt.UnreadableCheckpoint as exc:
            raise ConfigError(
                f"--resume {resume}: {exc}; the checkpoint is damaged or incomplete: resume from another "
                "checkpoint of the run (--resume DIR), or start a new --output-dir"
            ) from None
        except (OSError, ValueError, RuntimeError, KeyError) as exc:
            raise ConfigError(
                f"--resume {resume}: the checkpoint does not fit this run ({one_line_reason(exc)}); resume "
                "with the options it was written with (its run_config.yaml), or start a new --output-dir"
            ) from None
        step = int(state["step"])
        process_state = rng_states[info.rank]
        ckpt.restore_rng_state(process_state["rng"])
        resumed_window = process_state["log_window"]
        resumed_train_seconds = process_state.get("train_seconds", 0.0)  # absent in older checkpoints
    return _Prepared(
        config=run_config,
        output_dir=output_dir,
        resume=resume,
        val_records=val_records,
        tokenizer=tokenizer,
        train_features=train_features,
        val_features=val_features,
        model=model,
        optimizer=optimizer,
        scheduler=scheduler,
        step=step,
        resumed_window=resumed_window,
        resumed_train_seconds=resumed_train_seconds,
    )


def mask_seed(seed: int, position: int, rank: int) -> int:
    """The seed of the MLM masks of micro-batch ``position`` on ``rank``.

    A function of (seed, position, rank) only, so a resumed run draws the masks the uninterrupted
    run would have drawn, and no two ranks or micro-batches share theirs.
    """
    return (seed * 1_000_003 + position) * 1_009 + rank


def _fit(config: TrainConfig, info: distributed.DistInfo, prepared: _Prepared) -> TrainResult:
    """The training steps from ``prepared``, with evaluation, logging and checkpoints; the final save."""
    return _Run(config, info, prepared).fit()


class _Run:
    """One run of optimiser steps over ``prepared``: what changes as it goes, and its four actions.

    ``steps`` counts the optimiser steps done (the resumed checkpoint's to start with); ``window``
    sums the steps since the last logged one; ``train_seconds`` is the training time logged so
    far, evaluation and saving left out.
    """

    def __init__(self, config: TrainConfig, info: distributed.DistInfo, prepared: _Prepared):
        from ..data import collate

        self.config, self.info, self.prepared = config, info, prepared
        self.model, self.optimizer, self.scheduler = prepared.model, prepared.optimizer, prepared.scheduler
        self.steps = prepared.step
        self.accumulation = config.gradient_accumulation_steps
        self.metrics_log = (
            MetricsLog(
                prepared.output_dir / "metrics.jsonl", resume_step=self.steps if prepared.resume else None
            )
            if info.is_main
            else None
        )
        self.ddp_model = distributed.wrap_model(self.model, info)
        self.schedule = BatchSchedule(
            len(prepared.train_features),
            config.batch_size,
            seed=config.seed,
            rank=info.rank,
            world_size=info.world_size,
        )
        self.mask_generator = torch.Generator()
        self.collate_fn = collate(
            config.task,
            prepared.tokenizer,
            mlm_probability=config.mlm_probability,
            generator=self.mask_generator,
        )
        self.progress = Progress(config.max_steps, self.steps, enabled=info.is_main, description=config.task)
        self.window = _LogWindow(*prepared.resumed_window)
        self.train_seconds = prepared.resumed_train_seconds
        self.train_loss: float | None = None  # the last logged mean loss

    def _due(self, every: int) -> bool:
        """Whether an action done every ``every`` steps (0: never) is due now; all are at the last."""
        return bool(every and self.steps % every == 0) or self.steps == self.config.max_steps

    def fit(self) -> TrainResult:
        """Steps until ``max_steps``, logging, evaluating and saving when due; then ``final/``."""
        config, info, output_dir = self.config, self.info, self.prepared.output_dir
        if info.is_main and self.prepared.resume is not None:
            self.progress.log(f"resumed from {self.prepared.resume} at step {self.steps}")
        last_eval: dict[str, float] | None = None
        try:
            while self.steps < config.max_steps:
                self.step()
                if self._due(config.log_every):
                    self.log()
                paused = time.perf_counter()
                if self._due(config.eval_every):
                    last_eval = self.evaluate()
                if self._due(config.save_every):
                    self.save()
                self.window.start += time.perf_counter() - paused  # a log window times training steps only
            if last_eval is None:  # resumed at the last step: report (not log again) the final metrics
                last_eval = self.evaluate(log=False)
            final = output_dir / "final"
            if info.is_main:
                final = _save_final(self.model, self.prepared.tokenizer, output_dir)
                self.progress.log(f"final model {final}")
            distributed.barrier(info)
        finally:
            self.progress.close()
        return TrainResult(
            output_dir=str(output_dir),
            final_dir=str(final),
            steps=self.steps,
            metrics=last_eval or {},
            train_loss=self.train_loss,
            resumed_from=str(self.prepared.resume) if self.prepared.resume else None,
            model=self.model,
            is_main=info.is_main,
        )

    def step(self) -> None:
        """One optimiser step: ``gradient_accumulation_steps`` micro-batches, clipped."""
        config, info = self.config, self.info
        step_loss = 0.0
        for micro in range(self.accumulation):
            position = self.steps * self.accumulation + micro
            self.mask_generator.manual_seed(mask_seed(config.seed, position, info.rank))
            batch = self.collate_fn(
                [self.prepared.train_features[i] for i in self.schedule.indices(position)]
            )
            # counted on the CPU batch: no device sync per micro-batch
            self.window.tokens += (
                int(batch["attention_mask"].sum())
                if "attention_mask" in batch
                else batch["input_ids"].numel()
            )
            batch = {k: v.to(info.device) for k, v in batch.items()}
            sync = info.distributed and micro < self.accumulation - 1
            with self.ddp_model.no_sync() if sync else contextlib.nullcontext():
                with autocast(info.device, config.precision):
                    loss = self.ddp_model(**batch).loss / self.accumulation
                loss.backward()
            step_loss += float(loss.detach())
        # Every process must stop together, or the others would wait for it forever.
        if not math.isfinite(distributed.sum_across(info, step_loss)):
            hint = _nan_loss_hint(config, self.model)
            raise FloatingPointError(f"the training loss became {step_loss} at step {self.steps + 1}; {hint}")
        if config.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), config.max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.steps += 1
        self.window.loss += step_loss
        self.window.steps += 1
        self.progress.advance(self.steps)

    def log(self) -> None:
        """Write the window's mean loss, learning rate and throughput to metrics.jsonl; a new window."""
        info, window = self.info, self.window
        loss_value = distributed.mean_across(info, window.loss / window.steps)
        tokens = distributed.sum_across(info, window.tokens)
        elapsed = max(time.perf_counter() - window.start, 1e-9)
        self.train_seconds += elapsed
        lr = self.scheduler.get_last_lr()[0]
        self.train_loss = loss_value
        if info.is_main:
            self.metrics_log.write(
                {
                    "step": self.steps,
                    "split": "train",
                    "loss": loss_value,
                    "learning_rate": lr,
                    "tokens_per_second": tokens / elapsed,
                    "epoch": self.schedule.epoch(self.steps * self.accumulation),
                    "train_seconds": self.train_seconds,
                }
            )
            self.progress.update(self.steps, loss_value, lr, tokens / elapsed)
        self.window = _LogWindow()

    def evaluate(self, log: bool = True) -> dict[str, float]:
        """The validation metrics (rank 0; empty without validation data), logged unless ``log`` is False."""
        config, info, prepared = self.config, self.info, self.prepared
        values: dict[str, float] = {}
        if info.is_main and prepared.val_features:
            values = evaluate(
                self.model,
                config.task,
                prepared.val_records,
                prepared.val_features,
                prepared.tokenizer,
                batch_size=config.eval_batch_size or config.batch_size,
                device=info.device,
                seed=config.seed,
                precision=config.precision,
                mlm_probability=config.mlm_probability,
            )
            if log:
                self.metrics_log.write({"step": self.steps, "split": "validation", **values})
            self.progress.log(f"step {self.steps} validation  {format_metrics(values)}")
        distributed.barrier(info)
        return values

    def save(self) -> None:
        """A checkpoint at this step; per process its RNG states and unlogged loss window too, so the
        logged losses survive a resume."""
        config, info, prepared = self.config, self.info, self.prepared
        rng_states = distributed.gather_objects(
            info,
            {
                "rng": ckpt.capture_rng_state(),
                "log_window": (self.window.loss, self.window.steps),
                "train_seconds": self.train_seconds,
            },
        )
        if info.is_main:
            state = {
                "micro_batches": self.steps * self.accumulation,
                "world_size": info.world_size,
                "batch_size": config.batch_size,
                "gradient_accumulation_steps": self.accumulation,
                "seed": config.seed,
                "task": config.task,
                "epoch": self.schedule.epoch(self.steps * self.accumulation),
            }

            def extra(tmp: Path) -> None:
                prepared.tokenizer.save_pretrained(str(tmp))
                save_config(prepared.config, tmp / "run_config.yaml")

            path = ckpt.save_checkpoint(
                prepared.output_dir,
                self.steps,
                model=self.model,
                optimizer=self.optimizer,
                scheduler=self.scheduler,
                rng_states=rng_states,
                state=state,
                write_extra=extra,
                keep=config.keep_checkpoints,
            )
            self.progress.log(f"step {self.steps} checkpoint {path}")
        distributed.barrier(info)
