"""Smoke runs of the bilevel examples (``--quick``): they finish and reduce the loss."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _load(name):
    path = ROOT / "examples" / name / "run.py"
    spec = importlib.util.spec_from_file_location(f"example_{name.replace('-', '_')}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_hopfield_quick(capsys):
    out = _load("hopfield").main(["--quick", "--json"])
    assert out["train_loss_after"] < 0.5 * out["train_loss_before"]
    assert out["train_accuracy_after"] >= 0.8
    assert out["cosine_ep_implicit_before"] > 0.99
    assert out["nonconverged_batches"] == 0


def test_meta_learning_quick(capsys):
    out = _load("meta-learning").main(["--quick", "--json"])
    assert out["meta_test_loss_after"] < 0.7 * out["meta_test_loss_before"]
    assert out["cosine_meta_gradient_implicit_before"] > 0.999
    assert out["nonconverged_batches"] == 0
