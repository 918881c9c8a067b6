"""Hugging Face checkpoints in and out: same numbers as transformers (PyTorch, fp32, CPU)."""

import dataclasses
import json
import logging

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("safetensors")

from bert_jax.config import ConfigError  # noqa: E402
from bert_jax.convert import ConversionError, init_params_from, load_hf, save_hf  # noqa: E402
from tests.convert import reference  # noqa: E402


@pytest.fixture(scope="module")
def hf_model():
    return reference.random_model()


@pytest.fixture(scope="module")
def hf_dir(hf_model, tmp_path_factory):
    path = tmp_path_factory.mktemp("hf")
    hf_model.save_pretrained(path)
    reference.write_vocab(path)
    return path


@pytest.fixture(scope="module")
def bin_dir(hf_model, tmp_path_factory):
    """pytorch_model.bin as old checkpoints have it: LayerNorm gamma/beta, tied decoder
    weight and bias saved twice."""
    path = tmp_path_factory.mktemp("bin")
    state = {k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias",
                                                                      "LayerNorm.beta"): v
             for k, v in hf_model.state_dict().items()}
    assert "cls.predictions.decoder.weight" in state
    torch.save(state, path / "pytorch_model.bin")
    hf_model.config.to_json_file(path / "config.json")
    return path


@pytest.mark.parametrize("scan_layers", [True, False])
@pytest.mark.parametrize("fmt", ["safetensors", "bin"])
def test_load_matches_transformers(hf_model, hf_dir, bin_dir, fmt, scan_layers):
    path = hf_dir if fmt == "safetensors" else bin_dir
    pretrained = load_hf(str(path), scan_layers=scan_layers)
    c = pretrained.config
    assert (c.vocab_size, c.hidden_size, c.num_layers, c.num_heads, c.intermediate_size,
            c.max_position_embeddings, c.type_vocab_size, c.layer_norm_eps) == (
        99, 64, 2, 4, 96, 40, 3, 1e-7)
    assert c.pooler and c.mlm_head and c.next_sentence and c.scan_layers == scan_layers
    batch = reference.padded_batch()
    reference.assert_close(pretrained(**batch), reference.outputs(hf_model, batch),
                           f"HF {fmt} -> bert_jax (scan_layers={scan_layers})")


def test_export_loads_in_transformers_with_same_numbers(hf_model, hf_dir, tmp_path):
    pretrained = load_hf(str(hf_dir), scan_layers=False)
    save_hf(pretrained, str(tmp_path))
    exported, info = transformers.BertForPreTraining.from_pretrained(
        tmp_path, output_loading_info=True)
    assert not any(info.values()), info  # no missing, unexpected or mismatched tensors
    batch = reference.padded_batch()
    ref = reference.outputs(hf_model, batch)
    reference.assert_close(reference.outputs(exported.eval(), batch), ref,
                           "HF -> bert_jax -> HF export -> transformers")
    # The exported tokenizer files load in transformers and tokenize as ours does.
    tokenizer = transformers.AutoTokenizer.from_pretrained(tmp_path)
    texts = ["w1 w2 w3", "W4 w5 unknownword"]
    ours = pretrained.encode(texts)
    theirs = tokenizer(texts, padding=True, return_tensors="np")
    for key in ours:
        np.testing.assert_array_equal(ours[key], theirs[key])


@pytest.mark.parametrize("hf_act,act", [("gelu_new", "gelu_tanh"), ("silu", "silu")])
def test_encoder_without_heads_round_trips(tmp_path, hf_act, act):
    """A BertModel without pooler (as sentence encoders are saved), other activations: only
    last_hidden_state comes out, and the export is a BertModel again."""
    model = reference.random_model(transformers.BertModel, seed=1, hidden_act=hf_act,
                                   model_kwargs=dict(add_pooling_layer=False))
    model.save_pretrained(tmp_path / "src")
    pretrained = load_hf(str(tmp_path / "src"))
    c = pretrained.config
    assert (c.pooler, c.mlm_head, c.next_sentence, c.hidden_act) == (False, False, False, act)
    assert pretrained.tokenizer is None
    batch = reference.padded_batch()
    reference.assert_close(pretrained(**batch), reference.outputs(model, batch),
                           f"HF BertModel ({hf_act}, no pooler) -> bert_jax")
    save_hf(pretrained, str(tmp_path / "dst"))
    saved = json.loads((tmp_path / "dst" / "config.json").read_text())
    assert saved["architectures"] == ["BertModel"] and saved["hidden_act"] == hf_act
    again = transformers.BertModel.from_pretrained(tmp_path / "dst", add_pooling_layer=False)
    reference.assert_close(reference.outputs(again.eval(), batch),
                           reference.outputs(model, batch), "BertModel export", tol=0.0)


