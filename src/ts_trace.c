/* ts_trace.c - request traces: CSV load/save, default SLOs, resolution mixes,
 * trace generation and the `trace-gen` verb.
 *
 * Loading refuses a malformed file as a whole, naming the first offending
 * line, so that no policy ever runs on a half-understood trace. */
#include "ts_trace.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>

/* ---- Loading ---------------------------------------------------------- */

enum { COL_ID, COL_ARRIVAL, COL_WIDTH, COL_HEIGHT, COL_STEPS, COL_SLO, COL_N };
/* Far beyond any DiT resolution, and small enough that tokens never overflow. */
#define TS_TRACE_MAX_PX (1 << 20)

static const char *const col_name[COL_N] = {"id", "arrival_s", "width", "height", "steps", "slo_s"};

/* Open-addressing set of ids seen so far (id -> line of first occurrence),
 * so that a duplicate is reported at its own line, in file order. */
typedef struct IdSlot {
    int64_t id;
    int64_t line; /* 0 = empty slot */
} IdSlot;
typedef struct IdSet {
    IdSlot *slot;
    int64_t cap; /* power of two */
    int64_t n;
} IdSet;

static uint64_t id_hash(int64_t id) {
    uint64_t x = (uint64_t)id;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

static void idset_free(IdSet *s) {
    free(s->slot);
    memset(s, 0, sizeof *s);
}

/* Returns 0 if inserted, else the line of the earlier occurrence. */
static int64_t idset_insert(IdSet *s, int64_t id, int64_t line) {
    if (2 * (s->n + 1) > s->cap) {
        IdSet big = {0};
        big.cap = s->cap ? 2 * s->cap : 1024;
        while (2 * (s->n + 1) > big.cap) big.cap *= 2;
        big.slot = ts_xcalloc((size_t)big.cap, sizeof *big.slot);
        for (int64_t i = 0; i < s->cap; i++)
            if (s->slot[i].line) idset_insert(&big, s->slot[i].id, s->slot[i].line);
        idset_free(s);
        *s = big;
    }
    uint64_t mask = (uint64_t)s->cap - 1;
    for (uint64_t h = id_hash(id) & mask;; h = (h + 1) & mask) {
        IdSlot *e = &s->slot[h];
        if (!e->line) {
            e->id = id;
            e->line = line;
            s->n++;
            return 0;
        }
        if (e->id == id) return e->line;
    }
}

static int is_blank(char c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

/* Split line in place at commas; returns the number of fields (which may
 * exceed max: only the first max pointers are stored). Fields are trimmed. */
static int64_t split_fields(char *line, char **field, int64_t max) {
    int64_t n = 0;
    char *p = line;
    for (;;) {
        char *end = p;
        while (*end && *end != ',') end++;
        int last = *end == '\0';
        char *q = end;
        while (q > p && is_blank(q[-1])) q--;
        *q = '\0';
        while (is_blank(*p)) p++;
        if (n < max) field[n] = p;
        n++;
        if (last) break;
        p = end + 1;
    }
    return n;
}

/* Strip the newline (LF or CRLF) and blanks; NULL for blank or comment lines. */
static char *content_of(char *line, int64_t lineno) {
    /* A UTF-8 byte-order mark (spreadsheet exports) is not part of the header. */
    if (lineno == 1 && (unsigned char)line[0] == 0xEF && (unsigned char)line[1] == 0xBB &&
        (unsigned char)line[2] == 0xBF)
        line += 3;
    char *s = ts_trim(line);
    if (!*s || *s == '#') return NULL;
    return s;
}

/* Parse a floating field; the message names the column and the bad text. */
static TsStatus field_double(const char *path, int64_t line, int col, const char *text, double *out,
                             TsErr *err) {
    if (ts_parse_double(text, out) == 0) return TS_OK;
    char *end;
    double v = strtod(text, &end);
    if (end != text && *end == '\0' && !isfinite(v))
        return ts_err(err, TS_ERR_INPUT, "%s:%" PRId64 ": %s '%s' is not a finite number", path, line,
                      col_name[col], text);
    return ts_err(err, TS_ERR_INPUT, "%s:%" PRId64 ": %s '%s' is not a number", path, line,
                  col_name[col], text);
}

/* Parse an integer field: "28.5" or "28.0" is refused, not truncated. */
static TsStatus field_int(const char *path, int64_t line, int col, const char *text, int64_t *out,
                          TsErr *err) {
    /* Fast path for plain digits (most of a trace); strtoll handles the rest. */
    const char *c = text + (*text == '-');
    if (*c && strlen(c) <= 18) {
        int64_t v = 0;
        while (*c >= '0' && *c <= '9') v = 10 * v + (*c++ - '0');
        if (!*c) {
            *out = *text == '-' ? -v : v;
            return TS_OK;
        }
    }
    if (ts_parse_int64(text, out) == 0) return TS_OK;
    double v;
    if (ts_parse_double(text, &v) == 0)
        return ts_err(err, TS_ERR_INPUT, "%s:%" PRId64 ": %s '%s' is not an integer", path, line,
                      col_name[col], text);
    return field_double(path, line, col, text, &v, err);
}

static TsStatus check_size(const char *path, int64_t line, int col, int64_t v, TsErr *err) {
    if (v <= 0 || v % 16 != 0)
        return ts_err(err, TS_ERR_INPUT,
                      "%s:%" PRId64 ": %s %" PRId64 " is not a positive multiple of 16", path, line,
                      col_name[col], v);
    if (v > TS_TRACE_MAX_PX)
        return ts_err(err, TS_ERR_INPUT, "%s:%" PRId64 ": %s %" PRId64 " is too large (max %d)", path,
                      line, col_name[col], v, TS_TRACE_MAX_PX);
    return TS_OK;
}

/* Fields of one data row (already split) into a request. */
static TsStatus parse_row(const char *path, int64_t line, char **field, const int64_t *col_at,
                          TsRequest *r, TsErr *err) {
    int64_t id, width, height, steps;
    double arrival, slo;
    TsStatus st;
    if ((st = field_int(path, line, COL_ID, field[col_at[COL_ID]], &id, err))) return st;
    if ((st = field_double(path, line, COL_ARRIVAL, field[col_at[COL_ARRIVAL]], &arrival, err)))
        return st;
    if ((st = field_int(path, line, COL_WIDTH, field[col_at[COL_WIDTH]], &width, err))) return st;
    if ((st = field_int(path, line, COL_HEIGHT, field[col_at[COL_HEIGHT]], &height, err))) return st;
    if ((st = field_int(path, line, COL_STEPS, field[col_at[COL_STEPS]], &steps, err))) return st;
    if ((st = field_double(path, line, COL_SLO, field[col_at[COL_SLO]], &slo, err))) return st;

    if (id < 0)
        return ts_err(err, TS_ERR_INPUT, "%s:%" PRId64 ": id %" PRId64 " is negative", path, line, id);
    if (arrival < 0)
        return ts_err(err, TS_ERR_INPUT, "%s:%" PRId64 ": arrival_s %s is negative", path, line,
                      field[col_at[COL_ARRIVAL]]);
    if ((st = check_size(path, line, COL_WIDTH, width, err))) return st;
    if ((st = check_size(path, line, COL_HEIGHT, height, err))) return st;
    if (steps < 1)
        return ts_err(err, TS_ERR_INPUT, "%s:%" PRId64 ": steps %" PRId64 " must be >= 1", path, line,
                      steps);
    if (steps > INT32_MAX)
        return ts_err(err, TS_ERR_INPUT, "%s:%" PRId64 ": steps %" PRId64 " is too large", path, line,
                      steps);
    if (slo <= 0)
        return ts_err(err, TS_ERR_INPUT, "%s:%" PRId64 ": slo_s %s must be > 0", path, line,
                      field[col_at[COL_SLO]]);
    r->id = id;
    r->arrival_s = arrival;
    r->width = (int32_t)width;
    r->height = (int32_t)height;
    r->steps = (int32_t)steps;
    r->slo_s = slo;
    return TS_OK;
}

/* The header: where each required column is, and how many fields a row has. */
static TsStatus parse_header(const char *path, int64_t line, char *text, int64_t *col_at,
                             int64_t *ncols, char ***field, TsErr *err) {
    /* Count first so that the field array is allocated once for the file. */
    int64_t n = 1;
    for (const char *c = text; *c; c++) n += *c == ',';
    *field = ts_xmalloc((size_t)n * sizeof **field);
    *ncols = split_fields(text, *field, n);
    for (int c = 0; c < COL_N; c++) col_at[c] = -1;
    for (int64_t i = 0; i < *ncols; i++)
        for (int c = 0; c < COL_N; c++) {
            if (strcmp((*field)[i], col_name[c]) != 0) continue;
            if (col_at[c] >= 0)
                return ts_err(err, TS_ERR_INPUT, "%s:%" PRId64 ": column '%s' appears twice in the header",
                              path, line, col_name[c]);
            col_at[c] = i;
        }
    for (int c = 0; c < COL_N; c++)
        if (col_at[c] < 0)
            return ts_err(err, TS_ERR_INPUT,
                          "%s:%" PRId64 ": missing column '%s' (the header needs id, arrival_s, "
                          "width, height, steps, slo_s)",
                          path, line, col_name[c]);
    return TS_OK;
}

TsStatus ts_trace_load(const char *path, TsTrace *out, TsErr *err) {
    TsStatus st = TS_OK;
    TsTrace t = {0};
    IdSet ids = {0};
    char *buf = NULL, **field = NULL;
    size_t bufcap = 0;
    int64_t *row_line = NULL, row_line_cap = 0;
    int ids_monotone = 1;
    int64_t cap = 0, lineno = 0, header_line = 0, ncols = 0, col_at[COL_N];
    memset(out, 0, sizeof *out);

    FILE *f = fopen(path, "r");
    if (!f) return ts_err(err, TS_ERR_IO, "%s: cannot open: %s", path, strerror(errno));

    ssize_t len;
    while ((len = getline(&buf, &bufcap, f)) >= 0) {
        lineno++;
        if ((size_t)len != strlen(buf)) {
            st = ts_err(err, TS_ERR_INPUT, "%s:%" PRId64 ": NUL byte in line (not a text CSV file)",
                        path, lineno);
            goto cleanup;
        }
        char *s = content_of(buf, lineno);
        if (!s) continue;
        if (!header_line) {
            header_line = lineno;
            if ((st = parse_header(path, lineno, s, col_at, &ncols, &field, err))) goto cleanup;
            continue;
        }
        int64_t nf = split_fields(s, field, ncols);
        if (nf != ncols) {
            st = ts_err(err, TS_ERR_INPUT,
                        "%s:%" PRId64 ": %" PRId64 " fields, but the header (line %" PRId64
                        ") has %" PRId64,
                        path, lineno, nf, header_line, ncols);
            goto cleanup;
        }
        TS_GROW(t.req, cap, t.n + 1);
        TsRequest *r = &t.req[t.n];
        if ((st = parse_row(path, lineno, field, col_at, r, err))) goto cleanup;
        /* Ids that only grow cannot repeat: the set is built only once they do not. */
        TS_GROW(row_line, row_line_cap, t.n + 1);
        row_line[t.n] = lineno;
        int64_t first = 0;
        if (ids_monotone && (t.n == 0 || r->id > t.req[t.n - 1].id)) {
            /* nothing to check */
        } else {
            if (ids_monotone) {
                ids_monotone = 0;
                for (int64_t i = 0; i < t.n; i++) idset_insert(&ids, t.req[i].id, row_line[i]);
            }
            first = idset_insert(&ids, r->id, lineno);
        }
        if (first) {
            st = ts_err(err, TS_ERR_INPUT,
                        "%s:%" PRId64 ": duplicate id %" PRId64 " (first at line %" PRId64 ")", path,
                        lineno, r->id, first);
            goto cleanup;
        }
        t.n++;
    }
    if (ferror(f)) {
        st = ts_err(err, TS_ERR_IO, "%s:%" PRId64 ": read error: %s", path, lineno + 1, strerror(errno));
        goto cleanup;
    }
    if (!header_line) {
        st = ts_err(err, TS_ERR_INPUT, "%s:%" PRId64 ": empty trace: no header line", path,
                    lineno ? lineno : 1);
        goto cleanup;
    }
    if (t.n == 0) {
        st = ts_err(err, TS_ERR_INPUT, "%s:%" PRId64 ": header but no requests", path, header_line);
        goto cleanup;
    }
    t.path = ts_xstrdup(path);
    ts_trace_sort(&t);
    *out = t;

cleanup:
    if (st) free(t.req);
    free(buf);
    free(field);
    free(row_line);
    idset_free(&ids);
    fclose(f);
    return st;
}

static int cmp_request(const void *a, const void *b) {
    const TsRequest *x = a, *y = b;
    if (x->arrival_s != y->arrival_s) return x->arrival_s < y->arrival_s ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

void ts_trace_sort(TsTrace *t) {
    if (t->n > 1) qsort(t->req, (size_t)t->n, sizeof *t->req, cmp_request);
}

void ts_trace_free(TsTrace *t) {
    if (!t) return;
    free(t->path);
    free(t->req);
    memset(t, 0, sizeof *t);
}

/* ---- Saving ------------------------------------------------------------ */

static void write_comment(FILE *f, const char *text) {
    while (*text) {
        size_t n = strcspn(text, "\n");
        size_t m = n;
        if (m > 0 && text[m - 1] == '\r') m--;
        if (m) fprintf(f, "# %.*s\n", (int)m, text);
        else fputs("#\n", f);
        text += n;
        if (*text == '\n') text++;
    }
}

TsStatus ts_trace_save(const char *path, const TsTrace *t, const char *header_comment, TsErr *err) {
    TsStatus st = TS_OK;
    size_t plen = strlen(path);
    char *tmp = ts_xmalloc(plen + 5);
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp", 5);

    FILE *f = fopen(tmp, "w");
    if (!f) {
        st = ts_err(err, TS_ERR_IO, "%s: cannot write (via %s): %s", path, tmp, strerror(errno));
        goto cleanup;
    }
    if (header_comment) write_comment(f, header_comment);
    fputs("id,arrival_s,width,height,steps,slo_s\n", f);
    for (int64_t i = 0; i < t->n; i++) {
        const TsRequest *r = &t->req[i];
        fprintf(f, "%" PRId64 ",%.6f,%" PRId32 ",%" PRId32 ",%" PRId32 ",%.6f\n", r->id, r->arrival_s,
                r->width, r->height, r->steps, r->slo_s);
    }
    int failed = ferror(f), werr = errno;
    if (fclose(f) != 0) {
        if (!failed) werr = errno;
        failed = 1;
    }
    if (failed) {
        st = ts_err(err, TS_ERR_IO, "%s: write failed (via %s): %s", path, tmp,
                    strerror(werr ? werr : EIO));
        remove(tmp);
        goto cleanup;
    }
    if (rename(tmp, path) != 0) {
        st = ts_err(err, TS_ERR_IO, "%s: cannot rename %s into place: %s", path, tmp, strerror(errno));
        remove(tmp);
        goto cleanup;
    }
cleanup:
    free(tmp);
    return st;
}

/* ---- Default SLOs ------------------------------------------------------ */

double ts_slo_default_s(int32_t width, int32_t height) {
    static const double tok[] = {256, 1024, 4096, 16384};
    static const double slo[] = {1.5, 2.0, 3.0, 5.0};
    double x = (double)ts_tokens(width, height);
    if (x <= tok[0]) return slo[0];
    int k = 0;
    while (k < 2 && x > tok[k + 1]) k++; /* segment [k, k+1]; the last one extends upwards */
    return slo[k] + (slo[k + 1] - slo[k]) * (x - tok[k]) / (tok[k + 1] - tok[k]);
}

/* ---- Mixes ------------------------------------------------------------- */

static const int32_t paper_sizes[4] = {256, 512, 1024, 2048};

static TsStatus mix_paper(TsMix *mix, int skewed) {
    memset(mix, 0, sizeof *mix);
    mix->n = 4;
    double max_tokens = (double)ts_tokens(2048, 2048), sum = 0;
    for (int i = 0; i < 4; i++) {
        mix->width[i] = mix->height[i] = paper_sizes[i];
        mix->p[i] = skewed ? exp((double)ts_tokens(paper_sizes[i], paper_sizes[i]) / max_tokens) : 1.0;
        sum += mix->p[i];
    }
    for (int i = 0; i < 4; i++) mix->p[i] /= sum;
    return TS_OK;
}

/* A mix size "512" (square) or "512x768"; positive multiples of 16. */
static TsStatus mix_size(const char *spec, char *text, int32_t *w, int32_t *h, TsErr *err) {
    char *x = strchr(text, 'x');
    int wv, hv;
    if (x) *x = '\0';
    int bad = ts_parse_int(text, &wv) != 0;
    if (!bad) bad = x ? ts_parse_int(x + 1, &hv) != 0 : (hv = wv, 0);
    if (x) *x = 'x';
    if (bad)
        return ts_err(err, TS_ERR_INPUT, "mix '%s': size '%s' is not W or WxH in pixels", spec, text);
    if (wv <= 0 || hv <= 0 || wv % 16 || hv % 16)
        return ts_err(err, TS_ERR_INPUT, "mix '%s': size '%s' is not a positive multiple of 16", spec,
                      text);
    *w = wv;
    *h = hv;
    return TS_OK;
}

TsStatus ts_mix_parse(const char *spec, TsMix *mix, TsErr *err) {
    memset(mix, 0, sizeof *mix);
    if (!spec) return ts_err(err, TS_ERR_INPUT, "mix: missing");
    if (strcmp(spec, "uniform") == 0) return mix_paper(mix, 0);
    if (strcmp(spec, "skewed") == 0) return mix_paper(mix, 1);

    TsStatus st = TS_OK;
    TsMix m = {0};
    char *copy = ts_xstrdup(spec);
    double sum = 0;
    int entries = 0;
    /* Not strtok: it would merge empty entries ("512:1,,1024:1"); refuse them instead. */
    for (char *start = copy; start;) {
        char *comma = strchr(start, ',');
        if (comma) *comma = '\0';
        char *next = comma ? comma + 1 : NULL;
        char *item = ts_trim(start);
        entries++;
        if (!*item) {
            st = ts_err(err, TS_ERR_INPUT, "mix '%s': entry %d is empty (expected W:P or WxH:P)", spec,
                        entries);
            goto cleanup;
        }
        char *colon = strchr(item, ':');
        if (!colon) {
            st = ts_err(err, TS_ERR_INPUT,
                        "mix '%s': entry '%s' is not W:P or WxH:P (use uniform, skewed or e.g. "
                        "512:1,1024x768:2)",
                        spec, item);
            goto cleanup;
        }
        if (m.n == TS_MIX_MAX) {
            st = ts_err(err, TS_ERR_INPUT, "mix '%s': more than %d entries", spec, TS_MIX_MAX);
            goto cleanup;
        }
        *colon = '\0';
        char *size = ts_trim(item), *weight = ts_trim(colon + 1);
        if ((st = mix_size(spec, size, &m.width[m.n], &m.height[m.n], err))) goto cleanup;
        double pw;
        if (ts_parse_double(weight, &pw) != 0) {
            st = ts_err(err, TS_ERR_INPUT, "mix '%s': weight '%s' of %s is not a number", spec, weight,
                        size);
            goto cleanup;
        }
        if (pw < 0) {
            st = ts_err(err, TS_ERR_INPUT, "mix '%s': weight %s of %s is negative", spec, weight, size);
            goto cleanup;
        }
        for (int i = 0; i < m.n; i++)
            if (m.width[i] == m.width[m.n] && m.height[i] == m.height[m.n]) {
                st = ts_err(err, TS_ERR_INPUT, "mix '%s': size %" PRId32 "x%" PRId32 " is listed twice",
                            spec, m.width[i], m.height[i]);
                goto cleanup;
            }
        m.p[m.n++] = pw;
        sum += pw;
        start = next;
    }
    if (!(sum > 0) || !isfinite(sum)) {
        st = ts_err(err, TS_ERR_INPUT, "mix '%s': weights must be finite and not all zero", spec);
        goto cleanup;
    }
    for (int i = 0; i < m.n; i++) m.p[i] /= sum;
    *mix = m;
cleanup:
    free(copy);
    return st;
}

/* ---- Generation -------------------------------------------------------- */

TsStatus ts_trace_generate(const TsTraceGenArgs *a, TsTrace *out, TsErr *err) {
    memset(out, 0, sizeof *out);
    if (a->n < 1) return ts_err(err, TS_ERR_INPUT, "trace-gen: n %" PRId64 " must be >= 1", a->n);
    if (!(a->rate_per_min > 0) || !isfinite(a->rate_per_min))
        return ts_err(err, TS_ERR_INPUT, "trace-gen: rate %g per minute must be > 0", a->rate_per_min);
    if (a->steps < 1)
        return ts_err(err, TS_ERR_INPUT, "trace-gen: steps %" PRId32 " must be >= 1", a->steps);
    if (a->arrival != TS_ARRIVAL_POISSON && a->arrival != TS_ARRIVAL_GAMMA)
        return ts_err(err, TS_ERR_INPUT, "trace-gen: unknown arrival process %d", (int)a->arrival);
    if (a->arrival == TS_ARRIVAL_GAMMA && (!(a->gamma_cv > 0) || !isfinite(a->gamma_cv)))
        return ts_err(err, TS_ERR_INPUT, "trace-gen: gamma cv %g must be > 0", a->gamma_cv);
    if (a->mix.n < 1 || a->mix.n > TS_MIX_MAX)
        return ts_err(err, TS_ERR_INPUT, "trace-gen: mix has %d entries", a->mix.n);
    double psum = 0;
    for (int i = 0; i < a->mix.n; i++) {
        if (!(a->mix.p[i] >= 0) || !isfinite(a->mix.p[i]))
            return ts_err(err, TS_ERR_INPUT, "trace-gen: mix weight %g is not >= 0", a->mix.p[i]);
        if (a->mix.width[i] <= 0 || a->mix.height[i] <= 0 || a->mix.width[i] % 16 ||
            a->mix.height[i] % 16)
            return ts_err(err, TS_ERR_INPUT,
                          "trace-gen: mix size %" PRId32 "x%" PRId32 " is not a positive multiple of 16",
                          a->mix.width[i], a->mix.height[i]);
        psum += a->mix.p[i];
    }
    if (!(psum > 0)) return ts_err(err, TS_ERR_INPUT, "trace-gen: mix weights are all zero");

    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    if (!rng) return ts_err(err, TS_ERR_SYSTEM, "trace-gen: cannot allocate the GSL generator");
    gsl_rng_set(rng, (unsigned long)a->seed);
    gsl_ran_discrete_t *pick = gsl_ran_discrete_preproc((size_t)a->mix.n, a->mix.p);
    if (!pick) {
        gsl_rng_free(rng);
        return ts_err(err, TS_ERR_INTERNAL, "trace-gen: cannot build the mix sampler");
    }

    double mean_gap_s = 60.0 / a->rate_per_min;
    double cv2 = a->gamma_cv * a->gamma_cv;
    TsTrace t = {0};
    t.path = ts_xstrdup("<generated>");
    t.n = a->n;
    t.req = ts_xmalloc((size_t)a->n * sizeof *t.req);
    double clock_s = 0; /* unrounded, so that rounding does not drift the rate */
    for (int64_t i = 0; i < a->n; i++) {
        double gap = a->arrival == TS_ARRIVAL_GAMMA ? gsl_ran_gamma(rng, 1.0 / cv2, mean_gap_s * cv2)
                                                    : gsl_ran_exponential(rng, mean_gap_s);
        clock_s += gap;
        size_t k = gsl_ran_discrete(rng, pick);
        TsRequest *r = &t.req[i];
        r->id = i;
        /* Microseconds: exactly what "%.6f" in the saved file reads back as. */
        r->arrival_s = round(clock_s * 1e6) / 1e6;
        r->width = a->mix.width[k];
        r->height = a->mix.height[k];
        r->steps = a->steps;
        r->slo_s = round(ts_slo_default_s(r->width, r->height) * 1e6) / 1e6;
    }
    gsl_ran_discrete_free(pick);
    gsl_rng_free(rng);
    ts_trace_sort(&t); /* already in order; keeps the invariant explicit */
    *out = t;
    return TS_OK;
}

/* ---- The trace-gen verb ------------------------------------------------ */

static const char trace_gen_usage[] =
    "usage: tetriserve trace-gen --n N --rate R_PER_MIN --mix uniform|skewed|W:P,...\n"
    "                            [--steps S] [--arrival poisson|gamma:CV] [--seed S] --out F.csv\n"
    "\n"
    "Draw a request trace (SPEC.md \"Trace file\") and write it as CSV.\n"
    "\n"
    "  --n N           number of requests (>= 1)\n"
    "  --rate R        mean arrival rate, requests per minute (> 0)\n"
    "  --mix M         resolution mix: uniform (256, 512, 1024, 2048 square, equal shares),\n"
    "                  skewed (same sizes, p proportional to exp(tokens / max tokens)),\n"
    "                  or W:P,... with W a square size (512) or WxH (512x768) and P a weight >= 0\n"
    "  --steps S       denoising steps per request (default 28)\n"
    "  --arrival A     poisson (exponential gaps, default) or gamma:CV (gamma gaps with\n"
    "                  coefficient of variation CV > 0)\n"
    "  --seed S        seed of the GSL mt19937 generator (default 1)\n"
    "  --out F.csv     output file (written atomically)\n"
    "  --help          this text\n"
    "\n"
    "SLOs are the paper's defaults (256: 1.5 s, 512: 2.0, 1024: 3.0, 2048: 5.0; others\n"
    "interpolated in tokens). The file's header comment records the command that made it.\n";

/* One line on stderr; returns code (2 for usage errors, 1 for others). */
static int gen_fail(int code, const char *fmt, ...) TS_PRINTF(2, 3);
static int gen_fail(int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("tetriserve trace-gen: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return code;
}

/* Append s to buf, single-quoted for the shell if it needs to be. */
static void append_shell_word(char *buf, size_t cap, const char *s) {
    size_t len = strlen(buf);
    int plain = *s != '\0';
    for (const char *c = s; *c; c++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./:,=+-@%", *c))
            plain = 0;
    if (plain) {
        snprintf(buf + len, cap - len, "%s", s);
        return;
    }
    if (len + 1 < cap) buf[len++] = '\'';
    for (const char *c = s; *c && len + 5 < cap; c++) {
        if (*c == '\'') {
            memcpy(buf + len, "'\\''", 4);
            len += 4;
        } else {
            buf[len++] = *c;
        }
    }
    if (len + 1 < cap) buf[len++] = '\'';
    buf[len < cap ? len : cap - 1] = '\0';
}

int ts_cmd_trace_gen(int argc, char **argv) {
    static const struct option opts[] = {
        {"n", required_argument, NULL, 'n'},       {"rate", required_argument, NULL, 'r'},
        {"mix", required_argument, NULL, 'm'},     {"steps", required_argument, NULL, 's'},
        {"arrival", required_argument, NULL, 'a'}, {"seed", required_argument, NULL, 'S'},
        {"out", required_argument, NULL, 'o'},     {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *n_s = NULL, *rate_s = NULL, *mix_s = NULL, *steps_s = "28", *arrival_s = "poisson",
               *seed_s = "1", *out_s = NULL;
    /* optind = 0 fully reinitialises GNU getopt, so the verb can be run twice in one process. */
    optind = 0;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'n': n_s = optarg; break;
        case 'r': rate_s = optarg; break;
        case 'm': mix_s = optarg; break;
        case 's': steps_s = optarg; break;
        case 'a': arrival_s = optarg; break;
        case 'S': seed_s = optarg; break;
        case 'o': out_s = optarg; break;
        case 'h': fputs(trace_gen_usage, stdout); return 0;
        case ':': return gen_fail(2, "%s: missing value", argv[optind - 1]);
        default: return gen_fail(2, "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc) return gen_fail(2, "unexpected argument '%s'", argv[optind]);

    TsTraceGenArgs a = {0};
    TsErr err;
    if (!n_s) return gen_fail(2, "--n: required");
    if (!rate_s) return gen_fail(2, "--rate: required");
    if (!mix_s) return gen_fail(2, "--mix: required");
    if (!out_s || !*out_s) return gen_fail(2, "--out: required");
    if (ts_parse_int64(n_s, &a.n) || a.n < 1)
        return gen_fail(2, "--n: '%s' must be an integer >= 1", n_s);
    if (ts_parse_double(rate_s, &a.rate_per_min) || !(a.rate_per_min > 0))
        return gen_fail(2, "--rate: '%s' must be a number > 0 (requests per minute)", rate_s);
    if (ts_mix_parse(mix_s, &a.mix, &err)) return gen_fail(2, "--mix: %s", err.msg);
    int steps;
    if (ts_parse_int(steps_s, &steps) || steps < 1)
        return gen_fail(2, "--steps: '%s' must be an integer >= 1", steps_s);
    a.steps = steps;
    const char *cv_s = NULL;
    if (strcmp(arrival_s, "poisson") == 0) {
        a.arrival = TS_ARRIVAL_POISSON;
    } else if (strncmp(arrival_s, "gamma:", 6) == 0) {
        cv_s = arrival_s + 6;
        a.arrival = TS_ARRIVAL_GAMMA;
        if (ts_parse_double(cv_s, &a.gamma_cv) || !(a.gamma_cv > 0))
            return gen_fail(2, "--arrival: '%s': CV must be a number > 0", arrival_s);
    } else {
        return gen_fail(2, "--arrival: '%s' is not poisson or gamma:CV", arrival_s);
    }
    int64_t seed;
    if (ts_parse_int64(seed_s, &seed) || seed < 0)
        return gen_fail(2, "--seed: '%s' must be an integer >= 0", seed_s);
    a.seed = (uint64_t)seed;

    TsTrace t;
    if (ts_trace_generate(&a, &t, &err)) {
        fprintf(stderr, "tetriserve trace-gen: %s\n", err.msg);
        return 1;
    }

    /* The header records how to make this exact file again. */
    char cmd[1024] = "tetriserve trace-gen --n ";
    snprintf(cmd + strlen(cmd), sizeof cmd - strlen(cmd), "%" PRId64 " --rate ", a.n);
    append_shell_word(cmd, sizeof cmd, rate_s);
    snprintf(cmd + strlen(cmd), sizeof cmd - strlen(cmd), " --mix ");
    append_shell_word(cmd, sizeof cmd, mix_s);
    snprintf(cmd + strlen(cmd), sizeof cmd - strlen(cmd), " --steps %" PRId32 " --arrival ", a.steps);
    append_shell_word(cmd, sizeof cmd, arrival_s);
    snprintf(cmd + strlen(cmd), sizeof cmd - strlen(cmd), " --seed %" PRIu64 " --out ", a.seed);
    append_shell_word(cmd, sizeof cmd, out_s);

    char mixdesc[1024];
    int off = snprintf(mixdesc, sizeof mixdesc, "mix %s:", mix_s);
    for (int i = 0; i < a.mix.n && off > 0 && (size_t)off < sizeof mixdesc; i++)
        off += snprintf(mixdesc + off, sizeof mixdesc - (size_t)off, "%s %" PRId32 "x%" PRId32 " p=%.4f",
                        i ? "," : "", a.mix.width[i], a.mix.height[i], a.mix.p[i]);

    char arrdesc[256];
    if (a.arrival == TS_ARRIVAL_GAMMA)
        snprintf(arrdesc, sizeof arrdesc, "gamma gaps with cv %g", a.gamma_cv);
    else
        snprintf(arrdesc, sizeof arrdesc, "poisson (exponential gaps)");

    char header[4096];
    snprintf(header, sizeof header,
             "generated by tetriserve %s\n"
             "command: %s\n"
             "%s\n"
             "arrivals: %s, mean %g per minute (mean gap %g s); %" PRId32 " steps; gsl mt19937 seed %" PRIu64
             "\n"
             "slo_s: paper defaults (256: 1.5 s, 512: 2.0, 1024: 3.0, 2048: 5.0; interpolated in tokens)",
             ts_version_string(), cmd, mixdesc, arrdesc, a.rate_per_min, 60.0 / a.rate_per_min, a.steps,
             a.seed);

    TsStatus st = ts_trace_save(out_s, &t, header, &err);
    if (st) {
        fprintf(stderr, "tetriserve trace-gen: %s\n", err.msg);
        ts_trace_free(&t);
        return 1;
    }

    int64_t count[TS_MIX_MAX] = {0};
    for (int64_t i = 0; i < t.n; i++)
        for (int k = 0; k < a.mix.n; k++)
            if (t.req[i].width == a.mix.width[k] && t.req[i].height == a.mix.height[k]) count[k]++;
    double span_s = t.req[t.n - 1].arrival_s;
    printf("trace-gen: wrote %s: %" PRId64 " requests over %.1f s (mean rate %.2f/min), mix", out_s, t.n,
           span_s, span_s > 0 ? 60.0 * (double)t.n / span_s : 0.0);
    for (int k = 0; k < a.mix.n; k++)
        printf("%s %" PRId32 "x%" PRId32 ": %" PRId64, k ? "," : "", a.mix.width[k], a.mix.height[k],
               count[k]);
    putchar('\n');
    ts_trace_free(&t);
    return 0;
}
