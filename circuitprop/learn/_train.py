"""Training an experiment: batched, jitted learning-rule steps with checkpoints.

One jitted train step takes a mini-batch, ``jax.vmap`` s the rule's per-sample estimate
(:func:`circuitprop.learn.sample_gradient`) over it, averages, applies an optax optimizer
to ``g / g_unit`` and clamps the conductances to ``[g_min, g_max]``. Every training sample's
free state is kept between epochs and warm-starts its next free phase (a circuit relaxes
from where it was); the cache is part of the checkpoint, and so are the warm-start states of
the evaluation passes.

A run that fails stops. Before training, every training sample's first (cold) free phase must
converge. Every step checks that every phase of every sample of the batch converged, that the
gradient is finite and that the update left the conductances and the optimizer state finite;
the first step that fails raises :class:`ConvergenceError` naming the epoch, the batch and the
cause. The checkpoint then still holds the last completed epoch (epoch 0, the initial state,
is written before the first step), ``trained.cir`` is written from its conductances, and no
``metrics.json`` is written. Evaluation passes exclude (and count) samples whose free phase
did not converge from the per-epoch test metrics; the final metrics need every sample.

Files written to the output folder:

- ``metrics.json``: histories and final numbers (see :func:`train`).
- ``checkpoint.npz``: conductances, optimizer state leaves, epoch, shuffling RNG state,
  the training state cache, the evaluation caches, histories, and what identifies the run
  (rule, estimator, β, loss, optimizer, data set, parameter names, array shapes); written
  atomically before the first epoch and after every epoch, read by ``resume=True``.
- ``trained.cir``: the deck with the learned conductances (:func:`circuitprop.export.write_spice`).
- ``learning_curve.png``: loss (and accuracy) per epoch.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import os
import sys
import time
import zipfile
import zlib
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .._errors import CircuitpropError, ConvergenceError, ExperimentError
from .._solve._newton import NewtonOptions
from ..experiment import load_experiment
from ..export import write_spice
from ._device import make_device
from ._exact import loss_at
from ._measure import from_settings
from ._mna import equilibrium
from ._phases import problem_from_experiment
from ._rules import (
    RuleOutput,
    batch_gradient,
    batch_reduces,
    check_rule,
    phases_per_step,
    rule_config,
    sample_gradient,
)

__all__ = ["train", "TrainResult", "evaluate", "CHECKPOINT_FORMAT"]

#: Newton tolerances used while training (looser than gradcheck's, still far below β effects).
TRAIN_OPTIONS = NewtonOptions(rtol=1e-12, atol=1e-14, max_steps=400)

#: The same for ``[train] dtype = "float32"``: a step of at most ``1e-7 + 1e-6·max|v|`` volts
#: (float32 resolves about 1e-7 of the largest voltage).
TRAIN_OPTIONS_F32 = NewtonOptions(rtol=1e-6, atol=1e-7, max_steps=400)

#: Version of the ``checkpoint.npz`` layout; ``resume`` refuses any other.
CHECKPOINT_FORMAT = 2

#: How many training steps one compiled loop runs between host checks (progress, failures).
_CHUNK = 64

#: How many sample indices an error message lists.
_LISTED = 8

#: What identifies a run in its checkpoint, and how messages name each part.
_IDENTITY = {"rule": "rule", "estimator": "estimator", "beta": "beta", "loss": "loss",
             "optimizer": "optimizer", "data": "data set", "parameters": "parameter names",
             "shapes": "array shapes", "dtype": "dtype", "device": "[device] table",
             "power_penalty": "[learning] power_penalty"}


#: identity entries that older checkpoints lack, and what they meant
_IDENTITY_DEFAULTS = {"dtype": "float64", "power_penalty": 0.0}


class TrainResult(dict):
    """``metrics.json`` as a dictionary, plus ``conductances`` (name -> S) and ``out``."""


def _optimizer(t):
    if t.optimizer == "sgd":
        return optax.inject_hyperparams(optax.sgd)(learning_rate=t.learning_rate)
    if t.optimizer == "momentum":
        return optax.inject_hyperparams(optax.sgd)(learning_rate=t.learning_rate,
                                                   momentum=t.momentum)
    return optax.inject_hyperparams(optax.adam)(learning_rate=t.learning_rate)


def _pad(a: np.ndarray, n: int) -> np.ndarray:
    if len(a) == n:
        return a
    pad = np.repeat(a[-1:], n - len(a), axis=0)
    return np.concatenate([a, pad], axis=0)


def _cast(tree, dtype):
    """Every floating-point array of ``tree`` in ``dtype``."""
    def cast(a):
        if isinstance(a, jax.Array) and jnp.issubdtype(a.dtype, jnp.floating):
            return a.astype(dtype)
        return a
    return jax.tree_util.tree_map(cast, tree)


def _with_overrides(exp, **overrides):
    """The experiment with ``[train]`` settings replaced (command-line flags), checked like
    the file's."""
    from ..experiment import DTYPES, TRAIN_SOLVERS

    changes = {k: v for k, v in overrides.items() if v is not None}
    if not changes:
        return exp
    if "solver" in changes and changes["solver"] not in TRAIN_SOLVERS:
        raise ExperimentError(f"--solver: {changes['solver']!r} is not one of "
                              f"{', '.join(TRAIN_SOLVERS)}")
    if "dtype" in changes and changes["dtype"] not in DTYPES:
        raise ExperimentError(f"--dtype: {changes['dtype']!r} is not one of {', '.join(DTYPES)}")
    if "devices" in changes:
        d = changes["devices"]
        if isinstance(d, str) and d.strip().lower() == "all":
            d = "all"
        else:
            try:
                d = int(d)
            except (TypeError, ValueError):
                d = None
            if d is None or isinstance(changes["devices"], bool) or d < 1:
                raise ExperimentError(f"--devices: expected 'all' or a count >= 1, got "
                                      f"{changes['devices']!r}")
        changes["devices"] = d
    return dataclasses.replace(exp, train=dataclasses.replace(exp.train, **changes))


