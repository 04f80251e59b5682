"""DEC's stacked autoencoder: greedy layer-wise denoising pretraining, then
end-to-end fine-tuning (pretrain.py), and embedding with the deploy net.

Each stage writes its weights to the run folder; a finished stage is skipped
when the run is started again, an unfinished one resumes from its snapshot.
"""
import shutil
from pathlib import Path

import numpy as np

from . import nets, solve
from data_prep import db
from data_prep.files import copy_file, write_text

from .engine import import_caffe, solver_mode


def pretrain(run_dir, train_db, test_db, sched, log=print, progress=True):
    """All stages; returns the fine-tuned autoencoder's weights file."""
    run_dir = Path(run_dir)
    net_dir, snap_dir = run_dir / "nets", run_dir / "snapshots"
    net_dir.mkdir(parents=True, exist_ok=True)
    snap_dir.mkdir(parents=True, exist_ok=True)
    dims = sched.dims
    n_layers = len(dims) - 1
    names = ["data"] + nets.blob_names(n_layers)
    final = run_dir / "autoencoder.caffemodel"
    if final.exists():
        log(f"autoencoder: done ({final})")
        return final

    decoders = {}
    previous = None
    samples = None                      # the training data, read once for stages 2-4
    # The e2e recipe (not DEC's) has no stacks: fine-tuning starts from the fillers.
    for layer in range(n_layers if sched.stacked else 0):
        stage = f"pretrain layer {layer + 1}/{n_layers}"
        weights = run_dir / f"stack{layer + 1}.caffemodel"
        if not weights.exists():
            # The frozen layers' output, once for the stage (nets.stack_net).
            features = None
            if layer:
                if samples is None:
                    samples = db.read_db(train_db)[0]
                features = frozen_features(previous, layer, dims, samples, run_dir / "features" /
                                           f"{names[layer]}_train", net_dir, sched.batch_size)
            net_file = write_text(net_dir / f"stack_net{layer + 1}.prototxt",
                                  nets.stack_net(layer, dims, sched, train_db, test_db,
                                                 input_source=features))
            prefix = snap_dir / f"stack{layer + 1}"
            solver_file = write_text(net_dir / f"stack{layer + 1}_solver.prototxt",
                                 nets.pretrain_solver(net_file, sched, prefix,
                                                      sched.pretrain_iter, solver_mode()))
            loss = solve.train(solver_file, max_iter=sched.pretrain_iter,
                               loss_blob=f"pt_loss{layer + 1}", stage=stage,
                               base_lr=sched.base_lr, snapshot_prefix=prefix,
                               snapshot_every=sched.snapshot, out_weights=weights,
                               init_weights=previous, progress=progress)
            log(f"{stage}: reconstruction loss {loss:.4f}")
            if features:
                shutil.rmtree(features)
        decoders[f"d_{names[layer]}"] = read_params(weights, f"d_{names[layer]}")
        previous = weights
    shutil.rmtree(run_dir / "features", ignore_errors=True)

    stage = "fine-tune autoencoder"
    net_file = write_text(net_dir / "autoencoder.prototxt",
                      nets.autoencoder_net(dims, sched, train_db, test_db))
    prefix = snap_dir / "finetune"
    solver_file = write_text(net_dir / "finetune_solver.prototxt",
                         nets.pretrain_solver(net_file, sched, prefix, sched.finetune_iter,
                                              solver_mode()))

    def load_decoders(net):
        # pretrain.py: the encoders come from the last stage, each decoder from its own.
        for name, (w, b) in decoders.items():
            net.params[name][0].data[...] = w
            net.params[name][1].data[...] = b

    # shuffle has no stacks (nets.stack_net refuses it): the samples are read here.
    feed = EpochShuffle(db.read_db(train_db)[0], sched.batch_size, sched.seed) \
        if sched.shuffle else None
    loss = solve.train(solver_file, max_iter=sched.finetune_iter, loss_blob="pt_loss",
                       stage=stage, base_lr=sched.base_lr, snapshot_prefix=prefix,
                       snapshot_every=sched.snapshot, out_weights=final,
                       init_weights=previous, prepare=load_decoders, feed=feed,
                       progress=progress)
    log(f"{stage}: reconstruction loss {loss:.4f}")
    return final


