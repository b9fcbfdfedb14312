"""Elements (R V I D C L E F G H), their refusals, and .model cards."""

from __future__ import annotations

import math
import warnings

import pytest
from netlist_helpers import deck, raises

from circuitprop.netlist import DiodeModel, Element

# ---------------------------------------------------------------------------------------------
# R
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "card, value",
    [
        ("R1 a 0 1k", 1e3),
        ("R1 a 0 r=2k", 2e3),
        ("R1 a 0 R = 2k", 2e3),
        ("R1 a 0 resistance=3k", 3e3),
        ("R1 a 0 1k m=2", 500.0),
        ("R1 a 0 {1k} m={2}", 500.0),
        ("R1 a 0 r=1k m=4", 250.0),
        ("R1 a 0 1k tc1=0.1 tc2=0.01", 1e3),  # tc irrelevant at T = TNOM (ngspice agrees)
        ("R1 a 0 1k temp=27", 1e3),
        ("R1 a 0 1k dtemp=0 tc1=0.1", 1e3),
        # temperature coefficients, as ngspice: 1 + tc1 dT + tc2 dT^2, or 1.01^(tce dT)
        ("R1 a 0 1k temp=50", 1e3),
        ("R1 a 0 1k temp=50 tc1=0.01", 1230.0),
        ("R1 a 0 1k temp=50 dtemp=10 tc1=0.01", 1230.0),  # dtemp ignored with temp
        ("R1 a 0 1k dtemp=10 tc1=0.1", 2e3),
        ("R1 a 0 1k dtemp=10 tc1=0.1 tc2=0.01", 3e3),
        ("R1 a 0 1k dtemp=10 tce=2", 1e3 * 1.01**20),
        ("R1 a 0 4Meg7 tc1=1e-6 tc2=1e-9 dtemp=6", 4e6 * (1 + 6e-6 + 36e-9)),
        ("R1 a 0 1k ac=2k", 1e3),
        ("R1 a 0 1k noisy=0", 1e3),
        ("R1 a 0 10kOhm", 1e4),
    ],
)
def test_resistor_forms(card, value):
    el = deck(card + "\n").element("r1")
    assert el.kind == "r" and el.nodes == ("a", "0")
    assert el.value == pytest.approx(value, rel=1e-15)


