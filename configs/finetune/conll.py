"""CoNLL-2003 named-entity recognition: `--config configs/finetune/conll.py`.

A tag per word, predicted at its first word piece (data/tasks/conll.py), entity-level F1
(conlleval's rules). BERT's paper (Devlin et al. 2019, section 5.3) fine-tunes a cased
model; uncased ones (MiniLM) work too, a little lower. Batch 32, learning rate 5e-5,
3 epochs, 128 tokens. From `--config.init_from=PATH` on TFDS's conll2003, or
`--config.data.local_dir=DIR` holding eng.train, eng.testa (validation), eng.testb (test).
"""

from bert_jax.training.finetune_config import default_finetune_config


def get_config():
    config = default_finetune_config()
    config.task = "conll2003"
    config.data.max_seq_len = 128
    config.train.batch_size = 32
    config.train.learning_rate = 5e-5
    config.train.num_epochs = 3.0
    config.train.eval_every = 500
    config.train.checkpoint_every = 500
    return config
