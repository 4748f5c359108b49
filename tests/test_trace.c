/* test_trace.c - trace CSV parsing and validation, save/load, default SLOs,
 * mixes, trace generation and the trace-gen verb. */
#include "ts_test.h"

#include <math.h>
#include <sys/stat.h>

#include "ts_trace.h"

/* ---- helpers ----------------------------------------------------------- */

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot read %s", path);
    char *buf = NULL;
    size_t cap = 0, n = 0, got;
    do {
        cap += 4096;
        buf = realloc(buf, cap + 1);
        got = fread(buf + n, 1, cap - n, f);
        n += got;
    } while (got);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

static void assert_contains(const char *haystack, const char *needle) {
    if (!strstr(haystack, needle)) fail_msg("'%s' does not contain '%s'", haystack, needle);
}

static int file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

static TsTraceGenArgs gen_args(const char *mix, int64_t n, double rate, uint64_t seed) {
    TsTraceGenArgs a = {0};
    TsErr err;
    if (ts_mix_parse(mix, &a.mix, &err)) fail_msg("mix %s: %s", mix, err.msg);
    a.n = n;
    a.rate_per_min = rate;
    a.steps = 28;
    a.arrival = TS_ARRIVAL_POISSON;
    a.seed = seed;
    return a;
}

static int same_trace(const TsTrace *a, const TsTrace *b) {
    if (a->n != b->n) return 0;
    for (int64_t i = 0; i < a->n; i++) {
        const TsRequest *x = &a->req[i], *y = &b->req[i];
        if (x->id != y->id || x->arrival_s != y->arrival_s || x->width != y->width ||
            x->height != y->height || x->steps != y->steps || x->slo_s != y->slo_s)
            return 0;
    }
    return 1;
}

/* ---- parsing good files ------------------------------------------------ */

static void test_load_good_shuffled(void **state) {
    (void)state;
    TsTrace t;
    TsErr err = {{0}};
    const char *path = TS_TEST_DATA("traces/good_shuffled.csv");
    TsStatus st = ts_trace_load(path, &t, &err);
    if (st) fail_msg("%s", err.msg);
    assert_int_equal(t.n, 6);
    assert_string_equal(t.path, path);
    /* (arrival_s, id): the three requests at 1.25 s come in id order 0, 4, 5. */
    const int64_t ids[] = {3, 0, 4, 5, 7, 9};
    for (int i = 0; i < 6; i++) assert_int_equal(t.req[i].id, ids[i]);
    const TsRequest *r = &t.req[0]; /* the row written with blanks around every field */
    assert_true(r->arrival_s == 0.0);
    assert_int_equal(r->width, 256);
    assert_int_equal(r->height, 256);
    assert_int_equal(r->steps, 20);
    assert_true(r->slo_s == 1.5);
    r = &t.req[5]; /* non-square, last line ends in CRLF */
    assert_true(r->arrival_s == 10.0);
    assert_int_equal(r->width, 1280);
    assert_int_equal(r->height, 768);
    assert_int_equal(r->steps, 10);
    assert_true(r->slo_s == 2.25);
    assert_int_equal(t.req[1].steps, 50);
    assert_int_equal(t.req[1].width, 2048);
    ts_trace_free(&t);
    assert_null(t.req);
}

static void test_load_no_trailing_newline(void **state) {
    (void)state;
    TsTrace t;
    TsErr err = {{0}};
    if (ts_trace_load(TS_TEST_DATA("traces/good_no_trailing_newline.csv"), &t, &err))
        fail_msg("%s", err.msg);
    assert_int_equal(t.n, 2);
    assert_int_equal(t.req[1].id, 1);
    assert_true(t.req[1].slo_s == 3.0);
    ts_trace_free(&t);
}

static void test_load_bom_and_leading_blank_lines(void **state) {
    (void)state;
    TsTrace t;
    TsErr err = {{0}};
    const char *p = ts_test_tmpfile(".csv", "\xEF\xBB\xBFid,arrival_s,width,height,steps,slo_s\n"
                                            "1,0,16,16,1,0.5\n");
    if (ts_trace_load(p, &t, &err)) fail_msg("%s", err.msg);
    assert_int_equal(t.n, 1);
    assert_int_equal(t.req[0].width, 16);
    ts_trace_free(&t);
}

