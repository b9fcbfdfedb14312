"""The one solver core and the one learning engine: failures are reported, holomorphic and
forward-5 estimators, agnostic EP through the interface only (the energy cannot be
differentiated in θ)."""

from __future__ import annotations

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import circuitprop
from circuitprop._solve._linear import pcg
from circuitprop._solve._newton import Newton, newton_solve
from circuitprop._solve._result import RESULTS, message
from circuitprop.cli import main
from circuitprop.learn import cosine, gradcheck

DECKS = Path(__file__).resolve().parent / "learn_decks"
EXP = DECKS / "bias14.toml"
XOR = Path(__file__).resolve().parents[1] / "examples" / "xor"

DIVIDER = """divider with a diode
v1 in 0 DC 1
r1 in a 1k
r2 a 0 2k
d1 a 0 dx
.model dx D(is=1e-14)
.end
"""


def _rel(a, b) -> float:
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)) / np.linalg.norm(b))


def test_nan_conductance_is_a_failure_not_a_converged_zero_step():
    circuit, info = circuitprop.prepare(DIVIDER)
    good = newton_solve(circuit, info.defaults, jnp.zeros(circuit.n_u), Newton())
    assert bool(good.ok)
    bad_values = info.defaults.__class__(g=info.defaults.g.at[0].set(jnp.nan),
                                         vsrc=info.defaults.vsrc, isrc=info.defaults.isrc)
    sol = newton_solve(circuit, bad_values, jnp.zeros(circuit.n_u), Newton())
    assert not bool(sol.ok)
    assert sol.result == RESULTS.nonfinite
    assert "non-finite" in message(sol.result)


def test_pcg_reports_breakdown_and_nonfinite_and_cap():
    a = jnp.array([[2.0, 0.0], [0.0, -1.0]])  # indefinite
    b = jnp.array([1.0, 1.0])
    _, _, res = pcg(lambda x: a @ x, b, None, 1e-12, 10)
    assert res == RESULTS.linear_breakdown
    _, _, res = pcg(lambda x: x, jnp.array([jnp.nan, 1.0]), None, 1e-12, 10)
    assert res == RESULTS.nonfinite
    spd = jnp.diag(jnp.arange(1.0, 51.0))
    _, k, res = pcg(lambda x: spd @ x, jnp.ones(50), None, 1e-14, 3)
    assert res == RESULTS.linear_max_steps and int(k) == 3
    x, _, res = pcg(lambda x: spd @ x, jnp.ones(50), None, 1e-12, 100)
    assert res == RESULTS.successful
    np.testing.assert_allclose(np.asarray(x), 1.0 / np.arange(1.0, 51.0), rtol=1e-10)


def test_operating_point_with_nan_value_exits_2(tmp_path, capsys):
    deck = tmp_path / "nan.cir"
    deck.write_text(DIVIDER.replace("r2 a 0 2k", "r2 a 0 {1/0*0}"))
    code = main(["op", str(deck)])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err


@pytest.fixture(scope="module")
def bias14_fd():
    return json.loads((DECKS / "bias14_fd.json").read_text())


def test_holomorphic_estimator_against_ngspice(bias14_fd):
    """holomorphic-8 at β = 1e-4 S on the diode circuit: at ngspice's finite-difference
    accuracy (measured relative error 5e-10 .. 3.5e-9), where centered EP is 1.9e-3 .. 4.4e-3
    off."""
    for k in (0, 2):
        fd = np.asarray(bias14_fd["samples"][k]["finite_difference"])
        hol = gradcheck(EXP, sample=k, estimator="holomorphic-8", beta=1e-4)
        cen = gradcheck(EXP, sample=k, estimator="centered", beta=1e-4)
        assert cosine(hol.estimate, fd) >= 0.99999
        assert _rel(hol.estimate, fd) < 3e-8, k
        assert _rel(hol.estimate, hol.exact) < 5e-9, k
        assert _rel(cen.estimate, fd) > 1e-3, k


