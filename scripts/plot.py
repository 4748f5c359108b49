#!/usr/bin/python3
"""Plot tetriserve results files and sweep files as PNGs.

usage: /usr/bin/python3 scripts/plot.py F.h5 [G.h5 ...] -o DIR
           [--window T0:T1|all] [--window-len S] [--color-by resolution|request]
           [--slo-scale X] [--rate R] [--no-labels]

Per results file (root attribute mode = simulate | run), STEM = file name without .h5:
  STEM_timeline.png      the GPU timeline ("the Tetris picture"): GPUs on the y axis,
                         one block per segment coloured by resolution (or by request),
                         batched blocks hatched, deadline misses outlined in red with an
                         x at the request's finish, round boundaries as faint vertical
                         lines, arrivals as ticks in a lane above GPU 0. Default window:
                         the busiest 120 s (--window-len) of the run; --window T0:T1
                         (seconds, either side may be empty) or --window all to change.
  STEM_latency_cdf.png   end-to-end latency CDF per resolution and overall; unfinished
                         requests count as infinitely late, so curves may end below 1;
                         dashed lines: the SLO at scale 1.0 per resolution (deadline -
                         arrival divided by the run's slo_scale), dotted: the run's
                         deadline when slo_scale != 1.
  STEM_sar_by_res.png    SLO attainment per resolution and overall.
Several results files together (e.g. policies on one trace) also give:
  compare_latency_cdf.png  overlaid CDFs, all requests and one panel per resolution
  compare_sar_by_res.png   grouped SAR bars per resolution, one bar per file
Per sweep file (mode = sweep, a compound /sweep table, one row per scenario; columns
are discovered by name and plots whose columns are missing are skipped):
  STEM_sar_vs_slo.png    SAR against SLO scale, one line per policy (mean over seeds,
                         min-max band), rows: mix/trace x n_gpus, columns: arrival rates
  STEM_sar_vs_rate.png   SAR against arrival rate, columns: SLO scales (or --slo-scale)
  STEM_sar_by_res.png    per-resolution SAR at one operating point (--slo-scale, --rate;
                         default SLO scale 1.0 and the median rate)
Colours are fixed per policy and per resolution across all figures. Prints the paths of
the PNGs written. Exit status 1 (one line on stderr) if an input is not a tetriserve file.
"""
import argparse
import os
import re
import sys

import numpy as np

try:
    import h5py
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.ticker
    import matplotlib.pyplot as plt
    from matplotlib.collections import PolyCollection
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
except ImportError as e:  # pragma: no cover
    sys.exit("plot.py: %s (run with /usr/bin/python3, which has h5py and matplotlib)" % e)

DPI = 130
DEFAULT_WINDOW_S = 120.0
MISS_COLOR = "#e00000"

plt.rcParams.update({
    "font.size": 12,
    "axes.titlesize": 13,
    "axes.labelsize": 12,
    "legend.fontsize": 10.5,
    "xtick.labelsize": 11,
    "ytick.labelsize": 11,
    "figure.titlesize": 14,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
})

# ---- consistent colours ----------------------------------------------------

# Policies: the paper's system stands out in red; baselines in calmer colours.
POLICY_COLORS = {
    "tetriserve": "#d62728",
    "tetriplus": "#2ca02c",
    "rssp": "#1f77b4",
    "sp1": "#8c564b",
    "sp2": "#9467bd",
    "sp4": "#bcbd22",
    "sp8": "#7f7f7f",
    "edf": "#17becf",
}
_EXTRA_COLORS = ["#2ca02c", "#ff7f0e", "#e377c2", "#393b79", "#637939", "#8c6d31", "#843c39"]
# Resolutions (Okabe-Ito, colour-blind safe): small to large.
RES_COLORS = {
    (256, 256): "#56B4E9",
    (512, 512): "#009E73",
    (1024, 1024): "#E69F00",
    (2048, 2048): "#CC79A7",
}
LINESTYLES = ["-", "--", ":", "-."]


def policy_color(policy):
    if policy in POLICY_COLORS:
        return POLICY_COLORS[policy]
    # Stable across runs and figures: a hash of the name, not the order seen.
    h = sum((i + 1) * ord(c) for i, c in enumerate(policy))
    return _EXTRA_COLORS[h % len(_EXTRA_COLORS)]


def res_color(w, h):
    key = (int(w), int(h))
    if key in RES_COLORS:
        return RES_COLORS[key]
    # Other sizes: a position on a colormap by log2(tokens), 256^2 .. 2048^2.
    t = np.clip((np.log2(max(w * h, 1)) - 16) / 6.0, 0, 1)
    return matplotlib.colormaps["cividis"](0.1 + 0.8 * t)


def res_name(w, h):
    return "%dx%d" % (w, h)


# ---- reading ---------------------------------------------------------------


class InputError(Exception):
    pass


def _str(v):
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, np.ndarray) and v.shape == ():
        return _str(v[()])
    return str(v)


def open_input(path):
    """-> ("results" | "sweep", h5py.File)."""
    if not os.path.exists(path):
        raise InputError("%s: no such file" % path)
    try:
        f = h5py.File(path, "r", locking=False)
    except OSError:
        raise InputError("%s: not an HDF5 file (expected a tetriserve results or sweep file)" % path)
    mode = _str(f.attrs["mode"]) if "mode" in f.attrs else None
    if mode == "sweep":
        return "sweep", f
    if mode in ("simulate", "run") and "schema_version" in f.attrs:
        for name in ("requests", "segments", "segment_gpus"):
            if name not in f or not isinstance(f[name], h5py.Dataset):
                f.close()
                raise InputError("%s: not a tetriserve results file (no /%s dataset)" % (path, name))
        return "results", f
    f.close()
    raise InputError("%s: not a tetriserve results or sweep file (root attribute mode is %r)"
                     % (path, mode))


