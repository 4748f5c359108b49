/* ts_kernels_math.h - the per-element arithmetic of the DiT kernels, shared by
 * the CPU twins (ts_kernels_cpu.c, C11) and the CUDA kernels (ts_kernels.cu),
 * so that both backends compute the same formula and differ only in storage
 * precision and reduction order (llm.c style).
 *
 * Plain C; under nvcc every function is __host__ __device__ via TS_HD. No
 * includes beyond <math.h>: float functions only (expf, tanhf, ...), which
 * exist on both sides. */
#ifndef TS_KERNELS_MATH_H
#define TS_KERNELS_MATH_H

#include <math.h>
#include <stdint.h>

#ifdef __CUDACC__
#define TS_HD __host__ __device__
#else
#define TS_HD
#endif

/* Tiles of the CPU fused attention: the score tile is [TS_K_ATTN_QBLOCK,
 * TS_K_ATTN_KTILE] whatever the sequence length. (The CUDA kernel streams 32
 * keys at a time through shared memory, one query row per thread.) */
#define TS_K_ATTN_KTILE 64
#define TS_K_ATTN_QBLOCK 64
/* Largest head dimension the CUDA attention kernel holds in registers. */
#define TS_K_ATTN_MAX_HEAD_DIM 256

/* GELU, tanh approximation (FLUX/SD3 MLPs use approximate="tanh"). */
static inline TS_HD float ts_m_gelu_tanh(float x) {
    const float k0 = 0.7978845608028654f; /* sqrt(2/pi) */
    const float k1 = 0.044715f;
    return 0.5f * x * (1.0f + tanhf(k0 * (x + k1 * x * x * x)));
}

static inline TS_HD float ts_m_silu(float x) { return x / (1.0f + expf(-x)); }

/* adaLN: x * (1 + scale) + shift. */
static inline TS_HD float ts_m_modulate(float x, float shift, float scale) {
    return x * (1.0f + scale) + shift;
}

/* Normalised value of layer norm / RMS norm given the row statistics. */
static inline TS_HD float ts_m_norm(float x, float mean, float rstd) { return (x - mean) * rstd; }

static inline TS_HD float ts_m_rstd(float var, float eps) { return 1.0f / sqrtf(var + eps); }

/* Rotate the pair (x0, x1) by an angle given as (cos, sin). */
static inline TS_HD void ts_m_rope_pair(float x0, float x1, float c, float s, float *y0, float *y1) {
    *y0 = x0 * c - x1 * s;
    *y1 = x0 * s + x1 * c;
}

/* Angle of pair i (0 <= i < axis_dim/2) of one RoPE axis at position pos:
 * pos * theta^(-2i/axis_dim), as in FLUX's rope(). Computed in double on the
 * host (the table is built once per resolution). */
static inline TS_HD double ts_m_rope_angle(double pos, int i, int axis_dim, double theta) {
    return pos * pow(theta, -2.0 * (double)i / (double)axis_dim);
}

/* Flow-matching Euler step: x_{t_next} = x_t + (t_next - t) * v. */
static inline TS_HD float ts_m_euler(float x, float v, float dt) { return x + dt * v; }

/* Gated residual: x + gate * y. */
static inline TS_HD float ts_m_gated_add(float x, float gate, float y) { return x + gate * y; }

/* Online softmax (flash attention): fold a tile whose maximum is tile_max into
 * the running maximum *m; returns the factor by which the running sum and
 * accumulator must be rescaled. -INFINITY start is handled (exp(-inf) = 0). */
static inline TS_HD float ts_m_online_rescale(float *m, float tile_max) {
    float m_new = *m > tile_max ? *m : tile_max;
    float corr = (*m == -INFINITY) ? 0.0f : expf(*m - m_new);
    *m = m_new;
    return corr;
}

/* Sinusoidal timestep embedding, FLUX order [cos(t f_0..), sin(t f_0..)] with
 * f_i = exp(-ln(max_period) i / half). Element j of a dim-wide vector. */
static inline TS_HD float ts_m_timestep_embedding(float t, int j, int dim, float max_period) {
    int half = dim / 2;
    if (j >= 2 * half) return 0.0f; /* odd dim: zero pad */
    int i = j < half ? j : j - half;
    float freq = expf(-logf(max_period) * (float)i / (float)half);
    float arg = t * freq;
    return j < half ? cosf(arg) : sinf(arg);
}

/* Ulysses layout. x: [s_loc, H, D] local tokens, all heads. Send block p
 * (to rank p) is [s_loc, H/k, D]: the heads p*H/k .. (p+1)*H/k-1. Given an
 * element (p, s, j, d) of the send buffers, the column of x it comes from. */
static inline TS_HD int64_t ts_m_ulysses_col(int p, int j, int d, int heads_per_rank, int head_dim) {
    return ((int64_t)p * heads_per_rank + j) * head_dim + d;
}

/* Patchify: latent [C, Hl, Wl] (channel-major) -> tokens [(Hl/P)(Wl/P), C*P*P]
 * with token = py*(Wl/P)+px and feature = c*P*P + dy*P + dx (FLUX's
 * "c (h ph) (w pw) -> (h w) (c ph pw)"). Latent index of (token, feature). */
static inline TS_HD int64_t ts_m_patch_src(int64_t token, int64_t feature, int lat_h, int lat_w,
                                           int patch) {
    int64_t wp = lat_w / patch;
    int64_t py = token / wp, px = token % wp;
    int64_t pp = (int64_t)patch * patch;
    int64_t c = feature / pp, r = feature % pp;
    int64_t dy = r / patch, dx = r % patch;
    return (c * lat_h + (py * patch + dy)) * lat_w + (px * patch + dx);
}

/* ---- seeded values (weights, conditioning): a counter-based generator, so
 * every element is a pure function of (key, index) on the CPU and the GPU
 * alike (ts_dit_weights_from_seed, ts_k_fill_seeded_*). */

/* splitmix64 finaliser. */
static inline TS_HD uint64_t ts_m_mix64(uint64_t z) {
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform in [-1, 1) with 24 random bits (exact in float and double). */
static inline TS_HD float ts_m_hash_uniform(uint64_t key, uint64_t j) {
    uint64_t h = ts_m_mix64(key ^ ts_m_mix64(j));
    return (float)((double)(h >> 40) * (1.0 / 8388608.0) - 1.0);
}

/* Element j of a seeded tensor: amp * U[-1, 1), or 1 when amp == 0 (norm
 * scales). One float multiply: bit-identical on both sides. */
static inline TS_HD float ts_m_seeded(uint64_t key, float amp, uint64_t j) {
    return amp == 0.0f ? 1.0f : amp * ts_m_hash_uniform(key, j);
}

/* ---- bf16 (the upper 16 bits of a float32), round to nearest even like
 * __float2bfloat16_rn; NaN stays a (quiet) NaN. */
static inline TS_HD uint16_t ts_m_f32_to_bf16(float x) {
    union {
        float f;
        uint32_t u;
    } v;
    v.f = x;
    if ((v.u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((v.u >> 16) | 0x40u);
    uint32_t lsb = (v.u >> 16) & 1u;
    return (uint16_t)((v.u + 0x7fffu + lsb) >> 16);
}

static inline TS_HD float ts_m_bf16_to_f32(uint16_t b) {
    union {
        float f;
        uint32_t u;
    } v;
    v.u = (uint32_t)b << 16;
    return v.f;
}

#endif