static void test_sort_ties(void **state) {
    (void)state;
    TsRequest req[] = {
        {.id = 9, .arrival_s = 2.0}, {.id = 2, .arrival_s = 1.0}, {.id = 7, .arrival_s = 1.0},
        {.id = 1, .arrival_s = 1.0}, {.id = 0, .arrival_s = 3.0}, {.id = 5, .arrival_s = 0.5},
    };
    TsTrace t = {.req = req, .n = 6};
    ts_trace_sort(&t);
    const int64_t ids[] = {5, 1, 2, 7, 9, 0};
    for (int i = 0; i < 6; i++) assert_int_equal(t.req[i].id, ids[i]);
}

/* ---- bad inputs -------------------------------------------------------- */

typedef struct BadCase {
    const char *file;  /* under tests/data/traces */
    const char *where; /* "file:line:" expected at the start of the message */
    const char *key1, *key2;
} BadCase;

static const BadCase bad_cases[] = {
    {"bad_missing_column.csv", "bad_missing_column.csv:2:", "missing column", "slo_s"},
    {"bad_nan.csv", "bad_nan.csv:3:", "arrival_s", "nan"},
    {"bad_inf.csv", "bad_inf.csv:3:", "slo_s", "not a finite number"},
    {"bad_negative_arrival.csv", "bad_negative_arrival.csv:3:", "arrival_s -0.25", "negative"},
    {"bad_zero_steps.csv", "bad_zero_steps.csv:3:", "steps 0", ">= 1"},
    {"bad_width_not16.csv", "bad_width_not16.csv:3:", "width 250", "multiple of 16"},
    {"bad_height_not16.csv", "bad_height_not16.csv:3:", "height 500", "multiple of 16"},
    {"bad_width_zero.csv", "bad_width_zero.csv:2:", "width 0", "positive"},
    {"bad_duplicate_id.csv", "bad_duplicate_id.csv:5:", "duplicate id 1", "first at line 3"},
    {"bad_empty.csv", "bad_empty.csv:1:", "empty", "no header"},
    {"bad_comments_only.csv", "bad_comments_only.csv:2:", "empty", "no header"},
    {"bad_header_only.csv", "bad_header_only.csv:2:", "no requests", "header"},
    {"bad_non_numeric.csv", "bad_non_numeric.csv:3:", "arrival_s 'soon'", "not a number"},
    {"bad_field_count.csv", "bad_field_count.csv:3:", "5 fields", "has 6"},
    {"bad_negative_id.csv", "bad_negative_id.csv:2:", "id -1", "negative"},
    {"bad_steps_fraction.csv", "bad_steps_fraction.csv:2:", "steps '28.5'", "not an integer"},
    {"bad_slo_zero.csv", "bad_slo_zero.csv:2:", "slo_s 0", "> 0"},
};

static void test_load_bad_fixtures(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof bad_cases / sizeof *bad_cases; i++) {
        const BadCase *c = &bad_cases[i];
        char path[256];
        snprintf(path, sizeof path, "tests/data/traces/%s", c->file);
        TsTrace t = {.n = 99};
        TsErr err = {{0}};
        TsStatus st = ts_trace_load(path, &t, &err);
        if (st != TS_ERR_INPUT) fail_msg("%s: status %d, message '%s'", c->file, (int)st, err.msg);
        char where[300];
        snprintf(where, sizeof where, "tests/data/traces/%s", c->where);
        if (strncmp(err.msg, where, strlen(where)) != 0)
            fail_msg("%s: message '%s' does not start with '%s'", c->file, err.msg, where);
        assert_contains(err.msg, c->key1);
        assert_contains(err.msg, c->key2);
        assert_null(strchr(err.msg, '\n'));
        /* Nothing half-loaded is handed back. */
        assert_int_equal(t.n, 0);
        assert_null(t.req);
        assert_null(t.path);
    }
}

