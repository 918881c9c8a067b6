"""RoBERTa-base (Liu et al. 2019): 12 layers, hidden 768, 125M parameters.

The paper's recipe: 500k steps of 8k sequences of 512 tokens (FULL-SENTENCES, no NSP,
dynamic masking), Adam(b1 0.9, b2 0.98, eps 1e-6, weight decay 0.01), peak learning rate
6e-4 after 24k warm-up steps, linear decay, dropout 0.1, GPT-2's 50,265-token byte-level BPE
(position ids from 2, hence 514 positions).

Corpus: the paper's 160 GB (BookCorpus, CC-News, OpenWebText, Stories) is not in TFDS;
English Wikipedia (`wikipedia/20230601.en`) stands in. The tokenizer is the `tokenizer.json`
of a released RoBERTa (e.g. Hugging Face `roberta-base`), downloaded beside the run.

`--config configs/pretrain/roberta_base.py:gpu` takes the fastest settings measured on a GPU
(bert_jax.config.GPU_MODEL_SETTINGS: bf16, cuDNN attention without attention dropout,
unrolled layers; BENCHMARKS.md).
"""

from bert_jax.config import apply_variant, default_pretrain_config, model_config_dict


def get_config(variant: str = ""):
    config = default_pretrain_config()
    config.model = model_config_dict("base", family="roberta")
    config.data.corpus = "wikipedia/20230601.en"
    config.data.tokenizer = "bpe"
    config.data.vocab_path = "roberta-base/tokenizer.json"
    config.data.lowercase = False
    config.data.sentence_task = "none"
    config.data.packing = "full_sentences"
    config.data.short_seq_prob = 0.0
    config.data.max_seq_len = 512
    config.masking.max_predictions_per_seq = 80
    config.train.num_steps = 500_000
    config.train.batch_size = 8192
    config.train.learning_rate = 6e-4
    config.train.warmup_steps = 24_000
    config.train.adam_b2 = 0.98
    config.train.adam_eps = 1e-6
    config.train.log_every = 1000
    config.train.eval_every = 10_000
    config.train.checkpoint_every = 10_000
    return apply_variant(config, variant)
