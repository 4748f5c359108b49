/* test_kernels.c - every CPU twin of kernels/ts_kernels.h against a naive
 * reference (double precision where it matters) on random inputs. */
#include "ts_test.h"

#include <math.h>

#include "ts_kernels.h"

/* xorshift64*: reproducible inputs without touching global state */
static uint64_t rng_state = 88172645463325252ull;
static float rnd(void) { /* uniform [-1, 1) */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    uint64_t r = rng_state * 2685821657736338717ull;
    return (float)((double)(r >> 40) / 8388608.0 - 1.0);
}

static float *rand_buf(int64_t n, float amp) {
    float *p = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    for (int64_t i = 0; i < n; i++) p[i] = amp * rnd();
    return p;
}

static double max_abs_diff(const float *a, const float *b, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - b[i]));
    return m;
}

/* ---------------------------------------------------------------- norms */

static void test_layernorm(void **state) {
    (void)state;
    const int64_t rows = 7;
    const int cols = 48;
    float *x = rand_buf(rows * cols, 3.0f), *w = rand_buf(cols, 1.0f), *b = rand_buf(cols, 1.0f);
    for (int64_t i = 0; i < rows * cols; i++) x[i] += 5.0f; /* a mean far from 0 */
    float *out = malloc(sizeof(float) * rows * cols), *out2 = malloc(sizeof(float) * rows * cols);
    ts_k_layernorm_cpu(out, x, w, b, rows, cols, 1e-6f);
    ts_k_layernorm_cpu(out2, x, NULL, NULL, rows, cols, 1e-6f);
    for (int64_t r = 0; r < rows; r++) {
        double mean = 0, var = 0;
        for (int c = 0; c < cols; c++) mean += x[r * cols + c];
        mean /= cols;
        for (int c = 0; c < cols; c++) var += pow(x[r * cols + c] - mean, 2);
        var /= cols;
        double m2 = 0, v2 = 0;
        for (int c = 0; c < cols; c++) {
            double ref = (x[r * cols + c] - mean) / sqrt(var + 1e-6);
            assert_true(fabs(out2[r * cols + c] - ref) < 1e-5);
            assert_true(fabs(out[r * cols + c] - (ref * w[c] + b[c])) < 1e-5);
            m2 += out2[r * cols + c];
            v2 += pow(out2[r * cols + c], 2);
        }
        assert_true(fabs(m2 / cols) < 1e-5);
        assert_true(fabs(v2 / cols - 1.0) < 1e-4);
    }
    /* in place */
    ts_k_layernorm_cpu(x, x, NULL, NULL, rows, cols, 1e-6f);
    assert_true(max_abs_diff(x, out2, rows * cols) == 0);
    free(x), free(w), free(b), free(out), free(out2);
}

static void test_rmsnorm(void **state) {
    (void)state;
    const int64_t rows = 5;
    const int cols = 16;
    float *x = rand_buf(rows * cols, 2.0f), *w = rand_buf(cols, 1.0f);
    float *out = malloc(sizeof(float) * rows * cols);
    ts_k_rmsnorm_cpu(out, x, w, rows, cols, 1e-6f);
    for (int64_t r = 0; r < rows; r++) {
        double sq = 0;
        for (int c = 0; c < cols; c++) sq += pow(x[r * cols + c], 2);
        double rs = 1.0 / sqrt(sq / cols + 1e-6);
        for (int c = 0; c < cols; c++)
            assert_true(fabs(out[r * cols + c] - x[r * cols + c] * rs * w[c]) < 1e-5);
    }
    free(x), free(w), free(out);
}

