/* test_results.c - the run log, the summary metrics, the HDF5 results file
 * (read back with the plain HDF5 C API) and the `report` verb. */
#include <fcntl.h>
#include <sys/wait.h>
#include <hdf5.h>
#include <math.h>

#include "ts_test.h"

#include "ts_log.h"
#include "ts_results.h"

#define EPS 1e-12

/* (cmocka 1.1.5 has no double comparison) */
#define assert_close(a, b, eps) assert_close_at((a), (b), (eps), #a, __FILE__, __LINE__)
static void assert_close_at(double a, double b, double eps, const char *what, const char *file,
                            int line) {
    if (!(fabs(a - b) <= eps)) {
        print_error("%s = %.17g, expected %.17g (+- %g)\n", what, a, b, eps);
        _fail(file, line);
    }
}

static void tmp_h5(char *buf, size_t len, const char *tag) {
    snprintf(buf, len, "%s/ts-test-results-%d-%s.h5", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp",
             (int)getpid(), tag);
}

static TsRunMeta test_meta(void) {
    TsRunMeta m = {
        .mode = "simulate",
        .backend = "sim",
        .policy = "tetriserve",
        .policy_options = "round_ms=100 batching=1",
        .trace = "traces/x.csv",
        .profile = "profiles/y.csv",
        .command_line = "tetriserve simulate --gpus 4",
        .n_gpus = 4,
        .gpus_per_node = 2,
        .slo_scale = 1.5,
        .round_s = 0.1,
        .seed = 18446744073709551557ull, /* > INT64_MAX: must survive as uint64 */
    };
    return m;
}

static void set_req(TsRequestRec *r, int64_t id, int32_t w, int32_t h, int32_t steps,
                    double arrival, double deadline) {
    r->id = id;
    r->width = w;
    r->height = h;
    r->steps = steps;
    r->arrival = arrival;
    r->deadline = deadline;
}

static TsSegment seg(int64_t rid, int32_t sb, int32_t n, int32_t deg, double s, double e,
                     int64_t round, int64_t batch) {
    TsSegment x = {.request_id = rid, .step_begin = sb, .n_steps = n, .degree = deg,
                   .gpu_offset = -99, .start = s, .end = e, .round = round, .batch_id = batch};
    return x;
}

/* 4 GPUs, 3 requests:
 *  r10 512x512, 4 steps: [0,2) on GPUs {0,1} 0.1..0.5, [2,4) on {0,1,2,3}
 *      0.5..0.7 -> finished at 0.7 (deadline 2.0, met), latency 0.7;
 *  r11 and r12 256x256 run one batch (batch_id 0) on GPU {2} 0.2..0.45;
 *      r11 (2 steps) finishes, latency 0.25, met; r12 (4 steps, deadline
 *      0.5) is left unfinished. */
static void build_log(TsRunLog *log) {
    ts_log_init(log, 3);
    set_req(&log->req[0], 10, 512, 512, 4, 0.0, 2.0);
    set_req(&log->req[1], 11, 256, 256, 2, 0.2, 1.7);
    set_req(&log->req[2], 12, 256, 256, 4, 0.2, 0.5);
    const int32_t g01[] = {0, 1}, g0123[] = {0, 1, 2, 3}, g2[] = {2};
    TsSegment s0 = seg(10, 0, 2, 2, 0.1, 0.5, 0, -1);
    TsSegment s1 = seg(10, 2, 2, 4, 0.5, 0.7, 1, -1);
    TsSegment s2 = seg(11, 0, 2, 1, 0.2, 0.45, 0, 0);
    TsSegment s3 = seg(12, 0, 2, 1, 0.2, 0.45, 0, 0);
    assert_int_equal(ts_log_add_segment(log, &s0, g01), 0);
    assert_int_equal(ts_log_add_segment(log, &s2, g2), 1);
    assert_int_equal(ts_log_add_segment_shared(log, &s3, 1), 2);
    assert_int_equal(ts_log_add_segment(log, &s1, g0123), 3);
    log->req[0].start = 0.1;
    log->req[0].finish = 0.7;
    log->req[0].met = 1;
    log->req[0].status = TS_STATUS_FINISHED;
    log->req[1].start = 0.2;
    log->req[1].finish = 0.45;
    log->req[1].met = 1;
    log->req[1].status = TS_STATUS_FINISHED;
    log->req[2].start = 0.2; /* finish stays NAN, status unfinished */
    TsRoundRec r0 = {0, 0.1, 3, 2, 3, 12.5}, r1 = {1, 0.5, 2, 1, 4, 7.25};
    ts_log_add_round(log, &r0);
    ts_log_add_round(log, &r1);
}

