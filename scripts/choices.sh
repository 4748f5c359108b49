#!/usr/bin/env bash
# scripts/choices.sh - the choices the paper leaves open (--choice), each
# measured against the old one: the grids of scripts/paper.sh (SAR against
# SLO scale and against rate, both profiles, both mixes) for tetriserve with
# one old choice at a time, every old choice (= tetriserve before issue #3),
# and tetriplus with its best-effort choices undone; a Markdown table into
# OUT/choices.md (and stdout) by scripts/choices.py.
#
#   SEEDS=6:13   held out: scripts/paper.sh and the README tables use 1:5
#   NP=1         MPI ranks for the sweeps (mpirun -np NP when > 1)
#   OUT=results/choices
set -euo pipefail
cd "$(dirname "$0")/.."
SEEDS=${SEEDS:-6:13}
NP=${NP:-1}
OUT=${OUT:-results/choices}
PY=/usr/bin/python3
BIN=./tetriserve
mkdir -p "$OUT"
[ -x "$BIN" ] || make -s

. scripts/sweep_lib.sh # sweep ARGS...

# name|policy|--choice value ("" = the policy's defaults)
variants=(
    "tetriserve|tetriserve|"
    "segment-end=idle|tetriserve|segment-end=idle"
    "rounds=fixed|tetriserve|rounds=fixed,survival=round-end"
    "survival=round-end|tetriserve|survival=round-end"
    "ties=narrowest|tetriserve|ties=narrowest"
    "all old (tetriserve before #3)|tetriserve|rounds=fixed,segment-end=idle,ties=narrowest,survival=round-end"
    "best-effort=in-round (not the paper's: > 1 GPU)|tetriserve|best-effort=in-round"
    "tetriplus|tetriplus|"
    "tetriplus best-effort=one-gpu|tetriplus|best-effort=one-gpu"
    "tetriplus best-effort-order=before-elastic|tetriplus|best-effort-order=before-elastic"
)
t0=$(date +%s)
for prof in flux sd3; do
    if [ $prof = flux ]; then
        profile=profiles/flux1-dev_h100x8.csv gpus=8 base=sp1,sp2,sp4,sp8,rssp
        scales=1.0,1.1,1.2,1.3,1.4,1.5 rates=6,9,12,15,18,24,30,36,48 rate=12 rate_scales=1.0,1.5
    else # time-scaled as in scripts/paper.sh
        profile=profiles/sd3-medium_a40x4.csv gpus=4 base=sp1,sp2,sp4,rssp
        scales=3.0,3.3,3.6,3.9,4.2,4.5 rates=1,2,3,4,6,8 rate=2 rate_scales=3.0,4.5
    fi
    common=(--profile "$profile" --gpus "$gpus" --mixes 'uniform;skewed' --seeds "$SEEDS" --requests 300 --steps 28)
    echo "== $prof: baselines" >&2
    sweep "${common[@]}" --policies $base --rates $rate --slo-scales $scales --out "$OUT/${prof}_scale_base.h5"
    sweep "${common[@]}" --policies $base --rates $rates --slo-scales $rate_scales --out "$OUT/${prof}_rate_base.h5"
    for k in "${!variants[@]}"; do
        IFS='|' read -r name pol choice <<<"${variants[$k]}"
        echo "== $prof: $name" >&2
        ch=(); [ -n "$choice" ] && ch=(--choice "$choice")
        sweep "${common[@]}" --policies "$pol" "${ch[@]}" --rates $rate --slo-scales $scales --out "$OUT/${prof}_scale_v$k.h5"
        sweep "${common[@]}" --policies "$pol" "${ch[@]}" --rates $rates --slo-scales $rate_scales --out "$OUT/${prof}_rate_v$k.h5"
    done
done
printf '%s\n' "${variants[@]}" | cut -d'|' -f1 >"$OUT/variants.txt"
$PY scripts/choices.py "$OUT" | tee "$OUT/choices.md"
echo "choices: done in $(( $(date +%s) - t0 )) s; table in $OUT/choices.md" >&2
