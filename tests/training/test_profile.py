"""The step profiler's summary: events of a real trace are attributed to the HLO ops that
ran them and to the right kind of op."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bert_jax.training import profile



def test_category_rules():
    assert profile.category("ynn_fusion.3", "fusion", "jit(f)/layer_1/query/dot_general",
                            "dot") == "matmul"
    assert profile.category("dot.7", "dot", "") == "matmul"
    assert profile.category("copy_bitcast_fusion.2", "fusion", "jit(f)/Dropout_0/div") == (
        "layout copy")
    assert profile.category("transpose.1", "transpose", "") == "layout copy"
    assert profile.category("broadcast_add_fusion", "fusion",
                            "jit(f)/Dropout_0/jit(_bernoulli)/jit(_uniform)/add") == "dropout RNG"
    assert profile.category("add_select_fusion", "fusion", "jit(f)/add") == "other"
    # GPU fusion names use "_"; a backward op's op_name starts "transpose(jvp(": not a copy.
    assert profile.category("fusion.12", "fusion",
                            "jit(f)/while/body/dynamic_update_slice") == "layout copy"
    assert profile.category("loop_add_fusion", "fusion",
                            "transpose(jvp(f))/layer_1/add") == "other"


@pytest.mark.parametrize("bits", [16, 32])
def test_dropout_bits_are_found_in_a_compiled_module(bits):
    """The model's dropout draws its bits under a name the "dropout RNG" rule knows."""
    from bert_jax.modeling.layers import Dropout

    drop = lambda x, key: Dropout(0.1, bits=bits).apply({}, x, deterministic=False,
                                                        rngs={"dropout": key})
    hlo = jax.jit(drop).lower(jnp.ones((8, 64)), jax.random.key(0)).compile().as_text()
    roots = profile._fused_roots(hlo)
    # The fusions that compute random words (uint32 arrays) all count as dropout RNG.
    cats = [profile.category(name, opcode, op_name, roots.get(name, ""))
            for name, (shape, opcode, op_name) in profile._instructions(hlo).items()
            if opcode == "fusion" and re.match(r"u32\[\d", shape)]
    assert cats and set(cats) == {"dropout RNG"}, cats


def test_summary_of_a_real_trace_finds_the_matmul(tmp_path):
    @jax.jit
    def f(x, w):
        y = jnp.tanh(x @ w)      # a dot, an element-wise op
        return (y.T @ y).sum()   # a transposed operand

    # A long contraction: ~1 GFLOP of dots against element-wise work on 256 x 256 outputs,
    # so the dots take most of the time even with the suite's slow -O0 element-wise code
    # (with 512 x 512 x 512 dots and their outputs' tanh and sum, the two were even).
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((256, 8192)), jnp.float32)
    w = jnp.asarray(rng.standard_normal((8192, 256)) / 90.0, jnp.float32)
    compiled = f.lower(x, w).compile()
    compiled(x, w).block_until_ready()
    with jax.profiler.trace(str(tmp_path)):
        for _ in range(3):
            compiled(x, w).block_until_ready()
    summary = profile.summarize_trace(str(tmp_path), compiled.as_text(), steps=3)
    cats = summary["categories"]
    assert set(cats) == set(profile.CATEGORIES)
    assert cats["matmul"] > 0 and cats["matmul"] >= cats["other"]
    assert cats["dropout RNG"] == 0
    assert summary["top"][0][1] == "matmul"
    # The wall view covers the traced window once: its parts add up to the first event's
    # start to the last one's end, and a matmul ran for at most as long as matmuls took.
    events = profile.trace_events(str(tmp_path))
    window_ms = (max(t + ns for _, t, ns in events) - min(t for _, t, _ in events)) / 3e6
    wall = summary["wall"]
    assert sum(wall.values()) <= window_ms * (1 + 1e-9)
    assert 0 < wall["matmul"] <= cats["matmul"] * (1 + 1e-9)
    # A module the trace did not run (another run's step.hlo.txt): a clear error, not a
    # division by zero when the summary is printed.
    (tmp_path / profile.HLO_FILE).write_text(
        '  %dot.9 = f32[8,8]{1,0} dot(%a, %b), metadata={op_name="jit(g)/dot_general"}\n')
    with pytest.raises(SystemExit, match="same run"):
        profile.main([str(tmp_path), "--steps", "3"])


