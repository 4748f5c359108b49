/* gpu_test_kernels.c - every CUDA kernel of kernels/ts_kernels.cu and
 * kernels/ts_dit_cuda_k.cu (and the cuBLAS linear layer) against its CPU
 * twin on random inputs (make test-gpu). Tolerances: float32 kernels within
 * 1e-4 of the largest reference value (they differ from the twins only in
 * summation order and libm ulps); bf16 conversions and seeded fills bit for
 * bit; bf16 staging with a fused GELU within one bf16 ulp (2^-7 relative:
 * tanhf may differ by an ulp before rounding); the bf16 GEMM within 2e-2.
 * Without a GPU: prints "skip: no CUDA device (...)" and exits 0. Plain C:
 * only the launchers' headers, no CUDA headers. */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ts_dit_cuda.h"
#include "ts_kernels.h"
#include "ts_kernels_cuda.h"

static int failures;

#define CU(call)                                                                                   \
    do {                                                                                           \
        if ((call) != 0) {                                                                         \
            fprintf(stderr, "gpu_test_kernels: %s\n", ts_cuda_last_error());                      \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

static uint64_t rng = 0x2545F4914F6CDD1Dull;
static float rnd(void) {
    rng ^= rng >> 12, rng ^= rng << 25, rng ^= rng >> 27;
    return (float)((double)((rng * 2685821657736338717ull) >> 40) / 8388608.0 - 1.0);
}

static float *hrand(int64_t n, float amp) {
    float *p = malloc(sizeof(float) * (size_t)n);
    for (int64_t i = 0; i < n; i++) p[i] = amp * rnd();
    return p;
}

static float *hcopy(const float *src, int64_t n) {
    float *p = malloc(sizeof(float) * (size_t)n);
    memcpy(p, src, sizeof(float) * (size_t)n);
    return p;
}

static void *dup_to_dev(const void *h, size_t bytes) {
    void *d = NULL;
    CU(ts_cuda_malloc(&d, bytes));
    CU(ts_cuda_memcpy_h2d(d, h, bytes, NULL));
    return d;
}

static float *dev(const float *h, int64_t n) { return dup_to_dev(h, sizeof(float) * (size_t)n); }

/* copy device d back, compare with ref, free d */
static void check(const char *name, float *d, const float *ref, int64_t n, double tol) {
    float *h = malloc(sizeof(float) * (size_t)n);
    CU(ts_cuda_memcpy_d2h(h, d, sizeof(float) * (size_t)n, NULL));
    CU(ts_cuda_stream_sync(NULL));
    double mx = 1.0, err = 0;
    for (int64_t i = 0; i < n; i++) mx = fmax(mx, fabs(ref[i]));
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(h[i])) err = INFINITY;
        else err = fmax(err, fabs((double)h[i] - ref[i]));
    }
    int ok = err <= tol * mx;
    printf("  %-4s %-22s max abs err %.3g (limit %.3g)\n", ok ? "ok" : "FAIL", name, err, tol * mx);
    failures += !ok;
    free(h);
    CU(ts_cuda_free(d));
}

#define TOL 1e-4

