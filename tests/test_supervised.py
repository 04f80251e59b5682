"""The supervised CaffeNet pipeline on generated images (CPU, no internet)."""
import shutil

import numpy as np
import pytest
from conftest import read_with_caffe
from PIL import Image

from dec import caffenet, engine, supervised as sv

COLOURS = {"heritage": (200, 40, 40), "being": (40, 180, 60), "scenery": (40, 60, 200)}


def make_images(folder, per_class=12, sizes=((64, 48), (66, 50), (90, 60)), prefixes=True):
    """Coloured rectangles and noise; file names <class>_<n>.jpg (or class folders)."""
    rng = np.random.default_rng(0)
    paths = []
    for c, (label, colour) in enumerate(COLOURS.items()):
        for i in range(per_class):
            w, h = sizes[i % len(sizes)]
            image = rng.normal(128, 20, (h, w, 3))
            x0, y0 = rng.integers(0, w // 2), rng.integers(0, h // 2)
            image[y0:y0 + h // 2, x0:x0 + w // 2] = colour
            target = (folder / f"{label}_{i:03d}.jpg" if prefixes
                      else folder / label / f"{i:03d}.jpg")
            target.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image.clip(0, 255).astype(np.uint8)).save(target, quality=95)
            paths.append(target)
    return paths


def test_labels_from_prefixes_and_tree_and_table(tmp_path):
    make_images(tmp_path / "flat")
    make_images(tmp_path / "tree", prefixes=False)
    flat = sv.labels_from_prefixes(tmp_path / "flat")
    tree = sv.labels_from_tree(tmp_path / "tree")
    assert sorted(l for _, l in flat) == sorted(l for _, l in tree)
    table = sv.class_table(flat)
    assert "heritage" in table and table.splitlines()[-1].split() == ["total", "36"]
    sv.write_labels(tree, tmp_path / "labels.csv")
    assert sv.read_labels(tmp_path / "labels.csv") == tree
    with pytest.raises(ValueError, match="no images in class folders"):
        (tmp_path / "none").mkdir()
        sv.labels_from_tree(tmp_path / "none")


def test_survey_groups_sizes_and_the_window_filters(tmp_path):
    sizes = [(200, 120)] * 3 + [(205, 128)] * 2 + [(200, 165)] + [(640, 480)] * 4 + [(211, 120)]
    files = []
    for i, size in enumerate(sizes):
        files.append(tmp_path / f"{i}.png")
        Image.new("RGB", size).save(files[-1])
    (tmp_path / "bad.png").write_bytes(b"nope")
    groups, unreadable = sv.survey(files + [tmp_path / "bad.png"], tolerance=10)
    assert [(g[0], g[1]) for g in groups] == [((200, 120), 5), ((640, 480), 4),
                                              ((200, 165), 1), ((211, 120), 1)]
    assert [p.name for p, _ in unreadable] == ["bad.png"]
    items = [(p, "x") for p in files + [tmp_path / "bad.png"]]
    skipped = []
    inside = sv.window(items, (200, 120), (200, 165), log=skipped.append)
    assert [p.name for p, _ in inside] == ["0.png", "1.png", "2.png", "5.png"]
    assert len(skipped) == 1 and "bad.png" in skipped[0]
    sv.survey_png(groups, tmp_path / "survey.png")
    assert (tmp_path / "survey.png").stat().st_size > 0


def test_resize_to_the_smallest_into_a_new_folder(tmp_path):
    paths = make_images(tmp_path / "in", per_class=3)
    before = {p: p.read_bytes() for p in paths}
    items = sv.labels_from_prefixes(tmp_path / "in")
    resized, size = sv.resize_all(items, tmp_path / "out")
    assert size == (64, 48)
    assert {Image.open(p).size for p, _ in resized} == {(64, 48)}
    assert all(p.read_bytes() == data for p, data in before.items())   # originals untouched
    with pytest.raises(ValueError, match="originals"):
        sv.resize_all(items, tmp_path / "in")
    (tmp_path / "in" / "being_bad.jpg").write_bytes(b"broken")
    skipped = []
    again, _ = sv.resize_all(sv.labels_from_prefixes(tmp_path / "in"), tmp_path / "out2",
                             log=skipped.append)
    assert len(again) == 9 and "being_bad.jpg" in skipped[0]


def test_splits_are_stratified_disjoint_and_reproducible():
    items = [(f"/x/{c}{i}.jpg", c) for c in "abc" for i in range(20 if c != "c" else 10)]
    train, val, test = sv.stratified_split(items, sv.SPLITS["70/10/20"], seed=7)
    paths = [set(p for p, _ in part) for part in (train, val, test)]
    assert not (paths[0] & paths[1] or paths[0] & paths[2] or paths[1] & paths[2])
    assert len(train) + len(val) + len(test) == len(items)
    count = lambda part, c: sum(label == c for _, label in part)
    assert (count(train, "a"), count(val, "a"), count(test, "a")) == (14, 2, 4)
    assert (count(train, "c"), count(val, "c"), count(test, "c")) == (7, 1, 2)
    assert sv.stratified_split(items, sv.SPLITS["70/10/20"], seed=7) == (train, val, test)
    assert sv.stratified_split(items, sv.SPLITS["70/10/20"], seed=8)[0] != train


def test_modes_subset_and_one_vs_rest():
    items = [("a", "heritage"), ("b", "being"), ("c", "other"), ("d", "scenery")]
    assert sv.select(items, "subset", ["heritage", "being", "scenery"]) == \
        [("a", "heritage"), ("b", "being"), ("d", "scenery")]
    assert sv.select(items, "one-vs-rest", positive="being") == \
        [("a", "rest"), ("b", "being"), ("c", "rest"), ("d", "rest")]
    with pytest.raises(ValueError, match="no images of class"):
        sv.select(items, "one-vs-rest", positive="cats")


def test_per_class_scores_by_hand():
    counts = np.array([[5, 1, 0], [2, 6, 2], [0, 0, 4]])   # rows actual
    precision, recall, f1 = sv.per_class_scores(counts)
    np.testing.assert_allclose(precision, [5 / 7, 6 / 7, 4 / 6])
    np.testing.assert_allclose(recall, [5 / 6, 6 / 10, 4 / 4])
    np.testing.assert_allclose(f1[1], 2 * (6 / 7) * 0.6 / (6 / 7 + 0.6))


def test_parse_log_reads_caffe_lines():
    log = "\n".join([
        "I1128 solver.cpp:218] Iteration 0 (0 iter/s, 0.5s/5 iters), loss = 1.0986",
        "I1128 sgd_solver.cpp:105] Iteration 0, lr = 0.01",
        "I1128 solver.cpp:330] Iteration 10, Testing net (#0)",
        "I1128 solver.cpp:397]     Test net output #0: accuracy = 0.75",
        "I1128 solver.cpp:397]     Test net output #1: loss = 0.61 (* 1 = 0.61 loss)",
        "I1128 solver.cpp:218] Iteration 10 (2 iter/s, 5s/5 iters), loss = 0.52"])
    train, test = sv.parse_log(log)
    assert train == [{"iteration": 0, "loss": 1.0986, "lr": 0.01},
                     {"iteration": 10, "loss": 0.52, "lr": None}]
    assert test == [{"iteration": 10, "accuracy": 0.75, "loss": 0.61}]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Generated photos → databases → a short CaffeNet run from scratch."""
    root = tmp_path_factory.mktemp("sup")
    make_images(root / "photos", per_class=14)
    (root / "photos" / "heritage_bad.jpg").write_bytes(b"\xff\xd8\xff broken")
    messages = []
    items = sv.labels_from_prefixes(root / "photos")
    info = sv.prepare(items, root / "dataset", seed=3, log=messages.append)
    solver = caffenet.REPORT_SOLVER.override(max_iter=40, base_lr=0.01, stepsize=1000,
                                             batch_size=12, test_batch_size=12,
                                             test_interval=20, snapshot=20, display=5)
    rows, tests = sv.train(root / "dataset", root / "run", solver, progress=False,
                           log=messages.append)
    return root, info, rows, tests, messages


def test_prepare_skips_the_corrupt_image_and_caffe_reads_the_databases(trained):
    root, info, _, _, messages = trained
    assert info["skipped"] == 1 and any("heritage_bad.jpg" in m for m in messages)
    assert info["classes"] == ["being", "heritage", "scenery"]
    counts = {split: sum(c.values()) for split, c in info["counts"].items()}
    assert counts == {"train": 33, "val": 3, "test": 6}
    assert (root / "dataset" / "mean.binaryproto").stat().st_size > 0
    data, label = read_with_caffe(root / "dataset" / "train_leveldb", 33)
    assert data.shape == (33, 3, 256, 256)
    assert sorted(np.bincount(label.astype(int))) == [11, 11, 11]


def test_short_training_run_lowers_the_loss_and_keeps_the_curve(trained):
    root, _, rows, tests, messages = trained
    assert any("from scratch" in m for m in messages)
    assert [r["iteration"] for r in rows][:3] == [0, 5, 10] and rows[-1]["iteration"] == 35
    first, last = np.mean([r["loss"] for r in rows[:2]]), np.mean([r["loss"] for r in rows[-2:]])
    assert last < first
    assert [t["iteration"] for t in tests] == [0, 20, 40] and "accuracy" in tests[-1]
    for name in ("train.log", "curves.csv", "curves.png", "caffenet.caffemodel"):
        assert (root / "run" / name).stat().st_size > 0


def test_evaluation_matches_its_own_predictions(trained):
    root, _, _, _, _ = trained
    result = sv.evaluate(root / "run", root / "dataset")
    lines = (root / "dataset" / "test.txt").read_text().splitlines()
    files = [line.rsplit(" ", 1)[0] for line in lines]
    actual = np.array([int(line.rsplit(" ", 1)[1]) for line in lines])
    _, probs, _ = sv.classify(root / "run", files, progress=False)
    predicted = probs.argmax(axis=1)
    assert result["accuracy"] == pytest.approx(float(np.mean(predicted == actual)))
    counts = np.array(result["confusion"])
    assert counts.sum() == len(lines) and np.trace(counts) == np.sum(predicted == actual)
    assert (root / "run" / "confusion_test.png").exists()


def test_pseudo_label_review_and_import_picks_up_moved_files(trained, tmp_path):
    root, _, _, _, _ = trained
    photos = tmp_path / "collection"
    make_images(photos, per_class=2)
    (photos / "broken.jpg").write_bytes(b"not an image")
    logged = []
    counts = sv.pseudo_label(root / "run", photos, tmp_path / "review", log=logged.append)
    assert sum(counts.values()) == 6 and any("broken.jpg" in m for m in logged)
    rows = (tmp_path / "review" / "predictions.csv").read_text().splitlines()
    assert rows[0] == "file,predicted,p_being,p_heritage,p_scenery" and len(rows) == 7
    # a reviewer moves one file to another class folder and deletes another
    links = sorted((tmp_path / "review").glob("*/*.jpg"))
    moved, deleted = links[0], links[1]
    new_class = next(c for c in ("being", "heritage", "scenery") if c != moved.parent.name)
    shutil.move(str(moved), tmp_path / "review" / new_class / moved.name)
    deleted.unlink()
    labels = dict((p.name, label) for p, label in sv.labels_from_tree(tmp_path / "review"))
    assert labels[moved.name] == new_class and deleted.name not in labels
    assert len(labels) == 5


def test_committed_caffenet_files_and_imagenet_weights_load_by_name(tmp_path):
    for name in ("train_val.prototxt", "deploy.prototxt", "solver.prototxt"):
        committed = (engine.MODELS / "caffenet" / name).read_text().split("\n", 1)[1]
        assert committed == caffenet.write_model_files(tmp_path / "gen")[name]
    solver = (engine.MODELS / "caffenet" / "solver.prototxt").read_text()
    for line in ("base_lr: 0.001", 'lr_policy: "step"', "gamma: 0.1", "stepsize: 500",
                 "max_iter: 4000", "momentum: 0.9", "weight_decay: 0.0005", "snapshot: 500",
                 "test_interval: 500", "display: 50"):
        assert line in solver.splitlines(), line
    caffe = engine.import_caffe()
    # An "ImageNet" CaffeNet: the same layers with the original 1000-way fc8.
    imagenet = tmp_path / "imagenet.prototxt"
    imagenet.write_text(caffenet.deploy(1000, batch=1).replace(caffenet.LAST_LAYER, "fc8"))
    source = caffe.Net(str(imagenet), caffe.TEST)
    source.save(str(tmp_path / "imagenet.caffemodel"))
    ours = caffe.Net(str(engine.MODELS / "caffenet" / "deploy.prototxt"), caffe.TEST)
    before = ours.params[caffenet.LAST_LAYER][0].data.copy()
    ours.copy_from(str(tmp_path / "imagenet.caffemodel"))
    for layer in ("conv1", "conv5", "fc6", "fc7"):
        np.testing.assert_array_equal(ours.params[layer][0].data, source.params[layer][0].data)
    assert ours.params[caffenet.LAST_LAYER][0].data.shape == (4, 4096)
    np.testing.assert_array_equal(ours.params[caffenet.LAST_LAYER][0].data, before)


def test_training_resumes_from_the_newest_snapshot(trained, tmp_path):
    root, _, _, _, _ = trained
    solver = caffenet.REPORT_SOLVER.override(max_iter=10, base_lr=0.01, batch_size=12,
                                             test_batch_size=12, test_interval=10,
                                             snapshot=10, display=5)
    messages = []
    sv.train(root / "dataset", tmp_path / "run", solver, progress=False, log=messages.append)
    rows, _ = sv.train(root / "dataset", tmp_path / "run", solver.override(max_iter=20),
                       progress=False, log=messages.append)
    assert messages[-1] == "resuming from caffenet_iter_10.solverstate"
    log = (tmp_path / "run" / "train.log").read_text()
    assert "Resuming from" in log and "caffenet_iter_10.solverstate" in log
    assert [r["iteration"] for r in rows][-2:] == [10, 15]
    assert (tmp_path / "run" / "snapshots" / "caffenet_iter_20.caffemodel").exists()
