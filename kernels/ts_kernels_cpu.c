/* ts_kernels_cpu.c - CPU twins of the DiT kernels (see ts_kernels.h). Row
 * statistics are accumulated in double: this is the reference the CUDA
 * kernels (fp32 accumulation) are compared against. */
#include "ts_kernels.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

void ts_k_layernorm_cpu(float *out, const float *x, const float *w, const float *b, int64_t rows,
                        int cols, float eps) {
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * cols;
        float *orow = out + r * cols;
        double sum = 0, sq = 0;
        for (int c = 0; c < cols; c++) sum += xr[c];
        double mean = sum / cols;
        for (int c = 0; c < cols; c++) {
            double d = xr[c] - mean;
            sq += d * d;
        }
        float rstd = ts_m_rstd((float)(sq / cols), eps);
        for (int c = 0; c < cols; c++) {
            float y = ts_m_norm(xr[c], (float)mean, rstd);
            if (w) y *= w[c];
            if (b) y += b[c];
            orow[c] = y;
        }
    }
}

void ts_k_rmsnorm_cpu(float *out, const float *x, const float *w, int64_t rows, int cols, float eps) {
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * cols;
        float *orow = out + r * cols;
        double sq = 0;
        for (int c = 0; c < cols; c++) sq += (double)xr[c] * xr[c];
        float rstd = ts_m_rstd((float)(sq / cols), eps);
        for (int c = 0; c < cols; c++) orow[c] = ts_m_norm(xr[c], 0.0f, rstd) * w[c];
    }
}

void ts_k_adaln_modulate_cpu(float *out, const float *x, const float *shift, const float *scale,
                             int64_t rows, int cols) {
    for (int64_t r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++)
            out[r * cols + c] = ts_m_modulate(x[r * cols + c], shift[c], scale[c]);
}

void ts_k_rope_table_cpu(float *cos_t, float *sin_t, const float *pos, int64_t S, int n_axes,
                         const int *axes_dim, float theta) {
    int half = 0;
    for (int a = 0; a < n_axes; a++) half += axes_dim[a] / 2;
    for (int64_t s = 0; s < S; s++) {
        int j = 0;
        for (int a = 0; a < n_axes; a++) {
            for (int i = 0; i < axes_dim[a] / 2; i++, j++) {
                double ang = ts_m_rope_angle(pos[s * n_axes + a], i, axes_dim[a], theta);
                cos_t[s * half + j] = (float)cos(ang);
                sin_t[s * half + j] = (float)sin(ang);
            }
        }
    }
}

void ts_k_rope_cpu(float *x, int64_t ldx, const float *cos_t, const float *sin_t, int64_t S,
                   int heads, int head_dim) {
    int half = head_dim / 2;
    for (int64_t s = 0; s < S; s++) {
        const float *cs = cos_t + s * half, *sn = sin_t + s * half;
        for (int h = 0; h < heads; h++) {
            float *xh = x + s * ldx + (int64_t)h * head_dim;
            for (int i = 0; i < half; i++)
                ts_m_rope_pair(xh[2 * i], xh[2 * i + 1], cs[i], sn[i], &xh[2 * i], &xh[2 * i + 1]);
        }
    }
}

void ts_k_gelu_tanh_cpu(float *out, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) out[i] = ts_m_gelu_tanh(x[i]);
}

void ts_k_silu_cpu(float *out, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) out[i] = ts_m_silu(x[i]);
}

void ts_k_softmax_cpu(float *x, int64_t rows, int cols) {
    for (int64_t r = 0; r < rows; r++) {
        float *xr = x + r * cols;
        float mx = -INFINITY;
        for (int c = 0; c < cols; c++) mx = xr[c] > mx ? xr[c] : mx;
        double sum = 0;
        for (int c = 0; c < cols; c++) {
            xr[c] = expf(xr[c] - mx);
            sum += xr[c];
        }
        float inv = (float)(1.0 / sum);
        for (int c = 0; c < cols; c++) xr[c] *= inv;
    }
}

