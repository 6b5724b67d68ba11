"""`yoso convert`: every source kind built here in tiny form, converted and compared."""

from __future__ import annotations

import json
import re

import pytest
import torch
import transformers
from helpers import TINY
from safetensors.torch import load_file, save_file
from torch import nn
from typer.testing import CliRunner

import yoso_core
from yoso_cli.main import app
from yoso_core.convert import ConvertError, ConvertOptions, convert, extend_positions, looks_like_model_dir

SMALL = {k: v for k, v in TINY.items() if k != "max_position_embeddings"}


def _ids(n: int, batch: int = 2, seed: int = 3) -> torch.Tensor:
    return torch.randint(3, SMALL["vocab_size"], (batch, n), generator=torch.Generator().manual_seed(seed))


def _logits_in_expectation_mode(model, ids):
    for module in model.modules():
        if hasattr(module, "use_expectation") and hasattr(module, "num_hash"):
            module.use_expectation = True
    with torch.no_grad():
        return model(input_ids=ids).logits


# --- transformers YOSO -> ours ----------------------------------------------------------------


@pytest.mark.parametrize("extra", [dict(conv_window=3), dict(use_expectation=False)])
def test_transformers_yoso_to_ours_logits_match(tmp_path, extra):
    theirs = transformers.YosoForMaskedLM(
        transformers.YosoConfig(**SMALL, max_position_embeddings=40, **extra)
    )
    theirs.save_pretrained(tmp_path / "src")
    report = convert(tmp_path / "src", tmp_path / "dst", ConvertOptions(source="transformers"))
    assert report.max_abs_diff is not None and report.max_abs_diff <= 1e-5
    assert (tmp_path / "dst" / "model.safetensors").is_file()
    ours, info = yoso_core.YosoForMaskedLM.from_pretrained(tmp_path / "dst", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    assert ours.config.use_expectation == theirs.config.use_expectation
    ids = _ids(24)
    expected = _logits_in_expectation_mode(theirs.eval(), ids)
    got = _logits_in_expectation_mode(ours.eval(), ids)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)


def test_transformers_options_change_config_and_dtype(tmp_path):
    transformers.YosoModel(transformers.YosoConfig(**SMALL, max_position_embeddings=16)).save_pretrained(
        tmp_path / "src"
    )
    opts = ConvertOptions(
        source="transformers",
        use_expectation=False,
        num_hash=8,
        hash_code_len=6,
        max_position_embeddings=40,
        dtype="float16",
    )
    report = convert(tmp_path / "src", tmp_path / "dst", opts)
    config = json.loads((tmp_path / "dst" / "config.json").read_text())
    assert (config["use_expectation"], config["num_hash"], config["hash_code_len"]) == (False, 8, 6)
    assert config["max_position_embeddings"] == 40
    tensors = load_file(tmp_path / "dst" / "model.safetensors")
    assert {t.dtype for t in tensors.values()} == {torch.float16}
    assert tensors["embeddings.position_embeddings.weight"].shape == (42, SMALL["hidden_size"])
    assert any("num_hash: 64 -> 8" in line for line in report.lines())


# --- softmax encoders -> YOSO ----------------------------------------------------------------


