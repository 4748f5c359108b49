/* ts_dit_cuda.h - the DiT of ts_dit.h on a GPU: weights in bf16 on the
 * device, one denoising step (ts_dit_cuda_step) computing what ts_dit_step
 * computes, with the GEMMs through cuBLAS (bf16 inputs, float32
 * accumulation and output) and everything else through the float32 kernels
 * of ts_kernels_cuda.h. Ulysses all-to-alls go through TsDitCudaComm (device
 * buffers, a stream), so NCCL plugs in (src/mpi_nccl.h) and a loopback runs
 * degree 1.
 *
 * Plain C header: no CUDA type is needed to call any of this (streams,
 * events and communicators are void *). Compiled only when the Makefile's
 * cuda backend is on (TS_HAVE_CUDA=1 for C files); without it only
 * ts_cuda_backend_check exists (an inline that says why), so the executor
 * and the profiler can call it unconditionally.
 *
 * Numerics: activations and the residual stream stay float32 as on the CPU;
 * every GEMM input is rounded to bf16 just before the GEMM (weights once, at
 * upload); biases and norm scales stay float32. Against ts_dit_step a step
 * differs by bf16 rounding only (tests/gpu_test_dit.c bounds it).
 *
 * Errors: TsStatus + TsErr like the rest of tetriserve; a failing CUDA or
 * cuBLAS call gives one line "kernels/ts_dit_cuda.c:LINE: kernels/x.cu:LINE:
 * call: message (code)". Waits are bounded (timeout_s): a step that does not
 * finish fails with one line instead of hanging. */
#ifndef TS_DIT_CUDA_H
#define TS_DIT_CUDA_H

#include <stddef.h>
#include <stdint.h>

#include "ts_dit.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(TS_HAVE_CUDA) || defined(__CUDACC__)

/* ------------------------------------------------------------ devices */

/* Can this process use the cuda backend? 0 if at least one CUDA device is
 * visible; otherwise the cudaError_t and why = "no CUDA device (CUDA driver
 * version is insufficient for CUDA runtime version)". Cheap (no context is
 * created), never prints. Call it first on every rank and agree with
 * MPI_Allreduce(MPI_MAX) on the result, so that one rank (0) prints why. */
int ts_cuda_backend_check(char *why, size_t len);
/* Select device local_rank (one GPU per worker, chosen by node-local rank)
 * and create its context. Non-zero with a one-line err when there is no
 * device or fewer devices than local_rank + 1. */
int ts_cuda_device_init(int local_rank, char *err, size_t len);
/* "device 0: NVIDIA H100 80GB HBM3, sm_90, 132 SMs, 79.1 GiB" (profile
 * metadata). */
int ts_cuda_device_describe(char *buf, size_t len);

/* ------------------------------------------------------------ small launchers
 * (ts_dit_cuda_k.cu; conventions of ts_kernels_cuda.h: device pointers,
 * asynchronous on stream, 0 or a CUDA code with ts_cuda_last_error()). */

/* dst[r, c] = bf16(c >= gelu_from ? gelu_tanh(src[r, c]) : src[r, c]):
 * stage a strided float32 GEMM input as bf16, fusing the MLP's GELU
 * (gelu_from >= cols: none).  dst: [rows, ldd] bf16; src: [rows, lds] */
int ts_dit_k_to_bf16_2d_cuda(uint16_t *dst, int64_t ldd, const float *src, int64_t lds,
                             int64_t rows, int cols, int gelu_from, void *stream);
/* In-place RMS norm (times w) of every head of every row's first
 * heads*head_dim columns: the QK norm on a qkv buffer.  x: [rows, ldx]; w: [head_dim] */
int ts_dit_k_qk_rmsnorm_cuda(float *x, int64_t ldx, const float *w, int64_t rows, int heads,
                             int head_dim, float eps, void *stream);
int ts_cuda_memcpy_d2d(void *dst, const void *src, size_t bytes, void *stream);
/* *done = 1 when everything enqueued on stream has finished (never blocks). */
int ts_cuda_stream_query(void *stream, int *done);
/* CUDA events for timing steps on the GPU's clock (the profiler). */
int ts_cuda_event_create(void **ev);
int ts_cuda_event_destroy(void *ev);
int ts_cuda_event_record(void *ev, void *stream);
/* Waits for end, then *ms = end - start. */
int ts_cuda_event_elapsed_ms(void *start, void *end, float *ms);

/* ------------------------------------------------------------ communicator */

/* Default bound on every wait (a step, an upload, an NCCL operation). */
#define TS_CUDA_TIMEOUT_S 30.0

/* The group a GPU step runs against, like TsDitComm but on device buffers.
 * alltoall ENQUEUES on stream (a cudaStream_t) the exchange of block p of
 * d_send (bytes_per_rank bytes at p * bytes_per_rank) to rank p, rank p's
 * block for us landing at d_recv + p * bytes_per_rank; collective, in the
 * same order on every rank; it may return before the data moved. wait
 * returns once everything enqueued on stream (kernels and communication)
 * has finished, within the communicator's timeout: on expiry it aborts the
 * communication (later calls fail too) and fails with one line naming the
 * rank and `what`. */
typedef struct TsDitCudaComm {
    int (*rank)(void *ctx);
    int (*size)(void *ctx);
    TsStatus (*alltoall)(const void *d_send, void *d_recv, size_t bytes_per_rank, void *stream,
                         void *ctx, TsErr *err);
    TsStatus (*wait)(void *stream, const char *what, void *ctx, TsErr *err);
    void *ctx;
} TsDitCudaComm;

/* Degree 1: rank 0 of 1, alltoall = a device copy, wait = stream poll with
 * TS_CUDA_TIMEOUT_S (ctx NULL) or *(const double *)ctx seconds. */
