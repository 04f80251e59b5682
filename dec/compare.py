"""Put a run's numbers next to the published ones: <run>/comparison.md
(`python -m dec compare runs/mnist`)."""
import json
from pathlib import Path

import numpy as np

from data_prep.files import write_text

from . import metrics

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
    n = counts.shape[0]
    y_true = np.repeat(np.repeat(np.arange(n), counts.shape[1]), counts.ravel())
    y_pred = np.repeat(np.tile(np.arange(counts.shape[1]), n), counts.ravel())
    return metrics.scores(y_true, y_pred)


def published(dataset):
    """(source, acc, nmi) rows for a data set; None where not published."""
    if dataset.startswith("mnist"):
        report = scores_from_confusion(REPORT_TABLE_2)
        return [("DEC paper (Xie et al. 2016), Table 2", 0.8430, None),
                ("IDEC paper (Guo et al. 2017), DEC rerun", 0.866, None),
                ("The heobs report, Table 2 (DEC fork, GPU)", report["acc"], report["nmi"])]
    if dataset.startswith("stl"):
        return [("DEC paper (Xie et al. 2016), Table 2", 0.359, None),
                ("The heobs report, §3.2 (DEC fork, make_stl_data)", 0.357, None)]
    if dataset.startswith("photos"):
        return [("The heobs report, §3.3 (its own photos, 4 classes)", 0.6874, None)]
    if dataset.startswith("fashion"):
        # NMI of these two: arithmetic normalisation (scikit-learn's default now).
        return [("k-means on raw pixels, measured for issue #3 (arithmetic NMI)", 0.476, 0.512),
                ("public PyTorch DEC, short schedule, issue #3 (arithmetic NMI)", 0.549, 0.573)]
    return []


def write(run_dir):
    run_dir = Path(run_dir)
    results = json.loads((run_dir / "results.json").read_text())
    ours = results.get("metrics")
    if not ours:
        raise ValueError(f"{run_dir}: the data set had no labels; nothing to compare")
    sched = results["schedule"]
    lines = [f"# {results['dataset']}: this run against published numbers", "",
             "| source | accuracy | NMI (geometric, as DEC) |", "|---|---|---|",
             f"| this run ({run_dir.name}) | {ours['acc']:.4f} | {ours['nmi']:.4f} |"]
    for source, acc, nmi in published(results.get("source") or results["dataset"]):
        lines.append(f"| {source} | {acc:.4f} | {'—' if nmi is None else f'{nmi:.4f}'} |")
    lines += ["", f"Schedule: {sched['pretrain_iter']} iterations per layer, "
              f"{sched['finetune_iter']} fine-tuning, lr {sched['base_lr']} / 10 every "
              f"{sched['stepsize']}, DEC update interval {sched['update_interval']}, "
              f"{results['rounds']} rounds ({'converged' if results['converged'] else 'stopped'}); "
              f"{results['timings']['total_s'] / 60:.1f} minutes in all.", "",
             "```", results.get("confusion_table", "").rstrip(), "```", ""]
    text = "\n".join(lines)
    write_text(run_dir / "comparison.md", text)
    return text

