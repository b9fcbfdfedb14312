"""Flow networks: the builder, networkx import/export, the ``build flow`` CLI, the allostery
example trained by coupled learning, and the network plot."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import networkx as nx
import pytest

from circuitprop._errors import CircuitpropError
from circuitprop.builders import deck_to_graph, flow_graph, flow_network, graph_to_deck
from circuitprop.builders._flow import read_positions

needs_ngspice = pytest.mark.skipif(shutil.which("ngspice") is None, reason="ngspice not installed")
ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "flow-allostery"
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("kind", ["geometric", "delaunay"])
def test_builder_deterministic_and_connected(kind):
    a = flow_network(40, seed=3, kind=kind)
    assert a == flow_network(40, seed=3, kind=kind)
    assert a != flow_network(40, seed=4, kind=kind)
    G = deck_to_graph(a)
    assert G.number_of_nodes() == 40
    assert nx.is_connected(G)
    assert "0" in G and G.graph["sources"] == {next(iter(G.graph["sources"])): 1.0}
    assert len(read_positions(a)) == 40
    ks = [d["conductance"] for _, _, d in G.edges(data=True)]
    assert min(ks) >= 0.5 * (1 - 1e-12) and max(ks) <= 1.5 * (1 + 1e-12)
    assert sorted(d["name"] for _, _, d in G.edges(data=True)) == sorted(
        f"r{k}" for k in range(1, G.number_of_edges() + 1))


def test_geometric_sparse_is_made_connected():
    G = flow_graph(60, seed=1, kind="geometric", mean_degree=1.5, n_sources=2)
    assert nx.is_connected(G)
    assert len(G.graph["sources"]) == 2 and "0" not in G.graph["sources"]


def test_delaunay_is_planar_triangulation():
    G = flow_graph(50, seed=2, kind="delaunay")
    assert G.graph["kind"] == "delaunay"
    assert nx.check_planarity(G)[0]
    assert G.number_of_edges() <= 3 * 50 - 6


def test_graph_deck_round_trip():
    G = flow_graph(35, seed=5, kind="delaunay", k_min=0.1, k_max=3.0)
    G2 = deck_to_graph(graph_to_deck(G))
    assert set(G.nodes) == set(G2.nodes)
    for a, b, d in G.edges(data=True):
        d2 = G2.edges[a, b]
        assert d2["name"] == d["name"]
        assert d2["conductance"] == pytest.approx(d["conductance"], rel=1e-15)
        assert G2.nodes[a]["pos"] == G.nodes[a]["pos"]
    assert G2.graph["sources"] == G.graph["sources"]
    assert G2.graph["source_names"] == G.graph["source_names"]
    # and deck -> graph -> deck keeps every pipe's resistance
    deck = flow_network(30, seed=7)
    again = deck_to_graph(graph_to_deck(deck_to_graph(deck)))
    base = deck_to_graph(deck)
    for a, b, d in base.edges(data=True):
        assert again.edges[a, b]["conductance"] == pytest.approx(d["conductance"], rel=1e-15)


def test_plain_networkx_graph_to_deck():
    G = nx.grid_2d_graph(3, 3)
    G = nx.convert_node_labels_to_integers(G)
    for k, (a, b) in enumerate(G.edges):
        G.edges[a, b]["conductance"] = 1.0 + k
    deck = graph_to_deck(G, ground=0, sources={8: 2.0}, flows={4: 0.5})
    H = deck_to_graph(deck)
    assert H.graph["sources"] == {"n8": 2.0}
    assert H.graph["flows"] == {"n4": 0.5}
    assert sorted(d["conductance"] for _, _, d in H.edges(data=True)) == pytest.approx(
        [1.0 + k for k in range(G.number_of_edges())], rel=1e-15)
    bad = G.copy()
    del bad.edges[0, 1]["conductance"]
    with pytest.raises(CircuitpropError, match="conductance"):
        graph_to_deck(bad, ground=0)
    island = G.copy()
    island.add_edge(100, 101, conductance=1.0)
    with pytest.raises(CircuitpropError, match="no path to the ground"):
        graph_to_deck(island, ground=0)
    with pytest.raises(CircuitpropError, match="kind"):
        flow_network(10, kind="lattice")


@needs_ngspice
def test_deck_solves_like_ngspice():
    import circuitprop
    from circuitprop.export import ngspice_operating_point

    G = flow_graph(30, seed=11, kind="geometric")
    deck = graph_to_deck(G, flows={"n3": 0.25})
    ours = circuitprop.operating_point(deck).to_json()
    v, i = ngspice_operating_point(deck)
    assert max(abs(ours["voltages"][k] - v[k]) for k in ours["voltages"]) < 3e-14  # 3.3e-15
    # flow conservation: the source's flow equals what leaves through the ground pipes
    src = next(iter(G.graph["sources"]))
    p = dict(ours["voltages"]); p["0"] = 0.0
    out = sum(d["conductance"] * p[n] for n in G.neighbors("0")
              for d in [G.edges["0", n]])
    assert out == pytest.approx(-ours["currents"][G.graph["source_names"][src]] + 0.25,
                                rel=1e-12)


def test_cli_build_flow(tmp_path):
    from circuitprop.cli import main

    deck = tmp_path / "net.cir"
    assert main(["build", "flow", "--nodes", "25", "--seed", "1", "-o", str(deck),
                 "--kind", "delaunay"]) == 0
    text = deck.read_text()
    assert text == flow_network(25, seed=1, kind="delaunay")
    assert nx.is_connected(deck_to_graph(deck))
    assert main(["build", "flow", "--nodes", "2", "-o", str(tmp_path / "x.cir")]) == 2


def test_short_allostery_training_reduces_loss(tmp_path):
    from circuitprop.learn import train

    (tmp_path / "net.cir").write_text(flow_network(40, seed=2, kind="delaunay"))
    G = deck_to_graph(tmp_path / "net.cir")
    src = next(iter(G.graph["sources"]))
    a, b = next((a, b) for a, b in G.edges if not {a, b} & {src, "0"})
    (tmp_path / "data.csv").write_text("vs1,t\n0.5,0.075\n1.0,0.15\n")
    (tmp_path / "exp.toml").write_text(
        f'netlist = "net.cir"\ninputs = ["vs1"]\noutputs = ["{a}-{b}"]\ntrainable = ["r*"]\n'
        '[data]\nsource = "csv:data.csv"\ntask = "regression"\ntest_fraction = 0.0\n'
        '[learning]\nrule = "coupled"\neta = 0.5\n'
        '[train]\noptimizer = "adam"\nlearning_rate = 0.05\nepochs = 30\nbatch_size = 2\n'
        'shuffle = false\ng_min = 1e-3\ng_max = 10.0\n')
    m = train(tmp_path / "exp.toml", tmp_path / "run", progress=False)
    h = m["train_loss_history"]
    assert len(h) == 30 and h[-1] < 0.1 * h[0]


@needs_ngspice
def test_allostery_example(tmp_path):
    import circuitprop
    from circuitprop.export import ngspice_operating_point
    from circuitprop.learn import train

    out = tmp_path / "run"
    train(EXAMPLE / "experiment.toml", out, progress=False)
    h = json.loads((out / "metrics.json").read_text())["train_loss_history"]
    assert h[-1] / h[0] <= 0.01
    deck = (out / "trained.cir").read_text()
    ours = circuitprop.operating_point(out / "trained.cir").to_json()["voltages"]
    v, _ = ngspice_operating_point(deck)
    assert max(abs(ours[k] - v[k]) for k in ours) < 1e-14  # measured 1.1e-15 V
    # the example's plot script
    r = subprocess.run([sys.executable, str(EXAMPLE / "plot_network.py"), str(out)],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert (out / "network.png").read_bytes()[:8] == PNG


def test_plot_network(tmp_path):
    from circuitprop.plot import plot_network

    G = flow_graph(30, seed=0)
    p = plot_network(G, None, tmp_path / "a.png", highlight_edges=["r1", ("n1", "n2"), "n3-n4"])
    assert p.read_bytes()[:8] == PNG
    deck = tmp_path / "net.cir"
    deck.write_text(graph_to_deck(G))
    learned = {f"r{k}": 10.0 ** (-k % 4) for k in range(1, G.number_of_edges() + 1)}
    assert plot_network(deck, learned, tmp_path / "b.png").read_bytes()[:8] == PNG
    # no positions at all: a spring layout
    H = nx.cycle_graph(6)
    nx.set_edge_attributes(H, 2.0, "conductance")
    assert plot_network(H, None, tmp_path / "c.png").stat().st_size > 1000
