#!/usr/bin/env bash
# test_export.sh - `tetriserve export --chrome`: the JSON parses, holds one
# complete event per segment per GPU on the right node/GPU track with ts/dur
# equal to the segment's start/end in microseconds, names every GPU track,
# and bad inputs give one line on stderr and a non-zero exit.
set -u
bin=${TS_BIN:?}
py=/usr/bin/python3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
trace=traces/uniform.csv
prof=profiles/flux1-dev_h100x8.csv

if ! $py -c 'import h5py, numpy' 2>/dev/null; then
    echo "SKIP: $py lacks h5py/numpy"
    exit 0
fi

# expect_fail "what" pattern-in-stderr command...
expect_fail() {
    local what=$1 pat=$2; shift 2
    "$@" >"$tmp/stdout" 2>"$tmp/stderr"
    local rc=$? lines; lines=$(wc -l <"$tmp/stderr")
    if [ $rc -eq 0 ]; then echo "FAIL $what: exit 0"; fails=$((fails + 1)); return; fi
    if ! grep -q -- "$pat" "$tmp/stderr"; then
        echo "FAIL $what: stderr lacks '$pat':"; sed 's/^/    /' "$tmp/stderr"; fails=$((fails + 1)); return
    fi
    if [ "$lines" -ne 1 ]; then echo "FAIL $what: $lines lines on stderr, want 1"; sed 's/^/    /' "$tmp/stderr"; fails=$((fails + 1)); return; fi
    echo "ok   $what: $(cat "$tmp/stderr")"
}

