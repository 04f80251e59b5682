"""Labelled photo sets (report §4.1.1, Table 3; §8.3): a CSV `path,label`
(label = class name), made from a folder tree `<root>/<class>/<file>` (also
DEC's exported cluster folders once renamed, and the review folders of
`classify`) or from file-name prefixes (`heritage_0001.jpg`, as the report's
DEC loader), and a seeded random sample to label by hand.
"""
import csv
import os
import shutil
from collections import Counter
from pathlib import Path

import numpy as np

from .files import atomic, building, unique_path
from .images import IMAGE_SUFFIXES, list_photos

PHOTO_CLASSES = ("heritage", "being", "scenery", "other")   # report §3.3 load_label
# The report names the class "Beings" (Table 3); its loader's file prefix is "being".
CLASS_ALIASES = {"beings": "being"}


def class_name(name):
    """A class name as read from data (a file prefix, a folder, a CSV, an
    option): the report's four classes in the loader's spelling, whatever the
    case, "Beings" as "being"; any other name as it is."""
    name = str(name).strip()
    low = CLASS_ALIASES.get(name.lower(), name.lower())
    return low if low in PHOTO_CLASSES else name


def label_of(filename, classes=PHOTO_CLASSES):
    """The class from the file-name prefix before '_' (report: load_label), or None."""
    prefix = class_name(Path(filename).name.split("_")[0])
    return classes.index(prefix) if prefix in classes else None


def sample(source, n, out_dir, seed=1234):
    """Copy a seeded random sample of n photos (folder or fetch output) to label."""
    files = list_photos(source)
    if n > len(files):
        raise ValueError(f"{source} has {len(files)} photos, fewer than {n}")
    chosen = [files[i] for i in np.random.RandomState(seed).choice(len(files), n, replace=False)]
    with building(out_dir, inputs=[source]) as partial:
        used = set()
        for path in chosen:
            shutil.copy2(path, unique_path(partial / path.name, used))
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
        items += [(f.resolve() if f.is_symlink() else f, class_name(folder.name))
                  for f in files]
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


def unlabelled(folder):
    """[(path, "")] for every photo of a folder (or fetch output): the whole
    collection, e.g. for the size filter of report §8."""
    return [(path, "") for path in list_photos(folder)]


def write_labels(items, path):
    """path,label rows; absolute paths, so the CSV means the same files
    wherever it is read from."""
    with atomic(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "label"])
        writer.writerows((os.path.abspath(p), label) for p, label in items)
    return Path(path)


def listed_path(text, csv_path):
    """A path from a list file, as every command reads it: relative paths are
    relative to the list's own folder (not to where a command runs)."""
    return Path(os.path.join(os.path.dirname(os.path.abspath(csv_path)), text))


def read_labels(path):
    """[(absolute path, class name or "" for no label)] of a path,label CSV
    (UTF-8, with or without the BOM that Excel writes)."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            rows = list(reader)
            header = reader.fieldnames or []
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a UTF-8 CSV file") from None
    if set(header) != {"path", "label"} or not rows:
        raise ValueError(f"{path}: expected a CSV with columns path,label")
    return [(listed_path(r["path"], path), class_name(r["label"] or "")) for r in rows
            if r["path"]]


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
