#!/usr/bin/python3
"""Validate tetriserve results files against SPEC.md ("Results file", schema_version 1).

usage: /usr/bin/python3 scripts/check_results.py [--allow-incomplete] F.h5 [F.h5 ...]

Prints "ok: F (N requests, M segments)" per valid file; otherwise every violation
(the first 20 per file, then a count) and exits 1. Checked:
  - root attributes: present, with their exact HDF5 types and sane values;
    `complete` = 1 unless --allow-incomplete;
  - /requests, /segments, /segment_gpus, /rounds: exact field names, order and dtypes;
  - requests: unique ids >= 0, sizes multiples of 16, steps >= 1, deadline > arrival,
    rows in trace order (arrival, id), status 0 iff finish is a number, met ==
    (finish <= deadline) for finished (0 otherwise), start == first segment start;
  - segments: known request, GPU ids (segment_gpus[gpu_offset : gpu_offset+degree]) in
    0..n_gpus-1 and distinct, end >= start >= arrival; per request the segments cover
    steps 0..k-1 exactly once in order, each starting at or after the previous end,
    k == steps for finished requests (whose finish is >= the last end);
  - no GPU in two overlapping segments, except segments of one batch (same batch_id
    >= 0), which must have the same degree, GPUs, start and end, and distinct requests;
  - rounds: increasing round numbers, non-decreasing starts, counts in range; every
    segment round (>= 0) is a recorded round when /rounds is not empty;
  - /summary (required when complete = 1): every attribute recomputed from the rows
    (SAR, counts, latency mean and linear-interpolation percentiles, makespan = last
    segment end, GPU busy fraction with each batch counted once, per resolution).
Times are compared with an absolute tolerance of 1e-9 s.
"""
import argparse
import re
import sys

import h5py
import numpy as np

MAX_SHOWN = 20
TOL = 1e-9

REQ_FIELDS = [("id", "<i8"), ("width", "<i4"), ("height", "<i4"), ("steps", "<i4"),
              ("arrival", "<f8"), ("deadline", "<f8"), ("start", "<f8"), ("finish", "<f8"),
              ("met", "u1"), ("status", "i1")]
SEG_FIELDS = [("request_id", "<i8"), ("step_begin", "<i4"), ("n_steps", "<i4"),
              ("degree", "<i4"), ("gpu_offset", "<i8"), ("start", "<f8"), ("end", "<f8"),
              ("round", "<i8"), ("batch_id", "<i8")]
ROUND_FIELDS = [("round", "<i8"), ("start", "<f8"), ("n_pending", "<i4"),
                ("n_scheduled", "<i4"), ("gpus_busy", "<i4"), ("decide_us", "<f8")]

ROOT_ATTRS = {  # name -> "str" or numpy dtype
    "schema_version": "<i4", "tetriserve_version": "str", "mode": "str", "backend": "str",
    "policy": "str", "policy_options": "str", "trace": "str", "profile": "str",
    "command_line": "str", "n_gpus": "<i4", "gpus_per_node": "<i4", "slo_scale": "<f8",
    "round_s": "<f8", "seed": "<u8", "created": "str", "complete": "u1",
}
SUMMARY_ATTRS = {
    "n_requests": "<i8", "n_met": "<i8", "sar": "<f8", "latency_mean": "<f8",
    "latency_p50": "<f8", "latency_p90": "<f8", "latency_p99": "<f8",
    "gpu_busy_fraction": "<f8", "makespan": "<f8",
}
SUMMARY_OPTIONAL = {"n_finished": "<i8", "res_width": "<i4", "res_height": "<i4",
                    "res_n": "<i8", "res_met": "<i8"}
ISO8601 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})$")


class Report:
    def __init__(self, path):
        self.path = path
        self.shown = []
        self.count = 0

    def err(self, msg):
        self.count += 1
        if len(self.shown) < MAX_SHOWN:
            self.shown.append(msg)

    def rows(self, mask, fmt):
        """One violation per True entry of mask; fmt(i) describes row i."""
        idx = np.flatnonzero(mask)
        room = max(0, MAX_SHOWN - len(self.shown))
        for i in idx[:room]:
            self.shown.append(fmt(int(i)))
        self.count += len(idx)
        return len(idx)


