"""make gpu-check: the CUDA build of Caffe + the DEC layer, run on a GPU.

For the GPU machine that is sometimes lent to us (the device tool: one H200,
CUDA 13's driver, Python with PyTorch, no package registry and none of Caffe's
libraries). `make gpu-bundle` packs, here, what this needs (docker/gpu_bundle.sh);
this script, standard library only, unpacks it and, in one command of a few minutes:

  1. the MultiTLoss gtest on the GPU (its GPU typed tests, float and double);
  2. `caffe time -gpu 0` of DEC's autoencoder and of CaffeNet, beside the same
     nets on the CPU;
  3. `caffe train` of DEC's autoencoder and of DEC's clustering net (MultiTLoss),
     on the CPU and with -gpu 0, from the same weights: every displayed loss
     must agree within --rtol.

One summary at the end; the logs and summary.json in a folder it names, and
where $OUT is set (the device tool's folder that comes back, at most 8 files)
summary.json and gpu-check-logs.tar.gz there; exit 1 if a step failed. cuBLAS, cuRAND and the CUDA runtime come
from the machine: PyTorch's nvidia-* wheels, else /usr/local/cuda. The CPU
steps run on the OpenBLAS kernel dec would choose there (data_prep.caffe_tools:
the bundle's OpenBLAS 0.3.21 falls back to a generic one on newer CPUs).

  python3 docker/gpu_check.py [BUNDLE] [--cpu] [--iterations N] [--rtol R]

--cpu runs every GPU step on the CPU instead: what the tests do here, where
there is no GPU (it checks the bundle and this script, not CUDA).
"""
import argparse
import glob
import json
import os
import re
import shutil
import site
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# Standard library only, as this script: the one choice of OpenBLAS kernel dec makes.
from data_prep.caffe_tools import GENERIC_CORES, cpu_model, kernel_env, openblas_core  # noqa: E402
DEFAULT_BUNDLE = ROOT / ".gpu-bundle" / "heobs-gpu-bundle.tar.xz"
# What the bundle leaves out on purpose: the machine has them (sonames).
DEVICE_LIBS = ("libcublas.so.13", "libcublasLt.so.13", "libcurand.so.10", "libcudart.so.13")
FROM_DEVICE = re.compile(r"^lib(cublas|cublasLt|curand|cudart|cuda|nvblas)\.so")
# glibc's libraries: every Linux has its own, and they must match its loader.
GLIBC = re.compile(r"^(linux-vdso|ld-linux-x86-64|libc|libm|libmvec|libpthread|libdl|librt|"
                   r"libresolv|libutil|libanl)\.so")
LDD_LINE = re.compile(r"^\s*(\S+)\s+=>\s+(not found|\S+)")
LDD_VERSION = re.compile(r"version `([^']+)' not found \(required by ([^)]+)\)")

# dec/caffenet/train.py's TRAIN_LINE, restated: this file runs with the GPU
# machine's Python, which lacks the project's requirements (plyvel among them).
LOSS_LINE = re.compile(r"Iteration (\d+)(?: \(.*?\))?, loss = (\S+)")
AVERAGE_LINE = re.compile(r"Average (Forward|Backward|Forward-Backward)(?: pass)?: ([\d.]+) ms")
GTEST_DONE = re.compile(r"\[  PASSED  \] (\d+) tests?")
# Any FAILED line counts (a test's own line too, whatever the exit status says).
GTEST_FAILED = re.compile(r"^\[  FAILED  \] (.*)$", re.M)
GTEST_OK = re.compile(r"^\[       OK \] \w+/(\d+)\.", re.M)
# Caffe's typed tests: /0 /1 run on CPUDevice<float|double>, /2 /3 on GPUDevice<...>.
GTEST_CASES = {"cpu": {"0", "1"}, "gpu": {"2", "3"}}


def to_float(text):
    """A loss as Caffe printed it; what is not a number (NaN, -nan, garbage) is NaN."""
    try:
        return float(text)
    except ValueError:
        return float("nan")


