#!/usr/bin/env bash
# scripts/bench_ctrl.sh - point-to-point plan messages (what `tetriserve run`
# uses) against an MPI_Ibcast of the whole plan, at 4, 8, 16 and 32 workers
# (oversubscribed on this machine), every worker involved and a quarter of
# them involved (tests/bench_ctrl.c says what is measured). Picked up by
# scripts/bench.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
b=${TS_BUILD:-build}/tests/bench_ctrl
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
echo "## plan delivery: p2p MPI_Send to the involved workers vs MPI_Ibcast of the plan, $(nproc) cores (oversubscribed), 200 rounds, 100 us polling"
first=1
for pct in 100 25; do
    for w in ${TS_BENCH_WORKERS:-4 8 16 32}; do
        mpirun -np $((w + 1)) "$b" 200 100 "$pct" | if [ $first = 1 ]; then cat; else tail -n +2; fi
        first=0
    done
done
echo "(rank0_us/round: rank 0's time inside the delivery calls; deliver: from the first call to the last"
echo " worker's acknowledgement, which includes the workers' polling interval)"