static void test_modulate_residual_bias(void **state) {
    (void)state;
    const int64_t rows = 4;
    const int cols = 10;
    float *x = rand_buf(rows * cols, 1), *sh = rand_buf(cols, 1), *sc = rand_buf(cols, 1);
    float *out = malloc(sizeof(float) * rows * cols);
    ts_k_adaln_modulate_cpu(out, x, sh, sc, rows, cols);
    for (int64_t r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++)
            assert_true(fabsf(out[r * cols + c] - (x[r * cols + c] * (1 + sc[c]) + sh[c])) < 1e-6f);
    /* gated residual with strides: only the first cols of each row change */
    const int ld = 13;
    float *xs = rand_buf(rows * ld, 1), *ys = rand_buf(rows * ld, 1), *g = rand_buf(cols, 1);
    float *x0 = malloc(sizeof(float) * rows * ld);
    memcpy(x0, xs, sizeof(float) * rows * ld);
    ts_k_gated_residual_cpu(xs, ld, ys, ld, g, rows, cols);
    for (int64_t r = 0; r < rows; r++)
        for (int c = 0; c < ld; c++) {
            float want = c < cols ? x0[r * ld + c] + g[c] * ys[r * ld + c] : x0[r * ld + c];
            assert_true(fabsf(xs[r * ld + c] - want) < 1e-6f);
        }
    memcpy(xs, x0, sizeof(float) * rows * ld);
    ts_k_bias_add_cpu(xs, ld, g, rows, cols);
    for (int64_t r = 0; r < rows; r++)
        for (int c = 0; c < ld; c++)
            assert_true(xs[r * ld + c] == (c < cols ? x0[r * ld + c] + g[c] : x0[r * ld + c]));
    free(x), free(sh), free(sc), free(out), free(xs), free(ys), free(g), free(x0);
}

/* ---------------------------------------------------------------- activations */

static void test_activations(void **state) {
    (void)state;
    float x[5] = {-3.0f, -1.0f, 0.0f, 1.0f, 2.5f}, y[5];
    ts_k_gelu_tanh_cpu(y, x, 5);
    for (int i = 0; i < 5; i++) {
        double ref = 0.5 * x[i] * (1 + tanh(sqrt(2 / 3.14159265358979323846) * (x[i] + 0.044715 * pow(x[i], 3))));
        assert_true(fabs(y[i] - ref) < 1e-6);
    }
    assert_true(fabsf(y[3] - 0.8411920f) < 1e-6f); /* torch gelu(1, approximate="tanh") */
    ts_k_silu_cpu(y, x, 5);
    for (int i = 0; i < 5; i++) assert_true(fabs(y[i] - x[i] / (1 + exp(-x[i]))) < 1e-6);
    assert_true(fabsf(y[3] - 0.7310586f) < 1e-6f);
}

static void test_softmax(void **state) {
    (void)state;
    const int64_t rows = 3;
    const int cols = 70;
    float *x = rand_buf(rows * cols, 40.0f); /* large logits: needs the max subtraction */
    float *ref = malloc(sizeof(float) * rows * cols);
    for (int64_t r = 0; r < rows; r++) {
        double mx = -INFINITY, sum = 0;
        for (int c = 0; c < cols; c++) mx = fmax(mx, x[r * cols + c]);
        for (int c = 0; c < cols; c++) sum += exp(x[r * cols + c] - mx);
        for (int c = 0; c < cols; c++) ref[r * cols + c] = (float)(exp(x[r * cols + c] - mx) / sum);
    }
    ts_k_softmax_cpu(x, rows, cols);
    assert_true(max_abs_diff(x, ref, rows * cols) < 1e-6);
    for (int64_t r = 0; r < rows; r++) {
        double s = 0;
        for (int c = 0; c < cols; c++) s += x[r * cols + c];
        assert_true(fabs(s - 1) < 1e-5);
    }
    free(x), free(ref);
}

/* ---------------------------------------------------------------- attention */

/* naive: materialise the whole score row in double */
static void attention_ref(float *out, const float *q, const float *k, const float *v, int64_t sq,
                          int64_t skv, int heads, int d, double scale) {
    int64_t ld = (int64_t)heads * d;
    double *s = malloc(sizeof(double) * (size_t)skv);
    for (int h = 0; h < heads; h++)
        for (int64_t i = 0; i < sq; i++) {
            double mx = -INFINITY, sum = 0;
            for (int64_t j = 0; j < skv; j++) {
                double dot = 0;
                for (int e = 0; e < d; e++) dot += (double)q[i * ld + h * d + e] * k[j * ld + h * d + e];
                s[j] = dot * scale;
                mx = fmax(mx, s[j]);
            }
            for (int64_t j = 0; j < skv; j++) sum += (s[j] = exp(s[j] - mx));
            for (int e = 0; e < d; e++) {
                double o = 0;
                for (int64_t j = 0; j < skv; j++) o += s[j] * v[j * ld + h * d + e];
                out[i * ld + h * d + e] = (float)(o / sum);
            }
        }
    free(s);
}

