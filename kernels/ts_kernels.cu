// ts_kernels.cu - CUDA twins of the CPU kernels (see ts_kernels_cuda.h for
// the conventions, ts_kernels.h for the shapes). float32 storage and
// accumulation; the per-element formulas come from ts_kernels_math.h, shared
// with the CPU twins.
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdio.h>

#include "ts_cuda_check.h"
#include "ts_kernels_cuda.h"
#include "ts_kernels_math.h"

// ------------------------------------------------------------ errors

static thread_local char ts_cuda_errbuf[512];

int ts_cuda_record_error(int code, const char *call, const char *file, int line, const char *msg) {
    snprintf(ts_cuda_errbuf, sizeof ts_cuda_errbuf, "%s:%d: %s: %s (%d)", file, line, call, msg, code);
    return code != 0 ? code : -1;
}

extern "C" const char *ts_cuda_last_error(void) { return ts_cuda_errbuf; }

extern "C" const char *ts_cuda_error_string(int code) { return cudaGetErrorString((cudaError_t)code); }

static cudaStream_t as_stream(void *s) { return static_cast<cudaStream_t>(s); }

extern "C" int ts_cuda_device_count(int *count) {
    *count = 0;
    ts_cuda_check(cudaGetDeviceCount(count));
    return 0;
}

extern "C" int ts_cuda_malloc(void **dptr, size_t bytes) {
    ts_cuda_check(cudaMalloc(dptr, bytes));
    return 0;
}

extern "C" int ts_cuda_free(void *dptr) {
    ts_cuda_check(cudaFree(dptr));
    return 0;
}

extern "C" int ts_cuda_memcpy_h2d(void *dst, const void *src, size_t bytes, void *stream) {
    ts_cuda_check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, as_stream(stream)));
    return 0;
}

extern "C" int ts_cuda_memcpy_d2h(void *dst, const void *src, size_t bytes, void *stream) {
    ts_cuda_check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, as_stream(stream)));
    return 0;
}

extern "C" int ts_cuda_memset(void *dptr, int value, size_t bytes, void *stream) {
    ts_cuda_check(cudaMemsetAsync(dptr, value, bytes, as_stream(stream)));
    return 0;
}

extern "C" int ts_cuda_stream_create(void **stream) {
    cudaStream_t s = nullptr;
    ts_cuda_check(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    *stream = s;
    return 0;
}

extern "C" int ts_cuda_stream_destroy(void *stream) {
    ts_cuda_check(cudaStreamDestroy(as_stream(stream)));
    return 0;
}

extern "C" int ts_cuda_stream_sync(void *stream) {
    ts_cuda_check(cudaStreamSynchronize(as_stream(stream)));
    return 0;
}

extern "C" int ts_cuda_malloc_async(void **dptr, size_t bytes, void *stream) {
    *dptr = nullptr;
    ts_cuda_check(cudaMallocAsync(dptr, bytes, as_stream(stream)));
    return 0;
}

extern "C" int ts_cuda_free_async(void *dptr, void *stream) {
    if (!dptr) return 0;
    ts_cuda_check(cudaFreeAsync(dptr, as_stream(stream)));
    return 0;
}

// ------------------------------------------------------------ helpers

static const int TS_THREADS = 256;

static unsigned grid_for(int64_t n) {
    int64_t b = (n + TS_THREADS - 1) / TS_THREADS;
    if (b < 1) b = 1;
    if (b > 65535LL * 32) b = 65535LL * 32; // grid-stride loops cover the rest
    return (unsigned)b;
}

#define TS_GRID_STRIDE(i, n)                                                                       \
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n);                     \
         i += (int64_t)gridDim.x * blockDim.x)

