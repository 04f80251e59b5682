"""The recipes (what the command line hands on, what the nets become) and the
experiments registry (reproduce, the README's results table); no Caffe."""
import json
import re
from dataclasses import fields
from pathlib import Path

import pytest

from data_prep.__main__ import SOURCES
from dec import experiments, nets, pipeline
from tests.dec.test_cli import schedule_of_run

REPO = Path(__file__).resolve().parents[2]


def test_the_fast_recipe_and_its_parts_reach_the_schedule(tmp_path, monkeypatch):
    paper, _ = schedule_of_run(tmp_path, monkeypatch, "mnist")
    assert (paper.init, paper.corrupt, paper.lr_policy, paper.pretrain_data) == \
        ("gaussian", 0.0, "step", "train") and nets.recipe_of(paper) == "paper"
    fast, _ = schedule_of_run(tmp_path, monkeypatch, "mnist", "--recipe", "fast")
    assert (fast.init, fast.corrupt, fast.lr_policy, fast.pretrain_data, fast.momentum_burnin) \
        == ("msra", 0.2, "fixed", "total", 0) and nets.recipe_of(fast) == "fast"
    assert nets.recipe_of(fast.override(momentum_burnin=1000)) == "custom"
    assert "momentum_burnin" not in nets.pretrain_solver("n", fast, "p", 10)   # 0: no ramp
    assert fast.update_interval == 160 and fast.base_lr == 0.1       # DEC's otherwise
    mixed, _ = schedule_of_run(tmp_path, monkeypatch, "mnist", "--recipe", "fast", "--init",
                               "gaussian")
    assert mixed.init == "gaussian" and mixed.corrupt == 0.2 and nets.recipe_of(mixed) == "custom"
    alone, _ = schedule_of_run(tmp_path, monkeypatch, "mnist", "--corrupt", "0.3")
    assert alone.corrupt == 0.3 and alone.init == "gaussian"


def test_the_fast_recipe_is_made_of_caffes_own_layers():
    fast = nets.PAPER.override(**nets.RECIPES["fast"], dims=(784, 500, 10))
    first = nets.stack_net(0, fast.dims, fast, "tr", "te")
    assert 'bottom: "data" top: "data_drop" dropout_param { dropout_ratio: 0.2 }' in first
    assert first.count('type: "msra" variance_norm: AVERAGE') == 2
    tuned = nets.autoencoder_net(fast.dims, fast, "tr", "te")
    assert 'bottom: "data" top: "data_drop"' in tuned and 'bottom: "data_drop" top: "inner1"' \
        in tuned
    assert 'bottom: "d_data" bottom: "data"' in tuned               # the loss is to clean data
    solver = nets.pretrain_solver("n", fast, "p", 100).splitlines()
    assert 'lr_policy: "fixed"' in solver and not any(l.startswith("stepsize") for l in solver)
    assert "lr_policy: \"step\"" in nets.dec_solver("n", fast, "p")   # DEC's stage as DEC's
    paper = nets.autoencoder_net((784, 500, 10), nets.PAPER, "tr", "te")
    assert "Dropout" not in paper and 'type: "gaussian" std: 0.01' in paper
    with pytest.raises(ValueError, match="init"):
        nets.filler("orthogonal", 0.1)


def test_every_experiment_is_runnable_as_written():
    names = {f.name for f in fields(nets.Schedule)}
    for e in experiments.EXPERIMENTS.values():
        assert e.data in SOURCES, e.name
        assert set(e.schedule) <= names, e.name
        assert e.recipe in nets.RECIPES, e.name
        assert all(p.source and 0 < p.acc < 1 for p in e.published), e.name
    from dec import demo
    assert demo.DEMO_SCHEDULE == nets.PAPER.override(**experiments.DEMO_SCHEDULE)


