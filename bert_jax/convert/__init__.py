"""Checkpoints in and out: Hugging Face (BERT, RoBERTa, ALBERT), Google TF (BERT) and bert_jax's
own formats.

    from bert_jax.convert import load_hf, save_hf
    pretrained = load_hf("path/to/hf_dir")        # config, model, params, tokenizer
    out = pretrained(input_ids, attention_mask=mask, token_type_ids=types)
    save_hf(pretrained, "path/to/out_dir")

Loading never runs code from a file: safetensors first, `pytorch_model.bin` only through
`torch.load(..., weights_only=True)`, Google checkpoints through `tf.train.load_checkpoint`.
"""

from bert_jax.convert.auto import checkpoint_kind, convert, init_params_from, load_pretrained
from bert_jax.convert.google import load_google
from bert_jax.convert.hf import load_hf, save_hf
from bert_jax.convert.names import ConversionError
from bert_jax.convert.native import load_bert_jax, save_bert_jax
from bert_jax.convert.pretrained import Pretrained

__all__ = ["ConversionError", "Pretrained", "checkpoint_kind", "convert", "init_params_from",
           "load_bert_jax", "load_google", "load_hf", "load_pretrained", "save_bert_jax",
           "save_hf"]
