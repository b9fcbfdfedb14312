"""How the digits network holds up on real devices: test accuracy against the number of
programmable levels, and against device-to-device variation (Monte Carlo).

- Levels: ``examples/robustness`` (the digits network on programmable devices: 2 % write
  noise, 5 % variation, asymmetric soft-bounds pulses) trained with ``[device] levels`` =
  4 … 256, everything else equal (same seed, same data order).
- Variation: the network trained by ``examples/robustness`` (32 levels), evaluated by
  ``circuitprop montecarlo`` on ``--runs`` perturbed copies per variation 0 … 20 %.

Writes ``docs/robustness.md`` and two plots beside it.

Usage::

    python bench/robustness.py                 # 30 epochs per training, 50 runs per point
    python bench/robustness.py --epochs 5 --runs 20 --out /tmp/robustness.md
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

LEVELS = (4, 8, 16, 32, 64, 128, 256)
VARIATIONS = (0.0, 0.05, 0.1, 0.15, 0.2)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--runs", type=int, default=50)
    p.add_argument("--out", default=str(REPO / "docs" / "robustness.md"))
    args = p.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from circuitprop.experiment import load_experiment
    from circuitprop.learn import train
    from circuitprop.learn._montecarlo import montecarlo

    base = load_experiment(REPO / "examples" / "robustness" / "experiment.toml")
    t_all = time.perf_counter()
    by_level = []
    with tempfile.TemporaryDirectory(prefix="circuitprop-robust-") as tmp:
        for n in LEVELS:
            print(f"levels {n} ...", file=sys.stderr, flush=True)
            exp = dataclasses.replace(base, device=dataclasses.replace(base.device, levels=n))
            m = train(exp, Path(tmp) / f"l{n}", epochs=args.epochs, progress=False)
            by_level.append((n, m, Path(tmp) / f"l{n}" / "trained.cir"))
        deck = next(d for n, _, d in by_level if n == base.device.levels)
        by_var = []
        for v in VARIATIONS:
            print(f"variation {v} ...", file=sys.stderr, flush=True)
            by_var.append((v, montecarlo(base, deck, runs=args.runs, variation=v, seed=0)))

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    ax.plot([n for n, _, _ in by_level], [100 * m["test_accuracy"] for _, m, _ in by_level], "o-")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("programmable levels")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"digits, {args.epochs} epochs, 2 % write noise, 5 % variation")
    fig.tight_layout()
    levels_png = out.with_name("robustness_levels.png")
    fig.savefig(levels_png, dpi=110)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    xs = [100 * v for v, _ in by_var]
    mean = [100 * r["accuracy"]["mean"] for _, r in by_var]
    lo = [100 * r["accuracy"]["p05"] for _, r in by_var]
    hi = [100 * r["accuracy"]["p95"] for _, r in by_var]
    ax.plot(xs, mean, "o-", label="mean")
    ax.fill_between(xs, lo, hi, alpha=0.3, label="p05–p95")
    ax.set_xlabel("device-to-device variation σ (%)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"{args.runs} Monte Carlo copies per point")
    ax.legend()
    fig.tight_layout()
    var_png = out.with_name("robustness_variation.png")
    fig.savefig(var_png, dpi=110)
    plt.close(fig)

    d = base.device
    lines = [
        "# Robustness: levels and device variation",
        "",
        f"Written by `python bench/robustness.py --epochs {args.epochs} --runs {args.runs}` "
        f"({time.strftime('%Y-%m-%d')}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, {time.perf_counter() - t_all:.0f} s in all). The network is "
        "`examples/digits` (128 input sources, 100 rectifying hidden units, 10 differential "
        "outputs, 14 800 trainable devices) trained by centered EP on programmable devices "
        f"(`examples/robustness`): conductances in [{base.train.g_min:g}, {base.train.g_max:g}] S, "
        f"{d.write_noise:.0%} write noise, {d.variation:.0%} variation, pulse updates "
        f"({d.pulse_up:g} up / {d.pulse_down:g} down of the range, soft bounds), see "
        "`docs/devices.md`.",
        "",
        "## Test accuracy against the number of levels",
        "",
        f"![levels]({levels_png.name})",
        "",
        "| levels | test accuracy | changed devices per update | pulses per device per update |",
        "|---|---|---|---|",
    ]
    for n, m, _ in by_level:
        w = m["device_writes"]
        lines.append(f"| {n} | {100 * m['test_accuracy']:.1f}% | "
                     f"{100 * w['changed_fraction']:.2f}% | {w['mean_pulses_per_device']:.3f} |")
    lines += [
        "",
        f"## Test accuracy against device-to-device variation ({d.levels} levels)",
        "",
        f"The network trained with {d.levels} levels, evaluated on {args.runs} perturbed "
        "copies per point by `circuitprop montecarlo` (a log-normal factor per device on top "
        "of the variation it was trained with).",
        "",
        f"![variation]({var_png.name})",
        "",
        "| variation | mean | std | min | p05 | p50 | p95 | max |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for v, r in by_var:
        a = r["accuracy"]
        lines.append(f"| {100 * v:g}% | " + " | ".join(
            f"{100 * a[k]:.1f}%" for k in ("mean", "std", "min", "p05", "p50", "p95", "max"))
            + " |")
    lines.append("")
    out.write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
