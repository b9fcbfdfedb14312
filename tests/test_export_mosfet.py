"""Export of level-1 MOSFETs to flat ngspice decks (``circuitprop.export.export_spice``).

For every deck ``tests/decks/mos_*.cir``: parse, export, parse the export again, and

* the re-parsed netlist is the original (elements, MOSFET instances, models with their
  derived VTO KP GAMMA PHI, TOX and COX; only source locations and the unused U0 differ) and
  compiles to the identical circuit (every array of the compiled circuit and of its default
  values bit for bit);
* circuitprop's operating point (and ``.dc`` sweep) of the export equals the original's to
  1e-12 relative (it is identical), solved for two decks: solving compiles one program per
  deck (about 3 s) and the compiled circuits are already equal bit for bit;
* where ngspice is installed, ngspice's answer for the export matches the stored reference
  JSON (ngspice on the original deck) at the tolerance ``test_parity.py`` uses to call a
  stored reference fresh, with the same node and branch names.

And: the instance and card text, IC/OFF/M/geometry round trips, TOX models (derived values
written, TOX kept for the Meyer charges of ngspice's transients), refusals.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import subprocess
import tempfile
from pathlib import Path

import jax
import numpy as np
import pytest
from ngspice_tools import compare, have_ngspice, parse_raw, run_ngspice

from circuitprop._errors import NetlistError
from circuitprop.export import export_spice
from circuitprop.netlist import (
    DiodeModel,
    Element,
    Mosfet,
    MosfetModel,
    Netlist,
    load,
    parse,
)

DECKS_DIR = Path(__file__).resolve().parent / "decks"
MOS_DECKS = sorted(DECKS_DIR.glob("mos_*.cir"))
#: decks whose operating point / sweep is solved again
FAST_OP = {"mos_params"}
FAST_DC = {"mos_dc_output"}

needs_ngspice = pytest.mark.skipif(not have_ngspice(), reason="ngspice not installed")


def _params(fast: set[str], dc_only: bool = False) -> list:
    """The decks solved again (the others compile bit for bit to the same circuit,
    :func:`test_reparsed_export_is_the_same_netlist`: solving them again proves nothing)."""
    out = []
    for deck in MOS_DECKS:
        if deck.stem not in fast or (dc_only and not load(deck).dc):
            continue
        out.append(pytest.param(deck, id=deck.stem))
    return out


def _round_trip(deck: Path) -> tuple[Netlist, Netlist, str]:
    nl = load(deck)
    text = export_spice(nl, include_dc=True)
    return nl, parse(text, f"{deck.stem}.exported.cir"), text


def _norm_model(m):
    if isinstance(m, MosfetModel):
        # U0 only derives KP, and KP is always written: not exported
        return dataclasses.replace(m, location=None, u0=0.0)
    return dataclasses.replace(m, location=None)


def _norm_element(el: Element) -> Element:
    mos = el.mosfet
    if mos is not None:
        mos = dataclasses.replace(mos, model=_norm_model(mos.model))
    return dataclasses.replace(el, location=None, mosfet=mos)


def _assert_same_values(a: dict, b: dict, what: str, rtol: float = 1e-12) -> None:
    assert set(a) == set(b), what
    for k in a:
        x = np.asarray(a[k], dtype=float)
        y = np.asarray(b[k], dtype=float)
        assert x.shape == y.shape, (what, k)
        assert np.all((x == y) | (np.abs(x - y) <= rtol * np.abs(y))), (what, k, x, y)


def test_corpus():
    assert len(MOS_DECKS) == 15
    assert all(d.with_suffix(".json").exists() for d in MOS_DECKS)


# ----------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("deck", MOS_DECKS, ids=[d.stem for d in MOS_DECKS])
def test_reparsed_export_is_the_same_netlist(deck: Path):
    from circuitprop._api import prepare

    nl, again, _ = _round_trip(deck)
    assert again.title == nl.title
    assert [_norm_element(e) for e in again.elements] == [_norm_element(e) for e in nl.elements]
    assert {k: _norm_model(m) for k, m in again.models.items()} == {
        k: _norm_model(m) for k, m in nl.models.items()
    }
    assert [dataclasses.replace(s, location=None) for s in again.dc] == [
        dataclasses.replace(s, location=None) for s in nl.dc
    ]
    assert again.gmin == nl.gmin
    # what the solvers get: the compiled circuits and default values, bit for bit
    (c1, i1), (c2, i2) = prepare(nl), prepare(again)
    for x, y in ((c1, c2), (i1.defaults, i2.defaults)):
        lx, tx = jax.tree_util.tree_flatten(x)
        ly, ty = jax.tree_util.tree_flatten(y)
        assert tx == ty
        for u, v in zip(lx, ly):
            u, v = np.asarray(u), np.asarray(v)
            assert u.dtype == v.dtype and u.shape == v.shape
            assert np.array_equal(u, v, equal_nan=u.dtype.kind == "f")
    assert (i1.nodes, i1.reported, i1.currents, i1.mosfets) == (
        i2.nodes, i2.reported, i2.currents, i2.mosfets)


@pytest.mark.parametrize("deck", _params(FAST_OP))
def test_operating_point_of_export_is_identical(deck: Path):
    import circuitprop

    nl, again, _ = _round_trip(deck)
    a = circuitprop.operating_point(nl)
    b = circuitprop.operating_point(again)
    _assert_same_values(b.voltages, a.voltages, "voltages")
    _assert_same_values(b.currents, a.currents, "currents")


@pytest.mark.parametrize("deck", _params(FAST_DC, dc_only=True))
def test_dc_sweep_of_export_is_identical(deck: Path):
    import circuitprop

    nl, again, text = _round_trip(deck)
    assert ".dc " in text
    a = circuitprop.dc_sweep(nl)
    b = circuitprop.dc_sweep(again)
    assert b.sweep["values"] == a.sweep["values"]
    _assert_same_values(b.voltages, a.voltages, "voltages")
    _assert_same_values(b.currents, a.currents, "currents")


@needs_ngspice
@pytest.mark.parametrize("deck", MOS_DECKS, ids=[d.stem for d in MOS_DECKS])
def test_ngspice_on_export_matches_reference(deck: Path):
    stored = json.loads(deck.with_suffix(".json").read_text())
    _, _, text = _round_trip(deck)
    live = run_ngspice(text, analysis="both")
    # test_parity.test_stored_reference_is_fresh: ten times ngspice's convergence tolerances
    problems = compare(live["op"], stored["op"], rtol=1e-11, atol_v=1e-14, atol_i=1e-17)
    for group in ("voltages", "currents"):
        extra = set(live["op"][group]) - set(stored["op"][group])
        problems += [f"{group}[{k}]: not in the reference" for k in sorted(extra)]
    assert ("dc" in live) == ("dc" in stored)
    if "dc" in live:
        problems += compare(live["dc"], stored["dc"], rtol=1e-11, atol_v=1e-14, atol_i=1e-17)
    assert not problems, f"{deck.name}: " + "\n".join(problems[:15])


# ----------------------------------------------------------------------------- text

GEOMETRY = """instance parameters
vdd vdd 0 5
vg g 0 2
m1 d1 g s1 0 nrd l=2u w=10u ad=40p as=25p pd=30u ps=20u nrd=3 nrs=2 m=2 off ic=1,2,3
r1 vdd d1 10k
r1s s1 0 1k
m2 d2 g 0 0 nsq l=3u w=12u nrd=4 nrs=2.5 icvgs=1.5
r2 vdd d2 10k
m3 d3 0 vdd vdd pj l=2u w=10u ad=40p as=30p icvds=-1 icvbs=0.5
r3 d3 0 10k
m4 d4 g 0 0 nrd ic=0.5
r4 vdd d4 10k
.model nrd nmos (level=1 vto=0.8 kp=60u gamma=0.4 phi=0.65 lambda=0.03 rd=100 rs=50
+ cbd=1f cbs=2f cgso=1n cgdo=2n cgbo=3n pb=0.75 fc=0.4 l=4u w=8u)
.model nsq nmos (level=1 vto=0.7 kp=50u rsh=20 cj=1e-4 mj=0.45 cjsw=1e-10 mjsw=0.3)
.model pj pmos (level=1 vto=-0.9 kp=25u js=1e-4 is=1e-15 ld=0.1u lambda=0.04)
.options defl=5u defw=7u
.end
"""


def test_card_and_instance_text():
    nl = parse(GEOMETRY)
    lines = export_spice(nl).splitlines()
    assert (
        "m1 d1 g s1 0 nrd W=1e-05 L=2e-06 AD=4e-11 AS=2.5e-11 PD=3e-05 PS=2e-05 NRD=3.0 "
        "NRS=2.0 M=2.0 OFF IC=1.0,2.0,3.0" in lines
    )
    assert "m2 d2 g 0 0 nsq W=1.2e-05 L=3e-06 NRD=4.0 NRS=2.5 ICVGS=1.5" in lines
    assert "m3 d3 0 vdd vdd pj W=1e-05 L=2e-06 AD=4e-11 AS=3e-11 ICVDS=-1.0 ICVBS=0.5" in lines
    # L and W from the model card win over .options defl/defw; both resolved on the line
    assert "m4 d4 g 0 0 nrd W=8e-06 L=4e-06 IC=0.5" in lines
    k = lines.index(".model nrd NMOS (LEVEL=1 VTO=0.8 KP=6e-05 GAMMA=0.4 PHI=0.65 LAMBDA=0.03")
    assert lines[k + 1] == "+ RD=100.0 RS=50.0 RSH=0.0 IS=1e-14 JS=0.0 LD=0.0"
    assert lines[k + 2] == (
        "+ CBD=1e-15 CBS=2e-15 CJ=0.0 MJ=0.5 CJSW=0.0 MJSW=0.5 PB=0.75 FC=0.4 "
        "CGSO=1e-09 CGDO=2e-09 CGBO=3e-09)"
    )
    assert any(line.startswith(".model pj PMOS (LEVEL=1 VTO=-0.9 ") for line in lines)
    assert sum(line.startswith(".model ") for line in lines) == 3  # one card per model
    assert not any(line.startswith(".options") for line in lines)


def test_instance_data_round_trips():
    nl = parse(GEOMETRY)
    again = parse(export_spice(nl))
    assert [_norm_element(e) for e in again.elements] == [_norm_element(e) for e in nl.elements]
    m = {e.name: e.mosfet for e in again.elements if e.kind == "m"}
    assert (m["m1"].off, m["m1"].ic, m["m1"].m, m["m1"].ps) == (True, (1.0, 2.0, 3.0), 2.0, 2e-5)
    assert m["m2"].ic == (None, 1.5, None) and not m["m2"].off
    assert m["m3"].ic == (-1.0, None, 0.5)
    assert (m["m4"].ic, m["m4"].l, m["m4"].w) == ((0.5, None, None), 4e-6, 8e-6)


@needs_ngspice
def test_ngspice_instance_parameters():
    """ngspice solves the export of GEOMETRY (RD RS, RSH with NRD NRS, JS with AD AS, M,
    OFF, IC, card and option defaults) to its own answer for the original."""
    want = run_ngspice(GEOMETRY)
    got = run_ngspice(export_spice(parse(GEOMETRY)))
    problems = compare(got, want, rtol=1e-11, atol_v=1e-14, atol_i=1e-17)
    assert set(got["voltages"]) == set(want["voltages"])
    assert not problems, problems


# ----------------------------------------------------------------------------- TOX

TOX_TRAN = """Meyer charges: TOX, NSUB, junction and overlap capacitances
vdd vdd 0 5
vin g 0 pulse(0 5 1n 1n 1n 20n 50n)
m1 d g 0 0 nsub l=3u w=6u ad=40p as=40p pd=20u ps=20u
r1 vdd d 10k
m2 d2 g vdd vdd psub l=3u w=12u
r2 d2 0 10k
.model nsub nmos (level=1 tox=20n nsub=2e16 nss=1e10 u0=500 cj=1e-4 cjsw=1e-10 cgso=1e-10
+ cgdo=1e-10 cgbo=1e-10)
.model psub pmos (level=1 tox=20n nsub=5e15 tpg=-1 u0=200 lambda=0.05 cbd=1e-14 cbs=2e-14)
.tran 0.1n 60n
.end
"""


def test_tox_models_round_trip():
    nl = load(DECKS_DIR / "mos_params.cir")
    text = export_spice(nl)
    again = parse(text)
    models = {e.model: e.mosfet.model for e in nl.elements if e.kind == "m"}
    back = {e.model: e.mosfet.model for e in again.elements if e.kind == "m"}
    for name in ("ntox", "nsub", "psub"):
        a, b = models[name], back[name]
        assert a.tox and a.cox > 0
        # the derived values, TOX and COX exactly
        assert (b.polarity, b.vto, b.kp, b.gamma, b.phi, b.tox, b.cox, b.ld) == (
            a.polarity, a.vto, a.kp, a.gamma, a.phi, a.tox, a.cox, a.ld)
        card = text[text.index(f".model {name} "):].split("\n.model")[0].split("\nv")[0]
        assert f"TOX={a.tox!r}" in card and f"KP={a.kp!r}" in card and f"VTO={a.vto!r}" in card
        assert not re.search(r"\b(U0|UO|NSUB|NSS|TPG)=", card, re.IGNORECASE), card
    # NSUB derived VTO, GAMMA, PHI (not written as given on the original card)
    assert models["nsub"].gamma > 0 and models["nsub"].vto != 0.0


def test_tox_transient_refusal_is_kept():
    """circuitprop's transients refuse TOX (Meyer charges): the export still has TOX."""
    from circuitprop._transient import tran_circuit

    for deck in (TOX_TRAN, export_spice(parse(TOX_TRAN))):
        with pytest.raises(NetlistError, match="TOX|CJ|CBD"):
            tran_circuit(parse(deck), constant=True)