def test_roberta_mlm_warm_start_copies_weights_bit_for_bit(tmp_path):
    src = transformers.RobertaForMaskedLM(transformers.RobertaConfig(**SMALL, max_position_embeddings=20))
    src.save_pretrained(tmp_path / "src")
    (tmp_path / "src" / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 18}))
    opts = ConvertOptions(
        source="roberta", max_position_embeddings=50, use_expectation=False, num_hash=16, hash_code_len=7
    )
    convert(tmp_path / "src", tmp_path / "dst", opts)
    dst, info = yoso_core.YosoForMaskedLM.from_pretrained(tmp_path / "dst", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    s, d = src.state_dict(), dst.state_dict()
    for name in (
        "word_embeddings.weight",
        "token_type_embeddings.weight",
        "LayerNorm.weight",
        "LayerNorm.bias",
    ):
        assert torch.equal(d[f"yoso.embeddings.{name}"], s[f"roberta.embeddings.{name}"]), name
    for i in range(SMALL["num_hidden_layers"]):
        for module in (
            "intermediate.dense",
            "output.dense",
            "output.LayerNorm",
            "attention.self.query",
            "attention.output.dense",
        ):
            for p in ("weight", "bias"):
                key = f"encoder.layer.{i}.{module}.{p}"
                assert torch.equal(d[f"yoso.{key}"], s[f"roberta.{key}"]), key
    assert torch.equal(d["cls.predictions.transform.dense.weight"], s["lm_head.dense.weight"])
    assert torch.equal(d["cls.predictions.transform.LayerNorm.weight"], s["lm_head.layer_norm.weight"])
    assert torch.equal(d["cls.predictions.bias"], s["lm_head.bias"])
    assert torch.equal(d["cls.predictions.decoder.weight"], s["roberta.embeddings.word_embeddings.weight"])

    # RoBERTa's 18 learned positions (rows 2..19) fill rows 2..51 in blocks; rows 0-1 carry over.
    old, new = (
        s["roberta.embeddings.position_embeddings.weight"],
        d["yoso.embeddings.position_embeddings.weight"],
    )
    assert new.shape == (52, SMALL["hidden_size"])
    assert torch.equal(new[:2], old[:2])
    for j in range(50):
        assert torch.equal(new[2 + j], old[2 + j % 18]), j
    c = dst.config
    assert (c.max_position_embeddings, c.use_expectation, c.num_hash, c.hash_code_len) == (50, False, 16, 7)
    assert json.loads((tmp_path / "dst" / "tokenizer_config.json").read_text())["model_max_length"] == 50
    assert (c.type_vocab_size, c.layer_norm_eps, c.pad_token_id) == (src.config.type_vocab_size, 1e-12, 1)
    with torch.no_grad():  # longer than the source could take
        assert torch.isfinite(dst.eval()(input_ids=_ids(45)).logits).all()


def test_bert_warm_start_shifts_positions_and_keeps_token_types(tmp_path):
    src = transformers.BertModel(transformers.BertConfig(**SMALL, max_position_embeddings=12))
    src.save_pretrained(tmp_path / "src")
    report = convert(
        tmp_path / "src", tmp_path / "dst", ConvertOptions(source="bert", max_position_embeddings=30)
    )
    dst = yoso_core.YosoModel.from_pretrained(tmp_path / "dst")
    s, d = src.state_dict(), dst.state_dict()
    assert dst.config.type_vocab_size == 2
    assert torch.equal(
        d["embeddings.token_type_embeddings.weight"], s["embeddings.token_type_embeddings.weight"]
    )
    assert torch.equal(d["embeddings.word_embeddings.weight"], s["embeddings.word_embeddings.weight"])
    for i in range(SMALL["num_hidden_layers"]):
        for module in ("intermediate.dense", "output.dense"):
            key = f"encoder.layer.{i}.{module}.weight"
            assert torch.equal(d[key], s[key]), key
    old, new = s["embeddings.position_embeddings.weight"], d["embeddings.position_embeddings.weight"]
    assert new.shape == (32, SMALL["hidden_size"])
    for j in range(30):  # BERT's position j sits at YOSO row 2 + j, repeated every 12
        assert torch.equal(new[2 + j], old[j % 12]), j
    assert torch.count_nonzero(new[:2]) == 0
    assert sorted(report.dropped) == ["bert.pooler.dense.bias", "bert.pooler.dense.weight"]


def test_bin_checkpoint_becomes_safetensors(tmp_path):
    src = transformers.BertForMaskedLM(transformers.BertConfig(**SMALL, max_position_embeddings=16))
    (tmp_path / "src").mkdir()
    torch.save(src.state_dict(), tmp_path / "src" / "pytorch_model.bin")
    src.config.to_json_file(tmp_path / "src" / "config.json")
    (tmp_path / "src" / "vocab.txt").write_text("[PAD]\n[UNK]\nhello\n")
    report = convert(tmp_path / "src", tmp_path / "dst", ConvertOptions(source="bert"))
    assert report.architecture == "YosoForMaskedLM"
    assert sorted(report.files) == ["config.json", "model.safetensors", "vocab.txt"]
    tensors = load_file(tmp_path / "dst" / "model.safetensors")
    assert torch.equal(
        tensors["cls.predictions.transform.dense.weight"],
        src.state_dict()["cls.predictions.transform.dense.weight"],
    )


# --- the authors' original code -----------------------------------------------------------------


class _OriginalBlock(nn.Module):
    """The module structure of the authors' code, enough to produce its keys and its forward."""

    def __init__(self, dim, hidden, heads, window):
        super().__init__()
        self.heads = heads
        self.mha = nn.Module()
        self.mha.W_q, self.mha.W_k, self.mha.W_v = (nn.Linear(dim, dim) for _ in range(3))
        self.mha.ff = nn.Linear(dim, dim)
        self.mha.attn = nn.Module()
        self.mha.attn.conv = nn.Conv2d(
            heads, heads, (window, 1), padding=(window // 2, 0), bias=False, groups=heads
        )
        self.norm1 = nn.LayerNorm(dim)
        self.ff = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))
        self.norm2 = nn.LayerNorm(dim)

    def forward(self, x, hash_code_len):
        b, n, dim = x.shape

        def split(t):  # (batch, seq, dim) -> (batch, heads, seq, head_dim)
            return t.reshape(b, n, self.heads, dim // self.heads).transpose(1, 2)

        q, k, v = split(self.mha.W_q(x)), split(self.mha.W_k(x)), split(self.mha.W_v(x))
        conv_v = self.mha.attn.conv(v)
        q, k = nn.functional.normalize(q, dim=-1), nn.functional.normalize(k, dim=-1)
        out = yoso_core.attention.yoso_attention(q, k, v, hash_code_len=hash_code_len, expectation=True)
        out = nn.functional.normalize(out, dim=-1) + conv_v
        out = self.mha.ff(out.transpose(1, 2).reshape(b, n, dim))
        x = self.norm1(x + out)
        return self.norm2(x + self.ff(x))


class _OriginalWrapper(nn.Module):
    def __init__(self, vocab=99, dim=32, hidden=37, heads=4, layers=2, max_len=24, window=3):
        super().__init__()
        self.model = nn.Module()
        emb = self.model.embeddings = nn.Module()
        emb.word_embeddings = nn.Embedding(vocab, dim)
        emb.position_embeddings = nn.Embedding(max_len + 2, dim)
        emb.token_type_embeddings = nn.Embedding(2, dim)
        emb.norm = nn.LayerNorm(dim)
        self.model.backbone = nn.Module()
        self.model.backbone.backbone = nn.Module()
        self.model.backbone.backbone.encoders = nn.ModuleList(
            [_OriginalBlock(dim, hidden, heads, window) for _ in range(layers)]
        )
        self.model.pooler = nn.Linear(dim, dim)
        self.mlm = nn.Module()
        self.mlm.dense, self.mlm.norm = nn.Linear(dim, dim), nn.LayerNorm(dim)
        self.mlm.mlm_class = nn.Linear(dim, vocab)
        self.mlm.mlm_class.weight = emb.word_embeddings.weight
        self.sen_class = nn.Linear(dim, 4)
        for p in self.parameters():  # LayerNorm ones/zeros would hide swapped weights and biases
            nn.init.normal_(p, std=0.3)

    def forward(self, ids, hash_code_len):
        emb = self.model.embeddings
        pos = torch.arange(ids.shape[1])[None] + 2
        x = emb.norm(
            emb.word_embeddings(ids)
            + emb.position_embeddings(pos)
            + emb.token_type_embeddings(torch.zeros_like(ids))
        )
        for block in self.model.backbone.backbone.encoders:
            x = block(x, hash_code_len)
        return self.mlm.mlm_class(self.mlm.norm(nn.functional.gelu(self.mlm.dense(x))))


_TO_TRANSFORMER_LAYOUT = [
    (r"model\.backbone\.backbone\.encoders\.(\d+)\.ff\.0\.", r"model.transformer_\1.ff1."),
    (r"model\.backbone\.backbone\.encoders\.(\d+)\.ff\.2\.", r"model.transformer_\1.ff2."),
    (r"model\.backbone\.backbone\.encoders\.(\d+)\.", r"model.transformer_\1."),
]


def _transformer_layout(state):
    out = {}
    for key, value in state.items():
        for pattern, repl in _TO_TRANSFORMER_LAYOUT:
            key, hits = re.subn(pattern, repl, key)
            if hits:
                break
        out[key] = value
    return out


@pytest.mark.parametrize("layout", ["encoders", "transformer"])
def test_original_checkpoint_converts_with_equal_logits(tmp_path, layout):
    original = _OriginalWrapper().eval()
    state = original.state_dict()
    if layout == "transformer":
        state = _transformer_layout(state)
        assert "model.transformer_1.ff2.weight" in state and "model.transformer_0.mha.W_q.bias" in state
    torch.save({"model_state_dict": state, "epoch": 3}, tmp_path / "cp-0003.model")
    report = convert(
        tmp_path / "cp-0003.model", tmp_path / "dst", ConvertOptions(source="original", hash_code_len=6)
    )
    assert "model.pooler.weight" in report.dropped and "sen_class.bias" in report.dropped
    ours = yoso_core.YosoForMaskedLM.from_pretrained(tmp_path / "dst").eval()
    c = ours.config
    assert (c.vocab_size, c.hidden_size, c.intermediate_size, c.num_hidden_layers) == (99, 32, 37, 2)
    assert (c.num_attention_heads, c.conv_window, c.max_position_embeddings, c.type_vocab_size) == (
        4,
        3,
        24,
        2,
    )
    assert c.layer_norm_eps == 1e-5
    ids = _ids(20)
    with torch.no_grad():
        expected = original(ids, hash_code_len=6)
    torch.testing.assert_close(_logits_in_expectation_mode(ours, ids), expected, rtol=0, atol=1e-5)


def _original_without_conv(tmp_path):
    state = {k: v for k, v in _OriginalWrapper().state_dict().items() if ".attn.conv." not in k}
    torch.save(state, tmp_path / "plain.pt")
    return tmp_path / "plain.pt"


def test_original_heads_must_be_given_without_conv(tmp_path):
    path = _original_without_conv(tmp_path)
    with pytest.raises(ConvertError, match="--num-attention-heads"):
        convert(path, tmp_path / "dst", ConvertOptions(source="original"))
    convert(path, tmp_path / "dst", ConvertOptions(source="original", num_attention_heads=8))
    config = json.loads((tmp_path / "dst" / "config.json").read_text())
    assert config["num_attention_heads"] == 8 and config.get("conv_window") is None


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        ([], "pass --num-attention-heads N"),
        (
            ["--num-attention-heads", "5"],
            "--num-attention-heads 5 does not divide the checkpoint's hidden size 32",
        ),
        (["--num-attention-heads", "0"], "--num-attention-heads must be positive, got 0"),
    ],
)
def test_cli_original_without_conv_needs_a_valid_head_count(tmp_path, extra, problem):
    path = _original_without_conv(tmp_path)
    result = CliRunner().invoke(
        app, ["convert", str(path), str(tmp_path / "dst"), "--from", "original", *extra]
    )
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines()[-1].startswith("error: ") and problem in result.output
    assert not (tmp_path / "dst").exists()


