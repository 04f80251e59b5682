"""A trained CaffeNet on images: evaluation on a split (accuracy, per-class
precision/recall/F1, confusion; report §4-§7) and pseudo-labelling a whole
collection into review folders (§8).
"""
import csv
import shutil
from collections import Counter
from pathlib import Path

import numpy as np

from data_prep.checks import check_name
from data_prep.files import building, unique_path, write_json, write_text
from data_prep.image_datasets import IMAGE_SIDE, read_classes
from data_prep.images import Unreadable, decode_bgr, list_photos

from .. import engine, metrics
from . import nets as caffenet


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
    classes = read_classes(run_dir / "classes.txt")
    return net, mean, classes


def preprocess(path, mean):
    """As the TEST data layer sees a convert_imageset record: BGR, 256x256
    (cv::resize, linear), centre crop 227, minus the mean image's crop.
    Raises Unreadable for a file that does not decode completely."""
    import cv2
    image = cv2.resize(decode_bgr(path), (IMAGE_SIDE, IMAGE_SIDE)).astype(np.float32)
    off = (IMAGE_SIDE - caffenet.CROP) // 2
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
            except Unreadable as err:
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
    theirs, ours = read_classes(dataset_dir / "classes.txt"), read_classes(run_dir / "classes.txt")
    if theirs != ours:
        raise ValueError(f"{dataset_dir} has classes {theirs}, the run {run_dir} was trained on "
                         f"{ours}: evaluate a run on its own kind of dataset")
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
    the probabilities, and <out_dir>/<class>/<file> links (or copies) for review.
    out_dir is new (or empty) and outside the source: the photos are read-only,
    and a folder a person reviewed is never written into again. It is built
    beside and renamed into place at the end."""
    with building(out_dir, inputs=[source]) as partial:
        files = list_photos(source)
        kept, probs, classes = classify(run_dir, files, batch=batch, progress=progress, log=log)
        _fill(partial, run_dir, source, kept, probs, classes, copy)
    return dict(Counter(classes[int(p.argmax())] for p in probs))


def _fill(partial, run_dir, source, kept, probs, classes, copy):
    for label in classes:
        (partial / check_name(label, "class name")).mkdir()
    used = set()
    with open(partial / "predictions.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["file", "predicted"] + [f"p_{c}" for c in classes])
        for path, p in zip(kept, probs):
            label = classes[int(p.argmax())]
            target = unique_path(partial / label / path.name, used)
            writer.writerow([str(path.absolute()), label] + [f"{v:.4f}" for v in p])
            if copy:
                shutil.copy2(path, target)
            else:
                target.symlink_to(Path(path).resolve())
    # What was classified, for the review page (it serves files under it only).
    write_json(partial / "classify.json", {"source": str(Path(source).resolve()),
                                           "run": str(Path(run_dir).resolve()),
                                           "classes": list(classes)})
