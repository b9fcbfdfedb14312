"""ngspice raw files: write the binary form, read the binary and ASCII forms.

The layout is the one ``ngspice -b -r FILE deck.cir`` writes (``src/frontend/outitf.c``)::

    Title: <deck title>
    Date: Wed Dec  2 01:56:22  2026
    Plotname: Operating Point
    Flags: real
    No. Variables: 3
    No. Points: 1
    Variables:
    <TAB>0<TAB>v(1)<TAB>voltage
    <TAB>1<TAB>v(2)<TAB>voltage
    <TAB>2<TAB>i(v1)<TAB>current
    Binary:
    <points x variables little-endian float64, point by point>

ngspice 44 and later add ``Command: ngspice-44, Build ...`` after the date; we write no
``Command:`` line, as ngspice 39 (ngspice's reader runs a ``Command:`` line that does not
name ngspice as a command). spicelib recognises the dialect only from that line: read our
files, as ngspice 39's, with ``RawRead(path, dialect="ngspice")``. The ASCII form
(``.options filetype=ascii``) has ``Values:`` instead of ``Binary:``, then for each point
its index and one value a line. A file may hold several plots one after the other (a deck
with ``.op`` and ``.dc``).

Variable names follow ngspice: node voltages ``v(node)`` first, in the order the nodes
first appear in the flattened deck, then branch currents ``i(vname)`` in the order ngspice
creates the branches (:func:`branch_order`). A ``.dc`` plot starts with the sweep variable
``v(v-sweep)``, ``i(i-sweep)`` or ``res-sweep``.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any

import numpy as np

from ._errors import CircuitpropError

__all__ = ["RawFile", "branch_order", "dc_variables", "op_variables", "read_raw",
           "write_dc_raw", "write_op_raw", "write_raw"]

#: header keys (lowercase) a raw file may carry before ``Variables:``; LTspice's ``Offset``
#: and ``Backannotation`` included
_HEADER_KEYS = ("title", "date", "command", "plotname", "flags", "no. variables",
                "no. points", "dimensions", "option", "offset", "backannotation")

#: the sweep variable of a ``.dc`` plot, by the swept element's letter (ngspice's names)
_SWEEP_VARIABLE = {"v": ("v(v-sweep)", "voltage"), "i": ("i(i-sweep)", "current"),
                   "r": ("res-sweep", "res-sweep")}


@dataclasses.dataclass
class RawFile:
    """One plot of a raw file.

    - ``title``, ``date``, ``plotname``, ``flags``: the header lines' values (``flags`` is
      ``"real"`` or ``"complex"``, possibly followed by more words).
    - ``variables``: ``[(name, type)]`` in file order, e.g. ``("v(1)", "voltage")``.
    - ``values``: ``(points, variables)`` float64 array (complex128 for complex plots).

    ``raw["V(1)"]`` is one variable's column (names compare case-insensitively).
    """

    title: str
    date: str
    plotname: str
    flags: str
    variables: list[tuple[str, str]]
    values: np.ndarray

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.variables]

    def __getitem__(self, name: str) -> np.ndarray:
        low = name.lower()
        for k, (var, _) in enumerate(self.variables):
            if var.lower() == low:
                return self.values[:, k]
        raise KeyError(f"no variable {name!r} in plot {self.plotname!r} "
                       f"(variables: {', '.join(self.names)})")

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in (n.lower() for n in self.names)


# --------------------------------------------------------------------------- writing


def ngspice_date(when: float | None = None) -> str:
    """The date as ngspice writes it: ``asctime`` with two spaces before the year."""
    text = time.asctime(time.localtime(when))
    return text[:20] + text[19:]


def write_raw(path: str | os.PathLike, *, title: str, plotname: str,
              variables: list[tuple[str, str]], values: Any, date: str | None = None) -> None:
    """Write one plot as an ngspice binary raw file.

    **Arguments:**

    - ``title``, ``plotname``: the header's ``Title:`` and ``Plotname:`` (``"Operating
      Point"``, ``"DC transfer characteristic"``, ``"Transient Analysis"``).
    - ``variables``: ``[(name, type)]``, the scale first (``("time", "time")`` for a
      transient); types are ngspice's: ``voltage``, ``current``, ``time``, ...
    - ``values``: ``(points, len(variables))`` real numbers, written as little-endian float64.
    - ``date``: the ``Date:`` line; ngspice's format of the current time when ``None``.

    **Raises:** :class:`CircuitpropError` naming the file when it cannot be written;
    :class:`ValueError` when ``values`` does not fit ``variables`` or a name or type has
    white space (the format separates fields by tabs).
    """
    data = np.asarray(values, dtype=np.float64)
    if data.ndim != 2 or data.shape[1] != len(variables):
        raise ValueError(f"values must be (points, {len(variables)}), not {data.shape}")
    if not variables:
        raise ValueError("a raw file needs at least one variable")
    for name, kind in variables:
        if not name or not kind or any(c.isspace() for c in name + kind):
            raise ValueError(f"raw variable ({name!r}, {kind!r}): empty or with white space")
    one_line = lambda s: str(s).replace("\r", " ").replace("\n", " ")  # noqa: E731
    lines = [
        f"Title: {one_line(title)}",
        f"Date: {one_line(date) if date is not None else ngspice_date()}",
        f"Plotname: {one_line(plotname)}",
        "Flags: real",
        f"No. Variables: {len(variables)}",
        f"No. Points: {data.shape[0]:<8d}",  # ngspice leaves 8 characters for the count
        "Variables:",
    ]
    lines += [f"\t{k}\t{name}\t{kind}" for k, (name, kind) in enumerate(variables)]
    lines.append("Binary:")
    header = ("\n".join(lines) + "\n").encode("utf-8")
    try:
        with open(path, "wb") as f:
            f.write(header)
            f.write(np.ascontiguousarray(data, dtype="<f8").tobytes())
    except OSError as e:
        raise CircuitpropError(f"{os.fspath(path)}: cannot write the raw file: "
                               f"{e.strerror or e}") from None


def branch_order(netlist) -> list[str]:
    """The branch currents' names in ngspice's order.

    ngspice creates branch equations at setup, device type by device type (F, H, L, E, V)
    and, within a type, from the last element of the flattened deck to the first; an F or H
    creates its controlling source's branch when it meets it, an H its own first.
    """
    order: dict[str, None] = {}
    for kind in "fhlev":
        for el in reversed([e for e in netlist.elements if e.kind == kind]):
            if kind == "h":
                order.setdefault(el.name)
            if kind in "fh" and el.control:
                order.setdefault(el.control)
            if kind != "f":
                order.setdefault(el.name)
    return list(order)


def _current_names(currents, netlist) -> list[str]:
    names = list(currents)
    if netlist is None:
        return names
    first = [n for n in branch_order(netlist) if n in currents]
    return first + [n for n in names if n not in first]


def op_variables(op, netlist=None) -> tuple[list[tuple[str, str]], np.ndarray]:
    """An :class:`OperatingPoint` as raw variables and a ``(1, n)`` array of values.

    Node voltages ``v(node)`` in the result's order, then branch currents ``i(name)`` in
    ngspice's order when the ``netlist`` is given (:func:`branch_order`), else the result's.
    """
    currents = _current_names(op.currents, netlist)
    variables = [(f"v({n})", "voltage") for n in op.voltages]
    variables += [(f"i({n})", "current") for n in currents]
    row = [op.voltages[n] for n in op.voltages] + [op.currents[n] for n in currents]
    return variables, np.asarray([row], dtype=np.float64).reshape(1, len(variables))


def dc_variables(sweep, netlist=None) -> tuple[list[tuple[str, str]], np.ndarray]:
    """A :class:`DCSweep` as raw variables and a ``(points, n)`` array of values.

    The sweep variable first (``v(v-sweep)``, ``i(i-sweep)`` or ``res-sweep``, after the
    swept element's letter, with the first source's value), then as :func:`op_variables`.
    As in ngspice, a nested sweep's outer source has no column.
    """
    source = sweep.sweep["source"]
    first = _SWEEP_VARIABLE.get(source[:1].lower(), _SWEEP_VARIABLE["v"])
    currents = _current_names(sweep.currents, netlist)
    variables = [first] + [(f"v({n})", "voltage") for n in sweep.voltages]
    variables += [(f"i({n})", "current") for n in currents]
    cols = ([sweep.sweep["values"]] + [sweep.voltages[n] for n in sweep.voltages]
            + [sweep.currents[n] for n in currents])
    points = len(sweep.sweep["values"])
    return variables, np.asarray(cols, dtype=np.float64).reshape(len(variables), points).T


def tran_variables(tr, netlist=None) -> tuple[list[tuple[str, str]], np.ndarray]:
    """A :class:`~circuitprop._transient.Transient` as raw variables (``time`` first, then
    as :func:`op_variables`) and a ``(points, n)`` array of values."""
    currents = _current_names(tr.currents, netlist)
    variables = [("time", "time")] + [(f"v({n})", "voltage") for n in tr.voltages]
    variables += [(f"i({n})", "current") for n in currents]
    cols = ([tr.time] + [tr.voltages[n] for n in tr.voltages]
            + [tr.currents[n] for n in currents])
    return variables, np.asarray(cols, dtype=np.float64).reshape(len(variables), -1).T


def write_tran_raw(path: str | os.PathLike, tr, netlist) -> None:
    """Write a transient as ngspice does (plot ``Transient Analysis``)."""
    variables, values = tran_variables(tr, netlist)
    write_raw(path, title=netlist.title, plotname="Transient Analysis", variables=variables,
              values=values)


def write_op_raw(path: str | os.PathLike, op, netlist) -> None:
    """Write an operating point as ngspice does (plot ``Operating Point``)."""
    variables, values = op_variables(op, netlist)
    write_raw(path, title=netlist.title, plotname="Operating Point", variables=variables,
              values=values)


def write_dc_raw(path: str | os.PathLike, sweep, netlist) -> None:
    """Write a ``.dc`` sweep as ngspice does (plot ``DC transfer characteristic``)."""
    variables, values = dc_variables(sweep, netlist)
    write_raw(path, title=netlist.title, plotname="DC transfer characteristic",
              variables=variables, values=values)


# --------------------------------------------------------------------------- reading


class _Reader:
    def __init__(self, data: bytes, path: str):
        self.data = data
        self.pos = 0
        self.line_no = 0
        self.path = path

    def fail(self, message: str) -> CircuitpropError:
        return CircuitpropError(f"{self.path}: not a valid raw file: {message}")

    def line(self, what: str) -> str:
        end = self.data.find(b"\n", self.pos)
        if end < 0:
            if self.pos >= len(self.data):
                raise self.fail(f"truncated: the file ends before {what}")
            end = len(self.data)
        text = self.data[self.pos:end].decode("utf-8", "replace").rstrip("\r")
        self.pos = end + 1
        self.line_no += 1
        return text

    def at_end(self) -> bool:
        """Skip blank lines; True at the end of the data."""
        while self.pos < len(self.data):
            end = self.data.find(b"\n", self.pos)
            end = len(self.data) if end < 0 else end
            if self.data[self.pos:end].strip():
                return False
            self.pos = end + 1
            self.line_no += 1
        return True


def _header(r: _Reader, plot: int) -> tuple[dict[str, str], list[tuple[str, str]], str]:
    fields: dict[str, str] = {}
    first = True
    while True:
        line = r.line(f"'Variables:' of plot {plot}")
        if not line.strip() and not first:
            continue
        key, colon, value = line.partition(":")
        key = key.strip().lower()
        if first and key != "title":
            raise r.fail(f"line {r.line_no}: expected 'Title:', found {line[:60]!r}")
        first = False
        if key == "variables" and colon:
            break
        if not colon or key not in _HEADER_KEYS:
            raise r.fail(f"line {r.line_no}: unknown header line {line[:60]!r}")
        fields.setdefault(key, value.strip())
    for key in ("plotname", "flags", "no. variables", "no. points"):
        if key not in fields:
            raise r.fail(f"plot {plot} has no '{key.title()}:' line")
    for key in ("no. variables", "no. points"):
        try:
            n = int(fields[key])
        except ValueError:
            raise r.fail(f"plot {plot}: '{key.title()}: {fields[key]}' is not a count") from None
        if n < 0 or (key == "no. variables" and n == 0):
            raise r.fail(f"plot {plot}: bad '{key.title()}: {fields[key]}'")
    variables = []
    for k in range(int(fields["no. variables"])):
        line = r.line(f"variable {k} of plot {plot}")
        parts = line.split()
        if len(parts) < 3 or parts[0] != str(k):
            raise r.fail(f"line {r.line_no}: expected variable {k} "
                         f"('<index> <name> <type>'), found {line[:60]!r}")
        variables.append((parts[1], parts[2]))
    line = r.line(f"'Binary:' or 'Values:' of plot {plot}")
    kind = line.strip().lower()
    if kind not in ("binary:", "values:"):
        raise r.fail(f"line {r.line_no}: expected 'Binary:' or 'Values:' after "
                     f"{len(variables)} variables (wrong variable count?), found {line[:60]!r}")
    return fields, variables, kind


def _binary(r: _Reader, plot: int, npoints: int, nvars: int, complex_: bool) -> np.ndarray:
    width = 2 if complex_ else 1
    need = npoints * nvars * width * 8
    have = len(r.data) - r.pos
    if have < need:
        raise r.fail(f"truncated: plot {plot} declares {npoints} points of {nvars} variables "
                     f"({need} bytes of data), the file has {have}")
    flat = np.frombuffer(r.data, dtype="<f8", count=npoints * nvars * width, offset=r.pos)
    r.pos += need
    flat = flat.astype(np.float64)
    if complex_:
        flat = flat[0::2] + 1j * flat[1::2]
    return flat.reshape(npoints, nvars)


def _number(token: str, complex_: bool) -> complex | float:
    if complex_:
        re, _, im = token.partition(",")
        return complex(float(re), float(im or 0.0))
    return float(token.split(",")[0])


def _ascii(r: _Reader, plot: int, npoints: int, nvars: int, complex_: bool) -> np.ndarray:
    out = np.zeros((npoints, nvars), dtype=np.complex128 if complex_ else np.float64)
    tokens: list[str] = []
    point = 0
    while point < npoints:
        while len(tokens) < nvars + 1:
            if r.pos >= len(r.data):
                raise r.fail(f"truncated: plot {plot} declares {npoints} points, the file has "
                             f"{point}")
            start = r.pos
            line = r.line("the values")
            if line.startswith("Title:"):
                r.pos = start
                raise r.fail(f"plot {plot} declares {npoints} points, it has {point} "
                             "(wrong point count)")
            tokens += line.split()
        try:
            if int(tokens[0]) != point:
                raise ValueError
            out[point] = [_number(t, complex_) for t in tokens[1:nvars + 1]]
        except ValueError:
            raise r.fail(f"line {r.line_no}: point {point} of plot {plot} is not "
                         f"'<index> <{nvars} values>'") from None
        tokens = tokens[nvars + 1:]
        point += 1
    if tokens:
        raise r.fail(f"line {r.line_no}: values after the last point of plot {plot}")
    return out


def _plots(path: str | os.PathLike) -> list[RawFile]:
    name = os.fspath(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise CircuitpropError(f"{name}: cannot read the raw file: {e.strerror or e}") from None
    r = _Reader(data, name)
    if r.at_end():
        raise r.fail("the file is empty")
    plots: list[RawFile] = []
    while True:
        n = len(plots) + 1
        fields, variables, kind = _header(r, n)
        npoints, nvars = int(fields["no. points"]), len(variables)
        complex_ = "complex" in fields["flags"].lower().split()
        read = _binary if kind == "binary:" else _ascii
        values = read(r, n, npoints, nvars, complex_)
        plots.append(RawFile(title=fields.get("title", ""), date=fields.get("date", ""),
                             plotname=fields["plotname"], flags=fields["flags"],
                             variables=variables, values=values))
        if r.at_end():
            return plots
        if not data.startswith(b"Title:", r.pos):
            raise r.fail(f"{len(data) - r.pos} bytes after the last point of plot {n} "
                         f"({npoints} points declared: wrong point count?)")


def read_raw(path: str | os.PathLike, plot: int | str = 0) -> RawFile:
    """Read one plot of an ngspice raw file, binary or ASCII (written by ngspice or by
    :func:`write_raw`).

    **Arguments:**

    - ``plot``: which plot of a file with several: an index (default the first), or a plot
      name (``"dc transfer characteristic"``; case-insensitive, a prefix is enough).

    **Returns:** a :class:`RawFile`.

    **Raises:** :class:`CircuitpropError` naming the file and what is wrong with it
    (truncated, unknown header line, a count that does not fit the data, no such plot).
    """
    plots = _plots(path)
    if isinstance(plot, str):
        want = plot.strip().lower()
        for p in plots:
            if p.plotname.lower().startswith(want):
                return p
        names = ", ".join(repr(p.plotname) for p in plots)
        raise CircuitpropError(f"{os.fspath(path)}: no plot {plot!r} (plots: {names})")
    if not -len(plots) <= plot < len(plots):
        raise CircuitpropError(f"{os.fspath(path)}: no plot {plot}: the file has "
                               f"{len(plots)}")
    return plots[plot]
