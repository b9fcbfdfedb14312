"""Outputs that are currents through V sources (``i(vname)``, ``i(vp)-i(vn)``): parsing and
name checks, their values against the operating point, every learning rule's estimate
against central differences of the loss, the batch reduction, and refused rules."""

from __future__ import annotations

import textwrap

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import circuitprop
from circuitprop._errors import ExperimentError
from circuitprop.experiment import check_names, load_experiment, parse_output
from circuitprop.learn._circuit import CircuitEquilibrium
from circuitprop.learn._engine import finite_difference
from circuitprop.learn._phases import make_problem
from circuitprop.learn._rules import rule_config, sample_gradient

DECK = """two readout columns, a diode, wire resistances
v1 in1 0 1
v2 in2 0 -0.5
r1 in1 a 1k
r2 in2 a 2k
r3 a c1 1.5k
r4 in1 c1 3k
r7 in2 c2 2.2k
r8 a c2 1.1k
rw1 c1 o1 10
rw2 c2 o2 10
vo1 o1 0 0
vo2 o2 0 0.1
d1 a 0 dm
.model dm D(IS=1e-14)
.end
"""
TRAIN = ["r1", "r2", "r3", "r4", "r7", "r8", "rw1"]
THETA = 1 / jnp.array([1e3, 2e3, 1.5e3, 3e3, 2.2e3, 1.1e3, 10.0])
X = jnp.array([1.0, -0.5])


def test_parse_current_outputs():
    assert parse_output("i(vout1)") == ("i(vout1)", "0")
    assert parse_output(" I( VP ) - i(vn) ") == ("i(vp)", "i(vn)")
    for bad, match in (("i(a)-b", "cannot be subtracted"), ("i(a)-i(a)", "same current"),
                       ("i()", "expected a node name"), ("a(b", "expected a node name")):
        with pytest.raises(ExperimentError, match=match):
            parse_output(bad)


def test_check_names_of_current_outputs(tmp_path):
    (tmp_path / "net.cir").write_text(DECK)
    base = textwrap.dedent("""
        netlist = "net.cir"
        inputs = ["v1", "v2"]
        outputs = OUTS
        trainable = ["r[0-9]*"]
        [data]
        source = "xor"
    """)

    def names(outs):
        p = tmp_path / "e.toml"
        p.write_text(base.replace("OUTS", outs))
        e = load_experiment(p)
        return check_names(e, e.load_netlist())

    assert names('["i(vo1)", "i(VO2)"]') == ["r1", "r2", "r3", "r4", "r7", "r8"]
    with pytest.raises(ExperimentError, match=r"'vo3' is not an element of net.cir.*"
                                              r"did you mean 'vo"):
        names('["i(vo3)"]')
    with pytest.raises(ExperimentError, match="'r1' is a R element; a current output is read "
                                              "through a V source"):
        names('["i(r1)"]')
    with pytest.raises(ExperimentError, match="currents and voltages cannot be mixed"):
        names('["i(vo1)", "a"]')


@pytest.mark.parametrize("outs", [[("i(vo1)", "0"), ("i(vo2)", "0")], [("i(vo1)", "i(vo2)")]])
def test_current_outputs_are_the_operating_points_source_currents(outs):
    prob, _ = make_problem(DECK, ["v1", "v2"], outs, TRAIN)
    eq = CircuitEquilibrium(prob=prob)
    free = eq.solve(THETA, X, jnp.zeros(len(outs)), None, None)
    got = np.asarray(eq.outputs(THETA, X, free.state))
    op = circuitprop.operating_point(DECK)  # the deck's own values are THETA and X
    ref = [op.currents["vo1"], op.currents["vo2"]]
    want = ref if len(outs) == 2 else [ref[0] - ref[1]]
    np.testing.assert_allclose(got, want, rtol=1e-10)
    assert op.currents["vo1"] > 0  # current flows from the column into the readout's n+


CASES = [("mse", [("i(vo1)", "0"), ("i(vo2)", "0")], [1e-4, 2e-4]),
         ("mse", [("i(vo1)", "i(vo2)")], [1e-4]),
         ("cross-entropy", [("i(vo1)", "0"), ("i(vo2)", "0")], [1.0, 0.0])]
