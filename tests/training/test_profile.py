"""The step profiler's summary: events of a real trace are attributed to the HLO ops that
ran them and to the right kind of op."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bert_jax.training import profile

pytest.importorskip("tensorflow")


def test_category_rules():
    assert profile.category("ynn_fusion.3", "fusion", "jit(f)/layer_1/query/dot_general",
                            "dot") == "matmul"
    assert profile.category("dot.7", "dot", "") == "matmul"
    assert profile.category("copy_bitcast_fusion.2", "fusion", "jit(f)/Dropout_0/div") == (
        "layout copy")
    assert profile.category("transpose.1", "transpose", "") == "layout copy"
    assert profile.category("broadcast_add_fusion", "fusion",
                            "jit(f)/Dropout_0/jit(_bernoulli)/jit(_uniform)/add") == "dropout RNG"
    assert profile.category("add_select_fusion", "fusion", "jit(f)/add") == "other"


def test_summary_of_a_real_trace_finds_the_matmul(tmp_path):
    @jax.jit
    def f(x, w):
        y = jnp.tanh(x @ w)      # a dot, an element-wise op
        return (y.T @ x).sum()   # a transposed operand

    x = jnp.asarray(np.random.default_rng(0).standard_normal((512, 512)), jnp.float32)
    compiled = f.lower(x, x).compile()
    compiled(x, x).block_until_ready()
    with jax.profiler.trace(str(tmp_path)):
        for _ in range(3):
            compiled(x, x).block_until_ready()
    summary = profile.summarize_trace(str(tmp_path), compiled.as_text(), steps=3)
    cats = summary["categories"]
    assert set(cats) == set(profile.CATEGORIES)
    assert cats["matmul"] > 0 and cats["matmul"] >= cats["other"]
    assert cats["dropout RNG"] == 0
    assert summary["top"][0][1] == "matmul"