def test_reproduce_runs_the_registrys_schedule_and_compares(tmp_path, monkeypatch):
    from data_prep import datasets
    datasets.write_meta(tmp_path, "mnist5k", {"name": "mnist5k", "dim": 784, "clusters": 10,
                                              "source": "mnist"})
    seen = {}

    def fake_run(name, data_dir, run_dir, sched, **kw):
        seen.update(name=name, run_dir=run_dir, sched=sched, **kw)
        results = {"dataset": name, "source": "mnist", "experiment": kw["experiment"],
                   "metrics": {"acc": 0.7, "nmi": 0.6}, "schedule": sched.as_dict(),
                   "recipe": nets.recipe_of(sched), "rounds": 4, "converged": False,
                   "timings": {"total_s": 120}, "confusion_table": "t", "samples": 5000}
        (Path(run_dir) / "dec").mkdir(parents=True)
        (Path(run_dir) / "results.json").write_text(json.dumps(results))
        (Path(run_dir) / "dec" / "rounds.csv").write_text(
            "round,changed,acc,nmi\n0,1.0,0.55,0.5\n1,0.1,0.7,0.6\n")
        return results

    monkeypatch.setattr(pipeline, "run", fake_run)
    monkeypatch.setattr("dec.engine.use_device", lambda gpu: None)
    measured = tmp_path / "measured.json"
    monkeypatch.setattr(experiments, "MEASURED", measured)
    experiments.reproduce("mnist5k-fast", tmp_path, tmp_path / "runs", log=lambda *a: None)
    assert seen["name"] == "mnist5k" and seen["experiment"] == "mnist5k-fast"
    assert seen["sched"].pretrain_iter == 2000 and nets.recipe_of(seen["sched"]) == "fast"
    text = (tmp_path / "runs" / "mnist5k-fast" / "comparison.md").read_text()
    assert "recipe: fast (NOT DEC's schedule)" in text and "| 0.8430 |" in text
    with pytest.raises(FileNotFoundError, match="needs the four MNIST IDX files"):
        experiments.reproduce("mnist", tmp_path, tmp_path / "runs", log=lambda *a: None)
    results = json.loads((tmp_path / "runs" / "mnist5k-fast" / "results.json").read_text())
    entry = experiments.record("mnist5k-fast", results, tmp_path / "runs" / "mnist5k-fast",
                               measured, made_at="abc1234")
    assert entry["acc"] == 0.7 and entry["recipe"] == "fast" and entry["commit"] == "abc1234"
    assert (entry["kmeans_acc"], entry["kmeans_nmi"]) == (0.55, 0.5)     # round 0
    assert (entry["minutes"], entry["converged"], entry["rounds"]) == (2.0, False, 4)
    table = experiments.results_table(measured)
    assert "| mnist5k-fast |" in table and "**0.700** / 0.600" in table
    assert "(2 min, 4 rounds, not converged); AE + k-means 0.550" in table


