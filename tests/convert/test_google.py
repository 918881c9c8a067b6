"""Google TF checkpoints in: a TF1 name-based checkpoint written here, with the variable
names of google-research/bert, holding the weights of a random transformers BERT."""

import importlib.util
import json

import numpy as np
import pytest

# TensorFlow is imported where a checkpoint is written, not here: importing it takes ~6 s,
# which every pytest-xdist worker would pay at collection.
if importlib.util.find_spec("tensorflow") is None:
    pytest.skip("TensorFlow is not installed", allow_module_level=True)
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("safetensors")

from bert_jax.convert import checkpoint_kind, convert, load_google, load_pretrained  # noqa: E402
from tests.convert import reference  # noqa: E402


def google_variables(state: dict, num_layers: int) -> dict[str, np.ndarray]:
    """google-research/bert variable name -> value, from a BertForPreTraining state dict.
    Written out name by name (not by the library's renaming rules) so that the test checks
    those rules. TF dense kernels are [in, out]: PyTorch weights transposed."""
    w = {k: v.numpy() for k, v in state.items()}
    out = {
        "bert/embeddings/word_embeddings": w["bert.embeddings.word_embeddings.weight"],
        "bert/embeddings/position_embeddings": w["bert.embeddings.position_embeddings.weight"],
        "bert/embeddings/token_type_embeddings":
            w["bert.embeddings.token_type_embeddings.weight"],
        "bert/embeddings/LayerNorm/gamma": w["bert.embeddings.LayerNorm.weight"],
        "bert/embeddings/LayerNorm/beta": w["bert.embeddings.LayerNorm.bias"],
        "bert/pooler/dense/kernel": w["bert.pooler.dense.weight"].T,
        "bert/pooler/dense/bias": w["bert.pooler.dense.bias"],
        "cls/predictions/transform/dense/kernel": w["cls.predictions.transform.dense.weight"].T,
        "cls/predictions/transform/dense/bias": w["cls.predictions.transform.dense.bias"],
        "cls/predictions/transform/LayerNorm/gamma":
            w["cls.predictions.transform.LayerNorm.weight"],
        "cls/predictions/transform/LayerNorm/beta":
            w["cls.predictions.transform.LayerNorm.bias"],
        "cls/predictions/output_bias": w["cls.predictions.bias"],
        "cls/seq_relationship/output_weights": w["cls.seq_relationship.weight"],  # [2, H]
        "cls/seq_relationship/output_bias": w["cls.seq_relationship.bias"],
    }
    for i in range(num_layers):
        tf_layer, hf_layer = f"bert/encoder/layer_{i}/", f"bert.encoder.layer.{i}."
        for tf_name, hf_name in (
                ("attention/self/query", "attention.self.query"),
                ("attention/self/key", "attention.self.key"),
                ("attention/self/value", "attention.self.value"),
                ("attention/output/dense", "attention.output.dense"),
                ("intermediate/dense", "intermediate.dense"),
                ("output/dense", "output.dense")):
            out[tf_layer + tf_name + "/kernel"] = w[hf_layer + hf_name + ".weight"].T
            out[tf_layer + tf_name + "/bias"] = w[hf_layer + hf_name + ".bias"]
        for tf_name, hf_name in (("attention/output/LayerNorm", "attention.output.LayerNorm"),
                                 ("output/LayerNorm", "output.LayerNorm")):
            out[tf_layer + tf_name + "/gamma"] = w[hf_layer + hf_name + ".weight"]
            out[tf_layer + tf_name + "/beta"] = w[hf_layer + hf_name + ".bias"]
    return out


def write_tf1_checkpoint(prefix: str, variables: dict[str, np.ndarray], step: int) -> str:
    """A name-based checkpoint as google-research/bert's Estimator wrote them, plus the
    Adam slots and global step a pretraining checkpoint carries."""
    slots = {f"{name}/adam_{m}": np.zeros_like(v) for name, v in list(variables.items())[:3]
             for m in "mv"}
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        var_list = {name: tf.compat.v1.Variable(value, name=f"v{i}") for i, (name, value)
                    in enumerate({**variables, **slots}.items())}
        var_list["global_step"] = tf.compat.v1.Variable(np.int64(step), name="global_step")
        saver = tf.compat.v1.train.Saver(var_list=var_list)
        with tf.compat.v1.Session(graph=graph) as session:
            session.run(tf.compat.v1.global_variables_initializer())
            return saver.save(session, prefix, global_step=step)


@pytest.fixture(scope="module")
def google_dir(tmp_path_factory):
    """A Google-layout directory of a random BERT using Google's (tanh) GELU and layer-norm
    epsilon (1e-12; their bert_config.json does not say it)."""
    model = reference.random_model(hidden_act="gelu_new", layer_norm_eps=1e-12)
    path = tmp_path_factory.mktemp("google")
    variables = google_variables(model.state_dict(), model.config.num_hidden_layers)
    write_tf1_checkpoint(str(path / "model.ckpt"), variables, step=1000)
    # An older step with other weights, which sorts last as a string ("900" > "1000").
    write_tf1_checkpoint(str(path / "model.ckpt"),
                         {k: v * 0.5 for k, v in variables.items()}, step=900)
    google_config = {k: v for k, v in model.config.to_dict().items() if k in (
        "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
        "intermediate_size", "hidden_dropout_prob", "attention_probs_dropout_prob",
        "max_position_embeddings", "type_vocab_size", "initializer_range")}
    google_config["hidden_act"] = "gelu"  # what Google's files say for their tanh GELU
    (path / "bert_config.json").write_text(json.dumps(google_config))
    reference.write_vocab(path)
    return model, path


def test_google_checkpoint_matches_transformers(google_dir):
    model, path = google_dir
    assert checkpoint_kind(str(path)) == "google"
    pretrained = load_google(str(path), scan_layers=False)
    assert pretrained.config.hidden_act == "gelu_tanh"
    assert pretrained.tokenizer is not None and pretrained.tokenizer.lowercase
    batch = reference.padded_batch()
    ref = reference.outputs(model, batch)
    reference.assert_close(pretrained(**batch), ref, "google TF -> bert_jax (unrolled)")
    # The same through a checkpoint prefix, scanned.
    by_prefix = load_pretrained(str(path / "model.ckpt-1000"))
    assert by_prefix.config.scan_layers
    reference.assert_close(by_prefix(**batch), ref, "google TF prefix -> bert_jax (scanned)")


def test_google_to_hf_conversion_loads_in_transformers(google_dir, tmp_path):
    model, path = google_dir
    convert(str(path), str(tmp_path), to="hf")
    assert json.loads((tmp_path / "config.json").read_text())["hidden_act"] == "gelu_new"
    exported = transformers.BertForPreTraining.from_pretrained(tmp_path).eval()
    batch = reference.padded_batch()
    reference.assert_close(reference.outputs(exported, batch), reference.outputs(model, batch),
                           "google TF -> HF export -> transformers")
