"""The physical settle (``op --method relax --physical``) and ``[train] physical_timing``:
settling time and energy against ngspice's ``.tran … uic`` of the same start."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import circuitprop
from circuitprop.cli import main

SETTLE = Path(__file__).resolve().parent / "settle_decks"


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(p.stem for p in SETTLE.glob("*.cir")))
def test_physical_settle_matches_ngspice(name):
    """Settling time and energy of a settle from 0 V against ngspice's ``.tran … uic`` of
    the same deck with the same node capacitances: measured within 0.09 % (the check
    allows 2 %)."""
    from circuitprop._transient import NODE_CAP, SETTLE_TOL, settle, source_held_nodes

    deck = SETTLE / f"{name}.cir"
    ours = settle(deck)
    ref = json.loads(deck.with_suffix(".json").read_text())["tran"]
    t = np.asarray(ref["time"])
    v = {k: np.asarray(x) for k, x in ref["voltages"].items()}
    dev = np.max([np.abs(v[k] - ours.final[k]) for k in ours.final], axis=0)
    k = np.nonzero(dev > SETTLE_TOL)[0][-1]
    t_settle = t[k] + (t[k + 1] - t[k]) * (dev[k] - SETTLE_TOL) / (dev[k] - dev[k + 1])
    assert ours.settling_time == pytest.approx(t_settle, rel=0.02)
    # ngspice's energy: what the sources delivered minus what the capacitors hold (with
    # uic ngspice's first point is its first step, not t = 0: the power there is held back
    # to t = 0)
    net = circuitprop.load(deck)
    upto = t <= t_settle
    at = lambda a: np.concatenate([[a[0]], a[upto], [np.interp(t_settle, t, a)]])  # noqa: E731
    tt = at(t)
    tt[0] = 0.0
    delivered = 0.0
    volt = lambda n: np.zeros_like(t) if n == "0" else v[n]  # noqa: E731
    for el in net.elements:
        if el.kind == "v":
            p = -(volt(el.nodes[0]) - volt(el.nodes[1])) * np.asarray(ref["currents"][el.name])
            pp = at(p)
            delivered += float(np.sum(0.5 * (pp[1:] + pp[:-1]) * np.diff(tt)))
    held = source_held_nodes(net)
    caps = [(el.nodes[0], el.nodes[1], el.value) for el in net.elements if el.kind == "c"]
    caps += [(n, "0", NODE_CAP) for n in net.nodes() if n not in held]
    stored = sum(0.5 * c * float(np.interp(t_settle, t, volt(a) - volt(b))) ** 2
                 for a, b, c in caps)
    assert ours.energy == pytest.approx(delivered - stored, rel=0.02)


def test_op_physical_reports_settling_time_and_energy(capsys):
    assert main(["op", str(SETTLE / "rc_diode.cir"), "--method", "relax", "--physical",
                 "--json"]) == 0
    st = json.loads(capsys.readouterr().out)["stats"]
    assert st["physical"] is True and st["node_cap"] == 1e-12 and st["settle_tol"] == 1e-3
    # measured: 50.9 µs and 54.7 nJ (ngspice's .tran of the same start: 50.95 µs, 54.75 nJ)
    assert st["settling_time"] == pytest.approx(5.09e-5, rel=0.01)
    assert st["energy"] == pytest.approx(5.47e-8, rel=0.01)
    assert main(["op", str(SETTLE / "rc_diode.cir"), "--physical"]) == 2
    assert "--method relax" in capsys.readouterr().err




def test_training_records_physical_timing(tmp_path):
    """``[train] physical_timing``: the trained XOR network's inference settles in about
    2 ns on 1 pF node capacitances and costs about 44 pJ (measured), which is its free
    phase's power times the settle (an RC-dominated charge-up)."""
    xor = Path(__file__).resolve().parents[1] / "examples" / "xor"
    text = (xor / "experiment.toml").read_text().replace(
        'netlist = "xor.cir"', f'netlist = "{xor / "xor.cir"}"').replace(
        "[train]", "[train]\nphysical_timing = true")
    exp = tmp_path / "e.toml"
    exp.write_text(text)
    assert main(["train", str(exp), "--out", str(tmp_path / "r"), "--epochs", "2",
                 "--no-progress"]) == 0
    m = json.loads((tmp_path / "r" / "metrics.json").read_text())
    pt = m["physical_timing"]
    assert pt["samples"] == 4 and pt["node_cap"] == 1e-12
    assert 1e-10 < pt["inference_settling_time_mean"] <= pt["inference_settling_time_max"] < 1e-7
    # the energy of a settle is at most the largest free-phase power over the settle
    assert 0 < pt["inference_energy_mean"] <= (m["power"]["free_max"]
                                              * pt["inference_settling_time_max"])
    assert pt["step_energy_bound"] == pytest.approx(3 * pt["inference_energy_mean"])
