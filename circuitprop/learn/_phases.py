"""Phases of a learning circuit and what hardware can measure in them.

A :class:`Problem` is a compiled reciprocal circuit together with the experiment's wiring:
which resistors are trainable, which sources carry the inputs, which node pairs are the
outputs. A *phase* is a steady state of the circuit with the inputs applied and, optionally,
the outputs nudged (``E + β C``) or clamped (outputs held by voltage sources). What a phase
returns is a :class:`Measurement`: the voltage drop across each trainable resistor and the
output voltages, the only quantities the learning rules consume.

Costs ``C(o, y)`` of the output voltages ``o``:

- ``mse``: ``½ Σ_k (o_k − y_k)²``; nudging is a conductance β from each output to a source
  at its target (:class:`circuitprop._energy.Nudge`), solved by the library's Newton solver.
- ``cross-entropy``: softmax cross-entropy ``−Σ_k q_k log softmax(o)_k`` with ``q`` the
  one-hot class of the target vector (its largest entry). The nudge ``β C`` enters the
  energy as an :class:`~circuitprop._energy.OutputCost` (a current injection ``−β ∂C/∂o``).

Outputs are node voltages (``"out"``, ``"a-b"``) or currents through V sources
(``"i(vout)"``, ``"i(vp)-i(vn)"``: virtual-ground readouts). A current output cannot be
nudged by adding its cost to the energy (the current is a derivative of the energy's
minimum with respect to the source, ``i = −∂Φ/∂V``); it is nudged the way a chip would,
by shifting its readout source: ``V → V − β ∂C/∂i`` with ``∂C/∂i`` read in the free phase
(:class:`CurrentNudge`). Then ``d/dβ ∂θΦ = −Σ ∂C/∂i ∂²Φ/∂θ∂V = dC/dθ``: every EP estimator
applies unchanged to the drops across the devices, and the shifts ride along in the phase's
state (``u`` followed by the shift of each readout source).

Every phase is solved by the package's solvers (:func:`circuitprop._solve._methods.circuit_solve`:
Newton–CG, Newton on the dense reduced Hessian, or coordinate sweeps; ``Problem.method``).
"""

from __future__ import annotations

import dataclasses

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from .._api import as_netlist
from .._circuit import Circuit, CircuitInfo, Values, compile_circuit
from .._energy import Nudge, OutputCost, node_voltages, source_currents
from .._errors import ExperimentError, NetlistError
from .._graph import check_topology
from .._losses import LOSSES, loss_value
from .._solve._coordinate import with_colours
from .._solve._dense import DENSE_LIMIT
from .._solve._methods import SOLVERS, auto_method, circuit_solve
from .._solve._mna import MnaOptions
from .._solve._newton import Newton, NewtonOptions
from .._solve._result import Solution
from ..experiment import check_names, current_source
from ..netlist._types import Element

__all__ = [
    "Problem",
    "MnaWiring",
    "Measurement",
    "make_problem",
    "problem_from_experiment",
    "cost",
    "values_for",
    "deck_parameters",
    "solve_free",
    "solve_nudged",
    "solve_clamped",
    "measure",
    "weighted_energy_grad",
    "output_voltages",
    "output_values",
    "split_state",
    "CurrentNudge",
    "TIGHT",
]

#: Newton tolerances of the phases: tight enough for EP differences at β = 1e-6.
TIGHT = Newton(rtol=1e-13, atol=1e-15, eta_min=1e-10, eta_max=1e-2, max_steps=400)