static void test_norms(void) {
    const int64_t rows = 33;
    const int cols = 300;
    float *x = hrand(rows * cols, 3), *w = hrand(cols, 1), *b = hrand(cols, 1);
    float *ref = malloc(sizeof(float) * rows * cols);
    float *dx = dev(x, rows * cols), *dw = dev(w, cols), *db = dev(b, cols);
    float *dout = dev(x, rows * cols);
    ts_k_layernorm_cpu(ref, x, w, b, rows, cols, 1e-6f);
    CU(ts_k_layernorm_cuda(dout, dx, dw, db, rows, cols, 1e-6f, NULL));
    check("layernorm", dout, ref, rows * cols, TOL);
    dout = dev(x, rows * cols);
    ts_k_layernorm_cpu(ref, x, NULL, NULL, rows, cols, 1e-6f);
    CU(ts_k_layernorm_cuda(dout, dx, NULL, NULL, rows, cols, 1e-6f, NULL));
    check("layernorm (no affine)", dout, ref, rows * cols, TOL);
    dout = dev(x, rows * cols);
    ts_k_rmsnorm_cpu(ref, x, w, rows * cols / 100, 100, 1e-6f);
    CU(ts_k_rmsnorm_cuda(dout, dx, dw, rows * cols / 100, 100, 1e-6f, NULL));
    check("rmsnorm", dout, ref, rows * cols, TOL);
    dout = dev(x, rows * cols);
    ts_k_adaln_modulate_cpu(ref, x, w, b, rows, cols);
    CU(ts_k_adaln_modulate_cuda(dout, dx, dw, db, rows, cols, NULL));
    check("adaln_modulate", dout, ref, rows * cols, TOL);
    float *ref2 = hcopy(x, rows * cols);
    ts_k_softmax_cpu(ref2, rows, cols);
    dout = dev(x, rows * cols);
    CU(ts_k_softmax_cuda(dout, rows, cols, NULL));
    check("softmax", dout, ref2, rows * cols, TOL);
    CU(ts_cuda_free(dx)); CU(ts_cuda_free(dw)); CU(ts_cuda_free(db));
    free(x), free(w), free(b), free(ref), free(ref2);
}

static void test_elementwise(void) {
    const int64_t n = 100003;
    float *x = hrand(n, 4), *v = hrand(n, 1), *ref = malloc(sizeof(float) * n);
    float *dx = dev(x, n), *dv = dev(v, n), *dout = dev(x, n);
    ts_k_gelu_tanh_cpu(ref, x, n);
    CU(ts_k_gelu_tanh_cuda(dout, dx, n, NULL));
    check("gelu_tanh", dout, ref, n, TOL);
    dout = dev(x, n);
    ts_k_silu_cpu(ref, x, n);
    CU(ts_k_silu_cuda(dout, dx, n, NULL));
    check("silu", dout, ref, n, TOL);
    memcpy(ref, x, sizeof(float) * n);
    ts_k_euler_update_cpu(ref, v, n, 0.75f, 0.5f);
    CU(ts_k_euler_update_cuda(dx, dv, n, 0.75f, 0.5f, NULL));
    check("euler_update", dx, ref, n, TOL);
    /* strided gated residual and bias over [rows, 70] of [rows, 100] */
    const int64_t rows = 1000;
    const int cols = 70, ld = 100;
    float *g = hrand(cols, 1);
    float *dg = dev(g, cols);
    memcpy(ref, x, sizeof(float) * rows * ld);
    ts_k_gated_residual_cpu(ref, ld, v, ld, g, rows, cols);
    dx = dev(x, rows * ld);
    CU(ts_k_gated_residual_cuda(dx, ld, dv, ld, dg, rows, cols, NULL));
    check("gated_residual", dx, ref, rows * ld, TOL);
    memcpy(ref, x, sizeof(float) * rows * ld);
    ts_k_bias_add_cpu(ref, ld, g, rows, cols);
    dx = dev(x, rows * ld);
    CU(ts_k_bias_add_cuda(dx, ld, dg, rows, cols, NULL));
    check("bias_add", dx, ref, rows * ld, TOL);
    ts_k_timestep_embedding_cpu(ref, 734.0f, 256, 10000.0f);
    dout = dev(x, 256);
    CU(ts_k_timestep_embedding_cuda(dout, 734.0f, 256, 10000.0f, NULL));
    check("timestep_embedding", dout, ref, 256, 1e-3); /* sin/cos of ~700 rad */
    CU(ts_cuda_free(dv)); CU(ts_cuda_free(dg));
    free(x), free(v), free(ref), free(g);
}

