/* ts_export.c - the `export` verb: a results file (SPEC.md schema 1) as a
 * Chrome trace event JSON file ("JSON Object Format") that ui.perfetto.dev
 * and chrome://tracing open.
 *
 * Layout of the trace (the contract users see, also in --help):
 * - one process per node ("node N", pid N), one thread per GPU ("GPU <id>",
 *   tid = GPU id, sorted by id); one complete event ("X") per segment per GPU
 *   it ran on, named "req 17 (1024x1024, k=2)";
 * - a process "cluster" (pid = number of nodes) with a thread "requests"
 *   (instant events: arrivals, and deadline misses at the deadline), a
 *   thread "rounds" (one slice per scheduling round, when /rounds has rows)
 *   and the counters "GPUs busy" and "requests waiting" (arrived, first step
 *   not started).
 * Times: ts and dur in microseconds. Segment bounds are rounded to whole
 * nanoseconds first and dur is computed from the rounded bounds, so slices
 * that touch in the file touch exactly in the trace (viewers would otherwise
 * see 1 ns overlaps and mis-nest them).
 *
 * The whole file is read into memory (a few tens of MB for 200k segments) but
 * the JSON is streamed through a fixed buffer with hand-rolled number
 * formatting: printf on ~10 numbers per event is the bottleneck otherwise. */
#define _DEFAULT_SOURCE /* getopt_long */
#include <errno.h>
#include <getopt.h>
#include <hdf5.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ts_cmd.h"
#include "ts_log.h"
#include "ts_util.h"

/* ---- buffered JSON writer ---- */

#define TS_OUT_BUF (1 << 16)

typedef struct TsOut {
    FILE *fp;
    size_t n;
    int failed; /* a write failed (errno kept in err_no) */
    int err_no;
    char buf[TS_OUT_BUF];
} TsOut;

static void ts_out_flush(TsOut *o) {
    if (o->n && !o->failed && fwrite(o->buf, 1, o->n, o->fp) != o->n) {
        o->failed = 1;
        o->err_no = errno;
    }
    o->n = 0;
}

static void ts_out_mem(TsOut *o, const char *s, size_t n) {
    if (o->n + n > TS_OUT_BUF) ts_out_flush(o);
    if (n > TS_OUT_BUF) {
        if (!o->failed && fwrite(s, 1, n, o->fp) != n) {
            o->failed = 1;
            o->err_no = errno;
        }
        return;
    }
    memcpy(o->buf + o->n, s, n);
    o->n += n;
}

static void ts_out_s(TsOut *o, const char *s) { ts_out_mem(o, s, strlen(s)); }

static void ts_out_c(TsOut *o, char c) {
    if (o->n + 1 > TS_OUT_BUF) ts_out_flush(o);
    o->buf[o->n++] = c;
}

static void ts_out_i64(TsOut *o, int64_t v) {
    char tmp[24];
    int i = (int)sizeof tmp;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        tmp[--i] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0) tmp[--i] = '-';
    ts_out_mem(o, tmp + i, sizeof tmp - (size_t)i);
}

/* A fixed-point number v / 10^decimals, e.g. (123456, 3) -> "123.456". */
static void ts_out_fixed(TsOut *o, int64_t v, int decimals) {
    int64_t scale = 1;
    for (int i = 0; i < decimals; i++) scale *= 10;
    if (v < 0) {
        ts_out_c(o, '-');
        v = -v;
    }
    ts_out_i64(o, v / scale);
    if (decimals > 0) {
        char tmp[20];
        int64_t r = v % scale;
        for (int i = decimals - 1; i >= 0; i--) {
            tmp[i] = (char)('0' + r % 10);
            r /= 10;
        }
        ts_out_c(o, '.');
        ts_out_mem(o, tmp, (size_t)decimals);
    }
}

/* Nanoseconds as microseconds ("ts"/"dur" fields). */
static void ts_out_us(TsOut *o, int64_t ns) { ts_out_fixed(o, ns, 3); }

/* Seconds with microsecond resolution, or null if not finite (JSON has no
 * NaN: unfinished requests have finish = NaN). */
static void ts_out_sec(TsOut *o, double s) {
    if (!isfinite(s) || fabs(s) > 9e12)
        ts_out_s(o, "null");
    else
        ts_out_fixed(o, llround(s * 1e6), 6);
}

/* Any other double (attributes): %.17g round-trips; null if not finite. */
static void ts_out_dbl(TsOut *o, double v) {
    if (!isfinite(v)) {
        ts_out_s(o, "null");
        return;
    }
    char tmp[40];
    int n = snprintf(tmp, sizeof tmp, "%.17g", v);
    ts_out_mem(o, tmp, (size_t)n);
}

/* Length of the valid UTF-8 sequence at s (1..4), 0 if invalid. */
static int ts_utf8_len(const unsigned char *s) {
    unsigned c = s[0];
    int n;
    unsigned min;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) n = 2, min = 0x80;
    else if ((c & 0xF0) == 0xE0) n = 3, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4) n = 4, min = 0x10000;
    else return 0;
    unsigned cp = c & (0x3Fu >> (n - 1));
    for (int i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3Fu);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return n;
}

/* A JSON string literal: quotes, backslashes and control characters escaped;
 * invalid UTF-8 bytes become U+FFFD so that the output always parses. */
static void ts_out_jstr(TsOut *o, const char *str) {
    const unsigned char *s = (const unsigned char *)(str ? str : "");
    ts_out_c(o, '"');
    while (*s) {
        unsigned c = *s;
        if (c == '"' || c == '\\') {
            ts_out_c(o, '\\');
            ts_out_c(o, (char)c);
            s++;
        } else if (c < 0x20 || c == 0x7F) {
            char tmp[8];
            const char *esc = c == '\n' ? "\\n" : c == '\t' ? "\\t" : c == '\r' ? "\\r" : NULL;
            if (!esc) {
                snprintf(tmp, sizeof tmp, "\\u%04x", c);
                esc = tmp;
            }
            ts_out_s(o, esc);
            s++;
        } else if (c < 0x80) {
            ts_out_c(o, (char)c);
            s++;
        } else {
            int n = ts_utf8_len(s);
            if (n == 0) {
                ts_out_s(o, "\\ufffd");
                s++;
            } else {
                ts_out_mem(o, (const char *)s, (size_t)n);
                s += n;
            }
        }
    }
    ts_out_c(o, '"');
}

