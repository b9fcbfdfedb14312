"""circuitprop: analog and neuromorphic learning hardware, simulated.

Load SPICE-like netlists, find DC steady states (Newton–Krylov or a diffrax relaxation), and
train resistive networks by equilibrium propagation and its relatives.

circuitprop computes in float64: importing it enables JAX's 64-bit mode
(``jax_enable_x64``), because 1e-6 agreement with ngspice is out of reach in float32. Set the
environment variable ``CIRCUITPROP_X64=0`` before import to leave JAX's setting alone.
"""

import os as _os

import jax as _jax

if _os.environ.get("CIRCUITPROP_X64", "1") != "0":
    _jax.config.update("jax_enable_x64", True)

from ._api import (  # noqa: E402
    DCSweep as DCSweep,
)
from ._api import (
    OperatingPoint as OperatingPoint,
)
from ._api import (
    as_netlist as as_netlist,
)
from ._api import (
    dc_sweep as dc_sweep,
)
from ._api import (
    operating_point as operating_point,
)
from ._api import (
    prepare as prepare,
)
from ._circuit import (  # noqa: E402
    Circuit as Circuit,
)
from ._circuit import (
    CircuitInfo as CircuitInfo,
)
from ._circuit import (
    MnaCircuit as MnaCircuit,
)
from ._circuit import (
    Values as Values,
)
from ._circuit import (
    compile_circuit as compile_circuit,
)
from ._errors import (  # noqa: E402
    CircuitpropError as CircuitpropError,
)
from ._errors import (
    ConvergenceError as ConvergenceError,
)
from ._errors import (
    ExperimentError as ExperimentError,
)
from ._errors import (
    NetlistError as NetlistError,
)
from ._errors import (
    TopologyError as TopologyError,
)
from ._graph import check_topology as check_topology  # noqa: E402
from ._graph import netlist_graph as netlist_graph
from ._raw import RawFile as RawFile  # noqa: E402
from ._raw import read_raw as read_raw
from ._raw import write_raw as write_raw
from ._solve._newton import NewtonOptions as NewtonOptions  # noqa: E402
from .netlist import Netlist as Netlist  # noqa: E402
from .netlist import load as load
from .netlist import parse as parse

__version__ = "0.1.0"


def __getattr__(name):
    # the relaxation imports diffrax: load it only when asked for
    if name == "RelaxOptions":
        from ._solve._relax import RelaxOptions

        return RelaxOptions
    # the transient analysis imports diffrax too
    if name in ("transient", "Transient", "settle", "Settle"):
        from . import _transient

        return getattr(_transient, name)
    raise AttributeError(f"module 'circuitprop' has no attribute {name!r}")
