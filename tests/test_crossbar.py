"""The memristor crossbar builder (``circuitprop build crossbar``)."""

from __future__ import annotations

import math
import re
import shlex
from pathlib import Path

import numpy as np
import pytest

import circuitprop
from circuitprop._errors import CircuitpropError
from circuitprop.builders import (
    crossbar_deck,
    crossbar_experiment,
    crossbar_experiment_outputs,
    drn_deck,
)
from circuitprop.builders._crossbar import tia_target
from circuitprop.cli import main
from circuitprop.experiment import load_experiment, match_trainable

DECKS = Path(__file__).resolve().parent / "decks"

#: the committed parity decks and the commands that wrote them
PARITY_DECKS = {
    "crossbar_16x16_tia": "--rows 8 --cols 16 --wire-r 2.5 --seed 0 --gain 1",
    "crossbar_16x16_load_hidden": "--rows 8 --hidden 16 --cols 4 --wire-r 1 --readout load "
    "--differential --gain 20 --bias -0.3 --seed 3",
}


def _elements(deck: str) -> dict[str, list[str]]:
    """Element name -> the rest of its line."""
    return {
        line.split()[0]: line.split()[1:]
        for line in deck.splitlines()[1:]
        if line.strip() and line[0] not in "*."
    }


def _kinds(deck: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for name in _elements(deck):
        key = "rd" if name.startswith("rd") else "rw" if name.startswith("rw") else name[0]
        if name.startswith("rload_"):
            key = "rload"
        counts[key] = counts.get(key, 0) + 1
    return counts


def _layer_shapes(rows, cols, hidden, input_pm, differential):
    sizes = [2 * rows if input_pm else rows, *hidden, 2 * cols if differential else cols]
    return list(zip(sizes[:-1], sizes[1:]))


@pytest.mark.parametrize(
    "rows, cols, wire_r, kw",
    [
        (4, 3, 1.0, {}),
        (4, 3, 0.0, {}),
        (3, 2, 2.5, {"differential": True}),
        (5, 2, 0.5, {"input_pm": False, "readout": "load"}),
        (3, 2, 1.0, {"hidden": [4, 3], "differential": True, "readout": "load"}),
        (3, 2, 0.0, {"hidden": [5], "input_pm": False}),
    ],
)
def test_counts(rows, cols, wire_r, kw):
    deck = crossbar_deck(rows, cols, wire_r, **kw)
    hidden = kw.get("hidden", [])
    input_pm = kw.get("input_pm", True)
    differential = kw.get("differential", False)
    tia = kw.get("readout", "tia") == "tia"
    shapes = _layer_shapes(rows, cols, hidden, input_pm, differential)
    n_dev = sum(m * n for m, n in shapes)
    n_out = 2 * cols if differential else cols
    c = _kinds(deck)
    assert c["rd"] == n_dev
    # every line has one segment per cross point: M*N row wires and M*N column wires
    assert c.get("rw", 0) == (2 * n_dev if wire_r > 0 else 0)
    n_in = 2 * rows if input_pm else rows
    assert c["v"] == n_in + (2 if hidden else 0) + (n_out if tia else 0)
    assert c.get("rload", 0) == (0 if tia else n_out)
    assert c.get("d", 0) == sum(hidden)
    assert set(c) <= {"rd", "rw", "v", "rload", "d"}
    assert deck.splitlines()[-2:] == [".op", ".end"]
    for layer, (m, n) in enumerate(shapes, 1):  # the last cross point of every crossbar
        assert f"rd{layer}_{m}_{n} " in deck and f"rd{layer}_{m + 1}_{n} " not in deck


def test_naming_scheme():
    deck = crossbar_deck(2, 2, 1.5, hidden=[3], differential=True, gain=10.0, bias=0.5)
    el = _elements(deck)
    assert el["vinp2"][:2] == ["inp2", "0"] and el["vinn1"][:2] == ["inn1", "0"]
    assert float(el["vinp1"][3]) == -float(el["vinn1"][3]) and 0 < float(el["vinp1"][3]) < 10
    assert el["vbp"] == ["bp", "0", "DC", "0.5"] and el["vbn"] == ["bn", "0", "DC", "-0.5"]
    # crossbar 1: row 3 is inn1; the device joins the row- and column-line nodes
    assert el["rd1_3_2"][:2] == ["xr1_3_2", "xc1_3_2"]
    assert el["rwr1_3_1"] == ["inn1", "xr1_3_1", "1.5"]
    assert el["rwr1_3_2"] == ["xr1_3_1", "xr1_3_2", "1.5"]
    assert el["rwc1_1_2"] == ["xc1_1_2", "xc1_2_2", "1.5"]
    assert el["rwc1_4_3"] == ["xc1_4_3", "h1_3", "1.5"]
    # junctions: the fast-DRN rectifier
    assert el["d1_1"] == ["bn", "h1_1", "dnl"] and el["d1_2"] == ["bn", "h1_2", "dnl"]
    assert el["d1_3"] == ["h1_3", "bp", "dnl"]
    assert ".model dnl D(IS=1e-14 N=1)" in deck
    # crossbar 2 starts at the junctions and ends at the readout nodes outp1, outn1, ...
    assert el["rwr2_2_1"] == ["h1_2", "xr2_2_1", "1.5"]
    assert el["rwc2_3_1"] == ["xc2_3_1", "outp1", "1.5"]
    assert el["rwc2_3_4"] == ["xc2_3_4", "outn2", "1.5"]
    assert el["voutp1"] == ["outp1", "0", "DC", "0"] and el["voutn2"] == ["outn2", "0", "DC", "0"]
    load = _elements(crossbar_deck(2, 2, 0.0, readout="load", load=2e-3, input_pm=False))
    assert load["rload_out2"] == ["out2", "0", "500.0"] and load["rd1_2_1"][:2] == ["in2", "out1"]
    assert load["vin1"][:2] == ["in1", "0"]


def test_trainable_pattern_selects_devices():
    deck = crossbar_deck(3, 2, 1.0, hidden=[4], readout="load", differential=True)
    resistors = [n for n in _elements(deck) if n[0] == "r"]
    devices = match_trainable(["rd*"], resistors)
    assert len(devices) == 6 * 4 + 4 * 4
    assert all(re.fullmatch(r"rd\d+_\d+_\d+", d) for d in devices)
    assert len(resistors) == 3 * len(devices) + 4  # + row/column wires + loads


def test_outputs_text():
    assert crossbar_experiment_outputs(2) == ["i(vout1)", "i(vout2)"]
    assert crossbar_experiment_outputs(2, True) == ["i(voutp1)-i(voutn1)", "i(voutp2)-i(voutn2)"]
    assert crossbar_experiment_outputs(2, False, "load") == ["out1", "out2"]
    assert crossbar_experiment_outputs(1, True, "load") == ["outp1-outn1"]


def test_pure_function_of_arguments():
    a = crossbar_deck(4, 3, 2.0, hidden=[5], seed=3)
    assert a == crossbar_deck(4, 3, 2.0, hidden=[5], seed=3)
    b = crossbar_deck(4, 3, 2.0, hidden=[5], seed=4)
    assert a != b
    ea, eb = _elements(a), _elements(b)
    assert ea.keys() == eb.keys()
    for name in ea:  # same topology; the seed moves the devices and the placeholder inputs
        assert ea[name][:2] == eb[name][:2]
        if name.startswith("rd"):
            assert ea[name][2] != eb[name][2]
        elif name.startswith("rw"):
            assert ea[name][2] == eb[name][2]


def test_initial_conductances():
    deck = crossbar_deck(5, 7, 1.0, hidden=[6], g_unit=1e-3)
    el = _elements(deck)
    g1 = np.array([1 / float(v[2]) for n, v in el.items() if n.startswith("rd1_")])
    g2 = np.array([1 / float(v[2]) for n, v in el.items() if n.startswith("rd2_")])
    assert g1.size == 10 * 6 and g2.size == 6 * 7
    assert g1.min() > 0 and g1.max() <= 1e-3 / math.sqrt(10) * (1 + 1e-12)
    assert g2.max() <= 1e-3 / math.sqrt(6) * (1 + 1e-12)


def test_zero_wire_resistance_is_a_dense_layer():
    """wire_r = 0: no wires, no cross-point nodes, and the drn network with the same seed."""
    kw = dict(seed=5, gain=3.0, bias=-0.2)
    deck = crossbar_deck(3, 2, 0.0, hidden=[4], differential=True, readout="load", **kw)
    assert not any(n.startswith("rw") for n in _elements(deck))
    assert not re.search(r"\bx[rc]\d", deck)
    drn = drn_deck(3, [4], 2, load=1e-3, **kw)
    _, info = circuitprop.prepare(deck)
    _, info_drn = circuitprop.prepare(drn)
    assert len(info.nodes) == len(info_drn.nodes)
    # same conductances in the same order, so the same operating point
    rename = {f"o{k}{s}": f"out{s}{k}" for k in (1, 2) for s in "pn"}
    ours = circuitprop.operating_point(deck).voltages
    theirs = circuitprop.operating_point(drn).voltages
    for node, v in theirs.items():
        assert ours[rename.get(node, node)] == pytest.approx(v, rel=1e-12, abs=1e-14), node
    # tia readout: the readout nodes are there (held at 0 V) instead of the loaded ones
    _, info_tia = circuitprop.prepare(crossbar_deck(3, 2, 0.0, hidden=[4], differential=True))
    assert len(info_tia.nodes) == len(info_drn.nodes)
    # with wires: two more nodes per cross point
    _, info_w = circuitprop.prepare(crossbar_deck(3, 2, 1.0, hidden=[4], differential=True))
    assert len(info_w.nodes) == len(info_drn.nodes) + 2 * (6 * 4 + 4 * 4)


def test_tia_currents_by_hand():
    deck = crossbar_deck(5, 3, 0.0, input_pm=False, gain=2.0, seed=1)
    el = _elements(deck)
    op = circuitprop.operating_point(deck)
    v = {f"in{i}": float(el[f"vin{i}"][3]) for i in range(1, 6)}
    for j in range(1, 4):
        expect = sum(v[el[f"rd1_{i}_{j}"][0]] / float(el[f"rd1_{i}_{j}"][2]) for i in range(1, 6))
        assert expect > 0
        assert op.currents[f"vout{j}"] == pytest.approx(expect, rel=1e-9)
        assert op.voltages[f"out{j}"] == 0.0


def test_wire_resistance_lowers_column_currents():
    currents = []
    for wire_r in (0.0, 1.0, 10.0, 100.0):
        deck = crossbar_deck(6, 4, wire_r, input_pm=False, gain=1.0, seed=2)
        op = circuitprop.operating_point(deck)
        currents.append(np.array([op.currents[f"vout{j}"] for j in range(1, 5)]))
    for a, b in zip(currents[:-1], currents[1:]):
        assert np.all(np.abs(b) < np.abs(a))
    # 6 rows of ~1/sqrt(6) mS in series with up to 10 segments of 100 ohm: a sizeable drop
    assert np.all(currents[-1] < 0.9 * currents[0])


def test_hidden_layers_solve():
    deck = crossbar_deck(4, 2, 0.5, hidden=[6, 4], differential=True, readout="load", gain=5.0)
    op = circuitprop.operating_point(deck)
    for j in range(1, 7):  # the rectifiers bound the junctions (bias 0, V_D < 1 V)
        assert (op.voltages[f"h1_{j}"] > -1.0) if j <= 3 else (op.voltages[f"h1_{j}"] < 1.0)
    assert {"outp1", "outn1", "outp2", "outn2"} <= set(op.voltages)


@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        ((0, 2, 1.0), {}, "rows"),
        ((2, 0, 1.0), {}, "cols"),
        ((2, 2.5, 1.0), {}, "cols"),
        ((2, 2, -1.0), {}, "wire_r"),
        ((2, 2, math.nan), {}, "wire_r"),
        ((2, 2, 1.0), {"hidden": [3, 0]}, "hidden"),
        ((2, 2, 1.0), {"readout": "adc"}, "readout"),
        ((2, 2, 1.0), {"gain": math.inf}, "gain"),
        ((2, 2, 1.0), {"g_unit": 0.0}, "g_unit"),
        ((2, 2, 1.0), {"readout": "load", "load": 0.0}, "load"),
        ((2, 2, 1.0), {"seed": -1}, "seed"),
    ],
)
def test_bad_arguments(args, kwargs, match):
    with pytest.raises(CircuitpropError, match=match):
        crossbar_deck(*args, **kwargs)