# check_json results.h5 trace.json [T0 T1]: the structural checks, in Python.
check_json() {
    $py - "$@" <<'EOF'
import json, sys, collections
import h5py, numpy as np
h5, js = sys.argv[1], sys.argv[2]
t0 = float(sys.argv[3]) if len(sys.argv) > 3 else -np.inf
t1 = float(sys.argv[4]) if len(sys.argv) > 4 else np.inf
with open(js, 'rb') as fp:
    raw = fp.read()
d = json.loads(raw.decode('utf-8'))  # strict: valid UTF-8 and JSON
with h5py.File(h5, 'r') as f:
    seg = f['segments'][:]
    gl = f['segment_gpus'][:]
    req = f['requests'][:]
    n_gpus = int(f.attrs['n_gpus'])
    gpn = int(f.attrs['gpus_per_node'])
    policy = f.attrs['policy']
bad = []
assert isinstance(d.get('traceEvents'), list), 'no traceEvents list'
assert d.get('displayTimeUnit') == 'ms', 'displayTimeUnit'
assert d['metadata'].get('policy') == policy, 'metadata.policy %r' % d['metadata'].get('policy')
ev = d['traceEvents']
# GPU tracks named "GPU <id>" in process gpu // gpus_per_node named "node N".
tnames = {(e['pid'], e['tid']): e['args']['name'] for e in ev
          if e['ph'] == 'M' and e['name'] == 'thread_name'}
pnames = {e['pid']: e['args']['name'] for e in ev if e['ph'] == 'M' and e['name'] == 'process_name'}
for g in range(n_gpus):
    if tnames.get((g // gpn, g)) != 'GPU %d' % g:
        bad.append('GPU %d track missing or misnamed: %r' % (g, tnames.get((g // gpn, g))))
for n in range((n_gpus + gpn - 1) // gpn):
    if pnames.get(n) != 'node %d' % n:
        bad.append('node %d process misnamed: %r' % (n, pnames.get(n)))
# One X event per (segment, GPU) that overlaps the window.
want = collections.Counter()
for i, s in enumerate(seg):
    if s['end'] >= t0 and s['start'] <= t1:
        for g in gl[s['gpu_offset']:s['gpu_offset'] + s['degree']]:
            want[(i, int(g))] += 1
xs = [e for e in ev if e['ph'] == 'X' and e.get('cat') == 'segment']
got = collections.Counter((e['args']['segment'], e['tid']) for e in xs)
if got != want:
    bad.append('X events: %d, want %d (one per segment per GPU); first differences %s'
               % (sum(got.values()), sum(want.values()), list((got - want).items())[:3] + list((want - got).items())[:3]))
byid = {int(r['id']): r for r in req}
for e in xs:
    s = seg[e['args']['segment']]
    r = byid[int(s['request_id'])]
    if e['pid'] != e['tid'] // gpn:
        bad.append('event on GPU %d in process %d' % (e['tid'], e['pid']))
    if abs(e['ts'] - s['start'] * 1e6) > 0.002 or abs(e['ts'] + e['dur'] - s['end'] * 1e6) > 0.002:
        bad.append('segment %d: ts %.3f dur %.3f vs start %.9f end %.9f s'
                   % (e['args']['segment'], e['ts'], e['dur'], s['start'], s['end']))
    a = e['args']
    res = '%dx%d' % (r['width'], r['height'])
    if (a['request_id'] != s['request_id'] or a['resolution'] != res or a['degree'] != s['degree']
            or a['met'] != bool(r['met']) or abs(a['deadline_s'] - r['deadline']) > 1e-6
            or a['steps'] != '%d..%d of %d' % (s['step_begin'], s['step_begin'] + s['n_steps'] - 1, r['steps'])
            or a['round'] != s['round'] or a['batch_id'] != s['batch_id']
            or not e['name'].startswith('req %d (%s, k=%d' % (s['request_id'], res, s['degree']))):
        bad.append('segment %d: args/name disagree with the file: %s %s' % (a['segment'], e['name'], a))
    if len(bad) > 10:
        break
# A GPU runs one thing at a time: slices on one track nest or follow each
# other (batched segments share identical bounds), never overlap partially.
per = collections.defaultdict(list)
for e in xs:
    per[e['tid']].append((e['ts'], e['ts'] + e['dur']))
for g, iv in per.items():
    iv.sort()
    for (a0, a1), (b0, b1) in zip(iv, iv[1:]):
        if b0 < a1 - 1e-6 and (a0, a1) != (b0, b1):
            bad.append('GPU %d: slices [%f,%f) and [%f,%f) overlap' % (g, a0, a1, b0, b1))
            break
# Arrivals and misses on the "requests" track; a counter of busy GPUs in [0, n_gpus].
inst = [e for e in ev if e['ph'] == 'i']
n_arr = sum(1 for e in inst if e['cat'] == 'arrival')
want_arr = int(((req['arrival'] >= t0) & (req['arrival'] <= t1)).sum())
if n_arr != want_arr:
    bad.append('%d arrival instants, want %d' % (n_arr, want_arr))
n_miss = sum(1 for e in inst if e['cat'] == 'miss')
want_miss = int(((req['met'] == 0) & (req['deadline'] >= t0) & (req['deadline'] <= t1)).sum())
if n_miss != want_miss:
    bad.append('%d miss instants, want %d' % (n_miss, want_miss))
busy = [e['args']['value'] for e in ev if e['ph'] == 'C' and e['name'] == 'GPUs busy']
if not busy or min(busy) < 0 or max(busy) > n_gpus:
    bad.append('GPUs busy counter: %d events, range %s' % (len(busy), (min(busy), max(busy)) if busy else None))
if np.isinf(t0) and busy and busy[-1] != 0:
    bad.append('GPUs busy does not return to 0 at the end (%d)' % busy[-1])
if bad:
    print('\n'.join(bad[:10]))
    sys.exit(1)
print('%d X events, %d GPUs, %d arrivals, %d misses, %d counter points' % (len(xs), n_gpus, n_arr, n_miss, len(busy)))
EOF
}

# Good paths: a fixed-degree policy; the round-based one (rounds, moves); and
# a crowded small-image trace on which it batches (segments share GPU rows).
"$bin" trace-gen --n 300 --rate 200 --mix 256:3,512:1,2048:1 --seed 3 --out "$tmp/batchy.csv" >/dev/null ||
    { echo "FAIL trace-gen"; fails=$((fails + 1)); }
for run in "sp2 sp2 $trace" "tetriserve tetriserve $trace" "batched tetriserve $tmp/batchy.csv"; do
    read -r name pol tr <<<"$run"
    if ! "$bin" simulate --trace "$tr" --profile "$prof" --gpus 8 --policy $pol --quiet --out "$tmp/$name.h5" 2>"$tmp/stderr"; then
        if [ $pol = sp2 ]; then echo "FAIL simulate $pol: $(cat "$tmp/stderr")"; fails=$((fails + 1)); fi
        echo "skip $name: $(head -n1 "$tmp/stderr")"
        continue
    fi
    if [ $name = batched ] && ! $py -c 'import h5py,sys; sys.exit(not (h5py.File(sys.argv[1])["segments"]["batch_id"] >= 0).any())' "$tmp/$name.h5"; then
        echo "note: $pol did not batch on $tr; the batched case is not exercised"
    fi
    out=""
    if "$bin" export --chrome "$tmp/$name.h5" -o "$tmp/$name.json" 2>"$tmp/stderr" && [ ! -s "$tmp/stderr" ] &&
       out=$(check_json "$tmp/$name.h5" "$tmp/$name.json"); then
        echo "ok   export $name: $out"
    else
        echo "FAIL export $name:"; cat "$tmp/stderr"; echo "${out:-}"; fails=$((fails + 1))
    fi
done

# Standard output by default, the same bytes as -o.
if "$bin" export --chrome "$tmp/sp2.h5" >"$tmp/stdout.json" && cmp -s "$tmp/stdout.json" "$tmp/sp2.json"; then
    echo "ok   export writes standard output by default"
else
    echo "FAIL export to standard output differs from -o"; fails=$((fails + 1))
fi

# A time window keeps exactly the segments and instants inside it.
if "$bin" export --chrome --window 300:420 "$tmp/sp2.h5" -o "$tmp/win.json" &&
   out=$(check_json "$tmp/sp2.h5" "$tmp/win.json" 300 420); then
    echo "ok   export --window 300:420: $out"
else
    echo "FAIL export --window: $out"; fails=$((fails + 1))
fi

# Strings from the file are escaped: a trace path with quotes, a backslash,
# a tab and a non-ASCII character still gives valid JSON carrying it intact.
weird="$tmp/we\"ird\\	tr€ce.csv"
cp "$trace" "$weird"
if "$bin" simulate --trace "$weird" --profile "$prof" --gpus 8 --policy sp1 --quiet --out "$tmp/weird.h5" &&
   "$bin" export --chrome "$tmp/weird.h5" -o "$tmp/weird.json" &&
   $py -c 'import json,sys; d=json.load(open(sys.argv[1], encoding="utf-8")); assert d["metadata"]["trace"] == sys.argv[2], d["metadata"]["trace"]' "$tmp/weird.json" "$weird"; then
    echo "ok   export escapes strings"
else
    echo "FAIL export string escaping"; fails=$((fails + 1))
fi

# Bad inputs.
expect_fail "missing file" "nonexistent.h5: No such file" "$bin" export --chrome "$tmp/nonexistent.h5"
expect_fail "not HDF5" "not an HDF5 file" "$bin" export --chrome "$trace"
$py -c 'import h5py,sys; f=h5py.File(sys.argv[1],"w"); f.attrs["x"]=1; f.create_dataset("requests", data=[1,2])' "$tmp/other.h5"
expect_fail "HDF5 but not tetriserve" "not a tetriserve results file" "$bin" export --chrome "$tmp/other.h5"
$py -c 'import h5py,sys; f=h5py.File(sys.argv[1],"w"); f.attrs["schema_version"]=1; f.attrs["mode"]="simulate"; f.create_dataset("requests", data=[1,2])' "$tmp/other2.h5"
expect_fail "results file without compound rows" "not a tetriserve results file" "$bin" export --chrome "$tmp/other2.h5"
$py -c 'import h5py,sys; f=h5py.File(sys.argv[1],"w"); f.attrs["schema_version"]=1; f.attrs["mode"]="sweep"' "$tmp/sweep.h5"
expect_fail "sweep file" "sweep file" "$bin" export --chrome "$tmp/sweep.h5"
expect_fail "no file" "expected one results file" "$bin" export --chrome
expect_fail "bad window" "--window" "$bin" export --chrome --window 9:3 "$tmp/sp2.h5"
expect_fail "unwritable output" "no/such/dir/x.json" "$bin" export --chrome "$tmp/sp2.h5" -o "$tmp/no/such/dir/x.json"

[ $fails -eq 0 ] && echo "all export checks passed"
[ $fails -eq 0 ]
