/* fake_cuda.c - the launchers of ts_kernels_cuda.h and ts_dit_cuda.h run on
 * the CPU, for tests of the cuda backend's HOST logic on machines without a
 * GPU (CI): ts_dit_cuda.c's step sequence, its allocations and error paths,
 * the executor's and the profiler's cuda code. Linked before the library,
 * it replaces the real launchers (no object of the .cu files is pulled in).
 *
 * What it is: "device memory" is host memory (filled with 0xff bytes, NaN
 * as float32, so a read before the first write shows up in the results);
 * every stream is synchronous (an enqueued operation has finished when the
 * call returns), so queries and events are always complete; kernels are
 * their CPU twins (ts_kernels_cpu.c), the two kernels that have none (the
 * strided bf16 staging with GELU, the QK norm) are written here from the
 * same ts_kernels_math.h formulas; the GEMM rounds its inputs to bf16 like
 * cuBLAS sees them and accumulates in float32 (cblas_sgemm).
 * What it is not: a test of the CUDA kernels (make test-gpu does that on a
 * GPU), of concurrency between streams, or of timing.
 *
 * Controls (tests/fake_cuda.h): live allocation counts for leak checks, and
 * a failure injected into the N-th launcher call from now (error paths). */
#include "fake_cuda.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ts_dit_cuda.h"
#include "ts_kernels.h"
#include "ts_kernels_cuda.h"

static _Thread_local char fake_err[512];
/* counters are updated atomically: the tests run k ranks as k threads */
static int64_t fake_live_allocs, fake_live_bytes_n, fake_calls;
static int64_t fake_fail_at = -1; /* fake_calls value that fails, -1: none */
static int fake_fail_code = 2;     /* cudaErrorMemoryAllocation */

void fake_cuda_fail_in(int64_t n, int code) {
    fake_fail_at = n > 0 ? fake_calls + n : -1;
    fake_fail_code = code;
}
int64_t fake_cuda_live_allocs(void) { return __atomic_load_n(&fake_live_allocs, __ATOMIC_RELAXED); }
int64_t fake_cuda_live_bytes(void) { return __atomic_load_n(&fake_live_bytes_n, __ATOMIC_RELAXED); }
int64_t fake_cuda_calls(void) { return __atomic_load_n(&fake_calls, __ATOMIC_RELAXED); }

/* Every launcher starts with this: counts the call, fails it if asked. */
#define FAKE_CALL(name)                                                                            \
    do {                                                                                           \
        if (__atomic_add_fetch(&fake_calls, 1, __ATOMIC_RELAXED) == fake_fail_at) {                                                        \
            fake_fail_at = -1;                                                                     \
            snprintf(fake_err, sizeof fake_err, "tests/fake_cuda.c: %s: injected failure (%d)",   \
                     name, fake_fail_code);                                                        \
            return fake_fail_code;                                                                 \
        }                                                                                          \
    } while (0)

const char *ts_cuda_last_error(void) { return fake_err; }
const char *ts_cuda_error_string(int code) { return code ? "fake CUDA error" : "no error"; }

/* ------------------------------------------------------------ device */

/* Devices of this "machine": TS_FAKE_CUDA_DEVICES (default 8) physical
 * ones, of which CUDA_VISIBLE_DEVICES (a comma-separated list of indices)
 * shows some, like the real runtime does. */
static int fake_current = -1;

static int fake_physical(int i) { /* physical index of visible device i, or -1 */
    const char *e = getenv("TS_FAKE_CUDA_DEVICES");
    int n = e ? atoi(e) : 8;
    const char *vis = getenv("CUDA_VISIBLE_DEVICES");
    if (!vis) return i < n ? i : -1;
    for (const char *p = vis; *p;) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 0 || v >= n) return -1; /* like CUDA: the list stops at a bad entry */
        if (i-- == 0) return (int)v;
        p = *end == ',' ? end + 1 : end;
        if (*end != ',' && *end) return -1;
    }
    return -1;
}

static int fake_count(void) {
    int n = 0;
    while (fake_physical(n) >= 0) n++;
    return n;
}

