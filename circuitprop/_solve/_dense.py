"""The linear part of a circuit's energy on its dense blocks, and Newton on the dense
reduced Hessian.

:class:`LinearPart` is the resistive (and output-nudge) part of ``E`` at given element
values: ``E_lin(u) = ½ uᵀ L u + r0ᵀ u + const``. ``L`` is applied as matmuls on the
circuit's dense blocks (:mod:`circuitprop._structure`) plus an edge list for the other
resistors; ``r0`` is the drive of the sources (one matmul per block with a source-tied
side, once per solve). The coordinate solver (:mod:`._coordinate`) sweeps on it, and
:class:`DenseSystem` assembles ``L`` as a matrix for circuits with few unknowns (a layered
network has ~100 free nodes however many inputs it has) and factorises the reduced Hessian
(Cholesky; LU in complex arithmetic) instead of running CG: the ``dense`` method.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl

from .._circuit import Circuit, Values
from .._energy import Nudge, OutputCost, companion, node_voltages
from .._structure import Layout, find_blocks
from ._linear import jacobi, pcg
from ._newton import CircuitSystem, Linearisation, Newton
from ._result import RESULTS, Solution

__all__ = ["LinearPart", "linear_part", "DenseSystem", "dense_newton", "DENSE_LIMIT",
           "layout_of", "diode_terms"]

#: The most unknowns the dense method factorises (an n×n Cholesky per Newton step).
DENSE_LIMIT = 2000


def _seg(x, idx, n):
    return jax.ops.segment_sum(x, idx, num_segments=n)


def layout_of(c: Circuit) -> Layout:
    """The circuit's layout (every resistor an edge when it was compiled without one)."""
    if c.layout is not None:
        return c.layout
    import numpy as np

    return find_blocks(np.asarray(c.r_a), np.asarray(c.r_b), np.asarray(c.node_var), c.n_u,
                       c.n_nodes)


class LinearPart(eqx.Module):
    """The linear part of the energy at given values (see the module docstring).

    - ``mats``: each block's conductance matrix; ``up``/``uq``: its groups' unknowns;
    - ``ea``, ``eb``, ``eg``: the edge list (other resistors and output nudges) on unknowns;
    - ``diag``: the diagonal of ``L``; ``r0``: ``∇E_lin(0)``;
    - ``v0``: the node voltages at ``u = 0`` (the sources' offsets; see :meth:`voltages`).
    """

    n_u: int = eqx.field(static=True)
    layout: Layout
    mats: tuple
    up: tuple
    uq: tuple
    ea: jax.Array
    eb: jax.Array
    eg: jax.Array
    diag: jax.Array
    r0: jax.Array
    v0: jax.Array
    node_var: jax.Array

    def voltages(self, u):
        """Every node voltage at ``u`` (``node_voltages`` without re-adding the sources)."""
        return jnp.concatenate([u, jnp.zeros((1,), u.dtype)])[self.node_var] + self.v0

    def apply(self, x):
        """``L x``."""
        n = self.n_u
        xe = jnp.concatenate([x, jnp.zeros((1,), x.dtype)])
        y = jnp.zeros((n + 1,), jnp.result_type(x, self.eg))
        for blk, g, up, uq in zip(self.layout.blocks, self.mats, self.up, self.uq):
            if not blk.p_fixed:
                xq = 0.0 if blk.q_fixed else g @ xe[uq]
                y = y + _seg(jnp.sum(g, axis=1) * xe[up] - xq, up, n + 1)
            if not blk.q_fixed:
                xp = 0.0 if blk.p_fixed else xe[up] @ g
                y = y + _seg(jnp.sum(g, axis=0) * xe[uq] - xp, uq, n + 1)
        i = self.eg * (xe[self.ea] - xe[self.eb])
        y = y + _seg(i, self.ea, n + 1) - _seg(i, self.eb, n + 1)
        return y[:n]

    def gradient(self, u):
        """``∇E_lin(u) = L u + r0``."""
        return self.apply(u) + self.r0

    def matrix(self):
        """``L`` as a dense ``n_u × n_u`` matrix."""
        n = self.n_u
        m = jnp.zeros((n + 1, n + 1), self.eg.dtype)
        for blk, g, up, uq in zip(self.layout.blocks, self.mats, self.up, self.uq):
            if not (blk.p_fixed or blk.q_fixed):
                m = m.at[up[:, None], uq[None, :]].add(-g)
                m = m.at[uq[:, None], up[None, :]].add(-g.T)
        m = m.at[self.ea, self.eb].add(-self.eg).at[self.eb, self.ea].add(-self.eg)
        idx = jnp.arange(n)
        m = m[:n, :n]
        return m.at[idx, idx].add(self.diag)


