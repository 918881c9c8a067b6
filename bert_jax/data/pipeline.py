"""grain input pipeline over cached pretraining instances.

Batch format (one dict per step, numpy, this process's rows only):
  input_ids           [B, L] int32
  attention_mask      [B, L] int32  1 on real tokens, 0 on padding
  token_type_ids      [B, L] int32  0 on [CLS] A [SEP], 1 on B [SEP], 0 on padding
  next_sentence_label [B]    int32  0 = actual next, 1 = random next (always 0 when data.sentence_task=none;
                                    sop: 0 = in order, 1 = swapped)
  word_start          [B, L] int32  1 at word starts and special tokens, else 0
  coarse_start        [B, L] int32  only with data.coarse_vocab_path (AMBERT): 1 at the first
  coarse_ids          [B, L] int32  fine token of each coarse token, and its coarse id there
                                    (coarse [PAD] elsewhere); see data/instances.py
  pack_ids            [B, L] int32  only with data.packing="packed_documents": 1, 2, ... per
                                    packed `[CLS] X [SEP]` sequence, 0 on padding
  example_index       [B]    int32  the row's index into the instance arrays (its identity)
  epoch               [B]    int32  the epoch (pass over the instances) the row is read in;
                                    static masking keys on (example_index, epoch)

Order: one seeded global permutation of the instances per epoch (a new one every epoch),
repeated forever, read as one global stream; global batch s is stream rows
[s*G, (s+1)*G). Process p of P reads only rows [s*G + p*B, s*G + (p+1)*B) (B = G/P), so the
processes' batches at step s, concatenated in process order, are exactly the global batch of a
1-process run: results do not depend on the host count.

Checkpointing: the iterator is a `grain.DatasetIterator`; `it.get_state()` is a small JSON-able
dict (`{"next_index": steps taken}` when worker_count=0), and `set_state(state)` on a fresh
iterator (same data_cfg, seed and global batch size) continues at exactly the next batch; with
worker_count=0 the state is the step count, so it also resumes on another number of processes.
With orbax, `grain.checkpoint.CheckpointSave(it)` / `CheckpointRestore(it)` store it as one
JSON file per process inside a composite checkpoint.

worker_count=0 is the fast default (~1100 batches/s of 128x128 on one CPU core): reading is a
vectorized gather from memory-mapped arrays, and worker processes only add copying.
"""
from __future__ import annotations

import functools

from absl import flags
import grain
import ml_collections
import numpy as np

from bert_jax.data import instances as instances_lib
from bert_jax.data import tokenizer as tokenizer_lib
from bert_jax.data import DataError


def default_data_config() -> ml_collections.ConfigDict:
    """Data fields every pretraining config embeds as `config.data`."""
    return ml_collections.ConfigDict(dict(
        corpus="embedded",        # "embedded" | "text_files" | a TFDS name, e.g. "wikipedia/...".
        text_files=(),            # For corpus="text_files": paths/globs (a tuple: the CLI can set it).
        text_feature="text",      # Text feature of a TFDS corpus.
        tfds_data_dir="",         # Where TFDS builds/reads corpora ("": TFDS's default).
        cache_dir="",             # Instance cache ("": ~/.cache/bert_jax).
        tokenizer="wordpiece",    # "wordpiece" (BERT) | "bpe" (RoBERTa) | "unigram" (ALBERT).
        # Vocabulary of that kind: a Google vocab.txt (wordpiece) or a HF tokenizer.json (bpe,
        # unigram); this project's 8k ones are tokenizer_lib.DEFAULT_PATHS[kind].
        vocab_path=tokenizer_lib.DEFAULT_VOCAB_PATH,
        lowercase=True,           # Uncased: lowercase + strip accents (must match a .json's own).
        max_seq_len=128,          # L: tokens per instance incl. [CLS]/[SEP].
        short_seq_prob=0.1,       # Fraction of instances with a random shorter target length.
        dupe_factor=5,            # Passes over the corpus, each with a different segmentation.
        sentence_task="nsp",      # Sentence pairs labelled "nsp" (BERT, random next) or "sop"
                                  # (ALBERT, swapped order), batch key next_sentence_label;
                                  # "none" (RoBERTa): packed single-segment rows, label 0.
        packing="full_sentences",  # Packed rows ("none"): "full_sentences" cross documents
                                  # with a [SEP] between them; "doc_sentences" end at a doc end;
                                  # "packed_documents": doc_sentences rows packed several to a
                                  # row, attending only within their own (batch key pack_ids).
        # AMBERT's coarse (phrase) vocabulary, data/phrases.py; non-empty: batches also carry
        # coarse_start and coarse_ids (needs tokenizer "wordpiece"). The embedded corpus's is
        # bert_jax.data.phrases.DEFAULT_PATH.
        coarse_vocab_path="",
        eval_split="validation",  # Held-out split for make_eval_batches.
        worker_count=0,           # grain worker processes (0: read in this process).
    ))


def _derive_seed(seed: int, purpose: int) -> int:
    """A 32-bit seed for one consumer of `seed` (grain wants [0, 2**32))."""
    return int(np.random.SeedSequence([seed, purpose]).generate_state(1)[0])


class InstanceSource:
    """Random access to cached instances: `source[i]` is one instance (dict of rows),
    `source[idx]` with an int array gathers those rows in one vectorized read.

    Pickles as its directory, so grain worker processes re-open the memory maps instead of
    receiving a copy of the data.
    """

    def __init__(self, directory: str):
        self.directory = directory
        self._arrays = instances_lib.open_instances(directory)

    def __len__(self) -> int:
        return len(self._arrays["length"])

    def __getitem__(self, index) -> dict[str, np.ndarray]:
        return {k: v[index] for k, v in self._arrays.items()}

    def __getstate__(self):
        return {"directory": self.directory}

    def __setstate__(self, state):
        self.__init__(state["directory"])

    def __repr__(self) -> str:
        return f"InstanceSource({self.directory!r}, n={len(self)})"


