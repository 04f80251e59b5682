"""User files are read-only inputs; names from data never escape their folder;
bad values stop at parse time with one line; one bad file never aborts a run."""
import argparse

import numpy as np
import pytest
from PIL import Image

from data_prep import checks, files, image_datasets, images, labels, sizes
from data_prep.__main__ import main


def test_names_from_data_cannot_become_paths_or_prototxt():
    for bad in ("../../x", "a/b", "..", ".hidden", "", " x", 'quo"te', "new\nline", "a\\b"):
        with pytest.raises(ValueError, match="invalid class name"):
            checks.check_name(bad, "class name")
    assert checks.check_name("Beings and more", "class name") == "Beings and more"
    with pytest.raises(ValueError, match="prototxt"):
        checks.prototxt_path('/data/my "photos"/train_leveldb')


def test_prepare_refuses_a_label_that_escapes(tmp_path):
    (tmp_path / "photos").mkdir()
    Image.new("RGB", (20, 20)).save(tmp_path / "photos" / "a.jpg")
    Image.new("RGB", (20, 20)).save(tmp_path / "photos" / "b.jpg")
    with pytest.raises(ValueError, match="invalid class name"):
        image_datasets.prepare([(tmp_path / "photos" / "a.jpg", "../../x"),
                                (tmp_path / "photos" / "b.jpg", "ok")], tmp_path / "ds")


def test_duplicate_paths_are_kept_once_and_conflicts_refused(tmp_path):
    logged = []
    items = [(tmp_path / "a.jpg", "x"), (tmp_path / "." / "a.jpg", "x"), (tmp_path / "b.jpg", "y")]
    assert len(image_datasets.unique_items(items, logged.append)) == 2 and logged
    with pytest.raises(ValueError, match="labelled both"):
        image_datasets.unique_items([(tmp_path / "a.jpg", "x"), (tmp_path / "a.jpg", "y")])


def test_a_gif_caffe_cannot_read_is_reported_not_counted(tmp_path):
    Image.new("RGB", (20, 20), (9, 9, 9)).save(tmp_path / "a.gif")
    Image.new("RGB", (20, 20), (9, 9, 9)).save(tmp_path / "b.png")
    assert image_datasets.readable_by_caffe(tmp_path / "a.gif")
    assert image_datasets.readable_by_caffe(tmp_path / "b.png") is None


def test_sixteen_bit_greys_keep_their_shades(tmp_path):
    ramp = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000)
    Image.fromarray(ramp).save(tmp_path / "deep.png")
    rgb = images.load_photo(tmp_path / "deep.png", (8, 8))
    assert rgb[..., 0].min() == 0 and 240 <= rgb[..., 0].max() <= 255
    assert len(np.unique(rgb[..., 0])) > 32                      # not clipped to white


def test_two_images_of_one_name_become_two_files(tmp_path):
    for label in ("heritage", "being"):
        (tmp_path / label).mkdir()
        Image.new("RGB", (30, 20), (200 if label == "being" else 10, 0, 0)).save(
            tmp_path / label / "IMG_1.jpg")
    resized, _ = sizes.resize_all(labels.labels_from_tree(tmp_path), tmp_path / "out")
    assert sorted(p.name for p, _ in resized) == ["IMG_1-1.jpg", "IMG_1.jpg"]
    assert {label for _, label in resized} == {"heritage", "being"}


def test_sample_never_writes_into_the_source_or_a_labelled_folder(tmp_path):
    for i in range(4):
        Image.new("RGB", (10, 10)).save(tmp_path / f"{i}.jpg")
    with pytest.raises(ValueError, match="overlaps"):
        labels.sample(tmp_path, 2, tmp_path / "to_label")
    (tmp_path.parent / "to_label").mkdir(exist_ok=True)
    (tmp_path.parent / "to_label" / "my_work.txt").write_text("labelled by hand")
    with pytest.raises(ValueError, match="not empty"):
        labels.sample(tmp_path, 2, tmp_path.parent / "to_label")