def test_num_attention_heads_is_refused_for_sources_with_a_config(tmp_path):
    with pytest.raises(ConvertError, match="--num-attention-heads is for --from original only"):
        convert(tmp_path / "src", tmp_path / "dst", ConvertOptions(source="roberta", num_attention_heads=4))


def test_original_unknown_missing_and_misshapen_keys_are_named(tmp_path):
    state = _OriginalWrapper().state_dict()
    torch.save(
        {**state, "model.backbone.backbone.encoders.0.mha.extra.weight": torch.zeros(2)}, tmp_path / "a.pt"
    )
    with pytest.raises(ConvertError, match=r"encoders\.0\.mha\.extra\.weight"):
        convert(tmp_path / "a.pt", tmp_path / "dst", ConvertOptions(source="original"))
    torch.save(
        {k: v for k, v in state.items() if k != "model.backbone.backbone.encoders.1.norm2.bias"},
        tmp_path / "b.pt",
    )
    with pytest.raises(ConvertError, match=r"yoso\.encoder\.layer\.1\.output\.LayerNorm\.bias"):
        convert(tmp_path / "b.pt", tmp_path / "dst", ConvertOptions(source="original"))
    bad = dict(state)
    bad["model.backbone.backbone.encoders.1.ff.2.weight"] = torch.zeros(32, 40)
    torch.save(bad, tmp_path / "c.pt")
    with pytest.raises(ConvertError, match=r"yoso\.encoder\.layer\.1\.output\.dense\.weight \(32, 40\)"):
        convert(tmp_path / "c.pt", tmp_path / "dst", ConvertOptions(source="original"))
    assert not (tmp_path / "dst").exists()


