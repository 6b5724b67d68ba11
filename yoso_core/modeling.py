"""The YOSO encoder and its five task heads.

Module structure and parameter names equal transformers' Yoso classes, so checkpoints load both
ways. Differences, all deliberate:

- padding masks are exact: a padded key adds nothing and a padded query reads nothing, so padding
  never changes a real token's output (transformers 5.x ignores the mask);
- sampled attention runs on any device through ``yoso_attention`` (compiled kernel or reference);
- with ``output_attentions=True`` the returned attentions are the YOSO-E weight matrices
  ``(batch, heads, seq, seq)`` in float32 (for sampled models, the expectation of the sampled
  weights), where transformers returns the context layer. They are on the autograd graph, with
  YOSO-E's surrogate backward: in expectation mode the layer's output is computed from them, so
  gradients of the output reach them (attention attribution); in sampled mode the output comes
  from the hash buckets and the weights are a side output whose own gradients reach Q and K;
- float16 models run attention and its normalisations in float32 and cast the result back
  (in float16 the normalisation's epsilon 1e-12 is 0, so an all-zero padded row became NaN);
- a sequence longer than ``max_position_embeddings`` raises ValueError, not an index error.

As in transformers:

- a configuration whose fields do not fit together (``hidden_size`` not divisible by
  ``num_attention_heads``) is refused when a model is built, not when the configuration is;
- ``config.chunk_size_feed_forward`` runs the feed-forward block that many positions at a time;
- layers are ``GradientCheckpointingLayer``s: ``gradient_checkpointing_enable`` honours its
  ``gradient_checkpointing_kwargs`` (``use_reentrant``) and ``every_n_layers``.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import BCEWithLogitsLoss, CrossEntropyLoss, MSELoss
from transformers import PreTrainedModel
from transformers.activations import ACT2FN
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import (
    BaseModelOutputWithCrossAttentions,
    MaskedLMOutput,
    MultipleChoiceModelOutput,
    QuestionAnsweringModelOutput,
    SequenceClassifierOutput,
    TokenClassifierOutput,
)
from transformers.pytorch_utils import apply_chunking_to_forward

from .attention import yoso_attention
from .attention.expectation import ExpectationWeights
from .config import YosoConfig, check_model_config
from .positions import POSITION_OFFSET


class YosoEmbeddings(nn.Module):
    """Word + position + token-type embeddings; position ids start at ``POSITION_OFFSET``, as in RoBERTa."""

    def __init__(self, config: YosoConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(
            config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id
        )
        rows = config.max_position_embeddings + POSITION_OFFSET  # rows 0-1 never read, as in RoBERTa
        self.position_embeddings = nn.Embedding(rows, config.hidden_size)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.register_buffer(
            "position_ids",
            torch.arange(config.max_position_embeddings).expand((1, -1)) + POSITION_OFFSET,
            persistent=False,
        )

    def forward(self, input_ids=None, token_type_ids=None, position_ids=None, inputs_embeds=None):
        input_shape = input_ids.shape if input_ids is not None else inputs_embeds.shape[:-1]
        seq_length = input_shape[1]
        if position_ids is None:
            position_ids = self.position_ids[:, :seq_length]
        if token_type_ids is None:
            token_type_ids = torch.zeros(input_shape, dtype=torch.long, device=self.position_ids.device)
        if inputs_embeds is None:
            inputs_embeds = self.word_embeddings(input_ids)
        embeddings = inputs_embeds + self.token_type_embeddings(token_type_ids)
        embeddings = embeddings + self.position_embeddings(position_ids)
        return self.dropout(self.LayerNorm(embeddings))


class YosoSelfAttention(nn.Module):
    """YOSO-E or sampled YOSO attention, per-head L2-normalised output, optional YOSO-C convolution."""

    def __init__(self, config: YosoConfig):
        super().__init__()
        self.num_attention_heads = config.num_attention_heads
        self.attention_head_size = config.hidden_size // config.num_attention_heads
        self.all_head_size = self.num_attention_heads * self.attention_head_size
        self.query = nn.Linear(config.hidden_size, self.all_head_size)
        self.key = nn.Linear(config.hidden_size, self.all_head_size)
        self.value = nn.Linear(config.hidden_size, self.all_head_size)
        self.dropout = nn.Dropout(config.attention_probs_dropout_prob)  # unused, as in transformers
        self.use_expectation = config.use_expectation
        self.hash_code_len = config.hash_code_len
        self.num_hash = config.num_hash
        self.use_fast_hash = config.use_fast_hash
        self.lsh_backward = config.lsh_backward
        self.use_conv = config.conv_window is not None
        # Which sampled-attention implementation to run; see yoso_core.attention.BACKENDS.
        self.backend = "auto"
        if self.use_conv:
            self.conv = nn.Conv2d(
                in_channels=config.num_attention_heads,
                out_channels=config.num_attention_heads,
                kernel_size=(config.conv_window, 1),
                padding=(config.conv_window // 2, 0),
                bias=False,
                groups=config.num_attention_heads,
            )

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape  # (batch, seq, hidden) -> (batch, heads, seq, head_dim)
        return x.view(b, n, self.num_attention_heads, self.attention_head_size).transpose(1, 2)

    def forward(self, hidden_states, attention_mask, output_attentions=False):
        query = self._heads(self.query(hidden_states))
        key = self._heads(self.key(hidden_states))
        value = self._heads(self.value(hidden_states))
        out_dtype = value.dtype
        mask = attention_mask.to(out_dtype)  # (batch, seq), 1 = token
        if self.use_conv:
            conv_value = self.conv(value * mask[:, None, :, None])
        if out_dtype == torch.float16:
            # float16 cannot hold the normalisation's epsilon nor a long row's raw cumulation.
            query, key, value, mask = query.float(), key.float(), value.float(), mask.float()
        # Sampled hashing is scale-invariant, so inference skips normalising Q and K as the paper's
        # code does; the expectation and every training step need unit vectors.
        unit = self.use_expectation or self.training
        if unit:
            query = nn.functional.normalize(query, p=2, dim=-1)
            key = nn.functional.normalize(key, p=2, dim=-1)
        weights = None
        if output_attentions:
            weights = ExpectationWeights.apply(
                query if unit else nn.functional.normalize(query, p=2, dim=-1),
                key if unit else nn.functional.normalize(key, p=2, dim=-1),
                mask,
                self.hash_code_len,
            )
        if weights is not None and self.use_expectation:
            # the same A V as yoso_attention's YOSO-E, computed from the weights that are returned
            context = torch.matmul(weights, value.float()).to(value.dtype)
        else:
            context = yoso_attention(
                query,
                key,
                value,
                mask,
                num_hash=self.num_hash,
                hash_code_len=self.hash_code_len,
                expectation=self.use_expectation,
                fast_hash=self.use_fast_hash,
                lsh_backward=self.lsh_backward,
                backend=self.backend,
            )
        context = nn.functional.normalize(context, p=2, dim=-1)
        if self.use_conv:
            context = context + conv_value
        b, h, n, d = context.shape
        context = context.permute(0, 2, 1, 3).reshape(b, n, h * d).to(out_dtype)
        return (context,) if weights is None else (context, weights)


class YosoSelfOutput(nn.Module):
    def __init__(self, config: YosoConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states, input_tensor):
        return self.LayerNorm(self.dropout(self.dense(hidden_states)) + input_tensor)


class YosoAttention(nn.Module):
    def __init__(self, config: YosoConfig):
        super().__init__()
        self.self = YosoSelfAttention(config)
        self.output = YosoSelfOutput(config)

    def forward(self, hidden_states, attention_mask, output_attentions=False):
        self_outputs = self.self(hidden_states, attention_mask, output_attentions)
        return (self.output(self_outputs[0], hidden_states),) + self_outputs[1:]


class YosoIntermediate(nn.Module):
    def __init__(self, config: YosoConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)
        self.intermediate_act_fn = ACT2FN[config.hidden_act]

    def forward(self, hidden_states):
        return self.intermediate_act_fn(self.dense(hidden_states))


class YosoOutput(nn.Module):
    def __init__(self, config: YosoConfig):
        super().__init__()
        self.dense = nn.Linear(config.intermediate_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states, input_tensor):
        return self.LayerNorm(self.dropout(self.dense(hidden_states)) + input_tensor)


class YosoLayer(GradientCheckpointingLayer):
    """Attention then feed-forward; checkpointed by transformers' mechanism when it is enabled.

    The feed-forward block runs in chunks of ``config.chunk_size_feed_forward`` positions (0: at once).
    """

    def __init__(self, config: YosoConfig):
        super().__init__()
        self.chunk_size_feed_forward = config.chunk_size_feed_forward
        self.seq_len_dim = 1
        self.attention = YosoAttention(config)
        self.intermediate = YosoIntermediate(config)
        self.output = YosoOutput(config)

    def forward(self, hidden_states, attention_mask, output_attentions=False):
        attention_outputs = self.attention(hidden_states, attention_mask, output_attentions)
        attention_output = attention_outputs[0]
        layer_output = apply_chunking_to_forward(
            self.feed_forward_chunk, self.chunk_size_feed_forward, self.seq_len_dim, attention_output
        )
        return (layer_output,) + attention_outputs[1:]

    def feed_forward_chunk(self, attention_output):
        """The feed-forward block on a slice of positions (it is position-wise)."""
        return self.output(self.intermediate(attention_output), attention_output)


class YosoEncoder(nn.Module):
    def __init__(self, config: YosoConfig):
        super().__init__()
        self.config = config
        self.layer = nn.ModuleList([YosoLayer(config) for _ in range(config.num_hidden_layers)])

    def forward(self, hidden_states, attention_mask, output_attentions=False, output_hidden_states=False):
        all_hidden_states = () if output_hidden_states else None
        all_attentions = () if output_attentions else None
        for layer in self.layer:
            if output_hidden_states:
                all_hidden_states += (hidden_states,)
            # positional, so that reentrant checkpointing sees the tensors that need gradients
            outputs = layer(hidden_states, attention_mask, output_attentions)
            hidden_states = outputs[0]
            if output_attentions:
                all_attentions += (outputs[1],)
        if output_hidden_states:
            all_hidden_states += (hidden_states,)
        return BaseModelOutputWithCrossAttentions(
            last_hidden_state=hidden_states, hidden_states=all_hidden_states, attentions=all_attentions
        )


class YosoPredictionHeadTransform(nn.Module):
    def __init__(self, config: YosoConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.transform_act_fn = ACT2FN[config.hidden_act]
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, hidden_states):
        return self.LayerNorm(self.transform_act_fn(self.dense(hidden_states)))


class YosoLMPredictionHead(nn.Module):
    def __init__(self, config: YosoConfig):
        super().__init__()
        self.transform = YosoPredictionHeadTransform(config)
        self.decoder = nn.Linear(config.hidden_size, config.vocab_size, bias=True)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))

    def forward(self, hidden_states):
        return self.decoder(self.transform(hidden_states))


class YosoOnlyMLMHead(nn.Module):
    def __init__(self, config: YosoConfig):
        super().__init__()
        self.predictions = YosoLMPredictionHead(config)

    def forward(self, sequence_output):
        return self.predictions(sequence_output)


class YosoPreTrainedModel(PreTrainedModel):
    """Weight initialisation and loading shared by every YOSO model."""

    config_class = YosoConfig
    config: YosoConfig
    base_model_prefix = "yoso"
    supports_gradient_checkpointing = True

    def __init__(self, config: YosoConfig, *inputs, **kwargs):
        check_model_config(config)
        super().__init__(config, *inputs, **kwargs)

    def _resolve_return_dict(self, return_dict: bool | None) -> bool:
        """The ``return_dict`` of a call: the argument, else the config's."""
        return self.config.return_dict if return_dict is None else return_dict

    def _encode(self, **inputs):
        """The encoder's output (always a ``BaseModelOutput``) that every head starts from.

        ``inputs`` are the head's keyword arguments for the base model (``input_ids``,
        ``attention_mask``, ``token_type_ids``, ``position_ids``, ``inputs_embeds``,
        ``output_attentions``, ``output_hidden_states``), passed on by name as transformers' own
        heads pass them; ``return_dict`` is the head's to apply (``_result``).
        """
        return self.yoso(**inputs, return_dict=True)

    def _result(self, output_class, return_dict: bool, loss, outputs, **fields):
        """A head's return value: ``output_class(loss, **fields, hidden_states, attentions)``, or
        with ``return_dict`` False its tuple (``fields`` in order, then the encoder's extras; the
        loss first when there is one)."""
        if not return_dict:
            return _with_loss(loss, tuple(fields.values()) + outputs.to_tuple()[1:])
        return output_class(
            loss=loss, **fields, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )

    def set_attention_backend(self, backend: str) -> None:
        """Run every attention layer on ``backend`` (``"auto"``, ``"reference"`` or a compiled one)."""
        for module in self.modules():
            if isinstance(module, YosoSelfAttention):
                module.backend = backend

    @torch.no_grad()
    def _init_weights(self, module: nn.Module):
        std = self.config.initializer_range
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            module.weight.normal_(mean=0.0, std=std)
            if module.bias is not None:
                module.bias.zero_()
        elif isinstance(module, nn.Embedding):
            module.weight.normal_(mean=0.0, std=std)
            if module.padding_idx is not None:
                module.weight[module.padding_idx].zero_()
        elif isinstance(module, nn.LayerNorm):
            module.weight.fill_(1.0)
            module.bias.zero_()
        elif isinstance(module, YosoLMPredictionHead):
            module.bias.zero_()
        elif isinstance(module, YosoEmbeddings):
            n = module.position_ids.shape[-1]
            ids = torch.arange(n, device=module.position_ids.device).expand((1, -1)) + POSITION_OFFSET
            module.position_ids.copy_(ids)


