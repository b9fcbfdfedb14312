"""Matrix-free minimisation of a scalar function of a flat vector (the engine's relaxations).

Newton–CG: each step solves ``H p = −g`` by truncated conjugate gradients on
Hessian-vector products (never a dense Hessian), stopping at a forcing tolerance
``min(½, √‖g‖)·‖g‖`` or at negative curvature; a backtracking Armijo line search follows.
When the Newton direction is not a descent direction, or its line search fails, the step
falls back to steepest descent with its own line search. ``"gd"`` is the gradient-descent
solver alone (the previous accepted step length, doubled, starts each search).

A step whose change of ``f`` is below float64 rounding (``1e-13 (1 + |f|)``, the very end of
a solve) is accepted when it reduces the gradient's norm, instead of stalling.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

__all__ = ["MinimizeResult", "minimize", "autodiff_oracle", "finite_difference_oracle"]

SOLVERS = ("newton-cg", "gd")


class MinimizeResult(NamedTuple):
    """``z`` (the minimiser), ``value``, ``grad_norm`` (∞-norm of the gradient at ``z``),
    ``iterations``, ``converged`` (``grad_norm ≤ tol``), ``fallbacks`` (Newton line searches
    that failed and were replaced by a steepest-descent step)."""

    z: jax.Array
    value: jax.Array
    grad_norm: jax.Array
    iterations: jax.Array
    converged: jax.Array
    fallbacks: jax.Array


def autodiff_oracle(fun: Callable):
    """``(grad, hvp)`` of ``fun`` by autodiff (HVP = forward-over-reverse, ``jax.jvp(grad)``)."""
    grad = jax.grad(fun)

    def hvp(z, v):
        return jax.jvp(grad, (z,), (v,))[1]

    return grad, hvp


def finite_difference_oracle(fun: Callable, step: float = 1e-5, hvp_step: float = 1e-4):
    """``(grad, hvp)`` of ``fun`` from function values only (central differences).

    The gradient costs ``2n`` evaluations (vmapped), with step ``step·(1 + |z_i|)``;
    the Hessian-vector product is a central difference of that gradient along ``v``.
    """

    def grad(z):
        h = step * (1.0 + jnp.abs(z))
        eye = jnp.eye(z.shape[0], dtype=z.dtype) * h[:, None]
        fp = jax.vmap(fun)(z[None, :] + eye)
        fm = jax.vmap(fun)(z[None, :] - eye)
        return (fp - fm) / (2.0 * h)

    def hvp(z, v):
        nv = jnp.linalg.norm(v)
        eps = hvp_step * (1.0 + jnp.linalg.norm(z)) / jnp.where(nv > 0, nv, 1.0)
        return (grad(z + eps * v) - grad(z - eps * v)) / (2.0 * eps)

    return grad, hvp


def _truncated_cg(hvp, z, g, maxiter):
    """Approximate Newton direction ``p ≈ −H⁻¹ g`` (``−g`` on immediate negative curvature)."""
    gnorm = jnp.linalg.norm(g)
    forcing = jnp.minimum(0.5, jnp.sqrt(gnorm)) * gnorm
    r0 = -g
    init = (jnp.int32(0), jnp.zeros_like(g), r0, r0, jnp.vdot(r0, r0), jnp.bool_(False),
            jnp.bool_(False))

    def cond(c):
        k, _, _, _, rr, stop, _ = c
        return (k < maxiter) & (jnp.sqrt(rr) > forcing) & ~stop

    def body(c):
        k, p, r, d, rr, _, _ = c
        hd = hvp(z, d)
        dhd = jnp.vdot(d, hd)
        neg = dhd <= 1e-300
        alpha = rr / jnp.where(neg, 1.0, dhd)
        p_new = p + alpha * d
        r_new = r - alpha * hd
        rr_new = jnp.vdot(r_new, r_new)
        d_new = r_new + (rr_new / jnp.where(rr > 0, rr, 1.0)) * d
        return (k + 1, jnp.where(neg, p, p_new), jnp.where(neg, r, r_new),
                jnp.where(neg, d, d_new), jnp.where(neg, rr, rr_new), neg, neg & (k == 0))

    _, p, _, _, _, _, neg_first = jax.lax.while_loop(cond, body, init)
    p = jnp.where(neg_first | ~jnp.all(jnp.isfinite(p)), -g, p)
    return p


def _line_search(fun, grad, z, f, g, p, alpha0, maxiter):
    """Backtracking Armijo search along ``p``; returns ``(alpha, f_new, ok)``.

    A trial whose change of ``f`` is within rounding (``1e-13 (1 + |f|)``) is judged by the
    gradient instead (accepted when its norm decreases) (the end of a solve, where ``f`` is flat to
    machine precision).
    """
    slope = jnp.vdot(g, p)
    slack = 1e-13 * (1.0 + jnp.abs(f))
    gn = jnp.linalg.norm(g)

    def accept(a, fa):
        armijo = fa <= f + 1e-4 * a * slope
        flat = jnp.abs(fa - f) <= slack
        smaller = jax.lax.cond(flat, lambda: jnp.linalg.norm(grad(z + a * p)) < 0.999 * gn,
                               lambda: False)
        return jnp.isfinite(fa) & jnp.where(flat, smaller, armijo)

    def cond(c):
        k, a, fa = c
        return (k < maxiter) & ~accept(a, fa)

    def body(c):
        k, a, _ = c
        a = 0.5 * a
        return k + 1, a, fun(z + a * p)

    _, a, fa = jax.lax.while_loop(cond, body, (jnp.int32(0), alpha0, fun(z + alpha0 * p)))
    return a, fa, accept(a, fa) & (slope < 0)


def minimize(fun: Callable, z0, *, oracle=None, solver: str = "newton-cg", tol: float = 1e-10,
             maxiter: int = 200, cg_maxiter: int | None = None,
             ls_maxiter: int = 50) -> MinimizeResult:
    """Minimise ``fun`` (flat vector → scalar) from ``z0``.

    **Arguments:**

    - ``fun``: the objective; ``z0``: starting point (1-D array).
    - ``oracle``: ``(grad, hvp)`` functions (default :func:`autodiff_oracle`).
    - ``solver``: ``"newton-cg"`` (default) or ``"gd"``.
    - ``tol``: converged when ``‖∇fun‖_∞ ≤ tol``; ``maxiter``: outer iterations.
    - ``cg_maxiter``: CG iterations per Newton step (default ``min(n, 200)``).

    **Returns:** a :class:`MinimizeResult` (jittable, vmappable; failures are flagged, not raised).
    """
    if solver not in SOLVERS:
        raise ValueError(f"unknown solver {solver!r}; one of {', '.join(SOLVERS)}")
    grad, hvp = oracle if oracle is not None else autodiff_oracle(fun)
    n = z0.shape[0]
    cg_maxiter = int(cg_maxiter or min(max(n, 1), 200))
    f0, g0 = fun(z0), grad(z0)

    def gnorm(g):
        return jnp.max(jnp.abs(g)) if n else jnp.zeros((), z0.dtype)

    def cond(c):
        z, f, g, it, stalled, nfb, alpha_gd, fallback = c
        return (it < maxiter) & (gnorm(g) > tol) & ~stalled

    def body(c):
        z, f, g, it, _, nfb, alpha_gd, fallback = c
        if solver == "gd":
            p, a0, use_gd = -g, jnp.minimum(2.0 * alpha_gd, 1e12), jnp.bool_(True)
        else:
            # Newton–CG, or steepest descent after a failed Newton line search
            use_gd = fallback
            p = jnp.where(use_gd, -g, _truncated_cg(hvp, z, g, cg_maxiter))
            a0 = jnp.where(use_gd, jnp.minimum(1.0, 1.0 / jnp.maximum(gnorm(g), 1e-300)),
                           jnp.asarray(1.0, z.dtype))
        a, fa, ok = _line_search(fun, grad, z, f, g, p, a0, ls_maxiter)
        zn = jnp.where(ok, z + a * p, z)
        fn = jnp.where(ok, fa, f)
        gn = jnp.where(ok, grad(zn), g)
        stalled = ~ok & use_gd
        fb_next = ~ok & ~use_gd
        return (zn, fn, gn, it + 1, stalled, nfb + fb_next.astype(jnp.int32),
                jnp.where(ok & use_gd, a, alpha_gd), fb_next)

    init = (z0, f0, g0, jnp.int32(0), jnp.bool_(False), jnp.int32(0),
            jnp.asarray(1.0 / jnp.maximum(gnorm(g0), 1.0), z0.dtype), jnp.bool_(False))
    z, f, g, it, _, nfb, _, _ = jax.lax.while_loop(cond, body, init)
    gn = gnorm(g)
    return MinimizeResult(z=z, value=f, grad_norm=gn, iterations=it,
                          converged=(gn <= tol) & jnp.all(jnp.isfinite(z)), fallbacks=nfb)
