/* ts_run.h - MPI-free parts of the live executor (`tetriserve run`, see
 * mpi_run.c): the control messages rank 0 and the workers exchange, as
 * fixed layouts of int64 words, and the option parsing shared by every rank.
 *
 * Control plane: rank 0 sends each worker of a launch one LAUNCH message
 * (point-to-point, only to the workers involved), and the old leader of a
 * request whose GPU set changes one MOVE message, before the LAUNCH ones.
 * Messages from rank 0 to one worker keep their order (MPI's
 * non-overtaking rule on one tag), which the worker relies on.
 *
 * LAUNCH words: kind, seq, slot, n_steps, degree, n_req, width, height,
 *   step_s (double bits, trace seconds), overhead_s (double bits, trace
 *   seconds, 0 unless a request finishes), issue_wall (double bits: when
 *   rank 0 issued it, on rank 0's clock), then degree world ranks (sorted,
 *   the first is the leader), then n_req x (index, id, step_begin, steps,
 *   src). src: TS_RUN_SRC_FRESH (first launch: a new noise latent),
 *   TS_RUN_SRC_HELD (same GPU set as the previous segment: the group holds
 *   the latent), else the world rank of the previous segment's leader.
 * MOVE words: kind, index (request), dest (world rank of the new leader).
 * STOP words: kind. */
#ifndef TS_RUN_H
#define TS_RUN_H

#include <stdint.h>

#include "ts_profile.h"
#include "ts_util.h"

enum { TS_RUN_MSG_LAUNCH = 1, TS_RUN_MSG_MOVE = 2, TS_RUN_MSG_STOP = 3 };
enum { TS_RUN_SRC_FRESH = -1, TS_RUN_SRC_HELD = -2 };

#define TS_RUN_MAX_DEGREE 256
#define TS_RUN_HDR_WORDS 11
#define TS_RUN_REQ_WORDS 5
/* Largest message in int64 words. */
#define TS_RUN_MAX_WORDS (TS_RUN_HDR_WORDS + TS_RUN_MAX_DEGREE + TS_MAX_BATCH * TS_RUN_REQ_WORDS)

typedef struct TsRunReq {
    int64_t index, id; /* trace index and request id */
    int32_t step_begin, steps;
    int32_t src; /* TS_RUN_SRC_* or a world rank */
} TsRunReq;

typedef struct TsRunMsg {
    int32_t kind;
    /* LAUNCH */
    int64_t seq, slot;
    int32_t n_steps, degree, n_req, width, height;
    double step_s, overhead_s, issue_wall;
    int32_t ranks[TS_RUN_MAX_DEGREE];
    TsRunReq req[TS_MAX_BATCH];
    /* MOVE */
    int64_t index;
    int32_t dest;
} TsRunMsg;

/* Encode into buf (>= TS_RUN_MAX_WORDS words); returns the word count. */
int ts_run_msg_encode(const TsRunMsg *m, int64_t *buf);
/* Decode n words; TS_ERR_INTERNAL naming what is wrong if malformed. */
TsStatus ts_run_msg_decode(const int64_t *buf, int n, TsRunMsg *m, TsErr *err);

/* Completion report of a launch (leader -> rank 0), as doubles: times are
 * wall seconds on rank 0's clock (the worker adds its measured offset). */
typedef struct TsRunDone {
    double seq, slot;
    double start_wall, end_wall; /* first step start, last step (+ overhead) end */
    double move_s;               /* waiting for moved latents (0 if none) */
    double move_bytes;           /* bytes received by the leader */
    double checksum;             /* cpu: sum of the finished latents' elements */
} TsRunDone;
#define TS_RUN_DONE_WORDS 7

/* --fault-inject RANK:hang|exit:AFTER_S */
typedef struct TsRunFault {
    int rank; /* -1: none */
    int exit; /* 1 exit, 0 hang */
    double after_s;
} TsRunFault;
TsStatus ts_run_parse_fault(const char *arg, TsRunFault *f, TsErr *err);

#endif