@pytest.mark.parametrize("argv", [
    ["data", "digits", "--limit", "0"], ["data", "digits", "--limit", "-5"],
    ["fetch", "photos.txt", "--out", "o", "--retries", "-1"],
    ["fetch", "photos.txt", "--out", "o", "--timeout", "0"],
    ["prepare", "--labels", "l.csv", "--out", "o", "--split", "90/20/-10"],
    ["survey", "photos", "--tolerance", "-1"],
    # #25: values that passed the parser and then killed Caffe or the memory
    ["export-photos", "shapes", "--out", "o", "--classes", "0", "--size", "100000", "100000"],
    ["data", "photos", "--photos", "p", "--size", "60000", "60000"],
    ["data", "photos", "--photos", "p", "--cmap", "5000", "6"]])
def test_bad_values_stop_at_parse_time(argv, capsys):
    assert main(argv) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]   # argparse: usage, then one line
    assert "error: argument" in last


def test_verify_and_export_of_a_mistyped_folder_create_nothing(tmp_path, capsys):
    for command in ("verify", "export"):
        assert main([command, "--out", str(tmp_path / "phtos")]) == 2
        assert "no fetch manifest" in capsys.readouterr().err
    assert not (tmp_path / "phtos").exists()


def test_the_second_command_on_a_folder_stops_at_once(tmp_path):
    with files.locked(tmp_path):
        with pytest.raises(files.Busy, match="in use by another command"):
            with files.locked(tmp_path):
                pass
    with files.locked(tmp_path):          # released: free again
        pass


def test_number_types():
    assert checks.positive_int("3") == 3 and checks.nonneg_float("0") == 0.0
    for parse, text in ((checks.positive_int, "0"), (checks.nonneg_int, "-1"),
                        (checks.positive_float, "nan"), (checks.positive_int, "x")):
        with pytest.raises(argparse.ArgumentTypeError):
            parse(text)


def png_header_only(path, width, height):
    """A PNG that claims width x height (a decompression bomb's header)."""
    import struct
    import zlib

    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height,
                                                                      8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"\0" * 10)) + chunk(b"IEND", b""))


def test_a_decompression_bomb_and_a_truncated_file_are_skipped(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    png_header_only(src / "bomb.png", 50000, 50000)
    Image.new("RGB", (40, 30), (1, 2, 3)).save(src / "good.jpg", quality=90)
    (src / "cut.jpg").write_bytes((src / "good.jpg").read_bytes()[:200])
    logged = []
    items = [(src / n, "x") for n in ("bomb.png", "cut.jpg", "good.jpg")]
    resized, _ = sizes.resize_all(items, tmp_path / "out", log=logged.append)
    assert [p.name for p, _ in resized] == ["good.jpg"]
    assert any("bomb.png" in m for m in logged) and any("cut.jpg" in m for m in logged)


def test_a_rerun_removes_the_temporary_stores_a_kill_left(tmp_path):
    from data_prep import db
    stale = tmp_path / "digits50_total.tmp-x1y2"
    stale.mkdir(parents=True)
    (stale / "000001.ldb").write_bytes(b"half a database")
    assert main(["data", "digits", "--limit", "50", "--out", str(tmp_path)]) == 0
    assert not stale.exists()
    assert db.count_db(tmp_path / "digits50_total") == 50


def test_the_blas_kernel_is_chosen_only_where_openblas_does_not_know_the_cpu():
    from data_prep.caffe_tools import core_for
    avx512 = {"avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512dq"}
    assert core_for("Prescott", avx512) == "SkylakeX"
    assert core_for("Prescott", {"avx2", "fma"}) == "Haswell"
    assert core_for("Prescott", {"sse2"}) is None
    assert core_for("Zen", avx512) is None and core_for("SkylakeX", avx512) is None


def test_odd_bytes_in_photos_txt_and_odd_file_names_are_skipped_not_fatal(tmp_path):
    import os

    from data_prep import photos
    good = "5a36f382-dbdf-11e6-95fd-000000000001 | photo | eng\n".encode()
    bad = b"5a36f382-dbdf-11e6-95fd-000000000002 | caf\xe9 | fra\n"
    (tmp_path / "photos.txt").write_bytes(good + bad)
    listing = photos.parse_photos(tmp_path / "photos.txt")
    assert len(listing.photos) == 1 and listing.malformed[0][0] == 2
    assert "not UTF-8" in listing.malformed[0][1]
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.new("RGB", (10, 10)).save(folder / "fine.jpg")
    Image.new("RGB", (10, 10)).save(folder / "two\nlines.jpg")
    Image.new("RGB", (10, 10)).save(os.path.join(os.fsencode(folder), b"latin\xe9.jpg"))
    logged = []
    assert [p.name for p in images.list_photos(folder, log=logged.append)] == ["fine.jpg"]
    assert len(logged) == 2


def test_a_data_set_name_cannot_leave_the_output_folder(tmp_path, capsys):
    (tmp_path / "photos").mkdir()
    Image.new("RGB", (40, 40)).save(tmp_path / "photos" / "a.jpg")
    assert main(["data", "photos", "--photos", str(tmp_path / "photos"), "--name", "../../X",
                 "--out", str(tmp_path / "out" / "data")]) == 2
    assert "invalid data set name" in capsys.readouterr().err
    assert not list(tmp_path.rglob("X*"))
    assert main(["data", "digits", "--limit", "1", "--out", str(tmp_path / "d")]) == 2


def test_class_names_with_blanks_survive_classes_txt(tmp_path):
    (tmp_path / "classes.txt").write_text("old town\nriver side\n")
    assert image_datasets.read_classes(tmp_path / "classes.txt") == ["old town", "river side"]


def children(pid):
    """{pid: command line} of the processes whose parent is `pid` (Linux /proc)."""
    import os
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                parent = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                command = f.read().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError, IndexError):
            continue
        if parent == pid:
            found[int(entry)] = command
    return found


