"""Agnostic equilibrium propagation through a physical system (implemented in
:mod:`circuitprop.learn._physical` over the engine's homeostatic step)."""

from ..learn._estimators import agnostic_phases as agnostic_phases
from ..learn._physical import AgnosticResult as AgnosticResult
from ..learn._physical import BlackBoxPhysicalSystem as BlackBoxPhysicalSystem
from ..learn._physical import EnergyPhysicalSystem as EnergyPhysicalSystem
from ..learn._physical import PhysicalSystem as PhysicalSystem
from ..learn._physical import ThetaDerivativeError as ThetaDerivativeError
from ..learn._physical import agnostic_gradient as agnostic_gradient
from ..learn._physical import agnostic_step as agnostic_step
from ..learn._physical import forbid_theta_derivative as forbid_theta_derivative
