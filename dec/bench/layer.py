"""make bench-layer: MultiTLoss forward+backward on CPU, Caffe against NumPy.

M = 70000 samples (all of MNIST), K = 10, C = 10, as DEC computes q over a
whole data set. Prints seconds per forward+backward for both, in one run.
"""
import argparse
import resource
import time

import numpy as np

from .. import engine, multi_t


def best_of(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times), float(np.median(times))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=70000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    caffe = engine.import_caffe()
    caffe.set_mode_cpu()
    m, k, c = args.samples, 10, 10
    rng = np.random.default_rng(0)
    z = rng.normal(size=(m, k)).astype(np.float32)
    mu = rng.normal(size=(k, c)).astype(np.float32)
    q, _ = multi_t.soft_assignment(z.astype(np.float64), mu.astype(np.float64))
    p = multi_t.target_distribution(q).astype(np.float32)

    net = caffe.Net(str(engine.MODELS / "multi_t_loss" / "multi_t_loss.prototxt"), caffe.TRAIN)
    net.blobs["z"].reshape(m, k)
    net.blobs["p"].reshape(m, c)
    net.reshape()
    net.blobs["z"].data[...] = z
    net.blobs["p"].data[...] = p
    net.params["loss"][0].data[...] = mu.reshape(net.params["loss"][0].data.shape)

    def caffe_step():
        net.forward()
        net.backward()

    def numpy_step():
        multi_t.loss_and_gradients(z, p, mu)

    caffe_step()
    numpy_step()
    caffe_best, caffe_median = best_of(caffe_step, args.repeats)
    numpy_best, numpy_median = best_of(numpy_step, args.repeats)
    print(f"MultiTLoss forward+backward, M={m} K={k} C={c}, CPU, best of {args.repeats}")
    print(f"  caffe  {caffe_best * 1e3:8.2f} ms  (median {caffe_median * 1e3:.2f} ms)")
    print(f"  numpy  {numpy_best * 1e3:8.2f} ms  (median {numpy_median * 1e3:.2f} ms)")
    print(f"  caffe is {numpy_best / caffe_best:.1f}x the speed of numpy")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"  peak memory of this process: {peak:.0f} MiB")


if __name__ == "__main__":
    main()
