"""Configs: shipped files load and validate, sizes match the papers, bad values are named."""

import jax
import jax.numpy as jnp
import pytest

from bert_jax.config import ConfigError, model_config_for, validate
from bert_jax.modeling.models import BertForPreTraining
from configs.pretrain import bert_base, bert_large, bert_tiny


def _num_params(model_cfg) -> int:
    shapes = jax.eval_shape(lambda: BertForPreTraining(model_cfg).init(
        jax.random.key(0), jnp.zeros((1, 8), jnp.int32)))
    return sum(x.size for x in jax.tree.leaves(shapes))


@pytest.mark.parametrize("module,expected", [(bert_base, 110e6), (bert_large, 340e6)])
def test_paper_sizes(module, expected):
    count = _num_params(validate(module.get_config(), num_devices=1))
    assert abs(count - expected) / expected < 0.015, count


def test_size_table_is_googles():
    assert [(model_config_for(s).num_layers, model_config_for(s).hidden_size)
            for s in ("tiny", "mini", "small", "medium", "base", "large")] == [
        (2, 128), (4, 256), (4, 512), (8, 512), (12, 768), (24, 1024)]
    assert model_config_for("base").num_heads == 12
    assert model_config_for("large").intermediate_size == 4096


def test_contract_fields_exist():
    config = bert_tiny.get_config()
    for path in ("seed", "train.num_steps", "train.batch_size", "train.log_every",
                 "train.checkpoint_every", "model.hidden_dropout", "model.attention_dropout"):
        node = config
        for key in path.split("."):
            node = node[key]


@pytest.mark.parametrize("path,value,devices,message", [
    ("model.num_heads", 5, 1, "model.hidden_size"),
    ("train.batch_size", 100, 8, "train.batch_size"),
    ("data.max_seq_len", 1024, 1, "data.max_seq_len"),
    ("model.hidden_dropout", 1.5, 1, "model.hidden_dropout"),
    ("train.parallel", "pjit", 1, "train.parallel"),
    ("masking.max_predictions_per_seq", 0, 1, "masking.max_predictions_per_seq"),
    ("model.dtype", "float64", 1, "model.dtype"),
    ("masking.strategy", "bpe", 1, "masking.strategy"),
    ("masking.strategy", "coarse", 1, "masking.strategy"),  # No pipeline makes coarse_start.
    ("masking.replace_unit", "span", 1, "masking.replace_unit"),
    ("masking.max_ngram", 0, 1, "masking.max_ngram"),
    ("masking.span_p", 0.0, 1, "masking.span_p"),
    ("masking.max_span", 0, 1, "masking.max_span"),
    ("masking.dupe_factor", 0, 1, "masking.dupe_factor"),
    ("masking.mask_rate", 1.5, 1, "masking.mask_rate"),
])
def test_bad_values_name_their_field(path, value, devices, message):
    config = bert_base.get_config()
    section, field = path.split(".")
    config[section][field] = value
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        validate(config, num_devices=devices)


def test_vocab_smaller_than_tokenizer():
    with pytest.raises(ConfigError, match=r"model\.vocab_size"):
        validate(bert_tiny.get_config(), num_devices=1, tokenizer_vocab_size=9000)


def test_unknown_model_field():
    config = bert_tiny.get_config()
    config.unlock()
    config.model.hiden_size = 3
    with pytest.raises(ConfigError, match="hiden_size"):
        validate(config, num_devices=1)
