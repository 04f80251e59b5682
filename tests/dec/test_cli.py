"""What the command line hands to the pipeline, and the comparison report; no Caffe."""
import json

import pytest

from data_prep import datasets
from dec import __main__ as cli
from dec import compare, engine, nets, pipeline


class Handed(Exception):
    pass


def schedule_of_run(tmp_path, monkeypatch, source, *options):
    """The schedule `python -m dec run` gives the pipeline for a data set."""
    datasets.write_meta(tmp_path, "set", {"name": "set", "dim": 1428, "clusters": 10,
                                          "source": source})
    seen = {}

    def fake_run(name, data_dir, run_dir, sched, **kw):
        seen["sched"], seen["kw"] = sched, kw
        raise Handed

    monkeypatch.setattr(engine, "use_device", lambda gpu: None)
    monkeypatch.setattr(pipeline, "run", fake_run)
    with pytest.raises(Handed):
        cli.main(["run", "set", "--data", str(tmp_path), *options])
    return seen["sched"], seen["kw"]


def test_stl_clusters_with_decs_update_interval_40(tmp_path, monkeypatch):
    """dec.py __main__: lam = 160 for mnist, 40 for stl, 20 for reuters."""
    assert schedule_of_run(tmp_path, monkeypatch, "stl")[0].update_interval == 40
    assert schedule_of_run(tmp_path, monkeypatch, "mnist")[0].update_interval == 160
    assert schedule_of_run(tmp_path, monkeypatch, "fashion")[0].update_interval == 160
    sched, _ = schedule_of_run(tmp_path, monkeypatch, "stl", "--update-interval", "7")
    assert sched.update_interval == 7 and sched.dims[0] == 1428
    solver = nets.dec_solver("net.prototxt", nets.paper_schedule("stl"), "snap")
    assert "max_iter: 40" in solver.splitlines()


def test_run_hands_a_given_autoencoder_to_the_pipeline(tmp_path, monkeypatch):
    _, kw = schedule_of_run(tmp_path, monkeypatch, "mnist", "--autoencoder", "ae.caffemodel")
    assert kw["autoencoder_file"] == "ae.caffemodel"


@pytest.mark.parametrize("source, rows", [
    ("stl10", [0.359, 0.357]), ("photos", [0.6874]), ("mnist", [0.843, 0.866])])
def test_comparison_lists_the_published_numbers(tmp_path, source, rows):
    results = {"dataset": "x", "source": source, "metrics": {"acc": 0.5, "nmi": 0.4},
               "schedule": nets.PAPER.as_dict(), "rounds": 3, "converged": True,
               "timings": {"total_s": 60}, "confusion_table": "table"}
    (tmp_path / "results.json").write_text(json.dumps(results))
    text = compare.write(tmp_path)
    for acc in rows:
        assert f"| {acc:.4f} |" in text
    assert (tmp_path / "comparison.md").read_text() == text


def test_curves_png_never_writes_over_a_runs_model_or_log(tmp_path, capsys):
    """`dec curves RUN --png RUN/caffenet.caffemodel` wrote a PNG over the model."""
    from data_prep import files
    run = tmp_path / "run"
    run.mkdir()
    (run / "train.log").write_text("I1203 solver.cpp] Iteration 0, loss = 1.5\n")
    (run / "caffenet.caffemodel").write_bytes(b"trained weights")
    for target in ("caffenet.caffemodel", "train.log", "compare.png"):
        assert cli.main(["curves", str(run), "--png", str(run / target)]) == 2
        assert "lies in the input" in capsys.readouterr().err
    assert (run / "caffenet.caffemodel").read_bytes() == b"trained weights"
    assert not (run / "compare.png").exists()
    assert cli.main(["curves", str(run), "--png", str(tmp_path / "compare.png")]) == 0
    assert files.is_our_figure(tmp_path / "compare.png")


def test_a_stage_that_never_finished_binds_no_options(tmp_path):
    """"lower the learning rate" after a NaN, then `--lr`: refused as "made with
    other options" although no stage had finished."""
    sched = nets.paper_schedule("mnist")
    first = pipeline.stage_options("set", sched, 10, None)
    again = pipeline.stage_options("set", sched.override(base_lr=0.01), 10, None)
    pipeline.check_stages(tmp_path, first, False, log=print)
    (tmp_path / "snapshots").mkdir()
    (tmp_path / "snapshots" / "layer1_iter_100.caffemodel").write_bytes(b"NaN weights")
    said = []
    pipeline.check_stages(tmp_path, again, False, log=said.append)
    assert said == ["the autoencoder stage never finished: starting it again "
                    "(base_lr 0.1 → 0.01)"]
    assert not (tmp_path / "snapshots").exists()          # the old options' snapshots go
    (tmp_path / "autoencoder.caffemodel").write_bytes(b"finished")
    with pytest.raises(ValueError, match="made with other options .*base_lr 0.01 → 0.1"):
        pipeline.check_stages(tmp_path, first, False, log=print)
    assert (tmp_path / "autoencoder.caffemodel").read_bytes() == b"finished"


@pytest.mark.parametrize("argv", [
    ["run", "set", "--corrupt", "1"], ["run", "set", "--corrupt", "1.5"],
    ["run", "set", "--pretrain-iter", "3000000000"], ["run", "set", "--momentum-burnin",
                                                      "99999999999"],
    ["run", "set", "--seed", "4294967296"], ["run", "set", "--hidden", "500", "2147483648"],
    ["train", "ds", "--run", "r", "--max-iter", "2147483648"]])
def test_values_that_would_kill_caffe_stop_at_parse_time(argv, capsys):
    """--corrupt 1.5 was a glog abort (rc 134), 3000000000 iterations a solver
    Caffe could not parse, --corrupt 1 a NaN blamed on the learning rate."""
    assert cli.main(argv) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert "error: argument" in last and argv[-1] in last


def test_the_largest_values_caffe_takes_still_parse(tmp_path, monkeypatch):
    sched, _ = schedule_of_run(tmp_path, monkeypatch, "mnist", "--pretrain-iter", "2147483647",
                               "--corrupt", "0.999", "--seed", "4294967295")
    assert (sched.pretrain_iter, sched.corrupt, sched.seed) == (2147483647, 0.999, 4294967295)


def test_ctrl_c_while_the_commands_start_up_is_one_line(monkeypatch, capsys):
    """Ctrl-C during the start-up imports (the parser's) was a traceback."""
    from data_prep import __main__ as data_cli

    def interrupted():
        raise KeyboardInterrupt
    for module in (cli, data_cli):
        monkeypatch.setattr(module, "parser", interrupted)
        assert module.main(["--help"]) == 130
        err = capsys.readouterr().err
        assert err.startswith("interrupted") and "Traceback" not in err