class Results:
    """The parts of a results file the plots need."""

    def __init__(self, path, f):
        self.path = path
        a = f.attrs
        self.policy = _str(a.get("policy", "?"))
        self.options = _str(a.get("policy_options", ""))
        self.trace = _str(a.get("trace", "?"))
        self.n_gpus = int(a.get("n_gpus", 0))
        self.gpus_per_node = int(a.get("gpus_per_node", 0)) or max(self.n_gpus, 1)
        self.slo_scale = float(a.get("slo_scale", 1.0))
        self.mode = _str(a.get("mode", "?"))
        self.backend = _str(a.get("backend", "?"))
        self.complete = bool(a.get("complete", 1))
        try:
            self.req = f["requests"][:]
            self.seg = f["segments"][:]
            self.gpus = f["segment_gpus"][:]
            self.rounds = f["rounds"][:] if "rounds" in f else None
            for col in ("id", "width", "height", "arrival", "deadline", "finish", "met", "status"):
                self.req[col]
            for col in ("request_id", "degree", "gpu_offset", "start", "end", "batch_id"):
                self.seg[col]
        except (ValueError, KeyError, TypeError) as e:
            raise InputError("%s: not a tetriserve results file (%s)" % (path, e))
        if len(self.gpus):
            self.n_gpus = max(self.n_gpus, int(self.gpus.max()) + 1)
        r = self.req
        self.res = sorted({(int(w), int(h)) for w, h in zip(r["width"], r["height"])},
                          key=lambda x: (x[0] * x[1], x))
        self.latency = np.where(r["status"] == 0, r["finish"] - r["arrival"], np.inf)
        self.n = len(r)
        self.sar = float(r["met"].sum()) / self.n if self.n else float("nan")

    def res_mask(self, wh):
        return (self.req["width"] == wh[0]) & (self.req["height"] == wh[1])

    def slo_base(self, wh):
        """The SLO at scale 1.0 of resolution wh (median over its requests)."""
        m = self.res_mask(wh)
        if not m.any() or self.slo_scale <= 0:
            return float("nan")
        return float(np.median(self.req["deadline"][m] - self.req["arrival"][m]) / self.slo_scale)

    def title(self):
        inc = "" if self.complete else " (incomplete run)"
        mode = "" if self.mode == "simulate" else " [%s/%s]" % (self.mode, self.backend)
        return ("%s on %s%s: %d GPUs, SLO scale %s, SAR %.1f%% (%d requests)%s"
                % (self.policy, os.path.basename(self.trace), mode, self.n_gpus,
                   fmt_scale(self.slo_scale),
                   100 * self.sar, self.n, inc))


def fmt_scale(x):
    """1 -> "1.0", 1.25 -> "1.25": SLO scales read as multipliers."""
    return "%.1f" % x if abs(x * 10 - round(x * 10)) < 1e-9 else "%g" % x


def option_dict(s):
    d = {}
    for tok in s.split():
        k, _, v = tok.partition("=")
        d[k] = v
    return d


def series_labels(results):
    """Label per file: policy plus whatever distinguishes it from the others
    (differing policy options, trace, GPUs, SLO scale)."""
    labels = []
    opts = [option_dict(r.options) for r in results]
    for i, r in enumerate(results):
        parts = [r.policy]
        same_pol = [j for j, q in enumerate(results) if q.policy == r.policy]
        if len(same_pol) > 1:
            keys = sorted({k for j in same_pol for k in opts[j]})
            diff = [k for k in keys if len({opts[j].get(k) for j in same_pol}) > 1
                    and not k.startswith("round_s")]
            parts += ["%s=%s" % (k, opts[i].get(k, "-")) for k in diff]
        if len({q.trace for q in results}) > 1:
            parts.append(os.path.splitext(os.path.basename(r.trace))[0])
        if len({q.n_gpus for q in results}) > 1:
            parts.append("%d GPUs" % r.n_gpus)
        if len({q.slo_scale for q in results}) > 1:
            parts.append("x%g" % r.slo_scale)
        labels.append(" ".join(parts))
    # Still ambiguous (same settings twice): add the file name.
    for i, l in enumerate(labels):
        if labels.count(l) > 1:
            labels[i] = "%s (%s)" % (l, os.path.basename(results[i].path))
    return labels


def series_styles(results):
    """(color, linestyle, hatch) per file: the policy's colour; repeats of a
    policy get other line styles and hatches."""
    seen = {}
    out = []
    for r in results:
        k = seen.get(r.policy, 0)
        seen[r.policy] = k + 1
        out.append((policy_color(r.policy), LINESTYLES[k % len(LINESTYLES)],
                    [None, "//", "..", "xx"][k % 4]))
    return out


# ---- the timeline ------------------------------------------------------------


def busiest_window(r, length):
    """Start of the `length`-second window with the most GPU-busy time (ties:
    the one with more segment starts, then the earliest)."""
    s, e = r.seg["start"], r.seg["end"]
    ok = np.isfinite(s) & np.isfinite(e)
    if not ok.any():
        return 0.0
    s, e, k = s[ok], e[ok], r.seg["degree"][ok].astype(float)
    t_end = float(e.max())
    bins = int(np.ceil(t_end)) + 1
    busy = np.zeros(bins)
    # Spread each segment's GPU-seconds over the 1 s bins it covers.
    lo, hi = np.floor(s).astype(int), np.floor(e).astype(int)
    one = lo == hi
    np.add.at(busy, lo[one], (e[one] - s[one]) * k[one])
    for a, b, x, y, d in zip(lo[~one], hi[~one], s[~one], e[~one], k[~one]):
        busy[a] += (a + 1 - x) * d
        busy[a + 1:b] += d
        busy[b] += (y - b) * d
    starts = np.zeros(bins)
    np.add.at(starts, lo, 1)
    w = int(round(length))
    if bins <= w:
        return 0.0
    score = np.convolve(busy, np.ones(w), "valid") + 1e-3 * np.convolve(starts, np.ones(w), "valid")
    return float(np.argmax(score))


