"""The general bilevel engine: equilibrium propagation and its baselines on any JAX energy.

A problem is an energy ``E(state, θ, x)`` minimised over the state and a cost ``C(state, y)``
on the equilibrium (:class:`EnergyProblem`); the loss is ``L(θ) = C(s*(θ, x), y)``.

- :func:`relax`: ``argmin_s E + βC`` by Newton–CG on Hessian-vector products.
- :func:`ep_gradient`: EP with every estimator (positive, negative, centered, forward-2..5).
- :func:`implicit_gradient`, :func:`recurrent_backprop`, :func:`finite_difference`: baselines.
- :class:`PhysicalSystem`, :class:`EnergyPhysicalSystem`, :class:`BlackBoxPhysicalSystem`,
  :func:`agnostic_step`, :func:`agnostic_gradient`: agnostic EP, where the trainer only sets
  controls, inputs and nudging, lets the system relax and measures θ and outputs.

See ``docs/bilevel.md``.
"""

from ._gradients import GradientResult as GradientResult
from ._gradients import ep_gradient as ep_gradient
from ._gradients import finite_difference as finite_difference
from ._gradients import implicit_gradient as implicit_gradient
from ._gradients import loss as loss
from ._gradients import recurrent_backprop as recurrent_backprop
from ._gradients import theta_grad as theta_grad
from ._minimize import MinimizeResult as MinimizeResult
from ._minimize import minimize as minimize
from ._physical import AgnosticResult as AgnosticResult
from ._physical import BlackBoxPhysicalSystem as BlackBoxPhysicalSystem
from ._physical import EnergyPhysicalSystem as EnergyPhysicalSystem
from ._physical import PhysicalSystem as PhysicalSystem
from ._physical import ThetaDerivativeError as ThetaDerivativeError
from ._physical import agnostic_gradient as agnostic_gradient
from ._physical import agnostic_phases as agnostic_phases
from ._physical import agnostic_step as agnostic_step
from ._physical import forbid_theta_derivative as forbid_theta_derivative
from ._problem import EnergyProblem as EnergyProblem
from ._problem import RelaxResult as RelaxResult
from ._problem import relax as relax
