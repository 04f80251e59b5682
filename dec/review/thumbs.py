"""Thumbnails for the review grid: made once with Pillow, kept on disk.

A thumbnail is named by a hash of the file's real path, size and mtime, so
a changed photo gets a new one and nothing has to be invalidated.
"""
import hashlib
import io
import os
import threading
from pathlib import Path

from PIL import Image, ImageOps

from data_prep.images import to_rgb

THUMB_SIDE = 192
# What browsers show as they are; anything else is sent as a JPEG.
BROWSER_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "GIF": "image/gif",
                   "WEBP": "image/webp", "BMP": "image/bmp"}


def default_cache():
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "heobs-dec" / "thumbs"


def _key(real_path):
    st = os.stat(real_path)
    return hashlib.sha1(f"{real_path}\0{st.st_size}\0{st.st_mtime_ns}".encode()).hexdigest()


def _small(image, side):
    image.draft("RGB", (side, side))       # JPEG: decode at 1/2..1/8 scale, much faster
    image = to_rgb(ImageOps.exif_transpose(image))
    if max(image.size) < 64:                # 8x8 digits, 28x28 MNIST: scaled up, sharp
        factor = -(-64 // max(image.size))
        image = image.resize((image.width * factor, image.height * factor), Image.NEAREST)
    image.thumbnail((side, side))
    return image


def thumbnail(real_path, cache_dir, side=THUMB_SIDE):
    """The cached thumbnail file of an image (made on first use)."""
    cache_dir = Path(cache_dir)
    key = _key(real_path)
    path = cache_dir / key[:2] / f"{key}-{side}.jpg"
    if not path.exists():
        with Image.open(real_path) as image:
            small = _small(image, side)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Its own temporary name: two requests may make the same thumbnail at once.
        tmp = path.with_name(f"{path.stem}.{os.getpid()}.{threading.get_ident()}.tmp.jpg")
        try:
            small.save(tmp, "JPEG", quality=85)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    return path


def viewable(real_path):
    """(bytes or path, mimetype) of the big view: the file itself when a
    browser shows it, else a JPEG of it (TIFF, 16-bit PNG...)."""
    with Image.open(real_path) as image:
        kind = BROWSER_FORMATS.get(image.format)
        if kind and not image.mode.startswith(("I", "F")):
            return real_path, kind
        out = io.BytesIO()
        _small(image, 2048).save(out, "JPEG", quality=90)
    return out.getvalue(), "image/jpeg"


def image_size(real_path):
    """(width, height), read from the header only."""
    with Image.open(real_path) as image:
        return image.size
