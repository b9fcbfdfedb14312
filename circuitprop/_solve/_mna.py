"""The KCL residual (modified nodal analysis) for circuits with controlled sources, solved by
the package's :class:`~._newton.Newton`.

E, F, G and H make the circuit non-reciprocal: there is no co-content energy, so the state is
found as a root of the MNA residual. Unknowns: node voltages, then branch currents of V, L, E
and H. Small circuits use a dense LU of the Jacobian (lineax); above ``dense_limit`` unknowns
the Newton system is solved by GMRES (lineax) on Jacobian-vector products; a singular or
unconverged linear solve is a failure. Diode steps are junction-limited, then backtracked on
the residual norm.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from .._circuit import MnaCircuit, Values
from .._devices import diode, junction_limit
from ._linear import dense_solve, gmres_solve
from ._newton import Advance, Linearisation, Newton, NewtonSystem
from ._result import RESULTS, Solution


class MnaOptions(eqx.Module):
    """Tolerances of :func:`mna_solve`: converged when a full step moves no node by more
    than ``atol + rtol·max|v|`` (branch currents: ``1e-15 + 10·rtol·max|i|``)."""

    rtol: float = 1e-11
    atol: float = 1e-13
    max_steps: int = eqx.field(static=True, default=200)
    dense_limit: int = eqx.field(static=True, default=3000)


def _seg(x, i, n):
    return jax.ops.segment_sum(x, i, num_segments=n)


def split(c: MnaCircuit, x):
    """``(v, i_br)``: node voltages with the ground slot appended, and branch currents."""
    v = jnp.concatenate([x[: c.n_nodes], jnp.zeros((1,), x.dtype)])
    return v, x[c.n_nodes:]


def residual(c: MnaCircuit, values: Values, x):
    """KCL at every node, then the constitutive equation of every voltage-defining branch."""
    n = c.n_nodes + 1
    v, ib = split(c, x)
    ir = values.g * (v[c.r_a] - v[c.r_b])
    j = _seg(ir, c.r_a, n) - _seg(ir, c.r_b, n)
    d = c.diodes
    if d.a.shape[0]:
        idd = diode(v[d.a] - v[d.b], d.is_, d.vte, d.tbv, d.nbvt, d.has_bv, c.gmin)[0]
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


def mna_solve(c: MnaCircuit, values: Values, x0, options: MnaOptions) -> Solution:
    """Newton on :func:`residual` from ``x0``; returns a :class:`Solution`."""
    newton = Newton(rtol=options.rtol, atol=options.atol, max_steps=options.max_steps)
    return newton(MnaSystem(c=c, values=values, dense_limit=options.dense_limit), x0)
