"""The linear solvers of the package: preconditioned conjugate gradients, the Richardson
(recurrent-backprop) iteration, and lineax for non-symmetric systems.

Every solver returns ``(x, iterations, result)`` with a :class:`~._result.RESULTS` member:
a non-finite right-hand side or residual, a breakdown (a direction of non-positive
curvature in CG) and an iteration cap reached before the tolerance are failures, never a
converged zero step.

CG is written out (rather than taken from lineax) because the Newton loops need the iteration
count, a stopping rule on the residual norm, the failure kinds above and complex-symmetric
systems (holomorphic nudges) under ``vmap``. For a complex-symmetric matrix it is the
conjugate-orthogonal variant (COCG): inner products are not conjugated.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from ._result import RESULTS

__all__ = ["pcg", "richardson", "dense_solve", "gmres_solve", "jacobi"]


def _dot(a, b):
    # unconjugated: the bilinear form of a complex-symmetric matrix (equals vdot for reals)
    return jnp.sum(a * b)


def _norm(r):
    return jnp.sqrt(jnp.sum(jnp.abs(r) ** 2))


def jacobi(diag):
    """The Jacobi preconditioner ``r -> r / diag`` (entries with ``diag <= 0`` pass through)."""
    pos = jnp.real(diag) > 0
    inv = jnp.where(pos, 1.0 / jnp.where(pos, diag, 1.0), 1.0)
    return lambda r: inv * r


def _split_precond(precond):
    """``(data, apply)`` from ``None``, a callable ``r -> M⁻¹ r``, or ``(data, apply)`` with
    ``apply(data, r)`` (the arrays then travel in the loop state, so the compiler cannot
    rebuild them inside the loop)."""
    if precond is None:
        return (), lambda _, r: r
    if callable(precond):
        return (), lambda _, r: precond(r)
    return precond


def pcg(matvec: Callable, b, precond, tol, maxiter: int, inexact: float | None = None):
    """Solve ``A x = b`` for symmetric (positive definite, or complex-symmetric) ``A``.

    **Arguments:**

    - ``matvec``: ``x -> A x``; ``b``: the right-hand side.
    - ``precond``: ``r -> M⁻¹ r`` (symmetric positive definite), ``(data, apply)`` with
      ``apply(data, r) = M⁻¹ r``, or ``None`` for none.
    - ``tol``: absolute tolerance on ``‖b − A x‖₂``; ``maxiter``: iteration cap.
    - ``inexact``: when given, reaching the cap with ``‖b − A x‖ ≤ inexact·‖b‖`` counts as
      success (an inexact Newton step); otherwise the cap is ``linear_max_steps``.

    **Returns:** ``(x, iterations, result)``.
    """
    data0, apply_ = _split_precond(precond)
    real = not jnp.iscomplexobj(b)
    z0 = apply_(data0, b)
    rz0 = _dot(b, z0)
    x0 = jnp.zeros_like(b)
    bad0 = ~jnp.all(jnp.isfinite(b))

    # state: x, r, p, rz, k, rnorm, result, preconditioner data
    def cond(s):
        _, _, _, _, k, rnorm, res, _ = s
        return (rnorm > tol) & (k < maxiter) & (res == RESULTS.successful)

    def body(s):
        x, r, p, rz, k, _, _, data = s
        ap = matvec(p)
        pap = _dot(p, ap)
        nan = ~jnp.isfinite(pap)
        broke = ((jnp.real(pap) <= 0) if real else (jnp.abs(pap) == 0)) & ~nan
        alpha = rz / jnp.where(broke | nan, 1.0, pap)
        x_new = x + alpha * p
        r_new = r - alpha * ap
        z = apply_(data, r_new)
        rz_new = _dot(r_new, z)
        beta = rz_new / jnp.where(rz == 0, 1.0, rz)
        p_new = z + beta * p
        rnorm = _norm(r_new)
        res = RESULTS.where(broke, RESULTS.linear_breakdown,
                            RESULTS.where(jnp.isfinite(rnorm) & ~nan, RESULTS.successful,
                                          RESULTS.nonfinite))
        keep = res == RESULTS.successful
        pick = lambda new, old: jnp.where(keep, new, old)  # noqa: E731
        return (pick(x_new, x), pick(r_new, r), pick(p_new, p), pick(rz_new, rz), k + 1,
                jnp.where(keep, rnorm, _norm(r)), res, data)

    init = (x0, b, z0, rz0, jnp.asarray(0), jnp.where(bad0, jnp.inf, _norm(b)),
            RESULTS.where(bad0, RESULTS.nonfinite, RESULTS.successful), data0)
    x, _, _, _, k, rnorm, res, _ = jax.lax.while_loop(cond, body, init)
    short = rnorm > tol
    if inexact is not None:
        short = short & (rnorm > inexact * _norm(b))
    res = RESULTS.where((res == RESULTS.successful) & short, RESULTS.linear_max_steps, res)
    return x, k, res


def richardson(matvec: Callable, b, precond: Callable | None, tol, maxiter: int,
               omega=0.8):
    """The preconditioned Richardson iteration ``x ← x + ω M⁻¹ (b − A x)`` from ``x = 0``:
    the linearised relaxation of a physical system (recurrent backprop, Almeida–Pineda).
    Converges for symmetric positive definite ``A`` when ``ω`` is below ``2/λ_max(M⁻¹A)``.

    **Returns:** ``(x, iterations, result)`` like :func:`pcg`.
    """
    data, apply_ = _split_precond(precond)

    def cond(s):
        _, _, k, rnorm = s
        return (rnorm > tol) & (k < maxiter) & jnp.isfinite(rnorm)

    def body(s):
        x, r, k, _ = s
        x = x + omega * apply_(data, r)
        r = b - matvec(x)
        return x, r, k + 1, _norm(r)

    x, _, k, rnorm = jax.lax.while_loop(cond, body, (jnp.zeros_like(b), b, jnp.asarray(0),
                                                     _norm(b)))
    res = RESULTS.where(~jnp.isfinite(rnorm), RESULTS.nonfinite,
                        RESULTS.where(rnorm > tol, RESULTS.linear_max_steps, RESULTS.successful))
    return x, k, res


def _from_lineax(sol, finite_input=True):
    """Our result for a lineax solution (a finite system whose solution is not finite:
    a numerically singular matrix)."""
    import lineax as lx

    finite = jnp.all(jnp.isfinite(sol.value))
    res = RESULTS.where(sol.result == lx.RESULTS.successful, RESULTS.successful, RESULTS.singular)
    res = RESULTS.where(sol.result == lx.RESULTS.max_steps_reached, RESULTS.linear_max_steps, res)
    res = RESULTS.where(sol.result == lx.RESULTS.stagnation, RESULTS.stagnation, res)
    res = RESULTS.where(sol.result == lx.RESULTS.breakdown, RESULTS.krylov_breakdown, res)
    return RESULTS.where(finite, res, RESULTS.where(finite_input, RESULTS.singular,
                                                    RESULTS.nonfinite))


def dense_solve(matrix, b):
    """``A x = b`` by LU (lineax) for a small dense matrix; a singular or non-finite
    system is a failure. **Returns:** ``(x, 1, result)``."""
    import lineax as lx

    sol = lx.linear_solve(lx.MatrixLinearOperator(matrix), b, lx.LU(), throw=False)
    finite_input = jnp.all(jnp.isfinite(matrix)) & jnp.all(jnp.isfinite(b))
    return sol.value, jnp.asarray(1), _from_lineax(sol, finite_input)


def gmres_solve(matvec: Callable, b, tol, restart: int = 50, cycles: int = 50):
    """``A x = b`` by restarted GMRES (lineax) on a matrix-free operator, to the relative
    residual ``tol/‖b‖`` (at least 1e-12), at most ``cycles`` restart cycles of ``restart``
    Krylov vectors; failures are reported. **Returns:** ``(x, restart cycles, result)``."""
    import lineax as lx

    op = lx.FunctionLinearOperator(matvec, jax.ShapeDtypeStruct(b.shape, b.dtype))
    rtol = jnp.maximum(tol / jnp.maximum(_norm(b), 1e-300), 1e-12)
    solver = lx.GMRES(rtol=rtol, atol=0.0, restart=restart, max_steps=cycles)
    sol = lx.linear_solve(op, b, solver, throw=False)
    finite_input = jnp.all(jnp.isfinite(b))
    return sol.value, jnp.asarray(sol.stats.get("num_steps", 0)), _from_lineax(sol, finite_input)


def largest_eigenvalue(matvec: Callable, n: int, dtype, precond: Callable | None = None,
                       iterations: int = 50):
    """An estimate of the largest eigenvalue of ``M⁻¹A`` (power iteration from a fixed
    pseudo-random vector), e.g. to choose the Richardson step ``ω``."""
    apply_ = precond if precond is not None else (lambda r: r)

    def power(_, v):
        w = apply_(matvec(v))
        return w / jnp.maximum(jnp.linalg.norm(w), 1e-300)

    # a fixed pseudo-random start: the all-ones vector can be an eigenvector of a
    # symmetric circuit and hide the largest eigenvalue
    v0 = jax.random.normal(jax.random.PRNGKey(0), (n,), dtype)
    v = jax.lax.fori_loop(0, iterations, power, v0 / jnp.maximum(jnp.linalg.norm(v0), 1e-300))
    return jnp.linalg.norm(apply_(matvec(v)))
