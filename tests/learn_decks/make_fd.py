"""ngspice central finite differences of the mse loss of ``bias14`` (the oracle of
``tests/test_learn_ngspice.py``).

For every training sample of ``bias14.toml`` and every trainable resistor ``k`` the deck is
re-solved by ngspice (tight options, ``circuitprop.export.NGSPICE_TIGHT_OPTIONS``) with the
sample's input source values and the conductance ``g_k ± h_k`` (``h_k = REL_STEP·g_k``), and

    dL/dg_k ≈ (L(g + h_k e_k) − L(g − h_k e_k)) / (2 h_k),   L = ½ Σ_j (V_out_j − y_j)².

The file also holds, per sample, the coupled-learning estimate computed from two ngspice
solves (free phase; clamped phase with every output held by a voltage source at
``o_F + η (y − o_F)``): ``(1/η) [½ΔV_C² − ½ΔV_F²]`` over the trainable resistors.

The deck text is edited line by line (resistor values written as ``repr(1/g)`` ohms, input
sources as ``DC value``), so the oracle does not go through circuitprop's solver or
exporter. Usage::

    python tests/learn_decks/make_fd.py            # writes tests/learn_decks/bias14_fd.json
    python tests/learn_decks/make_fd.py --check 0  # recompute sample 0, compare with the file
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

DECK = HERE / "bias14.cir"
EXPERIMENT = HERE / "bias14.toml"
FD_JSON = HERE / "bias14_fd.json"
REL_STEP = 1e-4


def setup(experiment_path: Path = EXPERIMENT):
    """``(deck_text, parameters, conductances, samples, outputs)`` of the experiment:
    trainable resistor names (deck order, lowercase), their conductances as written in the
    deck (S), the training samples ``[(input values, targets), ...]`` (encoded as the
    experiment encodes them) and the output node pairs."""
    from circuitprop.experiment import check_names, load_experiment

    exp = load_experiment(experiment_path)
    netlist = exp.load_netlist()
    names = [n.lower() for n in check_names(exp, netlist)]
    ohms = {el.name.lower(): float(el.value) for el in netlist.elements if el.kind == "r"}
    g = [1.0 / ohms[n] for n in names]
    ds = exp.load_data()
    x = exp.encode_inputs(ds.x_train)
    y = exp.encode_targets(ds.y_train, ds.n_classes)
    samples = [([float(v) for v in xi], [float(v) for v in yi]) for xi, yi in zip(x, y)]
    inputs = [s.lower() for s in exp.inputs]
    deck = Path(exp.netlist).read_text(encoding="utf-8")
    return deck, names, g, samples, inputs, list(exp.outputs)


def edit_deck(deck: str, conductances: dict[str, float], sources: dict[str, float]) -> str:
    """The deck with the named resistors at ``1/g`` ohms and the named V sources at
    ``DC value`` (plain line edits; every name must be found exactly once)."""
    out, seen = [], set()
    for k, line in enumerate(deck.splitlines()):
        tok = line.split()
        name = tok[0].lower() if (k > 0 and tok) else ""
        if name in conductances:
            line = f"{tok[0]} {tok[1]} {tok[2]} {repr(1.0 / conductances[name])}"
            seen.add(name)
        elif name in sources:
            line = f"{tok[0]} {tok[1]} {tok[2]} DC {repr(float(sources[name]))}"
            seen.add(name)
        out.append(line)
    missing = (set(conductances) | set(sources)) - seen
    if missing:
        raise ValueError(f"not found in the deck: {sorted(missing)}")
    return "\n".join(out) + "\n"


def _output_voltages(volts: dict[str, float], outputs) -> list[float]:
    res = []
    for o in outputs:
        p, m = o if isinstance(o, (tuple, list)) else (o, "0")
        vp = 0.0 if p == "0" else volts[p.lower()]
        vm = 0.0 if m == "0" else volts[m.lower()]
        res.append(vp - vm)
    return res


def ngspice_loss(deck: str, outputs, targets) -> tuple[float, list[float]]:
    """``(½ Σ (V_out − y)², V_out)`` of a deck solved by ngspice (tight options)."""
    from circuitprop.export import ngspice_operating_point

    volts, _ = ngspice_operating_point(deck)
    o = _output_voltages(volts, outputs)
    return 0.5 * sum((a - b) ** 2 for a, b in zip(o, targets)), o


def _pair(o):
    return tuple(o) if isinstance(o, (tuple, list)) else (o, "0")


def _drops(deck: str, names, volts: dict[str, float]) -> list[float]:
    """Voltage across each named resistor (first node minus second) from node voltages."""
    nodes = {}
    for line in deck.splitlines()[1:]:
        tok = line.split()
        if tok and tok[0].lower() in names:
            nodes[tok[0].lower()] = (tok[1].lower(), tok[2].lower())
    v = lambda n: 0.0 if n in ("0", "gnd") else volts[n]  # noqa: E731
    return [v(nodes[n][0]) - v(nodes[n][1]) for n in names]


def ngspice_coupled(deck: str, names, outputs, targets, eta: float) -> list[float]:
    """Coupled learning from ngspice phases: ``(1/η) [½ΔV_C² − ½ΔV_F²]``."""
    from circuitprop.export import ngspice_operating_point

    vf, _ = ngspice_operating_point(deck)
    o = _output_voltages(vf, outputs)
    clamps = [f"vclamp_{k} {_pair(out)[0]} {_pair(out)[1]} DC {repr(a + eta * (b - a))}"
              for k, (out, a, b) in enumerate(zip(outputs, o, targets))]
    lines = deck.rstrip().splitlines()
    end = max(i for i, line in enumerate(lines) if line.strip().lower() == ".end")
    vc, _ = ngspice_operating_point("\n".join(lines[:end] + clamps + lines[end:]) + "\n")
    df, dc = _drops(deck, names, vf), _drops(deck, names, vc)
    return [(0.5 * c * c - 0.5 * f * f) / eta for f, c in zip(df, dc)]


def fd_sample(index: int, rel_step: float = REL_STEP, experiment_path: Path = EXPERIMENT,
              eta: float | None = None) -> dict:
    """ngspice central differences of one training sample's loss (see the module doc)."""
    deck, names, g, samples, inputs, outputs = setup(experiment_path)
    x, y = samples[index]
    src = dict(zip(inputs, x))
    base = dict(zip(names, g))
    loss, out = ngspice_loss(edit_deck(deck, base, src), outputs, y)
    coupled = None
    if eta is not None:
        coupled = ngspice_coupled(edit_deck(deck, base, src), names, outputs, y, eta)
    grad = []
    for name, gk in zip(names, g):
        h = rel_step * gk
        lp, _ = ngspice_loss(edit_deck(deck, {**base, name: gk + h}, src), outputs, y)
        lm, _ = ngspice_loss(edit_deck(deck, {**base, name: gk - h}, src), outputs, y)
        grad.append((lp - lm) / (2 * h))
    res = {"index": index, "inputs": x, "targets": y, "outputs": out, "loss": loss,
           "finite_difference": grad}
    if coupled is not None:
        res["coupled"] = coupled
    return res


