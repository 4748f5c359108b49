/* ts_profile.c - profile CSV files (the cost model, SPEC.md) and the per-run
 * table of step times.
 *
 * Lookup rule for T(width, height, degree, batch), used everywhere:
 *  1. A row with exactly this (width, height) exists: the answer is the row
 *     with this (degree, batch) at that shape, or an error if there is none
 *     (a degree not profiled for a resolution is not allowed for it).
 *  2. Otherwise rows are grouped into token levels (tokens = w/16 * h/16,
 *     over all rows whatever their degree or batch). The value of a level for
 *     (degree, batch) is the mean of its rows with that (degree, batch), so
 *     1024x256 and 512x512 rows (both 1024 tokens) are averaged.
 *     - tokens equal to a level: that level's value;
 *     - between two levels: linear interpolation in tokens between the two
 *       bracketing levels, both of which must have (degree, batch).
 *       Piecewise-linear interpolation stays between its two end points, so
 *       it is monotone between them even when the data are not;
 *     - below the smallest level: that level's value, held (kernels do not
 *       get faster than at the smallest profiled size); *extrapolated = 1;
 *     - above the largest level: the last segment of this (degree, batch)
 *       (largest level and the nearest smaller level having it) extended
 *       with its slope, or scaled in proportion to tokens when the series
 *       has a single point; a negative slope is held flat instead, so that
 *       a time never drops towards zero far out; *extrapolated = 1.
 *     The level(s) used must have (degree, batch): otherwise TS_ERR_INPUT.
 * The cost model (ts_cost_build) stores NAN for such holes; policies decide
 * whether they need that entry.
 * Monotonicity holds level by level: when a level has several shapes, a
 * shape in the table returns its own row, which may differ from the level
 * mean its neighbours interpolate from. Square-only tables (the bundled
 * ones) have one shape per level, so a sweep over squares is monotone. */
#include "ts_profile.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ts_trace.h"

/* ------------------------------------------------------------------ parse */

enum { COL_WIDTH, COL_HEIGHT, COL_DEGREE, COL_STEP, COL_BATCH, COL_P99, COL_N };
static const char *const ts_profile_col_names[COL_N] = {"width", "height", "degree",
                                                        "step_ms", "batch", "step_ms_p99"};
#define TS_PROFILE_N_REQUIRED 4 /* the first four columns above */

/* Split s in place at commas; returns the number of fields (fields beyond
 * max are counted but not stored). */
static int ts_profile_split(char *s, char **fields, int max) {
    int n = 0;
    for (;;) {
        char *comma = strchr(s, ',');
        if (comma) *comma = '\0';
        if (n < max) fields[n] = ts_trim(s);
        n++;
        if (!comma) break;
        s = comma + 1;
    }
    return n;
}

/* "# key: value" with key made of [A-Za-z0-9_-]: returns 1 and the parts
 * (in place), 0 for a plain comment. */
static int ts_profile_meta(char *comment, char **key, char **value) {
    char *s = ts_trim(comment + 1);
    char *colon = strchr(s, ':');
    if (!colon || colon == s) return 0;
    for (char *c = s; c < colon; c++) {
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              *c == '_' || *c == '-'))
            return 0;
    }
    *colon = '\0';
    *key = s;
    *value = ts_trim(colon + 1);
    return 1;
}

static void ts_profile_set_str(char **dst, const char *value) {
    free(*dst);
    *dst = ts_xstrdup(value);
}

static void ts_profile_append_str(char **dst, const char *value) {
    if (!**dst) {
        ts_profile_set_str(dst, value);
        return;
    }
    size_t a = strlen(*dst), b = strlen(value);
    char *s = ts_xmalloc(a + 1 + b + 1);
    memcpy(s, *dst, a);
    s[a] = ' ';
    memcpy(s + a + 1, value, b + 1);
    free(*dst);
    *dst = s;
}

