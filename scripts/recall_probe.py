"""Train one model on fresh builtin:recall records every step (no fixed training set) and print its
learning curve: the calibration probe of docs/quality.md.

`scripts/compare.py` trains on a fixed set of records, as a user's run would; with a few thousand
records a small model can memorise them instead of learning to look values up. This probe draws
new records for every batch, so it measures how fast an architecture learns the lookup itself.
Words map to token ids one to one (no tokenizer), so a record is exactly ``--seq-len`` tokens.

    .venv/bin/python scripts/recall_probe.py --attention softmax --seq-len 128 --steps 2000
    .venv/bin/python scripts/recall_probe.py --attention sampled --conv-window 3 --seq-len 512
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time

import torch

from yoso_core.data import recall
from yoso_core.modeling import YosoSelfAttention as YosoSelfAttentionBase
from yoso_core.sizes import auto_hash_code_len, size_config, softmax_config

SPECIALS = 5  # <s> <pad> </s> <unk> <mask>, as the trained tokenizers number them


def batch(seed: str, count: int, seq_len: int, shape: recall.RecallShape) -> tuple[torch.Tensor, ...]:
    """``count`` fresh records as (input_ids, labels); labels are value indices at queries, -100 elsewhere."""
    words = {w: SPECIALS + i for i, w in enumerate(recall.vocabulary(shape))}
    values = {w: i for i, w in enumerate(recall.value_words(shape))}
    records = recall.generate(seed, count, seq_len, **dataclasses.asdict(shape))
    ids = torch.tensor([[0, *(words[w] for w in r["tokens"]), 2] for r in records])
    tags = [[-100, *(-100 if t is None else values[t] for t in r["tags"]), -100] for r in records]
    return ids, torch.tensor(tags)


def parse_stage(text: str) -> tuple[int, int, int | None]:
    """``"128:1500:32"`` -> (128, 1500, 32): a curriculum stage's length, steps and batch size."""
    parts = text.split(":")
    try:
        numbers = [int(p) for p in parts]
    except ValueError:
        numbers = []
    if len(numbers) not in (2, 3) or min(numbers) < 1:
        raise ValueError(f"a warm-up stage is SEQ_LEN:STEPS[:BATCH] with positive integers, got {text!r}")
    return numbers[0], numbers[1], numbers[2] if len(numbers) == 3 else None


