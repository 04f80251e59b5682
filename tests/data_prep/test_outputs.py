"""#25: a file or folder a person named as an output never replaces one of
theirs, never lands among the inputs, and an interrupt leaves the old one
whole. Each test failed on the code before these fixes."""
import json

import matplotlib
import pytest
from PIL import Image

from data_prep import files, image_datasets
from data_prep.__main__ import main as data_main
from tests.helpers import make_images

matplotlib.use("Agg")


def fake_tools(monkeypatch, fail_on=None):
    """convert_imageset and compute_image_mean as files named after their
    outputs (no Caffe needed); fail_on: the call that raises KeyboardInterrupt."""
    calls = []

    def run_tool(tool, args, log):
        calls.append(tool)
        if len(calls) == fail_on:
            raise KeyboardInterrupt
        target = args[-1]
        target.mkdir() if tool == "convert_imageset" else target.write_bytes(b"mean")
        if tool == "convert_imageset":
            (target / "CURRENT").write_text(f"call {len(calls)}")
    monkeypatch.setattr(image_datasets, "run_tool", run_tool)
    return calls


def items_of(folder, n=10):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.new("RGB", (20, 20), (10 * i, 0, 0)).save(folder / f"{i}.jpg")
    return [(folder / f"{i}.jpg", "ab"[i % 2]) for i in range(n)]


def snapshot(folder):
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None)
            for p in sorted(folder.rglob("*"))}


def test_prepare_refuses_a_folder_of_the_users_own_files(tmp_path, monkeypatch):
    fake_tools(monkeypatch)
    items = items_of(tmp_path / "photos")
    out = tmp_path / "mine"
    out.mkdir()
    (out / "classes.txt").write_text("my classes\n")
    (out / "train.txt").write_text("my listing\n")
    before = snapshot(out)
    with pytest.raises(ValueError, match="already exists and is not empty"):
        image_datasets.prepare(items, out, log=lambda *a: None)
    assert snapshot(out) == before


def test_prepare_never_writes_among_the_photos_it_reads(tmp_path, monkeypatch, capsys):
    fake_tools(monkeypatch)
    make_images(tmp_path / "shapes", per_class=10, prefixes=False)
    before = snapshot(tmp_path / "shapes")
    for out in (tmp_path / "shapes" / "being", tmp_path / "shapes" / "new", tmp_path):
        assert data_main(["prepare", "--tree", str(tmp_path / "shapes"), "--out",
                          str(out)]) == 2
        assert "overlaps the input" in capsys.readouterr().err
    assert snapshot(tmp_path / "shapes") == before
    assert data_main(["prepare", "--tree", str(tmp_path / "shapes"), "--out",
                      str(tmp_path / "ds")]) == 0            # beside them: fine
    items = items_of(tmp_path / "listed", 10)                # a labels CSV's photos
    with pytest.raises(ValueError, match="overlaps the input"):
        image_datasets.prepare(items, tmp_path / "listed" / "ds", log=lambda *a: None)
    assert not (tmp_path / "listed" / "ds").exists()


def test_prepare_again_swaps_the_dataset_whole_and_an_interrupt_keeps_the_old(tmp_path,
                                                                          monkeypatch):
    items = items_of(tmp_path / "photos", 20)
    out = tmp_path / "ds"
    fake_tools(monkeypatch)
    image_datasets.prepare(items, out, seed=1, log=lambda *a: None)
    old = snapshot(out)
    assert json.loads(old["dataset.json"])["seed"] == 1
    calls = fake_tools(monkeypatch, fail_on=2)        # Ctrl-C in the second database
    with pytest.raises(KeyboardInterrupt):
        image_datasets.prepare(items, out, seed=2, log=lambda *a: None)
    assert calls == ["convert_imageset"] * 2
    assert snapshot(out) == old                       # every file the old one's
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds", "photos"]
    fake_tools(monkeypatch)
    image_datasets.prepare(items, out, seed=2, log=lambda *a: None)
    assert json.loads((out / "dataset.json").read_text())["seed"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds", "photos"]
    (out / "notes.txt").write_text("a person's notes")        # not ours any more
    with pytest.raises(ValueError, match="already exists"):
        image_datasets.prepare(items, out, seed=3, log=lambda *a: None)
    assert (out / "notes.txt").read_text() == "a person's notes"


def test_a_swap_cut_between_its_two_renames_is_finished_by_the_next_build(tmp_path):
    out = tmp_path / "ds"
    out.mkdir()
    (out / "dataset.json").write_text("{}")
    # kill -9 after the old one moved away, before the new one moved in:
    out.rename(tmp_path / "ds.replaced")
    with files.building(out, replaces=image_datasets.is_prepared) as partial:
        assert (out / "dataset.json").read_text() == "{}"     # the old one is back first
        (partial / "dataset.json").write_text('{"new": 1}')
    assert (out / "dataset.json").read_text() == '{"new": 1}'
    assert not (tmp_path / "ds.replaced").exists()
    mine = tmp_path / "ds.replaced"                  # a person's folder of that name
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="ds.replaced exists and was not made by this tool"):
        with files.building(out, replaces=image_datasets.is_prepared):
            pass
    assert (mine / "notes.txt").read_text() == "mine"
    assert (out / "dataset.json").read_text() == '{"new": 1}'