// Sum over the block (blockDim.x a multiple of 32, <= 1024); all threads get it.
__device__ static float block_sum(float v) {
    __shared__ float part[32];
    __shared__ float total;
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) part[warp] = v;
    __syncthreads();
    if (warp == 0) {
        int nw = (int)(blockDim.x >> 5);
        float s = lane < nw ? part[lane] : 0.0f;
        for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
        if (lane == 0) total = s;
    }
    __syncthreads();
    float r = total;
    __syncthreads(); // part/total may be reused by the next call
    return r;
}

__device__ static float block_max(float v) {
    __shared__ float part[32];
    __shared__ float total;
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) part[warp] = v;
    __syncthreads();
    if (warp == 0) {
        int nw = (int)(blockDim.x >> 5);
        float s = lane < nw ? part[lane] : -INFINITY;
        for (int o = 16; o > 0; o >>= 1) s = fmaxf(s, __shfl_xor_sync(0xffffffffu, s, o));
        if (lane == 0) total = s;
    }
    __syncthreads();
    float r = total;
    __syncthreads();
    return r;
}

// ------------------------------------------------------------ norms

// one block per row; two passes (mean, then centred variance) like the CPU twin
__global__ static void layernorm_kernel(float *out, const float *x, const float *w, const float *b,
                                        int cols, float eps) {
    const float *xr = x + (int64_t)blockIdx.x * cols;
    float *orow = out + (int64_t)blockIdx.x * cols;
    float s = 0.0f;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) s += xr[c];
    float mean = block_sum(s) / (float)cols;
    float sq = 0.0f;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) {
        float d = xr[c] - mean;
        sq += d * d;
    }
    float rstd = ts_m_rstd(block_sum(sq) / (float)cols, eps);
    for (int c = threadIdx.x; c < cols; c += blockDim.x) {
        float y = ts_m_norm(xr[c], mean, rstd);
        if (w) y *= w[c];
        if (b) y += b[c];
        orow[c] = y;
    }
}

extern "C" int ts_k_layernorm_cuda(float *out, const float *x, const float *w, const float *b,
                                   int64_t rows, int cols, float eps, void *stream) {
    if (rows <= 0) return 0;
    layernorm_kernel<<<(unsigned)rows, TS_THREADS, 0, as_stream(stream)>>>(out, x, w, b, cols, eps);
    ts_cuda_check_launch(layernorm_kernel);
    return 0;
}

// one warp per row: rows are head_dim wide (64..256)
__global__ static void rmsnorm_kernel(float *out, const float *x, const float *w, int64_t rows,
                                      int cols, float eps) {
    int64_t r = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    int lane = threadIdx.x & 31;
    if (r >= rows) return; // whole warps exit together: r is uniform in a warp
    const float *xr = x + r * cols;
    float sq = 0.0f;
    for (int c = lane; c < cols; c += 32) sq += xr[c] * xr[c];
    for (int o = 16; o > 0; o >>= 1) sq += __shfl_xor_sync(0xffffffffu, sq, o);
    float rstd = ts_m_rstd(sq / (float)cols, eps);
    for (int c = lane; c < cols; c += 32) out[r * cols + c] = ts_m_norm(xr[c], 0.0f, rstd) * w[c];
}

extern "C" int ts_k_rmsnorm_cuda(float *out, const float *x, const float *w, int64_t rows, int cols,
                                 float eps, void *stream) {
    if (rows <= 0) return 0;
    unsigned blocks = (unsigned)((rows * 32 + TS_THREADS - 1) / TS_THREADS);
    rmsnorm_kernel<<<blocks, TS_THREADS, 0, as_stream(stream)>>>(out, x, w, rows, cols, eps);
    ts_cuda_check_launch(rmsnorm_kernel);
    return 0;
}

// ------------------------------------------------------------ elementwise

__global__ static void modulate_kernel(float *out, const float *x, const float *shift,
                                       const float *scale, int64_t n, int cols) {
    TS_GRID_STRIDE(i, n) {
        int c = (int)(i % cols);
        out[i] = ts_m_modulate(x[i], shift[c], scale[c]);
    }
}