class Problem(eqx.Module):
    """A compiled circuit wired for learning (all index arrays; vmappable, jittable).

    - ``circuit``: the compiled :class:`~circuitprop._circuit.Circuit`.
    - ``clamped``: the same circuit with one voltage source per output (outputs held),
      used by coupled / contrastive learning; its extra sources are the last ``vsrc``.
    - ``base``: the deck's :class:`Values`.
    - ``train_idx``: indices of the trainable resistors in ``Values.g``.
    - ``in_v_idx``/``in_v_col``: V-source inputs (``vsrc`` index, data column);
      ``in_i_idx``/``in_i_col`` likewise for current sources.
    - ``out_p``/``out_m``: node indices of each output (ground is ``circuit.n_nodes``).
    - ``loss``: ``"mse"`` or ``"cross-entropy"``.
    - ``options``: Newton tolerances of every phase.
    - ``method``: the phases' solver (one of ``circuitprop._solve._methods.SOLVERS``).
    - ``current``: the outputs are currents through V sources; ``shift_src`` (``vsrc``
      index of each readout source), ``out_ipos``/``out_impos`` (each output's plus and minus
      current as a position in ``shift_src``, −1: none).
    - ``train_v_idx``: ``vsrc`` indices of trainable V sources (θ after the conductances);
      ``mna``: the :class:`MnaWiring` of a circuit solved by MNA (``circuit`` and
      ``clamped`` are then :class:`~circuitprop._circuit.MnaCircuit`, ``options`` an
      :class:`~circuitprop._solve._mna.MnaOptions`), ``None`` for an energy.
    """

    circuit: Circuit
    clamped: Circuit
    base: Values
    train_idx: Int[Array, " k"]
    in_v_idx: Int[Array, " a"]
    in_v_col: Int[Array, " a"]
    in_i_idx: Int[Array, " b"]
    in_i_col: Int[Array, " b"]
    out_p: Int[Array, " o"]
    out_m: Int[Array, " o"]
    loss: str = eqx.field(static=True)
    options: NewtonOptions = TIGHT
    can_clamp: bool = eqx.field(static=True, default=True)
    method: str = eqx.field(static=True, default="newton")
    train_slice: tuple | None = eqx.field(static=True, default=None)
    current: bool = eqx.field(static=True, default=False)
    shift_src: Int[Array, " r"] | None = None
    out_ipos: Int[Array, " o"] | None = None
    out_impos: Int[Array, " o"] | None = None
    train_v_idx: Int[Array, " kv"] | None = None
    mna: MnaWiring | None = None

    @property
    def n_params(self) -> int:
        kv = 0 if self.train_v_idx is None else int(self.train_v_idx.shape[0])
        return int(self.train_idx.shape[0]) + kv

    @property
    def n_state(self) -> int:
        """Length of a phase's state: the unknowns (MNA: node voltages, then branch
        currents), then (current outputs) the shift of each readout source."""
        if self.mna is not None:
            return int(self.circuit.n_nodes + self.circuit.n_br)
        extra = int(self.shift_src.shape[0]) if self.current else 0
        return int(self.circuit.n_u) + extra

    @property
    def n_outputs(self) -> int:
        return int(self.out_p.shape[0])


class MnaWiring(eqx.Module):
    """What a learning circuit solved by MNA (:class:`~circuitprop._circuit.MnaCircuit`:
    MOSFETs, controlled sources, or trainable V sources) needs besides :class:`Problem`:

    - ``branch``, ``branch_clamped``: the branch (in the free and in the clamped circuit)
      of every trainable V source, whose current it delivers is ``∂E/∂V`` of its resistive
      surroundings.
    - ``gate_param``, ``gate_mos``, ``gate_sign``: every (trainable V source, MOSFET) pair
      where the source sets the MOSFET's gate (``sign`` +1: the gate is on the source's plus
      node, −1: on its minus node), whose channel co-content the gate parameter sets
      (:func:`~circuitprop._devices.channel_gate_cocontent`).
    """

    branch: Int[Array, " kv"]
    branch_clamped: Int[Array, " kv"]
    gate_param: Int[Array, " pairs"]
    gate_mos: Int[Array, " pairs"]
    gate_sign: Float[Array, " pairs"]


@dataclasses.dataclass
class ProblemInfo:
    """Names that go with a :class:`Problem` (plain Python)."""

    netlist: object
    info: CircuitInfo
    parameters: list[str]
    inputs: list[str]
    outputs: list[tuple[str, str]]


def _clamped_netlist(netlist, outputs):

    extra = [
        Element(kind="v", name=f"vclamp#{k}", nodes=(p, m), value=0.0)
        for k, (p, m) in enumerate(outputs)
    ]
    return dataclasses.replace(netlist, elements=list(netlist.elements) + extra)