static TsStatus ts_profile_apply_meta(TsProfile *p, const char *key, const char *value, int line,
                                      TsErr *err) {
    if (!strcmp(key, "model")) {
        ts_profile_set_str(&p->model, value);
    } else if (!strcmp(key, "gpu")) {
        ts_profile_set_str(&p->gpu, value);
    } else if (!strcmp(key, "source")) {
        ts_profile_append_str(&p->source, value);
    } else if (!strcmp(key, "gpus_per_node")) {
        int v;
        if (ts_parse_int(value, &v) || v < 1)
            return ts_err(err, TS_ERR_INPUT, "%s:%d: gpus_per_node '%s' is not a positive integer",
                          p->path, line, value);
        p->gpus_per_node = v;
    } else if (!strcmp(key, "request_overhead_ms")) {
        double v;
        if (ts_parse_double(value, &v))
            return ts_err(err, TS_ERR_INPUT, "%s:%d: request_overhead_ms '%s' is not a finite number",
                          p->path, line, value);
        if (v < 0)
            return ts_err(err, TS_ERR_INPUT, "%s:%d: request_overhead_ms %g is negative", p->path,
                          line, v);
        p->request_overhead_ms = v;
    }
    return TS_OK; /* other keys: documentation for humans */
}

static TsStatus ts_profile_header(const TsProfile *p, char *text, int line, int *col_of,
                                  int *n_cols, TsErr *err) {
    char *fields[256];
    int n = ts_profile_split(text, fields, 256);
    *n_cols = n;
    if (n > 256) return ts_err(err, TS_ERR_INPUT, "%s:%d: too many columns (%d)", p->path, line, n);
    for (int c = 0; c < COL_N; c++) col_of[c] = -1;
    for (int i = 0; i < n; i++) {
        for (int c = 0; c < COL_N; c++) {
            if (strcmp(fields[i], ts_profile_col_names[c])) continue;
            if (col_of[c] >= 0)
                return ts_err(err, TS_ERR_INPUT, "%s:%d: column '%s' appears twice", p->path, line,
                              fields[i]);
            col_of[c] = i;
        }
    }
    for (int c = 0; c < TS_PROFILE_N_REQUIRED; c++) {
        if (col_of[c] < 0)
            return ts_err(err, TS_ERR_INPUT,
                          "%s:%d: missing column '%s' (required: width, height, degree, step_ms)",
                          p->path, line, ts_profile_col_names[c]);
    }
    return TS_OK;
}

static TsStatus ts_profile_int_field(const TsProfile *p, int line, const char *name,
                                     const char *text, int32_t *out, TsErr *err) {
    int v;
    if (ts_parse_int(text, &v))
        return ts_err(err, TS_ERR_INPUT, "%s:%d: %s '%s' is not an integer", p->path, line, name,
                      text);
    *out = v;
    return TS_OK;
}

static TsStatus ts_profile_num_field(const TsProfile *p, int line, const char *name,
                                     const char *text, double *out, TsErr *err) {
    if (ts_parse_double(text, out))
        return ts_err(err, TS_ERR_INPUT, "%s:%d: %s '%s' is not a finite number", p->path, line,
                      name, text);
    return TS_OK;
}

static TsStatus ts_profile_row(const TsProfile *p, char *text, int line, const int *col_of,
                               int n_cols, TsProfileRow *r, TsErr *err) {
    char *fields[256];
    int n = ts_profile_split(text, fields, 256);
    if (n != n_cols)
        return ts_err(err, TS_ERR_INPUT, "%s:%d: %d fields, the header has %d", p->path, line, n,
                      n_cols);
    TsStatus st;
    r->line = line;
    if ((st = ts_profile_int_field(p, line, "width", fields[col_of[COL_WIDTH]], &r->width, err)) ||
        (st = ts_profile_int_field(p, line, "height", fields[col_of[COL_HEIGHT]], &r->height,
                                   err)) ||
        (st = ts_profile_int_field(p, line, "degree", fields[col_of[COL_DEGREE]], &r->degree,
                                   err)) ||
        (st = ts_profile_num_field(p, line, "step_ms", fields[col_of[COL_STEP]], &r->step_ms, err)))
        return st;
    r->batch = 1;
    if (col_of[COL_BATCH] >= 0 && fields[col_of[COL_BATCH]][0] &&
        (st = ts_profile_int_field(p, line, "batch", fields[col_of[COL_BATCH]], &r->batch, err)))
        return st;
    r->step_ms_p99 = NAN; /* an empty optional field is an absent one */
    if (col_of[COL_P99] >= 0 && fields[col_of[COL_P99]][0] &&
        (st = ts_profile_num_field(p, line, "step_ms_p99", fields[col_of[COL_P99]],
                                   &r->step_ms_p99, err)))
        return st;

    if (r->width <= 0 || r->width % 16)
        return ts_err(err, TS_ERR_INPUT, "%s:%d: width %d is not a positive multiple of 16", p->path,
                      line, r->width);
    if (r->height <= 0 || r->height % 16)
        return ts_err(err, TS_ERR_INPUT, "%s:%d: height %d is not a positive multiple of 16",
                      p->path, line, r->height);
    if (r->degree < 1)
        return ts_err(err, TS_ERR_INPUT, "%s:%d: degree %d is not >= 1", p->path, line, r->degree);
    if (r->batch < 1)
        return ts_err(err, TS_ERR_INPUT, "%s:%d: batch %d is not >= 1", p->path, line, r->batch);
    if (!(r->step_ms > 0))
        return ts_err(err, TS_ERR_INPUT, "%s:%d: step_ms %g is not > 0", p->path, line, r->step_ms);
    if (!isnan(r->step_ms_p99) && r->step_ms_p99 < r->step_ms)
        return ts_err(err, TS_ERR_INPUT, "%s:%d: step_ms_p99 %g is below step_ms %g", p->path,
                      line, r->step_ms_p99, r->step_ms);
    return TS_OK;
}

