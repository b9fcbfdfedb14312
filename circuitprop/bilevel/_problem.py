"""The bilevel problem and its relaxation (implemented in :mod:`circuitprop.learn._generic`)."""

from ..learn._generic import EnergyProblem as EnergyProblem
from ..learn._generic import RelaxResult as RelaxResult
from ..learn._generic import relax as relax

__all__ = ["EnergyProblem", "RelaxResult", "relax"]
