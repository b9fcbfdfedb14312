"""Circuits as an :class:`~._engine.EquilibriumProblem`, and their agnostic-EP physics.

:class:`CircuitEquilibrium` wraps a learning :class:`~._phases.Problem`: phases are solved by
the package's Newton loop (complex nudges in complex arithmetic), and a phase's reading is
what a chip can measure — the voltage drop across every trainable resistor (``∂E/∂g_k =
½ΔV_k²``) and the output voltages — through a :class:`~._measure.MeasurementModel`.

:class:`CircuitPhysics` simulates a circuit whose trainable conductances are physical
degrees of freedom held by springs of compliance η to control knobs (agnostic EP). It
relaxes the circuit state and the conductances jointly on ``E + ‖knobs − θ‖²/(2η) + βC``:
the state by the circuit's own Newton solve, the conductances by the force
``−∂E/∂θ`` that the physics feels, obtained from values of the energy function
:func:`circuit_energy` alone (central differences, exact for conductances, on which ``E`` is
linear). The energy is never differentiated with respect to θ.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from .._energy import OutputCost, dissipated_power, energy, hessian_parts, hvp, node_voltages
from .._losses import LOSSES
from .._solve._fixed_point import fixed_point
from .._solve._result import RESULTS
from ._engine import EquilibriumProblem, Phase, Reading
from ._measure import MeasurementModel
from ._phases import (
    CurrentNudge,
    Measurement,
    Problem,
    cost,
    current_shift,
    measure,
    measure_state,
    output_values,
    solve_clamped,
    solve_phase,
    split_state,
    values_for,
    weighted_energy_grad,
)

__all__ = ["CircuitEquilibrium", "CircuitPhysics", "circuit_energy", "theta_force"]


def circuit_energy(prob: Problem, u, theta, x):
    """The co-content energy ``E(u; θ, x)`` of the circuit (the function the agnostic
    physics evaluates; replace it to prove that nothing differentiates it in θ)."""
    return energy(prob.circuit, values_for(prob, theta, x), u)


class CircuitEquilibrium(EquilibriumProblem):
    """A learning circuit as an :class:`~._engine.EquilibriumProblem` (state: the reduced
    unknowns ``u``; θ: the trainable conductances; x: the encoded input source values)."""

    prob: Problem

    def _values(self, theta, x, state):
        """``(values, u)`` of a state (current outputs: the readout shifts applied)."""
        u, shift = split_state(self.prob, state)
        return values_for(self.prob, theta, x, shift=shift), u

    def solve(self, theta, x, y, beta, start, warm: bool = False) -> Phase:
        prob = self.prob
        if not prob.current:
            sol = solve_phase(prob, values_for(prob, theta, x), beta, y, start, warm)
            return Phase(state=sol.u, ok=sol.ok)
        # current outputs: a nudged phase shifts the readout sources by −β ∂C/∂i, with the
        # gradient from the free phase (a CurrentNudge), else linearised at the start
        u0 = None if start is None else split_state(prob, start)[0]
        if beta is None:
            shift = jnp.zeros(prob.shift_src.shape, jnp.result_type(theta))
        else:
            if isinstance(y, CurrentNudge):
                grad = y.grad
            else:
                o = self.outputs(theta, x, start)
                grad = LOSSES[prob.loss].grad(o, y)
            shift = current_shift(prob, grad, beta)
            if u0 is not None:
                u0 = u0.astype(jnp.result_type(u0, shift))
        sol = solve_phase(prob, values_for(prob, theta, x, shift=shift), None, None, u0,
                          warm or beta is not None)
        return Phase(state=jnp.concatenate([sol.u, shift.astype(sol.u.dtype)]), ok=sol.ok)

    def nudge_target(self, theta, x, y, free: Phase):
        if not self.prob.current:
            return y
        o = self.outputs(theta, x, free.state)
        return CurrentNudge(target=y, grad=LOSSES[self.prob.loss].grad(o, y))

    def _reading(self, m: Measurement, model: MeasurementModel | None, key) -> Reading:
        if model is not None:
            m = model(m, key if key is not None else jax.random.PRNGKey(0))
        return Reading(dE=m.energy_grad(), out=m.out)

    def measure(self, theta, x, state, model=None, key=None) -> Reading:
        values, u = self._values(theta, x, state)
        m = measure_state(self.prob, self.prob.circuit, values, u)
        return self._reading(m, model, key)

    def combine(self, theta, xs, states, coefs):
        prob, c = self.prob, self.prob.circuit

        def volts(x, st):
            values, u = self._values(theta, x, st)
            return node_voltages(c, values, u)

        v = jax.vmap(volts)(xs, states)
        return weighted_energy_grad(prob, c, v, coefs)

    def outputs(self, theta, x, state):
        values, u = self._values(theta, x, state)
        return output_values(self.prob, self.prob.circuit, values,
                             node_voltages(self.prob.circuit, values, u))

    def loss(self, theta, x, state, y):
        return cost(self.prob.loss, self.outputs(theta, x, state), y)

    def power(self, theta, x, state):
        """The power (W) the circuit dissipates at ``state``."""
        values, u = self._values(theta, x, state)
        return dissipated_power(self.prob.circuit, values,
                                node_voltages(self.prob.circuit, values, u))

    def adjoint_system(self, theta, x, y, state):
        prob, c = self.prob, self.prob.circuit
        values = values_for(prob, theta, x)
        state = split_state(prob, state)[0]
        v = node_voltages(c, values, state)
        ua, ub, gb, diag = hessian_parts(c, values, v)
        ra, rb = c.r_a[prob.train_idx], c.r_b[prob.train_idx]

        def finish(pi):
            pv = jnp.concatenate([pi, jnp.zeros((1,), pi.dtype)])[c.node_var]
            return -(v[ra] - v[rb]) * (pv[ra] - pv[rb])

        if prob.current:
            # a current depends on the conductances at the readout node as well as on the
            # state: C(i(u, θ)) has an explicit θ part besides the adjoint's
            f = lambda t, u: self.loss(t, x, u, y)  # noqa: E731
            rhs = jax.grad(f, argnums=1)(theta, state)
            explicit = jax.grad(f, argnums=0)(theta, state)
            return (lambda w: hvp(c, ua, ub, gb, w)), rhs, diag, (
                lambda pi: finish(pi) + explicit)
        rhs = OutputCost(loss=prob.loss, p=prob.out_p, m=prob.out_m, beta=1.0,
                         target=y).gradient_u(c, values, state)
        return (lambda w: hvp(c, ua, ub, gb, w)), rhs, diag, finish

    def clamp(self, theta, x, target, model=None, key=None):
        sol, cv = solve_clamped(self.prob, values_for(self.prob, theta, x), target)
        m = measure(self.prob, self.prob.clamped, cv, sol)
        return Phase(state=sol.u, ok=sol.ok), self._reading(m, model, key)


def theta_force(prob: Problem, u, theta, x):
    """``∂E/∂θ`` as the physics feels it: central differences of energy *values* along each
    conductance, with steps of half the conductance (exact: ``E`` is linear in each
    conductance; only rounding of ``E`` enters)."""
    h = 0.5 * theta
    eye = jnp.eye(theta.shape[0], dtype=theta.dtype) * h[:, None]
    e = lambda t: circuit_energy(prob, u, t, x)  # noqa: E731
    return (jax.vmap(e)(theta[None, :] + eye) - jax.vmap(e)(theta[None, :] - eye)) / (2 * h)


class CircuitPhysics(eqx.Module):
    """A circuit with spring-held conductances (agnostic EP), as pure functions: the
    physical state is ``(u, θ)``; :meth:`relax` and :meth:`measure_theta` are what
    :func:`~._engine.homeostatic_step` may use.

    - ``eq``: the circuit; ``x``, ``y``: the sample; ``eta``: spring compliance (S²/W).
    - ``alternations``: cap on the joint relaxation's state/conductance alternations; it
      stops when the conductances move by at most a few rounding units of the largest.
    - ``warm``: keep the junction states of the previous state in each state solve.
    """

    eq: CircuitEquilibrium
    x: jax.Array
    y: jax.Array
    eta: jax.Array
    alternations: int = eqx.field(static=True, default=40)
    warm: bool = eqx.field(static=True, default=True)

    def relax(self, physics, knobs, beta):
        u0, theta0 = physics
        prob, eta = self.eq.prob, self.eta
        # the rounding floor of the conductances: a few units of the largest, plus the
        # rounding of the energy differences behind the force (it grows with the count)
        tol = (4 + 4e-3 * theta0.shape[0]) * jnp.finfo(theta0.dtype).eps * jnp.max(jnp.abs(knobs))

        def alternate(p):
            # the state settles at the present conductances, then the conductances settle
            # under the force the state exerts on them (E is linear in each conductance)
            u, theta = p
            ph = self.eq.solve(theta, self.x, self.y, beta, u, self.warm)
            theta_new = knobs - eta * theta_force(prob, ph.state, theta, self.x)
            ok = ph.ok & jnp.all(jnp.isfinite(theta_new)) & jnp.all(theta_new > 0)
            return (ph.state, theta_new), jnp.max(jnp.abs(theta_new - theta), initial=0.0), ok

        (u, theta), _, result = fixed_point(alternate, (u0, theta0), tol, self.alternations)
        # the state at the final conductances
        ph = self.eq.solve(theta, self.x, self.y, beta, u, self.warm)
        return (ph.state, theta), (result == RESULTS.successful) & ph.ok

    def measure_theta(self, physics):
        return physics[1]

    def measure_outputs(self, physics):
        return self.eq.outputs(physics[1], self.x, physics[0])
