/* ts_dit.c - the FLUX-style DiT on the CPU (see ts_dit.h for the model and
 * the sequence-parallel layout). */
#include "ts_dit.h"

#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "ts_kernels.h"

/* ------------------------------------------------------------ config */

TsStatus ts_dit_config_preset(const char *name, TsDitConfig *cfg, TsErr *err) {
    memset(cfg, 0, sizeof *cfg);
    cfg->mlp_ratio = 4;
    cfg->vae_factor = 8;
    cfg->patch = 2;
    cfg->time_dim = 256;
    cfg->rope_theta = 10000.0f;
    cfg->norm_eps = 1e-6f;
    if (!name) name = "(null)";
    if (strcmp(name, "tiny") == 0) {
        cfg->hidden = 64, cfg->heads = 4, cfg->head_dim = 16;
        cfg->n_double = 2, cfg->n_single = 2;
        cfg->latent_channels = 4, cfg->txt_tokens = 8, cfg->ctx_dim = 32, cfg->pooled_dim = 16;
        cfg->time_dim = 32;
        cfg->guidance_embed = 1;
        cfg->rope_axes_dim[0] = 4, cfg->rope_axes_dim[1] = 6, cfg->rope_axes_dim[2] = 6;
    } else if (strcmp(name, "flux-dev") == 0) {
        cfg->hidden = 3072, cfg->heads = 24, cfg->head_dim = 128;
        cfg->n_double = 19, cfg->n_single = 38;
        cfg->latent_channels = 16, cfg->txt_tokens = 512, cfg->ctx_dim = 4096, cfg->pooled_dim = 768;
        cfg->guidance_embed = 1;
        cfg->rope_axes_dim[0] = 16, cfg->rope_axes_dim[1] = 56, cfg->rope_axes_dim[2] = 56;
    } else if (strcmp(name, "sd3-medium") == 0) {
        cfg->hidden = 1536, cfg->heads = 24, cfg->head_dim = 64;
        cfg->n_double = 24, cfg->n_single = 0;
        cfg->latent_channels = 16, cfg->txt_tokens = 333, cfg->ctx_dim = 4096, cfg->pooled_dim = 2048;
        cfg->guidance_embed = 0;
        cfg->rope_axes_dim[0] = 16, cfg->rope_axes_dim[1] = 24, cfg->rope_axes_dim[2] = 24;
    } else {
        return ts_err(err, TS_ERR_INPUT, "model preset '%s' is unknown (known: tiny, flux-dev, sd3-medium)",
                      name);
    }
    snprintf(cfg->name, sizeof cfg->name, "%s", name);
    return TS_OK;
}

TsStatus ts_dit_config_check(const TsDitConfig *c, TsErr *err) {
    const char *n = c->name[0] ? c->name : "(unnamed)";
    if (c->heads <= 0 || c->head_dim <= 0 || c->hidden != c->heads * c->head_dim)
        return ts_err(err, TS_ERR_INPUT, "model %s: hidden %d is not heads %d x head_dim %d", n,
                      c->hidden, c->heads, c->head_dim);
    if (c->head_dim % 2)
        return ts_err(err, TS_ERR_INPUT, "model %s: head_dim %d is odd (RoPE needs pairs)", n,
                      c->head_dim);
    int sum = 0;
    for (int a = 0; a < TS_DIT_ROPE_AXES; a++) {
        if (c->rope_axes_dim[a] < 0 || c->rope_axes_dim[a] % 2)
            return ts_err(err, TS_ERR_INPUT, "model %s: rope axis %d has odd or negative width %d", n,
                          a, c->rope_axes_dim[a]);
        sum += c->rope_axes_dim[a];
    }
    if (sum != c->head_dim)
        return ts_err(err, TS_ERR_INPUT, "model %s: rope axes sum to %d, not head_dim %d", n, sum,
                      c->head_dim);
    if (c->n_double < 0 || c->n_single < 0 || c->n_double + c->n_single == 0)
        return ts_err(err, TS_ERR_INPUT, "model %s: needs at least one block (double %d, single %d)",
                      n, c->n_double, c->n_single);
    if (c->mlp_ratio <= 0 || c->latent_channels <= 0 || c->patch <= 0 || c->vae_factor <= 0 ||
        c->txt_tokens < 0 || c->ctx_dim <= 0 || c->pooled_dim <= 0 || c->time_dim < 2 ||
        !(c->rope_theta > 0) || !(c->norm_eps > 0))
        return ts_err(err, TS_ERR_INPUT,
                      "model %s: mlp_ratio, latent_channels, patch, vae_factor, ctx_dim, pooled_dim, "
                      "rope_theta, norm_eps must be positive, time_dim >= 2, txt_tokens >= 0",
                      n);
    return TS_OK;
}

/* ------------------------------------------------------------ tensor table */

typedef struct TableBuilder {
    TsDit *m;
    int64_t cap;
} TableBuilder;

