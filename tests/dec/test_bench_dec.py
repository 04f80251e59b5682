"""make bench-dec's ceiling: the net of a stage's InnerProducts alone."""
import pytest

from dec import nets
from dec.bench.dec import inner_products_alone, stage_flops


@pytest.mark.caffe
@pytest.mark.parametrize("layer", [0, 1, 2, 3, None])
def test_inner_products_alone_runs_the_stage_gemms(tmp_path, layer):
    """The net Caffe builds from a stage's learning InnerProducts has their
    shapes in their order, on a batch of the stage's size, and its arithmetic
    is the stage's own (stage_flops: the first layer takes no input gradient);
    no frozen layer, ReLU or dropout comes along."""
    from dec.engine import import_caffe
    caffe = import_caffe()
    sched = nets.PAPER
    dims, batch = sched.dims, sched.batch_size
    if layer is None:
        text, first = nets.autoencoder_net(dims, sched, tmp_path / "x", None), 0
    else:
        text = nets.stack_net(layer, dims, sched, tmp_path / "x", None,
                              input_source=tmp_path / "f" if layer else None)
        first = layer
    (tmp_path / "alone.prototxt").write_text(
        inner_products_alone(text, batch, dims[first], caffe.proto.caffe_pb2))
    net = caffe.Net(str(tmp_path / "alone.prototxt"), caffe.TRAIN)
    assert {net.layers[i].type for i in range(1, len(net.layers))} == {"InnerProduct"}
    shapes = [net.params[name][0].data.shape for name in net.params]
    if layer is None:
        path = dims + dims[-2::-1]
    else:
        path = [dims[layer], dims[layer + 1], dims[layer]]
    assert shapes == [(out, n_in) for n_in, out in zip(path, path[1:])]
    assert net.blobs["x"].data.shape == (batch, dims[first])
    flops = sum(2 * batch * n_in * out * (3 if i else 2)
                for i, (out, n_in) in enumerate(shapes))
    assert flops == stage_flops(dims, batch, layer)
    net.blobs["x"].data[...] = 1
    net.forward()
    net.backward()
    assert net.blobs["x"].diff.any() == False    # noqa: E712  no gradient for the input
    last = list(net.params)[-1]
    assert net.params[last][0].diff.any()         # the loss reached the weights
    assert net.params[list(net.params)[0]][0].diff.any()   # and the first layer's
