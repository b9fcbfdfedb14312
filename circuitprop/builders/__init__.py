"""Deck generators: random R+D networks, lattices, layered DRNs, crossbars, flow networks."""

from ._crossbar import (
    crossbar_deck as crossbar_deck,
)
from ._crossbar import (
    crossbar_experiment as crossbar_experiment,
)
from ._crossbar import (
    crossbar_experiment_outputs as crossbar_experiment_outputs,
)
from ._drn import (
    drn_deck as drn_deck,
)
from ._drn import (
    drn_experiment as drn_experiment,
)
from ._drn import (
    drn_experiment_inputs as drn_experiment_inputs,
)
from ._drn import (
    drn_experiment_outputs as drn_experiment_outputs,
)
from ._flow import deck_to_graph, flow_graph, flow_network, graph_to_deck, read_positions  # noqa: F401
from ._random import lattice as lattice
from ._random import random_network as random_network
