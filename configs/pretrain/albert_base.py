"""ALBERT-base (Lan et al. 2019): 12 layers, hidden 768, embeddings 128, all layers shared,
12M parameters.

The paper's recipe: 125k steps of 4096 sequences of 512 tokens (10% shorter), sentence-order
prediction, n-gram masking (n <= 3), LAMB with learning rate 0.00176 (3125 warm-up steps in
google-research/albert's scripts, then linear decay), no dropout, a 30k SentencePiece
vocabulary. Other sizes: albert_large.py, albert_xlarge.py, albert_xxlarge.py.

Corpus: BookCorpus is not in TFDS; English Wikipedia (`wikipedia/20230601.en`) stands in.
The tokenizer is the `tokenizer.json` of a released ALBERT (e.g. Hugging Face
`albert-base-v2`), downloaded beside the run.
"""

from bert_jax.config import default_pretrain_config, model_config_dict


def get_config(size: str = "base"):
    config = default_pretrain_config()
    config.model = model_config_dict(size, family="albert", hidden_dropout=0.0,
                                     attention_dropout=0.0)
    config.data.corpus = "wikipedia/20230601.en"
    config.data.tokenizer = "unigram"
    config.data.vocab_path = "albert-base-v2/tokenizer.json"
    config.data.sentence_task = "sop"
    config.data.max_seq_len = 512
    config.masking.max_predictions_per_seq = 20  # google-research/albert's default
    config.masking.strategy = "ngram"  # whole-word n-grams, n <= 3, p(n) ~ 1/n
    config.train.optimizer = "lamb"
    config.train.num_steps = 125_000
    config.train.batch_size = 4096
    config.train.learning_rate = 0.00176
    config.train.warmup_steps = 3125
    config.train.log_every = 1000
    config.train.eval_every = 10_000
    config.train.checkpoint_every = 5000
    return config
