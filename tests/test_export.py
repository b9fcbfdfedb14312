"""Export to flat SPICE decks: text, errors, and round trips through ngspice."""

from __future__ import annotations

import math
import shutil

import pytest

from circuitprop._errors import NetlistError
from circuitprop.export import export_spice, ngspice_operating_point, write_spice
from circuitprop.netlist._types import DiodeModel, Element, Netlist, Sweep

needs_ngspice = pytest.mark.skipif(shutil.which("ngspice") is None, reason="ngspice not installed")


def _parser():
    try:
        from circuitprop.netlist import parse
    except ImportError:
        return None
    return parse


needs_parser = pytest.mark.skipif(
    _parser() is None, reason="circuitprop.netlist.parse not available"
)

# A deck with nested subcircuits, local models, every DC element kind and m= on R and D.
# (ngspice 39 rejects a positional diode area inside a subcircuit, so area= is used.)
ORIGINAL = """subckt round trip
.model dtop D(IS=2e-14 N=1.2)
v1 in 0 dc 5
vs in2 0 3
x1 in mid1 stage
x2 mid1 out stage2
r9 out 0 2k m=2
i1 0 out 0.5m
e1 eo 0 mid1 0 0.5
re eo 0 1k
g1 0 go out 0 1m
rg go 0 1k
f1 0 fo vs 2
rf fo 0 1k
h1 ho 0 vs 100
rh ho 0 1k
rs in2 0 1k
l1 out lo 1u
rl lo 0 5k
c1 out 0 1n
d1 out 0 dtop
.subckt stage a b
.model dm D(IS=1e-14 N=1.5 RS=10 BV=5 IBV=1e-4)
r1 a m 1k
r2 m b 1k
d1 m 0 dm area=2 m=1.5
.ends
.subckt stage2 a b
x1 a b stage
vm b q 0
r3 q 0 3k
.ends
.op
.end
"""


def _flat_by_hand() -> Netlist:
    """The flattened netlist of ORIGINAL, as the parser must produce it."""
    dm = dict(is_=1e-14, n=1.5, rs=10.0, bv=5.0, ibv=1e-4)
    E = Element
    return Netlist(
        title="subckt round trip",
        elements=[
            E("v", "v1", ("in", "0"), 5.0),
            E("v", "vs", ("in2", "0"), 3.0),
            E("r", "r.x1.r1", ("in", "x1.m"), 1000.0),
            E("r", "r.x1.r2", ("x1.m", "mid1"), 1000.0),
            E("d", "d.x1.d1", ("x1.m", "0"), model="x1.dm", area=2.0, m=1.5),
            E("r", "r.x2.x1.r1", ("mid1", "x2.x1.m"), 1000.0),
            E("r", "r.x2.x1.r2", ("x2.x1.m", "out"), 1000.0),
            E("d", "d.x2.x1.d1", ("x2.x1.m", "0"), model="x2.x1.dm", area=2.0, m=1.5),
            E("v", "v.x2.vm", ("out", "x2.q"), 0.0),
            E("r", "r.x2.r3", ("x2.q", "0"), 3000.0),
            E("r", "r9", ("out", "0"), 1000.0),
            E("i", "i1", ("0", "out"), 5e-4),
            E("e", "e1", ("eo", "0", "mid1", "0"), 0.5),
            E("r", "re", ("eo", "0"), 1000.0),
            E("g", "g1", ("0", "go", "out", "0"), 1e-3),
            E("r", "rg", ("go", "0"), 1000.0),
            E("f", "f1", ("0", "fo"), 2.0, control="vs"),
            E("r", "rf", ("fo", "0"), 1000.0),
            E("h", "h1", ("ho", "0"), 100.0, control="vs"),
            E("r", "rh", ("ho", "0"), 1000.0),
            E("r", "rs", ("in2", "0"), 1000.0),
            E("l", "l1", ("out", "lo"), 1e-6),
            E("r", "rl", ("lo", "0"), 5000.0),
            E("c", "c1", ("out", "0"), 1e-9),
            E("d", "d1", ("out", "0"), model="dtop"),
        ],
        models={
            "dtop": DiodeModel("dtop", is_=2e-14, n=1.2),
            "x1.dm": DiodeModel("x1.dm", **dm),
            "x2.x1.dm": DiodeModel("x2.x1.dm", **dm),
        },
        op=True,
    )