static void check_attention(int64_t sq, int64_t skv, int64_t skv_buf, int heads, int d, float qamp) {
    int64_t ld = (int64_t)heads * d;
    float *q = rand_buf(sq * ld, qamp), *k = rand_buf(skv_buf * ld, 1), *v = rand_buf(skv_buf * ld, 1);
    float *out = malloc(sizeof(float) * sq * ld), *ref = malloc(sizeof(float) * sq * ld);
    float *work = malloc(sizeof(float) * (size_t)ts_k_attention_work_floats(d));
    float scale = 1.0f / sqrtf((float)d);
    ts_k_attention_cpu(out, q, k, v, sq, skv, heads, d, scale, work);
    attention_ref(ref, q, k, v, sq, skv, heads, d, scale);
    double e = max_abs_diff(out, ref, sq * ld);
    if (!(e < 1e-5))
        fail_msg("attention sq=%lld skv=%lld heads=%d d=%d: max abs err %.3g", (long long)sq,
                 (long long)skv, heads, d, e);
    free(q), free(k), free(v), free(out), free(ref), free(work);
}

static void test_attention_vs_naive(void **state) {
    (void)state;
    check_attention(1, 1, 1, 1, 8, 1.0f);
    check_attention(64, 64, 64, 2, 16, 1.0f);    /* exactly one tile */
    check_attention(100, 100, 100, 3, 16, 1.0f); /* partial tiles */
    check_attention(200, 150, 150, 2, 32, 1.0f); /* s_q != s_kv, several tiles */
    check_attention(130, 97, 130, 2, 16, 1.0f);  /* padded keys beyond s_kv are ignored */
    check_attention(150, 150, 150, 2, 16, 8.0f); /* peaked scores: online rescaling matters */
}

static void test_attention_memory_bounded(void **state) {
    (void)state;
    /* the scratch does not depend on the sequence: a tile, not S^2 */
    int64_t w128 = ts_k_attention_work_floats(128);
    assert_true(w128 == (int64_t)TS_K_ATTN_QBLOCK * (TS_K_ATTN_KTILE + 128 + 2));
    assert_true(w128 * 4 < 64 * 1024); /* < 64 KiB even for head_dim 128 */
    /* and a long sequence runs with it: 4096 keys, one head, against the reference on a few rows */
    const int64_t s = 4096;
    const int d = 8;
    float *q = rand_buf(s * d, 1), *k = rand_buf(s * d, 1), *v = rand_buf(s * d, 1);
    float *out = malloc(sizeof(float) * s * d), *ref = malloc(sizeof(float) * 3 * d);
    float *work = malloc(sizeof(float) * (size_t)ts_k_attention_work_floats(d));
    ts_k_attention_cpu(out, q, k, v, s, s, 1, d, 0.35f, work);
    int64_t rows[3] = {0, 2049, 4095};
    for (int i = 0; i < 3; i++) {
        attention_ref(ref, q + rows[i] * d, k, v, 1, s, 1, d, 0.35);
        assert_true(max_abs_diff(out + rows[i] * d, ref, d) < 1e-5);
    }
    free(q), free(k), free(v), free(out), free(ref), free(work);
}

/* ---------------------------------------------------------------- RoPE */

