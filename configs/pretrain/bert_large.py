"""BERT-large (Devlin et al. 2019): 24 layers, hidden 1024, 16 heads, 340M parameters.

Same recipe and corpus as configs/pretrain/bert_base.py (the paper trains both alike); only
the model size and the vocab file of Google's large release differ.

`--config configs/pretrain/bert_large.py:gpu` takes the fastest settings measured on a GPU
(bert_jax.config.GPU_MODEL_SETTINGS: bf16, cuDNN attention without attention dropout,
unrolled layers; BENCHMARKS.md).
"""

from bert_jax.config import apply_variant, model_config_dict
from configs.pretrain import bert_base


def get_config(variant: str = ""):
    config = bert_base.get_config()
    config.model = model_config_dict("large", vocab_size=30522)
    config.data.vocab_path = "uncased_L-24_H-1024_A-16/vocab.txt"  # Google's release
    return apply_variant(config, variant)
