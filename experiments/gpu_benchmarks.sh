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
FAST="--attention cudnn --attention_dropout 0"
BF="--residual_dtype bfloat16 --prng_impl rbg"
CMDBUF="XLA_FLAGS=--xla_gpu_enable_command_buffer=+WHILE,+CONDITIONAL"
declare -A RUNS=(
  # BERT's recipe as published: dropout 0.1 everywhere, explicit attention; vs transformers.
  [base_bert]="$BASE --compare hf --rounds 2"
  # cuDNN's fused attention (no attention dropout), layers scanned (the default) ...
  [base_cudnn]="$BASE $FAST"
  [base_fast]="$BASE $FAST --prng_impl rbg --compare layout --rounds 2"
  [base_scan]="$BASE $FAST --steps 10 --profile $out/profile_scan"
  # ... or unrolled, the same model; vs transformers with the same dropouts.
  [base_unrolled]="$BASE $FAST --noscan_layers --steps 10 --profile $out/profile_unrolled"
  [base_unrolled_hf]="$BASE $FAST --noscan_layers --compare hf --rounds 2"
  [base_unroll12]="$BASE $FAST --scan_unroll 12 --steps 10"
  [base_unrolled_rbg]="$BASE $FAST --noscan_layers --prng_impl rbg --steps 10"
  [base_unrolled_cublaslt]="$BASE $FAST --noscan_layers --steps 10"
  # The scan's loop inside a CUDA graph (command buffers for while/conditional).
  [base_scan_cmdbuf]="$BASE $FAST --steps 10"
  # A bfloat16 residual stream and RngBitGenerator dropout bits.
  [base_unrolled_bf16res]="$BASE $FAST --noscan_layers --residual_dtype bfloat16 --steps 10"
  [base_unrolled_bf]="$BASE $FAST --noscan_layers $BF --steps 10"
  [base_scan_cmdbuf_bf]="$BASE $FAST $BF --steps 10"
  [large_bert]="$LARGE"
  [large_fast]="$LARGE $FAST --prng_impl rbg --compare layout --rounds 2"
  # Not run on 2026-11-26 (no device time left): large_scan, large_unroll24,
  # base_unrolled_rbg, base_unrolled_cublaslt, base_scan_cmdbuf_bf; large_act_ab (two
  # unrolled large compiles) passed a 200 s RUN_TIMEOUT and was stopped.
  [large_scan]="$LARGE $FAST --compare layout --rounds 2"
  [large_unrolled]="$LARGE $FAST --noscan_layers"
  [large_unroll24]="$LARGE $FAST --scan_unroll 24"
  [large_unrolled_bf]="$LARGE $FAST --noscan_layers $BF"
  [large_scan_cmdbuf_bf]="$LARGE $FAST $BF"
  # Recomputing the feed-forward's bias + GELU in the backward pass (remat=activation),
  # against keeping autodiff's residuals, alternating in one process; then its profile,
  # cuBLASLt's epilogue fusions, and a doubled batch.
  [base_act_ab]="$BASE $FAST --noscan_layers $BF --against remat=activation --rounds 2"
  [large_act_ab]="$LARGE $FAST --noscan_layers $BF --against remat=activation --rounds 2"
  [base_bf_hf]="$BASE $FAST --noscan_layers $BF --compare hf --rounds 2"
  [large_act]="$LARGE $FAST --noscan_layers $BF --remat activation"
  [base_act_profile]="$BASE $FAST --noscan_layers $BF --remat activation --steps 10 --profile $out/profile_act"
  [base_act_cublaslt]="$BASE $FAST --noscan_layers $BF --remat activation --steps 10"
  [base_act_b512]="${BASE/--batch_size 256/--batch_size 512} $FAST --noscan_layers $BF --remat activation --steps 10"
  # Scanned layout (stacked parameters), 4 layers per loop iteration.
  [base_unroll4_bf]="$BASE $FAST $BF --scan_unroll 4 --steps 10"
  [large_unroll4_bf]="$LARGE $FAST $BF --scan_unroll 4"
  # The non-finite update's guard: jnp.where on the results (GPU default) against lax.cond
  # (CPU default), alternating; the second with the conditional inside a CUDA graph.
  # Not yet run on a GPU.
  [base_guard_ab]="$BASE $FAST --noscan_layers $BF --update_guard select --against update_guard=cond --rounds 2"
  [base_guard_ab_cmdbuf]="$BASE $FAST --noscan_layers $BF --update_guard select --against update_guard=cond --rounds 2"
  # Dropout from 32 random bits per element (flax's nn.Dropout) against 16 (the default
  # since 2026-11-26), with rbg and with threefry bits. Not yet run on a GPU.
  [base_bits_ab]="$BASE $FAST --noscan_layers $BF --dropout_bits 32 --against dropout_bits=16 --rounds 2"
  [base_bits_ab_threefry]="$BASE $FAST --noscan_layers --residual_dtype bfloat16 --dropout_bits 32 --against dropout_bits=16 --rounds 2"
  # The last layer at [CLS] and the masked rows only (model.last_layer_subset, the default
  # since 2026-12-07) against every row, unrolled and scanned (where the last layer reads
  # its slice of the stacked parameters). Not yet run on a GPU.
  [base_subset_ab]="$BASE $FAST --noscan_layers $BF --against last_layer_subset=false --rounds 2"
  [base_subset_ab_scan]="$BASE $FAST $BF --against last_layer_subset=false --rounds 2"
  # On-device masking's share of the step (the issue's <= 1%), against the same step on
  # batches masked beforehand. Measured on CPUs only so far.
  [base_masking]="$BASE $FAST --noscan_layers $BF --masking_cost --rounds 2"
)
declare -A ENVS=(
  [base_unrolled_cublaslt]="XLA_FLAGS=--xla_gpu_enable_cublaslt=true"
  [base_act_cublaslt]="XLA_FLAGS=--xla_gpu_enable_cublaslt=true"
  [base_scan_cmdbuf]=$CMDBUF
  [base_scan_cmdbuf_bf]=$CMDBUF
  [large_scan_cmdbuf_bf]=$CMDBUF
  [base_guard_ab_cmdbuf]=$CMDBUF
)
ORDER=(base_bert base_cudnn base_fast large_fast base_scan base_unrolled base_unrolled_hf base_unroll12 large_bert large_scan
       large_unrolled large_unroll24 base_unrolled_rbg base_unrolled_cublaslt base_scan_cmdbuf
       base_unrolled_bf16res base_unrolled_bf large_unrolled_bf large_scan_cmdbuf_bf
       base_scan_cmdbuf_bf large_unroll4_bf base_unroll4_bf base_act_ab large_act_ab
       large_act base_act_profile base_act_cublaslt base_act_b512 base_bf_hf base_guard_ab
       base_guard_ab_cmdbuf base_bits_ab base_bits_ab_threefry base_subset_ab
       base_subset_ab_scan base_masking)
[ $# -gt 0 ] && ORDER=("$@")
for name in "${ORDER[@]}"; do
  args=${RUNS[$name]:?unknown run $name}
  if (( SECONDS - begin > ${DEADLINE:-540} )); then
    echo "== $name: skipped (past the ${DEADLINE:-540} s deadline)"; continue
  fi
  echo "== $name: ${ENVS[$name]:-} $B $args --json $out/$name.json"
  env=(${ENVS[$name]:-})
  # --compare hf puts PyTorch in the same process: leave it half the GPU's memory.
  [[ $args == *"--compare hf"* ]] && env+=(XLA_PYTHON_CLIENT_MEM_FRACTION=0.45)
  env "${env[@]}" timeout "${RUN_TIMEOUT:-240}" $B $args --json "$out/$name.json" \
    >"$out/$name.log" 2>&1
  echo "   exit $? after $((SECONDS - begin)) s"
  grep -v -E "^(W|I)[0-9]{4} " "$out/$name.log" | tail -8
done
records=("$out"/*.json)
if [ -e "${records[0]}" ]; then
  $PY -m experiments.benchmark_table "${records[@]}"
else
  echo "no run finished: no records in $out"
fi
