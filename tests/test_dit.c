/* test_dit.c - the CPU DiT: presets and tensor table, deterministic seeded
 * weights and steps, and the sequence-parallel equivalence: a step (and a
 * sequence of steps with the degree changing between them) at Ulysses degree
 * 2 and 4 on a simulated group gives the degree-1 latent. */
#include "ts_test.h"

#include <math.h>

#include "ts_dit.h"
#include "ts_test_dit.h"

#define SEED 20251001u

static void fixture_init(Fixture *f, const char *preset, uint64_t seed) {
    TsErr err = {{0}};
    if (fixture_make(f, preset, seed, &err) != TS_OK) fail_msg("%s", err.msg);
}

static float *noise(const TsDit *m, int w, int h) {
    int64_t n = ts_dit_latent_floats(&m->cfg, w, h);
    float *lat = malloc(sizeof(float) * (size_t)n);
    ts_dit_noise_from_seed(lat, n, 99);
    return lat;
}

/* Run `steps` steps of a `total`-step schedule with degrees[i] at step i. */
static void run_steps(const Fixture *f, int w, int h, const int *degrees, int steps, int total,
                      float *lat) {
    for (int i = 0; i < steps; i++) {
        TsErr err = {{0}};
        TsStatus st = ts_dit_step_simulated(&f->m, degrees[i], w, h, &f->cond,
                                            ts_dit_schedule_t(i, total), ts_dit_schedule_t(i + 1, total),
                                            lat, &err);
        if (st != TS_OK) fail_msg("%dx%d step %d degree %d: %s", w, h, i, degrees[i], err.msg);
    }
}

/* max |a - b| / max |a| */
static double rel_err(const float *a, const float *b, int64_t n) {
    double mx = 0, d = 0;
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(a[i]) || !isfinite(b[i])) return INFINITY;
        mx = fmax(mx, fabs(a[i]));
        d = fmax(d, fabs((double)a[i] - b[i]));
    }
    return mx > 0 ? d / mx : d;
}

/* ---------------------------------------------------------------- presets */

static void test_presets(void **state) {
    (void)state;
    TsErr err = {{0}};
    TsDitConfig cfg;
    TsDit m;
    assert_int_equal(ts_dit_config_preset("flux-dev", &cfg, &err), TS_OK);
    assert_int_equal(ts_dit_init(&m, &cfg, &err), TS_OK);
    /* FLUX.1-dev has 11.9 B parameters: the architecture is the real one */
    print_message("flux-dev: %lld parameters in %d tensors\n", (long long)m.n_params, m.n_tensors);
    assert_true(fabs((double)m.n_params / 11.9e9 - 1) < 0.01);
    const TsDitTensor *t = ts_dit_tensor(&m, "double_blocks.18.img_attn.qkv.weight");
    assert_non_null(t);
    assert_int_equal(t->ndim, 2);
    assert_true(t->shape[0] == 9216 && t->shape[1] == 3072);
    t = ts_dit_tensor(&m, "single_blocks.37.linear2.weight");
    assert_non_null(t);
    assert_true(t->shape[0] == 3072 && t->shape[1] == 3072 + 12288);
    t = ts_dit_tensor(&m, "final_layer.linear.bias");
    assert_non_null(t);
    assert_true(t->ndim == 1 && t->shape[0] == 64);
    assert_true(t->offset + 64 == m.n_params); /* the last tensor ends the arena */
    assert_null(ts_dit_tensor(&m, "single_blocks.38.linear1.weight"));
    assert_null(m.arena);
    ts_dit_free(&m);

    assert_int_equal(ts_dit_config_preset("sd3-medium", &cfg, &err), TS_OK);
    assert_int_equal(ts_dit_init(&m, &cfg, &err), TS_OK);
    print_message("sd3-medium: %lld parameters\n", (long long)m.n_params);
    assert_true(m.n_params > 1.9e9 && m.n_params < 2.3e9); /* "2B" */
    ts_dit_free(&m);

    assert_int_equal(ts_dit_config_preset("flux-pro", &cfg, &err), TS_ERR_INPUT);
    assert_non_null(strstr(err.msg, "'flux-pro' is unknown"));
    assert_non_null(strstr(err.msg, "tiny, flux-dev, sd3-medium"));

    assert_int_equal(ts_dit_config_preset("tiny", &cfg, &err), TS_OK);
    cfg.rope_axes_dim[0] = 6;
    assert_int_equal(ts_dit_init(&m, &cfg, &err), TS_ERR_INPUT);
    assert_non_null(strstr(err.msg, "rope axes sum to 18, not head_dim 16"));
    cfg.rope_axes_dim[0] = 4;
    cfg.hidden = 65;
    assert_int_equal(ts_dit_config_check(&cfg, &err), TS_ERR_INPUT);
    assert_non_null(strstr(err.msg, "hidden 65"));
}

