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
KINDS = ("r", "v", "i", "d", "c", "l", "e", "f", "g", "h", "m")


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
    ``dynamic`` names the nonzero charge-storage parameters (CJO, TT, ...): no effect at DC,
    not modelled in transients (which refuse them).
    """

    name: str
    is_: float = 1e-14
    n: float = 1.0
    rs: float = 0.0
    bv: float = math.inf
    ibv: float = 1e-3
    nbv: float | None = None
    location: Location | None = None
    dynamic: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.nbv is None:
            self.nbv = self.n


@dataclasses.dataclass
class MosfetModel:
    """A level-1 (Shichman–Hodges) MOSFET ``.model NAME NMOS|PMOS`` card, with ngspice's
    defaults applied and its derived parameters computed (at 27 °C, the only temperature).

    ``name`` is the flattened, lowercase name (``nm``, or ``x1.nm`` for a model local to a
    subcircuit instance); ``polarity`` is +1 for NMOS, -1 for PMOS. ``kp``, ``gamma``,
    ``phi`` and ``vto`` are the values the device equations use: the card's, or, when TOX is
    given, KP = U0·COX (U0 in cm²/V·s, default 600) and, with NSUB, ngspice's PHI, GAMMA
    and VTO from the doping. ``cox`` is ε_ox/TOX in F/m² (0 without TOX). ``rd``, ``rs``,
    ``cbd``, ``cbs`` are ``None`` when not given (RSH·NRD, RSH·NRS and CJ·AD, CJ·AS apply
    then). The junction and overlap capacitances (CBD CBS CJ MJ CJSW MJSW PB FC CGSO CGDO
    CGBO) have no effect at DC; they are kept for analyses that need them.
    """

    name: str
    polarity: int = 1
    vto: float = 0.0
    kp: float = 2e-5
    gamma: float = 0.0
    phi: float = 0.6
    lambda_: float = 0.0
    rd: float | None = None
    rs: float | None = None
    rsh: float = 0.0
    is_: float = 1e-14
    js: float = 0.0
    ld: float = 0.0
    tox: float | None = None
    u0: float = 600.0
    cox: float = 0.0
    cbd: float | None = None
    cbs: float | None = None
    cj: float = 0.0
    mj: float = 0.5
    cjsw: float = 0.0
    mjsw: float = 0.5
    pb: float = 0.8
    fc: float = 0.5
    cgso: float = 0.0
    cgdo: float = 0.0
    cgbo: float = 0.0
    location: Location | None = None


@dataclasses.dataclass
class Mosfet:
    """The instance data of one MOSFET (``Element.mosfet``): its model and geometry.

    ``l``, ``w`` (metres) are the line's, else the model card's, else ``.options defl=`` /
    ``defw=`` (ngspice 39: 100 µm); ``m`` the multiplier; ``ad``, ``as_`` (m²), ``pd``,
    ``ps`` (m) drain and source diffusion areas and perimeters; ``nrd``, ``nrs`` the
    squares of sheet resistance (default 1); ``off`` the OFF flag; ``ic`` the initial
    (VDS, VGS, VBS), ``None`` where not given.
    """

    model: MosfetModel
    l: float = 1e-4  # noqa: E741
    w: float = 1e-4
    m: float = 1.0
    ad: float = 0.0
    as_: float = 0.0
    pd: float = 0.0
    ps: float = 0.0
    nrd: float = 1.0
    nrs: float = 1.0
    off: bool = False
    ic: tuple[float | None, float | None, float | None] = (None, None, None)

    @property
    def leff(self) -> float:
        """Effective channel length ``L - 2·LD``."""
        return self.l - 2.0 * self.model.ld

    @property
    def beta(self) -> float:
        """``KP·M·W / Leff`` (A/V²)."""
        return self.model.kp * self.m * self.w / self.leff

    def sat_currents(self) -> tuple[float, float]:
        """``(drain, source)`` junction saturation currents as ngspice takes them: JS·M·AD and
        JS·M·AS when JS, AD and AS are all nonzero, else IS·M for both."""
        mod = self.model
        if mod.js == 0 or self.ad == 0 or self.as_ == 0:
            return mod.is_ * self.m, mod.is_ * self.m
        return mod.js * self.m * self.ad, mod.js * self.m * self.as_

    def series_resistances(self) -> tuple[float, float]:
        """``(drain, source)`` series resistances in ohms (0: none): RD/M (else RSH·NRD/M)
        and RS/M (else RSH·NRS/M)."""
        mod = self.model
        rd = mod.rd if mod.rd is not None else mod.rsh * self.nrd
        rs = mod.rs if mod.rs is not None else mod.rsh * self.nrs
        return rd / self.m, rs / self.m

    def overlap_capacitances(self) -> tuple[float, float, float]:
        """Gate overlap capacitances ``(CGSO·M·W, CGDO·M·W, CGBO·M·Leff)`` in farads (no
        effect at DC)."""
        mod = self.model
        return mod.cgso * self.m * self.w, mod.cgdo * self.m * self.w, mod.cgbo * self.m * self.leff


@dataclasses.dataclass(frozen=True)
class Waveform:
    """A V or I source's time function: ``fn`` (``pulse``, ``sin``, ``exp``, ``pwl``,
    ``sffm``), ``args`` (the numbers as written, ngspice's order; SIN/SFFM phases in degrees)
    ``delay`` (PWL ``td=``, seconds) and ``repeat`` (PWL ``r=``: the time the waveform repeats
    from; ``None``: no repetition)."""

    fn: str
    args: tuple[float, ...]
    delay: float = 0.0
    repeat: float | None = None


@dataclasses.dataclass(frozen=True)
class Tran:
    """A ``.tran tstep tstop [tstart [tmax]] [uic]`` card."""

    tstep: float
    tstop: float
    tstart: float = 0.0
    tmax: float | None = None
    uic: bool = False
    location: Location | None = None


@dataclasses.dataclass
class Element:
    """One flattened circuit element.

    **Fields:**

    - ``kind``: one of :data:`KINDS` (the element letter, lowercase).
    - ``name``: the flattened lowercase name as ngspice prints it: ``r1`` at top level,
      ``r.x1.r2`` inside instance ``x1``, ``v.xp.x1.vm`` for nesting.
    - ``nodes``: node names, lowercase, ground is always ``"0"``; subcircuit internals are
      ``x1.mid``, ``xp.x1.mid``. Two nodes for R V I D C L F H, four for E and G
      (``n+ n- nc+ nc-``) and M (``drain gate source bulk``).
    - ``value``: R: resistance in ohms (``m=`` already applied, i.e. R/m); V, I: DC value
      (the t=0 value of SIN/PULSE when no DC is given); C: farads; L: henries; E, G, F, H:
      gain / transconductance / current gain / transresistance.
    - ``control``: F and H only: the flattened name of the controlling V source.
    - ``model``: D: the flattened model name, a key of ``Netlist.models``; M: the flattened
      model name (the model itself is ``mosfet.model``).
    - ``area``, ``m``: D: area factor and multiplier; M: ``m`` is the multiplier.
    - ``location``: where the element was written (for a subcircuit element: the line inside
      the ``.subckt`` body).
    - ``wave``: V and I: the :class:`Waveform` of a time-dependent source (``None``: the
      value is constant); ``value`` is its DC value (the waveform at t = 0 unless ``DC`` is
      given).
    - ``ic``: C and L: the ``ic=`` initial voltage or current of a transient with ``UIC``
      (``None``: not given).
    - ``mosfet``: M only: the :class:`Mosfet` (geometry and model). An M element has four
      nodes ``drain gate source bulk``; ``model`` is its flattened model name and ``m``
      its multiplier.
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
    mosfet: Mosfet | None = None
    wave: Waveform | None = None
    ic: float | None = None


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
    ``options`` holds ``.options`` values that matter at DC (``gmin``). ``models`` holds the
    diode models; a MOSFET's model is on its element (``Element.mosfet.model``). ``tran`` is
    the deck's ``.tran`` card (``None``: none), ``ic`` its ``.ic v(node)=value`` initial
    conditions by node.
    """

    title: str
    elements: list[Element]
    models: dict[str, DiodeModel] = dataclasses.field(default_factory=dict)
    params: dict[str, float] = dataclasses.field(default_factory=dict)
    dc: list[Sweep] = dataclasses.field(default_factory=list)
    op: bool = False
    options: dict[str, Any] = dataclasses.field(default_factory=dict)
    source: str = "<string>"
    tran: Tran | None = None
    ic: dict[str, float] = dataclasses.field(default_factory=dict)

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
