"""DEC's nets and solvers as prototxt text: one definition for every use.

Follows piiswrong/dec (pretrain.py, dec.py make_net/write_net) in the modern
(V2) prototxt form: the stacked autoencoder d-500-500-2000-10, its greedy
layer-wise denoising pretraining, end-to-end fine-tuning, the clustering net
with the MultiTLoss layer, and the deploy net of report §3.1.3.
`python -m dec.nets` writes the paper schedule for MNIST to caffe_models/dec/.
"""
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from data_prep.checks import prototxt_path


@dataclass(frozen=True)
class Schedule:
    """Numbers fixed by DEC's code (pretrain.py, dec.py) — the defaults."""
    dims: tuple = (784, 500, 500, 2000, 10)   # pretrain.py 'dim'
    drop: float = 0.2                         # pretrain_main 'drop'
    pretrain_iter: int = 50000                # per layer, 'pt_iter'
    finetune_iter: int = 100000               # main() 'iter'
    base_lr: float = 0.1                      # 'rate'
    stepsize: int = 20000                     # 'step' (lr / 10 every stepsize)
    momentum: float = 0.9
    momentum_burnin: int = 1000
    weight_decay: float = 0.0                 # 'decay'
    weight_std: float = 0.01                  # inner_init std in pretrain_main
    batch_size: int = 256                     # make_net data layer, TRAIN
    test_batch_size: int = 100                # make_net data layer, TEST
    dec_lr: float = 0.01                      # dec.py solver
    dec_momentum: float = 0.9
    update_interval: int = 160                # dec.py: mnist 160, stl 40, reuters 20
    tol: float = 0.001                        # stop below 0.1% changed assignments
    kmeans_restarts: int = 20                 # TMM.fit: KMeans(n_init=20)
    alpha: float = 1.0                        # tmm_alpha
    max_rounds: int = 1000                    # safety stop for the clustering loop
    snapshot: int = 10000
    display: int = 1000
    seed: int = 1234
    # Not DEC's: the parts of the fast recipe (RECIPES), DEC's values the defaults.
    init: str = "gaussian"                    # weight filler: gaussian (std weight_std), msra, xavier
    corrupt: float = 0.0                      # input dropout, first stage and fine-tuning
    lr_policy: str = "step"                   # step (lr / 10 every stepsize) or fixed
    pretrain_data: str = "train"              # the autoencoder learns on train, or total
    stacked: bool = True                      # greedy layer-wise stages before fine-tuning
    solver_type: str = "SGD"                  # the autoencoder's Caffe solver: SGD or Adam
    input_scale: float = 1.0                  # DEC's pixels (0.02 x grey) times this, in the nets
    bias_lr_mult: float = 2.0                 # the autoencoder's biases (DEC: blobs_lr 1 2)
    shuffle: bool = False                     # fine-tuning batches in a new order each epoch

    def override(self, **changes):
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def as_dict(self):
        return asdict(self)


PAPER = Schedule()
INITS = ("gaussian", "msra", "xavier", "uniform")
LR_POLICIES = ("step", "fixed")
SOLVER_TYPES = ("SGD", "Adam")
PRETRAIN_DATA = ("train", "total")
# Named recipes: the schedule's non-faithful parts, on top of DEC's numbers.
# fast: what a PyTorch DEC (pt-sdae / pt-dec) does differently and what, measured
# on 5000 real MNIST digits, matters at a small budget (README, "recipes"):
# Caffe's msra filler with variance_norm AVERAGE (the variance of Xavier-uniform
# with ReLU gain), denoising input dropout 0.2 in every stage, a constant
# learning rate, full momentum from the first iteration (DEC's burn-in ramps it
# over 1000, half of a 2000-iteration stage), pretraining on every sample that
# is clustered.
# e2e: end-to-end pretraining as DEC-keras and IDEC (Guo et al., IJCAI 2017): no
# stacks, the whole autoencoder from Glorot-uniform weights (Caffe's xavier,
# variance_norm AVERAGE), no dropout, on every sample clustered, with Adam at
# Keras' defaults (lr 0.001, 0.9, 0.999; DEC-keras' Adam setting, its default).
# DEC's stage stays DEC's.
# keras: DEC-keras' MNIST setting itself (XifengGuo/DEC-keras run_exp.py): SGD
# lr 1, momentum 0.9 on Keras' mean squared error of [0, 1] pixels from
# U(±1/sqrt(fan_in)), biases at the weights' rate. Our loss is the fork's
# sum / (2 N D), half Keras' mean, so its lr 1 is our 2; DEC's 0.02 pixels
# times 1/5.1 are Keras' x / 255 (a Power layer in every net, deploy included).
# (An earlier try of this setting at lr 1e-4 on DEC's pixels, a wrong conversion
# that divided by the 784 pixels once too often) stayed at the zero-output loss.
# Keras' fit(shuffle=True) draws its batches in a new order every epoch, where
# Caffe's Data layer reads the LevelDB in the same order each time: shuffle feeds
# the fine-tuning from Python instead (autoencoder.EpochShuffle).
KERAS_PIXELS = 1 / 5.1
RECIPES = {
    "paper": {},
    "fast": dict(init="msra", corrupt=0.2, lr_policy="fixed", pretrain_data="total",
                 momentum_burnin=0),
    "e2e": dict(init="xavier", lr_policy="fixed", pretrain_data="total", momentum_burnin=0,
                stacked=False, solver_type="Adam", base_lr=0.001),
    "keras": dict(init="uniform", lr_policy="fixed", pretrain_data="total", momentum_burnin=0,
                  stacked=False, solver_type="SGD", base_lr=2.0, input_scale=KERAS_PIXELS,
                  bias_lr_mult=1.0, shuffle=True),
}
RECIPE_PARTS = ("init", "corrupt", "lr_policy", "pretrain_data", "momentum_burnin", "stacked",
                "solver_type", "input_scale", "bias_lr_mult", "shuffle")


