#!/usr/bin/env bash
# test_slurm.sh - the Slurm scripts on a real single-node Slurm: start one
# (scripts/slurm/local-slurm.sh), sbatch scripts/slurm/sweep.sbatch on a tiny
# grid with 3 ranks under srun --mpi=pmix, wait by polling squeue, check the
# job state and the /sweep table (equal to a one-process run of the same
# grid), do the same for sweep-array.sbatch (2 tasks + the merge job it
# submits), and run.sbatch (the live executor, emu backend). The
# daemons this test started are always stopped (trap), also on failure.
# Skips (exit 0) without slurmctld/slurmd/munged or when not root.
set -u
bin=${TS_BIN:?}
py=/usr/bin/python3
for b in slurmctld slurmd munged; do
    if ! command -v "$b" >/dev/null && [ ! -x "/usr/sbin/$b" ]; then
        echo "skip: $b is not installed (Debian packages slurm-wlm munge)"; exit 0
    fi
done
for b in sbatch squeue sacct sinfo; do
    command -v "$b" >/dev/null || [ "$b" = sacct ] || { echo "skip: $b is not installed"; exit 0; }
done
[ "$(id -u)" -eq 0 ] || { echo "skip: needs root to run the Slurm daemons"; exit 0; }

tmp=$(mktemp -d)
export TS_SLURM_DIR=$tmp/slurm SLURM_CONF=$tmp/slurm/slurm.conf
started=0
cleanup() {
    [ $started -eq 1 ] && scripts/slurm/local-slurm.sh stop >/dev/null
    [ -n "${KEEP_TMP:-}" ] && echo "kept $tmp" || rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
fails=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }
t0=$SECONDS

if scripts/slurm/local-slurm.sh start; then
    started=1
