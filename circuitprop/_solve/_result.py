"""Result codes and the solution record shared by every solver."""

from __future__ import annotations

import equinox as eqx
from jaxtyping import Array, Float, Int

SUCCESS = 0
MAX_STEPS = 1
NONFINITE = 2

MESSAGES = {
    SUCCESS: "converged",
    MAX_STEPS: "did not converge within the step limit",
    NONFINITE: "the iteration produced a non-finite value (NaN or inf)",
}


class Solution(eqx.Module):
    """A steady state: the unknowns, a result code, and work counters.

    - ``u``: the solved unknowns (reduced node voltages, or MNA vector).
    - ``result``: 0 converged, 1 step limit, 2 non-finite.
    - ``steps``: Newton iterations or implicit relaxation steps.
    - ``inner``: total Krylov iterations.
    """

    u: Float[Array, " n"]
    result: Int[Array, ""]
    steps: Int[Array, ""]
    inner: Int[Array, ""]
