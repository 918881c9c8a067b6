"""bert_jax exports and workdirs, warm-starting a run (`init_params_from`), and the CLI.

No torch here: the checkpoints are random bert_jax models."""

import dataclasses
import json
import subprocess
import sys

import jax
import numpy as np
import optax
import pytest

from bert_jax.config import ConfigError, ModelConfig
from bert_jax.convert import (Pretrained, checkpoint_kind, convert, init_params_from,
                              load_bert_jax, load_pretrained, names, save_bert_jax,
                              save_hf)
from bert_jax.data.tokenizer import load_tokenizer
from bert_jax.modeling.models import BertForPreTraining, init_params
from bert_jax.training.checkpoint import Checkpointer
from bert_jax.training.step import TrainState

pytest.importorskip("safetensors")

SMALL = ModelConfig(vocab_size=50, hidden_size=32, num_layers=2, num_heads=4,
                    intermediate_size=48, max_position_embeddings=24, hidden_dropout=0.0,
                    attention_dropout=0.0)


def _vocab(tmp_path):
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(45)]
    path = tmp_path / "vocab.txt"
    path.write_text("\n".join(words) + "\n")
    return str(path)


_init = jax.jit(init_params, static_argnums=0)  # eager Flax init is seconds on CPU


def _random(config, seed=0, tokenizer=None):
    return Pretrained(config, _init(BertForPreTraining(config), jax.random.key(seed)), tokenizer)


def _batch():
    mask = np.array([[1] * 10, [1] * 4 + [0] * 6])
    return {"input_ids": np.arange(20).reshape(2, 10) % 50 * mask, "attention_mask": mask,
            "token_type_ids": np.zeros((2, 10), int)}


def _same_params(a, b):
    """Exactly equal trees, whatever the layout of each (compared unrolled)."""
    a, b = names.relayout(a, False), names.relayout(b, False)
    assert jax.tree.structure(a) == jax.tree.structure(b)
    jax.tree.map(np.testing.assert_array_equal, a, b)


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("export")
    pretrained = _random(SMALL, tokenizer=load_tokenizer(_vocab(tmp)))
    save_bert_jax(pretrained, str(tmp / "export"))
    return pretrained, tmp / "export"


def test_export_round_trips_in_either_layout(export_dir):
    original, path = export_dir
    assert checkpoint_kind(str(path)) == "bert_jax"
    unrolled = load_bert_jax(str(path), scan_layers=False)
    assert unrolled.config == dataclasses.replace(SMALL, scan_layers=False)
    assert "layer_1" in unrolled.params["encoder"]
    assert unrolled.tokenizer.vocab_size == 50
    _same_params(unrolled.params, original.params)
    # The unrolled model computes what the scanned one does.
    ours, theirs = unrolled(**_batch()), original(**_batch())
    for k in theirs:
        np.testing.assert_allclose(ours[k], theirs[k], atol=1e-6, rtol=0)


def test_workdir_gives_the_newest_steps_params(tmp_path):
    config = dataclasses.replace(SMALL, next_sentence=False)
    checkpointer = Checkpointer(str(tmp_path / "run" / "checkpoints"), max_to_keep=3,
                                async_save=False)
    runs = {}
    for step, seed in ((10, 1), (20, 2)):
        runs[step] = _random(config, seed)
        state = TrainState.create(runs[step].params, optax.adamw(1e-3), jax.random.key(0))
        checkpointer.save(step, state, {"position": step}, config)
    checkpointer.close()
    vocab = _vocab(tmp_path)
    (tmp_path / "run" / "config.json").write_text(json.dumps(
        {"data": {"vocab_path": vocab, "lowercase": True}}))
    assert checkpoint_kind(str(tmp_path / "run")) == "bert_jax"
    loaded = load_pretrained(str(tmp_path / "run"))
    assert loaded.config == config and loaded.tokenizer.path == vocab
    _same_params(loaded.params, runs[20].params)


def test_init_params_from_names_every_mismatched_field(export_dir):
    _, path = export_dir
    run = dataclasses.replace(SMALL, hidden_size=64, vocab_size=60)
    with pytest.raises(ConfigError) as err:
        init_params_from(str(path), run)
    message = str(err.value)
    assert "model.hidden_size: checkpoint 32 vs config 64" in message
    assert "model.vocab_size: checkpoint 50 vs config 60" in message
    assert "num_layers" not in message


