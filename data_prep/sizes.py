"""Image sizes (report §4.1.2, Figure 5): the resolution survey, the size
window and resizing into a new folder.
"""
from pathlib import Path

from PIL import Image, ImageOps

from .files import building, save_figure, unique_path
from .images import to_rgb


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


def survey_png(groups, path, top=30, inputs=()):
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
    save_figure(fig, path, inputs, named=True)


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
    smallest width and height in the set; originals are never touched (out_dir
    is a new folder outside them, renamed into place when done); unreadable
    images are reported and left out; two images of one name get two files.
    items: [(path, label)]; returns the new items and the size used."""
    out_dir = Path(out_dir)
    sized = with_sizes(items, log)
    if not sized:
        raise ValueError("no readable images to resize")
    if size is None:
        size = (min(s[0] for _, _, s in sized), min(s[1] for _, _, s in sized))
    resized, used = [], set()
    with building(out_dir, inputs={Path(p).resolve().parent for p, _, _ in sized}) as partial:
        for path, label, _ in sized:
            try:
                with Image.open(path) as im:
                    im = to_rgb(ImageOps.exif_transpose(im)).resize(size, Image.BICUBIC)
            except Exception as err:        # a decoder error past the header: report, skip
                log(f"skipped {path}: {err.__class__.__name__}: {err}")
                continue
            name = unique_path(partial / (Path(path).stem + ".jpg"), used).name
            im.save(partial / name, quality=95)
            resized.append((out_dir / name, label))
    return resized, size
