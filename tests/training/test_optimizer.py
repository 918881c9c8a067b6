"""Schedule and weight-decay mask of the BERT AdamW recipe."""

import jax
import numpy as np
import pytest

from bert_jax.config import model_config_for
from bert_jax.modeling.models import BertForPreTraining, init_params
from bert_jax.training.optimizer import decay_mask, learning_rate_schedule
from tests import synthetic


def test_warmup_then_linear_decay():
    tc = synthetic.train_config(num_steps=110, learning_rate=1e-3)
    tc.warmup_steps = 10
    lr = learning_rate_schedule(tc)
    assert float(lr(0)) == 0.0
    assert float(lr(5)) == pytest.approx(5e-4)
    assert float(lr(10)) == pytest.approx(1e-3)
    assert float(lr(60)) == pytest.approx(5e-4)
    assert float(lr(110)) == pytest.approx(0.0, abs=1e-12)


def test_no_decay_on_biases_and_layer_norm():
    params = init_params(BertForPreTraining(model_config_for("tiny", vocab_size=50)),
                         jax.random.key(0))
    mask = decay_mask(params)
    flat = {"/".join(str(getattr(k, "key", k)) for k in path): v
            for path, v in jax.tree_util.tree_leaves_with_path(mask)}
    assert flat["embeddings/word_embeddings/embedding"]
    assert flat["encoder/layers/block/intermediate/kernel"]
    assert not flat["encoder/layers/block/intermediate/bias"]
    assert not flat["encoder/layers/block/attention_LayerNorm/scale"]
    assert not flat["embeddings/LayerNorm/bias"]
    assert not flat["mlm_head/bias"]
    assert np.sum(list(flat.values())) == sum(
        1 for k in flat if k.endswith(("kernel", "embedding")))