def parse_window(spec):
    if spec is None:
        return None
    if spec == "all":
        return (-np.inf, np.inf)
    m = re.fullmatch(r"\s*([^:]*):([^:]*)\s*", spec)
    if not m:
        raise InputError("--window %r: expected T0:T1 in seconds (either may be empty) or all" % spec)
    try:
        t0 = float(m.group(1)) if m.group(1).strip() else -np.inf
        t1 = float(m.group(2)) if m.group(2).strip() else np.inf
    except ValueError:
        raise InputError("--window %r: T0 and T1 must be numbers of seconds" % spec)
    if not (t0 < t1) or np.isnan(t0) or np.isnan(t1):
        raise InputError("--window %r: need T0 < T1" % spec)
    return (t0, t1)


def gpu_runs(ids):
    """Sorted GPU ids -> runs of consecutive ids [(first, last), ...]."""
    ids = sorted(int(g) for g in ids)
    runs = []
    for g in ids:
        if runs and g == runs[-1][1] + 1:
            runs[-1][1] = g
        else:
            runs.append([g, g])
    return runs


def plot_timeline(r, out, args):
    seg, req = r.seg, r.req
    ok = np.isfinite(seg["start"]) & np.isfinite(seg["end"])
    t_first = float(req["arrival"].min()) if r.n else 0.0
    t_last = max(float(seg["end"][ok].max()) if ok.any() else t_first + 1,
                 float(req["arrival"].max()) if r.n else 0.0)
    win = parse_window(args.window)
    how = ""
    if win is None:
        if t_last - min(t_first, 0) <= args.window_len * 1.25:
            win, how = (min(t_first, 0.0), t_last), "whole run"
        else:
            t0 = busiest_window(r, args.window_len)
            win, how = (t0, t0 + args.window_len), "busiest %g s" % args.window_len
    else:
        how = "whole run" if np.isinf(win[0]) and np.isinf(win[1]) else "--window"
    t0 = max(win[0], min(t_first, 0.0))
    t1 = min(win[1], t_last)
    if not t1 > t0:
        t1 = t0 + 1
    sel = np.nonzero(ok & (seg["end"] > t0) & (seg["start"] < t1))[0]

    row_of = {int(i): k for k, i in enumerate(req["id"])}
    n_gpus = max(r.n_gpus, 1)
    height = min(2.2 + 0.42 * n_gpus, 14)
    fig, ax = plt.subplots(figsize=(15, height))

    # Blocks: one rectangle per run of consecutive GPUs of a block, where a
    # block is a request's segments that follow each other without a gap on
    # the same GPUs (a policy may record one segment per round: drawn apart,
    # the separators would hide the picture). Batched segments (same
    # batch_id) share one rectangle, hatched.
    last_seg = {}
    for i in np.nonzero(ok)[0]:
        rid = int(seg["request_id"][i])
        if rid not in last_seg or seg["end"][i] > seg["end"][last_seg[rid]]:
            last_seg[rid] = i
    blocks = []  # [rid, gpu tuple, x0, x1, batched, missed, drawn]
    open_block = {}  # (rid, gpus) -> index in blocks of the block that may grow
    done_batches = set()
    for i in sel[np.lexsort((seg["start"][sel], seg["request_id"][sel]))]:
        s = seg[i]
        rid = int(s["request_id"])
        ids = tuple(sorted(int(g) for g in r.gpus[s["gpu_offset"]:s["gpu_offset"] + s["degree"]]))
        row = row_of.get(rid)
        missed = row is not None and not req["met"][row] and last_seg.get(rid) == i
        x0, x1 = float(s["start"]), float(s["end"])
        if int(s["batch_id"]) >= 0:
            key = (int(s["batch_id"]), x0)
            if key in done_batches:
                if missed:  # outline only: the batch's block is drawn once
                    blocks.append([rid, ids, x0, x1, True, True, False])
                continue
            done_batches.add(key)
            blocks.append([rid, ids, x0, x1, True, missed, True])
            continue
        k = open_block.get((rid, ids))
        if k is not None and abs(blocks[k][3] - x0) <= 1e-6:
            blocks[k][3] = x1
            blocks[k][5] = blocks[k][5] or missed
            continue
        open_block[(rid, ids)] = len(blocks)
        blocks.append([rid, ids, x0, x1, False, missed, True])

    req_cmap = matplotlib.colormaps["tab20"]
    verts, colors, bverts, bcolors, miss_verts, miss_pts, labels = [], [], [], [], [], [], []
    for rid, ids, x0, x1, batched, missed, drawn in blocks:
        row = row_of.get(rid)
        w, h = (int(req["width"][row]), int(req["height"][row])) if row is not None else (0, 0)
        color = res_color(w, h) if args.color_by == "resolution" else req_cmap((rid * 7) % 20)
        runs = gpu_runs(ids)
        for g0, g1 in runs:
            rect = [(x0, g0 - 0.42), (x1, g0 - 0.42), (x1, g1 + 0.42), (x0, g1 + 0.42)]
            if missed:
                miss_verts.append(rect)
            if not drawn:
                continue
            (bverts if batched else verts).append(rect)
            (bcolors if batched else colors).append(color)
        if missed:
            miss_pts.append((x1, float(np.mean(ids))))
        if drawn:
            labels.append((x0, x1, (runs[0][0] + runs[0][1]) / 2, rid))

    # Faint round boundaries behind the blocks.
    n_round_lines = 0
    if r.rounds is not None and len(r.rounds):
        rs = r.rounds["start"]
        rs = rs[(rs >= t0) & (rs <= t1)]
        step = max(1, int(np.ceil(len(rs) / 800)))  # beyond ~800 lines they are a grey wash
        rs = rs[::step]
        n_round_lines = len(rs)
        ax.vlines(rs, -1.9, n_gpus - 0.5, colors="#555555", linewidths=0.5, alpha=0.28, zorder=0)

    lw = 0.6 if len(verts) + len(bverts) < 3000 else 0.25
    ax.add_collection(PolyCollection(verts, facecolors=colors, edgecolors="white", linewidths=lw,
                                     zorder=2))
    if bverts:
        ax.add_collection(PolyCollection(bverts, facecolors=bcolors, edgecolors="white",
                                         linewidths=lw, hatch="///", zorder=2))
    if miss_verts:
        ax.add_collection(PolyCollection(miss_verts, facecolors="none", edgecolors=MISS_COLOR,
                                         linewidths=1.4, zorder=3))
        mx, my = zip(*miss_pts)
        ax.plot(mx, my, "x", color=MISS_COLOR, ms=7, mew=2, zorder=4)

    # Request ids on the blocks when there are few enough to read.
    if not args.no_labels and len(labels) <= 160:
        fig.canvas.draw()
        px_per_s = ax.get_window_extent().width / (t1 - t0)
        for x0, x1, y, rid in labels:
            txt = str(rid)
            if (min(x1, t1) - max(x0, t0)) * px_per_s > 7.5 * len(txt) + 4:
                ax.text((max(x0, t0) + min(x1, t1)) / 2, y, txt, ha="center", va="center",
                        fontsize=8.5, color="black", zorder=5, clip_on=True)

    # Arrivals: ticks in a lane above GPU 0, coloured like the blocks.
    am = (req["arrival"] >= t0) & (req["arrival"] <= t1)
    lost = am & (req["status"] != 0)
    if am.any():
        if args.color_by == "resolution":
            ac = [res_color(w, h) for w, h in zip(req["width"][am], req["height"][am])]
        else:
            ac = [req_cmap((int(i) * 7) % 20) for i in req["id"][am]]
        ax.scatter(req["arrival"][am], np.full(am.sum(), -1.2), marker="|", s=110, c=ac,
                   linewidths=1.8, zorder=3)
        if lost.any():
            ax.plot(req["arrival"][lost], np.full(lost.sum(), -1.2), "x", color=MISS_COLOR, ms=6,
                    mew=1.6, zorder=4)

    # Node boundaries.
    for n in range(r.gpus_per_node, n_gpus, r.gpus_per_node):
        ax.axhline(n - 0.5, color="black", lw=1.2, zorder=1)

    ax.set_xlim(t0, t1)
    ax.set_ylim(n_gpus - 0.5, -1.9)
    step = 1 if n_gpus <= 16 else int(np.ceil(n_gpus / 16))
    ticks = list(range(0, n_gpus, step))
    ax.set_yticks([-1.2] + ticks)
    ax.set_yticklabels(["arrivals"] + ["GPU %d" % g for g in ticks])
    ax.grid(axis="y", visible=False)
    ax.set_xlabel("time since trace start (s)")
    span_all = "%.0f-%.0f s" % (min(t_first, 0), t_last)
    ax.set_title("%s\nwindow %.1f-%.1f s (%s; the run spans %s)%s"
                 % (r.title(), t0, t1, how, span_all,
                    ", faint lines: %d round starts" % n_round_lines if n_round_lines else ""),
                 loc="left")

    handles = []
    if args.color_by == "resolution":
        shown = sorted({(int(req["width"][row_of[int(seg["request_id"][i])]]),
                         int(req["height"][row_of[int(seg["request_id"][i])]]))
                        for i in sel if int(seg["request_id"][i]) in row_of} | set(r.res),
                       key=lambda x: x[0] * x[1])
        handles += [Patch(facecolor=res_color(*wh), label=res_name(*wh)) for wh in shown]
    if bverts:
        handles.append(Patch(facecolor="#dddddd", hatch="///", edgecolor="#555555", label="batched"))
    handles.append(Line2D([], [], color=MISS_COLOR, marker="x", ls="none", mew=2, ms=7,
                          label="deadline missed\n(x at finish)"))
    if lost.any():
        handles.append(Line2D([], [], color=MISS_COLOR, marker="x", ls="none", mew=1.6, ms=6,
                              label="never finished\n(x on arrival)"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.005, 1.0), frameon=False,
              title="resolution" if args.color_by == "resolution" else None)
    fig.tight_layout()
    fig.savefig(out, dpi=DPI)
    plt.close(fig)


