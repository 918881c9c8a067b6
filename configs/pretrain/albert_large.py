"""ALBERT-large (Lan et al. 2019): configs/pretrain/albert_base.py's recipe at the large size
(bert_jax.config.FAMILY_SIZES["albert"]["large"])."""

from configs.pretrain import albert_base


def get_config():
    config = albert_base.get_config("large")
    config.data.vocab_path = "albert-large-v2/tokenizer.json"
    return config
