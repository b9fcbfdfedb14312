"""Learning rules: from phase measurements to a gradient estimate (one sample).

Every rule returns its update direction *as a gradient* (same sign convention as
``dL/dg``: the optimizer steps against it) together with the sample's loss and outputs.
The rules consume only :class:`~circuitprop.learn._phases.Measurement` s (drops across the
trainable resistors, output voltages), passed through a
:class:`~circuitprop.learn._measure.MeasurementModel`; none differentiates the energy with
respect to the conductances (``∂E/∂g_k = ½ ΔV_k²`` is read off the measured drop).

- ``ep``: equilibrium propagation with an estimator of :mod:`._estimators`. The free phase
  is solved first; nudged phases at ``b β`` follow, each warm-started from the previous
  phase on its side (0 → β → 2β …, and 0 → −β).
- ``coupled`` (Stern et al. 2021): free state, then the clamped state with every output
  held at ``o_F + η (y − o_F)``; estimate ``(1/η) [½ΔV_C² − ½ΔV_F²]``.
- ``contrastive``: ``coupled`` with ``η = 1`` (outputs clamped at the targets).
- ``agnostic`` (Scellier et al. 2022): homeostatic phase at β1, control ``u = θ + η ½ΔV²``,
  then θ and the state relax jointly at β2 (alternating: θ ← u − η ½ΔV²(s), s ← argmin);
  the estimate is ``−(θ_{t+1} − θ_t) / (η (β2 − β1))``, from measured θ only.
- ``exact``: implicit differentiation (:func:`._exact.exact_gradient`), the baseline.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array

from .._errors import ExperimentError
from ._estimators import ESTIMATORS, combine
from ._exact import exact_gradient
from ._measure import MeasurementModel
from ._phases import (
    Problem,
    cost,
    measure,
    solve_clamped,
    solve_free,
    solve_nudged,
    solve_warm,
    values_for,
)

__all__ = ["RuleConfig", "RuleOutput", "sample_gradient", "RULES", "rule_config"]

RULES = ("ep", "coupled", "contrastive", "agnostic", "exact")

#: agnostic EP: the joint theta/state relaxation counts as settled when its last step is at
#: most this fraction of the total parameter displacement (ideal measurements).
AGNOSTIC_RTOL = 1e-3


class RuleConfig(eqx.Module):
    """A learning rule and its constants.

    - ``rule``: one of :data:`RULES`; ``estimator``: an EP estimator name.
    - ``beta``: nudging strength (siemens for mse on voltages).
    - ``eta``: coupled-learning clamp fraction, or agnostic-EP spring compliance.
    - ``measurement``: the measurement model; ``adjoint``: ``cg`` or ``rbp`` for ``exact``.
    - ``agnostic_iters``: alternations of the agnostic clamped phase.
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
    agnostic_iters: int = eqx.field(static=True, default=8)
    warm: bool = eqx.field(static=True, default=False)


def rule_config(rule="ep", estimator="centered", beta=1e-6, eta=None, measurement=None,
                loss="mse", adjoint="cg") -> RuleConfig:
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
    if estimator not in ESTIMATORS:
        raise ExperimentError(f"unknown estimator {estimator!r}; one of {', '.join(ESTIMATORS)}")
    if not (beta > 0):
        raise ExperimentError(f"beta must be > 0 (got {beta!r})")
    if rule in ("coupled", "contrastive") and loss != "mse":
        raise ExperimentError(f"rule {rule!r} clamps outputs towards target voltages: "
                              "it needs loss 'mse'")
    if rule == "agnostic" and estimator.startswith("forward"):
        raise ExperimentError("rule 'agnostic' takes estimator positive, negative or centered")
    if rule == "coupled" and not (eta <= 1):
        raise ExperimentError(f"coupled learning needs 0 < eta <= 1 (got {eta!r})")
    return RuleConfig(rule=rule, estimator=estimator, beta=float(beta),
                      eta=1.0 if rule == "contrastive" else (None if eta is None else float(eta)),
                      measurement=measurement or MeasurementModel(), adjoint=adjoint)


class RuleOutput(eqx.Module):
    """One sample's result: ``grad`` (the rule's estimate of dL/dg), ``loss`` and ``out``
    (free phase), ``ok`` (every phase converged), ``u`` (free state, for warm starts)."""

    grad: Array
    loss: Array
    out: Array
    ok: Array
    u: Array


def _ep(prob: Problem, cfg: RuleConfig, values, y, key, free, m0):
    points, _ = ESTIMATORS[cfg.estimator]
    dE = {0.0: m0.energy_grad()}
    ok = m0.ok
    keys = jax.random.split(key, len(points) + 1)
    for direction in (1.0, -1.0):
        u = free.u
        side = sorted((b for b in points if b * direction > 0), key=abs)
        for j, b in enumerate(side):
            sol = solve_nudged(prob, values, b * cfg.beta, y, u, cfg.warm)
            u = sol.u
            m = cfg.measurement(measure(prob, prob.circuit, values, sol),
                                keys[points.index(b)])
            dE[b] = m.energy_grad()
            ok = ok & m.ok
    return combine(cfg.estimator, cfg.beta, dE), ok


