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

from data_prep.files import save_figure, write_text
from data_prep.images import grid, to_hwc, to_pil


def listing(folder):
    return sorted(str(p.relative_to(folder)) for p in Path(folder).rglob("*"))


def manifest_of(folder):
    """Beside the folder: what class_folders wrote into it, to tell a folder a
    person changed from ours."""
    return folder.with_name(folder.name + ".files")


def class_folders(images, y_pred, out_dir, n_clusters, log=print):
    """Write every image into <out_dir>/<cluster>/<index>.jpg, one folder per
    cluster (empty ones too), built beside and renamed into place, so an
    interrupt leaves the old folder or the new one. A folder a person has
    changed since (renamed, pruned, moved files: report §8.3) is never
    replaced: the new one goes to <out_dir>.2, .3, ... Returns (the folder
    written, {cluster: size})."""
    out_dir = Path(out_dir)
    target, n = out_dir, 1
    while target.exists():
        manifest = manifest_of(target)
        if manifest.exists() and manifest.read_text().splitlines() == listing(target):
            break                                  # untouched since we wrote it
        n += 1
        target = out_dir.with_name(f"{out_dir.name}.{n}")
    if target != out_dir:
        log(f"{out_dir} was changed since it was written (a review?): kept as it is; "
            f"the new class folders are in {target}")
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    for cluster in range(n_clusters):
        (tmp / str(cluster)).mkdir(parents=True)
    for index, (image, cluster) in enumerate(zip(images, y_pred)):
        to_pil(image).save(tmp / str(int(cluster)) / f"{index}.jpg", quality=95)
    manifest_of(target).unlink(missing_ok=True)    # no stale list while it is replaced
    if target.exists():
        shutil.rmtree(target)
    os.rename(tmp, target)
    write_text(manifest_of(target), "\n".join(listing(target)) + "\n")
    return target, {c: int((y_pred == c).sum()) for c in range(n_clusters)}


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


def rounds_png(history, path, title=""):
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
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)
