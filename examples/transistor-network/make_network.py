"""Write network.cir: NMOS edges on a triangular lattice, every gate held by its own V source.

Nodes ``n<r><c>`` sit on a ROWS x COLS lattice (right, down and down-right neighbours are
joined by an NMOS whose gate voltage is a trainable V source ``vg<k>``, body at ground). The
four corners are the inputs: feature 1 drives ``vx1p`` (top left) with +x and ``vx1n``
(bottom right) with -x, feature 2 ``vx2p`` (top right) and ``vx2n`` (bottom left): a
network of such edges is monotone in every node it is driven at, so a non-monotone task
(XOR) needs both signs of each input. Two rails ``vlo``/``vhi`` hold the middles of the top
and bottom rows (``--no-rails``: none); ``--bias V`` adds a source ``vb`` on the middle of
the left column (train it with ``trainable = ["vg*", "vb"]``). Gates start uniformly in [--gate-low, --gate-high]
(seeded).

    python make_network.py [--rows 3 --cols 3 --seed 0] -o network.cir
"""

from __future__ import annotations

import argparse

import numpy as np

MODEL = ".model nch NMOS (LEVEL=1 VTO=0.5 KP=1e-4 GAMMA=0.4 PHI=0.7 LAMBDA=0.02)"


def network(rows: int, cols: int, seed: int, gate_low: float, gate_high: float,
            rails: bool = True, v_lo: float = 0.0, v_hi: float = 1.0,
            bias: float | None = None) -> str:
    """The deck text (see the module docstring)."""
    rng = np.random.default_rng(seed)
    name = lambda r, c: f"n{r}{c}"  # noqa: E731
    edges = []
    for r in range(rows):
        for c in range(cols):
            for dr, dc in ((0, 1), (1, 0), (1, 1)):
                if r + dr < rows and c + dc < cols:
                    edges.append((name(r, c), name(r + dr, c + dc)))
    last_r, last_c = rows - 1, cols - 1
    # each feature drives two opposite corners: +x on one, -x on the other (input_mode "pm")
    lines = [f"* {rows}x{cols} triangular lattice of NMOS edges (seed {seed})", MODEL,
             f"vx1p {name(0, 0)} 0 dc 0.5", f"vx2p {name(0, last_c)} 0 dc 0.5",
             f"vx1n {name(last_r, last_c)} 0 dc 0.5", f"vx2n {name(last_r, 0)} 0 dc 0.5"]
    if rails:
        lines += [f"vlo {name(0, cols // 2)} 0 dc {v_lo}",
                  f"vhi {name(last_r, cols // 2)} 0 dc {v_hi}"]
    if bias is not None:  # a bias source on the middle of the left column (trainable: vb)
        lines.append(f"vb {name(rows // 2, 0)} 0 dc {bias}")
    for k, (a, b) in enumerate(edges, 1):
        lines.append(f"m{k} {a} g{k} {b} 0 nch W=10u L=1u")
    for k, g in enumerate(rng.uniform(gate_low, gate_high, len(edges)), 1):
        lines.append(f"vg{k} g{k} 0 dc {g:.4f}")
    lines += [".op", ".end", ""]
    return "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=3)
    ap.add_argument("--cols", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--gate-low", type=float, default=1.5)
    ap.add_argument("--gate-high", type=float, default=3.5)
    ap.add_argument("--no-rails", action="store_true")
    ap.add_argument("--bias", type=float, default=None,
                    help="a bias V source vb (volts) on the middle of the left column")
    ap.add_argument("--v-lo", type=float, default=0.0)
    ap.add_argument("--v-hi", type=float, default=1.0)
    ap.add_argument("-o", "--out", default="network.cir")
    a = ap.parse_args(argv)
    with open(a.out, "w", encoding="utf-8") as f:
        f.write(network(a.rows, a.cols, a.seed, a.gate_low, a.gate_high, not a.no_rails,
                        a.v_lo, a.v_hi, a.bias))


if __name__ == "__main__":
    main()
