"""heobs-dec on Caffe: python -m dec COMMAND ... (--help of each).

DEC (unsupervised, report §3):      run, predict, compare, demo, reproduce, results-table
CaffeNet (supervised, report §4-8): train, curves, evaluate, classify
A person's review (§3.1.7, §4.1.1, §8): review, export-labels
The data they read is made by `python -m data_prep`.
"""
import argparse
import sys
from pathlib import Path

from data_prep.checks import (caffe_count, caffe_count0, dropout_ratio, int_range, nonneg_float,
                              nonneg_int, positive_float, run_command, seed_value)


def schedule_from_args(args, base=None):
    from . import nets
    base = (base or nets.PAPER).override(**nets.RECIPES[getattr(args, "recipe", None) or "paper"])
    sched = base.override(init=getattr(args, "init", None), corrupt=getattr(args, "corrupt", None),
                          lr_policy=getattr(args, "lr_policy", None),
                          pretrain_data=getattr(args, "pretrain_data", None))
    sched = sched.override(
        pretrain_iter=args.pretrain_iter, finetune_iter=args.finetune_iter,
        stepsize=args.stepsize, update_interval=args.update_interval,
        max_rounds=args.max_rounds, seed=args.seed, base_lr=args.lr,
        snapshot=args.snapshot, tol=args.tol, momentum_burnin=args.momentum_burnin)
    if args.hidden:
        sched = sched.override(dims=(sched.dims[0],) + tuple(args.hidden) + (sched.dims[-1],))
    if args.embedding:
        sched = sched.override(dims=tuple(sched.dims[:-1]) + (args.embedding,))
    return sched


def add_schedule_args(p):
    g = p.add_argument_group("schedule (defaults: DEC's paper schedule)")
    g.add_argument("--pretrain-iter", type=caffe_count, help="iterations per layer (50000)")
    g.add_argument("--finetune-iter", type=caffe_count, help="end-to-end iterations (100000)")
    g.add_argument("--stepsize", type=caffe_count, help="lr / 10 every N iterations (20000)")
    g.add_argument("--lr", type=positive_float, help="pretraining base_lr (0.1)")
    g.add_argument("--momentum-burnin", type=caffe_count0, help="iterations over which momentum "
                   "rises from 0 (the DEC fork's momentum_burnin: 1000)")
    g.add_argument("--update-interval", type=caffe_count,
                   help="DEC iterations per round (dec.py: MNIST 160, STL 40, REUTERS 20)")
    g.add_argument("--max-rounds", type=caffe_count, help="stop DEC after N rounds (1000)")
    g.add_argument("--tol", type=nonneg_float, help="stop below this changed fraction (0.001)")
    g.add_argument("--snapshot", type=caffe_count0, help="snapshot every N iterations (10000)")
    g.add_argument("--seed", type=seed_value, help="Caffe and k-means seed (1234)")
    g.add_argument("--hidden", type=caffe_count, nargs="+", help="hidden sizes (500 500 2000)")
    g.add_argument("--embedding", type=caffe_count, help="embedding size (10)")
    from .nets import INITS, LR_POLICIES, PRETRAIN_DATA, RECIPES
    r = p.add_argument_group("recipe (default: DEC's; anything else is NOT faithful, and says "
                             "so in results.json, the comparison and every figure)")
    r.add_argument("--recipe", choices=tuple(RECIPES), help="paper (DEC's); fast: learns at "
                   "a small budget (msra init, --corrupt 0.2, fixed lr, no momentum burn-in, "
                   "pretrain on total); e2e: end-to-end pretraining as DEC-keras (no stacks: the "
                   "whole autoencoder with Adam lr 0.001 from xavier weights, on total); keras: "
                   "DEC-keras' MNIST setting (no stacks: SGD lr 1 of Keras' mean squared error on "
                   "[0, 1] pixels from U(+-1/sqrt(fan_in)), on total)")
    r.add_argument("--init", choices=INITS, help="weight filler (DEC: gaussian std 0.01)")
    r.add_argument("--corrupt", type=dropout_ratio, help="input dropout in the first stage and "
                   "fine-tuning (DEC: 0)")
    r.add_argument("--lr-policy", choices=LR_POLICIES, help="autoencoder lr (DEC: step)")
    r.add_argument("--pretrain-data", choices=PRETRAIN_DATA, help="what the autoencoder "
                   "learns on (DEC: train)")