static void test_rope(void **state) {
    (void)state;
    const int heads = 2, d = 16, n_axes = 3;
    const int axes[3] = {4, 6, 6};
    const int64_t S = 6;
    float pos[6 * 3] = {0, 0, 0, 0, 3, 5, 0, 1, 1, 0, 7, 2, 0, 12, 31, 0, 0, 0};
    float cs[6 * 8], sn[6 * 8];
    ts_k_rope_table_cpu(cs, sn, pos, S, n_axes, axes, 10000.0f);
    /* pair 0 of axis 1 (pair index 2 overall) rotates by the row position */
    assert_true(fabsf(cs[1 * 8 + 2] - cosf(3.0f)) < 1e-6f && fabsf(sn[1 * 8 + 2] - sinf(3.0f)) < 1e-6f);
    /* pair 1 of axis 2 (index 2 + 3 + 1 = 6): 5 * 10000^(-2/6) */
    double ang = 5.0 * pow(10000.0, -2.0 / 6.0);
    assert_true(fabs(cs[1 * 8 + 6] - cos(ang)) < 1e-6 && fabs(sn[1 * 8 + 6] - sin(ang)) < 1e-6);

    const int ld = heads * d + 5; /* strided rows */
    float *x = rand_buf(S * ld, 1), *x0 = malloc(sizeof(float) * S * ld);
    memcpy(x0, x, sizeof(float) * S * ld);
    ts_k_rope_cpu(x, ld, cs, sn, S, heads, d);
    for (int64_t s = 0; s < S; s++)
        for (int h = 0; h < heads; h++)
            for (int i = 0; i < d / 2; i++) { /* every pair keeps its norm */
                const float *a = x0 + s * ld + h * d + 2 * i, *b = x + s * ld + h * d + 2 * i;
                assert_true(fabsf(hypotf(a[0], a[1]) - hypotf(b[0], b[1])) < 1e-5f);
            }
    /* position 0 (text tokens) is the identity; columns past heads*d untouched */
    assert_true(memcmp(x, x0, sizeof(float) * heads * d) == 0);
    assert_true(memcmp(x + 5 * ld, x0 + 5 * ld, sizeof(float) * heads * d) == 0);
    for (int64_t s = 0; s < S; s++) assert_true(memcmp(x + s * ld + heads * d, x0 + s * ld + heads * d, 5 * sizeof(float)) == 0);
    /* and a non-zero position really rotates */
    assert_true(max_abs_diff(x + ld, x0 + ld, heads * d) > 1e-3);

    /* relative property: <rope(q, p), rope(k, p')> depends only on p - p' */
    float qv[16], kv[16];
    for (int i = 0; i < 16; i++) qv[i] = rnd(), kv[i] = rnd();
    float p2[4 * 3] = {0, 2, 3, 0, 0, 1, 0, 7, 9, 0, 5, 7};
    float c2[4 * 8], s2[4 * 8];
    ts_k_rope_table_cpu(c2, s2, p2, 4, n_axes, axes, 10000.0f);
    float qa[16], ka[16], qb[16], kb[16];
    memcpy(qa, qv, sizeof qa), memcpy(ka, kv, sizeof ka), memcpy(qb, qv, sizeof qb), memcpy(kb, kv, sizeof kb);
    ts_k_rope_cpu(qa, 16, c2 + 0 * 8, s2 + 0 * 8, 1, 1, 16); /* (2,3) */
    ts_k_rope_cpu(ka, 16, c2 + 1 * 8, s2 + 1 * 8, 1, 1, 16); /* (0,1): delta (2,2) */
    ts_k_rope_cpu(qb, 16, c2 + 2 * 8, s2 + 2 * 8, 1, 1, 16); /* (7,9) */
    ts_k_rope_cpu(kb, 16, c2 + 3 * 8, s2 + 3 * 8, 1, 1, 16); /* (5,7): delta (2,2) */
    double da = 0, db = 0;
    for (int i = 0; i < 16; i++) da += qa[i] * ka[i], db += qb[i] * kb[i];
    assert_true(fabs(da - db) < 1e-4);
    free(x), free(x0);
}

/* ---------------------------------------------------------------- Ulysses */

static void test_ulysses_round_trip(void **state) {
    (void)state;
    const int heads = 8, d = 4, degree = 4;
    const int64_t s_loc = 5, ld = heads * d + 3;
    float *x = rand_buf(s_loc * ld, 1), *send = malloc(sizeof(float) * s_loc * heads * d);
    float *back = calloc((size_t)(s_loc * ld), sizeof(float));
    ts_k_ulysses_pack_cpu(send, x, ld, s_loc, heads, d, degree);
    int hpr = heads / degree;
    for (int p = 0; p < degree; p++) /* block p holds heads p*hpr.. of every token */
        for (int64_t s = 0; s < s_loc; s++)
            for (int j = 0; j < hpr; j++)
                for (int e = 0; e < d; e++)
                    assert_true(send[((p * s_loc + s) * hpr + j) * d + e] == x[s * ld + (p * hpr + j) * d + e]);
    ts_k_ulysses_unpack_cpu(back, ld, send, s_loc, heads, d, degree);
    for (int64_t s = 0; s < s_loc; s++)
        assert_true(memcmp(back + s * ld, x + s * ld, sizeof(float) * heads * d) == 0);
    free(x), free(send), free(back);
}

/* The layout contract with the all-to-all: k ranks pack, blocks are
 * exchanged (recv[r][p] = send[p][r]), and rank r then holds [S, H/k, D],
 * all tokens in global order with its heads. */