extern "C" int ts_k_adaln_modulate_cuda(float *out, const float *x, const float *shift,
                                        const float *scale, int64_t rows, int cols, void *stream) {
    int64_t n = rows * cols;
    if (n <= 0) return 0;
    modulate_kernel<<<grid_for(n), TS_THREADS, 0, as_stream(stream)>>>(out, x, shift, scale, n, cols);
    ts_cuda_check_launch(modulate_kernel);
    return 0;
}

struct RopeAxes {
    int n;
    int dim[4];
};

__global__ static void rope_table_kernel(float *cos_t, float *sin_t, const float *pos, int64_t S,
                                         RopeAxes axes, float theta) {
    int half = 0;
    for (int a = 0; a < axes.n; a++) half += axes.dim[a] / 2;
    TS_GRID_STRIDE(idx, S * half) {
        int64_t s = idx / half;
        int j = (int)(idx % half), a = 0;
        while (j >= axes.dim[a] / 2) j -= axes.dim[a++] / 2;
        double ang = ts_m_rope_angle(pos[s * axes.n + a], j, axes.dim[a], theta);
        cos_t[idx] = (float)cos(ang);
        sin_t[idx] = (float)sin(ang);
    }
}

extern "C" int ts_k_rope_table_cuda(float *cos_t, float *sin_t, const float *pos, int64_t S,
                                    int n_axes, const int *axes_dim, float theta, void *stream) {
    if (n_axes < 1 || n_axes > 4)
        return ts_cuda_record_error(0, "ts_k_rope_table_cuda", __FILE__, __LINE__,
                                    "n_axes must be 1..4");
    RopeAxes axes = {n_axes, {0, 0, 0, 0}};
    int half = 0;
    for (int a = 0; a < n_axes; a++) axes.dim[a] = axes_dim[a], half += axes_dim[a] / 2;
    if (S <= 0 || half == 0) return 0;
    rope_table_kernel<<<grid_for(S * half), TS_THREADS, 0, as_stream(stream)>>>(cos_t, sin_t, pos, S,
                                                                                 axes, theta);
    ts_cuda_check_launch(rope_table_kernel);
    return 0;
}

__global__ static void rope_kernel(float *x, int64_t ldx, const float *cos_t, const float *sin_t,
                                   int64_t S, int heads, int head_dim) {
    int half = head_dim / 2;
    TS_GRID_STRIDE(idx, S * heads * half) {
        int64_t s = idx / ((int64_t)heads * half);
        int rem = (int)(idx % ((int64_t)heads * half));
        int h = rem / half, i = rem % half;
        float *p = x + s * ldx + (int64_t)h * head_dim + 2 * i;
        float y0, y1;
        ts_m_rope_pair(p[0], p[1], cos_t[s * half + i], sin_t[s * half + i], &y0, &y1);
        p[0] = y0;
        p[1] = y1;
    }
}

extern "C" int ts_k_rope_cuda(float *x, int64_t ldx, const float *cos_t, const float *sin_t,
                              int64_t S, int heads, int head_dim, void *stream) {
    int64_t n = S * heads * (head_dim / 2);
    if (n <= 0) return 0;
    rope_kernel<<<grid_for(n), TS_THREADS, 0, as_stream(stream)>>>(x, ldx, cos_t, sin_t, S, heads,
                                                                   head_dim);
    ts_cuda_check_launch(rope_kernel);
    return 0;
}

__global__ static void gelu_kernel(float *out, const float *x, int64_t n) {
    TS_GRID_STRIDE(i, n) out[i] = ts_m_gelu_tanh(x[i]);
}

__global__ static void silu_kernel(float *out, const float *x, int64_t n) {
    TS_GRID_STRIDE(i, n) out[i] = ts_m_silu(x[i]);
}

extern "C" int ts_k_gelu_tanh_cuda(float *out, const float *x, int64_t n, void *stream) {
    if (n <= 0) return 0;
    gelu_kernel<<<grid_for(n), TS_THREADS, 0, as_stream(stream)>>>(out, x, n);
    ts_cuda_check_launch(gelu_kernel);
    return 0;
}