@pytest.mark.parametrize(
    "extra, option",
    [
        (["--rows", "0"], "--rows"),
        (["--cols", "-2"], "--cols"),
        (["--wire-r", "-0.5"], "--wire-r"),
        (["--wire-r", "inf"], "--wire-r"),
        (["--hidden", "4", "0"], "--hidden"),
        (["--gain", "0"], "--gain"),
        (["--g-unit", "-1e-3"], "--g-unit"),
        (["--readout", "load", "--load", "0"], "--load"),
        (["--bias", "nan"], "--bias"),
        (["--seed", "-1"], "--seed"),
        (["--beta", "0", "--experiment", "EXP"], "--beta"),
        (["--readout", "adc"], "--readout"),
    ],
)
def test_cli_bad_options(tmp_path, capsys, extra, option):
    base = {"--rows": "3", "--cols": "2", "--wire-r": "1"}
    for k in ("--rows", "--cols", "--wire-r"):
        if k in extra:
            base.pop(k)
    argv = ["build", "crossbar", *(x for kv in base.items() for x in kv)]
    argv += [str(tmp_path / "e.toml") if x == "EXP" else x for x in extra]
    argv += ["-o", str(tmp_path / "x.cir")]
    try:
        rc = main(argv)
    except SystemExit as e:  # argparse (choices)
        rc = e.code
    assert rc == 2
    assert option in capsys.readouterr().err
    assert not (tmp_path / "x.cir").exists() and not (tmp_path / "e.toml").exists()