def _mesh(exp, devices, batch_size: int):
    """The mesh over the batch axis for ``[train] devices`` (``None`` for one device)."""
    local = jax.local_devices()
    n = len(local) if devices == "all" else int(devices)
    if n > len(local):
        raise ExperimentError(f"{exp.path}: [train] devices: {n} requested, but only "
                              f"{len(local)} local device(s) are present "
                              f"({', '.join(sorted({d.platform for d in local}))})")
    if n <= 1:
        return None
    if batch_size % n:
        raise ExperimentError(f"{exp.path}: [train] devices: the batch ({batch_size}) must split "
                              f"evenly over {n} devices")
    return jax.sharding.Mesh(np.asarray(local[:n]), ("batch",))


def _listed(indices) -> str:
    idx = [int(i) for i in indices]
    text = ", ".join(str(i) for i in idx[:_LISTED])
    if len(idx) > _LISTED:
        text += f", ... ({len(idx) - _LISTED} more)"
    return text


#: test samples whose inference is settled physically (``[train] physical_timing``)
PHYSICAL_SAMPLES = 8


def _physical_timing(trained: Path, inputs, x, phases) -> dict:
    """Settling time and energy of the trained circuit's inference (its free phase from 0 V,
    :func:`circuitprop._transient.settle`) on the first :data:`PHYSICAL_SAMPLES` test
    samples; a training step's energy is bounded by ``phases`` such settles (its nudged
    phases start from the free state, near their own equilibria)."""
    from .._transient import NODE_CAP, SETTLE_TOL, settle_inputs

    runs = settle_inputs(trained, list(inputs), np.asarray(x[:PHYSICAL_SAMPLES], np.float64))
    ts = np.array([r.settling_time for r in runs])
    es = np.array([r.energy for r in runs])
    return {"samples": len(runs), "node_cap": NODE_CAP, "settle_tol": SETTLE_TOL,
            "inference_settling_time_mean": float(ts.mean()),
            "inference_settling_time_max": float(ts.max()),
            "inference_energy_mean": float(es.mean()),
            "step_energy_bound": (float(phases * es.mean()) if phases else None)}


def _make_eval(prob):
    eq = equilibrium(prob)

    def one(theta, x, y, u0):
        loss, o, sol = loss_at(prob, theta, x, y, u0)
        ok = (sol.ok & jnp.isfinite(loss) & jnp.all(jnp.isfinite(o))
              & jnp.all(jnp.isfinite(sol.u)))
        return loss, o, ok, sol.u, eq.power(theta, x, sol.u)

    return jax.jit(jax.vmap(one, in_axes=(None, 0, 0, 0)))


def evaluate(eval_fn, theta, x, y, cache: np.ndarray, chunk: int = 256):
    """``(losses, outputs, ok, power)`` of every sample's free phase, in padded chunks of one
    compiled shape (``power``: the watts the circuit dissipates in that phase). ``ok[i]`` is
    ``False`` where sample ``i`` did not converge (or gave a non-finite loss, output or
    state): its loss, outputs and power mean nothing. ``cache`` holds each sample's last
    converged free state (warm start), updated in place where ``ok``."""
    n = len(x)
    if n == 0:
        return np.zeros(0), np.zeros((0, 0)), np.zeros(0, dtype=bool), np.zeros(0)
    chunk = max(1, min(chunk, n))
    ls, os_, oks, ps = [], [], [], []
    for s in range(0, n, chunk):
        xb, yb, ub = x[s : s + chunk], y[s : s + chunk], cache[s : s + chunk]
        m = len(xb)
        loss, o, ok, u, p = eval_fn(theta, _pad(xb, chunk), _pad(yb, chunk), _pad(ub, chunk))
        ok = np.asarray(ok)[:m]
        cache[s : s + m][ok] = np.asarray(u)[:m][ok]
        ls.append(np.asarray(loss)[:m])
        os_.append(np.asarray(o)[:m])
        oks.append(ok)
        ps.append(np.asarray(p)[:m])
    return np.concatenate(ls), np.concatenate(os_), np.concatenate(oks), np.concatenate(ps)


# ----------------------------------------------------------------------------- files


def _atomic_savez(path: Path, **arrays) -> None:
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        raise ExperimentError(f"{path}: cannot write the checkpoint: {e.strerror or e}") from None


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as e:
        raise ExperimentError(f"{path}: cannot write: {e.strerror or e}") from None


def _plot(path: Path, hist: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def arr(key):  # epochs whose test set did not converge at all are null: gaps
        return np.array([np.nan if v is None else v for v in hist[key]], dtype=np.float64)

    epochs = np.arange(1, len(hist["train_loss_history"]) + 1)
    has_acc = bool(hist.get("test_accuracy_history"))
    fig, axes = plt.subplots(1, 2 if has_acc else 1, figsize=(10 if has_acc else 5.5, 4))
    axes = np.atleast_1d(axes)
    ax = axes[0]
    ax.plot(epochs, arr("train_loss_history"), "o-", ms=3, label="train")
    ax.plot(epochs, arr("test_loss_history"), "s-", ms=3, label="test")
    ax.set_xlabel("epoch"); ax.set_ylabel("loss"); ax.set_yscale("log"); ax.legend()
    ax.set_title("loss")
    if has_acc:
        ax = axes[1]
        ax.plot(epochs, arr("train_accuracy_history"), "o-", ms=3, label="train")
        ax.plot(epochs, arr("test_accuracy_history"), "s-", ms=3, label="test")
        ax.set_xlabel("epoch"); ax.set_ylabel("accuracy"); ax.set_ylim(0, 1.02); ax.legend()
        ax.set_title("accuracy")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ----------------------------------------------------------------------------- checkpoints


def _data_digest(ds) -> str:
    """A short hash of the data set's arrays (before encoding): same rows, same digest."""
    h = hashlib.sha256()
    for a in (ds.x_train, ds.y_train, ds.x_test, ds.y_test):
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape};".encode())
        h.update(a.tobytes())
    return h.hexdigest()[:20]