extern "C" int ts_k_silu_cuda(float *out, const float *x, int64_t n, void *stream) {
    if (n <= 0) return 0;
    silu_kernel<<<grid_for(n), TS_THREADS, 0, as_stream(stream)>>>(out, x, n);
    ts_cuda_check_launch(silu_kernel);
    return 0;
}

__global__ static void softmax_kernel(float *x, int cols) {
    float *xr = x + (int64_t)blockIdx.x * cols;
    float m = -INFINITY;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) m = fmaxf(m, xr[c]);
    m = block_max(m);
    float s = 0.0f;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) {
        float e = expf(xr[c] - m);
        xr[c] = e;
        s += e;
    }
    float inv = 1.0f / block_sum(s);
    for (int c = threadIdx.x; c < cols; c += blockDim.x) xr[c] *= inv;
}

extern "C" int ts_k_softmax_cuda(float *x, int64_t rows, int cols, void *stream) {
    if (rows <= 0) return 0;
    softmax_kernel<<<(unsigned)rows, TS_THREADS, 0, as_stream(stream)>>>(x, cols);
    ts_cuda_check_launch(softmax_kernel);
    return 0;
}

// ------------------------------------------------------------ attention

// Keys per shared-memory tile on the GPU (K and V tiles: 2 * 32 * head_dim
// floats = 32 KiB at head_dim 128).
static const int TS_CUDA_KTILE = 32;
static const int TS_CUDA_QROWS = 64; // queries per block, one per thread

// Flash-style: one thread per query row keeps q, the running max/sum and the
// output accumulator in registers; the block streams K/V tiles through shared
// memory. Memory O(tile) whatever s_kv.
template <int MAXD>
__global__ static void attention_kernel(float *out, const float *q, const float *k, const float *v,
                                        int64_t s_q, int64_t s_kv, int heads, int head_dim,
                                        float scale) {
    extern __shared__ float smem[]; // Ks [KTILE, head_dim], Vs [KTILE, head_dim]
    float *ks = smem, *vs = smem + TS_CUDA_KTILE * head_dim;
    const int64_t ld = (int64_t)heads * head_dim;
    const int h = blockIdx.y;
    const int64_t row = (int64_t)blockIdx.x * TS_CUDA_QROWS + threadIdx.x;
    const bool active = row < s_q;
    float qr[MAXD], acc[MAXD];
    float m = -INFINITY, l = 0.0f;
    for (int d = 0; d < MAXD; d++) {
        qr[d] = (active && d < head_dim) ? q[row * ld + (int64_t)h * head_dim + d] * scale : 0.0f;
        acc[d] = 0.0f;
    }
    for (int64_t k0 = 0; k0 < s_kv; k0 += TS_CUDA_KTILE) {
        int bk = (int)(s_kv - k0 < TS_CUDA_KTILE ? s_kv - k0 : TS_CUDA_KTILE);
        for (int e = threadIdx.x; e < bk * head_dim; e += blockDim.x) {
            int j = e / head_dim, d = e % head_dim;
            ks[e] = k[(k0 + j) * ld + (int64_t)h * head_dim + d];
            vs[e] = v[(k0 + j) * ld + (int64_t)h * head_dim + d];
        }
        __syncthreads();
        if (active) {
            float sc[TS_CUDA_KTILE];
            float tmax = -INFINITY;
            for (int j = 0; j < bk; j++) {
                float dot = 0.0f;
                for (int d = 0; d < MAXD; d++)
                    if (d < head_dim) dot += qr[d] * ks[j * head_dim + d];
                sc[j] = dot;
                tmax = fmaxf(tmax, dot);
            }
            float corr = ts_m_online_rescale(&m, tmax);
            l *= corr;
            for (int d = 0; d < MAXD; d++) acc[d] *= corr;
            for (int j = 0; j < bk; j++) {
                float p = expf(sc[j] - m);
                l += p;
                for (int d = 0; d < MAXD; d++)
                    if (d < head_dim) acc[d] += p * vs[j * head_dim + d];
            }
        }
        __syncthreads();
    }
    if (active) {
        float inv = l > 0.0f ? 1.0f / l : 0.0f;
        for (int d = 0; d < MAXD; d++)
            if (d < head_dim) out[row * ld + (int64_t)h * head_dim + d] = acc[d] * inv;
    }
}

