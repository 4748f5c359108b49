#!/usr/bin/env bash
# test_cli.sh - the command line refuses bad input before any work: one
# line on stderr naming the file:line or the option, a non-zero exit, and no
# results file. And the good paths work: simulate, report, compare.
set -u
bin=${TS_BIN:?}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
trace=traces/uniform.csv
prof=profiles/flux1-dev_h100x8.csv

# expect_fail "what" pattern-in-stderr command...
expect_fail() {
    local what=$1 pat=$2; shift 2
    rm -f "$tmp/out.h5"
    "$@" >"$tmp/stdout" 2>"$tmp/stderr"
    local rc=$?
    local lines; lines=$(wc -l <"$tmp/stderr")
    if [ $rc -eq 0 ]; then echo "FAIL $what: exit 0"; fails=$((fails + 1)); return; fi
    if ! grep -q -- "$pat" "$tmp/stderr"; then
        echo "FAIL $what: stderr lacks '$pat':"; sed 's/^/    /' "$tmp/stderr"; fails=$((fails + 1)); return
    fi
    if [ "$lines" -ne 1 ]; then echo "FAIL $what: $lines lines on stderr, want 1:"; sed 's/^/    /' "$tmp/stderr"; fails=$((fails + 1)); return; fi
    if [ -e "$tmp/out.h5" ]; then echo "FAIL $what: a results file was written"; fails=$((fails + 1)); return; fi
    echo "ok   $what: $(cat "$tmp/stderr")"
}

sim() { "$bin" simulate --gpus 8 --policy sp1 --out "$tmp/out.h5" "$@"; }

# Malformed traces: file:line in the message.
for f in tests/data/traces/bad_*.csv; do
    expect_fail "trace $(basename "$f")" "$f" sim --trace "$f" --profile "$prof"
done
for f in tests/data/profiles/bad_*.csv; do
    [ -e "$f" ] || continue
    expect_fail "profile $(basename "$f")" "$f" sim --trace "$trace" --profile "$f"
done
expect_fail "missing trace file" "nonexistent.csv" sim --trace "$tmp/nonexistent.csv" --profile "$prof"
expect_fail "unknown policy" "unknown policy 'fifo'" "$bin" simulate --trace "$trace" --profile "$prof" --gpus 8 --policy fifo --out "$tmp/out.h5"
expect_fail "gpus not a multiple" "not a multiple of sp4's degree 4" "$bin" simulate --trace "$trace" --profile "$prof" --gpus 6 --policy sp4 --out "$tmp/out.h5"
expect_fail "degree missing in profile" "no degree 8" "$bin" simulate --trace "$trace" --profile profiles/sd3-medium_a40x4.csv --gpus 8 --policy sp8 --out "$tmp/out.h5"
expect_fail "gpus zero" "--gpus" "$bin" simulate --trace "$trace" --profile "$prof" --gpus 0 --policy sp1 --out "$tmp/out.h5"
expect_fail "gpus not a number" "--gpus" "$bin" simulate --trace "$trace" --profile "$prof" --gpus eight --policy sp1 --out "$tmp/out.h5"
expect_fail "slo-scale negative" "--slo-scale" "$bin" simulate --trace "$trace" --profile "$prof" --gpus 8 --policy sp1 --slo-scale -1 --out "$tmp/out.h5"
expect_fail "slo-scale nan" "--slo-scale" "$bin" simulate --trace "$trace" --profile "$prof" --gpus 8 --policy sp1 --slo-scale nan --out "$tmp/out.h5"
expect_fail "missing --trace" "--trace is required" "$bin" simulate --profile "$prof" --gpus 8 --policy sp1 --out "$tmp/out.h5"
expect_fail "unwritable output" "no/such/dir/out.h5" "$bin" simulate --trace "$trace" --profile "$prof" --gpus 8 --policy sp1 --out "$tmp/no/such/dir/out.h5"
expect_fail "bad rssp degrees" "--rssp-degrees" "$bin" simulate --trace "$trace" --profile "$prof" --gpus 8 --policy rssp --rssp-degrees 256=1 --out "$tmp/out.h5"
expect_fail "bad choice value" "ties is widest or narrowest" "$bin" simulate --trace "$trace" --profile "$prof" --gpus 8 --policy tetriserve --choice ties=foo --out "$tmp/out.h5"
expect_fail "unknown choice" "unknown 'bar'" "$bin" simulate --trace "$trace" --profile "$prof" --gpus 8 --policy tetriplus --choice rounds=fixed,bar=1 --out "$tmp/out.h5"
expect_fail "choice without value" "'ties' is not NAME=VALUE" "$bin" simulate --trace "$trace" --profile "$prof" --gpus 8 --policy tetriserve --choice ties --out "$tmp/out.h5"
expect_fail "missing exec profile" "nonexistent_exec.csv" sim --trace "$trace" --profile "$prof" --exec-profile "$tmp/nonexistent_exec.csv"
expect_fail "exec profile lacks a degree" "sd3-medium_a40x4.csv: no step time for 2048x2048 at degree 8 batch 1" "$bin" simulate --trace "$trace" --profile "$prof" --exec-profile profiles/sd3-medium_a40x4.csv --gpus 8 --policy sp8 --out "$tmp/out.h5"
expect_fail "unknown verb" "unknown verb" "$bin" frobnicate
expect_fail "compare unknown policy" "unknown policy" "$bin" compare --trace "$trace" --profile "$prof" --gpus 8 --policies sp1,nope
expect_fail "report missing file" "nonexistent.h5" "$bin" report "$tmp/nonexistent.h5"

