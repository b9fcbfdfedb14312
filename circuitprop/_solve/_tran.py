"""Transient analysis: the circuit's DAE ``M x' + F(x, t) = 0`` integrated by diffrax.

``x`` is the MNA vector (node voltages, then the currents of V sources, inductors and
E/H branches; :mod:`._mna`), ``F`` the MNA residual with the sources' time functions
(:mod:`circuitprop._waveforms`) and ``M`` the charge/flux matrix: capacitor stamps on the
node rows, ``−L`` on each inductor's branch row. V-source and resistive rows are algebraic
(an index-1 DAE).

The stepper is TR-BDF2 (Bank et al. 1985; Hosea & Shampine 1996), a one-step, L-stable,
stiffly accurate method of order 2 built for circuits: a trapezoidal stage to ``t + γh``
then a BDF2 stage to ``t + h`` (``γ = 2 − √2``), each an implicit equation
``M X + d·h·F(X, t) = R`` (``d = γ/2``) solved by the package's Newton loop on the MNA system
(diode junction limiting, MOSFET limiting, dense LU). Its error estimate compares the
method's quadrature of ``x'`` over the step with the third-order quadrature through the same
three stage derivatives, filtered as in ``ode23tb`` by ``(M + d·h·J)⁻¹`` so algebraic
components get one too. diffrax's PID controller accepts or rejects steps and lands on every
breakpoint of the sources (PULSE corners, PWL points); outputs are read off the stages'
quadratic interpolant.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import ClassVar

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from .._circuit import MnaCircuit, Values
from .._waveforms import Waves, wave_values
from ._mna import MnaOptions, MnaSystem, SpiceSystem, mna_solve, residual
from ._newton import Newton
from ._result import RESULTS

__all__ = ["TranOptions", "TranCircuit", "TRBDF2", "tran_solve", "settle_solve", "TranResult"]

_GAMMA = 2.0 - math.sqrt(2.0)
_D = _GAMMA / 2.0
_C1 = 1.0 / (_GAMMA * (2.0 - _GAMMA))
_C0 = (1.0 - _GAMMA) ** 2 / (_GAMMA * (2.0 - _GAMMA))
# the method's weights of x'(0), x'(γh), x'(h) over a step, and the third-order quadrature
_A = (_C1 * _D, _C1 * _D, _D)
_BG = 1.0 / (6.0 * _GAMMA * (1.0 - _GAMMA))
_B1 = 0.5 - _GAMMA * _BG
_B = (1.0 - _BG - _B1, _BG, _B1)
_E = tuple(b - a for a, b in zip(_A, _B))


class TranOptions(eqx.Module):
    """Settings of :func:`tran_solve`.

    - ``rtol``, ``atol``: the error controller's tolerances (relative; absolute, volts and
      amperes): each step's estimated local error ``e`` must satisfy
      ``|e| ≤ atol + rtol·max(|x0|, |x1|)`` in the RMS norm over the unknowns.
    - ``newton_rtol``, ``newton_atol``: the stage Newton solves' tolerances.
    """

    rtol: float = 1e-6
    atol: float = 1e-9
    newton_rtol: float = 1e-10
    newton_atol: float = 1e-13


class TranCircuit(eqx.Module):
    """An :class:`~circuitprop._circuit.MnaCircuit` with its dynamics: capacitors
    (``c_a``, ``c_b``, ``c_val``; ground = ``n_nodes``), the MNA row of each inductor's branch
    current and its inductance, and the time functions of the V branches and I sources."""

    mna: MnaCircuit
    c_a: Int[Array, " c"]
    c_b: Int[Array, " c"]
    c_val: Float[Array, " c"]
    l_row: Int[Array, " l"]
    l_val: Float[Array, " l"]
    vwaves: Waves
    iwaves: Waves
    g: Float[Array, " r"]

    def values(self, t) -> Values:
        """The circuit's values at time ``t``."""
        return Values(g=self.g, vsrc=wave_values(self.vwaves, t),
                      isrc=wave_values(self.iwaves, t))

    def charge(self, x):
        """``M x``: capacitor charges on the node rows, ``−L·i`` on inductor rows."""
        n = self.mna.n_nodes
        v = jnp.concatenate([x[:n], jnp.zeros((1,), x.dtype)])
        q = self.c_val * (v[self.c_a] - v[self.c_b])
        seg = lambda d, i: jax.ops.segment_sum(d, i, num_segments=n + 1)  # noqa: E731
        out = jnp.zeros_like(x).at[:n].set((seg(q, self.c_a) - seg(q, self.c_b))[:n])
        if self.l_row.shape[0]:
            out = out.at[self.l_row].set(-self.l_val * x[self.l_row])
        return out

    def residual(self, x, t):
        """``F(x, t)``: the MNA residual with the sources at time ``t``."""
        return residual(self.mna, self.values(t), x)


