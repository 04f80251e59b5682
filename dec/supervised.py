"""The supervised half of the study (report §4-§8): labelled samples, the
resolution survey, CaffeNet datasets, fine-tuning through the `caffe` tool,
evaluation, and pseudo-labelling for review.

A labelled set is a CSV `path,label` (label = class name). It comes from a
folder tree `<root>/<class>/<file>` (also DEC's exported cluster folders once
renamed, §8.3, and the review folders of `classify`) or from file-name
prefixes (`heritage_0001.jpg`, as the report's DEC loader).
"""
import csv
import json
import os
import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from . import caffenet, engine, metrics
from .files import write_json, write_text
from .feature_data import IMAGE_SUFFIXES, PHOTO_CLASSES, label_of, list_photos

SPLITS = {"80/10/10": (0.8, 0.1, 0.1), "70/10/20": (0.7, 0.1, 0.2)}
REST = "rest"   # the other side of a one-vs-rest set


def readable(path):
    """None if PIL can decode the whole image, else the reason."""
    try:
        with Image.open(path) as im:
            im.load()
        return None
    except Exception as err:
        return f"{err.__class__.__name__}: {err}"


# ---- labels ---------------------------------------------------------------------
def sample(source, n, out_dir, seed=1234):
    """Copy a seeded random sample of n photos (folder or fetch output) to label."""
    files = list_photos(source)
    if n > len(files):
        raise ValueError(f"{source} has {len(files)} photos, fewer than {n}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    chosen = [files[i] for i in np.random.RandomState(seed).choice(len(files), n, replace=False)]
    for path in chosen:
        shutil.copy2(path, out_dir / path.name)
    return chosen


def labels_from_tree(root):
    """[(path, class)] from <root>/<class>/<file>: a folder is a class."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder")
    items = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = sorted(f for f in folder.iterdir()
                       if (f.is_file() or f.is_symlink()) and f.suffix.lower() in IMAGE_SUFFIXES)
        items += [(f.resolve() if f.is_symlink() else f, folder.name) for f in files]
    if not items:
        raise ValueError(f"{root}: no images in class folders (<root>/<class>/<file>)")
    return items


def labels_from_prefixes(folder, classes=PHOTO_CLASSES):
    """[(path, class)] from names like heritage_0001.jpg; others are left out."""
    items = []
    for path in list_photos(folder):
        label = label_of(path.name, classes)
        if label is not None:
            items.append((path, classes[label]))
    if not items:
        raise ValueError(f"{folder}: no file name starts with one of {', '.join(classes)}_")
    return items


def write_labels(items, path):
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "label"])
        writer.writerows((str(p), label) for p, label in items)
    os.replace(tmp, path)
    return path


def read_labels(path):
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows or set(rows[0]) != {"path", "label"}:
        raise ValueError(f"{path}: expected a CSV with columns path,label")
    return [(Path(r["path"]), r["label"]) for r in rows]


def class_table(items, title="Class counts"):
    """A table like the report's Table 3: class, count, share."""
    counts = Counter(label for _, label in items)
    total = sum(counts.values())
    width = max(len(c) for c in counts) + 2
    lines = [title, f"{'class'.ljust(width)}{'count':>7}{'share':>9}"]
    for label, count in sorted(counts.items()):
        lines.append(f"{label.ljust(width)}{count:7d}{count / total:9.1%}")
    lines.append(f"{'total'.ljust(width)}{total:7d}")
    return "\n".join(lines) + "\n"


# ---- resolution survey (report Figure 5) ------------------------------------------
def image_size(path):
    with Image.open(path) as im:
        return ImageOps.exif_transpose(im).size if im.getexif().get(0x0112) else im.size


def survey(files, tolerance=10):
    """Group (width, height) sizes: a size joins the first group whose first
    size is within `tolerance` pixels in both directions. Returns
    [(representative size, count, members)] largest group first, and the
    unreadable files."""
    groups, unreadable = [], []
    for path in files:
        try:
            size = image_size(path)
        except Exception as err:
            unreadable.append((path, f"{err.__class__.__name__}: {err}"))
            continue
        for group in groups:
            if abs(group[0][0] - size[0]) <= tolerance and abs(group[0][1] - size[1]) <= tolerance:
                group[1] += 1
                group[2].append((path, size))
                break
        else:
            groups.append([size, 1, [(path, size)]])
    groups.sort(key=lambda g: -g[1])
    return [tuple(g) for g in groups], unreadable


def survey_table(groups, tolerance):
    lines = [f"sizes grouped within {tolerance} px", f"{'width x height':>16}{'images':>8}"]
    lines += [f"{f'{w} x {h}':>16}{count:8d}" for (w, h), count, _ in groups]
    return "\n".join(lines) + "\n"


def survey_png(groups, path, top=30):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    shown = groups[:top]
    fig, ax = plt.subplots(figsize=(max(6, 0.35 * len(shown)), 4))
    ax.bar(range(len(shown)), [g[1] for g in shown])
    ax.set_xticks(range(len(shown)))
    ax.set_xticklabels([f"{w}x{h}" for (w, h), _, _ in shown], rotation=70, fontsize=7)
    ax.set_ylabel("images")
    ax.set_title("Image sizes (width x height), grouped")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def in_window(size, low, high):
    return low[0] <= size[0] <= high[0] and low[1] <= size[1] <= high[1]


def with_sizes(items, log=print):
    """[(path, label, (w, h))]; unreadable images are reported and left out."""
    sized = []
    for path, label in items:
        try:
            sized.append((path, label, image_size(path)))
        except Exception as err:
            log(f"skipped {path}: {err.__class__.__name__}: {err}")
    return sized


def window(items, low, high, log=print):
    """The report's size filter: keep images from low (w, h) to high (w, h)."""
    return [(p, label) for p, label, size in with_sizes(items, log) if in_window(size, low, high)]


def resize_all(items, out_dir, size=None, log=print):
    """Resize (BICUBIC) every image into out_dir — to `size` (w, h) or to the
    smallest width and height in the set; originals are never touched;
    unreadable images are reported and left out.
    items: [(path, label)]; returns the new items and the size used."""
    out_dir = Path(out_dir)
    if out_dir.resolve() in {Path(p).resolve().parent for p, _ in items}:
        raise ValueError(f"{out_dir} holds originals; resize into a new folder")
    sized = with_sizes(items, log)
    if not sized:
        raise ValueError("no readable images to resize")
    out_dir.mkdir(parents=True, exist_ok=True)
    if size is None:
        size = (min(s[0] for _, _, s in sized), min(s[1] for _, _, s in sized))
    resized = []
    for path, label, _ in sized:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im).convert("RGB").resize(size, Image.BICUBIC)
            target = out_dir / (Path(path).stem + ".jpg")
            im.save(target, quality=95)
        resized.append((target, label))
    return resized, size


