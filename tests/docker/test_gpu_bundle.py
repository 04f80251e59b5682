"""make gpu-bundle / make gpu-check (docker/gpu_bundle.sh, docker/gpu_check.py).

Here there is no GPU: the CUDA steps themselves run only on the lent machine.
What these guard: the check's parsing and its CPU-against-GPU verdict, the
search for the machine's CUDA libraries, and — with the CPU build packed the
same way — that a bundle carries every library its tools load (a forgotten
one is caught) and that the whole check runs from it.
"""
import json
import os
import shutil
import subprocess
import sys

import pytest

from dec import engine

DOCKER = engine.REPO / "docker"
sys.path.insert(0, str(DOCKER))
import gpu_check  # noqa: E402


# ---- parsing and the verdict (no Caffe) ------------------------------------------
TRAIN_LOG = """\
I1202 09:03:16.339425  8792 solver.cpp:239] Iteration 10 (0.492005 iter/s, 20.325s/10 iters), loss = 0.986338
I1202 09:03:16.339524  8792 sgd_solver.cpp:112] Iteration 10, lr = 0.01
I1202 09:03:36.396653  8792 solver.cpp:239] Iteration 20 (0.498579 iter/s, 20.057s/10 iters), loss = 0.667802
I1202 09:03:40.000000  8792 solver.cpp:239] Iteration 0, loss = 2.5
"""
TIME_LOG = """\
I1202 10:00:00.000000  1 caffe.cpp:417] Average Forward pass: 12.5 ms.
I1202 10:00:00.000000  1 caffe.cpp:419] Average Backward pass: 20.25 ms.
I1202 10:00:00.000000  1 caffe.cpp:421] Average Forward-Backward: 33 ms.
"""


def test_parses_caffe_train_and_time_logs():
    assert gpu_check.parse_losses(TRAIN_LOG) == {0: 2.5, 10: 0.986338, 20: 0.667802}
    # caffe time's own wording ("Average Forward pass: X ms.")
    assert gpu_check.parse_times(TIME_LOG) == {"Forward": 12.5, "Backward": 20.25,
                                                 "Forward-Backward": 33.0}


@pytest.mark.parametrize("gpu, ok", [
    ({0: 2.5, 10: 1.0, 20: 0.5}, True),
    ({0: 2.5, 10: 1.0005, 20: 0.5}, True),            # 5e-4 relative: float rounding
    ({0: 2.5, 10: 1.002, 20: 0.5}, False),            # 2e-3: not the same computation
    ({0: 2.5, 10: 1.0}, False),                       # the GPU run stopped early
    ({0: 2.5, 10: float("nan"), 20: 0.5}, False),
])
def test_cpu_and_gpu_losses_must_agree(gpu, ok):
    cpu = {0: 2.5, 10: 1.0, 20: 0.5}
    verdict, worst, why = gpu_check.compare_losses(cpu, gpu, rtol=1e-3)
    assert verdict is ok, why
    assert gpu_check.compare_losses({}, {}, 1e-3)[0] is False       # no loss at all


def test_two_runs_both_nan_from_one_iteration_fail_however_caffe_spells_it():
    for spelling in ("nan", "-nan", "NaN", "-NaN", "inf", "1.#QNAN"):
        log = TRAIN_LOG + f"I1202 10:00:03 solver.cpp:218] Iteration 30 (9 iter/s), loss = {spelling}\n"
        losses = gpu_check.parse_losses(log)
        assert 30 in losses, spelling
        ok, _, why = gpu_check.compare_losses(losses, dict(losses), 1e-3)
        assert ok is False and "not finite at iteration 30" in why, spelling


GTEST_OK_LINES = "".join(f"[       OK ] MultiTLossLayerTest/{i}.TestForward (1 ms)\n"
                         for i in range(4))