class YosoModel(YosoPreTrainedModel):
    """The bare YOSO encoder: embeddings and ``num_hidden_layers`` YOSO layers."""

    def __init__(self, config: YosoConfig):
        super().__init__(config)
        self.config = config
        self.embeddings = YosoEmbeddings(config)
        self.encoder = YosoEncoder(config)
        self.post_init()

    def get_input_embeddings(self):
        return self.embeddings.word_embeddings

    def set_input_embeddings(self, value):
        self.embeddings.word_embeddings = value

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        token_type_ids=None,
        position_ids=None,
        inputs_embeds=None,
        output_attentions=None,
        output_hidden_states=None,
        return_dict=None,
        **kwargs,
    ):
        output_attentions = self.config.output_attentions if output_attentions is None else output_attentions
        output_hidden_states = (
            self.config.output_hidden_states if output_hidden_states is None else output_hidden_states
        )
        return_dict = self._resolve_return_dict(return_dict)
        if input_ids is not None and inputs_embeds is not None:
            raise ValueError("You cannot specify both input_ids and inputs_embeds at the same time")
        if input_ids is not None:
            input_shape, device = input_ids.shape, input_ids.device
        elif inputs_embeds is not None:
            input_shape, device = inputs_embeds.shape[:-1], inputs_embeds.device
        else:
            raise ValueError("You have to specify either input_ids or inputs_embeds")
        if len(input_shape) != 2:
            raise ValueError(f"input_ids must have shape (batch, seq), got {tuple(input_shape)}")
        batch_size, seq_length = input_shape
        limit = self.config.max_position_embeddings
        if position_ids is None and seq_length > limit:
            raise ValueError(
                f"sequence length {seq_length} exceeds max_position_embeddings {limit}; truncate the input "
                f"or extend the position table (yoso convert --max-position-embeddings)"
            )
        if attention_mask is None:
            attention_mask = torch.ones(batch_size, seq_length, device=device)
        elif tuple(attention_mask.shape) != (batch_size, seq_length):
            raise ValueError(
                f"attention_mask must have shape {(batch_size, seq_length)} like the input, "
                f"got {tuple(attention_mask.shape)}"
            )
        embedding_output = self.embeddings(
            input_ids=input_ids,
            position_ids=position_ids,
            token_type_ids=token_type_ids,
            inputs_embeds=inputs_embeds,
        )
        outputs = self.encoder(embedding_output, attention_mask, output_attentions, output_hidden_states)
        if not return_dict:
            return tuple(
                v
                for v in (outputs.last_hidden_state, outputs.hidden_states, outputs.attentions)
                if v is not None
            )
        return outputs