@pytest.mark.parametrize(
    "cards, value",
    [
        # all checked against ngspice 39
        (".model rm R(r=2k)\nR1 a 0 rm", 2e3),
        (".model rm R r=2k\nR1 a 0 rm", 2e3),
        (".model rm R(res=3k)\nR1 a 0 rm", 3e3),
        (".model rm R(r=2k)\nR1 a 0 rm 3k", 3e3),  # the instance value wins
        (".model rm R(r=2k)\nR1 a 0 rm m=2", 1e3),
        (".model rm R(rsh=100)\nR1 a 0 rm l=10u w=1u", 1e3),
        (".model rm R(rsh=100)\nR1 a 0 rm", 100.0),  # default l = w = 10u
        (".model rm R(rsh=100)\nR1 a 0 rm l=20u", 200.0),
        (".model rm R(rsh=100)\nR1 a 0 rm w=5u", 200.0),
        (".model rm R(rsh=100 defw=2u)\nR1 a 0 rm", 500.0),
        (".model rm R(rsh=100 defw=2u narrow=0.25u short=0.5u)\nR1 a 0 rm l=11u", 1e4 / 15),
        (".model rm R(rsh=100 defw=2u narrow=0.5u short=1u)\nR1 a 0 rm l=11u", 900.0),
        (".model rm R(r=2k rsh=100)\nR1 a 0 rm", 100.0),  # sheet resistance wins over r
        (".model rm R(r=2k rsh=100)\nR1 a 0 rm 3k l=10u w=1u", 3e3),
        (".model rm R(resistance=2k)\nR1 a 0 rm", 2e3),
        (".model rt R(r=1k tnom=20 tc1=0.01 tc2=0.001)\nR1 a 0 rt", 1e3 * (1 + 0.07 + 0.049)),
        (".model rt R(r=1k tnom=20 tc1=0.01)\nR1 a 0 rt dtemp=5 tc1=0.2", 1e3 * (1 + 0.2 * 12)),
        (".model rt R(r=1k tce=1)\nR1 a 0 rt temp=37", 1e3 * 1.01**10),
        # aliases: l (default length), w (= defw), dw (= narrow), dlr (= short), tc1r, tc2r
        (".model rm R(rsh=100 l=20u w=5u)\nR1 a 0 rm", 400.0),
        (".model rm R(rsh=100 dw=1u dlr=2u)\nR1 a 0 rm", 100 * 6 / 8),
        (".model rt R(r=1k tc1r=0.01 tc2r=0.001)\nR1 a 0 rt dtemp=10", 1e3 * 1.2),
        # instance parameters on the card are defaults of every instance (ngspice)
        (".model rm R(rsh=100 resistance=5k)\nR1 a 0 rm", 5e3),
        (".model rm R(rsh=100 resistance=5k)\nR1 a 0 rm 3k", 3e3),
        (".model rt R(r=1k tc1=0.01 dtemp=10)\nR1 a 0 rt", 1.1e3),
        (".model rt R(r=1k tc1=0.01 dtemp=10)\nR1 a 0 rt dtemp=0", 1e3),
        (".model rt R(r=1k tc=0.02 tc1=0.01 temp=37)\nR1 a 0 rt", 1.2e3),
        (".model rt R(r=1k tc=0.02 temp=37)\nR1 a 0 rt tc1=0.05", 1.5e3),
        (".model rm R(r=1k scale=2)\nR1 a 0 rm", 2e3),
        (".model rm R(r=1k scale=2)\nR1 a 0 rm scale=3", 3e3),
        ("R1 a 0 1k scale=2", 2e3),
        ("R1 a 0 1k m=4 scale=2", 500.0),
        (".model rm R(r=1k kf=0 af=1 lf=1 wf=1 ef=1 bv_max=10 noisy=0 ac=2k level=1)\nR1 a 0 rm", 1e3),
    ],
)
def test_resistor_models(cards, value):
    assert deck(cards + "\n").element("r1").value == pytest.approx(value, rel=1e-14)


@pytest.mark.parametrize(
    "card, fragments",
    [
        ("R1 a 0 0", ("r1", "zero resistance")),
        ("R1 a 0 -0", ("r1", "zero resistance")),
        ("R1 a 0 0.0e3", ("r1", "zero resistance")),
        ("R1 a 0 {1k-1k}", ("r1", "zero resistance")),
        ("R1 a 0 r=0", ("r1", "zero resistance")),
        ("R1 a 0", ("r1", "missing resistance value")),
        ("R1 a 0 m=2", ("r1", "missing resistance value")),
        ("R1 a 0 -1k", ("r1", "negative resistance")),
        ("R1 a 0 {-1k}", ("r1", "negative resistance")),
        ("R1 a 1k", ("r1", "missing resistance value")),
        ("R1 a", ("r1", "2 nodes")),
        ("R1", ("r1", "2 nodes")),
        ("R1 a 0 1k 2k", ("r1", "unexpected '2k'")),  # ngspice silently takes 2k
        ("R1 a 0 1k foo=3", ("r1", "unknown parameter 'foo'")),
        ("R1 a 0 1k r=2k", ("r1", "resistance given twice")),
        ("R1 a 0 1k m=0", ("r1", "m=0.0 must be positive")),
        ("R1 a 0 1k m=-1", ("r1", "must be positive")),
        ("R1 a 0 abc", ("r1", "bad value 'abc'")),
        ("R1 a 0 2*3", ("r1", "bad number '2*3'")),
        ("R1 a 0 1k temp=-100 tc1=0.01", ("r1", "temperature coefficients make the resistance")),
        ("R1 a 0 1k r=", ("r1", "'r=' has no value")),
        ("R1 a 0 (1k)", ("r1", "unexpected '('")),
        (".model rm R(tc1=0.01)\nR1 a 0 rm", ("r1", "missing resistance value")),
        (".model dm D\nR1 a 0 dm", ("r1", "model 'dm' is of type D")),
        (".model rm R(rsh=100 short=6u)\nR1 a 0 rm", ("r1", "effective length")),
        ("R1 a 0 1k scale=0", ("r1", "scale=0.0 must be positive")),
    ],
)
def test_resistor_refusals(card, fragments):
    raises(card + "\n", *fragments, line=card.count("\n") + 2)