def is_string_type(dt):
    return h5py.check_string_dtype(dt) is not None or dt.kind == "S"


def attr_value(attrs, name):
    v = attrs[name]
    if isinstance(v, bytes):
        v = v.decode("utf-8", "replace")
    return v


def check_attrs(rep, attrs, spec, where, required=True):
    """Type-check attributes; returns {name: value} of those present and well typed."""
    good = {}
    for name, want in spec.items():
        if name not in attrs:
            if required:
                rep.err(f"{where}: attribute {name} is missing")
            continue
        aid = attrs.get_id(name)
        dt = aid.dtype
        if want == "str":
            if not is_string_type(dt) or aid.shape not in ((), None):
                rep.err(f"{where}: attribute {name} should be a scalar string, is {dt} {aid.shape}")
                continue
        elif dt != np.dtype(want):
            rep.err(f"{where}: attribute {name} has type {dt.str}, expected {np.dtype(want).str}")
            continue
        good[name] = attr_value(attrs, name)
    return good


def check_dtype(rep, f, name, fields):
    if name not in f:
        rep.err(f"/{name} is missing")
        return None
    d = f[name]
    if not isinstance(d, h5py.Dataset) or d.ndim != 1:
        rep.err(f"/{name} should be a 1-D dataset")
        return None
    if fields is None:
        if d.dtype != np.dtype("<i4"):
            rep.err(f"/{name} has dtype {d.dtype.str}, expected <i4")
            return None
        return d[()]
    got = [] if d.dtype.names is None else list(d.dtype.names)
    want = [n for n, _ in fields]
    if got != want:
        rep.err(f"/{name} fields are {got}, expected {want}")
        return None
    bad = [f"{n} is {d.dtype[n].str} (expected {np.dtype(t).str})"
           for n, t in fields if d.dtype[n] != np.dtype(t)]
    if bad:
        rep.err(f"/{name}: " + ", ".join(bad))
        return None
    return d[()]


def group_first(keys_sorted):
    """Start flag of each run of equal keys in a sorted array."""
    first = np.ones(len(keys_sorted), bool)
    if len(keys_sorted) > 1:
        first[1:] = keys_sorted[1:] != keys_sorted[:-1]
    return first


def busy_gpu_seconds(seg):
    """GPU-seconds in segments, each batch (batch_id >= 0) counted once (its largest member)."""
    w = seg["degree"].astype(np.float64) * (seg["end"] - seg["start"])
    batched = seg["batch_id"] >= 0
    total = w[~batched].sum()
    if batched.any():
        b = seg["batch_id"][batched]
        wb = w[batched]
        o = np.argsort(b, kind="stable")
        starts = np.flatnonzero(group_first(b[o]))
        total += np.maximum.reduceat(wb[o], starts).sum()
    return float(total)


def close(a, b, rel=1e-9, abs_=1e-12):
    if np.isnan(a) or np.isnan(b):
        return bool(np.isnan(a) and np.isnan(b))
    return abs(a - b) <= abs_ + rel * max(abs(a), abs(b))