def matching_recipe(settings, default, recipes, parts):
    """The name of the recipe whose parts `settings` has ('custom' if none):
    a recipe sets some parts, the rest are `default`'s."""
    have = {k: getattr(settings, k) for k in parts}
    for name, changes in recipes.items():
        if have == {k: changes.get(k, getattr(default, k)) for k in parts}:
            return name
    return "custom"


def recipe_of(sched):
    """The name of the recipe a schedule follows ('custom' if none matches)."""
    return matching_recipe(sched, PAPER, RECIPES, RECIPE_PARTS)
# dec.py __main__: DEC iterations per clustering round ('lam') per data set.
UPDATE_INTERVAL = {"mnist": 160, "stl": 40, "reuters": 20}


def paper_schedule(source):
    """DEC's schedule for a data set family (a meta's `source`: mnist, stl, ...).
    Families dec.py has no number for (fashion, digits, photos) take MNIST's."""
    family = next((f for f in UPDATE_INTERVAL if str(source).startswith(f)), "mnist")
    return PAPER.override(update_interval=UPDATE_INTERVAL[family])


# ---- layers -----------------------------------------------------------------
def scaled_input(bottom, sched):
    """(layer text, top): `bottom` times sched.input_scale, or itself at 1 (DEC)."""
    if sched.input_scale == 1:
        return "", bottom
    top = f"{bottom}_scaled"
    return (f'layer {{ name: "{top}" type: "Power" bottom: "{bottom}" top: "{top}" '
            f'power_param {{ scale: {sched.input_scale!r} }} }}\n'), top


def data_layers(top, train_source, test_source, sched, seek=None, name=None):
    # prefetch 0 (our Caffe, patch 0004): on the CPU each batch of float
    # vectors loads in the layer's Forward, faster than a prefetch thread costs
    # the GEMMs it wakes during; on a GPU one batch is prefetched.
    seek_line = f' seek: "{seek}"' if seek is not None else ""
    text = ""
    for phase, source, batch in (("TRAIN", train_source, sched.batch_size),
                                 ("TEST", test_source, sched.test_batch_size)):
        if source is None:
            continue
        text += f"""layer {{
  name: "{name or top}" type: "Data" top: "{top}"
  data_param {{ source: "{prototxt_path(source)}" backend: LEVELDB batch_size: {batch}{seek_line} prefetch: 0 }}
  include {{ phase: {phase} }}
}}
"""
    return text


def input_layer(top, batch, dim, phase=None):
    include = f"\n  include {{ phase: {phase} }}" if phase else ""
    return f"""layer {{
  name: "{top}" type: "Input" top: "{top}"
  input_param {{ shape {{ dim: {batch} dim: {dim} }} }}{include}
}}
"""


def filler(init, std, fan_in=None):
    """DEC's gaussian (std), Caffe's msra / xavier scaled by the mean of
    fan-in and fan-out (variance_norm AVERAGE), or uniform in ±1/sqrt(fan_in)
    (Keras' VarianceScaling(1/3, fan_in, uniform), PyTorch's Linear default)."""
    if init == "gaussian":
        return f'type: "gaussian" std: {std}'
    if init in ("msra", "xavier"):
        return f'type: "{init}" variance_norm: AVERAGE'
    if init == "uniform":
        limit = fan_in ** -0.5
        return f'type: "uniform" min: {-limit!r} max: {limit!r}'
    raise ValueError(f"init {init!r}: one of {', '.join(INITS)}")