# --- positions, destination, CLI ---------------------------------------------------------------


def test_extend_positions_copies_blocks_and_truncates():
    table = torch.arange(7 * 2, dtype=torch.float32).reshape(7, 2)  # 5 learned rows
    longer = extend_positions(table, 12)
    assert longer.shape == (14, 2)
    assert torch.equal(longer[:2], table[:2])
    assert [int(r[0]) // 2 for r in longer[2:]] == [2, 3, 4, 5, 6] * 2 + [2, 3]
    assert torch.equal(extend_positions(table, 3), table[:5])


def test_destination_must_not_exist_unless_forced(tmp_path):
    transformers.YosoModel(transformers.YosoConfig(**SMALL, max_position_embeddings=16)).save_pretrained(
        tmp_path / "src"
    )
    convert(tmp_path / "src", tmp_path / "dst", ConvertOptions())  # an earlier conversion
    (tmp_path / "dst" / "old.txt").write_text("old")
    (tmp_path / "dst" / "pytorch_model.bin").write_bytes(b"stale weights")
    with pytest.raises(ConvertError, match="already exists.*--force"):
        convert(tmp_path / "src", tmp_path / "dst", ConvertOptions())
    convert(tmp_path / "src", tmp_path / "dst", ConvertOptions(force=True))
    # --force replaces what a conversion writes (stale weights go) and keeps the rest
    assert (
        not (tmp_path / "dst" / "pytorch_model.bin").exists()
        and (tmp_path / "dst" / "model.safetensors").exists()
    )
    assert (tmp_path / "dst" / "old.txt").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary left


def _saved_source(path):
    transformers.YosoModel(transformers.YosoConfig(**SMALL, max_position_embeddings=16)).save_pretrained(path)
    return path


def test_force_refuses_a_destination_holding_the_source(tmp_path):
    src = _saved_source(tmp_path / "project" / "models" / "src")
    for dst in (tmp_path / "project", tmp_path / "project" / "models", src):
        with pytest.raises(ConvertError, match="holds SRC"):
            convert(src, dst, ConvertOptions(force=True))
    assert (src / "model.safetensors").is_file()
    checkpoint = tmp_path / "run" / "cp.pt"  # an original checkpoint file inside DST
    checkpoint.parent.mkdir()
    checkpoint.write_bytes(b"weights")
    with pytest.raises(ConvertError, match="holds SRC"):
        convert(checkpoint, tmp_path / "run", ConvertOptions(source="original", force=True))
    assert checkpoint.read_bytes() == b"weights"


def test_force_refuses_what_is_not_a_model_directory(tmp_path):
    src = _saved_source(tmp_path / "src")
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "thesis.tex").write_text("years of work")
    with pytest.raises(ConvertError, match="does not look like a model directory"):
        convert(src, notes, ConvertOptions(force=True))
    assert (notes / "thesis.tex").read_text() == "years of work"
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    with pytest.raises(ConvertError, match="is a file, not a model directory"):
        convert(src, a_file, ConvertOptions(force=True))
    empty = tmp_path / "empty"
    empty.mkdir()
    convert(src, empty, ConvertOptions(force=True))  # an empty directory is fine
    assert looks_like_model_dir(empty)
    result = CliRunner().invoke(app, ["convert", str(src), str(notes), "--force"])
    assert result.exit_code == 2 and "error: DST" in result.output and "Traceback" not in result.output


