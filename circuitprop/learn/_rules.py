"""Learning rules on circuits: from phase measurements to a gradient estimate (one sample).

Every rule returns its update direction *as a gradient* (same sign convention as
``dL/dg``: the optimizer steps against it) together with the sample's loss and outputs.
The rules are those of the learning engine (:mod:`._engine`) on a
:class:`~._circuit.CircuitEquilibrium`; they consume only what a phase lets hardware measure
(drops across the trainable resistors, output voltages) through a
:class:`~._measure.MeasurementModel`.

- ``ep``: equilibrium propagation with an estimator of :mod:`._estimators` (positive,
  negative, centered, forward-2..5, holomorphic-N).
- ``coupled`` (Stern et al. 2021) and ``contrastive`` (``η = 1``): clamped outputs.
- ``agnostic`` (Scellier et al. 2022): the homeostatic feedback loop on measured
  conductances, then the clamped phase (:func:`._engine.homeostatic_step` on a
  :class:`~._circuit.CircuitPhysics`); the estimate is ``−(θ_{t+1} − θ_t)/(η(β2 − β1))``.
- ``exact``: implicit differentiation (:func:`._engine.implicit_gradient`), the baseline.

A power penalty ``λ`` (``[learning] power_penalty``) adds ``λ P`` to the cost, ``P`` the power
the free phase dissipates. Every rule adds ``λ ΔV_k²`` (measured in the free phase) to its
estimate: ``dP/dg_k = ΔV_k²`` exactly for resistors and voltage sources (at equilibrium
``P = 2E`` and ``dE/dg_k = ½ΔV_k²``); with diodes it is the gradient of ``2E``, the
co-content the circuit minimises, a local proxy of the dissipation.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array

from .._errors import ExperimentError
from ._circuit import CircuitEquilibrium, CircuitPhysics
from ._engine import (
    Phase,
    coupled_estimate,
    ep_batch_estimate,
    ep_estimate,
    homeostatic_step,
    implicit_gradient,
)
from ._estimators import (
    ADJOINTS,
    AGNOSTIC_VARIANTS,
    LOSSES,
    RULES,
    agnostic_phases,
    estimator_names,
    estimator_points,
    is_estimator,
)
from ._measure import MeasurementModel
from ._mna import equilibrium
from ._phases import Problem

__all__ = ["RuleConfig", "RuleOutput", "sample_gradient", "RULES", "rule_config", "agnostic_eta",
           "check_rule"]


class RuleConfig(eqx.Module):
    """A learning rule and its constants.

    - ``rule``: one of :data:`RULES`; ``estimator``: an EP estimator name.
    - ``beta``: nudging strength (siemens for mse on voltages).
    - ``eta``: coupled-learning clamp fraction, or agnostic-EP spring compliance.
    - ``measurement``: the measurement model; ``adjoint``: ``cg`` or ``rbp`` for ``exact``.
    - ``agnostic_iters``: cap on the agnostic homeostatic feedback loop's relaxations.
    - ``power_penalty``: ``λ`` of the cost term ``λ P`` (W⁻¹, in units of the loss).
    - ``warm``: phases keep the diode junction states of their warm start (training, where
      every free phase starts from the sample's previous state); ``False`` re-initialises
      junctions like SPICE (gradcheck).
    """

    rule: str = eqx.field(static=True, default="ep")
    estimator: str = eqx.field(static=True, default="centered")
    beta: float = eqx.field(static=True, default=1e-6)
    eta: float | None = eqx.field(static=True, default=0.1)
    measurement: MeasurementModel = MeasurementModel()
    adjoint: str = eqx.field(static=True, default="cg")
    agnostic_iters: int = eqx.field(static=True, default=30)
    warm: bool = eqx.field(static=True, default=False)
    power_penalty: float = eqx.field(static=True, default=0.0)


def rule_config(rule="ep", estimator="centered", beta=1e-6, eta=None, measurement=None,
                loss="mse", adjoint="cg", power_penalty=0.0) -> RuleConfig:
    """A checked :class:`RuleConfig` (raises :class:`ExperimentError` for bad combinations).

    ``eta=None`` takes the rule's default: 0.1 for coupled learning, and for agnostic EP a
    compliance chosen from the free phase's measurements (see :data:`AGNOSTIC_ETA_SCALE`).
    """
    if eta is None and rule == "coupled":
        eta = 0.1
    if eta is not None and not (eta > 0):
        raise ExperimentError(f"eta must be > 0 (got {eta!r})")
    if rule not in RULES:
        raise ExperimentError(f"unknown rule {rule!r}; one of {', '.join(RULES)}")
    if not is_estimator(estimator):
        raise ExperimentError(f"unknown estimator {estimator!r}; one of {estimator_names()}")
    if loss not in LOSSES:
        raise ExperimentError(f"unknown loss {loss!r}; one of {', '.join(LOSSES)}")
    if adjoint not in ADJOINTS:
        raise ExperimentError(f"unknown adjoint {adjoint!r}; one of {', '.join(ADJOINTS)}")
    if not (beta > 0):
        raise ExperimentError(f"beta must be > 0 (got {beta!r})")
    if not (power_penalty >= 0) or power_penalty == float("inf"):
        raise ExperimentError(f"power_penalty must be a finite number >= 0 (got {power_penalty!r})")
    if rule in ("coupled", "contrastive") and loss != "mse":
        raise ExperimentError(f"rule {rule!r} clamps outputs towards target voltages: "
                              "it needs loss 'mse'")
    if rule == "agnostic" and estimator not in AGNOSTIC_VARIANTS:
        raise ExperimentError("rule 'agnostic' takes estimator positive, negative or centered")
    if rule == "coupled" and not (eta <= 1):
        raise ExperimentError(f"coupled learning needs 0 < eta <= 1 (got {eta!r})")
    return RuleConfig(rule=rule, estimator=estimator, beta=float(beta),
                      eta=1.0 if rule == "contrastive" else (None if eta is None else float(eta)),
                      measurement=measurement or MeasurementModel(), adjoint=adjoint,
                      power_penalty=float(power_penalty))


def phases_per_step(cfg: RuleConfig) -> int | None:
    """How many phases the rule solves per sample and step: the free phase plus the
    nudged (or clamped) ones; ``None`` for rules whose count is not fixed (agnostic EP's
    feedback loop, implicit differentiation)."""
    if cfg.rule == "ep":
        points = estimator_points(cfg.estimator)[0]
        return 1 + sum(1 for b in points if b != 0)
    if cfg.rule in ("coupled", "contrastive"):
        return 2
    return None


class RuleOutput(eqx.Module):
    """One sample's result: ``grad`` (the rule's estimate of dL/dg), ``loss`` and ``out``
    (free phase), ``ok`` (every phase converged), ``u`` (free state, for warm starts)."""

    grad: Array
    loss: Array
    out: Array
    ok: Array
    u: Array


#: automatic agnostic-EP compliance: eta = AGNOSTIC_ETA_SCALE * min_k g_k / max_k dV_k^2.
#: The joint relaxation of conductances and state contracts only while eta times the
#: sensitivity d(dV^2/2)/dg (about dV^2/g) stays below 1; this keeps it near 1e-3.
AGNOSTIC_ETA_SCALE = 1e-3

#: agnostic EP: the homeostatic feedback loop stops when the measured conductances are θ_t
#: to this fraction of the largest (the gradient is then evaluated that close to θ_t; the
#: update itself is measured against the θ the loop reached)
FEEDBACK_RTOL = 1e-12


def agnostic_eta(theta, dv):
    """The default spring compliance (S/V²) of agnostic EP, from measured drops ``dv``."""
    return AGNOSTIC_ETA_SCALE * jnp.min(theta) / jnp.maximum(jnp.max(dv * dv), 1e-12)


def _agnostic(eq: CircuitEquilibrium, cfg: RuleConfig, theta, x, y, free, dv_free):
    b1, b2 = agnostic_phases(cfg.estimator, cfg.beta)
    eta = agnostic_eta(theta, dv_free) if cfg.eta is None else jnp.asarray(cfg.eta)
    physics = CircuitPhysics(eq=eq, x=x, y=y, eta=eta, warm=cfg.warm)
    tol = FEEDBACK_RTOL * jnp.max(jnp.abs(theta))
    h = homeostatic_step(physics.relax, physics.measure_theta, (free.state, theta), theta,
                         b1, b2, eta, feedback_iters=cfg.agnostic_iters, feedback_tol=tol)
    return h.grad, h.ok & free.ok


def check_rule(prob: Problem, cfg: RuleConfig) -> None:
    """Refuse rules the problem's outputs cannot run: current outputs are nudged by
    shifting their readout sources from the free phase (``ep``, ``exact``); they cannot be
    clamped (coupled, contrastive) nor nudged inside agnostic EP's joint relaxation."""
    if prob.current and cfg.rule not in ("ep", "exact"):
        raise ExperimentError(f"rule {cfg.rule!r} cannot learn current outputs (i(...)): "
                              "they are nudged by shifting their readout sources, which "
                              "rules 'ep' and 'exact' do; use one of those")
    if prob.mna is not None:
        what = ("a circuit without an energy (MOSFETs or controlled sources)"
                if prob.train_v_idx.shape[0] == 0 else "trainable V sources")
        if cfg.rule not in ("coupled", "contrastive", "exact"):
            raise ExperimentError(f"rule {cfg.rule!r} nudges an energy; {what} learn by "
                                  "rule 'coupled' or 'contrastive' (or 'exact', the "
                                  "adjoint baseline)")
        if not (cfg.measurement is None or cfg.measurement.is_ideal) and \
                prob.train_v_idx.shape[0]:
            raise ExperimentError("[measurement] noise applies to voltage drops across "
                                  "resistors; trainable V sources are measured ideally")
        if cfg.power_penalty:
            raise ExperimentError(f"power_penalty needs an energy (dP/dg = ΔV²); {what} "
                                  "have none")


