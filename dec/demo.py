"""make demo: DEC end to end on scikit-learn's 8x8 digits (1797 real images),
on CPU in a few minutes, with a budgeted schedule (the paper's is 50000 +
100000 iterations; `python -m dec run` takes it by default).
"""
import time
from pathlib import Path

from data_prep import datasets

from . import experiments, nets, pipeline

# The paper's architecture and DEC settings; fewer iterations for a CPU demo
# (the registry's digits-demo experiment).
DEMO_SCHEDULE = nets.PAPER.override(**experiments.DEMO_SCHEDULE)


def run(data_dir="data", run_dir="runs/demo-digits"):
    start = time.perf_counter()
    if not (Path(data_dir) / "digits_meta.json").exists():
        datasets.make_databases(datasets.load_digits(), data_dir)
    meta = datasets.load_meta(data_dir, "digits")
    sched = pipeline.schedule_for(meta, DEMO_SCHEDULE)
    print(f"DEC demo: {meta['samples']} digits, net {'-'.join(map(str, sched.dims))}, "
          f"{sched.pretrain_iter} iterations per layer, {sched.finetune_iter} fine-tuning, "
          f"update interval {sched.update_interval}; run folder {run_dir}")
    results = pipeline.run("digits", data_dir, run_dir, sched, experiment="digits-demo")
    print(pipeline.format_summary(results))
    print(f"\ndemo finished in {time.perf_counter() - start:.0f} s")
    return results