# Good paths.
if "$bin" simulate --trace "$trace" --profile "$prof" --gpus 8 --policy rssp --out "$tmp/good.h5" >"$tmp/stdout" 2>"$tmp/stderr" &&
   grep -q '^# ' "$tmp/stdout" && grep -q 'SAR' "$tmp/stdout" && [ -s "$tmp/good.h5" ]; then
    echo "ok   simulate writes a results file and a table"
else
    echo "FAIL simulate good path"; cat "$tmp/stderr"; fails=$((fails + 1))
fi
# --exec-profile: launches take its times (here 10% longer), the policy
# plans with --profile; the file names both.
awk -F, 'BEGIN { OFS = "," } /^[0-9]/ { $5 = $5 * 1.1; if (NF > 5) $6 = $6 * 1.1 } { print }' "$prof" >"$tmp/slow.csv"
if "$bin" simulate --trace "$trace" --profile "$prof" --exec-profile "$tmp/slow.csv" --gpus 8 --policy sp2 \
       --out "$tmp/slow.h5" >"$tmp/stdout" 2>"$tmp/stderr" &&
   "$bin" simulate --trace "$trace" --profile "$prof" --gpus 8 --policy sp2 --out "$tmp/fast.h5" >"$tmp/stdout2" 2>>"$tmp/stderr" &&
   grep -q "^# exec profile: $tmp/slow.csv" "$tmp/stdout" &&
   h5dump -a exec_profile "$tmp/slow.h5" | grep -q "slow.csv" && h5dump -a exec_profile "$tmp/fast.h5" | grep -q "$prof" &&
   [ "$(h5dump -a /summary/makespan "$tmp/slow.h5" | sed -n 's/.*(0): //p')" != "$(h5dump -a /summary/makespan "$tmp/fast.h5" | sed -n 's/.*(0): //p')" ]; then
    echo "ok   simulate --exec-profile: launches take its times, recorded as exec_profile"
else
    echo "FAIL simulate --exec-profile"; cat "$tmp/stderr"; fails=$((fails + 1))
fi
if "$bin" report "$tmp/good.h5" >"$tmp/stdout" 2>&1 && grep -qi 'sar' "$tmp/stdout"; then
    echo "ok   report prints the summary"
else
    echo "FAIL report"; cat "$tmp/stdout"; fails=$((fails + 1))
fi
for v in simulate compare trace-gen report; do
    if "$bin" $v --help >"$tmp/stdout" 2>&1 && grep -q usage "$tmp/stdout"; then echo "ok   $v --help"; else echo "FAIL $v --help"; fails=$((fails + 1)); fi
done

# Every policy's results file validates against SPEC.md (scripts/check_results.py).
if /usr/bin/python3 -c 'import h5py, numpy' 2>/dev/null; then
    for p in $("$bin" simulate --help | sed -n 's/.*--policy P *one of: //p' | tr -d ','); do
        for tr in traces/uniform.csv traces/skewed.csv; do
            "$bin" simulate --trace $tr --profile "$prof" --gpus 8 --policy $p --slo-scale 1.2 --out "$tmp/$p.h5" --quiet
            if /usr/bin/python3 scripts/check_results.py "$tmp/$p.h5" >"$tmp/check" 2>&1; then
                echo "ok   $p on $tr validates: $(cat "$tmp/check")"
            else
                echo "FAIL $p on $tr:"; sed 's/^/    /' "$tmp/check"; fails=$((fails + 1))
            fi
        done
    done
else
    echo "skip: /usr/bin/python3 lacks h5py/numpy (apt-get install python3-h5py)"
fi

echo "test_cli: $fails failures"
[ $fails -eq 0 ]
