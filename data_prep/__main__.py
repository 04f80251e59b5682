"""heobs-dec's data preparation: python -m data_prep COMMAND ... (--help of each).

Photos (report §2):       fetch, verify, export
DEC's databases (§3):     data digits|fashion|mnist|mnist5k|stl|photos
A photo folder to try the supervised half on: export-photos
CaffeNet's data (§4-§8):  sample, labels, survey, resize, prepare
"""
import argparse
import json
import sys
from pathlib import Path

from .checks import check_name, image_side, nonneg_float, nonneg_int, positive_float, \
    positive_int, run_command, split_ratios
from .files import check_output_file

SOURCES = ("digits", "fashion", "mnist", "mnist5k", "stl", "photos")


# ---- photos.txt → images (report §2) --------------------------------------------------
def do_fetch(a):
    from . import photos
    config = photos.FetchConfig(base_url=a.base_url, size=a.size, concurrency=a.concurrency,
                                timeout=a.timeout, retries=a.retries, backoff=a.backoff,
                                max_rate=a.max_rate, max_bytes=a.max_bytes)
    print(photos.format_summary(photos.fetch(a.photos_txt, a.out, config,
                                             progress=not a.quiet)))


def do_verify(a):
    from . import photos
    problems = photos.verify(a.out)
    if problems:                  # marked broken: the next fetch downloads them again
        raise ValueError(f"files differ from the manifest: {json.dumps(problems)}")
    print("every ok file matches the manifest")


def do_export(a):
    from . import photos
    path, count = photos.export(a.out, a.csv)
    print(f"{count} photos → {path}")


# ---- DEC's databases (report §3) -------------------------------------------------------
def load_image_set(source, mnist_dir=None, limit=None):
    from . import datasets
    if source == "digits":
        image_set = datasets.load_digits()
    elif source == "fashion":
        image_set = datasets.load_fashion_mnist()
    elif source == "mnist":
        if not mnist_dir:
            raise FileNotFoundError("MNIST needs --mnist-dir (or `make mnist-data`)")
        image_set = datasets.load_mnist_folder(mnist_dir, "mnist", [str(i) for i in range(10)])
    elif source == "mnist5k":
        image_set = datasets.load_mnist5k()
    else:
        raise ValueError(f"unknown data set {source}; one of {SOURCES}")
    return datasets.subset(image_set, limit) if limit else image_set


def do_data(a):
    from . import db, files
    with files.locked(a.out):          # one writer per data folder
        db.remove_stale(a.out)
        make_data(a)


def make_data(a):
    from . import datasets, feature_data
    if a.source == "stl":
        if not a.stl_dir:
            raise FileNotFoundError("STL-10 needs --stl-dir (or `make stl-data`)")
        shape = feature_data.make_stl_databases(a.stl_dir, a.out)
        print(f"stl: {shape[0]} labelled samples of {shape[1]} features → {a.out}")
    elif a.source == "photos":
        if not a.photos:
            raise FileNotFoundError("photos need --photos FOLDER")
        name = check_name(a.name, "data set name")
        result = feature_data.make_photo_databases(a.photos, a.out, name, tuple(a.size),
                                                   tuple(a.cmap))
        print(f"{a.name}: {result['written']} photos written, "
              f"{len(result['skipped'])} skipped → {a.out}")
    else:
        image_set = load_image_set(a.source, a.mnist_dir, a.limit)
        paths = datasets.make_databases(image_set, a.out)
        print(f"{image_set.name}: {len(image_set.images)} samples of {image_set.dim} → "
              + ", ".join(str(p) for p in paths.values()))


def do_export_photos(a):
    from . import datasets
    image_set = (datasets.load_shapes(a.n, tuple(a.size)) if a.source == "shapes"
                 else load_image_set(a.source, a.mnist_dir))
    counts = datasets.write_photo_tree(image_set, a.out, a.classes, a.n, tuple(a.size), a.seed)
    print(", ".join(f"{k} {v}" for k, v in counts.items()) + f" → {a.out}/<class>/")


# ---- CaffeNet's data (report §4-§8) ------------------------------------------------------
def labels_of(a):
    from . import labels
    if a.labels:
        return labels.read_labels(a.labels)
    if a.tree:
        return labels.labels_from_tree(a.tree)
    if a.prefixes:
        return labels.labels_from_prefixes(a.prefixes)
    if getattr(a, "photos", None):
        return labels.unlabelled(a.photos)
    raise ValueError("give --labels CSV, --tree FOLDER or --prefixes FOLDER")


