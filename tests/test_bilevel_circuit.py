"""Circuits as a client of the general bilevel engine (``circuitprop.bilevel``).

On ``tests/learn_decks/bias14`` (diode-clipped hidden layer, 14 trainable resistors) and on a
small linear resistor network: the engine's EP (centered, β = 1e-6) and implicit gradient on
:func:`circuitprop.learn.circuit_energy_problem` agree with the circuit path's exact gradient,
and :func:`circuitprop.bilevel.agnostic_step` with a
:class:`circuitprop.learn.CircuitPhysicalSystem` gives the same gradient from measured
conductances only.
"""

from __future__ import annotations

from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

import circuitprop
from circuitprop import bilevel as bl
from circuitprop.experiment import load_experiment
from circuitprop.learn import (
    CircuitPhysicalSystem,
    circuit_agnostic_eta,
    circuit_energy_problem,
    cosine,
    exact_gradient,
    make_problem,
    problem_from_experiment,
)

DECKS = Path(__file__).resolve().parent / "learn_decks"

LINEAR_DECK = """linear: 2 inputs, one hidden node, 2 loaded outputs, 6 trainable resistors
v1 in1 0 DC 1.0
v2 in2 0 DC -0.5
r1 in1 a 1k
r2 in2 a 2k
r3 a o1 1.5k
r4 in1 o1 3k
r5 a o2 2.2k
r6 in2 o2 4.7k
rl1 o1 0 1k
rl2 o2 0 2k
.op
.end
"""


def _rel(a, b) -> float:
    a, b = np.asarray(a), np.asarray(b)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def _bias14():
    exp = load_experiment(DECKS / "bias14.toml")
    prob, _ = problem_from_experiment(exp)
    ds = exp.load_data()
    x = np.asarray(exp.encode_inputs(ds.x_train), dtype=np.float64)[0]
    y = np.asarray(exp.encode_targets(ds.y_train, ds.n_classes), dtype=np.float64)[0]
    return prob, x, y


def _linear():
    prob, _ = make_problem(circuitprop.parse(LINEAR_DECK), ["v1", "v2"],
                           [("o1", "0"), ("o2", "0")], [f"r{k}" for k in range(1, 7)])
    return prob, np.array([1.0, -0.5]), np.array([0.2, -0.1])


@pytest.fixture(scope="module", params=["bias14", "linear"])
def case(request):
    prob, x, y = _bias14() if request.param == "bias14" else _linear()
    theta = jnp.asarray(np.asarray(prob.base.g)[np.asarray(prob.train_idx)])
    x, y = jnp.asarray(x), jnp.asarray(y)
    exact, loss = exact_gradient(prob, theta, x, y)[:2]
    return {"name": request.param, "prob": prob, "theta": theta, "x": x, "y": y,
            "exact": np.asarray(exact), "loss": loss, "ep": circuit_energy_problem(prob)}


def test_engine_ep_and_implicit_match_exact(case):
    """The engine's free state and loss are the circuit's; centered EP at β = 1e-6 and the
    implicit gradient of the engine vs the circuit's exact gradient (cosine ≥ 0.9999;
    measured relative errors ~4e-7 and ~1e-14 on bias14)."""
    ep, theta, x, y, exact = case["ep"], case["theta"], case["x"], case["y"], case["exact"]
    r = bl.ep_gradient(ep, theta, x, y, beta=1e-6, estimator="centered")
    assert bool(r.converged)
    # the free state is the circuit's Newton solution (state_init), polished by the engine
    assert float(jnp.max(jnp.abs(r.state - ep.init(theta, x)))) < 1e-9
    np.testing.assert_allclose(float(r.loss), float(case["loss"]), rtol=1e-9)
    assert cosine(r.grad, exact) >= 0.9999
    assert _rel(r.grad, exact) < 1e-4
    imp = bl.implicit_gradient(ep, theta, x, y)
    assert bool(imp.converged)
    assert cosine(imp.grad, exact) >= 0.9999
    assert _rel(imp.grad, exact) < 1e-8


def test_agnostic_step_trains_a_circuit(case):
    """Agnostic EP through the PhysicalSystem interface (knobs, relax, measured θ) with a
    small spring compliance η = 1e-3·min g / max ΔV² (cosine ≥ 0.99 with the exact
    gradient; measured ≥ 0.9999999 on bias14)."""
    prob, theta, x, y, exact = case["prob"], case["theta"], case["x"], case["y"], case["exact"]
    eta = circuit_agnostic_eta(prob, theta, x)
    system = CircuitPhysicalSystem(prob, theta, x, eta)
    a = bl.agnostic_step(system, theta, x, y, beta=3e-5, variant="centered",
                         feedback_tol=1e-18, feedback_iters=20)
    assert a.converged
    assert cosine(a.grad, exact) >= 0.99
    assert _rel(a.grad, exact) < 0.05
    # the physics performed the update: θ moved downhill on the loss
    assert float(jnp.dot(a.theta - theta, exact)) < 0