# ---- latency CDFs and SAR bars ------------------------------------------------


def ecdf(lat, n_total):
    """Step-plot points of the CDF of lat over n_total requests (inf = never)."""
    x = np.sort(lat[np.isfinite(lat)])
    y = np.arange(1, len(x) + 1) / max(n_total, 1)
    return np.concatenate([[x[0] if len(x) else 0], x]), np.concatenate([[0], y])


def latency_xscale(ax, lats):
    fin = np.concatenate([l[np.isfinite(l)] for l in lats]) if lats else np.array([])
    if len(fin) and fin.min() > 0 and fin.max() / fin.min() > 20:
        ax.set_xscale("log")
        # Plain numbers (0.5, 1, 2, 5 s), not powers of ten.
        lo, hi = fin.min(), fin.max()
        ticks = [t for t in (0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)
                 if lo / 1.5 <= t <= hi * 1.5]
        ax.set_xticks(ticks)
        ax.set_xticklabels(["%g" % t for t in ticks])
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel("end-to-end latency (s, log scale)")
    else:
        ax.set_xlabel("end-to-end latency (s)")
        ax.set_xlim(left=0)


def plot_latency_cdf(r, out):
    fig, ax = plt.subplots(figsize=(10, 6))
    lats = []
    for wh in r.res:
        m = r.res_mask(wh)
        lat = r.latency[m]
        lats.append(lat)
        x, y = ecdf(lat, m.sum())
        c = res_color(*wh)
        slo = r.slo_base(wh)
        lab = "%s (n=%d" % (res_name(*wh), m.sum())
        lab += ", SLO %g s)" % round(slo, 2) if np.isfinite(slo) else ")"
        ax.step(x, y, where="post", color=c, lw=2, label=lab)
        if np.isfinite(slo):
            ax.axvline(slo, color=c, ls="--", lw=1.3, alpha=0.9)
            if abs(r.slo_scale - 1.0) > 1e-9:
                ax.axvline(slo * r.slo_scale, color=c, ls=":", lw=1.3, alpha=0.9)
    x, y = ecdf(r.latency, r.n)
    ax.step(x, y, where="post", color="black", lw=2.6, label="all (n=%d)" % r.n)
    latency_xscale(ax, lats)
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("fraction of requests finished")
    ax.set_title(r.title(), loc="left")
    handles, _ = ax.get_legend_handles_labels()
    handles.append(Line2D([], [], color="grey", ls="--", label="SLO at scale 1.0"))
    if abs(r.slo_scale - 1.0) > 1e-9:
        handles.append(Line2D([], [], color="grey", ls=":", label="deadline at scale %g" % r.slo_scale))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    fig.savefig(out, dpi=DPI)
    plt.close(fig)


