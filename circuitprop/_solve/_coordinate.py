"""Nonlinear block coordinate descent on a circuit's energy (the ``coordinate`` method).

The unknowns are coloured so that no element joins two unknowns of one colour
(:func:`circuitprop._structure.colour_unknowns`; the layers of a layered network). A sweep
visits the colours in turn; with the other colours held, the energy of a colour is a sum of
one-dimensional convex functions, one per unknown, each minimised exactly and in parallel:
closed form for nodes without diodes, scalar Newton with SPICE junction limiting
(:class:`ColourSystem`, run by the package's one :class:`~._newton.Newton` loop) for nodes
carrying diodes. The resistive part is applied as matmuls on the circuit's dense blocks
(:class:`~._dense.LinearPart`).

Convergence is Newton's test: a sweep that moves no node by more than ``atol + rtol·max|v|``,
with the remaining error estimated from the sweep-to-sweep contraction (a linearly
converging sweep stops when ``move·ρ/(1−ρ)`` is below the tolerance too); a sweep that moves
nothing beyond the rounding floor ``16·ε·max|v|`` has converged as far as the arithmetic
allows (float32: about 2e-4 V at 100 V inputs).

Coordinate descent converges on every circuit (the energy is convex) but linearly, at a
rate set by how strongly the colours couple: a few sweeps for layered networks, where each
node's conductance to its fixed neighbours dominates; thousands for lattices and strings of
diodes, which ``newton`` solves in a few steps.

Output costs other than the ``mse`` nudge (cross-entropy) couple every output: circuits
with them use the ``newton`` or ``dense`` method.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._circuit import Circuit, Values
from .._devices import diode, junction_limit
from .._energy import Nudge, OutputCost
from .._errors import ExperimentError
from .._structure import colour_unknowns
from ._dense import LinearPart, layout_of, linear_part
from ._newton import Advance, Linearisation, Newton, NewtonSystem, converged_step
from ._result import RESULTS, Solution

__all__ = ["Colour", "Coordinate", "ColourSystem", "with_colours", "coordinate_solve"]


class Colour(eqx.Module):
    """One colour: its unknowns ``idx`` and the diodes touching them (``d_idx``), each with
    the position of its colour terminal in ``idx`` (``d_pos``) and ``d_sign`` (+1 when that
    terminal is the anode)."""

    idx: jax.Array
    d_idx: jax.Array
    d_pos: jax.Array
    d_sign: jax.Array

    @property
    def linear(self) -> bool:
        return self.d_idx.shape[0] == 0


def with_colours(c: Circuit, pairs: list[tuple[np.ndarray, np.ndarray]] = ()) -> Circuit:
    """``c`` with the colours of its unknowns in its layout: no resistor, diode or extra
    ``pairs`` of nodes (output nudges) joins two unknowns of a colour."""
    nv = np.asarray(c.node_var)
    edges = [(nv[np.asarray(c.r_a)], nv[np.asarray(c.r_b)]),
             (nv[np.asarray(c.diodes.a)], nv[np.asarray(c.diodes.b)])]
    edges += [(nv[np.asarray(p)], nv[np.asarray(m)]) for p, m in pairs]
    sets = colour_unknowns(c.n_u, edges)
    da, db = nv[np.asarray(c.diodes.a)], nv[np.asarray(c.diodes.b)]
    colours = []
    for s in sets:
        s = np.asarray(s)
        pos = np.full(c.n_u + 1, -1)
        pos[s] = np.arange(len(s))
        d_idx, d_pos, d_sign = [], [], []
        for k in range(len(da)):
            if da[k] == db[k]:
                continue
            for node, sign in ((da[k], 1.0), (db[k], -1.0)):
                if pos[node] >= 0:
                    d_idx.append(k); d_pos.append(pos[node]); d_sign.append(sign)
        colours.append(Colour(idx=jnp.asarray(s.astype(np.int32)),
                              d_idx=jnp.asarray(np.asarray(d_idx, dtype=np.int32)),
                              d_pos=jnp.asarray(np.asarray(d_pos, dtype=np.int32)),
                              d_sign=jnp.asarray(np.asarray(d_sign, dtype=np.float64))))
    layout = layout_of(c)
    return eqx.tree_at(lambda x: x.layout, c, eqx.tree_at(
        lambda lay: lay.colours, layout, tuple(colours), is_leaf=lambda x: x is None),
        is_leaf=lambda x: x is None)


class Coordinate(eqx.Module):
    """Options of the coordinate method: Newton's tolerances (``rtol``, ``atol``, see
    :class:`~._newton.Newton`), the sweep cap ``max_sweeps`` and the scalar Newton's
    ``inner_steps`` cap per colour visit (``inner_steps = 1``: one junction-limited Newton
    step per visit instead of the exact one-dimensional minimum, the Gauss–Seidel–Newton
    iteration; same fixed point, same convergence test)."""

    rtol: float = 1e-12
    atol: float = 1e-14
    max_sweeps: int = eqx.field(static=True, default=20000)
    inner_steps: int = eqx.field(static=True, default=100)

    @classmethod
    def like(cls, newton: Newton, max_sweeps: int = 2000) -> Coordinate:
        """The coordinate options with a Newton solver's tolerances (a linearly converging
        sweep stops just below them, where Newton's last quadratic step lands far below)."""
        return cls(rtol=newton.rtol, atol=newton.atol, max_sweeps=max_sweeps)


