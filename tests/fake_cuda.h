/* fake_cuda.h - controls of the CPU stand-in for the CUDA launchers
 * (tests/fake_cuda.c), for tests of the cuda backend's host logic. */
#ifndef FAKE_CUDA_H
#define FAKE_CUDA_H

#include <stdint.h>

/* Make the n-th launcher call from now (n >= 1) fail with CUDA code `code`
 * (2: out of memory); n <= 0 cancels. */
void fake_cuda_fail_in(int64_t n, int code);
/* Device allocations not freed yet, and their bytes. */
int64_t fake_cuda_live_allocs(void);
int64_t fake_cuda_live_bytes(void);
/* Launcher calls so far (to size failure-injection loops). */
int64_t fake_cuda_calls(void);

#endif