def parse_losses(text):
    """caffe train's log → {iteration: loss} (the newest line of each)."""
    return {int(m[1]): to_float(m[2]) for m in LOSS_LINE.finditer(text)}


def gtest_verdict(text, code, device):
    """(ok, detail) of the MultiTLoss gtest: exit 0, tests passed, no FAILED
    line, and the passing cases are `device`'s typed cases, all of them."""
    passed = GTEST_DONE.search(text)
    failed = GTEST_FAILED.findall(text)
    ran = set(GTEST_OK.findall(text))
    ok = (code == 0 and passed is not None and int(passed[1]) > 0 and not failed
          and ran == GTEST_CASES[device])
    detail = (f"{passed[1] if passed else 0} passed, {len(failed)} FAILED lines, typed cases "
              f"{'/'.join(sorted(ran)) or 'none'} (want {'/'.join(sorted(GTEST_CASES[device]))}"
              f" on the {device.upper()}), exit {code}")
    return ok, detail


def parse_times(text):
    """caffe time's log → {'Forward': ms, 'Backward': ms, 'Forward-Backward': ms}."""
    return {m[1]: float(m[2]) for m in AVERAGE_LINE.finditer(text)}


def compare_losses(cpu, gpu, rtol):
    """(ok, the largest relative difference, a one-line reason). Both runs
    must show the same iterations, every loss finite."""
    if not cpu or set(cpu) != set(gpu):
        return False, None, f"iterations differ: CPU {sorted(cpu)[:5]}..., GPU {sorted(gpu)[:5]}..."
    worst = 0.0
    for it in sorted(cpu):
        a, b = cpu[it], gpu[it]
        if a != a or b != b or abs(a) == float("inf") or abs(b) == float("inf"):
            return False, None, f"loss not finite at iteration {it}: CPU {a}, GPU {b}"
        worst = max(worst, abs(a - b) / max(abs(a), 1e-12))
    if worst > rtol:
        return False, worst, f"largest relative difference {worst:.2e} > {rtol:g}"
    return True, worst, f"largest relative difference {worst:.2e} <= {rtol:g}"


def ldd(binaries, env=None):
    """{soname: resolved path, or None if not found} over the binaries' closure;
    a symbol version this machine's libraries lack (an older glibc, say) is
    reported as its own entry, 'version X (required by Y)': None."""
    found = {}
    for binary in binaries:
        out = subprocess.run(["ldd", str(binary)], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True).stdout
        for line in out.splitlines():
            if m := LDD_LINE.match(line):
                found[m[1]] = None if m[2] == "not found" else m[2]
            elif m := LDD_VERSION.search(line):
                found[f"version {m[1]} (required by {os.path.basename(m[2])})"] = None
    return found


def to_carry(binaries, env=None):
    """The libraries a bundle carries: the closure less glibc and less what
    the machine has (FROM_DEVICE). Raises if one is not found here."""
    libs = {n: p for n, p in ldd(binaries, env).items()
            if not GLIBC.match(n) and not FROM_DEVICE.match(n)}
    missing = sorted(n for n, p in libs.items() if p is None)
    if missing:
        raise SystemExit("gpu-bundle: not found here: " + ", ".join(missing))
    return libs


def foreign_libs(binaries, bundle_lib, env):
    """Libraries the binaries would load from outside the bundle, glibc and the
    machine's CUDA libraries aside: what a bundle forgot ({soname: path})."""
    bundle_lib = os.path.realpath(bundle_lib)
    return {n: p for n, p in ldd(binaries, env).items()
            if not GLIBC.match(n) and not FROM_DEVICE.match(n)
            and (p is None or not os.path.realpath(p).startswith(bundle_lib + os.sep))}


