#!/usr/bin/python3
"""Upper bounds on SAR for the grid of a sweep file, to compare the policies with.

usage: /usr/bin/python3 scripts/sar_bound.py [--bin ./tetriserve] SWEEP.h5 ...

For every (mix, rate, seed) of the sweep (generated traces only) the trace is
drawn again with `tetriserve trace-gen` (the same seed gives the same trace)
and, at every SLO scale, a request counts towards the bound only if
  1. alone on the cluster it can meet its deadline: steps x T_min + overhead
     <= scale x slo (T_min: its fastest step time over the degrees <= the GPU
     count), and
  2. for a resolution whose fastest degree is the whole cluster (N GPUs): any
     plan that meets the deadline D runs at least x steps on all N GPUs, x the
     least with x T_N + (steps - x) T' <= D (T': the fastest step on fewer
     GPUs), so it holds the whole cluster for e = x T_N; two such requests
     both meet their deadlines only if they arrive at least 2e - D apart, and
     at most the longest chain of arrivals with that spacing (earliest first)
     can count.
Both are necessary for any scheduler, so the bound is an upper bound on the
SAR of every policy (conflicts between resolutions are ignored: it is loose).
Prints, per profile and mix, the bound next to the best baseline and the round
policies, and the largest average gain over the best fixed strategy any policy
could reach at the points where that strategy is below 0.9 (the bar of issue #3).
"""
import argparse
import csv
import math
import os
import subprocess
import sys
import tempfile

import h5py
import numpy as np

BASELINES = ["sp1", "sp2", "sp4", "sp8", "rssp"]
OURS = ["tetriserve", "tetriplus"]


def load_profile(path, n_gpus):
    """{(w, h): {degree: step_s}} for batch 1 and degrees <= n_gpus; overhead_s."""
    steps, overhead = {}, 0.0
    with open(path) as f:
        lines = []
        for line in f:
            if line.startswith("#"):
                k, _, v = line[1:].partition(":")
                if k.strip() == "request_overhead_ms":
                    overhead = float(v) / 1000.0
                continue
            lines.append(line)
    for r in csv.DictReader(lines):
        if int(r.get("batch") or 1) != 1 or int(r["degree"]) > n_gpus:
            continue
        steps.setdefault((int(r["width"]), int(r["height"])), {})[int(r["degree"])] = float(r["step_ms"]) / 1000.0
    return steps, overhead


def bound_count(rows, scale, prof, overhead, n_gpus):
    """Requests of one trace that can count towards SAR at this SLO scale."""
    ok = 0
    by_res = {}
    for r in rows:
        by_res.setdefault((int(r["width"]), int(r["height"])), []).append(r)
    for res, reqs in by_res.items():
        t = prof[res]
        t_min = min(t.values())
        alone = [r for r in reqs if int(r["steps"]) * t_min + overhead <= scale * float(r["slo_s"]) + 1e-9]
        whole = t.get(n_gpus)
        others = [v for k, v in t.items() if k < n_gpus]
        same = len({(r["steps"], r["slo_s"]) for r in alone}) == 1
        if not alone or whole is None or whole > t_min or not others or not same:
            ok += len(alone)
            continue
        R, D = int(alone[0]["steps"]), scale * float(alone[0]["slo_s"]) - overhead
        tp = min(others)
        x = 0 if R * tp <= D else min(R, math.ceil((R * tp - D) / (tp - whole) - 1e-12))
        gap = 2 * x * whole - D
        if gap <= 0:
            ok += len(alone)
            continue
        last = -math.inf
        for a in sorted(float(r["arrival_s"]) for r in alone):
            if a - last >= gap - 1e-9:
                ok += 1
                last = a
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", default="./tetriserve")
    ap.add_argument("sweeps", nargs="+")
    a = ap.parse_args()
    out = []
    for path in a.sweeps:
        with h5py.File(path, "r") as f:
            t = f["sweep"][()]
            at = {k: f.attrs[k] for k in f.attrs}
        if str(at.get("source_kind")) != "mix":
            print(f"sar_bound.py: {path}: not a sweep of generated traces", file=sys.stderr)
            return 1
        rows = []
        for r in t:
            d = {n: r[n] for n in t.dtype.names}
            for k in ("policy", "source"):
                d[k] = d[k].decode() if isinstance(d[k], bytes) else str(d[k])
            rows.append(d)
        prof_path = str(at["profile"])
        n_gpus = int(np.atleast_1d(at["gpus"])[0])
        prof, overhead = load_profile(prof_path, n_gpus)
        arrival = str(at.get("arrival", "poisson"))
        cells = {}  # (source, rate, seed) -> trace rows
        with tempfile.TemporaryDirectory() as tmp:
            for src, rate, seed in sorted({(r["source"], float(r["rate_per_min"]), int(r["seed"])) for r in rows}):
                tr = os.path.join(tmp, "t.csv")
                subprocess.run([a.bin, "trace-gen", "--n", str(int(at["requests"])), "--rate", f"{rate:g}", "--mix", src,
                                "--steps", str(int(at["steps"])), "--arrival", arrival, "--seed", str(seed), "--out", tr],
                               check=True, capture_output=True)
                with open(tr) as f:
                    cells[(src, rate, seed)] = list(csv.DictReader(l for l in f if not l.startswith("#")))
        name = os.path.basename(path)
        for src in sorted({r["source"] for r in rows}):
            for rate in sorted({float(r["rate_per_min"]) for r in rows if r["source"] == src}):
                scales = sorted({float(r["slo_scale"]) for r in rows if r["source"] == src})
                seeds = sorted({int(r["seed"]) for r in rows if r["source"] == src})
                out.append(f"\n#### {name}: upper bound on SAR, {src}, {rate:g} requests/min, {len(seeds)} seeds "
                           f"({prof_path}, {n_gpus} GPUs)\n")
                out.append("| | " + " | ".join(f"{s:.1f}x" for s in scales) + " |")
                out.append("|---" * (len(scales) + 1) + "|")

                def mean(pol, s):
                    v = [r["sar"] for r in rows if r["policy"] == pol and r["source"] == src
                         and np.isclose(r["rate_per_min"], rate) and np.isclose(r["slo_scale"], s)]
                    return float(np.mean(v)) if v else None
                bound = {s: float(np.mean([bound_count(cells[(src, rate, sd)], s, prof, overhead, n_gpus)
                                           / len(cells[(src, rate, sd)]) for sd in seeds])) for s in scales}
                best = {s: max((mean(p, s) or 0.0) for p in BASELINES) for s in scales}
                out.append("| bound (any policy) | " + " | ".join(f"{bound[s]:.3f}" for s in scales) + " |")
                out.append("| best baseline | " + " | ".join(f"{best[s]:.3f}" for s in scales) + " |")
                for p in OURS:
                    if any(mean(p, s) is not None for s in scales):
                        out.append(f"| {p} | " + " | ".join(f"{mean(p, s):.3f}" for s in scales) + " |")
                pts = [s for s in scales if best[s] < 0.9]
                if pts:
                    g = np.mean([bound[s] / best[s] - 1 for s in pts]) * 100
                    line = f"\nLargest average gain any policy could reach over the {len(pts)} points where the best baseline < 0.9: {g:+.1f}%"
                    for p in OURS:
                        if all(mean(p, s) is not None for s in pts):
                            line += f"; {p} {np.mean([mean(p, s) / best[s] - 1 for s in pts]) * 100:+.1f}%"
                    out.append(line + ".")
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
