"""The command line: JSON shapes, exit codes, one-line errors without tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from circuitprop.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_op_json(capsys):
    assert main(["op", str(ROOT / "netlists/diode_clipper.cir"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) >= {"voltages", "currents", "stats"}
    assert set(out["voltages"]) == {"in", "bias", "mid", "out"}
    assert set(out["currents"]) == {"vin", "vb"}
    assert out["stats"]["method"] == "newton"
    assert isinstance(out["stats"]["steps"], int) and out["stats"]["solve_seconds"] > 0


def test_op_relax_json(capsys):
    assert main(["op", str(ROOT / "netlists/diode_clipper.cir"), "--json", "--method", "relax"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["stats"]["method"] == "relax" and out["stats"]["steps"] <= 50


def test_op_table(capsys):
    assert main(["op", str(ROOT / "netlists/wheatstone.cir")]) == 0
    out = capsys.readouterr().out
    assert "node" in out and "v1" in out


def test_dc_json(capsys):
    assert main(["dc", str(ROOT / "netlists/subckt_sweep.cir"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["sweep"]["source"] == "v1" and len(out["sweep"]["values"]) == 11
    assert all(len(v) == 11 for v in out["voltages"].values())
    assert "x1.mid" in out["voltages"]


BAD = {
    "unsupported.cir": ("t\nq1 c b e npn\nr1 c 0 1k\n", ":2:"),
    "floating.cir": ("t\nv1 a 0 1\nr1 a 0 1k\nc1 a b 1u\nr2 b c 1k\n", "no DC path"),
    "vloop.cir": ("t\nv1 a 0 1\nv2 a 0 2\nr1 a 0 1k\n", "v1"),
    "empty.cir": ("", "empty"),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_input_exit_2_one_line(tmp_path, name):
    text, expect = BAD[name]
    deck = tmp_path / name
    deck.write_text(text)
    p = subprocess.run([sys.executable, "-m", "circuitprop.cli", "op", str(deck)],
                       capture_output=True, text=True)
    assert p.returncode == 2
    assert "Traceback" not in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
    assert expect.lower() in p.stderr.lower()
    assert name in p.stderr


def test_missing_and_binary_files(tmp_path, capsys):
    assert main(["op", str(tmp_path / "nope.cir")]) == 2
    assert "nope.cir" in capsys.readouterr().err
    binary = tmp_path / "bin.cir"
    binary.write_bytes(bytes(range(256)) * 4)
    assert main(["op", str(binary)]) == 2
    assert "bin.cir" in capsys.readouterr().err
