"""The Caffe engine in-process: importing pycaffe with a clear error when it
is missing, and the device (CPU, or a GPU id) every later step runs on.

Where the build is and its command-line tools: data_prep.caffe_tools (the
data preparation runs `convert_imageset` without importing pycaffe).
"""
import os
from pathlib import Path

from data_prep.caffe_tools import CaffeMissing

REPO = Path(__file__).resolve().parent.parent
MODELS = REPO / "caffe_models"


def import_caffe(quiet=True):
    """Import pycaffe; GLOG messages are kept quiet unless asked for."""
    if quiet:
        os.environ.setdefault("GLOG_minloglevel", "2")
    try:
        import caffe
    except ImportError as err:
        raise CaffeMissing(
            f"Caffe is not importable ({err}); run `make caffe` first") from None
    return caffe


_device = {"gpu": None}


def use_device(gpu=None):
    """Run on GPU `gpu` (an id), or on the CPU when None."""
    caffe = import_caffe()
    if gpu is None:
        caffe.set_mode_cpu()
    else:
        caffe.set_device(int(gpu))
        caffe.set_mode_gpu()
    _device["gpu"] = gpu


def solver_mode():
    """solver_mode for the solver files a run writes (read by the `caffe` tool)."""
    return "CPU" if _device["gpu"] is None else "GPU"
