"""ngspice parity: every deck in tests/decks against ngspice's stored answer (NAME.json).

* ``operating_point(path, method=m)`` for m in ("newton", "relax"), and ``dc_sweep(path)`` for
  decks with ``.dc``, within the tolerances of ``TOL`` (about ten times the worst disagreement
  measured over the corpus).
* when ngspice is installed, the stored JSON is checked against a live ngspice run (stale refs).
* decks with more than 200 nodes are marked ``slow``.

circuitprop's API is imported lazily inside the tests so that collection works even before
``operating_point``/``dc_sweep`` exist.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ngspice_tools import compare, have_ngspice, run_ngspice

DECKS_DIR = Path(__file__).resolve().parent / "decks"
SLOW_NODES = 200

#: ``|ours - ngspice| <= rtol |ngspice| + atol``, voltages (V) and currents (A) apart. Measured
#: worst over the corpus (2026-12-01, ngspice 39 at reltol=1e-12): newton 2.7e-11 V at 1.2 V
#: (lattice_8x12_s2_nodiode), 1.3e-15 A at 5 mA; relax 3.5e-10 V at 1.4 V (lattice_10x10_s0),
#: 6.4e-13 A at 54 mA; dc sweeps 6.1e-13 V at 0.69 V, 2.5e-15 A at 4 mA. Each tolerance leaves
#: a margin of 6 to 13 over that worst case.
TOL = {
    "newton": {"rtol_v": 1e-10, "atol_v": 1e-10, "rtol_i": 1e-12, "atol_i": 1e-14},
    # measured worst: dense 1.6e-12 V (lattice_10x10_s1), 2.4e-17 A; coordinate 1.9e-11 V,
    # 1.9e-14 A (own_diode_regions: linear convergence, stopped by its rate estimate)
    "dense": {"rtol_v": 1e-10, "atol_v": 1e-10, "rtol_i": 1e-12, "atol_i": 1e-14},
    "coordinate": {"rtol_v": 2e-10, "atol_v": 2e-10, "rtol_i": 1e-10, "atol_i": 2e-13},
    "relax": {"rtol_v": 1e-9, "atol_v": 1e-9, "rtol_i": 1e-10, "atol_i": 1e-12},
    "dc": {"rtol_v": 1e-11, "atol_v": 1e-12, "rtol_i": 1e-12, "atol_i": 1e-14},
}


def _compare(ours, ref: dict, tol: dict) -> list[str]:
    """``compare`` with separate relative tolerances for voltages (and sweep values) and
    currents."""
    volts = {k: v for k, v in ref.items() if k != "currents"}
    amps = {"currents": ref.get("currents", {})}
    return compare(ours, volts, rtol=tol["rtol_v"], atol_v=tol["atol_v"]) + compare(
        ours, amps, rtol=tol["rtol_i"], atol_i=tol["atol_i"]
    )


def _load_ref(deck: Path) -> dict:
    return json.loads(deck.with_suffix(".json").read_text())


def _deck_params(dc_only: bool = False) -> list:
    params = []
    for deck in sorted(DECKS_DIR.glob("*.cir")):
        ref_path = deck.with_suffix(".json")
        marks = []
        if ref_path.exists():
            ref = _load_ref(deck)
            if dc_only and "dc" not in ref:
                continue
            if len(ref["op"]["voltages"]) > SLOW_NODES:
                marks.append(pytest.mark.slow)
        elif dc_only:
            continue
        params.append(pytest.param(deck, id=deck.stem, marks=marks))
    return params


DECKS = _deck_params()
DC_DECKS = _deck_params(dc_only=True)


def _fmt(problems: list[str], limit: int = 15) -> str:
    head = "\n  ".join(problems[:limit])
    more = f"\n  ... and {len(problems) - limit} more" if len(problems) > limit else ""
    return f"{len(problems)} mismatches:\n  {head}{more}"


def test_corpus_is_complete():
    decks = sorted(DECKS_DIR.glob("*.cir"))
    assert len(decks) >= 60
    missing = [d.name for d in decks if not d.with_suffix(".json").exists()]
    assert not missing, f"no reference JSON (run python tests/make_refs.py): {missing}"


@pytest.mark.parametrize("method", ["newton", "relax"])
@pytest.mark.parametrize("deck", DECKS)
def test_operating_point_matches_ngspice(deck: Path, method: str):
    import circuitprop

    ref = _load_ref(deck)["op"]
    op = circuitprop.operating_point(deck, method=method)
    problems = _compare(op, ref, TOL[method])
    assert not problems, f"{deck.name} [{method}] " + _fmt(problems)


#: the structure-aware solvers on the layered decks and on decks that exercise every device
#: region, current sources, floating source trees and diode series resistances (coordinate
#: descent is not run on lattices: it converges there, in thousands of sweeps)
STRUCTURED = {
    "coordinate": ["drn_10_12_3_single", "drn_24_8_6_6_clamp", "drn_32_20_8",
                   "kup_bridge_rectifier_dc", "kup_current_sources", "own_diode_regions",
                   "own_lib_sections"],
    "dense": ["drn_24_8_6_6_clamp", "drn_32_20_8", "kup_zener_regulator",
              "own_diode_regions", "lattice_10x10_s1"],
}


@pytest.mark.parametrize("method,name", [(m, n) for m, names in STRUCTURED.items()
                                         for n in names])
def test_structured_solvers_match_ngspice(method: str, name: str):
    import circuitprop

    deck = DECKS_DIR / f"{name}.cir"
    ref = _load_ref(deck)["op"]
    op = circuitprop.operating_point(deck, method=method)
    assert op.stats["method"] == method
    problems = _compare(op, ref, TOL[method])
    assert not problems, f"{deck.name} [{method}] " + _fmt(problems)


@pytest.mark.parametrize("deck", DC_DECKS)
def test_dc_sweep_matches_ngspice(deck: Path):
    import circuitprop

    ref = _load_ref(deck)["dc"]
    sweep = circuitprop.dc_sweep(deck)
    problems = _compare(sweep, ref, TOL["dc"])
    assert not problems, f"{deck.name} [dc] " + _fmt(problems)


@pytest.mark.skipif(not have_ngspice(), reason="ngspice not installed")
@pytest.mark.parametrize("deck", DECKS)
def test_stored_reference_is_fresh(deck: Path):
    """The stored JSON still is what ngspice computes (catches edited decks / stale refs)."""
    stored = _load_ref(deck)
    live = run_ngspice(deck, analysis="both")
    # ngspice is deterministic (measured: identical); allow ten times its convergence tolerances
    problems = compare(live["op"], stored["op"], rtol=1e-11, atol_v=1e-14, atol_i=1e-17)
    # keys only in the live run would be missed by compare(): check both directions
    for group in ("voltages", "currents"):
        extra = set(live["op"][group]) - set(stored["op"][group])
        problems += [f"{group}[{k}]: not in stored JSON" for k in sorted(extra)]
    assert ("dc" in live) == ("dc" in stored), "a .dc card was added or removed"
    if "dc" in live:
        problems += compare(live["dc"], stored["dc"], rtol=1e-11, atol_v=1e-14, atol_i=1e-17)
    assert not problems, f"{deck.name}: stale reference, rerun make_refs.py; " + _fmt(problems)