def test_wall_breakdown_gives_each_instant_to_what_ran():
    ms = 1_000_000  # ns
    intervals = [
        (0, 10 * ms, "matmul", ("f32[8,8]", "dot")),
        (5 * ms, 15 * ms, "other", ("f32[8]", "a")),        # beside the dot until 10
        (12 * ms, 20 * ms, "layout copy", ("f32[8]", "b")),  # shares 12-15 with "a"
        (25 * ms, 30 * ms, "other", ("f32[8]", "c")),        # after a gap of 5
        (30 * ms, 34 * ms, "fused attention", ("", "sdpa")),
        (32 * ms, 36 * ms, "other", ("f32[8]", "d")),        # beside the attention until 34
    ]
    wall, top = profile.wall_breakdown(intervals, steps=2)
    assert wall == pytest.approx({"matmul": 5.0, "fused attention": 2.0, "other": 5.25,
                                  "layout copy": 3.25, "dropout RNG": 0.0,
                                  profile.WALL_NO_OP: 2.5})
    assert sum(wall.values()) == pytest.approx(36 / 2)
    assert top == [pytest.approx(row) for row in [
        (3.25, "layout copy", "f32[8]", "b"), (2.5, "other", "f32[8]", "c"),
        (1.75, "other", "f32[8]", "a"), (1.0, "other", "f32[8]", "d")]]
    assert profile.wall_breakdown([], steps=1)[0][profile.WALL_NO_OP] == 0


def _gpu_xspace(path):
    """A GPU trace as jax.profiler writes it: kernels on a stream line, those replayed from
    a CUDA graph tagged with the graph's name rather than their HLO op."""
    # Only this test's trace is built with TensorFlow's XPlane protobuf; the summary reads
    # traces with jaxlib's reader.
    xplane_pb2 = pytest.importorskip("tensorflow.tsl.profiler.protobuf.xplane_pb2")

    space = xplane_pb2.XSpace()
    gpu = space.planes.add(name="/device:GPU:0")
    gpu.stat_metadata[1].name = "hlo_op"
    gpu.stat_metadata[1].id = 1
    stream = gpu.lines.add(name="Stream #14(Memset,Compute)")
    kernels = [  # kernel name, hlo_op stat, microseconds
        ("loop_add_fusion_3", "command_buffer_1", 30),  # XLA fusion inside a CUDA graph
        ("nvjet_sm90_tst_128x128_64x6_2x1_v_bz_TNT", "command_buffer_1", 50),  # cuBLAS
        ("cudnn_generated_fort_native_sdpa_sm90_flash_fprop", "command_buffer_1", 20),
        ("gemm_kernel_launched_op_by_op", "dot.5", 40),  # outside a graph: its HLO op
        ("MemcpyD2H", "", 7),  # no instruction, no library kernel: left out
    ]
    offset_us = 0
    for i, (name, op, us) in enumerate(kernels, start=1):
        gpu.event_metadata[i].name = name
        gpu.event_metadata[i].id = i
        event = stream.events.add(metadata_id=i, offset_ps=offset_us * 1_000_000,
                                  duration_ps=us * 1_000_000)
        offset_us += us + 5  # one after another, 5 us apart
        if op:
            event.stats.add(metadata_id=1, str_value=op)
    host = space.planes.add(name="/host:CPU")  # host threads: not device time on a GPU
    host.event_metadata[1].name = "dot.5"
    host.lines.add(name="pjrt").events.add(metadata_id=1, duration_ps=10**12)
    path.mkdir(parents=True)
    (path / "vm.xplane.pb").write_bytes(space.SerializeToString())


