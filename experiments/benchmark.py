"""Speed of the pretraining step: tokens/s, model FLOPs utilisation, compile time, memory.

    python -m experiments.benchmark --model base --seq_len 128 --batch_size 8 --dtype float32
    python -m experiments.benchmark --model base --batch_size 8 --compare hf   # vs transformers
    python -m experiments.benchmark --model large --seq_len 512 --batch_size 32 \
        --dtype bfloat16 --attention cudnn --json large.json                  # on a GPU

Times the real train step (on-device masking, gathered MLM head, NSP, AdamW) on synthetic
batches, so it needs no data and no TensorFlow/grain/ml_collections. MFU is the model FLOPs
of bert_jax/metrics/flops.py over the matmul rate measured on the same device in the same
dtype. `--compare hf` alternates rounds of this step and of transformers' PyTorch
BertForPreTraining and prints the ratio of their medians, and the range of the ratios of
each round's medians, which shows the machine's noise (`--compare layout`: of the same
step with its layers unrolled instead of scanned, or the reverse with --noscan_layers;
`--against remat=activation`: of the same step with those model settings).
`--masking_cost` alternates it with the same step on pre-masked batches, `--packing_cost N`
with the same step on rows of N packed sequences (their attention mask and positions).
`--pipeline` times the input pipeline on the embedded corpus (needs requirements.txt)
against the step's consumption; `--profile DIR` traces the step and sums its time by kind
of op.
"""

if __name__ == "__main__":  # first, since it may restart the process: huge pages for XLA:CPU
    from bert_jax.training.host_memory import reexec_with_huge_pages

    reexec_with_huge_pages()

import json
import os
import statistics
import sys
import time

from absl import app, flags, logging

flags.DEFINE_enum("model", "base", ["tiny", "mini", "small", "medium", "base", "large"],
                  "Google BERT size.")
flags.DEFINE_integer("seq_len", 128, "Tokens per sequence.")
flags.DEFINE_integer("batch_size", 8, "Global batch (all devices).")
flags.DEFINE_enum("dtype", "float32", ["float32", "bfloat16"],
                  "Compute dtype (parameters, LayerNorm, softmax and loss stay float32).")
flags.DEFINE_enum("residual_dtype", "float32", ["float32", "bfloat16"],
                  "Residual stream between LayerNorms (model.residual_dtype); LayerNorm "
                  "statistics stay float32.")
flags.DEFINE_integer("steps", 10, "Timed steps of each timed function (after 2 untimed).")
flags.DEFINE_string("json", None, "Write the result record here.")
flags.DEFINE_enum("compare", "none", ["none", "hf", "layout"],
                  "hf: also time transformers' PyTorch BertForPreTraining, alternating; "
                  "layout: also time the step with the other layer layout (scanned <-> "
                  "unrolled), alternating.")
flags.DEFINE_string("against", None,
                    "FIELD=VALUE[,FIELD=VALUE]: also time the step with these model settings "
                    "changed (e.g. remat=activation, residual_dtype=bfloat16), alternating, "
                    "and print the ratio: an A/B measured in one process.")
flags.DEFINE_bool("scan_layers", True, "nn.scan over the layers (model.scan_layers); "
                  "--noscan_layers unrolls them.")
flags.DEFINE_integer("scan_unroll", 0, "Layers per iteration of the layer scan "
                     "(model.scan_unroll; 0: all layers on a CPU, 1 elsewhere).")
flags.DEFINE_integer("rounds", 3, "Alternating rounds when comparing (steps split among them).")
flags.DEFINE_float("dropout", 0.1, "Hidden dropout, and attention dropout unless "
                   "--attention_dropout is given (BERT: 0.1 for both).")
flags.DEFINE_float("attention_dropout", None, "Dropout on the attention probabilities "
                   "(default: --dropout). 0 lets --attention cudnn run its fused kernel.")
flags.DEFINE_enum("dropout_bits", "16", ["16", "32"],
                  "Random bits per dropout decision (model.dropout_bits).")
flags.DEFINE_enum("prng_impl", "threefry2x32", ["threefry2x32", "rbg", "unsafe_rbg"],
                  "JAX's PRNG for the dropout and masking keys (jax_default_prng_impl): "
                  "rbg/unsafe_rbg draw bits with XLA's RngBitGenerator, cheaper on GPUs.")
flags.DEFINE_enum("remat", "none", ["none", "activation", "dots", "full"],
                  "What the backward pass recomputes (model.remat).")
flags.DEFINE_integer("grad_accum", 1, "Micro-batches per device and step.")
flags.DEFINE_enum("attention", "xla", ["xla", "cudnn"],
                  "jax.nn.dot_product_attention implementation (cudnn: NVIDIA GPU, bf16, "
                  "and --attention_dropout 0, since attention dropout needs the explicit "
                  "form).")
