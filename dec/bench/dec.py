"""make bench-dec: DEC's paper schedule on this machine, stage by stage, against its GEMM bound.

On 70000 x 784 (Fashion-MNIST: MNIST's size), each stage as a run trains it —
pretraining layers 1-4 (layers 2-4 on their frozen layers' output, computed
once: nets.stack_net), fine-tuning, a DEC round — in milliseconds an
iteration; beside it the GEMM arithmetic of an iteration, the time that takes
at this machine's sgemm speed (Caffe's own BLAS, 2000^3: the bound) and the
share of the iteration it is; beside it the same stage's learning
InnerProduct layers timed alone (inner_products_alone: the GEMMs and nothing
else), the ceiling this BLAS gives at these shapes, and the rest of the
iteration; a DEC round in its parts; then the paper schedule's projected
minutes. Caffe's sgemm is measured before and after: a shared machine that
changed speed between them makes every share uncertain, and it says so. So is
a cache line's round trip between the first two CPUs (core_round_trip.c): on a
VM the hypervisor may move its vCPUs between dies, and then OpenBLAS's two
threads wait on each other longer at these batch sizes while sgemm 2000^3
hardly changes.
`--torch PYTHON` runs dec/bench/torch_reference.py (the same net in PyTorch)
with a Python that has it, on the same cores, after Caffe.
"""
import argparse
import json
import os
import resource
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from data_prep import datasets, db
from data_prep.caffe_tools import blas_core, blas_env

from .. import nets, solve
from ..autoencoder import frozen_features
from ..cluster import ClusterRun
from ..engine import REPO, import_caffe

# The rounds DEC's stage took in the recorded mnist run (dec/measured.json):
# the projection's DEC stage is that many rounds.
MEASURED = REPO / "dec" / "measured.json"
CORE_ROUND_TRIP = Path(__file__).with_name("core_round_trip.c")


def inner_products_alone(net_text, batch, dim_in, caffe_pb2):
    """A net of the learning InnerProduct layers of `net_text` (a stage's net),
    in their order, chained on an Input of `dim_in` floats a sample, the last
    one's top a loss (its diff ones): forward + backward of it runs the
    products, bias terms included, that Caffe runs for the stage's iteration
    and nothing else — no data, dropout, ReLU, loss or update. Its first
    layer computes no input gradient, as the stage's does not."""
    from google.protobuf import text_format
    stage = text_format.Parse(net_text, caffe_pb2.NetParameter())
    learning = [layer for layer in stage.layer if layer.type == "InnerProduct"
                and (not layer.param or any(p.lr_mult for p in layer.param))]
    alone = caffe_pb2.NetParameter(name="inner_products_alone")
    source = alone.layer.add(name="x", type="Input", top=["x"])
    source.input_param.shape.add(dim=[batch, dim_in])
    bottom = "x"
    for layer in learning:
        copy = alone.layer.add()
        copy.CopyFrom(layer)
        del copy.bottom[:], copy.top[:], copy.include[:]
        copy.bottom.append(bottom)
        copy.top.append(layer.name)
        bottom = layer.name
    alone.layer[-1].loss_weight.append(1)
    return text_format.MessageToString(alone)


def stage_and_alone_seconds(solver_file, alone_file, iters, warmup=5, repeats=3):
    """Seconds an iteration of the solver's stage and of its InnerProducts
    alone (forward + backward of alone_file's net): the best of `repeats`
    runs of `iters` iterations each, the two taken in turn so that a shared
    machine's change of speed falls on both alike (as torch_reference.py: the
    best run is the least disturbed)."""
    caffe = import_caffe()
    solver = caffe.SGDSolver(str(solver_file))
    alone = caffe.Net(str(alone_file), caffe.TRAIN)
    x = alone.blobs["x"]
    x.data[...] = np.random.default_rng(0).normal(size=x.data.shape)

    def passes(n):
        for _ in range(n):
            alone.forward()
            alone.backward()
    solver.step(warmup)
    passes(warmup)
    stage = alone_best = float("inf")
    for _ in range(repeats):
        stage = min(stage, _timed(lambda: solver.step(iters)) / iters)
        alone_best = min(alone_best, _timed(lambda: passes(iters)) / iters)
    del solver, alone
    return stage, alone_best


