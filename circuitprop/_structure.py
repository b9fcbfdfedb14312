"""Structure of a reciprocal circuit that the structure-aware solvers exploit.

Two things are read off a compiled circuit's topology (plain numpy, never traced):

- **Dense blocks** (:class:`Block`, :func:`find_blocks`): a run of consecutive resistors in
  the deck that joins every node of one group ``P`` to every node of another group ``Q``,
  in row-major order (resistor ``k0 + i·|Q| + j`` joins ``P[i]`` and ``Q[j]``), where each
  group is either all free nodes or all source-tied nodes. Layered networks written by
  ``circuitprop build drn`` are made of such blocks (inputs × hidden, hidden × outputs).
  A block's conductances are the matrix ``g[k0 : k0 + |P||Q|].reshape(|P|, |Q|)`` (a slice,
  no gather), its currents and Hessian products are matmuls, and the voltage drops across
  its resistors are ``v_P[:, None] − v_Q[None, :]``. Resistors outside blocks stay in an
  edge list. The rule is documented in ``docs/solvers.md``.
- **Colours** (:func:`colour_unknowns`): a partition of the unknowns into independent sets
  (no resistor, diode or output nudge joins two unknowns of one colour): given the other
  colours, each unknown of a colour minimises its own one-dimensional energy. For a layered
  network the colours are its layers (and the two sides of each differential output).
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
import networkx as nx
import numpy as np
from jaxtyping import Array, Int

__all__ = ["Block", "Layout", "find_blocks", "colour_unknowns", "MIN_BLOCK"]

#: The smallest block (|P|·|Q| resistors) kept as a matrix; smaller runs stay edges.
MIN_BLOCK = 64


class Block(eqx.Module):
    """A complete bipartite run of resistors (see the module docstring).

    - ``p``, ``q``: node indices of the two groups (row and column order);
    - ``start``: index of the block's first resistor in ``Values.g`` (static);
    - ``sign``: +1 when each resistor's first terminal is its ``P`` node, −1 otherwise;
    - ``p_fixed``, ``q_fixed``: whether that group is tied to sources (static).
    """

    p: Int[Array, " P"]
    q: Int[Array, " Q"]
    start: int = eqx.field(static=True)
    sign: float = eqx.field(static=True)
    p_fixed: bool = eqx.field(static=True)
    q_fixed: bool = eqx.field(static=True)

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.p.shape[0]), int(self.q.shape[0])

    @property
    def size(self) -> int:
        return self.shape[0] * self.shape[1]

    def conductances(self, g):
        """The block's conductance matrix ``G[i, j]`` from ``Values.g``."""
        return g[self.start : self.start + self.size].reshape(self.shape)


class Layout(eqx.Module):
    """A circuit's dense blocks and the rest of its resistors.

    - ``blocks``: the :class:`Block` s, in resistor order;
    - ``rest``: indices (into ``Values.g``) of the resistors outside blocks;
    - ``runs``: the resistor order as runs ``(kind, index, length)`` (static):
      ``("block", b, n)`` or ``("rest", first position in rest, n)``.
    - ``colours``: the unknowns of each colour (or ``None`` before :func:`colour_unknowns`).
    """

    blocks: tuple[Block, ...]
    rest: Int[Array, " rest"]
    runs: tuple = eqx.field(static=True)
    colours: tuple | None = None

    @property
    def n_block_resistors(self) -> int:
        return sum(b.size for b in self.blocks)

    def drops(self, v, r_a, r_b):
        """The voltage drop ``v[a] − v[b]`` across every resistor, in resistor order: a
        broadcast difference on each block, a gather on the rest."""
        if not self.blocks:
            return v[r_a] - v[r_b]
        rest = v[r_a[self.rest]] - v[r_b[self.rest]]
        parts = []
        for kind, i, n in self.runs:
            if kind == "block":
                blk = self.blocks[i]
                parts.append((blk.sign * (v[blk.p][:, None] - v[blk.q][None, :])).reshape(-1))
            else:
                parts.append(rest[i : i + n])
        return jnp.concatenate(parts)


