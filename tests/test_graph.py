"""Topology checks, the netlist graph and the voltage-branch spanning forest."""

from __future__ import annotations

import random
import re
import time
from collections import deque

import networkx as nx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from circuitprop._errors import TopologyError
from circuitprop._graph import (
    VoltageTree,
    check_topology,
    netlist_graph,
    voltage_trees,
)
from circuitprop.netlist._types import Element, Location, Netlist


def el(text: str, line: int | None = None, file: str = "deck.cir") -> Element:
    """``"r1 a 0 1k"``-style shorthand: kind from the first letter, last field the value
    (F/H: ``"f1 a 0 vs 2"``, control source then gain)."""
    parts = text.split()
    name = parts[0].lower()
    kind = name[0]
    loc = Location(file, line) if line is not None else None
    if kind in "fh":
        return Element(kind, name, tuple(parts[1:3]), float(parts[4]), control=parts[3],
                       location=loc)
    if kind == "d":
        return Element(kind, name, tuple(parts[1:3]), 0.0, model=parts[3], location=loc)
    nodes = tuple(parts[1:5]) if kind in "eg" else tuple(parts[1:3])
    value = parts[len(nodes) + 1] if len(parts) > len(nodes) + 1 else "0"
    mult = {"k": 1e3, "m": 1e-3, "u": 1e-6}
    value = float(value[:-1]) * mult[value[-1]] if value[-1] in mult else float(value)
    return Element(kind, name, nodes, value, location=loc)


def deck(*lines: str, located: bool = True) -> Netlist:
    return Netlist(
        title="t",
        elements=[el(t, i + 2 if located else None) for i, t in enumerate(lines)],
        source="deck.cir",
    )


def refuse(*lines: str) -> TopologyError:
    with pytest.raises(TopologyError) as info:
        check_topology(deck(*lines))
    return info.value


# ---------------------------------------------------------------------------- good circuits

GOOD = {
    "divider": ["v1 in 0 5", "r1 in out 1k", "r2 out 0 1k"],
    "dangling resistor": ["v1 a 0 1", "r1 a b 1k"],
    "dangling resistor chain": ["v1 a 0 1", "r1 a b 1k", "r2 b c 1k"],
    "floating V between grounded nodes": ["r1 a 0 1k", "r2 b 0 1k", "v1 a b 1"],
    "current source into resistor": ["i1 0 a 1m", "r1 a 0 1k"],
    "capacitor between grounded nodes": ["v1 a 0 1", "r1 a b 1k", "c1 b 0 1u", "r2 b 0 1k"],
    "inductor in series": ["v1 a 0 1", "l1 a b 1m", "r1 b 0 1k"],
    "diode": ["v1 a 0 1", "d1 a b dm", "r1 b 0 1k"],
    "vcvs": ["v1 a 0 1", "r1 a 0 1k", "e1 out 0 a 0 2", "r2 out 0 1k"],
    "vccs into resistor": ["v1 a 0 1", "r1 a 0 1k", "g1 0 c a 0 1m", "r2 c 0 1k"],
    "cccs and ammeter": ["v1 a 0 1", "vs a b 0", "r1 b 0 1k", "f1 0 c vs 2", "r2 c 0 1k"],
    "ccvs": ["v1 a 0 1", "vs a b 0", "r1 b 0 1k", "h1 c 0 vs 100"],
    "ccvs floating output grounded elsewhere": [
        "v1 a 0 1", "vs a b 0", "r1 b 0 1k", "h1 c d vs 100", "r2 d 0 1k"],
    "current source from node to itself": ["v1 a 0 1", "r1 a 0 1k", "i1 a a 1m"],
    "capacitor across same node": ["v1 a 0 1", "r1 a 0 1k", "c1 a a 1u"],
    "V chain to ground": ["v1 a 0 1", "v2 b a 1", "v3 c b 1", "r1 c 0 1k"],
}


@pytest.mark.parametrize("lines", GOOD.values(), ids=GOOD.keys())
def test_good_circuits_pass(lines):
    assert check_topology(deck(*lines)) is None


def test_empty_netlist_passes():
    assert check_topology(Netlist(title="t", elements=[])) is None
    assert voltage_trees(Netlist(title="t", elements=[])) == []


# ---------------------------------------------------------------------------- floating nodes


def test_floating_node_behind_capacitor():
    err = refuse("v1 a 0 1", "r1 a 0 1k", "c1 a b 1u")
    msg = str(err)
    assert "no DC path to ground" in msg
    assert "node b " in msg and "c1" in msg
    assert "v1" not in msg and "r1" not in msg
    assert (err.file, err.line) == ("deck.cir", 4)


