"""ALBERT-xlarge (Lan et al. 2019): configs/pretrain/albert_base.py's recipe at the xlarge size
(bert_jax.config.FAMILY_SIZES["albert"]["xlarge"])."""

from configs.pretrain import albert_base


def get_config():
    config = albert_base.get_config("xlarge")
    config.data.vocab_path = "albert-xlarge-v2/tokenizer.json"
    return config
