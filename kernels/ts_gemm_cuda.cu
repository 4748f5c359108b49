// ts_gemm_cuda.cu - cuBLAS GEMM for the cuda backend: bf16 inputs, float32
// accumulation (CUBLAS_COMPUTE_32F), float32 or bf16 output. Row-major
// linear layers expressed in cuBLAS's column-major terms.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "ts_cuda_check.h"
#include "ts_kernels_cuda.h"

#define ts_cublas_check(call)                                                                      \
    do {                                                                                           \
        cublasStatus_t ts_s_ = (call);                                                             \
        if (ts_s_ != CUBLAS_STATUS_SUCCESS)                                                        \
            return ts_cuda_record_error((int)ts_s_, #call, __FILE__, __LINE__,                    \
                                        cublasGetStatusString(ts_s_));                             \
    } while (0)

extern "C" int ts_gemm_cuda_create(void **handle) {
    cublasHandle_t h = nullptr;
    ts_cublas_check(cublasCreate(&h));
    *handle = h;
    return 0;
}

extern "C" int ts_gemm_cuda_destroy(void *handle) {
    ts_cublas_check(cublasDestroy(static_cast<cublasHandle_t>(handle)));
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
    cublasHandle_t h = static_cast<cublasHandle_t>(handle);
    const float alpha = 1.0f;
    ts_cublas_check(cublasSetStream(h, static_cast<cudaStream_t>(stream)));
    ts_cublas_check(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, out, (int)rows, in, &alpha, w,
                                 CUDA_R_16BF, in, x, CUDA_R_16BF, (int)ldx, &beta, y,
                                 y_bf16 ? CUDA_R_16BF : CUDA_R_32F, (int)ldy, CUBLAS_COMPUTE_32F,
                                 CUBLAS_GEMM_DEFAULT));
    return 0;
}
