"""The layered deep resistive network builder."""

from __future__ import annotations

import math
import re
import shutil

import numpy as np
import pytest

from circuitprop._errors import CircuitpropError
from circuitprop.builders._drn import (
    drn_deck,
    drn_experiment,
    drn_experiment_inputs,
    drn_experiment_outputs,
)
from circuitprop.experiment import check_names, match_trainable, parse_experiment
from circuitprop.export import export_spice, ngspice_operating_point
from circuitprop.netlist._types import DiodeModel, Element, Netlist

needs_ngspice = pytest.mark.skipif(shutil.which("ngspice") is None, reason="ngspice not installed")


def _parser():
    try:
        from circuitprop.netlist import parse
    except ImportError:
        return None
    return parse


def _mini_parse(deck: str) -> Netlist:
    """Just enough of a parser for the builder's own decks (used when the real one is absent)."""
    lines = deck.splitlines()
    elements, models = [], {}
    for line in lines[1:]:
        line = line.strip()
        if not line or line.startswith("*"):
            continue
        if line.lower().startswith(".model"):
            m = re.match(r"\.model\s+(\S+)\s+D\((.*)\)", line, re.I)
            params = dict(p.split("=") for p in m.group(2).split())
            models[m.group(1)] = DiodeModel(
                m.group(1), is_=float(params.get("IS", 1e-14)), n=float(params.get("N", 1))
            )
            continue
        if line.startswith("."):
            continue
        tok = line.split()
        kind = tok[0][0].lower()
        if kind == "r":
            elements.append(Element("r", tok[0], (tok[1], tok[2]), float(tok[3])))
        elif kind == "v":
            assert tok[3].upper() == "DC"
            elements.append(Element("v", tok[0], (tok[1], tok[2]), float(tok[4])))
        elif kind == "d":
            elements.append(Element("d", tok[0], (tok[1], tok[2]), model=tok[3]))
        else:
            raise AssertionError(line)
    return Netlist(lines[0], elements, models, op=True)


