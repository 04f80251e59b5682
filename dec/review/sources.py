"""What the review page shows: one list of images, grouped and scored, read
from a DEC run, a CaffeNet `classify` output, a labels CSV or a photo folder.

Every image gets a number (its position here); the page asks for images by
number only, and a file is served only when its real path lies under one of
the source's folders (`roots`): no path from a request ever reaches the disk.
"""
import csv
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from data_prep.files import read_json
from data_prep.images import list_photos
from data_prep.labels import PHOTO_CLASSES, class_name, read_labels
from data_prep.photos import MANIFEST, open_readonly


@dataclass
class Source:
    kind: str                  # "dec-run", "classify", "labels", "photos"
    path: Path                 # what the user named
    files: list                # image file per item (str, absolute)
    groups: list               # group names ("cluster 3", "heritage", ...)
    group_of: np.ndarray       # item → group index
    confidence: np.ndarray     # item → the model's score for its group (nan: none)
    classes: list              # classes the source suggests (may be empty)
    roots: list                # real paths of the folders files may be served from
    scores: np.ndarray = None  # item → every score (N x len(score_names)), or None
    score_names: list = field(default_factory=list)
    photo_dir: Path = None     # a fetch folder: descriptions from its manifest
    inputs: list = field(default_factory=list)   # real paths of every folder/file it reads

    def __len__(self):
        return len(self.files)

    def check_output(self, path, what):
        """`path` as a new output of the review: never one of the source's
        files nor inside a folder the source reads (the user's photos, the run
        under review)."""
        real = os.path.realpath(path)
        for given in self.inputs or self.roots:
            if real == given or real.startswith(given.rstrip(os.sep) + os.sep):
                raise ValueError(f"{what} {path} is inside {given}, which the review reads: "
                                 "write it somewhere else")
        return Path(path)

    def allowed(self, index):
        """The real path of item `index` if it lies under a root, else None."""
        real = os.path.realpath(self.files[index])
        return real if any(real == r or real.startswith(r + os.sep) for r in self.roots) else None


