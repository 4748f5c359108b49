#!/usr/bin/env bash
# bench_sweep.sh - strong scaling of `tetriserve sweep` over MPI ranks.
#
# One grid of 240 scenarios (5 policies x 2 mixes x 4 rates x 6 SLO scales,
# REQUESTS requests per generated trace) run on 1, 2 and 4 ranks (4 is
# oversubscribed on a 2-core machine), REPS times each. Prints, per rank
# count, the median and best sweep time (the sweep's own clock: from the
# first scenario to the last row, MPI start-up excluded), the median
# wall time of the whole mpirun command, the speedup and the parallel
# efficiency T1 / (ranks x Tn) on the medians, and checks that every run
# wrote the same /sweep table.
#
#   scripts/bench_sweep.sh                 (defaults below)
#   REQUESTS=2000 REPS=5 RANKS="1 2" scripts/bench_sweep.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${TS_BIN:-./tetriserve}
PROFILE=${PROFILE:-profiles/flux1-dev_h100x8.csv}
REQUESTS=${REQUESTS:-10000}
REPS=${REPS:-3}
RANKS=${RANKS:-1 2 4}
PY=${PYTHON:-/usr/bin/python3}
export OPENBLAS_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
[ -x "$BIN" ] || { echo "bench_sweep: $BIN not found: run make first" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
grid=(--profile "$PROFILE" --gpus 8 --policies sp1,sp2,sp4,rssp,tetriserve --mixes 'uniform;skewed'
      --rates 6,12,18,24 --slo-scales 1,1.1,1.2,1.3,1.4,1.5 --requests "$REQUESTS")
cores=$(nproc)

median() { sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
best() { sort -g | head -n 1; }

echo "# bench_sweep: 240 scenarios (5 policies x 2 mixes x 4 rates x 6 SLO scales), $REQUESTS requests each"
echo "# $REPS repetitions per rank count, $cores cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'))"
echo "# tetriserve $("$BIN" --version | cut -d' ' -f2-); load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# (a shared machine skews these: other processes on the cores inflate the multi-rank times)"
printf '%-6s %12s %10s %12s %8s %10s\n' ranks sweep_med_s sweep_min_s mpirun_med_s speedup efficiency
t1=
for n in $RANKS; do
    : >"$tmp/sweep_s" && : >"$tmp/wall_s"
    for rep in $(seq "$REPS"); do
        over=()
        [ "$n" -gt "$cores" ] && over=(--oversubscribe)
        t0=$(date +%s.%N)
        mpirun "${over[@]}" -np "$n" "$BIN" sweep "${grid[@]}" --out "$tmp/np$n-$rep.h5" >"$tmp/out"
        t=$(date +%s.%N)
        awk -v a="$t0" -v b="$t" 'BEGIN {print b - a}' >>"$tmp/wall_s"
        sed -n 's/^# [0-9]* scenarios in \([0-9.]*\) s.*/\1/p' "$tmp/out" >>"$tmp/sweep_s"
    done
    med=$(median <"$tmp/sweep_s")
    t1=${t1:-$med}
    printf '%-6s %12.3f %10.3f %12.3f %8.2f %9.1f%%%s\n' "$n" "$med" "$(best <"$tmp/sweep_s")" \
        "$(median <"$tmp/wall_s")" "$(awk -v a="$t1" -v b="$med" 'BEGIN {print a / b}')" \
        "$(awk -v a="$t1" -v b="$med" -v n="$n" 'BEGIN {print 100 * a / (n * b)}')" \
        "$([ "$n" -gt "$cores" ] && echo "  (oversubscribed: $n ranks on $cores cores)")"
done
"$PY" - "$tmp"/np*.h5 <<'EOF'
import sys, h5py, numpy as np
ref = h5py.File(sys.argv[1], "r")["sweep"][:]
for p in sys.argv[2:]:
    t = h5py.File(p, "r")["sweep"][:]
    for n in ref.dtype.names:
        if n != "wall_s":
            assert np.array_equal(ref[n], t[n], equal_nan=ref[n].dtype.kind == "f"), (p, n)
print("# every run wrote the same /sweep table (%d rows, %d files)" % (len(ref), len(sys.argv) - 1))
EOF
