"""Helpers to get reference answers out of ngspice and compare against them.

Importable from tests (``tests/conftest.py`` puts ``tests/`` on ``sys.path``) and from bench
scripts (``sys.path.insert(0, "tests")``).

* ``have_ngspice()``: is an ``ngspice`` executable on PATH?
* ``run_ngspice(deck, analysis=None)``: run ngspice in batch mode with tight tolerances and parse
  the ASCII raw file into plain dicts (see ``run_ngspice`` for the shapes).
* ``compare(ours, ref)``: list of human-readable mismatches (empty list = match).
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
from typing import Any

__all__ = [
    "TIGHT_OPTIONS",
    "NgspiceError",
    "have_ngspice",
    "ngspice_version",
    "run_ngspice",
    "parse_raw",
    "compare",
    "deck_has_dc",
    "load_builders",
]

TIGHT_OPTIONS = ".options filetype=ascii reltol=1e-12 abstol=1e-18 vntol=1e-15"
NGSPICE = os.environ.get("NGSPICE", "ngspice")


class NgspiceError(RuntimeError):
    """ngspice failed, printed an error, or wrote no raw file."""


def have_ngspice() -> bool:
    return shutil.which(NGSPICE) is not None


def ngspice_version() -> str:
    """e.g. ``'ngspice-39'`` (empty string if ngspice is missing)."""
    if not have_ngspice():
        return ""
    out = subprocess.run([NGSPICE, "--version"], capture_output=True, text=True, timeout=30)
    m = re.search(r"ngspice-\s*([0-9][0-9.]*)", out.stdout + out.stderr)
    return f"ngspice-{m.group(1)}" if m else (out.stdout.strip().splitlines() or [""])[0]


# --------------------------------------------------------------------------- deck handling

_END_RE = re.compile(r"^\s*\.end\s*$", re.IGNORECASE)
_DC_RE = re.compile(r"^\s*\.dc\b", re.IGNORECASE)


def _logical_lines(text: str) -> list[str]:
    """Join ``+`` continuation lines (good enough to find ``.dc``/``.op`` cards)."""
    out: list[str] = []
    for raw in text.splitlines()[1:]:  # first line is the title
        s = raw.strip()
        if s.startswith("+") and out:
            out[-1] += " " + s[1:]
        elif s.startswith("*") or not s:
            continue
        else:
            out.append(s)
    return out


def deck_has_dc(text: str) -> bool:
    return any(_DC_RE.match(line) for line in _logical_lines(text))


def _dc_sources(text: str) -> list[str]:
    """Names of the swept sources on the (first) ``.dc`` card, lowercase."""
    for line in _logical_lines(text):
        if _DC_RE.match(line):
            toks = re.split(r"[\s,]+", line.strip())
            names = [toks[1].lower()] if len(toks) > 1 else []
            if len(toks) > 5:
                names.append(toks[5].lower())
            return names
    return []


def _prepare_deck(text: str, analysis: str | None) -> str:
    """Insert the tight options (and ``.op``) before the top-level ``.end``."""
    lines = text.splitlines()
    add = [TIGHT_OPTIONS]
    if not (analysis == "dc" and deck_has_dc(text)):
        add.append(".op")
    for i, line in enumerate(lines):
        if i > 0 and _END_RE.match(line):
            return "\n".join(lines[:i] + add + lines[i:]) + "\n"
    return "\n".join(lines + add + [".end"]) + "\n"


# --------------------------------------------------------------------------- raw file parsing


def _var_name(name: str) -> tuple[str, str]:
    """Map an ngspice raw-file variable to (kind, key): kind in {'v', 'i'}."""
    n = name.strip().lower()
    if n.startswith("v(") and n.endswith(")"):
        return "v", n[2:-1]
    if n.startswith("i(") and n.endswith(")"):
        return "i", n[2:-1]
    if n.endswith("#branch"):
        return "i", n[: -len("#branch")]
    return "v", n


def parse_raw(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Parse an ASCII raw file with one or more plots.

    Returns a list of ``{"plotname", "variables": [(name, type)], "values": [[...] per point]}``.
    """
    text = Path(path).read_text()
    plots: list[dict[str, Any]] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.startswith("Title:"):
            i += 1
            continue
        plot: dict[str, Any] = {"plotname": "", "variables": [], "values": []}
        nvars = npoints = 0
        i += 1
        while i < len(lines) and not lines[i].startswith("Variables:"):
            key, _, val = lines[i].partition(":")
            key = key.strip().lower()
            if key == "plotname":
                plot["plotname"] = val.strip()
            elif key == "no. variables":
                nvars = int(val)
            elif key == "no. points":
                npoints = int(val)
            elif key == "flags" and "complex" in val.lower():
                raise NgspiceError(f"complex plot in {path} not supported")
            i += 1
        i += 1  # skip "Variables:"
        for _ in range(nvars):
            parts = lines[i].split()
            plot["variables"].append((parts[1], parts[2] if len(parts) > 2 else ""))
            i += 1
        if i >= len(lines) or not lines[i].startswith("Values:"):
            raise NgspiceError(f"malformed raw file {path}: expected 'Values:' at line {i + 1}")
        i += 1
        tokens: list[str] = []
        need = npoints * (nvars + 1)
        while len(tokens) < need and i < len(lines):
            tokens.extend(lines[i].split())
            i += 1
        if len(tokens) < need:
            raise NgspiceError(f"truncated raw file {path}")
        for p in range(npoints):
            row = tokens[p * (nvars + 1) : (p + 1) * (nvars + 1)]
            plot["values"].append([float(x) for x in row[1:]])
        plots.append(plot)
    return plots


