"""Compile a flattened :class:`~circuitprop.netlist.Netlist` into index arrays.

Two compiled forms exist:

- :class:`Circuit` (reciprocal circuits: R, D, V, I, C, L): voltage sources and inductors are
  eliminated by expressing every node tied to a source tree as ``root + offset``; the
  unknowns ``u`` are the remaining free node voltages (one per node not tied to a source, one
  per source tree not tied to ground). The energy of :mod:`circuitprop._energy` lives on ``u``.
- :class:`MnaCircuit` (circuits with E, F, G, H or M): modified nodal analysis, unknowns are
  every node voltage plus the branch currents of V, L, E and H; solved on the KCL residual.

Topology is static (integer arrays); element values live in :class:`Values`, so sweeps and
training vmap over them without recompiling.
"""

from __future__ import annotations

import dataclasses
import math
from collections import deque

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

from ._aggregation import Hierarchy, build_hierarchy
from ._devices import VT, diode_arrays
from ._errors import NetlistError, TopologyError
from ._structure import Layout, find_blocks
from .netlist._types import GROUND, Element, Netlist


class Values(eqx.Module):
    """The element values a solve depends on (all arrays, so they can be traced and vmapped).

    - ``g``: conductance of every resistor (deck resistors first, then diode series
      resistances), siemens.
    - ``vsrc``: value of every voltage-defining branch (V sources; inductors are 0).
    - ``isrc``: value of every current source, amperes.
    """

    g: Float[Array, " resistors"]
    vsrc: Float[Array, " vbranches"]
    isrc: Float[Array, " isources"]


class Diodes(eqx.Module):
    """Per-diode arrays: terminal indices and ngspice level-1 parameters."""

    a: Int[Array, " diodes"]
    b: Int[Array, " diodes"]
    is_: Float[Array, " diodes"]
    vte: Float[Array, " diodes"]
    tbv: Float[Array, " diodes"]
    nbvt: Float[Array, " diodes"]
    has_bv: Bool[Array, " diodes"]
    vcrit: Float[Array, " diodes"]


class Mosfets(eqx.Module):
    """Per-MOSFET arrays (level 1): terminal indices (drain and source are the internal nodes
    when RD/RS are present) and the parameters of :func:`~._devices.mosfet`.

    ``polarity`` is +1 (NMOS) or -1 (PMOS). ``init`` is the first Newton state
    ``(vgs, vds, vbs)`` in the NMOS sense, as ngspice starts an operating point: zero bias for
    OFF devices, else ``polarity·(ICVGS, ICVDS, ICVBS)`` when one is nonzero, else
    ``(polarity·VTO, 0, -1)``. ``off`` marks the OFF devices.
    """

    d: Int[Array, " mosfets"]
    g: Int[Array, " mosfets"]
    s: Int[Array, " mosfets"]
    b: Int[Array, " mosfets"]
    polarity: Float[Array, " mosfets"]
    beta: Float[Array, " mosfets"]
    vbi: Float[Array, " mosfets"]
    gamma: Float[Array, " mosfets"]
    phi: Float[Array, " mosfets"]
    lam: Float[Array, " mosfets"]
    is_d: Float[Array, " mosfets"]
    is_s: Float[Array, " mosfets"]
    vcrit_d: Float[Array, " mosfets"]
    vcrit_s: Float[Array, " mosfets"]
    init: Float[Array, "3 mosfets"]
    off: Bool[Array, " mosfets"]


class Circuit(eqx.Module):
    """A reciprocal circuit compiled to index arrays (see the module docstring).

    Node indices run over ``n_nodes`` real nodes (including diode-internal ones) plus one
    ground slot at index ``n_nodes``. ``node_var[k]`` is the unknown carrying node ``k``
    (``n_u`` means "fixed": ground or a node of a grounded source tree).
    """

    n_u: int = eqx.field(static=True)
    n_nodes: int = eqx.field(static=True)
    node_var: Int[Array, " nodes1"]
    off_node: Int[Array, " offs"]
    off_branch: Int[Array, " offs"]
    off_sign: Float[Array, " offs"]
    r_a: Int[Array, " resistors"]
    r_b: Int[Array, " resistors"]
    diodes: Diodes
    gmin: Float[Array, ""]
    i_a: Int[Array, " isources"]
    i_b: Int[Array, " isources"]
    c_a: Int[Array, " caps"]
    c_b: Int[Array, " caps"]
    c_val: Float[Array, " caps"]
    cur_branch: Int[Array, " cur"]
    cur_node: Int[Array, " cur"]
    cur_sign: Float[Array, " cur"]
    n_vb: int = eqx.field(static=True)
    mg: Hierarchy | None = None
    layout: Layout | None = None


