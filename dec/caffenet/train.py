"""Fine-tuning CaffeNet through the `caffe` tool (report §4): the run's net
and solver files, Caffe's log kept as train.log, curves from it, resuming
from the newest snapshot.
"""
import csv
import math
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np

from data_prep.caffe_tools import logging_env, tool
from data_prep.files import locked, read_json, save_figure, write_json, write_text

from ..engine import import_caffe
from ..solve import Diverged
from . import nets as caffenet


TRAIN_LINE = re.compile(r"Iteration (\d+)(?: \(.*\))?, loss = ([-+]?(?:nan|inf)|[-+.\deE]+)")
LR_LINE = re.compile(r"Iteration (\d+), lr = ([-+.\deE]+)")
TEST_START = re.compile(r"Iteration (\d+), Testing net")
TEST_OUTPUT = re.compile(r"Test net output #\d+: (\w+) = ([-+]?(?:nan|inf)|[-+.\deE]+)")


def parse_log(text):
    """Caffe's training log → ([{iteration, loss, lr}], [{iteration, accuracy, loss}])."""
    train, test, lrs, current = [], [], {}, None
    for line in text.splitlines():
        if m := TRAIN_LINE.search(line):
            train.append({"iteration": int(m[1]), "loss": float(m[2])})
        elif m := LR_LINE.search(line):
            lrs[int(m[1])] = float(m[2])
        elif m := TEST_START.search(line):
            current = {"iteration": int(m[1])}
            test.append(current)
        elif (m := TEST_OUTPUT.search(line)) and current is not None:
            current[m[1]] = float(m[2])
    for row in train:
        row["lr"] = lrs.get(row["iteration"])
    # A resumed run appends to the log and repeats the iterations after its
    # snapshot: the newest line of each iteration counts.
    newest = lambda rows: sorted({r["iteration"]: r for r in rows}.values(),
                                 key=lambda r: r["iteration"])
    return newest(train), newest(test)


def curves_png(train, test, path, title="Training progress"):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot([r["iteration"] for r in train], [r["loss"] for r in train], label="train loss")
    if test:
        ax.plot([r["iteration"] for r in test], [r.get("loss", np.nan) for r in test],
                marker="o", label="val loss")
        ax2 = ax.twinx()
        ax2.plot([r["iteration"] for r in test], [r.get("accuracy", np.nan) for r in test],
                 marker="s", color="tab:green", label="val accuracy")
        ax2.set_ylim(0, 1)
        ax2.set_ylabel("accuracy")
        ax2.legend(loc="upper right")
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss")
    ax.legend(loc="upper left")
    ax.set_title(title)
    fig.tight_layout()
    save_figure(fig, path)


SNAPSHOT_LINE = re.compile(r"Snapshotting solver state to binary proto file")


def prune_snapshots(folder, keep):
    """Keep the newest `keep` snapshots (.solverstate and .caffemodel): two, so
    a resume has the one before when the newest is torn. 0 keeps all (Caffe's
    way: 230 MB a CaffeNet snapshot pair adds up)."""
    if not keep:
        return
    states = sorted(Path(folder).glob("caffenet_iter_*.solverstate"),
                    key=lambda p: int(p.stem.rsplit("_", 1)[1]))
    for state in states[:-keep]:
        state.unlink(missing_ok=True)
        state.with_suffix(".caffemodel").unlink(missing_ok=True)


def train(dataset_dir, run_dir, solver=caffenet.REPORT_SOLVER, weights=None, resume=True,
          gpu=None, log=print, progress=True, keep_snapshots=2):
    """Fine-tune (or train from scratch) through `caffe train`, log kept as
    train.log; curves.csv and curves.png from it. Resumes from the newest
    snapshot of an interrupted run."""
    dataset_dir, run_dir = Path(dataset_dir).resolve(), Path(run_dir).resolve()
    if not (dataset_dir / "dataset.json").exists():
        raise FileNotFoundError(f"{dataset_dir} is not a dataset (python -m data_prep prepare)")
    with locked(run_dir):
        return _train(dataset_dir, run_dir, solver, weights, resume, gpu, log, progress,
                      keep_snapshots)


