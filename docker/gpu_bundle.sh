#!/usr/bin/env bash
# make gpu-bundle: what `make gpu-check` needs on the GPU machine that is
# sometimes lent to us (no package registry, none of Caffe's libraries, 64 MiB
# carried a call), in one archive: .gpu-bundle/heobs-gpu-bundle.tar.xz.
#
#   docker/gpu_bundle.sh [--python PY] [--out DIR] [--jobs N] [--cpu] [--no-archive]
#
# Builds Caffe + our patch set with CUDA 13 (CUDA_HOME, default /usr/local/cuda)
# for that GPU only (compute capability 9.0: the H200), without pycaffe, OpenCV
# or LMDB (build_caffe.sh --minimal), then packs bin/caffe, the MultiTLoss gtest,
# libcaffe and every library they load less glibc and less cuBLAS, cuRAND and
# the CUDA runtime (the machine has those in PyTorch's nvidia-* wheels; cuBLAS
# alone is over the limit), DEC's nets and small LevelDBs
# (docker/gpu_bundle_files.py) and a MANIFEST.
# --cpu packs the CPU_ONLY build of `make caffe` instead (the tests: the packing
# and docker/gpu_check.py --cpu, here); --no-archive leaves the folder DIR/bundle.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
python=$root/.venv/bin/python
out=$root/.gpu-bundle
jobs=$(nproc)
cpu=0
archive=1
ARCH=90
while [ $# -gt 0 ]; do
  case "$1" in
    --python) python=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --cpu) cpu=1; shift ;;
    --no-archive) archive=0; shift ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "gpu_bundle.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
say() { echo "[gpu-bundle] $*" >&2; }

if [ "$cpu" = 1 ]; then
  build=(--python "$python")
  prefix=$("$here/build_caffe.sh" "${build[@]}" --print-prefix)
  [ -f "$prefix/.complete" ] || { echo "gpu_bundle.sh --cpu: no CPU build (make caffe)" >&2; exit 1; }
else
  export CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
  build=(--python "$python" --cuda --cuda-arch "$ARCH" --minimal --jobs "$jobs")
  start=$(date +%s)
  "$here/build_caffe.sh" "${build[@]}"
  say "Caffe with CUDA for sm_$ARCH: $(( $(date +%s) - start )) s (0 when cached)"
  prefix=$("$here/build_caffe.sh" "${build[@]}" --print-prefix)
fi

mkdir -p "$out"
stage=$(mktemp -d "$out/.bundle.XXXXXX")
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/bin" "$stage/lib"
cp "$prefix/bin/caffe" "$prefix/bin/test_multi_t_loss.testbin" "$stage/bin/"
cp -L "$prefix"/lib/libcaffe.so.* "$stage/lib/"
# Every library they load, less glibc and the machine's CUDA libraries
# (one definition of both: docker/gpu_check.py).
"$python" - "$stage" "$here" <<'EOF'
import os, shutil, sys
from pathlib import Path
sys.path.insert(0, sys.argv[2])
stage = Path(sys.argv[1])
from gpu_check import to_carry
# The gtest keeps its build tree's RUNPATH: the bundle's lib, as on the machine.
env = dict(os.environ, LD_LIBRARY_PATH=str(stage / "lib"))
for soname, path in sorted(to_carry([stage / "bin" / "caffe",
                                     stage / "bin" / "test_multi_t_loss.testbin"], env).items()):
    if not (stage / "lib" / soname).exists():
        shutil.copy(path, stage / "lib" / soname)      # the file, under its soname
EOF
strip --strip-unneeded "$stage"/lib/*.so* "$stage"/bin/* 2>/dev/null || true
"$python" "$here/gpu_bundle_files.py" "$stage"

commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
{
  echo "heobs-dec GPU bundle, commit $commit, built $(date -u +%Y-%m-%dT%H:%MZ) on $(uname -m)"
  if [ "$cpu" = 1 ]; then echo "Caffe: CPU_ONLY (--cpu: for the tests, not for a GPU)"
  else echo "Caffe: $("$CUDA_HOME/bin/nvcc" --version | grep -o 'release [0-9.]*'), sm_$ARCH, $(basename "$prefix")"; fi
  echo "carried libraries: $(cd "$stage/lib" && ls | tr '\n' ' ')"
  glibc=$(for f in "$stage"/lib/* "$stage"/bin/*; do objdump -T "$f" 2>/dev/null; done |
          grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1)
  echo "from the machine: cuBLAS 13, cuRAND 10, cudart 13 (PyTorch's nvidia-* wheels)," \
       "glibc (${glibc:-?} or newer)"
} > "$stage/MANIFEST"

if [ "$archive" = 1 ]; then
  tar -C "$stage" -cf - . | xz -T"$jobs" -9 > "$out/heobs-gpu-bundle.tar.xz.tmp"
  mv "$out/heobs-gpu-bundle.tar.xz.tmp" "$out/heobs-gpu-bundle.tar.xz"
  say "$out/heobs-gpu-bundle.tar.xz: $(du -m "$out/heobs-gpu-bundle.tar.xz" | cut -f1) MiB" \
    "($(du -sm "$stage" | cut -f1) MiB unpacked)"
else
  rm -rf "$out/bundle"
  mv "$stage" "$out/bundle"
  say "$out/bundle: $(du -sm "$out/bundle" | cut -f1) MiB"
fi