@pytest.mark.parametrize(
    "card, fragment",
    [
        (".model rm R(r=-1)", "negative r"),
        (".model rm R(resistance=-1)", "negative resistance"),
        (".model rm R(r=1k res=2k)", "parameter r given twice"),
        (".model rm R(r=1k m=2)", "m on a resistor model is ignored by ngspice"),
        (".model rm R(r=1k scale=-1)", "scale=-1.0 must be positive"),
        (".model rm R(r=1k rhs=1)", "unknown resistor model parameter 'rhs' (did you mean 'rsh'?)"),
        (".model rm R(r=1k defl=20u)", "'defl' (the default length of a resistor model is 'l')"),
        (".model rm R(r=1k zz=1)", "unknown resistor model parameter 'zz'"),
    ],
)
def test_resistor_model_errors_point_at_the_model_card(card, fragment):
    raises(f"{card}\nR1 a 0 rm\n", "model 'rm'", fragment, line=2)


# ---------------------------------------------------------------------------------------------
# V, I
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec, value",
    [
        # all checked against ngspice 39 (.op with no DC given uses the t=0 value)
        ("1", 1.0),
        ("dc 1", 1.0),
        ("DC 2", 2.0),
        ("dc=0.25", 0.25),
        ("DC = 3", 3.0),
        ("", 0.0),
        ("0.125 ac 1 0", 0.125),
        ("ac 1", 0.0),
        ("ac=1 dc=2", 2.0),
        ("dc 1 ac 1 0 distof1 0.1", 1.0),
        ("SIN(0.5 2 1k 0 0 30)", 1.5),
        ("sin 0.5 2 1k", 0.5),
        ("sin(0.5 2)", 0.5),
        ("SIN (0.5, 2, 1k, 1m, 0, 30)", 1.5),
        ("sin(0.5 2 1k 0 0 -90)", -1.5),
        ("sin(0.5 2 1k -1m 0 30)", 0.5 + 2 * math.sin(2 * math.pi + math.radians(30))),
        ("PULSE(1.5 5 1n 1n 1n 1u 2u)", 1.5),
        ("pulse 1.5 5 1n 1n 1n 1u 2u", 1.5),
        ("pulse(1m 2m)", 1e-3),
        ("pwl(0 0.7 1m 3)", 0.7),
        ("pwl(1m 0.9 2m 3)", 0.9),
        ("pwl(-1 2 1 4)", 3.0),
        ("pwl(-2 1 -1 5)", 5.0),
        ("pwl(0 0.7 1m 3) r=0 td=1m", 0.7),
        ("pwl(0 0.7 1m 3) td=-0.5m", 1.85),
        ("exp(0.3 1 1u 1u 2u 2u)", 0.3),
        ("exp(0.3 1 -1u 1u 2u 2u)", 0.3 + 0.7 * (1 - math.exp(-1))),
        ("sffm(0.2 1 1k 2 1k)", 0.2),
        ("sffm(0.2 1 1k 2 1k 30 90)", 0.2 + math.sin(math.radians(30) + 2)),
        ("dc 2 sin(0 1 1k)", 2.0),
        ("sin(0 1 1k) dc 3", 3.0),
        ("{2*3}", 6.0),
        ("'1+1'", 2.0),
    ],
)
@pytest.mark.parametrize("letter", ["v", "i"])
def test_source_values(spec, value, letter):
    el = deck(f"{letter}1 a 0 {spec}\nR1 a 0 1k\n").element(f"{letter}1")
    assert el.kind == letter and el.nodes == ("a", "0")
    assert el.value == pytest.approx(value, rel=1e-14, abs=1e-300)


