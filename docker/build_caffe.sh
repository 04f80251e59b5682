#!/usr/bin/env bash
# Build BVLC Caffe (upstream 99bd997) with heobs-dec's patch set and install it
# into a cache directory keyed by the patch set, so that rebuilds and fresh
# clones on the same machine reuse it.
#
#   docker/build_caffe.sh --python PY [--cuda] [--cuda-arch "60 70 ..."] [--jobs N] [--link]
#                         [--minimal]
#   docker/build_caffe.sh --python PY --print-prefix   # where it is (or would be)
# --link writes a .pth file into PY's site-packages so that PY imports this
# build's pycaffe (the `caffe` tool is found next to it: <prefix>/bin).
# --minimal: the tools and the layer's gtest only (no pycaffe, OpenCV or LMDB):
# what the GPU bundle carries (docker/gpu_bundle.sh).
#
# Environment: HEOBS_CACHE (default ${XDG_CACHE_HOME:-~/.cache}/heobs-dec),
# CUDA_HOME (default /usr/local/cuda; /usr for Debian's nvidia-cuda-toolkit),
# CUDA_HOST_COMPILER (nvcc's -ccbin), CUDA_EXTRA_ROOT (a folder with include/
# and lib/ holding cuBLAS and cuRAND when CUDA_HOME lacks them).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# Upstream source: Debian's source package of BVLC Caffe at commit 99bd997.
CAFFE_VERSION=1.0.0+git20180821.99bd997
CAFFE_COMMIT=99bd99795dcdf0b1d3086a8d67ab1782a8a08383
CAFFE_TARBALL=caffe_${CAFFE_VERSION}.orig.tar.gz
CAFFE_TARBALL_SHA256=e0eb3f06794f7402c77b7dec8e8480273ee1a1bb192e9122b621a69d4147ad0c
DEBIAN_SRC_LINE="deb-src http://deb.debian.org/debian bullseye main"
# Default CUDA architectures: compute capability 6.0 (Pascal) to 9.0 (Hopper).
DEFAULT_CUDA_ARCH="60 61 70 75 80 86 89 90"

python=python3
cuda=0
cuda_arch=$DEFAULT_CUDA_ARCH
jobs=$(nproc)
print_prefix=0
link=0
minimal=0
while [ $# -gt 0 ]; do
  case "$1" in
    --python) python=$2; shift 2 ;;
    --cuda) cuda=1; shift ;;
    --cuda-arch) cuda_arch=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --print-prefix) print_prefix=1; shift ;;
    --link) link=1; shift ;;
    --minimal) minimal=1; shift ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "build_caffe.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

say() { echo "[caffe] $*" >&2; }
die() { echo "build_caffe.sh: $*" >&2; exit 1; }

cache=${HEOBS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/heobs-dec}
pyver=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])') ||
  die "cannot run Python '$python'"

numpy_version=$("$python" -c 'import numpy; print(numpy.__version__.split(".")[0])' 2>/dev/null) ||
  numpy_version=missing
cmake_args=(
  -DCMAKE_BUILD_TYPE=Release
  -DBLAS=Open -DUSE_LEVELDB=ON -DUSE_LMDB=ON -DUSE_OPENCV=ON -DUSE_CUDNN=OFF
  -DBUILD_python=ON -DBUILD_python_layer=ON -Dpython_version=3
  -DBUILD_docs=OFF -DBUILD_matlab=OFF
  -DBUILD_only_tests=multi_t_loss_layer
  -DCMAKE_POLICY_VERSION_MINIMUM=3.5
)
if [ "$minimal" = 1 ]; then  # later -D options win
  cmake_args+=(-DUSE_LMDB=OFF -DUSE_OPENCV=OFF -DBUILD_python=OFF -DBUILD_python_layer=OFF)
  numpy_version=none
