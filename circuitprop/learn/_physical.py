"""Agnostic equilibrium propagation: a trainer that talks to a physical system only.

The trainer (:func:`agnostic_step`, :func:`agnostic_gradient`) never evaluates or
differentiates an energy. It uses a :class:`PhysicalSystem`: set control knobs ``u``, inputs
``x`` and the nudge ``(β, y)``; let the system relax; measure the parameters θ and the
outputs. In the system, θ are physical degrees of freedom tied to the knobs by a spring,
so its total energy is

    𝓔(s, θ) = E(s, θ, x) + ‖u − θ‖² / (2η) + β C(s, y),

and relaxation minimises it over ``(s, θ)`` jointly.

One step from θ_t (Scellier, Mishra, Bengio, Ollivier 2022), variant → (β1, β2):
optimistic (0, β), pessimistic (−β, 0), centered (−β/2, β/2):

1. homeostatic phase at β1: the knobs are adjusted by a feedback loop on the measured θ
   (``u ← u + κ (θ_t − θ_measured)``, relaxing after each adjustment) until the relaxed θ
   is θ_t; at that point the state has relaxed with θ held at θ_t and ``u_t`` makes θ_t an
   equilibrium (``u_t = θ_t + η ∂θE(s_β1, θ_t)``, which nobody computes).
2. clamped phase at β2: ``u_t`` is kept; ``s`` and θ relax jointly; the θ reached is
   θ_{t+1} ≈ θ_t − η (β2 − β1) ∇θL. The implied gradient is
   ``−(θ_{t+1} − θ_t) / (η (β2 − β1))``.

Two simulated systems are provided. :class:`EnergyPhysicalSystem` relaxes the joint
vector ``z = (s, θ)`` by Newton–CG with autodiff of 𝓔 with respect to ``z`` as a whole.
:class:`BlackBoxPhysicalSystem` treats the energy as an opaque callable that it can only
evaluate: its forces ``−∂𝓔/∂z`` are central differences of energy values (the physics
"feels" forces; no derivative of ``E`` is ever requested from JAX), so it runs even when
differentiating ``E`` raises (see :func:`forbid_theta_derivative`).
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from .._solve._fixed_point import python_while
from .._solve._minimise import autodiff_oracle, finite_difference_oracle, minimize
from ._engine import homeostatic_step
from ._estimators import agnostic_phases

__all__ = ["PhysicalSystem", "EnergyPhysicalSystem", "BlackBoxPhysicalSystem",
           "AgnosticResult", "agnostic_step", "agnostic_gradient", "forbid_theta_derivative",
           "ThetaDerivativeError"]

class PhysicalSystem(abc.ABC):
    """What the agnostic trainer may do with a system: no access to its energy.

    θ and ``u`` are pytrees of the same structure (the trainer treats them as values);
    ``x``, ``y`` are whatever the system accepts as inputs and targets.
    """

    @abc.abstractmethod
    def set_controls(self, u) -> None:
        """Set the control knobs ``u`` (the spring anchors of θ)."""

    @abc.abstractmethod
    def set_inputs(self, x) -> None:
        """Set the inputs."""

    @abc.abstractmethod
    def set_nudge(self, beta, y) -> None:
        """Set the nudging strength ``β`` towards target ``y`` (``β = 0``: no nudge)."""

    @abc.abstractmethod
    def relax(self) -> bool:
        """Let state and θ relax from where they are; returns whether they settled."""

    @abc.abstractmethod
    def measure_theta(self):
        """The current parameters θ (a measurement)."""

    @abc.abstractmethod
    def measure_outputs(self):
        """The current outputs (a measurement)."""


class ThetaDerivativeError(RuntimeError):
    """Raised when an energy wrapped by :func:`forbid_theta_derivative` is differentiated
    with respect to θ."""


def forbid_theta_derivative(energy: Callable) -> Callable:
    """Wrap ``energy(state, theta, x)`` so that any JAX derivative with respect to ``theta``
    raises :class:`ThetaDerivativeError` (derivatives with respect to the state are allowed;
    plain evaluation is unaffected). Used to prove that a trainer never needs ``∂E/∂θ``."""

    @jax.custom_jvp
    def wrapped(state, theta, x):
        return energy(state, theta, x)

    def jvp(primals, tangents):
        state, theta, x = primals
        from jax.custom_derivatives import SymbolicZero

        if any(not isinstance(t, SymbolicZero) for t in jax.tree_util.tree_leaves(
                tangents[1], is_leaf=lambda t: isinstance(t, SymbolicZero))):
            raise ThetaDerivativeError("this energy is a black box: its derivative with "
                                       "respect to theta is not available")
        ts = jax.tree_util.tree_map(
            lambda t, p: jnp.zeros_like(p) if isinstance(t, SymbolicZero) else t,
            tangents[0], state, is_leaf=lambda t: isinstance(t, SymbolicZero))
        val, dval = jax.jvp(lambda s: energy(s, theta, x), (state,), (ts,))
        return val, dval

    wrapped.defjvp(jvp, symbolic_zeros=True)
    return wrapped


class EnergyPhysicalSystem(PhysicalSystem):
    """A simulated physical system: state ``s`` and parameters θ relax jointly on
    ``E(s, θ, x) + ‖u − θ‖²/(2η) + β C(s, y)``.

    **Arguments:**

    - ``energy``: ``E(state, theta, x)``; ``cost``: ``C(state, y)`` (the nudge).
    - ``state0``, ``theta0``: initial state and parameters (pytrees; fix the shapes).
    - ``eta``: spring compliance η (θ = u − η ∂θE at equilibrium).
    - ``outputs``: ``state -> outputs`` (default: the whole state).
    - ``forces``: ``"autodiff"`` (gradient of 𝓔 with respect to the joint vector
      ``z = (s, θ)``) or ``"finite-difference"`` (energy values only, see
      :class:`BlackBoxPhysicalSystem`).
    - ``tol``, ``maxiter``, ``fd_step``: relaxation tolerance (∞-norm of the joint force),
      iterations, finite-difference step.
    """

    def __init__(self, energy: Callable, cost: Callable, state0, theta0, eta: float, *,
                 outputs: Callable | None = None, forces: str = "autodiff",
                 tol: float | None = None, maxiter: int = 200, fd_step: float = 1e-5):
        if forces not in ("autodiff", "finite-difference"):
            raise ValueError(f"forces must be 'autodiff' or 'finite-difference' (got {forces!r})")
        self.eta = float(eta)
        self.forces = forces
        self._outputs = outputs or (lambda s: s)
        s_flat, self._unravel_s = ravel_pytree(state0)
        t_flat, self._unravel_t = ravel_pytree(theta0)
        self._ns = s_flat.shape[0]
        self._z = jnp.concatenate([s_flat, t_flat])
        self._u = t_flat
        self._x = None
        self._beta = 0.0
        self._y = None
        self.relaxations = 0
        tol = tol if tol is not None else (1e-11 if forces == "autodiff" else 1e-8)
        ns, us, ut, eta_ = self._ns, self._unravel_s, self._unravel_t, self.eta

        def total(z, u, x, beta, y):
            s, th = us(z[:ns]), ut(z[ns:])
            spring = jnp.sum((u - z[ns:]) ** 2) / (2.0 * eta_)
            return energy(s, th, x) + spring + beta * cost(s, y)

        def run(z0, u, x, beta, y):
            def f(z):
                return total(z, u, x, beta, y)

            oracle = autodiff_oracle(f) if forces == "autodiff" else \
                finite_difference_oracle(f, step=fd_step)
            return minimize(f, z0, oracle=oracle, tol=tol, maxiter=maxiter)

        self._run = jax.jit(run)

    def set_controls(self, u) -> None:
        self._u = ravel_pytree(u)[0]

    def set_inputs(self, x) -> None:
        self._x = x

    def set_nudge(self, beta, y) -> None:
        self._beta = jnp.asarray(beta, dtype=self._z.dtype)
        self._y = y

    def relax(self) -> bool:
        y = self._y if self._y is not None else jnp.zeros(())
        r = self._run(self._z, self._u, self._x, jnp.asarray(self._beta, self._z.dtype), y)
        self._z = r.z
        self.relaxations += 1
        return bool(r.converged)

    def measure_theta(self):
        return self._unravel_t(self._z[self._ns:])

    def measure_outputs(self):
        return self._outputs(self._unravel_s(self._z[:self._ns]))


class BlackBoxPhysicalSystem(EnergyPhysicalSystem):
    """:class:`EnergyPhysicalSystem` whose energy is opaque: it is only ever *evaluated*.

    The relaxation's forces are central differences of the total energy along each
    coordinate of ``z = (s, θ)`` (and its Hessian-vector products are differences of those
    forces), so the system works with an energy that cannot be differentiated at all — a
    stand-in for hardware, whose physics relaxes without anyone computing a derivative.
    Forces are accurate to about 1e-10, so the default relaxation tolerance is 1e-8.
    """

    def __init__(self, energy: Callable, cost: Callable, state0, theta0, eta: float, **kw):
        kw.setdefault("forces", "finite-difference")
        super().__init__(energy, cost, state0, theta0, eta, **kw)


class AgnosticResult(NamedTuple):
    """One agnostic step: ``theta`` (θ_{t+1}, measured), ``grad`` (the implied gradient
    ``−(θ_{t+1} − θ_t)/(η(β2 − β1))``), ``u`` (the homeostatic controls u_t), ``outputs``
    (measured in the homeostatic phase), ``feedback_error`` (``max|θ_measured − θ_t|`` when
    the feedback loop stopped), ``feedback_iters``, ``converged`` (every relaxation settled
    and the feedback loop reached its tolerance)."""

    theta: Any
    grad: Any
    u: Any
    outputs: Any
    feedback_error: float
    feedback_iters: int
    converged: bool


def agnostic_step(system: PhysicalSystem, theta_t, x, y, *, eta: float | None = None,
                  beta: float = 0.1, variant: str = "centered", feedback_iters: int = 50,
                  feedback_gain: float = 1.0, feedback_tol: float = 1e-10,
                  u0=None) -> AgnosticResult:
    """One agnostic-EP step from ``theta_t``: homeostatic phase, then clamped phase
    (:func:`circuitprop.learn._engine.homeostatic_step`, driven in Python).

    Only :class:`PhysicalSystem` methods are used: no energy, no derivative.

    **Arguments:**

    - ``system``: the physical system; ``theta_t``: the parameters to start from;
      ``x``, ``y``: one sample.
    - ``eta``: the spring compliance, used to scale the implied gradient (default
      ``system.eta``); ``beta``, ``variant``: nudging strength and (β1, β2) variant
      (optimistic/positive, pessimistic/negative, centered).
    - ``feedback_iters``, ``feedback_gain``, ``feedback_tol``: the homeostatic feedback
      loop ``u ← u + κ (θ_t − θ_measured)`` (at most ``feedback_iters`` relaxations, stop
      when ``max|θ_measured − θ_t| ≤ feedback_tol``).
    - ``u0``: starting controls (default ``theta_t``).

    **Returns:** :class:`AgnosticResult`.
    """
    if eta is None:
        eta = getattr(system, "eta")
    b1, b2 = agnostic_phases(variant, beta)
    tm = jax.tree_util.tree_map
    theta_t = tm(jnp.asarray, theta_t)
    system.set_inputs(x)

    outputs = []

    def relax(_, knobs, b):
        system.set_controls(knobs)
        system.set_nudge(b, y)
        ok = system.relax()
        if b == b1:  # the homeostatic phase's outputs, as last measured there
            outputs[:] = [system.measure_outputs()]
        return None, jnp.asarray(ok)

    h = homeostatic_step(relax, lambda _: system.measure_theta(), None, theta_t, b1, b2, eta,
                         feedback_iters=feedback_iters, feedback_gain=feedback_gain,
                         feedback_tol=feedback_tol,
                         knobs0=None if u0 is None else tm(jnp.asarray, u0),
                         loop=python_while, tmap=tm)
    return AgnosticResult(h.theta, h.grad, h.knobs, outputs[0] if outputs else None,
                          float(h.feedback_error), int(h.feedback_iters), bool(h.ok))


def agnostic_gradient(system: PhysicalSystem, theta_t, x, y, **kw):
    """The implied gradient ``−(θ_{t+1} − θ_t)/(η(β2 − β1))`` of :func:`agnostic_step`."""
    return agnostic_step(system, theta_t, x, y, **kw).grad
