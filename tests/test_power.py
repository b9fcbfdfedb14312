"""Power at the operating point (``op --json`` ``"power"``): energy balance, and each
source's delivered power against ngspice's ``V·I`` from the stored references."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import circuitprop

DECKS = Path(__file__).resolve().parent / "decks"

CONTROLLED = """controlled sources, a diode with RS, a current source
v1 1 0 dc 2
r1 1 2 1k
r2 2 0 2k
e1 3 0 2 0 3
r3 3 4 500
vm 4 5 0
r4 5 0 1k
f1 0 6 vm 2
r5 6 0 100
g1 0 7 2 0 1m
r6 7 0 1k
h1 8 0 vm 100
r7 8 0 1k
d1 7 9 dm
r8 9 0 10
i1 0 9 dc 1m
.model dm D(IS=1e-14 RS=2)
.end
"""


@pytest.mark.parametrize("deck", ["kup_current_sources", "own_diode_regions", "drn_32_20_8"])
def test_dissipation_equals_delivered_power_and_sources_match_ngspice(deck):
    path = DECKS / f"{deck}.cir"
    op = circuitprop.operating_point(path)
    p = op.power
    assert p["total"] > 0
    # measured: equal to 1e-14 relative
    assert abs(p["total"] - p["delivered"]) <= 1e-9 * p["total"]
    ref = json.loads(path.with_suffix(".json").read_text())["op"]
    netlist = circuitprop.load(path)
    volt = lambda n: 0.0 if n == "0" else ref["voltages"][n]  # noqa: E731
    checked = 0
    for el in netlist.elements:
        if el.kind == "v":
            want = -(volt(el.nodes[0]) - volt(el.nodes[1])) * ref["currents"][el.name]
            assert abs(p["elements"][el.name] - want) <= 1e-6 * abs(want) + 1e-15, el.name
            checked += 1
    assert checked >= 1


def test_power_of_controlled_sources_and_diodes_balances():
    op = circuitprop.operating_point(CONTROLLED)
    p = op.power
    assert set(p["elements"]) >= {"r1", "d1", "e1", "f1", "g1", "h1", "i1", "v1", "vm"}
    assert abs(p["total"] - p["delivered"]) <= 1e-9 * p["total"]
    # a resistor's dissipation is g·ΔV²; the 0 V ammeter delivers nothing
    dv = op.voltages["3"] - op.voltages["4"]
    assert p["elements"]["r3"] == pytest.approx(dv * dv / 500, rel=1e-12)
    assert p["elements"]["vm"] == 0.0
    assert p["elements"]["d1"] > 0


def test_op_json_has_power(capsys):
    from circuitprop.cli import main

    assert main(["op", str(DECKS / "kup_divider.cir"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out["power"]) == {"total", "delivered", "elements"}


# ----------------------------------------------------------------------------- learning

LINEAR = """linear network
v1 in1 0 1
v2 in2 0 -0.5
r1 in1 a 1k
r2 in2 a 2k
r3 a out 1.5k
r4 in1 out 3k
r5 out 0 4k
r6 a 0 5k
.end
"""


def _linear_problem():
    import jax.numpy as jnp

    from circuitprop.learn._phases import make_problem

    prob, _ = make_problem(LINEAR, ["v1", "v2"], [("out", "0")], ["r1", "r2", "r3", "r4", "r6"])
    theta = 1 / jnp.array([1e3, 2e3, 1.5e3, 3e3, 5e3])
    return prob, theta, jnp.array([1.0, -0.5]), jnp.array([0.2])


@pytest.mark.parametrize("rule", ["ep", "exact", "coupled"])
def test_power_penalty_adds_the_exact_power_gradient(rule):
    """λ·ΔV_k² (free phase) is λ·dP/dg_k, P the dissipated power, for resistors and voltage
    sources: checked against central differences of P(θ)."""
    import jax
    import numpy as np

    from circuitprop.learn._circuit import CircuitEquilibrium
    from circuitprop.learn._rules import rule_config, sample_gradient

    prob, theta, x, y = _linear_problem()
    eq = CircuitEquilibrium(prob=prob)

    def power(t):
        return float(eq.power(t, x, eq.solve(t, x, y, None, None).state))

    h = 1e-6 * theta
    fd = np.array([(power(theta.at[k].add(h[k])) - power(theta.at[k].add(-h[k]))) / (2 * h[k])
                   for k in range(theta.shape[0])])
    lam = 3.0
    key = jax.random.PRNGKey(0)
    g0 = sample_gradient(prob, rule_config(rule, beta=1e-6), theta, x, y, key).grad
    g1 = sample_gradient(prob, rule_config(rule, beta=1e-6, power_penalty=lam), theta, x, y,
                         key).grad
    # measured: equal to 2e-10 relative (central differences of P in float64)
    np.testing.assert_allclose((g1 - g0) / lam, fd, rtol=1e-7)
    assert np.all(fd > 0)


def test_power_penalty_on_the_batch_path_matches_the_per_sample_path():
    import jax
    import jax.numpy as jnp
    import numpy as np

    from circuitprop.builders import drn_deck
    from circuitprop.learn._phases import make_problem
    from circuitprop.learn._rules import (
        batch_gradient,
        batch_reduces,
        rule_config,
        sample_gradient,
    )

    deck = drn_deck(16, [4], 2, gain=1.0, seed=3)
    net = circuitprop.parse(deck)
    inputs = [f"vinp{i}" for i in range(1, 17)] + [f"vinn{i}" for i in range(1, 17)]
    names = [e.name for e in net.elements
             if e.kind == "r" and e.name[1].isdigit()]
    prob, _ = make_problem(net, inputs, [("o1p", "o1n"), ("o2p", "o2n")], names,
                           method="dense")
    cfg = rule_config("ep", "centered", 1e-4, power_penalty=5.0)
    assert batch_reduces(prob, cfg)
    rng = np.random.default_rng(0)
    xs = jnp.asarray(np.concatenate([u := rng.uniform(0, 1, (3, 16)), -u], axis=1))
    ys = jnp.asarray(rng.uniform(-0.1, 0.1, (3, 2)))
    theta = prob.base.g[prob.train_idx]
    us = jnp.zeros((3, prob.circuit.n_u))
    w = jnp.full((3,), 1 / 3)
    gb = batch_gradient(prob, cfg, theta, xs, ys, w, us)[0]
    gs = jax.vmap(lambda x, y: sample_gradient(prob, cfg, theta, x, y,
                                               jax.random.PRNGKey(0)).grad)(xs, ys)
    np.testing.assert_allclose(gb, jnp.mean(gs, axis=0), rtol=1e-7, atol=1e-12)


def test_dissipated_power_is_the_operating_points_total():
    import jax.numpy as jnp

    from circuitprop._api import _default_options, _solve_one
    from circuitprop._energy import dissipated_power

    for deck in ("own_diode_regions", "drn_32_20_8"):
        path = DECKS / f"{deck}.cir"
        circuit, info = circuitprop.prepare(path)
        op = circuitprop.operating_point(path)
        _, v, _ = _solve_one(circuit, info.defaults, _default_options(circuit, "newton", None),
                             "newton")
        p = float(dissipated_power(circuit, info.defaults, jnp.asarray(v)))
        assert p == pytest.approx(op.power["total"], rel=1e-12), deck


def test_training_reports_power_and_the_penalty_lowers_it(tmp_path):
    """XOR for 30 epochs: λ = 0.5 W⁻¹ cuts the free phase's dissipation about 2.8x (22.5 mW
    to 7.9 mW measured) and still classifies every sample."""
    from circuitprop.cli import main

    xor = Path(__file__).resolve().parents[1] / "examples" / "xor"
    text = (xor / "experiment.toml").read_text().replace(
        'netlist = "xor.cir"', f'netlist = "{xor / "xor.cir"}"')
    m = {}
    for lam in (0.0, 0.5):
        exp = tmp_path / f"e{lam}.toml"
        exp.write_text(text.replace('loss = "mse"', f'loss = "mse"\npower_penalty = {lam}'))
        out = tmp_path / f"r{lam}"
        assert main(["train", str(exp), "--out", str(out), "--epochs", "30",
                     "--no-progress"]) == 0
        m[lam] = json.loads((out / "metrics.json").read_text())
    for r in m.values():
        assert r["power"]["free_mean"] == r["power_free_mean"] > 0
        assert r["power"]["phases_per_step"] == 3
        assert len(r["power_free_history"]) == 30
        assert r["test_accuracy"] == 1.0
    assert m[0.5]["power"]["penalty"] == 0.5
    assert m[0.0]["power_free_mean"] > 2.0 * m[0.5]["power_free_mean"]