def _with_loss(loss, output_tuple):
    return ((loss,) + output_tuple) if loss is not None else output_tuple


class YosoForMaskedLM(YosoPreTrainedModel):
    """YOSO with the masked-language-modelling head (decoder tied to the word embeddings)."""

    _tied_weights_keys = {
        "cls.predictions.decoder.bias": "cls.predictions.bias",
        "cls.predictions.decoder.weight": "yoso.embeddings.word_embeddings.weight",
    }

    def __init__(self, config: YosoConfig):
        super().__init__(config)
        self.yoso = YosoModel(config)
        self.cls = YosoOnlyMLMHead(config)
        self.post_init()

    def get_output_embeddings(self):
        return self.cls.predictions.decoder

    def set_output_embeddings(self, new_embeddings):
        self.cls.predictions.decoder = new_embeddings
        self.cls.predictions.bias = new_embeddings.bias

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        token_type_ids=None,
        position_ids=None,
        inputs_embeds=None,
        labels=None,
        output_attentions=None,
        output_hidden_states=None,
        return_dict=None,
        **kwargs,
    ):
        return_dict = self._resolve_return_dict(return_dict)
        outputs = self._encode(
            input_ids=input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
        )
        logits = self.cls(outputs.last_hidden_state)
        loss = None
        if labels is not None:
            loss = CrossEntropyLoss()(logits.view(-1, self.config.vocab_size), labels.view(-1))
        return self._result(MaskedLMOutput, return_dict, loss, outputs, logits=logits)


