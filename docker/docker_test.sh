#!/usr/bin/env bash
# make docker-test: build the image and run `make test` and `make demo` inside
# it, on a machine without access to Docker Hub, leaving the host as found.
#
#   docker/docker_test.sh [--arch "90"] [--keep]
#
# - a Docker daemon that answers (DOCKER_HOST or the default socket) is used;
#   else one of our own is started in a scratch folder (no iptables, no
#   bridge: the host's network is not touched; containers use --network host)
#   and stopped at the end, by its PID;
# - the base image is debian:bookworm if the daemon has it or can pull it,
#   else a minbase bookworm made by mmdebstrap from Debian's registry, with
#   this machine's local CA certificates (/usr/local/share/ca-certificates);
# - the container works on a copy of this checkout (tracked and untracked
#   files, not ignored ones, and .git), so runs/ and data/ land in the scratch
#   folder;
# - --arch: CUDA compute capabilities to build (default: the image's, 6.0-9.0;
#   one capability builds several times faster);
# - everything made is removed at the end (--keep: the scratch folder, its
#   daemon's images and the build cache stay, for a second run).
# Prints the build time, image size, the tests' summary and the demo's result.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
arch=""
keep=0
while [ $# -gt 0 ]; do
  case "$1" in
    --arch) arch=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "docker_test.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
say() { echo "[docker-test] $*" >&2; }
die() { echo "docker_test.sh: $*" >&2; exit 1; }
command -v docker >/dev/null || die "no docker client: apt-get install docker.io mmdebstrap"

scratch=${DOCKER_TEST_DIR:-$(mktemp -d /tmp/heobs-docker-test.XXXXXX)}
mkdir -p "$scratch"
daemon_pid=""
image=heobs-dec:docker-test
cleanup() {
  local code=$?
  if [ "$keep" = 0 ]; then
    docker image rm -f "$image" >/dev/null 2>&1 || true
  fi
  if [ -n "$daemon_pid" ]; then
    say "stopping our Docker daemon (pid $daemon_pid)"
    kill "$daemon_pid" 2>/dev/null || true
    for _ in $(seq 60); do kill -0 "$daemon_pid" 2>/dev/null || break; sleep 1; done
    kill -9 "$daemon_pid" 2>/dev/null || true
  fi
  # what a stopped daemon can leave mounted (its network namespace, overlays)
  if [ -n "$daemon_pid" ]; then
    findmnt -rn -o TARGET | grep "^$scratch/" | sort -r | xargs -r umount -l 2>/dev/null || true
  fi
  if [ "$keep" = 0 ]; then
    rm -rf "$scratch"
  else
    say "kept $scratch (DOCKER_TEST_DIR=$scratch to reuse it)"
  fi
  exit $code
}
trap cleanup EXIT

if ! docker info >/dev/null 2>&1; then
  command -v dockerd >/dev/null || die "no Docker daemon answers and no dockerd to start"
  say "no Docker daemon answers: starting one in $scratch"
  mkdir -p "$scratch/root" "$scratch/exec"
  dockerd --iptables=false --ip6tables=false --bridge=none --data-root "$scratch/root" \
    --exec-root "$scratch/exec" -H "unix://$scratch/sock" --pidfile "$scratch/dockerd.pid" \
    > "$scratch/dockerd.log" 2>&1 &
  daemon_pid=$!
  export DOCKER_HOST=unix://$scratch/sock
  for _ in $(seq 120); do                  # until it answers (or has died)
    docker info >/dev/null 2>&1 && break
    kill -0 "$daemon_pid" 2>/dev/null || { tail -20 "$scratch/dockerd.log" >&2; die "dockerd died"; }
    sleep 1
  done
  docker info >/dev/null 2>&1 || die "our dockerd did not answer in 120 s ($scratch/dockerd.log)"
fi

base=debian:bookworm
if ! docker image inspect "$base" >/dev/null 2>&1 && ! docker pull -q "$base" >/dev/null 2>&1; then
  command -v mmdebstrap >/dev/null || die "cannot pull $base and no mmdebstrap to make it"
  base=heobs-base:bookworm
  if ! docker image inspect "$base" >/dev/null 2>&1; then
    if [ ! -s "$scratch/base.tar" ]; then
      say "no registry for base images: mmdebstrap --variant=minbase bookworm"
      # The base trusts what this machine trusts: its local CA certificates
      # (a proxy's, say) go in, so apt and pip in the build reach their registries.
      mmdebstrap --quiet --variant=minbase --include=ca-certificates \
        --customize-hook='copy-in /usr/local/share/ca-certificates /usr/local/share' \
        --customize-hook='chroot "$1" update-ca-certificates >/dev/null' \
        bookworm "$scratch/base.tmp.tar" && mv "$scratch/base.tmp.tar" "$scratch/base.tar"
    fi
    docker import "$scratch/base.tar" "$base" >/dev/null
    rm -f "$scratch/base.tar"
  fi
fi

start=$(date +%s)
say "docker build (base $base${arch:+, CUDA arch $arch})"
build_args=(--network host --build-arg "BASE=$base")
[ -n "$arch" ] && build_args+=(--build-arg "CUDA_ARCH=$arch")
DOCKER_BUILDKIT=0 docker build -q "${build_args[@]}" -f "$repo/docker/Dockerfile" -t "$image" \
  "$repo" > "$scratch/build.log" 2>&1 || { tail -40 "$scratch/build.log" >&2; die "build failed"; }
build_s=$(( $(date +%s) - start ))
size=$(docker image inspect -f '{{.Size}}' "$image")

mkdir -p "$scratch/checkout"
# The working tree (tracked and untracked, not ignored) and its .git: a test
# reads the checkout's file list from git.
(cd "$repo" && { git ls-files -co --exclude-standard -z; printf '.git\0'; } |
  tar --null -T - -cf -) | tar -xf - -C "$scratch/checkout"
start=$(date +%s)
set +e
# No GPU here: the image's CPU_ONLY Caffe (CUDA=0), as `make docker-run` on such a host.
docker run --rm --network host -e CUDA=0 -v "$scratch/checkout:/work" -w /work "$image" \
  bash -lc 'make test 2>&1 | tail -5; echo "tests exit ${PIPESTATUS[0]}"; make demo 2>&1 | tail -16' \
  > "$scratch/run.log" 2>&1
run_code=$?
set -e
run_s=$(( $(date +%s) - start ))
cat "$scratch/run.log"
echo
echo "docker-test: image built in $((build_s / 60)) min $((build_s % 60)) s," \
     "$(( size / 1024 / 1024 )) MiB; tests and demo in the container:" \
     "$((run_s / 60)) min $((run_s % 60)) s"
grep -q "^tests exit 0$" "$scratch/run.log" && [ "$run_code" = 0 ] ||
  die "the tests or the demo failed in the container"
