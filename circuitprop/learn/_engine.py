"""The learning engine: every rule written once over an equilibrium-problem interface.

An :class:`EquilibriumProblem` is something that settles: set its parameters θ and inputs
``x``, solve a phase at nudge β (``E + βC`` minimised over the state; β may be complex),
and measure what hardware could measure there: ``∂θE`` of the learning devices (for a
resistor, ``½ΔV²`` from its voltage drop) and the outputs. Two implementations exist:
circuits (:class:`circuitprop.learn.CircuitEquilibrium`) and any JAX energy
``E(state, θ, x)`` with a cost ``C(state, y)``
(:class:`circuitprop.learn.EnergyEquilibrium`, the engine behind :mod:`circuitprop.bilevel`).

Over it, written once here:

- :func:`ep_estimate`: every EP estimator of :mod:`._estimators` (positive, negative,
  centered, forward-2..5, holomorphic-N): the phase sequence and the combination.
- :func:`coupled_estimate`: coupled / contrastive learning (clamped outputs).
- :func:`implicit_gradient`: the exact gradient by implicit differentiation, the adjoint
  by conjugate gradients or by recurrent backprop (the Richardson iteration).
- :func:`finite_difference`: central differences of the loss.
- :func:`homeostatic_step`: agnostic EP — a trainer that only sets knobs, lets the physics
  relax and measures θ (the homeostatic feedback loop, then the clamped phase).
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp

from .._errors import ExperimentError
from .._solve._fixed_point import fixed_point, python_while
from .._solve._linear import jacobi, largest_eigenvalue, pcg, richardson
from .._solve._result import RESULTS
from ._estimators import estimator_points

__all__ = ["EquilibriumProblem", "Phase", "Reading", "ep_estimate", "ep_phases",
           "ep_batch_estimate", "coupled_estimate",
           "implicit_gradient", "finite_difference", "homeostatic_step", "Homeostatic",
           "python_while"]


class Phase(NamedTuple):
    """A solved phase: the equilibrium ``state`` and whether it converged (``ok``)."""

    state: Any
    ok: Any


class Reading(NamedTuple):
    """What a phase lets hardware measure: ``dE`` (``∂θE`` of every learning device) and
    ``out`` (the outputs)."""

    dE: Any
    out: Any


class EquilibriumProblem(eqx.Module):
    """The interface every learning rule is written against (see the module docstring).

    States and θ are flat arrays here; implementations flatten their own pytrees.
    """

    @abc.abstractmethod
    def solve(self, theta, x, y, beta, start, warm: bool = False) -> Phase:
        """The equilibrium of ``E + βC`` from ``start`` (``beta=None``: the free phase;
        ``start=None``: the implementation's default). ``warm``: keep the start's internal
        device states (circuits: junction states)."""

    @abc.abstractmethod
    def measure(self, theta, x, state, model=None, key=None) -> Reading:
        """``∂θE`` of the learning devices and the outputs at ``state``, through the
        measurement model ``model`` (noise from ``key``) where it applies."""

    @abc.abstractmethod
    def loss(self, theta, x, state, y):
        """The cost ``C`` at ``state`` (the loss when ``state`` is the free equilibrium)."""

    @abc.abstractmethod
    def adjoint_system(self, theta, x, y, state):
        """``(matvec, rhs, diag, finish)`` at the free equilibrium: ``matvec`` applies the
        state Hessian ``H = ∂²_s E``, ``rhs = ∂_s C``, ``diag`` its diagonal (or ``None``),
        and ``finish(π)`` turns the adjoint ``π = H⁻¹ ∂_s C`` into ``dL/dθ``."""

    def combine(self, theta, xs, states, coefs):
        """``Σ_i coefs_i ∂θE(xs_i, states_i)`` with ideal measurements (the batch reduction
        of EP estimates). By default each state is measured; implementations with a faster
        reduction override it."""

        def add(acc, inp):
            x, st, c = inp
            return acc + c * self.measure(theta, x, st).dE, None

        first = self.measure(theta, xs[0], states[0]).dE
        acc0 = jnp.zeros(first.shape, jnp.promote_types(first.dtype, coefs.dtype))
        return jax.lax.scan(add, acc0, (xs, states, coefs))[0]

    def nudge_target(self, theta, x, y, free: Phase):
        """What the nudged phases of EP are given in place of ``y`` (:func:`ep_phases`):
        ``y`` itself where the cost enters the energy; implementations whose nudge is a
        drive linearised at the free phase (a circuit's current outputs: shifted readout
        sources) return what their :meth:`solve` needs."""
        return y

    def exact_gradient(self, theta, x, y, state):
        """``(dL/dθ, ok)`` by a direct method where the state Hessian is not symmetric (no
        energy: :func:`implicit_gradient` then uses this), else ``None``."""
        return None

    def clamp(self, theta, x, target, model=None, key=None) -> tuple[Phase, Reading]:
        """The phase with every output held at ``target`` and its reading (coupled and
        contrastive learning). Not every problem has outputs that can be clamped."""
        raise ExperimentError(f"{type(self).__name__} has no outputs to clamp: coupled and "
                              "contrastive learning need a circuit")


# ----------------------------------------------------------------------------- EP


def _phase_plan(estimator: str):
    """The nudged phases of an estimator in solving order: ``(b, from_free)`` pairs (the
    positive side 0 → b1 → b2 … and the negative side each warm-started from the previous
    phase on their side; complex points each from the free state), plus the combination
    weight of the free phase and of each planned phase."""
    points, coefs = estimator_points(estimator)
    holo = any(isinstance(b, complex) for b in points)
    if holo:
        plan = [(b, True) for b in points]
    else:
        pos = sorted(b for b in points if b > 0)
        neg = sorted((b for b in points if b < 0), key=abs)
        plan = [(b, i == 0) for i, b in enumerate(pos)] + [(b, i == 0) for i, b in enumerate(neg)]
    w_free = sum(a for b, a in zip(points, coefs) if b == 0)
    w = [sum(a for bb, a in zip(points, coefs) if bb == b) for b, _ in plan]
    return plan, w_free, w, holo


def ep_phases(eq: EquilibriumProblem, theta, x, y, beta: float, estimator: str, free: Phase,
              *, warm: bool = False):
    """The nudged phases of an EP estimator, solved from the free phase (the one phase
    sequence every EP estimate runs).

    **Returns:** ``(states, w_free, w, ok)``: the phases' states stacked in solving order
    (complex for holomorphic estimators), and the weights of the estimate
    ``(1/β) Re[w_free ∂θE(free) + Σ_i w_i ∂θE(states_i)]``. The phases run in one
    ``lax.scan`` (one compiled solve).
    """
    plan, w_free, w, holo = _phase_plan(estimator)
    real = jnp.result_type(theta)
    dtype = jnp.promote_types(real, jnp.complex64) if holo else real
    bs = jnp.asarray([b for b, _ in plan], dtype) * beta
    from_free = jnp.asarray([f for _, f in plan])
    u_free = free.state.astype(dtype)
    yn = eq.nudge_target(theta, x, y, free)

    def one(prev, inp):
        b, ff = inp
        start = jnp.where(ff, u_free, prev)
        ph = eq.solve(theta, x, yn, b, start, warm)
        return ph.state, (ph.state, ph.ok)

    _, (states, oks) = jax.lax.scan(one, u_free, (bs, from_free))
    return states, w_free, jnp.asarray(w, dtype), jnp.all(oks) & free.ok


def ep_estimate(eq: EquilibriumProblem, theta, x, y, beta: float, estimator: str, free: Phase,
                free_dE, *, warm: bool = False, model=None, key=None):
    """The EP estimate ``(1/β) Re Σ_i α_i ∂θE(s_{b_i β})`` given the free phase.

    **Arguments:** the problem, one sample, the nudge ``beta`` (> 0), the estimator name,
    the free phase and its measured ``∂θE``; ``warm``, ``model``, ``key`` as in
    :meth:`EquilibriumProblem.solve` / :meth:`EquilibriumProblem.measure`.

    **Returns:** ``(estimate, ok)``: the phases of :func:`ep_phases`, each measured through
    ``model`` (its own key) and combined.
    """
    states, w_free, wts, ok = ep_phases(eq, theta, x, y, beta, estimator, free, warm=warm)
    keys = jax.random.split(key if key is not None else jax.random.PRNGKey(0), wts.shape[0])

    def add(acc, inp):
        st, wt, k = inp
        # accumulate phase by phase (one pass over the parameters each)
        return acc + wt * eq.measure(theta, x, st, model, k).dE, None

    acc0 = (w_free * free_dE).astype(jnp.promote_types(free_dE.dtype, wts.dtype))
    acc, _ = jax.lax.scan(add, acc0, (states, wts, keys))
    return jnp.real(acc) / beta, ok


def ep_batch_estimate(eq: EquilibriumProblem, theta, xs, ys, beta: float, estimator: str,
                      frees: Phase, weights, *, warm: bool = False, free_coef: float = 0.0):
    """``Σ_s weights_s · ep_estimate(sample s)`` over a batch, with ideal measurements,
    reduced by :meth:`EquilibriumProblem.combine` over every (sample, phase) state at once
    (circuits with dense blocks: matmuls, no per-sample gradient is formed).
    ``free_coef``: an extra ``Σ_s weights_s · free_coef · ∂θE(free_s)`` in the same reduction
    (a power penalty's ``2λ``).

    **Returns:** ``(estimate, ok)`` with ``ok`` per sample.
    """
    states, w_free, wts, ok = jax.vmap(
        lambda x, y, f: ep_phases(eq, theta, x, y, beta, estimator, f, warm=warm))(
            xs, ys, frees)
    n, k = wts.shape
    all_states = jnp.concatenate([frees.state[:, None].astype(states.dtype), states], axis=1)
    w0 = jnp.broadcast_to(jnp.reshape(jnp.asarray(w_free, wts.dtype), (-1, 1)), (n, 1))
    coefs = jnp.concatenate([w0, wts], axis=1) * weights[:, None] / beta
    if free_coef:
        coefs = coefs.at[:, 0].add(free_coef * weights)
    xs_rep = jnp.repeat(xs[:, None], k + 1, axis=1)
    flat = lambda a: a.reshape((n * (k + 1),) + a.shape[2:])  # noqa: E731
    est = eq.combine(theta, flat(xs_rep), flat(all_states), flat(coefs))
    return jnp.real(est), ok


def coupled_estimate(eq: EquilibriumProblem, theta, x, y, eta: float, free_reading: Reading,
                     free: Phase, *, model=None, key=None):
    """Coupled learning (Stern et al. 2021): the outputs clamped at ``o_F + η (y − o_F)``;
    the estimate is ``(1/η) [∂θE(clamped) − ∂θE(free)]`` (``η = 1``: contrastive)."""
    target = free_reading.out + eta * (y - free_reading.out)
    ph, r = eq.clamp(theta, x, target, model=model, key=key)
    return (r.dE - free_reading.dE) / eta, ph.ok & free.ok


# ----------------------------------------------------------------------------- exact


def implicit_gradient(eq: EquilibriumProblem, theta, x, y, state, *, method: str = "cg",
                      tol: float = 1e-14, maxiter: int = 200000):
    """``dL/dθ`` by implicit differentiation at the free equilibrium ``state``: solve
    ``H π = ∂_s C`` by conjugate gradients (``method="cg"``) or by recurrent backprop (the
    linearised relaxation ``π ← π + ω D⁻¹(∂_s C − H π)``, ``method="rbp"``: ``ω = 0.8`` with
    the Jacobi scaling ``D`` of a circuit, else ``1/(1.05 λ_max)`` from power iteration), then
    ``finish(π)``. Problems without an energy answer through
    :meth:`EquilibriumProblem.exact_gradient` instead.

    **Returns:** ``(gradient, ok, iterations)``.
    """
    direct = eq.exact_gradient(theta, x, y, state)
    if direct is not None:  # no energy: the adjoint of a non-symmetric Jacobian, directly
        return direct[0], direct[1], jnp.asarray(1)
    matvec, rhs, diag, finish = eq.adjoint_system(theta, x, y, state)
    precond = jacobi(diag) if diag is not None else None
    atol = tol * jnp.linalg.norm(rhs)
    if method == "cg":
        pi, its, res = pcg(matvec, rhs, precond, atol, maxiter)
    elif method == "rbp":
        if precond is not None:
            # Jacobi-scaled conductance matrices have their eigenvalues in (0, 2)
            omega = 0.8
        else:
            lam = largest_eigenvalue(matvec, rhs.shape[0], rhs.dtype)
            omega = 1.0 / (1.05 * jnp.maximum(lam, 1e-300))
        pi, its, res = richardson(matvec, rhs, precond, atol, maxiter, omega)
    else:
        raise ValueError(f"unknown adjoint method {method!r} (cg or rbp)")
    return finish(pi), res == RESULTS.successful, its


def finite_difference(eq: EquilibriumProblem, theta, x, y, h, free: Phase):
    """Central differences ``(L(θ + h_k e_k) − L(θ − h_k e_k)) / 2h_k`` for every parameter
    (vmapped), each re-solve warm-started from the free state.

    **Returns:** ``(gradient, ok)``.
    """
    k = theta.shape[0]
    eye = jnp.eye(k, dtype=theta.dtype) * h[:, None]

    def one(t):
        ph = eq.solve(t, x, y, None, free.state, False)
        return eq.loss(t, x, ph.state, y), ph.ok

    lp, okp = jax.vmap(one)(theta[None, :] + eye)
    lm, okm = jax.vmap(one)(theta[None, :] - eye)
    return (lp - lm) / (2 * h), jnp.all(okp) & jnp.all(okm) & free.ok


# ----------------------------------------------------------------------------- agnostic


class Homeostatic(NamedTuple):
    """One agnostic-EP step: ``grad`` (``−(θ_{t+1} − θ_h)/(η(β2 − β1))`` with θ_h the θ
    measured at the end of the homeostatic phase, θ_t to the feedback tolerance), ``theta`` (θ_{t+1},
    measured), ``knobs`` (the homeostatic controls u_t), ``physics`` (the system's state
    after the homeostatic phase), ``feedback_error`` (``max|θ_measured − θ_t|`` when the
    loop stopped), ``feedback_iters``, ``ok`` (every relaxation settled and the feedback
    loop reached its tolerance)."""

    grad: Any
    theta: Any
    knobs: Any
    physics: Any
    feedback_error: Any
    feedback_iters: Any
    ok: Any


def homeostatic_step(relax: Callable, measure_theta: Callable, physics0, theta_t, b1, b2,
                     eta, *, feedback_iters: int = 30, feedback_gain: float = 1.0,
                     feedback_tol=0.0, knobs0=None, loop: Callable | None = None,
                     tmap: Callable = jax.tree_util.tree_map) -> Homeostatic:
    """Agnostic EP from θ_t through a physical system only (Scellier et al. 2022).

    **Arguments:**

    - ``relax(physics, knobs, beta) -> (physics, ok)``: let the system (state and θ) relax
      with its θ held by springs to the control ``knobs``, at nudge ``beta``.
    - ``measure_theta(physics) -> θ``: measure the parameters.
    - ``physics0``: the system's state to start from; ``theta_t``: the parameters to hold.
    - ``b1``, ``b2``: the homeostatic and the clamped phase's nudges; ``eta``: the springs'
      compliance (scales the implied gradient).
    - ``feedback_iters``, ``feedback_gain``, ``feedback_tol``: the homeostatic loop
      ``u ← u + κ (θ_t − θ_measured)``, relaxing after each adjustment, until
      ``max|θ_measured − θ_t| ≤ feedback_tol``.
    - ``loop``: ``None`` (a compiled loop, for jittable systems) or :func:`python_while`.

    Nobody evaluates ``∂E/∂θ``: at the end of the loop ``u_t`` makes θ_t an equilibrium
    (``u_t = θ_t + η ∂θE``, measured through θ only); the clamped phase keeps ``u_t`` and
    the θ it relaxes to is ``θ_{t+1} ≈ θ_t − η(β2 − β1)∇L``. The implied gradient is taken
    against θ measured at the end of the homeostatic phase, which cancels what is left of the
    feedback error.
    """
    knobs = theta_t if knobs0 is None else knobs0

    def err_of(th):
        d = tmap(lambda a, b: a - b, theta_t, th)
        leaves = jax.tree_util.tree_leaves(d)
        e = jnp.max(jnp.stack([jnp.max(jnp.abs(leaf), initial=0.0) for leaf in leaves]))
        return d, e

    def feedback(p):
        # relax at β1 with the present knobs, measure θ, adjust the knobs (unless there)
        physics, u = p
        physics, ok = relax(physics, u, b1)
        d, err = err_of(measure_theta(physics))
        done = err <= feedback_tol
        u = tmap(lambda a, dd: jnp.where(done, a, a + feedback_gain * dd), u, d)
        return (physics, u), err, ok

    (physics, knobs), k, result = fixed_point(feedback, (physics0, knobs), feedback_tol,
                                              feedback_iters, loop)
    ok = result == RESULTS.successful
    _, err = err_of(measure_theta(physics))
    ok = ok & (err <= feedback_tol)
    # θ as measured at the end of the homeostatic phase (θ_t up to the feedback tolerance):
    # the difference below is the response to the change of nudge alone
    theta_h = measure_theta(physics)
    clamped, ok2 = relax(physics, knobs, b2)
    theta_next = measure_theta(clamped)
    grad = tmap(lambda a, b: -(a - b) / (eta * (b2 - b1)), theta_next, theta_h)
    finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(leaf))
                                for leaf in jax.tree_util.tree_leaves(grad)]))
    return Homeostatic(grad=grad, theta=theta_next, knobs=knobs, physics=physics,
                       feedback_error=err, feedback_iters=k, ok=ok & ok2 & finite)