/* Inline cases: (content, expected "line:" fragment, key word). */
static void test_load_bad_inline(void **state) {
    (void)state;
    static const struct {
        const char *text, *line, *key;
    } cases[] = {
        {"id,arrival_s,width,height,steps,slo_s,id\n0,0,16,16,1,1,0\n", ":1:", "appears twice"},
        {"arrival_s,width,height,steps,slo_s\n0,16,16,1,1\n", ":1:", "'id'"},
        {"id,arrival_s,width,height,steps,slo_s\n0,0,16,16,1,1\n1,0,16,16,1,1,7\n", ":3:", "7 fields"},
        {"id,arrival_s,width,height,steps,slo_s\n0,0,16,16,,1\n", ":2:", "steps ''"},
        {"id,arrival_s,width,height,steps,slo_s\n0,0,16,16,1,-inf\n", ":2:", "not a finite"},
        {"id,arrival_s,width,height,steps,slo_s\n0,0,16,16,1,1\n1,0,16,16,1,1\n0,0,16,16,1,1\n", ":4:",
         "first at line 2"},
        {"id,arrival_s,width,height,steps,slo_s\n0,0,16,16,28.0,1\n", ":2:", "not an integer"},
        {"id,arrival_s,width,height,steps,slo_s\n0,0,1e3,16,1,1\n", ":2:", "width '1e3'"},
        {"id,arrival_s,width,height,steps,slo_s\n2.5,0,16,16,1,1\n", ":2:", "id '2.5'"},
        {"id,arrival_s,width,height,steps,slo_s\n0,0,16,16,1,-2\n", ":2:", "slo_s -2"},
        {"id,arrival_s,width,height,steps,slo_s\n0,1x,16,16,1,1\n", ":2:", "arrival_s '1x'"},
        {"id,arrival_s,width,height,steps,slo_s\n0,0,16,16,1,1\n0,0,16,16,1,1\n", ":3:", "duplicate"},
        {"id,arrival_s,width,height,steps,slo_s\n5,0,16,16,1,1\n3,0,16,16,1,1\n9,0,16,16,1,1\n"
         "3,0,16,16,1,1\n",
         ":5:", "duplicate id 3 (first at line 3)"},
        {"\n\n   \n", ":3:", "empty"},
        {"id,arrival_s,width,height,steps,slo_s\n0,0,4294967296,16,1,1\n", ":2:", "width 4294967296 is too large"},
        {"id,arrival_s,width,height,steps,slo_s\n0,0,16,16,4294967296,1\n", ":2:", "steps 4294967296 is too large"},
        {"id,arrival_s,width,height,steps,slo_s\n0,0,16,16,1,1e999\n", ":2:", "slo_s"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char path[256];
        snprintf(path, sizeof path, "%s", ts_test_tmpfile(".csv", cases[i].text));
        TsTrace t;
        TsErr err = {{0}};
        TsStatus st = ts_trace_load(path, &t, &err);
        if (st != TS_ERR_INPUT) fail_msg("case %zu: status %d '%s'", i, (int)st, err.msg);
        char where[300];
        snprintf(where, sizeof where, "%s%s", path, cases[i].line);
        if (strncmp(err.msg, where, strlen(where)) != 0)
            fail_msg("case %zu: '%s' does not start with '%s'", i, err.msg, where);
        assert_contains(err.msg, cases[i].key);
        remove(path);
    }
}

static void test_load_unreadable(void **state) {
    (void)state;
    TsTrace t;
    TsErr err = {{0}};
    assert_int_equal(ts_trace_load("tests/data/traces/no_such_file.csv", &t, &err), TS_ERR_IO);
    assert_string_equal(err.msg, "tests/data/traces/no_such_file.csv: cannot open: No such file or directory");
    /* A directory opens but cannot be read. */
    TsStatus st = ts_trace_load("tests/data/traces", &t, &err);
    assert_int_equal(st, TS_ERR_IO);
    assert_contains(err.msg, "tests/data/traces");
}

static void test_load_fast(void **state) {
    (void)state;
    TsTraceGenArgs a = gen_args("skewed", 100000, 600, 3);
    TsTrace g, t;
    TsErr err;
    assert_int_equal(ts_trace_generate(&a, &g, &err), TS_OK);
    char path[256];
    snprintf(path, sizeof path, "%s", ts_test_tmpfile(".csv", ""));
    if (ts_trace_save(path, &g, "100k rows", &err)) fail_msg("%s", err.msg);
    double best_s = 1e9;
    for (int rep = 0; rep < 3; rep++) {
        double t0 = ts_wall_s();
        if (ts_trace_load(path, &t, &err)) fail_msg("%s", err.msg);
        double dt = ts_wall_s() - t0;
        if (dt < best_s) best_s = dt;
        assert_true(same_trace(&g, &t));
        ts_trace_free(&t);
    }
    ts_trace_free(&g);
    remove(path);
    print_message("load of 100000 rows: %.1f ms\n", 1e3 * best_s);
    /* TS_TEST_NO_TIMING=1 for valgrind and other slow-motion runs. */
    if (getenv("TS_TEST_NO_TIMING")) return;
#if defined(__SANITIZE_ADDRESS__)
    assert_true(best_s < 1.0);
#else
    assert_true(best_s < 0.1);
#endif
}

/* ---- saving ------------------------------------------------------------ */

static void test_save_load_roundtrip_exact(void **state) {
    (void)state;
    TsRequest req[] = {
        {.id = 3, .arrival_s = 0.000001, .width = 512, .height = 768, .steps = 1, .slo_s = 0.1},
        {.id = 10, .arrival_s = 1234567.891011, .width = 16, .height = 16, .steps = 1000, .slo_s = 2.5},
        {.id = 0, .arrival_s = 0.0, .width = 2048, .height = 2048, .steps = 28, .slo_s = 5.0},
        {.id = 9223372036854775807LL, .arrival_s = 3.141593, .width = 1024, .height = 1024, .steps = 50,
         .slo_s = 3.000001},
    };
    TsTrace t = {.req = req, .n = 4};
    ts_trace_sort(&t);
    char path[256];
    snprintf(path, sizeof path, "%s", ts_test_tmpfile(".csv", "old contents\n"));
    TsErr err;
    if (ts_trace_save(path, &t, "first line\nsecond line\n\nfourth", &err)) fail_msg("%s", err.msg);
    char tmp[300];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    assert_false(file_exists(tmp));
    char *text = slurp(path);
    assert_int_equal(strncmp(text, "# first line\n# second line\n#\n# fourth\nid,arrival_s,width,height,steps,slo_s\n", 76), 0);
    assert_contains(text, "\n9223372036854775807,3.141593,1024,1024,50,3.000001\n");
    free(text);
    TsTrace u;
    if (ts_trace_load(path, &u, &err)) fail_msg("%s", err.msg);
    assert_true(same_trace(&t, &u));
    ts_trace_free(&u);

    /* A generated trace (microsecond arrivals) survives save + load bit for bit. */
    TsTraceGenArgs a = gen_args("512:1,1024x768:1,800x1200:1", 2000, 30, 11);
    a.arrival = TS_ARRIVAL_GAMMA;
    a.gamma_cv = 3.0;
    TsTrace g;
    assert_int_equal(ts_trace_generate(&a, &g, &err), TS_OK);
    if (ts_trace_save(path, &g, NULL, &err)) fail_msg("%s", err.msg);
    if (ts_trace_load(path, &u, &err)) fail_msg("%s", err.msg);
    assert_true(same_trace(&g, &u));
    ts_trace_free(&u);
    ts_trace_free(&g);
    remove(path);
}

static void test_save_unwritable(void **state) {
    (void)state;
    TsRequest req[] = {{.id = 0, .arrival_s = 0, .width = 16, .height = 16, .steps = 1, .slo_s = 1}};
    TsTrace t = {.req = req, .n = 1};
    TsErr err = {{0}};
    TsStatus st = ts_trace_save("/nonexistent-dir-ts/x.csv", &t, NULL, &err);
    assert_int_equal(st, TS_ERR_IO);
    assert_int_equal(strncmp(err.msg, "/nonexistent-dir-ts/x.csv: cannot write", 39), 0);
    assert_contains(err.msg, "No such file or directory");
}

/* ---- default SLOs ------------------------------------------------------ */

static void test_slo_default(void **state) {
    (void)state;
    assert_float_equal(ts_slo_default_s(256, 256), 1.5, 1e-12);
    assert_float_equal(ts_slo_default_s(512, 512), 2.0, 1e-12);
    assert_float_equal(ts_slo_default_s(1024, 1024), 3.0, 1e-12);
    assert_float_equal(ts_slo_default_s(2048, 2048), 5.0, 1e-12);
    /* 768x768 = 2304 tokens, between 1024 (2.0 s) and 4096 (3.0 s). */
    assert_float_equal(ts_slo_default_s(768, 768), 2.0 + (2304.0 - 1024.0) / 3072.0, 1e-12);
    /* Same tokens, same SLO, whatever the aspect ratio. */
    assert_float_equal(ts_slo_default_s(1024, 256), ts_slo_default_s(512, 512), 1e-12);
    assert_float_equal(ts_slo_default_s(16, 16), 1.5, 1e-12);
    assert_float_equal(ts_slo_default_s(128, 256), 1.5, 1e-12);
    /* 4096x4096 = 65536 tokens: last segment (2 s per 12288 tokens) extended. */
    assert_float_equal(ts_slo_default_s(4096, 4096), 5.0 + 2.0 * (65536.0 - 16384.0) / 12288.0, 1e-12);
    /* Monotone in tokens. */
    double prev = 0;
    for (int s = 16; s <= 4096; s += 16) {
        double v = ts_slo_default_s(s, s);
        assert_true(v >= prev);
        prev = v;
    }
}

/* ---- mixes ------------------------------------------------------------- */

static void test_mix_named(void **state) {
    (void)state;
    TsMix m;
    TsErr err;
    assert_int_equal(ts_mix_parse("uniform", &m, &err), TS_OK);
    assert_int_equal(m.n, 4);
    const int32_t sizes[] = {256, 512, 1024, 2048};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(m.width[i], sizes[i]);
        assert_int_equal(m.height[i], sizes[i]);
        assert_float_equal(m.p[i], 0.25, 1e-12);
    }
    assert_int_equal(ts_mix_parse("skewed", &m, &err), TS_OK);
    assert_int_equal(m.n, 4);
    const double p[] = {0.167, 0.175, 0.211, 0.447};
    double sum = 0;
    for (int i = 0; i < 4; i++) {
        assert_int_equal(m.width[i], sizes[i]);
        assert_float_equal(m.p[i], p[i], 1e-3);
        sum += m.p[i];
    }
    assert_float_equal(sum, 1.0, 1e-12);
}

