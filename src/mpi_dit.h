/* mpi_dit.h - TsDitComm (ts_dit.h) over an MPI communicator, for the cpu
 * backend of the live executor. Only MPI sources include this header. */
#ifndef MPI_DIT_H
#define MPI_DIT_H

#include <mpi.h>

#include "ts_dit.h"

typedef struct TsMpiDitCtx {
    MPI_Comm comm;
    int rank, size;
} TsMpiDitCtx;

/* Fill *comm to run ts_dit_step over `c` (ctx must outlive comm). */
void ts_mpi_dit_comm(MPI_Comm c, TsMpiDitCtx *ctx, TsDitComm *comm);

/* A datatype of exactly `bytes` contiguous bytes (count 1), so that
 * messages above INT_MAX bytes can be sent; free with MPI_Type_free. */
int ts_mpi_bytes_type(size_t bytes, MPI_Datatype *type);

#endif