def sample_gradient(prob: Problem, cfg: RuleConfig, theta, x, y, key, u0=None) -> RuleOutput:
    """The rule's gradient estimate for one sample (jittable, vmappable).

    **Arguments:**

    - ``prob``: the :class:`Problem`; ``cfg``: the :class:`RuleConfig`.
    - ``theta``: trainable conductances (S); ``x``: encoded input source values;
      ``y``: target output voltages.
    - ``key``: a JAX key for the measurement model.
    - ``u0``: warm start of the free phase (e.g. the sample's state from the last epoch).
    """
    check_rule(prob, cfg)
    eq = equilibrium(prob)
    free = eq.solve(theta, x, y, None, u0, cfg.warm and u0 is not None)
    true = eq.measure(theta, x, free.state)
    loss = eq.loss(theta, x, free.state, y)
    if cfg.rule == "exact":
        g, ok, _ = implicit_gradient(eq, theta, x, y, free.state, method=cfg.adjoint)
        if cfg.power_penalty:
            g = g + 2.0 * cfg.power_penalty * true.dE
        return RuleOutput(grad=g, loss=loss, out=true.out, ok=ok & free.ok, u=free.state)
    k0, k1 = jax.random.split(key)
    # an ideal measurement reads what is true: measure once
    read = true if cfg.measurement is None else eq.measure(theta, x, free.state,
                                                             cfg.measurement, k0)
    if cfg.rule == "ep":
        g, ok = ep_estimate(eq, theta, x, y, cfg.beta, cfg.estimator, free, read.dE,
                            warm=cfg.warm, model=cfg.measurement, key=k1)
    elif cfg.rule in ("coupled", "contrastive"):
        g, ok = coupled_estimate(eq, theta, x, y, cfg.eta, read, free, model=cfg.measurement,
                                 key=k1)
    else:
        dv = jnp.sqrt(2.0 * read.dE)
        g, ok = _agnostic(eq, cfg, theta, x, y, free, dv)
    if cfg.power_penalty:  # dP/dg_k = ΔV_k², read in the free phase
        g = g + 2.0 * cfg.power_penalty * read.dE
    ok = ok & free.ok & jnp.all(jnp.isfinite(g))
    return RuleOutput(grad=g, loss=loss, out=true.out, ok=ok, u=free.state)


