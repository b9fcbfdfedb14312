"""Sub-commands beyond ``op`` and ``dc``: ``gradcheck``, ``train``, ``build``."""

from __future__ import annotations

import argparse
import json
import sys

from ._estimators import RULES, estimator_names, is_estimator


def _positive_flags(args, names) -> None:
    """``--NAME`` values must be finite and > 0 (a user error otherwise)."""
    import math

    from ._errors import ExperimentError

    for name in names:
        v = getattr(args, name)
        if v is not None and not (math.isfinite(v) and v > 0):
            raise ExperimentError(f"--{name}: expected a finite number > 0, got {v!r}")


def _cmd_gradcheck(args) -> int:
    from .learn import gradcheck

    _positive_flags(args, ("beta", "eta"))
    res = gradcheck(args.experiment, sample=args.sample, rule=args.rule,
                    estimator=args.estimator, beta=args.beta, eta=args.eta, split=args.split)
    j = res.to_json()
    if args.json:
        json.dump(j, sys.stdout)
        sys.stdout.write("\n")
        return 0
    w = max([len("parameter")] + [len(p) for p in j["parameters"]])
    print(f"sample {j['sample']}: loss {j['loss']:.10g}; rule {j['rule']}"
          + (f" ({j['estimator']}, beta {j['beta']:g} S)" if j["rule"] in ("ep", "agnostic")
             else ""))
    # conductances in S; trainable V sources (gate voltages) in V
    head = "g (S)" if all(p.startswith("r") for p in j["parameters"]) else "value (S | V)"
    print(f"{'parameter':<{w}}  {head:>12}  {'exact dL/dθ':>17}  {'estimate':>17}  "
          f"{'finite diff.':>17}")
    for k, name in enumerate(j["parameters"]):
        print(f"{name:<{w}}  {j['conductances'][k]:12.5e}  {j['exact'][k]: .10e}  "
              f"{j['estimate'][k]: .10e}  {j['finite_difference'][k]: .10e}")
    num = lambda v, f: "undefined" if v is None else format(v, f)  # noqa: E731
    if j["exact_gradient_is_zero"]:
        print("the exact gradient is zero: the loss of this sample is stationary in every "
              "trainable conductance (no direction to compare)")
    print(f"cosine(estimate, exact) = {num(j['cosine_exact'], '.10f')}")
    print(f"cosine(estimate, finite differences) = {num(j['cosine_fd'], '.10f')}")
    print(f"cosine(exact, finite differences) = {num(j['cosine_exact_fd'], '.10f')}")
    print(f"relative error vs finite differences = {num(j['relative_error'], '.3e')}")
    return 0


def _cmd_tran(args) -> int:
    from ._errors import ExperimentError
    from ._transient import transient
    from .netlist import load

    for flag, v in (("--rtol", args.rtol), ("--atol", args.atol)):
        if v is not None and not (v > 0 and v < 1):
            raise ExperimentError(f"{flag}: expected a number in (0, 1), got {v!r}")
    deck = load(args.file)
    res = transient(deck, rtol=args.rtol, atol=args.atol)
    if args.raw:
        from ._raw import write_tran_raw

        write_tran_raw(args.raw, res, deck)
    if args.json:
        print(json.dumps(res.to_json()))
        return 0
    st = res.stats
    print(f"{len(res.time)} time points from {res.time[0]:.6g} s to {res.time[-1]:.6g} s "
          f"({st['accepted_steps']} steps, {st['rejected_steps']} rejected, "
          f"{st['seconds']:.2f} s)")
    width = max([len(n) for n in [*res.voltages, *res.currents]] + [8])
    print(f"{'':{width}}  {'final':>14}  {'min':>14}  {'max':>14}")
    for name, arr in [*((f"v({n})", a) for n, a in res.voltages.items()),
                      *((f"i({n})", a) for n, a in res.currents.items())]:
        print(f"{name:{width}}  {arr[-1]:14.6e}  {arr.min():14.6e}  {arr.max():14.6e}")
    return 0


