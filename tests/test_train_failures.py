"""Training that fails stops with one line and keeps its progress; checkpoints that are
truncated, garbage or from another experiment are refused; resume is bit for bit; data bounds.

Every case is the 4-point XOR example (or a 3-row csv), so each takes a few seconds."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

import circuitprop
import circuitprop.learn._rules as rules_mod
import circuitprop.learn._train as train_mod
from circuitprop.cli import main

REPO = Path(__file__).resolve().parent.parent
XOR = REPO / "examples" / "xor"
G_UNIT = 1e-3  # [train] g_unit of the xor example


def _xor(tmp_path: Path, name: str = "xor", **edits) -> Path:
    """A copy of the xor example with ``[train]`` / ``[learning]`` / ``[data]`` keys changed:
    ``key=value`` replaces the line ``key = ...`` (or is appended to ``[train]``, the file's
    last table); ``key=None`` deletes it. Values are TOML text."""
    d = tmp_path / name
    shutil.copytree(XOR, d)
    p = d / "experiment.toml"
    text = p.read_text()
    for key, value in edits.items():
        pat = re.compile(rf"^{key} = .*$\n?", re.M)
        if value is None:
            text, n = pat.subn("", text)
            assert n == 1, key
        elif pat.search(text):
            text = pat.sub(f"{key} = {value}\n", text)
        else:
            text = text.rstrip("\n") + f"\n{key} = {value}\n"
    p.write_text(text)
    return p


def _cli(*args, timeout: float = 120):
    env = {k: v for k, v in os.environ.items() if k != "CIRCUITPROP_DEBUG"}
    return subprocess.run([sys.executable, "-m", "circuitprop.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, env=env)


def _one_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr and "internal error" not in stderr, stderr
    return lines[0]


def _main_error(capsys, argv) -> str:
    capsys.readouterr()
    assert main(argv) == 2
    return _one_line(capsys.readouterr().err)


def _checkpoint(out: Path):
    with np.load(out / "checkpoint.npz", allow_pickle=False) as z:
        meta = json.loads(str(z["meta"][()]))
        arrays = {k: np.array(z[k]) for k in z.files if k != "meta"}
    return meta, arrays


def _trained_conductances(path: Path, names) -> np.ndarray:
    net = circuitprop.load(path)
    r = {el.name: el for el in net.elements if el.kind == "r"}
    return np.array([1.0 / float(r[n].value) for n in names])


# ----------------------------------------------------------------------------- failures


def test_initial_network_that_does_not_solve_stops_before_training(tmp_path):
    exp = _xor(tmp_path, input_gain="1e200")
    out = tmp_path / "run"
    r = _cli("train", exp, "--out", out, "--no-progress")
    assert r.returncode == 2, r.stderr
    line = _one_line(r.stderr)
    assert line.startswith(f"{exp}: the initial network does not solve 3 of 4 training samples "
                           "(training samples 1, 2, 3)"), line
    assert "nothing was trained" in line and f"{out / 'checkpoint.npz'} holds the initial" in line
    assert not (out / "metrics.json").exists()
    # the initial state is kept as a loadable checkpoint (epoch 0), and resuming from it
    # stops the same way
    meta, arrays = _checkpoint(out)
    assert meta["epoch"] == 0 and np.all(np.isfinite(arrays["params"]))
    r = _cli("train", exp, "--out", out, "--no-progress", "--resume")
    assert r.returncode == 2 and "Traceback" not in r.stderr


def test_diverging_run_stops_and_keeps_the_last_good_epoch(tmp_path):
    # sgd at learning rate 1e300 with no upper clamp: the first update is enormous (finite)
    exp = _xor(tmp_path, optimizer='"sgd"', learning_rate="1e300", g_max=None)
    out = tmp_path / "run"
    r = _cli("train", exp, "--out", out, "--epochs", "5", "--no-progress")
    assert r.returncode == 2, r.stderr
    line = _one_line(r.stderr)
    m = re.match(rf"{re.escape(str(exp))}: epoch (\d+), batch 1 of 1: "
                 r"(a learning phase did not converge for \d+ of 4 samples \(training samples "
                 r"[0-9, ]+\)|the gradient is not finite for \d+ of 4 samples|the update made \d+ "
                 r"of 25 conductances non-finite)", line)
    assert m, line
    failed = int(m.group(1))
    assert failed >= 2, line  # epoch 1's step still works from the deck's conductances
    assert (f"training stopped, {out / 'checkpoint.npz'} holds the state after epoch "
            f"{failed - 1} and {out / 'trained.cir'} has its trained values") in line
    assert not (out / "metrics.json").exists()
    meta, arrays = _checkpoint(out)
    assert meta["epoch"] == failed - 1 and len(meta["hist"]["train_loss_history"]) == failed - 1
    assert np.all(np.isfinite(arrays["params"]))
    g = _trained_conductances(out / "trained.cir", meta["identity"]["parameters"])
    np.testing.assert_allclose(g, arrays["params"] * G_UNIT, rtol=1e-15)


def _patched_rule(monkeypatch, how: str):
    """Make the learning rule fail deterministically (inside the jitted step)."""
    orig = rules_mod.sample_gradient

    def patched(prob, cfg, theta, x, y, key, u0=None):
        r = orig(prob, cfg, theta, x, y, key, u0)
        is2 = (x[0] > 1.0) & (x[1] < 1.0)  # xor sample 2: (1, 0), inputs +-2 V
        is1 = (x[0] < 1.0) & (x[1] > 1.0)  # xor sample 1: (0, 1)
        if how == "phase":
            return rules_mod.RuleOutput(grad=r.grad, loss=r.loss, out=r.out, ok=r.ok & ~is2,
                                        u=r.u)
        if how == "grad":
            grad = jnp.where(is1, jnp.nan, r.grad)
            return rules_mod.RuleOutput(grad=grad, loss=r.loss, out=r.out, ok=r.ok, u=r.u)
        grad = jnp.full_like(r.grad, -1e300)  # "update": the step overflows to +inf
        return rules_mod.RuleOutput(grad=grad, loss=r.loss, out=r.out, ok=r.ok, u=r.u)

    monkeypatch.setattr(train_mod, "sample_gradient", patched)


@pytest.mark.parametrize(
    "how, edits, cause",
    [
        ("phase", {"batch_size": "1"},
         "a learning phase did not converge for 1 of 1 samples (training samples 2)"),
        ("grad", {}, "the gradient is not finite for 1 of 4 samples (training samples 1)"),
        ("update", {"optimizer": '"sgd"', "learning_rate": "1e20", "g_max": None},
         "the update made 25 of 25 conductances non-finite"),
    ],
)
def test_failing_step_names_epoch_batch_and_cause(tmp_path, monkeypatch, capsys, how, edits,
                                                  cause):
    _patched_rule(monkeypatch, how)
    exp = _xor(tmp_path, **edits)
    out = tmp_path / "run"
    line = _main_error(capsys, ["train", str(exp), "--out", str(out), "--no-progress",
                                "--epochs", "3"])
    if how == "phase":  # batches of one sample, shuffled with [train] seed 0
        batch = int(np.nonzero(np.random.default_rng(0).permutation(4) == 2)[0][0]) + 1
        where = f"epoch 1, batch {batch} of 4"
    else:
        where = "epoch 1, batch 1 of 1"
    assert line == (f"{exp}: {where}: {cause}; training stopped, {out / 'checkpoint.npz'} holds "
                    f"the initial state (epoch 0) and {out / 'trained.cir'} has its "
                    "trained values"), line
    assert not (out / "metrics.json").exists()
    # the epoch-0 checkpoint is the deck's state, loadable; trained.cir is the deck's values
    meta, arrays = _checkpoint(out)
    assert meta["epoch"] == 0 and meta["hist"]["train_loss_history"] == []
    names = meta["identity"]["parameters"]
    g0 = _trained_conductances(XOR / "xor.cir", names)
    np.testing.assert_allclose(arrays["params"] * G_UNIT, g0, rtol=1e-15)
    np.testing.assert_allclose(_trained_conductances(out / "trained.cir", names), g0,
                               rtol=1e-15)


def _flaky_evaluate(monkeypatch, fail_calls: set[int], sample: int = 3):
    """``evaluate`` with test sample ``sample`` marked unconverged on the given calls (call 0:
    the cold solve of the training set; 1..E: the test set after each epoch; E+1: the final
    test evaluation). Returns the list of each call's losses."""
    orig = train_mod.evaluate
    calls = []

    def flaky(eval_fn, theta, x, y, cache, chunk=256):
        loss, o, ok, power = orig(eval_fn, theta, x, y, cache, chunk)
        if len(calls) in fail_calls:
            ok = ok.copy()
            ok[sample] = False
        calls.append(loss)
        return loss, o, ok, power

    monkeypatch.setattr(train_mod, "evaluate", flaky)
    return calls


