"""Clustering metrics and the report's confusion table (rows Actual, columns Predict)."""
import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from data_prep.files import save_figure


def labelled(y_true, y_pred):
    """The pairs whose true label is known (a label of -1 means none)."""
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"{y_true.shape[0]} labels but {y_pred.shape[0]} predictions")
    known = y_true >= 0
    return y_true[known], y_pred[known]


def confusion(y_true, y_pred, n_true=None, n_pred=None):
    """counts[a, p]: samples of actual class a predicted as cluster p
    (samples labelled -1, without a class, are left out)."""
    y_true, y_pred = labelled(y_true, y_pred)
    n_true = n_true or int(y_true.max()) + 1
    n_pred = n_pred or int(y_pred.max()) + 1
    counts = np.zeros((n_true, n_pred), dtype=np.int64)
    np.add.at(counts, (y_true, y_pred), 1)
    return counts


def cluster_acc(y_true, y_pred):
    """Best one-to-one matching of clusters to classes (Hungarian), as DEC's
    cluster_acc. Returns (accuracy, {cluster: class})."""
    y_true, y_pred = labelled(y_true, y_pred)
    counts = confusion(y_true, y_pred)
    size = max(counts.shape)
    square = np.zeros((size, size), dtype=np.int64)
    square[:counts.shape[0], :counts.shape[1]] = counts
    rows, cols = linear_sum_assignment(-square)
    mapping = {int(c): int(r) for r, c in zip(rows, cols) if c < counts.shape[1]}
    return float(square[rows, cols].sum()) / len(y_true), mapping


def scores(y_true, y_pred):
    """Accuracy, NMI and ARI. `nmi` is DEC's: scikit-learn's NMI of 2015
    (dec.py's normalized_mutual_info_score), normalised by the geometric mean of
    the two entropies; today's default (arithmetic mean) is `nmi_arithmetic`."""
    y_true, y_pred = labelled(y_true, y_pred)
    acc, _ = cluster_acc(y_true, y_pred)
    return {"acc": acc,
            "nmi": float(normalized_mutual_info_score(y_true, y_pred,
                                                      average_method="geometric")),
            "nmi_arithmetic": float(normalized_mutual_info_score(
                y_true, y_pred, average_method="arithmetic")),
            "ari": float(adjusted_rand_score(y_true, y_pred))}


def confusion_table(counts, class_names=None):
    """Text in the layout of report Tables 1-2: a 'Predict' header row and
    'Actual' row labels."""
    n_true, n_pred = counts.shape
    names = list(class_names) if class_names else [str(i) for i in range(n_true)]
    width = max(6, len(str(counts.max())) + 1)
    label_width = max(len(n) for n in names) + 7
    lines = ["Predict".rjust(label_width) + "".join(str(j).rjust(width) for j in range(n_pred))]
    for i in range(n_true):
        head = ("Actual " if i == 0 else "") + names[i]
        lines.append(head.rjust(label_width) + "".join(str(v).rjust(width) for v in counts[i]))
    return "\n".join(lines) + "\n"


def confusion_png(counts, path, class_names=None, title="Confusion (rows Actual, columns Predict)"):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    n_true, n_pred = counts.shape
    fig, ax = plt.subplots(figsize=(1.0 + 0.6 * n_pred, 1.0 + 0.55 * n_true))
    ax.imshow(counts, cmap="Blues")
    for i in range(n_true):
        for j in range(n_pred):
            ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=7,
                    color="white" if counts[i, j] > counts.max() / 2 else "black")
    ax.set_xlabel("Predict (cluster)")
    ax.set_ylabel("Actual")
    ax.set_xticks(range(n_pred))
    ax.set_yticks(range(n_true))
    if class_names:
        ax.set_yticklabels(class_names, fontsize=7)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)
