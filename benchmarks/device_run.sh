#!/usr/bin/env bash
# benchmarks/device_run.sh OUT: every device measurement in one run, most important first, within
# a time budget (DEVICE_RUN_BUDGET_S, default 450 s): the supervised ResNet-50 step at 224 in
# bfloat16 (128 images), the WSRTL step (64 labelled frames + 64 pairs) with a profile of 3 more
# steps, the CLP step (16 units: 128 frames), a per-device batch sweep of the supervised step,
# and the PyTorch peer where torch is installed. Needs jax on the accelerator; not TensorFlow.
# Writes OUT/results.jsonl (every JSON line), OUT/results.md (one table, the ratios and the
# WSRTL profile's per-op table), and per job OUT/<job>.out and OUT/<job>.log.
#   DEVICE_RUN_SIZE=tiny: the same jobs on tiny networks and images (runs on CPU, in the tests).
#   PYTHON: the interpreter (default python3).
set -euo pipefail
out="${1:?usage: benchmarks/device_run.sh OUT_DIR}"
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
budget="${DEVICE_RUN_BUDGET_S:-450}"
mkdir -p "$out"
rm -f "$out/results.jsonl" "$out/jobs.txt"

if [ "${DEVICE_RUN_SIZE:-full}" = tiny ]; then
  tiny=(--config.model.backbone=resnet18 --config.model.width=8 --config.data.image_size=32
        --config.model.dtype=float32)
  supervised=("${tiny[@]}" --config.global_batch_size=4)
  wsrtl=("${tiny[@]}" --config.global_batch_size=4 --config.wsrtl.pairs_batch_size=4
         --config.model.token_dim=16 --config.model.relation_heads=2 --config.wsrtl.flow.levels=2)
  clp=("${tiny[@]}" --config.global_batch_size=4 --config.model.code_dim=16
       --config.clp.queue_size=64)
  steps=2 sweep=2,4
else
  supervised=(--config.model.backbone=resnet50 --config.model.width=64
              --config.data.image_size=224 --config.model.dtype=bfloat16
              --config.global_batch_size=128)
  wsrtl=(--config.global_batch_size=64 --config.wsrtl.pairs_batch_size=64)
  clp=(--config.global_batch_size=16)
  steps=10 sweep=64,256
fi

start=$SECONDS
# job NAME COMMAND...: runs it with what is left of the budget; a job that fails or runs out of
# time is noted in jobs.txt and the others still run.
job() {
  local name="$1"; shift
  local left=$((budget - (SECONDS - start)))
  if [ "$left" -lt 20 ]; then
    echo "$name skipped (budget spent)" | tee -a "$out/jobs.txt"
    return
  fi
  echo "$name: $* (up to ${left} s)" >&2
  local t0=$SECONDS status=0
  timeout "$left" "$@" > "$out/$name.out" 2> "$out/$name.log" || status=$?
  echo "$name exit $status in $((SECONDS - t0)) s" | tee -a "$out/jobs.txt"
  grep '^{' "$out/$name.out" | sed "s/^{/{\"job\": \"$name\", /" >> "$out/results.jsonl" || true
}

job supervised "$PY" -m wsrtl_jax bench --config configs/synthau_supervised.py "${supervised[@]}" \
  --steps "$((2 * steps))"
job wsrtl "$PY" -m wsrtl_jax bench --config configs/bp4d_wsrtl.py "${wsrtl[@]}" --steps "$steps" \
  --profile "$out/wsrtl_profile"
job clp "$PY" -m wsrtl_jax bench --config configs/voxceleb_clp.py "${clp[@]}" --steps "$steps"
job sweep "$PY" -m wsrtl_jax bench --sweep "$sweep" --config configs/synthau_supervised.py \
  "${supervised[@]}" --steps "$steps"
if "$PY" -c "import torch" 2> /dev/null; then
  job peer "$PY" benchmarks/torch_peer.py --config configs/synthau_supervised.py \
    "${supervised[@]}" --steps "$((2 * steps))"
else
  echo "peer skipped (torch is not installed)" | tee -a "$out/jobs.txt"
fi
"$PY" benchmarks/device_report.py "$out" > "$out/results.md"
echo "wrote $out/results.md and $out/results.jsonl in $((SECONDS - start)) s" >&2
