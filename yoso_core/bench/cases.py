"""What to run: one callable per implementation and length, at the attention and the model level."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..devices import torch_dtypes
from ..saved import ROBERTA_POSITION_OFFSET
from .config import BenchConfig, model_config

DTYPES = torch_dtypes()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def attention_impls(cfg: BenchConfig) -> list[tuple[str, str | None]]:
    """The attention-level implementations for ``cfg.device``, each with a reason when it cannot run."""
    from ..attention.backends import compiled_backend

    found: list[tuple[str, str | None]] = [("sdpa", None), ("yoso-e", None), ("yoso-reference", None)]
    backend, why = compiled_backend(cfg.device)
    found.append((f"yoso-{cfg.device}", None if backend is not None else why))
    return [(impl, why) for impl, why in found if cfg.impls is None or impl in cfg.impls]


def attention_inputs(cfg: BenchConfig, seq_len: int) -> tuple[torch.Tensor, ...]:
    """Seeded ``(batch, heads, seq, head_dim)`` unit-vector query and key, value and output gradient."""
    gen = torch.Generator().manual_seed(seq_len)
    shape = (cfg.batch, cfg.heads, seq_len, cfg.head_dim)
    q, k, v, g = (torch.randn(shape, generator=gen) for _ in range(4))
    q, k = torch.nn.functional.normalize(q, dim=-1), torch.nn.functional.normalize(k, dim=-1)
    dtype, device = DTYPES[cfg.dtype], torch.device(cfg.device)
    q, k, v, g = (t.to(device=device, dtype=dtype) for t in (q, k, v, g))
    if cfg.backward:
        q, k, v = (t.requires_grad_() for t in (q, k, v))
    return q, k, v, g


def attention_call(cfg: BenchConfig, impl: str, inputs: tuple[torch.Tensor, ...]) -> Callable[[], None]:
    """One forward (and backward with ``cfg.backward``) of ``impl`` on ``inputs``, synchronised."""
    from ..attention import yoso_attention

    q, k, v, g = inputs
    device = q.device
    if impl == "sdpa":

        def forward():
            return torch.nn.functional.scaled_dot_product_attention(q, k, v)
    elif impl == "yoso-e":

        def forward():
            return yoso_attention(q, k, v, hash_code_len=cfg.hash_code_len, expectation=True)
    else:
        backend = impl.removeprefix("yoso-")
        gen = torch.Generator(device=device).manual_seed(0)

        def forward():
            return yoso_attention(
                q,
                k,
                v,
                num_hash=cfg.num_hash,
                hash_code_len=cfg.hash_code_len,
                backend=backend,
                generator=gen,
            )

    if cfg.backward:

        def call():
            for t in (q, k, v):
                t.grad = None
            forward().backward(g)
            _sync(device)
    else:

        def call():
            with torch.no_grad():
                forward()
            _sync(device)

    return call


def _yoso_backend(device: str) -> str:
    from ..attention.backends import compiled_backend

    backend, _ = compiled_backend(device)
    return device if backend is not None else "reference"


def model_impls(cfg: BenchConfig) -> list[tuple[str, str | None]]:
    """The model-level implementations, each with a reason when it cannot run."""
    found: list[tuple[str, str | None]] = [("softmax", None), ("yoso", None)]
    try:
        from transformers import YosoModel  # noqa: F401

        found.append(("transformers-yoso", None))
    except ImportError as exc:
        found.append(("transformers-yoso", f"transformers' YosoModel cannot be imported: {exc}"))
    return [(impl, why) for impl, why in found if cfg.impls is None or impl in cfg.impls]


def model_note(cfg: BenchConfig, impl: str) -> str:
    """What exactly a model-level row runs."""
    if impl == "softmax":
        note = "transformers RobertaModel, SDPA attention, same hidden size, layers and heads"
    elif impl == "yoso":
        note = f"yoso_core YosoModel, sampled attention, {_yoso_backend(cfg.device)} backend"
    else:
        note = (
            "transformers YosoModel in its expectation mode (YOSO-E): its sampled mode has no CPU path "
            "and needs a CUDA kernel downloaded from the hub"
        )
    if cfg.backward:
        note += "; a training step: forward, backward, AdamW"
        if cfg.gradient_checkpointing:
            note += ", with gradient checkpointing"
    return note


def build_model(cfg: BenchConfig, impl: str, max_len: int) -> torch.nn.Module:
    """A randomly initialised model of the benchmarked size for ``impl``, on the device and dtype."""
    import transformers

    from ..modeling import YosoModel, enable_gradient_checkpointing

    config = model_config(cfg, max_len)
    torch.manual_seed(0)
    if impl == "yoso":
        model = YosoModel(config)
        model.set_attention_backend(_yoso_backend(cfg.device))
    else:
        shared = dict(
            vocab_size=config.vocab_size,
            hidden_size=config.hidden_size,
            num_hidden_layers=config.num_hidden_layers,
            num_attention_heads=config.num_attention_heads,
            intermediate_size=config.intermediate_size,
            hidden_act=config.hidden_act,
            hidden_dropout_prob=config.hidden_dropout_prob,
            attention_probs_dropout_prob=config.attention_probs_dropout_prob,
            type_vocab_size=config.type_vocab_size,
            layer_norm_eps=config.layer_norm_eps,
        )
        if impl == "softmax":
            # RoBERTa's position ids start at 2 like YOSO's, so its table needs two more rows.
            theirs = transformers.RobertaConfig(
                **shared, max_position_embeddings=config.max_position_embeddings + ROBERTA_POSITION_OFFSET
            )
            model = transformers.RobertaModel._from_config(theirs, attn_implementation="sdpa")
        else:
            theirs = transformers.YosoConfig(
                **shared,
                max_position_embeddings=config.max_position_embeddings,
                use_expectation=True,
                hash_code_len=config.hash_code_len,
                num_hash=cfg.num_hash,
            )
            model = transformers.YosoModel(theirs)
    if cfg.gradient_checkpointing:  # as `yoso pretrain --gradient-checkpointing` trains
        enable_gradient_checkpointing(model)
    return model.to(device=cfg.device, dtype=DTYPES[cfg.dtype])


def model_call(cfg: BenchConfig, model: torch.nn.Module, seq_len: int) -> Callable[[], None]:
    """One forward (or training step: forward, backward of the mean squared output, AdamW) on seeded ids."""
    device = torch.device(cfg.device)
    gen = torch.Generator().manual_seed(seq_len)
    vocab = model.config.vocab_size
    ids = torch.randint(3, vocab, (cfg.batch, seq_len), generator=gen).to(device)
    mask = torch.ones(cfg.batch, seq_len, dtype=torch.long, device=device)
    if cfg.backward:
        model.train()
        # Its moments are allocated by the first step, so a step measured alone counts them.
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)

        def call():
            optimizer.zero_grad(set_to_none=True)
            out = model(input_ids=ids, attention_mask=mask).last_hidden_state
            out.float().pow(2).mean().backward()
            optimizer.step()
            _sync(device)
    else:
        model.eval()

        def call():
            with torch.no_grad():
                model(input_ids=ids, attention_mask=mask)
            _sync(device)

    return call


def make_call(
    cfg: BenchConfig, level: str, impl: str, seq_len: int, inputs: tuple[torch.Tensor, ...] | None = None
) -> Callable[[], None]:
    """The callable of ``impl`` at ``seq_len``; attention ones run on ``inputs`` when given (shared)."""
    if level == "attention":
        return attention_call(cfg, impl, inputs if inputs is not None else attention_inputs(cfg, seq_len))
    return model_call(cfg, build_model(cfg, impl, max(cfg.seq_len)), seq_len)