fi
if [ "$cuda" = 1 ]; then
  cuda_home=${CUDA_HOME:-/usr/local/cuda}
  [ -x "$cuda_home/bin/nvcc" ] || die "no nvcc in $cuda_home (set CUDA_HOME)"
  cuda_major=$("$cuda_home/bin/nvcc" --version | sed -n 's/.*release \([0-9]*\)\..*/\1/p')
  if [ "$cuda_major" -ge 13 ] && [ "$cuda_arch" = "$DEFAULT_CUDA_ARCH" ]; then
    # CUDA 13 dropped compute capability < 7.5.
    cuda_arch="75 80 86 89 90"
    say "CUDA $cuda_major: building for compute capability $cuda_arch"
  fi
  if [ ! -f "$cuda_home/include/cublas_v2.h" ] && [ -z "${CUDA_EXTRA_ROOT:-}" ]; then
    CUDA_EXTRA_ROOT=$("$here/fetch_cuda_extras.sh")
  fi
  cmake_args+=(-DCPU_ONLY=OFF -DCUDA_TOOLKIT_ROOT_DIR="$cuda_home"
               -DCUDA_ARCH_NAME=Manual -DCUDA_ARCH_BIN="$cuda_arch"
               -DCUDA_ARCH_PTX="${cuda_arch##* }")
  # nvcc's host compiler when the default g++ is newer than the toolkit
  # supports (Debian's CUDA 11.8 next to g++ 12: g++-11).
  [ -n "${CUDA_HOST_COMPILER:-}" ] && cmake_args+=(-DCUDA_HOST_COMPILER="$CUDA_HOST_COMPILER")
  if [ -n "${CUDA_EXTRA_ROOT:-}" ]; then
    cmake_args+=(-DCMAKE_CXX_FLAGS="-I$CUDA_EXTRA_ROOT/include"
                 -DCUDA_NVCC_FLAGS="-I$CUDA_EXTRA_ROOT/include"
                 -DCMAKE_LIBRARY_PATH="$CUDA_EXTRA_ROOT/lib")  # FindCUDA looks there
  fi
else
  cmake_args+=(-DCPU_ONLY=ON)
fi


