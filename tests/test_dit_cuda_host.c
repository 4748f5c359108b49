/* test_dit_cuda_host.c - the host side of the GPU DiT (kernels/ts_dit_cuda.c)
 * on the CPU stand-in for the launchers (tests/fake_cuda.c), so that CI
 * without a GPU checks what the GPU step asks the device to do:
 *  - seeded weights and conditioning generated "on the device" are the bf16
 *    of the host's (ts_dit_weights_from_seed), bit for bit, and equal the
 *    uploaded ones;
 *  - a step at degree 1 (loopback), and at degrees 2 and 4 (k ranks as k
 *    threads over an in-process TsDitCudaComm), matches ts_dit_step /
 *    ts_dit_step_simulated within bf16 tolerances, every rank's latent
 *    identical; a sequence of steps with the degree changing between them
 *    (1, 2, 4, 2, 1) matches the CPU model's degree-1 sequence;
 *  - every launcher call of model set-up and of a step can fail: each
 *    failure is reported as one line with the failing call, and nothing
 *    leaks;
 *  - the workspace cache keeps to its byte budget and retries an allocation
 *    that fails after evicting the others.
 * The kernels themselves are checked against their CPU twins on a GPU by
 * make test-gpu (tests/gpu_test_kernels.c, tests/gpu_test_dit.c). */
#include "ts_test.h"
#include "ts_test_dit.h"

#include <math.h>
#include <pthread.h>

#include "fake_cuda.h"
#include "ts_dit.h"
#include "ts_dit_cuda.h"
#include "ts_kernels.h"
#include "ts_kernels_cuda.h"

#define SEED 20251001u

static void fixture_init(Fixture *f) {
    TsErr err = {{0}};
    if (fixture_make(f, "tiny", SEED, &err) != TS_OK) fail_msg("%s", err.msg);
}

/* rel L2 of the velocities recovered from the updates, and max abs over max |ref| */
static void velocity_err(const float *start, const float *got, const float *ref, int64_t n, float dt,
                         double *rel, double *mx_rel) {
    double num = 0, den = 0, mx = 0, worst = 0;
    for (int64_t i = 0; i < n; i++) {
        double vr = (ref[i] - start[i]) / dt, vg = (got[i] - start[i]) / dt;
        if (!isfinite(vg)) {
            *rel = *mx_rel = INFINITY;
            return;
        }
        num += (vg - vr) * (vg - vr);
        den += vr * vr;
        mx = fmax(mx, fabs(vr));
        worst = fmax(worst, fabs(vg - vr));
    }
    *rel = den > 0 ? sqrt(num / den) : INFINITY;
    *mx_rel = mx > 0 ? worst / mx : INFINITY;
}

/* bf16 GEMM inputs against the float32 CPU model: measured 0.3-0.7%. */
#define REL_L2_MAX 2e-2
#define MAX_REL_MAX 4e-2

/* ------------------------------------------------------------ weights */