# ---- datasets for Caffe -----------------------------------------------------------------
def select(items, mode="all", classes=None, positive=None):
    """all: every class; subset: only `classes` (e.g. omit "other");
    one-vs-rest: `positive` against everything else (named 'rest')."""
    if mode == "all":
        return list(items)
    if mode == "subset":
        keep = set(classes or [])
        missing = keep - {label for _, label in items}
        if missing:
            raise ValueError(f"no images of class {', '.join(sorted(missing))}")
        return [(p, label) for p, label in items if label in keep]
    if mode == "one-vs-rest":
        if positive not in {label for _, label in items}:
            raise ValueError(f"no images of class {positive!r}")
        return [(p, label if label == positive else REST) for p, label in items]
    raise ValueError(f"unknown mode {mode!r} (all, subset, one-vs-rest)")


def stratified_split(items, ratios=SPLITS["80/10/10"], seed=1234):
    """Per class, a seeded shuffle cut by `ratios`: (train, val, test)."""
    if abs(sum(ratios) - 1) > 1e-6 or len(ratios) != 3:
        raise ValueError(f"split ratios {ratios} must be three numbers adding up to 1")
    rng = np.random.RandomState(seed)
    parts = ([], [], [])
    for label in sorted({label for _, label in items}):
        members = sorted(p for p, l in items if l == label)
        members = [members[i] for i in rng.permutation(len(members))]
        n_train = int(round(ratios[0] * len(members)))
        n_val = int(round(ratios[1] * len(members)))
        cuts = (members[:n_train], members[n_train:n_train + n_val], members[n_train + n_val:])
        for part, chosen in zip(parts, cuts):
            part.extend((p, label) for p in chosen)
    return parts


def run_tool(name, args, log_path=None):
    cmd = [str(engine.tool(name))] + [str(a) for a in args]
    env = dict(os.environ, GLOG_logtostderr="1", GLOG_minloglevel="0")
    result = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if log_path:
        Path(log_path).write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        raise RuntimeError(f"{name} failed: {result.stderr.strip().splitlines()[-1:]}")
    return result