static int64_t add_tensor(TableBuilder *tb, int64_t rows, int64_t cols, int64_t fan_in,
                          const char *fmt, ...) TS_PRINTF(5, 6);

static int64_t add_tensor(TableBuilder *tb, int64_t rows, int64_t cols, int64_t fan_in,
                          const char *fmt, ...) {
    TsDit *m = tb->m;
    TS_GROW(m->tensors, tb->cap, m->n_tensors + 1);
    TsDitTensor *t = &m->tensors[m->n_tensors++];
    memset(t, 0, sizeof *t);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->name, sizeof t->name, fmt, ap);
    va_end(ap);
    t->ndim = cols > 0 ? 2 : 1;
    t->shape[0] = rows;
    t->shape[1] = cols > 0 ? cols : 0;
    t->offset = m->n_params;
    t->fan_in = fan_in;
    m->n_params += rows * (cols > 0 ? cols : 1);
    return t->offset;
}

static TsDitLinear add_linear(TableBuilder *tb, int in, int out, const char *prefix) {
    TsDitLinear l = {.in = in, .out = out};
    l.w = add_tensor(tb, out, in, in, "%s.weight", prefix);
    l.b = add_tensor(tb, out, 0, in, "%s.bias", prefix);
    return l;
}

static void add_stream(TableBuilder *tb, const TsDitConfig *c, int blk, const char *s,
                       TsDitStream *st) {
    char p[TS_DIT_NAME_MAX];
    int h = c->hidden, mlp = c->mlp_ratio * c->hidden;
    snprintf(p, sizeof p, "double_blocks.%d.%s_mod.lin", blk, s);
    st->mod = add_linear(tb, h, 6 * h, p);
    snprintf(p, sizeof p, "double_blocks.%d.%s_attn.qkv", blk, s);
    st->qkv = add_linear(tb, h, 3 * h, p);
    st->q_norm = add_tensor(tb, c->head_dim, 0, 0, "double_blocks.%d.%s_attn.norm.query_norm.scale",
                            blk, s);
    st->k_norm = add_tensor(tb, c->head_dim, 0, 0, "double_blocks.%d.%s_attn.norm.key_norm.scale",
                            blk, s);
    snprintf(p, sizeof p, "double_blocks.%d.%s_attn.proj", blk, s);
    st->proj = add_linear(tb, h, h, p);
    snprintf(p, sizeof p, "double_blocks.%d.%s_mlp.0", blk, s);
    st->mlp0 = add_linear(tb, h, mlp, p);
    snprintf(p, sizeof p, "double_blocks.%d.%s_mlp.2", blk, s);
    st->mlp2 = add_linear(tb, mlp, h, p);
}

TsStatus ts_dit_init(TsDit *m, const TsDitConfig *cfg, TsErr *err) {
    memset(m, 0, sizeof *m);
    TsStatus st = ts_dit_config_check(cfg, err);
    if (st != TS_OK) return st;
    m->cfg = *cfg;
    const TsDitConfig *c = &m->cfg;
    TableBuilder tb = {.m = m, .cap = 0};
    int h = c->hidden, mlp = c->mlp_ratio * c->hidden, cp = c->latent_channels * c->patch * c->patch;
    m->img_in = add_linear(&tb, cp, h, "img_in");
    m->time_in0 = add_linear(&tb, c->time_dim, h, "time_in.in_layer");
    m->time_in2 = add_linear(&tb, h, h, "time_in.out_layer");
    m->vec_in0 = add_linear(&tb, c->pooled_dim, h, "vector_in.in_layer");
    m->vec_in2 = add_linear(&tb, h, h, "vector_in.out_layer");
    if (c->guidance_embed) {
        m->guid_in0 = add_linear(&tb, c->time_dim, h, "guidance_in.in_layer");
        m->guid_in2 = add_linear(&tb, h, h, "guidance_in.out_layer");
    }
    m->txt_in = add_linear(&tb, c->ctx_dim, h, "txt_in");
    m->dbl = ts_xcalloc((size_t)c->n_double + 1, sizeof *m->dbl);
    m->sgl = ts_xcalloc((size_t)c->n_single + 1, sizeof *m->sgl);
    for (int i = 0; i < c->n_double; i++) {
        add_stream(&tb, c, i, "img", &m->dbl[i].img);
        add_stream(&tb, c, i, "txt", &m->dbl[i].txt);
    }
    char p[TS_DIT_NAME_MAX];
    for (int i = 0; i < c->n_single; i++) {
        TsDitSingle *s = &m->sgl[i];
        snprintf(p, sizeof p, "single_blocks.%d.modulation.lin", i);
        s->mod = add_linear(&tb, h, 3 * h, p);
        snprintf(p, sizeof p, "single_blocks.%d.linear1", i);
        s->lin1 = add_linear(&tb, h, 3 * h + mlp, p);
        snprintf(p, sizeof p, "single_blocks.%d.linear2", i);
        s->lin2 = add_linear(&tb, h + mlp, h, p);
        s->q_norm = add_tensor(&tb, c->head_dim, 0, 0, "single_blocks.%d.norm.query_norm.scale", i);
        s->k_norm = add_tensor(&tb, c->head_dim, 0, 0, "single_blocks.%d.norm.key_norm.scale", i);
    }
    m->final_mod = add_linear(&tb, h, 2 * h, "final_layer.adaLN_modulation.1");
    m->final_lin = add_linear(&tb, h, cp, "final_layer.linear");
    return TS_OK;
}