extern const TsDitCudaComm ts_dit_cuda_comm_loopback;

/* Wait for stream within timeout_s, polling (never an unbounded
 * cudaStreamSynchronize). TS_ERR_SYSTEM "`what` not finished after N s". */
TsStatus ts_dit_cuda_stream_wait(void *stream, double timeout_s, const char *what, TsErr *err);

/* ------------------------------------------------------------ model */

typedef struct TsDitCuda {
    const TsDit *m;      /* tensor table and config (must outlive this; its
                          * host arena may be freed once uploaded) */
    uint16_t *w_bf16;    /* device [n_params]: bf16 mirror of the arena, same offsets */
    float *w_f32;        /* device: the 1-D tensors (biases, norm scales) in float32 */
    int64_t *f32_off;    /* host [n_tensors]: offset in w_f32, -1 for 2-D tensors */
    int64_t f32_floats;
    void *gemm;          /* cuBLAS handle */
    void *stream;        /* cudaStream_t every step of this model runs on */
    size_t device_bytes; /* weights on the device */
    double timeout_s;    /* bound on uploads' waits (TS_CUDA_TIMEOUT_S) */
} TsDitCuda;

/* Upload m's arena (ts_dit_weights_from_seed / _from_safetensors first):
 * float32 -> bf16 on the device through a 64 MiB staging buffer, 1-D
 * tensors also in float32. Needs a selected device (ts_cuda_device_init).
 * FLUX.1-dev: 23.8 GB of bf16 weights. */
TsStatus ts_dit_cuda_init(TsDitCuda *dm, const TsDit *m, TsErr *err);
void ts_dit_cuda_free(TsDitCuda *dm);

/* Conditioning of one request on the device (upload once, reuse every step). */
typedef struct TsDitCudaCond {
    uint16_t *txt;  /* device [txt_tokens, ctx_dim] bf16 (only a GEMM reads it) */
    float *pooled;  /* device [pooled_dim] */
    float guidance;
} TsDitCudaCond;

TsStatus ts_dit_cuda_cond_upload(TsDitCudaCond *dc, const TsDitCuda *dm, const TsDitCond *cond,
                                 TsErr *err);
void ts_dit_cuda_cond_free(TsDitCudaCond *dc);

/* Activations of one rank for one (resolution, degree): the same geometry
 * as TsDitWork (ts_dit.h), in one device allocation. */
typedef struct TsDitCudaWork {
    int width_px, height_px, degree, rank;
    int lat_h, lat_w;
    int64_t n_txt, n_img, s_total, s_pad, s_loc, s0;
    int64_t loc_txt, loc_img, img0;
    size_t bytes;  /* device bytes */
    void *mem;
    float *x, *xm, *lin, *attn, *y;   /* as in TsDitWork */
    float *rope_cos, *rope_sin;
    float *send, *qf, *kf, *vf, *of;  /* Ulysses */
    float *temb, *vec, *tmp, *mod;
    float *patches, *vel_send, *vel_all;
    uint16_t *xb;   /* bf16 staging of GEMM inputs [s_loc, hidden + mlp] */
    uint16_t *vecb; /* bf16 silu(vec) [hidden], the modulation GEMMs' input */
} TsDitCudaWork;

TsStatus ts_dit_cuda_work_init(TsDitCudaWork *w, const TsDitCuda *dm, int width_px, int height_px,
                               int degree, int rank, TsErr *err);
void ts_dit_cuda_work_free(TsDitCudaWork *w);

/* Workspaces cached by (width, height, degree, rank), least recently used
 * evicted beyond max_entries: a step at a (resolution, degree) seen before
 * allocates nothing. */
#define TS_DIT_CUDA_CACHE_MAX 16
typedef struct TsDitCudaWorkCache {
    TsDitCudaWork work[TS_DIT_CUDA_CACHE_MAX];
    uint64_t used[TS_DIT_CUDA_CACHE_MAX]; /* 0: empty slot, else last-use tick */
    uint64_t tick;
    int max_entries;                      /* <= TS_DIT_CUDA_CACHE_MAX */
} TsDitCudaWorkCache;

void ts_dit_cuda_cache_init(TsDitCudaWorkCache *c, int max_entries);
TsStatus ts_dit_cuda_cache_get(TsDitCudaWorkCache *c, const TsDitCuda *dm, int width_px,
                               int height_px, int degree, int rank, TsDitCudaWork **w, TsErr *err);
void ts_dit_cuda_cache_free(TsDitCudaWorkCache *c);

/* One denoising step on this rank, on dm->stream: d_latent (DEVICE,
 * replicated, [C, H/vae, W/vae]) is updated in place to t_next. Collective
 * over comm (size and rank must match w). Returns after comm->wait, so the
 * latent is final and any GPU or communication failure is reported here. */
TsStatus ts_dit_cuda_step(const TsDitCuda *dm, TsDitCudaWork *w, const TsDitCudaComm *comm,
                          const TsDitCudaCond *cond, float t, float t_next, float *d_latent,
                          TsErr *err);

/* Latents between host and device on dm->stream, finished when they return. */
TsStatus ts_dit_cuda_upload(const TsDitCuda *dm, float *d_dst, const float *src, int64_t n,
                            TsErr *err);
TsStatus ts_dit_cuda_download(const TsDitCuda *dm, float *dst, const float *d_src, int64_t n,
                              TsErr *err);

#else /* no cuda backend in this build */

#include <stdio.h>

static inline int ts_cuda_backend_check(char *why, size_t len) {
    snprintf(why, len, "cuda backend not built (make CUDA=0, or no nvcc when tetriserve was built)");
    return -1;
}

#endif

#ifdef __cplusplus
}
#endif

#endif