static void test_seeded_weights_are_bf16_of_host(void **state) {
    (void)state;
    Fixture f;
    fixture_init(&f);
    TsErr err = {{0}};
    TsDitCuda seeded, uploaded;
    int64_t live0 = fake_cuda_live_allocs();
    if (ts_dit_cuda_init_seeded(&seeded, &f.m, SEED, &err) != TS_OK) fail_msg("%s", err.msg);
    if (ts_dit_cuda_init(&uploaded, &f.m, &err) != TS_OK) fail_msg("%s", err.msg);
    uint16_t *want = malloc(sizeof(uint16_t) * (size_t)f.m.n_params);
    ts_k_f32_to_bf16_cpu(want, f.m.arena, f.m.n_params);
    /* fake device memory is host memory: compare directly */
    assert_memory_equal(seeded.w_bf16, want, sizeof(uint16_t) * (size_t)f.m.n_params);
    assert_memory_equal(uploaded.w_bf16, want, sizeof(uint16_t) * (size_t)f.m.n_params);
    int n1 = 0;
    for (int i = 0; i < f.m.n_tensors; i++) {
        const TsDitTensor *t = &f.m.tensors[i];
        if (t->ndim != 1) {
            assert_int_equal(seeded.f32_off[i], -1);
            continue;
        }
        n1++;
        assert_memory_equal(seeded.w_f32 + seeded.f32_off[i], f.m.arena + t->offset,
                            sizeof(float) * (size_t)t->shape[0]);
        assert_memory_equal(uploaded.w_f32 + uploaded.f32_off[i], f.m.arena + t->offset,
                            sizeof(float) * (size_t)t->shape[0]);
    }
    assert_true(n1 > 10);
    /* the seeded model never needed the host arena */
    TsDit bare;
    if (ts_dit_init(&bare, &f.m.cfg, &err) != TS_OK) fail_msg("%s", err.msg);
    assert_null(bare.arena);
    TsDitCuda from_bare;
    if (ts_dit_cuda_init_seeded(&from_bare, &bare, SEED, &err) != TS_OK) fail_msg("%s", err.msg);
    assert_memory_equal(from_bare.w_bf16, want, sizeof(uint16_t) * (size_t)f.m.n_params);
    ts_dit_cuda_free(&from_bare);
    assert_int_not_equal(ts_dit_cuda_init(&from_bare, &bare, &err), TS_OK); /* no arena to upload */
    assert_non_null(strstr(err.msg, "no weights on the host"));
    ts_dit_free(&bare);

    TsDitCudaCond dc, du;
    if (ts_dit_cuda_cond_seeded(&dc, &seeded, 7, 3.5f, &err) != TS_OK) fail_msg("%s", err.msg);
    if (ts_dit_cuda_cond_upload(&du, &seeded, &f.cond, &err) != TS_OK) fail_msg("%s", err.msg);
    int64_t n_txt = (int64_t)f.m.cfg.txt_tokens * f.m.cfg.ctx_dim;
    uint16_t *txt_b = malloc(sizeof(uint16_t) * (size_t)n_txt);
    ts_k_f32_to_bf16_cpu(txt_b, f.txt, n_txt);
    assert_memory_equal(dc.txt, txt_b, sizeof(uint16_t) * (size_t)n_txt);
    assert_memory_equal(du.txt, txt_b, sizeof(uint16_t) * (size_t)n_txt);
    assert_memory_equal(dc.pooled, f.pooled, sizeof(float) * (size_t)f.m.cfg.pooled_dim);
    assert_memory_equal(du.pooled, f.pooled, sizeof(float) * (size_t)f.m.cfg.pooled_dim);
    ts_dit_cuda_cond_free(&dc);
    ts_dit_cuda_cond_free(&du);
    ts_dit_cuda_free(&seeded);
    ts_dit_cuda_free(&uploaded);
    assert_int_equal(fake_cuda_live_allocs(), live0);
    free(want);
    free(txt_b);
    fixture_free(&f);
}

/* ------------------------------------------------------------ k ranks as k threads */

typedef struct Group {
    int degree;
    pthread_barrier_t bar;
    const void *send[8];
} Group;

typedef struct RankCtx {
    Group *g;
    int rank;
} RankCtx;

static int th_rank(void *ctx) { return ((RankCtx *)ctx)->rank; }
static int th_size(void *ctx) { return ((RankCtx *)ctx)->g->degree; }

/* Synchronous like the fake device: post, copy every peer's block, and
 * wait for the peers to have copied ours before the buffer may change. */
static TsStatus th_alltoall(const void *d_send, void *d_recv, size_t bytes, void *stream, void *ctx,
                            TsErr *err) {
    (void)stream;
    (void)err;
    RankCtx *r = ctx;
    Group *g = r->g;
    g->send[r->rank] = d_send;
    pthread_barrier_wait(&g->bar);
    for (int p = 0; p < g->degree; p++)
        memcpy((char *)d_recv + (size_t)p * bytes, (const char *)g->send[p] + (size_t)r->rank * bytes,
               bytes);
    pthread_barrier_wait(&g->bar);
    return TS_OK;
}

static TsStatus th_wait(void *stream, const char *what, void *ctx, TsErr *err) {
    (void)stream, (void)what, (void)ctx, (void)err;
    return TS_OK;
}

typedef struct StepJob {
    const TsDitCuda *dm;
    const TsDitCudaCond *dc;
    RankCtx rc;
    int w, h, steps, total, first;
    const int *degrees; /* only steps i with degrees[i] == this group's degree run here */
    float *lat;         /* this rank's device latent */
    TsStatus st;
    TsErr err;
} StepJob;