void ts_dit_free(TsDit *m) {
    free(m->tensors);
    free(m->arena);
    free(m->dbl);
    free(m->sgl);
    memset(m, 0, sizeof *m);
}

const TsDitTensor *ts_dit_tensor(const TsDit *m, const char *name) {
    for (int i = 0; i < m->n_tensors; i++)
        if (strcmp(m->tensors[i].name, name) == 0) return &m->tensors[i];
    return NULL;
}

/* The generator (ts_m_mix64, ts_m_hash_uniform in ts_kernels_math.h) is
 * counter-based, so every element is a pure function of (seed, tensor,
 * index), independent of fill order, and the GPU fills its copy with the
 * same function (ts_dit_cuda_init_seeded). */
static uint64_t mix64(uint64_t z) { return ts_m_mix64(z); }

float ts_dit_seed_tensor(const TsDit *m, uint64_t seed, int i, uint64_t *key) {
    const TsDitTensor *t = &m->tensors[i];
    *key = mix64(seed ^ mix64(0x7465747269ull + (uint64_t)i));
    if (t->fan_in == 0) return 0.0f;                        /* norm scales: ones */
    return (float)(sqrt(3.0) / sqrt((double)t->fan_in)); /* std 1/sqrt(fan_in) */
}

TsStatus ts_dit_weights_from_seed(TsDit *m, uint64_t seed, TsErr *err) {
    if (!m->tensors) return ts_err(err, TS_ERR_INTERNAL, "ts_dit_weights_from_seed: model not initialised");
    if ((uint64_t)m->n_params > SIZE_MAX / sizeof(float))
        return ts_err(err, TS_ERR_INPUT, "model %s: %lld parameters do not fit in memory", m->cfg.name,
                      (long long)m->n_params);
    free(m->arena);
    m->arena = ts_xmalloc((size_t)m->n_params * sizeof(float));
    for (int i = 0; i < m->n_tensors; i++) {
        const TsDitTensor *t = &m->tensors[i];
        uint64_t key;
        float amp = ts_dit_seed_tensor(m, seed, i, &key);
        ts_k_fill_seeded_cpu(m->arena + t->offset, t->shape[0] * (t->ndim == 2 ? t->shape[1] : 1), key,
                             amp);
    }
    return TS_OK;
}

TsStatus ts_dit_weights_from_safetensors(TsDit *m, const char *path, TsErr *err) {
    (void)m;
    return ts_err(err, TS_ERR_INPUT,
                  "%s: loading safetensors weights is not supported yet (use seeded weights)",
                  path ? path : "(null)");
}

void ts_dit_cond_seed_keys(uint64_t seed, uint64_t *txt_key, uint64_t *pooled_key) {
    *txt_key = mix64(seed ^ 0x747874ull);
    *pooled_key = mix64(seed ^ 0x706f6f6cull);
}

void ts_dit_cond_from_seed(const TsDitConfig *cfg, uint64_t seed, float *txt, float *pooled) {
    uint64_t k1, k2;
    ts_dit_cond_seed_keys(seed, &k1, &k2);
    /* uniform with variance 1 (sqrt(3) * U[-1, 1)) */
    ts_k_fill_seeded_cpu(txt, (int64_t)cfg->txt_tokens * cfg->ctx_dim, k1, TS_DIT_COND_AMP);
    ts_k_fill_seeded_cpu(pooled, cfg->pooled_dim, k2, TS_DIT_COND_AMP);
}