class YosoClassificationHead(nn.Module):
    """Sentence-level head on the first token's state."""

    def __init__(self, config: YosoConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.out_proj = nn.Linear(config.hidden_size, config.num_labels)
        self.config = config

    def forward(self, features, **kwargs):
        x = self.dropout(features[:, 0, :])
        x = ACT2FN[self.config.hidden_act](self.dense(x))
        return self.out_proj(self.dropout(x))


class YosoForSequenceClassification(YosoPreTrainedModel):
    """YOSO with a classification (or regression) head on the first token."""

    def __init__(self, config: YosoConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.yoso = YosoModel(config)
        self.classifier = YosoClassificationHead(config)
        self.post_init()

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        token_type_ids=None,
        position_ids=None,
        inputs_embeds=None,
        labels=None,
        output_attentions=None,
        output_hidden_states=None,
        return_dict=None,
        **kwargs,
    ):
        return_dict = self._resolve_return_dict(return_dict)
        outputs = self._encode(
            input_ids=input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
        )
        logits = self.classifier(outputs.last_hidden_state)
        loss = None
        if labels is not None:
            if self.config.problem_type is None:
                if self.num_labels == 1:
                    self.config.problem_type = "regression"
                elif labels.dtype in (torch.long, torch.int):
                    self.config.problem_type = "single_label_classification"
                else:
                    self.config.problem_type = "multi_label_classification"
            if self.config.problem_type == "regression":
                loss = (
                    MSELoss()(logits.squeeze(), labels.squeeze())
                    if self.num_labels == 1
                    else MSELoss()(logits, labels)
                )
            elif self.config.problem_type == "single_label_classification":
                loss = CrossEntropyLoss()(logits.view(-1, self.num_labels), labels.view(-1))
            else:
                loss = BCEWithLogitsLoss()(logits, labels)
        return self._result(SequenceClassifierOutput, return_dict, loss, outputs, logits=logits)


class YosoForMultipleChoice(YosoPreTrainedModel):
    """YOSO scoring each of ``num_choices`` sequences; inputs ``(batch, num_choices, seq)``."""

    def __init__(self, config: YosoConfig):
        super().__init__(config)
        self.yoso = YosoModel(config)
        self.pre_classifier = nn.Linear(config.hidden_size, config.hidden_size)
        self.classifier = nn.Linear(config.hidden_size, 1)
        self.post_init()

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        token_type_ids=None,
        position_ids=None,
        inputs_embeds=None,
        labels=None,
        output_attentions=None,
        output_hidden_states=None,
        return_dict=None,
        **kwargs,
    ):
        return_dict = self._resolve_return_dict(return_dict)
        num_choices = input_ids.shape[1] if input_ids is not None else inputs_embeds.shape[1]

        def flat(t):  # (batch, choices, seq, ...) -> (batch*choices, seq, ...)
            return None if t is None else t.reshape(-1, *t.shape[2:])

        outputs = self._encode(
            input_ids=flat(input_ids),
            attention_mask=flat(attention_mask),
            token_type_ids=flat(token_type_ids),
            position_ids=flat(position_ids),
            inputs_embeds=flat(inputs_embeds),
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
        )
        pooled = nn.functional.relu(self.pre_classifier(outputs.last_hidden_state[:, 0]))
        logits = self.classifier(pooled).view(-1, num_choices)
        loss = CrossEntropyLoss()(logits, labels) if labels is not None else None
        return self._result(MultipleChoiceModelOutput, return_dict, loss, outputs, logits=logits)


