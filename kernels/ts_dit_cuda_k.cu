// ts_dit_cuda_k.cu - the device pieces the GPU DiT step (ts_dit_cuda.c) adds
// to ts_kernels.cu: strided bf16 staging with a fused GELU, the QK RMS norm
// over the strided q/k columns of a qkv buffer, device selection, the
// no-GPU check, stream polling and events. Launchers as in ts_kernels_cuda.h:
// 0 or a CUDA code, message for ts_cuda_last_error().
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <stdio.h>

#include "ts_cuda_check.h"
#include "ts_dit_cuda.h"
#include "ts_kernels_cuda.h"
#include "ts_kernels_math.h"

static cudaStream_t as_stream(void *s) { return static_cast<cudaStream_t>(s); }

static const int TS_DC_THREADS = 256;

static unsigned dc_grid(int64_t n) {
    int64_t b = (n + TS_DC_THREADS - 1) / TS_DC_THREADS;
    if (b < 1) b = 1;
    if (b > 65535LL * 32) b = 65535LL * 32; // grid-stride loops cover the rest
    return (unsigned)b;
}

// ------------------------------------------------------------ kernels

// dst[r, c] = bf16(c >= gelu_from ? gelu(src[r, c]) : src[r, c])
__global__ static void to_bf16_2d_kernel(__nv_bfloat16 *dst, int64_t ldd, const float *src,
                                         int64_t lds, int64_t n, int cols, int gelu_from) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        int64_t r = i / cols;
        int c = (int)(i % cols);
        float v = src[r * lds + c];
        if (c >= gelu_from) v = ts_m_gelu_tanh(v);
        dst[r * ldd + c] = __float2bfloat16_rn(v);
    }
}

extern "C" int ts_dit_k_to_bf16_2d_cuda(uint16_t *dst, int64_t ldd, const float *src, int64_t lds,
                                        int64_t rows, int cols, int gelu_from, void *stream) {
    int64_t n = rows * cols;
    if (n <= 0) return 0;
    to_bf16_2d_kernel<<<dc_grid(n), TS_DC_THREADS, 0, as_stream(stream)>>>(
        reinterpret_cast<__nv_bfloat16 *>(dst), ldd, src, lds, n, cols, gelu_from);
    ts_cuda_check_launch(to_bf16_2d_kernel);
    return 0;
}

// One warp per (token, head): RMS norm of x[r, h*D .. (h+1)*D) in place.
__global__ static void qk_rmsnorm_kernel(float *x, int64_t ldx, const float *w, int64_t n_vec,
                                         int heads, int head_dim, float eps) {
    int64_t v = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    int lane = threadIdx.x & 31;
    if (v >= n_vec) return; // whole warps exit together
    float *xr = x + (v / heads) * ldx + (v % heads) * (int64_t)head_dim;
    float sq = 0.0f;
    for (int c = lane; c < head_dim; c += 32) sq += xr[c] * xr[c];
    for (int o = 16; o > 0; o >>= 1) sq += __shfl_xor_sync(0xffffffffu, sq, o);
    float rstd = ts_m_rstd(sq / (float)head_dim, eps);
    for (int c = lane; c < head_dim; c += 32) xr[c] = ts_m_norm(xr[c], 0.0f, rstd) * w[c];
}

extern "C" int ts_dit_k_qk_rmsnorm_cuda(float *x, int64_t ldx, const float *w, int64_t rows,
                                        int heads, int head_dim, float eps, void *stream) {
    int64_t n_vec = rows * heads;
    if (n_vec <= 0) return 0;
    unsigned blocks = (unsigned)((n_vec * 32 + TS_DC_THREADS - 1) / TS_DC_THREADS);
    qk_rmsnorm_kernel<<<blocks, TS_DC_THREADS, 0, as_stream(stream)>>>(x, ldx, w, n_vec, heads,
                                                                       head_dim, eps);
    ts_cuda_check_launch(qk_rmsnorm_kernel);
    return 0;
}