def inner(name, bottom, num_output, std, lr=(1, 2), init="gaussian", top=None, fan_in=None):
    # DEC: blobs_lr 1 2, weight_decay 1 0; gaussian weights, zero bias.
    return f"""layer {{
  name: "{name}" type: "InnerProduct" bottom: "{bottom}" top: "{top or name}"
  param {{ lr_mult: {lr[0]:g} decay_mult: 1 }}
  param {{ lr_mult: {lr[1]:g} decay_mult: 0 }}
  inner_product_param {{
    num_output: {num_output}
    weight_filler {{ {filler(init, std, fan_in)} }}
    bias_filler {{ type: "constant" value: 0 }}
  }}
}}
"""


def relu(blob):
    return f'layer {{ name: "{blob}relu" type: "ReLU" bottom: "{blob}" top: "{blob}" }}\n'


def dropout(top, ratio, bottom=None):
    bottom = bottom or top
    return (f'layer {{ name: "{top}drop" type: "Dropout" bottom: "{bottom}" top: "{top}" '
            f'dropout_param {{ dropout_ratio: {ratio} }} }}\n')


def euclid(name, a, b, dim):
    # The DEC fork's EuclideanLoss divides by N*D (count), BVLC's by N: weight
    # 1/D gives the fork's loss and gradients, which DEC's lr 0.1 is tuned for.
    return (f'layer {{ name: "{name}" type: "EuclideanLoss" bottom: "{a}" bottom: "{b}" '
            f'top: "{name}" loss_weight: {1.0 / dim!r} }}\n')


def blob_names(n_layers):
    """Encoder tops: inner1 .. inner{n-1}, then output (the embedding)."""
    return [f"inner{i + 1}" for i in range(n_layers - 1)] + ["output"]


def encoder(bottom, dims, sched, drop=0.0, frozen=0, bias_lr=2):
    """data → inner1 → ReLU → ... → output (no ReLU on the embedding).

    The first `frozen` layers get lr 0 (the stacked pretraining's lower layers)."""
    text, names = "", blob_names(len(dims) - 1)
    for i, name in enumerate(names):
        lr = (0, 0) if i < frozen else (1, bias_lr)
        text += inner(name, bottom, dims[i + 1], sched.weight_std, lr, sched.init,
                      fan_in=dims[i])
        if name != "output":
            text += relu(name)
            if drop:
                text += dropout(name, drop)
        bottom = name
    return text


# ---- nets ---------------------------------------------------------------------
def frozen_layers(layer, dims, bottom, prefix=""):
    """The encoder layers below stage `layer`, learning nothing (lr 0), each
    +ReLU; tops `prefix` + their names. pretrain_main gives them a gaussian
    std 0.05 filler, overwritten by the trained weights before the stage runs."""
    names = ["data"] + blob_names(len(dims) - 1)
    text = ""
    for j in range(layer):
        top = prefix + names[j + 1]
        text += inner(names[j + 1], bottom, dims[j + 1], 0.05, lr=(0, 0), top=top)
        text += relu(top)
        bottom = top
    return text


def stack_net(layer, dims, sched, train_source, test_source, input_source=None):
    """Greedy layer-wise denoising stage `layer` (0-based), as pretrain_main.

    Lower layers (frozen, lr 0) → x; dropout on x (none for the first layer) →
    new encoder layer (+ReLU and dropout unless it is the embedding) → decoder
    back to x's size (+ReLU unless x is the data) → Euclidean loss to x.

    input_source: a database of x itself, the frozen layers' output computed
    once (autoencoder.frozen_features), read in place of the data: the same
    batches and, where the BLAS computes a row independently of its place in
    the batch, the same values, without forwarding every batch through the
    frozen layers again. Those layers stay in the net on a one-row constant input
    (a few kFLOP), so that their fillers draw from Caffe's random stream what
    DEC's net draws and every later number — the new layers' initial weights,
    the dropout masks — is the same."""
    if sched.input_scale != 1 or sched.shuffle:
        raise ValueError("input_scale and shuffle are for end-to-end recipes (no layer-wise "
                         "stages)")
    names = ["data"] + blob_names(len(dims) - 1)
    x, h = names[layer], names[layer + 1]
    text = f'name: "stack_net{layer + 1}"\n'
    if input_source is None or not layer:
        text += data_layers("data", train_source, test_source, sched)
        text += frozen_layers(layer, dims, "data")
    else:
        text += data_layers(x, input_source, None, sched, name=f"{x}_features")
        text += f"""layer {{
  name: "frozen_input" type: "DummyData" top: "frozen_input"
  dummy_data_param {{ shape {{ dim: 1 dim: {dims[0]} }} data_filler {{ type: "constant" value: 0 }} }}
}}
"""
        text += frozen_layers(layer, dims, "frozen_input", prefix="frozen_")
        text += f'layer {{ name: "frozen_silence" type: "Silence" bottom: "frozen_{x}" }}\n'
    text += dropout(f"{x}_drop", sched.drop if layer else sched.corrupt, bottom=x)
    text += inner(h, f"{x}_drop", dims[layer + 1], sched.weight_std, init=sched.init,
                  fan_in=dims[layer])
    if h != "output":
        text += relu(h)
        text += dropout(h, sched.drop)
    text += inner(f"d_{x}", h, dims[layer], sched.weight_std, init=sched.init,
                  fan_in=dims[layer + 1])
    if layer:
        text += relu(f"d_{x}")
    text += euclid(f"pt_loss{layer + 1}", f"d_{x}", x, dims[layer])
    return text