def test_floating_island_behind_capacitor_names_all_nodes():
    err = refuse("v1 a 0 1", "r1 a 0 1k", "c1 a b 1u", "r2 b c 1k", "r3 c d 1k")
    assert "nodes b, c, d" in str(err)
    assert "c1" in str(err)


def test_island_fed_only_by_current_source():
    err = refuse("v1 a 0 1", "r1 a 0 1k", "i1 0 b 1m")
    msg = str(err)
    assert "node b" in msg and "i1" in msg
    assert "current sources" in msg
    assert err.line == 4


def test_island_fed_by_current_source_with_internal_resistors():
    err = refuse("v1 a 0 1", "r1 a 0 1k", "i1 0 b 1m", "r2 b c 1k", "r3 c b 2k")
    msg = str(err)
    assert "nodes b, c" in msg and "i1" in msg
    assert "r2" not in msg and "r3" not in msg  # internal branches are not culprits


def test_island_connected_by_g_only():
    err = refuse("v1 a 0 1", "r1 a 0 1k", "g1 0 c a 0 1m", "r2 c d 1k")
    msg = str(err)
    assert "nodes c, d" in msg and "g1" in msg
    assert err.line == 4


def test_island_connected_by_f_only():
    err = refuse("v1 a 0 1", "vs a b 0", "r1 b 0 1k", "f1 0 c vs 2")
    assert "node c" in str(err) and "f1" in str(err)


def test_cut_set_of_current_sources_and_capacitors():
    err = refuse("v1 a 0 1", "r1 a 0 1k", "i1 a b 1m", "c1 b 0 1u", "r2 b c 1k")
    msg = str(err)
    assert "nodes b, c" in msg and "i1, c1" in msg


def test_two_floating_islands_reported():
    err = refuse("v1 a 0 1", "r1 a 0 1k", "c1 a b 1u", "i1 0 x 1m", "r2 x y 1k")
    msg = str(err)
    assert "node b" in msg and "c1" in msg
    assert "nodes x, y" in msg and "i1" in msg
    assert err.line == 4  # first island's culprit


def test_floating_voltage_source_island():
    # v1 and r1 form a closed island with no connection to the rest at all
    err = refuse("v0 g 0 1", "r0 g 0 1k", "v1 a b 1", "r1 a b 1k")
    msg = str(err)
    assert "nodes a, b" in msg and "connected to nothing else" in msg
    assert err.line == 4


def test_control_node_of_e_needs_dc_path():
    err = refuse("v1 a 0 1", "r1 a 0 1k", "e1 out 0 c 0 2", "r2 out 0 1k")
    msg = str(err)
    assert "node c" in msg and "control input of e1" in msg
    assert err.line == 4


def test_control_node_of_g_behind_capacitor():
    err = refuse("v1 a 0 1", "r1 a 0 1k", "c1 a c 1u", "g1 0 out c 0 1m", "r2 out 0 1k")
    msg = str(err)
    assert "node c" in msg and "c1" in msg and "control input of g1" in msg
    assert err.line == 4  # the capacitor, first culprit in deck order


def test_control_nodes_grounded_resistively_pass():
    check_topology(deck("v1 a 0 1", "r1 a c 1k", "r3 c 0 1k", "e1 o 0 c a 2", "r2 o 0 1k"))


def test_no_ground_at_all():
    err = refuse("v1 a b 1", "r1 a b 1k")
    assert "no element connects to ground" in str(err)
    assert "nodes a, b" in str(err)


def test_capacitor_only_to_ground():
    err = refuse("c1 a 0 1u")
    assert "node a" in str(err) and "c1" in str(err)


def test_many_floating_nodes_truncated():
    lines = ["v1 a 0 1", "r1 a 0 1k"] + [f"c{k} a n{k} 1u" for k in range(25)]
    msg = str(refuse(*lines))
    assert "n0" in msg and "n9" in msg
    assert "n10 " not in msg and "n24" not in msg
    assert "and 15 more floating islands" in msg
    assert len(msg) < 2000


def test_big_island_node_list_truncated():
    lines = ["v1 a 0 1", "r1 a 0 1k", "c1 a n0 1u"] + [f"r{k + 10} n{k} n{k + 1} 1k"
                                                        for k in range(30)]
    msg = str(refuse(*lines))
    assert "n0, n1," in msg and "and 21 more" in msg
    assert "n30" not in msg


