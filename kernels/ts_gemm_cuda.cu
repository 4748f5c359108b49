// ts_gemm_cuda.cu - cuBLAS GEMM for the cuda backend: bf16 inputs, float32
// accumulation (CUBLAS_COMPUTE_32F), float32 or bf16 output. Row-major
// linear layers expressed in cuBLAS's column-major terms.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <new>

#include "ts_cuda_check.h"
#include "ts_kernels_cuda.h"

#define ts_cublas_check(call)                                                                      \
    do {                                                                                           \
        cublasStatus_t ts_s_ = (call);                                                             \
        if (ts_s_ != CUBLAS_STATUS_SUCCESS)                                                        \
            return ts_cuda_record_error((int)ts_s_, #call, __FILE__, __LINE__,                    \
                                        cublasGetStatusString(ts_s_));                             \
    } while (0)

// The handle and its workspace: cuBLAS would otherwise allocate one on the
// first GEMM of each stream, with cudaMalloc, in the middle of a run.
// cublasSetStream resets the workspace to cuBLAS's own pool, so the stream is
// switched only when it changes, and the workspace set again right after.
struct TsGemm {
    cublasHandle_t h;
    void *ws;
    cudaStream_t stream;
};
static const size_t TS_GEMM_WS_BYTES = (size_t)32 << 20; // NVIDIA's figure for Hopper

extern "C" int ts_gemm_cuda_create(void **handle) {
    *handle = nullptr;
    TsGemm *g = new (std::nothrow) TsGemm{nullptr, nullptr, nullptr};
    if (!g) return ts_cuda_record_error(0, "new TsGemm", __FILE__, __LINE__, "out of memory");
    int rc = 0;
    cublasStatus_t s = cublasCreate(&g->h);
    if (s != CUBLAS_STATUS_SUCCESS) {
        rc = ts_cuda_record_error((int)s, "cublasCreate(&g->h)", __FILE__, __LINE__,
                                  cublasGetStatusString(s));
        goto fail;
    }
    {
        cudaError_t e = cudaMalloc(&g->ws, TS_GEMM_WS_BYTES);
        if (e != cudaSuccess) {
            rc = ts_cuda_record_error((int)e, "cudaMalloc(&g->ws, TS_GEMM_WS_BYTES)", __FILE__,
                                      __LINE__, cudaGetErrorString(e));
            goto fail;
        }
    }
    s = cublasSetWorkspace(g->h, g->ws, TS_GEMM_WS_BYTES);
    if (s != CUBLAS_STATUS_SUCCESS) {
        rc = ts_cuda_record_error((int)s, "cublasSetWorkspace(g->h, g->ws, TS_GEMM_WS_BYTES)",
                                  __FILE__, __LINE__, cublasGetStatusString(s));
        goto fail;
    }
    *handle = g;
    return 0;
fail:
    if (g->h) (void)cublasDestroy(g->h);
    if (g->ws) (void)cudaFree(g->ws);
    delete g;
    return rc;
}

extern "C" int ts_gemm_cuda_destroy(void *handle) {
    TsGemm *g = static_cast<TsGemm *>(handle);
    if (!g) return 0;
    cublasStatus_t s = cublasDestroy(g->h);
    cudaError_t e = g->ws ? cudaFree(g->ws) : cudaSuccess;
    delete g;
    if (s != CUBLAS_STATUS_SUCCESS)
        return ts_cuda_record_error((int)s, "cublasDestroy(g->h)", __FILE__, __LINE__,
                                    cublasGetStatusString(s));
    ts_cuda_check(e);
    return 0;
}

// Row-major y[rows, out] = x[rows, in] W^T with W [out, in]: in column-major
// terms y^T [out, rows] = W [out, in] (stored as W^T, so op T) times x^T
// [in, rows] (op N).
extern "C" int ts_gemm_linear_bf16_cuda(void *handle, void *y, int y_bf16, int64_t ldy,
                                        const uint16_t *x, int64_t ldx, const uint16_t *w,
                                        int64_t rows, int in, int out, float beta, void *stream) {
    if (rows <= 0 || out <= 0) return 0;
    if (rows > 0x7fffffff || ldx > 0x7fffffff || ldy > 0x7fffffff)
        return ts_cuda_record_error(0, "ts_gemm_linear_bf16_cuda", __FILE__, __LINE__,
                                    "dimension above INT_MAX");
    TsGemm *g = static_cast<TsGemm *>(handle);
    cublasHandle_t h = g->h;
    const float alpha = 1.0f;
    cudaStream_t st = static_cast<cudaStream_t>(stream);
    if (st != g->stream) {
        ts_cublas_check(cublasSetStream(h, st));
        ts_cublas_check(cublasSetWorkspace(h, g->ws, TS_GEMM_WS_BYTES));
        g->stream = st;
    }
    ts_cublas_check(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, out, (int)rows, in, &alpha, w,
                                 CUDA_R_16BF, in, x, CUDA_R_16BF, (int)ldx, &beta, y,
                                 y_bf16 ? CUDA_R_16BF : CUDA_R_32F, (int)ldy, CUBLAS_COMPUTE_32F,
                                 CUBLAS_GEMM_DEFAULT));
    return 0;
}
