"""Reading SPICE decks: :func:`parse` text or :func:`load` a file into a flattened
:class:`Netlist` (plain Python, no JAX).

Every problem with the input raises :class:`NetlistError`, whose ``str()`` is
``FILE:LINE: message`` naming the offending element, node, model, subckt, parameter or file.
"""

from __future__ import annotations

from .._errors import NetlistError as NetlistError
from ._parser import load as load
from ._parser import parse as parse
from ._types import GROUND as GROUND
from ._types import KINDS as KINDS
from ._types import DiodeModel as DiodeModel
from ._types import Element as Element
from ._types import Location as Location
from ._types import Mosfet as Mosfet
from ._types import MosfetModel as MosfetModel
from ._types import Netlist as Netlist
from ._types import Sweep as Sweep
from ._values import evaluate as evaluate
from ._values import format_number as format_number
from ._values import parse_number as parse_number

__all__ = [
    "GROUND",
    "KINDS",
    "DiodeModel",
    "Element",
    "Location",
    "Mosfet",
    "MosfetModel",
    "Netlist",
    "NetlistError",
    "Sweep",
    "evaluate",
    "format_number",
    "load",
    "parse",
    "parse_number",
]
