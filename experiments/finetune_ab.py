"""An A/B of a fine-tuning config field: the fine-tuning CLI runs in alternating processes,
with and without a config override, and the steady-state tokens/s of their summary.json
files are compared (training steps only: the first step, which compiles, and the
evaluations are left out).

  python -m experiments.finetune_ab OUT ROUNDS OVERRIDE [finetune flags]
  python -m experiments.finetune_ab /tmp/ab 3 --config.model.last_layer_subset=false \\
      --config=configs/finetune/glue.py:sst2 --config.init_from=$MINILM \\
      --config.data.local_dir=../shared/data/glue/SST-2 --config.train.num_steps=40

Process "a" of each round runs with OVERRIDE, "b" without; each writes the workdir
OUT/<a|b>_<round> and its output to OUT/<a|b>_<round>.log. The last line printed is the
median tokens/s of each side and b's speed relative to a's.
"""

import json
import os
import statistics
import subprocess
import sys

USAGE = "usage: python -m experiments.finetune_ab OUT ROUNDS OVERRIDE [finetune flags]"


def main(argv: list[str]) -> int:
    if len(argv) < 3 or not argv[1].isdigit():
        print(USAGE, file=sys.stderr)
        return 2
    out, rounds, override, flags = argv[0], int(argv[1]), argv[2], argv[3:]
    workdirs = [os.path.join(out, f"{side}_{r}") for r in range(1, rounds + 1) for side in "ab"]
    taken = [w for w in workdirs if os.path.exists(w)]
    if taken:
        print(f"{taken[0]} exists: give a new OUT", file=sys.stderr)
        return 2
    os.makedirs(out, exist_ok=True)
    speed = {"a": [], "b": []}
    for workdir in workdirs:
        side = os.path.basename(workdir)[0]
        args = [sys.executable, "-m", "experiments.finetune", f"--workdir={workdir}", *flags]
        with open(workdir + ".log", "w") as log:
            done = subprocess.run(args + [override] if side == "a" else args,
                                  stdout=log, stderr=subprocess.STDOUT)
        if done.returncode:
            print(f"{workdir} failed (exit {done.returncode}); see {workdir}.log",
                  file=sys.stderr)
            return 1
        with open(os.path.join(workdir, "summary.json")) as f:
            speed[side].append(json.load(f)["tokens_per_sec"])
        print(f"{os.path.basename(workdir)}: {speed[side][-1]:,.1f} tokens/s", flush=True)
    a, b = statistics.median(speed["a"]), statistics.median(speed["b"])
    per_round = ", ".join(f"{y / x:.3f}x" for x, y in zip(speed["a"], speed["b"]))
    print(f"a ({override}): {a:,.1f} tokens/s; b (without it): {b:,.1f} tokens/s; medians of "
          f"{rounds} alternating rounds: b is {b / a:.3f}x the speed of a (per round: "
          f"{per_round})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
