/* test_tetri.c - the TetriServe scheduler's building blocks against brute
 * force, and the policies' schedules against the invariants.
 *  - ts_tetri_min_alloc vs every split of the steps over the degrees;
 *  - ts_knap_solve vs exhaustive search (up to 6 requests, 8 GPUs): the
 *    optimum and the tie rule; the unit-value solver vs the DP;
 *  - tetriserve / tetriplus (with batching) on a real profile: SPEC.md
 *    validity, no GPU twice, steps once and in order, determinism;
 *  - steps that take longer than planned (as live): a round ends with its
 *    work, so 2% of overrun costs about 2% of SAR, not a third of it;
 *  - hopeless requests are served best effort, also where one GPU is a
 *    dominated degree (slower and costlier than two). */
#include "ts_test.h"

#include <math.h>

#include "ts_check.h"
#include "ts_scenario.h"
#include "ts_sim.h"
#include "ts_tetri.h"

static double urand(void) { return (double)rand() / RAND_MAX; }

/* Random step times for degrees 1, 2, 4, 8: roughly T1/k^a with noise, so
 * that some degrees are dominated and the (T, kT) points are not convex. */
static int random_degrees(int32_t *deg, double *T) {
    int n = 2 + rand() % 3;
    double t1 = 0.01 + urand();
    for (int d = 0; d < n; d++) {
        deg[d] = 1 << d;
        T[d] = t1 / pow(deg[d], 0.3 + 0.7 * urand()) * (0.9 + 0.2 * urand());
    }
    return n;
}

/* Least GPU time over every (x_0, ..., x_{n-1}) with sum x = R and time
 * <= B, over the raw degrees (dominated ones included). */
static double brute_min_gpu(const int32_t *deg, const double *T, int n, int32_t R, double B, int32_t *x, int d, double t_acc, double g_acc) {
    if (d == n - 1) {
        x[d] = R;
        double t = t_acc + R * T[d], g = g_acc + R * deg[d] * T[d];
        return t <= B + 1e-9 ? g : INFINITY;
    }
    double best = INFINITY;
    for (int32_t k = 0; k <= R; k++) {
        x[d] = k;
        double v = brute_min_gpu(deg, T, n, R - k, B, x, d + 1, t_acc + k * T[d], g_acc + k * deg[d] * T[d]);
        if (v < best) best = v;
    }
    return best;
}

static void test_min_alloc_vs_brute_force(void **state) {
    (void)state;
    srand(7);
    int feasible = 0, infeasible = 0, split = 0;
    for (int it = 0; it < 5000; it++) {
        int32_t deg[4];
        double T[4];
        int n = random_degrees(deg, T);
        int32_t R = 1 + rand() % 30;
        double fastest = INFINITY;
        for (int d = 0; d < n; d++) fastest = fmin(fastest, T[d]);
        double B = R * fastest * (0.8 + 2.5 * urand());
        int32_t x[4];
        double want = brute_min_gpu(deg, T, n, R, B, x, 0, 0, 0);
        TsDegreeSet ds;
        ts_degree_set_build(&ds, deg, T, n);
        TsAlloc a;
        int rc = ts_tetri_min_alloc(&ds, R, B, &a);
        if (isinf(want)) {
            assert_int_equal(rc, -1);
            infeasible++;
            continue;
        }
        if (rc != 0) fail_msg("case %d: feasible (%.6f GPU-s) but min_alloc says hopeless", it, want);
        int32_t steps = 0;
        for (int m = 0; m < a.n; m++) steps += a.steps[m];
        assert_int_equal(steps, R);
        assert_true(a.time_s <= B + 1e-9);
        if (fabs(a.gpu_s - want) > 1e-9 * (1 + want))
            fail_msg("case %d (R=%d, B=%.6f): min_alloc %.9f GPU-s, brute force %.9f", it, R, B, a.gpu_s, want);
        feasible++;
        split += a.n > 1;
    }
    print_message("min_alloc: %d feasible (%d split over degrees), %d hopeless, all optimal\n", feasible, split, infeasible);
    assert_true(feasible > 1000 && infeasible > 100 && split > 300);
}