int ts_cuda_backend_check(char *why, size_t len) {
    if (len) why[0] = '\0';
    if (fake_count() > 0) return 0;
    snprintf(why, len, "no CUDA device (fake: TS_FAKE_CUDA_DEVICES / CUDA_VISIBLE_DEVICES show none)");
    return 100;
}

int ts_cuda_device_count(int *count) {
    *count = fake_count();
    return 0;
}

int ts_cuda_device_init(int device, char *err, size_t len) {
    int n = fake_count();
    if (len) err[0] = '\0';
    if (device < 0 || device >= n) {
        snprintf(err, len, "needs CUDA device %d but this process sees %d (fake)", device, n);
        return 101;
    }
    fake_current = device;
    return 0;
}

int ts_cuda_device_describe(char *buf, size_t len) {
    snprintf(buf, len, "device %d: fake CUDA device (tests/fake_cuda.c), sm_90, 1 SMs, 80.0 GiB",
             fake_current);
    return 0;
}

int ts_cuda_device_info(TsCudaDeviceInfo *info) {
    memset(info, 0, sizeof *info);
    if (fake_current < 0) {
        snprintf(fake_err, sizeof fake_err, "tests/fake_cuda.c: no device selected");
        return 101;
    }
    int phys = fake_physical(fake_current);
    info->device = fake_current;
    snprintf(info->name, sizeof info->name, "fake CUDA device (tests/fake_cuda.c)");
    info->sm_major = 9;
    info->sms = 1;
    info->total_bytes = info->free_bytes = 80.0 * 1024 * 1024 * 1024;
    snprintf(info->pci, sizeof info->pci, "0000:%02x:00", phys & 0xff);
    memcpy(info->uuid, "fake-gpu-uuid-", 14);
    info->uuid[14] = (unsigned char)(phys >> 8), info->uuid[15] = (unsigned char)phys;
    return 0;
}

int ts_cuda_versions(char *buf, size_t len) {
    snprintf(buf, len, "driver fake (CUDA 0.0), CUDA runtime 0.0, cuBLAS 0.0.0");
    return 0;
}

/* ------------------------------------------------------------ memory */

/* Allocations carry their size in front, for the live-bytes count. */
static void *fake_alloc(size_t bytes) {
    size_t *p = malloc(bytes + 16);
    if (!p) return NULL;
    p[0] = bytes;
    memset((char *)p + 16, 0xff, bytes);
    __atomic_add_fetch(&fake_live_allocs, 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&fake_live_bytes_n, (int64_t)bytes, __ATOMIC_RELAXED);
    return (char *)p + 16;
}

static void fake_release(void *d) {
    if (!d) return;
    size_t *p = (size_t *)((char *)d - 16);
    __atomic_sub_fetch(&fake_live_allocs, 1, __ATOMIC_RELAXED);
    __atomic_sub_fetch(&fake_live_bytes_n, (int64_t)p[0], __ATOMIC_RELAXED);
    free(p);
}

int ts_cuda_malloc(void **dptr, size_t bytes) {
    *dptr = NULL;
    FAKE_CALL("cudaMalloc");
    *dptr = fake_alloc(bytes);
    return *dptr ? 0 : 2;
}

int ts_cuda_malloc_async(void **dptr, size_t bytes, void *stream) {
    (void)stream;
    *dptr = NULL;
    FAKE_CALL("cudaMallocAsync");
    *dptr = fake_alloc(bytes);
    return *dptr ? 0 : 2;
}

int ts_cuda_free(void *dptr) {
    fake_release(dptr);
    return 0;
}

int ts_cuda_free_async(void *dptr, void *stream) {
    (void)stream;
    fake_release(dptr);
    return 0;
}

int ts_cuda_memcpy_h2d(void *dst, const void *src, size_t bytes, void *stream) {
    (void)stream;
    FAKE_CALL("cudaMemcpyAsync(h2d)");
    if (bytes) memcpy(dst, src, bytes);
    return 0;
}

