"""The bilevel problem: a user energy ``E(state, θ, x)`` and cost ``C(state, y)``, and its relaxation.

``relax`` minimises ``F = E + β C`` over the state (any pytree of float arrays), flattening it
internally and calling :func:`._minimize.minimize` (Newton–CG on Hessian-vector products
``jax.jvp(grad)``, steepest-descent/line-search fallback).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from ._minimize import minimize

__all__ = ["EnergyProblem", "RelaxResult", "relax"]


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


class RelaxResult(NamedTuple):
    """``state`` (the minimiser of ``E + βC``), ``converged``, ``iterations``,
    ``grad_norm`` (∞-norm of ``∇_s F`` there), ``value`` (``F`` there)."""

    state: Any
    converged: jax.Array
    iterations: jax.Array
    grad_norm: jax.Array
    value: jax.Array


def _relax_flat(problem: EnergyProblem, theta, x, y, beta, z0, unravel, solver, tol, maxiter):
    def F(z):
        s = unravel(z)
        return problem.energy(s, theta, x) + beta * problem.cost(s, y)

    r = minimize(F, z0, solver=solver, tol=tol, maxiter=maxiter)
    return r


@eqx.filter_jit
def _relax_jit(problem, theta, x, y, beta, state0, solver, tol, maxiter):
    z0, unravel = ravel_pytree(state0)
    r = _relax_flat(problem, theta, x, y, beta, z0, unravel, solver, tol, maxiter)
    return RelaxResult(unravel(r.z), r.converged, r.iterations, r.grad_norm, r.value)


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
    if state0 is None:
        state0 = problem.init(theta, x)
    state0 = jax.tree_util.tree_map(jnp.asarray, state0)
    beta = jnp.asarray(beta, dtype=jnp.result_type(float))
    if y is None:
        y = jnp.zeros(())
    return _relax_jit(problem, theta, x, y, beta, state0, solver, float(tol), int(maxiter))