static void test_log_init_and_segments(void **state) {
    (void)state;
    TsRunLog log;
    build_log(&log);
    /* init defaults on a fresh log */
    TsRunLog fresh;
    ts_log_init(&fresh, 2);
    for (int i = 0; i < 2; i++) {
        assert_true(isnan(fresh.req[i].start));
        assert_true(isnan(fresh.req[i].finish));
        assert_int_equal(fresh.req[i].status, TS_STATUS_UNFINISHED);
        assert_int_equal(fresh.req[i].met, 0);
    }
    assert_int_equal(fresh.n_seg, 0);
    ts_log_free(&fresh);

    assert_int_equal(log.n_seg, 4);
    assert_int_equal(log.n_seg_gpus, 2 + 1 + 4); /* the shared segment adds none */
    assert_int_equal(log.seg[0].gpu_offset, 0);
    assert_int_equal(log.seg[1].gpu_offset, 2);
    assert_int_equal(log.seg[2].gpu_offset, 2);
    assert_int_equal(log.seg[3].gpu_offset, 3);
    const int32_t want[] = {0, 1, 2, 0, 1, 2, 3};
    assert_memory_equal(log.seg_gpus, want, sizeof want);
    assert_int_equal(log.n_rounds, 2);
    /* many appends: offsets stay right across reallocations */
    for (int i = 0; i < 1000; i++) {
        int32_t g[2] = {i % 4, (i + 1) % 4};
        TsSegment s = seg(10, 0, 1, 2, 1.0, 2.0, -1, -1);
        int64_t k = ts_log_add_segment(&log, &s, g);
        int64_t k2 = ts_log_add_segment_shared(&log, &s, k);
        assert_int_equal(log.seg[k2].gpu_offset, log.seg[k].gpu_offset);
        assert_int_equal(log.seg_gpus[log.seg[k].gpu_offset + 1], (i + 1) % 4);
    }
    assert_int_equal(log.n_seg_gpus, 7 + 2000);
    ts_log_mark_dirty(&log, 5);
    assert_int_equal(log.seg_dirty_from, 0); /* never raises it */
    log.seg_dirty_from = 10;
    ts_log_mark_dirty(&log, 5);
    assert_int_equal(log.seg_dirty_from, 5);
    ts_log_free(&log);
    assert_null(log.req);
}

static void test_summary_hand_case(void **state) {
    (void)state;
    TsRunLog log;
    build_log(&log);
    TsSummary s;
    ts_summary_compute(&log, 4, &s);
    assert_int_equal(s.n_requests, 3);
    assert_int_equal(s.n_finished, 2);
    assert_int_equal(s.n_met, 2);
    assert_close(s.sar, 2.0 / 3.0, EPS);
    /* latencies {0.25, 0.7} */
    assert_close(s.latency_mean, 0.475, EPS);
    assert_close(s.latency_p50, 0.475, EPS);
    assert_close(s.latency_p90, 0.25 + 0.9 * 0.45, EPS);
    assert_close(s.latency_p99, 0.25 + 0.99 * 0.45, EPS);
    assert_close(s.makespan, 0.7, EPS);
    /* 2*0.4 + 4*0.2 + 1*0.25 (the batch once, not 0.5) over 4 * 0.7 */
    assert_close(s.gpu_busy_fraction, 1.85 / 2.8, EPS);
    assert_int_equal(s.n_res, 2);
    assert_int_equal(s.res_width[0], 512);
    assert_int_equal(s.res_height[0], 512);
    assert_int_equal(s.res_n[0], 1);
    assert_int_equal(s.res_met[0], 1);
    assert_int_equal(s.res_width[1], 256);
    assert_int_equal(s.res_n[1], 2);
    assert_int_equal(s.res_met[1], 1);
    ts_log_free(&log);
}

static void test_summary_percentiles_and_edges(void **state) {
    (void)state;
    TsRunLog log;
    ts_log_init(&log, 7);
    const double lat[] = {3, 1, 4, 1, 5};
    for (int i = 0; i < 5; i++) {
        set_req(&log.req[i], i, 256, 512, 10, (double)i, (double)i + 3.5);
        log.req[i].finish = (double)i + lat[i];
        log.req[i].met = lat[i] <= 3.5;
        log.req[i].status = TS_STATUS_FINISHED;
    }
    set_req(&log.req[5], 5, 256, 512, 10, 5, 6);
    log.req[5].status = TS_STATUS_REJECTED;
    set_req(&log.req[6], 6, 1024, 1024, 10, 6, 9);
    log.req[6].met = 1; /* inconsistent flag on an unfinished request: not counted */
    TsSummary s;
    ts_summary_compute(&log, 8, &s);
    assert_int_equal(s.n_requests, 7);
    assert_int_equal(s.n_finished, 5);
    assert_int_equal(s.n_met, 3);
    assert_close(s.sar, 3.0 / 7.0, EPS);
    /* sorted {1,1,3,4,5}: linear interpolation at q*(n-1) */
    assert_close(s.latency_mean, 2.8, EPS);
    assert_close(s.latency_p50, 3.0, EPS);
    assert_close(s.latency_p90, 4.6, EPS);
    assert_close(s.latency_p99, 4.96, EPS);
    assert_close(s.makespan, 0.0, 0);
    assert_close(s.gpu_busy_fraction, 0.0, 0);
    assert_int_equal(s.n_res, 2);
    assert_int_equal(s.res_n[0], 6);
    assert_int_equal(s.res_met[0], 3);
    assert_int_equal(s.res_n[1], 1);
    assert_int_equal(s.res_met[1], 0);
    ts_log_free(&log);

    ts_log_init(&log, 0);
    ts_summary_compute(&log, 4, &s);
    assert_int_equal(s.n_requests, 0);
    assert_close(s.sar, 0.0, 0);
    assert_true(isnan(s.latency_mean) && isnan(s.latency_p50) && isnan(s.latency_p99));
    assert_int_equal(s.n_res, 0);
    ts_log_free(&log);
}

