"""Learning in physical networks: one engine, two kinds of equilibrium problem.

- :class:`EquilibriumProblem`: the interface every rule is written against; implemented by
  :class:`CircuitEquilibrium` (circuits) and :class:`EnergyEquilibrium` (any JAX energy,
  the engine behind :mod:`circuitprop.bilevel`).
- :func:`make_problem` / :func:`problem_from_experiment`: a deck wired for learning.
- :class:`RuleConfig` / :func:`rule_config` and :func:`sample_gradient`: the rules (ep with
  every estimator of :data:`ESTIMATORS` and ``holomorphic-N``, coupled, contrastive,
  agnostic, exact) on one sample.
- :func:`exact_gradient`, :func:`finite_difference`: the baselines.
- :class:`MeasurementModel`: ADC bits and noise between circuit and rule.
- :func:`gradcheck`: one sample's estimate against the exact gradient and finite differences.
- :func:`train`: train an experiment (``circuitprop train``).

See ``docs/learning.md``.
"""

from ._as_energy import CircuitPhysicalSystem as CircuitPhysicalSystem
from ._as_energy import circuit_agnostic_eta as circuit_agnostic_eta
from ._as_energy import circuit_energy_problem as circuit_energy_problem
from ._circuit import CircuitEquilibrium as CircuitEquilibrium
from ._circuit import CircuitPhysics as CircuitPhysics
from ._engine import EquilibriumProblem as EquilibriumProblem
from ._engine import Phase as Phase
from ._engine import Reading as Reading
from ._engine import homeostatic_step as homeostatic_step
from ._estimators import ESTIMATORS as ESTIMATORS
from ._estimators import LOSSES as LOSSES
from ._estimators import RULES as RULES
from ._estimators import combine as combine
from ._estimators import estimator_points as estimator_points
from ._exact import exact_gradient as exact_gradient
from ._exact import finite_difference as finite_difference
from ._exact import loss_at as loss_at
from ._generic import EnergyEquilibrium as EnergyEquilibrium
from ._generic import EnergyProblem as EnergyProblem
from ._gradcheck import GradCheck as GradCheck
from ._gradcheck import cosine as cosine
from ._gradcheck import gradcheck as gradcheck
from ._measure import MeasurementModel as MeasurementModel
from ._phases import TIGHT as TIGHT
from ._phases import Measurement as Measurement
from ._phases import Problem as Problem
from ._phases import cost as cost
from ._phases import make_problem as make_problem
from ._phases import measure as measure
from ._phases import problem_from_experiment as problem_from_experiment
from ._phases import solve_clamped as solve_clamped
from ._phases import solve_free as solve_free
from ._phases import solve_nudged as solve_nudged
from ._phases import solve_phase as solve_phase
from ._phases import values_for as values_for
from ._rules import RuleConfig as RuleConfig
from ._rules import RuleOutput as RuleOutput
from ._rules import rule_config as rule_config
from ._rules import sample_gradient as sample_gradient
from ._train import TrainResult as TrainResult
from ._train import train as train
