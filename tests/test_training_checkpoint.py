"""Checkpoints: complete or absent, newest found by --resume auto, tied weights, RNG states."""

from __future__ import annotations

import json
import random

import pytest
import torch

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
