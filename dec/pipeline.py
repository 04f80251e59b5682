"""DEC end to end: databases → autoencoder → clustering → metrics and folders.

Everything lands in one run folder:
  results.json           config, seed, timings, versions, metrics
  predictions.csv        index in <db>_total, cluster, max q, label
  q.npy                  q_ij of every sample (N x clusters), for the review page
  confusion.txt / .png   report Tables 1-2 layout (when labels exist)
  rounds.png, dec/rounds.csv   per-round accuracy / NMI / changed fraction
  classes_<db>/<cluster>/<index>.jpg, sheets/cluster_<j>.png
  deploy.prototxt + dec.caffemodel + centres.npy   for `python -m dec predict`
"""
import csv
import json
import platform
import shutil
import time
from pathlib import Path

import numpy as np

from data_prep import datasets, db
from data_prep.files import atomic, copy_file, locked, read_json, write_json, write_text

from . import autoencoder, export, metrics, multi_t, nets
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


def run(name, data_dir, run_dir, sched, n_clusters=None, autoencoder_file=None, force=False,
        log=print, progress=True, experiment=None, class_folders=True):
    """The whole DEC run; `autoencoder_file` (a fine-tuned autoencoder, e.g. DEC's
    own) skips pretraining. The run folder is locked while it runs; a stage
    an earlier invocation made with other options is refused (force: redone).
    class_folders=False: no class folders or contact sheets (a sweep's many runs)."""
    data_dir, run_dir = Path(data_dir), Path(run_dir)
    meta = datasets.load_meta(data_dir, name)
    if sched.dims[0] != meta["dim"]:
        raise ValueError(f"dimension mismatch: {name} has {meta['dim']} features per sample "
                         f"but the net's input is {sched.dims[0]}")
    n_clusters = n_clusters or meta["clusters"]
    if n_clusters < 2:
        raise ValueError(f"{n_clusters} cluster: DEC needs at least 2 (--clusters)")
    paths = {split: data_dir / f"{name}_{split}" for split in ("train", "test", "total", "img")}
    for path in paths.values():
        if not (path / "CURRENT").exists():
            raise FileNotFoundError(f"database {path} is missing: run `python -m data_prep data` first")
    with locked(run_dir):
        return _run(name, meta, paths, run_dir, sched, n_clusters, autoencoder_file, force,
                    log, progress, experiment, class_folders)


# What each stage's result depends on (not max_rounds, snapshot, display).
AUTOENCODER_OPTIONS = ("dims", "drop", "pretrain_iter", "finetune_iter", "base_lr", "stepsize",
                       "momentum", "momentum_burnin", "weight_decay", "weight_std",
                       "batch_size", "test_batch_size", "seed", "init", "corrupt", "lr_policy",
                       "pretrain_data", "stacked", "solver_type", "input_scale", "bias_lr_mult",
                       "shuffle")
DEC_OPTIONS = ("update_interval", "dec_lr", "dec_momentum", "tol", "kmeans_restarts", "alpha",
               "seed")


def stage_options(name, sched, n_clusters, autoencoder_file):
    plan = sched.as_dict()
    ae = {k: plan[k] for k in AUTOENCODER_OPTIONS}
    ae.update(data=name, given=str(autoencoder_file) if autoencoder_file else None)
    dec = {k: plan[k] for k in DEC_OPTIONS}
    dec.update(clusters=n_clusters, autoencoder=ae)
    return json.loads(json.dumps({"autoencoder": ae, "dec": dec}))   # tuples as lists