/* The paper's shape: two adjacent degrees that just meet the deadline. */
static void test_min_alloc_paper_case(void **state) {
    (void)state;
    int32_t deg[4] = {1, 2, 4, 8};
    double T[4] = {0.76, 0.442, 0.247, 0.143}; /* FLUX 2048 px, s/step */
    TsDegreeSet ds;
    ts_degree_set_build(&ds, deg, T, 4);
    TsAlloc a;
    assert_int_equal(ts_tetri_min_alloc(&ds, 28, 5.0, &a), 0);
    /* x at k=8, 28-x at k=4: 0.143x + 0.247(28-x) <= 5 -> x >= 18.42 -> 19. */
    assert_int_equal(a.n, 2);
    assert_int_equal(ds.degree[a.idx[0]], 8);
    assert_int_equal(a.steps[0], 19);
    assert_int_equal(ds.degree[a.idx[1]], 4);
    assert_int_equal(a.steps[1], 9);
    assert_int_equal(ts_tetri_min_alloc(&ds, 28, 28 * 0.76, &a), 0); /* all at k=1 */
    assert_int_equal(a.n, 1);
    assert_int_equal(ds.degree[a.idx[0]], 1);
    assert_int_equal(ts_tetri_min_alloc(&ds, 28, 28 * 0.143 - 0.01, &a), -1);
}

/* Exhaustive search: the best total value, and among the optimal choices
 * the lexicographically widest width vector in item order (equal widths:
 * the lower option index; none = width 0), as ts_tetri.h specifies. */
typedef struct BruteKnap {
    int32_t best_v;
    int best[6], cur[6];
} BruteKnap;

static int brute_better(const TsKnapItem *items, int n, const int *a, const int *b) {
    for (int i = 0; i < n; i++) {
        int32_t wa = a[i] < 0 ? 0 : items[i].width[a[i]], wb = b[i] < 0 ? 0 : items[i].width[b[i]];
        if (wa != wb) return wa > wb;
        if (a[i] != b[i]) return a[i] >= 0 && (b[i] < 0 || a[i] < b[i]);
    }
    return 0;
}

static void brute_knap(const TsKnapItem *items, int n, int32_t cap, int i, int32_t w_acc, int32_t v_acc, BruteKnap *bk) {
    if (i == n) {
        if (v_acc > bk->best_v || (v_acc == bk->best_v && brute_better(items, n, bk->cur, bk->best))) {
            bk->best_v = v_acc;
            memcpy(bk->best, bk->cur, sizeof bk->best);
        }
        return;
    }
    bk->cur[i] = -1;
    brute_knap(items, n, cap, i + 1, w_acc, v_acc + items[i].none_value, bk);
    for (int o = 0; o < items[i].n_opt; o++) {
        if (w_acc + items[i].width[o] > cap) continue;
        bk->cur[i] = o;
        brute_knap(items, n, cap, i + 1, w_acc + items[i].width[o], v_acc + items[i].value[o], bk);
    }
}

static void test_knapsack_vs_exhaustive(void **state) {
    (void)state;
    srand(11);
    TsKnap k;
    ts_knap_init(&k);
    for (int it = 0; it < 5000; it++) {
        int n = 1 + rand() % 6;
        int32_t cap = rand() % 9;
        TsKnapItem items[6];
        for (int i = 0; i < n; i++) {
            items[i].n_opt = rand() % 4;
            items[i].none_value = rand() % 4 == 0;
            for (int o = 0; o < items[i].n_opt; o++) {
                items[i].width[o] = 1 << (rand() % 4);
                items[i].value[o] = rand() % 2 + items[i].none_value; /* running never hurts */
            }
        }
        int choice[6];
        int32_t got = ts_knap_solve(&k, items, n, cap, choice);
        BruteKnap bk = {.best_v = -1};
        brute_knap(items, n, cap, 0, 0, 0, &bk);
        if (got != bk.best_v) fail_msg("case %d: knapsack %d survivors, exhaustive %d", it, got, bk.best_v);
        /* The choice is feasible, achieves the value, and is the tie rule's. */
        int32_t v = 0, w = 0;
        for (int i = 0; i < n; i++) {
            if (choice[i] < 0) v += items[i].none_value;
            else v += items[i].value[choice[i]], w += items[i].width[choice[i]];
            if (choice[i] != bk.best[i])
                fail_msg("case %d: item %d takes option %d, the tie rule %d", it, i, choice[i], bk.best[i]);
        }
        assert_int_equal(v, bk.best_v);
        assert_true(w <= cap);
    }
    ts_knap_free(&k);
}