def to_model_batch(rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Stored instance rows (uint8/uint16, `length`) -> the int32 batch format above."""
    L = rows["input_ids"].shape[-1]
    batch = {
        "input_ids": rows["input_ids"].astype(np.int32),
        "attention_mask": (np.arange(L) < rows["length"][..., None]).astype(np.int32),
        "token_type_ids": rows["token_type_ids"].astype(np.int32),
        "next_sentence_label": rows["next_sentence_label"].astype(np.int32),
        "word_start": rows["word_start"].astype(np.int32),
    }
    batch.update({k: rows[k].astype(np.int32)
                  for k in instances_lib.COARSE_KEYS + (instances_lib.PACK_KEY,) if k in rows})
    return batch


def _gather(source: InstanceSource, indices: np.ndarray, epoch=0) -> dict[str, np.ndarray]:
    indices = np.asarray(indices)
    batch = to_model_batch(source[indices])
    batch["example_index"] = indices.astype(np.int32)
    batch["epoch"] = np.broadcast_to(np.asarray(epoch, np.int32), indices.shape).copy()
    return batch


def _gather_train(source: InstanceSource, process_index: int, process_count: int, k: int,
                  indices: np.ndarray) -> dict[str, np.ndarray]:
    """This process's k-th batch: global block k*P + p of the stream, rows of it in epochs."""
    block = k * process_count + process_index
    stream_B = block * len(indices) + np.arange(len(indices))  # Positions in the stream.
    return _gather(source, indices, epoch=stream_B // len(source))


def _load(data_cfg, split: str, seed: int) -> InstanceSource:
    source = InstanceSource(instances_lib.prepare_instances(data_cfg, split, seed))
    if not len(source):
        files = f" (data.text_files={list(data_cfg.text_files)})" * (
            data_cfg.corpus == "text_files")
        raise DataError(
            f"corpus {data_cfg.corpus!r}{files} split {split!r} yields zero instances; give it "
            "text (non-blank lines, see google-research/bert's format) or another data.corpus.")
    return source


def _check_layout(global_batch_size: int, process_index: int, process_count: int) -> None:
    if global_batch_size <= 0 or global_batch_size % process_count:
        raise DataError(f"global batch size {global_batch_size} must be a positive multiple of "
                         f"process_count={process_count}; change train.batch_size.")
    if not 0 <= process_index < process_count:
        raise DataError(f"process_index={process_index} not in [0, {process_count}).")


def make_train_iterator(data_cfg, *, seed: int, global_batch_size: int, process_index: int = 0,
                        process_count: int = 1) -> grain.DatasetIterator:
    """Infinite iterator of this process's train batches (format: module docstring).

    Instances are made (or loaded from cache) from split "train" with `seed`; the shuffle uses
    a seed derived from `seed`. B = global_batch_size // process_count rows per batch.
    """
    _check_layout(global_batch_size, process_index, process_count)
    local = global_batch_size // process_count
    source = _load(data_cfg, "train", seed)
    # Grain shuffles and batches instance *indices*; rows are then gathered in one vectorized
    # read per batch (~3.5x faster than grain reading and stacking rows one by one).
    # shuffle then repeat: every epoch is a full permutation, reseeded per epoch by repeat().
    ds = grain.MapDataset.range(len(source)).shuffle(seed=_derive_seed(seed, 1)).repeat()
    # The global stream cut into blocks of B rows: block s*P + p is process p's part of step s.
    ds = ds.batch(local)[process_index::process_count]
    ds = ds.map_with_index(
        functools.partial(_gather_train, source, process_index, process_count))
    # Threads only prefetch (each batch is mostly GIL-bound numpy); a short buffer bounds memory.
    ds = ds.to_iter_dataset(grain.ReadOptions(num_threads=2, prefetch_buffer_size=4))
    if data_cfg.worker_count > 0:
        if not flags.FLAGS.is_parsed():  # grain's workers read absl flags; fail here, not there.
            raise RuntimeError("data.worker_count > 0 needs parsed absl flags: run under "
                               "absl.app.run, or call absl.flags.FLAGS.mark_as_parsed() first.")
        ds = ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=data_cfg.worker_count))
    return iter(ds)


def make_eval_batches(data_cfg, *, seed: int, batch_size: int, num_batches: int,
                      process_index: int = 0,
                      process_count: int = 1) -> list[dict[str, np.ndarray]]:
    """`num_batches` fixed batches from `data_cfg.eval_split` (fewer if it has fewer instances).

    Deterministic given `seed` (which seeds instance creation): global batch i is stored
    (already shuffled) instances [i*G, (i+1)*G) with G = `batch_size`; this process gets rows
    [i*G + p*B, i*G + (p+1)*B), B = G // process_count, as in training. No partial batch.
    """
    _check_layout(batch_size, process_index, process_count)
    source = _load(data_cfg, data_cfg.eval_split, seed)
    n = min(num_batches, len(source) // batch_size)
    if n == 0:
        raise DataError(
            f"corpus {data_cfg.corpus!r} split {data_cfg.eval_split!r} has {len(source)} "
            f"instances, fewer than one eval batch of {batch_size}; lower the eval batch size "
            "or use a larger corpus.")
    local = batch_size // process_count
    return [_gather(source, np.arange(local) + i * batch_size + process_index * local)
            for i in range(n)]
