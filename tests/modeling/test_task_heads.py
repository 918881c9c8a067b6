"""Task heads: names (HF's), shapes, float32 outputs, padding invariance, span masking."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

from bert_jax.config import family_config, model_config_for
from bert_jax.modeling.models import init_params
from bert_jax.modeling.task_models import SPAN_MASKED, task_model
from tests import synthetic

HEAD_PARAMS = {"classification": {"classifier/kernel": (128, 3), "classifier/bias": (3,)},
               "regression": {"classifier/kernel": (128, 1), "classifier/bias": (1,)},
               "token": {"classifier/kernel": (128, 3), "classifier/bias": (3,)},
               "span": {"qa_outputs/kernel": (128, 2), "qa_outputs/bias": (2,)}}


def _apply(model, params, batch):
    fn = jax.jit(lambda p, i, m, t: model.apply({"params": p}, i, m, t))
    return fn(params, batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])


@pytest.mark.parametrize("kind", list(HEAD_PARAMS))
def test_heads_shapes_names_and_padding(kind):
    model = task_model(model_config_for("tiny", vocab_size=synthetic.VOCAB), kind, 3)
    params = init_params(model, jax.random.key(0))
    flat = traverse_util.flatten_dict(params, sep="/")
    top = {k for k in flat if not k.startswith(("embeddings/", "encoder/", "pooler/"))}
    assert top == set(HEAD_PARAMS[kind])
    assert {k: flat[k].shape for k in top} == HEAD_PARAMS[kind]
    # The pooler exists only where the head reads it; no pretraining heads.
    assert any(k.startswith("pooler/") for k in flat) == (kind in ("classification",
                                                                    "regression"))
    batch = synthetic.batch(batch_size=4, seq_len=16, min_len=6)
    out = _apply(model, params, batch)
    # The same rows padded with 16 more positions of garbage ids (mask 0).
    longer = {k: np.concatenate([v, np.full_like(v, 7 if k == "input_ids" else 0)], axis=1)
              for k, v in batch.items() if k in ("input_ids", "attention_mask",
                                                 "token_type_ids")}
    out_long = _apply(model, params, longer)
    real = batch["attention_mask"].astype(bool)
    if kind in ("classification", "regression"):
        assert out["logits"].shape == (4, 3 if kind == "classification" else 1)
        np.testing.assert_allclose(out["logits"], out_long["logits"], atol=1e-5)
    elif kind == "token":
        assert out["logits"].shape == (4, 16, 3)
        np.testing.assert_allclose(out["logits"][real], out_long["logits"][:, :16][real],
                                   atol=1e-5)
    else:
        for name in ("start_logits", "end_logits"):
            assert out[name].shape == (4, 16)
            np.testing.assert_allclose(out[name][real], out_long[name][:, :16][real],
                                       atol=1e-5)
            assert np.all(np.asarray(out[name])[~real] == SPAN_MASKED)
            assert np.all(np.asarray(out_long[name])[:, 16:] == SPAN_MASKED)
    assert all(v.dtype == jnp.float32 for k, v in out.items() if "logits" in k)


def test_bf16_compute_gives_float32_logits():
    config = model_config_for("tiny", vocab_size=synthetic.VOCAB, dtype="bfloat16")
    model = task_model(config, "token", 4)
    out = _apply(model, init_params(model, jax.random.key(0)), synthetic.batch(2, 8, min_len=4))
    assert out["logits"].dtype == jnp.float32


def test_ambert_task_model_has_three_classifiers():
    config = family_config("ambert", "tiny", vocab_size=synthetic.VOCAB,
                           coarse_vocab_size=synthetic.COARSE_VOCAB)
    model = task_model(config, "classification", 3)
    params = init_params(model, jax.random.key(0))
    assert {"classifier", "classifier_fine", "classifier_coarse"} <= set(params)
    assert params["classifier"]["kernel"].shape == (256, 3)  # [CLS] fine ++ coarse
    batch = synthetic.with_coarse(synthetic.batch(4, 16, min_len=6))
    out = jax.jit(lambda p: model.apply(
        {"params": p}, batch["input_ids"], batch["attention_mask"], batch["token_type_ids"],
        coarse_ids=batch["coarse_ids"], coarse_start=batch["coarse_start"]))(params)
    for name in ("logits", "logits_fine", "logits_coarse"):
        assert out[name].shape == (4, 3) and out[name].dtype == jnp.float32
    with pytest.raises(ValueError, match="AMBERT fine-tuning supports"):
        init_params(task_model(config, "span", 2), jax.random.key(0))
