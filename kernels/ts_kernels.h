/* ts_kernels.h - the DiT's non-GEMM operations on the CPU (the "twins" of the
 * CUDA kernels in ts_kernels.cu; same names with _cuda instead of _cpu).
 *
 * All buffers are float32, row-major, described by a shape comment. Sizes are
 * int64_t for token counts and element counts, int for channel-like
 * dimensions. In-place use is allowed wherever out and x have the same shape
 * and the comment says so. The CPU twins are the reference the cpu backend of
 * the executor runs and the CUDA kernels are tested against.
 *
 * Plain C header: no CUDA, no MPI. */
#ifndef TS_KERNELS_H
#define TS_KERNELS_H

#include <stdint.h>

#include "ts_kernels_math.h"

/* Layer norm of each row, optional affine (w, b may be NULL: the DiT's
 * adaLN norms have no affine). out may equal x.
 *   out, x: [rows, cols]; w, b: [cols] or NULL */
void ts_k_layernorm_cpu(float *out, const float *x, const float *w, const float *b, int64_t rows,
                        int cols, float eps);

/* RMS norm of each row times w (QK norm over head_dim). out may equal x.
 *   out, x: [rows, cols]; w: [cols] */
void ts_k_rmsnorm_cpu(float *out, const float *x, const float *w, int64_t rows, int cols, float eps);

/* adaLN modulation: out = x * (1 + scale) + shift, shift/scale per column.
 * out may equal x.
 *   out, x: [rows, cols]; shift, scale: [cols] */
void ts_k_adaln_modulate_cpu(float *out, const float *x, const float *shift, const float *scale,
                             int64_t rows, int cols);

/* Fill the RoPE table: axis a of n_axes has axes_dim[a] channels (even, sum
 * = head_dim); pair i of the head (head_dim/2 pairs) belongs to the axis whose
 * range contains 2i, and rotates by pos[s, a] * theta^(-2i'/axes_dim[a]) with
 * i' the pair index within the axis.
 *   cos_t, sin_t: [S, head_dim/2]; pos: [S, n_axes] */
void ts_k_rope_table_cpu(float *cos_t, float *sin_t, const float *pos, int64_t S, int n_axes,
                         const int *axes_dim, float theta);

/* Rotary embedding in place on interleaved pairs (x[2i], x[2i+1]) of every
 * head of every token (FLUX's apply_rope layout).
 *   x: [S, ldx] row-major, the first heads*head_dim columns are [heads, head_dim]
 *   cos_t, sin_t: [S, head_dim/2] */
void ts_k_rope_cpu(float *x, int64_t ldx, const float *cos_t, const float *sin_t, int64_t S,
                   int heads, int head_dim);

/* Elementwise activations, out may equal x.  out, x: [n] */
void ts_k_gelu_tanh_cpu(float *out, const float *x, int64_t n);
void ts_k_silu_cpu(float *out, const float *x, int64_t n);

/* Row-wise softmax in place (numerically stable: subtracts the row max).
 *   x: [rows, cols] */
void ts_k_softmax_cpu(float *x, int64_t rows, int cols);

/* Floats of scratch ts_k_attention_cpu needs: O(tile), independent of S. */
int64_t ts_k_attention_work_floats(int head_dim);

/* Fused multi-head attention out = softmax(q k^T * scale) v per head, flash
 * style: keys in tiles of TS_K_ATTN_KTILE with an online softmax, queries in
 * blocks of TS_K_ATTN_QBLOCK, so no more than a [QBLOCK, KTILE] tile of the
 * score matrix exists at any time. Only the first s_kv keys are attended to
 * (padding tokens after them are ignored); s_q may differ from s_kv. Tile
 * products through cblas_sgemm.
 *   out: [s_q, heads, head_dim]; q: [s_q, heads, head_dim]
 *   k, v: [s_kv, heads, head_dim]; work: [ts_k_attention_work_floats(head_dim)] */
void ts_k_attention_cpu(float *out, const float *q, const float *k, const float *v, int64_t s_q,
                        int64_t s_kv, int heads, int head_dim, float scale, float *work);

/* Ulysses all-to-all layout. Pack: local tokens with all heads into degree
 * send blocks, block p holding heads [p*H/k, (p+1)*H/k) of every local token.
 * After the all-to-all the receive buffer [k, s_loc, H/k, D] is exactly
 * [S, H/k, D] (all tokens, rank-major = global order, this rank's heads), so
 * attention runs on it directly; its output is again k send blocks (by token
 * range), and unpack puts what comes back ([k, s_loc, H/k, D], block p =
 * heads of rank p) into the local [s_loc, H, D] layout.
 *   send, recv: [degree, s_loc, heads/degree, head_dim] contiguous
 *   x: [s_loc, ldx], the first heads*head_dim columns used (heads % degree == 0) */
void ts_k_ulysses_pack_cpu(float *send, const float *x, int64_t ldx, int64_t s_loc, int heads,
                           int head_dim, int degree);
void ts_k_ulysses_unpack_cpu(float *x, int64_t ldx, const float *recv, int64_t s_loc, int heads,
                             int head_dim, int degree);

/* Flow-matching Euler step in place: x += (t_next - t) * v.  x, v: [n] */
void ts_k_euler_update_cpu(float *x, const float *v, int64_t n, float t, float t_next);

/* Gated residual in place: x += gate * y, gate per column.
 *   x: [rows, ldx] (first cols used); y: [rows, ldy]; gate: [cols] */
void ts_k_gated_residual_cpu(float *x, int64_t ldx, const float *y, int64_t ldy, const float *gate,
                             int64_t rows, int cols);

/* Add a bias row to every row.  x: [rows, ldx] (first cols used); b: [cols] */
void ts_k_bias_add_cpu(float *x, int64_t ldx, const float *b, int64_t rows, int cols);

/* Sinusoidal timestep embedding (FLUX: t already multiplied by 1000).
 *   out: [dim] */
void ts_k_timestep_embedding_cpu(float *out, float t, int dim, float max_period);

/* Patchify / unpatchify (see ts_m_patch_src for the index map).
 *   latent: [channels, lat_h, lat_w]; tokens: [(lat_h/patch)*(lat_w/patch), channels*patch*patch]
 *   lat_h, lat_w multiples of patch. */
void ts_k_patchify_cpu(float *tokens, const float *latent, int channels, int lat_h, int lat_w,
                       int patch);
void ts_k_unpatchify_cpu(float *latent, const float *tokens, int channels, int lat_h, int lat_w,
                         int patch);

/* Seeded fill: dst[j] = ts_m_seeded(key, amp, j) (amp 0: all ones). The
 * seeded weights and conditioning of ts_dit.c, and the CPU twin of
 * ts_k_fill_seeded_bf16_cuda / _f32_cuda, which fill the GPU model without
 * a host copy.  dst: [n] */
void ts_k_fill_seeded_cpu(float *dst, int64_t n, uint64_t key, float amp);

/* float32 <-> bf16 bits, round to nearest even (ts_m_f32_to_bf16): the CPU
 * twins of ts_k_f32_to_bf16_cuda / ts_k_bf16_to_f32_cuda.  dst, src: [n] */
void ts_k_f32_to_bf16_cpu(uint16_t *dst, const float *src, int64_t n);
void ts_k_bf16_to_f32_cpu(float *dst, const uint16_t *src, int64_t n);

#endif
