"""The ``[device]`` table: every write goes through the device model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import circuitprop
from circuitprop.experiment import load_experiment
from circuitprop.learn import train

REPO = Path(__file__).resolve().parent.parent
XOR = REPO / "examples" / "xor"


def _xor(tmp_path: Path, name: str, device: str, epochs: int = 8) -> Path:
    text = (XOR / "experiment.toml").read_text()
    text = text.replace('netlist = "xor.cir"', f'netlist = "{XOR / "xor.cir"}"')
    text = text.replace("epochs = 150", f"epochs = {epochs}")
    p = tmp_path / f"{name}.toml"
    p.write_text(text + "\n[device]\n" + device)
    return p


def _trained(out: Path) -> dict[str, float]:
    """Conductance of every trainable resistor of ``trained.cir``."""
    return {el.name: 1.0 / el.value for el in circuitprop.load(out / "trained.cir").elements
            if el.kind == "r" and el.name[1:2].isdigit()}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("device")
    dev = 'levels = 16\nwrite_noise = 0.02\nupdate = "pulse"\npulse_up = 0.05\npulse_down = 0.08\n'
    out = {}
    for name, device in (("a", dev), ("b", dev), ("c", dev + "seed = 5\n"),
                         ("stuck", "stuck_off = 0.1\nvariation = 0.05\n")):
        exp = _xor(tmp, name, device)
        out[name] = (train(exp, tmp / name, progress=False), _trained(tmp / name),
                     load_experiment(exp))
    return out


def test_levels_hold_every_written_conductance(runs):
    m, g, exp = runs["a"]
    t = exp.train
    levels = np.linspace(t.g_min, t.g_max, 16)
    for name, v in g.items():
        assert np.min(np.abs(levels - v)) <= 1e-12 * v, (name, v)
    assert m["device"]["levels"] == 16
    w = m["device_writes"]
    assert w["updates"] == 8 and w["mean_pulses_per_device"] > 0 and w["changed_fraction"] > 0


def test_same_seed_same_devices_other_seed_other_devices(runs):
    assert runs["a"][1] == runs["b"][1]
    assert runs["a"][1] != runs["c"][1]


def test_stuck_off_devices_sit_at_g_min(runs):
    m, g, exp = runs["stuck"]
    n = len(g)
    at_min = [k for k, v in g.items() if abs(v - exp.train.g_min) <= 1e-12 * exp.train.g_min]
    assert len(at_min) == round(0.1 * n) == m["device_writes"]["stuck_off"]


def test_bad_device_table_is_refused(tmp_path, capsys):
    from circuitprop.cli import main

    exp = _xor(tmp_path, "bad", "levels = 1\n")
    assert main(["train", str(exp), "--out", str(tmp_path / "o"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "[device]" in err and "levels" in err


def test_metrics_record_the_device_table(runs):
    m = runs["a"][0]
    assert m["device"]["update"] == "pulse" and m["device"]["seed"] == 0
    assert json.loads(json.dumps(m["device"])) == m["device"]


@pytest.fixture(scope="module")
def plain_xor(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mc")
    text = (XOR / "experiment.toml").read_text().replace(
        'netlist = "xor.cir"', f'netlist = "{XOR / "xor.cir"}"').replace(
        "epochs = 150", "epochs = 40")
    exp = tmp / "xor.toml"
    exp.write_text(text)
    return exp, train(exp, tmp / "run", progress=False), tmp / "run" / "trained.cir"


def test_montecarlo_without_perturbation_reproduces_the_trained_run(plain_xor, tmp_path):
    from circuitprop.learn._montecarlo import montecarlo

    exp, m, deck = plain_xor
    out = montecarlo(exp, deck, runs=3, plot=str(tmp_path / "h.png"))
    assert out["runs"] == 3 and len(out["per_run"]) == 3
    assert out["accuracy"]["min"] == out["accuracy"]["max"] == m["test_accuracy"]
    assert out["loss"]["mean"] == pytest.approx(m["test_loss"], rel=1e-9)
    assert (tmp_path / "h.png").stat().st_size > 1000


def test_montecarlo_spread_is_reproducible_by_seed(plain_xor, capsys):
    from circuitprop.cli import main

    exp, _, deck = plain_xor
    args = ["montecarlo", str(exp), "--netlist", str(deck), "--runs", "12", "--variation",
            "0.3", "--stuck-off", "0.1", "--json"]
    outs = []
    for seed in ("1", "1", "2"):
        assert main(args + ["--seed", seed]) == 0
        outs.append(json.loads(capsys.readouterr().out))
    assert outs[0] == outs[1]
    assert outs[0]["per_run"] != outs[2]["per_run"]
    assert outs[0]["loss"]["std"] > 0
    assert set(outs[0]["accuracy"]) == {"mean", "std", "min", "p05", "p50", "p95", "max"}


@pytest.mark.parametrize("flag,value,words", [("--runs", "0", "--runs: expected a count"),
                                              ("--variation", "-1", "--variation: expected"),
                                              ("--drift-t", "0", "--drift-t: expected")])
def test_montecarlo_bad_flags_exit_2(plain_xor, capsys, flag, value, words):
    from circuitprop.cli import main

    exp, _, deck = plain_xor
    args = ["montecarlo", str(exp), "--netlist", str(deck), "--runs", "2", flag, value]
    assert main(args) == 2
    assert words in capsys.readouterr().err