/* The unit-value knapsack the scheduler solves: greedy == DP optimum. */
static void test_unit_knapsack_matches_dp(void **state) {
    (void)state;
    srand(13);
    TsKnap k;
    ts_knap_init(&k);
    for (int it = 0; it < 5000; it++) {
        int n = 1 + rand() % 40;
        int32_t cap = rand() % 70;
        TsKnapItem items[40];
        for (int i = 0; i < n; i++) {
            items[i].n_opt = rand() % 3;
            items[i].none_value = 0;
            for (int o = 0; o < items[i].n_opt; o++) items[i].width[o] = 1 << (rand() % 4), items[i].value[o] = 1;
        }
        int c1[40], c2[40], scratch[3 * 40];
        int32_t dp = ts_knap_solve(&k, items, n, cap, c1);
        int32_t greedy = ts_knap_unit_solve(items, n, cap, c2, scratch);
        assert_int_equal(dp, greedy);
        int32_t w2 = 0, v2 = 0;
        for (int i = 0; i < n; i++) {
            if (c2[i] >= 0) w2 += items[i].width[c2[i]], v2++;
            if (c1[i] != c2[i]) fail_msg("case %d: item %d: DP option %d, greedy %d", it, i, c1[i], c2[i]);
        }
        assert_int_equal(v2, greedy); /* the same choice, hence the same tie rule */
        assert_true(w2 <= cap);
        /* The old rule: the same count, the least total width (the sum of
         * the count smallest narrowest widths). */
        int c3[40], mins[40], nm = 0;
        int32_t narrow = ts_knap_unit_solve_narrow(items, n, cap, c3, scratch);
        assert_int_equal(narrow, dp);
        int32_t w3 = 0, v3 = 0, least = 0;
        for (int i = 0; i < n; i++) {
            if (c3[i] >= 0) w3 += items[i].width[c3[i]], v3++;
            int32_t mn = INT32_MAX;
            for (int o = 0; o < items[i].n_opt; o++) mn = items[i].width[o] < mn ? items[i].width[o] : mn;
            if (items[i].n_opt) mins[nm++] = mn;
        }
        for (int a = 0; a < nm; a++) /* selection sort: n <= 40 */
            for (int b = a + 1; b < nm; b++)
                if (mins[b] < mins[a]) { int t = mins[a]; mins[a] = mins[b]; mins[b] = t; }
        for (int a = 0; a < narrow; a++) least += mins[a];
        assert_int_equal(v3, narrow);
        assert_int_equal(w3, least);
    }
    ts_knap_free(&k);
}

/* Both round policies on the bundled profile (with batch rows) and a busy
 * generated trace: every invariant, every ablation switch, determinism. */