int ts_cuda_memcpy_d2h(void *dst, const void *src, size_t bytes, void *stream) {
    (void)stream;
    FAKE_CALL("cudaMemcpyAsync(d2h)");
    if (bytes) memcpy(dst, src, bytes);
    return 0;
}

int ts_cuda_memcpy_d2d(void *dst, const void *src, size_t bytes, void *stream) {
    (void)stream;
    FAKE_CALL("cudaMemcpyAsync(d2d)");
    if (bytes) memmove(dst, src, bytes);
    return 0;
}

int ts_cuda_memset(void *dptr, int value, size_t bytes, void *stream) {
    (void)stream;
    FAKE_CALL("cudaMemsetAsync");
    if (bytes) memset(dptr, value, bytes);
    return 0;
}

/* ------------------------------------------------------------ streams, events */

int ts_cuda_stream_create(void **stream) {
    *stream = NULL;
    FAKE_CALL("cudaStreamCreate");
    *stream = malloc(1);
    return 0;
}

int ts_cuda_stream_destroy(void *stream) {
    free(stream);
    return 0;
}

int ts_cuda_stream_sync(void *stream) {
    (void)stream;
    return 0;
}

int ts_cuda_stream_query(void *stream, int *done) {
    (void)stream;
    *done = 1;
    return 0;
}

typedef struct FakeEvent {
    double t;
} FakeEvent;

static double fake_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int ts_cuda_event_create(void **ev) {
    *ev = NULL;
    FAKE_CALL("cudaEventCreate");
    *ev = calloc(1, sizeof(FakeEvent));
    return 0;
}

int ts_cuda_event_create_sync(void **ev) { return ts_cuda_event_create(ev); }

int ts_cuda_event_destroy(void *ev) {
    free(ev);
    return 0;
}

int ts_cuda_event_record(void *ev, void *stream) {
    (void)stream;
    FAKE_CALL("cudaEventRecord");
    ((FakeEvent *)ev)->t = fake_now_s();
    return 0;
}

int ts_cuda_event_query(void *ev, int *done) {
    (void)ev;
    *done = 1;
    return 0;
}

int ts_cuda_event_elapsed_ms(void *start, void *end, float *ms) {
    *ms = (float)(1e3 * (((FakeEvent *)end)->t - ((FakeEvent *)start)->t));
    return 0;
}

/* ------------------------------------------------------------ kernels */

int ts_k_layernorm_cuda(float *out, const float *x, const float *w, const float *b, int64_t rows,
                        int cols, float eps, void *stream) {
    (void)stream;
    FAKE_CALL("layernorm");
    ts_k_layernorm_cpu(out, x, w, b, rows, cols, eps);
    return 0;
}

int ts_k_rmsnorm_cuda(float *out, const float *x, const float *w, int64_t rows, int cols, float eps,
                      void *stream) {
    (void)stream;
    FAKE_CALL("rmsnorm");
    ts_k_rmsnorm_cpu(out, x, w, rows, cols, eps);
    return 0;
}

int ts_k_adaln_modulate_cuda(float *out, const float *x, const float *shift, const float *scale,
                             int64_t rows, int cols, void *stream) {
    (void)stream;
    FAKE_CALL("adaln_modulate");
    ts_k_adaln_modulate_cpu(out, x, shift, scale, rows, cols);
    return 0;
}

int ts_k_rope_table_cuda(float *cos_t, float *sin_t, const float *pos, int64_t S, int n_axes,
                         const int *axes_dim, float theta, void *stream) {
    (void)stream;
    FAKE_CALL("rope_table");
    ts_k_rope_table_cpu(cos_t, sin_t, pos, S, n_axes, axes_dim, theta);
    return 0;
}

int ts_k_rope_cuda(float *x, int64_t ldx, const float *cos_t, const float *sin_t, int64_t S, int heads,
                   int head_dim, void *stream) {
    (void)stream;
    FAKE_CALL("rope");
    ts_k_rope_cpu(x, ldx, cos_t, sin_t, S, heads, head_dim);
    return 0;
}