@pytest.mark.parametrize("log, code, device, ok", [
    ("[       OK ] MultiTLossLayerTest/2.TestGradient (3 ms)\n"
     "[       OK ] MultiTLossLayerTest/3.TestGradient (3 ms)\n[  PASSED  ] 2 tests.\n", 0, "gpu",
     True),
    # a FAILED line with exit 0 was not seen
    ("[       OK ] MultiTLossLayerTest/2.TestGradient (3 ms)\n"
     "[  FAILED  ] MultiTLossLayerTest/3.TestGradient (3 ms)\n[  PASSED  ] 1 test.\n", 0, "gpu",
     False),
    # every GPU case has an OK line, and one test of them FAILED all the same
    ("[       OK ] MultiTLossLayerTest/2.TestGradient (3 ms)\n"
     "[       OK ] MultiTLossLayerTest/3.TestGradient (3 ms)\n"
     "[  FAILED  ] MultiTLossLayerTest/3.TestForward (3 ms)\n[  PASSED  ] 2 tests.\n", 0,
     "gpu", False),
    # only the CPU cases ran: nothing ran on the GPU
    ("[       OK ] MultiTLossLayerTest/0.TestGradient (3 ms)\n"
     "[       OK ] MultiTLossLayerTest/1.TestGradient (3 ms)\n[  PASSED  ] 2 tests.\n", 0, "gpu",
     False),
    (GTEST_OK_LINES + "[  PASSED  ] 4 tests.\n", 0, "gpu", False),    # CPU ones too: filter lost
    ("[       OK ] MultiTLossLayerTest/0.TestGradient (3 ms)\n"
     "[       OK ] MultiTLossLayerTest/1.TestGradient (3 ms)\n[  PASSED  ] 2 tests.\n", 0, "cpu",
     True),
    ("[       OK ] MultiTLossLayerTest/2.TestGradient (3 ms)\n"
     "[       OK ] MultiTLossLayerTest/3.TestGradient (3 ms)\n[  PASSED  ] 2 tests.\n", 1, "gpu",
     False),
    ("", 0, "gpu", False)])
def test_the_gtest_verdict_needs_its_devices_cases_and_no_failed_line(log, code, device, ok):
    assert gpu_check.gtest_verdict(log, code, device)[0] is ok


@pytest.mark.parametrize("flag", [["--rtol", "nan"], ["--rtol", "inf"], ["--rtol", "0"],
                                  ["--rtol", "-1"], ["--rtol", "1"], ["--iterations", "0"],
                                  ["--time-iterations", "-5"]])
def test_the_checks_own_bounds_are_checked(flag, capsys):
    with pytest.raises(SystemExit) as exit:
        gpu_check.main(["nowhere.tar.xz"] + flag)
    assert exit.value.code == 2 and flag[0] in capsys.readouterr().err


def test_a_garbage_archive_or_a_folder_that_is_no_bundle_is_one_line(tmp_path):
    (tmp_path / "garbage.tar.xz").write_bytes(b"\xfd7zXZ not really" * 50)
    (tmp_path / "folder").mkdir()
    for bundle, message in ((tmp_path / "garbage.tar.xz", "is not a bundle archive"),
                            (tmp_path / "folder", "is not a gpu-bundle (no bin/caffe")):
        run = subprocess.run([sys.executable, str(DOCKER / "gpu_check.py"), str(bundle), "--cpu"],
                             capture_output=True, text=True, timeout=60)
        assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr
        assert run.stderr.startswith("gpu-check: ") and message in run.stderr


def test_finds_the_machines_cuda_libraries_in_pytorchs_wheels(tmp_path, monkeypatch):
    """As the lent machine has them: nvidia/cu13/lib (CUDA 13 wheels) and
    nvidia/curand/lib side by side."""
    (tmp_path / "nvidia" / "cu13" / "lib").mkdir(parents=True)
    (tmp_path / "nvidia" / "curand" / "lib").mkdir(parents=True)
    for name in ("libcublas.so.13", "libcublasLt.so.13", "libcudart.so.13"):
        (tmp_path / "nvidia" / "cu13" / "lib" / name).touch()
    monkeypatch.setattr(gpu_check.site, "getsitepackages", lambda: [str(tmp_path)])
    monkeypatch.setattr(gpu_check.site, "getusersitepackages", lambda: "/nonexistent")
    monkeypatch.setattr(gpu_check.glob, "glob", _no_system_cuda(gpu_check.glob.glob))
    folders, missing = gpu_check.find_device_libs()
    assert folders == [str(tmp_path / "nvidia" / "cu13" / "lib")]
    assert missing == ["libcurand.so.10"]
    (tmp_path / "nvidia" / "curand" / "lib" / "libcurand.so.10").touch()
    folders, missing = gpu_check.find_device_libs()
    assert missing == [] and str(tmp_path / "nvidia" / "curand" / "lib") in folders


def _no_system_cuda(real_glob):
    return lambda pattern, **kw: [] if pattern.startswith("/usr/local/cuda") \
        else real_glob(pattern, **kw)


