"""The benchmark's FLOP formula and its CLI (experiments/benchmark.py)."""

import json
import os
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bert_jax.config import family_config, model_config_for
from bert_jax.metrics.flops import forward_flops_per_sequence, train_flops_per_step
from bert_jax.modeling.models import init_params, pretraining_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_bert_base_flops_are_the_hand_counted_ones():
    """668 MFLOP per token with the MLM head at every position, 547 with 20 gathered ones
    (BERT-base, 128 tokens): the figures of the performance issue, counted by hand. The last
    layer at 21 rows of 128 saves 107 x 12.19 MFLOP (4 H^2 + 4 H I + 4 L H) x 3 / 128 =
    30.6 MFLOP per token of those 547."""
    base = model_config_for("base")
    full = model_config_for("base", last_layer_subset=False)
    per_token = lambda cfg, p, **kw: train_flops_per_step(cfg, batch_size=1, seq_len=128,
                                                          predictions=p, **kw) / 128 / 1e6
    assert per_token(base, 128, gathered=False) == pytest.approx(668.0, abs=0.5)
    assert per_token(base, 128) == per_token(base, 128, gathered=False)  # 129 rows > 128
    assert per_token(full, 20) == pytest.approx(546.3, abs=0.5)
    assert per_token(base, 20) == pytest.approx(546.3 - 30.6, abs=0.1)
    assert per_token(base, 20, gathered=False) == per_token(full, 20)


def _xla_flops(fn, *args):
    cost = jax.jit(fn).lower(*args).compile().cost_analysis()
    return (cost[0] if isinstance(cost, list) else cost)["flops"]


@pytest.mark.parametrize("family,size,subset", [("bert", "mini", True), ("bert", "mini", False),
                                                ("albert", "tiny", False)])
def test_flops_formula_agrees_with_xla_cost_analysis(family, size, subset):
    """XLA's own count of the compiled forward and backward (which also counts elementwise
    ops) is within a few percent of the formula's matmul FLOPs: the formula misses no
    matmul and counts none twice (an extra or missing 2 H^2 per layer is 4-8% off), with
    the last layer at the gathered rows or at all."""
    cfg = family_config(family, size, vocab_size=8000, scan_layers=False,
                        hidden_dropout=0.0, attention_dropout=0.0, last_layer_subset=subset)
    model = pretraining_model(cfg)
    params = init_params(model, jax.random.key(0))
    b, l, p = 2, 64, 10
    ids = jnp.full((b, l), 7, jnp.int32)
    positions = jnp.tile(jnp.arange(p, dtype=jnp.int32), (b, 1))

    def loss(params):
        out = model.apply({"params": params}, ids, jnp.ones_like(ids), ids * 0, positions)
        return out["mlm_logits"].sum() + out.get("sop_logits", out.get("nsp_logits")).sum()

    forward = b * forward_flops_per_sequence(cfg, l, p)
    assert _xla_flops(loss, params) / forward == pytest.approx(1.0, abs=0.05)
    train = train_flops_per_step(cfg, batch_size=b, seq_len=l, predictions=p)
    assert _xla_flops(jax.grad(loss), params) / train == pytest.approx(1.0, abs=0.05)


def _benchmark(tmp_path, *flags, devices=None):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    if devices is not None:  # the suite's XLA_FLAGS with another emulated device count
        others = re.sub(r"--xla_force_host_platform_device_count=\d+", "",
                        env.get("XLA_FLAGS", ""))
        env["XLA_FLAGS"] = f"{others} --xla_force_host_platform_device_count={devices}"
    return subprocess.run([sys.executable, "-m", "experiments.benchmark", *flags], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=600)