def test_unconverged_test_samples_are_left_out_and_counted(tmp_path, monkeypatch, capsys):
    calls = _flaky_evaluate(monkeypatch, {1})
    out = tmp_path / "run"
    assert main(["train", str(XOR / "experiment.toml"), "--out", str(out), "--no-progress",
                 "--epochs", "2"]) == 0
    assert "1 test-sample evaluations did not converge" in capsys.readouterr().out
    m = json.loads((out / "metrics.json").read_text())
    assert m["non_converged"] == {"test": [1, 0], "final_test": 0, "final_train": 0}
    assert m["test_loss_history"][0] == float(np.mean(calls[1][:3]))
    assert m["test_loss_history"][1] == float(np.mean(calls[2]))


def test_final_evaluation_that_does_not_converge_fails(tmp_path, monkeypatch, capsys):
    _flaky_evaluate(monkeypatch, {3})
    out = tmp_path / "run"
    line = _main_error(capsys, ["train", str(XOR / "experiment.toml"), "--out", str(out),
                                "--no-progress", "--epochs", "2"])
    assert line.startswith(
        f"{XOR / 'experiment.toml'}: final evaluation after epoch 2: the trained network does "
        "not solve 1 of 4 test samples (test samples 3), so no metrics were written"), line
    assert not (out / "metrics.json").exists()
    meta, arrays = _checkpoint(out)
    assert meta["epoch"] == 2
    g = _trained_conductances(out / "trained.cir", meta["identity"]["parameters"])
    np.testing.assert_allclose(g, arrays["params"] * G_UNIT, rtol=1e-15)


