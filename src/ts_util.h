/* ts_util.h - status codes, error messages, memory and small helpers.
 *
 * Every fallible function returns a TsStatus and, on failure, fills a TsErr
 * with one line of context ("traces/x.csv:12: width 250 is not a multiple of
 * 16"). Callers add context on the way up with ts_err_prefix(); main() prints
 * the final line and exits non-zero. Nothing below main() calls exit(), except
 * ts_xmalloc() on out-of-memory, which cannot be recovered from meaningfully. */
#ifndef TS_UTIL_H
#define TS_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define TS_VERSION "0.1.0"

typedef enum TsStatus {
    TS_OK = 0,
    TS_ERR_INPUT,    /* malformed trace/profile/option: the user's to fix */
    TS_ERR_IO,       /* file system, HDF5 */
    TS_ERR_INTERNAL, /* a broken invariant: a bug in tetriserve */
    TS_ERR_SYSTEM,   /* MPI, CUDA, a lost worker, a signal */
} TsStatus;

#define TS_ERR_MAX 512
typedef struct TsErr {
    char msg[TS_ERR_MAX];
} TsErr;

#if defined(__GNUC__)
#define TS_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define TS_PRINTF(a, b)
#endif

/* Set err->msg (printf-style) and return code, so that callers can write
 * `return ts_err(err, TS_ERR_INPUT, "%s:%d: ...", ...);`. err may be NULL. */
TsStatus ts_err(TsErr *err, TsStatus code, const char *fmt, ...) TS_PRINTF(3, 4);
/* Prepend "prefix: " to an existing message (context on the way up). */
void ts_err_prefix(TsErr *err, const char *fmt, ...) TS_PRINTF(2, 3);
const char *ts_status_name(TsStatus s);

/* Allocation that never returns NULL: prints "tetriserve: out of memory
 * (N bytes) at file:line" and aborts. */
#define ts_xmalloc(n) ts_xmalloc_at((n), __FILE__, __LINE__)
#define ts_xcalloc(n, sz) ts_xcalloc_at((n), (sz), __FILE__, __LINE__)
#define ts_xrealloc(p, n) ts_xrealloc_at((p), (n), __FILE__, __LINE__)
void *ts_xmalloc_at(size_t n, const char *file, int line);
void *ts_xcalloc_at(size_t n, size_t sz, const char *file, int line);
void *ts_xrealloc_at(void *p, size_t n, const char *file, int line);
char *ts_xstrdup(const char *s);

/* Grow *buf (of element size elt, capacity *cap) to hold at least need
 * elements, doubling. */
void ts_grow(void **buf, int64_t *cap, int64_t need, size_t elt);
#define TS_GROW(buf, cap, need) ts_grow((void **)&(buf), &(cap), (need), sizeof *(buf))

/* Strict number parsing: the whole string (after trimming blanks) must be a
 * finite number. Return 0 on success, -1 otherwise. */
int ts_parse_double(const char *s, double *out);
int ts_parse_int64(const char *s, int64_t *out);
int ts_parse_int(const char *s, int *out);

/* Trim leading and trailing blanks in place; returns s advanced. */
char *ts_trim(char *s);

/* Monotonic wall clock in seconds (CLOCK_MONOTONIC). */
double ts_wall_s(void);
/* ISO 8601 UTC timestamp "2026-11-22T07:28:14Z" into buf. */
void ts_iso8601_now(char *buf, size_t len);

/* "0.1.0 (commit abcdef1)" */
const char *ts_version_string(void);

/* Percentile (0..1) of sorted data by linear interpolation; NAN if n == 0. */
double ts_quantile_sorted(const double *sorted, size_t n, double q);

int ts_cmp_double(const void *a, const void *b);

/* printf to stderr prefixed "tetriserve: warning: ". */
void ts_warn(const char *fmt, ...) TS_PRINTF(1, 2);

/* Comma-separated lists ("1.0,1.1,1.2"): returns the count, or -1 if an
 * item is not a finite number / integer or there are more than max. */
int ts_parse_double_list(const char *s, double *out, int max);
int ts_parse_int_list(const char *s, int *out, int max);

#endif
