"""Learning on circuits without an energy: MOSFET edges whose gate voltages (trainable V
sources) learn by coupled learning through the MNA solve."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from circuitprop._devices import channel_gate_cocontent, mosfet
from circuitprop._errors import ExperimentError, NetlistError
from circuitprop.learn._exact import finite_difference
from circuitprop.learn._mna import MnaEquilibrium, equilibrium
from circuitprop.learn._phases import make_problem
from circuitprop.learn._rules import rule_config, sample_gradient
from circuitprop.learn._train import train

jax.config.update("jax_enable_x64", True)

MODEL = ".model nch NMOS (LEVEL=1 VTO=0.5 KP=1e-4 GAMMA=0.4 PHI=0.7 LAMBDA=0.02)"

#: a 3x3 lattice of NMOS edges, inputs at the corners (the example's generator, seed 1)
NET = f"""nmos network
{MODEL}
vx1p n00 0 dc 0.5
vx2p n02 0 dc 0.8
vx1n n22 0 dc 0.5
vx2n n20 0 dc 0.2
m1 n00 g1 n01 0 nch W=10u L=1u
m2 n00 g2 n10 0 nch W=10u L=1u
m3 n00 g3 n11 0 nch W=10u L=1u
m4 n01 g4 n02 0 nch W=10u L=1u
m5 n01 g5 n11 0 nch W=10u L=1u
m6 n01 g6 n12 0 nch W=10u L=1u
m7 n02 g7 n12 0 nch W=10u L=1u
m8 n10 g8 n11 0 nch W=10u L=1u
m9 n10 g9 n20 0 nch W=10u L=1u
m10 n10 g10 n21 0 nch W=10u L=1u
m11 n11 g11 n12 0 nch W=10u L=1u
m12 n11 g12 n21 0 nch W=10u L=1u
m13 n11 g13 n22 0 nch W=10u L=1u
m14 n12 g14 n22 0 nch W=10u L=1u
m15 n20 g15 n21 0 nch W=10u L=1u
m16 n21 g16 n22 0 nch W=10u L=1u
vg1 g1 0 dc 1.77
vg2 g2 0 dc 2.43
vg3 g3 0 dc 1.22
vg4 g4 0 dc 2.42
vg5 g5 0 dc 1.47
vg6 g6 0 dc 1.64
vg7 g7 0 dc 2.24
vg8 g8 0 dc 1.61
vg9 g9 0 dc 1.82
vg10 g10 0 dc 1.04
vg11 g11 0 dc 2.13
vg12 g12 0 dc 1.81
vg13 g13 0 dc 1.49
vg14 g14 0 dc 2.18
vg15 g15 0 dc 1.45
vg16 g16 0 dc 1.68
rl n11 0 20k
.end
"""

INPUTS = ["vx1p", "vx2p", "vx1n", "vx2n"]
GATES = [f"vg{k}" for k in range(1, 17)]


def _xin(x1, x2):
    return jnp.array([0.5 + 0.3 * x1, 0.5 + 0.3 * x2, 0.5 - 0.3 * x1, 0.5 - 0.3 * x2])


def _experiment(path, net) -> None:
    """An XOR experiment on ``net`` training the gates by coupled learning (η = 0.1)."""
    path.write_text(f'''netlist = "{net}"
inputs = {json.dumps(INPUTS)}
outputs = ["n11"]
trainable = ["vg*"]
[data]
source = "xor"
task = "classification"
[learning]
rule = "coupled"
eta = 0.1
[train]
input_mode = "pm"
input_gain = 0.3
input_offset = 0.5
target_high = 0.6
target_low = 0.5
''')


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    p = tmp_path_factory.mktemp("tn") / "net.cir"
    p.write_text(NET)
    return p


@pytest.fixture(scope="module")
def problem(net):
    prob, info = make_problem(net, INPUTS, [("n11", "0")], GATES + ["rl"])
    theta = jnp.concatenate([prob.base.g[prob.train_idx], prob.base.vsrc[prob.train_v_idx]])
    return prob, info, theta


@pytest.mark.parametrize("vgs,vds,vbs", [(2.0, 0.3, 0.0), (2.0, 2.5, -0.5), (1.5, -0.4, 0.0),
                                         (0.5, 1.0, 0.0), (3.0, -3.0, -1.0), (1.2, 0.2, 0.3)])
def test_gate_cocontent_is_the_gate_derivative_of_the_channel_cocontent(vgs, vds, vbs):
    """∂/∂vgs of ∫₀^|vds| ids dv (from the low end; trapezoid on ngspice's law)."""
    pars = dict(beta=2e-4, vbi=0.7 - 0.4 * np.sqrt(0.6), gamma=0.4, phi=0.6, lam=0.05)

    def cocontent(vg):
        g, d, b = vg, vds, vbs
        if d < 0:  # reverse mode: the drain is the low end
            g, b, d = g - d, b - d, -d
        v = np.linspace(0.0, d, 20001)
        e = mosfet(np.full_like(v, g), v, np.full_like(v, b), pars["beta"], pars["vbi"],
                   pars["gamma"], pars["phi"], pars["lam"], 0.0, 0.0, 0.0)
        return np.trapezoid(np.asarray(e.ids), v)

    h = 1e-5
    num = (cocontent(vgs + h) - cocontent(vgs - h)) / (2 * h)
    got = float(channel_gate_cocontent(vgs, vds, vbs, **pars))
    assert got == pytest.approx(num, rel=1e-7, abs=1e-15)
    if vgs - vds < 0.7 and vgs < 0.7 and abs(vds) < 1e-9:
        assert got == 0.0


def test_problem_is_mna_with_resistor_then_gate_parameters(problem):
    prob, info, theta = problem
    assert isinstance(equilibrium(prob), MnaEquilibrium)
    assert prob.method == "mna" and prob.n_params == 17
    assert info.parameters == ["rl"] + GATES  # conductances first, then V sources
    assert float(theta[0]) == pytest.approx(1 / 20e3)
    assert float(theta[1]) == pytest.approx(1.77)


def _grads(prob, cfg, theta, xs, ys):
    """The rule's estimate for a stack of samples (one compiled, vmapped call)."""
    f = jax.jit(jax.vmap(lambda x, y: sample_gradient(prob, cfg, theta, x, y,
                                                      jax.random.PRNGKey(0))))
    return f(xs, ys)


XOR_X = jnp.stack([_xin(0, 0), _xin(0, 1), _xin(1, 0), _xin(1, 1)])
XOR_Y = jnp.array([[0.5], [0.6], [0.6], [0.5]])


def test_coupled_estimate_points_along_the_gradient(problem):
    """Coupled learning contrasts ½ΔV² (resistor) and the gate co-content between the
    clamped and the free phase; on this network's four XOR samples the gates' estimate has
    cosine 0.944 with the exact gradient (measured; η = 0.01), 15 of 16 signs agreeing."""
    prob, _, theta = problem
    total = {}
    for k, cfg in {"exact": rule_config("exact"),
                   "coupled": rule_config("coupled", eta=0.01)}.items():
        r = _grads(prob, cfg, theta, XOR_X, XOR_Y)
        assert bool(jnp.all(r.ok))
        total[k] = np.asarray(jnp.sum(r.grad, axis=0))
    # the gates only (θ[0] is the load resistor, whose large gradient would dominate)
    e, c = total["exact"][1:], total["coupled"][1:]
    cos = float(e @ c / np.linalg.norm(e) / np.linalg.norm(c))
    assert cos > 0.85, cos
    assert np.sum(np.sign(e) == np.sign(c)) >= 15
    # the load resistor's ½ΔV² contrast has the gradient's sign
    assert np.sign(total["exact"][0]) == np.sign(total["coupled"][0])


def test_rules_without_a_nudged_phase_are_refused(problem):
    prob, _, theta = problem
    for rule in ("ep", "agnostic"):
        with pytest.raises(ExperimentError, match="rule 'coupled' or 'contrastive'"):
            sample_gradient(prob, rule_config(rule), theta, _xin(0, 1), jnp.array([0.6]),
                            jax.random.PRNGKey(0))
    with pytest.raises(ExperimentError, match="power_penalty needs an energy"):
        sample_gradient(prob, rule_config("coupled", power_penalty=1.0), theta, _xin(0, 1),
                        jnp.array([0.6]), jax.random.PRNGKey(0))


def test_bad_trainable_sources_are_refused(net):
    with pytest.raises(NetlistError, match="input source; it cannot also be trainable"):
        make_problem(net, INPUTS, [("n11", "0")], ["vx1p"])
    with pytest.raises(NetlistError, match="current outputs need a reciprocal circuit"):
        make_problem(net, INPUTS, [("i(vg1)", "0")], GATES)


def test_trainable_bias_source_in_a_resistor_network_is_exact(tmp_path):
    """A V source's measurement is the current it delivers (∂E/∂V): on a reciprocal deck
    coupled learning at small η is then the gradient of the clamped-phase energy, and the
    adjoint baseline equals finite differences."""
    deck = tmp_path / "r.cir"
    deck.write_text("rnet\nvin a 0 dc 1\nvb b 0 dc 0.3\nr1 a o 1k\nr2 b o 2k\nr3 o 0 3k\n.end\n")
    prob, info = make_problem(deck, ["vin"], [("o", "0")], ["r1", "vb"])
    assert info.parameters == ["r1", "vb"] and prob.mna is not None
    theta = jnp.array([1e-3, 0.3])
    x, y = jnp.array([1.0]), jnp.array([0.2])
    ex = _grads(prob, rule_config("exact"), theta, x[None], y[None])
    fd, _ = jax.jit(lambda t: finite_difference(prob, t, x, y))(theta)
    np.testing.assert_allclose(np.asarray(ex.grad[0]), np.asarray(fd), rtol=1e-6)
    # linear network: coupled learning's estimate is exactly ∂L/∂θ scaled by the output's
    # clamping stiffness (the same factor for every parameter)
    cp = _grads(prob, rule_config("coupled", eta=1e-3), theta, x[None], y[None])
    ratio = np.asarray(cp.grad[0]) / np.asarray(ex.grad[0])
    assert ratio[0] == pytest.approx(ratio[1], rel=1e-3) and ratio[0] > 0


@pytest.mark.slow
def test_example_reaches_its_documented_loss(tmp_path):
    """examples/transistor-network/experiment.toml: coupled learning on the gates takes the
    XOR loss from 7.4e-3 to 1.48e-3 V² in 600 epochs (documented in its README)."""
    from pathlib import Path

    exp = Path(__file__).resolve().parents[1] / "examples" / "transistor-network" / "experiment.toml"
    m = train(exp, tmp_path / "run", progress=False, quiet=True)
    h = m["train_loss_history"]
    assert h[0] == pytest.approx(7.36e-3, rel=0.05)
    assert m["train_loss"] < 1.6e-3, m["train_loss"]
    pt = m["physical_timing"]
    assert 1e-9 < pt["inference_settling_time_mean"] < 3e-8
    assert 1e-13 < pt["inference_energy_mean"] < 1e-11
    # trained.cir holds the trained gate voltages, inside [v_min, v_max]
    assert sorted(m["trained_sources"]) == sorted(GATES)
    assert all(0.0 <= v <= 5.0 for v in m["trained_sources"].values())
    from circuitprop.netlist import load

    trained = load(tmp_path / "run" / "trained.cir")
    vals = {el.name: el.value for el in trained.elements if el.kind == "v"}
    for k, v in m["trained_sources"].items():
        assert vals[k] == pytest.approx(v, rel=1e-12)


def test_gradcheck_cli_on_gate_parameters(net, tmp_path):
    """circuitprop gradcheck on trainable gates: exact = finite differences, and the coupled
    estimate's direction is printed against both."""
    import subprocess
    import sys

    exp = tmp_path / "g.toml"
    _experiment(exp, net)
    r = subprocess.run([sys.executable, "-m", "circuitprop", "gradcheck", str(exp), "--sample",
                        "1", "--json"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    j = json.loads(r.stdout)
    assert j["parameters"] == GATES
    np.testing.assert_allclose(j["exact"], j["finite_difference"], rtol=1e-6,
                               atol=1e-6 * max(abs(v) for v in j["exact"]))
    e, c = np.asarray(j["exact"]), np.asarray(j["estimate"])
    assert e @ c / np.linalg.norm(e) / np.linalg.norm(c) > 0.8
