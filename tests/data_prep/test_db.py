"""LevelDB stores of Caffe Datums (written without Caffe) and IDX files."""
import numpy as np
import pytest

from data_prep import datasets, db
from tests.helpers import read_with_caffe


def test_db_round_trip_float_and_uint8(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(37, 11)).astype(np.float32)
    y = rng.integers(0, 5, size=37)
    assert db.write_db(tmp_path / "f", x, y) == 37
    x2, y2 = db.read_db(tmp_path / "f")
    np.testing.assert_array_equal(x2, x)
    np.testing.assert_array_equal(y2, y)
    images = rng.integers(0, 256, size=(9, 3, 5, 4), dtype=np.uint8)
    db.write_db(tmp_path / "u", images)
    images2, _ = db.read_db(tmp_path / "u")
    np.testing.assert_array_equal(images2, images)
    # DEC's key format: zero-padded, so byte order is sample order.
    import plyvel
    store = plyvel.DB(str(tmp_path / "f"))
    keys = [k for k, _ in store.iterator()]
    store.close()
    assert keys[:3] == [b"00000000", b"00000001", b"00000002"]


def test_update_db_rotates_keys_like_dec_py(tmp_path):
    db.write_db(tmp_path / "d", np.zeros((5, 2), np.float32))
    db.update_db(tmp_path / "d", np.array([[1, 1], [2, 2]], np.float32), seek=4, total=5)
    x, _ = db.read_db(tmp_path / "d")
    np.testing.assert_array_equal(x[:, 0], [2, 0, 0, 0, 1])   # keys 4 then 0


def test_write_db_is_atomic_on_failure(tmp_path):
    db.write_db(tmp_path / "d", np.ones((3, 2), np.float32))

    def broken():
        yield np.zeros(2, np.float32)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        db.write_db(tmp_path / "d", broken())
    x, _ = db.read_db(tmp_path / "d")
    np.testing.assert_array_equal(x, np.ones((3, 2)))   # the old store is intact
    assert [p.name for p in tmp_path.iterdir()] == ["d"]  # no temporary left


@pytest.mark.caffe
def test_caffe_data_layer_reads_what_we_wrote(tmp_path):
    images = np.arange(6 * 2 * 3 * 4, dtype=np.uint8).reshape(6, 2, 3, 4)
    labels = np.array([3, 1, 4, 1, 5, 9])
    db.write_db(tmp_path / "img", images, labels)
    data, label = read_with_caffe(tmp_path / "img", 6)
    np.testing.assert_array_equal(data, images.astype(np.float32))
    np.testing.assert_array_equal(label, labels)


@pytest.mark.caffe
def test_our_datum_is_caffes_datum():
    """data_prep.datum builds caffe.Datum from caffe.proto's field list: the
    same fields, numbers, types and labels as pycaffe's, and records written
    by one parse in the other."""
    from data_prep.datum import Datum
    from dec import engine
    theirs = engine.import_caffe().proto.caffe_pb2.Datum
    fields = lambda d: sorted((f.name, f.number, f.type, f.label) for f in d.fields)
    assert fields(Datum.DESCRIPTOR) == fields(theirs.DESCRIPTOR)
    ours = db.to_datum(np.arange(6, dtype=np.float32), label=7)
    parsed = theirs.FromString(ours.SerializeToString())
    assert list(parsed.float_data) == list(range(6)) and parsed.label == 7
    assert (parsed.channels, parsed.height, parsed.width) == (6, 1, 1)
    # Ours writes float_data packed (Caffe reads either form); the records
    # caffe.io.array_to_datum writes, unpacked, read back the same.
    unpacked = theirs(channels=6, height=1, width=1, label=7, float_data=range(6))
    assert Datum.FromString(unpacked.SerializeToString()) == ours
    assert len(ours.SerializeToString()) < len(unpacked.SerializeToString())


