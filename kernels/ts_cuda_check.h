/* ts_cuda_check.h - CHECK wrappers for the .cu files of kernels/ (C++ only,
 * never included from C). A failing call records "file:line: call: message"
 * for ts_cuda_last_error() and makes the launcher return the error code. */
#ifndef TS_CUDA_CHECK_H
#define TS_CUDA_CHECK_H

#include <cuda_runtime.h>

/* Record a failure (msg from cudaGetErrorString / cublasGetStatusString);
 * returns code, or -1 when code is 0 (a failure without a CUDA code). */
int ts_cuda_record_error(int code, const char *call, const char *file, int line, const char *msg);

#define ts_cuda_check(call)                                                                        \
    do {                                                                                           \
        cudaError_t ts_e_ = (call);                                                                \
        if (ts_e_ != cudaSuccess)                                                                  \
            return ts_cuda_record_error((int)ts_e_, #call, __FILE__, __LINE__,                    \
                                        cudaGetErrorString(ts_e_));                                \
    } while (0)

/* After a <<<>>> launch: configuration errors are reported synchronously. */
#define ts_cuda_check_launch(name) ts_cuda_check(cudaGetLastError())

#endif