template <int MAXD>
static int launch_attention(float *out, const float *q, const float *k, const float *v, int64_t s_q,
                            int64_t s_kv, int heads, int head_dim, float scale, cudaStream_t st) {
    size_t shmem = sizeof(float) * 2 * TS_CUDA_KTILE * (size_t)head_dim;
    if (shmem > 48 * 1024)
        ts_cuda_check(cudaFuncSetAttribute(attention_kernel<MAXD>,
                                           cudaFuncAttributeMaxDynamicSharedMemorySize, (int)shmem));
    dim3 grid((unsigned)((s_q + TS_CUDA_QROWS - 1) / TS_CUDA_QROWS), (unsigned)heads);
    attention_kernel<MAXD><<<grid, TS_CUDA_QROWS, shmem, st>>>(out, q, k, v, s_q, s_kv, heads,
                                                               head_dim, scale);
    ts_cuda_check_launch(attention_kernel);
    return 0;
}

extern "C" int ts_k_attention_cuda(float *out, const float *q, const float *k, const float *v,
                                   int64_t s_q, int64_t s_kv, int heads, int head_dim, float scale,
                                   void *stream) {
    if (s_q <= 0 || heads <= 0) return 0;
    cudaStream_t st = as_stream(stream);
    if (head_dim <= 64) return launch_attention<64>(out, q, k, v, s_q, s_kv, heads, head_dim, scale, st);
    if (head_dim <= 128)
        return launch_attention<128>(out, q, k, v, s_q, s_kv, heads, head_dim, scale, st);
    if (head_dim <= TS_K_ATTN_MAX_HEAD_DIM)
        return launch_attention<TS_K_ATTN_MAX_HEAD_DIM>(out, q, k, v, s_q, s_kv, heads, head_dim,
                                                        scale, st);
    return ts_cuda_record_error(0, "ts_k_attention_cuda", __FILE__, __LINE__,
                                "head_dim above TS_K_ATTN_MAX_HEAD_DIM (256)");
}

// ------------------------------------------------------------ Ulysses layout

// element e of the send buffers [degree, s_loc, hpr, head_dim] <-> x[s, col]
__global__ static void ulysses_kernel(float *send, float *x, int64_t ldx, int64_t s_loc, int hpr,
                                      int head_dim, int64_t n, int unpack) {
    TS_GRID_STRIDE(e, n) {
        int d = (int)(e % head_dim);
        int64_t r = e / head_dim;
        int j = (int)(r % hpr);
        r /= hpr;
        int64_t s = r % s_loc;
        int p = (int)(r / s_loc);
        float *xp = x + s * ldx + ts_m_ulysses_col(p, j, d, hpr, head_dim);
        if (unpack)
            *xp = send[e];
        else
            send[e] = *xp;
    }
}

extern "C" int ts_k_ulysses_pack_cuda(float *send, const float *x, int64_t ldx, int64_t s_loc,
                                      int heads, int head_dim, int degree, void *stream) {
    int64_t n = s_loc * heads * head_dim;
    if (n <= 0) return 0;
    ulysses_kernel<<<grid_for(n), TS_THREADS, 0, as_stream(stream)>>>(
        send, const_cast<float *>(x), ldx, s_loc, heads / degree, head_dim, n, 0);
    ts_cuda_check_launch(ulysses_kernel);
    return 0;
}

