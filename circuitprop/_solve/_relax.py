"""The physical transient to steady state, as a diffrax ODE.

Every node carries a capacitance (``node_cap``, 1 pF by default, plus the deck's capacitors),
so the circuit obeys ``M du/dt = −∇E(u)``: currents charge the capacitors until KCL holds.
The ODE is integrated by :class:`LinearlyImplicitEuler`, a Rosenbrock–Euler step
``(M/h + H) Δ = −∇E`` whose linear system is solved by Jacobi-preconditioned CG on
Hessian-vector products (no matrices), with the same junction limiting as the Newton solver.
A loose PID controller lets the steps grow geometrically (pseudo-transient continuation), and
a diffrax event stops the integration at steady state.

diffrax is imported here only, so a plain Newton solve does not pay for its import.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp

from .._circuit import Circuit, Values
from .._energy import (
    Nudge,
    capacitance_parts,
    gradient,
    hvp,
    junction_voltages,
    node_currents,
    node_voltages,
    to_u,
)
from ._linear import jacobi, pcg
from ._newton import CircuitSystem, Newton, NewtonState, initial_guess, limit_junctions
from ._result import RESULTS, Solution


class RelaxOptions(eqx.Module):
    """Settings of :func:`relax_solve`.

    - ``node_cap``: capacitance from every node to ground, farads (default 1 pF).
    - ``rtol``, ``atol``: the PID controller's tolerances on the transient (loose on purpose:
      only the end point matters).
    - ``step_rtol``, ``step_atol``: the steady-state event fires when every node's KCL
      residual divided by its conductance, or (for a step whose capacitive term is
      negligible) every node's step, is at most ``step_rtol·max|v| + step_atol`` volts.
    - ``eta_min``, ``eta_max``: bounds of each implicit step's CG relative tolerance
      (Eisenstat–Walker choice 2 on the residual's decrease from step to step: loose while
      the transient is far from steady, tight at the end).
    - ``max_steps``: cap on accepted + rejected steps.
    """

    node_cap: float = 1e-12
    rtol: float = 1.0
    atol: float = 0.5
    step_rtol: float = 1e-11
    step_atol: float = 1e-13
    dt0: float = 1e-9
    eta_min: float = 1e-8
    eta_max: float = 1e-1
    max_steps: int = eqx.field(static=True, default=400)
    cg_maxiter: int = eqx.field(static=True, default=20000)


class _Args(eqx.Module):
    c: Circuit
    values: Values
    nudge: Nudge | None
    options: RelaxOptions
    g0norm: jax.Array


def _mass(c: Circuit, node_cap: float):
    """``(apply, diag, lumped)``: the capacitance matrix ``M`` on the unknowns as a matvec,
    its diagonal, and whether it is diagonal (no deck capacitor between two unknowns)."""
    ca, cb, cv, cnode, diag_m = capacitance_parts(c, node_cap)
    lumped = c.c_a.shape[0] == 0
    return (lambda x: cnode * x + hvp(c, ca, cb, cv, x)), diag_m, lumped


def _vector_field(t, y, args: _Args):
    """The physics: ``du/dt = −M⁻¹ ∇E(u)`` (node currents charging the capacitances), with
    the junction states frozen (they only steer the implicit solver)."""
    u, vj, steady = y
    c, opt = args.c, args.options
    force = -gradient(c, args.values, u, args.nudge)
    apply_m, diag_m, lumped = _mass(c, opt.node_cap)
    if lumped:
        du = force / diag_m
    else:
        fnorm = jnp.sqrt(jnp.sum(force * force))
        du, _, _ = pcg(apply_m, force, jacobi(diag_m), 1e-13 * fnorm, opt.cg_maxiter)
    return du, jnp.zeros_like(vj), jnp.zeros_like(steady)


class LinearlyImplicitEuler(diffrax.AbstractSolver):
    """Rosenbrock–Euler for ``M du/dt = −∇E(u)`` with matrix-free CG.

    Each step is one step of the package's :class:`~._newton.Newton` on the implicit-Euler
    equation ``M (u1 − u0)/h + ∇E(u1) = 0`` linearised at ``u0``: ``(M/h + H) Δ = −∇E(u0)``
    (the circuit system with the capacitive term ``M/h`` added to its Jacobian). The state is
    ``(u, vj, steady)``: node unknowns, the diodes' junction states (each diode is linearised
    at ``vj`` and ``vj`` follows its junction voltage as far as pnjlim allows, as in SPICE's
    transient), and the convergence measure of the last step (≤ 1: steady). The error
    estimate is the usual implicit-Euler local error ``h/2 · (f(y0) − f(y1))`` with ``f``
    the diffrax term's vector field ``−M⁻¹∇E``.
    """

    term_structure: ClassVar = diffrax.AbstractTerm
    interpolation_cls: ClassVar[Callable[..., diffrax.LocalLinearInterpolation]] = (
        diffrax.LocalLinearInterpolation
    )

    def order(self, terms):
        return 1

    def init(self, terms, t0, t1, y0, args: _Args):
        # (Krylov iterations so far, residual norm and forcing term of the last accepted
        # step, the last step's result)
        one = jnp.asarray(1.0, y0[0].dtype)
        return jnp.asarray(0), args.g0norm * one, 1e-2 * one, RESULTS.successful

    def step(self, terms, t0, t1, y0, args: _Args, solver_state, made_jump):
        del made_jump
        c, values, nudge, opt = args.c, args.values, args.nudge, args.options
        h = t1 - t0
        u0, vj0, _ = y0
        has_d = bool(c.diodes.a.shape[0])
        apply_m, diag_m, _ = _mass(c, opt.node_cap)
        system = CircuitSystem(c=c, values=values, nudge=nudge,
                               shift=(lambda x: apply_m(x) / h, diag_m / h))
        newton = Newton(eta_min=opt.eta_min, eta_max=opt.eta_max,
                        linear_maxiter=opt.cg_maxiter)
        inner, rprev, eta_prev, _ = solver_state
        one = jnp.asarray(1, inner.dtype)
        state = NewtonState(u=u0, aux=vj0, step=one, inner=inner, residual_norm=rprev,
                            eta=eta_prev, step_norm=jnp.asarray(jnp.inf, u0.dtype),
                            done=jnp.asarray(False), result=RESULTS.successful)
        new, lin = newton.step_linearised(system, state)
        u1, vj1 = new.u, new.aux
        delta = u1 - u0
        v1 = node_voltages(c, values, u1)
        g1 = to_u(c, node_currents(c, values, v1, nudge))
        limited = jnp.any(vj1 != junction_voltages(c, v1)) if has_d else False
        # steady-state measures, in volts against the same tolerance: the KCL residual at
        # each node over that node's conductance (scale-aware: a 1 pA node behind 1 GOhm
        # counts as much as a 1 A node), and the size of a Newton-like step
        diag_h = lin.diag
        tol = opt.step_atol + opt.step_rtol * jnp.max(jnp.abs(v1), initial=0.0)
        safe_d = jnp.where(diag_h > 0, diag_h, 1.0)
        by_residual = jnp.max(jnp.abs(g1) / safe_d, initial=0.0) / tol
        newton_like = jnp.min(diag_h * h / diag_m, initial=jnp.inf) >= 1e8
        by_step = jnp.max(jnp.abs(delta), initial=0.0) / tol
        steady = jnp.minimum(by_residual, jnp.where(newton_like, by_step, jnp.inf))
        steady = jnp.where(limited, jnp.inf, steady)
        f0 = terms.vf(t0, y0, args)[0]
        y1 = (u1, vj1, steady)
        f1 = terms.vf(t1, y1, args)[0]
        err = 0.5 * h * (f0 - f1)
        dense_info = dict(y0=y0, y1=y1)
        zero = jnp.zeros_like(steady)
        # a step whose linear solve failed is rejected (infinite error: diffrax shrinks h)
        failed = new.result != RESULTS.successful
        err = jnp.where(failed, jnp.inf, err)
        state = (new.inner, jnp.where(failed, rprev, new.residual_norm),
                 jnp.where(failed, eta_prev, new.eta), new.result)
        return y1, (err, jnp.zeros_like(vj1), zero), dense_info, state, \
            diffrax.RESULTS.successful

    def func(self, terms, t0, y0, args):
        return terms.vf(t0, y0, args)


def _steady(t, y, args, **kwargs):
    return y[2] <= 1.0


def relax_solve(c: Circuit, values: Values, u0, options: RelaxOptions, nudge: Nudge | None = None):
    """Integrate the circuit's transient from ``u0`` until it is at steady state.

    **Returns:** a :class:`Solution`; ``steps`` counts accepted implicit steps.
    """
    # start where SPICE's junction initialisation puts the circuit (diodes linearised at
    # vcrit), so that the transient begins from a consistent state
    first = initial_guess(c, values, u0, nudge, options.cg_maxiter)
    # (should that linear solve fail, the transient simply starts from u0)
    ok0 = first.result == RESULTS.successful
    u0 = jnp.where(ok0, first.u, u0)
    vj0 = jnp.where(ok0, first.aux, limit_junctions(c, values, u0, c.diodes.vcrit))
    g0norm = jnp.maximum(jnp.linalg.norm(gradient(c, values, u0, nudge)), 1e-300)
    args = _Args(c=c, values=values, nudge=nudge, options=options, g0norm=g0norm)
    term = diffrax.ODETerm(_vector_field)
    controller = diffrax.PIDController(
        rtol=options.rtol, atol=options.atol, factormax=20.0, factormin=0.2,
        norm=lambda y: jnp.sqrt(jnp.sum(y[0] ** 2) / max(y[0].size, 1)))
    y0 = (u0, vj0, jnp.asarray(jnp.inf, u0.dtype))
    sol = diffrax.diffeqsolve(
        term, LinearlyImplicitEuler(), t0=0.0, t1=jnp.inf, dt0=options.dt0, y0=y0, args=args,
        stepsize_controller=controller, event=diffrax.Event(_steady),
        saveat=diffrax.SaveAt(t1=True, solver_state=True), max_steps=options.max_steps, throw=False,
    )
    u = sol.ys[0][-1]
    steady = sol.ys[2][-1] <= 1.0
    finite = jnp.all(jnp.isfinite(u))
    result = RESULTS.where(steady, RESULTS.successful, RESULTS.max_steps)
    last = sol.solver_state[3]
    # out of steps while the last implicit step failed: say why
    result = RESULTS.where(steady | (last == RESULTS.successful), result, last)
    result = RESULTS.where(finite, result, RESULTS.nonfinite)
    inner = sol.solver_state[0]
    return Solution(u=u, result=result, steps=sol.stats["num_accepted_steps"], inner=inner)
