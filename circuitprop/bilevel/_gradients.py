"""Gradients of the bilevel loss ``L(θ) = C(s*(θ, x), y)``: EP estimators and exact baselines,
written once in the learning engine (:mod:`circuitprop.learn._engine`) and applied to a
generic energy by :mod:`circuitprop.learn._generic`."""

from ..learn._generic import GradientResult as GradientResult
from ..learn._generic import ep_gradient as ep_gradient
from ..learn._generic import finite_difference_of as finite_difference
from ..learn._generic import implicit_gradient_of as implicit_gradient
from ..learn._generic import loss as loss
from ..learn._generic import recurrent_backprop as recurrent_backprop
from ..learn._generic import theta_grad as theta_grad

__all__ = ["GradientResult", "ep_gradient", "implicit_gradient", "recurrent_backprop",
           "finite_difference", "loss", "theta_grad"]