/* ---- reading back with the HDF5 C API ---- */

typedef struct {
    const char *name;
    H5T_class_t cls;
    size_t size;
    int is_signed;
} FieldSpec;

static void check_fields(hid_t d, const FieldSpec *f, int n) {
    hid_t t = H5Dget_type(d);
    assert_true(t >= 0);
    assert_int_equal(H5Tget_class(t), H5T_COMPOUND);
    assert_int_equal(H5Tget_nmembers(t), n);
    for (int i = 0; i < n; i++) {
        char *name = H5Tget_member_name(t, (unsigned)i);
        assert_string_equal(name, f[i].name);
        H5free_memory(name);
        hid_t mt = H5Tget_member_type(t, (unsigned)i);
        assert_int_equal(H5Tget_class(mt), f[i].cls);
        assert_int_equal(H5Tget_size(mt), f[i].size);
        if (f[i].cls == H5T_INTEGER)
            assert_int_equal(H5Tget_sign(mt), f[i].is_signed ? H5T_SGN_2 : H5T_SGN_NONE);
        H5Tclose(mt);
    }
    H5Tclose(t);
}

static hid_t req_mem_type(void) {
    hid_t t = H5Tcreate(H5T_COMPOUND, sizeof(TsRequestRec));
    H5Tinsert(t, "id", HOFFSET(TsRequestRec, id), H5T_NATIVE_INT64);
    H5Tinsert(t, "width", HOFFSET(TsRequestRec, width), H5T_NATIVE_INT32);
    H5Tinsert(t, "height", HOFFSET(TsRequestRec, height), H5T_NATIVE_INT32);
    H5Tinsert(t, "steps", HOFFSET(TsRequestRec, steps), H5T_NATIVE_INT32);
    H5Tinsert(t, "arrival", HOFFSET(TsRequestRec, arrival), H5T_NATIVE_DOUBLE);
    H5Tinsert(t, "deadline", HOFFSET(TsRequestRec, deadline), H5T_NATIVE_DOUBLE);
    H5Tinsert(t, "start", HOFFSET(TsRequestRec, start), H5T_NATIVE_DOUBLE);
    H5Tinsert(t, "finish", HOFFSET(TsRequestRec, finish), H5T_NATIVE_DOUBLE);
    H5Tinsert(t, "met", HOFFSET(TsRequestRec, met), H5T_NATIVE_UINT8);
    H5Tinsert(t, "status", HOFFSET(TsRequestRec, status), H5T_NATIVE_INT8);
    return t;
}

static hid_t seg_mem_type(void) {
    hid_t t = H5Tcreate(H5T_COMPOUND, sizeof(TsSegment));
    H5Tinsert(t, "request_id", HOFFSET(TsSegment, request_id), H5T_NATIVE_INT64);
    H5Tinsert(t, "step_begin", HOFFSET(TsSegment, step_begin), H5T_NATIVE_INT32);
    H5Tinsert(t, "n_steps", HOFFSET(TsSegment, n_steps), H5T_NATIVE_INT32);
    H5Tinsert(t, "degree", HOFFSET(TsSegment, degree), H5T_NATIVE_INT32);
    H5Tinsert(t, "gpu_offset", HOFFSET(TsSegment, gpu_offset), H5T_NATIVE_INT64);
    H5Tinsert(t, "start", HOFFSET(TsSegment, start), H5T_NATIVE_DOUBLE);
    H5Tinsert(t, "end", HOFFSET(TsSegment, end), H5T_NATIVE_DOUBLE);
    H5Tinsert(t, "round", HOFFSET(TsSegment, round), H5T_NATIVE_INT64);
    H5Tinsert(t, "batch_id", HOFFSET(TsSegment, batch_id), H5T_NATIVE_INT64);
    return t;
}

static hid_t round_mem_type(void) {
    hid_t t = H5Tcreate(H5T_COMPOUND, sizeof(TsRoundRec));
    H5Tinsert(t, "round", HOFFSET(TsRoundRec, round), H5T_NATIVE_INT64);
    H5Tinsert(t, "start", HOFFSET(TsRoundRec, start), H5T_NATIVE_DOUBLE);
    H5Tinsert(t, "n_pending", HOFFSET(TsRoundRec, n_pending), H5T_NATIVE_INT32);
    H5Tinsert(t, "n_scheduled", HOFFSET(TsRoundRec, n_scheduled), H5T_NATIVE_INT32);
    H5Tinsert(t, "gpus_busy", HOFFSET(TsRoundRec, gpus_busy), H5T_NATIVE_INT32);
    H5Tinsert(t, "decide_us", HOFFSET(TsRoundRec, decide_us), H5T_NATIVE_DOUBLE);
    return t;
}

