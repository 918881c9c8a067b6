"""Random small PyTorch BERTs, RoBERTas and ALBERTs from `transformers` and their outputs:
the reference side.

Every parameter is drawn at random (LayerNorm scales around 1, biases non-zero) so that a
swapped, untransposed or dropped tensor shows in the outputs. Importing this module needs
torch and transformers; tests importorskip them first.
"""

import numpy as np
import torch
import transformers

VOCAB = 99
# Non-default sizes wherever the config has a field, so each one is carried over.
SMALL = dict(vocab_size=VOCAB, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
             intermediate_size=96, max_position_embeddings=40, type_vocab_size=3,
             layer_norm_eps=1e-7, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
# RoBERTa as released (one token type, eps 1e-5, pad id 1 so positions start at 2).
ROBERTA_SMALL = dict(SMALL, type_vocab_size=1, layer_norm_eps=1e-5, pad_token_id=1)
# ALBERT with E < H, three layers through one shared group, the tanh GELU.
ALBERT_SMALL = dict(SMALL, embedding_size=24, num_hidden_layers=3, hidden_act="gelu_new",
                    num_hidden_groups=1, inner_group_num=1, classifier_dropout_prob=0.0)
TOL = 1e-5  # max abs difference allowed against transformers, fp32 on CPU


def random_model(cls=transformers.BertForPreTraining, seed=0, model_kwargs=None, small=SMALL,
                 **overrides):
    """An eval-mode `cls` (config `small` with `overrides`) with every parameter random."""
    torch.manual_seed(seed)
    model = cls(cls.config_class(**{**small, **overrides}), **(model_kwargs or {}))
    model.eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm.weight" in name or "layer_norm.weight" in name:
                p.uniform_(0.5, 1.5)
            else:
                p.normal_(0.0, 0.1)
    return model


def padded_batch(batch_size=3, length=12, seed=0, vocab=VOCAB):
    """int64 [B, L] ids, mask with real lengths 12/7/3 (padding on the right), token types
    0/1/2 so the type table is exercised."""
    rng = np.random.default_rng(seed)
    lengths = np.array([length, 7, 3][:batch_size])
    mask = (np.arange(length)[None] < lengths[:, None]).astype(np.int64)
    ids = rng.integers(1, vocab, (batch_size, length)) * mask
    types = np.zeros((batch_size, length), np.int64)
    types[0, 4:8], types[0, 8:], types[1, 3:7] = 1, 2, 1
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


def roberta_batch(**kwargs):
    """padded_batch for RoBERTa: one token type, real ids never the pad id (1), padding
    with the pad id as RoBERTa's tokenizers pad."""
    batch = padded_batch(**kwargs)
    mask = batch["attention_mask"]
    ids = np.maximum(batch["input_ids"], 3)  # 0 <s>, 1 <pad>, 2 </s> are special
    return {"input_ids": np.where(mask == 1, ids, 1), "attention_mask": mask,
            "token_type_ids": np.zeros_like(ids)}


# transformers output field -> bert_jax output key.
_LOGITS = {"prediction_logits": "mlm_logits", "logits": "mlm_logits",
           "seq_relationship_logits": "nsp_logits", "sop_logits": "sop_logits"}


def outputs(model, batch) -> dict[str, np.ndarray]:
    """The outputs bert_jax names, computed by a transformers BERT/RoBERTa/ALBERT model."""
    with torch.no_grad():
        out = model(**{k: torch.from_numpy(v) for k, v in batch.items()},
                    output_hidden_states=True)
        base = getattr(model, model.base_model_prefix, model)
        last = out.hidden_states[-1]
        result = {"last_hidden_state": last}
        if base.pooler is not None:
            if hasattr(base, "pooler_activation"):  # ALBERT: a bare Linear on h_[CLS]
                result["pooled_output"] = base.pooler_activation(base.pooler(last[:, 0]))
            else:
                result["pooled_output"] = base.pooler(last)
        for field, key in _LOGITS.items():
            if getattr(out, field, None) is not None:
                result[key] = getattr(out, field)
    return {k: v.numpy() for k, v in result.items()}


def assert_close(ours: dict, ref: dict, label: str, tol: float = TOL) -> None:
    """Same output keys, max abs difference per output <= tol; prints the differences
    (`pytest -s` shows them) so that the parity numbers come from the tests."""
    assert set(ours) == set(ref), (sorted(ours), sorted(ref))
    diffs = {k: float(np.abs(np.asarray(ours[k]) - ref[k]).max()) for k in sorted(ref)}
    print(f"\n{label}: max abs diff " + ", ".join(f"{k} {v:.2g}" for k, v in diffs.items()))
    assert max(diffs.values()) <= tol, diffs


def write_vocab(directory, size=VOCAB):
    """A vocab.txt of `size` lines: BERT's special tokens, then lower-case words."""
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    words += [f"w{i}" for i in range(size - len(words))]
    path = directory / "vocab.txt"
    path.write_text("\n".join(words) + "\n", encoding="utf-8")
    return path
