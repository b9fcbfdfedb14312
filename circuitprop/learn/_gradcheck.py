"""Compare a learning rule's estimate with the exact gradient and finite differences."""

from __future__ import annotations

import dataclasses

import jax
import numpy as np

from .._errors import ConvergenceError, ExperimentError
from ..experiment import load_experiment
from ._exact import exact_gradient, finite_difference
from ._measure import from_settings
from ._phases import deck_parameters, problem_from_experiment
from ._rules import rule_config, sample_gradient

__all__ = ["gradcheck", "GradCheck", "cosine"]


def cosine(a, b) -> float:
    """The cosine of the angle between two gradients; NaN when either is zero (a zero
    gradient has no direction to agree with)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0:
        return float("nan")
    return float(np.dot(a, b) / (na * nb))


def _relative(a, ref) -> float:
    ref = np.asarray(ref, dtype=np.float64)
    n = np.linalg.norm(ref)
    if n == 0:
        return float("nan")
    return float(np.linalg.norm(np.asarray(a, dtype=np.float64) - ref) / n)


def _json_number(v: float):
    """NaN (undefined) as JSON ``null``."""
    return None if not np.isfinite(v) else v


@dataclasses.dataclass
class GradCheck:
    """The result of :func:`gradcheck` (see ``to_json``)."""

    parameters: list[str]
    conductances: list[float]
    loss: float
    exact: list[float]
    estimate: list[float]
    finite_difference: list[float]
    rule: str
    estimator: str
    beta: float
    sample: int
    outputs: list[float]
    targets: list[float]

    @property
    def cosine_exact(self) -> float:
        return cosine(self.estimate, self.exact)

    @property
    def cosine_fd(self) -> float:
        return cosine(self.estimate, self.finite_difference)

    @property
    def relative_error(self) -> float:
        """‖estimate − finite differences‖ / ‖finite differences‖ (NaN if they are zero)."""
        return _relative(self.estimate, self.finite_difference)

    @property
    def relative_error_exact(self) -> float:
        return _relative(self.estimate, self.exact)

    @property
    def zero_exact(self) -> bool:
        """The exact gradient is zero: this sample's loss is stationary in every trainable
        conductance (nothing to compare directions with)."""
        return not np.any(np.asarray(self.exact))

    def to_json(self) -> dict:
        return {
            "parameters": self.parameters,
            "conductances": self.conductances,
            "loss": self.loss,
            "exact": self.exact,
            "estimate": self.estimate,
            "finite_difference": self.finite_difference,
            "cosine_exact": _json_number(self.cosine_exact),
            "cosine_fd": _json_number(self.cosine_fd),
            "cosine_exact_fd": _json_number(cosine(self.exact, self.finite_difference)),
            "relative_error": _json_number(self.relative_error),
            "relative_error_exact": _json_number(self.relative_error_exact),
            "exact_gradient_is_zero": self.zero_exact,
            "rule": self.rule,
            "estimator": self.estimator,
            "beta": self.beta,
            "sample": self.sample,
            "outputs": self.outputs,
            "targets": self.targets,
            "units": {"loss": "V^2 (mse) or nats (cross-entropy)", "gradient": "loss per S"},
        }


def gradcheck(experiment, sample: int = 0, rule: str | None = None,
              estimator: str | None = None, beta: float | None = None,
              eta: float | None = None, split: str = "train") -> GradCheck:
    """Gradients of one data sample's loss w.r.t. the trainable conductances of the deck
    (as written in the netlist): the rule's estimate, the exact gradient (implicit
    differentiation) and central finite differences.

    **Arguments:**

    - ``experiment``: an :class:`~circuitprop.experiment.Experiment` or its path.
    - ``sample``: index into the training split (``split="test"`` for the test split).
    - ``rule``, ``estimator``, ``beta``, ``eta``: override the experiment's ``[learning]``.

    **Raises:** :class:`ExperimentError` for a bad sample index or settings,
    :class:`ConvergenceError` when a phase does not converge.
    """
    if not hasattr(experiment, "learning"):
        experiment = load_experiment(experiment)
    learn = experiment.learning
    rule = rule or learn.rule
    estimator = estimator or learn.estimator
    beta = float(beta if beta is not None else learn.beta)
    eta = eta if eta is not None else learn.eta_for(rule)
    prob, pinfo = problem_from_experiment(experiment)
    ds = experiment.load_data()
    xs = ds.x_train if split == "train" else ds.x_test
    ys = ds.y_train if split == "train" else ds.y_test
    if not (0 <= sample < len(xs)):
        raise ExperimentError(f"{experiment.path}: sample {sample} out of range "
                              f"(the {split} split has {len(xs)} samples)")
    x = np.asarray(experiment.encode_inputs(xs[sample : sample + 1])[0], dtype=np.float64)
    y = np.asarray(experiment.encode_targets(ys[sample : sample + 1], ds.n_classes)[0],
                   dtype=np.float64)
    cfg = rule_config(rule, estimator, beta, eta, from_settings(experiment.measurement),
                      learn.loss)
    theta = deck_parameters(prob)
    key = jax.random.PRNGKey(experiment.measurement.seed)
    ex = jax.jit(lambda p, t, a, b: exact_gradient(p, t, a, b))(prob, theta, x, y)
    g_ex, loss, out, ok, _ = ex
    if not bool(ok):
        raise ConvergenceError(f"{experiment.path}: the free phase or the adjoint solve of sample "
                               f"{sample} did not converge (exact gradient)")
    est = jax.jit(lambda p, t, a, b, k: sample_gradient(p, cfg, t, a, b, k))(prob, theta, x, y, key)
    if not bool(est.ok):
        if rule == "agnostic":
            raise ConvergenceError(
                f"{experiment.path}: the agnostic joint parameter/state relaxation of sample "
                f"{sample} did not settle (agnostic_eta "
                f"{'auto' if eta is None else format(eta, 'g')} S/V^2): it contracts only while eta times "
                "the sensitivity of 1/2 dV^2 to the conductances is well below 1 "
                "(eta << g/dV^2, e.g. 1e-6 for mS conductances and volt drops)")
        raise ConvergenceError(
            f"{experiment.path}: a {rule} phase of sample {sample} did not converge "
            f"(beta {beta:g}; a negative nudge can make the energy unbounded)")
    fd, fd_ok = jax.jit(finite_difference)(prob, theta, x, y)
    if not bool(fd_ok):
        raise ConvergenceError(f"{experiment.path}: a finite-difference re-solve did not converge")
    f = lambda a: [float(v) for v in np.asarray(a)]  # noqa: E731
    return GradCheck(parameters=pinfo.parameters, conductances=f(theta), loss=float(loss),
                     exact=f(g_ex), estimate=f(est.grad), finite_difference=f(fd), rule=rule,
                     estimator=estimator, beta=beta, sample=sample, outputs=f(out),
                     targets=f(y))