def prepare(items, out_dir, ratios=SPLITS["80/10/10"], seed=1234, backend="leveldb",
            log=print):
    """Split, then Caffe image databases (convert_imageset: 256x256, encoded)
    and the mean image (compute_image_mean). Unreadable images are reported
    and left out. Writes dataset.json with the classes and counts."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    good = []
    for path, label in items:
        reason = readable(path)
        if reason:
            log(f"skipped {path}: {reason}")
        else:
            good.append((Path(path).resolve(), label))
    classes = sorted({label for _, label in good})
    if len(classes) < 2:
        raise ValueError("a classifier needs at least two classes with readable images")
    index = {label: i for i, label in enumerate(classes)}
    splits = dict(zip(("train", "val", "test"), stratified_split(good, ratios, seed)))
    counts = {}
    for split, part in splits.items():
        if not part:
            raise ValueError(f"the {split} split is empty: too few images for ratios {ratios}")
        listing = out_dir / f"{split}.txt"
        write_text(listing, "".join(f"{p} {index[label]}\n" for p, label in part))
        db_path = out_dir / f"{split}_{backend}"
        shutil.rmtree(db_path, ignore_errors=True)
        run_tool("convert_imageset", [
            f"--resize_height={caffenet.IMAGE_SIDE}", f"--resize_width={caffenet.IMAGE_SIDE}",
            "--encoded", "--encode_type=jpg", f"--backend={backend}", "/", listing, db_path],
            out_dir / f"convert_{split}.log")
        counts[split] = dict(Counter(label for _, label in part))
    run_tool("compute_image_mean", [f"-backend={backend}", out_dir / f"train_{backend}",
                                    out_dir / "mean.binaryproto"], out_dir / "mean.log")
    info = {"classes": classes, "backend": backend, "ratios": list(ratios), "seed": seed,
            "counts": counts, "skipped": len(items) - len(good)}
    write_json(out_dir / "dataset.json", info)
    write_text(out_dir / "classes.txt", "\n".join(classes) + "\n")
    return info


# ---- training ------------------------------------------------------------------------
TRAIN_LINE = re.compile(r"Iteration (\d+) \(.*\), loss = ([-+.\deE]+|nan|inf)")
LR_LINE = re.compile(r"Iteration (\d+), lr = ([-+.\deE]+)")
TEST_START = re.compile(r"Iteration (\d+), Testing net")
TEST_OUTPUT = re.compile(r"Test net output #\d+: (\w+) = ([-+.\deE]+|nan|inf)")


def parse_log(text):
    """Caffe's training log → ([{iteration, loss, lr}], [{iteration, accuracy, loss}])."""
    train, test, lrs, current = [], [], {}, None
    for line in text.splitlines():
        if m := TRAIN_LINE.search(line):
            train.append({"iteration": int(m[1]), "loss": float(m[2])})
        elif m := LR_LINE.search(line):
            lrs[int(m[1])] = float(m[2])
        elif m := TEST_START.search(line):
            current = {"iteration": int(m[1])}
            test.append(current)
        elif (m := TEST_OUTPUT.search(line)) and current is not None:
            current[m[1]] = float(m[2])
    for row in train:
        row["lr"] = lrs.get(row["iteration"])
    return train, test