def find_device_libs():
    """Folders holding cuBLAS, cuRAND and cudart 13: PyTorch's nvidia-* wheels
    (nvidia/<pkg>/lib or nvidia/cu13/lib), then /usr/local/cuda."""
    roots = [p for p in site.getsitepackages() + [site.getusersitepackages()] if os.path.isdir(p)]
    folders, missing = [], []
    for name in DEVICE_LIBS:
        hits = [h for r in roots for h in glob.glob(os.path.join(r, "nvidia", "**", name),
                                                       recursive=True)]
        hits += glob.glob(os.path.join("/usr/local/cuda*/lib64", name))
        hits += glob.glob(os.path.join("/usr/local/cuda*/targets/*/lib", name))
        if hits:
            folder = os.path.dirname(hits[0])
            if folder not in folders:
                folders.append(folder)
        else:
            missing.append(name)
    return folders, missing


class Check:
    def __init__(self, bundle_dir, logs, cpu_only, rtol, env):
        self.dir, self.logs, self.cpu_only = Path(bundle_dir), Path(logs), cpu_only
        self.rtol, self.env = rtol, env
        self.rows = []
        self.caffe = str(self.dir / "bin" / "caffe")

    def gpu_flag(self):
        return [] if self.cpu_only else ["-gpu", "0"]

    def run(self, name, args, timeout):
        """Run a bundle tool from the bundle's root; its output → logs/NAME.log."""
        start = time.monotonic()
        try:
            proc = subprocess.run(args, cwd=self.dir, env=self.env, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True, timeout=timeout)
            text, code = proc.stdout, proc.returncode
        except subprocess.TimeoutExpired as err:
            text, code = (err.stdout or b"").decode() if isinstance(err.stdout, bytes) \
                else (err.stdout or ""), f"timeout after {timeout} s"
        (self.logs / f"{name}.log").write_text(text)
        return text, code, time.monotonic() - start

    def record(self, step, ok, detail, **figures):
        """ok: True, False, or None for a step that could not be checked here."""
        self.rows.append({"step": step, "ok": None if ok is None else bool(ok),
                          "detail": detail, **figures})
        print(f"[gpu-check] {verdict(ok)} {step}: {detail}", flush=True)

    def blas_kernel(self, library):
        """The CPU steps run with the kernel dec would choose: the bundle's
        OpenBLAS 0.3.21 takes a generic one (Prescott, 3-5x slower GEMMs) on
        CPUs newer than it, such as the lent machine's Xeon."""
        chosen = kernel_env(self.env, library)
        self.env.update(chosen)
        core = openblas_core(self.env, library)
        generic = core is not None and core.lower() in GENERIC_CORES
        self.record("OpenBLAS kernel for the CPU steps", core is not None,
                    (core or "the bundle's OpenBLAS does not load")
                    + (" (generic: the CPU figures are slow)" if generic else "")
                    + f" on {cpu_model()}, {os.cpu_count()} cores"
                    + (f" (OPENBLAS_CORETYPE={chosen['OPENBLAS_CORETYPE']}: its own choice "
                       "is generic here)" if chosen else ""), kernel=core)

    def gtest(self):
        # Caffe's typed tests: /0 /1 on CPUDevice<float|double>, /2 /3 on GPUDevice<...>.
        which = "*/0.*:*/1.*" if self.cpu_only else "*/2.*:*/3.*"
        text, code, secs = self.run("gtest", [str(self.dir / "bin" / "test_multi_t_loss.testbin"),
                                              f"--gtest_filter={which}"], 300)
        ok, detail = gtest_verdict(text, code, "cpu" if self.cpu_only else "gpu")
        passed = GTEST_DONE.search(text)
        self.record("MultiTLoss gtest on the " + ("CPU (--cpu)" if self.cpu_only else "GPU"), ok,
                    f"{detail}, {secs:.1f} s", passed=int(passed[1]) if passed else 0)

    def time_net(self, net, gpu_iters, cpu_iters):
        figures = {}
        for device, flag, iters in (("cpu", [], cpu_iters), ("gpu", self.gpu_flag(), gpu_iters)):
            text, code, _ = self.run(f"time_{net}_{device}",
                                     [self.caffe, "time", f"-model=nets/{net}.prototxt",
                                      f"-iterations={iters}"] + flag, 300)
            times = parse_times(text)
            if code != 0 or "Forward-Backward" not in times:
                self.record(f"caffe time {net} ({device})", False, f"exit {code}; see "
                            f"time_{net}_{device}.log")
                return
            figures[device] = times
        cpu, gpu = figures["cpu"]["Forward-Backward"], figures["gpu"]["Forward-Backward"]
        self.record(f"caffe time {net}", True,
                    f"forward+backward {cpu:.1f} ms on the CPU, {gpu:.2f} ms on the "
                    f"{'CPU (--cpu)' if self.cpu_only else 'GPU'}: {cpu / gpu:.1f}x",
                    cpu_ms=figures["cpu"], gpu_ms=figures["gpu"])

    def train(self, solver):
        runs = {}
        for device, flag in (("cpu", []), ("gpu", self.gpu_flag())):
            text, code, secs = self.run(f"train_{solver}_{device}",
                                        [self.caffe, "train", f"-solver=nets/{solver}.prototxt"]
                                        + flag, 300)
            if code != 0:
                self.record(f"caffe train {solver} ({device})", False,
                            f"exit {code}; see train_{solver}_{device}.log")
                return
            runs[device] = (parse_losses(text), secs)
        (cpu, cpu_s), (gpu, gpu_s) = runs["cpu"], runs["gpu"]
        ok, worst, why = compare_losses(cpu, gpu, self.rtol)
        last = max(cpu) if cpu else None
        self.record(f"caffe train {solver}, CPU against GPU", ok,
                    f"{len(cpu)} losses to iteration {last}; {why}; "
                    f"{cpu_s:.1f} s CPU, {gpu_s:.1f} s GPU",
                    max_rel_diff=worst, cpu_losses=cpu, gpu_losses=gpu)


