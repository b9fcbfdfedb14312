"""Deck generators: random R+D networks, lattices, layered DRNs, flow networks."""

from ._random import lattice as lattice
from ._random import random_network as random_network
