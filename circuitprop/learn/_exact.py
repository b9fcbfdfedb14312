"""Exact gradients of the loss: the baselines the learning rules are checked against.

- :func:`exact_gradient` — implicit differentiation at the free equilibrium ``s_0``:
  solve ``H π = ∂_s C`` (``H = ∂²_s E``, applied matrix-free by Hessian-vector products)
  with conjugate gradients (``method="cg"``) or by recurrent backprop (Almeida–Pineda:
  the linearised relaxation ``π ← π + ω D⁻¹(∂_s C − H π)`` run to its fixed point,
  ``method="rbp"``), then ``dL/dg_k = −π · ∂_s ∂_{g_k} E = −ΔV_k Δπ_k`` for a resistor.
- :func:`finite_difference` — central differences of the loss, one pair of re-solves
  (warm-started from the free state) per parameter.
- :func:`loss_at` — the loss of one sample (one free phase).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .._energy import hessian_parts, hvp, node_voltages
from .._solve._krylov import pcg
from ._phases import Problem, cost, output_voltages, solve_free, solve_warm, values_for

__all__ = ["exact_gradient", "finite_difference", "loss_at", "adjoint"]


def loss_at(prob: Problem, theta, x, y, u0=None):
    """``(loss, outputs, solution)`` of one sample at conductances ``theta``."""
    values = values_for(prob, theta, x)
    sol = solve_free(prob, values, u0)
    o = output_voltages(prob, node_voltages(prob.circuit, values, sol.u))
    return cost(prob.loss, o, y), o, sol


def adjoint(prob: Problem, values, u, y, method: str = "cg", tol: float = 1e-14,
            maxiter: int = 200000):
    """The adjoint ``π = H⁻¹ ∂_u C`` at the free state ``u``; returns ``(π, iterations)``."""
    c = prob.circuit

    def cu(uu):
        return cost(prob.loss, output_voltages(prob, node_voltages(c, values, uu)), y)

    b = jax.grad(cu)(u)
    v = node_voltages(c, values, u)
    ua, ub, gb, diag = hessian_parts(c, values, v)
    inv_diag = jnp.where(diag > 0, 1.0 / jnp.where(diag > 0, diag, 1.0), 1.0)
    mv = lambda x: hvp(c, ua, ub, gb, x)  # noqa: E731
    bnorm = jnp.linalg.norm(b)
    if method == "cg":
        return pcg(mv, b, inv_diag, tol * bnorm, maxiter)
    if method != "rbp":
        raise ValueError(f"unknown adjoint method {method!r} (cg or rbp)")
    omega = 0.8

    def cond(state):
        _, r, k = state
        return (jnp.linalg.norm(r) > tol * bnorm) & (k < maxiter)

    def body(state):
        p, r, k = state
        p = p + omega * inv_diag * r
        return p, b - mv(p), k + 1

    p, _, k = jax.lax.while_loop(cond, body, (jnp.zeros_like(b), b, jnp.asarray(0)))
    return p, k


def exact_gradient(prob: Problem, theta, x, y, method: str = "cg", u0=None, warm: bool = False):
    """``dL/dg`` of one sample by implicit differentiation.

    **Returns:** ``(gradient, loss, outputs, ok, u)``; ``ok`` is False when the free phase
    did not converge; ``u`` is the free state.
    """
    c = prob.circuit
    values = values_for(prob, theta, x)
    sol = solve_warm(prob, values, u0) if (warm and u0 is not None) else \
        solve_free(prob, values, u0)
    v = node_voltages(c, values, sol.u)
    o = output_voltages(prob, v)
    pi, _ = adjoint(prob, values, sol.u, y, method)
    pv = jnp.concatenate([pi, jnp.zeros((1,), pi.dtype)])[c.node_var]
    ra, rb = c.r_a[prob.train_idx], c.r_b[prob.train_idx]
    grad = -(v[ra] - v[rb]) * (pv[ra] - pv[rb])
    return grad, cost(prob.loss, o, y), o, sol.result == 0, sol.u


def finite_difference(prob: Problem, theta, x, y, rel_step: float = 3e-5):
    """Central differences ``(L(g + h e_k) − L(g − h e_k)) / 2h`` with ``h = rel_step·g_k``,
    every re-solve warm-started from the free state (float64, tight Newton).

    **Returns:** ``(gradient, ok)``.
    """
    theta = jnp.asarray(theta)
    _, _, sol0 = loss_at(prob, theta, x, y)
    k = theta.shape[0]
    h = rel_step * jnp.abs(theta)
    eye = jnp.eye(k) * h[:, None]
    plus = theta[None, :] + eye
    minus = theta[None, :] - eye

    def one(t):
        loss, _, s = loss_at(prob, t, x, y, sol0.u)
        return loss, s.result == 0

    lp, okp = jax.vmap(one)(plus)
    lm, okm = jax.vmap(one)(minus)
    return (lp - lm) / (2 * h), jnp.all(okp) & jnp.all(okm) & (sol0.result == 0)