class MnaCircuit(eqx.Module):
    """A circuit with controlled sources or MOSFETs, for Newton on the KCL residual (MNA).

    Unknowns: ``n_nodes`` node voltages, then one branch current per V, L, E, H (``n_br``).
    Index ``n_nodes`` in node arrays is ground. Branch kinds: 0 = V/L (value from
    ``Values.vsrc``), 1 = E, 2 = H. ``mosfets``: the level-1 MOSFETs (``None``: none).
    """

    n_nodes: int = eqx.field(static=True)
    n_br: int = eqx.field(static=True)
    r_a: Int[Array, " resistors"]
    r_b: Int[Array, " resistors"]
    diodes: Diodes
    gmin: Float[Array, ""]
    i_a: Int[Array, " isources"]
    i_b: Int[Array, " isources"]
    br_a: Int[Array, " br"]
    br_b: Int[Array, " br"]
    br_kind: Int[Array, " br"]
    br_vsrc: Int[Array, " br"]
    br_gain: Float[Array, " br"]
    br_ca: Int[Array, " br"]
    br_cb: Int[Array, " br"]
    br_ctrl: Int[Array, " br"]
    g_a: Int[Array, " vccs"]
    g_b: Int[Array, " vccs"]
    g_ca: Int[Array, " vccs"]
    g_cb: Int[Array, " vccs"]
    g_gain: Float[Array, " vccs"]
    f_a: Int[Array, " cccs"]
    f_b: Int[Array, " cccs"]
    f_ctrl: Int[Array, " cccs"]
    f_gain: Float[Array, " cccs"]
    n_vb: int = eqx.field(static=True)
    mosfets: Mosfets | None = None


@dataclasses.dataclass
class CircuitInfo:
    """Names and defaults that go with a compiled circuit (plain Python, never traced).

    - ``nodes``: every node index's name (diode-internal ones are ``<diode>#internal``).
    - ``reported``: indices of the nodes reported to users (deck nodes, not internal ones).
    - ``resistors``: name of each entry of ``Values.g`` (series resistances ``<diode>#rs``).
    - ``vbranches``: names of V sources and inductors (``Values.vsrc`` order).
    - ``isources``: names of current sources (``Values.isrc`` order).
    - ``currents``: names of the branch currents reported (V, L, and E, H in MNA form).
    - ``defaults``: the deck's :class:`Values`.
    - ``reciprocal``: False when the deck has E, F, G, H or M (no energy; MNA solve).
    - ``mosfets``: names of the MOSFETs (``MnaCircuit.mosfets`` order); their series
      resistances are among ``resistors`` as ``<mosfet>#rd`` / ``<mosfet>#rs``, their
      internal nodes among ``nodes`` as ``<mosfet>#drain`` / ``<mosfet>#source``.
    """

    netlist: Netlist
    nodes: list[str]
    node_index: dict[str, int]
    reported: list[int]
    resistors: list[str]
    vbranches: list[str]
    isources: list[str]
    diodes: list[str]
    currents: list[str]
    defaults: Values
    reciprocal: bool
    mosfets: list[str] = dataclasses.field(default_factory=list)

    def values(self, **overrides: dict[str, float]) -> Values:
        """The deck's values with some replaced by name: ``values(g={"r1": 1e-3})``,
        ``vsrc={"v1": 2.0}``, ``isrc={"i1": 1e-3}``."""
        arrays = {k: np.asarray(getattr(self.defaults, k)).copy() for k in ("g", "vsrc", "isrc")}
        names = {"g": self.resistors, "vsrc": self.vbranches, "isrc": self.isources}
        for field, mapping in overrides.items():
            index = {n: k for k, n in enumerate(names[field])}
            for name, val in mapping.items():
                if name not in index:
                    raise NetlistError(f"no element {name!r} among {field} of this circuit")
                arrays[field][index[name]] = val
        return Values(**{k: jnp.asarray(v) for k, v in arrays.items()})


