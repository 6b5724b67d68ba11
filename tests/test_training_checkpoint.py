"""Checkpoints: complete or absent, newest found by --resume auto, tied weights, RNG states."""

from __future__ import annotations

import json
import os
import random

import pytest
import torch

from yoso_core._io import StorageError
from yoso_core.modeling import TASK_MODELS
from yoso_core.sizes import size_config
from yoso_core.training import checkpoint as ckpt
from yoso_core.training.optim import build_optimizer, build_scheduler


def tiny_mlm():
    torch.manual_seed(0)
    model = TASK_MODELS["mlm"](size_config("tiny", vocab_size=50, max_position_embeddings=16))
    optimizer = build_optimizer(model, learning_rate=1e-3, weight_decay=0.0)
    scheduler = build_scheduler(optimizer, warmup_steps=1, total_steps=10)
    return model, optimizer, scheduler


def train_one_step(model, optimizer, scheduler):
    ids = torch.randint(5, 50, (2, 16))
    model(input_ids=ids, labels=ids).loss.backward()
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad()


def save(tmp_path, step, model, optimizer, scheduler, **kwargs):
    return ckpt.save_checkpoint(
        tmp_path,
        step,
        model=model,
        optimizer=optimizer,
        scheduler=scheduler,
        rng_states=[{"rng": ckpt.capture_rng_state()}],
        state={"world_size": 1},
        **kwargs,
    )


def test_round_trip_restores_weights_optimizer_schedule_and_rng(tmp_path):
    model, optimizer, scheduler = tiny_mlm()
    train_one_step(model, optimizer, scheduler)
    random.seed(5)
    path = save(tmp_path, 1, model, optimizer, scheduler)
    expected_next = (random.random(), torch.rand(3))
    assert path == tmp_path / "checkpoints" / "step-1"
    assert json.loads((path / "trainer_state.json").read_text()) == {"world_size": 1, "step": 1}

    fresh, fresh_optimizer, fresh_scheduler = tiny_mlm()
    torch.nn.init.zeros_(fresh.yoso.embeddings.word_embeddings.weight)
    state, rng_states = ckpt.load_checkpoint(
        path, model=fresh, optimizer=fresh_optimizer, scheduler=fresh_scheduler
    )
    assert state["step"] == 1
    for (name, a), b in zip(model.state_dict().items(), fresh.state_dict().values()):
        assert torch.equal(a, b), name
    # the decoder is still tied to the word embeddings after loading
    assert (
        fresh.cls.predictions.decoder.weight.data_ptr()
        == fresh.yoso.embeddings.word_embeddings.weight.data_ptr()
    )
    assert fresh_scheduler.get_last_lr() == scheduler.get_last_lr()
    assert torch.equal(
        fresh_optimizer.state_dict()["state"][0]["exp_avg"], optimizer.state_dict()["state"][0]["exp_avg"]
    )
    ckpt.restore_rng_state(rng_states[0]["rng"])
    assert (random.random(), torch.rand(3)) == (expected_next[0], pytest.approx(expected_next[1]))


def test_latest_ignores_temporary_directories_and_keep_prunes(tmp_path):
    model, optimizer, scheduler = tiny_mlm()
    assert ckpt.latest_checkpoint(tmp_path) is None
    for step in (2, 10, 4):
        save(tmp_path, step, model, optimizer, scheduler)
    (tmp_path / "checkpoints" / ".tmp-step-12-999").mkdir()  # a save that was killed half-way
    (tmp_path / "checkpoints" / "step-14").mkdir()  # no trainer_state.json: not a checkpoint
    assert ckpt.latest_checkpoint(tmp_path).name == "step-10"  # by step number, not by name
    save(tmp_path, 6, model, optimizer, scheduler, keep=2)
    assert [p.name for p in ckpt.list_checkpoints(tmp_path)] == ["step-6", "step-10"]


def test_saving_a_step_again_replaces_it_whole(tmp_path):
    model, optimizer, scheduler = tiny_mlm()
    save(tmp_path, 3, model, optimizer, scheduler, write_extra=lambda d: (d / "old.txt").write_text("x"))
    save(tmp_path, 3, model, optimizer, scheduler)
    path = tmp_path / "checkpoints" / "step-3"
    assert not (path / "old.txt").exists() and (path / "model.safetensors").is_file()
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["step-3"]  # no temporary left over


def test_a_checkpoint_of_another_model_is_refused(tmp_path):
    model, optimizer, scheduler = tiny_mlm()
    path = save(tmp_path, 1, model, optimizer, scheduler)
    other = TASK_MODELS["qa"](size_config("tiny", vocab_size=50, max_position_embeddings=16))
    other_optimizer = build_optimizer(other, learning_rate=1e-3, weight_decay=0.0)
    with pytest.raises(ValueError, match="does not fit the model"):
        ckpt.load_checkpoint(
            path,
            model=other,
            optimizer=other_optimizer,
            scheduler=build_scheduler(other_optimizer, warmup_steps=1, total_steps=10),
        )