static void test_round_policies_invariants(void **state) {
    (void)state;
    TsProfile prof;
    TsErr err;
    if (ts_profile_load("profiles/flux1-dev_h100x8.csv", &prof, &err)) fail_msg("%s", err.msg);
    TsTraceGenArgs ga = {.n = 4000, .rate_per_min = 40, .steps = 28, .arrival = TS_ARRIVAL_GAMMA, .gamma_cv = 2.0, .seed = 5};
    assert_int_equal(ts_mix_parse("256:3,512:2,1024:1,2048:1", &ga.mix, &err), TS_OK);
    TsTrace t;
    assert_int_equal(ts_trace_generate(&ga, &t, &err), TS_OK);
    int *res_of = calloc((size_t)t.n, sizeof *res_of);
    TsCostModel cm;
    assert_int_equal(ts_cost_build(&cm, &prof, &t, 16, res_of, &err), TS_OK);
    const char *names[2] = {"tetriserve", "tetriplus"};
    int batched_somewhere = 0;
    for (int p = 0; p < 2; p++)
        for (int variant = 0; variant < 6; variant++) {
            TsPolicyConfig pc;
            ts_policy_config_default(&pc);
            if (variant == 1) pc.preserve = 0;
            if (variant == 2) pc.elastic = 0;
            if (variant == 3) pc.batching = 0, pc.round_steps = 2;
            /* The old choices where the paper is silent, and the other
             * policy's best effort. */
            if (variant == 4) pc.choices = "rounds=fixed,segment-end=idle,ties=narrowest,survival=round-end";
            if (variant == 5)
                pc.choices = p ? "best-effort=one-gpu,best-effort-order=before-elastic" : "best-effort=in-round,best-effort-order=last";
            TsRunLog a, b;
            for (int rep = 0; rep < 2; rep++) {
                TsRunLog *log = rep ? &b : &a;
                TsSim sim;
                TsEngineConfig ec = {16, 8, 1.2, NULL};
                ts_log_init(log, t.n);
                if (ts_sim_init(&sim, &t, &cm, res_of, &ec, ts_policy_find(names[p]), &pc, log, &err) || ts_sim_run(&sim, &err))
                    fail_msg("%s variant %d: %s", names[p], variant, err.msg);
                ts_sim_free(&sim);
            }
            if (ts_check_log(&a, 16, &cm, res_of, &err)) fail_msg("%s variant %d: %s", names[p], variant, err.msg);
            assert_true(a.n_rounds > 0);
            for (int64_t s = 0; s < a.n_seg; s++) batched_somewhere |= a.seg[s].batch_id >= 0 && variant != 3;
            for (int64_t s = 0; s < a.n_seg && variant == 3; s++) assert_true(a.seg[s].batch_id < 0);
            TsSummary sum;
            ts_summary_compute(&a, 16, &sum);
            assert_true(sum.sar > 0.3);
            assert_int_equal(a.n_seg, b.n_seg);
            assert_memory_equal(a.req, b.req, (size_t)t.n * sizeof *a.req);
            assert_memory_equal(a.seg, b.seg, (size_t)a.n_seg * sizeof *a.seg);
            assert_memory_equal(a.seg_gpus, b.seg_gpus, (size_t)a.n_seg_gpus * sizeof *a.seg_gpus);
            ts_log_free(&a);
            ts_log_free(&b);
        }
    assert_true(batched_somewhere);
    ts_cost_free(&cm);
    free(res_of);
    ts_trace_free(&t);
    ts_profile_free(&prof);
}

/* Simulate a policy on `gpus` GPUs, planning with cm, launches taking
 * exec's times (NULL: cm's), into *log (the caller frees it); the log is
 * checked against the times launches took. */
static void sim_checked(const TsTrace *t, const TsCostModel *cm, const TsCostModel *exec, const int *res_of,
                        int32_t gpus, const char *policy, TsRunLog *log) {
    TsErr err;
    TsPolicyConfig pc;
    ts_policy_config_default(&pc);
    TsEngineConfig ec = {gpus, gpus, 1.0, exec};
    TsSim sim;
    ts_log_init(log, t->n);
    if (ts_sim_init(&sim, t, cm, res_of, &ec, ts_policy_find(policy), &pc, log, &err) || ts_sim_run(&sim, &err))
        fail_msg("%s: %s", policy, err.msg);
    ts_sim_free(&sim);
    if (ts_check_log(log, gpus, exec ? exec : cm, res_of, &err)) fail_msg("%s: %s", policy, err.msg);
    if (exec) /* the segments took exec's times, not the plan's */
        assert_int_not_equal(ts_check_log(log, gpus, cm, res_of, &err), TS_OK);
}