def test_current_source_direction_and_multiplier():
    nl = deck("I1 0 out 1u\nI2 0 out 1u m=3\nR1 out 0 1k\n")
    assert nl.element("i1").nodes == ("0", "out")
    assert nl.element("i2").value == pytest.approx(3e-6, rel=1e-15)


@pytest.mark.parametrize(
    "spec, fragment",
    [
        ("1 2", "unexpected '2'"),
        ("dc", "'dc' without a value"),
        ("dc 1 dc 2", "DC value given twice"),
        ("dc 1 dc=2", "DC value given twice"),
        ("am(1 0.5 1k 10k 0)", "unsupported source function 'am'"),
        ("trnoise(1 1n 0 0)", "unsupported source function 'trnoise'"),
        ("sin(0 1) pulse(0 1)", "two waveforms"),
        ("pwl(0 1 1)", "time-value pairs"),
        ("pwl(1 1 0 2)", "must not decrease"),
        ("sin(0)", "needs at least 2 values"),
        ("pulse(0 1 -1u 1n 1n 1u 2u)", "negative delay"),
        ("sin(0 1", "without ')'"),
        ("foo=1", "unknown parameter 'foo'"),
        ("dc abc", "bad value 'abc'"),
        ("m=2 1", "unknown parameter 'm'"),
    ],
)
def test_voltage_source_refusals(spec, fragment):
    raises(f"V1 a 0 {spec}\n", "v1", fragment, line=2)


def test_source_needs_two_nodes():
    raises("V1 a\n", "v1", "2 nodes", line=2)


# ---------------------------------------------------------------------------------------------
# D
# ---------------------------------------------------------------------------------------------


def test_diode_forms():
    nl = deck(
        ".model dm D(is=1e-12 n=2)\n"
        ".model 1n4148 D(Is=2.52n Rs=.568 N=1.752 Cjo=4p M=.4 tt=20n Iave=200m Vpk=75)\n"
        "D1 a 0 dm\n"
        "D2 a 0 dm 2\n"
        "D3 a 0 dm area=2 m=3\n"
        "D4 a 0 dm off\n"
        "D5 a 0 1N4148\n"
        "D6 a 0 dm 2 off ic=0.6 temp=27 dtemp=0\n"
        "D7 a 0 dm pj=2\n"
    )
    d = {e.name: e for e in nl.elements}
    assert d["d1"].model == "dm" and d["d1"].area == 1 and d["d1"].m == 1
    assert d["d1"].nodes == ("a", "0") and d["d1"].kind == "d"
    assert d["d2"].area == 2
    assert (d["d3"].area, d["d3"].m) == (2, 3)
    assert d["d4"].area == 1
    assert d["d5"].model == "1n4148"
    assert d["d6"].area == 2
    assert set(nl.models) == {"dm", "1n4148"}
    m = nl.models["1n4148"]
    assert (m.is_, m.rs, m.n, m.nbv, m.bv, m.ibv) == (2.52e-9, 0.568, 1.752, 1.752, math.inf, 1e-3)


@pytest.mark.parametrize(
    "body, fragments",
    [
        ("D1 a 0 nomodel", ("d1", "unknown diode model 'nomodel'")),
        ("D1 a 0", ("d1", "2 nodes and a model")),
        (".model rm R(r=1)\nD1 a 0 rm", ("d1", "model 'rm' is of type R")),
        (".model q1 NPN(bf=100)\nD1 a 0 q1", ("d1", "model 'q1' is of type NPN")),
        (".model dm D\nD1 a 0 dm 2 3", ("d1", "unexpected '3'")),
        (".model dm D\nD1 a 0 dm 2 area=3", ("d1", "unexpected '2'")),
        (".model dm D\nD1 a 0 dm area=0", ("d1", "area=0.0 must be positive")),
        (".model dm D\nD1 a 0 dm m=0", ("d1", "must be positive")),
        (".model dm D\nD1 a 0 dm temp=50", ("d1", "temp other than 27")),
        (".model dm D\nD1 a 0 dm foo=1", ("d1", "unknown parameter 'foo'")),
    ],
)
def test_diode_refusals(body, fragments):
    raises(body + "\n", *fragments, line=body.count("\n") + 2)