static int ts_profile_row_cmp(const void *a, const void *b) {
    const TsProfileRow *x = a, *y = b;
    if (x->width != y->width) return x->width < y->width ? -1 : 1;
    if (x->height != y->height) return x->height < y->height ? -1 : 1;
    if (x->degree != y->degree) return x->degree < y->degree ? -1 : 1;
    if (x->batch != y->batch) return x->batch < y->batch ? -1 : 1;
    return x->line < y->line ? -1 : x->line > y->line;
}

static TsStatus ts_profile_check_duplicates(const TsProfile *p, TsErr *err) {
    TsProfileRow *sorted = ts_xmalloc((size_t)p->n_rows * sizeof *sorted);
    memcpy(sorted, p->rows, (size_t)p->n_rows * sizeof *sorted);
    qsort(sorted, (size_t)p->n_rows, sizeof *sorted, ts_profile_row_cmp);
    TsStatus st = TS_OK;
    for (int i = 1; i < p->n_rows; i++) {
        const TsProfileRow *a = &sorted[i - 1], *b = &sorted[i];
        if (a->width == b->width && a->height == b->height && a->degree == b->degree &&
            a->batch == b->batch) {
            st = ts_err(err, TS_ERR_INPUT,
                        "%s:%d: duplicate row for %dx%d degree %d batch %d (also on line %d)",
                        p->path, b->line, b->width, b->height, b->degree, b->batch, a->line);
            break;
        }
    }
    free(sorted);
    return st;
}

TsStatus ts_profile_load(const char *path, TsProfile *out, TsErr *err) {
    memset(out, 0, sizeof *out);
    TsProfile p = {0};
    p.path = ts_xstrdup(path);
    p.model = ts_xstrdup("");
    p.gpu = ts_xstrdup("");
    p.source = ts_xstrdup("");
    char *buf = NULL;
    size_t buf_cap = 0;
    int64_t rows_cap = 0;
    int col_of[COL_N], n_cols = 0, have_header = 0, line = 0;
    TsStatus st = TS_OK;

    FILE *f = fopen(path, "r");
    if (!f) {
        st = ts_err(err, TS_ERR_IO, "%s: cannot open profile: %s", path, strerror(errno));
        goto done;
    }
    ssize_t len;
    while ((len = getline(&buf, &buf_cap, f)) >= 0) {
        line++;
        if (memchr(buf, '\0', (size_t)len)) {
            st = ts_err(err, TS_ERR_INPUT, "%s:%d: NUL byte: not a text file", path, line);
            goto done;
        }
        char *s = buf;
        if (line == 1 && !strncmp(s, "\xEF\xBB\xBF", 3)) s += 3; /* spreadsheets write a BOM */
        s = ts_trim(s);
        if (!*s) continue;
        if (*s == '#') {
            char *key, *value;
            if (ts_profile_meta(s, &key, &value) &&
                (st = ts_profile_apply_meta(&p, key, value, line, err)))
                goto done;
            continue;
        }
        if (!have_header) {
            if ((st = ts_profile_header(&p, s, line, col_of, &n_cols, err))) goto done;
            have_header = 1;
            continue;
        }
        TS_GROW(p.rows, rows_cap, (int64_t)p.n_rows + 1);
        if ((st = ts_profile_row(&p, s, line, col_of, n_cols, &p.rows[p.n_rows], err))) goto done;
        p.n_rows++;
    }
    if (ferror(f)) {
        st = ts_err(err, TS_ERR_IO, "%s:%d: read error: %s", path, line + 1, strerror(errno));
        goto done;
    }
    if (!have_header) {
        st = ts_err(err, TS_ERR_INPUT, "%s:%d: empty profile: no header line and no rows", path,
                    line > 0 ? line : 1);
        goto done;
    }
    if (p.n_rows == 0) {
        st = ts_err(err, TS_ERR_INPUT, "%s:%d: no data rows after the header", path, line);
        goto done;
    }
    st = ts_profile_check_duplicates(&p, err);

done:
    if (f) fclose(f);
    free(buf);
    if (st == TS_OK)
        *out = p;
    else
        ts_profile_free(&p);
    return st;
}

