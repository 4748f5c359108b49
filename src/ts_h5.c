/* ts_h5.c - HDF5 helpers, see ts_h5.h. */
#include "ts_h5.h"

#include <stdarg.h>
#include <stdio.h>

static herr_t ts_h5_walk_cb(unsigned n, const H5E_error2_t *e, void *data) {
    (void)n;
    /* Walking downward, the last description is the innermost. */
    if (e->desc && e->desc[0]) snprintf((char *)data, 200, "%s", e->desc);
    return 0;
}

void ts_h5_why(char *why, size_t len) {
    char buf[200] = "";
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, ts_h5_walk_cb, buf);
    snprintf(why, len, "%s", buf);
}

TsStatus ts_h5_fail(TsErr *err, const char *fmt, ...) {
    char head[TS_ERR_MAX], why[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(head, sizeof head, fmt, ap);
    va_end(ap);
    ts_h5_why(why, sizeof why);
    if (why[0]) return ts_err(err, TS_ERR_IO, "%s: %s", head, why);
    return ts_err(err, TS_ERR_IO, "%s", head);
}

void ts_h5_close(hid_t id) {
    if (id < 0) return;
    switch (H5Iget_type(id)) {
    case H5I_FILE: H5Fclose(id); break;
    case H5I_GROUP: H5Gclose(id); break;
    case H5I_DATATYPE: H5Tclose(id); break;
    case H5I_DATASPACE: H5Sclose(id); break;
    case H5I_DATASET: H5Dclose(id); break;
    case H5I_ATTR: H5Aclose(id); break;
    case H5I_GENPROP_LST: H5Pclose(id); break;
    default: break;
    }
}

TsStatus ts_h5_close_file(hid_t file, TsStatus st, const char *path, TsErr *err) {
    if (file < 0) return st;
    if (H5Fclose(file) < 0 && st == TS_OK) return ts_h5_fail(err, "%s: cannot close HDF5 file", path);
    return st;
}

hid_t ts_h5_vlstr_type(void) {
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t < 0) return t;
    if (H5Tset_size(t, H5T_VARIABLE) < 0 || H5Tset_cset(t, H5T_CSET_UTF8) < 0) {
        H5Tclose(t);
        return H5I_INVALID_HID;
    }
    return t;
}

herr_t ts_h5_attr_put(hid_t loc, const char *name, hid_t file_type, hid_t mem_type, int64_t n,
                      const void *v) {
    herr_t rc = -1;
    hid_t sp = H5I_INVALID_HID, a = H5I_INVALID_HID;
    htri_t ex = H5Aexists(loc, name);
    if (ex < 0 || (ex > 0 && H5Adelete(loc, name) < 0)) goto done;
    hsize_t dim = n > 0 ? (hsize_t)n : 0;
    sp = n < 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &dim, NULL);
    if (sp < 0) goto done;
    if ((a = H5Acreate2(loc, name, file_type, sp, H5P_DEFAULT, H5P_DEFAULT)) < 0) goto done;
    if (n != 0 && H5Awrite(a, mem_type, v) < 0) goto done;
    rc = 0;
done:
    ts_h5_close(a);
    ts_h5_close(sp);
    return rc;
}

herr_t ts_h5_attr_strs(hid_t loc, const char *name, const char *const *v, int64_t n) {
    hid_t t = ts_h5_vlstr_type();
    if (t < 0) return -1;
    herr_t rc = ts_h5_attr_put(loc, name, t, t, n, v);
    H5Tclose(t);
    return rc;
}

herr_t ts_h5_attr_str(hid_t loc, const char *name, const char *v) {
    const char *s = v ? v : "";
    return ts_h5_attr_strs(loc, name, &s, -1);
}

herr_t ts_h5_attr_i32(hid_t loc, const char *name, int32_t v) {
    return ts_h5_attr_put(loc, name, H5T_STD_I32LE, H5T_NATIVE_INT32, -1, &v);
}

herr_t ts_h5_attr_i64(hid_t loc, const char *name, int64_t v) {
    return ts_h5_attr_put(loc, name, H5T_STD_I64LE, H5T_NATIVE_INT64, -1, &v);
}

herr_t ts_h5_attr_f64(hid_t loc, const char *name, double v) {
    return ts_h5_attr_put(loc, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, -1, &v);
}

herr_t ts_h5_attr_u8(hid_t loc, const char *name, uint8_t v) {
    return ts_h5_attr_put(loc, name, H5T_STD_U8LE, H5T_NATIVE_UINT8, -1, &v);
}

int ts_h5_attr_get(hid_t loc, const char *name, hid_t mem_type, void *v) {
    if (H5Aexists(loc, name) <= 0) return -1;
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    if (a < 0) return -1;
    herr_t rc = H5Aread(a, mem_type, v);
    H5Aclose(a);
    return rc < 0 ? -1 : 0;
}

int ts_h5_attr_get_str(hid_t loc, const char *name, char *buf, size_t len) {
    buf[0] = '\0';
    hid_t t = ts_h5_vlstr_type();
    char *s = NULL;
    int rc = t < 0 ? -1 : ts_h5_attr_get(loc, name, t, &s);
    if (rc == 0 && s) snprintf(buf, len, "%s", s);
    if (s) H5free_memory(s);
    ts_h5_close(t);
    return rc;
}
