"""Experiment files: what to train, on which data, with which rule.

An experiment is a TOML file (full reference with every key, its meaning, default and units:
``docs/experiments.md``)::

    netlist = "net.cir"          # relative to the experiment file
    inputs = ["vx1", "vx2"]      # V/I sources set from the data features, in column order
    outputs = ["out"]            # output nodes; "a-b" for a differential pair
    trainable = ["r*"]           # case-insensitive globs over resistor names

    [data]
    source = "xor"               # xor | iris | digits | csv:PATH | mnist:DIR

    [learning]
    rule = "ep"

    [train]
    epochs = 100

Required: ``netlist``, ``inputs``, ``outputs``, ``trainable`` and ``[data] source``.
Optional top-level key: ``description`` (free text). Defaults of the tables:

- ``[data]``: ``task = "auto"`` (classification for iris/digits/mnist, regression for xor and
  csv unless the columns or ``loss = "cross-entropy"`` say otherwise), ``test_fraction = 0.2``,
  ``seed = 0`` (split seed), ``limit_train`` / ``limit_test`` absent (all rows).
- ``[learning]``: ``rule = "ep"``, ``estimator = "centered"``, ``beta = 1e-6`` (siemens),
  ``loss = "mse"``, ``eta = 0.1`` (coupled learning's clamp fraction),
  ``agnostic_eta`` (agnostic EP's spring compliance, S/V²; automatic when absent).
- ``[train]``: ``optimizer = "sgd"``, ``learning_rate = 0.01``, ``lr_decay = 1.0`` (per epoch),
  ``momentum = 0.9``, ``epochs = 10``, ``batch_size = 1``, ``seed = 0``, ``shuffle = true``,
  ``g_min = 1e-9`` S, ``g_max = inf`` S, ``g_unit = 1.0`` S, ``init = "netlist"``,
  ``init_low = 0.0`` S, ``init_high = 1e-3`` S, ``input_gain = 1.0``, ``input_offset = 0.0`` V,
  ``input_mode = "direct"``, ``target_high = 1.0`` V, ``target_low = 0.0`` V,
  ``v_min = -inf`` V, ``v_max = inf`` V (bounds of trainable V sources),
  ``checkpoint_every = 0`` (epochs; 0 = none), ``solver = "auto"`` (``newton``, ``dense``,
  ``coordinate``; ``auto`` picks by structure, see ``docs/solvers.md``), ``dtype =
  "float64"`` (or ``"float32"``), ``devices = 1`` (a count of local devices, or ``"all"``).
- ``[measurement]``: ``adc_bits`` absent (ideal), ``adc_range = 1.0`` V, ``noise_std = 0.0`` V,
  ``seed = 0``.

Every problem (unknown key or table, wrong type, value out of range, missing file) raises
:class:`~circuitprop._errors.ExperimentError` whose message starts with the experiment file's
path and, for an unknown key, suggests the nearest valid one.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import math
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from ._errors import ExperimentError

# the names of rules, estimators and losses live in the learning engine's one table
from ._estimators import AGNOSTIC_VARIANTS, LOSSES, RULES, estimator_names, is_estimator
from ._estimators import ESTIMATORS as _ESTIMATOR_TABLE

__all__ = [
    "Experiment",
    "DataSettings",
    "LearningSettings",
    "TrainSettings",
    "MeasurementSettings",
    "load_experiment",
    "parse_experiment",
    "parse_output",
    "match_trainable",
    "check_names",
    "RULES",
    "ESTIMATORS",
    "LOSSES",
    "OPTIMIZERS",
]

#: the fixed estimator names (``holomorphic-N`` is accepted as well)
ESTIMATORS = tuple(_ESTIMATOR_TABLE)
OPTIMIZERS = ("sgd", "momentum", "adam")
TASKS = ("auto", "classification", "regression")
INITS = ("netlist", "uniform")
INPUT_MODES = ("direct", "pm")
#: ``[train] solver`` choices: the learning phases' solvers of ``circuitprop._solve``
#: (``SOLVERS`` there) and ``auto``
TRAIN_SOLVERS = ("auto", "newton", "dense", "coordinate")
#: ``[train] dtype`` choices
DTYPES = ("float64", "float32")
_GROUND = ("0", "gnd")


# ----------------------------------------------------------------------------- settings


@dataclasses.dataclass(frozen=True)
class DataSettings:
    """The ``[data]`` table.

    ``path`` is the resolved file (csv) or folder (mnist), ``None`` for built-in sources.
    """

    source: str
    task: str = "auto"
    test_fraction: float = 0.2
    seed: int = 0
    limit_train: int | None = None
    limit_test: int | None = None
    path: Path | None = None

    @property
    def kind(self) -> str:
        """``xor``, ``iris``, ``digits``, ``csv`` or ``mnist``."""
        return self.source.partition(":")[0].strip().lower()


@dataclasses.dataclass(frozen=True)
class LearningSettings:
    """The ``[learning]`` table (``beta`` in siemens for mse on voltages)."""

    rule: str = "ep"
    estimator: str = "centered"
    beta: float = 1e-6
    loss: str = "mse"
    eta: float | None = None
    agnostic_eta: float | None = None
    power_penalty: float = 0.0

    def eta_for(self, rule: str) -> float | None:
        """The η the rule uses: ``agnostic_eta`` (S/V²) for agnostic EP, ``eta`` (a
        fraction) for coupled learning; ``None`` means the rule's default."""
        return self.agnostic_eta if rule == "agnostic" else self.eta

    @property
    def forward_points(self) -> int | None:
        """``p`` of a ``forward-p`` estimator, else ``None``."""
        if self.estimator.startswith("forward-"):
            return int(self.estimator.split("-")[1])
        return None