def verdict(ok):
    return "SKIP" if ok is None else "PASS" if ok else "FAIL"


def set_iterations(bundle, iterations):
    for solver in (bundle / "nets").glob("*_solver.prototxt"):
        solver.write_text(re.sub(r"(?m)^max_iter: \d+$", f"max_iter: {iterations}",
                                 solver.read_text()))


def unpack(bundle, into):
    bundle = Path(bundle)
    if not bundle.exists():
        raise SystemExit(f"gpu-check: {bundle} is missing: run `make gpu-bundle` on a machine "
                         "with the project's build tools first")
    if not bundle.is_dir():
        try:
            with tarfile.open(bundle) as tar:
                tar.extractall(into, filter="data") if hasattr(tarfile, "data_filter") \
                    else tar.extractall(into)
        except (tarfile.TarError, EOFError, OSError) as err:
            raise SystemExit(f"gpu-check: {bundle} is not a bundle archive ({err}): make "
                             "gpu-bundle writes one") from None
        bundle = Path(into)
    lacking = [n for n in ("bin/caffe", "bin/test_multi_t_loss.testbin", "nets")
               if not (bundle / n).exists()]
    if lacking:
        raise SystemExit(f"gpu-check: {bundle} is not a gpu-bundle (no {', '.join(lacking)})")
    return bundle