static void *step_thread(void *arg) {
    StepJob *j = arg;
    TsDitCudaComm comm = {th_rank, th_size, th_alltoall, th_wait, &j->rc};
    TsDitCudaWork work;
    j->st = ts_dit_cuda_work_init(&work, j->dm, j->w, j->h, j->rc.g->degree, j->rc.rank, &j->err);
    if (j->st != TS_OK) return NULL;
    int i = j->first;
    j->st = ts_dit_cuda_step(j->dm, &work, &comm, j->dc, ts_dit_schedule_t(i, j->total),
                             ts_dit_schedule_t(i + 1, j->total), j->lat, &j->err);
    ts_dit_cuda_work_free(&work);
    return NULL;
}

/* One step i of `total` at `degree` on the fake device: the latent in lat
 * (host == fake device memory) is replicated to every rank and back; every
 * rank's result must be identical. */
static void gpu_step(const TsDitCuda *dm, const TsDitCudaCond *dc, int degree, int w, int h, int i,
                     int total, float *lat, int64_t n) {
    Group g = {.degree = degree};
    pthread_barrier_init(&g.bar, NULL, (unsigned)degree);
    StepJob jobs[8];
    pthread_t th[8];
    for (int r = 0; r < degree; r++) {
        jobs[r] = (StepJob){.dm = dm, .dc = dc, .rc = {&g, r}, .w = w, .h = h, .total = total, .first = i};
        if (ts_cuda_malloc((void **)&jobs[r].lat, sizeof(float) * (size_t)n)) fail_msg("malloc");
        memcpy(jobs[r].lat, lat, sizeof(float) * (size_t)n);
        pthread_create(&th[r], NULL, step_thread, &jobs[r]);
    }
    for (int r = 0; r < degree; r++) pthread_join(th[r], NULL);
    for (int r = 0; r < degree; r++)
        if (jobs[r].st != TS_OK) fail_msg("degree %d rank %d: %s", degree, r, jobs[r].err.msg);
    for (int r = 1; r < degree; r++)
        assert_memory_equal(jobs[r].lat, jobs[0].lat, sizeof(float) * (size_t)n);
    memcpy(lat, jobs[0].lat, sizeof(float) * (size_t)n);
    for (int r = 0; r < degree; r++) ts_cuda_free(jobs[r].lat);
    pthread_barrier_destroy(&g.bar);
}

static void check_one_step(const Fixture *f, const TsDitCuda *dm, const TsDitCudaCond *dc, int degree,
                           int w, int h) {
    TsErr err = {{0}};
    int64_t n = ts_dit_latent_floats(&f->m.cfg, w, h);
    float *start = malloc(sizeof(float) * (size_t)n), *ref = malloc(sizeof(float) * (size_t)n);
    float *got = malloc(sizeof(float) * (size_t)n);
    ts_dit_noise_from_seed(start, n, 1000 + (uint64_t)degree);
    memcpy(ref, start, sizeof(float) * (size_t)n);
    memcpy(got, start, sizeof(float) * (size_t)n);
    float t = ts_dit_schedule_t(1, 4), tn = ts_dit_schedule_t(2, 4);
    if (ts_dit_step_simulated(&f->m, degree, w, h, &f->cond, t, tn, ref, &err) != TS_OK)
        fail_msg("%s", err.msg);
    gpu_step(dm, dc, degree, w, h, 1, 4, got, n);
    double rel, mx;
    velocity_err(start, got, ref, n, tn - t, &rel, &mx);
    printf("  degree %d, %dx%d px: velocity rel L2 %.3g, max %.3g (limits %g, %g)\n", degree, w, h,
           rel, mx, REL_L2_MAX, MAX_REL_MAX);
    assert_true(rel <= REL_L2_MAX);
    assert_true(mx <= MAX_REL_MAX);
    assert_true(rel > 0); /* bf16 rounding must show: the GEMM inputs really were rounded */
    free(start), free(ref), free(got);
}

