# heobs-dec — the two commands a newcomer types:
#   make demo    run DEC end to end on the embedded default data set (CPU)
#   make test    build what is missing and run the test suite
# Each sets itself up (apt packages, Caffe build, Python venv) when missing and
# reuses the cache (~/.cache/heobs-dec, the .venv folder) when present.

SHELL := /bin/bash
.DEFAULT_GOAL := help

# The venv is made from the system Python: Debian's Boost.Python (used by
# pycaffe) is built for it.
PYTHON ?= /usr/bin/python3
VENV ?= .venv
PY := $(VENV)/bin/python
CUDA ?= 0
CUDA_ARCH ?= 60 61 70 75 80 86 89 90
JOBS ?= $(shell nproc)
PYTEST_ARGS ?=

CAFFE_FLAGS := --python $(PY) --jobs $(JOBS) \
  $(if $(filter 1,$(CUDA)),--cuda --cuda-arch "$(CUDA_ARCH)")

.PHONY: help venv caffe cuda-extras test demo bench-layer docker-build docker-shell docker-run clean

help:
	@echo "make demo         DEC on the embedded default data (CPU, a few minutes)"
	@echo "make test         build what is missing, then run the tests"
	@echo "make caffe        build BVLC Caffe + the DEC layer (CUDA=1 for a GPU build)"
	@echo "make bench-layer  MultiTLoss forward+backward on CPU against NumPy"
	@echo "make docker-build / docker-shell / docker-run CMD='make ...'  (nvidia-docker)"

# ---- set-up -----------------------------------------------------------------
venv: $(VENV)/.requirements-ok

$(VENV)/.requirements-ok: requirements.txt engine/apt-packages.txt
	engine/install_apt_deps.sh
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt
	touch $@

# Builds (or finds in the cache) Caffe and points the venv at its pycaffe.
caffe: venv
	engine/build_caffe.sh $(CAFFE_FLAGS) --link

# cuBLAS/cuRAND headers for the CUDA compile check, where nvcc exists but a
# bare toolkit lacks them (our CI machines).
NVCC := $(or $(CUDA_HOME),/usr/local/cuda)/bin/nvcc
cuda-extras:
	@if [ -x $(NVCC) ]; then engine/fetch_cuda_extras.sh >/dev/null; \
	else echo "no nvcc at $(NVCC): the CUDA compile check will be skipped"; fi

# ---- the two commands ---------------------------------------------------------
test: caffe cuda-extras
	$(PY) -m pytest tests $(PYTEST_ARGS)

demo: caffe
	$(PY) -m dec.demo

# ---- benchmarks (print figures; never part of the tests) ----------------------
bench-layer: caffe
	$(PY) -m dec.bench_layer

# ---- Docker (nvidia-docker; no Docker engine on our own machines) ------------
DOCKER_IMAGE ?= heobs-dec:cuda
CMD ?= make test

docker-build:
	docker build -f docker/Dockerfile -t $(DOCKER_IMAGE) .

docker-shell:
	docker run --rm -it --gpus all -v $(CURDIR):/work -w /work $(DOCKER_IMAGE) bash

docker-run:
	docker run --rm --gpus all -v $(CURDIR):/work -w /work $(DOCKER_IMAGE) bash -lc '$(CMD)'

clean:
	rm -rf $(VENV)
