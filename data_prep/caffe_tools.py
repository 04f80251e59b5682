"""Where the Caffe build is, and running its command-line tools.

`make caffe` builds BVLC Caffe with the DEC patch set (docker/build_caffe.sh)
into a cache folder and writes a .pth file into the venv, so that `caffe`
(pycaffe, <prefix>/python/caffe) is on the import path; the tools
(`caffe`, `convert_imageset`, `compute_image_mean`, the layer's gtest) lie in
<prefix>/bin. The data preparation runs the tools but never imports pycaffe,
so the prefix is found from the import path alone.
"""
import importlib.util
import os
import subprocess
from pathlib import Path


class CaffeMissing(RuntimeError):
    pass


def prefix():
    """The install prefix of the Caffe build the venv points at."""
    spec = importlib.util.find_spec("caffe")       # finds, does not import
    if spec is None or not spec.origin:
        raise CaffeMissing("Caffe is not built for this Python; run `make caffe` first")
    return Path(spec.origin).resolve().parent.parent.parent


def tool(name="caffe"):
    """Path of a Caffe command-line tool (caffe, convert_imageset, ...)."""
    path = prefix() / "bin" / name
    if not path.exists():
        raise CaffeMissing(f"{path} is missing; run `make caffe`")
    return path


def logging_env():
    """Caffe's GLOG lines on stderr, every level: the logs are kept."""
    return dict(os.environ, GLOG_logtostderr="1", GLOG_minloglevel="0")


def run_tool(name, args, log_path=None):
    """Run a Caffe tool to the end; its output goes to log_path when given.
    A failure raises RuntimeError with the tool's last line."""
    cmd = [str(tool(name))] + [str(a) for a in args]
    result = subprocess.run(cmd, capture_output=True, text=True, env=logging_env())
    if log_path:
        Path(log_path).write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise RuntimeError(f"{name} failed: {last}")
    return result