def res_sar(r, wh):
    m = r.res_mask(wh)
    return float(r.req["met"][m].mean()) if m.any() else float("nan")


def bar_labels(ax, bars, values, fontsize=10):
    for b, v in zip(bars, values):
        if np.isfinite(v):
            ax.text(b.get_x() + b.get_width() / 2, b.get_height() + 1.2,
                    "%.0f" % v if v in (0, 100) else "%.1f" % v, ha="center",
                    va="bottom", fontsize=fontsize)


def plot_sar_bars(r, out):
    fig, ax = plt.subplots(figsize=(8.5, 5.5))
    names = [res_name(*wh) + "\n(n=%d)" % r.res_mask(wh).sum() for wh in r.res] + ["all\n(n=%d)" % r.n]
    vals = [100 * res_sar(r, wh) for wh in r.res] + [100 * r.sar]
    colors = [res_color(*wh) for wh in r.res] + ["#444444"]
    bars = ax.bar(range(len(vals)), vals, color=colors, width=0.65)
    bar_labels(ax, bars, vals, 11)
    ax.set_xticks(range(len(vals)))
    ax.set_xticklabels(names)
    ax.set_ylim(0, 108)
    ax.set_ylabel("SLO attainment (% of requests)")
    ax.set_xlabel("resolution")
    ax.grid(axis="x", visible=False)
    ax.set_title(r.title(), loc="left", fontsize=11.5)
    fig.tight_layout()
    fig.savefig(out, dpi=DPI)
    plt.close(fig)


