"""Device laws at DC, written for JAX arrays (one entry per device).

Each law gives the branch current ``i(v)``, its conductance ``di/dv`` and its co-content
``Φ(v) = ∫_0^v i(u) du`` (the device's term in the circuit energy).
"""

from __future__ import annotations

import math

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