# ---------------------------------------------------------------------------------------------
# .model D
# ---------------------------------------------------------------------------------------------


def diode_model(card: str) -> DiodeModel:
    nl = deck(f"{card}\nD1 a 0 dm\n")
    return nl.models["dm"]


@pytest.mark.parametrize(
    "card, expected",
    [
        (".model dm D", dict(is_=1e-14, n=1.0, rs=0.0, bv=math.inf, ibv=1e-3, nbv=1.0)),
        (".model dm D()", dict(is_=1e-14)),
        (".model dm d(is=2e-14)", dict(is_=2e-14)),
        (".model dm D is=2e-14 n=1.5", dict(is_=2e-14, n=1.5, nbv=1.5)),
        (".model dm D (is=2e-14, n=1.5)", dict(is_=2e-14, n=1.5)),
        (".model DM D(JS=3e-14)", dict(is_=3e-14)),
        (".model dm D(is=1e-14 rs=10 bv=5 ibv=1u nbv=3)", dict(rs=10.0, bv=5.0, ibv=1e-6, nbv=3.0)),
        (".model dm D(bv=5 ib=2m)", dict(ibv=2e-3, bv=5.0)),
        (".model dm D(n=2)", dict(nbv=2.0)),
        (".model dm D(level=1 tnom=27)", dict(is_=1e-14)),
        (
            ".model dm D(is=1e-14 cjo=1p tt=1n m=0.5 vj=0.7 fc=0.5 eg=1.11 xti=3 kf=0 af=1)",
            dict(is_=1e-14, n=1.0),
        ),
        (".model dm D(ikf=0 isr=0)", dict(is_=1e-14)),
        (".model dm D\n+ (is=4e-14\n+ n=1.2)", dict(is_=4e-14, n=1.2)),
        (".param isv=5e-14\n.model dm D(is={isv})", dict(is_=5e-14)),
        (".model dm D(is='1e-14*2')", dict(is_=2e-14)),
        (".model dm D(tref=27 temp=27 dtemp=0)", dict(is_=1e-14)),
        # accepted by ngspice 39, no effect at DC (temperature, tunnelling, level 3, sidewall)
        (".model dm D(ctc=0 tvj=0 ntun=30 xtitun=3 keg=1 xm=0 xp=0 pj=2 ic=0.5 off=1)", dict(n=1.0)),
    ],
)
def test_diode_model_cards(card, expected):
    m = diode_model(card)
    assert m.name == "dm"
    for key, value in expected.items():
        assert getattr(m, key) == value, key


