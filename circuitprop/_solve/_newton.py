"""The package's one Newton loop, and the circuit it solves most often.

:class:`Newton` is an inexact Newton iteration in the lineax/optimistix style: an
``eqx.Module`` with ``init`` / ``step`` / ``terminate`` and a named loop state
(:class:`NewtonState`). What is being solved is a :class:`NewtonSystem`:

- ``linearise(u, aux)``: the residual (an energy gradient, or a KCL residual) and its
  Jacobian as a matrix-free ``matvec`` with a preconditioner;
- ``solve_linear``: the inner linear solve (preconditioned CG by default; LU or GMRES for
  non-symmetric systems);
- ``advance``: how the Newton step is taken (a full step with SPICE junction limiting for
  circuits, backtracking for non-symmetric circuits, an Armijo line search for generic
  energies) and whether it counts as converged.

The loop owns what every system shares: the Eisenstat–Walker forcing term of the inner solve,
iteration and inner-iteration counts, and failure detection: a non-finite residual or step,
a linear solver that breaks down or stalls, and the step cap are failures
(:class:`~._result.RESULTS`), never a converged zero step.

:class:`CircuitSystem` is a reciprocal circuit's energy ``E(u)`` (plus an optional output
nudge or output cost): SPICE-style Newton–Raphson with per-diode junction states (each
linearised at its state: companion models), CG on Hessian-vector products (Jacobi, or a
multigrid V-cycle on large circuits; never a matrix), full steps in node voltages, and each
junction state following its new voltage as far as ``pnjlim`` allows. It runs in complex
arithmetic too (complex nudges for holomorphic EP), without junction limiting.
"""

from __future__ import annotations

import abc
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp

from .._circuit import Circuit, Values
from .._devices import junction_limit
from .._energy import (
    Nudge,
    OutputCost,
    companion,
    gradient,
    hessian_parts,
    hvp,
    junction_voltages,
    node_voltages,
)
from ._linear import jacobi, pcg
from ._multigrid import make_preconditioner
from ._result import RESULTS, Solution

__all__ = ["Newton", "NewtonOptions", "NewtonState", "NewtonSystem", "Linearisation",
           "Advance", "CircuitSystem", "newton_solve", "circuit_newton", "converged_step"]


class Linearisation(NamedTuple):
    """A system linearised at ``u``: ``residual`` (the gradient / KCL residual), the
    Jacobian as ``matvec``, a preconditioner for it (see :func:`~._linear.pcg`), the
    Jacobian's diagonal (or ``None``) and ``extra``, anything ``advance`` needs again."""

    residual: Any
    matvec: Any
    precond: Any = None
    diag: Any = None
    extra: Any = None


class Advance(NamedTuple):
    """A Newton step taken: the new unknowns and auxiliary state, whether the step counts
    as converged, and a result (``successful`` unless the step itself failed)."""

    u: Any
    aux: Any
    small: Any
    result: Any
    norm: Any


class NewtonSystem(eqx.Module):
    """What :class:`Newton` solves; see the module docstring."""

    @abc.abstractmethod
    def init(self, u0):
        """The auxiliary state at the start (e.g. junction states)."""

    @abc.abstractmethod
    def linearise(self, u, aux) -> Linearisation:
        ...

    def forcing(self, newton: Newton, state: NewtonState, gnorm):
        """The inner solve's relative tolerance: the loop's Eisenstat–Walker choice unless a
        system knows better."""
        return newton.forcing(state, gnorm)

    def solve_linear(self, lin: Linearisation, rhs, tol, maxiter: int):
        """``J du = rhs`` to absolute residual ``tol``: preconditioned CG by default. An
        inner solve that runs out of iterations after at least halving the residual still
        gives an inexact Newton step; one that does not is a failure."""
        return pcg(lin.matvec, rhs, lin.precond, tol, maxiter, inexact=0.5)

    @abc.abstractmethod
    def advance(self, u, du, aux, lin: Linearisation, newton: Newton, state: NewtonState) -> Advance:
        ...


class NewtonState(eqx.Module):
    """The loop state of :class:`Newton`, by name.

    - ``u``, ``aux``: unknowns and the system's auxiliary state (junction states...);
    - ``step``: Newton iterations so far; ``inner``: linear-solver iterations so far;
    - ``residual_norm``, ``eta``: the last residual norm and forcing term
      (Eisenstat–Walker);
    - ``step_norm``: the last step's max-norm (quadratic-convergence estimate);
    - ``done``: converged; ``result``: a :class:`RESULTS` member (failures end the loop).
    """

    u: Any
    aux: Any
    step: Any
    inner: Any
    residual_norm: Any
    eta: Any
    step_norm: Any
    done: Any
    result: RESULTS


