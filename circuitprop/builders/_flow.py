"""Flow networks (pipes, pressures, flows) as SPICE decks, and networkx graphs both ways.

A flow network is a resistor network under another name (``docs/flow-networks.md``):

| flow network | deck |
|---|---|
| pipe of conductance ``k`` | resistor ``R = 1/k`` |
| pressure ``p`` at a node | node voltage |
| flow through a pipe | branch current |
| pressure source (held pressure) | V source to ground |
| flow source (injected flow) | I source from ground into the node |
| dissipated power ``½ Σ k Δp²`` | co-content of the resistors |

:func:`flow_network` writes a disordered network in the spirit of Stern et al. (PRX 2021):
``n_nodes`` points uniform in the unit square joined either by their Delaunay triangulation
(``kind="delaunay"``, needs scipy; without it the geometric graph is used) or as a random
geometric graph (``kind="geometric"``: points closer than a radius chosen for
``mean_degree``; components are then joined by their closest pair of points, so the network
is always connected). Pipe conductances are ``k ~ U(k_min, k_max)``.

**Names** in the deck (lowercase):

- ground (pressure 0): node ``0``, the point with the smallest ``x`` (the left side);
- the other nodes ``n1 .. n{N-1}`` in the order of their points;
- pipes ``r1 .. r{E}`` (``R = 1/k`` ohms), edges sorted by their points' indices;
- pressure sources ``vs1 .. vs{S}``: ``vs{i} NODE 0 DC p``, on the ``n_sources`` points with
  the largest ``x`` (the right side), pressure ``pressure``;
- node positions as comments ``* pos NODE X Y`` (ignored by circuitprop and ngspice; read by
  :func:`deck_to_graph` and :func:`circuitprop.plot.plot_network`).

:func:`flow_graph` returns the same network as a :class:`networkx.Graph` (node attribute
``pos``; edge attributes ``conductance`` in S and ``name``; ``graph["ground"]``,
``graph["sources"]`` = ``{node: pressure}``), :func:`graph_to_deck` writes any graph with a
``conductance`` edge attribute as a deck, and :func:`deck_to_graph` reads a deck back
(conductance = 1/R). Everything is deterministic for given arguments
(``numpy.random.default_rng(seed)``).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .._errors import CircuitpropError

if TYPE_CHECKING:
    import networkx

__all__ = ["flow_network", "flow_graph", "graph_to_deck", "deck_to_graph", "read_positions"]

KINDS = ("geometric", "delaunay")

_NAME_OK = re.compile(r"^[a-z0-9_][a-z0-9_.]*$")
_POS = re.compile(r"^\*\s*pos\s+(\S+)\s+(\S+)\s+(\S+)\s*$", re.IGNORECASE)


def _num(v: float) -> str:
    return repr(float(v) + 0.0)


def _check_int(name: str, v, lo: int) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
        raise CircuitpropError(f"flow: {name} must be an integer >= {lo} (got {v!r})")
    return int(v)


def _check_num(name: str, v, lo: float = 0.0, strict: bool = True) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float, np.floating)) or not math.isfinite(v):
        raise CircuitpropError(f"flow: {name} must be a finite number (got {v!r})")
    if (strict and not v > lo) or (not strict and v < lo):
        raise CircuitpropError(f"flow: {name} must be {'>' if strict else '>='} {lo} (got {v!r})")
    return float(v)


def _delaunay_edges(pts: np.ndarray) -> set[tuple[int, int]] | None:
    try:
        from scipy.spatial import Delaunay
    except ImportError:  # pragma: no cover - scipy is normally installed
        return None
    tri = Delaunay(pts)
    edges: set[tuple[int, int]] = set()
    for simplex in tri.simplices:
        a, b, c = (int(i) for i in simplex)
        for u, v in ((a, b), (b, c), (a, c)):
            edges.add((min(u, v), max(u, v)))
    return edges


def _geometric_edges(pts: np.ndarray, mean_degree: float) -> set[tuple[int, int]]:
    n = len(pts)
    radius = math.sqrt(mean_degree / (math.pi * max(n - 1, 1)))
    d = np.sqrt(((pts[:, None, :] - pts[None, :, :]) ** 2).sum(-1))
    iu, ju = np.nonzero(np.triu(d <= radius, k=1))
    edges = {(int(i), int(j)) for i, j in zip(iu, ju)}
    # join the components by their closest pair of points until one remains
    parent = list(range(n))

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for i, j in edges:
        parent[find(i)] = find(j)
    while True:
        roots = np.array([find(i) for i in range(n)])
        comps = np.unique(roots)
        if len(comps) == 1:
            break
        main = roots == roots[0]
        sub = d[np.ix_(main, ~main)]
        k = int(np.argmin(sub))
        i = int(np.flatnonzero(main)[k // sub.shape[1]])
        j = int(np.flatnonzero(~main)[k % sub.shape[1]])
        edges.add((min(i, j), max(i, j)))
        parent[find(i)] = find(j)
    return edges


def _layout(n_nodes, seed, kind, mean_degree, k_min, k_max, n_sources):
    n_nodes = _check_int("n_nodes", n_nodes, 3)
    n_sources = _check_int("n_sources", n_sources, 0)
    if n_sources > n_nodes - 1:
        raise CircuitpropError(f"flow: n_sources must be < n_nodes (got {n_sources})")
    if kind not in KINDS:
        raise CircuitpropError(f"flow: kind must be one of {', '.join(KINDS)} (got {kind!r})")
    k_min = _check_num("k_min", k_min)
    k_max = _check_num("k_max", k_max)
    if k_max < k_min:
        raise CircuitpropError(f"flow: k_max must be >= k_min (got {k_min!r}, {k_max!r})")
    mean_degree = _check_num("mean_degree", mean_degree)
    rng = np.random.default_rng(seed)
    pts = rng.uniform(0.0, 1.0, size=(n_nodes, 2))
    used = kind
    edges = _delaunay_edges(pts) if kind == "delaunay" else None
    if edges is None:
        used = "geometric"
        edges = _geometric_edges(pts, mean_degree)
    edge_list = sorted(edges)
    k = rng.uniform(k_min, k_max, size=len(edge_list))
    order = np.argsort(pts[:, 0], kind="stable")
    ground = int(order[0])
    sources = [int(i) for i in order[::-1][:n_sources]]
    names: dict[int, str] = {}
    c = 0
    for i in range(n_nodes):
        if i == ground:
            names[i] = "0"
        else:
            c += 1
            names[i] = f"n{c}"
    return pts, edge_list, k, names, sources, used


def flow_graph(
    n_nodes: int,
    *,
    seed: int = 0,
    kind: str = "geometric",
    mean_degree: float = 5.0,
    k_min: float = 0.5,
    k_max: float = 1.5,
    n_sources: int = 1,
    pressure: float = 1.0,
) -> networkx.Graph:
    """A disordered flow network as a :class:`networkx.Graph` (see the module docstring).

    **Arguments:** as :func:`flow_network`.

    **Returns:** the graph: nodes are the deck's node names (ground ``"0"``), node attribute
    ``pos`` = ``(x, y)``; edge attributes ``conductance`` (S) and ``name`` (``r{k}``);
    ``graph["ground"] = "0"``, ``graph["sources"] = {node: pressure}``,
    ``graph["source_names"] = {node: "vs{i}"}``, ``graph["kind"]`` (the construction used),
    ``graph["seed"]``.
    """
    import networkx as nx

    pts, edges, k, names, sources, used = _layout(n_nodes, seed, kind, mean_degree, k_min,
                                                  k_max, n_sources)
    pressure = _check_num("pressure", pressure, lo=-math.inf)
    G = nx.Graph()
    for i in range(len(pts)):
        G.add_node(names[i], pos=(float(pts[i, 0]), float(pts[i, 1])))
    for e, (i, j) in enumerate(edges):
        G.add_edge(names[i], names[j], conductance=float(k[e]), name=f"r{e + 1}")
    G.graph.update(
        ground="0",
        sources={names[s]: float(pressure) for s in sources},
        source_names={names[s]: f"vs{m}" for m, s in enumerate(sources, 1)},
        kind=used,
        seed=seed,
        title=f"flow network: {len(pts)} nodes, {len(edges)} pipes ({used}, seed {seed})",
    )
    return G


def flow_network(
    n_nodes: int,
    *,
    seed: int = 0,
    kind: str = "geometric",
    mean_degree: float = 5.0,
    k_min: float = 0.5,
    k_max: float = 1.5,
    n_sources: int = 1,
    pressure: float = 1.0,
    title: str | None = None,
) -> str:
    """Write a disordered flow network as a SPICE deck (names in the module docstring).

    **Arguments:**

    - ``n_nodes``: number of nodes, ground included (>= 3).
    - ``seed``: seed of the points, the conductances and nothing else.
    - ``kind``: ``"geometric"`` (random geometric graph, made connected) or ``"delaunay"``
      (Delaunay triangulation; falls back to ``"geometric"`` without scipy).
    - ``mean_degree``: target mean degree of the geometric graph (sets its radius).
    - ``k_min``, ``k_max``: pipe conductances ``k ~ U(k_min, k_max)``, siemens.
    - ``n_sources``: number of pressure sources ``vs{i}`` (0 for none).
    - ``pressure``: their DC value, volts (= pressure units).
    - ``title``: the deck's title line.

    **Returns:** the deck text (ending with ``.op`` and ``.end``).

    **Raises:** :class:`~circuitprop._errors.CircuitpropError` for bad arguments.
    """
    G = flow_graph(n_nodes, seed=seed, kind=kind, mean_degree=mean_degree, k_min=k_min,
                   k_max=k_max, n_sources=n_sources, pressure=pressure)
    return graph_to_deck(G, title=title or G.graph["title"], comment=(
        f"* disordered flow network written by circuitprop.builders.flow_network "
        f"(kind {G.graph['kind']}, seed {seed}, k ~ U({k_min!r}, {k_max!r}) S)"))


# ---------------------------------------------------------------------------- graph -> deck


def _node_namer(G, ground) -> dict:
    names: dict = {}
    used: dict[str, object] = {}
    for node in G.nodes:
        if node == ground:
            name = "0"
        elif isinstance(node, str) and _NAME_OK.match(node.lower()) and node.lower() not in (
                "0", "gnd"):
            name = node.lower()
        else:
            name = "n" + re.sub(r"[^a-z0-9_.]", "_", str(node).lower())
        if name in used:
            raise CircuitpropError(
                f"flow: graph nodes {used[name]!r} and {node!r} both map to deck node {name!r}")
        used[name] = node
        names[node] = name
    return names


def _default_ground(G):
    g = G.graph.get("ground")
    if g is not None:
        return g
    for cand in ("0", "gnd", 0):
        if cand in G:
            return cand
    raise CircuitpropError("flow: the graph names no ground node: pass ground=NODE "
                           "(or set graph['ground'])")


def graph_to_deck(
    G: networkx.Graph,
    *,
    sources: Mapping | Iterable | None = None,
    flows: Mapping | None = None,
    ground=None,
    title: str | None = None,
    comment: str | None = None,
) -> str:
    """Write a networkx graph with a ``conductance`` edge attribute as a flow-network deck.

    **Arguments:**

    - ``G``: an undirected graph (a MultiGraph's parallel edges become parallel pipes). Edge
      attribute ``conductance`` (S, > 0) is required; ``name`` (a resistor name starting with
      ``r``) is kept when every edge has a distinct one, otherwise pipes are ``r1..rE`` in
      edge order. Node attribute ``pos`` = ``(x, y)`` is written as ``* pos NODE X Y``.
    - ``sources``: pressure sources, ``{node: pressure}`` or a list of nodes (pressure 1);
      default ``G.graph["sources"]``. Source names come from ``G.graph["source_names"]``
      when given there, else ``vs1, vs2, ...``.
    - ``flows``: flow sources ``{node: flow injected}`` (I sources ``is{i} 0 NODE``);
      default ``G.graph["flows"]``.
    - ``ground``: the node at pressure 0 (deck node ``0``); default ``G.graph["ground"]``,
      else a node called ``"0"``, ``"gnd"`` or ``0``.
    - ``title``, ``comment``: the title line and an optional comment line under it.

    Deck node names: the ground is ``0``; string nodes keep their (lowercased) names when
    they are valid SPICE names, other nodes become ``n{node}``.

    **Returns:** the deck text.

    **Raises:** :class:`~circuitprop._errors.CircuitpropError` when an edge lacks a positive
    conductance, a node is unknown, two nodes map to one name, or part of the network has no
    path to the ground.
    """
    import networkx as nx

    if G.is_directed():
        G = G.to_undirected(as_view=False)
    ground = _default_ground(G) if ground is None else ground
    if ground not in G:
        raise CircuitpropError(f"flow: ground {ground!r} is not a node of the graph")
    if sources is None:
        sources = G.graph.get("sources") or {}
    if not isinstance(sources, Mapping):
        sources = {n: 1.0 for n in sources}
    if flows is None:
        flows = G.graph.get("flows") or {}
    for kind, nodes in (("source", sources), ("flow source", flows)):
        for n in nodes:
            if n not in G:
                raise CircuitpropError(f"flow: {kind} node {n!r} is not a node of the graph")
            if n == ground:
                raise CircuitpropError(f"flow: {kind} node {n!r} is the ground")
    comps = [c for c in nx.connected_components(G) if ground not in c]
    if comps:
        lost = sorted(str(n) for c in comps for n in c)
        raise CircuitpropError(
            f"flow: {len(lost)} node(s) have no path to the ground {ground!r}: "
            f"{', '.join(lost[:10])}{' ...' if len(lost) > 10 else ''}")
    names = _node_namer(G, ground)

    edges = list(G.edges(data=True))
    given = [str(d.get("name", "")).lower() for _, _, d in edges]
    keep = all(n.startswith("r") and _NAME_OK.match(n) for n in given) and len(set(given)) == len(
        given)
    head = title if title is not None else G.graph.get("title") or "flow network"
    lines = [" ".join(str(head).split()) or "flow network"]
    if comment:
        lines.append(comment)
    lines.append("* pipes r*: R = 1/k (k = pipe conductance, S); node voltage = pressure; "
                 "branch current = flow")
    src_names = dict(G.graph.get("source_names") or {})
    if len(set(src_names.get(n, "") for n in sources)) != len(sources) or not all(
            str(src_names.get(n, "")).lower().startswith("v") for n in sources):
        src_names = {n: f"vs{i}" for i, n in enumerate(sources, 1)}
    lines.append("* ground (pressure 0): node 0" + (
        "" if names[ground] == ground else f" (graph node {ground!r})"))
    pos = nx.get_node_attributes(G, "pos")
    if pos:
        lines.append("* node positions (x, y), for plots")
        for node in G.nodes:
            if node in pos:
                x, y = pos[node][:2]
                lines.append(f"* pos {names[node]} {_num(x)} {_num(y)}")
    if sources:
        lines += ["", "* pressure sources"]
        for n, p in sources.items():
            lines.append(f"{str(src_names[n]).lower()} {names[n]} 0 DC {_num(p)}")
    if flows:
        lines += ["", "* flow sources (flow injected into the node)"]
        for i, (n, q) in enumerate(flows.items(), 1):
            lines.append(f"is{i} 0 {names[n]} DC {_num(q)}")
    lines += ["", "* pipes"]
    for e, (a, b, d) in enumerate(edges):
        if "conductance" not in d:
            raise CircuitpropError(f"flow: edge ({a!r}, {b!r}) has no 'conductance' attribute")
        k = d["conductance"]
        try:
            k = float(k)
        except (TypeError, ValueError):
            raise CircuitpropError(
                f"flow: edge ({a!r}, {b!r}) has conductance {k!r}, not a number") from None
        if not (math.isfinite(k) and k > 0):
            raise CircuitpropError(
                f"flow: edge ({a!r}, {b!r}) has conductance {k!r}; it must be > 0 and finite")
        name = given[e] if keep else f"r{e + 1}"
        lines.append(f"{name} {names[a]} {names[b]} {_num(1.0 / k)}")
    lines += ["", ".op", ".end", ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------- deck -> graph


def _deck_text(netlist_or_path) -> tuple[str | None, object]:
    """``(text or None, Netlist)`` for deck text, a path or a parsed Netlist."""
    from ..netlist import Netlist, parse

    if isinstance(netlist_or_path, Netlist):
        src = netlist_or_path.source
        text = None
        if src and src != "<string>" and os.path.isfile(src):
            text = Path(src).read_text(encoding="utf-8", errors="replace")
        return text, netlist_or_path
    if isinstance(netlist_or_path, os.PathLike) or (
            isinstance(netlist_or_path, str) and "\n" not in netlist_or_path):
        path = os.fspath(netlist_or_path)
        if not os.path.isfile(path):
            raise CircuitpropError(f"{path}: no such deck file")
        text = Path(path).read_text(encoding="utf-8", errors="replace")
        return text, parse(text, path)
    return netlist_or_path, parse(netlist_or_path)


def read_positions(netlist_or_path) -> dict[str, tuple[float, float]]:
    """Node positions from ``* pos NODE X Y`` comments of a deck (text, path or Netlist
    read from a file); ``{}`` when there are none."""
    if isinstance(netlist_or_path, str) and "\n" in netlist_or_path:
        text = netlist_or_path
    else:
        text, _ = _deck_text(netlist_or_path)
    pos: dict[str, tuple[float, float]] = {}
    for line in (text or "").splitlines():
        m = _POS.match(line.strip())
        if m:
            try:
                pos[m.group(1).lower()] = (float(m.group(2)), float(m.group(3)))
            except ValueError:
                continue
    return pos


def deck_to_graph(netlist_or_path) -> networkx.Graph:
    """Read a flow-network deck (text, path or parsed Netlist) into a :class:`networkx.Graph`.

    - Nodes: every deck node, ground ``"0"`` included; attribute ``pos`` from the
      ``* pos NODE X Y`` comments when present.
    - One edge per pipe (resistor) with ``conductance = 1/R`` (S), ``name``; parallel
      resistors between the same two nodes are merged (conductances add, ``name`` is the
      first, ``names`` lists them all).
    - ``graph["ground"] = "0"``; ``graph["sources"]`` = ``{node: pressure}`` and
      ``graph["source_names"]`` for V sources to ground; ``graph["flows"]`` = ``{node: flow
      injected}`` for I sources to ground; ``graph["voltage_sources"]`` /
      ``graph["current_sources"]`` = ``{name: (n+, n-, value)}`` for all of them;
      ``graph["other_elements"]``: names of elements that are not pipes or sources (ignored).

    **Raises:** :class:`~circuitprop._errors.NetlistError` for a deck that does not parse,
    :class:`~circuitprop._errors.CircuitpropError` for a missing file.
    """
    import networkx as nx

    from ..netlist import GROUND

    text, net = _deck_text(netlist_or_path)
    G = nx.Graph()
    G.add_node(GROUND)
    G.add_nodes_from(net.nodes())
    sources: dict[str, float] = {}
    source_names: dict[str, str] = {}
    flows: dict[str, float] = {}
    vs: dict[str, tuple[str, str, float]] = {}
    cs: dict[str, tuple[str, str, float]] = {}
    other: list[str] = []
    for el in net.elements:
        k = el.kind.lower()
        a, b = el.nodes[0], el.nodes[1]
        if k == "r":
            g = 1.0 / float(el.value)
            if G.has_edge(a, b):
                d = G.edges[a, b]
                d["conductance"] += g
                d["names"].append(el.name)
            else:
                G.add_edge(a, b, conductance=g, name=el.name, names=[el.name])
        elif k == "v":
            vs[el.name] = (a, b, float(el.value))
            if b == GROUND and a != GROUND:
                sources[a] = float(el.value)
                source_names[a] = el.name
            elif a == GROUND and b != GROUND:
                sources[b] = -float(el.value)
                source_names[b] = el.name
        elif k == "i":
            cs[el.name] = (a, b, float(el.value))
            if a == GROUND and b != GROUND:
                flows[b] = flows.get(b, 0.0) + float(el.value)
            elif b == GROUND and a != GROUND:
                flows[a] = flows.get(a, 0.0) - float(el.value)
        else:
            other.append(el.name)
    pos = read_positions(text) if text else {}
    for n, p in pos.items():
        if n in G:
            G.nodes[n]["pos"] = p
    G.graph.update(ground=GROUND, sources=sources, source_names=source_names, flows=flows,
                   voltage_sources=vs, current_sources=cs, other_elements=other,
                   title=net.title)
    return G
