"""DEC's image features: Felzenszwalb-style HOG as pyvision computes it, plus a
small colour map (make_stl_data.py; report §3.2-3.3).

`hog(image, sbin)` follows pyvision's `features.hog` (cvondrick/pyvision,
vision/features.pyx, itself after Felzenszwalb's features.cc) step for step,
vectorised with NumPy, and sums in the same order, so the numbers are the same:
  - per pixel of the whole cells (border pixels excepted), central differences
    in each colour channel; the channel with the largest squared magnitude wins
    (ties keep the earlier channel: R, then G, then B);
  - the gradient snaps to one of 9 contrast-insensitive orientations (the
    largest |u_o dx + v_o dy|, first one on ties; pyvision's rounded u, v);
  - its magnitude is shared bilinearly between the 4 nearest cells;
  - each cell is normalised by the energy of the four 2x2 blocks around it
    (+1e-4), each value truncated at 0.2; per cell 9 values (half the sum of
    the 4 normalisations) and 4 (0.2357 x the sum over orientations per block);
  - the outer ring of cells is dropped: (H//sbin - 2, W//sbin - 2, 13).
Images are rows x columns (height first), RGB.
"""
import numpy as np

# pyvision's unit vectors of the 9 orientations (0..160 degrees), as rounded there.
UU = np.array([1.0000, 0.9397, 0.7660, 0.500, 0.1736, -0.1736, -0.5000, -0.7660, -0.9397])
VV = np.array([0.0000, 0.3420, 0.6428, 0.8660, 0.9848, 0.9848, 0.8660, 0.6428, 0.3420])
EPS = 0.0001
TRUNCATE = 0.2
TEXTURE_WEIGHT = 0.2357
# DEC's feature scaling (make_stl_data.py): ((H - 0.2) * 10, (CrCb - 128) / 10).
HOG_SHIFT, HOG_SCALE = 0.2, 10.0
COLOUR_SHIFT, COLOUR_SCALE = 128.0, 10.0
STL_CMAP_SIZE = (8, 8)      # (width, height) for cv2.resize, make_stl_data.py
PHOTO_CMAP_SIZE = (6, 10)   # the report's photo loader (§3.3)


def hog(image, sbin=8):
    """HOG of an RGB image (H x W x 3, any numeric type) → (H//sbin-2, W//sbin-2, 13)."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"hog needs an H x W x 3 RGB image, got shape {image.shape}")
    blocks0, blocks1 = image.shape[0] // sbin, image.shape[1] // sbin   # rows, columns
    if blocks0 < 3 or blocks1 < 3:
        raise ValueError(f"image {image.shape[:2]} is too small for HOG with sbin {sbin} "
                         f"(needs at least {3 * sbin} pixels each way)")
    visible0, visible1 = blocks0 * sbin, blocks1 * sbin
    # x-major layout ([x, y, channel]) so that the pixel order below is pyvision's.
    data = np.asarray(image[:visible0, :visible1], dtype=np.float64).transpose(1, 0, 2)
    dx = data[2:, 1:-1] - data[:-2, 1:-1]     # d/dx at pixels x, y = 1 .. visible-2
    dy = data[1:-1, 2:] - data[1:-1, :-2]
    v = dx * dx + dy * dy
    best = v[..., 0]
    gx, gy = dx[..., 0], dy[..., 0]
    for c in (1, 2):                          # strictly larger wins: earlier channel on ties
        wins = v[..., c] > best
        best = np.where(wins, v[..., c], best)
        gx = np.where(wins, dx[..., c], gx)
        gy = np.where(wins, dy[..., c], gy)
    dots = np.abs(UU * gx[..., None] + VV * gy[..., None])
    orientation = np.argmax(dots, axis=2)     # the first of equal maxima, as the scan
    magnitude = np.sqrt(best)

    xs = np.arange(1, visible1 - 1, dtype=np.float64)
    ys = np.arange(1, visible0 - 1, dtype=np.float64)
    xp = (xs + 0.5) / sbin - 0.5
    yp = (ys + 0.5) / sbin - 0.5
    ixp, iyp = np.floor(xp).astype(np.int64), np.floor(yp).astype(np.int64)
    vx0, vy0 = xp - ixp, yp - iyp
    vx1, vy1 = 1.0 - vx0, 1.0 - vy0
    ixp, iyp = ixp[:, None], iyp[None, :]
    cells = blocks0 * blocks1
    base = orientation * cells
    # The 4 corners of every pixel, pixel by pixel (x-major), as pyvision adds them.
    corners = [
        (ixp * blocks0 + iyp, (ixp >= 0) & (iyp >= 0), vx1[:, None] * vy1[None, :]),
        ((ixp + 1) * blocks0 + iyp, (ixp + 1 < blocks1) & (iyp >= 0), vx0[:, None] * vy1[None, :]),
        (ixp * blocks0 + iyp + 1, (ixp >= 0) & (iyp + 1 < blocks0), vx1[:, None] * vy0[None, :]),
        ((ixp + 1) * blocks0 + iyp + 1, (ixp + 1 < blocks1) & (iyp + 1 < blocks0),
         vx0[:, None] * vy0[None, :]),
    ]
    index = np.stack([np.where(valid, base + cell, 9 * cells)
                      for cell, valid, _ in corners], axis=-1)
    weight = np.stack([np.where(valid, w * magnitude, 0.0) for _, valid, w in corners], axis=-1)
    # bincount adds in input order: the same sums, in the same order, as the loop.
    hist = np.bincount(index.ravel(), weights=weight.ravel(), minlength=9 * cells + 1)
    hist = hist[:9 * cells].reshape(9, blocks1, blocks0)       # [o, x, y]

    norm = np.zeros((blocks1, blocks0))
    for o in range(9):
        norm += hist[o] * hist[o]
    block = norm[:-1, :-1] + norm[:-1, 1:] + norm[1:, :-1] + norm[1:, 1:] + EPS
    n = [1.0 / np.sqrt(b) for b in (block[1:, 1:], block[1:, :-1], block[:-1, 1:], block[:-1, :-1])]
    out1, out0 = blocks1 - 2, blocks0 - 2
    feat = np.zeros((out1, out0, 13))
    totals = [np.zeros((out1, out0)) for _ in range(4)]
    for o in range(9):
        src = hist[o, 1:-1, 1:-1]
        h = [np.minimum(src * nk, TRUNCATE) for nk in n]
        feat[..., o] = 0.5 * (h[0] + h[1] + h[2] + h[3])
        for k in range(4):
            totals[k] += h[k]
    for k in range(4):
        feat[..., 9 + k] = TEXTURE_WEIGHT * totals[k]
    return feat.transpose(1, 0, 2)                              # [y, x, feature]


def colour_map(image, cmap_size):
    """Cr and Cb of the image resized to cmap_size = (width, height), as DEC."""
    import cv2
    small = cv2.resize(np.ascontiguousarray(image, dtype=np.uint8), cmap_size,
                       interpolation=cv2.INTER_LINEAR)
    ycrcb = cv2.cvtColor(small, cv2.COLOR_RGB2YCrCb)
    return ycrcb[..., 1:]


def dec_feature(image, sbin=8, cmap_size=STL_CMAP_SIZE):
    """make_stl_data.py's vector: concat((hog - 0.2) * 10, (CrCb - 128) / 10)."""
    image = np.asarray(image)
    h = hog(image, sbin)
    c = colour_map(image, cmap_size).astype(np.float64)
    return np.concatenate([((h - HOG_SHIFT) * HOG_SCALE).ravel(),
                           ((c - COLOUR_SHIFT) / COLOUR_SCALE).ravel()])