def linear_part(c: Circuit, values: Values, nudge: Nudge | None = None) -> LinearPart:
    """The :class:`LinearPart` of ``c`` at ``values`` (plus the output ``nudge``; β may be
    complex). Current sources enter ``r0``."""
    layout = layout_of(c)
    n = c.n_u
    nv = c.node_var
    dtype = jnp.result_type(values.g, values.vsrc) if nudge is None else \
        jnp.result_type(values.g, nudge.beta)
    v0 = node_voltages(c, values, jnp.zeros((n,), dtype))
    r0 = jnp.zeros((n + 1,), dtype)
    diag = jnp.zeros((n + 1,), dtype)
    mats, ups, uqs = [], [], []
    for blk in layout.blocks:
        g = blk.conductances(values.g).astype(dtype)
        up, uq = nv[blk.p], nv[blk.q]
        vp, vq = v0[blk.p], v0[blk.q]
        if not blk.p_fixed:
            rs = jnp.sum(g, axis=1)
            diag = diag + _seg(rs, up, n + 1)
            r0 = r0 + _seg(rs * vp - g @ vq, up, n + 1)
        if not blk.q_fixed:
            cs = jnp.sum(g, axis=0)
            diag = diag + _seg(cs, uq, n + 1)
            r0 = r0 + _seg(cs * vq - vp @ g, uq, n + 1)
        mats.append(g); ups.append(up); uqs.append(uq)
    ra, rb = c.r_a[layout.rest], c.r_b[layout.rest]
    a_nodes, b_nodes, gs = [ra], [rb], [values.g[layout.rest].astype(dtype)]
    if nudge is not None:
        a_nodes.append(nudge.p); b_nodes.append(nudge.m); gs.append(nudge.beta.astype(dtype))
    a_nodes = jnp.concatenate(a_nodes)
    b_nodes = jnp.concatenate(b_nodes)
    eg = jnp.concatenate(gs)
    ea, eb = nv[a_nodes], nv[b_nodes]
    eg = jnp.where(ea == eb, 0.0, eg)
    i0 = eg * (v0[a_nodes] - v0[b_nodes])
    if nudge is not None:
        k = ra.shape[0]
        i0 = i0.at[k:].add(-eg[k:] * nudge.target)
    r0 = r0 + _seg(i0, ea, n + 1) - _seg(i0, eb, n + 1)
    diag = diag + _seg(eg, ea, n + 1) + _seg(eg, eb, n + 1)
    if c.i_a.shape[0]:
        ia, ib = nv[c.i_a], nv[c.i_b]
        r0 = r0 + _seg(values.isrc.astype(dtype), ia, n + 1) - _seg(values.isrc.astype(dtype), ib, n + 1)
    return LinearPart(n_u=n, layout=layout, mats=tuple(mats), up=tuple(ups), uq=tuple(uqs),
                      ea=ea, eb=eb, eg=eg, diag=diag[:n], r0=r0[:n], v0=v0, node_var=nv)


