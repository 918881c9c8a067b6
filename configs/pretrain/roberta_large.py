"""RoBERTa-large (Liu et al. 2019): 24 layers, hidden 1024, 355M parameters.

configs/pretrain/roberta_base.py's recipe with the paper's large-model changes: peak learning
rate 4e-4 and 30k warm-up steps.
"""

from bert_jax.config import model_config_dict
from configs.pretrain import roberta_base


def get_config():
    config = roberta_base.get_config()
    config.model = model_config_dict("large", family="roberta")
    config.data.vocab_path = "roberta-large/tokenizer.json"
    config.train.learning_rate = 4e-4
    config.train.warmup_steps = 30_000
    return config