void ts_dit_noise_from_seed(float *latent, int64_t n, uint64_t seed) {
    uint64_t key = mix64(seed ^ 0x6e6f697365ull);
    /* Box-Muller on pairs of hashed uniforms: a Gaussian start like the real sampler's */
    for (int64_t j = 0; j < n; j++) {
        double u1 = ((double)(mix64(key ^ mix64(2 * (uint64_t)j)) >> 11) + 0.5) / 9007199254740992.0;
        double u2 = ((double)(mix64(key ^ mix64(2 * (uint64_t)j + 1)) >> 11)) / 9007199254740992.0;
        latent[j] = (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
    }
}

float ts_dit_schedule_t(int i, int steps) { return 1.0f - (float)i / (float)steps; }

/* ------------------------------------------------------------ sizes */

TsStatus ts_dit_check_size(const TsDitConfig *cfg, int width_px, int height_px, TsErr *err) {
    int q = cfg->vae_factor * cfg->patch;
    if (width_px <= 0 || height_px <= 0 || width_px % q || height_px % q)
        return ts_err(err, TS_ERR_INPUT, "model %s: image %dx%d px is not a positive multiple of %d px",
                      cfg->name, width_px, height_px, q);
    return TS_OK;
}

int64_t ts_dit_image_tokens(const TsDitConfig *cfg, int width_px, int height_px) {
    int q = cfg->vae_factor * cfg->patch;
    return (int64_t)(width_px / q) * (height_px / q);
}

int64_t ts_dit_latent_floats(const TsDitConfig *cfg, int width_px, int height_px) {
    return (int64_t)cfg->latent_channels * (height_px / cfg->vae_factor) *
           (width_px / cfg->vae_factor);
}

/* ------------------------------------------------------------ work */

static float *carve(float **p, int64_t n) {
    float *r = *p;
    *p += (n + 15) & ~(int64_t)15; /* 64-byte alignment of every buffer */
    return r;
}

TsStatus ts_dit_split(const TsDitConfig *c, int width_px, int height_px, int degree, int rank,
                      TsDitSplit *s, TsErr *err) {
    memset(s, 0, sizeof *s);
    TsStatus st = ts_dit_check_size(c, width_px, height_px, err);
    if (st != TS_OK) return st;
    if (degree < 1 || c->heads % degree)
        return ts_err(err, TS_ERR_INPUT, "model %s: degree %d does not divide its %d heads", c->name,
                      degree, c->heads);
    if (rank < 0 || rank >= degree)
        return ts_err(err, TS_ERR_INTERNAL, "rank %d outside a group of %d", rank, degree);
    s->width_px = width_px, s->height_px = height_px, s->degree = degree, s->rank = rank;
    s->lat_h = height_px / c->vae_factor, s->lat_w = width_px / c->vae_factor;
    s->n_txt = c->txt_tokens;
    s->n_img = ts_dit_image_tokens(c, width_px, height_px);
    s->s_total = s->n_txt + s->n_img;
    /* pad to a multiple of k, k equal contiguous ranges: text tokens first */
    s->s_pad = (s->s_total + degree - 1) / degree * degree;
    s->s_loc = s->s_pad / degree;
    s->s0 = (int64_t)rank * s->s_loc;
    int64_t g1 = s->s0 + s->s_loc;
    int64_t t_end = g1 < s->n_txt ? g1 : s->n_txt;
    s->loc_txt = t_end > s->s0 ? t_end - s->s0 : 0;
    int64_t i_beg = s->s0 > s->n_txt ? s->s0 : s->n_txt;
    int64_t i_end = g1 < s->s_total ? g1 : s->s_total;
    s->loc_img = i_end > i_beg ? i_end - i_beg : 0;
    s->img0 = i_beg - s->n_txt;
    return TS_OK;
}

TsStatus ts_dit_work_init(TsDitWork *w, const TsDit *m, int width_px, int height_px, int degree,
                          int rank, TsErr *err) {
    memset(w, 0, sizeof *w);
    const TsDitConfig *c = &m->cfg;
    TsDitSplit g;
    TsStatus st = ts_dit_split(c, width_px, height_px, degree, rank, &g, err);
    if (st != TS_OK) return st;
    TS_DIT_SPLIT_COPY(w, g);

    int64_t h = c->hidden, mlp = (int64_t)c->mlp_ratio * h, half = c->head_dim / 2;
    int64_t cp = (int64_t)c->latent_channels * c->patch * c->patch;
    int64_t sl = w->s_loc, sp = w->s_pad, hk = h / degree;
    int64_t sizes[] = {
        sl * h, sl * h, sl * (3 * h + mlp), sl * h, sl * h, /* x xm lin attn y */
        sl * half, sl * half,                           /* rope */
        sl * h, sp * hk, sp * hk, sp * hk, sp * hk,     /* send qf kf vf of */
        ts_k_attention_work_floats(c->head_dim),
        c->time_dim, h, 2 * h, 12 * h,                  /* temb vec tmp mod */
        w->n_img * cp, degree * sl * cp, sp * cp,       /* patches vel_send vel_all */
        sl * TS_DIT_ROPE_AXES,                          /* positions (init only) */
    };
    int64_t total = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) total += (sizes[i] + 15) & ~(int64_t)15;
    w->floats = total;
    w->mem = ts_xcalloc((size_t)total, sizeof(float));
    float *p = w->mem;
    w->x = carve(&p, sizes[0]);
    w->xm = carve(&p, sizes[1]);
    w->lin = carve(&p, sizes[2]);
    w->attn = carve(&p, sizes[3]);
    w->y = carve(&p, sizes[4]);
    w->rope_cos = carve(&p, sizes[5]);
    w->rope_sin = carve(&p, sizes[6]);
    w->send = carve(&p, sizes[7]);
    w->qf = carve(&p, sizes[8]);
    w->kf = carve(&p, sizes[9]);
    w->vf = carve(&p, sizes[10]);
    w->of = carve(&p, sizes[11]);
    w->attn_ws = carve(&p, sizes[12]);
    w->temb = carve(&p, sizes[13]);
    w->vec = carve(&p, sizes[14]);
    w->tmp = carve(&p, sizes[15]);
    w->mod = carve(&p, sizes[16]);
    w->patches = carve(&p, sizes[17]);
    w->vel_send = carve(&p, sizes[18]);
    w->vel_all = carve(&p, sizes[19]);
    float *pos = carve(&p, sizes[20]); /* [s_loc, 3]: text and padding stay at 0 */

    /* RoPE positions (0, row, column) of this rank's image tokens. */
    int64_t wp = w->lat_w / c->patch;
    for (int64_t r = 0; r < w->loc_img; r++) {
        int64_t i = w->img0 + r;
        pos[(w->loc_txt + r) * TS_DIT_ROPE_AXES + 1] = (float)(i / wp);
        pos[(w->loc_txt + r) * TS_DIT_ROPE_AXES + 2] = (float)(i % wp);
    }
    ts_k_rope_table_cpu(w->rope_cos, w->rope_sin, pos, sl, TS_DIT_ROPE_AXES, c->rope_axes_dim,
                        c->rope_theta);
    return TS_OK;
}

