#!/usr/bin/env bash
# tests/run.sh - run every test program given as arguments (cmocka binaries)
# and every tests/test_*.sh script, then print one closing line
# "N passed, N failed". Exit non-zero if anything failed.
#   TS_BIN   the tetriserve binary under test (absolute path)
#   TS_ONLY  run only tests whose name contains this string
set -u
cd "$(dirname "$0")/.."
export TS_BIN=${TS_BIN:-$PWD/tetriserve}
export OPENBLAS_NUM_THREADS=1
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1
# Sanitizer builds (make SAN=1 test): the cmocka programs run with leak
# detection; the shell tests run the binary, whose MPI verbs (sweep, run)
# end with Open MPI's own allocations still live in plugins that LSan
# cannot even name, so there leaks are not checked (ASan still is).
san_shell_env=(ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0")
logdir=$(mktemp -d "${TMPDIR:-/tmp}/ts-tests.XXXXXX")
passed=0 failed=0 failures=()

run_one() { # name, command...
    local name=$1; shift
    if [ -n "${TS_ONLY:-}" ] && [[ $name != *"$TS_ONLY"* ]]; then return; fi
    local log="$logdir/$name.log" t0=$SECONDS
    if "$@" >"$log" 2>&1; then
        passed=$((passed + 1)); printf '  PASS  %-34s %3ds\n' "$name" $((SECONDS - t0))
    else
        failed=$((failed + 1)); failures+=("$name")
        printf '  FAIL  %-34s %3ds  (log: %s)\n' "$name" $((SECONDS - t0)) "$log"
        tail -n 30 "$log" | sed 's/^/        | /'
    fi
}

for bin in "$@"; do run_one "$(basename "$bin")" "$bin"; done
for sh in tests/test_*.sh; do [ -e "$sh" ] && run_one "$(basename "$sh" .sh)" env "${san_shell_env[@]}" bash "$sh"; done

echo
[ ${#failures[@]} -gt 0 ] && echo "failed: ${failures[*]}"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
