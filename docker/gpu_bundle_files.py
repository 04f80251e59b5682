"""The nets, solvers and LevelDBs that `make gpu-check` runs on the lent GPU
machine (docker/gpu_bundle.sh packs them; docker/gpu_check.py runs them).

Generated from the one definition of each net (dec/nets.py, dec/caffenet/nets.py),
with paths relative to the bundle's root, where the check runs `caffe`:

  nets/ae_time.prototxt        DEC's autoencoder (784-500-500-2000-10), batch 256, DummyData
  nets/caffenet_time.prototxt  CaffeNet with 4 outputs, batch 50, DummyData
  nets/ae_solver.prototxt      fine-tuning the autoencoder on data/mnist5k_total (DEC's solver)
  nets/dec_solver.prototxt     DEC's clustering net (MultiTLoss) on the same digits, towards
                               the targets in data/target (DEC's clustering solver)
  data/mnist5k_total, data/target

No layer of these nets draws random numbers while training (no dropout), and
Caffe's fillers run on the CPU from the solver's seed: the CPU and the GPU
start from the same weights, so their losses may differ only by float
rounding. The targets are the digits' labels, smoothed (0.91 for the label,
0.01 for each other class): a fixed target distribution, as one DEC round has.

  python docker/gpu_bundle_files.py OUT_DIR [--iterations 300]
"""
import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from data_prep import datasets, db  # noqa: E402
from dec import nets  # noqa: E402
from dec.caffenet import nets as caffenet  # noqa: E402

CAFFENET_BATCH = 50
N_CLASSES = 10


def dummy(top, *shape, value):
    """DummyData of a constant, which Caffe fills once: a random filler refills
    every forward, on the CPU (CaffeNet's 7.7 M Gaussian draws took 66 of its
    78 ms a forward on the H200)."""
    dims = " ".join(f"dim: {d}" for d in shape)
    return (f'layer {{ name: "{top}" type: "DummyData" top: "{top}"\n'
            f'  dummy_data_param {{ shape {{ {dims} }} data_filler {{ type: "constant" '
            f"value: {value} }} }} }}\n")


def time_nets(sched):
    """Data from DummyData: `caffe time` measures the layers, not a database
    or a random number generator."""
    ae = ("name: \"ae_time\"\n" + dummy("data", sched.batch_size, sched.dims[0], value=0.5)
          + nets.autoencoder_net(sched.dims, sched, None, None).split("\n", 1)[1])
    cnet = ('name: "caffenet_time"\n' + dummy("data", CAFFENET_BATCH, 3, caffenet.CROP,
                                              caffenet.CROP, value=0.5)
            + dummy("label", CAFFENET_BATCH, value=0) + caffenet.body(4)
            + f'layer {{ name: "loss" type: "SoftmaxWithLoss" bottom: "{caffenet.LAST_LAYER}" '
              f'bottom: "label" top: "loss" }}\n')
    return {"nets/ae_time.prototxt": ae, "nets/caffenet_time.prototxt": cnet}


def train_nets(sched, iterations):
    sched = sched.override(display=10, update_interval=iterations)
    files = {
        "nets/ae_train.prototxt": nets.autoencoder_net(sched.dims, sched, "data/mnist5k_total",
                                                       None),
        "nets/dec_train.prototxt": nets.dec_net(sched.dims, N_CLASSES, sched,
                                                "data/mnist5k_total", "data/target",
                                                db.KEY_FORMAT.format(0)),
    }
    files["nets/ae_solver.prototxt"] = nets.pretrain_solver(
        "nets/ae_train.prototxt", sched, "out/ae", iterations)
    files["nets/dec_solver.prototxt"] = nets.dec_solver("nets/dec_train.prototxt", sched,
                                                        "out/dec")
    return files


def smoothed_targets(labels, n_classes=N_CLASSES, on=0.91):
    p = np.full((len(labels), n_classes), (1 - on) / (n_classes - 1), np.float32)
    p[np.arange(len(labels)), labels] = on
    return p


def write(out, iterations=300):
    out = Path(out)
    sched = nets.PAPER
    for name, text in {**time_nets(sched), **train_nets(sched, iterations)}.items():
        path = out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    digits = datasets.load_mnist5k()
    (out / "data").mkdir(exist_ok=True)
    (out / "out").mkdir(exist_ok=True)
    db.write_db(out / "data" / "mnist5k_total", datasets.features(digits.images), digits.labels)
    db.write_db(out / "data" / "target", smoothed_targets(digits.labels))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out")
    p.add_argument("--iterations", type=int, default=300, help="caffe train iterations (300)")
    a = p.parse_args(argv)
    write(a.out, a.iterations)


if __name__ == "__main__":
    main()
