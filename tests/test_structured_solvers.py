"""The structure-aware solvers: dense blocks, colours, the ``dense`` and ``coordinate``
methods, ``[train] solver``/``devices``/``dtype`` (ngspice parity of the methods is in
test_parity.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

import circuitprop
from circuitprop._api import prepare
from circuitprop._solve._coordinate import with_colours
from circuitprop._solve._methods import SOLVERS, auto_method
from circuitprop.experiment import TRAIN_SOLVERS

REPO = Path(__file__).resolve().parent.parent
DECKS = Path(__file__).resolve().parent / "decks"
DIGITS = REPO / "examples" / "digits"


def test_train_solver_choices_are_the_solver_package_table():
    assert TRAIN_SOLVERS == ("auto",) + SOLVERS


def test_layered_deck_is_two_dense_blocks_and_an_edge_list():
    c, info = prepare(DIGITS / "digits.cir")
    lay = c.layout
    assert [b.shape for b in lay.blocks] == [(128, 100), (100, 20)]
    assert [(b.p_fixed, b.q_fixed) for b in lay.blocks] == [(True, False), (False, False)]
    assert lay.runs == (("block", 0, 12800), ("block", 1, 2000), ("rest", 0, 20))
    # the block's first row is the first input's resistors, in deck order
    assert info.resistors[:2] == ["r1_1_1", "r1_1_2"]
    u = jax.random.normal(jax.random.PRNGKey(1), (c.n_u,))
    v = circuitprop._energy.node_voltages(c, info.defaults, u)
    np.testing.assert_array_equal(np.asarray(lay.drops(v, c.r_a, c.r_b)),
                                  np.asarray(v[c.r_a] - v[c.r_b]))


def test_runs_that_are_not_complete_blocks_stay_edges(tmp_path):
    # a 3x30 block (90 resistors) missing one resistor: no block at all
    lines = ["t", *(f"v{i} in{i} 0 1" for i in range(3))]
    k = 0
    for i in range(3):
        for j in range(30):
            if (i, j) != (1, 7):
                lines.append(f"r{k} in{i} h{j} 1k"); k += 1
    lines += [f"rl{j} h{j} 0 1k" for j in range(30)] + [".end"]
    c, _ = prepare("\n".join(lines) + "\n")
    assert c.layout.blocks == ()
    assert c.layout.n_block_resistors == 0


def test_colours_are_independent_sets_and_a_layered_network_has_its_layers():
    c, _ = prepare(DIGITS / "digits.cir")
    cc = with_colours(c)
    cols = [np.asarray(col.idx) for col in cc.layout.colours]
    assert sorted(len(x) for x in cols) == [20, 100]
    nv = np.asarray(c.node_var)
    ua, ub = nv[np.asarray(c.r_a)], nv[np.asarray(c.r_b)]
    for s in cols:
        inside = np.isin(ua, s) & np.isin(ub, s)
        assert not inside.any()
    assert sorted(np.concatenate(cols).tolist()) == list(range(c.n_u))


@pytest.mark.parametrize("method", ["dense", "coordinate"])
def test_structured_methods_agree_with_newton_on_the_digits_network(method):
    ref = circuitprop.operating_point(DIGITS / "digits.cir")
    op = circuitprop.operating_point(DIGITS / "digits.cir", method=method)
    assert op.stats["method"] == method
    scale = max(abs(v) for v in ref.voltages.values())
    worst = max(abs(op.voltages[k] - v) for k, v in ref.voltages.items())
    assert worst <= 1e-9 * scale, (worst, scale)


def test_coordinate_sweep_matches_newton_sweep():
    deck = DECKS / "kup_diode_sweep.cir"
    a = circuitprop.dc_sweep(deck)
    b = circuitprop.dc_sweep(deck, method="coordinate")
    assert b.stats["method"] == "coordinate"
    for k, va in a.voltages.items():
        np.testing.assert_allclose(b.voltages[k], va, rtol=1e-9, atol=1e-12)


def test_cli_op_method_coordinate_reports_its_method(capsys):
    from circuitprop.cli import main

    assert main(["op", str(DECKS / "drn_32_20_8.cir"), "--method", "coordinate", "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)["stats"]
    assert stats["method"] == "coordinate"
    assert stats["steps"] >= 2


def test_auto_picks_coordinate_for_layered_networks_and_newton_otherwise():
    c, _ = prepare(DIGITS / "digits.cir")
    assert auto_method(c, "mse") == "coordinate"
    assert auto_method(c, "cross-entropy") == "dense"
    small, _ = prepare(REPO / "examples" / "xor" / "xor.cir")
    assert auto_method(small, "mse") == "newton"
    lattice, _ = prepare(DECKS / "lattice_20x20_s0.cir")
    assert auto_method(lattice, "mse") == "newton"


def _digits_experiment(tmp_path, **train):
    text = (DIGITS / "experiment.toml").read_text()
    text = text.replace('netlist = "digits.cir"', f'netlist = "{DIGITS / "digits.cir"}"')
    text = text.replace('source = "digits"', 'source = "digits"\nlimit_train = 24\nlimit_test = 12')
    text = text.replace("epochs = 30", "epochs = 1")
    text += "".join(f"{k} = {json.dumps(v)}\n" for k, v in train.items())
    p = tmp_path / "exp.toml"
    p.write_text(text)
    return p


def _conductances(path: Path) -> dict[str, float]:
    """Resistance of every resistor of a deck, by name."""
    return {el.name: el.value for el in circuitprop.load(path).elements if el.kind == "r"}


@pytest.fixture(scope="module")
def digit_runs(tmp_path_factory):
    """One epoch of limited digits with newton and coordinate (float64) and with coordinate
    in float32: metrics and trained conductances (dense: its ngspice parity and
    test_structured_methods_agree_with_newton_on_the_digits_network)."""
    from circuitprop.learn import train

    tmp = tmp_path_factory.mktemp("digit_runs")
    runs = {}
    for name, kw in (("newton", {"solver": "newton"}), ("coordinate", {"solver": "coordinate"}),
                     ("float32", {"solver": "coordinate", "dtype": "float32"})):
        m = train(_digits_experiment(tmp, **kw), tmp / name, progress=False)
        runs[name] = (m, _conductances(tmp / name / "trained.cir"), tmp / name)
    return runs


def test_every_solver_trains_the_same_network(digit_runs):
    """Same conductances to 1e-6 relative after an epoch (measured 7e-8 for coordinate:
    its phases stop just below the tolerance, where Newton lands far below it)."""
    ref = digit_runs["newton"][1]
    for solver in ("newton", "coordinate"):
        assert digit_runs[solver][0]["solver"] == solver
    worst = max(abs(digit_runs["coordinate"][1][k] - g) / g for k, g in ref.items())
    assert worst <= 1e-6, worst


def _train_cli(capsys, *args) -> tuple[int, str]:
    from circuitprop.cli import main

    code = main(["train", *map(str, args), "--no-progress"])
    return code, capsys.readouterr().err


def test_coordinate_with_cross_entropy_is_refused(tmp_path, capsys):
    exp = _digits_experiment(tmp_path, solver="coordinate")
    exp.write_text(exp.read_text().replace('estimator = "centered"',
                                           'estimator = "centered"\nloss = "cross-entropy"'))
    code, err = _train_cli(capsys, exp, "--out", tmp_path / "o")
    assert code == 2
    assert f"{exp}: [train] solver: the coordinate solver" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("flag,value,words", [
    ("--devices", "0", "--devices: expected 'all' or a count >= 1"),
    ("--devices", "64", "64 requested, but only"),
    ("--solver", "cg", "--solver: 'cg' is not one of"),
    ("--dtype", "float16", "--dtype: 'float16' is not one of"),
])
def test_bad_train_flags_exit_2(tmp_path, capsys, flag, value, words):
    exp = _digits_experiment(tmp_path)
    code, err = _train_cli(capsys, exp, "--out", tmp_path / "o", flag, value)
    assert code == 2, err
    assert words in err
    assert "Traceback" not in err


_TWO_DEVICES = """
import json, sys
from circuitprop.learn import train
exp, out = sys.argv[1], sys.argv[2]
for n in (1, 2):
    train(exp, f"{out}/d{n}", epochs=10, progress=False, devices=n)