def check_file(path, allow_incomplete):
    rep = Report(path)
    n_req = n_seg = 0
    try:
        f = h5py.File(path, "r")
    except FileNotFoundError:
        rep.err("no such file")
        return rep, 0, 0
    except OSError as e:
        rep.err(f"cannot open as HDF5 ({e})")
        return rep, 0, 0
    with f:
        root = check_attrs(rep, f.attrs, ROOT_ATTRS, "/")
        if "schema_version" not in f.attrs:  # nothing else makes sense then
            rep.shown, rep.count = ["not a tetriserve results file (no schema_version attribute)"], 1
            return rep, 0, 0
        if root.get("schema_version", 1) != 1:
            rep.err(f"/: schema_version is {root['schema_version']}, expected 1")
        if "mode" in root and root["mode"] not in ("simulate", "run"):
            rep.err(f"/: mode is {root['mode']!r}, expected 'simulate' or 'run'")
        if "backend" in root and root["backend"] not in ("sim", "emu", "cpu", "cuda"):
            rep.err(f"/: backend is {root['backend']!r}, expected sim, emu, cpu or cuda")
        for k in ("tetriserve_version", "policy"):
            if k in root and not root[k]:
                rep.err(f"/: attribute {k} is empty")
        if "created" in root and not ISO8601.match(root["created"]):
            rep.err(f"/: created {root['created']!r} is not an ISO 8601 timestamp")
        n_gpus = int(root.get("n_gpus", 0))
        if "n_gpus" in root and n_gpus < 1:
            rep.err(f"/: n_gpus is {n_gpus}, expected >= 1")
        if "gpus_per_node" in root and root["gpus_per_node"] < 1:
            rep.err(f"/: gpus_per_node is {root['gpus_per_node']}, expected >= 1")
        if "slo_scale" in root and not (np.isfinite(root["slo_scale"]) and root["slo_scale"] > 0):
            rep.err(f"/: slo_scale is {root['slo_scale']}, expected a positive number")
        if "round_s" in root and not (np.isfinite(root["round_s"]) and root["round_s"] >= 0):
            rep.err(f"/: round_s is {root['round_s']}, expected >= 0")
        complete = int(root.get("complete", 0))
        if "complete" in root and complete not in (0, 1):
            rep.err(f"/: complete is {complete}, expected 0 or 1")
        if complete == 0 and not allow_incomplete:
            rep.err("/: complete = 0: the run stopped early (use --allow-incomplete to check "
                    "what it recorded)")

        req = check_dtype(rep, f, "requests", REQ_FIELDS)
        seg = check_dtype(rep, f, "segments", SEG_FIELDS)
        gpus = check_dtype(rep, f, "segment_gpus", None)
        rounds = check_dtype(rep, f, "rounds", ROUND_FIELDS)
        n_req = 0 if req is None else len(req)
        n_seg = 0 if seg is None else len(seg)
        if req is not None:
            check_requests(rep, req)
        if seg is not None and gpus is not None and req is not None:
            check_segments(rep, req, seg, gpus, n_gpus)
        if rounds is not None:
            check_rounds(rep, rounds, seg, n_gpus)
        if "summary" in f:
            if req is not None and seg is not None:
                check_summary(rep, f["summary"], req, seg, n_gpus)
        elif complete == 1:
            rep.err("/summary is missing although complete = 1")
    return rep, n_req, n_seg


def check_requests(rep, req):
    n = len(req)
    if n == 0:
        return
    rid, w, h, steps = req["id"], req["width"], req["height"], req["steps"]
    arr, dl, st, fin = req["arrival"], req["deadline"], req["start"], req["finish"]
    met, status = req["met"], req["status"]
    rep.rows(rid < 0, lambda i: f"/requests[{i}]: id {rid[i]} < 0")
    srt = np.sort(rid)
    dup = np.flatnonzero(srt[1:] == srt[:-1])
    for k in dup[:MAX_SHOWN]:
        rep.err(f"/requests: id {srt[k]} appears more than once")
    rep.count += max(0, len(dup) - MAX_SHOWN)
    rep.rows((w <= 0) | (w % 16 != 0) | (h <= 0) | (h % 16 != 0),
             lambda i: f"/requests[{i}] (id {rid[i]}): size {w[i]}x{h[i]} is not positive "
                       "multiples of 16")
    rep.rows(steps < 1, lambda i: f"/requests[{i}] (id {rid[i]}): steps {steps[i]} < 1")
    rep.rows(~np.isfinite(arr) | (arr < 0),
             lambda i: f"/requests[{i}] (id {rid[i]}): arrival {arr[i]} is not a number >= 0")
    rep.rows(~np.isfinite(dl) | ~(dl > arr),
             lambda i: f"/requests[{i}] (id {rid[i]}): deadline {dl[i]} is not after arrival "
                       f"{arr[i]}")
    if n > 1:
        bad = (arr[1:] < arr[:-1]) | ((arr[1:] == arr[:-1]) & (rid[1:] <= rid[:-1]))
        rep.rows(bad, lambda i: f"/requests[{i + 1}] (id {rid[i + 1]}): out of trace order "
                                f"(arrival, id) after id {rid[i]}")
    rep.rows((status < 0) | (status > 2),
             lambda i: f"/requests[{i}] (id {rid[i]}): status {status[i]} not in 0, 1, 2")
    done = ~np.isnan(fin)
    rep.rows(done != (status == 0),
             lambda i: f"/requests[{i}] (id {rid[i]}): status {status[i]} but finish {fin[i]} "
                       "(status 0 iff finish is a number)")
    rep.rows(np.isinf(fin) | np.isinf(st),
             lambda i: f"/requests[{i}] (id {rid[i]}): infinite start/finish")
    rep.rows(done & (met != (fin <= dl)),
             lambda i: f"/requests[{i}] (id {rid[i]}): met {met[i]} but finish {fin[i]} and "
                       f"deadline {dl[i]}")
    rep.rows(~done & (met != 0),
             lambda i: f"/requests[{i}] (id {rid[i]}): met {met[i]} although not finished")
    rep.rows(done & np.isnan(st),
             lambda i: f"/requests[{i}] (id {rid[i]}): finished but start is NaN")
    rep.rows(done & ~np.isnan(st) & (fin < st - TOL),
             lambda i: f"/requests[{i}] (id {rid[i]}): finish {fin[i]} before start {st[i]}")
    rep.rows(~np.isnan(st) & (st < arr - TOL),
             lambda i: f"/requests[{i}] (id {rid[i]}): start {st[i]} before arrival {arr[i]}")