def _assert_same(a: dict, b: dict, rtol=1e-12, atol=1e-15):
    assert set(a) == set(b)
    for k in a:
        assert math.isclose(a[k], b[k], rel_tol=rtol, abs_tol=atol), (k, a[k], b[k])


# ----------------------------------------------------------------------------- text


def test_export_text():
    text = export_spice(_flat_by_hand())
    lines = text.splitlines()
    assert lines[0] == "subckt round trip"
    assert ".model x1.dm D(IS=1e-14 N=1.5 RS=10.0 BV=5.0 IBV=0.0001 NBV=1.5)" in lines
    assert ".model dtop D(IS=2e-14 N=1.2 RS=0.0 IBV=0.001 NBV=1.2)" in lines  # no BV: infinite
    assert "d.x1.d1 x1.m 0 x1.dm area=2.0 m=1.5" in lines
    assert "d1 out 0 dtop" in lines
    assert "r9 out 0 1000.0" in lines
    assert "v1 in 0 DC 5.0" in lines and "i1 0 out DC 0.0005" in lines
    assert "e1 eo 0 mid1 0 0.5" in lines and "g1 0 go out 0 0.001" in lines
    assert "f1 0 fo vs 2.0" in lines and "h1 ho 0 vs 100.0" in lines
    assert "l1 out lo 1e-06" in lines and "c1 out 0 1e-09" in lines
    assert not any(line.startswith(".options") for line in lines)
    assert lines[-2:] == [".op", ".end"]


def test_export_overrides_and_digits():
    nl = _flat_by_hand()
    g = 1.0 / 3.0e3
    text = export_spice(nl, {"R9": g, "r.x2.r3": 7e-4}, sources={"V1": 4.25}, title="trained")
    lines = text.splitlines()
    assert lines[0] == "trained"
    r9 = next(line for line in lines if line.startswith("r9 "))
    assert float(r9.split()[-1]) == 1.0 / g  # 17 significant digits survive
    assert f"r.x2.r3 x2.q 0 {1.0 / 7e-4!r}" in lines
    assert "v1 in 0 DC 4.25" in lines
    # the netlist itself is untouched
    assert nl.element("r9").value == 1000.0


def test_export_options_dc_and_names():
    nl = _flat_by_hand()
    nl.options["gmin"] = 1e-10
    nl.dc.append(Sweep("v1", 0.0, 1.0, 0.5))
    nl.models["odd(name)"] = DiodeModel("odd(name)")
    nl.elements.append(Element("d", "d9", ("out", "0"), model="odd(name)"))
    text = export_spice(nl, include_dc=True, title="a\nmultiline   title")
    assert text.splitlines()[0] == "a multiline title"
    assert ".options gmin=1e-10" in text
    assert ".dc v1 0.0 1.0 0.5" in text
    assert ".model odd_name_ D(" in text and "d9 out 0 odd_name_" in text
    assert ".dc" not in export_spice(nl)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"conductances": {"r404": 1.0}}, "'r404' is not a resistor"),
        ({"conductances": {"v1": 1.0}}, "'v1' is not a resistor"),
        ({"conductances": {"r9": 0.0}}, "must be positive and finite"),
        ({"conductances": {"r9": -1e-3}}, "must be positive and finite"),
        ({"conductances": {"r9": math.inf}}, "must be positive and finite"),
        ({"sources": {"r9": 1.0}}, "'r9' is not a V or I source"),
        ({"sources": {"v1": math.nan}}, "non-finite"),
    ],
)
def test_export_errors(kwargs, match):
    with pytest.raises(NetlistError, match=match):
        export_spice(_flat_by_hand(), **kwargs)


def test_export_bad_elements():
    nl = Netlist("t", [Element("q", "q1", ("a", "0"))])
    with pytest.raises(NetlistError, match="unknown kind"):
        export_spice(nl)
    nl = Netlist("t", [Element("d", "d1", ("a", "0"), model="nope")])
    with pytest.raises(NetlistError, match="unknown model 'nope'"):
        export_spice(nl)
    nl = Netlist("t", [Element("r", "r1", ("a", "0"), 0.0)])
    with pytest.raises(NetlistError, match="resistance 0.0"):
        export_spice(nl)
    nl = Netlist("t", [Element("f", "f1", ("a", "0"), 1.0)])
    with pytest.raises(NetlistError, match="no controlling source"):
        export_spice(nl)


