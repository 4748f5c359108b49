# scripts/sweep_lib.sh - sourced by paper.sh and choices.sh: `sweep ARGS...`
# runs `$BIN sweep --quiet ARGS...`, under mpirun -np $NP when NP > 1 (as
# root and oversubscribed, one OpenBLAS thread per rank).
sweep() {
    if [ "$NP" -gt 1 ]; then
        OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1 \
            mpirun --oversubscribe -np "$NP" "$BIN" sweep --quiet "$@"
    else
        "$BIN" sweep --quiet "$@"
    fi
}
