#!/usr/bin/python3
"""Per-resolution SAR of a sweep file: requests met / requests, summed over seeds.

usage: /usr/bin/python3 scripts/res_sar.py SWEEP.h5 [--scale X] [--rate R] [--source S]

One Markdown table per (source, rate, SLO scale): a row per policy, a column per
resolution (met / requests over the seeds of the cell), and the mean SAR.
"""
import argparse
import sys

import h5py
import numpy as np


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sweep")
    ap.add_argument("--scale", type=float)
    ap.add_argument("--rate", type=float)
    ap.add_argument("--source")
    a = ap.parse_args()
    with h5py.File(a.sweep, "r") as f:
        t = f["sweep"][()]
        res = [r.decode() if isinstance(r, bytes) else str(r) for r in f.attrs["resolutions"]]
        pols = [p.decode() if isinstance(p, bytes) else str(p) for p in f.attrs["policies"]]
    dec = lambda v: v.decode() if isinstance(v, bytes) else str(v)
    rows = [dict(zip(t.dtype.names, r)) for r in t]
    for r in rows:
        r["policy"], r["source"] = dec(r["policy"]), dec(r["source"])
    keys = sorted({(r["source"], float(r["rate_per_min"]), float(r["slo_scale"])) for r in rows})
    out = []
    for src, rate, s in keys:
        if (a.source and src != a.source) or (a.scale is not None and not np.isclose(s, a.scale)) or \
                (a.rate is not None and not np.isclose(rate, a.rate)):
            continue
        cell = [r for r in rows if r["source"] == src and np.isclose(r["rate_per_min"], rate) and np.isclose(r["slo_scale"], s)]
        n = sum(r["res_n"] for r in cell)
        cols = [k for k in range(len(res)) if n[k] > 0]
        out.append(f"\n#### {a.sweep}: {src}, {rate:g} requests/min, SLO scale {s:g}, {len({r['seed'] for r in cell})} seeds: met / requests\n")
        out.append("| policy | " + " | ".join(res[k] for k in cols) + " | SAR |")
        out.append("|---" * (len(cols) + 2) + "|")
        for p in pols:
            pr = [r for r in cell if r["policy"] == p]
            if not pr:
                continue
            met, nn = sum(r["res_met"] for r in pr), sum(r["res_n"] for r in pr)
            out.append(f"| {p} | " + " | ".join(f"{int(met[k])}/{int(nn[k])} ({met[k] / nn[k]:.2f})" for k in cols)
                       + f" | {np.mean([r['sar'] for r in pr]):.3f} |")
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
