/* test_sim.c - the event core, the engine and the baselines.
 *
 * The baselines are checked against independent closed-form reference
 * implementations of SPEC.md's definitions on thousands of random traces,
 * to 1 ns; the engine's invariants (ts_check_log) on a large trace for
 * every policy; and same inputs give identical logs. */
#include "ts_test.h"

#include <math.h>

#include "ts_check.h"
#include "ts_event.h"
#include "ts_scenario.h"
#include "ts_sim.h"

/* ---- A cost model built by hand: n_res square resolutions, degrees 1, 2,
 * 4, 8, step time base[r] / k^0.8, batch 1 only. */
typedef struct {
    TsCostModel cm;
    int32_t w[8], h[8];
    int64_t tok[8];
    double step[8 * TS_MAX_DEGREES];
} HandCost;

static void hand_cost(HandCost *hc, int n_res, const double *base_s, double overhead_s, int max_deg) {
    memset(hc, 0, sizeof *hc);
    TsCostModel *cm = &hc->cm;
    cm->n_res = n_res;
    cm->width = hc->w;
    cm->height = hc->h;
    cm->tokens = hc->tok;
    for (int k = 1; k <= max_deg; k *= 2) cm->degree[cm->n_deg++] = k;
    cm->max_batch = 1;
    cm->step_s = hc->step;
    cm->overhead_s = overhead_s;
    for (int r = 0; r < n_res; r++) {
        hc->w[r] = hc->h[r] = 256 << r;
        hc->tok[r] = (int64_t)(hc->w[r] / 16) * (hc->h[r] / 16);
        for (int d = 0; d < cm->n_deg; d++)
            hc->step[r * cm->n_deg + d] = base_s[r] / pow(cm->degree[d], 0.8);
    }
}

/* A random trace over n_res resolutions (res index = size index). */
static void random_trace(TsTrace *t, int n, int n_res, double mean_gap, unsigned seed, int *res_of) {
    srand(seed);
    t->path = "<test>";
    t->n = n;
    t->req = calloc((size_t)n, sizeof *t->req);
    double at = 0;
    for (int i = 0; i < n; i++) {
        /* A 10 ms arrival grid, so that ties happen often; mean gap ~ mean_gap. */
        at += floor((double)rand() / RAND_MAX * mean_gap * 200) / 100;
        int r = rand() % n_res;
        t->req[i] = (TsRequest){i, at, 256 << r, 256 << r, 1 + rand() % 30, 1.0 + r};
        res_of[i] = r;
    }
}

static TsStatus run_policy(const TsTrace *t, const TsCostModel *cm, const int *res_of, int gpus,
                           const char *policy, const TsPolicyConfig *pcfg, TsRunLog *log, TsErr *err) {
    TsSim sim;
    TsEngineConfig ecfg = {gpus, gpus, 1.0, NULL};
    ts_log_init(log, t->n);
    TsPolicyConfig def;
    ts_policy_config_default(&def);
    TsStatus rc = ts_sim_init(&sim, t, cm, res_of, &ecfg, ts_policy_find(policy), pcfg ? pcfg : &def, log, err);
    if (!rc) rc = ts_sim_run(&sim, err);
    ts_sim_free(&sim);
    return rc;
}

