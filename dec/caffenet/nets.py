"""CaffeNet (bvlc_reference_caffenet) for the photo classes, as prototxt text.

The architecture of BVLC's reference CaffeNet (AlexNet with pooling before
normalisation), its last InnerProduct renamed `fc8_heobs` with one output per
class, so that ImageNet weights load into every other layer (Caffe copies
layers by name). Solver: the report's (§4). `python -m dec.caffenet.nets` writes the
4-class files to caffe_models/caffenet/.
"""
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from data_prep.checks import prototxt_path

from ..engine import MODELS
from ..nets import matching_recipe

CROP = 227          # CaffeNet's input crop (images are stored at 256x256: data_prep)
LAST_LAYER = "fc8_heobs"


@dataclass(frozen=True)
class Solver:
    """The report's solver (§4) and BVLC's fine-tuning recipe — the defaults."""
    base_lr: float = 0.001
    lr_policy: str = "step"
    gamma: float = 0.1
    stepsize: int = 500
    max_iter: int = 4000
    momentum: float = 0.9
    weight_decay: float = 0.0005
    snapshot: int = 500
    test_interval: int = 500
    display: int = 50
    batch_size: int = 50
    test_batch_size: int = 50
    seed: int = 1234
    # Not the report's: the parts of the scratch recipe (RECIPES), BVLC's values the defaults.
    init: str = "bvlc"              # bvlc: BVLC's gaussian fillers and biases; msra: zero biases
    input_scale: float = 1.0        # pixels minus the mean, times this, before conv1
    new_layer_lr: float = 10        # the new last layer's lr_mult (biases twice it)
    clip_gradients: float = 0.0     # the solver's clip_gradients (0: none)

    def override(self, **changes):
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def as_dict(self):
        return asdict(self)


REPORT_SOLVER = Solver()
INITS = ("bvlc", "msra")
# Named recipes: the non-report parts, on top of the report's solver.
# scratch: CaffeNet without the ImageNet weights (README, "CaffeNet from
# scratch"; each part measured there). BVLC's N(0, 0.01) fillers shrink the
# signal layer by layer until fc6/fc7's bias of 1 is most of what fc8 sees:
# every image looks alike and the loss sits at ln K until the weights grow (at
# lr 0.01 it stays there). Caffe's msra filler keeps the signal's scale, so raw
# pixels (minus the mean, sigma ~ 76) reach fc8 as logits in the tens (first
# loss 30-50) and training blows up or collapses; x 1/256 brings them to order 1.
# All layers are new, so the last learns at the rate of the rest (BVLC's x10/x20
# is a fine-tuning recipe). The solver stays the report's.
RECIPES = {
    "report": {},
    "scratch": dict(init="msra", input_scale=1 / 256, new_layer_lr=1),
}
RECIPE_PARTS = ("init", "input_scale", "new_layer_lr", "base_lr", "clip_gradients")
NET_PARTS = ("init", "input_scale", "new_layer_lr")     # what the net text depends on


def recipe_of(solver):
    """The name of the recipe a solver follows ('custom' if none matches)."""
    return matching_recipe(solver, REPORT_SOLVER, RECIPES, RECIPE_PARTS)


def _param(lr, decay):
    return f"  param {{ lr_mult: {lr[0]} decay_mult: {decay[0]} }}\n" \
           f"  param {{ lr_mult: {lr[1]} decay_mult: {decay[1]} }}\n"


def _fillers(init, std, bias):
    """BVLC's gaussian weights and constant bias, or Caffe's msra (He et al.,
    fan-in) with zero bias."""
    if init == "bvlc":
        weights = f'type: "gaussian" std: {std}'
    elif init == "msra":
        weights, bias = 'type: "msra"', 0
    else:
        raise ValueError(f"init {init!r}: one of {', '.join(INITS)}")
    return (f"    weight_filler {{ {weights} }}\n"
            f'    bias_filler {{ type: "constant" value: {bias} }} }}\n}}\n')


def conv(name, bottom, num, kernel, std, bias, stride=1, pad=0, group=1, init="bvlc"):
    extra = (f" stride: {stride}" if stride != 1 else "") + (f" pad: {pad}" if pad else "") + \
            (f" group: {group}" if group != 1 else "")
    return (f'layer {{\n  name: "{name}" type: "Convolution" bottom: "{bottom}" top: "{name}"\n'
            + _param((1, 2), (1, 0))
            + f"  convolution_param {{ num_output: {num} kernel_size: {kernel}{extra}\n"
            + _fillers(init, std, bias))


def fc(name, bottom, num, std, bias, lr=(1, 2), init="bvlc"):
    return (f'layer {{\n  name: "{name}" type: "InnerProduct" bottom: "{bottom}" top: "{name}"\n'
            + _param(lr, (1, 0))
            + f"  inner_product_param {{ num_output: {num}\n"
            + _fillers(init, std, bias))


def relu(name, blob):
    return f'layer {{ name: "{name}" type: "ReLU" bottom: "{blob}" top: "{blob}" }}\n'


def pool(name, bottom):
    return (f'layer {{ name: "{name}" type: "Pooling" bottom: "{bottom}" top: "{name}"\n'
            f"  pooling_param {{ pool: MAX kernel_size: 3 stride: 2 }} }}\n")


def lrn(name, bottom):
    return (f'layer {{ name: "{name}" type: "LRN" bottom: "{bottom}" top: "{name}"\n'
            f"  lrn_param {{ local_size: 5 alpha: 0.0001 beta: 0.75 }} }}\n")


def dropout(name, blob):
    return (f'layer {{ name: "{name}" type: "Dropout" bottom: "{blob}" top: "{blob}"\n'
            f"  dropout_param {{ dropout_ratio: 0.5 }} }}\n")


