#!/usr/bin/env python3
"""Regenerate ngspice's answers for the transient decks (tests/tran_decks/NAME.json).

    python tests/make_tran_refs.py            # every deck
    python tests/make_tran_refs.py --check    # compare with the stored JSON, write nothing

Each ``NAME.cir`` (with its own ``.tran`` card) gets ``NAME.json``; the decks of
tests/settle_decks are run as a physical settle starts (:func:`settle_deck`)::

    {"deck": "NAME.cir", "ngspice": "ngspice-39", "options": ".options ...",
     "tran": {"time": [...], "voltages": {node: [...]}, "currents": {vsource: [...]}}}

at ngspice's own time points, run with ``ngspice_tools.TRAN_OPTIONS``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

TESTS_DIR = Path(__file__).resolve().parent
DECKS = TESTS_DIR / "tran_decks"
SETTLE = TESTS_DIR / "settle_decks"
sys.path.insert(0, str(TESTS_DIR))
sys.path.insert(0, str(TESTS_DIR.parent))

from ngspice_tools import TRAN_OPTIONS, ngspice_version, run_ngspice_tran  # noqa: E402


def settle_deck(deck: Path) -> str:
    """The settle deck as ngspice runs it: the node capacitance of a physical settle
    (``circuitprop._transient.NODE_CAP``) on every node not held by a source, and the
    deck's ``.tran … uic`` (every node from 0 V)."""
    from circuitprop import load
    from circuitprop._transient import NODE_CAP, source_held_nodes

    net = load(deck)
    held = source_held_nodes(net)
    caps = [f"cnode{k} {n} 0 {NODE_CAP!r}" for k, n in enumerate(net.nodes()) if n not in held]
    lines = deck.read_text().splitlines()
    end = max(i for i, line in enumerate(lines) if line.strip().lower() == ".end")
    return "\n".join(lines[:end] + caps + lines[end:]) + "\n"


def reference(deck: Path, settle: bool = False) -> dict:
    if settle:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / deck.name
            path.write_text(settle_deck(deck))
            tran = run_ngspice_tran(path)
    else:
        tran = run_ngspice_tran(deck)
    return {"deck": deck.name, "ngspice": ngspice_version(), "options": TRAN_OPTIONS,
            "tran": tran}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true")
    a = p.parse_args(argv)
    stale = 0
    decks = [(d, False) for d in sorted(DECKS.glob("*.cir"))]
    decks += [(d, True) for d in sorted(SETTLE.glob("*.cir"))]
    for deck, settle in decks:
        ref = reference(deck, settle)
        path = deck.with_suffix(".json")
        if a.check:
            old = json.loads(path.read_text()) if path.exists() else None
            if old != json.loads(json.dumps(ref)):
                print(f"stale: {path.name}")
                stale += 1
            continue
        path.write_text(json.dumps(ref, indent=1) + "\n")
        print(f"wrote {path.name}: {len(ref['tran']['time'])} points")
    return 1 if stale else 0


if __name__ == "__main__":
    raise SystemExit(main())