def frozen_net(layer, dims, batch):
    """The encoder below stage `layer` on an `input` blob: what
    autoencoder.frozen_features runs over the data once."""
    names = ["data"] + blob_names(len(dims) - 1)
    return (f'name: "frozen{layer + 1}"\n' + input_layer("data", batch, dims[0])
            + frozen_layers(layer, dims, "data") + f"# output: {names[layer]}\n")


def autoencoder_net(dims, sched, train_source, test_source):
    """The whole autoencoder for end-to-end fine-tuning (pretrain.py main, no dropout)."""
    names = ["data"] + blob_names(len(dims) - 1)
    text = 'name: "autoencoder"\n'
    if sched.shuffle:       # training batches fed from Python (autoencoder.EpochShuffle)
        text += input_layer("data", sched.batch_size, dims[0], phase="TRAIN")
        text += data_layers("data", None, test_source, sched)
    else:
        text += data_layers("data", train_source, test_source, sched)
    scaling, x = scaled_input("data", sched)
    text += scaling
    if sched.corrupt:            # denoising fine-tuning (not DEC's): the loss is to clean data
        text += dropout("data_drop", sched.corrupt, bottom=x)
    text += encoder("data_drop" if sched.corrupt else x, dims, sched,
                    bias_lr=sched.bias_lr_mult)
    bottom = "output"
    for i in reversed(range(len(dims) - 1)):
        text += inner(f"d_{names[i]}", bottom, dims[i], sched.weight_std,
                      (1, sched.bias_lr_mult), sched.init,
                      fan_in=dims[i + 1])
        if i:
            text += relu(f"d_{names[i]}")
        bottom = f"d_{names[i]}"
    text += euclid("pt_loss", "d_data", x, dims[0])
    return text


def dec_net(dims, n_clusters, sched, total_source, label_source, seek):
    """The clustering net of dec.py write_net: data and targets read from `seek`."""
    text = 'name: "dec"\n'
    text += data_layers("data", total_source, None, sched, seek)
    text += data_layers("label", label_source, None, sched, seek)
    scaling, x = scaled_input("data", sched)
    text += scaling + encoder(x, dims, sched)
    text += f"""layer {{
  name: "loss" type: "MultiTLoss" bottom: "output" bottom: "label"
  top: "loss" top: "std" top: "ind" top: "proba"
  param {{ lr_mult: 1 }} param {{ lr_mult: 0 }} param {{ lr_mult: 0 }}
  multi_t_loss_param {{ num_center: {n_clusters} alpha: {sched.alpha} lambda: 2 beta: 1 bandwidth: 0.1 }}
}}
layer {{ name: "silence" type: "Silence" bottom: "label" bottom: "ind" bottom: "proba" }}
"""
    return text


def deploy_net(dims, sched, batch=100):
    """Report §3.1.3: an `input` blob, the encoder, no data, label or loss layers."""
    text = 'name: "dec_deploy"\n'
    text += input_layer("data", batch, dims[0])
    scaling, x = scaled_input("data", sched)
    text += scaling + encoder(x, dims, sched)
    return text


