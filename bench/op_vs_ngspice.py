"""Whole-process `circuitprop op` against `ngspice -b`, side by side, on seeded decks.

    python bench/op_vs_ngspice.py                 # the full table (takes a while: ngspice stalls)
    python bench/op_vs_ngspice.py --quick         # small sizes only
    python bench/op_vs_ngspice.py --markdown docs/benchmarks.md

For each deck: wall time of `circuitprop op DECK --json` (a fresh process: import, parse,
compile and solve all count; the persistent compile cache is disabled unless --warm-cache) and
of `ngspice -n -b` at the tight options (reltol=1e-12 abstol=1e-18 vntol=1e-15), capped at
--ngspice-timeout seconds; the largest relative disagreement over all node voltages; the
Newton and relaxation step counts and solve times reported by `op --json`. Then a 256-point
batched sweep (one vmapped solve) against 256 sequential points in ngspice's own `.dc`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from circuitprop.builders import lattice, random_network  # noqa: E402
from circuitprop.export import NGSPICE_TIGHT_OPTIONS, _parse_raw  # noqa: E402


def run_circuitprop(deck: Path, method: str, warm: bool) -> tuple[float, dict]:
    env = dict(os.environ)
    if not warm:
        env["CIRCUITPROP_CACHE"] = "0"
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "circuitprop.cli", "op", str(deck), "--json",
                        "--method", method], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError(f"circuitprop failed on {deck}: {p.stderr.strip()}")
    return wall, json.loads(p.stdout)


def run_ngspice(deck: Path, timeout: float, analysis: str = ".op"):
    """Returns (wall seconds or None on time-out, voltages dict or None)."""
    text = deck.read_text()
    lines = text.splitlines()
    end = next((k for k, ln in enumerate(lines) if ln.strip().lower() == ".end"), len(lines))
    body = [ln for ln in lines[:end] if ln.strip().lower() != ".op"]
    deck_text = "\n".join(body + [NGSPICE_TIGHT_OPTIONS, analysis, ".end"]) + "\n"
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp) / "deck.cir"
        d.write_text(deck_text)
        t0 = time.perf_counter()
        try:
            subprocess.run(["ngspice", "-n", "-b", "-r", "out.raw", "deck.cir"], cwd=tmp,
                           capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return None, None
        wall = time.perf_counter() - t0
        raw = Path(tmp) / "out.raw"
        if not raw.exists():
            return wall, None
        plots = _parse_raw(raw.read_text())
        name, variables, rows = plots[-1]
        volts = {}
        for k, var in enumerate(variables):
            if var.startswith("v(") and var != "v(v-sweep)":
                volts[var[2:-1]] = [r[k] for r in rows] if len(rows) > 1 else rows[0][k]
        return wall, volts


def max_rel(ours: dict, ref: dict | None) -> float | None:
    if not ref:
        return None
    worst = 0.0
    for k, r in ref.items():
        a = ours[k]
        worst = max(worst, abs(a - r) / (abs(r) + 1e-9 / 1e-6))
    return worst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--targets", action="store_true",
                    help="only the two speed-target decks: random 2000 and lattice 150x150")
    ap.add_argument("--ngspice-timeout", type=float, default=120.0)
    ap.add_argument("--warm-cache", action="store_true")
    ap.add_argument("--markdown", type=Path)
    args = ap.parse_args()
    have_ng = shutil.which("ngspice") is not None
    if args.targets:
        decks = [("random 2000", lambda: random_network(2000, seed=1)),
                 ("random 2000, degree 10", lambda: random_network(2000, seed=1, degree=10)),
                 ("lattice 150x150", lambda: lattice(150, 150, seed=1))]
    elif args.quick:
        decks = [("random 1000", lambda: random_network(1000, seed=1)),
                 ("random 2000", lambda: random_network(2000, seed=1)),
                 ("lattice 50x50", lambda: lattice(50, 50, seed=1))]
    else:
        decks = [(f"random {n}", (lambda n=n: random_network(n, seed=1)))
                 for n in (1000, 2000, 5000, 10000)]
        decks += [(f"random {n}, degree 10", (lambda n=n: random_network(n, seed=1, degree=10)))
                  for n in (1000, 2000)]
        decks += [(f"lattice {n}x{n}", (lambda n=n: lattice(n, n, seed=1)))
                  for n in (50, 100, 150, 200)]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, make in decks:
            deck = Path(tmp) / (name.replace(" ", "_") + ".cir")
            deck.write_text(make())
            cp_wall, op = run_circuitprop(deck, "newton", args.warm_cache)
            rx_wall, rx = run_circuitprop(deck, "relax", args.warm_cache)
            ng_wall, ng_v = run_ngspice(deck, args.ngspice_timeout) if have_ng else (None, None)
            err = max_rel(op["voltages"], ng_v)
            rx_err = max_rel(rx["voltages"], {k: v for k, v in op["voltages"].items()})
            row = {
                "deck": name, "nodes": len(op["voltages"]),
                "circuitprop_s": cp_wall, "ngspice_s": ng_wall,
                "speedup": (ng_wall / cp_wall) if ng_wall else None,
                "max_rel_err_vs_ngspice": err,
                "newton_steps": op["stats"]["steps"], "newton_solve_s": op["stats"]["solve_seconds"],
                "relax_steps": rx["stats"]["steps"], "relax_solve_s": rx["stats"]["solve_seconds"],
                "relax_over_newton": rx["stats"]["solve_seconds"] / max(op["stats"]["solve_seconds"], 1e-9),
                "relax_vs_newton_rel": rx_err,
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    # batched throughput
    sweep = None
    if not args.targets:
        with tempfile.TemporaryDirectory() as tmp:
            deck_text = random_network(500, seed=3)
            first_v = next(ln.split()[0] for ln in deck_text.splitlines()[1:] if ln.lower().startswith("v"))
            lines = [ln for ln in deck_text.splitlines() if ln.strip().lower() not in (".op", ".end")]
            sw = Path(tmp) / "sweep.cir"
            sw.write_text("\n".join(lines + [f".dc {first_v} 0 2.55 0.01", ".end"]) + "\n")
            env = dict(os.environ, CIRCUITPROP_CACHE="0")
            t0 = time.perf_counter()
            p = subprocess.run([sys.executable, "-m", "circuitprop.cli", "dc", str(sw), "--json"],
                               capture_output=True, text=True, env=env)
            cp = time.perf_counter() - t0
            res = json.loads(p.stdout) if p.returncode == 0 else None
            ng = run_ngspice(sw, args.ngspice_timeout, analysis="") if have_ng else (None, None)
            sweep = {"deck": "random 500, 256-point .dc",
                     "points": len(res["sweep"]["values"]) if res else None,
                     "circuitprop_s": cp,
                     "circuitprop_solve_s": res["stats"]["solve_seconds"] if res else None,
                     "ngspice_s": ng[0], "speedup": (ng[0] / cp) if ng[0] else None}
            print(json.dumps(sweep), flush=True)
    header = ("| deck | nodes | circuitprop op (s) | ngspice -b (s) | ratio | max rel. err | "
              "Newton steps / solve (s) | relax steps / solve (s) | relax/Newton time |")
    out = [header, "|" + "---|" * 9]
    for r in rows:
        ng = f"{r['ngspice_s']:.2f}" if r["ngspice_s"] else f"> {args.ngspice_timeout:.0f} (capped)"
        ratio = f"{r['speedup']:.1f}x" if r["speedup"] else (
            f"> {args.ngspice_timeout / r['circuitprop_s']:.0f}x" if have_ng else "n/a")
        err = f"{r['max_rel_err_vs_ngspice']:.1e}" if r["max_rel_err_vs_ngspice"] is not None else "n/a"
        out.append(f"| {r['deck']} | {r['nodes']} | {r['circuitprop_s']:.2f} | {ng} | {ratio} | {err} | "
                   f"{r['newton_steps']} / {r['newton_solve_s']:.3f} | {r['relax_steps']} / "
                   f"{r['relax_solve_s']:.3f} | {r['relax_over_newton']:.1f}x |")
    if sweep:
        ng = f"{sweep['ngspice_s']:.2f}" if sweep["ngspice_s"] else "n/a"
        out.append("")
        out.append(f"Batched: {sweep['deck']}: circuitprop dc {sweep['circuitprop_s']:.2f} s whole "
                   f"process ({sweep['circuitprop_solve_s']:.3f} s solve), ngspice {ng} s.")
    text = "\n".join(out)
    print(text)
    if args.markdown:
        args.markdown.write_text("# Benchmarks\n\nProduced by `python bench/op_vs_ngspice.py`.\n\n"
                                 + text + "\n")


if __name__ == "__main__":
    main()
