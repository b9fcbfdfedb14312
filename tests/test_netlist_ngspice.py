"""The parser against live ngspice: values, expressions, waveforms, names, scoping, diodes.

Each test builds one deck, runs ``ngspice -b`` once, and compares what ngspice computed with
what the parser read. Skipped when ngspice is not installed.
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from circuitprop.netlist import Netlist, parse

pytestmark = pytest.mark.skipif(shutil.which("ngspice") is None, reason="ngspice not installed")

TIGHT = ".options filetype=ascii reltol=1e-12 abstol=1e-18 vntol=1e-15"
VT = 1.38064852e-23 * 300.15 / 1.6021766208e-19


def run_ngspice(text: str, tmp_path: Path) -> dict[str, float]:
    """Run an operating point; return ``{variable name: value}`` from the ASCII raw file."""
    body = re.sub(r"(?im)^\s*\.end\s*$", "", text).rstrip("\n")
    deck = tmp_path / "deck.cir"
    raw = tmp_path / "out.raw"
    deck.write_text(f"{body}\n{TIGHT}\n.op\n.end\n")
    proc = subprocess.run(
        ["ngspice", "-n", "-b", "-r", str(raw), str(deck)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    if not raw.exists():
        raise AssertionError(f"ngspice wrote no raw file:\n{proc.stdout}\n{proc.stderr}")
    lines = raw.read_text().splitlines()
    i = lines.index("Variables:")
    j = next(k for k, ln in enumerate(lines) if ln.startswith("Values:"))
    names = [ln.split()[1] for ln in lines[i + 1 : j]]
    vals = [float(ln.split()[-1]) for ln in lines[j + 1 :] if ln.strip()]
    return dict(zip(names, vals))


def close(a: float, b: float, rel: float = 1e-14) -> bool:
    return abs(a - b) <= rel * abs(b) + 1e-300


# ---------------------------------------------------------------------------------------------
# Plain values with scale suffixes
# ---------------------------------------------------------------------------------------------

VALUE_TEXTS = [
    "1M",
    "1m",
    "1MEG",
    "1Meg",
    "1mil",
    "1Mil",
    "10kOhm",
    "5MegOhm",
    "1mOhm",
    "1F",
    "1e-3k",
    "1k5",
    "3mA",
    "1400mV",
    "1T",
    "1G",
    "1K",
    "1U",
    "1N",
    "1P",
    "1meg5",
    "1E-3MEG",
    "1e3k",
    "1a",
    "1x",
    "5V",
    "1e",
    "1e+",
    "1d3",
    ".5",
    "5.",
    "-1k",
    "+2",
    "1.5.3",
    "1ms",
    "1mg",
    "1u",
    "2.2k",
    "4.7u",
    "100p",
    "1_000",
    "0x10",
    "1k$tail",
    "1\u00b5",
]


def test_suffix_values_match_ngspice(tmp_path):
    cards = [f"V{k} n{k} 0 {t}\nR{k} n{k} 0 1" for k, t in enumerate(VALUE_TEXTS)]
    text = "values\n" + "\n".join(cards) + "\n"
    ours = parse(text)
    ref = run_ngspice(text, tmp_path)
    for k, t in enumerate(VALUE_TEXTS):
        mine = ours.element(f"v{k}").value
        assert close(mine, ref[f"v(n{k})"]), (t, mine, ref[f"v(n{k})"])


# ---------------------------------------------------------------------------------------------
# Expressions and parameters
# ---------------------------------------------------------------------------------------------

EXPRS = [
    "2**3**2",
    "-2**0.5",
    "-2^2",
    "2^3^2",
    "2**-1",
    "-(-2)^2",
    "pwr(-2,3)",
    "pwr(-2,0.5)",
    "pow(-2,3)",
    "-3%2",
    "7%-3",
    "10%3",
    "1kohm*2",
    "1e-3k",
    "1meg",
    "1mil",
    "3ma",
    "2 ** 3",
    "1 ? 2 ? 3 : 4 : 5",
    "0?1:0?2:3",
    "2*-3",
    "+3",
    "max(1,2)+min(3,4)",
    "int(-2.5)",
    "floor(-1.5)+ceil(1.2)",
    "nint(2.5)",
    "sgn(-3)",
    "x==2",
    "!0",
    "1&&0||1",
    "sqrt(16)",
    "abs(-3)+exp(0)",
    "log(100)",
    "ln(2)",
    "log10(1000)",
    "atan(1)",
    "tanh(1)",
    "sinh(1)",
    "asinh(1)",
    "3<2",
    "2>=2",
    "2!=3",
    "0.1*3",
    "2kx",
    "1megohm",
    "1.e2",
    "1mA*2",
    "x*1k",
    "1.5e3meg",
    "1e-3mil",
    "abs(-1k)",
    "-x",
    "5 - -3",
    "7/2",
    "1F",
    "1T",
    "1n",
]


def test_expressions_match_ngspice(tmp_path):
    cards = [f"V{k} n{k} 0 {{{e}}}\nR{k} n{k} 0 1" for k, e in enumerate(EXPRS)]
    text = "exprs\n.param x=2\n" + "\n".join(cards) + "\n"
    ours = parse(text)
    ref = run_ngspice(text, tmp_path)
    for k, e in enumerate(EXPRS):
        mine = ours.element(f"v{k}").value
        # ngspice substitutes numbers back into the deck as text: allow a few ulps
        assert close(mine, ref[f"v(n{k})"], rel=4e-15), (e, mine, ref[f"v(n{k})"])  # 3.8e-16


def test_param_rules_match_ngspice(tmp_path):
    text = (
        "params\n"
        ".param b={a*2}\n.param a=3\n.param a=5\n"  # order independent, last one wins
        ".param c = a+b\n"  # blanks around '=' (ngspice 39 fails on 'a + b'; we accept it)
        ".param q='c*2' r1=1mil r2=10kohm rr=2k\n"
        "V1 n1 0 {b}\nR1 n1 0 1\n"
        "V2 n2 0 c\nR2 n2 0 1\n"
        "V3 n3 0 {q}\nR3 n3 0 1\n"
        "V4 n4 0 {r1}\nR4 n4 0 1\n"
        "V5 n5 0 {r2}\nR5 n5 0 1\n"
        "V6 n6 0 1\nR6 n6 0 {rr}\n"
    )
    ours = parse(text)
    ref = run_ngspice(text, tmp_path)
    for k in range(1, 6):
        assert close(ours.element(f"v{k}").value, ref[f"v(n{k})"], 1e-15 * 8), k
    assert close(-1 / ours.element("r6").value, ref["i(v6)"])


# ---------------------------------------------------------------------------------------------
# Source values at DC (t = 0 value of waveforms)
# ---------------------------------------------------------------------------------------------

SOURCES = [
    "dc 1",
    "DC=0.25",
    "0.125 ac 1 0",
    "ac 1",
    "",
    "SIN(0.5 2 1k 0 0 30)",
    "sin 0.5 2 1k",
    "sin(0.5 2 1k 1m 0 30)",
    "sin(0.5 2 1k 0 0 -90)",
    "sin(0.5 2 1k -1m 0 30)",
    "sin(0.5 2 1k -0.1m 1k 30)",
    "PULSE(1.5 5 1n 1n 1n 1u 2u)",
    "pulse 1.5 5 1n 1n 1n 1u 2u",
    "pwl(0 0.7 1m 3)",
    "pwl(1m 0.9 2m 3)",
    "pwl(-1 2 1 4)",
    "pwl(-2 1 -1 5)",
    "pwl(0 0.7 1m 3) r=0 td=1m",
    "exp(0.3 1 1u 1u 2u 2u)",
    "exp(0.3 1 -1u 1u 2u 2u)",
    "exp(0.3 1 -3u 1u -1u 2u)",
    "sffm(0.2 1 1k 2 1k)",
    "sffm(0.2 1 1k 2 1k 30 90)",
    "dc 2 sin(0 1 1k)",
    "sin(0 1 1k) dc 3",
    "dc 1 ac 1 0 distof1 0.1",
]


@pytest.mark.parametrize("letter", ["v", "i"])
def test_source_values_match_ngspice(tmp_path, letter):
    if letter == "v":
        cards = [f"v{k} n{k} 0 {s}\nR{k} n{k} 0 1" for k, s in enumerate(SOURCES)]
    else:  # ngspice's I source refuses pwl's r= and td= options (we accept them)
        cards = [
            f"i{k} 0 n{k} {s.replace(' r=0 td=1m', '')}\nR{k} n{k} 0 1"
            for k, s in enumerate(SOURCES)
        ]
    text = "sources\n" + "\n".join(cards) + "\n"
    ours = parse(text)
    ref = run_ngspice(text, tmp_path)
    for k, s in enumerate(SOURCES):
        mine = ours.element(f"{letter}{k}").value
        assert math.isclose(mine, ref[f"v(n{k})"], rel_tol=1e-13, abs_tol=1e-15), (s, mine)


# ---------------------------------------------------------------------------------------------
# Lines: title, comments, continuation, ground, node names
# ---------------------------------------------------------------------------------------------


def test_lines_match_ngspice(tmp_path):
    text = (
        "R9 a 0 1\n"  # the title: ngspice drops it
        "V1 a 0 dc 1\n"
        "  * indented star comment\n"
        "R1 a b 1k ; semicolon\n"
        "R2 b 0 1k $ dollar comment\n"
        "R3 b c 1k$notcomment\n"
        "R4 c 0 1k // slashes\n"
        "R5 a\n"
        "* interleaved comment\n"
        "\n"
        "+ d 2k\n"
        "R6 d GND 3k\n"
        "R7 d 00 1k\n"
        "R8 00 0 1k\n"
        "$ dollar line\n"
        "Rn1 N/1 a.b 1k\nRn2 a.b 0 1k\nRn3 n/1 a 1k\n"
    )
    ours = parse(text)
    ref = run_ngspice(text, tmp_path)
    assert "r9" not in {e.name for e in ours.elements}
    assert {f"v({n})" for n in ours.nodes()} == {k for k in ref if k.startswith("v(")}
    assert {f"i({e.name})" for e in ours.elements if e.kind == "v"} == {
        k for k in ref if k.startswith("i(")
    }
    # and the values ngspice read are the ones we read: check a few node voltages by hand
    r = {e.name: e.value for e in ours.elements}
    assert (r["r3"], r["r5"], r["r6"]) == (1e3, 2e3, 3e3)
    g_b = 1 / r["r1"] + 1 / r["r2"] + 1 / (r["r3"] + r["r4"])
    assert close(1 / r["r1"] / g_b, ref["v(b)"], 1e-14)


# ---------------------------------------------------------------------------------------------
# Subcircuits: names and scoping
# ---------------------------------------------------------------------------------------------

NESTED = """subckt naming
.subckt inner a b params: k=1
R2 a mid {1k*k}
Vm mid b 0
.ends inner
.subckt outer p q
X1 p q inner k=2
L1 q 0 1u
E1 e 0 p 0 2
R9 e 0 1k
H1 h 0 l1 3
Rh h 0 1k
D1 q z dm
Rz z gnd 1meg
.model dm D(is=1e-14)
.ends
V1 in 0 1
Xp in out outer
R1 out 0 1k
F1 f 0 v1 2
Rf f 0 1k
"""


def test_flattened_names_match_ngspice(tmp_path):
    text = NESTED.replace("H1 h 0 l1 3\n", "H1 h 0 vh 3\nVh q qq 0\nRqq qq 0 1\n")
    ours = parse(text)
    ref = run_ngspice(text, tmp_path)
    assert {f"v({n})" for n in ours.nodes()} == {k for k in ref if k.startswith("v(")}
    branch = {f"i({e.name})" for e in ours.elements if e.kind in "vleh"}
    assert branch == {k for k in ref if k.startswith("i(")}
    assert "i(v.xp.x1.vm)" in branch and "v(xp.x1.mid)" in ref


def test_subckt_params_and_dynamic_scope_match_ngspice(tmp_path):
    text = (
        "scope\n.param a=1 g=5\n"
        ".subckt leaf p\nVq p 0 {b+a}\n.ends\n"
        ".subckt mid p q params: b=3\n.param c={b*10}\nX1 p leaf\nVc q 0 {c}\n.ends\n"
        ".subckt amp in params: k=1\nVk in 0 {k*g}\n.ends\n"
        "X1 n1 n2 mid\nX2 n3 n4 mid b=4\nX3 n5 amp\nX4 n6 amp params: k={a+1}\n"
        "R1 n1 0 1\nR2 n2 0 1\nR3 n3 0 1\nR4 n4 0 1\nR5 n5 0 1\nR6 n6 0 1\n"
    )
    ours = parse(text)
    ref = run_ngspice(text, tmp_path)
    got = {e.nodes[0]: e.value for e in ours.elements if e.kind == "v"}
    assert got == {"n1": 4.0, "n2": 30.0, "n3": 5.0, "n4": 40.0, "n5": 5.0, "n6": 10.0}
    for node, value in got.items():
        assert close(value, ref[f"v({node})"], 1e-15), node


# ---------------------------------------------------------------------------------------------
# Resistors and diodes
# ---------------------------------------------------------------------------------------------

RESISTORS = [
    "1k",
    "r=2k",
    "resistance=3k",
    "1k m=2",
    "{1k} m={2}",
    "1k tc1=0.1",
    "rm",
    "rm 3k",
    "rm m=2",
    "rs l=10u w=1u",
    "rs",
    "rs l=20u",
    "rs w=5u",
    "rw",
    "rw l=11u",
    "rr",
    "rr 3k l=10u w=1u",
    "rq",
    "1k temp=50 tc1=0.01",
    "1k temp=50 dtemp=10 tc1=0.01",
    "1k dtemp=10 tce=2",
    "rt",
    "rt dtemp=5",
    "rt dtemp=5 tc1=0.2",
    "4Meg7 tc1=1e-6 tc2=1e-9 dtemp=6",
    "rx",
    # aliases of the model table, and instance parameters written on the model card
    "ra",
    "ra l=30u",
    "rb",
    "rc dtemp=10",
    "rd",
    "rd dtemp=0",
    "rd 3k",
    "rsc",
    "rsc scale=3",
    "1k scale=2",
    "1k m=2 scale=2",
    "rs l=20u scale=2",
]


def test_resistor_values_match_ngspice(tmp_path):
    models = (
        ".model rm R(r=2k)\n.model rs R rsh=100\n.model rw R(rsh=100 defw=2u narrow=0.25u "
        "short=0.5u)\n.model rr R(r=2k rsh=100)\n.model rq R(res=3k)\n"
        ".model rt R(r=1k tnom=20 tc1=0.01 tc2=0.001)\n.model rx r(resistance=2k)\n"
        ".model ra R(rsh=100 l=20u w=5u dw=1u dlr=2u kf=0 af=1 bv_max=10 noisy=0)\n"
        ".model rb R(rsh=100 resistance=5k)\n"
        ".model rc R(r=1k tc1r=0.01 tc2r=0.001)\n"
        ".model rd R(r=1k tc=0.02 tc1=0.01 temp=37)\n"
        ".model rsc R(r=1k scale=2)\n"
    )
    cards = [f"V{k} n{k} 0 1\nR{k} n{k} 0 {s}" for k, s in enumerate(RESISTORS)]
    text = "resistors\n" + models + "\n".join(cards) + "\n"
    ours = parse(text)
    ref = run_ngspice(text, tmp_path)
    for k, s in enumerate(RESISTORS):
        assert close(-1 / ours.element(f"r{k}").value, ref[f"i(v{k})"], 3e-15), s


DIODES = [
    (".model dm D(is=1e-12 n=2)", "dm"),
    (".model dm D is=1e-12 n=2", "dm area=2"),
    (".model dm d\n+ (js=1e-12\n+ n=2)", "dm area=2 m=3"),
    (".model dm D(Is=2.52n Rs=0 N=1.752 Cjo=4p M=.4 tt=20n)", "dm m=2"),
    (".model dm D(is=1e-14)", "dm off"),
    (".model 1n4148 D(is=3e-14 n=1.1)", "1N4148 area=0.5"),
    # the model card's area is every instance's default; accepted parameters with no DC effect
    (".model dm D(is=1e-14 area=2 tref=27 ctc=0 tvj=0 ntun=30 xtitun=3 keg=1 pj=2)", "dm"),
    (".model dm D(is=1e-14 area=2 xm=0 xp=0 l=1u w=1u ic=0.5 thermal=0)", "dm area=3"),
]


@pytest.mark.parametrize("card, inst", DIODES)
def test_diode_cards_match_ngspice(tmp_path, card, inst):
    text = f"diode\n{card}\nI1 0 a 1m\nD1 a 0 {inst}\n"
    ours = parse(text)
    ref = run_ngspice(text, tmp_path)
    d = ours.element("d1")
    m = ours.models[d.model]
    is_eff = m.is_ * d.area * d.m
    # forward region with RS = 0: I = IS (exp(V/(N Vt)) - 1) + GMIN V
    v = m.n * VT * math.log(1e-3 / is_eff + 1)
    v -= ours.gmin * v / (is_eff / (m.n * VT) * math.exp(v / (m.n * VT)))  # one Newton step
    assert math.isclose(v, ref["v(a)"], rel_tol=3e-15), (v, ref["v(a)"])  # measured 4.3e-16


def test_controlled_sources_match_ngspice(tmp_path):
    text = (
        "controlled\nV1 in 0 1\nVs in m 0\nR1 m 0 1k\n"
        "E1 e 0 in 0 2\nRe e 0 1k\n"
        "E2 e2 0 in 0 gain=3\nRe2 e2 0 1k\n"
        "G1 0 c in 0 1m\nRc c 0 1k\n"
        "F1 f 0 vs 2\nRf f 0 1k\n"
        "H1 h 0 vs 1k\nRh h 0 1k\n"
        "G2 0 c2 in 0 1m m=2\nRc2 c2 0 1k\n"
        "F2 f2 0 vs 2 m=3\nRf2 f2 0 1k\n"
    )
    ours: Netlist = parse(text)
    ref = run_ngspice(text, tmp_path)
    el = {e.name: e for e in ours.elements}
    i_vs = ref["i(vs)"]  # + 1 mA, from in through vs to m
    assert close(ref["v(e)"], el["e1"].value * 1.0)
    assert close(ref["v(e2)"], el["e2"].value * 1.0)
    assert close(ref["v(c)"], el["g1"].value * 1.0 * 1e3)  # G1 0 c: current into c
    assert close(ref["v(f)"], -el["f1"].value * i_vs * 1e3)
    assert close(ref["v(h)"], el["h1"].value * i_vs)
    assert close(ref["v(c2)"], el["g2"].value * 1.0 * 1e3)  # m multiplies the gain
    assert close(ref["v(f2)"], -el["f2"].value * i_vs * 1e3)