class ColourSystem(NewtonSystem):
    """One colour's unknowns ``t`` with the rest of the circuit held: residual
    ``d∘t + s + Σ_diodes ±i_D(vd)`` with ``vd = vd_base ± t`` (diagonal Jacobian).

    ``d``: the linear diagonal; ``s``: the rest of the linear residual; ``vd_base``: each
    touching diode's voltage less its colour terminal's unknown; ``scale``: ``max|v|`` of
    the circuit for the convergence test."""

    colour: Colour
    c: Circuit
    d: jax.Array
    s: jax.Array
    vd_base: jax.Array
    scale: jax.Array

    def _params(self):
        dd = self.c.diodes
        k = self.colour.d_idx
        return dd.is_[k], dd.vte[k], dd.tbv[k], dd.nbvt[k], dd.has_bv[k], dd.vcrit[k]

    def _vd(self, t):
        col = self.colour
        return self.vd_base + col.d_sign * t[col.d_pos]

    def init(self, t0):
        return self._vd(t0)

    def linearise(self, t, vj) -> Linearisation:
        col = self.colour
        r = self.d * t + self.s
        jd = self.d
        if not col.linear:
            is_, vte, tbv, nbvt, has_bv, _ = self._params()
            i0, g0, _ = diode(vj, is_, vte, tbv, nbvt, has_bv, self.c.gmin)
            i = i0 + g0 * (self._vd(t) - vj)
            n = t.shape[0]
            r = r + jax.ops.segment_sum(col.d_sign * i, col.d_pos, num_segments=n)
            jd = jd + jax.ops.segment_sum(g0, col.d_pos, num_segments=n)
        return Linearisation(residual=r, matvec=lambda x: jd * x, diag=jd)

    def solve_linear(self, lin, rhs, tol, maxiter):
        x = rhs / lin.diag
        ok = jnp.all(jnp.isfinite(x))
        return x, jnp.asarray(1), RESULTS.where(ok, RESULTS.successful, RESULTS.singular)

    def advance(self, t, dt, vj, lin, newton, state) -> Advance:
        col = self.colour
        t_new = t + dt
        tol = newton.atol + newton.rtol * self.scale
        small, dnorm = converged_step(dt, tol, state.step_norm)
        if col.linear:  # one exact step: the closed form
            return Advance(u=t_new, aux=vj, small=jnp.asarray(True),
                           result=RESULTS.successful, norm=dnorm)
        vd_new = self._vd(t_new)
        small = small & (jnp.max(jnp.abs(vd_new - vj), initial=0.0) <= 10 * tol)
        if jnp.iscomplexobj(t):
            vj_new = vd_new
        else:
            _, vte, _, _, _, vcrit = self._params()
            vj_new = junction_limit(vd_new, vj, vte, vcrit)
        return Advance(u=t_new, aux=vj_new, small=small, result=RESULTS.successful, norm=dnorm)


