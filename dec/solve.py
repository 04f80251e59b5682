"""Running a Caffe solver in-process: progress, divergence check, resumable snapshots.

Caffe's own periodic snapshots are off in the run's solver files; this loop
snapshots itself, only after a chunk of iterations whose loss is finite, so the
newest snapshot on disk is always a good one. Caffe writes a snapshot in place,
so a `.done` marker is written after it: a snapshot torn by a kill has none and
is never restored. Re-running the same stage after an interrupt restores the
newest complete snapshot (weights, momentum history, iteration).
"""
import math
from pathlib import Path

from tqdm import tqdm

from data_prep.files import atomic

from .engine import import_caffe


class Diverged(RuntimeError):
    pass


def snapshots(prefix):
    """(iteration, .solverstate path) pairs of the complete snapshots (those
    with a .done marker) for a snapshot prefix, oldest first."""
    prefix = Path(prefix)
    found = []
    for path in prefix.parent.glob(prefix.name + "_iter_*.solverstate"):
        try:
            iteration = int(path.stem.rsplit("_", 1)[1])
        except ValueError:
            continue
        if path.with_suffix(".done").exists():
            found.append((iteration, path))
    return sorted(found)


def _prune(prefix, keep):
    """Keep the newest `keep` complete snapshots; remove the rest and any torn ones."""
    prefix = Path(prefix)
    keep_states = {state for _, state in snapshots(prefix)[-keep:]} if keep else set()
    for path in prefix.parent.glob(prefix.name + "_iter_*.*"):
        if path.suffix in (".solverstate", ".caffemodel", ".done") and \
                path.with_suffix(".solverstate") not in keep_states:
            path.unlink(missing_ok=True)


def _snapshot(solver, prefix):
    solver.snapshot()
    done = Path(f"{prefix}_iter_{solver.iter}.done")
    done.write_text("complete\n")          # after both of Caffe's files are written


def save_weights(net, path):
    """net.save to a temporary name, then rename: never a half-written model."""
    with atomic(path) as tmp:
        net.save(str(tmp))


def train(solver_file, *, max_iter, loss_blob, stage, base_lr, snapshot_prefix,
          snapshot_every, out_weights, init_weights=None, chunk=100, prepare=None,
          feed=None, progress=True):
    """Train to max_iter; write the final weights to out_weights.

    `prepare(net)` may set parameters after init_weights are loaded (not on
    resume). `feed(net, iteration)`, when given, fills the net's input before
    each iteration (a function of the iteration: a resumed run is fed what an
    uninterrupted one would be). Raises Diverged, naming the stage and
    learning rate, when the loss stops being finite; the last good snapshot
    stays on disk."""
    caffe = import_caffe()
    solver = caffe.get_solver(str(solver_file))     # the file's type: SGD, Adam
    done = snapshots(snapshot_prefix)
    if done:
        solver.restore(str(done[-1][1]))
    else:
        if init_weights:
            solver.net.copy_from(str(init_weights))
        if prepare:
            prepare(solver.net)
    bar = tqdm(total=max_iter, initial=solver.iter, desc=stage, unit="it",
               disable=not progress, dynamic_ncols=True, leave=False)
    loss = float("nan")
    try:
        while solver.iter < max_iter:
            n = min(chunk, max_iter - solver.iter)
            before = solver.iter
            if feed is None:
                solver.step(n)
            else:
                for _ in range(n):
                    feed(solver.net, solver.iter)
                    solver.step(1)
            loss = float(solver.net.blobs[loss_blob].data.ravel()[0])
            if not math.isfinite(loss):
                last = snapshots(snapshot_prefix)
                where = f"; last good snapshot: {last[-1][1]}" if last else ""
                raise Diverged(f"{stage}: loss is {loss} at iteration {solver.iter} "
                               f"(base_lr {base_lr}); lower the learning rate{where}")
            bar.update(n)
            bar.set_postfix(loss=f"{loss:.4g}")
            # a snapshot each time the chunk passed a multiple of snapshot_every
            passed = snapshot_every and solver.iter // snapshot_every > before // snapshot_every
            if passed and solver.iter < max_iter:
                _snapshot(solver, snapshot_prefix)
                _prune(snapshot_prefix, keep=1)
    finally:
        bar.close()
    save_weights(solver.net, out_weights)
    _prune(snapshot_prefix, keep=0)
    del solver
    return loss
