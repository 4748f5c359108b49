#!/usr/bin/env bash
# test_sweep.sh - `tetriserve sweep`: the same /sweep table from 1, 2 and 3
# MPI ranks (3 oversubscribed on 2 cores) and from --slice parts joined with
# --merge; rows equal to `simulate` on the trace `trace-gen` draws for the
# same cell; --keep-scenarios groups consistent with their rows; bad input
# refused with one line and a non-zero exit, before any file is written.
set -u
bin=${TS_BIN:?}
py=/usr/bin/python3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export OPENBLAS_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1
fails=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }
prof=profiles/flux1-dev_h100x8.csv
grid=(--profile "$prof" --gpus 8 --policies sp2,tetriserve --mixes 'uniform;skewed'
      --slo-scales 1,1.5 --seeds 2 --requests 100)

# compare A B...: /sweep of every file equal to A's (all fields but wall_s),
# every file complete.
cat >"$tmp/compare.py" <<'EOF'
import sys, h5py, numpy as np
def load(p):
    with h5py.File(p, "r") as f:
        assert f.attrs["complete"] == 1, "%s: complete = %s" % (p, f.attrs["complete"])
        return f["sweep"][:], f.attrs["grid_id"]
a, ga = load(sys.argv[1])
assert len(a) == 16, "%d rows, want 16" % len(a)
assert list(a["index"]) == list(range(16)), "rows not in index order"
for p in sys.argv[2:]:
    b, gb = load(p)
    assert ga == gb, "%s: grid_id differs" % p
    assert a.dtype == b.dtype and len(a) == len(b), "%s: shape or fields differ" % p
    for n in a.dtype.names:
        if n == "wall_s":
            continue
        same = np.array_equal(a[n], b[n], equal_nan=True) if a[n].dtype.kind == "f" else np.array_equal(a[n], b[n])
        assert same, "%s: column %s differs" % (p, n)
print("tables identical:", " ".join(sys.argv[1:]))
EOF

# 1. One process, 2 and 3 ranks: the same table.
if "$bin" sweep "${grid[@]}" --out "$tmp/np1.h5" >"$tmp/np1.out" 2>"$tmp/np1.err"; then
    ok "sweep as one process"
else
    bad "sweep as one process"; cat "$tmp/np1.err"
fi
grep -q '^# tetriserve .* sweep' "$tmp/np1.out" && grep -q '^# 16 scenarios in' "$tmp/np1.out" &&
    grep -q '^# slo_scales: 1,1.5' "$tmp/np1.out" && ok "# header and summary line on stdout" ||
    { bad "stdout lacks the # header or summary line"; cat "$tmp/np1.out"; }
[ -s "$tmp/np1.err" ] && { bad "stderr not quiet (not a tty)"; cat "$tmp/np1.err"; }
for np in 2 3; do
    if mpirun -np "$np" "$bin" sweep "${grid[@]}" --out "$tmp/np$np.h5" >"$tmp/np$np.out" 2>&1; then
        ok "mpirun -np $np: $(tail -n 1 "$tmp/np$np.out")"
    else
        bad "mpirun -np $np"; cat "$tmp/np$np.out"
    fi
done
"$py" "$tmp/compare.py" "$tmp/np1.h5" "$tmp/np2.h5" "$tmp/np3.h5" && ok "1, 2 and 3 ranks: identical /sweep" ||
    bad "tables differ between rank counts"
# Rank 0 must not only deal: with 2 ranks both simulate.
grep -Eq 'rank 0 simulated ([1-9]|1[0-5])\)' "$tmp/np2.out" && ok "2 ranks share the work" ||
    { bad "2 ranks: work not shared"; tail -n 1 "$tmp/np2.out"; }

# 2. --slice parts (one under mpirun) + --merge == one run.
"$bin" sweep "${grid[@]}" --slice 0/3 --out "$tmp/part-0.h5" -q &&
    mpirun -np 2 "$bin" sweep "${grid[@]}" --slice 1/3 --out "$tmp/part-1.h5" -q &&
    "$bin" sweep "${grid[@]}" --slice 2/3 --out "$tmp/part-2.h5" -q || bad "slices"
"$py" - "$tmp/part-1.h5" <<'EOF' && ok "slice 1/3 holds indices 1,4,7,..." || bad "slice 1/3 rows"
import sys, h5py
t = h5py.File(sys.argv[1], "r")["sweep"][:]
assert list(t["index"]) == [1, 4, 7, 10, 13], list(t["index"])
EOF
if "$bin" sweep --merge "$tmp/merged.h5" "$tmp"/part-*.h5 >"$tmp/merge.out" 2>&1; then
    "$py" "$tmp/compare.py" "$tmp/np1.h5" "$tmp/merged.h5" && ok "slices merged == one run" || bad "merged table differs"
else
    bad "merge"; cat "$tmp/merge.out"
fi
"$bin" sweep --merge "$tmp/m2.h5" "$tmp/part-0.h5" "$tmp/part-2.h5" 2>"$tmp/err" && bad "merge with a slice missing succeeded"
grep -q 'slice 1/3 is missing' "$tmp/err" && [ "$(wc -l <"$tmp/err")" -eq 1 ] && ok "merge refuses a missing slice: $(cat "$tmp/err")" ||
    { bad "merge missing-slice message"; cat "$tmp/err"; }