int64_t ts_k_attention_work_floats(int head_dim) {
    /* scores [QBLOCK, KTILE], accumulator [QBLOCK, head_dim], max and sum [QBLOCK] */
    return (int64_t)TS_K_ATTN_QBLOCK * TS_K_ATTN_KTILE + (int64_t)TS_K_ATTN_QBLOCK * head_dim +
           2 * (int64_t)TS_K_ATTN_QBLOCK;
}

void ts_k_attention_cpu(float *out, const float *q, const float *k, const float *v, int64_t s_q,
                        int64_t s_kv, int heads, int head_dim, float scale, float *work) {
    const int64_t ld = (int64_t)heads * head_dim;
    float *sc = work;                                        /* [QBLOCK, KTILE] */
    float *acc = sc + TS_K_ATTN_QBLOCK * TS_K_ATTN_KTILE;    /* [QBLOCK, head_dim] */
    float *mrow = acc + (int64_t)TS_K_ATTN_QBLOCK * head_dim; /* [QBLOCK] */
    float *lrow = mrow + TS_K_ATTN_QBLOCK;                   /* [QBLOCK] */
    for (int h = 0; h < heads; h++) {
        for (int64_t q0 = 0; q0 < s_q; q0 += TS_K_ATTN_QBLOCK) {
            int bq = (int)(s_q - q0 < TS_K_ATTN_QBLOCK ? s_q - q0 : TS_K_ATTN_QBLOCK);
            const float *qb = q + q0 * ld + (int64_t)h * head_dim;
            memset(acc, 0, sizeof *acc * (size_t)bq * (size_t)head_dim);
            for (int i = 0; i < bq; i++) {
                mrow[i] = -INFINITY;
                lrow[i] = 0.0f;
            }
            for (int64_t k0 = 0; k0 < s_kv; k0 += TS_K_ATTN_KTILE) {
                int bk = (int)(s_kv - k0 < TS_K_ATTN_KTILE ? s_kv - k0 : TS_K_ATTN_KTILE);
                const float *kb = k + k0 * ld + (int64_t)h * head_dim;
                const float *vb = v + k0 * ld + (int64_t)h * head_dim;
                /* sc = scale * qb kb^T  ([bq, bk], row stride KTILE) */
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, bq, bk, head_dim, scale, qb,
                            (int)ld, kb, (int)ld, 0.0f, sc, TS_K_ATTN_KTILE);
                for (int i = 0; i < bq; i++) {
                    float *si = sc + (int64_t)i * TS_K_ATTN_KTILE;
                    float tmax = -INFINITY;
                    for (int j = 0; j < bk; j++) tmax = si[j] > tmax ? si[j] : tmax;
                    float corr = ts_m_online_rescale(&mrow[i], tmax);
                    float sum = 0.0f;
                    for (int j = 0; j < bk; j++) {
                        si[j] = expf(si[j] - mrow[i]);
                        sum += si[j];
                    }
                    lrow[i] = lrow[i] * corr + sum;
                    if (corr != 1.0f) {
                        float *ai = acc + (int64_t)i * head_dim;
                        for (int d = 0; d < head_dim; d++) ai[d] *= corr;
                    }
                }
                /* acc += p vb  ([bq, head_dim]) */
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, bq, head_dim, bk, 1.0f, sc,
                            TS_K_ATTN_KTILE, vb, (int)ld, 1.0f, acc, head_dim);
            }
            for (int i = 0; i < bq; i++) {
                float *oi = out + (q0 + i) * ld + (int64_t)h * head_dim;
                const float *ai = acc + (int64_t)i * head_dim;
                float inv = lrow[i] > 0.0f ? 1.0f / lrow[i] : 0.0f; /* s_kv == 0: zeros */
                for (int d = 0; d < head_dim; d++) oi[d] = ai[d] * inv;
            }
        }
    }
}

