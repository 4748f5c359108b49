/* ts_kernels_cuda.h - launchers of the CUDA twins of ts_kernels.h (kernels in
 * ts_kernels.cu, cuBLAS GEMM in ts_gemm_cuda.cu). Plain C: no CUDA header is
 * needed to call them, so C code (the executor's cuda backend, the GPU test)
 * includes only this.
 *
 * Conventions:
 *  - Same name as the CPU twin with _cuda instead of _cpu, same argument
 *    order and shapes; pointers are DEVICE pointers; the last argument is a
 *    cudaStream_t passed as void * (NULL: the default stream). Launches are
 *    asynchronous on that stream.
 *  - Storage is float32 for the elementwise, norm and attention kernels
 *    (accumulation in float32); bf16 (raw bits as uint16_t) for GEMM inputs.
 *  - Every launcher returns 0 or a cudaError_t / cublasStatus_t code; the
 *    message ("kernels/ts_kernels.cu:123: cudaMemcpyAsync(...): invalid
 *    argument") is kept per thread and read with ts_cuda_last_error(). Nothing
 *    is printed.
 *  - Only compiled when the Makefile finds nvcc (TS_HAVE_CUDA=1 for C files). */
#ifndef TS_KERNELS_CUDA_H
#define TS_KERNELS_CUDA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- errors and device helpers */
const char *ts_cuda_last_error(void);        /* message of the last failure on this thread */
const char *ts_cuda_error_string(int code);  /* cudaGetErrorString */
/* cudaGetDeviceCount; without a GPU: returns non-zero (e.g. 35, insufficient
 * driver) and/or *count == 0. */
int ts_cuda_device_count(int *count);
int ts_cuda_malloc(void **dptr, size_t bytes);
int ts_cuda_free(void *dptr);
int ts_cuda_memcpy_h2d(void *dst, const void *src, size_t bytes, void *stream);
int ts_cuda_memcpy_d2h(void *dst, const void *src, size_t bytes, void *stream);
int ts_cuda_memset(void *dptr, int value, size_t bytes, void *stream);
int ts_cuda_stream_create(void **stream);
int ts_cuda_stream_destroy(void *stream);
/* Unbounded: tests only. Serving code polls (ts_cuda_stream_query) with a
 * timeout instead, see ts_dit_cuda_stream_wait. */
int ts_cuda_stream_sync(void *stream);
/* Stream-ordered allocation (cudaMallocAsync / cudaFreeAsync from the
 * device's default pool). The executor allocates and frees latents and
 * workspaces while NCCL hand-offs may be pending on other streams: plain
 * cudaMalloc / cudaFree can synchronise the device and so wait for a
 * hand-off whose peer waits for us; these never do. */
int ts_cuda_malloc_async(void **dptr, size_t bytes, void *stream);
int ts_cuda_free_async(void *dptr, void *stream);

/* ---- kernels (shapes as in ts_kernels.h) */
/* out, x: [rows, cols]; w, b: [cols] or NULL */
int ts_k_layernorm_cuda(float *out, const float *x, const float *w, const float *b, int64_t rows,
                        int cols, float eps, void *stream);
/* out, x: [rows, cols]; w: [cols] */
int ts_k_rmsnorm_cuda(float *out, const float *x, const float *w, int64_t rows, int cols, float eps,
                      void *stream);
/* out, x: [rows, cols]; shift, scale: [cols] */
int ts_k_adaln_modulate_cuda(float *out, const float *x, const float *shift, const float *scale,
                             int64_t rows, int cols, void *stream);
/* cos_t, sin_t: [S, head_dim/2]; pos: [S, n_axes]; axes_dim: HOST array [n_axes], n_axes <= 4 */
int ts_k_rope_table_cuda(float *cos_t, float *sin_t, const float *pos, int64_t S, int n_axes,
                         const int *axes_dim, float theta, void *stream);
/* x: [S, ldx] (first heads*head_dim columns); cos_t, sin_t: [S, head_dim/2] */
int ts_k_rope_cuda(float *x, int64_t ldx, const float *cos_t, const float *sin_t, int64_t S, int heads,
                   int head_dim, void *stream);
