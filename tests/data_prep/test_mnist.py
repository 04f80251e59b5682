"""All 70 000 MNIST digits from files, checked by content (#24): the loader
against the files' own bytes, a wrong or cut file as one line naming it."""
import gzip

import numpy as np

from data_prep import datasets
from data_prep.__main__ import main as data_main

# MNIST's first labels, train and test (yann.lecun.com's files, as every loader reads them).
FIRST_TRAIN_LABELS = [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
FIRST_TEST_LABELS = [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


def raw(folder, stem):
    path = folder / stem
    return path.read_bytes() if path.exists() else gzip.open(f"{path}.gz").read()


def test_all_of_mnist_is_train_then_test_as_its_files_hold_them(mnist_dir):
    mnist = datasets.load_mnist_folder(mnist_dir, "mnist")
    assert mnist.images.shape == (70000, 28, 28, 1) and mnist.n_train == 60000
    assert mnist.labels[:10].tolist() == FIRST_TRAIN_LABELS
    assert mnist.labels[60000:60010].tolist() == FIRST_TEST_LABELS
    assert np.bincount(mnist.labels[:60000]).tolist() == TRAIN_COUNTS
    # pixels at a known index from the files' own bytes (16-byte header, row-major)
    train = raw(mnist_dir, "train-images-idx3-ubyte")
    test = raw(mnist_dir, "t10k-images-idx3-ubyte")
    assert mnist.images[123, :, :, 0].tobytes() == train[16 + 123 * 784:16 + 124 * 784]
    assert mnist.images[60000 + 9999, :, :, 0].tobytes() == test[16 + 9999 * 784:]
    assert mnist.images[0, 5:10, 10:15, 0].sum() > 0 and mnist.images[0, 0].sum() == 0


def test_raw_files_and_any_gzip_are_read_a_wrong_or_cut_one_is_one_line(mnist_dir, tmp_path,
                                                                        capsys):
    folder = tmp_path / "idx"
    folder.mkdir()
    for stem in datasets.MNIST_FILES.values():       # raw, and one re-gzipped at level 1
        (folder / stem).write_bytes(raw(mnist_dir, stem))
    (folder / "t10k-labels-idx1-ubyte").unlink()
    with gzip.open(folder / "t10k-labels-idx1-ubyte.gz", "wb", compresslevel=1) as f:
        f.write(raw(mnist_dir, "t10k-labels-idx1-ubyte"))
    assert datasets.load_mnist_folder(folder, "mnist").labels[60000:60010].tolist() == \
        FIRST_TEST_LABELS
    labels = folder / "t10k-labels-idx1-ubyte.gz"
    whole = labels.read_bytes()
    labels.write_bytes(whole[:len(whole) // 2])        # half downloaded
    assert data_main(["data", "mnist", "--mnist-dir", str(folder), "--out",
                      str(tmp_path / "data")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "t10k-labels-idx1-ubyte.gz: a damaged or cut-short" in err
    labels.unlink()                                   # another data set's labels
    labels.with_suffix("").write_bytes(bytes([0, 0, 8, 1, 0, 0, 39, 16]) + bytes(10000))
    assert data_main(["data", "mnist", "--mnist-dir", str(folder), "--out",
                      str(tmp_path / "data")]) == 2
    err = capsys.readouterr().err
    assert "t10k-labels-idx1-ubyte: its content's MD5 is" in err and "not MNIST's 27ae3e" in err
    assert not (tmp_path / "data" / "mnist_total").exists()


def test_reproduce_mnist_with_a_wrong_input_is_one_line(tmp_path, capsys):
    from dec.__main__ import main as dec_main
    (tmp_path / "empty").mkdir()
    for wrong in (tmp_path / "empty", tmp_path / "nowhere"):
        assert dec_main(["reproduce", "mnist", "--input", str(wrong), "--data",
                         str(tmp_path / "data"), "--runs", str(tmp_path / "runs")]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and "Traceback" not in err, err
        assert str(wrong) in err
