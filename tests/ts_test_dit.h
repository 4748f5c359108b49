/* ts_test_dit.h - the seeded DiT the DiT tests share (test_dit.c,
 * test_dit_cuda_host.c, gpu_test_dit.c): a preset's model with weights from
 * a seed and the conditioning of request 7, so that every test of a step
 * starts from the same inputs. Header-only (static functions): each test
 * program is one translation unit. */
#ifndef TS_TEST_DIT_H
#define TS_TEST_DIT_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ts_dit.h"

typedef struct Fixture {
    TsDit m;
    float *txt, *pooled;
    TsDitCond cond;
} Fixture;

static void fixture_free(Fixture *f) {
    ts_dit_free(&f->m);
    free(f->txt);
    free(f->pooled);
}

/* TS_OK, or the failing call's status with err set (nothing to free). */
static TsStatus fixture_make(Fixture *f, const char *preset, uint64_t seed, TsErr *err) {
    TsDitConfig cfg;
    memset(f, 0, sizeof *f);
    TsStatus st = ts_dit_config_preset(preset, &cfg, err);
    if (st == TS_OK) st = ts_dit_init(&f->m, &cfg, err);
    if (st == TS_OK && (st = ts_dit_weights_from_seed(&f->m, seed, err)) != TS_OK) ts_dit_free(&f->m);
    if (st != TS_OK) return st;
    f->txt = malloc(sizeof(float) * (size_t)cfg.txt_tokens * (size_t)cfg.ctx_dim);
    f->pooled = malloc(sizeof(float) * (size_t)cfg.pooled_dim);
    ts_dit_cond_from_seed(&cfg, 7, f->txt, f->pooled);
    f->cond = (TsDitCond){.txt = f->txt, .pooled = f->pooled, .guidance = 3.5f};
    return TS_OK;
}

#endif
