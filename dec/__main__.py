"""heobs-dec's command line: python -m dec COMMAND ... (--help of each).

DEC (unsupervised): data, run, predict.
CaffeNet (supervised): sample, labels, survey, resize, prepare, train, evaluate, classify.
"""
import argparse
import sys
from pathlib import Path

from . import datasets, nets, pipeline
from . import engine
from .engine import CaffeMissing
from .solve import Diverged

SOURCES = ("digits", "fashion", "mnist", "stl", "photos")


def load_source(source, mnist_dir=None, limit=None):
    if source == "digits":
        image_set = datasets.load_digits()
    elif source == "fashion":
        image_set = datasets.load_fashion_mnist()
    elif source == "mnist":
        if not mnist_dir:
            raise FileNotFoundError("MNIST needs --mnist-dir (or `make mnist-data`)")
        image_set = datasets.load_mnist_folder(mnist_dir, "mnist", [str(i) for i in range(10)])
    else:
        raise ValueError(f"unknown data set {source}; one of {SOURCES}")
    return datasets.subset(image_set, limit) if limit else image_set


def schedule_from_args(args, base=nets.PAPER):
    sched = base.override(pretrain_iter=args.pretrain_iter, finetune_iter=args.finetune_iter,
                          stepsize=args.stepsize, update_interval=args.update_interval,
                          max_rounds=args.max_rounds, seed=args.seed, base_lr=args.lr,
                          snapshot=args.snapshot, tol=args.tol)
    if args.hidden:
        sched = sched.override(dims=(sched.dims[0],) + tuple(args.hidden) + (sched.dims[-1],))
    if args.embedding:
        sched = sched.override(dims=tuple(sched.dims[:-1]) + (args.embedding,))
    return sched


def add_schedule_args(p):
    g = p.add_argument_group("schedule (defaults: DEC's paper schedule)")
    g.add_argument("--pretrain-iter", type=int, help="iterations per layer (50000)")
    g.add_argument("--finetune-iter", type=int, help="end-to-end iterations (100000)")
    g.add_argument("--stepsize", type=int, help="lr / 10 every N iterations (20000)")
    g.add_argument("--lr", type=float, help="pretraining base_lr (0.1)")
    g.add_argument("--update-interval", type=int, help="DEC iterations per round (160)")
    g.add_argument("--max-rounds", type=int, help="stop DEC after N rounds (1000)")
    g.add_argument("--tol", type=float, help="stop below this changed fraction (0.001)")
    g.add_argument("--snapshot", type=int, help="snapshot every N iterations (10000)")
    g.add_argument("--seed", type=int, help="Caffe and k-means seed (1234)")
    g.add_argument("--hidden", type=int, nargs="+", help="hidden sizes (500 500 2000)")
    g.add_argument("--embedding", type=int, help="embedding size (10)")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m dec", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("data", help="write <name>_{train,test,total,img} LevelDBs")
    p.add_argument("source", choices=SOURCES)
    p.add_argument("--out", default="data", help="folder for the databases (data)")
    p.add_argument("--limit", type=int, help="a seeded random subset of N samples")
    p.add_argument("--mnist-dir", help="folder with the four MNIST IDX files (.gz or raw)")
    p.add_argument("--stl-dir", help="folder with STL-10's *_X.bin / *_y.bin files")
    p.add_argument("--photos", help="folder of photos (or a fetch output folder)")
    p.add_argument("--name", help="database name for photos (custom)")
    p.add_argument("--size", type=int, nargs=2, default=(96, 96), metavar=("W", "H"),
                   help="photos are resized to W x H before features (96 96)")
    p.add_argument("--cmap", type=int, nargs=2, default=(6, 10), metavar=("W", "H"),
                   help="colour map size for photos (report: 6 10)")

    p = sub.add_parser("run", help="pretrain, cluster, write metrics and class folders")
    p.add_argument("name", help="database name, e.g. digits, fashion, mnist, fashion5000")
    p.add_argument("--data", default="data")
    p.add_argument("--run", help="run folder (runs/<name>)")
    p.add_argument("--clusters", type=int, help="number of clusters (the labels' count)")
    p.add_argument("--gpu", type=int, help="GPU id (default: CPU)")
    add_schedule_args(p)

    p = sub.add_parser("predict", help="assign new samples to a finished run's clusters")
    p.add_argument("run", help="run folder")
    p.add_argument("--db", required=True, help="a <name>_total style database to assign")
    p.add_argument("--out", help="CSV of index, cluster, q (default: stdout)")

    add_supervised_commands(sub)
    args = parser.parse_args(argv)
    try:
        if getattr(args, "handler", None):
            return args.handler(args)
        if args.command == "data" and args.source in ("stl", "photos"):
            from . import feature_data
            if args.source == "stl":
                if not args.stl_dir:
                    raise FileNotFoundError("STL-10 needs --stl-dir (or `make stl-data`)")
                shape = feature_data.make_stl_databases(args.stl_dir, args.out)
                print(f"stl: {shape[0]} labelled samples of {shape[1]} features → {args.out}")
            else:
                if not args.photos:
                    raise FileNotFoundError("photos need --photos FOLDER")
                result = feature_data.make_photo_databases(
                    args.photos, args.out, args.name or "custom", tuple(args.size),
                    tuple(args.cmap))
                print(f"{args.name or 'custom'}: {result['written']} photos written, "
                      f"{len(result['skipped'])} skipped → {args.out}")
        elif args.command == "data":
            image_set = load_source(args.source, args.mnist_dir, args.limit)
            paths = datasets.make_databases(image_set, args.out)
            print(f"{image_set.name}: {len(image_set.images)} samples of {image_set.dim} → "
                  + ", ".join(str(p) for p in paths.values()))
        elif args.command == "run":
            engine.use_device(args.gpu)
            meta = datasets.load_meta(args.data, args.name)
            sched = pipeline.schedule_for(meta, schedule_from_args(args))
            results = pipeline.run(args.name, args.data, args.run or f"runs/{args.name}",
                                   sched, n_clusters=args.clusters)
            print_summary(results)
        elif args.command == "predict":
            from . import db
            x, _ = db.read_db(args.db)
            y_pred, q = pipeline.predict(args.run, x)
            lines = ["index,cluster,q"] + [f"{i},{c},{q[i, c]:.4f}" for i, c in enumerate(y_pred)]
            text = "\n".join(lines) + "\n"
            if args.out:
                Path(args.out).write_text(text)
            else:
                sys.stdout.write(text)
    except (FileNotFoundError, ValueError, RuntimeError, CaffeMissing, Diverged) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


