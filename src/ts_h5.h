/* ts_h5.h - small HDF5 helpers shared by the writers and readers of
 * results and sweep files: one-line errors carrying HDF5's innermost
 * reason, closing any id, and typed attributes (little-endian in the file,
 * variable-length UTF-8 strings, which h5py reads as str). Serial HDF5, no
 * MPI. */
#ifndef TS_H5_H
#define TS_H5_H

#include <stdint.h>

#include <hdf5.h>

#include "ts_util.h"

/* err = "<formatted>: <innermost HDF5 error>", returns TS_ERR_IO. Call it
 * before any other HDF5 call clears the error stack. */
TsStatus ts_h5_fail(TsErr *err, const char *fmt, ...) TS_PRINTF(2, 3);
/* The innermost HDF5 error description into why (200 bytes). */
void ts_h5_why(char *why, size_t len);

/* In a function with `TsStatus st` and a `done:` label. */
#define TS_H5_TRY(expr, ...)                   \
    do {                                       \
        if ((expr) < 0) {                      \
            st = ts_h5_fail(err, __VA_ARGS__); \
            goto done;                         \
        }                                      \
    } while (0)

/* Close any HDF5 id (invalid ids ignored). */
void ts_h5_close(hid_t id);
/* Close the file last and report a failing close (where data reach the
 * disk) unless an earlier error st is already being reported. */
TsStatus ts_h5_close_file(hid_t file, TsStatus st, const char *path, TsErr *err);

hid_t ts_h5_vlstr_type(void);
/* Write attribute `name`, replacing it: n values of mem_type stored as
 * file_type; n < 0 means a scalar. */
herr_t ts_h5_attr_put(hid_t loc, const char *name, hid_t file_type, hid_t mem_type, int64_t n,
                      const void *v);
herr_t ts_h5_attr_strs(hid_t loc, const char *name, const char *const *v, int64_t n);
herr_t ts_h5_attr_str(hid_t loc, const char *name, const char *v);
herr_t ts_h5_attr_i32(hid_t loc, const char *name, int32_t v);
herr_t ts_h5_attr_i64(hid_t loc, const char *name, int64_t v);
herr_t ts_h5_attr_f64(hid_t loc, const char *name, double v);
herr_t ts_h5_attr_u8(hid_t loc, const char *name, uint8_t v);
/* Read attribute `name` as mem_type; -1 if absent or unreadable. */
int ts_h5_attr_get(hid_t loc, const char *name, hid_t mem_type, void *v);
/* A scalar string attribute into buf ("" and -1 if absent). */
int ts_h5_attr_get_str(hid_t loc, const char *name, char *buf, size_t len);

#endif