def test_benchmark_cli_reports_a_consistent_record(tmp_path):
    """The contract's record: 2 emulated devices, pmap, tiny BERT, one program. (2 devices,
    not the suite's 8: the same multi-device path, with steps about 2.5x faster at this
    size.) The cost options (masking, packing, profile, an A/B) are the slow test below."""
    out = tmp_path / "b.json"
    run = _benchmark(tmp_path, "--model", "tiny", "--seq_len", "32", "--batch_size", "16",
                     "--steps", "3", "--json", str(out), devices=2)
    assert run.returncode == 0, run.stderr[-2000:]
    r = json.loads(out.read_text())
    for key in ("tokens_per_sec", "step_time_ms", "compile_time_s", "model_flops_per_step",
                "peak_flops", "mfu", "peak_memory_bytes", "model", "seq_len", "batch_size",
                "dtype", "steps"):
        assert key in r, key
    assert r["devices"] == 2 and r["predictions_per_seq"] == 5 and r["steps"] == 3
    assert len(r["step_time_ms_all"]) == 3
    assert r["step_time_ms"] == pytest.approx(np.median(r["step_time_ms_all"]))
    assert r["model_flops_per_step"] == train_flops_per_step(
        model_config_for("tiny"), batch_size=16, seq_len=32, predictions=5)
    step_s = r["step_time_ms"] / 1e3
    assert r["tokens_per_sec"] == pytest.approx(16 * 32 / step_s)
    assert r["mfu"] == pytest.approx(r["model_flops_per_step"] / step_s / r["peak_flops"])
    assert 0 < r["mfu"] < 1 and r["peak_memory_bytes"] > 0 and r["compile_time_s"] > 0
    assert "MFU" in run.stdout
    assert r["compiled_memory_bytes"] > 0
    assert r["minor_page_faults_per_step"] >= 0 and r["system_seconds_per_step"] >= 0
    assert r["warmup_minor_page_faults_per_step"] >= 0 and "per warm-up step" in run.stdout
    # The process's CPU time over the timed steps' wall time: at least the dispatching
    # thread's share, at most every core this machine has (with some slack for the clocks).
    assert 0 < r["host_cores_busy"] <= 1.1 * os.cpu_count() and "cores busy (of " in run.stdout
    assert "page faults and" in run.stdout
    # The CLI re-executed itself with huge pages for malloc where the machine allows it.
    from bert_jax.training import host_memory

    assert r["host_huge_pages"] == (host_memory.huge_pages_active() or (
        host_memory.tunables_with_huge_pages(os.environ, host_memory.thp_mode(),
                                             host_memory.glibc_version()) is not None))
    # experiments/benchmark_table.py: one markdown row per record, under its header.
    from experiments.benchmark_table import HEADER, row

    cells = [c.strip() for c in row("b", r).strip("|").split("|")]
    assert len(cells) == HEADER.splitlines()[0].count("|") - 1
    assert cells[:5] == ["b", "tiny", "32", "16", "float32"]
    assert cells[12] == f"{100 * r['mfu']:.1f}%" and cells[10] == f"{r['step_time_ms']:.1f}"


@pytest.mark.slow  # four programs compiled and timed in turns, and a profile: ~30-40 s
def test_benchmark_cli_cost_options_alternate_in_rounds(tmp_path):
    """Masking and packing costs, a profile and an A/B, in 2 alternating rounds: each
    comparison per round from the step times the record holds."""
    out = tmp_path / "b.json"
    run = _benchmark(tmp_path, "--model", "tiny", "--seq_len", "32", "--batch_size", "16",
                     "--steps", "4", "--rounds", "2", "--masking_cost", "--packing_cost", "4",
                     "--profile", str(tmp_path / "trace"),
                     "--against", "remat=activation,scan_layers=false",
                     "--json", str(out), devices=2)
    assert run.returncode == 0, run.stderr[-2000:]
    r = json.loads(out.read_text())
    assert "masking_fraction" in r
    assert r["profile_ms_per_step"]["matmul"] > 0 and "largest ops:" in run.stdout
    assert r["profile_wall_ms_per_step"]["matmul"] > 0 and "while a matmul ran" in run.stdout
    assert r["against"] == "remat=activation,scan_layers=false"
    assert r["against_speedup"] == pytest.approx(r["step_time_ms"] / r["against_step_time_ms"])
    assert "with remat=activation,scan_layers=false: step" in run.stdout
    # Each round's ratio of medians, from the step times the record holds (2 per round).
    ours, theirs = r["step_time_ms_all"], r["against_step_time_ms_all"]
    assert len(ours) == len(theirs) == 4
    assert r["against_speedup_per_round"] == pytest.approx(
        [np.median(ours[:2]) / np.median(theirs[:2]), np.median(ours[2:]) / np.median(theirs[2:])])
    assert len(r["masking_fraction_per_round"]) == len(r["packing_overhead_per_round"]) == 2
    assert run.stdout.count("; per round ") == 3  # masking, packing, the A/B
    assert r["against_compiled_memory_bytes"] > 0
    assert r["packing_overhead"] == pytest.approx(
        r["packed_step_time_ms"] / r["step_time_ms"] - 1)
    from experiments.benchmark_table import row

    cells = [c.strip() for c in row("b", r).strip("|").split("|")]
    assert "masking" in cells[-1] and "packing" in cells[-1]


