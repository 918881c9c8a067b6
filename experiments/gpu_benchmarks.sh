#!/usr/bin/env bash
# The accelerator figures of BENCHMARKS.md, one command each (run on a GPU machine from the
# repository root; needs only jax/flax/optax, plus torch+transformers for the HF rows):
#
#   bash experiments/gpu_benchmarks.sh OUT_DIR [RUN ...]
#
# RUN names one of the runs below (default: all, in this order). Each writes OUT_DIR/RUN.json
# and its log; a run that passes $RUN_TIMEOUT seconds (default 240) is stopped and the next
# one starts, and no run starts once $DEADLINE seconds (default 540) have passed since the
# script began. The last lines are experiments/benchmark_table.py's table of what finished.
set -u
out=${1:?usage: gpu_benchmarks.sh OUT_DIR [RUN ...]}
shift
mkdir -p "$out"
begin=$SECONDS
PY=${PYTHON:-python3}
B="$PY -m experiments.benchmark"
BASE="--model base --seq_len 128 --batch_size 256 --dtype bfloat16 --steps 20"
LARGE="--model large --seq_len 512 --batch_size 32 --dtype bfloat16 --steps 10"
FAST="--attention cudnn --attention_dropout 0 --prng_impl rbg"
declare -A RUNS=(
  # BERT's recipe as published: dropout 0.1 everywhere, explicit attention; vs transformers.
  [base_bert]="$BASE --compare hf --rounds 2"
  [base_cudnn]="$BASE --attention cudnn --attention_dropout 0"
  [base_fast]="$BASE $FAST --compare layout --rounds 2"
  [base_fast_profile]="$BASE $FAST --steps 6 --profile $out/profile_base"
  [large_bert]="$LARGE"
  [large_fast]="$LARGE $FAST --compare layout --rounds 2"
  [base_fast_b512]="--model base --seq_len 128 --batch_size 512 --dtype bfloat16 --steps 10 $FAST"
  [large_fast_b64]="--model large --seq_len 512 --batch_size 64 --dtype bfloat16 --steps 10 $FAST"
)
ORDER=(base_bert base_cudnn base_fast large_bert large_fast base_fast_profile base_fast_b512
       large_fast_b64)
[ $# -gt 0 ] && ORDER=("$@")
for name in "${ORDER[@]}"; do
  args=${RUNS[$name]:?unknown run $name}
  if (( SECONDS - begin > ${DEADLINE:-540} )); then
    echo "== $name: skipped (past the ${DEADLINE:-540} s deadline)"; continue
  fi
  echo "== $name: $B $args --json $out/$name.json"
  env=()
  # --compare hf puts PyTorch in the same process: leave it half the GPU's memory.
  [[ $args == *"--compare hf"* ]] && env=(XLA_PYTHON_CLIENT_MEM_FRACTION=0.45)
  env "${env[@]}" timeout "${RUN_TIMEOUT:-240}" $B $args --json "$out/$name.json" \
    >"$out/$name.log" 2>&1
  echo "   exit $? after $((SECONDS - begin)) s"
  grep -v -E "^(W|I)[0-9]{4} " "$out/$name.log" | tail -8
done
$PY -m experiments.benchmark_table "$out"/*.json
