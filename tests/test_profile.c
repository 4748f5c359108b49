/* test_profile.c - profile files, the lookup rule, the cost model, and the
 * bundled estimated profiles. */
#include "ts_test.h"

#include <fcntl.h>
#include <math.h>
#include <time.h>

#include "ts_profile.h"
#include "ts_trace.h"

#define GOOD "tests/data/profiles/good.csv" /* a literal, to paste into messages */
#define SPARSE "tests/data/profiles/sparse.csv"
#define FLUX "profiles/flux1-dev_h100x8.csv"
#define SD3 "profiles/sd3-medium_a40x4.csv"

static void load_ok(const char *path, TsProfile *p) {
    TsErr err = {{0}};
    TsStatus st = ts_profile_load(path, p, &err);
    if (st != TS_OK) fail_msg("loading %s: %s", path, err.msg);
}

static double step_ok(const TsProfile *p, int32_t w, int32_t h, int32_t k, int32_t b,
                      int *extrapolated) {
    TsErr err = {{0}};
    double ms = -1;
    int extra = -1;
    TsStatus st = ts_profile_step_ms(p, w, h, k, b, &ms, &extra, &err);
    if (st != TS_OK) fail_msg("%dx%d k=%d b=%d: %s", w, h, k, b, err.msg);
    if (extrapolated) *extrapolated = extra;
    return ms;
}

static void assert_contains(const char *s, const char *sub) {
    if (!strstr(s, sub)) fail_msg("'%s' does not contain '%s'", s, sub);
}

/* ---------------------------------------------------------------- parsing */

static void test_good_metadata(void **state) {
    (void)state;
    TsProfile p;
    load_ok(GOOD, &p);
    assert_string_equal(p.path, GOOD);
    assert_string_equal(p.model, "test-dit");
    assert_string_equal(p.gpu, "test-gpu");
    assert_string_equal(p.source, "hand-written for the unit tests");
    assert_int_equal(p.gpus_per_node, 4);
    assert_true(p.request_overhead_ms == 12.5);
    assert_int_equal(p.n_rows, 18);
    /* First row, columns in a free order. */
    assert_int_equal(p.rows[0].width, 256);
    assert_int_equal(p.rows[0].height, 256);
    assert_int_equal(p.rows[0].degree, 1);
    assert_int_equal(p.rows[0].batch, 1);
    assert_true(p.rows[0].step_ms == 10);
    assert_true(p.rows[0].step_ms_p99 == 10.1);
    assert_int_equal(p.rows[0].line, 12);
    assert_true(isnan(p.rows[1].step_ms_p99)); /* empty optional field */
    /* The 256x1024 row: height column comes before width. */
    assert_int_equal(p.rows[6].width, 256);
    assert_int_equal(p.rows[6].height, 1024);
    assert_int_equal(p.rows[17].batch, 4);

    int32_t deg[8];
    assert_int_equal(ts_profile_degrees(&p, deg, 8), 4);
    assert_int_equal(deg[0], 1);
    assert_int_equal(deg[1], 2);
    assert_int_equal(deg[2], 4);
    assert_int_equal(deg[3], 8);
    assert_int_equal(ts_profile_degrees(&p, deg, 2), 2);
    assert_int_equal(deg[1], 2);
    ts_profile_free(&p);
    assert_null(p.rows);
}

static void test_defaults_and_crlf(void **state) {
    (void)state;
    const char *path =
        ts_test_tmpfile(".csv", "\xEF\xBB\xBF" "degree,width,height,step_ms\r\n1,256,256,5\r\n\r\n"
                                "2,256,256,4\r\n");
    TsProfile p;
    load_ok(path, &p);
    assert_string_equal(p.model, "");
    assert_string_equal(p.source, "");
    assert_int_equal(p.gpus_per_node, 0);
    assert_true(p.request_overhead_ms == 0);
    assert_int_equal(p.n_rows, 2);
    assert_int_equal(p.rows[1].line, 4);
    assert_int_equal(p.rows[1].batch, 1);
    assert_true(isnan(p.rows[1].step_ms_p99));
    ts_profile_free(&p);
}

typedef struct BadCase {
    const char *text;
    int line;
    const char *expect;
} BadCase;