def ngspice_version() -> str:
    try:
        p = subprocess.run(["ngspice", "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    for line in (p.stdout or "").splitlines():
        if "ngspice-" in line:
            return line.strip(" *")
    return "unknown"


def make(rel_step: float = REL_STEP) -> dict:
    from circuitprop.experiment import load_experiment
    from circuitprop.export import NGSPICE_TIGHT_OPTIONS

    _, names, g, samples, _, outputs = setup()
    eta = float(load_experiment(EXPERIMENT).learning.eta)
    return {
        "description": "ngspice central finite differences of the mse loss "
                       "(1/2 sum (V_out - y)^2, V^2) w.r.t. each trainable conductance "
                       "(V^2 per S), written by tests/learn_decks/make_fd.py",
        "experiment": EXPERIMENT.name,
        "deck": DECK.name,
        "ngspice": ngspice_version(),
        "options": NGSPICE_TIGHT_OPTIONS,
        "rel_step": rel_step,
        "parameters": names,
        "conductances": g,
        "outputs": [o if isinstance(o, str) else "-".join(o) for o in outputs],
        "coupled_eta": eta,
        "samples": [fd_sample(k, rel_step, eta=eta) for k in range(len(samples))],
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", type=int, metavar="K",
                   help="recompute sample K and compare with the stored file")
    p.add_argument("--out", default=str(FD_JSON))
    args = p.parse_args(argv)
    if args.check is not None:
        stored = json.loads(Path(args.out).read_text())
        new = fd_sample(args.check, stored["rel_step"])
        old = stored["samples"][args.check]["finite_difference"]
        worst = max(abs(a - b) for a, b in zip(new["finite_difference"], old))
        scale = max(abs(b) for b in old)
        print(f"sample {args.check}: max |new - stored| = {worst:.3e} (max |fd| {scale:.3e})")
        return 0 if worst <= 1e-6 * scale else 1
    data = make()
    Path(args.out).write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.out}: {len(data['samples'])} samples x {len(data['parameters'])} "
          "parameters")
    return 0


if __name__ == "__main__":
    sys.exit(main())