static void test_ulysses_alltoall_layout(void **state) {
    (void)state;
    enum { K = 4, HEADS = 8, D = 3, SLOC = 6 };
    const int64_t S = K * SLOC, hpr = HEADS / K, blk = SLOC * hpr * D;
    float *xg = rand_buf(S * HEADS * D, 1); /* the global [S, H, D] */
    float *send = malloc(sizeof(float) * K * SLOC * HEADS * D), *recv = malloc(sizeof(float) * K * K * blk);
    for (int p = 0; p < K; p++)
        ts_k_ulysses_pack_cpu(send + p * K * blk, xg + p * SLOC * HEADS * D, HEADS * D, SLOC, HEADS, D, K);
    for (int r = 0; r < K; r++)
        for (int p = 0; p < K; p++)
            memcpy(recv + (r * K + p) * blk, send + (p * K + r) * blk, sizeof(float) * blk);
    for (int r = 0; r < K; r++)
        for (int64_t s = 0; s < S; s++)
            for (int j = 0; j < hpr; j++)
                for (int e = 0; e < D; e++)
                    assert_true(recv[r * K * blk + (s * hpr + j) * D + e] == xg[(s * HEADS + r * hpr + j) * D + e]);
    /* and back: each rank's [S, hpr, D] goes out by token range, unpack restores the rows */
    float *send2 = malloc(sizeof(float) * K * K * blk), *xb = malloc(sizeof(float) * S * HEADS * D);
    for (int p = 0; p < K; p++)
        for (int r = 0; r < K; r++)
            memcpy(send2 + (p * K + r) * blk, recv + (r * K + p) * blk, sizeof(float) * blk);
    for (int p = 0; p < K; p++)
        ts_k_ulysses_unpack_cpu(xb + p * SLOC * HEADS * D, HEADS * D, send2 + p * K * blk, SLOC, HEADS, D, K);
    assert_true(memcmp(xb, xg, sizeof(float) * S * HEADS * D) == 0);
    free(xg), free(send), free(recv), free(send2), free(xb);
}

/* ---------------------------------------------------------------- misc */

static void test_euler(void **state) {
    (void)state;
    float x[4] = {1, -2, 3, 0.5f}, v[4] = {2, 2, -1, 0};
    ts_k_euler_update_cpu(x, v, 4, 1.0f, 0.75f); /* dt = -0.25 */
    float want[4] = {0.5f, -2.5f, 3.25f, 0.5f};
    for (int i = 0; i < 4; i++) assert_true(fabsf(x[i] - want[i]) < 1e-7f);
    /* steps from t=1 to t=0 with constant v give x - v */
    float y[1] = {3}, w[1] = {1.5f};
    for (int i = 0; i < 28; i++) ts_k_euler_update_cpu(y, w, 1, 1 - i / 28.0f, 1 - (i + 1) / 28.0f);
    assert_true(fabsf(y[0] - 1.5f) < 1e-5f);
}

static void test_timestep_embedding(void **state) {
    (void)state;
    float e[8];
    ts_k_timestep_embedding_cpu(e, 0.0f, 8, 10000.0f);
    for (int i = 0; i < 4; i++) assert_true(e[i] == 1.0f && e[4 + i] == 0.0f);
    ts_k_timestep_embedding_cpu(e, 500.0f, 8, 10000.0f);
    for (int i = 0; i < 4; i++) {
        double f = exp(-log(10000.0) * i / 4.0);
        assert_true(fabs(e[i] - cos(500.0 * f)) < 2e-4 && fabs(e[4 + i] - sin(500.0 * f)) < 2e-4);
    }
}

static void test_patchify(void **state) {
    (void)state;
    const int C = 3, H = 6, W = 4, P = 2;
    float *lat = rand_buf(C * H * W, 1), *tok = malloc(sizeof(float) * C * H * W);
    float *back = calloc((size_t)(C * H * W), sizeof(float));
    ts_k_patchify_cpu(tok, lat, C, H, W, P);
    /* token (py=1, px=1) = 1*2+1 = 3, feature c=2, dy=1, dx=0 -> 2*4+2 = 10 */
    assert_true(tok[3 * (C * P * P) + 10] == lat[(2 * H + (1 * P + 1)) * W + (1 * P + 0)]);
    ts_k_unpatchify_cpu(back, tok, C, H, W, P);
    assert_true(memcmp(back, lat, sizeof(float) * C * H * W) == 0);
    free(lat), free(tok), free(back);
}

/* ---------------------------------------------------------------- bf16, seeded fill */