def test_a_sweep_reuses_one_autoencoder_and_reports_mean_and_sd_per_lambda(tmp_path,
                                                                          monkeypatch):
    """The paper's protocol: the DEC stage for each λ and seed on the base
    run's autoencoder; per λ the mean ± sd; the best and dec.py's marked."""
    from data_prep import datasets, files
    from dec import sweep
    datasets.write_meta(tmp_path, "mnist", {"name": "mnist", "dim": 784, "clusters": 10,
                                            "source": "mnist"})
    (tmp_path / "runs" / "mnist").mkdir(parents=True)
    (tmp_path / "runs" / "mnist" / "autoencoder.caffemodel").write_bytes(b"ae")
    made = []
    scores = {(40, 1): 0.88, (40, 2): 0.92, (160, 1): 0.86, (160, 2): 0.86}

    def fake_run(name, data_dir, run_dir, sched, **kw):
        made.append((sched.update_interval, sched.seed, kw["autoencoder_file"],
                     kw["class_folders"], sched.pretrain_iter))
        acc = scores[sched.update_interval, sched.seed]
        (Path(run_dir) / "dec").mkdir(parents=True)
        (Path(run_dir) / "dec" / "rounds.csv").write_text(
            f"round,changed,acc,nmi\n0,1.0,{0.75 + sched.seed / 100},0.7\n")
        return {"metrics": {"acc": acc, "nmi": acc - 0.1}, "rounds": 9, "converged": True,
                "timings": {"dec_s": 60}}

    monkeypatch.setattr(pipeline, "run", fake_run)
    monkeypatch.setattr("dec.engine.use_device", lambda gpu: None)
    measured = tmp_path / "measured.json"
    monkeypatch.setattr(experiments, "MEASURED", measured)
    test_sweep = experiments.Sweep("t", "a test sweep", "mnist", (40, 160), (1, 2),
                                   published=experiments.MNIST_PUBLISHED[:1])
    monkeypatch.setitem(experiments.SWEEPS, "t", test_sweep)
    rows = experiments.reproduce("t", tmp_path, tmp_path / "runs", record_it=True,
                                 log=lambda *a: None)
    ae = tmp_path / "runs" / "mnist" / "autoencoder.caffemodel"
    assert made == [(40, 1, ae, False, 50000), (40, 2, ae, False, 50000),
                    (160, 1, ae, False, 50000), (160, 2, ae, False, 50000)]
    assert len(rows) == 4
    per = {r["lambda"]: r for r in sweep.summary(rows)}
    assert per[40]["acc"] == pytest.approx(0.90)
    assert per[40]["acc_sd"] == pytest.approx(0.0282843, rel=1e-4)        # sd of 0.88, 0.92
    assert per[160]["acc_sd"] == pytest.approx(0.0) and per[160]["kmeans_acc"] == pytest.approx(0.765)
    text = (tmp_path / "runs" / "t" / "sweep.md").read_text()
    assert "| 40 (best) | 2 | 0.9000 ± 0.0283 |" in text
    assert "| 160 (dec.py's) | 2 | 0.8600 ± 0.0000 |" in text
    assert "Best: λ = 40, accuracy 0.9000 (mean of 2 seeds); DEC paper 0.843" in text
    assert files.is_our_figure(tmp_path / "runs" / "t" / "sweep.png")
    assert len((tmp_path / "runs" / "t" / "sweep.csv").read_text().splitlines()) == 5
    table = experiments.results_table(measured)
    assert "| t | DEC paper 0.843 | best λ 40: **0.9000 ± 0.0283** / 0.8000 ± 0.0283 " \
           "(2 seeds); dec.py's λ 160: **0.8600 ± 0.0000** / 0.7600 ± 0.0000 (2 seeds); " \
           "2 λ from 40 to 160 |" in table


def test_the_readme_results_table_is_the_registrys():
    """README.md holds `python -m dec results-table` exactly: it cannot drift."""
    readme = (REPO / "README.md").read_text()
    table = experiments.results_table()
    assert table in readme, "README's results table is stale: python -m dec results-table"
    assert len(re.findall(r"^\| experiment \|", readme, re.M)) == 1


def test_the_sweeps_are_the_papers_protocol():
    """Xie et al. 2016 §5: λ = 10·2^i, i = 0…8 on one autoencoder; dec.py's 160 marked."""
    lam = experiments.SWEEPS["mnist-lambda"]
    assert lam.lambdas == (10, 20, 40, 80, 160, 320, 640, 1280, 2560) and lam.base == "mnist"
    seeds = experiments.SWEEPS["mnist-seeds"]
    assert seeds.lambdas == (160,) and len(set(seeds.seeds)) >= 3 and seeds.marked == 160