@pytest.mark.parametrize(
    "card, fragment",
    [
        (".model dm D(tnom=50)", "tnom=50 is not implemented"),
        (".model dm D(level=3)", "level=3 is not implemented"),
        (".model dm D(level=2)", "level=2 is not implemented"),
        (".model dm D(ikf=1m)", "ikf (high-injection knee current) is not supported"),
        (".model dm D(jsw=1e-15)", "jsw"),
        (".model dm D(isr=1e-15)", "isr"),
        (".model dm D(is=0)", "is=0.0 must be positive"),
        (".model dm D(is=-1e-14)", "must be positive"),
        (".model dm D(n=0)", "n=0.0 must be positive"),
        (".model dm D(bv=0)", "bv=0.0 must be positive"),
        (".model dm D(ibv=-1)", "ibv=-1.0 must be positive"),
        (".model dm D(rs=-1)", "rs=-1.0 must not be negative"),
        (".model dm D(is=1e-14 js=2e-14)", "parameter is given twice"),
        (".model dm D(is 1e-14)", "expected name=value, got 'is'"),
        (".model dm D(is=)", "'is=' has no value"),
        (".model dm D(is=1e-14", "unbalanced parentheses"),
        (".model dm D(is=abc)", "bad value 'abc'"),
        (".model dm D(is={1/0})", "division by zero"),
        (".model dm D(tref=50)", "tnom=50 is not implemented"),
        (".model dm D(temp=50)", "temp other than 27 C is not implemented"),
        (".model dm D(dtemp=10)", "dtemp other than 0 is not implemented"),
        (".model dm D(area=0)", "area=0.0 must be positive"),
        (".model dm D(nz=2)", "parameter nz is ignored by ngspice 39 (newer versions read it as nbv)"),
        (".model dm D(vb=5)", "parameter vb is ignored by ngspice 39 (newer versions read it as bv)"),
        (".model dm D(is=1e-14 nn=2)", "unknown diode model parameter 'nn' (did you mean 'n'?)"),
        (".model dm D(iss=1e-14)", "unknown diode model parameter 'iss' (did you mean 'is'?)"),
        (".model dm D(is=2e-14 zz=3)", "unknown diode model parameter 'zz'"),
        (".model dm D(perim=1)", "unknown diode model parameter 'perim'"),
    ],
)
def test_diode_model_refusals(card, fragment):
    raises(f"{card}\nD1 a 0 dm\n", "model 'dm'", fragment, line=2)


def test_unknown_model_parameter_names_nothing_else():
    err = raises(".model dm D(is=2e-14 zz=3)\nD1 a 0 dm\n", line=2)
    assert err.message == "model 'dm': unknown diode model parameter 'zz'"


def test_model_area_is_the_default_instance_area():
    nl = deck(".model dm D(is=1e-14 area=2)\nD1 a 0 dm\nD2 a 0 dm area=3\nD3 a 0 dm 5\n")
    assert [e.area for e in nl.elements] == [2.0, 3.0, 5.0]
    assert nl.models["dm"].is_ == 1e-14  # area scales the instance, not the model


def test_unknown_parameter_inside_a_subckt_names_the_instance():
    err = raises(
        ".subckt cell a\n.model dm D(iz=1)\nD1 a 0 dm\n.ends\nX1 n cell\nR1 n 0 1k\n",
        "model 'dm': unknown diode model parameter 'iz'",
        line=3,
    )
    assert "x1" in err.message


def test_ltspice_decoration_parameters_are_ignored_silently():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = diode_model(".model dm D(is=2e-14 iave=1 vpk=50 mfg=OnSemi type=silicon)")
    assert m.is_ == 2e-14


def test_unused_models_are_not_validated_nor_listed():
    nl = deck(".model bad D(level=9)\n.model q1 NPN(bf=100)\nR1 a 0 1k\n")
    assert nl.models == {}


def test_duplicate_model_is_refused():
    raises(".model dm D\n.model dm D(is=1e-12)\n", "duplicate .model 'dm'", line=3)


def test_model_needs_a_type():
    raises(".model dm\n", "'.model' needs a name and a type", line=2)


def test_diode_model_location():
    nl = deck("* c\n.model dm D\nD1 a 0 dm\n")
    assert nl.models["dm"].location.line == 3


# ---------------------------------------------------------------------------------------------
# C, L
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "card, kind, value",
    [
        ("C1 a 0 1p", "c", 1e-12),
        ("C1 a 0 1u ic=0.5", "c", 1e-6),
        ("C1 a 0 c=2p", "c", 2e-12),
        ("C1 a 0 1p m=2", "c", 2e-12),
        ("L1 a 0 1u", "l", 1e-6),
        ("L1 a 0 1u ic=1m", "l", 1e-6),
        ("L1 a 0 l=2u", "l", 2e-6),
        ("L1 a 0 2u m=2", "l", 1e-6),
        ("L1 a 0 0", "l", 0.0),
        ("C1 a 0 1p temp=50 dtemp=1", "c", 1e-12),  # no effect at DC
    ],
)
def test_reactive_elements(card, kind, value):
    el = deck(card + "\n").elements[0]
    assert (el.kind, el.nodes) == (kind, ("a", "0"))
    assert el.value == pytest.approx(value, rel=1e-15)


