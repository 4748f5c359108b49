#!/usr/bin/env bash
# scripts/fidelity.sh - the live executor (emu backend) against the simulator
# on the same trace and profile: |dSAR| and the per-request latency error
# (scripts/fidelity.py). Targets: |dSAR| <= 0.02, median latency error <= 2%.
#
#   scripts/fidelity.sh [POLICY ...]      (default: rssp tetriserve)
# Environment: TS_FID_GPUS (4), TS_FID_SPEEDUP (4: at 10 the control-plane latency, magnified
# by the speedup, flips a few tetriserve deadlines), TS_FID_N (80), TS_FID_RATE
# (30 per minute), TS_FID_MIX (256:0.3,512:0.4,1024:0.3: no 2048 px, which 4
# GPUs cannot serve within its SLO), TS_FID_SEED (5), TS_FID_PROFILE.
# Exit 1 if a target is missed.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${TS_BIN:-./tetriserve}
gpus=${TS_FID_GPUS:-4} speedup=${TS_FID_SPEEDUP:-4} n=${TS_FID_N:-80} rate=${TS_FID_RATE:-30}
mix=${TS_FID_MIX:-256:0.3,512:0.4,1024:0.3} seed=${TS_FID_SEED:-5}
prof=${TS_FID_PROFILE:-profiles/flux1-dev_h100x8.csv}
export OPENBLAS_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
policies=("$@")
[ ${#policies[@]} -gt 0 ] || policies=(rssp tetriserve)
"$bin" trace-gen --n "$n" --rate "$rate" --mix "$mix" --seed "$seed" --out "$tmp/trace.csv" >/dev/null
echo "# fidelity: emu run vs simulate; $n requests at $rate/min, mix $mix, $gpus GPUs, speedup $speedup, $prof"
rc=0
for p in "${policies[@]}"; do
    "$bin" simulate --trace "$tmp/trace.csv" --profile "$prof" --gpus "$gpus" --policy "$p" \
        --out "$tmp/sim_$p.h5" --quiet
    mpirun -np $((gpus + 1)) "$bin" run --backend emu --trace "$tmp/trace.csv" --profile "$prof" \
        --policy "$p" --speedup "$speedup" --out "$tmp/run_$p.h5" --quiet
    echo "## $p"
    /usr/bin/python3 scripts/fidelity.py "$tmp/run_$p.h5" "$tmp/sim_$p.h5" --max-dsar 0.02 \
        --max-lat-err 0.02 | tail -n +2 || rc=1
done
exit $rc
