#!/usr/bin/env python3
"""Regenerate the ngspice reference answers of the parity corpus (tests/decks/*.json).

    python tests/make_refs.py                 # every deck
    python tests/make_refs.py --only 'own_*'  # decks whose stem matches a glob
    python tests/make_refs.py --builders      # also rewrite the builder-generated decks
    python tests/make_refs.py --check         # compare with the stored JSON, write nothing

Each ``NAME.cir`` gets ``NAME.json`` (format in tests/decks/README.md)::

    {"deck": "NAME.cir", "ngspice": "ngspice-39", "options": ".options ...",
     "op": {"voltages": {...}, "currents": {...}},
     "dc": {"sweep": {"source", "values"[, "source2"]}, "voltages": {...}, "currents": {...}}}

``"dc"`` is present only for decks with a ``.dc`` card. The builder-generated decks
(``rand_*``, ``lattice_*``) are written from ``circuitprop.builders`` when missing (or with
``--builders``); they are committed so that the corpus does not move if the builders change.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import sys
import time
from pathlib import Path

TESTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = TESTS_DIR.parent
DECKS_DIR = TESTS_DIR / "decks"
for p in (TESTS_DIR, REPO_ROOT):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from ngspice_tools import (  # noqa: E402
    TIGHT_OPTIONS,
    NgspiceError,
    compare,
    have_ngspice,
    load_builders,
    ngspice_version,
    run_ngspice,
)

# stem -> (builder name, args, kwargs)
BUILDER_DECKS: dict[str, tuple[str, tuple, dict]] = {}
for _n, _seeds in ((20, (0, 1, 2)), (50, (0, 1)), (100, (0, 1)), (200, (0, 1)), (500, (0, 1))):
    for _s in _seeds:
        BUILDER_DECKS[f"rand_n{_n}_s{_s}"] = ("random_network", (_n,), {"seed": _s})
BUILDER_DECKS["rand_n50_s3_nodiode"] = ("random_network", (50,), {"seed": 3, "diodes": False})
BUILDER_DECKS["rand_n100_s4_deg6_src3"] = (
    "random_network", (100,), {"seed": 4, "degree": 6, "sources": 3, "diode_fraction": 0.25})
for _nx, _ny, _s in ((5, 5, 0), (5, 5, 1), (10, 10, 0), (10, 10, 1), (20, 20, 0)):
    BUILDER_DECKS[f"lattice_{_nx}x{_ny}_s{_s}"] = ("lattice", (_nx, _ny), {"seed": _s})
BUILDER_DECKS["lattice_8x12_s2_nodiode"] = ("lattice", (8, 12), {"seed": 2, "diodes": False})


def builder_text(stem: str) -> str:
    builders = load_builders()
    name, args, kwargs = BUILDER_DECKS[stem]
    return getattr(builders, name)(*args, **kwargs)


def write_builder_decks(force: bool, only: str | None) -> None:
    for stem in BUILDER_DECKS:
        if only and not fnmatch.fnmatch(stem, only):
            continue
        path = DECKS_DIR / f"{stem}.cir"
        if force or not path.exists():
            path.write_text(builder_text(stem))
            print(f"wrote {path.relative_to(REPO_ROOT)}")


def reference(deck: Path, version: str, timeout: float = 600.0) -> dict:
    res = run_ngspice(deck, analysis="both", timeout=timeout)
    out = {"deck": deck.name, "ngspice": version, "options": TIGHT_OPTIONS, "op": res["op"]}
    if "dc" in res:
        out["dc"] = res["dc"]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--only", metavar="GLOB", help="only decks whose stem (or file name) matches")
    ap.add_argument("--builders", action="store_true", help="rewrite builder-generated decks")
    ap.add_argument("--check", action="store_true", help="compare with stored JSON, write nothing")
    args = ap.parse_args(argv)

    if not have_ngspice():
        print("ngspice not found on PATH", file=sys.stderr)
        return 2
    if not args.check:
        write_builder_decks(args.builders, args.only)
    version = ngspice_version()
    decks = sorted(DECKS_DIR.glob("*.cir"))
    if args.only:
        decks = [d for d in decks
                 if fnmatch.fnmatch(d.stem, args.only) or fnmatch.fnmatch(d.name, args.only)]
    failures = 0
    for deck in decks:
        t0 = time.perf_counter()
        try:
            ref = reference(deck, version)
        except NgspiceError as exc:
            failures += 1
            print(f"FAIL {deck.name}: {str(exc).splitlines()[0]}")
            continue
        dt = time.perf_counter() - t0
        target = deck.with_suffix(".json")
        if args.check:
            if not target.exists():
                failures += 1
                print(f"MISSING {target.name}")
                continue
            stored = json.loads(target.read_text())
            probs = compare(ref["op"], stored["op"], rtol=1e-9, atol_v=1e-12, atol_i=1e-15)
            if "dc" in stored or "dc" in ref:
                probs += compare(ref.get("dc", {}), stored.get("dc", {}), rtol=1e-9,
                                 atol_v=1e-12, atol_i=1e-15)
            print(f"{'ok  ' if not probs else 'STALE'} {deck.name} ({dt:.2f}s)")
            for p in probs[:5]:
                print(f"      {p}")
            failures += bool(probs)
        else:
            target.write_text(json.dumps(ref, indent=1) + "\n")
            nv = len(ref["op"]["voltages"])
            extra = " +dc" if "dc" in ref else ""
            print(f"ok {deck.name}: {nv} nodes{extra} ({dt:.2f}s)")
    print(f"{len(decks) - failures}/{len(decks)} decks ok")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
