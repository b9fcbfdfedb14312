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

from ._bilevel_client import CircuitPhysicalSystem as CircuitPhysicalSystem
from ._bilevel_client import circuit_agnostic_eta as circuit_agnostic_eta
from ._bilevel_client import circuit_energy_problem as circuit_energy_problem
from ._estimators import ESTIMATORS as ESTIMATORS
from ._estimators import combine as combine
from ._exact import (
    adjoint as adjoint,
)
from ._exact import (
    exact_gradient as exact_gradient,
)
from ._exact import (
    finite_difference as finite_difference,
)
from ._exact import (
    loss_at as loss_at,
)
from ._gradcheck import GradCheck as GradCheck
from ._gradcheck import cosine as cosine
from ._gradcheck import gradcheck as gradcheck
from ._measure import MeasurementModel as MeasurementModel
from ._phases import (
    TIGHT as TIGHT,
)
from ._phases import (
    Measurement as Measurement,
)
from ._phases import (
    Problem as Problem,
)
from ._phases import (
    cost as cost,
)
from ._phases import (
    make_problem as make_problem,
)
from ._phases import (
    measure as measure,
)
from ._phases import (
    problem_from_experiment as problem_from_experiment,
)
from ._phases import (
    solve_clamped as solve_clamped,
)
from ._phases import (
    solve_free as solve_free,
)
from ._phases import (
    solve_nudged as solve_nudged,
)
from ._phases import (
    values_for as values_for,
)
from ._rules import (
    RULES as RULES,
)
from ._rules import (
    RuleConfig as RuleConfig,
)
from ._rules import (
    RuleOutput as RuleOutput,
)
from ._rules import (
    rule_config as rule_config,
)
from ._rules import (
    sample_gradient as sample_gradient,
)


def train(*args, **kwargs):
    """Train an experiment; see :func:`circuitprop._train.train`."""
    from .._train import train as _train

    return _train(*args, **kwargs)
