#!/usr/bin/env bash
# scripts/test.sh - the whole test suite: install what is missing, build,
# run every test (cmocka programs and shell tests), then the same suite
# under AddressSanitizer + UndefinedBehaviorSanitizer with TS_SAN=1.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh --test
make -s -j2
make -s test
if [ "${TS_SAN:-0}" = 1 ]; then
    echo "== again under AddressSanitizer + UBSan"
    make -s -j2 SAN=1
    ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 make -s SAN=1 test
fi
