"""Reading SPICE decks: :func:`parse` text or :func:`load` a file into a flattened
:class:`Netlist` (plain Python, no JAX)."""

from __future__ import annotations

from .._errors import NetlistError as NetlistError
from ._parser import load as load, parse as parse
from ._types import (
    GROUND as GROUND,
    KINDS as KINDS,
    DiodeModel as DiodeModel,
    Element as Element,
    Location as Location,
    Netlist as Netlist,
    Sweep as Sweep,
)
from ._values import evaluate as evaluate, format_number as format_number, parse_number as parse_number

__all__ = [
    "GROUND",
    "KINDS",
    "DiodeModel",
    "Element",
    "Location",
    "Netlist",
    "NetlistError",
    "Sweep",
    "evaluate",
    "format_number",
    "load",
    "parse",
    "parse_number",
]