def _count(deck: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for line in deck.splitlines()[1:]:
        s = line.strip().lower()
        if s and not s.startswith("*"):
            key = s.split()[0] if s.startswith(".") else s[0]
            counts[key] = counts.get(key, 0) + 1
    return counts


def test_counts_default():
    deck = drn_deck(4, [6, 4], 3)
    c = _count(deck)
    # 8 input sources (+x/-x) + 2 bias sources; weights 8*6 + 6*4 + 4*6 and 6 loads
    assert c == {"v": 10, "r": 8 * 6 + 6 * 4 + 4 * 6 + 6, "d": 10, ".model": 1, ".op": 1, ".end": 1}
    assert deck.splitlines()[-2:] == [".op", ".end"]
    assert ".model dnl D(IS=1e-14 N=1)" in deck


def test_counts_variants():
    deck = drn_deck(3, [5], 2, input_pm=False, differential=False, nonlinearity="clamp", leak=1e-6)
    c = _count(deck)
    assert c["v"] == 3 + 2 and c["d"] == 2 * 5
    assert c["r"] == 3 * 5 + 5 * 2 + 5 + 2  # weights, leaks, loads
    assert "rleak_h1_3 h1_3 0 1000000.0" in deck
    assert "d1_2u h1_2 bp dnl" in deck and "d1_2d bn h1_2 dnl" in deck
    deck = drn_deck(2, [], 1, load=0.0)
    c = _count(deck)
    assert c == {"v": 4, "r": 4 * 2, ".model": 1, ".op": 1, ".end": 1}


def test_naming_scheme():
    deck = drn_deck(2, [4], 2, gain=10.0, bias=0.5)
    lines = deck.splitlines()
    names = {
        line.split()[0]: line.split()[1:] for line in lines[1:] if line and line[0] not in "*."
    }
    assert names["vinp1"][:2] == ["inp1", "0"] and names["vinn2"][:2] == ["inn2", "0"]
    assert float(names["vinp1"][3]) == -float(names["vinn1"][3])
    assert 0 <= float(names["vinp1"][3]) <= 10.0
    assert names["vbp"] == ["bp", "0", "DC", "0.5"] and names["vbn"] == ["bn", "0", "DC", "-0.5"]
    # layer 1: input node 3 is inn1 (the -x copy of feature 1)
    assert names["r1_3_2"][:2] == ["inn1", "h1_2"]
    # rectifiers: units 1..2 held from below (bn -> node), units 3..4 from above (node -> bp)
    assert names["d1_1"] == ["bn", "h1_1", "dnl"] and names["d1_2"] == ["bn", "h1_2", "dnl"]
    assert names["d1_3"] == ["h1_3", "bp", "dnl"] and names["d1_4"] == ["h1_4", "bp", "dnl"]
    # output layer 2: node 3 is o2p, node 4 is o2n
    assert names["r2_4_3"][:2] == ["h1_4", "o2p"] and names["r2_1_4"][:2] == ["h1_1", "o2n"]
    assert names["rload_o1n"] == ["o1n", "0", "1000.0"]
    assert drn_experiment_inputs(2) == ["vinp1", "vinp2", "vinn1", "vinn2"]
    assert drn_experiment_inputs(2, input_pm=False) == ["vin1", "vin2"]
    assert drn_experiment_outputs(2) == ["o1p-o1n", "o2p-o2n"]
    assert drn_experiment_outputs(2, differential=False) == ["o1", "o2"]
    nd = drn_deck(2, [3], 2, input_pm=False, differential=False)
    assert "vin2 in2 0 DC" in nd and "r2_3_2 h1_3 o2 " in nd


def test_trainable_pattern_selects_weights():
    deck = drn_deck(3, [4, 2], 2, leak=1e-6)
    nl = _mini_parse(deck)
    resistors = [e.name for e in nl.elements if e.kind == "r"]
    weights = match_trainable(["r[0-9]*"], resistors)
    assert len(weights) == 6 * 4 + 4 * 2 + 2 * 4
    assert all(re.fullmatch(r"r\d+_\d+_\d+", w) for w in weights)
    assert len(match_trainable(["r*"], resistors)) == len(weights) + 6 + 4


def test_initial_weights_and_seed():
    deck = drn_deck(5, [7], 2, g_unit=1e-3)
    nl = _mini_parse(deck)
    g1 = np.array([1 / e.value for e in nl.elements if e.name.startswith("r1_")])
    g2 = np.array([1 / e.value for e in nl.elements if e.name.startswith("r2_")])
    assert g1.size == 70 and g2.size == 28
    assert g1.min() > 0 and g1.max() <= 1e-3 / math.sqrt(10) * (1 + 1e-12)
    assert g2.max() <= 1e-3 / math.sqrt(7) * (1 + 1e-12)
    assert g1.mean() == pytest.approx(0.5e-3 / math.sqrt(10), rel=0.3)
    assert drn_deck(5, [7], 2, seed=3) == drn_deck(5, [7], 2, seed=3)
    assert drn_deck(5, [7], 2, seed=3) != drn_deck(5, [7], 2, seed=4)
    deck = drn_deck(2, [3], 1, init_low=0.5, init_high=0.6, g_unit=1.0)
    g = [1 / e.value for e in _mini_parse(deck).elements if re.match(r"r\d", e.name)]
    assert min(g) >= 0.5 and max(g) <= 0.6


@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        ((0, [3], 2), {}, "n_inputs"),
        ((2, [3], 0), {}, "n_outputs"),
        ((2, [0], 2), {}, "hidden layer width"),
        ((2, [3.5], 2), {}, "hidden layer width"),
        ((2, [3], 2), {"nonlinearity": "tanh"}, "nonlinearity"),
        ((2, [3], 2), {"g_unit": 0.0}, "g_unit"),
        ((2, [3], 2), {"load": -1.0}, "load"),
        ((2, [3], 2), {"gain": math.inf}, "gain"),
        ((2, [3], 2), {"init_high": 0.0}, "init_high"),
    ],
)
def test_bad_arguments(args, kwargs, match):
    with pytest.raises(CircuitpropError, match=match):
        drn_deck(*args, **kwargs)


