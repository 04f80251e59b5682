"""#17: one bad file or store is never fatal, a folder being made is never
shared or deleted, a refused command changes nothing. Each test failed on the
code before these fixes."""
import os
import sqlite3
import subprocess
import sys

import numpy as np
import plyvel
import pytest
from PIL import Image

from data_prep import db, files, image_datasets, images, photos
from tests.data_prep.test_safety import png_header_only


def run_cli(*argv):
    return subprocess.run([sys.executable, "-m", *argv], capture_output=True, text=True,
                          timeout=120)


def test_a_header_over_opencvs_limit_and_a_truncated_jpeg_are_unreadable_not_fatal(tmp_path):
    png_header_only(tmp_path / "huge.png", 50000, 50000)          # cv2.imread *raises*
    Image.new("RGB", (64, 48), (10, 200, 30)).save(tmp_path / "good.jpg", quality=90)
    whole = (tmp_path / "good.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(whole[:len(whole) * 2 // 3])  # OpenCV pads it grey
    for name in ("huge.png", "cut.jpg"):
        assert image_datasets.readable_by_caffe(tmp_path / name)
        with pytest.raises(images.Unreadable, match=name):
            images.decode_bgr(tmp_path / name)
    assert image_datasets.readable_by_caffe(tmp_path / "good.jpg") is None
    assert images.decode_bgr(tmp_path / "good.jpg").shape == (48, 64, 3)


def test_a_failed_build_leaves_no_partial_and_a_foreign_partial_is_kept(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="boom"):
        with files.building(out) as partial:
            (partial / "half.jpg").write_bytes(b"x")
            raise RuntimeError("boom")
    assert not out.exists() and not (tmp_path / "out.partial").exists()
    mine = tmp_path / "out.partial"
    mine.mkdir()
    (mine / "notes.txt").write_text("a person's file")
    with pytest.raises(ValueError, match="not made by this tool"):
        with files.building(out):
            pass
    assert (mine / "notes.txt").read_text() == "a person's file"


def test_an_interrupted_build_of_ours_is_started_again(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):                  # Ctrl-C: removed at once
        with files.building(out) as partial:
            (partial / "a.jpg").write_bytes(b"x")
            raise KeyboardInterrupt
    assert not (tmp_path / "out.partial").exists()
    (tmp_path / "out.partial").mkdir()
    (tmp_path / "out.partial" / files.PARTIAL_MARK).touch()
    (tmp_path / "out.partial" / "old.jpg").write_bytes(b"old")    # left by a kill -9 of ours
    with files.building(out) as partial:
        assert sorted(p.name for p in partial.iterdir()) == [files.PARTIAL_MARK]
        (partial / "new.jpg").write_bytes(b"new")
    assert sorted(p.name for p in out.iterdir()) == ["new.jpg"]


def test_two_commands_building_one_folder_the_second_stops(tmp_path):
    out = tmp_path / "out"
    with files.building(out) as partial:
        (partial / "a.jpg").write_bytes(b"first")
        with pytest.raises(files.Busy, match="being made by another command"):
            with files.building(out):
                pass
        assert (partial / "a.jpg").read_bytes() == b"first"
    assert (out / "a.jpg").read_bytes() == b"first"


def test_two_prepares_on_one_folder_the_second_stops(tmp_path):
    (tmp_path / "photos").mkdir()
    for n in range(2):
        Image.new("RGB", (20, 20), (n, 0, 0)).save(tmp_path / "photos" / f"{n}.jpg")
    items = [(tmp_path / "photos" / "0.jpg", "a"), (tmp_path / "photos" / "1.jpg", "b")]
    with files.building(tmp_path / "ds") as partial:
        with pytest.raises(files.Busy):
            image_datasets.prepare(items, tmp_path / "ds")
        assert [p.name for p in partial.iterdir()] == [files.PARTIAL_MARK]
        assert not (tmp_path / "ds").exists()


def test_prepare_hands_caffe_absolute_paths_only(tmp_path, monkeypatch):
    """`prepare --out=-dsx`: a relative folder starting with '-' would be a flag."""
    seen = []
    monkeypatch.setattr(image_datasets, "run_tool", lambda tool, args, log: seen.append(args))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "photos").mkdir()
    for n in range(20):
        Image.new("RGB", (20, 20), (10 * n, 0, 0)).save(tmp_path / "photos" / f"{n}.jpg")
    items = [(tmp_path / "photos" / f"{n}.jpg", "ab"[n % 2]) for n in range(20)]
    image_datasets.prepare(items, "-dsx", log=lambda *a: None)
    paths = [str(a) for args in seen for a in args if not str(a).startswith("--")]
    assert seen and all(p.startswith("/") for p in paths if "dsx" in p)
    assert (tmp_path / "-dsx" / "classes.txt").exists()


def test_a_garbage_manifest_is_one_line_for_every_command(tmp_path):
    folder = tmp_path / "fetched"
    folder.mkdir()
    garbage = b"this is not SQLite " * 100
    (folder / photos.MANIFEST).write_bytes(garbage)
    listing = tmp_path / "photos.txt"
    listing.write_text("uuid|description|lang\n"
                       "0b4a5c38-1f2e-4d6a-9b7c-3e8f0a1d2c4b | a photo | eng\n")
    for argv in (["verify", "--out", str(folder)], ["sample", str(folder), "-n", "2", "--out",
                                                    str(tmp_path / "s")],
                 ["fetch", str(listing), "--out", str(folder)]):
        result = run_cli("data_prep", *argv)
        assert result.returncode == 2, (argv, result.stderr)
        assert result.stderr.startswith("error: ") and "Traceback" not in result.stderr
        assert "not a fetch manifest" in result.stderr, result.stderr
    assert (folder / photos.MANIFEST).read_bytes() == garbage