def _ngspice_tran(text: str) -> np.ndarray:
    with tempfile.TemporaryDirectory(prefix="circuitprop-tran-") as tmp:
        cir, raw = Path(tmp) / "deck.cir", Path(tmp) / "out.raw"
        cir.write_text(text.replace(".end", ".options filetype=ascii\n.end"))
        proc = subprocess.run(["ngspice", "-n", "-b", "-r", str(raw), str(cir)],
                              capture_output=True, text=True, timeout=60)
        assert raw.exists(), proc.stdout + proc.stderr
        (plot,) = [p for p in parse_raw(raw) if p["plotname"].lower().startswith("transient")]
        names = [n.lower() for n, _ in plot["variables"]]
        vals = np.asarray(plot["values"])
        return vals[:, [names.index(n) for n in ("time", "v(d)", "v(d2)")]]


@needs_ngspice
def test_ngspice_transient_keeps_meyer_charges():
    """The exported card (derived VTO KP GAMMA PHI, TOX, capacitances) gives ngspice's own
    transient of the original; without TOX (no Meyer charges) it would not."""
    exported = export_spice(parse(TOX_TRAN))
    # the exporter writes DC sources and no .tran: put the pulse and the .tran back
    exported = exported.replace("vin g 0 DC 0.0", "vin g 0 pulse(0 5 1n 1n 1n 20n 50n)")
    exported = exported.replace(".op\n", ".tran 0.1n 60n\n")
    ref = _ngspice_tran(TOX_TRAN)
    got = _ngspice_tran(exported)
    for k in (1, 2):
        assert np.max(np.abs(np.interp(ref[:, 0], got[:, 0], got[:, k]) - ref[:, k])) < 1e-6
    no_tox = _ngspice_tran(re.sub(r" TOX=\S+", "", exported))
    worst = max(np.max(np.abs(np.interp(ref[:, 0], no_tox[:, 0], no_tox[:, k]) - ref[:, k]))
                for k in (1, 2))
    assert worst > 0.1  # the check above would see a lost TOX