static void test_step_matches_cpu(void **state) {
    (void)state;
    Fixture f;
    fixture_init(&f);
    TsErr err = {{0}};
    TsDitCuda dm;
    if (ts_dit_cuda_init_seeded(&dm, &f.m, SEED, &err) != TS_OK) fail_msg("%s", err.msg);
    TsDitCudaCond dc;
    if (ts_dit_cuda_cond_upload(&dc, &dm, &f.cond, &err) != TS_OK) fail_msg("%s", err.msg);
    int64_t live0 = fake_cuda_live_allocs();
    /* 64x48: 8 text + 12 image tokens; 48x48: 17 tokens, padding at degree 2 and 4 */
    check_one_step(&f, &dm, &dc, 1, 64, 48);
    check_one_step(&f, &dm, &dc, 1, 48, 48);
    check_one_step(&f, &dm, &dc, 2, 48, 48);
    check_one_step(&f, &dm, &dc, 4, 48, 48);
    check_one_step(&f, &dm, &dc, 4, 64, 48);
    assert_int_equal(fake_cuda_live_allocs(), live0); /* workspaces freed */
    /* loopback comm, the degree-1 path the profiler uses without NCCL */
    int64_t n = ts_dit_latent_floats(&f.m.cfg, 48, 48);
    float *a = malloc(sizeof(float) * (size_t)n), *b = malloc(sizeof(float) * (size_t)n);
    ts_dit_noise_from_seed(a, n, 5);
    memcpy(b, a, sizeof(float) * (size_t)n);
    TsDitCudaWork w;
    if (ts_dit_cuda_work_init(&w, &dm, 48, 48, 1, 0, &err) != TS_OK) fail_msg("%s", err.msg);
    if (ts_dit_cuda_step(&dm, &w, &ts_dit_cuda_comm_loopback, &dc, 0.5f, 0.25f, a, &err) != TS_OK)
        fail_msg("%s", err.msg);
    gpu_step(&dm, &dc, 1, 48, 48, 2, 4, b, n); /* t = 0.5 -> 0.25 as well */
    assert_memory_equal(a, b, sizeof(float) * (size_t)n);
    /* the profiler's timed step: the same result, events around it */
    void *e0 = NULL, *e1 = NULL;
    float ms = -1;
    if (ts_cuda_event_create(&e0) || ts_cuda_event_create(&e1)) fail_msg("events");
    ts_dit_noise_from_seed(a, n, 5);
    if (ts_dit_cuda_step_timed(&dm, &w, &ts_dit_cuda_comm_loopback, &dc, 0.5f, 0.25f, a, e0, e1, &err))
        fail_msg("%s", err.msg);
    assert_memory_equal(a, b, sizeof(float) * (size_t)n);
    assert_int_equal(ts_cuda_event_elapsed_ms(e0, e1, &ms), 0);
    assert_true(ms >= 0 && ms < 10000);
    fake_cuda_fail_in(1, 700); /* the start event's record fails: reported, nothing run */
    assert_int_equal(ts_dit_cuda_step_timed(&dm, &w, &ts_dit_cuda_comm_loopback, &dc, 0.5f, 0.25f, a,
                                            e0, e1, &err),
                     TS_ERR_SYSTEM);
    assert_non_null(strstr(err.msg, "cudaEventRecord: injected failure"));
    ts_cuda_event_destroy(e0);
    ts_cuda_event_destroy(e1);
    /* a workspace of another rank/degree is refused, not silently used */
    TsDitCudaComm wrong = {th_rank, th_size, th_alltoall, th_wait, NULL};
    Group g1 = {.degree = 2};
    RankCtx rc = {&g1, 1};
    wrong.ctx = &rc;
    assert_int_equal(ts_dit_cuda_step(&dm, &w, &wrong, &dc, 0.5f, 0.25f, a, &err), TS_ERR_INTERNAL);
    assert_non_null(strstr(err.msg, "rank 1 of 2"));
    ts_dit_cuda_work_free(&w);
    free(a), free(b);
    ts_dit_cuda_cond_free(&dc);
    ts_dit_cuda_free(&dm);
    fixture_free(&f);
}

/* The SP-equivalence the executor relies on: the degree may change from one
 * step to the next (the latent is replicated after every step). */