def open_source(path):
    """The source at `path`, whatever kind it is; one-line errors otherwise."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: give a DEC run folder, a classify "
                                "output folder, a labels CSV or a photo folder")
    if path.is_file():
        header = _csv_header(path)
        if header[:2] == ["file", "predicted"]:
            return classify_output(path.parent, path)
        if set(header) == {"path", "label"}:
            return labels_csv(path)
        raise ValueError(f"{path}: not a labels CSV (path,label) nor a classify "
                         "predictions.csv (file,predicted,p_...)")
    if (path / "results.json").exists() and (path / "predictions.csv").exists():
        return dec_run(path)
    if (path / "predictions.csv").exists():
        return classify_output(path, path / "predictions.csv")
    if any((path / marker).exists() for marker in ("stages.json", "dec/state.json")):
        raise ValueError(f"{path}: a DEC run that has not finished (no predictions.csv): the "
                         "same `dec run`/`reproduce` command finishes it")
    if (path / "run.json").exists():
        raise ValueError(f"{path}: a CaffeNet `train` run: review what `python -m dec classify "
                         f"{path} PHOTOS --out FOLDER` writes")
    try:
        return photo_folder(path)
    except ValueError:
        raise ValueError(f"{path}: no images, and not a DEC run (results.json) nor a classify "
                         "output (predictions.csv)") from None


def _csv_header(path):
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:      # Excel's BOM too
            return next(csv.reader(f), [])
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a UTF-8 CSV file") from None


def _roots(*folders):
    return sorted({os.path.realpath(f) for f in folders if f is not None})


def _absolute(file, base):
    """A listed path as every command reads it: relative to the list's folder
    (data_prep.labels.listed_path; os.path: pathlib costs seconds at 100 000 files)."""
    return os.path.join(os.path.abspath(base), str(file))


def dec_run(run_dir):
    """A DEC run: its clusters, each sample scored by q_ij of its cluster (the
    contact sheets' order). The image is the photo when the data set is a
    photo folder, else the run's class-folder image."""
    run_dir = Path(run_dir)
    results = read_json(run_dir / "results.json")
    n_clusters = int(results["clusters"])
    with open(run_dir / "predictions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    index = np.array([int(r["index"]) for r in rows])
    cluster = np.array([int(r["cluster"]) for r in rows], dtype=np.int32)
    confidence = np.array([float(r["q"]) for r in rows], dtype=np.float32)
    scores = None
    if (run_dir / "q.npy").exists():
        q = np.load(run_dir / "q.npy")
        if q.shape == (len(rows), n_clusters):
            scores = q.astype(np.float32)
    classes_dir = run_dir / Path(results.get("outputs", {}).get("classes",
                                                               f"classes_{results['dataset']}")).name
    folder = str(classes_dir.absolute())
    files = [os.path.join(folder, str(c), f"{i}.jpg") for i, c in zip(index, cluster)]
    roots, photo_dir = [run_dir], None
    data_dir = Path(results.get("data_dir", ""))
    meta_file = data_dir / f"{results['dataset']}_meta.json"
    names_file = data_dir / f"{results['dataset']}_named_label.npy"
    if results.get("data_dir") and meta_file.exists() and names_file.exists():
        recorded = read_json(meta_file).get("photo_dir")
        photo_dir = Path(recorded) if recorded else None
        names = np.load(names_file)
        if photo_dir and photo_dir.is_dir() and len(names) == len(rows):
            files = [os.path.join(photo_dir, names[i]) for i in index]
            roots.append(photo_dir)
        photo_dir = _fetch_folder(photo_dir) if photo_dir in roots else None
    return Source("dec-run", run_dir, files, [f"cluster {c}" for c in range(n_clusters)],
                  cluster, confidence, [], _roots(*roots), scores,
                  [f"cluster {c}" for c in range(n_clusters)], photo_dir,
                  _roots(*roots, results.get("data_dir") or None))


def classify_output(folder, csv_path):
    """`python -m dec classify` output: grouped by predicted class, scored by
    its probability, every class probability shown."""
    with open(csv_path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = next(reader)
        rows = list(reader)
    classes = [name[2:] for name in header[2:]]
    if not classes or not all(name.startswith("p_") for name in header[2:]):
        raise ValueError(f"{csv_path}: expected columns file,predicted,p_<class>...")
    files = [_absolute(r[0], folder) for r in rows]
    probs = np.array([[float(v) for v in r[2:]] for r in rows], dtype=np.float32).reshape(
        len(rows), len(classes))
    group_of = probs.argmax(axis=1).astype(np.int32) if len(rows) else np.zeros(0, np.int32)
    record = folder / "classify.json"
    photo_root = read_json(record)["source"] if record.exists() else None
    # Outputs older than classify.json: the folders of the files it lists.
    roots = [folder, photo_root] if photo_root else [folder, *{os.path.dirname(f) for f in files}]
    photo_dir = _fetch_folder(Path(photo_root)) if photo_root else None
    return Source("classify", Path(csv_path), files, [class_name(c) for c in classes], group_of,
                  probs[np.arange(len(rows)), group_of] if len(rows) else np.zeros(0, np.float32),
                  [class_name(c) for c in classes], _roots(*roots), probs,
                  [class_name(c) for c in classes], photo_dir,
                  _roots(*roots, csv_path, *{os.path.dirname(f) for f in files}))


def labels_csv(csv_path):
    """A labels CSV (path,label): grouped by its labels, to check and correct."""
    csv_path = Path(csv_path)
    items = read_labels(csv_path)
    files = [str(p) for p, _ in items]                  # absolute: read_labels
    names = [label or "unlabelled" for _, label in items]
    found = list(dict.fromkeys(names))
    groups = [c for c in PHOTO_CLASSES if c in found] + sorted(set(found) - set(PHOTO_CLASSES))
    group_of = np.array([groups.index(n) for n in names], dtype=np.int32)
    classes = [g for g in groups if g != "unlabelled"]
    folders = {os.path.dirname(f) for f in files}
    return Source("labels", csv_path, files, groups, group_of,
                  np.full(len(files), np.nan, np.float32), classes,
                  _roots(csv_path.parent, *folders), inputs=_roots(csv_path, *folders))


def photo_folder(folder):
    """A plain photo folder (or fetch output), e.g. the Table 3 sample."""
    folder = Path(folder)
    files = [str(p.absolute()) for p in list_photos(folder, log=lambda _: None)]
    return Source("photos", folder, files, ["photos"], np.zeros(len(files), np.int32),
                  np.full(len(files), np.nan, np.float32), [], _roots(folder),
                  photo_dir=_fetch_folder(folder))


def _fetch_folder(folder):
    """The folder if it is a `fetch` output (it has the photos' descriptions)."""
    return folder if (Path(folder) / MANIFEST).exists() else None


def descriptions(photo_dir):
    """{file name: {lang: description}} from a fetch manifest (report §2)."""
    con = open_readonly(photo_dir)
    try:
        return {Path(file).name: json.loads(text) for file, text in con.execute(
            "SELECT file, descriptions FROM photos WHERE status = 'ok' AND file IS NOT NULL")}
    finally:
        con.close()
