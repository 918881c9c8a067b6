"""A tiny ALBERT (2 layers, hidden 128, embeddings 64, all layers shared) on the embedded
corpus: bert_tiny's budget with ALBERT's choices, so they compare at equal tokens.

ALBERT (Lan et al. 2019): factorized embeddings (E=64 projected to H=128), one set of layer
weights shared by every layer, sentence-order prediction instead of NSP, n-gram masking (n <= 3), a Unigram
(SentencePiece-style) vocabulary (the project's uncased 8k one for this corpus), LAMB.
"""

from bert_jax.config import model_config_dict
from bert_jax.data.tokenizer import DEFAULT_PATHS
from configs.pretrain import bert_tiny


def get_config():
    config = bert_tiny.get_config()
    config.model = model_config_dict("tiny", family="albert", vocab_size=8192,
                                     max_position_embeddings=64, hidden_dropout=0.0,
                                     attention_dropout=0.0)
    config.data.tokenizer = "unigram"
    config.data.vocab_path = DEFAULT_PATHS["unigram"]
    config.data.sentence_task = "sop"
    config.masking.strategy = "ngram"  # whole-word n-grams, n <= 3, p(n) ~ 1/n
    config.train.optimizer = "lamb"
    # LAMB's step is lr * ||w|| per weight (the trust ratio), not lr per entry as Adam's, so
    # its rate is not bert_tiny's 2e-3: at 300 steps eval MLM accuracy was 0.088 at 1e-2 and
    # 0.136 at 3e-2 (--config.train.learning_rate=... --config.train.num_steps=300).
    config.train.learning_rate = 3e-2
    return config