def test_untied_decoder_is_refused(hf_model, tmp_path):
    state = dict(hf_model.state_dict())
    state["cls.predictions.decoder.weight"] = state["cls.predictions.decoder.weight"] + 1.0
    torch.save(state, tmp_path / "pytorch_model.bin")
    hf_model.config.to_json_file(tmp_path / "config.json")
    with pytest.raises(ConversionError, match="decoder.weight differs"):
        load_hf(str(tmp_path))


def test_config_that_does_not_fit_the_tensors_names_them(hf_dir, tmp_path):
    for f in ("model.safetensors", "vocab.txt"):
        (tmp_path / f).write_bytes((hf_dir / f).read_bytes())
    config = json.loads((hf_dir / "config.json").read_text())
    config["intermediate_size"] = 128
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConversionError, match=r"intermediate.dense.weight \(96, 64\)"):
        load_hf(str(tmp_path))
    with pytest.raises(ValueError, match="cannot override"):
        load_hf(str(hf_dir), hidden_size=32)


def test_task_heads_are_ignored_with_a_warning(tmp_path, caplog):
    model = reference.random_model(transformers.BertForSequenceClassification, num_labels=3)
    model.save_pretrained(tmp_path)
    with caplog.at_level(logging.WARNING):
        pretrained = load_hf(str(tmp_path))
    assert "classifier.weight" in caplog.text
    assert pretrained.config.pooler and not pretrained.config.mlm_head
    batch = reference.padded_batch()
    ours = pretrained(**batch)
    np.testing.assert_allclose(ours["pooled_output"],
                               reference.outputs(model.bert, batch)["pooled_output"],
                               atol=reference.TOL, rtol=0)


def test_init_params_from_an_hf_dir(hf_dir):
    loaded = load_hf(str(hf_dir))
    run = dataclasses.replace(loaded.config, next_sentence=False, hidden_dropout=0.1)
    params = init_params_from(str(hf_dir), run)
    assert set(params) == {"embeddings", "encoder", "pooler", "mlm_head"}
    np.testing.assert_array_equal(params["encoder"]["layers"]["block"]["output"]["kernel"],
                                  loaded.params["encoder"]["layers"]["block"]["output"]["kernel"])
    with pytest.raises(ConfigError, match="model.max_position_embeddings: checkpoint 40 vs "
                                          "config 512"):
        init_params_from(str(hf_dir), dataclasses.replace(run, max_position_embeddings=512))


def test_sharded_weights_and_tokenizer_json_only(hf_model, hf_dir, tmp_path):
    """Big checkpoints come in shards (an index.json names them); some repos ship only
    tokenizer.json (its WordPiece vocab then stands in for vocab.txt)."""
    hf_model.save_pretrained(tmp_path, max_shard_size="20KB")
    assert (tmp_path / "model.safetensors.index.json").exists()
    transformers.AutoTokenizer.from_pretrained(hf_dir).save_pretrained(tmp_path)
    (tmp_path / "vocab.txt").unlink(missing_ok=True)
    (tmp_path / "tokenizer_config.json").unlink()
    assert (tmp_path / "tokenizer.json").exists()
    pretrained = load_hf(str(tmp_path))
    batch = reference.padded_batch()
    reference.assert_close(pretrained(**batch), reference.outputs(hf_model, batch),
                           "HF sharded safetensors -> bert_jax")
    texts = ["w1 w2 w3", "W4 w5 unknownword"]
    np.testing.assert_array_equal(pretrained.encode(texts)["input_ids"],
                                  load_hf(str(hf_dir)).encode(texts)["input_ids"])
