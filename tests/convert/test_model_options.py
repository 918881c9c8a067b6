"""The ModelConfig switches checkpoints need: optional pooler / MLM / NSP modules and the
feed-forward activation. (Parity of each against transformers is in test_hf.py.)"""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bert_jax.config import ConfigError, ModelConfig, validate
from bert_jax.modeling.layers import activation
from bert_jax.modeling.models import BertForPreTraining
from configs.pretrain import bert_tiny

SMALL = ModelConfig(vocab_size=40, hidden_size=16, num_layers=1, num_heads=2,
                    intermediate_size=24, max_position_embeddings=16)


@pytest.mark.parametrize("flags,modules", [
    (dict(), {"embeddings", "encoder", "pooler", "mlm_head", "nsp_head"}),
    (dict(next_sentence=False), {"embeddings", "encoder", "pooler", "mlm_head"}),
    (dict(next_sentence=False, mlm_head=False), {"embeddings", "encoder", "pooler"}),
    (dict(next_sentence=False, mlm_head=False, pooler=False), {"embeddings", "encoder"}),
])
def test_modules_that_are_off_have_no_params_and_no_outputs(flags, modules):
    model = BertForPreTraining(dataclasses.replace(SMALL, **flags))
    ids = jnp.ones((2, 5), jnp.int32)
    params, out = jax.eval_shape(
        lambda: (lambda p: (p, model.apply({"params": p}, ids)))(
            model.init(jax.random.key(0), ids)["params"]))
    assert set(params) == modules
    keys = {"pooler": "pooled_output", "mlm_head": "mlm_logits", "nsp_head": "nsp_logits"}
    assert set(out) == {"last_hidden_state"} | {keys[m] for m in modules if m in keys}


def test_activations_are_the_named_formulas():
    x = np.linspace(-4, 4, 81, dtype=np.float32)
    erf = np.vectorize(math.erf)
    expected = {
        "gelu": 0.5 * x * (1 + erf(x / np.sqrt(2))),
        "gelu_tanh": 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3))),
        "relu": np.maximum(x, 0),
        "silu": x / (1 + np.exp(-x)),
    }
    for act, want in expected.items():
        got = activation(dataclasses.replace(SMALL, hidden_act=act))(jnp.asarray(x))
        np.testing.assert_allclose(got, want, atol=1e-6, err_msg=act)


@pytest.mark.parametrize("fields,message", [
    (dict(hidden_act="tanh"), "model.hidden_act"),
    (dict(pooler=False), "model.next_sentence needs model.pooler"),
])
def test_bad_switches_are_named(fields, message):
    with pytest.raises(ConfigError, match=message):
        dataclasses.replace(SMALL, **fields).check()


def test_pretraining_needs_the_mlm_head():
    config = bert_tiny.get_config()
    config.model.mlm_head = False
    with pytest.raises(ConfigError, match="model.mlm_head"):
        validate(config, num_devices=1)
