"""Equilibrium-propagation estimators: which nudged phases, which coefficients.

Every estimator is ``(1/β) Σ_i α_i ∂θE(s_{b_i β})`` over phases at multiples ``b_i`` of β
(``learning.md``):

=============  =====================  ===================================  ===========
estimator      phases ``b_i``         coefficients ``α_i``                 bias
=============  =====================  ===================================  ===========
positive       0, 1                   −1, 1                                O(β)
negative       −1, 0                  −1, 1                                O(β)
centered       −1, 1                  −½, ½                                O(β²)
forward-2      0, 1                   −1, 1                                O(β)
forward-3      0, 1, 2                −3/2, 2, −1/2                        O(β²)
forward-4      0, 1, 2, 3             −11/6, 3, −3/2, 1/3                  O(β³)
forward-5      0, 1, 2, 3, 4          −25/12, 4, −3, 4/3, −1/4             O(β⁴)
=============  =====================  ===================================  ===========

The forward-p coefficients are the one-sided finite-difference weights of the first
derivative at 0 on p equally spaced points.
"""

from __future__ import annotations

import jax.numpy as jnp

__all__ = ["ESTIMATORS", "estimator_points", "combine"]

ESTIMATORS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "positive": ((0.0, 1.0), (-1.0, 1.0)),
    "negative": ((-1.0, 0.0), (-1.0, 1.0)),
    "centered": ((-1.0, 1.0), (-0.5, 0.5)),
    "forward-2": ((0.0, 1.0), (-1.0, 1.0)),
    "forward-3": ((0.0, 1.0, 2.0), (-1.5, 2.0, -0.5)),
    "forward-4": ((0.0, 1.0, 2.0, 3.0), (-11.0 / 6.0, 3.0, -1.5, 1.0 / 3.0)),
    "forward-5": ((0.0, 1.0, 2.0, 3.0, 4.0), (-25.0 / 12.0, 4.0, -3.0, 4.0 / 3.0, -0.25)),
}


def estimator_points(name: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """``(multiples of β, coefficients)`` of an estimator (a ``KeyError`` names it)."""
    if name not in ESTIMATORS:
        raise KeyError(f"unknown estimator {name!r}; one of {', '.join(ESTIMATORS)}")
    return ESTIMATORS[name]


def combine(name: str, beta, dEdg_by_point: dict[float, jnp.ndarray]):
    """The estimate ``(1/β) Σ α_i ∂θE(s_{b_i β})`` from measured ``∂θE`` at each phase."""
    points, coefs = estimator_points(name)
    acc = 0.0
    for b, a in zip(points, coefs):
        acc = acc + a * dEdg_by_point[b]
    return acc / beta
