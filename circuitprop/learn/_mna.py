"""Learning circuits without an energy (MOSFETs, controlled sources) as an
:class:`~._engine.EquilibriumProblem`.

A transistor edge is not reciprocal: such a circuit has no co-content, its steady state is
a root of the MNA residual (:func:`circuitprop._solve._mna.mna_solve`, the package's
Newton), and equilibrium propagation's nudged phases have no energy to nudge. Coupled and
contrastive learning still apply (Stern et al. 2021; Dillavou et al. 2024 on transistor
networks): the outputs are clamped by voltage sources, and every learning device contrasts
a local quantity between the clamped and the free phase:

- a trainable resistor: ``½ΔV²`` (``∂E/∂g``), as in a reciprocal circuit;
- a trainable V source (its DC value is the parameter, e.g. a gate voltage): the current it
  delivers (``∂E/∂V`` of its resistive surroundings) plus, for every MOSFET whose gate it
  sets, the gate derivative of the channel's co-content
  (:func:`~circuitprop._devices.channel_gate_cocontent`: ``½βΔV²`` in the ohmic region,
  what a resistor's ``½ΔV²`` is to its conductance).

The exact gradient (the baseline every estimate is checked against) is the adjoint of the
MNA residual ``F(x, θ) = 0`` at the free state: ``dL/dθ = −λᵀ ∂F/∂θ`` with
``Jᵀ λ = ∂L/∂x`` (a dense LU of the Jacobian ``J``; small circuits).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from .._circuit import MnaCircuit
from .._devices import channel_gate_cocontent
from .._energy import dissipated_power
from .._errors import ExperimentError
from .._solve._linear import dense_solve
from .._solve._methods import initial_unknowns
from .._solve._mna import mna_solve, mosfet_power, mosfet_voltages, residual, split
from .._solve._result import RESULTS, Solution
from ._circuit import CircuitEquilibrium
from ._engine import EquilibriumProblem, Phase, Reading
from ._measure import MeasurementModel
from ._phases import Measurement, Problem, clamped_values, cost, output_voltages, values_for

__all__ = ["MnaEquilibrium", "equilibrium", "gate_measure"]


def _f64(a):
    return a.astype(jnp.promote_types(a.dtype, jnp.float64))


def gate_measure(prob: Problem, c: MnaCircuit, branch, v, ib):
    """``∂E/∂V`` as measured at every trainable V source: the current it delivers plus
    the gate derivative of the channel co-content of every MOSFET whose gate it sets (see
    the module docstring). ``v``: node voltages with the ground slot; ``ib``: branch
    currents; ``branch``: each source's branch in ``c``."""
    w = prob.mna
    kv = prob.train_v_idx.shape[0]
    d_e = -_f64(ib[branch])  # ngspice's branch current flows into the plus terminal
    if w.gate_mos.shape[0]:
        m = c.mosfets
        vgs, vds, vbs = (_f64(a) for a in mosfet_voltages(c, v))
        dp = channel_gate_cocontent(vgs, vds, vbs, m.beta, m.vbi, m.gamma, m.phi, m.lam)
        pair = w.gate_sign * m.polarity[w.gate_mos] * dp[w.gate_mos]
        d_e = d_e + jax.ops.segment_sum(pair, w.gate_param, num_segments=kv)
    return d_e


