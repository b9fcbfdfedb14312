"""Gradients of the bilevel loss ``L(θ) = C(s*(θ, x), y)``: EP estimators and exact baselines.

- :func:`ep_gradient`: equilibrium propagation, ``(1/β) Σ_i α_i ∂θE(s_{b_i β}, θ, x)`` with the
  phases and coefficients of :data:`circuitprop.learn.ESTIMATORS`. Only ``∂θE`` at the phase
  equilibria is used (the "measurement"; here by autodiff of the given JAX energy).
- :func:`implicit_gradient`: ``dL/dθ = −∂θ⟨∇_s E(s_0, θ, x), π⟩`` with ``H π = ∂_s C``
  (``H = ∂²_s E`` at ``s_0``) solved by conjugate gradients on Hessian-vector products.
- :func:`recurrent_backprop`: the same adjoint by the Almeida–Pineda iteration
  ``π ← π + ω (∂_s C − H π)``, ``ω = 1/λ_max`` (λ_max by power iteration).
- :func:`finite_difference`: central differences of the loss, one pair of warm-started
  relaxations per parameter (a baseline; not jittable).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from ..learn._estimators import ESTIMATORS
from ._problem import EnergyProblem, _relax_flat, relax

__all__ = ["GradientResult", "ep_gradient", "implicit_gradient", "recurrent_backprop",
           "finite_difference", "loss", "theta_grad"]


class GradientResult(NamedTuple):
    """``grad`` (a pytree like θ), ``loss`` (``C`` at the free equilibrium), ``converged``
    (every relaxation/linear solve converged), ``state`` (the free equilibrium ``s_0``)."""

    grad: Any
    loss: jax.Array
    converged: jax.Array
    state: Any


def theta_grad(problem: EnergyProblem, state, theta, x):
    """``∂θE(state, θ, x)`` — what a physical system would measure at an equilibrium."""
    return jax.grad(problem.energy, argnums=1)(state, theta, x)


def ep_gradient(problem: EnergyProblem, theta, x, y, *, beta=1e-3, estimator: str = "centered",
                state0=None, solver: str = "newton-cg", tol: float = 1e-11,
                maxiter: int = 200) -> GradientResult:
    """The EP estimate of ``dL/dθ`` for one sample.

    **Arguments:**

    - ``problem``, ``theta``, ``x``, ``y``: the problem and one sample.
    - ``beta``: nudging strength (> 0); ``estimator``: ``"positive"``, ``"negative"``,
      ``"centered"`` or ``"forward-2"`` … ``"forward-5"`` (bias O(β), O(β), O(β²),
      O(β^(p−1))).
    - ``state0``: warm start of the free phase. Nudged phases are warm-started from the
      previous phase on their side (0 → β → 2β …, 0 → −β).
    - ``solver``, ``tol``, ``maxiter``: passed to :func:`relax`.

    **Returns:** :class:`GradientResult` (jittable, vmappable over samples).

    **Raises:** ``KeyError`` for an unknown estimator.
    """
    if estimator not in ESTIMATORS:
        raise KeyError(f"unknown estimator {estimator!r}; one of {', '.join(ESTIMATORS)}")
    points, coefs = ESTIMATORS[estimator]
    if state0 is None:
        state0 = problem.init(theta, x)
    state0 = jax.tree_util.tree_map(jnp.asarray, state0)
    beta = jnp.asarray(beta, dtype=jnp.result_type(float))
    g, loss_, ok, s0 = _ep_jit(problem, theta, x, y, beta, state0, points, coefs, solver,
                               float(tol), int(maxiter))
    return GradientResult(g, loss_, ok, s0)


@eqx.filter_jit
def _ep_jit(problem, theta, x, y, beta, state0, points, coefs, solver, tol, maxiter):
    # every phase in one scan (one compiled relaxation): the free phase, then 0 → β → 2β …
    # warm-started in turn, then 0 → −β … restarting from the free state
    z0, unravel = ravel_pytree(state0)
    pos = sorted(b for b in points if b > 0)
    neg = sorted((b for b in points if b < 0), key=abs)
    seq = [0.0] + pos + neg
    from_free = [False] + [False] * len(pos) + [i == 0 for i in range(len(neg))]
    is_free = [True] + [False] * (len(pos) + len(neg))

    def phase(carry, inp):
        prev, free = carry
        b, ff, isf = inp
        start = jnp.where(ff, free, prev)
        r = _relax_flat(problem, theta, x, y, b * beta, start, unravel, solver, tol, maxiter)
        return (r.z, jnp.where(isf, r.z, free)), (r.z, r.converged)

    inputs = (jnp.asarray(seq, beta.dtype), jnp.asarray(from_free), jnp.asarray(is_free))
    _, (zs, oks) = jax.lax.scan(phase, (z0, z0), inputs)
    dE = jax.vmap(lambda z: theta_grad(problem, unravel(z), theta, x))(zs)
    w = jnp.zeros(len(seq), beta.dtype)
    for b, a in zip(points, coefs):
        w = w.at[seq.index(b)].add(a)
    grad = jax.tree_util.tree_map(lambda t: jnp.tensordot(w, t, axes=1) / beta, dE)
    s0 = unravel(zs[0])
    return grad, problem.cost(s0, y), jnp.all(oks), s0


def _adjoint_parts(problem, theta, x, y, state):
    z0, unravel = ravel_pytree(state)

    def gs(z):
        return ravel_pytree(jax.grad(problem.energy)(unravel(z), theta, x))[0]

    def hvp(v):
        return jax.jvp(gs, (z0,), (v,))[1]

    dc = ravel_pytree(jax.grad(problem.cost)(state, y))[0]

    def finish(pi):
        def inner(th):
            return jnp.vdot(ravel_pytree(jax.grad(problem.energy)(state, th, x))[0], pi)

        return jax.tree_util.tree_map(jnp.negative, jax.grad(inner)(theta))

    return hvp, dc, finish


def _cg(hvp, b, tol, maxiter):
    bn = jnp.linalg.norm(b)

    def cond(c):
        k, _, r, _, rr = c
        return (k < maxiter) & (jnp.sqrt(rr) > tol * bn)

    def body(c):
        k, p, r, d, rr = c
        hd = hvp(d)
        a = rr / jnp.vdot(d, hd)
        p = p + a * d
        r = r - a * hd
        rr2 = jnp.vdot(r, r)
        return k + 1, p, r, r + (rr2 / rr) * d, rr2

    k, p, r, _, rr = jax.lax.while_loop(cond, body, (jnp.int32(0), jnp.zeros_like(b), b, b,
                                                      jnp.vdot(b, b)))
    return p, jnp.sqrt(rr) <= tol * bn + 1e-300


def _rbp(hvp, b, tol, maxiter, power_iters=50):
    v = jnp.ones_like(b) / jnp.sqrt(b.shape[0])

    def power(_, v):
        w = hvp(v)
        return w / jnp.linalg.norm(w)

    v = jax.lax.fori_loop(0, power_iters, power, v)
    omega = 1.0 / (1.05 * jnp.vdot(v, hvp(v)))
    bn = jnp.linalg.norm(b)

    def cond(c):
        k, _, rn = c
        return (k < maxiter) & (rn > tol * bn)

    def body(c):
        k, p, _ = c
        r = b - hvp(p)
        return k + 1, p + omega * r, jnp.linalg.norm(r)

    k, p, rn = jax.lax.while_loop(cond, body, (jnp.int32(0), jnp.zeros_like(b), bn))
    return p, rn <= tol * bn + 1e-300


@eqx.filter_jit
def _exact(problem, theta, x, y, state, method, tol, maxiter):
    hvp, dc, finish = _adjoint_parts(problem, theta, x, y, state)
    pi, ok = (_cg if method == "cg" else _rbp)(hvp, dc, tol, maxiter)
    return finish(pi), ok


def implicit_gradient(problem: EnergyProblem, theta, x, y, *, state0=None, tol: float = 1e-12,
                      maxiter: int = 10000, relax_tol: float = 1e-11,
                      solver: str = "newton-cg") -> GradientResult:
    """Exact ``dL/dθ`` by implicit differentiation at the free equilibrium.

    Solves ``H π = ∂_s C`` by conjugate gradients on Hessian-vector products (relative
    residual ``tol``, at most ``maxiter`` iterations), then ``dL/dθ = −∂θ⟨∇_s E, π⟩``.

    **Returns:** :class:`GradientResult`.
    """
    free = relax(problem, theta, x, y, 0.0, state0, solver=solver, tol=relax_tol)
    g, ok = _exact(problem, theta, x, y, free.state, "cg", float(tol), int(maxiter))
    return GradientResult(g, problem.cost(free.state, y), ok & free.converged, free.state)


def recurrent_backprop(problem: EnergyProblem, theta, x, y, *, state0=None, tol: float = 1e-12,
                       maxiter: int = 200000, relax_tol: float = 1e-11,
                       solver: str = "newton-cg") -> GradientResult:
    """Exact ``dL/dθ`` with the adjoint found by recurrent backprop (Almeida–Pineda): the
    linearised relaxation ``π ← π + ω (∂_s C − H π)`` run until the relative residual is
    below ``tol``. Converges when ``H`` is positive definite (a stable equilibrium).

    **Returns:** :class:`GradientResult`.
    """
    free = relax(problem, theta, x, y, 0.0, state0, solver=solver, tol=relax_tol)
    g, ok = _exact(problem, theta, x, y, free.state, "rbp", float(tol), int(maxiter))
    return GradientResult(g, problem.cost(free.state, y), ok & free.converged, free.state)


def loss(problem: EnergyProblem, theta, x, y, *, state0=None, tol: float = 1e-11,
         solver: str = "newton-cg"):
    """``C(s_0, y)`` at the free equilibrium (one relaxation)."""
    free = relax(problem, theta, x, y, 0.0, state0, solver=solver, tol=tol)
    return problem.cost(free.state, y)


def finite_difference(problem: EnergyProblem, theta, x, y, *, eps: float = 1e-6, state0=None,
                      tol: float = 1e-12, solver: str = "newton-cg") -> GradientResult:
    """Central finite differences of the loss, step ``eps·max(1, |θ_i|)`` per parameter, each
    pair of relaxations warm-started from the free state (a Python loop over parameters; a
    baseline, not jittable).

    **Returns:** :class:`GradientResult`.
    """
    free = relax(problem, theta, x, y, 0.0, state0, solver=solver, tol=tol)
    t0, unravel = ravel_pytree(theta)
    h = eps * jnp.maximum(1.0, jnp.abs(t0))
    g = []
    ok = bool(free.converged)
    for i in range(t0.shape[0]):
        ls = []
        for sign in (1.0, -1.0):
            r = relax(problem, unravel(t0.at[i].add(sign * h[i])), x, y, 0.0, free.state,
                      solver=solver, tol=tol)
            ok = ok and bool(r.converged)
            ls.append(problem.cost(r.state, y))
        g.append((ls[0] - ls[1]) / (2.0 * h[i]))
    return GradientResult(unravel(jnp.stack(g)), problem.cost(free.state, y), jnp.asarray(ok),
                          free.state)