def test_float_data_is_written_packed():
    """One length-prefixed run of little-endian floats (field 6, wire type 2),
    not a tag before every float: what Caffe's Data layer parses as one copy."""
    x = np.array([1.5, -2.0, 0.0, 3.25], np.float32)
    raw = db.to_datum(x).SerializeToString()
    run = bytes([6 << 3 | 2, 4 * len(x)]) + x.astype("<f4").tobytes()
    assert run in raw
    np.testing.assert_array_equal(db.from_datum(db.Datum.FromString(raw)), x)


def test_float_records_are_to_datums_bytes_all_at_once():
    """float_records builds N records at once: byte for byte what to_datum
    serializes sample by sample — any shape, labels that vary (negative ones
    take a 10-byte varint), float64 input rounded to float32 as to_datum does,
    infinities, -0 and a subnormal."""
    rng = np.random.default_rng(3)
    cases = [(rng.normal(size=(50, 10)).astype(np.float32), None),
             (rng.normal(size=(40, 3, 4)).astype(np.float32), rng.integers(-3, 300, 40)),
             (rng.normal(size=(7, 784)), np.array([0, 1, 2 ** 31 - 1, -2 ** 31, 5, 5, 0]))]
    for x, labels in cases:
        x.flat[:4] = [np.inf, -0.0, 1e-45, -np.inf]
        want = [db.to_datum(x[i], 0 if labels is None else labels[i]).SerializeToString()
                for i in range(len(x))]
        assert db.float_records(x, labels) == want
    with pytest.raises(ValueError, match="3 samples but 2 labels"):
        db.float_records(np.zeros((3, 2), np.float32), [0, 1])


def test_write_db_stores_float_arrays_as_to_datum_would(tmp_path):
    """write_db's path for a float array (a write batch of records at a
    time) and its one-by-one path for an iterable of samples give the same
    store, key for key, across a batch's end."""
    import plyvel
    rng = np.random.default_rng(4)
    n = db.WRITE_BATCH + 5
    x = rng.normal(size=(n, 3)).astype(np.float32)
    y = rng.integers(0, 4, size=n)
    db.write_db(tmp_path / "array", x, y, start=5)
    db.write_db(tmp_path / "samples", iter(x), y, start=5)
    stores = [plyvel.DB(str(tmp_path / name)) for name in ("array", "samples")]
    try:
        array, samples = (list(store.iterator()) for store in stores)
    finally:
        for store in stores:
            store.close()
    assert array == samples and len(array) == n and array[0][0] == b"00000005"


def test_a_store_in_the_older_layout_is_told_apart(tmp_path):
    """A store whose float_data carries a tag before every float (data_prep
    before f74e7f6) is found; ours, an image store and an empty one are not.
    The old record holds the same values: Caffe's parser takes either form."""
    import plyvel
    x = np.array([1.5, -2.0, 0.0, 3.25], np.float32)
    unpacked = bytes([1 << 3, 4, 2 << 3, 1, 3 << 3, 1]) + b"".join(
        bytes([6 << 3 | 5]) + v.tobytes() for v in x.astype("<f4"))
    np.testing.assert_array_equal(db.from_datum(db.Datum.FromString(unpacked)), x)
    old = plyvel.DB(str(tmp_path / "old"), create_if_missing=True)
    old.put(db.key(0), unpacked)
    old.close()
    assert db.older_layout(tmp_path / "old")
    db.write_db(tmp_path / "new", x[None])
    assert not db.older_layout(tmp_path / "new")
    db.write_db(tmp_path / "img", np.zeros((1, 2, 2), np.uint8))
    assert not db.older_layout(tmp_path / "img")
    plyvel.DB(str(tmp_path / "empty"), create_if_missing=True).close()
    assert not db.older_layout(tmp_path / "empty")