/* ---- reading the results file ---- */

typedef struct TsIdIndex {
    int64_t id, row;
} TsIdIndex;

typedef struct TsExpFile {
    const char *path;
    hid_t file;
    int32_t n_gpus, gpus_per_node;
    TsRequestRec *req;
    int64_t n_req;
    TsIdIndex *by_id; /* [n_req] sorted by id */
    TsSegment *seg;
    int64_t n_seg;
    int32_t *gpus;
    int64_t n_gpus_rows;
    TsRoundRec *rounds;
    int64_t n_rounds;
    double round_s;
} TsExpFile;

static herr_t ts_exp_walk_cb(unsigned n, const H5E_error2_t *e, void *data) {
    (void)n;
    if (e->desc && e->desc[0]) snprintf((char *)data, 200, "%s", e->desc);
    return 0;
}

/* The innermost HDF5 error message (for "...: <why>"), "" if none. */
static void ts_exp_h5_why(char *why) {
    why[0] = '\0';
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, ts_exp_walk_cb, why);
}

static hid_t ts_exp_compound(size_t size, const char *const *names, const size_t *offs,
                             const hid_t *types, int n) {
    hid_t t = H5Tcreate(H5T_COMPOUND, size);
    if (t < 0) return t;
    for (int i = 0; i < n; i++)
        if (H5Tinsert(t, names[i], offs[i], types[i]) < 0) {
            H5Tclose(t);
            return H5I_INVALID_HID;
        }
    return t;
}

static hid_t ts_exp_req_type(void) {
    static const char *const names[] = {"id",       "width", "height", "steps", "arrival",
                                        "deadline", "start", "finish", "met",   "status"};
    const size_t offs[] = {
        offsetof(TsRequestRec, id),      offsetof(TsRequestRec, width),
        offsetof(TsRequestRec, height),  offsetof(TsRequestRec, steps),
        offsetof(TsRequestRec, arrival), offsetof(TsRequestRec, deadline),
        offsetof(TsRequestRec, start),   offsetof(TsRequestRec, finish),
        offsetof(TsRequestRec, met),     offsetof(TsRequestRec, status),
    };
    const hid_t types[] = {H5T_NATIVE_INT64,  H5T_NATIVE_INT32,  H5T_NATIVE_INT32,
                           H5T_NATIVE_INT32,  H5T_NATIVE_DOUBLE, H5T_NATIVE_DOUBLE,
                           H5T_NATIVE_DOUBLE, H5T_NATIVE_DOUBLE, H5T_NATIVE_UINT8,
                           H5T_NATIVE_INT8};
    return ts_exp_compound(sizeof(TsRequestRec), names, offs, types, 10);
}

static hid_t ts_exp_seg_type(void) {
    static const char *const names[] = {"request_id", "step_begin", "n_steps",
                                        "degree",     "gpu_offset", "start",
                                        "end",        "round",      "batch_id"};
    const size_t offs[] = {
        offsetof(TsSegment, request_id), offsetof(TsSegment, step_begin),
        offsetof(TsSegment, n_steps),    offsetof(TsSegment, degree),
        offsetof(TsSegment, gpu_offset), offsetof(TsSegment, start),
        offsetof(TsSegment, end),        offsetof(TsSegment, round),
        offsetof(TsSegment, batch_id),
    };
    const hid_t types[] = {H5T_NATIVE_INT64,  H5T_NATIVE_INT32,  H5T_NATIVE_INT32,
                           H5T_NATIVE_INT32,  H5T_NATIVE_INT64,  H5T_NATIVE_DOUBLE,
                           H5T_NATIVE_DOUBLE, H5T_NATIVE_INT64,  H5T_NATIVE_INT64};
    return ts_exp_compound(sizeof(TsSegment), names, offs, types, 9);
}

static hid_t ts_exp_round_type(void) {
    static const char *const names[] = {"round",       "start",     "n_pending",
                                        "n_scheduled", "gpus_busy", "decide_us"};
    const size_t offs[] = {
        offsetof(TsRoundRec, round),       offsetof(TsRoundRec, start),
        offsetof(TsRoundRec, n_pending),   offsetof(TsRoundRec, n_scheduled),
        offsetof(TsRoundRec, gpus_busy),   offsetof(TsRoundRec, decide_us),
    };
    const hid_t types[] = {H5T_NATIVE_INT64, H5T_NATIVE_DOUBLE, H5T_NATIVE_INT32,
                           H5T_NATIVE_INT32, H5T_NATIVE_INT32,  H5T_NATIVE_DOUBLE};
    return ts_exp_compound(sizeof(TsRoundRec), names, offs, types, 6);
}

/* Read all rows of dataset `name` (fields matched by name) into *out.
 * optional: a missing dataset gives 0 rows instead of an error. */
