"""Graph view of a netlist and the topology checks that refuse ill-posed circuits.

Three public functions:

- :func:`netlist_graph` builds a :class:`networkx.MultiGraph` (for plotting and inspection).
- :func:`check_topology` raises :class:`~circuitprop._errors.TopologyError` for circuits
  ngspice cannot solve sensibly at DC:

  1. a node or island of nodes with no DC path to ground. DC-conducting branches are R, D,
     V, L and the outputs of E and H; C, I and the outputs of G and F do not conduct at DC.
     A MOSFET conducts between drain, source and bulk (channel and junctions); its gate is
     a control input.
     This covers cut-sets of current sources / capacitors (rule 3) and control nodes of
     E/G that nothing else grounds (rule 5). A dangling resistor terminal is fine.
  2. a loop of voltage-defining branches (V, L, E outputs, H outputs), including two
     sources across the same pair of nodes and a branch from a node to itself.

- :func:`voltage_trees` describes the spanning forest of the voltage-defining branches,
  which the circuit compiler uses to eliminate node voltages.

Everything here is linear in the size of the netlist (union-find and breadth-first
search on plain dicts); networkx is only used by :func:`netlist_graph`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import networkx

import contextlib
import dataclasses
import gc
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence

from circuitprop._errors import TopologyError
from circuitprop.netlist._types import GROUND, Element, Netlist

__all__ = [
    "DC_CONDUCTING",
    "VOLTAGE_DEFINING",
    "VoltageTree",
    "check_topology",
    "netlist_graph",
    "voltage_trees",
]

#: Element kinds whose (output) branch conducts at DC.
DC_CONDUCTING = frozenset("rdvleh")
#: Element kinds whose (output) branch fixes a voltage difference (or shorts, for L).
VOLTAGE_DEFINING = frozenset("vleh")

#: How many names a message lists before "and N more".
_MAX_NAMES = 10


# ---------------------------------------------------------------------------- helpers


def _names(items: Sequence[str], limit: int = _MAX_NAMES) -> str:
    """``a, b, c`` or ``a, b, ..., j and 5 more``."""
    items = list(items)
    if len(items) <= limit:
        return ", ".join(items)
    return f"{', '.join(items[:limit])} and {len(items) - limit} more"


def _branch_nodes(el: Element) -> tuple[str, str]:
    """The two terminals of the element's (output) branch (a MOSFET's: drain and source)."""
    if len(el.nodes) < 2:
        raise TopologyError.at(
            f"element {el.name} has {len(el.nodes)} node(s), needs at least 2", el.location
        )
    if el.kind == "m" and len(el.nodes) == 4:
        return el.nodes[0], el.nodes[2]
    return el.nodes[0], el.nodes[1]


class _UnionFind:
    """Union-find over node names with path halving and union by size."""

    __slots__ = ("parent", "size")

    def __init__(self, items: Iterable[str] = ()) -> None:
        self.parent: dict[str, str] = {x: x for x in items}
        self.size: dict[str, int] = {}

    def find(self, x: str) -> str:
        parent = self.parent
        p = parent.setdefault(x, x)
        while p != x:
            gp = parent[p]
            parent[x] = gp
            x, p = gp, parent[gp]
        return x

    def union(self, a: str, b: str) -> bool:
        """Join the sets of ``a`` and ``b``; False when they were already one set."""
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return False
        size = self.size
        sa, sb = size.get(ra, 1), size.get(rb, 1)
        if sa < sb:
            ra, rb = rb, ra
        self.parent[rb] = ra
        size[ra] = sa + sb
        return True


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector: the passes below allocate hundreds of thousands
    of small tuples and lists (no cycles), and collections triggered by them would
    otherwise take about half the time on large netlists."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _error(message: str, netlist: Netlist, culprits: Iterable[Element]) -> TopologyError:
    """A TopologyError located at the first culprit (in deck order) that has a location."""
    for el in culprits:
        if el.location is not None:
            return TopologyError.at(message, el.location)
    return TopologyError(message, netlist.source)


# ---------------------------------------------------------------------------- the graph


def netlist_graph(netlist: Netlist) -> networkx.MultiGraph:
    """The circuit as an undirected :class:`networkx.MultiGraph`.

    - Graph nodes are node names: ground ``"0"`` (always present, first) then every node of
      the netlist in order of first appearance, control nodes of E/G included (a node used
      only as a control input is an isolated graph node).
    - One edge per element branch, keyed by the element name, between its two (output)
      terminals: R V I D C L, the output ``n+ n-`` of E and G, the output of F and H.
      Edge attributes: ``name``, ``kind``, ``value``, ``n_plus``, ``n_minus`` (the
      orientation, which the undirected graph does not keep), ``dc`` (the branch conducts
      at DC), ``voltage_defining`` (V, L, E, H) and, for F/H, ``control`` (the name of the
      controlling V source). A MOSFET's edge joins its drain and source.
    - ``graph.graph["controls"]``: ``{name: (nc_plus, nc_minus)}`` for every E and G
      element (the controlling pair is not an edge).
    """
    import networkx as nx  # imported here: a solve does not pay for it

    g = nx.MultiGraph()
    g.graph["title"] = netlist.title
    g.graph["source"] = netlist.source
    controls: dict[str, tuple[str, str]] = {}
    g.graph["controls"] = controls
    g.add_node(GROUND)
    g.add_nodes_from(netlist.nodes())
    for el in netlist.elements:
        a, b = _branch_nodes(el)
        attrs = {
            "name": el.name,
            "kind": el.kind,
            "value": el.value,
            "n_plus": a,
            "n_minus": b,
            "dc": el.kind in DC_CONDUCTING or el.kind == "m",
            "voltage_defining": el.kind in VOLTAGE_DEFINING,
        }
        if el.kind in ("f", "h"):
            attrs["control"] = el.control
        g.add_edge(a, b, key=el.name, **attrs)
        if el.kind in ("e", "g") and len(el.nodes) >= 4:
            controls[el.name] = (el.nodes[2], el.nodes[3])
    return g


# ---------------------------------------------------------------------------- loops


def _voltage_branches(netlist: Netlist) -> list[Element]:
    return [el for el in netlist.elements if el.kind in VOLTAGE_DEFINING]


def _tree_path(
    parent: dict[str, tuple[str, str] | None], depth: dict[str, int], u: str, v: str
) -> list[str]:
    """Branch names on the forest path between ``u`` and ``v`` (same tree)."""
    left: list[str] = []
    right: list[str] = []
    while depth[u] > depth[v]:
        p, br = parent[u]  # type: ignore[misc]
        left.append(br)
        u = p
    while depth[v] > depth[u]:
        p, br = parent[v]  # type: ignore[misc]
        right.append(br)
        v = p
    while u != v:
        pu, bu = parent[u]  # type: ignore[misc]
        pv, bv = parent[v]  # type: ignore[misc]
        left.append(bu)
        right.append(bv)
        u, v = pu, pv
    return left + right[::-1]


@dataclasses.dataclass
class _Loop:
    closer: Element  # the branch whose terminals the earlier branches already connected
    elements: list[Element]  # every branch of the cycle, deck order (empty: not spelled out)


def _find_loops(branches: Sequence[Element]) -> tuple[list[_Loop], list[Element]]:
    """Fundamental loops of the voltage-defining branches.

    Returns ``(loops, tree)``: every branch that closes a loop (a self-loop, or one whose
    terminals the earlier branches already connect) yields one :class:`_Loop`; ``tree`` is
    the list of the other (spanning-forest) branches, deck order. Only the first
    ``_MAX_NAMES`` loops have their elements spelled out.
    """
    uf = _UnionFind()
    tree: list[Element] = []
    closing: list[Element] = []
    for el in branches:
        a, b = _branch_nodes(el)
        if a == b or not uf.union(a, b):
            closing.append(el)
        else:
            tree.append(el)
    if not closing:
        return [], tree

    # Root the forest (BFS) to recover the tree path between the ends of a closing branch.
    adj: dict[str, list[tuple[str, str]]] = {}
    for el in tree:
        a, b = el.nodes[0], el.nodes[1]
        adj.setdefault(a, []).append((b, el.name))
        adj.setdefault(b, []).append((a, el.name))
    parent: dict[str, tuple[str, str] | None] = {}
    depth: dict[str, int] = {}
    for start in adj:
        if start in parent:
            continue
        parent[start] = None
        depth[start] = 0
        queue = deque([start])
        while queue:
            u = queue.popleft()
            for w, br in adj[u]:
                if w not in parent:
                    parent[w] = (u, br)
                    depth[w] = depth[u] + 1
                    queue.append(w)

    order = {el.name: i for i, el in enumerate(branches)}
    by_name = {el.name: el for el in branches}
    loops: list[_Loop] = []
    for k, el in enumerate(closing):
        if k >= _MAX_NAMES:
            loops.append(_Loop(el, []))
            continue
        a, b = el.nodes[0], el.nodes[1]
        names = {el.name} if a == b else {el.name, *_tree_path(parent, depth, a, b)}
        loops.append(_Loop(el, sorted((by_name[n] for n in names), key=lambda e: order[e.name])))
    return loops, tree


def _loop_text(loop: _Loop) -> str:
    """Deck order; a loop too long to list in full starts with the branch that closes it."""
    names = [el.name for el in loop.elements]
    if len(names) > _MAX_NAMES:
        names = [loop.closer.name, *(n for n in names if n != loop.closer.name)]
    return _names(names)


def _loop_message(loops: list[_Loop]) -> str:
    shown = [lp for lp in loops if lp.elements]
    text = "; ".join(_loop_text(lp) for lp in shown)
    more = len(loops) - len(shown)
    if more:
        text += f"; and {more} more loop{'s' if more > 1 else ''}"
    noun = "loop" if len(loops) == 1 else "loops"
    return f"{noun} of voltage sources/inductors (V, L, E, H outputs): {text}"


# ---------------------------------------------------------------------------- floating


@dataclasses.dataclass
class _Island:
    nodes: list[str]
    cut: list[Element]  # C, I, G/F-output branches with one terminal inside, one outside
    controls: list[Element]  # E/G elements with a control node inside, MOSFETs with the gate
    touching: list[Element]  # every element with a terminal inside (for the location)


def _floating_islands(netlist: Netlist) -> list[_Island]:
    """Islands of nodes with no DC path to ground, in order of first appearance."""
    nodes = netlist.nodes()
    uf = _UnionFind([GROUND, *nodes])
    for el in netlist.elements:
        if el.kind in DC_CONDUCTING:
            a, b = _branch_nodes(el)
            uf.union(a, b)
        elif el.kind == "m" and len(el.nodes) == 4:  # drain, source, bulk conduct; gate not
            uf.union(el.nodes[0], el.nodes[3])
            uf.union(el.nodes[2], el.nodes[3])
    ground_root = uf.find(GROUND)

    islands: dict[str, _Island] = {}
    for n in nodes:
        r = uf.find(n)
        if r != ground_root:
            isl = islands.get(r)
            if isl is None:
                isl = islands[r] = _Island([], [], [], [])
            isl.nodes.append(n)
    if not islands:
        return []

    for el in netlist.elements:
        a, b = _branch_nodes(el)
        ra, rb = uf.find(a), uf.find(b)
        seen: set[str] = set()
        for r in (ra, rb):
            isl = islands.get(r)
            if isl is not None and r not in seen:
                seen.add(r)
                isl.touching.append(el)
                if ra != rb:
                    isl.cut.append(el)
        if el.kind in ("e", "g", "m"):
            for n in (el.nodes[1:2] if el.kind == "m" else el.nodes[2:4]):
                r = uf.find(n)
                isl = islands.get(r)
                if isl is not None and (not isl.controls or isl.controls[-1] is not el):
                    isl.controls.append(el)
                    if r not in seen:
                        seen.add(r)
                        isl.touching.append(el)
    return list(islands.values())


def _island_text(isl: _Island) -> str:
    noun = "node" if len(isl.nodes) == 1 else "nodes"
    why: list[str] = []
    if isl.cut:
        why.append(
            "connected to the rest only through current sources/capacitors "
            + _names([el.name for el in isl.cut])
        )
    controls = [el.name for el in isl.controls if el.kind != "m"]
    gates = [el.name for el in isl.controls if el.kind == "m"]
    if controls:
        why.append("used as a control input of " + _names(controls))
    if gates:
        why.append("the gate of MOSFET " + _names(gates) + " (a gate conducts no DC current)")
    if not why:
        why.append("connected to nothing else")
    return f"{noun} {_names(isl.nodes)} ({'; '.join(why)})"


def _floating_message(netlist: Netlist, islands: list[_Island]) -> str:
    shown = islands[:_MAX_NAMES]
    text = "; ".join(_island_text(isl) for isl in shown)
    more = len(islands) - len(shown)
    if more:
        text += f"; and {more} more floating island{'s' if more > 1 else ''}"
    head = "no DC path to ground"
    if not any(GROUND in el.nodes for el in netlist.elements):
        head += " (no element connects to ground '0')"
    return f"{head}: {text}"


def _island_culprits(isl: _Island) -> list[Element]:
    """Elements to blame, most specific first: cut branches, control uses, anything else."""
    return [*isl.cut, *isl.controls, *isl.touching]


# ---------------------------------------------------------------------------- checks


def check_topology(netlist: Netlist) -> None:
    """Raise :class:`TopologyError` if the circuit is ill-posed at DC; return None otherwise.

    Checks (all problems found are reported in one message, loops first):

    - loops of voltage-defining branches (V, L, E outputs, H outputs): the message names
      the elements of each loop (``loop of voltage sources/inductors ...: v1, v2``);
    - nodes or islands with no DC path to ground (through R, D, V, L, E/H outputs), which
      includes cut-sets of current sources / capacitors / G and F outputs and E/G control
      nodes nothing grounds: the message names each island's nodes and the elements that
      connect it to the rest (``no DC path to ground: node b (connected to the rest only
      through current sources/capacitors c1)``).

    The error carries the location of the first culprit element (a loop element, else an
    element that connects the first floating island), or the netlist's source file when no
    element has a location. A resistor with a dangling terminal is accepted.
    """
    with _gc_paused():
        _check_topology(netlist)


def _check_topology(netlist: Netlist) -> None:
    parts: list[str] = []
    culprits: list[Element] = []
    loops, _ = _find_loops(_voltage_branches(netlist))
    if loops:
        parts.append(_loop_message(loops))
        culprits.extend(loops[0].elements)
    islands = _floating_islands(netlist)
    if islands:
        parts.append(_floating_message(netlist, islands))
        culprits.extend(_island_culprits(islands[0]))
    if parts:
        raise _error("; also ".join(parts), netlist, culprits)


# ---------------------------------------------------------------------------- trees


class _Paths(Mapping):
    """Read-only ``node -> [(branch, sign), ...]`` view computed on demand from parents.

    Lookup costs O(depth); materialize with ``dict(tree.paths)`` if needed.
    """

    __slots__ = ("_parent",)

    def __init__(self, parent: Mapping[str, tuple[str, str, int]]) -> None:
        self._parent = parent

    def __getitem__(self, node: str) -> list[tuple[str, int]]:
        parent = self._parent
        step = parent[node]
        path: list[tuple[str, int]] = []
        while True:
            up, branch, sign = step
            path.append((branch, sign))
            if up not in parent:
                return path
            step = parent[up]

    def __iter__(self) -> Iterator[str]:
        return iter(self._parent)

    def __len__(self) -> int:
        return len(self._parent)

    def __repr__(self) -> str:
        return f"{{{', '.join(f'{k!r}: {v!r}' for k, v in self.items())}}}"


@dataclasses.dataclass(frozen=True)
class VoltageTree:
    """One connected component of the voltage-defining branches (V, L, E/H outputs).

    **Fields:**

    - ``root``: ``"0"`` when the component contains ground, else the component's node that
      comes first in :meth:`Netlist.nodes` order (order of first appearance in the deck).
    - ``nodes``: every node of the component except the root, in breadth-first order from
      the root, so a node's parent is the root or comes earlier in ``nodes``.
    - ``branches``: ``(name, n_plus, n_minus)`` of the component's branches, deck order.
    - ``parent``: ``{node: (parent_node, branch_name, sign)}`` for every non-root node, one
      step towards the root: ``v(node) = v(parent_node) + sign * V(branch)`` where
      ``V(branch) = v(n_plus) - v(n_minus)``; ``sign`` is ``+1`` when ``node`` is the
      branch's ``n_plus``, ``-1`` when it is its ``n_minus``.
    - ``paths`` (property): read-only mapping ``{node: [(branch_name, sign), ...]}`` for
      every non-root node (the root is not a key): the branches from ``node`` to the root,
      nearest first, so ``v(node) = v(root) + sum(sign * V(branch))``. Computed lazily
      (O(depth) per lookup); walk ``nodes`` with ``parent`` for an O(n) reconstruction.
    """

    root: str
    nodes: tuple[str, ...]
    branches: tuple[tuple[str, str, str], ...]
    parent: dict[str, tuple[str, str, int]]

    @property
    def paths(self) -> Mapping[str, list[tuple[str, int]]]:
        return _Paths(self.parent)

    def voltages(
        self, branch_voltages: Mapping[str, float], root_voltage: float = 0.0
    ) -> dict[str, float]:
        """``{node: v(node)}`` for the root and every node, given each branch's ``V(branch)``."""
        v = {self.root: root_voltage}
        for node in self.nodes:
            up, branch, sign = self.parent[node]
            v[node] = v[up] + sign * branch_voltages[branch]
        return v