static void test_mixed_degrees_across_steps(void **state) {
    (void)state;
    Fixture f;
    fixture_init(&f);
    TsErr err = {{0}};
    TsDitCuda dm;
    if (ts_dit_cuda_init_seeded(&dm, &f.m, SEED, &err) != TS_OK) fail_msg("%s", err.msg);
    TsDitCudaCond dc;
    if (ts_dit_cuda_cond_seeded(&dc, &dm, 7, 3.5f, &err) != TS_OK) fail_msg("%s", err.msg);
    const int w = 48, h = 64, total = 5, degrees[5] = {1, 2, 4, 2, 1};
    int64_t n = ts_dit_latent_floats(&f.m.cfg, w, h);
    float *start = malloc(sizeof(float) * (size_t)n), *ref = malloc(sizeof(float) * (size_t)n);
    float *mixed = malloc(sizeof(float) * (size_t)n), *one = malloc(sizeof(float) * (size_t)n);
    ts_dit_noise_from_seed(start, n, 31);
    memcpy(ref, start, sizeof(float) * (size_t)n);
    memcpy(mixed, start, sizeof(float) * (size_t)n);
    memcpy(one, start, sizeof(float) * (size_t)n);
    TsDitWork cw;
    if (ts_dit_work_init(&cw, &f.m, w, h, 1, 0, &err) != TS_OK) fail_msg("%s", err.msg);
    for (int i = 0; i < total; i++) {
        if (ts_dit_step(&f.m, &cw, &ts_dit_comm_loopback, &f.cond, ts_dit_schedule_t(i, total),
                        ts_dit_schedule_t(i + 1, total), ref, &err) != TS_OK)
            fail_msg("%s", err.msg);
        gpu_step(&dm, &dc, degrees[i], w, h, i, total, mixed, n);
        gpu_step(&dm, &dc, 1, w, h, i, total, one, n);
    }
    ts_dit_work_free(&cw);
    /* whole trajectory: the update start -> end, relative */
    double rel_ref, mx_ref, rel_one, mx_one;
    velocity_err(start, mixed, ref, n, 1.0f, &rel_ref, &mx_ref);
    velocity_err(start, mixed, one, n, 1.0f, &rel_one, &mx_one);
    printf("  degrees 1,2,4,2,1 over 5 steps: vs CPU rel L2 %.3g max %.3g; vs GPU degree 1 rel L2 "
           "%.3g max %.3g\n", rel_ref, mx_ref, rel_one, mx_one);
    assert_true(rel_ref <= REL_L2_MAX && mx_ref <= MAX_REL_MAX);
    /* same bf16 roundings at every degree: only float32 summation order differs */
    assert_true(rel_one <= 1e-4 && mx_one <= 1e-3);
    free(start), free(ref), free(mixed), free(one);
    ts_dit_cuda_cond_free(&dc);
    ts_dit_cuda_free(&dm);
    fixture_free(&f);
}

/* ------------------------------------------------------------ error paths */