RULES = [("exact", "centered", 1e-6, 1e-8), ("ep", "centered", 1e-3, 1e-8),
         ("ep", "positive", 1e-4, 1e-6), ("ep", "forward-3", 1e-3, 1e-8),
         ("ep", "holomorphic-4", 1e-2, 1e-8)]


@pytest.mark.parametrize("loss,outs,y", CASES)
def test_every_estimator_matches_finite_differences(loss, outs, y):
    """The readout sources shift by −β ∂C/∂i: the EP estimates equal dL/dθ (measured:
    6e-10 relative for centered and the higher-order estimators, 3e-8 for positive at
    β = 1e-4; cross-entropy 2.3e-7, the central differences' own error on its flat
    softmax, and 2.9e-5 for positive), trainable conductances at a readout node included
    (their explicit term)."""
    prob, _ = make_problem(DECK, ["v1", "v2"], outs, TRAIN, loss=loss)
    y = jnp.asarray(y)
    eq = CircuitEquilibrium(prob=prob)
    free = eq.solve(THETA, X, y, None, None)
    fd, ok = eqx.filter_jit(finite_difference)(eq, THETA, X, y, 1e-6 * THETA, free)
    assert bool(ok)
    scale = float(jnp.max(jnp.abs(fd)))
    rules = RULES if loss == "mse" and len(outs) == 2 else RULES[:2]
    for rule, est, beta, tol in rules:
        if loss == "cross-entropy":  # measured: 2.9e-5 for positive (its O(β) bias)
            tol = 1e-4 if est == "positive" else max(tol, 2e-6)
        r = eqx.filter_jit(sample_gradient)(prob, rule_config(rule, est, beta, loss=loss),
                                            THETA, X, y, jax.random.PRNGKey(0))
        assert bool(r.ok), (rule, est)
        err = float(jnp.max(jnp.abs(r.grad - fd))) / scale
        assert err < tol, (rule, est, err)


def test_batch_reduction_with_current_outputs_matches_per_sample():
    from circuitprop.builders import drn_deck
    from circuitprop.learn._rules import batch_gradient, batch_reduces

    deck = drn_deck(16, [4], 2, gain=1.0, seed=1, differential=False, load=0.0)
    deck = deck.replace(".op\n", "vout1 o1 0 0\nvout2 o2 0 0\n.op\n")
    net = circuitprop.parse(deck)
    inputs = [f"vinp{i}" for i in range(1, 17)] + [f"vinn{i}" for i in range(1, 17)]
    names = [e.name for e in net.elements if e.kind == "r" and e.name[1].isdigit()]
    prob, _ = make_problem(net, inputs, [("i(vout1)", "0"), ("i(vout2)", "0")], names,
                           method="dense")
    cfg = rule_config("ep", "centered", 1e-3)
    assert prob.current and batch_reduces(prob, cfg)
    rng = np.random.default_rng(0)
    u = rng.uniform(0, 1, (3, 16))
    xs = jnp.asarray(np.concatenate([u, -u], axis=1))
    ys = jnp.asarray(rng.uniform(0, 1e-3, (3, 2)))
    theta = prob.base.g[prob.train_idx]
    us = jnp.zeros((3, prob.n_state))
    gb, _, _, ok, _ = eqx.filter_jit(batch_gradient)(prob, cfg, theta, xs, ys,
                                                     jnp.full((3,), 1 / 3), us)
    gs = eqx.filter_jit(jax.vmap(lambda x, y: sample_gradient(
        prob, cfg, theta, x, y, jax.random.PRNGKey(0)).grad))(xs, ys)
    assert bool(jnp.all(ok))
    np.testing.assert_allclose(gb, jnp.mean(gs, axis=0), rtol=1e-7,
                               atol=1e-9 * float(jnp.max(jnp.abs(gb))))


@pytest.mark.parametrize("rule", ["coupled", "contrastive", "agnostic"])
def test_rules_that_cannot_learn_currents_are_refused(rule):
    prob, _ = make_problem(DECK, ["v1", "v2"], [("i(vo1)", "0")], TRAIN)
    with pytest.raises(ExperimentError, match=f"rule '{rule}' cannot learn current outputs"):
        sample_gradient(prob, rule_config(rule, beta=1e-3), THETA, X, jnp.array([1e-4]),
                        jax.random.PRNGKey(0))
