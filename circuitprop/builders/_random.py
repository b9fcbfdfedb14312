"""Seeded random deck generators: resistor/diode networks and lattices.

Both functions return SPICE deck *text* (title line, elements, ``.model`` cards, ``.op``,
``.end``) and are deterministic for a given set of arguments (``numpy.random.default_rng``).

Well-posedness by construction: the resistors alone form a spanning tree over every node, so
each diode branch has a resistive path in parallel; diodes only ever replace non-tree edges.
Every voltage source sits on its own node (no source loops), and a few resistors go to ground.
"""

from __future__ import annotations

import numpy as np

__all__ = ["random_network", "lattice"]

_DIODE_MODELS = (
    ".model dmod D(IS=1e-14 N=1.0 RS=10)",
    ".model dmod2 D(IS=1e-12 N=1.5)",
)


def _fmt(x: float) -> str:
    return f"{x:.6g}"


def _log_uniform(rng: np.random.Generator, lo: float, hi: float, size: int) -> np.ndarray:
    return np.exp(rng.uniform(np.log(lo), np.log(hi), size=size))


class _DSU:
    def __init__(self, n: int) -> None:
        self.p = list(range(n))

    def find(self, a: int) -> int:
        p = self.p
        while p[a] != a:
            p[a] = p[p[a]]
            a = p[a]
        return a

    def union(self, a: int, b: int) -> bool:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return False
        self.p[ra] = rb
        return True


def _branch_lines(
    rng: np.random.Generator,
    names: list[str],
    edges: list[tuple[int, int]],
    tree: np.ndarray,
    diodes: bool,
    diode_fraction: float,
) -> tuple[list[str], bool]:
    """Element lines for the edges; diodes replace a random subset of the non-tree edges."""
    m = len(edges)
    is_diode = np.zeros(m, dtype=bool)
    if diodes and diode_fraction > 0:
        candidates = np.flatnonzero(~tree)
        k = min(len(candidates), int(round(diode_fraction * m)))
        if k:
            is_diode[rng.choice(candidates, size=k, replace=False)] = True
    values = _log_uniform(rng, 100.0, 100e3, m)
    flip = rng.random(m) < 0.5
    which = rng.random(m) < 0.5
    lines: list[str] = []
    nr = nd = 0
    for e, (a, b) in enumerate(edges):
        if is_diode[e]:
            nd += 1
            an, ca = (names[b], names[a]) if flip[e] else (names[a], names[b])
            model = "dmod" if which[e] else "dmod2"
            lines.append(f"d{nd} {an} {ca} {model}")
        else:
            nr += 1
            lines.append(f"r{nr} {names[a]} {names[b]} {_fmt(values[e])}")
    return lines, bool(nd)