static TsStatus ts_exp_read(TsExpFile *f, const char *name, hid_t mem_type, size_t elt,
                            int optional, void **out, int64_t *n_out, TsErr *err) {
    TsStatus st = TS_OK;
    hid_t d = H5I_INVALID_HID, sp = H5I_INVALID_HID;
    void *buf = NULL;
    hssize_t n = 0;
    char why[200];
    *out = NULL;
    *n_out = 0;
    if (mem_type < 0) return ts_err(err, TS_ERR_INTERNAL, "%s: cannot build the type of %s", f->path, name);
    if (H5Lexists(f->file, name, H5P_DEFAULT) <= 0) {
        if (optional) return TS_OK;
        return ts_err(err, TS_ERR_INPUT, "%s: not a tetriserve results file (no %s dataset)",
                      f->path, name);
    }
    if ((d = H5Dopen2(f->file, name, H5P_DEFAULT)) < 0 || (sp = H5Dget_space(d)) < 0 ||
        (n = H5Sget_simple_extent_npoints(sp)) < 0) {
        ts_exp_h5_why(why);
        st = ts_err(err, TS_ERR_IO, "%s: cannot open %s%s%s", f->path, name, why[0] ? ": " : "",
                    why);
        goto done;
    }
    buf = ts_xcalloc((size_t)(n ? n : 1), elt);
    if (n > 0 && H5Dread(d, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
        ts_exp_h5_why(why);
        st = ts_err(err, TS_ERR_INPUT, "%s: cannot read %s (not a tetriserve results file?)%s%s",
                    f->path, name, why[0] ? ": " : "", why);
        goto done;
    }
done:
    if (sp >= 0) H5Sclose(sp);
    if (d >= 0) H5Dclose(d);
    if (st != TS_OK) {
        free(buf);
        return st;
    }
    *out = buf;
    *n_out = (int64_t)n;
    return TS_OK;
}

static int ts_exp_attr(hid_t loc, const char *name, hid_t mem_type, void *v) {
    if (H5Aexists(loc, name) <= 0) return -1;
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    if (a < 0) return -1;
    herr_t rc = H5Aread(a, mem_type, v);
    H5Aclose(a);
    return rc < 0 ? -1 : 0;
}

/* A scalar string attribute (fixed or variable length) as a fresh string;
 * NULL if absent or not a string. */
static char *ts_exp_attr_str(hid_t loc, const char *name) {
    char *res = NULL;
    hid_t a = H5I_INVALID_HID, t = H5I_INVALID_HID, mt = H5I_INVALID_HID, sp = H5I_INVALID_HID;
    if (H5Aexists(loc, name) <= 0) return NULL;
    if ((a = H5Aopen(loc, name, H5P_DEFAULT)) < 0 || (t = H5Aget_type(a)) < 0 ||
        (sp = H5Aget_space(a)) < 0)
        goto done;
    if (H5Tget_class(t) != H5T_STRING || H5Sget_simple_extent_npoints(sp) != 1) goto done;
    htri_t vl = H5Tis_variable_str(t);
    /* HDF5 converts no strings between character sets: match the file's. */
    if (vl < 0 || (mt = H5Tcopy(H5T_C_S1)) < 0 || H5Tset_cset(mt, H5Tget_cset(t)) < 0) goto done;
    if (vl) {
        char *s = NULL;
        if (H5Tset_size(mt, H5T_VARIABLE) < 0 || H5Aread(a, mt, &s) < 0) goto done;
        res = ts_xstrdup(s ? s : "");
        H5free_memory(s);
    } else {
        size_t sz = H5Tget_size(t);
        res = ts_xcalloc(sz + 1, 1);
        if (H5Tset_size(mt, sz + 1) < 0 || H5Aread(a, mt, res) < 0) {
            free(res);
            res = NULL;
        }
    }
done:
    if (mt >= 0) H5Tclose(mt);
    if (sp >= 0) H5Sclose(sp);
    if (t >= 0) H5Tclose(t);
    if (a >= 0) H5Aclose(a);
    return res;
}

static int ts_exp_cmp_id(const void *a, const void *b) {
    const TsIdIndex *x = a, *y = b;
    return (x->id > y->id) - (x->id < y->id);
}

/* Row of request `id` in f->req, -1 if absent. */
static int64_t ts_exp_find_req(const TsExpFile *f, int64_t id) {
    int64_t lo = 0, hi = f->n_req - 1;
    while (lo <= hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (f->by_id[mid].id == id) return f->by_id[mid].row;
        if (f->by_id[mid].id < id)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -1;
}

static void ts_exp_close(TsExpFile *f) {
    if (f->file >= 0) H5Fclose(f->file);
    free(f->req);
    free(f->by_id);
    free(f->seg);
    free(f->gpus);
    free(f->rounds);
    memset(f, 0, sizeof *f);
    f->file = H5I_INVALID_HID;
}

static TsStatus ts_exp_open(const char *path, TsExpFile *f, TsErr *err) {
    TsStatus st = TS_OK;
    memset(f, 0, sizeof *f);
    f->path = path;
    f->file = H5I_INVALID_HID;
    hid_t fapl = H5I_INVALID_HID, t = H5I_INVALID_HID;
    char *mode = NULL;
    FILE *fp = fopen(path, "rb");
    if (!fp) return ts_err(err, TS_ERR_IO, "%s: %s", path, strerror(errno));
    fclose(fp);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    if (H5Fis_hdf5(path) <= 0)
        return ts_err(err, TS_ERR_INPUT, "%s: not an HDF5 file (expected a tetriserve results file)",
                      path);
    /* No locking: exporting a file that a running job keeps rewriting must
     * neither fail nor make that job's next flush fail. */
    fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl >= 0) H5Pset_file_locking(fapl, 0, 1);
    f->file = H5Fopen(path, H5F_ACC_RDONLY, fapl >= 0 ? fapl : H5P_DEFAULT);
    if (fapl >= 0) H5Pclose(fapl);
    if (f->file < 0) {
        char why[200];
        ts_exp_h5_why(why);
        return ts_err(err, TS_ERR_IO, "%s: cannot open HDF5 file%s%s", path, why[0] ? ": " : "",
                      why);
    }
    int32_t schema = 0;
    mode = ts_exp_attr_str(f->file, "mode");
    if (mode && !strcmp(mode, "sweep")) {
        st = ts_err(err, TS_ERR_INPUT,
                    "%s: a sweep file (mode sweep) has no GPU timeline; export a results file "
                    "written by simulate or run",
                    path);
        goto done;
    }
    if (ts_exp_attr(f->file, "schema_version", H5T_NATIVE_INT32, &schema) < 0) {
        st = ts_err(err, TS_ERR_INPUT,
                    "%s: not a tetriserve results file (no schema_version attribute)", path);
        goto done;
    }
    if (schema != 1) {
        st = ts_err(err, TS_ERR_INPUT,
                    "%s: schema_version %d is not supported (this tetriserve reads 1)", path,
                    (int)schema);
        goto done;
    }
    if (ts_exp_attr(f->file, "n_gpus", H5T_NATIVE_INT32, &f->n_gpus) < 0) f->n_gpus = 0;
    if (ts_exp_attr(f->file, "gpus_per_node", H5T_NATIVE_INT32, &f->gpus_per_node) < 0 ||
        f->gpus_per_node <= 0)
        f->gpus_per_node = f->n_gpus > 0 ? f->n_gpus : 1;
    if (ts_exp_attr(f->file, "round_s", H5T_NATIVE_DOUBLE, &f->round_s) < 0) f->round_s = 0;

    void *buf;
    t = ts_exp_req_type();
    if ((st = ts_exp_read(f, "/requests", t, sizeof(TsRequestRec), 0, &buf, &f->n_req, err)))
        goto done;
    f->req = buf;
    H5Tclose(t);
    t = ts_exp_seg_type();
    if ((st = ts_exp_read(f, "/segments", t, sizeof(TsSegment), 0, &buf, &f->n_seg, err)))
        goto done;
    f->seg = buf;
    H5Tclose(t);
    t = H5I_INVALID_HID;
    if ((st = ts_exp_read(f, "/segment_gpus", H5T_NATIVE_INT32, sizeof(int32_t), 0, &buf,
                          &f->n_gpus_rows, err)))
        goto done;
    f->gpus = buf;
    t = ts_exp_round_type();
    if ((st = ts_exp_read(f, "/rounds", t, sizeof(TsRoundRec), 1, &buf, &f->n_rounds, err)))
        goto done;
    f->rounds = buf;

    f->by_id = ts_xmalloc((size_t)(f->n_req ? f->n_req : 1) * sizeof *f->by_id);
    for (int64_t i = 0; i < f->n_req; i++) f->by_id[i] = (TsIdIndex){f->req[i].id, i};
    qsort(f->by_id, (size_t)f->n_req, sizeof *f->by_id, ts_exp_cmp_id);

    /* A GPU list out of range would make us read past /segment_gpus. */
    for (int64_t s = 0; s < f->n_seg; s++) {
        const TsSegment *g = &f->seg[s];
        if (g->degree < 1 || g->gpu_offset < 0 || g->gpu_offset + g->degree > f->n_gpus_rows) {
            st = ts_err(err, TS_ERR_INPUT,
                        "%s: /segments row %lld: GPUs [%lld, %lld) lie outside /segment_gpus "
                        "(%lld rows)",
                        path, (long long)s, (long long)g->gpu_offset,
                        (long long)(g->gpu_offset + g->degree), (long long)f->n_gpus_rows);
            goto done;
        }
    }
    for (int64_t i = 0; i < f->n_gpus_rows; i++) {
        if (f->gpus[i] < 0) {
            st = ts_err(err, TS_ERR_INPUT, "%s: /segment_gpus row %lld: negative GPU id %d", path,
                        (long long)i, (int)f->gpus[i]);
            goto done;
        }
        /* Be lenient with a wrong n_gpus: show every GPU that appears. */
        if (f->gpus[i] >= f->n_gpus) f->n_gpus = f->gpus[i] + 1;
    }
done:
    if (t >= 0) H5Tclose(t);
    free(mode);
    if (st != TS_OK) ts_exp_close(f);
    return st;
}

/* ---- writing the trace ---- */

typedef struct TsExpOpts {
    int requests; /* instants for arrivals and misses */
    int counters; /* GPUs busy / requests waiting */
    double t0, t1; /* time window (seconds) */
} TsExpOpts;

static int64_t ts_ns(double s) { return llround(s * 1e9); }

static int ts_in_window(const TsExpOpts *op, double a, double b) {
    return b >= op->t0 && a <= op->t1;
}

/* Separator between events: every event after the first is preceded by
 * ",\n". */
static void ts_ev_begin(TsOut *o, int64_t *n_ev) {
    ts_out_s(o, *n_ev ? ",\n{" : "{");
    (*n_ev)++;
}

static void ts_ev_meta(TsOut *o, int64_t *n_ev, int pid, int tid, const char *what,
                       const char *sval, int64_t ival) {
    ts_ev_begin(o, n_ev);
    ts_out_s(o, "\"ph\":\"M\",\"pid\":");
    ts_out_i64(o, pid);
    if (tid >= 0) {
        ts_out_s(o, ",\"tid\":");
        ts_out_i64(o, tid);
    }
    ts_out_s(o, ",\"name\":");
    ts_out_jstr(o, what);
    if (sval) {
        ts_out_s(o, ",\"args\":{\"name\":");
        ts_out_jstr(o, sval);
    } else {
        ts_out_s(o, ",\"args\":{\"sort_index\":");
        ts_out_i64(o, ival);
    }
    ts_out_s(o, "}}");
}

static void ts_out_res(TsOut *o, const TsRequestRec *r) {
    if (!r) {
        ts_out_s(o, "?");
        return;
    }
    ts_out_i64(o, r->width);
    ts_out_c(o, 'x');
    ts_out_i64(o, r->height);
}

static const char *ts_status_word(int status) {
    return status == TS_STATUS_FINISHED   ? "finished"
           : status == TS_STATUS_REJECTED ? "rejected"
           : status == TS_STATUS_UNFINISHED ? "unfinished"
                                            : "unknown";
}

static void ts_exp_segments(TsOut *o, int64_t *n_ev, const TsExpFile *f, const TsExpOpts *op) {
    for (int64_t s = 0; s < f->n_seg; s++) {
        const TsSegment *g = &f->seg[s];
        if (!isfinite(g->start) || !isfinite(g->end) || !ts_in_window(op, g->start, g->end))
            continue;
        int64_t row = ts_exp_find_req(f, g->request_id);
        const TsRequestRec *r = row >= 0 ? &f->req[row] : NULL;
        int64_t ts = ts_ns(g->start), dur = ts_ns(g->end) - ts;
        if (dur < 0) dur = 0;
        for (int32_t k = 0; k < g->degree; k++) {
            int32_t gpu = f->gpus[g->gpu_offset + k];
            ts_ev_begin(o, n_ev);
            ts_out_s(o, "\"ph\":\"X\",\"cat\":\"segment\",\"name\":\"req ");
            ts_out_i64(o, g->request_id);
            ts_out_s(o, " (");
            ts_out_res(o, r);
            ts_out_s(o, ", k=");
            ts_out_i64(o, g->degree);
            ts_out_s(o, g->batch_id >= 0 ? ", batched)\",\"pid\":" : ")\",\"pid\":");
            ts_out_i64(o, gpu / f->gpus_per_node);
            ts_out_s(o, ",\"tid\":");
            ts_out_i64(o, gpu);
            ts_out_s(o, ",\"ts\":");
            ts_out_us(o, ts);
            ts_out_s(o, ",\"dur\":");
            ts_out_us(o, dur);
            ts_out_s(o, ",\"args\":{\"request_id\":");
            ts_out_i64(o, g->request_id);
            ts_out_s(o, ",\"resolution\":\"");
            ts_out_res(o, r);
            ts_out_s(o, "\",\"degree\":");
            ts_out_i64(o, g->degree);
            ts_out_s(o, ",\"gpus\":\"");
            for (int32_t j = 0; j < g->degree; j++) {
                if (j) ts_out_c(o, ',');
                ts_out_i64(o, f->gpus[g->gpu_offset + j]);
            }
            /* Steps are 0-based and inclusive: "0..13" is 14 steps. */
            ts_out_s(o, "\",\"steps\":\"");
            ts_out_i64(o, g->step_begin);
            ts_out_s(o, "..");
            ts_out_i64(o, (int64_t)g->step_begin + g->n_steps - 1);
            if (r) {
                ts_out_s(o, " of ");
                ts_out_i64(o, r->steps);
            }
            ts_out_s(o, "\",\"n_steps\":");
            ts_out_i64(o, g->n_steps);
            ts_out_s(o, ",\"round\":");
            ts_out_i64(o, g->round);
            ts_out_s(o, ",\"batch_id\":");
            ts_out_i64(o, g->batch_id);
            ts_out_s(o, ",\"segment\":");
            ts_out_i64(o, s);
            if (r) {
                ts_out_s(o, ",\"arrival_s\":");
                ts_out_sec(o, r->arrival);
                ts_out_s(o, ",\"deadline_s\":");
                ts_out_sec(o, r->deadline);
                ts_out_s(o, ",\"finish_s\":");
                ts_out_sec(o, r->finish);
                ts_out_s(o, r->met ? ",\"met\":true" : ",\"met\":false");
            }
            ts_out_s(o, "}}");
        }
    }
}

static void ts_exp_request_instants(TsOut *o, int64_t *n_ev, const TsExpFile *f,
                                    const TsExpOpts *op, int pid) {
    for (int64_t i = 0; i < f->n_req; i++) {
        const TsRequestRec *r = &f->req[i];
        for (int miss = 0; miss < 2; miss++) {
            double t = miss ? r->deadline : r->arrival;
            if (miss && r->met) continue;
            if (!isfinite(t) || t < op->t0 || t > op->t1) continue;
            ts_ev_begin(o, n_ev);
            ts_out_s(o, miss ? "\"ph\":\"i\",\"s\":\"t\",\"cat\":\"miss\",\"name\":\"miss req "
                             : "\"ph\":\"i\",\"s\":\"t\",\"cat\":\"arrival\",\"name\":\"arrive req ");
            ts_out_i64(o, r->id);
            ts_out_s(o, " (");
            ts_out_res(o, r);
            ts_out_s(o, ")\",\"pid\":");
            ts_out_i64(o, pid);
            ts_out_s(o, ",\"tid\":0,\"ts\":");
            ts_out_us(o, ts_ns(t));
            ts_out_s(o, ",\"args\":{\"request_id\":");
            ts_out_i64(o, r->id);
            ts_out_s(o, ",\"resolution\":\"");
            ts_out_res(o, r);
            ts_out_s(o, "\",\"steps\":");
            ts_out_i64(o, r->steps);
            ts_out_s(o, ",\"arrival_s\":");
            ts_out_sec(o, r->arrival);
            ts_out_s(o, ",\"deadline_s\":");
            ts_out_sec(o, r->deadline);
            ts_out_s(o, ",\"start_s\":");
            ts_out_sec(o, r->start);
            ts_out_s(o, ",\"finish_s\":");
            ts_out_sec(o, r->finish);
            if (miss) {
                ts_out_s(o, ",\"late_s\":");
                ts_out_sec(o, r->finish - r->deadline);
            }
            ts_out_s(o, r->met ? ",\"met\":true,\"status\":\"" : ",\"met\":false,\"status\":\"");
            ts_out_s(o, ts_status_word(r->status));
            ts_out_s(o, "\"}}");
        }
    }
}

static void ts_exp_rounds(TsOut *o, int64_t *n_ev, const TsExpFile *f, const TsExpOpts *op,
                          int pid) {
    for (int64_t i = 0; i < f->n_rounds; i++) {
        const TsRoundRec *r = &f->rounds[i];
        double end = i + 1 < f->n_rounds ? f->rounds[i + 1].start : r->start + f->round_s;
        if (!isfinite(r->start) || !isfinite(end) || !ts_in_window(op, r->start, end)) continue;
        int64_t ts = ts_ns(r->start), dur = ts_ns(end) - ts;
        ts_ev_begin(o, n_ev);
        ts_out_s(o, "\"ph\":\"X\",\"cat\":\"round\",\"name\":\"round ");
        ts_out_i64(o, r->round);
        ts_out_s(o, "\",\"pid\":");
        ts_out_i64(o, pid);
        ts_out_s(o, ",\"tid\":1,\"ts\":");
        ts_out_us(o, ts);
        ts_out_s(o, ",\"dur\":");
        ts_out_us(o, dur < 0 ? 0 : dur);
        ts_out_s(o, ",\"args\":{\"round\":");
        ts_out_i64(o, r->round);
        ts_out_s(o, ",\"n_pending\":");
        ts_out_i64(o, r->n_pending);
        ts_out_s(o, ",\"n_scheduled\":");
        ts_out_i64(o, r->n_scheduled);
        ts_out_s(o, ",\"gpus_busy\":");
        ts_out_i64(o, r->gpus_busy);
        ts_out_s(o, ",\"decide_us\":");
        ts_out_dbl(o, r->decide_us);
        ts_out_s(o, "}}");
    }
}

typedef struct TsStep { /* a +1/-1 change of a counter at time t (ns) */
    int64_t t;
    int32_t key; /* GPU id while merging intervals; the delta in the sweep */
    int32_t delta;
} TsStep;

static int ts_step_cmp_key_t(const void *a, const void *b) {
    const TsStep *x = a, *y = b;
    if (x->key != y->key) return (x->key > y->key) - (x->key < y->key);
    if (x->t != y->t) return (x->t > y->t) - (x->t < y->t);
    return (x->delta > y->delta) - (x->delta < y->delta);
}

static int ts_step_cmp_t(const void *a, const void *b) {
    const TsStep *x = a, *y = b;
    return (x->t > y->t) - (x->t < y->t);
}

/* Emit counter `name` from value changes `steps` (sorted by t, deltas):
 * one "C" event per distinct time inside the window, plus the value at t0. */
static void ts_exp_counter(TsOut *o, int64_t *n_ev, const TsStep *steps, int64_t n,
                           const TsExpOpts *op, int pid, const char *name) {
    int64_t v = 0, t0 = isfinite(op->t0) ? ts_ns(op->t0) : INT64_MIN;
    int64_t t1 = isfinite(op->t1) ? ts_ns(op->t1) : INT64_MAX;
    int64_t last = -1;
    int emitted_start = 0;
    for (int64_t i = 0; i < n;) {
        int64_t t = steps[i].t;
        if (t > t0 && !emitted_start && t0 != INT64_MIN) {
            /* The value in force when the window opens. */
            emitted_start = 1;
            ts_ev_begin(o, n_ev);
            ts_out_s(o, "\"ph\":\"C\",\"name\":");
            ts_out_jstr(o, name);
            ts_out_s(o, ",\"pid\":");
            ts_out_i64(o, pid);
            ts_out_s(o, ",\"ts\":");
            ts_out_us(o, t0);
            ts_out_s(o, ",\"args\":{\"value\":");
            ts_out_i64(o, v);
            ts_out_s(o, "}}");
            last = v;
        }
        for (; i < n && steps[i].t == t; i++) v += steps[i].delta;
        if (t < t0 || t > t1 || v == last) continue;
        ts_ev_begin(o, n_ev);
        ts_out_s(o, "\"ph\":\"C\",\"name\":");
        ts_out_jstr(o, name);
        ts_out_s(o, ",\"pid\":");
        ts_out_i64(o, pid);
        ts_out_s(o, ",\"ts\":");
        ts_out_us(o, t);
        ts_out_s(o, ",\"args\":{\"value\":");
        ts_out_i64(o, v);
        ts_out_s(o, "}}");
        last = v;
        if (t == t0) emitted_start = 1;
    }
}

static void ts_exp_counters(TsOut *o, int64_t *n_ev, const TsExpFile *f, const TsExpOpts *op,
                            int pid) {
    /* GPUs busy: per GPU, merge its busy intervals (batched segments share
     * GPUs, touching segments abut), then sweep the merged bounds. */
    int64_t n_slots = 0; /* segment x GPU pairs (batched segments share GPU rows) */
    for (int64_t s = 0; s < f->n_seg; s++) n_slots += f->seg[s].degree;
    TsStep *iv = ts_xmalloc((size_t)(n_slots ? n_slots : 1) * 2 * sizeof *iv);
    int64_t n_iv = 0;
    for (int64_t s = 0; s < f->n_seg; s++) {
        const TsSegment *g = &f->seg[s];
        if (!isfinite(g->start) || !isfinite(g->end)) continue;
        for (int32_t k = 0; k < g->degree; k++) {
            int32_t gpu = f->gpus[g->gpu_offset + k];
            iv[n_iv++] = (TsStep){ts_ns(g->start), gpu, +1};
            iv[n_iv++] = (TsStep){ts_ns(g->end), gpu, -1};
        }
    }
    qsort(iv, (size_t)n_iv, sizeof *iv, ts_step_cmp_key_t);
    /* Per GPU, an interval-depth sweep keeps only 0->1 and 1->0 changes;
     * at equal times -1 sorts first, so an end meeting a start cancels. */
    int64_t n_out = 0;
    for (int64_t i = 0; i < n_iv;) {
        int32_t gpu = iv[i].key;
        int64_t depth = 0;
        for (; i < n_iv && iv[i].key == gpu; i++) {
            int64_t before = depth;
            depth += iv[i].delta;
            if (before == 0 && depth > 0)
                iv[n_out++] = (TsStep){iv[i].t, 0, +1};
            else if (before > 0 && depth == 0)
                iv[n_out++] = (TsStep){iv[i].t, 0, -1};
        }
    }
    qsort(iv, (size_t)n_out, sizeof *iv, ts_step_cmp_t);
    ts_exp_counter(o, n_ev, iv, n_out, op, pid, "GPUs busy");
    free(iv);

    /* Requests waiting: arrived, first step not started (never started:
     * waiting until it finished, was rejected or the run ended). */
    TsStep *w = ts_xmalloc((size_t)(f->n_req ? f->n_req : 1) * 2 * sizeof *w);
    int64_t n_w = 0;
    double run_end = 0;
    for (int64_t s = 0; s < f->n_seg; s++)
        if (isfinite(f->seg[s].end) && f->seg[s].end > run_end) run_end = f->seg[s].end;
    for (int64_t i = 0; i < f->n_req; i++) {
        const TsRequestRec *r = &f->req[i];
        if (!isfinite(r->arrival)) continue;
        double until = isfinite(r->start)                 ? r->start
                       : r->status == TS_STATUS_REJECTED ? r->arrival
                       : isfinite(r->finish)              ? r->finish
                                                          : fmax(run_end, r->arrival);
        if (until <= r->arrival) continue;
        w[n_w++] = (TsStep){ts_ns(r->arrival), 0, +1};
        w[n_w++] = (TsStep){ts_ns(until), 0, -1};
    }
    qsort(w, (size_t)n_w, sizeof *w, ts_step_cmp_t);
    ts_exp_counter(o, n_ev, w, n_w, op, pid, "requests waiting");
    free(w);
}

static void ts_exp_metadata(TsOut *o, const TsExpFile *f, const char *path) {
    static const char *const str_attrs[] = {
        "mode", "backend", "policy", "policy_options", "trace", "profile",
        "tetriserve_version", "created", "command_line",
    };
    ts_out_s(o, "\"metadata\":{\"source\":");
    ts_out_jstr(o, path);
    for (size_t i = 0; i < sizeof str_attrs / sizeof str_attrs[0]; i++) {
        char *v = ts_exp_attr_str(f->file, str_attrs[i]);
        if (!v) continue;
        ts_out_s(o, ",");
        ts_out_jstr(o, str_attrs[i]);
        ts_out_c(o, ':');
        ts_out_jstr(o, v);
        free(v);
    }
    double d;
    int32_t i32;
    uint8_t u8;
    ts_out_s(o, ",\"n_gpus\":");
    ts_out_i64(o, f->n_gpus);
    ts_out_s(o, ",\"gpus_per_node\":");
    ts_out_i64(o, f->gpus_per_node);
    if (ts_exp_attr(f->file, "slo_scale", H5T_NATIVE_DOUBLE, &d) == 0) {
        ts_out_s(o, ",\"slo_scale\":");
        ts_out_dbl(o, d);
    }
    ts_out_s(o, ",\"round_s\":");
    ts_out_dbl(o, f->round_s);
    if (ts_exp_attr(f->file, "schema_version", H5T_NATIVE_INT32, &i32) == 0) {
        ts_out_s(o, ",\"schema_version\":");
        ts_out_i64(o, i32);
    }
    if (ts_exp_attr(f->file, "complete", H5T_NATIVE_UINT8, &u8) == 0)
        ts_out_s(o, u8 ? ",\"complete\":true" : ",\"complete\":false");
    ts_out_s(o, ",\"n_requests\":");
    ts_out_i64(o, f->n_req);
    ts_out_s(o, ",\"n_segments\":");
    ts_out_i64(o, f->n_seg);
    if (H5Lexists(f->file, "summary", H5P_DEFAULT) > 0) {
        hid_t g = H5Gopen2(f->file, "summary", H5P_DEFAULT);
        if (g >= 0) {
            static const char *const sums[] = {"sar",         "latency_mean", "latency_p50",
                                               "latency_p90", "latency_p99",  "gpu_busy_fraction",
                                               "makespan"};
            for (size_t i = 0; i < sizeof sums / sizeof sums[0]; i++) {
                if (ts_exp_attr(g, sums[i], H5T_NATIVE_DOUBLE, &d) < 0) continue;
                ts_out_c(o, ',');
                ts_out_jstr(o, sums[i]);
                ts_out_c(o, ':');
                ts_out_dbl(o, d);
            }
            H5Gclose(g);
        }
    }
    ts_out_c(o, '}');
}

static void ts_exp_write(TsOut *o, const TsExpFile *f, const TsExpOpts *op, const char *path) {
    int64_t n_ev = 0;
    int n_nodes = f->n_gpus > 0 ? (f->n_gpus + f->gpus_per_node - 1) / f->gpus_per_node : 0;
    int cluster = n_nodes; /* pid of the "cluster" process */
    char name[64];
    ts_out_s(o, "{\"displayTimeUnit\":\"ms\",\n");
    ts_exp_metadata(o, f, path);
    ts_out_s(o, ",\n\"traceEvents\":[\n");
    for (int n = 0; n < n_nodes; n++) {
        snprintf(name, sizeof name, "node %d", n);
        ts_ev_meta(o, &n_ev, n, -1, "process_name", name, 0);
        ts_ev_meta(o, &n_ev, n, -1, "process_sort_index", NULL, n);
    }
    for (int g = 0; g < f->n_gpus; g++) {
        snprintf(name, sizeof name, "GPU %d", g);
        ts_ev_meta(o, &n_ev, g / f->gpus_per_node, g, "thread_name", name, 0);
        ts_ev_meta(o, &n_ev, g / f->gpus_per_node, g, "thread_sort_index", NULL, g);
    }
    int extras = op->requests || op->counters || f->n_rounds > 0;
    if (extras) {
        ts_ev_meta(o, &n_ev, cluster, -1, "process_name", "cluster", 0);
        ts_ev_meta(o, &n_ev, cluster, -1, "process_sort_index", NULL, cluster);
    }
    if (op->requests) {
        ts_ev_meta(o, &n_ev, cluster, 0, "thread_name", "requests", 0);
        ts_ev_meta(o, &n_ev, cluster, 0, "thread_sort_index", NULL, 0);
    }
    if (f->n_rounds > 0) {
        ts_ev_meta(o, &n_ev, cluster, 1, "thread_name", "rounds", 0);
        ts_ev_meta(o, &n_ev, cluster, 1, "thread_sort_index", NULL, 1);
    }
    ts_exp_segments(o, &n_ev, f, op);
    if (op->requests) ts_exp_request_instants(o, &n_ev, f, op, cluster);
    ts_exp_rounds(o, &n_ev, f, op, cluster);
    if (op->counters) ts_exp_counters(o, &n_ev, f, op, cluster);
    ts_out_s(o, "\n]}\n");
}

/* ---- the verb ---- */

static void ts_export_usage(FILE *out) {
    fputs("usage: tetriserve export --chrome F.h5 [-o F.json] [--window T0:T1]\n"
          "                         [--no-requests] [--no-counters]\n"
          "\n"
          "Convert a results file (simulate or run) into a Chrome trace event JSON file\n"
          "that ui.perfetto.dev and chrome://tracing open: the GPU timeline.\n"
          "\n"
          "  --chrome          Chrome trace event format (JSON Object Format; the default)\n"
          "  -o, --out F.json  output file (default: standard output)\n"
          "  --window T0:T1    only what happens between T0 and T1 seconds since trace\n"
          "                    start (either may be empty: 600: or :120)\n"
          "  --no-requests     no instant events for arrivals and deadline misses\n"
          "  --no-counters     no \"GPUs busy\" / \"requests waiting\" counter tracks\n"
          "  --help            this text\n"
          "\n"
          "Layout: one process per node (\"node N\"), one thread per GPU (\"GPU <id>\"),\n"
          "one complete event per segment per GPU, named \"req ID (WxH, k=DEGREE)\" with\n"
          "args request_id, resolution, degree, gpus, steps (0-based, inclusive),\n"
          "round, batch_id, arrival_s, deadline_s, finish_s, met. A process \"cluster\"\n"
          "holds the \"requests\" thread (arrivals; deadline misses at the deadline),\n"
          "the \"rounds\" thread (round-based policies) and the counters. Times are\n"
          "microseconds since trace start.\n",
          out);
}

static int ts_parse_window(const char *s, double *t0, double *t1) {
    const char *colon = strchr(s, ':');
    if (!colon) return -1;
    char a[64], b[64];
    size_t la = (size_t)(colon - s), lb = strlen(colon + 1);
    if (la >= sizeof a || lb >= sizeof b) return -1;
    memcpy(a, s, la);
    a[la] = '\0';
    memcpy(b, colon + 1, lb + 1);
    *t0 = -INFINITY;
    *t1 = INFINITY;
    if (ts_trim(a)[0] && ts_parse_double(a, t0) < 0) return -1;
    if (ts_trim(b)[0] && ts_parse_double(b, t1) < 0) return -1;
    return *t0 <= *t1 ? 0 : -1;
}

int ts_cmd_export(int argc, char **argv) {
    enum { OPT_NO_REQ = 256, OPT_NO_CNT, OPT_WINDOW };
    static const struct option opts[] = {
        {"help", no_argument, NULL, 'h'},
        {"chrome", no_argument, NULL, 'c'},
        {"out", required_argument, NULL, 'o'},
        {"window", required_argument, NULL, OPT_WINDOW},
        {"no-requests", no_argument, NULL, OPT_NO_REQ},
        {"no-counters", no_argument, NULL, OPT_NO_CNT},
        {NULL, 0, NULL, 0},
    };
    TsExpOpts op = {.requests = 1, .counters = 1, .t0 = -INFINITY, .t1 = INFINITY};
    const char *out_path = NULL;
    optind = 0; /* a full reset: main may have run getopt already */
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":ho:", opts, NULL)) != -1) {
        switch (c) {
        case 'h': ts_export_usage(stdout); return 0;
        case 'c': break;
        case 'o': out_path = optarg; break;
        case OPT_NO_REQ: op.requests = 0; break;
        case OPT_NO_CNT: op.counters = 0; break;
        case OPT_WINDOW:
            if (ts_parse_window(optarg, &op.t0, &op.t1) < 0) {
                fprintf(stderr,
                        "tetriserve: export: --window '%s': expected T0:T1 in seconds with "
                        "T0 <= T1 (either may be empty)\n",
                        optarg);
                return 2;
            }
            break;
        case ':':
            fprintf(stderr, "tetriserve: export: option '%s' needs a value\n", argv[optind - 1]);
            return 2;
        default:
            fprintf(stderr, "tetriserve: export: unknown option '%s' (see tetriserve export --help)\n",
                    argv[optind - 1]);
            return 2;
        }
    }
    if (argc - optind != 1) {
        fprintf(stderr,
                "tetriserve: export: expected one results file, got %d (usage: tetriserve export "
                "--chrome F.h5 [-o F.json])\n",
                argc - optind);
        return 2;
    }
    const char *in_path = argv[optind];

    TsErr err;
    TsExpFile f;
    if (ts_exp_open(in_path, &f, &err) != TS_OK) {
        fprintf(stderr, "tetriserve: export: %s\n", err.msg);
        return 1;
    }
    int rc = 1;
    TsOut *o = ts_xmalloc(sizeof *o);
    o->n = 0;
    o->failed = 0;
    o->err_no = 0;
    o->fp = out_path ? fopen(out_path, "wb") : stdout;
    if (!o->fp) {
        fprintf(stderr, "tetriserve: export: %s: cannot create: %s\n", out_path, strerror(errno));
        goto done;
    }
    ts_exp_write(o, &f, &op, in_path);
    ts_out_flush(o);
    if (fflush(o->fp) != 0 && !o->failed) {
        o->failed = 1;
        o->err_no = errno;
    }
    if (out_path && fclose(o->fp) != 0 && !o->failed) {
        o->failed = 1;
        o->err_no = errno;
    }
    if (o->failed) {
        fprintf(stderr, "tetriserve: export: %s: write failed: %s\n",
                out_path ? out_path : "standard output", strerror(o->err_no));
        if (out_path) remove(out_path); /* no truncated JSON left behind */
        goto done;
    }
    rc = 0;
done:
    free(o);
    ts_exp_close(&f);
    return rc;
}
