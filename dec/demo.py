"""make demo: DEC end to end on scikit-learn's 8x8 digits (1797 real images),
on CPU in a few minutes, with a budgeted schedule (the paper's is 50000 +
100000 iterations; `python -m dec run` takes it by default).
"""
import argparse
import sys
import time
from pathlib import Path

from . import datasets, nets, pipeline
from .__main__ import print_summary

# The paper's architecture and DEC settings; fewer iterations for a CPU demo.
DEMO_SCHEDULE = nets.PAPER.override(pretrain_iter=1000, finetune_iter=2000, stepsize=1000,
                                    update_interval=20, max_rounds=40, snapshot=500)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="data")
    parser.add_argument("--run", default="runs/demo-digits")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    image_set = datasets.load_digits()
    if not (Path(args.data) / "digits_meta.json").exists():
        datasets.make_databases(image_set, args.data)
    meta = datasets.load_meta(args.data, "digits")
    sched = pipeline.schedule_for(meta, DEMO_SCHEDULE)
    print(f"DEC demo: {meta['samples']} digits, net {'-'.join(map(str, sched.dims))}, "
          f"{sched.pretrain_iter} iterations per layer, {sched.finetune_iter} fine-tuning, "
          f"update interval {sched.update_interval}; run folder {args.run}")
    results = pipeline.run("digits", args.data, args.run, sched)
    print_summary(results)
    print(f"\ndemo finished in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
