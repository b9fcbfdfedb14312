"""Solver invariants: KCL at the solution, relax == newton, batching, no retracing, failures."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import circuitprop
from circuitprop._circuit import compile_circuit
from circuitprop._devices import VT, diode
from circuitprop._energy import energy, gradient, node_currents, node_voltages
from circuitprop._solve._newton import NewtonOptions, newton_solve
from circuitprop.builders import random_network


def test_thermal_voltage_matches_ngspice():
    assert VT == pytest.approx(0.025864917007157463, rel=1e-15)


@pytest.mark.parametrize("bv", [np.inf, 5.0])
def test_diode_cocontent_derivative_is_current(bv):
    from circuitprop._devices import diode_arrays

    p = diode_arrays([(1e-14, 1.2, bv, 1e-3, 1.0)])
    args = [jnp.asarray(p[k]) for k in ("is_", "vte", "tbv", "nbvt", "has_bv")]
    vs = jnp.linspace(-7.0, 0.9, 4001)
    i, g, _ = diode(vs, *args, 1e-12)
    dphi = jax.vmap(jax.grad(lambda v: diode(v, *args, 1e-12)[2].sum()))(vs)
    di = jax.vmap(jax.grad(lambda v: diode(v, *args, 1e-12)[0].sum()))(vs)
    # measured: 1.1e-15 relative (dphi vs i), exact (di vs g)
    np.testing.assert_allclose(dphi, i, rtol=1e-14, atol=1e-20)
    np.testing.assert_allclose(di, g, rtol=1e-14, atol=1e-20)
    assert np.all(np.diff(np.asarray(i)) >= 0), "diode current must be monotone"


def _kcl_residual(deck_text):
    circuit, info = circuitprop.prepare(deck_text)
    sol = newton_solve(circuit, info.defaults, jnp.zeros(circuit.n_u), NewtonOptions())
    assert bool(sol.ok)
    v = node_voltages(circuit, info.defaults, sol.u)
    j = node_currents(circuit, info.defaults, v)
    scale = float(jnp.max(jnp.abs(info.defaults.g * (v[circuit.r_a] - v[circuit.r_b]))))
    return circuit, info, sol, float(jnp.max(jnp.abs(gradient(circuit, info.defaults, sol.u)))), scale, j


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(8, 60), seed=st.integers(0, 10_000), diodes=st.booleans())
def test_random_decks_satisfy_kcl_and_methods_agree(n, seed, diodes):
    deck = random_network(n, seed=seed, diodes=diodes)
    _, _, _, resid, scale, _ = _kcl_residual(deck)
    assert resid <= 1e-12 * scale  # measured worst 8.4e-14 * scale over 62 random decks
    a = circuitprop.operating_point(deck)
    b = circuitprop.operating_point(deck, method="relax")
    for k, v in a.voltages.items():
        assert b.voltages[k] == pytest.approx(v, rel=1e-7, abs=1e-10)


def test_energy_is_minimal_at_the_solution():
    deck = random_network(40, seed=3)
    circuit, info = circuitprop.prepare(deck)
    sol = newton_solve(circuit, info.defaults, jnp.zeros(circuit.n_u), NewtonOptions())
    e0 = energy(circuit, info.defaults, sol.u)
    rng = np.random.default_rng(0)
    for _ in range(5):
        du = jnp.asarray(rng.normal(size=circuit.n_u)) * 1e-3
        assert energy(circuit, info.defaults, sol.u + du) > e0


def test_batched_sweep_equals_single_solves(tmp_path):
    deck = tmp_path / "s.cir"
    deck.write_text("sweep\nv1 in 0 1\nr1 in a 1k\nd1 a 0 dm\nr2 a 0 10k\n"
                    ".model dm D(IS=1e-14 N=1.1)\n.dc v1 0 2 0.25\n.end\n")
    res = circuitprop.dc_sweep(deck)
    for k, val in enumerate(res.sweep["values"]):
        text = deck.read_text().replace("v1 in 0 1", f"v1 in 0 {val!r}")
        op = circuitprop.operating_point(text)
        # measured: identical; abs covers the 0 V point (3.7e-28 V of GMIN leakage)
        assert res.voltages["a"][k] == pytest.approx(op.voltages["a"], rel=1e-12, abs=1e-20)
        assert res.currents["v1"][k] == pytest.approx(op.currents["v1"], rel=1e-12, abs=1e-23)


def test_no_retrace_for_new_values():
    deck = random_network(30, seed=1)
    circuit, info = circuitprop.prepare(deck)
    traces = []

    @jax.jit
    def solve(values):
        traces.append(1)
        return newton_solve(circuit, values, jnp.zeros(circuit.n_u), NewtonOptions()).u

    solve(info.defaults)
    for scale in (0.5, 2.0, 3.0):
        vals = circuitprop.Values(g=info.defaults.g * scale, vsrc=info.defaults.vsrc * scale,
                                  isrc=info.defaults.isrc)
        solve(vals)
    assert len(traces) == 1


def test_nonconvergence_is_an_error_not_nan():
    deck = random_network(60, seed=2)
    with pytest.raises(circuitprop.ConvergenceError, match="did not converge"):
        circuitprop.operating_point(deck, options=NewtonOptions(max_steps=1))


def test_multigrid_path_agrees_with_jacobi():
    from circuitprop.builders import lattice

    deck = lattice(80, 80, seed=4)
    circuit, info = circuitprop.prepare(deck)
    assert circuit.mg is not None
    plain = compile_circuit(info.netlist)[0]
    plain = type(plain)(**{**{f: getattr(plain, f) for f in plain.__dataclass_fields__}, "mg": None})
    a = newton_solve(circuit, info.defaults, jnp.zeros(circuit.n_u), NewtonOptions())
    b = newton_solve(plain, info.defaults, jnp.zeros(plain.n_u), NewtonOptions())
    assert bool(a.ok) and bool(b.ok)
    assert int(a.inner) < int(b.inner)
    np.testing.assert_allclose(a.u, b.u, rtol=1e-12, atol=1e-14)  # measured 1.4e-15 V


def test_controlled_sources_use_kcl_newton():
    text = ("ctl\nv1 in 0 1\nr1 in 0 1k\ne1 e 0 in 0 3\nre e 0 1k\ng1 0 g in 0 1m\nrg g 0 2k\n"
            "vs x 0 0\nrx in x 500\nf1 0 f vs 2\nrf f 0 1k\nh1 h 0 vs 100\nrh h 0 1k\n.end\n")
    op = circuitprop.operating_point(text)
    assert op.stats["method"] == "newton-kcl"
    # measured: exact (a linear circuit, dense LU)
    assert op.voltages["e"] == pytest.approx(3.0, rel=1e-14)
    assert op.voltages["g"] == pytest.approx(2.0, rel=1e-14)
    ix = 1.0 / 500
    assert op.currents["vs"] == pytest.approx(ix, rel=1e-14)
    assert op.voltages["f"] == pytest.approx(2 * ix * 1e3, rel=1e-14)
    assert op.voltages["h"] == pytest.approx(100 * ix, rel=1e-14)


def test_sweep_over_the_memory_cap_is_refused_before_any_point_is_built(tmp_path, monkeypatch):
    import circuitprop._api as api
    from circuitprop.netlist import NetlistError

    def no_batch(*args, **kwargs):
        raise AssertionError("the batch was built")

    monkeypatch.setattr(api, "sweep_values", no_batch)
    text = random_network(200, seed=1).replace(".op", ".dc v1 0 5 1e-5 v2 0 1 0.5")
    deck = tmp_path / "big.cir"
    deck.write_text(text)
    line = text.splitlines().index(".dc v1 0 5 1e-5 v2 0 1 0.5") + 1
    with pytest.raises(NetlistError) as info:
        circuitprop.dc_sweep(deck)
    err = info.value
    assert (err.file, err.line) == (str(deck), line)
    assert err.message.startswith("'.dc v1 v2': 500001 x 3 = 1500003 points")
    assert "more than the 1000000 a sweep may have" in err.message
    # under the point cap but over the memory cap: the estimate names the counts and the size
    deck.write_text(text.replace(".dc v1 0 5 1e-5 v2 0 1 0.5", ".dc v1 0 5 1e-5"))
    with pytest.raises(NetlistError) as info:
        circuitprop.dc_sweep(deck)
    assert (info.value.file, info.value.line) == (str(deck), line)
    assert info.value.message.startswith("'.dc v1': 500001 points would need about ")
    assert "GiB, more than the 8 GiB a sweep may take" in info.value.message


def test_sweep_memory_estimate():
    import circuitprop._api as api
    from circuitprop._solve._mna import MnaOptions

    # the estimate is linear in the points; a million points of a small deck are allowed
    circuit, info = circuitprop.prepare("t\nv1 a 0 1\nr1 a b 1k\nd1 b 0 dm\n.model dm D\n"
                                        ".dc v1 1e-6 1 1e-6\n.end\n")
    options = NewtonOptions()
    one = api.sweep_bytes(circuit, info, options, 1)
    assert api.sweep_bytes(circuit, info, options, 10**6) == pytest.approx(1e6 * one, rel=1e-15)
    # 160 bytes per unknown, element value (r1, v1) and reported output (a, b, current of v1)
    assert circuit.n_u == 1 and one == 160 * (1 + 2 + 3)
    api.check_sweep_size(circuit, info, options)
    # a dense MNA Jacobian counts n^2 entries per point
    circuit, info = circuitprop.prepare("t\nv1 a 0 1\nr1 a 0 1k\ne1 b 0 a 0 2\nr2 b 0 1k\n.end\n")
    n = circuit.n_nodes + circuit.n_br
    entries = 160 * (2 + 1 + 2 + 2 + n)  # r1 r2, v1, nodes a b, currents v1 e1, unknowns
    assert api.sweep_bytes(circuit, info, MnaOptions(), 1) == entries + 48 * n * n
    assert api.sweep_bytes(circuit, info, MnaOptions(dense_limit=1), 1) == entries
