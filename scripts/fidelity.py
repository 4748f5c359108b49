#!/usr/bin/python3
"""Compare a live run with a simulation of the same trace and profile.

usage: /usr/bin/python3 scripts/fidelity.py RUN.h5 SIM.h5 [--max-dsar X] [--max-lat-err F]
       /usr/bin/python3 scripts/fidelity.py --average-profiles OUT.csv A.csv B.csv

Prints SAR of both, |dSAR|, and the per-request latency error |L_run - L_sim| / L_sim
(latency = finish - arrival) over requests finished in both: median, p90, max.
For a live run it also prints the machine's own spread: how much the measured
step time of one cell (resolution, degree, batch) varied between the run's
segments (|t / cell mean - 1|, median and p90): noise that no cost model can
predict, a floor under the per-request error of requests that run alone.
With --max-dsar / --max-lat-err (fraction, e.g. 0.02), exits 1 if a target is missed.
--average-profiles writes a profile whose step_ms is the mean of A's and B's
(same cells), step_ms_p99 their maximum, with A's metadata and a source line
saying so (scripts/fidelity.sh: the machine's speed during a run).
"""
import argparse
import sys

import h5py
import numpy as np


def load(path):
    with h5py.File(path, "r") as f:
        r = f["requests"][:]
        s = f["summary"].attrs
        return dict(id=r["id"], lat=r["finish"] - r["arrival"], met=r["met"], status=r["status"],
                    sar=float(s["sar"]), mode=f.attrs["mode"], backend=f.attrs["backend"])


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


def average_profiles(out, a, b):
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
    ma, ha, ra = read(a)
    _, _, rb = read(b)
    if set(ra) != set(rb):
        sys.exit("fidelity.py: %s and %s do not have the same cells" % (a, b))
    with open(out, "w") as o:
        for line in ma:
            if line.startswith("# source:"):
                line = "# source: mean of two profiles measured before and after a run: %s, %s\n" % (a, b)
            o.write(line)
        o.write(",".join(ha) + "\n")
        for k, fa in ra.items():
            fb = rb[k]
            f = dict(fa)
            f["step_ms"] = "%.3f" % (0.5 * (float(fa["step_ms"]) + float(fb["step_ms"])))
            if "step_ms_p99" in f:
                f["step_ms_p99"] = "%.3f" % max(float(fa["step_ms_p99"]), float(fb["step_ms_p99"]))
            o.write(",".join(f[h] for h in ha) + "\n")
    return 0


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "--average-profiles":
        return average_profiles(*sys.argv[2:5])
    ap = argparse.ArgumentParser()
    ap.add_argument("run")
    ap.add_argument("sim")
    ap.add_argument("--max-dsar", type=float)
    ap.add_argument("--max-lat-err", type=float)
    a = ap.parse_args()
    run, sim = load(a.run), load(a.sim)
    order = {i: k for k, i in enumerate(sim["id"])}
    idx = np.array([order[i] for i in run["id"]])
    lr, ls = run["lat"], sim["lat"][idx]
    both = np.isfinite(lr) & np.isfinite(ls) & (ls > 0)
    err = np.abs(lr[both] - ls[both]) / ls[both]
    dsar = abs(run["sar"] - sim["sar"])
    med = float(np.median(err)) if err.size else float("nan")
    print("fidelity: %s (%s/%s) vs %s (%s/%s)" % (a.run, run["mode"], run["backend"], a.sim,
                                                   sim["mode"], sim["backend"]))
    print("SAR run %.4f  sim %.4f  |dSAR| %.4f" % (run["sar"], sim["sar"], dsar))
    if err.size:
        print("latency error over %d requests: median %.2f%%  p90 %.2f%%  max %.2f%%  "
              "(mean latency run %.3f s, sim %.3f s)" % (err.size, 100 * med,
              100 * np.percentile(err, 90), 100 * err.max(), lr[both].mean(), ls[both].mean()))
    spread = step_spread(a.run)
    if spread is not None and spread.size:
        print("step-time spread within the run (same cell, %d segments): median %.2f%%  p90 %.2f%%"
              % (spread.size, 100 * np.median(spread), 100 * np.percentile(spread, 90)))
    ok = True
    if a.max_dsar is not None and not dsar <= a.max_dsar + 1e-9:  # SARs are multiples of 1/n
        print("MISSED: |dSAR| %.4f > %.4f" % (dsar, a.max_dsar)); ok = False
    if a.max_lat_err is not None and not med <= a.max_lat_err + 1e-12:
        print("MISSED: median latency error %.4f > %.4f" % (med, a.max_lat_err)); ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