static double sar_with_exec(const TsTrace *t, const TsCostModel *cm, const TsCostModel *exec,
                            const int *res_of, const char *policy) {
    TsRunLog log;
    sim_checked(t, cm, exec, res_of, 8, policy, &log);
    TsSummary sum;
    ts_summary_compute(&log, 8, &sum);
    ts_log_free(&log);
    return sum.sar;
}

static void test_overrun_rounds_end_with_work(void **state) {
    (void)state;
    TsProfile prof;
    TsErr err;
    if (ts_profile_load("profiles/flux1-dev_h100x8.csv", &prof, &err)) fail_msg("%s", err.msg);
    TsTraceGenArgs ga = {.n = 600, .rate_per_min = 24, .steps = 28, .arrival = TS_ARRIVAL_POISSON, .seed = 3};
    assert_int_equal(ts_mix_parse("uniform", &ga.mix, &err), TS_OK);
    TsTrace t;
    assert_int_equal(ts_trace_generate(&ga, &t, &err), TS_OK);
    int *res_of = calloc((size_t)t.n, sizeof *res_of);
    TsCostModel cm, slow;
    assert_int_equal(ts_cost_build(&cm, &prof, &t, 8, res_of, &err), TS_OK);
    assert_int_equal(ts_cost_build(&slow, &prof, &t, 8, NULL, &err), TS_OK);
    int64_t n_step = (int64_t)slow.n_res * slow.n_deg * slow.max_batch;
    for (int64_t i = 0; i < n_step; i++) slow.step_s[i] *= 1.02;
    const char *names[2] = {"tetriserve", "tetriplus"};
    for (int p = 0; p < 2; p++) {
        double exact = sar_with_exec(&t, &cm, NULL, res_of, names[p]);
        double late = sar_with_exec(&t, &cm, &slow, res_of, names[p]);
        /* A round that opened at its cap while its work ran late launched
         * nothing on those GPUs and idled them for a whole round: SAR fell
         * from 0.94 to 0.65 on the paper's uniform workload. */
        if (!(late > exact - 0.05))
            fail_msg("%s: SAR %.4f with steps 2%% longer than planned, %.4f on time", names[p], late, exact);
    }
    ts_cost_free(&slow);
    ts_cost_free(&cm);
    free(res_of);
    ts_trace_free(&t);
    ts_profile_free(&prof);
}

/* The cpu profile's shape at 512 px: 1 GPU 225 ms, 2 GPUs 108 ms a step, so
 * degree 1 is dominated. Four requests at once, with SLOs no plan can meet:
 * every one is hopeless and must still run to the end, best effort. */
static void test_best_effort_without_one_gpu(void **state) {
    (void)state;
    int32_t w = 512, h = 512;
    int64_t tok = ts_tokens(w, h);
    double step[2] = {0.225, 0.108};
    TsCostModel cm = {.n_res = 1, .width = &w, .height = &h, .tokens = &tok, .n_deg = 2,
                      .degree = {1, 2}, .max_batch = 1, .step_s = step};
    TsRequest req[4];
    int res_of[4] = {0};
    for (int i = 0; i < 4; i++) req[i] = (TsRequest){i, 0.01 * i, w, h, 12, 0.5};
    TsTrace t = {"<test>", req, 4};
    const char *names[2] = {"tetriserve", "tetriplus"};
    for (int p = 0; p < 2; p++) {
        TsRunLog log;
        sim_checked(&t, &cm, NULL, res_of, 2, names[p], &log);
        for (int i = 0; i < 4; i++)
            if (log.req[i].status != 0 || !isfinite(log.req[i].finish))
                fail_msg("%s: hopeless request %d left unfinished (status %d) on idle GPUs", names[p], i,
                         log.req[i].status);
        ts_log_free(&log);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_min_alloc_vs_brute_force),
        cmocka_unit_test(test_min_alloc_paper_case),
        cmocka_unit_test(test_knapsack_vs_exhaustive),
        cmocka_unit_test(test_unit_knapsack_matches_dp),
        cmocka_unit_test(test_round_policies_invariants),
        cmocka_unit_test(test_overrun_rounds_end_with_work),
        cmocka_unit_test(test_best_effort_without_one_gpu),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
