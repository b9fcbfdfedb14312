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
from .._solve._fixed_point import fixed_point
from .._solve._result import RESULTS
from ._engine import EquilibriumProblem, Phase, Reading
from ._measure import MeasurementModel
from ._phases import (
    Measurement,
    Problem,
    cost,
    measure,
    measure_state,
    output_voltages,
    solve_clamped,
    solve_phase,
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

    def solve(self, theta, x, y, beta, start, warm: bool = False) -> Phase:
        sol = solve_phase(self.prob, values_for(self.prob, theta, x), beta, y, start, warm)
        return Phase(state=sol.u, ok=sol.ok)

    def _reading(self, m: Measurement, model: MeasurementModel | None, key) -> Reading:
        if model is not None:
            m = model(m, key if key is not None else jax.random.PRNGKey(0))
        return Reading(dE=m.energy_grad(), out=m.out)

    def measure(self, theta, x, state, model=None, key=None) -> Reading:
        values = values_for(self.prob, theta, x)
        m = measure_state(self.prob, self.prob.circuit, values, state)
        return self._reading(m, model, key)

    def combine(self, theta, xs, states, coefs):
        prob, c = self.prob, self.prob.circuit
        v = jax.vmap(lambda x, u: node_voltages(c, values_for(prob, theta, x), u))(xs, states)
        return weighted_energy_grad(prob, c, v, coefs)

    def outputs(self, theta, x, state):
        values = values_for(self.prob, theta, x)
        return output_voltages(self.prob, node_voltages(self.prob.circuit, values, state))

    def loss(self, theta, x, state, y):
        return cost(self.prob.loss, self.outputs(theta, x, state), y)

    def power(self, theta, x, state):
        """The power (W) the circuit dissipates at ``state``."""
        values = values_for(self.prob, theta, x)
        return dissipated_power(self.prob.circuit, values,
                                node_voltages(self.prob.circuit, values, state))

    def adjoint_system(self, theta, x, y, state):
        prob, c = self.prob, self.prob.circuit
        values = values_for(prob, theta, x)
        v = node_voltages(c, values, state)
        ua, ub, gb, diag = hessian_parts(c, values, v)
        rhs = OutputCost(loss=prob.loss, p=prob.out_p, m=prob.out_m, beta=1.0,
                         target=y).gradient_u(c, values, state)
        ra, rb = c.r_a[prob.train_idx], c.r_b[prob.train_idx]

        def finish(pi):
            pv = jnp.concatenate([pi, jnp.zeros((1,), pi.dtype)])[c.node_var]
            return -(v[ra] - v[rb]) * (pv[ra] - pv[rb])

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
