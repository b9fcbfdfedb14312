"""Newton on the KCL residual (modified nodal analysis) for circuits with controlled sources.

E, F, G and H make the circuit non-reciprocal: there is no co-content energy, so the state is
found as a root of the MNA residual. Unknowns: node voltages, then branch currents of V, L, E
and H. Small circuits use a dense LU of the Jacobian; above ``dense_limit`` unknowns the Newton
system is solved by GMRES on Jacobian-vector products. Diode steps are junction-limited, then
backtracked on the residual norm.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from .._circuit import MnaCircuit, Values
from .._devices import diode, junction_limit
from ._result import MAX_STEPS, NONFINITE, SUCCESS, Solution


class MnaOptions(eqx.Module):
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


def mna_solve(c: MnaCircuit, values: Values, x0, options: MnaOptions):
    """Newton on :func:`residual` from ``x0``; returns a :class:`Solution`."""
    size = c.n_nodes + c.n_br
    f = lambda x: residual(c, values, x)

    def newton_step(x, r):
        if size <= options.dense_limit:
            jac = jax.jacfwd(f)(x)
            return jnp.linalg.solve(jac, -r), jnp.asarray(1)
        mv = lambda y: jax.jvp(f, (x,), (y,))[1]
        dx, _ = jax.scipy.sparse.linalg.gmres(mv, -r, tol=1e-12, restart=50, maxiter=50)
        return dx, jnp.asarray(50)

    def cond(state):
        _, _, k, _, done = state
        return (~done) & (k < options.max_steps)

    def body(state):
        x, r, k, inner, _ = state
        dx, its = newton_step(x, r)
        alpha0 = _fraction(c, x, dx)
        rn = jnp.linalg.norm(r)

        def bt_cond(s):
            a, rr, j = s
            return (jnp.linalg.norm(rr) > (1 - 1e-4 * a) * rn) & (j < 30) & ~(a >= 1.0)

        def bt_body(s):
            a, _, j = s
            a = 0.5 * a
            return a, f(x + a * dx), j + 1

        r1 = f(x + alpha0 * dx)
        alpha, r_new, _ = jax.lax.while_loop(bt_cond, bt_body, (alpha0, r1, jnp.asarray(0)))
        # a full Newton step is always taken when it is offered (near convergence the
        # residual norm is at rounding level and cannot be compared)
        x_new = x + alpha * dx
        v, ib = split(c, x)
        vs = jnp.max(jnp.abs(v))
        step = jnp.abs(alpha * dx)
        small_v = jnp.max(step[: c.n_nodes], initial=0.0) <= options.atol + options.rtol * vs
        ibs = jnp.max(jnp.abs(ib), initial=0.0)
        small_i = jnp.max(step[c.n_nodes:], initial=0.0) <= 1e-15 + options.rtol * 10 * ibs
        done = (small_v & small_i & (alpha >= 1.0)) | ~jnp.all(jnp.isfinite(x_new))
        return x_new, r_new, k + 1, inner + its, done

    init = (x0, f(x0), jnp.asarray(0), jnp.asarray(0), jnp.asarray(size == 0))
    x, _, k, inner, done = jax.lax.while_loop(cond, body, init)
    finite = jnp.all(jnp.isfinite(x))
    result = jnp.where(~finite, NONFINITE, jnp.where(done, SUCCESS, MAX_STEPS))
    return Solution(u=x, result=result, steps=k, inner=inner)