class _StageMna(MnaSystem):
    """``M X + dh·F(X, t) − R = 0`` on the MNA system (its Newton steps, diode limiting,
    backtracking and convergence test)."""

    tc: TranCircuit | None = None
    dh: Array | None = None
    rhs: Array | None = None

    def f(self, x):
        return self.tc.charge(x) + self.dh * super().f(x) - self.rhs


class _StageSpice(SpiceSystem):
    """The stage equation of a circuit with MOSFETs, iterated as SPICE iterates (no gmin
    stepping: a stage that does not converge is a rejected step)."""

    gmin_stepping: bool = eqx.field(static=True, default=False)
    tc: TranCircuit | None = None
    dh: Array | None = None
    rhs: Array | None = None

    def _affine(self, aux):
        f = super()._affine(aux)
        return lambda x: self.tc.charge(x) + self.dh * f(x) - self.rhs


class _Args(eqx.Module):
    tc: TranCircuit
    options: TranOptions
    mass: Array  # M, the charge/flux matrix (constant: charges are linear here)


def _args(tc: TranCircuit, options: TranOptions, x0) -> _Args:
    return _Args(tc=tc, options=options, mass=jax.jacfwd(tc.charge)(x0))


def _stage(tc: TranCircuit, t, dh, rhs, guess, options: TranOptions):
    newton = Newton(rtol=options.newton_rtol, atol=options.newton_atol, max_steps=100)
    m = tc.mna.mosfets
    cls = _StageSpice if m is not None and m.d.shape[0] else _StageMna
    return newton(cls(c=tc.mna, values=tc.values(t), tc=tc, dh=dh, rhs=rhs), guess)


class _Quadratic(diffrax.AbstractLocalInterpolation):
    """The quadratic through a step's three stage values (``t0``, ``t0 + γh``, ``t1``)."""

    t0: Array
    t1: Array
    y0: Array
    yg: Array
    y1: Array

    def evaluate(self, t0, t1=None, left: bool = True):
        if t1 is not None:
            return self.evaluate(t1, left=left) - self.evaluate(t0, left=left)
        h = self.t1 - self.t0
        s = jnp.where(h > 0, (t0 - self.t0) / jnp.where(h > 0, h, 1.0), 0.0)
        g = _GAMMA
        l0 = (s - g) * (s - 1) / g
        lg = s * (s - 1) / (g * (g - 1))
        l1 = s * (s - g) / (1 - g)
        return l0 * self.y0 + lg * self.yg + l1 * self.y1