def _train(dataset_dir, run_dir, solver, weights, resume, gpu, log, progress, keep_snapshots):
    from tqdm import tqdm
    info = read_json(dataset_dir / "dataset.json")
    owner = run_dir / "run.json"          # a run folder belongs to one dataset, as it was
    made = read_json(owner, {})
    contents = dataset_fingerprint(dataset_dir)
    if made and made["dataset"] != str(dataset_dir):
        raise ValueError(f"{run_dir} is a run on {made['dataset']}; "
                         "use a new --run for another dataset")
    if made.get("fingerprint", contents) != contents:
        raise ValueError(f"{dataset_dir} changed since {run_dir} trained on it (prepared "
                         "again?): its snapshots, classes and mean belong to the old one; "
                         "use a new --run")
    # The net's own parts of a recipe: a snapshot's weights mean something only
    # in the net they were trained in (inputs x 1/256 or not, above all).
    net_parts = {k: getattr(solver, k) for k in caffenet.NET_PARTS}
    if made.get("net", net_parts) != net_parts:
        raise ValueError(f"{run_dir} trained a net with {made['net']}, not {net_parts}: its "
                         "snapshots belong to that net; use a new --run for another recipe")
    write_json(owner, {"dataset": str(dataset_dir), "classes": info["classes"],
                       "fingerprint": contents, "net": net_parts})
    backend = info["backend"]
    n_val = sum(info["counts"]["val"].values())
    # Validation sees each image once: test_iter x batch = the set's size.
    val_batch = validation_batch(n_val, solver.test_batch_size)
    solver = solver.override(test_batch_size=val_batch)
    net = run_dir / "train_val.prototxt"
    write_text(net, caffenet.train_val(len(info["classes"]), dataset_dir / f"train_{backend}",
                                          dataset_dir / f"val_{backend}",
                                          dataset_dir / "mean.binaryproto", solver,
                                          backend.upper()))
    write_text(run_dir / "deploy.prototxt", caffenet.deploy(len(info["classes"]), solver=solver))
    shutil.copy(dataset_dir / "classes.txt", run_dir / "classes.txt")
    shutil.copy(dataset_dir / "mean.binaryproto", run_dir / "mean.binaryproto")
    solver_file = run_dir / "solver.prototxt"
    test_iter = n_val // val_batch
    write_text(solver_file, caffenet.solver_text(net, run_dir / "snapshots" / "caffenet",
                                                    test_iter, solver,
                                                    "CPU" if gpu is None else "GPU"))
    (run_dir / "snapshots").mkdir(exist_ok=True)
    args = [f"--solver={solver_file}"]
    state = newest_snapshot(run_dir / "snapshots", log) if resume else None
    if state:
        args.append(f"--snapshot={state}")
        log(f"resuming from {state.name}")
    elif weights:
        check_weights(weights, net)
        args.append(f"--weights={weights}")
        log(f"fine-tuning from {weights}")
    else:
        log("no --weights: training CaffeNet from scratch (expect poor results on small sets; "
            "make fetch-caffenet gets the ImageNet weights)")
    if gpu is not None:
        args.append(f"--gpu={gpu}")
    log_path = run_dir / "train.log"
    start = log_path.stat().st_size if log_path.exists() else 0    # this run's lines
    with open(log_path, "a") as log_file, \
            tqdm(total=solver.max_iter, desc="caffe train", unit="it", disable=not progress) as bar:
        proc = subprocess.Popen([str(tool("caffe")), "train"] + args, env=logging_env(),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            for line in proc.stdout:
                log_file.write(line)
                if SNAPSHOT_LINE.search(line):     # the state being written counts as one
                    prune_snapshots(run_dir / "snapshots", keep_snapshots + 1)
                if m := TRAIN_LINE.search(line):
                    bar.n = int(m[1])
                    bar.set_postfix(loss=m[2])
                    bar.refresh()
                    if not math.isfinite(float(m[2])):
                        # Caffe trains on with NaN (and its Accuracy layer then
                        # corrupts memory): stop at once; earlier snapshots stay.
                        last = newest_snapshot(run_dir / "snapshots", log=lambda *a: None)
                        raise Diverged(f"CaffeNet: loss is {m[2]} at iteration {m[1]} "
                                       f"(base_lr {solver.base_lr}); lower --base-lr"
                                       + (f"; last snapshot: {last}" if last else ""))
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        if proc.returncode != 0:
            log_file.flush()
            raise RuntimeError(f"caffe train failed{caffe_error(log_path, start)}; see {log_path}")
    rows, tests = parse_log(log_path.read_text())
    with open(run_dir / "curves.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["phase", "iteration", "loss", "accuracy", "lr"])
        writer.writerows(["train", r["iteration"], r["loss"], "", r["lr"]] for r in rows)
        writer.writerows(["val", r["iteration"], r.get("loss", ""), r.get("accuracy", ""), ""]
                         for r in tests)
    recipe = caffenet.recipe_of(solver)
    curves_png(rows, tests, run_dir / "curves.png", title="Training progress" + (
        "" if recipe == "report" else f" — recipe {recipe} (NOT the report's)"))
    final = run_dir / "snapshots" / f"caffenet_iter_{solver.max_iter}.caffemodel"
    if final.exists():
        shutil.copy(final, run_dir / "caffenet.caffemodel")
    prune_snapshots(run_dir / "snapshots", keep_snapshots)
    write_json(run_dir / "results.json", {
        "dataset": str(dataset_dir), "classes": info["classes"], "weights":
        str(weights) if weights else None, "solver": solver.as_dict(), "recipe": recipe,
        "test_iter": test_iter, "train": rows[-1] if rows else None,
        "validation": tests[-1] if tests else None})
    return rows, tests


def check_weights(weights, net_file):
    """`caffe train --weights` copies the layers whose names match and says
    nothing of the others: every learnable layer of the net but the new last
    one must be in the file, or the run would train from the fillers."""
    from google.protobuf import text_format
    caffe_pb2 = import_caffe().proto.caffe_pb2
    weights = Path(weights)
    if not weights.is_file():
        raise FileNotFoundError(f"{weights} is missing (make fetch-caffenet)")
    model = caffe_pb2.NetParameter()
    try:
        model.ParseFromString(weights.read_bytes())
    except Exception:                  # not a protobuf at all
        model.Clear()
    have = {layer.name for layer in list(model.layer) + list(model.layers) if layer.blobs}
    net = text_format.Parse(Path(net_file).read_text(), caffe_pb2.NetParameter())
    wanted = [layer.name for layer in net.layer
              if layer.type in ("Convolution", "InnerProduct") and layer.name != caffenet.LAST_LAYER]
    missing = [name for name in wanted if name not in have]
    if missing:
        raise ValueError(f"{weights} holds no weights for {', '.join(missing)}: not a CaffeNet "
                         ".caffemodel (make fetch-caffenet gets the ImageNet weights)")


def caffe_error(log_path, start=0):
    """Caffe's own reason for an abort (its last 'Check failed' line after
    byte `start`), as ': reason'."""
    with open(log_path, "rb") as f:
        f.seek(start)
        text = f.read().decode(errors="replace")
    reasons = [line.split("] ", 1)[-1].strip() for line in text.splitlines()
               if "Check failed" in line or "Cannot copy param" in line]
    return f": {reasons[-1]}" if reasons else ""


def dataset_fingerprint(dataset_dir):
    """SHA-256 of what a run copies from its dataset and trains on: the
    split lists, classes, mean image and dataset.json."""
    import hashlib
    digest = hashlib.sha256()
    for name in ("dataset.json", "classes.txt", "mean.binaryproto", "train.txt", "val.txt",
                 "test.txt"):
        path = Path(dataset_dir) / name
        digest.update(name.encode() + b"\0" + (path.read_bytes() if path.exists() else b""))
    return digest.hexdigest()


def newest_snapshot(folder, log=print):
    """The newest .solverstate that Caffe can resume from. Caffe writes its
    snapshots in place: one torn by a kill (0 bytes, cut short, or its
    .caffemodel missing) is reported and the one before it used."""
    SolverState = import_caffe().proto.caffe_pb2.SolverState
    states = sorted(Path(folder).glob("caffenet_iter_*.solverstate"),
                    key=lambda p: int(p.stem.rsplit("_", 1)[1]))
    for path in reversed(states):
        try:
            state = SolverState.FromString(path.read_bytes())
            model = Path(state.learned_net)
            if not model.is_absolute():
                model = path.parent / model.name
            if state.iter > 0 and model.is_file() and model.stat().st_size > 0:
                return path
        except Exception:                 # a torn file does not parse
            pass
        log(f"snapshot {path.name} is incomplete (interrupted while written); skipped")
    return None


def validation_batch(n_val, largest):
    """The largest batch of at most `largest` that divides the validation set."""
    if n_val < 1:
        raise ValueError("the validation split is empty")
    return max(b for b in range(1, min(largest, n_val) + 1) if n_val % b == 0)


def compare_png(run_dirs, path, title="CaffeNet runs"):
    """Several runs' curves side by side (training loss; validation accuracy),
    each named by its folder and recipe — e.g. the report's gammas (§4.1.4)
    or a recipe against the report's."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 4))
    for run_dir in map(Path, run_dirs):
        if not (run_dir / "train.log").exists():
            raise FileNotFoundError(f"{run_dir} has no train.log: not a `train` run")
        rows, tests = parse_log((run_dir / "train.log").read_text())
        made = read_json(run_dir / "results.json", {})
        # The recipe its solver follows as the recipes are defined now.
        solver = caffenet.REPORT_SOLVER.override(**made.get("solver", {}))
        label = f"{run_dir.name} ({caffenet.recipe_of(solver)})"
        loss_ax.plot([r["iteration"] for r in rows], [r["loss"] for r in rows], label=label)
        acc_ax.plot([r["iteration"] for r in tests], [r.get("accuracy", np.nan) for r in tests],
                    marker="o", label=label)
    loss_ax.set(xlabel="iteration", ylabel="training loss", title="training loss (log scale)",
                yscale="log")
    acc_ax.set(xlabel="iteration", ylabel="accuracy", ylim=(0, 1), title="validation accuracy")
    for ax in (loss_ax, acc_ax):
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    # Never over the runs it reads (their model, their log) nor a file not ours.
    save_figure(fig, path, inputs=run_dirs, named=True)