/* Read a whole 1-D dataset; returns the row count. */
static int64_t read_rows(hid_t file, const char *name, hid_t mt, size_t elt, void **out) {
    hid_t d = H5Dopen2(file, name, H5P_DEFAULT);
    assert_true(d >= 0);
    hid_t sp = H5Dget_space(d);
    hssize_t n = H5Sget_simple_extent_npoints(sp);
    assert_true(n >= 0);
    *out = calloc((size_t)n + 1, elt);
    if (n > 0) assert_true(H5Dread(d, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, *out) >= 0);
    H5Sclose(sp);
    H5Dclose(d);
    return (int64_t)n;
}

static uint8_t read_complete(const char *path) {
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(f >= 0);
    uint8_t c = 99;
    hid_t a = H5Aopen(f, "complete", H5P_DEFAULT);
    assert_true(a >= 0);
    hid_t t = H5Aget_type(a);
    assert_int_equal(H5Tget_size(t), 1);
    assert_int_equal(H5Tget_sign(t), H5T_SGN_NONE);
    H5Tclose(t);
    assert_true(H5Aread(a, H5T_NATIVE_UINT8, &c) >= 0);
    H5Aclose(a);
    H5Fclose(f);
    return c;
}

static void check_str_attr(hid_t loc, const char *name, const char *want) {
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    assert_true(a >= 0);
    hid_t t = H5Aget_type(a);
    assert_int_equal(H5Tget_class(t), H5T_STRING);
    assert_true(H5Tis_variable_str(t) > 0);
    assert_int_equal(H5Tget_cset(t), H5T_CSET_UTF8);
    hid_t mt = H5Tcopy(H5T_C_S1);
    H5Tset_size(mt, H5T_VARIABLE);
    H5Tset_cset(mt, H5T_CSET_UTF8);
    char *s = NULL;
    assert_true(H5Aread(a, mt, &s) >= 0);
    if (want) assert_string_equal(s, want);
    else assert_true(s && strlen(s) > 0);
    H5free_memory(s);
    H5Tclose(mt);
    H5Tclose(t);
    H5Aclose(a);
}

/* Read a numeric attribute, checking its stored class, size and sign. */
static void read_num_attr(hid_t loc, const char *name, H5T_class_t cls, size_t size, int sgn,
                          hid_t mem, void *v) {
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    if (a < 0) fail_msg("attribute %s missing", name);
    hid_t t = H5Aget_type(a);
    assert_int_equal(H5Tget_class(t), cls);
    assert_int_equal(H5Tget_size(t), size);
    if (cls == H5T_INTEGER) assert_int_equal(H5Tget_sign(t), sgn ? H5T_SGN_2 : H5T_SGN_NONE);
    H5Tclose(t);
    assert_true(H5Aread(a, mem, v) >= 0);
    H5Aclose(a);
}

static void check_file_contents(const char *path, const TsRunLog *log) {
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(f >= 0);
    hid_t d = H5Dopen2(f, "/requests", H5P_DEFAULT);
    const FieldSpec rf[] = {
        {"id", H5T_INTEGER, 8, 1},      {"width", H5T_INTEGER, 4, 1},   {"height", H5T_INTEGER, 4, 1},
        {"steps", H5T_INTEGER, 4, 1},   {"arrival", H5T_FLOAT, 8, 0},   {"deadline", H5T_FLOAT, 8, 0},
        {"start", H5T_FLOAT, 8, 0},     {"finish", H5T_FLOAT, 8, 0},    {"met", H5T_INTEGER, 1, 0},
        {"status", H5T_INTEGER, 1, 1},
    };
    check_fields(d, rf, 10);
    H5Dclose(d);
    d = H5Dopen2(f, "/segments", H5P_DEFAULT);
    const FieldSpec sf[] = {
        {"request_id", H5T_INTEGER, 8, 1}, {"step_begin", H5T_INTEGER, 4, 1},
        {"n_steps", H5T_INTEGER, 4, 1},    {"degree", H5T_INTEGER, 4, 1},
        {"gpu_offset", H5T_INTEGER, 8, 1}, {"start", H5T_FLOAT, 8, 0},
        {"end", H5T_FLOAT, 8, 0},          {"round", H5T_INTEGER, 8, 1},
        {"batch_id", H5T_INTEGER, 8, 1},
    };
    check_fields(d, sf, 9);
    H5Dclose(d);
    d = H5Dopen2(f, "/rounds", H5P_DEFAULT);
    const FieldSpec of[] = {
        {"round", H5T_INTEGER, 8, 1},     {"start", H5T_FLOAT, 8, 0},
        {"n_pending", H5T_INTEGER, 4, 1}, {"n_scheduled", H5T_INTEGER, 4, 1},
        {"gpus_busy", H5T_INTEGER, 4, 1}, {"decide_us", H5T_FLOAT, 8, 0},
    };
    check_fields(d, of, 6);
    H5Dclose(d);

    hid_t t = req_mem_type();
    TsRequestRec *req;
    assert_int_equal(read_rows(f, "/requests", t, sizeof *req, (void **)&req), log->n_req);
    H5Tclose(t);
    for (int64_t i = 0; i < log->n_req; i++) {
        const TsRequestRec *a = &req[i], *b = &log->req[i];
        assert_int_equal(a->id, b->id);
        assert_int_equal(a->width, b->width);
        assert_int_equal(a->height, b->height);
        assert_int_equal(a->steps, b->steps);
        assert_close(a->arrival, b->arrival, 0);
        assert_close(a->deadline, b->deadline, 0);
        if (isnan(b->start)) assert_true(isnan(a->start));
        else assert_close(a->start, b->start, 0);
        if (isnan(b->finish)) assert_true(isnan(a->finish));
        else assert_close(a->finish, b->finish, 0);
        assert_int_equal(a->met, b->met);
        assert_int_equal(a->status, b->status);
    }
    free(req);

    t = seg_mem_type();
    TsSegment *sg;
    assert_int_equal(read_rows(f, "/segments", t, sizeof *sg, (void **)&sg), log->n_seg);
    H5Tclose(t);
    for (int64_t i = 0; i < log->n_seg; i++) {
        const TsSegment *a = &sg[i], *b = &log->seg[i];
        assert_int_equal(a->request_id, b->request_id);
        assert_int_equal(a->step_begin, b->step_begin);
        assert_int_equal(a->n_steps, b->n_steps);
        assert_int_equal(a->degree, b->degree);
        assert_int_equal(a->gpu_offset, b->gpu_offset);
        assert_close(a->start, b->start, 0);
        assert_close(a->end, b->end, 0);
        assert_int_equal(a->round, b->round);
        assert_int_equal(a->batch_id, b->batch_id);
    }
    free(sg);

    int32_t *g;
    assert_int_equal(read_rows(f, "/segment_gpus", H5T_NATIVE_INT32, sizeof *g, (void **)&g),
                     log->n_seg_gpus);
    if (log->n_seg_gpus) assert_memory_equal(g, log->seg_gpus, (size_t)log->n_seg_gpus * sizeof *g);
    free(g);

    t = round_mem_type();
    TsRoundRec *rr;
    assert_int_equal(read_rows(f, "/rounds", t, sizeof *rr, (void **)&rr), log->n_rounds);
    H5Tclose(t);
    for (int64_t i = 0; i < log->n_rounds; i++) {
        assert_int_equal(rr[i].round, log->rounds[i].round);
        assert_close(rr[i].start, log->rounds[i].start, 0);
        assert_int_equal(rr[i].n_pending, log->rounds[i].n_pending);
        assert_int_equal(rr[i].n_scheduled, log->rounds[i].n_scheduled);
        assert_int_equal(rr[i].gpus_busy, log->rounds[i].gpus_busy);
        assert_close(rr[i].decide_us, log->rounds[i].decide_us, 0);
    }
    free(rr);
    H5Fclose(f);
}

