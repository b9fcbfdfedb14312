"""Any JAX energy as an :class:`~._engine.EquilibriumProblem` (the engine behind
:mod:`circuitprop.bilevel`).

A problem is an energy ``E(state, θ, x)`` minimised over the state and a cost ``C(state, y)``
on the equilibrium (:class:`EnergyProblem`); the loss is ``L(θ) = C(s*(θ, x), y)``. States
and θ may be any pytrees of float arrays: :class:`EnergyEquilibrium` flattens them for the
engine. Phases are minimised by the solver package's :func:`~circuitprop._solve._minimise.minimize`
(Newton–CG on Hessian-vector products); complex nudges (holomorphic EP) by its holomorphic
Newton from the free state. A phase's reading is ``∂θE`` at the equilibrium (what a physical
system would measure; here by autodiff of the given energy) and the state as the output.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from .._solve._minimise import SOLVERS, holomorphic_root, minimize
from ._engine import (
    EquilibriumProblem,
    Phase,
    Reading,
    ep_estimate,
    finite_difference,
    implicit_gradient,
)
from ._estimators import estimator_names, is_estimator

__all__ = ["EnergyProblem", "EnergyEquilibrium", "RelaxResult", "GradientResult", "relax",
           "ep_gradient", "implicit_gradient_of", "recurrent_backprop", "finite_difference_of",
           "loss", "theta_grad"]


class EnergyProblem(eqx.Module):
    """A bilevel problem: an inner energy minimised over the state, an outer cost on it.

    **Arguments:**

    - ``energy``: ``E(state, theta, x) -> scalar``, a JAX function (state and θ any pytrees).
    - ``cost``: ``C(state, y) -> scalar``; the loss of θ is ``C(s*(θ, x), y)`` with
      ``s*`` the minimiser of ``E``. The cost must not depend on θ.
    - ``state_init``: the default starting state — a pytree, or a callable
      ``(theta, x) -> state``.
    """

    energy: Callable = eqx.field(static=True)
    cost: Callable = eqx.field(static=True)
    state_init: Any

    def init(self, theta, x):
        """The starting state for ``(theta, x)``."""
        if callable(self.state_init):
            return self.state_init(theta, x)
        return self.state_init

    def loss(self, state, y):
        return self.cost(state, y)


class EnergyEquilibrium(EquilibriumProblem):
    """An :class:`EnergyProblem` as an :class:`~._engine.EquilibriumProblem` on flat arrays.

    ``unravel_s`` / ``unravel_t`` rebuild the state / θ pytrees; ``solver``, ``tol``,
    ``maxiter`` are the phases' minimisation settings (see
    :func:`~circuitprop._solve._minimise.minimize`).
    """

    problem: EnergyProblem
    unravel_s: Callable = eqx.field(static=True)
    unravel_t: Callable = eqx.field(static=True)
    solver: str = eqx.field(static=True, default="newton-cg")
    tol: float = 1e-11
    maxiter: int = eqx.field(static=True, default=200)

    def _objective(self, theta, x, y, beta):
        p, us, ut = self.problem, self.unravel_s, self.unravel_t

        def f(z):
            s = us(z)
            e = p.energy(s, ut(theta), x)
            if beta is None:
                return e
            return e + beta * p.cost(s, y)

        return f

    def solve(self, theta, x, y, beta, start, warm: bool = False) -> Phase:
        if beta is not None and jnp.iscomplexobj(beta):
            sol = holomorphic_root(self._objective(theta, x, y, beta), start.astype(beta.dtype))
            return Phase(state=sol.u, ok=sol.ok)
        r = minimize(self._objective(theta, x, y, beta), start, solver=self.solver,
                     tol=self.tol, maxiter=self.maxiter)
        return Phase(state=r.z, ok=r.converged)

    def measure(self, theta, x, state, model=None, key=None) -> Reading:
        p, us, ut = self.problem, self.unravel_s, self.unravel_t
        if jnp.iscomplexobj(state):
            # ∂θE at a complex state: the θ-derivative of the holomorphic continuation
            re = jax.grad(lambda t: jnp.real(p.energy(us(state), ut(t), x)))(theta)
            im = jax.grad(lambda t: jnp.imag(p.energy(us(state), ut(t), x)))(theta)
            return Reading(dE=re + 1j * im, out=state)
        return Reading(dE=jax.grad(lambda t: p.energy(us(state), ut(t), x))(theta), out=state)

    def loss(self, theta, x, state, y):
        return self.problem.cost(self.unravel_s(state), y)

    def adjoint_system(self, theta, x, y, state):
        p, us, ut = self.problem, self.unravel_s, self.unravel_t

        def gs(z):
            return jax.grad(lambda zz: p.energy(us(zz), ut(theta), x))(z)

        rhs = jax.grad(lambda z: p.cost(us(z), y))(state)

        def finish(pi):
            return -jax.grad(lambda t: jnp.vdot(gs_at(t), pi))(theta)

        def gs_at(t):
            return jax.grad(lambda zz: p.energy(us(zz), ut(t), x))(state)

        return (lambda v: jax.jvp(gs, (state,), (v,))[1]), rhs, None, finish


def _setup(problem: EnergyProblem, theta, x, state0, solver, tol, maxiter):
    if solver not in SOLVERS:
        raise ValueError(f"unknown solver {solver!r}; one of {', '.join(SOLVERS)}")
    if state0 is None:
        state0 = problem.init(theta, x)
    state0 = jax.tree_util.tree_map(jnp.asarray, state0)
    z0, us = ravel_pytree(state0)
    t0, ut = ravel_pytree(theta)
    eq = EnergyEquilibrium(problem=problem, unravel_s=us, unravel_t=ut, solver=solver,
                           tol=float(tol), maxiter=int(maxiter))
    return eq, z0, t0, ut


class RelaxResult(NamedTuple):
    """``state`` (the minimiser of ``E + βC``), ``converged``, ``iterations``,
    ``grad_norm`` (∞-norm of ``∇_s F`` there), ``value`` (``F`` there)."""

    state: Any
    converged: jax.Array
    iterations: jax.Array
    grad_norm: jax.Array
    value: jax.Array


class GradientResult(NamedTuple):
    """``grad`` (a pytree like θ), ``loss`` (``C`` at the free equilibrium), ``converged``
    (every relaxation/linear solve converged), ``state`` (the free equilibrium ``s_0``)."""

    grad: Any
    loss: jax.Array
    converged: jax.Array
    state: Any


@eqx.filter_jit
def _relax_jit(eq, theta, x, y, beta, z0):
    r = minimize(eq._objective(theta, x, y, beta), z0, solver=eq.solver, tol=eq.tol,
                 maxiter=eq.maxiter)
    return RelaxResult(eq.unravel_s(r.z), r.converged, r.iterations, r.grad_norm, r.value)


def relax(problem: EnergyProblem, theta, x, y=None, beta=0.0, state0=None, *,
          solver: str = "newton-cg", tol: float = 1e-11, maxiter: int = 200) -> RelaxResult:
    """The equilibrium ``s_β = argmin_s E(s, θ, x) + β C(s, y)``.

    **Arguments:**

    - ``problem``: the :class:`EnergyProblem`; ``theta``, ``x``, ``y``: parameters, input,
      target (``y`` may be ``None`` when ``beta`` is 0).
    - ``beta``: nudging strength (an array or float; traced, so new values do not retrace).
    - ``state0``: warm start (default ``problem.init(theta, x)``).
    - ``solver``: ``"newton-cg"`` (Newton–CG on Hessian-vector products with a
      steepest-descent fallback) or ``"gd"`` (gradient descent with line search).
    - ``tol``: converged when ``‖∇_s F‖_∞ ≤ tol``; ``maxiter``: outer iterations.

    **Returns:** a :class:`RelaxResult`; non-convergence is flagged (``converged``), not raised.
    Jittable and vmappable (the state is flattened internally; no dense Hessian is formed).
    """
    eq, z0, t0, _ = _setup(problem, theta, x, state0, solver, tol, maxiter)
    beta = jnp.asarray(beta, dtype=jnp.result_type(float))
    if y is None:
        y = jnp.zeros(())
    return _relax_jit(eq, t0, x, y, beta, z0)


def theta_grad(problem: EnergyProblem, state, theta, x):
    """``∂θE(state, θ, x)`` — what a physical system would measure at an equilibrium."""
    return jax.grad(problem.energy, argnums=1)(state, theta, x)


@eqx.filter_jit
def _ep_jit(eq, theta, x, y, beta, z0, estimator):
    free = eq.solve(theta, x, y, None, z0)
    dE0 = eq.measure(theta, x, free.state).dE
    g, ok = ep_estimate(eq, theta, x, y, beta, estimator, free, dE0)
    return g, eq.loss(theta, x, free.state, y), ok, free.state


def ep_gradient(problem: EnergyProblem, theta, x, y, *, beta=1e-3, estimator: str = "centered",
                state0=None, solver: str = "newton-cg", tol: float = 1e-11,
                maxiter: int = 200) -> GradientResult:
    """The EP estimate of ``dL/dθ`` for one sample.

    **Arguments:**

    - ``problem``, ``theta``, ``x``, ``y``: the problem and one sample.
    - ``beta``: nudging strength (> 0); ``estimator``: any name of
      :mod:`circuitprop.learn` 's estimator table (``"positive"``, ``"negative"``,
      ``"centered"``, ``"forward-2"`` … ``"forward-5"``, ``"holomorphic-N"``).
    - ``state0``: warm start of the free phase. Nudged phases are warm-started from the
      previous phase on their side (0 → β → 2β …, 0 → −β); holomorphic phases from the
      free state.
    - ``solver``, ``tol``, ``maxiter``: passed to :func:`relax`.

    **Returns:** :class:`GradientResult` (jittable, vmappable over samples).

    **Raises:** ``KeyError`` for an unknown estimator.
    """
    if not is_estimator(estimator):
        raise KeyError(f"unknown estimator {estimator!r}; one of {estimator_names()}")
    eq, z0, t0, ut = _setup(problem, theta, x, state0, solver, tol, maxiter)
    beta = jnp.asarray(beta, dtype=jnp.result_type(float))
    g, loss_, ok, s0 = _ep_jit(eq, t0, x, y, beta, z0, estimator)
    return GradientResult(ut(g), loss_, ok, eq.unravel_s(s0))


@eqx.filter_jit
def _exact_jit(eq, theta, x, y, z0, method, tol, maxiter):
    free = eq.solve(theta, x, y, None, z0)
    g, ok, _ = implicit_gradient(eq, theta, x, y, free.state, method=method, tol=tol,
                                 maxiter=maxiter)
    return g, eq.loss(theta, x, free.state, y), ok & free.ok, free.state


def implicit_gradient_of(problem: EnergyProblem, theta, x, y, *, state0=None, tol: float = 1e-12,
                         maxiter: int = 10000, relax_tol: float = 1e-11,
                         solver: str = "newton-cg", method: str = "cg") -> GradientResult:
    """Exact ``dL/dθ`` by implicit differentiation at the free equilibrium.

    Solves ``H π = ∂_s C`` by conjugate gradients (relative residual ``tol``, at most
    ``maxiter`` iterations; ``method="rbp"``: recurrent backprop), then
    ``dL/dθ = −∂θ⟨∇_s E, π⟩``.

    **Returns:** :class:`GradientResult`.
    """
    eq, z0, t0, ut = _setup(problem, theta, x, state0, solver, relax_tol, 200)
    g, loss_, ok, s0 = _exact_jit(eq, t0, x, y, z0, method, float(tol), int(maxiter))
    return GradientResult(ut(g), loss_, ok, eq.unravel_s(s0))


def recurrent_backprop(problem: EnergyProblem, theta, x, y, *, state0=None, tol: float = 1e-12,
                       maxiter: int = 200000, relax_tol: float = 1e-11,
                       solver: str = "newton-cg") -> GradientResult:
    """Exact ``dL/dθ`` with the adjoint found by recurrent backprop (Almeida–Pineda): the
    linearised relaxation ``π ← π + ω (∂_s C − H π)`` run until the relative residual is
    below ``tol``. Converges when ``H`` is positive definite (a stable equilibrium).

    **Returns:** :class:`GradientResult`.
    """
    return implicit_gradient_of(problem, theta, x, y, state0=state0, tol=tol, maxiter=maxiter,
                                relax_tol=relax_tol, solver=solver, method="rbp")


def loss(problem: EnergyProblem, theta, x, y, *, state0=None, tol: float = 1e-11,
         solver: str = "newton-cg"):
    """``C(s_0, y)`` at the free equilibrium (one relaxation)."""
    free = relax(problem, theta, x, y, 0.0, state0, solver=solver, tol=tol)
    return problem.cost(free.state, y)


@eqx.filter_jit
def _fd_jit(eq, theta, x, y, z0, h):
    free = eq.solve(theta, x, y, None, z0)
    g, ok = finite_difference(eq, theta, x, y, h, free)
    return g, eq.loss(theta, x, free.state, y), ok, free.state


def finite_difference_of(problem: EnergyProblem, theta, x, y, *, eps: float = 1e-6, state0=None,
                         tol: float = 1e-12, solver: str = "newton-cg") -> GradientResult:
    """Central finite differences of the loss, step ``eps·max(1, |θ_i|)`` per parameter, each
    pair of relaxations warm-started from the free state (vmapped over parameters).

    **Returns:** :class:`GradientResult`.
    """
    eq, z0, t0, ut = _setup(problem, theta, x, state0, solver, tol, 200)
    h = eps * jnp.maximum(1.0, jnp.abs(t0))
    g, loss_, ok, s0 = _fd_jit(eq, t0, x, y, z0, h)
    return GradientResult(ut(g), loss_, ok, eq.unravel_s(s0))
