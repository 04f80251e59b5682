#!/usr/bin/env bash
# Provide cuBLAS and cuRAND headers and libraries for a CUDA toolkit that lacks
# them (a bare nvcc install, as on our CI machines), from NVIDIA's PyPI wheels.
# Prints the folder that holds include/ and lib/. nvidia/cuda *devel* images
# already have both; there this script is not needed.
#   docker/fetch_cuda_extras.sh [--cached]
# --cached: only print the folder if it is already there (fail otherwise); for
# tests, which never download.
set -euo pipefail
cached_only=0
[ "${1:-}" = --cached ] && cached_only=1
cuda_home=${CUDA_HOME:-/usr/local/cuda}
cache=${HEOBS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/heobs-dec}
nvcc=$cuda_home/bin/nvcc
[ -x "$nvcc" ] || { echo "fetch_cuda_extras.sh: no nvcc in $cuda_home" >&2; exit 1; }
if [ -f "$cuda_home/include/cublas_v2.h" ] && [ -f "$cuda_home/include/curand.h" ]; then
  echo "$cuda_home"  # a full toolkit (e.g. nvidia/cuda devel images)
  exit 0
fi
major=$("$nvcc" --version | sed -n 's/.*release \([0-9]*\)\..*/\1/p')
# Pinned wheels for each CUDA major version.
case "$major" in
  13) wheels=(nvidia-cublas==13.10.0.20 nvidia-curand==10.4.5.25) ;;
  12) wheels=(nvidia-cublas-cu12==12.9.3.13 nvidia-curand-cu12==10.3.10.19) ;;
  *) echo "fetch_cuda_extras.sh: CUDA $major is not supported here" >&2; exit 1 ;;
esac
dest=$cache/cuda-extras-cu$major
if [ ! -f "$dest/.complete" ]; then
  if [ "$cached_only" = 1 ]; then
    echo "fetch_cuda_extras.sh: no cuBLAS/cuRAND headers in $dest; run make cuda-extras" >&2
    exit 1
  fi
  tmp=$(mktemp -d "$cache/cuda-extras.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  echo "[cuda] downloading ${wheels[*]} (cuBLAS/cuRAND headers and libraries)" >&2
  python3 -m pip download -q --disable-pip-version-check --no-deps \
    --only-binary=:all: --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_5_x86_64 --platform manylinux1_x86_64 \
    -d "$tmp/wheels" "${wheels[@]}" >&2
  mkdir -p "$tmp/out/include" "$tmp/out/lib"
  mkdir -p "$tmp/x"
  for w in "$tmp"/wheels/*.whl; do python3 -m zipfile -e "$w" "$tmp/x"; done
  cp -r "$tmp"/x/nvidia/*/include/. "$tmp/out/include/"
  cp -r "$tmp"/x/nvidia/*/lib/. "$tmp/out/lib/"
  # Wheels ship only libX.so.N; the linker wants libX.so.
  for so in "$tmp"/out/lib/*.so.*; do
    ln -sf "$(basename "$so")" "${so%%.so.*}.so"
  done
  touch "$tmp/out/.complete"
  rm -rf "$dest"
  mv "$tmp/out" "$dest"
fi
echo "$dest"