def test_gpu_trace_names_graph_kernels_and_library_kernels(tmp_path):
    _gpu_xspace(tmp_path / "plugins" / "profile" / "2026_01_01")
    hlo = "\n".join([
        "ENTRY %main () -> f32[] {",
        '  %loop_add_fusion.3 = (f32[8]{0}, bf16[8]{0}) fusion(%p), kind=kLoop, '
        'calls=%fused_add, metadata={op_name="jit(f)/layer_1/add"}',
        '  %dot.5 = f32[8,8]{1,0} dot(%a, %b), metadata={op_name="jit(f)/dot_general"}',
        "}"])
    summary = profile.summarize_trace(str(tmp_path), hlo, steps=2)
    cats = summary["categories"]
    # Per step: 50 us cuBLAS + 40 us dot.5 matmul; 20 us cuDNN; 30 us the add fusion.
    assert cats["matmul"] == pytest.approx(0.045)
    assert cats["fused attention"] == pytest.approx(0.010)
    assert cats["other"] == pytest.approx(0.015)
    assert sum(cats.values()) == pytest.approx(0.070)  # the memcpy and host events left out
    top = {op: (cat, shape) for _, cat, shape, op in summary["top"]}
    assert top["layer_*/add"] == ("other", "(f32[8]{0}, bf16[8]{0})")
    # The stream's wall time, 2 steps of kernels 5 us apart: the dots' 90 us, cuDNN's 20 us,
    # the fusion's 30 us, and the three 5 us gaps between the four kernels it keeps.
    assert summary["wall"] == pytest.approx({
        "matmul": 0.045, "fused attention": 0.010, "other": 0.015, "layout copy": 0.0,
        "dropout RNG": 0.0, profile.WALL_NO_OP: 0.0075})
    assert summary["wall_top"] == [pytest.approx((0.015, "other", "(f32[8]{0}, bf16[8]{0})",
                                                  "layer_*/add"))]


def test_profile_cli_summarises_a_saved_trace(tmp_path, capsys):
    _gpu_xspace(tmp_path / "plugins" / "profile" / "2026_01_01")
    with pytest.raises(SystemExit, match="no step.hlo.txt"):
        profile.main([str(tmp_path)])
    (tmp_path / profile.HLO_FILE).write_text(
        '  %dot.5 = f32[8,8]{1,0} dot(%a, %b), metadata={op_name="jit(f)/dot_general"}\n')
    profile.main([str(tmp_path), "--steps", "1"])
    out = capsys.readouterr().out
    assert "matmul" in out and "fused attention" in out and "largest ops:" in out
    empty = tmp_path / "no_trace"
    empty.mkdir()
    (empty / profile.HLO_FILE).write_text("")
    with pytest.raises(SystemExit, match="no \\*.xplane.pb"):
        profile.main([str(empty), "--steps", "1"])


def test_matching_ops_sums_op_time_and_the_union_of_their_wall_time(tmp_path, monkeypatch,
                                                                    capsys):
    """--match: op time adds up every matching event; wall time counts overlapping events
    once; other ops and while/call containers are left out."""
    hlo = "\n".join([
        '  %a.1 = f32[8]{0} fusion(%p), metadata={op_name="jit(f)/cond/branch_1_fun/add"}',
        '  %b.2 = f32[4]{0} fusion(%p), metadata={op_name="jit(f)/cond/branch_1_fun/div"}',
        '  %c.3 = f32[8]{0} fusion(%p), metadata={op_name="jit(f)/jvp(model)/add"}',
        '  %w.4 = f32[8]{0} while(%p), metadata={op_name="jit(f)/cond/branch_1_fun/while"}'])
    ms = 1e6  # ns
    events = [("a.1", 0, 10 * ms), ("b.2", 5 * ms, 10 * ms), ("c.3", 30 * ms, 5 * ms),
              ("w.4", 0, 100 * ms), ("a.1", 40 * ms, 10 * ms), ("unknown", 0, 9 * ms)]
    monkeypatch.setattr(profile, "trace_events", lambda _: events)
    found = profile.matching_ops(str(tmp_path), hlo, steps=2, pattern="cond/branch")
    assert found["op_ms"] == pytest.approx(30 / 2) and found["wall_ms"] == pytest.approx(25 / 2)
    assert found["ops"] == 1.5
    assert found["top"] == [pytest.approx((10.0, "f32[8]{0}", "cond/branch_1_fun/add")),
                            pytest.approx((5.0, "f32[4]{0}", "cond/branch_1_fun/div"))]
    with pytest.raises(ValueError, match="no op .* matching 'softmax'"):
        profile.matching_ops(str(tmp_path), hlo, steps=2, pattern="softmax")
    (tmp_path / profile.HLO_FILE).write_text(hlo)
    profile.main([str(tmp_path), "--steps", "2", "--match", "branch_1_fun/(add|div)"])
    assert ("2 per step, 15.0 ms of op time and 12.5 ms of wall time"
            in capsys.readouterr().out)
    with pytest.raises(SystemExit, match="error: .*unterminated"):
        profile.main([str(tmp_path), "--match", "[("])