def test_ldd_reports_a_symbol_version_the_machine_lacks(monkeypatch):
    """An older glibc on the GPU machine than ours shows as ldd's version error."""
    out = ("\tlinux-vdso.so.1 (0x00007ffd)\n"
           "./bin/caffe: /lib/x86_64-linux-gnu/libc.so.6: version `GLIBC_2.38' not found "
           "(required by ./lib/libstdc++.so.6)\n"
           "\tlibglog.so.1 => /b/lib/libglog.so.1 (0x1)\n\tlibfoo.so.2 => not found\n")
    monkeypatch.setattr(gpu_check.subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(
        a, 0, stdout=out))
    assert gpu_check.ldd(["bin/caffe"]) == {
        "version GLIBC_2.38 (required by libstdc++.so.6)": None,
        "libglog.so.1": "/b/lib/libglog.so.1", "libfoo.so.2": None}
    assert set(gpu_check.foreign_libs(["bin/caffe"], "/b/lib", None)) == {
        "version GLIBC_2.38 (required by libstdc++.so.6)", "libfoo.so.2"}


def test_what_a_bundle_carries_leaves_out_glibc_and_the_machines_cuda():
    for soname in ("libc.so.6", "libm.so.6", "ld-linux-x86-64.so.2", "libpthread.so.0"):
        assert gpu_check.GLIBC.match(soname)
    for soname in ("libcublas.so.13", "libcublasLt.so.13", "libcurand.so.10", "libcudart.so.13"):
        assert gpu_check.FROM_DEVICE.match(soname)
    for soname in ("libstdc++.so.6", "libprotobuf.so.32", "libglog.so.1", "libopenblas.so.0",
                   "libmvec_extra.so.1", "libcommon.so.1"):
        assert not gpu_check.GLIBC.match(soname) and not gpu_check.FROM_DEVICE.match(soname)


def test_the_cpu_steps_get_the_kernel_dec_chooses_where_openblas_falls_back(monkeypatch,
                                                                           tmp_path):
    """The lent machine's Xeon (family 6 model 207) is newer than the bundle's
    OpenBLAS 0.3.21, which takes Prescott there: the CPU figures beside the
    GPU's were 3x slow until the check asked for SkylakeX, as dec does. A
    caller's own OPENBLAS_CORETYPE stays."""
    from data_prep import caffe_tools

    def probe(env, library=None):
        return env.get("OPENBLAS_CORETYPE") or "Prescott"
    monkeypatch.setattr(caffe_tools, "openblas_core", probe)
    monkeypatch.setattr(gpu_check, "openblas_core", probe)
    monkeypatch.setattr(caffe_tools, "cpu_flags", lambda: {"avx2", "fma", "avx512f", "avx512bw",
                                                           "avx512vl", "avx512dq"})
    check = gpu_check.Check(tmp_path, tmp_path, True, 1e-3, {"PATH": "/usr/bin"})
    check.blas_kernel(tmp_path / "libopenblas.so.0")
    assert check.env["OPENBLAS_CORETYPE"] == "SkylakeX"
    assert check.rows[-1]["kernel"] == "SkylakeX" and check.rows[-1]["ok"] is True
    assert "OPENBLAS_CORETYPE=SkylakeX" in check.rows[-1]["detail"]
    mine = gpu_check.Check(tmp_path, tmp_path, True, 1e-3, {"OPENBLAS_CORETYPE": "Haswell"})
    mine.blas_kernel(tmp_path / "libopenblas.so.0")
    assert mine.env["OPENBLAS_CORETYPE"] == "Haswell" and mine.rows[-1]["kernel"] == "Haswell"
    monkeypatch.setattr(caffe_tools, "cpu_flags", lambda: {"sse2"})    # nothing better to ask for
    old = gpu_check.Check(tmp_path, tmp_path, True, 1e-3, {})
    old.blas_kernel(tmp_path / "libopenblas.so.0")
    assert "OPENBLAS_CORETYPE" not in old.env and "generic" in old.rows[-1]["detail"]


@pytest.mark.caffe
def test_the_time_nets_fill_their_data_once():
    """caffe time on DummyData measures the layers only with a constant filler:
    any other refills every forward on the CPU (66 of CaffeNet's 78 ms a GPU
    forward on the H200 with a Gaussian one)."""
    from google.protobuf import text_format

    import gpu_bundle_files
    net_parameter = engine.import_caffe().proto.caffe_pb2.NetParameter
    for name, text in gpu_bundle_files.time_nets(gpu_bundle_files.nets.PAPER).items():
        net = text_format.Parse(text, net_parameter())
        fillers = [f.type for layer in net.layer if layer.type == "DummyData"
                   for f in layer.dummy_data_param.data_filler]
        assert fillers and set(fillers) == {"constant"}, (name, fillers)


