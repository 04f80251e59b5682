"""What a person looks at: class folders, contact sheets, plots.

Class folders follow report §3.1.6-3.1.7 (DEC's dispSingleImg):
classes_<db>/<cluster>/<index>.jpg, index = the sample's position in
<db>_total. Contact sheets follow DEC's vis_cluster: per cluster, the samples
with the highest q_ij.
"""
import os
import shutil
from pathlib import Path

import numpy as np

from data_prep.images import grid, to_hwc, to_pil


def class_folders(images, y_pred, out_dir, n_clusters):
    """Write every image into <out_dir>/<cluster>/<index>.jpg, one folder per
    cluster (empty ones too), built beside and renamed into place, so an
    interrupt leaves the old folder or the new one."""
    out_dir = Path(out_dir)
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    for cluster in range(n_clusters):
        (tmp / str(cluster)).mkdir(parents=True)
    for index, (image, cluster) in enumerate(zip(images, y_pred)):
        to_pil(image).save(tmp / str(int(cluster)) / f"{index}.jpg", quality=95)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    os.rename(tmp, out_dir)
    return {c: int((y_pred == c).sum()) for c in range(n_clusters)}


def enlarge(image, min_side=48):
    """Small images (8x8 digits, 28x28 MNIST) scaled up by whole pixels to be seen."""
    image = to_hwc(image)
    factor = max(1, -(-min_side // min(image.shape[:2])))
    return image.repeat(factor, axis=0).repeat(factor, axis=1) if factor > 1 else image


def contact_sheets(images, q, out_dir, top=100, columns=10):
    """One sheet per cluster: its `top` samples by q_ij, best first."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for cluster in range(q.shape[1]):
        order = np.argsort(-q[:, cluster])[:top]
        path = out_dir / f"cluster_{cluster}.png"
        to_pil(grid([enlarge(images[i]) for i in order], columns)).save(path)
        paths.append(path)
    return paths


def rounds_png(history, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rounds = [h["round"] for h in history]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for key in ("acc", "nmi", "ari", "changed"):
        if history and key in history[0]:
            ax.plot(rounds, [h[key] for h in history], marker=".", label=key)
    ax.set_xlabel("DEC round")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
