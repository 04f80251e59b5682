"""Command line: python -m dec {data,run,predict} ... (see --help of each)."""
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

    args = parser.parse_args(argv)
    try:
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
    except (FileNotFoundError, ValueError, CaffeMissing, Diverged) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


def print_summary(results):
    m = results.get("metrics")
    print(f"\n{results['dataset']}: {results['samples']} samples, {results['clusters']} clusters, "
          f"{results['rounds']} DEC rounds ({'converged' if results['converged'] else 'not converged'}), "
          f"{results['timings']['total_s']:.0f} s")
    if m:
        print(f"accuracy {m['acc']:.4f}  NMI {m['nmi']:.4f}  ARI {m['ari']:.4f}\n")
        print(results["confusion_table"])
    for key, path in results["outputs"].items():
        print(f"  {key:12s} {path}")


if __name__ == "__main__":
    sys.exit(main())
