#!/usr/bin/env bash
# test_plot.sh - scripts/plot.py turns a results file, a set of results files
# and a sweep table into non-trivial PNGs (> 10 kB) whose paths it prints,
# and refuses a file that is not a tetriserve file with one line and exit 1.
# Skipped when /usr/bin/python3 lacks h5py or matplotlib.
set -u
bin=${TS_BIN:?}
py=/usr/bin/python3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
trace=traces/uniform.csv
prof=profiles/flux1-dev_h100x8.csv

if ! $py -c 'import h5py, numpy, matplotlib' 2>/dev/null; then
    echo "SKIP: $py lacks h5py/numpy/matplotlib"
    exit 0
fi

# expect_pngs "what" dir stdout-file name...: every named PNG printed, present, > 10 kB.
expect_pngs() {
    local what=$1 dir=$2 out=$3; shift 3
    local bad=0 n
    for name in "$@"; do
        f="$dir/$name"
        if ! grep -qxF "$f" "$out"; then echo "FAIL $what: $f not printed"; bad=1; continue; fi
        if [ ! -f "$f" ]; then echo "FAIL $what: $f missing"; bad=1; continue; fi
        n=$(stat -c %s "$f")
        if [ "$n" -le 10240 ]; then echo "FAIL $what: $f is only $n bytes"; bad=1; fi
        if [ "$(head -c 8 "$f" | od -An -tx1 | tr -d ' \n')" != 89504e470d0a1a0a ]; then
            echo "FAIL $what: $f is not a PNG"; bad=1
        fi
    done
    if [ $bad -eq 0 ]; then echo "ok   $what: $# PNGs"; else fails=$((fails + 1)); fi
}

for pol in sp2 rssp; do
    "$bin" simulate --trace "$trace" --profile "$prof" --gpus 8 --policy $pol --quiet --out "$tmp/$pol.h5" ||
        { echo "FAIL simulate $pol"; fails=$((fails + 1)); }
done
# The round-based policy when this build has it (rounds, batches on the timeline).
"$bin" simulate --trace "$trace" --profile "$prof" --gpus 8 --policy tetriserve --quiet --out "$tmp/tetriserve.h5" 2>/dev/null ||
    rm -f "$tmp/tetriserve.h5"

# One results file.
if $py scripts/plot.py "$tmp/sp2.h5" -o "$tmp/one" >"$tmp/out" 2>"$tmp/err"; then
    expect_pngs "one results file" "$tmp/one" "$tmp/out" sp2_timeline.png sp2_latency_cdf.png sp2_sar_by_res.png
else
    echo "FAIL plot one results file:"; cat "$tmp/err"; fails=$((fails + 1))
fi

# Several results files: per-file figures plus the comparisons; a window and
# colouring by request on the way.
set -- "$tmp/sp2.h5" "$tmp/rssp.h5"
[ -f "$tmp/tetriserve.h5" ] && set -- "$@" "$tmp/tetriserve.h5"
if $py scripts/plot.py "$@" --window 200:320 --color-by request -o "$tmp/many" >"$tmp/out" 2>"$tmp/err"; then
    expect_pngs "several results files" "$tmp/many" "$tmp/out" rssp_timeline.png \
        compare_latency_cdf.png compare_sar_by_res.png
else
    echo "FAIL plot several results files:"; cat "$tmp/err"; fails=$((fails + 1))
fi

# A sweep table (mode = sweep, compound /sweep): made here from the two runs'
# summaries so the test does not depend on `tetriserve sweep`.
$py - "$tmp/sweep.h5" <<'EOF'
import sys, itertools
import h5py, numpy as np
rng = np.random.default_rng(1)
rows = []
for pol, mix, rate, scale, seed in itertools.product(
        ["sp2", "rssp", "tetriserve"], ["uniform", "skewed"], [6.0, 12.0, 24.0],
        [1.0, 1.1, 1.2, 1.3, 1.4, 1.5], [1, 2]):
    sar = np.clip(0.5 + 0.3 * (scale - 1) - 0.01 * rate + 0.05 * rng.standard_normal(), 0, 1)
    rows.append((pol, mix, rate, scale, 8, seed, sar, 1.0, 3.0, 9.0, sar, sar, sar * 0.9, sar * 0.7))
dt = np.dtype([("policy", h5py.string_dtype()), ("mix", h5py.string_dtype()), ("rate_per_min", "f8"),
               ("slo_scale", "f8"), ("n_gpus", "i4"), ("seed", "u8"), ("sar", "f8"),
               ("latency_p50", "f8"), ("latency_p90", "f8"), ("latency_p99", "f8"),
               ("sar_256x256", "f8"), ("sar_512x512", "f8"), ("sar_1024x1024", "f8"),
               ("sar_2048x2048", "f8")])
with h5py.File(sys.argv[1], "w") as f:
    f.attrs["schema_version"] = 1
    f.attrs["mode"] = "sweep"
    f.create_dataset("sweep", data=np.array(rows, dtype=dt))
EOF
if $py scripts/plot.py "$tmp/sweep.h5" -o "$tmp/sweep" >"$tmp/out" 2>"$tmp/err"; then
    expect_pngs "sweep file" "$tmp/sweep" "$tmp/out" sweep_sar_vs_slo.png sweep_sar_vs_rate.png sweep_sar_by_res.png
else
    echo "FAIL plot sweep file:"; cat "$tmp/err"; fails=$((fails + 1))
fi

# Not a tetriserve file: one line on stderr, exit 1, nothing written.
$py -c 'import h5py,sys; h5py.File(sys.argv[1],"w").attrs["x"]=1' "$tmp/other.h5"
for bad in "$trace" "$tmp/other.h5" "$tmp/nonexistent.h5"; do
    $py scripts/plot.py "$bad" -o "$tmp/bad" >"$tmp/out" 2>"$tmp/err"
    rc=$?
    if [ $rc -eq 1 ] && [ "$(wc -l <"$tmp/err")" -eq 1 ] && grep -q "$(basename "$bad")" "$tmp/err" &&
       [ ! -s "$tmp/out" ] && [ -z "$(ls "$tmp/bad" 2>/dev/null)" ]; then
        echo "ok   refuses $(basename "$bad"): $(cat "$tmp/err")"
    else
        echo "FAIL $(basename "$bad"): exit $rc, stderr:"; cat "$tmp/err"; fails=$((fails + 1))
    fi
done

[ $fails -eq 0 ] && echo "all plot checks passed"
[ $fails -eq 0 ]