def _cmd_montecarlo(args) -> int:
    import json

    from .learn._montecarlo import montecarlo

    out = montecarlo(args.experiment, args.netlist, runs=args.runs, variation=args.variation,
                     stuck_off=args.stuck_off, drift_t=args.drift_t, seed=args.seed,
                     plot=args.plot)
    if args.json:
        print(json.dumps(out))
        return 0
    key = "accuracy" if "accuracy" in out else "loss"
    s = out[key]
    print(f"{out['runs']} runs on {out['n_test']} test samples: {key} mean {s['mean']:.4g} "
          f"(std {s['std']:.3g}; min {s['min']:.4g}, p05 {s['p05']:.4g}, p50 {s['p50']:.4g}, "
          f"p95 {s['p95']:.4g}, max {s['max']:.4g})")
    return 0


def _cmd_train(args) -> int:
    from ._errors import ExperimentError
    from .learn import train

    if args.epochs is not None and args.epochs < 0:
        raise ExperimentError(f"--epochs: expected an integer >= 0, got {args.epochs}")
    m = train(args.experiment, args.out, resume=args.resume, epochs=args.epochs,
              progress=not args.no_progress, solver=args.solver, devices=args.devices,
              dtype=args.dtype)
    line = f"{m['epochs']} epochs"
    if m["test_loss"] is not None:
        line += f", test loss {m['test_loss']:.6g}"
    if m.get("test_accuracy") is not None:
        line += f", test accuracy {m['test_accuracy']:.4f}"
    if m["epoch_seconds"]:
        line += f", {m['mean_epoch_seconds']:.2f} s/epoch"
    left_out = sum(m["non_converged"]["test"])
    if left_out:
        line += (f" ({left_out} test-sample evaluations did not converge and were left out of "
                 "the per-epoch test metrics)")
    print(line)
    written = ["metrics.json", "trained.cir", "checkpoint.npz"]
    if m["epochs"]:
        written.append("learning_curve.png")
    print(f"wrote {args.out}/{', '.join(written)}")
    return 0


def _cmd_build(args) -> int:
    from ._errors import CircuitpropError
    from .builders._drn import drn_deck, drn_experiment

    try:
        deck = drn_deck(args.inputs, args.hidden, args.outputs, gain=args.gain, seed=args.seed,
                        bias=args.bias, load=args.load, leak=args.leak, g_unit=args.g_unit,
                        nonlinearity=args.nonlinearity,
                        differential=not args.single_ended, input_pm=not args.direct_inputs)
    except CircuitpropError as e:
        from ._errors import ExperimentError

        raise ExperimentError(str(e)) from None
    path = _write_deck(deck, args.output)
    if args.experiment and path is not None:
        exp = drn_experiment(path.name, args.inputs, args.outputs, source=args.source,
                             input_pm=not args.direct_inputs,
                             differential=not args.single_ended, gain=args.gain,
                             beta=args.beta, g_unit=args.g_unit)
        _write_deck(exp, args.experiment)
    return 0


#: the crossbar builder's argument names -> the options of ``circuitprop build crossbar``
_CROSSBAR_FLAGS = {"rows": "--rows", "cols": "--cols", "hidden": "--hidden", "wire_r": "--wire-r",
                   "readout": "--readout", "gain": "--gain", "g_unit": "--g-unit",
                   "load": "--load", "bias": "--bias", "seed": "--seed", "beta": "--beta"}


def _cmd_build_crossbar(args) -> int:
    import re
    from pathlib import Path

    from ._errors import CircuitpropError, ExperimentError
    from .builders._crossbar import crossbar_deck, crossbar_experiment

    shape = dict(hidden=args.hidden, differential=args.differential, readout=args.readout,
                 input_pm=not args.direct_inputs, gain=args.gain, g_unit=args.g_unit)
    try:
        deck = crossbar_deck(args.rows, args.cols, args.wire_r, load=args.load, bias=args.bias,
                             seed=args.seed, **shape)
        exp = None
        if args.experiment and args.output != "-":
            exp = crossbar_experiment(Path(args.output).name, args.rows, args.cols,
                                      source=args.source, beta=args.beta, **shape)
    except CircuitpropError as e:
        # name the command-line option, not the Python argument
        msg = re.sub(r"^crossbar: (\w+)", lambda m: "crossbar: "
                     + _CROSSBAR_FLAGS.get(m.group(1), m.group(1)), str(e))
        raise ExperimentError(msg) from None
    _write_deck(deck, args.output)
    if exp is not None:
        _write_deck(exp, args.experiment)
    return 0