static void test_every_failure_is_reported_without_leaks(void **state) {
    (void)state;
    Fixture f;
    fixture_init(&f);
    TsErr err = {{0}};
    int64_t live0 = fake_cuda_live_allocs();
    /* how many launcher calls each phase makes */
    int64_t c0 = fake_cuda_calls();
    TsDitCuda dm;
    if (ts_dit_cuda_init_seeded(&dm, &f.m, SEED, &err) != TS_OK) fail_msg("%s", err.msg);
    int64_t n_init = fake_cuda_calls() - c0;
    ts_dit_cuda_free(&dm);
    c0 = fake_cuda_calls();
    if (ts_dit_cuda_init(&dm, &f.m, &err) != TS_OK) fail_msg("%s", err.msg);
    int64_t n_upload = fake_cuda_calls() - c0;
    TsDitCudaCond dc;
    if (ts_dit_cuda_cond_seeded(&dc, &dm, 7, 3.5f, &err) != TS_OK) fail_msg("%s", err.msg);
    int64_t n = ts_dit_latent_floats(&f.m.cfg, 48, 48);
    float *lat = NULL;
    if (ts_cuda_malloc((void **)&lat, sizeof(float) * (size_t)n)) fail_msg("malloc");
    ts_dit_noise_from_seed(lat, n, 3);
    TsDitCudaWork w;
    c0 = fake_cuda_calls();
    if (ts_dit_cuda_work_init(&w, &dm, 48, 48, 1, 0, &err) != TS_OK) fail_msg("%s", err.msg);
    int64_t n_work = fake_cuda_calls() - c0;
    c0 = fake_cuda_calls();
    if (ts_dit_cuda_step(&dm, &w, &ts_dit_cuda_comm_loopback, &dc, 0.5f, 0.25f, lat, &err) != TS_OK)
        fail_msg("%s", err.msg);
    int64_t n_step = fake_cuda_calls() - c0;
    assert_true(n_init > 20 && n_upload > 5 && n_work > 3 && n_step > 100);
    int64_t live1 = fake_cuda_live_allocs();

    for (int64_t k = 1; k <= n_step; k++) { /* every call of a step */
        fake_cuda_fail_in(k, 700);
        assert_int_equal(ts_dit_cuda_step(&dm, &w, &ts_dit_cuda_comm_loopback, &dc, 0.5f, 0.25f, lat,
                                          &err),
                         TS_ERR_SYSTEM);
        assert_non_null(strstr(err.msg, "injected failure (700)"));
        assert_non_null(strstr(err.msg, "kernels/ts_dit_cuda.c:"));
        assert_null(strchr(err.msg, '\n'));
        assert_int_equal(fake_cuda_live_allocs(), live1);
    }
    for (int64_t k = 1; k <= n_work; k++) {
        TsDitCudaWork w2;
        fake_cuda_fail_in(k, 2);
        assert_int_equal(ts_dit_cuda_work_init(&w2, &dm, 64, 48, 2, 1, &err), TS_ERR_SYSTEM);
        assert_non_null(strstr(err.msg, "GPU workspace 64x48 px, degree 2"));
        assert_null(w2.mem);
        assert_int_equal(fake_cuda_live_allocs(), live1);
    }
    ts_dit_cuda_work_free(&w);
    ts_cuda_free(lat);
    ts_dit_cuda_cond_free(&dc);
    ts_dit_cuda_free(&dm);
    assert_int_equal(fake_cuda_live_allocs(), live0);
    for (int64_t k = 1; k <= n_init; k++) {
        fake_cuda_fail_in(k, 2);
        assert_int_equal(ts_dit_cuda_init_seeded(&dm, &f.m, SEED, &err), TS_ERR_SYSTEM);
        assert_non_null(strstr(err.msg, "model tiny on the GPU (seeded): "));
        assert_null(dm.w_bf16);
        assert_int_equal(fake_cuda_live_allocs(), live0);
    }
    for (int64_t k = 1; k <= n_upload; k++) {
        fake_cuda_fail_in(k, 2);
        assert_int_equal(ts_dit_cuda_init(&dm, &f.m, &err), TS_ERR_SYSTEM);
        assert_int_equal(fake_cuda_live_allocs(), live0);
    }
    TsDitCuda ok;
    if (ts_dit_cuda_init_seeded(&ok, &f.m, SEED, &err) != TS_OK) fail_msg("%s", err.msg);
    int64_t live2 = fake_cuda_live_allocs();
    for (int64_t k = 1; k <= 4; k++) { /* the 4 calls of seeded conditioning */
        fake_cuda_fail_in(k, 2);
        assert_int_equal(ts_dit_cuda_cond_seeded(&dc, &ok, 7, 3.5f, &err), TS_ERR_SYSTEM);
        assert_null(dc.txt);
        assert_int_equal(fake_cuda_live_allocs(), live2);
    }
    ts_dit_cuda_free(&ok);
    assert_int_equal(fake_cuda_live_allocs(), live0);
    fake_cuda_fail_in(0, 0);
    fixture_free(&f);
}

/* ------------------------------------------------------------ cache */

