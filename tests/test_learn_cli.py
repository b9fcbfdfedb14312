"""``circuitprop gradcheck``, ``train`` (with resume) and ``build drn``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from learn_helpers import RD_DECK

import circuitprop  # noqa: F401
from circuitprop.cli import main

REPO = Path(__file__).resolve().parent.parent
XOR = REPO / "examples" / "xor"



@pytest.fixture
def rd_experiment(tmp_path):
    (tmp_path / "rd.cir").write_text(RD_DECK)
    (tmp_path / "rd.csv").write_text("x1,x2,y\n0.5,1.0,0.2\n1.0,0.2,0.4\n0.1,0.9,0.1\n")
    (tmp_path / "exp.toml").write_text(
        'netlist = "rd.cir"\ninputs = ["vx1", "vx2"]\noutputs = ["out"]\n'
        'trainable = ["r[1-7]"]\n[data]\nsource = "csv:rd.csv"\ntest_fraction = 0\n'
        "[learning]\nbeta = 1e-6\n")
    return tmp_path / "exp.toml"


def test_gradcheck_json(rd_experiment, capsys):
    assert main(["gradcheck", str(rd_experiment), "--sample", "1", "--json"]) == 0
    j = json.loads(capsys.readouterr().out)
    for key in ("parameters", "loss", "exact", "estimate", "finite_difference",
                "cosine_exact", "cosine_fd", "relative_error"):
        assert key in j
    assert j["parameters"] == [f"r{k}" for k in range(1, 8)]
    assert len(j["exact"]) == len(j["estimate"]) == len(j["finite_difference"]) == 7
    assert j["cosine_exact"] > 0.9999 and j["cosine_fd"] > 0.9999
    assert j["relative_error"] < 1e-4


def test_gradcheck_table_and_errors(rd_experiment, capsys):
    assert main(["gradcheck", str(rd_experiment), "--rule", "coupled"]) == 0
    out = capsys.readouterr().out
    assert "cosine(estimate, exact)" in out and "r7" in out
    assert main(["gradcheck", str(rd_experiment), "--sample", "9"]) == 2
    assert "out of range" in capsys.readouterr().err
    for flag, value in (("--beta", "nan"), ("--beta", "inf"), ("--beta", "-1"), ("--eta", "0")):
        assert main(["gradcheck", str(rd_experiment), flag, value]) == 2
        assert capsys.readouterr().err == f"{flag}: expected a finite number > 0, got {float(value)!r}\n"


def test_train_xor_and_resume_bit_for_bit(tmp_path, capsys):
    exp = tmp_path / "xor"
    shutil.copytree(XOR, exp)
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["train", str(exp / "experiment.toml"), "--out", str(a), "--epochs", "4",
                 "--no-progress"]) == 0
    assert main(["train", str(exp / "experiment.toml"), "--out", str(b), "--epochs", "2",
                 "--no-progress"]) == 0
    assert main(["train", str(exp / "experiment.toml"), "--out", str(b), "--epochs", "4",
                 "--resume", "--no-progress"]) == 0
    za, zb = np.load(a / "checkpoint.npz"), np.load(b / "checkpoint.npz")
    assert np.array_equal(za["params"], zb["params"])
    assert (a / "trained.cir").read_text() == (b / "trained.cir").read_text()
    m = json.loads((a / "metrics.json").read_text())
    mb = json.loads((b / "metrics.json").read_text())
    assert len(m["train_loss_history"]) == 4 == len(m["epoch_seconds"])
    assert m["train_loss_history"] == mb["train_loss_history"]
    # the evaluation caches travel in the checkpoint: test metrics are bit for bit too
    assert m["test_loss_history"] == mb["test_loss_history"]
    assert m["test_accuracy_history"] == mb["test_accuracy_history"]
    assert m["test_loss"] == mb["test_loss"] and m["non_converged"] == mb["non_converged"]
    assert "test_accuracy" in m
    assert (a / "learning_curve.png").stat().st_size > 0


@pytest.mark.slow
def test_train_xor_reaches_full_accuracy(tmp_path):
    from circuitprop.export import ngspice_operating_point

    out = tmp_path / "run"
    assert main(["train", str(XOR / "experiment.toml"), "--out", str(out),
                 "--no-progress"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["test_accuracy"] == 1.0
    deck = (out / "trained.cir").read_text()
    op = circuitprop.operating_point(out / "trained.cir")
    if shutil.which("ngspice"):
        volts, _ = ngspice_operating_point(deck)
        for name, v in op.voltages.items():
            assert abs(v - volts[name]) < 1e-6


def test_build_drn(tmp_path, capsys):
    deck = tmp_path / "drn.cir"
    exp = tmp_path / "drn.toml"
    assert main(["build", "drn", "--inputs", "4", "--hidden", "6", "--outputs", "3",
                 "-o", str(deck), "--experiment", str(exp), "--source", "iris"]) == 0
    net = circuitprop.load(deck)
    names = {el.name for el in net.elements}
    assert "r1_1_1" in names and "vinp4" in names and "rload_o3n" in names
    from circuitprop.experiment import load_experiment

    e = load_experiment(exp)
    assert e.outputs[0] == ("o1p", "o1n")
    assert main(["build", "drn", "--inputs", "0", "--outputs", "3", "-o", str(deck)]) == 2
    assert "drn" in capsys.readouterr().err