def make_problem(netlist, inputs, outputs, trainable, loss: str = "mse",
                 options: NewtonOptions = TIGHT,
                 method: str = "newton") -> tuple[Problem, ProblemInfo]:
    """Compile a deck for learning.

    **Arguments:**

    - ``netlist``: a :class:`~circuitprop.netlist.Netlist` (or a path / deck text).
    - ``inputs``: V or I source names, in data column order.
    - ``outputs``: ``(plus, minus)`` node pairs (``"0"`` is ground), or current terms
      ``("i(vp)", "i(vn)")`` / ``("i(v)", "0")`` (:func:`~circuitprop.experiment.parse_output`).
    - ``trainable``: resistor names whose conductances learn, and V source names (not
      inputs) whose DC values learn. θ is the conductances, then the V sources' values
      (``ProblemInfo.parameters`` in that order).
    - ``loss``: ``"mse"`` or ``"cross-entropy"``.
    - ``options``: Newton tolerances of the phases.
    - ``method``: the phases' solver, ``newton``, ``dense``, ``coordinate`` or ``auto``
      (:func:`circuitprop._solve._methods.auto_method`).

    A deck with E, F, G, H or M elements, or with a trainable V source, has no energy to
    learn on: it compiles to an :class:`~circuitprop._circuit.MnaCircuit` (``method`` must be
    ``auto`` or ``newton``; it becomes ``"mna"``), ``Problem.mna`` holds its
    :class:`MnaWiring`, and :class:`~._mna.MnaEquilibrium` solves its phases.

    **Returns:** ``(problem, problem_info)``.

    **Raises:** :class:`NetlistError` for unknown names, a trainable input source, current
    outputs on an MNA circuit; :class:`ExperimentError` for a bad loss or solver.
    """

    if loss not in LOSSES:
        raise ExperimentError(f"loss must be one of {', '.join(LOSSES)} (got {loss!r})")
    netlist = as_netlist(netlist)
    check_topology(netlist)
    circuit, info = compile_circuit(netlist)
    kinds = {el.name.lower(): el.kind for el in netlist.elements}
    gates = [n.lower() for n in trainable if kinds.get(n.lower()) == "v"]
    lowered_inputs = {n.lower() for n in inputs}
    for name in gates:
        if name in lowered_inputs:
            raise NetlistError(f"{netlist.source}: {name!r} is an input source; it cannot "
                               "also be trainable")
    # circuits without an energy, and V-source parameters, are solved by MNA
    mna = not isinstance(circuit, Circuit) or bool(gates)
    currents = any(current_source(t) is not None for pair in outputs for t in pair)
    if mna:
        if currents:
            raise NetlistError(f"{netlist.source}: current outputs need a reciprocal circuit "
                               "with trainable resistors only (no E, F, G, H or M elements, "
                               "no trainable V sources)")
        if method not in ("auto", "newton"):
            raise ExperimentError(f"solver {method!r} works on reciprocal circuits only; this "
                                  "circuit is solved by MNA Newton (solver \"auto\")")
        circuit, info = compile_circuit(netlist, mna=True)
    compile_ = (lambda n: compile_circuit(n, mna=True)) if mna else compile_circuit
    if currents:
        clamped, can_clamp = circuit, False  # a current is not held by a voltage source
    else:
        try:
            cnet = _clamped_netlist(netlist, outputs)
            check_topology(cnet)
            clamped, cinfo = compile_(cnet)
            can_clamp = cinfo.nodes == info.nodes
        except NetlistError:  # an output tied to a source cannot be clamped by another one
            clamped, can_clamp = circuit, False
    r_index = {n: k for k, n in enumerate(info.resistors)}
    v_index = {n: k for k, n in enumerate(info.vbranches)}
    i_index = {n: k for k, n in enumerate(info.isources)}
    train_idx = []
    for name in trainable:
        if name.lower() in gates:
            continue
        if name.lower() not in r_index:
            raise NetlistError(f"{netlist.source}: {name!r} is not a resistor or V source of "
                               "the deck")
        train_idx.append(r_index[name.lower()])
    wiring = None
    if mna:
        wiring = _mna_wiring(netlist, circuit, info, clamped if can_clamp else None,
                             cinfo if can_clamp else None, gates)
    in_v, in_i = [], []
    for col, name in enumerate(inputs):
        key = name.lower()
        if key in v_index:
            in_v.append((v_index[key], col))
        elif key in i_index:
            in_i.append((i_index[key], col))
        else:
            raise NetlistError(f"{netlist.source}: input {name!r} is not a V or I source")
    gnd = circuit.n_nodes

    def node(n: str) -> int:
        if n == "0":
            return gnd
        if n not in info.node_index:
            raise NetlistError(f"{netlist.source}: output node {n!r} is not a node of the deck")
        return info.node_index[n]

    ia = lambda x: jnp.asarray(np.asarray(x, dtype=np.int32).reshape(-1))  # noqa: E731
    terms = [current_source(t) for pair in outputs for t in pair]
    current = any(t is not None for t in terms)
    shift = {}
    if current:
        if any(t is None and n != "0" for t, n in zip(terms, (n for pr in outputs for n in pr))):
            raise NetlistError(f"{netlist.source}: outputs: currents and voltages cannot be mixed")
        pos = []
        for pair in outputs:
            row = []
            for t in pair:
                src = current_source(t)
                if src is None:
                    row.append(-1)
                    continue
                if src not in v_index or netlist.element(src).kind != "v":
                    raise NetlistError(f"{netlist.source}: output {t!r}: {src!r} is not a V "
                                       "source of the deck")
                row.append(shift.setdefault(v_index[src], len(shift)))
            pos.append(row)
        out_p = out_m = ia([gnd] * len(outputs))
        can_clamp = False
    else:
        out_p = ia([node(p) for p, _ in outputs])
        out_m = ia([node(m) for _, m in outputs])
    if mna:  # the package's Newton on the MNA residual (SPICE's iteration with MOSFETs)
        method = "mna"
    else:
        if method == "auto":
            method = auto_method(circuit, loss)
        if method not in SOLVERS:
            raise ExperimentError(f"unknown solver {method!r} (one of auto, "
                                  f"{', '.join(SOLVERS)})")
    if method == "dense" and circuit.n_u > DENSE_LIMIT:
        raise ExperimentError(f"the dense solver factorises an n×n matrix of the unknowns; "
                              f"this circuit has {circuit.n_u} (at most {DENSE_LIMIT}): use "
                              "solver = \"newton\"")
    if method == "coordinate":
        if loss != "mse":
            raise ExperimentError(f"the coordinate solver nudges with the mse loss only (loss "
                                  f"{loss!r} couples every output): use solver = \"dense\" "
                                  "or \"newton\"")
        # the output nudges join each output's two nodes: they get different colours
        circuit = with_colours(circuit, [] if current
                               else [(np.asarray(out_p), np.asarray(out_m))])
        if can_clamp:
            clamped = with_colours(clamped)
    prob = Problem(
        circuit=circuit, clamped=clamped, base=info.defaults, train_idx=ia(train_idx),
        in_v_idx=ia([a for a, _ in in_v]), in_v_col=ia([b for _, b in in_v]),
        in_i_idx=ia([a for a, _ in in_i]), in_i_col=ia([b for _, b in in_i]),
        out_p=out_p, out_m=out_m, loss=loss, options=MnaOptions() if mna else options,
        can_clamp=can_clamp,
        method=method, train_slice=_contiguous(train_idx), current=current,
        shift_src=ia(list(shift)) if current else None,
        out_ipos=ia([r[0] for r in pos]) if current else None,
        out_impos=ia([r[1] for r in pos]) if current else None,
        train_v_idx=ia([v_index[n] for n in gates]) if mna else None, mna=wiring)
    # θ: the trainable resistors' conductances, then the trainable V sources' values
    names = [n.lower() for n in trainable if n.lower() not in gates] + gates
    pinfo = ProblemInfo(netlist=netlist, info=info, parameters=names,
                        inputs=list(inputs), outputs=list(outputs))
    return prob, pinfo