def test_idx_files_raw_gz_and_truncated(tmp_path):
    import gzip
    import struct
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    raw = struct.pack(">BBBBIII", 0, 0, 8, 3, 2, 3, 4) + images.tobytes()
    (tmp_path / "a-idx3-ubyte").write_bytes(raw)
    with gzip.open(tmp_path / "b-idx3-ubyte.gz", "wb") as f:
        f.write(raw)
    np.testing.assert_array_equal(datasets.read_idx(tmp_path / "a-idx3-ubyte"), images)
    np.testing.assert_array_equal(datasets.read_idx(tmp_path / "b-idx3-ubyte.gz"), images)
    (tmp_path / "c-idx3-ubyte").write_bytes(raw[:-3])
    with pytest.raises(ValueError, match="truncated"):
        datasets.read_idx(tmp_path / "c-idx3-ubyte")
    (tmp_path / "d").write_bytes(b"hello world")
    with pytest.raises(ValueError, match="not an IDX file"):
        datasets.read_idx(tmp_path / "d")
    # a half-downloaded .gz was an EOFError traceback; a gzip by its bytes, not its name
    whole = (tmp_path / "b-idx3-ubyte.gz").read_bytes()
    (tmp_path / "e-idx3-ubyte.gz").write_bytes(whole[:len(whole) // 2])
    with pytest.raises(ValueError, match="e-idx3-ubyte.gz: a damaged or cut-short gzip"):
        datasets.read_idx(tmp_path / "e-idx3-ubyte.gz")
    (tmp_path / "f-idx3-ubyte").write_bytes(whole)
    np.testing.assert_array_equal(datasets.read_idx(tmp_path / "f-idx3-ubyte"), images)
    import hashlib
    assert datasets.read_idx(tmp_path / "f-idx3-ubyte", hashlib.md5(raw).hexdigest()).shape
    with pytest.raises(ValueError, match="f-idx3-ubyte: its content's MD5 is .*, not MNIST's 0+"):
        datasets.read_idx(tmp_path / "f-idx3-ubyte", "0" * 32)


def test_mnist_total_is_train_then_test_in_file_order(tmp_path):
    """DEC's make_mnist_data: mnist_total = concatenate(train, test), not permuted."""
    import gzip
    import struct
    rng = np.random.default_rng(5)
    for prefix, n in (("train", 12), ("t10k", 5)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        with gzip.open(tmp_path / f"{prefix}-images-idx3-ubyte.gz", "wb") as f:
            f.write(struct.pack(">BBBBIII", 0, 0, 8, 3, n, 28, 28) + images.tobytes())
        with gzip.open(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", "wb") as f:
            f.write(struct.pack(">BBBBI", 0, 0, 8, 1, n) + labels.tobytes())
    image_set = datasets.load_mnist_folder(tmp_path, "mnist", md5s={})
    datasets.make_databases(image_set, tmp_path / "data")
    x, y = db.read_db(tmp_path / "data" / "mnist_total")
    np.testing.assert_array_equal(y, image_set.labels)
    np.testing.assert_allclose(x, datasets.features(image_set.images))
    meta = datasets.load_meta(tmp_path / "data", "mnist")
    assert meta["source"] == "mnist" and meta["seed"] is None
    # digits (not DEC's) keep a seeded permutation
    digits = datasets.subset(datasets.load_digits(), 50)
    datasets.make_databases(digits, tmp_path / "data")
    _, y_digits = db.read_db(tmp_path / "data" / "digits50_total")
    assert not np.array_equal(y_digits, digits.labels)


def test_a_float_sample_is_a_d_by_1_by_1_datum_and_an_image_c_h_w():
    """What caffe.io.array_to_datum makes (the Caffe test compares the bytes)."""
    from data_prep import db
    d = db.to_datum(np.arange(6, dtype=np.float32), label=3)
    assert (d.channels, d.height, d.width, d.label) == (6, 1, 1, 3)
    image = db.to_datum(np.zeros((3, 4, 5), np.uint8))
    assert (image.channels, image.height, image.width) == (3, 4, 5) and len(image.data) == 60


def test_a_subset_keeps_each_image_with_its_label():
    from data_prep import datasets
    full = datasets.load_digits()
    part = datasets.subset(full, 300)
    pairs = {(im.tobytes(), int(y)) for im, y in zip(full.images, full.labels)}
    assert all((im.tobytes(), int(y)) in pairs for im, y in zip(part.images, part.labels))
    assert part.n_train == 240 and len(set(part.labels.tolist())) == 10
