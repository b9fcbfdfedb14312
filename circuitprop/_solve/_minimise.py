"""Matrix-free minimisation of a scalar function of a flat vector (generic JAX energies).

:class:`EnergySystem` is a :class:`~._newton.NewtonSystem` for any smooth ``f(z)``: the
residual is ``∇f``, the Jacobian is applied by Hessian-vector products (an *oracle*:
autodiff, or central differences of values for a black-box energy), never a dense Hessian.
Each step of the package's :class:`~._newton.Newton`:

- solves ``H p = −∇f`` by conjugate gradients to the Newton loop's forcing tolerance; a
  direction of negative curvature truncates it (the iterate so far, or ``−∇f`` on the first
  iteration, is the step);
- takes a backtracking Armijo line search along it; when the Newton direction is not a
  descent direction, or its search fails, a steepest-descent step with its own search
  replaces it (counted in ``fallbacks``). ``"gd"`` is the steepest-descent solver alone
  (the previous accepted step length, doubled, starts each search).

A trial whose change of ``f`` is below float64 rounding (``1e-13 (1 + |f|)``, the very end of
a solve) is accepted when it reduces the gradient's norm, instead of stalling. Converged when
``‖∇f‖_∞ ≤ tol``; a step that no search can accept is a failure (``stagnation``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp

from ._linear import pcg
from ._newton import Advance, Linearisation, Newton, NewtonSystem
from ._result import RESULTS

__all__ = ["MinimizeResult", "minimize", "autodiff_oracle", "finite_difference_oracle",
           "EnergySystem", "SOLVERS"]

SOLVERS = ("newton-cg", "gd")


class MinimizeResult(NamedTuple):
    """``z`` (the minimiser), ``value``, ``grad_norm`` (∞-norm of the gradient at ``z``),
    ``iterations``, ``converged`` (``grad_norm ≤ tol``), ``fallbacks`` (Newton line searches
    that failed and were replaced by a steepest-descent step), ``result``."""

    z: jax.Array
    value: jax.Array
    grad_norm: jax.Array
    iterations: jax.Array
    converged: jax.Array
    fallbacks: jax.Array
    result: Any = None


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


class EnergyAux(eqx.Module):
    """``f`` and ``∇f`` at the current point, the last steepest-descent step length, and the
    number of fallbacks so far."""

    f: Any
    g: Any
    alpha: Any
    fallbacks: Any


class EnergySystem(NewtonSystem):
    """``min f(z)`` as a :class:`~._newton.NewtonSystem` (see the module docstring)."""

    fun: Callable = eqx.field(static=True)
    grad: Callable = eqx.field(static=True)
    hvp: Callable = eqx.field(static=True)
    newton: bool = eqx.field(static=True, default=True)
    cg_maxiter: int = eqx.field(static=True, default=200)
    ls_maxiter: int = eqx.field(static=True, default=50)

    def init(self, z0):
        g0 = self.grad(z0)
        ginf = jnp.max(jnp.abs(g0), initial=0.0)
        return EnergyAux(f=self.fun(z0), g=g0,
                         alpha=jnp.asarray(1.0, z0.dtype) / jnp.maximum(ginf, 1.0),
                         fallbacks=jnp.asarray(0, jnp.int32))

    def linearise(self, z, aux: EnergyAux) -> Linearisation:
        return Linearisation(residual=aux.g, matvec=lambda v: self.hvp(z, v))

    def forcing(self, newton, state, gnorm):
        # superlinear truncated Newton (Nocedal & Wright): relative residual min(½, √‖g‖)
        return jnp.minimum(0.5, jnp.sqrt(gnorm))

    def solve_linear(self, lin, rhs, tol, maxiter):
        if not self.newton:
            return rhs, jnp.asarray(0), RESULTS.successful
        p, its, res = pcg(lin.matvec, rhs, None, tol, self.cg_maxiter)
        # negative curvature truncates the solve; an unfinished solve is still a direction
        truncated = (res == RESULTS.linear_breakdown) | (res == RESULTS.linear_max_steps)
        first = (res == RESULTS.linear_breakdown) & ~jnp.any(p != 0)
        p = jnp.where(first, rhs, p)
        return p, its, RESULTS.where(truncated, RESULTS.successful, res)

    def _search(self, z, aux: EnergyAux, p, alpha0):
        """Backtracking Armijo search along ``p``; returns ``(alpha, f_new, ok)``."""
        f, g = aux.f, aux.g
        slope = jnp.vdot(g, p)
        slack = 1e-13 * (1.0 + jnp.abs(f))
        gn = jnp.linalg.norm(g)

        def accept(a, fa):
            armijo = fa <= f + 1e-4 * a * slope
            flat = jnp.abs(fa - f) <= slack
            smaller = jax.lax.cond(flat, lambda: jnp.linalg.norm(self.grad(z + a * p)) < 0.999 * gn,
                                   lambda: False)
            return jnp.isfinite(fa) & jnp.where(flat, smaller, armijo)

        def cond(c):
            k, a, fa = c
            return (k < self.ls_maxiter) & ~accept(a, fa)

        def body(c):
            k, a, _ = c
            a = 0.5 * a
            return k + 1, a, self.fun(z + a * p)

        _, a, fa = jax.lax.while_loop(cond, body, (jnp.int32(0), alpha0,
                                                   self.fun(z + alpha0 * p)))
        return a, fa, accept(a, fa) & (slope < 0)

    def advance(self, z, p, aux: EnergyAux, lin, newton: Newton, state) -> Advance:
        ginf = jnp.max(jnp.abs(aux.g), initial=0.0)
        already = ginf <= newton.atol
        if self.newton:
            a, fa, ok = self._search(z, aux, p, jnp.asarray(1.0, z.dtype))

            def steepest():  # when the Newton direction fails
                a_gd, fa_gd, ok_gd = self._search(
                    z, aux, -aux.g, jnp.minimum(1.0, 1.0 / jnp.maximum(ginf, 1e-300)))
                return -a_gd * aux.g, fa_gd, ok_gd

            use_gd = ~ok
            step, f_new, accepted = jax.lax.cond(use_gd, steepest, lambda: (a * p, fa, ok))
            alpha = aux.alpha
            fallbacks = aux.fallbacks + use_gd.astype(jnp.int32)
        else:
            a, f_new, accepted = self._search(z, aux, p, jnp.minimum(2.0 * aux.alpha, 1e12))
            step = a * p
            alpha = jnp.where(accepted, a, aux.alpha)
            fallbacks = aux.fallbacks
        move = accepted & ~already
        z_new = jnp.where(move, z + step, z)
        g_new = jax.lax.cond(move, lambda: self.grad(z_new), lambda: aux.g)
        aux_new = EnergyAux(f=jnp.where(move, f_new, aux.f), g=g_new, alpha=alpha,
                            fallbacks=fallbacks)
        small = jnp.max(jnp.abs(g_new), initial=0.0) <= newton.atol
        result = RESULTS.where(accepted | already, RESULTS.successful, RESULTS.stagnation)
        return Advance(u=z_new, aux=aux_new, small=small, result=result,
                       norm=jnp.max(jnp.abs(jnp.where(move, step, 0.0)), initial=0.0))


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
    system = EnergySystem(fun=fun, grad=grad, hvp=hvp, newton=solver == "newton-cg",
                          cg_maxiter=int(cg_maxiter or min(max(n, 1), 200)),
                          ls_maxiter=ls_maxiter)
    newton = Newton(atol=tol, rtol=0.0, eta_min=1e-12, eta_max=0.5, eta_first=0.5,
                    max_steps=maxiter)
    state = jax.lax.while_loop(lambda s: ~newton.terminate(s) & ~_converged(s, tol),
                               lambda s: newton.step(system, s), newton.init(system, z0))
    gn = jnp.max(jnp.abs(state.aux.g), initial=0.0)
    converged = (gn <= tol) & jnp.all(jnp.isfinite(state.u)) & \
        (state.result == RESULTS.successful)
    result = RESULTS.where(converged, RESULTS.successful,
                           RESULTS.where(state.result == RESULTS.successful, RESULTS.max_steps,
                                         state.result))
    return MinimizeResult(z=state.u, value=state.aux.f, grad_norm=gn, iterations=state.step,
                          converged=converged, fallbacks=state.aux.fallbacks, result=result)


def _converged(state, tol):
    return jnp.max(jnp.abs(state.aux.g), initial=0.0) <= tol


class HolomorphicSystem(NewtonSystem):
    """``∇f(z) = 0`` for a holomorphic ``f`` of complex ``z`` (an energy continued to complex
    nudges): full Newton steps with COCG on holomorphic Hessian-vector products, from a
    nearby real equilibrium. Converged when a step moves no coordinate by more than
    ``atol + rtol·max|z|``."""

    fun: Callable = eqx.field(static=True)

    def _grad(self, z):
        return jax.grad(self.fun, holomorphic=True)(z)

    def init(self, z0):
        return jnp.zeros((), jnp.real(z0).dtype)

    def linearise(self, z, aux) -> Linearisation:
        return Linearisation(residual=self._grad(z),
                             matvec=lambda v: jax.jvp(self._grad, (z,), (v,))[1])

    def advance(self, z, dz, aux, lin, newton: Newton, state) -> Advance:
        norm = jnp.max(jnp.abs(dz), initial=0.0)
        tol = newton.atol + newton.rtol * jnp.max(jnp.abs(z), initial=0.0)
        # quadratic convergence: the next step would be about norm * (norm / previous)
        prev = state.step_norm
        rate = jnp.where(jnp.isfinite(prev), jnp.minimum(norm / prev, 1.0), 1.0)
        small = (norm <= tol) | ((norm * rate <= tol) & (rate < 0.1))
        return Advance(u=z + dz, aux=aux, small=small, result=RESULTS.successful, norm=norm)


def holomorphic_root(fun: Callable, z0, *, rtol: float = 1e-13, atol: float = 1e-15,
                     maxiter: int = 100):
    """The stationary point of holomorphic ``fun`` near ``z0`` (complex) by
    :class:`HolomorphicSystem`; returns a :class:`~._result.Solution`."""
    newton = Newton(rtol=rtol, atol=atol, eta_min=1e-12, eta_max=1e-2, eta_first=1e-6,
                    max_steps=maxiter)
    return newton(HolomorphicSystem(fun=fun), z0)
