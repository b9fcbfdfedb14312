"""The aggregation hierarchy of a circuit's unknowns, built once from its topology at compile
time (plain numpy): which unknowns form the aggregates of each coarser level of the multigrid
preconditioner (:mod:`circuitprop._solve._multigrid`)."""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Int

#: circuits with fewer unknowns keep plain Jacobi
MIN_UNKNOWNS = 5000
COARSEST = 100


class Level(eqx.Module):
    """One coarsening step: ``agg`` maps each unknown of this level to its aggregate;
    ``edge`` maps each branch of this level to a branch of the next (``m_next`` = dropped);
    ``next_a``, ``next_b`` are the next level's branch endpoints (``n_next`` = fixed)."""

    agg: Int[Array, " n"]
    edge: Int[Array, " m"]
    next_a: Int[Array, " m_next"]
    next_b: Int[Array, " m_next"]
    n_next: int = eqx.field(static=True)
    m_next: int = eqx.field(static=True)


class Hierarchy(eqx.Module):
    """The aggregation levels (finest first)."""

    levels: tuple[Level, ...]


def _aggregate(n: int, a: np.ndarray, b: np.ndarray, w: np.ndarray,
               theta: float = 0.25) -> np.ndarray:
    """Greedy aggregation over strong couplings: branch (i, j) of weight w is strong when
    ``w ≥ θ·(largest weight at i)`` and likewise at j. An unaggregated node takes its
    unaggregated strong neighbours; leftovers join the aggregate of their strongest
    neighbour. ``n`` is the ground slot (never aggregated)."""
    keep = (a != b) & (a < n) & (b < n)
    a, b, w = a[keep], b[keep], w[keep]
    wmax = np.zeros(n)
    np.maximum.at(wmax, a, w)
    np.maximum.at(wmax, b, w)
    strong = (w >= theta * wmax[a]) & (w >= theta * wmax[b])
    ends = np.concatenate([a, b])
    order = np.argsort(ends, kind="stable")
    nbr = np.concatenate([b, a])[order]
    nw = np.concatenate([w, w])[order]
    nstrong = np.concatenate([strong, strong])[order]
    start = np.searchsorted(ends[order], np.arange(n + 1))
    agg = np.full(n, -1, dtype=np.int64)
    count = 0
    for i in range(n):
        if agg[i] >= 0:
            continue
        lo, hi = start[i], start[i + 1]
        ns = nbr[lo:hi][nstrong[lo:hi]]
        free = ns[agg[ns] < 0]
        if free.size == 0 and hi > lo:
            continue  # decided in the second pass
        agg[i] = count
        agg[free] = count
        count += 1
    for i in np.flatnonzero(agg < 0):
        lo, hi = start[i], start[i + 1]
        ns, ws = nbr[lo:hi], nw[lo:hi]
        taken = agg[ns] >= 0
        if taken.any():
            agg[i] = agg[ns[taken][np.argmax(ws[taken])]]
        else:
            agg[i] = count
            count += 1
    return agg


def build_hierarchy(n: int, a: np.ndarray, b: np.ndarray,
                    w: np.ndarray | None = None) -> Hierarchy | None:
    """Aggregation levels for an ``n``-unknown conductance network whose branches join
    unknowns ``a[k]`` and ``b[k]`` (``n`` = a fixed node) with typical conductances ``w``
    (used only to choose aggregates). ``None`` if ``n`` is small."""
    if n < MIN_UNKNOWNS:
        return None
    levels = []
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    w = np.ones(a.shape[0]) if w is None else np.asarray(w, dtype=np.float64)
    while n > COARSEST:
        agg = _aggregate(n, a, b, w)
        n_mid = int(agg.max()) + 1
        if n_mid > COARSEST:  # aggregate the aggregates once more: ~10x coarsening per level
            mid = np.concatenate([agg, [n_mid]])
            agg = _aggregate(n_mid, mid[a], mid[b], w)[agg]
        n_next = int(agg.max()) + 1
        if n_next > 0.8 * n:
            break
        agg_ext = np.concatenate([agg, [n_next]])
        ca, cb = agg_ext[a], agg_ext[b]
        lo, hi = np.minimum(ca, cb), np.maximum(ca, cb)
        internal = ca == cb
        key = lo * (n_next + 1) + hi
        uniq, inv = np.unique(key[~internal], return_inverse=True)
        edge = np.full(a.shape[0], uniq.size, dtype=np.int64)
        edge[~internal] = inv
        w = np.bincount(inv, weights=w[~internal], minlength=uniq.size)
        a, b = uniq // (n_next + 1), uniq % (n_next + 1)
        levels.append(Level(agg=jnp.asarray(agg, dtype=jnp.int32),
                            edge=jnp.asarray(edge, dtype=jnp.int32),
                            next_a=jnp.asarray(a, dtype=jnp.int32),
                            next_b=jnp.asarray(b, dtype=jnp.int32),
                            n_next=n_next, m_next=int(uniq.size)))
        n = n_next
    if not levels:
        return None
    return Hierarchy(levels=tuple(levels))


