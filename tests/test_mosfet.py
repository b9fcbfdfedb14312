"""MOSFET level 1: the device law against hand formulas in every region, its conductances
against autodiff, ngspice's step limits, the parser (defaults, derived parameters, subcircuits),
refusals through the CLI, PMOS/NMOS symmetry, and Newton from zero on high-gain circuits.
Parity with ngspice is in test_parity.py (decks ``tests/decks/mos_*``)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from netlist_helpers import deck

import circuitprop
from circuitprop._devices import VT, fetlim, limvds, mosfet, pnjlim
from circuitprop.cli import main

GMIN = 1e-12
# NMOS: KP·W/L = 1e-4, VTO 0.8, GAMMA 0.4, PHI 0.65, LAMBDA 0.03
BETA, VTO, GAMMA, PHI, LAM = 1e-4, 0.8, 0.4, 0.65, 0.03
VBI = VTO - GAMMA * math.sqrt(PHI)
IS_D, IS_S = 2e-14, 1e-14


def ev(vgs, vds, vbs, gamma=GAMMA, lam=LAM):
    e = mosfet(jnp.asarray(vgs), jnp.asarray(vds), jnp.asarray(vbs), BETA,
               VTO - gamma * math.sqrt(PHI), gamma, PHI, lam, IS_D, IS_S, GMIN)
    return [float(x) for x in e]


def vth(vbs):
    """Threshold on the side acting as source, as ngspice continues it for vbs > 0."""
    if vbs <= 0:
        s = math.sqrt(PHI - vbs)
    else:
        s = max(0.0, math.sqrt(PHI) - vbs / (2 * math.sqrt(PHI)))
    return VBI + GAMMA * s


def hand(vgs, vds, vbs):
    """The Shichman–Hodges drain current with drain/source swap, written out."""
    if vds < 0:
        return -hand(vgs - vds, -vds, vbs - vds)
    vgst = vgs - vth(vbs)
    if vgst <= 0:
        return 0.0
    if vgst <= vds:
        return 0.5 * BETA * (1 + LAM * vds) * vgst**2
    return BETA * (1 + LAM * vds) * vds * (vgst - vds / 2)


# ------------------------------------------------------------------------------ the law


@pytest.mark.parametrize(
    "vgs, vds, vbs, region",
    [
        (0.5, 2.0, 0.0, "cut-off"),
        (0.8, 2.0, 0.0, "cut-off at threshold"),
        (1.5, 3.0, 0.0, "saturation"),
        (3.0, 0.5, 0.0, "triode"),
        (1.5, 0.7, 0.0, "saturation edge"),
        (1.5, 3.0, -1.0, "saturation, body effect"),
        (3.0, 0.5, -2.0, "triode, body effect"),
        (1.5, 3.0, 0.2, "forward vbs (ngspice's continuation)"),
        (1.5, 3.0, 2.0, "vbs > 2 PHI (threshold term clipped)"),
        (1.0, -0.5, -1.0, "reverse triode"),
        (1.0, -3.0, -1.0, "reverse saturation"),
        (0.2, -0.3, -1.0, "reverse cut-off"),
    ],
)
def test_drain_current_matches_hand_formula(vgs, vds, vbs, region):
    ids = ev(vgs, vds, vbs)[0]
    want = hand(vgs, vds, vbs)
    assert ids == pytest.approx(want, rel=1e-14, abs=1e-20), region


def test_threshold_and_regions_by_hand():
    # saturation at vbs = 0: (β/2)(1 + λ vds)(vgs - VTO)²
    assert ev(1.5, 3.0, 0.0)[0] == pytest.approx(0.5e-4 * 1.09 * 0.7**2, rel=1e-14)
    # triode: β(1 + λ vds) vds (vgs - VTO - vds/2)
    assert ev(3.0, 0.5, 0.0)[0] == pytest.approx(1e-4 * 1.015 * 0.5 * (2.2 - 0.25), rel=1e-14)
    # body effect: VTO + GAMMA (√(PHI - vbs) - √PHI)
    assert ev(1.5, 3.0, -1.0)[-1] == pytest.approx(
        0.8 + 0.4 * (math.sqrt(1.65) - math.sqrt(0.65)), rel=1e-14)
    # vbs > 0: √PHI - vbs / (2√PHI) instead of √(PHI - vbs); clipped at 0 beyond 2 PHI
    assert ev(1.5, 3.0, 0.2)[-1] == pytest.approx(
        VBI + GAMMA * (math.sqrt(PHI) - 0.2 / (2 * math.sqrt(PHI))), rel=1e-14)
    assert ev(1.5, 3.0, 1.3)[-1] == pytest.approx(VBI, rel=1e-14)
    assert ev(1.5, 3.0, 2.0)[-1] == pytest.approx(VBI, rel=1e-14)
    # λ = 0: no output conductance in saturation
    assert ev(1.5, 3.0, 0.0, lam=0.0)[2] == 0.0


def test_reverse_mode_swaps_drain_and_source():
    # vds < 0: the device is the same one seen from the other side, current negated
    for vgs, vds, vbs in [(1.0, -0.5, -1.0), (2.0, -3.0, -0.5), (0.5, -0.2, -2.0)]:
        fwd = ev(vgs - vds, -vds, vbs - vds)
        rev = ev(vgs, vds, vbs)
        assert rev[0] == pytest.approx(-fwd[0], rel=1e-14, abs=1e-20)
        # the junctions swap too
        assert rev[4] == pytest.approx(fwd[6], rel=1e-14) or IS_D != IS_S


def test_junction_diodes_as_ngspice():
    # reverse below -3 vt: -IS + GMIN v; forward: IS (exp(v/vt) - 1) + GMIN v
    ids, gm, gds, gmbs, ibd, gbd, ibs, gbs, von = ev(1.5, 3.0, -1.0)
    assert ibd == pytest.approx(-IS_D + GMIN * (-4.0), rel=1e-14)
    assert gbd == GMIN
    assert ibs == pytest.approx(-IS_S + GMIN * (-1.0), rel=1e-14)
    _, _, _, _, ibd, gbd, ibs, gbs, _ = ev(1.5, 0.1, 0.3)
    assert ibs == pytest.approx(IS_S * math.expm1(0.3 / VT) + GMIN * 0.3, rel=1e-13)
    assert gbs == pytest.approx(IS_S * math.exp(0.3 / VT) / VT + GMIN, rel=1e-13)
    assert ibd == pytest.approx(IS_D * math.expm1(0.2 / VT) + GMIN * 0.2, rel=1e-13)


def test_conductances_are_the_derivatives():
    rng = np.random.default_rng(0)
    pts = np.column_stack([rng.uniform(-1, 4, 400), rng.uniform(-4, 4, 400),
                           rng.uniform(-3, 1.5, 400)])

    def currents(v):
        e = mosfet(v[0], v[1], v[2], BETA, VBI, GAMMA, PHI, LAM, IS_D, IS_S, GMIN)
        return jnp.stack([e.ids, e.ibd, e.ibs])

    jac = jax.vmap(jax.jacfwd(currents))(jnp.asarray(pts))
    e = mosfet(*jnp.asarray(pts.T), BETA, VBI, GAMMA, PHI, LAM, IS_D, IS_S, GMIN)
    g = np.stack([e.gm, e.gds, e.gmbs], axis=1)
    assert np.allclose(np.asarray(jac[:, 0, :]), g, rtol=1e-12, atol=1e-18)
    # ibd depends on vbd = vbs - vds, ibs on vbs
    assert np.allclose(np.asarray(jac[:, 1, 2]), np.asarray(e.gbd), rtol=1e-12, atol=1e-20)
    assert np.allclose(np.asarray(jac[:, 1, 1]), -np.asarray(e.gbd), rtol=1e-12, atol=1e-20)
    assert np.allclose(np.asarray(jac[:, 2, 2]), np.asarray(e.gbs), rtol=1e-12, atol=1e-20)
    # every region was sampled
    vgst = pts[:, 0] - np.where(pts[:, 1] >= 0, 0, pts[:, 1]) - np.asarray(e.von)
    assert (vgst <= 0).any() and (vgst > np.abs(pts[:, 1])).any()
    assert ((vgst > 0) & (vgst < np.abs(pts[:, 1]))).any() and (pts[:, 1] < 0).any()


# ------------------------------------------------------------------------------ limits


def test_ngspice_step_limits():
    # fetlim (vto = 1): off -> at most vto + 0.5; middle -> at most vto + 4; on -> 2|vold-vto|+2
    assert float(fetlim(5.0, 0.0, 1.0)) == 1.5
    assert float(fetlim(0.5, 0.0, 1.0)) == 0.5
    assert float(fetlim(10.0, 2.0, 1.0)) == 5.0
    assert float(fetlim(20.0, 5.0, 1.0)) == 15.0
    assert float(fetlim(-3.0, 5.0, 1.0)) == 3.0
    assert float(fetlim(-9.0, 0.0, 1.0)) == -4.0
    # limvds
    assert float(limvds(10.0, 0.0)) == 4.0
    assert float(limvds(-3.0, 0.0)) == -0.5
    assert float(limvds(20.0, 4.0)) == 14.0
    assert float(limvds(1.0, 4.0)) == 2.0
    # pnjlim (ngspice's, with the limit on negative steps)
    vt = 0.025
    assert float(pnjlim(1.0, 0.0, vt, 0.6)) == pytest.approx(vt * math.log(1.0 / vt))
    assert float(pnjlim(1.0, 0.5, vt, 0.6)) == pytest.approx(0.5 + vt * (2 + math.log(18.0)))
    assert float(pnjlim(-5.0, -1.0, vt, 0.6)) == -3.0
    assert float(pnjlim(0.3, 0.0, vt, 0.6)) == 0.3


# ------------------------------------------------------------------------------ parser

MODELS = """.model nm nmos (level=1 vto=0.8 kp=60u lambda=0.03 gamma=0.4 phi=0.65)
.model pm pmos level=1 vto=-0.9 kp=25u
"""


def test_element_fields_and_defaults():
    nl = deck("M1 d g s b nm\nM2 d g 0 0 pm L=2u W=10u M=3 AD=1p AS=2p PD=3u PS=4u NRD=2 NRS=3 "
              "OFF IC=1, 2, 3\n" + MODELS)
    m1, m2 = nl.elements
    assert m1.kind == "m" and m1.nodes == ("d", "g", "s", "b") and m1.model == "nm"
    d1 = m1.mosfet
    assert (d1.l, d1.w, d1.m, d1.ad, d1.as_, d1.nrd, d1.nrs, d1.off) == (
        1e-4, 1e-4, 1.0, 0.0, 0.0, 1.0, 1.0, False)  # ngspice 39: L = W = 100 um
    assert d1.model.polarity == 1 and d1.model.kp == 60e-6 and d1.model.phi == 0.65
    d2 = m2.mosfet
    assert m2.m == 3 and d2.model.polarity == -1 and d2.model.vto == -0.9
    assert (d2.l, d2.w, d2.ad, d2.as_, d2.pd, d2.ps, d2.nrd, d2.nrs, d2.off, d2.ic) == (
        2e-6, 10e-6, 1e-12, 2e-12, 3e-6, 4e-6, 2.0, 3.0, True, (1.0, 2.0, 3.0))
    assert d2.beta == pytest.approx(25e-6 * 3 * 5)
    assert d2.model.gamma == 0.0 and d2.model.phi == 0.6 and d2.model.is_ == 1e-14


def test_defaults_from_options_and_model_card():
    nl = deck("M1 d g 0 0 nm\nM2 d g 0 0 nc\nM3 d g 0 0 nc l=7u m=2\n"
              ".options defl=2u defw=3u defm=1.5 defad=5p\n" + MODELS
              + ".model nc nmos (l=4u w=6u nrd=2 tnom=27)\n")
    m1, m2, m3 = (e.mosfet for e in nl.elements)
    assert (m1.l, m1.w, m1.m, m1.ad) == (2e-6, 3e-6, 1.5, 5e-12)
    assert (m2.l, m2.w, m2.nrd) == (4e-6, 6e-6, 2.0)  # the card's instance defaults
    assert (m3.l, m3.w, m3.m) == (7e-6, 6e-6, 2.0)


def test_derived_parameters():
    nl = deck("M1 d g 0 0 nt\nM2 d g 0 0 ns\nM3 d g 0 0 ps\n"
              ".model nt nmos (tox=20n u0=450 ld=0.1u cgso=2n cgdo=3n cgbo=4n)\n"
              ".model ns nmos (tox=20n nsub=1e16)\n"
              ".model ps pmos (tox=20n nsub=1e16 kp=30u tpg=-1)\n")
    m1, m2, m3 = (e.mosfet for e in nl.elements)
    cox = 3.9 * 8.854214871e-12 / 20e-9
    assert m1.model.cox == pytest.approx(cox, rel=1e-15)
    assert m1.model.kp == pytest.approx(450 * cox * 1e-4, rel=1e-15)
    assert m1.leff == pytest.approx(100e-6 - 0.2e-6)
    assert m1.overlap_capacitances() == pytest.approx((2e-9 * 1e-4, 3e-9 * 1e-4, 4e-9 * m1.leff))
    # NSUB: PHI = 2 vt ln(NSUB/ni), GAMMA = √(2 ε_si q NSUB)/COX, VTO from the work functions
    vt = 300.15 * 1.38064852e-23 / 1.6021766208e-19
    phi = 2 * vt * math.log(1e16 / 1.45e10)
    assert m2.model.phi == pytest.approx(phi, rel=1e-14)
    gamma = math.sqrt(2 * 11.7 * 8.854214871e-12 * 1.6021766208e-19 * 1e22) / cox
    assert m2.model.gamma == pytest.approx(gamma, rel=1e-14)
    eg = 1.16 - 7.02e-4 * 300.15**2 / (300.15 + 1108)
    vfb = (3.25 + 0.5 * eg - 0.5 * eg) - (3.25 + 0.5 * eg + 0.5 * phi)
    assert m2.model.vto == pytest.approx(vfb + gamma * math.sqrt(phi) + phi, rel=1e-13)
    assert m2.model.kp == pytest.approx(600 * cox * 1e-4, rel=1e-15)  # U0 default 600
    assert m3.model.kp == 30e-6 and m3.model.vto < 0


def test_subcircuit_flattening():
    nl = deck(".subckt inv a y vdd\nmp y a vdd vdd pl l=1u w=4u\nmn y a 0 0 nm\n"
              ".model pl pmos (vto=-0.7)\n.ends\nx1 in out vcc inv\n" + MODELS)
    mp, mn = nl.elements
    assert mp.name == "m.x1.mp" and mp.nodes == ("out", "in", "vcc", "vcc")
    assert mp.model == "x1.pl" and mp.mosfet.model.name == "x1.pl"
    assert mn.name == "m.x1.mn" and mn.model == "nm"


# ------------------------------------------------------------------------------ refusals

BAD = [
    ("M1 d g 0 0 nm\n.model nm nmos (level=3 vto=1 theta=0.1)\n",
     2, "m1: MOSFET level 3 is not supported (level 1 only)"),
    ("M1 d g 0 0 nx\n.model nm nmos (vto=1)\n", 2, "m1: unknown MOSFET model 'nx'"),
    ("M1 d g 0 nm\n.model nm nmos (vto=1)\n", 2,
     "m1: 3 node(s) before model 'nm', a MOSFET has 4"),
    ("M1 d g 0 0 0 nm\n.model nm nmos (vto=1)\n", 2,
     "m1: 5 node(s) before model 'nm', a MOSFET has 4"),
    ("M1 d g\n", 2, "m1: a MOSFET needs 4 nodes and a model name"),
    ("M1 d g 0 0 dm\n.model dm d (is=1e-14)\n", 2,
     "m1: model 'dm' is of type D, not a MOSFET model (NMOS or PMOS)"),
    ("D1 d 0 pm\n.model pm pmos (vto=-1)\n", 2, "d1: model 'pm' is of type PMOS, not a diode"),
    ("M1 d g 0 0 nm\n.model nm nmos (vto=1 kpp=2e-5)\n", 3,
     "model 'nm': unknown MOSFET model parameter 'kpp' (did you mean 'kp'?)"),
    ("M1 d g 0 0 nm\n.model nm nmos (vto=1 theta=0.1)\n", 3,
     "unknown MOSFET model parameter 'theta' (a parameter of MOSFET levels 2 and 3"),
    ("M1 d g 0 0 nm\n.model nm nmos (vto=1 m=2)\n", 3,
     "m on a MOSFET model is ignored by ngspice"),
    ("M1 d g 0 0 nm\n.model nm nmos (vto=1 tnom=50)\n", 3, "tnom=50 is not implemented"),
    ("M1 d g 0 0 nm\n.model nm nmos (phi=0)\n", 3, "phi=0.0 must be positive"),
    ("M1 d g 0 0 nm\n.model nm nmos (tox=20n nsub=1e9)\n", 3, "'Nsub < Ni'"),
    ("M1 d g 0 0 nm l=-1u\n.model nm nmos (vto=1)\n", 2, "m1: l=-1e-06 must be positive"),
    ("M1 d g 0 0 nm l=1u\n.model nm nmos (vto=1 ld=0.6u)\n", 2,
     "m1: effective channel length L - 2*LD"),
    ("M1 d g 0 0 nm foo=1\n.model nm nmos (vto=1)\n", 2, "m1: unknown parameter 'foo'"),
    ("M1 d g 0 0 nm 2u 10u\n.model nm nmos (vto=1)\n", 2, "m1: unexpected '2u'"),
    ("M1 d g 0 0 nm temp=50\n.model nm nmos (vto=1)\n", 2, "m1: temp other than 27 C"),
    ("M1 d g 0 0 nm\n.options defas=1p\n.model nm nmos (vto=1)\n", 3,
     "option defas is not supported"),
    ("M1 d g 0 0 nm\n.model nm nmos (vto=1 rd=0 rsh=10)\n", 2,
     "m1: model 'nm' has rd=0 and rsh"),
    (".subckt inv a y\nmn y a 0 0 nl\n.model nl nmos (level=2)\n.ends\nx1 in out inv\n"
     "v1 in 0 1\nr1 out 0 1k\n", 3,
     "mn: MOSFET level 2 is not supported (level 1 only) (in instance x1 of subckt 'inv')"),
    # topology: a gate conducts nothing at DC
    ("M1 d gx 0 0 nm\nvd d 0 1\n.model nm nmos (vto=1)\n", 2,
     "no DC path to ground: node gx (the gate of MOSFET m1"),
]


@pytest.mark.parametrize("body, line, message", BAD, ids=range(len(BAD)))
def test_bad_decks_exit_2_with_located_message(tmp_path, capsys, body, line, message):
    path = tmp_path / "bad.cir"
    path.write_text("bad mosfet deck\n" + body + "vg g 0 1\n.end\n")
    assert main(["op", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:{line}: " in err, err
    assert message in err, err


# ------------------------------------------------------------------------------ solving

NMOS_DECK = """{title}
vdd vdd 0 {vdd}
vg g 0 {vg}
vbb bb 0 {vbb}
m1 d g s bb {n} l=2u w=10u
rd vdd d 10k
rs s 0 1k
m2 vdd g s2 bb {n} l=2u w=10u
rs2 s2 0 5k
m3 0 g s3 bb {n} l=2u w=10u
rs3 vdd s3 20k
.model {n} {t} (level=1 vto={vto} kp=60u lambda=0.03 gamma=0.4 phi=0.65 rd=20 rs=10)
.end
"""


def test_pmos_is_the_mirror_image_of_nmos():
    nmos = circuitprop.operating_point(NMOS_DECK.format(
        title="n", vdd=5, vg=2.5, vbb=-1, n="nch", t="nmos", vto=0.8))
    pmos = circuitprop.operating_point(NMOS_DECK.format(
        title="p", vdd=-5, vg=-2.5, vbb=1, n="pch", t="pmos", vto=-0.8))
    for k, v in nmos.voltages.items():
        assert pmos.voltages[k] == pytest.approx(-v, rel=1e-12, abs=1e-15), k
    for k, i in nmos.currents.items():
        assert pmos.currents[k] == pytest.approx(-i, rel=1e-12, abs=1e-20), k
    assert nmos.stats["method"] == "newton-kcl"
    # energy balance with the MOSFETs' dissipation
    p = nmos.power
    assert abs(p["total"] - p["delivered"]) <= 1e-12 * p["total"]
    assert {"m1", "m2", "m3"} <= set(p["elements"])


def test_kcl_holds_at_the_solution():
    from circuitprop._api import prepare
    from circuitprop._solve._methods import steady_state
    from circuitprop._solve._mna import MnaOptions, residual

    c, info = prepare(NMOS_DECK.format(title="n", vdd=5, vg=2.5, vbb=-1, n="nch", t="nmos",
                                       vto=0.8))
    sol = steady_state(c, info.defaults, MnaOptions(), "newton")
    r = np.asarray(residual(c, info.defaults, sol.u))
    assert np.max(np.abs(r)) < 1e-15
    assert info.mosfets == ["m1", "m2", "m3"]
    assert "m1#drain" in info.nodes and "m1#rd" in info.resistors


def inverter_chain(n: int, vin: float) -> str:
    lines = [f"{n} inverters", "vdd vdd 0 3.3", f"vin n0 0 {vin}"]
    for k in range(n):
        lines.append(f"mp{k} n{k + 1} n{k} vdd vdd pch l=1u w=4u")
        lines.append(f"mn{k} n{k + 1} n{k} 0 0 nch l=1u w=2u")
    lines += [".model nch nmos (level=1 vto=0.7 kp=110u lambda=0.04 gamma=0.4 phi=0.7)",
              ".model pch pmos (level=1 vto=-0.7 kp=50u lambda=0.05 gamma=0.45 phi=0.7)",
              ".dc vin 0 3.3 0.3", ".end"]
    return "\n".join(lines) + "\n"


def test_newton_converges_from_zero_on_a_long_inverter_chain():
    # each stage has a gain of ~30: the first linearisations put nodes at 1e70 V and more
    op = circuitprop.operating_point(inverter_chain(40, 1.2))
    v = op.voltages
    assert v["n1"] > 3.0 and abs(v["n2"]) < 1e-6
    assert v["n39"] == pytest.approx(3.3, abs=1e-6) and v["n40"] == pytest.approx(0.0, abs=1e-6)
    sweep = circuitprop.dc_sweep(inverter_chain(40, 1.2))
    out = np.asarray(sweep.voltages["n1"])
    # the ends are off by the junction leakage (IS + GMIN·V) through the conducting device
    assert out[0] == pytest.approx(3.3, abs=1e-7) and out[-1] == pytest.approx(0.0, abs=1e-7)
    assert np.all(np.diff(out) <= 1e-12)


def test_first_newton_state_as_ngspice():
    from circuitprop._api import prepare

    c, info = prepare("t\nvd d 0 1\nvg g 0 1\n"
                      "m1 d g 0 0 nm\nm2 d g 0 0 pm\nm3 d g 0 0 nm off\n"
                      "m4 d g 0 0 pm ic=2,1.5\nm5 d g 0 0 nm icvbs=-0.5\n" + MODELS)
    init = np.asarray(c.mosfets.init)
    # (vgs, vds, vbs) in the NMOS sense: (polarity·VTO, 0, -1), zero bias when OFF, the IC
    assert init[:, 0].tolist() == [0.8, 0.0, -1.0]
    assert init[:, 1].tolist() == [0.9, 0.0, -1.0]
    assert init[:, 2].tolist() == [0.0, 0.0, 0.0]
    assert init[:, 3].tolist() == [-1.5, -2.0, 0.0]
    assert init[:, 4].tolist() == [0.0, 0.0, -0.5]
    assert np.asarray(c.mosfets.off).tolist() == [False, False, True, False, False]