void ts_dit_work_free(TsDitWork *w) {
    free(w->mem);
    memset(w, 0, sizeof *w);
}

/* ------------------------------------------------------------ step */

/* y[rows, out] (row stride ldy) = x[rows, in] (row stride ldx) W^T + b */
static void linear(const TsDit *m, const TsDitLinear *l, const float *x, int64_t ldx, int64_t rows,
                   float *y, int64_t ldy) {
    if (rows <= 0) return;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, l->out, l->in, 1.0f, x, (int)ldx,
                m->arena + l->w, l->in, 0.0f, y, (int)ldy);
    ts_k_bias_add_cpu(y, ldy, m->arena + l->b, rows, l->out);
}

/* MLPEmbedder: out_layer(silu(in_layer(x))) added to w->vec. */
static void embed_add(const TsDit *m, TsDitWork *w, const TsDitLinear *l0, const TsDitLinear *l2,
                      const float *in) {
    int h = m->cfg.hidden;
    linear(m, l0, in, l0->in, 1, w->tmp, h);
    ts_k_silu_cpu(w->tmp, w->tmp, h);
    float *o = w->tmp + h; /* tmp: [2 hidden] */
    linear(m, l2, w->tmp, h, 1, o, h);
    for (int j = 0; j < h; j++) w->vec[j] += o[j];
}

/* RMS-normalise the q and k heads of rows [r0, r0 + n) of a qkv buffer. */
static void qk_norm(const TsDit *m, float *lin, int64_t ld, int64_t r0, int64_t n, int64_t q_norm,
                    int64_t k_norm) {
    const TsDitConfig *c = &m->cfg;
    for (int64_t r = r0; r < r0 + n; r++) {
        float *q = lin + r * ld, *k = q + c->hidden;
        ts_k_rmsnorm_cpu(q, q, m->arena + q_norm, c->heads, c->head_dim, c->norm_eps);
        ts_k_rmsnorm_cpu(k, k, m->arena + k_norm, c->heads, c->head_dim, c->norm_eps);
    }
}

/* Rows [0, n_valid) of lin hold q, k, v (columns 0, hidden, 2 hidden) of
 * this rank's tokens: RoPE, zero the padding rows, Ulysses attention; the
 * output (all heads, this rank's tokens) goes to out [s_loc, ldo]. */
static TsStatus attention_sp(const TsDit *m, TsDitWork *w, const TsDitComm *comm, float *lin,
                             int64_t ld, float *out, int64_t ldo, TsErr *err) {
    const TsDitConfig *c = &m->cfg;
    int64_t h = c->hidden, n_valid = w->loc_txt + w->loc_img;
    int k = w->degree, hk = c->heads / k;
    for (int64_t r = n_valid; r < w->s_loc; r++) memset(lin + r * ld, 0, sizeof(float) * 3 * (size_t)h);
    ts_k_rope_cpu(lin, ld, w->rope_cos, w->rope_sin, w->s_loc, c->heads, c->head_dim);
    ts_k_rope_cpu(lin + h, ld, w->rope_cos, w->rope_sin, w->s_loc, c->heads, c->head_dim);
    size_t bytes = sizeof(float) * (size_t)w->s_loc * (size_t)hk * (size_t)c->head_dim;
    float *full[3] = {w->qf, w->kf, w->vf};
    for (int i = 0; i < 3; i++) {
        ts_k_ulysses_pack_cpu(w->send, lin + i * h, ld, w->s_loc, c->heads, c->head_dim, k);
        TsStatus st = comm->alltoall(w->send, full[i], bytes, comm->ctx, err);
        if (st != TS_OK) return st;
    }
    ts_k_attention_cpu(w->of, w->qf, w->kf, w->vf, w->s_pad, w->s_total, hk, c->head_dim,
                       1.0f / sqrtf((float)c->head_dim), w->attn_ws);
    TsStatus st = comm->alltoall(w->of, w->send, bytes, comm->ctx, err);
    if (st != TS_OK) return st;
    ts_k_ulysses_unpack_cpu(out, ldo, w->send, w->s_loc, c->heads, c->head_dim, k);
    return TS_OK;
}