static void test_mix_custom(void **state) {
    (void)state;
    TsMix m;
    TsErr err;
    if (ts_mix_parse(" 512:1, 1024x768 : 3 ,256:0", &m, &err)) fail_msg("%s", err.msg);
    assert_int_equal(m.n, 3);
    assert_int_equal(m.width[0], 512);
    assert_int_equal(m.height[0], 512);
    assert_int_equal(m.width[1], 1024);
    assert_int_equal(m.height[1], 768);
    assert_float_equal(m.p[0], 0.25, 1e-12);
    assert_float_equal(m.p[1], 0.75, 1e-12);
    assert_float_equal(m.p[2], 0.0, 0);
    assert_int_equal(m.width[2], 256);
    assert_int_equal(m.height[2], 256);
    assert_int_equal(ts_mix_parse("16:0.5", &m, &err), TS_OK);
    assert_int_equal(m.n, 1);
    assert_int_equal(m.width[0], 16);
    assert_int_equal(m.height[0], 16);
    assert_float_equal(m.p[0], 1.0, 1e-12);
}

static void test_mix_errors(void **state) {
    (void)state;
    static const struct {
        const char *spec, *key;
    } cases[] = {
        {"", "empty"},
        {"Uniform", "not W:P"},
        {"512", "not W:P"},
        {"512:x", "weight 'x'"},
        {"512:", "weight ''"},
        {"512:nan", "not a number"},
        {"500:1", "multiple of 16"},
        {"512x500:1", "multiple of 16"},
        {"0:1", "multiple of 16"},
        {"-16:1", "multiple of 16"},
        {"512x:1", "not W or WxH"},
        {"abc:1", "not W or WxH"},
        {"512:-1", "negative"},
        {"512:0,1024:0", "not all zero"},
        {"512:1,,1024:1", "entry 2 is empty"},
        {"512:1,1024:1,", "entry 3 is empty"},
        {"512:1,512x512:2", "listed twice"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        TsMix m;
        TsErr err = {{0}};
        TsStatus st = ts_mix_parse(cases[i].spec, &m, &err);
        if (st != TS_ERR_INPUT) fail_msg("mix '%s' accepted", cases[i].spec);
        assert_contains(err.msg, cases[i].key);
    }
    /* TS_MIX_MAX entries are fine, one more is not. */
    char spec[2048] = "";
    for (int i = 1; i <= TS_MIX_MAX; i++)
        snprintf(spec + strlen(spec), sizeof spec - strlen(spec), "%s%d:1", i > 1 ? "," : "", 16 * i);
    TsMix m;
    TsErr err;
    assert_int_equal(ts_mix_parse(spec, &m, &err), TS_OK);
    assert_int_equal(m.n, TS_MIX_MAX);
    snprintf(spec + strlen(spec), sizeof spec - strlen(spec), ",%d:1", 16 * (TS_MIX_MAX + 1));
    assert_int_equal(ts_mix_parse(spec, &m, &err), TS_ERR_INPUT);
    assert_contains(err.msg, "more than 32 entries");
}

/* ---- generation -------------------------------------------------------- */

static void test_generate_shape(void **state) {
    (void)state;
    TsTraceGenArgs a = gen_args("uniform", 500, 12, 1);
    TsTrace t;
    TsErr err;
    assert_int_equal(ts_trace_generate(&a, &t, &err), TS_OK);
    assert_int_equal(t.n, 500);
    assert_true(t.req[0].arrival_s > 0); /* the first request comes after the first gap */
    for (int64_t i = 0; i < t.n; i++) {
        const TsRequest *r = &t.req[i];
        assert_int_equal(r->id, i);
        if (i) assert_true(r->arrival_s >= t.req[i - 1].arrival_s);
        double us = r->arrival_s * 1e6;
        assert_float_equal(us, round(us), 1e-3);
        assert_int_equal(r->steps, 28);
        assert_int_equal(r->width, r->height);
        assert_float_equal(r->slo_s, ts_slo_default_s(r->width, r->height), 1e-9);
    }
    ts_trace_free(&t);
}

static void test_generate_deterministic(void **state) {
    (void)state;
    TsTraceGenArgs a = gen_args("skewed", 1000, 12, 7);
    TsTrace t1, t2, t3;
    TsErr err;
    assert_int_equal(ts_trace_generate(&a, &t1, &err), TS_OK);
    assert_int_equal(ts_trace_generate(&a, &t2, &err), TS_OK);
    assert_true(same_trace(&t1, &t2));
    a.seed = 8;
    assert_int_equal(ts_trace_generate(&a, &t3, &err), TS_OK);
    assert_false(same_trace(&t1, &t3));
    /* Different in arrivals and in resolutions, not just somewhere. */
    int arr_diff = 0, res_diff = 0;
    for (int64_t i = 0; i < t1.n; i++) {
        arr_diff += t1.req[i].arrival_s != t3.req[i].arrival_s;
        res_diff += t1.req[i].width != t3.req[i].width;
    }
    assert_true(arr_diff > 900);
    assert_true(res_diff > 300);
    ts_trace_free(&t1);
    ts_trace_free(&t2);
    ts_trace_free(&t3);
}

static void gap_stats(const TsTrace *t, double *mean, double *cv) {
    double s = 0, s2 = 0, prev = 0;
    for (int64_t i = 0; i < t->n; i++) {
        double g = t->req[i].arrival_s - prev;
        prev = t->req[i].arrival_s;
        s += g;
        s2 += g * g;
    }
    double n = (double)t->n;
    *mean = s / n;
    double var = (s2 - n * *mean * *mean) / (n - 1);
    *cv = sqrt(var) / *mean;
}

static void test_generate_poisson_rate(void **state) {
    (void)state;
    const double rates[] = {12, 600};
    for (int k = 0; k < 2; k++) {
        TsTraceGenArgs a = gen_args("uniform", 20000, rates[k], 5);
        TsTrace t;
        TsErr err;
        assert_int_equal(ts_trace_generate(&a, &t, &err), TS_OK);
        double mean, cv;
        gap_stats(&t, &mean, &cv);
        double want = 60.0 / rates[k];
        if (fabs(mean - want) > 0.05 * want) fail_msg("mean gap %g, want %g", mean, want);
        assert_float_equal(cv, 1.0, 0.05); /* exponential gaps */
        ts_trace_free(&t);
    }
}

static void test_generate_gamma_cv(void **state) {
    (void)state;
    const double cvs[] = {0.5, 2.0};
    for (int k = 0; k < 2; k++) {
        TsTraceGenArgs a = gen_args("uniform", 20000, 30, 9);
        a.arrival = TS_ARRIVAL_GAMMA;
        a.gamma_cv = cvs[k];
        TsTrace t;
        TsErr err;
        assert_int_equal(ts_trace_generate(&a, &t, &err), TS_OK);
        double mean, cv;
        gap_stats(&t, &mean, &cv);
        if (fabs(cv - cvs[k]) > 0.1 * cvs[k]) fail_msg("gap cv %g, want %g", cv, cvs[k]);
        if (fabs(mean - 2.0) > 0.1) fail_msg("mean gap %g, want 2", mean);
        ts_trace_free(&t);
    }
}

static void test_generate_mix_frequencies(void **state) {
    (void)state;
    const char *mixes[] = {"skewed", "uniform", "512:1,1024x768:3,2048:0"};
    for (int k = 0; k < 3; k++) {
        TsTraceGenArgs a = gen_args(mixes[k], 20000, 12, 4);
        TsTrace t;
        TsErr err;
        assert_int_equal(ts_trace_generate(&a, &t, &err), TS_OK);
        for (int j = 0; j < a.mix.n; j++) {
            int64_t c = 0;
            for (int64_t i = 0; i < t.n; i++)
                c += t.req[i].width == a.mix.width[j] && t.req[i].height == a.mix.height[j];
            double f = (double)c / (double)t.n;
            if (fabs(f - a.mix.p[j]) > 0.02)
                fail_msg("mix %s entry %d: frequency %g, want %g", mixes[k], j, f, a.mix.p[j]);
        }
        ts_trace_free(&t);
    }
}

static void test_generate_bad_args(void **state) {
    (void)state;
    TsTrace t;
    TsErr err = {{0}};
    TsTraceGenArgs a = gen_args("uniform", 10, 12, 1);
    a.n = 0;
    assert_int_equal(ts_trace_generate(&a, &t, &err), TS_ERR_INPUT);
    assert_contains(err.msg, "n 0");
    a = gen_args("uniform", 10, 0, 1);
    assert_int_equal(ts_trace_generate(&a, &t, &err), TS_ERR_INPUT);
    assert_contains(err.msg, "rate");
    a = gen_args("uniform", 10, NAN, 1);
    assert_int_equal(ts_trace_generate(&a, &t, &err), TS_ERR_INPUT);
    a = gen_args("uniform", 10, 12, 1);
    a.steps = 0;
    assert_int_equal(ts_trace_generate(&a, &t, &err), TS_ERR_INPUT);
    assert_contains(err.msg, "steps");
    a = gen_args("uniform", 10, 12, 1);
    a.arrival = TS_ARRIVAL_GAMMA;
    a.gamma_cv = 0;
    assert_int_equal(ts_trace_generate(&a, &t, &err), TS_ERR_INPUT);
    assert_contains(err.msg, "cv");
    a = gen_args("uniform", 10, 12, 1);
    a.mix.n = 0;
    assert_int_equal(ts_trace_generate(&a, &t, &err), TS_ERR_INPUT);
    assert_null(t.req);
}

/* ---- the trace-gen verb ------------------------------------------------ */

static int run_gen(int argc, const char **argv) {
    /* getopt may permute argv: give it a writable copy. */
    char *copy[32];
    for (int i = 0; i < argc; i++) copy[i] = (char *)argv[i];
    copy[argc] = NULL;
    fflush(stdout);
    return ts_cmd_trace_gen(argc, copy);
}

static void test_cmd_trace_gen(void **state) {
    (void)state;
    char out[256];
    snprintf(out, sizeof out, "%s", ts_test_tmpfile(".csv", ""));
    const char *argv[] = {"trace-gen", "--n", "300", "--rate", "12", "--mix", "uniform", "--seed", "1",
                          "--out", out};
    assert_int_equal(run_gen(11, argv), 0);
    TsTrace t, g;
    TsErr err;
    if (ts_trace_load(out, &t, &err)) fail_msg("%s", err.msg);
    TsTraceGenArgs a = gen_args("uniform", 300, 12, 1);
    assert_int_equal(ts_trace_generate(&a, &g, &err), TS_OK);
    assert_true(same_trace(&t, &g));
    char *text = slurp(out);
    assert_int_equal(strncmp(text, "# generated by tetriserve " TS_VERSION " (commit ", 36), 0);
    char cmd[600];
    snprintf(cmd, sizeof cmd,
             "\n# command: tetriserve trace-gen --n 300 --rate 12 --mix uniform --steps 28 --arrival "
             "poisson --seed 1 --out %s\n",
             out);
    assert_contains(text, cmd);
    assert_contains(text, "# mix uniform: 256x256 p=0.2500, 512x512 p=0.2500");
    free(text);
    ts_trace_free(&t);
    ts_trace_free(&g);

    /* Gamma arrivals and a custom mix, options in another order; same as the API. */
    const char *argv2[] = {"trace-gen", "--out", out, "--arrival", "gamma:2", "--mix", "512:1,768x1024:2",
                           "--steps", "10", "--seed", "42", "--rate", "60", "--n", "50"};
    assert_int_equal(run_gen(15, argv2), 0);
    if (ts_trace_load(out, &t, &err)) fail_msg("%s", err.msg);
    a = gen_args("512:1,768x1024:2", 50, 60, 42);
    a.steps = 10;
    a.arrival = TS_ARRIVAL_GAMMA;
    a.gamma_cv = 2;
    assert_int_equal(ts_trace_generate(&a, &g, &err), TS_OK);
    assert_true(same_trace(&t, &g));
    ts_trace_free(&t);
    ts_trace_free(&g);
    remove(out);
}

static void test_cmd_trace_gen_errors(void **state) {
    (void)state;
    static const char *cases[][16] = {
        {"trace-gen", "--rate", "12", "--mix", "uniform", "--out", "OUT"},              /* no --n */
        {"trace-gen", "--n", "10", "--mix", "uniform", "--out", "OUT"},                 /* no --rate */
        {"trace-gen", "--n", "10", "--rate", "12", "--out", "OUT"},                     /* no --mix */
        {"trace-gen", "--n", "10", "--rate", "12", "--mix", "uniform"},                        /* no --out */
        {"trace-gen", "--n", "0", "--rate", "12", "--mix", "uniform", "--out", "OUT"},
        {"trace-gen", "--n", "10", "--rate", "0", "--mix", "uniform", "--out", "OUT"},
        {"trace-gen", "--n", "10", "--rate", "-3", "--mix", "uniform", "--out", "OUT"},
        {"trace-gen", "--n", "10", "--rate", "abc", "--mix", "uniform", "--out", "OUT"},
        {"trace-gen", "--n", "10", "--rate", "12", "--mix", "500:1", "--out", "OUT"},
        {"trace-gen", "--n", "10", "--rate", "12", "--mix", "uniform", "--steps", "0", "--out", "OUT"},
        {"trace-gen", "--n", "10", "--rate", "12", "--mix", "uniform", "--arrival", "gamma:0", "--out", "OUT"},
        {"trace-gen", "--n", "10", "--rate", "12", "--mix", "uniform", "--arrival", "bursty", "--out", "OUT"},
        {"trace-gen", "--n", "10", "--rate", "12", "--mix", "uniform", "--seed", "-1", "--out", "OUT"},
        {"trace-gen", "--n", "10", "--rate", "12", "--mix", "uniform", "--bogus", "--out", "OUT"},
        {"trace-gen", "--n", "10", "--rate", "12", "--mix", "uniform", "--out", "OUT", "extra"},
        {"trace-gen", "--n", "10", "--rate", "12", "--mix", "uniform", "--out"},
    };
    char out[256];
    snprintf(out, sizeof out, "%s", ts_test_tmpfile(".csv", ""));
    remove(out);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const char *argv[16];
        int argc = 0;
        for (; cases[i][argc]; argc++) argv[argc] = strcmp(cases[i][argc], "OUT") ? cases[i][argc] : out;
        int rc = run_gen(argc, argv);
        if (rc != 2) fail_msg("case %zu: exit %d, want 2", i, rc);
        assert_false(file_exists(out));
    }
    /* An unwritable output is not a usage error. */
    const char *unwritable[] = {"trace-gen", "--n", "10", "--rate", "12", "--mix", "uniform", "--out",
                                "/nonexistent-dir-ts/x.csv"};
    assert_int_equal(run_gen(9, unwritable), 1);
    const char *help[] = {"trace-gen", "--help"};
    assert_int_equal(run_gen(2, help), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_good_shuffled),
        cmocka_unit_test(test_load_no_trailing_newline),
        cmocka_unit_test(test_load_bom_and_leading_blank_lines),
        cmocka_unit_test(test_sort_ties),
        cmocka_unit_test(test_load_bad_fixtures),
        cmocka_unit_test(test_load_bad_inline),
        cmocka_unit_test(test_load_unreadable),
        cmocka_unit_test(test_load_fast),
        cmocka_unit_test(test_save_load_roundtrip_exact),
        cmocka_unit_test(test_save_unwritable),
        cmocka_unit_test(test_slo_default),
        cmocka_unit_test(test_mix_named),
        cmocka_unit_test(test_mix_custom),
        cmocka_unit_test(test_mix_errors),
        cmocka_unit_test(test_generate_shape),
        cmocka_unit_test(test_generate_deterministic),
        cmocka_unit_test(test_generate_poisson_rate),
        cmocka_unit_test(test_generate_gamma_cv),
        cmocka_unit_test(test_generate_mix_frequencies),
        cmocka_unit_test(test_generate_bad_args),
        cmocka_unit_test(test_cmd_trace_gen),
        cmocka_unit_test(test_cmd_trace_gen_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
