"""GLUE fine-tuning: `--config configs/finetune/glue.py:<task>`, task one of cola sst2 mrpc
stsb qqp mnli qnli rte wnli.

With a task: BERT's recipe (Devlin et al. 2019: batch 32, learning rate 2e-5, 3 epochs,
10% warm-up, 128 tokens), from `--config.init_from=PATH` (the architecture and vocab come
from the checkpoint) on TFDS's glue/<task>, or GLUE's original files with
`--config.data.local_dir=DIR` (DIR/<GLUE folder>/{train,dev,test}.tsv or the folder itself).

Without an argument (what `python -m experiments.finetune` runs): the demo, SST-2 from the
project's samples (data/tasks/samples: 12 training sentences written for bert_jax, so the
score means nothing) with a tiny randomly initialised BERT and the embedded 8k vocabulary;
under two minutes on a 2-core CPU, no download.
"""

from bert_jax.config import model_config_dict
from bert_jax.data.tokenizer import DEFAULT_VOCAB_PATH
from bert_jax.training.finetune_config import default_finetune_config

GLUE_TASKS = ("cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte", "wnli")


def get_config(task: str = ""):
    config = default_finetune_config()
    if not task:
        return _demo(config)
    config.task = task  # an unknown name is refused with the list of tasks
    config.train.batch_size = 32
    config.train.learning_rate = 2e-5
    config.train.num_epochs = 3.0
    config.data.max_seq_len = 128
    config.train.eval_every = 1000
    config.train.checkpoint_every = 1000
    return config


def _demo(config):
    config.task = "sst2"
    config.data.sample = True
    config.data.vocab_path = DEFAULT_VOCAB_PATH  # the embedded 8k WordPiece vocab
    config.model = model_config_dict("tiny", vocab_size=8192, max_position_embeddings=64)
    config.data.max_seq_len = 64
    config.train.batch_size = 8
    config.train.num_steps = 40       # ~27 epochs of the 12 sample sentences
    config.train.learning_rate = 1e-3  # a small model from scratch learns faster than BERT
    config.train.warmup_steps = 4
    config.train.log_every = 5
    config.train.eval_every = 20
    config.train.checkpoint_every = 20
    return config