void ts_k_ulysses_pack_cpu(float *send, const float *x, int64_t ldx, int64_t s_loc, int heads,
                           int head_dim, int degree) {
    int hpr = heads / degree;
    size_t row = sizeof(float) * (size_t)hpr * (size_t)head_dim;
    for (int p = 0; p < degree; p++)
        for (int64_t s = 0; s < s_loc; s++)
            memcpy(send + ((int64_t)p * s_loc + s) * hpr * head_dim,
                   x + s * ldx + ts_m_ulysses_col(p, 0, 0, hpr, head_dim), row);
}

void ts_k_ulysses_unpack_cpu(float *x, int64_t ldx, const float *recv, int64_t s_loc, int heads,
                             int head_dim, int degree) {
    int hpr = heads / degree;
    size_t row = sizeof(float) * (size_t)hpr * (size_t)head_dim;
    for (int p = 0; p < degree; p++)
        for (int64_t s = 0; s < s_loc; s++)
            memcpy(x + s * ldx + ts_m_ulysses_col(p, 0, 0, hpr, head_dim),
                   recv + ((int64_t)p * s_loc + s) * hpr * head_dim, row);
}

void ts_k_euler_update_cpu(float *x, const float *v, int64_t n, float t, float t_next) {
    float dt = t_next - t;
    for (int64_t i = 0; i < n; i++) x[i] = ts_m_euler(x[i], v[i], dt);
}

void ts_k_gated_residual_cpu(float *x, int64_t ldx, const float *y, int64_t ldy, const float *gate,
                             int64_t rows, int cols) {
    for (int64_t r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++)
            x[r * ldx + c] = ts_m_gated_add(x[r * ldx + c], gate[c], y[r * ldy + c]);
}

void ts_k_bias_add_cpu(float *x, int64_t ldx, const float *b, int64_t rows, int cols) {
    for (int64_t r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) x[r * ldx + c] += b[c];
}

void ts_k_timestep_embedding_cpu(float *out, float t, int dim, float max_period) {
    for (int j = 0; j < dim; j++) out[j] = ts_m_timestep_embedding(t, j, dim, max_period);
}

void ts_k_patchify_cpu(float *tokens, const float *latent, int channels, int lat_h, int lat_w,
                       int patch) {
    int64_t n_tok = (int64_t)(lat_h / patch) * (lat_w / patch);
    int64_t feat = (int64_t)channels * patch * patch;
    for (int64_t t = 0; t < n_tok; t++)
        for (int64_t f = 0; f < feat; f++)
            tokens[t * feat + f] = latent[ts_m_patch_src(t, f, lat_h, lat_w, patch)];
}

void ts_k_unpatchify_cpu(float *latent, const float *tokens, int channels, int lat_h, int lat_w,
                         int patch) {
    int64_t n_tok = (int64_t)(lat_h / patch) * (lat_w / patch);
    int64_t feat = (int64_t)channels * patch * patch;
    for (int64_t t = 0; t < n_tok; t++)
        for (int64_t f = 0; f < feat; f++)
            latent[ts_m_patch_src(t, f, lat_h, lat_w, patch)] = tokens[t * feat + f];
}

void ts_k_fill_seeded_cpu(float *dst, int64_t n, uint64_t key, float amp) {
    for (int64_t j = 0; j < n; j++) dst[j] = ts_m_seeded(key, amp, (uint64_t)j);
}

void ts_k_f32_to_bf16_cpu(uint16_t *dst, const float *src, int64_t n) {
    for (int64_t i = 0; i < n; i++) dst[i] = ts_m_f32_to_bf16(src[i]);
}

void ts_k_bf16_to_f32_cpu(float *dst, const uint16_t *src, int64_t n) {
    for (int64_t i = 0; i < n; i++) dst[i] = ts_m_bf16_to_f32(src[i]);
}