def _sweep(c: Circuit, values: Values, lp: LinearPart, inner: Newton, u):
    """One sweep over the colours from ``u``: the new unknowns, scalar Newton iterations
    taken, and whether every colour's solve converged."""
    scale = jnp.max(jnp.abs(lp.voltages(u)), initial=0.0)
    its = jnp.asarray(0)
    ok = jnp.asarray(True)
    for col in layout_of(c).colours:
        t = u[col.idx]
        d = lp.diag[col.idx]
        s = lp.gradient(u)[col.idx] - d * t
        if col.linear:  # the closed form
            u = u.at[col.idx].set(-s / d)
            its = its + 1
            continue
        else:
            v = lp.voltages(u)
            dd = c.diodes
            k = col.d_idx
            vd_base = v[dd.a[k]] - v[dd.b[k]] - col.d_sign * t[col.d_pos]
        system = ColourSystem(colour=col, c=c, d=d, s=s, vd_base=vd_base, scale=scale)
        if inner.max_steps == 1:
            st = inner.step(system, inner.init(system, t))
            u = u.at[col.idx].set(st.u)
            its = its + 1
            ok = ok & (st.result == RESULTS.successful)
            continue
        sol = inner(system, t)
        u = u.at[col.idx].set(sol.u)
        its = its + sol.steps
        ok = ok & (sol.result == RESULTS.successful)
    return u, its, ok


def coordinate_solve(c: Circuit, values: Values, u0, options: Coordinate,
                     nudge: Nudge | None = None, cost: OutputCost | None = None,
                     warm: bool = False) -> Solution:
    """Minimise the circuit energy (plus an output ``nudge``) from ``u0`` by colour sweeps
    (see the module docstring). ``warm`` is accepted for symmetry with Newton: each colour
    visit starts its junction states at the present voltages.

    **Returns:** a :class:`Solution` (``steps``: sweeps; ``inner``: scalar Newton
    iterations summed over colour visits).
    """
    if cost is not None:
        raise ExperimentError("the coordinate method solves mse nudges only (a cross-entropy "
                              "cost couples every output): use the newton or dense method")
    if layout_of(c).colours is None:
        pairs = [] if nudge is None else [(nudge.p, nudge.m)]
        c = with_colours(c, pairs)
    lp = linear_part(c, values, nudge)
    inner = Newton(rtol=options.rtol, atol=options.atol, max_steps=options.inner_steps)
    real = jnp.real(u0).dtype

    def cond(s):
        _, k, move, _, _, ok = s
        return (k < options.max_sweeps) & (move > 1.0) & ok

    def body(s):
        u, k, _, prev, its, _ = s
        u_new, n_in, ok = _sweep(c, values, lp, inner, u)
        vmax = jnp.max(jnp.abs(lp.voltages(u_new)), initial=0.0)
        tol = options.atol + options.rtol * vmax
        change = jnp.max(jnp.abs(u_new - u), initial=0.0)
        rate = jnp.where(prev > 0, change / prev, 1.0)
        est = jnp.where(rate < 1, change * rate / jnp.maximum(1 - rate, 1e-300), jnp.inf)
        # at the rounding floor the sweeps only shuffle the last bits: no rate to estimate
        floor = 16 * jnp.finfo(real).eps * vmax
        move = jnp.where(change <= floor, 0.0, jnp.maximum(change, est) / tol)
        ok = ok & jnp.all(jnp.isfinite(u_new))
        u = jnp.where(ok, u_new, u)
        return u, k + 1, move, change.astype(real), its + n_in, ok

    init = (u0, jnp.asarray(0), jnp.asarray(jnp.inf, real), jnp.asarray(0.0, real),
            jnp.asarray(0), jnp.asarray(True))
    if u0.shape[0] == 0:
        return Solution(u=u0, result=RESULTS.successful, steps=jnp.asarray(0),
                        inner=jnp.asarray(0))
    u, k, move, _, its, ok = jax.lax.while_loop(cond, body, init)
    result = RESULTS.where(~ok, RESULTS.step_failed,
                           RESULTS.where(move <= 1.0, RESULTS.successful, RESULTS.max_steps))
    return Solution(u=u, result=result, steps=k, inner=its)
