"""The Caffe engine in-process: importing pycaffe with a clear error when it
is missing, and the device (CPU, or a GPU id) every later step runs on.

Where the build is and its command-line tools: data_prep.caffe_tools (the
data preparation runs `convert_imageset` without importing pycaffe).
"""
import os
from pathlib import Path

from data_prep.caffe_tools import CaffeMissing, blas_env, prefix

REPO = Path(__file__).resolve().parent.parent
MODELS = REPO / "caffe_models"


def import_caffe(quiet=True):
    """Import pycaffe; GLOG messages are kept quiet unless asked for."""
    if quiet:
        os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.update(blas_env())     # before Caffe loads its OpenBLAS
    try:
        import caffe
    except ImportError as err:
        raise CaffeMissing(
            f"Caffe is not importable ({err}); run `make caffe` first") from None
    return caffe


def check_gpu_build():
    """--gpu needs a CUDA build: a CPU_ONLY Caffe aborts the process on GPU calls.
    docker/build_caffe.sh names its builds caffe-cpu-<key> and caffe-cuda-<key>."""
    if prefix().name.startswith("caffe-cpu-"):
        raise CaffeMissing("this Caffe is a CPU_ONLY build: `make caffe CUDA=1` for --gpu "
                           "(or leave --gpu out to run on the CPU)")


_device = {"gpu": None}


def use_device(gpu=None):
    """Run on GPU `gpu` (an id), or on the CPU when None."""
    caffe = import_caffe()
    if gpu is None:
        caffe.set_mode_cpu()
    else:
        check_gpu_build()
        caffe.set_device(int(gpu))
        caffe.set_mode_gpu()
    _device["gpu"] = gpu


def solver_mode():
    """solver_mode for the solver files a run writes (read by the `caffe` tool)."""
    return "CPU" if _device["gpu"] is None else "GPU"
