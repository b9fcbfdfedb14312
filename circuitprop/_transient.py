"""``.tran``: a deck's transient response (:func:`transient`).

The deck compiles to the MNA form (:func:`~circuitprop._circuit.compile_circuit` with
``mna=True``) with its capacitors, inductors and source time functions
(:class:`~circuitprop._solve._tran.TranCircuit`), starts from the operating point at t = 0
(the sources' t = 0 values; ``.ic`` nodes held at their values), or with ``uic`` from the
``.ic`` voltages and zero elsewhere, and is integrated by TR-BDF2 under diffrax's error
controller (:func:`~circuitprop._solve._tran.tran_solve`), one compiled solve.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ._api import as_netlist
from ._circuit import compile_circuit
from ._errors import ConvergenceError, NetlistError
from ._graph import check_topology
from ._solve._methods import initial_unknowns
from ._solve._tran import (
    TranCircuit,
    TranOptions,
    breakpoint_array,
    operating_point,
    tran_solve,
)
from ._waveforms import breakpoints, compile_waves
from .netlist import Netlist

__all__ = ["transient", "Transient", "tran_circuit", "OUTPUT_SUBDIVISION", "settle", "Settle",
           "settle_inputs",
           "NODE_CAP", "SETTLE_TOL"]

#: capacitance (F) from every deck node to ground in a physical settle, besides the deck's
NODE_CAP = 1e-12
#: settling band (V): settled once every node stays this close to its final voltage
SETTLE_TOL = 1e-3

#: memory the saved steps of a transient may take (bytes)
SAVE_BYTES = 2 * 2**30
#: output points per accepted step (its end and evenly spaced points inside it)
OUTPUT_SUBDIVISION = 4


@dataclasses.dataclass
class Transient:
    """A transient response: ``time`` (s), ``voltages`` (node -> array), ``currents``
    (V source or inductor -> array, ngspice's sign), ``stats``."""

    time: np.ndarray
    voltages: dict[str, np.ndarray]
    currents: dict[str, np.ndarray]
    stats: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        lst = lambda a: [float(x) for x in np.asarray(a)]  # noqa: E731
        return {"time": lst(self.time),
                "voltages": {k: lst(v) for k, v in self.voltages.items()},
                "currents": {k: lst(v) for k, v in self.currents.items()},
                "stats": self.stats}


def tran_circuit(netlist: Netlist, node_cap: float = 0.0, constant: bool = False):
    """``(TranCircuit, info)`` of a deck with a ``.tran`` card (``constant``: any deck,
    every source at its DC value). ``node_cap``: farads added from every deck node to
    ground."""
    tr = netlist.tran if not constant else None
    circuit, info = compile_circuit(netlist, mna=True)
    n = circuit.n_nodes
    node = lambda name: n if name == "0" else info.node_index[name]  # noqa: E731
    c_a, c_b, c_val = [], [], []
    by_name = {el.name: el for el in netlist.elements}
    for el in netlist.elements:
        if el.kind == "c":
            c_a.append(node(el.nodes[0])); c_b.append(node(el.nodes[1])); c_val.append(el.value)
        elif el.kind == "d" and netlist.models[el.model].dynamic:
            dyn = ", ".join(p.upper() for p in netlist.models[el.model].dynamic)
            raise NetlistError.at(f"{el.name}: model '{el.model}' has charge storage ({dyn}), "
                                  "which transients do not model: remove it, or model it "
                                  "with a capacitor", el.location)
        elif el.kind == "m":
            mod = el.mosfet.model
            junction = [k for k in ("cbd", "cbs") if getattr(mod, k)] + [
                k for k in ("cj", "cjsw") if getattr(mod, k)]
            if junction or mod.cox > 0:
                what = ", ".join(k.upper() for k in junction) or "TOX (the Meyer gate charges)"
                raise NetlistError.at(f"{el.name}: model '{mod.name}' has {what}, which "
                                      "transients do not model (only the overlap capacitances "
                                      "CGSO, CGDO, CGBO)", el.location)
            # the overlap capacitances, between the gate and the internal drain/source
            gate, bulk = node(el.nodes[1]), node(el.nodes[3])
            drain = info.node_index.get(f"{el.name}#drain", node(el.nodes[0]))
            source = info.node_index.get(f"{el.name}#source", node(el.nodes[2]))
            for other, cap in zip((source, drain, bulk), el.mosfet.overlap_capacitances()):
                if cap > 0:
                    c_a.append(gate); c_b.append(other); c_val.append(cap)
        if el.wave is not None and el.wave.repeat is not None:
            raise NetlistError.at(f"{el.name}: pwl repeat (r=) is not supported in transients",
                                  el.location)
    if node_cap > 0:
        held = source_held_nodes(netlist)
        for name in netlist.nodes():
            if name not in held:
                c_a.append(node(name)); c_b.append(n); c_val.append(node_cap)
    l_row, l_val, vspecs = [], [], []
    for k, name in enumerate(info.vbranches):
        el = by_name[name]
        if el.kind == "l":
            l_row.append(n + k); l_val.append(el.value); vspecs.append(None)
        else:
            vspecs.append((None if constant else el.wave, el.value))
    ispecs = [(None if constant else by_name[name].wave, by_name[name].value)
              for name in info.isources]
    tstep, tstop = (tr.tstep, tr.tstop) if tr is not None else (1.0, 1.0)
    ia = lambda x: jnp.asarray(np.asarray(x, dtype=np.int32))  # noqa: E731
    fa = lambda x: jnp.asarray(np.asarray(x, dtype=np.float64))  # noqa: E731
    tc = TranCircuit(mna=circuit, c_a=ia(c_a), c_b=ia(c_b), c_val=fa(c_val), l_row=ia(l_row),
                     l_val=fa(l_val), vwaves=compile_waves(vspecs, tstep, tstop),
                     iwaves=compile_waves(ispecs, tstep, tstop), g=info.defaults.g)
    return tc, info


def _saved(res):
    """The saved times and states of a run, in time order (diffrax pads the unused slots
    with t = inf)."""
    t = np.asarray(res.ts)
    fin = np.isfinite(t)
    t, xs = t[fin], np.asarray(res.xs)[fin]
    order = np.argsort(t, kind="stable")
    return t[order], xs[order]


def source_held_nodes(netlist: Netlist) -> set[str]:
    """Nodes whose voltage a chain of V sources ties to ground (they get no node
    capacitance: an ideal source would charge it in no time)."""
    parent: dict[str, str] = {}

    def find(a: str) -> str:
        while parent.get(a, a) != a:
            a = parent[a]
        return a

    for el in netlist.elements:
        if el.kind == "v":
            a, b = find(el.nodes[0]), find(el.nodes[1])
            if a != b:
                parent[a] = b
    root = find("0")
    return {name for name in netlist.nodes() if find(name) == root}


def output_times(tstep: float, tstop: float, tstart: float = 0.0) -> np.ndarray:
    """``tstart, tstart + tstep, …, tstop`` (the last point is ``tstop``)."""
    k = int(np.floor((tstop - tstart) / tstep * (1 + 1e-12)))
    ts = np.minimum(tstart + tstep * np.arange(k + 1), tstop)
    if tstop - ts[-1] > 1e-9 * tstep:
        ts = np.append(ts, tstop)
    else:
        ts[-1] = tstop
    return np.unique(ts)


def transient(deck: Netlist | str | os.PathLike, *, rtol: float | None = None,
              atol: float | None = None) -> Transient:
    """Run a deck's ``.tran`` analysis.

    **Arguments:** the deck (path, text or :class:`~circuitprop.netlist.Netlist`);
    ``rtol``/``atol``: the error controller's tolerances (defaults: :class:`TranOptions`).

    **Returns:** a :class:`Transient` at ``tstart, tstart + tstep, …, tstop``, at every
    accepted integration step in ``[tstart, tstop]`` (as ngspice's raw file holds its own
    time points) and at 3 points inside each step (the step's interpolant: read linearly
    between the points, as waveform viewers do, the output keeps the integrator's
    accuracy), in time order.

    **Raises:** :class:`NetlistError` for a deck without ``.tran``;
    :class:`ConvergenceError` when the operating point or the integration fails.
    """
    netlist = as_netlist(deck)
    tr = netlist.tran
    if tr is None:
        raise NetlistError(f"{netlist.source}: no '.tran' card")
    check_topology(netlist)
    tc, info = tran_circuit(netlist)
    opts = TranOptions()
    opts = dataclasses.replace(opts, rtol=opts.rtol if rtol is None else float(rtol),
                               atol=opts.atol if atol is None else float(atol))
    n = tc.mna.n_nodes
    size = n + tc.mna.n_br
    x0 = np.zeros(size)
    ic_rows = [info.node_index[k] for k in netlist.ic if k != "0"]
    ic_vals = [v for k, v in netlist.ic.items() if k != "0"]
    t_start = time.perf_counter()
    if tr.uic:
        x0[ic_rows] = ic_vals
        # the capacitors' and inductors' own ic= (ngspice reads them with UIC only)
        node_of = lambda name: None if name == "0" else info.node_index[name]  # noqa: E731
        branch = {name: n + k for k, name in enumerate(info.currents)}
        for el in netlist.elements:
            if el.ic is None:
                continue
            if el.kind == "l":
                x0[branch[el.name]] = el.ic
            elif el.kind == "c":
                a, b = node_of(el.nodes[0]), node_of(el.nodes[1])
                if a is not None:
                    x0[a] = (x0[b] if b is not None else 0.0) + el.ic
                elif b is not None:
                    x0[b] = -el.ic
        # the charges and fluxes start where UIC puts them; the algebraic rest (nodes
        # without capacitance, source currents) starts consistent with them
        held = np.unique(np.concatenate([np.asarray(tc.c_a), np.asarray(tc.c_b),
                                         np.asarray(tc.l_row)]))
        held = held[held != n]
        x0 = jnp.asarray(x0)
        if held.size:
            sol = jax.jit(operating_point, static_argnums=(1,))(
                tc, 0.0, x0, (jnp.asarray(held, dtype=jnp.int32), x0[held]))
            if not bool(sol.ok):
                raise ConvergenceError(f"{netlist.source}: no consistent start from the UIC "
                                       f"values ({sol.result})")
            x0 = sol.u
    else:
        clamp = (jnp.asarray(ic_rows, dtype=jnp.int32), jnp.asarray(ic_vals)) if ic_rows else None
        sol = jax.jit(operating_point, static_argnums=(1,))(tc, 0.0, jnp.asarray(x0), clamp)
        if not bool(sol.ok):
            raise ConvergenceError(f"{netlist.source}: the operating point at t = 0 did not "
                                   f"converge ({sol.result})")
        x0 = sol.u
    ts = output_times(tr.tstep, tr.tstop)
    span = tr.tstop
    dtmax = tr.tmax if tr.tmax is not None else min(tr.tstep, span / 50)
    bps = breakpoints(tc.vwaves, tr.tstop)
    bps = np.union1d(bps, breakpoints(tc.iwaves, tr.tstop))
    jumps = breakpoint_array(bps, 0.0, tr.tstop)
    dt0 = min(tr.tstep, span / 50) * 1e-3
    # room for 50 steps per largest step over the span (ngspice needs a few per tstep),
    # within what the saved steps may take (each holds the state 5 times, 8 bytes each)
    max_steps = int(min(1_000_000, 50 * span / dtmax + 5000,
                        max(5000, SAVE_BYTES // (40 * size))))
    res = jax.jit(tran_solve, static_argnums=(2, 3, 6, 7, 8, 9, 10))(
        tc, x0, 0.0, float(tr.tstop), jnp.asarray(ts), jumps, float(dtmax), float(dt0), opts,
        max_steps, OUTPUT_SUBDIVISION)
    if not bool(res.ok):
        cap = (f" of at most {max_steps}" if int(res.accepted) + int(res.rejected) >= max_steps
               else "")
        raise ConvergenceError(f"{netlist.source}: the transient did not complete "
                               f"({int(res.accepted)} steps accepted, {int(res.rejected)} "
                               f"rejected{cap}; last stage result: {res.result})")
    # the output points and every accepted step (diffrax pads the rest with inf), in time
    # order: tstep is a printing increment, the steps are where the solution is known best
    t_all, xs = _saved(res)
    keep = (np.concatenate([[True], np.diff(t_all) > 1e-12 * span])
            & (t_all >= tr.tstart - 1e-12 * span))
    ts, xs = t_all[keep], xs[keep]
    voltages = {name: xs[:, k] for k, name in enumerate(info.nodes)
                if k < n and "#" not in name}
    currents = {name: xs[:, n + k] for k, name in enumerate(info.currents)}
    stats = {"accepted_steps": int(res.accepted), "rejected_steps": int(res.rejected),
             "newton_iterations": int(res.newton), "rtol": opts.rtol, "atol": opts.atol,
             "seconds": time.perf_counter() - t_start}
    return Transient(time=ts, voltages=voltages, currents=currents, stats=stats)


@dataclasses.dataclass
class Settle:
    """A physical settle from 0 V: ``settling_time`` (s), ``energy`` (J dissipated in the
    resistors, diodes and MOSFETs over ``[0, settling_time]``), the final node voltages, and the
    trajectory (``time``, ``deviation``: the largest distance of a node from its final
    voltage)."""

    settling_time: float
    energy: float
    final: dict[str, float]
    time: np.ndarray
    deviation: np.ndarray
    stats: dict[str, Any]


def settle(deck: Netlist | str | os.PathLike, *, node_cap: float = NODE_CAP,
           settle_tol: float = SETTLE_TOL, rtol: float | None = None,
           atol: float | None = None) -> Settle:
    """The deck's true transient from every node at 0 V with the sources switched on at
    t = 0 (ngspice's ``.tran … uic`` without ``.ic``), with the deck's capacitors plus
    ``node_cap`` from every node to ground, until every node stays within ``settle_tol``
    volts of its operating point.

    **Returns:** a :class:`Settle`. **Raises:** :class:`ConvergenceError` when the operating
    point or the transient fails, or the circuit has not settled within the step budget.
    """
    netlist = as_netlist(deck)
    check_topology(netlist)
    if not (node_cap > 0):
        raise NetlistError(f"--node-cap: expected a capacitance > 0 F, got {node_cap!r}")
    if not (settle_tol > 0):
        raise NetlistError(f"--settle-tol: expected a voltage > 0, got {settle_tol!r}")
    tc, info = tran_circuit(netlist, node_cap=node_cap, constant=True)
    return _settle(tc, info, netlist, node_cap, settle_tol, rtol, atol)


def settle_inputs(deck: Netlist | str | os.PathLike, inputs: list[str], xs, *,
                  node_cap: float = NODE_CAP, settle_tol: float = SETTLE_TOL) -> list[Settle]:
    """:func:`settle` for each row of ``xs``: the values of the V/I sources ``inputs`` (one
    compiled settle for all rows)."""
    netlist = as_netlist(deck)
    check_topology(netlist)
    tc, info = tran_circuit(netlist, node_cap=node_cap, constant=True)
    vpos = {name: k for k, name in enumerate(info.vbranches)}
    ipos = {name: k for k, name in enumerate(info.isources)}
    out = []
    for x in np.asarray(xs, dtype=np.float64):
        vp, ip = np.asarray(tc.vwaves.p).copy(), np.asarray(tc.iwaves.p).copy()
        for name, value in zip(inputs, x):
            if name in vpos:
                vp[vpos[name], 0] = value
            else:
                ip[ipos[name], 0] = value
        t = dataclasses.replace(tc, vwaves=dataclasses.replace(tc.vwaves, p=jnp.asarray(vp)),
                                iwaves=dataclasses.replace(tc.iwaves, p=jnp.asarray(ip)))
        out.append(_settle(t, info, netlist, node_cap, settle_tol, None, None))
    return out


def _settle(tc, info, netlist, node_cap, settle_tol, rtol, atol) -> Settle:
    from ._energy import dissipated_power
    from ._solve._mna import mosfet_power
    from ._solve._tran import settle_solve

    opts = TranOptions()
    opts = dataclasses.replace(opts, rtol=opts.rtol if rtol is None else float(rtol),
                               atol=opts.atol if atol is None else float(atol))
    n = tc.mna.n_nodes
    x0 = initial_unknowns(tc.mna)
    t_start = time.perf_counter()
    op = jax.jit(operating_point, static_argnums=(1,))(tc, 0.0, x0, None)
    if not bool(op.ok):
        raise ConvergenceError(f"{netlist.source}: the operating point did not converge "
                               f"({op.result})")
    vf = op.u[:n]
    # the start: every capacitor-held node at 0 V, the source-held nodes and the branch
    # currents consistent with them (an index-1 DAE needs consistent algebraic parts)
    held = np.unique(np.concatenate([np.asarray(tc.c_a), np.asarray(tc.c_b)]))
    held = held[held < n]
    if held.size:
        first = jax.jit(operating_point, static_argnums=(1,))(
            tc, 0.0, x0, (jnp.asarray(held, dtype=jnp.int32), jnp.zeros(held.size)))
        if not bool(first.ok):
            raise ConvergenceError(f"{netlist.source}: no consistent start at 0 V "
                                   f"({first.result})")
        x0 = first.u
    # the smallest RC time constant of the node capacitances sets the first step
    g = np.asarray(tc.g)
    dt0 = 1e-3 * node_cap / max(float(np.max(g, initial=0.0)), 1e-12)
    res = jax.jit(settle_solve, static_argnums=(3, 4, 5))(
        tc, x0, vf, float(settle_tol) / 20, float(dt0), opts)
    if not bool(res.ok):
        raise ConvergenceError(f"{netlist.source}: the settle did not complete "
                               f"({int(res.accepted)} steps accepted, {int(res.rejected)} "
                               f"rejected)")
    t, xs = _saved(res)
    deck_nodes = [k for k, name in enumerate(info.nodes) if k < n and "#" not in name]
    dev = np.max(np.abs(xs[:, deck_nodes] - np.asarray(vf)[deck_nodes]), axis=1)
    out = np.nonzero(dev > settle_tol)[0]
    if out.size == 0:
        t_settle = 0.0
    else:
        k = out[-1]
        if k + 1 >= len(t):
            raise ConvergenceError(f"{netlist.source}: not settled at the end of the run")
        # the last crossing of the band, linear between the two points around it
        d0, d1 = dev[k], dev[k + 1]
        t_settle = float(t[k] + (t[k + 1] - t[k]) * (d0 - settle_tol) / (d0 - d1))
    values = tc.values(0.0)
    def dissipated(x):
        v = jnp.concatenate([x[:n], jnp.zeros((1,), x.dtype)])
        return dissipated_power(tc.mna, values, v) + mosfet_power(tc.mna, v)

    power = np.asarray(jax.vmap(dissipated)(jnp.asarray(xs)))
    upto = t <= t_settle
    tt = np.append(t[upto], t_settle)
    pp = np.append(power[upto], np.interp(t_settle, t, power))
    energy = float(np.sum(0.5 * (pp[1:] + pp[:-1]) * np.diff(tt))) if len(tt) > 1 else 0.0
    final = {info.nodes[k]: float(vf[k]) for k in deck_nodes}
    stats = {"settling_time": t_settle, "energy": energy, "node_cap": node_cap,
             "settle_tol": settle_tol, "accepted_steps": int(res.accepted),
             "rejected_steps": int(res.rejected), "seconds": time.perf_counter() - t_start}
    return Settle(t_settle, energy, final, t, dev, stats)