static void test_errors(void **state) {
    (void)state;
    Fixture f;
    fixture_init(&f, "tiny", SEED);
    TsErr err = {{0}};
    assert_int_equal(ts_dit_weights_from_safetensors(&f.m, "flux1-dev.safetensors", &err), TS_ERR_INPUT);
    assert_non_null(strstr(err.msg, "flux1-dev.safetensors"));
    assert_non_null(strstr(err.msg, "not supported yet"));
    TsDitWork w;
    assert_int_equal(ts_dit_work_init(&w, &f.m, 250, 256, 1, 0, &err), TS_ERR_INPUT);
    assert_non_null(strstr(err.msg, "250x256 px is not a positive multiple of 16"));
    assert_int_equal(ts_dit_work_init(&w, &f.m, 256, 256, 3, 0, &err), TS_ERR_INPUT);
    assert_non_null(strstr(err.msg, "degree 3 does not divide its 4 heads"));
    /* work for rank 1 of 2 against the loopback communicator */
    assert_int_equal(ts_dit_work_init(&w, &f.m, 256, 256, 2, 1, &err), TS_OK);
    float *lat = noise(&f.m, 256, 256);
    assert_int_equal(ts_dit_step(&f.m, &w, &ts_dit_comm_loopback, &f.cond, 1.0f, 0.9f, lat, &err),
                     TS_ERR_INTERNAL);
    assert_non_null(strstr(err.msg, "rank 1 of 2"));
    ts_dit_work_free(&w);
    free(lat);
    fixture_free(&f);
}

/* Token split with padding: 240x176 px = 15 x 11 = 165 image tokens + 8 text = 173. */
static void test_work_split(void **state) {
    (void)state;
    Fixture f;
    fixture_init(&f, "tiny", SEED);
    TsErr err = {{0}};
    TsDitWork w;
    int64_t img_seen = 0, txt_seen = 0;
    for (int r = 0; r < 4; r++) {
        assert_int_equal(ts_dit_work_init(&w, &f.m, 240, 176, 4, r, &err), TS_OK);
        assert_int_equal(w.n_img, 165);
        assert_int_equal(w.s_total, 173);
        assert_int_equal(w.s_pad, 176);
        assert_int_equal(w.s_loc, 44);
        assert_int_equal(w.img0, img_seen);
        txt_seen += w.loc_txt;
        img_seen += w.loc_img;
        if (r == 0) assert_true(w.loc_txt == 8 && w.loc_img == 36);
        if (r == 3) assert_int_equal(w.loc_img, 44 - 3); /* three padding tokens */
        ts_dit_work_free(&w);
    }
    assert_int_equal(txt_seen, 8);
    assert_int_equal(img_seen, 165);
    fixture_free(&f);
}

/* ---------------------------------------------------------------- determinism */

static void test_deterministic(void **state) {
    (void)state;
    Fixture a, b, c;
    fixture_init(&a, "tiny", SEED);
    fixture_init(&b, "tiny", SEED);
    fixture_init(&c, "tiny", SEED + 1);
    assert_int_equal(a.m.n_params, b.m.n_params);
    assert_memory_equal(a.m.arena, b.m.arena, sizeof(float) * (size_t)a.m.n_params);
    assert_memory_not_equal(a.m.arena, c.m.arena, sizeof(float) * (size_t)a.m.n_params);
    /* weights have std ~ 1/sqrt(fan_in); norm scales are 1 */
    const TsDitTensor *t = ts_dit_tensor(&a.m, "double_blocks.0.img_mlp.2.weight");
    double sq = 0;
    int64_t n = t->shape[0] * t->shape[1];
    for (int64_t i = 0; i < n; i++) sq += pow(a.m.arena[t->offset + i], 2);
    assert_true(fabs(sqrt(sq / n) * sqrt((double)t->fan_in) - 1) < 0.05);
    t = ts_dit_tensor(&a.m, "single_blocks.1.norm.key_norm.scale");
    assert_true(a.m.arena[t->offset] == 1.0f && a.m.arena[t->offset + 15] == 1.0f);

    float *la = noise(&a.m, 256, 256), *lb = noise(&a.m, 256, 256), *lc = noise(&a.m, 256, 256);
    int64_t nl = ts_dit_latent_floats(&a.m.cfg, 256, 256);
    assert_int_equal(nl, 4 * 32 * 32);
    float *l0 = malloc(sizeof(float) * (size_t)nl);
    memcpy(l0, la, sizeof(float) * (size_t)nl);
    const int deg[2] = {1, 1};
    run_steps(&a, 256, 256, deg, 2, 28, la);
    run_steps(&b, 256, 256, deg, 2, 28, lb);
    run_steps(&c, 256, 256, deg, 2, 28, lc);
    assert_memory_equal(la, lb, sizeof(float) * (size_t)nl);      /* same seed: same bytes */
    assert_memory_not_equal(la, lc, sizeof(float) * (size_t)nl);  /* the weights matter */
    double moved = rel_err(l0, la, nl);
    assert_true(isfinite(moved) && moved > 1e-3); /* the step did something, finitely */
    free(la), free(lb), free(lc), free(l0);
    fixture_free(&a);
    fixture_free(&b);
    fixture_free(&c);
}

