"""SPICE-style Newton–Krylov on the energy gradient (reciprocal circuits).

Each diode carries a junction state; every iteration linearises the diodes there (companion
models), solves the linear circuit ``H du = −∇E`` by preconditioned CG on Hessian-vector
products (Jacobi, or a multigrid V-cycle on large circuits; never a matrix) to a relative
tolerance that tightens as the residual falls (Eisenstat–Walker), takes the full step in node
voltages, and lets each junction state follow its new voltage as far as ``pnjlim`` allows.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from .._circuit import Circuit, Values
from .._devices import junction_limit
from .._energy import (
    Nudge,
    companion,
    gradient,
    hessian_parts,
    hvp,
    junction_voltages,
    node_voltages,
)
from ._krylov import pcg
from ._multigrid import make_preconditioner
from ._result import MAX_STEPS, NONFINITE, SUCCESS, Solution


class NewtonOptions(eqx.Module):
    """Tolerances of :func:`newton_solve`.

    - ``rtol``, ``atol``: converged when the last full Newton step is at most
      ``atol + rtol·max|v|`` volts everywhere.
    - ``eta_min``, ``eta_max``: bounds of the CG forcing term (relative residual of each inner
      solve, Eisenstat–Walker choice 2 in between).
    - ``max_steps``: Newton iteration cap; ``cg_maxiter``: CG cap per iteration.
    """

    rtol: float = 1e-10
    atol: float = 1e-12
    eta_min: float = 1e-6
    eta_max: float = 1e-1
    max_steps: int = eqx.field(static=True, default=200)
    cg_maxiter: int = eqx.field(static=True, default=20000)


def initial_guess(c: Circuit, values: Values, u0, nudge: Nudge | None = None, maxiter=20000):
    """SPICE's junction initialisation: solve the circuit once with every diode replaced by
    its tangent at ``vcrit`` (a linear problem, CG to 1e-10), starting from ``u0``.

    Without it, a diode tied directly to a source node starts volts into forward bias and
    Newton crawls down its exponential one thermal voltage per step.
    """
    if not c.diodes.a.shape[0] or c.n_u == 0:
        return u0, jnp.asarray(0)
    vd0 = companion(c, c.diodes.vcrit)
    v = node_voltages(c, values, u0)
    ua, ub, gb, diag = hessian_parts(c, values, v, nudge, vd0)
    g = gradient(c, values, u0, nudge, vd0)
    inv_diag = jnp.where(diag > 0, 1.0 / jnp.where(diag > 0, diag, 1.0), 1.0)
    du, its = pcg(lambda x: hvp(c, ua, ub, gb, x), -g, inv_diag,
                  1e-10 * jnp.linalg.norm(g), maxiter)
    return u0 + du, its


def preconditioner(c: Circuit, ua, ub, gb, extra=None):
    """The multigrid V-cycle for this Newton step's conductances, or ``None`` (Jacobi) when
    the circuit is small. Only the device branches enter it (nudges are left out: the
    preconditioner need only be close)."""
    if c.mg is None:
        return None
    m = c.r_a.shape[0] + c.diodes.a.shape[0]
    if extra is None:
        extra = jnp.zeros((c.n_u,), gb.dtype)
    return make_preconditioner(c.mg, c.n_u, ua[:m], ub[:m], gb[:m], extra)


def limit_junctions(c: Circuit, values: Values, u, vj):
    """The junction state after a step to ``u``: each diode's new voltage, cut by pnjlim
    relative to its previous state ``vj`` (SPICE evaluates devices at these voltages)."""
    if not c.diodes.a.shape[0]:
        return vj
    vd = junction_voltages(c, node_voltages(c, values, u))
    return junction_limit(vd, vj, c.diodes.vte, c.diodes.vcrit)


def newton_solve(c: Circuit, values: Values, u0, options: NewtonOptions, nudge: Nudge | None = None):
    """Minimise the circuit energy from ``u0`` (SPICE-style Newton–Raphson).

    Each diode carries a junction state ``vj``; the circuit is linearised with every diode
    replaced by its tangent at ``vj`` (a companion model), the linear circuit is solved by
    CG, node voltages take the full step, and each ``vj`` follows its new junction voltage
    as far as pnjlim allows. The first linearisation is at ``vcrit``. Converged when a step
    moves no node by more than ``atol + rtol·max|v|`` and no junction was limited.

    **Returns:** a :class:`Solution` (check ``result``; nothing raises under ``jit``).
    """
    n = c.n_u
    has_d = bool(c.diodes.a.shape[0])
    vj0 = c.diodes.vcrit

    def cond(state):
        return (~state[4]) & (state[2] < options.max_steps)

    def body(state):
        u, vj, k, inner, _, rprev, eta_prev, dprev = state
        v = node_voltages(c, values, u)
        vd0 = companion(c, vj) if has_d else None
        ua, ub, gb, diag = hessian_parts(c, values, v, nudge, vd0)
        g = gradient(c, values, u, nudge, vd0)
        inv_diag = jnp.where(diag > 0, 1.0 / jnp.where(diag > 0, diag, 1.0), 1.0)
        gnorm = jnp.linalg.norm(g)
        # Eisenstat–Walker (choice 2) forcing term, safeguarded
        eta = 0.9 * (gnorm / rprev) ** 2
        eta = jnp.maximum(eta, jnp.where(0.9 * eta_prev**2 > 0.1, 0.9 * eta_prev**2, 0.0))
        eta = jnp.clip(jnp.where(k == 0, 1e-4, eta), options.eta_min, options.eta_max)
        du, its = pcg(lambda x: hvp(c, ua, ub, gb, x), -g, inv_diag, eta * gnorm,
                      options.cg_maxiter, preconditioner(c, ua, ub, gb))
        u_new = u + du
        vj_new = limit_junctions(c, values, u_new, vj)
        scale = jnp.max(jnp.abs(v), initial=0.0)
        tol = options.atol + options.rtol * scale
        dnorm = jnp.max(jnp.abs(du), initial=0.0)
        # quadratic convergence: the next step would be about dnorm * (dnorm / dprev)
        rate = jnp.where(jnp.isfinite(dprev), jnp.minimum(dnorm / dprev, 1.0), 1.0)
        small = (dnorm <= tol) | ((dnorm * rate <= tol) & (rate < 0.1))
        if has_d:
            vd_new = junction_voltages(c, node_voltages(c, values, u_new))
            small = small & (jnp.max(jnp.abs(vd_new - vj), initial=0.0) <= 10 * tol)
        done = small | (gnorm == 0) | ~jnp.all(jnp.isfinite(u_new))
        return (u_new, vj_new, k + 1, inner + its, done, jnp.maximum(gnorm, 1e-300), eta,
                jnp.maximum(dnorm, 1e-300))

    init = (u0, vj0, jnp.asarray(0), jnp.asarray(0), jnp.asarray(n == 0),
            jnp.asarray(1.0, u0.dtype), jnp.asarray(1e-2, u0.dtype), jnp.asarray(jnp.inf, u0.dtype))
    u, _, k, inner, done, _, _, _ = jax.lax.while_loop(cond, body, init)
    finite = jnp.all(jnp.isfinite(u))
    result = jnp.where(~finite, NONFINITE, jnp.where(done, SUCCESS, MAX_STEPS))
    return Solution(u=u, result=result, steps=k, inner=inner)
