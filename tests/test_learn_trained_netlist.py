"""``circuitprop train examples/xor/experiment.toml`` reaches test accuracy 1.0, and the
``trained.cir`` it writes is solved to the same operating point by circuitprop and by
ngspice (to 1e-6 V), as written and with every XOR sample on the input sources; ngspice's
outputs on the trained deck classify all four points correctly too."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

import circuitprop
from circuitprop.cli import main
from circuitprop.experiment import load_experiment
from circuitprop.export import ngspice_operating_point

REPO = Path(__file__).resolve().parent.parent
XOR = REPO / "examples" / "xor" / "experiment.toml"

needs_ngspice = pytest.mark.skipif(shutil.which("ngspice") is None,
                                   reason="ngspice not installed")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("xor-train")
    assert main(["train", str(XOR), "--out", str(out), "--no-progress"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    return out, metrics


def _with_sources(deck: str, values: dict[str, float]) -> str:
    """The deck with the named V sources at ``DC value``."""
    seen = set()

    def sub(m):
        seen.add(m.group(1).lower())
        return f"{m.group(1)} {m.group(2)} {m.group(3)} DC {repr(float(values[m.group(1).lower()]))}"

    names = "|".join(re.escape(n) for n in values)
    text = re.sub(rf"^({names})\s+(\S+)\s+(\S+)\s+DC\s+\S+\s*$", sub, deck,
                  flags=re.M | re.I)
    assert seen == set(values), (seen, values)
    return text


def _assert_same_op(deck: str, atol: float = 1e-6):
    op = circuitprop.operating_point(deck)
    v_ng, i_ng = ngspice_operating_point(deck)
    assert set(op.voltages) <= set(v_ng), set(op.voltages) - set(v_ng)
    for node, v in op.voltages.items():
        assert abs(v - v_ng[node]) <= atol, (node, v, v_ng[node])
    for name, i in op.currents.items():
        if name in i_ng:
            assert abs(i - i_ng[name]) <= 1e-6 * max(abs(i_ng[name]), 1e-6), (name, i, i_ng[name])
    return op.voltages, v_ng


def test_xor_trains_to_full_accuracy(trained):
    out, m = trained
    assert m["test_accuracy"] == 1.0, m.get("test_accuracy_history")
    assert m["train_accuracy"] == 1.0
    assert m["epochs"] == load_experiment(XOR).train.epochs
    for name in ("metrics.json", "trained.cir", "checkpoint.npz", "learning_curve.png"):
        assert (out / name).is_file(), name


@needs_ngspice
def test_trained_deck_same_op_in_circuitprop_and_ngspice(trained):
    out, _ = trained
    deck = (out / "trained.cir").read_text()
    _assert_same_op(deck)  # as written (inputs at the deck's placeholder values)
    exp = load_experiment(XOR)
    ds = exp.load_data()
    x = exp.encode_inputs(ds.x_test)
    inputs = [s.lower() for s in exp.inputs]
    # the experiment's prediction rule: one output, class 1 above the midpoint of the targets
    mid = 0.5 * (exp.train.target_high + exp.train.target_low)
    for xi, label in zip(x, ds.y_test):
        v_cp, v_ng = _assert_same_op(_with_sources(deck, dict(zip(inputs, xi))))
        assert int(v_ng["out"] > mid) == int(label), (xi, v_ng["out"], label)
        assert int(v_cp["out"] > mid) == int(label)


@needs_ngspice
def test_trained_deck_holds_the_learned_conductances(trained):
    """Every trainable resistor of trained.cir differs from the original deck (it learned),
    and ngspice reads the same netlist circuitprop parses."""
    out, _ = trained
    orig = circuitprop.parse((XOR.parent / "xor.cir").read_text())
    new = circuitprop.parse((out / "trained.cir").read_text())
    r0 = {e.name: e.value for e in orig.elements if e.kind == "r"}
    r1 = {e.name: e.value for e in new.elements if e.kind == "r"}
    assert set(r0) == set(r1)
    learned = [n for n in r0 if n.startswith("r") and n[1:2].isdigit()]
    assert learned and all(not np.isclose(r0[n], r1[n], rtol=1e-12) for n in learned)
    assert r0["rload"] == r1["rload"]
