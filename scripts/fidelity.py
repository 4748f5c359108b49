#!/usr/bin/python3
"""Compare live runs with a simulation of the same trace and profile.

usage: /usr/bin/python3 scripts/fidelity.py RUN.h5 [RUN.h5 ...] SIM.h5 [--max-dsar X] [--max-lat-err F]
       /usr/bin/python3 scripts/fidelity.py --average-profiles OUT.csv A.csv B.csv [C.csv ...]

Prints SAR of both, |dSAR|, and the per-request latency error |L_run - L_sim| / L_sim
(latency = finish - arrival) over requests finished in both: median, p90, max.
Files are told apart by their mode attribute (run or simulate). Given several runs of
the same trace (repetitions), each is printed on its own line, then they are judged
together: the run's SAR is their mean and a request's run latency the median of its
latencies, the usual way to take a machine's run-to-run noise out of a measurement
(scripts/fidelity.sh cpu: the VM's speed swings by tens of percent within seconds,
README "Fidelity").
For a live run it also prints the machine's own spread: how much the measured
step time of one cell (resolution, degree, batch) varied between the run's
segments (|t / cell mean - 1|, median and p90): noise that no cost model can
predict, a floor under the per-request error of requests that run alone.
With --max-dsar / --max-lat-err (fraction, e.g. 0.02), exits 1 if a target is missed.
--average-profiles writes a profile whose step_ms is the mean of the inputs' (same cells),
step_ms_p99 their maximum, with the first's metadata and a source line saying so
(scripts/fidelity.sh: the machine's speed during the runs).
"""
import argparse
import sys

import h5py
import numpy as np


def load(path):
    with h5py.File(path, "r") as f:
        r = f["requests"][:]
        s = f["summary"].attrs
        return dict(path=path, id=r["id"], arrival=r["arrival"], lat=r["finish"] - r["arrival"], met=r["met"],
                    status=r["status"], sar=float(s["sar"]), mode=f.attrs["mode"],
                    backend=f.attrs["backend"])


def same_requests(a, b):
    oa, ob = np.argsort(a["id"]), np.argsort(b["id"])
    return (np.array_equal(a["id"][oa], b["id"][ob]) and
            np.allclose(a["arrival"][oa], b["arrival"][ob], rtol=0, atol=1e-9))


def combine(runs):
    """Repetitions of one run: mean SAR, per-request median latency (NaN where a
    request finished in no run)."""
    first = runs[0]
    order = np.argsort(first["id"])
    ids = first["id"][order]
    lats = []
    for r in runs:
        o = np.argsort(r["id"])
        lats.append(r["lat"][o])
    lats = np.array(lats, dtype=float)
    finite = np.isfinite(lats)
    med = np.full(ids.size, np.nan)
    for j in range(ids.size):
        if finite[:, j].any():
            med[j] = np.median(lats[finite[:, j], j])
    return dict(first, id=ids, lat=med, sar=float(np.mean([r["sar"] for r in runs])))


def compare(run, sim):
    """(|dSAR|, latency errors, run latencies, sim latencies) over requests finished in both."""
    order = {i: k for k, i in enumerate(sim["id"])}
    idx = np.array([order[i] for i in run["id"]])
    lr, ls = run["lat"], sim["lat"][idx]
    both = np.isfinite(lr) & np.isfinite(ls) & (ls > 0)
    return abs(run["sar"] - sim["sar"]), np.abs(lr[both] - ls[both]) / ls[both], lr[both], ls[both]


def step_spread(path):
    """Per-step time of every unbatched segment relative to its cell's mean."""
    with h5py.File(path, "r") as f:
        if f.attrs["mode"] != "run":
            return None
        r, s = f["requests"][:], f["segments"][:]
    width = dict(zip(r["id"], r["width"]))
    height = dict(zip(r["id"], r["height"]))
    cells = {}
    for g in s[s["batch_id"] < 0]:
        t = (g["end"] - g["start"]) / g["n_steps"]
        key = (width[g["request_id"]], height[g["request_id"]], g["degree"])
        cells.setdefault(key, []).append(t)
    dev = [abs(t / np.mean(v) - 1) for v in cells.values() if len(v) >= 3 for t in v]
    return np.array(dev)