# ---- DEC -------------------------------------------------------------------------------
def do_run(a):
    from data_prep import datasets

    from . import engine, pipeline
    engine.use_device(a.gpu)          # --gpu on a CPU_ONLY build: a one-line error
    from .nets import paper_schedule
    meta = datasets.load_meta(a.data, a.name)
    base = paper_schedule(meta.get("source", a.name))
    sched = pipeline.schedule_for(meta, schedule_from_args(a, base))
    results = pipeline.run(a.name, a.data, a.run or f"runs/{a.name}", sched,
                           n_clusters=a.clusters, autoencoder_file=a.autoencoder,
                           force=a.force)
    print(pipeline.format_summary(results))


def do_predict(a):
    from data_prep import db
    from data_prep.files import write_text

    from . import pipeline
    x, _ = db.read_db(a.db)
    y_pred, q = pipeline.predict(a.run, x)
    lines = ["index,cluster,q"] + [f"{i},{c},{q[i, c]:.4f}" for i, c in enumerate(y_pred)]
    text = "\n".join(lines) + "\n"
    if a.out:
        write_text(a.out, text)
    else:
        sys.stdout.write(text)


def do_compare(a):
    from . import compare
    print(compare.write(a.run))


def do_demo(a):
    from . import demo
    demo.run(a.data, a.run)


def do_reproduce(a):
    from . import experiments
    results = experiments.reproduce(a.name, a.data, a.runs, a.gpu, a.input, a.record)
    recorded = f"; recorded in {experiments.MEASURED}" if a.record else ""
    if a.name in experiments.SWEEPS:
        out = Path(a.runs) / a.name
        print((out / "sweep.md").read_text())
        print(f"table {out / 'sweep.md'}, figure {out / 'sweep.png'}{recorded}")
        return
    if experiments.get(a.name).seeds:
        out = Path(a.runs) / a.name / "seeds.md"
        print(out.read_text())
        print(f"every seed: {out}{recorded}")
        return
    from .pipeline import format_summary
    print(format_summary(results))
    print(f"comparison: {Path(a.runs) / a.name / 'comparison.md'}{recorded}")


def do_results_table(a):
    from . import experiments
    sys.stdout.write(experiments.results_table())


# ---- CaffeNet ----------------------------------------------------------------------------
def do_train(a):
    from .caffenet import nets, train
    if a.gpu is not None:
        from .engine import check_gpu_build
        check_gpu_build()
    base = nets.REPORT_SOLVER.override(**nets.RECIPES[a.recipe or "report"])
    base = base.override(init=a.init, input_scale=a.input_scale, new_layer_lr=a.new_layer_lr,
                         clip_gradients=a.clip_gradients)
    solver = base.override(max_iter=a.max_iter, base_lr=a.base_lr,
                                         gamma=a.gamma, stepsize=a.stepsize,
                                         batch_size=a.batch,
                                         test_interval=a.test_interval,
                                         snapshot=a.snapshot, display=a.display)
    rows, tests = train.train(a.dataset, a.run, solver, a.weights, gpu=a.gpu,
                              keep_snapshots=a.keep_snapshots)
    if tests:
        print(f"last validation: {tests[-1]}")
    print(f"log {Path(a.run) / 'train.log'}, curves {Path(a.run) / 'curves.png'}")


def do_curves(a):
    from .caffenet import train
    train.compare_png(a.runs, a.png, a.title)
    print(f"written {a.png}")


def do_evaluate(a):
    from .caffenet import classify
    classify.evaluate(a.run, a.dataset, a.split)
    print((Path(a.run) / "evaluation.txt").read_text())


def do_classify(a):
    from .caffenet import classify
    counts = classify.pseudo_label(a.run, a.source, a.out, copy=a.copy)
    print(", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    print(f"review folders and predictions.csv in {a.out}; after the review: "
          f"python -m data_prep labels --tree {a.out} --out labels.csv")


