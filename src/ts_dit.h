/* ts_dit.h - an MMDiT/FLUX-style diffusion transformer on the CPU: one
 * denoising step (flow-matching Euler) with Ulysses sequence parallelism
 * written against a tiny communicator (TsDitComm), so that the executor can
 * plug in MPI or NCCL and the tests can run k ranks in one process.
 *
 * Architecture (FLUX.1 layout and tensor names, so that real weights can be
 * loaded later):
 *   latent [C, H/8, W/8] -> patchify (patch P) -> img_in -> image tokens
 *   text embeddings [T, ctx_dim] -> txt_in -> text tokens
 *   vec = time_in(temb(1000 t)) + vector_in(pooled) [+ guidance_in(temb(1000 g))]
 *   joint sequence [text; image] (S = T + N tokens)
 *   n_double blocks: separate txt/img weights; adaLN (shift, scale, gate) x2
 *       from silu(vec); LN -> modulate -> qkv -> RMS QK norm -> RoPE ->
 *       joint attention -> proj -> gated residual; LN -> modulate -> MLP
 *       (GELU tanh, ratio 4) -> gated residual
 *   n_single blocks: shared weights; linear1 -> (qkv, mlp) -> attention and
 *       GELU -> linear2 on the concatenation -> gated residual
 *   final layer: LN -> modulate (shift, scale) -> linear to C*P*P, image
 *       tokens only -> unpatchify -> velocity v; latent += (t_next - t) v
 * RoPE: FLUX's axial RoPE with 3 axes (index, row, column), interleaved
 * pairs; text tokens sit at position (0, 0, 0) so their rotation is the
 * identity (RoPE effectively on image tokens only).
 *
 * Sequence parallelism (Ulysses, degree k): the joint sequence (text tokens
 * first, then image tokens) is padded with zero tokens to a multiple of k and
 * split into k equal contiguous ranges; text tokens are split like image
 * tokens (not replicated). Padding tokens are never attended to as keys and
 * their outputs are dropped. Per attention: q, k, v of the local tokens and
 * all heads are exchanged by three all-to-alls into all tokens x H/k heads;
 * attention; one all-to-all back. At the end the image tokens' velocity is
 * all-gathered (an all-to-all sending the same block to every rank), so the
 * latent is replicated on every rank after each step and the degree may
 * change freely from one step to the next.
 *
 * Memory: weights in one arena (floats); activations in a TsDitWork sized
 * for one (resolution, degree, rank); attention scratch is O(tile).
 * GEMMs through cblas_sgemm (OpenBLAS). */
#ifndef TS_DIT_H
#define TS_DIT_H

#include <stddef.h>
#include <stdint.h>

#include "ts_util.h"

#define TS_DIT_NAME_MAX 64
#define TS_DIT_ROPE_AXES 3

typedef struct TsDitConfig {
    char name[32];
    int hidden;         /* model width; = heads * head_dim */
    int heads;
    int head_dim;       /* even; = sum of rope_axes_dim */
    int n_double;       /* double-stream (MMDiT joint) blocks */
    int n_single;       /* single-stream blocks */
    int mlp_ratio;      /* MLP hidden = mlp_ratio * hidden */
    int latent_channels;
    int patch;
    int vae_factor;     /* image px per latent px */
    int txt_tokens;     /* T */
    int ctx_dim;        /* text-encoder width (T5: 4096) */
    int pooled_dim;     /* pooled text vector width (CLIP: 768) */
    int time_dim;       /* sinusoidal embedding width (256) */
    int guidance_embed; /* 1: a guidance_in embedder (FLUX.1-dev) */
    int rope_axes_dim[TS_DIT_ROPE_AXES];
    float rope_theta;
    float norm_eps;     /* layer norm (1e-6) and RMS QK norm eps */
} TsDitConfig;

