"""Put a run's numbers next to the published ones: <run>/comparison.md
(`python -m dec compare runs/mnist`). The published numbers and their
sources are the experiments registry's (dec/experiments.py)."""
from pathlib import Path

from data_prep.files import read_json, write_text

from . import experiments


def published(results):
    """The registry's published rows for a run (its experiment, else its data family)."""
    experiment = experiments.for_results(results)
    return list(experiment.published) if experiment else []


def write(run_dir):
    run_dir = Path(run_dir)
    results = read_json(run_dir / "results.json")
    ours = results.get("metrics")
    if not ours:
        raise ValueError(f"{run_dir}: the data set had no labels; nothing to compare")
    sched = results["schedule"]
    recipe = results.get("recipe", "paper")
    experiment = experiments.for_results(results)
    lines = [f"# {results['dataset']}: this run against published numbers", "",
             f"Experiment: {experiment.name if experiment else '—'}; recipe: {recipe}"
             + ("" if recipe == "paper" else " (NOT DEC's schedule)"), "",
             "| source | accuracy | NMI (geometric, as DEC) | note |", "|---|---|---|---|",
             f"| this run ({run_dir.name}, {results.get('samples', '?')} samples) | {ours['acc']:.4f} | "
             f"{ours['nmi']:.4f} | recipe {recipe} |"]
    for p in published(results):
        lines.append(f"| {p.source} | {p.acc:.4f} | {'—' if p.nmi is None else f'{p.nmi:.4f}'} "
                     f"| {p.note} |")
    stages = (f"{sched['pretrain_iter']} iterations per layer, " if sched.get("stacked", True)
              else "no layer-wise stages, ")
    lines += ["", f"Schedule: {stages}{sched['finetune_iter']} fine-tuning "
              f"({sched.get('solver_type', 'SGD')}), lr {sched['base_lr']} "
              + (f"/ 10 every {sched['stepsize']}" if sched.get("lr_policy", "step") == "step"
                 else "fixed")
              + f", DEC update interval {sched['update_interval']}, "
              f"{results['rounds']} rounds ({'converged' if results['converged'] else 'stopped'}); "
              f"{results['timings']['total_s'] / 60:.1f} minutes in all.", "",
             "```", results.get("confusion_table", "").rstrip(), "```", ""]
    text = "\n".join(lines)
    write_text(run_dir / "comparison.md", text)
    return text
