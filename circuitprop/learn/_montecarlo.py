"""Monte Carlo robustness of a trained network: its test set on perturbed copies.

Each run draws, from its own seed, what fabrication and time do to the trained
conductances: a log-normal device-to-device factor ``exp(σξ)`` per device (``variation``),
a fraction of devices stuck at ``g_min`` (``stuck_off``), and drift ``g·(t / 1 s)^(−ν)``
(``drift_t``, ``ν`` from ``[device] drift_nu``). All runs of a chunk and all test samples
are solved in one compiled, vmapped call.
"""

from __future__ import annotations

import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from .._errors import ConvergenceError, ExperimentError
from ..experiment import load_experiment
from ..netlist import load
from ._exact import loss_at
from ._phases import problem_from_experiment
from ._train import TRAIN_OPTIONS

__all__ = ["montecarlo", "summary"]

#: Runs solved together in one call (memory: runs × test samples × unknowns).
RUN_CHUNK = 16


def summary(values) -> dict[str, float]:
    """``mean, std, min, p05, p50, p95, max`` of a list of numbers."""
    a = np.asarray(values, dtype=np.float64)
    return {"mean": float(a.mean()), "std": float(a.std()), "min": float(a.min()),
            "p05": float(np.percentile(a, 5)), "p50": float(np.percentile(a, 50)),
            "p95": float(np.percentile(a, 95)), "max": float(a.max())}


def perturbations(n_runs: int, n_dev: int, variation: float, stuck_off: float, seed: int):
    """``(factors, stuck)``: per run and device, the variation factor and whether the device
    is stuck at ``g_min`` (exactly ``round(stuck_off·n_dev)`` per run)."""
    factors = np.ones((n_runs, n_dev))
    stuck = np.zeros((n_runs, n_dev), dtype=bool)
    n_stuck = int(round(stuck_off * n_dev))
    for r in range(n_runs):
        rng = np.random.default_rng([seed, r])
        if variation:
            factors[r] = np.exp(variation * rng.standard_normal(n_dev))
        if n_stuck:
            stuck[r, rng.permutation(n_dev)[:n_stuck]] = True
    return factors, stuck


def montecarlo(experiment, netlist, *, runs: int, variation: float = 0.0,
               stuck_off: float = 0.0, drift_t: float | None = None, seed: int = 0,
               plot: str | None = None) -> dict:
    """Evaluate the experiment's test set on ``runs`` perturbed copies of ``netlist``.

    **Returns:** ``{"runs", "settings", "accuracy": summary (classification), "loss":
    summary, "per_run": [{"accuracy", "loss"}...]}``. ``variation = 0`` with no stuck
    devices and no drift reproduces the unperturbed network's figures exactly.

    **Raises:** :class:`ExperimentError` for bad settings, :class:`ConvergenceError` when a
    perturbed copy does not solve a test sample (naming the run and the sample).
    """
    exp = experiment if hasattr(experiment, "learning") else load_experiment(experiment)
    if not isinstance(runs, int) or runs < 1:
        raise ExperimentError(f"--runs: expected a count >= 1, got {runs!r}")
    for name, v, hi in (("--variation", variation, 2.0), ("--stuck-off", stuck_off, 1.0)):
        if not (0.0 <= v <= hi):
            raise ExperimentError(f"{name}: expected a number in [0, {hi:g}], got {v!r}")
    if drift_t is not None and not drift_t > 0:
        raise ExperimentError(f"--drift-t: expected a time > 0 s, got {drift_t!r}")
    path = Path(netlist)
    deck = load(path)
    prob, _ = problem_from_experiment(exp, deck, TRAIN_OPTIONS)
    theta = np.asarray(prob.base.g)[np.asarray(prob.train_idx)]
    nu = exp.device.drift_nu
    drift = (drift_t ** (-nu)) if (drift_t is not None and nu) else 1.0
    factors, stuck = perturbations(runs, theta.shape[0], variation, stuck_off, seed)
    thetas = np.where(stuck, exp.train.g_min, theta[None, :] * factors) * drift

    ds = exp.load_data()
    x = jnp.asarray(exp.encode_inputs(ds.x_test), jnp.float64)
    y = jnp.asarray(exp.encode_targets(ds.y_test, ds.n_classes), jnp.float64)
    if x.shape[0] == 0:
        raise ExperimentError(f"{exp.path}: the test set is empty")

    def one(th, xs, ys):
        loss, o, sol = loss_at(prob, th, xs, ys)
        return loss, o, sol.ok & jnp.isfinite(loss) & jnp.all(jnp.isfinite(o))

    solve = jax.jit(jax.vmap(jax.vmap(one, in_axes=(None, 0, 0)), in_axes=(0, None, None)))
    losses, outs = [], []
    chunk = min(RUN_CHUNK, runs)
    for r0 in range(0, runs, chunk):
        th = thetas[r0 : r0 + chunk]
        m = th.shape[0]
        if m < chunk:  # one compiled shape: pad with the last run
            th = np.concatenate([th, np.repeat(th[-1:], chunk - m, axis=0)])
        loss, o, ok = (np.asarray(a)[:m] for a in solve(jnp.asarray(th), x, y))
        if not ok.all():
            r, s = (int(i[0]) for i in np.nonzero(~ok))
            raise ConvergenceError(
                f"{exp.path}: Monte Carlo run {r0 + r}: the perturbed network does not solve "
                f"test sample {s} ({int((~ok).sum())} failures in runs {r0}-{r0 + m - 1}); "
                "no figures are reported")
        losses.append(loss)
        outs.append(o)
    losses = np.concatenate(losses)
    outs = np.concatenate(outs)
    per_run = []
    for r in range(runs):
        entry = {"loss": float(np.mean(losses[r]))}
        if ds.n_classes:
            pred = exp.predict_classes(outs[r], ds.n_classes)
            entry["accuracy"] = float(np.mean(pred == np.asarray(ds.y_test)))
        per_run.append(entry)
    out = {"runs": runs,
           "settings": {"netlist": str(path), "variation": variation, "stuck_off": stuck_off,
                        "drift_t": drift_t, "drift_nu": nu, "seed": seed},
           "n_test": int(x.shape[0])}
    if ds.n_classes:
        out["accuracy"] = summary([e["accuracy"] for e in per_run])
    out["loss"] = summary([e["loss"] for e in per_run])
    out["per_run"] = per_run
    if plot:
        _histogram(plot, out, bool(ds.n_classes))
    return out


def _histogram(path: str, out: dict, classification: bool) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    key = "accuracy" if classification else "loss"
    vals = [e[key] for e in out["per_run"]]
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    ax.hist(vals, bins=max(5, min(40, int(math.sqrt(len(vals))) * 2)))
    s = out["settings"]
    ax.set_xlabel(f"test {key}")
    ax.set_ylabel("runs")
    ax.set_title(f"{out['runs']} runs: variation {s['variation']:g}, stuck-off "
                 f"{s['stuck_off']:g}, drift t {s['drift_t']}")
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=110)
    except OSError as e:
        raise ExperimentError(f"{path}: cannot write the histogram: {e.strerror or e}") from None
    finally:
        plt.close(fig)