# ----------------------------------------------------------------------------- resume


def test_resume_is_bit_for_bit_including_test_metrics(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    exp = str(XOR / "experiment.toml")
    assert main(["train", exp, "--out", str(a), "--epochs", "3", "--no-progress"]) == 0
    # epoch 0 (the initial checkpoint), then 1, then 3
    assert main(["train", exp, "--out", str(b), "--epochs", "0", "--no-progress"]) == 0
    assert main(["train", exp, "--out", str(b), "--epochs", "1", "--resume",
                 "--no-progress"]) == 0
    assert main(["train", exp, "--out", str(b), "--epochs", "3", "--resume",
                 "--no-progress"]) == 0
    ma = json.loads((a / "metrics.json").read_text())
    mb = json.loads((b / "metrics.json").read_text())
    for m in (ma, mb):
        del m["epoch_seconds"], m["mean_epoch_seconds"], m["setup_seconds"]
    assert ma == mb
    assert len(ma["test_loss_history"]) == 3 and ma["non_converged"]["test"] == [0, 0, 0]
    (meta_a, za), (meta_b, zb) = _checkpoint(a), _checkpoint(b)
    assert meta_a["epoch"] == meta_b["epoch"] == 3 and meta_a["rng"] == meta_b["rng"]
    assert set(za) == set(zb) >= {"params", "u_cache", "eval_train", "eval_test", "opt_0"}
    for k in za:
        assert np.array_equal(za[k], zb[k]), k
    assert (a / "trained.cir").read_text() == (b / "trained.cir").read_text()


@pytest.fixture(scope="module")
def epoch0(tmp_path_factory):
    """An xor experiment copy and a folder with its epoch-0 checkpoint."""
    base = tmp_path_factory.mktemp("ckpt")
    exp = _xor(base)
    out = base / "run"
    assert main(["train", str(exp), "--out", str(out), "--epochs", "0", "--no-progress"]) == 0
    return exp, out


def _resume_error(capsys, exp, out) -> str:
    return _main_error(capsys, ["train", str(exp), "--out", str(out), "--epochs", "1",
                                "--resume", "--no-progress"])


@pytest.mark.parametrize(
    "damage, match",
    [
        ("truncated", "not a checkpoint: truncated, or not an .npz archive"),
        ("empty", "not a checkpoint: truncated, or not an .npz archive"),
        ("garbage", "not a checkpoint: not an .npz archive"),
        ("no-meta", r"not a circuitprop checkpoint \(no 'meta' entry\)"),
        ("old-format", "checkpoint written by an older circuitprop; this version reads format 2"),
        ("bad-params", r"damaged checkpoint \(entry 'params' is float64\[3\], expected "
                       r"float64\[25\]\)"),
        ("nan-params", r"damaged checkpoint \(entry 'params' holds non-finite values\)"),
    ],
)
def test_unreadable_checkpoint_exits_2_naming_it(epoch0, tmp_path, capsys, damage, match):
    exp, good = epoch0
    out = tmp_path / "run"
    shutil.copytree(good, out)
    ckpt = out / "checkpoint.npz"
    raw = ckpt.read_bytes()
    meta, arrays = _checkpoint(good)
    if damage == "truncated":
        ckpt.write_bytes(raw[: len(raw) // 2])
    elif damage == "empty":
        ckpt.write_bytes(b"")
    elif damage == "garbage":
        ckpt.write_bytes(b"this is not a checkpoint\n" * 20)
    elif damage == "no-meta":
        np.savez(ckpt, **arrays)
    elif damage == "old-format":
        del meta["format"]
        np.savez(ckpt, meta=np.asarray(json.dumps(meta)), **arrays)
    elif damage == "bad-params":
        np.savez(ckpt, meta=np.asarray(json.dumps(meta)), **{**arrays, "params": np.ones(3)})
    else:
        p = arrays["params"].copy()
        p[4] = np.nan
        np.savez(ckpt, meta=np.asarray(json.dumps(meta)), **{**arrays, "params": p})
    line = _resume_error(capsys, exp, out)
    assert line.startswith(f"{ckpt}: "), line
    assert re.search(match, line), line
    assert line.endswith("delete it, or train into another --out"), line


@pytest.mark.parametrize(
    "edits, expected",
    [
        ({"rule": '"coupled"', "beta": "1e-3", "optimizer": '"sgd"'},
         ["rule 'ep' (checkpoint) vs 'coupled' (this run)",
          "beta 0.0001 (checkpoint) vs 0.001 (this run)",
          "optimizer 'adam' (checkpoint) vs 'sgd' (this run)"]),
        ({"estimator": '"positive"'},
         ["estimator 'centered' (checkpoint) vs 'positive' (this run)"]),
        ({"task": '"regression"'}, ["data set 'xor': same sizes, different values"]),
        ({"trainable": '["r1_*"]'},
         ["parameter names: 25 in the checkpoint, 20 in this run (the first 20 agree)"]),
        ({"trainable": '["r1_*", "r2_[1-4]_1", "rload"]'},
         ["parameter names: 25 in the checkpoint, 25 in this run, first difference "
          "'r2_5_1' vs 'rload'"]),
    ],
)
def test_foreign_checkpoint_says_what_differs(epoch0, tmp_path, capsys, edits, expected):
    _, good = epoch0
    exp = _xor(tmp_path, **edits)
    out = tmp_path / "run"
    shutil.copytree(good, out)
    before = (out / "checkpoint.npz").read_bytes()
    line = _resume_error(capsys, exp, out)
    assert line.startswith(f"{out / 'checkpoint.npz'}: checkpoint of a different experiment: "), line
    for text in expected:
        assert text in line, line
    assert (out / "checkpoint.npz").read_bytes() == before


# ----------------------------------------------------------------------------- bad input


def test_batch_size_above_training_set(tmp_path, capsys):
    exp = _xor(tmp_path, batch_size="8")
    line = _main_error(capsys, ["train", str(exp), "--out", str(tmp_path / "run"),
                                "--no-progress"])
    assert line == (f"{exp}: [train] batch_size: 8 is larger than the number of training "
                    "samples (4)")


def test_negative_epochs_flag(capsys):
    line = _main_error(capsys, ["train", str(XOR / "experiment.toml"), "--out", "unused",
                                "--epochs", "-1"])
    assert line == "--epochs: expected an integer >= 0, got -1"


@pytest.mark.parametrize("label", ["1e300", "5e9", "1000001", "2.5", "-1"])
def test_csv_class_label_out_of_bounds(tmp_path, capsys, label):
    from learn_helpers import RD_DECK

    (tmp_path / "rd.cir").write_text(RD_DECK)
    (tmp_path / "rd.csv").write_text(f"x1,x2,label\n0.5,1.0,0\n1.0,0.2,1\n0.1,0.9,{label}\n")
    exp = tmp_path / "exp.toml"
    exp.write_text('netlist = "rd.cir"\ninputs = ["vx1", "vx2"]\noutputs = ["out"]\n'
                   'trainable = ["r[1-7]"]\n[data]\nsource = "csv:rd.csv"\ntest_fraction = 0\n'
                   'task = "classification"\n')
    line = _main_error(capsys, ["train", str(exp), "--out", str(tmp_path / "run"),
                                "--no-progress"])
    assert line == (f"{exp}: [data] {tmp_path / 'rd.csv'}:4: class label {label!r} (column "
                    "'label') is not a non-negative integer (0 to 1000000)")