class TRBDF2(diffrax.AbstractSolver):
    """TR-BDF2 for ``M x' + F(x, t) = 0`` (see the module docstring). The state is ``x``;
    the solver state counts Newton iterations and holds the last failure."""

    term_structure: ClassVar = diffrax.AbstractTerm
    interpolation_cls: ClassVar[Callable[..., diffrax.AbstractLocalInterpolation]] = _Quadratic

    def order(self, terms):
        return 2

    def error_order(self, terms):
        return 3

    def init(self, terms, t0, t1, y0, args: _Args):
        return jnp.asarray(0), RESULTS.successful

    def step(self, terms, t0, t1, y0, args: _Args, solver_state, made_jump):
        del made_jump
        tc, opt = args.tc, args.options
        h = t1 - t0
        dh = _D * h
        tg = t0 + _GAMMA * h
        f0 = tc.residual(y0, t0)
        r1 = tc.charge(y0) - dh * f0

        def stage(carry, k):
            # k = 0: the trapezoidal stage to t0 + γh from y0; k = 1: the BDF2 stage to t1
            # from (y0, x_γ), started on the line through them (one compiled Newton loop)
            prev, result, its = carry
            first = k == 0
            rhs = jnp.where(first, r1, tc.charge(_C1 * prev - _C0 * y0))
            guess = jnp.where(first, y0, prev + (prev - y0) * ((1 - _GAMMA) / _GAMMA))
            sol = _stage(tc, jnp.where(first, tg, t1), dh, rhs, guess, opt)
            result = RESULTS.where(result == RESULTS.successful, sol.result, result)
            return (sol.u, result, its + sol.steps), sol.u

        (_, result, stage_its), xs = jax.lax.scan(
            stage, (y0, RESULTS.successful, jnp.asarray(0)), jnp.arange(2))
        xg, y1 = xs[0], xs[1]
        fg = tc.residual(xg, tg)
        f1 = tc.residual(y1, t1)
        # M·(error): the third-order quadrature minus the method's, of x' = −M⁻¹F
        est = -h * (_E[0] * f0 + _E[1] * fg + _E[2] * f1)
        jac = jax.jacfwd(lambda x: tc.residual(x, t1))(y1)
        err = jnp.linalg.solve(args.mass + dh * jac, est)
        # branch currents of V sources and E/H are algebraic and may follow the derivative
        # of a source (a capacitor on a source node draws C·dV/dt): as in SPICE, the error
        # is controlled on node voltages and inductor currents only
        n = tc.mna.n_nodes
        keep = (jnp.arange(err.shape[0]) < n).at[tc.l_row].set(True)
        err = jnp.where(keep, err, 0.0)
        failed = (result != RESULTS.successful) | ~jnp.all(jnp.isfinite(err))
        # a failed stage solve is a rejected step (infinite error: the controller shrinks h)
        err = jnp.where(failed, jnp.inf, err)
        its, _ = solver_state
        state = (its + stage_its, result)
        dense = dict(y0=y0, yg=xg, y1=y1)
        return y1, err, dense, state, diffrax.RESULTS.successful

    def func(self, terms, t0, y0, args):
        return terms.vf(t0, y0, args)


def _vector_field(t, y, args):  # pragma: no cover - TR-BDF2 never calls it
    return jnp.zeros_like(y)


class TranResult(eqx.Module):
    """The transient: ``ts``, ``xs`` (MNA vectors at ``ts``), ``ok``, the accepted and
    rejected step counts and the Newton iterations of the stages."""

    ts: Array
    xs: Array
    ok: Array
    accepted: Array
    rejected: Array
    newton: Array
    result: Array


def operating_point(tc: TranCircuit, t0: float, x0, clamp=None, options=MnaOptions()):
    """The DC operating point with the sources at ``t0`` (``clamp``: ``(rows, values)`` of
    nodes held at given voltages, the ``.ic`` card)."""
    values = tc.values(jnp.asarray(t0))
    if clamp is None:
        return mna_solve(tc.mna, values, x0, options)
    rows, vals = clamp
    system = _ClampedSystem(c=tc.mna, values=values, rows=rows, vals=vals)
    newton = Newton(rtol=options.rtol, atol=options.atol, max_steps=options.max_steps)
    return newton(system, x0)


class _ClampedSystem(MnaSystem):
    """The MNA residual with some nodes' KCL rows replaced by ``v − value`` (held)."""

    rows: Array | None = None
    vals: Array | None = None

    def f(self, x):
        return super().f(x).at[self.rows].set(x[self.rows] - self.vals)