def check_segments(rep, req, seg, gpus, n_gpus):
    n = len(seg)
    rid = req["id"]
    steps = req["steps"]
    done = ~np.isnan(req["finish"])
    # Requests having no segments.
    has_seg = np.zeros(len(req), bool)
    if n:
        if len(rid):
            order_ids = np.argsort(rid, kind="stable")
            pos = np.minimum(np.searchsorted(rid[order_ids], seg["request_id"]), len(rid) - 1)
            known = rid[order_ids][pos] == seg["request_id"]
            ridx = np.where(known, order_ids[pos], -1)
        else:
            known = np.zeros(n, bool)
            ridx = np.full(n, -1)
        s_rid, sb, ns = seg["request_id"], seg["step_begin"], seg["n_steps"]
        deg, off, s0, s1 = seg["degree"], seg["gpu_offset"], seg["start"], seg["end"]
        rnd, bid = seg["round"], seg["batch_id"]
        rep.rows(~known, lambda i: f"/segments[{i}]: request_id {s_rid[i]} is not in /requests")
        rep.rows(sb < 0, lambda i: f"/segments[{i}]: step_begin {sb[i]} < 0")
        rep.rows(ns < 1, lambda i: f"/segments[{i}]: n_steps {ns[i]} < 1")
        rep.rows((deg < 1) | (deg > n_gpus),
                 lambda i: f"/segments[{i}]: degree {deg[i]} not in 1..n_gpus ({n_gpus})")
        okoff = (off >= 0) & (deg >= 1) & (off + np.maximum(deg, 0) <= len(gpus))
        rep.rows(~okoff, lambda i: f"/segments[{i}]: GPUs segment_gpus[{off[i]}:{off[i] + deg[i]}]"
                                   f" out of range (length {len(gpus)})")
        rep.rows(~np.isfinite(s0) | ~np.isfinite(s1) | (s1 < s0) | (s0 < 0),
                 lambda i: f"/segments[{i}]: bad times start {s0[i]} end {s1[i]}")
        arr_of = np.where(known, req["arrival"][np.maximum(ridx, 0)], -np.inf)
        rep.rows(known & (s0 < arr_of - TOL),
                 lambda i: f"/segments[{i}]: request {s_rid[i]} starts at {s0[i]} before its "
                           f"arrival {arr_of[i]}")
        rep.rows(rnd < -1, lambda i: f"/segments[{i}]: round {rnd[i]} < -1")
        rep.rows(bid < -1, lambda i: f"/segments[{i}]: batch_id {bid[i]} < -1")

        # Coverage: per request, sorted by step_begin, contiguous from 0.
        ok = known & (ns >= 1) & (sb >= 0)
        idx = np.flatnonzero(ok)
        o = idx[np.lexsort((sb[idx], ridx[idx]))]
        r_o = ridx[o]
        first = group_first(r_o)
        last = np.ones(len(o), bool)
        if len(o) > 1:
            last[:-1] = r_o[1:] != r_o[:-1]
        rep.rows(first & (sb[o] != 0),
                 lambda k: f"/segments[{o[k]}]: request {s_rid[o[k]]}'s first segment begins at "
                           f"step {sb[o[k]]}, not 0")
        if len(o) > 1:
            same = ~first[1:]
            a, b = o[:-1], o[1:]
            rep.rows(same & (sb[b] != sb[a] + ns[a]),
                     lambda k: f"/segments[{b[k]}]: request {s_rid[b[k]]} step_begin {sb[b[k]]},"
                               f" expected {sb[a[k]] + ns[a[k]]} after /segments[{a[k]}]")
            rep.rows(same & (s0[b] < s1[a] - TOL),
                     lambda k: f"/segments[{b[k]}]: request {s_rid[b[k]]} starts at {s0[b[k]]} "
                               f"before its previous segment /segments[{a[k]}] ends ({s1[a[k]]})")
        covered = np.zeros(len(req), np.int64)
        lastend = np.full(len(req), np.nan)
        firststart = np.full(len(req), np.nan)
        covered[r_o[last]] = sb[o[last]].astype(np.int64) + ns[o[last]]
        lastend[r_o[last]] = s1[o[last]]
        firststart[r_o[first]] = s0[o[first]]
        has_seg[r_o] = True
        rep.rows(has_seg & (covered > steps),
                 lambda i: f"/requests[{i}] (id {rid[i]}): segments cover {covered[i]} steps of "
                           f"{steps[i]}")
        rep.rows(has_seg & done & (covered < steps),
                 lambda i: f"/requests[{i}] (id {rid[i]}): finished but segments cover only "
                           f"{covered[i]} of {steps[i]} steps")
        fin = req["finish"]
        rep.rows(has_seg & done & (fin < lastend - TOL),
                 lambda i: f"/requests[{i}] (id {rid[i]}): finish {fin[i]} before its last "
                           f"segment ends ({lastend[i]})")
        st = req["start"]
        rep.rows(has_seg & ~(np.abs(st - firststart) <= TOL),
                 lambda i: f"/requests[{i}] (id {rid[i]}): start {st[i]} but first segment "
                           f"starts at {firststart[i]}")

        check_gpus(rep, seg, gpus, okoff & (deg >= 1), n_gpus, ridx)
    rep.rows(~has_seg & done,
             lambda i: f"/requests[{i}] (id {rid[i]}): finished without any segment")
    rep.rows(~has_seg & ~np.isnan(req["start"]),
             lambda i: f"/requests[{i}] (id {rid[i]}): start {req['start'][i]} but no segment")