def plot_compare_cdf(rs, labels, styles, out):
    res = sorted({wh for r in rs for wh in r.res}, key=lambda x: x[0] * x[1])
    panels = [None] + res
    ncol = min(3, len(panels))
    nrow = int(np.ceil(len(panels) / ncol))
    spare = nrow * ncol > len(panels)  # an empty panel slot takes the legend
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.7 * ncol + (0 if spare else 2.8), 3.9 * nrow),
                             squeeze=False, sharey=True)
    for k, wh in enumerate(panels):
        ax = axes[k // ncol][k % ncol]
        lats = []
        for r, lab, (c, ls, _) in zip(rs, labels, styles):
            if wh is None:
                lat, n = r.latency, r.n
            else:
                m = r.res_mask(wh)
                lat, n = r.latency[m], m.sum()
            if n == 0:
                continue
            lats.append(lat)
            x, y = ecdf(lat, n)
            ax.step(x, y, where="post", color=c, ls=ls, lw=2, label=lab)
        if wh is not None:
            slos = [r.slo_base(wh) for r in rs if r.res_mask(wh).any()]
            slos = [s for s in slos if np.isfinite(s)]
            if slos:
                ax.axvline(np.median(slos), color="black", ls="--", lw=1.2)
                ax.text(np.median(slos), 0.03, " SLO %.1f s" % np.median(slos), fontsize=10,
                        ha="left", va="bottom")
        latency_xscale(ax, lats)
        ax.set_ylim(0, 1.02)
        ax.set_title("all resolutions" if wh is None else res_name(*wh), fontsize=12.5)
        if k % ncol == 0:
            ax.set_ylabel("fraction of requests finished")
    for k in range(len(panels), nrow * ncol):
        axes[k // ncol][k % ncol].set_visible(False)
    handles, labs = axes[0][0].get_legend_handles_labels()
    handles.append(Line2D([], [], color="black", ls="--", label="SLO at scale 1.0"))
    if spare:
        k = len(panels)
        lax = axes[k // ncol][k % ncol]
        lax.set_visible(True)
        lax.axis("off")
        lax.legend(handles=handles, loc="center left", frameon=False, fontsize=11.5)
    else:
        fig.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 0.93), frameon=False)
    fig.suptitle("End-to-end latency CDF (%s; unfinished requests never arrive at 1)"
                 % common_context(rs), x=0.01, ha="left")
    fig.tight_layout()
    fig.savefig(out, dpi=DPI, bbox_inches="tight")
    plt.close(fig)


def common_context(rs):
    parts = []
    for what, vals, fmt in (("trace", {os.path.basename(r.trace) for r in rs}, "%s"),
                            ("GPUs", {r.n_gpus for r in rs}, "%d GPUs"),
                            ("scale", {r.slo_scale for r in rs}, "SLO scale %s")):
        if len(vals) == 1:
            v = next(iter(vals))
            parts.append(fmt % (fmt_scale(v) if what == "scale" else v))
    return ", ".join(parts) if parts else "%d runs" % len(rs)


def grouped_bars(ax, groups, series, values, colors, hatches=None, value_labels=True):
    """values[s][g]; one group of bars per group name."""
    n = max(len(series), 1)
    width = 0.8 / n
    x = np.arange(len(groups))
    for s, name in enumerate(series):
        bars = ax.bar(x - 0.4 + width * (s + 0.5), values[s], width * 0.92, color=colors[s],
                      hatch=hatches[s] if hatches else None, edgecolor="white", label=name)
        if value_labels and n <= 6:
            bar_labels(ax, bars, values[s], 9 if n > 3 else 10)
    ax.set_xticks(x)
    ax.set_xticklabels(groups)
    ax.set_ylim(0, 110)
    ax.grid(axis="x", visible=False)


def plot_compare_sar(rs, labels, styles, out):
    res = sorted({wh for r in rs for wh in r.res}, key=lambda x: x[0] * x[1])
    groups = [res_name(*wh) for wh in res] + ["all"]
    values = [[100 * res_sar(r, wh) for wh in res] + [100 * r.sar] for r in rs]
    fig, ax = plt.subplots(figsize=(min(15, max(8, 1.5 + len(groups) * (0.32 * len(rs) + 0.5))) + 2.5, 5.8))
    grouped_bars(ax, groups, labels, values, [c for c, _, _ in styles], [h for _, _, h in styles])
    ax.set_xlabel("resolution")
    ax.set_ylabel("SLO attainment (% of requests)")
    ax.set_title("SLO attainment per resolution (%s)" % common_context(rs), loc="left")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    fig.savefig(out, dpi=DPI)
    plt.close(fig)


# ---- sweep files ----------------------------------------------------------------

RES_COL = re.compile(r"^(?:sar|res_sar)[_-]?(\d+)(?:x(\d+))?$")


class Sweep:
    def __init__(self, path, f):
        self.path = path
        ds = f.get("sweep")
        if isinstance(ds, h5py.Group):  # tolerate a group holding the table
            cands = [v for v in ds.values() if isinstance(v, h5py.Dataset) and v.dtype.names]
            ds = cands[0] if cands else None
        if ds is None or not isinstance(ds, h5py.Dataset) or not ds.dtype.names:
            raise InputError("%s: a sweep file without a compound /sweep table" % path)
        t = ds[:]
        self.attrs = {k: f.attrs[k] for k in f.attrs}
        self.cols = {}
        for name in t.dtype.names:
            col = t[name]
            if col.dtype.kind in "SOU":
                col = np.array([_str(v) for v in col], dtype=object)
            self.cols[name] = col
        self.n = len(t)
        # Per-resolution SAR: columns sar_<W>[x<H>], or vector columns with the
        # resolutions as dataset attributes / per-row vectors.
        self.res_cols = {}
        for name in self.cols:
            m = RES_COL.match(name)
            if m and self.cols[name].ndim == 1:
                w = int(m.group(1))
                h = int(m.group(2)) if m.group(2) else w
                self.res_cols[(w, h)] = self.cols[name].astype(float)
        if not self.res_cols:
            self._res_from_vectors(ds)

    def _res_from_vectors(self, ds):
        c = self.cols
        sar = None
        if "res_sar" in c and c["res_sar"].ndim == 2:
            sar = c["res_sar"].astype(float)
        elif "res_met" in c and "res_n" in c and c["res_met"].ndim == 2:
            with np.errstate(invalid="ignore", divide="ignore"):
                sar = c["res_met"].astype(float) / c["res_n"].astype(float)
        if sar is None:
            return
        if "res_width" in c and c["res_width"].ndim == 2:
            ws, hs = c["res_width"][0], c["res_height"][0] if "res_height" in c else c["res_width"][0]
        elif "res_width" in ds.attrs:
            ws = ds.attrs["res_width"]
            hs = ds.attrs["res_height"] if "res_height" in ds.attrs else ws
        else:
            return
        for j, (w, h) in enumerate(zip(ws, hs)):
            if j < sar.shape[1] and w > 0:
                self.res_cols[(int(w), int(h))] = sar[:, j]

    def col(self, *names):
        for n in names:
            if n in self.cols and self.cols[n].ndim == 1:
                return n
        return None


def sweep_series(sw):
    """Series key per row: policy (plus its options column if that varies)."""
    pc = sw.col("policy")
    oc = sw.col("policy_options", "options", "variant")
    keys = []
    for i in range(sw.n):
        k = sw.cols[pc][i] if pc else "all"
        keys.append(k)
    if oc:
        by_pol = {}
        for i, k in enumerate(keys):
            by_pol.setdefault(k, set()).add(sw.cols[oc][i])
        keys = [k if len(by_pol[k]) == 1 else "%s %s" % (k, sw.cols[oc][i]) for i, k in enumerate(keys)]
    return np.array(keys, dtype=object)


def sweep_groups(sw):
    """Group key per row: mix (or trace file name), profile if it varies, n_gpus."""
    parts = []
    mc = sw.col("mix") or sw.col("trace") or sw.col("source")
    if mc:
        vals = sw.cols[mc]
        if mc == "trace" or (mc == "source" and any(str(v).endswith(".csv") for v in vals)):
            vals = np.array([os.path.splitext(os.path.basename(v))[0] for v in vals], dtype=object)
        parts.append(("%s" if mc == "mix" else "%s", vals))
    pc = sw.col("profile")
    if pc and len(set(sw.cols[pc])) > 1:
        parts.append(("%s", np.array([os.path.splitext(os.path.basename(v))[0] for v in sw.cols[pc]],
                                     dtype=object)))
    gc = sw.col("n_gpus")
    if gc:
        parts.append(("%d GPUs", sw.cols[gc]))
    keys = []
    for i in range(sw.n):
        keys.append(", ".join(fmt % vals[i] for fmt, vals in parts) if parts else "all")
    return np.array(keys, dtype=object)


def pick_values(all_vals, chosen, max_n):
    """The column values to show: the chosen one, or up to max_n spread evenly."""
    vals = np.unique(all_vals[np.isfinite(all_vals)])
    if chosen is not None:
        if not len(vals):
            return vals
        return vals[[int(np.argmin(np.abs(vals - chosen)))]]
    if len(vals) <= max_n:
        return vals
    idx = np.unique(np.round(np.linspace(0, len(vals) - 1, max_n)).astype(int))
    return vals[idx]


def series_order(keys):
    """Baselines in a fixed order, then others, tetriserve variants last."""
    pref = ["sp1", "sp2", "sp4", "sp8", "rssp", "edf"]

    def rank(k):
        base = k.split()[0]
        if base in pref:
            return (0, pref.index(base), k)
        if base == "tetriserve":
            return (2, 0, k)
        return (1, 0, k)

    return sorted(set(keys), key=rank)


def series_style_map(keys):
    out, seen = {}, {}
    for k in series_order(keys):
        base = k.split()[0]
        j = seen.get(base, 0)
        seen[base] = j + 1
        out[k] = (policy_color(base), LINESTYLES[j % len(LINESTYLES)], [None, "//", "..", "xx"][j % 4])
    return out


def plot_sweep_lines(sw, stem, outdir, xcol_names, xlabel, pcol_names, plabel, pfmt, chosen, suffix):
    xc = sw.col(*xcol_names)
    yc = sw.col("sar")
    if not xc or not yc:
        print("plot.py: %s: skipped %s_%s.png (no %s or sar column)"
              % (sw.path, stem, suffix, " / ".join(xcol_names)), file=sys.stderr)
        return None
    x = sw.cols[xc].astype(float)
    y = 100 * sw.cols[yc].astype(float)
    series = sweep_series(sw)
    groups = sweep_groups(sw)
    pc = sw.col(*pcol_names)
    pvals = pick_values(sw.cols[pc].astype(float), chosen, 3) if pc else np.array([np.nan])
    gkeys = sorted(set(groups))
    styles = series_style_map(series)
    nrow, ncol = len(gkeys), len(pvals)
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.8 * ncol + 2.6, 3.9 * nrow + 0.6),
                             squeeze=False, sharex=True, sharey=True)
    for gi, g in enumerate(gkeys):
        for pi, pv in enumerate(pvals):
            ax = axes[gi][pi]
            m = groups == g
            if pc:
                m &= np.isclose(sw.cols[pc].astype(float), pv)
            for s in series_order(series):
                ms = m & (series == s) & np.isfinite(y) & np.isfinite(x)
                if not ms.any():
                    continue
                xs = np.unique(x[ms])
                mean = np.array([np.mean(y[ms & (x == v)]) for v in xs])
                lo = np.array([np.min(y[ms & (x == v)]) for v in xs])
                hi = np.array([np.max(y[ms & (x == v)]) for v in xs])
                c, ls, _ = styles[s]
                ax.plot(xs, mean, color=c, ls=ls, lw=2, marker="o", ms=4.5, label=s)
                if (hi > lo).any():
                    ax.fill_between(xs, lo, hi, color=c, alpha=0.15, lw=0)
            ax.set_ylim(0, 102)
            xv = np.unique(x[np.isfinite(x)])
            if 1 < len(xv) <= 8:  # the grid's own values, not round numbers between them
                ax.set_xticks(xv)
                ax.set_xticklabels([fmt_scale(v) if xc == "slo_scale" else "%g" % v for v in xv])
            title = g
            if pc:
                title += ", " + (pfmt % fmt_scale(pv) if "%s" in pfmt else pfmt % pv)
            ax.set_title(title, fontsize=12)
            if gi == nrow - 1:
                ax.set_xlabel(xlabel)
            if pi == 0:
                ax.set_ylabel("SAR (% of requests)")
    handles, labs = [], []
    for row in axes:
        for ax in row:
            for h, l in zip(*ax.get_legend_handles_labels()):
                if l not in labs:
                    handles.append(h)
                    labs.append(l)
    order = [labs.index(k) for k in series_order(labs)]
    fig.legend([handles[i] for i in order], [labs[i] for i in order], loc="upper left",
               bbox_to_anchor=(1.0, 0.92), frameon=False, title="policy")
    seeds = sw.col("seed")
    ns = len(set(sw.cols[seeds])) if seeds else 1
    note = "mean over %d seeds, band: min-max" % ns if ns > 1 else "one seed"
    fig.suptitle("SLO attainment vs %s (%s; %s)" % (xlabel.split(" (")[0], os.path.basename(sw.path), note),
                 x=0.01, ha="left")
    fig.tight_layout()
    out = os.path.join(outdir, "%s_%s.png" % (stem, suffix))
    fig.savefig(out, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return out


def plot_sweep_res(sw, stem, outdir, args):
    if not sw.res_cols:
        print("plot.py: %s: skipped %s_sar_by_res.png (no per-resolution SAR columns)"
              % (sw.path, stem), file=sys.stderr)
        return None
    series = sweep_series(sw)
    groups = sweep_groups(sw)
    m_all = np.ones(sw.n, bool)
    point = []
    sc = sw.col("slo_scale")
    if sc:
        v = pick_values(sw.cols[sc].astype(float), args.slo_scale if args.slo_scale is not None else 1.0, 1)
        m_all &= np.isclose(sw.cols[sc].astype(float), v[0])
        point.append("SLO scale %s" % fmt_scale(v[0]))
    rc = sw.col("rate_per_min", "rate")
    if rc:
        vals = np.unique(sw.cols[rc].astype(float))
        chosen = args.rate if args.rate is not None else vals[len(vals) // 2]
        v = pick_values(sw.cols[rc].astype(float), chosen, 1)
        m_all &= np.isclose(sw.cols[rc].astype(float), v[0])
        point.append("%g requests/min" % v[0])
    res = sorted(sw.res_cols, key=lambda x: x[0] * x[1])
    gkeys = sorted(set(groups))
    skeys = series_order(series)
    styles = series_style_map(series)
    n_groups_x = len(res) + 1
    panel_w = min(14, max(7, 1.5 + n_groups_x * (0.3 * len(skeys) + 0.5)))
    ncol = 2 if len(gkeys) >= 4 and panel_w <= 8 else 1  # wide panels stack
    nrow = int(np.ceil(len(gkeys) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(panel_w * ncol + 2.0, 4.2 * nrow + 0.5),
                             squeeze=False, sharey=True)
    sar = sw.cols.get(sw.col("sar")) if sw.col("sar") else None
    for gi, g in enumerate(gkeys):
        ax = axes[gi // ncol][gi % ncol]
        m = m_all & (groups == g)
        names = [res_name(*wh) for wh in res] + (["all"] if sar is not None else [])
        vals = []
        for s in skeys:
            ms = m & (series == s)
            row = [100 * np.nanmean(sw.res_cols[wh][ms]) if ms.any() else np.nan for wh in res]
            if sar is not None:
                row.append(100 * np.nanmean(sar[ms].astype(float)) if ms.any() else np.nan)
            vals.append(row)
        grouped_bars(ax, names, skeys, vals, [styles[s][0] for s in skeys], [styles[s][2] for s in skeys])
        ax.set_title(g, fontsize=12)
        if gi // ncol == nrow - 1:
            ax.set_xlabel("resolution")
        if gi % ncol == 0:
            ax.set_ylabel("SAR (% of requests)")
    for k in range(len(gkeys), nrow * ncol):
        axes[k // ncol][k % ncol].set_visible(False)
    handles, labs = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labs, loc="upper left", bbox_to_anchor=(1.0, 0.92), frameon=False, title="policy")
    fig.suptitle("SLO attainment per resolution at %s (%s, mean over seeds)"
                 % (", ".join(point) or "all scenarios", os.path.basename(sw.path)), x=0.01, ha="left")
    fig.tight_layout()
    out = os.path.join(outdir, "%s_sar_by_res.png" % stem)
    fig.savefig(out, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return out


def plot_sweep(sw, stem, outdir, args):
    outs = []
    outs.append(plot_sweep_lines(sw, stem, outdir, ("slo_scale",), "SLO scale (x base SLO)",
                                 ("rate_per_min", "rate"), "rate", "%g req/min", args.rate, "sar_vs_slo"))
    outs.append(plot_sweep_lines(sw, stem, outdir, ("rate_per_min", "rate"), "arrival rate (requests/min)",
                                 ("slo_scale",), "SLO scale", "SLO scale %s", args.slo_scale, "sar_vs_rate"))
    outs.append(plot_sweep_res(sw, stem, outdir, args))
    return [o for o in outs if o]


# ---- main ----------------------------------------------------------------------------


def unique_stems(paths):
    stems = [os.path.splitext(os.path.basename(p))[0] for p in paths]
    out = []
    for i, s in enumerate(stems):
        out.append(s if stems.count(s) == 1 else "%s_%d" % (s, stems[:i + 1].count(s)))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(
        prog="plot.py", description="Plot tetriserve results and sweep files as PNGs.",
        epilog="See the module docstring (head of scripts/plot.py) for the figures produced.")
    ap.add_argument("files", nargs="+", metavar="F.h5", help="results files and/or sweep files")
    ap.add_argument("-o", "--out", required=True, metavar="DIR", help="output directory (created)")
    ap.add_argument("--window", metavar="T0:T1",
                    help="timeline window in seconds (either side may be empty), or 'all'; "
                         "default: the busiest --window-len seconds")
    ap.add_argument("--window-len", type=float, default=DEFAULT_WINDOW_S, metavar="S",
                    help="length of the default timeline window (default %(default)g s)")
    ap.add_argument("--color-by", choices=("resolution", "request"), default="resolution",
                    help="timeline block colours (default: resolution)")
    ap.add_argument("--no-labels", action="store_true", help="no request ids on timeline blocks")
    ap.add_argument("--slo-scale", type=float, metavar="X",
                    help="sweep: the SLO scale for SAR-vs-rate and per-resolution plots")
    ap.add_argument("--rate", type=float, metavar="R",
                    help="sweep: the arrival rate (requests/min) for SAR-vs-SLO and per-resolution plots")
    args = ap.parse_args(argv)
    if not args.window_len > 0:
        ap.error("--window-len must be > 0")
    try:
        parse_window(args.window)
        inputs = []
        for p in args.files:
            kind, f = open_input(p)
            with f:
                inputs.append((kind, p, Results(p, f) if kind == "results" else Sweep(p, f)))
    except InputError as e:
        print("plot.py: %s" % e, file=sys.stderr)
        return 1
    os.makedirs(args.out, exist_ok=True)
    stems = unique_stems([p for _, p, _ in inputs])
    written = []
    results = []
    for (kind, p, obj), stem in zip(inputs, stems):
        if kind == "results":
            results.append(obj)
            for suffix, fn in (("timeline", lambda o: plot_timeline(obj, o, args)),
                               ("latency_cdf", lambda o: plot_latency_cdf(obj, o)),
                               ("sar_by_res", lambda o: plot_sar_bars(obj, o))):
                out = os.path.join(args.out, "%s_%s.png" % (stem, suffix))
                fn(out)
                written.append(out)
        else:
            written += plot_sweep(obj, stem, args.out, args)
    if len(results) > 1:
        labels = series_labels(results)
        styles = series_styles(results)
        out = os.path.join(args.out, "compare_latency_cdf.png")
        plot_compare_cdf(results, labels, styles, out)
        written.append(out)
        out = os.path.join(args.out, "compare_sar_by_res.png")
        plot_compare_sar(results, labels, styles, out)
        written.append(out)
    for w in written:
        print(w)
    return 0


if __name__ == "__main__":
    sys.exit(main())