/* Presets by name:
 *   "tiny"       hidden 64, 4 heads x 16, 2 double + 2 single, C=4, P=2, T=8,
 *                ctx 32, pooled 16 (tests)
 *   "flux-dev"   FLUX.1-dev: hidden 3072, 24 x 128, 19 double + 38 single,
 *                C=16, P=2, T=512, ctx 4096, pooled 768, guidance, rope
 *                axes 16/56/56, theta 10000 (11.9 B parameters)
 *   "sd3-medium" approximately SD3-Medium: hidden 1536, 24 x 64, 24 joint
 *                (double) blocks, no single blocks, C=16, P=2, T=333
 *                (77 CLIP + 256 T5), ctx 4096, pooled 2048. Approximations:
 *                SD3 uses learned absolute position embeddings (we use the
 *                axial RoPE, axes 16/24/24), has no QK RMS norm in 3.0 (we
 *                keep it) and its last block's context branch is pre-only
 *                (ours is complete): parameter count and FLOPs within a few %.
 * Returns TS_ERR_INPUT naming the known presets for an unknown name. */
TsStatus ts_dit_config_preset(const char *name, TsDitConfig *cfg, TsErr *err);
/* Check a (possibly hand-edited) configuration. */
TsStatus ts_dit_config_check(const TsDitConfig *cfg, TsErr *err);

/* One named tensor of the weight arena (safetensors-shaped: FLUX names,
 * e.g. "double_blocks.0.img_attn.qkv.weight", shape [out, in] for a linear
 * weight, [out] for a bias). */
typedef struct TsDitTensor {
    char name[TS_DIT_NAME_MAX];
    int ndim;
    int64_t shape[2];
    int64_t offset; /* in floats from the start of the arena */
    int64_t fan_in; /* seeded init: uniform, std 1/sqrt(fan_in); 0: all ones (norm scales) */
} TsDitTensor;

/* A linear layer y = x W^T + b: offsets into the arena. */
typedef struct TsDitLinear {
    int64_t w, b; /* W: [out, in], b: [out] */
    int in, out;
} TsDitLinear;

typedef struct TsDitStream { /* one stream (img or txt) of a double block */
    TsDitLinear mod;         /* hidden -> 6 hidden: shift1 scale1 gate1 shift2 scale2 gate2 */
    TsDitLinear qkv;         /* hidden -> 3 hidden */
    TsDitLinear proj;        /* hidden -> hidden */
    TsDitLinear mlp0, mlp2;  /* hidden -> ratio hidden -> hidden */
    int64_t q_norm, k_norm;  /* [head_dim] */
} TsDitStream;

typedef struct TsDitDouble {
    TsDitStream img, txt;
} TsDitDouble;

typedef struct TsDitSingle {
    TsDitLinear mod;         /* hidden -> 3 hidden: shift scale gate */
    TsDitLinear lin1;        /* hidden -> 3 hidden + mlp */
    TsDitLinear lin2;        /* hidden + mlp -> hidden */
    int64_t q_norm, k_norm;
} TsDitSingle;

typedef struct TsDit {
    TsDitConfig cfg;
    TsDitTensor *tensors; /* the table, in arena order */
    int n_tensors;
    int64_t n_params;     /* floats in the arena */
    float *arena;         /* NULL until weights are loaded */
    TsDitLinear img_in, txt_in, time_in0, time_in2, vec_in0, vec_in2, guid_in0, guid_in2;
    TsDitLinear final_mod, final_lin;
    TsDitDouble *dbl;     /* [n_double] */
    TsDitSingle *sgl;     /* [n_single] */
} TsDit;

/* Build the tensor table for cfg (checked); no weight memory yet, so this
 * works for flux-dev on a laptop (n_params, tensors). */
TsStatus ts_dit_init(TsDit *m, const TsDitConfig *cfg, TsErr *err);
void ts_dit_free(TsDit *m);

/* Allocate the arena and fill it deterministically from seed: tensor i,
 * element j is a counter-based hash of (seed, i, j) mapped to a uniform
 * value of standard deviation 1/sqrt(fan_in) (biases too; norm scales are
 * 1). Same seed, same bytes, on any machine. */
