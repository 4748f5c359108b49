/* ts_dit_cuda.c - the DiT step on a GPU (see ts_dit_cuda.h): the host-side
 * sequence of ts_dit_step (src/ts_dit.c) with each CPU call replaced by its
 * CUDA twin and every GEMM by cuBLAS on bf16-staged inputs. Plain C: only
 * the launchers' C headers, no CUDA header. Compiled to nothing without the
 * cuda backend. */
#ifdef TS_HAVE_CUDA

#include "ts_dit_cuda.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ts_kernels.h"
#include "ts_kernels_cuda.h"

/* Every launcher call: a failure becomes one TsErr line with our file:line
 * in front of the launcher's own (file:line: call: message (code)). */
#define CK(call)                                                                                   \
    do {                                                                                           \
        if ((call) != 0)                                                                           \
            return ts_err(err, TS_ERR_SYSTEM, "%s:%d: %s", __FILE__, __LINE__,                    \
                          ts_cuda_last_error());                                                   \
    } while (0)

/* The same inside a function with a cleanup label (st, err in scope). */
#define CK_GOTO(call)                                                                              \
    do {                                                                                           \
        if ((call) != 0) {                                                                         \
            st = ts_err(err, TS_ERR_SYSTEM, "%s:%d: %s", __FILE__, __LINE__,                      \
                        ts_cuda_last_error());                                                     \
            goto cleanup;                                                                          \
        }                                                                                          \
    } while (0)

#define TRY(expr)                                                                                  \
    do {                                                                                           \
        TsStatus try_st_ = (expr);                                                                 \
        if (try_st_ != TS_OK) return try_st_;                                                      \
    } while (0)

/* ------------------------------------------------------------ waiting */

TsStatus ts_dit_cuda_stream_wait(void *stream, double timeout_s, const char *what, TsErr *err) {
    double t0 = ts_wall_s();
    long sleep_ns = 2000;
    for (;;) {
        int done = 0;
        CK(ts_cuda_stream_query(stream, &done));
        if (done) return TS_OK;
        if (ts_wall_s() - t0 > timeout_s)
            return ts_err(err, TS_ERR_SYSTEM, "%s not finished on the GPU after %.0f s", what,
                          timeout_s);
        /* back off to 200 us: a step is >= milliseconds, a poll costs ~1 us */
        struct timespec ts = {0, sleep_ns};
        nanosleep(&ts, NULL);
        if (sleep_ns < 200000) sleep_ns *= 2;
    }
}

/* ------------------------------------------------------------ loopback */

static int loop_rank(void *ctx) {
    (void)ctx;
    return 0;
}

static int loop_size(void *ctx) {
    (void)ctx;
    return 1;
}

static TsStatus loop_alltoall(const void *d_send, void *d_recv, size_t bytes, void *stream,
                              void *ctx, TsErr *err) {
    (void)ctx;
    CK(ts_cuda_memcpy_d2d(d_recv, d_send, bytes, stream));
    return TS_OK;
}

static TsStatus loop_wait(void *stream, const char *what, void *ctx, TsErr *err) {
    double timeout_s = ctx ? *(const double *)ctx : TS_CUDA_TIMEOUT_S;
    TsStatus st = ts_dit_cuda_stream_wait(stream, timeout_s, what, err);
    if (st != TS_OK) ts_err_prefix(err, "rank 0 (degree 1)");
    return st;
}

const TsDitCudaComm ts_dit_cuda_comm_loopback = {loop_rank, loop_size, loop_alltoall, loop_wait,
                                                 NULL};

/* ------------------------------------------------------------ model */

#define STAGE_FLOATS ((int64_t)16 << 20) /* 64 MiB of float32 per upload chunk */