def check_gpus(rep, seg, gpus, valid, n_gpus, ridx):
    rep.rows((gpus < 0) | (gpus >= n_gpus),
             lambda i: f"/segment_gpus[{i}]: GPU {gpus[i]} not in 0..{n_gpus - 1}")
    vi = np.flatnonzero(valid)
    if len(vi) == 0:
        return
    deg = seg["degree"][vi].astype(np.int64)
    total = int(deg.sum())
    sid = np.repeat(vi, deg)
    within = np.arange(total) - np.repeat(np.cumsum(deg) - deg, deg)
    g = gpus[seg["gpu_offset"][sid] + within].astype(np.int64)
    # Distinct GPUs within a segment.
    o = np.lexsort((g, sid))
    dup = (sid[o][1:] == sid[o][:-1]) & (g[o][1:] == g[o][:-1])
    rep.rows(dup, lambda k: f"/segments[{sid[o][k]}]: GPU {g[o][k]} listed twice")

    s0 = seg["start"][sid]
    s1 = seg["end"][sid]
    b = seg["batch_id"][sid]
    # Batch members agree on degree, start, end and GPU set, and are distinct requests.
    bi = np.flatnonzero(seg["batch_id"] >= 0)
    if len(bi):
        ob = bi[np.argsort(seg["batch_id"][bi], kind="stable")]
        bfirst = group_first(seg["batch_id"][ob])
        head = ob[np.maximum.accumulate(np.where(bfirst, np.arange(len(ob)), 0))]
        degb = seg["degree"]
        bad = (degb[ob] != degb[head]) | (np.abs(seg["start"][ob] - seg["start"][head]) > TOL) | \
              (np.abs(seg["end"][ob] - seg["end"][head]) > TOL)
        rep.rows(bad, lambda k: f"/segments[{ob[k]}]: batch {seg['batch_id'][ob[k]]} member "
                                f"differs in degree/start/end from /segments[{head[k]}]")
        diff_off = ~bad & (seg["gpu_offset"][ob] != seg["gpu_offset"][head]) & \
            valid[ob] & valid[head]
        for k in np.flatnonzero(diff_off):
            a, h = ob[k], head[k]
            ga = np.sort(gpus[seg["gpu_offset"][a]:seg["gpu_offset"][a] + degb[a]])
            gh = np.sort(gpus[seg["gpu_offset"][h]:seg["gpu_offset"][h] + degb[h]])
            if not np.array_equal(ga, gh):
                rep.err(f"/segments[{a}]: batch {seg['batch_id'][a]} member runs on GPUs "
                        f"{ga.tolist()}, /segments[{h}] on {gh.tolist()}")
        rb = ridx[ob]
        o2 = np.lexsort((rb, seg["batch_id"][ob]))
        sb_, rb_ = seg["batch_id"][ob][o2], rb[o2]
        dupr = (sb_[1:] == sb_[:-1]) & (rb_[1:] == rb_[:-1]) & (rb_[1:] >= 0)
        rep.rows(dupr, lambda k: f"/segments: batch {sb_[k]} holds request "
                                 f"{seg['request_id'][ob[o2[k]]]} twice")

    # Collapse each batch's rows on a GPU into one interval, then no overlap per GPU.
    isb = b >= 0
    gs, ss, es, ids = [g[~isb]], [s0[~isb]], [s1[~isb]], [sid[~isb]]
    if isb.any():
        gb, bb, sb0, sb1, sidb = g[isb], b[isb], s0[isb], s1[isb], sid[isb]
        ob = np.lexsort((bb, gb))
        key_first = np.ones(len(ob), bool)
        key_first[1:] = (gb[ob][1:] != gb[ob][:-1]) | (bb[ob][1:] != bb[ob][:-1])
        st_idx = np.flatnonzero(key_first)
        gs.append(gb[ob][st_idx])
        ss.append(np.minimum.reduceat(sb0[ob], st_idx))
        es.append(np.maximum.reduceat(sb1[ob], st_idx))
        ids.append(sidb[ob][st_idx])
    G, S, E, I = (np.concatenate(x) for x in (gs, ss, es, ids))
    o = np.lexsort((E, S, G))
    G, S, E, I = G[o], S[o], E[o], I[o]
    if len(G) > 1:
        bad = (G[1:] == G[:-1]) & (S[1:] < E[:-1] - TOL)
        rep.rows(bad, lambda k: f"GPU {G[k]}: /segments[{I[k]}] [{S[k]}, {E[k]}) and "
                                f"/segments[{I[k + 1]}] [{S[k + 1]}, {E[k + 1]}) overlap")


