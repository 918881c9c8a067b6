"""A markdown table of benchmark records (experiments/benchmark.py --json), one row each.

    python -m experiments.benchmark_table results/*.json
"""

import json
import os
import sys


def row(name: str, r: dict) -> str:
    attn = r.get("attention_impl", "xla")
    drop = r.get("dropout", 0.1)
    adrop = r.get("attention_dropout")
    adrop = drop if adrop is None else adrop
    per_iteration = r.get("layers_per_scan_iteration", r.get("scan_unroll", 1))
    layout = ("unrolled" if not r.get("scan_layers", True) else
              "scan" if per_iteration == 1 else f"scan, {per_iteration} per iteration")
    dtype = r["dtype"] + (" (bf16 residual)" if r.get("residual_dtype") == "bfloat16" else "")
    cells = [name, r["model"], str(r["seq_len"]), str(r["batch_size"]), dtype, attn,
             f"{drop:g}/{adrop:g}", r.get("prng_impl", "threefry2x32"), layout,
             f"{r['compile_time_s']:.1f}", f"{r['step_time_ms']:.1f}",
             f"{r['tokens_per_sec']:,.0f}", f"{100 * r['mfu']:.1f}%",
             f"{r['peak_flops'] / 1e12:.3g}", f"{r['peak_memory_bytes'] / 2**30:.1f}"]
    extra = [f"XLA_FLAGS={r['xla_flags']}"] if r.get("xla_flags") else []
    if r.get("host_huge_pages") is False:  # absent in records from before the field
        extra.append("no huge pages for host memory")
    if r.get("remat", "none") != "none":
        extra.append(f"remat={r['remat']}")
    if "against" in r:
        extra.append(f"with {r['against']}: {r['against_step_time_ms']:.1f} ms "
                     f"({r['against_speedup']:.3f}x), compile "
                     f"{r['against_compile_time_s']:.1f} s")
    if "speedup_vs_hf" in r:
        extra.append(f"HF {r['hf_step_time_ms']:.1f} ms, {r['hf_tokens_per_sec']:,.0f} tok/s: "
                     f"{r['speedup_vs_hf']:.2f}x")
    if "layout_other" in r:
        extra.append(f"{r['layout_other']} {r['layout_other_step_time_ms']:.1f} ms "
                     f"({r['layout_other_speedup']:.2f}x), compile "
                     f"{r['layout_other_compile_time_s']:.1f} s")
    if "masking_fraction" in r:
        extra.append(f"masking {100 * r['masking_fraction']:.2f}%")
    if "packing_overhead" in r:
        extra.append(f"packing {100 * r['packing_overhead']:+.1f}%")
    return "| " + " | ".join(cells + ["; ".join(extra)]) + " |"


HEADER = ("| run | model | seq | batch | dtype | attention | dropout hidden/attn | PRNG | layers "
          "| compile s | step ms | tokens/s | MFU | peak TFLOP/s | peak mem GiB | also |\n"
          "|" + "---|" * 16)


def main(paths: list[str]) -> None:
    if not paths:
        sys.exit("usage: python -m experiments.benchmark_table RECORD.json ...")
    print(HEADER)
    for path in paths:
        with open(path) as f:
            record = json.load(f)
        if "step_time_ms" not in record:
            print(f"({path}: not a benchmark record, left out)", file=sys.stderr)
            continue
        print(row(os.path.splitext(os.path.basename(path))[0], record))


if __name__ == "__main__":
    main(sys.argv[1:])
