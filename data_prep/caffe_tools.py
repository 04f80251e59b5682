"""Where the Caffe build is, and running its command-line tools.

`make caffe` builds BVLC Caffe with the DEC patch set (docker/build_caffe.sh)
into a cache folder and writes a .pth file into the venv, so that `caffe`
(pycaffe, <prefix>/python/caffe) is on the import path; the tools
(`caffe`, `convert_imageset`, `compute_image_mean`, the layer's gtest) lie in
<prefix>/bin. The data preparation runs the tools but never imports pycaffe,
so the prefix is found from the import path alone.
"""
import functools
import importlib.util
import os
import subprocess
import sys
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


# OpenBLAS builds that predate a CPU model (Debian bookworm's 0.3.21 on recent
# Xeons) fall back to generic kernels, 4-5x slower GEMMs. OpenBLAS reads
# OPENBLAS_CORETYPE when it loads, so Caffe's is told the right family first.
GENERIC_CORES = {"prescott", "core2", "katmai", "coppermine", "northwood", "banias",
                 "atom", "unknown", ""}
# The probe loads the system's OpenBLAS, or the one whose path it is given.
PROBE = ("import ctypes, ctypes.util, sys\n"
         "lib = ctypes.CDLL(sys.argv[1] if len(sys.argv) > 1 else\n"
         "                  (ctypes.util.find_library('openblas') or 'libopenblas.so.0'))\n"
         "lib.openblas_get_corename.restype = ctypes.c_char_p\n"
         "print(lib.openblas_get_corename().decode())")


def cpu_flags(cpuinfo="/proc/cpuinfo"):
    try:
        with open(cpuinfo) as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_model(cpuinfo="/proc/cpuinfo"):
    """The CPU's model name, as the kernel reports it ("?" where it does not)."""
    try:
        with open(cpuinfo) as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "?"


def core_for(corename, flags):
    """The OPENBLAS_CORETYPE to ask for, or None to leave OpenBLAS's choice."""
    if corename.strip().lower() not in GENERIC_CORES:
        return None
    if {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= flags:
        return "SkylakeX"
    if {"avx2", "fma"} <= flags:
        return "Haswell"
    return None


def openblas_core(env, library=None):
    """The kernel family an OpenBLAS picks under `env`: the system's, or the
    one at `library`; None where it cannot be loaded."""
    probe = subprocess.run([sys.executable, "-c", PROBE] + ([str(library)] if library else []),
                           capture_output=True, text=True, env=env)
    return probe.stdout.strip() if probe.returncode == 0 else None


def kernel_env(environ, library=None):
    """{OPENBLAS_CORETYPE: ...} where that OpenBLAS would use generic kernels
    on this CPU; {} where it knows the CPU or `environ` chose one."""
    if environ.get("OPENBLAS_CORETYPE"):
        return {}
    picked = openblas_core({k: v for k, v in environ.items() if k != "OPENBLAS_CORETYPE"},
                           library)
    ask = core_for(picked, cpu_flags()) if picked is not None else None
    return {"OPENBLAS_CORETYPE": ask} if ask else {}


@functools.lru_cache(maxsize=1)
def blas_env():
    """kernel_env of the system OpenBLAS (Caffe's) under this process's environment."""
    return kernel_env(os.environ)


def blas_core():
    """The kernel family Caffe's OpenBLAS runs with, under blas_env()."""
    return openblas_core(dict(os.environ, **blas_env())) or "unknown"


def logging_env():
    """Caffe's GLOG lines on stderr, every level: the logs are kept; the BLAS
    kernel chosen for this CPU."""
    return dict(os.environ, GLOG_logtostderr="1", GLOG_minloglevel="0", **blas_env())


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