# ---- review ------------------------------------------------------------------------------
def do_review(a):
    from . import review
    from .review.app import create_app, serve
    session = review.open_review(a.source, a.labels, a.classes, a.export)
    source = session.source
    print(f"{source.kind} {source.path}: {len(source)} images in {len(source.groups)} groups; "
          f"classes {', '.join(session.classes)}; decisions stored in {a.labels}")
    app = create_app(session, None, a.thumbs, a.page_size, a.host, a.allow_host)
    if a.host not in ("127.0.0.1", "localhost"):
        print(f"warning: listening on {a.host}: anyone who reaches it can label", file=sys.stderr)
    serve(app, a.host, a.port,
          ready=lambda url: print(f"review page: {url}   (Ctrl-C stops; every decision is "
                                  "already stored)", flush=True))
    # waitress ends its loop on Ctrl-C: the normal way to stop the page.
    summary = session.summary()
    print(f"stopped: {summary['reviewed']} of {summary['total']} reviewed, stored in {a.labels}; "
          f"python -m dec export-labels {a.labels} --out labels.csv")


def do_export_labels(a):
    from .review.store import Store
    if not Path(a.labels).is_file():
        raise FileNotFoundError(f"{a.labels}: no review store there")
    rows = Store(a.labels).export(a.out)
    print(f"{rows} labels written to {a.out} (path,label: python -m data_prep prepare "
          f"--labels {a.out} ...)")