def feature_length(shape, sbin=8, cmap_size=STL_CMAP_SIZE):
    return ((shape[0] // sbin - 2) * (shape[1] // sbin - 2) * 13
            + cmap_size[0] * cmap_size[1] * 2)


def die_with_parent():
    """joblib worker initializer: the kernel ends the worker when the process
    that started it dies, kill -9 included (loky's idle workers outlived it)."""
    import ctypes
    import os
    import signal
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))   # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return                                     # not Linux: loky's own timeout
    if os.getppid() == 1:                          # the parent died before prctl
        os._exit(1)


def dec_features(images, sbin=8, cmap_size=STL_CMAP_SIZE, n_jobs=-1, progress=True):
    """dec_feature of many images (same size), in parallel with joblib."""
    from joblib import Parallel, delayed
    from tqdm import tqdm
    images = list(images) if not isinstance(images, np.ndarray) else images
    chunk = 64
    starts = range(0, len(images), chunk)

    def block(start):
        return np.stack([dec_feature(im, sbin, cmap_size) for im in images[start:start + chunk]])

    parts = Parallel(n_jobs=n_jobs, return_as="generator", initializer=die_with_parent)(
        delayed(block)(s) for s in starts)
    out = []
    with tqdm(total=len(images), desc="features", unit="img", disable=not progress,
              leave=False) as bar:
        for part in parts:
            out.append(part)
            bar.update(len(part))
    return np.concatenate(out) if out else np.zeros((0, 0))


def hog_picture(feat, resolution=9):
    """DEC's hog_picture: per cell, the maximum over orientations of its value
    times a bar glyph (a vertical 2-pixel bar turned by o x 20 degrees
    clockwise); negative values count as 0. Returns uint8, 0..255."""
    centre = resolution / 2.0 - 0.5
    yy, xx = np.mgrid[0:resolution, 0:resolution] - centre
    glyphs = []
    for o in range(9):
        angle = np.deg2rad(o * 20)
        # distance from the bar through the centre with direction (sin a, -cos a)
        distance = np.abs(xx * np.cos(angle) + yy * np.sin(angle))
        glyphs.append((distance < 1.0).astype(np.float64))
    rows, cols = feat.shape[:2]
    clamped = np.clip(feat[..., :9], 0, None)
    picture = np.zeros((rows * resolution, cols * resolution))
    for r in range(rows):
        for c in range(cols):
            cell = picture[r * resolution:(r + 1) * resolution, c * resolution:(c + 1) * resolution]
            for o in range(9):
                np.maximum(cell, clamped[r, c, o] * glyphs[o], out=cell)
    peak = picture.max()
    return (picture / peak * 255 if peak > 0 else picture).astype(np.uint8)
