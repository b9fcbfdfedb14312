"""The ``circuitprop`` command line.

Every user error (bad deck, ill-posed circuit, non-convergence, bad experiment file) is one
line on stderr and exit code 2; set ``CIRCUITPROP_DEBUG=1`` to see tracebacks of anything else.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from ._solve._methods import METHODS


def _fmt(x: float) -> str:
    return f"{x: .10e}"


def _print_op(op, file) -> None:
    width = max([len("node")] + [len(n) for n in op.voltages])
    print(f"{'node':<{width}}  voltage (V)", file=file)
    for name, v in op.voltages.items():
        print(f"{name:<{width}}  {_fmt(v)}", file=file)
    if op.currents:
        width = max([len("element")] + [len(n) for n in op.currents])
        print(file=file)
        print(f"{'element':<{width}}  current (A)", file=file)
        for name, i in op.currents.items():
            print(f"{name:<{width}}  {_fmt(i)}", file=file)
    s = op.stats
    print(f"\n{s['method']}: {s['steps']} steps, solve {s['solve_seconds']:.4f} s, "
          f"compile {s['compile_seconds']:.3f} s", file=file)


def _print_dc(res, file) -> None:
    names = list(res.voltages) + [f"i({n})" for n in res.currents]
    cols = [res.sweep["values"]] + list(res.voltages.values()) + list(res.currents.values())
    header = [res.sweep["source"]] + names
    if res.sweep2 is not None:
        header = [res.sweep2["source"]] + header
        cols = [res.sweep2["values"]] + cols
    print("  ".join(f"{h:>17}" for h in header), file=file)
    for row in zip(*cols):
        print("  ".join(_fmt(x).rjust(17) for x in row), file=file)


def _deck(args):
    """The deck to solve: the path, or its Netlist when a raw file needs its title and
    element order."""
    if not args.raw:
        return args.file
    from .netlist import load

    return load(args.file)


def _cmd_op(args) -> int:
    from . import operating_point

    if args.physical and args.method != "relax":
        from ._errors import ExperimentError

        raise ExperimentError("--physical: the physical transient is the relaxation: use it "
                              "with --method relax")
    deck = _deck(args)
    op = operating_point(deck, method=args.method)
    if args.physical:
        from ._transient import settle

        st = settle(deck, node_cap=args.node_cap, settle_tol=args.settle_tol)
        op.stats.update(physical=True, settling_time=st.settling_time, energy=st.energy,
                        node_cap=st.stats["node_cap"], settle_tol=st.stats["settle_tol"],
                        settle_steps=st.stats["accepted_steps"])
    if args.raw:
        from ._raw import write_op_raw

        write_op_raw(args.raw, op, deck)
    if args.json:
        json.dump(op.to_json(), sys.stdout)
        sys.stdout.write("\n")
    else:
        _print_op(op, sys.stdout)
    return 0


def _cmd_dc(args) -> int:
    from . import dc_sweep

    deck = _deck(args)
    res = dc_sweep(deck, method=args.method)
    if args.raw:
        from ._raw import write_dc_raw

        write_dc_raw(args.raw, res, deck)
    if args.json:
        json.dump(res.to_json(), sys.stdout)
        sys.stdout.write("\n")
    else:
        _print_dc(res, sys.stdout)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="circuitprop",
        description="Simulate resistive and diode learning circuits from SPICE-like netlists.")
    sub = p.add_subparsers(dest="command", required=True)

    op = sub.add_parser("op", help="DC operating point of a deck")
    op.add_argument("file")
    op.add_argument("--method", choices=tuple(METHODS), default="newton")
    op.add_argument("--json", action="store_true", help="print one JSON object")
    op.add_argument("--physical", action="store_true",
                    help="with --method relax: the true transient from 0 V (sources on at "
                         "t = 0); stats gain settling_time (s) and energy (J)")
    op.add_argument("--settle-tol", type=float, default=1e-3, metavar="V",
                    help="--physical: settled once every node stays this close to its "
                         "final voltage (default 1e-3 V)")
    op.add_argument("--node-cap", type=float, default=1e-12, metavar="F",
                    help="--physical: capacitance from every node not held by a source to "
                         "ground, besides the deck's capacitors (default 1e-12 F)")
    op.add_argument("--raw", metavar="FILE",
                    help="also write an ngspice binary raw file (plot 'Operating Point')")
    op.set_defaults(func=_cmd_op)

    dc = sub.add_parser("dc", help="run the deck's .dc sweep (all points in one batched solve)")
    dc.add_argument("file")
    dc.add_argument("--method", choices=tuple(METHODS), default="newton")
    dc.add_argument("--json", action="store_true", help="print one JSON object")
    dc.add_argument("--raw", metavar="FILE",
                    help="also write an ngspice binary raw file (plot 'DC transfer "
                         "characteristic')")
    dc.set_defaults(func=_cmd_dc)

    from ._cli_extra import add_commands

    add_commands(sub)
    return p


def _enable_compile_cache() -> None:
    """Keep compiled solvers between runs (``~/.cache/circuitprop/jax``); set
    ``CIRCUITPROP_CACHE=0`` to disable, or a directory to move it."""
    where = os.environ.get("CIRCUITPROP_CACHE", "")
    if where == "0":
        return
    import jax

    path = where or os.path.join(os.path.expanduser("~"), ".cache", "circuitprop", "jax")
    try:
        os.makedirs(path, exist_ok=True)
        jax.config.update("jax_compilation_cache_dir", path)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    except Exception:  # a read-only home must not stop a solve
        pass


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from ._errors import CircuitpropError

    try:
        _enable_compile_cache()
        return args.func(args)
    except CircuitpropError as err:
        print(str(err), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("circuitprop: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as err:  # a bug: say so on one line unless debugging
        if os.environ.get("CIRCUITPROP_DEBUG"):
            raise
        print(f"circuitprop: internal error: {type(err).__name__}: {err} "
              "(set CIRCUITPROP_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