def test_a_symlinked_destination_keeps_its_link_and_gets_the_model(tmp_path):
    src = _saved_source(tmp_path / "src")
    target = tmp_path / "disk2" / "model"
    convert(src, target, ConvertOptions())
    (target / "pytorch_model.bin").write_bytes(b"old")
    link = tmp_path / "current"
    link.symlink_to(target)
    with pytest.raises(ConvertError, match="already exists"):
        convert(src, link, ConvertOptions())
    convert(src, link, ConvertOptions(force=True))
    assert link.is_symlink() and link.resolve() == target
    assert (target / "model.safetensors").is_file() and not (target / "pytorch_model.bin").exists()
    assert sorted(p.name for p in target.parent.iterdir()) == ["model"]  # no temporary left
    dangling = tmp_path / "next"
    dangling.symlink_to(tmp_path / "disk2" / "next-model")
    convert(src, dangling, ConvertOptions(force=True))
    assert dangling.is_symlink() and (tmp_path / "disk2" / "next-model" / "config.json").is_file()


def test_cli_convert_and_errors(tmp_path):
    runner = CliRunner()
    src = transformers.RobertaModel(transformers.RobertaConfig(**SMALL, max_position_embeddings=20))
    src.save_pretrained(tmp_path / "src")
    result = runner.invoke(
        app,
        [
            "convert",
            str(tmp_path / "src"),
            str(tmp_path / "dst"),
            "--from",
            "roberta",
            "--max-position-embeddings",
            "36",
            "--no-use-expectation",
            "--conv-window",
            "5",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "max_position_embeddings: 18 -> 36" in result.output
    config = json.loads((tmp_path / "dst" / "config.json").read_text())
    assert (config["max_position_embeddings"], config["use_expectation"], config["conv_window"]) == (
        36,
        False,
        5,
    )

    result = runner.invoke(app, ["convert", str(tmp_path / "src"), str(tmp_path / "dst2"), "--from", "bert"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1].startswith("error: --from bert needs a bert checkpoint")
    result = runner.invoke(
        app, ["convert", str(tmp_path / "src"), str(tmp_path / "dst"), "--from", "roberta"]
    )
    assert result.exit_code == 2 and "already exists" in result.output
    result = runner.invoke(
        app, ["convert", str(tmp_path / "nowhere"), str(tmp_path / "d3"), "--from", "original"]
    )
    assert result.exit_code == 2 and "does not exist" in result.output
    result = runner.invoke(app, ["convert", str(tmp_path / "src"), str(tmp_path / "d4"), "--from", "nope"])
    assert result.exit_code == 2 and "--from must be one of" in result.output


def test_transformers_half_source_keeps_dtype_and_damage_is_named(tmp_path):
    theirs = transformers.YosoForMaskedLM(transformers.YosoConfig(**SMALL, max_position_embeddings=16))
    theirs.to(torch.bfloat16).save_pretrained(tmp_path / "src")
    report = convert(tmp_path / "src", tmp_path / "dst", ConvertOptions(source="transformers"))
    assert report.max_abs_diff <= 1e-5
    tensors = load_file(tmp_path / "dst" / "model.safetensors")
    assert {t.dtype for t in tensors.values()} == {torch.bfloat16}

    damaged = load_file(tmp_path / "src" / "model.safetensors")
    del damaged["yoso.encoder.layer.1.output.dense.bias"]
    save_file(damaged, tmp_path / "src" / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ConvertError, match=r"missing keys: yoso\.encoder\.layer\.1\.output\.dense\.bias"):
        convert(tmp_path / "src", tmp_path / "dst2", ConvertOptions(source="transformers"))


def test_original_data_parallel_prefix_and_plain_state_dict(tmp_path):
    original = _OriginalWrapper().eval()
    torch.save({f"module.{k}": v for k, v in original.state_dict().items()}, tmp_path / "dp.pt")
    convert(tmp_path / "dp.pt", tmp_path / "dst", ConvertOptions(source="original", hash_code_len=5))
    ours = yoso_core.YosoForMaskedLM.from_pretrained(tmp_path / "dst").eval()
    ids = _ids(12)
    with torch.no_grad():
        expected = original(ids, hash_code_len=5)
    torch.testing.assert_close(_logits_in_expectation_mode(ours, ids), expected, rtol=0, atol=1e-5)


def test_cli_defaults_are_convert_options_defaults():
    """Every `yoso convert` option defaults to the ConvertOptions field of the same name."""
    import dataclasses
    import inspect

    from yoso_cli.commands.convert import command
    from yoso_core.convert import ConvertOptions

    params = inspect.signature(command).parameters
    default = ConvertOptions()
    shared = [f.name for f in dataclasses.fields(ConvertOptions) if f.name in params]
    assert len(shared) == 9  # every field but `verify`, which the CLI always leaves on
    for name in shared:
        assert params[name].default.default == getattr(default, name), name
