"""Labels, the size survey, resizing, class selection and splits (report §4-§8):
the image side of the supervised half, on generated images; no Caffe."""
import pytest
from PIL import Image

from data_prep import image_datasets as ds
from data_prep import labels
from data_prep import sizes as image_sizes
from tests.helpers import make_images


def test_labels_from_prefixes_and_tree_and_table(tmp_path):
    make_images(tmp_path / "flat")
    make_images(tmp_path / "tree", prefixes=False)
    flat = labels.labels_from_prefixes(tmp_path / "flat")
    tree = labels.labels_from_tree(tmp_path / "tree")
    assert sorted(l for _, l in flat) == sorted(l for _, l in tree)
    table = labels.class_table(flat)
    assert "heritage" in table and table.splitlines()[-1].split() == ["total", "36"]
    labels.write_labels(tree, tmp_path / "labels.csv")
    assert labels.read_labels(tmp_path / "labels.csv") == tree
    with pytest.raises(ValueError, match="no images in class folders"):
        (tmp_path / "none").mkdir()
        labels.labels_from_tree(tmp_path / "none")


def test_survey_groups_sizes_and_the_window_filters(tmp_path):
    sizes = [(200, 120)] * 3 + [(205, 128)] * 2 + [(200, 165)] + [(640, 480)] * 4 + [(211, 120)]
    files = []
    for i, size in enumerate(sizes):
        files.append(tmp_path / f"{i}.png")
        Image.new("RGB", size).save(files[-1])
    (tmp_path / "bad.png").write_bytes(b"nope")
    groups, unreadable = image_sizes.survey(files + [tmp_path / "bad.png"], tolerance=10)
    assert [(g[0], g[1]) for g in groups] == [((200, 120), 5), ((640, 480), 4),
                                              ((200, 165), 1), ((211, 120), 1)]
    assert [p.name for p, _ in unreadable] == ["bad.png"]
    items = [(p, "x") for p in files + [tmp_path / "bad.png"]]
    skipped = []
    inside = image_sizes.window(items, (200, 120), (200, 165), log=skipped.append)
    assert [p.name for p, _ in inside] == ["0.png", "1.png", "2.png", "5.png"]
    assert len(skipped) == 1 and "bad.png" in skipped[0]
    image_sizes.survey_png(groups, tmp_path / "survey.png")
    assert (tmp_path / "survey.png").stat().st_size > 0


def test_resize_to_the_smallest_into_a_new_folder(tmp_path):
    paths = make_images(tmp_path / "in", per_class=3)
    before = {p: p.read_bytes() for p in paths}
    items = labels.labels_from_prefixes(tmp_path / "in")
    resized, size = image_sizes.resize_all(items, tmp_path / "out")
    assert size == (64, 48)
    assert {Image.open(p).size for p, _ in resized} == {(64, 48)}
    assert all(p.read_bytes() == data for p, data in before.items())   # originals untouched
    with pytest.raises(ValueError, match="overlaps the input"):
        image_sizes.resize_all(items, tmp_path / "in")
    with pytest.raises(ValueError, match="not empty"):       # a rerun never writes into it
        image_sizes.resize_all(items, tmp_path / "out")
    (tmp_path / "in" / "being_bad.jpg").write_bytes(b"broken")
    skipped = []
    again, _ = image_sizes.resize_all(labels.labels_from_prefixes(tmp_path / "in"), tmp_path / "out2",
                             log=skipped.append)
    assert len(again) == 9 and "being_bad.jpg" in skipped[0]


def test_splits_are_stratified_disjoint_and_reproducible():
    items = [(f"/x/{c}{i}.jpg", c) for c in "abc" for i in range(20 if c != "c" else 10)]
    train, val, test = ds.stratified_split(items, ds.SPLITS["70/10/20"], seed=7)
    paths = [set(p for p, _ in part) for part in (train, val, test)]
    assert not (paths[0] & paths[1] or paths[0] & paths[2] or paths[1] & paths[2])
    assert len(train) + len(val) + len(test) == len(items)
    count = lambda part, c: sum(label == c for _, label in part)
    assert (count(train, "a"), count(val, "a"), count(test, "a")) == (14, 2, 4)
    assert (count(train, "c"), count(val, "c"), count(test, "c")) == (7, 1, 2)
    assert ds.stratified_split(items, ds.SPLITS["70/10/20"], seed=7) == (train, val, test)
    assert ds.stratified_split(items, ds.SPLITS["70/10/20"], seed=8)[0] != train