/* out, x: [n] */
int ts_k_gelu_tanh_cuda(float *out, const float *x, int64_t n, void *stream);
int ts_k_silu_cuda(float *out, const float *x, int64_t n, void *stream);
/* x: [rows, cols] in place */
int ts_k_softmax_cuda(float *x, int64_t rows, int cols, void *stream);
/* out, q: [s_q, heads, head_dim]; k, v: [s_kv, heads, head_dim]; head_dim <= 256.
 * No workspace: score tiles live in registers and shared memory. */
int ts_k_attention_cuda(float *out, const float *q, const float *k, const float *v, int64_t s_q,
                        int64_t s_kv, int heads, int head_dim, float scale, void *stream);
/* send: [degree, s_loc, heads/degree, head_dim]; x: [s_loc, ldx] */
int ts_k_ulysses_pack_cuda(float *send, const float *x, int64_t ldx, int64_t s_loc, int heads,
                           int head_dim, int degree, void *stream);
int ts_k_ulysses_unpack_cuda(float *x, int64_t ldx, const float *recv, int64_t s_loc, int heads,
                             int head_dim, int degree, void *stream);
/* x, v: [n] */
int ts_k_euler_update_cuda(float *x, const float *v, int64_t n, float t, float t_next, void *stream);
/* x: [rows, ldx]; y: [rows, ldy]; gate: [cols] */
int ts_k_gated_residual_cuda(float *x, int64_t ldx, const float *y, int64_t ldy, const float *gate,
                             int64_t rows, int cols, void *stream);
/* x: [rows, ldx]; b: [cols] */
int ts_k_bias_add_cuda(float *x, int64_t ldx, const float *b, int64_t rows, int cols, void *stream);
/* out: [dim] */
int ts_k_timestep_embedding_cuda(float *out, float t, int dim, float max_period, void *stream);
/* latent: [channels, lat_h, lat_w]; tokens: [(lat_h/patch)(lat_w/patch), channels*patch*patch] */
int ts_k_patchify_cuda(float *tokens, const float *latent, int channels, int lat_h, int lat_w,
                       int patch, void *stream);
int ts_k_unpatchify_cuda(float *latent, const float *tokens, int channels, int lat_h, int lat_w,
                         int patch, void *stream);
/* bf16 <-> float32 (round to nearest even).  dst, src: [n] */
int ts_k_f32_to_bf16_cuda(uint16_t *dst, const float *src, int64_t n, void *stream);
int ts_k_bf16_to_f32_cuda(float *dst, const uint16_t *src, int64_t n, void *stream);

/* Seeded fill on the device (CPU twin ts_k_fill_seeded_cpu): element j =
 * ts_m_seeded(key, amp, j), stored as bf16 or float32.  dst: [n] */
int ts_k_fill_seeded_bf16_cuda(uint16_t *dst, int64_t n, uint64_t key, float amp, void *stream);
int ts_k_fill_seeded_f32_cuda(float *dst, int64_t n, uint64_t key, float amp, void *stream);

/* ---- cuBLAS GEMM (ts_gemm_cuda.cu): bf16 inputs, float32 accumulation */
/* A cuBLAS handle with its own 32 MiB workspace (cublasSetWorkspace), so
 * that no GEMM allocates device memory behind our back mid-run. */
int ts_gemm_cuda_create(void **handle);
int ts_gemm_cuda_destroy(void *handle);
/* Row-major linear layer y = x W^T (+ beta y), like the CPU model's linear():
 *   y: [rows, ldy] float32 (y_bf16 == 0) or bf16 bits (y_bf16 == 1)
 *   x: [rows, ldx] bf16; w: [out, in] bf16 (PyTorch/safetensors layout) */
int ts_gemm_linear_bf16_cuda(void *handle, void *y, int y_bf16, int64_t ldy, const uint16_t *x,
                             int64_t ldx, const uint16_t *w, int64_t rows, int in, int out,
                             float beta, void *stream);

#ifdef __cplusplus
}
#endif

#endif
