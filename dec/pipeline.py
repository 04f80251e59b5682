"""DEC end to end: databases → autoencoder → clustering → metrics and folders.

Everything lands in one run folder:
  results.json           config, seed, timings, versions, metrics
  predictions.csv        index in <db>_total, cluster, max q, label
  confusion.txt / .png   report Tables 1-2 layout (when labels exist)
  rounds.png, dec/rounds.csv   per-round accuracy / NMI / changed fraction
  classes_<db>/<cluster>/<index>.jpg, sheets/cluster_<j>.png
  deploy.prototxt + dec.caffemodel + centres.npy   for `python -m dec predict`
"""
import csv
import json
import os
import platform
import shutil
import time
from pathlib import Path

import numpy as np

from data_prep import datasets, db
from data_prep.files import write_json

from . import autoencoder, export, metrics, multi_t
from .cluster import ClusterRun
from .engine import import_caffe


def schedule_for(meta, sched):
    """The schedule with the data's input size and number of clusters."""
    dims = (meta["dim"],) + tuple(sched.dims[1:])
    return sched.override(dims=dims)


def versions():
    import sklearn
    caffe = import_caffe()
    return {"python": platform.python_version(), "numpy": np.__version__,
            "scikit-learn": sklearn.__version__,
            "caffe": getattr(caffe, "__version__", "?") + " (BVLC 99bd997 + heobs-dec patches)",
            "caffe_prefix": str(Path(caffe.__file__).resolve().parent.parent.parent)}


def run(name, data_dir, run_dir, sched, n_clusters=None, autoencoder_file=None, log=print,
        progress=True):
    """The whole DEC run; `autoencoder_file` (a fine-tuned autoencoder, e.g. DEC's
    own) skips pretraining."""
    data_dir, run_dir = Path(data_dir), Path(run_dir)
    meta = datasets.load_meta(data_dir, name)
    if sched.dims[0] != meta["dim"]:
        raise ValueError(f"dimension mismatch: {name} has {meta['dim']} features per sample "
                         f"but the net's input is {sched.dims[0]}")
    n_clusters = n_clusters or meta["clusters"]
    run_dir.mkdir(parents=True, exist_ok=True)
    paths = {split: data_dir / f"{name}_{split}" for split in ("train", "test", "total", "img")}
    for path in paths.values():
        if not (path / "CURRENT").exists():
            raise FileNotFoundError(f"database {path} is missing: run `python -m data_prep data` first")
    timings = {}
    start = time.perf_counter()
    x, y = db.read_db(paths["total"])
    labels = y if meta.get("classes") else None

    # Stages finished by an earlier invocation are reused, not redone; the
    # timings below are this invocation's.
    reused = [stage for stage, done in (
        ("autoencoder", (run_dir / "autoencoder.caffemodel").exists()),
        ("dec", _finished(run_dir / "dec" / "state.json"))) if done]
    t = time.perf_counter()
    if autoencoder_file:
        autoencoder.use_given(autoencoder_file, run_dir, sched.dims, log=log)
    ae_weights = autoencoder.pretrain(run_dir, paths["train"], paths["test"], sched, log=log,
                                      progress=progress)
    timings["autoencoder_s"] = round(time.perf_counter() - t, 2)

    t = time.perf_counter()
    result = ClusterRun(run_dir, paths["total"], x, n_clusters, sched, labels=labels, log=log,
                        progress=progress).run(ae_weights)
    timings["dec_s"] = round(time.perf_counter() - t, 2)

    t = time.perf_counter()
    summary = write_outputs(run_dir, name, meta, paths["img"], result, labels)
    timings["outputs_s"] = round(time.perf_counter() - t, 2)
    timings["total_s"] = round(time.perf_counter() - start, 2)

    results = {"dataset": name, "source": meta.get("source", name), "samples": len(x),
               "clusters": n_clusters,
               "converged": result["converged"], "rounds": result["rounds"],
               "schedule": sched.as_dict(), "seed": sched.seed, "timings": timings,
               "reused": reused,
               "autoencoder": str(autoencoder_file) if autoencoder_file else "pretrained",
               "versions": versions(), **summary}
    write_json(run_dir / "results.json", results)
    return results