def test_cli_writes_deck_and_experiment(tmp_path, capsys):
    out, exp = tmp_path / "cb.cir", tmp_path / "cb.toml"
    argv = ["build", "crossbar", "--rows", "64", "--cols", "10", "--wire-r", "2", "--hidden", "12",
            "--differential", "--readout", "load", "--seed", "1", "--beta", "1e-4",
            "-o", str(out), "--experiment", str(exp)]
    assert main(argv) == 0
    assert out.read_text() == crossbar_deck(64, 10, 2.0, hidden=[12], differential=True,
                                            readout="load", seed=1)
    e = load_experiment(exp)
    assert e.netlist == out
    assert e.train.input_mode == "pm" and e.train.input_gain == 100.0
    assert e.n_inputs == 128 and e.n_features == 64
    assert e.outputs[3] == ("outp4", "outn4") and e.learning.beta == 1e-4
    assert e.learning.rule == "ep" and e.learning.estimator == "centered"
    assert e.train.g_unit == 1e-3 and e.train.g_min == 1e-9
    nl = e.load_netlist()
    assert len(match_trainable(e.trainable, [x.name for x in nl.elements if x.kind == "r"])) == (
        128 * 12 + 12 * 20
    )
    # stdout
    capsys.readouterr()
    assert main(["build", "crossbar", "--rows", "2", "--cols", "1", "--wire-r", "0", "-o", "-"]) == 0
    assert capsys.readouterr().out == crossbar_deck(2, 1, 0.0)


