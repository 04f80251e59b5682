"""Image files: listing a photo folder (or a fetch output), reading any image
mode into RGB, checking that a file decodes, and tiling images into a grid.
"""
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".bmp", ".tif", ".tiff", ".webp"}


def to_rgb(im):
    """Any mode as 8-bit RGB: transparency over white; 16-bit and 32-bit grey
    scaled by their range (PIL's convert would clip them to white)."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        values = np.asarray(im, dtype=np.float64)
        top = 65535.0 if im.mode.startswith("I;16") or values.max() > 255 else 255.0
        im = Image.fromarray(np.clip(values / top * 255.0, 0, 255).round().astype(np.uint8))
    if im.mode in ("RGBA", "LA") or (im.mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA")
        background = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(background, im)
    return im.convert("RGB")


def load_photo(path, size):
    """Any mode (grey, 16-bit, RGBA, CMYK, palette), EXIF-rotated → RGB uint8 of size (w, h)."""
    with Image.open(path) as im:
        im = to_rgb(ImageOps.exif_transpose(im)).resize(size, Image.BICUBIC)
        return np.asarray(im, dtype=np.uint8)


def usable_name(path):
    """A file name every later step can write (CSV, listings, prototxt): UTF-8,
    no line breaks."""
    name = Path(path).name
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\n" not in name and "\r" not in name


def list_photos(source, log=print):
    """Image files of a folder, or the 'ok' files of a fetch manifest folder.
    A file whose name is not UTF-8 or holds a line break is reported and left out."""
    source = Path(source)
    if not source.is_dir():
        raise FileNotFoundError(f"{source} is not a folder of images")
    manifest = source / "manifest.sqlite"
    if manifest.exists():
        from . import photos
        con = photos.open_readonly(source)
        files = [source / r["file"] for r in photos.rows(con, "status = 'ok'")]
        con.close()
    else:
        files = sorted(p for p in source.iterdir()
                       if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    for path in files:
        if not usable_name(path):
            log(f"skipped {ascii(str(path))}: the file name is not UTF-8 or holds a line break")
    files = [path for path in files if usable_name(path)]
    if not files:
        raise ValueError(f"{source}: no images found")
    return files


def readable(path):
    """None if PIL can decode the whole image, else the reason."""
    try:
        with Image.open(path) as im:
            im.load()                 # every pixel: a truncated file fails here
        return None
    except Exception as err:          # any decoder error, a decompression bomb too
        return f"{err.__class__.__name__}: {err}"


class Unreadable(ValueError):
    """An image file that does not decode completely."""


def decode_bgr(path):
    """The image as Caffe's tools read it (OpenCV, BGR uint8), only when the
    whole file decodes: OpenCV pads a truncated JPEG grey and *raises* on a
    header over its pixel limit, so PIL decodes it completely first (the
    fetcher's rule) and any error of either is Unreadable, never fatal."""
    import cv2
    reason = readable(path)
    if reason:
        raise Unreadable(f"{path}: {reason}")
    try:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    except cv2.error as err:
        raise Unreadable(f"{path}: OpenCV: {str(err).strip().splitlines()[-1]}") from None
    if image is None:
        raise Unreadable(f"{path}: OpenCV (Caffe's decoder) cannot read it")
    return image


def to_hwc(image):
    """A (C, H, W) datum array or (H, W[, C]) array → (H, W, C) uint8."""
    image = np.asarray(image, dtype=np.uint8)
    if image.ndim == 3 and image.shape[0] in (1, 3) and image.shape[2] not in (1, 3):
        image = image.transpose(1, 2, 0)
    if image.ndim == 2:
        image = image[..., None]
    return image


def to_pil(image):
    image = to_hwc(image)
    return Image.fromarray(image[..., 0] if image.shape[2] == 1 else image)


def grid(images, columns=10, pad=1):
    """Tile (H, W, C) images into one image, row by row (DEC's dispImg)."""
    images = [to_hwc(im) for im in images]
    h, w, c = images[0].shape
    rows = (len(images) + columns - 1) // columns
    sheet = np.full((rows * (h + pad) + pad, columns * (w + pad) + pad, c), 255, np.uint8)
    for i, im in enumerate(images):
        r, col = divmod(i, columns)
        sheet[pad + r * (h + pad):pad + r * (h + pad) + h,
              pad + col * (w + pad):pad + col * (w + pad) + w] = im
    return sheet
