"""RoBERTa and ALBERT as configs of the one model: sizes against the papers and transformers,
cross-layer sharing, RoBERTa's positions. (Parity with transformers: tests/convert.)"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bert_jax.config import family_config
from bert_jax.convert import names
from bert_jax.modeling.models import BertForPreTraining, init_params
from tests import synthetic


def _num_params(config) -> int:
    """Parameter count from shapes only (jax.eval_shape: nothing is materialised)."""
    shapes = jax.eval_shape(lambda: BertForPreTraining(config).init(
        jax.random.key(0), jnp.zeros((1, 8), jnp.int32)))
    return sum(x.size for x in jax.tree.leaves(shapes))


# (family, size, the paper's count): BERT (Devlin et al.), RoBERTa (Liu et al.; with the
# pooler, as the released checkpoint has it), ALBERT (Lan et al., table 1).
PAPER = [("bert", "base", 110e6), ("roberta", "base", 125e6), ("albert", "base", 12e6),
         ("albert", "large", 18e6), ("albert", "xlarge", 60e6)]


@pytest.mark.parametrize("family,size,expected", PAPER)
def test_parameter_counts_match_the_papers_and_transformers(family, size, expected):
    config = family_config(family, size)
    count = _num_params(config)
    print(f"\n{family}-{size}: {count:,} parameters (paper {expected / 1e6:.0f}M)", end="")
    assert abs(count - expected) / expected < 0.03, count
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from bert_jax.convert.hf import _architecture, hf_config_from

    # The same model in transformers, built on the meta device (no memory), counted with
    # tied weights once. RobertaForMaskedLM has no pooler: compare without it.
    if family == "roberta":
        config = dataclasses.replace(config, pooler=False)
    cls = getattr(transformers, _architecture(config))
    with torch.device("meta"):
        reference = cls(cls.config_class(**hf_config_from(config)))
    hf_count = sum(p.numel() for p in reference.parameters())
    print(f"; transformers {cls.__name__}: {hf_count:,}", end="")
    assert _num_params(config) == hf_count


def _tiny(**overrides):
    fields = dict(vocab_size=synthetic.VOCAB, hidden_dropout=0.0, attention_dropout=0.0)
    return family_config("albert", "tiny", **{**fields, **overrides})


def _run(config, params, batch, **kwargs):
    model = BertForPreTraining(config)
    args = (batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])

    def loss(p):
        out = model.apply({"params": p}, *args, **kwargs)
        return out["mlm_logits"].sum() + out["sop_logits"].sum(), out

    (value, out), grads = jax.jit(jax.value_and_grad(loss, has_aux=True))(params)
    return value, out, grads


@pytest.mark.parametrize("share", ["all", "attention", "ffn"])
def test_sharing_is_one_set_of_parameters_seen_by_every_layer(share):
    """A shared model equals the unshared model whose layers all hold copies of the shared
    modules; its gradient for a shared module is the sum over layers. Scanned and unrolled
    stacks agree."""
    batch = synthetic.batch(batch_size=2, seq_len=12)
    shared_cfg = _tiny(share_layers=share, num_layers=3)
    params = jax.jit(init_params, static_argnums=0)(BertForPreTraining(shared_cfg),
                                                    jax.random.key(0))
    common = params["encoder"]["shared"]["block"]
    # The same function without sharing: every layer gets the shared modules' values.
    plain_cfg = dataclasses.replace(shared_cfg, share_layers="none", scan_layers=False)
    unrolled = names.relayout(params, scan_layers=False)["encoder"]
    plain_encoder = {f"layer_{i}": {**unrolled.get(f"layer_{i}", {}), **common}
                     for i in range(3)}
    plain = {**params, "encoder": plain_encoder}

    value, out, grads = _run(shared_cfg, params, batch)
    value_plain, out_plain, grads_plain = _run(plain_cfg, plain, batch)
    np.testing.assert_allclose(out["last_hidden_state"], out_plain["last_hidden_state"],
                               atol=1e-5)
    np.testing.assert_allclose(value, value_plain, rtol=1e-5)
    summed = jax.tree.map(lambda *g: sum(g), *[
        {k: grads_plain["encoder"][f"layer_{i}"][k] for k in common} for i in range(3)])
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-4, atol=1e-6),
                 grads["encoder"]["shared"]["block"], summed)

    unrolled_cfg = dataclasses.replace(shared_cfg, scan_layers=False)
    value_u, out_u, _ = _run(unrolled_cfg, names.relayout(params, False), batch)
    np.testing.assert_allclose(out_u["last_hidden_state"], out["last_hidden_state"],
                               atol=1e-5)


def test_all_shared_dropout_differs_per_layer():
    """One set of parameters, but each application draws its own dropout mask (as in ALBERT):
    scanned and unrolled both split the dropout key per layer."""
    config = _tiny(hidden_dropout=0.5, num_layers=2)
    batch = synthetic.batch(batch_size=2, seq_len=12)
    params = jax.jit(init_params, static_argnums=0)(BertForPreTraining(config),
                                                    jax.random.key(0))
    rngs = {"dropout": jax.random.key(3)}
    _, out, _ = _run(config, params, batch, deterministic=False, rngs=rngs)
    _, ref, _ = _run(config, params, batch)
    assert np.isfinite(out["last_hidden_state"]).all()
    assert np.abs(out["last_hidden_state"] - ref["last_hidden_state"]).max() > 1e-2


def test_factorized_embeddings_and_mlm_head_shapes():
    config = _tiny()
    params = jax.eval_shape(lambda k: init_params(BertForPreTraining(config), k),
                            jax.random.key(0))
    e, h, v = config.embedding_size, config.hidden_size, config.vocab_size
    assert (e, h) == (64, 128)
    assert params["embeddings"]["word_embeddings"]["embedding"].shape == (v, e)
    assert params["embeddings"]["embedding_projection"]["kernel"].shape == (e, h)
    assert params["mlm_head"]["dense"]["kernel"].shape == (h, e)
    assert params["mlm_head"]["LayerNorm"]["scale"].shape == (e,)
    assert set(params) == {"embeddings", "encoder", "pooler", "mlm_head", "sop_head"}


def test_roberta_positions_count_real_tokens():
    """With position_offset, a sequence's outputs do not depend on padding on either side:
    positions count real tokens from the offset (HF/fairseq RoBERTa)."""
    config = family_config("roberta", "tiny", vocab_size=synthetic.VOCAB,
                           max_position_embeddings=24, hidden_dropout=0.0,
                           attention_dropout=0.0)
    model = BertForPreTraining(config)
    params = jax.jit(init_params, static_argnums=0)(model, jax.random.key(0))
    apply = jax.jit(lambda ids, mask: model.apply({"params": params}, ids, mask)
                    ["last_hidden_state"])
    ids = jnp.arange(5, 15)[None]
    ones = jnp.ones_like(ids)
    alone = apply(ids, ones)[0]
    right = apply(jnp.pad(ids, ((0, 0), (0, 4)), constant_values=1),
                  jnp.pad(ones, ((0, 0), (0, 4))))[0, :10]
    left = apply(jnp.pad(ids, ((0, 0), (4, 0)), constant_values=1),
                 jnp.pad(ones, ((0, 0), (4, 0))))[0, 4:]
    np.testing.assert_allclose(right, alone, atol=2e-5)
    np.testing.assert_allclose(left, alone, atol=2e-5)
    # 10 real tokens at offset 2 use rows 2..11: position 0 is never used.
    emb = model.apply({"params": params}, ids, ones, method=lambda m, i, a:
                      m.embeddings.positions(a, i.shape[-1]))
    np.testing.assert_array_equal(emb[0], np.arange(2, 12))
