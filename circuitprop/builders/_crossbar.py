"""Memristor crossbar arrays (one or a layered stack) as SPICE decks.

A crossbar has row lines (inputs) and column lines (outputs) with a trainable conductance
(a resistor, the "device") at every cross point, from the row line to the column line. The
lines themselves are wires of resistance ``wire_r`` per segment, so that a device far from
its row driver or from its column readout sees a smaller voltage (IR drop). The deck is a
plain ``.cir`` that ngspice and circuitprop both solve:

- **Inputs** (the rows of the first crossbar): as in :func:`~circuitprop.builders.drn_deck`,
  one grounded V source per data feature, or (``input_pm=True``, the default) two, carrying
  ``+gain*x`` and ``-gain*x``, so that positive conductances realise weights of both signs.
  Their DC values are placeholders ``±gain*x`` for ``x ~ U(0, 1)`` drawn from the seed (the
  deck as written has a non-trivial operating point); training sets them from the data.
- **Layers**: with ``hidden = [H1, H2, ...]`` crossbar ``l`` maps the row lines of layer
  ``l`` onto its column lines. Column line ``j`` of a hidden crossbar ends at the junction
  node ``h{l}_{j}``, which is also the start of row line ``j`` of crossbar ``l + 1`` (one
  electrical net). The junction carries the fast-DRN rectifier of ``drn_deck``: units
  ``1..ceil(H/2)`` a diode from ``bn`` (at ``-bias``) to the node, the others a diode from
  the node to ``bp`` (at ``+bias``); model ``.model dnl D(IS=1e-14 N=1)``.
- **Wires**: along every line, one segment of ``wire_r`` ohms between neighbouring cross
  points, one from the row's start node (driver or junction) to its first cross point, and
  one from the column's last cross point to its end node. With ``wire_r = 0`` there are no
  wire resistors at all: every cross point of a line is the line's start (row) or end
  (column) node, and crossbar ``l`` is an ordinary dense layer, the same topology (and, for
  the same seed, the same conductances) as layer ``l`` of ``drn_deck``.
- **Readout** of the last crossbar's column end nodes: ``readout="tia"`` (transimpedance
  amplifier, default) holds each one at virtual ground with a 0 V source; the outputs are
  the currents through these sources (ngspice's sign: positive when the column delivers
  current into the node, ``i = sum_i g_i v_i`` without wire resistance).
  ``readout="load"`` puts a load resistor of conductance ``load`` from each end node to
  ground; the outputs are the node voltages. ``differential=True`` gives two columns per
  output (``p`` and ``n``), the output being their difference.
- **Well-posedness**: every node reaches ground through the devices, the wires, the input
  sources and the readout; train with ``g_min > 0``.

**Names** (lowercase, indices from 1; layer ``l``, row ``i``, column ``j``):

| what | name | nodes |
|---|---|---|
| input source, ``input_pm=False`` | ``vin{i}`` | ``in{i} 0`` |
| inputs, ``input_pm=True`` | ``vinp{i}`` (+x), ``vinn{i}`` (-x) | ``inp{i} 0``, ``inn{i} 0`` |
| bias sources (with hidden layers) | ``vbp`` (DC ``+bias``), ``vbn`` (DC ``-bias``) | ``bp 0``, ``bn 0`` |
| junction of hidden column ``j`` | node ``h{l}_{j}`` | |
| rectifier diode | ``d{l}_{j}`` | ``bn h{l}_{j}`` or ``h{l}_{j} bp`` |
| row-line node at cross point ``(i, j)`` | node ``xr{l}_{i}_{j}`` | |
| column-line node at cross point ``(i, j)`` | node ``xc{l}_{i}_{j}`` | |
| device at cross point ``(i, j)`` | ``rd{l}_{i}_{j}`` | ``xr{l}_{i}_{j} xc{l}_{i}_{j}`` |
| row wire into cross point ``(i, j)`` | ``rwr{l}_{i}_{j}`` | ``xr{l}_{i}_{j-1} xr{l}_{i}_{j}`` |
| column wire out of cross point ``(i, j)`` | ``rwc{l}_{i}_{j}`` | ``xc{l}_{i}_{j} xc{l}_{i+1}_{j}`` |
| output column end nodes | ``out{j}``, or ``outp{k}``, ``outn{k}`` | |
| ``tia`` readout sources | ``vout{j}``, or ``voutp{k}``, ``voutn{k}`` | ``out{j} 0`` (DC 0) |
| ``load`` readout resistors | ``rload_{node}`` | ``{node} 0`` |

Row ``i`` of crossbar 1 starts at input node ``i``: with ``input_pm=True`` that is
``inp{i}`` for ``i <= rows`` and ``inn{i - rows}`` above, otherwise ``in{i}``. Row ``i`` of
crossbar ``l > 1`` starts at ``h{l-1}_{i}``. The row wire into cross point ``(i, 1)`` comes
from the row's start node (``xr{l}_{i}_{0}`` in the table stands for it); the column wire
out of the last cross point ``(M, j)`` goes to the column's end node (``h{l}_{j}`` or the
output node). Each crossbar with ``M`` rows and ``N`` columns thus has ``M*N`` devices and,
when ``wire_r > 0``, ``M*N`` row wires and ``M*N`` column wires. With
``differential=True`` output column ``j = 2k - 1`` is ``outp{k}`` and ``j = 2k`` is
``outn{k}``. The devices are exactly the resistors matching ``rd*`` (the experiment's
``trainable`` pattern): wires are ``rw*``, loads ``rload_*``. With ``wire_r = 0`` no
``xr*``/``xc*`` node exists: devices connect the row start node to the column end node.

**Initial conductances**: ``g = g_unit * max(w, 1e-6)`` with ``w ~ U(0, 1/sqrt(fan_in))``,
``fan_in`` the crossbar's number of rows, drawn from ``numpy.random.default_rng(seed)``
crossbar by crossbar, row ``i`` major (as ``drn_deck``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .._errors import CircuitpropError
from ._drn import (
    _num,
    bias_source_lines,
    diode_model_text,
    drn_experiment_inputs,
    input_source_lines,
    layer_nodes,
    layered_experiment,
    load_lines,
    rectifier_lines,
)

__all__ = ["crossbar_deck", "crossbar_experiment", "crossbar_experiment_outputs", "tia_target"]

READOUTS = ("tia", "load")

#: targets of a ``tia`` experiment: ``±TIA_TARGET_FRACTION`` of the typical column current
TIA_TARGET_FRACTION = 0.1


def _check_int(name: str, v, lo: int = 1) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
        raise CircuitpropError(f"crossbar: {name} must be an integer >= {lo} (got {v!r})")
    return int(v)


def _check_number(name: str, v, positive: bool | None) -> float:
    """A finite number; ``positive``: True for > 0, False for >= 0, None for any sign."""
    if not isinstance(v, (int, float, np.floating, np.integer)) or isinstance(v, bool) or not (
        math.isfinite(v)
    ):
        raise CircuitpropError(f"crossbar: {name} must be a finite number (got {v!r})")
    if positive is True and v <= 0 or positive is False and v < 0:
        raise CircuitpropError(f"crossbar: {name} must be {'> 0' if positive else '>= 0'} (got {v!r})")
    return float(v)


def _check_readout(readout) -> str:
    if readout not in READOUTS:
        raise CircuitpropError(
            f"crossbar: readout must be one of {', '.join(READOUTS)} (got {readout!r})"
        )
    return readout


def _input_nodes(rows: int, input_pm: bool) -> list[str]:
    return [s[1:] for s in drn_experiment_inputs(rows, input_pm)]


def _output_nodes(cols: int, differential: bool) -> list[str]:
    if differential:
        return [f"out{s}{k}" for k in range(1, cols + 1) for s in ("p", "n")]
    return [f"out{k}" for k in range(1, cols + 1)]


def crossbar_experiment_outputs(
    cols: int, differential: bool = False, readout: str = "tia"
) -> list[str]:
    """The experiment's ``outputs`` for a crossbar deck.

    **Arguments:**

    - ``cols``: number of outputs.
    - ``differential``, ``readout``: as given to :func:`crossbar_deck`.

    **Returns:** ``tia``: ``["i(vout1)", ...]`` or, differential, ``["i(voutp1)-i(voutn1)",
    ...]`` (currents through the readout sources, amperes); ``load``: ``["out1", ...]`` or
    ``["outp1-outn1", ...]`` (node voltages).

    **Raises:** :class:`~circuitprop._errors.CircuitpropError` for bad arguments.
    """
    cols = _check_int("cols", cols)
    readout = _check_readout(readout)
    ks = range(1, cols + 1)
    if readout == "tia":
        if differential:
            return [f"i(voutp{k})-i(voutn{k})" for k in ks]
        return [f"i(vout{k})" for k in ks]
    if differential:
        return [f"outp{k}-outn{k}" for k in ks]
    return [f"out{k}" for k in ks]


def crossbar_deck(
    rows: int,
    cols: int,
    wire_r: float,
    *,
    hidden: Sequence[int] = (),
    differential: bool = False,
    readout: str = "tia",
    input_pm: bool = True,
    gain: float = 100.0,
    g_unit: float = 1e-3,
    load: float = 1e-3,
    bias: float = 0.0,
    seed: int = 0,
    diode_model: str = "IS=1e-14 N=1",
    title: str | None = None,
) -> str:
    """Write a crossbar array (or a layered stack of them) as a SPICE deck (naming in the
    module docstring).

    **Arguments:**

    - ``rows``: number of data features (the first crossbar has ``2*rows`` row lines with
      ``input_pm``, else ``rows``).
    - ``cols``: number of outputs (``2*cols`` output columns when ``differential``).
    - ``wire_r``: resistance (ohms) of each wire segment of the row and column lines;
      0 for ideal lines (no wire resistors).
    - ``hidden``: widths of the hidden layers (column counts of the inner crossbars); empty
      for a single crossbar.
    - ``differential``: two output columns per output (``outp{k}``, ``outn{k}``).
    - ``readout``: ``"tia"`` (0 V sources, outputs are currents) or ``"load"`` (load
      resistors, outputs are voltages).
    - ``input_pm``: two input sources per feature (+x and -x) instead of one.
    - ``gain``: input gain (V per feature unit) used for the placeholder input values; give
      the experiment ``input_gain`` the same value.
    - ``g_unit``: siemens per unit weight.
    - ``load``: conductance (S) of the load resistors (``readout="load"`` only, must be > 0
      there; ignored by ``tia``).
    - ``bias``: magnitude of the rectifiers' bias sources, volts (with hidden layers).
    - ``seed``: seed of the initial conductances and placeholder inputs.
    - ``diode_model``: parameters of the diode model ``.model dnl D(...)``.
    - ``title``: the deck's title line.

    **Returns:** the deck text (ending with ``.op`` and ``.end``).

    **Raises:** :class:`~circuitprop._errors.CircuitpropError` for bad arguments; the message
    names the argument.
    """
    rows = _check_int("rows", rows)
    cols = _check_int("cols", cols)
    if isinstance(hidden, (str, bytes)) or not isinstance(hidden, Sequence):
        raise CircuitpropError(f"crossbar: hidden must be a list of layer widths (got {hidden!r})")
    hidden = [_check_int("hidden", h) for h in hidden]
    wire_r = _check_number("wire_r", wire_r, False)
    readout = _check_readout(readout)
    gain = _check_number("gain", gain, True)
    g_unit = _check_number("g_unit", g_unit, True)
    load = _check_number("load", load, True if readout == "load" else False)
    bias = _check_number("bias", bias, None)
    seed = _check_int("seed", seed, 0)
    model = diode_model_text(diode_model)
    rng = np.random.default_rng(seed)
    # the start nodes of each crossbar's row lines and the end nodes of its column lines
    out_nodes = _output_nodes(cols, differential)
    lines_at = layer_nodes(_input_nodes(rows, input_pm), hidden, out_nodes)

    arch = "-".join(str(len(n)) for n in lines_at)
    wires = f"wire_r {wire_r!r} ohm" if wire_r > 0 else "ideal lines (wire_r 0)"
    lines = [
        title or f"Crossbar {arch} (circuitprop build crossbar, seed {seed})",
        "* Memristor crossbar array written by circuitprop.builders.crossbar_deck.",
        f"* inputs {rows} ({'+x/-x pairs vinp*/vinn*' if input_pm else 'vin*'}), "
        f"hidden {f'{hidden} (rectifier)' if hidden else 'none'}, outputs {cols} "
        f"({'differential ' if differential else ''}{readout} readout); {wires}",
        "* devices: rd{layer}_{row}_{col} (trainable pattern rd*); wires rwr*/rwc*; "
        f"g_unit {g_unit!r} S; input gain {gain!r}",
        "* input DC values are placeholders (gain*x for x ~ U(0,1)); training sets them from data",
    ]
    if hidden:
        lines.append(f".model dnl D({model})")
    lines += ["", "* input sources"]
    lines += input_source_lines(rows, gain, seed, input_pm)
    if hidden:
        lines += bias_source_lines(bias, "rectifiers")

    wired = wire_r > 0
    rw = _num(wire_r)
    for layer in range(1, len(lines_at)):
        starts, ends = lines_at[layer - 1], lines_at[layer]
        m, n = len(starts), len(ends)
        high = 1.0 / math.sqrt(m)
        w = rng.uniform(0.0, high, size=(m, n))
        g = g_unit * np.maximum(w, 1e-6)
        is_out = layer == len(lines_at) - 1
        lines += ["", f"* crossbar {layer} ({'output' if is_out else 'hidden'}, {m}x{n}): devices"]

        def xr(i: int, j: int) -> str:
            return f"xr{layer}_{i}_{j}" if wired else starts[i - 1]

        def xc(i: int, j: int) -> str:
            return f"xc{layer}_{i}_{j}" if wired else ends[j - 1]

        for i in range(1, m + 1):
            for j in range(1, n + 1):
                lines.append(
                    f"rd{layer}_{i}_{j} {xr(i, j)} {xc(i, j)} {_num(1.0 / g[i - 1, j - 1])}"
                )
        if wired:
            lines.append(f"* crossbar {layer}: row wires")
            for i in range(1, m + 1):
                for j in range(1, n + 1):
                    a = starts[i - 1] if j == 1 else xr(i, j - 1)
                    lines.append(f"rwr{layer}_{i}_{j} {a} {xr(i, j)} {rw}")
            lines.append(f"* crossbar {layer}: column wires")
            for j in range(1, n + 1):
                for i in range(1, m + 1):
                    b = ends[j - 1] if i == m else xc(i + 1, j)
                    lines.append(f"rwc{layer}_{i}_{j} {xc(i, j)} {b} {rw}")
        if not is_out:
            lines.append(f"* crossbar {layer}: rectifiers at the junctions")
            lines += rectifier_lines(layer, ends)

    if readout == "tia":
        lines += ["", "* readout: virtual ground (transimpedance amplifier inputs)"]
        for node in out_nodes:
            lines.append(f"v{node} {node} 0 DC 0")
    else:
        lines += ["", "* readout: load resistors"] + load_lines(out_nodes, load)
    lines += ["", ".op", ".end", ""]
    return "\n".join(lines)


def tia_target(
    rows: int, *, hidden: Sequence[int] = (), input_pm: bool = True, gain: float = 100.0,
    g_unit: float = 1e-3,
) -> float:
    """The magnitude of the ``tia`` experiment's targets, amperes.

    A column of the last crossbar with ``fan_in`` rows and conductances ``g_unit *
    U(0, 1/sqrt(fan_in))`` (mean ``g_unit / (2 sqrt(fan_in))``) driven by inputs of order
    ``gain`` carries about ``gain * g_unit * sqrt(fan_in) / 2``; the targets are
    ``±TIA_TARGET_FRACTION`` (0.1) of that, a current the trained crossbar reaches without
    saturating its conductances.

    **Arguments:** as given to :func:`crossbar_deck`.

    **Returns:** ``0.1 * gain * g_unit * sqrt(fan_in) / 2``.
    """
    rows = _check_int("rows", rows)
    hidden = [_check_int("hidden", h) for h in hidden]
    fan_in = hidden[-1] if hidden else (2 * rows if input_pm else rows)
    return TIA_TARGET_FRACTION * float(gain) * float(g_unit) * math.sqrt(fan_in) / 2.0


def crossbar_experiment(
    netlist: str,
    rows: int,
    cols: int,
    *,
    hidden: Sequence[int] = (),
    differential: bool = False,
    readout: str = "tia",
    input_pm: bool = True,
    source: str = "digits",
    gain: float = 100.0,
    beta: float = 1e-3,
    g_unit: float = 1e-3,
) -> str:
    """An experiment file (TOML text) matching a :func:`crossbar_deck`.

    **Arguments:**

    - ``netlist``: the deck's path as the experiment should refer to it.
    - ``rows``, ``cols``, ``hidden``, ``differential``, ``readout``, ``input_pm``, ``gain``,
      ``g_unit``: as given to :func:`crossbar_deck`.
    - ``source``: the ``[data] source``.
    - ``beta``: nudging strength (``[learning] beta``).

    **Returns:** TOML text (see ``docs/experiments.md``): ``trainable = ["rd*"]``, outputs
    from :func:`crossbar_experiment_outputs`; with ``readout="tia"`` also ``[train]
    target_high`` / ``target_low`` = ``±tia_target(...)`` amperes.

    **Raises:** :class:`~circuitprop._errors.CircuitpropError` for bad arguments.
    """
    rows = _check_int("rows", rows)
    gain = _check_number("gain", gain, True)
    g_unit = _check_number("g_unit", g_unit, True)
    beta = _check_number("beta", beta, True)
    outputs = crossbar_experiment_outputs(cols, differential, readout)

    extra = []
    if readout == "tia":
        t = tia_target(rows, hidden=hidden, input_pm=input_pm, gain=gain, g_unit=g_unit)
        extra = [f"target_high = {t!r}", f"target_low = {-t!r}"]
    return layered_experiment(netlist, drn_experiment_inputs(rows, input_pm), outputs, "rd*",
                              source=source, beta=beta, input_pm=input_pm, gain=gain,
                              g_unit=g_unit, train_extra=extra)
