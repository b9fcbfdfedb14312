"""Export a (trained) netlist back to a flat SPICE deck that ngspice loads.

:func:`export_spice` writes every element of a parsed, flattened
:class:`~circuitprop.netlist.Netlist` on its own line, with the flattened names circuitprop
and ngspice already use: elements ``r.x1.r2``, ``v.xp.x1.vm``, nodes ``x1.mid``, local models
``x1.dm``. ngspice 39 accepts such dotted element, node and model names in a flat deck and
reports them unchanged (``v(x1.mid)``, ``i(v.x1.vm)``), so the exported deck has exactly the
node and source names of the original: **no renaming, no mapping**. The one exception is a
model name containing characters other than letters, digits, ``_ . - + / #`` (none can come
out of the parser, but hand-built netlists may have them): those characters become ``_``
(made unique with a numeric suffix); model names never appear in results.

Numbers are written with Python's shortest round-trip ``repr`` (up to 17 significant digits),
so ngspice reads back the exact binary64 values and reproduces the operating point to its
own tolerance. Resistors whose conductance is given are written as ``1/g`` ohms.

:func:`ngspice_operating_point` runs ngspice in batch mode with tight tolerances on a deck and
reads the ASCII raw file back: the oracle used by the tests, and a way for users to confirm
that ``trained.cir`` reproduces circuitprop's answer.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

from ._errors import CircuitpropError, NetlistError

__all__ = ["export_spice", "write_spice", "ngspice_operating_point", "NGSPICE_TIGHT_OPTIONS"]

#: The options line inserted by :func:`ngspice_operating_point` (ngspice's tight tolerances).
NGSPICE_TIGHT_OPTIONS = ".options filetype=ascii reltol=1e-12 abstol=1e-18 vntol=1e-15"

_DEFAULT_GMIN = 1e-12
_MODEL_OK = re.compile(r"^[a-z0-9_][a-z0-9_.\-+/#]*$")


def _num(v: float) -> str:
    v = float(v)
    if not math.isfinite(v):
        raise NetlistError(f"export: cannot write non-finite value {v!r}")
    return repr(v + 0.0)


def _model_names(models) -> dict[str, str]:
    out: dict[str, str] = {}
    used: set[str] = set()
    for name in models:
        low = name.lower()
        new = low if _MODEL_OK.match(low) else re.sub(r"[^a-z0-9_.\-+/#]", "_", low)
        if not new or not re.match(r"[a-z0-9_]", new[0]):
            new = "m_" + new
        base, k = new, 1
        while new in used:
            k += 1
            new = f"{base}_{k}"
        used.add(new)
        out[name] = new
    return out


def _model_card(name: str, m) -> str:
    parts = [f"IS={_num(m.is_)}", f"N={_num(m.n)}", f"RS={_num(m.rs)}"]
    if math.isfinite(m.bv):
        parts.append(f"BV={_num(m.bv)}")
    parts.append(f"IBV={_num(m.ibv)}")
    parts.append(f"NBV={_num(m.nbv if m.nbv is not None else m.n)}")
    return f".model {name} D({' '.join(parts)})"


def export_spice(
    netlist,
    conductances: Mapping[str, float] | None = None,
    *,
    title: str | None = None,
    sources: Mapping[str, float] | None = None,
    include_dc: bool = False,
) -> str:
    """Write a netlist as a flat ngspice deck.

    The deck holds: the title line; one ``.model NAME D(IS= N= RS= [BV=] IBV= NBV=)`` per
    diode model (``BV`` omitted when infinite); every element in deck order with its
    flattened name and nodes (R in ohms, ``1/g`` where ``conductances`` gives ``g``; V and I
    as ``DC value``; D with ``area=`` / ``m=`` when not 1; C, L; E and G with four nodes;
    F and H with their controlling source); ``.options gmin=`` when the netlist's gmin is
    not ngspice's default 1e-12; optionally its ``.dc`` sweep; ``.op``; ``.end``.

    **Arguments:**

    - ``netlist``: a :class:`~circuitprop.netlist.Netlist` (flattened, as the parser gives it).
    - ``conductances``: resistor name (case-insensitive) -> conductance in siemens, for the
      resistors to overwrite (e.g. the trained ones); the others keep their value.
    - ``title``: the title line (default: the netlist's title).
    - ``sources``: V/I source name -> DC value to write instead of the netlist's (e.g. the
      input encoding of one sample).
    - ``include_dc``: also write the netlist's ``.dc`` sweep, if it has one.

    **Returns:** the deck text.

    **Raises:** :class:`~circuitprop._errors.NetlistError` when a name in ``conductances`` is
    not a resistor (or in ``sources`` not a V/I source) of the netlist, a conductance is not
    positive and finite, a value is not finite, or an element kind is unknown.
    """
    kinds = {el.name.lower(): el.kind for el in netlist.elements}
    g_over: dict[str, float] = {}
    for name, g in (conductances or {}).items():
        key = name.lower()
        if kinds.get(key) != "r":
            raise NetlistError(f"export: {name!r} is not a resistor of the netlist")
        g = float(g)
        if not (math.isfinite(g) and g > 0):
            raise NetlistError(
                f"export: conductance of {name!r} must be positive and finite, got {g!r}"
            )
        g_over[key] = g
    s_over: dict[str, float] = {}
    for name, v in (sources or {}).items():
        key = name.lower()
        if kinds.get(key) not in ("v", "i"):
            raise NetlistError(f"export: {name!r} is not a V or I source of the netlist")
        s_over[key] = float(v)

    head = title if title is not None else (netlist.title or "")
    head = " ".join(str(head).split()) or "circuitprop export"
    lines = [head, "* flat deck written by circuitprop.export.export_spice"]
    mnames = _model_names(netlist.models)
    for name, model in netlist.models.items():
        lines.append(_model_card(mnames[name], model))

    for el in netlist.elements:
        k = el.kind.lower()
        name = el.name.lower()
        nodes = " ".join(el.nodes)
        if k == "r":
            if name in g_over:
                r = 1.0 / g_over[name]
            else:
                r = float(el.value)
            if not (math.isfinite(r) and r > 0):
                raise NetlistError(f"export: resistor {name!r} has resistance {r!r}")
            lines.append(f"{name} {nodes} {_num(r)}")
        elif k in ("v", "i"):
            lines.append(f"{name} {nodes} DC {_num(s_over.get(name, el.value))}")
        elif k == "d":
            if el.model not in mnames:
                raise NetlistError(f"export: diode {name!r} uses unknown model {el.model!r}")
            extra = ""
            if float(el.area) != 1.0:
                extra += f" area={_num(el.area)}"
            if float(el.m) != 1.0:
                extra += f" m={_num(el.m)}"
            lines.append(f"{name} {nodes} {mnames[el.model]}{extra}")
        elif k in ("c", "l", "e", "g"):
            lines.append(f"{name} {nodes} {_num(el.value)}")
        elif k in ("f", "h"):
            if not el.control:
                raise NetlistError(f"export: {name!r} has no controlling source")
            lines.append(f"{name} {nodes} {el.control.lower()} {_num(el.value)}")
        else:
            raise NetlistError(f"export: element {name!r} of unknown kind {el.kind!r}")

    gmin = float((netlist.options or {}).get("gmin", _DEFAULT_GMIN))
    if gmin != _DEFAULT_GMIN:
        lines.append(f".options gmin={_num(gmin)}")
    if include_dc and netlist.dc:
        parts = [f"{s.name} {_num(s.start)} {_num(s.stop)} {_num(s.step)}" for s in netlist.dc]
        lines.append(".dc " + " ".join(parts))
    lines += [".op", ".end", ""]
    return "\n".join(lines)


def write_spice(path: str | os.PathLike, netlist, conductances=None, **kwargs) -> Path:
    """:func:`export_spice` to a file (e.g. ``trained.cir``); keyword arguments pass through.

    **Returns:** the path written.

    **Raises:** as :func:`export_spice`; :class:`OSError` when the file cannot be written.
    """
    path = Path(path)
    path.write_text(export_spice(netlist, conductances, **kwargs), encoding="utf-8")
    return path


# ----------------------------------------------------------------------------- ngspice


def _insert_before_end(deck: str, extra: list[str]) -> str:
    lines = deck.splitlines()
    for idx, line in enumerate(lines):
        if idx > 0 and line.strip().lower() == ".end":
            return "\n".join(lines[:idx] + extra + lines[idx:]) + "\n"
    return "\n".join(lines + extra + [".end"]) + "\n"


def _parse_raw(text: str) -> list[tuple[str, list[str], list[list[float]]]]:
    plots = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        if not lines[i].startswith("Title:"):
            i += 1
            continue
        plotname, nvars, npts, names = "", 0, 0, []
        i += 1
        while i < len(lines) and not lines[i].startswith(("Values:", "Binary:")):
            line = lines[i]
            if line.startswith("Plotname:"):
                plotname = line.split(":", 1)[1].strip()
            elif line.startswith("No. Variables:"):
                nvars = int(line.split(":", 1)[1])
            elif line.startswith("No. Points:"):
                npts = int(line.split(":", 1)[1])
            elif line.startswith("Variables:"):
                for _ in range(nvars):
                    i += 1
                    names.append(lines[i].split()[1])
            i += 1
        if i >= len(lines) or lines[i].startswith("Binary:"):
            raise CircuitpropError("ngspice raw file is not ASCII")
        i += 1
        nums: list[float] = []
        while len(nums) < nvars * npts and i < len(lines):
            tok = lines[i].split()
            if tok:
                # the first value of each point follows the point index
                nums.append(float(tok[-1]))
            i += 1
        points = [nums[p * nvars : (p + 1) * nvars] for p in range(npts)]
        plots.append((plotname, names, points))
    return plots


def ngspice_operating_point(
    deck: str, *, ngspice: str | None = None, timeout: float = 120.0
) -> tuple[dict[str, float], dict[str, float]]:
    """Solve a deck's operating point with ngspice (batch mode, tight tolerances).

    Inserts ``.options filetype=ascii reltol=1e-12 abstol=1e-18 vntol=1e-15`` and ``.op``
    before ``.end``, runs ``ngspice -n -b -r out.raw deck.cir`` in a temporary folder and reads
    the "Operating Point" plot of the raw file.

    **Arguments:**

    - ``deck``: the deck text.
    - ``ngspice``: the executable (default: ``ngspice`` on ``PATH``).
    - ``timeout``: seconds.

    **Returns:** ``(voltages, currents)``: node name -> volts (``v(x1.mid)`` -> ``"x1.mid"``),
    branch name -> amperes (``i(v1)`` -> ``"v1"``, ``l1#branch`` -> ``"l1"``).

    **Raises:** :class:`~circuitprop._errors.CircuitpropError` when ngspice is missing, fails,
    or writes no operating point.
    """
    exe = ngspice or shutil.which("ngspice")
    if not exe:
        raise CircuitpropError("ngspice not found on PATH")
    has_op = any(line.strip().lower() == ".op" for line in deck.splitlines()[1:])
    text = _insert_before_end(deck, [NGSPICE_TIGHT_OPTIONS] + ([] if has_op else [".op"]))
    with tempfile.TemporaryDirectory(prefix="circuitprop-ngspice-") as tmp:
        cir = Path(tmp) / "deck.cir"
        raw = Path(tmp) / "out.raw"
        cir.write_text(text, encoding="utf-8")
        try:
            proc = subprocess.run(
                [exe, "-n", "-b", "-r", str(raw), str(cir)],
                cwd=tmp,
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            raise CircuitpropError(f"ngspice timed out after {timeout} s") from None
        log = (proc.stdout or "") + (proc.stderr or "")
        if not raw.exists():
            tail = "\n".join(log.strip().splitlines()[-15:])
            raise CircuitpropError(f"ngspice wrote no results (exit {proc.returncode}):\n{tail}")
        plots = _parse_raw(raw.read_text(errors="replace"))
    for plotname, names, points in plots:
        if plotname.lower().startswith("operating point") and points:
            volts: dict[str, float] = {}
            amps: dict[str, float] = {}
            for name, value in zip(names, points[0]):
                low = name.lower()
                if low.startswith("v(") and low.endswith(")"):
                    volts[low[2:-1]] = value
                elif low.startswith("i(") and low.endswith(")"):
                    amps[low[2:-1]] = value
                elif low.endswith("#branch"):
                    amps[low[: -len("#branch")]] = value
                else:
                    volts[low] = value
            return volts, amps
    raise CircuitpropError("ngspice wrote no operating point")