def diode_terms(c: Circuit, values: Values, u, vj):
    """The diodes linearised at their junction states ``vj`` (companion models), at ``u``:
    ``(v, residual, (da, db, g))``: node voltages, the diodes' KCL residual on the unknowns,
    and their conductances with the unknowns of their terminals."""
    n = c.n_u
    v = node_voltages(c, values, u)
    d = c.diodes
    da, db = c.node_var[d.a], c.node_var[d.b]
    if not d.a.shape[0]:
        return v, jnp.zeros((n,), u.dtype), (da, db, jnp.zeros((0,), u.dtype))
    comp = companion(c, vj)
    vd = v[d.a] - v[d.b]
    i = comp.i0 + comp.g0 * (vd - comp.vd0)
    res = (_seg(i, da, n + 1) - _seg(i, db, n + 1))[:n]
    g = jnp.where(da == db, 0.0, comp.g0)
    return v, res, (da, db, g)


class DenseSystem(CircuitSystem):
    """:class:`CircuitSystem` with its Hessian assembled densely and factorised (the
    ``dense`` method): ``L`` from :class:`LinearPart` plus the diodes' companion
    conductances (and the output cost's Hessian, by forward differentiation of its
    gradient). Same junction handling and convergence test as :class:`CircuitSystem`."""

    lin: LinearPart | None = None
    lmat: jax.Array | None = None

    def linearise(self, u, vj) -> Linearisation:
        c, values, lp = self.c, self.values, self.lin
        n = c.n_u
        v, res_d, (da, db, gd) = diode_terms(c, values, u, vj)
        g = lp.gradient(u) + res_d
        h = jnp.zeros((n + 1, n + 1), jnp.result_type(lp.eg, gd))
        h = h.at[da, da].add(gd).at[db, db].add(gd).at[da, db].add(-gd).at[db, da].add(-gd)
        h = h[:n, :n] + self.lmat
        cost = self.cost
        if cost is not None:
            g = g + cost.gradient_u(c, values, u)
            h = h + jax.jacfwd(lambda w: cost.gradient_u(c, values, w),
                               holomorphic=jnp.iscomplexobj(u))(u)
        return Linearisation(residual=g, matvec=lambda x: h @ x, precond=None, diag=None,
                             extra=(v, h))

    def solve_linear(self, lin: Linearisation, rhs, tol, maxiter: int):
        h = lin.extra[1]
        # symmetric Jacobi scaling first: conductances span tens of decades (gmin next to a
        # junction in breakdown), which Cholesky on the raw matrix does not survive
        d = jnp.sqrt(jnp.abs(jnp.diagonal(h)))
        d = jnp.where(d > 0, d, 1.0)
        hs = h / d[:, None] / d[None, :]
        b = rhs / d
        if jnp.iscomplexobj(h):
            y = jnp.linalg.solve(hs, b)
        else:
            y = jsl.cho_solve(jsl.cho_factor(hs, lower=True), b)
        x = y / d
        ok = jnp.all(jnp.isfinite(x))

        # a Hessian singular to rounding (a junction deep in breakdown in series with an
        # ohmic resistance: g and g + 1 S are one number) is left to the package's CG,
        # which converges on the consistent system
        def cg(_):
            return pcg(lin.matvec, rhs, jacobi(d * d), tol, maxiter, inexact=0.5)

        def direct(_):
            return x, jnp.asarray(1), RESULTS.successful

        return jax.lax.cond(ok, direct, cg, None)

    def advance(self, u, du, vj, lin, newton, state):
        return super().advance(u, du, vj, lin._replace(extra=lin.extra[0]), newton, state)


def dense_newton(c: Circuit, values: Values, u0, options: Newton, nudge: Nudge | None = None,
                 cost: OutputCost | None = None, warm: bool = False) -> Solution:
    """Minimise the circuit energy (plus ``nudge`` / ``cost``) from ``u0`` by :class:`Newton`
    on the dense reduced Hessian (see :class:`DenseSystem`)."""
    lp = linear_part(c, values, nudge)
    system = DenseSystem(c=c, values=values, nudge=nudge, cost=cost, warm=warm, lin=lp,
                         lmat=lp.matrix())
    return options(system, u0)