void ts_profile_free(TsProfile *p) {
    if (!p) return;
    free(p->path);
    free(p->model);
    free(p->gpu);
    free(p->source);
    free(p->rows);
    memset(p, 0, sizeof *p);
}

/* ----------------------------------------------------------------- lookup */

/* Mean step_ms of rows at `tokens` with (degree, batch); 0 if none. */
static int ts_profile_level(const TsProfile *p, int64_t tokens, int32_t degree, int32_t batch,
                            double *step_ms) {
    double sum = 0;
    int n = 0;
    for (int i = 0; i < p->n_rows; i++) {
        const TsProfileRow *r = &p->rows[i];
        if (r->degree == degree && r->batch == batch && ts_tokens(r->width, r->height) == tokens) {
            sum += r->step_ms;
            n++;
        }
    }
    if (n) *step_ms = sum / n;
    return n > 0;
}

/* Append to s the degrees (ascending) present at batch on rows selected by
 * (w, h) when w > 0, else by tokens level lo (and hi, if >= 0: present at
 * both levels). */
static void ts_profile_list_degrees(const TsProfile *p, int32_t w, int32_t h, int64_t lo,
                                    int64_t hi, int32_t batch, char *s, size_t cap) {
    size_t used = strlen(s);
    int32_t last = 0;
    int any = 0;
    for (;;) {
        int32_t next = INT32_MAX;
        for (int i = 0; i < p->n_rows; i++) {
            const TsProfileRow *r = &p->rows[i];
            if (r->batch != batch || r->degree <= last || r->degree >= next) continue;
            int ok;
            double v;
            if (w > 0)
                ok = r->width == w && r->height == h;
            else
                ok = ts_tokens(r->width, r->height) == lo &&
                     (hi < 0 || ts_profile_level(p, hi, r->degree, batch, &v));
            if (ok) next = r->degree;
        }
        if (next == INT32_MAX) break;
        if (used < cap) used += (size_t)snprintf(s + used, cap - used, " %d", next);
        last = next;
        any = 1;
    }
    if (!any && used < cap) snprintf(s + used, cap - used, " none");
}

static TsStatus ts_profile_missing(const TsProfile *p, int32_t width, int32_t height,
                                   int32_t degree, int32_t batch, int32_t sel_w, int32_t sel_h,
                                   int64_t lo, int64_t hi, TsErr *err) {
    char what[64], where[96] = "", degs[160] = "";
    if (batch == 1)
        snprintf(what, sizeof what, "degree %d", degree);
    else
        snprintf(what, sizeof what, "degree %d batch %d", degree, batch);
    /* A resolution not in the table: say which rows decided. */
    if (sel_w <= 0 && hi >= 0)
        snprintf(where, sizeof where, "rows at %lld and %lld tokens; ", (long long)lo,
                 (long long)hi);
    else if (sel_w <= 0)
        snprintf(where, sizeof where, "rows at %lld tokens; ", (long long)lo);
    ts_profile_list_degrees(p, sel_w, sel_h, lo, hi, batch, degs, sizeof degs);
    return ts_err(err, TS_ERR_INPUT, "%s: no row for %s at %dx%d (%sdegrees there%s:%s)", p->path,
                  what, width, height, where, batch == 1 ? "" : " at that batch", degs);
}