/* float32 vector of the tensor at arena offset off (a bias or norm scale) */
static const float *dvec(const TsDitCuda *dm, int64_t off) {
    const TsDit *m = dm->m;
    int lo = 0, hi = m->n_tensors - 1;
    while (lo <= hi) { /* the table is in arena order */
        int mid = lo + (hi - lo) / 2;
        if (m->tensors[mid].offset == off)
            return dm->f32_off[mid] >= 0 ? dm->w_f32 + dm->f32_off[mid] : NULL;
        if (m->tensors[mid].offset < off)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return NULL;
}

static int64_t tensor_elems(const TsDitTensor *t) {
    return t->shape[0] * (t->ndim == 2 ? t->shape[1] : 1);
}

/* Everything but the weights' values: stream, cuBLAS, the two arenas. */
static TsStatus model_alloc(TsDitCuda *dm, const TsDit *m, TsErr *err) {
    memset(dm, 0, sizeof *dm);
    dm->m = m;
    dm->timeout_s = TS_CUDA_TIMEOUT_S;
    if ((uint64_t)m->n_params > SIZE_MAX / sizeof(uint16_t) / 2)
        return ts_err(err, TS_ERR_INPUT, "model %s: %lld parameters", m->cfg.name,
                      (long long)m->n_params);
    dm->f32_off = ts_xmalloc(sizeof(int64_t) * (size_t)(m->n_tensors + 1));
    for (int i = 0; i < m->n_tensors; i++) {
        const TsDitTensor *t = &m->tensors[i];
        dm->f32_off[i] = -1;
        if (t->ndim == 1) {
            dm->f32_off[i] = dm->f32_floats;
            dm->f32_floats += (t->shape[0] + 63) & ~(int64_t)63; /* 256-byte aligned */
        }
    }
    CK(ts_cuda_stream_create(&dm->stream));
    CK(ts_gemm_cuda_create(&dm->gemm));
    CK(ts_cuda_malloc((void **)&dm->w_bf16, sizeof(uint16_t) * (size_t)m->n_params));
    CK(ts_cuda_malloc((void **)&dm->w_f32, sizeof(float) * (size_t)(dm->f32_floats + 1)));
    dm->device_bytes = sizeof(uint16_t) * (size_t)m->n_params + sizeof(float) * (size_t)dm->f32_floats;
    return TS_OK;
}

TsStatus ts_dit_cuda_init(TsDitCuda *dm, const TsDit *m, TsErr *err) {
    if (!m->arena) {
        memset(dm, 0, sizeof *dm);
        return ts_err(err, TS_ERR_INTERNAL, "ts_dit_cuda_init: model %s has no weights on the host",
                      m->cfg.name);
    }
    float *stage = NULL;
    TsStatus st = model_alloc(dm, m, err);
    if (st != TS_OK) goto cleanup;
    int64_t chunk = m->n_params < STAGE_FLOATS ? m->n_params : STAGE_FLOATS;
    CK_GOTO(ts_cuda_malloc((void **)&stage, sizeof(float) * (size_t)(chunk + 1)));
    /* the staging buffer is reused chunk after chunk: stream order keeps the
     * copy of chunk i+1 behind the conversion of chunk i; each chunk is
     * waited for (the host buffer is pageable) so that a stuck device fails
     * within the timeout */
    for (int64_t off = 0; off < m->n_params; off += chunk) {
        int64_t n = m->n_params - off < chunk ? m->n_params - off : chunk;
        CK_GOTO(ts_cuda_memcpy_h2d(stage, m->arena + off, sizeof(float) * (size_t)n, dm->stream));
        CK_GOTO(ts_k_f32_to_bf16_cuda(dm->w_bf16 + off, stage, n, dm->stream));
        st = ts_dit_cuda_stream_wait(dm->stream, dm->timeout_s, "weight upload", err);
        if (st != TS_OK) {
            dm->stuck = 1;
            goto cleanup;
        }
    }
    for (int i = 0; i < m->n_tensors; i++) {
        const TsDitTensor *t = &m->tensors[i];
        if (dm->f32_off[i] < 0) continue;
        CK_GOTO(ts_cuda_memcpy_h2d(dm->w_f32 + dm->f32_off[i], m->arena + t->offset,
                                   sizeof(float) * (size_t)t->shape[0], dm->stream));
    }
    st = ts_dit_cuda_stream_wait(dm->stream, dm->timeout_s, "weight upload", err);
    if (st != TS_OK) dm->stuck = 1;
cleanup:
    if (stage && !dm->stuck) (void)ts_cuda_free(stage);
    if (st != TS_OK) {
        ts_err_prefix(err, "model %s on the GPU", m->cfg.name);
        ts_dit_cuda_free(dm);
    }
    return st;
}

TsStatus ts_dit_cuda_init_seeded(TsDitCuda *dm, const TsDit *m, uint64_t seed, TsErr *err) {
    TsStatus st = model_alloc(dm, m, err);
    if (st != TS_OK) goto cleanup;
    for (int i = 0; i < m->n_tensors; i++) {
        const TsDitTensor *t = &m->tensors[i];
        uint64_t key;
        float amp = ts_dit_seed_tensor(m, seed, i, &key);
        CK_GOTO(ts_k_fill_seeded_bf16_cuda(dm->w_bf16 + t->offset, tensor_elems(t), key, amp,
                                           dm->stream));
        if (dm->f32_off[i] >= 0)
            CK_GOTO(ts_k_fill_seeded_f32_cuda(dm->w_f32 + dm->f32_off[i], t->shape[0], key, amp,
                                              dm->stream));
    }
    st = ts_dit_cuda_stream_wait(dm->stream, dm->timeout_s, "seeded weights", err);
    if (st != TS_OK) dm->stuck = 1;
cleanup:
    if (st != TS_OK) {
        ts_err_prefix(err, "model %s on the GPU (seeded)", m->cfg.name);
        ts_dit_cuda_free(dm);
    }
    return st;
}

void ts_dit_cuda_free(TsDitCuda *dm) {
    /* release errors are ignored: nothing useful can be done with them */
    if (dm->stream && !dm->stuck) {
        TsErr ignored;
        if (ts_dit_cuda_stream_wait(dm->stream, dm->timeout_s > 0 ? dm->timeout_s : TS_CUDA_TIMEOUT_S,
                                    "model release", &ignored) != TS_OK)
            dm->stuck = 1;
    }
    if (!dm->stuck) { /* after a timeout: leak rather than block the exit */
        if (dm->w_bf16) (void)ts_cuda_free(dm->w_bf16);
        if (dm->w_f32) (void)ts_cuda_free(dm->w_f32);
        if (dm->gemm) (void)ts_gemm_cuda_destroy(dm->gemm);
        if (dm->stream) (void)ts_cuda_stream_destroy(dm->stream);
    }
    free(dm->f32_off);
    memset(dm, 0, sizeof *dm);
}

/* ------------------------------------------------------------ conditioning */

TsStatus ts_dit_cuda_cond_upload(TsDitCudaCond *dc, const TsDitCuda *dm, const TsDitCond *cond,
                                 TsErr *err) {
    memset(dc, 0, sizeof *dc);
    const TsDitConfig *c = &dm->m->cfg;
    int64_t n_txt = (int64_t)c->txt_tokens * c->ctx_dim;
    TsStatus st = TS_OK;
    float *stage = NULL;
    dc->guidance = cond->guidance;
    dc->stream = dm->stream;
    CK_GOTO(ts_cuda_malloc_async((void **)&dc->pooled, sizeof(float) * (size_t)c->pooled_dim,
                                 dm->stream));
    CK_GOTO(ts_cuda_memcpy_h2d(dc->pooled, cond->pooled, sizeof(float) * (size_t)c->pooled_dim,
                               dm->stream));
    if (n_txt > 0) {
        CK_GOTO(ts_cuda_malloc_async((void **)&dc->txt, sizeof(uint16_t) * (size_t)n_txt, dm->stream));
        CK_GOTO(ts_cuda_malloc_async((void **)&stage, sizeof(float) * (size_t)n_txt, dm->stream));
        CK_GOTO(ts_cuda_memcpy_h2d(stage, cond->txt, sizeof(float) * (size_t)n_txt, dm->stream));
        CK_GOTO(ts_k_f32_to_bf16_cuda(dc->txt, stage, n_txt, dm->stream));
    }
    /* the host buffers are pageable and the caller's: wait before returning */
    st = ts_dit_cuda_stream_wait(dm->stream, dm->timeout_s, "conditioning upload", err);
cleanup:
    if (stage) (void)ts_cuda_free_async(stage, dm->stream);
    if (st != TS_OK) ts_dit_cuda_cond_free(dc);
    return st;
}

TsStatus ts_dit_cuda_cond_seeded(TsDitCudaCond *dc, const TsDitCuda *dm, uint64_t seed,
                                 float guidance, TsErr *err) {
    memset(dc, 0, sizeof *dc);
    const TsDitConfig *c = &dm->m->cfg;
    int64_t n_txt = (int64_t)c->txt_tokens * c->ctx_dim;
    uint64_t k_txt, k_pooled;
    TsStatus st = TS_OK;
    ts_dit_cond_seed_keys(seed, &k_txt, &k_pooled);
    dc->guidance = guidance;
    dc->stream = dm->stream;
    CK_GOTO(ts_cuda_malloc_async((void **)&dc->pooled, sizeof(float) * (size_t)c->pooled_dim,
                                 dm->stream));
    CK_GOTO(ts_k_fill_seeded_f32_cuda(dc->pooled, c->pooled_dim, k_pooled, TS_DIT_COND_AMP,
                                      dm->stream));
    if (n_txt > 0) {
        CK_GOTO(ts_cuda_malloc_async((void **)&dc->txt, sizeof(uint16_t) * (size_t)n_txt, dm->stream));
        CK_GOTO(ts_k_fill_seeded_bf16_cuda(dc->txt, n_txt, k_txt, TS_DIT_COND_AMP, dm->stream));
    }
    /* no host buffer involved: the step runs behind it in stream order */
cleanup:
    if (st != TS_OK) ts_dit_cuda_cond_free(dc);
    return st;
}

void ts_dit_cuda_cond_free(TsDitCudaCond *dc) {
    if (dc->txt) (void)ts_cuda_free_async(dc->txt, dc->stream);
    if (dc->pooled) (void)ts_cuda_free_async(dc->pooled, dc->stream);
    memset(dc, 0, sizeof *dc);
}

/* ------------------------------------------------------------ work */

enum { W_X, W_XM, W_LIN, W_ATTN, W_Y, W_COS, W_SIN, W_SEND, W_QF, W_KF, W_VF, W_OF, W_TEMB,
       W_VEC, W_TMP, W_MOD, W_PATCHES, W_VEL_SEND, W_VEL_ALL, W_XB, W_VECB, W_N };

/* The geometry of ts_dit_work_init (ts_dit_split: the CPU and GPU steps
 * split the sequence alike) and the byte size of every buffer, all in int64 (the
 * largest, lin, is 1.45 GB for FLUX.1-dev at 2048 px). */
static TsStatus work_geometry(TsDitCudaWork *w, const TsDitConfig *c, int width_px, int height_px,
                              int degree, int rank, int64_t *sizes, int64_t *total, TsErr *err) {
    memset(w, 0, sizeof *w);
    TsDitSplit g;
    TRY(ts_dit_split(c, width_px, height_px, degree, rank, &g, err));
    TS_DIT_SPLIT_COPY(w, g);

    int64_t h = c->hidden, mlp = (int64_t)c->mlp_ratio * h, half = c->head_dim / 2;
    int64_t cp = (int64_t)c->latent_channels * c->patch * c->patch;
    int64_t sl = w->s_loc, sp = w->s_pad, hk = h / degree;
    /* bf16 staging of any GEMM input: the widest row is linear2's hidden +
     * mlp; the 1-row embedder inputs and the image patches may be longer */
    int64_t xb = sl * (h + mlp);
    int64_t small[] = {w->n_img * cp, c->time_dim, c->pooled_dim, h};
    for (size_t i = 0; i < sizeof small / sizeof *small; i++)
        if (small[i] > xb) xb = small[i];
    const int64_t F = sizeof(float), B = sizeof(uint16_t);
    int64_t sz[W_N] = {
        [W_X] = sl * h * F,         [W_XM] = sl * h * F,       [W_LIN] = sl * (3 * h + mlp) * F,
        [W_ATTN] = sl * h * F,      [W_Y] = sl * h * F,        [W_COS] = sl * half * F,
        [W_SIN] = sl * half * F,    [W_SEND] = sl * h * F,     [W_QF] = sp * hk * F,
        [W_KF] = sp * hk * F,       [W_VF] = sp * hk * F,      [W_OF] = sp * hk * F,
        [W_TEMB] = c->time_dim * F, [W_VEC] = h * F,           [W_TMP] = 2 * h * F,
        [W_MOD] = 12 * h * F,       [W_PATCHES] = w->n_img * cp * F,
        [W_VEL_SEND] = degree * sl * cp * F,                   [W_VEL_ALL] = sp * cp * F,
        [W_XB] = xb * B,            [W_VECB] = h * B,
    };
    *total = 0;
    for (int i = 0; i < W_N; i++) {
        sizes[i] = sz[i];
        *total += (sz[i] + 255) & ~(int64_t)255;
    }
    return TS_OK;
}

size_t ts_dit_cuda_work_bytes(const TsDitConfig *c, int width_px, int height_px, int degree,
                              TsErr *err) {
    TsDitCudaWork w;
    int64_t sizes[W_N], total = 0;
    if (work_geometry(&w, c, width_px, height_px, degree, 0, sizes, &total, err) != TS_OK) return 0;
    return (size_t)total;
}

static char *carve(char **p, int64_t bytes) {
    char *r = *p;
    *p += (bytes + 255) & ~(int64_t)255; /* 256-byte alignment for cuBLAS and coalescing */
    return r;
}

TsStatus ts_dit_cuda_work_init(TsDitCudaWork *w, const TsDitCuda *dm, int width_px, int height_px,
                               int degree, int rank, TsErr *err) {
    const TsDitConfig *c = &dm->m->cfg;
    int64_t sizes[W_N], total = 0;
    TRY(work_geometry(w, c, width_px, height_px, degree, rank, sizes, &total, err));
    w->bytes = (size_t)total;
    w->stream = dm->stream;
    int64_t sl = w->s_loc, half = c->head_dim / 2;
    TsStatus st = TS_OK;
    float *pos = NULL, *cos_h = NULL, *sin_h = NULL;
    CK_GOTO(ts_cuda_malloc_async(&w->mem, w->bytes, dm->stream));
    char *p = w->mem;
    float **fbuf[] = {&w->x,    &w->xm,   &w->lin,     &w->attn,     &w->y,      &w->rope_cos,
                      &w->rope_sin, &w->send, &w->qf,  &w->kf,       &w->vf,     &w->of,
                      &w->temb, &w->vec,  &w->tmp,     &w->mod,      &w->patches, &w->vel_send,
                      &w->vel_all};
    for (int i = 0; i < W_XB; i++) *fbuf[i] = (float *)carve(&p, sizes[i]);
    w->xb = (uint16_t *)carve(&p, sizes[W_XB]);
    w->vecb = (uint16_t *)carve(&p, sizes[W_VECB]);
    /* zeroed once, like the CPU's calloc: padding rows of the Ulysses and
     * velocity buffers then hold finite values before their first write */
    CK_GOTO(ts_cuda_memset(w->mem, 0, w->bytes, dm->stream));

    /* RoPE table built on the host by the CPU twin (bit-identical to the CPU
     * model's), uploaded once per workspace */
    pos = ts_xcalloc((size_t)(sl * TS_DIT_ROPE_AXES), sizeof(float));
    cos_h = ts_xmalloc(sizeof(float) * (size_t)(sl * half + 1));
    sin_h = ts_xmalloc(sizeof(float) * (size_t)(sl * half + 1));
    int64_t wp = w->lat_w / c->patch;
    for (int64_t r = 0; r < w->loc_img; r++) {
        int64_t i = w->img0 + r;
        pos[(w->loc_txt + r) * TS_DIT_ROPE_AXES + 1] = (float)(i / wp);
        pos[(w->loc_txt + r) * TS_DIT_ROPE_AXES + 2] = (float)(i % wp);
    }
    ts_k_rope_table_cpu(cos_h, sin_h, pos, sl, TS_DIT_ROPE_AXES, c->rope_axes_dim, c->rope_theta);
    CK_GOTO(ts_cuda_memcpy_h2d(w->rope_cos, cos_h, sizeof(float) * (size_t)(sl * half), dm->stream));
    CK_GOTO(ts_cuda_memcpy_h2d(w->rope_sin, sin_h, sizeof(float) * (size_t)(sl * half), dm->stream));
    /* pageable host buffers: wait before freeing them */
    st = ts_dit_cuda_stream_wait(dm->stream, dm->timeout_s, "workspace set-up", err);
cleanup:
    free(pos);
    free(cos_h);
    free(sin_h);
    if (st != TS_OK) {
        ts_err_prefix(err, "GPU workspace %dx%d px, degree %d (%.2f GiB)", width_px, height_px,
                      degree, (double)total / (1024.0 * 1024.0 * 1024.0));
        ts_dit_cuda_work_free(w);
    }
    return st;
}

void ts_dit_cuda_work_free(TsDitCudaWork *w) {
    if (w->mem) (void)ts_cuda_free_async(w->mem, w->stream);
    memset(w, 0, sizeof *w);
}

void ts_dit_cuda_cache_init(TsDitCudaWorkCache *c, int max_entries) {
    memset(c, 0, sizeof *c);
    c->max_entries = max_entries < 1 ? 1 : max_entries > TS_DIT_CUDA_CACHE_MAX ? TS_DIT_CUDA_CACHE_MAX
                                                                              : max_entries;
}

void ts_dit_cuda_cache_set_budget(TsDitCudaWorkCache *c, size_t max_bytes) { c->max_bytes = max_bytes; }

static void cache_evict(TsDitCudaWorkCache *c, int i) {
    c->bytes -= c->work[i].bytes;
    ts_dit_cuda_work_free(&c->work[i]);
    c->used[i] = 0;
    c->n_evict++;
}

/* The least recently used entry other than `keep`, or -1. */
static int cache_oldest(const TsDitCudaWorkCache *c, int keep) {
    int v = -1;
    for (int i = 0; i < c->max_entries; i++)
        if (c->used[i] && i != keep && (v < 0 || c->used[i] < c->used[v])) v = i;
    return v;
}

TsStatus ts_dit_cuda_cache_get(TsDitCudaWorkCache *c, const TsDitCuda *dm, int width_px,
                               int height_px, int degree, int rank, TsDitCudaWork **w, TsErr *err) {
    c->tick++;
    *w = NULL;
    int slot = -1;
    for (int i = 0; i < c->max_entries; i++) {
        TsDitCudaWork *k = &c->work[i];
        if (c->used[i] && k->width_px == width_px && k->height_px == height_px &&
            k->degree == degree && k->rank == rank) {
            c->used[i] = c->tick;
            *w = k;
            return TS_OK;
        }
        if (!c->used[i] && slot < 0) slot = i;
    }
    size_t need = ts_dit_cuda_work_bytes(&dm->m->cfg, width_px, height_px, degree, err);
    if (need == 0) return TS_ERR_INPUT;
    if (slot < 0) { /* full: the least recently used goes */
        slot = cache_oldest(c, -1);
        cache_evict(c, slot);
    }
    for (int v; c->max_bytes && c->bytes + need > c->max_bytes && (v = cache_oldest(c, slot)) >= 0;)
        cache_evict(c, v);
    TsStatus st = ts_dit_cuda_work_init(&c->work[slot], dm, width_px, height_px, degree, rank, err);
    if (st != TS_OK && cache_oldest(c, slot) >= 0) {
        /* maybe out of memory: make room with everything else, try once more */
        for (int v; (v = cache_oldest(c, slot)) >= 0;) cache_evict(c, v);
        st = ts_dit_cuda_work_init(&c->work[slot], dm, width_px, height_px, degree, rank, err);
    }
    if (st != TS_OK) return st;
    c->used[slot] = c->tick;
    c->bytes += c->work[slot].bytes;
    c->n_alloc++;
    *w = &c->work[slot];
    return TS_OK;
}

void ts_dit_cuda_cache_free(TsDitCudaWorkCache *c) {
    for (int i = 0; i < TS_DIT_CUDA_CACHE_MAX; i++)
        if (c->used[i]) ts_dit_cuda_work_free(&c->work[i]);
    memset(c, 0, sizeof *c);
}

/* ------------------------------------------------------------ step */

/* Everything a step's helpers need. */
typedef struct StepCtx {
    const TsDitCuda *dm;
    const TsDit *m;
    TsDitCudaWork *w;
    const TsDitCudaComm *comm;
    void *s; /* stream */
} StepCtx;

/* y[rows, out] (stride ldy) = x W^T + b (+ beta y), x already bf16 [rows, ldx] */
static TsStatus linear_b(const StepCtx *k, const TsDitLinear *l, const uint16_t *xb, int64_t ldx,
                         int64_t rows, float *y, int64_t ldy, float beta, TsErr *err) {
    if (rows <= 0) return TS_OK;
    const float *bias = dvec(k->dm, l->b);
    if (!bias) return ts_err(err, TS_ERR_INTERNAL, "GPU model: no float32 bias at offset %lld", (long long)l->b);
    CK(ts_gemm_linear_bf16_cuda(k->dm->gemm, y, 0, ldy, xb, ldx, k->dm->w_bf16 + l->w, rows, l->in,
                                l->out, beta, k->s));
    CK(ts_k_bias_add_cuda(y, ldy, bias, rows, l->out, k->s));
    return TS_OK;
}

/* The same from a float32 input [rows, ldx], staged to bf16 (GELU fused on
 * columns >= gelu_from, like the CPU model's in-place GELU before that GEMM). */
static TsStatus linear_f(const StepCtx *k, const TsDitLinear *l, const float *x, int64_t ldx,
                         int64_t rows, float *y, int64_t ldy, int gelu_from, TsErr *err) {
    if (rows <= 0) return TS_OK;
    CK(ts_dit_k_to_bf16_2d_cuda(k->w->xb, l->in, x, ldx, rows, l->in, gelu_from, k->s));
    return linear_b(k, l, k->w->xb, l->in, rows, y, ldy, 0.0f, err);
}

#define NO_GELU 0x7fffffff

/* MLPEmbedder: vec += out_layer(silu(in_layer(in))), in a float32 device vector */
static TsStatus embed_add(const StepCtx *k, const TsDitLinear *l0, const TsDitLinear *l2,
                          const float *in, TsErr *err) {
    TsDitCudaWork *w = k->w;
    int h = k->m->cfg.hidden;
    TRY(linear_f(k, l0, in, l0->in, 1, w->tmp, h, NO_GELU, err));
    CK(ts_k_silu_cuda(w->tmp, w->tmp, h, k->s));
    CK(ts_dit_k_to_bf16_2d_cuda(w->xb, h, w->tmp, h, 1, h, NO_GELU, k->s));
    return linear_b(k, l2, w->xb, h, 1, w->vec, h, 1.0f, err);
}

/* modulation vectors of one linear from silu(vec) (staged once per step) */
static TsStatus modulation(const StepCtx *k, const TsDitLinear *l, float *out, TsErr *err) {
    return linear_b(k, l, k->w->vecb, l->in, 1, out, l->out, 0.0f, err);
}

static TsStatus qk_norm(const StepCtx *k, float *lin, int64_t ld, int64_t r0, int64_t n,
                        int64_t q_norm, int64_t k_norm, TsErr *err) {
    const TsDitConfig *c = &k->m->cfg;
    const float *wq = dvec(k->dm, q_norm), *wk = dvec(k->dm, k_norm);
    if (!wq || !wk) return ts_err(err, TS_ERR_INTERNAL, "GPU model: QK norm scales missing");
    CK(ts_dit_k_qk_rmsnorm_cuda(lin + r0 * ld, ld, wq, n, c->heads, c->head_dim, c->norm_eps, k->s));
    CK(ts_dit_k_qk_rmsnorm_cuda(lin + r0 * ld + c->hidden, ld, wk, n, c->heads, c->head_dim,
                                c->norm_eps, k->s));
    return TS_OK;
}

/* attention_sp of ts_dit.c: q, k, v in columns 0, h, 2h of lin's valid
 * rows; output (all heads of this rank's tokens) to out [s_loc, ldo] */
static TsStatus attention_sp(const StepCtx *k, float *lin, int64_t ld, float *out, int64_t ldo,
                             TsErr *err) {
    const TsDitConfig *c = &k->m->cfg;
    TsDitCudaWork *w = k->w;
    int64_t h = c->hidden, n_valid = w->loc_txt + w->loc_img;
    int deg = w->degree, hk = c->heads / deg;
    if (n_valid < w->s_loc) /* padding rows are whole rows: one contiguous range */
        CK(ts_cuda_memset(lin + n_valid * ld, 0, sizeof(float) * (size_t)((w->s_loc - n_valid) * ld),
                          k->s));
    CK(ts_k_rope_cuda(lin, ld, w->rope_cos, w->rope_sin, w->s_loc, c->heads, c->head_dim, k->s));
    CK(ts_k_rope_cuda(lin + h, ld, w->rope_cos, w->rope_sin, w->s_loc, c->heads, c->head_dim, k->s));
    size_t bytes = sizeof(float) * (size_t)w->s_loc * (size_t)hk * (size_t)c->head_dim;
    float *full[3] = {w->qf, w->kf, w->vf};
    for (int i = 0; i < 3; i++) {
        /* send is reused: stream order puts pack i+1 after all-to-all i */
        CK(ts_k_ulysses_pack_cuda(w->send, lin + i * h, ld, w->s_loc, c->heads, c->head_dim, deg, k->s));
        TRY(k->comm->alltoall(w->send, full[i], bytes, k->s, k->comm->ctx, err));
    }
    CK(ts_k_attention_cuda(w->of, w->qf, w->kf, w->vf, w->s_pad, w->s_total, hk, c->head_dim,
                           1.0f / sqrtf((float)c->head_dim), k->s));
    TRY(k->comm->alltoall(w->of, w->send, bytes, k->s, k->comm->ctx, err));
    CK(ts_k_ulysses_unpack_cuda(out, ldo, w->send, w->s_loc, c->heads, c->head_dim, deg, k->s));
    return TS_OK;
}

static TsStatus double_block(const StepCtx *k, const TsDitDouble *b, TsErr *err) {
    const TsDitConfig *c = &k->m->cfg;
    TsDitCudaWork *w = k->w;
    int64_t h = c->hidden, mlp = (int64_t)c->mlp_ratio * h, ld = 3 * h;
    const TsDitStream *s[2] = {&b->txt, &b->img};
    int64_t r0[2] = {0, w->loc_txt}, n[2] = {w->loc_txt, w->loc_img};
    float *mod[2] = {w->mod, w->mod + 6 * h};
    for (int i = 0; i < 2; i++) {
        if (n[i] == 0) continue;
        TRY(modulation(k, &s[i]->mod, mod[i], err));
        float *x = w->x + r0[i] * h, *xm = w->xm + r0[i] * h;
        CK(ts_k_layernorm_cuda(xm, x, NULL, NULL, n[i], (int)h, c->norm_eps, k->s));
        CK(ts_k_adaln_modulate_cuda(xm, xm, mod[i], mod[i] + h, n[i], (int)h, k->s));
        TRY(linear_f(k, &s[i]->qkv, xm, h, n[i], w->lin + r0[i] * ld, ld, NO_GELU, err));
        TRY(qk_norm(k, w->lin, ld, r0[i], n[i], s[i]->q_norm, s[i]->k_norm, err));
    }
    TRY(attention_sp(k, w->lin, ld, w->attn, h, err));
    for (int i = 0; i < 2; i++) {
        if (n[i] == 0) continue;
        const float *shift2 = mod[i] + 3 * h, *scale2 = mod[i] + 4 * h;
        const float *gate1 = mod[i] + 2 * h, *gate2 = mod[i] + 5 * h;
        float *x = w->x + r0[i] * h, *xm = w->xm + r0[i] * h, *y = w->y + r0[i] * h;
        TRY(linear_f(k, &s[i]->proj, w->attn + r0[i] * h, h, n[i], y, h, NO_GELU, err));
        CK(ts_k_gated_residual_cuda(x, h, y, h, gate1, n[i], (int)h, k->s));
        CK(ts_k_layernorm_cuda(xm, x, NULL, NULL, n[i], (int)h, c->norm_eps, k->s));
        CK(ts_k_adaln_modulate_cuda(xm, xm, shift2, scale2, n[i], (int)h, k->s));
        float *hid = w->lin + r0[i] * mlp; /* [n, mlp]; lin is free after attention */
        TRY(linear_f(k, &s[i]->mlp0, xm, h, n[i], hid, mlp, NO_GELU, err));
        TRY(linear_f(k, &s[i]->mlp2, hid, mlp, n[i], y, h, 0 /* GELU on every column */, err));
        CK(ts_k_gated_residual_cuda(x, h, y, h, gate2, n[i], (int)h, k->s));
    }
    return TS_OK;
}

static TsStatus single_block(const StepCtx *k, const TsDitSingle *b, TsErr *err) {
    const TsDitConfig *c = &k->m->cfg;
    TsDitCudaWork *w = k->w;
    int64_t h = c->hidden, mlp = (int64_t)c->mlp_ratio * h, ld = 3 * h + mlp;
    int64_t n = w->loc_txt + w->loc_img;
    float *mod = w->mod;
    TRY(modulation(k, &b->mod, mod, err));
    CK(ts_k_layernorm_cuda(w->xm, w->x, NULL, NULL, n, (int)h, c->norm_eps, k->s));
    CK(ts_k_adaln_modulate_cuda(w->xm, w->xm, mod, mod + h, n, (int)h, k->s));
    TRY(linear_f(k, &b->lin1, w->xm, h, n, w->lin, ld, NO_GELU, err));
    TRY(qk_norm(k, w->lin, ld, 0, n, b->q_norm, b->k_norm, err));
    /* attention output replaces v (already sent): [attn, mlp] contiguous per row */
    TRY(attention_sp(k, w->lin, ld, w->lin + 2 * h, ld, err));
    /* linear2 on [attn, gelu(mlp)]: the GELU is fused into the bf16 staging */
    TRY(linear_f(k, &b->lin2, w->lin + 2 * h, ld, n, w->y, h, (int)h, err));
    CK(ts_k_gated_residual_cuda(w->x, h, w->y, h, mod + 2 * h, n, (int)h, k->s));
    return TS_OK;
}

/* Everything up to and including the last all-to-all's enqueue. */
static TsStatus step_enqueue(const StepCtx *k, const TsDitCudaCond *cond, float t, float t_next,
                             float *d_latent, TsErr *err) {
    const TsDit *m = k->m;
    const TsDitConfig *c = &m->cfg;
    TsDitCudaWork *w = k->w;
    int64_t h = c->hidden, cp = (int64_t)c->latent_channels * c->patch * c->patch;
    int64_t n_lat = ts_dit_latent_floats(c, w->width_px, w->height_px);

    /* conditioning vector, then silu(vec), staged once as bf16 for every
     * modulation GEMM of the step */
    CK(ts_cuda_memset(w->vec, 0, sizeof(float) * (size_t)h, k->s));
    CK(ts_k_timestep_embedding_cuda(w->temb, 1000.0f * t, c->time_dim, 10000.0f, k->s));
    TRY(embed_add(k, &m->time_in0, &m->time_in2, w->temb, err));
    TRY(embed_add(k, &m->vec_in0, &m->vec_in2, cond->pooled, err));
    if (c->guidance_embed) {
        CK(ts_k_timestep_embedding_cuda(w->temb, 1000.0f * cond->guidance, c->time_dim, 10000.0f,
                                        k->s));
        TRY(embed_add(k, &m->guid_in0, &m->guid_in2, w->temb, err));
    }
    CK(ts_k_silu_cuda(w->vec, w->vec, h, k->s));
    CK(ts_dit_k_to_bf16_2d_cuda(w->vecb, h, w->vec, h, 1, (int)h, NO_GELU, k->s));

    /* this rank's tokens: text rows, image rows, zero padding */
    CK(ts_k_patchify_cuda(w->patches, d_latent, c->latent_channels, w->lat_h, w->lat_w, c->patch,
                          k->s));
    CK(ts_cuda_memset(w->x, 0, sizeof(float) * (size_t)(w->s_loc * h), k->s));
    if (w->loc_txt > 0)
        TRY(linear_b(k, &m->txt_in, cond->txt + w->s0 * c->ctx_dim, c->ctx_dim, w->loc_txt, w->x, h,
                     0.0f, err));
    if (w->loc_img > 0)
        TRY(linear_f(k, &m->img_in, w->patches + w->img0 * cp, cp, w->loc_img,
                     w->x + w->loc_txt * h, h, NO_GELU, err));

    for (int i = 0; i < c->n_double; i++) TRY(double_block(k, &m->dbl[i], err));
    for (int i = 0; i < c->n_single; i++) TRY(single_block(k, &m->sgl[i], err));

    /* final layer on the image rows, into block 0 of vel_send ([s_loc, cp]) */
    float *mod = w->mod;
    TRY(modulation(k, &m->final_mod, mod, err));
    float *xi = w->x + w->loc_txt * h, *xm = w->xm + w->loc_txt * h;
    CK(ts_k_layernorm_cuda(xm, xi, NULL, NULL, w->loc_img, (int)h, c->norm_eps, k->s));
    CK(ts_k_adaln_modulate_cuda(xm, xm, mod, mod + h, w->loc_img, (int)h, k->s));
    size_t blk = sizeof(float) * (size_t)(w->s_loc * cp);
    CK(ts_cuda_memset(w->vel_send, 0, blk, k->s));
    TRY(linear_f(k, &m->final_lin, xm, h, w->loc_img, w->vel_send + w->loc_txt * cp, cp, NO_GELU,
                 err));
    /* all-gather as an all-to-all of identical blocks */
    for (int p = 1; p < w->degree; p++)
        CK(ts_cuda_memcpy_d2d((char *)w->vel_send + (size_t)p * blk, w->vel_send, blk, k->s));
    TRY(k->comm->alltoall(w->vel_send, w->vel_all, blk, k->s, k->comm->ctx, err));
    /* velocity latent (reusing patches), Euler */
    CK(ts_k_unpatchify_cuda(w->patches, w->vel_all + w->n_txt * cp, c->latent_channels, w->lat_h,
                            w->lat_w, c->patch, k->s));
    CK(ts_k_euler_update_cuda(d_latent, w->patches, n_lat, t, t_next, k->s));
    return TS_OK;
}

TsStatus ts_dit_cuda_step_timed(const TsDitCuda *dm, TsDitCudaWork *w, const TsDitCudaComm *comm,
                                const TsDitCudaCond *cond, float t, float t_next, float *d_latent,
                                void *ev_start, void *ev_end, TsErr *err) {
    const TsDitConfig *c = &dm->m->cfg;
    if (!dm->w_bf16)
        return ts_err(err, TS_ERR_INTERNAL, "ts_dit_cuda_step: model %s is not on the GPU", c->name);
    int size = comm->size(comm->ctx), rank = comm->rank(comm->ctx);
    if (size != w->degree || rank != w->rank)
        return ts_err(err, TS_ERR_INTERNAL,
                      "ts_dit_cuda_step: work buffers are for rank %d of %d, the communicator is rank %d of %d",
                      w->rank, w->degree, rank, size);
    StepCtx k = {.dm = dm, .m = dm->m, .w = w, .comm = comm, .s = dm->stream};
    TsStatus st = TS_OK;
    if (ev_start && ts_cuda_event_record(ev_start, dm->stream) != 0)
        st = ts_err(err, TS_ERR_SYSTEM, "%s:%d: %s", __FILE__, __LINE__, ts_cuda_last_error());
    if (st == TS_OK) st = step_enqueue(&k, cond, t, t_next, d_latent, err);
    /* the end event before the wait: the GPU's time, not the host's polling */
    if (st == TS_OK && ev_end && ts_cuda_event_record(ev_end, dm->stream) != 0)
        st = ts_err(err, TS_ERR_SYSTEM, "%s:%d: %s", __FILE__, __LINE__, ts_cuda_last_error());
    if (st != TS_OK) {
        /* do not return with work still reading caller buffers; the enqueue
         * error is the one to report */
        TsErr ignored;
        (void)comm->wait(dm->stream, "step (after an error)", comm->ctx, &ignored);
        return st;
    }
    return comm->wait(dm->stream, "DiT step", comm->ctx, err);
}

TsStatus ts_dit_cuda_step(const TsDitCuda *dm, TsDitCudaWork *w, const TsDitCudaComm *comm,
                          const TsDitCudaCond *cond, float t, float t_next, float *d_latent,
                          TsErr *err) {
    return ts_dit_cuda_step_timed(dm, w, comm, cond, t, t_next, d_latent, NULL, NULL, err);
}

/* ------------------------------------------------------------ latents */

TsStatus ts_dit_cuda_upload(const TsDitCuda *dm, float *d_dst, const float *src, int64_t n,
                            TsErr *err) {
    CK(ts_cuda_memcpy_h2d(d_dst, src, sizeof(float) * (size_t)n, dm->stream));
    return ts_dit_cuda_stream_wait(dm->stream, dm->timeout_s, "latent upload", err);
}

TsStatus ts_dit_cuda_download(const TsDitCuda *dm, float *dst, const float *d_src, int64_t n,
                              TsErr *err) {
    CK(ts_cuda_memcpy_d2h(dst, d_src, sizeof(float) * (size_t)n, dm->stream));
    return ts_dit_cuda_stream_wait(dm->stream, dm->timeout_s, "latent download", err);
}

#else
typedef int ts_dit_cuda_not_built; /* ISO C wants a non-empty translation unit */
#endif