# ---------------------------------------------------------------------------- loops


def test_two_parallel_v_sources():
    err = refuse("v1 a 0 1", "v2 a 0 2", "r1 a 0 1k")
    msg = str(err)
    assert "loop" in msg and "v1, v2" in msg
    assert "r1" not in msg
    assert err.line == 2


def test_two_antiparallel_v_sources_between_nodes():
    err = refuse("r1 a 0 1k", "r2 b 0 1k", "v1 a b 1", "v2 b a 1")
    assert "v1, v2" in str(err)
    assert err.line == 4


def test_v_loop_through_inductor():
    err = refuse("r0 x 0 1k", "v1 a 0 1", "r1 a b 1k", "l1 a c 1m", "v2 c 0 1")
    msg = str(err)
    assert "v1, l1, v2" in msg
    assert "r1" not in msg and "r0" not in msg


def test_v_source_shorted_by_inductor_ground_loop():
    err = refuse("v1 a 0 1", "l1 a 0 1m", "r1 a 0 1k")
    assert "v1, l1" in str(err)


def test_triangle_of_three_v_sources():
    err = refuse("v1 a b 1", "v2 b c 1", "v3 c a 1", "r1 a 0 1k")
    msg = str(err)
    assert "v1, v2, v3" in msg
    assert "r1" not in msg
    assert err.line == 2


def test_zero_volt_source_from_node_to_itself():
    err = refuse("v1 a 0 1", "r1 a 0 1k", "vz a a 0")
    msg = str(err)
    assert "loop" in msg and "vz" in msg
    assert "v1" not in msg
    assert err.line == 4


def test_inductor_from_node_to_itself():
    assert "l1" in str(refuse("v1 a 0 1", "r1 a 0 1k", "l1 a a 1m"))


def test_loop_through_e_and_h_outputs():
    err = refuse("v1 a 0 1", "vs a b 0", "r1 b 0 1k", "e1 c 0 a 0 2", "h1 c 0 vs 10")
    msg = str(err)
    assert "e1, h1" in msg
    assert "v1" not in msg and "vs" not in msg


def test_loop_only_closing_through_ground():
    # v1 from a to ground and v2 from b to ground, v3 between a and b: loop v1 v2 v3
    err = refuse("v1 a 0 1", "v2 b 0 1", "r1 x 0 1k", "v3 a b 1")
    assert "v1, v2, v3" in str(err)


def test_several_loops_listed():
    err = refuse("v1 a 0 1", "v2 a 0 1", "r1 a 0 1k", "v3 b 0 1", "l3 b 0 1m")
    msg = str(err)
    assert "loops" in msg and "v1, v2" in msg and "v3, l3" in msg


def test_loop_and_floating_reported_together():
    err = refuse("v1 a 0 1", "v2 a 0 1", "c1 a b 1u")
    msg = str(err)
    assert "v1, v2" in msg and "node b" in msg and "c1" in msg
    assert err.line == 2  # the loop comes first


def test_error_without_locations_uses_netlist_source():
    with pytest.raises(TopologyError) as info:
        check_topology(deck("v1 a 0 1", "v2 a 0 1", located=False))
    assert info.value.file == "deck.cir" and info.value.line is None
    assert str(info.value).startswith("deck.cir: ")


def test_long_loop_is_named_completely():
    lines = [f"v{k} n{k} n{k + 1} 1" for k in range(8)] + ["v99 n8 n0 1", "r1 n0 0 1k"]
    msg = str(refuse(*lines))
    for k in range(8):
        assert f"v{k}" in msg
    assert "v99" in msg and "r1" not in msg


# ---------------------------------------------------------------------------- graph


def test_netlist_graph_edges_and_controls():
    nl = deck("v1 in 0 5", "r1 in out 1k", "c1 out 0 1u", "e1 x 0 out 0 2", "g1 0 y in out 1m",
              "vs x z 0", "f1 y 0 vs 3", "h1 z 0 vs 10")
    g = netlist_graph(nl)
    assert isinstance(g, nx.MultiGraph)
    assert list(g.nodes) == ["0", "in", "out", "x", "y", "z"]
    assert g.number_of_edges() == len(nl.elements)
    data = g.get_edge_data("in", "out")["r1"]
    assert data["name"] == "r1" and data["kind"] == "r" and data["value"] == 1e3
    assert g.has_edge("x", "0", key="e1") and g.has_edge("0", "y", key="g1")
    assert g.edges["y", "0", "g1"]["n_plus"] == "0"
    assert g.edges["y", "0", "f1"]["control"] == "vs"
    assert not g.edges["y", "0", "f1"]["dc"] and g.edges["z", "0", "h1"]["voltage_defining"]
    assert g.graph["controls"] == {"e1": ("out", "0"), "g1": ("in", "out")}


