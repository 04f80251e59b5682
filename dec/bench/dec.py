"""make bench-dec: DEC's costs on this machine, on 70000 x 784 (Fashion-MNIST).

Prints seconds per pretraining epoch (all four layer-wise stages), per
fine-tuning epoch and per DEC round (embedding all samples, computing the
target, `update_interval` iterations), with the peak memory of the process.
An epoch here is 70000 samples at batch 256 (274 iterations).
"""
import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from data_prep import datasets, db
from data_prep.caffe_tools import blas_core, blas_env

from .. import multi_t, nets, solve
from ..autoencoder import embed
from ..engine import import_caffe


def iteration_seconds(solver_file, iters, warmup=5):
    caffe = import_caffe()
    solver = caffe.SGDSolver(str(solver_file))
    solver.step(warmup)
    start = time.perf_counter()
    solver.step(iters)
    seconds = (time.perf_counter() - start) / iters
    del solver
    return seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=40, help="timed iterations per stage")
    args = parser.parse_args(argv)
    sched = nets.PAPER.override(snapshot=0)
    n = 70000
    epoch_iters = -(-n // sched.batch_size)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        image_set = datasets.load_fashion_mnist()
        x = datasets.features(image_set.images)
        db.write_db(tmp / "total", x)
        source = tmp / "total"

        def stage_seconds(name, text):
            (tmp / f"{name}.prototxt").write_text(text)
            (tmp / f"{name}_solver.prototxt").write_text(nets.pretrain_solver(
                tmp / f"{name}.prototxt", sched, tmp / name, 10 ** 6))
            return iteration_seconds(tmp / f"{name}_solver.prototxt", args.iters)

        per_layer = [stage_seconds(f"stack{i + 1}", nets.stack_net(i, sched.dims, sched, source, None))
                     for i in range(len(sched.dims) - 1)]
        finetune = stage_seconds("autoencoder", nets.autoencoder_net(sched.dims, sched, source, None))

        # One DEC round on random centres: embed, target, update_interval iterations.
        (tmp / "deploy.prototxt").write_text(nets.deploy_net(sched.dims, sched))
        (tmp / "ae.prototxt").write_text(nets.autoencoder_net(sched.dims, sched, source, None))
        caffe = import_caffe()
        net = caffe.Net(str(tmp / "ae.prototxt"), caffe.TRAIN)
        solve.save_weights(net, tmp / "ae.caffemodel")
        del net
        start = time.perf_counter()
        features = embed(tmp / "deploy.prototxt", tmp / "ae.caffemodel", x)
        rng = np.random.default_rng(0)
        centres = features[rng.choice(n, 10, replace=False)].T
        q, _ = multi_t.soft_assignment(features, centres)
        db.write_db(tmp / "label", multi_t.target_distribution(q).astype(np.float32))
        (tmp / "dec.prototxt").write_text(nets.dec_net(sched.dims, 10, sched, source,
                                                       tmp / "label", db.KEY_FORMAT.format(0)))
        (tmp / "dec_solver.prototxt").write_text(nets.dec_solver(tmp / "dec.prototxt", sched,
                                                                 tmp / "dec"))
        solver = caffe.SGDSolver(str(tmp / "dec_solver.prototxt"))
        solver.net.copy_from(str(tmp / "ae.caffemodel"))
        solver.step(sched.update_interval)
        del solver
        dec_round = time.perf_counter() - start

    print(f"DEC on {n} x {sched.dims[0]}, net {'-'.join(map(str, sched.dims))}, batch "
          f"{sched.batch_size}, CPU ({epoch_iters} iterations per epoch)")
    for i, s in enumerate(per_layer):
        print(f"  pretraining layer {i + 1}: {s * 1e3:7.1f} ms/iteration, {s * epoch_iters:6.1f} s/epoch")
    print(f"  pretraining, all four layers: {sum(per_layer) * epoch_iters:6.1f} s per epoch")
    print(f"  fine-tuning: {finetune * 1e3:7.1f} ms/iteration, {finetune * epoch_iters:6.1f} s per epoch")
    print(f"  DEC round (embed {n}, target, {sched.update_interval} iterations): {dec_round:6.1f} s")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"  peak memory of this process: {peak:.0f} MiB")
    print(blas_report())


def sgemm_gflops(multiply, n=2000, repeats=3):
    """Best of `repeats` n x n x n float32 products."""
    best = min(_timed(multiply) for _ in range(repeats))
    return 2 * n ** 3 / best / 1e9


def _timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def blas_report(n=2000):
    """Which OpenBLAS kernel Caffe runs, and sgemm GFLOPS beside numpy's."""
    import threadpoolctl
    caffe = import_caffe()
    rng = np.random.default_rng(0)
    a = rng.normal(size=(n, n)).astype(np.float32)
    b = rng.normal(size=(n, n)).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        net_file = Path(tmp) / "ip.prototxt"
        net_file.write_text(
            f'layer {{ name: "d" type: "Input" top: "d" input_param {{ shape {{ dim: {n} '
            f'dim: {n} }} }} }}\nlayer {{ name: "ip" type: "InnerProduct" bottom: "d" '
            f'top: "ip" inner_product_param {{ num_output: {n} bias_term: false }} }}\n')
        net = caffe.Net(str(net_file), caffe.TEST)
    net.params["ip"][0].data[...] = b
    net.blobs["d"].data[...] = a
    caffe_gflops = sgemm_gflops(net.forward, n)
    numpy_gflops = sgemm_gflops(lambda: a @ b, n)
    numpy_blas = next((f"{i['internal_api']} {i['version']} {i.get('architecture', '?')}"
                       for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"
                       and "numpy" in i["filepath"]), "?")
    chosen = blas_env().get("OPENBLAS_CORETYPE")
    return (f"  BLAS: Caffe's OpenBLAS kernel {blas_core()}"
            + (f" (OPENBLAS_CORETYPE={chosen} chosen for this CPU)" if chosen else "")
            + f", sgemm {n}^3 {caffe_gflops:.0f} GFLOPS; numpy ({numpy_blas}) "
            f"{numpy_gflops:.0f} GFLOPS")


if __name__ == "__main__":
    main()