extern "C" int ts_k_ulysses_unpack_cuda(float *x, int64_t ldx, const float *recv, int64_t s_loc,
                                        int heads, int head_dim, int degree, void *stream) {
    int64_t n = s_loc * heads * head_dim;
    if (n <= 0) return 0;
    ulysses_kernel<<<grid_for(n), TS_THREADS, 0, as_stream(stream)>>>(
        const_cast<float *>(recv), x, ldx, s_loc, heads / degree, head_dim, n, 1);
    ts_cuda_check_launch(ulysses_kernel);
    return 0;
}

// ------------------------------------------------------------ step pieces

__global__ static void euler_kernel(float *x, const float *v, int64_t n, float dt) {
    TS_GRID_STRIDE(i, n) x[i] = ts_m_euler(x[i], v[i], dt);
}

extern "C" int ts_k_euler_update_cuda(float *x, const float *v, int64_t n, float t, float t_next,
                                      void *stream) {
    if (n <= 0) return 0;
    euler_kernel<<<grid_for(n), TS_THREADS, 0, as_stream(stream)>>>(x, v, n, t_next - t);
    ts_cuda_check_launch(euler_kernel);
    return 0;
}

__global__ static void gated_residual_kernel(float *x, int64_t ldx, const float *y, int64_t ldy,
                                             const float *gate, int64_t n, int cols) {
    TS_GRID_STRIDE(i, n) {
        int64_t r = i / cols;
        int c = (int)(i % cols);
        x[r * ldx + c] = ts_m_gated_add(x[r * ldx + c], gate[c], y[r * ldy + c]);
    }
}

extern "C" int ts_k_gated_residual_cuda(float *x, int64_t ldx, const float *y, int64_t ldy,
                                        const float *gate, int64_t rows, int cols, void *stream) {
    int64_t n = rows * cols;
    if (n <= 0) return 0;
    gated_residual_kernel<<<grid_for(n), TS_THREADS, 0, as_stream(stream)>>>(x, ldx, y, ldy, gate, n,
                                                                             cols);
    ts_cuda_check_launch(gated_residual_kernel);
    return 0;
}

__global__ static void bias_add_kernel(float *x, int64_t ldx, const float *b, int64_t n, int cols) {
    TS_GRID_STRIDE(i, n) x[(i / cols) * ldx + i % cols] += b[i % cols];
}

extern "C" int ts_k_bias_add_cuda(float *x, int64_t ldx, const float *b, int64_t rows, int cols,
                                  void *stream) {
    int64_t n = rows * cols;
    if (n <= 0) return 0;
    bias_add_kernel<<<grid_for(n), TS_THREADS, 0, as_stream(stream)>>>(x, ldx, b, n, cols);
    ts_cuda_check_launch(bias_add_kernel);
    return 0;
}

__global__ static void timestep_kernel(float *out, float t, int dim, float max_period) {
    TS_GRID_STRIDE(j, (int64_t)dim) out[j] = ts_m_timestep_embedding(t, (int)j, dim, max_period);
}

extern "C" int ts_k_timestep_embedding_cuda(float *out, float t, int dim, float max_period,
                                            void *stream) {
    if (dim <= 0) return 0;
    timestep_kernel<<<grid_for(dim), TS_THREADS, 0, as_stream(stream)>>>(out, t, dim, max_period);
    ts_cuda_check_launch(timestep_kernel);
    return 0;
}

__global__ static void patch_kernel(float *tokens, float *latent, int lat_h, int lat_w, int patch,
                                    int64_t feat, int64_t n, int unpatch) {
    TS_GRID_STRIDE(e, n) {
        int64_t src = ts_m_patch_src(e / feat, e % feat, lat_h, lat_w, patch);
        if (unpatch)
            latent[src] = tokens[e];
        else
            tokens[e] = latent[src];
    }
}