def _mna_wiring(netlist, circuit, info, clamped, cinfo, gates) -> MnaWiring:
    """The :class:`MnaWiring` of trainable V sources ``gates`` (deck-order names)."""
    ia = lambda x: jnp.asarray(np.asarray(x, dtype=np.int32).reshape(-1))  # noqa: E731

    def branches(c, inf):
        if c is None:
            return [0] * len(gates)
        kind, src = np.asarray(c.br_kind), np.asarray(c.br_vsrc)
        v_index = {n: k for k, n in enumerate(inf.vbranches)}
        return [int(np.nonzero((kind == 0) & (src == v_index[n]))[0][0]) for n in gates]

    gnd = circuit.n_nodes
    node = lambda n: gnd if n == "0" else info.node_index[n]  # noqa: E731
    pairs = []
    m = circuit.mosfets
    gate_nodes = [] if m is None else np.asarray(m.g).tolist()
    for j, name in enumerate(gates):
        plus, minus = (node(n) for n in netlist.element(name).nodes[:2])
        for k, g in enumerate(gate_nodes):
            sign = (g == plus and plus != gnd) - (g == minus and minus != gnd)
            if sign:
                pairs.append((j, k, float(sign)))
    return MnaWiring(branch=ia(branches(circuit, info)),
                     branch_clamped=ia(branches(clamped, cinfo)),
                     gate_param=ia([p[0] for p in pairs]), gate_mos=ia([p[1] for p in pairs]),
                     gate_sign=jnp.asarray(np.asarray([p[2] for p in pairs], np.float64)))