def _diode_params(netlist: Netlist, el: Element) -> tuple[float, float, float, float, float, float]:
    model = netlist.models.get(el.model or "")
    if model is None:
        raise NetlistError.at(f"diode {el.name}: unknown model {el.model!r}", el.location)
    scale = el.area * el.m
    rs = model.rs / (el.area * el.m) if model.rs > 0 else 0.0
    return (model.is_ * scale, model.n, model.bv, model.ibv * scale, model.nbv, rs)


def _mosfet_series(el: Element) -> tuple[float, float]:
    mos = el.mosfet
    if mos is None:  # pragma: no cover - the parser attaches it to every M element
        raise NetlistError.at(f"MOSFET {el.name}: no model data", el.location)
    return mos.series_resistances()


def _mosfet_arrays(elems: list[tuple[Element, int, int]], idx, fix) -> Mosfets:
    """:class:`Mosfets` from ``(element, drain, source)`` (series-resistance nodes resolved)
    with ngspice's level-1 parameters at T = TNOM (mos1temp.c)."""
    rows = []
    for el, d, s in elems:
        mos = el.mosfet
        assert mos is not None
        mod = mos.model
        is_d, is_s = mos.sat_currents()
        vcrit = [VT * math.log(VT / (math.sqrt(2.0) * i)) if i > 0 else 1e30
                 for i in (is_d, is_s)]
        pol = mod.polarity
        ic_vds, ic_vgs, ic_vbs = (0.0 if x is None else x for x in mos.ic)
        if mos.off:
            init = (0.0, 0.0, 0.0)
        elif ic_vds or ic_vgs or ic_vbs:
            init = (pol * ic_vgs, pol * ic_vds, pol * ic_vbs)
        else:
            init = (pol * mod.vto, 0.0, -1.0)
        rows.append((d, idx(el.nodes[1]), s, idx(el.nodes[3]), float(pol), mos.beta,
                     (mod.vto - pol * mod.gamma * math.sqrt(mod.phi)) * pol, mod.gamma,
                     mod.phi, mod.lambda_, is_d, is_s, vcrit[0], vcrit[1], init, mos.off))
    cols = list(zip(*rows))
    ints = [jnp.asarray(fix(list(c))) for c in cols[:4]]
    flts = [jnp.asarray(np.asarray(c, dtype=np.float64)) for c in cols[4:14]]
    init_arr = jnp.asarray(np.asarray(cols[14], dtype=np.float64).T.reshape(3, len(rows)))
    return Mosfets(*ints, *flts, init=init_arr,
                   off=jnp.asarray(np.asarray(cols[15], dtype=bool)))


def _source_forest(nodes_of: dict[str, int], branches: list[tuple[str, int, int]], ground: int,
                   netlist: Netlist):
    """Spanning forest of the voltage-defining branches.

    Returns ``(root_of, paths, order)``: for every node in a source tree, its root, its
    path to the root as ``[(branch_index, sign)]`` with ``v(node) = v(root) + Σ sign·V_b``,
    and the tree edges as ``(branch_index, child_node)`` in breadth-first order.
    """
    adj: dict[int, list[tuple[int, int, float]]] = {}
    for k, (_, a, b) in enumerate(branches):
        adj.setdefault(a, []).append((k, b, -1.0))  # v(b) = v(a) - V
        adj.setdefault(b, []).append((k, a, +1.0))  # v(a) = v(b) + V
    root_of: dict[int, int] = {}
    paths: dict[int, list[tuple[int, float]]] = {}
    edges: list[tuple[int, int, int]] = []  # (branch, parent, child)
    starts = sorted(adj, key=lambda n: (n != ground, n))
    used: set[int] = set()
    for start in starts:
        if start in root_of:
            continue
        root_of[start] = start
        paths[start] = []
        queue = deque([start])
        while queue:
            n = queue.popleft()
            for k, m, sign in adj[n]:
                if k in used:
                    continue
                used.add(k)
                if m in root_of:
                    loop = [branches[k][0]] + [branches[b][0] for b, _ in paths[m] + paths[n]]
                    names = ", ".join(dict.fromkeys(loop))
                    el = netlist.element(branches[k][0])
                    raise TopologyError.at(
                        f"loop of voltage sources/inductors: {names}", el.location)
                root_of[m] = start
                paths[m] = paths[n] + [(k, sign)]
                edges.append((k, n, m))
                queue.append(m)
    return root_of, paths, edges