# The cache key: the source, our patch set and the configuration. Not the
# venv's path: a build serves any venv of the same Python and numpy major.
key=$( {
  echo "$CAFFE_TARBALL_SHA256 py$pyver numpy$numpy_version ${cmake_args[*]}"
  find "$here/patches" "$here/src" -type f | LC_ALL=C sort | xargs cat
} | sha256sum | cut -c1-16)
flavour=cpu; [ "$cuda" = 1 ] && flavour=cuda
[ "$minimal" = 1 ] && flavour=$flavour-minimal
prefix=$cache/caffe-$flavour-$key
if [ "$print_prefix" = 1 ]; then echo "$prefix"; exit 0; fi
link_python() {
  [ "$link" = 1 ] || return 0
  local site
  site=$("$python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  echo "$prefix/python" > "$site/heobs_caffe.pth"
  say "$python now imports caffe from $prefix/python"
}
if [ -f "$prefix/.complete" ]; then
  say "cached build: $prefix"
  link_python
  exit 0
fi

# ---- system packages (Debian/Ubuntu) -------------------------------------
"$here/install_apt_deps.sh"
if [ "$minimal" = 0 ]; then
  numpy_inc=$("$python" -c 'import numpy; print(numpy.get_include())') ||
    die "numpy is missing in $python (make venv first)"
  cmake_args+=(-DPYTHON_EXECUTABLE="$("$python" -c 'import sys; print(sys.executable)')"
               -DNUMPY_INCLUDE_DIR="$numpy_inc")
fi

# ---- source ---------------------------------------------------------------
mkdir -p "$cache/src"
tarball=$cache/src/$CAFFE_TARBALL
if [ ! -f "$tarball" ] ||
   ! echo "$CAFFE_TARBALL_SHA256  $tarball" | sha256sum -c --quiet - 2>/dev/null; then
  say "downloading Debian source package caffe $CAFFE_VERSION"
  apt_dir=$(mktemp -d)
  trap 'rm -rf "$apt_dir"' EXIT
  mkdir -p "$apt_dir/lists/partial" "$apt_dir/dl"
  signed=""
  [ -f /usr/share/keyrings/debian-archive-keyring.gpg ] &&
    signed="[signed-by=/usr/share/keyrings/debian-archive-keyring.gpg]"
  [ -n "$signed" ] || signed="[trusted=yes]"  # the SHA-256 below still holds
  echo "${DEBIAN_SRC_LINE/deb-src /deb-src $signed }" > "$apt_dir/sources.list"
  apt_opts=(-o "Dir::Etc::SourceList=$apt_dir/sources.list"
            -o "Dir::Etc::SourceParts=/dev/null"
            -o "Dir::State::Lists=$apt_dir/lists"
            -o "APT::Sandbox::User=root")
  if apt-get "${apt_opts[@]}" update -qq &&
     (cd "$apt_dir/dl" && apt-get "${apt_opts[@]}" source --download-only -qq \
        "caffe=1.0.0+git20180821.99bd997-8"); then
    mv "$apt_dir/dl/$CAFFE_TARBALL" "$tarball.tmp"
  elif command -v git >/dev/null; then
    say "apt source failed; cloning BVLC/caffe at $CAFFE_COMMIT"
    git clone -q https://github.com/BVLC/caffe "$apt_dir/git"
    git -C "$apt_dir/git" archive --format=tar.gz \
      "$CAFFE_COMMIT" > "$tarball.git.tmp"
    mv "$tarball.git.tmp" "$cache/src/caffe-$CAFFE_COMMIT.tar.gz"
    tarball=$cache/src/caffe-$CAFFE_COMMIT.tar.gz
  else
    die "could not download the Caffe source (no deb-src access, no git)"
  fi
  if [ -f "$tarball.tmp" ]; then
    echo "$CAFFE_TARBALL_SHA256  $tarball.tmp" | sha256sum -c --quiet - ||
      die "checksum mismatch for $CAFFE_TARBALL"
    mv "$tarball.tmp" "$tarball"
  fi
fi

# ---- patch, configure, build ---------------------------------------------
work=$cache/build-$flavour-$key
rm -rf "$cache"/build-"$flavour"-[0-9a-f]*  # this key's and stale ones of older keys
mkdir -p "$work/src"
tar xzf "$tarball" -C "$work/src"  # both tarballs have no top folder
cp -r "$here/src/." "$work/src/"
for p in "$here"/patches/*.diff; do
  say "patch $(basename "$p")"
  patch -s -d "$work/src" -p1 < "$p"
done

say "configure ($flavour, python $pyver) in $work/build"
mkdir -p "$work/build"
(cd "$work/build" && cmake "${cmake_args[@]}" -DCMAKE_INSTALL_PREFIX="$prefix.tmp" ../src > cmake.log 2>&1) ||
  { tail -30 "$work/build/cmake.log" >&2; die "cmake failed (log: $work/build/cmake.log)"; }
say "build with $jobs jobs (a few minutes on CPU_ONLY)"
rm -rf "$prefix.tmp"
(cd "$work/build" && make -j"$jobs" install test.testbin > make.log 2>&1) ||
  { tail -40 "$work/build/make.log" >&2; die "build failed (log: $work/build/make.log)"; }
cp "$work/build/test/test.testbin" "$prefix.tmp/bin/test_multi_t_loss.testbin"
"$prefix.tmp/bin/caffe" --version >/dev/null ||
  die "the built caffe tool does not run"
[ "$minimal" = 1 ] || PYTHONPATH="$prefix.tmp/python" "$python" -c 'import caffe' ||
  die "pycaffe does not import"
echo "$key" > "$prefix.tmp/.complete"
rm -rf "$prefix"
mv "$prefix.tmp" "$prefix"
rm -rf "$work"
say "installed: $prefix"
link_python
