"""Output costs ``C(o, y)`` of the learning engine: the one table of loss functions.

Each loss gives its value, its gradient in the outputs ``o`` and its Hessian-vector product,
written so that they are holomorphic in ``o`` (complex nudges of holomorphic EP evaluate them
at complex outputs): no ``max`` or ``abs`` of ``o`` enters except as a constant shift.

- ``mse``: ``½ Σ_k (o_k − y_k)²``.
- ``cross-entropy``: ``−Σ_k q_k log softmax(o)_k`` with ``q`` the one-hot class of the
  target vector (its largest entry; ties share the mass).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax.numpy as jnp


class Loss(NamedTuple):
    value: Callable
    grad: Callable
    hvp: Callable


def _mse_value(o, y):
    d = o - y
    return 0.5 * jnp.sum(d * d)


def _classes(y, dtype):
    q = (y >= jnp.max(y)).astype(dtype)
    return q / jnp.sum(q)


def _softmax(o):
    # the shift by the largest real part is a constant: the expression stays holomorphic
    e = jnp.exp(o - jnp.max(jnp.real(o)))
    return e / jnp.sum(e)


def _ce_value(o, y):
    q = _classes(y, jnp.real(o).dtype)
    m = jnp.max(jnp.real(o))
    lse = m + jnp.log(jnp.sum(jnp.exp(o - m)))
    return -jnp.sum(q * (o - lse))


def _ce_grad(o, y):
    return _softmax(o) - _classes(y, jnp.real(o).dtype)


def _ce_hvp(o, y, v):
    p = _softmax(o)
    return p * v - p * jnp.sum(p * v)


LOSSES: dict[str, Loss] = {
    "mse": Loss(_mse_value, lambda o, y: o - y, lambda o, y, v: v),
    "cross-entropy": Loss(_ce_value, _ce_grad, _ce_hvp),
}


def loss_value(name: str, o, y):
    """``C(o, y)`` of one sample."""
    return LOSSES[name].value(o, y)
