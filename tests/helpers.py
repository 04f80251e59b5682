"""Helpers shared by the tests."""
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from data_prep.datasets import SHAPE_COLOURS, shape_image

COLOURS = {name: SHAPE_COLOURS[colour] for name, colour in
           (("heritage", "red"), ("being", "green"), ("scenery", "blue"))}


def make_images(folder, per_class=12, sizes=((64, 48), (66, 50), (90, 60)), prefixes=True):
    """Coloured rectangles and noise; file names <class>_<n>.jpg (or class folders)."""
    rng = np.random.default_rng(0)
    paths = []
    for label, colour in COLOURS.items():
        for i in range(per_class):
            target = (folder / f"{label}_{i:03d}.jpg" if prefixes
                      else folder / label / f"{i:03d}.jpg")
            target.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(shape_image(rng, sizes[i % len(sizes)], colour)).save(target,
                                                                                 quality=95)
            paths.append(target)
    return paths


def read_with_caffe(source, batch, backend="LEVELDB"):
    """One batch of Caffe's own Data layer over a database: (data, label) arrays."""
    from dec import engine
    caffe = engine.import_caffe()
    with tempfile.TemporaryDirectory() as tmp:
        net_file = Path(tmp) / "read.prototxt"
        net_file.write_text(
            f'layer {{ name: "d" type: "Data" top: "data" top: "label" '
            f'data_param {{ source: "{source}" backend: {backend} batch_size: {batch} }} }}\n')
        net = caffe.Net(str(net_file), caffe.TEST)
    net.forward()
    return net.blobs["data"].data.copy(), net.blobs["label"].data.copy()


def make_dec_run(folder, clusters=3, per_cluster=12, seed=0):
    """A run folder as `python -m dec run` leaves it, for what reads one
    (results.json, predictions.csv, q.npy, classes_<db>/<cluster>/<index>.jpg);
    the clusters are the three colours of make_images."""
    import csv
    import json
    rng = np.random.default_rng(seed)
    n = clusters * per_cluster
    cluster = np.arange(n) % clusters
    q = rng.dirichlet(np.ones(clusters), n).astype(np.float32)
    q[np.arange(n), cluster] += 1.0                   # each sample's own cluster highest
    q /= q.sum(axis=1, keepdims=True)
    colours = list(COLOURS.values())
    for i, c in enumerate(cluster):
        path = folder / "classes_toy" / str(c) / f"{i}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(shape_image(rng, (64, 48), colours[c % len(colours)])).save(path)
    np.save(folder / "q.npy", q)
    with open(folder / "predictions.csv", "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["index", "cluster", "q", "label"])
        out.writerows([i, c, f"{q[i, c]:.4f}", c] for i, c in enumerate(cluster))
    (folder / "results.json").write_text(json.dumps(
        {"dataset": "toy", "clusters": clusters, "samples": n,
         "outputs": {"classes": str(folder / "classes_toy")}}))
    return folder


def ctrl_c_able():
    """Popen's options for a child that a test stops with SIGINT: Ctrl-C
    reaches it even when the test run itself started with SIGINT ignored (a
    background job of a non-interactive shell passes SIG_IGN down, and Python
    then installs no KeyboardInterrupt handler)."""
    import signal
    return {"preexec_fn": lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)}