def _contiguous(idx: list[int]) -> tuple[int, int] | None:
    """``(start, stop)`` when ``idx`` is ``start, start + 1, …, stop − 1``."""
    if idx and list(idx) == list(range(idx[0], idx[0] + len(idx))):
        return idx[0], idx[0] + len(idx)
    return None


def problem_from_experiment(experiment, netlist=None, options: NewtonOptions = TIGHT,
                            method: str | None = None):
    """:func:`make_problem` from an :class:`~circuitprop.experiment.Experiment` (parses and
    checks the deck unless ``netlist`` is given). ``method``: the phases' solver (default:
    the experiment's ``[train] solver``)."""

    if netlist is None:
        netlist = experiment.load_netlist()
    names = check_names(experiment, netlist)
    method = experiment.train.solver if method is None else method
    try:
        return make_problem(netlist, experiment.inputs, experiment.outputs, names,
                            experiment.learning.loss, options, method)
    except ExperimentError as e:
        if "solver" in str(e):
            raise ExperimentError(f"{experiment.path}: [train] solver: {e}") from None
        raise


# ----------------------------------------------------------------------------- costs


def cost(loss: str, o, y):
    """The cost of output voltages ``o`` against targets ``y`` (one sample)."""
    return loss_value(loss, o, y)


def deck_parameters(prob: Problem) -> np.ndarray:
    """θ as the deck writes it: the trainable conductances, then the trainable V sources'
    values."""
    g = np.asarray(prob.base.g)[np.asarray(prob.train_idx)]
    if prob.train_v_idx is None or not prob.train_v_idx.shape[0]:
        return g
    return np.concatenate([g, np.asarray(prob.base.vsrc)[np.asarray(prob.train_v_idx)]])


def values_for(prob: Problem, theta, x, base: Values | None = None, shift=None) -> Values:
    """The circuit's :class:`Values` with trainable conductances ``theta`` and input
    source values ``x`` (one sample, already encoded); ``shift``: volts added to each
    readout source of current outputs (a nudged phase)."""
    b = prob.base if base is None else base
    vsrc = b.vsrc
    if prob.train_v_idx is not None and prob.train_v_idx.shape[0]:
        k = prob.train_idx.shape[0]  # θ: conductances, then V-source values
        vsrc = vsrc.astype(jnp.result_type(vsrc, theta)).at[prob.train_v_idx].set(theta[k:])
        theta = theta[:k]
    if prob.train_slice is not None:  # a contiguous run of resistors: no scatter
        lo, hi = prob.train_slice
        g = jnp.concatenate([b.g[:lo], theta.astype(b.g.dtype), b.g[hi:]])
    else:
        g = b.g.at[prob.train_idx].set(theta)
    if prob.in_v_idx.shape[0]:
        vsrc = vsrc.at[prob.in_v_idx].set(x[prob.in_v_col])
    isrc = b.isrc
    if prob.in_i_idx.shape[0]:
        isrc = isrc.at[prob.in_i_idx].set(x[prob.in_i_col])
    if shift is not None:
        vsrc = vsrc.astype(jnp.result_type(vsrc, shift)).at[prob.shift_src].add(shift)
    return Values(g=g, vsrc=vsrc, isrc=isrc)


def split_state(prob: Problem, state):
    """``(u, shift)`` of a phase's state: the unknowns and (current outputs) the readout
    sources' shifts (``None`` otherwise; zeros for a bare ``u``, a free phase)."""
    if not prob.current:
        return state, None
    n = prob.circuit.n_u
    if state.shape[-1] == n:
        return state, jnp.zeros(state.shape[:-1] + prob.shift_src.shape, state.dtype)
    return state[..., :n], state[..., n:]


