"""Configs: shipped files load and validate, sizes match the papers, bad values are named."""

import importlib
import os

import jax
import jax.numpy as jnp
import pytest

from bert_jax.config import ConfigError, model_config_for, validate
from bert_jax.modeling.models import BertForPreTraining
from configs.pretrain import (albert_base, albert_large, bert_base, bert_large, bert_tiny,
                              roberta_base, roberta_large)

_CONFIG_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                           "configs", "pretrain")
SHIPPED = sorted(f[:-3] for f in os.listdir(_CONFIG_DIR) if f.endswith(".py") and f[0] != "_")


def _num_params(model_cfg) -> int:
    shapes = jax.eval_shape(lambda: BertForPreTraining(model_cfg).init(
        jax.random.key(0), jnp.zeros((1, 8), jnp.int32)))
    return sum(x.size for x in jax.tree.leaves(shapes))


@pytest.mark.parametrize("module,expected", [
    (bert_base, 110e6), (bert_large, 340e6), (roberta_base, 125e6), (roberta_large, 355e6),
    (albert_base, 12e6), (albert_large, 18e6)])
def test_paper_sizes(module, expected):
    count = _num_params(validate(module.get_config(), num_devices=1))
    assert abs(count - expected) / expected < 0.02, count


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_configs_validate(name):
    """Every config file validates, is of the family its name says, and the tiny ones (which
    run here on the embedded corpus) fit their committed tokenizer."""
    from bert_jax.data.tokenizer import load_tokenizer

    config = importlib.import_module(f"configs.pretrain.{name}").get_config()
    family = name.split("_")[0]
    vocab = coarse = None
    if name.endswith("_tiny"):
        tok = load_tokenizer(config.data.vocab_path, config.data.lowercase,
                             kind=config.data.tokenizer)
        vocab = tok.vocab_size
        if config.data.coarse_vocab_path:  # AMBERT: the committed phrase vocab
            from bert_jax.data.phrases import PhraseVocab
            coarse = PhraseVocab(config.data.coarse_vocab_path, tok).vocab_size
    model = validate(config, num_devices=1, tokenizer_vocab_size=vocab,
                     coarse_vocab_size=coarse)
    assert model.family == family
    task = {"bert": "nsp", "roberta": "none", "albert": "sop", "ambert": "none"}[family]
    assert config.data.sentence_task == task


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


def test_family_tables():
    from bert_jax.config import FAMILY_SIZES, ModelConfig, family_config

    # BERT is the defaults, bit for bit: family_config("bert", "base") is ModelConfig().
    assert family_config("bert", "base") == ModelConfig()
    roberta = family_config("roberta", "large")
    assert (roberta.num_layers, roberta.hidden_size, roberta.num_heads, roberta.vocab_size,
            roberta.max_position_embeddings, roberta.position_offset, roberta.type_vocab_size,
            roberta.layer_norm_eps, roberta.next_sentence) == (
        24, 1024, 16, 50265, 514, 2, 1, 1e-5, False)
    albert = family_config("albert", "xxlarge")
    assert (albert.num_layers, albert.hidden_size, albert.num_heads, albert.intermediate_size,
            albert.embedding_size, albert.share_layers, albert.hidden_act,
            albert.sentence_order, albert.next_sentence) == (
        12, 4096, 64, 16384, 128, "all", "gelu_tanh", True, False)
    assert family_config("albert", "tiny").embedding_size == 64
    assert family_config("albert", "base", share_layers="none").share_layers == "none"
    for family, sizes in FAMILY_SIZES.items():
        for size in sizes:
            family_config(family, size).check()
    with pytest.raises(ConfigError, match="unknown roberta size 'xlarge'"):
        family_config("roberta", "xlarge")
    with pytest.raises(ConfigError, match="unknown model family"):
        family_config("electra", "base")


