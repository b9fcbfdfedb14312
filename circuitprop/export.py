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

MOSFETs (level 1) are written with the parameters their equations use, already derived:
``VTO KP GAMMA PHI`` as circuitprop (and ngspice) computed them from ``TOX U0 NSUB NSS TPG``,
so the card never asks ngspice to derive them again (``TOX`` stays, for the Meyer gate
charges of ngspice's transients; see :func:`export_spice`), and the instance line carries its
resolved geometry (``W L`` from the line, the model card or ``.options defl defw``; ``M``
from ``m=`` or ``defm``; ``AD`` from ``defad``), so no ``.options`` or card defaults are needed.

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
from .netlist._types import DiodeModel, MosfetModel

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


def _model_names(names) -> list[str]:
    """Deck names for the model keys ``names`` (in order; a key may repeat): lowercase, odd
    characters replaced by ``_``, made unique with a numeric suffix."""
    out: list[str] = []
    used: set[str] = set()
    for name in names:
        low = name.lower()
        new = low if _MODEL_OK.match(low) else re.sub(r"[^a-z0-9_.\-+/#]", "_", low)
        if not new or not re.match(r"[a-z0-9_]", new[0]):
            new = "m_" + new
        base, k = new, 1
        while new in used:
            k += 1
            new = f"{base}_{k}"
        used.add(new)
        out.append(new)
    return out


def _diode_card(name: str, m: DiodeModel) -> str:
    parts = [f"IS={_num(m.is_)}", f"N={_num(m.n)}", f"RS={_num(m.rs)}"]
    if math.isfinite(m.bv):
        parts.append(f"BV={_num(m.bv)}")
    parts.append(f"IBV={_num(m.ibv)}")
    parts.append(f"NBV={_num(m.nbv if m.nbv is not None else m.n)}")
    return f".model {name} D({' '.join(parts)})"


def _mosfet_card(name: str, m: MosfetModel) -> str:
    """``.model NAME NMOS|PMOS (LEVEL=1 ...)`` on three lines (``+`` continuations): the DC
    parameters, the parasitic resistances and junction currents, the capacitances.

    ``VTO KP GAMMA PHI`` are the values the equations use; ``TOX`` is written (it gives COX,
    the Meyer gate charges of ngspice's transients) but ``U0 NSUB NSS TPG`` are not: with
    ``KP VTO GAMMA PHI`` given, ngspice (mos1temp.c) and circuitprop derive nothing from TOX
    but COX. ``RD RS CBD CBS`` only when given (else RSH·NRD, RSH·NRS, CJ·AD, CJ·AS apply)."""
    if m.polarity not in (1, -1):
        raise NetlistError(f"export: MOSFET model {m.name!r} has polarity {m.polarity!r}")
    kind = "NMOS" if m.polarity == 1 else "PMOS"

    def kv(key: str, value) -> str:
        return f"{key}={_num(value)}"

    dc = ["LEVEL=1", kv("VTO", m.vto), kv("KP", m.kp), kv("GAMMA", m.gamma),
          kv("PHI", m.phi), kv("LAMBDA", m.lambda_)]
    par = [kv(k, v) for k, v in (("RD", m.rd), ("RS", m.rs)) if v is not None]
    par += [kv("RSH", m.rsh), kv("IS", m.is_), kv("JS", m.js), kv("LD", m.ld)]
    if m.tox:  # TOX = 0 is TOX not given (ngspice and the parser)
        par.append(kv("TOX", m.tox))
    cap = [kv(k, v) for k, v in (("CBD", m.cbd), ("CBS", m.cbs)) if v is not None]
    cap += [kv("CJ", m.cj), kv("MJ", m.mj), kv("CJSW", m.cjsw), kv("MJSW", m.mjsw),
            kv("PB", m.pb), kv("FC", m.fc), kv("CGSO", m.cgso), kv("CGDO", m.cgdo),
            kv("CGBO", m.cgbo)]
    return (f".model {name} {kind} ({' '.join(dc)}\n+ {' '.join(par)}\n"
            f"+ {' '.join(cap)})")


def _model_card(name: str, m) -> str:
    if isinstance(m, MosfetModel):
        return _mosfet_card(name, m)
    if isinstance(m, DiodeModel):
        return _diode_card(name, m)
    raise NetlistError(f"export: model {name!r} of unknown type {type(m).__name__}")


def _mosfet_line(name: str, el, model_name: str) -> str:
    """``mname d g s b model W= L= [AD= AS= PD= PS= NRD= NRS=] [M=] [OFF] [IC=...]``."""
    mos = el.mosfet
    if len(el.nodes) != 4:
        raise NetlistError(f"export: MOSFET {name!r} has {len(el.nodes)} nodes, not 4")
    parts = [name, " ".join(el.nodes), model_name, f"W={_num(mos.w)}", f"L={_num(mos.l)}"]
    for key, value, default in (("AD", mos.ad, 0.0), ("AS", mos.as_, 0.0), ("PD", mos.pd, 0.0),
                                ("PS", mos.ps, 0.0), ("NRD", mos.nrd, 1.0),
                                ("NRS", mos.nrs, 1.0)):
        if float(value) != default:  # ngspice's own defaults (no .options defad is written)
            parts.append(f"{key}={_num(value)}")
    if float(mos.m) != 1.0:
        parts.append(f"M={_num(mos.m)}")
    if mos.off:
        parts.append("OFF")
    ic = list(mos.ic)
    given = [x is not None for x in ic]
    if any(given):
        n = given.index(False) if not all(given) else 3
        if not any(given[n:]):  # a prefix: IC=vds[,vgs[,vbs]]
            parts.append("IC=" + ",".join(_num(x) for x in ic[:n]))
        else:
            parts += [f"{key}={_num(x)}" for key, x in zip(("ICVDS", "ICVGS", "ICVBS"), ic)
                      if x is not None]
    return " ".join(parts)


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
    diode model (``BV`` omitted when infinite); one ``.model NAME NMOS|PMOS (LEVEL=1 ...)``
    per MOSFET model (see below); every element in deck order with its flattened name and
    nodes (R in ohms, ``1/g`` where ``conductances`` gives ``g``; V and I as ``DC value``; D
    with ``area=`` / ``m=`` when not 1; C, L; E and G with four nodes; F and H with their
    controlling source; M as below); ``.options gmin=`` when the netlist's gmin is not
    ngspice's default 1e-12; optionally its ``.dc`` sweep; ``.op``; ``.end``.

    **MOSFETs** (level 1). Each model (``Element.mosfet.model``, once per model, under its
    flattened name, e.g. ``x1.nl``) is written with every parameter, default or not:
    ``VTO KP GAMMA PHI LAMBDA``, ``RD RS`` (only when the card gave them), ``RSH IS JS LD``,
    ``TOX`` (when given), ``CBD CBS`` (only when given), ``CJ MJ CJSW MJSW PB FC CGSO CGDO
    CGBO``. ``VTO KP GAMMA PHI`` are the values the device equations use: when the original
    card derived them from ``TOX U0 NSUB NSS TPG``, the derived values are written and
    ``U0 NSUB NSS TPG`` are not, so nothing is derived a second time. ``TOX`` itself is
    kept: with ``KP VTO GAMMA PHI`` given, ngspice and circuitprop take from it only COX
    (ε_ox/TOX), which has no effect at DC but sets ngspice's Meyer gate charges in a
    transient, so the exported deck keeps them (and circuitprop's transient refuses the
    exported deck exactly where it refused the original). ``TNOM``, ``KF``, ``AF`` are not
    written (27 °C is the only temperature; noise is not modelled). Each instance is
    ``mname d g s b model W= L= [AD= AS= PD= PS= NRD= NRS=] [M=] [OFF] [IC=vds,vgs,vbs]``
    with its resolved geometry (from the line, the model card's ``l= w= ...`` or
    ``.options defl defw defm defad``, none of which is written): ``AD AS PD PS`` when not
    0, ``NRD NRS`` when not 1, ``M`` when not 1; ``IC=`` with the given initial voltages
    (``ICVDS= ICVGS= ICVBS=`` instead when an earlier one is missing). Re-parsed, the deck
    gives the same :class:`~circuitprop.netlist.MosfetModel` values (``u0`` aside, which
    matters only without ``KP``) and the same :class:`~circuitprop.netlist.Mosfet`, hence
    the same operating point, bit for bit.

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
    positive and finite, a value is not finite, an element kind or model type is unknown, a
    diode's model is missing or not a diode model, or a MOSFET has no ``mosfet`` data or
    not four nodes.
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
    # The models: the netlist's (diodes), then each MOSFET's (``Element.mosfet.model``, the
    # one the solver uses) under its element's model key, once per model object.
    entries: list[tuple[str, object]] = list(netlist.models.items())
    mos_entry: dict[int, int] = {}
    for el in netlist.elements:
        if el.kind.lower() != "m":
            continue
        if el.mosfet is None:
            raise NetlistError(f"export: MOSFET {el.name.lower()!r} has no model data")
        model = el.mosfet.model
        if id(model) in mos_entry:
            continue
        key = el.model or model.name
        at = next((i for i, (k, m) in enumerate(entries)
                   if k == key and (m is model or m == model)), None)
        if at is None:
            at = len(entries)
            entries.append((key, model))
        mos_entry[id(model)] = at
    names = _model_names(k for k, _ in entries)
    mnames = {k: names[i] for i, k in enumerate(netlist.models)}
    for (_, model), name in zip(entries, names):
        lines.append(_model_card(name, model))

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
            if not isinstance(netlist.models[el.model], DiodeModel):
                raise NetlistError(f"export: diode {name!r} uses model {el.model!r}, "
                                   "which is not a diode model")
            extra = ""
            if float(el.area) != 1.0:
                extra += f" area={_num(el.area)}"
            if float(el.m) != 1.0:
                extra += f" m={_num(el.m)}"
            lines.append(f"{name} {nodes} {mnames[el.model]}{extra}")
        elif k == "m":
            lines.append(_mosfet_line(name, el, names[mos_entry[id(el.mosfet.model)]]))
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