class EpochShuffle:
    """Fine-tuning batches as Keras' fit(shuffle=True) draws them (not DEC's,
    whose Data layer reads the database in one order every epoch): every epoch
    a new permutation of the samples, cut into batches; the last, partial
    batch is left out (the net's Input layer has one shape). The order of an
    epoch depends only on the seed and the epoch's number, so a run resumed
    from a snapshot is fed what an uninterrupted run would be."""

    def __init__(self, x, batch, seed):
        self.x = np.ascontiguousarray(x.reshape(len(x), -1), dtype=np.float32)
        self.batch, self.seed = batch, seed
        self.per_epoch = len(self.x) // batch
        if not self.per_epoch:
            raise ValueError(f"{len(self.x)} samples, fewer than a batch of {batch}")
        self._epoch, self._order = None, None

    def rows(self, iteration):
        """The samples of the batch at `iteration`."""
        epoch, k = divmod(iteration, self.per_epoch)
        if epoch != self._epoch:
            self._order = np.random.default_rng([self.seed, epoch]).permutation(len(self.x))
            self._epoch = epoch
        return self._order[k * self.batch:(k + 1) * self.batch]

    def __call__(self, net, iteration):
        np.take(self.x, self.rows(iteration), axis=0, out=net.blobs["data"].data)


def frozen_features(weights, layer, dims, x, out, net_dir, batch):
    """The input of pretraining stage `layer`: every sample of `x` (the
    training database's, in its order) through the trained encoder layers
    below the stage (clean: no dropout, as DEC's frozen layers give it),
    written to the LevelDB `out`.

    Every forward is a full batch of the stage's size, the last one filled up
    from the start as the Data layer wraps around (OpenBLAS takes other
    kernels for small products). The stage then trains bit for bit as DEC's
    net where the BLAS computes a row the same wherever it sits in a batch
    (Cooperlake on our AMD); where not (Haswell there), the wrap-around moves
    rows and the weights differ in their last bits (dec/bench/README.md)."""
    caffe = import_caffe()
    top = (["data"] + nets.blob_names(len(dims) - 1))[layer]
    net_file = write_text(Path(net_dir) / f"frozen{layer + 1}.prototxt",
                          nets.frozen_net(layer, dims, batch))
    net = caffe.Net(str(net_file), str(weights), caffe.TEST)
    with db.Writer(out) as writer:
        for start in range(0, len(x), batch):
            net.blobs["data"].data[...] = x[np.arange(start, start + batch) % len(x)]
            net.forward()
            for row in net.blobs[top].data[:len(x) - start]:
                writer.append(row)
    return out


def read_params(weights, layer):
    """A layer's parameter blobs from a .caffemodel, without building a net.
    V1 files (the DEC fork's, e.g. its shipped autoencoders) keep their layers
    in `layers` and blob sizes as num/channels/height/width."""
    caffe = import_caffe()
    model = caffe.proto.caffe_pb2.NetParameter()
    model.ParseFromString(Path(weights).read_bytes())
    for item in list(model.layer) + list(model.layers):
        if item.name == layer:
            return tuple(np.asarray(b.data, dtype=np.float32).reshape(
                tuple(b.shape.dim) if b.HasField("shape")
                else (b.num, b.channels, b.height, b.width)) for b in item.blobs)
    raise KeyError(f"{weights} has no layer {layer}")


def use_given(weights, run_dir, dims, log=print):
    """Start a run from a given fine-tuned autoencoder instead of pretraining
    (the report's MNIST result clustered DEC's shipped
    exp/mnist/save_iter_100000.caffemodel): its encoder is checked against the
    net's sizes and copied into the run as autoencoder.caffemodel."""
    weights, final = Path(weights), Path(run_dir) / "autoencoder.caffemodel"
    if not weights.is_file():
        raise FileNotFoundError(f"autoencoder {weights} is missing")
    for i, name in enumerate(nets.blob_names(len(dims) - 1)):
        try:
            w = read_params(weights, name)[0]
        except Exception as err:       # not a caffemodel, or no such layer
            raise ValueError(f"{weights} is not an autoencoder of this net ({err})") from None
        if w.shape[-2:] != (dims[i + 1], dims[i]):
            raise ValueError(f"{weights}: layer {name} is {w.shape[-1]}->{w.shape[-2]}, "
                             f"the net needs {dims[i]}->{dims[i + 1]} (--hidden, --embedding)")
    if final.exists():
        if final.read_bytes() != weights.read_bytes():
            raise ValueError(f"{run_dir} already has another autoencoder; use a new --run")
        return final
    copy_file(weights, final)
    log(f"autoencoder: given ({weights}), pretraining skipped")
    return final


def embed(deploy_file, weights, x, batch=256):
    """Forward x (N x d float) through the deploy net's encoder → N x dim."""
    caffe = import_caffe()
    net = caffe.Net(str(deploy_file), str(weights), caffe.TEST)
    dim_in = net.blobs["data"].data.shape[1]
    if x.ndim != 2 or x.shape[1] != dim_in:
        raise ValueError(f"data has shape {x.shape}, the net takes vectors of {dim_in}")
    out = []
    for start in range(0, len(x), batch):
        chunk = x[start:start + batch]
        net.blobs["data"].reshape(len(chunk), dim_in)
        net.blobs["data"].data[...] = chunk
        out.append(net.forward()["output"].copy())
    return np.concatenate(out).reshape(len(x), -1).astype(np.float64)