flags.DEFINE_enum("parallel", "pmap", ["pmap", "shard_map"], "Device mapping.")
flags.DEFINE_enum("update_guard", "auto", ["auto", "cond", "select"],
                  "How the step drops the update of a non-finite step: lax.cond around the "
                  "optimizer, or jnp.where on its results (auto: cond on CPUs, select "
                  "elsewhere).")
flags.DEFINE_bool("masking_cost", False,
                  "Also time the step on pre-masked batches: masking's share of the step.")
flags.DEFINE_integer("packing_cost", 0,
                     "N > 1: also time the step on rows packed with N sequences each "
                     "(data.packing=packed_documents: a [B,1,L,L] attention mask, positions "
                     "restarting per sequence): packing's cost per step.")
flags.DEFINE_string("profile", None,
                    "Write a profiler trace of the timed steps here (TensorBoard/Perfetto) and "
                    "print where the step's time goes, by kind of HLO op.")
flags.DEFINE_bool("pipeline", False,
                  "Also time the input pipeline (embedded corpus, this batch and length).")
FLAGS = flags.FLAGS


def _profile(timer, trace_dir: str, result: dict, steps: int = 3) -> None:
    """Traces `steps` more steps of `timer` and prints its time by kind of op."""
    import jax

    from bert_jax.training import profile

    with jax.profiler.trace(trace_dir):
        timer.run(steps)
    hlo_text = timer.compiled.as_text()
    with open(os.path.join(trace_dir, profile.HLO_FILE), "w") as f:
        f.write(hlo_text)
    try:
        summary = profile.summarize_trace(trace_dir, hlo_text, steps)
    except ValueError as err:  # the timings stand; only the summary is missing
        print(f"profile: not summarised: {err}")
        return
    result["profile_ms_per_step"] = summary["categories"]
    result["profile_wall_ms_per_step"] = summary["wall"]
    print(f"profile ({trace_dir}):")
    profile.print_summary(summary)


