"""A Hopfield-style continuous energy network trained by equilibrium propagation on iris.

Energy (Scellier & Bengio 2017, layered, inputs clamped), state s = (h, o):

    E(s, θ, x) = ½‖h‖² + ½‖o‖² − xᵀW1 ρ(h) − ρ(h)ᵀW2 ρ(o) − b1ᵀρ(h) − b2ᵀρ(o)

with ρ(s) = ½(1 + tanh(2s − 1)), a smooth hard sigmoid (ρ(½) = ½, ρ'(½) = 1). Cost
C = ½‖o − y‖² against the one-hot class. Trained by centered EP through
``circuitprop.bilevel`` (vmapped over the batch, Adam), compared against the implicit
gradient. Run ``python examples/hopfield/run.py [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree
from sklearn.datasets import load_iris
from sklearn.model_selection import train_test_split

from circuitprop import bilevel as bl


def rho(s):
    return 0.5 * (1.0 + jnp.tanh(2.0 * s - 1.0))


def energy(s, th, x):
    h, o = s["h"], s["o"]
    rh, ro = rho(h), rho(o)
    return (0.5 * h @ h + 0.5 * o @ o - x @ th["W1"] @ rh - rh @ th["W2"] @ ro
            - th["b1"] @ rh - th["b2"] @ ro)


def cost(s, y):
    return 0.5 * jnp.sum((s["o"] - y) ** 2)


def data(seed):
    X, t = load_iris(return_X_y=True)
    Xtr, Xte, ttr, tte = train_test_split(X, t, test_size=0.2, stratify=t, random_state=seed)
    mu, sd = Xtr.mean(0), Xtr.std(0)
    Xtr, Xte = (Xtr - mu) / sd, (Xte - mu) / sd
    return (jnp.asarray(Xtr), jnp.eye(3)[ttr], jnp.asarray(ttr),
            jnp.asarray(Xte), jnp.eye(3)[tte], jnp.asarray(tte))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hidden", type=int, default=16)
    ap.add_argument("--steps", type=int, default=80)
    ap.add_argument("--beta", type=float, default=0.05)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="a few steps (smoke test)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args(argv)
    steps = 20 if args.quick else args.steps
    t0 = time.time()
    Xtr, Ytr, ttr, Xte, Yte, tte = data(args.seed)
    H = args.hidden
    k1, k2 = jax.random.split(jax.random.PRNGKey(args.seed))
    theta = {"W1": jax.random.normal(k1, (4, H)) / 2.0,
             "W2": jax.random.normal(k2, (H, 3)) / np.sqrt(H),
             "b1": jnp.zeros(H), "b2": jnp.zeros(3)}
    s0 = {"h": jnp.zeros(H), "o": jnp.zeros(3)}
    prob = bl.EnergyProblem(energy, cost, s0)

    def mean_tree(t):
        return jax.tree_util.tree_map(lambda a: a.mean(0), t)

    @jax.jit
    def ep_batch(th, X, Y):
        r = jax.vmap(lambda x, y: bl.ep_gradient(prob, th, x, y, beta=args.beta,
                                                 estimator="centered"))(X, Y)
        return mean_tree(r.grad), r.loss.mean(), r.converged.all()

    @jax.jit
    def implicit_batch(th, X, Y):
        r = jax.vmap(lambda x, y: bl.implicit_gradient(prob, th, x, y))(X, Y)
        return mean_tree(r.grad)

    Xall, Yall, tall = (jnp.concatenate(a) for a in ((Xtr, Xte), (Ytr, Yte), (ttr, tte)))
    ntr = Xtr.shape[0]

    @jax.jit
    def evaluate_all(th):  # one compiled relaxation for both splits
        o = jax.vmap(lambda x: bl.relax(prob, th, x).state["o"])(Xall)
        return 0.5 * jnp.sum((o - Yall) ** 2, axis=1), jnp.argmax(o, axis=1) == tall

    def evaluate(th, split):
        loss, hit = evaluate_all(th)
        sl = slice(0, ntr) if split == "train" else slice(ntr, None)
        return loss[sl].mean(), hit[sl].mean()

    def cos(a, b):
        a, b = ravel_pytree(a)[0], ravel_pytree(b)[0]
        return float(a @ b / (jnp.linalg.norm(a) * jnp.linalg.norm(b)))

    opt = optax.adam(args.lr)
    state = opt.init(theta)
    loss0, acc0 = evaluate(theta, "train")
    g_ep, _, _ = ep_batch(theta, Xtr, Ytr)
    cos0 = cos(g_ep, implicit_batch(theta, Xtr, Ytr))
    nonconv = 0
    for _ in range(steps):
        g, _, ok = ep_batch(theta, Xtr, Ytr)
        nonconv += int(not bool(ok))
        upd, state = opt.update(g, state, theta)
        theta = optax.apply_updates(theta, upd)
    loss1, acc1 = evaluate(theta, "train")
    tl, tacc = evaluate(theta, "test")
    g_ep, _, _ = ep_batch(theta, Xtr, Ytr)
    cos1 = cos(g_ep, implicit_batch(theta, Xtr, Ytr))
    out = {"steps": steps, "beta": args.beta, "hidden": H,
           "train_loss_before": float(loss0), "train_loss_after": float(loss1),
           "train_accuracy_before": float(acc0), "train_accuracy_after": float(acc1),
           "test_loss": float(tl), "test_accuracy": float(tacc),
           "cosine_ep_implicit_before": cos0, "cosine_ep_implicit_after": cos1,
           "nonconverged_batches": nonconv, "seconds": time.time() - t0}
    if args.json:
        print(json.dumps(out))
    else:
        print(f"Hopfield {4}-{H}-3 on iris, centered EP (beta={args.beta}), {steps} full-batch "
              f"Adam steps")
        print(f"train loss {out['train_loss_before']:.4f} -> {out['train_loss_after']:.4f}, "
              f"train accuracy {acc0:.3f} -> {acc1:.3f}, test accuracy {tacc:.3f}")
        print(f"cosine(EP, implicit) of the batch gradient: {cos0:.6f} (start), "
              f"{cos1:.6f} (end); non-converged batches {nonconv}; {out['seconds']:.1f} s")
    return out


if __name__ == "__main__":
    main()
