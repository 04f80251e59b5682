"""DEC's clustering loop (dec.py DisKmeans), in-process on pycaffe.

Round 0: embed every sample with the autoencoder, k-means (20 restarts) gives
the MultiTLoss centres. Every round: embed, soft-assign q, stop when fewer than
`tol` of the assignments changed; else write the target p = q²/f (normalised)
as the label database, train `update_interval` iterations with a fresh solver
whose data layers start at `seek`, and move `seek` on by batch × interval.
The state after each round (weights, seek, last prediction, metrics) is on
disk, so an interrupted run resumes from its last finished round.
"""
import csv
import json
import time
from pathlib import Path

import numpy as np
from sklearn.cluster import KMeans

from data_prep import db
from data_prep.files import atomic, read_json, write_text

from . import metrics, multi_t, nets, solve
from .autoencoder import embed, read_params
from .engine import import_caffe, solver_mode


def _atomic_npy(path, array):
    with atomic(path) as tmp:
        np.save(tmp, array)


def initial_centres(features, n_clusters, sched):
    """TMM.fit: KMeans with 20 restarts; centres as K x C for the layer."""
    kmeans = KMeans(n_clusters, n_init=sched.kmeans_restarts, random_state=sched.seed)
    kmeans.fit(features)
    return kmeans.cluster_centers_.T


