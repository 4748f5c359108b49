#!/usr/bin/env bash
# scripts/install-deps.sh [--test] - install the Debian packages tetriserve
# needs, only those missing, saying which. Uses sudo when not root.
#   (default)  build + run: compiler, Open MPI, serial HDF5, GSL, OpenBLAS
#   --test     also the test tools: cmocka, h5dump, Debian's python3-h5py
#              and python3-numpy (result checks), python3-matplotlib (plots)
#   --slurm    also slurm-wlm and munge (the Slurm CI test)
set -euo pipefail
pkgs=(build-essential pkg-config openmpi-bin libopenmpi-dev libhdf5-dev libgsl-dev libopenblas-dev)
for a in "$@"; do
    case $a in
    --test) pkgs+=(libcmocka-dev hdf5-tools python3-numpy python3-h5py python3-matplotlib) ;;
    --slurm) pkgs+=(slurm-wlm munge) ;;
    *) echo "install-deps.sh: unknown option $a" >&2; exit 2 ;;
    esac
done
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null; then
    echo "install-deps.sh: missing packages (${missing[*]}) and no apt-get: install them by hand" >&2
    exit 1
fi
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
echo "install-deps.sh: installing Debian packages: ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps.sh: installed ${#missing[@]} packages"
