"""The PyTorch side of the README's "Caffe against PyTorch" table: DEC's
autoencoder (784-500-500-2000-10, batch 256, momentum SGD, data in memory)
timed like `make bench-dec`, in seconds per epoch of 70000 samples.

Pretraining computes the frozen lower layers' output once per stage, as our
runs do (nets.stack_net; pt-dec does the same), and trains each stage on it.
PyTorch is not a dependency of heobs-dec:
run this with any Python that has it, e.g.
    python3 -m venv /tmp/torch && /tmp/torch/bin/pip install torch
    /tmp/torch/bin/python dec/bench/torch_reference.py
"""
import time

DIMS = (784, 500, 500, 2000, 10)
SAMPLES, BATCH = 70000, 256


def best_seconds(step, iters=40, repeats=3, warmup=5):
    for i in range(warmup):
        step(i)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(iters):
            step(i)
        best = min(best, (time.perf_counter() - start) / iters)
    return best


def main():
    import torch
    from torch import nn
    torch.manual_seed(0)
    x = torch.rand(SAMPLES, DIMS[0])
    epoch = -(-SAMPLES // BATCH)

    def batch(i):
        start = (i * BATCH) % (SAMPLES - BATCH)
        return x[start:start + BATCH]

    def linear_relu(sizes, last_relu):
        layers = []
        for n, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(nn.Linear(a, b))
            if last_relu or n < len(sizes) - 2:
                layers.append(nn.ReLU())
        return layers

    # Fine-tuning: the whole autoencoder, no ReLU on the embedding or the output.
    autoencoder = nn.Sequential(*linear_relu(DIMS, False), *linear_relu(DIMS[::-1], False))
    optimizer = torch.optim.SGD(autoencoder.parameters(), lr=0.1, momentum=0.9)

    def finetune(i):
        xb = batch(i)
        optimizer.zero_grad()
        loss = ((autoencoder(xb) - xb) ** 2).sum() / (2 * BATCH)   # Caffe's EuclideanLoss
        loss.backward()
        optimizer.step()

    finetune_s = best_seconds(finetune)

    # Layer-wise pretraining with dropout 0.2 (none on the data), as DEC's stacked nets.
    pretrain_s = 0.0
    for k in range(len(DIMS) - 1):
        frozen = nn.Sequential(*linear_relu(DIMS[:k + 1], True)).requires_grad_(False)
        layers = [nn.Dropout(0.2 if k else 0.0), nn.Linear(DIMS[k], DIMS[k + 1])]
        if k < len(DIMS) - 2:
            layers += [nn.ReLU(), nn.Dropout(0.2)]
        layers.append(nn.Linear(DIMS[k + 1], DIMS[k]))
        if k:
            layers.append(nn.ReLU())
        stage = nn.Sequential(*layers)
        stage_optimizer = torch.optim.SGD(stage.parameters(), lr=0.1, momentum=0.9)

        with torch.no_grad():
            features = frozen(x)

        def pretrain(i, features=features, stage=stage, stage_optimizer=stage_optimizer):
            start = (i * BATCH) % (SAMPLES - BATCH)
            h = features[start:start + BATCH]
            stage_optimizer.zero_grad()
            loss = ((stage(h) - h) ** 2).sum() / (2 * BATCH)
            loss.backward()
            stage_optimizer.step()

        seconds = best_seconds(pretrain)
        pretrain_s += seconds
        print(f"  pretraining layer {k + 1}: {seconds * 1e3:7.2f} ms/iteration")
    print(f"PyTorch {torch.__version__}, {torch.get_num_threads()} threads, batch {BATCH}:")
    print(f"  pretraining, all four layers: {pretrain_s * epoch:6.1f} s per epoch")
    print(f"  fine-tuning: {finetune_s * 1e3:7.2f} ms/iteration, {finetune_s * epoch:6.1f} s per epoch")


if __name__ == "__main__":
    main()
