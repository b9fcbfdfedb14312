"""Plain-Python description of a parsed, flattened netlist.

Nothing here imports JAX: the parser produces these objects, the graph checks and the
circuit compiler consume them.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from .._errors import NetlistError

GROUND = "0"

#: The most points a ``.dc`` sweep may have (nested sweeps: the product of the two counts).
#: Every point is solved in one batch, so the whole sweep is in memory at once.
MAX_SWEEP_POINTS = 1_000_000

#: Element letters circuitprop understands at DC.
KINDS = ("r", "v", "i", "d", "c", "l", "e", "f", "g", "h")


@dataclasses.dataclass(frozen=True)
class Location:
    """Where something was written: a file (or ``<string>``) and a 1-based line number."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclasses.dataclass
class DiodeModel:
    """A level-1 diode ``.model`` card, with ngspice's defaults already applied.

    ``name`` is the flattened, lowercase name (``dm``, or ``x1.dm`` for a model local to a
    subcircuit instance). ``bv`` is ``math.inf`` when not given; ``nbv`` defaults to ``n``.
    """

    name: str
    is_: float = 1e-14
    n: float = 1.0
    rs: float = 0.0
    bv: float = math.inf
    ibv: float = 1e-3
    nbv: float | None = None
    location: Location | None = None

    def __post_init__(self) -> None:
        if self.nbv is None:
            self.nbv = self.n


@dataclasses.dataclass
class Element:
    """One flattened circuit element.

    **Fields:**

    - ``kind``: one of :data:`KINDS` (the element letter, lowercase).
    - ``name``: the flattened lowercase name as ngspice prints it: ``r1`` at top level,
      ``r.x1.r2`` inside instance ``x1``, ``v.xp.x1.vm`` for nesting.
    - ``nodes``: node names, lowercase, ground is always ``"0"``; subcircuit internals are
      ``x1.mid``, ``xp.x1.mid``. Two nodes for R V I D C L F H, four for E and G
      (``n+ n- nc+ nc-``).
    - ``value``: R: resistance in ohms (``m=`` already applied, i.e. R/m); V, I: DC value
      (the t=0 value of SIN/PULSE when no DC is given); C: farads; L: henries; E, G, F, H:
      gain / transconductance / current gain / transresistance.
    - ``control``: F and H only: the flattened name of the controlling V source.
    - ``model``: D only: the flattened model name, a key of ``Netlist.models``.
    - ``area``, ``m``: D only: area factor and multiplier.
    - ``location``: where the element was written (for a subcircuit element: the line inside
      the ``.subckt`` body).
    """

    kind: str
    name: str
    nodes: tuple[str, ...]
    value: float = 0.0
    control: str | None = None
    model: str | None = None
    area: float = 1.0
    m: float = 1.0
    location: Location | None = None


@dataclasses.dataclass
class Sweep:
    """One ``.dc`` sweep: ``name`` is a V or I source, or a resistor (flattened name)."""

    name: str
    start: float
    stop: float
    step: float
    location: Location | None = None

    def count(self) -> float:
        """``len(self.values())`` without building the values: an integer, or ``math.inf``
        when the step is too small for the count to be a float."""
        if self.step == 0:
            return 1
        ratio = (self.stop - self.start) / self.step
        if not math.isfinite(ratio):
            return math.inf
        return max(math.floor(ratio * (1 + 1e-12) + 1e-9) + 1, 1)

    def values(self) -> list[float]:
        """The swept values as ngspice produces them (inclusive of ``stop``).

        **Raises:** :class:`~circuitprop._errors.NetlistError` for more than
        :data:`MAX_SWEEP_POINTS` values (see :func:`check_sweep_points`).
        """
        check_sweep_points([self])
        return [self.start + k * self.step for k in range(int(self.count()))]


def sweep_points(sweeps: list[Sweep]) -> float:
    """The number of points of a ``.dc`` sweep (nested sweeps: the product of the counts)."""
    return math.prod(s.count() for s in sweeps)


def sweep_description(sweeps: list[Sweep]) -> str:
    """``'.dc v1': 11 points`` or ``'.dc v1 v2': 11 x 3 = 33 points``, for messages."""

    def fmt(n: float) -> str:
        return str(n) if n < 1e18 else "over 1e308" if n == math.inf else f"{n:.3g}"

    names = " ".join(s.name for s in sweeps)
    counts = [s.count() for s in sweeps]
    if len(counts) == 1:
        return f"'.dc {names}': {fmt(counts[0])} points"
    return f"'.dc {names}': {' x '.join(fmt(n) for n in counts)} = {fmt(math.prod(counts))} points"


def check_sweep_points(sweeps: list[Sweep]) -> None:
    """Refuse a sweep of more than :data:`MAX_SWEEP_POINTS` points, before any is built.

    **Raises:** :class:`~circuitprop._errors.NetlistError` at the ``.dc`` line, naming each
    source and its point count.
    """
    if sweeps and not sweep_points(sweeps) <= MAX_SWEEP_POINTS:
        raise NetlistError.at(
            f"{sweep_description(sweeps)}, more than the {MAX_SWEEP_POINTS} a sweep may have "
            "(all points are solved in one batch)",
            sweeps[0].location,
        )


@dataclasses.dataclass
class Netlist:
    """A parsed, flattened deck.

    ``elements`` keeps deck order. ``params`` holds the evaluated global ``.param`` values.
    ``dc`` holds zero, one or two sweeps (first = inner, varies fastest, as in ngspice).
    ``options`` holds ``.options`` values that matter at DC (``gmin``).
    """

    title: str
    elements: list[Element]
    models: dict[str, DiodeModel] = dataclasses.field(default_factory=dict)
    params: dict[str, float] = dataclasses.field(default_factory=dict)
    dc: list[Sweep] = dataclasses.field(default_factory=list)
    op: bool = False
    options: dict[str, Any] = dataclasses.field(default_factory=dict)
    source: str = "<string>"

    @property
    def gmin(self) -> float:
        return float(self.options.get("gmin", 1e-12))

    def nodes(self) -> list[str]:
        """Every non-ground node in order of first appearance (control nodes of E/G included)."""
        seen: dict[str, None] = {}
        for el in self.elements:
            for n in el.nodes:
                if n != GROUND:
                    seen.setdefault(n, None)
        return list(seen)

    def element(self, name: str) -> Element:
        name = name.lower()
        for el in self.elements:
            if el.name == name:
                return el
        raise KeyError(name)