TsStatus ts_profile_step_ms(const TsProfile *p, int32_t width, int32_t height, int32_t degree,
                            int32_t batch, double *step_ms, int *extrapolated, TsErr *err) {
    if (extrapolated) *extrapolated = 0;
    if (width <= 0 || height <= 0 || ts_tokens(width, height) <= 0)
        return ts_err(err, TS_ERR_INPUT, "%s: resolution %dx%d has no tokens", p->path, width,
                      height);
    if (p->n_rows <= 0) return ts_err(err, TS_ERR_INPUT, "%s: the profile has no rows", p->path);

    /* 1. The exact shape. */
    int shape_seen = 0;
    for (int i = 0; i < p->n_rows; i++) {
        const TsProfileRow *r = &p->rows[i];
        if (r->width != width || r->height != height) continue;
        shape_seen = 1;
        if (r->degree == degree && r->batch == batch) {
            *step_ms = r->step_ms;
            return TS_OK;
        }
    }
    if (shape_seen)
        return ts_profile_missing(p, width, height, degree, batch, width, height, -1, -1, err);

    /* 2. Token levels: the nearest at or below (lo) and at or above (hi). */
    int64_t t = ts_tokens(width, height), lo = -1, hi = -1;
    for (int i = 0; i < p->n_rows; i++) {
        int64_t rt = ts_tokens(p->rows[i].width, p->rows[i].height);
        if (rt <= t && rt > lo) lo = rt;
        if (rt >= t && (hi < 0 || rt < hi)) hi = rt;
    }
    double v_lo, v_hi;
    if (lo == t) {
        if (!ts_profile_level(p, lo, degree, batch, step_ms))
            return ts_profile_missing(p, width, height, degree, batch, 0, 0, lo, -1, err);
        return TS_OK;
    }
    if (lo >= 0 && hi >= 0) {
        if (!ts_profile_level(p, lo, degree, batch, &v_lo) ||
            !ts_profile_level(p, hi, degree, batch, &v_hi))
            return ts_profile_missing(p, width, height, degree, batch, 0, 0, lo, hi, err);
        *step_ms = v_lo + (v_hi - v_lo) * (double)(t - lo) / (double)(hi - lo);
        return TS_OK;
    }
    if (extrapolated) *extrapolated = 1;
    if (lo < 0) { /* below the table: hold */
        if (!ts_profile_level(p, hi, degree, batch, step_ms))
            return ts_profile_missing(p, width, height, degree, batch, 0, 0, hi, -1, err);
        return TS_OK;
    }
    /* Above the table: extend the last segment of this (degree, batch). */
    if (!ts_profile_level(p, lo, degree, batch, &v_hi))
        return ts_profile_missing(p, width, height, degree, batch, 0, 0, lo, -1, err);
    int64_t prev = -1;
    for (int i = 0; i < p->n_rows; i++) {
        const TsProfileRow *r = &p->rows[i];
        int64_t rt = ts_tokens(r->width, r->height);
        if (r->degree == degree && r->batch == batch && rt < lo && rt > prev) prev = rt;
    }
    if (prev < 0) {
        *step_ms = v_hi * (double)t / (double)lo;
    } else {
        ts_profile_level(p, prev, degree, batch, &v_lo);
        double slope = (v_hi - v_lo) / (double)(lo - prev);
        *step_ms = v_hi + (slope > 0 ? slope : 0) * (double)(t - lo);
    }
    return TS_OK;
}

static int ts_profile_all_degrees(const TsProfile *p, int32_t *degrees, int max) {
    int n = 0;
    int32_t last = 0;
    for (;;) {
        int32_t next = INT32_MAX;
        for (int i = 0; i < p->n_rows; i++) {
            int32_t d = p->rows[i].degree;
            if (d > last && d < next) next = d;
        }
        if (next == INT32_MAX) break;
        if (n < max) degrees[n] = next;
        n++;
        last = next;
    }
    return n;
}

int ts_profile_degrees(const TsProfile *p, int32_t *degrees, int max) {
    int n = ts_profile_all_degrees(p, degrees, max);
    return n < max ? n : max;
}

/* ------------------------------------------------------------- cost model */

static uint64_t ts_cost_hash(int32_t w, int32_t h) {
    uint64_t x = ((uint64_t)(uint32_t)w << 32) | (uint32_t)h;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return x;
}

/* Open-addressing table (w, h) -> resolution index, slots hold index + 1. */
typedef struct TsResSet {
    int *slot;
    int64_t cap; /* power of two */
} TsResSet;