def _finished(state_file):
    if not state_file.exists():
        return False
    state = json.loads(state_file.read_text())
    return bool(state.get("converged") or state.get("stopped"))


def write_outputs(run_dir, name, meta, img_db, result, labels):
    y_pred, q = result["y_pred"], result["q"]
    summary = {}
    # The deploy net and the learned model, for `predict`.
    shutil.copyfile(run_dir / "dec" / "deploy.prototxt", run_dir / "deploy.prototxt")
    shutil.copyfile(result["weights"], run_dir / "dec.caffemodel")
    centres = autoencoder.read_params(result["weights"], "loss")[0]
    np.save(run_dir / "centres.npy", centres.reshape(centres.shape[-2:]))

    with open(run_dir / "predictions.csv.tmp", "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["index", "cluster", "q", "label"])
        for i, cluster in enumerate(y_pred):
            out.writerow([i, int(cluster), f"{q[i, cluster]:.4f}",
                          "" if labels is None else int(labels[i])])
    os.replace(run_dir / "predictions.csv.tmp", run_dir / "predictions.csv")

    if labels is not None:
        summary["metrics"] = metrics.scores(labels, y_pred)
        counts = metrics.confusion(labels, y_pred, n_pred=q.shape[1])
        table = metrics.confusion_table(counts, meta.get("classes"))
        (run_dir / "confusion.txt").write_text(table)
        metrics.confusion_png(counts, run_dir / "confusion.png", meta.get("classes"))
        summary["confusion"] = counts.tolist()
        summary["confusion_table"] = table
    if result["history"]:
        export.rounds_png(result["history"], run_dir / "rounds.png")

    images, _ = db.read_db(img_db)
    sizes = export.class_folders(images, y_pred, run_dir / f"classes_{name}", q.shape[1])
    export.contact_sheets(images, q, run_dir / "sheets")
    summary["cluster_sizes"] = sizes
    summary["outputs"] = {k: str(run_dir / v) for k, v in {
        "classes": f"classes_{name}", "sheets": "sheets", "confusion": "confusion.txt",
        "rounds_plot": "rounds.png", "predictions": "predictions.csv"}.items()}
    return summary


def predict(run_dir, x):
    """Embed new samples with a finished run's deploy net; assign to its centres."""
    run_dir = Path(run_dir)
    for needed in ("deploy.prototxt", "dec.caffemodel", "centres.npy"):
        if not (run_dir / needed).exists():
            raise FileNotFoundError(f"{run_dir / needed} is missing: is this a finished run?")
    results = json.loads((run_dir / "results.json").read_text())
    features = autoencoder.embed(run_dir / "deploy.prototxt", run_dir / "dec.caffemodel", x)
    q, _ = multi_t.soft_assignment(features, np.load(run_dir / "centres.npy"),
                                   alpha=results["schedule"]["alpha"])
    return q.argmax(axis=1), q


def format_summary(results):
    """What a finished run prints: data, rounds, time, metrics, confusion, outputs."""
    m = results.get("metrics")
    lines = [f"\n{results['dataset']}: {results['samples']} samples, {results['clusters']} "
             f"clusters, {results['rounds']} DEC rounds "
             f"({'converged' if results['converged'] else 'not converged'}), "
             f"{results['timings']['total_s']:.0f} s"
             + (f" (reused from an earlier run: {', '.join(results['reused'])})"
                if results.get("reused") else "")]
    if m:
        lines += [f"accuracy {m['acc']:.4f}  NMI {m['nmi']:.4f}  ARI {m['ari']:.4f}\n",
                  results["confusion_table"]]
    lines += [f"  {key:12s} {path}" for key, path in results["outputs"].items()]
    return "\n".join(lines)
