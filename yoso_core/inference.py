"""Running a model over encoded features in batches: what evaluation and prediction share.

``run_model`` feeds features to a model batch by batch (no gradients, under ``--precision``'s
autocast) and ``feature_outputs`` splits each batch's outputs into one dict per feature, the form
``yoso_core.data.decode`` takes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn


def autocast(device: torch.device, precision: str):
    """The autocast context of ``--precision`` (bf16) on ``device``; a no-op for fp32."""
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


@torch.no_grad()
def run_model(
    model: nn.Module,
    features: Sequence[dict],
    collate_fn: Callable,
    *,
    batch_size: int,
    device: torch.device,
    precision: str = "fp32",
):
    """Yield ``(features_of_batch, model_inputs, outputs)`` for each batch, in feature order."""
    for start in range(0, len(features), batch_size):
        chunk = features[start : start + batch_size]
        inputs = {k: v.to(device) for k, v in collate_fn(list(chunk)).items()}
        with autocast(device, precision):
            outputs = model(**inputs)
        yield chunk, inputs, outputs


def feature_outputs(task: str, features: Sequence[dict], out: Any) -> list[dict]:
    """Split a batch of model outputs into one dict of numpy arrays per feature (what ``decode`` takes).

    Padding is trimmed: to the feature's tokens (qa, mlm, token-classification) or choices.
    """
    result = []
    for i, feature in enumerate(features):
        n = len(feature["input_ids"])  # tokens; choices for multiple-choice
        if task == "qa":
            result.append(
                {
                    "start_logits": out.start_logits[i, :n].float().cpu().numpy(),
                    "end_logits": out.end_logits[i, :n].float().cpu().numpy(),
                }
            )
        elif task in ("mlm", "token-classification", "multiple-choice"):
            result.append({"logits": out.logits[i, :n].float().cpu().numpy()})
        else:
            result.append({"logits": out.logits[i].float().cpu().numpy()})
    return result
