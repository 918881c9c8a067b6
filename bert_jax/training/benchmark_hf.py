"""The reference point of `experiments/benchmark.py --compare hf`: transformers' PyTorch
`BertForPreTraining` trained on the same synthetic batches with the same configuration.

Same sizes, dropout, vocabulary and number of masked targets per sequence; AdamW with the
same hyper-parameters and global-norm clipping; bfloat16 through torch.autocast. What differs
is what transformers does by design: its MLM head decodes every position (loss only on the
targets), and its masks are fixed on the host (there is no on-device masking to time).
"""

from __future__ import annotations

import collections

import numpy as np

from bert_jax.training.benchmark import (BenchConfig, host_costs, synthetic_batch,
                                         timed_steps_on_host)


class HFStepTimer:
    """One transformers training step, timed like StepTimer.run (each step waited for)."""

    def __init__(self, bench: BenchConfig, *, device: str | None = None):
        import torch  # optional dependency: requirements-dev.txt
        import transformers

        self.torch = torch
        self.bench = bench
        self._host = collections.Counter()  # see benchmark.timed_steps_on_host
        model_cfg = bench.model_config()
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        hf_cfg = transformers.BertConfig(
            vocab_size=model_cfg.vocab_size, hidden_size=model_cfg.hidden_size,
            num_hidden_layers=model_cfg.num_layers, num_attention_heads=model_cfg.num_heads,
            intermediate_size=model_cfg.intermediate_size, hidden_act="gelu",
            hidden_dropout_prob=model_cfg.hidden_dropout,
            attention_probs_dropout_prob=model_cfg.attention_dropout,
            max_position_embeddings=model_cfg.max_position_embeddings,
            type_vocab_size=model_cfg.type_vocab_size, layer_norm_eps=model_cfg.layer_norm_eps)
        torch.manual_seed(bench.seed)
        self.model = transformers.BertForPreTraining(hf_cfg).to(self.device).train()
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=1e-4, betas=(0.9, 0.999),
                                           eps=1e-6, weight_decay=0.01)
        self.num_params = sum(p.numel() for p in self.model.parameters())
        batch = synthetic_batch(bench, model_cfg.vocab_size, bench.seed)
        labels = _mlm_labels(batch["input_ids"], bench.predictions, bench.seed)
        as_tensor = lambda x: torch.as_tensor(np.asarray(x, np.int64), device=self.device)
        self.inputs = {"input_ids": as_tensor(batch["input_ids"]),
                       "attention_mask": as_tensor(batch["attention_mask"]),
                       "token_type_ids": as_tensor(batch["token_type_ids"]),
                       "labels": as_tensor(labels),
                       "next_sentence_label": as_tensor(batch["next_sentence_label"])}
        self.autocast = bench.dtype != "float32"
        self.amp_dtype = {"bfloat16": torch.bfloat16, "float16": torch.float16}.get(bench.dtype)

    def _step(self) -> float:
        torch = self.torch
        self.optimizer.zero_grad(set_to_none=True)
        with torch.autocast(self.device, dtype=self.amp_dtype, enabled=self.autocast):
            loss = self.model(**self.inputs).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.optimizer.step()
        return loss.detach()  # still computing on an accelerator; float() waits for it

    def run(self, steps: int, *, warmup: bool = False) -> list[float]:
        """Timed and counted as StepTimer.run: the next step is queued before this one's
        loss is read (on an accelerator), and host costs are counted apart for warm-ups."""
        return timed_steps_on_host(self._host, self._step, steps, warmup=warmup,
                                   overlap=self.device != "cpu")

    def host_costs(self) -> dict[str, float]:
        return host_costs(self._host)


def _mlm_labels(input_ids: np.ndarray, predictions: int, seed: int) -> np.ndarray:
    """transformers' label format: the original id at `predictions` random non-special
    positions per row, -100 (ignored) elsewhere."""
    rng = np.random.default_rng(seed + 1)
    labels = np.full(input_ids.shape, -100, np.int64)
    length = input_ids.shape[1]
    inner = np.setdiff1d(np.arange(1, length - 1), [length // 2])  # not [CLS]/[SEP]
    for row in range(len(input_ids)):
        chosen = rng.choice(inner, size=min(predictions, len(inner)), replace=False)
        labels[row, chosen] = input_ids[row, chosen]
    return labels