TsStatus ts_dit_weights_from_seed(TsDit *m, uint64_t seed, TsErr *err);
/* The rule ts_dit_weights_from_seed fills tensor i with: element j =
 * ts_m_seeded(key, amp, j) (ts_kernels_math.h); returns amp (0: all ones,
 * the norm scales) and sets *key. The GPU model fills its bf16 copy with the
 * same rule (ts_dit_cuda_init_seeded), so no host arena is needed there. */
float ts_dit_seed_tensor(const TsDit *m, uint64_t seed, int i, uint64_t *key);
/* Load the arena from a .safetensors file by tensor name (FLUX naming).
 * NOT IMPLEMENTED YET: returns TS_ERR_INPUT "not supported yet" naming the
 * path. When implemented: match every table entry by name and shape,
 * convert bf16/f16 to float32. */
TsStatus ts_dit_weights_from_safetensors(TsDit *m, const char *path, TsErr *err);
/* Look a tensor up by name; NULL if absent. */
const TsDitTensor *ts_dit_tensor(const TsDit *m, const char *name);

/* Tokens of an image: image tokens N = (W/16)(H/16) for vae 8 and patch 2. */
TsStatus ts_dit_check_size(const TsDitConfig *cfg, int width_px, int height_px, TsErr *err);
int64_t ts_dit_image_tokens(const TsDitConfig *cfg, int width_px, int height_px);
/* Floats of one latent [C, H/vae, W/vae]. */
int64_t ts_dit_latent_floats(const TsDitConfig *cfg, int width_px, int height_px);

/* Conditioning of a request: text embeddings and pooled vector (from the
 * text encoders, or ts_dit_cond_from_seed for synthetic prompts). */
typedef struct TsDitCond {
    const float *txt;    /* [txt_tokens, ctx_dim] */
    const float *pooled; /* [pooled_dim] */
    float guidance;      /* used when cfg.guidance_embed (FLUX.1-dev: 3.5) */
} TsDitCond;

/* Synthetic conditioning: txt[j] = ts_m_seeded(txt_key, TS_DIT_COND_AMP, j),
 * pooled likewise with pooled_key (uniform, variance 1). */
#define TS_DIT_COND_AMP 1.7320508f
void ts_dit_cond_seed_keys(uint64_t seed, uint64_t *txt_key, uint64_t *pooled_key);
/* Fill synthetic conditioning (standard-normal-ish, deterministic in seed):
 *   txt: [txt_tokens, ctx_dim]; pooled: [pooled_dim] */
void ts_dit_cond_from_seed(const TsDitConfig *cfg, uint64_t seed, float *txt, float *pooled);
/* Fill a deterministic starting noise latent [C, H/vae, W/vae]. */
void ts_dit_noise_from_seed(float *latent, int64_t n, uint64_t seed);

/* The communicator a step runs against: a group of size() ranks of which
 * this is rank(). alltoall sends block p of sendbuf (bytes_per_rank bytes at
 * offset p*bytes_per_rank) to rank p and receives rank p's block for us at
 * recvbuf + p*bytes_per_rank; collective (every rank calls it in the same
 * order with the same bytes_per_rank); buffers do not overlap. */
typedef struct TsDitComm {
    int (*rank)(void *ctx);
    int (*size)(void *ctx);
    TsStatus (*alltoall)(const void *sendbuf, void *recvbuf, size_t bytes_per_rank, void *ctx,
                         TsErr *err);
    void *ctx;
} TsDitComm;

/* Degree 1: rank 0 of 1, alltoall = memcpy. */
extern const TsDitComm ts_dit_comm_loopback;

/* Activations of one rank for one (resolution, degree). */
/* How degree k splits the joint sequence of one (resolution, rank): the
 * geometry every step implementation (CPU ts_dit_step, GPU
 * ts_dit_cuda_step) must share exactly, so it is computed in one place
 * (ts_dit_split) and copied into each workspace (TS_DIT_SPLIT_COPY). */
typedef struct TsDitSplit {
    int width_px, height_px, degree, rank;
    int lat_h, lat_w;
    int64_t n_txt, n_img, s_total, s_pad, s_loc, s0;
    int64_t loc_txt, loc_img, img0;
} TsDitSplit;