static void test_rope(void) {
    const int64_t S = 77;
    const int heads = 3, d = 128, ld = heads * d + 8;
    const int axes[3] = {16, 56, 56};
    float *pos = malloc(sizeof(float) * S * 3);
    for (int64_t s = 0; s < S; s++) pos[s * 3] = 0, pos[s * 3 + 1] = (float)(s / 9), pos[s * 3 + 2] = (float)(s % 9);
    float *cs = malloc(sizeof(float) * S * d / 2), *sn = malloc(sizeof(float) * S * d / 2);
    ts_k_rope_table_cpu(cs, sn, pos, S, 3, axes, 10000.0f);
    float *dpos = dev(pos, S * 3), *dcs = dev(cs, S * d / 2), *dsn = dev(sn, S * d / 2);
    float *dc2 = dev(cs, S * d / 2), *ds2 = dev(sn, S * d / 2);
    CU(ts_k_rope_table_cuda(dc2, ds2, dpos, S, 3, axes, 10000.0f, NULL));
    check("rope_table cos", dc2, cs, S * d / 2, TOL);
    check("rope_table sin", ds2, sn, S * d / 2, TOL);
    float *x = hrand(S * ld, 1), *ref = hcopy(x, S * ld);
    float *dx = dev(x, S * ld);
    ts_k_rope_cpu(ref, ld, cs, sn, S, heads, d);
    CU(ts_k_rope_cuda(dx, ld, dcs, dsn, S, heads, d, NULL));
    check("rope", dx, ref, S * ld, TOL);
    CU(ts_cuda_free(dpos)); CU(ts_cuda_free(dcs)); CU(ts_cuda_free(dsn));
    free(pos), free(cs), free(sn), free(x), free(ref);
}

static void test_attention(int64_t sq, int64_t skv, int heads, int d) {
    int64_t ld = (int64_t)heads * d;
    float *q = hrand(sq * ld, 1), *k = hrand(skv * ld, 1), *v = hrand(skv * ld, 1);
    float *ref = malloc(sizeof(float) * sq * ld);
    float *work = malloc(sizeof(float) * (size_t)ts_k_attention_work_floats(d));
    float scale = 1.0f / sqrtf((float)d);
    ts_k_attention_cpu(ref, q, k, v, sq, skv, heads, d, scale, work);
    float *dq = dev(q, sq * ld), *dk = dev(k, skv * ld), *dv = dev(v, skv * ld), *dout = dev(q, sq * ld);
    CU(ts_k_attention_cuda(dout, dq, dk, dv, sq, skv, heads, d, scale, NULL));
    char name[64];
    snprintf(name, sizeof name, "attention d=%d s=%lld", d, (long long)sq);
    check(name, dout, ref, sq * ld, TOL);
    CU(ts_cuda_free(dq)); CU(ts_cuda_free(dk)); CU(ts_cuda_free(dv));
    free(q), free(k), free(v), free(ref), free(work);
}

/* 2048 px: 16,896 tokens (FLUX.1-dev, degree 1). A score matrix would be
 * 16896^2 floats = 1.1 GB per head; the kernel has no workspace at all
 * (tiles in registers and shared memory): 64 query rows against every key
 * match the CPU twin, alone and as the first rows of a run over all 16,896
 * queries. */
static void test_attention_long(void) {
    const int64_t s = 16896, rows = 64;
    const int heads = 2, d = 128;
    int64_t ld = (int64_t)heads * d;
    float *q = hrand(s * ld, 1), *k = hrand(s * ld, 1), *v = hrand(s * ld, 1);
    float *ref = malloc(sizeof(float) * (size_t)(rows * ld));
    float *work = malloc(sizeof(float) * (size_t)ts_k_attention_work_floats(d));
    float scale = 1.0f / sqrtf((float)d);
    ts_k_attention_cpu(ref, q, k, v, rows, s, heads, d, scale, work);
    /* (on the CPU stand-in of make test, whose attention is the CPU twin,
     * all 16,896 queries would take minutes: 1,024 of them there) */
    char desc[256] = "";
    CU(ts_cuda_device_describe(desc, sizeof desc));
    int64_t s_q = strstr(desc, "tests/fake_cuda.c") ? 1024 : s;
    float *dq = dev(q, s * ld), *dk = dev(k, s * ld), *dv = dev(v, s * ld);
    float *dout = dev(q, rows * ld), *dall = dev(q, s_q * ld);
    CU(ts_k_attention_cuda(dout, dq, dk, dv, rows, s, heads, d, scale, NULL));
    CU(ts_k_attention_cuda(dall, dq, dk, dv, s_q, s, heads, d, scale, NULL));
    float *first = malloc(sizeof(float) * (size_t)(rows * ld));
    CU(ts_cuda_memcpy_d2h(first, dall, sizeof(float) * (size_t)(rows * ld), NULL));
    CU(ts_cuda_stream_sync(NULL));
    check("attention 16896 keys", dout, ref, rows * ld, TOL);
    float *dfirst = dev(first, rows * ld);
    check(s_q == s ? "  same rows, s_q 16896" : "  same rows, s_q 1024", dfirst, ref, rows * ld, TOL);
    CU(ts_cuda_free(dall));
    CU(ts_cuda_free(dq)); CU(ts_cuda_free(dk)); CU(ts_cuda_free(dv));
    free(q), free(k), free(v), free(ref), free(work), free(first);
}