def check_stages(run_dir, options, force, log):
    """stages.json records the options each stage was made with."""
    record = run_dir / "stages.json"
    made = read_json(record, {})
    # Options added since a run was made had DEC's value then.
    since = {k: getattr(nets.PAPER, k) for k in ("init", "corrupt", "lr_policy", "pretrain_data",
                                                 "stacked", "solver_type", "input_scale",
                                                 "bias_lr_mult", "shuffle")}
    if "autoencoder" in made:
        made["autoencoder"] = since | made["autoencoder"]
    if "dec" in made and "autoencoder" in made["dec"]:
        made["dec"]["autoencoder"] = since | made["dec"]["autoencoder"]
    finished = {"autoencoder": (run_dir / "autoencoder.caffemodel").exists(),
                "dec": _finished(run_dir / "dec" / "state.json")}
    for stage, outputs in (("autoencoder", ("autoencoder.caffemodel", "stack*.caffemodel",
                                            "snapshots")), ("dec", ("dec",))):
        old = made.get(stage)
        if old is None or old == options[stage]:
            continue
        changed = ", ".join(f"{k} {old.get(k)} → {v}" for k, v in options[stage].items()
                            if old.get(k) != v and k != "autoencoder") or "the autoencoder"
        made_by_it = [path for pattern in outputs for path in run_dir.glob(pattern)]
        if not finished[stage]:
            # An interrupted or failed stage binds nothing (e.g. --lr after a NaN):
            # its partial outputs belong to the old options and go.
            if made_by_it:
                log(f"the {stage} stage never finished: starting it again ({changed})")
        elif not force:
            raise ValueError(f"{run_dir}: its {stage} stage was made with other options "
                             f"({changed}); use a new --run, or --force to redo it")
        else:
            log(f"--force: redoing the {stage} stage ({changed})")
        for path in made_by_it:
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    write_json(record, options)


def _run(name, meta, paths, run_dir, sched, n_clusters, autoencoder_file, force, log,
         progress, experiment=None, class_folders=True):
    from .experiments import commit
    timings = {}
    start = time.perf_counter()
    code_commit = commit()         # the code this invocation runs (HEAD may move on)
    data_dir = paths["total"].parent.resolve()
    # Each run reads its own copy: a second run on the same data folder (another
    # seed) never meets LevelDB's one-process lock, and the data stay untouched.
    paths = {split: db.reader_copy(path, run_dir / "data" / path.name)
             for split, path in paths.items()}
    older = [path.name for split, path in paths.items()
             if split in ("train", "total") and db.older_layout(path)]
    if older:
        log(f"warning: {data_dir}: {', '.join(older)} written by a data_prep older than "
            f"f74e7f6 (float_data unpacked, compressed blocks): Caffe reads them several "
            f"times slower; `python -m data_prep data` writes the same values in today's layout")
    x, y = db.read_db(paths["total"])
    if len(x) < n_clusters:       # before stages.json: a refused command records nothing
        raise ValueError(f"{name} has {len(x)} samples, fewer than {n_clusters} clusters")
    check_stages(run_dir, stage_options(name, sched, n_clusters, autoencoder_file), force, log)
    # Labels where the data set has classes; -1 marks a sample without one.
    labels = y if meta.get("classes") and (y >= 0).any() else None

    # Stages finished by an earlier invocation are reused, not redone; stages
    # an interrupt stopped are resumed from their newest complete snapshot.
    reused = [stage for stage, done in (
        ("autoencoder", (run_dir / "autoencoder.caffemodel").exists()),
        ("dec", _finished(run_dir / "dec" / "state.json", sched.max_rounds))) if done]
    resumed = sorted({p.name.split("_iter_")[0] for p in (run_dir / "snapshots").glob("*.done")})
    if (run_dir / "dec" / "state.json").exists() and "dec" not in reused:
        resumed.append("dec")
    t = time.perf_counter()
    if autoencoder_file:
        autoencoder.use_given(autoencoder_file, run_dir, sched.dims, log=log)
    if sched.pretrain_data not in nets.PRETRAIN_DATA:
        raise ValueError(f"pretrain_data {sched.pretrain_data!r}: one of "
                         f"{', '.join(nets.PRETRAIN_DATA)}")
    ae_weights = autoencoder.pretrain(run_dir, paths[sched.pretrain_data], paths["test"], sched,
                                      log=log, progress=progress)
    timings["autoencoder_s"] = round(time.perf_counter() - t, 2)

    t = time.perf_counter()
    result = ClusterRun(run_dir, paths["total"], x, n_clusters, sched, labels=labels, log=log,
                        progress=progress).run(ae_weights)
    timings["dec_s"] = round(time.perf_counter() - t, 2)

    t = time.perf_counter()
    summary = write_outputs(run_dir, name, meta, paths["img"], result, labels, log,
                            nets.recipe_of(sched), class_folders)
    timings["outputs_s"] = round(time.perf_counter() - t, 2)
    timings["total_s"] = round(time.perf_counter() - start, 2)
    # A stage reused from an earlier invocation keeps the time it took to make
    # (and a run made wholly before keeps its commit): what --record reports.
    before = read_json(run_dir / "results.json", {}) if reused else {}
    for stage in reused:
        key, made = f"{stage}_s", before.get("timings", {}).get(f"{stage}_s")
        if made is not None:
            timings["total_s"] = round(timings["total_s"] + made - timings[key], 2)
            timings[key] = made
    made_at = before.get("commit") if len(reused) == 2 else None

    # data_dir: where the review page finds the data set (and a photo set's photos).
    results = {"dataset": name, "source": meta.get("source", name),
               "data_dir": str(data_dir), "samples": len(x),
               "clusters": n_clusters,
               "converged": result["converged"], "rounds": result["rounds"],
               "experiment": experiment,
               "schedule": sched.as_dict(), "recipe": nets.recipe_of(sched),
               "seed": sched.seed, "timings": timings,
               "reused": reused, "resumed": resumed,
               "autoencoder": str(autoencoder_file) if autoencoder_file else "pretrained",
               "commit": made_at or code_commit, "versions": versions(), **summary}
    write_json(run_dir / "results.json", results)
    return results