def test_a_seeded_experiment_runs_each_seed_whole_and_reports_mean_and_sd(tmp_path, monkeypatch,
                                                                          capsys):
    """A recipe's claim is a mean over seeds: one whole run a seed, in its own
    folder; seeds.md, measured.json and the results table give mean ± sd."""
    from data_prep import datasets
    datasets.write_meta(tmp_path, "mnist", {"name": "mnist", "dim": 784, "clusters": 10,
                                            "source": "mnist"})
    made = []
    scores = {1: 0.88, 2: 0.92, 3: 0.90}

    def fake_run(name, data_dir, run_dir, sched, **kw):
        made.append((Path(run_dir).name, sched.seed, nets.recipe_of(sched), kw["experiment"]))
        acc = scores[sched.seed]
        (Path(run_dir) / "dec").mkdir(parents=True)
        (Path(run_dir) / "dec" / "rounds.csv").write_text(
            f"round,changed,acc,nmi\n0,1.0,{acc - 0.05},0.7\n")
        results = {"dataset": name, "source": "mnist", "experiment": kw["experiment"],
                   "metrics": {"acc": acc, "nmi": acc - 0.1}, "schedule": sched.as_dict(),
                   "recipe": nets.recipe_of(sched), "rounds": 10 * sched.seed, "converged": True,
                   "timings": {"total_s": 60.0 * sched.seed}, "confusion_table": "t",
                   "samples": 70000, "commit": "abc1234"}
        (Path(run_dir) / "results.json").write_text(json.dumps(results))
        return results

    monkeypatch.setattr(pipeline, "run", fake_run)
    monkeypatch.setattr("dec.engine.use_device", lambda gpu: None)
    measured = tmp_path / "measured.json"
    monkeypatch.setattr(experiments, "MEASURED", measured)
    seeded = experiments.Experiment("t", "a test experiment", "mnist", "mnist",
                                    dict(finetune_iter=100), recipe="e2e", seeds=(1, 2, 3),
                                    published=experiments.MNIST_PUBLISHED[:1])
    monkeypatch.setitem(experiments.EXPERIMENTS, "t", seeded)
    experiments.reproduce("t", tmp_path, tmp_path / "runs", record_it=True, log=lambda *a: None)
    assert made == [("seed1", 1, "e2e", "t"), ("seed2", 2, "e2e", "t"), ("seed3", 3, "e2e", "t")]
    assert (tmp_path / "runs" / "t" / "seed2" / "comparison.md").exists()
    text = (tmp_path / "runs" / "t" / "seeds.md").read_text()
    assert "recipe: e2e (NOT DEC's schedule)" in text
    assert "| 2 | 0.9200 | 0.8200 | 0.8700 | 20 | 2.0 |" in text
    assert "| mean ± sd (3) | 0.9000 ± 0.0200 | 0.8000 ± 0.0200 | 0.8500 ± 0.0200 | | 2.0 |" in text
    entry = json.loads(measured.read_text())["t"]
    assert (entry["n"], entry["acc"], entry["acc_sd"], entry["seeds"]) == (3, 0.9, 0.02, [1, 2, 3])
    assert [r["acc"] for r in entry["runs"]] == [0.88, 0.92, 0.9] and entry["commit"] == "abc1234"
    table = experiments.results_table(measured)
    assert "| t | DEC paper 0.843 | **0.9000 ± 0.0200** / 0.8000 ± 0.0200 (3 seeds, ≤ 3.0 min " \
           "a run); AE + k-means 0.8500 ± 0.0200 | e2e | abc1234," in table
    from dec.__main__ import main as dec_main
    monkeypatch.setattr(experiments, "reproduce", lambda *a, **k: None)
    assert dec_main(["reproduce", "t", "--runs", str(tmp_path / "runs")]) in (0, None)
    assert "| mean ± sd (3) | 0.9000 ± 0.0200 |" in capsys.readouterr().out


def test_the_e2e_recipe_reaches_the_schedule_and_the_nets(tmp_path, monkeypatch):
    e2e, _ = schedule_of_run(tmp_path, monkeypatch, "mnist", "--recipe", "e2e")
    assert (e2e.stacked, e2e.solver_type, e2e.init, e2e.base_lr, e2e.lr_policy,
            e2e.pretrain_data, e2e.momentum_burnin, e2e.corrupt) == \
        (False, "Adam", "xavier", 0.001, "fixed", "total", 0, 0)
    assert nets.recipe_of(e2e) == "e2e" and nets.recipe_of(e2e.override(stacked=True)) == "custom"
    assert nets.recipe_of(e2e.override(solver_type="SGD")) == "custom"
    assert (e2e.update_interval, e2e.dec_lr, e2e.tol, e2e.momentum) == (160, 0.01, 0.001, 0.9)
    solver = nets.pretrain_solver("n", e2e, "p", 100).splitlines()
    assert 'type: "Adam"' in solver and "base_lr: 0.001" in solver
    assert 'type: "Adam"' not in nets.dec_solver("n", e2e, "p")            # DEC's SGD
    assert 'type: "Adam"' not in nets.pretrain_solver("n", nets.PAPER, "p", 100)
    tuned = nets.autoencoder_net((784, 500, 10), e2e, "tr", "te")
    assert tuned.count('type: "xavier" variance_norm: AVERAGE') == 4 and "Dropout" not in tuned
    with pytest.raises(ValueError, match="solver"):
        nets.solver("n", nets.PAPER, base_lr=0.1, max_iter=1, snapshot_prefix="p", kind="Adagrad")


