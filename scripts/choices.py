#!/usr/bin/python3
"""The table of scripts/choices.sh: each variant's mean SAR per grid and the bar of issue #3.

usage: /usr/bin/python3 scripts/choices.py DIR

DIR holds {flux,sd3}_{scale,rate}_base.h5 (the baselines), {flux,sd3}_{scale,rate}_v<k>.h5
(variant k, one round policy each) and variants.txt (the names, one a line).
Columns: mean SAR over the seeds and points of each grid (scale grid; rate grid with both
of its SLO scales), then the points where the variant is below the best baseline (over all
grids) and its average relative gain over the best baseline where that is below 0.9 (scale
grids, as in scripts/paper.py).
"""
import os
import sys

import h5py
import numpy as np

BASELINES = ["sp1", "sp2", "sp4", "sp8", "rssp"]


def load(path):
    with h5py.File(path, "r") as f:
        t = f["sweep"][()]
    d = {}
    for r in t:
        pol = r["policy"].decode() if isinstance(r["policy"], bytes) else str(r["policy"])
        src = r["source"].decode() if isinstance(r["source"], bytes) else str(r["source"])
        key = (pol, src, round(float(r["slo_scale"]), 3), round(float(r["rate_per_min"]), 3))
        d.setdefault(key, []).append(float(r["sar"]))
    return {k: float(np.mean(v)) for k, v in d.items()}


def main():
    if len(sys.argv) != 2 or not os.path.isdir(sys.argv[1]):
        print(__doc__, file=sys.stderr)
        return 2
    d = sys.argv[1]
    with open(os.path.join(d, "variants.txt")) as f:
        names = [l.rstrip("\n") for l in f if l.strip()]
    cols = [(p, g, m) for p in ("flux", "sd3") for g in ("scale", "rate") for m in ("uniform", "skewed")]
    base = {(p, g): load(os.path.join(d, f"{p}_{g}_base.h5")) for p in ("flux", "sd3") for g in ("scale", "rate")}
    out = ["| variant | " + " | ".join(f"{p.upper() if p == 'sd3' else 'FLUX'} {g} {m[0].upper()}" for p, g, m in cols)
           + " | points below | gain FLUX U / S | gain SD3 U / S |",
           "|---" * (len(cols) + 4) + "|"]
    for k, name in enumerate(names):
        cells, below, gains = [], 0, {}
        for p, g, m in cols:
            v = load(os.path.join(d, f"{p}_{g}_v{k}.h5"))
            pol = next(iter(v))[0]
            pts = sorted({(key[2], key[3]) for key in v if key[1] == m})
            cells.append(f"{np.mean([v[(pol, m, s, r)] for s, r in pts]):.3f}")
            gl = []
            for s, r in pts:
                best = max(base[(p, g)].get((b, m, s, r), 0.0) for b in BASELINES)
                below += v[(pol, m, s, r)] < best - 1e-9
                if g == "scale" and best < 0.9:
                    gl.append(v[(pol, m, s, r)] / best - 1)
            if g == "scale":
                gains[(p, m)] = np.mean(gl) * 100 if gl else float("nan")
        out.append(f"| {name} | " + " | ".join(cells) + f" | {below} | {gains[('flux', 'uniform')]:+.1f}% / "
                   f"{gains[('flux', 'skewed')]:+.1f}% | {gains[('sd3', 'uniform')]:+.1f}% / {gains[('sd3', 'skewed')]:+.1f}% |")
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