#define HDR "width,height,degree,step_ms\n"
#define HDRB "width,height,degree,batch,step_ms,step_ms_p99\n"
static const BadCase bad_cases[] = {
    {"width,height,step_ms\n256,256,10\n", 1, "missing column 'degree'"},
    {"# model: m\nheight,degree,step_ms\n256,1,10\n", 2, "missing column 'width'"},
    {"width,height,degree\n256,256,1\n", 1, "missing column 'step_ms'"},
    {"width,height,degree,step_ms,width\n", 1, "column 'width' appears twice"},
    {HDR "256,256,1,abc\n", 2, "step_ms 'abc' is not a finite number"},
    {HDR "256,256,1,\n", 2, "step_ms '' is not a finite number"},
    {HDR "256,256,x,10\n", 2, "degree 'x' is not an integer"},
    {HDR "256,256,2.5,10\n", 2, "degree '2.5' is not an integer"},
    {HDR "256px,256,1,10\n", 2, "width '256px' is not an integer"},
    {HDR "256,256,1,nan\n", 2, "step_ms 'nan' is not a finite number"},
    {HDR "256,256,1,NaN\n", 2, "not a finite number"},
    {HDR "256,256,1,inf\n", 2, "step_ms 'inf' is not a finite number"},
    {HDR "256,256,1,-Infinity\n", 2, "not a finite number"},
    {HDR "256,256,1,1e400\n", 2, "not a finite number"},
    {HDR "256,256,1,10\n250,256,1,10\n", 3, "width 250 is not a positive multiple of 16"},
    {HDR "256,100,1,10\n", 2, "height 100 is not a positive multiple of 16"},
    {HDR "0,256,1,10\n", 2, "width 0 is not a positive multiple of 16"},
    {HDR "-256,256,1,10\n", 2, "width -256 is not a positive multiple of 16"},
    {HDR "256,256,0,10\n", 2, "degree 0 is not >= 1"},
    {HDR "256,256,-2,10\n", 2, "degree -2 is not >= 1"},
    {HDRB "256,256,1,0,10,11\n", 2, "batch 0 is not >= 1"},
    {HDRB "256,256,1,x,10,11\n", 2, "batch 'x' is not an integer"},
    {HDR "256,256,1,0\n", 2, "step_ms 0 is not > 0"},
    {HDR "256,256,1,-3\n", 2, "step_ms -3 is not > 0"},
    {HDRB "256,256,1,1,10,9.5\n", 2, "step_ms_p99 9.5 is below step_ms 10"},
    {HDRB "256,256,1,1,10,nan\n", 2, "step_ms_p99 'nan' is not a finite number"},
    {HDR "256,256,1\n", 2, "3 fields, the header has 4"},
    {HDR "256,256,1,10,5\n", 2, "5 fields, the header has 4"},
    {HDR "256,256,1,10\n512,512,1,20\n# c\n256,256,1,11\n", 5,
     "duplicate row for 256x256 degree 1 batch 1 (also on line 2)"},
    {HDRB "256,256,1,2,10,\n256,256,1,2,12,\n", 3, "duplicate row for 256x256 degree 1 batch 2"},
    {"", 1, "empty profile"},
    {"# model: m\n# only comments\n\n", 3, "empty profile"},
    {"# model: m\n" HDR, 2, "no data rows"},
    {HDR "\n# nothing\n", 3, "no data rows"},
    {"# gpus_per_node: 0\n" HDR "256,256,1,10\n", 1, "gpus_per_node '0' is not a positive integer"},
    {"# gpus_per_node: -8\n" HDR "256,256,1,10\n", 1, "gpus_per_node '-8'"},
    {"# gpus_per_node: eight\n" HDR "256,256,1,10\n", 1, "gpus_per_node 'eight'"},
    {"# gpus_per_node: 2.5\n" HDR "256,256,1,10\n", 1, "gpus_per_node '2.5'"},
    {"# gpus_per_node:\n" HDR "256,256,1,10\n", 1, "gpus_per_node ''"},
    {HDR "256,256,1,10\n# request_overhead_ms: -1\n", 3, "request_overhead_ms -1 is negative"},
    {"# request_overhead_ms: fast\n" HDR "256,256,1,10\n", 1,
     "request_overhead_ms 'fast' is not a finite number"},
    {"# request_overhead_ms: nan\n" HDR "256,256,1,10\n", 1, "request_overhead_ms 'nan'"},
};