def curves_png(train, test, path, title="Training progress"):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot([r["iteration"] for r in train], [r["loss"] for r in train], label="train loss")
    if test:
        ax.plot([r["iteration"] for r in test], [r.get("loss", np.nan) for r in test],
                marker="o", label="val loss")
        ax2 = ax.twinx()
        ax2.plot([r["iteration"] for r in test], [r.get("accuracy", np.nan) for r in test],
                 marker="s", color="tab:green", label="val accuracy")
        ax2.set_ylim(0, 1)
        ax2.set_ylabel("accuracy")
        ax2.legend(loc="upper right")
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss")
    ax.legend(loc="upper left")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def train(dataset_dir, run_dir, solver=caffenet.REPORT_SOLVER, weights=None, resume=True,
          gpu=None, log=print, progress=True):
    """Fine-tune (or train from scratch) through `caffe train`, log kept as
    train.log; curves.csv and curves.png from it. Resumes from the newest
    snapshot of an interrupted run."""
    from tqdm import tqdm
    dataset_dir, run_dir = Path(dataset_dir).resolve(), Path(run_dir).resolve()
    info = json.loads((dataset_dir / "dataset.json").read_text())
    run_dir.mkdir(parents=True, exist_ok=True)
    backend = info["backend"]
    n_val = sum(info["counts"]["val"].values())
    net = run_dir / "train_val.prototxt"
    write_text(net, caffenet.train_val(len(info["classes"]), dataset_dir / f"train_{backend}",
                                          dataset_dir / f"val_{backend}",
                                          dataset_dir / "mean.binaryproto", solver,
                                          backend.upper()))
    write_text(run_dir / "deploy.prototxt", caffenet.deploy(len(info["classes"])))
    shutil.copy(dataset_dir / "classes.txt", run_dir / "classes.txt")
    shutil.copy(dataset_dir / "mean.binaryproto", run_dir / "mean.binaryproto")
    solver_file = run_dir / "solver.prototxt"
    test_iter = max(1, -(-n_val // solver.test_batch_size))
    write_text(solver_file, caffenet.solver_text(net, run_dir / "snapshots" / "caffenet",
                                                    test_iter, solver,
                                                    "CPU" if gpu is None else "GPU"))
    (run_dir / "snapshots").mkdir(exist_ok=True)
    args = [f"--solver={solver_file}"]
    states = sorted((run_dir / "snapshots").glob("caffenet_iter_*.solverstate"),
                    key=lambda p: int(p.stem.rsplit("_", 1)[1]))
    if resume and states:
        args.append(f"--snapshot={states[-1]}")
        log(f"resuming from {states[-1].name}")
    elif weights:
        if not Path(weights).exists():
            raise FileNotFoundError(f"{weights} is missing (make fetch-caffenet)")
        args.append(f"--weights={weights}")
        log(f"fine-tuning from {weights}")
    else:
        log("no --weights: training CaffeNet from scratch (expect poor results on small sets; "
            "make fetch-caffenet gets the ImageNet weights)")
    if gpu is not None:
        args.append(f"--gpu={gpu}")
    env = dict(os.environ, GLOG_logtostderr="1", GLOG_minloglevel="0")
    log_path = run_dir / "train.log"
    with open(log_path, "a") as log_file, \
            tqdm(total=solver.max_iter, desc="caffe train", unit="it", disable=not progress) as bar:
        proc = subprocess.Popen([str(engine.tool("caffe")), "train"] + args, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for line in proc.stdout:
            log_file.write(line)
            if m := TRAIN_LINE.search(line):
                bar.n = int(m[1])
                bar.set_postfix(loss=m[2])
                bar.refresh()
        if proc.wait() != 0:
            raise RuntimeError(f"caffe train failed; see {log_path}")
    rows, tests = parse_log(log_path.read_text())
    with open(run_dir / "curves.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["phase", "iteration", "loss", "accuracy", "lr"])
        writer.writerows(["train", r["iteration"], r["loss"], "", r["lr"]] for r in rows)
        writer.writerows(["val", r["iteration"], r.get("loss", ""), r.get("accuracy", ""), ""]
                         for r in tests)
    curves_png(rows, tests, run_dir / "curves.png")
    final = run_dir / "snapshots" / f"caffenet_iter_{solver.max_iter}.caffemodel"
    if final.exists():
        shutil.copy(final, run_dir / "caffenet.caffemodel")
    return rows, tests


# ---- evaluation and classification -----------------------------------------------------
def load_classifier(run_dir, weights=None, batch=50):
    caffe = engine.import_caffe()
    run_dir = Path(run_dir)
    weights = Path(weights or run_dir / "caffenet.caffemodel")
    if not weights.exists():
        raise FileNotFoundError(f"{weights} is missing: train first")
    net = caffe.Net(str(run_dir / "deploy.prototxt"), str(weights), caffe.TEST)
    blob = caffe.proto.caffe_pb2.BlobProto()
    blob.ParseFromString((run_dir / "mean.binaryproto").read_bytes())
    mean = np.asarray(blob.data, dtype=np.float32).reshape(blob.channels, blob.height, blob.width)
    classes = (run_dir / "classes.txt").read_text().split()
    return net, mean, classes


def preprocess(path, mean):
    """As the TEST data layer sees a convert_imageset record: BGR, 256x256
    (cv::resize, linear), centre crop 227, minus the mean image's crop."""
    import cv2
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"cannot read image {path}")
    image = cv2.resize(image, (caffenet.IMAGE_SIDE, caffenet.IMAGE_SIDE)).astype(np.float32)
    off = (caffenet.IMAGE_SIDE - caffenet.CROP) // 2
    chw = image.transpose(2, 0, 1)[:, off:off + caffenet.CROP, off:off + caffenet.CROP]
    return chw - mean[:, off:off + caffenet.CROP, off:off + caffenet.CROP]


def classify(run_dir, files, batch=50, weights=None, progress=True, log=print):
    """Class probabilities for image files: (kept files, probs N x C, classes);
    unreadable files are reported and skipped."""
    from tqdm import tqdm
    net, mean, classes = load_classifier(run_dir, weights)
    kept, probs = [], []
    for start in tqdm(range(0, len(files), batch), desc="classify", unit="batch",
                      disable=not progress):
        arrays = []
        for path in files[start:start + batch]:
            try:
                arrays.append(preprocess(path, mean))
                kept.append(Path(path))
            except ValueError as err:
                log(f"skipped {err}")
        if not arrays:
            continue
        net.blobs["data"].reshape(len(arrays), 3, caffenet.CROP, caffenet.CROP)
        net.blobs["data"].data[...] = np.stack(arrays)
        probs.append(net.forward()["prob"].reshape(len(arrays), -1).copy())
    return kept, (np.concatenate(probs) if probs else np.zeros((0, len(classes)))), classes


def per_class_scores(counts):
    """Precision, recall and F1 per class from counts[actual, predicted]."""
    tp = np.diag(counts).astype(np.float64)
    precision = np.divide(tp, counts.sum(axis=0), out=np.zeros_like(tp), where=counts.sum(0) > 0)
    recall = np.divide(tp, counts.sum(axis=1), out=np.zeros_like(tp), where=counts.sum(1) > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros_like(tp),
                   where=(precision + recall) > 0)
    return precision, recall, f1


def evaluate(run_dir, dataset_dir, split="test", weights=None, progress=True):
    """Accuracy, per-class precision/recall/F1 and the confusion matrix on a split;
    writes evaluation.json, evaluation.txt and confusion_<split>.png."""
    run_dir, dataset_dir = Path(run_dir), Path(dataset_dir)
    lines = (dataset_dir / f"{split}.txt").read_text().splitlines()
    files = [Path(line.rsplit(" ", 1)[0]) for line in lines]
    actual = np.array([int(line.rsplit(" ", 1)[1]) for line in lines])
    kept, probs, classes = classify(run_dir, files, weights=weights, progress=progress)
    keep = np.isin([str(f) for f in files], [str(k) for k in kept])
    actual = actual[keep]
    predicted = probs.argmax(axis=1)
    counts = metrics.confusion(actual, predicted, len(classes), len(classes))
    precision, recall, f1 = per_class_scores(counts)
    result = {"split": split, "images": int(len(actual)),
              "accuracy": float((actual == predicted).mean()),
              "per_class": {c: {"precision": float(p), "recall": float(r), "f1": float(f),
                                "support": int(s)}
                            for c, p, r, f, s in zip(classes, precision, recall, f1,
                                                     counts.sum(axis=1))},
              "confusion": counts.tolist(), "classes": classes}
    text = [f"{split}: {len(actual)} images, accuracy {result['accuracy']:.4f}", "",
            f"{'class':12s}{'precision':>10}{'recall':>8}{'f1':>8}{'support':>9}"]
    text += [f"{c:12s}{v['precision']:10.3f}{v['recall']:8.3f}{v['f1']:8.3f}{v['support']:9d}"
             for c, v in result["per_class"].items()]
    text += ["", metrics.confusion_table(counts, classes)]
    write_text(run_dir / "evaluation.txt", "\n".join(text))
    write_json(run_dir / "evaluation.json", result)
    metrics.confusion_png(counts, run_dir / f"confusion_{split}.png", classes,
                          title=f"{split}: rows actual, columns predicted")
    return result


def pseudo_label(run_dir, source, out_dir, copy=False, batch=50, progress=True, log=print):
    """Classify every photo of a folder (or fetch output): predictions.csv with
    the probabilities, and <out_dir>/<class>/<file> links (or copies) for review."""
    files = list_photos(source)
    kept, probs, classes = classify(run_dir, files, batch=batch, progress=progress, log=log)
    out_dir = Path(out_dir)
    for label in classes:
        (out_dir / label).mkdir(parents=True, exist_ok=True)
    with open(out_dir / "predictions.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["file", "predicted"] + [f"p_{c}" for c in classes])
        for path, p in zip(kept, probs):
            label = classes[int(p.argmax())]
            writer.writerow([str(path), label] + [f"{v:.4f}" for v in p])
            target = out_dir / label / path.name
            if target.exists() or target.is_symlink():
                target.unlink()
            if copy:
                shutil.copy2(path, target)
            else:
                target.symlink_to(path.resolve())
    return dict(Counter(classes[int(p.argmax())] for p in probs))
