"""circuitprop.builders: deterministic, well-formed decks that ngspice solves."""

from __future__ import annotations

import re

import networkx as nx
import pytest
from ngspice_tools import have_ngspice, load_builders, run_ngspice

_builders = load_builders()
lattice = _builders.lattice
random_network = _builders.random_network

_ELEM = re.compile(r"^([rdvi])\S*\s+(\S+)\s+(\S+)", re.IGNORECASE)


def _elements(text: str) -> list[tuple[str, str, str]]:
    out = []
    for line in text.splitlines()[1:]:
        m = _ELEM.match(line)
        if m:
            out.append((m.group(1).lower(), m.group(2), m.group(3)))
    return out


def _nodes(text: str) -> set[str]:
    return {n for _, a, b in _elements(text) for n in (a, b)} - {"0"}


def test_package_exports_builders():
    from circuitprop.builders import lattice as lat
    from circuitprop.builders import random_network as rn

    assert rn(10, seed=1) == random_network(10, seed=1)
    assert lat(3, 4, seed=1) == lattice(3, 4, seed=1)


def test_committed_builder_decks_match_builders():
    """The rand_*/lattice_* decks in tests/decks are what the builders produce today."""
    from make_refs import BUILDER_DECKS, DECKS_DIR, builder_text

    drift = [s for s in BUILDER_DECKS
             if (DECKS_DIR / f"{s}.cir").read_text() != builder_text(s)]
    assert not drift, f"builder output changed for {drift}: python tests/make_refs.py --builders"


def test_random_network_deterministic():
    assert random_network(50, seed=3) == random_network(50, seed=3)
    assert random_network(50, seed=3) != random_network(50, seed=4)
    assert lattice(6, 7, seed=1) == lattice(6, 7, seed=1)
    assert lattice(6, 7, seed=1) != lattice(6, 7, seed=2)


@pytest.mark.parametrize("n", [2, 5, 20, 137, 500])
def test_random_network_node_count(n):
    text = random_network(n, seed=n)
    nodes = _nodes(text)
    assert {x for x in nodes if re.fullmatch(r"n\d+", x)} == {f"n{k}" for k in range(1, n + 1)}
    # the only other nodes are source-resistance nodes sK
    assert all(re.fullmatch(r"n\d+|s\d+", x) for x in nodes)
    lines = text.splitlines()
    assert lines[-2:] == [".op", ".end"]
    names = [ln.split()[0].lower() for ln in lines[1:] if ln and ln[0].isalpha()]
    assert len(names) == len(set(names)), "duplicate element names"


@pytest.mark.parametrize("nx_,ny", [(1, 2), (5, 5), (10, 7), (30, 30)])
def test_lattice_node_count(nx_, ny):
    text = lattice(nx_, ny, seed=0)
    assert _nodes(text) == {f"n_{i}_{j}" for i in range(nx_) for j in range(ny)}


@pytest.mark.parametrize(
    "text",
    [random_network(300, seed=7), random_network(40, seed=1, diode_fraction=0.4),
     lattice(12, 9, seed=5), lattice(4, 4, seed=2, diode_fraction=0.5)],
)
def test_resistors_alone_connect_everything(text):
    """Well-posed: resistors (plus V sources) connect every node to ground."""
    g = nx.Graph()
    g.add_node("0")
    for kind, a, b in _elements(text):
        g.add_nodes_from((a, b))
        if kind in "rv":
            g.add_edge(a, b)
    assert nx.is_connected(g)


def test_diode_fraction_and_sources():
    text = random_network(200, seed=0, diode_fraction=0.1, degree=4, sources=3)
    elems = _elements(text)
    n_d = sum(k == "d" for k, _, _ in elems)
    n_branch = sum(k == "d" or (k == "r" and "0" not in (a, b) and not a.startswith("s")
                                and not b.startswith("s")) for k, a, b in elems)
    assert abs(n_d - 0.1 * n_branch) <= 2
    assert sum(k == "v" for k, _, _ in elems) == 3
    assert 1 <= sum(k == "i" for k, _, _ in elems) <= 2
    assert ".model dmod" in text
    assert "dmod" not in random_network(200, seed=0, diodes=False)
    assert abs(n_branch - 400) <= 5  # average degree ~4


@pytest.mark.skipif(not have_ngspice(), reason="ngspice not installed")
@pytest.mark.parametrize("text", [random_network(30, seed=2), lattice(6, 6, seed=3)])
def test_ngspice_solves_small_instance(text):
    res = run_ngspice(text)
    assert _nodes(text) <= set(res["voltages"])
    assert all(abs(v) < 10 for v in res["voltages"].values())