class CurrentNudge(eqx.Module):
    """What the nudged phases of current outputs are given: the ``target`` and the cost's
    gradient ``grad = ∂C/∂o`` at the free phase (the readout sources shift by
    ``−β`` times it, see the module docstring)."""

    target: Array
    grad: Array


def current_shift(prob: Problem, grad, beta):
    """The readout sources' shifts ``−β ∂C/∂i`` from the cost gradient ``grad`` of each
    output ``i(vp) − i(vn)``."""
    r = prob.shift_src.shape[0]
    d = jnp.asarray(beta) * grad
    s = jnp.zeros((r,), d.dtype).at[prob.out_ipos].add(-d)
    return s.at[jnp.where(prob.out_impos >= 0, prob.out_impos, r)].add(d, mode="drop")


def output_voltages(prob: Problem, v):
    """Output voltages from full node voltages."""
    return v[prob.out_p] - v[prob.out_m]


def output_values(prob: Problem, c: Circuit, values: Values, v):
    """The outputs at node voltages ``v``: voltages, or currents through the readout
    sources (ngspice's sign)."""
    if not prob.current:
        return output_voltages(prob, v)
    cur = source_currents(c, values, v)[prob.shift_src]
    r = prob.shift_src.shape[0]
    minus = jnp.concatenate([cur, jnp.zeros((1,), cur.dtype)])[
        jnp.where(prob.out_impos >= 0, prob.out_impos, r)]
    return cur[prob.out_ipos] - minus


class Measurement(eqx.Module):
    """What a phase lets hardware measure: ``dv`` (voltage across each trainable resistor)
    and ``out`` (output voltages). ``ok`` says the phase converged."""

    dv: Float[Array, " k"]
    out: Float[Array, " o"]
    ok: Array

    def energy_grad(self):
        """``∂E/∂g_k = ½ ΔV_k²`` for every trainable resistor, in at least float64 (EP
        subtracts these between phases: squaring a float32 drop of 100 V would round away
        the millivolts a nudge moves it by)."""
        dv = self.dv.astype(jnp.promote_types(self.dv.dtype, jnp.float64))
        return 0.5 * dv * dv


def measure(prob: Problem, c: Circuit, values: Values, sol: Solution) -> Measurement:
    """Read a phase's measurements from its solution."""
    return measure_state(prob, c, values, sol.u, sol.ok)


def measure_state(prob: Problem, c: Circuit, values: Values, u, ok=True) -> Measurement:
    """The measurements of the circuit ``c`` at unknowns ``u``."""
    v = node_voltages(c, values, u)
    if prob.train_slice is not None and c.layout is not None and c.layout.blocks:
        # layered networks: broadcast differences on the dense blocks, no gathers
        dv = c.layout.drops(v, c.r_a, c.r_b)[prob.train_slice[0] : prob.train_slice[1]]
    else:
        dv = v[c.r_a[prob.train_idx]] - v[c.r_b[prob.train_idx]]
    return Measurement(dv=dv, out=output_values(prob, c, values, v), ok=jnp.asarray(ok))


def weighted_energy_grad(prob: Problem, c: Circuit, v, coefs):
    """``Σ_i coefs_i · ½ΔV_k(v_i)²`` for every trainable resistor ``k``, from a stack of
    node-voltage vectors ``v`` (``M × nodes``): the batch reduction of EP estimates.

    On a dense block the sum is ``½[Σc v_P² ⊕ Σc v_Q² − 2 (c∘V_P)ᵀ V_Q]``: two weighted
    sums and one matmul over the stack, no per-state parameter vector. Other resistors are
    gathered. Computed in at least float64 (see :meth:`Measurement.energy_grad`).
    """
    v = v.astype(jnp.promote_types(v.dtype, jnp.float64))
    coefs = coefs.astype(jnp.promote_types(coefs.dtype, v.dtype))
    lay = c.layout
    if prob.train_slice is None or lay is None or not lay.blocks:
        dv = v[:, c.r_a[prob.train_idx]] - v[:, c.r_b[prob.train_idx]]
        return coefs @ (0.5 * dv * dv)
    rest_dv = v[:, c.r_a[lay.rest]] - v[:, c.r_b[lay.rest]]
    parts = []
    for kind, i, n in lay.runs:
        if kind == "block":
            blk = lay.blocks[i]
            vp, vq = v[:, blk.p], v[:, blk.q]
            cross = (vp * coefs[:, None]).T @ vq
            g = 0.5 * ((coefs @ (vp * vp))[:, None] + (coefs @ (vq * vq))[None, :]) - cross
            parts.append(g.reshape(-1))
        else:
            d = rest_dv[:, i : i + n]
            parts.append(coefs @ (0.5 * d * d))
    lo, hi = prob.train_slice
    return jnp.concatenate(parts)[lo:hi]


