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


class _MaskedLM:
    """Masked-token accuracy and loss over the positions the collator masked."""

    def __init__(self, task: str, records, features, tokenizer, id2label) -> None:
        self.masked = self.correct = 0
        self.loss_sum = 0.0

    def add(self, chunk: list[dict], inputs: dict, out) -> None:
        labels = inputs["labels"]
        sel = labels != -100
        logits = out.logits.float()[sel]
        self.masked += int(sel.sum())
        self.correct += int((logits.argmax(-1) == labels[sel]).sum())
        self.loss_sum += float(nn.functional.cross_entropy(logits, labels[sel], reduction="sum"))

    def metrics(self) -> dict[str, float]:
        return metrics.mlm_metrics(self.loss_sum, self.masked, self.correct)


class _Choices:
    """Classification and multiple choice: the argmax of each sequence's (or choice set's) logits."""

    def __init__(self, task: str, records, features, tokenizer, id2label) -> None:
        self.task = task
        self.predictions: list[int] = []
        self.gold: list[int] = []

    def add(self, chunk: list[dict], inputs: dict, out) -> None:
        self.predictions += out.logits.argmax(-1).tolist()
        self.gold += inputs["labels"].tolist()

    def metrics(self) -> dict[str, float]:
        return metrics.task_metrics(self.task, self.predictions, self.gold)


class _Tags:
    """Token classification: the tags of the positions that carry a word's label."""

    def __init__(self, task: str, records, features, tokenizer, id2label) -> None:
        self.task, self.id2label = task, id2label
        self.predicted: list[list[str]] = []
        self.gold: list[list[str]] = []

    def add(self, chunk: list[dict], inputs: dict, out) -> None:
        pred = out.logits.argmax(-1)
        for row_pred, row_gold in zip(pred.tolist(), inputs["labels"].tolist()):
            keep = [(p, g) for p, g in zip(row_pred, row_gold) if g != -100]
            self.predicted.append([self.id2label[p] for p, _ in keep])
            self.gold.append([self.id2label[g] for _, g in keep])

    def metrics(self) -> dict[str, float]:
        return metrics.task_metrics(self.task, self.predicted, self.gold)


class _Spans:
    """Extractive QA: each record's answer decoded from its windows' start and end logits."""

    def __init__(self, task: str, records, features, tokenizer, id2label) -> None:
        self.task, self.records, self.features, self.tokenizer = (
            task,
            list(records),
            list(features),
            tokenizer,
        )
        self.outputs: list[dict] = []

    def add(self, chunk: list[dict], inputs: dict, out) -> None:
        self.outputs += feature_outputs(self.task, chunk, out)

    def metrics(self) -> dict[str, float]:
        from ..data import decode

        answers = decode(self.task, self.records, self.features, self.outputs, self.tokenizer)
        return metrics.task_metrics(
            self.task, [a["answer"] for a in answers], [r["answers"]["text"] for r in self.records]
        )


# What each task's metrics gather batch by batch (``add``) and compute at the end (``metrics``).
_TALLIES = {
    "mlm": _MaskedLM,
    "classification": _Choices,
    "multiple-choice": _Choices,
    "token-classification": _Tags,
    "qa": _Spans,
}


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
    from ..data import collate

    was_training = model.training
    model.eval()
    devices = [device] if device.type == "cuda" else []
    tally = _TALLIES[task](task, records, features, tokenizer, getattr(model.config, "id2label", None))
    loss_sum, loss_count = 0.0, 0
    try:
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            generator = torch.Generator().manual_seed(seed)
            collate_fn = collate(task, tokenizer, mlm_probability=mlm_probability, generator=generator)
            for chunk, inputs, out in run_model(
                model, features, collate_fn, batch_size=batch_size, device=device, precision=precision
            ):
                if out.loss is not None:
                    loss_sum += float(out.loss) * len(chunk)
                    loss_count += len(chunk)
                tally.add(chunk, inputs, out)
    finally:
        model.train(was_training)
    result: dict[str, float] = {}
    if loss_count:
        result["loss"] = loss_sum / loss_count
    result.update(tally.metrics())
    return result
