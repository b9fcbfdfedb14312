"""Training an experiment: batched, jitted learning-rule steps with checkpoints.

One jitted train step takes a mini-batch, ``jax.vmap`` s the rule's per-sample estimate
(:func:`circuitprop.learn.sample_gradient`) over it, averages, applies an optax optimizer
to ``g / g_unit`` and clamps the conductances to ``[g_min, g_max]``. Every training sample's
free state is kept between epochs and warm-starts its next free phase (a circuit relaxes
from where it was); the cache is part of the checkpoint.

Files written to the output folder:

- ``metrics.json``: histories and final numbers (see :func:`train`).
- ``checkpoint.npz``: conductances, optimizer state leaves, epoch, shuffling RNG state,
  state cache, histories; written atomically after every epoch, read by ``resume=True``.
- ``trained.cir``: the deck with the learned conductances (:func:`circuitprop.export.write_spice`).
- ``learning_curve.png``: loss (and accuracy) per epoch.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ._errors import ConvergenceError, ExperimentError
from ._solve._newton import NewtonOptions

__all__ = ["train", "TrainResult", "evaluate"]

#: Newton tolerances used while training (looser than gradcheck's, still far below β effects).
TRAIN_OPTIONS = NewtonOptions(rtol=1e-12, atol=1e-14, max_steps=400)


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


def _make_eval(prob):
    from .learn._exact import loss_at

    def one(theta, x, y, u0):
        loss, o, sol = loss_at(prob, theta, x, y, u0)
        return loss, o, sol.result == 0, sol.u

    return jax.jit(jax.vmap(one, in_axes=(None, 0, 0, 0)))


def evaluate(eval_fn, theta, x, y, cache: np.ndarray, chunk: int = 256):
    """``(losses, outputs, ok)`` of every sample, in padded chunks of one compiled shape;
    ``cache`` holds each sample's last free state (warm start), updated in place."""
    n = len(x)
    chunk = max(1, min(chunk, n))
    ls, os_, oks = [], [], []
    for s in range(0, n, chunk):
        xb, yb, ub = x[s : s + chunk], y[s : s + chunk], cache[s : s + chunk]
        m = len(xb)
        loss, o, ok, u = eval_fn(theta, _pad(xb, chunk), _pad(yb, chunk), _pad(ub, chunk))
        ok = np.asarray(ok)[:m]
        cache[s : s + m][ok] = np.asarray(u)[:m][ok]
        ls.append(np.asarray(loss)[:m])
        os_.append(np.asarray(o)[:m])
        oks.append(ok)
    return np.concatenate(ls), np.concatenate(os_), np.concatenate(oks)