static void test_bad_inputs(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        const BadCase *c = &bad_cases[i];
        char path[256];
        snprintf(path, sizeof path, "%s", ts_test_tmpfile(".csv", c->text));
        TsProfile p;
        memset(&p, 0x5a, sizeof p);
        TsErr err = {{0}};
        TsStatus st = ts_profile_load(path, &p, &err);
        if (st != TS_ERR_INPUT) fail_msg("case %zu: status %d, want TS_ERR_INPUT", i, (int)st);
        char where[300];
        snprintf(where, sizeof where, "%s:%d: ", path, c->line);
        if (strncmp(err.msg, where, strlen(where)))
            fail_msg("case %zu: message '%s' does not start with '%s'", i, err.msg, where);
        assert_contains(err.msg, c->expect);
        assert_null(strchr(err.msg, '\n'));
        assert_null(p.rows); /* out is left empty on failure */
        assert_int_equal(p.n_rows, 0);
        unlink(path);
    }
}

static void test_unreadable(void **state) {
    (void)state;
    TsProfile p;
    TsErr err = {{0}};
    assert_int_equal(ts_profile_load("tests/data/profiles/no-such-file.csv", &p, &err), TS_ERR_IO);
    assert_contains(err.msg, "tests/data/profiles/no-such-file.csv: ");
    assert_contains(err.msg, "No such file");
    /* A directory opens but cannot be read. */
    assert_int_not_equal(ts_profile_load("tests/data/profiles", &p, &err), TS_OK);
    assert_contains(err.msg, "tests/data/profiles");
}

/* ----------------------------------------------------------------- lookup */

static void test_exact(void **state) {
    (void)state;
    TsProfile p;
    load_ok(GOOD, &p);
    int extra;
    assert_true(step_ok(&p, 512, 512, 2, 1, &extra) == 12);
    assert_int_equal(extra, 0);
    assert_true(step_ok(&p, 2048, 2048, 8, 1, &extra) == 40);
    assert_int_equal(extra, 0);
    /* The exact shape wins over the level average (20 and 24). */
    assert_true(step_ok(&p, 512, 512, 1, 1, NULL) == 20);
    assert_true(step_ok(&p, 256, 1024, 1, 1, NULL) == 24);
    /* extrapolated may be NULL. */
    double ms;
    TsErr err;
    assert_int_equal(ts_profile_step_ms(&p, 256, 256, 4, 1, &ms, NULL, &err), TS_OK);
    assert_true(ms == 7);
    ts_profile_free(&p);
}

static void test_interpolation(void **state) {
    (void)state;
    TsProfile p;
    load_ok(GOOD, &p);
    int extra;
    /* 1280x512 = 2560 tokens, midway between 1024 (512x512: 12) and 4096
     * (1024x1024: 35) at degree 2. */
    assert_float_equal(step_ok(&p, 1280, 512, 2, 1, &extra), 23.5, 1e-9);
    assert_int_equal(extra, 0);
    /* Same tokens as 512x512, another shape: the mean of 512x512 (20) and
     * 256x1024 (24) at degree 1; degree 2 only has 512x512. */
    assert_float_equal(step_ok(&p, 1024, 256, 1, 1, &extra), 22, 1e-9);
    assert_int_equal(extra, 0);
    assert_float_equal(step_ok(&p, 1024, 256, 2, 1, NULL), 12, 1e-9);
    /* 640x640 = 1600 tokens: 22 + (60 - 22) * 576 / 3072. */
    assert_float_equal(step_ok(&p, 640, 640, 1, 1, NULL), 22 + 38.0 * 576 / 3072, 1e-9);

    /* Monotone over a sweep of every square between rows, each degree:
     * never below the previous size. 512x512 at degree 1 is skipped: an
     * exact shape returns its own row (20), while its neighbours interpolate
     * from the mean of its token level (20 and 256x1024's 24), so a table
     * with several shapes per level is monotone level by level, not shape by
     * shape. */
    static const int32_t degs[] = {1, 2, 4};
    for (int d = 0; d < 3; d++) {
        double prev = 0;
        for (int32_t px = 256; px <= 2048; px += 16) {
            if (px == 512 && degs[d] == 1) continue;
            double v = step_ok(&p, px, px, degs[d], 1, &extra);
            assert_int_equal(extra, 0);
            if (v < prev) fail_msg("degree %d: T(%d) = %g < T(%d) = %g", degs[d], px, v, px - 16, prev);
            prev = v;
        }
    }
    double prev = 0;
    for (int32_t px = 1024; px <= 2048; px += 16) { /* degree 8 starts at 1024 px */
        double v = step_ok(&p, px, px, 8, 1, NULL);
        assert_true(v >= prev && v >= 14 && v <= 40);
        prev = v;
    }
    ts_profile_free(&p);

    /* Data that decrease with tokens are accepted; the interpolation stays
     * between the end points, so it is monotone (here non-increasing). */
    load_ok(SPARSE, &p);
    prev = INFINITY;
    for (int32_t px = 512; px <= 1024; px += 16) {
        double v = step_ok(&p, px, px, 2, 1, NULL);
        assert_true(v <= prev && v >= 6 && v <= 8);
        prev = v;
    }
    assert_float_equal(step_ok(&p, 768, 768, 2, 1, NULL), 8 - 2.0 * (2304 - 1024) / 3072, 1e-9);
    ts_profile_free(&p);
}