static void check_root_attrs(const char *path) {
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(f >= 0);
    int32_t i32;
    double f64;
    uint64_t u64;
    read_num_attr(f, "schema_version", H5T_INTEGER, 4, 1, H5T_NATIVE_INT32, &i32);
    assert_int_equal(i32, 1);
    read_num_attr(f, "n_gpus", H5T_INTEGER, 4, 1, H5T_NATIVE_INT32, &i32);
    assert_int_equal(i32, 4);
    read_num_attr(f, "gpus_per_node", H5T_INTEGER, 4, 1, H5T_NATIVE_INT32, &i32);
    assert_int_equal(i32, 2);
    read_num_attr(f, "slo_scale", H5T_FLOAT, 8, 0, H5T_NATIVE_DOUBLE, &f64);
    assert_close(f64, 1.5, 0);
    read_num_attr(f, "round_s", H5T_FLOAT, 8, 0, H5T_NATIVE_DOUBLE, &f64);
    assert_close(f64, 0.1, 0);
    read_num_attr(f, "seed", H5T_INTEGER, 8, 0, H5T_NATIVE_UINT64, &u64);
    assert_true(u64 == 18446744073709551557ull);
    check_str_attr(f, "tetriserve_version", ts_version_string());
    check_str_attr(f, "mode", "simulate");
    check_str_attr(f, "backend", "sim");
    check_str_attr(f, "policy", "tetriserve");
    check_str_attr(f, "policy_options", "round_ms=100 batching=1");
    check_str_attr(f, "trace", "traces/x.csv");
    check_str_attr(f, "profile", "profiles/y.csv");
    check_str_attr(f, "command_line", "tetriserve simulate --gpus 4");
    check_str_attr(f, "created", NULL);
    hid_t a = H5Aopen(f, "created", H5P_DEFAULT);
    hid_t mt = H5Tcopy(H5T_C_S1);
    H5Tset_size(mt, H5T_VARIABLE);
    char *s = NULL;
    H5Aread(a, mt, &s);
    assert_int_equal(strlen(s), 20); /* 2026-11-22T07:28:14Z */
    assert_true(s[4] == '-' && s[10] == 'T' && s[19] == 'Z');
    H5free_memory(s);
    H5Tclose(mt);
    H5Aclose(a);
    H5Fclose(f);
}

