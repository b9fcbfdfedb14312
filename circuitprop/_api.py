"""Public entry points: load a deck, find its operating point, run its ``.dc`` sweep.

Each job compiles one function (ahead of time, so compile and solve are timed apart) and
vmaps over batches of element values.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ._circuit import Circuit, CircuitInfo, MnaCircuit, Values, compile_circuit
from ._energy import node_voltages, source_currents
from ._errors import ConvergenceError, NetlistError
from ._graph import check_topology
from ._solve._methods import METHODS, default_options, method_name, prepare_circuit, steady_state
from ._solve._mna import split
from ._solve._result import codes, message
from .netlist import Netlist, load, parse
from .netlist._types import check_sweep_points, sweep_description, sweep_points

#: The memory a ``.dc`` batch may take (a third of a 24 GiB machine), estimated before
#: anything is allocated by :func:`sweep_bytes`.
MAX_SWEEP_BYTES = 8 * 2**30


def as_netlist(deck: Netlist | str | os.PathLike) -> Netlist:
    """A :class:`Netlist` from a Netlist, a path, or deck text (text has a newline)."""
    if isinstance(deck, Netlist):
        return deck
    if isinstance(deck, str) and "\n" in deck:
        return parse(deck)
    return load(deck)


def prepare(deck: Netlist | str | os.PathLike) -> tuple[Circuit | MnaCircuit, CircuitInfo]:
    """Parse (if needed), check the topology, and compile a deck.

    **Raises:** :class:`NetlistError` / :class:`TopologyError` for bad or ill-posed decks.
    """
    netlist = as_netlist(deck)
    check_topology(netlist)
    return compile_circuit(netlist)


def _default_options(circuit, method: str, options):
    return options if options is not None else default_options(circuit, method)


def _solve_one(circuit, values: Values, options, method: str):
    """Solve one point; returns (solution, node voltages, branch currents)."""
    sol = steady_state(circuit, values, options, method)
    if isinstance(circuit, MnaCircuit):
        v, ib = split(circuit, sol.u)
        return sol, v, ib
    v = node_voltages(circuit, values, sol.u)
    return sol, v, source_currents(circuit, values, v)


#: one compiled entry point per method, for one point and for a batch (vmap over values)
_solve_jit = {m: jax.jit(functools.partial(_solve_one, method=m)) for m in METHODS}
_solve_batch_jit = {m: jax.jit(jax.vmap(functools.partial(_solve_one, method=m),
                                        in_axes=(None, 0, None))) for m in METHODS}


def _run(fn, *args):
    """Compile ahead of time, then run and time the solve alone."""
    t0 = time.perf_counter()
    compiled = fn.lower(*args).compile()
    t1 = time.perf_counter()
    out = jax.block_until_ready(compiled(*args))
    t2 = time.perf_counter()
    return out, t1 - t0, t2 - t1


def _check(sol, what: str, method: str, netlist: Netlist, index: Any = None) -> None:
    bad = np.flatnonzero(codes(sol.result).reshape(-1) != 0)
    if bad.size:
        k = int(bad[0])
        where = f" at sweep point {k}" if index is not None else ""
        steps = int(np.asarray(sol.steps).reshape(-1)[k])
        raise ConvergenceError(
            f"{netlist.source}: {what} ({method}){where}: {message(sol.result, k)} after "
            f"{steps} steps")


@dataclasses.dataclass
class OperatingPoint:
    """A DC operating point.

    - ``voltages``: node name -> volts (every deck node; subcircuit internals as ``x1.mid``).
    - ``currents``: element name -> amperes for V sources, inductors, E and H (ngspice sign:
      positive from n+ through the element to n-).
    - ``stats``: ``method``, ``steps`` (Newton iterations or implicit relaxation steps),
      ``solve_seconds`` (the solve alone), ``compile_seconds``, ``krylov_iterations``.
    - ``power``: see :func:`element_power` (dissipated by R and D, delivered by sources).
    """

    voltages: dict[str, float]
    currents: dict[str, float]
    stats: dict[str, Any]
    power: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        out = {"voltages": self.voltages, "currents": self.currents, "stats": self.stats}
        if self.power is not None:
            out["power"] = self.power
        return out


@dataclasses.dataclass
class DCSweep:
    """The result of a ``.dc`` sweep, flattened in ngspice's order (first source fastest).

    - ``sweep``: ``{"source": name, "values": [...]}`` (the first source's value per point).
    - ``sweep2``: the same for the second (outer) source of a nested sweep, else ``None``.
    - ``voltages``, ``currents``: name -> list of values, one per point.
    """

    sweep: dict[str, Any]
    voltages: dict[str, list[float]]
    currents: dict[str, list[float]]
    stats: dict[str, Any]
    sweep2: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        out = {"sweep": self.sweep, "voltages": self.voltages, "currents": self.currents}
        if self.sweep2 is not None:
            out["sweep2"] = self.sweep2
        out["stats"] = self.stats
        return out


def operating_point(deck: Netlist | str | os.PathLike, *, method: str = "newton",
                    options=None) -> OperatingPoint:
    """The DC operating point of a deck.

    **Arguments:**

    - ``deck``: a :class:`Netlist`, a path to a deck, or deck text.
    - ``method``: ``"newton"`` (Newton–Krylov, default), ``"dense"`` (Newton on the
      factorised dense reduced Hessian, for circuits with few unknowns), ``"coordinate"``
      (nonlinear block coordinate descent over colours of the unknowns, matmuls on dense
      blocks; see ``docs/solvers.md``) or ``"relax"`` (the diffrax transient to steady
      state). Decks with E/F/G/H are always solved by Newton on the KCL residual (they have
      no energy).
    - ``options``: a :class:`NewtonOptions` / :class:`RelaxOptions` to override tolerances.

    **Returns:** an :class:`OperatingPoint`.

    **Raises:** :class:`NetlistError` (bad deck), :class:`TopologyError` (ill-posed circuit),
    :class:`ConvergenceError` (no steady state found).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {tuple(METHODS)}, not {method!r}")
    circuit, info = prepare(deck)
    circuit = prepare_circuit(circuit, method)
    options = _default_options(circuit, method, options)
    (sol, v, cur), compile_s, solve_s = _run(_solve_jit[method], circuit, info.defaults, options)
    _check(sol, "operating point", method_name(circuit, method), info.netlist)
    v = np.asarray(v)
    cur = np.asarray(cur)
    voltages = {info.nodes[k]: float(v[k]) for k in info.reported}
    currents = {name: float(cur[k]) for k, name in enumerate(info.currents)}
    stats = {"method": method_name(circuit, method), "steps": int(sol.steps),
             "solve_seconds": solve_s, "compile_seconds": compile_s,
             "krylov_iterations": int(sol.inner)}
    power = element_power(circuit, info, info.defaults, v, currents)
    return OperatingPoint(voltages, currents, stats, power)


def element_power(circuit, info: CircuitInfo, values: Values, v, currents: dict[str, float]
                  ) -> dict[str, Any]:
    """The power of every element at an operating point (watts).

    **Arguments:** the compiled circuit, its info and values, every node voltage ``v``
    (``info.nodes`` order, ground slot last) and the branch currents by name (ngspice sign).

    **Returns:** ``{"total": W, "delivered": W, "elements": {name: W}}``: resistors, diodes
    and MOSFETs (junctions and channel plus series resistances) the power they dissipate,
    V/I sources and E/F/G/H the power they deliver (``−V·I`` with ``V = v(n+) − v(n−)`` and
    ``I`` the current from ``n+`` through the element to ``n−``); ``total`` the dissipation,
    ``delivered`` the sources' sum (equal to solver tolerance: energy is conserved).
    """
    from ._devices import diode

    v = np.asarray(v, dtype=np.float64)
    node = lambda n: v[-1] if n == "0" else v[info.node_index[n]]  # noqa: E731
    g = np.asarray(values.g, dtype=np.float64)
    elements: dict[str, float] = {}
    ra, rb = np.asarray(circuit.r_a), np.asarray(circuit.r_b)
    pr = g * (v[ra] - v[rb]) ** 2
    for k, name in enumerate(info.resistors):
        owner = name.split("#")[0]  # a diode's series resistance counts for the diode
        elements[owner] = elements.get(owner, 0.0) + float(pr[k])
    d = circuit.diodes
    if len(info.diodes):
        vd = v[np.asarray(d.a)] - v[np.asarray(d.b)]
        i, _, _ = diode(vd, np.asarray(d.is_), np.asarray(d.vte), np.asarray(d.tbv),
                        np.asarray(d.nbvt), np.asarray(d.has_bv), float(circuit.gmin))
        for k, name in enumerate(info.diodes):
            elements[name] = elements.get(name, 0.0) + float(np.asarray(i)[k] * vd[k])
    mos = getattr(circuit, "mosfets", None)
    if mos is not None and info.mosfets:
        from ._solve._mna import mosfet_currents

        i_d, i_b = (np.asarray(a) for a in mosfet_currents(circuit, jnp.asarray(v)))
        vs = v[np.asarray(mos.s)]
        pm = i_d * (v[np.asarray(mos.d)] - vs) + i_b * (v[np.asarray(mos.b)] - vs)
        for k, name in enumerate(info.mosfets):
            elements[name] = elements.get(name, 0.0) + float(pm[k])
    total = float(sum(elements.values()))
    isrc = dict(zip(info.isources, np.asarray(values.isrc, dtype=np.float64)))
    delivered = 0.0
    for el in info.netlist.elements:
        if el.kind not in "viefgh":
            continue
        vab = float(node(el.nodes[0]) - node(el.nodes[1]))
        if el.kind == "i":
            cur = float(isrc[el.name])
        elif el.kind == "g":
            cur = el.value * float(node(el.nodes[2]) - node(el.nodes[3]))
        elif el.kind == "f":
            cur = el.value * currents[el.control]
        else:  # v, e, h: their branch currents
            cur = currents[el.name]
        p = -vab * cur
        elements[el.name] = p
        delivered += p
    return {"total": total, "delivered": delivered, "elements": elements}


def sweep_values(info: CircuitInfo, name: str, values: np.ndarray) -> Values:
    """A batch of :class:`Values` with element ``name`` (V, I or R) set to each of ``values``."""
    d = info.defaults
    n = len(values)
    g = np.tile(np.asarray(d.g), (n, 1))
    vs = np.tile(np.asarray(d.vsrc), (n, 1))
    cs = np.tile(np.asarray(d.isrc), (n, 1))
    if name in info.vbranches:
        vs[:, info.vbranches.index(name)] = values
    elif name in info.isources:
        cs[:, info.isources.index(name)] = values
    elif name in info.resistors:
        g[:, info.resistors.index(name)] = 1.0 / np.asarray(values)
    else:
        raise NetlistError(f"{info.netlist.source}: .dc: {name!r} is not a V source, "
                           "I source or resistor of this deck")
    return Values(g=jnp.asarray(g), vsrc=jnp.asarray(vs), isrc=jnp.asarray(cs))


def sweep_bytes(circuit, info: CircuitInfo, options, points: float) -> float:
    """An estimate of the memory a batched solve of ``points`` points takes.

    Measured (growth of the peak resident memory over a whole :func:`dc_sweep`): 72 to 76
    bytes per point and per entry of the unknowns, element values and reported outputs with
    Newton, 122 to 128 with the relaxation, and about 43 bytes per point and per entry of the
    MNA Jacobian when it is factorized densely. The estimate takes 160 and 48 bytes.
    """
    entries = (len(info.resistors) + len(info.vbranches) + len(info.isources)
               + len(info.reported) + len(info.currents))
    if isinstance(circuit, MnaCircuit):
        n = circuit.n_nodes + circuit.n_br
        dense = n * n if n <= getattr(options, "dense_limit", 3000) else 0
        return points * (160.0 * (entries + n) + 48.0 * dense)
    return points * 160.0 * (entries + circuit.n_u)


def check_sweep_size(circuit, info: CircuitInfo, options) -> None:
    """Refuse a ``.dc`` sweep whose batch is estimated above :data:`MAX_SWEEP_BYTES` (or has
    more than ``MAX_SWEEP_POINTS`` points), before any point is built.

    **Raises:** :class:`NetlistError` at the ``.dc`` line, naming the point counts.
    """
    sweeps = info.netlist.dc
    check_sweep_points(sweeps)
    need = sweep_bytes(circuit, info, options, sweep_points(sweeps))
    if need > MAX_SWEEP_BYTES:
        raise NetlistError.at(
            f"{sweep_description(sweeps)} would need about {need / 2**30:.3g} GiB, more than the "
            f"{MAX_SWEEP_BYTES / 2**30:g} GiB a sweep may take (all points are solved in one "
            "batch): use fewer points",
            sweeps[0].location,
        )


def dc_sweep(deck: Netlist | str | os.PathLike, *, method: str = "newton",
             options=None) -> DCSweep:
    """Run the deck's ``.dc`` sweep (one or two nested sources), all points in one vmapped solve.

    **Raises:** :class:`NetlistError` when the deck has no ``.dc``, or a sweep too large to
    batch (:func:`check_sweep_size`); otherwise as :func:`operating_point`.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {tuple(METHODS)}, not {method!r}")
    circuit, info = prepare(deck)
    circuit = prepare_circuit(circuit, method)
    netlist = info.netlist
    if not netlist.dc:
        raise NetlistError(f"{netlist.source}: the deck has no .dc sweep")
    options = _default_options(circuit, method, options)
    check_sweep_size(circuit, info, options)
    s1 = netlist.dc[0]
    v1 = np.asarray(s1.values(), dtype=np.float64)
    if len(netlist.dc) > 1:
        s2 = netlist.dc[1]
        v2 = np.asarray(s2.values(), dtype=np.float64)
        inner = np.tile(v1, len(v2))
        outer = np.repeat(v2, len(v1))
    else:
        s2, inner, outer = None, v1, None
    batch = sweep_values(info, s1.name, inner)
    if s2 is not None:
        other = sweep_values(info, s2.name, outer)
        # apply the outer source on top of the inner one
        idx = {"g": info.resistors, "vsrc": info.vbranches, "isrc": info.isources}
        fields = {}
        for f in ("g", "vsrc", "isrc"):
            arr = np.asarray(getattr(batch, f)).copy()
            if s2.name in idx[f]:
                k = idx[f].index(s2.name)
                arr[:, k] = np.asarray(getattr(other, f))[:, k]
            fields[f] = jnp.asarray(arr)
        batch = Values(**fields)
    (sol, v, cur), compile_s, solve_s = _run(_solve_batch_jit[method], circuit, batch, options)
    _check(sol, ".dc sweep", method_name(circuit, method), netlist, index=True)
    v = np.asarray(v)
    cur = np.asarray(cur)
    voltages = {info.nodes[k]: v[:, k].tolist() for k in info.reported}
    currents = {name: cur[:, k].tolist() for k, name in enumerate(info.currents)}
    stats = {"method": method_name(circuit, method), "points": len(inner),
             "steps": int(np.max(np.asarray(sol.steps))), "solve_seconds": solve_s,
             "compile_seconds": compile_s}
    sweep = {"source": s1.name, "values": inner.tolist()}
    sweep2 = {"source": s2.name, "values": outer.tolist()} if s2 is not None else None
    return DCSweep(sweep, voltages, currents, stats, sweep2)


__all__ = ["DCSweep", "OperatingPoint", "as_netlist", "dc_sweep", "operating_point", "prepare"]