# 3. A row against `simulate` on the trace trace-gen draws for the same cell:
#    index 15 = ((((skewed 1 x 1 rate + 0) x 2 seeds + seed 2 -> 1) x 1 + 0) x 2 scales
#    + scale 1.5 -> 1) x 2 policies + tetriserve 1.
"$bin" trace-gen --n 100 --rate 12 --mix skewed --steps 28 --seed 2 --out "$tmp/t.csv" >/dev/null &&
    "$bin" simulate --trace "$tmp/t.csv" --profile "$prof" --gpus 8 --policy tetriserve --slo-scale 1.5 \
        --out "$tmp/sim.h5" --quiet || bad "trace-gen/simulate"
"$py" - "$tmp/np1.h5" "$tmp/sim.h5" <<'EOF' && ok "row 15 == simulate on the same trace" || bad "row 15 differs from simulate"
import sys, h5py, numpy as np
r = h5py.File(sys.argv[1], "r")["sweep"][15]
assert (r["policy"], r["source"], r["seed"], r["slo_scale"]) == (b"tetriserve", b"skewed", 2, 1.5), r
s = h5py.File(sys.argv[2], "r")["summary"].attrs
for k in ("sar", "latency_mean", "latency_p50", "latency_p99", "gpu_busy_fraction", "makespan"):
    assert r[k] == s[k], (k, r[k], s[k])
assert r["n_met"] == s["n_met"] and r["requests"] == s["n_requests"] == 100
w = list(s["res_width"])
for k in range(4):
    if r["res_n"][k]:
        j = w.index(r["res_width"][k])
        assert r["res_n"][k] == s["res_n"][j] and r["res_met"][k] == s["res_met"][j]
        assert abs(r["res_sar"][k] - s["res_met"][j] / s["res_n"][j]) < 1e-15
assert np.isnan(r["res_sar"][4:]).all() and not r["res_width"][4:].any()
EOF

# 4. --keep-scenarios under 2 ranks: a results-file layout per scenario.
if mpirun -np 2 "$bin" sweep "${grid[@]}" --keep-scenarios --out "$tmp/keep.h5" -q >"$tmp/keep.out" 2>&1; then
    "$py" - "$tmp/keep.h5" "$tmp/sim.h5" <<'EOF' && ok "--keep-scenarios: 16 groups, summaries == rows, group 15 == simulate" || bad "--keep-scenarios content"
import sys, h5py, numpy as np
f = h5py.File(sys.argv[1], "r"); t = f["sweep"][:]
assert sorted(f["scenarios"].keys(), key=int) == [str(i) for i in range(16)]
for r in t:
    g = f["scenarios/%d" % r["index"]]
    assert g.attrs["policy"] == r["policy"].decode() and g.attrs["complete"] == 1
    assert g["summary"].attrs["sar"] == r["sar"] and len(g["requests"]) == r["requests"]
s = h5py.File(sys.argv[2], "r"); g = f["scenarios/15"]
for d in ("requests", "segments", "segment_gpus"):
    a, b = g[d][:], s[d][:]
    assert a.dtype == b.dtype and len(a) == len(b), d
    for n in (a.dtype.names or [None]):
        x, y = (a[n], b[n]) if n else (a, b)
        assert np.array_equal(x, y, equal_nan=x.dtype.kind == "f"), (d, n)
EOF
else
    bad "--keep-scenarios run"; cat "$tmp/keep.out"
fi

# 5. Bad input: one line on stderr (from rank 0 only), non-zero exit, no file.
expect_fail() { # what pattern args...
    local what=$1 pat=$2; shift 2
    rm -f "$tmp/bad.h5"
    "$bin" sweep "$@" --out "$tmp/bad.h5" >"$tmp/out" 2>"$tmp/err"
    local rc=$?
    if [ $rc -ne 0 ] && grep -q -- "$pat" "$tmp/err" && [ "$(wc -l <"$tmp/err")" -eq 1 ] && [ ! -e "$tmp/bad.h5" ]; then
        ok "$what: $(cat "$tmp/err")"
    else
        bad "$what (rc $rc)"; cat "$tmp/err"
    fi
}
expect_fail "unknown option" "unknown option '--bogus'" "${grid[@]}" --bogus
expect_fail "policy x gpus" "sp8 on 4 GPUs" --profile "$prof" --gpus 4,8 --policies sp1,sp8
expect_fail "bad mix" "--mixes" --profile "$prof" --gpus 8 --mixes 'uniform;256:x'
expect_fail "bad seeds" "--seeds" --profile "$prof" --gpus 8 --seeds 0
expect_fail "rates with traces" "--rates does not apply" --profile "$prof" --gpus 8 --trace traces/uniform.csv --rates 6
expect_fail "bad trace" "bad_nan.csv:" --profile "$prof" --gpus 8 --trace tests/data/traces/bad_nan.csv
expect_fail "missing profile" "no/such.csv" --profile "$tmp/no/such.csv" --gpus 8
mpirun -np 2 "$bin" sweep --profile "$prof" --gpus 8 --bogus --out "$tmp/bad.h5" >"$tmp/out" 2>"$tmp/err"
rc=$?
n=$(grep -c '^tetriserve sweep:' "$tmp/err")
[ $rc -ne 0 ] && [ "$n" -eq 1 ] && ok "under mpirun -np 2 a bad option is reported once (rc $rc)" ||
    { bad "mpirun bad option: rc $rc, $n lines from tetriserve"; cat "$tmp/err"; }
"$bin" sweep --help | grep -q -- '--keep-scenarios' && ok "sweep --help" || bad "sweep --help"
"$bin" report "$tmp/np1.h5" >"$tmp/report.out" 2>&1 && grep -q '^mean SAR' "$tmp/report.out" &&
    grep -q '^# mode: sweep' "$tmp/report.out" && ok "report prints a sweep file's table" ||
    { bad "report on a sweep file"; cat "$tmp/report.out"; }

echo "test_sweep: $fails failures"
[ $fails -eq 0 ]