static TsStatus double_block(const TsDit *m, TsDitWork *w, const TsDitComm *comm,
                             const TsDitDouble *b, TsErr *err) {
    const TsDitConfig *c = &m->cfg;
    int64_t h = c->hidden, mlp = (int64_t)c->mlp_ratio * h, ld = 3 * h;
    /* stream 0: text rows, stream 1: image rows */
    const TsDitStream *s[2] = {&b->txt, &b->img};
    int64_t r0[2] = {0, w->loc_txt}, n[2] = {w->loc_txt, w->loc_img};
    float *mod[2] = {w->mod, w->mod + 6 * h};
    for (int i = 0; i < 2; i++) {
        if (n[i] == 0) continue;
        linear(m, &s[i]->mod, w->vec, h, 1, mod[i], 6 * h);
        float *x = w->x + r0[i] * h, *xm = w->xm + r0[i] * h;
        ts_k_layernorm_cpu(xm, x, NULL, NULL, n[i], (int)h, c->norm_eps);
        ts_k_adaln_modulate_cpu(xm, xm, mod[i], mod[i] + h, n[i], (int)h);
        linear(m, &s[i]->qkv, xm, h, n[i], w->lin + r0[i] * ld, ld);
        qk_norm(m, w->lin, ld, r0[i], n[i], s[i]->q_norm, s[i]->k_norm);
    }
    TsStatus st = attention_sp(m, w, comm, w->lin, ld, w->attn, h, err);
    if (st != TS_OK) return st;
    for (int i = 0; i < 2; i++) {
        if (n[i] == 0) continue;
        const float *shift2 = mod[i] + 3 * h, *scale2 = mod[i] + 4 * h;
        const float *gate1 = mod[i] + 2 * h, *gate2 = mod[i] + 5 * h;
        float *x = w->x + r0[i] * h, *xm = w->xm + r0[i] * h, *y = w->y + r0[i] * h;
        linear(m, &s[i]->proj, w->attn + r0[i] * h, h, n[i], y, h);
        ts_k_gated_residual_cpu(x, h, y, h, gate1, n[i], (int)h);
        ts_k_layernorm_cpu(xm, x, NULL, NULL, n[i], (int)h, c->norm_eps);
        ts_k_adaln_modulate_cpu(xm, xm, shift2, scale2, n[i], (int)h);
        float *hid = w->lin + r0[i] * mlp; /* [n, mlp]; lin is free after attention */
        linear(m, &s[i]->mlp0, xm, h, n[i], hid, mlp);
        ts_k_gelu_tanh_cpu(hid, hid, n[i] * mlp);
        linear(m, &s[i]->mlp2, hid, mlp, n[i], y, h);
        ts_k_gated_residual_cpu(x, h, y, h, gate2, n[i], (int)h);
    }
    return TS_OK;
}

static TsStatus single_block(const TsDit *m, TsDitWork *w, const TsDitComm *comm,
                             const TsDitSingle *b, TsErr *err) {
    const TsDitConfig *c = &m->cfg;
    int64_t h = c->hidden, mlp = (int64_t)c->mlp_ratio * h, ld = 3 * h + mlp;
    int64_t n = w->loc_txt + w->loc_img;
    float *mod = w->mod;
    linear(m, &b->mod, w->vec, h, 1, mod, 3 * h);
    ts_k_layernorm_cpu(w->xm, w->x, NULL, NULL, n, (int)h, c->norm_eps);
    ts_k_adaln_modulate_cpu(w->xm, w->xm, mod, mod + h, n, (int)h);
    linear(m, &b->lin1, w->xm, h, n, w->lin, ld);
    qk_norm(m, w->lin, ld, 0, n, b->q_norm, b->k_norm);
    /* attention output replaces v (already sent), so [attn, mlp] is contiguous per row */
    TsStatus st = attention_sp(m, w, comm, w->lin, ld, w->lin + 2 * h, ld, err);
    if (st != TS_OK) return st;
    for (int64_t r = 0; r < n; r++) {
        float *hid = w->lin + r * ld + 3 * h;
        ts_k_gelu_tanh_cpu(hid, hid, mlp);
    }
    linear(m, &b->lin2, w->lin + 2 * h, ld, n, w->y, h);
    ts_k_gated_residual_cpu(w->x, h, w->y, h, mod + 2 * h, n, (int)h);
    return TS_OK;
}

