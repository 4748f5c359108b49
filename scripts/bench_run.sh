#!/usr/bin/env bash
# scripts/bench_run.sh - control-plane overhead of `tetriserve run` (emu
# backend, tetriserve policy, oversubscribed on this machine) at 4, 8, 16
# and 32 workers: rank 0's time sending plans (MPI_Send to the workers
# involved) and taking completions (MPI_Iprobe that found one + MPI_Recv),
# per round and as a fraction of the round length; target < 1%. Two
# fractions: of the round as it runs here (wall = round_s / speedup: the
# emulation compresses the round 20x, not the control plane, so this one is
# 20x pessimistic), and of the round a live deployment runs (round_s, the
# policy's tau: what the control plane costs a real cluster, measured here
# with 1+W ranks on 2 cores). Also the mean launch delay (measured - planned segment length,
# wall) and rank 0's cost per empty probe.
# Picked up by scripts/bench.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${TS_BIN:-./tetriserve}
speedup=${TS_BENCH_SPEEDUP:-20}
export OPENBLAS_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "## live executor control plane: emu, tetriserve policy, speedup $speedup, $(nproc) cores (oversubscribed)"
printf '%8s %8s %8s %12s %12s %10s %12s %12s %12s\n' workers rounds launches "send_us/dec" "ctl_us/round" "round_ms" "ctl/round" "ctl/tau" "delay_ms"
for w in ${TS_BENCH_WORKERS:-4 8 16 32}; do
    n=$((10 * w)); rate=$(awk -v w="$w" 'BEGIN{print 7.5 * w}')
    "$bin" trace-gen --n "$n" --rate "$rate" --mix 256:0.3,512:0.4,1024:0.3 --seed 11 --out "$tmp/t.csv" >/dev/null
    mpirun -np $((w + 1)) "$bin" run --backend emu --trace "$tmp/t.csv" --profile profiles/flux1-dev_h100x8.csv \
        --policy tetriserve --speedup "$speedup" --out "$tmp/r.h5" >"$tmp/out" 2>&1 || { cat "$tmp/out"; exit 1; }
    awk -v w="$w" -v sp="$speedup" '
        /^# run:/ { for (i = 1; i <= NF; i++) { if ($i == "launches,") l = $(i-1); if ($i == "rounds,") r = $(i-1) } }
        /^# control:/ { s = $0; sub(/.*send /, "", s); send = s + 0
                        s = $0; sub(/.*launch delay /, "", s); delay = s + 0
                        s = $0; sub(/.*control /, "", s); ctl = s + 0
                        s = $0; sub(/.*us\/round = /, "", s); frac = s + 0
                        s = $0; sub(/.*of the round \(/, "", s); rms = s + 0 }
        END { printf "%8d %8d %8d %12.2f %12.2f %10.3f %11.4f%% %11.4f%% %12.3f\n", w, r, l, send, ctl, rms, frac, frac / sp, delay }' "$tmp/out"
done
echo "(ctl/round: rank 0's send + completion time per round over the round's wall length here, at"
echo " speedup $speedup; ctl/tau: over the live round length tau = round_ms x $speedup; delay_ms:"
echo " mean measured - planned launch length in wall ms, which includes worker wake-up on 2 cores)"