def parser():
    top = argparse.ArgumentParser(prog="python -m dec", description=__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = top.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="pretrain, cluster, write metrics and class folders")
    p.add_argument("name", help="database name, e.g. digits, fashion, mnist, fashion5000")
    p.add_argument("--data", default="data")
    p.add_argument("--run", help="run folder (runs/<name>)")
    p.add_argument("--clusters", type=caffe_count,
                   help="number of clusters (the labels' count)")
    p.add_argument("--gpu", type=nonneg_int, help="GPU id (default: CPU)")
    p.add_argument("--autoencoder", help="a fine-tuned autoencoder .caffemodel to cluster "
                   "from, pretraining skipped (e.g. DEC's exp/mnist/save_iter_100000)")
    p.add_argument("--force", action="store_true", help="redo a stage an earlier run made "
                   "with other options (else refused)")
    add_schedule_args(p)
    p.set_defaults(handler=do_run)

    p = sub.add_parser("predict", help="assign new samples to a finished run's clusters")
    p.add_argument("run", help="run folder")
    p.add_argument("--db", required=True, help="a <name>_total style database to assign")
    p.add_argument("--out", help="CSV of index, cluster, q (default: stdout)")
    p.set_defaults(handler=do_predict)

    p = sub.add_parser("compare", help="write <run>/comparison.md beside the published numbers")
    p.add_argument("run", help="run folder")
    p.set_defaults(handler=do_compare)

    p = sub.add_parser("demo", help="DEC on scikit-learn's digits with a CPU schedule")
    p.add_argument("--data", default="data")
    p.add_argument("--run", default="runs/demo-digits")
    p.set_defaults(handler=do_demo)

    from .experiments import EXPERIMENTS, SWEEPS
    p = sub.add_parser("reproduce", help="run one experiment of the registry and compare it "
                       "with the published numbers, or a sweep of the DEC stage over update "
                       "intervals and seeds on one experiment's autoencoder (dec/experiments.py)")
    p.add_argument("name", choices=tuple(EXPERIMENTS) + tuple(SWEEPS))
    p.add_argument("--data", default="data")
    p.add_argument("--runs", default="runs", help="the run goes to <runs>/<name>")
    p.add_argument("--input", help="what the experiment needs from you (MNIST or STL-10 "
                   "files, a photo folder)")
    p.add_argument("--gpu", type=nonneg_int)
    p.add_argument("--record", action="store_true", help="add the numbers, commit and machine "
                   "to dec/measured.json (the README's results table)")
    p.set_defaults(handler=do_reproduce)

    p = sub.add_parser("results-table", help="the README's results table, from the registry "
                       "and dec/measured.json")
    p.set_defaults(handler=do_results_table)

    p = sub.add_parser("train", help="train CaffeNet: fine-tune the ImageNet weights with the "
                       "report's solver, or from scratch (--recipe scratch)")
    p.add_argument("dataset", help="a folder made by `python -m data_prep prepare`")
    p.add_argument("--run", required=True)
    p.add_argument("--weights", help="ImageNet weights (make fetch-caffenet)")
    p.add_argument("--gpu", type=nonneg_int)
    p.add_argument("--keep-snapshots", type=nonneg_int, default=2, help="the newest N snapshots "
                   "kept (2: one to resume from if the newest is torn); 0 keeps all, as Caffe")
    g = p.add_argument_group("solver (defaults: the report's, §4)")
    g.add_argument("--base-lr", "--lr", dest="base_lr", type=positive_float, help="0.001")
    g.add_argument("--gamma", type=positive_float, help="lr factor every stepsize (0.1; "
                   "§4.1.4 tried 0.01, 0.001, 0.0001)")
    for flag, default in (("max-iter", 4000), ("stepsize", 500), ("batch", 50),
                          ("test-interval", 500), ("snapshot", 500), ("display", 50)):
        g.add_argument(f"--{flag}", type=caffe_count, help=str(default))
    from .caffenet.nets import INITS, RECIPES
    r = p.add_argument_group("recipe (default: the report's solver with BVLC's fillers; anything "
                             "else is NOT the report's, and says so in results.json and curves.png)")
    r.add_argument("--recipe", choices=tuple(RECIPES), help="report; scratch: learns without the "
                   "ImageNet weights (msra init, inputs x 1/256, last layer lr x1; the report's solver)")
    r.add_argument("--init", choices=INITS, help="weight fillers (BVLC's gaussian, biases 0/1)")
    r.add_argument("--input-scale", type=positive_float, help="pixels minus the mean, times "
                   "this (1)")
    r.add_argument("--new-layer-lr", type=positive_float, help="lr_mult of the new last layer, "
                   "biases twice it (BVLC's fine-tuning: 10)")
    r.add_argument("--clip-gradients", type=nonneg_float, help="Caffe's clip_gradients: the "
                   "L2 norm of all gradients capped at this (0: none)")
    p.set_defaults(handler=do_train)

    p = sub.add_parser("curves", help="several CaffeNet runs' curves side by side in one PNG")
    p.add_argument("runs", nargs="+", help="run folders of `train`")
    p.add_argument("--png", required=True)
    p.add_argument("--title", default="CaffeNet runs", help="say the machine, commit and "
                   "command where the figure is shown to others")
    p.set_defaults(handler=do_curves)

    p = sub.add_parser("evaluate", help="accuracy, per-class P/R/F1, confusion on a split")
    p.add_argument("run")
    p.add_argument("dataset")
    p.add_argument("--split", default="test")
    p.set_defaults(handler=do_evaluate)

    p = sub.add_parser("classify", help="pseudo-label a photo folder into review folders")
    p.add_argument("run")
    p.add_argument("source")
    p.add_argument("--out", required=True)
    p.add_argument("--copy", action="store_true", help="copy instead of symbolic links")
    p.set_defaults(handler=do_classify)

    p = sub.add_parser("review", help="label, accept and correct images in the browser")
    p.add_argument("source", help="a DEC run folder, a classify output (folder or its "
                   "predictions.csv), a labels CSV (path,label) or a photo folder")
    p.add_argument("--labels", required=True,
                   help="the review's SQLite store of decisions (made when missing)")
    p.add_argument("--classes", nargs="+", help="classes to sort into (default: the source's, "
                   "else the report's heritage being scenery other)")
    p.add_argument("--export", help="labels CSV of the export button (default: <store>.labels.csv "
                   "beside --labels)")
    p.add_argument("--host", default="127.0.0.1", help="127.0.0.1; 0.0.0.0 serves every "
                   "interface (another machine, out of a container): the page then answers "
                   "requests naming this machine's names and addresses")
    p.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                   help="another name the page may be reached by (a DNS name of this machine)")
    p.add_argument("--port", type=int_range(0, 65535), default=8765,
                   help="8765; 0: any free port")
    p.add_argument("--thumbs", help="thumbnail cache (default ~/.cache/heobs-dec/thumbs)")
    p.add_argument("--page-size", type=int_range(1, 500), default=60, help="images a page "
                   "(60; at most 500)")
    p.set_defaults(handler=do_review)

    p = sub.add_parser("export-labels", help="a review store → labels.csv for `prepare`")
    p.add_argument("labels", help="the review's SQLite store")
    p.add_argument("--out", required=True, help="labels.csv (path,label)")
    p.set_defaults(handler=do_export_labels)
    return top


def main(argv=None):
    return run_command(parser, argv)


if __name__ == "__main__":
    sys.exit(main())