def compile_circuit(netlist: Netlist, *, mna: bool = False
                    ) -> tuple[Circuit | MnaCircuit, CircuitInfo]:
    """Compile a netlist.

    **Arguments:**

    - ``netlist``: a parsed, flattened deck (topology already checked).
    - ``mna``: compile to an :class:`MnaCircuit` even when the deck is reciprocal (the
      transient analysis integrates the MNA equations).

    **Returns:** ``(circuit, info)``: a :class:`Circuit` when the deck is reciprocal, an
    :class:`MnaCircuit` otherwise, and the :class:`CircuitInfo` naming its arrays.

    **Raises:** :class:`NetlistError` for unknown models or control sources,
    :class:`TopologyError` for loops of voltage sources.
    """
    deck_nodes = netlist.nodes()
    node_index = {n: k for k, n in enumerate(deck_nodes)}
    names = list(deck_nodes)
    reported = list(range(len(deck_nodes)))
    reciprocal = not mna and not any(el.kind in "efghm" for el in netlist.elements)

    def idx(n: str) -> int:
        return -1 if n == GROUND else node_index[n]

    r_names, r_a, r_b, r_g = [], [], [], []
    d_names, d_a, d_b, d_par = [], [], [], []
    vb_names, vb_a, vb_b, vb_val = [], [], [], []
    i_names, i_a, i_b, i_val = [], [], [], []
    c_a, c_b, c_val = [], [], []
    ctrl_elems: list[Element] = []
    mos_elems: list[tuple[Element, int, int]] = []  # (element, drain, source) node indices
    rs_list = []
    for el in netlist.elements:
        k = el.kind
        if k == "r":
            if not (el.value > 0 and math.isfinite(el.value)):
                raise NetlistError.at(f"resistor {el.name}: resistance must be positive", el.location)
            r_names.append(el.name); r_a.append(idx(el.nodes[0])); r_b.append(idx(el.nodes[1]))
            r_g.append(1.0 / el.value)
        elif k == "d":
            *par, rs = _diode_params(netlist, el)
            a = idx(el.nodes[0])
            if rs > 0:
                internal = f"{el.name}#internal"
                node_index[internal] = len(names)
                names.append(internal)
                rs_list.append((f"{el.name}#rs", a, node_index[internal], 1.0 / rs))
                a = node_index[internal]
            d_names.append(el.name); d_a.append(a); d_b.append(idx(el.nodes[1])); d_par.append(par)
        elif k in "vl":
            vb_names.append(el.name); vb_a.append(idx(el.nodes[0])); vb_b.append(idx(el.nodes[1]))
            vb_val.append(el.value if k == "v" else 0.0)
        elif k == "i":
            i_names.append(el.name); i_a.append(idx(el.nodes[0])); i_b.append(idx(el.nodes[1]))
            i_val.append(el.value)
        elif k == "c":
            c_a.append(idx(el.nodes[0])); c_b.append(idx(el.nodes[1])); c_val.append(el.value)
        elif k in "efgh":
            ctrl_elems.append(el)
        elif k == "m":
            terminals = []
            for node, series, side in zip((el.nodes[0], el.nodes[2]),
                                          _mosfet_series(el), ("drain", "source")):
                a = idx(node)
                if series > 0:
                    internal = f"{el.name}#{side}"
                    node_index[internal] = len(names)
                    names.append(internal)
                    rs_list.append((f"{el.name}#r{side[0]}", a, node_index[internal],
                                    1.0 / series))
                    a = node_index[internal]
                terminals.append(a)
            mos_elems.append((el, terminals[0], terminals[1]))
        else:  # pragma: no cover - the parser refuses other letters
            raise NetlistError.at(f"unsupported element {el.name}", el.location)
    for name, a, b, g in rs_list:
        r_names.append(name); r_a.append(a); r_b.append(b); r_g.append(g)

    n_nodes = len(names)
    gnd = n_nodes

    def fix(lst):
        return np.array([gnd if x == -1 else x for x in lst], dtype=np.int32)

    dpar = diode_arrays([p for p in d_par]) if d_par else diode_arrays([])
    vcrit = dpar["vte"] * np.log(dpar["vte"] / (math.sqrt(2.0) * np.maximum(dpar["is_"], 1e-300))) \
        if d_par else np.zeros(0)
    diodes = Diodes(a=jnp.asarray(fix(d_a)), b=jnp.asarray(fix(d_b)),
                    is_=jnp.asarray(dpar["is_"]), vte=jnp.asarray(dpar["vte"]),
                    tbv=jnp.asarray(dpar["tbv"]), nbvt=jnp.asarray(dpar["nbvt"]),
                    has_bv=jnp.asarray(dpar["has_bv"]), vcrit=jnp.asarray(vcrit))
    f64 = lambda x: jnp.asarray(np.asarray(x, dtype=np.float64))  # noqa: E731
    defaults = Values(g=f64(r_g), vsrc=f64(vb_val), isrc=f64(i_val))
    gmin = jnp.asarray(netlist.gmin, dtype=jnp.float64)

    if reciprocal:
        branches = [(vb_names[k], fix(vb_a)[k], fix(vb_b)[k]) for k in range(len(vb_names))]
        root_of, paths, edges = _source_forest(node_index, branches, gnd, netlist)
        node_var = np.full(n_nodes + 1, -1, dtype=np.int64)
        n_u = 0
        for n in range(n_nodes):
            r = root_of.get(n, n)
            if r == gnd:
                continue
            if node_var[r] < 0:
                node_var[r] = n_u
                n_u += 1
            node_var[n] = node_var[r]
        node_var[node_var < 0] = n_u
        off_node, off_branch, off_sign = [], [], []
        for n, path in paths.items():
            for k, s in path:
                off_node.append(n); off_branch.append(k); off_sign.append(s)
        # branch currents: for tree edge (k, parent, child), the subtree under child.
        children: dict[int, list[int]] = {}
        for k, p, c in edges:
            children.setdefault(p, []).append(c)
        cur_branch, cur_node, cur_sign = [], [], []
        for k, p, c in edges:
            _, a, b = branches[k]
            # i_b enters n+ (=a). Child side holds a: i = -ΣJ; holds b: i = +ΣJ.
            sign = -1.0 if c == a else 1.0
            stack = [c]
            while stack:
                n = stack.pop()
                if n != gnd:
                    cur_branch.append(k); cur_node.append(n); cur_sign.append(sign)
                stack.extend(children.get(n, []))
        ia = lambda x: jnp.asarray(np.asarray(x, dtype=np.int32))  # noqa: E731
        # multigrid hierarchy over the resistor and diode branches (large circuits only)
        nv = np.where(node_var < 0, n_u, node_var)
        br_a = np.concatenate([fix(r_a), fix(d_a)]).astype(np.int64)
        br_b = np.concatenate([fix(r_b), fix(d_b)]).astype(np.int64)
        # aggregates follow strong couplings: resistor conductances, and for diodes the
        # conductance at vcrit (a conducting junction couples its nodes tightly)
        weights = np.concatenate([np.asarray(r_g, dtype=np.float64),
                                  np.full(len(d_a), 1.0 / (math.sqrt(2.0) * VT))])
        mg = build_hierarchy(n_u, nv[br_a], nv[br_b], weights)
        circuit = Circuit(
            n_u=n_u, n_nodes=n_nodes, node_var=ia(node_var),
            off_node=ia(off_node), off_branch=ia(off_branch), off_sign=f64(off_sign),
            r_a=jnp.asarray(fix(r_a)), r_b=jnp.asarray(fix(r_b)), diodes=diodes, gmin=gmin,
            i_a=jnp.asarray(fix(i_a)), i_b=jnp.asarray(fix(i_b)),
            c_a=jnp.asarray(fix(c_a)), c_b=jnp.asarray(fix(c_b)), c_val=f64(c_val),
            cur_branch=ia(cur_branch), cur_node=ia(cur_node), cur_sign=f64(cur_sign),
            n_vb=len(vb_names), mg=mg,
            layout=find_blocks(fix(r_a), fix(r_b), nv, n_u, gnd),
        )
        currents = list(vb_names)
    else:
        vb_index = {n: k for k, n in enumerate(vb_names)}
        br_a, br_b, br_kind, br_vsrc, br_gain, br_ca, br_cb, br_ctrl = ([] for _ in range(8))
        currents = list(vb_names)
        for k in range(len(vb_names)):
            br_a.append(vb_a[k]); br_b.append(vb_b[k]); br_kind.append(0); br_vsrc.append(k)
            br_gain.append(0.0); br_ca.append(-1); br_cb.append(-1); br_ctrl.append(0)
        g_a, g_b, g_ca, g_cb, g_gain = ([] for _ in range(5))
        f_a, f_b, f_ctrl, f_gain = ([] for _ in range(4))

        def ctrl_branch(el: Element) -> int:
            if el.control not in vb_index:
                raise NetlistError.at(
                    f"{el.name}: controlling source {el.control!r} is not a voltage source",
                    el.location)
            return vb_index[el.control]

        for el in ctrl_elems:
            a, b = idx(el.nodes[0]), idx(el.nodes[1])
            if el.kind == "e":
                br_a.append(a); br_b.append(b); br_kind.append(1); br_vsrc.append(0)
                br_gain.append(el.value); br_ca.append(idx(el.nodes[2])); br_cb.append(idx(el.nodes[3]))
                br_ctrl.append(0); currents.append(el.name)
            elif el.kind == "h":
                br_a.append(a); br_b.append(b); br_kind.append(2); br_vsrc.append(0)
                br_gain.append(el.value); br_ca.append(-1); br_cb.append(-1)
                br_ctrl.append(ctrl_branch(el)); currents.append(el.name)
            elif el.kind == "g":
                g_a.append(a); g_b.append(b); g_ca.append(idx(el.nodes[2])); g_cb.append(idx(el.nodes[3]))
                g_gain.append(el.value)
            else:
                f_a.append(a); f_b.append(b); f_ctrl.append(ctrl_branch(el)); f_gain.append(el.value)
        ia = lambda x: jnp.asarray(np.asarray(x, dtype=np.int32))  # noqa: E731
        mosfets = _mosfet_arrays(mos_elems, idx, fix) if mos_elems else None
        circuit = MnaCircuit(
            n_nodes=n_nodes, n_br=len(br_a), r_a=jnp.asarray(fix(r_a)), r_b=jnp.asarray(fix(r_b)),
            diodes=diodes, gmin=gmin, i_a=jnp.asarray(fix(i_a)), i_b=jnp.asarray(fix(i_b)),
            br_a=jnp.asarray(fix(br_a)), br_b=jnp.asarray(fix(br_b)), br_kind=ia(br_kind),
            br_vsrc=ia(br_vsrc), br_gain=f64(br_gain), br_ca=jnp.asarray(fix(br_ca)),
            br_cb=jnp.asarray(fix(br_cb)), br_ctrl=ia(br_ctrl),
            g_a=jnp.asarray(fix(g_a)), g_b=jnp.asarray(fix(g_b)), g_ca=jnp.asarray(fix(g_ca)),
            g_cb=jnp.asarray(fix(g_cb)), g_gain=f64(g_gain),
            f_a=jnp.asarray(fix(f_a)), f_b=jnp.asarray(fix(f_b)), f_ctrl=ia(f_ctrl),
            f_gain=f64(f_gain), n_vb=len(vb_names), mosfets=mosfets,
        )
    info = CircuitInfo(
        netlist=netlist, nodes=names, node_index=node_index, reported=reported,
        resistors=r_names, vbranches=vb_names, isources=i_names, diodes=d_names,
        currents=currents, defaults=defaults, reciprocal=reciprocal,
        mosfets=[el.name for el, _, _ in mos_elems],
    )
    return circuit, info


__all__ = ["Circuit", "CircuitInfo", "MnaCircuit", "Values", "compile_circuit", "VT"]