static void test_extrapolation(void **state) {
    (void)state;
    TsProfile p;
    load_ok(GOOD, &p);
    int extra;
    /* Below: the smallest row's time, held. */
    assert_true(step_ok(&p, 128, 128, 1, 1, &extra) == 10);
    assert_int_equal(extra, 1);
    assert_true(step_ok(&p, 16, 16, 4, 1, &extra) == 7);
    assert_int_equal(extra, 1);
    /* Above: the last segment's slope (60 -> 240 over 4096 -> 16384 tokens). */
    double slope = (240.0 - 60) / (16384 - 4096);
    assert_float_equal(step_ok(&p, 4096, 4096, 1, 1, &extra), 240 + slope * (65536 - 16384), 1e-9);
    assert_int_equal(extra, 1);
    assert_float_equal(step_ok(&p, 2064, 2048, 8, 1, &extra),
                       40 + (40.0 - 14) / (16384 - 4096) * (129 * 128 - 16384), 1e-9);
    assert_int_equal(extra, 1);
    /* Inside the range: not extrapolated. */
    step_ok(&p, 2032, 2048, 8, 1, &extra);
    assert_int_equal(extra, 0);
    ts_profile_free(&p);

    load_ok(SPARSE, &p);
    /* A single point at the top: proportional to tokens. */
    assert_float_equal(step_ok(&p, 2048, 2048, 4, 1, &extra), 5.0 * 16384 / 4096, 1e-9);
    assert_int_equal(extra, 1);
    /* A falling last segment is held, not extended towards zero. */
    assert_float_equal(step_ok(&p, 4096, 4096, 2, 1, &extra), 6, 1e-9);
    assert_int_equal(extra, 1);
    assert_float_equal(step_ok(&p, 256, 256, 1, 1, &extra), 10, 1e-9);
    assert_int_equal(extra, 1);
    ts_profile_free(&p);
}

static void test_missing_degree(void **state) {
    (void)state;
    TsProfile p;
    load_ok(GOOD, &p);
    TsErr err = {{0}};
    double ms = -1;
    assert_int_equal(ts_profile_step_ms(&p, 512, 512, 8, 1, &ms, NULL, &err), TS_ERR_INPUT);
    assert_string_equal(err.msg, GOOD ": no row for degree 8 at 512x512 (degrees there: 1 2 4)");
    /* Between 512x512 (no degree 8) and 1024x1024. */
    assert_int_equal(ts_profile_step_ms(&p, 768, 768, 8, 1, &ms, NULL, &err), TS_ERR_INPUT);
    assert_string_equal(err.msg, GOOD ": no row for degree 8 at 768x768 (rows at 1024 and 4096 "
                                      "tokens; degrees there: 1 2 4)");
    /* A degree nobody has. */
    assert_int_equal(ts_profile_step_ms(&p, 2048, 2048, 3, 1, &ms, NULL, &err), TS_ERR_INPUT);
    assert_contains(err.msg, "no row for degree 3 at 2048x2048 (degrees there: 1 2 4 8)");
    /* Below the range, the nearest row decides. */
    assert_int_equal(ts_profile_step_ms(&p, 128, 128, 8, 1, &ms, NULL, &err), TS_ERR_INPUT);
    assert_contains(err.msg, "no row for degree 8 at 128x128 (rows at 256 tokens; degrees there: 1 2 4)");
    ts_profile_free(&p);

    load_ok(SPARSE, &p);
    /* Above the range: the top row has no degree 1. */
    assert_int_equal(ts_profile_step_ms(&p, 2048, 2048, 1, 1, &ms, NULL, &err), TS_ERR_INPUT);
    assert_string_equal(err.msg, SPARSE ": no row for degree 1 at 2048x2048 (rows at 4096 tokens; "
                                        "degrees there: 2 4)");
    ts_profile_free(&p);
}

