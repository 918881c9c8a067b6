"""Where a compiled step spends its time: a profiler trace summarised by HLO op.

`summarize_trace` reads the XSpace file that `jax.profiler.trace` writes and adds up the
device-side events (on a GPU: the kernels of its streams; on a CPU: the XLA thread pool's
events) by the HLO instruction each one ran, then by what that instruction computes, from
the compiled module's `op_name` metadata:

  matmul           dot products (dense layers, attention, the MLM decoder), fused or not,
                   and cuBLAS/CUTLASS kernels
  fused attention  cuDNN's attention kernels (model.attention_impl="cudnn")
  layout copy      copies, transposes and dynamic (update-)slices: moving data, no arithmetic
  dropout RNG      random-bit generation for dropout masks
  other            everything else: element-wise fusions, reductions, softmax, LayerNorm,
                   the optimizer, collectives

Times are summed over threads (or streams), so the total is not the steps' wall time (above
it when ops overlap, below it when threads idle); the shares are what compare. A second view
splits the wall time instead (`wall_breakdown`): the time while some matmul ran, and the rest
by what ran instead. MFU is lost in that rest, and in matmuls slower than the peak. XLA runs a
GPU step op by op while it is traced (no CUDA graphs). The trace is read with jaxlib's own
XSpace reader (`jax.profiler.ProfileData`), so a bare accelerator image summarises it too.
experiments/benchmark.py also saves the compiled module's text (`step.hlo.txt`) beside the
trace, so that

    python -m bert_jax.training.profile TRACE_DIR --steps 3
    python -m bert_jax.training.profile TRACE_DIR --steps 3 --match cond/branch

summarises a saved trace again later, or (`--match`) gives the op and wall time of the ops
whose op_name matches a regular expression.
"""

from __future__ import annotations

import collections
import glob
import os
import re

CATEGORIES = ("matmul", "fused attention", "layout copy", "dropout RNG", "other")
# Library kernels with no HLO instruction of their name (GPU): cuBLAS/cuBLASLt/CUTLASS
# matmuls, and cuDNN's fused attention (jax.nn.dot_product_attention, implementation="cudnn").
_LIBRARY_KERNELS = (("matmul", re.compile(r"nvjet|gemm|xmma|cutlass|cublas", re.I)),
                    ("fused attention", re.compile(r"sdpa|flash|fmha|cudnn", re.I)))
_SKIP = ("ThunkExecutor", "Await", "$")  # executor bookkeeping and Python frames
_CONTAINERS = ("while", "call", "conditional")


def _kernel_name(hlo_name: str) -> str:
    """The name XLA's GPU backend gives a fusion's kernel: "." and "-" made "_"."""
    return re.sub(r"[.\-]", "_", hlo_name)


def _instructions(hlo_text: str) -> dict[str, tuple[str, str, str]]:
    """HLO instruction name -> (shape, opcode, op_name metadata)."""
    out = {}
    # Shapes may be tuples with spaces (multi-output fusions): lazily up to " opcode(".
    for m in re.finditer(r"^\s*(?:ROOT )?%([\w.\-]+) = (.+?) ([\w\-]+)\((.*?)\)(.*)$",
                         hlo_text, re.M):
        name, shape, opcode, _, rest = m.groups()
        op_name = re.search(r'op_name="([^"]+)"', rest)
        out[name] = (shape, opcode, op_name.group(1) if op_name else "")
        out.setdefault(_kernel_name(name), out[name])  # as GPU kernels name it
    return out


def _fused_roots(hlo_text: str) -> dict[str, str]:
    """fusion instruction name -> opcode of its fused computation's root."""
    roots = {}
    for m in re.finditer(r"^%([\w.\-]+) \(.*?\n(.*?)\n}", hlo_text, re.M | re.S):
        root = re.search(r"ROOT %[\w.\-]+ = \S+ ([\w\-]+)\(", m.group(2))
        if root:
            roots[m.group(1)] = root.group(1)
    calls = {}
    for m in re.finditer(r"%([\w.\-]+) = .+? fusion\(.*?calls=%([\w.\-]+)", hlo_text):
        calls[m.group(1)] = roots.get(m.group(2), "")
        calls.setdefault(_kernel_name(m.group(1)), calls[m.group(1)])
    return calls


def category(name: str, opcode: str, op_name: str, root: str = "") -> str:
    if "dot_general" in op_name or opcode in ("dot", "convolution") or root == "dot":
        return "matmul"
    if "_bernoulli" in op_name or "_uniform" in op_name or "threefry" in op_name or (
            "random_bits" in op_name) or opcode == "rng-bit-generator":
        return "dropout RNG"
    moves = r"(copy|transpose|dynamic[-_]update[-_]slice|dynamic[-_]slice)"
    # op_name's last part: its first ones say "transpose(jvp(...))" for every backward op.
    if opcode in ("copy", "transpose", "dynamic-slice", "dynamic-update-slice") or re.search(
            moves, name) or re.fullmatch(moves, op_name.rsplit("/", 1)[-1]):
        return "layout copy"
    return "other"


