#!/usr/bin/env bash
# scripts/bench.sh - the figures README.md records (`make bench`).
#  1. simulated requests per second per policy: a 100,000-request trace
#     (uniform mix, 96 requests/min: the paper's 12/min per 8 GPUs) on 64 GPUs
#  2. wall time of the main job (scripts/demo.sh's compare: 2 workloads x 6
#     SLO scales x every policy)
#  3. decision time of the round policies (tests/bench_decide.c)
#  4. the machine's noise floor for the cpu backend (tests/bench_noise.c)
# Extra sections are added by the benches of later parts when present.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=./tetriserve
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "# tetriserve bench: $($bin --version)"
echo "# machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(free -g | awk '/Mem:/{print $2}') GiB"
echo "# date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"

$bin trace-gen --n 100000 --rate 96 --mix uniform --seed 7 --out "$tmp/big.csv" >/dev/null
policies=$($bin simulate --help | sed -n 's/.*--policy P *one of: //p' | tr -d ',')
echo
echo "## simulator throughput: 100,000 requests, 64 GPUs, FLUX.1-dev/H100 profile (best of 3)"
printf '%-12s %12s %12s %14s\n' policy "sim_s" "write_s" "requests/s"
for p in $policies; do
    best=""; bestw=""
    for rep in 1 2 3; do
        s=$($bin simulate --trace "$tmp/big.csv" --profile profiles/flux1-dev_h100x8.csv --gpus 64 \
             --policy "$p" --no-out | sed -n 's/^# simulated in \([0-9.]*\) s.*/\1/p')
        t0=$(date +%s.%N)
        $bin simulate --trace "$tmp/big.csv" --profile profiles/flux1-dev_h100x8.csv --gpus 64 \
             --policy "$p" --out "$tmp/out.h5" --quiet
        w=$(awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN{print a-b}')
        best=$(awk -v a="$s" -v b="$best" 'BEGIN{print (b == "" || a < b) ? a : b}')
        bestw=$(awk -v a="$w" -v b="$bestw" 'BEGIN{print (b == "" || a < b) ? a : b}')
    done
    printf '%-12s %12.4f %12.4f %14.0f\n' "$p" "$best" "$bestw" "$(awk -v b="$best" 'BEGIN{print 100000 / b}')"
done
echo "(sim_s: simulation alone, inside the process; write_s: the whole command with the HDF5 file)"

echo
echo "## main job: scripts/demo.sh's compare (2 workloads x 6 SLO scales x all policies), best of 3"
best=""
for rep in 1 2 3; do
    t0=$(date +%s.%N)
    $bin compare --trace traces/uniform.csv --trace traces/skewed.csv \
        --profile profiles/flux1-dev_h100x8.csv --gpus 8 >/dev/null
    w=$(awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN{print a-b}')
    best=$(awk -v a="$w" -v b="$best" 'BEGIN{print (b == "" || a < b) ? a : b}')
done
printf 'main job wall time: %.3f s\n' "$best"

echo
for p in tetriserve tetriplus; do "${TS_BUILD:-build}/tests/bench_decide" $p; echo; done

echo "## machine noise floor (cpu backend): the same work, one process, 60 s"
OPENBLAS_NUM_THREADS=1 "${TS_BUILD:-build}/tests/bench_noise" 60

for extra in scripts/bench_*.sh; do
    [ -x "$extra" ] || continue
    echo
    "$extra"
done