def batch_reduces(prob: Problem, cfg: RuleConfig) -> bool:
    """Whether :func:`batch_gradient` applies: EP with a real estimator and ideal
    measurements on a circuit whose trainable resistors run through dense blocks."""
    lay = getattr(prob.circuit, "layout", None)
    ideal = cfg.measurement is None or cfg.measurement.is_ideal
    real = not any(isinstance(b, complex) for b in estimator_points(cfg.estimator)[0])
    return (cfg.rule == "ep" and ideal and real and prob.train_slice is not None
            and lay is not None and bool(lay.blocks))


def batch_gradient(prob: Problem, cfg: RuleConfig, theta, xs, ys, weights, us):
    """``Σ_s weights_s · (EP estimate of sample s)`` over a batch (``weights``: each sample's
    share of the mean), reduced on the dense blocks as matmuls (:func:`ep_batch_estimate`):
    ``(grad, loss, out, ok, u)`` with per-sample loss, outputs, convergence and free state.
    Only where :func:`batch_reduces`."""
    eq = CircuitEquilibrium(prob=prob)

    def free_phase(x, y, u0):
        free = eq.solve(theta, x, y, None, u0, cfg.warm and u0 is not None)
        return free, eq.outputs(theta, x, free.state), eq.loss(theta, x, free.state, y)

    frees, out, loss = jax.vmap(free_phase)(xs, ys, us)
    grad, ok = ep_batch_estimate(eq, theta, xs, ys, cfg.beta, cfg.estimator,
                                 Phase(state=frees.state, ok=frees.ok),
                                 weights, warm=cfg.warm, free_coef=2.0 * cfg.power_penalty)
    return grad, loss, out, ok & frees.ok, frees.state
