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


@pytest.mark.parametrize(
    "dc, expect",
    [
        (".dc v1 0 10 1e-12", "'.dc v1': 10000000000011 points, more than the 1000000"),
        (".dc v1 0 5 1e-3 i1 0 1m 1e-6", "'.dc v1 i1': 5001 x 1001 = 5006001 points"),
    ],
)
def test_dc_sweep_over_the_cap_exits_2_naming_the_dc_line(tmp_path, capsys, dc, expect):
    deck = tmp_path / "sweep.cir"
    deck.write_text(f"sweep\nv1 a 0 1\ni1 0 a 1m\nr1 a 0 1k\n{dc}\n.end\n")
    assert main(["dc", str(deck)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{deck}:5: {expect}")
    assert len(err.strip().splitlines()) == 1


def test_dc_sweep_over_the_memory_cap_exits_2(tmp_path, capsys):
    from circuitprop.builders import random_network

    deck = tmp_path / "big.cir"
    text = random_network(300, seed=2).replace(".op", ".dc v1 0 5 1e-5")
    deck.write_text(text)
    line = text.splitlines().index(".dc v1 0 5 1e-5") + 1
    assert main(["dc", str(deck), "--json"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{deck}:{line}: '.dc v1': 500001 points would need about ")
    assert "more than the 8 GiB a sweep may take" in err and len(err.strip().splitlines()) == 1