def stage_shape(final: recall.RecallShape, seq_len: int, final_len: int) -> recall.RecallShape:
    """A shorter stage's records: the final keys and values, pairs scaled to the stage's length."""
    pairs = max(1, final.pairs * seq_len // final_len)
    return recall.recall_shape(seq_len, pairs=pairs, keys=final.keys, values=final.values)


def build(args, shape: recall.RecallShape) -> torch.nn.Module:
    """A from-scratch model of ``--model`` size with the chosen attention and ``values`` labels."""
    common = dict(
        vocab_size=SPECIALS + len(recall.vocabulary(shape)),
        max_position_embeddings=args.seq_len,
        num_labels=shape.values,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    sizes = {k: v for k, v in (("hidden_size", args.hidden_size), ("num_hidden_layers", args.layers)) if v}
    common.update(sizes)
    if args.attention == "softmax":
        from transformers import RobertaForTokenClassification

        config = softmax_config(args.model, **common)
        config._attn_implementation = "sdpa"
        return RobertaForTokenClassification(config)
    from yoso_core import YosoForTokenClassification

    config = size_config(
        args.model,
        **common,
        use_expectation=args.attention == "expectation",
        num_hash=args.num_hash,
        hash_code_len=args.hash_code_len or auto_hash_code_len(args.seq_len),
        conv_window=args.conv_window,
        lsh_backward=args.lsh_backward,
    )
    model = YosoForTokenClassification(config)
    if args.attention == "softmax-conv":
        for layer in model.yoso.encoder.layer:
            layer.attention.self.__class__ = SoftmaxConvAttention
    return model


DIAGNOSE: dict[str, float] = {}  # --diagnose: which of YOSO's traits the softmax-conv layer takes on


class SoftmaxConvAttention(YosoSelfAttentionBase):
    """The YOSO-C layer with exact softmax in place of YOSO: same projections, same convolution."""

    def forward(self, hidden_states, attention_mask, output_attentions=False):
        query, key, value = (self._heads(f(hidden_states)) for f in (self.query, self.key, self.value))
        mask = attention_mask.to(value.dtype)
        blocked = (1.0 - mask)[:, None, None, :] * torch.finfo(value.dtype).min
        scale = None
        if DIAGNOSE.get("cosine"):  # unit queries and keys at a fixed temperature, as YOSO sees them
            query = torch.nn.functional.normalize(query, dim=-1)
            key = torch.nn.functional.normalize(key, dim=-1)
            scale = DIAGNOSE["cosine"]
        context = torch.nn.functional.scaled_dot_product_attention(
            query, key, value, attn_mask=blocked, scale=scale
        )
        if DIAGNOSE.get("output_norm"):  # YOSO's per-head normalisation of the attention output
            context = torch.nn.functional.normalize(context, dim=-1)
        if self.use_conv:
            context = context + self.conv(value * mask[:, None, :, None])
        b, h, n, d = context.shape
        return (context.permute(0, 2, 1, 3).reshape(b, n, h * d),)


def main(argv: list[str] | None = None) -> int:
    """Train, evaluating every ``--eval-every`` steps on a fixed held-out batch; JSON lines on stdout."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--attention", choices=("softmax", "softmax-conv", "sampled", "expectation"), default="softmax"
    )
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--pairs", type=int)
    parser.add_argument("--keys", type=int)
    parser.add_argument("--values", type=int)
    parser.add_argument("--hidden-size", type=int)
    parser.add_argument("--layers", type=int)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--warmup-steps", type=int, default=100)
    parser.add_argument("--num-hash", type=int, default=32)
    parser.add_argument("--hash-code-len", type=int)
    parser.add_argument("--conv-window", type=int)
    parser.add_argument(
        "--lsh-backward",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="sampled YOSO's LSH backward (default) or, with --no-lsh-backward, YOSO-E's surrogate backward",
    )
    parser.add_argument(
        "--warmup-stages",
        nargs="*",
        default=[],
        metavar="SEQ_LEN:STEPS[:BATCH]",
        help="a short-to-long curriculum: train this many steps on shorter records first (same keys "
        "and values; pairs in proportion to the length), then --steps at --seq-len",
    )
    parser.add_argument(
        "--diagnose",
        nargs="*",
        default=[],
        metavar="TRAIT[=VALUE]",
        help="softmax-conv only: output_norm (YOSO's normalised output), cosine=T (unit queries and "
        "keys, logits T cos)",
    )
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--eval-records", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for trait in args.diagnose:
        name, _, value = trait.partition("=")
        if name not in ("output_norm", "cosine"):
            parser.error(f"--diagnose: unknown trait {name!r}; choose output_norm or cosine=T")
        DIAGNOSE[name] = float(value or 1)
    shape = recall.recall_shape(args.seq_len, pairs=args.pairs, keys=args.keys, values=args.values)
    try:
        stages = [*map(parse_stage, args.warmup_stages), (args.seq_len, args.steps, args.batch_size)]
    except ValueError as exc:
        parser.error(str(exc))
    plan = [
        (n, batch_size or args.batch_size, stage_shape(shape, n, args.seq_len))
        for n, steps, batch_size in stages
        for _ in range(steps)
    ]
    torch.manual_seed(args.seed)
    model = build(args, shape)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate, weight_decay=0.01)
    warmup, total = args.warmup_steps, len(plan)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / warmup) * max(0.0, 1 - s / total)
    )
    held_ids, held_labels = batch(f"{args.seed}-probe-validation", args.eval_records, args.seq_len, shape)
    queries = held_labels != -100
    config = model.config
    header = {
        "settings": vars(args),
        "chance": shape.chance,
        "pairs": shape.pairs,
        "hash_code_len": getattr(config, "hash_code_len", None)
        if args.attention in ("sampled", "expectation")
        else None,
        "num_hash": config.num_hash if args.attention == "sampled" else None,
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    print(json.dumps(header), flush=True)
    seconds, tokens = 0.0, 0
    for step, (seq_len, batch_size, step_shape) in enumerate(plan, start=1):
        ids, labels = batch(f"{args.seed}-probe-{step}", batch_size, seq_len, step_shape)
        start = time.perf_counter()
        loss = model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        seconds += time.perf_counter() - start
        tokens += ids.numel()
        value = loss.item()
        if not math.isfinite(value):
            print(f"error: the loss became {value} at step {step}", file=sys.stderr)
            return 1
        if step % args.eval_every == 0 or step == total:
            model.eval()
            with torch.no_grad():
                logits = model(input_ids=held_ids, attention_mask=torch.ones_like(held_ids)).logits
            model.train()
            accuracy = float((logits.argmax(-1)[queries] == held_labels[queries]).float().mean())
            row = {"step": step, "seq_len": seq_len, "loss": round(value, 4), "accuracy": round(accuracy, 4)}
            print(json.dumps({**row, "train_seconds": round(seconds, 1), "train_tokens": tokens}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
