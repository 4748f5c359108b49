/* ts_results.c - the HDF5 results file (SPEC.md "Results file", schema 1)
 * and the `report` verb.
 *
 * Layout choices (readers only rely on SPEC.md; these are ours):
 * - Datasets are 1-D, chunked (TS_CHUNK_ROWS rows), extendible, shuffle +
 *   deflate 4. Compound file types are packed little-endian with exactly
 *   the SPEC field names, so h5py gives a plain numpy record dtype.
 * - Strings are scalar variable-length UTF-8 attributes (h5py reads str).
 * - The file keeps the default (oldest compatible) format: no superblock
 *   "open for writing" flag, so a file left by a killed run opens normally.
 * - Every call opens, writes and closes the file, so that what is on disk
 *   between calls is a complete HDF5 file (ts_results.h).
 * Extensions to SPEC.md (additive): root attributes policy_options,
 * exec_profile, command_line, complete; /summary n_finished and the per-resolution
 * arrays res_width, res_height, res_n, res_met; a /run group of float64
 * attributes (ts_results_put_stats: the live executor's measurements). */
#include "ts_results.h"
#include "ts_h5.h"

#include <errno.h>
#include <getopt.h>
#include <hdf5.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define TS_SCHEMA_VERSION 1
#define TS_CHUNK_ROWS 1024
#define TS_DEFLATE_LEVEL 4

struct TsResultsFile {
    char *path;
    int32_t n_gpus;
    /* Rows already on disk: appends start here. */
    int64_t n_seg_written, n_seg_gpus_written, n_rounds_written;
};

/* ---- compound types ---- */

typedef enum TsFieldKind { TS_F_I64, TS_F_I32, TS_F_U8, TS_F_I8, TS_F_F64 } TsFieldKind;
typedef struct TsField {
    const char *name;
    size_t off;
    TsFieldKind kind;
} TsField;

static const TsField ts_req_fields[] = {
    {"id", offsetof(TsRequestRec, id), TS_F_I64},
    {"width", offsetof(TsRequestRec, width), TS_F_I32},
    {"height", offsetof(TsRequestRec, height), TS_F_I32},
    {"steps", offsetof(TsRequestRec, steps), TS_F_I32},
    {"arrival", offsetof(TsRequestRec, arrival), TS_F_F64},
    {"deadline", offsetof(TsRequestRec, deadline), TS_F_F64},
    {"start", offsetof(TsRequestRec, start), TS_F_F64},
    {"finish", offsetof(TsRequestRec, finish), TS_F_F64},
    {"met", offsetof(TsRequestRec, met), TS_F_U8},
    {"status", offsetof(TsRequestRec, status), TS_F_I8},
};
static const TsField ts_seg_fields[] = {
    {"request_id", offsetof(TsSegment, request_id), TS_F_I64},
    {"step_begin", offsetof(TsSegment, step_begin), TS_F_I32},
    {"n_steps", offsetof(TsSegment, n_steps), TS_F_I32},
    {"degree", offsetof(TsSegment, degree), TS_F_I32},
    {"gpu_offset", offsetof(TsSegment, gpu_offset), TS_F_I64},
    {"start", offsetof(TsSegment, start), TS_F_F64},
    {"end", offsetof(TsSegment, end), TS_F_F64},
    {"round", offsetof(TsSegment, round), TS_F_I64},
    {"batch_id", offsetof(TsSegment, batch_id), TS_F_I64},
};
static const TsField ts_round_fields[] = {
    {"round", offsetof(TsRoundRec, round), TS_F_I64},
    {"start", offsetof(TsRoundRec, start), TS_F_F64},
    {"n_pending", offsetof(TsRoundRec, n_pending), TS_F_I32},
    {"n_scheduled", offsetof(TsRoundRec, n_scheduled), TS_F_I32},
    {"gpus_busy", offsetof(TsRoundRec, gpus_busy), TS_F_I32},
    {"decide_us", offsetof(TsRoundRec, decide_us), TS_F_F64},
};
#define TS_NFIELDS(a) ((int)(sizeof(a) / sizeof(a)[0]))

static hid_t ts_kind_native(TsFieldKind k) {
    switch (k) {
    case TS_F_I64: return H5T_NATIVE_INT64;
    case TS_F_I32: return H5T_NATIVE_INT32;
    case TS_F_U8: return H5T_NATIVE_UINT8;
    case TS_F_I8: return H5T_NATIVE_INT8;
    case TS_F_F64: return H5T_NATIVE_DOUBLE;
    }
    return H5I_INVALID_HID;
}

static hid_t ts_kind_file(TsFieldKind k) {
    switch (k) {
    case TS_F_I64: return H5T_STD_I64LE;
    case TS_F_I32: return H5T_STD_I32LE;
    case TS_F_U8: return H5T_STD_U8LE;
    case TS_F_I8: return H5T_STD_I8LE;
    case TS_F_F64: return H5T_IEEE_F64LE;
    }
    return H5I_INVALID_HID;
}

static size_t ts_kind_size(TsFieldKind k) {
    switch (k) {
    case TS_F_I64: case TS_F_F64: return 8;
    case TS_F_I32: return 4;
    case TS_F_U8: case TS_F_I8: return 1;
    }
    return 0;
}

/* The in-memory type (struct layout) or the packed little-endian file type. */
static hid_t ts_compound(const TsField *f, int n, size_t mem_size, int file) {
    size_t size = 0;
    for (int i = 0; i < n; i++) size += ts_kind_size(f[i].kind);
    hid_t t = H5Tcreate(H5T_COMPOUND, file ? size : mem_size);
    if (t < 0) return H5I_INVALID_HID;
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        hid_t ft = file ? ts_kind_file(f[i].kind) : ts_kind_native(f[i].kind);
        if (H5Tinsert(t, f[i].name, file ? off : f[i].off, ft) < 0) {
            H5Tclose(t);
            return H5I_INVALID_HID;
        }
        off += ts_kind_size(f[i].kind);
    }
    return t;
}

