"""SQuAD fine-tuning: `--config configs/finetune/squad.py:v1` (v1.1) or `:v2` (v2.0).

BERT's recipe (Devlin et al. 2019, SQuAD v1.1: batch 32, learning rate 5e-5, 2 epochs, 384
tokens, stride 128, questions cut at 64 tokens; answers up to 30 tokens from the 20 best
starts and ends). v2.0 predicts "no answer" where the [CLS] score beats the best span by
more than decode.null_score_diff_threshold. From `--config.init_from=PATH` on TFDS's
squad/v1.1 or v2.0, or `--config.data.local_dir=DIR` holding {train,dev}-v1.1.json /
-v2.0.json. No argument: v1.
"""

from bert_jax.training.finetune_config import default_finetune_config


def get_config(version: str = "v1"):
    if version not in ("v1", "v2"):
        raise ValueError(f"configs/finetune/squad.py:<version> is v1 or v2, got {version!r}")
    config = default_finetune_config()
    config.task = f"squad_{version}"
    config.data.max_seq_len = 384
    config.data.doc_stride = 128
    config.data.max_query_length = 64
    config.train.batch_size = 32
    config.train.learning_rate = 5e-5
    config.train.num_epochs = 2.0
    config.train.eval_every = 2000
    config.train.checkpoint_every = 1000
    config.decode.n_best_size = 20
    config.decode.max_answer_length = 30
    config.decode.null_score_diff_threshold = 0.0
    return config