def test_netlist_graph_parallel_edges_and_control_only_node():
    nl = deck("v1 a 0 1", "v2 a 0 2", "e1 o 0 c 0 1")
    g = netlist_graph(nl)
    assert g.number_of_edges("a", "0") == 2
    assert "c" in g and g.degree("c") == 0


# ---------------------------------------------------------------------------- voltage_trees


def reconstruct(tree: VoltageTree, values: dict[str, float], root_v: float = 0.0):
    return {n: root_v + sum(s * values[b] for b, s in path) for n, path in tree.paths.items()}


def test_voltage_trees_hand_example():
    nl = deck("v1 a 0 5", "r1 a b 1k", "v2 b c 2", "l1 c d 1m", "e1 d 0 x 0 1", "r2 x 0 1k",
              "h1 p q vs 1", "vs q r 0", "r3 p 0 1k", "r4 r 0 1k")
    trees = voltage_trees(nl)
    assert [t.root for t in trees] == ["0", "p"]
    t0, t1 = trees
    assert t0.nodes == ("a", "d", "c", "b")  # breadth-first from ground
    assert t0.branches == (("v1", "a", "0"), ("v2", "b", "c"), ("l1", "c", "d"),
                           ("e1", "d", "0"))
    assert dict(t0.paths) == {
        "a": [("v1", 1)],
        "d": [("e1", 1)],
        "c": [("l1", 1), ("e1", 1)],
        "b": [("v2", 1), ("l1", 1), ("e1", 1)],
    }
    assert t0.parent["b"] == ("c", "v2", 1)
    assert t1.nodes == ("q", "r")
    assert t1.branches == (("h1", "p", "q"), ("vs", "q", "r"))
    assert dict(t1.paths) == {"q": [("h1", -1)], "r": [("vs", -1), ("h1", -1)]}
    assert t1.parent["r"] == ("q", "vs", -1)
    assert t1.voltages({"h1": 2.0, "vs": 0.5}, root_voltage=1.0) == {
        "p": 1.0, "q": -1.0, "r": -1.5}


def test_voltage_trees_chain_merges_through_inductor():
    nl = deck("v1 a 0 5", "r1 a b 1k", "v2 b c 2", "l1 c d 1m", "e1 d 0 x 0 1", "r2 x 0 1k")
    (t,) = voltage_trees(nl)
    assert t.root == "0"
    assert set(t.nodes) == {"a", "b", "c", "d"}
    vals = {"v1": 5.0, "v2": 2.0, "l1": 0.0, "e1": 3.0}
    v = reconstruct(t, vals)
    # d = 3, c = d + 0 = 3, b = c + 2 = 5, a = 5
    assert v == {"a": 5.0, "d": 3.0, "c": 3.0, "b": 5.0}  # sums of small integers: exact
    assert t.voltages(vals) == {"0": 0.0, **v}
    assert dict(t.paths)["b"] == [("v2", 1), ("l1", 1), ("e1", 1)]


def test_voltage_trees_root_is_first_appearance_without_ground():
    nl = deck("r1 z 0 1k", "r2 y 0 1k", "r3 x 0 1k", "v1 x y 1", "v2 z x 2")
    (t,) = voltage_trees(nl)
    assert t.root == "z"
    assert dict(t.paths) == {"x": [("v2", -1)], "y": [("v1", -1), ("v2", -1)]}
    v = t.voltages({"v1": 1.0, "v2": 2.0}, root_voltage=10.0)
    assert v == {"z": 10.0, "x": 8.0, "y": 7.0}


def test_voltage_trees_ground_first_and_paths_exclude_root():
    nl = deck("r1 a 0 1k", "v1 a b 1", "r2 b 0 1k", "v2 c 0 3", "r3 c 0 1k")
    trees = voltage_trees(nl)
    assert [t.root for t in trees] == ["0", "a"]
    assert "0" not in trees[0].paths and "a" not in trees[1].paths
    assert dict(trees[1].paths) == {"b": [("v1", -1)]}


