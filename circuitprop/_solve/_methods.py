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
from ._mna import MnaOptions, mna_solve
from ._newton import NewtonOptions, newton_solve
from ._result import RESULTS as RESULTS
from ._result import Solution as Solution

__all__ = ["METHODS", "Method", "method_name", "default_options", "steady_state", "RESULTS",
           "Solution"]


def _relax_options():
    from ._relax import RelaxOptions  # diffrax is imported only where the relaxation runs

    return RelaxOptions()


def _relax_solve(circuit, values, u0, options):
    from ._relax import relax_solve

    return relax_solve(circuit, values, u0, options)


class Method(NamedTuple):
    """A steady-state solver: its default options and its solve function
    ``(circuit, values, u0, options) -> Solution``."""

    options: Callable
    solve: Callable


#: the solvers of reciprocal circuits, by the name ``--method`` takes
METHODS: dict[str, Method] = {
    "newton": Method(NewtonOptions, newton_solve),
    "relax": Method(_relax_options, _relax_solve),
}
#: the solver of circuits with controlled sources (no energy)
MNA = Method(MnaOptions, mna_solve)


def method_name(circuit, method: str) -> str:
    """The solver that will actually run: ``newton-kcl`` for circuits with E/F/G/H."""
    return "newton-kcl" if isinstance(circuit, MnaCircuit) else method


def _method(circuit, method: str) -> Method:
    return MNA if isinstance(circuit, MnaCircuit) else METHODS[method]


def default_options(circuit, method: str):
    return _method(circuit, method).options()


def initial_unknowns(circuit: Circuit | MnaCircuit):
    n = circuit.n_nodes + circuit.n_br if isinstance(circuit, MnaCircuit) else circuit.n_u
    return jnp.zeros((n,))


def steady_state(circuit, values: Values, options, method: str) -> Solution:
    """The steady state of ``circuit`` by ``method`` (a key of :data:`METHODS`) from zero."""
    return _method(circuit, method).solve(circuit, values, initial_unknowns(circuit), options)
