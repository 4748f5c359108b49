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
/* Select CUDA device `device` and create its context; check it has
 * stream-ordered memory pools and keep freed pool memory cached. Non-zero
 * with a one-line err when there is no device or fewer than device + 1.
 * (Which device a worker takes is the executor's business: mpi_nccl.h,
 * ts_nccl_device_select.) */
int ts_cuda_device_init(int device, char *err, size_t len);
/* "device 0: NVIDIA H100 80GB HBM3, sm_90, 132 SMs, 79.1 GiB" (profile
 * metadata). */
int ts_cuda_device_describe(char *buf, size_t len);
/* The current device, for placement checks and metadata. */
typedef struct TsCudaDeviceInfo {
    int device;
    char name[256];
    int sm_major, sm_minor, sms;
    double total_bytes, free_bytes;
    unsigned char uuid[16];
    char pci[32]; /* "0000:18:00" domain:bus:device */
} TsCudaDeviceInfo;
int ts_cuda_device_info(TsCudaDeviceInfo *info);
/* "driver 550.54.15 (CUDA 12.4), CUDA runtime 13.0, cuBLAS 13.1.0": never
 * fails (unknown parts print as ? or 0), works without a GPU. */
int ts_cuda_versions(char *buf, size_t len);

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
/* CUDA events: timing events for steps on the GPU's clock (the profiler),
 * synchronisation-only events (cheaper) for "has this hand-off finished". */
int ts_cuda_event_create(void **ev);
int ts_cuda_event_create_sync(void **ev);
int ts_cuda_event_destroy(void *ev); /* NULL: nothing */
int ts_cuda_event_record(void *ev, void *stream);
/* *done = 1 once the work before the record has finished (never blocks). */
int ts_cuda_event_query(void *ev, int *done);
/* *ms = end - start; never waits: fails if end has not been reached (wait
 * for the stream, with a timeout, first). */
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
                          * host arena may be freed once uploaded, and is not
                          * needed at all by ts_dit_cuda_init_seeded) */
    uint16_t *w_bf16;    /* device [n_params]: bf16 mirror of the arena, same offsets */
    float *w_f32;        /* device: the 1-D tensors (biases, norm scales) in float32 */
    int64_t *f32_off;    /* host [n_tensors]: offset in w_f32, -1 for 2-D tensors */
    int64_t f32_floats;
    void *gemm;          /* cuBLAS handle */
    void *stream;        /* cudaStream_t every step of this model runs on */
    size_t device_bytes; /* weights on the device */
    double timeout_s;    /* bound on uploads' waits (TS_CUDA_TIMEOUT_S) */
    int stuck;           /* a wait timed out: free nothing (it could block) */
} TsDitCuda;

/* Upload m's arena (ts_dit_weights_from_seed / _from_safetensors first):
 * float32 -> bf16 on the device through a 64 MiB staging buffer, 1-D
 * tensors also in float32. Needs a selected device (ts_cuda_device_init).
 * FLUX.1-dev: 23.8 GB of bf16 weights. */
TsStatus ts_dit_cuda_init(TsDitCuda *dm, const TsDit *m, TsErr *err);
/* The weights ts_dit_weights_from_seed(m, seed) would give, generated on the
 * device (ts_dit_seed_tensor's rule, bf16 of the same float32 values): no
 * host arena (m->arena may be NULL), so FLUX.1-dev needs neither 47.6 GB of
 * host memory per rank nor a minute of host hashing. */
TsStatus ts_dit_cuda_init_seeded(TsDitCuda *dm, const TsDit *m, uint64_t seed, TsErr *err);
/* Waits (bounded) for dm's stream, then frees; after a timeout it frees
 * nothing (cudaFree of memory a stuck kernel uses could block forever). */
void ts_dit_cuda_free(TsDitCuda *dm);

/* Conditioning of one request on the device (upload once, reuse every step). */
typedef struct TsDitCudaCond {
    uint16_t *txt;  /* device [txt_tokens, ctx_dim] bf16 (only a GEMM reads it) */
    float *pooled;  /* device [pooled_dim] */
    float guidance;
    void *stream;   /* the model's stream: allocations are stream-ordered */
} TsDitCudaCond;

TsStatus ts_dit_cuda_cond_upload(TsDitCudaCond *dc, const TsDitCuda *dm, const TsDitCond *cond,
                                 TsErr *err);
/* ts_dit_cond_from_seed's conditioning, generated on the device (txt as the
 * bf16 of the same float32 values). */
TsStatus ts_dit_cuda_cond_seeded(TsDitCudaCond *dc, const TsDitCuda *dm, uint64_t seed,
                                 float guidance, TsErr *err);
/* Stream-ordered: safe while the model's stream still uses it. */
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
    void *stream;   /* the model's stream: mem is a stream-ordered allocation */
} TsDitCudaWork;

/* Device bytes of a workspace (FLUX.1-dev, 2048 px, degree 1: 3.9 GB), or 0
 * with err for a size or degree the model cannot run. */
size_t ts_dit_cuda_work_bytes(const TsDitConfig *c, int width_px, int height_px, int degree,
                              TsErr *err);
TsStatus ts_dit_cuda_work_init(TsDitCudaWork *w, const TsDitCuda *dm, int width_px, int height_px,
                               int degree, int rank, TsErr *err);
/* Stream-ordered (cudaFreeAsync on the model's stream): the memory is
 * reused only after the work enqueued before it. */
void ts_dit_cuda_work_free(TsDitCudaWork *w);

/* Workspaces cached by (width, height, degree, rank), least recently used
 * evicted beyond max_entries or beyond max_bytes (0: no byte limit; a
 * FLUX.1-dev 2048 px workspace alone is 3.9 GB, so the executor sets one
 * from the memory left after the weights): a step at a (resolution,
 * degree) seen before allocates nothing. An allocation that fails for lack
 * of memory evicts every other entry and is tried once more. */
#define TS_DIT_CUDA_CACHE_MAX 16
typedef struct TsDitCudaWorkCache {
    TsDitCudaWork work[TS_DIT_CUDA_CACHE_MAX];
    uint64_t used[TS_DIT_CUDA_CACHE_MAX]; /* 0: empty slot, else last-use tick */
    uint64_t tick;
    int max_entries;                      /* <= TS_DIT_CUDA_CACHE_MAX */
    size_t max_bytes, bytes;              /* budget (0: none) and bytes held */
    int64_t n_alloc, n_evict;             /* statistics */
} TsDitCudaWorkCache;

void ts_dit_cuda_cache_init(TsDitCudaWorkCache *c, int max_entries);
void ts_dit_cuda_cache_set_budget(TsDitCudaWorkCache *c, size_t max_bytes);
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
/* The same, recording ev_start before the step's first operation and
 * ev_end after its last, before the wait (CUDA events, NULL: none): the
 * profiler's step time on the GPU's clock. */
TsStatus ts_dit_cuda_step_timed(const TsDitCuda *dm, TsDitCudaWork *w, const TsDitCudaComm *comm,
                                const TsDitCudaCond *cond, float t, float t_next, float *d_latent,
                                void *ev_start, void *ev_end, TsErr *err);

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
