"""ngspice raw files: ``op --raw`` / ``dc --raw``, :func:`circuitprop.read_raw`,
:func:`circuitprop.write_raw`.

* our files, read by spicelib and by ``read_raw``, hold exactly the ``--json`` values, with
  ngspice's variable names, types and order for the same deck (live ngspice run when it is
  installed; values within test_parity's tolerances);
* ``read_raw`` reads ngspice's binary and ASCII files (live) and the committed
  ``tests/raw/own_dc_vsweep_ngspice39.raw.bin``: ``ngspice -n -b -r FILE`` (ngspice 39) on
  ``tests/decks/own_dc_vsweep.cir`` with ``.options reltol=1e-12 abstol=1e-18 vntol=1e-15``
  and ``.op`` added, so a DC plot then an operating point plot;
* bad files raise ``CircuitpropError`` naming the file and what is wrong.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
from ngspice_tools import NGSPICE, TIGHT_OPTIONS, _prepare_deck, have_ngspice
from test_parity import TOL

import circuitprop
from circuitprop import CircuitpropError, read_raw, write_raw
from circuitprop._api import OperatingPoint
from circuitprop._raw import branch_order, op_variables
from circuitprop.cli import main

ROOT = Path(__file__).resolve().parents[1]
DECKS = ROOT / "tests" / "decks"
COMMITTED = ROOT / "tests" / "raw" / "own_dc_vsweep_ngspice39.raw.bin"

needs_ngspice = pytest.mark.skipif(not have_ngspice(), reason="ngspice not installed")

#: (deck, command): plain and diode decks, every kind of .dc sweep variable, subcircuits
#: with E/F/H/L (ngspice's branch order), controlled sources
CASES = [
    ("kup_divider", "op"),
    ("own_diode_regions", "op"),
    ("own_controlled_sources", "op"),
    ("own_subckt_mixed", "op"),
    ("own_subckt_nested", "op"),
    ("own_dc_vsweep", "dc"),
    ("own_dc_isweep", "dc"),
    ("own_dc_rsweep", "dc"),
    ("own_dc_two_sources", "dc"),
]


def ngspice_raw(deck: Path, out: Path, *, analysis: str, ascii_: bool = False) -> None:
    """Run ngspice on a deck (copied beside it, for ``.include``) with test_parity's tight
    options, writing a binary (or ASCII) raw file."""
    text = _prepare_deck(deck.read_text(), analysis)
    if not ascii_:
        text = text.replace(TIGHT_OPTIONS, TIGHT_OPTIONS.replace("filetype=ascii ", ""))
    fd, name = tempfile.mkstemp(prefix=f".{deck.stem}.", suffix=".tmp.cir", dir=deck.parent)
    os.close(fd)
    try:
        Path(name).write_text(text)
        proc = subprocess.run([NGSPICE, "-n", "-b", "-r", str(out), name], cwd=deck.parent,
                              capture_output=True, text=True, timeout=300)
    finally:
        os.unlink(name)
    assert proc.returncode == 0 and out.is_file(), proc.stdout + proc.stderr


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    rc = main(args)
    out = capsys.readouterr()
    return rc, out.out, out.err


def spicelib_read(path: Path):
    spicelib = pytest.importorskip("spicelib")
    return spicelib.RawRead(str(path), dialect="ngspice", verbose=False)


def json_columns(cmd: str, out: dict) -> dict[str, list[float]]:
    """The ``--json`` result by raw variable name."""
    cols: dict[str, list[float]] = {}
    if cmd == "dc":
        src = out["sweep"]["source"][0]
        key = {"v": "v(v-sweep)", "i": "i(i-sweep)", "r": "res-sweep"}[src]
        cols[key] = out["sweep"]["values"]
    for n, v in out["voltages"].items():
        cols[f"v({n})"] = v if cmd == "dc" else [v]
    for n, v in out["currents"].items():
        cols[f"i({n})"] = v if cmd == "dc" else [v]
    return cols


# --------------------------------------------------------------------------- our files


@pytest.mark.parametrize("name,cmd", CASES)
def test_cli_raw_matches_json_and_ngspice(tmp_path, capsys, name, cmd):
    deck = DECKS / f"{name}.cir"
    ours = tmp_path / "ours.raw"
    rc, stdout, _ = run_cli([cmd, str(deck), "--json", "--raw", str(ours)], capsys)
    assert rc == 0
    cols = json_columns(cmd, json.loads(stdout))

    raw = read_raw(ours)
    assert raw.plotname == ("Operating Point" if cmd == "op" else "DC transfer characteristic")
    assert raw.title == circuitprop.load(deck).title
    assert sorted(raw.names) == sorted(cols)
    for var, col in cols.items():  # float64 round trip through JSON and the raw file
        assert raw[var].tolist() == col, var

    if have_ngspice():  # the names, types, order and values ngspice writes for the deck
        compare_with_ngspice(tmp_path, deck, cmd, raw)
    # spicelib reads the same numbers (no Command: line, as ngspice 39: dialect given)
    sl = spicelib_read(ours)
    assert sl.get_trace_names() == raw.names
    for var, kind in raw.variables:
        trace = sl.get_trace(var)
        assert trace.whattype == kind
        assert np.asarray(trace.get_wave()).tolist() == cols[var], var


def compare_with_ngspice(tmp_path: Path, deck: Path, cmd: str, raw) -> None:
    ref_path = tmp_path / "ngspice.raw"
    ngspice_raw(deck, ref_path, analysis=cmd)
    ref = read_raw(ref_path, plot="dc transfer" if cmd == "dc" else "operating point")
    assert raw.variables == ref.variables  # names, types and order
    assert raw.values.shape == ref.values.shape
    tol = TOL["newton" if cmd == "op" else "dc"]
    for k, (var, kind) in enumerate(ref.variables):
        if kind == "current":
            rtol, atol = tol["rtol_i"], tol["atol_i"]
        else:
            rtol, atol = tol["rtol_v"], tol["atol_v"]
        if k == 0 and cmd == "dc":
            rtol, atol = 1e-12, 0.0
        np.testing.assert_allclose(raw.values[:, k], ref.values[:, k], rtol=rtol, atol=atol,
                                   err_msg=f"{deck.stem}: {var}")


def test_cli_raw_prints_the_normal_output_too(tmp_path, capsys):
    out = tmp_path / "div.raw"
    rc, stdout, _ = run_cli(["op", str(DECKS / "kup_divider.cir"), "--raw", str(out)], capsys)
    assert rc == 0 and "voltage (V)" in stdout and out.is_file()
    rc, stdout, _ = run_cli(["dc", str(DECKS / "own_dc_rsweep.cir"), "--raw", str(out)],
                            capsys)
    assert rc == 0 and "rload" in stdout.splitlines()[0]
    assert read_raw(out).values.shape == (15, 4)


@pytest.mark.parametrize("cmd", ["op", "dc"])
def test_cli_raw_into_missing_directory_exits_2(tmp_path, capsys, cmd):
    target = tmp_path / "no" / "such" / "dir" / "out.raw"
    rc, _, err = run_cli([cmd, str(DECKS / "own_dc_vsweep.cir"), "--raw", str(target)], capsys)
    assert rc == 2
    assert str(target) in err and "cannot write" in err
    assert len(err.strip().splitlines()) == 1


def test_header_is_ngspice_layout(tmp_path):
    out = tmp_path / "x.raw"
    write_raw(out, title="t  with\nnewline", plotname="Operating Point",
              variables=[("v(1)", "voltage"), ("i(v1)", "current")],
              values=[[1.5, -2.0]], date="Wed Dec  2 01:56:22  2026")
    data = out.read_bytes()
    head, _, body = data.partition(b"Binary:\n")
    assert head.decode() == (
        "Title: t  with newline\n"
        "Date: Wed Dec  2 01:56:22  2026\n"
        "Plotname: Operating Point\n"
        "Flags: real\n"
        "No. Variables: 2\n"
        "No. Points: 1       \n"
        "Variables:\n"
        "\t0\tv(1)\tvoltage\n"
        "\t1\ti(v1)\tcurrent\n")
    assert body == np.array([1.5, -2.0], dtype="<f8").tobytes()


def test_default_date_is_ngspice_format(tmp_path):
    out = tmp_path / "x.raw"
    write_raw(out, title="t", plotname="p", variables=[("time", "time")], values=np.zeros((0, 1)))
    raw = read_raw(out)
    assert len(raw.date) == 25 and raw.date[19:21] == "  " and raw.date[-4:].isdigit()
    assert raw.values.shape == (0, 1)


def test_round_trip_is_exact(tmp_path):
    rng = np.random.default_rng(0)
    values = rng.standard_normal((37, 4)) * 10.0 ** rng.integers(-300, 300, (37, 4))
    values[0] = [np.nan, np.inf, -0.0, 5e-324]
    variables = [("time", "time"), ("v(x1.mid)", "voltage"), ("v(2)", "voltage"),
                 ("i(v.x1.vm)", "current")]
    out = tmp_path / "tran.raw"
    write_raw(out, title="Transient of something", plotname="Transient Analysis",
              variables=variables, values=values, date="today")
    raw = read_raw(out)
    assert (raw.title, raw.date, raw.plotname, raw.flags) == (
        "Transient of something", "today", "Transient Analysis", "real")
    assert raw.variables == variables
    assert raw.values.dtype == np.float64
    assert raw.values.tobytes() == values.tobytes()  # bit for bit, nan and -0.0 included
    assert raw["V(X1.MID)"].tobytes() == values[:, 1].tobytes()
    assert "I(v.x1.vm)" in raw and "v(3)" not in raw
    with pytest.raises(KeyError, match="v\\(3\\)"):
        raw["v(3)"]
    sl = spicelib_read(out)
    assert np.asarray(sl.get_trace("v(2)").get_wave()).tobytes() == values[:, 2].tobytes()


def test_write_raw_refuses_misfits(tmp_path):
    out = tmp_path / "x.raw"
    with pytest.raises(ValueError, match="points, 2"):
        write_raw(out, title="t", plotname="p", variables=[("a", "voltage"), ("b", "voltage")],
                  values=np.zeros((3, 3)))
    with pytest.raises(ValueError, match="white space"):
        write_raw(out, title="t", plotname="p", variables=[("v(a b)", "voltage")],
                  values=np.zeros((1, 1)))


def test_branch_order_is_ngspices():
    """ngspice: F then H (own branch, then the controlling one), L, E, V, each type from the
    last element to the first (read off ngspice 39's raw files)."""
    nl = circuitprop.load(DECKS / "own_controlled_sources.cir")
    assert branch_order(nl) == ["vs2", "vsense", "h1", "e1", "v1"]
    nl = circuitprop.load(DECKS / "own_subckt_mixed.cir")
    assert branch_order(nl) == ["v.x2.vm", "v.x1.vm", "h.x2.h1", "h.x1.h1", "l.x2.l1",
                                "l.x1.l1", "e.x2.e1", "e.x1.e1", "v1"]


@needs_ngspice
@pytest.mark.parametrize("deck", sorted(DECKS.glob("*.cir")), ids=lambda p: p.stem)
def test_variable_names_match_ngspice_on_every_deck(tmp_path, deck):
    """Node and branch names and their order, without solving (values are zeros)."""
    ngspice_raw(deck, tmp_path / "ng.raw", analysis="op")
    ref = read_raw(tmp_path / "ng.raw", plot="operating point")
    _, info = circuitprop.prepare(deck)
    op = OperatingPoint({info.nodes[k]: 0.0 for k in info.reported},
                        {n: 0.0 for n in info.currents}, {})
    variables, _ = op_variables(op, info.netlist)
    assert variables == ref.variables


# --------------------------------------------------------------------------- ngspice's files


def test_committed_ngspice_file():
    dc = read_raw(COMMITTED)
    assert dc.plotname == "DC transfer characteristic" and dc.flags == "real"
    assert dc.title == "own: .dc sweep of a v source through a diode network"
    assert dc.variables == [("v(v-sweep)", "voltage"), ("v(1)", "voltage"), ("v(2)", "voltage"),
                            ("v(3)", "voltage"), ("i(v1)", "current")]
    op = read_raw(COMMITTED, plot=1)
    assert op is not dc and op.plotname == "Operating Point" and op.values.shape == (1, 4)
    assert read_raw(COMMITTED, plot="OPERATING").variables == op.variables
    assert read_raw(COMMITTED, plot=-1).plotname == "Operating Point"

    # the stored ngspice reference (ASCII, 16 significant digits) for the same deck
    ref = json.loads((DECKS / "own_dc_vsweep.json").read_text())
    np.testing.assert_allclose(dc["v(v-sweep)"], ref["dc"]["sweep"]["values"], rtol=0)
    for n, col in ref["dc"]["voltages"].items():
        np.testing.assert_allclose(dc[f"v({n})"], col, rtol=1e-14, atol=1e-300)
    np.testing.assert_allclose(dc["i(v1)"], ref["dc"]["currents"]["v1"], rtol=1e-14,
                               atol=1e-300)

    # ours for the same deck, within test_parity's tolerance
    ours = circuitprop.dc_sweep(DECKS / "own_dc_vsweep.cir")
    tol = TOL["dc"]
    for n, col in ours.voltages.items():
        np.testing.assert_allclose(col, dc[f"v({n})"], rtol=tol["rtol_v"], atol=tol["atol_v"])
    np.testing.assert_allclose(ours.currents["v1"], dc["i(v1)"], rtol=tol["rtol_i"],
                               atol=tol["atol_i"])

    sl = spicelib_read(COMMITTED)
    for var in dc.names:
        assert np.asarray(sl.get_trace(var).get_wave()).tobytes() == dc[var].tobytes()


@needs_ngspice
@pytest.mark.parametrize("name", ["own_dc_two_sources", "own_subckt_nested"])
def test_ngspice_binary_and_ascii(tmp_path, name):
    deck = DECKS / f"{name}.cir"
    analysis = "dc" if name.startswith("own_dc") else "op"
    ngspice_raw(deck, tmp_path / "b.raw", analysis=analysis)
    ngspice_raw(deck, tmp_path / "a.raw", analysis=analysis, ascii_=True)
    b, a = read_raw(tmp_path / "b.raw"), read_raw(tmp_path / "a.raw")
    assert (b.title, b.plotname, b.variables) == (a.title, a.plotname, a.variables)
    assert b.values.shape == a.values.shape and b.values.shape[0] >= 1
    # ASCII carries 16 significant digits
    np.testing.assert_allclose(a.values, b.values, rtol=2e-15, atol=1e-300)
    for path, values in (("b.raw", b.values), ("a.raw", a.values)):
        sl = spicelib_read(tmp_path / path)
        got = np.stack([np.asarray(sl.get_trace(v).get_wave()) for v in b.names], axis=1)
        assert got.tobytes() == values.tobytes(), path


# --------------------------------------------------------------------------- bad files


def _good(tmp_path) -> bytes:
    out = tmp_path / "good.raw"
    write_raw(out, title="t", plotname="DC transfer characteristic",
              variables=[("v(v-sweep)", "voltage"), ("v(1)", "voltage"), ("i(v1)", "current")],
              values=np.arange(12.0).reshape(4, 3), date="today")
    return out.read_bytes()


def _ascii_good() -> str:
    return ("Title: t\nDate: today\nPlotname: Operating Point\nFlags: real\n"
            "No. Variables: 2\nNo. Points: 2       \nVariables:\n\t0\tv(1)\tvoltage\n"
            "\t1\ti(v1)\tcurrent\nValues:\n0\t\t1.0e+00\n\t2.0e+00\n1\t\t3.0e+00\n\t4.0e+00\n")


def test_ascii_reader_on_a_small_file(tmp_path):
    p = tmp_path / "a.raw"
    p.write_text(_ascii_good())
    raw = read_raw(p)
    assert raw.values.tolist() == [[1.0, 2.0], [3.0, 4.0]]


BAD = {
    "empty": (lambda good: b"", "empty"),
    "garbage header": (lambda good: b"\x00\xffhello world\nmore\n", "expected 'Title:'"),
    "png": (lambda good: b"\x89PNG\r\n\x1a\n" + bytes(range(256)), "expected 'Title:'"),
    "unknown header line": (lambda good: good.replace(b"Flags: real\n",
                                                      b"Flags: real\nFoo: bar\n"),
                            "unknown header line 'Foo: bar'"),
    "truncated data": (lambda good: good[:-5], "truncated"),
    "truncated header": (lambda good: good[:good.index(b"\t1\tv(1)")], "truncated"),
    "more points declared": (lambda good: good.replace(b"No. Points: 4 ", b"No. Points: 5 "),
                             "declares 5 points"),
    "fewer points declared": (lambda good: good.replace(b"No. Points: 4 ", b"No. Points: 3 "),
                              "wrong point count"),
    "more variables declared": (lambda good: good.replace(b"Variables: 3", b"Variables: 4"),
                                "expected variable 3"),
    "fewer variables declared": (lambda good: good.replace(b"Variables: 3", b"Variables: 2"),
                                 "wrong variable count"),
    "count not a number": (lambda good: good.replace(b"No. Points: 4 ", b"No. Points: x "),
                           "not a count"),
    "no plotname": (lambda good: good.replace(b"Plotname: DC transfer characteristic\n", b""),
                    "no 'Plotname:'"),
    "ascii truncated": (lambda good: _ascii_good()[:-9].encode(), "truncated"),
    "ascii wrong count": (lambda good: _ascii_good().replace("Points: 2", "Points: 3").encode(),
                          "truncated"),
    "ascii bad number": (lambda good: _ascii_good().replace("3.0e+00", "3.0e+0x").encode(),
                         "point 1"),
    "ascii bad index": (lambda good: _ascii_good().replace("1\t\t3", "7\t\t3").encode(),
                        "point 1"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_files_name_the_file_and_the_problem(tmp_path, case):
    make, expect = BAD[case]
    p = tmp_path / "bad.raw"
    p.write_bytes(make(_good(tmp_path)))
    with pytest.raises(CircuitpropError) as err:
        read_raw(p)
    assert str(p) in str(err.value) and expect in str(err.value), str(err.value)
    assert "\n" not in str(err.value)


def test_missing_file_and_missing_plot(tmp_path):
    with pytest.raises(CircuitpropError, match="cannot read"):
        read_raw(tmp_path / "nope.raw")
    p = tmp_path / "good.raw"
    p.write_bytes(_good(tmp_path))
    with pytest.raises(CircuitpropError, match="no plot 'transient'.*'DC transfer"):
        read_raw(p, plot="transient")
    with pytest.raises(CircuitpropError, match="no plot 1: the file has 1"):
        read_raw(p, plot=1)


def test_two_plots_concatenated(tmp_path):
    good = _good(tmp_path)
    p = tmp_path / "two.raw"
    p.write_bytes(good + _ascii_good().encode())
    assert read_raw(p, plot=1).values.tolist() == [[1.0, 2.0], [3.0, 4.0]]
    assert read_raw(p).values.shape == (4, 3)


@needs_ngspice
def test_ngspice_reads_our_file(tmp_path, capsys):
    """ngspice's own reader (``load``) accepts our file and prints the same values."""
    ours = tmp_path / "ours.raw"
    assert main(["op", str(DECKS / "kup_divider.cir"), "--raw", str(ours)]) == 0
    capsys.readouterr()
    script = tmp_path / "load.sp"
    script.write_text(f"* load\n.control\nload {ours}\nprint v(2) i(v1)\n.endc\n.end\n")
    proc = subprocess.run([NGSPICE, "-n", "-b", str(script)], capture_output=True, text=True,
                          timeout=60)
    raw = read_raw(ours)
    text = proc.stdout
    assert "Error" not in text + proc.stderr, text + proc.stderr
    printed = dict(line.replace(" ", "").split("=") for line in text.splitlines()
                   if line.startswith(("v(2) =", "i(v1) =")))
    assert set(printed) == {"v(2)", "i(v1)"}, text
    for var, value in printed.items():  # ngspice prints six or seven digits
        assert float(value) == pytest.approx(raw[var][0], rel=1e-5)