static int ts_res_find(const TsResSet *s, const TsCostModel *cm, int32_t w, int32_t h,
                       int64_t *pos) {
    int64_t i = (int64_t)(ts_cost_hash(w, h) & (uint64_t)(s->cap - 1));
    for (;; i = (i + 1) & (s->cap - 1)) {
        int v = s->slot[i];
        if (!v || (cm->width[v - 1] == w && cm->height[v - 1] == h)) {
            *pos = i;
            return v - 1;
        }
    }
}

static void ts_res_rehash(TsResSet *s, const TsCostModel *cm) {
    s->cap *= 2;
    free(s->slot);
    s->slot = ts_xcalloc((size_t)s->cap, sizeof *s->slot);
    for (int r = 0; r < cm->n_res; r++) {
        int64_t pos;
        ts_res_find(s, cm, cm->width[r], cm->height[r], &pos);
        s->slot[pos] = r + 1;
    }
}

TsStatus ts_cost_build(TsCostModel *cm, const TsProfile *p, const struct TsTrace *t, int n_gpus,
                       int *res_of, TsErr *err) {
    memset(cm, 0, sizeof *cm);
    TsStatus st = TS_OK;
    TsResSet set = {NULL, 64};
    int64_t res_cap = 0, *first_req = NULL; /* id of the first request of each resolution */
    int32_t *all_deg = NULL;
    int n_all, batch_line = 0;
    int64_t min_tok = -1, max_tok = -1;

    if (p->n_rows <= 0) {
        st = ts_err(err, TS_ERR_INPUT, "%s: the profile has no rows", p->path);
        goto done;
    }
    if (n_gpus < 1) {
        st = ts_err(err, TS_ERR_INPUT, "--gpus %d: need at least one GPU", n_gpus);
        goto done;
    }

    /* Degrees usable on n_gpus. */
    n_all = ts_profile_all_degrees(p, NULL, 0);
    all_deg = ts_xmalloc((size_t)n_all * sizeof *all_deg);
    ts_profile_all_degrees(p, all_deg, n_all);
    for (int i = 0; i < n_all && all_deg[i] <= n_gpus; i++) {
        if (cm->n_deg == TS_MAX_DEGREES) {
            st = ts_err(err, TS_ERR_INPUT,
                        "%s: more than %d distinct degrees <= %d GPUs in the profile", p->path,
                        TS_MAX_DEGREES, n_gpus);
            goto done;
        }
        cm->degree[cm->n_deg++] = all_deg[i];
    }
    if (cm->n_deg == 0) {
        st = ts_err(err, TS_ERR_INPUT, "%s: no degree fits on %d GPUs (the smallest is %d)",
                    p->path, n_gpus, all_deg[0]);
        goto done;
    }

    cm->max_batch = 1;
    for (int i = 0; i < p->n_rows; i++) {
        if (p->rows[i].batch > cm->max_batch) {
            cm->max_batch = p->rows[i].batch;
            batch_line = p->rows[i].line;
        }
    }
    if (cm->max_batch > TS_MAX_BATCH) {
        st = ts_err(err, TS_ERR_INPUT, "%s:%d: batch %d is above the supported maximum %d",
                    p->path, batch_line, cm->max_batch, TS_MAX_BATCH);
        cm->max_batch = 0;
        goto done;
    }
    cm->overhead_s = p->request_overhead_ms / 1000.0;

    /* Distinct resolutions in trace order. */
    set.slot = ts_xcalloc((size_t)set.cap, sizeof *set.slot);
    for (int64_t i = 0; i < t->n; i++) {
        int32_t w = t->req[i].width, h = t->req[i].height;
        int64_t pos;
        int r = ts_res_find(&set, cm, w, h, &pos);
        if (r < 0) {
            if (ts_tokens(w, h) <= 0) {
                st = ts_err(err, TS_ERR_INPUT, "%s: request %lld has resolution %dx%d",
                            t->path ? t->path : "trace", (long long)t->req[i].id, w, h);
                goto done;
            }
            int64_t cap = res_cap;
            TS_GROW(cm->width, cap, (int64_t)cm->n_res + 1);
            cap = res_cap;
            TS_GROW(cm->height, cap, (int64_t)cm->n_res + 1);
            cap = res_cap;
            TS_GROW(cm->tokens, cap, (int64_t)cm->n_res + 1);
            cap = res_cap;
            TS_GROW(first_req, cap, (int64_t)cm->n_res + 1);
            res_cap = cap;
            r = cm->n_res++;
            cm->width[r] = w;
            cm->height[r] = h;
            cm->tokens[r] = ts_tokens(w, h);
            first_req[r] = t->req[i].id;
            set.slot[pos] = r + 1;
            if ((int64_t)cm->n_res * 2 > set.cap) ts_res_rehash(&set, cm);
        }
        if (res_of) res_of[i] = r;
    }

    /* Step times. */
    for (int i = 0; i < p->n_rows; i++) {
        int64_t rt = ts_tokens(p->rows[i].width, p->rows[i].height);
        if (min_tok < 0 || rt < min_tok) min_tok = rt;
        if (rt > max_tok) max_tok = rt;
    }
    cm->step_s = ts_xmalloc((size_t)(cm->n_res > 0 ? cm->n_res : 1) * (size_t)cm->n_deg *
                            (size_t)cm->max_batch * sizeof *cm->step_s);
    for (int r = 0; r < cm->n_res; r++) {
        int warned = 0, usable = 0;
        for (int d = 0; d < cm->n_deg; d++) {
            for (int b = 1; b <= cm->max_batch; b++) {
                double ms = NAN;
                int extra = 0;
                TsErr ignored;
                if (ts_profile_step_ms(p, cm->width[r], cm->height[r], cm->degree[d], b, &ms,
                                       &extra, &ignored) != TS_OK)
                    ms = NAN;
                cm->step_s[((int64_t)r * cm->n_deg + d) * cm->max_batch + (b - 1)] = ms / 1000.0;
                if (!isnan(ms) && b == 1) usable = 1;
                if (!isnan(ms) && extra && !warned) {
                    ts_warn("%s: %dx%d is outside the profiled range (%lld..%lld tokens): step "
                            "times extrapolated",
                            p->path, cm->width[r], cm->height[r], (long long)min_tok,
                            (long long)max_tok);
                    warned = 1;
                }
            }
        }
        if (!usable) {
            TsErr why;
            double ms;
            ts_profile_step_ms(p, cm->width[r], cm->height[r], cm->degree[0], 1, &ms, NULL, &why);
            st = ts_err(err, TS_ERR_INPUT,
                        "%s: resolution %dx%d (first requested by id %lld) has no degree <= %d "
                        "GPUs at batch 1; %s",
                        p->path, cm->width[r], cm->height[r], (long long)first_req[r], n_gpus,
                        why.msg);
            goto done;
        }
    }

done:
    free(set.slot);
    free(all_deg);
    free(first_req);
    if (st != TS_OK) ts_cost_free(cm);
    return st;
}