def tran_solve(tc: TranCircuit, x0, t0: float, t1: float, ts_out, breakpoints,
               dtmax: float, dt0: float, options: TranOptions, max_steps: int = 20000,
               sub: int = 4) -> TranResult:
    """Integrate from ``x0`` at ``t0`` to ``t1``.

    The result holds the state at ``ts_out``, at every accepted step, and at ``sub − 1``
    evenly spaced points inside each step (read off the step's interpolant), in time order
    with unused slots at ``t = inf``. ``breakpoints``: times the steps must land on;
    ``dtmax``: the largest step; ``max_steps``: cap on accepted + rejected steps.
    """
    controller = diffrax.PIDController(
        rtol=options.rtol, atol=options.atol, dtmax=dtmax, jump_ts=breakpoints)
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(_vector_field), TRBDF2(), t0=t0, t1=t1, dt0=dt0, y0=x0,
        args=_args(tc, options, x0), stepsize_controller=controller,
        saveat=diffrax.SaveAt(ts=ts_out, steps=True, dense=sub > 1, solver_state=True),
        max_steps=max_steps, throw=False)
    return _with_inner_points(sol, sol.ts, sol.ys, t0, ts_out, sub)


def settle_solve(tc: TranCircuit, x0, v_final, tol: float, dt0: float,
                 options: TranOptions, max_steps: int = 20000, sub: int = 4) -> TranResult:
    """Integrate from ``x0`` at t = 0 (constant sources) until every node voltage is within
    ``tol`` of ``v_final`` (the first ``len(v_final)`` unknowns); the saved points as
    :func:`tran_solve`'s (every step and ``sub − 1`` points inside each)."""
    n = v_final.shape[0]

    def near(t, y, args, **kwargs):
        return jnp.max(jnp.abs(y[:n] - v_final)) <= tol

    controller = diffrax.PIDController(rtol=options.rtol, atol=options.atol)
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(_vector_field), TRBDF2(), t0=0.0, t1=jnp.inf, dt0=dt0, y0=x0,
        args=_args(tc, options, x0), stepsize_controller=controller,
        saveat=diffrax.SaveAt(steps=True, dense=True, solver_state=True),
        event=diffrax.Event(near), max_steps=max_steps, throw=False)
    return _with_inner_points(sol, sol.ts, sol.ys, 0.0, sol.ts[:0], sub)


def _with_inner_points(sol, ts, ys, t0, ts_out, sub: int) -> TranResult:
    if sub > 1:
        # the accepted steps' own times (sorted, padded with inf) and points inside them
        steps = jnp.sort(jnp.where(jnp.isin(ts, ts_out), jnp.inf, ts))
        left, right = jnp.concatenate([jnp.asarray([t0], ts.dtype), steps[:-1]]), steps
        frac = jnp.arange(1, sub, dtype=ts.dtype) / sub
        inner = (left[:, None] + frac[None, :] * (right - left)[:, None]).reshape(-1)
        inner = jnp.where(jnp.isfinite(inner), inner, jnp.inf)
        yin = jax.vmap(lambda t: sol.evaluate(jnp.where(jnp.isfinite(t), t, t0)))(inner)
        ts = jnp.concatenate([ts, inner])
        ys = jnp.concatenate([ys, yin])
        order = jnp.argsort(ts)
        ts, ys = ts[order], ys[order]
    saved = jnp.isfinite(ts)  # diffrax pads the unused step slots with inf
    finished = (sol.result == diffrax.RESULTS.successful) | (
        sol.result == diffrax.RESULTS.event_occurred)
    ok = finished & jnp.all(
        jnp.where(saved[:, None], jnp.isfinite(ys), True))
    return TranResult(ts=ts, xs=ys, ok=ok, accepted=sol.stats["num_accepted_steps"],
                      rejected=sol.stats["num_rejected_steps"], newton=sol.solver_state[0],
                      result=sol.solver_state[1])


def breakpoint_array(points: np.ndarray, t0: float, t1: float) -> jax.Array | None:
    """Breakpoints strictly inside ``(t0, t1)`` as the controller's ``jump_ts``."""
    b = np.asarray(points, dtype=np.float64)
    b = b[(b > t0) & (b < t1)]
    return jnp.asarray(b) if b.size else None