static void test_layouts(void) {
    const int heads = 8, d = 16, degree = 4;
    const int64_t s_loc = 50, ld = heads * d + 4, n = s_loc * heads * d;
    float *x = hrand(s_loc * ld, 1), *ref = malloc(sizeof(float) * n);
    float *dx = dev(x, s_loc * ld), *dsend = dev(ref, n);
    ts_k_ulysses_pack_cpu(ref, x, ld, s_loc, heads, d, degree);
    CU(ts_k_ulysses_pack_cuda(dsend, dx, ld, s_loc, heads, d, degree, NULL));
    float *send_h = malloc(sizeof(float) * n);
    CU(ts_cuda_memcpy_d2h(send_h, dsend, sizeof(float) * n, NULL));
    CU(ts_cuda_stream_sync(NULL));
    float *dback = dev(x, s_loc * ld); /* padding columns keep x's values */
    CU(ts_k_ulysses_unpack_cuda(dback, ld, dsend, s_loc, heads, d, degree, NULL));
    check("ulysses_pack", dsend, ref, n, 0);
    check("ulysses_unpack", dback, x, s_loc * ld, 0);
    const int C = 16, H = 40, W = 24, P = 2;
    float *lat = hrand(C * H * W, 1), *tok = malloc(sizeof(float) * C * H * W);
    ts_k_patchify_cpu(tok, lat, C, H, W, P);
    float *dlat = dev(lat, C * H * W), *dtok = dev(lat, C * H * W), *dlat2 = dev(tok, C * H * W);
    CU(ts_k_patchify_cuda(dtok, dlat, C, H, W, P, NULL));
    CU(ts_k_unpatchify_cuda(dlat2, dtok, C, H, W, P, NULL));
    check("patchify", dtok, tok, C * H * W, 0);
    check("unpatchify", dlat2, lat, C * H * W, 0);
    CU(ts_cuda_free(dx)); CU(ts_cuda_free(dlat));
    free(x), free(ref), free(send_h), free(lat), free(tok);
}

static void test_gemm(void) {
    const int64_t rows = 130;
    const int in = 96, out = 200;
    float *x = hrand(rows * in, 1), *w = hrand((int64_t)out * in, 0.1f);
    float *ref = malloc(sizeof(float) * rows * out);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, out, in, 1.0f, x, in, w, in, 0.0f,
                ref, out);
    float *dx = dev(x, rows * in), *dw = dev(w, (int64_t)out * in), *dy = dev(ref, rows * out);
    uint16_t *bx = NULL, *bw = NULL;
    CU(ts_cuda_malloc((void **)&bx, sizeof(uint16_t) * rows * in));
    CU(ts_cuda_malloc((void **)&bw, sizeof(uint16_t) * out * in));
    CU(ts_k_f32_to_bf16_cuda(bx, dx, rows * in, NULL));
    CU(ts_k_f32_to_bf16_cuda(bw, dw, (int64_t)out * in, NULL));
    /* bf16 round trip stays within bf16's relative precision (2^-8) */
    float *dxr = dev(x, rows * in);
    CU(ts_k_bf16_to_f32_cuda(dxr, bx, rows * in, NULL));
    check("bf16 round trip", dxr, x, rows * in, 4e-3);
    void *h = NULL;
    CU(ts_gemm_cuda_create(&h));
    CU(ts_gemm_linear_bf16_cuda(h, dy, 0, out, bx, in, bw, rows, in, out, 0.0f, NULL));
    check("gemm bf16 -> f32", dy, ref, rows * out, 2e-2);
    CU(ts_gemm_cuda_destroy(h));
    CU(ts_cuda_free(dx)); CU(ts_cuda_free(dw)); CU(ts_cuda_free(bx)); CU(ts_cuda_free(bw));
    free(x), free(w), free(ref);
}

