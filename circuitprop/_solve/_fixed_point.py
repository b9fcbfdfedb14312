"""Fixed-point iteration ``x ← step(x)`` until it stops moving: the solver of relaxations
made of alternating exact sub-solves (e.g. a circuit whose conductances relax with its state,
:class:`circuitprop.learn.CircuitPhysics`)."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from ._result import RESULTS

__all__ = ["fixed_point", "python_while"]


def python_while(cond: Callable, body: Callable, init):
    """``lax.while_loop``'s contract in Python (for iterations that drive something that is
    not a JAX function, e.g. hardware behind a :class:`circuitprop.learn.PhysicalSystem`)."""
    val = init
    while bool(cond(val)):
        val = body(val)
    return val


def fixed_point(step: Callable, x0, tol, max_steps: int, loop: Callable | None = None):
    """Iterate ``(x, move, ok) = step(x)`` from ``x0`` until ``move ≤ tol``.

    ``step`` returns the next iterate, how far it moved (a scalar in the caller's norm) and
    whether the step itself succeeded (its sub-solves converged, its values are physical);
    a failed step ends the iteration with the previous iterate kept. ``loop`` is ``None``
    (``lax.while_loop``: jittable) or :func:`python_while`.

    **Returns:** ``(x, steps, result)``: ``successful``, ``max_steps`` or ``step_failed``.
    """

    def cond(s):
        _, k, move, ok = s
        return (k < max_steps) & (move > tol) & ok

    def body(s):
        x, k, _, _ = s
        x_new, move, ok = step(x)
        x = jax.tree_util.tree_map(lambda a, b: jnp.where(ok, a, b), x_new, x)
        return x, k + 1, move, ok

    loop = jax.lax.while_loop if loop is None else loop
    x, k, move, ok = loop(cond, body, (x0, jnp.asarray(0), jnp.asarray(jnp.inf),
                                       jnp.asarray(True)))
    result = RESULTS.where(~ok, RESULTS.step_failed,
                           RESULTS.where(move <= tol, RESULTS.successful, RESULTS.max_steps))
    return x, k, result