/* ---- The event core. */
static void test_event_order(void **state) {
    (void)state;
    TsEventQueue q;
    ts_eq_init(&q);
    /* (time, priority) pairs pushed out of order; data = expected rank. */
    assert_int_equal(ts_eq_push(&q, 2.0, 1, 0, 5), 0);
    assert_int_equal(ts_eq_push(&q, 1.0, 2, 0, 3), 0);
    assert_int_equal(ts_eq_push(&q, 1.0, 0, 0, 0), 0);
    assert_int_equal(ts_eq_push(&q, 1.0, 1, 0, 1), 0);
    assert_int_equal(ts_eq_push(&q, 1.0, 1, 0, 2), 0); /* same (time, prio): insertion order */
    assert_int_equal(ts_eq_push(&q, 2.0, 0, 0, 4), 0);
    TsEvent ev;
    for (int64_t want = 0; want < 6; want++) {
        assert_int_equal(ts_eq_pop(&q, &ev), 1);
        assert_int_equal(ev.data, want);
    }
    assert_int_equal(ts_eq_pop(&q, &ev), 0);
    /* The clock never runs backwards. */
    assert_true(ts_eq_push(&q, 1.5, 0, 0, 0) < 0);
    assert_true(ts_eq_push(&q, NAN, 0, 0, 0) < 0);
    assert_int_equal(ts_eq_push(&q, 2.0, 0, 0, 0), 0);
    /* Many random events come out sorted. */
    for (int i = 0; i < 5000; i++) ts_eq_push(&q, 2.0 + (rand() % 100) * 0.5, rand() % 3, 0, i);
    TsEvent prev = {0};
    ts_eq_pop(&q, &prev);
    while (ts_eq_pop(&q, &ev)) {
        assert_true(ts_event_cmp(&prev, &ev) < 0);
        prev = ev;
    }
    ts_eq_free(&q);
}

/* ---- spK on a hand-computed case. 2 GPUs, sp1, step 0.1 s:
 * A(0 s, 10 steps) -> GPU 0 [0, 1]; B(0 s, 5 steps) -> GPU 1 [0, 0.5];
 * C(0.25 s, 10 steps) -> GPU 1 at 0.5 (lowest free), [0.5, 1.5];
 * D(0.5 s, 1 step) waits: GPU 0 frees at 1.0 -> [1.0, 1.1]. */
static void test_sp1_hand(void **state) {
    (void)state;
    HandCost hc;
    double base[1] = {0.1};
    hand_cost(&hc, 1, base, 0.0, 8);
    TsRequest rq[4] = {{0, 0, 256, 256, 10, 5}, {1, 0, 256, 256, 5, 5}, {2, 0.25, 256, 256, 10, 1}, {3, 0.5, 256, 256, 1, 0.5}};
    TsTrace t = {"<hand>", rq, 4};
    int res_of[4] = {0, 0, 0, 0};
    TsRunLog log;
    TsErr err;
    assert_int_equal(run_policy(&t, &hc.cm, res_of, 2, "sp1", NULL, &log, &err), TS_OK);
    double start[4] = {0, 0, 0.5, 1.0}, finish[4] = {1.0, 0.5, 1.5, 1.1};
    int gpu[4] = {0, 1, 1, 0};
    for (int i = 0; i < 4; i++) {
        assert_true(fabs(log.req[i].start - start[i]) < 1e-12);
        assert_true(fabs(log.req[i].finish - finish[i]) < 1e-12);
        assert_int_equal(log.seg[i].request_id, i);
        assert_int_equal(log.seg_gpus[log.seg[i].gpu_offset], gpu[i]);
    }
    /* C: deadline 1.25 missed; D: deadline 1.0 missed; A, B met. */
    assert_int_equal(log.req[0].met, 1);
    assert_int_equal(log.req[2].met, 0);
    assert_int_equal(log.req[3].met, 0);
    TsSummary s;
    ts_summary_compute(&log, 2, &s);
    assert_int_equal(s.n_met, 2);
    assert_true(fabs(s.sar - 0.5) < 1e-12);
    ts_log_free(&log);
}

/* ---- Reference implementations of SPEC.md, written from the text. */
static void ref_spk(const TsTrace *t, const TsCostModel *cm, const int *res_of, int gpus, int k,
                    double *start, double *finish, int *first_gpu) {
    int ng = gpus / k, d = ts_cost_degree_index(cm, k);
    double *free_at = calloc((size_t)ng, sizeof *free_at);
    for (int64_t i = 0; i < t->n; i++) {
        double mn = INFINITY;
        for (int g = 0; g < ng; g++) mn = fmin(mn, free_at[g]);
        double s = fmax(t->req[i].arrival_s, mn);
        int g = 0;
        while (free_at[g] > s) g++; /* the lowest-numbered group free at s */
        start[i] = s;
        finish[i] = s + (double)t->req[i].steps * ts_cost_step_s(cm, res_of[i], d, 1) + cm->overhead_s;
        free_at[g] = finish[i];
        first_gpu[i] = g * k;
    }
    free(free_at);
}