@pytest.mark.parametrize("flags,message", [
    (("--batch_size", "12"), "error: --batch_size (12)"),
    (("--scan_unroll", "3"), "error: model.scan_unroll must be in [0, num_layers=2]"),
    (("--rounds", "0", "--masking_cost"), "error: --rounds must be at least 1, got 0"),
    (("--steps", "0"), "error: --steps must be at least 1, got 0"),
    (("--against", "model=large"), "error: --against: 'model=large': expected FIELD=VALUE"),
    (("--against", "scan_layers=maybe"), "error: --against: scan_layers takes true or false"),
    (("--against", "remat=some"), "error: --against: model.remat must be one of"),
    (("--against", "update_guard=where"), "error: --against: update_guard takes one of auto, "
                                          "cond, select, got 'where'"),
])
def test_benchmark_cli_refuses_bad_settings_before_compiling(tmp_path, flags, message):
    run = _benchmark(tmp_path, "--model", "tiny", "--steps", "1", *flags)
    assert run.returncode == 1
    assert run.stderr.strip().splitlines()[-1].startswith(message)


@pytest.mark.slow  # a PyTorch model besides: ~1 min
def test_compare_hf_times_transformers_too(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    out = tmp_path / "b.json"
    run = _benchmark(tmp_path, "--model", "tiny", "--seq_len", "32", "--batch_size", "8",
                     "--steps", "2", "--rounds", "2", "--compare", "hf", "--json", str(out))
    assert run.returncode == 0, run.stderr[-2000:]
    r = json.loads(out.read_text())
    assert len(r["hf_step_time_ms_all"]) == 2 and r["hf_tokens_per_sec"] > 0
    assert r["speedup_vs_hf"] == pytest.approx(r["hf_step_time_ms"] / r["step_time_ms"])
    assert r["speedup_vs_hf_per_round"] == pytest.approx(
        [h / o for h, o in zip(r["hf_step_time_ms_all"], r["step_time_ms_all"])])
    assert "bert_jax / transformers" in run.stdout
    assert 0 < r["hf_host_cores_busy"] <= 1.1 * os.cpu_count()


def test_host_costs_count_the_timed_steps_only(monkeypatch):
    """Page faults and system time are per timed step: the warm-up steps _alternate runs
    (2 at first, 1 at the start of each turn) map in fresh memory and are left out."""
    import collections
    import resource
    import types

    from bert_jax.training.benchmark import StepTimer
    from experiments.benchmark import _alternate

    # A StepTimer with a stand-in for its compiled step (no compile), and a process
    # clock that advances 10 faults and 1 s of system time per step, 100 and 4 s for a
    # step on fresh memory: the first, and the first after the other contender's turn.
    # User time: 3 s per step.
    clock = {"faults": 0, "system_s": 0.0, "user_s": 0.0, "fresh": True}

    def compiled(state, batch, key):
        clock["faults"] += 100 if clock["fresh"] else 10
        clock["system_s"] += 4.0 if clock["fresh"] else 1.0
        clock["user_s"] += 3.0
        clock["fresh"] = False
        return state, {"loss": 0.0}

    monkeypatch.setattr(resource, "getrusage", lambda who: types.SimpleNamespace(
        ru_minflt=clock["faults"], ru_stime=clock["system_s"], ru_utime=clock["user_s"]))
    timer = object.__new__(StepTimer)
    timer.compiled, timer.state, timer.batch, timer.key = compiled, None, None, None
    timer._host = collections.Counter()

    class Other:  # another contender, run in turns with the timer
        def run(self, steps, *, warmup=False):
            clock["faults"] += 1000 * steps  # not the timer's
            clock["fresh"] = True
            return [0.0] * steps

    times = _alternate({"bert_jax": timer, "other": Other()}, steps=6, rounds=3)
    assert len(times["bert_jax"]) == 6 and timer._host["steps"] == 6
    # Warm-ups: 2 at first (fresh, then not) and 1 at the start of each turn (fresh).
    costs = timer.host_costs()
    assert costs.pop("host_cores_busy") == pytest.approx(6 * (3.0 + 1.0) / sum(times["bert_jax"]))
    assert costs == {
        "minor_page_faults_per_step": 10.0, "system_seconds_per_step": 1.0,
        "user_seconds_per_step": 3.0,
        "warmup_minor_page_faults_per_step": (4 * 100 + 10) / 5,
        "warmup_system_seconds_per_step": (4 * 4.0 + 1.0) / 5}


def test_per_round_ratios_split_the_alternated_times_by_round():
    from experiments.benchmark import _per_round, _spread

    ours = [1.0, 3.0, 2.0, 2.0, 10.0, 10.0]  # 3 rounds of 2 steps: medians 2, 2, 10
    theirs = [4.0, 4.0, 3.0, 5.0, 5.0, 5.0]  # medians 4, 4, 5
    ratios = _per_round(ours, theirs, 3, lambda a, b: b / a)
    assert ratios == [2.0, 2.0, 0.5]
    assert _spread(ratios, ".2f", "x") == "; per round 0.50x to 2.00x"
    assert _spread(ratios[:1], ".2f") == ""  # one round: no range
    assert _per_round(ours, theirs[:4], 3, lambda a, b: b / a) == []  # not alternated


@pytest.mark.parametrize("overlap", [True, False])
def test_timed_steps_queue_the_next_step_before_reading_the_loss(overlap):
    """As the training loop runs: step i+1 is dispatched before step i's loss is read
    (overlap), or strictly one after the other; one time per step, summing to the wall."""
    import time

    from bert_jax.training.benchmark import timed_steps

    log = []

    class Loss:
        def __init__(self, i):
            self.i = i

        def __float__(self):
            log.append(("read", self.i))
            time.sleep(0.05)  # long enough that a busy machine's delays stay within 5%
            return 0.0

    def dispatch():
        i = sum(1 for e in log if e[0] == "dispatch")
        log.append(("dispatch", i))
        return Loss(i)

    t0 = time.perf_counter()
    times = timed_steps(dispatch, 4, overlap=overlap)
    wall = time.perf_counter() - t0
    assert len(times) == 4 and min(times) > 0
    assert sum(times) == pytest.approx(wall, rel=0.05)
    order = [e for e in log]
    for i in range(3):
        before = order.index(("dispatch", i + 1)) < order.index(("read", i))
        assert before == overlap
    assert [e for e in log if e[0] == "dispatch"] == [("dispatch", i) for i in range(4)]


@pytest.mark.slow  # two benchmark processes: ~40 s
def test_process_ab_alternates_processes_with_and_without_the_assignment(tmp_path):
    """experiments/process_ab.sh: process a runs with the variable, b without; the summary
    is the ratio of the medians of all their steps."""
    from bert_jax.training import host_memory

    env = {k: v for k, v in os.environ.items() if k not in ("GLIBC_TUNABLES",
                                                             "BERT_JAX_HUGE_PAGES")}
    # A `python` on PATH that fails: the script must run the interpreter it is given.
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "python").write_text("#!/bin/sh\nexit 3\n")
    (tmp_path / "bin" / "python").chmod(0o755)
    env["PATH"] = f"{tmp_path / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    run = subprocess.run(
        ["bash", "experiments/process_ab.sh", str(tmp_path), "1", "BERT_JAX_HUGE_PAGES=0",
         "--model", "tiny", "--seq_len", "16", "--batch_size", "8", "--steps", "3"],
        cwd=ROOT, env=dict(env, JAX_PLATFORMS="cpu", PYTHON=sys.executable),
        capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    records = {n: json.loads((tmp_path / f"{n}.json").read_text()) for n in ("a_1", "b_1")}
    assert not records["a_1"]["host_huge_pages"]
    expected = host_memory.tunables_with_huge_pages(env, host_memory.thp_mode(),
                                                    host_memory.glibc_version()) is not None
    assert records["b_1"]["host_huge_pages"] == expected
    median = lambda side: float(np.median(records[f"{side}_1"]["step_time_ms_all"]))
    last = run.stdout.strip().splitlines()[-1]
    assert last.startswith("a (BERT_JAX_HUGE_PAGES=0): ")
    assert last.endswith(f"b is {median('a') / median('b'):.3f}x the speed of a")


def test_attention_layout_script_checks_and_times_both_layouts():
    """experiments/attention_layout.py (the figure quoted in SelfAttention): both layouts'
    values and gradients agree before timing (the script asserts it), and the ratio prints."""
    run = subprocess.run(
        [sys.executable, "-m", "experiments.attention_layout", "--batch_size", "2",
         "--seq_len", "16", "--num_heads", "2", "--head_dim", "8", "--steps", "2",
         "--rounds", "2"], cwd=ROOT, env=dict(os.environ, JAX_PLATFORMS="cpu"),
        capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    m = re.search(r"medians of 4 calls: in place ([\d.]+) ms, heads first ([\d.]+) ms; "
                  r"heads first is ([\d.]+)x the speed", run.stdout)
    assert m, run.stdout
    assert float(m[1]) > 0 and float(m[2]) > 0 and float(m[3]) > 0