def test_kill_9_of_data_photos_leaves_no_worker_processes(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time
    rng = np.random.default_rng(0)
    (tmp_path / "photos").mkdir()
    for i in range(1500):
        Image.fromarray(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)).save(
            tmp_path / "photos" / f"heritage_{i}.jpg")
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    victim = subprocess.Popen([sys.executable, "-m", "data_prep", "data", "photos", "--photos",
                               str(tmp_path / "photos"), "--out", str(tmp_path / "data")],
                              cwd=repo, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline, workers = time.monotonic() + 120, {}
    while not workers and victim.poll() is None and time.monotonic() < deadline:
        workers = {p: c for p, c in children(victim.pid).items() if "LokyProcess" in c}
        time.sleep(0.05)                                # waits for a condition, bounded
    assert workers, "the run ended before its workers were seen"
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    deadline = time.monotonic() + 60
    while any(os.path.exists(f"/proc/{p}") for p in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    alive = [p for p in workers if os.path.exists(f"/proc/{p}")]
    for p in alive:
        os.kill(p, signal.SIGKILL)
    assert alive == []


def test_an_interrupted_write_leaves_the_old_file_and_no_temporary(tmp_path):
    files.write_text(tmp_path / "state.json", "old")
    with pytest.raises(KeyboardInterrupt):
        with files.atomic(tmp_path / "state.json") as tmp:
            tmp.write_text("half of the new")
            raise KeyboardInterrupt
    assert (tmp_path / "state.json").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_export_photos_never_writes_into_a_folder_with_work_in_it(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "mine.txt").write_text("relabelled by hand")
    assert main(["export-photos", "digits", "--classes", "0", "1", "-n", "3",
                 "--out", str(tmp_path / "out")]) == 2
    assert main(["export-photos", "digits", "--classes", "0", "1", "-n", "3", "--size", "16",
                 "12", "--out", str(tmp_path / "new")]) == 0
    assert sorted(p.name for p in (tmp_path / "new").iterdir()) == ["0", "1"]
    assert (tmp_path / "out" / "mine.txt").read_text() == "relabelled by hand"
