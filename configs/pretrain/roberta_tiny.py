"""A tiny RoBERTa (2 layers, hidden 128) on the embedded corpus: bert_tiny's budget and
schedule with RoBERTa's choices, so the two compare at equal tokens.

RoBERTa (Liu et al. 2019) differs from BERT in its data and objective, not its layers:
byte-level BPE (the project's cased 8k BPE for this corpus), no next-sentence prediction,
FULL-SENTENCES rows (text packed across documents with a separator, always full length),
masks redrawn at every step (this codebase's default), Adam with b2 0.98, and positions
numbered from padding index + 1 (model.position_offset 2, so 64 tokens need 66 positions).
"""

from bert_jax.config import model_config_dict
from bert_jax.data.tokenizer import DEFAULT_PATHS
from configs.pretrain import bert_tiny


def get_config():
    config = bert_tiny.get_config()
    config.model = model_config_dict("tiny", family="roberta", vocab_size=8192,
                                     max_position_embeddings=66, hidden_dropout=0.0,
                                     attention_dropout=0.0)
    config.data.tokenizer = "bpe"
    config.data.vocab_path = DEFAULT_PATHS["bpe"]
    config.data.lowercase = False
    config.data.sentence_task = "none"
    config.data.packing = "full_sentences"
    config.data.short_seq_prob = 0.0  # RoBERTa trains on full-length rows only
    config.train.adam_b2 = 0.98
    return config