def check_rounds(rep, rounds, seg, n_gpus):
    n = len(rounds)
    if n == 0:
        return
    r, st = rounds["round"], rounds["start"]
    npd, nsc, gb, dus = (rounds["n_pending"], rounds["n_scheduled"], rounds["gpus_busy"],
                         rounds["decide_us"])
    rep.rows(r < 0, lambda i: f"/rounds[{i}]: round {r[i]} < 0")
    rep.rows(~np.isfinite(st) | (st < 0), lambda i: f"/rounds[{i}]: start {st[i]} is not >= 0")
    if n > 1:
        rep.rows(r[1:] <= r[:-1], lambda i: f"/rounds[{i + 1}]: round {r[i + 1]} after {r[i]}")
        rep.rows(st[1:] < st[:-1], lambda i: f"/rounds[{i + 1}]: start {st[i + 1]} before the "
                                             f"previous round's {st[i]}")
    rep.rows((npd < 0) | (nsc < 0), lambda i: f"/rounds[{i}]: negative n_pending/n_scheduled")
    rep.rows((gb < 0) | (gb > n_gpus), lambda i: f"/rounds[{i}]: gpus_busy {gb[i]} not in "
                                                 f"0..{n_gpus}")
    rep.rows(~np.isfinite(dus) | (dus < 0), lambda i: f"/rounds[{i}]: decide_us {dus[i]} < 0")
    if seg is not None and len(seg):
        sr = seg["round"]
        known = np.isin(sr, r)
        rep.rows((sr >= 0) & ~known,
                 lambda i: f"/segments[{i}]: round {sr[i]} is not in /rounds")