class Newton(eqx.Module):
    """Inexact Newton with Eisenstat–Walker forcing (choice 2, safeguarded).

    - ``rtol``, ``atol``: the convergence tolerances the system's ``advance`` applies
      (circuits: a step of at most ``atol + rtol·max|v|`` volts; energies: ``‖∇‖_∞ ≤ atol``).
    - ``eta_min``, ``eta_max``: bounds of the inner solve's relative tolerance;
      ``eta_first``: the first step's.
    - ``max_steps``: Newton iteration cap; ``linear_maxiter``: inner iteration cap.
    """

    rtol: float = 1e-10
    atol: float = 1e-12
    eta_min: float = 1e-6
    eta_max: float = 1e-1
    eta_first: float = 1e-4
    max_steps: int = eqx.field(static=True, default=200)
    linear_maxiter: int = eqx.field(static=True, default=20000)

    @property
    def cg_maxiter(self) -> int:
        return self.linear_maxiter

    def init(self, system: NewtonSystem, u0) -> NewtonState:
        real = jnp.real(u0).dtype
        return NewtonState(
            u=u0, aux=system.init(u0), step=jnp.asarray(0), inner=jnp.asarray(0),
            residual_norm=jnp.asarray(1.0, real), eta=jnp.asarray(1e-2, real),
            step_norm=jnp.asarray(jnp.inf, real), done=jnp.asarray(u0.shape[0] == 0),
            result=RESULTS.successful)

    def forcing(self, state: NewtonState, gnorm):
        """The inner solve's relative tolerance for this step."""
        eta = 0.9 * (gnorm / state.residual_norm) ** 2
        eta = jnp.maximum(eta, jnp.where(0.9 * state.eta**2 > 0.1, 0.9 * state.eta**2, 0.0))
        eta = jnp.where(state.step == 0, self.eta_first, eta)
        return jnp.clip(eta, self.eta_min, self.eta_max)

    def step(self, system: NewtonSystem, state: NewtonState) -> NewtonState:
        return self.step_linearised(system, state)[0]

    def step_linearised(self, system: NewtonSystem, state: NewtonState):
        """:meth:`step`, also returning the linearisation it was taken from."""
        lin = system.linearise(state.u, state.aux)
        g = lin.residual
        gnorm = jnp.sqrt(jnp.sum(jnp.abs(g) ** 2))
        eta = system.forcing(self, state, gnorm)
        du, its, lres = system.solve_linear(lin, -g, eta * gnorm, self.linear_maxiter)
        adv = system.advance(state.u, du, state.aux, lin, self, state)
        finite = jnp.isfinite(gnorm) & jnp.all(jnp.isfinite(adv.u))
        result = RESULTS.where(~jnp.isfinite(gnorm), RESULTS.nonfinite,
                               RESULTS.where(lres != RESULTS.successful, lres, adv.result))
        result = RESULTS.where(finite | (result != RESULTS.successful), result, RESULTS.nonfinite)
        ok = result == RESULTS.successful
        keep = lambda new, old: jax.tree_util.tree_map(  # noqa: E731
            lambda a, b: jnp.where(ok, a, b), new, old)
        next_state = NewtonState(
            u=keep(adv.u, state.u), aux=keep(adv.aux, state.aux), step=state.step + 1,
            inner=state.inner + its, residual_norm=jnp.maximum(gnorm, 1e-300), eta=eta,
            step_norm=jnp.maximum(adv.norm, 1e-300),
            done=ok & (adv.small | (gnorm == 0)), result=result)
        return next_state, lin

    def terminate(self, state: NewtonState):
        return state.done | (state.result != RESULTS.successful) | (state.step >= self.max_steps)

    def run(self, system: NewtonSystem, u0) -> NewtonState:
        """Iterate from ``u0`` until converged, failed or out of steps."""
        state = jax.lax.while_loop(lambda s: ~self.terminate(s),
                                   lambda s: self.step(system, s), self.init(system, u0))
        result = RESULTS.where(state.done | (state.result != RESULTS.successful), state.result,
                               RESULTS.max_steps)
        return eqx.tree_at(lambda s: s.result, state, result)

    def __call__(self, system: NewtonSystem, u0) -> Solution:
        state = self.run(system, u0)
        return Solution(u=state.u, result=state.result, steps=state.step, inner=state.inner)


#: the circuit solver's name for its options (operating points, sweeps, learning phases)
NewtonOptions = Newton


