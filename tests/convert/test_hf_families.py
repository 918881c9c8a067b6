"""RoBERTa and ALBERT checkpoints in and out: same numbers as transformers (fp32, CPU).

Random small models of each HF class, right-padded batches, `save_pretrained` -> `load_hf`
-> compare; then `save_hf` -> transformers reload -> compare again. `pytest -s` prints the
max abs differences.
"""

import dataclasses
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("safetensors")

from bert_jax.convert import ConversionError, convert, load_hf, save_hf  # noqa: E402
from bert_jax.convert.pretrained import Pretrained  # noqa: E402
from tests.convert import reference  # noqa: E402

T = transformers
# (HF class, small config, extra config fields, model kwargs, batch, bert_jax flags,
#  transformers Auto class the export must load with)
CASES = {
    "RobertaForMaskedLM": (T.RobertaForMaskedLM, reference.ROBERTA_SMALL, {}, {},
                           reference.roberta_batch,
                           dict(pooler=False, mlm_head=True, sentence_order=False),
                           T.AutoModelForMaskedLM),
    "RobertaModel": (T.RobertaModel, reference.ROBERTA_SMALL, {}, {}, reference.roberta_batch,
                     dict(pooler=True, mlm_head=False, sentence_order=False), T.AutoModel),
    "AlbertForPreTraining": (T.AlbertForPreTraining, reference.ALBERT_SMALL, {}, {},
                             reference.padded_batch,
                             dict(pooler=True, mlm_head=True, sentence_order=True,
                                  share_layers="all"),
                             T.AutoModelForPreTraining),
    # One group per layer: ALBERT without sharing.
    "AlbertForMaskedLM-unshared": (T.AlbertForMaskedLM, reference.ALBERT_SMALL,
                                   dict(num_hidden_groups=3), {}, reference.padded_batch,
                                   dict(pooler=False, mlm_head=True, sentence_order=False,
                                        share_layers="none"),
                                   T.AutoModelForMaskedLM),
    "AlbertModel": (T.AlbertModel, reference.ALBERT_SMALL, {}, {}, reference.padded_batch,
                    dict(pooler=True, mlm_head=False, sentence_order=False), T.AutoModel),
}


@pytest.fixture(scope="module", params=sorted(CASES))
def case(request, tmp_path_factory):
    cls, small, extra, kwargs, batch_fn, flags, auto = CASES[request.param]
    model = reference.random_model(cls, small=small, model_kwargs=kwargs, **extra)
    path = tmp_path_factory.mktemp(request.param)
    model.save_pretrained(path)
    return dict(name=request.param, model=model, path=path, batch=batch_fn(), flags=flags,
                auto=auto)


@pytest.mark.parametrize("scan_layers", [True, False])
def test_load_matches_transformers(case, scan_layers):
    pretrained = load_hf(str(case["path"]), scan_layers=scan_layers)
    c = pretrained.config
    for field, value in case["flags"].items():
        assert getattr(c, field) == value, field
    assert not c.next_sentence
    if c.family == "roberta":
        assert (c.position_offset, c.layer_norm_eps, c.type_vocab_size) == (2, 1e-5, 1)
    else:
        assert (c.family, c.embedding_size, c.hidden_act) == ("albert", 24, "gelu_tanh")
    reference.assert_close(pretrained(**case["batch"]),
                           reference.outputs(case["model"], case["batch"]),
                           f"HF {case['name']} -> bert_jax (scan_layers={scan_layers})")


def test_export_loads_in_transformers_with_same_numbers(case, tmp_path):
    pretrained = load_hf(str(case["path"]), scan_layers=False)
    save_hf(pretrained, str(tmp_path))
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["model_type"] == pretrained.config.family
    exported, info = case["auto"].from_pretrained(tmp_path, output_loading_info=True)
    assert type(exported) is type(case["model"]), type(exported)
    assert not any(info.values()), info  # no missing, unexpected or mismatched tensors
    reference.assert_close(reference.outputs(exported.eval(), case["batch"]),
                           reference.outputs(case["model"], case["batch"]),
                           f"HF {case['name']} -> bert_jax -> HF export -> transformers")