class YosoForTokenClassification(YosoPreTrainedModel):
    """YOSO with a per-token classification head."""

    def __init__(self, config: YosoConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.yoso = YosoModel(config)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        token_type_ids=None,
        position_ids=None,
        inputs_embeds=None,
        labels=None,
        output_attentions=None,
        output_hidden_states=None,
        return_dict=None,
        **kwargs,
    ):
        return_dict = self._resolve_return_dict(return_dict)
        outputs = self._encode(
            input_ids=input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
        )
        logits = self.classifier(self.dropout(outputs.last_hidden_state))
        loss = None
        if labels is not None:
            loss_fct = CrossEntropyLoss()
            flat_labels = labels.view(-1)
            if attention_mask is not None:
                flat_labels = torch.where(
                    attention_mask.view(-1) == 1,
                    flat_labels,
                    torch.full_like(flat_labels, loss_fct.ignore_index),
                )
            loss = loss_fct(logits.view(-1, self.num_labels), flat_labels)
        return self._result(TokenClassifierOutput, return_dict, loss, outputs, logits=logits)


class YosoForQuestionAnswering(YosoPreTrainedModel):
    """YOSO with extractive span start/end logits."""

    def __init__(self, config: YosoConfig):
        super().__init__(config)
        config.num_labels = 2
        self.num_labels = config.num_labels
        self.yoso = YosoModel(config)
        self.qa_outputs = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        token_type_ids=None,
        position_ids=None,
        inputs_embeds=None,
        start_positions=None,
        end_positions=None,
        output_attentions=None,
        output_hidden_states=None,
        return_dict=None,
        **kwargs,
    ):
        return_dict = self._resolve_return_dict(return_dict)
        outputs = self._encode(
            input_ids=input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
        )
        logits = self.qa_outputs(outputs.last_hidden_state)
        start_logits, end_logits = (t.squeeze(-1) for t in logits.split(1, dim=-1))
        loss = None
        if start_positions is not None and end_positions is not None:
            ignored = start_logits.size(1)  # positions outside the input are ignored
            start_positions = start_positions.reshape(-1).clamp(0, ignored)
            end_positions = end_positions.reshape(-1).clamp(0, ignored)
            loss_fct = CrossEntropyLoss(ignore_index=ignored)
            loss = (loss_fct(start_logits, start_positions) + loss_fct(end_logits, end_positions)) / 2
        return self._result(
            QuestionAnsweringModelOutput,
            return_dict,
            loss,
            outputs,
            start_logits=start_logits,
            end_logits=end_logits,
        )


