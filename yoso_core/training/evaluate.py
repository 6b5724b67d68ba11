"""Evaluation of a model on encoded validation features, with the task's metrics (see yoso_core/metrics.py).

Evaluation runs in ``eval`` mode under a forked RNG seeded with the run's seed, so it never shifts
the training RNG (a resumed run stays identical) and the same weights always give the same
numbers, sampled hashes included.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .. import metrics
from ..inference import feature_outputs, run_model


def evaluate(
    model: nn.Module,
    task: str,
    records: Sequence[dict],
    features: Sequence[dict],
    tokenizer,
    *,
    batch_size: int,
    device: torch.device,
    seed: int,
    precision: str = "fp32",
    mlm_probability: float = 0.15,
) -> dict[str, float]:
    """The task's metrics (and mean loss) of ``model`` on validation ``features`` of ``records``."""
    from ..data import collate, decode

    was_training = model.training
    model.eval()
    devices = [device] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            generator = torch.Generator().manual_seed(seed)
            collate_fn = collate(task, tokenizer, mlm_probability=mlm_probability, generator=generator)
            id2label = getattr(model.config, "id2label", None)
            loss_sum, loss_count = 0.0, 0
            masked = correct = 0
            mlm_loss_sum = 0.0
            predictions: list[int] = []
            gold: list[int] = []
            gold_tags: list[list[str]] = []
            pred_tags: list[list[str]] = []
            qa_outputs: list[dict] = []
            for chunk, inputs, out in run_model(
                model, features, collate_fn, batch_size=batch_size, device=device, precision=precision
            ):
                if out.loss is not None:
                    loss_sum += float(out.loss) * len(chunk)
                    loss_count += len(chunk)
                if task == "mlm":
                    labels = inputs["labels"]
                    sel = labels != -100
                    logits = out.logits.float()[sel]
                    masked += int(sel.sum())
                    correct += int((logits.argmax(-1) == labels[sel]).sum())
                    mlm_loss_sum += float(nn.functional.cross_entropy(logits, labels[sel], reduction="sum"))
                elif task in ("classification", "multiple-choice"):
                    predictions += out.logits.argmax(-1).tolist()
                    gold += inputs["labels"].tolist()
                elif task == "token-classification":
                    pred = out.logits.argmax(-1)
                    for row_pred, row_gold in zip(pred.tolist(), inputs["labels"].tolist()):
                        keep = [(p, g) for p, g in zip(row_pred, row_gold) if g != -100]
                        pred_tags.append([id2label[p] for p, _ in keep])
                        gold_tags.append([id2label[g] for _, g in keep])
                elif task == "qa":
                    qa_outputs += feature_outputs(task, chunk, out)
    finally:
        model.train(was_training)
    result: dict[str, float] = {}
    if loss_count:
        result["loss"] = loss_sum / loss_count
    if task == "mlm":
        result.update(metrics.mlm_metrics(mlm_loss_sum, masked, correct))
    elif task in ("classification", "multiple-choice"):
        result.update(metrics.task_metrics(task, predictions, gold))
    elif task == "token-classification":
        result.update(metrics.task_metrics(task, pred_tags, gold_tags))
    elif task == "qa":
        answers = decode(task, list(records), list(features), qa_outputs, tokenizer)
        result.update(
            metrics.task_metrics(
                task, [a["answer"] for a in answers], [r["answers"]["text"] for r in records]
            )
        )
    return result