static void test_batch_lookup(void **state) {
    (void)state;
    TsProfile p;
    load_ok(GOOD, &p);
    int extra;
    assert_true(step_ok(&p, 256, 256, 1, 2, &extra) == 16);
    assert_true(step_ok(&p, 512, 512, 1, 2, NULL) == 32);
    assert_true(step_ok(&p, 256, 256, 1, 4, NULL) == 28);
    /* 384x384 = 576 tokens between 256 (16) and 1024 (32) at batch 2. */
    assert_float_equal(step_ok(&p, 384, 384, 1, 2, &extra), 16 + 16.0 * 320 / 768, 1e-9);
    assert_int_equal(extra, 0);
    TsErr err = {{0}};
    double ms;
    assert_int_equal(ts_profile_step_ms(&p, 256, 256, 2, 2, &ms, NULL, &err), TS_ERR_INPUT);
    assert_string_equal(err.msg,
                        GOOD ": no row for degree 2 batch 2 at 256x256 (degrees there at that batch: 1)");
    assert_int_equal(ts_profile_step_ms(&p, 384, 384, 1, 4, &ms, NULL, &err), TS_ERR_INPUT);
    assert_contains(err.msg, "no row for degree 1 batch 4 at 384x384 (rows at 256 and 1024 tokens; "
                             "degrees there at that batch: none)");
    assert_int_equal(ts_profile_step_ms(&p, 1024, 1024, 1, 2, &ms, NULL, &err), TS_ERR_INPUT);
    ts_profile_free(&p);
}

/* ------------------------------------------------------------- cost model */

static TsTrace make_trace(const int32_t (*res)[2], int n) {
    TsTrace t = {0};
    t.path = "mem.csv";
    t.n = n;
    t.req = calloc((size_t)n, sizeof *t.req);
    for (int i = 0; i < n; i++) {
        t.req[i].id = 100 + i;
        t.req[i].arrival_s = i;
        t.req[i].width = res[i][0];
        t.req[i].height = res[i][1];
        t.req[i].steps = 28;
        t.req[i].slo_s = 3;
    }
    return t;
}

/* Run ts_cost_build with stderr captured into buf. */
static TsStatus build_capture(TsCostModel *cm, const TsProfile *p, const TsTrace *t, int n_gpus,
                              int *res_of, TsErr *err, char *buf, size_t cap) {
    char path[256];
    snprintf(path, sizeof path, "%s", ts_test_tmpfile(".err", ""));
    fflush(stderr);
    int saved = dup(2);
    int fd = open(path, O_WRONLY | O_TRUNC);
    assert_true(saved >= 0 && fd >= 0);
    dup2(fd, 2);
    close(fd);
    TsStatus st = ts_cost_build(cm, p, t, n_gpus, res_of, err);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    FILE *f = fopen(path, "r");
    size_t n = fread(buf, 1, cap - 1, f);
    buf[n] = '\0';
    fclose(f);
    unlink(path);
    return st;
}

static int count_substr(const char *s, const char *sub) {
    int n = 0;
    for (const char *q = strstr(s, sub); q; q = strstr(q + 1, sub)) n++;
    return n;
}