void ts_cost_free(TsCostModel *cm) {
    if (!cm) return;
    free(cm->width);
    free(cm->height);
    free(cm->tokens);
    free(cm->step_s);
    memset(cm, 0, sizeof *cm);
}

int ts_cost_degree_index(const TsCostModel *cm, int32_t degree) {
    for (int d = 0; d < cm->n_deg; d++)
        if (cm->degree[d] == degree) return d;
    return -1;
}

double ts_cost_step_at(const TsCostModel *cm, int res, int32_t degree, int batch) {
    int d = ts_cost_degree_index(cm, degree);
    return d >= 0 && batch >= 1 && batch <= cm->max_batch ? ts_cost_step_s(cm, res, d, batch) : NAN;
}

TsStatus ts_cost_build_exec(TsCostModel *exec, const TsProfile *xp, const struct TsTrace *t, int n_gpus,
                            const TsCostModel *plan, const char *plan_path, TsErr *err) {
    TsStatus rc = ts_cost_build(exec, xp, t, n_gpus, NULL, err);
    if (rc) return rc;
    for (int r = 0; r < plan->n_res; r++)
        for (int d = 0; d < plan->n_deg; d++)
            for (int b = 1; b <= plan->max_batch; b++)
                if (ts_cost_step_s(plan, r, d, b) > 0 && !(ts_cost_step_at(exec, r, plan->degree[d], b) > 0)) {
                    ts_cost_free(exec);
                    return ts_err(err, TS_ERR_INPUT, "%s: no step time for %dx%d at degree %d batch %d, which %s has",
                                  xp->path, plan->width[r], plan->height[r], plan->degree[d], b, plan_path);
                }
    return TS_OK;
}