static void ref_rssp(const TsTrace *t, const TsCostModel *cm, const int *res_of, int gpus,
                     const int *res_k, double *start, double *finish, int *first_gpu) {
    double *free_at = calloc((size_t)gpus, sizeof *free_at), *sorted = calloc((size_t)gpus, sizeof *sorted);
    double prev_start = 0;
    for (int64_t i = 0; i < t->n; i++) {
        int k = res_k[res_of[i]];
        memcpy(sorted, free_at, (size_t)gpus * sizeof *sorted);
        qsort(sorted, (size_t)gpus, sizeof *sorted, ts_cmp_double);
        /* Strict FCFS: not before its arrival, not before the previous head
         * started, and only when k GPUs are free. */
        double s = fmax(fmax(t->req[i].arrival_s, prev_start), sorted[k - 1]);
        double f = s + (double)t->req[i].steps * ts_cost_step_s(cm, res_of[i], ts_cost_degree_index(cm, k), 1) + cm->overhead_s;
        int taken = 0;
        first_gpu[i] = -1;
        for (int g = 0; g < gpus && taken < k; g++)
            if (free_at[g] <= s) {
                if (first_gpu[i] < 0) first_gpu[i] = g;
                free_at[g] = f;
                taken++;
            }
        start[i] = prev_start = s;
        finish[i] = f;
    }
    free(free_at);
    free(sorted);
}

static void test_baselines_vs_reference(void **state) {
    (void)state;
    double base[4] = {0.02, 0.05, 0.15, 0.7};
    const int gpu_counts[3] = {8, 16, 64};
    int n_cases = 0;
    for (unsigned seed = 1; seed <= 300; seed++) {
        HandCost hc;
        double overhead = (seed % 3 == 0) ? 0.05 : 0.0;
        hand_cost(&hc, 4, base, overhead, 8);
        int gpus = gpu_counts[seed % 3], n = 50 + (int)(seed % 7) * 30;
        int *res_of = calloc((size_t)n, sizeof *res_of);
        TsTrace t;
        random_trace(&t, n, 4, (seed % 2 ? 0.3 : 1.5) * 8.0 / gpus, seed, res_of);
        double *start = calloc((size_t)n, sizeof *start), *finish = calloc((size_t)n, sizeof *finish);
        int *first = calloc((size_t)n, sizeof *first);
        const char *names[5] = {"sp1", "sp2", "sp4", "sp8", "rssp"};
        for (int p = 0; p < 5; p++) {
            TsPolicyConfig pcfg;
            ts_policy_config_default(&pcfg);
            int res_k[4] = {1, 1, 2, 8};
            char spec[128];
            if (p < 4) {
                ref_spk(&t, &hc.cm, res_of, gpus, 1 << p, start, finish, first);
            } else {
                /* An explicit degree table, and a different one on odd seeds. */
                if (seed % 2) res_k[0] = 2, res_k[1] = 4, res_k[3] = 4;
                snprintf(spec, sizeof spec, "256:%d,512:%d,1024:%d,2048:%d", res_k[0], res_k[1], res_k[2], res_k[3]);
                pcfg.rssp_degrees = spec;
                ref_rssp(&t, &hc.cm, res_of, gpus, res_k, start, finish, first);
            }
            TsRunLog log;
            TsErr err;
            TsStatus rc = run_policy(&t, &hc.cm, res_of, gpus, names[p], &pcfg, &log, &err);
            if (rc) fail_msg("%s seed %u: %s", names[p], seed, err.msg);
            assert_int_equal(log.n_seg, n); /* one segment per request, all steps */
            for (int i = 0; i < n; i++) {
                if (fabs(log.req[i].start - start[i]) > 1e-9 || fabs(log.req[i].finish - finish[i]) > 1e-9)
                    fail_msg("%s seed %u gpus %d request %d: start %.9f finish %.9f, reference %.9f %.9f",
                             names[p], seed, gpus, i, log.req[i].start, log.req[i].finish, start[i], finish[i]);
            }
            for (int64_t s = 0; s < log.n_seg; s++) {
                int64_t i = log.seg[s].request_id;
                assert_int_equal(log.seg[s].n_steps, t.req[i].steps);
                int32_t lo = log.seg_gpus[log.seg[s].gpu_offset];
                for (int a = 1; a < log.seg[s].degree; a++) lo = lo < log.seg_gpus[log.seg[s].gpu_offset + a] ? lo : log.seg_gpus[log.seg[s].gpu_offset + a];
                if (lo != first[i]) fail_msg("%s seed %u request %lld: lowest GPU %d, reference %d", names[p], seed, (long long)i, lo, first[i]);
            }
            if ((rc = ts_check_log(&log, gpus, &hc.cm, res_of, &err))) fail_msg("%s: %s", names[p], err.msg);
            ts_log_free(&log);
            n_cases++;
        }
        free(start); free(finish); free(first); free(res_of); free(t.req);
    }
    assert_int_equal(n_cases, 1500);
}