class MnaEquilibrium(EquilibriumProblem):
    """A learning circuit solved by MNA (``prob.mna`` set; state: node voltages, then
    branch currents; θ: trainable conductances, then trainable V-source values). Free and
    clamped phases only: there is no energy to nudge (rules ``coupled``, ``contrastive``,
    ``exact``; finite differences)."""

    prob: Problem

    def solve(self, theta, x, y, beta, start, warm: bool = False) -> Phase:
        if beta is not None:
            raise ExperimentError("a circuit without an energy (MOSFETs, controlled sources, "
                                  "trainable V sources) has no nudged phase: use rule "
                                  "'coupled' or 'contrastive'")
        sol = self.solution(theta, x, start)
        return Phase(state=sol.u, ok=sol.ok)

    def solution(self, theta, x, start=None) -> Solution:
        """The free phase's :class:`~circuitprop._solve._result.Solution` (non-finite
        unknowns count as a failure)."""
        c = self.prob.circuit
        values = values_for(self.prob, theta, x)
        x0 = (initial_unknowns(c) if start is None else start).astype(values.g.dtype)
        sol = mna_solve(c, values, x0, self.prob.options)
        bad = ~jnp.all(jnp.isfinite(sol.u)) & (sol.result == RESULTS.successful)
        return eqx.tree_at(lambda s: s.result, sol,
                           RESULTS.where(bad, RESULTS.nonfinite, sol.result))

    def _measurement(self, c, branch, values, state) -> tuple[Measurement, jax.Array]:
        prob = self.prob
        v, ib = split(c, state)
        dv = v[c.r_a[prob.train_idx]] - v[c.r_b[prob.train_idx]]
        out = output_voltages(prob, v)
        gates = (gate_measure(prob, c, branch, v, ib) if prob.train_v_idx.shape[0]
                 else jnp.zeros((0,), jnp.promote_types(state.dtype, jnp.float64)))
        return Measurement(dv=dv, out=out, ok=jnp.asarray(True)), gates

    def _reading(self, m: Measurement, gates, model: MeasurementModel | None, key) -> Reading:
        if model is not None:  # noise on the drops (check_rule refuses it with gates)
            m = model(m, key if key is not None else jax.random.PRNGKey(0))
        return Reading(dE=jnp.concatenate([m.energy_grad(), gates]), out=m.out)

    def measure(self, theta, x, state, model=None, key=None) -> Reading:
        m, gates = self._measurement(self.prob.circuit, self.prob.mna.branch,
                                     values_for(self.prob, theta, x), state)
        return self._reading(m, gates, model, key)

    def clamp(self, theta, x, target, model=None, key=None):
        prob = self.prob
        if not prob.can_clamp:
            raise ExperimentError("the outputs cannot be clamped by voltage sources (an "
                                  "output is tied to a source)")
        c = prob.clamped
        cv = clamped_values(prob, values_for(prob, theta, x), target)
        sol = mna_solve(c, cv, initial_unknowns(c).astype(cv.g.dtype), prob.options)
        m, gates = self._measurement(c, prob.mna.branch_clamped, cv, sol.u)
        ok = sol.ok & jnp.all(jnp.isfinite(sol.u))
        return Phase(state=sol.u, ok=ok), self._reading(m, gates, model, key)

    def outputs(self, theta, x, state):
        return output_voltages(self.prob, split(self.prob.circuit, state)[0])

    def loss(self, theta, x, state, y):
        return cost(self.prob.loss, self.outputs(theta, x, state), y)

    def power(self, theta, x, state):
        """The power (W) dissipated in the resistors, diodes and MOSFETs at ``state``."""
        c = self.prob.circuit
        v, _ = split(c, state)
        return dissipated_power(c, values_for(self.prob, theta, x), v) + mosfet_power(c, v)

    def adjoint_system(self, theta, x, y, state):
        raise ExperimentError("an MNA circuit's adjoint is not symmetric: see exact_gradient")

    def exact_gradient(self, theta, x, y, state):
        """``dL/dθ`` by the adjoint of the MNA residual at the free ``state`` (dense LU).

        **Returns:** ``(gradient, ok)``."""
        prob, c = self.prob, self.prob.circuit
        f_x = lambda s: residual(c, values_for(prob, theta, x), s)  # noqa: E731
        jac = jax.jacfwd(f_x)(state)
        dl = jax.grad(lambda s: self.loss(theta, x, s, y))(state)
        lam, _, res = dense_solve(jac.T, dl)
        _, pull = jax.vjp(lambda t: residual(c, values_for(prob, t, x), state), theta)
        grad = -pull(lam)[0]
        return grad, (res == RESULTS.successful) & jnp.all(jnp.isfinite(grad))


def equilibrium(prob: Problem) -> EquilibriumProblem:
    """The :class:`~._engine.EquilibriumProblem` of a learning circuit: an energy
    (:class:`~._circuit.CircuitEquilibrium`) or MNA (:class:`MnaEquilibrium`)."""
    return MnaEquilibrium(prob=prob) if prob.mna is not None else CircuitEquilibrium(prob=prob)