# ---- a bundle of the CPU build, and the check run from it ----------------------------
@pytest.fixture(scope="module")
def cpu_bundle(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu-bundle")
    run = subprocess.run([str(DOCKER / "gpu_bundle.sh"), "--cpu", "--no-archive", "--out",
                          str(out), "--python", sys.executable],
                         capture_output=True, text=True, timeout=600, cwd=engine.REPO)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return out / "bundle"


@pytest.mark.caffe
def test_the_bundle_holds_the_tools_nets_data_and_their_libraries(cpu_bundle):
    libs = {p.name for p in (cpu_bundle / "lib").iterdir()}
    assert any(n.startswith("libcaffe.so") for n in libs)
    for needed in ("libprotobuf", "libglog", "libgflags", "libleveldb", "libopenblas",
                   "libboost_thread", "libhdf5", "libstdc++"):
        assert any(n.startswith(needed) for n in libs), needed
    assert not any(gpu_check.GLIBC.match(n) for n in libs)
    for name in ("bin/caffe", "bin/test_multi_t_loss.testbin", "nets/ae_time.prototxt",
                 "nets/caffenet_time.prototxt", "nets/ae_solver.prototxt",
                 "nets/dec_solver.prototxt", "data/mnist5k_total", "data/target", "MANIFEST"):
        assert (cpu_bundle / name).exists(), name
    env = dict(os.environ, LD_LIBRARY_PATH=str(cpu_bundle / "lib"))
    binaries = [cpu_bundle / "bin" / "caffe", cpu_bundle / "bin" / "test_multi_t_loss.testbin"]
    assert gpu_check.foreign_libs(binaries, cpu_bundle / "lib", env) == {}


@pytest.mark.caffe
def test_the_check_runs_from_the_bundle_and_reports_each_step(cpu_bundle, tmp_path):
    out = tmp_path / "out"
    run = subprocess.run([sys.executable, str(DOCKER / "gpu_check.py"), str(cpu_bundle),
                          "--cpu", "--iterations", "20", "--time-iterations", "2"],
                         capture_output=True, text=True, timeout=600,
                         # a caller's quiet Caffe (pycaffe users set it) must not hide the figures
                         env=dict(os.environ, OUT=str(out), GLOG_minloglevel="2"))
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    steps = {r["step"]: r for r in summary["steps"]}
    assert summary["failed"] == 0 and summary["passed"] == len(steps) == 7
    kernel = steps["OpenBLAS kernel for the CPU steps"]["kernel"]
    assert kernel and kernel.lower() not in gpu_check.GENERIC_CORES
    assert steps["MultiTLoss gtest on the CPU (--cpu)"]["passed"] == 14
    for solver in ("ae_solver", "dec_solver"):
        row = steps[f"caffe train {solver}, CPU against GPU"]
        assert sorted(row["cpu_losses"]) == ["0", "10", "20"]      # display 10, 20 iterations
        assert row["max_rel_diff"] == 0.0                          # the CPU twice: the same bits
    assert steps["caffe time caffenet_time"]["gpu_ms"]["Forward-Backward"] > 0
    assert "0 failed" in run.stdout and "--cpu: no GPU step ran on a GPU" in run.stdout
    assert (out / "gpu-check-logs.tar.gz").stat().st_size > 0


@pytest.mark.caffe
def test_without_ldd_the_library_step_is_skipped_not_passed(cpu_bundle, tmp_path, monkeypatch,
                                                            capsys):
    real_which = shutil.which
    monkeypatch.setattr(gpu_check.shutil, "which",
                        lambda name, *a, **k: None if name == "ldd" else real_which(name, *a, **k))
    monkeypatch.setenv("OUT", str(tmp_path / "out"))
    assert gpu_check.main([str(cpu_bundle), "--cpu", "--iterations", "10",
                           "--time-iterations", "1"]) == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert (summary["passed"], summary["failed"], summary["skipped"]) == (6, 0, 1)
    assert "SKIP  the tools load the bundle's libraries: no ldd here" in capsys.readouterr().out


@pytest.mark.caffe
def test_a_library_left_out_of_the_bundle_fails_the_check(cpu_bundle, tmp_path):
    """glog taken out: the tools would load the system's copy here and find
    none on the GPU machine; the check says which, and fails."""
    broken = tmp_path / "bundle"
    shutil.copytree(cpu_bundle, broken, symlinks=True)
    for lib in (broken / "lib").glob("libglog.so*"):
        lib.unlink()
    run = subprocess.run([sys.executable, str(DOCKER / "gpu_check.py"), str(broken), "--cpu",
                          "--iterations", "10", "--time-iterations", "1"],
                         capture_output=True, text=True, timeout=600,
                         env=dict(os.environ, OUT=str(tmp_path / "out")))
    assert run.returncode == 1
    assert "FAIL  the tools load the bundle's libraries: from elsewhere or missing: libglog" \
        in run.stdout