def test_the_keras_recipe_scales_the_pixels_in_every_net_and_learns_as_keras(tmp_path,
                                                                           monkeypatch):
    keras, _ = schedule_of_run(tmp_path, monkeypatch, "mnist", "--recipe", "keras")
    assert (keras.stacked, keras.solver_type, keras.init, keras.base_lr, keras.bias_lr_mult,
            keras.lr_policy, keras.momentum_burnin, keras.shuffle) == (
                False, "SGD", "uniform", 2.0, 1.0, "fixed", 0, True)
    assert nets.recipe_of(keras) == "keras"
    assert nets.recipe_of(keras.override(input_scale=1.0)) == "custom"
    power = re.compile(r'layer \{ name: "data_scaled" type: "Power" bottom: "data" '
                       r'top: "data_scaled" power_param \{ scale: (\S+) \} \}')
    ae = nets.autoencoder_net((784, 500, 10), keras, "tr", "te")
    assert [float(s) for s in power.findall(ae)] == [pytest.approx(1 / 5.1)]   # x / 255
    assert 'name: "inner1" type: "InnerProduct" bottom: "data_scaled"' in ae
    # the reconstruction is compared with the scaled pixels, not DEC's
    assert re.search(r'"EuclideanLoss" bottom: "d_data" bottom: "data_scaled"', ae)
    assert re.findall(r"lr_mult: (\S+) decay_mult: 0", ae) == ["1"] * 4   # biases as weights
    # training batches fed from Python in a new order each epoch (EpochShuffle), not
    # read by a Data layer in the database's order; the TEST phase keeps its Data layer
    assert re.search(r'name: "data" type: "Input" top: "data"\s+input_param \{ shape \{ '
                     r'dim: 256 dim: 784 \} \}\s+include \{ phase: TRAIN \}', ae)
    assert ae.count('type: "Data"') == 1 and 'source: "te"' in ae and '"tr"' not in ae
    paper_ae = nets.autoencoder_net((784, 500, 10), nets.PAPER, "tr", "te")
    assert paper_ae.count('type: "Data"') == 2 and "Input" not in paper_ae
    dec_net = nets.dec_net((784, 500, 10), 10, keras, "total", "label", "00000000")
    for net in (nets.deploy_net((784, 500, 10), keras), dec_net):
        assert len(power.findall(net)) == 1 and 'bottom: "data_scaled"' in net
    # DEC's stage stays DEC's (blobs_lr 1 2); DEC's own nets have no Power layer
    assert set(re.findall(r"lr_mult: (\S+) decay_mult: 0", dec_net)) == {"2"}
    assert "Power" not in nets.autoencoder_net((784, 500, 10), nets.PAPER, "tr", "te")
    with pytest.raises(ValueError, match="input_scale"):
        nets.stack_net(0, (784, 500, 10), keras.override(stacked=True), "tr", "te")
    with pytest.raises(ValueError, match="shuffle"):
        nets.stack_net(0, (784, 500, 10), nets.PAPER.override(shuffle=True), "tr", "te")


def test_the_uniform_init_bounds_each_layer_by_its_fan_in():
    sched = nets.PAPER.override(init="uniform")
    tuned = nets.autoencoder_net((784, 500, 10), sched, "tr", "te")
    bounds = re.findall(r'type: "uniform" min: (\S+) max: (\S+) ', tuned)
    assert [float(hi) for _, hi in bounds] == pytest.approx([784 ** -0.5, 500 ** -0.5,
                                                             10 ** -0.5, 500 ** -0.5])
    assert all(float(lo) == -float(hi) for lo, hi in bounds)
    with pytest.raises(TypeError):
        nets.filler("uniform", 0.01)                     # a bound needs the layer's fan-in