def voltage_trees(netlist: Netlist) -> list[VoltageTree]:
    """The spanning forest of the voltage-defining branches (V, L, E outputs, H outputs).

    Returns ``list[VoltageTree]``, one per connected component of those branches (only nodes
    touched by at least one of them appear), ordered by the position of the component's
    root: the ground component first, then by first appearance in :meth:`Netlist.nodes`.
    See :class:`VoltageTree` for the per-node paths and their sign convention.

    Raises :class:`TopologyError` if the branches contain a loop (the loop part of
    :func:`check_topology`'s message, located at the loop's first element). Floating nodes
    are not checked here; call :func:`check_topology` for those.
    """
    with _gc_paused():
        return _voltage_trees(netlist)


def _voltage_trees(netlist: Netlist) -> list[VoltageTree]:
    branches = _voltage_branches(netlist)
    if not branches:
        return []

    # adj[u] holds (w, branch, s) for each branch between u and w, with s = +1 when w is the
    # branch's n+ (then v(w) = v(u) + V(branch)) and s = -1 when w is its n-.
    adj: dict[str, list[tuple[str, str, int]]] = {}
    for el in branches:
        a, b = _branch_nodes(el)
        adj.setdefault(a, []).append((b, el.name, -1))
        adj.setdefault(b, []).append((a, el.name, 1))

    # Breadth-first from each not yet reached node in rank order (ground, then first
    # appearance): the first node reached of each component is its root.
    comp: dict[str, int] = {}
    found: list[tuple[str, list[str], dict[str, tuple[str, str, int]]]] = []
    for root in (GROUND, *netlist.nodes()):
        if root in comp or root not in adj:
            continue
        k = len(found)
        comp[root] = k
        parent: dict[str, tuple[str, str, int]] = {}
        order: list[str] = []  # doubles as the BFS queue (a list grows while iterated)
        for w, br, s in adj[root]:
            if w not in comp:
                comp[w] = k
                parent[w] = (root, br, s)
                order.append(w)
        for u in order:
            for w, br, s in adj[u]:
                if w not in comp:
                    comp[w] = k
                    parent[w] = (u, br, s)
                    order.append(w)
        found.append((root, order, parent))

    # A forest has exactly (nodes - components) branches; anything more closes a loop.
    if len(branches) != len(comp) - len(found):
        loops, _ = _find_loops(branches)
        raise _error(_loop_message(loops), netlist, loops[0].elements)

    per_tree: list[list[tuple[str, str, str]]] = [[] for _ in found]
    for el in branches:
        a, b = el.nodes[0], el.nodes[1]
        per_tree[comp[a]].append((el.name, a, b))
    return [
        VoltageTree(root, tuple(order), tuple(brs), parent)
        for (root, order, parent), brs in zip(found, per_tree)
    ]