# ----------------------------------------------------------------------------- hand-built


def _mos(name: str, model: MosfetModel, key: str | None = None, nodes=("d", "g", "0", "0")):
    return Element("m", name, nodes, model=key or model.name, mosfet=Mosfet(model, l=2e-6, w=1e-5))


def test_models_once_and_clashing_keys():
    nm = MosfetModel("nm", vto=0.8, kp=6e-5)
    other = MosfetModel("nm", vto=0.5, kp=6e-5)
    nl = Netlist(
        "t",
        [Element("v", "v1", ("d", "0"), 1.0), Element("v", "v2", ("g", "0"), 2.0),
         _mos("m1", nm), _mos("m2", nm), _mos("m3", other)],
        # an equal MOSFET model already among the netlist's models is written once
        models={"nm": MosfetModel("nm", vto=0.8, kp=6e-5), "dm": DiodeModel("dm")},
    )
    lines = export_spice(nl).splitlines()
    cards = [line.split()[1] for line in lines if line.startswith(".model ")]
    assert cards == ["nm", "dm", "nm_2"]
    assert "m1 d g 0 0 nm W=1e-05 L=2e-06" in lines
    assert "m2 d g 0 0 nm W=1e-05 L=2e-06" in lines
    assert "m3 d g 0 0 nm_2 W=1e-05 L=2e-06" in lines
    again = parse("\n".join(lines))
    assert again.element("m3").mosfet.model.vto == 0.5
    assert again.element("m1").mosfet.model.vto == 0.8


def test_odd_model_name():
    nm = MosfetModel("n(1)", polarity=-1)
    lines = export_spice(Netlist("t", [_mos("m1", nm)])).splitlines()
    assert any(line.startswith(".model n_1_ PMOS (LEVEL=1 ") for line in lines)
    assert "m1 d g 0 0 n_1_ W=1e-05 L=2e-06" in lines


@pytest.mark.parametrize(
    "netlist, match",
    [
        (Netlist("t", [Element("m", "m1", ("d", "g", "0", "0"), model="nm")]), "no model data"),
        (Netlist("t", [_mos("m1", MosfetModel("nm"), nodes=("d", "g", "0"))]), "not 4"),
        (Netlist("t", [_mos("m1", MosfetModel("nm", polarity=0))]), "polarity 0"),
        (Netlist("t", [_mos("m1", MosfetModel("nm", vto=math.nan))]), "non-finite"),
        (Netlist("t", [Element("d", "d1", ("a", "0"), model="nm")],
                 models={"nm": MosfetModel("nm")}), "not a diode model"),
        (Netlist("t", [], models={"x": object()}), "unknown type"),
    ],
)
def test_refusals(netlist, match):
    with pytest.raises(NetlistError, match=match):
        export_spice(netlist)
