"""Helpers shared by the tests."""
import tempfile
from pathlib import Path

from dec import engine


def read_with_caffe(source, batch, backend="LEVELDB"):
    """One batch of Caffe's own Data layer over a database: (data, label) arrays."""
    caffe = engine.import_caffe()
    with tempfile.TemporaryDirectory() as tmp:
        net_file = Path(tmp) / "read.prototxt"
        net_file.write_text(
            f'layer {{ name: "d" type: "Data" top: "data" top: "label" '
            f'data_param {{ source: "{source}" backend: {backend} batch_size: {batch} }} }}\n')
        net = caffe.Net(str(net_file), caffe.TEST)
    net.forward()
    return net.blobs["data"].data.copy(), net.blobs["label"].data.copy()
