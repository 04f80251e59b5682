"""Caffe image datasets for CaffeNet (report §4-§7): class selection (all,
a subset such as "omit other", one class against the rest), a stratified
split, `convert_imageset` databases and the mean image.
"""
from collections import Counter
from pathlib import Path

import numpy as np

from .caffe_tools import run_tool
from .checks import check_name
from .files import building, write_json, write_text
from .images import Unreadable, decode_bgr
from .labels import class_name

IMAGE_SIDE = 256    # images are stored at 256x256, as BVLC's ImageNet data
SPLITS = {"80/10/10": (0.8, 0.1, 0.1), "70/10/20": (0.7, 0.1, 0.2)}
REST = "rest"   # the other side of a one-vs-rest set


def select(items, mode="all", classes=None, positive=None):
    """all: every class (or only `classes`); subset: only `classes` (e.g. omit
    "other", report §6); one-vs-rest: `positive` against the rest (named
    'rest'), of every class or of `classes` only (§6-7: omit "other", then one
    class against the rest). Class names as labels.class_name reads them."""
    if mode not in ("all", "subset", "one-vs-rest"):
        raise ValueError(f"unknown mode {mode!r} (all, subset, one-vs-rest)")
    if mode == "subset" and not classes:
        raise ValueError("--mode subset needs --classes")
    if classes:
        keep = {class_name(c) for c in classes}
        missing = keep - {label for _, label in items}
        if missing:
            raise ValueError(f"no images of class {', '.join(sorted(missing))}")
        items = [(p, label) for p, label in items if label in keep]
    if mode != "one-vs-rest":
        return list(items)
    if positive is None:
        raise ValueError("--mode one-vs-rest needs --positive")
    positive = class_name(positive)
    if positive not in {label for _, label in items}:
        raise ValueError(f"no images of class {positive!r}")
    return [(p, label if label == positive else REST) for p, label in items]


def stratified_split(items, ratios=SPLITS["80/10/10"], seed=1234, shuffle=True):
    """Per class, a seeded shuffle cut by `ratios`; then each split shuffled,
    so that the classes are mixed in every minibatch (convert_imageset keeps
    the listing's order; BVLC's recipes shuffle too). shuffle=False keeps the
    splits class by class: only to show what that does to training (report
    §4.1.4). (train, val, test)."""
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
    if not shuffle:
        return parts
    return tuple([part[i] for i in rng.permutation(len(part))] for part in parts)


def unique_items(items, log=print):
    """Each image once (by its real path): a path listed twice would land in
    two splits (test images in training). The same label twice is reported
    and kept once; two labels for one image is an error."""
    seen = {}
    first = {}
    for path, label in items:
        real = Path(path).resolve()
        if any(c in str(real) for c in "\n\r"):
            raise ValueError(f"image path {str(real)!r} holds a line break: rename it")
        # One file under two names (a hard link, a symlink) is one image: in
        # two splits it would be tested on what was trained on.
        try:
            stat = real.stat()
            identity = (stat.st_dev, stat.st_ino)
        except OSError:
            identity = real
        if identity in first:
            kept = first[identity]
            if seen[kept] != label:
                raise ValueError(f"{path} is labelled both {seen[kept]!r} and {label!r}")
            log(f"listed twice, kept once: {path}" + (f" (the same file as {kept})"
                                                     if kept != real else ""))
            continue
        first[identity] = real
        seen[real] = label
    return list(seen.items())


def readable_by_caffe(path):
    """None if the whole image decodes, by PIL and by OpenCV — what
    convert_imageset decodes with — else the reason (GIF, for one, is not
    read by OpenCV)."""
    try:
        decode_bgr(path)
    except Unreadable as err:
        return str(err).removeprefix(f"{path}: ")
    return None


def prepare(items, out_dir, ratios=SPLITS["80/10/10"], seed=1234, backend="leveldb",
            log=print, shuffle=True, inputs=()):
    """Split, then Caffe image databases (convert_imageset: 256x256, encoded)
    and the mean image (compute_image_mean). Unreadable images are reported
    and left out. Writes dataset.json with the classes and counts. inputs:
    folders read besides the images' own (a --tree root), never written into."""
    unlabelled = sum(1 for _, label in items if not label)
    if unlabelled:
        raise ValueError(f"{unlabelled} images have no label; label them first")
    # Absolute: a folder named "-x" never reaches Caffe's tools as a flag.
    out_dir = Path(out_dir).absolute()
    # Built beside and swapped in whole: an interrupt leaves the old dataset;
    # never among the images it reads, never over a folder of someone else's.
    inputs = {Path(p).resolve().parent for p, _ in items} | {Path(p).resolve() for p in inputs}
    with building(out_dir, inputs=inputs, replaces=is_prepared) as partial:
        return _prepare(items, partial, ratios, seed, backend, log, shuffle)


# What `prepare` writes: a folder holding only these (and dataset.json) is one
# it made, and a rerun may replace it.
PREPARED = {"dataset.json", "classes.txt", "mean.binaryproto", "mean.log", ".lock"} | {
    f"{split}{end}" for split in ("train", "val", "test")
    for end in (".txt", "_leveldb", "_lmdb")} | {
    f"convert_{split}.log" for split in ("train", "val", "test")}


def is_prepared(folder):
    """A dataset `prepare` made and nothing else: dataset.json and only its files."""
    folder = Path(folder)
    return (folder / "dataset.json").is_file() and all(
        entry.name in PREPARED for entry in folder.iterdir())


def _prepare(items, out_dir, ratios, seed, backend, log, shuffle):
    good = []
    for path, label in unique_items(items, log):
        reason = readable_by_caffe(path)
        if reason:
            log(f"skipped {path}: {reason}")
        else:
            good.append((path, label))
    classes = sorted({check_name(label, "class name") for _, label in good})
    if len(classes) < 2:
        raise ValueError("a classifier needs at least two classes with readable images")
    index = {label: i for i, label in enumerate(classes)}
    splits = dict(zip(("train", "val", "test"), stratified_split(good, ratios, seed, shuffle)))
    counts = {}
    for split, part in splits.items():
        if not part:
            raise ValueError(f"the {split} split is empty: too few images for ratios {ratios}")
        listing = out_dir / f"{split}.txt"
        write_text(listing, "".join(f"{p} {index[label]}\n" for p, label in part))
        db_path = out_dir / f"{split}_{backend}"
        run_tool("convert_imageset", [
            f"--resize_height={IMAGE_SIDE}", f"--resize_width={IMAGE_SIDE}",
            "--encoded", "--encode_type=jpg", f"--backend={backend}", "/", listing, db_path],
            out_dir / f"convert_{split}.log")
        counts[split] = dict(Counter(label for _, label in part))
    run_tool("compute_image_mean", [f"-backend={backend}", out_dir / f"train_{backend}",
                                    out_dir / "mean.binaryproto"], out_dir / "mean.log")
    info = {"classes": classes, "backend": backend, "ratios": list(ratios), "seed": seed,
            "shuffled": shuffle,
            "counts": counts, "skipped": len(items) - len(good)}
    write_json(out_dir / "dataset.json", info)
    write_text(out_dir / "classes.txt", "\n".join(classes) + "\n")
    return info


def read_classes(path):
    """classes.txt: one class name a line (names may hold blanks)."""
    classes = [line for line in Path(path).read_text(encoding="utf-8").splitlines() if line]
    if not classes:
        raise ValueError(f"{path} lists no classes")
    return classes