# ---- the supervised half (report §4-§8): CaffeNet ------------------------------------
def add_supervised_commands(sub):
    from . import caffenet, supervised as sv

    def labels_of(args):
        if args.labels:
            return sv.read_labels(args.labels)
        if args.tree:
            return sv.labels_from_tree(args.tree)
        if args.prefixes:
            return sv.labels_from_prefixes(args.prefixes)
        raise ValueError("give --labels CSV, --tree FOLDER or --prefixes FOLDER")

    def label_source(p):
        g = p.add_mutually_exclusive_group()
        g.add_argument("--labels", help="CSV path,label")
        g.add_argument("--tree", help="folder of class folders <root>/<class>/<file>")
        g.add_argument("--prefixes", help="folder of files named <class>_...")

    def do_sample(a):
        chosen = sv.sample(a.source, a.n, a.out, a.seed)
        print(f"{len(chosen)} photos copied to {a.out}: label them by moving them into "
              f"{a.out}/<class>/ folders or renaming them <class>_<name>")
        return 0

    def do_labels(a):
        items = labels_of(a)
        print(sv.class_table(items))
        if a.out:
            print(f"written {sv.write_labels(items, a.out)}")
        return 0

    def do_survey(a):
        files = sv.list_photos(a.source)
        groups, unreadable = sv.survey(files, a.tolerance)
        print(sv.survey_table(groups[:a.top], a.tolerance))
        for path, reason in unreadable:
            print(f"unreadable {path}: {reason}")
        if a.png:
            sv.survey_png(groups, a.png)
            print(f"histogram: {a.png}")
        return 0

    def do_resize(a):
        items = labels_of(a)
        if a.window:
            low, high = tuple(a.window[:2]), tuple(a.window[2:])
            items = sv.window(items, low, high)
            print(f"{len(items)} images inside the window {low}-{high}")
        resized, size = sv.resize_all(items, a.out, tuple(a.size) if a.size else None)
        sv.write_labels(resized, Path(a.out) / "labels.csv")
        print(f"{len(resized)} images resized to {size[0]}x{size[1]} in {a.out} "
              f"(labels: {Path(a.out) / 'labels.csv'})")
        return 0

    def do_prepare(a):
        items = sv.select(labels_of(a), a.mode, a.classes, a.positive)
        ratios = sv.SPLITS.get(a.split) or tuple(float(v) for v in a.split.split("/"))
        if sum(ratios) > 1.5:
            ratios = tuple(v / 100 for v in ratios)
        info = sv.prepare(items, a.out, ratios, a.seed, a.backend)
        for split, counts in info["counts"].items():
            print(f"{split:5s} " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
        print(f"databases and mean image in {a.out}")
        return 0

    def do_train(a):
        solver = caffenet.REPORT_SOLVER.override(max_iter=a.max_iter, base_lr=a.lr,
                                                 stepsize=a.stepsize, batch_size=a.batch,
                                                 test_interval=a.test_interval,
                                                 snapshot=a.snapshot, display=a.display)
        rows, tests = sv.train(a.dataset, a.run, solver, a.weights, gpu=a.gpu)
        if tests:
            print(f"last validation: {tests[-1]}")
        print(f"log {Path(a.run) / 'train.log'}, curves {Path(a.run) / 'curves.png'}")
        return 0

    def do_evaluate(a):
        sv.evaluate(a.run, a.dataset, a.split)
        print((Path(a.run) / "evaluation.txt").read_text())
        return 0

    def do_classify(a):
        counts = sv.pseudo_label(a.run, a.source, a.out, copy=a.copy)
        print(", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
        print(f"review folders and predictions.csv in {a.out}; after the review: "
              f"python -m dec labels --tree {a.out} --out labels.csv")
        return 0

    p = sub.add_parser("sample", help="copy a seeded random sample of photos to label")
    p.add_argument("source")
    p.add_argument("-n", type=int, default=1000)
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=1234)
    p.set_defaults(handler=do_sample)

    p = sub.add_parser("labels", help="read labels (tree or prefixes), print Table 3, write CSV")
    label_source(p)
    p.add_argument("--out", help="write the labels as CSV path,label")
    p.set_defaults(handler=do_labels)

    p = sub.add_parser("survey", help="image sizes grouped within a tolerance (Figure 5)")
    p.add_argument("source")
    p.add_argument("--tolerance", type=int, default=10)
    p.add_argument("--top", type=int, default=30)
    p.add_argument("--png", help="histogram PNG")
    p.set_defaults(handler=do_survey)

    p = sub.add_parser("resize", help="filter by a size window, resize (BICUBIC) into a new folder")
    label_source(p)
    p.add_argument("--out", required=True)
    p.add_argument("--window", type=int, nargs=4, metavar=("W0", "H0", "W1", "H1"),
                   help="keep sizes from W0xH0 to W1xH1 (report: 200 120 200 165)")
    p.add_argument("--size", type=int, nargs=2, metavar=("W", "H"),
                   help="target size (default: the smallest width and height)")
    p.set_defaults(handler=do_resize)

    p = sub.add_parser("prepare", help="split, Caffe image databases, mean image")
    label_source(p)
    p.add_argument("--out", required=True)
    p.add_argument("--mode", choices=("all", "subset", "one-vs-rest"), default="all")
    p.add_argument("--classes", nargs="+", help="for --mode subset (e.g. omit other)")
    p.add_argument("--positive", help="for --mode one-vs-rest")
    p.add_argument("--split", default="80/10/10", help="80/10/10, 70/10/20 or a/b/c")
    p.add_argument("--backend", choices=("leveldb", "lmdb"), default="leveldb")
    p.add_argument("--seed", type=int, default=1234)
    p.set_defaults(handler=do_prepare)

    p = sub.add_parser("train", help="fine-tune CaffeNet with the report's solver")
    p.add_argument("dataset")
    p.add_argument("--run", required=True)
    p.add_argument("--weights", help="ImageNet weights (make fetch-caffenet)")
    p.add_argument("--gpu", type=int)
    for flag in ("max-iter", "stepsize", "batch", "test-interval", "snapshot", "display"):
        p.add_argument(f"--{flag}", type=int)
    p.add_argument("--lr", type=float)
    p.set_defaults(handler=do_train)

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


def print_summary(results):
    m = results.get("metrics")
    print(f"\n{results['dataset']}: {results['samples']} samples, {results['clusters']} clusters, "
          f"{results['rounds']} DEC rounds ({'converged' if results['converged'] else 'not converged'}), "
          f"{results['timings']['total_s']:.0f} s"
          + (f" (reused from an earlier run: {', '.join(results['reused'])})"
             if results.get("reused") else ""))
    if m:
        print(f"accuracy {m['acc']:.4f}  NMI {m['nmi']:.4f}  ARI {m['ari']:.4f}\n")
        print(results["confusion_table"])
    for key, path in results["outputs"].items():
        print(f"  {key:12s} {path}")


if __name__ == "__main__":
    sys.exit(main())