def random_network(
    n_nodes: int,
    *,
    seed: int = 0,
    diodes: bool = True,
    diode_fraction: float = 0.1,
    degree: int = 4,
    sources: int = 2,
) -> str:
    """A connected random resistor(+diode) network on nodes ``n1`` .. ``nN``.

    A random recursive spanning tree (each node attaches to a random earlier one) plus random
    extra edges up to an average degree of about ``degree``; resistors log-uniform in
    100 ohm .. 100 kohm; ``diode_fraction`` of all branches (taken from the non-tree edges)
    become diodes of random orientation (two models, one with RS). ``sources`` DC voltage
    sources (1 .. 5 V) to ground, alternately direct and through a small source resistance
    (on an extra node ``sK``); one or two DC current sources; a few resistors to ground.
    """
    if n_nodes < 2:
        raise ValueError("n_nodes must be >= 2")
    if sources < 0 or sources > n_nodes:
        raise ValueError("sources must be in 0 .. n_nodes")
    rng = np.random.default_rng(seed)
    n = int(n_nodes)
    names = [f"n{k + 1}" for k in range(n)]

    edges: list[tuple[int, int]] = []
    seen: set[tuple[int, int]] = set()
    for k in range(1, n):
        j = int(rng.integers(0, k))
        edges.append((j, k))
        seen.add((j, k))
    n_tree = len(edges)
    target = max(n_tree, int(round(n * degree / 2)))
    max_edges = n * (n - 1) // 2
    target = min(target, max_edges)
    while len(edges) < target:
        a, b = (int(x) for x in rng.integers(0, n, size=2))
        if a == b:
            continue
        key = (min(a, b), max(a, b))
        if key in seen:
            continue
        seen.add(key)
        edges.append(key)
    tree = np.zeros(len(edges), dtype=bool)
    tree[:n_tree] = True

    lines, have_d = _branch_lines(rng, names, edges, tree, diodes, diode_fraction)

    # sources on distinct nodes
    src_nodes = rng.choice(n, size=sources, replace=False) if sources else []
    for k, node in enumerate(src_nodes, start=1):
        v = _fmt(rng.uniform(1.0, 5.0))
        if k % 2 == 1:
            lines.append(f"v{k} {names[node]} 0 dc {v}")
        else:
            lines.append(f"v{k} s{k} 0 dc {v}")
            lines.append(f"rs{k} s{k} {names[node]} {_fmt(rng.uniform(1.0, 50.0))}")
    n_isrc = 1 if n < 50 else 2
    for k in range(1, n_isrc + 1):
        node = int(rng.integers(0, n))
        lines.append(f"i{k} 0 {names[node]} dc {_fmt(rng.uniform(0.1e-3, 1e-3))}")
    n_gnd = max(2, n // 100)
    for k, node in enumerate(rng.choice(n, size=min(n_gnd, n), replace=False), start=1):
        lines.append(f"rg{k} {names[node]} 0 {_fmt(_log_uniform(rng, 100.0, 10e3, 1)[0])}")

    head = [
        f"random_network n_nodes={n} seed={seed} degree={degree} "
        f"diode_fraction={diode_fraction if diodes else 0} sources={sources}"
    ]
    if have_d:
        head += list(_DIODE_MODELS)
    return "\n".join(head + lines + [".op", ".end"]) + "\n"


def lattice(
    nx: int,
    ny: int,
    *,
    seed: int = 0,
    diodes: bool = True,
    diode_fraction: float = 0.2,
) -> str:
    """An ``nx`` x ``ny`` grid on nodes ``n_i_j`` (0-based), neighbour resistors
    (log-uniform 100 ohm .. 100 kohm), ``diode_fraction`` of the edges (outside a random
    spanning tree) replaced by randomly oriented diodes. A 5 V source on corner ``n_0_0``, the
    opposite corner grounded through 100 ohm, plus a few more resistors to ground.
    """
    if nx < 1 or ny < 1 or nx * ny < 2:
        raise ValueError("lattice needs at least 2 nodes")
    rng = np.random.default_rng(seed)
    names = [f"n_{i}_{j}" for i in range(nx) for j in range(ny)]

    def idx(i: int, j: int) -> int:
        return i * ny + j

    edges: list[tuple[int, int]] = []
    for i in range(nx):
        for j in range(ny):
            if i + 1 < nx:
                edges.append((idx(i, j), idx(i + 1, j)))
            if j + 1 < ny:
                edges.append((idx(i, j), idx(i, j + 1)))
    # random spanning tree (Kruskal on random weights)
    order = rng.permutation(len(edges))
    dsu = _DSU(nx * ny)
    tree = np.zeros(len(edges), dtype=bool)
    for e in order:
        a, b = edges[e]
        if dsu.union(a, b):
            tree[e] = True

    lines, have_d = _branch_lines(rng, names, edges, tree, diodes, diode_fraction)
    lines.append(f"v1 {names[idx(0, 0)]} 0 dc 5")
    lines.append(f"rg0 {names[idx(nx - 1, ny - 1)]} 0 100")
    n_gnd = max(2, (nx * ny) // 500)
    for k, node in enumerate(rng.choice(nx * ny, size=min(n_gnd, nx * ny), replace=False), 1):
        lines.append(f"rg{k} {names[node]} 0 {_fmt(_log_uniform(rng, 1e3, 100e3, 1)[0])}")

    head = [
        f"lattice {nx}x{ny} seed={seed} diode_fraction={diode_fraction if diodes else 0}"
    ]
    if have_d:
        head += list(_DIODE_MODELS)
    return "\n".join(head + lines + [".op", ".end"]) + "\n"