def test_reactive_model_forms():
    nl = deck(".model cm C(c=3p)\n.model lm L(l=1u)\nC1 a 0 cm\nC2 a 0 cm 5p\nL1 a 0 lm\n")
    assert [e.value for e in nl.elements] == [3e-12, 5e-12, 1e-6]
    nl = deck(
        ".model cm C(cap=4p tc1=0 di=1 thick=1 bv_max=5)\n.model cn C(capacitance=6p)\n"
        ".model lm L(ind=2u tc1=0 nt=10 mu=1 csect=1n)\n.model ln L(inductance=7u)\n"
        "C1 a 0 cm\nC2 a 0 cn\nL1 a 0 lm\nL2 a 0 ln\n"
    )
    assert [e.value for e in nl.elements] == [4e-12, 6e-12, 2e-6, 7e-6]


@pytest.mark.parametrize(
    "card, use, fragment",
    [
        (".model cm C(capp=1p)", "C1 a 0 cm", "capacitor model parameter 'capp' (did you mean 'cap'?)"),
        (".model cm C(cap=1p zz=1)", "C1 a 0 cm", "unknown capacitor model parameter 'zz'"),
        (".model lm L(indd=1u)", "L1 a 0 lm", "inductor model parameter 'indd' (did you mean 'ind'?)"),
    ],
)
def test_reactive_model_refusals(card, use, fragment):
    raises(f"{card}\n{use}\n", fragment, line=2)


@pytest.mark.parametrize(
    "card, fragment",
    [
        ("C1 a 0", "missing capacitance value"),
        ("L1 a 0", "missing inductance value"),
        ("C1 a", "needs 2 nodes"),
        ("C1 a 0 1p 2p", "unexpected '2p'"),
        ("C1 a 0 1p c=2p", "value given twice"),
        ("L1 a 0 1u foo=2", "unknown parameter 'foo'"),
    ],
)
def test_reactive_refusals(card, fragment):
    raises(card + "\n", card.split()[0].lower(), fragment, line=2)


# ---------------------------------------------------------------------------------------------
# E, G, F, H
# ---------------------------------------------------------------------------------------------


def test_controlled_sources():
    nl = deck(
        "V1 in 0 1\nVs in m 0\nR1 m 0 1k\n"
        "E1 e 0 in 0 2\n"
        "E2 e2 0 in 0 gain=3\n"
        "G1 0 c in 0 1m\n"
        "G2 0 c in 0 1m m=2\n"
        "F1 f 0 vs 2\n"
        "F2 f 0 Vs 2 m=3\n"
        "H1 h 0 VS 1k\n"
        "R2 e 0 1\n"
    )
    el = {e.name: e for e in nl.elements}
    assert el["e1"].nodes == ("e", "0", "in", "0") and el["e1"].value == 2
    assert el["e2"].value == 3
    assert el["g1"].nodes == ("0", "c", "in", "0") and el["g1"].value == 1e-3
    assert el["g2"].value == 2e-3
    assert el["f1"].nodes == ("f", "0") and el["f1"].control == "vs" and el["f1"].value == 2
    assert el["f2"].value == 6
    assert el["h1"].control == "vs" and el["h1"].value == 1e3
    assert all(el[n].control is None for n in ("e1", "g1", "v1", "r1"))


def test_control_may_be_defined_after_use():
    nl = deck("F1 f 0 vx 2\nR1 f 0 1\nVx a 0 1\n")
    assert nl.element("f1").control == "vx"


