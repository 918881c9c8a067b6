"""Timing of the real pretraining step on synthetic batches (experiments/benchmark.py).

Nothing here reads data files or imports TensorFlow, grain or ml_collections, so the same
benchmark runs on a bare accelerator image. The step timed is `training/step.py`'s
`train_step` under `training/parallel.py`, exactly as pretraining runs it: on-device masking
(15% of tokens, 80/10/10), MLM head at the gathered positions, NSP head, AdamW with clipping,
donated state. Batches are random full-length `[CLS] a [SEP] b [SEP]` rows.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import resource
import statistics
import time
import types

import jax
import numpy as np

from bert_jax.config import SIZES, ModelConfig, model_config_for
from bert_jax.masking import MaskingConfig
from bert_jax.metrics.flops import train_flops_per_step
from bert_jax.modeling.models import init_params, pretraining_model
from bert_jax.training import host_memory
from bert_jax.training.optimizer import make_optimizer
from bert_jax.training.parallel import Parallel
from bert_jax.training.step import PREMASKED_KEYS, UPDATE_GUARDS, StepConfig, TrainState

# Special ids of the synthetic vocabulary (BERT's uncased vocab.txt has these).
PAD, CLS, SEP, MASK = 0, 101, 102, 103


@dataclasses.dataclass(frozen=True)
class BenchConfig:
    """What one benchmark measures; every field is a CLI flag of experiments/benchmark.py."""

    model: str = "base"  # a Google BERT size (config.SIZES)
    seq_len: int = 128
    batch_size: int = 8  # global, over all devices
    dtype: str = "float32"  # compute dtype; parameters stay float32
    steps: int = 10  # timed steps (after 2 untimed ones)
    dropout: float = 0.1  # hidden dropout (BERT's 0.1)
    attention_dropout: float | None = None  # on the attention probabilities; None: `dropout`
    dropout_bits: int = 16  # random bits per dropout decision (model.dropout_bits)
    prng_impl: str = "threefry2x32"  # jax_default_prng_impl the caller set (recorded)
    remat: str = "none"
    scan_layers: bool = True  # nn.scan over layers (False: unrolled, one HLO block per layer)
    scan_unroll: int = 0  # layers per scan iteration (0: the model's "auto")
    residual_dtype: str = "float32"  # the residual stream between LayerNorms
    grad_accum: int = 1
    attention_impl: str = "xla"
    parallel: str = "pmap"
    update_guard: str = "auto"  # StepConfig.update_guard: how a non-finite update is dropped
    last_layer_subset: bool = True  # model.last_layer_subset: last layer at the read rows only
    seed: int = 0

    @property
    def predictions(self) -> int:
        """MLM slots per sequence: 15% of the tokens, rounded up (google-research/bert's 20 at
        128 tokens)."""
        return max(1, math.ceil(0.15 * self.seq_len))

    def model_config(self) -> ModelConfig:
        if self.model not in SIZES:
            raise ValueError(f"--model must be one of {list(SIZES)}, got {self.model!r}")
        config = model_config_for(
            self.model, dtype=self.dtype, remat=self.remat, scan_layers=self.scan_layers,
            scan_unroll=self.scan_unroll, residual_dtype=self.residual_dtype,
            hidden_dropout=self.dropout, dropout_bits=self.dropout_bits,
            attention_dropout=(self.dropout if self.attention_dropout is None
                               else self.attention_dropout),
            attention_impl=self.attention_impl, last_layer_subset=self.last_layer_subset)
        config.check()  # e.g. --scan_unroll beyond the model's layers: ConfigError
        return config


# Settings an A/B comparison may change: they change how the same model computes, not what
# it computes or on how many tokens (so step times compare directly).
AB_FIELDS = ("dtype", "dropout", "attention_dropout", "dropout_bits", "remat", "scan_layers",
             "scan_unroll", "residual_dtype", "grad_accum", "attention_impl", "parallel",
             "update_guard", "last_layer_subset")


def with_settings(bench: BenchConfig, settings: str) -> BenchConfig:
    """`bench` with "field=value[,field=value]" applied (fields of AB_FIELDS); raises
    ValueError for anything else, and for values its model config refuses."""
    changes = {}
    for item in settings.split(","):
        name, sep, value = item.strip().partition("=")
        if not sep or name not in AB_FIELDS:
            raise ValueError(f"{item.strip()!r}: expected FIELD=VALUE with FIELD one of "
                             f"{', '.join(AB_FIELDS)}")
        kind = type(getattr(bench, name) if getattr(bench, name) is not None else 0.0)
        if kind is bool:
            if value.lower() not in ("true", "false"):
                raise ValueError(f"{name} takes true or false, got {value!r}")
            changes[name] = value.lower() == "true"
        else:
            try:
                changes[name] = kind(value)
            except ValueError:
                raise ValueError(f"{name} takes a {kind.__name__}, got {value!r}") from None
    other = dataclasses.replace(bench, **changes)
    other.model_config()  # ConfigError, a ValueError, for what the model refuses
    if other.update_guard not in UPDATE_GUARDS:
        raise ValueError(f"update_guard takes one of {', '.join(UPDATE_GUARDS)}, got "
                         f"{other.update_guard!r}")
    return other


def masking_config(bench: BenchConfig, vocab_size: int) -> MaskingConfig:
    return MaskingConfig(vocab_size=vocab_size, mask_id=MASK, special_ids=(PAD, CLS, SEP, MASK),
                         max_predictions=bench.predictions)


def synthetic_batch(bench: BenchConfig, vocab_size: int, seed: int = 0,
                    packs: int = 1) -> dict[str, np.ndarray]:
    """Full-length [CLS] a [SEP] b [SEP] rows of random word-piece ids (host numpy); with
    packs > 1, rows of `packs` equal [CLS] x [SEP] sequences told apart by `pack_ids`
    (data.packing="packed_documents")."""
    rng = np.random.default_rng(seed)
    b, l = bench.batch_size, bench.seq_len
    ids = rng.integers(1000, vocab_size, (b, l), dtype=np.int32)
    types_ = np.zeros((b, l), np.int32)
    batch = {"input_ids": ids, "attention_mask": np.ones((b, l), np.int32),
             "token_type_ids": types_, "word_start": np.ones((b, l), np.int32),
             "next_sentence_label": rng.integers(0, 2, (b,), dtype=np.int32)}
    if packs > 1:
        pack_ids = 1 + np.arange(l) * packs // l
        starts = np.flatnonzero(np.diff(pack_ids, prepend=0))
        ids[:, starts], ids[:, np.append(starts[1:], l) - 1] = CLS, SEP
        batch["pack_ids"] = np.broadcast_to(pack_ids.astype(np.int32), (b, l)).copy()
        return batch
    half = l // 2
    ids[:, 0], ids[:, half], ids[:, -1] = CLS, SEP, SEP
    types_[:, half + 1:] = 1
    return batch


def _train_config(steps: int):
    """The optimizer fields make_optimizer reads (BERT's AdamW, warm-up, clipping)."""
    return types.SimpleNamespace(
        optimizer="adamw", learning_rate=1e-4, warmup_steps=max(steps // 10, 1),
        end_learning_rate=0.0, num_steps=steps + 10, weight_decay=0.01, adam_b1=0.9,
        adam_b2=0.999, adam_eps=1e-6, max_grad_norm=1.0)


class StepTimer:
    """A compiled train step on replicated state and one device-resident synthetic batch."""

    def __init__(self, bench: BenchConfig, *, premasked: bool = False, packs: int = 1,
                 devices=None):
        self.bench = bench
        # steps, their seconds, minor page faults, user and system CPU seconds (run)
        self._host = collections.Counter()
        self.model = bench.model_config()
        self.step_cfg = StepConfig(model=self.model,
                                   masking=masking_config(bench, self.model.vocab_size),
                                   grad_accum=bench.grad_accum,
                                   update_guard=bench.update_guard)
        self.par = Parallel(bench.parallel, self.step_cfg, devices)
        if bench.batch_size % (self.par.num_devices * bench.grad_accum):
            raise ValueError(f"--batch_size ({bench.batch_size}) must be divisible by the "
                             f"devices ({self.par.num_devices}) x --grad_accum "
                             f"({bench.grad_accum})")
        params = init_params(pretraining_model(self.model), jax.random.key(bench.seed))
        self.num_params = sum(int(x.size) for x in jax.tree.leaves(params))
        tx = make_optimizer(_train_config(bench.steps))
        self.state = self.par.replicate(TrainState.create(params, tx, jax.random.key(1)))
        self.key = jax.random.key(2)
        batch = synthetic_batch(bench, self.model.vocab_size, bench.seed, packs)
        if premasked:  # the same step with its masking done beforehand (masking's cost)
            batch.update(premask(batch, self.step_cfg))
        self.batch = self.par.shard_batch(batch)
        t0 = time.perf_counter()
        self.compiled = self.par.train.lower(self.state, self.batch, self.key).compile()
        self.compile_time_s = time.perf_counter() - t0
        self.memory = self.compiled.memory_analysis()

    def run(self, steps: int, *, warmup: bool = False) -> list[float]:
        """Seconds of each of `steps` steps (see timed_steps), counting the process's host
        costs during them (`host_costs`), warm-up steps apart."""

        def dispatch():
            self.state, metrics = self.compiled(self.state, self.batch, self.key)
            return metrics["loss"]

        return timed_steps_on_host(self._host, dispatch, steps, warmup=warmup)

    def host_costs(self) -> dict[str, float]:
        return host_costs(self._host)

    def peak_memory_bytes(self) -> tuple[int, str]:
        """Device peak when the backend reports it (GPU/TPU), else XLA's static estimate of
        the step: arguments + outputs + temporaries - aliased (donated) buffers."""
        stats = self.par.devices[0].memory_stats() or {}
        if "peak_bytes_in_use" in stats:
            return int(stats["peak_bytes_in_use"]), "device"
        total = self.compiled_memory_bytes()
        return total, "compiled estimate" if total else "unavailable"

    def compiled_memory_bytes(self) -> int:
        """XLA's static estimate for this step alone (0 if the backend gives none): unlike
        a device's peak, which covers every program the process ran, it compares settings
        timed side by side."""
        m = self.memory
        if m is None:
            return 0
        return int(m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes
                   - m.alias_size_in_bytes)


def timed_steps_on_host(counter: collections.Counter, dispatch, steps: int, *,
                        warmup: bool = False, overlap: bool = True) -> list[float]:
    """timed_steps, adding to `counter` the steps' seconds and the process's minor page
    faults and user and system CPU seconds during them, warm-up steps apart: the first step
    after compiling, or after another framework's turn, maps in fresh memory, which costs
    the kernel more than the steps after it do."""
    before = resource.getrusage(resource.RUSAGE_SELF)
    times = timed_steps(dispatch, steps, overlap=overlap)
    after = resource.getrusage(resource.RUSAGE_SELF)
    kind = "warmup_" if warmup else ""
    counter.update({kind + "steps": steps, kind + "wall_s": sum(times),
                    kind + "faults": after.ru_minflt - before.ru_minflt,
                    kind + "user_s": after.ru_utime - before.ru_utime,
                    kind + "system_s": after.ru_stime - before.ru_stime})
    return times


def host_costs(counter: collections.Counter) -> dict[str, float]:
    """Per timed step counted by timed_steps_on_host, and per warm-up step: the process's
    minor page faults (memory the kernel had to map in) and system CPU seconds. On a CPU
    backend they show what allocating host memory costs the step (host_memory.py).

    `host_cores_busy`: the process's CPU seconds (user + system) over the timed steps'
    wall seconds. On a CPU backend, near the core count means the step keeps every core
    busy, so only less work makes it faster, not better scheduling; on an accelerator it
    is the host's share of the step (~1: one thread dispatching)."""
    out = {}
    for kind in ("", "warmup_"):
        steps = max(counter[kind + "steps"], 1)
        out[kind + "minor_page_faults_per_step"] = counter[kind + "faults"] / steps
        out[kind + "system_seconds_per_step"] = counter[kind + "system_s"] / steps
    out["user_seconds_per_step"] = counter["user_s"] / max(counter["steps"], 1)
    wall = counter["wall_s"]
    out["host_cores_busy"] = (counter["user_s"] + counter["system_s"]) / wall if wall else 0.0
    return out


def timed_steps(dispatch, steps: int, *, overlap: bool = True) -> list[float]:
    """Per-step seconds of `steps` calls of `dispatch` (which starts one step and returns
    its loss, not yet computed), timed as the training loop runs them: step i+1 is
    dispatched before step i's loss is read back (metrics one step late), so the host's
    dispatch overlaps the device's work. Entry i is the time between the completions of
    steps i-1 and i (the first: from the first dispatch), so their sum is the wall time
    of the `steps` steps. overlap=False waits for each step before dispatching the next
    (for frameworks whose "dispatch" computes synchronously, e.g. PyTorch on a CPU)."""
    times = []
    if not overlap:
        for _ in range(steps):
            start = time.perf_counter()
            float(dispatch())
            times.append(time.perf_counter() - start)
        return times
    start = time.perf_counter()
    pending = dispatch()
    for i in range(steps):
        nxt = dispatch() if i + 1 < steps else None
        float(pending)  # waits for step i
        now = time.perf_counter()
        times.append(now - start)
        start, pending = now, nxt
    return times


def premask(batch: dict[str, np.ndarray], step_cfg: StepConfig) -> dict[str, np.ndarray]:
    """The masks the step would draw, computed once on the host side of the benchmark."""
    from bert_jax.masking import example_keys, mask_tokens

    keys_B = example_keys(jax.random.key(3), 0, np.arange(len(batch["input_ids"])))
    masked = mask_tokens(keys_B, batch["input_ids"], batch["attention_mask"],
                         batch["word_start"], step_cfg.masking)
    return {k: np.asarray(masked[k]) for k in ("input_ids", *PREMASKED_KEYS)}


def summarize(bench: BenchConfig, timer: StepTimer, times: list[float],
              peak: tuple[float, int]) -> dict:
    """The benchmark's result record (the JSON of experiments/benchmark.py)."""
    step_time = statistics.median(times)
    flops = train_flops_per_step(timer.model, batch_size=bench.batch_size,
                                 seq_len=bench.seq_len, predictions=bench.predictions)
    peak_flops = peak[0] * timer.par.num_devices
    memory, memory_source = timer.peak_memory_bytes()
    device = timer.par.devices[0]
    return {
        **dataclasses.asdict(bench),
        "predictions_per_seq": bench.predictions,
        "num_params": timer.num_params,
        "devices": timer.par.num_devices,
        "device_kind": device.device_kind,
        "platform": device.platform,
        "jax_version": jax.__version__,
        "compile_time_s": timer.compile_time_s,
        "step_time_ms": 1e3 * step_time,
        "step_time_ms_all": [1e3 * t for t in times],
        "tokens_per_sec": bench.batch_size * bench.seq_len / step_time,
        "model_flops_per_step": flops,
        "model_flops_per_sec": flops / step_time,
        "peak_flops": peak_flops,
        "peak_flops_matmul_n": peak[1],
        "mfu": flops / step_time / peak_flops,
        "peak_memory_bytes": memory,
        "peak_memory_source": memory_source,
        "compiled_memory_bytes": timer.compiled_memory_bytes(),
        "host_huge_pages": host_memory.huge_pages_active(),
        **timer.host_costs(),
        # scan_unroll resolved for this backend (None: unrolled layers, no scan)
        "layers_per_scan_iteration": (timer.model.layers_per_iteration(device.platform)
                                      if bench.scan_layers else None),
    }