int ts_k_gelu_tanh_cuda(float *out, const float *x, int64_t n, void *stream) {
    (void)stream;
    FAKE_CALL("gelu_tanh");
    ts_k_gelu_tanh_cpu(out, x, n);
    return 0;
}

int ts_k_silu_cuda(float *out, const float *x, int64_t n, void *stream) {
    (void)stream;
    FAKE_CALL("silu");
    ts_k_silu_cpu(out, x, n);
    return 0;
}

int ts_k_softmax_cuda(float *x, int64_t rows, int cols, void *stream) {
    (void)stream;
    FAKE_CALL("softmax");
    ts_k_softmax_cpu(x, rows, cols);
    return 0;
}

int ts_k_attention_cuda(float *out, const float *q, const float *k, const float *v, int64_t s_q,
                        int64_t s_kv, int heads, int head_dim, float scale, void *stream) {
    (void)stream;
    FAKE_CALL("attention");
    float *work = malloc(sizeof(float) * (size_t)ts_k_attention_work_floats(head_dim));
    ts_k_attention_cpu(out, q, k, v, s_q, s_kv, heads, head_dim, scale, work);
    free(work);
    return 0;
}

int ts_k_ulysses_pack_cuda(float *send, const float *x, int64_t ldx, int64_t s_loc, int heads,
                           int head_dim, int degree, void *stream) {
    (void)stream;
    FAKE_CALL("ulysses_pack");
    ts_k_ulysses_pack_cpu(send, x, ldx, s_loc, heads, head_dim, degree);
    return 0;
}

int ts_k_ulysses_unpack_cuda(float *x, int64_t ldx, const float *recv, int64_t s_loc, int heads,
                             int head_dim, int degree, void *stream) {
    (void)stream;
    FAKE_CALL("ulysses_unpack");
    ts_k_ulysses_unpack_cpu(x, ldx, recv, s_loc, heads, head_dim, degree);
    return 0;
}

int ts_k_euler_update_cuda(float *x, const float *v, int64_t n, float t, float t_next, void *stream) {
    (void)stream;
    FAKE_CALL("euler_update");
    ts_k_euler_update_cpu(x, v, n, t, t_next);
    return 0;
}

int ts_k_gated_residual_cuda(float *x, int64_t ldx, const float *y, int64_t ldy, const float *gate,
                             int64_t rows, int cols, void *stream) {
    (void)stream;
    FAKE_CALL("gated_residual");
    ts_k_gated_residual_cpu(x, ldx, y, ldy, gate, rows, cols);
    return 0;
}

int ts_k_bias_add_cuda(float *x, int64_t ldx, const float *b, int64_t rows, int cols, void *stream) {
    (void)stream;
    FAKE_CALL("bias_add");
    ts_k_bias_add_cpu(x, ldx, b, rows, cols);
    return 0;
}

int ts_k_timestep_embedding_cuda(float *out, float t, int dim, float max_period, void *stream) {
    (void)stream;
    FAKE_CALL("timestep_embedding");
    ts_k_timestep_embedding_cpu(out, t, dim, max_period);
    return 0;
}

int ts_k_patchify_cuda(float *tokens, const float *latent, int channels, int lat_h, int lat_w,
                       int patch, void *stream) {
    (void)stream;
    FAKE_CALL("patchify");
    ts_k_patchify_cpu(tokens, latent, channels, lat_h, lat_w, patch);
    return 0;
}

int ts_k_unpatchify_cuda(float *latent, const float *tokens, int channels, int lat_h, int lat_w,
                         int patch, void *stream) {
    (void)stream;
    FAKE_CALL("unpatchify");
    ts_k_unpatchify_cpu(latent, tokens, channels, lat_h, lat_w, patch);
    return 0;
}

int ts_k_f32_to_bf16_cuda(uint16_t *dst, const float *src, int64_t n, void *stream) {
    (void)stream;
    FAKE_CALL("f32_to_bf16");
    ts_k_f32_to_bf16_cpu(dst, src, n);
    return 0;
}

int ts_k_bf16_to_f32_cuda(float *dst, const uint16_t *src, int64_t n, void *stream) {
    (void)stream;
    FAKE_CALL("bf16_to_f32");
    ts_k_bf16_to_f32_cpu(dst, src, n);
    return 0;
}