def solver(net_path, sched, *, base_lr, max_iter, snapshot_prefix, momentum=None,
           burnin=None, stepsize=None, test=False, mode="CPU", snapshot=None, kind="SGD"):
    """snapshot: Caffe's own interval (the paper files: sched.snapshot); the
    runs write 0 and snapshot from dec/solve.py, only after a finite loss."""
    if sched.lr_policy not in LR_POLICIES:
        raise ValueError(f"lr_policy {sched.lr_policy!r}: one of {', '.join(LR_POLICIES)}")
    # DEC's clustering solver always steps (at 100000: never); the recipe's policy
    # is for the autoencoder's stages.
    policy = "step" if stepsize == 100000 else sched.lr_policy
    rate = (['lr_policy: "step"', "gamma: 0.1", f"stepsize: {stepsize or sched.stepsize}"]
            if policy == "step" else ['lr_policy: "fixed"'])
    lines = [f'net: "{prototxt_path(net_path)}"', f"base_lr: {base_lr}", *rate,
             f"display: {sched.display}",
             f"max_iter: {max_iter}", f"momentum: {sched.momentum if momentum is None else momentum}",
             f"weight_decay: {sched.weight_decay}",
             f"snapshot: {sched.snapshot if snapshot is None else snapshot}",
             f'snapshot_prefix: "{prototxt_path(snapshot_prefix)}"', f"solver_mode: {mode}",
             f"random_seed: {sched.seed}"]
    if kind not in SOLVER_TYPES:
        raise ValueError(f"solver {kind!r}: one of {', '.join(SOLVER_TYPES)}")
    if kind == "Adam":          # Caffe's defaults for the rest: momentum2 0.999, delta 1e-8
        lines.append('type: "Adam"')
    if burnin:
        lines.append(f"momentum_burnin: {burnin}")
    if test:
        lines += ["test_iter: 100", "test_interval: 10000"]
    return "\n".join(lines) + "\n"


def pretrain_solver(net_path, sched, snapshot_prefix, max_iter, mode="CPU", snapshot=0):
    return solver(net_path, sched, base_lr=sched.base_lr, max_iter=max_iter,
                  snapshot_prefix=snapshot_prefix, burnin=sched.momentum_burnin, mode=mode,
                  snapshot=snapshot, kind=sched.solver_type)


def dec_solver(net_path, sched, snapshot_prefix, mode="CPU", snapshot=0):
    # dec.py: base_lr 0.01, stepsize 100000 (never reached), momentum 0.9, no burn-in.
    return solver(net_path, sched, base_lr=sched.dec_lr, max_iter=sched.update_interval,
                  snapshot_prefix=snapshot_prefix, momentum=sched.dec_momentum,
                  stepsize=100000, mode=mode, snapshot=snapshot)


# ---- the committed paper files ---------------------------------------------------
MODELS = "caffe_models/dec"


def paper_files(dims=PAPER.dims, n_clusters=10, db="mnist", sched=PAPER):
    """File name → text of the paper schedule for MNIST, one solver per stage
    (`caffe train` runs each as it is, from the repository root, on the
    databases `python -m data_prep data mnist --out data` writes; snapshots
    go to runs/caffe_models_dec/)."""
    src, out = f"data/{db}", "runs/caffe_models_dec"
    files = {}
    for layer in range(len(dims) - 1):
        files[f"stack_net{layer + 1}.prototxt"] = stack_net(
            layer, dims, sched, f"{src}_train", f"{src}_test")
        # DEC ran on the GPU (solver_mode: GPU); runs write the mode they use.
        files[f"stack{layer + 1}_solver.prototxt"] = pretrain_solver(
            f"{MODELS}/stack_net{layer + 1}.prototxt", sched, f"{out}/stack{layer + 1}",
            sched.pretrain_iter, "GPU", sched.snapshot)
    files["autoencoder.prototxt"] = autoencoder_net(dims, sched, f"{src}_train", f"{src}_test")
    files["finetune_solver.prototxt"] = pretrain_solver(
        f"{MODELS}/autoencoder.prototxt", sched, f"{out}/finetune", sched.finetune_iter, "GPU",
        sched.snapshot)
    files["dec_net.prototxt"] = dec_net(dims, n_clusters, sched, f"{src}_total",
                                        f"{out}/train_weight", "00000000")
    files["dec_solver.prototxt"] = dec_solver(f"{MODELS}/dec_net.prototxt", sched, f"{out}/dec",
                                              "GPU", sched.snapshot)
    files["deploy.prototxt"] = deploy_net(dims, sched)
    return files


def write_paper_files(folder):
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    header = "# Generated by `python -m dec.nets` from dec/nets.py (DEC's paper schedule).\n"
    files = paper_files()
    for stale in folder.glob("*.prototxt"):
        if stale.name not in files:
            stale.unlink()
    for name, text in files.items():
        (folder / name).write_text(header + text)


if __name__ == "__main__":
    write_paper_files(Path(__file__).resolve().parent.parent / "caffe_models" / "dec")