def test_parity_would_catch_a_wrong_offset_or_eps(case):
    """The comparison is sharp enough to see what distinguishes the families: RoBERTa's
    position offset and LayerNorm eps (1e-5 vs BERT's 1e-12), ALBERT's tanh GELU. Each
    changed alone breaks the 1e-5 tolerance."""
    pretrained = load_hf(str(case["path"]))
    c = pretrained.config
    ref = reference.outputs(case["model"], case["batch"])
    if c.family == "roberta":
        wrong = [dict(position_offset=0), dict(position_offset=1), dict(layer_norm_eps=1e-12)]
    else:
        wrong = [dict(hidden_act="gelu")]
    for change in wrong:
        bad = Pretrained(dataclasses.replace(c, **change), pretrained.params)
        out = bad(**case["batch"])
        diff = float(np.abs(out["last_hidden_state"] - ref["last_hidden_state"]).max())
        print(f"\n{case['name']} with {change}: max abs diff {diff:.2g}")
        assert diff > 10 * reference.TOL, change


def test_roberta_positions_follow_the_mask(case):
    """HF RoBERTa numbers positions from the non-pad tokens; a row's real positions do not
    depend on how much padding follows it, and padded slots sit at the padding row."""
    if not case["name"].startswith("Roberta"):
        pytest.skip("RoBERTa only")
    pretrained = load_hf(str(case["path"]))
    batch = case["batch"]
    short = {k: v[2:, :3] for k, v in batch.items()}  # row 2 has 3 real tokens
    full = pretrained(**batch)["last_hidden_state"][2, :3]
    np.testing.assert_allclose(pretrained(**short)["last_hidden_state"][0], full, atol=2e-5)


def test_cli_converts_each_family(case, tmp_path):
    """`python -m experiments.convert` is `convert`: HF -> bert_jax -> HF, same numbers."""
    convert(str(case["path"]), str(tmp_path / "native"), "bert_jax")
    convert(str(tmp_path / "native"), str(tmp_path / "hf"), "hf")
    again = case["auto"].from_pretrained(tmp_path / "hf").eval()
    reference.assert_close(reference.outputs(again, case["batch"]),
                           reference.outputs(case["model"], case["batch"]),
                           f"{case['name']} via the bert_jax format", tol=0.0)


@pytest.mark.parametrize("change,message", [
    (dict(share_layers="attention"), "share_layers='attention'"),
    (dict(embedding_size=0), "embedding_size 0"),
    (dict(next_sentence=True, sentence_order=False), "next_sentence"),
])
def test_albert_configs_without_an_hf_class_are_refused(change, message, tmp_path):
    from bert_jax.config import family_config
    from bert_jax.convert.hf import check_hf_layout

    config = family_config("albert", "tiny", vocab_size=50, **change)
    with pytest.raises(ConversionError, match=message):
        check_hf_layout(config)
    bert = family_config("bert", "tiny", vocab_size=50, share_layers="all")
    with pytest.raises(ConversionError, match="share_layers='all'"):
        save_hf(Pretrained(bert, params=None), str(tmp_path))
    assert not list(tmp_path.iterdir())  # refused before anything was written


def test_albert_inner_groups_are_refused(tmp_path):
    model = reference.random_model(T.AlbertModel, small=reference.ALBERT_SMALL,
                                   inner_group_num=2)
    model.save_pretrained(tmp_path)
    with pytest.raises(ConversionError, match="inner_group_num=2"):
        load_hf(str(tmp_path))


def test_tokenizer_json_comes_along(tmp_path):
    """A RoBERTa directory with a byte-level BPE tokenizer.json: loaded as an HF tokenizer,
    written back next to the exported weights."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    model = reference.random_model(T.RobertaForMaskedLM, small=reference.ROBERTA_SMALL)
    model.save_pretrained(tmp_path / "src")
    vocab = {t: i for i, t in enumerate(["<s>", "<pad>", "</s>", "<unk>", "a", "b", "ab"])}
    tok = Tokenizer(models.BPE(vocab, [("a", "b")], unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(str(tmp_path / "src" / "tokenizer.json"))
    pretrained = load_hf(str(tmp_path / "src"))
    assert pretrained.tokenizer.encode("ab a").ids == [6, 4]
    save_hf(pretrained, str(tmp_path / "dst"))
    assert Tokenizer.from_file(str(tmp_path / "dst" / "tokenizer.json")).encode("ab").ids == [6]
    with pytest.raises(ValueError, match="encode_batch"):
        pretrained.encode(["ab"])