/* Bit-exact kernels: float32 -> bf16, seeded fills. */
static void check_u16(const char *name, uint16_t *d, const uint16_t *ref, int64_t n) {
    uint16_t *h = malloc(sizeof(uint16_t) * (size_t)n);
    CU(ts_cuda_memcpy_d2h(h, d, sizeof(uint16_t) * (size_t)n, NULL));
    CU(ts_cuda_stream_sync(NULL));
    int64_t bad = 0, first = -1;
    for (int64_t i = 0; i < n; i++)
        if (h[i] != ref[i] && bad++ == 0) first = i;
    printf("  %-4s %-22s %lld of %lld differ%s\n", bad ? "FAIL" : "ok", name, (long long)bad,
           (long long)n, bad ? "" : " (bit for bit)");
    if (bad) printf("       first at %lld: 0x%04x, want 0x%04x\n", (long long)first, h[first], ref[first]);
    failures += bad != 0;
    free(h);
    CU(ts_cuda_free(d));
}

static void test_bf16_and_seeded(void) {
    const int64_t n = 100003;
    float *x = hrand(n, 1);
    for (int64_t i = 0; i < n; i++) x[i] = ldexpf(x[i], (int)(i % 61) - 30); /* many exponents */
    x[0] = INFINITY, x[1] = -INFINITY, x[2] = 0.0f, x[3] = -0.0f, x[4] = 1e-40f, x[5] = 3.4028235e38f;
    x[6] = 1.00390625f, x[7] = 1.01171875f; /* ties */
    uint16_t *ref = malloc(sizeof(uint16_t) * (size_t)n), *db = NULL;
    ts_k_f32_to_bf16_cpu(ref, x, n);
    float *dx = dev(x, n);
    CU(ts_cuda_malloc((void **)&db, sizeof(uint16_t) * (size_t)n));
    CU(ts_k_f32_to_bf16_cuda(db, dx, n, NULL));
    check_u16("f32_to_bf16", db, ref, n);
    /* bf16 -> f32 is exact: back to x's bf16 values */
    uint16_t *db2 = NULL;
    CU(ts_cuda_malloc((void **)&db2, sizeof(uint16_t) * (size_t)n));
    CU(ts_cuda_memcpy_h2d(db2, ref, sizeof(uint16_t) * (size_t)n, NULL));
    float *back = malloc(sizeof(float) * (size_t)n);
    ts_k_bf16_to_f32_cpu(back, ref, n);
    CU(ts_k_bf16_to_f32_cuda(dx, db2, n, NULL));
    for (int64_t i = 0; i < 8; i++) back[i] = x[i] = 0; /* inf/FLT_MAX: check() takes max |ref| */
    CU(ts_cuda_memcpy_h2d(dx, back, sizeof(float) * 8, NULL));
    check("bf16_to_f32", dx, back, n, 0);
    CU(ts_cuda_free(db2));
    /* seeded fills: the GPU model's weights and conditioning */
    float *fill = malloc(sizeof(float) * (size_t)n);
    ts_k_fill_seeded_cpu(fill, n, 0x1234567890abcdefull, 0.0451f);
    ts_k_f32_to_bf16_cpu(ref, fill, n);
    CU(ts_cuda_malloc((void **)&db, sizeof(uint16_t) * (size_t)n));
    CU(ts_k_fill_seeded_bf16_cuda(db, n, 0x1234567890abcdefull, 0.0451f, NULL));
    check_u16("fill_seeded_bf16", db, ref, n);
    float *df = dev(x, n);
    CU(ts_k_fill_seeded_f32_cuda(df, n, 0x1234567890abcdefull, 0.0451f, NULL));
    check("fill_seeded_f32", df, fill, n, 0);
    ts_k_fill_seeded_cpu(fill, 1000, 99, 0.0f);
    df = dev(x, 1000);
    CU(ts_k_fill_seeded_f32_cuda(df, 1000, 99, 0.0f, NULL));
    check("fill_seeded_f32 (ones)", df, fill, 1000, 0);
    free(x), free(ref), free(back), free(fill);
}

