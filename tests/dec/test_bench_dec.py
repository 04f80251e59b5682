"""make bench-dec's ceiling: the net of a stage's InnerProducts alone; the
round trip between two CPUs that it prints."""
import os
import shutil

import pytest

from dec import nets
from dec.bench import dec as bench
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


def test_core_round_trip_is_measured_between_two_pinned_cpus(tmp_path, monkeypatch):
    """core_round_trip.c, built once with the system's compiler, pins its two
    threads to the process's first two CPUs and gives the round trip in ns (a
    cache line between cores: tens to a few hundred ns, never 0), run after run;
    with one CPU allowed, no compiler, or a source that does not build, there
    is no program and nothing to measure: None."""
    if len(os.sched_getaffinity(0)) < 2 or not (shutil.which("cc") or shutil.which("gcc")):
        pytest.skip("needs two CPUs and a C compiler (CI has both)")
    program = bench.build_core_round_trip(tmp_path)
    for _ in range(2):
        assert 1 < bench.core_round_trip_ns(program, trips=20000) < 100000
    assert bench.core_round_trip_ns(None) is None
    assert bench.core_round_trip_ns(tmp_path / "absent") is None     # fails to run
    monkeypatch.setattr(bench.os, "sched_getaffinity", lambda pid: {0})
    assert bench.build_core_round_trip(tmp_path / "one") is None
    monkeypatch.undo()
    monkeypatch.setattr(bench.shutil, "which", lambda name: None)
    assert bench.build_core_round_trip(tmp_path) is None
    monkeypatch.undo()
    monkeypatch.setattr(bench, "CORE_ROUND_TRIP", bench.CORE_ROUND_TRIP.with_name("absent.c"))
    assert bench.build_core_round_trip(tmp_path) is None             # it does not build
