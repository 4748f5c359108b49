// ts_dit_cuda_k.cu - the device pieces the GPU DiT step (ts_dit_cuda.c) adds
// to ts_kernels.cu: strided bf16 staging with a fused GELU, the QK RMS norm
// over the strided q/k columns of a qkv buffer, device selection, the
// no-GPU check, stream polling and events. Launchers as in ts_kernels_cuda.h:
// 0 or a CUDA code, message for ts_cuda_last_error().
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

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
    *ev = nullptr;
    ts_cuda_check(cudaEventCreate(&e));
    *ev = e;
    return 0;
}

extern "C" int ts_cuda_event_create_sync(void **ev) {
    cudaEvent_t e = nullptr;
    *ev = nullptr;
    ts_cuda_check(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
    *ev = e;
    return 0;
}

extern "C" int ts_cuda_event_destroy(void *ev) {
    if (!ev) return 0;
    ts_cuda_check(cudaEventDestroy(static_cast<cudaEvent_t>(ev)));
    return 0;
}

extern "C" int ts_cuda_event_record(void *ev, void *stream) {
    ts_cuda_check(cudaEventRecord(static_cast<cudaEvent_t>(ev), as_stream(stream)));
    return 0;
}

extern "C" int ts_cuda_event_query(void *ev, int *done) {
    cudaError_t e = cudaEventQuery(static_cast<cudaEvent_t>(ev));
    *done = e == cudaSuccess;
    if (e == cudaErrorNotReady) {
        (void)cudaGetLastError(); // not an error
        return 0;
    }
    ts_cuda_check(e);
    return 0;
}

// Never waits (an unbounded cudaEventSynchronize could hang on a stuck
// device): the caller has waited for the stream, with a timeout, first.
extern "C" int ts_cuda_event_elapsed_ms(void *start, void *end, float *ms) {
    int done = 0;
    *ms = 0.0f;
    if (ts_cuda_event_query(end, &done) != 0) return -1;
    if (!done)
        return ts_cuda_record_error((int)cudaErrorNotReady, "ts_cuda_event_elapsed_ms", __FILE__,
                                    __LINE__, "end event not reached yet (wait for the stream first)");
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

extern "C" int ts_cuda_device_init(int device, char *err, size_t len) {
    int count = 0;
    if (len > 0) err[0] = '\0';
    int rc = device_count(&count, err, len);
    if (rc != 0) return rc;
    if (device < 0 || device >= count) {
        snprintf(err, len,
                 "needs CUDA device %d but this process sees %d (one GPU per worker: start at most "
                 "%d workers per node, or check CUDA_VISIBLE_DEVICES)",
                 device, count, count);
        return (int)cudaErrorInvalidDevice;
    }
    const char *call = "cudaSetDevice";
    cudaError_t e = cudaSetDevice(device);
    if (e == cudaSuccess) {
        call = "cudaFree(nullptr)"; // create the context now, not in the first step
        e = cudaFree(nullptr);
    }
    int pools = 0;
    if (e == cudaSuccess) {
        call = "cudaDeviceGetAttribute(cudaDevAttrMemoryPoolsSupported)";
        e = cudaDeviceGetAttribute(&pools, cudaDevAttrMemoryPoolsSupported, device);
    }
    if (e == cudaSuccess && !pools) {
        snprintf(err, len, "CUDA device %d has no stream-ordered memory pools (cudaMallocAsync), "
                 "which the cuda backend needs", device);
        return (int)cudaErrorNotSupported;
    }
    if (e == cudaSuccess) {
        // Keep freed blocks in the pool: latents and workspaces come and go
        // every launch; returning them to the driver at each synchronisation
        // would make allocation slow and its cost unpredictable.
        cudaMemPool_t pool = nullptr;
        call = "cudaDeviceGetDefaultMemPool";
        e = cudaDeviceGetDefaultMemPool(&pool, device);
        if (e == cudaSuccess) {
            uint64_t keep = UINT64_MAX;
            call = "cudaMemPoolSetAttribute(cudaMemPoolAttrReleaseThreshold)";
            e = cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep);
        }
    }
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        snprintf(err, len, "%s:%d: %s on device %d: %s", __FILE__, __LINE__, call, device,
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

extern "C" int ts_cuda_device_info(TsCudaDeviceInfo *info) {
    int dev = 0;
    cudaDeviceProp p;
    memset(info, 0, sizeof *info);
    ts_cuda_check(cudaGetDevice(&dev));
    ts_cuda_check(cudaGetDeviceProperties(&p, dev));
    info->device = dev;
    snprintf(info->name, sizeof info->name, "%s", p.name);
    info->sm_major = p.major;
    info->sm_minor = p.minor;
    info->sms = p.multiProcessorCount;
    info->total_bytes = (double)p.totalGlobalMem;
    memcpy(info->uuid, p.uuid.bytes, sizeof info->uuid);
    snprintf(info->pci, sizeof info->pci, "%04x:%02x:%02x", p.pciDomainID, p.pciBusID, p.pciDeviceID);
    size_t free_b = 0, total_b = 0;
    ts_cuda_check(cudaMemGetInfo(&free_b, &total_b));
    info->free_bytes = (double)free_b;
    return 0;
}

// "550.54.15" from the kernel module, when the driver says (Linux).
static void driver_release(char *buf, size_t len) {
    snprintf(buf, len, "?");
    FILE *f = fopen("/proc/driver/nvidia/version", "r");
    if (!f) return;
    char line[256];
    if (fgets(line, sizeof line, f)) {
        // "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15  Tue Mar ..."
        const char *k = strstr(line, "Kernel Module");
        if (k) {
            k += strlen("Kernel Module");
            while (*k == ' ') k++;
            size_t n = strcspn(k, " \n");
            if (n > 0 && n < len) {
                memcpy(buf, k, n);
                buf[n] = '\0';
            }
        }
    }
    fclose(f);
}

extern "C" int ts_cuda_versions(char *buf, size_t len) {
    int drv = 0, rt = 0, cb[3] = {0, 0, 0};
    char rel[64];
    (void)cudaDriverGetVersion(&drv); // 0 without a driver: reported as such
    (void)cudaRuntimeGetVersion(&rt);
    (void)cudaGetLastError();
    (void)cublasGetProperty(MAJOR_VERSION, &cb[0]);
    (void)cublasGetProperty(MINOR_VERSION, &cb[1]);
    (void)cublasGetProperty(PATCH_LEVEL, &cb[2]);
    driver_release(rel, sizeof rel);
    snprintf(buf, len, "driver %s (CUDA %d.%d), CUDA runtime %d.%d, cuBLAS %d.%d.%d", rel,
             drv / 1000, (drv % 1000) / 10, rt / 1000, (rt % 1000) / 10, cb[0], cb[1], cb[2]);
    return 0;
}