class ClusterRun:
    def __init__(self, run_dir, total_db, x, n_clusters, sched, labels=None, log=print,
                 progress=True):
        self.dir = Path(run_dir) / "dec"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.total_db = Path(total_db)
        self.x = x
        self.labels = labels
        self.n_clusters = n_clusters
        self.sched = sched
        self.log = log
        self.progress = progress
        self.label_db = self.dir / "train_weight"
        self.deploy = self.dir / "deploy.prototxt"
        self.net_file = self.dir / "dec_net.prototxt"
        self.solver_file = self.dir / "dec_solver.prototxt"
        self.state_file = self.dir / "state.json"
        write_text(self.deploy, nets.deploy_net(sched.dims, sched))

    # ---- state ----------------------------------------------------------------
    # state.json is the one record of where the loop is; the previous round's
    # predictions are a file named by round, written before state.json names
    # it, so a kill between the two writes leaves the old state consistent.
    def load_state(self):
        if not self.state_file.exists():
            return None
        state = read_json(self.state_file)
        last = state.get("y_pred_last_file")
        state["y_pred_last"] = np.load(self.dir / last) if last else None
        return state

    def save_state(self, state):
        plain = {k: v for k, v in state.items() if k != "y_pred_last"}
        if state["y_pred_last"] is not None:
            plain["y_pred_last_file"] = f"y_pred_round_{state['round']:04d}.npy"
            _atomic_npy(self.dir / plain["y_pred_last_file"], state["y_pred_last"])
        write_text(self.state_file, json.dumps(plain, indent=1))
        for old in self.dir.glob("y_pred_round_*.npy"):
            if old.name != plain.get("y_pred_last_file"):
                old.unlink()
        # A resume needs the current round's model only; round 0 is k-means' start.
        for old in self.dir.glob("round_*.caffemodel"):
            if old.name not in (state["weights"], "round_0000.caffemodel"):
                old.unlink()
        self.write_history(state["history"])

    def write_history(self, history):
        if not history:
            return
        with atomic(self.dir / "rounds.csv") as tmp, open(tmp, "w", newline="") as f:
            fields = list(dict.fromkeys(key for row in history for key in row))
            writer = csv.DictWriter(f, fieldnames=fields)
            writer.writeheader()
            writer.writerows(history)

    # ---- steps -----------------------------------------------------------------
    def start(self, autoencoder_weights):
        """Round 0: k-means on the autoencoder's embedding → initial weights."""
        caffe = import_caffe()
        features = embed(self.deploy, autoencoder_weights, self.x)
        centres = initial_centres(features, self.n_clusters, self.sched)
        # dec.py writes an all-zero target first: the net needs the database to exist.
        db.write_db(self.label_db, np.zeros((len(self.x), self.n_clusters), np.float32))
        write_text(self.net_file, nets.dec_net(self.sched.dims, self.n_clusters, self.sched,
                                                 self.total_db, self.label_db, db.KEY_FORMAT.format(0)))
        net = caffe.Net(str(self.net_file), str(autoencoder_weights), caffe.TRAIN)
        net.params["loss"][0].data[...] = centres.reshape(net.params["loss"][0].data.shape)
        net.params["loss"][1].data[...] = 1.0  # 1 / TMM covars (all ones)
        weights = self.dir / "round_0000.caffemodel"
        solve.save_weights(net, weights)
        del net
        return {"round": 0, "seek": 0, "weights": weights.name, "y_pred_last": None,
                "history": [], "converged": False}

    def assign(self, weights):
        features = embed(self.deploy, weights, self.x)
        centres = read_params(weights, "loss")[0].reshape(features.shape[1], self.n_clusters)
        q, _ = multi_t.soft_assignment(features, centres, alpha=self.sched.alpha)
        return features, q

    def store_target(self, q):
        """dec.py's target p from q, written as the label database."""
        db.write_db(self.label_db, multi_t.target_distribution(q).astype(np.float32))

    def train_round(self, state, q):
        self.store_target(q)
        return self.train(state)

    def train(self, state):
        """update_interval iterations from the round's weights on the stored target."""
        sched = self.sched
        seek = db.KEY_FORMAT.format(state["seek"])
        write_text(self.net_file, nets.dec_net(sched.dims, self.n_clusters, sched,
                                                 self.total_db, self.label_db, seek))
        prefix = self.dir / "snapshots" / "dec"
        prefix.parent.mkdir(exist_ok=True)
        write_text(self.solver_file, nets.dec_solver(self.net_file, sched, prefix,
                                                                  solver_mode()))
        out = self.dir / f"round_{state['round'] + 1:04d}.caffemodel"
        loss = solve.train(self.solver_file, max_iter=sched.update_interval, loss_blob="loss",
                           stage=f"DEC round {state['round'] + 1}", base_lr=sched.dec_lr,
                           snapshot_prefix=prefix, snapshot_every=0, out_weights=out,
                           init_weights=self.dir / state["weights"], chunk=sched.update_interval,
                           progress=False)
        return out, loss

    def next_seek(self, seek):
        """Where the next round's data layers start: a round reads batch x interval."""
        return (seek + self.sched.batch_size * self.sched.update_interval) % len(self.x)

    def run(self, autoencoder_weights):
        sched = self.sched
        state = self.load_state()
        if state is None:
            state = self.start(autoencoder_weights)
            self.save_state(state)
        elif state.get("stopped") and not state.get("converged") and \
                state["round"] < sched.max_rounds:
            # Stopped at an earlier max_rounds: a larger one goes on from there
            # (the stop's row, which trained nothing, is made again).
            self.log(f"DEC: going on from round {state['round']} to at most {sched.max_rounds}")
            state.update(stopped=False, history=[row for row in state["history"]
                                                 if row["round"] < state["round"]])
        elif state.get("converged") or state.get("stopped"):
            self.log(f"DEC: already finished after round {state['round']}")
        else:
            self.log(f"DEC: resuming at round {state['round']}")
        while True:
            started = time.perf_counter()
            weights = self.dir / state["weights"]
            features, q = self.assign(weights)
            y_pred = q.argmax(axis=1)
            last = state["y_pred_last"]
            # dec.py compares the first prediction with all zeros.
            changed = float(np.mean(y_pred != (0 if last is None else last)))
            row = {"round": state["round"], "changed": round(changed, 6)}
            if self.labels is not None:
                row.update({k: round(v, 6) for k, v in metrics.scores(self.labels, y_pred).items()})
            if state.get("converged") or state.get("stopped"):
                break
            self.log("DEC " + " ".join(f"{k} {v}" for k, v in row.items()))
            if changed < sched.tol:
                state.update(converged=True, history=state["history"] + [row])
                self.save_state(state)
                break
            if state["round"] >= sched.max_rounds:
                self.log(f"DEC: stopped after max_rounds={sched.max_rounds} without converging")
                state.update(stopped=True, history=state["history"] + [row])
                self.save_state(state)
                break
            out, loss = self.train_round(state, q)
            row["loss"] = round(loss, 6)
            row["seconds"] = round(time.perf_counter() - started, 3)
            state.update(round=state["round"] + 1, weights=out.name, y_pred_last=y_pred,
                         seek=self.next_seek(state["seek"]), history=state["history"] + [row])
            self.save_state(state)
        _atomic_npy(self.dir / "q.npy", q.astype(np.float32))
        _atomic_npy(self.dir / "embedding.npy", features.astype(np.float32))
        return {"weights": self.dir / state["weights"], "q": q, "y_pred": y_pred,
                "features": features, "history": state["history"],
                "converged": bool(state.get("converged")), "rounds": state["round"]}
