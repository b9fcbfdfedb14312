"""Device laws at DC, written for JAX arrays (one entry per device).

Each two-terminal law gives the branch current ``i(v)``, its conductance ``di/dv`` and its
co-content ``Φ(v) = ∫_0^v i(u) du`` (the device's term in the circuit energy). The level-1
MOSFET (:func:`mosfet`) has no co-content (it is not reciprocal): it gives its currents and
their derivatives, and SPICE's step limits (:func:`mosfet_limit`) for Newton on the KCL
residual.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax.numpy as jnp
import numpy as np

#: Boltzmann's constant and the elementary charge as ngspice uses them.
BOLTZMANN = 1.38064852e-23
CHARGE = 1.6021766208e-19
#: Nominal temperature (27 °C) in kelvin.
TNOM = 300.15
#: Thermal voltage kT/q at TNOM (0.025864917007157463 V).
VT = BOLTZMANN * TNOM / CHARGE

#: Beyond ``exp(_XMAX)`` the junction exponential continues linearly (no overflow). At
#: that point a diode with IS = 1e-14 A would carry 1e29 A: no real operating point is there.
_XMAX = 100.0
#: Stand-in for an infinite breakdown voltage inside arithmetic.
_NO_BV = 1e30


def breakdown_voltage(is_: float, bv: float, ibv: float, nbv: float) -> float:
    """ngspice's effective breakdown voltage ``tBV`` (diotemp.c), iterated to convergence.

    **Arguments:** the (area- and m-scaled) saturation current, the model's BV, the scaled
    breakdown current IBV and the breakdown emission coefficient NBV.

    **Returns:** tBV, or ``inf`` when the model has no BV.
    """
    if not math.isfinite(bv):
        return math.inf
    if ibv < is_ * bv / VT:
        return bv
    nvt = nbv * VT
    xbv = bv - nvt * math.log(1.0 + ibv / is_)
    for _ in range(25):
        xbv = bv - nvt * math.log(ibv / is_ + 1.0 - xbv / VT)
        xcbv = is_ * (math.exp((bv - xbv) / nvt) - 1.0 + xbv / VT)
        if abs(xcbv - ibv) <= 1e-12 * ibv:
            break
    return xbv


def diode_arrays(models: list[tuple[float, float, float, float, float]]) -> dict[str, np.ndarray]:
    """Per-diode parameter arrays from ``(is_eff, n, bv, ibv_eff, nbv)`` tuples."""
    is_ = np.array([m[0] for m in models], dtype=np.float64)
    vte = np.array([m[1] * VT for m in models], dtype=np.float64)
    tbv = np.array([breakdown_voltage(*m[:1], m[2], m[3], m[4]) for m in models], dtype=np.float64)
    has_bv = np.isfinite(tbv)
    tbv = np.where(has_bv, tbv, _NO_BV)
    nbvt = np.array([m[4] * VT for m in models], dtype=np.float64)
    return {"is_": is_, "vte": vte, "tbv": tbv, "nbvt": nbvt, "has_bv": has_bv}


def _re(x):
    return jnp.real(x)


def _exp_lin(x):
    """exp(x) for Re x <= _XMAX, continued by its tangent beyond; returns (value, slope,
    integral from -inf). Holomorphic in x away from the seam (regions chosen by Re x)."""
    # float32 overflows past exp(88.7): continue linearly from exp(80) there
    xmax = _XMAX if jnp.finfo(_re(x).dtype).bits == 64 else 80.0
    beyond = _re(x) > xmax
    xc = jnp.where(beyond, xmax, x)
    e = jnp.exp(xc)
    d = jnp.where(beyond, x - xmax, 0.0)
    return e * (1.0 + d), e, e * (1.0 + d + 0.5 * d * d)


def diode(vd, is_, vte, tbv, nbvt, has_bv, gmin):
    """ngspice level-1 diode at DC (dioload.c), vectorised.

    **Arguments:** junction voltage ``vd`` and per-diode parameters (see :func:`diode_arrays`),
    ``gmin`` the conductance ngspice puts across every junction. ``vd`` may be complex (the
    analytic continuation of each region's law, the region chosen by ``Re vd``).

    **Returns:** ``(current, conductance, co_content)``, each shaped like ``vd``.
    """
    # forward: vd >= -3 vte
    x = vd / vte
    ef, gf_e, intf = _exp_lin(x)
    i_fwd = is_ * (ef - 1.0)
    g_fwd = is_ * gf_e / vte
    phi_fwd = is_ * (vte * (intf - 1.0) - vd)
    # reverse: -tBV <= vd < -3 vte, i = -IS (1 + (a / vd)^3), a = 3 vte / e
    v0 = -3.0 * vte
    a = 3.0 * vte / math.e
    vr = jnp.where(_re(vd) < v0, vd, v0)
    ar3 = (a / vr) ** 3
    i_rev = -is_ * (1.0 + ar3)
    g_rev = 3.0 * is_ * ar3 / vr
    phi_v0 = is_ * (vte * (math.exp(-3.0) - 1.0) - v0)
    phi_rev = phi_v0 - is_ * (vr - v0) + 0.5 * is_ * a**3 * (vr**-2 - v0**-2)
    # breakdown: vd < -tBV, i = -IS exp(-(tBV + vd) / (NBV Vt))
    vb = jnp.where(_re(vd) < -tbv, vd, -tbv)
    eb, gb_e, intb = _exp_lin(-(tbv + vb) / nbvt)
    i_brk = -is_ * eb
    g_brk = is_ * gb_e / nbvt
    vbr = jnp.minimum(-tbv, v0)
    phi_at_bv = (
        phi_v0 - is_ * (vbr - v0) + 0.5 * is_ * a**3 * (vbr**-2 - v0**-2)
    )
    phi_brk = phi_at_bv + is_ * nbvt * (intb - 1.0)
    fwd = _re(vd) >= v0
    brk = has_bv & (_re(vd) < -tbv)
    i = jnp.where(fwd, i_fwd, jnp.where(brk, i_brk, i_rev))
    g = jnp.where(fwd, g_fwd, jnp.where(brk, g_brk, g_rev))
    phi = jnp.where(fwd, phi_fwd, jnp.where(brk, phi_brk, phi_rev))
    return i + gmin * vd, g + gmin, phi + 0.5 * gmin * vd * vd


def junction_limit(vnew, vold, vte, vcrit):
    """SPICE's pnjlim: the junction voltage a Newton step may reach from ``vold``.

    A forward step above ``vcrit`` larger than 2 vte is cut to a logarithmic one, so the
    exponential cannot overflow or overshoot wildly.
    """
    big = (vnew > vcrit) & (jnp.abs(vnew - vold) > 2.0 * vte)
    arg = 1.0 + (vnew - vold) / vte
    from_pos = jnp.where(arg > 0, vold + vte * jnp.log(jnp.maximum(arg, 1e-300)), vcrit)
    from_neg = vte * jnp.log(jnp.maximum(vnew / vte, 1e-300))
    lim = jnp.where(vold > 0, from_pos, from_neg)
    return jnp.where(big, lim, vnew)


# --------------------------------------------------------------------------- MOSFET level 1


class MosfetEval(NamedTuple):
    """A level-1 MOSFET evaluated at ``(vgs, vds, vbs)`` (see :func:`mosfet`).

    - ``ids``: channel current from drain to source; ``gm``, ``gds``, ``gmbs``: its
      derivatives with respect to ``vgs``, ``vds``, ``vbs`` (terminal voltages, whichever
      of drain and source acts as the source).
    - ``ibd``, ``gbd``: bulk–drain junction current (bulk to drain) and ``d ibd / d vbd``;
      ``ibs``, ``gbs``: the same for the bulk–source junction.
    - ``von``: the threshold voltage at this bias (with the body effect, on the side that
      acts as the source).
    """

    ids: Any
    gm: Any
    gds: Any
    gmbs: Any
    ibd: Any
    gbd: Any
    ibs: Any
    gbs: Any
    von: Any


def _junction(v, is_, gmin):
    """ngspice's MOSFET bulk junction (mos1load.c): ``IS (exp(v/vt) - 1) + GMIN v`` above
    ``-3 vt``, ``-IS + GMIN v`` below; returns (current, conductance)."""
    vr = jnp.where(v > -3.0 * VT, v, 0.0)
    e, de, _ = _exp_lin(vr / VT)
    fwd = v > -3.0 * VT
    i = jnp.where(fwd, is_ * (e - 1.0), -is_) + gmin * v
    g = jnp.where(fwd, is_ * de / VT, 0.0) + gmin
    return i, g


def mosfet(vgs, vds, vbs, beta, vbi, gamma, phi, lam, is_d, is_s, gmin) -> MosfetEval:
    """ngspice's level-1 (Shichman–Hodges) MOSFET at DC (mos1load.c), vectorised.

    Voltages and currents are in the NMOS sense: for a PMOS pass ``-vgs, -vds, -vbs`` and
    negate the currents (ngspice's ``type = -1``); conductances are unchanged.

    **Arguments:**

    - ``vgs``, ``vds``, ``vbs``: terminal voltages. For ``vds < 0`` drain and source swap
      roles (reverse mode): the law is applied to ``vgd``, ``-vds``, ``vbd``.
    - ``beta``: ``KP·M·W / (L - 2·LD)``; ``vbi``: ``VTO - GAMMA·√PHI`` (so the threshold at
      zero body bias is VTO); ``gamma``, ``phi``, ``lam``: GAMMA, PHI, LAMBDA.
    - ``is_d``, ``is_s``: saturation currents of the bulk–drain and bulk–source junctions;
      ``gmin``: the conductance ngspice puts across each.

    **Returns:** a :class:`MosfetEval`. Threshold ``von = vbi + GAMMA·√(PHI - vbs)`` for
    ``vbs <= 0``, continued for ``vbs > 0`` by ngspice's tangent
    ``√PHI - vbs / (2√PHI)`` (clipped at 0). With ``vgst = vgs - von``: cut-off
    (``vgst <= 0``) ``ids = 0``; saturation (``vgst <= vds``)
    ``ids = β(1 + λ vds) vgst² / 2``; triode ``ids = β(1 + λ vds) vds (vgst - vds / 2)``.
    """
    fwd = vds >= 0
    vds_f = jnp.where(fwd, vds, -vds)
    vgs_f = jnp.where(fwd, vgs, vgs - vds)
    vbs_f = jnp.where(fwd, vbs, vbs - vds)
    sqphi = jnp.sqrt(phi)
    below = vbs_f <= 0
    s_neg = jnp.sqrt(phi - jnp.where(below, vbs_f, 0.0))
    s_pos = sqphi - vbs_f / (sqphi + sqphi)
    sarg = jnp.where(below, s_neg, jnp.maximum(s_pos, 0.0))
    # d sarg / d vbs_f (ngspice's gmbs = gm·GAMMA/(2 sarg) is this for vbs <= 0)
    dsarg = jnp.where(below, -0.5 / s_neg, jnp.where(s_pos > 0, -0.5 / sqphi, 0.0))
    von = vbi + gamma * sarg
    vgst = vgs_f - von
    betap = beta * (1.0 + lam * vds_f)
    sat = vgst <= vds_f
    cd = jnp.where(sat, 0.5 * betap * vgst * vgst, betap * vds_f * (vgst - 0.5 * vds_f))
    gm_f = jnp.where(sat, betap * vgst, betap * vds_f)
    gds_f = jnp.where(sat, 0.5 * lam * beta * vgst * vgst,
                      betap * (vgst - vds_f) + lam * beta * vds_f * (vgst - 0.5 * vds_f))
    on = vgst > 0
    cd = jnp.where(on, cd, 0.0)
    gm_f = jnp.where(on, gm_f, 0.0)
    gds_f = jnp.where(on, gds_f, 0.0)
    gmbs_f = -gamma * dsarg * gm_f
    ids = jnp.where(fwd, cd, -cd)
    gm = jnp.where(fwd, gm_f, -gm_f)
    gds = jnp.where(fwd, gds_f, gm_f + gds_f + gmbs_f)
    gmbs = jnp.where(fwd, gmbs_f, -gmbs_f)
    ibd, gbd = _junction(vbs - vds, is_d, gmin)
    ibs, gbs = _junction(vbs, is_s, gmin)
    return MosfetEval(ids, gm, gds, gmbs, ibd, gbd, ibs, gbs, von)


def channel_gate_cocontent(vgs, vds, vbs, beta, vbi, gamma, phi, lam):
    """``∂P/∂vgs`` of a level-1 channel, ``P = ∫₀^|vds| |ids| dv`` its co-content taken from
    its lower-potential end (the source; the drain in reverse mode), in the NMOS sense.

    A channel has no energy (it is not reciprocal), but ``P`` is what a resistor's
    ``½ g ΔV²`` is to its conductance: with the gate as the parameter, ``∂P/∂V_G`` is the local
    quantity that coupled learning contrasts between phases. Along ``v`` the
    transconductance is ``β(1 + λv)·v`` in the triode region and ``β(1 + λv)·vgst`` in
    saturation, so with ``a = min(|vds|, vgst)``::

        ∂P/∂vgs = β [a²/2 + λa³/3 + vgst·((|vds| − a) + λ(vds² − a²)/2)]   (vgst > 0, else 0)

    which is ``½β ΔV²`` (plus the λ term) in the ohmic region: a transistor edge's gate
    plays the part of a resistor's conductance. ``vgst = vgs − von`` is taken in the forward
    frame (``vgd``, ``vbd`` in reverse mode), as :func:`mosfet` does. A PMOS passes its
    NMOS-sense voltages; ``∂P/∂V_G`` is then ``polarity`` times this.
    """
    fwd = vds >= 0
    vds_f = jnp.abs(vds)
    vgs_f = jnp.where(fwd, vgs, vgs - vds)
    vbs_f = jnp.where(fwd, vbs, vbs - vds)
    sqphi = jnp.sqrt(phi)
    below = vbs_f <= 0
    sarg = jnp.where(below, jnp.sqrt(phi - jnp.where(below, vbs_f, 0.0)),
                     jnp.maximum(sqphi - vbs_f / (sqphi + sqphi), 0.0))
    vgst = jnp.maximum(vgs_f - (vbi + gamma * sarg), 0.0)
    a = jnp.minimum(vds_f, vgst)
    return beta * (0.5 * a * a + lam * a ** 3 / 3.0
                   + vgst * ((vds_f - a) + 0.5 * lam * (vds_f * vds_f - a * a)))


def fetlim(vnew, vold, vto):
    """ngspice's DEVfetlim: the gate voltage a Newton step may reach from ``vold`` given the
    threshold ``vto`` (at most a few volts past threshold per step, never across it in one
    jump from far off)."""
    vtsthi = jnp.abs(2.0 * (vold - vto)) + 2.0
    vtstlo = jnp.abs(vold - vto) + 1.0
    vtox = vto + 3.5
    delv = vnew - vold
    # on, well above threshold
    going_off = jnp.where(vnew >= vtox, jnp.where(-delv > vtstlo, vold - vtstlo, vnew),
                          jnp.maximum(vnew, vto + 2.0))
    staying_on = jnp.where(delv >= vtsthi, vold + vtsthi, vnew)
    high = jnp.where(delv <= 0, going_off, staying_on)
    # on, near threshold
    middle = jnp.where(delv <= 0, jnp.maximum(vnew, vto - 0.5), jnp.minimum(vnew, vto + 4.0))
    # off
    vtemp = vto + 0.5
    rising = jnp.where(vnew <= vtemp, jnp.where(delv > vtstlo, vold + vtstlo, vnew), vtemp)
    off = jnp.where(delv <= 0, jnp.where(-delv > vtsthi, vold - vtsthi, vnew), rising)
    return jnp.where(vold >= vto, jnp.where(vold >= vtox, high, middle), off)


def limvds(vnew, vold):
    """ngspice's DEVlimvds: the drain–source voltage a Newton step may reach from ``vold``."""
    up = vnew > vold
    high = jnp.where(up, jnp.minimum(vnew, 3.0 * vold + 2.0),
                     jnp.where(vnew < 3.5, jnp.maximum(vnew, 2.0), vnew))
    low = jnp.where(up, jnp.minimum(vnew, 4.0), jnp.maximum(vnew, -0.5))
    return jnp.where(vold >= 3.5, high, low)


def pnjlim(vnew, vold, vt, vcrit):
    """ngspice's DEVpnjlim (with its limiting of negative steps): the junction voltage a
    Newton step may reach from ``vold``."""
    big = (vnew > vcrit) & (jnp.abs(vnew - vold) > vt + vt)
    arg = (vnew - vold) / vt
    from_pos = jnp.where(arg > 0, vold + vt * (2.0 + jnp.log(jnp.maximum(arg - 2.0, 1e-300))),
                         vold - vt * (2.0 + jnp.log(jnp.maximum(2.0 - arg, 1e-300))))
    from_neg = vt * jnp.log(jnp.maximum(vnew / vt, 1e-300))
    lim_big = jnp.where(vold > 0, from_pos, from_neg)
    floor = jnp.where(vold > 0, -vold - 1.0, 2.0 * vold - 1.0)
    lim_small = jnp.where((vnew < 0) & (vnew < floor), floor, vnew)
    return jnp.where(big, lim_big, lim_small)


def mosfet_limit(vgs, vds, vbs, vgs_old, vds_old, vbs_old, von_old, vcrit_d, vcrit_s):
    """The MOSFET voltages ngspice evaluates at after a Newton step (mos1load.c): the gate
    voltage of the side acting as source limited by :func:`fetlim` around the previous
    threshold ``von_old``, ``vds`` by :func:`limvds`, then the forward-biased bulk
    junction by :func:`pnjlim`. All in the NMOS sense; returns ``(vgs, vds, vbs)``."""
    vgd = vgs - vds
    vgd_old = vgs_old - vds_old
    # normal mode: limit vgs, then vds
    vgs_a = fetlim(vgs, vgs_old, von_old)
    vds_a = limvds(vgs_a - vgd, vds_old)
    # inverse mode: limit vgd, then -vds
    vgd_b = fetlim(vgd, vgd_old, von_old)
    vds_b = -limvds(-(vgs - vgd_b), -vds_old)
    vgs_b = vgd_b + vds_b
    fwd = vds_old >= 0
    vgs_l = jnp.where(fwd, vgs_a, vgs_b)
    vds_l = jnp.where(fwd, vds_a, vds_b)
    vbs_a = pnjlim(vbs, vbs_old, VT, vcrit_s)
    vbd_b = pnjlim(vbs - vds, vbs_old - vds_old, VT, vcrit_d)
    vbs_l = jnp.where(vds_l >= 0, vbs_a, vbd_b + vds_l)
    return vgs_l, vds_l, vbs_l


def diode_limit(vnew, vold, vte, vcrit, tbv, nbvt, has_bv):
    """ngspice's diode step limit (dioload.c): :func:`pnjlim` on the junction voltage, or,
    deep in reverse bias of a diode with BV, on its distance beyond the breakdown voltage."""
    brk = has_bv & (vnew < jnp.minimum(0.0, -tbv + 10.0 * nbvt))
    in_brk = -(pnjlim(-(vnew + tbv), -(vold + tbv), nbvt, vcrit) + tbv)
    return jnp.where(brk, in_brk, pnjlim(vnew, vold, vte, vcrit))