TsStatus ts_dit_step(const TsDit *m, TsDitWork *w, const TsDitComm *comm, const TsDitCond *cond,
                     float t, float t_next, float *latent, TsErr *err) {
    const TsDitConfig *c = &m->cfg;
    if (!m->arena) return ts_err(err, TS_ERR_INTERNAL, "ts_dit_step: model %s has no weights", c->name);
    int size = comm->size(comm->ctx), rank = comm->rank(comm->ctx);
    if (size != w->degree || rank != w->rank)
        return ts_err(err, TS_ERR_INTERNAL,
                      "ts_dit_step: work buffers are for rank %d of %d, the communicator is rank %d of %d",
                      w->rank, w->degree, rank, size);
    int64_t h = c->hidden, cp = (int64_t)c->latent_channels * c->patch * c->patch;
    int64_t n_lat = ts_dit_latent_floats(c, w->width_px, w->height_px);

    /* conditioning vector, then silu(vec) which is all the blocks use */
    memset(w->vec, 0, sizeof(float) * (size_t)h);
    ts_k_timestep_embedding_cpu(w->temb, 1000.0f * t, c->time_dim, 10000.0f);
    embed_add(m, w, &m->time_in0, &m->time_in2, w->temb);
    embed_add(m, w, &m->vec_in0, &m->vec_in2, cond->pooled);
    if (c->guidance_embed) {
        ts_k_timestep_embedding_cpu(w->temb, 1000.0f * cond->guidance, c->time_dim, 10000.0f);
        embed_add(m, w, &m->guid_in0, &m->guid_in2, w->temb);
    }
    ts_k_silu_cpu(w->vec, w->vec, h);

    /* this rank's tokens: text rows, image rows, zero padding */
    ts_k_patchify_cpu(w->patches, latent, c->latent_channels, w->lat_h, w->lat_w, c->patch);
    memset(w->x, 0, sizeof(float) * (size_t)(w->s_loc * h));
    if (w->loc_txt > 0)
        linear(m, &m->txt_in, cond->txt + w->s0 * c->ctx_dim, c->ctx_dim, w->loc_txt, w->x, h);
    if (w->loc_img > 0)
        linear(m, &m->img_in, w->patches + w->img0 * cp, cp, w->loc_img, w->x + w->loc_txt * h, h);

    for (int i = 0; i < c->n_double; i++) {
        TsStatus st = double_block(m, w, comm, &m->dbl[i], err);
        if (st != TS_OK) return st;
    }
    for (int i = 0; i < c->n_single; i++) {
        TsStatus st = single_block(m, w, comm, &m->sgl[i], err);
        if (st != TS_OK) return st;
    }

    /* final layer on the image rows, into block 0 of vel_send ([s_loc, cp]) */
    float *mod = w->mod;
    linear(m, &m->final_mod, w->vec, h, 1, mod, 2 * h);
    float *xi = w->x + w->loc_txt * h, *xm = w->xm + w->loc_txt * h;
    ts_k_layernorm_cpu(xm, xi, NULL, NULL, w->loc_img, (int)h, c->norm_eps);
    ts_k_adaln_modulate_cpu(xm, xm, mod, mod + h, w->loc_img, (int)h);
    memset(w->vel_send, 0, sizeof(float) * (size_t)(w->s_loc * cp));
    linear(m, &m->final_lin, xm, h, w->loc_img, w->vel_send + w->loc_txt * cp, cp);
    /* all-gather as an all-to-all of identical blocks */
    for (int p = 1; p < w->degree; p++)
        memcpy(w->vel_send + p * w->s_loc * cp, w->vel_send, sizeof(float) * (size_t)(w->s_loc * cp));
    TsStatus st = comm->alltoall(w->vel_send, w->vel_all, sizeof(float) * (size_t)(w->s_loc * cp),
                                 comm->ctx, err);
    if (st != TS_OK) return st;
    /* velocity latent (reusing patches), Euler */
    ts_k_unpatchify_cpu(w->patches, w->vel_all + w->n_txt * cp, c->latent_channels, w->lat_h,
                        w->lat_w, c->patch);
    ts_k_euler_update_cpu(latent, w->patches, n_lat, t, t_next);
    return TS_OK;
}

/* ------------------------------------------------------------ communicators */

static int loop_rank(void *ctx) {
    (void)ctx;
    return 0;
}

static int loop_size(void *ctx) {
    (void)ctx;
    return 1;
}

static TsStatus loop_alltoall(const void *sendbuf, void *recvbuf, size_t bytes, void *ctx, TsErr *err) {
    (void)ctx;
    (void)err;
    memcpy(recvbuf, sendbuf, bytes);
    return TS_OK;
}

const TsDitComm ts_dit_comm_loopback = {loop_rank, loop_size, loop_alltoall, NULL};

/* Simulated group: one thread per rank; an all-to-all publishes the send
 * pointer, waits for everyone, copies its blocks, and waits again so that no
 * sender reuses its buffer while others still read it. */
typedef struct SimGroup {
    int size;
    pthread_barrier_t barrier;
    const void **send; /* [size] */
    size_t *bytes;     /* [size] */
} SimGroup;