def _differences(old: dict, new: dict) -> list[str]:
    """What differs between a checkpoint's identity and this run's, in words."""
    diffs = []
    for key, label in _IDENTITY.items():
        a, b = old.get(key, _IDENTITY_DEFAULTS.get(key)), new.get(key)
        if a == b:
            continue
        if key == "data" and isinstance(a, dict):
            if a.get("source") != b["source"]:
                diffs.append(f"data set {a.get('source')!r} (checkpoint) vs {b['source']!r} "
                             "(this run)")
            elif (a.get("n_train"), a.get("n_test")) != (b["n_train"], b["n_test"]):
                diffs.append(f"data set {b['source']!r} with {a.get('n_train')} training / "
                             f"{a.get('n_test')} test samples (checkpoint) vs {b['n_train']} / "
                             f"{b['n_test']} (this run)")
            else:
                diffs.append(f"data set {b['source']!r}: same sizes, different values")
        elif key == "parameters" and isinstance(a, list):
            first = next((f", first difference {p!r} vs {q!r}" for p, q in zip(a, b) if p != q),
                         f" (the first {min(len(a), len(b))} agree)")
            diffs.append(f"parameter names: {len(a)} in the checkpoint, {len(b)} in this "
                         f"run{first}")
        elif key == "shapes" and old.get("parameters") != new["parameters"]:
            continue  # follows from the parameter names
        elif key == "shapes" and isinstance(a, dict):
            names = [k for k in b if a.get(k) != b[k]]
            diffs.append("array shapes of " + ", ".join(
                f"{k} {_shape_text(a.get(k))} vs {_shape_text(b[k])}" for k in names))
        else:
            diffs.append(f"{label} {a!r} (checkpoint) vs {b!r} (this run)")
    return diffs


def _shape_text(s) -> str:
    if isinstance(s, list) and s and all(isinstance(e, list) for e in s):
        return "[" + ", ".join(_shape_text(e) for e in s) + "]"
    if isinstance(s, list):
        return "(" + ", ".join(str(e) for e in s) + ")"
    return repr(s)


def _hist_ok(hist, epoch: int, classification: bool) -> bool:
    keys = {"train_loss_history", "test_loss_history", "train_accuracy_history",
            "test_accuracy_history", "epoch_seconds", "power_free_history", "non_converged"}
    if isinstance(hist, dict) and "power_free_history" not in hist:
        # checkpoints written before the power figures: unknown powers
        hist["power_free_history"] = [None] * epoch
    if not isinstance(hist, dict) or set(hist) != keys:
        return False
    nacc = epoch if classification else 0
    want = {"train_loss_history": epoch, "test_loss_history": epoch, "epoch_seconds": epoch,
            "train_accuracy_history": nacc, "test_accuracy_history": nacc,
            "power_free_history": epoch}
    for k, n in want.items():
        v = hist[k]
        if not isinstance(v, list) or len(v) != n:
            return False
        if not all(e is None or (isinstance(e, (int, float)) and not isinstance(e, bool)
                                 and math.isfinite(e)) for e in v):
            return False
    nc = hist["non_converged"]
    return (isinstance(nc, dict) and set(nc) == {"test"} and isinstance(nc["test"], list)
            and len(nc["test"]) == epoch
            and all(isinstance(e, int) and not isinstance(e, bool) and e >= 0
                    for e in nc["test"]))


def _read_checkpoint(path: Path, identity: dict, templates: dict, classification: bool):
    """Read and check ``checkpoint.npz``; returns ``(meta, arrays)``.

    ``templates``: array name -> ``(shape, dtype)`` this run needs. Every problem is an
    :class:`ExperimentError` naming the file."""
    fix = "delete it, or train into another --out"

    def bad(why: str) -> ExperimentError:
        return ExperimentError(f"{path}: {why}; {fix}")

    try:
        z = np.load(path, allow_pickle=False)
    except (zipfile.BadZipFile, EOFError):
        raise bad("not a checkpoint: truncated, or not an .npz archive") from None
    except ValueError:
        raise bad("not a checkpoint: not an .npz archive") from None
    except OSError as e:
        raise bad(f"cannot read the checkpoint: {e.strerror or e}") from None
    if not isinstance(z, np.lib.npyio.NpzFile):
        raise bad("not a checkpoint: a single .npy array, not an .npz archive")
    try:
        with z:
            if "meta" not in z.files:
                raise bad("not a circuitprop checkpoint (no 'meta' entry)")
            meta_arr = z["meta"]
            arrays = {k: np.array(z[k]) for k in z.files if k != "meta"}
    except (zipfile.BadZipFile, EOFError, zlib.error, ValueError, OSError, KeyError) as e:
        raise bad(f"damaged checkpoint ({type(e).__name__}: {e})") from None
    try:
        if meta_arr.dtype.kind != "U" or meta_arr.shape != ():
            raise ValueError("not a text entry")
        meta = json.loads(str(meta_arr[()]))
        if not isinstance(meta, dict):
            raise ValueError("not a JSON object")
    except ValueError:
        raise bad("not a circuitprop checkpoint (its 'meta' entry is not readable)") from None
    fmt = meta.get("format")
    if fmt != CHECKPOINT_FORMAT:
        what = "an older circuitprop" if fmt is None else f"format {fmt!r}"
        raise bad(f"checkpoint written by {what}; this version reads format "
                  f"{CHECKPOINT_FORMAT}")
    old = meta.get("identity")
    if not isinstance(old, dict):
        raise bad("damaged checkpoint (no 'identity' in its metadata)")
    diffs = _differences(old, identity)
    if diffs:
        raise ExperimentError(f"{path}: checkpoint of a different experiment: "
                              + "; ".join(diffs) + f"; {fix}, or resume with the same settings")
    epoch = meta.get("epoch")
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
        raise bad(f"damaged checkpoint (epoch {epoch!r})")
    for name, (shape, dtype) in templates.items():
        if name not in arrays:
            raise bad(f"damaged checkpoint (entry {name!r} missing)")
        a = arrays[name]
        if a.shape != tuple(shape) or a.dtype != np.dtype(dtype):
            raise bad(f"damaged checkpoint (entry {name!r} is {a.dtype}{list(a.shape)}, "
                      f"expected {np.dtype(dtype)}{list(shape)})")
        if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
            raise bad(f"damaged checkpoint (entry {name!r} holds non-finite values)")
    try:
        np.random.default_rng().bit_generator.state = meta.get("rng")
    except (TypeError, ValueError, KeyError):
        raise bad("damaged checkpoint (shuffling RNG state)") from None
    if not _hist_ok(meta.get("hist"), epoch, classification):
        raise bad(f"damaged checkpoint (histories do not match its epoch {epoch})")
    return meta, arrays