def test_voltage_trees_raises_on_loop():
    with pytest.raises(TopologyError, match="v1, v2"):
        voltage_trees(deck("v1 a 0 1", "v2 a 0 2", "r1 a 0 1k"))
    with pytest.raises(TopologyError, match="vz"):
        voltage_trees(deck("vz a a 0", "r1 a 0 1k"))


def test_voltage_trees_ignores_non_voltage_branches():
    assert voltage_trees(deck("r1 a 0 1k", "i1 0 a 1m", "c1 a 0 1u", "g1 0 a a 0 1")) == []


@st.composite
def random_forest(draw):
    """Random forest of V branches over nodes 0, n1..nN with random orientation/values."""
    n = draw(st.integers(1, 25))
    nodes = ["0"] + [f"n{k}" for k in range(1, n + 1)]
    seed = draw(st.integers(0, 2**32 - 1))
    rng = random.Random(seed)
    perm = nodes[:]
    rng.shuffle(perm)
    edges = []
    for k in range(1, len(perm)):
        if rng.random() < 0.8:  # otherwise start a new tree
            a, b = perm[k], perm[rng.randrange(k)]
            if rng.random() < 0.5:
                a, b = b, a
            edges.append((a, b))
    rng.shuffle(edges)
    kinds = "vvvleh"
    elements = []
    values = {}
    for i, (a, b) in enumerate(edges):
        kind = rng.choice(kinds)
        name = f"{kind}{i}"
        values[name] = rng.uniform(-10, 10)
        nodes_ = (a, b, "0", "0") if kind == "e" else (a, b)
        elements.append(Element(kind, name, nodes_, 1.0, control="x" if kind == "h" else None))
    # resistors in random order so first-appearance order is arbitrary
    res = [Element("r", f"r{k}", (m, "0"), 1e3) for k, m in enumerate(nodes[1:])]
    rng.shuffle(res)
    mix = elements + res
    rng.shuffle(mix)
    return Netlist(title="t", elements=mix), edges, values, elements


@given(random_forest())
@settings(max_examples=200, deadline=None)
def test_voltage_trees_property(case):
    nl, edges, values, elements = case
    trees = voltage_trees(nl)
    # Direct BFS over the branch graph: voltage relative to each component's root.
    adj: dict[str, list[tuple[str, float]]] = {}
    for e in elements:
        a, b = e.nodes[0], e.nodes[1]
        adj.setdefault(a, []).append((b, -values[e.name]))  # v(b) = v(a) - V
        adj.setdefault(b, []).append((a, values[e.name]))  # v(a) = v(b) + V
    order = {n: i for i, n in enumerate(nl.nodes())}
    order["0"] = -1
    covered = set()
    for t in trees:
        assert t.root not in covered
        direct = {t.root: 0.0}
        q = deque([t.root])
        while q:
            u = q.popleft()
            for w, dv in adj[u]:
                if w not in direct:
                    direct[w] = direct[u] + dv
                    q.append(w)
        comp = set(direct)
        assert set(t.nodes) | {t.root} == comp
        assert t.root == min(comp, key=order.__getitem__)
        got = reconstruct(t, values)
        assert set(got) == comp - {t.root}
        for node, v in got.items():
            # at most 25 terms of |x| <= 10: measured worst 1.4e-14 over 30 000 forests
            assert v == pytest.approx(direct[node], rel=0, abs=1e-13)
        assert t.voltages(values) == pytest.approx(direct, rel=0, abs=1e-13)
        # parents come before children in ``nodes``
        pos = {n: i for i, n in enumerate(t.nodes)}
        pos[t.root] = -1
        for node in t.nodes:
            assert pos[t.parent[node][0]] < pos[node]
        covered |= comp
    assert covered == {n for e in edges for n in e}
    assert [order[t.root] for t in trees] == sorted(order[t.root] for t in trees)
    # the forest plus resistors to ground is a good circuit
    check_topology(nl)