def layer_flops(batch, n_in, n_out, weight_grad=True, input_grad=True):
    """An InnerProduct on a batch: 2·B·in·out for the forward GEMM, as much
    again for the weight gradient and for the input's gradient."""
    return 2 * batch * n_in * n_out * (1 + weight_grad + input_grad)


def stage_flops(dims, batch, layer=None, frozen_forward=False):
    """GEMM FLOPs of one iteration. layer=None: fine-tuning (the data needs no
    gradient; everything else does). Stage `layer` of the pretraining: its
    encoder (its input comes from frozen layers or the data: no input
    gradient) and decoder; frozen_forward adds the frozen layers' forward
    that DEC's nets run every batch."""
    pairs = list(zip(dims[:-1], dims[1:]))
    if layer is None:
        encoder = sum(layer_flops(batch, a, b, input_grad=i > 0) for i, (a, b) in enumerate(pairs))
        return encoder + sum(layer_flops(batch, b, a) for a, b in pairs)
    a, b = pairs[layer]
    own = layer_flops(batch, a, b, input_grad=False) + layer_flops(batch, b, a)
    frozen = sum(2 * batch * i * o for i, o in pairs[:layer])
    return own + (frozen if frozen_forward else 0)


def dec_round_flops(dims, n, batch, iters):
    """Embedding n samples, then `iters` iterations of the clustering net (the
    encoder, its loss on the embedding)."""
    pairs = list(zip(dims[:-1], dims[1:]))
    embedding = sum(2 * n * a * b for a, b in pairs)
    return embedding + iters * sum(layer_flops(batch, a, b, input_grad=i > 0)
                                   for i, (a, b) in enumerate(pairs))