def _alternate(timers: dict, steps: int, rounds: int) -> dict[str, list[float]]:
    """Runs each timer's steps in `rounds` interleaved rounds (2 untimed steps first, and one
    at the start of each turn), so machine noise hits every contender alike."""
    for timer in timers.values():
        timer.run(2, warmup=True)
    per_round = max(1, -(-steps // rounds))
    times = {name: [] for name in timers}
    for _ in range(rounds):
        for name, timer in timers.items():
            if rounds > 1:
                # The first step after another framework's turn runs slow on a CPU (1-1.7 s
                # more for BERT-base after transformers' steps): each turn starts untimed.
                timer.run(1, warmup=True)
            times[name] += timer.run(per_round)
    return times


def _per_round(this: list[float], other: list[float], rounds: int, ratio) -> list[float]:
    """ratio(this round's median, other's median) for each round of _alternate: how much a
    comparison moves between rounds (the machine's noise) beside the ratio of the medians."""
    n = len(this) // rounds
    if n == 0 or len(other) != len(this):
        return []
    return [ratio(statistics.median(this[i * n:(i + 1) * n]),
                  statistics.median(other[i * n:(i + 1) * n])) for i in range(rounds)]


def _spread(values: list[float], fmt: str, unit: str = "") -> str:
    """"; per round A to B" (the range of the per-round values) when there are several."""
    if len(values) < 2:
        return ""
    return f"; per round {format(min(values), fmt)}{unit} to {format(max(values), fmt)}{unit}"


def _cpus() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def _pipeline_rate(seq_len: int, batch_size: int, batches: int = 50) -> float:
    """Batches/s of the training input pipeline on the embedded corpus."""
    from bert_jax.config import default_pretrain_config
    from bert_jax.data.pipeline import make_train_iterator

    data = default_pretrain_config().data
    data.max_seq_len = seq_len
    it = make_train_iterator(data, seed=0, global_batch_size=batch_size)
    next(it)  # builds/loads the corpus and instances, starts the reader threads
    t0 = time.perf_counter()
    for _ in range(batches):
        next(it)
    return batches / (time.perf_counter() - t0)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.WARNING)  # JAX's INFO lines about absent backends
    attention_dropout = FLAGS.dropout if FLAGS.attention_dropout is None else (
        FLAGS.attention_dropout)
    for name in ("steps", "rounds"):
        if FLAGS[name].value < 1:
            sys.exit(f"error: --{name} must be at least 1, got {FLAGS[name].value}")
    if FLAGS.attention == "cudnn" and attention_dropout > 0:
        sys.exit("error: --attention cudnn has no attention dropout; add --attention_dropout 0")
    import jax

    if FLAGS.attention == "cudnn" and jax.default_backend() != "gpu":
        sys.exit(f"error: --attention cudnn needs an NVIDIA GPU; this JAX runs on "
                 f"{jax.default_backend()}: use --attention xla")
    jax.config.update("jax_default_prng_impl", FLAGS.prng_impl)
    from bert_jax.training import benchmark as bench_lib, host_memory

    bench = bench_lib.BenchConfig(
        model=FLAGS.model, seq_len=FLAGS.seq_len, batch_size=FLAGS.batch_size,
        dtype=FLAGS.dtype, steps=FLAGS.steps, dropout=FLAGS.dropout,
        attention_dropout=attention_dropout, dropout_bits=int(FLAGS.dropout_bits),
        prng_impl=FLAGS.prng_impl, remat=FLAGS.remat,
        grad_accum=FLAGS.grad_accum, attention_impl=FLAGS.attention, parallel=FLAGS.parallel,
        scan_layers=FLAGS.scan_layers, scan_unroll=FLAGS.scan_unroll,
        residual_dtype=FLAGS.residual_dtype, update_guard=FLAGS.update_guard)
    try:
        against = (bench_lib.with_settings(bench, FLAGS.against) if FLAGS.against
                   else None)
    except ValueError as err:
        sys.exit(f"error: --against: {err}")
    if FLAGS.seq_len > 512 or FLAGS.seq_len < 8:
        sys.exit(f"error: --seq_len must be in [8, 512] (BERT's positions), got {FLAGS.seq_len}")
    try:
        timer = bench_lib.StepTimer(bench)
    except ValueError as err:
        sys.exit(f"error: {err}")
    print(f"{bench.model}: {timer.num_params / 1e6:.1f}M parameters; "
          f"{timer.par.num_devices} x {timer.par.devices[0].device_kind}; compiled in "
          f"{timer.compile_time_s:.1f} s; host memory huge pages "
          f"{'on' if host_memory.huge_pages_active() else 'off'}", flush=True)
    timers = {"bert_jax": timer}
    if FLAGS.masking_cost:
        timers["premasked"] = bench_lib.StepTimer(bench, premasked=True)
    if FLAGS.packing_cost > 1:
        timers["packed"] = bench_lib.StepTimer(bench, packs=FLAGS.packing_cost)
    if FLAGS.compare == "layout":
        import dataclasses

        timers["layout"] = bench_lib.StepTimer(
            dataclasses.replace(bench, scan_layers=not bench.scan_layers))
    if against is not None:
        timers["against"] = bench_lib.StepTimer(against)
    if FLAGS.compare == "hf":
        from bert_jax.training.benchmark_hf import HFStepTimer

        timers["hf"] = HFStepTimer(bench)
    rounds = FLAGS.rounds if len(timers) > 1 else 1
    times = _alternate(timers, FLAGS.steps, rounds)

    def per_round(name, ratio):
        return _per_round(times["bert_jax"], times[name], rounds, ratio)
    from bert_jax.metrics.flops import measure_matmul_peak

    peak = measure_matmul_peak(FLAGS.dtype, device=timer.par.devices[0])
    result = bench_lib.summarize(bench, timer, times["bert_jax"], peak)
    tokens = bench.batch_size * bench.seq_len
    print(f"step {result['step_time_ms']:.1f} ms (median of {len(times['bert_jax'])}), "
          f"{result['tokens_per_sec']:.0f} tokens/s, "
          f"{result['model_flops_per_sec'] / 1e9:.1f} GFLOP/s of model FLOPs; matmul peak "
          f"{peak[0] / 1e9:.1f} GFLOP/s per device ({FLAGS.dtype}, N={peak[1]}); "
          f"MFU {100 * result['mfu']:.1f}%; peak memory "
          f"{result['peak_memory_bytes'] / 2**30:.2f} GiB ({result['peak_memory_source']}); "
          f"{result['minor_page_faults_per_step']:,.0f} page faults and "
          f"{result['system_seconds_per_step']:.2f} s of system time per step (per warm-up "
          f"step: {result['warmup_minor_page_faults_per_step']:,.0f} and "
          f"{result['warmup_system_seconds_per_step']:.2f} s); host CPU "
          f"{result['host_cores_busy']:.2f} cores busy (of {_cpus()})")
    if FLAGS.profile:
        _profile(timer, FLAGS.profile, result)
    medians = {name: statistics.median(t) for name, t in times.items()}
    this = medians["bert_jax"]
    if "premasked" in times:
        result["premasked_step_time_ms"] = 1e3 * medians["premasked"]
        result["masking_fraction"] = (this - medians["premasked"]) / this
        result["masking_fraction_per_round"] = per_round("premasked", lambda a, b: (a - b) / a)
        print(f"masking: step {1e3 * this:.1f} ms with on-device masking, "
              f"{1e3 * medians['premasked']:.1f} ms on pre-masked batches: "
              f"{100 * result['masking_fraction']:.2f}% of the step"
              + _spread([100 * f for f in result["masking_fraction_per_round"]], ".2f", "%"))
    if "packed" in times:
        result["packed_step_time_ms"] = 1e3 * medians["packed"]
        result["packing_overhead"] = medians["packed"] / this - 1
        result["packing_overhead_per_round"] = per_round("packed", lambda a, b: b / a - 1)
        print(f"packing: step {1e3 * medians['packed']:.1f} ms on rows of "
              f"{FLAGS.packing_cost} packed sequences vs {1e3 * this:.1f} ms on one pair per "
              f"row: {100 * result['packing_overhead']:+.2f}%"
              + _spread([100 * f for f in result["packing_overhead_per_round"]], "+.2f", "%"))
    if "layout" in times:
        other = medians["layout"]
        name = "unrolled" if bench.scan_layers else "scanned"
        result.update(layout_other=name, layout_other_step_time_ms=1e3 * other,
                      layout_other_compile_time_s=timers["layout"].compile_time_s,
                      layout_other_speedup=this / other,
                      layout_other_speedup_per_round=per_round("layout", lambda a, b: a / b))
        print(f"layers {name}: step {1e3 * other:.1f} ms vs {1e3 * this:.1f} ms "
              f"({this / other:.2f}x the speed"
              f"{_spread(result['layout_other_speedup_per_round'], '.2f', 'x')}), compiled in "
              f"{timers['layout'].compile_time_s:.1f} s vs {timer.compile_time_s:.1f} s")
    if "against" in times:
        other = medians["against"]
        result.update(against=FLAGS.against, against_step_time_ms=1e3 * other,
                      against_step_time_ms_all=[1e3 * t for t in times["against"]],
                      against_compile_time_s=timers["against"].compile_time_s,
                      against_compiled_memory_bytes=timers["against"].compiled_memory_bytes(),
                      against_speedup=this / other,
                      against_speedup_per_round=per_round("against", lambda a, b: a / b))
        print(f"with {FLAGS.against}: step {1e3 * other:.1f} ms vs {1e3 * this:.1f} ms "
              f"({this / other:.3f}x the speed"
              f"{_spread(result['against_speedup_per_round'], '.3f', 'x')}), compiled in "
              f"{timers['against'].compile_time_s:.1f} s vs {timer.compile_time_s:.1f} s; "
              f"XLA's memory estimate {result['against_compiled_memory_bytes'] / 2**30:.2f} "
              f"vs {result['compiled_memory_bytes'] / 2**30:.2f} GiB")
    if "hf" in times:
        from bert_jax.metrics.flops import train_flops_per_step

        hf_step = medians["hf"]
        hf_flops = train_flops_per_step(timer.model, batch_size=bench.batch_size,
                                        seq_len=bench.seq_len, predictions=bench.seq_len,
                                        gathered=False)
        result.update(
            hf_step_time_ms=1e3 * hf_step, hf_step_time_ms_all=[1e3 * t for t in times["hf"]],
            hf_tokens_per_sec=tokens / hf_step, hf_model_flops_per_step=hf_flops,
            hf_mfu=hf_flops / hf_step / result["peak_flops"],
            speedup_vs_hf=hf_step / this,
            speedup_vs_hf_per_round=per_round("hf", lambda a, b: b / a),
            hf_host_cores_busy=timers["hf"].host_costs()["host_cores_busy"])
        print(f"transformers (PyTorch) BertForPreTraining: step {1e3 * hf_step:.1f} ms, "
              f"{tokens / hf_step:.0f} tokens/s (its MLM head decodes all {bench.seq_len} "
              f"positions: {hf_flops / hf_step / 1e9:.1f} GFLOP/s; host CPU "
              f"{result['hf_host_cores_busy']:.2f} cores busy); bert_jax / transformers "
              f"tokens/s = {result['speedup_vs_hf']:.2f}x"
              f"{_spread(result['speedup_vs_hf_per_round'], '.2f', 'x')}")
    if FLAGS.pipeline:
        rate = _pipeline_rate(bench.seq_len, bench.batch_size)
        result["pipeline_batches_per_sec"] = rate
        result["pipeline_over_step"] = rate * this
        print(f"input pipeline: {rate:.1f} batches/s of {bench.batch_size} x {bench.seq_len}, "
              f"{result['pipeline_over_step']:.1f}x what the step consumes")
    result["xla_flags"] = os.environ.get("XLA_FLAGS", "")
    result["date"] = time.strftime("%Y-%m-%d")
    result["command"] = "python -m experiments.benchmark " + " ".join(sys.argv[1:])
    if FLAGS.json:
        os.makedirs(os.path.dirname(os.path.abspath(FLAGS.json)), exist_ok=True)
        with open(FLAGS.json, "w") as f:
            json.dump(result, f, indent=1)
        print(f"wrote {FLAGS.json}")


if __name__ == "__main__":
    app.run(main)
