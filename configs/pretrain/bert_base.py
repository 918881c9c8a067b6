"""BERT-base (Devlin et al. 2019): 12 layers, hidden 768, 12 heads, 110M parameters.

The paper's recipe: 1M steps of 256 sequences, Adam(1e-4, b1 0.9, b2 0.999, weight decay
0.01), 10k warm-up steps then linear decay, dropout 0.1, 15% masking with at most 20
predictions per 128-token sequence. The paper trains 90% of the steps at length 128 and the
last 10% at 512 with 80 predictions (--config.data.max_seq_len=512
--config.masking.max_predictions_per_seq=80).

Corpus: English Wikipedia through TFDS (`wikipedia/20230601.en`, needs the internet to
build once). BookCorpus, the paper's other half, is not in TFDS. The vocabulary is Google's
uncased 30,522-piece vocab.txt from the released BERT checkpoints.

`--config configs/pretrain/bert_base.py:gpu` takes the fastest settings measured on a GPU
(bert_jax.config.GPU_MODEL_SETTINGS: bf16, cuDNN attention without attention dropout,
unrolled layers; BENCHMARKS.md).
"""

from bert_jax.config import apply_variant, default_pretrain_config, model_config_dict


def get_config(variant: str = ""):
    config = default_pretrain_config()
    config.model = model_config_dict("base", vocab_size=30522)
    config.data.corpus = "wikipedia/20230601.en"  # TFDS name; its text feature is "text"
    config.data.vocab_path = "uncased_L-12_H-768_A-12/vocab.txt"  # Google's release
    config.data.max_seq_len = 128
    config.train.num_steps = 1_000_000
    config.train.batch_size = 256
    config.train.learning_rate = 1e-4
    config.train.warmup_steps = 10_000
    config.train.log_every = 1000
    config.train.eval_every = 10_000
    config.train.checkpoint_every = 10_000
    return apply_variant(config, variant)