def recorded_rounds(default=52):
    try:
        return int(json.loads(MEASURED.read_text())["mnist"]["rounds"])
    except (OSError, KeyError, ValueError, TypeError):
        return default


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=100,
                        help="timed iterations per stage, best of 3 such runs")
    parser.add_argument("--torch", metavar="PYTHON",
                        help="a Python with PyTorch: time the same net there too "
                             "(dec/bench/torch_reference.py)")
    args = parser.parse_args(argv)
    sched = nets.PAPER.override(snapshot=0)
    n = 70000
    epoch_iters = -(-n // sched.batch_size)
    caffe = import_caffe()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        image_set = datasets.load_fashion_mnist()
        x = datasets.features(image_set.images)
        db.write_db(tmp / "total", x)
        source = tmp / "total"
        # Random weights: the stages' inputs need trained ones no more than their timing does.
        (tmp / "ae.prototxt").write_text(nets.autoencoder_net(sched.dims, sched, source, None))
        net = caffe.Net(str(tmp / "ae.prototxt"), caffe.TRAIN)
        solve.save_weights(net, tmp / "ae.caffemodel")
        del net

        def stage_seconds(name, text, dim_in):
            """(ms an iteration, ms its learning InnerProducts take alone)."""
            (tmp / f"{name}.prototxt").write_text(text)
            (tmp / f"{name}_solver.prototxt").write_text(nets.pretrain_solver(
                tmp / f"{name}.prototxt", sched, tmp / name, 10 ** 6))
            (tmp / f"{name}_alone.prototxt").write_text(inner_products_alone(
                text, sched.batch_size, dim_in, caffe.proto.caffe_pb2))
            return stage_and_alone_seconds(tmp / f"{name}_solver.prototxt",
                                           tmp / f"{name}_alone.prototxt", args.iters)

        sgemm_before = caffe_sgemm_gflops()
        round_trip = build_core_round_trip(tmp)
        trip_before = core_round_trip_ns(round_trip)

        per_layer = []
        for i in range(len(sched.dims) - 1):
            features = (frozen_features(tmp / "ae.caffemodel", i, sched.dims, x,
                                        tmp / f"features{i}", tmp, sched.batch_size)
                        if i else None)
            per_layer.append(stage_seconds(f"stack{i + 1}", nets.stack_net(
                i, sched.dims, sched, source, None, input_source=features), sched.dims[i]))
        finetune = stage_seconds("autoencoder", nets.autoencoder_net(sched.dims, sched, source, None),
                                 sched.dims[0])

        # DEC's rounds as ClusterRun runs them, from k-means' start (one restart:
        # its result matters no more than the weights' do); the best of 3, as
        # the stages: all of the schedule's rounds but its first run warm.
        run = ClusterRun(tmp / "dec_run", source, x, 10, sched.override(kmeans_restarts=1),
                         log=lambda *_: None, progress=False)
        state = run.start(tmp / "ae.caffemodel")
        rounds = []
        for _ in range(3):
            started = time.perf_counter()
            _, q = run.assign(run.dir / state["weights"])
            embedded = time.perf_counter()
            run.store_target(q)
            targeted = time.perf_counter()
            out, _ = run.train(state)
            finished = time.perf_counter()
            rounds.append((finished - started, embedded - started, targeted - embedded,
                           finished - targeted))
            state.update(round=state["round"] + 1, weights=out.name,
                         seek=run.next_seek(state["seek"]))
        dec_round, embed_s, target_s, train_s = min(rounds)
        trip_after = core_round_trip_ns(round_trip)

    caffe_gflops, report = blas_report()
    print(f"DEC on {n} x {sched.dims[0]}, net {'-'.join(map(str, sched.dims))}, batch "
          f"{sched.batch_size}, CPU ({epoch_iters} iterations per epoch)")
    print(report)
    drift = caffe_gflops / sgemm_before - 1
    print(f"  sgemm {sgemm_before:.0f} GFLOPS before the stages, {caffe_gflops:.0f} after"
          + (f": this machine changed speed by {drift:+.0%} while it ran; the shares are "
             "uncertain by as much" if abs(drift) > 0.1 else "")
          + "; the bound below is the faster")
    if trip_before and trip_after:
        print(f"  a cache line's round trip between this process's first two CPUs: "
              f"{trip_before:.0f} ns before the stages, {trip_after:.0f} after (our 2-vCPU "
              "EPYC VM: ~100 when the hypervisor keeps both on one die, ~430 when not — "
              "then OpenBLAS's two threads wait longer and fine-tuning takes ~25 % more)")
    else:
        print("  the round trip between two CPUs was not measured (it needs two CPUs and a "
              "C compiler that builds dec/bench/core_round_trip.c)")
    # The faster of the two: as every time here, the best run is the least disturbed.
    bound = max(caffe_gflops, sgemm_before) * 1e9
    b = sched.batch_size
    print(f"  {'stage':<20} {'ms/it':>6} {'GFLOP/it':>8} {'bound ms':>8} {'share':>5}"
          f"  {'DEC net GFLOP':>13} {'share':>5}  {'IPs alone ms':>12} {'share':>5}"
          f" {'rest ms':>7}")
    rows = [(f"pretraining layer {i + 1}", s, stage_flops(sched.dims, b, i),
             stage_flops(sched.dims, b, i, frozen_forward=True)) for i, s in enumerate(per_layer)]
    rows.append(("fine-tuning", finetune, stage_flops(sched.dims, b), stage_flops(sched.dims, b)))
    for name, (seconds, alone), flops, dec_flops in rows:
        print(f"  {name:<20} {seconds * 1e3:6.2f} {flops / 1e9:8.3f} {flops / bound * 1e3:8.2f} "
              f"{flops / bound / seconds:5.0%}  {dec_flops / 1e9:13.3f} "
              f"{dec_flops / bound / seconds:5.0%}  {alone * 1e3:12.2f} "
              f"{flops / bound / alone:5.0%} {(seconds - alone) * 1e3:7.2f}")
    round_flops = dec_round_flops(sched.dims, n, b, sched.update_interval)
    print(f"  {'DEC round':<20} {dec_round * 1e3:6.0f} {round_flops / 1e9:8.1f} "
          f"{round_flops / bound * 1e3:8.0f} {round_flops / bound / dec_round:5.0%}"
          "  (ms the best of 3 rounds: embed {} and soft assignment {:.0f}, target "
          "distribution and its store {:.0f}, the solver, its {} iterations and the weights' "
          "save {:.0f})".format(n, embed_s * 1e3, target_s * 1e3, sched.update_interval,
                                train_s * 1e3))
    print("  IPs alone: the stage's learning InnerProduct layers, forward and backward, on "
          "an Input (the ceiling of this BLAS at these shapes); rest: data, dropout, ReLU, "
          "loss, the update")
    rounds = recorded_rounds()
    pretrain_min = sched.pretrain_iter * sum(s for s, _ in per_layer) / 60
    finetune_min = sched.finetune_iter * finetune[0] / 60
    dec_min = rounds * dec_round / 60
    print(f"  paper schedule, projected: pretraining {pretrain_min:.1f} min (4 x "
          f"{sched.pretrain_iter} iterations), fine-tuning {finetune_min:.1f} min "
          f"({sched.finetune_iter}), DEC {dec_min:.1f} min ({rounds} rounds, the recorded "
          f"mnist run's): {pretrain_min + finetune_min + dec_min:.0f} min")
    ceiling_min = (sched.pretrain_iter * sum(a for _, a in per_layer)
                   + sched.finetune_iter * finetune[1]) / 60
    print(f"  the same schedule if pretraining and fine-tuning took their InnerProducts' "
          f"time alone: {ceiling_min + dec_min:.0f} min")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"  peak memory of this process: {peak:.0f} MiB")
    if args.torch:
        print("PyTorch, the same net (dec/bench/torch_reference.py), on the same cores:",
              flush=True)
        subprocess.run([args.torch, str(Path(__file__).with_name("torch_reference.py"))],
                       check=False)