/* The bf16 nearest to x by brute force over the two candidates, ties to even. */
static uint16_t bf16_ref(float x) {
    union {
        float f;
        uint32_t u;
    } v = {.f = x};
    uint16_t lo = (uint16_t)(v.u >> 16), hi = (uint16_t)(lo + 1);
    double dlo = fabs((double)ts_m_bf16_to_f32(lo) - x), dhi = fabs((double)ts_m_bf16_to_f32(hi) - x);
    if ((v.u & 0xffffu) == 0) return lo;
    if (dlo < dhi) return lo;
    if (dhi < dlo) return hi;
    return (lo & 1u) ? hi : lo;
}

static void test_bf16(void **state) {
    (void)state;
    const struct {
        float x;
        uint16_t want;
    } cases[] = {
        {1.0f, 0x3f80},          {1.00390625f, 0x3f80} /* tie -> even */,
        {1.01171875f, 0x3f82} /* tie -> even (up) */, {1.0078125f, 0x3f81},
        {-2.5f, 0xc020},         {0.0f, 0x0000},        {-0.0f, 0x8000},
        {INFINITY, 0x7f80},      {-INFINITY, 0xff80},   {3.4028235e38f, 0x7f80} /* FLT_MAX rounds up */,
        {1e-40f, 0x0001} /* subnormal */,
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        uint16_t got = 0;
        ts_k_f32_to_bf16_cpu(&got, &cases[i].x, 1);
        if (got != cases[i].want) fail_msg("bf16(%g) = 0x%04x, want 0x%04x", cases[i].x, got, cases[i].want);
    }
    float nan = NAN;
    uint16_t b = 0;
    ts_k_f32_to_bf16_cpu(&b, &nan, 1);
    assert_true(isnan(ts_m_bf16_to_f32(b)));
    /* every bf16 survives the round trip; random floats round to the nearest */
    for (uint32_t u = 0; u < 65536; u++) {
        float f = ts_m_bf16_to_f32((uint16_t)u);
        if (isnan(f)) continue;
        uint16_t back;
        ts_k_f32_to_bf16_cpu(&back, &f, 1);
        assert_int_equal(back, u);
    }
    float *x = rand_buf(10000, 100.0f), *y = malloc(sizeof(float) * 10000);
    uint16_t *bx = malloc(sizeof(uint16_t) * 10000);
    ts_k_f32_to_bf16_cpu(bx, x, 10000);
    ts_k_bf16_to_f32_cpu(y, bx, 10000);
    for (int i = 0; i < 10000; i++) {
        assert_int_equal(bx[i], bf16_ref(x[i]));
        assert_true(fabs((double)y[i] - x[i]) <= fabs((double)x[i]) / 256.0); /* 2^-8 relative */
    }
    free(x), free(y), free(bx);
}

static void test_fill_seeded(void **state) {
    (void)state;
    float a[1000], b[600], ones[10];
    ts_k_fill_seeded_cpu(a, 1000, 42, 0.5f);
    ts_k_fill_seeded_cpu(b, 600, 42, 0.5f);
    assert_memory_equal(a, b, sizeof b); /* element j depends on j only, not on n */
    double mean = 0, sq = 0;
    for (int j = 0; j < 1000; j++) {
        assert_true(a[j] >= -0.5f && a[j] < 0.5f);
        mean += a[j];
        sq += (double)a[j] * a[j];
    }
    mean /= 1000, sq /= 1000;
    assert_true(fabs(mean) < 0.03);
    assert_true(fabs(sq - 0.25 / 3) < 0.01); /* uniform on [-0.5, 0.5): variance 1/12 */
    ts_k_fill_seeded_cpu(b, 600, 43, 0.5f);
    int differ = 0;
    for (int j = 0; j < 600; j++) differ += a[j] != b[j];
    assert_true(differ > 590); /* another key, other values */
    ts_k_fill_seeded_cpu(ones, 10, 42, 0.0f);
    for (int j = 0; j < 10; j++) assert_true(ones[j] == 1.0f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layernorm),
        cmocka_unit_test(test_rmsnorm),
        cmocka_unit_test(test_modulate_residual_bias),
        cmocka_unit_test(test_activations),
        cmocka_unit_test(test_softmax),
        cmocka_unit_test(test_attention_vs_naive),
        cmocka_unit_test(test_attention_memory_bounded),
        cmocka_unit_test(test_rope),
        cmocka_unit_test(test_ulysses_round_trip),
        cmocka_unit_test(test_ulysses_alltoall_layout),
        cmocka_unit_test(test_euler),
        cmocka_unit_test(test_timestep_embedding),
        cmocka_unit_test(test_patchify),
        cmocka_unit_test(test_bf16),
        cmocka_unit_test(test_fill_seeded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
