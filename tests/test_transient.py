"""Transient analysis (``circuitprop tran``): time functions, ``.tran``/``.ic`` parsing, the
SPICE2 parenthesised source groups, and every deck of tests/tran_decks against ngspice's
stored answer (and live ngspice where installed)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from ngspice_tools import have_ngspice, run_ngspice_tran

import circuitprop
from circuitprop._transient import transient
from circuitprop._waveforms import breakpoints, compile_waves, wave_values
from circuitprop.cli import main
from circuitprop.netlist._types import Waveform

DECKS = Path(__file__).resolve().parent / "tran_decks"
DECK_NAMES = sorted(p.stem for p in DECKS.glob("*.cir"))


def _wave(fn, args, t, delay=0.0, tstep=1e-9, tstop=1e-6):
    w = compile_waves([(Waveform(fn, tuple(args), delay), 0.0)], tstep, tstop)
    return np.asarray([float(wave_values(w, tt)[0]) for tt in np.atleast_1d(t)])


def test_time_functions():
    # PULSE(V1 V2 TD TR TF PW PER)
    t = np.array([0, 1e-9, 1.5e-9, 2e-9, 4e-9, 4.5e-9, 5e-9, 9e-9, 11.5e-9])
    got = _wave("pulse", [0, 2, 1e-9, 1e-9, 1e-9, 2e-9, 8e-9], t)
    np.testing.assert_allclose(got, [0, 0, 1, 2, 2, 1, 0, 0, 2], atol=1e-12)
    # zero rise/fall take tstep; missing width and period take tstop
    got = _wave("pulse", [1, 3, 0, 0, 0], [0.5e-9, 2e-9], tstep=1e-9)
    np.testing.assert_allclose(got, [2, 3])
    # SIN(VO VA FREQ TD THETA PHASE)
    t = np.array([0.5e-6, 1e-6, 1.3e-6])
    want = [1 + 2 * math.sin(math.radians(30)),
            1 + 2 * math.sin(math.radians(30)),
            1 + 2 * math.exp(-0.3e-6 * 1e5) * math.sin(2 * math.pi * 1e6 * 0.3e-6 + math.pi / 6)]
    np.testing.assert_allclose(_wave("sin", [1, 2, 1e6, 1e-6, 1e5, 30], t), want, rtol=1e-13)
    # EXP(V1 V2 TD1 TAU1 TD2 TAU2)
    t = np.array([0.5e-6, 2e-6, 5e-6])
    want = [0, 3 * (1 - math.exp(-1)), 3 * (1 - math.exp(-4)) - 3 * (1 - math.exp(-1 / 2))]
    np.testing.assert_allclose(_wave("exp", [0, 3, 1e-6, 1e-6, 4e-6, 2e-6], t), want,
                               rtol=1e-13, atol=1e-15)
    # PWL with a delay: held before the first and after the last corner
    t = np.array([0, 1.5e-6, 2.5e-6, 3e-6, 9e-6])
    np.testing.assert_allclose(_wave("pwl", [0, 1, 1e-6, 3, 2e-6, -1], t, delay=1e-6),
                               [1, 2, 1, -1, -1], atol=1e-12)


def test_breakpoints_are_the_corners():
    w = compile_waves([(Waveform("pulse", (0, 1, 1e-6, 1e-7, 2e-7, 1e-6, 3e-6)), 0.0),
                       (Waveform("pwl", (0, 0, 2.5e-6, 1)), 0.0), None], 1e-8, 5e-6)
    b = breakpoints(w, 5e-6)
    for t in (1e-6, 1.1e-6, 2.1e-6, 2.3e-6, 4e-6, 4.1e-6, 2.5e-6, 5e-6):
        assert np.min(np.abs(b - t)) < 1e-18, t


def test_source_waveforms_tran_and_ic_are_parsed(tmp_path):
    n = circuitprop.load(DECKS / "pwl_rlc.cir")
    vpp = n.element("vpp")
    assert vpp.value == 0.0 and vpp.wave == Waveform("pwl", (0, 0, 1e-6, 2, 5e-6, 2, 6e-6, -1,
                                                              12e-6, -1))
    assert n.tran.tstep == 5e-8 and n.tran.tstop == 3e-5 and not n.tran.uic
    u = circuitprop.load(DECKS / "rc_uic.cir")
    assert u.tran.uic and u.ic == {"a": 5.0, "b": 1.0}
    lc = circuitprop.load(DECKS / "lc_instance_ic.cir")
    assert lc.element("c1").ic == 0.5 and lc.element("l1").ic == 1e-3
    # SPICE2's groups, with the DC value first: the group's waveform; (AC ...) ignored
    deck = "t\nvpp 1 0 0.7v (PWL 0ns 3.0v 0.1ns -6.0v) (AC 1v)\nr1 1 0 1k\n.end\n"
    el = circuitprop.parse(deck).element("vpp")
    assert el.value == 0.7 and el.wave.fn == "pwl" and el.wave.args == (0, 3.0, 1e-10, -6.0)


@pytest.mark.parametrize("card, match", [
    (".tran 1u", "expects TSTEP TSTOP"),
    (".tran 0 1m", "TSTEP must be > 0"),
    (".tran 1u 1m 2m", r"TSTART must be in \[0, TSTOP\)"),
    (".ic v(zz)=1", "node 'zz' is not a node"),
    (".ic v(a) 1", "expected v\\(node\\)=value"),
])
def test_bad_tran_and_ic_cards_exit_2(tmp_path, capsys, card, match):
    deck = tmp_path / "bad.cir"
    deck.write_text(f"bad\nv1 a 0 1\nr1 a 0 1k\n{card}\n.end\n")
    assert main(["tran", str(deck)]) == 2
    err = capsys.readouterr().err
    assert f"{deck}:4:" in err and __import__("re").search(match, err), err


def test_a_deck_without_tran_exits_2(tmp_path, capsys):
    deck = tmp_path / "op.cir"
    deck.write_text("op only\nv1 a 0 1\nr1 a 0 1k\n.end\n")
    assert main(["tran", str(deck)]) == 2
    assert "no '.tran' card" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("name", DECK_NAMES)
def test_transient_matches_ngspice(name):
    """Every node within 1e-4 of its peak-to-peak swing + 1e-6 V of ngspice at ngspice's own
    time points (ours read linearly between our points). Measured: at most 0.34 of that
    allowance (diode_clamp_pulse), 0.46 on the NMOS inverter, 0.04-0.16 on the others;
    currents within 2e-4 of their swing."""
    ref = json.loads((DECKS / f"{name}.json").read_text())["tran"]
    ours = transient(DECKS / f"{name}.cir")
    tn = np.asarray(ref["time"])
    assert ours.time[0] == 0.0 and ours.time[-1] == pytest.approx(tn[-1], rel=1e-12)
    assert np.all(np.diff(ours.time) > 0)
    for node, want in ref["voltages"].items():
        want = np.asarray(want)
        got = np.interp(tn, ours.time, ours.voltages[node])
        allowed = 1e-4 * (want.max() - want.min()) + 1e-6
        assert np.max(np.abs(got - want)) <= allowed, node
    for name_i, want in ref["currents"].items():
        if (name, name_i) == ("nmos_inverter", "vin"):
            # the gate drive only charges the overlap capacitances: its current is the
            # derivative of charges (not error-controlled, in ngspice neither); measured up
            # to 6e-6 A apart on a 3.8e-5 A swing around the ramps
            continue
        want = np.asarray(want)
        got = np.interp(tn, ours.time, ours.currents[name_i])
        assert np.max(np.abs(got - want)) <= 1e-3 * (want.max() - want.min()) + 1e-9, name_i


@pytest.mark.skipif(not have_ngspice(), reason="ngspice not installed")
@pytest.mark.parametrize("name", DECK_NAMES)
def test_stored_transient_reference_is_fresh(name):
    ref = json.loads((DECKS / f"{name}.json").read_text())["tran"]
    live = run_ngspice_tran(DECKS / f"{name}.cir")
    assert len(live["time"]) == len(ref["time"])
    np.testing.assert_allclose(live["time"], ref["time"], rtol=1e-12)
    for node, v in ref["voltages"].items():
        np.testing.assert_allclose(live["voltages"][node], v, rtol=1e-9, atol=1e-12)


def test_tran_json_and_raw(tmp_path, capsys):
    raw = tmp_path / "rc.raw"
    assert main(["tran", str(DECKS / "rc_uic.cir"), "--json", "--raw", str(raw)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"time", "voltages", "currents", "stats"}
    assert set(out["voltages"]) == {"a", "b"} and out["stats"]["accepted_steps"] > 10
    f = circuitprop.read_raw(raw)
    assert f.plotname == "Transient Analysis"
    np.testing.assert_array_equal(f["time"], out["time"])
    np.testing.assert_array_equal(f["v(b)"], out["voltages"]["b"])
    spicelib = pytest.importorskip("spicelib")
    r = spicelib.RawRead(str(raw), dialect="ngspice")
    np.testing.assert_array_equal(np.asarray(r.get_trace("v(a)").get_wave()),
                                  out["voltages"]["a"])
    # the exact answer of the two discharging RC sections (uic from .ic): 2e-5 of the swing
    import scipy.linalg as sl

    c = np.diag([1e-6, 0.5e-6])
    g = np.array([[1e-3, -1e-3], [-1e-3, 1.5e-3]])
    a = -np.linalg.solve(c, g)
    t = np.asarray(out["time"])
    exact = np.array([(sl.expm(a * tt) @ [5.0, 1.0])[1] for tt in t[::25]])
    assert np.max(np.abs(np.asarray(out["voltages"]["b"])[::25] - exact)) < 1e-4 * 1.6


@pytest.mark.parametrize("model, match", [
    (".model dm D(IS=1e-14 CJO=2p)", "charge storage \\(CJO\\)"),
    (".model dm D(IS=1e-14 TT=5n)", "charge storage \\(TT\\)"),
])
def test_transients_refuse_diode_charge_storage(tmp_path, capsys, model, match):
    deck = tmp_path / "d.cir"
    deck.write_text(f"d\nv1 a 0 sin(0 1 1k)\nr1 a b 1k\nd1 b 0 dm\n{model}\n.tran 1u 1m\n.end\n")
    assert main(["op", str(deck)]) == 0  # no effect at DC
    capsys.readouterr()
    assert main(["tran", str(deck)]) == 2
    err = capsys.readouterr().err
    assert f"{deck}:4:" in err and __import__("re").search(match, err), err


def test_transients_refuse_mosfet_gate_and_junction_charges(tmp_path, capsys):
    deck = tmp_path / "m.cir"
    deck.write_text("m\nvd d 0 5\nvg g 0 pulse(0 5 1n 1n 1n 5n 20n)\nrd d x 1k\n"
                    "m1 x g 0 0 nm\n.model nm nmos (level=1 vto=1 tox=2e-8)\n.tran 0.1n 20n\n"
                    ".end\n")
    assert main(["tran", str(deck)]) == 2
    assert "TOX (the Meyer gate charges)" in capsys.readouterr().err