static void test_cost_model(void **state) {
    (void)state;
    TsProfile p;
    load_ok(GOOD, &p);
    static const int32_t res[][2] = {{512, 512}, {256, 256}, {512, 512}, {1024, 1024},
                                     {768, 768}, {256, 256}, {4096, 4096}, {4096, 4096}};
    TsTrace t = make_trace(res, 8);
    int res_of[8];
    TsCostModel cm;
    TsErr err = {{0}};
    char log[4096];
    TsStatus st = build_capture(&cm, &p, &t, 4, res_of, &err, log, sizeof log);
    if (st != TS_OK) fail_msg("%s", err.msg);

    assert_int_equal(cm.n_res, 5);
    static const int want_res[] = {0, 1, 0, 2, 3, 1, 4, 4};
    for (int i = 0; i < 8; i++) assert_int_equal(res_of[i], want_res[i]);
    assert_int_equal(cm.width[3], 768);
    assert_int_equal(cm.height[4], 4096);
    assert_int_equal(cm.tokens[4], 65536);
    assert_int_equal(cm.n_deg, 3); /* 1 2 4: 8 > 4 GPUs */
    assert_int_equal(cm.degree[0], 1);
    assert_int_equal(cm.degree[2], 4);
    assert_int_equal(cm.max_batch, 4);
    assert_float_equal(cm.overhead_s, 0.0125, 1e-12);
    assert_int_equal(ts_cost_degree_index(&cm, 4), 2);
    assert_int_equal(ts_cost_degree_index(&cm, 8), -1);
    assert_int_equal(ts_cost_degree_index(&cm, 3), -1);

    /* Seconds. */
    assert_float_equal(ts_cost_step_s(&cm, 0, 1, 1), 0.012, 1e-12);
    assert_float_equal(ts_cost_step_s(&cm, 1, 2, 1), 0.007, 1e-12);
    assert_float_equal(ts_cost_step_s(&cm, 2, 0, 1), 0.060, 1e-12);
    assert_float_equal(ts_cost_step_s(&cm, 1, 0, 2), 0.016, 1e-12);
    assert_float_equal(ts_cost_step_s(&cm, 1, 0, 4), 0.028, 1e-12);
    assert_float_equal(ts_cost_step_s(&cm, 3, 1, 1), (12 + 23.0 * (2304 - 1024) / 3072) / 1000, 1e-12);
    /* Holes: no batch 3 rows anywhere, no batch 2 at degree 2, no batching
     * at 1024 px nor at 768 px (its upper bracket, 1024 px, has none). */
    assert_true(isnan(ts_cost_step_s(&cm, 1, 0, 3)));
    assert_true(isnan(ts_cost_step_s(&cm, 0, 1, 2)));
    assert_true(isnan(ts_cost_step_s(&cm, 2, 0, 2)));
    assert_true(isnan(ts_cost_step_s(&cm, 3, 0, 2)));
    assert_true(isnan(ts_cost_step_s(&cm, 3, 0, 4)));
    /* Extrapolated resolution: warned once, whatever the degrees and batches. */
    assert_int_equal(count_substr(log, "warning"), 1);
    assert_contains(log, GOOD ": 4096x4096 is outside the profiled range (256..16384 tokens): "
                              "step times extrapolated");
    ts_cost_free(&cm);
    assert_null(cm.step_s);

    /* On 8 GPUs degree 8 appears, with holes where it is not profiled. */
    st = build_capture(&cm, &p, &t, 8, NULL, &err, log, sizeof log);
    assert_int_equal(st, TS_OK);
    assert_int_equal(cm.n_deg, 4);
    assert_float_equal(ts_cost_step_s(&cm, 2, 3, 1), 0.014, 1e-12);
    assert_true(isnan(ts_cost_step_s(&cm, 0, 3, 1)));
    assert_true(isnan(ts_cost_step_s(&cm, 3, 3, 1)));
    ts_cost_free(&cm);

    st = build_capture(&cm, &p, &t, 3, NULL, &err, log, sizeof log);
    assert_int_equal(st, TS_OK);
    assert_int_equal(cm.n_deg, 2);
    assert_int_equal(cm.degree[1], 2);
    assert_int_equal(count_substr(log, "outside the profiled range"), 1); /* once per build */
    ts_cost_free(&cm);
    free(t.req);
    ts_profile_free(&p);
}