# ----------------------------------------------------------------------------- solves


def _zeros(c: Circuit, dtype=jnp.float64):
    return jnp.zeros((c.n_u,), dtype=dtype)


def output_cost(prob: Problem, beta, y):
    """``β C(o, y)`` as what the solver adds to the energy: a :class:`Nudge` (a conductance
    β from each output to a source at its target) for ``mse``, an :class:`OutputCost`
    otherwise. ``beta`` may be complex."""
    if prob.loss == "mse":
        beta = jnp.asarray(beta)
        return Nudge(p=prob.out_p, m=prob.out_m,
                     beta=jnp.ones(prob.out_p.shape, beta.dtype) * beta, target=y), None
    return None, OutputCost(loss=prob.loss, p=prob.out_p, m=prob.out_m, beta=beta, target=y)


def solve_phase(prob: Problem, values: Values, beta, y, u0=None, warm: bool = False) -> Solution:
    """The phase minimising ``E + β C(o, y)`` from ``u0`` (``beta = 0``: the free phase).

    ``warm``: the diode junction states start at ``u0`` (a warm start stays warm); otherwise
    SPICE's junction initialisation. A complex ``beta`` solves in complex arithmetic from
    ``u0`` (warm).
    """
    c = prob.circuit
    u0 = _zeros(c, values.g.dtype) if u0 is None else u0
    if beta is None:
        return circuit_solve(prob.method, c, values, u0, prob.options, warm=warm)
    if jnp.iscomplexobj(beta):
        u0 = u0.astype(jnp.result_type(beta))
    nudge, cst = output_cost(prob, beta, y)
    # a cost nudge (cross-entropy) always keeps the start's junction states: its phase
    # starts from a neighbouring equilibrium
    return circuit_solve(prob.method, c, values, u0, prob.options, nudge, cst,
                         warm or cst is not None)


def solve_free(prob: Problem, values: Values, u0=None) -> Solution:
    """The free phase (β = 0), junctions initialised like SPICE."""
    return solve_phase(prob, values, None, None, u0)


def solve_warm(prob: Problem, values: Values, u0) -> Solution:
    """The free phase from a state ``u0`` near the solution (junctions start at ``u0``)."""
    return solve_phase(prob, values, None, None, u0, warm=True)


def solve_nudged(prob: Problem, values: Values, beta, y, u0, warm: bool = False) -> Solution:
    """The phase minimising ``E + β C(o, y)``, warm-started from ``u0``."""
    return solve_phase(prob, values, beta, y, u0, warm)


def clamped_values(prob: Problem, values: Values, target) -> Values:
    """Values of the clamped circuit: outputs held at ``target`` by the extra sources."""
    return Values(g=values.g, vsrc=jnp.concatenate([values.vsrc, target]), isrc=values.isrc)


def solve_clamped(prob: Problem, values: Values, target, u0=None) -> tuple[Solution, Values]:
    """The clamped phase: every output held at ``target`` (hard clamp by voltage sources).
    Returns the solution on the clamped circuit and its values."""
    if prob.current:
        raise ExperimentError("current outputs cannot be clamped (a readout source sets a "
                              "voltage, not a current): use rule 'ep'")
    if not prob.can_clamp:
        raise ExperimentError("the outputs cannot be clamped by voltage sources (an output is "
                              "tied to a source): use rule 'ep'")
    c = prob.clamped
    cv = clamped_values(prob, values, target)
    return circuit_solve(prob.method, c, cv, _zeros(c, cv.g.dtype) if u0 is None else u0,
                         prob.options), cv