def test_a_corrupt_database_is_one_line(tmp_path):
    broken = tmp_path / "x_total"
    db.write_db(broken, np.ones((30, 4), np.float32))
    for manifest in broken.glob("MANIFEST-*"):
        manifest.write_bytes(b"\0garbage" * 500)         # LevelDB cannot open it
    foreign = tmp_path / "y_total"
    store = plyvel.DB(str(foreign), create_if_missing=True)
    store.put(b"00000000", b"\xff\xff not a Datum")      # opens, but holds no Datums
    store.close()
    for path in (broken, foreign):
        with pytest.raises(ValueError, match="not a readable database"):
            db.read_db(path)
        result = run_cli("dec", "predict", str(tmp_path), "--db", str(path))
        assert result.returncode == 2 and result.stderr.startswith("error: ")
        assert "not a readable database" in result.stderr and "Traceback" not in result.stderr


def test_a_reader_copy_opens_while_the_store_is_open_elsewhere(tmp_path):
    path = tmp_path / "x_total"
    x = np.arange(40, dtype=np.float32).reshape(10, 4)
    db.write_db(path, x)
    held = plyvel.DB(str(path))                         # another run reading it
    try:
        with pytest.raises(plyvel.IOError):
            plyvel.DB(str(path))                        # why each run reads a copy
        for attempt in range(2):                        # made again over an old copy
            copy = db.reader_copy(path, tmp_path / "run" / "data" / "x_total")
            assert np.array_equal(db.read_db(copy)[0], x)
    finally:
        held.close()
    assert np.array_equal(db.read_db(path)[0], x)


def test_a_command_refused_on_a_corrupt_review_store_is_one_line(tmp_path):
    from tests.helpers import make_dec_run
    run_dir = make_dec_run(tmp_path / "run")
    store = tmp_path / "review.sqlite"
    store.write_bytes(b"garbage" * 1000)
    result = run_cli("dec", "review", str(run_dir), "--labels", str(store))
    assert result.returncode == 2 and result.stderr.startswith("error: ")
    assert "Traceback" not in result.stderr and store.read_bytes() == b"garbage" * 1000
    con = sqlite3.connect(tmp_path / "theirs.sqlite")
    con.execute("CREATE TABLE t (x)")
    con.close()
    result = run_cli("dec", "review", str(run_dir), "--labels", str(tmp_path / "theirs.sqlite"))
    assert result.returncode == 2 and "did not make" in result.stderr


def test_a_labels_csv_reads_the_same_files_everywhere(tmp_path, monkeypatch):
    """Relative paths are relative to the CSV's folder, for prepare and the
    review page alike; Excel's BOM is fine; a row without a label is
    unlabelled (not the class "None")."""
    from data_prep import labels
    from dec.review import sources
    folder = tmp_path / "work"
    (folder / "photos").mkdir(parents=True)
    for n in range(3):
        Image.new("RGB", (20, 20), (n, 0, 0)).save(folder / "photos" / f"{n}.jpg")
    listed = folder / "labels.csv"
    listed.write_bytes("\ufeffpath,label\nphotos/0.jpg,heritage\nphotos/1.jpg,being\n"
                       "photos/2.jpg\n".encode("utf-8"))
    monkeypatch.chdir(tmp_path)                      # not the CSV's folder
    items = labels.read_labels(listed)
    assert items == [(folder / "photos" / "0.jpg", "heritage"),
                     (folder / "photos" / "1.jpg", "being"), (folder / "photos" / "2.jpg", "")]
    assert all(p.exists() for p, _ in items)
    assert sources.open_source(listed).files == [str(p) for p, _ in items]
    with pytest.raises(ValueError, match="1 images have no label"):
        image_datasets.prepare(items, tmp_path / "ds")
    (tmp_path / "elsewhere").mkdir()
    out = labels.write_labels(items[:2], tmp_path / "elsewhere" / "l.csv")
    assert labels.read_labels(out) == items[:2]          # written absolute


def test_one_photo_under_two_names_is_one_image(tmp_path):
    Image.new("RGB", (20, 20)).save(tmp_path / "a.jpg")
    os.link(tmp_path / "a.jpg", tmp_path / "b.jpg")
    logged = []
    kept = image_datasets.unique_items([(tmp_path / "a.jpg", "x"), (tmp_path / "b.jpg", "x")],
                                       logged.append)
    assert kept == [(tmp_path / "a.jpg", "x")] and "the same file" in logged[0]
    with pytest.raises(ValueError, match="labelled both"):
        image_datasets.unique_items([(tmp_path / "a.jpg", "x"), (tmp_path / "b.jpg", "y")])


def test_split_shares_are_rounded_per_class():
    """30 a class at 50/25/25: 15 train, 7.5 → 8 validation, the 7 left test."""
    items = [(f"/x/{c}{n}.jpg", c) for c in "ab" for n in range(30)]
    train, val, test = image_datasets.stratified_split(items, (0.5, 0.25, 0.25), seed=1)
    for c in "ab":
        assert [sum(label == c for _, label in part) for part in (train, val, test)] == [15, 8, 7]
    assert sorted(train + val + test) == sorted(items)