def _gpu_line_events(plane):
    """(HLO op name, start ns, duration ns) of a GPU plane's kernels: each stream's kernels by
    their `hlo_op` stat."""
    for line in plane.lines:
        if not line.name.startswith("Stream"):
            continue
        for event in line.events:
            op = next((str(value) for name, value in event.stats if name == "hlo_op"), "")
            if not op or op.startswith("command_buffer"):
                # Kernels replayed from a CUDA graph carry the graph's name: name them by
                # the kernel, which for XLA's own kernels is the fusion's HLO name.
                op = event.name
            yield op, event.start_ns, event.duration_ns


def trace_events(trace_dir: str) -> list[tuple[str, float, float]]:
    """(event name, start ns, duration ns) of the newest trace under `trace_dir`: on a GPU,
    the kernels of the device planes (named by the HLO op that launched them); else the XLA
    threads' events."""
    from jax.profiler import ProfileData  # pylint: disable=g-import-not-at-top

    files = sorted(glob.glob(os.path.join(trace_dir, "**", "*.xplane.pb"), recursive=True),
                   key=os.path.getmtime)
    if not files:
        raise FileNotFoundError(f"no *.xplane.pb under {trace_dir}")
    space = ProfileData.from_file(files[-1])
    gpus = [p for p in space.planes if p.name.startswith("/device:GPU")]
    if gpus:
        return [event for plane in gpus for event in _gpu_line_events(plane)]
    return [(event.name, event.start_ns, event.duration_ns)
            for plane in space.planes for line in plane.lines if line.name != "python"
            for event in line.events if not event.name.startswith(_SKIP)]


WALL_NO_OP = "no op event"


def wall_breakdown(intervals, steps: int) -> tuple[dict, list]:
    """Splits the traced steps' wall time by what ran, from (start ns, end ns, category,
    key) intervals: ({part: ms per step}, [(ms per step, *key), ...] largest first).

    Each instant goes to "matmul" while any matmul runs (its threads busy with the work MFU
    counts), else to "fused attention" while a fused attention kernel runs, else in equal
    shares to the categories of the ops running (the time a step spends outside the matmuls),
    else to WALL_NO_OP: gaps between ops, and host time between steps. On a CPU, Eigen's dots
    also land there: their event ends when the dot is handed to the thread pool, not when its
    work does. The list ranks the ops of the time outside matmuls and fused attention."""
    points = []
    for start, end, cat, key in intervals:
        points += [(start, 1, cat, key), (end, -1, cat, key)]
    points.sort(key=lambda p: (p[0], p[1]))
    parts = collections.Counter({c: 0.0 for c in CATEGORIES + (WALL_NO_OP,)})
    by_op = collections.Counter()
    running = collections.Counter()
    previous = points[0][0] if points else 0.0
    for t, delta, cat, key in points:
        dt = t - previous
        if dt > 0:
            cats = {c for c, _ in running}
            if "matmul" in cats or "fused attention" in cats:
                parts["matmul" if "matmul" in cats else "fused attention"] += dt
            elif running:
                count = sum(running.values())
                for (c, k), n in running.items():
                    parts[c] += dt * n / count
                    by_op[(c, *k)] += dt * n / count
            else:
                parts[WALL_NO_OP] += dt
        running[(cat, key)] += delta
        if not running[(cat, key)]:
            del running[(cat, key)]
        previous = t
    per_step = 1e6 * steps
    return ({c: ns / per_step for c, ns in parts.items()},
            [(ns / per_step, *key) for key, ns in by_op.most_common(12)])


def _row_name(op_name: str) -> str:
    """An op's row in the tables: its op_name without the jit prefix, and one row per
    layer-independent op (layer_3 and layer_7's FFN dots are one row)."""
    return re.sub(r"layer_\d+", "layer_*", op_name).split("/", 1)[-1]


def summarize_trace(trace_dir: str, hlo_text: str, steps: int) -> dict:
    """{"categories": {category: ms per step}, "top": [(ms per step, category, shape,
    op_name), ...], "wall": {part: ms per step}, "wall_top": [...]} of the traced steps (see
    the module docstring and `wall_breakdown`)."""
    events = trace_events(trace_dir)
    instructions, roots = _instructions(hlo_text), _fused_roots(hlo_text)
    by_category = collections.Counter({c: 0.0 for c in CATEGORIES})
    by_op = collections.Counter()
    intervals = []
    for name, start, ns in events:
        if name not in instructions:
            cat = next((c for c, pattern in _LIBRARY_KERNELS if pattern.search(name)), None)
            if cat is None:  # host-side events (transfers, Python)
                continue
            key = (cat, "", name[:80])
        else:
            shape, opcode, op_name = instructions[name]
            if opcode in _CONTAINERS:  # their body's ops have events of their own
                continue
            cat = category(name, opcode, op_name, roots.get(name, ""))
            key = (cat, shape, _row_name(op_name))
        ms = ns / 1e6 / steps
        by_category[cat] += ms
        by_op[key] += ms
        intervals.append((start, start + ns, cat, key[1:]))
    if not intervals:
        raise ValueError(f"none of the {len(events)} events of the trace in {trace_dir} ran "
                         "an op of the given compiled module: were the trace and the module "
                         "(step.hlo.txt) written by the same run?")
    wall, wall_top = wall_breakdown(intervals, steps)
    return {"categories": dict(by_category),
            "top": [(ms, *key) for key, ms in by_op.most_common(25)],
            "wall": wall, "wall_top": wall_top}


