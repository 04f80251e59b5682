"""Feature databases of images for DEC: STL-10 (make_stl_data.py) and photo
folders (report §3.3), streamed to LevelDB a chunk at a time.

Both write <name>_total (features, labelled, permuted), <name>_img (the same
images, uint8 C x H x W RGB, same order), <name>_train / <name>_test
(autoencoder data) and <name>_meta.json, like the pixel data sets.
"""
from pathlib import Path

import numpy as np
from PIL import Image

from . import datasets, db, features
from .images import grid, list_photos, load_photo
from .labels import PHOTO_CLASSES, label_of

STL_SIDE = 96
STL_CLASSES = ("airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship",
               "truck")
CHUNK = 512


def write_previews(out_dir, name, images):
    """DEC's visual check (load_stl): <name>_org.jpg, a 10x10 grid of the first
    100 images, and <name>_hog.jpg, their HOG glyph pictures."""
    images = [np.asarray(im) for im in images[:100]]
    if not images:
        return
    Image.fromarray(grid(images, 10)).save(Path(out_dir) / f"{name}_org.jpg", quality=92)
    pictures = [features.hog_picture(features.hog(im), 9) for im in images]
    Image.fromarray(grid(pictures, 10)[..., 0]).save(Path(out_dir) / f"{name}_hog.jpg",
                                                      quality=92)


# ---- STL-10 -------------------------------------------------------------------
def read_stl_images(path):
    """STL-10 binary images: N x 3 x 96 x 96 column-major → N x 96 x 96 x 3 RGB
    (a memory map; DEC's reshape + transpose(0, 3, 2, 1))."""
    path = Path(path)
    size = path.stat().st_size
    per_image = 3 * STL_SIDE * STL_SIDE
    if size == 0 or size % per_image:
        raise ValueError(f"{path}: {size} bytes is not a whole number of 96x96x3 images")
    raw = np.memmap(path, dtype=np.uint8, mode="r").reshape(-1, 3, STL_SIDE, STL_SIDE)
    return raw.transpose(0, 3, 2, 1)


def read_stl_labels(path):
    labels = np.fromfile(path, dtype=np.uint8).astype(np.int64) - 1   # 1..10 → 0..9
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise ValueError(f"{path}: labels outside 1..10")
    return labels


def _features_in_chunks(images, sbin, cmap_size, progress):
    parts = []
    for start in range(0, len(images), CHUNK):
        chunk = np.asarray(images[start:start + CHUNK])
        parts.append(features.dec_features(chunk, sbin, cmap_size, progress=progress)
                     .astype(np.float32))
    return np.concatenate(parts)