def test_experiment_text(tmp_path):
    (tmp_path / "drn.cir").write_text(drn_deck(64, [20], 10, seed=1))
    text = drn_experiment("drn.cir", 64, 10, source="digits", gain=100.0, beta=1e-4)
    exp = parse_experiment(text, tmp_path / "drn.toml")
    assert exp.train.input_mode == "pm" and exp.train.input_gain == 100.0
    assert exp.n_inputs == 128 and exp.n_features == 64
    assert exp.outputs[3] == ("o4p", "o4n") and exp.learning.beta == 1e-4
    parse = _parser()
    nl = (
        parse((tmp_path / "drn.cir").read_text(), "drn.cir")
        if parse
        else _mini_parse((tmp_path / "drn.cir").read_text())
    )
    trainable = check_names(exp, nl)
    assert len(trainable) == 128 * 20 + 20 * 20
    ds = exp.load_data()
    assert ds.n_classes == 10
    v = exp.encode_inputs(ds.x_train[:1])
    assert v.shape == (1, 128) and v.max() <= 100.0


@pytest.mark.skipif(_parser() is None, reason="circuitprop.netlist.parse not available")
def test_parses():
    deck = drn_deck(3, [4, 3], 2, nonlinearity="clamp", leak=1e-7)
    nl = _parser()(deck, "drn.cir")
    ref = _mini_parse(deck)
    assert [(e.kind, e.name, tuple(e.nodes)) for e in nl.elements] == [
        (e.kind, e.name, e.nodes) for e in ref.elements
    ]
    for a, b in zip(nl.elements, ref.elements):
        assert a.value == b.value and a.model == b.model
    assert nl.models["dnl"].is_ == 1e-14 and nl.op


@needs_ngspice
@pytest.mark.parametrize("nonlinearity", ["rectifier", "clamp"])
def test_ngspice_solves(nonlinearity):
    bias = 0.0 if nonlinearity == "rectifier" else 2.0
    deck = drn_deck(4, [8, 6], 3, nonlinearity=nonlinearity, bias=bias, seed=2)
    v, i = ngspice_operating_point(deck)
    for layer, h in ((1, 8), (2, 6)):
        for j in range(1, h + 1):
            x = v[f"h{layer}_{j}"]
            if nonlinearity == "clamp":
                assert -bias - 1.0 < x < bias + 1.0
            elif j <= h // 2:
                assert x > -bias - 1.0
            else:
                assert x < bias + 1.0
    assert {f"o{k}{s}" for k in (1, 2, 3) for s in "pn"} <= set(v)
    # the input sources hold +-gain*x
    assert v["inp2"] == pytest.approx(-v["inn2"], rel=1e-15) and v["inp2"] > 0


@needs_ngspice
def test_ngspice_export_round_trip():
    """A trained copy exported by export_spice solves like the deck with the values edited."""
    deck = drn_deck(3, [5], 2, seed=5)
    nl = _mini_parse(deck)
    new = {"r1_2_3": 1.234567890123e-4, "r2_5_4": 7.654321e-5}
    edited = deck
    for name, g in new.items():
        edited = re.sub(rf"^({name} \S+ \S+) \S+$", rf"\g<1> {1 / g!r}", edited, flags=re.M)
    assert edited != deck
    v0, i0 = ngspice_operating_point(edited)
    v1, i1 = ngspice_operating_point(export_spice(nl, new))
    assert set(v0) == set(v1)
    for k in v0:
        assert v1[k] == pytest.approx(v0[k], rel=1e-14, abs=1e-15)  # measured: identical
    for k in i0:
        assert i1[k] == pytest.approx(i0[k], rel=1e-14, abs=1e-18)


@needs_ngspice
def test_matches_circuitprop_solver():
    from circuitprop import operating_point

    deck = drn_deck(3, [6], 2, seed=7)
    ref, _ = ngspice_operating_point(deck)
    op = operating_point(deck)
    for node, value in ref.items():
        # measured: 2 ulp (7.1e-15 at 18.9 V)
        assert op.voltages[node] == pytest.approx(value, rel=4e-15, abs=1e-14), node
