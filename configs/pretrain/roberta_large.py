"""RoBERTa-large (Liu et al. 2019): 24 layers, hidden 1024, 355M parameters.

configs/pretrain/roberta_base.py's recipe with the paper's large-model changes: peak learning
rate 4e-4 and 30k warm-up steps.

`--config configs/pretrain/roberta_large.py:gpu` takes the fastest settings measured on a GPU
(bert_jax.config.GPU_MODEL_SETTINGS: bf16, cuDNN attention without attention dropout,
unrolled layers; BENCHMARKS.md).
"""

from bert_jax.config import apply_variant, model_config_dict
from configs.pretrain import roberta_base


def get_config(variant: str = ""):
    config = roberta_base.get_config()
    config.model = model_config_dict("large", family="roberta")
    config.data.vocab_path = "roberta-large/tokenizer.json"
    config.train.learning_rate = 4e-4
    config.train.warmup_steps = 30_000
    return apply_variant(config, variant)