def _coupled(prob: Problem, cfg: RuleConfig, values, y, key, m0):
    target = m0.out + cfg.eta * (y - m0.out)
    sol, cv = solve_clamped(prob, values, target)
    mc = cfg.measurement(measure(prob, prob.clamped, cv, sol), key)
    return (mc.energy_grad() - m0.energy_grad()) / cfg.eta, m0.ok & mc.ok


#: automatic agnostic-EP compliance: eta = AGNOSTIC_ETA_SCALE * min_k g_k / max_k dV_k^2.
#: The joint relaxation of conductances and state contracts only while eta times the
#: sensitivity d(dV^2/2)/dg (about dV^2/g) stays below 1; this keeps it near 1e-3.
AGNOSTIC_ETA_SCALE = 1e-3


def agnostic_eta(theta, dv):
    """The default spring compliance (S/V²) of agnostic EP, from measured drops ``dv``."""
    return AGNOSTIC_ETA_SCALE * jnp.min(theta) / jnp.maximum(jnp.max(dv * dv), 1e-12)


def _agnostic(prob: Problem, cfg: RuleConfig, theta, x, y, key, free):
    b1, b2 = {"positive": (0.0, 1.0), "negative": (-1.0, 0.0),
              "centered": (-0.5, 0.5)}[cfg.estimator]
    b1, b2 = b1 * cfg.beta, b2 * cfg.beta
    values = values_for(prob, theta, x)
    k1, k2 = jax.random.split(key)
    s1 = free if b1 == 0.0 else solve_nudged(prob, values, b1, y, free.u)
    m1 = cfg.measurement(measure(prob, prob.circuit, values, s1), k1)
    # the control knob holds theta_t in place at beta1: u_t = theta_t + eta * dE/dtheta
    e1 = m1.energy_grad()
    eta = agnostic_eta(theta, m1.dv) if cfg.eta is None else cfg.eta

    def body(carry, k):
        delta, u, ok, _ = carry
        vals = values_for(prob, theta + delta, x)
        s = solve_nudged(prob, vals, b2, y, u)
        m = cfg.measurement(measure(prob, prob.circuit, vals, s), k)
        # theta_{t+1} = u_t - eta * dE/dtheta(s2) = theta_t + eta (e1 - e2)
        new = eta * (e1 - m.energy_grad())
        return (new, s.u, ok & m.ok, jnp.linalg.norm(new - delta)), None

    init = (jnp.zeros_like(theta), s1.u, m1.ok & (s1.result == 0), jnp.asarray(0.0, theta.dtype))
    (delta, _, ok, step), _ = jax.lax.scan(body, init,
                                           jax.random.split(k2, cfg.agnostic_iters))
    # The alternation contracts at rate ~ eta * ||d(dE/dtheta)/dtheta|| (the joint energy has
    # an equilibrium only while that is < 1): a relaxation that blows up, drives a
    # conductance non-positive or (ideal measurements) is still moving is not converged.
    ok = ok & jnp.all(jnp.isfinite(delta)) & jnp.all(theta + delta > 0)
    if cfg.measurement.is_ideal:
        ok = ok & (step <= AGNOSTIC_RTOL * jnp.linalg.norm(delta))
    return -delta / (eta * (b2 - b1)), ok


def sample_gradient(prob: Problem, cfg: RuleConfig, theta, x, y, key, u0=None) -> RuleOutput:
    """The rule's gradient estimate for one sample (jittable, vmappable).

    **Arguments:**

    - ``prob``: the :class:`Problem`; ``cfg``: the :class:`RuleConfig`.
    - ``theta``: trainable conductances (S); ``x``: encoded input source values;
      ``y``: target output voltages.
    - ``key``: a JAX key for the measurement model.
    - ``u0``: warm start of the free phase (e.g. the sample's state from the last epoch).
    """
    values = values_for(prob, theta, x)
    if cfg.rule == "exact":
        g, loss, o, ok, u = exact_gradient(prob, theta, x, y, cfg.adjoint, u0, cfg.warm)
        return RuleOutput(grad=g, loss=loss, out=o, ok=ok, u=u)
    k0, k1 = jax.random.split(key)
    free = solve_warm(prob, values, u0) if (cfg.warm and u0 is not None) else \
        solve_free(prob, values, u0)
    m_true = measure(prob, prob.circuit, values, free)
    m0 = cfg.measurement(m_true, k0)
    loss = cost(prob.loss, m_true.out, y)
    if cfg.rule == "ep":
        g, ok = _ep(prob, cfg, values, y, k1, free, m0)
    elif cfg.rule in ("coupled", "contrastive"):
        g, ok = _coupled(prob, cfg, values, y, k1, m0)
    else:
        g, ok = _agnostic(prob, cfg, theta, x, y, k1, free)
    return RuleOutput(grad=g, loss=loss, out=m_true.out, ok=ok & (free.result == 0), u=free.u)
