"""Holomorphic EP against centered EP at large nudges, on the bias14 diode circuit.

For every stored sample of ``tests/learn_decks/bias14`` (14 trainable conductances, clipping
diodes) it runs ``circuitprop gradcheck`` with ``centered``, ``holomorphic-4`` and
``holomorphic-8`` at β = 1e-4 and 1e-3 S, and compares each estimate with ngspice's central
finite differences (``tests/learn_decks/bias14_fd.json``) and with the exact gradient.
Prints a table and writes it into ``docs/learning-rules.md`` (its own section, kept by
``bench/rules_compare.py``).

    python bench/holomorphic.py            # all samples, writes the docs section
    python bench/holomorphic.py --no-write
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from rules_compare import HOLO_BEGIN, HOLO_END  # noqa: E402

EXP = REPO / "tests" / "learn_decks" / "bias14.toml"
REF = REPO / "tests" / "learn_decks" / "bias14_fd.json"
RUNS = [("centered", 1e-4), ("holomorphic-4", 1e-4), ("holomorphic-8", 1e-4),
        ("centered", 1e-3), ("holomorphic-8", 1e-3)]


def rel(a, b) -> float:
    a, b = np.asarray(a), np.asarray(b)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--no-write", action="store_true", help="print only")
    p.add_argument("--out", default=str(REPO / "docs" / "learning-rules.md"))
    args = p.parse_args(argv)
    from tqdm import tqdm

    from circuitprop.learn import cosine, gradcheck

    ref = json.loads(REF.read_text())
    n = len(ref["samples"])
    rows = []
    t_all = time.perf_counter()
    with tqdm(total=len(RUNS) * n, desc="gradcheck", file=sys.stderr) as bar:
        for est, beta in RUNS:
            cos, err_fd, err_ex, secs = [], [], [], []
            for k in range(n):
                t0 = time.perf_counter()
                g = gradcheck(EXP, sample=k, estimator=est, beta=beta)
                secs.append(time.perf_counter() - t0)
                fd = ref["samples"][k]["finite_difference"]
                cos.append(cosine(g.estimate, fd))
                err_fd.append(rel(g.estimate, fd))
                err_ex.append(rel(g.estimate, g.exact))
                bar.update(1)
            rows.append((est, beta, min(cos), max(err_fd), max(err_ex), float(np.mean(secs))))
    table = ["| estimator | β (S) | min cos vs ngspice FD | max rel. err vs ngspice FD | "
             "max rel. err vs exact | s per gradcheck |", "|---|---|---|---|---|---|"]
    for est, beta, c, efd, eex, s in rows:
        table.append(f"| {est} | {beta:g} | 1 − {max(1 - c, 0):.1e} | {efd:.1e} | {eex:.1e} "
                     f"| {s:.1f} |")
    print("\n".join(table))
    if args.no_write:
        return 0
    text = [HOLO_BEGIN, "", "## Holomorphic EP at large nudges", "",
            f"Written by `python bench/holomorphic.py` on {time.strftime('%Y-%m-%d')} "
            f"({platform.machine()}, Python {platform.python_version()}; "
            f"{time.perf_counter() - t_all:.0f} s). Every stored sample of "
            f"`tests/learn_decks/bias14.toml` ({n} samples, 14 trainable conductances, "
            "clipping diodes), conductances as in the netlist; each estimate against "
            "ngspice's central finite differences (`tests/learn_decks/bias14_fd.json`) and "
            "the exact gradient. `holomorphic-N` solves N phases at complex nudges "
            "β·e^{2πik/N} (complex Newton from the free state) and takes the first Fourier "
            "coefficient of the measured ∂E/∂g = ½ΔV²: its bias is O(β^N) where "
            "centered EP's is O(β²). At the smallest errors the ngspice finite "
            "differences themselves (rel. step 3e-5) are the limit.", "", *table, "",
            HOLO_END]
    out = Path(args.out)
    old = out.read_text(encoding="utf-8") if out.exists() else ""
    a, b = old.find(HOLO_BEGIN), old.find(HOLO_END)
    section = "\n".join(text)
    new = (old[:a] + section + old[b + len(HOLO_END):]) if (a >= 0 and b > a) else \
        old.rstrip() + "\n\n" + section + "\n"
    out.write_text(new, encoding="utf-8")
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