else
    started=1 # partial start: stop whatever came up
    echo "FAIL local Slurm did not start"; tail -n 20 "$TS_SLURM_DIR"/*.log 2>/dev/null
    exit 1
fi

# wait_job ID SECONDS: poll squeue until the job left the queue; prints its
# final state (from scontrol while Slurm remembers it).
wait_job() {
    local id=$1 n=$(($2 * 5)) state q
    while [ $n -gt 0 ]; do
        q=$(squeue -h -j "$id" -o %r 2>/dev/null)
        [ -z "$q" ] && break
        # A job whose dependency failed would pend forever.
        case $q in *DependencyNeverSatisfied*) echo DEPENDENCY_NEVER_SATISFIED; return ;; esac
        sleep 0.2
        n=$((n - 1))
    done
    state=$(scontrol show job "$id" 2>/dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p' | sort -u | tr '\n' ' ')
    state=${state% }
    echo "${state:-UNKNOWN}"
}

# The sbatch scripts run in the submit directory and write results/<id>/:
# submit from a scratch copy of what they need.
work=$tmp/work
mkdir -p "$work/profiles" "$work/scripts"
cp profiles/flux1-dev_h100x8.csv "$work/profiles/"
cp -r scripts/slurm "$work/scripts/"
ln -s "$bin" "$work/tetriserve"
grid_env=(GPUS=8 POLICIES=sp2,tetriserve "MIXES=uniform;skewed" RATES=12 SLO_SCALES=1,1.5 SEEDS=2 REQUESTS=100)
"$bin" sweep --profile profiles/flux1-dev_h100x8.csv --gpus 8 --policies sp2,tetriserve --mixes 'uniform;skewed' \
    --rates 12 --slo-scales 1,1.5 --seeds 2 --requests 100 --out "$tmp/ref.h5" -q || bad "reference sweep"

cat >"$tmp/compare.py" <<'EOF'
import sys, h5py, numpy as np
ref = h5py.File(sys.argv[1], "r")["sweep"][:]
f = h5py.File(sys.argv[2], "r")
assert f.attrs["complete"] == 1, "complete = %s" % f.attrs["complete"]
t = f["sweep"][:]
assert len(t) == len(ref) == 16, (len(t), len(ref))
for n in ref.dtype.names:
    if n != "wall_s":
        assert np.array_equal(ref[n], t[n], equal_nan=ref[n].dtype.kind == "f"), n
print("ranks=%d slice_count=%d" % (f.attrs["ranks"], f.attrs["slice_count"]))
EOF

# 1. sweep.sbatch: one MPI job of 3 ranks (srun --mpi=pmix).
jid=$(cd "$work" && env "${grid_env[@]}" sbatch --parsable -n 3 scripts/slurm/sweep.sbatch 2>"$tmp/sbatch.err")
if [ -z "$jid" ]; then
    bad "sbatch sweep.sbatch: $(cat "$tmp/sbatch.err")"
else
    state=$(wait_job "$jid" 40)
    out=$work/slurm-ts-sweep-$jid.out
    if [ "$state" = COMPLETED ] && [ -s "$work/results/$jid/sweep.h5" ]; then
        ok "sweep.sbatch job $jid: $state ($(grep -c '' "$out") lines of output)"
        "$py" "$tmp/compare.py" "$tmp/ref.h5" "$work/results/$jid/sweep.h5" >"$tmp/cmp" 2>&1 &&
            grep -q 'ranks=3' "$tmp/cmp" && ok "results/$jid/sweep.h5 == one-process run ($(cat "$tmp/cmp"))" ||
            { bad "sweep.sbatch table"; cat "$tmp/cmp"; }
        grep -q '^# 16 scenarios in .* on 3 ranks' "$work/results/$jid/sweep.txt" &&
            ok "sweep.txt: $(tail -n 1 "$work/results/$jid/sweep.txt")" || bad "sweep.txt lacks the summary line"
    else
        bad "sweep.sbatch job $jid: state $state"; cat "$out" 2>/dev/null | tail -n 20
    fi
fi

# 2. sweep-array.sbatch: 2 slices + the merge job task 0 submits.
jid=$(cd "$work" && env "${grid_env[@]}" sbatch --parsable --array=0-1 scripts/slurm/sweep-array.sbatch 2>"$tmp/sbatch.err")
jid=${jid%%;*}
if [ -z "$jid" ]; then
    bad "sbatch sweep-array.sbatch: $(cat "$tmp/sbatch.err")"
else
    wait_job "$jid" 40 >/dev/null
    # The merge job exists once task 0 ran; wait for it too.
    mjob=$(sed -n 's/^ts-sweep-array: merge job \([0-9]*\).*/\1/p' "$work"/slurm-ts-sweep-array-"$jid"_0.out 2>/dev/null)
    mstate=$([ -n "$mjob" ] && wait_job "$mjob" 30 || echo "NOT SUBMITTED")
    if [ "$mstate" = COMPLETED ] && [ -s "$work/results/$jid/sweep.h5" ]; then
        "$py" "$tmp/compare.py" "$tmp/ref.h5" "$work/results/$jid/sweep.h5" >"$tmp/cmp" 2>&1 &&
            ok "array job $jid (2 slices) + merge job $mjob: merged table == one-process run" ||
            { bad "merged table"; cat "$tmp/cmp"; }
    else
        bad "array job $jid / merge job ${mjob:-none}: merge $mstate"
        tail -n 5 "$work"/slurm-ts-sweep-*.out 2>/dev/null
    fi
fi

# 3. run.sbatch: the live executor (emu backend, 2 GPUs) completes and leaves
# its results file.
"$bin" trace-gen --n 6 --rate 120 --mix 256:0.5,512:0.5 --seed 1 --out "$work/t.csv" >/dev/null
jid=$(cd "$work" && env BACKEND=emu GPUS=2 GPUS_PER_NODE=2 TRACE=t.csv EXTRA_ARGS="--speedup 20" \
    sbatch --parsable -n 3 scripts/slurm/run.sbatch 2>"$tmp/sbatch.err")
if [ -n "$jid" ]; then
    state=$(wait_job "$jid" 40)
    if [ "$state" = COMPLETED ] && "$py" scripts/check_results.py "$work/results/$jid/run.h5" >"$tmp/cmp" 2>&1; then
        ok "run.sbatch job $jid: $state, $(cat "$tmp/cmp")"
    else
        bad "run.sbatch job $jid: state $state"; cat "$work/slurm-ts-run-$jid.out" "$tmp/cmp" 2>/dev/null | tail -n 20
    fi
else
    bad "sbatch run.sbatch: $(cat "$tmp/sbatch.err")"
fi

echo "test_slurm: $fails failures in $((SECONDS - t0)) s"
[ $fails -eq 0 ]
