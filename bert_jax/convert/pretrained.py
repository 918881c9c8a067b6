"""A loaded checkpoint: ModelConfig + model + params + tokenizer, callable like the model.

Every loader of this package (HF, Google TF, bert_jax exports and workdirs) returns a
`Pretrained`; every writer takes one. The tokenizer files a BERT directory carries are read
and written here too: `vocab.txt` (ids = line numbers) is the source of truth; `tokenizer.json`
alone also works (its WordPiece vocab is written out once to a temporary vocab.txt).

RoBERTa (byte-level BPE) and ALBERT (Unigram) tokenizers are kept as what they are, an HF
`tokenizers.Tokenizer` read from `tokenizer.json` and written back as is; the project's own
BPE/Unigram tokenizers (bert_jax/data/tokenizer.py) are for pretraining from scratch.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import shutil
import tempfile
from typing import Any

import jax
import numpy as np

from bert_jax.config import COMPUTE_FIELDS, ModelConfig
from bert_jax.data.tokenizer import SPECIAL_TOKENS, Tokenizer, load_tokenizer

TOKENIZER_JSON = "tokenizer.json"
from bert_jax.modeling.models import BertForPreTraining

# ModelConfig fields a loader may override: they do not change the parameters, so any
# checkpoint fits whatever their values. (hidden_act: e.g. "gelu" for a Google checkpoint,
# to match HF's conversions of it.)
RUNTIME_FIELDS = COMPUTE_FIELDS + ("hidden_act",)


def check_overrides(overrides: dict) -> None:
    bad = sorted(set(overrides) - set(RUNTIME_FIELDS))
    if bad:
        raise ValueError(f"cannot override {bad} when loading a checkpoint: they are fixed by "
                         f"its parameters; only {RUNTIME_FIELDS} can be set")


@functools.partial(jax.jit, static_argnums=0)
def _forward(model, params, input_ids_BxL, attention_mask_BxL, token_type_ids_BxL):
    return model.apply({"params": params}, input_ids_BxL, attention_mask_BxL,
                       token_type_ids_BxL, deterministic=True)


@dataclasses.dataclass
class Pretrained:
    """A checkpoint ready to run.

    Attributes:
      config: the ModelConfig its parameters fit (heads on/off as in the checkpoint).
      params: nested Flax params of `BertForPreTraining(config)` (numpy or jax arrays).
      tokenizer: bert_jax WordPiece Tokenizer (BERT), an HF `tokenizers.Tokenizer` (a
        RoBERTa/ALBERT tokenizer.json), or None when no tokenizer files came with it.
      model: `BertForPreTraining(config)`.
    """

    config: ModelConfig
    params: Any
    tokenizer: Tokenizer | None = None
    model: BertForPreTraining = dataclasses.field(init=False, repr=False)

    def __post_init__(self):
        self.model = BertForPreTraining(self.config)

    def __call__(self, input_ids, attention_mask=None, token_type_ids=None) -> dict:
        """int [B, L] arrays -> dict of float32 outputs, dropout off.

        Keys: `last_hidden_state` [B, L, H]; `pooled_output` [B, H] with a pooler;
        `mlm_logits` [B, L, V] (every position) with an MLM head; `nsp_logits` [B, 2] with
        an NSP head; `sop_logits` [B, 2] with a sentence-order head. Missing masks mean all
        ones, missing token types all zeros.
        """
        ids_BxL = jax.numpy.asarray(input_ids, jax.numpy.int32)
        mask_BxL = (jax.numpy.ones_like(ids_BxL) if attention_mask is None
                    else jax.numpy.asarray(attention_mask, jax.numpy.int32))
        types_BxL = (jax.numpy.zeros_like(ids_BxL) if token_type_ids is None
                     else jax.numpy.asarray(token_type_ids, jax.numpy.int32))
        return _forward(self.model, self.params, ids_BxL, mask_BxL, types_BxL)

    def encode(self, texts, max_length: int | None = None) -> dict[str, np.ndarray]:
        """`[CLS] text [SEP]` for each text, right-padded to the longest.

        Returns int32 [B, L] `input_ids`, `attention_mask`, `token_type_ids` (all zeros).
        Texts are cut to `max_length` tokens in all (default: max_position_embeddings).
        """
        tok = self.tokenizer
        if tok is None:
            raise ValueError("this checkpoint came without tokenizer files (vocab.txt)")
        if not isinstance(tok, Tokenizer):
            raise ValueError("encode() is for BERT's WordPiece tokenizer; this checkpoint's "
                             "HF tokenizer encodes with tokenizer.encode_batch(texts)")
        max_length = max_length or self.config.max_position_embeddings
        rows = [[tok.cls_id, *ids[:max_length - 2].tolist(), tok.sep_id]
                for ids, _ in tok.encode_batch(texts)]
        length = max(len(r) for r in rows)
        ids_BxL = np.full((len(rows), length), tok.pad_id, np.int32)
        mask_BxL = np.zeros((len(rows), length), np.int32)
        for i, row in enumerate(rows):
            ids_BxL[i, :len(row)] = row
            mask_BxL[i, :len(row)] = 1
        return {"input_ids": ids_BxL, "attention_mask": mask_BxL,
                "token_type_ids": np.zeros_like(ids_BxL)}


def load_tokenizer_from(directory: str, lowercase: bool | None = None):
    """The tokenizer of a checkpoint directory, or None without tokenizer files.

    BERT's WordPiece (vocab.txt or a WordPiece tokenizer.json) comes back as a bert_jax
    Tokenizer; any other tokenizer.json (RoBERTa's BPE, ALBERT's Unigram) as the HF
    `tokenizers.Tokenizer` it describes.

    Lowercasing comes from `lowercase`, else `tokenizer_config.json` (`do_lower_case`),
    else `tokenizer.json`'s normalizer, else the vocab itself: an uncased vocab has no
    upper-case letters (Google's TF checkpoints say it nowhere else).
    """
    vocab = os.path.join(directory, "vocab.txt")
    if not os.path.isfile(vocab):
        vocab = _vocab_from_tokenizer_json(directory)
        if vocab is None:
            return _other_tokenizer_json(directory)
    if lowercase is None:
        lowercase = _lowercase_from_files(directory)
    if lowercase is None:
        with open(vocab, encoding="utf-8") as f:
            pieces = [line.rstrip("\n") for line in f]
        # Bracketed pieces ([CLS], [unused0], ...) are upper-case in every vocab.
        lowercase = not any(p.lower() != p for p in pieces
                            if not (p.startswith("[") and p.endswith("]")))
    return load_tokenizer(vocab, lowercase=lowercase)


def _lowercase_from_files(directory: str) -> bool | None:
    config = _read_json(os.path.join(directory, "tokenizer_config.json"))
    if config and "do_lower_case" in config:
        return bool(config["do_lower_case"])
    normalizer = (_read_json(os.path.join(directory, "tokenizer.json")) or {}).get("normalizer")
    if normalizer and normalizer.get("type") == "BertNormalizer":
        return bool(normalizer.get("lowercase", True))
    return None


def _vocab_from_tokenizer_json(directory: str) -> str | None:
    spec = _read_json(os.path.join(directory, "tokenizer.json"))
    model = (spec or {}).get("model") or {}
    if model.get("type") != "WordPiece":
        return None
    by_id = sorted(model["vocab"].items(), key=lambda item: item[1])
    if [i for _, i in by_id] != list(range(len(by_id))):
        raise ValueError(f"{directory}/tokenizer.json: WordPiece ids are not 0..V-1")
    path = os.path.join(tempfile.mkdtemp(prefix="bert_jax_vocab_"), "vocab.txt")
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(token + "\n" for token, _ in by_id)
    return path


def _other_tokenizer_json(directory: str):
    """An HF tokenizers.Tokenizer from a non-WordPiece tokenizer.json, else None."""
    path = os.path.join(directory, TOKENIZER_JSON)
    if not os.path.isfile(path):
        return None
    from tokenizers import Tokenizer as HFTokenizer

    return HFTokenizer.from_file(path)


def _read_json(path: str) -> dict | None:
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _save_hf_tokenizer_json(tokenizer, out_dir: str, *, model_max_length: int) -> None:
    """The project's BPE/Unigram tokenizer.json, made ready for `transformers.AutoTokenizer`:
    a post-processor that frames text as [CLS] A [SEP] (B [SEP]) with this vocabulary's
    role tokens, and the role names in tokenizer_config.json. (The project itself adds the
    framing when it builds instances, and never registers the role tokens as added tokens so
    that literal "<mask>" in corpus text stays text; an exported tokenizer is for others.)"""
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import processors

    hf_tok = HFTokenizer.from_file(tokenizer.path)
    name = tokenizer.id_to_token
    cls, sep = name(tokenizer.cls_id), name(tokenizer.sep_id)
    hf_tok.post_processor = processors.TemplateProcessing(
        single=f"{cls} $A {sep}", pair=f"{cls} $A {sep} $B:1 {sep}:1",
        special_tokens=[(cls, tokenizer.cls_id), (sep, tokenizer.sep_id)])
    hf_tok.save(os.path.join(out_dir, TOKENIZER_JSON))
    roles = {"pad_token": name(tokenizer.pad_id), "unk_token": name(tokenizer.unk_id),
             "cls_token": cls, "sep_token": sep, "mask_token": name(tokenizer.mask_id)}
    if tokenizer.kind == "bpe":  # RoBERTa's names for the same tokens
        roles.update(bos_token=cls, eos_token=sep)
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w") as f:
        json.dump({"tokenizer_class": "PreTrainedTokenizerFast",
                   "model_max_length": model_max_length, **roles}, f, indent=2)
    with open(os.path.join(out_dir, "special_tokens_map.json"), "w") as f:
        json.dump(roles, f, indent=2)


def save_tokenizer(tokenizer, out_dir: str, *, model_max_length: int) -> None:
    """vocab.txt + the two small JSON files `transformers.AutoTokenizer` reads; an HF
    tokenizer (RoBERTa, ALBERT) as its tokenizer.json."""
    if not isinstance(tokenizer, Tokenizer):
        tokenizer.save(os.path.join(out_dir, TOKENIZER_JSON))
        return
    if tokenizer.kind != "wordpiece":  # the project's BPE/Unigram: a tokenizer.json
        _save_hf_tokenizer_json(tokenizer, out_dir, model_max_length=model_max_length)
        return
    vocab = os.path.join(out_dir, "vocab.txt")
    if not (os.path.exists(vocab) and os.path.samefile(tokenizer.path, vocab)):
        shutil.copyfile(tokenizer.path, vocab)
    special = dict(zip(("pad_token", "unk_token", "cls_token", "sep_token", "mask_token"),
                       SPECIAL_TOKENS))
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w") as f:
        json.dump({"tokenizer_class": "BertTokenizer", "do_lower_case": tokenizer.lowercase,
                   "model_max_length": model_max_length, **special}, f, indent=2)
    with open(os.path.join(out_dir, "special_tokens_map.json"), "w") as f:
        json.dump(special, f, indent=2)