def _write_deck(text: str, output: str):
    """Write generated text to ``output`` (``-`` for stdout); returns the path, or ``None``
    for stdout. A file that cannot be written is a user error (exit 2)."""
    if output == "-":
        sys.stdout.write(text)
        return None
    from pathlib import Path

    from ._errors import ExperimentError

    path = Path(output)
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as e:
        raise ExperimentError(f"{path}: cannot write: {e.strerror}") from None
    return path


def _cmd_build_flow(args) -> int:
    from ._errors import CircuitpropError, ExperimentError
    from .builders._flow import flow_network

    try:
        deck = flow_network(args.nodes, seed=args.seed, kind=args.kind,
                            mean_degree=args.mean_degree, k_min=args.k_min, k_max=args.k_max,
                            n_sources=args.sources, pressure=args.pressure)
    except CircuitpropError as e:
        raise ExperimentError(str(e)) from None
    _write_deck(deck, args.output)
    return 0


def _estimator(name: str) -> str:
    """``--estimator``: a name of the engine's estimator table."""
    if not is_estimator(name):
        raise argparse.ArgumentTypeError(f"invalid choice: {name!r} (one of {estimator_names()})")
    return name


def add_commands(sub) -> None:
    t = sub.add_parser("tran", help="run the deck's .tran transient analysis")
    t.add_argument("file")
    t.add_argument("--json", action="store_true",
                   help='print {"time", "voltages", "currents", "stats"}')
    t.add_argument("--raw", metavar="FILE",
                   help="also write an ngspice binary raw file (plot 'Transient Analysis')")
    t.add_argument("--rtol", type=float, help="error controller's relative tolerance (1e-6)")
    t.add_argument("--atol", type=float, help="error controller's absolute tolerance (1e-9)")
    t.set_defaults(func=_cmd_tran)

    g = sub.add_parser("gradcheck", help="compare a learning rule's gradient estimate with "
                       "the exact gradient and finite differences on one data sample")
    g.add_argument("experiment", help="experiment TOML file")
    g.add_argument("--sample", type=int, default=0, help="index of the data sample (train split)")
    g.add_argument("--split", choices=("train", "test"), default="train")
    g.add_argument("--rule", choices=RULES)
    g.add_argument("--estimator", type=_estimator,
                   help=f"EP estimator: {estimator_names()}")
    g.add_argument("--beta", type=float, help="nudging strength (siemens)")
    g.add_argument("--eta", type=float, help="coupled: clamp fraction; agnostic: compliance")
    g.add_argument("--json", action="store_true", help="print one JSON object")
    g.set_defaults(func=_cmd_gradcheck)

    t = sub.add_parser("train", help="train an experiment")
    t.add_argument("experiment", help="experiment TOML file")
    t.add_argument("--out", required=True, help="output folder")
    t.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.npz")
    t.add_argument("--epochs", type=int, help="override [train] epochs (total)")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.add_argument("--solver", help="override [train] solver (auto, newton, dense, coordinate)")
    t.add_argument("--devices", help="override [train] devices: a count of local devices, or "
                                     "'all' (each batch is sharded over them)")
    t.add_argument("--dtype", help="override [train] dtype (float64, float32)")
    t.set_defaults(func=_cmd_train)

    mc = sub.add_parser("montecarlo", help="a trained network's test set on perturbed copies "
                                           "(device variation, stuck devices, drift)")
    mc.add_argument("experiment", help="experiment TOML file")
    mc.add_argument("--netlist", required=True, help="the trained deck (e.g. OUT/trained.cir)")
    mc.add_argument("--runs", type=int, required=True, help="number of perturbed copies")
    mc.add_argument("--variation", type=float, default=0.0,
                    help="log-normal device-to-device spread σ (0: none)")
    mc.add_argument("--stuck-off", type=float, default=0.0,
                    help="fraction of devices stuck at [train] g_min")
    mc.add_argument("--drift-t", type=float, help="evaluate at this time (s) after programming "
                                                   "([device] drift_nu)")
    mc.add_argument("--seed", type=int, default=0)
    mc.add_argument("--plot", help="write a histogram PNG here")
    mc.add_argument("--json", action="store_true", help="print one JSON object")
    mc.set_defaults(func=_cmd_montecarlo)

    b = sub.add_parser("build", help="write a generated deck")
    bsub = b.add_subparsers(dest="builder", required=True)
    d = bsub.add_parser("drn", help="layered deep resistive network (fast-DRN style)")
    d.add_argument("--inputs", type=int, required=True, help="number of data features")
    d.add_argument("--hidden", type=int, nargs="*", default=[], help="hidden layer widths")
    d.add_argument("--outputs", type=int, required=True, help="number of outputs (classes)")
    d.add_argument("-o", "--output", required=True, help="deck file to write ('-': stdout)")
    d.add_argument("--experiment", help="also write a matching experiment TOML here")
    d.add_argument("--source", default="digits", help="[data] source of --experiment")
    d.add_argument("--gain", type=float, default=100.0, help="input gain (V per unit)")
    d.add_argument("--beta", type=float, default=1e-3, help="beta of --experiment (S)")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--bias", type=float, default=0.0, help="diode bias source magnitude (V)")
    d.add_argument("--load", type=float, default=1e-3, help="output load conductance (S)")
    d.add_argument("--leak", type=float, default=0.0, help="hidden leak conductance (S)")
    d.add_argument("--g-unit", type=float, default=1e-3, help="siemens per unit weight")
    d.add_argument("--nonlinearity", choices=("rectifier", "clamp"), default="rectifier")
    d.add_argument("--single-ended", action="store_true", help="one node per output")
    d.add_argument("--direct-inputs", action="store_true", help="one source per input")
    d.set_defaults(func=_cmd_build)

    c = bsub.add_parser("crossbar", help="memristor crossbar array(s) with wire resistance")
    c.add_argument("--rows", type=int, required=True, metavar="M", help="number of data features")
    c.add_argument("--cols", type=int, required=True, metavar="N", help="number of outputs")
    c.add_argument("--wire-r", type=float, required=True, metavar="R",
                   help="resistance of each line segment (ohm; 0: ideal lines, no wires)")
    c.add_argument("--hidden", type=int, nargs="+", default=[], metavar="H",
                   help="hidden layer widths (a stack of crossbars with diode rectifiers)")
    c.add_argument("--differential", action="store_true", help="two columns per output")
    c.add_argument("--readout", choices=("tia", "load"), default="tia",
                   help="tia: 0 V sources, outputs are currents; load: load resistors, "
                        "outputs are voltages")
    c.add_argument("--direct-inputs", action="store_true", help="one source per input")
    c.add_argument("--gain", type=float, default=100.0, metavar="G",
                   help="input gain (V per unit)")
    c.add_argument("--g-unit", type=float, default=1e-3, metavar="S",
                   help="siemens per unit weight")
    c.add_argument("--load", type=float, default=1e-3, metavar="S",
                   help="load conductance (S) of --readout load")
    c.add_argument("--bias", type=float, default=0.0, metavar="V",
                   help="rectifier bias magnitude (V)")
    c.add_argument("--seed", type=int, default=0, metavar="S")
    c.add_argument("--source", default="digits", help="[data] source of --experiment")
    c.add_argument("--beta", type=float, default=1e-3, metavar="B", help="beta of --experiment")
    c.add_argument("-o", "--output", required=True, metavar="FILE",
                   help="deck file to write ('-': stdout)")
    c.add_argument("--experiment", metavar="EXP.toml",
                   help="also write a matching experiment TOML here")
    c.set_defaults(func=_cmd_build_crossbar)

    f = bsub.add_parser("flow", help="disordered flow network (pipes R = 1/k, pressure sources)")
    f.add_argument("--nodes", type=int, required=True, help="number of nodes, ground included")
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("-o", "--output", required=True, help="deck file to write ('-': stdout)")
    f.add_argument("--kind", choices=("geometric", "delaunay"), default="geometric",
                   help="random geometric graph (made connected) or Delaunay triangulation")
    f.add_argument("--mean-degree", type=float, default=5.0,
                   help="target mean degree of the geometric graph")
    f.add_argument("--k-min", type=float, default=0.5, help="smallest pipe conductance (S)")
    f.add_argument("--k-max", type=float, default=1.5, help="largest pipe conductance (S)")
    f.add_argument("--sources", type=int, default=1, help="number of pressure sources vs*")
    f.add_argument("--pressure", type=float, default=1.0, help="their DC value (V)")
    f.set_defaults(func=_cmd_build_flow)