static void test_results_roundtrip(void **state) {
    (void)state;
    char path[256];
    tmp_h5(path, sizeof path, "rt");
    TsRunMeta meta = test_meta();
    TsRunLog log;
    build_log(&log);
    TsResultsFile *rf = NULL;
    TsErr err = {{0}};
    assert_int_equal(ts_results_create(path, &meta, &rf, &err), TS_OK);
    assert_non_null(rf);
    assert_int_equal(read_complete(path), 0);
    check_root_attrs(path);
    TsRunLog empty;
    ts_log_init(&empty, 0);
    check_file_contents(path, &empty); /* all datasets present, empty */
    ts_log_free(&empty);

    /* First flush: the first two segments only (the run is in progress). */
    int64_t n_all = log.n_seg, n_gpus_all = log.n_seg_gpus;
    log.n_seg = 2;
    log.n_seg_gpus = 3;
    log.n_rounds = 1;
    assert_int_equal(ts_results_flush(rf, &log, &err), TS_OK);
    assert_int_equal(log.seg_dirty_from, 2);
    check_file_contents(path, &log);
    assert_int_equal(read_complete(path), 0);

    /* Segment 0 is modified in place and more rows appear: the second flush
     * must rewrite the dirty row and append the rest. */
    log.n_seg = n_all;
    log.n_seg_gpus = n_gpus_all;
    log.n_rounds = 2;
    log.seg[0].end = 0.55;
    log.seg[0].n_steps = 2;
    ts_log_mark_dirty(&log, 0);
    log.req[0].finish = 0.7;
    assert_int_equal(ts_results_flush(rf, &log, &err), TS_OK);
    assert_int_equal(log.seg_dirty_from, 4);
    check_file_contents(path, &log);
    assert_int_equal(read_complete(path), 0);
    /* Back to the hand case (summary checked below); everything dirty. */
    log.seg[0].end = 0.5;
    log.seg_dirty_from = 0;

    TsSummary s;
    ts_summary_compute(&log, 4, &s);
    assert_int_equal(ts_results_finish(rf, &log, &s, 1, &err), TS_OK);
    check_file_contents(path, &log);
    assert_int_equal(read_complete(path), 1);
    check_root_attrs(path);

    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t g = H5Gopen2(f, "/summary", H5P_DEFAULT);
    assert_true(g >= 0);
    int64_t i64;
    double v;
    read_num_attr(g, "n_requests", H5T_INTEGER, 8, 1, H5T_NATIVE_INT64, &i64);
    assert_int_equal(i64, 3);
    read_num_attr(g, "n_met", H5T_INTEGER, 8, 1, H5T_NATIVE_INT64, &i64);
    assert_int_equal(i64, 2);
    read_num_attr(g, "n_finished", H5T_INTEGER, 8, 1, H5T_NATIVE_INT64, &i64);
    assert_int_equal(i64, 2);
    read_num_attr(g, "sar", H5T_FLOAT, 8, 0, H5T_NATIVE_DOUBLE, &v);
    assert_close(v, 2.0 / 3.0, EPS);
    read_num_attr(g, "latency_mean", H5T_FLOAT, 8, 0, H5T_NATIVE_DOUBLE, &v);
    assert_close(v, 0.475, EPS);
    read_num_attr(g, "latency_p50", H5T_FLOAT, 8, 0, H5T_NATIVE_DOUBLE, &v);
    assert_close(v, 0.475, EPS);
    read_num_attr(g, "latency_p90", H5T_FLOAT, 8, 0, H5T_NATIVE_DOUBLE, &v);
    assert_close(v, 0.655, EPS);
    read_num_attr(g, "latency_p99", H5T_FLOAT, 8, 0, H5T_NATIVE_DOUBLE, &v);
    assert_close(v, 0.6955, EPS);
    read_num_attr(g, "gpu_busy_fraction", H5T_FLOAT, 8, 0, H5T_NATIVE_DOUBLE, &v);
    assert_close(v, 1.85 / 2.8, EPS);
    read_num_attr(g, "makespan", H5T_FLOAT, 8, 0, H5T_NATIVE_DOUBLE, &v);
    assert_close(v, 0.7, EPS);
    int32_t w[4] = {0};
    int64_t n[4] = {0};
    read_num_attr(g, "res_width", H5T_INTEGER, 4, 1, H5T_NATIVE_INT32, w);
    assert_int_equal(w[0], 512);
    assert_int_equal(w[1], 256);
    read_num_attr(g, "res_height", H5T_INTEGER, 4, 1, H5T_NATIVE_INT32, w);
    assert_int_equal(w[1], 256);
    read_num_attr(g, "res_n", H5T_INTEGER, 8, 1, H5T_NATIVE_INT64, n);
    assert_int_equal(n[0], 1);
    assert_int_equal(n[1], 2);
    read_num_attr(g, "res_met", H5T_INTEGER, 8, 1, H5T_NATIVE_INT64, n);
    assert_int_equal(n[1], 1);
    hid_t a = H5Aopen(g, "res_met", H5P_DEFAULT);
    hid_t sp = H5Aget_space(a);
    assert_int_equal(H5Sget_simple_extent_npoints(sp), 2);
    H5Sclose(sp);
    H5Aclose(a);
    H5Gclose(g);
    H5Fclose(f);

    /* Run statistics: a /run group of float64 attributes, written twice
     * (the second call replaces one value and adds one), the rest intact. */
    const TsStat st1[] = {{"n_moves", 3}, {"move_bytes", 65536}};
    const TsStat st2[] = {{"n_moves", 4}, {"move_wait_max_s", 0.25}};
    assert_int_equal(ts_results_put_stats(rf, "run", st1, 2, &err), TS_OK);
    assert_int_equal(ts_results_put_stats(rf, "run", st2, 2, &err), TS_OK);
    f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    g = H5Gopen2(f, "/run", H5P_DEFAULT);
    assert_true(g >= 0);
    read_num_attr(g, "n_moves", H5T_FLOAT, 8, 0, H5T_NATIVE_DOUBLE, &v);
    assert_close(v, 4, 0);
    read_num_attr(g, "move_bytes", H5T_FLOAT, 8, 0, H5T_NATIVE_DOUBLE, &v);
    assert_close(v, 65536, 0);
    read_num_attr(g, "move_wait_max_s", H5T_FLOAT, 8, 0, H5T_NATIVE_DOUBLE, &v);
    assert_close(v, 0.25, 0);
    H5Gclose(g);
    H5Fclose(f);
    check_file_contents(path, &log);

    /* Finishing again (e.g. complete = 0 after a late error) replaces it. */
    assert_int_equal(ts_results_finish(rf, &log, NULL, 0, &err), TS_OK);
    assert_int_equal(read_complete(path), 0);
    ts_results_close(rf);
    ts_log_free(&log);
    if (!getenv("TS_KEEP_TMP")) remove(path);
    else fprintf(stderr, "kept %s\n", path);
}