/* ---------------------------------------------------------------- SP equivalence */

static void check_sp(int w, int h, const int *degrees, int steps, const char *label) {
    Fixture f;
    fixture_init(&f, "tiny", SEED);
    int64_t n = ts_dit_latent_floats(&f.m.cfg, w, h);
    float *ref = noise(&f.m, w, h), *sp = noise(&f.m, w, h);
    int ones[8] = {1, 1, 1, 1, 1, 1, 1, 1};
    run_steps(&f, w, h, ones, steps, 28, ref);
    run_steps(&f, w, h, degrees, steps, 28, sp);
    double e = rel_err(ref, sp, n);
    print_message("SP %-28s %dx%d: max abs err / max abs = %.3g\n", label, w, h, e);
    if (!(e < 1e-4)) fail_msg("%s at %dx%d: relative error %.3g >= 1e-4", label, w, h, e);
    free(ref), free(sp);
    fixture_free(&f);
}

static void test_sp_one_step_256(void **state) {
    (void)state;
    const int d2[1] = {2}, d4[1] = {4};
    check_sp(256, 256, d2, 1, "1 step, degree 2");
    check_sp(256, 256, d4, 1, "1 step, degree 4");
}

static void test_sp_mixed_steps_256(void **state) {
    (void)state;
    const int a[3] = {1, 2, 4}, b[3] = {4, 1, 2}, c[3] = {2, 4, 2};
    check_sp(256, 256, a, 3, "3 steps, degrees 1,2,4");
    check_sp(256, 256, b, 3, "3 steps, degrees 4,1,2");
    check_sp(256, 256, c, 3, "3 steps, degrees 2,4,2");
}

static void test_sp_non_square(void **state) {
    (void)state;
    const int d2[1] = {2}, d4[1] = {4}, mix[3] = {2, 1, 4};
    check_sp(256, 384, d4, 1, "1 step, degree 4");
    /* 173 tokens: padding at both degrees */
    check_sp(240, 176, d2, 1, "1 step, degree 2 (padded)");
    check_sp(240, 176, d4, 1, "1 step, degree 4 (padded)");
    check_sp(240, 176, mix, 3, "3 steps, degrees 2,1,4 (padded)");
}

/* The test above must be able to fail: a broken exchange (rank 1 gets rank
 * 0's keys) changes the latent far beyond the tolerance. */
typedef struct BadCtx {
    int calls;
} BadCtx;
static int bad_rank(void *ctx) {
    (void)ctx;
    return 0;
}
static int bad_size(void *ctx) {
    (void)ctx;
    return 1;
}
static TsStatus bad_alltoall(const void *s, void *r, size_t bytes, void *ctx, TsErr *err) {
    (void)err;
    BadCtx *b = ctx;
    memcpy(r, s, bytes);
    if (b->calls++ == 1) memset(r, 0, bytes / 2); /* lose half of the first block's keys */
    return TS_OK;
}

static void test_sp_detects_broken_exchange(void **state) {
    (void)state;
    Fixture f;
    fixture_init(&f, "tiny", SEED);
    int64_t n = ts_dit_latent_floats(&f.m.cfg, 256, 256);
    float *ref = noise(&f.m, 256, 256), *bad = noise(&f.m, 256, 256);
    TsErr err = {{0}};
    TsDitWork w;
    assert_int_equal(ts_dit_work_init(&w, &f.m, 256, 256, 1, 0, &err), TS_OK);
    assert_int_equal(ts_dit_step(&f.m, &w, &ts_dit_comm_loopback, &f.cond, 1.0f, 0.5f, ref, &err), TS_OK);
    BadCtx bc = {0};
    TsDitComm comm = {bad_rank, bad_size, bad_alltoall, &bc};
    assert_int_equal(ts_dit_step(&f.m, &w, &comm, &f.cond, 1.0f, 0.5f, bad, &err), TS_OK);
    assert_true(rel_err(ref, bad, n) > 1e-3);
    ts_dit_work_free(&w);
    free(ref), free(bad);
    fixture_free(&f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_presets),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_work_split),
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_sp_one_step_256),
        cmocka_unit_test(test_sp_mixed_steps_256),
        cmocka_unit_test(test_sp_non_square),
        cmocka_unit_test(test_sp_detects_broken_exchange),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