static void test_cache_budget_and_retry(void **state) {
    (void)state;
    Fixture f;
    fixture_init(&f);
    TsErr err = {{0}};
    TsDitCuda dm;
    if (ts_dit_cuda_init_seeded(&dm, &f.m, SEED, &err) != TS_OK) fail_msg("%s", err.msg);
    int64_t live0 = fake_cuda_live_allocs();
    size_t a = ts_dit_cuda_work_bytes(&f.m.cfg, 64, 64, 1, &err), b = ts_dit_cuda_work_bytes(&f.m.cfg, 48, 48, 1, &err);
    assert_true(a > b && b > 0);
    assert_int_equal(ts_dit_cuda_work_bytes(&f.m.cfg, 50, 48, 1, &err), 0); /* not a multiple of 16 */
    assert_int_equal(ts_dit_cuda_work_bytes(&f.m.cfg, 48, 48, 3, &err), 0); /* 3 does not divide 4 heads */
    TsDitCudaWorkCache c;
    ts_dit_cuda_cache_init(&c, 4);
    ts_dit_cuda_cache_set_budget(&c, a + b / 2); /* room for 64x64 alone, or 48x48 alone */
    TsDitCudaWork *w1, *w2, *w3;
    if (ts_dit_cuda_cache_get(&c, &dm, 64, 64, 1, 0, &w1, &err) != TS_OK) fail_msg("%s", err.msg);
    if (ts_dit_cuda_cache_get(&c, &dm, 64, 64, 1, 0, &w2, &err) != TS_OK) fail_msg("%s", err.msg);
    assert_ptr_equal(w1, w2);
    assert_int_equal(c.n_alloc, 1);
    if (ts_dit_cuda_cache_get(&c, &dm, 48, 48, 1, 0, &w3, &err) != TS_OK) fail_msg("%s", err.msg);
    assert_int_equal(c.n_evict, 1); /* 64x64 had to go */
    assert_true(c.bytes <= c.max_bytes);
    assert_int_equal(c.bytes, w3->bytes);
    /* without a budget both fit; then an allocation failure evicts and retries */
    ts_dit_cuda_cache_set_budget(&c, 0);
    if (ts_dit_cuda_cache_get(&c, &dm, 64, 64, 1, 0, &w1, &err) != TS_OK) fail_msg("%s", err.msg);
    assert_int_equal(c.bytes, a + b);
    fake_cuda_fail_in(1, 2); /* the next allocation fails once */
    if (ts_dit_cuda_cache_get(&c, &dm, 64, 48, 2, 1, &w2, &err) != TS_OK) fail_msg("%s", err.msg);
    assert_int_equal(c.n_evict, 3);
    assert_int_equal(c.bytes, w2->bytes);
    assert_int_equal(w2->degree, 2);
    assert_int_equal(w2->rank, 1);
    /* full (max_entries 4): the least recently used is evicted */
    ts_dit_cuda_cache_free(&c);
    ts_dit_cuda_cache_init(&c, 2);
    if (ts_dit_cuda_cache_get(&c, &dm, 48, 48, 1, 0, &w1, &err) ||
        ts_dit_cuda_cache_get(&c, &dm, 64, 48, 1, 0, &w2, &err) ||
        ts_dit_cuda_cache_get(&c, &dm, 48, 48, 1, 0, &w1, &err) ||
        ts_dit_cuda_cache_get(&c, &dm, 64, 64, 1, 0, &w3, &err))
        fail_msg("%s", err.msg);
    assert_ptr_equal(w3, w2); /* 64x48 was the oldest: its slot is reused */
    if (ts_dit_cuda_cache_get(&c, &dm, 48, 48, 1, 0, &w2, &err) != TS_OK) fail_msg("%s", err.msg);
    assert_ptr_equal(w2, w1);
    ts_dit_cuda_cache_free(&c);
    assert_int_equal(fake_cuda_live_allocs(), live0);
    ts_dit_cuda_free(&dm);
    fixture_free(&f);
}

/* Attention memory stays bounded: the GPU workspace grows linearly in the
 * sequence (no score matrix: at 2048 px one would be 16896^2 x 24 heads x
 * 4 B = 27 GB), and FLUX.1-dev at 2048 px fits beside its 23.8 GB of
 * weights on one 80 GB GPU at every degree. */
static void test_workspace_linear_in_tokens(void **state) {
    (void)state;
    TsErr err = {{0}};
    TsDitConfig c;
    if (ts_dit_config_preset("flux-dev", &c, &err) != TS_OK) fail_msg("%s", err.msg);
    size_t b1 = ts_dit_cuda_work_bytes(&c, 1024, 1024, 1, &err);
    size_t b2 = ts_dit_cuda_work_bytes(&c, 2048, 2048, 1, &err);
    double tokens = (512.0 + 16384) / (512.0 + 4096); /* 3.67 */
    printf("  flux-dev workspace: 1024 px %.2f GB, 2048 px %.2f GB (x%.2f, tokens x%.2f)\n", b1 / 1e9,
           b2 / 1e9, (double)b2 / (double)b1, tokens);
    assert_true(b1 > 0 && b2 > 0);
    assert_true((double)b2 / (double)b1 < 1.05 * tokens); /* linear, not quadratic (x13.4) */
    assert_true(b2 < (size_t)5e9);
    for (int k = 2; k <= 8; k *= 2) { /* per rank: shrinks with the degree */
        size_t bk = ts_dit_cuda_work_bytes(&c, 2048, 2048, k, &err);
        assert_true(bk > 0 && bk < b2);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seeded_weights_are_bf16_of_host),
        cmocka_unit_test(test_step_matches_cpu),
        cmocka_unit_test(test_mixed_degrees_across_steps),
        cmocka_unit_test(test_every_failure_is_reported_without_leaks),
        cmocka_unit_test(test_cache_budget_and_retry),
        cmocka_unit_test(test_workspace_linear_in_tokens),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