def average_profiles(out, paths):
    def read(path):
        meta, rows, header = [], {}, None
        for line in open(path):
            if line.startswith("#"):
                meta.append(line)
            elif header is None:
                header = line.strip().split(",")
            elif line.strip():
                f = dict(zip(header, line.strip().split(",")))
                rows[(f["width"], f["height"], f["degree"], f.get("batch", "1"))] = f
        return meta, header, rows
    ma, ha, ra = read(paths[0])
    others = [read(p)[2] for p in paths[1:]]
    for p, rb in zip(paths[1:], others):
        if set(ra) != set(rb):
            sys.exit("fidelity.py: %s and %s do not have the same cells" % (paths[0], p))
    with open(out, "w") as o:
        for line in ma:
            if line.startswith("# source:"):
                line = "# source: mean of %d profiles measured around the runs: %s\n" % (
                    len(paths), ", ".join(paths))
            o.write(line)
        o.write(",".join(ha) + "\n")
        for k, fa in ra.items():
            rows = [fa] + [rb[k] for rb in others]
            f = dict(fa)
            f["step_ms"] = "%.3f" % np.mean([float(r["step_ms"]) for r in rows])
            if "step_ms_p99" in f:
                f["step_ms_p99"] = "%.3f" % max(float(r["step_ms_p99"]) for r in rows)
            o.write(",".join(f[h] for h in ha) + "\n")
    return 0


def main():
    if len(sys.argv) >= 5 and sys.argv[1] == "--average-profiles":
        return average_profiles(sys.argv[2], sys.argv[3:])
    ap = argparse.ArgumentParser()
    ap.add_argument("files", nargs="+", metavar="FILE.h5",
                    help="live runs (mode run) and one simulation, in any order")
    ap.add_argument("--max-dsar", type=float)
    ap.add_argument("--max-lat-err", type=float)
    a = ap.parse_args()
    files = [load(p) for p in a.files]
    runs = [f for f in files if f["mode"] == "run"]
    sims = [f for f in files if f["mode"] != "run"]
    if not runs or len(sims) != 1:
        ap.error("need live runs and one simulation (have %d and %d)" % (len(runs), len(sims)))
    sim = sims[0]
    for r in files[1:]:  # the same requests (the trace's path may be spelt differently)
        if not same_requests(files[0], r):
            sys.exit("fidelity.py: %s and %s do not hold the same requests (ids and arrivals)" % (
                files[0]["path"], r["path"]))
    print("fidelity: %s (%s/%s) vs %s (%s/%s)" % (" ".join(r["path"] for r in runs), runs[0]["mode"],
                                                   runs[0]["backend"], sim["path"], sim["mode"],
                                                   sim["backend"]))
    if len(runs) > 1:
        for k, r in enumerate(runs):
            d, e, _, _ = compare(r, sim)
            print("  run %d of %d: SAR %.4f  |dSAR| %.4f  median latency error %.2f%%" % (
                k + 1, len(runs), r["sar"], d, 100 * np.median(e) if e.size else float("nan")))
        print("the %d runs together (mean SAR, each request's median latency):" % len(runs))
    run = combine(runs) if len(runs) > 1 else runs[0]
    dsar, err, lr, ls = compare(run, sim)
    med = float(np.median(err)) if err.size else float("nan")
    print("SAR run %.4f  sim %.4f  |dSAR| %.4f" % (run["sar"], sim["sar"], dsar))
    if err.size:
        print("latency error over %d requests: median %.2f%%  p90 %.2f%%  max %.2f%%  "
              "(mean latency run %.3f s, sim %.3f s)" % (err.size, 100 * med,
              100 * np.percentile(err, 90), 100 * err.max(), lr.mean(), ls.mean()))
    spread = [step_spread(r["path"]) for r in runs]
    spread = [x for x in spread if x is not None and x.size]
    if spread:
        spread = np.concatenate(spread)
        print("step-time spread within the run%s (same cell, %d segments): median %.2f%%  p90 %.2f%%"
              % ("s" if len(runs) > 1 else "", spread.size, 100 * np.median(spread),
                 100 * np.percentile(spread, 90)))
    ok = True
    if a.max_dsar is not None and not dsar <= a.max_dsar + 1e-9:  # SARs are multiples of 1/n
        print("MISSED: |dSAR| %.4f > %.4f" % (dsar, a.max_dsar)); ok = False
    if a.max_lat_err is not None and not med <= a.max_lat_err + 1e-12:
        print("MISSED: median latency error %.4f > %.4f" % (med, a.max_lat_err)); ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