@given(random_forest(), st.integers(0, 10**6))
@settings(max_examples=100, deadline=None)
def test_extra_branch_inside_a_tree_is_a_loop(case, pick):
    nl = case[0]
    trees = [t for t in voltage_trees(nl) if t.nodes]
    if not trees:
        return
    t = trees[pick % len(trees)]
    comp = [t.root, *t.nodes]
    a = comp[pick % len(comp)]
    b = comp[(pick // 7) % len(comp)]
    bad = Netlist(title="t", elements=[*nl.elements, Element("v", "vloop", (a, b), 1.0)])
    with pytest.raises(TopologyError, match="vloop"):
        check_topology(bad)
    with pytest.raises(TopologyError, match="vloop"):
        voltage_trees(bad)


# ---------------------------------------------------------------------------- performance


def test_100k_elements_fast():
    n = 50_000
    elements = [Element("v", "v0", ("n0", "0"), 1.0)]
    for k in range(1, n):
        elements.append(Element("v" if k % 2 else "l", f"b{k}", (f"n{k}", f"n{k - 1}"), 1.0))
    for k in range(n):
        elements.append(Element("r", f"r{k}", (f"n{k}", f"m{k}"), 1e3))
    nl = Netlist(title="t", elements=elements)
    t0 = time.perf_counter()
    check_topology(nl)
    trees = voltage_trees(nl)
    elapsed = time.perf_counter() - t0
    assert len(trees) == 1 and len(trees[0].nodes) == n
    values = {e.name: float(k % 3) for k, e in enumerate(elements[:n])}
    v = trees[0].voltages(values)
    assert v[f"n{n - 1}"] == sum(values.values())  # integer-valued floats: exact
    assert v["n4"] == 0 + 1 + 2 + 0 + 1
    assert elapsed < 2.0, elapsed  # typically a few tenths of a second

    # a failing 100k deck (one floating node, one loop) is also quick
    bad = Netlist(title="t", elements=[*elements, Element("c", "cx", ("n5", "zz"), 1e-6),
                                       Element("v", "vx", ("n3", "n90"), 1.0)])
    t0 = time.perf_counter()
    with pytest.raises(TopologyError) as info:
        check_topology(bad)
    assert time.perf_counter() - t0 < 2.0
    assert "vx" in str(info.value) and "zz" in str(info.value) and "cx" in str(info.value)


def test_many_loops_truncated():
    lines = ["r1 a 0 1k"] + [f"v{k} a 0 1" for k in range(15)]
    msg = str(refuse(*lines))
    assert "loops" in msg and "v0, v1; v0, v2" in msg and "v0, v10" in msg
    assert "v0, v11" not in msg and "and 4 more loops" in msg


# ---------------------------------------------------------------------------- oracle

_NODES = ["0", "a", "b", "c", "d", "e"]


@st.composite
def random_circuit(draw):
    n = draw(st.integers(1, 9))
    elements = []
    for i in range(n):
        kind = draw(st.sampled_from("rrvvlcidegfh"))
        a = draw(st.sampled_from(_NODES))
        b = draw(st.sampled_from(_NODES))
        nodes = (a, b)
        if kind in "eg":
            nodes += (draw(st.sampled_from(_NODES)), draw(st.sampled_from(_NODES)))
        elements.append(Element(kind, f"{kind}{i}", nodes, 1.0,
                                control="vs" if kind in "fh" else None))
    return Netlist(title="t", elements=elements)


@given(random_circuit())
@settings(max_examples=400, deadline=None)
def test_check_topology_matches_networkx_oracle(nl):
    """Refused exactly when networkx finds a voltage loop or a node cut off from ground."""
    g = netlist_graph(nl)
    vg = nx.MultiGraph()
    vg.add_edges_from((u, v) for u, v, d in g.edges(data=True) if d["voltage_defining"])
    has_loop = vg.number_of_edges() > vg.number_of_nodes() - nx.number_connected_components(vg)
    dg = nx.MultiGraph()
    dg.add_nodes_from(g.nodes)
    dg.add_edges_from((u, v) for u, v, d in g.edges(data=True) if d["dc"])
    floating = set(g.nodes) - nx.node_connected_component(dg, "0")
    if not has_loop and not floating:
        check_topology(nl)
        voltage_trees(nl)
        return
    with pytest.raises(TopologyError) as info:
        check_topology(nl)
    msg = str(info.value)
    assert ("loop" in msg) == has_loop
    assert ("no DC path to ground" in msg) == bool(floating)
    for node in floating:
        assert re.search(rf"\bnodes? (\w+, )*{node}\b", msg), (node, msg)
    if has_loop:
        # the first loop named is a simple cycle: connected, every node of degree 2
        first = msg.split("outputs): ", 1)[1].split(";")[0]
        names = set(first.split(", "))
        cyc = nx.MultiGraph()
        cyc.add_edges_from((u, v) for u, v, k in g.edges(keys=True) if k in names)
        assert cyc.number_of_edges() == len(names)
        assert nx.is_connected(cyc)
        assert all(deg == 2 for _, deg in cyc.degree())
        with pytest.raises(TopologyError, match="loop"):
            voltage_trees(nl)
    else:
        voltage_trees(nl)