/* rssp's default rule: smallest degree whose steps x T meets the base SLO. */
static void test_rssp_rule(void **state) {
    (void)state;
    HandCost hc;
    double base[1] = {0.2}; /* T(k) = 0.2 / k^0.8: 0.2, 0.1149, 0.0660, 0.0379 */
    hand_cost(&hc, 1, base, 0.0, 8);
    TsRequest rq[1] = {{0, 0, 256, 256, 20, 1.5}}; /* needs 20 T <= 1.5: T <= 0.075 -> k = 4 */
    TsTrace t = {"<hand>", rq, 1};
    int res_of[1] = {0};
    TsRunLog log;
    TsErr err;
    assert_int_equal(run_policy(&t, &hc.cm, res_of, 8, "rssp", NULL, &log, &err), TS_OK);
    assert_int_equal(log.seg[0].degree, 4);
    ts_log_free(&log);
    rq[0].slo_s = 0.1; /* nothing meets it: the fastest, 8 */
    assert_int_equal(run_policy(&t, &hc.cm, res_of, 8, "rssp", NULL, &log, &err), TS_OK);
    assert_int_equal(log.seg[0].degree, 8);
    ts_log_free(&log);
}

/* Impossible configurations are input errors, before any work. */
static void test_bad_policy_config(void **state) {
    (void)state;
    HandCost hc;
    double base[2] = {0.1, 0.2};
    hand_cost(&hc, 2, base, 0.0, 4); /* degrees 1, 2, 4 only */
    TsRequest rq[2] = {{0, 0, 256, 256, 5, 1}, {1, 1, 512, 512, 5, 1}};
    TsTrace t = {"<hand>", rq, 2};
    int res_of[2] = {0, 1};
    TsRunLog log;
    TsErr err;
    assert_int_equal(run_policy(&t, &hc.cm, res_of, 6, "sp4", NULL, &log, &err), TS_ERR_INPUT);
    assert_non_null(strstr(err.msg, "--gpus 6"));
    ts_log_free(&log);
    assert_int_equal(run_policy(&t, &hc.cm, res_of, 8, "sp8", NULL, &log, &err), TS_ERR_INPUT);
    assert_non_null(strstr(err.msg, "no degree 8"));
    ts_log_free(&log);
    hc.step[1 * hc.cm.n_deg + 1] = NAN; /* 512 px lacks degree 2 */
    assert_int_equal(run_policy(&t, &hc.cm, res_of, 8, "sp2", NULL, &log, &err), TS_ERR_INPUT);
    assert_non_null(strstr(err.msg, "512x512"));
    ts_log_free(&log);
    TsPolicyConfig pcfg;
    ts_policy_config_default(&pcfg);
    pcfg.rssp_degrees = "512:2";
    assert_int_equal(run_policy(&t, &hc.cm, res_of, 8, "rssp", &pcfg, &log, &err), TS_ERR_INPUT);
    ts_log_free(&log);
    pcfg.rssp_degrees = "512-2";
    assert_int_equal(run_policy(&t, &hc.cm, res_of, 8, "rssp", &pcfg, &log, &err), TS_ERR_INPUT);
    assert_non_null(strstr(err.msg, "--rssp-degrees"));
    ts_log_free(&log);
}

