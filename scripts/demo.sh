#!/usr/bin/env bash
# scripts/demo.sh - the main job on the bundled default: install what is
# missing, build, and simulate the paper's Uniform and Skewed workloads on
# the FLUX.1-dev / 8x H100 profile under every policy, printing one SAR
# table per workload (policies in rows, SLO scales 1.0..1.5 in columns).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
make -s -j2
exec ./tetriserve compare --trace traces/uniform.csv --trace traces/skewed.csv \
    --profile profiles/flux1-dev_h100x8.csv --gpus 8 "$@"
