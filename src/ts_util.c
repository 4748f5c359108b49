/* ts_util.c - status codes, errors, memory, parsing and time helpers. */
#include "ts_util.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ts_version.h"

TsStatus ts_err(TsErr *err, TsStatus code, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

void ts_err_prefix(TsErr *err, const char *fmt, ...) {
    if (!err) return;
    char head[TS_ERR_MAX], old[TS_ERR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(head, sizeof head, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    snprintf(err->msg, sizeof err->msg, "%s: %s", head, old);
}

const char *ts_status_name(TsStatus s) {
    switch (s) {
    case TS_OK: return "ok";
    case TS_ERR_INPUT: return "bad input";
    case TS_ERR_IO: return "i/o error";
    case TS_ERR_INTERNAL: return "internal error";
    case TS_ERR_SYSTEM: return "system error";
    }
    return "unknown status";
}

static void ts_oom(size_t n, const char *file, int line) {
    fprintf(stderr, "tetriserve: out of memory (%zu bytes) at %s:%d\n", n, file, line);
    abort();
}

void *ts_xmalloc_at(size_t n, const char *file, int line) {
    void *p = malloc(n ? n : 1);
    if (!p) ts_oom(n, file, line);
    return p;
}

void *ts_xcalloc_at(size_t n, size_t sz, const char *file, int line) {
    void *p = calloc(n ? n : 1, sz ? sz : 1);
    if (!p) ts_oom(n * sz, file, line);
    return p;
}

void *ts_xrealloc_at(void *p, size_t n, const char *file, int line) {
    void *q = realloc(p, n ? n : 1);
    if (!q) ts_oom(n, file, line);
    return q;
}

char *ts_xstrdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = ts_xmalloc(n);
    memcpy(d, s, n);
    return d;
}

void ts_grow(void **buf, int64_t *cap, int64_t need, size_t elt) {
    if (need <= *cap) return;
    int64_t c = *cap ? *cap : 16;
    while (c < need) c *= 2;
    *buf = ts_xrealloc(*buf, (size_t)c * elt);
    *cap = c;
}

char *ts_trim(char *s) {
    while (*s && isspace((unsigned char)*s)) s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1])) s[--n] = '\0';
    return s;
}

/* Skip blanks on both sides without modifying s; returns 0 if the number
 * spans [begin, end) exactly. */
static int ts_span_ok(const char *s, const char *end) {
    while (*end && isspace((unsigned char)*end)) end++;
    return *end == '\0' && end != s;
}

int ts_parse_double(const char *s, double *out) {
    while (*s && isspace((unsigned char)*s)) s++;
    if (!*s) return -1;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || !ts_span_ok(s, end) || errno == ERANGE || !isfinite(v)) return -1;
    *out = v;
    return 0;
}

int ts_parse_int64(const char *s, int64_t *out) {
    while (*s && isspace((unsigned char)*s)) s++;
    if (!*s) return -1;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (end == s || !ts_span_ok(s, end) || errno == ERANGE) return -1;
    *out = (int64_t)v;
    return 0;
}

int ts_parse_int(const char *s, int *out) {
    int64_t v;
    if (ts_parse_int64(s, &v) || v < -2147483647LL || v > 2147483647LL) return -1;
    *out = (int)v;
    return 0;
}

double ts_wall_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void ts_iso8601_now(char *buf, size_t len) {
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

const char *ts_version_string(void) { return TS_VERSION " (commit " TS_GIT_COMMIT ")"; }

double ts_quantile_sorted(const double *sorted, size_t n, double q) {
    if (n == 0) return NAN;
    if (q <= 0) return sorted[0];
    if (q >= 1) return sorted[n - 1];
    double pos = q * (double)(n - 1);
    size_t i = (size_t)pos;
    double f = pos - (double)i;
    if (i + 1 >= n) return sorted[n - 1];
    return sorted[i] + f * (sorted[i + 1] - sorted[i]);
}

int ts_cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

void ts_warn(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("tetriserve: warning: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* Split a comma list into a scratch copy and parse each item with parse. */
static int ts_parse_list(const char *s, void *out, size_t elt, int max,
                         int (*parse)(const char *, void *)) {
    char buf[4096];
    if (strlen(s) >= sizeof buf) return -1;
    strcpy(buf, s);
    int n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (n >= max || parse(tok, (char *)out + (size_t)n * elt)) return -1;
        n++;
    }
    return n ? n : -1;
}

static int ts_parse_double_v(const char *s, void *out) { return ts_parse_double(s, out); }
static int ts_parse_int_v(const char *s, void *out) { return ts_parse_int(s, out); }

int ts_parse_double_list(const char *s, double *out, int max) {
    return ts_parse_list(s, out, sizeof *out, max, ts_parse_double_v);
}

int ts_parse_int_list(const char *s, int *out, int max) {
    return ts_parse_list(s, out, sizeof *out, max, ts_parse_int_v);
}