def do_sample(a):
    from . import labels
    chosen = labels.sample(a.source, a.n, a.out, a.seed)
    print(f"{len(chosen)} photos copied to {a.out}: label them by moving them into "
          f"{a.out}/<class>/ folders or renaming them <class>_<name>")


def do_labels(a):
    from . import labels
    items = labels_of(a)
    print(labels.class_table(items))
    if a.out:
        print(f"written {labels.write_labels(items, a.out)}")


def do_survey(a):
    from . import images, sizes
    files = images.list_photos(a.source) if a.source else [p for p, _ in labels_of(a)]
    folders = {Path(p).resolve().parent for p in files}
    if a.png:                 # before the survey: a refused name costs no time
        check_output_file(a.png, folders)
    groups, unreadable = sizes.survey(files, a.tolerance)
    print(sizes.survey_table(groups[:a.top], a.tolerance))
    for path, reason in unreadable:
        print(f"unreadable {path}: {reason}")
    if a.png:
        sizes.survey_png(groups, a.png, inputs=folders)
        print(f"histogram: {a.png}")


def do_resize(a):
    from . import labels, sizes
    items = labels_of(a)
    if a.window:
        low, high = tuple(a.window[:2]), tuple(a.window[2:])
        items = sizes.window(items, low, high)
        print(f"{len(items)} images inside the window {low}-{high}")
    resized, size = sizes.resize_all(items, a.out, tuple(a.size) if a.size else None)
    labels.write_labels(resized, Path(a.out) / "labels.csv")
    print(f"{len(resized)} images resized to {size[0]}x{size[1]} in {a.out} "
          f"(labels: {Path(a.out) / 'labels.csv'})")