def test_modes_subset_and_one_vs_rest():
    items = [("a", "heritage"), ("b", "being"), ("c", "other"), ("d", "scenery")]
    assert ds.select(items, "subset", ["heritage", "being", "scenery"]) == \
        [("a", "heritage"), ("b", "being"), ("d", "scenery")]
    assert ds.select(items, "one-vs-rest", positive="being") == \
        [("a", "rest"), ("b", "being"), ("c", "rest"), ("d", "rest")]
    with pytest.raises(ValueError, match="no images of class"):
        ds.select(items, "one-vs-rest", positive="cats")


def test_every_training_minibatch_mixes_the_classes():
    """convert_imageset keeps the listing's order: a split listed class by class
    feeds Caffe one class for dozens of iterations (report §4.1.4's failure)."""
    items = [(f"/x/{c}{i}.jpg", c) for c in ("heritage", "being", "scenery", "other")
             for i in range(50)]
    train, val, test = ds.stratified_split(items)
    for part in (train, test):
        for start in range(0, len(part) - 10, 10):
            assert len({label for _, label in part[start:start + 10]}) > 1


# Table 4 of the report: the labelled photos inside the size window.
TABLE_4 = {"being": 140, "heritage": 160, "scenery": 127, "other": 189}


def table_4_items():
    return [(f"/x/{c}{i}.jpg", c) for c, n in TABLE_4.items() for i in range(n)]


def count(items):
    return {label: sum(1 for _, l in items if l == label) for label in {l for _, l in items}}


def test_one_class_against_the_rest_with_and_without_other():
    # §5: being against all the others; §6: omit other, then being against the rest.
    assert count(ds.select(table_4_items(), "one-vs-rest", positive="being")) == \
        {"being": 140, "rest": 476}
    assert count(ds.select(table_4_items(), "one-vs-rest", ["heritage", "being", "scenery"],
                           positive="being")) == {"being": 140, "rest": 287}
    assert count(ds.select(table_4_items(), "subset", ["heritage", "beings", "scenery"])) == \
        {"being": 140, "heritage": 160, "scenery": 127}
    with pytest.raises(ValueError, match="needs --positive"):
        ds.select(table_4_items(), "one-vs-rest")


def test_the_report_class_name_beings_is_read_as_being(tmp_path):
    assert [labels.class_name(n) for n in ("Beings", "being", "BEINGS", " Heritage ", "cats")] \
        == ["being", "being", "being", "heritage", "cats"]
    assert labels.label_of("beings_0001.jpg") == labels.PHOTO_CLASSES.index("being")
    make_images(tmp_path / "tree", per_class=2, prefixes=False)
    (tmp_path / "tree" / "being").rename(tmp_path / "tree" / "Beings")
    assert count(labels.labels_from_tree(tmp_path / "tree"))["being"] == 2
    (tmp_path / "labels.csv").write_text("path,label\n/x/a.jpg,Beings\n/x/b.jpg,scenery\n")
    assert [l for _, l in labels.read_labels(tmp_path / "labels.csv")] == ["being", "scenery"]


def test_size_window_over_an_unlabelled_collection(tmp_path, capsys):
    """Report §8: the whole collection through the size window, no labels."""
    from data_prep.__main__ import main
    folder = tmp_path / "collection"
    folder.mkdir()
    for i, size in enumerate([(200, 120), (200, 150), (640, 480), (200, 165), (150, 120)]):
        Image.new("RGB", size, (i * 40, 90, 90)).save(folder / f"{i}.jpg")
    assert main(["resize", "--photos", str(folder), "--window", "200", "120", "200", "165",
                 "--out", str(tmp_path / "filtered")]) == 0
    kept = labels.read_labels(tmp_path / "filtered" / "labels.csv")
    assert sorted(p.name for p, _ in kept) == ["0.jpg", "1.jpg", "3.jpg"]
    assert {label for _, label in kept} == {""}
    assert {Image.open(p).size for p, _ in kept} == {(200, 120)}
    with pytest.raises(ValueError, match="no label"):
        ds.prepare(kept, tmp_path / "ds")