def test_write_spice(tmp_path):
    p = write_spice(tmp_path / "trained.cir", _flat_by_hand(), {"r9": 1e-3})
    assert p.read_text() == export_spice(_flat_by_hand(), {"r9": 1e-3})


# ----------------------------------------------------------------------------- ngspice


@needs_ngspice
def test_ngspice_round_trip_hand_flattened():
    """ngspice accepts dotted flat names and solves the export to the original's point."""
    v0, i0 = ngspice_operating_point(ORIGINAL)
    v1, i1 = ngspice_operating_point(export_spice(_flat_by_hand()))
    assert "x2.x1.m" in v0 and "v.x2.vm" in i0 and "l1" in i0
    _assert_same(v0, v1)
    _assert_same(i0, i1)


@needs_ngspice
def test_ngspice_trained_conductances():
    g = {"r9": 1.0 / 1234.5678901234567, "r.x2.r3": 1.0 / 2.2e3}
    ref = ORIGINAL.replace("r9 out 0 2k m=2", "r9 out 0 1234.5678901234567")
    ref = ref.replace("r3 q 0 3k", "r3 q 0 2.2k")
    v0, i0 = ngspice_operating_point(ref)
    v1, i1 = ngspice_operating_point(export_spice(_flat_by_hand(), g))
    _assert_same(v0, v1, rtol=1e-10)
    _assert_same(i0, i1, rtol=1e-10)


@needs_ngspice
def test_ngspice_gmin_option():
    nl = Netlist(
        "gmin",
        [
            Element("v", "v1", ("a", "0"), 2.0),
            Element("r", "r1", ("a", "b"), 1e6),
            Element("d", "d1", ("0", "b"), model="d"),
        ],
        models={"d": DiodeModel("d")},
        options={"gmin": 1e-6},
    )
    v_hi, _ = ngspice_operating_point(export_spice(nl))
    nl.options.clear()
    v_lo, _ = ngspice_operating_point(export_spice(nl))
    # reverse-biased diode: gmin 1e-6 S against 1 MOhm halves the voltage
    # (measured 5.0e-9 and 1.0e-6 off: the diode's reverse current, the default gmin)
    assert v_hi["b"] == pytest.approx(1.0, rel=5e-8)
    assert v_lo["b"] == pytest.approx(2.0, rel=1e-5)


@needs_ngspice
def test_ngspice_errors():
    from circuitprop._errors import CircuitpropError

    with pytest.raises(CircuitpropError, match="ngspice"):
        ngspice_operating_point("bad\nq1 a b c qmod\n.end\n")


@needs_parser
def test_parser_round_trip():
    parse = _parser()
    nl = parse(ORIGINAL, "original.cir")
    ref = _flat_by_hand()
    got = {el.name: el for el in nl.elements}
    for el in ref.elements:
        assert el.name in got, el.name
        g = got[el.name]
        assert (g.kind, tuple(g.nodes), g.control, g.model) == (
            el.kind,
            el.nodes,
            el.control,
            el.model,
        ), el.name
        assert g.value == pytest.approx(el.value, rel=1e-15), el.name
        assert (g.area, g.m) == (el.area, el.m)
    # export -> parse gives the same netlist back
    again = parse(export_spice(nl), "trained.cir")
    assert [e.name for e in again.elements] == [e.name for e in nl.elements]
    for a, b in zip(again.elements, nl.elements):
        assert (a.kind, a.nodes, a.value, a.control, a.model, a.area, a.m) == (
            b.kind,
            b.nodes,
            b.value,
            b.control,
            b.model,
            b.area,
            b.m,
        )
    for name, m in nl.models.items():
        m2 = again.models[name]
        assert (m2.is_, m2.n, m2.rs, m2.bv, m2.ibv, m2.nbv) == (
            m.is_,
            m.n,
            m.rs,
            m.bv,
            m.ibv,
            m.nbv,
        )


@needs_parser
@needs_ngspice
def test_parser_export_ngspice():
    parse = _parser()
    nl = parse(ORIGINAL, "original.cir")
    v0, i0 = ngspice_operating_point(ORIGINAL)
    v1, i1 = ngspice_operating_point(export_spice(nl))
    _assert_same(v0, v1)
    _assert_same(i0, i1)
