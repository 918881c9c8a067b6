#!/usr/bin/env bash
# An A/B of something fixed at process start (an environment variable: XLA_FLAGS, the host
# memory's huge pages, ...): the benchmark runs in alternating processes, with and without
# the assignment, and the medians of their step times are compared.
#
#   bash experiments/process_ab.sh OUT ROUNDS 'VAR=VALUE [VAR=VALUE ...]' [benchmark flags]
#   bash experiments/process_ab.sh /tmp/hp 3 BERT_JAX_HUGE_PAGES=0 --model base --steps 6
#
# Process "a" of each round runs with the assignment, "b" without (the environment as it
# is). Records: OUT/a_<round>.json and OUT/b_<round>.json; the last line printed is the
# median step time of each side over all rounds and b's speed relative to a's. The
# interpreter is $PYTHON when set (else python from PATH).
set -euo pipefail
py=${PYTHON:-python}
if [ $# -lt 3 ]; then
  echo "usage: bash experiments/process_ab.sh OUT ROUNDS 'VAR=VALUE ...' [benchmark flags]" >&2
  exit 2
fi
out=$1 rounds=$2 assignment=$3
shift 3
mkdir -p "$out"
for ((r = 1; r <= rounds; r++)); do
  # shellcheck disable=SC2086  # the assignment splits into VAR=VALUE words on purpose
  env $assignment "$py" -m experiments.benchmark "$@" --json "$out/a_$r.json" | grep '^step'
  "$py" -m experiments.benchmark "$@" --json "$out/b_$r.json" | grep '^step'
done
"$py" - "$out" "$rounds" "$assignment" <<'EOF'
import json, statistics, sys
out, rounds, assignment = sys.argv[1], int(sys.argv[2]), sys.argv[3]
records = {side: [json.load(open(f"{out}/{side}_{r}.json")) for r in range(1, rounds + 1)]
           for side in "ab"}
steps = {side: [t for r in records[side] for t in r["step_time_ms_all"]] for side in "ab"}
faults = {side: statistics.median(r.get("minor_page_faults_per_step", float("nan"))
                                  for r in records[side]) for side in "ab"}
a, b = statistics.median(steps["a"]), statistics.median(steps["b"])
print(f"a ({assignment}): {a:.1f} ms, {faults['a']:,.0f} page faults per step; "
      f"b (the environment as it is): {b:.1f} ms, {faults['b']:,.0f}; medians of "
      f"{len(steps['a'])} steps each over {rounds} alternating rounds: b is {a / b:.3f}x "
      f"the speed of a")
EOF