def _run_at(a: np.ndarray, b: np.ndarray, k0: int, n: int):
    """The longest row-major complete bipartite run of resistors starting at ``k0``:
    ``((P, Q, sign, length) or None, skip)``; ``skip`` resistors from ``k0`` start no run
    (the first row's resistors: a run starting inside it would repeat a shorter row)."""
    skip = 1
    if k0 + 1 >= n:
        return None, skip
    for sign, rows, cols in ((1.0, a, b), (-1.0, b, a)):
        r0 = rows[k0]
        q_len = 1
        while k0 + q_len < n and rows[k0 + q_len] == r0:
            q_len += 1
        skip = max(skip, q_len)
        if q_len < 2:
            continue
        q = cols[k0 : k0 + q_len]
        if len(set(q.tolist())) != q_len or r0 in set(q.tolist()):
            continue
        p = [r0]
        seen = {int(r0)}
        k = k0 + q_len
        qset = set(q.tolist())
        while k + q_len <= n:
            r = rows[k]
            if int(r) in seen or int(r) in qset:
                break
            if not (np.all(rows[k : k + q_len] == r) and np.array_equal(cols[k : k + q_len], q)):
                break
            p.append(r)
            seen.add(int(r))
            k += q_len
        if len(p) >= 2:
            return (np.asarray(p), q, sign, len(p) * q_len), skip
    return None, skip


def find_blocks(r_a: np.ndarray, r_b: np.ndarray, node_var: np.ndarray, n_u: int,
                ground: int) -> Layout:
    """The dense blocks of a circuit's resistor list (see the module docstring).

    **Arguments:** resistor terminals (node indices; ``ground`` is the ground slot), each
    node's unknown (``n_u`` for source-tied nodes and ground).
    """
    a = np.asarray(r_a)
    b = np.asarray(r_b)
    n = len(a)
    fixed = np.asarray(node_var) >= n_u
    blocks, runs, rest = [], [], []
    k = 0
    while k < n:
        found, skip = _run_at(a, b, k, n)
        if found is not None:
            p, q, sign, length = found
            ok = (length >= MIN_BLOCK and ground not in set(p.tolist()) | set(q.tolist())
                  and (fixed[p].all() or not fixed[p].any())
                  and (fixed[q].all() or not fixed[q].any())
                  and not (fixed[p].all() and fixed[q].all()))
            if ok:
                blocks.append(Block(p=jnp.asarray(p.astype(np.int32)),
                                    q=jnp.asarray(q.astype(np.int32)), start=k, sign=sign,
                                    p_fixed=bool(fixed[p].all()), q_fixed=bool(fixed[q].all())))
                runs.append(("block", len(blocks) - 1, length))
                k += length
                continue
        if found is not None:
            skip = 1
        skip = min(skip, n - k)
        if runs and runs[-1][0] == "rest":
            runs[-1] = ("rest", runs[-1][1], runs[-1][2] + skip)
        else:
            runs.append(("rest", len(rest), skip))
        rest.extend(range(k, k + skip))
        k += skip
    return Layout(blocks=tuple(blocks), rest=jnp.asarray(np.asarray(rest, dtype=np.int32)),
                  runs=tuple(runs))


def colour_unknowns(n_u: int, pairs: list[tuple[np.ndarray, np.ndarray]]) -> tuple:
    """Independent sets covering the unknowns ``0..n_u-1``.

    **Arguments:** ``pairs``: arrays of unknown indices ``(ua, ub)`` joined by an element
    (entries ``≥ n_u`` are source-tied and ignored). Bipartite graphs (layered networks)
    get two colours; others DSatur's greedy colouring (networkx).

    **Returns:** a tuple of int32 arrays, one per colour, largest colour first.
    """
    g = nx.Graph()
    g.add_nodes_from(range(n_u))
    for ua, ub in pairs:
        ua = np.asarray(ua)
        ub = np.asarray(ub)
        keep = (ua < n_u) & (ub < n_u) & (ua != ub)
        g.add_edges_from(zip(ua[keep].tolist(), ub[keep].tolist()))
    colour = nx.coloring.greedy_color(g, strategy="saturation_largest_first")
    groups: dict[int, list[int]] = {}
    for node in range(n_u):
        groups.setdefault(colour.get(node, 0), []).append(node)
    sets = sorted(groups.values(), key=lambda s: (-len(s), s[0]))
    return tuple(jnp.asarray(np.asarray(s, dtype=np.int32)) for s in sets)