static void test_cost_errors(void **state) {
    (void)state;
    TsProfile p;
    TsCostModel cm;
    TsErr err = {{0}};
    char log[1024];
    static const int32_t res[][2] = {{512, 512}, {1024, 1024}};
    TsTrace t = make_trace(res, 2);

    /* 1024x1024 has only degrees 2 and 4: unusable on one GPU. */
    load_ok(SPARSE, &p);
    TsStatus st = build_capture(&cm, &p, &t, 1, NULL, &err, log, sizeof log);
    assert_int_equal(st, TS_ERR_INPUT);
    assert_contains(err.msg, "1024x1024");
    assert_contains(err.msg, "id 101");
    assert_null(cm.step_s);
    assert_int_equal(build_capture(&cm, &p, &t, 2, NULL, &err, log, sizeof log), TS_OK);
    ts_cost_free(&cm);
    ts_profile_free(&p);

    /* More than TS_MAX_DEGREES degrees on the machine. */
    char text[4096] = "width,height,degree,step_ms\n";
    for (int k = 1; k <= TS_MAX_DEGREES + 1; k++)
        snprintf(text + strlen(text), sizeof text - strlen(text), "512,512,%d,%d\n", k, 100 - k);
    snprintf(text + strlen(text), sizeof text - strlen(text), "1024,1024,1,400\n");
    load_ok(ts_test_tmpfile(".csv", text), &p);
    assert_int_equal(build_capture(&cm, &p, &t, 64, NULL, &err, log, sizeof log), TS_ERR_INPUT);
    assert_contains(err.msg, "more than 16 distinct degrees");
    assert_int_equal(build_capture(&cm, &p, &t, TS_MAX_DEGREES, NULL, &err, log, sizeof log), TS_OK);
    assert_int_equal(cm.n_deg, TS_MAX_DEGREES);
    ts_cost_free(&cm);
    ts_profile_free(&p);

    /* A batch above TS_MAX_BATCH. */
    load_ok(ts_test_tmpfile(".csv", "width,height,degree,batch,step_ms\n512,512,1,1,10\n"
                                    "512,512,1,9,50\n1024,1024,1,1,40\n"),
            &p);
    assert_int_equal(build_capture(&cm, &p, &t, 8, NULL, &err, log, sizeof log), TS_ERR_INPUT);
    assert_contains(err.msg, ":3: batch 9 is above the supported maximum 8");
    ts_profile_free(&p);

    /* No degree fits. */
    load_ok(ts_test_tmpfile(".csv", "width,height,degree,step_ms\n512,512,2,10\n"), &p);
    assert_int_equal(build_capture(&cm, &p, &t, 1, NULL, &err, log, sizeof log), TS_ERR_INPUT);
    assert_contains(err.msg, "no degree fits on 1 GPUs");
    ts_profile_free(&p);
    free(t.req);
}

static void test_cost_fast(void **state) {
    (void)state;
    TsProfile p;
    load_ok(FLUX, &p);
    enum { N = 100000 };
    int32_t (*res)[2] = malloc(N * sizeof *res);
    static const int32_t sizes[] = {256, 512, 1024, 2048, 768};
    for (int i = 0; i < N; i++) {
        int s = (int)((unsigned)i * 2654435761u % 5u);
        res[i][0] = sizes[s];
        res[i][1] = sizes[(s + i % 2) % 4];
    }
    TsTrace t = make_trace((const int32_t(*)[2])res, N);
    int *res_of = malloc(N * sizeof *res_of);
    TsCostModel cm;
    TsErr err = {{0}};
    char log[4096];
    double t0 = ts_wall_s();
    TsStatus st = build_capture(&cm, &p, &t, 8, res_of, &err, log, sizeof log);
    double dt = ts_wall_s() - t0;
    if (st != TS_OK) fail_msg("%s", err.msg);
    if (dt > 0.5) fail_msg("ts_cost_build took %.3f s for %d requests", dt, N);
    assert_true(cm.n_res <= 10);
    for (int i = 0; i < N; i++) {
        assert_int_equal(cm.width[res_of[i]], res[i][0]);
        assert_int_equal(cm.height[res_of[i]], res[i][1]);
    }
    ts_cost_free(&cm);
    free(res_of);
    free(t.req);
    free(res);
    ts_profile_free(&p);
}

/* ------------------------------------------------------- bundled profiles */

/* SPEC.md's RSSP rule: the smallest degree whose steps x T meets the base
 * SLO, else the fastest degree. */
static int32_t rssp_degree(const TsProfile *p, int32_t px, int steps, double slo_s) {
    int32_t deg[TS_MAX_DEGREES];
    int n = ts_profile_degrees(p, deg, TS_MAX_DEGREES);
    int32_t fastest = 0;
    double best = INFINITY;
    for (int i = 0; i < n; i++) {
        double ms = step_ok(p, px, px, deg[i], 1, NULL);
        if (steps * ms / 1000 <= slo_s) return deg[i];
        if (ms < best) best = ms, fastest = deg[i];
    }
    return fastest;
}

