"""The names of the learning engine, in one place: rules, EP estimators, agnostic variants,
adjoint methods and losses.

Every EP estimator is ``(1/β) Re Σ_i α_i ∂θE(s_{b_i β})`` over phases at multiples ``b_i``
of β (``learning.md``):

=================  ===================================  ===================================  ===========
estimator          phases ``b_i``                       coefficients ``α_i``                 bias
=================  ===================================  ===================================  ===========
positive           0, 1                                 −1, 1                                O(β)
negative           −1, 0                                −1, 1                                O(β)
centered           −1, 1                                −½, ½                                O(β²)
forward-2          0, 1                                 −1, 1                                O(β)
forward-3          0, 1, 2                              −3/2, 2, −1/2                        O(β²)
forward-4          0, 1, 2, 3                           −11/6, 3, −3/2, 1/3                  O(β³)
forward-5          0, 1, 2, 3, 4                        −25/12, 4, −3, 4/3, −1/4             O(β⁴)
holomorphic-N      e^{2πik/N}, k = 0 … N−1 (complex)    e^{−2πik/N} / N                      O(β^N)
=================  ===================================  ===================================  ===========

The forward-p coefficients are the one-sided finite-difference weights of the first
derivative at 0 on p equally spaced points. ``holomorphic-N`` (Laborieux & Zenke 2022) takes
the first Fourier coefficient of ``∂θE`` on a circle of complex nudges: for device laws that
are holomorphic in the state, ``∂θE(s_β)`` is analytic in β and the estimate is exact up to
the aliased Taylor terms of order ``β^N``.
"""

from __future__ import annotations

import cmath
import re

from ._losses import LOSSES as _LOSS_TABLE

__all__ = ["RULES", "ESTIMATORS", "LOSSES", "ADJOINTS", "AGNOSTIC_VARIANTS",
           "estimator_points", "is_estimator", "estimator_names", "agnostic_phases",
           "combine"]

#: learning rules of :func:`circuitprop.learn.sample_gradient` and ``[learning] rule``
RULES = ("ep", "coupled", "contrastive", "agnostic", "exact")

#: the fixed real-point estimators: ``name -> (multiples of β, coefficients)``
ESTIMATORS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "positive": ((0.0, 1.0), (-1.0, 1.0)),
    "negative": ((-1.0, 0.0), (-1.0, 1.0)),
    "centered": ((-1.0, 1.0), (-0.5, 0.5)),
    "forward-2": ((0.0, 1.0), (-1.0, 1.0)),
    "forward-3": ((0.0, 1.0, 2.0), (-1.5, 2.0, -0.5)),
    "forward-4": ((0.0, 1.0, 2.0, 3.0), (-11.0 / 6.0, 3.0, -1.5, 1.0 / 3.0)),
    "forward-5": ((0.0, 1.0, 2.0, 3.0, 4.0), (-25.0 / 12.0, 4.0, -3.0, 4.0 / 3.0, -0.25)),
}

#: ``holomorphic-N``: N ≥ 2 points on the circle |b| = 1 (at most this many)
HOLOMORPHIC_MAX = 64
_HOLO = re.compile(r"holomorphic-(\d+)$")

#: the losses of :mod:`circuitprop._losses`
LOSSES = tuple(_LOSS_TABLE)

#: adjoint methods of the exact (implicit) gradient: conjugate gradients, recurrent backprop
ADJOINTS = ("cg", "rbp")

#: agnostic EP: ``(β1, β2)`` as multiples of β, by estimator name (and the variant names of
#: Scellier et al. 2022)
AGNOSTIC_VARIANTS: dict[str, tuple[float, float]] = {
    "positive": (0.0, 1.0), "optimistic": (0.0, 1.0),
    "negative": (-1.0, 0.0), "pessimistic": (-1.0, 0.0),
    "centered": (-0.5, 0.5),
}


def _holomorphic_n(name: str) -> int | None:
    m = _HOLO.match(name)
    if not m:
        return None
    n = int(m.group(1))
    return n if 2 <= n <= HOLOMORPHIC_MAX else None


def is_estimator(name: str) -> bool:
    return name in ESTIMATORS or _holomorphic_n(name) is not None


def estimator_names() -> str:
    """The accepted estimator names, for messages."""
    return ", ".join(ESTIMATORS) + f", holomorphic-N (N = 2..{HOLOMORPHIC_MAX})"


def estimator_points(name: str) -> tuple[tuple[complex | float, ...], tuple[complex | float, ...]]:
    """``(multiples of β, coefficients)`` of an estimator (a ``KeyError`` names the choices).
    Holomorphic estimators have complex points and coefficients."""
    if name in ESTIMATORS:
        return ESTIMATORS[name]
    n = _holomorphic_n(name)
    if n is None:
        raise KeyError(f"unknown estimator {name!r}; one of {estimator_names()}")
    pts = tuple(cmath.exp(2j * cmath.pi * k / n) for k in range(n))
    # exact points on the axes (k = 0, N/4, N/2 ...) keep those phases real where possible
    pts = tuple(complex(round(p.real, 15), round(p.imag, 15)) for p in pts)
    return pts, tuple(p.conjugate() / n for p in pts)


def agnostic_phases(variant: str, beta: float) -> tuple[float, float]:
    """``(β1, β2)`` of an agnostic-EP variant (``KeyError`` names the choices)."""
    if variant not in AGNOSTIC_VARIANTS:
        raise KeyError(f"unknown agnostic variant {variant!r}; one of "
                       f"{', '.join(AGNOSTIC_VARIANTS)}")
    b1, b2 = AGNOSTIC_VARIANTS[variant]
    return b1 * beta, b2 * beta


def combine(name: str, beta, dEdg_by_point: dict):
    """The estimate ``(1/β) Re Σ α_i ∂θE(s_{b_i β})`` from measured ``∂θE`` at each phase."""
    import jax.numpy as jnp

    points, coefs = estimator_points(name)
    acc = 0.0
    for b, a in zip(points, coefs):
        acc = acc + a * dEdg_by_point[b]
    return jnp.real(acc) / beta
