"""Circuits as a generic energy problem (the API of :mod:`circuitprop.bilevel`).

:func:`circuit_energy_problem` turns a learning :class:`~circuitprop.learn._phases.Problem`
into a :class:`circuitprop.bilevel.EnergyProblem`:

- state: the circuit's reduced unknowns ``u`` (free node voltages, inductor currents);
- θ: the trainable conductances (S); x: the input source values (one encoded sample);
- energy: the co-content ``E(u; θ, x)`` of :func:`circuitprop._energy.energy` on
  :func:`~circuitprop.learn.values_for` — ``∂θE = ½ΔV²`` across each trainable resistor;
- cost: the experiment's loss (:func:`circuitprop.learn.cost`, ``mse`` or
  ``cross-entropy``) of the output voltages;
- state_init: the free phase solved by the circuit's own Newton solver (junction limiting
  and all), so the engine's generic Newton–CG starts at the equilibrium and only polishes.

Every estimator of :func:`circuitprop.bilevel.ep_gradient` and the exact baselines
(:func:`~circuitprop.bilevel.implicit_gradient`, :func:`~circuitprop.bilevel.recurrent_backprop`,
:func:`~circuitprop.bilevel.finite_difference`) then apply to the circuit unchanged.

:class:`CircuitPhysicalSystem` is the circuit as a :class:`circuitprop.bilevel.PhysicalSystem`
(an :class:`~circuitprop.bilevel.EnergyPhysicalSystem` on that energy): conductances and
circuit state relax jointly on ``E + ‖u − θ‖²/(2η) + βC``, so
:func:`circuitprop.bilevel.agnostic_step` trains a circuit through knobs and measurements only.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from .._energy import energy as _circuit_energy
from .._energy import node_voltages
from .._errors import ExperimentError
from ._generic import EnergyProblem
from ._phases import Problem, cost, output_voltages, solve_free, values_for
from ._physical import EnergyPhysicalSystem

__all__ = ["circuit_energy_problem", "CircuitPhysicalSystem", "circuit_free_state", "circuit_agnostic_eta"]


def _check_outputs(prob: Problem) -> None:
    """The engine's cost ``C(state, y)`` sees no inputs: the output voltages must not carry
    the offset of an *input* voltage source (an output node tied to an input source)."""
    if prob.current:
        raise ExperimentError("current outputs (i(...)) depend on the conductances as well "
                              "as the state: the engine's cost C(state, y) cannot express "
                              "them; use the circuit's own learning rules")
    c = prob.circuit
    off_node = np.asarray(c.off_node)
    if off_node.shape[0] == 0 or prob.in_v_idx.shape[0] == 0:
        return
    inputs = set(np.asarray(prob.in_v_idx).tolist())
    outs = set(np.asarray(prob.out_p).tolist()) | set(np.asarray(prob.out_m).tolist())
    for node, branch in zip(off_node.tolist(), np.asarray(c.off_branch).tolist()):
        if node in outs and branch in inputs and node != c.n_nodes:
            raise ExperimentError("an output node is tied to an input voltage source: its "
                                  "voltage depends on x, which the engine's cost C(state, y) "
                                  "does not see")


def circuit_free_state(prob: Problem, theta, x):
    """The free equilibrium ``u`` at ``(θ, x)`` by the circuit's Newton solver (no gradient
    flows through it: it is only a starting point)."""
    theta = jax.lax.stop_gradient(jnp.asarray(theta, jnp.float64))
    x = jax.lax.stop_gradient(jnp.asarray(x, jnp.float64))
    return solve_free(prob, values_for(prob, theta, x)).u


def circuit_energy_problem(prob: Problem) -> EnergyProblem:
    """The circuit of ``prob`` as a :class:`circuitprop.bilevel.EnergyProblem`.

    ``energy(u, θ, x)`` is the co-content with trainable conductances ``θ`` and input source
    values ``x``; ``cost(u, y)`` is ``prob.loss`` (``mse``: ``½Σ(o − y)²``; or
    ``cross-entropy``) of the output voltages ``o``; ``state_init(θ, x)`` is the free phase
    by the circuit's Newton solver.

    **Raises:** :class:`ExperimentError` when an output node is tied to an input voltage
    source (its voltage would depend on ``x``, which ``cost`` does not receive).
    """
    _check_outputs(prob)
    c = prob.circuit
    base = prob.base

    def energy(u, theta, x):
        return _circuit_energy(c, values_for(prob, theta, x), u)

    def circuit_cost(u, y):
        # output voltages depend on the sources only through offsets of nodes tied to them,
        # which are not inputs (checked above): the deck's source values give them exactly
        return cost(prob.loss, output_voltages(prob, node_voltages(c, base, u)), y)

    def state_init(theta, x):
        return circuit_free_state(prob, theta, x)

    return EnergyProblem(energy, circuit_cost, state_init)


class CircuitPhysicalSystem(EnergyPhysicalSystem):
    """The circuit as a :class:`circuitprop.bilevel.PhysicalSystem` for agnostic EP.

    The trainable conductances are physical degrees of freedom held by springs of compliance
    ``eta`` (S²/W) to the control knobs; :meth:`relax` minimises
    ``E(u, θ, x) + ‖knobs − θ‖²/(2η) + βC(u, y)`` over ``(u, θ)`` jointly (Newton–CG of
    :class:`~circuitprop.bilevel.EnergyPhysicalSystem`). Outputs are the output voltages.

    **Arguments:**

    - ``prob``: the :class:`~circuitprop.learn.Problem`; ``theta0``: initial conductances;
      ``x``: an input sample (shapes and the initial free state).
    - ``eta``: spring compliance. ``E`` is linear in θ (``∂θE = ½ΔV²``) and, minimised over
      the state, concave in θ, so the joint energy is bounded only while ``η`` times the
      sensitivity ``∂(½ΔV²)/∂g`` stays below 1: take ``η ≈ 1e-3·min g / max ΔV²``
      (:func:`circuit_agnostic_eta`).
    - ``tol``, ``maxiter``: relaxation tolerance (∞-norm of the joint force) and iterations.
      The spring force ``(u − θ)/η`` on a conductance cannot resolve below about
      ``ε·θ/η`` (ε the float64 rounding): the default is ``max(1e-11, 8ε·max θ0/η)``.

    The step an agnostic phase makes is ``Δθ ≈ η(β2 − β1)∇L``, tiny for the small ``η`` a
    circuit needs: pass :func:`circuitprop.bilevel.agnostic_step` a ``feedback_tol`` far
    below it (e.g. ``1e-18``; the homeostatic loop reaches θ_t to float64 rounding in 3–5
    relaxations).
    """

    def __init__(self, prob: Problem, theta0, x, eta: float, *, tol: float | None = None,
                 maxiter: int = 200):
        self.problem = circuit_energy_problem(prob)
        c = prob.circuit
        theta0 = jnp.asarray(theta0, jnp.float64)
        if tol is None:
            eps = float(np.finfo(np.float64).eps)
            tol = max(1e-11, 8 * eps * float(jnp.max(jnp.abs(theta0))) / float(eta))
        u0 = circuit_free_state(prob, theta0, x)
        super().__init__(self.problem.energy, self.problem.cost, u0, theta0, eta,
                         outputs=lambda u: output_voltages(prob, node_voltages(c, prob.base, u)),
                         tol=tol, maxiter=maxiter)
        self._x = jnp.asarray(x, jnp.float64)

    def set_inputs(self, x) -> None:
        super().set_inputs(jnp.asarray(x, jnp.float64))


def circuit_agnostic_eta(prob: Problem, theta, x, scale: float = 1e-3) -> float:
    """A safe spring compliance for :class:`CircuitPhysicalSystem`:
    ``scale · min g / max ΔV²`` over the trainable resistors at the free phase."""
    theta = jnp.asarray(theta, jnp.float64)
    values = values_for(prob, theta, jnp.asarray(x, jnp.float64))
    v = node_voltages(prob.circuit, values, solve_free(prob, values).u)
    dv = v[prob.circuit.r_a[prob.train_idx]] - v[prob.circuit.r_b[prob.train_idx]]
    return float(scale * jnp.min(theta) / jnp.maximum(jnp.max(dv * dv), 1e-12))