# ----------------------------------------------------------------------------- training


def train(experiment, out: str | os.PathLike, *, resume: bool = False,
          epochs: int | None = None, progress: bool = True, rule: str | None = None,
          estimator: str | None = None, quiet: bool = False, solver: str | None = None,
          devices: int | str | None = None, dtype: str | None = None) -> TrainResult:
    """Train an experiment and write its results to ``out``.

    **Arguments:**

    - ``experiment``: an :class:`~circuitprop.experiment.Experiment` or its path.
    - ``out``: output folder (created).
    - ``resume``: continue from ``out/checkpoint.npz`` (bit for bit what an uninterrupted
      run would have done, test metrics included); without a checkpoint it starts afresh.
      The checkpoint must come from the same rule, estimator, β, loss, optimizer, data set
      and parameters.
    - ``epochs``: override ``[train] epochs`` (the total, counting resumed epochs).
    - ``progress``: show a tqdm progress bar on stderr.
    - ``rule``, ``estimator``: override ``[learning]``.
    - ``solver``, ``devices``, ``dtype``: override ``[train]`` (``devices``: a count of
      local devices or ``"all"``; each batch is sharded over them).

    **Returns:** a :class:`TrainResult`, the content of ``metrics.json``: ``experiment``,
    ``rule``, ``estimator``, ``beta``, ``loss``, ``epochs``, ``n_parameters``, ``n_train``,
    ``n_test``, ``test_loss`` (final), ``train_loss_history`` (mean free-phase loss of each
    epoch's training steps), ``test_loss_history``, ``epoch_seconds``, ``non_converged``
    (``{"test": [per epoch], "final_test": 0, "final_train": 0}``: test samples left out of
    each epoch's test metrics because their free phase did not converge; the final
    evaluations have none, or the run fails), ``mean_epoch_seconds``; for classification also
    ``train_accuracy_history`` (running: the free-phase outputs seen during the epoch),
    ``test_accuracy_history``, ``test_accuracy``, ``train_accuracy``, ``train_loss`` (final);
    ``solver`` (the phases' solver), ``devices`` (how many devices each batch was sharded
    over), ``device_kind`` (``cpu``, ``gpu``...), ``dtype``, ``setup_seconds`` (from the call
    to the first batch: parsing, compiling, loading data, the initial free phases).
    Per-epoch test entries are ``None`` when no test sample converged that epoch.

    **Raises:** :class:`ExperimentError` (bad settings, a ``batch_size`` above the number of
    training samples, an unreadable or foreign checkpoint, an unwritable output folder),
    :class:`~circuitprop._errors.NetlistError`, :class:`ConvergenceError` (the initial
    network does not solve a training sample; a training step fails: a phase did not
    converge, or the gradient or the update is not finite; the trained network does not
    solve a final evaluation sample). Failing steps leave ``checkpoint.npz`` at the last
    completed epoch and ``trained.cir`` with its conductances, and write no ``metrics.json``.
    """

    t_start = time.perf_counter()
    if not hasattr(experiment, "learning"):
        experiment = load_experiment(experiment)
    exp = _with_overrides(experiment, solver=solver, devices=devices, dtype=dtype)
    t, learn = exp.train, exp.learning
    rule = rule or learn.rule
    estimator = estimator or learn.estimator
    if epochs is not None and (isinstance(epochs, bool)
                               or not isinstance(epochs, (int, np.integer)) or epochs < 0):
        raise ExperimentError(f"{exp.path}: epochs: expected an integer >= 0, got {epochs!r}")
    n_epochs = t.epochs if epochs is None else int(epochs)
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ExperimentError(f"{out}: cannot create the output folder: "
                              f"{e.strerror or e}") from None

    netlist = exp.load_netlist()
    fdt = np.float32 if t.dtype == "float32" else np.float64
    prob, pinfo = problem_from_experiment(
        exp, netlist, TRAIN_OPTIONS_F32 if fdt is np.float32 else TRAIN_OPTIONS)
    if fdt is np.float32:
        prob = _cast(prob, jnp.float32)
    cfg = rule_config(rule, estimator, learn.beta, learn.eta_for(rule), from_settings(exp.measurement),
                      learn.loss, power_penalty=learn.power_penalty)
    cfg = dataclasses.replace(cfg, warm=True)
    try:
        check_rule(prob, cfg)
    except ExperimentError as e:
        raise ExperimentError(f"{exp.path}: [learning] rule: {e}") from None
    ds = exp.load_data()
    xtr = np.asarray(exp.encode_inputs(ds.x_train), dtype=fdt)
    ytr = np.asarray(exp.encode_targets(ds.y_train, ds.n_classes), dtype=fdt)
    xte = np.asarray(exp.encode_inputs(ds.x_test), dtype=fdt)
    yte = np.asarray(exp.encode_targets(ds.y_test, ds.n_classes), dtype=fdt)
    n_train, n_test = len(xtr), len(xte)
    if n_train == 0:
        raise ExperimentError(f"{exp.path}: the training set is empty")
    bs = int(t.batch_size)
    if bs > n_train:
        raise ExperimentError(f"{exp.path}: [train] batch_size: {bs} is larger than the number "
                              f"of training samples ({n_train})")
    classification = ds.n_classes is not None

    # θ: conductances (optimizer units g / g_unit, bounds [g_min, g_max]), then the values
    # of trainable V sources (volts, bounds [v_min, v_max])
    k_g, k_v = int(prob.train_idx.shape[0]), prob.n_params - int(prob.train_idx.shape[0])
    unit = np.concatenate([np.full(k_g, float(t.g_unit)), np.ones(k_v)])
    lo = np.concatenate([np.full(k_g, float(t.g_min) / float(t.g_unit)),
                         np.full(k_v, float(t.v_min))]).astype(fdt)
    hi = np.concatenate([np.full(k_g, float(t.g_max) / float(t.g_unit)),
                         np.full(k_v, float(t.v_max))]).astype(fdt)
    theta0 = np.asarray(prob.base.g)[np.asarray(prob.train_idx)].astype(np.float64)
    if t.init == "uniform":
        init_rng = np.random.default_rng([t.seed, 1])
        theta0 = init_rng.uniform(t.init_low, t.init_high, size=theta0.shape)
    if k_v:  # V sources start at the deck's values
        theta0 = np.concatenate([theta0, np.asarray(prob.base.vsrc)[np.asarray(prob.train_v_idx)]])
        if fdt is np.float32:
            raise ExperimentError(f"{exp.path}: [train] dtype: circuits solved by MNA "
                                  "(trainable V sources, MOSFETs) train in float64")
    params = jnp.asarray(np.clip(theta0 / unit, lo, hi).astype(fdt))
    unit = jnp.asarray(unit.astype(fdt))
    device = None
    dev_seed = t.seed if exp.device.seed is None else exp.device.seed
    if not exp.device.ideal and k_v:
        raise ExperimentError(f"{exp.path}: [device] models conductance devices; trainable V "
                              f"sources ({', '.join(pinfo.parameters[k_g:])}) are ideal")
    if not exp.device.ideal:
        # every trainable element is a programmable device: the first programming is a write
        device = make_device(exp.device, int(params.shape[0]), float(lo[0]), float(hi[0]),
                             dev_seed, fdt)
        params = device.program(params, jax.random.PRNGKey(dev_seed))

    def physical(p):
        """The conductances (optimizer units) the circuit sees while training."""
        return p if device is None else device.conductance(p)

    def evaluated(p):
        """... and at evaluation (after drift): test metrics and ``trained.cir``."""
        return p if device is None else device.evaluated(p)

    opt = _optimizer(t)
    opt_state = opt.init(params)
    leaves, treedef = jax.tree_util.tree_flatten(opt_state)
    rng = np.random.default_rng(t.seed)
    n_u = prob.n_state  # a phase's state (current outputs: the readout shifts follow u)
    u_cache = np.zeros((n_train, n_u), dtype=fdt)
    eval_cache = {"train": np.zeros((n_train, n_u), fdt), "test": np.zeros((n_test, n_u), fdt)}
    hist = {"train_loss_history": [], "test_loss_history": [], "train_accuracy_history": [],
            "test_accuracy_history": [], "epoch_seconds": [], "power_free_history": [],
            "non_converged": {"test": []}}
    start_epoch = 0
    ckpt = out / "checkpoint.npz"

    templates = {"params": (params.shape, params.dtype), "u_cache": (u_cache.shape, fdt),
                 "eval_train": (eval_cache["train"].shape, fdt),
                 "eval_test": (eval_cache["test"].shape, fdt)}
    templates.update({f"opt_{i}": (np.shape(leaf), np.asarray(leaf).dtype)
                      for i, leaf in enumerate(leaves)})
    identity = {
        "rule": rule, "estimator": estimator, "beta": float(learn.beta), "loss": learn.loss,
        "optimizer": t.optimizer, "dtype": t.dtype, "power_penalty": learn.power_penalty,
        "device": None if device is None else dict(dataclasses.asdict(exp.device), seed=dev_seed),
        "data": {"source": exp.data.source, "n_train": n_train, "n_test": n_test,
                 "digest": _data_digest(ds)},
        "parameters": list(pinfo.parameters),
        "shapes": {"params": list(params.shape), "u_cache": list(u_cache.shape),
                   "eval_train": list(eval_cache["train"].shape),
                   "eval_test": list(eval_cache["test"].shape),
                   "optimizer_state": [list(np.shape(leaf)) for leaf in leaves]},
    }

    def save_checkpoint(epoch: int) -> None:
        meta = {"format": CHECKPOINT_FORMAT, "identity": identity, "epoch": epoch,
                "rng": rng.bit_generator.state, "hist": hist}
        state_leaves = jax.tree_util.tree_leaves(opt_state)
        _atomic_savez(ckpt, meta=np.asarray(json.dumps(meta)), params=np.asarray(params),
                      u_cache=u_cache, eval_train=eval_cache["train"],
                      eval_test=eval_cache["test"],
                      **{f"opt_{i}": np.asarray(leaf) for i, leaf in enumerate(state_leaves)})

    eval_fn = _make_eval(prob)
    resumed = resume and ckpt.exists()
    if resumed:
        meta, arrays = _read_checkpoint(ckpt, identity, templates, classification)
        params = jnp.asarray(arrays["params"])
        opt_state = jax.tree_util.tree_unflatten(
            treedef, [jnp.asarray(arrays[f"opt_{i}"]) for i in range(len(leaves))])
        u_cache = arrays["u_cache"]
        eval_cache = {"train": arrays["eval_train"], "test": arrays["eval_test"]}
        rng.bit_generator.state = meta["rng"]
        hist = meta["hist"]
        start_epoch = meta["epoch"]
    else:
        # every sample's first free state: a cold (SPICE-initialised) solve
        loss0, _, ok0, _ = evaluate(eval_fn, physical(params) * unit, xtr, ytr, u_cache)
        # the initial state is the last good state even when it does not solve: keep it
        # (its warm starts hold only the samples that converged)
        save_checkpoint(0)
        if not ok0.all():
            badi = np.nonzero(~ok0)[0]
            raise ConvergenceError(
                f"{exp.path}: the initial network does not solve {len(badi)} of {n_train} "
                f"training samples (training samples {_listed(badi)}): the free phase did not "
                f"converge before training; nothing was trained, {ckpt} holds the initial "
                "state")
    # results of an earlier run in this folder no longer describe the checkpoint
    for stale in ("metrics.json", "learning_curve.png"):
        try:
            (out / stale).unlink()
        except FileNotFoundError:
            pass
        except OSError as e:
            raise ExperimentError(f"{out / stale}: cannot remove the stale file: "
                                  f"{e.strerror or e}") from None
    good = (start_epoch, np.asarray(params))  # the state in the checkpoint

    def write_trained(theta_si: np.ndarray) -> str:
        values = [float(g) for g in theta_si]
        conductances = dict(zip(pinfo.parameters[:k_g], values[:k_g]))
        sources = dict(zip(pinfo.parameters[k_g:], values[k_g:]))
        path = out / "trained.cir"
        try:
            write_spice(path, netlist, conductances, sources=sources,
                        title=f"{netlist.title or 'circuit'} (trained by circuitprop, {rule})")
        except (CircuitpropError, OSError) as e:
            return f"trained.cir was not written ({e})"
        return f"{path} has its trained values"

    def stopped(where: str, cause: str) -> ConvergenceError:
        epoch, p = good
        state = "the initial state (epoch 0)" if epoch == 0 else f"the state after epoch {epoch}"
        note = write_trained(np.asarray(evaluated(jnp.asarray(p))) * unit)
        return ConvergenceError(f"{exp.path}: {where}: {cause}; training stopped, {ckpt} holds "
                                f"{state} and {note}")

    g_unit = unit
    n_batches = math.ceil(n_train / bs)
    chunk = math.ceil(n_batches / math.ceil(n_batches / _CHUNK))  # equal chunks
    mesh = _mesh(exp, t.devices, bs)
    x_dev, y_dev = jnp.asarray(xtr), jnp.asarray(ytr)

    def per_sample(theta, xb, yb, keys, ub):
        return jax.vmap(lambda x, y, k, u: sample_gradient(prob, cfg, theta, x, y, k, u))(
            xb, yb, keys, ub)

    reduce_batch = batch_reduces(prob, cfg)

    def per_batch(theta, xb, yb, wb, ub):
        return batch_gradient(prob, cfg, theta, xb, yb, wb, ub)

    if mesh is not None and reduce_batch:
        from jax.sharding import PartitionSpec as P

        def per_batch_local(theta, xb, yb, wb, ub):
            grad, *rest = batch_gradient(prob, cfg, theta, xb, yb, wb, ub)
            return (jax.lax.psum(grad, "batch"), *rest)

        per_batch = jax.shard_map(per_batch_local, mesh=mesh,
                                  in_specs=(P(), P("batch"), P("batch"), P("batch"), P("batch")),
                                  out_specs=(P(), P("batch"), P("batch"), P("batch"), P("batch")),
                                  check_vma=False)
    if mesh is not None:
        from jax.sharding import PartitionSpec as P

        # each device solves its slice of the batch; the mean below is all-reduced by XLA
        per_sample = jax.shard_map(per_sample, mesh=mesh,
                                   in_specs=(P(), P("batch"), P("batch"), P("batch"), P("batch")),
                                   out_specs=P("batch"), check_vma=False)

    def step(params, opt_state, xb, yb, wb, ub, key, lr):
        theta = physical(params) * g_unit
        if reduce_batch:
            # layered networks: the batch's estimate reduced on the dense blocks
            grad, loss, out, ok, u = per_batch(theta, xb, yb, wb / jnp.sum(wb), ub)
            res = RuleOutput(grad=grad, loss=loss, out=out, ok=ok, u=u)
            grad_ok = jnp.broadcast_to(jnp.all(jnp.isfinite(grad)), ok.shape)
        else:
            keys = jax.random.split(key, xb.shape[0])
            res = per_sample(theta, xb, yb, keys, ub)
            grad_ok = jnp.all(jnp.isfinite(res.grad), axis=1)
            # padding rows repeat the batch's last sample with weight 0
            g = jnp.where((wb > 0)[:, None], res.grad, 0.0)
            grad = jnp.sum(wb[:, None] * g, axis=0) / jnp.sum(wb)
        ok = (res.ok & jnp.isfinite(res.loss) & jnp.all(jnp.isfinite(res.out), axis=1)
              & jnp.all(jnp.isfinite(res.u), axis=1))
        grad = (grad * g_unit).astype(params.dtype)  # dL/d(g/g_unit)
        opt_state.hyperparams["learning_rate"] = lr
        updates, new_state = opt.update(grad, opt_state, params)
        new_params = jnp.clip(optax.apply_updates(params, updates), lo, hi)
        if device is None:
            wstats = jnp.zeros((2,), params.dtype)
        else:  # the device decides what is written
            new_params, wstats = device.write(params, new_params, jax.random.fold_in(key, 7))
        bad_grad = jnp.sum(~jnp.isfinite(grad))
        bad_params = jnp.sum(~jnp.isfinite(new_params))
        bad_state = sum(jnp.sum(~jnp.isfinite(leaf))
                        for leaf in jax.tree_util.tree_leaves(new_state)
                        if jnp.issubdtype(leaf.dtype, jnp.inexact))
        return (new_params, new_state, res.loss, res.out, res.u, ok, grad_ok,
                jnp.stack([bad_grad, bad_params, bad_state]).astype(jnp.int32), wstats)

    def run_chunk(params, opt_state, u_all, x_all, y_all, idx, wts, batch_no, epoch, lr):
        """Up to ``chunk`` training steps in one compiled loop. A batch that fails leaves
        the state as it was and so does every later batch of the chunk; ``fail`` is the
        position of the first failed batch in the chunk (``-1``: none). Batches numbered
        ``-1`` pad the epoch to whole chunks and change nothing."""

        def body(carry, inp):
            params, opt_state, fail = carry
            ib, wb, b, pos, ub = inp
            key = jax.random.fold_in(jax.random.fold_in(base_key, epoch), b)
            xb, yb = x_all[ib], y_all[ib]
            p, s, loss, o, u, ok, grad_ok, counts, wst = step(params, opt_state, xb, yb, wb,
                                                               ub, key, lr)
            real = wb > 0
            good = ((fail < 0) & (b >= 0) & jnp.all(ok | ~real) & jnp.all(grad_ok | ~real)
                    & jnp.all(counts == 0))
            keep = lambda new, old: jax.tree_util.tree_map(  # noqa: E731
                lambda a, c: jnp.where(good, a, c), new, old)
            fail = jnp.where((fail < 0) & (b >= 0) & ~good, pos, fail)
            return (keep(p, params), keep(s, opt_state), fail), \
                (loss, o, ok, grad_ok, counts, wst, jnp.where(good, u, ub))

        pos = jnp.arange(idx.shape[0])
        # each sample appears once per epoch: its warm start is read before the loop and
        # its new state written after it (padding rows rewrite their sample's own state)
        (params, opt_state, fail), per = jax.lax.scan(
            body, (params, opt_state, jnp.asarray(-1)), (idx, wts, batch_no, pos, u_all[idx]))
        # padding batches point past the end: their rows are dropped
        u_all = u_all.at[idx.reshape(-1)].set(per[-1].reshape(-1, u_all.shape[1]),
                                              mode="drop")
        return params, opt_state, u_all, fail, per[:-1]

    # the warm-start cache is updated in place (donated)
    run_jit = jax.jit(run_chunk, donate_argnums=(2,))

    def eval_set(theta, which: str):
        x, y = (xtr, ytr) if which == "train" else (xte, yte)
        return evaluate(eval_fn, theta, x, y, eval_cache[which])

    def metrics_of(loss, o, ok, labels):
        """Mean loss and accuracy over the converged samples (``None`` if there are none)."""
        if not ok.any():
            return None, None
        acc = None
        if classification:
            pred = exp.predict_classes(o[ok], ds.n_classes)
            acc = float(np.mean(pred == np.asarray(labels)[ok]))
        return float(np.mean(loss[ok])), acc

    base_key = jax.random.PRNGKey(exp.measurement.seed)
    n_par = int(params.shape[0])
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=max(0, n_epochs - start_epoch) * n_batches, desc="train", unit="batch",
                   file=sys.stderr, disable=quiet, leave=False)
    setup_seconds = time.perf_counter() - t_start
    write_stats = np.zeros(2)  # device writes: summed mean pulses, summed changed fraction
    n_updates = 0
    try:
        for epoch in range(start_epoch, n_epochs):
            t0 = time.perf_counter()
            order = rng.permutation(n_train) if t.shuffle else np.arange(n_train)
            lr = jnp.asarray(t.learning_rate * t.lr_decay**epoch, dtype=params.dtype)
            # the epoch's batches, padded to whole chunks (padding batches are skipped)
            n_pad = math.ceil(n_batches / chunk) * chunk
            idx_all = np.full((n_pad, bs), n_train, dtype=np.int32)  # padding: past the end
            w_all = np.zeros((n_pad, bs))
            b_all = np.full(n_pad, -1, dtype=np.int32)
            for b in range(n_batches):
                idx = order[b * bs : (b + 1) * bs]
                idx_all[b] = _pad(idx, bs)
                w_all[b, : len(idx)] = 1.0
                b_all[b] = b
            u_dev = jnp.asarray(u_cache)
            losses, outs = [], []
            for c0 in range(0, n_pad, chunk):
                sl = slice(c0, c0 + chunk)
                params_new, state_new, u_dev, fail, per = run_jit(
                    params, opt_state, u_dev, x_dev, y_dev, jnp.asarray(idx_all[sl]),
                    jnp.asarray(w_all[sl], dtype=params.dtype), jnp.asarray(b_all[sl]),
                    epoch, lr)
                loss_c, o_c, ok_c, gok_c, counts_c, wst_c = (np.asarray(a) for a in per)
                fail = int(fail)
                n_done = fail if fail >= 0 else chunk
                for k in range(n_done):
                    b = c0 + k
                    if b >= n_batches:
                        break
                    m = int(w_all[b].sum())
                    losses.append(loss_c[k][:m])
                    outs.append(o_c[k][:m])
                if fail >= 0:
                    b = c0 + fail
                    idx = order[b * bs : (b + 1) * bs]
                    m = len(idx)
                    where = f"epoch {epoch + 1}, batch {b + 1} of {n_batches}"
                    okm = ok_c[fail][:m]
                    gm = gok_c[fail][:m]
                    bad_grad, bad_params, bad_state = (int(c) for c in counts_c[fail])
                    if not okm.all():
                        badi = np.sort(idx[~okm])
                        raise stopped(where, f"a learning phase did not converge for {len(badi)} "
                                             f"of {m} samples (training samples {_listed(badi)})")
                    if not gm.all():
                        badi = np.sort(idx[~gm])
                        raise stopped(where, f"the gradient is not finite for {len(badi)} of {m} "
                                             f"samples (training samples {_listed(badi)})")
                    if bad_grad:
                        raise stopped(where, f"the mean gradient has {bad_grad} non-finite "
                                             f"components of {n_par}")
                    if bad_params:
                        raise stopped(where, f"the update made {bad_params} of {n_par} "
                                             "conductances non-finite")
                    raise stopped(where, f"the update made {bad_state} optimizer-state values "
                                         "non-finite")
                params, opt_state = params_new, state_new
                real_b = b_all[sl] >= 0
                write_stats += wst_c[real_b].sum(axis=0)
                n_updates += int(real_b.sum())
                if bar is not None:
                    bar.update(min(chunk, n_batches - c0))
            u_cache = np.array(u_dev)
            seen = order
            train_loss = float(np.mean(np.concatenate(losses)))
            theta = evaluated(params) * g_unit
            tl, to, tok, tp = eval_set(theta, "test")
            test_loss, test_acc = metrics_of(tl, to, tok, ds.y_test)
            hist["epoch_seconds"].append(time.perf_counter() - t0)
            hist["train_loss_history"].append(train_loss)
            hist["test_loss_history"].append(test_loss)
            hist["non_converged"]["test"].append(int(np.sum(~tok)))
            hist["power_free_history"].append(float(np.mean(tp[tok])) if tok.any() else None)
            if classification:
                # running accuracy: the free-phase outputs seen during the epoch
                pred = exp.predict_classes(np.concatenate(outs), ds.n_classes)
                train_acc = float(np.mean(pred == np.asarray(ds.y_train)[seen]))
                hist["train_accuracy_history"].append(train_acc)
                hist["test_accuracy_history"].append(test_acc)
            if bar is not None:
                msg = f"epoch {epoch + 1}/{n_epochs} loss {train_loss:.4g}"
                if classification:
                    msg += " test acc " + ("n/a" if test_acc is None else f"{test_acc:.3f}")
                bar.set_postfix_str(msg)
            save_checkpoint(epoch + 1)
            good = (epoch + 1, np.asarray(params))
            if t.checkpoint_every and (epoch + 1) % t.checkpoint_every == 0:
                try:
                    np.save(out / f"conductances_epoch{epoch + 1}.npy", np.asarray(theta))
                except OSError as e:
                    raise ExperimentError(f"{out}: cannot write conductances_epoch"
                                          f"{epoch + 1}.npy: {e.strerror or e}") from None
    finally:
        if bar is not None:
            bar.close()

    n_done = len(hist["train_loss_history"])
    theta = np.asarray(evaluated(params) * g_unit)
    finals, powers = {}, {}
    for which, labels in (("test", ds.y_test), ("train", ds.y_train)):
        if which == "train" and not classification:
            continue
        n = n_test if which == "test" else n_train
        loss, o, ok, pw = eval_set(jnp.asarray(theta), which)
        if not ok.all():
            badi = np.nonzero(~ok)[0]
            note = write_trained(theta)
            raise ConvergenceError(
                f"{exp.path}: final evaluation after epoch {n_done}: the trained network does "
                f"not solve {len(badi)} of {n} {which} samples ({which} samples "
                f"{_listed(badi)}), so no metrics were written; {ckpt} holds the trained state "
                f"and {note}")
        finals[which] = metrics_of(loss, o, ok, labels)
        powers[which] = pw
    test_loss, test_acc = finals["test"]
    non_converged = copy.deepcopy(hist["non_converged"])
    non_converged["final_test"] = 0
    if classification:
        non_converged["final_train"] = 0
    metrics = TrainResult(
        experiment=str(exp.path), rule=rule, estimator=estimator, beta=learn.beta,
        loss=learn.loss, epochs=n_done, n_parameters=len(theta), n_train=n_train,
        n_test=n_test, test_loss=test_loss,
        **{k: v for k, v in hist.items() if k != "non_converged"},
        non_converged=non_converged)
    if classification:
        metrics["train_loss"], train_acc = finals["train"]
        metrics["test_accuracy"] = test_acc
        metrics["train_accuracy"] = train_acc
    metrics["mean_epoch_seconds"] = (float(np.mean(hist["epoch_seconds"]))
                                     if hist["epoch_seconds"] else None)
    metrics["power_free_mean"] = float(np.mean(powers["test"])) if n_test else None
    metrics["power"] = {
        "free_mean": metrics["power_free_mean"],
        "free_max": float(np.max(powers["test"])) if n_test else None,
        "free_train_mean": (float(np.mean(powers["train"])) if "train" in powers and n_train
                            else None),
        "phases_per_step": phases_per_step(cfg),
        "penalty": learn.power_penalty,
    }
    metrics["solver"] = prob.method
    metrics["devices"] = 1 if mesh is None else int(mesh.devices.size)
    metrics["device_kind"] = (jax.local_devices()[0].platform if mesh is None
                              else str(mesh.devices.flat[0].platform))
    metrics["dtype"] = t.dtype
    metrics["setup_seconds"] = setup_seconds
    if device is not None:
        metrics["device"] = dict(dataclasses.asdict(exp.device), seed=dev_seed)
        metrics["device_writes"] = {
            "updates": n_updates,
            "mean_pulses_per_device": (float(write_stats[0] / n_updates) if n_updates else None),
            "changed_fraction": (float(write_stats[1] / n_updates) if n_updates else None),
            "stuck_off": int(np.sum(np.asarray(device.stuck) == 1)),
            "stuck_on": int(np.sum(np.asarray(device.stuck) == 2)),
        }
    conductances = {name: float(g) for name, g in zip(pinfo.parameters[:k_g], theta[:k_g])}
    sources = {name: float(v) for name, v in zip(pinfo.parameters[k_g:], theta[k_g:])}
    if sources:
        metrics["trained_sources"] = sources
    try:
        write_spice(out / "trained.cir", netlist, conductances, sources=sources,
                    title=f"{netlist.title or 'circuit'} (trained by circuitprop, {rule})")
    except OSError as e:
        raise ExperimentError(f"{out / 'trained.cir'}: cannot write: {e.strerror or e}") from None
    if t.physical_timing and n_test:
        metrics["physical_timing"] = _physical_timing(out / "trained.cir", exp.inputs, xte,
                                                      metrics["power"]["phases_per_step"])
    _atomic_text(out / "metrics.json", json.dumps(metrics, indent=2, allow_nan=False) + "\n")
    if hist["train_loss_history"]:
        _plot(out / "learning_curve.png", hist)
    metrics.conductances = conductances
    return metrics
