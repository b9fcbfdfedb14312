"""The result enumeration and the solution record shared by every solver.

:class:`RESULTS` follows the lineax/optimistix habit: its members *are* their messages,
results stay JAX arrays under ``jit`` and ``vmap`` (``RESULTS.where(pred, a, b)``), and the
host turns them into text with :func:`message`.
"""

from __future__ import annotations

import equinox as eqx
import numpy as np
from jaxtyping import Array, Float, Int


class RESULTS(eqx.Enumeration):
    """How a solve ended. Every member but ``successful`` is a failure."""

    successful = ""
    max_steps = "did not converge within the step limit"
    nonfinite = "the iteration produced a non-finite value (NaN or inf)"
    linear_breakdown = ("the linear solver broke down (conjugate gradients met a direction of "
                        "non-positive curvature: the linearised circuit is not positive definite)")
    krylov_breakdown = ("GMRES broke down (its Krylov space stopped growing before the residual "
                        "did: without a preconditioner the non-symmetric system is too hard; "
                        "MnaOptions.dense_limit above the unknowns solves it by LU)")
    linear_max_steps = "the linear solver did not reach its tolerance within its iteration cap"
    singular = "the linearised system is singular"
    stagnation = "the iteration stagnated (no step reduces the residual)"
    step_failed = ("a relaxation step failed (a sub-solve did not converge, or a value left "
                   "its physical range)")


def codes(result) -> np.ndarray:
    """The integer codes of a (possibly batched) result, as a NumPy array."""
    return np.asarray(result._value)


def message(result, index: int = 0) -> str:
    """The message of one entry of a (possibly batched) result (``"converged"`` on success)."""
    code = int(codes(result).reshape(-1)[index])
    return RESULTS._index_to_message[code] or "converged"


class Solution(eqx.Module):
    """A steady state: the unknowns, how the solve ended, and work counters.

    - ``u``: the solved unknowns (reduced node voltages, or the MNA vector).
    - ``result``: a :class:`RESULTS` member.
    - ``steps``: Newton iterations or implicit relaxation steps.
    - ``inner``: total linear-solver (Krylov) iterations.
    """

    u: Float[Array, " n"]
    result: RESULTS
    steps: Int[Array, ""]
    inner: Int[Array, ""]

    @property
    def ok(self):
        """``True`` where the solve converged (a boolean array)."""
        return self.result == RESULTS.successful
