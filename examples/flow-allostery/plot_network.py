"""Plot the flow-allostery network colored by conductance, before and after training.

    python examples/flow-allostery/plot_network.py DIR

reads ``DIR/trained.cir`` (written by ``circuitprop train``) and writes ``DIR/network.png``
(learned conductances) and ``DIR/network_initial.png`` (the conductances of
``network.cir``). The node positions come from the ``* pos`` comments of ``network.cir``
(``trained.cir`` is a flat export without them); the target pipes are outlined in red.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib

    from circuitprop.builders import deck_to_graph
    from circuitprop.plot import plot_network

    out = Path(argv[0])
    exp = tomllib.loads((HERE / "experiment.toml").read_text(encoding="utf-8"))
    targets = exp["outputs"]
    base = deck_to_graph(HERE / exp["netlist"])
    trained = deck_to_graph(out / "trained.cir")
    learned = {d["name"]: d["conductance"] for _, _, d in trained.edges(data=True)}
    plot_network(base, None, out / "network_initial.png", highlight_edges=targets,
                 title="flow network before training (targets outlined)")
    plot_network(base, learned, out / "network.png", highlight_edges=targets,
                 title="conductances learned by coupled learning (targets outlined)")
    print(f"wrote {out / 'network.png'} and {out / 'network_initial.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