extern "C" int ts_cuda_memcpy_d2d(void *dst, const void *src, size_t bytes, void *stream) {
    if (bytes == 0) return 0;
    ts_cuda_check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, as_stream(stream)));
    return 0;
}

extern "C" int ts_cuda_stream_query(void *stream, int *done) {
    cudaError_t e = cudaStreamQuery(as_stream(stream));
    *done = e == cudaSuccess;
    if (e == cudaErrorNotReady) {
        (void)cudaGetLastError(); // not an error: do not leave it sticky for the next check
        return 0;
    }
    ts_cuda_check(e);
    return 0;
}

extern "C" int ts_cuda_event_create(void **ev) {
    cudaEvent_t e = nullptr;
    ts_cuda_check(cudaEventCreate(&e));
    *ev = e;
    return 0;
}

extern "C" int ts_cuda_event_destroy(void *ev) {
    ts_cuda_check(cudaEventDestroy(static_cast<cudaEvent_t>(ev)));
    return 0;
}

extern "C" int ts_cuda_event_record(void *ev, void *stream) {
    ts_cuda_check(cudaEventRecord(static_cast<cudaEvent_t>(ev), as_stream(stream)));
    return 0;
}

extern "C" int ts_cuda_event_elapsed_ms(void *start, void *end, float *ms) {
    ts_cuda_check(cudaEventSynchronize(static_cast<cudaEvent_t>(end)));
    ts_cuda_check(cudaEventElapsedTime(ms, static_cast<cudaEvent_t>(start),
                                       static_cast<cudaEvent_t>(end)));
    return 0;
}

// ------------------------------------------------------------ devices

// Without a GPU cudaGetDeviceCount fails (35 insufficient driver, 100 no
// device, 34 stub library) or reports 0: both mean "no CUDA device".
static int device_count(int *count, char *why, size_t len) {
    *count = 0;
    cudaError_t e = cudaGetDeviceCount(count);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        snprintf(why, len, "no CUDA device (%s)", cudaGetErrorString(e));
        *count = 0;
        return (int)e;
    }
    if (*count <= 0) {
        snprintf(why, len, "no CUDA device (cudaGetDeviceCount found 0)");
        return (int)cudaErrorNoDevice;
    }
    return 0;
}

extern "C" int ts_cuda_backend_check(char *why, size_t len) {
    int count = 0;
    if (len > 0) why[0] = '\0';
    return device_count(&count, why, len);
}

extern "C" int ts_cuda_device_init(int local_rank, char *err, size_t len) {
    int count = 0;
    if (len > 0) err[0] = '\0';
    int rc = device_count(&count, err, len);
    if (rc != 0) return rc;
    if (local_rank < 0 || local_rank >= count) {
        snprintf(err, len,
                 "local rank %d needs CUDA device %d but this node shows %d (one GPU per worker: "
                 "start at most %d workers per node, or set CUDA_VISIBLE_DEVICES)",
                 local_rank, local_rank, count, count);
        return (int)cudaErrorInvalidDevice;
    }
    cudaError_t e = cudaSetDevice(local_rank);
    if (e == cudaSuccess) e = cudaFree(nullptr); // create the context now, not in the first step
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        snprintf(err, len, "%s:%d: cudaSetDevice(%d): %s", __FILE__, __LINE__, local_rank,
                 cudaGetErrorString(e));
        return (int)e;
    }
    return 0;
}

extern "C" int ts_cuda_device_describe(char *buf, size_t len) {
    int dev = 0;
    cudaDeviceProp p;
    ts_cuda_check(cudaGetDevice(&dev));
    ts_cuda_check(cudaGetDeviceProperties(&p, dev));
    snprintf(buf, len, "device %d: %s, sm_%d%d, %d SMs, %.1f GiB", dev, p.name, p.major, p.minor,
             p.multiProcessorCount, (double)p.totalGlobalMem / (1024.0 * 1024.0 * 1024.0));
    return 0;
}