static void test_results_create_fails(void **state) {
    (void)state;
    TsRunMeta meta = test_meta();
    TsResultsFile *rf = (TsResultsFile *)&meta; /* must be reset to NULL */
    TsErr err = {{0}};
    const char *path = "/nonexistent-ts-dir/sub/run.h5";
    assert_int_equal(ts_results_create(path, &meta, &rf, &err), TS_ERR_IO);
    assert_null(rf);
    assert_non_null(strstr(err.msg, path));
    assert_null(strchr(err.msg, '\n'));
}

/* Run ts_cmd_report with stdout and stderr sent to files; returns its status. */
static int run_report(const char *file, char *out, size_t out_len, char *errbuf, size_t err_len) {
    char po[256], pe[256];
    tmp_h5(po, sizeof po, "out.txt");
    tmp_h5(pe, sizeof pe, "err.txt");
    fflush(stdout);
    fflush(stderr);
    int so = dup(1), se = dup(2);
    int fo = open(po, O_WRONLY | O_CREAT | O_TRUNC, 0600), fe = open(pe, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(fo, 1);
    dup2(fe, 2);
    char *argv[] = {"report", (char *)file, NULL};
    int rc = ts_cmd_report(file ? 2 : 1, argv);
    fflush(stdout);
    fflush(stderr);
    dup2(so, 1);
    dup2(se, 2);
    close(so);
    close(se);
    close(fo);
    close(fe);
    FILE *f = fopen(po, "r");
    size_t n = fread(out, 1, out_len - 1, f);
    out[n] = '\0';
    fclose(f);
    f = fopen(pe, "r");
    n = fread(errbuf, 1, err_len - 1, f);
    errbuf[n] = '\0';
    fclose(f);
    remove(po);
    remove(pe);
    return rc;
}

static void test_report(void **state) {
    (void)state;
    static char out[16384], errb[4096];
    char path[256];
    tmp_h5(path, sizeof path, "rep");
    TsRunMeta meta = test_meta();
    TsRunLog log;
    build_log(&log);
    TsResultsFile *rf = NULL;
    TsErr err;
    assert_int_equal(ts_results_create(path, &meta, &rf, &err), TS_OK);
    assert_int_equal(ts_results_flush(rf, &log, &err), TS_OK);

    /* Incomplete file without /summary: recomputed, with a warning. */
    assert_int_equal(run_report(path, out, sizeof out, errb, sizeof errb), 0);
    assert_non_null(strstr(out, "# policy: tetriserve\n"));
    assert_non_null(strstr(out, "# seed: 18446744073709551557\n"));
    assert_non_null(strstr(out, "# complete: 0\n"));
    assert_non_null(strstr(out, "recomputed"));
    assert_non_null(strstr(out, "0.6667"));      /* SAR */
    assert_non_null(strstr(out, "256x256"));
    assert_non_null(strstr(errb, "incomplete run: results up to t = 0.700"));

    TsSummary s;
    ts_summary_compute(&log, 4, &s);
    assert_int_equal(ts_results_finish(rf, &log, &s, 1, &err), TS_OK);
    ts_results_close(rf);
    assert_int_equal(run_report(path, out, sizeof out, errb, sizeof errb), 0);
    assert_null(strstr(out, "recomputed"));
    assert_non_null(strstr(out, "# complete: 1\n"));
    assert_non_null(strstr(out, "latency_p90_s          0.6550"));
    assert_non_null(strstr(out, "gpu_busy_fraction      0.6607"));
    assert_string_equal(errb, "");

    /* errors: missing file, not HDF5, HDF5 but not ours, no argument */
    assert_int_equal(run_report("/nonexistent-ts-dir/x.h5", out, sizeof out, errb, sizeof errb), 1);
    assert_non_null(strstr(errb, "/nonexistent-ts-dir/x.h5: No such file"));
    const char *txt = ts_test_tmpfile(".h5", "id,arrival_s\n1,2\n");
    assert_int_equal(run_report(txt, out, sizeof out, errb, sizeof errb), 1);
    assert_non_null(strstr(errb, "not an HDF5 file"));
    remove(txt);
    char other[256];
    tmp_h5(other, sizeof other, "other");
    hid_t f = H5Fcreate(other, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    H5Fclose(f);
    assert_int_equal(run_report(other, out, sizeof out, errb, sizeof errb), 1);
    assert_non_null(strstr(errb, "not a tetriserve results file"));
    remove(other);
    assert_int_equal(run_report(NULL, out, sizeof out, errb, sizeof errb), 1);
    assert_non_null(strstr(errb, "expected one results file"));

    ts_log_free(&log);
    remove(path);
}

/* The simulator writes 100k requests and ~200k segments at the end of a
 * run: that must stay well under a second. */
static void test_results_write_speed(void **state) {
    (void)state;
    char path[256];
    tmp_h5(path, sizeof path, "big");
    TsRunMeta meta = test_meta();
    meta.n_gpus = 8;
    TsRunLog log;
    const int64_t n = 100000;
    ts_log_init(&log, n);
    double t = 0;
    for (int64_t i = 0; i < n; i++) {
        set_req(&log.req[i], i, 256 << (i % 3), 256 << (i % 3), 20, (double)i * 0.01,
                (double)i * 0.01 + 3);
        for (int k = 0; k < 2; k++) {
            int32_t g[2] = {(int32_t)(i % 4) * 2, (int32_t)(i % 4) * 2 + 1};
            TsSegment sg = seg(i, 10 * k, 10, 2, t, t + 0.2, i / 10, -1);
            ts_log_add_segment(&log, &sg, g);
            t += 0.2;
        }
        log.req[i].start = log.seg[log.n_seg - 2].start;
        log.req[i].finish = t;
        log.req[i].met = t <= log.req[i].deadline;
        log.req[i].status = TS_STATUS_FINISHED;
    }
    TsResultsFile *rf;
    TsErr err;
    double t0 = ts_wall_s();
    assert_int_equal(ts_results_create(path, &meta, &rf, &err), TS_OK);
    TsSummary s;
    ts_summary_compute(&log, meta.n_gpus, &s);
    assert_int_equal(ts_results_finish(rf, &log, &s, 1, &err), TS_OK);
    double dt = ts_wall_s() - t0;
    ts_results_close(rf);
    fprintf(stderr, "100k requests + 200k segments written in %.3f s\n", dt);
    assert_true(dt < 1.0);
    ts_log_free(&log);
    if (!getenv("TS_KEEP_TMP")) remove(path);
    else fprintf(stderr, "kept %s\n", path);
}

/* Run scripts/check_results.py; returns its exit status, output in out. */
static int run_checker(const char *args, char *out, size_t len) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 scripts/check_results.py %s 2>&1", args);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, len - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The CI checker accepts what the writer produces and catches a GPU
 * double-booking, and an incomplete file unless told to accept it. */
static void test_check_script(void **state) {
    (void)state;
    if (system("/usr/bin/python3 -c 'import h5py' >/dev/null 2>&1") != 0) skip();
    static char out[8192];
    char path[256], args[600];
    tmp_h5(path, sizeof path, "chk");
    TsRunMeta meta = test_meta();
    TsRunLog log;
    build_log(&log);
    TsResultsFile *rf;
    TsErr err;
    assert_int_equal(ts_results_create(path, &meta, &rf, &err), TS_OK);
    assert_int_equal(ts_results_flush(rf, &log, &err), TS_OK);
    assert_int_equal(run_checker(path, out, sizeof out), 1);
    assert_non_null(strstr(out, "complete = 0"));
    snprintf(args, sizeof args, "--allow-incomplete %s", path);
    assert_int_equal(run_checker(args, out, sizeof out), 0);
    assert_non_null(strstr(out, "ok: "));
    assert_non_null(strstr(out, "(3 requests, 4 segments)"));
    assert_int_equal(ts_results_finish(rf, &log, NULL, 1, &err), TS_OK);
    assert_int_equal(run_checker(path, out, sizeof out), 0);

    /* r10's second segment (GPUs 0-3) now starts while its first (GPUs 0,1)
     * still runs. */
    log.seg[3].start = 0.4;
    ts_log_mark_dirty(&log, 3);
    assert_int_equal(ts_results_finish(rf, &log, NULL, 1, &err), TS_OK);
    assert_int_equal(run_checker(path, out, sizeof out), 1);
    assert_non_null(strstr(out, "overlap"));
    assert_non_null(strstr(out, "before its previous segment"));
    assert_non_null(strstr(out, "FAIL: "));
    ts_results_close(rf);
    ts_log_free(&log);
    remove(path);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_log_init_and_segments),
        cmocka_unit_test(test_summary_hand_case),
        cmocka_unit_test(test_summary_percentiles_and_edges),
        cmocka_unit_test(test_results_roundtrip),
        cmocka_unit_test(test_results_create_fails),
        cmocka_unit_test(test_report),
        cmocka_unit_test(test_results_write_speed),
        cmocka_unit_test(test_check_script),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
