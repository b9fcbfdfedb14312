"""Layered deep resistive networks (DRN) as SPICE decks.

The network of Scellier's "fast DRN" (ICML 2024) and Kendall et al. (2020), written as a
plain ``.cir`` deck that ngspice and circuitprop both solve:

- **Inputs**: one grounded V source per input, or (``input_pm=True``, the default) two per
  input carrying ``+gain*x`` and ``-gain*x`` so that positive conductances can realise
  weights of both signs. Their DC values are set from the data during training; the deck
  holds ``±gain*x`` for a placeholder sample ``x ~ U(0, 1)`` drawn from the seed so that
  the deck as written has a non-trivial operating point.
- **Hidden layers**: every hidden node is joined to every node of the previous layer by a
  resistor (the weights). The nonlinearity is a Shockley diode to a shared bias source:
  ``nonlinearity="rectifier"`` (default, fast-DRN): units ``1..ceil(H/2)`` of a layer have a
  diode from ``bn`` (at ``-bias``) to the node, holding it above ``-bias - V_D``
  (≈ a ``[0, ∞)`` rectifier for ``bias = -V_D``); the other units have a diode from the node
  to ``bp`` (at ``+bias``), holding it below ``bias + V_D`` (≈ ``(-∞, 0]``).
  ``nonlinearity="clamp"`` gives every unit both diodes, a window
  ``[-bias - V_D, bias + V_D]`` (Kendall-style; use ``bias > 0``). V_D is the diode's
  forward drop, ≈ 0.6-0.7 V at mA currents with the default model.
- **Output layer** (linear): every output node is joined to every node of the last hidden
  layer. With ``differential=True`` class ``k`` has two nodes ``o{k}p`` and ``o{k}n`` and the
  prediction is ``V(o{k}p) - V(o{k}n)`` (experiment outputs ``"o{k}p-o{k}n"``); otherwise one
  node ``o{k}``. Each output node has a load resistor to ground of conductance ``load`` so its
  total conductance exceeds the nudging β of centered/negative EP even when its weights
  shrink (choose ``load > beta``).
- **Well-posedness**: every node reaches ground through the weight resistors and the input
  sources, so no leak is needed as long as conductances stay positive (train with
  ``g_min > 0``). ``leak > 0`` adds a resistor from every hidden node to ground anyway.

**Names** (lowercase, indices from 1):

| what | name | nodes |
|---|---|---|
| input source, ``input_pm=False`` | ``vin{i}`` | ``in{i} 0`` |
| inputs, ``input_pm=True`` | ``vinp{i}`` (+x), ``vinn{i}`` (-x) | ``inp{i} 0``, ``inn{i} 0`` |
| bias sources | ``vbp`` (DC ``+bias``), ``vbn`` (DC ``-bias``) | ``bp 0``, ``bn 0`` |
| hidden node ``j`` of layer ``l`` | node ``h{l}_{j}`` | |
| weight: node ``i`` of layer ``l-1`` to node ``j`` of layer ``l`` | ``r{l}_{i}_{j}`` | |
| rectifier diode | ``d{l}_{j}`` | ``bn h{l}_{j}`` or ``h{l}_{j} bp`` |
| clamp diodes | ``d{l}_{j}u`` / ``d{l}_{j}d`` | ``h{l}_{j} bp`` / ``bn h{l}_{j}`` |
| output nodes | ``o{k}`` or ``o{k}p``, ``o{k}n`` | |
| load, leak resistors | ``rload_{node}``, ``rleak_{node}`` | ``{node} 0`` |

Layer 0 is the input layer: with ``input_pm=True`` its node ``i`` is ``inp{i}`` for
``i <= n_inputs`` and ``inn{i - n_inputs}`` above. The output layer is ``l = len(hidden) + 1``;
with ``differential=True`` its node ``j = 2k - 1`` is ``o{k}p`` and ``j = 2k`` is ``o{k}n``.
The weights are exactly the resistors matching ``r[0-9]*`` (use that as the experiment's
``trainable`` pattern; ``r*`` would include the loads and leaks).

**Initial weights**: ``g = g_unit * max(w, 1e-6)`` with ``w ~ U(init_low, init_high)``,
``init_high`` defaulting to ``1/sqrt(fan_in)`` (the reference code's init, clamped ≥ 0), all
drawn from ``numpy.random.default_rng(seed)`` layer by layer, row ``i`` major. With
``g_unit = 1e-3`` S a weight of 1 is 1 kΩ, and β = 1 of the reference code is β = 1e-3 S.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .._errors import CircuitpropError

__all__ = ["drn_deck", "drn_experiment_inputs", "drn_experiment_outputs", "drn_experiment"]

_NONLINEARITIES = ("rectifier", "clamp")


def _input_nodes(n_inputs: int, input_pm: bool) -> list[str]:
    if input_pm:
        return [f"inp{i}" for i in range(1, n_inputs + 1)] + [
            f"inn{i}" for i in range(1, n_inputs + 1)
        ]
    return [f"in{i}" for i in range(1, n_inputs + 1)]


def _output_nodes(n_outputs: int, differential: bool) -> list[str]:
    if differential:
        return [f"o{k}{s}" for k in range(1, n_outputs + 1) for s in ("p", "n")]
    return [f"o{k}" for k in range(1, n_outputs + 1)]


def drn_experiment_inputs(n_inputs: int, input_pm: bool = True) -> list[str]:
    """The experiment's ``inputs`` for a DRN deck, in data column order.

    ``input_pm=True``: ``["vinp1", ..., "vinpN", "vinn1", ..., "vinnN"]`` (to be used with
    ``input_mode = "pm"``: source ``i`` gets ``+x_i``, source ``i + N`` gets ``-x_i``);
    otherwise ``["vin1", ..., "vinN"]``.

    **Arguments:**

    - ``n_inputs``: number of data features.
    - ``input_pm``: as given to :func:`drn_deck`.

    **Returns:** the source names.
    """
    return ["v" + n for n in _input_nodes(n_inputs, input_pm)]


def drn_experiment_outputs(n_outputs: int, differential: bool = True) -> list[str]:
    """The experiment's ``outputs`` for a DRN deck.

    **Arguments:**

    - ``n_outputs``: number of outputs (classes).
    - ``differential``: as given to :func:`drn_deck`.

    **Returns:** ``["o1p-o1n", ...]`` when differential, else ``["o1", ...]``.
    """
    if differential:
        return [f"o{k}p-o{k}n" for k in range(1, n_outputs + 1)]
    return [f"o{k}" for k in range(1, n_outputs + 1)]


def _check_int(name: str, v, lo: int = 1) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
        raise CircuitpropError(f"drn: {name} must be an integer >= {lo} (got {v!r})")
    return int(v)


def _num(v: float) -> str:
    return repr(float(v) + 0.0)  # + 0.0 turns -0.0 into 0.0


def diode_model_text(diode_model: str) -> str:
    """The parameters of ``.model dnl D(...)`` from ``"IS=.. N=.."`` or ``"D(IS=.. N=..)"``."""
    model = diode_model.strip()
    if model[:2].lower() == "d(" and model.endswith(")"):
        model = model[2:-1].strip()
    return model


def layer_nodes(in_nodes: list[str], hidden, out_nodes: list[str]) -> list[list[str]]:
    """The node names of each layer: the inputs, hidden layers ``h{l}_{j}``, the outputs."""
    return ([in_nodes]
            + [[f"h{layer}_{j}" for j in range(1, h + 1)] for layer, h in enumerate(hidden, 1)]
            + [out_nodes])


def rectifier_lines(layer: int, nodes: list[str]) -> list[str]:
    """One diode per unit of a hidden layer: the first half from the ``bn`` rail, the rest
    to the ``bp`` rail (``d{layer}_{j}``, model ``dnl``)."""
    half = (len(nodes) + 1) // 2
    return [f"d{layer}_{j} bn {node} dnl" if j <= half else f"d{layer}_{j} {node} bp dnl"
            for j, node in enumerate(nodes, 1)]


def load_lines(nodes: list[str], load: float) -> list[str]:
    """A load resistor ``rload_{node}`` of conductance ``load`` from each node to ground."""
    return [f"rload_{node} {node} 0 {_num(1.0 / load)}" for node in nodes]


def input_source_lines(n_inputs: int, gain: float, seed: int, input_pm: bool) -> list[str]:
    """The input sources of a layered deck, with placeholder values ``gain·x``,
    ``x ~ U(0, 1)`` (seeded): ``vinp{i}``/``vinn{i}`` pairs (``input_pm``) or ``vin{i}``."""
    x0 = np.random.default_rng([seed, 1]).uniform(0.0, 1.0, size=n_inputs)
    if not input_pm:
        return [f"vin{i} in{i} 0 DC {_num(gain * x0[i - 1])}" for i in range(1, n_inputs + 1)]
    return ([f"vinp{i} inp{i} 0 DC {_num(gain * x0[i - 1])}" for i in range(1, n_inputs + 1)]
            + [f"vinn{i} inn{i} 0 DC {_num(-gain * x0[i - 1])}"
               for i in range(1, n_inputs + 1)])


def bias_source_lines(bias: float, what: str) -> list[str]:
    """The ``vbp``/``vbn`` bias sources (``+bias``, ``−bias``) of the rectifiers."""
    return ["", f"* bias sources of the {what}", f"vbp bp 0 DC {_num(bias)}",
            f"vbn bn 0 DC {_num(-bias)}"]


def drn_deck(
    n_inputs: int,
    hidden: Sequence[int],
    n_outputs: int,
    *,
    gain: float = 100.0,
    seed: int = 0,
    diode_model: str = "IS=1e-14 N=1",
    bias: float = 0.0,
    differential: bool = True,
    input_pm: bool = True,
    nonlinearity: str = "rectifier",
    g_unit: float = 1e-3,
    init_low: float = 0.0,
    init_high: float | None = None,
    load: float = 1e-3,
    leak: float = 0.0,
    title: str | None = None,
) -> str:
    """Write a layered deep resistive network as a SPICE deck (naming in the module docstring).

    **Arguments:**

    - ``n_inputs``: number of data features.
    - ``hidden``: hidden layer widths (may be empty: a single linear layer).
    - ``n_outputs``: number of outputs (classes).
    - ``gain``: input gain (V per feature unit) used for the placeholder input values; give
      the experiment ``input_gain`` the same value.
    - ``seed``: seed of the initial weights and placeholder inputs.
    - ``diode_model``: parameters of the diode model ``.model dnl D(...)``.
    - ``bias``: magnitude of the bias sources, volts (``vbp`` = +bias, ``vbn`` = -bias).
    - ``differential``: two nodes per output (``o{k}p``, ``o{k}n``) instead of one.
    - ``input_pm``: two input sources per feature (+x and -x) instead of one.
    - ``nonlinearity``: ``"rectifier"`` (one diode per unit, half each way) or ``"clamp"``
      (two diodes per unit).
    - ``g_unit``: siemens per unit weight.
    - ``init_low``, ``init_high``: initial weights ~ U(init_low, init_high) (unit weights;
      ``init_high`` defaults to 1/sqrt(fan_in)).
    - ``load``: conductance (S) from each output node to ground; 0 for none.
    - ``leak``: conductance (S) from each hidden node to ground; 0 (default) for none.
    - ``title``: the deck's title line.

    **Returns:** the deck text (ending with ``.op`` and ``.end``).

    **Raises:** :class:`~circuitprop._errors.CircuitpropError` for bad arguments.
    """
    n_inputs = _check_int("n_inputs", n_inputs)
    n_outputs = _check_int("n_outputs", n_outputs)
    hidden = [_check_int("hidden layer width", h) for h in hidden]
    if nonlinearity not in _NONLINEARITIES:
        raise CircuitpropError(
            f"drn: nonlinearity must be one of {', '.join(_NONLINEARITIES)} (got {nonlinearity!r})"
        )
    for name, v, positive in (
        ("gain", gain, False),
        ("g_unit", g_unit, True),
        ("load", load, False),
        ("leak", leak, False),
        ("init_low", init_low, False),
        ("bias", bias, None),
    ):
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
            raise CircuitpropError(f"drn: {name} must be a finite number (got {v!r})")
        if positive is True and v <= 0 or positive is False and v < 0:
            raise CircuitpropError(
                f"drn: {name} must be {'> 0' if positive else '>= 0'} (got {v!r})"
            )
    if init_high is not None and not (init_high > init_low):
        raise CircuitpropError(f"drn: init_high must exceed init_low (got {init_high!r})")
    model = diode_model_text(diode_model)
    rng = np.random.default_rng(seed)
    in_nodes = _input_nodes(n_inputs, input_pm)
    out_nodes = _output_nodes(n_outputs, differential)
    layers = layer_nodes(in_nodes, hidden, out_nodes)

    arch = "-".join(str(n) for n in [len(in_nodes), *hidden, len(out_nodes)])
    lines = [
        title or f"DRN {arch} (circuitprop build drn, seed {seed})",
        "* Layered deep resistive network written by circuitprop.builders.drn_deck.",
        f"* inputs {n_inputs} ({'+x/-x pairs vinp*/vinn*' if input_pm else 'vin*'}), "
        f"hidden {hidden or 'none'} ({nonlinearity}), outputs {n_outputs} "
        f"({'differential o*p-o*n' if differential else 'o*'})",
        "* weights: r{layer}_{i}_{j} (trainable pattern r[0-9]*); "
        f"g_unit {g_unit!r} S; input gain {gain!r}",
        "* input DC values are placeholders (gain*x for x ~ U(0,1)); training sets them from data",
        f".model dnl D({model})",
        "",
        "* input sources",
    ]
    lines += input_source_lines(n_inputs, gain, seed, input_pm)
    if hidden:
        lines += bias_source_lines(bias, "diode nonlinearities")

    for layer in range(1, len(layers)):
        prev, cur = layers[layer - 1], layers[layer]
        fan_in = len(prev)
        high = init_high if init_high is not None else 1.0 / math.sqrt(fan_in)
        w = rng.uniform(init_low, high, size=(fan_in, len(cur)))
        g = g_unit * np.maximum(w, 1e-6)
        is_out = layer == len(layers) - 1
        lines += ["", f"* layer {layer} ({'output' if is_out else 'hidden'}): weights"]
        for i, a in enumerate(prev, 1):
            for j, b in enumerate(cur, 1):
                lines.append(f"r{layer}_{i}_{j} {a} {b} {_num(1.0 / g[i - 1, j - 1])}")
        if not is_out:
            lines.append(f"* layer {layer}: diodes")
            if nonlinearity == "rectifier":
                lines += rectifier_lines(layer, cur)
            else:  # clamp: two diodes per unit
                for j, node in enumerate(cur, 1):
                    lines.append(f"d{layer}_{j}u {node} bp dnl")
                    lines.append(f"d{layer}_{j}d bn {node} dnl")
            if leak > 0:
                lines.append(f"* layer {layer}: leaks")
                for node in cur:
                    lines.append(f"rleak_{node} {node} 0 {_num(1.0 / leak)}")
    if load > 0:
        lines += ["", "* output loads"] + load_lines(out_nodes, load)
    lines += ["", ".op", ".end", ""]
    return "\n".join(lines)


def drn_experiment(
    netlist: str,
    n_inputs: int,
    n_outputs: int,
    *,
    source: str = "digits",
    input_pm: bool = True,
    differential: bool = True,
    gain: float = 100.0,
    beta: float = 1e-3,
    g_unit: float = 1e-3,
) -> str:
    """An experiment file (TOML text) matching a :func:`drn_deck`.

    **Arguments:**

    - ``netlist``: the deck's path as the experiment should refer to it.
    - ``n_inputs``, ``n_outputs``, ``input_pm``, ``differential``, ``gain``, ``g_unit``: as
      given to :func:`drn_deck`.
    - ``source``: the ``[data] source``.
    - ``beta``: nudging strength, siemens (keep it below the deck's ``load``).

    **Returns:** TOML text (see ``docs/experiments.md``).
    """

    return layered_experiment(
        netlist, drn_experiment_inputs(n_inputs, input_pm),
        drn_experiment_outputs(n_outputs, differential), "r[0-9]*", source=source,
        beta=float(beta), input_pm=input_pm, gain=float(gain), g_unit=float(g_unit))


def layered_experiment(netlist: str, inputs: list[str], outputs: list[str], trainable: str, *,
                       source: str, beta: float, input_pm: bool, gain: float, g_unit: float,
                       train_extra: list[str] = ()) -> str:
    """The experiment file (TOML text) of a built deck: centered EP at ``beta``, the inputs
    encoded with ``gain`` (``input_mode = "pm"`` or ``"direct"``), conductances in units of
    ``g_unit`` bounded below by ``1e-6·g_unit``; ``train_extra``: more ``[train]`` lines."""

    def lst(names) -> str:
        return "[" + ", ".join(f'"{n}"' for n in names) + "]"

    return "\n".join([
        f"netlist = {_toml_str(netlist)}",
        f"inputs = {lst(inputs)}",
        f"outputs = {lst(outputs)}",
        f"trainable = {lst([trainable])}",
        "",
        "[data]",
        f"source = {_toml_str(source)}",
        "",
        "[learning]",
        'rule = "ep"',
        'estimator = "centered"',
        f"beta = {beta!r}",
        "",
        "[train]",
        f'input_mode = "{"pm" if input_pm else "direct"}"',
        f"input_gain = {gain!r}",
        f"g_unit = {g_unit!r}",
        f"g_min = {g_unit * 1e-6!r}",
        *train_extra,
        "",
    ])


def _toml_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'