@dataclasses.dataclass(frozen=True)
class TrainSettings:
    """The ``[train]`` table (conductances in siemens, voltages in volts)."""

    optimizer: str = "sgd"
    learning_rate: float = 0.01
    lr_decay: float = 1.0
    momentum: float = 0.9
    epochs: int = 10
    batch_size: int = 1
    seed: int = 0
    shuffle: bool = True
    g_min: float = 1e-9
    g_max: float = math.inf
    g_unit: float = 1.0
    init: str = "netlist"
    init_low: float = 0.0
    init_high: float = 1e-3
    input_gain: float = 1.0
    input_offset: float = 0.0
    input_mode: str = "direct"
    target_high: float = 1.0
    target_low: float = 0.0
    checkpoint_every: int = 0
    solver: str = "auto"
    dtype: str = "float64"
    devices: int | str = 1
    physical_timing: bool = False
    v_min: float = -math.inf
    v_max: float = math.inf


@dataclasses.dataclass(frozen=True)
class MeasurementSettings:
    """The ``[measurement]`` table: how ΔV measurements are degraded (ideal by default)."""

    adc_bits: int | None = None
    adc_range: float = 1.0
    noise_std: float = 0.0
    seed: int = 0


@dataclasses.dataclass(frozen=True)
class DeviceSettings:
    """The ``[device]`` table: what a trainable element can be programmed to
    (``docs/devices.md``). Conductance bounds are ``[train] g_min`` / ``g_max``.

    - ``levels``: programmable values, evenly spaced (``spacing = "linear"``) or
      geometrically (``"log"``) over ``[g_min, g_max]``; ``None``: continuous.
    - ``write_noise``: relative cycle-to-cycle noise σ of each write.
    - ``variation``: device-to-device spread, a log-normal factor ``exp(σ ξ)`` per device.
    - ``update``: ``"ideal"`` (the optimizer's value is written) or ``"pulse"`` (whole
      programming pulses, steps ``pulse_up`` / ``pulse_down`` of the range at the bottom /
      top of it, shrinking towards the far bound with exponent ``nonlinearity``).
    - ``drift_nu``, ``drift_t``: ``g(t) = g·(t / 1 s)^(−ν)`` at evaluation time ``t`` s.
    - ``stuck_off``, ``stuck_on``: fractions of devices stuck at ``g_min`` / ``g_max``.
    - ``seed``: the device draws (default: ``[train] seed``).
    """

    levels: int | None = None
    spacing: str = "linear"
    write_noise: float = 0.0
    variation: float = 0.0
    update: str = "ideal"
    pulse_up: float = 0.01
    pulse_down: float = 0.01
    nonlinearity: float = 1.0
    drift_nu: float = 0.0
    drift_t: float = 1.0
    stuck_off: float = 0.0
    stuck_on: float = 0.0
    seed: int | None = None

    @property
    def ideal(self) -> bool:
        return self == DeviceSettings()