/* Check the size, the degree (it must divide the heads) and the rank, and
 * fill the split. */
TsStatus ts_dit_split(const TsDitConfig *cfg, int width_px, int height_px, int degree, int rank,
                      TsDitSplit *s, TsErr *err);

/* The split's fields into a workspace with the same field names. */
#define TS_DIT_SPLIT_COPY(w, g)                                                                    \
    do {                                                                                           \
        (w)->width_px = (g).width_px, (w)->height_px = (g).height_px;                              \
        (w)->degree = (g).degree, (w)->rank = (g).rank;                                            \
        (w)->lat_h = (g).lat_h, (w)->lat_w = (g).lat_w;                                            \
        (w)->n_txt = (g).n_txt, (w)->n_img = (g).n_img, (w)->s_total = (g).s_total;                \
        (w)->s_pad = (g).s_pad, (w)->s_loc = (g).s_loc, (w)->s0 = (g).s0;                          \
        (w)->loc_txt = (g).loc_txt, (w)->loc_img = (g).loc_img, (w)->img0 = (g).img0;              \
    } while (0)

typedef struct TsDitWork {
    int width_px, height_px, degree, rank;
    int lat_h, lat_w;
    int64_t n_txt, n_img, s_total, s_pad, s_loc, s0; /* s0: first global token of this rank */
    /* this rank's rows: [0, loc_txt) text, [loc_txt, loc_txt + loc_img) image
     * tokens img0.., the rest padding */
    int64_t loc_txt, loc_img, img0;
    int64_t floats;                                 /* size of the arena below */
    float *mem;
    /* token-major buffers of this rank's tokens: */
    float *x;        /* [s_loc, hidden] residual stream */
    float *xm;       /* [s_loc, hidden] normed and modulated */
    float *lin;      /* [s_loc, 3 hidden + mlp] qkv (+ mlp) / MLP hidden */
    float *attn;     /* [s_loc, hidden] attention output, all heads */
    float *y;        /* [s_loc, hidden] projection output */
    float *rope_cos, *rope_sin; /* [s_loc, head_dim/2] */
    /* Ulysses buffers: */
    float *send;     /* [degree, s_loc, heads/degree, head_dim] */
    float *qf, *kf, *vf, *of; /* [s_pad, heads/degree, head_dim] */
    float *attn_ws;  /* [ts_k_attention_work_floats] */
    /* per-step vectors: */
    float *temb;     /* [time_dim] */
    float *vec;      /* [hidden] conditioning vector, then silu(vec) */
    float *tmp;      /* [2 hidden] embedder hidden layer and output */
    float *mod;      /* [2][6 hidden] modulation (img, txt) */
    /* latent-sized: */
    float *patches;  /* [n_img, C P P] */
    float *vel_send; /* [degree, s_loc, C P P] */
    float *vel_all;  /* [s_pad, C P P] */
} TsDitWork;

TsStatus ts_dit_work_init(TsDitWork *w, const TsDit *m, int width_px, int height_px, int degree,
                          int rank, TsErr *err);
void ts_dit_work_free(TsDitWork *w);

/* One denoising step on this rank: latent (replicated, [C, H/vae, W/vae])
 * is updated in place to t_next. Collective over comm (size and rank must
 * match w's degree and rank). Deterministic. */
TsStatus ts_dit_step(const TsDit *m, TsDitWork *w, const TsDitComm *comm, const TsDitCond *cond,
                     float t, float t_next, float *latent, TsErr *err);

/* Tests and the cpu executor at degree > 1 without MPI: run one step on a
 * simulated group of `degree` ranks in this process (one thread per rank,
 * all-to-alls through shared memory between barriers). latent in/out as for
 * ts_dit_step; every rank's replicated copy is checked to be identical. */
TsStatus ts_dit_step_simulated(const TsDit *m, int degree, int width_px, int height_px,
                               const TsDitCond *cond, float t, float t_next, float *latent,
                               TsErr *err);

/* FLUX's flow-matching schedule without shift: t_i = 1 - i/steps, i = 0..steps. */
float ts_dit_schedule_t(int i, int steps);

#endif
