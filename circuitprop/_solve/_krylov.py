"""Preconditioned conjugate gradients and GMRES-free helpers, as ``lax.while_loop`` kernels.

Written out (rather than taken from a library) because the Newton loops need the iteration
count, a residual-based stopping rule on the true residual, and a cap, all under ``vmap``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def pcg(matvec, b, inv_diag, tol, maxiter, precond=None):
    """See the module docstring; ``precond`` is ``None`` (Jacobi) or ``(data, apply)``."""
    return _pcg(matvec, b, inv_diag, tol, maxiter, precond)


def _pcg(matvec, b, inv_diag, tol, maxiter, precond):
    """Solve ``A x = b`` for symmetric positive definite ``A`` (given as ``matvec``).

    **Arguments:**

    - ``matvec``: ``x -> A x``.
    - ``b``: right-hand side.
    - ``inv_diag``: the Jacobi preconditioner, ``1 / diag(A)``.
    - ``precond``: ``(data, apply)`` with ``apply(data, r) = M⁻¹ r`` symmetric positive
      definite, used instead of Jacobi when given. ``data`` travels in the loop state.
    - ``tol``: absolute tolerance on ``‖b − A x‖₂``.
    - ``maxiter``: iteration cap.

    **Returns:** ``(x, iterations)``.
    """
    if precond is None:
        data, apply_ = inv_diag, (lambda d, r: d * r)
    else:
        data, apply_ = precond
    x0 = jnp.zeros_like(b)
    r0 = b
    z0 = apply_(data, r0)
    rz0 = jnp.vdot(r0, z0)

    def cond(state):
        _, r, _, _, _, k, _ = state
        return (jnp.linalg.norm(r) > tol) & (k < maxiter)

    def body(state):
        x, r, p, z, rz, k, data = state
        ap = matvec(p)
        pap = jnp.vdot(p, ap)
        alpha = jnp.where(pap > 0, rz / jnp.where(pap > 0, pap, 1.0), 0.0)
        x = x + alpha * p
        r = r - alpha * ap
        z = apply_(data, r)
        rz_new = jnp.vdot(r, z)
        beta = jnp.where(rz > 0, rz_new / jnp.where(rz > 0, rz, 1.0), 0.0)
        p = z + beta * p
        # a breakdown (pap <= 0) ends the loop through k = maxiter
        k = jnp.where(pap > 0, k + 1, maxiter)
        return x, r, p, z, rz_new, k, data

    x, _, _, _, _, k, _ = jax.lax.while_loop(
        cond, body, (x0, r0, z0, z0, rz0, jnp.asarray(0), data))
    return x, k