def test_init_params_from_fits_the_runs_layout_and_heads(export_dir, tmp_path):
    original, path = export_dir
    # The run drops NSP and unrolls the layers: same function on the shared parts.
    run = dataclasses.replace(SMALL, next_sentence=False, scan_layers=False)
    params = init_params_from(str(path), run)
    assert "nsp_head" not in params and "layer_0" in params["encoder"]
    expected = {k: v for k, v in original.params.items() if k != "nsp_head"}
    _same_params(params, expected)

    # A checkpoint without MLM/NSP heads (a sentence encoder) warm-starts pretraining only
    # when the run says how to get the heads.
    encoder_only = dataclasses.replace(SMALL, mlm_head=False, next_sentence=False)
    save_bert_jax(_random(encoder_only, seed=3), str(tmp_path / "enc"))
    with pytest.raises(ConfigError, match="no mlm_head, next_sentence parameters"):
        init_params_from(str(tmp_path / "enc"), SMALL)
    params = init_params_from(str(tmp_path / "enc"), SMALL, rng=jax.random.key(7))
    assert set(params) == {"embeddings", "encoder", "pooler", "mlm_head", "nsp_head"}
    np.testing.assert_array_equal(params["pooler"]["dense"]["kernel"],
                                  _random(encoder_only, seed=3).params["pooler"]["dense"]["kernel"])


def test_cli_and_convert_round_trip_through_hf(export_dir, tmp_path):
    original, path = export_dir
    result = subprocess.run([sys.executable, "-m", "experiments.convert", "--src", str(path),
                             "--dst", str(tmp_path / "hf"), "--to", "hf"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert checkpoint_kind(str(tmp_path / "hf")) == "hf"
    convert(str(tmp_path / "hf"), str(tmp_path / "bj"), to="bert_jax")
    back = load_bert_jax(str(tmp_path / "bj"))
    assert back.config == original.config
    _same_params(back.params, original.params)
    assert back.tokenizer.lowercase and back.tokenizer.vocab_size == 50
    bad = subprocess.run([sys.executable, "-m", "experiments.convert", "--src",
                          str(tmp_path / "missing"), "--dst", str(tmp_path / "x"), "--to", "hf"],
                         capture_output=True, text=True)
    assert bad.returncode != 0 and "is not a checkpoint this package reads" in bad.stderr


@pytest.mark.parametrize("family,kind", [("roberta", "bpe"), ("albert", "unigram")])
def test_export_with_the_projects_bpe_and_unigram_tokenizers(tmp_path, family, kind):
    """A RoBERTa/ALBERT trained here with the committed BPE/Unigram vocab exports a
    tokenizer that transformers' AutoTokenizer loads: it frames text with this vocabulary's
    [CLS]/[SEP] roles and pads with its pad id, and the model's MLM logits on those ids
    match bert_jax's."""
    transformers = pytest.importorskip("transformers")
    torch = pytest.importorskip("torch")
    from bert_jax.config import family_config
    from bert_jax.data.tokenizer import DEFAULT_PATHS, load_tokenizer

    tok = load_tokenizer(DEFAULT_PATHS[kind], kind == "unigram", kind=kind)
    config = family_config(family, "tiny", vocab_size=tok.vocab_size, num_layers=1,
                           max_position_embeddings=40, hidden_dropout=0.0,
                           attention_dropout=0.0)
    pretrained = _random(config, seed=2, tokenizer=tok)
    out_dir = str(tmp_path / "hf")
    save_hf(pretrained, out_dir)
    hf_tok = transformers.AutoTokenizer.from_pretrained(out_dir)
    texts = ["The debugger is extensible.", "A second, longer sentence of text."]
    enc = hf_tok(texts, padding=True, return_tensors="np")
    ids, mask = enc["input_ids"], enc["attention_mask"]
    own_ids, _ = tok.encode_batch(texts[:1])[0]
    np.testing.assert_array_equal(ids[0, :len(own_ids) + 2],
                                  [tok.cls_id, *own_ids, tok.sep_id])
    assert (ids[mask == 0] == tok.pad_id).all() and (mask == 0).any()
    model = transformers.AutoModelForMaskedLM.from_pretrained(out_dir).eval()
    with torch.no_grad():
        ref = model(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask)).logits
    ours = np.asarray(pretrained(ids, attention_mask=mask)["mlm_logits"])
    np.testing.assert_allclose(ours[mask == 1], ref.numpy()[mask == 1], atol=1e-5)
