"""A transistor learning network: NMOS edges whose gate voltages learn XOR by coupled learning.

Trains ``experiment.toml`` (coupled learning on the 16 gate voltages of ``network.cir``), then
the same network from the same start with the exact gradient (the adjoint of the MNA
residual) as a baseline, checks ``trained.cir`` in ngspice on the four XOR inputs, and writes
the learning curves (``--plot``) and a summary (``--doc``). The settling time and energy of
an inference on the modelled chip (1 pF per node) come from ``metrics.json``
(``[train] physical_timing``).

    python examples/transistor-network/run.py --out runs/transistor-network \
        [--plot docs/transistor_network.png] [--doc runs/transistor-network/summary.md]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from circuitprop import operating_point  # noqa: E402
from circuitprop.experiment import load_experiment  # noqa: E402
from circuitprop.export import export_spice, ngspice_operating_point  # noqa: E402
from circuitprop.learn import train  # noqa: E402
from circuitprop.netlist import load  # noqa: E402

HERE = Path(__file__).resolve().parent
XOR = ((0, 0), (0, 1), (1, 0), (1, 1))
#: Adam step (V) of the exact-gradient baseline
BASELINE_LR = 0.05


def ngspice_check(exp, trained: Path, outputs) -> dict:
    """The trained deck's output on each XOR input, by ngspice, against ours."""
    netlist = load(trained)
    x = exp.encode_inputs(np.asarray(XOR, dtype=np.float64))
    ours, theirs = [float(o[0]) for o in outputs], []
    for row in x:
        deck = export_spice(netlist, sources=dict(zip(exp.inputs, row)))
        volts, _ = ngspice_operating_point(deck)
        theirs.append(volts[exp.outputs[0][0]])
    return {"ours": ours, "ngspice": theirs,
            "max_abs_diff": float(np.max(np.abs(np.subtract(ours, theirs))))}


def outputs_of(exp, trained: Path):
    """Our operating points of ``trained`` on the four inputs (``op`` through the API)."""
    netlist = load(trained)
    x = exp.encode_inputs(np.asarray(XOR, dtype=np.float64))
    outs = []
    for row in x:
        deck = export_spice(netlist, sources=dict(zip(exp.inputs, row)))
        res = operating_point(deck)
        outs.append([res.voltages[exp.outputs[0][0]]])
    return outs


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/transistor-network")
    ap.add_argument("--plot", default=None, help="learning curves (PNG)")
    ap.add_argument("--doc", default=None, help="summary (Markdown)")
    ap.add_argument("--epochs", type=int, default=None)
    a = ap.parse_args(argv)
    out = Path(a.out)
    exp = load_experiment(HERE / "experiment.toml")
    runs = {}
    # the baseline: the exact gradient from the same start, with Adam (its gradients are
    # in V² per V, not in coupled learning's units, so it gets its own step rule)
    baseline = dataclasses.replace(exp, train=dataclasses.replace(
        exp.train, optimizer="adam", learning_rate=BASELINE_LR, physical_timing=False))
    for rule, e in (("coupled", exp), ("exact", baseline)):
        t0 = time.perf_counter()
        m = train(e, out / rule, rule=rule, epochs=a.epochs, progress=True)
        runs[rule] = (m, time.perf_counter() - t0)
        print(f"{rule}: train loss {m['train_loss_history'][0]:.3g} -> "
              f"{m['train_loss_history'][-1]:.3g}, accuracy {m['test_accuracy']:.2f}, "
              f"{runs[rule][1]:.1f} s")
    m = runs["coupled"][0]
    outs = outputs_of(exp, out / "coupled" / "trained.cir")
    check = (ngspice_check(exp, out / "coupled" / "trained.cir", outs)
             if shutil.which("ngspice") else None)
    pt = m.get("physical_timing") or {}
    summary = {
        "coupled": {"loss_first": m["train_loss_history"][0], "loss": m["train_loss"],
                    "accuracy": m["test_accuracy"], "seconds": runs["coupled"][1],
                    "outputs": [o[0] for o in outs]},
        "exact": {"loss": runs["exact"][0]["train_loss"],
                  "accuracy": runs["exact"][0]["test_accuracy"],
                  "seconds": runs["exact"][1]},
        "inference_settling_time_mean": pt.get("inference_settling_time_mean"),
        "inference_energy_mean": pt.get("inference_energy_mean"),
        "step_energy_bound": pt.get("step_energy_bound"),
        "ngspice": check,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    if a.plot:
        fig, ax = plt.subplots(figsize=(6, 4))
        for rule, (mm, _) in runs.items():
            label = "coupled learning (gates)" if rule == "coupled" else "exact gradient (adjoint)"
            ax.semilogy(np.arange(1, len(mm["train_loss_history"]) + 1),
                        np.maximum(mm["train_loss_history"], 1e-12), label=label)
        ax.set_xlabel("epoch")
        ax.set_ylabel("XOR loss (V²)")
        ax.set_title("3x3 NMOS lattice, 16 trainable gate voltages")
        ax.legend()
        fig.tight_layout()
        Path(a.plot).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(a.plot, dpi=120)
    if a.doc:
        c, e = summary["coupled"], summary["exact"]
        lines = [
            "# Transistor network: XOR by coupled learning on gate voltages", "",
            f"- coupled learning: loss {c['loss_first']:.3g} -> {c['loss']:.3g} V², accuracy "
            f"{c['accuracy']:.2f}, {c['seconds']:.1f} s",
            f"- exact gradient (Adam, lr {BASELINE_LR} V), same start: loss {e['loss']:.3g} V², accuracy "
            f"{e['accuracy']:.2f}, {e['seconds']:.1f} s",
            "- outputs after coupled learning (targets 0.5, 0.6, 0.6, 0.5 V): "
            + ", ".join(f"{o:.4f}" for o in c["outputs"]),
        ]
        if summary["inference_settling_time_mean"] is not None:
            lines.append(f"- inference on the modelled chip (1 pF per node): settles in "
                         f"{summary['inference_settling_time_mean'] * 1e9:.2f} ns, "
                         f"{summary['inference_energy_mean'] * 1e12:.2f} pJ")
        if check:
            lines.append(f"- trained.cir in ngspice: outputs within "
                         f"{check['max_abs_diff']:.1e} V of ours")
        Path(a.doc).parent.mkdir(parents=True, exist_ok=True)
        Path(a.doc).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