typedef struct SimRank {
    SimGroup *g;
    int rank;
    const TsDit *m;
    TsDitWork work;
    const TsDitCond *cond;
    float t, t_next;
    float *latent;
    TsStatus status;
    TsErr err;
} SimRank;

static int sim_rank(void *ctx) { return ((SimRank *)ctx)->rank; }
static int sim_size(void *ctx) { return ((SimRank *)ctx)->g->size; }

static TsStatus sim_alltoall(const void *sendbuf, void *recvbuf, size_t bytes, void *ctx, TsErr *err) {
    SimRank *me = ctx;
    SimGroup *g = me->g;
    g->send[me->rank] = sendbuf;
    g->bytes[me->rank] = bytes;
    pthread_barrier_wait(&g->barrier);
    int same = 1;
    for (int p = 0; p < g->size; p++) same &= g->bytes[p] == bytes;
    if (same)
        for (int p = 0; p < g->size; p++)
            memcpy((char *)recvbuf + (size_t)p * bytes, (const char *)g->send[p] + (size_t)me->rank * bytes,
                   bytes);
    pthread_barrier_wait(&g->barrier);
    if (!same)
        return ts_err(err, TS_ERR_INTERNAL, "simulated all-to-all: ranks passed different sizes (rank %d: %zu bytes)",
                      me->rank, bytes);
    return TS_OK;
}

static void *sim_main(void *arg) {
    SimRank *r = arg;
    TsDitComm comm = {sim_rank, sim_size, sim_alltoall, r};
    r->status = ts_dit_step(r->m, &r->work, &comm, r->cond, r->t, r->t_next, r->latent, &r->err);
    return NULL;
}

TsStatus ts_dit_step_simulated(const TsDit *m, int degree, int width_px, int height_px,
                               const TsDitCond *cond, float t, float t_next, float *latent,
                               TsErr *err) {
    if (degree == 1) {
        TsDitWork w;
        TsStatus st = ts_dit_work_init(&w, m, width_px, height_px, 1, 0, err);
        if (st != TS_OK) return st;
        st = ts_dit_step(m, &w, &ts_dit_comm_loopback, cond, t, t_next, latent, err);
        ts_dit_work_free(&w);
        return st;
    }
    if (degree < 1) return ts_err(err, TS_ERR_INPUT, "simulated group: degree %d < 1", degree);
    int64_t n_lat = ts_dit_latent_floats(&m->cfg, width_px, height_px);
    TsStatus st = TS_OK;
    SimGroup g = {.size = degree};
    SimRank *ranks = ts_xcalloc((size_t)degree, sizeof *ranks);
    pthread_t *th = ts_xcalloc((size_t)degree, sizeof *th);
    g.send = ts_xcalloc((size_t)degree, sizeof *g.send);
    g.bytes = ts_xcalloc((size_t)degree, sizeof *g.bytes);
    int inited = 0, started = 0, barrier = 0;
    for (; inited < degree; inited++) {
        SimRank *r = &ranks[inited];
        st = ts_dit_work_init(&r->work, m, width_px, height_px, degree, inited, err);
        if (st != TS_OK) goto cleanup;
        r->g = &g, r->rank = inited, r->m = m, r->cond = cond, r->t = t, r->t_next = t_next;
        r->latent = ts_xmalloc(sizeof(float) * (size_t)n_lat);
        memcpy(r->latent, latent, sizeof(float) * (size_t)n_lat);
    }
    if (pthread_barrier_init(&g.barrier, NULL, (unsigned)degree) != 0) {
        st = ts_err(err, TS_ERR_SYSTEM, "simulated group: pthread_barrier_init failed for %d ranks", degree);
        goto cleanup;
    }
    barrier = 1;
    for (; started < degree; started++) {
        if (pthread_create(&th[started], NULL, sim_main, &ranks[started]) != 0) {
            /* the started ranks would wait forever at the first barrier */
            fprintf(stderr, "tetriserve: simulated group: pthread_create failed for rank %d\n", started);
            abort();
        }
    }
    for (int p = 0; p < degree; p++) pthread_join(th[p], NULL);
    for (int p = 0; p < degree && st == TS_OK; p++)
        if (ranks[p].status != TS_OK) {
            if (err) *err = ranks[p].err;
            st = ranks[p].status;
        }
    for (int p = 1; p < degree && st == TS_OK; p++)
        if (memcmp(ranks[p].latent, ranks[0].latent, sizeof(float) * (size_t)n_lat) != 0)
            st = ts_err(err, TS_ERR_INTERNAL, "simulated group: rank %d's latent differs from rank 0's", p);
    if (st == TS_OK) memcpy(latent, ranks[0].latent, sizeof(float) * (size_t)n_lat);
cleanup:
    if (barrier) pthread_barrier_destroy(&g.barrier);
    for (int p = 0; p < inited; p++) {
        ts_dit_work_free(&ranks[p].work);
        free(ranks[p].latent);
    }
    free(g.send);
    free(g.bytes);
    free(th);
    free(ranks);
    return st;
}