def positive(kind, below=None):
    """An argparse type: a finite number above 0 (and below `below`)."""
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not (value > 0 and value != float("inf")) or (below is not None and value >= below):
            raise argparse.ArgumentTypeError(f"{text} must be above 0"
                                             + (f" and below {below:g}" if below else ""))
        return value
    return parse


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("bundle", nargs="?", default=str(DEFAULT_BUNDLE),
                   help="the archive (or unpacked folder) of make gpu-bundle")
    p.add_argument("--cpu", action="store_true", help="GPU steps on the CPU (tests, here)")
    p.add_argument("--iterations", type=positive(int),
                   help="caffe train iterations (the bundle's: 300)")
    p.add_argument("--time-iterations", type=positive(int), default=50,
                   help="caffe time iterations on the GPU (50; the CPU runs 5)")
    p.add_argument("--rtol", type=positive(float, below=1), default=1e-3,
                   help="largest relative difference of a CPU and a GPU loss (1e-3)")
    a = p.parse_args(argv)
    start = time.monotonic()
    logs = Path(tempfile.mkdtemp(prefix="gpu-check-logs-"))
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        bundle = unpack(a.bundle, tmp)
        # Train runs write their snapshots under out/: a fresh copy for a folder bundle.
        if bundle != Path(tmp):
            shutil.copytree(bundle, Path(tmp) / "b")
            bundle = Path(tmp) / "b"
        env = dict(os.environ)
        folders, missing = ([], []) if a.cpu else find_device_libs()
        env["LD_LIBRARY_PATH"] = os.pathsep.join(
            [str(bundle / "lib")] + folders + [env.get("LD_LIBRARY_PATH", "")]).rstrip(os.pathsep)
        # The checks read Caffe's INFO lines (a caller's quieter GLOG setting
        # would hide them: pycaffe users set GLOG_minloglevel).
        env.update(GLOG_logtostderr="1", GLOG_minloglevel="0")
        check = Check(bundle, logs, a.cpu, a.rtol, env)
        manifest = (bundle / "MANIFEST").read_text() if (bundle / "MANIFEST").exists() else ""
        print(manifest, end="")
        if missing:
            check.record("CUDA libraries from the machine", False, "not found: "
                         + ", ".join(missing))
        elif not a.cpu:
            check.record("CUDA libraries from the machine", True, ", ".join(folders))
        if not a.cpu:
            text, code, _ = check.run("nvidia_smi", ["nvidia-smi", "-L"], 60) \
                if shutil.which("nvidia-smi") else ("no nvidia-smi", 1, 0)
            check.record("nvidia-smi -L", code == 0, text.strip().splitlines()[0] if text.strip()
                         else f"exit {code}")
        binaries = [bundle / "bin" / "caffe", bundle / "bin" / "test_multi_t_loss.testbin"]
        check.blas_kernel(bundle / "lib" / "libopenblas.so.0")
        if shutil.which("ldd"):
            libc = subprocess.run(["ldd", "--version"], stdout=subprocess.PIPE,
                                  text=True).stdout
            print("this machine: " + (libc.splitlines() or ["?"])[0], flush=True)
            outside = foreign_libs(binaries, bundle / "lib", env)
            check.record("the tools load the bundle's libraries", not outside,
                         "from elsewhere or missing: " + ", ".join(
                             f"{n} ({p})" for n, p in sorted(outside.items()))
                         if outside else "ldd: all from the bundle, glibc or the machine's CUDA")
        else:       # the tools' own runs below still show a missing library
            check.record("the tools load the bundle's libraries", None, "no ldd here: not checked")
        if a.iterations:
            set_iterations(bundle, a.iterations)
        check.gtest()
        check.time_net("ae_time", a.time_iterations, 5)
        check.time_net("caffenet_time", a.time_iterations, 2)
        check.train("ae_solver")
        check.train("dec_solver")
    failed = [r for r in check.rows if r["ok"] is False]
    skipped = [r for r in check.rows if r["ok"] is None]
    summary = {"device": "cpu (--cpu)" if a.cpu else "gpu 0", "seconds": time.monotonic() - start,
               "passed": len(check.rows) - len(failed) - len(skipped), "failed": len(failed),
               "skipped": len(skipped),
               "manifest": manifest, "steps": check.rows}
    (logs / "summary.json").write_text(json.dumps(summary, indent=1))
    if os.environ.get("OUT"):
        out = Path(os.environ["OUT"])
        out.mkdir(parents=True, exist_ok=True)
        shutil.copy(logs / "summary.json", out / "summary.json")
        with tarfile.open(out / "gpu-check-logs.tar.gz", "w:gz") as tar:
            tar.add(logs, arcname="gpu-check-logs")
    print("\n==== gpu-check summary " + ("(--cpu: no GPU step ran on a GPU) " if a.cpu else "")
          + "====")
    for r in check.rows:
        print(f"{verdict(r['ok'])}  {r['step']}: {r['detail']}")
    print(f"{summary['passed']} passed, {summary['failed']} failed"
          + (f", {len(skipped)} skipped" if skipped else "")
          + f" ({summary['seconds']:.0f} s; logs in {logs})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