def do_prepare(a):
    from . import image_datasets as ds
    items = ds.select(labels_of(a), a.mode, a.classes, a.positive)
    info = ds.prepare(items, a.out, a.split, a.seed, a.backend, shuffle=not a.class_order,
                      inputs=[folder for folder in (a.tree, a.prefixes) if folder])
    for split, counts in info["counts"].items():
        print(f"{split:5s} " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    print(f"databases and mean image in {a.out}")


def label_source(p, unlabelled=False):
    g = p.add_mutually_exclusive_group()
    g.add_argument("--labels", help="CSV path,label")
    g.add_argument("--tree", help="folder of class folders <root>/<class>/<file>")
    g.add_argument("--prefixes", help="folder of files named <class>_...")
    if unlabelled:
        g.add_argument("--photos", help="a folder of unlabelled photos (or a fetch output), "
                       "e.g. the whole collection for the §8 size filter")


def parser():
    from .photos import SIZES, FetchConfig
    top = argparse.ArgumentParser(prog="python -m data_prep", description=__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = top.add_subparsers(dest="command", required=True)

    p = sub.add_parser("fetch", help="download every photo of photos.txt (resumable)")
    p.add_argument("photos_txt")
    p.add_argument("--out", required=True, help="folder for the images and manifest.sqlite")
    defaults = FetchConfig()
    p.add_argument("--base-url", default=defaults.base_url)
    p.add_argument("--size", choices=SIZES, help="the CDN's size (default: original)")
    p.add_argument("--concurrency", type=positive_int, default=defaults.concurrency)
    p.add_argument("--max-rate", type=positive_float, help="cap on requests per second")
    p.add_argument("--timeout", type=positive_float, default=defaults.timeout)
    p.add_argument("--retries", type=nonneg_int, default=defaults.retries)
    p.add_argument("--backoff", type=nonneg_float, default=defaults.backoff)
    p.add_argument("--max-bytes", type=positive_int, default=defaults.max_bytes,
                   help=f"largest photo accepted ({defaults.max_bytes >> 20} MiB)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=do_fetch)
    p = sub.add_parser("verify", help="re-check the files on disk against the manifest")
    p.add_argument("--out", required=True)
    p.set_defaults(handler=do_verify)
    p = sub.add_parser("export", help="write photos.csv (uuid, file, size, descriptions)")
    p.add_argument("--out", required=True)
    p.add_argument("--csv")
    p.set_defaults(handler=do_export)

    p = sub.add_parser("data", help="write DEC's <name>_{train,test,total,img} LevelDBs")
    p.add_argument("source", choices=SOURCES)
    p.add_argument("--out", default="data", help="folder for the databases (data)")
    p.add_argument("--limit", type=positive_int, help="a seeded random subset of N samples")
    p.add_argument("--mnist-dir", help="folder with the four MNIST IDX files (.gz or raw)")
    p.add_argument("--stl-dir", help="folder with STL-10's *_X.bin / *_y.bin files")
    p.add_argument("--photos", help="folder of photos (or a fetch output folder)")
    p.add_argument("--name", default="custom", help="database name for photos (custom)")
    p.add_argument("--size", type=image_side, nargs=2, default=(96, 96), metavar=("W", "H"),
                   help="photos are resized to W x H before features (96 96)")
    p.add_argument("--cmap", type=image_side, nargs=2, default=(6, 10), metavar=("W", "H"),
                   help="colour map size for photos (report: 6 10)")
    p.set_defaults(handler=do_data)

    p = sub.add_parser("export-photos", help="a labelled photo folder with a known answer "
                       "(<out>/<class>/<class>_<n>.jpg) from shapes, digits, fashion or mnist")
    p.add_argument("source", choices=("shapes", "digits", "fashion", "mnist", "mnist5k"))
    p.add_argument("--out", required=True)
    p.add_argument("--classes", type=nonneg_int, nargs="+", required=True,
                   help="class indices")
    p.add_argument("-n", type=positive_int, default=150, help="images per class (150)")
    p.add_argument("--size", type=image_side, nargs=2, default=(200, 150), metavar=("W", "H"),
                   help="photo-like size (200 150: inside the report's window)")
    p.add_argument("--mnist-dir", help="for mnist: folder with the IDX files")
    p.add_argument("--seed", type=int, default=1234)
    p.set_defaults(handler=do_export_photos)

    p = sub.add_parser("sample", help="copy a seeded random sample of photos to label")
    p.add_argument("source")
    p.add_argument("-n", type=positive_int, default=1000)
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=1234)
    p.set_defaults(handler=do_sample)

    p = sub.add_parser("labels", help="read labels (tree or prefixes), print Table 3, write CSV")
    label_source(p)
    p.add_argument("--out", help="write the labels as CSV path,label")
    p.set_defaults(handler=do_labels)

    p = sub.add_parser("survey", help="image sizes grouped within a tolerance (Figure 5)")
    p.add_argument("source", nargs="?", help="a photo folder (or give a label source)")
    label_source(p)
    p.add_argument("--tolerance", type=nonneg_int, default=10)
    p.add_argument("--top", type=positive_int, default=30)
    p.add_argument("--png", help="histogram PNG")
    p.set_defaults(handler=do_survey)

    p = sub.add_parser("resize", help="filter by a size window, resize (BICUBIC) into a new folder")
    label_source(p, unlabelled=True)
    p.add_argument("--out", required=True)
    p.add_argument("--window", type=positive_int, nargs=4, metavar=("W0", "H0", "W1", "H1"),
                   help="keep sizes from W0xH0 to W1xH1 (report: 200 120 200 165)")
    p.add_argument("--size", type=image_side, nargs=2, metavar=("W", "H"),
                   help="target size (default: the smallest width and height)")
    p.set_defaults(handler=do_resize)

    p = sub.add_parser("prepare", help="split, Caffe image databases, mean image")
    label_source(p)
    p.add_argument("--out", required=True)
    p.add_argument("--mode", choices=("all", "subset", "one-vs-rest"), default="all")
    p.add_argument("--classes", nargs="+", help="for --mode subset (e.g. omit other)")
    p.add_argument("--positive", help="for --mode one-vs-rest")
    p.add_argument("--split", type=split_ratios, default="80/10/10",
                   help="train/val/test: 80/10/10, 70/10/20 or a/b/c")
    p.add_argument("--backend", choices=("leveldb", "lmdb"), default="leveldb")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--class-order", action="store_true",
                   help="keep the splits class by class, unshuffled: only to see what that "
                   "does to training (report §4.1.4)")
    p.set_defaults(handler=do_prepare)
    return top


def main(argv=None):
    return run_command(parser, argv)


if __name__ == "__main__":
    sys.exit(main())
