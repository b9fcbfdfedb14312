"""Power at the operating point (``op --json`` ``"power"``): energy balance, and each
source's delivered power against ngspice's ``V·I`` from the stored references."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import circuitprop

DECKS = Path(__file__).resolve().parent / "decks"

CONTROLLED = """controlled sources, a diode with RS, a current source
v1 1 0 dc 2
r1 1 2 1k
r2 2 0 2k
e1 3 0 2 0 3
r3 3 4 500
vm 4 5 0
r4 5 0 1k
f1 0 6 vm 2
r5 6 0 100
g1 0 7 2 0 1m
r6 7 0 1k
h1 8 0 vm 100
r7 8 0 1k
d1 7 9 dm
r8 9 0 10
i1 0 9 dc 1m
.model dm D(IS=1e-14 RS=2)
.end
"""


@pytest.mark.parametrize("deck", ["kup_current_sources", "own_diode_regions", "drn_32_20_8"])
def test_dissipation_equals_delivered_power_and_sources_match_ngspice(deck):
    path = DECKS / f"{deck}.cir"
    op = circuitprop.operating_point(path)
    p = op.power
    assert p["total"] > 0
    # measured: equal to 1e-14 relative
    assert abs(p["total"] - p["delivered"]) <= 1e-9 * p["total"]
    ref = json.loads(path.with_suffix(".json").read_text())["op"]
    netlist = circuitprop.load(path)
    volt = lambda n: 0.0 if n == "0" else ref["voltages"][n]  # noqa: E731
    checked = 0
    for el in netlist.elements:
        if el.kind == "v":
            want = -(volt(el.nodes[0]) - volt(el.nodes[1])) * ref["currents"][el.name]
            assert abs(p["elements"][el.name] - want) <= 1e-6 * abs(want) + 1e-15, el.name
            checked += 1
    assert checked >= 1


def test_power_of_controlled_sources_and_diodes_balances():
    op = circuitprop.operating_point(CONTROLLED)
    p = op.power
    assert set(p["elements"]) >= {"r1", "d1", "e1", "f1", "g1", "h1", "i1", "v1", "vm"}
    assert abs(p["total"] - p["delivered"]) <= 1e-9 * p["total"]
    # a resistor's dissipation is g·ΔV²; the 0 V ammeter delivers nothing
    dv = op.voltages["3"] - op.voltages["4"]
    assert p["elements"]["r3"] == pytest.approx(dv * dv / 500, rel=1e-12)
    assert p["elements"]["vm"] == 0.0
    assert p["elements"]["d1"] > 0


def test_op_json_has_power(capsys):
    from circuitprop.cli import main

    assert main(["op", str(DECKS / "kup_divider.cir"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out["power"]) == {"total", "delivered", "elements"}
