"""Exact gradients of the loss on circuits: the baselines the learning rules are checked
against (the engine's :func:`~._engine.implicit_gradient` and
:func:`~._engine.finite_difference` on a :class:`~._circuit.CircuitEquilibrium`).

- :func:`exact_gradient` — implicit differentiation at the free equilibrium ``s_0``:
  ``H π = ∂_s C`` by conjugate gradients (``method="cg"``) or recurrent backprop
  (``method="rbp"``), then ``dL/dg_k = −ΔV_k Δπ_k`` for a resistor.
- :func:`finite_difference` — central differences of the loss, one pair of re-solves
  (warm-started from the free state) per parameter.

Circuits without an energy (:mod:`._mna`) take the adjoint of their MNA residual instead.
- :func:`loss_at` — the loss of one sample (one free phase).
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp

from ._engine import finite_difference as _finite_difference
from ._engine import implicit_gradient
from ._mna import equilibrium
from ._phases import Problem, Solution, solve_phase, split_state, values_for

__all__ = ["exact_gradient", "finite_difference", "loss_at"]


def loss_at(prob: Problem, theta, x, y, u0=None, warm: bool = False):
    """``(loss, outputs, solution)`` of one sample at parameters ``theta`` (``warm``: the
    junction states start at ``u0``)."""
    eq = equilibrium(prob)
    if prob.mna is not None:
        sol = eq.solution(theta, x, u0)
        return eq.loss(theta, x, sol.u, y), eq.outputs(theta, x, sol.u), sol
    u0 = None if u0 is None else split_state(prob, u0)[0]
    sol: Solution = solve_phase(prob, values_for(prob, theta, x), None, None, u0,
                                warm and u0 is not None)
    if prob.current:  # the phase's state: the unknowns, then the (zero) readout shifts
        sol = eqx.tree_at(lambda s: s.u, sol, jnp.concatenate(
            [sol.u, jnp.zeros(prob.shift_src.shape, sol.u.dtype)]))
    return eq.loss(theta, x, sol.u, y), eq.outputs(theta, x, sol.u), sol


def exact_gradient(prob: Problem, theta, x, y, method: str = "cg", u0=None, warm: bool = False):
    """``dL/dg`` of one sample by implicit differentiation.

    **Returns:** ``(gradient, loss, outputs, ok, u)``; ``ok`` is False when the free phase
    or the adjoint solve did not converge; ``u`` is the free state.
    """
    eq = equilibrium(prob)
    free = eq.solve(theta, x, y, None, u0, warm and u0 is not None)
    grad, ok, _ = implicit_gradient(eq, theta, x, y, free.state, method=method)
    return (grad, eq.loss(theta, x, free.state, y), eq.outputs(theta, x, free.state),
            ok & free.ok, free.state)


def finite_difference(prob: Problem, theta, x, y, rel_step: float = 3e-5):
    """Central differences ``(L(g + h e_k) − L(g − h e_k)) / 2h`` with ``h = rel_step·g_k``,
    every re-solve warm-started from the free state (float64, tight Newton).

    **Returns:** ``(gradient, ok)``.
    """
    theta = jnp.asarray(theta)
    eq = equilibrium(prob)
    free = eq.solve(theta, x, None, None, None)
    # conductances: relative steps; V-source values: relative to at least 1 V
    k = prob.train_idx.shape[0]
    scale = jnp.abs(theta).at[k:].max(1.0)
    return _finite_difference(eq, theta, x, y, rel_step * scale, free)
