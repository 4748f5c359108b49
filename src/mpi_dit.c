/* mpi_dit.c - TsDitComm over MPI (see mpi_dit.h). */
#include "mpi_dit.h"

#include <limits.h>

static int ts_mpi_rank(void *ctx) { return ((TsMpiDitCtx *)ctx)->rank; }
static int ts_mpi_size(void *ctx) { return ((TsMpiDitCtx *)ctx)->size; }

int ts_mpi_bytes_type(size_t bytes, MPI_Datatype *type) {
    /* n blocks of 1 MiB plus the remainder: counts stay far below INT_MAX
     * for any buffer that fits in memory. */
    const size_t blk = (size_t)1 << 20;
    int n = (int)(bytes / blk), rem = (int)(bytes % blk), rc;
    MPI_Datatype mib, parts;
    if ((rc = MPI_Type_contiguous((int)blk, MPI_BYTE, &mib))) return rc;
    int len[2] = {n, rem};
    MPI_Aint disp[2] = {0, (MPI_Aint)((size_t)n * blk)};
    MPI_Datatype types[2] = {mib, MPI_BYTE};
    rc = MPI_Type_create_struct(2, len, disp, types, &parts);
    MPI_Type_free(&mib);
    if (rc) return rc;
    rc = MPI_Type_create_resized(parts, 0, (MPI_Aint)bytes, type);
    MPI_Type_free(&parts);
    if (rc) return rc;
    return MPI_Type_commit(type);
}

static TsStatus ts_mpi_alltoall(const void *sendbuf, void *recvbuf, size_t bytes, void *vctx,
                                TsErr *err) {
    TsMpiDitCtx *ctx = vctx;
    int rc;
    if (bytes <= (size_t)INT_MAX) {
        rc = MPI_Alltoall(sendbuf, (int)bytes, MPI_BYTE, recvbuf, (int)bytes, MPI_BYTE, ctx->comm);
    } else {
        MPI_Datatype t;
        if ((rc = ts_mpi_bytes_type(bytes, &t)) == MPI_SUCCESS) {
            rc = MPI_Alltoall(sendbuf, 1, t, recvbuf, 1, t, ctx->comm);
            MPI_Type_free(&t);
        }
    }
    if (rc != MPI_SUCCESS) {
        char msg[MPI_MAX_ERROR_STRING];
        int len = 0;
        MPI_Error_string(rc, msg, &len);
        return ts_err(err, TS_ERR_SYSTEM, "MPI_Alltoall of %zu bytes per rank: %s", bytes, msg);
    }
    return TS_OK;
}

void ts_mpi_dit_comm(MPI_Comm c, TsMpiDitCtx *ctx, TsDitComm *comm) {
    ctx->comm = c;
    MPI_Comm_rank(c, &ctx->rank);
    MPI_Comm_size(c, &ctx->size);
    comm->rank = ts_mpi_rank;
    comm->size = ts_mpi_size;
    comm->alltoall = ts_mpi_alltoall;
    comm->ctx = ctx;
}