static void test_flux_profile(void **state) {
    (void)state;
    TsProfile p;
    load_ok(FLUX, &p);
    assert_int_equal(p.gpus_per_node, 8);
    assert_true(p.request_overhead_ms == 0);
    assert_string_equal(p.model, "FLUX.1-dev");
    assert_true(strncmp(p.source, "ESTIMATE, not measured", 22) == 0);
    int32_t deg[8];
    assert_int_equal(ts_profile_degrees(&p, deg, 8), 4);
    assert_int_equal(deg[3], 8);

    static const int32_t px[] = {256, 512, 1024, 2048};
    static const double slo[] = {1.5, 2.0, 3.0, 5.0};
    static const int32_t want[] = {1, 1, 2, 8};
    for (int i = 0; i < 4; i++) {
        int32_t k = rssp_degree(&p, px[i], 28, slo[i]);
        if (k != want[i]) fail_msg("RSSP rule at %d px gives %d, want %d", px[i], k, want[i]);
    }
    /* Calibration: xDiT's compiled 1024 px figures. */
    assert_float_equal(step_ok(&p, 1024, 1024, 1, 1, NULL), 4300.0 / 28, 0.01);
    assert_float_equal(step_ok(&p, 1024, 1024, 2, 1, NULL), 2680.0 / 28, 0.01);
    assert_float_equal(step_ok(&p, 1024, 1024, 4, 1, NULL), 1630.0 / 28, 0.01);
    /* Faster with every degree at 1024 and 2048 px; 256 px gains little. */
    for (int i = 2; i < 4; i++)
        for (int d = 1; d < 4; d++)
            assert_true(step_ok(&p, px[i], px[i], deg[d], 1, NULL) <
                        step_ok(&p, px[i], px[i], deg[d - 1], 1, NULL));
    assert_true(step_ok(&p, 256, 256, 8, 1, NULL) >= step_ok(&p, 256, 256, 4, 1, NULL));
    assert_true(step_ok(&p, 256, 256, 1, 1, NULL) < 2 * step_ok(&p, 256, 256, 4, 1, NULL));
    double t2048 = 28 * step_ok(&p, 2048, 2048, 1, 1, NULL) / 1000;
    assert_true(t2048 >= 15 && t2048 <= 40);
    /* Batching: more per step, less per image; p99 = 1.007 x mean. */
    for (int i = 0; i < 2; i++) {
        double t1 = step_ok(&p, px[i], px[i], 1, 1, NULL);
        double t4 = step_ok(&p, px[i], px[i], 1, 4, NULL);
        assert_true(t4 > t1 && t4 < 4 * t1);
    }
    for (int r = 0; r < p.n_rows; r++)
        assert_float_equal(p.rows[r].step_ms_p99, p.rows[r].step_ms * 1.007, 0.0006);
    ts_profile_free(&p);
}

static void test_sd3_profile(void **state) {
    (void)state;
    TsProfile p;
    load_ok(SD3, &p);
    assert_int_equal(p.gpus_per_node, 4);
    assert_true(strncmp(p.source, "ESTIMATE, not measured", 22) == 0);
    int32_t deg[8];
    assert_int_equal(ts_profile_degrees(&p, deg, 8), 3);
    assert_int_equal(deg[2], 4);
    for (int32_t px = 1024; px <= 2048; px *= 2)
        for (int d = 1; d < 3; d++)
            assert_true(step_ok(&p, px, px, deg[d], 1, NULL) < step_ok(&p, px, px, deg[d - 1], 1, NULL));
    /* What the profile's comment says the RSSP rule gives. */
    static const int32_t px[] = {256, 512, 1024, 2048};
    static const double slo[] = {1.5, 2.0, 3.0, 5.0};
    static const int32_t want[] = {2, 4, 4, 4};
    for (int i = 0; i < 4; i++) assert_int_equal(rssp_degree(&p, px[i], 28, slo[i]), want[i]);
    ts_profile_free(&p);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_metadata),   cmocka_unit_test(test_defaults_and_crlf),
        cmocka_unit_test(test_bad_inputs),      cmocka_unit_test(test_unreadable),
        cmocka_unit_test(test_exact),           cmocka_unit_test(test_interpolation),
        cmocka_unit_test(test_extrapolation),   cmocka_unit_test(test_missing_degree),
        cmocka_unit_test(test_batch_lookup),    cmocka_unit_test(test_cost_model),
        cmocka_unit_test(test_cost_errors),     cmocka_unit_test(test_cost_fast),
        cmocka_unit_test(test_flux_profile),    cmocka_unit_test(test_sd3_profile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