TASK_MODELS = {
    "mlm": YosoForMaskedLM,
    "classification": YosoForSequenceClassification,
    "multiple-choice": YosoForMultipleChoice,
    "token-classification": YosoForTokenClassification,
    "qa": YosoForQuestionAnswering,
}


def enable_gradient_checkpointing(model: PreTrainedModel, **checkpoint_kwargs) -> None:
    """Checkpoint every layer of ``model`` (ours or transformers' RoBERTa) by transformers' mechanism.

    Non-reentrant checkpointing restores the RNG state before it recomputes a layer, so sampled
    attention hashes with the functions the forward drew and dropout keeps its masks: the gradients
    equal those of an unchecked step. ``checkpoint_kwargs`` go to ``torch.utils.checkpoint``.
    """
    kwargs = {"use_reentrant": False, **checkpoint_kwargs}
    if hasattr(model, "activation_checkpointing_enable"):  # newer transformers; the old name warns there
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)


def is_gradient_checkpointing(model: PreTrainedModel) -> bool:
    """Whether any layer of ``model`` (ours or transformers' RoBERTa) is checkpointed.

    transformers' own property: ``is_activation_checkpointing`` where it has it (newer releases,
    where the old ``is_gradient_checkpointing`` warns), else ``is_gradient_checkpointing``.
    """
    if hasattr(type(model), "is_activation_checkpointing"):
        return model.is_activation_checkpointing
    return model.is_gradient_checkpointing