def matching_ops(trace_dir: str, hlo_text: str, steps: int, pattern: str) -> dict:
    """The ops of the traced steps whose op_name metadata matches the regular expression
    `pattern` (e.g. "cond/branch" for the optimizer's update, which runs under the step's
    non-finite guard, or "log_softmax" for the MLM loss): {"op_ms": their op time per step,
    "wall_ms": the wall time per step in which at least one of them ran, "ops": ops per
    step, "top": [(ms per step, shape, op_name), ...] largest first}."""
    regex = re.compile(pattern)
    instructions = _instructions(hlo_text)
    spans, by_op = [], collections.Counter()
    for name, start, ns in trace_events(trace_dir):
        if name not in instructions:
            continue
        shape, opcode, op_name = instructions[name]
        if opcode in _CONTAINERS or not regex.search(op_name):
            continue
        spans.append((start, start + ns, "other", ()))  # one category: wall is their union
        by_op[(shape, _row_name(op_name))] += ns
    if not spans:
        raise ValueError(f"no op of the trace in {trace_dir} has an op_name matching "
                         f"{pattern!r}")
    wall, _ = wall_breakdown(spans, steps)
    per_step = 1e6 * steps
    return {"op_ms": sum(by_op.values()) / per_step, "wall_ms": wall["other"],
            "ops": len(spans) / steps,
            "top": [(ns / per_step, *key) for key, ns in by_op.most_common(10)]}


HLO_FILE = "step.hlo.txt"


def print_summary(summary: dict) -> None:
    total = sum(summary["categories"].values())
    print(f"op time summed over threads/streams: {total:.1f} ms per step")
    for name, ms in sorted(summary["categories"].items(), key=lambda kv: -kv[1]):
        print(f"  {name:12s} {ms:8.2f} ms  {100 * ms / total:5.1f}%")
    print("  largest ops:")
    for ms, cat, shape, op_name in summary["top"][:12]:
        print(f"  {ms:8.2f} ms  {cat:12s} {shape:28s} {op_name[-80:]}")
    wall = summary["wall"]
    window = sum(wall.values())
    print(f"wall time of the traced steps: {window:.1f} ms per step")
    for name, ms in sorted(wall.items(), key=lambda kv: -kv[1]):
        label = "while a matmul ran" if name == "matmul" else name
        print(f"  {label:20s} {ms:8.2f} ms  {100 * ms / window:5.1f}%")
    print("  largest ops outside the matmuls (wall):")
    for ms, cat, shape, op_name in summary["wall_top"][:8]:
        print(f"  {ms:8.2f} ms  {cat:12s} {shape:28s} {op_name[-80:]}")


def main(argv=None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Summarise a benchmark's profiler trace "
                                     "(experiments/benchmark.py --profile DIR) by kind of op.")
    parser.add_argument("trace_dir")
    parser.add_argument("--steps", type=int, default=3, help="steps the trace holds")
    parser.add_argument("--match", metavar="REGEX", help="instead, the op time and wall "
                        "time of the ops whose op_name matches REGEX (e.g. cond/branch: "
                        "the optimizer)")
    args = parser.parse_args(argv)
    hlo = os.path.join(args.trace_dir, HLO_FILE)
    if not os.path.exists(hlo):
        raise SystemExit(f"error: no {HLO_FILE} in {args.trace_dir} (written by "
                         "experiments/benchmark.py --profile)")
    with open(hlo) as f:
        hlo_text = f.read()
    try:
        if args.match:
            found = matching_ops(args.trace_dir, hlo_text, args.steps, args.match)
        else:
            summary = summarize_trace(args.trace_dir, hlo_text, args.steps)
    except (FileNotFoundError, ValueError, re.error) as err:
        raise SystemExit(f"error: {err}") from None
    if not args.match:
        print_summary(summary)
        return
    print(f"ops matching {args.match!r}: {found['ops']:.0f} per step, "
          f"{found['op_ms']:.1f} ms of op time and {found['wall_ms']:.1f} ms of wall time "
          f"per step (the time at least one of them ran)")
    for ms, shape, op_name in found["top"]:
        print(f"  {ms:8.2f} ms  {shape:28s} {op_name[-80:]}")


if __name__ == "__main__":
    main()
