"""circuitprop: analog and neuromorphic learning hardware, simulated.

Load SPICE-like netlists, find DC steady states (Newton–Krylov or a diffrax relaxation), and
train resistive networks by equilibrium propagation and its relatives.

circuitprop computes in float64: importing it enables JAX's 64-bit mode
(``jax_enable_x64``), because 1e-6 agreement with ngspice is out of reach in float32. Set the
environment variable ``CIRCUITPROP_X64=0`` before import to leave JAX's setting alone.
"""

from __future__ import annotations

import os as _os

import jax as _jax

if _os.environ.get("CIRCUITPROP_X64", "1") != "0":
    _jax.config.update("jax_enable_x64", True)

from ._api import (  # noqa: E402
    DCSweep as DCSweep,
    OperatingPoint as OperatingPoint,
    as_netlist as as_netlist,
    dc_sweep as dc_sweep,
    operating_point as operating_point,
    prepare as prepare,
)
from ._circuit import (  # noqa: E402
    Circuit as Circuit,
    CircuitInfo as CircuitInfo,
    MnaCircuit as MnaCircuit,
    Values as Values,
    compile_circuit as compile_circuit,
)
from ._errors import (  # noqa: E402
    CircuitpropError as CircuitpropError,
    ConvergenceError as ConvergenceError,
    ExperimentError as ExperimentError,
    NetlistError as NetlistError,
    TopologyError as TopologyError,
)
from ._graph import check_topology as check_topology, netlist_graph as netlist_graph  # noqa: E402
from ._solve._newton import NewtonOptions as NewtonOptions  # noqa: E402
from .netlist import Netlist as Netlist, load as load, parse as parse  # noqa: E402

__version__ = "0.1.0"