def _finished(state_file, max_rounds=None):
    """DEC's stage converged, or stopped at max_rounds (and a larger
    max_rounds does not ask for more)."""
    if not state_file.exists():
        return False
    state = read_json(state_file)
    return bool(state.get("converged") or (state.get("stopped") and (
        max_rounds is None or state["round"] >= max_rounds)))


def write_outputs(run_dir, name, meta, img_db, result, labels, log=print, recipe="paper",
                  class_folders=True):
    y_pred, q = result["y_pred"], result["q"]
    # A figure of a recipe other than DEC's says so.
    note = "" if recipe == "paper" else f"\nrecipe {recipe}: not DEC's schedule"
    summary = {}
    # The deploy net and the learned model, for `predict`.
    copy_file(run_dir / "dec" / "deploy.prototxt", run_dir / "deploy.prototxt")
    copy_file(result["weights"], run_dir / "dec.caffemodel")
    centres = autoencoder.read_params(result["weights"], "loss")[0]
    with atomic(run_dir / "centres.npy") as tmp:
        np.save(tmp, centres.reshape(centres.shape[-2:]))

    with atomic(run_dir / "q.npy") as tmp:           # every soft assignment, for review
        np.save(tmp, q.astype(np.float32))

    with atomic(run_dir / "predictions.csv") as tmp, open(tmp, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["index", "cluster", "q", "label"])
        for i, cluster in enumerate(y_pred):
            out.writerow([i, int(cluster), f"{q[i, cluster]:.4f}",
                          "" if labels is None else int(labels[i])])

    outputs = {"predictions": run_dir / "predictions.csv", "q": run_dir / "q.npy"}
    if labels is not None:
        # Scored on the labelled samples (a photo without a class prefix has -1).
        classes = meta.get("classes") or None
        summary["metrics"] = metrics.scores(labels, y_pred)
        summary["labelled_samples"] = int((labels >= 0).sum())
        counts = metrics.confusion(labels, y_pred, n_true=len(classes) if classes else None,
                                   n_pred=q.shape[1])
        table = metrics.confusion_table(counts, classes)
        write_text(run_dir / "confusion.txt", table)
        metrics.confusion_png(counts, run_dir / "confusion.png", classes,
                              title="Confusion (rows Actual, columns Predict)" + note)
        summary["confusion"] = counts.tolist()
        summary["confusion_table"] = table
        outputs["confusion"] = run_dir / "confusion.txt"
    if result["history"]:
        export.rounds_png(result["history"], run_dir / "rounds.png", note.strip())
        outputs["rounds_plot"] = run_dir / "rounds.png"

    summary["cluster_sizes"] = {c: int((y_pred == c).sum()) for c in range(q.shape[1])}
    if class_folders:
        images, _ = db.read_db(img_db)
        folders, _ = export.class_folders(images, y_pred, run_dir / f"classes_{name}",
                                          q.shape[1], log)
        export.contact_sheets(images, q, run_dir / "sheets")
        outputs.update(classes=folders, sheets=run_dir / "sheets")
    summary["outputs"] = {k: str(v) for k, v in outputs.items()}
    return summary


def predict(run_dir, x):
    """Embed new samples with a finished run's deploy net; assign to its centres."""
    run_dir = Path(run_dir)
    for needed in ("deploy.prototxt", "dec.caffemodel", "centres.npy"):
        if not (run_dir / needed).exists():
            raise FileNotFoundError(f"{run_dir / needed} is missing: is this a finished run?")
    results = read_json(run_dir / "results.json")
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
