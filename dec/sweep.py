"""The paper's protocol over one autoencoder: the DEC stage for several update
intervals λ and seeds, a table and a figure.

Xie et al. 2016 (§5, Table 2) report the best of λ = 10·2^i, i = 0…8 on one
autoencoder ("λ = 40 gives near optimal performance"; dec.py fixes MNIST's at
160). A sweep reuses the autoencoder of its base experiment's run (pretrained
there if missing) and runs only the DEC stage, one run folder per (λ, seed),
each resumable: `reproduce` of a sweep that was interrupted redoes only what
is missing. The seed is k-means' (random_state, 20 restarts) and Caffe's.
"""
import csv
from pathlib import Path

import numpy as np

from data_prep.files import atomic, save_figure, write_text

PAPER_LAMBDAS = tuple(10 * 2 ** i for i in range(9))     # 10, 20, ... 2560


def kmeans_scores(run_dir):
    """AE + k-means: round 0 of a run's dec/rounds.csv (k-means' centres on the
    autoencoder's embedding, before any DEC iteration)."""
    with open(Path(run_dir) / "dec" / "rounds.csv", newline="") as f:
        first = next(csv.DictReader(f))
    return {k: float(first[k]) for k in ("acc", "nmi") if first.get(k)}


def run_name(lam, seed):
    return f"lambda{lam}-seed{seed}"


def run(sweep, data_dir, runs_dir, log=print, progress=True):
    """Every (λ, seed) of `sweep` (an experiments.Sweep): the DEC stage on the
    base experiment's autoencoder. Writes <runs>/<sweep>/sweep.csv, sweep.md
    and sweep.png after each run; returns the rows."""
    from data_prep import datasets

    from . import experiments, pipeline
    base = experiments.get(sweep.base)
    autoencoder = Path(runs_dir) / base.name / "autoencoder.caffemodel"
    if not autoencoder.exists():
        log(f"{sweep.name}: no autoencoder in {autoencoder.parent} yet: running {base.name} "
            "first (the sweep reuses its autoencoder)")
        experiments.reproduce(base.name, data_dir, runs_dir, log=log, progress=progress)
    meta = datasets.load_meta(data_dir, base.dataset)
    sched = base.sched(meta)
    out = Path(runs_dir) / sweep.name
    rows = []
    for lam in sweep.lambdas:
        for seed in sweep.seeds:
            run_dir = out / run_name(lam, seed)
            log(f"{sweep.name}: λ = {lam}, seed {seed} → {run_dir}")
            results = pipeline.run(base.dataset, data_dir, run_dir,
                                   sched.override(update_interval=lam, seed=seed),
                                   autoencoder_file=autoencoder, log=log, progress=progress,
                                   experiment=sweep.name, class_folders=False)
            kmeans = kmeans_scores(run_dir)
            rows.append({"lambda": lam, "seed": seed, "acc": results["metrics"]["acc"],
                         "nmi": results["metrics"]["nmi"], "kmeans_acc": kmeans.get("acc"),
                         "kmeans_nmi": kmeans.get("nmi"), "rounds": results["rounds"],
                         "converged": results["converged"],
                         "minutes": results["timings"]["dec_s"] / 60})
            write(rows, out, sweep)
    return rows


def over_runs(rows, keys):
    """Mean and sd (n - 1) of each key over the rows that have it; None where
    there is no value (an sd of one run is not a number)."""
    out = {}
    for key in keys:
        values = np.array([r[key] for r in rows if r.get(key) is not None], float)
        out[key] = float(values.mean()) if len(values) else None
        out[f"{key}_sd"] = float(values.std(ddof=1)) if len(values) > 1 else None
    return out


def summary(rows):
    """Per λ: n, mean and sd of accuracy, NMI and AE + k-means, minutes."""
    by_lambda = {}
    for row in rows:
        by_lambda.setdefault(row["lambda"], []).append(row)
    return [{"lambda": lam, "n": len(group),
             **over_runs(group, ("acc", "nmi", "kmeans_acc", "minutes"))}
            for lam, group in sorted(by_lambda.items())]


def best(summary_rows):
    return max(summary_rows, key=lambda r: r["acc"])


def mean_sd(mean, sd):
    """'0.8619 ± 0.0002'; no sd (None: one run) shows the mean alone."""
    return f"{mean:.4f}" + ("" if sd is None else f" ± {sd:.4f}")


def table(rows, sweep):
    """sweep.md: per λ mean ± sd over seeds (sd where n > 1), the best marked,
    against the paper's number."""
    per = summary(rows)
    top = best(per)
    lines = [f"# {sweep.name}: {sweep.what}", "",
             "| λ | seeds | DEC accuracy | DEC NMI | AE + k-means accuracy | minutes (DEC stage) |",
             "|---|---|---|---|---|---|"]
    for r in per:
        mark = " (best)" if r is top else ""
        mark += " (dec.py's)" if r["lambda"] == sweep.marked else ""
        lines.append(f"| {r['lambda']}{mark} | {r['n']} | {mean_sd(r['acc'], r['acc_sd'])} | "
                     f"{mean_sd(r['nmi'], r['nmi_sd'])} | "
                     f"{mean_sd(r['kmeans_acc'], r['kmeans_acc_sd'])} | {r['minutes']:.1f} |")
    lines += ["", f"Best: λ = {top['lambda']}, accuracy {top['acc']:.4f}"
              + (f" (mean of {top['n']} seeds)" if top["n"] > 1 else " (one run)")
              + "".join(f"; {p.label or p.source} {p.acc:.3f}" for p in sweep.published), ""]
    return "\n".join(lines)


def figure(rows, path, sweep):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    per = summary(rows)
    lams = [r["lambda"] for r in per]
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for key, label in (("acc", "DEC accuracy"), ("nmi", "DEC NMI"),
                       ("kmeans_acc", "AE + k-means accuracy")):
        means = np.array([r[key] for r in per])
        sds = np.array([r[f"{key}_sd"] or 0.0 for r in per])
        ax.errorbar(lams, means, yerr=sds, marker="o", capsize=3, label=label,
                    linestyle="--" if key == "kmeans_acc" else "-")
    for r in rows:                                    # every seed's run, faintly
        ax.plot(r["lambda"], r["acc"], ".", color="grey", alpha=0.5)
    top = best(per)
    ax.axvline(sweep.marked, color="grey", linestyle=":", label=f"λ = {sweep.marked} (dec.py)")
    ax.plot(top["lambda"], top["acc"], "*", markersize=14, color="red",
            label=f"best: λ = {top['lambda']}, {top['acc']:.3f}")
    for p in sweep.published:
        ax.axhline(p.acc, color="black", linewidth=0.8, linestyle="-.",
                   label=f"{p.label or p.source} {p.acc:.3f}")
    ax.set_xscale("log", base=2)
    ax.set_xticks(lams, [str(v) for v in lams])
    ax.set_xlabel("update interval λ (DEC iterations per target update)")
    ax.set_ylabel("score")
    seeds = sorted({r["seed"] for r in rows})
    ax.set_title(f"{sweep.name}: " + (f"mean ± sd over seeds {', '.join(map(str, seeds))}"
                                      if len(seeds) > 1 else f"one run per λ (seed {seeds[0]})"),
                 fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    save_figure(fig, path)


def write(rows, out, sweep):
    out.mkdir(parents=True, exist_ok=True)
    with atomic(out / "sweep.csv") as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    write_text(out / "sweep.md", table(rows, sweep))
    figure(rows, out / "sweep.png", sweep)
