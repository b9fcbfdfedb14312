"""Plots of networks: edges colored by conductance (``docs/flow-networks.md``).

:func:`plot_network` draws a resistor / flow network with its pipes colored (and sized) by
conductance, at the node positions recorded in the deck as ``* pos NODE X Y`` comments
(:func:`circuitprop.builders.flow_network` writes them), or given explicitly, or from a
seeded spring layout. Ground and grounded source nodes are marked; chosen edges (e.g. an
allostery task's target pipes) are highlighted.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

__all__ = ["plot_network"]


def _as_graph(netlist_or_graph):
    import networkx as nx

    from .builders._flow import deck_to_graph

    if isinstance(netlist_or_graph, nx.Graph):
        G = netlist_or_graph
        if G.is_multigraph() or G.is_directed():
            H = nx.Graph()
            H.graph.update(G.graph)
            H.add_nodes_from(G.nodes(data=True))
            for a, b, d in G.edges(data=True):
                if H.has_edge(a, b):
                    H.edges[a, b]["conductance"] = (H.edges[a, b].get("conductance", 0.0)
                                                    + d.get("conductance", 0.0))
                else:
                    H.add_edge(a, b, **d)
            G = H
        return G
    return deck_to_graph(netlist_or_graph)


def _positions(G, positions):
    import networkx as nx

    from .builders._flow import read_positions

    pos = dict(nx.get_node_attributes(G, "pos"))
    if positions is not None:
        if isinstance(positions, Mapping):
            given = {str(k).lower() if isinstance(k, str) else k: v for k, v in positions.items()}
        else:  # a deck (path or text) whose * pos comments to use
            given = read_positions(positions)
        for n in G.nodes:
            key = n.lower() if isinstance(n, str) else n
            if key in given:
                pos[n] = tuple(given[key])
    missing = [n for n in G.nodes if n not in pos]
    if missing:
        fixed = list(pos) or None
        lay = nx.spring_layout(G, pos=pos or None, fixed=fixed, seed=0)
        for n in missing:
            pos[n] = tuple(lay[n])
    return {n: (float(p[0]), float(p[1])) for n, p in pos.items()}


def _edge_key(G, a, b) -> set:
    d = G.edges[a, b]
    keys = {frozenset((a, b))}
    for name in [d.get("name")] + list(d.get("names") or []):
        if name:
            keys.add(str(name).lower())
    return keys


def plot_network(
    netlist_or_graph,
    conductances: Mapping[str, float] | None = None,
    path: str | os.PathLike = "network.png",
    *,
    highlight_edges: Iterable = (),
    positions=None,
    title: str | None = None,
    log: bool | None = None,
    cmap: str = "viridis",
    dpi: int = 120,
) -> Path:
    """Draw a network with its edges colored by conductance and save it as a PNG.

    **Arguments:**

    - ``netlist_or_graph``: a :class:`networkx.Graph` with a ``conductance`` edge attribute
      (e.g. :func:`circuitprop.builders.flow_graph`), or a deck (text, path or
      :class:`~circuitprop.netlist.Netlist`) read by :func:`circuitprop.builders.deck_to_graph`.
    - ``conductances``: resistor name -> conductance (S) overriding the graph's (e.g. the
      learned ones, ``TrainResult.conductances``); ``None`` keeps the graph's.
    - ``path``: the PNG file to write.
    - ``highlight_edges``: edges to outline in red: resistor names (``"r12"``), node pairs
      (``("n3", "n7")``) or ``"a-b"`` output strings.
    - ``positions``: ``{node: (x, y)}`` or a deck (path or text) whose ``* pos`` comments to
      use (``trained.cir`` has none: pass the original deck). Default: the graph's ``pos``
      attributes; nodes still without a position get a seeded spring layout.
    - ``title``: the plot title.
    - ``log``: logarithmic color scale (default: when the conductances span more than 20x).
    - ``cmap``: a matplotlib colormap name; ``dpi``: resolution.

    **Returns:** the path written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection
    from matplotlib.colors import LogNorm, Normalize

    G = _as_graph(netlist_or_graph)
    pos = _positions(G, positions)
    over = {str(k).lower(): float(v) for k, v in (conductances or {}).items()}
    edges = list(G.edges)
    g = np.empty(len(edges))
    for e, (a, b) in enumerate(edges):
        d = G.edges[a, b]
        names = d.get("names") or ([d["name"]] if d.get("name") else [])
        names = [str(n).lower() for n in names]
        if any(n in over for n in names):
            share = float(d.get("conductance", 1.0)) / len(names)
            g[e] = sum(over.get(n, share) for n in names)
        else:
            g[e] = float(d.get("conductance", 1.0))
    want = set()
    for h in highlight_edges:
        if isinstance(h, str) and "-" in h:
            p, m = (s.strip().lower() for s in h.split("-", 1))
            want.add(frozenset((p, m)))
        elif isinstance(h, str):
            want.add(h.lower())
        else:
            want.add(frozenset(h))
    hl = [e for e, (a, b) in enumerate(edges) if _edge_key(G, a, b) & want]

    pos_g = g[g > 0]
    lo = float(pos_g.min()) if len(pos_g) else 1.0
    hi = float(g.max()) if len(g) else 1.0
    if log is None:
        log = len(pos_g) > 0 and hi / lo > 20
    norm = LogNorm(vmin=lo, vmax=hi) if log else Normalize(vmin=min(0.0, float(g.min(initial=0))),
                                                           vmax=hi if hi > 0 else 1.0)
    segs = np.array([[pos[a], pos[b]] for a, b in edges]).reshape(-1, 2, 2)
    gs = np.clip(g, lo, None)
    width = 0.6 + 3.4 * (np.log(gs / lo) / math.log(hi / lo) if hi > lo else np.ones_like(gs))

    fig, ax = plt.subplots(figsize=(7, 6.2))
    if hl:
        hs = segs[hl]
        ax.add_collection(LineCollection(hs, colors="red", linewidths=width[hl] + 5, alpha=0.55,
                                         zorder=1))
    lc = LineCollection(segs, cmap=cmap, norm=norm, linewidths=width, zorder=2)
    lc.set_array(gs if log else g)
    ax.add_collection(lc)
    xy = np.array([pos[n] for n in G.nodes])
    ax.scatter(xy[:, 0], xy[:, 1], s=6, c="k", zorder=3)
    ground = G.graph.get("ground", "0")
    if ground in pos:
        ax.scatter(*pos[ground], s=90, marker="v", c="k", zorder=4, label="ground")
    srcs = [n for n in (G.graph.get("sources") or {}) if n in pos]
    if srcs:
        s = np.array([pos[n] for n in srcs])
        ax.scatter(s[:, 0], s[:, 1], s=110, marker="*", c="orange", edgecolors="k", zorder=4,
                   label="pressure source")
    if hl:
        ax.plot([], [], color="red", lw=5, alpha=0.55, label="target edges")
    if ground in pos or srcs or hl:
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.02), ncol=3, frameon=False)
    fig.colorbar(lc, ax=ax, label="conductance (S)", shrink=0.85)
    ax.autoscale()
    ax.set_aspect("equal")
    ax.set_xticks([]); ax.set_yticks([])
    ax.set_title(title if title is not None else str(G.graph.get("title") or "network"),
                 fontsize=10)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path