int ts_k_fill_seeded_bf16_cuda(uint16_t *dst, int64_t n, uint64_t key, float amp, void *stream) {
    (void)stream;
    FAKE_CALL("fill_seeded_bf16");
    for (int64_t j = 0; j < n; j++) dst[j] = ts_m_f32_to_bf16(ts_m_seeded(key, amp, (uint64_t)j));
    return 0;
}

int ts_k_fill_seeded_f32_cuda(float *dst, int64_t n, uint64_t key, float amp, void *stream) {
    (void)stream;
    FAKE_CALL("fill_seeded_f32");
    ts_k_fill_seeded_cpu(dst, n, key, amp);
    return 0;
}

/* The two kernels of ts_dit_cuda_k.cu, from the same formulas. */
int ts_dit_k_to_bf16_2d_cuda(uint16_t *dst, int64_t ldd, const float *src, int64_t lds, int64_t rows,
                             int cols, int gelu_from, void *stream) {
    (void)stream;
    FAKE_CALL("to_bf16_2d");
    for (int64_t r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) {
            float v = src[r * lds + c];
            if (c >= gelu_from) v = ts_m_gelu_tanh(v);
            dst[r * ldd + c] = ts_m_f32_to_bf16(v);
        }
    return 0;
}

int ts_dit_k_qk_rmsnorm_cuda(float *x, int64_t ldx, const float *w, int64_t rows, int heads,
                             int head_dim, float eps, void *stream) {
    (void)stream;
    FAKE_CALL("qk_rmsnorm");
    for (int64_t r = 0; r < rows; r++)
        for (int h = 0; h < heads; h++) {
            float *xr = x + r * ldx + (int64_t)h * head_dim;
            float sq = 0.0f;
            for (int c = 0; c < head_dim; c++) sq += xr[c] * xr[c];
            float rstd = ts_m_rstd(sq / (float)head_dim, eps);
            for (int c = 0; c < head_dim; c++) xr[c] = ts_m_norm(xr[c], 0.0f, rstd) * w[c];
        }
    return 0;
}

/* ------------------------------------------------------------ GEMM */

int ts_gemm_cuda_create(void **handle) {
    *handle = NULL;
    FAKE_CALL("cublasCreate");
    *handle = malloc(1);
    return 0;
}

int ts_gemm_cuda_destroy(void *handle) {
    free(handle);
    return 0;
}

int ts_gemm_linear_bf16_cuda(void *handle, void *y, int y_bf16, int64_t ldy, const uint16_t *x,
                             int64_t ldx, const uint16_t *w, int64_t rows, int in, int out, float beta,
                             void *stream) {
    (void)handle;
    (void)stream;
    FAKE_CALL("cublasGemmEx");
    if (rows <= 0 || out <= 0) return 0;
    float *xf = malloc(sizeof(float) * (size_t)(rows * in)), *wf = malloc(sizeof(float) * (size_t)out * in);
    float *yf = malloc(sizeof(float) * (size_t)(rows * out));
    for (int64_t r = 0; r < rows; r++)
        for (int c = 0; c < in; c++) xf[r * in + c] = ts_m_bf16_to_f32(x[r * ldx + c]);
    ts_k_bf16_to_f32_cpu(wf, w, (int64_t)out * in);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, out, in, 1.0f, xf, in, wf, in,
                0.0f, yf, out);
    for (int64_t r = 0; r < rows; r++)
        for (int c = 0; c < out; c++) {
            float v = yf[r * out + c];
            if (y_bf16) {
                uint16_t *yb = (uint16_t *)y + r * ldy + c;
                *yb = ts_m_f32_to_bf16(v + (beta != 0.0f ? beta * ts_m_bf16_to_f32(*yb) : 0.0f));
            } else {
                float *yp = (float *)y + r * ldy + c;
                *yp = v + (beta != 0.0f ? beta * *yp : 0.0f);
            }
        }
    free(xf), free(wf), free(yf);
    return 0;
}
