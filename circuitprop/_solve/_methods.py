"""The one steady-state solver package.

:data:`METHODS` names the solvers an analysis can ask for; :func:`steady_state` runs one
(circuits with controlled sources always take the MNA Newton: they have no energy).
Everything else (the Newton loop, CG, the result enumeration) is in the submodules; see
``docs/architecture.md``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax.numpy as jnp

from .._circuit import Circuit, MnaCircuit, Values
from .._energy import Nudge, OutputCost
from .._errors import CircuitpropError, ExperimentError
from ._coordinate import Coordinate, coordinate_solve, with_colours
from ._dense import DENSE_LIMIT, dense_newton, layout_of
from ._mna import MnaOptions, mna_solve
from ._newton import Newton, NewtonOptions, circuit_newton, newton_solve
from ._result import RESULTS as RESULTS
from ._result import Solution as Solution

__all__ = ["METHODS", "Method", "method_name", "default_options", "steady_state", "RESULTS",
           "Solution", "circuit_solve", "auto_method", "prepare_circuit", "SOLVERS"]


def _relax_options():
    from ._relax import RelaxOptions  # diffrax is imported only where the relaxation runs

    return RelaxOptions()


def _relax_solve(circuit, values, u0, options):
    from ._relax import relax_solve

    return relax_solve(circuit, values, u0, options)


def _dense_solve(circuit, values, u0, options):
    return dense_newton(circuit, values, u0, options)


def _dense_setup(circuit):
    if circuit.n_u > DENSE_LIMIT:
        raise CircuitpropError(f"the dense method factorises an n×n matrix of the unknowns; "
                               f"this circuit has {circuit.n_u} (at most {DENSE_LIMIT}): use "
                               "--method newton")
    return circuit


def _no_setup(circuit):
    return circuit


class Method(NamedTuple):
    """A steady-state solver: its default options, its solve function
    ``(circuit, values, u0, options) -> Solution`` and what it needs done to a compiled
    circuit before tracing (``setup``: e.g. colouring the unknowns)."""

    options: Callable
    solve: Callable
    setup: Callable = _no_setup


#: the solvers of reciprocal circuits, by the name ``--method`` takes
METHODS: dict[str, Method] = {
    "newton": Method(NewtonOptions, newton_solve),
    "dense": Method(NewtonOptions, _dense_solve, _dense_setup),
    "coordinate": Method(Coordinate, coordinate_solve, with_colours),
    "relax": Method(_relax_options, _relax_solve),
}

#: the solvers a learning phase can use (``[train] solver``; ``auto`` picks one)
SOLVERS = ("newton", "dense", "coordinate")
#: the solver of circuits with controlled sources (no energy)
MNA = Method(MnaOptions, mna_solve)


def method_name(circuit, method: str) -> str:
    """The solver that will actually run: ``newton-kcl`` for circuits with E/F/G/H."""
    return "newton-kcl" if isinstance(circuit, MnaCircuit) else method


def _method(circuit, method: str) -> Method:
    return MNA if isinstance(circuit, MnaCircuit) else METHODS[method]


def default_options(circuit, method: str):
    return _method(circuit, method).options()


def prepare_circuit(circuit, method: str):
    """What ``method`` needs done to a compiled circuit before it is traced."""
    if isinstance(circuit, MnaCircuit):
        return circuit
    return METHODS[method].setup(circuit)


def auto_method(c: Circuit, loss: str = "mse") -> str:
    """The learning phases' solver for ``[train] solver = "auto"``:

    - a layered network (dense blocks hold at least half of the resistors): ``coordinate``
      with the ``mse`` nudge; with other costs (they couple every output) ``dense`` up to
      500 unknowns, ``newton`` above;
    - otherwise ``newton`` (Newton–CG).
    """
    layout = layout_of(c)
    n_r = int(c.r_a.shape[0])
    if n_r and layout.n_block_resistors >= n_r / 2:
        return "coordinate" if loss == "mse" else ("dense" if c.n_u <= 500 else "newton")
    return "newton"


def circuit_solve(method: str, c: Circuit, values: Values, u0, options: Newton,
                  nudge: Nudge | None = None, cost: OutputCost | None = None,
                  warm: bool = False, coordinate: Coordinate | None = None):
    """A reciprocal circuit's energy (plus an output ``nudge`` or ``cost``) minimised from
    ``u0`` by ``method`` (one of :data:`SOLVERS`) to ``options``' tolerances (the
    coordinate method takes its sweep cap from ``coordinate``)."""
    if method == "newton":
        return circuit_newton(c, values, u0, options, nudge, cost, warm)
    if method == "dense":
        return dense_newton(c, values, u0, options, nudge, cost, warm)
    if method == "coordinate":
        opts = Coordinate.like(options) if coordinate is None else coordinate
        return coordinate_solve(c, values, u0, opts, nudge, cost, warm)
    raise ExperimentError(f"unknown solver {method!r} (one of {', '.join(SOLVERS)})")

def initial_unknowns(circuit: Circuit | MnaCircuit):
    n = circuit.n_nodes + circuit.n_br if isinstance(circuit, MnaCircuit) else circuit.n_u
    return jnp.zeros((n,))


def steady_state(circuit, values: Values, options, method: str) -> Solution:
    """The steady state of ``circuit`` by ``method`` (a key of :data:`METHODS`) from zero."""
    return _method(circuit, method).solve(circuit, values, initial_unknowns(circuit), options)
