"""make bench-caffenet: CaffeNet (4 outputs) forward and forward+backward
images/s on the CPU at batch 50, random input."""
import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from ..caffenet import nets as caffenet
from ..engine import import_caffe


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    caffe = import_caffe()
    caffe.set_mode_cpu()
    text = (f'name: "bench"\n'
            f'layer {{ name: "data" type: "Input" top: "data" top: "label"\n'
            f"  input_param {{ shape {{ dim: {args.batch} dim: 3 dim: {caffenet.CROP} "
            f"dim: {caffenet.CROP} }} shape {{ dim: {args.batch} }} }} }}\n"
            + caffenet.body(4)
            + f'layer {{ name: "loss" type: "SoftmaxWithLoss" bottom: "{caffenet.LAST_LAYER}" '
              f'bottom: "label" top: "loss" }}\n')
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.prototxt"
        path.write_text(text)
        net = caffe.Net(str(path), caffe.TRAIN)
    rng = np.random.default_rng(0)
    net.blobs["data"].data[...] = rng.normal(0, 50, net.blobs["data"].data.shape)
    net.blobs["label"].data[...] = rng.integers(0, 4, args.batch)

    def best(fn):
        fn()
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return min(times)

    forward = best(net.forward)
    both = best(lambda: (net.forward(), net.backward()))
    print(f"CaffeNet, batch {args.batch}, CPU (best of {args.repeats}):")
    print(f"  forward:          {forward:6.2f} s/batch, {args.batch / forward:6.1f} images/s")
    print(f"  forward+backward: {both:6.2f} s/batch, {args.batch / both:6.1f} images/s")


if __name__ == "__main__":
    main()
