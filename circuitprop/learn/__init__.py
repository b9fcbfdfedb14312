"""Learning in physical networks: phases, measurements, rules, exact baselines, training.

- :func:`make_problem` / :func:`problem_from_experiment`: a deck wired for learning.
- :class:`RuleConfig` / :func:`rule_config` and :func:`sample_gradient`: the rules (ep with
  its estimators, coupled, contrastive, agnostic, exact) on one sample.
- :func:`exact_gradient`, :func:`finite_difference`: the baselines.
- :class:`MeasurementModel`: ADC bits and noise between circuit and rule.
- :func:`gradcheck`: one sample's estimate against the exact gradient and finite differences.
- :func:`train`: train an experiment (``circuitprop train``).

See ``docs/learning.md``.
"""

from ._estimators import ESTIMATORS as ESTIMATORS, combine as combine
from ._exact import (
    adjoint as adjoint,
    exact_gradient as exact_gradient,
    finite_difference as finite_difference,
    loss_at as loss_at,
)
from ._gradcheck import GradCheck as GradCheck, cosine as cosine, gradcheck as gradcheck
from ._measure import MeasurementModel as MeasurementModel
from ._phases import (
    TIGHT as TIGHT,
    Measurement as Measurement,
    Problem as Problem,
    cost as cost,
    make_problem as make_problem,
    measure as measure,
    problem_from_experiment as problem_from_experiment,
    solve_clamped as solve_clamped,
    solve_free as solve_free,
    solve_nudged as solve_nudged,
    values_for as values_for,
)
from ._rules import (
    RULES as RULES,
    RuleConfig as RuleConfig,
    RuleOutput as RuleOutput,
    rule_config as rule_config,
    sample_gradient as sample_gradient,
)


def train(*args, **kwargs):
    """Train an experiment; see :func:`circuitprop._train.train`."""
    from .._train import train as _train

    return _train(*args, **kwargs)