def test_holomorphic_estimators_gain_with_points(bias14_fd):
    """N = 4 → 8 points at β = 1e-4: the aliasing error O(β^N) drops by orders of magnitude
    (measured 2e-5 → 4e-10 against the exact gradient)."""
    e4 = gradcheck(EXP, sample=0, estimator="holomorphic-4", beta=1e-4).relative_error_exact
    e8 = gradcheck(EXP, sample=0, estimator="holomorphic-8", beta=1e-4).relative_error_exact
    assert e4 < 2e-4 and e8 < 5e-9 and e4 / e8 > 1e3


def test_forward5_beats_forward4(bias14_fd):
    """forward-p has bias O(β^(p−1)): at β = 2e-5 each extra point gains ≥ 3x."""
    fd = np.asarray(bias14_fd["samples"][1]["finite_difference"])
    g4 = gradcheck(EXP, sample=1, estimator="forward-4", beta=2e-5)
    g5 = gradcheck(EXP, sample=1, estimator="forward-5", beta=2e-5)
    assert _rel(g5.exact, fd) < 1e-6  # the exact gradient itself agrees with ngspice
    e4, e5 = _rel(g4.estimate, fd), _rel(g5.estimate, fd)
    assert e5 < e4 / 3, (e4, e5)


def test_gradcheck_zero_exact_gradient_is_not_a_perfect_cosine(tmp_path, capsys):
    """A sample whose loss is stationary (outputs already at their targets through a
    circuit with no trainable path to them): the cosine is undefined, not 1."""
    from circuitprop.learn._gradcheck import GradCheck

    g = GradCheck(parameters=["r1"], conductances=[1e-3], loss=0.0, exact=[0.0], estimate=[0.0],
                  finite_difference=[0.0], rule="ep", estimator="centered", beta=1e-6,
                  sample=0, outputs=[0.0], targets=[0.0])
    j = g.to_json()
    assert j["cosine_exact"] is None and j["exact_gradient_is_zero"] is True


def test_agnostic_trains_xor_without_any_theta_derivative(tmp_path, monkeypatch, capsys):
    """``rule = "agnostic"`` from the CLI with the circuit energy wrapped so that any
    θ-derivative raises: the homeostatic loop and the physics only evaluate it."""
    import circuitprop.learn._circuit as circ
    from circuitprop.bilevel import forbid_theta_derivative

    original = circ.circuit_energy

    def black_box(prob, u, theta, x):
        return forbid_theta_derivative(lambda s, t, xx: original(prob, s, t, xx))(u, theta, x)

    monkeypatch.setattr(circ, "circuit_energy", black_box)
    with pytest.raises(Exception, match="black box"):
        jax.grad(lambda t: circ.circuit_energy(None, None, t, None))(jnp.ones(2))
    exp = tmp_path / "experiment.toml"
    (tmp_path / "xor.cir").write_text((XOR / "xor.cir").read_text())
    exp.write_text((XOR / "experiment.toml").read_text().replace('rule = "ep"', 'rule = "agnostic"')
                   .replace("epochs = 150", "epochs = 60"))
    assert main(["train", str(exp), "--out", str(tmp_path / "run")]) == 0
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert m["rule"] == "agnostic"
    assert m["test_accuracy"] == 1.0


def test_gradcheck_cli_holomorphic(bias14_fd, capsys):
    """``circuitprop gradcheck --estimator holomorphic-8 --beta 1e-4`` from the command line,
    against ngspice's finite differences (measured 3.4e-9)."""
    assert main(["gradcheck", str(EXP), "--sample", "0", "--json", "--estimator",
                 "holomorphic-8", "--beta", "1e-4"]) == 0
    j = json.loads(capsys.readouterr().out)
    fd = np.asarray(bias14_fd["samples"][0]["finite_difference"])
    assert j["estimator"] == "holomorphic-8"
    assert cosine(j["estimate"], fd) >= 0.99999
    assert _rel(j["estimate"], fd) < 3e-8
    with pytest.raises(SystemExit) as e:
        main(["gradcheck", str(EXP), "--estimator", "holomorphic-1"])
    assert e.value.code == 2
    assert "holomorphic-N" in capsys.readouterr().err