def input_scaling(scale):
    """data × scale (a Power layer, so the deploy net and `classify` scale
    alike); nothing at scale 1 (BVLC's nets, the ImageNet weights)."""
    if scale == 1:
        return "", "data"
    return (f'layer {{ name: "data_scaled" type: "Power" bottom: "data" top: "data_scaled"\n'
            f"  power_param {{ scale: {scale!r} }} }}\n", "data_scaled")


def body(n_classes, solver=REPORT_SOLVER):
    """conv1 .. fc8_heobs. The new last layer learns solver.new_layer_lr times
    faster (BVLC's fine-tuning recipe, finetune_flickr_style: 10, biases 20)."""
    i = solver.init
    scaling, data = input_scaling(solver.input_scale)
    new_lr = (solver.new_layer_lr, 2 * solver.new_layer_lr)
    return (scaling
            + conv("conv1", data, 96, 11, 0.01, 0, stride=4, init=i) + relu("relu1", "conv1")
            + pool("pool1", "conv1") + lrn("norm1", "pool1")
            + conv("conv2", "norm1", 256, 5, 0.01, 1, pad=2, group=2, init=i)
            + relu("relu2", "conv2") + pool("pool2", "conv2") + lrn("norm2", "pool2")
            + conv("conv3", "norm2", 384, 3, 0.01, 0, pad=1, init=i) + relu("relu3", "conv3")
            + conv("conv4", "conv3", 384, 3, 0.01, 1, pad=1, group=2, init=i)
            + relu("relu4", "conv4")
            + conv("conv5", "conv4", 256, 3, 0.01, 1, pad=1, group=2, init=i)
            + relu("relu5", "conv5") + pool("pool5", "conv5")
            + fc("fc6", "pool5", 4096, 0.005, 1, init=i) + relu("relu6", "fc6")
            + dropout("drop6", "fc6")
            + fc("fc7", "fc6", 4096, 0.005, 1, init=i) + relu("relu7", "fc7")
            + dropout("drop7", "fc7")
            + fc(LAST_LAYER, "fc7", n_classes, 0.01, 0, lr=_fmt_lr(new_lr), init=i))


def _fmt_lr(pair):
    """lr_mult as Caffe's text writes it: 10, not 10.0."""
    return tuple(int(v) if float(v).is_integer() else v for v in pair)


def data_layer(phase, source, mean_file, batch, backend="LEVELDB"):
    mirror = "true" if phase == "TRAIN" else "false"
    return (f'layer {{\n  name: "data" type: "Data" top: "data" top: "label"\n'
            f"  include {{ phase: {phase} }}\n"
            f'  transform_param {{ mirror: {mirror} crop_size: {CROP} mean_file: "{prototxt_path(mean_file)}" }}\n'
            f'  data_param {{ source: "{prototxt_path(source)}" batch_size: {batch} backend: {backend} }}\n}}\n')


def train_val(n_classes, train_source, val_source, mean_file, solver=REPORT_SOLVER,
              backend="LEVELDB"):
    return ('name: "CaffeNet-heobs"\n'
            + data_layer("TRAIN", train_source, mean_file, solver.batch_size, backend)
            + data_layer("TEST", val_source, mean_file, solver.test_batch_size, backend)
            + body(n_classes, solver)
            + f'layer {{ name: "accuracy" type: "Accuracy" bottom: "{LAST_LAYER}" bottom: "label" '
              f'top: "accuracy" include {{ phase: TEST }} }}\n'
            + f'layer {{ name: "loss" type: "SoftmaxWithLoss" bottom: "{LAST_LAYER}" '
              f'bottom: "label" top: "loss" }}\n')


def deploy(n_classes, batch=10, solver=REPORT_SOLVER):
    return ('name: "CaffeNet-heobs"\n'
            f'layer {{ name: "data" type: "Input" top: "data"\n'
            f"  input_param {{ shape {{ dim: {batch} dim: 3 dim: {CROP} dim: {CROP} }} }} }}\n"
            + body(n_classes, solver)
            + f'layer {{ name: "prob" type: "Softmax" bottom: "{LAST_LAYER}" top: "prob" }}\n')


def solver_text(net, snapshot_prefix, test_iter, solver=REPORT_SOLVER, mode="CPU",
                max_iter=None):
    return "\n".join([
        f'net: "{prototxt_path(net)}"', f"test_iter: {test_iter}", f"test_interval: {solver.test_interval}",
        f"base_lr: {solver.base_lr}", f'lr_policy: "{solver.lr_policy}"',
        f"gamma: {solver.gamma}", f"stepsize: {solver.stepsize}", f"display: {solver.display}",
        f"max_iter: {max_iter or solver.max_iter}", f"momentum: {solver.momentum}",
        f"weight_decay: {solver.weight_decay}", f"snapshot: {solver.snapshot}",
        f'snapshot_prefix: "{prototxt_path(snapshot_prefix)}"', f"solver_mode: {mode}",
        f"random_seed: {solver.seed}"]
        + ([f"clip_gradients: {solver.clip_gradients}"] if solver.clip_gradients else [])) + "\n"


def write_model_files(folder, n_classes=4):
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    header = "# Generated by `python -m dec.caffenet.nets` from dec/caffenet/nets.py.\n"
    files = {
        "train_val.prototxt": train_val(n_classes, "data/caffenet/train_leveldb",
                                        "data/caffenet/val_leveldb", "data/caffenet/mean.binaryproto"),
        "deploy.prototxt": deploy(n_classes),
        "solver.prototxt": solver_text("caffe_models/caffenet/train_val.prototxt",
                                       "snapshots/caffenet", test_iter=2),
    }
    for name, text in files.items():
        (folder / name).write_text(header + text)
    return files


if __name__ == "__main__":
    write_model_files(MODELS / "caffenet")