@pytest.mark.parametrize(
    "name, damage",
    [
        ("optimizer.pt", b"not a torch file"),
        ("scheduler.pt", b""),
        ("rng.pt", None),  # missing
        ("model.safetensors", b"\x08\x00\x00\x00\x00\x00\x00\x00{broken}"),
    ],
)
def test_an_unreadable_checkpoint_file_is_named_not_called_a_misfit(tmp_path, name, damage):
    model, optimizer, scheduler = tiny_mlm()
    train_one_step(model, optimizer, scheduler)
    path = save(tmp_path, 1, model, optimizer, scheduler)
    if damage is None:
        (path / name).unlink()
    else:
        (path / name).write_bytes(damage)
    fresh, fresh_optimizer, fresh_scheduler = tiny_mlm()
    with pytest.raises(ckpt.UnreadableCheckpoint, match=f"cannot read {path / name}") as caught:
        ckpt.load_checkpoint(path, model=fresh, optimizer=fresh_optimizer, scheduler=fresh_scheduler)
    assert caught.value.path == path / name


def test_an_optimizer_state_of_other_shapes_does_not_fit(tmp_path):
    model, optimizer, scheduler = tiny_mlm()
    path = save(tmp_path, 1, model, optimizer, scheduler)
    fresh, _, _ = tiny_mlm()
    other_optimizer = torch.optim.AdamW(list(fresh.parameters())[:3])  # other groups of other sizes
    with pytest.raises(ValueError, match="parameter group"):
        ckpt.load_checkpoint(
            path,
            model=fresh,
            optimizer=other_optimizer,
            scheduler=build_scheduler(other_optimizer, warmup_steps=1, total_steps=10),
        )


def _dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.mark.parametrize(
    ("error", "raised"),
    [(OSError(28, "No space left on device"), StorageError), (KeyboardInterrupt(), KeyboardInterrupt)],
)
def test_a_failed_save_removes_its_temporary_directory(tmp_path, monkeypatch, error, raised):
    model, optimizer, scheduler = tiny_mlm()
    save(tmp_path, 1, model, optimizer, scheduler)
    real_save = torch.save

    def failing_save(obj, path, *args, **kwargs):
        if str(path).endswith("scheduler.pt"):  # the disk fills up half-way through the checkpoint
            raise error
        return real_save(obj, path, *args, **kwargs)

    monkeypatch.setattr(ckpt.torch, "save", failing_save)
    with pytest.raises(raised):  # a full disk is named: the disk, its free space, the space needed
        save(tmp_path, 2, model, optimizer, scheduler)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step-1"]
    assert ckpt.latest_checkpoint(tmp_path) == tmp_path / "checkpoints" / "step-1"


def test_sweep_removes_what_dead_processes_left_and_keeps_live_ones(tmp_path):
    root = tmp_path / "checkpoints"
    root.mkdir()
    dead, alive = _dead_pid(), os.getppid()
    stale = [root / f".tmp-step-3-{dead}", root / f".old-step-2-{dead}", tmp_path / f".tmp-final-{dead}"]
    for path in stale:
        path.mkdir()
        (path / "model.safetensors").write_bytes(b"x" * 100)
    (tmp_path / f".tmp-tokenizer-{dead}").write_text("a file, not a directory")
    stale.append(tmp_path / f".tmp-tokenizer-{dead}")
    live = root / f".tmp-step-4-{alive}"  # another process's save in flight
    live.mkdir()
    kept = [root / "step-1", tmp_path / "final", tmp_path / ".hidden-notes"]
    for path in kept:
        path.mkdir()
    removed = ckpt.sweep_stale(tmp_path)
    assert sorted(removed) == sorted(stale)
    assert not any(p.exists() for p in stale)
    assert live.is_dir() and all(p.is_dir() for p in kept)


def test_a_symlinked_checkpoint_target_keeps_its_link(tmp_path):
    model, optimizer, scheduler = tiny_mlm()
    elsewhere = tmp_path / "disk2" / "step-1"
    elsewhere.mkdir(parents=True)
    (elsewhere / "stale.txt").write_text("old")
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    (tmp_path / "run" / "checkpoints" / "step-1").symlink_to(elsewhere)
    path = save(tmp_path / "run", 1, model, optimizer, scheduler)
    assert path.is_symlink() and path.resolve() == elsewhere
    assert (elsewhere / "model.safetensors").is_file() and not (elsewhere / "stale.txt").exists()
    assert [p.name for p in elsewhere.parent.iterdir()] == ["step-1"]  # no temporary left there


def test_staged_dir_replaces_a_link_target_and_cleans_up_on_error(tmp_path):
    target = tmp_path / "real"
    target.mkdir()
    (target / "a").write_text("1")
    link = tmp_path / "link"
    link.symlink_to(target)
    with pytest.raises(RuntimeError), ckpt.staged_dir(link) as tmp:
        (tmp / "b").write_text("2")
        raise RuntimeError("boom")
    assert (target / "a").is_file() and sorted(p.name for p in tmp_path.iterdir()) == ["link", "real"]
    with ckpt.staged_dir(link) as tmp:
        (tmp / "b").write_text("2")
    assert link.is_symlink() and sorted(p.name for p in target.iterdir()) == ["b"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "real"]