/* The GPU step's own kernels (ts_dit_cuda_k.cu). */
static void test_dit_kernels(void) {
    /* strided bf16 staging, GELU from column 70 on: [rows, 100] of [rows, 130] into [rows, 104] */
    const int64_t rows = 257, lds = 130, ldd = 104;
    const int cols = 100, from = 70;
    float *x = hrand(rows * lds, 4);
    uint16_t *refb = malloc(sizeof(uint16_t) * (size_t)(rows * ldd)), *db = NULL;
    float *ref = malloc(sizeof(float) * (size_t)(rows * ldd)), *got = malloc(sizeof(float) * (size_t)(rows * ldd));
    memset(refb, 0, sizeof(uint16_t) * (size_t)(rows * ldd));
    for (int64_t r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) {
            float v = x[r * lds + c];
            refb[r * ldd + c] = ts_m_f32_to_bf16(c >= from ? ts_m_gelu_tanh(v) : v);
        }
    float *dx = dev(x, rows * lds);
    CU(ts_cuda_malloc((void **)&db, sizeof(uint16_t) * (size_t)(rows * ldd)));
    CU(ts_cuda_memset(db, 0, sizeof(uint16_t) * (size_t)(rows * ldd), NULL));
    CU(ts_dit_k_to_bf16_2d_cuda(db, ldd, dx, lds, rows, cols, from, NULL));
    uint16_t *hb = malloc(sizeof(uint16_t) * (size_t)(rows * ldd));
    CU(ts_cuda_memcpy_d2h(hb, db, sizeof(uint16_t) * (size_t)(rows * ldd), NULL));
    CU(ts_cuda_stream_sync(NULL));
    ts_k_bf16_to_f32_cpu(ref, refb, rows * ldd);
    ts_k_bf16_to_f32_cpu(got, hb, rows * ldd);
    double worst = 0;
    int64_t exact = 0;
    for (int64_t i = 0; i < rows * ldd; i++) {
        worst = fmax(worst, fabs((double)got[i] - ref[i]) / fmax(fabs((double)ref[i]), 1e-30));
        exact += hb[i] == refb[i];
    }
    int ok = worst <= 1.0 / 128;
    printf("  %-4s %-22s %lld of %lld bit-identical, worst %.3g relative (limit 2^-7)\n",
           ok ? "ok" : "FAIL", "to_bf16_2d + GELU", (long long)exact, (long long)(rows * ldd), worst);
    failures += !ok;
    CU(ts_cuda_free(db));
    CU(ts_cuda_free(dx));
    free(hb), free(refb), free(ref), free(got), free(x);

    /* QK RMS norm in place on q and k columns of a [rows, 3 * heads * d + 5] buffer */
    const int heads = 6, d = 64;
    const int64_t ld = 3 * heads * d + 5, n = 41;
    float *q = hrand(n * ld, 2), *w = hrand(d, 1), *r2 = hcopy(q, n * ld);
    float *tmp = malloc(sizeof(float) * (size_t)d);
    for (int64_t r = 0; r < n; r++)
        for (int h = 0; h < heads; h++) {
            float *p = r2 + r * ld + (int64_t)h * d;
            ts_k_rmsnorm_cpu(tmp, p, w, 1, d, 1e-6f);
            memcpy(p, tmp, sizeof(float) * (size_t)d);
        }
    float *dq = dev(q, n * ld), *dw = dev(w, d);
    CU(ts_dit_k_qk_rmsnorm_cuda(dq, ld, dw, n, heads, d, 1e-6f, NULL));
    check("qk_rmsnorm (strided)", dq, r2, n * ld, TOL);
    CU(ts_cuda_free(dw));
    free(q), free(w), free(r2), free(tmp);
}