@pytest.mark.parametrize(
    "card, fragment",
    [
        ("E1 a 0 poly(2) 1 0 2 0 0 1 1", "unsupported controlled-source form 'POLY'"),
        ("E1 a 0 POLY (1) in 0 0 1", "'POLY'"),
        ("E1 a 0 value={v(in)*2}", "'VALUE'"),
        ("E1 a 0 VALUE = {2}", "'VALUE'"),
        ("E1 a 0 vol='v(in)'", "'VOL'"),
        ("G1 a 0 cur={1m}", "'CUR'"),
        ("E1 a 0 table {v(in)} = (0,0) (1,1)", "'TABLE'"),
        ("G1 a 0 table {v(in)} = (0,0) (1,1)", "'TABLE'"),
        ("E1 a 0 laplace {v(in)} = {1/(1+s)}", "'LAPLACE'"),
        ("F1 a 0 poly(1) v1 0 1", "'POLY'"),
        ("H1 a 0 poly(1) v1 0 1", "'POLY'"),
        ("E1 a 0 in 2", "too few fields (expected E n+ n- nc+ nc- gain)"),
        ("E1 a 0 in 0 2 3", "too many fields"),
        ("G1 a 0 in", "too few fields (expected G n+ n- nc+ nc- transconductance)"),
        ("F1 a 0 2", "too few fields (expected F n+ n- Vsense gain)"),
        ("H1 a 0 v1", "too few fields (expected H n+ n- Vsense transresistance)"),
        ("H1 a 0 v1 1k 2", "too many fields"),
        ("E1 a 0 in 0 2 gain=2", "too many fields"),
        ("E1 a 0 in 0 gain=2 foo=1", "unknown parameter 'foo'"),
        ("E1 a 0 in 0 2 m=2", "unknown parameter 'm'"),
        ("E1 a 0 in 0 abc", "bad value 'abc'"),
    ],
)
def test_controlled_refusals(card, fragment):
    raises(f"{card}\nV1 v 0 1\n", card.split()[0].lower(), fragment, line=2)


def test_cccs_control_must_exist_and_be_a_v_source():
    raises(
        "V1 a 0 1\nR1 a 0 1k\nF1 b 0 r1 2\nR2 b 0 1k\n", "f1", "'r1'", "must be a V source", line=4
    )
    raises("I1 a 0 1\nR1 a 0 1k\nH1 b 0 i1 2\n", "h1", "'i1'", "must be a V source", line=4)
    raises("F1 b 0 vx 2\nR2 b 0 1k\n", "f1", "controlling source 'vx' not found", line=2)


# ---------------------------------------------------------------------------------------------
# Unsupported letters, duplicates
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "card",
    [
        "Q1 c b e npn",
        "J1 d g s jmod",
        "K1 l1 l2 0.5",
        "S1 a b c d sw",
        "W1 a b vc csw",
        "T1 a 0 b 0 z0=50 td=1n",
        "O1 a 0 b 0 ltra",
        "U1 a b 0 urc l=1u",
        "Y1 a 0 b 0 txl",
        "Z1 d g s mesa",
        "A1 a b amod",
        "N1 a b osdi",
        "P1 a b 0 c d 0 cpl",
        "B1 a 0 v=v(in)*2",
        "1R a 0 1k",
    ],
)
def test_unsupported_element_letters(card):
    name = card.split()[0].lower()
    raises(card + "\n", f"unsupported element {name[0]}: {name}", line=2)


def test_b_source_is_called_behavioural():
    raises("B1 a 0 v=1\n", "unsupported element b: b1 (behavioural source)")


def test_duplicate_names_are_refused_case_insensitively():
    raises("R1 a 0 1k\nr1 b 0 2k\n", "duplicate element name 'r1'", "first at <string>:2", line=3)
    raises("V1 a 0 1\nv1 b 0 2\n", "duplicate element name 'v1'", line=3)


def test_same_number_different_letters_is_fine():
    nl = deck("R1 a 0 1k\nV1 a 0 1\nI1 a 0 1\nC1 a 0 1p\n")
    assert len(nl.elements) == 4


def test_element_dataclass_fields():
    nl = deck("R1 a b 1k\n")
    assert nl.elements[0] == Element("r", "r1", ("a", "b"), 1e3, location=nl.elements[0].location)
    assert str(nl.elements[0].location) == "<string>:2"