extern "C" int ts_k_patchify_cuda(float *tokens, const float *latent, int channels, int lat_h,
                                  int lat_w, int patch, void *stream) {
    int64_t feat = (int64_t)channels * patch * patch;
    int64_t n = (int64_t)(lat_h / patch) * (lat_w / patch) * feat;
    if (n <= 0) return 0;
    patch_kernel<<<grid_for(n), TS_THREADS, 0, as_stream(stream)>>>(
        tokens, const_cast<float *>(latent), lat_h, lat_w, patch, feat, n, 0);
    ts_cuda_check_launch(patch_kernel);
    return 0;
}

extern "C" int ts_k_unpatchify_cuda(float *latent, const float *tokens, int channels, int lat_h,
                                    int lat_w, int patch, void *stream) {
    int64_t feat = (int64_t)channels * patch * patch;
    int64_t n = (int64_t)(lat_h / patch) * (lat_w / patch) * feat;
    if (n <= 0) return 0;
    patch_kernel<<<grid_for(n), TS_THREADS, 0, as_stream(stream)>>>(
        const_cast<float *>(tokens), latent, lat_h, lat_w, patch, feat, n, 1);
    ts_cuda_check_launch(patch_kernel);
    return 0;
}

// ------------------------------------------------------------ bf16

__global__ static void to_bf16_kernel(__nv_bfloat16 *dst, const float *src, int64_t n) {
    TS_GRID_STRIDE(i, n) dst[i] = __float2bfloat16_rn(src[i]);
}

__global__ static void from_bf16_kernel(float *dst, const __nv_bfloat16 *src, int64_t n) {
    TS_GRID_STRIDE(i, n) dst[i] = __bfloat162float(src[i]);
}

extern "C" int ts_k_f32_to_bf16_cuda(uint16_t *dst, const float *src, int64_t n, void *stream) {
    if (n <= 0) return 0;
    to_bf16_kernel<<<grid_for(n), TS_THREADS, 0, as_stream(stream)>>>(
        reinterpret_cast<__nv_bfloat16 *>(dst), src, n);
    ts_cuda_check_launch(to_bf16_kernel);
    return 0;
}

extern "C" int ts_k_bf16_to_f32_cuda(float *dst, const uint16_t *src, int64_t n, void *stream) {
    if (n <= 0) return 0;
    from_bf16_kernel<<<grid_for(n), TS_THREADS, 0, as_stream(stream)>>>(
        dst, reinterpret_cast<const __nv_bfloat16 *>(src), n);
    ts_cuda_check_launch(from_bf16_kernel);
    return 0;
}

// ------------------------------------------------------------ seeded fill

__global__ static void fill_seeded_bf16_kernel(__nv_bfloat16 *dst, int64_t n, uint64_t key, float amp) {
    TS_GRID_STRIDE(i, n) dst[i] = __float2bfloat16_rn(ts_m_seeded(key, amp, (uint64_t)i));
}

__global__ static void fill_seeded_f32_kernel(float *dst, int64_t n, uint64_t key, float amp) {
    TS_GRID_STRIDE(i, n) dst[i] = ts_m_seeded(key, amp, (uint64_t)i);
}

extern "C" int ts_k_fill_seeded_bf16_cuda(uint16_t *dst, int64_t n, uint64_t key, float amp,
                                          void *stream) {
    if (n <= 0) return 0;
    fill_seeded_bf16_kernel<<<grid_for(n), TS_THREADS, 0, as_stream(stream)>>>(
        reinterpret_cast<__nv_bfloat16 *>(dst), n, key, amp);
    ts_cuda_check_launch(fill_seeded_bf16_kernel);
    return 0;
}

extern "C" int ts_k_fill_seeded_f32_cuda(float *dst, int64_t n, uint64_t key, float amp, void *stream) {
    if (n <= 0) return 0;
    fill_seeded_f32_kernel<<<grid_for(n), TS_THREADS, 0, as_stream(stream)>>>(dst, n, key, amp);
    ts_cuda_check_launch(fill_seeded_f32_kernel);
    return 0;
}