/* bf16 GEMM output and beta accumulation (the embedders add into vec). */
static void test_gemm_beta(void) {
    const int64_t rows = 3;
    const int in = 256, out = 3072;
    float *x = hrand(rows * in, 1), *w = hrand((int64_t)out * in, 0.1f), *y0 = hrand(rows * out, 1);
    uint16_t *xb = malloc(sizeof(uint16_t) * (size_t)(rows * in)), *wb = malloc(sizeof(uint16_t) * (size_t)out * in);
    ts_k_f32_to_bf16_cpu(xb, x, rows * in);
    ts_k_f32_to_bf16_cpu(wb, w, (int64_t)out * in);
    float *xr = malloc(sizeof(float) * (size_t)(rows * in)), *wr = malloc(sizeof(float) * (size_t)out * in);
    ts_k_bf16_to_f32_cpu(xr, xb, rows * in);
    ts_k_bf16_to_f32_cpu(wr, wb, (int64_t)out * in);
    float *ref = hcopy(y0, rows * out);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, out, in, 1.0f, xr, in, wr, in, 1.0f,
                ref, out);
    void *h = NULL;
    uint16_t *dxb = dup_to_dev(xb, sizeof(uint16_t) * (size_t)(rows * in));
    uint16_t *dwb = dup_to_dev(wb, sizeof(uint16_t) * (size_t)out * in);
    float *dy = dev(y0, rows * out);
    CU(ts_gemm_cuda_create(&h));
    CU(ts_gemm_linear_bf16_cuda(h, dy, 0, out, dxb, in, dwb, rows, in, out, 1.0f, NULL));
    check("gemm bf16, beta 1", dy, ref, rows * out, 1e-4); /* same rounded inputs: fp32 order only */
    CU(ts_gemm_cuda_destroy(h));
    CU(ts_cuda_free(dxb));
    CU(ts_cuda_free(dwb));
    free(x), free(w), free(y0), free(xb), free(wb), free(xr), free(wr), free(ref);
}

/* Seeded device weights: what ts_dit_weights_from_seed gives, as bf16. */
static void test_seeded_model(void) {
    TsErr err;
    TsDitConfig cfg;
    TsDit m;
    TsDitCuda dm;
    if (ts_dit_config_preset("tiny", &cfg, &err) || ts_dit_init(&m, &cfg, &err) ||
        ts_dit_weights_from_seed(&m, 5, &err) || ts_dit_cuda_init_seeded(&dm, &m, 5, &err)) {
        printf("  FAIL seeded model: %s\n", err.msg);
        failures++;
        return;
    }
    uint16_t *ref = malloc(sizeof(uint16_t) * (size_t)m.n_params), *cp = NULL;
    ts_k_f32_to_bf16_cpu(ref, m.arena, m.n_params);
    CU(ts_cuda_malloc((void **)&cp, sizeof(uint16_t) * (size_t)m.n_params));
    CU(ts_cuda_memcpy_d2d(cp, dm.w_bf16, sizeof(uint16_t) * (size_t)m.n_params, NULL));
    check_u16("seeded model (tiny)", cp, ref, m.n_params);
    ts_dit_cuda_free(&dm);
    ts_dit_free(&m);
    free(ref);
}

int main(void) {
    int count = 0;
    int err = ts_cuda_device_count(&count);
    if (err != 0 || count == 0) {
        printf("skip: no CUDA device (%s)\n", ts_cuda_error_string(err));
        return 0;
    }
    printf("gpu_test_kernels: %d CUDA device(s)\n", count);
    test_norms();
    test_elementwise();
    test_rope();
    test_attention(1, 1, 1, 64);
    test_attention(200, 150, 2, 64);
    test_attention(300, 300, 3, 128);
    test_attention(70, 65, 1, 256);
    test_attention_long();
    test_layouts();
    test_gemm();
    test_gemm_beta();
    test_bf16_and_seeded();
    test_dit_kernels();
    test_seeded_model();
    printf("%s: %d failure(s)\n", failures ? "FAIL" : "ok", failures);
    return failures ? 1 : 0;
}