@dataclasses.dataclass(frozen=True)
class Experiment:
    """A validated experiment file.

    **Fields:**

    - ``path``: the experiment file.
    - ``netlist``: the deck, resolved relative to the experiment file's folder.
    - ``inputs``: lowercase source names, in data column order.
    - ``outputs``: ``(plus, minus)`` node pairs; a plain node ``out`` is ``("out", "0")``.
    - ``output_specs``: the outputs as written (lowercased), e.g. ``"o1p-o1n"``.
    - ``trainable``: the glob patterns over resistor names (lowercased).
    - ``data``, ``learning``, ``train``, ``measurement``: the tables.
    - ``description``: free text.
    """

    path: Path
    netlist: Path
    inputs: tuple[str, ...]
    outputs: tuple[tuple[str, str], ...]
    output_specs: tuple[str, ...]
    trainable: tuple[str, ...]
    data: DataSettings
    learning: LearningSettings = LearningSettings()
    train: TrainSettings = TrainSettings()
    measurement: MeasurementSettings = MeasurementSettings()
    device: DeviceSettings = DeviceSettings()
    description: str = ""

    @property
    def n_inputs(self) -> int:
        """Number of input sources."""
        return len(self.inputs)

    @property
    def n_features(self) -> int:
        """Number of data features: the inputs, halved for ``input_mode = "pm"``."""
        n = len(self.inputs)
        return n // 2 if self.train.input_mode == "pm" else n

    @property
    def n_outputs(self) -> int:
        """Number of outputs."""
        return len(self.outputs)

    @property
    def task(self) -> str | None:
        """``"classification"``, ``"regression"``, or ``None`` (csv: decided by its columns)."""
        return _resolve_task(self.data, self.learning.loss)

    def load_data(self):
        """Load the data set with this experiment's settings.

        **Returns:** a :class:`circuitprop.data.Dataset`, checked with :meth:`check_data`.

        **Raises:** :class:`~circuitprop._errors.ExperimentError`.
        """
        from .data import load_dataset

        try:
            ds = load_dataset(
                self.data.source,
                base_dir=self.path.parent,
                seed=self.data.seed,
                test_fraction=self.data.test_fraction,
                n_inputs=self.n_features if self.data.kind == "csv" else None,
                n_outputs=self.n_outputs,
                task=self.task,
                limit_train=self.data.limit_train,
                limit_test=self.data.limit_test,
            )
        except ExperimentError as e:
            raise ExperimentError(f"{self.path}: [data] {e}") from None
        self.check_data(ds)
        return ds

    def check_data(self, dataset) -> None:
        """Check that a data set fits the inputs, outputs and loss.

        **Raises:** :class:`~circuitprop._errors.ExperimentError` when the feature count
        differs from the inputs (halved for ``pm``), the targets from the outputs, or
        cross-entropy is asked of regression data.
        """
        if dataset.n_features != self.n_features:
            mode = ' (input_mode = "pm": two sources per feature)' * (self.train.input_mode == "pm")
            raise ExperimentError(
                f"{self.path}: data {dataset.name!r} has {dataset.n_features} features but the "
                f"experiment has {self.n_inputs} inputs{mode}"
            )
        if dataset.n_classes is None:
            if self.learning.loss == "cross-entropy":
                raise ExperimentError(
                    f"{self.path}: loss 'cross-entropy' needs classification data, "
                    f"{dataset.name!r} is regression"
                )
            nt = dataset.y_train.shape[1] if dataset.y_train.ndim == 2 else 1
            if nt != self.n_outputs:
                raise ExperimentError(
                    f"{self.path}: data {dataset.name!r} has {nt} targets per sample for "
                    f"{self.n_outputs} outputs"
                )
        else:
            k = dataset.n_classes
            ok = self.n_outputs == k or (
                self.n_outputs == 1 and k == 2 and self.learning.loss == "mse"
            )
            if not ok:
                raise ExperimentError(
                    f"{self.path}: data {dataset.name!r} has {k} classes but the experiment has "
                    f"{self.n_outputs} outputs (one output per class is needed"
                    + (", or a single output with loss 'mse'" if k == 2 else "")
                    + ")"
                )

    def encode_inputs(self, x: np.ndarray) -> np.ndarray:
        """Features -> input source values (``input_gain``, ``input_offset``, ``input_mode``)."""
        from .data import encode_inputs

        t = self.train
        return encode_inputs(x, gain=t.input_gain, offset=t.input_offset, mode=t.input_mode)

    def encode_targets(self, y: np.ndarray, n_classes: int | None) -> np.ndarray:
        """Labels / targets -> output target voltages ``(n, n_outputs)``."""
        from .data import encode_targets

        return encode_targets(
            y,
            n_outputs=self.n_outputs,
            n_classes=n_classes,
            high=self.train.target_high,
            low=self.train.target_low,
        )

    def predict_classes(self, outputs: np.ndarray, n_classes: int) -> np.ndarray:
        """Output voltages ``(n, n_outputs)`` -> class labels."""
        from .data import predict_classes

        return predict_classes(
            outputs, n_classes=n_classes, high=self.train.target_high, low=self.train.target_low
        )

    def load_netlist(self):
        """Parse the deck (``circuitprop.netlist.load``) and :func:`check_names` against it.

        **Returns:** the :class:`~circuitprop.netlist.Netlist`.

        **Raises:** :class:`~circuitprop._errors.NetlistError`, :class:`ExperimentError`.
        """
        from .netlist import load

        netlist = load(self.netlist)
        check_names(self, netlist)
        return netlist

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly dictionary of every setting (paths as strings, inf as ``"inf"``)."""

        def conv(v):
            if isinstance(v, Path):
                return str(v)
            if isinstance(v, float) and not math.isfinite(v):
                return str(v)
            if isinstance(v, tuple):
                return [conv(u) for u in v]
            return v

        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if dataclasses.is_dataclass(v):
                out[f.name] = {g.name: conv(getattr(v, g.name)) for g in dataclasses.fields(v)}
            else:
                out[f.name] = conv(v)
        return out


# ----------------------------------------------------------------------------- helpers


def _suggest(word: str, choices: Iterable[str]) -> str:
    match = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {match[0]!r}?" if match else ""


def _resolve_task(data: DataSettings, loss: str) -> str | None:
    if data.task != "auto":
        return data.task
    if loss == "cross-entropy":
        return "classification"
    if data.kind in ("iris", "digits", "mnist"):
        return "classification"
    if data.kind == "xor":
        return "regression"
    return None


def _node(name: str) -> str:
    name = name.strip().lower()
    return "0" if name in _GROUND else name


_CURRENT = re.compile(r"^\s*i\s*\(\s*([^()\s]+)\s*\)\s*$", re.IGNORECASE)


def current_source(term: str) -> str | None:
    """The V source of a current term ``"i(vname)"`` of an output pair, else ``None``."""
    if term.startswith("i(") and term.endswith(")"):
        return term[2:-1]
    return None


def parse_output(spec: str) -> tuple[str, str]:
    """Parse an output spec: ``"out"`` -> ``("out", "0")``, ``"a-b"`` -> ``("a", "b")``;
    a current through a V source ``"i(vout)"`` -> ``("i(vout)", "0")`` and a difference of
    two currents ``"i(vp)-i(vn)"`` -> ``("i(vp)", "i(vn)")`` (ngspice's sign: positive from
    the source's n+ through it to n−).

    Names are lowercased, ``gnd`` becomes ``0``; blanks around ``-`` are allowed. A node whose
    own name contains ``-`` cannot be an output; a node and a current cannot be mixed.

    **Arguments:**

    - ``spec``: the output as written in the experiment file.

    **Returns:** ``(plus, minus)``: node names, or ``"i(name)"`` terms (``"0"``: none).

    **Raises:** :class:`~circuitprop._errors.ExperimentError` for an empty name, more than one
    ``-``, identical sides, or a node minus a current.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ExperimentError(f"output {spec!r}: expected a node name, 'a-b' or 'i(vname)'")
    parts = spec.split("-")
    if len(parts) > 2:
        raise ExperimentError(
            f"output {spec!r}: more than one '-'; write a single node or a pair 'a-b'"
        )
    currents = [_CURRENT.match(p) for p in parts]
    if any(currents):
        if not all(currents):
            raise ExperimentError(f"output {spec!r}: a node voltage and a current cannot be "
                                  "subtracted; write 'i(vname)' or 'i(va)-i(vb)'")
        terms = [f"i({m.group(1).lower()})" for m in currents]
        if len(terms) == 2 and terms[0] == terms[1]:
            raise ExperimentError(f"output {spec!r}: both sides are the same current")
        return terms[0], terms[1] if len(terms) == 2 else "0"
    if any(not p.strip() or any(c.isspace() or c in "()" for c in p.strip()) for p in parts):
        raise ExperimentError(f"output {spec!r}: expected a node name, 'a-b' or 'i(vname)'")
    plus = _node(parts[0])
    minus = _node(parts[1]) if len(parts) == 2 else "0"
    if plus == minus:
        raise ExperimentError(f"output {spec!r}: both sides are the same node")
    return plus, minus


def match_trainable(
    patterns: Sequence[str], resistor_names: Sequence[str], *, where: str | None = None
) -> list[str]:
    """Elements whose values learn: resistors (their conductances) and V sources that are
    not inputs (their DC values, e.g. the gate voltages of a transistor network).

    **Arguments:**

    - ``patterns``: case-insensitive :mod:`fnmatch` globs (``r*``, ``r[0-9]*``, ``r.x1.*``).
    - ``resistor_names``: the names of the deck's learnable elements, in deck order.
    - ``where``: prefix for error messages (the experiment file).

    **Returns:** the matching names (lowercase), in deck order, each once.

    **Raises:** :class:`~circuitprop._errors.ExperimentError` when a pattern matches no
    element (naming it) or nothing at all is trainable.
    """
    pre = f"{where}: " if where else ""
    names = [n.lower() for n in resistor_names]
    pats = [p.lower() for p in patterns]
    if not pats:
        raise ExperimentError(f"{pre}trainable: no patterns given, nothing would learn")
    chosen: dict[str, None] = {}
    for p in pats:
        hits = [n for n in names if fnmatch.fnmatchcase(n, p)]
        if not hits:
            shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
            raise ExperimentError(
                f"{pre}trainable pattern {p!r} matches no resistor or V source"
                + (f" (learnable: {shown})" if names
                   else " (the deck has no resistors or non-input V sources)")
            )
        for n in hits:
            chosen[n] = None
    result = [n for n in names if n in chosen]
    if not result:
        raise ExperimentError(f"{pre}no trainable elements")
    return list(dict.fromkeys(result))


def check_names(experiment: Experiment, netlist) -> list[str]:
    """Check the experiment's names against a parsed deck.

    **Arguments:**

    - ``experiment``: the :class:`Experiment`.
    - ``netlist``: the :class:`~circuitprop.netlist.Netlist` of ``experiment.netlist``.

    **Returns:** the trainable resistor names (:func:`match_trainable`).

    **Raises:** :class:`~circuitprop._errors.ExperimentError` naming every input that is not a
    V or I source of the deck, every output node that is not a node of the deck, and
    trainable patterns that match nothing.
    """
    where = str(experiment.path)
    deck = Path(str(getattr(netlist, "source", experiment.netlist))).name or str(experiment.netlist)
    sources = [el.name for el in netlist.elements if el.kind in ("v", "i")]
    kinds = {el.name: el.kind for el in netlist.elements}
    problems = []
    for name in experiment.inputs:
        if name not in sources:
            if name in kinds:
                problems.append(
                    f"input {name!r} is a {kinds[name].upper()} element, not a V or I source"
                )
            else:
                problems.append(
                    f"input {name!r} is not a V or I source of {deck}{_suggest(name, sources)}"
                )
    nodes = set(netlist.nodes()) | {"0"}
    vsources = [el.name for el in netlist.elements if el.kind == "v"]
    kinds_out = set()
    for spec, pair in zip(experiment.output_specs, experiment.outputs):
        for node in pair:
            src = current_source(node)
            if src is not None:
                kinds_out.add("current")
                if src not in vsources:
                    what = (f"is a {kinds[src].upper()} element" if src in kinds
                            else f"is not an element of {deck}")
                    problems.append(f"output {spec!r}: {src!r} {what}; a current output is "
                                    f"read through a V source{_suggest(src, vsources)}")
                continue
            if node != "0":
                kinds_out.add("voltage")
            if node not in nodes:
                problems.append(
                    f"output {spec!r}: node {node!r} is not a node of {deck}{_suggest(node, nodes)}"
                )
    if len(kinds_out) > 1:
        problems.append("outputs: currents and voltages cannot be mixed (all outputs are "
                        "'i(vname)' currents, or all are node voltages)")
    if problems:
        raise ExperimentError(f"{where}: " + "; ".join(problems))
    # trainable: resistors (conductances) and V sources that are not inputs (DC values)
    inputs = {n.lower() for n in experiment.inputs}
    learnable = [el.name for el in netlist.elements
                 if el.kind == "r" or (el.kind == "v" and el.name.lower() not in inputs)]
    return match_trainable(experiment.trainable, learnable, where=where)


# ----------------------------------------------------------------------------- parsing

_MISSING = object()


def _devices(tt, default):
    """``[train] devices``: ``"all"`` or a positive count."""
    if isinstance(tt.doc.get("devices"), str):
        return tt.string("devices", default, ("all",))
    return tt.integer("devices", default, lo=1)


class _Table:
    """Typed access to one TOML table, remembering which keys were used."""

    def __init__(self, doc: dict, name: str, path: Path, keys: Sequence[str]):
        self.doc = doc
        self.name = name
        self.path = path
        label = f"[{name}]" if name else "top level"
        for key in doc:
            if key not in keys:
                raise ExperimentError(
                    f"{path}: unknown key {key!r} in {label}{_suggest(key, keys)}"
                )

    def _err(self, key: str, msg: str) -> ExperimentError:
        where = f"[{self.name}] {key}" if self.name else key
        return ExperimentError(f"{self.path}: {where}: {msg}")

    def get(self, key: str, default: Any = _MISSING) -> Any:
        if key not in self.doc:
            if default is _MISSING:
                where = f"[{self.name}] " if self.name else ""
                raise ExperimentError(f"{self.path}: missing required key {where}{key}")
            return default
        return self.doc[key]

    def string(self, key: str, default: Any = _MISSING, choices: Sequence[str] | None = None):
        if key not in self.doc and default is not _MISSING:
            return default
        v = self.get(key)
        if not isinstance(v, str):
            raise self._err(key, f"expected a string, got {v!r}")
        if choices is not None:
            low = v.strip().lower()
            if low not in choices:
                raise self._err(
                    key, f"{v!r} is not one of {', '.join(choices)}{_suggest(low, choices)}"
                )
            return low
        return v

    def number(
        self, key, default=_MISSING, *, lo=None, hi=None, lo_open=False, hi_open=False, finite=True
    ):
        if key not in self.doc and default is not _MISSING:
            return default
        v = self.get(key)
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise self._err(key, f"expected a number, got {v!r}")
        v = float(v)
        if math.isnan(v) or (finite and math.isinf(v)):
            raise self._err(key, f"expected a finite number, got {v!r}")
        if lo is not None and (v < lo or (lo_open and v == lo)):
            raise self._err(key, f"must be {'>' if lo_open else '>='} {lo:g}, got {v!r}")
        if hi is not None and (v > hi or (hi_open and v == hi)):
            raise self._err(key, f"must be {'<' if hi_open else '<='} {hi:g}, got {v!r}")
        return v

    def integer(self, key, default=_MISSING, *, lo=None, hi=None):
        if key not in self.doc and default is not _MISSING:
            return default
        v = self.get(key)
        if isinstance(v, bool) or not isinstance(v, int):
            raise self._err(key, f"expected an integer, got {v!r}")
        if lo is not None and v < lo:
            raise self._err(key, f"must be >= {lo}, got {v!r}")
        if hi is not None and v > hi:
            raise self._err(key, f"must be <= {hi}, got {v!r}")
        return v

    def boolean(self, key, default=_MISSING):
        if key not in self.doc and default is not _MISSING:
            return default
        v = self.get(key)
        if not isinstance(v, bool):
            raise self._err(key, f"expected true or false, got {v!r}")
        return v

    def names(self, key: str) -> list[str]:
        v = self.get(key)
        if not isinstance(v, list) or not v or not all(isinstance(s, str) for s in v):
            raise self._err(key, f"expected a non-empty list of strings, got {v!r}")
        out = [s.strip().lower() for s in v]
        if any(not s for s in out):
            raise self._err(key, "empty name")
        dup = sorted({s for s in out if out.count(s) > 1})
        if dup:
            raise self._err(key, f"listed twice: {', '.join(dup)}")
        return out


_TOP = (
    "netlist",
    "inputs",
    "outputs",
    "trainable",
    "description",
    "data",
    "learning",
    "train",
    "measurement",
    "device",
)
_TABLES = ("data", "learning", "train", "measurement", "device")
_DATA = ("source", "task", "test_fraction", "seed", "limit_train", "limit_test")
_LEARNING = ("rule", "estimator", "beta", "loss", "eta", "agnostic_eta", "power_penalty")
_TRAIN = tuple(f.name for f in dataclasses.fields(TrainSettings))
_MEASUREMENT = tuple(f.name for f in dataclasses.fields(MeasurementSettings))
_DEVICE = tuple(f.name for f in dataclasses.fields(DeviceSettings))
#: ``[device] update`` and ``spacing`` choices
DEVICE_UPDATES = ("ideal", "pulse")
DEVICE_SPACINGS = ("linear", "log")


def _estimator(table: _Table) -> str:
    """``[learning] estimator``: a name of the engine's estimator table."""
    v = table.string("estimator", "centered").strip().lower()
    if not is_estimator(v):
        raise table._err("estimator", f"{v!r} is not one of {estimator_names()}"
                         f"{_suggest(v, ESTIMATORS)}")
    return v


def load_experiment(path: str | os.PathLike) -> Experiment:
    """Read and validate an experiment file.

    **Arguments:**

    - ``path``: the TOML file.

    **Returns:** an :class:`Experiment` (netlist and data paths resolved relative to the file).

    **Raises:** :class:`~circuitprop._errors.ExperimentError` when the file is missing or is
    not TOML, for unknown keys or tables (with a "did you mean"), wrong types, values out of
    range, inconsistent settings, or a netlist / data file that does not exist.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ExperimentError(f"{path}: experiment file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ExperimentError(f"{path}: cannot read experiment file: {e}") from None
    return parse_experiment(text, path)


def parse_experiment(text: str, path: str | os.PathLike = "<string>") -> Experiment:
    """Validate experiment TOML text; relative paths are resolved against ``path``'s folder.

    **Arguments:**

    - ``text``: the TOML document.
    - ``path``: where it came from (messages, relative paths).

    **Returns:** an :class:`Experiment`.

    **Raises:** :class:`~circuitprop._errors.ExperimentError` as :func:`load_experiment`.
    """
    path = Path(path)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ExperimentError(f"{path}: not valid TOML: {e}") from None
    top = _Table(doc, "", path, _TOP)
    for t in _TABLES:
        if t in doc and not isinstance(doc[t], dict):
            raise ExperimentError(f"{path}: {t!r} must be a table [{t}]")
    base = path.parent

    # -- top level
    netlist_rel = top.string("netlist")
    if not netlist_rel.strip():
        raise ExperimentError(f"{path}: netlist: empty path")
    netlist = base / netlist_rel
    if not netlist.is_file():
        raise ExperimentError(
            f"{path}: netlist file {netlist_rel!r} not found (looked for {netlist})"
        )
    inputs = top.names("inputs")
    for name in inputs:
        if name[0] not in "vi":
            raise ExperimentError(
                f"{path}: inputs: {name!r} is not a V or I source name (names start with V or I)"
            )
    specs = top.names("outputs")
    outputs = []
    for s in specs:
        try:
            outputs.append(parse_output(s))
        except ExperimentError as e:
            raise ExperimentError(f"{path}: outputs: {e}") from None
    if len(set(outputs)) != len(outputs):
        raise ExperimentError(f"{path}: outputs: the same output is listed twice")
    trainable = top.names("trainable")
    description = top.string("description", "")

    # -- [data]
    d = _Table(doc.get("data", {}), "data", path, _DATA)
    source = d.string("source").strip()
    kind, sep, arg = source.partition(":")
    kind = kind.strip().lower()
    kinds = ("xor", "iris", "digits", "csv", "mnist")
    if kind not in kinds:
        raise ExperimentError(
            f"{path}: [data] source: unknown source {source!r}: expected xor, iris, digits, "
            f"csv:PATH or mnist:DIR{_suggest(kind, kinds)}"
        )
    data_path = None
    if kind in ("csv", "mnist"):
        if not arg.strip():
            raise ExperimentError(f"{path}: [data] source: {kind!r} needs a path: {kind}:PATH")
        data_path = base / arg.strip()
        ok = data_path.is_file() if kind == "csv" else data_path.is_dir()
        if not ok:
            what = "file" if kind == "csv" else "folder"
            raise ExperimentError(
                f"{path}: [data] source: {what} {arg.strip()!r} not found (looked for {data_path})"
            )
        source = f"{kind}:{arg.strip()}"
    elif sep:
        raise ExperimentError(f"{path}: [data] source: {kind!r} takes no ':' argument")
    else:
        source = kind
    data = DataSettings(
        source=source,
        task=d.string("task", "auto", TASKS),
        test_fraction=d.number("test_fraction", 0.2, lo=0.0, hi=1.0, hi_open=True),
        seed=d.integer("seed", 0, lo=0),
        limit_train=d.integer("limit_train", None, lo=1),
        limit_test=d.integer("limit_test", None, lo=1),
        path=data_path,
    )

    # -- [learning]
    lt = _Table(doc.get("learning", {}), "learning", path, _LEARNING)
    learning = LearningSettings(
        rule=lt.string("rule", "ep", RULES),
        estimator=_estimator(lt),
        beta=lt.number("beta", 1e-6, lo=0.0, lo_open=True),
        loss=lt.string("loss", "mse", LOSSES),
        eta=lt.number("eta", None, lo=0.0, lo_open=True),
        agnostic_eta=lt.number("agnostic_eta", None, lo=0.0, lo_open=True),
        power_penalty=lt.number("power_penalty", 0.0, lo=0.0),
    )
    if learning.rule == "coupled" and learning.eta is not None and learning.eta > 1:
        raise ExperimentError(
            f"{path}: [learning] eta: coupled learning clamps a fraction eta of the error, "
            f"must be in (0, 1], got {learning.eta!r}"
        )
    if learning.rule == "agnostic" and learning.estimator not in AGNOSTIC_VARIANTS:
        raise ExperimentError(
            f"{path}: [learning] estimator: {learning.estimator!r} is only for rule 'ep'; "
            "agnostic EP takes positive, negative or centered"
        )
    if learning.loss == "cross-entropy" and data.task == "regression":
        raise ExperimentError(
            f"{path}: [learning] loss: 'cross-entropy' needs classification, [data] task is "
            "'regression'"
        )
    if learning.loss == "cross-entropy" and learning.rule in ("coupled", "contrastive"):
        raise ExperimentError(
            f"{path}: [learning] loss: rule {learning.rule!r} clamps outputs towards targets "
            "and needs loss 'mse'"
        )

    # -- [train]
    tt = _Table(doc.get("train", {}), "train", path, _TRAIN)
    td = TrainSettings()  # the defaults
    g_min = tt.number("g_min", td.g_min, lo=0.0)
    train = TrainSettings(
        optimizer=tt.string("optimizer", td.optimizer, OPTIMIZERS),
        learning_rate=tt.number("learning_rate", td.learning_rate, lo=0.0, lo_open=True),
        lr_decay=tt.number("lr_decay", td.lr_decay, lo=0.0, lo_open=True),
        momentum=tt.number("momentum", td.momentum, lo=0.0, hi=1.0, hi_open=True),
        epochs=tt.integer("epochs", td.epochs, lo=0),
        batch_size=tt.integer("batch_size", td.batch_size, lo=1),
        seed=tt.integer("seed", td.seed, lo=0),
        shuffle=tt.boolean("shuffle", td.shuffle),
        g_min=g_min,
        g_max=tt.number("g_max", td.g_max, lo=g_min, lo_open=True, finite=False),
        g_unit=tt.number("g_unit", td.g_unit, lo=0.0, lo_open=True),
        init=tt.string("init", td.init, INITS),
        init_low=tt.number("init_low", td.init_low, lo=0.0),
        init_high=tt.number("init_high", td.init_high, lo=0.0, lo_open=True),
        input_gain=tt.number("input_gain", td.input_gain),
        input_offset=tt.number("input_offset", td.input_offset),
        input_mode=tt.string("input_mode", td.input_mode, INPUT_MODES),
        target_high=tt.number("target_high", td.target_high),
        target_low=tt.number("target_low", td.target_low),
        checkpoint_every=tt.integer("checkpoint_every", td.checkpoint_every, lo=0),
        solver=tt.string("solver", td.solver, TRAIN_SOLVERS),
        dtype=tt.string("dtype", td.dtype, DTYPES),
        devices=_devices(tt, td.devices),
        physical_timing=tt.boolean("physical_timing", td.physical_timing),
        v_min=(v_min := tt.number("v_min", td.v_min, finite=False)),
        v_max=tt.number("v_max", td.v_max, lo=v_min, lo_open=True, finite=False),
    )
    if train.init_low > train.init_high:
        raise ExperimentError(
            f"{path}: [train] init_low ({train.init_low!r}) is above init_high "
            f"({train.init_high!r})"
        )
    if train.target_high == train.target_low:
        raise ExperimentError(f"{path}: [train] target_high and target_low are equal")
    if train.input_mode == "pm" and len(inputs) % 2:
        raise ExperimentError(
            f"{path}: [train] input_mode 'pm' needs an even number of inputs (+x sources, then "
            f"-x sources), got {len(inputs)}"
        )

    # -- [measurement]
    mt = _Table(doc.get("measurement", {}), "measurement", path, _MEASUREMENT)
    measurement = MeasurementSettings(
        adc_bits=mt.integer("adc_bits", None, lo=1, hi=32),
        adc_range=mt.number("adc_range", 1.0, lo=0.0, lo_open=True),
        noise_std=mt.number("noise_std", 0.0, lo=0.0),
        seed=mt.integer("seed", 0, lo=0),
    )

    # -- [device]
    dt = _Table(doc.get("device", {}), "device", path, _DEVICE)
    dd = DeviceSettings()
    device = DeviceSettings(
        levels=dt.integer("levels", None, lo=2, hi=2**24),
        spacing=dt.string("spacing", dd.spacing, DEVICE_SPACINGS),
        write_noise=dt.number("write_noise", dd.write_noise, lo=0.0, hi=1.0),
        variation=dt.number("variation", dd.variation, lo=0.0, hi=2.0),
        update=dt.string("update", dd.update, DEVICE_UPDATES),
        pulse_up=dt.number("pulse_up", dd.pulse_up, lo=0.0, hi=1.0, lo_open=True),
        pulse_down=dt.number("pulse_down", dd.pulse_down, lo=0.0, hi=1.0, lo_open=True),
        nonlinearity=dt.number("nonlinearity", dd.nonlinearity, lo=0.0),
        drift_nu=dt.number("drift_nu", dd.drift_nu, lo=0.0, hi=1.0),
        drift_t=dt.number("drift_t", dd.drift_t, lo=0.0, lo_open=True),
        stuck_off=dt.number("stuck_off", dd.stuck_off, lo=0.0, hi=1.0),
        stuck_on=dt.number("stuck_on", dd.stuck_on, lo=0.0, hi=1.0),
        seed=dt.integer("seed", None, lo=0),
    )
    if device.stuck_off + device.stuck_on > 1.0:
        raise ExperimentError(f"{path}: [device] stuck_off + stuck_on is above 1")
    if device.spacing == "log" and train.g_min <= 0:
        raise ExperimentError(f"{path}: [device] spacing 'log' needs [train] g_min > 0")
    if (device.levels is not None or device.update == "pulse") and not math.isfinite(train.g_max):
        raise ExperimentError(f"{path}: [device] levels and pulse updates need a finite "
                              "[train] g_max (the top of the device's range)")

    return Experiment(
        path=path,
        netlist=netlist,
        inputs=tuple(inputs),
        outputs=tuple(outputs),
        output_specs=tuple(specs),
        trainable=tuple(trainable),
        data=data,
        learning=learning,
        train=train,
        measurement=measurement,
        device=device,
        description=description,
    )