def check_summary(rep, g, req, seg, n_gpus):
    if not isinstance(g, h5py.Group):
        rep.err("/summary should be a group")
        return
    got = check_attrs(rep, g.attrs, SUMMARY_ATTRS, "/summary")
    got.update(check_attrs(rep, g.attrs, SUMMARY_OPTIONAL, "/summary", required=False))
    n = len(req)
    done = (req["status"] == 0) & ~np.isnan(req["finish"])
    met = done & (req["met"] != 0)
    lat = np.sort(req["finish"][done] - req["arrival"][done])
    makespan = float(seg["end"].max()) if len(seg) else 0.0
    busy = busy_gpu_seconds(seg) / (n_gpus * makespan) if makespan > 0 and n_gpus > 0 else 0.0
    want = {
        "n_requests": n, "n_met": int(met.sum()), "n_finished": int(done.sum()),
        "sar": met.sum() / n if n else 0.0,
        "latency_mean": lat.mean() if len(lat) else np.nan,
        "latency_p50": np.percentile(lat, 50) if len(lat) else np.nan,
        "latency_p90": np.percentile(lat, 90) if len(lat) else np.nan,
        "latency_p99": np.percentile(lat, 99) if len(lat) else np.nan,
        "makespan": makespan, "gpu_busy_fraction": busy,
    }
    for k, v in want.items():
        if k not in got:
            continue
        if k.startswith("n_"):
            if int(got[k]) != v:
                rep.err(f"/summary: {k} is {got[k]}, recomputed {v}")
        elif not close(float(got[k]), float(v)):
            rep.err(f"/summary: {k} is {got[k]!r}, recomputed {v!r}")
    res = [k for k in ("res_width", "res_height", "res_n", "res_met") if k in got]
    if res and len(res) != 4:
        rep.err("/summary: res_width, res_height, res_n, res_met must come together")
    elif res:
        arrs = [np.atleast_1d(np.asarray(got[k])) for k in res]
        if len({a.shape for a in arrs}) != 1 or arrs[0].ndim != 1:
            rep.err("/summary: res_* attributes differ in shape")
            return
        # Recompute per resolution, in order of first appearance.
        key = req["width"].astype(np.int64) << 32 | req["height"].astype(np.int64)
        uniq, first_idx, inv = np.unique(key, return_index=True, return_inverse=True)
        order = np.argsort(first_idx, kind="stable")[:32]
        cnt = np.bincount(inv, minlength=len(uniq))
        mcnt = np.bincount(inv, weights=met.astype(np.float64), minlength=len(uniq)).astype(np.int64)
        w_w = (uniq[order] >> 32).astype(np.int64)
        w_h = (uniq[order] & 0xFFFFFFFF).astype(np.int64)
        for name, a, b in (("res_width", arrs[0], w_w), ("res_height", arrs[1], w_h),
                           ("res_n", arrs[2], cnt[order]), ("res_met", arrs[3], mcnt[order])):
            if a.shape != b.shape or not np.array_equal(a.astype(np.int64), b):
                rep.err(f"/summary: {name} is {a.tolist()}, recomputed {b.tolist()}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="+", metavar="F.h5")
    ap.add_argument("--allow-incomplete", action="store_true",
                    help="accept files with complete = 0 (a run that stopped early)")
    args = ap.parse_args(argv)
    failed = 0
    for path in args.files:
        rep, n_req, n_seg = check_file(path, args.allow_incomplete)
        if rep.count == 0:
            print(f"ok: {path} ({n_req} requests, {n_seg} segments)")
            continue
        failed += 1
        for msg in rep.shown:
            print(f"{path}: {msg}")
        if rep.count > len(rep.shown):
            print(f"{path}: ... and {rep.count - len(rep.shown)} more")
        print(f"FAIL: {path}: {rep.count} violation{'s' if rep.count != 1 else ''}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
