"""Compare every learning rule and EP estimator: gradient accuracy and training.

Writes ``docs/learning-rules.md`` with two parts, every number measured by this script:

1. **Gradient accuracy.** For each rule (``ep`` with each estimator, ``coupled``,
   ``contrastive``, ``agnostic`` with the centered estimator, ``exact``), the cosine of the
   rule's per-sample estimate with the exact gradient (implicit differentiation) and the
   relative error ``‖estimate − exact‖ / ‖exact‖``, on the first samples of the training
   split of ``tests/learn_decks/bias14.toml``, ``examples/xor`` and ``examples/iris``, with
   the trainable conductances as written in the netlist (what ``circuitprop gradcheck``
   does, without its finite differences; gradcheck tolerances, ideal measurements). Each
   EP/agnostic estimate is taken at a documented β (:data:`DOC_BETA`) and, where it differs,
   at the experiment's own β.
2. **Training.** xor and iris (their full epochs) and digits (reduced epochs, a subset of
   the rules by default) trained with ``circuitprop.learn.train`` with ``[learning] rule`` /
   ``estimator`` overridden; everything else as in the experiment file (β, η, optimizer,
   seed, data order).

A phase that does not converge is reported in the tables, never raised.

Usage::

    python bench/rules_compare.py                       # full (~10 min on 2 CPUs)
    python bench/rules_compare.py --quick --out /tmp/x.md   # smoke run (~1 min: bias14
                                                            # gradients, xor training)
    python bench/rules_compare.py --digits-rules all --digits-epochs 3
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shlex
import sys
import tempfile
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

#: (label, rule, estimator) of every rule compared.
RULES = [
    ("ep-positive", "ep", "positive"),
    ("ep-negative", "ep", "negative"),
    ("ep-centered", "ep", "centered"),
    ("ep-forward-2", "ep", "forward-2"),
    ("ep-forward-3", "ep", "forward-3"),
    ("ep-forward-4", "ep", "forward-4"),
    ("ep-forward-5", "ep", "forward-5"),
    ("coupled", "coupled", "centered"),
    ("contrastive", "contrastive", "centered"),
    ("agnostic-centered", "agnostic", "centered"),
    ("exact", "exact", "centered"),
]
LABELS = [r[0] for r in RULES]

#: β (S) of the gradient checks: small for the two-point estimators (their O(β) / O(β²)
#: bias is then below the solver noise), larger for forward-p so its bias is visible and
#: the order of each estimator shows. Coupled / contrastive / exact do not use β.
DOC_BETA = {"positive": 1e-6, "negative": 1e-6, "centered": 1e-6, "forward-2": 2e-5,
            "forward-3": 2e-5, "forward-4": 2e-5, "forward-5": 2e-5}

#: circuits of the gradient checks: (name, experiment file, samples full, samples quick).
GRAD_CIRCUITS = [
    ("bias14", "tests/learn_decks/bias14.toml", 5, 1),
    ("xor", "examples/xor/experiment.toml", 4, 0),
    ("iris", "examples/iris/experiment.toml", 4, 0),
]

TRAIN_EXAMPLES = ("xor", "iris", "digits")
DIGITS_DEFAULT_RULES = ("ep-centered", "coupled", "exact")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def uses_beta(rule: str) -> bool:
    return rule in ("ep", "agnostic")


# ----------------------------------------------------------------------------- gradients


def grad_checks(name: str, path: str, n_samples: int, second_beta: bool) -> dict:
    """Cosines / relative errors of every rule on the first ``n_samples`` training samples.

    Returns ``{"n": n, "params": P, "exp_beta": β, "rows": {label: {tag: stats}}}`` with
    ``tag`` ``"doc"`` or ``"exp"``; stats hold ``cos`` (per converged sample), ``rel``,
    ``bad`` (samples that did not converge), ``beta``, ``eta`` and ``error`` (a message)."""
    import jax
    import numpy as np

    from circuitprop.experiment import load_experiment
    from circuitprop.learn import (
        cosine,
        exact_gradient,
        problem_from_experiment,
        rule_config,
        sample_gradient,
    )
    from circuitprop.learn._measure import from_settings

    exp = load_experiment(REPO / path)
    learn = exp.learning
    prob, pinfo = problem_from_experiment(exp)
    ds = exp.load_data()
    n = min(n_samples, len(ds.x_train))
    xs = np.asarray(exp.encode_inputs(ds.x_train[:n]), dtype=np.float64)
    ys = np.asarray(exp.encode_targets(ds.y_train[:n], ds.n_classes), dtype=np.float64)
    theta = np.asarray(prob.base.g)[np.asarray(prob.train_idx)]
    meas = from_settings(exp.measurement)
    keys = jax.random.split(jax.random.PRNGKey(exp.measurement.seed), n)

    ex = jax.jit(jax.vmap(lambda a, b: exact_gradient(prob, theta, a, b)))(xs, ys)
    g_ex, ok_ex = np.asarray(ex[0]), np.asarray(ex[3])
    out = {"n": n, "params": len(theta), "exp_beta": float(learn.beta), "rows": {},
           "free_bad": int(np.sum(~ok_ex))}

    def one(rule, est, beta, eta):
        st = {"beta": beta, "eta": eta, "cos": [], "rel": [], "ratio": [], "bad": 0,
              "error": None}
        try:
            cfg = rule_config(rule, est, beta, eta, meas, learn.loss)
            res = jax.jit(jax.vmap(lambda a, b, k: sample_gradient(prob, cfg, theta, a, b, k)))(
                xs, ys, keys)
            g, ok = np.asarray(res.grad), np.asarray(res.ok) & ok_ex
        except Exception as e:  # a rule that cannot run here is reported, not raised
            st["error"] = f"{type(e).__name__}: {e}".splitlines()[0][:120]
            log(traceback.format_exc(limit=2))
            return st
        for i in range(n):
            if not ok[i] or not np.all(np.isfinite(g[i])):
                st["bad"] += 1
                continue
            st["cos"].append(cosine(g[i], g_ex[i]))
            ne = float(np.linalg.norm(g_ex[i]))
            st["rel"].append(float(np.linalg.norm(g[i] - g_ex[i])) / ne)
            st["ratio"].append(float(np.linalg.norm(g[i])) / ne)
        return st

    for label, rule, est in RULES:
        eta = learn.eta_for(rule)
        t0 = time.perf_counter()
        row = {"doc": one(rule, est, DOC_BETA[est] if uses_beta(rule) else learn.beta, eta)}
        if second_beta and uses_beta(rule) and float(learn.beta) != DOC_BETA[est]:
            row["exp"] = one(rule, est, float(learn.beta), eta)
        out["rows"][label] = row
        log(f"  gradients {name} {label}: {time.perf_counter() - t0:.1f} s")
    return out


# ----------------------------------------------------------------------------- training


def train_one(name: str, rule: str, est: str, epochs: int | None, workdir: Path) -> dict:
    from circuitprop.learn import train

    t0 = time.perf_counter()
    try:
        m = dict(train(REPO / "examples" / name / "experiment.toml",
                       workdir / f"{name}-{rule}-{est}", epochs=epochs, progress=False,
                       rule=rule, estimator=est, quiet=True))
    except Exception as e:  # ConvergenceError and friends: reported in the table
        log(traceback.format_exc(limit=2))
        return {"error": f"{type(e).__name__}: {e}".splitlines()[0][:120],
                "wall_seconds": time.perf_counter() - t0}
    m["wall_seconds"] = time.perf_counter() - t0
    return m


# ----------------------------------------------------------------------------- markdown


def fmt_cos(c: float) -> str:
    if c != c:
        return "nan"
    if c > 0.9999:
        d = 1.0 - c
        return "1" if d <= 0 else f"1 − {d:.1e}"
    return f"{c:.4f}"


def fmt_stats(st: dict, n: int) -> tuple[str, str, str, str]:
    """(mean cosine, min cosine, max relative error, mean norm ratio) cells."""
    if st["error"]:
        return ("error", "error", st["error"].replace("|", "/"), "")
    if not st["cos"]:
        return ("did not converge", "did not converge", f"{st['bad']}/{n} did not converge",
                "")
    import numpy as np

    note = f" ({st['bad']}/{n} did not converge)" if st["bad"] else ""
    return (fmt_cos(float(np.mean(st["cos"]))) + note, fmt_cos(float(np.min(st["cos"]))),
            f"{max(st['rel']):.1e}", f"{float(np.mean(st['ratio'])):.3g}")


def grad_table(name: str, path: str, res: dict, second: bool) -> list[str]:
    n = res["n"]
    lines = [f"### {name} (`{path}`, {res['params']} trainable conductances, "
             f"{n} samples, experiment β = {res['exp_beta']:g} S)", ""]
    head = "| rule | β (S) | η | mean cos | min cos | max rel. err | ‖est‖/‖exact‖ |"
    sep = "|---|---|---|---|---|---|---|"
    if second:
        head += f" mean cos at β = {res['exp_beta']:g} | max rel. err at β = {res['exp_beta']:g} |"
        sep += "---|---|"
    lines += [head, sep]
    for label, rule, _ in RULES:
        row = res["rows"][label]
        d = row["doc"]
        beta = f"{d['beta']:g}" if uses_beta(rule) else "—"
        if rule == "coupled":
            eta = f"{d['eta'] if d['eta'] is not None else 0.1:g}"
        elif rule == "contrastive":
            eta = "1"
        elif rule == "agnostic":
            eta = "auto" if d["eta"] is None else f"{d['eta']:g} S/V²"
        else:
            eta = "—"
        cells = [label, beta, eta, *fmt_stats(d, n)]
        if second:
            if "exp" in row:
                e = fmt_stats(row["exp"], n)
                cells += [e[0], e[2]]
            else:
                cells += ["same" if uses_beta(rule) else "—", "same" if uses_beta(rule) else "—"]
        lines.append("| " + " | ".join(cells) + " |")
    if res["free_bad"]:
        lines.append(f"\nThe exact free phase did not converge on {res['free_bad']} sample(s); "
                     "those are counted as not converged for every rule.")
    return lines + [""]


def train_table(name: str, results: dict, epochs_note: str) -> list[str]:
    lines = [f"### {name} ({epochs_note})", "",
             "| rule | test acc | train acc | final train loss | test loss | unconverged test samples "
             "| s/epoch | total s |",
             "|---|---|---|---|---|---|---|---|"]
    for label in LABELS:
        if label not in results:
            continue
        m = results[label]
        if m is None:
            lines.append(f"| {label} | not run (time budget) | | | | | | |")
            continue
        if "error" in m:
            msg = "did not converge" if "Convergence" in m["error"] else "error"
            lines.append(f"| {label} | {msg} | | | | | | {m['wall_seconds']:.1f} |")
            continue
        secs = m["epoch_seconds"]
        per = sum(secs[1:]) / len(secs[1:]) if len(secs) > 1 else secs[0]
        acc = lambda k: f"{100 * m[k]:.1f}%" if m.get(k) is not None else "—"  # noqa: E731
        tl = m["train_loss_history"][-1] if m["train_loss_history"] else float("nan")
        bad = sum(m["non_converged"]["test"])
        lines.append(f"| {label} | {acc('test_accuracy')} | {acc('train_accuracy')} | "
                     f"{tl:.4g} | {m['test_loss']:.4g} | {bad} | {per:.3f} | "
                     f"{m['wall_seconds']:.1f} |")
    return lines + [""]


HOLO_BEGIN = "<!-- holomorphic: written by bench/holomorphic.py -->"
HOLO_END = "<!-- end holomorphic -->"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true",
                   help="smoke run (~1 min): 2 samples of bias14 at the documented beta only, "
                        "xor training only")
    p.add_argument("--out", default=str(REPO / "docs" / "learning-rules.md"))
    p.add_argument("--digits-epochs", type=int, default=3)
    p.add_argument("--digits-rules", default=",".join(DIGITS_DEFAULT_RULES),
                   help="comma-separated rule labels for digits, 'all' or 'none'")
    p.add_argument("--budget", type=float, default=660.0,
                   help="seconds: digits rules that would start after this are not run")
    args = p.parse_args(argv)
    t_start = time.perf_counter()

    import jax

    import circuitprop  # noqa: F401  (enables float64)

    jax.config.update("jax_enable_x64", True)

    if args.digits_rules == "all":
        digits_rules = list(LABELS)
    elif args.digits_rules == "none":
        digits_rules = []
    else:
        digits_rules = [s.strip() for s in args.digits_rules.split(",") if s.strip()]
        for s in digits_rules:
            if s not in LABELS:
                p.error(f"unknown rule label {s!r}; one of {', '.join(LABELS)}")

    # 1. gradients
    grads = []
    for name, path, n_full, n_quick in GRAD_CIRCUITS:
        n = n_quick if args.quick else n_full
        if n == 0:
            continue
        log(f"gradients: {name} ({n} samples)")
        grads.append((name, path, grad_checks(name, path, n, second_beta=not args.quick)))
    t_grad = time.perf_counter() - t_start

    # 2. training
    train_res: dict[str, dict] = {}
    examples = ("xor",) if args.quick else TRAIN_EXAMPLES
    notes = {}
    with tempfile.TemporaryDirectory(prefix="circuitprop-rules-") as tmp:
        for name in examples:
            train_res[name] = {}
            labels = LABELS if name != "digits" else digits_rules
            epochs = args.digits_epochs if name == "digits" else None
            digits_last = None
            for label, rule, est in RULES:
                if label not in labels:
                    continue
                elapsed = time.perf_counter() - t_start
                if name == "digits" and digits_last is not None and \
                        elapsed + digits_last > args.budget:
                    log(f"train {name} {label}: skipped (time budget)")
                    train_res[name][label] = None
                    continue
                log(f"train {name} {label} ...")
                m = train_one(name, rule, est, epochs, Path(tmp))
                train_res[name][label] = m
                digits_last = m["wall_seconds"]
                log(f"  {m.get('test_accuracy', m.get('error'))} in {m['wall_seconds']:.1f} s")
            from circuitprop.experiment import load_experiment

            exp = load_experiment(REPO / "examples" / name / "experiment.toml")
            n_ep = epochs if epochs is not None else exp.train.epochs
            note = (f"{n_ep} epochs" + (f" of the experiment's {exp.train.epochs}, reduced"
                                        if n_ep != exp.train.epochs else ", the experiment's own")
                    + f", β = {exp.learning.beta:g} S, {exp.train.optimizer}, "
                    f"lr {exp.train.learning_rate:g}, batch {exp.train.batch_size}")
            notes[name] = note
    t_total = time.perf_counter() - t_start

    # markdown
    argv_list = sys.argv[1:] if argv is None else list(argv)
    cmd = "python bench/rules_compare.py" + "".join(" " + shlex.quote(a) for a in argv_list)
    lines = [
        "# Learning rules compared: gradient accuracy and training",
        "",
        f"Written by `{cmd}` on {datetime.date.today().isoformat()} "
        f"({platform.machine()}, {os.cpu_count()} CPUs, shared; Python "
        f"{platform.python_version()}, JAX {jax.__version__}, float64; "
        f"{'quick run' if args.quick else 'full run'}: {t_total:.0f} s in all, "
        f"{t_grad:.0f} s of them gradient checks). Every number below is measured by the "
        "script; rerun it to refresh this page.",
        "",
        "Rules (see `docs/learning.md`): `ep` with each estimator, `coupled` (η from the "
        "experiment, 0.1 when absent), `contrastive` (η = 1), `agnostic` with the centered "
        "estimator (compliance `agnostic_eta` from the experiment, automatic when absent), "
        "`exact` (implicit differentiation, the baseline).",
        "",
        "## Gradient accuracy",
        "",
        "For each circuit, the first training samples with the trainable conductances as "
        "written in the netlist (as `circuitprop gradcheck` does; phases solved to "
        "rtol 1e-13, ideal measurements). *cos* is the cosine of the rule's estimate with "
        "the exact gradient (mean and minimum over the samples), *rel. err* is "
        "max ‖estimate − exact‖ / ‖exact‖, ‖est‖/‖exact‖ the mean ratio of norms. β is "
        "the documented one: 1e-6 S for "
        "positive / negative / centered (and agnostic), 2e-5 S for forward-p (so its bias "
        "shows); the last columns repeat the check at the experiment's own β where it "
        "differs (\"same\" where it does not). Coupled and contrastive learning are not "
        "gradients (their estimate is the update direction written as a gradient), so "
        "their relative error mostly measures a scale mismatch (see the norm ratio). "
        "\"did not converge\": a phase of that sample did not converge (counted, not "
        "averaged).",
        "",
    ]
    for name, path, res in grads:
        lines += grad_table(name, path, res, second=not args.quick)
    lines += [
        "## Training",
        "",
        "Each example trained with `circuitprop.learn.train(experiment, rule=…, "
        "estimator=…)`: everything but the rule as in `examples/*/experiment.toml` (β, "
        "optimizer, learning rate and decay, batch size, seed, data order, initial "
        "conductances), so all rules see the same data in the same order. *test acc* / "
        "*train acc*: final accuracy of the trained network; *final train loss*: mean "
        "free-phase loss of the last epoch; *unconverged test samples*: free phases of the "
        "per-epoch test evaluations that did not converge (left out of those metrics and "
        "counted), summed over epochs (a training step that does not converge stops the "
        "run: \"did not converge\"); *s/epoch*: mean over "
        "the epochs after the first (the first includes compilation); *total s*: wall time "
        "of the whole `train` call (compilation, evaluation and output files included). "
        "\"did not converge\": training raised a convergence error.",
        "",
    ]
    for name in examples:
        lines += train_table(name, train_res[name], notes[name])
    if "digits" in examples:
        ran = [lb for lb in digits_rules if train_res["digits"].get(lb) is not None]
        lines += [f"digits ran for: {', '.join(ran) if ran else 'no rule'} "
                  f"({args.digits_epochs} epochs; other rules not run on digits to keep "
                  "the script near 10 minutes — `--digits-rules all` runs them all).", ""]
    if args.quick:
        lines += ["Quick run: 2 gradient samples of bias14 only (no xor / iris gradient "
                  "checks, no experiment-β column), xor training only.", ""]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    # the holomorphic-estimator section is measured by bench/holomorphic.py: keep it
    kept = ""
    if out.exists():
        old = out.read_text(encoding="utf-8")
        a, b = old.find(HOLO_BEGIN), old.find(HOLO_END)
        if a >= 0 and b > a:
            kept = "\n" + old[a : b + len(HOLO_END)] + "\n"
    out.write_text("\n".join(lines).rstrip() + "\n" + kept, encoding="utf-8")
    log(f"wrote {out} ({t_total:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
