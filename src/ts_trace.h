/* ts_trace.h - request traces: the CSV format of SPEC.md, and trace-gen.
 *
 * A trace is a list of requests sorted by (arrival_s, id), the order in which
 * every policy sees them. Parsing refuses anything malformed with
 * "file:line: what is wrong" before any work starts. */
#ifndef TS_TRACE_H
#define TS_TRACE_H

#include <stdint.h>

#include "ts_util.h"

typedef struct TsRequest {
    int64_t id;       /* unique, >= 0 */
    double arrival_s; /* seconds from trace start, >= 0 */
    int32_t width;    /* pixels, positive multiple of 16 */
    int32_t height;   /* pixels, positive multiple of 16 */
    int32_t steps;    /* denoising steps, >= 1 */
    double slo_s;     /* latency target at SLO scale 1.0, > 0 */
} TsRequest;

typedef struct TsTrace {
    char *path;     /* as given by the user ("<generated>" for in-memory) */
    TsRequest *req; /* [n], sorted by (arrival_s, id) */
    int64_t n;
} TsTrace;

/* Latent tokens of a resolution: (width/16) * (height/16). */
static inline int64_t ts_tokens(int32_t width, int32_t height) {
    return (int64_t)(width / 16) * (int64_t)(height / 16);
}

TsStatus ts_trace_load(const char *path, TsTrace *out, TsErr *err);
/* Write a trace as CSV; header_comment (may be NULL, may hold several lines)
 * is written as '#' lines first. */
TsStatus ts_trace_save(const char *path, const TsTrace *t, const char *header_comment, TsErr *err);
/* Sort by (arrival_s, id). */
void ts_trace_sort(TsTrace *t);
void ts_trace_free(TsTrace *t);

/* The paper's base SLO for a resolution: 256 px 1.5 s, 512 px 2.0 s,
 * 1024 px 3.0 s, 2048 px 5.0 s; other resolutions interpolated linearly in
 * tokens between those points, held at 1.5 s below 256 tokens and
 * extrapolated along the last segment above 16384 tokens. */
double ts_slo_default_s(int32_t width, int32_t height);

/* Resolution mixes. */
#define TS_MIX_MAX 32
typedef struct TsMix {
    int n;
    int32_t width[TS_MIX_MAX];
    int32_t height[TS_MIX_MAX];
    double p[TS_MIX_MAX]; /* normalised to sum 1 */
} TsMix;

/* "uniform" (256, 512, 1024, 2048 square, equal shares), "skewed" (same
 * sizes, p proportional to exp(tokens / max tokens)), or "W:P,..." where W is
 * a square size ("512") or "WxH" and P a non-negative weight (normalised). */
TsStatus ts_mix_parse(const char *spec, TsMix *mix, TsErr *err);

typedef enum TsArrival { TS_ARRIVAL_POISSON = 0, TS_ARRIVAL_GAMMA = 1 } TsArrival;

typedef struct TsTraceGenArgs {
    int64_t n;           /* requests */
    double rate_per_min; /* mean arrival rate */
    TsMix mix;
    int32_t steps;
    TsArrival arrival;
    double gamma_cv;     /* coefficient of variation of gaps, for TS_ARRIVAL_GAMMA */
    uint64_t seed;
} TsTraceGenArgs;

/* Draw a trace with GSL (mt19937 seeded with seed): exponential or gamma
 * gaps with mean 60/rate_per_min, resolutions drawn from the mix, SLO from
 * ts_slo_default_s, ids 0..n-1 in arrival order. Same args, same trace. */
TsStatus ts_trace_generate(const TsTraceGenArgs *a, TsTrace *out, TsErr *err);

/* The `tetriserve trace-gen` verb. */
int ts_cmd_trace_gen(int argc, char **argv);

#endif
