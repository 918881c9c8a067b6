"""ALBERT-xxlarge (Lan et al. 2019): configs/pretrain/albert_base.py's recipe at the xxlarge size
(bert_jax.config.FAMILY_SIZES["albert"]["xxlarge"])."""

from configs.pretrain import albert_base


def get_config():
    config = albert_base.get_config("xxlarge")
    config.data.vocab_path = "albert-xxlarge-v2/tokenizer.json"
    return config