def _atomic_savez(path: Path, **arrays) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _plot(path: Path, hist: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = np.arange(1, len(hist["train_loss_history"]) + 1)
    has_acc = bool(hist.get("test_accuracy_history"))
    fig, axes = plt.subplots(1, 2 if has_acc else 1, figsize=(10 if has_acc else 5.5, 4))
    axes = np.atleast_1d(axes)
    ax = axes[0]
    ax.plot(epochs, hist["train_loss_history"], "o-", ms=3, label="train")
    ax.plot(epochs, hist["test_loss_history"], "s-", ms=3, label="test")
    ax.set_xlabel("epoch"); ax.set_ylabel("loss"); ax.set_yscale("log"); ax.legend()
    ax.set_title("loss")
    if has_acc:
        ax = axes[1]
        ax.plot(epochs, hist["train_accuracy_history"], "o-", ms=3, label="train")
        ax.plot(epochs, hist["test_accuracy_history"], "s-", ms=3, label="test")
        ax.set_xlabel("epoch"); ax.set_ylabel("accuracy"); ax.set_ylim(0, 1.02); ax.legend()
        ax.set_title("accuracy")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def train(experiment, out: str | os.PathLike, *, resume: bool = False,
          epochs: int | None = None, progress: bool = True, rule: str | None = None,
          estimator: str | None = None, quiet: bool = False) -> TrainResult:
    """Train an experiment and write its results to ``out``.

    **Arguments:**

    - ``experiment``: an :class:`~circuitprop.experiment.Experiment` or its path.
    - ``out``: output folder (created).
    - ``resume``: continue from ``out/checkpoint.npz`` (bit for bit what an uninterrupted
      run would have done); without a checkpoint it starts afresh.
    - ``epochs``: override ``[train] epochs`` (the total, counting resumed epochs).
    - ``progress``: show a tqdm progress bar on stderr.
    - ``rule``, ``estimator``: override ``[learning]``.

    **Returns:** a :class:`TrainResult`, the content of ``metrics.json``: ``rule``,
    ``estimator``, ``epochs``, ``train_loss_history`` (mean free-phase loss of each epoch),
    ``train_accuracy_history`` (running: the free-phase outputs seen during the epoch),
    ``test_loss_history``, ``test_loss``, ``train_accuracy_history`` /
    ``test_accuracy_history`` / ``test_accuracy`` / ``train_accuracy`` (classification),
    ``epoch_seconds``, ``nonconverged`` (samples whose phases did not converge, skipped),
    ``n_parameters``, ``n_train``, ``n_test``.

    **Raises:** :class:`ExperimentError`, :class:`~circuitprop._errors.NetlistError`,
    :class:`ConvergenceError` (the initial network does not solve).
    """
    from .experiment import load_experiment
    from .export import write_spice
    from .learn._measure import from_settings
    from .learn._phases import problem_from_experiment
    from .learn._rules import rule_config, sample_gradient

    if not hasattr(experiment, "learning"):
        experiment = load_experiment(experiment)
    exp = experiment
    t, learn = exp.train, exp.learning
    rule = rule or learn.rule
    estimator = estimator or learn.estimator
    n_epochs = t.epochs if epochs is None else int(epochs)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)

    netlist = exp.load_netlist()
    prob, pinfo = problem_from_experiment(exp, netlist, TRAIN_OPTIONS)
    cfg = rule_config(rule, estimator, learn.beta, learn.eta_for(rule), from_settings(exp.measurement),
                      learn.loss)
    cfg = dataclasses.replace(cfg, warm=True)
    ds = exp.load_data()
    xtr = np.asarray(exp.encode_inputs(ds.x_train), dtype=np.float64)
    ytr = np.asarray(exp.encode_targets(ds.y_train, ds.n_classes), dtype=np.float64)
    xte = np.asarray(exp.encode_inputs(ds.x_test), dtype=np.float64)
    yte = np.asarray(exp.encode_targets(ds.y_test, ds.n_classes), dtype=np.float64)
    n_train = len(xtr)
    if n_train == 0:
        raise ExperimentError(f"{exp.path}: the training set is empty")
    classification = ds.n_classes is not None

    unit = float(t.g_unit)
    lo, hi = float(t.g_min) / unit, float(t.g_max) / unit
    theta0 = np.asarray(prob.base.g)[np.asarray(prob.train_idx)].astype(np.float64)
    if t.init == "uniform":
        init_rng = np.random.default_rng([t.seed, 1])
        theta0 = init_rng.uniform(t.init_low, t.init_high, size=theta0.shape)
    params = jnp.asarray(np.clip(theta0 / unit, lo, hi))
    opt = _optimizer(t)
    opt_state = opt.init(params)
    rng = np.random.default_rng(t.seed)
    u_cache = np.zeros((n_train, prob.circuit.n_u), dtype=np.float64)
    hist = {"train_loss_history": [], "test_loss_history": [], "train_accuracy_history": [],
            "test_accuracy_history": [], "epoch_seconds": [], "nonconverged": []}
    start_epoch = 0
    ckpt = out / "checkpoint.npz"
    leaves, treedef = jax.tree_util.tree_flatten(opt_state)
    if resume and ckpt.exists():
        with np.load(ckpt, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            if meta["parameters"] != pinfo.parameters or meta["rule"] != rule:
                raise ExperimentError(f"{ckpt}: checkpoint of a different experiment "
                                      "(parameters or rule differ); use another --out")
            params = jnp.asarray(z["params"])
            new_leaves = [jnp.asarray(z[f"opt_{i}"]) for i in range(len(leaves))]
            opt_state = jax.tree_util.tree_unflatten(treedef, new_leaves)
            u_cache = np.array(z["u_cache"])
            rng.bit_generator.state = meta["rng"]
            hist = meta["hist"]
            start_epoch = int(meta["epoch"])

    bs = int(t.batch_size)
    g_unit = unit

    def step(params, opt_state, xb, yb, wb, ub, key, lr):
        theta = params * g_unit
        keys = jax.random.split(key, xb.shape[0])
        res = jax.vmap(lambda x, y, k, u: sample_gradient(prob, cfg, theta, x, y, k, u))(
            xb, yb, keys, ub)
        w = wb * res.ok
        ok_grad = jnp.where(res.ok[:, None], res.grad, 0.0)
        grad = jnp.sum(w[:, None] * ok_grad, axis=0) / jnp.maximum(jnp.sum(w), 1.0)
        grad = grad * g_unit  # dL/d(g/g_unit)
        opt_state.hyperparams["learning_rate"] = lr
        updates, opt_state = opt.update(grad, opt_state, params)
        params = jnp.clip(optax.apply_updates(params, updates), lo, hi)
        u_new = jnp.where(res.ok[:, None], res.u, ub)
        return params, opt_state, res.loss, res.out, res.ok, u_new

    step_jit = jax.jit(step, donate_argnums=())
    eval_fn = _make_eval(prob)

    eval_cache = {"train": np.zeros((len(xtr), prob.circuit.n_u)),
                  "test": np.zeros((len(xte), prob.circuit.n_u))}

    def eval_split(theta, x, y, labels):
        if len(x) == 0:
            return float("nan"), None
        which = "train" if x is xtr else "test"
        loss, o, ok = evaluate(eval_fn, theta, x, y, eval_cache[which])
        acc = None
        if classification:
            acc = float(np.mean(exp.predict_classes(o, ds.n_classes) == labels))
        return float(np.mean(loss)), acc

    if start_epoch == 0 and n_epochs > 0:
        # every sample's first free state: a cold (SPICE-initialised) solve
        evaluate(eval_fn, params * g_unit, xtr, ytr, u_cache)
    base_key = jax.random.PRNGKey(exp.measurement.seed)
    n_batches = math.ceil(n_train / bs)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=(n_epochs - start_epoch) * n_batches, desc="train", unit="batch",
                   file=sys.stderr, disable=quiet, leave=False)
    for epoch in range(start_epoch, n_epochs):
        t0 = time.perf_counter()
        order = rng.permutation(n_train) if t.shuffle else np.arange(n_train)
        lr = jnp.asarray(t.learning_rate * t.lr_decay**epoch, dtype=jnp.float64)
        losses, outs, seen, bad = [], [], [], 0
        for b in range(n_batches):
            idx = order[b * bs : (b + 1) * bs]
            m = len(idx)
            pidx = _pad(idx, bs)
            wb = jnp.asarray((np.arange(bs) < m).astype(np.float64))
            key = jax.random.fold_in(jax.random.fold_in(base_key, epoch), b)
            params, opt_state, loss, o, ok, u_new = step_jit(
                params, opt_state, jnp.asarray(xtr[pidx]), jnp.asarray(ytr[pidx]), wb,
                jnp.asarray(u_cache[pidx]), key, lr)
            u_new = np.asarray(u_new)
            u_cache[idx] = u_new[:m]
            okm = np.asarray(ok)[:m]
            bad += int(np.sum(~okm))
            losses.append(np.asarray(loss)[:m][okm])
            outs.append(np.asarray(o)[:m])
            seen.append(idx)
            if bar is not None:
                bar.update(1)
        train_loss = float(np.mean(np.concatenate(losses))) if losses else float("nan")
        theta = params * g_unit
        test_loss, test_acc = eval_split(theta, xte, yte, ds.y_test)
        hist["epoch_seconds"].append(time.perf_counter() - t0)
        hist["train_loss_history"].append(train_loss)
        hist["test_loss_history"].append(test_loss)
        hist["nonconverged"].append(bad)
        if classification:
            # running accuracy: the free-phase outputs seen during the epoch
            pred = exp.predict_classes(np.concatenate(outs), ds.n_classes)
            train_acc = float(np.mean(pred == np.asarray(ds.y_train)[np.concatenate(seen)]))
            hist["train_accuracy_history"].append(train_acc)
            hist["test_accuracy_history"].append(test_acc)
        if bar is not None:
            msg = f"epoch {epoch + 1}/{n_epochs} loss {train_loss:.4g}"
            if classification:
                msg += f" test acc {test_acc:.3f}"
            bar.set_postfix_str(msg)
        leaves = jax.tree_util.tree_leaves(opt_state)
        meta = {"parameters": pinfo.parameters, "rule": rule, "epoch": epoch + 1,
                "rng": rng.bit_generator.state, "hist": hist}
        _atomic_savez(ckpt, params=np.asarray(params), u_cache=u_cache,
                      meta=np.asarray(json.dumps(meta)),
                      **{f"opt_{i}": np.asarray(leaf) for i, leaf in enumerate(leaves)})
        if t.checkpoint_every and (epoch + 1) % t.checkpoint_every == 0:
            np.save(out / f"conductances_epoch{epoch + 1}.npy", np.asarray(theta))
    if bar is not None:
        bar.close()

    theta = np.asarray(params * g_unit)
    test_loss, test_acc = eval_split(jnp.asarray(theta), xte, yte, ds.y_test)
    if not np.isfinite(test_loss):
        if len(xte):
            raise ConvergenceError(f"{exp.path}: the trained network does not solve every "
                                   "test sample")
    metrics = TrainResult(
        experiment=str(exp.path), rule=rule, estimator=estimator, beta=learn.beta,
        loss=learn.loss, epochs=len(hist["train_loss_history"]), n_parameters=len(theta),
        n_train=n_train, n_test=len(xte), test_loss=test_loss, **hist)
    if classification:
        train_loss, train_acc = eval_split(jnp.asarray(theta), xtr, ytr, ds.y_train)
        metrics["train_loss"] = train_loss
        metrics["test_accuracy"] = test_acc
        metrics["train_accuracy"] = train_acc
    metrics["mean_epoch_seconds"] = (float(np.mean(hist["epoch_seconds"]))
                                     if hist["epoch_seconds"] else None)
    _atomic_text(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    conductances = {name: float(g) for name, g in zip(pinfo.parameters, theta)}
    write_spice(out / "trained.cir", netlist, conductances,
                title=f"{netlist.title or 'circuit'} (trained by circuitprop, {rule})")
    if hist["train_loss_history"]:
        _plot(out / "learning_curve.png", hist)
    metrics.conductances = conductances
    return metrics
