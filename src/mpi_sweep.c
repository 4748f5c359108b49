/* mpi_sweep.c - the `sweep` verb (placeholder until implemented). */
#include <stdio.h>

#include "ts_cmd.h"

int ts_cmd_sweep(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "tetriserve sweep: not implemented yet\n");
    return 1;
}