def sgemm_gflops(multiply, n=2000, repeats=3):
    """Best of `repeats` n x n x n float32 products."""
    best = min(_timed(multiply) for _ in range(repeats))
    return 2 * n ** 3 / best / 1e9


def _timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def caffe_sgemm_gflops(n=2000):
    """Caffe's own sgemm speed: an n x n x n InnerProduct forward, best of 3."""
    caffe = import_caffe()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        net_file = Path(tmp) / "ip.prototxt"
        net_file.write_text(
            f'layer {{ name: "d" type: "Input" top: "d" input_param {{ shape {{ dim: {n} '
            f'dim: {n} }} }} }}\nlayer {{ name: "ip" type: "InnerProduct" bottom: "d" '
            f'top: "ip" inner_product_param {{ num_output: {n} bias_term: false }} }}\n')
        net = caffe.Net(str(net_file), caffe.TEST)
    net.params["ip"][0].data[...] = rng.normal(size=(n, n))
    net.blobs["d"].data[...] = rng.normal(size=(n, n))
    return sgemm_gflops(net.forward, n)


def build_core_round_trip(out_dir):
    """core_round_trip.c built with the system's C compiler into out_dir: the
    program's path, or None without two CPUs to run it on or a compiler that
    builds it."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if len(os.sched_getaffinity(0)) < 2 or not compiler:
        return None
    program = Path(out_dir) / "core_round_trip"
    try:
        subprocess.run([compiler, "-O2", "-pthread", "-o", str(program), str(CORE_ROUND_TRIP)],
                       check=True, capture_output=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return program


def core_round_trip_ns(program, trips=200000):
    """A cache line's round trip between two threads pinned to this process's
    first two CPUs, in ns, or None without the program or where it fails."""
    if program is None:
        return None
    cpus = sorted(os.sched_getaffinity(0))
    try:
        out = subprocess.run([str(program), str(cpus[0]), str(cpus[1]), str(trips)],
                             check=True, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    return float(out.stdout)


def blas_report(n=2000):
    """(Caffe's sgemm GFLOPS, a line: which OpenBLAS kernel Caffe runs, its
    sgemm GFLOPS beside numpy's)."""
    import threadpoolctl
    caffe_gflops = caffe_sgemm_gflops(n)
    rng = np.random.default_rng(0)
    a = rng.normal(size=(n, n)).astype(np.float32)
    b = rng.normal(size=(n, n)).astype(np.float32)
    numpy_gflops = sgemm_gflops(lambda: a @ b, n)
    numpy_blas = next((f"{i['internal_api']} {i['version']} {i.get('architecture', '?')}"
                       for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"
                       and "numpy" in i["filepath"]), "?")
    chosen = blas_env().get("OPENBLAS_CORETYPE")
    return caffe_gflops, (
        f"  BLAS: Caffe's OpenBLAS kernel {blas_core()}"
        + (f" (OPENBLAS_CORETYPE={chosen} chosen for this CPU)" if chosen else "")
        + f", sgemm {n}^3 {caffe_gflops:.0f} GFLOPS; numpy ({numpy_blas}) "
        f"{numpy_gflops:.0f} GFLOPS")


if __name__ == "__main__":
    main()