#define TS_REQ_TYPE(file) \
    ts_compound(ts_req_fields, TS_NFIELDS(ts_req_fields), sizeof(TsRequestRec), (file))
#define TS_SEG_TYPE(file) \
    ts_compound(ts_seg_fields, TS_NFIELDS(ts_seg_fields), sizeof(TsSegment), (file))
#define TS_ROUND_TYPE(file) \
    ts_compound(ts_round_fields, TS_NFIELDS(ts_round_fields), sizeof(TsRoundRec), (file))

/* ---- errors ---- */

/* Fill err with "<formatted>: <innermost HDF5 error>" and return TS_ERR_IO.
 * Must run before any other HDF5 call clears the error stack. */
/* ---- attributes ---- */

/* Overwrite an existing attribute in place (keeps its position). */
static herr_t ts_attr_set_u8(hid_t loc, const char *name, uint8_t v) {
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    if (a < 0) return ts_h5_attr_put(loc, name, H5T_STD_U8LE, H5T_NATIVE_UINT8, -1, &v);
    herr_t rc = H5Awrite(a, H5T_NATIVE_UINT8, &v);
    if (H5Aclose(a) < 0) rc = -1;
    return rc;
}

/* Returns the name of the attribute that failed, NULL on success. */
static const char *ts_write_root_attrs(hid_t file, const TsRunMeta *m) {
    char created[32];
    ts_iso8601_now(created, sizeof created);
    if (ts_h5_attr_i32(file, "schema_version", TS_SCHEMA_VERSION) < 0) return "schema_version";
    if (ts_h5_attr_str(file, "tetriserve_version", ts_version_string()) < 0) return "tetriserve_version";
    if (ts_h5_attr_str(file, "mode", m->mode) < 0) return "mode";
    if (ts_h5_attr_str(file, "backend", m->backend) < 0) return "backend";
    if (ts_h5_attr_str(file, "policy", m->policy) < 0) return "policy";
    if (ts_h5_attr_str(file, "policy_options", m->policy_options) < 0) return "policy_options";
    if (ts_h5_attr_str(file, "trace", m->trace) < 0) return "trace";
    if (ts_h5_attr_str(file, "profile", m->profile) < 0) return "profile";
    if (ts_h5_attr_str(file, "exec_profile", m->exec_profile ? m->exec_profile : "") < 0) return "exec_profile";
    if (ts_h5_attr_str(file, "command_line", m->command_line) < 0) return "command_line";
    if (ts_h5_attr_i32(file, "n_gpus", m->n_gpus) < 0) return "n_gpus";
    if (ts_h5_attr_i32(file, "gpus_per_node", m->gpus_per_node) < 0) return "gpus_per_node";
    if (ts_h5_attr_f64(file, "slo_scale", m->slo_scale) < 0) return "slo_scale";
    if (ts_h5_attr_f64(file, "round_s", m->round_s) < 0) return "round_s";
    if (ts_h5_attr_put(file, "seed", H5T_STD_U64LE, H5T_NATIVE_UINT64, -1, &m->seed) < 0) return "seed";
    if (ts_h5_attr_str(file, "created", created) < 0) return "created";
    if (ts_attr_set_u8(file, "complete", 0) < 0) return "complete";
    return NULL;
}

/* ---- datasets ---- */