class CircuitSystem(NewtonSystem):
    """A reciprocal circuit's energy ``E(u)`` (+ ``nudge`` or ``cost`` on the outputs).

    - ``warm``: junction states start at ``u0``'s junction voltages (a warm start stays
      warm); otherwise at ``vcrit`` (SPICE's junction initialisation).
    - ``shift``, ``shift_diag``: an extra linear term ``shift(x)`` (with diagonal
      ``shift_diag``) added to the Jacobian — the capacitive ``M/h`` of an implicit
      transient step (see :mod:`._relax`).
    """

    c: Circuit
    values: Values
    nudge: Nudge | None = None
    cost: OutputCost | None = None
    warm: bool = eqx.field(static=True, default=False)
    shift: Any = None

    def _complex(self, u) -> bool:
        return jnp.iscomplexobj(u)

    def init(self, u0):
        c = self.c
        if not c.diodes.a.shape[0]:
            return c.diodes.vcrit
        if self.warm or self._complex(u0):
            return junction_voltages(c, node_voltages(c, self.values, u0))
        return c.diodes.vcrit.astype(jnp.real(u0).dtype)

    def linearise(self, u, vj) -> Linearisation:
        c, values = self.c, self.values
        has_d = bool(c.diodes.a.shape[0])
        v = node_voltages(c, values, u)
        comp = companion(c, vj) if has_d else None
        ua, ub, gb, diag = hessian_parts(c, values, v, self.nudge, comp)
        g = gradient(c, values, u, self.nudge, comp)
        cost = self.cost
        if cost is not None:
            g = g + cost.gradient_u(c, values, u)
        shift = self.shift

        def matvec(x):
            y = hvp(c, ua, ub, gb, x)
            if cost is not None:
                y = y + cost.hvp_u(c, values, u, x)
            if shift is not None:
                y = y + shift[0](x)
            return y

        extra = None if shift is None else shift[1]
        full_diag = diag if extra is None else diag + extra
        precond = None
        if c.mg is not None and not self._complex(u):
            m = c.r_a.shape[0] + c.diodes.a.shape[0]
            ex = jnp.zeros((c.n_u,), gb.dtype) if extra is None else extra
            precond = make_preconditioner(c.mg, c.n_u, ua[:m], ub[:m], gb[:m], ex)
        if precond is None:
            precond = jacobi(full_diag)
        return Linearisation(residual=g, matvec=matvec, precond=precond, diag=diag,
                             extra=v)

    def advance(self, u, du, vj, lin, newton, state) -> Advance:
        c, values = self.c, self.values
        has_d = bool(c.diodes.a.shape[0])
        u_new = u + du
        v = lin.extra
        tol = newton.atol + newton.rtol * jnp.max(jnp.abs(v), initial=0.0)
        small, dnorm = converged_step(du, tol, state.step_norm)
        vj_new = vj
        if has_d:
            vd_new = junction_voltages(c, node_voltages(c, values, u_new))
            small = small & (jnp.max(jnp.abs(vd_new - vj), initial=0.0) <= 10 * tol)
            vj_new = vd_new if self._complex(u) else \
                junction_limit(vd_new, vj, c.diodes.vte, c.diodes.vcrit)
        return Advance(u=u_new, aux=vj_new, small=small, result=RESULTS.successful, norm=dnorm)


def converged_step(du, tol, dprev):
    """Newton's convergence test on a step ``du``: its max-norm is below ``tol``, or the
    next step would be (quadratic convergence: about ``|du|·(|du|/dprev)``). Returns
    ``(small, |du|_∞)``."""
    dnorm = jnp.max(jnp.abs(du), initial=0.0)
    rate = jnp.where(jnp.isfinite(dprev), jnp.minimum(dnorm / dprev, 1.0), 1.0)
    return (dnorm <= tol) | ((dnorm * rate <= tol) & (rate < 0.1)), dnorm


def limit_junctions(c: Circuit, values: Values, u, vj):
    """The junction states after a step to ``u``: each diode's new voltage, cut by pnjlim
    relative to its previous state ``vj`` (SPICE evaluates devices at these voltages)."""
    if not c.diodes.a.shape[0]:
        return vj
    vd = junction_voltages(c, node_voltages(c, values, u))
    return junction_limit(vd, vj, c.diodes.vte, c.diodes.vcrit)


def circuit_newton(c: Circuit, values: Values, u0, options: Newton, nudge: Nudge | None = None,
                   cost: OutputCost | None = None, warm: bool = False) -> Solution:
    """Minimise the circuit energy (plus ``nudge`` / ``cost``) from ``u0`` by :class:`Newton`.

    **Returns:** a :class:`Solution` (check ``result``; nothing raises under ``jit``).
    """
    return options(CircuitSystem(c=c, values=values, nudge=nudge, cost=cost, warm=warm), u0)


def newton_solve(c: Circuit, values: Values, u0, options: Newton, nudge: Nudge | None = None):
    """The operating point from ``u0`` with SPICE's junction initialisation (diodes
    linearised at ``vcrit`` first). Converged when a step moves no node by more than
    ``atol + rtol·max|v|`` and no junction was limited."""
    return circuit_newton(c, values, u0, options, nudge)


def initial_guess(c: Circuit, values: Values, u0, nudge: Nudge | None = None, maxiter=20000):
    """SPICE's junction initialisation: one Newton step (to a relative residual of 1e-10)
    with every diode replaced by its tangent at ``vcrit``, from ``u0``. Returns the new
    unknowns and junction states, and the result.

    Without it, a diode tied directly to a source node starts volts into forward bias and
    Newton crawls down its exponential one thermal voltage per step.
    """
    newton = Newton(eta_first=1e-10, eta_min=1e-10, linear_maxiter=maxiter)
    system = CircuitSystem(c=c, values=values, nudge=nudge)
    if not c.diodes.a.shape[0] or c.n_u == 0:
        state = newton.init(system, u0)
        return state
    return newton.step(system, newton.init(system, u0))
