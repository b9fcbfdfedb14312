"""Learning rules against the exact gradient and finite differences on small R and R+D
circuits; measurement model; coupled learning direction."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from learn_helpers import RD_DECK

import circuitprop  # noqa: F401  (enables float64)
from circuitprop.learn import (
    MeasurementModel,
    cosine,
    exact_gradient,
    finite_difference,
    make_problem,
    rule_config,
    sample_gradient,
)

R_DECK = """linear divider network
vx1 in1 0 DC 1
vx2 in2 0 DC -0.5
r1 in1 a 1k
r2 in2 a 2k
r3 a o1 1.5k
r4 in1 o1 3k
r5 a 0 1k
r6 o1 o2 2k
r7 o2 0 1.2k
r8 in2 o2 2.5k
.end
"""

TRAIN_RD = ["r1", "r2", "r3", "r4", "r5", "r6", "r7"]
X_RD = jnp.asarray([0.5, 1.0])
Y_RD = jnp.asarray([0.2])


@pytest.fixture(scope="module")
def rd():
    prob, info = make_problem(circuitprop.parse(RD_DECK), ["vx1", "vx2"], [("out", "0")],
                              TRAIN_RD)
    theta = np.asarray(prob.base.g)[np.asarray(prob.train_idx)]
    g_ex = np.asarray(jax.jit(exact_gradient)(prob, theta, X_RD, Y_RD)[0])
    fd = np.asarray(jax.jit(finite_difference)(prob, theta, X_RD, Y_RD)[0])
    return prob, theta, g_ex, fd


def _estimate(prob, theta, x, y, **kw):
    cfg = rule_config(**kw)
    f = jax.jit(lambda t: sample_gradient(prob, cfg, t, x, y, jax.random.PRNGKey(0)))
    out = f(theta)
    assert bool(out.ok)
    return np.asarray(out.grad)


def test_exact_matches_finite_differences(rd):
    _, _, g_ex, fd = rd
    assert cosine(g_ex, fd) > 1 - 1e-14  # measured 1 - 0
    # measured max |exact - fd| = 1.0e-10 of the largest entry (fd's own accuracy)
    np.testing.assert_allclose(g_ex, fd, rtol=0, atol=1e-9 * np.abs(fd).max())


def test_exact_recurrent_backprop_agrees_with_cg(rd):
    prob, theta, g_ex, _ = rd
    g_rbp = np.asarray(jax.jit(lambda t: exact_gradient(prob, t, X_RD, Y_RD, "rbp")[0])(theta))
    # measured 3.9e-15 of the largest entry
    np.testing.assert_allclose(g_rbp, g_ex, rtol=0, atol=1e-13 * np.abs(g_ex).max())


def test_centered_ep_small_beta(rd):
    prob, theta, g_ex, fd = rd
    est = _estimate(prob, theta, X_RD, Y_RD, estimator="centered", beta=1e-6)
    assert cosine(est, g_ex) > 1 - 3e-12  # measured 1 - 3.2e-13
    assert np.linalg.norm(est - fd) / np.linalg.norm(fd) < 5e-6  # measured 8.4e-7


def test_forward_estimators_gain_an_order_per_point(rd):
    prob, theta, _, fd = rd
    errs = []
    for p in (2, 3, 4, 5):
        est = _estimate(prob, theta, X_RD, Y_RD, estimator=f"forward-{p}", beta=2e-5)
        errs.append(np.linalg.norm(est - fd) / np.linalg.norm(fd))
    # measured 1.5e-2, 6.3e-4, 4.2e-5, 3.4e-6: each point gains more than 10x
    assert all(a / b >= 5 for a, b in zip(errs, errs[1:])), errs
    assert errs[3] < 3e-5, errs


def test_one_sided_estimators_converge_linearly(rd):
    prob, theta, g_ex, _ = rd
    for name in ("positive", "negative"):
        e1 = _estimate(prob, theta, X_RD, Y_RD, estimator=name, beta=1e-4)
        e2 = _estimate(prob, theta, X_RD, Y_RD, estimator=name, beta=1e-5)
        r1 = np.linalg.norm(e1 - g_ex) / np.linalg.norm(g_ex)
        r2 = np.linalg.norm(e2 - g_ex) / np.linalg.norm(g_ex)
        assert 5 < r1 / r2 < 20, (name, r1, r2)  # O(beta) bias


def test_coupled_direction(rd):
    prob, theta, g_ex, _ = rd
    est = _estimate(prob, theta, X_RD, Y_RD, rule="coupled", eta=0.1)
    assert cosine(est, g_ex) > 0.99  # measured 0.9984


def test_linear_network_two_outputs():
    prob, _ = make_problem(circuitprop.parse(R_DECK), ["vx1", "vx2"],
                           [("o1", "0"), ("o1", "o2")], [f"r{k}" for k in range(1, 9)])
    theta = np.asarray(prob.base.g)[np.asarray(prob.train_idx)]
    x, y = jnp.asarray([0.8, -0.3]), jnp.asarray([0.1, 0.05])
    g_ex = np.asarray(jax.jit(exact_gradient)(prob, theta, x, y)[0])
    fd = np.asarray(jax.jit(finite_difference)(prob, theta, x, y)[0])
    assert cosine(g_ex, fd) > 1 - 1e-14
    est = _estimate(prob, theta, x, y, estimator="centered", beta=1e-6)
    assert cosine(est, g_ex) > 1 - 1e-11  # measured 1 - 8.6e-13


def test_cross_entropy_ep_matches_exact():
    prob, _ = make_problem(circuitprop.parse(R_DECK), ["vx1", "vx2"],
                           [("o1", "0"), ("o2", "0")], [f"r{k}" for k in range(1, 9)],
                           loss="cross-entropy")
    theta = np.asarray(prob.base.g)[np.asarray(prob.train_idx)]
    x, y = jnp.asarray([0.8, -0.3]), jnp.asarray([0.0, 1.0])
    g_ex = np.asarray(jax.jit(exact_gradient)(prob, theta, x, y)[0])
    fd = np.asarray(jax.jit(finite_difference)(prob, theta, x, y)[0])
    assert cosine(g_ex, fd) > 1 - 1e-14
    est = _estimate(prob, theta, x, y, estimator="centered", beta=1e-6, loss="cross-entropy")
    assert cosine(est, g_ex) > 1 - 1e-12  # measured 1 - 5.3e-14


def test_measurement_model_quantises_and_is_seeded():
    m = MeasurementModel(adc_bits=8, adc_range=1.0, noise_std=0.0)
    v = jnp.linspace(-1.5, 1.5, 101)
    q = np.asarray(m.read(v, jax.random.PRNGKey(0)))
    assert np.all(np.abs(q) <= 1.0 + 1e-12)
    lsb = 2.0 / 256
    np.testing.assert_allclose(q / lsb, np.round(q / lsb), atol=1e-9)
    inside = np.abs(np.asarray(v)) <= 1 - lsb
    assert np.max(np.abs(q[inside] - np.asarray(v)[inside])) <= lsb / 2 + 1e-12
    n = MeasurementModel(noise_std=1e-3)
    a = np.asarray(n.read(v, jax.random.PRNGKey(1)))
    b = np.asarray(n.read(v, jax.random.PRNGKey(1)))
    c = np.asarray(n.read(v, jax.random.PRNGKey(2)))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert 0.5e-3 < np.std(a - np.asarray(v)) < 2e-3


def test_noisy_measurements_degrade_ep(rd):
    prob, theta, g_ex, _ = rd
    ideal = _estimate(prob, theta, X_RD, Y_RD, estimator="centered", beta=1e-5)
    noisy = _estimate(prob, theta, X_RD, Y_RD, estimator="centered", beta=1e-5,
                      measurement=MeasurementModel(noise_std=1e-6))
    c_ideal, c_noisy = cosine(ideal, g_ex), cosine(noisy, g_ex)
    assert c_ideal > 1 - 3e-8  # measured 1 - 3.2e-9
    assert c_noisy < c_ideal
