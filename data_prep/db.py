"""LevelDB stores of Caffe `Datum` records, laid out as DEC's dec.py writes them.

Keys are DEC's '{:08}' (zero-padded index, so LevelDB's byte order is the
sample order). Float features go to `float_data` as a (D, 1, 1) datum, uint8
images to `data` as (C, H, W) — what caffe.io.array_to_datum makes of them.
Writes are atomic: a new database is built beside the target and renamed over
it, so an interrupt never leaves a half-written store under the real name.
Records are Caffe `Datum`s (data_prep.datum: no Caffe needed to write them).
"""
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import plyvel

from .datum import Datum

KEY_FORMAT = "{:08}"  # dec.py write_db / update_db
WRITE_BATCH = 4096    # records a LevelDB write batch takes
# Blocks stored as they are, not snappy-compressed (LevelDB's default): the
# Data layer reads a batch on the training thread (nets.data_layers), and
# decompressing it took longer than the batch's GEMMs on a small net. Float
# features shrink by half at most; the disk holds the other half.
COMPRESSION = None


def key(index):
    return KEY_FORMAT.format(index).encode()


def to_datum(x, label=0):
    """One sample as a Datum: float → float_data (D,1,1); uint8 → data (C,H,W)."""
    x = np.asarray(x)
    datum = Datum()
    datum.label = int(label)
    if x.dtype == np.uint8:
        if x.ndim == 2:
            x = x[None]
        elif x.ndim != 3:
            x = x.reshape(x.size, 1, 1)
        datum.channels, datum.height, datum.width = x.shape
        datum.data = x.tobytes()
    else:
        datum.channels, datum.height, datum.width = x.size, 1, 1
        datum.float_data.extend(x.astype(np.float32).ravel().tolist())
    return datum


