"""The nets' and solvers' text, field by field against the settings they come
from (no Caffe): with every value distinct, a field written from another
setting (whose default happens to be equal) shows."""
import re

import numpy as np
import pytest

from dec import cluster, multi_t, nets
from dec.caffenet import nets as caffenet


def fields(text):
    """`name: value` lines of a solver prototxt as {name: value as written}."""
    return dict(re.findall(r"^(\w+): (.+)$", text, re.M))


def test_caffenets_solver_writes_each_field_from_its_own_setting():
    solver = caffenet.REPORT_SOLVER.override(
        base_lr=0.0013, gamma=0.17, stepsize=503, max_iter=4001, momentum=0.89,
        weight_decay=0.00051, snapshot=507, test_interval=509, display=51, seed=77,
        clip_gradients=3.5)
    got = fields(caffenet.solver_text("net.prototxt", "snap/caffenet", 13, solver, "GPU"))
    assert got == {"net": '"net.prototxt"', "test_iter": "13", "test_interval": "509",
                   "base_lr": "0.0013", "lr_policy": '"step"', "gamma": "0.17",
                   "stepsize": "503", "display": "51", "max_iter": "4001", "momentum": "0.89",
                   "weight_decay": "0.00051", "snapshot": "507",
                   "snapshot_prefix": '"snap/caffenet"', "solver_mode": "GPU",
                   "random_seed": "77", "clip_gradients": "3.5"}


def test_the_clustering_net_and_the_python_assignment_use_one_alpha(tmp_path, monkeypatch):
    """MultiTLoss's alpha in the net's text and the alpha cluster.py assigns
    with are the schedule's, both (a net at 1 and Python at 2.5 would train
    towards one distribution and report another)."""
    sched = nets.PAPER.override(dims=(6, 5, 4, 3, 2), alpha=2.5)
    text = nets.dec_net(sched.dims, 3, sched, tmp_path / "x_total", tmp_path / "labels", "0")
    assert re.search(r"multi_t_loss_param \{[^}]*\balpha: 2\.5\b", text)
    rng = np.random.default_rng(0)
    features, centres = rng.normal(size=(20, 2)), rng.normal(size=(2, 3))
    monkeypatch.setattr(cluster, "embed", lambda deploy, weights, x: features)
    monkeypatch.setattr(cluster, "read_params", lambda weights, layer: (centres,))
    run = cluster.ClusterRun(tmp_path / "run", tmp_path / "x_total", np.zeros((20, 6)), 3,
                             sched, log=lambda *a: None)
    _, q = run.assign("weights.caffemodel")
    expected, _ = multi_t.soft_assignment(features, centres, alpha=2.5)
    np.testing.assert_allclose(q, expected)
    assert not np.allclose(q, multi_t.soft_assignment(features, centres, alpha=1.0)[0])


@pytest.mark.parametrize("field, value", [("dec_lr", 0.013), ("dec_momentum", 0.87),
                                          ("update_interval", 161)])
def test_decs_solver_writes_its_own_settings(field, value):
    sched = nets.PAPER.override(**{field: value})
    got = fields(nets.dec_solver("net.prototxt", sched, "snap/dec"))
    written = {"dec_lr": "base_lr", "dec_momentum": "momentum", "update_interval": "max_iter"}
    assert got[written[field]] == str(value)
