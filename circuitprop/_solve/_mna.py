"""The KCL residual (modified nodal analysis) for circuits with controlled sources or MOSFETs,
solved by the package's :class:`~._newton.Newton`.

E, F, G, H and MOSFETs make the circuit non-reciprocal: there is no co-content energy, so the
state is found as a root of the MNA residual. Unknowns: node voltages, then branch currents of
V, L, E and H. Small circuits use a dense LU of the Jacobian (lineax); above ``dense_limit``
unknowns the Newton system is solved by GMRES (lineax) on Jacobian-vector products; a singular
or unconverged linear solve is a failure. Without MOSFETs (:class:`MnaSystem`), diode steps
are junction-limited, then backtracked on the residual norm.

With MOSFETs (:class:`SpiceSystem`) the iteration is SPICE's: every MOSFET carries a Newton
state ``(vgs, vds, vbs)`` (ngspice's initial ``(VTO, 0, -1)``, its IC, or zero bias for OFF
devices, which stay there until a first convergence, as in ngspice) and every diode a
junction voltage (initially ``vcrit``); each iteration solves the circuit with
the devices replaced by their tangents at those states (companion models), and the states
then follow the new device voltages as far as ngspice's ``fetlim``, ``limvds`` and
``pnjlim`` allow. Converged when a step is small and every state already equals its device's
voltages.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from .._circuit import MnaCircuit, Values
from .._devices import diode, diode_limit, junction_limit, mosfet, mosfet_limit
from ._linear import dense_solve, gmres_solve
from ._newton import Advance, Linearisation, Newton, NewtonSystem
from ._result import RESULTS, Solution


class MnaOptions(eqx.Module):
    """Tolerances of :func:`mna_solve`: converged when a full step moves no node by more
    than ``atol + rtol·max|v|`` (branch currents: ``1e-15 + 10·rtol·max|i|``)."""

    rtol: float = 1e-11
    atol: float = 1e-13
    max_steps: int = eqx.field(static=True, default=400)
    dense_limit: int = eqx.field(static=True, default=3000)


def _seg(x, i, n):
    return jax.ops.segment_sum(x, i, num_segments=n)


def split(c: MnaCircuit, x):
    """``(v, i_br)``: node voltages with the ground slot appended, and branch currents."""
    v = jnp.concatenate([x[: c.n_nodes], jnp.zeros((1,), x.dtype)])
    return v, x[c.n_nodes:]


def mosfet_voltages(c: MnaCircuit, v):
    """``(vgs, vds, vbs)`` of every MOSFET in the NMOS sense (times the polarity), from node
    voltages ``v`` (ground slot appended)."""
    m = c.mosfets
    vs = v[m.s]
    p = m.polarity
    return p * (v[m.g] - vs), p * (v[m.d] - vs), p * (v[m.b] - vs)


def mosfet_eval(c: MnaCircuit, vgs, vds, vbs):
    """:func:`~circuitprop._devices.mosfet` of every MOSFET at NMOS-sense voltages."""
    m = c.mosfets
    return mosfet(vgs, vds, vbs, m.beta, m.vbi, m.gamma, m.phi, m.lam, m.is_d, m.is_s, c.gmin)


def mosfet_currents(c: MnaCircuit, v, companion=None):
    """Currents into the drain and bulk terminals of every MOSFET (the source takes minus
    their sum, the gate none). ``companion``: ``(state, eval)`` replaces each device by its
    tangent at its Newton state; ``None``: the device law itself."""
    vn = mosfet_voltages(c, v)
    if companion is None:
        e = mosfet_eval(c, *vn)
        ids, ibd, ibs = e.ids, e.ibd, e.ibs
    else:
        state, e = companion
        dgs, dds, dbs = (a - b for a, b in zip(vn, state))
        ids = e.ids + e.gm * dgs + e.gds * dds + e.gmbs * dbs
        ibd = e.ibd + e.gbd * (dbs - dds)
        ibs = e.ibs + e.gbs * dbs
    p = c.mosfets.polarity
    return p * (ids - ibd), p * (ibd + ibs)


def mosfet_power(c: MnaCircuit, v):
    """Power dissipated in the MOSFETs (channels and bulk junctions) at node voltages ``v``
    (ground slot appended), watts: ``Σ`` terminal current × terminal voltage."""
    m = c.mosfets
    if m is None or not m.d.shape[0]:
        return jnp.zeros((), v.dtype)
    i_d, i_b = mosfet_currents(c, v)
    return jnp.sum(i_d * v[m.d] + i_b * v[m.b] - (i_d + i_b) * v[m.s])


def residual(c: MnaCircuit, values: Values, x, companion=None, diode_companion=None):
    """KCL at every node, then the constitutive equation of every voltage-defining branch.
    ``companion``: MOSFETs as their tangents at their Newton states (see
    :func:`mosfet_currents`); ``diode_companion``: ``(vd0, i0, g0)``, diodes as their
    tangents at junction voltages ``vd0``."""
    n = c.n_nodes + 1
    v, ib = split(c, x)
    ir = values.g * (v[c.r_a] - v[c.r_b])
    j = _seg(ir, c.r_a, n) - _seg(ir, c.r_b, n)
    m = c.mosfets
    if m is not None and m.d.shape[0]:
        i_d, i_b = mosfet_currents(c, v, companion)
        j = j + _seg(i_d, m.d, n) + _seg(i_b, m.b, n) - _seg(i_d + i_b, m.s, n)
    d = c.diodes
    if d.a.shape[0]:
        vd = v[d.a] - v[d.b]
        if diode_companion is None:
            idd = diode(vd, d.is_, d.vte, d.tbv, d.nbvt, d.has_bv, c.gmin)[0]
        else:
            vd0, i0, g0 = diode_companion
            idd = i0 + g0 * (vd - vd0)
        j = j + _seg(idd, d.a, n) - _seg(idd, d.b, n)
    if c.i_a.shape[0]:
        j = j + _seg(values.isrc, c.i_a, n) - _seg(values.isrc, c.i_b, n)
    if c.n_br:
        j = j + _seg(ib, c.br_a, n) - _seg(ib, c.br_b, n)
    if c.g_a.shape[0]:
        ig = c.g_gain * (v[c.g_ca] - v[c.g_cb])
        j = j + _seg(ig, c.g_a, n) - _seg(ig, c.g_b, n)
    if c.f_a.shape[0]:
        i_f = c.f_gain * ib[c.f_ctrl]
        j = j + _seg(i_f, c.f_a, n) - _seg(i_f, c.f_b, n)
    if not c.n_br:
        return j[: c.n_nodes]
    vab = v[c.br_a] - v[c.br_b]
    target = jnp.where(
        c.br_kind == 0, values.vsrc[c.br_vsrc] if c.n_vb else 0.0,
        jnp.where(c.br_kind == 1, c.br_gain * (v[c.br_ca] - v[c.br_cb]),
                  c.br_gain * ib[c.br_ctrl]))
    return jnp.concatenate([j[: c.n_nodes], vab - target])


def _fraction(c: MnaCircuit, x, dx):
    d = c.diodes
    if not d.a.shape[0]:
        return jnp.asarray(1.0, x.dtype)
    v0, _ = split(c, x)
    v1, _ = split(c, x + dx)
    vold, vnew = v0[d.a] - v0[d.b], v1[d.a] - v1[d.b]
    vlim = junction_limit(vnew, vold, d.vte, d.vcrit)
    dv = vnew - vold
    frac = jnp.where(jnp.abs(dv) > 0, (vlim - vold) / jnp.where(dv == 0, 1.0, dv), 1.0)
    return jnp.clip(jnp.min(jnp.clip(frac, 0.0, 1.0)), 1e-3, 1.0)


class MnaSystem(NewtonSystem):
    """The MNA residual as a :class:`~._newton.NewtonSystem`."""

    c: MnaCircuit
    values: Values
    dense_limit: int = eqx.field(static=True, default=3000)

    def f(self, x):
        return residual(self.c, self.values, x)

    def init(self, u0):
        return jnp.zeros((), u0.dtype)

    def linearise(self, x, aux) -> Linearisation:
        r = self.f(x)
        if x.shape[0] <= self.dense_limit:
            jac = jax.jacfwd(self.f)(x)
            return Linearisation(residual=r, matvec=lambda y: jac @ y, extra=jac)
        return Linearisation(residual=r, matvec=lambda y: jax.jvp(self.f, (x,), (y,))[1])

    def solve_linear(self, lin: Linearisation, rhs, tol, maxiter: int):
        if lin.extra is not None:
            return dense_solve(lin.extra, rhs)
        dx, its, res = gmres_solve(lin.matvec, rhs, tol)
        # an unfinished GMRES that halved the residual still gives an inexact Newton step
        unfinished = (res == RESULTS.linear_max_steps) | (res == RESULTS.stagnation)
        reached = jax.lax.cond(unfinished & jnp.all(jnp.isfinite(dx)),
                               lambda: jnp.linalg.norm(rhs - lin.matvec(dx)),
                               lambda: jnp.asarray(jnp.inf, rhs.dtype))
        res = RESULTS.where(unfinished & (reached <= 0.5 * jnp.linalg.norm(rhs)),
                            RESULTS.successful, res)
        return dx, its, res

    def advance(self, x, dx, aux, lin, newton, state) -> Advance:
        c, f = self.c, self.f
        alpha0 = _fraction(c, x, dx)
        rn = jnp.linalg.norm(lin.residual)

        def bt_cond(s):
            a, rr, j = s
            return (jnp.linalg.norm(rr) > (1 - 1e-4 * a) * rn) & (j < 30) & ~(a >= 1.0)

        def bt_body(s):
            a, _, j = s
            a = 0.5 * a
            return a, f(x + a * dx), j + 1

        # a full Newton step is always taken when it is offered (near convergence the
        # residual norm is at rounding level and cannot be compared)
        alpha, _, _ = jax.lax.while_loop(bt_cond, bt_body, (alpha0, f(x + alpha0 * dx),
                                                             jnp.asarray(0)))
        x_new = x + alpha * dx
        v, ib = split(c, x)
        vs = jnp.max(jnp.abs(v))
        step = jnp.abs(alpha * dx)
        small_v = jnp.max(step[: c.n_nodes], initial=0.0) <= newton.atol + newton.rtol * vs
        ibs = jnp.max(jnp.abs(ib), initial=0.0)
        small_i = jnp.max(step[c.n_nodes:], initial=0.0) <= 1e-15 + newton.rtol * 10 * ibs
        return Advance(u=x_new, aux=aux, small=small_v & small_i & (alpha >= 1.0),
                       result=RESULTS.successful, norm=jnp.max(step, initial=0.0))


#: The node voltages of an iterate are clipped to ±max(1e6 V, 1000 × the largest V source).
_XBOUND = 1e6

#: gmin stepping (SPICE's fallback when Newton does not converge): after ``GMIN_AFTER``
#: iterations without convergence a conductance ``GMIN_START`` is put from every node to
#: ground; each time the circuit converges with it, it is divided by ``GMIN_FACTOR``, down to
#: ``GMIN_END`` and then removed; a stage that takes ``GMIN_STAGE`` iterations multiplies it
#: by ``GMIN_FACTOR`` instead (ngspice's dynamic gmin stepping starts at GMIN·1e10).
GMIN_AFTER = 100
GMIN_START = 1e-2
GMIN_FACTOR = 10.0
GMIN_END = 1e-13
GMIN_STAGE = 40


class SpiceSystem(NewtonSystem):
    """The MNA residual of a circuit with MOSFETs, iterated as SPICE iterates.

    The auxiliary state holds every MOSFET's ``(vgs, vds, vbs)`` (NMOS sense), every diode's
    junction voltage, and whether the first phase is still on (ngspice's MODEINITFIX: OFF
    devices held at zero bias until the rest has converged once). Each iteration replaces
    the devices by their tangents at those states, which makes the residual affine in the
    unknowns, and solves for the new unknowns themselves (not a step: in a chain of
    high-gain stages an intermediate solution may lie far away, and ``x + (x_new - x)`` would
    lose ``x_new`` to rounding). The states then follow the new device voltages as far as
    ngspice's limits allow (:func:`~circuitprop._devices.mosfet_limit`,
    :func:`~circuitprop._devices.diode_limit`).
    Converged when the unknowns moved by less than the tolerances and every state already
    equals its device's voltages. When that has not happened after ``GMIN_AFTER``
    iterations, SPICE's gmin stepping takes over (``gmin_stepping``; see
    :data:`GMIN_AFTER`): a conductance from every node to ground, lowered stage by stage as
    the circuit converges with it, then removed. Above ``dense_limit`` unknowns the linear system is solved
    by GMRES for the step.
    """

    c: MnaCircuit
    values: Values
    dense_limit: int = eqx.field(static=True, default=3000)
    gmin_stepping: bool = eqx.field(static=True, default=True)

    def init(self, u0):
        c, dt = self.c, u0.dtype
        # ngspice's junction initialisation (see Mosfets.init); diodes at vcrit; then:
        # still in ngspice's first phase (OFF devices at zero bias), the gmin-stepping
        # shunt (0: none) and the iterations spent at it
        init = c.mosfets.init.astype(dt)
        return ((init[0], init[1], init[2]), c.diodes.vcrit.astype(dt), jnp.any(c.mosfets.off),
                jnp.zeros((), dt), jnp.zeros((), jnp.int32))

    def _affine(self, aux):
        """The residual with every device replaced by its tangent at its state (and the
        gmin-stepping shunt from every node to ground)."""
        c = self.c
        mos, vd0, _, shunt, _ = aux
        d = c.diodes
        dcomp = None
        if d.a.shape[0]:
            i0, g0, _ = diode(vd0, d.is_, d.vte, d.tbv, d.nbvt, d.has_bv, c.gmin)
            dcomp = (vd0, i0, g0)
        comp = (mos, mosfet_eval(c, *mos))

        def f(x):
            r = residual(c, self.values, x, comp, dcomp)
            return r.at[: c.n_nodes].add(shunt * x[: c.n_nodes])

        return f

    def linearise(self, x, aux) -> Linearisation:
        f = self._affine(aux)
        r = f(x)
        if x.shape[0] <= self.dense_limit:
            jac = jax.jacfwd(f)(x)
            # f(x) = jac·x + f(0): the new unknowns solve jac·x = -f(0)
            return Linearisation(residual=r, matvec=lambda y: jac @ y,
                                 extra=(jac, f(jnp.zeros_like(x))))
        return Linearisation(residual=r, matvec=lambda y: jax.jvp(f, (x,), (y,))[1])

    def solve_linear(self, lin: Linearisation, rhs, tol, maxiter: int):
        """The new unknowns (dense) or the step (GMRES), see :meth:`advance`."""
        if lin.extra is not None:
            jac, r0 = lin.extra
            return dense_solve(jac, -r0)
        return MnaSystem.solve_linear(self, lin, rhs, tol, maxiter)  # type: ignore[arg-type]

    def advance(self, x, sol, aux, lin, newton, state) -> Advance:
        c = self.c
        x_new = sol if lin.extra is not None else x + sol
        # an intermediate solution of a high-gain circuit can lie absurdly far away (and
        # overflow); the states only see it through the limits, so clip it
        bound = _XBOUND
        if c.n_vb:
            bound = jnp.maximum(bound, 1e3 * jnp.max(jnp.abs(self.values.vsrc)))
        x_new = x_new.at[: c.n_nodes].set(jnp.clip(x_new[: c.n_nodes], -bound, bound))
        step = jnp.abs(x_new - x)
        v, ib = split(c, x)
        vs = jnp.max(jnp.abs(v))
        tol = newton.atol + newton.rtol * vs
        small_v = jnp.max(step[: c.n_nodes], initial=0.0) <= tol
        ibs = jnp.max(jnp.abs(ib), initial=0.0)
        small_i = jnp.max(step[c.n_nodes:], initial=0.0) <= 1e-15 + newton.rtol * 10 * ibs
        v_new, _ = split(c, x_new)
        mos, vd_old, fixing, shunt, count = aux
        m, d = c.mosfets, c.diodes
        vn = mosfet_voltages(c, v_new)
        # while fixing, OFF devices sit at zero bias and do not count
        held = m.off & fixing
        gaps = [jnp.max(jnp.where(held, 0.0, jnp.abs(a - b))) for a, b in zip(vn, mos)]
        von = mosfet_eval(c, *mos).von
        mos = tuple(jnp.where(held, 0.0, a)
                    for a in mosfet_limit(*vn, *mos, von, m.vcrit_d, m.vcrit_s))
        vd = vd_old
        if d.a.shape[0]:
            vd_new = v_new[d.a] - v_new[d.b]
            gaps.append(jnp.max(jnp.abs(vd_new - vd_old)))
            vd = diode_limit(vd_new, vd_old, d.vte, d.vcrit, d.tbv, d.nbvt, d.has_bv)
        small = small_v & small_i & (jnp.max(jnp.stack(gaps)) <= 10 * tol)
        stepping = shunt > 0
        count = count + 1
        if self.gmin_stepping:
            # converged with a shunt: lower it (removed below GMIN_END); stuck: start
            # stepping, or raise the shunt of a stage that does not converge
            lower = jnp.where(shunt / GMIN_FACTOR < GMIN_END, 0.0, shunt / GMIN_FACTOR)
            stuck = ~small & (count >= jnp.where(stepping, GMIN_STAGE, GMIN_AFTER))
            new_shunt = jnp.where(small & stepping, lower, shunt)
            new_shunt = jnp.where(stuck, jnp.where(stepping, shunt * GMIN_FACTOR, GMIN_START),
                                  new_shunt)
            count = jnp.where(small | stuck, 0, count)
        else:
            new_shunt = shunt
        # the first phase converged: release the OFF devices (at least one more iteration)
        return Advance(u=x_new, aux=(mos, vd, fixing & ~small, new_shunt.astype(shunt.dtype),
                                     count),
                       small=small & ~fixing & ~stepping,
                       result=RESULTS.successful, norm=jnp.max(step, initial=0.0))


def mna_solve(c: MnaCircuit, values: Values, x0, options: MnaOptions) -> Solution:
    """Newton on :func:`residual` from ``x0``; returns a :class:`Solution`. Circuits with
    MOSFETs are iterated as SPICE iterates (:class:`SpiceSystem`)."""
    newton = Newton(rtol=options.rtol, atol=options.atol, max_steps=options.max_steps)
    if c.mosfets is not None and c.mosfets.d.shape[0]:
        return newton(SpiceSystem(c=c, values=values, dense_limit=options.dense_limit), x0)
    return newton(MnaSystem(c=c, values=values, dense_limit=options.dense_limit), x0)
