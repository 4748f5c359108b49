/* bench_ctrl.c - how should rank 0 hand a round's plan to the workers?
 * (issue #5: "MPI_Bcast, or whatever you measure to be better"; run by
 * scripts/bench_ctrl.sh under `make bench`).
 *
 *   mpirun -np 1+W bench_ctrl [ROUNDS] [POLL_US] [INVOLVED_PERCENT]
 *
 * Every round rank 0 has one LAUNCH message of the executor's size
 * (TS_RUN_HDR_WORDS + 2 ranks + one request: 18 int64 words, 144 B) for
 * each involved worker, and the workers wait the way the executor's do:
 * a non-blocking receive tested every POLL_US with nanosleep in between (a
 * blocking MPI call would spin a core, and the workers share 2 cores here).
 * Two ways of delivering it:
 *   p2p    MPI_Send of its own message to each involved worker only (what
 *          `tetriserve run` does);
 *   ibcast MPI_Ibcast of the whole plan (every worker's message) to every
 *          worker, which each worker must post and drive; rank 0 tests it
 *          to completion.
 * (A blocking MPI_Bcast is not an option for the executor at all: a worker
 * in the middle of its steps cannot join it, so rank 0 would stall until
 * the slowest group finished.) Each involved worker acknowledges with a
 * one-word MPI_Send; rank 0 waits for the acks by MPI_Iprobe + nanosleep,
 * as it waits for completions. Between rounds rank 0 sleeps 2 ms.
 *
 * Printed per variant: rank 0's time inside the delivery calls per round
 * (its cost), and the delivery time from the first call to the last ack
 * (median and p99 over the rounds: what a launch waits). */
#include <mpi.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MSG_WORDS 18
#define TAG_PLAN 1
#define TAG_ACK 2
#define GAP_S 0.002

static double now_s(void) { return MPI_Wtime(); }

static void nap(double s) {
    struct timespec ts = {0, (long)(s * 1e9)};
    nanosleep(&ts, NULL);
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Wait for req, testing every poll_s (the executor's worker wait). */
static void wait_polling(MPI_Request *req, double poll_s) {
    int done = 0;
    for (;;) {
        MPI_Test(req, &done, MPI_STATUS_IGNORE);
        if (done) return;
        nap(poll_s);
    }
}

static int involved(int worker, int w, int pct) { return (worker - 1) * 100 < pct * w; }

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    int rounds = argc > 1 ? atoi(argv[1]) : 200;
    double poll_s = (argc > 2 ? atoi(argv[2]) : 100) * 1e-6;
    int pct = argc > 3 ? atoi(argv[3]) : 100;
    int w = size - 1;
    if (w < 1 || rounds < 1 || poll_s <= 0 || pct < 1 || pct > 100) {
        if (rank == 0) fprintf(stderr, "bench_ctrl: needs >= 2 ranks, ROUNDS >= 1, POLL_US >= 1, 1 <= PERCENT <= 100\n");
        MPI_Finalize();
        return 1;
    }
    int n_inv = 0;
    for (int r = 1; r <= w; r++) n_inv += involved(r, w, pct);
    int64_t *plan = calloc((size_t)w * MSG_WORDS, sizeof *plan);
    double *deliver = calloc((size_t)rounds, sizeof *deliver);
    static const char *names[2] = {"p2p", "ibcast"};
    if (rank == 0)
        printf("%8s %8s %8s %14s %14s %14s\n", "workers", "involved", "variant", "rank0_us/round",
               "deliver_p50_us", "deliver_p99_us");
    for (int v = 0; v < 2; v++) {
        double cost = 0;
        MPI_Barrier(MPI_COMM_WORLD);
        for (int i = 0; i < rounds; i++) {
            if (rank == 0) {
                for (int k = 0; k < w * MSG_WORDS; k++) plan[k] = i + k;
                double t0 = now_s();
                if (v == 0) {
                    for (int r = 1; r <= w; r++)
                        if (involved(r, w, pct))
                            MPI_Send(plan + (r - 1) * MSG_WORDS, MSG_WORDS, MPI_INT64_T, r, TAG_PLAN,
                                     MPI_COMM_WORLD);
                    cost += now_s() - t0;
                } else {
                    MPI_Request q;
                    int done = 0;
                    MPI_Ibcast(plan, w * MSG_WORDS, MPI_INT64_T, 0, MPI_COMM_WORLD, &q);
                    cost += now_s() - t0;
                    while (!done) {
                        double t1 = now_s();
                        MPI_Test(&q, &done, MPI_STATUS_IGNORE);
                        cost += now_s() - t1;
                        if (!done) nap(poll_s);
                    }
                }
                for (int got = 0; got < n_inv;) {
                    int flag = 0;
                    MPI_Status st;
                    MPI_Iprobe(MPI_ANY_SOURCE, TAG_ACK, MPI_COMM_WORLD, &flag, &st);
                    if (!flag) {
                        nap(poll_s);
                        continue;
                    }
                    int64_t ack;
                    MPI_Recv(&ack, 1, MPI_INT64_T, st.MPI_SOURCE, TAG_ACK, MPI_COMM_WORLD,
                             MPI_STATUS_IGNORE);
                    if (ack != i) fprintf(stderr, "bench_ctrl: ack %lld in round %d\n", (long long)ack, i);
                    got++;
                }
                deliver[i] = now_s() - t0;
                nap(GAP_S);
            } else {
                int64_t msg[MSG_WORDS];
                MPI_Request q;
                if (v == 0) {
                    if (!involved(rank, w, pct)) continue;
                    MPI_Irecv(msg, MSG_WORDS, MPI_INT64_T, 0, TAG_PLAN, MPI_COMM_WORLD, &q);
                    wait_polling(&q, poll_s);
                } else {
                    MPI_Ibcast(plan, w * MSG_WORDS, MPI_INT64_T, 0, MPI_COMM_WORLD, &q);
                    wait_polling(&q, poll_s);
                    memcpy(msg, plan + (rank - 1) * MSG_WORDS, sizeof msg);
                    if (!involved(rank, w, pct)) continue;
                }
                int64_t ack = msg[0] - (int64_t)(rank - 1) * MSG_WORDS; /* = the round */
                MPI_Send(&ack, 1, MPI_INT64_T, 0, TAG_ACK, MPI_COMM_WORLD);
            }
        }
        if (rank == 0) {
            qsort(deliver, (size_t)rounds, sizeof *deliver, cmp_d);
            int p99 = (int)(0.99 * (rounds - 1) + 0.5);
            printf("%8d %8d %8s %14.2f %14.1f %14.1f\n", w, n_inv, names[v], 1e6 * cost / rounds,
                   1e6 * deliver[rounds / 2], 1e6 * deliver[p99]);
        }
    }
    free(plan);
    free(deliver);
    MPI_Finalize();
    return 0;
}