def float_records(samples, labels=None):
    """The serialized Datums of N float samples, as to_datum(x, label) makes
    them, byte for byte, for all N at once: protobuf writes the fields in
    number order, float_data (a packed run of little-endian floats) last, so
    a record is a Datum of zeros with the sample's bytes in place of the
    zeros. Storing DEC's target each round took 0.1 s in to_datum alone."""
    samples = np.asarray(samples)
    n = len(samples)
    rows = np.ascontiguousarray(samples.reshape(n, -1), dtype="<f4").view(np.uint8)
    width = rows.shape[1]
    labels = np.zeros(n, np.int64) if labels is None else np.asarray(labels)
    if len(labels) != n:
        raise ValueError(f"{n} samples but {len(labels)} labels")
    records = [None] * n
    for label in np.unique(labels):
        zeros = to_datum(np.zeros(width // 4, np.float32), label).SerializeToString()
        prefix = np.frombuffer(zeros[:len(zeros) - width], np.uint8)
        where = np.flatnonzero(labels == label)
        block = np.empty((len(where), len(prefix) + width), np.uint8)
        block[:, :len(prefix)] = prefix
        block[:, len(prefix):] = rows[where]
        size = block.shape[1]
        flat = block.tobytes()
        for j, i in enumerate(where):
            records[i] = flat[j * size:(j + 1) * size]
    return records


def from_datum(datum):
    """The array of a Datum: float_data as float32 (D,), data as uint8 (C,H,W)."""
    if len(datum.float_data):
        return np.asarray(datum.float_data, dtype=np.float32)
    return np.frombuffer(datum.data, dtype=np.uint8).reshape(
        datum.channels, datum.height, datum.width)


def _replace(tmp, path):
    path = Path(path)
    old = None
    if path.exists():
        old = path.with_name(path.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        path.rename(old)
    os.rename(tmp, path)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def remove_stale(folder, log=print):
    """Temporary stores a killed writer left in `folder` (<name>.tmp-*). Only
    call while holding the folder's lock (files.locked): no writer is live."""
    for tmp in sorted(Path(folder).glob("*.tmp-*")):
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
            log(f"removed {tmp.name}, left by an interrupted run")


class Writer:
    """Builds a database beside `path` and renames it into place on close();
    on an error (or abort()) the temporary store is removed and `path` keeps
    what it had. Use as a context manager."""

    def __init__(self, path, batch=WRITE_BATCH):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = tempfile.mkdtemp(prefix=self.path.name + ".tmp-", dir=self.path.parent)
        self.db = plyvel.DB(self.tmp, create_if_missing=True, compression=COMPRESSION)
        self.batch_size = batch
        self.wb = self.db.write_batch()
        self.count = 0

    def put(self, index, x, label=0):
        self.put_record(index, to_datum(x, label).SerializeToString())

    def put_record(self, index, record):
        """A serialized Datum (float_records) under key(index)."""
        self.wb.put(key(index), record)
        self.count += 1
        if self.count % self.batch_size == 0:
            self.wb.write()
            self.wb = self.db.write_batch()

    def append(self, x, label=0):
        self.put(self.count, x, label)

    def close(self):
        self.wb.write()
        # Every record into sorted tables now, with our options: left in the
        # log, or in level-0 tables that trigger a compaction, they would be
        # rewritten when Caffe opens the store — with its default, snappy.
        self.db.compact_range()
        self.db.close()
        _replace(self.tmp, self.path)

    def abort(self):
        if not self.db.closed:
            self.db.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, kind, value, tb):
        if kind is None:
            self.close()
        else:
            self.abort()
        return False


def write_db(path, samples, labels=None, start=0):
    """Write samples (N x ... array, or an iterable of arrays) atomically.

    Records get keys start, start+1, ... Returns the number written."""
    with Writer(path) as writer:
        if isinstance(samples, np.ndarray) and np.issubdtype(samples.dtype, np.floating) \
                and samples.ndim > 1 and samples.size:
            if labels is not None and len(labels) != len(samples):
                raise ValueError(f"{path}: {len(samples)} samples but {len(labels)} labels")
            # A write batch of records at a time: memory stays that of one batch.
            for first in range(0, len(samples), writer.batch_size):
                last = first + writer.batch_size
                records = float_records(samples[first:last],
                                        None if labels is None else labels[first:last])
                for i, record in enumerate(records, start + first):
                    writer.put_record(i, record)
        else:
            for i, x in enumerate(samples):
                writer.put(start + i, x, 0 if labels is None else labels[i])
        if labels is not None and len(labels) != writer.count:
            raise ValueError(f"{path}: {writer.count} samples but {len(labels)} labels")
    return writer.count


def update_db(path, samples, seek, total, labels=None):
    """dec.py's update_db: sample i goes to key (i + seek) % total, in an
    existing database. One LevelDB write batch: all of it lands, or none."""
    store = plyvel.DB(str(path), create_if_missing=False, compression=COMPRESSION)
    try:
        with store.write_batch(transaction=True) as batch:
            for i, x in enumerate(samples):
                label = 0 if labels is None else labels[i]
                batch.put(key((i + seek) % total), to_datum(x, label).SerializeToString())
    finally:
        store.close()


def read_db(path, limit=None):
    """All records in key order: (array of samples, array of int labels)."""
    path = Path(path)
    if not (path / "CURRENT").exists():
        raise FileNotFoundError(f"no LevelDB database at {path}")
    from google.protobuf.message import DecodeError
    xs, ys = [], []
    try:
        db = plyvel.DB(str(path), create_if_missing=False)
        try:
            datum = Datum()
            for i, (_, value) in enumerate(db.iterator()):
                if limit is not None and i >= limit:
                    break
                datum.ParseFromString(value)
                xs.append(from_datum(datum))
                ys.append(datum.label)
        finally:
            db.close()
    except (plyvel.Error, DecodeError) as err:
        raise ValueError(f"{path} is not a readable database of Caffe Datums "
                         f"({err.__class__.__name__}: {err})") from None
    if not xs:
        raise ValueError(f"{path} is empty")
    return np.stack(xs), np.asarray(ys, dtype=np.int64)


def reader_copy(path, dest):
    """A private copy of LevelDB `path` at `dest` for one reader (a DEC run):
    LevelDB lets one process open a store at a time, readers too, so two runs
    on one data folder each read their own. Table files (.ldb, .sst) are never
    changed once written, so they are hard-linked (copied across file
    systems); the few small files LevelDB rewrites are copied. Returns dest."""
    path, dest = Path(path), Path(dest)
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for item in path.iterdir():
        if item.name == "LOCK" or not item.is_file():
            continue
        if item.suffix in (".ldb", ".sst"):
            try:
                os.link(item, dest / item.name)
                continue
            except OSError:
                pass
        shutil.copy2(item, dest / item.name)
    return dest


def older_layout(path):
    """Whether the store's first record carries float_data a tag a float: the
    layout data_prep wrote before it packed float_data and kept blocks
    uncompressed (commit f74e7f6). Caffe's Data layer reads such a store
    several times slower (dec/bench/README.md); writing it again gives the
    same values. Opens `path` (a reader's copy: LevelDB may write on open)."""
    store = plyvel.DB(str(path), create_if_missing=False)
    try:
        value = next(store.iterator(include_key=False), None)
    finally:
        store.close()
    if value is None:
        return False
    datum = Datum.FromString(value)
    return len(datum.float_data) > 0 and len(datum.SerializeToString()) < len(value)


def count_db(path):
    db = plyvel.DB(str(path), create_if_missing=False)
    try:
        return sum(1 for _ in db.iterator(include_value=False))
    finally:
        db.close()