static hid_t ts_dset_create(hid_t file, const char *name, hid_t ftype) {
    hid_t d = H5I_INVALID_HID, sp = H5I_INVALID_HID, dcpl = H5I_INVALID_HID;
    hsize_t dim = 0, maxdim = H5S_UNLIMITED, chunk = TS_CHUNK_ROWS;
    if ((sp = H5Screate_simple(1, &dim, &maxdim)) < 0) goto done;
    if ((dcpl = H5Pcreate(H5P_DATASET_CREATE)) < 0) goto done;
    if (H5Pset_chunk(dcpl, 1, &chunk) < 0 || H5Pset_shuffle(dcpl) < 0 ||
        H5Pset_deflate(dcpl, TS_DEFLATE_LEVEL) < 0)
        goto done;
    d = H5Dcreate2(file, name, ftype, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
done:
    ts_h5_close(dcpl);
    ts_h5_close(sp);
    return d;
}

/* Make dataset `name` exactly `total` rows long and write rows [from, total)
 * from buf (which holds rows from `from` on). */
static TsStatus ts_dset_write_rows(hid_t file, const char *path, const char *name, hid_t mem_type,
                                   const void *buf, int64_t from, int64_t total, TsErr *err) {
    TsStatus st = TS_OK;
    hid_t d = H5I_INVALID_HID, fsp = H5I_INVALID_HID, msp = H5I_INVALID_HID;
    hsize_t dim = (hsize_t)total, start = (hsize_t)from, count = (hsize_t)(total - from);
    TS_H5_TRY(d = H5Dopen2(file, name, H5P_DEFAULT), "%s: cannot open %s", path, name);
    TS_H5_TRY(H5Dset_extent(d, &dim), "%s: cannot extend %s to %lld rows", path, name,
              (long long)total);
    if (count > 0) {
        TS_H5_TRY(fsp = H5Dget_space(d), "%s: cannot get the dataspace of %s", path, name);
        TS_H5_TRY(H5Sselect_hyperslab(fsp, H5S_SELECT_SET, &start, NULL, &count, NULL),
                  "%s: cannot select rows of %s", path, name);
        TS_H5_TRY(msp = H5Screate_simple(1, &count, NULL), "%s: cannot create a dataspace", path);
        TS_H5_TRY(H5Dwrite(d, mem_type, msp, fsp, H5P_DEFAULT, buf),
                  "%s: cannot write rows %lld..%lld of %s", path, (long long)from,
                  (long long)total - 1, name);
    }
done:
    ts_h5_close(msp);
    ts_h5_close(fsp);
    ts_h5_close(d);
    return st;
}

/* ---- writing ---- */

TsStatus ts_results_create(const char *path, const TsRunMeta *meta, TsResultsFile **out,
                           TsErr *err) {
    *out = NULL;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    TsStatus st = TS_OK;
    hid_t file = H5I_INVALID_HID, t = H5I_INVALID_HID, d = H5I_INVALID_HID;
    errno = 0;
    file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (file < 0) {
        int e = errno;
        int hint = e == 0 || e == ENOENT || e == ENOTDIR || e == EACCES || e == EROFS;
        return ts_err(err, TS_ERR_IO, "%s: cannot create HDF5 file%s%s%s", path, e ? ": " : "",
                      e ? strerror(e) : "", hint ? " (directory missing or not writable?)" : "");
    }
    const char *bad = ts_write_root_attrs(file, meta);
    if (bad) {
        st = ts_h5_fail(err, "%s: cannot write attribute %s", path, bad);
        goto done;
    }
    static const char *const names[] = {"/requests", "/segments", "/rounds"};
    for (int i = 0; i < 3; i++) {
        TS_H5_TRY(t = i == 0 ? TS_REQ_TYPE(1) : i == 1 ? TS_SEG_TYPE(1) : TS_ROUND_TYPE(1),
                  "%s: cannot build the type of %s", path, names[i]);
        TS_H5_TRY(d = ts_dset_create(file, names[i], t), "%s: cannot create %s", path, names[i]);
        H5Dclose(d);
        d = H5I_INVALID_HID;
        H5Tclose(t);
        t = H5I_INVALID_HID;
    }
    TS_H5_TRY(d = ts_dset_create(file, "/segment_gpus", H5T_STD_I32LE),
              "%s: cannot create /segment_gpus", path);
done:
    ts_h5_close(d);
    ts_h5_close(t);
    st = ts_h5_close_file(file, st, path, err);
    if (st != TS_OK) return st;
    TsResultsFile *f = ts_xcalloc(1, sizeof *f);
    f->path = ts_xstrdup(path);
    f->n_gpus = meta->n_gpus;
    *out = f;
    return TS_OK;
}

static hid_t ts_open_rw(const char *path, TsErr *err, TsStatus *st) {
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t file = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    if (file < 0) *st = ts_h5_fail(err, "%s: cannot reopen the results file for writing", path);
    return file;
}

TsStatus ts_results_flush(TsResultsFile *f, TsRunLog *log, TsErr *err) {
    TsStatus st = TS_OK;
    hid_t file = H5I_INVALID_HID, t = H5I_INVALID_HID;
    if (log->n_seg < f->n_seg_written || log->n_seg_gpus < f->n_seg_gpus_written ||
        log->n_rounds < f->n_rounds_written)
        return ts_err(err, TS_ERR_INTERNAL,
                      "%s: the run log shrank since the last flush (%lld segments, %lld written)",
                      f->path, (long long)log->n_seg, (long long)f->n_seg_written);
    if ((file = ts_open_rw(f->path, err, &st)) < 0) return st;

    TS_H5_TRY(t = TS_REQ_TYPE(0), "%s: cannot build the type of /requests", f->path);
    if ((st = ts_dset_write_rows(file, f->path, "/requests", t, log->req, 0, log->n_req, err)))
        goto done;
    H5Tclose(t);
    t = H5I_INVALID_HID;

    /* Rows changed since the last flush, and any never written. */
    int64_t from = log->seg_dirty_from;
    if (from > f->n_seg_written) from = f->n_seg_written;
    if (from < 0) from = 0;
    TS_H5_TRY(t = TS_SEG_TYPE(0), "%s: cannot build the type of /segments", f->path);
    if ((st = ts_dset_write_rows(file, f->path, "/segments", t, log->seg + from, from, log->n_seg,
                                 err)))
        goto done;
    H5Tclose(t);
    t = H5I_INVALID_HID;

    if ((st = ts_dset_write_rows(file, f->path, "/segment_gpus", H5T_NATIVE_INT32,
                                 log->seg_gpus + f->n_seg_gpus_written, f->n_seg_gpus_written,
                                 log->n_seg_gpus, err)))
        goto done;

    TS_H5_TRY(t = TS_ROUND_TYPE(0), "%s: cannot build the type of /rounds", f->path);
    if ((st = ts_dset_write_rows(file, f->path, "/rounds", t, log->rounds + f->n_rounds_written,
                                 f->n_rounds_written, log->n_rounds, err)))
        goto done;
done:
    ts_h5_close(t);
    st = ts_h5_close_file(file, st, f->path, err);
    if (st == TS_OK) {
        f->n_seg_written = log->n_seg;
        f->n_seg_gpus_written = log->n_seg_gpus;
        f->n_rounds_written = log->n_rounds;
        log->seg_dirty_from = log->n_seg;
    }
    return st;
}

/* The /summary attributes into group g; returns the name of the attribute
 * that failed, NULL on success. */
static const char *ts_write_summary_attrs(hid_t g, const TsSummary *s) {
    if (ts_h5_attr_i64(g, "n_requests", s->n_requests) < 0) return "n_requests";
    if (ts_h5_attr_i64(g, "n_met", s->n_met) < 0) return "n_met";
    if (ts_h5_attr_i64(g, "n_finished", s->n_finished) < 0) return "n_finished";
    const struct {
        const char *name;
        double v;
    } dv[] = {
        {"sar", s->sar},
        {"latency_mean", s->latency_mean},
        {"latency_p50", s->latency_p50},
        {"latency_p90", s->latency_p90},
        {"latency_p99", s->latency_p99},
        {"gpu_busy_fraction", s->gpu_busy_fraction},
        {"makespan", s->makespan},
    };
    for (size_t i = 0; i < sizeof dv / sizeof dv[0]; i++)
        if (ts_h5_attr_f64(g, dv[i].name, dv[i].v) < 0) return dv[i].name;
    int n_res = s->n_res < 0 ? 0 : s->n_res > TS_SUMMARY_MAX_RES ? TS_SUMMARY_MAX_RES : s->n_res;
    if (ts_h5_attr_put(g, "res_width", H5T_STD_I32LE, H5T_NATIVE_INT32, n_res, s->res_width) < 0)
        return "res_width";
    if (ts_h5_attr_put(g, "res_height", H5T_STD_I32LE, H5T_NATIVE_INT32, n_res, s->res_height) < 0)
        return "res_height";
    if (ts_h5_attr_put(g, "res_n", H5T_STD_I64LE, H5T_NATIVE_INT64, n_res, s->res_n) < 0) return "res_n";
    if (ts_h5_attr_put(g, "res_met", H5T_STD_I64LE, H5T_NATIVE_INT64, n_res, s->res_met) < 0)
        return "res_met";
    return NULL;
}

TsStatus ts_results_finish(TsResultsFile *f, TsRunLog *log, const TsSummary *s, int complete,
                           TsErr *err) {
    TsStatus st = ts_results_flush(f, log, err);
    if (st != TS_OK) return st;
    TsSummary own;
    if (!s) {
        ts_summary_compute(log, f->n_gpus, &own);
        s = &own;
    }
    hid_t file = H5I_INVALID_HID, g = H5I_INVALID_HID;
    if ((file = ts_open_rw(f->path, err, &st)) < 0) return st;
    htri_t ex;
    TS_H5_TRY(ex = H5Lexists(file, "summary", H5P_DEFAULT), "%s: cannot look up /summary", f->path);
    if (ex > 0)
        TS_H5_TRY(g = H5Gopen2(file, "summary", H5P_DEFAULT), "%s: cannot open /summary", f->path);
    else
        TS_H5_TRY(g = H5Gcreate2(file, "summary", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                  "%s: cannot create /summary", f->path);
    const char *what = ts_write_summary_attrs(g, s);
    if (what) goto attr_fail;
    what = "complete";
    if (ts_attr_set_u8(file, "complete", complete ? 1 : 0) < 0) goto attr_fail;
    goto done;
attr_fail:
    st = ts_h5_fail(err, "%s: cannot write attribute %s", f->path, what);
done:
    ts_h5_close(g);
    return ts_h5_close_file(file, st, f->path, err);
}

TsStatus ts_results_put_stats(TsResultsFile *f, const char *group, const TsStat *v, int n,
                              TsErr *err) {
    TsStatus st = TS_OK;
    hid_t file = H5I_INVALID_HID, g = H5I_INVALID_HID;
    if ((file = ts_open_rw(f->path, err, &st)) < 0) return st;
    htri_t ex;
    TS_H5_TRY(ex = H5Lexists(file, group, H5P_DEFAULT), "%s: cannot look up /%s", f->path, group);
    if (ex > 0)
        TS_H5_TRY(g = H5Gopen2(file, group, H5P_DEFAULT), "%s: cannot open /%s", f->path, group);
    else
        TS_H5_TRY(g = H5Gcreate2(file, group, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                  "%s: cannot create /%s", f->path, group);
    for (int i = 0; i < n; i++)
        TS_H5_TRY(ts_h5_attr_f64(g, v[i].name, v[i].value), "%s: cannot write attribute /%s %s",
                  f->path, group, v[i].name);
done:
    ts_h5_close(g);
    return ts_h5_close_file(file, st, f->path, err);
}

TsStatus ts_results_write_group(const char *path, const char *group, const TsRunMeta *meta,
                                const TsRunLog *log, const TsSummary *s, int complete,
                                TsErr *err) {
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    TsStatus st = TS_OK;
    hid_t file = H5I_INVALID_HID, g = H5I_INVALID_HID, sg = H5I_INVALID_HID,
          lcpl = H5I_INVALID_HID, t = H5I_INVALID_HID, d = H5I_INVALID_HID;
    char name[512];
    const char *bad;
    if ((file = ts_open_rw(path, err, &st)) < 0) return st;
    TS_H5_TRY(lcpl = H5Pcreate(H5P_LINK_CREATE), "%s: cannot create a property list", path);
    TS_H5_TRY(H5Pset_create_intermediate_group(lcpl, 1), "%s: cannot set a property", path);
    TS_H5_TRY(g = H5Gcreate2(file, group, lcpl, H5P_DEFAULT, H5P_DEFAULT),
              "%s: cannot create group %s", path, group);
    if ((bad = ts_write_root_attrs(g, meta))) {
        st = ts_h5_fail(err, "%s: cannot write attribute %s/%s", path, group, bad);
        goto done;
    }
    static const char *const names[] = {"requests", "segments", "rounds"};
    const void *rows[] = {log->req, log->seg, log->rounds};
    const int64_t n_rows[] = {log->n_req, log->n_seg, log->n_rounds};
    for (int i = 0; i < 3; i++) {
        snprintf(name, sizeof name, "%s/%s", group, names[i]);
        TS_H5_TRY(t = i == 0 ? TS_REQ_TYPE(1) : i == 1 ? TS_SEG_TYPE(1) : TS_ROUND_TYPE(1),
                  "%s: cannot build the type of %s", path, name);
        TS_H5_TRY(d = ts_dset_create(file, name, t), "%s: cannot create %s", path, name);
        H5Dclose(d);
        d = H5I_INVALID_HID;
        H5Tclose(t);
        TS_H5_TRY(t = i == 0 ? TS_REQ_TYPE(0) : i == 1 ? TS_SEG_TYPE(0) : TS_ROUND_TYPE(0),
                  "%s: cannot build the type of %s", path, name);
        if ((st = ts_dset_write_rows(file, path, name, t, rows[i], 0, n_rows[i], err))) goto done;
        H5Tclose(t);
        t = H5I_INVALID_HID;
    }
    snprintf(name, sizeof name, "%s/segment_gpus", group);
    TS_H5_TRY(d = ts_dset_create(file, name, H5T_STD_I32LE), "%s: cannot create %s", path, name);
    if ((st = ts_dset_write_rows(file, path, name, H5T_NATIVE_INT32, log->seg_gpus, 0,
                                 log->n_seg_gpus, err)))
        goto done;
    TS_H5_TRY(sg = H5Gcreate2(g, "summary", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
              "%s: cannot create %s/summary", path, group);
    if ((bad = ts_write_summary_attrs(sg, s))) {
        st = ts_h5_fail(err, "%s: cannot write attribute %s/summary %s", path, group, bad);
        goto done;
    }
    if (ts_attr_set_u8(g, "complete", complete ? 1 : 0) < 0)
        st = ts_h5_fail(err, "%s: cannot write attribute %s complete", path, group);
done:
    ts_h5_close(d);
    ts_h5_close(t);
    ts_h5_close(sg);
    ts_h5_close(g);
    ts_h5_close(lcpl);
    return ts_h5_close_file(file, st, path, err);
}

void ts_results_close(TsResultsFile *f) {
    if (!f) return;
    free(f->path);
    free(f);
}

/* ---- reading (report) ---- */

/* A 1-D attribute of up to max elements; returns its length or -1. */
static int64_t ts_attr_get_arr(hid_t loc, const char *name, hid_t mem_type, void *v, int64_t max) {
    if (H5Aexists(loc, name) <= 0) return -1;
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    if (a < 0) return -1;
    int64_t n = -1;
    hid_t sp = H5Aget_space(a);
    hssize_t np = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
    if (np >= 0 && np <= max && (np == 0 || H5Aread(a, mem_type, v) >= 0)) n = (int64_t)np;
    ts_h5_close(sp);
    H5Aclose(a);
    return n;
}

/* Render any numeric or string attribute as text ("a, b, c" for arrays). */
static void ts_attr_format(hid_t loc, const char *name, char *buf, size_t len) {
    snprintf(buf, len, "?");
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT), t = H5I_INVALID_HID, sp = H5I_INVALID_HID,
          mt = H5I_INVALID_HID;
    void *data = NULL;
    if (a < 0 || (t = H5Aget_type(a)) < 0 || (sp = H5Aget_space(a)) < 0) goto done;
    hssize_t np = H5Sget_simple_extent_npoints(sp);
    if (np < 0) goto done;
    size_t n = (size_t)np, pos = 0;
    buf[0] = '\0';
    H5T_class_t cls = H5Tget_class(t);
    if (cls == H5T_STRING) {
        htri_t vl = H5Tis_variable_str(t);
        if (vl < 0 || (mt = H5Tcopy(H5T_C_S1)) < 0) goto done;
        size_t sz = vl ? sizeof(char *) : H5Tget_size(t) + 1;
        if (H5Tset_size(mt, vl ? H5T_VARIABLE : sz) < 0 || H5Tset_cset(mt, H5Tget_cset(t)) < 0)
            goto done;
        data = ts_xcalloc(n ? n : 1, sz);
        if (H5Aread(a, mt, data) < 0) goto done;
        for (size_t i = 0; i < n && pos < len; i++) {
            const char *s = vl ? ((char **)data)[i] : (char *)data + i * sz;
            pos += (size_t)snprintf(buf + pos, len - pos, "%s%s", i ? ", " : "", s ? s : "");
        }
        if (vl)
            for (size_t i = 0; i < n; i++) H5free_memory(((char **)data)[i]);
    } else if (cls == H5T_INTEGER || cls == H5T_FLOAT) {
        int sgn = cls == H5T_INTEGER ? H5Tget_sign(t) : 0;
        hid_t nt = cls == H5T_FLOAT ? H5T_NATIVE_DOUBLE
                   : sgn == H5T_SGN_NONE ? H5T_NATIVE_UINT64
                                         : H5T_NATIVE_INT64;
        data = ts_xcalloc(n ? n : 1, 8);
        if (H5Aread(a, nt, data) < 0) goto done;
        for (size_t i = 0; i < n && pos < len; i++) {
            const char *sep = i ? ", " : "";
            if (cls == H5T_FLOAT)
                pos += (size_t)snprintf(buf + pos, len - pos, "%s%.10g", sep, ((double *)data)[i]);
            else if (sgn == H5T_SGN_NONE)
                pos += (size_t)snprintf(buf + pos, len - pos, "%s%llu", sep,
                                        (unsigned long long)((uint64_t *)data)[i]);
            else
                pos += (size_t)snprintf(buf + pos, len - pos, "%s%lld", sep,
                                        (long long)((int64_t *)data)[i]);
        }
    } else {
        snprintf(buf, len, "(unprintable HDF5 type)");
    }
done:
    free(data);
    ts_h5_close(mt);
    ts_h5_close(sp);
    ts_h5_close(t);
    ts_h5_close(a);
}

typedef struct TsNameList {
    char **name;
    int64_t n, cap;
} TsNameList;

static herr_t ts_attr_name_cb(hid_t loc, const char *name, const H5A_info_t *info, void *data) {
    (void)loc;
    (void)info;
    TsNameList *l = data;
    TS_GROW(l->name, l->cap, l->n + 1);
    l->name[l->n++] = ts_xstrdup(name);
    return 0;
}

/* "# key: value" for every root attribute: the known ones in a fixed order,
 * then any others by name. */
static void ts_report_header(hid_t file, const char *path) {
    static const char *const order[] = {
        "schema_version", "tetriserve_version", "created", "complete", "mode",
        "backend", "policy", "policy_options", "trace", "profile", "exec_profile",
        "n_gpus", "gpus_per_node", "slo_scale", "round_s", "seed", "command_line",
    };
    const int n_order = (int)(sizeof order / sizeof order[0]);
    char val[1024];
    TsNameList l = {0};
    hsize_t idx = 0;
    H5Aiterate2(file, H5_INDEX_NAME, H5_ITER_INC, &idx, ts_attr_name_cb, &l);
    printf("# results: %s\n", path);
    for (int i = 0; i < n_order; i++) {
        if (H5Aexists(file, order[i]) <= 0) continue;
        ts_attr_format(file, order[i], val, sizeof val);
        printf("# %s: %s\n", order[i], val);
    }
    for (int64_t j = 0; j < l.n; j++) {
        int known = 0;
        for (int i = 0; i < n_order; i++) known |= !strcmp(l.name[j], order[i]);
        if (!known) {
            ts_attr_format(file, l.name[j], val, sizeof val);
            printf("# %s: %s\n", l.name[j], val);
        }
        free(l.name[j]);
    }
    free(l.name);
}

/* Read rows of a compound dataset into a fresh array (fields matched by
 * name, so any field order in the file works). */
static TsStatus ts_dset_read_all(hid_t file, const char *path, const char *name, hid_t mem_type,
                                 size_t elt, void **out, int64_t *n_out, TsErr *err) {
    TsStatus st = TS_OK;
    hid_t d = H5I_INVALID_HID, sp = H5I_INVALID_HID;
    hssize_t n = 0;
    void *buf = NULL;
    TS_H5_TRY(d = H5Dopen2(file, name, H5P_DEFAULT), "%s: cannot open %s", path, name);
    TS_H5_TRY(sp = H5Dget_space(d), "%s: cannot get the dataspace of %s", path, name);
    TS_H5_TRY(n = H5Sget_simple_extent_npoints(sp), "%s: bad dataspace of %s", path, name);
    buf = ts_xcalloc((size_t)(n ? n : 1), elt);
    if (n > 0)
        TS_H5_TRY(H5Dread(d, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf),
                  "%s: cannot read %s (not a tetriserve results file?)", path, name);
done:
    ts_h5_close(sp);
    ts_h5_close(d);
    if (st != TS_OK) {
        free(buf);
        buf = NULL;
        n = 0;
    }
    *out = buf;
    *n_out = (int64_t)n;
    return st;
}

/* The summary of a file without /summary (a run that died before its end):
 * recomputed from /requests and /segments. */
static TsStatus ts_report_recompute(hid_t file, const char *path, int32_t n_gpus, TsSummary *s,
                                    TsErr *err) {
    TsStatus st = TS_OK;
    TsRunLog log;
    memset(&log, 0, sizeof log);
    hid_t t = H5I_INVALID_HID;
    void *buf = NULL;
    TS_H5_TRY(t = TS_REQ_TYPE(0), "%s: cannot build the type of /requests", path);
    if ((st = ts_dset_read_all(file, path, "/requests", t, sizeof(TsRequestRec), &buf, &log.n_req,
                               err)))
        goto done;
    log.req = buf;
    H5Tclose(t);
    t = H5I_INVALID_HID;
    TS_H5_TRY(t = TS_SEG_TYPE(0), "%s: cannot build the type of /segments", path);
    if ((st = ts_dset_read_all(file, path, "/segments", t, sizeof(TsSegment), &buf, &log.n_seg,
                               err)))
        goto done;
    log.seg = buf;
    log.cap_seg = log.n_seg;
    ts_summary_compute(&log, n_gpus, s);
done:
    ts_h5_close(t);
    ts_log_free(&log);
    return st;
}

static void ts_report_usage(FILE *out) {
    fputs("usage: tetriserve report [--help] F.h5\n"
          "Print the configuration and the summary of a tetriserve results file.\n"
          "Works on incomplete files (a run that stopped early): the summary is then\n"
          "recomputed from the recorded requests and segments.\n",
          out);
}

static void ts_print_num(const char *label, double v, int decimals) {
    if (isnan(v))
        printf("%-22s %s\n", label, "n/a");
    else
        printf("%-22s %.*f\n", label, decimals, v);
}

/* A sweep file: the `#` header, then per source a table of mean SAR
 * (over rates, GPU counts and seeds) with policies in rows and SLO scales
 * in columns. */
typedef struct {
    char policy[16];
    char source[128];
    double slo_scale, sar;
} TsSweepPeek;

static int ts_report_sweep(hid_t file, const char *path) {
    int rc = 1;
    hid_t d = H5I_INVALID_HID, sp = H5I_INVALID_HID, mt = H5I_INVALID_HID, s16 = H5I_INVALID_HID,
          s128 = H5I_INVALID_HID;
    TsSweepPeek *rows = NULL;
    if ((d = H5Dopen2(file, "sweep", H5P_DEFAULT)) < 0 || (sp = H5Dget_space(d)) < 0) {
        fprintf(stderr, "tetriserve: report: %s: cannot open /sweep\n", path);
        goto done;
    }
    hssize_t n = H5Sget_simple_extent_npoints(sp);
    s16 = H5Tcopy(H5T_C_S1);
    H5Tset_size(s16, 16);
    s128 = H5Tcopy(H5T_C_S1);
    H5Tset_size(s128, 128);
    mt = H5Tcreate(H5T_COMPOUND, sizeof(TsSweepPeek));
    H5Tinsert(mt, "policy", HOFFSET(TsSweepPeek, policy), s16);
    H5Tinsert(mt, "source", HOFFSET(TsSweepPeek, source), s128);
    H5Tinsert(mt, "slo_scale", HOFFSET(TsSweepPeek, slo_scale), H5T_NATIVE_DOUBLE);
    H5Tinsert(mt, "sar", HOFFSET(TsSweepPeek, sar), H5T_NATIVE_DOUBLE);
    rows = ts_xcalloc((size_t)(n > 0 ? n : 1), sizeof *rows);
    if (n > 0 && H5Dread(d, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, rows) < 0) {
        fprintf(stderr, "tetriserve: report: %s: cannot read /sweep\n", path);
        goto done;
    }
    ts_report_header(file, path);
    printf("%lld scenarios\n", (long long)n);
    /* Distinct sources, policies (first appearance) and scales (sorted). */
    for (hssize_t a = 0; a < n; a++) {
        int first_src = 1;
        for (hssize_t b = 0; b < a && first_src; b++) first_src = strcmp(rows[b].source, rows[a].source) != 0;
        if (!first_src) continue;
        double scales[64];
        int ns = 0;
        for (hssize_t b = 0; b < n; b++) {
            if (strcmp(rows[b].source, rows[a].source)) continue;
            int seen = 0;
            for (int k = 0; k < ns; k++) seen |= scales[k] == rows[b].slo_scale;
            if (!seen && ns < 64) scales[ns++] = rows[b].slo_scale;
        }
        qsort(scales, (size_t)ns, sizeof *scales, ts_cmp_double);
        printf("\nmean SAR  %s\n%-12s", rows[a].source, "policy");
        for (int k = 0; k < ns; k++) printf(" %6.2fx", scales[k]);
        printf("\n");
        for (hssize_t b = 0; b < n; b++) {
            if (strcmp(rows[b].source, rows[a].source)) continue;
            int first_pol = 1;
            for (hssize_t c = 0; c < b && first_pol; c++)
                first_pol = strcmp(rows[c].source, rows[a].source) || strcmp(rows[c].policy, rows[b].policy);
            if (!first_pol) continue;
            printf("%-12s", rows[b].policy);
            for (int k = 0; k < ns; k++) {
                double sum = 0;
                int cnt = 0;
                for (hssize_t c = 0; c < n; c++)
                    if (!strcmp(rows[c].source, rows[a].source) && !strcmp(rows[c].policy, rows[b].policy) &&
                        rows[c].slo_scale == scales[k])
                        sum += rows[c].sar, cnt++;
                printf(" %7.3f", cnt ? sum / cnt : NAN);
            }
            printf("\n");
        }
    }
    rc = 0;
done:
    free(rows);
    if (mt >= 0) H5Tclose(mt);
    if (s16 >= 0) H5Tclose(s16);
    if (s128 >= 0) H5Tclose(s128);
    if (sp >= 0) H5Sclose(sp);
    if (d >= 0) H5Dclose(d);
    return rc;
}

static int ts_report_file(const char *path) {
    int rc = 1;
    hid_t fapl = H5I_INVALID_HID, file = H5I_INVALID_HID, g = H5I_INVALID_HID;
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        fprintf(stderr, "tetriserve: report: %s: %s\n", path, strerror(errno));
        return 1;
    }
    fclose(fp);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    /* Without locking a report can look at a file a running job keeps
     * rewriting, and never makes that job's next flush fail. */
    fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl >= 0) H5Pset_file_locking(fapl, 0, 1);
    file = H5Fopen(path, H5F_ACC_RDONLY, fapl >= 0 ? fapl : H5P_DEFAULT);
    if (file < 0) {
        htri_t is = H5Fis_hdf5(path);
        if (is == 0)
            fprintf(stderr, "tetriserve: report: %s: not an HDF5 file\n", path);
        else {
            char why[200] = "";
            ts_h5_why(why, sizeof why);
            fprintf(stderr, "tetriserve: report: %s: cannot open HDF5 file%s%s\n", path,
                    why[0] ? ": " : "", why);
        }
        goto done;
    }
    int32_t schema = 0, n_gpus = 0;
    if (ts_h5_attr_get(file, "schema_version", H5T_NATIVE_INT32, &schema) < 0) {
        fprintf(stderr,
                "tetriserve: report: %s: not a tetriserve results file (no schema_version "
                "attribute)\n",
                path);
        goto done;
    }
    if (schema != TS_SCHEMA_VERSION) {
        fprintf(stderr,
                "tetriserve: report: %s: schema_version %d is not supported (this tetriserve "
                "reads %d)\n",
                path, (int)schema, TS_SCHEMA_VERSION);
        goto done;
    }
    if (H5Lexists(file, "sweep", H5P_DEFAULT) > 0) {
        rc = ts_report_sweep(file, path);
        goto done;
    }
    uint8_t complete = 0;
    if (ts_h5_attr_get(file, "complete", H5T_NATIVE_UINT8, &complete) < 0) complete = 0;
    if (ts_h5_attr_get(file, "n_gpus", H5T_NATIVE_INT32, &n_gpus) < 0) n_gpus = 0;

    TsSummary s;
    memset(&s, 0, sizeof s);
    int recomputed = 0;
    htri_t has_summary = H5Lexists(file, "summary", H5P_DEFAULT);
    if (has_summary > 0 && (g = H5Gopen2(file, "summary", H5P_DEFAULT)) >= 0) {
        s.n_finished = -1;
        s.latency_mean = s.latency_p50 = s.latency_p90 = s.latency_p99 = NAN;
        s.gpu_busy_fraction = s.makespan = s.sar = NAN;
        ts_h5_attr_get(g, "n_requests", H5T_NATIVE_INT64, &s.n_requests);
        ts_h5_attr_get(g, "n_met", H5T_NATIVE_INT64, &s.n_met);
        ts_h5_attr_get(g, "n_finished", H5T_NATIVE_INT64, &s.n_finished);
        ts_h5_attr_get(g, "sar", H5T_NATIVE_DOUBLE, &s.sar);
        ts_h5_attr_get(g, "latency_mean", H5T_NATIVE_DOUBLE, &s.latency_mean);
        ts_h5_attr_get(g, "latency_p50", H5T_NATIVE_DOUBLE, &s.latency_p50);
        ts_h5_attr_get(g, "latency_p90", H5T_NATIVE_DOUBLE, &s.latency_p90);
        ts_h5_attr_get(g, "latency_p99", H5T_NATIVE_DOUBLE, &s.latency_p99);
        ts_h5_attr_get(g, "gpu_busy_fraction", H5T_NATIVE_DOUBLE, &s.gpu_busy_fraction);
        ts_h5_attr_get(g, "makespan", H5T_NATIVE_DOUBLE, &s.makespan);
        int64_t n_w = ts_attr_get_arr(g, "res_width", H5T_NATIVE_INT32, s.res_width,
                                      TS_SUMMARY_MAX_RES);
        int64_t n_h = ts_attr_get_arr(g, "res_height", H5T_NATIVE_INT32, s.res_height,
                                      TS_SUMMARY_MAX_RES);
        int64_t n_n = ts_attr_get_arr(g, "res_n", H5T_NATIVE_INT64, s.res_n, TS_SUMMARY_MAX_RES);
        int64_t n_m = ts_attr_get_arr(g, "res_met", H5T_NATIVE_INT64, s.res_met,
                                      TS_SUMMARY_MAX_RES);
        s.n_res = (n_w >= 0 && n_w == n_h && n_w == n_n && n_w == n_m) ? (int)n_w : 0;
    } else {
        TsErr err;
        if (ts_report_recompute(file, path, n_gpus, &s, &err) != TS_OK) {
            fprintf(stderr, "tetriserve: report: %s\n", err.msg);
            goto done;
        }
        recomputed = 1;
    }

    ts_report_header(file, path);
    if (recomputed) printf("# summary: recomputed from /requests and /segments (no /summary)\n");
    printf("%-22s %lld\n", "requests", (long long)s.n_requests);
    if (s.n_finished >= 0)
        printf("%-22s %lld\n", "finished", (long long)s.n_finished);
    else
        printf("%-22s %s\n", "finished", "n/a");
    printf("%-22s %lld\n", "met", (long long)s.n_met);
    ts_print_num("SAR", s.sar, 4);
    ts_print_num("latency_mean_s", s.latency_mean, 4);
    ts_print_num("latency_p50_s", s.latency_p50, 4);
    ts_print_num("latency_p90_s", s.latency_p90, 4);
    ts_print_num("latency_p99_s", s.latency_p99, 4);
    ts_print_num("gpu_busy_fraction", s.gpu_busy_fraction, 4);
    ts_print_num("makespan_s", s.makespan, 3);
    if (s.n_res > 0) {
        printf("\n%-12s %10s %10s %8s\n", "resolution", "requests", "met", "SAR");
        for (int i = 0; i < s.n_res; i++) {
            char res[32];
            snprintf(res, sizeof res, "%dx%d", (int)s.res_width[i], (int)s.res_height[i]);
            printf("%-12s %10lld %10lld %8.4f\n", res, (long long)s.res_n[i],
                   (long long)s.res_met[i],
                   s.res_n[i] ? (double)s.res_met[i] / (double)s.res_n[i] : 0.0);
        }
    }
    fflush(stdout);
    if (!complete)
        ts_warn("incomplete run: results up to t = %.3f s (last recorded segment end); %lld of "
                "%lld requests finished",
                isnan(s.makespan) ? 0.0 : s.makespan, (long long)(s.n_finished < 0 ? 0 : s.n_finished),
                (long long)s.n_requests);
    rc = 0;
done:
    ts_h5_close(g);
    ts_h5_close(file);
    ts_h5_close(fapl);
    return rc;
}

int ts_cmd_report(int argc, char **argv) {
    static const struct option opts[] = {
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    optind = 0; /* a full reset (glibc, musl): main may have run getopt already */
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'h': ts_report_usage(stdout); return 0;
        default:
            fprintf(stderr, "tetriserve: report: unknown option '%s' (see tetriserve report --help)\n",
                    argv[optind - 1]);
            return 1;
        }
    }
    if (argc - optind != 1) {
        fprintf(stderr, "tetriserve: report: expected one results file, got %d (usage: tetriserve "
                        "report F.h5)\n",
                argc - optind);
        return 1;
    }
    return ts_report_file(argv[optind]);
}