def figure():
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    return fig


def test_a_named_figure_never_replaces_a_file_not_ours_nor_lands_in_an_input(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "caffenet.caffemodel").write_bytes(b"weights")
    (run / "train.log").write_text("log")
    Image.new("RGB", (4, 4)).save(tmp_path / "photo.png")      # a PNG, but not ours
    for target, message in ((run / "caffenet.caffemodel", "lies in the input"),
                            (run / "new.png", "lies in the input"),
                            (tmp_path / "photo.png", "not written by this tool"),
                            (tmp_path, "is a folder"),
                            (tmp_path / "no" / "such.png", "not a folder")):
        with pytest.raises((ValueError, OSError), match=message):
            files.save_figure(figure(), target, inputs=[run], named=True)
    assert (run / "caffenet.caffemodel").read_bytes() == b"weights"
    assert (run / "train.log").read_text() == "log"
    assert Image.open(tmp_path / "photo.png").size == (4, 4)
    ours = files.save_figure(figure(), tmp_path / "curves.png", inputs=[run], named=True)
    assert files.is_our_figure(ours)
    files.save_figure(figure(), ours, inputs=[run], named=True)  # a rerun replaces its own
    assert not files.is_our_figure(tmp_path / "photo.png")


def test_survey_png_is_refused_before_the_survey_over_a_photo(tmp_path, capsys, monkeypatch):
    from data_prep import sizes
    photos = tmp_path / "photos"
    items_of(photos, 3)
    before = (photos / "0.jpg").read_bytes()
    real_survey = sizes.survey

    def not_before_the_check(*args, **kw):
        raise AssertionError("the survey ran before --png was checked")
    monkeypatch.setattr(sizes, "survey", not_before_the_check)
    assert data_main(["survey", str(photos), "--png", str(photos / "0.jpg")]) == 2
    monkeypatch.setattr(sizes, "survey", real_survey)
    assert "lies in the input" in capsys.readouterr().err
    assert (photos / "0.jpg").read_bytes() == before
    assert data_main(["survey", str(photos), "--png", str(tmp_path / "sizes.png")]) == 0
    assert files.is_our_figure(tmp_path / "sizes.png")


@pytest.mark.parametrize("text", ["[1, 2]", '{"cut": ', "\xff"])
def test_a_json_file_of_ours_that_is_not_an_object_is_one_line_naming_it(tmp_path, text):
    path = tmp_path / "stages.json"
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(ValueError, match="stages.json"):
        files.read_json(path)
    assert files.read_json(tmp_path / "missing.json", {}) == {}


def test_errors_name_the_path_the_person_gave_not_ours(tmp_path, capsys):
    """"[Errno 17] File exists" when a part of --out is a file; our temporary
    names (out.csv.tmp.csv) in errors."""
    (tmp_path / "afile").write_text("mine")
    assert data_main(["data", "digits", "--out", str(tmp_path / "afile" / "sub")]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'afile'} is a file, not a folder" in err and "Errno" not in err
    assert (tmp_path / "afile").read_text() == "mine"
    target = tmp_path / "missing" / "out.csv"
    with pytest.raises(FileNotFoundError) as caught:
        files.write_text(target, "a,b\n")
    assert caught.value.filename == str(target) and ".tmp" not in str(caught.value)