def test_tia_experiment_text(tmp_path):
    exp = tmp_path / "cb.toml"
    argv = ["build", "crossbar", "--rows", "4", "--cols", "3", "--wire-r", "1", "--direct-inputs",
            "-o", str(tmp_path / "cb.cir"), "--experiment", str(exp)]
    assert main(argv) == 0
    text = exp.read_text()
    lines = text.splitlines()
    assert 'outputs = ["i(vout1)", "i(vout2)", "i(vout3)"]' in lines
    assert 'inputs = ["vin1", "vin2", "vin3", "vin4"]' in lines
    assert 'trainable = ["rd*"]' in lines and 'input_mode = "direct"' in lines
    t = 0.1 * 100.0 * 1e-3 * math.sqrt(4) / 2
    assert f"target_high = {t!r}" in lines and f"target_low = {-t!r}" in lines
    diff = crossbar_experiment("x.cir", 4, 2, hidden=[9], differential=True)
    assert 'outputs = ["i(voutp1)-i(voutn1)", "i(voutp2)-i(voutn2)"]' in diff.splitlines()
    assert tia_target(4, hidden=[9]) == pytest.approx(0.1 * 100 * 1e-3 * 3 / 2)
    assert "target_high" not in crossbar_experiment("x.cir", 4, 2, readout="load")


@pytest.mark.parametrize("stem", sorted(PARITY_DECKS))
def test_parity_decks_match_the_builder(tmp_path, stem):
    """The committed ngspice parity decks are what their build command writes."""
    out = tmp_path / f"{stem}.cir"
    assert main(["build", "crossbar", *shlex.split(PARITY_DECKS[stem]), "-o", str(out)]) == 0
    assert (DECKS / f"{stem}.cir").read_text() == out.read_text()
    assert (DECKS / f"{stem}.json").exists()