def _op_from_plot(plot: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    res: dict[str, dict[str, float]] = {"voltages": {}, "currents": {}}
    (row,) = plot["values"]
    for (name, _), val in zip(plot["variables"], row):
        kind, key = _var_name(name)
        res["voltages" if kind == "v" else "currents"][key] = val
    return res


def _dc_from_plot(plot: Mapping[str, Any], sources: list[str]) -> dict[str, Any]:
    res: dict[str, Any] = {
        "sweep": {"source": sources[0] if sources else "", "values": []},
        "voltages": {},
        "currents": {},
    }
    if len(sources) > 1:
        res["sweep"]["source2"] = sources[1]
    names = [n for n, _ in plot["variables"]]
    cols = list(zip(*plot["values"])) if plot["values"] else [[] for _ in names]
    for idx, (name, col) in enumerate(zip(names, cols)):
        col = [float(x) for x in col]
        low = name.lower()
        if idx == 0 and "sweep" in low:  # v(v-sweep), i(i-sweep), res-sweep, temp-sweep ...
            res["sweep"]["values"] = col
            continue
        kind, key = _var_name(name)
        res["voltages" if kind == "v" else "currents"][key] = col
    return res


# --------------------------------------------------------------------------- running ngspice

_ERROR_RE = re.compile(r"^\s*(error|fatal)\b|simulation interrupted|no such|can't find|"
                       r"could not find|doanalyses:|singular matrix|timestep too small|"
                       r"iteration limit|gmin stepping failed|source stepping failed",
                       re.IGNORECASE | re.MULTILINE)


def run_ngspice(
    deck: str | os.PathLike,
    analysis: str | None = None,
    timeout: float = 600.0,
    keep_log: bool = False,
) -> dict[str, Any]:
    """Run ngspice on a deck (path, or deck text) with tight tolerances.

    ``analysis``:
      * ``None`` / ``"op"``: returns ``{"voltages": {node: v}, "currents": {elem: i}}``.
      * ``"dc"``: returns ``{"sweep": {"source", "values"[, "source2"]}, "voltages": {node: [..]},
        "currents": {elem: [..]}}`` flattened in ngspice order (first source fastest).
      * ``"both"``: ``{"op": <op dict>, "dc": <dc dict>}`` (``"dc"`` only when the deck has .dc).

    Names are lowercase ngspice names: ``v(x1.mid)`` -> ``x1.mid``, ``i(v1)`` -> ``v1``,
    ``l1#branch`` -> ``l1``. Raises ``NgspiceError`` if ngspice reports an error, exits
    non-zero, or writes no raw file.

    A path deck is copied to a temporary file *beside the original* so that relative
    ``.include``/``.lib`` paths keep working; the temporary file is removed afterwards.
    """
    if analysis not in (None, "op", "dc", "both"):
        raise ValueError(f"analysis must be None, 'op', 'dc' or 'both', not {analysis!r}")
    if not have_ngspice():
        raise NgspiceError("ngspice not found on PATH")

    is_path = isinstance(deck, os.PathLike) or (
        isinstance(deck, str) and "\n" not in deck and Path(deck).is_file()
    )
    if is_path:
        src = Path(deck).resolve()
        text = src.read_text()
        workdir = src.parent
        label = str(src)
    else:
        text = str(deck)
        workdir = None
        label = "<string>"

    has_dc = deck_has_dc(text)
    if analysis == "dc" and not has_dc:
        raise NgspiceError(f"{label}: analysis='dc' but the deck has no .dc card")
    prepared = _prepare_deck(text, analysis)

    tmpdir = tempfile.mkdtemp(prefix="ngspice_ref_")
    try:
        if workdir is None:
            deck_file = Path(tmpdir) / "deck.cir"
        else:
            fd, name = tempfile.mkstemp(prefix=f".{src.stem}.", suffix=".tmp.cir", dir=workdir)
            os.close(fd)
            deck_file = Path(name)
        deck_file.write_text(prepared)
        raw = Path(tmpdir) / "out.raw"
        try:
            proc = subprocess.run(
                [NGSPICE, "-n", "-b", "-r", str(raw), str(deck_file)],
                cwd=str(deck_file.parent),
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        finally:
            if workdir is not None:
                deck_file.unlink(missing_ok=True)
        log = proc.stdout + "\n" + proc.stderr
        m = _ERROR_RE.search(log)
        if proc.returncode != 0 or m:
            why = m.group(0) if m else f"exit status {proc.returncode}"
            raise NgspiceError(f"ngspice failed on {label} ({why}):\n{log[-4000:]}")
        if not raw.is_file():
            raise NgspiceError(f"ngspice wrote no raw file for {label}:\n{log[-4000:]}")
        plots = parse_raw(raw)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)

    op_plots = [p for p in plots if p["plotname"].lower().startswith("operating point")]
    dc_plots = [p for p in plots if p["plotname"].lower().startswith("dc transfer")]
    out: dict[str, Any] = {}
    if analysis in (None, "op", "both"):
        if not op_plots:
            raise NgspiceError(f"no operating point plot for {label}")
        out["op"] = _op_from_plot(op_plots[-1])
    if analysis == "dc" or (analysis == "both" and has_dc):
        if not dc_plots:
            raise NgspiceError(f"no DC transfer plot for {label}")
        out["dc"] = _dc_from_plot(dc_plots[0], _dc_sources(text))
    if keep_log:
        out["log"] = log
    if analysis in (None, "op"):
        return out["op"] if not keep_log else {**out["op"], "log": log}
    if analysis == "dc":
        return out["dc"] if not keep_log else {**out["dc"], "log": log}
    return out


# --------------------------------------------------------------------------- builders


def load_builders():
    """``circuitprop.builders._random`` (has ``random_network`` and ``lattice``).

    Imported through the package when it imports cleanly; otherwise (package ``__init__``
    in flux) the module file is loaded on its own, so deck generation never depends on the
    solver stack.
    """
    try:
        from circuitprop.builders import _random

        return _random
    except ImportError:
        import importlib.util

        path = Path(__file__).resolve().parent.parent / "circuitprop" / "builders" / "_random.py"
        spec = importlib.util.spec_from_file_location("_circuitprop_builders_random", path)
        mod = importlib.util.module_from_spec(spec)
        assert spec.loader is not None
        spec.loader.exec_module(mod)
        return mod


# --------------------------------------------------------------------------- comparison


def _get(obj: Any, key: str) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(key)
    return getattr(obj, key, None)


def _close(a: float, b: float, rtol: float, atol: float) -> bool:
    if not (isinstance(a, (int, float)) and math.isfinite(a)):
        return False
    return abs(a - b) <= rtol * abs(b) + atol


def compare(
    ours: Any,
    ref: Mapping[str, Any],
    rtol: float = 1e-6,
    atol_v: float = 1e-9,
    atol_i: float = 1e-12,
) -> list[str]:
    """Mismatches between ``ours`` (dict or object with ``.voltages``/``.currents`` [``.sweep``])
    and ``ref`` (an op or dc dict from ``run_ngspice``). Keys missing from ``ours`` are
    mismatches; extra keys in ``ours`` are allowed. Scalar or list values both work.
    Criterion: ``|ours - ref| <= rtol*|ref| + atol``.
    """
    problems: list[str] = []
    for group, atol in (("voltages", atol_v), ("currents", atol_i)):
        ref_g = ref.get(group, {}) or {}
        our_g = _get(ours, group)
        if our_g is None:
            if ref_g:
                problems.append(f"{group}: missing entirely")
            continue
        our_g = {str(k).lower(): v for k, v in dict(our_g).items()}
        for key, rv in ref_g.items():
            if key not in our_g:
                problems.append(f"{group}[{key}]: missing (ngspice {rv!r})")
                continue
            problems.extend(_cmp_value(f"{group}[{key}]", our_g[key], rv, rtol, atol))
    if "sweep" in ref:
        our_s = _get(ours, "sweep")
        if our_s is None:
            problems.append("sweep: missing")
        else:
            rs = ref["sweep"]
            osrc = str(_get(our_s, "source") or "").lower()
            if rs.get("source") and osrc != rs["source"]:
                problems.append(f"sweep.source: {osrc!r} != ngspice {rs['source']!r}")
            ovals = _get(our_s, "values")
            if ovals is None:
                problems.append("sweep.values: missing")
            else:
                scale = max((abs(x) for x in rs["values"]), default=1.0)
                problems.extend(
                    _cmp_value("sweep.values", ovals, rs["values"], rtol, 1e-12 * max(scale, 1.0))
                )
    return problems


def _cmp_value(label: str, ov: Any, rv: Any, rtol: float, atol: float) -> list[str]:
    if isinstance(rv, (list, tuple)):
        try:
            ol = [float(x) for x in ov]
        except TypeError:
            return [f"{label}: expected a list of {len(rv)}, got {ov!r}"]
        if len(ol) != len(rv):
            return [f"{label}: length {len(ol)} != ngspice {len(rv)}"]
        bad = [k for k, (a, b) in enumerate(zip(ol, rv)) if not _close(a, b, rtol, atol)]
        if bad:
            k = bad[0]
            return [f"{label}: {len(bad)}/{len(rv)} points differ, first at #{k}: "
                    f"{ol[k]!r} vs ngspice {rv[k]!r} (rel {_rel(ol[k], rv[k]):.3g})"]
        return []
    try:
        a = float(ov)
    except (TypeError, ValueError):
        return [f"{label}: not a number: {ov!r}"]
    if not _close(a, float(rv), rtol, atol):
        return [f"{label}: {a!r} vs ngspice {rv!r} (rel {_rel(a, float(rv)):.3g})"]
    return []


def _rel(a: float, b: float) -> float:
    return abs(a - b) / abs(b) if b else float("inf") if a else 0.0


# --------------------------------------------------------------------------- transients

#: ngspice options of the transient references: tight tolerances (the time step follows
#: reltol; 1e-7 puts ngspice within about 2e-5 of the swing of a converged solution)
TRAN_OPTIONS = (".options filetype=ascii reltol=1e-7 abstol=1e-15 vntol=1e-12 chgtol=1e-20 "
                "trtol=1")


def run_ngspice_tran(deck: str | os.PathLike, timeout: float = 600.0) -> dict[str, Any]:
    """Run a deck's ``.tran`` in ngspice with :data:`TRAN_OPTIONS`.

    Returns ``{"time": [...], "voltages": {node: [...]}, "currents": {vsource: [...]}}`` at
    ngspice's own time points (lowercase names as in :func:`run_ngspice`).
    """
    if not have_ngspice():
        raise NgspiceError("ngspice not found on PATH")
    src = Path(deck).resolve()
    lines = src.read_text().splitlines()
    for i, line in enumerate(lines):
        if i > 0 and _END_RE.match(line):
            lines = lines[:i] + [TRAN_OPTIONS] + lines[i:]
            break
    else:
        lines += [TRAN_OPTIONS, ".end"]
    tmpdir = tempfile.mkdtemp(prefix="ngspice_tran_")
    try:
        deck_file = Path(tmpdir) / src.name
        deck_file.write_text("\n".join(lines) + "\n")
        raw = Path(tmpdir) / "out.raw"
        proc = subprocess.run([NGSPICE, "-n", "-b", "-r", str(raw), str(deck_file)],
                              cwd=tmpdir, capture_output=True, text=True, timeout=timeout)
        log = proc.stdout + "\n" + proc.stderr
        m = _ERROR_RE.search(log)
        if proc.returncode != 0 or m or not raw.is_file():
            raise NgspiceError(f"ngspice failed on {src}:\n{log[-4000:]}")
        plots = [p for p in parse_raw(raw) if p["plotname"].lower().startswith("transient")]
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    if not plots:
        raise NgspiceError(f"no transient plot for {src}")
    p = plots[-1]
    cols = list(zip(*p["values"]))
    out: dict[str, Any] = {"time": list(cols[0]), "voltages": {}, "currents": {}}
    for (name, _), col in zip(p["variables"][1:], cols[1:]):
        kind, key = _var_name(name)
        out["voltages" if kind == "v" else "currents"][key] = list(col)
    return out
