"""The library's own error types. The CLI catches :class:`CircuitpropError` and prints its
message on one line (exit code 2); everything else is a bug."""

from __future__ import annotations


class CircuitpropError(Exception):
    """Base class of every error caused by the user's input."""


class NetlistError(CircuitpropError):
    """A deck that cannot be read: syntax, unknown names, bad values, unsupported elements.

    ``str(err)`` is ``FILE:LINE: message`` when the line is known, ``FILE: message`` otherwise.
    """

    def __init__(self, message: str, file: str | None = None, line: int | None = None):
        self.message = message
        self.file = file
        self.line = line
        if file is not None and line is not None:
            text = f"{file}:{line}: {message}"
        elif file is not None:
            text = f"{file}: {message}"
        else:
            text = message
        super().__init__(text)

    @classmethod
    def at(cls, message: str, location) -> NetlistError:
        """Build from a :class:`~circuitprop.netlist.Location` (or ``None``)."""
        if location is None:
            return cls(message)
        return cls(message, location.file, location.line)


class TopologyError(NetlistError):
    """An ill-posed circuit: floating nodes, loops of V sources/inductors, cut-sets of
    current sources/capacitors. The message names the culprits."""


class ConvergenceError(CircuitpropError):
    """A steady-state solve that did not converge."""


class ExperimentError(CircuitpropError):
    """A bad experiment file (unknown key, missing netlist, names that are not in the deck)."""