def test_run_config_of_another_family_validates():
    from bert_jax.config import model_config_dict

    config = bert_tiny.get_config()
    config.model = model_config_dict("tiny", family="roberta", vocab_size=8192,
                                     max_position_embeddings=66)
    config.data.sentence_task = "none"  # RoBERTa has no NSP head
    model = validate(config, num_devices=1)  # data.max_seq_len 64 + offset 2 <= 66
    assert (model.family, model.position_offset) == ("roberta", 2)
    config.model.max_position_embeddings = 65
    with pytest.raises(ConfigError, match=r"model\.position_offset \(2\)"):
        validate(config, num_devices=1)


@pytest.mark.parametrize("fields,message", [
    (dict(share_layers="some"), r"model\.share_layers must be one of"),
    (dict(embedding_size=-1), r"model\.embedding_size must be >= 0"),
    (dict(position_offset=-1), r"model\.position_offset must be >= 0"),
    (dict(position_offset=512), r"model\.max_position_embeddings \(512\) must exceed"),
    (dict(sentence_order=True), r"model\.next_sentence \(BERT's NSP\) and "
                                r"model\.sentence_order"),
    (dict(sentence_order=True, next_sentence=False, pooler=False),
     r"model\.sentence_order needs model\.pooler"),
    (dict(family="gpt"), r"model\.family must be one of"),
    (dict(residual_dtype="float64"), r"model\.residual_dtype must be one of"),
    (dict(scan_unroll=-1), r"model\.scan_unroll must be in \[0, num_layers=12\] \(0: all "
                           r"layers on a CPU, 1 elsewhere\), got -1"),
    (dict(scan_unroll=13), r"model\.scan_unroll must be in \[0, num_layers=12\]"),
])
def test_bad_family_fields_are_named(fields, message):
    import dataclasses

    from bert_jax.config import ModelConfig

    with pytest.raises(ConfigError, match=message):
        dataclasses.replace(ModelConfig(), **fields).check()


def test_scan_unroll_auto_is_all_layers_on_a_cpu_only():
    from bert_jax.config import ModelConfig

    auto = ModelConfig(num_layers=12)
    assert auto.scan_unroll == 0  # the default
    assert auto.layers_per_iteration("cpu") == 12
    assert auto.layers_per_iteration("gpu") == auto.layers_per_iteration("tpu") == 1
    assert ModelConfig(num_layers=12, scan_unroll=4).layers_per_iteration("cpu") == 4


def test_packed_documents_needs_single_segment_rows_and_no_coarse_tokens():
    from configs.pretrain import ambert_tiny, roberta_tiny

    config = roberta_tiny.get_config()
    config.data.packing = "packed_documents"
    assert validate(config, num_devices=1).family == "roberta"
    config = bert_tiny.get_config()  # NSP pairs
    config.data.packing = "packed_documents"
    with pytest.raises(ConfigError, match=r"packed_documents.*data\.sentence_task='none'"):
        validate(config, num_devices=1)
    config = ambert_tiny.get_config()
    config.data.sentence_task, config.data.packing = "none", "packed_documents"
    with pytest.raises(ConfigError, match=r"packed_documents' is not supported with AMBERT"):
        validate(config, num_devices=1)


@pytest.mark.parametrize("name", ["bert_base", "bert_large", "roberta_base", "roberta_large"])
def test_gpu_variant_of_the_pretraining_configs(name):
    """`configs/pretrain/<name>.py:gpu` is the paper's config with GPU_MODEL_SETTINGS only."""
    import importlib

    from bert_jax.config import GPU_MODEL_SETTINGS, model_config_from

    module = importlib.import_module(f"configs.pretrain.{name}")
    plain, gpu = module.get_config(), module.get_config("gpu")
    model = model_config_from(gpu.model)
    for field, value in GPU_MODEL_SETTINGS.items():
        assert getattr(model, field) == value
    assert model_config_from(plain.model).attention_impl == "xla"
    changed = {k for k in plain.model if plain.model[k] != gpu.model[k]}
    assert changed == set(GPU_MODEL_SETTINGS) - {k for k, v in GPU_MODEL_SETTINGS.items()
                                                 if plain.model[k] == v}
    assert plain.train.to_dict() == gpu.train.to_dict() and plain.data == gpu.data
    with pytest.raises(ConfigError, match="unknown config variant 'tpu'"):
        module.get_config("tpu")