/* Every policy on a large trace: invariants hold; a second run is
 * bit-identical. */
static void test_invariants_and_determinism(void **state) {
    (void)state;
    HandCost hc;
    double base[4] = {0.02, 0.05, 0.15, 0.7};
    hand_cost(&hc, 4, base, 0.03, 8);
    int n = 20000;
    int *res_of = calloc((size_t)n, sizeof *res_of);
    TsTrace t;
    random_trace(&t, n, 4, 0.15, 42, res_of);
    for (int p = 0; ts_policy_table[p]; p++) {
        TsRunLog a, b;
        TsErr err;
        const char *name = ts_policy_table[p]->name;
        if (run_policy(&t, &hc.cm, res_of, 64, name, NULL, &a, &err)) fail_msg("%s: %s", name, err.msg);
        if (ts_check_log(&a, 64, &hc.cm, res_of, &err)) fail_msg("%s: %s", name, err.msg);
        TsSummary s;
        ts_summary_compute(&a, 64, &s);
        assert_int_equal(s.n_finished, n);
        assert_true(s.sar > 0 && s.sar <= 1);
        if (run_policy(&t, &hc.cm, res_of, 64, name, NULL, &b, &err)) fail_msg("%s: %s", name, err.msg);
        assert_int_equal(a.n_seg, b.n_seg);
        assert_memory_equal(a.req, b.req, (size_t)n * sizeof *a.req);
        assert_memory_equal(a.seg, b.seg, (size_t)a.n_seg * sizeof *a.seg);
        assert_memory_equal(a.seg_gpus, b.seg_gpus, (size_t)a.n_seg_gpus * sizeof *a.seg_gpus);
        ts_log_free(&a);
        ts_log_free(&b);
    }
    free(res_of);
    free(t.req);
}

/* The checker itself must catch broken schedules. */
static void test_checker_catches(void **state) {
    (void)state;
    HandCost hc;
    double base[1] = {0.1};
    hand_cost(&hc, 1, base, 0.0, 8);
    TsRequest rq[2] = {{0, 0, 256, 256, 10, 5}, {1, 0, 256, 256, 10, 5}};
    TsTrace t = {"<hand>", rq, 2};
    int res_of[2] = {0, 0};
    TsRunLog log;
    TsErr err;
    assert_int_equal(run_policy(&t, &hc.cm, res_of, 2, "sp1", NULL, &log, &err), TS_OK);
    assert_int_equal(ts_check_log(&log, 2, &hc.cm, res_of, &err), TS_OK);
    log.seg_gpus[1] = 0; /* both on GPU 0 at once */
    assert_int_equal(ts_check_log(&log, 2, &hc.cm, res_of, &err), TS_ERR_INTERNAL);
    assert_non_null(strstr(err.msg, "GPU 0 in two segments"));
    log.seg_gpus[1] = 1;
    log.seg[1].end += 0.5; /* longer than the cost model */
    assert_int_equal(ts_check_log(&log, 2, &hc.cm, res_of, &err), TS_ERR_INTERNAL);
    log.seg[1].end -= 0.5;
    log.seg[1].step_begin = 1; /* step 0 never runs */
    assert_int_equal(ts_check_log(&log, 2, &hc.cm, res_of, &err), TS_ERR_INTERNAL);
    log.seg[1].step_begin = 0;
    log.req[1].met = 0; /* met inconsistent */
    assert_int_equal(ts_check_log(&log, 2, &hc.cm, res_of, &err), TS_ERR_INTERNAL);
    ts_log_free(&log);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_event_order),
        cmocka_unit_test(test_sp1_hand),
        cmocka_unit_test(test_baselines_vs_reference),
        cmocka_unit_test(test_rssp_rule),
        cmocka_unit_test(test_bad_policy_config),
        cmocka_unit_test(test_invariants_and_determinism),
        cmocka_unit_test(test_checker_catches),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
