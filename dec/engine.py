"""Where the Caffe engine is, and importing it with a clear error when it is not.

`make caffe` builds BVLC Caffe with the DEC patch set (engine/) into a cache
folder and writes a .pth file into the venv, so `import caffe` finds pycaffe;
the `caffe` tool and the layer's gtest binary lie in <prefix>/bin beside it.
"""
import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MODELS = REPO / "caffe_models"


class CaffeMissing(RuntimeError):
    pass


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


def prefix():
    """The install prefix of the Caffe build the venv points at."""
    caffe = import_caffe()
    return Path(caffe.__file__).resolve().parent.parent.parent


def tool(name="caffe"):
    """Path of a Caffe command-line tool (caffe, compute_image_mean, ...)."""
    path = prefix() / "bin" / name
    if not path.exists():
        raise CaffeMissing(f"{path} is missing; run `make caffe`")
    return path


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