"""


def test_two_devices_train_the_same_network_as_one(tmp_path):
    """xor under two forced host devices, each batch sharded over them: the same trained
    conductances as one device (measured: 2.5e-12 relative)."""
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2")
    exp = REPO / "examples" / "xor" / "experiment.toml"
    out = subprocess.run([sys.executable, "-c", _TWO_DEVICES, str(exp), str(tmp_path)],
                         capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode == 0, out.stderr
    m2 = json.loads((tmp_path / "d2" / "metrics.json").read_text())
    assert m2["devices"] == 2
    a = _conductances(tmp_path / "d1" / "trained.cir")
    b = _conductances(tmp_path / "d2" / "trained.cir")
    worst = max(abs(b[k] - g) / g for k, g in a.items())
    assert worst <= 1e-9, worst
    # and the run really moved the conductances
    start = _conductances(REPO / "examples" / "xor" / "xor.cir")
    assert max(abs(a[k] - g) / g for k, g in start.items()) > 1e-2


def test_float32_training_runs_in_float32(digit_runs):
    m, a, out = digit_runs["float32"]
    m64, b, _ = digit_runs["coordinate"]
    assert m["dtype"] == "float32" and m64["dtype"] == "float64"
    ckpt = np.load(out / "checkpoint.npz")
    assert ckpt["params"].dtype == np.float32
    assert ckpt["u_cache"].dtype == np.float32
    # float32 rounding, not a different training, after one epoch (6 steps): measured median
    # 8e-7 relative (a few move more: the largest by 6e-3), test losses 2e-5 apart
    rel = np.array([abs(a[k] - g) / g for k, g in b.items()])
    assert np.median(rel) <= 1e-5, np.median(rel)
    assert abs(m["test_loss"] - m64["test_loss"]) <= 2e-4 * m64["test_loss"]
