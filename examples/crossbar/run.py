"""Wire resistance on a memristor crossbar: what it costs a trained classifier, and what
training on the wired array itself wins back.

A 128 x 10 crossbar (digits: 64 features as +x/-x row pairs at 0.2 V full scale, 10 columns
read as currents at virtual ground) is trained by equilibrium propagation on ideal lines
(``--wire-r 0``). Its conductances are then programmed into arrays whose row and column
lines have a resistance per segment (ex situ: the IR drop along the lines is not known to the
training), and, for some of them, the array is trained further on the wired circuit itself
(in situ: EP measures the real circuit, IR drop included).

Writes ``OUT/results.json``, ``OUT/accuracy_vs_wire.png`` and, with ``--doc``, a markdown
summary.

Usage::

    python examples/crossbar/run.py --out runs/crossbar            # about 15 min
    python examples/crossbar/run.py --out /tmp/xb --quick          # ex situ only, 30 s
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

#: the array and its signals: 0.2 V reads, conductances up to 0.1 mS (10 kOhm devices)
GAIN, G_UNIT, G_MAX = 0.2, 1e-4, 1e-4
#: target column currents (A) of the right class and of the others
TARGET = 1e-4
#: EP nudge of the current outputs: the readout sources shift by -BETA * (i - target)
BETA = 10.0


def experiment_text(deck: str, *, epochs: int, learning_rate: float, limit_train, limit_test
                    ) -> str:
    from circuitprop.builders import crossbar_experiment

    text = crossbar_experiment(deck, 64, 10, source="digits", beta=BETA, gain=GAIN,
                               g_unit=G_UNIT)
    extra = [f"limit_train = {limit_train}"] if limit_train else []
    extra += [f"limit_test = {limit_test}"] if limit_test else []
    text = text.replace('source = "digits"', "\n".join(['source = "digits"'] + extra))
    text = "\n".join(line for line in text.splitlines() if not line.startswith("target_"))
    return text.replace("[train]", "\n".join([
        "[train]", f"target_high = {TARGET}", f"target_low = {-TARGET}",
        'optimizer = "adam"', f"learning_rate = {learning_rate}",
        f"epochs = {epochs}", "batch_size = 8", f"g_max = {G_MAX}"]))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="folder for the runs and results")
    p.add_argument("--quick", action="store_true", help="a small version (tests)")
    p.add_argument("--doc", help="also write a markdown summary here")
    a = p.parse_args(argv)

    from circuitprop import load
    from circuitprop.builders import crossbar_deck
    from circuitprop.export import write_spice
    from circuitprop.learn import train
    from circuitprop.learn._montecarlo import montecarlo

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    if a.quick:
        wires, insitu = (0.0, 50.0), ()
        ideal = dict(epochs=10, learning_rate=0.05, limit_train=None, limit_test=None)
        tune = dict(epochs=1, learning_rate=0.01, limit_train=100, limit_test=None)
    else:
        wires, insitu = (0.0, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0), (10.0, 50.0)
        ideal = dict(epochs=30, learning_rate=0.05, limit_train=None, limit_test=None)
        tune = dict(epochs=2, learning_rate=0.01, limit_train=None, limit_test=None)

    def deck_for(r: float, name: str) -> Path:
        path = out / name
        path.write_text(crossbar_deck(64, 10, r, gain=GAIN, g_unit=G_UNIT, seed=0))
        return path

    t0 = time.perf_counter()
    base = deck_for(0.0, "ideal.cir")
    exp = out / "ideal.toml"
    exp.write_text(experiment_text(base.name, **ideal))
    m = train(exp, out / "ideal", progress=not a.quick)
    trained = {e.name: 1.0 / e.value for e in load(out / "ideal" / "trained.cir").elements
               if e.name.startswith("rd")}
    results = {"ideal": {"test_accuracy": m["test_accuracy"], "epochs": m["epochs"],
                         "mean_epoch_seconds": m["mean_epoch_seconds"]},
               "ex_situ": {}, "in_situ": {}}
    for r in wires:
        # the ideally trained conductances programmed into an array with wire resistance
        wired = load(deck_for(r, f"wire_{r:g}.cir"))
        deck = write_spice(out / f"transfer_{r:g}.cir", wired, trained)
        e = out / f"wire_{r:g}.toml"
        e.write_text(experiment_text(deck.name, **tune))
        mc = montecarlo(e, deck, runs=1)
        results["ex_situ"][f"{r:g}"] = mc["accuracy"]["mean"]
        if r in insitu:
            # training continues on the wired array (EP sees the IR drop)
            mi = train(e, out / f"insitu_{r:g}", progress=not a.quick)
            results["in_situ"][f"{r:g}"] = {"test_accuracy": mi["test_accuracy"],
                                            "epochs": mi["epochs"],
                                            "mean_epoch_seconds": mi["mean_epoch_seconds"]}
    results["seconds"] = time.perf_counter() - t0
    results["machine"] = f"{platform.machine()}, {platform.system()}"
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    plot(results, out / "accuracy_vs_wire.png")
    if a.doc:
        Path(a.doc).write_text(summary(results, a.quick))
    print(json.dumps(results, indent=2))
    return 0


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    rs = [float(r) for r in results["ex_situ"]]
    xs = [max(r, 0.1) for r in rs]  # the ideal array at the left edge of the log axis
    ax.semilogx(xs, [100 * v for v in results["ex_situ"].values()], "o-",
                label="trained on ideal lines, programmed ex situ")
    if results["in_situ"]:
        ri = [float(r) for r in results["in_situ"]]
        ax.semilogx(ri, [100 * v["test_accuracy"] for v in results["in_situ"].values()], "s",
                    label="then trained in situ (EP on the wired array)")
    ax.set_xlabel("wire resistance per segment (ohm; 0 at the left edge)")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def summary(results: dict, quick: bool) -> str:
    rows = ["| wire R per segment | ex situ | in situ |", "|---|---|---|"]
    for r, acc in results["ex_situ"].items():
        ins = results["in_situ"].get(r)
        rows.append(f"| {r} ohm | {100 * acc:.1f} % | "
                    + (f"{100 * ins['test_accuracy']:.1f} %" if ins else "") + " |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
