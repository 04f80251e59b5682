"""make bench-features: DEC feature vectors per second for 96x96 images, next
to scikit-image's HOG on the same images, in one process (then ours in
parallel with joblib on every core).
"""
import argparse
import os
import time

import numpy as np

from .. import features


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    args = parser.parse_args(argv)
    from skimage.feature import hog as skimage_hog
    # Smooth random shapes rather than white noise: closer to photos.
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:96, 0:96]
    images = []
    for _ in range(args.images):
        image = np.zeros((96, 96, 3))
        for _ in range(6):
            cy, cx, r = rng.uniform(0, 96, 2).tolist() + [rng.uniform(8, 30)]
            image[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = rng.uniform(0, 255, 3)
        images.append((image + rng.normal(0, 8, image.shape)).clip(0, 255).astype(np.uint8))

    def rate(fn):
        fn(images[0])
        start = time.perf_counter()
        for image in images:
            fn(image)
        return len(images) / (time.perf_counter() - start)

    ours = rate(features.dec_feature)
    theirs = rate(lambda im: skimage_hog(im, orientations=9, pixels_per_cell=(8, 8),
                                         cells_per_block=(2, 2), channel_axis=-1))
    # The worker processes start once per run (loky keeps them): warm them up
    # first, as a 142 459-photo collection amortises that start.
    stacked = np.stack(images)
    features.dec_features(stacked[:128], progress=False)
    start = time.perf_counter()
    together = features.dec_features(stacked, progress=False)
    parallel = len(images) / (time.perf_counter() - start)
    alone = np.stack([features.dec_feature(im) for im in images[:50]])
    same = np.array_equal(together[:50], alone)
    print(f"features of {len(images)} images of 96x96x3, one process:")
    print(f"  DEC feature (pyvision HOG + CrCb 8x8, 1428 values): {ours:8.1f} images/s")
    print(f"  scikit-image hog alone (9 orientations, 8x8 cells):  {theirs:8.1f} images/s")
    print(f"  ours is {ours / theirs:.2f}x scikit-image's rate")
    print(f"  DEC feature with joblib on every core ({os.cpu_count()}): {parallel:8.1f} images/s "
          f"({parallel / ours:.2f}x one process; the same features bit for bit: {same})")


if __name__ == "__main__":
    main()