def make_stl_databases(stl_dir, out_dir, name="stl", seed=datasets.PERMUTATION_SEED,
                       include_unlabeled=True, progress=True):
    """make_stl_data.py: stl_total/stl_img = train + test permuted (seed 1234);
    stl_train/stl_test = total + unlabelled, permuted again, split 4/5."""
    stl_dir, out_dir = Path(stl_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    x_parts, y_parts, images = [], [], []
    for split in ("train", "test"):
        imgs = read_stl_images(stl_dir / f"{split}_X.bin")
        labels = read_stl_labels(stl_dir / f"{split}_y.bin")
        if len(imgs) != len(labels):
            raise ValueError(f"{stl_dir}: {split}_X.bin and {split}_y.bin differ in count")
        x_parts.append(_features_in_chunks(imgs, 8, features.STL_CMAP_SIZE, progress))
        y_parts.append(labels)
        images.append(imgs)
    write_previews(out_dir, name, np.asarray(images[0][:100]))
    rng = np.random.RandomState(seed)          # DEC: np.random.seed(1234), two draws
    x_total, y_total = np.concatenate(x_parts), np.concatenate(y_parts)
    order = rng.permutation(len(x_total))
    db.write_db(out_dir / f"{name}_total", x_total[order], y_total[order])
    offsets = np.cumsum([0] + [len(i) for i in images])

    def image(index):
        part = np.searchsorted(offsets, index, side="right") - 1
        return np.asarray(images[part][index - offsets[part]]).transpose(2, 0, 1)

    db.write_db(out_dir / f"{name}_img", (image(i) for i in order), y_total[order])
    x_all = x_total[order]
    unlabeled = stl_dir / "unlabeled_X.bin"
    if include_unlabeled and unlabeled.exists():
        x_all = np.concatenate([x_all, _features_in_chunks(
            read_stl_images(unlabeled), 8, features.STL_CMAP_SIZE, progress)])
    x_all = x_all[rng.permutation(len(x_all))]
    n_train = len(x_all) * 4 // 5
    db.write_db(out_dir / f"{name}_train", x_all[:n_train])
    db.write_db(out_dir / f"{name}_test", x_all[n_train:])
    datasets.write_meta(out_dir, name, {
        "name": name, "samples": int(len(x_total)), "dim": int(x_total.shape[1]),
        "n_train": int(n_train), "image_shape": [STL_SIDE, STL_SIDE, 3], "seed": seed,
        "source": "stl", "classes": list(STL_CLASSES), "clusters": 10,
        "features": "pyvision HOG sbin 8 + CrCb 8x8 (make_stl_data.py)"})
    return x_total.shape


# ---- photo folders (report §3.3) -----------------------------------------------------
def make_photo_databases(source, out_dir, name="custom", size=(96, 96),
                         cmap_size=features.PHOTO_CMAP_SIZE, seed=datasets.PERMUTATION_SEED,
                         classes=PHOTO_CLASSES, progress=True, log=print):
    """Report §3.3 load_data, streamed: files in a seeded random order, each read,
    brought to `size` (width, height), featurised, written to <name>_total and
    <name>_img; names in the same order in <name>_named_label.npy. Unreadable
    files are listed and skipped."""
    from joblib import Parallel, delayed
    from tqdm import tqdm
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = list_photos(source)
    files = [files[i] for i in np.random.RandomState(seed).permutation(len(files))]

    def work(path):
        try:
            image = load_photo(path, size)
        except Exception as err:           # any decoder error: report, skip, go on
            return path, None, None, f"{err.__class__.__name__}: {err}"
        return path, image, features.dec_feature(image, 8, cmap_size), None

    names, labels, skipped = [], [], []
    total_path, img_path = out_dir / f"{name}_total", out_dir / f"{name}_img"
    previews = []
    with db.Writer(total_path) as total, db.Writer(img_path) as img, \
            Parallel(n_jobs=-1, return_as="generator",
                     initializer=features.die_with_parent) as parallel, \
            tqdm(total=len(files), desc="photos", unit="img", disable=not progress) as bar:
        for start in range(0, len(files), CHUNK):
            for path, image, feature, error in parallel(delayed(work)(p)
                                                        for p in files[start:start + CHUNK]):
                bar.update(1)
                if error:
                    skipped.append((str(path), error))
                    continue
                label = label_of(path.name, classes)
                total.append(feature.astype(np.float32), -1 if label is None else label)
                img.append(image.transpose(2, 0, 1), -1 if label is None else label)
                names.append(path.name)
                labels.append(label)
                if len(previews) < 100:
                    previews.append(image)
        if not names:
            raise ValueError(f"{source}: none of the {len(files)} images could be read")
    for path, error in skipped:
        log(f"skipped {path}: {error}")
    write_previews(out_dir, name, previews)
    np.save(out_dir / f"{name}_named_label.npy", np.array(names))
    x, y = db.read_db(total_path)
    n_train = len(x) * 4 // 5
    db.write_db(out_dir / f"{name}_train", x[:n_train], y[:n_train])
    db.write_db(out_dir / f"{name}_test", x[n_train:], y[n_train:])
    labelled = all(label is not None for label in labels)
    datasets.write_meta(out_dir, name, {
        "name": name, "samples": len(names), "dim": int(x.shape[1]), "n_train": n_train,
        "image_shape": [size[1], size[0], 3], "seed": seed, "source": "photos",
        "photo_dir": str(Path(source).resolve()),   # names in _named_label.npy are in it
        "classes": list(classes),           # labels -1: a photo without a class prefix
        "clusters": len(classes), "skipped": skipped,
        "features": f"pyvision HOG sbin 8 + CrCb {cmap_size[0]}x{cmap_size[1]} (report §3.3)"})
    return {"written": len(names), "skipped": skipped, "labelled": labelled}
