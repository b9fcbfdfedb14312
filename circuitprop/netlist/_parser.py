"""The SPICE deck parser: logical lines -> flattened :class:`~circuitprop.netlist.Netlist`.

Stages:

1. read: the lexer turns each file into logical lines; ``.include`` and ``.lib file section``
   are expanded in place (paths relative to the including file);
2. structure: ``.subckt`` ... ``.ends`` bodies are split off (nested definitions stay local),
   ``.param`` and ``.model`` cards are collected per body, dot commands are read;
3. expand: elements are built body by body, subcircuit instances are flattened with ngspice's
   names (node ``x1.mid``, element ``r.x1.r2``, nested ``v.xp.x1.vm``; a local model ``dm`` in
   ``x1`` becomes ``x1.dm``); parameters are looked up in the instance, then in the instance
   that instantiated it, and so on up to the global ``.param`` values (ngspice's dynamic scope);
4. resolve: F/H controlling sources, ``.dc`` sources, duplicate names.

Every user-caused failure is a :class:`~circuitprop._errors.NetlistError` carrying the file and
line of the offending logical line (inside a subcircuit: the line in the ``.subckt`` body, with
the instance named in the message).
"""

from __future__ import annotations

import difflib
import gc
import math
import os
import re

from .._errors import NetlistError
from ._lexer import Line, logical_lines, tokenize
from ._types import (
    DiodeModel,
    Element,
    Location,
    Mosfet,
    MosfetModel,
    Netlist,
    Sweep,
    Tran,
    Waveform,
    check_sweep_points,
)
from ._values import (
    ExpressionError,
    evaluate,
    expression_names,
    is_number_start,
    parse_number,
)

__all__ = ["load", "parse"]

_GROUND_NAMES = frozenset(("0", "gnd"))
_DIGIT_CHARS = frozenset("0123456789")
_PUNCT_TOKENS = frozenset("=()")

#: Dot commands accepted and ignored (output, transient/AC-only analyses, initial guesses).
_IGNORED_COMMANDS = frozenset(
    (
        ".ac",
        ".print",
        ".plot",
        ".save",
        ".probe",
        ".meas",
        ".measure",
        ".four",
        ".fourier",
        ".noise",
        ".disto",
        ".sens",
        ".tf",
        ".pz",
        ".nodeset",
        ".width",
        ".backanno",
        ".savecurrents",
        ".sp",
    )
)

#: Unsupported dot commands, with the reason given to the user.
_REFUSED_COMMANDS = {
    ".func": "user functions are not supported",
    ".if": "conditional netlists are not supported",
    ".elseif": "conditional netlists are not supported",
    ".else": "conditional netlists are not supported",
    ".endif": "conditional netlists are not supported",
    ".step": "parameter stepping is not supported (use .dc or the Python API)",
    ".csparam": "control-section parameters are not supported",
    ".endc": "'.endc' without '.control'",
    ".endl": "'.endl' without '.lib'",
    ".ends": "'.ends' without '.subckt'",
}

_ELEMENT_DESCRIPTIONS = {
    "a": "XSPICE code model",
    "b": "behavioural source",
    "j": "JFET",
    "k": "coupled inductors",
    "m": "MOSFET",
    "n": "OSDI/Verilog-A device",
    "o": "lossy transmission line",
    "p": "coupled multiconductor line",
    "q": "bipolar transistor",
    "s": "voltage-controlled switch",
    "t": "transmission line",
    "u": "uniform RC line",
    "w": "current-controlled switch",
    "y": "transmission line",
    "z": "MESFET",
}

#: Diode model parameters that only matter off DC or away from 27 C (T = TNOM), or that only
#: act through a refused parameter (sidewall and tunnelling terms): accepted and ignored. The
#: list also keeps the decoration parameters of vendor (LTspice) models: mfg, type, iave, vpk.
#: Instance parameters on a model card (ngspice makes them defaults of every instance) that do
#: not change the DC solution are here too: ic, off, thermal, l, w, pj.
_DIODE_IGNORED = frozenset(
    "cjo cj0 cj tt m mj vj pb fc eg xti kf af cjp cjsw php mjsw fcs tbv1 tbv2 tcv trs trs1 trs2 "
    "tlev tlevc cta ctp tpb tphp tm1 tm2 ttt1 ttt2 fv_max bv_max id_max pd_max te_max vp rth0 "
    "cth0 iave vpk mfg type lm lp wm wp xom xoi tox xw ns nr tt1 tt2 cjo2 mjsw2 "
    "npeak bvj ctc tvj vjsw gap1 gap2 ntun xtitun keg xm xp rsw pj ic off thermal l w".split()
)
#: Diode model parameters of charge storage (junction capacitance, transit time): ignored at
#: DC; a transient refuses them when nonzero (it does not model them).
_DIODE_DYNAMIC = frozenset(("cjo", "cj0", "cj", "tt", "cjp", "cjsw"))
#: Diode model parameters that change the DC curve and are not implemented: refused when nonzero.
_DIODE_UNSUPPORTED = {
    "ikf": "high-injection knee current",
    "ik": "high-injection knee current",
    "ikp": "high-injection knee current",
    "ikr": "reverse knee current",
    "jsw": "sidewall saturation current",
    "isw": "sidewall saturation current",
    "jtun": "tunnelling current",
    "jtunsw": "tunnelling current",
    "isr": "recombination current",
    "gleak": "leakage conductance",
}
#: Diode model parameters that are read, and their aliases (``area`` and the temperatures are
#: instance parameters ngspice accepts on the model card as defaults of every instance).
_DIODE_READ = {
    "is": "is",
    "js": "is",
    "n": "n",
    "rs": "rs",
    "bv": "bv",
    "ibv": "ibv",
    "ib": "ibv",
    "nbv": "nbv",
    "level": "level",
    "tnom": "tnom",
    "tref": "tnom",
    "area": "area",
    "temp": "temp",
    "dtemp": "dtemp",
}
#: Aliases that newer ngspice versions read but ngspice 39 ignores: refused, naming the
#: parameter to write instead (the two simulators would disagree).
_DIODE_NEWER_ALIASES = {"nz": "nbv", "vb": "bv", "vrb": "bv", "var": "bv"}
#: Resistor model parameters that are read, and their aliases (ngspice's model table, plus the
#: instance parameters ngspice takes as defaults of every instance: resistance, scale, temp,
#: dtemp, tc).
_RES_MODEL_READ = {
    "r": "r",
    "res": "r",
    "rsh": "rsh",
    "defw": "defw",
    "w": "defw",
    "l": "l",
    "narrow": "narrow",
    "dw": "narrow",
    "short": "short",
    "dlr": "short",
    "tc1": "tc1",
    "tc1r": "tc1",
    "tc2": "tc2",
    "tc2r": "tc2",
    "tce": "tce",
    "tnom": "tnom",
    "resistance": "resistance",
    "scale": "scale",
    "temp": "temp",
    "dtemp": "dtemp",
    "tc": "tc",
    "m": "m",
}
#: Resistor model parameters without effect at DC: accepted and ignored.
_RES_MODEL_IGNORED = frozenset("kf af lf wf ef bv_max noisy ac level".split())
#: Capacitor and inductor model parameters (ngspice's model tables, plus the instance
#: parameters it accepts on the card). Only the value is read (it sets the relaxation's
#: capacitances; at DC a capacitor is open and an inductor a short, whatever their values).
_REACTIVE_MODEL_VALUE = {"c": ("capacitance", "cap", "c"), "l": ("inductance", "ind", "l")}
_REACTIVE_MODEL_KNOWN = {
    "c": frozenset(
        "cap c capacitance cj cox cjsw capsw defw defl w l narrow short del tc1 tc2 tnom di thick "
        "bv_max m scale temp dtemp ic level".split()
    ),
    "l": frozenset(
        "ind l inductance tc1 tc2 tnom csect dia length nt mu m scale temp dtemp ic level".split()
    ),
}
#: Hints for names that look like model parameters but are not.
_MODEL_HINTS = {
    ("r", "defl"): "the default length of a resistor model is 'l'",
}
_RES_INSTANCE_KEYS = frozenset("r resistance m tc1 tc2 tce ac temp dtemp l w noisy scale".split())

#: Level-1 MOSFET model parameters (ngspice's mos1 table) and their aliases. All are stored;
#: the capacitances, FC and the noise parameters KF, AF have no effect at DC.
_MOS1_READ = {
    "vto": "vto", "vt0": "vto", "kp": "kp", "gamma": "gamma", "phi": "phi",
    "lambda": "lambda", "rd": "rd", "rs": "rs", "cbd": "cbd", "cbs": "cbs", "is": "is",
    "pb": "pb", "cgso": "cgso", "cgdo": "cgdo", "cgbo": "cgbo", "rsh": "rsh", "cj": "cj",
    "mj": "mj", "cjsw": "cjsw", "mjsw": "mjsw", "js": "js", "tox": "tox", "ld": "ld",
    "u0": "u0", "uo": "u0", "fc": "fc", "nsub": "nsub", "tpg": "tpg", "nss": "nss",
    "tnom": "tnom", "kf": "kf", "af": "af", "level": "level",
}
#: MOSFET instance parameters ngspice takes from a model card as every instance's default
#: (ngspice excludes ``m``; the initial conditions only matter off DC).
_MOS_CARD_DEFAULTS = {
    k: k for k in "l w ad as pd ps nrd nrs temp dtemp icvds icvgs icvbs".split()
}
#: Keys of an M line.
_MOS_INSTANCE_KEYS = (
    "l", "w", "m", "ad", "as", "pd", "ps", "nrd", "nrs", "ic", "icvds", "icvgs", "icvbs",
    "temp", "dtemp",
)
#: ``.options`` that set MOSFET instance defaults.
_MOS_OPTIONS = frozenset(("defl", "defw", "defm", "defad", "defas"))
#: Parameters of MOSFET levels 2 and 3 (refused on a level-1 card, where ngspice ignores
#: them with a warning).
_MOS_HIGHER_LEVEL = frozenset(
    "ucrit uexp utra vmax neff xj nfs delta theta eta kappa".split()
)
_MODEL_HINTS.update(
    {
        (t, p): "a parameter of MOSFET levels 2 and 3; only level 1 is supported"
        for t in ("nmos", "pmos")
        for p in _MOS_HIGHER_LEVEL
    }
)
#: ngspice's constants in its MOSFET temperature code (mos1temp.c).
_BOLTZMANN = 1.38064852e-23
_CHARGE = 1.6021766208e-19
_EPS0 = 8.854214871e-12
_T_NOM_K = 300.15

_WAVEFORMS = frozenset(("sin", "pulse", "pwl", "exp", "sffm"))
_SMALL_SIGNAL = frozenset(("distof1", "distof2"))
_UNSUPPORTED_WAVEFORMS = frozenset(("am", "trnoise", "trrandom", "external", "pat", "sine"))
_CONTROLLED_UNSUPPORTED = frozenset(
    (
        "poly",
        "value",
        "vol",
        "cur",
        "table",
        "laplace",
        "freq",
        "and",
        "or",
        "nand",
        "nor",
        "xor",
        "nxor",
        "xnor",
        "ch",
        "tables",
    )
)

_ASSIGN = re.compile(r"([a-z_][a-z0-9_]*)\s*=(?!=)")
_FUNC_DEF = re.compile(r"\s*[a-z_][a-z0-9_]*\s*\(")
_IDENT = re.compile(r"[a-z_][a-z0-9_]*\Z")
_TNOM = 27.0


# ---------------------------------------------------------------------------------------------
# Small structures
# ---------------------------------------------------------------------------------------------


class _Body:
    """The contents of the top level or of one ``.subckt`` definition."""

    __slots__ = ("lines", "params", "models", "subckts")

    def __init__(self) -> None:
        self.lines: list[Line] = []
        self.params: dict[str, tuple[str, Line]] = {}
        self.models: dict[str, Line] = {}
        self.subckts: dict[str, _Subckt] = {}


class _Subckt:
    """A ``.subckt`` definition."""

    __slots__ = ("name", "ports", "defaults", "body", "line")

    def __init__(
        self, name: str, ports: list[str], defaults: dict[str, str], body: _Body, line: Line
    ):
        self.name = name
        self.ports = ports
        self.defaults = defaults
        self.body = body
        self.line = line


class _Scope:
    """Parameters visible in one context: its own, then its parent's (dynamic scope)."""

    __slots__ = ("defs", "values", "parent", "state")

    def __init__(self, parent: _Scope | None, state: _EvalState):
        # name -> (expression text, line, scope to evaluate it in (None: this one), where)
        self.defs: dict[str, tuple[str, Line, _Scope | None, str]] = {}
        self.values: dict[str, float] = {}
        self.parent = parent
        self.state = state

    def lookup(self, name: str) -> float:
        """The value of ``name``; ``KeyError`` when no scope defines it."""
        scope: _Scope | None = self
        while scope is not None:
            values = scope.values
            if name in values:
                return values[name]
            if name in scope.defs:
                return scope.evaluate(name)
            scope = scope.parent
        raise KeyError(name)

    def evaluate_all(self) -> None:
        """Evaluate every definition of this scope, dependencies first (an iterative
        depth-first walk, so long chains ``p1={p0+1}`` ... need no deep recursion)."""
        defs = self.defs
        values = self.values

        def deps(name: str) -> list[str]:
            text, _, in_scope, _ = defs[name]
            if in_scope is not None:  # evaluated in the caller's scope
                return []
            return [d for d in expression_names(text) if d in defs and d not in values]

        for root in defs:
            if root in values:
                continue
            stack = [(root, iter(deps(root)))]
            on_stack = {root}
            while stack:
                name, pending = stack[-1]
                for dep in pending:
                    if dep in values:
                        continue
                    if dep in on_stack:
                        names = [n for n, _ in stack]
                        chain = [*names[names.index(dep) :], dep]
                        _, line, _, where = defs[dep]
                        raise NetlistError(
                            f"cyclic parameter definition: {' -> '.join(chain)}{where}",
                            line.file,
                            line.line,
                        )
                    stack.append((dep, iter(deps(dep))))
                    on_stack.add(dep)
                    break
                else:
                    stack.pop()
                    on_stack.discard(name)
                    self.evaluate(name)

    def evaluate(self, name: str) -> float:
        """Evaluate this scope's own definition of ``name`` (once; cycles are errors)."""
        if name in self.values:
            return self.values[name]
        text, line, in_scope, where = self.defs[name]
        state = self.state
        key = (id(self), name)
        if key in state.active:
            chain = [n for (_, n) in state.stack[state.stack.index(key) :]] + [name]
            raise NetlistError(
                f"cyclic parameter definition: {' -> '.join(chain)}{where}", line.file, line.line
            )
        state.active.add(key)
        state.stack.append(key)
        try:
            target = in_scope if in_scope is not None else self
            value = evaluate(text, target.lookup)
        except ExpressionError as err:
            raise NetlistError(f"parameter '{name}': {err}{where}", line.file, line.line) from None
        finally:
            state.active.discard(key)
            state.stack.pop()
        self.values[name] = value
        return value


class _EvalState:
    __slots__ = ("active", "stack")

    def __init__(self) -> None:
        self.active: set[tuple[int, str]] = set()
        self.stack: list[tuple[int, str]] = []


class _Ctx:
    """One level of the expansion: the top level or one subcircuit instance."""

    __slots__ = ("path", "ports", "scope", "body", "parent", "subckt", "where", "model_keys")

    def __init__(
        self,
        path: str,
        ports: dict[str, str],
        scope: _Scope,
        body: _Body,
        parent: _Ctx | None,
        subckt: _Subckt | None,
    ):
        self.path = path
        self.ports = ports
        self.scope = scope
        self.body = body
        self.parent = parent
        self.subckt = subckt
        self.where = f" (in instance {path} of subckt '{subckt.name}')" if subckt else ""
        self.model_keys: dict[str, str] = {}


def _err(message: str, line: Line, ctx: _Ctx | None = None) -> NetlistError:
    return NetlistError(message + (ctx.where if ctx is not None else ""), line.file, line.line)


def _strip_expr(text: str) -> str:
    """``{x}`` -> ``x``, ``'x'`` -> ``x``, anything else unchanged."""
    text = text.strip()
    if len(text) >= 2 and ((text[0] == "{" and text[-1] == "}") or (text[0] == text[-1] == "'")):
        return text[1:-1]
    return text


def _split_assignments(text: str) -> tuple[str, list[tuple[str, str]]]:
    """Split ``head k1=v1 k2 = v 2 ...`` into the head and (name, value text) pairs.

    Only ``name =`` at nesting depth 0 (outside braces, parentheses and quotes) starts a new
    assignment, so values may contain blanks: ``.param c = a + b``.
    """
    top: list[bool] | None = None
    if "(" in text or "{" in text or "'" in text:
        depth = 0
        quote = False
        top = []
        for ch in text:
            if ch == "'":
                quote = not quote
            elif not quote:
                if ch in "({":
                    depth += 1
                elif ch in ")}":
                    depth -= 1
            top.append(depth == 0 and not quote)
    starts = []
    for m in _ASSIGN.finditer(text):
        s = m.start()
        if top is not None and not top[s]:
            continue
        if s > 0 and not (text[s - 1].isspace() or text[s - 1] in ",:"):
            continue
        starts.append(m)
    if not starts:
        return text, []
    head = text[: starts[0].start()]
    pairs = []
    for i, m in enumerate(starts):
        end = starts[i + 1].start() if i + 1 < len(starts) else len(text)
        value = text[m.end() : end].strip().rstrip(",").strip()
        pairs.append((m.group(1), value))
    return head, pairs


# ---------------------------------------------------------------------------------------------
# The parser
# ---------------------------------------------------------------------------------------------


def _read_text_file(path: str, line: Line | None, shown: str | None = None) -> str:
    """Read a text file for :func:`load` (``line`` is None) or for the ``.include``/``.lib``
    on ``line`` (``shown``: the name as written there). Every failure is a NetlistError."""

    def fail(msg: str) -> NetlistError:
        if line is None:
            return NetlistError(msg, path)
        extra = f" (looked for '{path}')" if shown is not None and shown != path else ""
        return NetlistError(f"{msg}: '{shown or path}'{extra}", line.file, line.line)

    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        raise fail("no such file") from None
    except IsADirectoryError:
        raise fail("is a directory, not a netlist file") from None
    except PermissionError:
        raise fail("permission denied") from None
    except OSError as err:
        raise fail(f"cannot read ({err.strerror or err})") from None
    if b"\x00" in data:
        raise fail("binary file (NUL bytes), not a netlist")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        lineno = data.count(b"\n", 0, err.start) + 1
        raise fail(
            f"not a UTF-8 text file: undecodable byte 0x{data[err.start]:02x} on line {lineno}"
        ) from None
    return text


class _Parser:
    def __init__(self, source: str):
        self.source = source
        self.title = ""
        self.file_cache: dict[str, list[Line]] = {}
        self.state = _EvalState()
        self.elements: list[Element] = []
        self.by_name: dict[str, Element] = {}
        self.instances: dict[str, Line] = {}
        self.models: dict[str, DiodeModel] = {}
        self.controlled: list[tuple[Element, Line, _Ctx]] = []
        self.options: dict[str, object] = {}
        self.mos_models: dict[str, MosfetModel] = {}
        self.globals: set[str] = set()
        self.op = False
        self.dc_line: Line | None = None
        self.tran_line: Line | None = None
        self.ic_lines: list[Line] = []
        self._handlers = self._make_handlers()
        self.deferred: list[tuple[Line, str]] = []
        self.num_cache: dict[str, float] = {}
        self.tok_cache: dict[Line, list[str]] = {}

    # -- stage 1: reading -----------------------------------------------------------------
    def read_top(self, text: str, file: str) -> list[Line]:
        if not text.strip():
            raise NetlistError("empty netlist", file)
        title, lines, _ = logical_lines(text, file, top=True)
        self.title = title or ""
        key = os.path.abspath(file) if file != "<string>" else "<string>"
        return self._expand_includes(lines, file, [key])

    def _resolve(self, name: str, including: str) -> str:
        if os.path.isabs(name):
            return name
        base = os.path.dirname(including) if not including.startswith("<") else ""
        return os.path.normpath(os.path.join(base, name)) if base else os.path.normpath(name)

    def _file_lines(self, path: str, line: Line, shown: str) -> list[Line]:
        cached = self.file_cache.get(path)
        if cached is None:
            text = _read_text_file(path, line, shown)
            _, cached, _ = logical_lines(text, path, top=False)
            self.file_cache[path] = cached
        return cached

    def _path_arg(self, line: Line, command: str) -> tuple[str, list[str]]:
        """The file argument of ``.include``/``.lib`` (original case) and the remaining words."""
        rest = line.raw.strip()[len(command) :].strip()
        if not rest:
            raise NetlistError(f"'{command}' needs a file name", line.file, line.line)
        if rest[0] in "\"'":
            end = rest.find(rest[0], 1)
            if end < 0:
                raise NetlistError(
                    f"unterminated quote in '{line.raw.strip()}'", line.file, line.line
                )
            return rest[1:end], rest[end + 1 :].lower().split()
        parts = rest.split()
        return parts[0], [p.lower() for p in parts[1:]]

    def _expand_includes(self, lines: list[Line], file: str, stack: list[str]) -> list[Line]:
        out: list[Line] = []
        i = 0
        n = len(lines)
        while i < n:
            line = lines[i]
            i += 1
            t = line.text
            if t[0] != "." or not (t.startswith(".inc") or t.startswith(".lib")):
                out.append(line)
                continue
            word = t.split(None, 1)[0]
            if word in (".include", ".inc", ".includes"):
                name, extra = self._path_arg(line, line.raw.split(None, 1)[0])
                if extra:
                    raise NetlistError(
                        f"'{word}' takes one file name, got extra '{' '.join(extra)}'",
                        line.file,
                        line.line,
                    )
                path = self._resolve(name, line.file)
                key = os.path.abspath(path)
                if key in stack:
                    raise NetlistError(f"recursive .include of '{name}'", line.file, line.line)
                sub = self._file_lines(path, line, name)
                out.extend(self._expand_includes(sub, path, [*stack, key]))
            elif word == ".lib":
                name, extra = self._path_arg(line, line.raw.split(None, 1)[0])
                if not extra:
                    # a section definition in the current file: skip it up to its .endl
                    j = i
                    while j < n and lines[j].text.split(None, 1)[0] != ".endl":
                        j += 1
                    if j >= n:
                        raise NetlistError(
                            f"'.lib {name}' section without '.endl'", line.file, line.line
                        )
                    i = j + 1
                    continue
                if len(extra) > 1:
                    raise NetlistError(
                        f"'.lib' takes a file and a section, got extra '{' '.join(extra[1:])}'",
                        line.file,
                        line.line,
                    )
                section = extra[0]
                path = self._resolve(name, line.file)
                key = f"{os.path.abspath(path)}#{section}"
                if key in stack:
                    raise NetlistError(
                        f"recursive .lib of '{name}' section '{section}'", line.file, line.line
                    )
                sub = self._lib_section(path, section, name, line)
                out.extend(self._expand_includes(sub, path, [*stack, key]))
            else:
                out.append(line)
        return out

    def _lib_section(self, path: str, section: str, shown: str, line: Line) -> list[Line]:
        lines = self._file_lines(path, line, shown)
        inside = False
        depth = 0
        found: list[Line] = []
        for ln in lines:
            words = ln.text.split()
            w0 = words[0]
            if not inside:
                if w0 == ".lib" and len(words) == 2 and _strip_quotes(words[1]) == section:
                    inside = True
                continue
            if w0 == ".lib" and len(words) == 2:
                depth += 1
            elif w0 == ".endl":
                if depth == 0:
                    return found
                depth -= 1
            found.append(ln)
        if inside:
            raise NetlistError(
                f"library section '{section}' in '{shown}' has no '.endl'", line.file, line.line
            )
        raise NetlistError(
            f"library section '{section}' not found in '{shown}'", line.file, line.line
        )

    # -- stage 2: structure ---------------------------------------------------------------
    def structure(self, lines: list[Line]) -> _Body:
        top = _Body()
        stack: list[tuple[_Body, _Subckt | None]] = [(top, None)]
        body = top
        for line in lines:
            t = line.text
            if t[0] != ".":
                body.lines.append(line)
                continue
            word = t.split(None, 1)[0]
            if word == ".subckt":
                sub = self._subckt_header(line)
                if sub.name in body.subckts:
                    first = body.subckts[sub.name].line
                    raise NetlistError(
                        f"duplicate .subckt '{sub.name}' "
                        f"(first defined at {first.file}:{first.line})",
                        line.file,
                        line.line,
                    )
                body.subckts[sub.name] = sub
                stack.append((sub.body, sub))
                body = sub.body
            elif word == ".ends":
                if len(stack) == 1:
                    raise NetlistError("'.ends' without '.subckt'", line.file, line.line)
                _, sub = stack.pop()
                assert sub is not None
                words = t.split()
                if len(words) > 1 and words[1] != sub.name:
                    raise NetlistError(
                        f"'.ends {words[1]}' does not match '.subckt {sub.name}' "
                        f"(line {sub.line.line})",
                        line.file,
                        line.line,
                    )
                body = stack[-1][0]
            elif word in (".param", ".params"):
                self._param_card(line, body, word)
            elif word == ".model":
                words = t.split(None, 2)
                if len(words) < 3:
                    raise NetlistError(
                        "'.model' needs a name and a type: .model NAME TYPE(...)",
                        line.file,
                        line.line,
                    )
                name = words[1]
                if name in body.models:
                    first = body.models[name]
                    raise NetlistError(
                        f"duplicate .model '{name}' (first defined at {first.file}:{first.line})",
                        line.file,
                        line.line,
                    )
                body.models[name] = line
            else:
                self._command(line, word, inside=len(stack) > 1)
        if len(stack) > 1:
            sub = stack[-1][1]
            assert sub is not None
            raise NetlistError(f"'.subckt {sub.name}' has no '.ends'", sub.line.file, sub.line.line)
        return top

    def _subckt_header(self, line: Line) -> _Subckt:
        head, pairs = _split_assignments(line.text[len(".subckt") :])
        words = head.replace(",", " ").split()
        if words and words[-1] in ("params:", "param:"):
            words.pop()
        elif words and words[-1].endswith("params:"):
            words[-1] = words[-1][: -len("params:")]
        if not words:
            raise NetlistError("'.subckt' needs a name", line.file, line.line)
        name, ports = words[0], words[1:]
        if any(w.endswith(":") for w in ports):
            raise NetlistError(
                f"subckt '{name}': 'params:' must be followed by name=value pairs",
                line.file,
                line.line,
            )
        seen: set[str] = set()
        for p in ports:
            if p in _GROUND_NAMES:
                raise NetlistError(
                    f"subckt '{name}': ground '{p}' cannot be a port", line.file, line.line
                )
            if p in seen:
                raise NetlistError(
                    f"subckt '{name}': port '{p}' listed twice", line.file, line.line
                )
            seen.add(p)
        defaults: dict[str, str] = {}
        for key, value in pairs:
            if not value:
                raise NetlistError(
                    f"subckt '{name}': parameter '{key}' has no value", line.file, line.line
                )
            defaults[key] = _strip_expr(value)
        return _Subckt(name, ports, defaults, _Body(), line)

    def _param_card(self, line: Line, body: _Body, word: str) -> None:
        rest = line.text[len(word) :]
        if _FUNC_DEF.match(rest):
            raise NetlistError(
                f"parameter functions are not supported: '{line.text.strip()}'",
                line.file,
                line.line,
            )
        head, pairs = _split_assignments(rest)
        if head.strip() or not pairs:
            raise NetlistError(
                f"bad .param syntax '{line.text.strip()}' (expected name=value ...)",
                line.file,
                line.line,
            )
        for name, value in pairs:
            if not value:
                raise NetlistError(f"parameter '{name}' has no value", line.file, line.line)
            body.params[name] = (_strip_expr(value), line)

    def _command(self, line: Line, word: str, *, inside: bool) -> None:
        if word == ".op":
            self.op = True
        elif word == ".dc":
            if inside:
                raise NetlistError("'.dc' inside a .subckt", line.file, line.line)
            if self.dc_line is not None:
                raise NetlistError(
                    f"more than one '.dc' (first at line {self.dc_line.line})", line.file, line.line
                )
            self.dc_line = line
        elif word == ".tran":
            if inside:
                raise NetlistError("'.tran' inside a .subckt", line.file, line.line)
            if self.tran_line is not None:
                raise NetlistError(f"more than one '.tran' (first at line "
                                   f"{self.tran_line.line})", line.file, line.line)
            self.tran_line = line
        elif word == ".ic":
            if inside:
                raise NetlistError("'.ic' inside a .subckt", line.file, line.line)
            self.ic_lines.append(line)
        elif word in (".options", ".option", ".opt", ".opts", ".temp"):
            self.deferred.append((line, word))  # values may use .param names defined later
        else:
            self._other_command(line, word)

    def _deferred_command(self, line: Line, word: str) -> None:
        if word != ".temp":
            self._options(line, word)
        else:
            values = tokenize(line)[1:]
            if not values:
                raise NetlistError("'.temp' needs a value", line.file, line.line)
            for tok in values:
                temp = self._global_value(tok, line, ".temp")
                if temp != _TNOM:
                    raise NetlistError(
                        f"'.temp {tok}': temperatures other than 27 C are not implemented",
                        line.file,
                        line.line,
                    )

    def _other_command(self, line: Line, word: str) -> None:
        if word == ".title":
            self.title = line.raw.strip()[len(".title") :].strip()
        elif word == ".global":
            for node in line.text.split()[1:]:
                if node not in _GROUND_NAMES:
                    self.globals.add(node)
        elif word in _IGNORED_COMMANDS:
            return
        elif word in _REFUSED_COMMANDS:
            raise NetlistError(f"'{word}': {_REFUSED_COMMANDS[word]}", line.file, line.line)
        else:
            raise NetlistError(f"unsupported dot command '{word}'", line.file, line.line)

    def _options(self, line: Line, word: str) -> None:
        toks = tokenize(line)[1:]
        i = 0
        while i < len(toks):
            key = toks[i]
            if i + 1 < len(toks) and toks[i + 1] == "=":
                if i + 2 >= len(toks):
                    raise NetlistError(f"option '{key}=' has no value", line.file, line.line)
                raw = toks[i + 2]
                i += 3
                try:
                    value: object = self._global_value(raw, line, f"option '{key}'", quiet=True)
                except NetlistError:
                    value = _strip_quotes(raw)
            else:
                value = True
                i += 1
            self._check_option(key, value, line)
            self.options[key] = value

    def _check_option(self, key: str, value: object, line: Line) -> None:
        if key == "gmin":
            if not isinstance(value, float) or not value > 0:
                raise NetlistError(
                    f"option gmin must be a positive number, got '{value}'", line.file, line.line
                )
        elif key in ("temp", "tnom"):
            if value != _TNOM:
                raise NetlistError(
                    f"option {key}={value}: temperatures other than 27 C are not implemented",
                    line.file,
                    line.line,
                )
        elif key in ("rshunt", "gshunt"):
            if isinstance(value, float) and value == 0 and key == "gshunt":
                return
            raise NetlistError(
                f"option {key} is not supported (it adds a conductance at every node)",
                line.file,
                line.line,
            )
        elif key == "scale" and value != 1.0:
            raise NetlistError("option scale is not supported", line.file, line.line)
        elif key in _MOS_OPTIONS:
            self._check_mos_option(key, value, line)

    def _global_value(self, tok: str, line: Line, what: str, *, quiet: bool = False) -> float:
        try:
            return self._eval_token(tok, self.global_scope)
        except (ExpressionError, KeyError) as err:
            if quiet:
                raise NetlistError("", line.file, line.line) from None
            msg = err.args[0] if isinstance(err, ExpressionError) else f"bad value '{tok}'"
            raise NetlistError(f"{what}: {msg}", line.file, line.line) from None

    def _tokens(self, line: Line) -> list[str]:
        """Tokens of a logical line, cached: subckt bodies are read once per instance.
        Callers must not modify the list."""
        toks = self.tok_cache.get(line)
        if toks is None:
            toks = self.tok_cache[line] = tokenize(line)
        return toks

    # -- values ---------------------------------------------------------------------------
    def _eval_token(self, tok: str, scope: _Scope) -> float:
        """Value of a token; raises ExpressionError, or KeyError for an unknown bare name."""
        value = self.num_cache.get(tok)
        if value is not None:
            return value
        c = tok[0]
        if c == "{":
            return evaluate(tok[1:-1], scope.lookup)
        if c == "'":
            return evaluate(tok[1:-1], scope.lookup)
        if is_number_start(tok):
            value = self.num_cache[tok] = parse_number(tok)
            return value
        if _IDENT.match(tok):
            return scope.lookup(tok)
        raise ExpressionError(f"bad value '{tok}'")

    def _value(self, tok: str, ctx: _Ctx, line: Line, what: str) -> float:
        try:
            return self._eval_token(tok, ctx.scope)
        except ExpressionError as err:
            raise _err(f"{what}: {err}", line, ctx) from None
        except KeyError:
            raise _err(
                f"{what}: bad value '{tok}' (not a number or a known parameter)", line, ctx
            ) from None

    # -- stage 3: expansion ---------------------------------------------------------------
    def expand(self, top: _Body) -> None:
        scope = _Scope(None, self.state)
        for name, (text, line) in top.params.items():
            scope.defs[name] = (text, line, None, "")
        self.global_scope = scope
        ctx = _Ctx("", {}, scope, top, None, None)
        scope.evaluate_all()
        for line, word in self.deferred:
            self._deferred_command(line, word)
        self._expand(ctx, [])

    def _expand(self, ctx: _Ctx, active: list[_Subckt]) -> None:
        handlers = self._handlers
        for line in ctx.body.lines:
            text = line.text
            letter = text[0]
            if letter == "x":
                self._instance(line, ctx, active)
                continue
            handler = handlers.get(letter)
            if handler is None:
                name = text.split(None, 1)[0]
                desc = _ELEMENT_DESCRIPTIONS.get(letter)
                extra = f" ({desc})" if desc else ""
                raise _err(f"unsupported element {letter}: {name}{extra}", line, ctx)
            handler(line, ctx)

    def _make_handlers(self):
        return {
            "r": self._resistor,
            "v": self._source,
            "i": self._source,
            "d": self._diode,
            "c": self._reactive,
            "l": self._reactive,
            "e": self._controlled,
            "g": self._controlled,
            "f": self._controlled,
            "h": self._controlled,
            "m": self._mosfet,
        }

    def _node(self, name: str, ctx: _Ctx) -> str:
        if name in _GROUND_NAMES:
            return "0"
        if not ctx.path:
            return name
        mapped = ctx.ports.get(name)
        if mapped is not None:
            return mapped
        if name in self.globals:
            return name
        return f"{ctx.path}.{name}"

    def _add(self, kind: str, name: str, nodes: tuple[str, ...], line: Line, ctx: _Ctx, **kw):
        full = name if not ctx.path else f"{name[0]}.{ctx.path}.{name}"
        if full in self.by_name:
            first = self.by_name[full].location
            raise _err(f"duplicate element name '{full}' (first at {first})", line, ctx)
        el = Element(kind, full, nodes, location=Location(line.file, line.line), **kw)
        self.by_name[full] = el
        self.elements.append(el)
        return el

    @staticmethod
    def _split(toks: list[str], start: int, line: Line, ctx: _Ctx, name: str):
        """Positional tokens and ``key=value`` pairs from ``toks[start:]``."""
        pos: list[str] = []
        kw: dict[str, str] = {}
        i = start
        n = len(toks)
        while i < n:
            t = toks[i]
            if i + 1 < n and toks[i + 1] == "=":
                if i + 2 >= n or toks[i + 2] in "=()":
                    raise _err(f"{name}: '{t}=' has no value", line, ctx)
                if t in kw:
                    raise _err(f"{name}: '{t}' given twice", line, ctx)
                kw[t] = toks[i + 2]
                i += 3
            elif t in "=()":
                raise _err(f"{name}: unexpected '{t}'", line, ctx)
            else:
                pos.append(t)
                i += 1
        return pos, kw

    def _check_temp(self, kw: dict[str, str], name: str, line: Line, ctx: _Ctx) -> None:
        if "temp" in kw and self._value(kw["temp"], ctx, line, f"{name} temp") != _TNOM:
            raise _err(f"{name}: temp other than 27 C is not implemented", line, ctx)
        if "dtemp" in kw and self._value(kw["dtemp"], ctx, line, f"{name} dtemp") != 0:
            raise _err(f"{name}: dtemp other than 0 is not implemented", line, ctx)

    def _multiplier(self, kw: dict[str, str], name: str, line: Line, ctx: _Ctx) -> float:
        if "m" not in kw:
            return 1.0
        m = self._value(kw["m"], ctx, line, f"{name} m")
        if not m > 0:
            raise _err(f"{name}: multiplier m={m!r} must be positive", line, ctx)
        return m

    def _unknown_keys(self, kw, allowed, name: str, line: Line, ctx: _Ctx) -> None:
        for key in kw:
            if key not in allowed:
                raise _err(f"{name}: unknown parameter '{key}'", line, ctx)

    # -- R --------------------------------------------------------------------------------
    def _resistor(self, line: Line, ctx: _Ctx) -> None:
        toks = self._tokens(line)
        name = toks[0]
        if len(toks) == 4:
            n1, n2, tok = toks[1], toks[2], toks[3]
            if tok[0] in _DIGIT_CHARS and n1 not in _PUNCT_TOKENS and n2 not in _PUNCT_TOKENS:
                # fastest path, every line of a generated deck: R n1 n2 number (no model can
                # start with a digit; the checks and messages are those of the general path)
                value = self._value(tok, ctx, line, name)
                if value == 0:
                    raise _err(
                        f"{name}: zero resistance (use a V source of 0 V for a short)", line, ctx
                    )
                self._add(
                    "r", name, (self._node(n1, ctx), self._node(n2, ctx)), line, ctx, value=value
                )
                return
        if len(toks) == 4 and "=" not in toks and "(" not in toks and ")" not in toks:
            # fast path: R n1 n2 value
            pos, kw = toks[1:], {}
        else:
            pos, kw = self._split(toks, 1, line, ctx, name)
        if len(pos) < 2:
            raise _err(
                f"{name}: a resistor needs 2 nodes and a value, got {len(pos)} node(s)", line, ctx
            )
        nodes = (self._node(pos[0], ctx), self._node(pos[1], ctx))
        rest = pos[2:]
        value: float | None = None
        model: tuple[str, dict[str, float]] | None = None
        if rest:
            first = rest[0]
            if not is_number_start(first) and first[0] not in "{'":
                found = self._find_model(first, ctx)
                if found is not None:
                    mtype, params = found[0], found[1]
                    if mtype != "r":
                        raise _err(
                            f"{name}: model '{first}' is of type {mtype.upper()}, "
                            "not a resistor model",
                            line,
                            ctx,
                        )
                    model = (first, params)
                    rest = rest[1:]
            if rest:
                value = self._value(rest[0], ctx, line, name)
                rest = rest[1:]
            if rest:
                raise _err(f"{name}: unexpected '{rest[0]}'", line, ctx)
        if kw:
            self._unknown_keys(kw, _RES_INSTANCE_KEYS, name, line, ctx)
            for key in ("r", "resistance"):
                if key in kw:
                    if value is not None:
                        raise _err(f"{name}: resistance given twice", line, ctx)
                    value = self._value(kw[key], ctx, line, name)
        if value is None and model is not None:
            value = self._model_resistance(model, kw, name, line, ctx)
        if value is None:
            raise _err(
                f"{name}: missing resistance value (ngspice would silently use 1 mOhm)", line, ctx
            )
        if value == 0:
            raise _err(f"{name}: zero resistance (use a V source of 0 V for a short)", line, ctx)
        if value < 0:
            raise _err(f"{name}: negative resistance {value!r} is not supported", line, ctx)
        if kw or model is not None:
            p = model[1] if model else {}
            factor = self._resistor_temperature(kw, p, name, line, ctx)
            if "scale" in kw:
                scale = self._value(kw["scale"], ctx, line, f"{name} scale")
                if not scale > 0:
                    raise _err(f"{name}: scale={scale!r} must be positive", line, ctx)
                factor *= scale
            else:
                factor *= p.get("scale", 1.0)
            if factor != 1.0:
                value *= factor
                if not value > 0:
                    raise _err(
                        f"{name}: temperature coefficients make the resistance {value!r}",
                        line,
                        ctx,
                    )
        m = self._multiplier(kw, name, line, ctx) if kw else 1.0
        self._add("r", name, nodes, line, ctx, value=value / m)

    def _resistor_temperature(
        self, kw: dict[str, str], p: dict[str, float], name: str, line: Line, ctx: _Ctx
    ) -> float:
        """ngspice's resistor temperature factor: ``1 + tc1 dT + tc2 dT^2``, or
        ``1.01 ** (tce dT)`` when ``tce`` is given, with ``dT = temp + dtemp - tnom`` (``temp``
        the instance's or 27 C; ``dtemp`` ignored when ``temp`` is given, as in ngspice). The
        instance parameters ``temp``, ``dtemp`` and ``tc`` (= ``tc1``) written on the model card
        are defaults of the instance, as in ngspice."""

        def get(key: str, default: float) -> float:
            if key in kw:
                return self._value(kw[key], ctx, line, f"{name} {key}")
            return p.get(key, default)

        temp = get("temp", _TNOM) if "temp" in kw or "temp" in p else _TNOM + get("dtemp", 0.0)
        diff = temp - p.get("tnom", _TNOM)
        if diff == 0:
            return 1.0
        if "tce" in kw or "tce" in p:
            return 1.01 ** (get("tce", 0.0) * diff)
        # 'tc' on the model card is the instance's tc1 default: it wins over the model's tc1
        tc1 = get("tc1", 0.0) if "tc1" in kw else p.get("tc", p.get("tc1", 0.0))
        tc2 = get("tc2", 0.0)
        return 1.0 + tc1 * diff + tc2 * diff * diff

    def _model_resistance(self, model, kw, name: str, line: Line, ctx: _Ctx) -> float | None:
        mname, p = model
        if "resistance" in p:
            # an instance parameter on the card: ngspice makes it every instance's value
            return p["resistance"]
        rsh = p.get("rsh", 0.0)
        if rsh:
            length = (
                self._value(kw["l"], ctx, line, f"{name} l") if "l" in kw else p.get("l", 1e-5)
            )
            width = (
                self._value(kw["w"], ctx, line, f"{name} w") if "w" in kw else p.get("defw", 1e-5)
            )
            eff_l = length - 2 * p.get("short", 0.0)
            eff_w = width - 2 * p.get("narrow", 0.0)
            if not (eff_l > 0 and eff_w > 0):
                raise _err(
                    f"{name}: non-positive effective length or width with model '{mname}'",
                    line,
                    ctx,
                )
            return rsh * eff_l / eff_w
        return p.get("r")

    # -- V, I -----------------------------------------------------------------------------
    def _source(self, line: Line, ctx: _Ctx) -> None:
        toks = self._tokens(line)
        name = toks[0]
        kind = name[0]
        n = len(toks)
        if n < 3 or toks[1] in "=()" or toks[2] in "=()":
            raise _err(f"{name}: a source needs 2 nodes", line, ctx)
        nodes = (self._node(toks[1], ctx), self._node(toks[2], ctx))
        if n == 4 and toks[3] not in _SOURCE_KEYWORDS:
            value = self._value(toks[3], ctx, line, name)
            self._add(kind, name, nodes, line, ctx, value=value)
            return
        dc: float | None = None
        wave: tuple[str, list[str]] | None = None
        m = 1.0
        extra: dict[str, str] = {}
        i = 3
        while i < n:
            t = toks[i]
            if t == "(" and i + 1 < n and toks[i + 1] in _SOURCE_KEYWORDS:
                # SPICE2's parenthesised groups: '(PWL 0 1 1n 2)', '(AC 1v)', '(DC 2)'
                close = i + 1
                while close < n and toks[close] != ")":
                    close += 1
                if close >= n:
                    raise _err(f"{name}: '(' without ')'", line, ctx)
                group = toks[i + 1 : close]
                if any(g in "=(" for g in group[1:]):
                    raise _err(f"{name}: unexpected '{group[1:]}' in ({group[0]} ...)", line, ctx)
                toks = toks[:i] + [group[0], "("] + group[1:] + [")"] + toks[close + 1 :]
                if group[0] in ("dc", "ac"):  # keywords that take bare values
                    toks = toks[:i] + group + toks[i + len(group) + 2 :]
                n = len(toks)
                continue
            has_eq = i + 1 < n and toks[i + 1] == "="
            if has_eq:
                if i + 2 >= n or toks[i + 2] in "=()":
                    raise _err(f"{name}: '{t}=' has no value", line, ctx)
                val = toks[i + 2]
                i += 3
                if t == "dc":
                    if dc is not None:
                        raise _err(f"{name}: DC value given twice", line, ctx)
                    dc = self._value(val, ctx, line, name)
                elif t == "m" and kind == "i":
                    m = self._value(val, ctx, line, f"{name} m")
                    if not m > 0:
                        raise _err(f"{name}: multiplier m={m!r} must be positive", line, ctx)
                elif t in ("ac", "acmag", "acphase", "r", "td", "portnum", "z0"):
                    extra[t] = val
                else:
                    raise _err(f"{name}: unknown parameter '{t}'", line, ctx)
                continue
            if t == "dc":
                if i + 1 >= n or toks[i + 1] in _SOURCE_KEYWORDS or toks[i + 1] in "()":
                    raise _err(f"{name}: 'dc' without a value", line, ctx)
                if dc is not None:
                    raise _err(f"{name}: DC value given twice", line, ctx)
                dc = self._value(toks[i + 1], ctx, line, name)
                i += 2
            elif t == "ac":
                i += 1
                for _ in range(2):  # magnitude and phase, both optional
                    if (
                        i < n
                        and toks[i] not in _SOURCE_KEYWORDS
                        and toks[i] not in "=()"
                        and not (i + 1 < n and toks[i + 1] == "=")
                    ):
                        i += 1
            elif t in _WAVEFORMS or t in _SMALL_SIGNAL:
                i, args = self._waveform_args(toks, i + 1, line, ctx, name, t)
                if t in _SMALL_SIGNAL:
                    continue
                if wave is not None:
                    raise _err(f"{name}: two waveforms ('{wave[0]}' and '{t}')", line, ctx)
                wave = (t, args)
            elif t in _UNSUPPORTED_WAVEFORMS:
                raise _err(f"{name}: unsupported source function '{t}'", line, ctx)
            elif t == "(" or t == ")" or t == "=":
                raise _err(f"{name}: unexpected '{t}'", line, ctx)
            elif dc is None and wave is None and i == 3:
                dc = self._value(t, ctx, line, name)
                i += 1
            else:
                raise _err(f"{name}: unexpected '{t}'", line, ctx)
        waveform = None
        if wave is not None:
            t0 = self._t0_value(wave, extra, line, ctx, name)
            dc = t0 if dc is None else dc
            fn, raw = wave
            args = tuple(self._value(t, ctx, line, f"{name} {fn}") for t in raw)
            delay = (self._value(extra["td"], ctx, line, f"{name} td")
                     if fn == "pwl" and "td" in extra else 0.0)
            repeat = (self._value(extra["r"], ctx, line, f"{name} r")
                      if fn == "pwl" and "r" in extra else None)
            waveform = Waveform(fn, _scaled(fn, args, m), delay, repeat)
        if dc is None:
            dc = 0.0
        self._add(kind, name, nodes, line, ctx, value=dc * m, wave=waveform)

    def _waveform_args(self, toks, i, line, ctx, name, fn):
        n = len(toks)
        args: list[str] = []
        if i < n and toks[i] == "(":
            i += 1
            while i < n and toks[i] != ")":
                if toks[i] in "=(":
                    raise _err(f"{name}: unexpected '{toks[i]}' in {fn}(...)", line, ctx)
                args.append(toks[i])
                i += 1
            if i >= n:
                raise _err(f"{name}: '{fn}(' without ')'", line, ctx)
            return i + 1, args
        while (
            i < n
            and toks[i] not in _SOURCE_KEYWORDS
            and toks[i] not in "=()"
            and not (i + 1 < n and toks[i + 1] == "=")
        ):
            args.append(toks[i])
            i += 1
        return i, args

    def _t0_value(self, wave, extra, line: Line, ctx: _Ctx, name: str) -> float:
        """The value of a transient waveform at t = 0 (ngspice's DC value when no DC given)."""
        fn, raw = wave
        a = [self._value(t, ctx, line, f"{name} {fn}") for t in raw]

        def arg(k: int, default: float | None = None) -> float:
            if k < len(a):
                return a[k]
            if default is None:
                raise _err(f"{name}: {fn}(...) needs at least {k + 1} values", line, ctx)
            return default

        if fn == "sin":
            vo, va = arg(0), arg(1)
            td, theta, phase = arg(3, 0.0), arg(4, 0.0), arg(5, 0.0)
            phase = math.radians(phase)
            if td >= 0:
                return vo + va * math.sin(phase)
            freq = arg(2)
            time = -td
            return vo + va * math.sin(2 * math.pi * freq * time + phase) * math.exp(-theta * time)
        if fn == "pulse":
            v1 = arg(0)
            arg(1)
            if arg(2, 0.0) < 0:
                raise _err(f"{name}: pulse with a negative delay is not supported", line, ctx)
            return v1
        if fn == "exp":
            v1, v2 = arg(0), arg(1)
            td1 = arg(2, 0.0)
            if td1 >= 0:
                return v1
            tau1 = arg(3)
            td2 = arg(4)
            value = v1 + (v2 - v1) * (1 - math.exp(td1 / tau1))
            if td2 < 0:
                tau2 = arg(5)
                value += (v1 - v2) * (1 - math.exp(td2 / tau2))
            return value
        if fn == "sffm":
            vo, va = arg(0), arg(1)
            mdi = arg(3, 0.0)
            phasec, phases = math.radians(arg(5, 0.0)), math.radians(arg(6, 0.0))
            return vo + va * math.sin(phasec + mdi * math.sin(phases))
        if fn == "pwl":
            if len(a) < 2 or len(a) % 2:
                raise _err(
                    f"{name}: pwl(...) needs time-value pairs, got {len(a)} values", line, ctx
                )
            td = self._value(extra["td"], ctx, line, f"{name} td") if "td" in extra else 0.0
            time = -td
            ts, vs = a[0::2], a[1::2]
            for k in range(1, len(ts)):
                if ts[k] < ts[k - 1]:
                    raise _err(f"{name}: pwl times must not decrease", line, ctx)
            if time <= ts[0]:
                return vs[0]
            for k in range(1, len(ts)):
                if time <= ts[k]:
                    t0, t1 = ts[k - 1], ts[k]
                    if t1 == t0:
                        return vs[k]
                    return vs[k - 1] + (vs[k] - vs[k - 1]) * (time - t0) / (t1 - t0)
            return vs[-1]
        raise AssertionError(fn)  # pragma: no cover

    # -- D --------------------------------------------------------------------------------
    def _diode(self, line: Line, ctx: _Ctx) -> None:
        toks = self._tokens(line)
        name = toks[0]
        pos, kw = self._split(toks, 1, line, ctx, name)
        if len(pos) < 3:
            raise _err(
                f"{name}: a diode needs 2 nodes and a model name (D anode cathode model)",
                line,
                ctx,
            )
        nodes = (self._node(pos[0], ctx), self._node(pos[1], ctx))
        mname = pos[2]
        key, model_area = self._diode_model(mname, line, ctx, name)
        area: float | None = None
        for t in pos[3:]:
            if t == "off":
                continue
            if area is None and "area" not in kw:
                area = self._value(t, ctx, line, f"{name} area")
            else:
                raise _err(f"{name}: unexpected '{t}'", line, ctx)
        self._unknown_keys(
            kw,
            ("area", "m", "ic", "temp", "dtemp", "pj", "l", "w", "lm", "wm", "lp", "wp"),
            name,
            line,
            ctx,
        )
        if "area" in kw:
            area = self._value(kw["area"], ctx, line, f"{name} area")
        if area is None:
            area = model_area  # ngspice: the model card's area is every instance's default
        if not area > 0:
            raise _err(f"{name}: area={area!r} must be positive", line, ctx)
        m = self._multiplier(kw, name, line, ctx)
        self._check_temp(kw, name, line, ctx)
        self._add("d", name, nodes, line, ctx, model=key, area=area, m=m)

    def _find_model(self, name: str, ctx: _Ctx):
        """Find a model card in scope: ``(type, params, key)`` or ``None``."""
        c: _Ctx | None = ctx
        while c is not None:
            card = c.body.models.get(name)
            if card is not None:
                return self._model_card(card, name, c)
            c = c.parent
        return None

    def _model_card(self, card: Line, name: str, ctx: _Ctx):
        cache = ctx.model_keys
        hit = cache.get(name)
        if hit is not None:
            return hit
        toks = self._tokens(card)
        if len(toks) < 3:
            raise _err(f"'.model {name}' needs a type", card, ctx)
        mtype = toks[2]
        i = 3
        params: dict[str, float] = {}
        raw: dict[str, str] = {}
        depth = 0
        while i < len(toks):
            t = toks[i]
            if t == "(":
                depth += 1
                i += 1
                continue
            if t == ")":
                depth -= 1
                i += 1
                continue
            if i + 1 < len(toks) and toks[i + 1] == "=":
                if i + 2 >= len(toks) or toks[i + 2] in "=()":
                    raise _err(f"model '{name}': '{t}=' has no value", card, ctx)
                raw[t] = toks[i + 2]
                i += 3
                continue
            raise _err(f"model '{name}': expected name=value, got '{t}'", card, ctx)
        if depth != 0:
            raise _err(f"model '{name}': unbalanced parentheses", card, ctx)
        key = name if not ctx.path else f"{ctx.path}.{name}"
        if mtype == "d":
            params = self._diode_params(raw, name, card, ctx)
        elif mtype in ("r", "res"):
            mtype = "r"
            params = self._resistor_params(raw, name, card, ctx)
        elif mtype in ("nmos", "pmos"):
            params = self._mosfet_params(raw, mtype, name, card, ctx)
        elif mtype in ("c", "l"):
            known = _REACTIVE_MODEL_KNOWN[mtype]
            for pname, tok in raw.items():
                if pname not in known:
                    raise self._unknown_model_parameter(
                        mtype, pname, _REACTIVE_MODEL_VALUE[mtype], known, name, card, ctx
                    )
                params[pname] = self._value(tok, ctx, card, f"model '{name}' {pname}")
        result = (mtype, params, key, card)
        cache[name] = result
        return result

    def _unknown_model_parameter(
        self, mtype: str, pname: str, read, others, name: str, card: Line, ctx: _Ctx
    ) -> NetlistError:
        """The refusal of a parameter name the model type does not have, with a suggestion
        (taken first among the parameters that are ``read``, then among the ``others``)."""
        kind = {"d": "diode", "r": "resistor", "c": "capacitor", "l": "inductor",
                "nmos": "MOSFET", "pmos": "MOSFET"}[mtype]
        hint = _MODEL_HINTS.get((mtype, pname))
        if hint is None:
            close = difflib.get_close_matches(pname, sorted(read), n=1, cutoff=0.6)
            close = close or difflib.get_close_matches(pname, sorted(others), n=1, cutoff=0.6)
            hint = f"did you mean '{close[0]}'?" if close else None
        return _err(
            f"model '{name}': unknown {kind} model parameter '{pname}'"
            + (f" ({hint})" if hint else ""),
            card,
            ctx,
        )

    def _read_params(
        self, raw: dict[str, str], read: dict[str, str], name: str, card: Line, ctx: _Ctx
    ) -> dict[str, float]:
        """Evaluate the parameters named in ``read`` (alias -> canonical name); the others
        must have been handled by the caller."""
        p: dict[str, float] = {}
        for pname, tok in raw.items():
            canon = read.get(pname)
            if canon is None:
                continue
            if canon in p:
                raise _err(f"model '{name}': parameter {canon} given twice", card, ctx)
            p[canon] = self._value(tok, ctx, card, f"model '{name}' {pname}")
        return p

    def _diode_params(
        self, raw: dict[str, str], name: str, card: Line, ctx: _Ctx
    ) -> dict[str, float]:
        for pname, tok in raw.items():
            if pname in _DIODE_IGNORED or pname in _DIODE_READ:
                continue
            if pname in _DIODE_UNSUPPORTED:
                if self._value(tok, ctx, card, f"model '{name}' {pname}") != 0:
                    raise _err(
                        f"model '{name}': parameter {pname} ({_DIODE_UNSUPPORTED[pname]}) "
                        "is not supported",
                        card,
                        ctx,
                    )
                continue
            if pname in _DIODE_NEWER_ALIASES:
                target = _DIODE_NEWER_ALIASES[pname]
                raise _err(
                    f"model '{name}': parameter {pname} is ignored by ngspice 39 (newer versions "
                    f"read it as {target}): write {target}=",
                    card,
                    ctx,
                )
            others = {*_DIODE_IGNORED, *_DIODE_UNSUPPORTED}
            raise self._unknown_model_parameter("d", pname, _DIODE_READ, others, name, card, ctx)
        p = self._read_params(raw, _DIODE_READ, name, card, ctx)
        if p.get("level", 1.0) != 1.0:
            raise _err(
                f"model '{name}': diode level={p['level']:g} is not implemented (only level 1)",
                card,
                ctx,
            )
        if p.get("tnom", _TNOM) != _TNOM:
            raise _err(
                f"model '{name}': tnom={p['tnom']:g} is not implemented (only 27 C)", card, ctx
            )
        if p.get("temp", _TNOM) != _TNOM:
            raise _err(f"model '{name}': temp other than 27 C is not implemented", card, ctx)
        if p.get("dtemp", 0.0) != 0:
            raise _err(f"model '{name}': dtemp other than 0 is not implemented", card, ctx)
        for pname in ("is", "n", "ibv", "nbv", "bv", "area"):
            if pname in p and not p[pname] > 0:
                raise _err(f"model '{name}': {pname}={p[pname]!r} must be positive", card, ctx)
        if p.get("rs", 0.0) < 0:
            raise _err(f"model '{name}': rs={p['rs']!r} must not be negative", card, ctx)
        for pname, tok in raw.items():  # charge storage: no effect at DC, kept for transients
            if pname in _DIODE_DYNAMIC and self._value(tok, ctx, card, f"model '{name}' {pname}"):
                p["#" + pname] = 1.0
        return p

    def _resistor_params(
        self, raw: dict[str, str], name: str, card: Line, ctx: _Ctx
    ) -> dict[str, float]:
        for pname in raw:
            if pname not in _RES_MODEL_READ and pname not in _RES_MODEL_IGNORED:
                raise self._unknown_model_parameter(
                    "r", pname, _RES_MODEL_READ, _RES_MODEL_IGNORED, name, card, ctx
                )
        p = self._read_params(raw, _RES_MODEL_READ, name, card, ctx)
        for pname in ("r", "rsh", "resistance"):
            if pname in p and p[pname] < 0:
                raise _err(f"model '{name}': negative {pname} is not supported", card, ctx)
        if p.get("m", 1.0) != 1.0:
            raise _err(
                f"model '{name}': m on a resistor model is ignored by ngspice: "
                "give m= on the resistor line",
                card,
                ctx,
            )
        if "scale" in p and not p["scale"] > 0:
            raise _err(f"model '{name}': scale={p['scale']!r} must be positive", card, ctx)
        return p

    def _diode_model(self, mname: str, line: Line, ctx: _Ctx, name: str) -> tuple[str, float]:
        """The flattened name of the diode model ``mname`` and its default instance area."""
        found = self._find_model(mname, ctx)
        if found is None:
            raise _err(f"{name}: unknown diode model '{mname}'", line, ctx)
        mtype, p, key, card = found
        if mtype != "d":
            raise _err(
                f"{name}: model '{mname}' is of type {mtype.upper()}, not a diode model", line, ctx
            )
        if key not in self.models:
            self.models[key] = DiodeModel(
                name=key,
                is_=p.get("is", 1e-14),
                n=p.get("n", 1.0),
                rs=p.get("rs", 0.0),
                bv=p.get("bv", math.inf),
                ibv=p.get("ibv", 1e-3),
                nbv=p.get("nbv"),
                location=Location(card.file, card.line),
                dynamic=tuple(k[1:] for k in p if k.startswith("#")),
            )
        return key, p.get("area", 1.0)

    # -- M --------------------------------------------------------------------------------
    def _mosfet(self, line: Line, ctx: _Ctx) -> None:
        toks = self._tokens(line)
        name = toks[0]
        pos, kw = self._split(toks, 1, line, ctx, name)
        shape = "M drain gate source bulk model"
        found = self._find_model(pos[4], ctx) if len(pos) >= 5 else None
        if found is None:
            at = next((k for k, t in enumerate(pos) if k != 4 and t != "off"
                       and self._find_model(t, ctx) is not None), None)
            if at is not None:
                raise _err(
                    f"{name}: {at} node(s) before model '{pos[at]}', a MOSFET has 4 ({shape})",
                    line,
                    ctx,
                )
            if len(pos) < 5:
                raise _err(f"{name}: a MOSFET needs 4 nodes and a model name ({shape})", line, ctx)
            raise _err(f"{name}: unknown MOSFET model '{pos[4]}'", line, ctx)
        mtype, p, key, card = found
        if mtype not in ("nmos", "pmos"):
            raise _err(
                f"{name}: model '{pos[4]}' is of type {mtype.upper()}, not a MOSFET model "
                "(NMOS or PMOS)",
                line,
                ctx,
            )
        if p.get("level", 1.0) != 1.0:
            raise _err(
                f"{name}: MOSFET level {p['level']:g} is not supported (level 1 only)", line, ctx
            )
        self._unknown_keys(kw, _MOS_INSTANCE_KEYS, name, line, ctx)
        off = False
        ic: list[float | None] = [None, None, None]
        extra = []
        for t in pos[5:]:
            if t == "off" and not off:
                off = True
            elif "ic" in kw and len(extra) < 2 and t != "off":
                extra.append(self._value(t, ctx, line, f"{name} ic"))
            else:
                raise _err(f"{name}: unexpected '{t}'", line, ctx)
        if "ic" in kw:
            ic = [self._value(kw["ic"], ctx, line, f"{name} ic"), *extra]
            ic += [None] * (3 - len(ic))
        for k, key_ic in enumerate(("icvds", "icvgs", "icvbs")):
            if key_ic in kw:
                ic[k] = self._value(kw[key_ic], ctx, line, f"{name} {key_ic}")
        self._check_temp(kw, name, line, ctx)
        opts = self.options

        def get(k: str, default: float) -> float:
            if k in kw:
                return self._value(kw[k], ctx, line, f"{name} {k}")
            return p.get(k, default)

        geometry = {
            "l": get("l", float(opts.get("defl", 1e-4))),  # type: ignore[arg-type]
            "w": get("w", float(opts.get("defw", 1e-4))),  # type: ignore[arg-type]
            "ad": get("ad", float(opts.get("defad", 0.0))),  # type: ignore[arg-type]
            "as": get("as", 0.0),
            "pd": get("pd", 0.0),
            "ps": get("ps", 0.0),
            "nrd": get("nrd", 1.0),
            "nrs": get("nrs", 1.0),
        }
        for k, v in geometry.items():
            if k in ("l", "w"):
                if not (v > 0 and math.isfinite(v)):
                    raise _err(f"{name}: {k}={v!r} must be positive", line, ctx)
            elif not (v >= 0 and math.isfinite(v)):
                raise _err(f"{name}: {k}={v!r} must not be negative", line, ctx)
        m = self._multiplier(kw, name, line, ctx) if "m" in kw else float(opts.get("defm", 1.0))  # type: ignore[arg-type]
        model = self._mosfet_model(key, mtype, p, card, ctx, pos[4])
        dev = Mosfet(
            model,
            l=geometry["l"],
            w=geometry["w"],
            m=m,
            ad=geometry["ad"],
            as_=geometry["as"],
            pd=geometry["pd"],
            ps=geometry["ps"],
            nrd=geometry["nrd"],
            nrs=geometry["nrs"],
            off=off,
            ic=(ic[0], ic[1], ic[2]),
        )
        if not dev.leff > 0:
            raise _err(
                f"{name}: effective channel length L - 2*LD = {dev.leff:g} m is not positive "
                f"(l={dev.l:g}, model ld={model.ld:g})",
                line,
                ctx,
            )
        if model.rsh > 0:
            for side, given, squares in (("drain", model.rd, dev.nrd),
                                         ("source", model.rs, dev.nrs)):
                if given == 0 and squares > 0:
                    raise _err(
                        f"{name}: model '{pos[4]}' has r{side[0]}=0 and rsh: ngspice then "
                        f"leaves the internal {side} node unconnected (leave r{side[0]} out or "
                        "give rsh=0)",
                        line,
                        ctx,
                    )
            if model.rd is None and dev.nrd == 0:
                raise _err(
                    f"{name}: nrd=0 with model rsh: ngspice divides by zero there "
                    "(give nrd > 0, or rd= on the model)",
                    line,
                    ctx,
                )
        nodes = tuple(self._node(t, ctx) for t in pos[:4])
        self._add("m", name, nodes, line, ctx, model=key, m=m, mosfet=dev)

    def _check_mos_option(self, key: str, value: object, line: Line) -> None:
        if key == "defas":
            raise NetlistError(
                "option defas is not supported: ngspice 39 stores it as the default drain area "
                "(defad); give as= on the MOSFET lines",
                line.file,
                line.line,
            )
        if not isinstance(value, float) or not math.isfinite(value):
            raise NetlistError(f"option {key} must be a number, got '{value}'", line.file, line.line)
        if key == "defad" and value < 0:
            raise NetlistError(f"option defad={value:g} must not be negative", line.file, line.line)
        if key != "defad" and not value > 0:
            raise NetlistError(f"option {key}={value:g} must be positive", line.file, line.line)

    def _mosfet_params(
        self, raw: dict[str, str], mtype: str, name: str, card: Line, ctx: _Ctx
    ) -> dict[str, float]:
        if "level" in raw:
            level = self._value(raw["level"], ctx, card, f"model '{name}' level")
            if level != 1.0:
                return {"level": level}  # refused by the element that uses the model
        for pname in raw:
            if pname in _MOS1_READ or pname in _MOS_CARD_DEFAULTS:
                continue
            if pname == "m":
                raise _err(
                    f"model '{name}': m on a MOSFET model is ignored by ngspice: "
                    "give m= on the MOSFET line",
                    card,
                    ctx,
                )
            raise self._unknown_model_parameter(
                mtype, pname, _MOS1_READ, _MOS_CARD_DEFAULTS, name, card, ctx
            )
        p = self._read_params(raw, {**_MOS1_READ, **_MOS_CARD_DEFAULTS}, name, card, ctx)

        def bad(msg: str) -> NetlistError:
            return _err(f"model '{name}': {msg}", card, ctx)

        if p.get("tnom", _TNOM) != _TNOM:
            raise bad(f"tnom={p['tnom']:g} is not implemented (only 27 C)")
        if p.get("temp", _TNOM) != _TNOM:
            raise bad("temp other than 27 C is not implemented")
        if p.get("dtemp", 0.0) != 0:
            raise bad("dtemp other than 0 is not implemented")
        for k, v in p.items():
            if not math.isfinite(v):
                raise bad(f"{k}={v!r} is not finite")
        for k in ("phi", "u0", "nsub", "pb", "l", "w"):
            if k in p and not p[k] > 0:
                raise bad(f"{k}={p[k]!r} must be positive")
        for k in ("kp", "gamma", "is", "js", "rd", "rs", "rsh", "tox", "ld", "cbd", "cbs", "cj",
                  "cjsw", "cgso", "cgdo", "cgbo", "ad", "as", "pd", "ps", "nrd", "nrs"):
            if k in p and p[k] < 0:
                raise bad(f"{k}={p[k]!r} must not be negative")
        if "tpg" in p and p["tpg"] != int(p["tpg"]):
            raise bad(f"tpg={p['tpg']!r} must be an integer (1, -1 or 0)")
        return p

    def _mosfet_model(
        self, key: str, mtype: str, p: dict[str, float], card: Line, ctx: _Ctx, shown: str
    ) -> MosfetModel:
        """The level-1 model ``key`` with ngspice's defaults and derived parameters
        (mos1set.c, mos1temp.c at T = TNOM = 27 C)."""
        model = self.mos_models.get(key)
        if model is not None:
            return model
        polarity = 1 if mtype == "nmos" else -1
        vto = p.get("vto", 0.0)
        kp = p.get("kp", 2e-5)
        gamma = p.get("gamma", 0.0)
        phi = p.get("phi", 0.6)
        u0 = p.get("u0", 600.0)
        tox = p.get("tox")
        cox = 0.0
        if tox:  # ngspice: TOX = 0 is TOX not given
            cox = 3.9 * _EPS0 / tox
            if "kp" not in p:
                kp = u0 * cox * 1e-4  # U0 in cm^2/Vs
            if "nsub" in p:
                nsub = p["nsub"]  # cm^-3
                if not nsub * 1e6 > 1.45e16:
                    raise _err(
                        f"model '{shown}': nsub={nsub:g} is not above the intrinsic carrier "
                        "density 1.45e10 cm^-3 (ngspice: 'Nsub < Ni')",
                        card,
                        ctx,
                    )
                vtnom = _T_NOM_K * (_BOLTZMANN / _CHARGE)
                egfet1 = 1.16 - (7.02e-4 * _T_NOM_K * _T_NOM_K) / (_T_NOM_K + 1108)
                if "phi" not in p:
                    phi = max(0.1, 2 * vtnom * math.log(nsub * 1e6 / 1.45e16))
                fermis = polarity * 0.5 * phi
                wkfng = 3.2
                tpg = p.get("tpg", 1.0)
                if tpg != 0:
                    fermig = polarity * tpg * 0.5 * egfet1
                    wkfng = 3.25 + 0.5 * egfet1 - fermig
                wkfngs = wkfng - (3.25 + 0.5 * egfet1 + fermis)
                if "gamma" not in p:
                    gamma = math.sqrt(2 * 11.70 * _EPS0 * _CHARGE * nsub * 1e6) / cox
                if "vto" not in p:
                    vfb = wkfngs - p.get("nss", 0.0) * 1e4 * _CHARGE / cox
                    vto = vfb + polarity * (gamma * math.sqrt(phi) + phi)
        model = MosfetModel(
            name=key,
            polarity=polarity,
            vto=vto,
            kp=kp,
            gamma=gamma,
            phi=phi,
            lambda_=p.get("lambda", 0.0),
            rd=p.get("rd"),
            rs=p.get("rs"),
            rsh=p.get("rsh", 0.0),
            is_=p.get("is", 1e-14),
            js=p.get("js", 0.0),
            ld=p.get("ld", 0.0),
            tox=tox,
            u0=u0,
            cox=cox,
            cbd=p.get("cbd"),
            cbs=p.get("cbs"),
            cj=p.get("cj", 0.0),
            mj=p.get("mj", 0.5),
            cjsw=p.get("cjsw", 0.0),
            mjsw=p.get("mjsw", 0.5),
            pb=p.get("pb", 0.8),
            fc=p.get("fc", 0.5),
            cgso=p.get("cgso", 0.0),
            cgdo=p.get("cgdo", 0.0),
            cgbo=p.get("cgbo", 0.0),
            location=Location(card.file, card.line),
        )
        self.mos_models[key] = model
        return model

    # -- C, L -----------------------------------------------------------------------------
    def _reactive(self, line: Line, ctx: _Ctx) -> None:
        toks = self._tokens(line)
        name = toks[0]
        kind = name[0]
        pos, kw = self._split(toks, 1, line, ctx, name)
        if len(pos) < 2:
            raise _err(f"{name}: needs 2 nodes and a value", line, ctx)
        nodes = (self._node(pos[0], ctx), self._node(pos[1], ctx))
        rest = pos[2:]
        value: float | None = None
        if rest and not is_number_start(rest[0]) and rest[0][0] not in "{'":
            found = self._find_model(rest[0], ctx)
            if found is not None:
                if found[0] != kind:
                    raise _err(
                        f"{name}: model '{rest[0]}' is of type {found[0].upper()}, "
                        f"not a {kind.upper()} model",
                        line,
                        ctx,
                    )
                value = next(
                    (found[1][k] for k in _REACTIVE_MODEL_VALUE[kind] if k in found[1]), None
                )
                rest = rest[1:]
        if rest:
            value = self._value(rest[0], ctx, line, name)
            rest = rest[1:]
        if rest:
            raise _err(f"{name}: unexpected '{rest[0]}'", line, ctx)
        keys = ("c", "capacitance") if kind == "c" else ("l", "inductance")
        self._unknown_keys(
            kw,
            (*keys, "m", "ic", "temp", "dtemp", "tc1", "tc2", "scale", "w", "nt"),
            name,
            line,
            ctx,
        )
        for key in keys:
            if key in kw:
                if value is not None:
                    raise _err(f"{name}: value given twice", line, ctx)
                value = self._value(kw[key], ctx, line, name)
        if value is None:
            what = "capacitance" if kind == "c" else "inductance"
            raise _err(f"{name}: missing {what} value", line, ctx)
        m = self._multiplier(kw, name, line, ctx)
        # the initial voltage (C) or current (L, of the m in parallel) of a transient with UIC
        ic = self._value(kw["ic"], ctx, line, f"{name} ic") if "ic" in kw else None
        if ic is not None and kind == "l":
            ic *= m
        self._add(kind, name, nodes, line, ctx, value=value * m if kind == "c" else value / m,
                  ic=ic)

    # -- E, G, F, H -----------------------------------------------------------------------
    def _controlled(self, line: Line, ctx: _Ctx) -> None:
        toks = self._tokens(line)
        name = toks[0]
        kind = name[0]
        if (
            len(toks) > 4
            and toks[3] in _CONTROLLED_UNSUPPORTED
            and (toks[4] in "=(" or toks[4][0] in "{'")
        ):
            raise _err(
                f"{name}: unsupported controlled-source form '{toks[3].upper()}' "
                "(only linear E/F/G/H are supported)",
                line,
                ctx,
            )
        pos, kw = self._split(toks, 1, line, ctx, name)
        nnodes = 4 if kind in "eg" else 2
        allowed = ("gain", "m") if kind in "fg" else ("gain",)
        if kind == "g":
            allowed = (*allowed, "gm", "transconductance")
        if kind == "h":
            allowed = (*allowed, "transresistance")
        self._unknown_keys(kw, allowed, name, line, ctx)
        value_keys = [k for k in kw if k not in ("m",)]
        need = nnodes + (1 if kind in "fh" else 0) + (0 if value_keys else 1)
        if len(pos) != need:
            shape = {
                "e": "E n+ n- nc+ nc- gain",
                "g": "G n+ n- nc+ nc- transconductance",
                "f": "F n+ n- Vsense gain",
                "h": "H n+ n- Vsense transresistance",
            }[kind]
            got = "too few" if len(pos) < need else "too many"
            raise _err(f"{name}: {got} fields (expected {shape})", line, ctx)
        nodes = tuple(self._node(p, ctx) for p in pos[:nnodes])
        if value_keys:
            if len(value_keys) > 1:
                raise _err(f"{name}: value given twice", line, ctx)
            value = self._value(kw[value_keys[0]], ctx, line, name)
        else:
            value = self._value(pos[-1], ctx, line, name)
        if "m" in kw:
            value *= self._multiplier(kw, name, line, ctx)
        control = None
        if kind in "fh":
            vname = pos[2]
            control = vname if not ctx.path else f"{vname[0]}.{ctx.path}.{vname}"
        el = self._add(kind, name, nodes, line, ctx, value=value, control=control)
        if control is not None:
            self.controlled.append((el, line, ctx))

    # -- X --------------------------------------------------------------------------------
    def _instance(self, line: Line, ctx: _Ctx, active: list[_Subckt]) -> None:
        parts = line.text.split(None, 1)
        name, rest = parts[0], parts[1] if len(parts) > 1 else ""
        head, pairs = _split_assignments(rest)
        words = [name, *head.replace(",", " ").split()]
        if words[-1] in ("params:", "param:"):
            words.pop()
        elif words[-1].endswith("params:"):
            words[-1] = words[-1][: -len("params:")]
        if any(w.endswith(":") for w in words):
            raise _err(f"{name}: 'params:' must be followed by name=value pairs", line, ctx)
        if len(words) < 2:
            raise _err(f"{name}: a subckt instance needs nodes and a subckt name", line, ctx)
        sname = words[-1]
        nodes = words[1:-1]
        sub = self._find_subckt(sname, ctx)
        if sub is None:
            raise _err(f"{name}: unknown subckt '{sname}'", line, ctx)
        if sub in active:
            chain = " -> ".join(s.name for s in active[active.index(sub) :]) + f" -> {sname}"
            raise _err(f"recursive subckt '{sname}' (instantiates itself: {chain})", line, ctx)
        if len(nodes) != len(sub.ports):
            raise _err(
                f"{name}: subckt '{sname}' has {len(sub.ports)} pins "
                f"({' '.join(sub.ports)}), got {len(nodes)} nodes",
                line,
                ctx,
            )
        path = name if not ctx.path else f"{ctx.path}.{name}"
        if path in self.instances:
            first = self.instances[path]
            raise _err(
                f"duplicate subckt instance '{path}' (first at {first.file}:{first.line})",
                line,
                ctx,
            )
        self.instances[path] = line
        ports = {p: self._node(n, ctx) for p, n in zip(sub.ports, nodes)}
        scope = _Scope(ctx.scope, self.state)
        where = f" (in instance {path} of subckt '{sname}')"
        for key, text in sub.defaults.items():
            scope.defs[key] = (text, sub.line, None, where)
        for key, value in pairs:
            if key not in sub.defaults:
                raise _err(f"{name}: subckt '{sname}' has no parameter '{key}'", line, ctx)
            if not value:
                raise _err(f"{name}: parameter '{key}' has no value", line, ctx)
            scope.defs[key] = (_strip_expr(value), line, ctx.scope, ctx.where)
        for key, (text, pline) in sub.body.params.items():
            scope.defs[key] = (text, pline, None, where)
        child = _Ctx(path, ports, scope, sub.body, ctx, sub)
        scope.evaluate_all()
        self._expand(child, [*active, sub])

    def _find_subckt(self, name: str, ctx: _Ctx) -> _Subckt | None:
        c: _Ctx | None = ctx
        while c is not None:
            sub = c.body.subckts.get(name)
            if sub is not None:
                return sub
            c = c.parent
        return None

    # -- stage 4: resolve -----------------------------------------------------------------
    def resolve(self) -> list[Sweep]:
        for el, line, ctx in self.controlled:
            target = self.by_name.get(el.control)  # type: ignore[arg-type]
            short = el.control.rsplit(".", 1)[-1]  # type: ignore[union-attr]
            if target is None:
                raise _err(
                    f"{el.name}: controlling source '{short}' not found"
                    + (f" (looked for '{el.control}')" if ctx.path else ""),
                    line,
                    ctx,
                )
            if target.kind != "v":
                raise _err(
                    f"{el.name}: controlling element '{target.name}' must be a V source "
                    f"(it is {target.kind.upper()})",
                    line,
                    ctx,
                )
        sweeps: list[Sweep] = []
        line = self.dc_line
        if line is not None:
            toks = tokenize(line)[1:]
            if toks and toks[0] in ("lin", "dec", "oct", "list"):
                raise NetlistError(f"'.dc {toks[0]}' is not supported", line.file, line.line)
            if len(toks) not in (4, 8):
                raise NetlistError(
                    "'.dc' expects SRC START STOP STEP [SRC2 START2 STOP2 STEP2]",
                    line.file,
                    line.line,
                )
            for k in range(0, len(toks), 4):
                src = toks[k]
                if src == "temp":
                    raise NetlistError(
                        "'.dc temp': temperature sweeps are not implemented", line.file, line.line
                    )
                el = self.by_name.get(src)
                if el is None:
                    raise NetlistError(f"'.dc': unknown source '{src}'", line.file, line.line)
                if el.kind not in "vir":
                    raise NetlistError(
                        f"'.dc': '{src}' is not a V source, I source or resistor",
                        line.file,
                        line.line,
                    )
                start, stop, step = (
                    self._global_value(t, line, f"'.dc {src}'") for t in toks[k + 1 : k + 4]
                )
                if step == 0:
                    raise NetlistError(f"'.dc {src}': step is zero", line.file, line.line)
                if (stop - start) * step < 0:
                    raise NetlistError(
                        f"'.dc {src}': step {step:g} goes away from stop {stop:g}",
                        line.file,
                        line.line,
                    )
                if el.kind == "r" and (start <= 0 or stop <= 0):
                    raise NetlistError(
                        f"'.dc {src}': resistor sweep values must be positive",
                        line.file,
                        line.line,
                    )
                if len(sweeps) == 1 and sweeps[0].name == el.name:
                    raise NetlistError(f"'.dc': '{src}' swept twice", line.file, line.line)
                sweep = Sweep(el.name, start, stop, step, Location(line.file, line.line))
                check_sweep_points([sweep])  # before the second sweep is read
                sweeps.append(sweep)
            check_sweep_points(sweeps)
        return sweeps


#: positions of the value arguments (scaled by an I source's m=) of each waveform
_VALUE_ARGS = {"pulse": (0, 1), "sin": (0, 1), "exp": (0, 1), "sffm": (0, 1)}


def _scaled(fn: str, args: tuple[float, ...], m: float) -> tuple[float, ...]:
    """Waveform arguments with the value ones (PWL: every second) multiplied by ``m``."""
    if m == 1.0:
        return args
    if fn == "pwl":
        return tuple(a * m if k % 2 else a for k, a in enumerate(args))
    return tuple(a * m if k in _VALUE_ARGS[fn] else a for k, a in enumerate(args))


def _tran_card(p: _Parser) -> Tran | None:
    """The ``.tran tstep tstop [tstart [tmax]] [uic]`` card, checked."""
    line = p.tran_line
    if line is None:
        return None
    toks = tokenize(line)[1:]
    uic = bool(toks) and toks[-1] == "uic"
    if uic:
        toks = toks[:-1]
    if not 2 <= len(toks) <= 4:
        raise NetlistError("'.tran' expects TSTEP TSTOP [TSTART [TMAX]] [UIC]", line.file,
                           line.line)
    vals = [p._global_value(t, line, "'.tran'") for t in toks]
    tstep, tstop = vals[0], vals[1]
    tstart = vals[2] if len(vals) > 2 else 0.0
    tmax = vals[3] if len(vals) > 3 else None
    if not (tstep > 0 and math.isfinite(tstep)):
        raise NetlistError(f"'.tran': TSTEP must be > 0 (got {tstep:g})", line.file, line.line)
    if not (tstop > 0 and math.isfinite(tstop)):
        raise NetlistError(f"'.tran': TSTOP must be > 0 (got {tstop:g})", line.file, line.line)
    if not (0 <= tstart < tstop):
        raise NetlistError(f"'.tran': TSTART must be in [0, TSTOP) (got {tstart:g})",
                           line.file, line.line)
    if tmax is not None and not tmax > 0:
        raise NetlistError(f"'.tran': TMAX must be > 0 (got {tmax:g})", line.file, line.line)
    return Tran(tstep, tstop, tstart, tmax, uic, Location(line.file, line.line))


def _ic_cards(p: _Parser, nodes: set[str]) -> dict[str, float]:
    """``.ic v(node)=value ...`` initial conditions by node."""
    out: dict[str, float] = {}
    for line in p.ic_lines:
        toks = tokenize(line)[1:]
        i = 0
        if not toks:
            raise NetlistError("'.ic' expects v(node)=value ...", line.file, line.line)
        while i < len(toks):
            ok = (i + 5 < len(toks) and toks[i] == "v" and toks[i + 1] == "("
                  and toks[i + 3] == ")" and toks[i + 4] == "=")
            if not ok:
                raise NetlistError(f"'.ic': expected v(node)=value at '{' '.join(toks[i:i + 6])}'",
                                   line.file, line.line)
            node = "0" if toks[i + 2] in _GROUND_NAMES else toks[i + 2]
            if node != "0" and node not in nodes:
                raise NetlistError(f"'.ic': node '{toks[i + 2]}' is not a node of the deck",
                                   line.file, line.line)
            out[node] = p._global_value(toks[i + 5], line, f"'.ic v({toks[i + 2]})'")
            i += 6
    return out


def _strip_quotes(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    return text


_SOURCE_KEYWORDS = frozenset(("dc", "ac", *_WAVEFORMS, *_SMALL_SIGNAL, *_UNSUPPORTED_WAVEFORMS))


def parse(text: str, path: str = "<string>") -> Netlist:
    """Parse a SPICE deck into a flattened :class:`~circuitprop.netlist.Netlist`.

    **Arguments:**

    - ``text``: the deck. Its first line is the title, whatever it contains.
    - ``path``: the file name used in messages and locations, and the base for relative
      ``.include``/``.lib`` paths (``"<string>"``: the current directory).

    **Returns:**

    The :class:`Netlist`: elements in deck order with ngspice's flattened names, the diode
    models they use, the global parameters, ``.dc`` sweeps, ``.op`` flag, ``.options``.

    **Raises:**

    :class:`~circuitprop._errors.NetlistError` (``FILE:LINE: message``) for anything the
    parser cannot or will not read, naming the offending element, node, model, subckt,
    parameter or file.
    """
    path = os.fspath(path)
    # The parser allocates many small objects and frees none: the cyclic garbage collector
    # would only rescan them (about 2x the run time on a 50k-element deck).
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        p = _Parser(path)
        lines = p.read_top(text, path)
        top = p.structure(lines)
        p.expand(top)
        sweeps = p.resolve()
        tran = _tran_card(p)
        nodes = {n for el in p.elements for n in el.nodes}
        ic = _ic_cards(p, nodes)
    except RecursionError:
        raise NetlistError(
            "netlist nested too deeply (subcircuit instances or parameter references)", path
        ) from None
    finally:
        if gc_was_enabled:
            gc.enable()
    return Netlist(
        title=p.title,
        elements=p.elements,
        models=p.models,
        params=dict(p.global_scope.values),
        dc=sweeps,
        op=p.op,
        options=p.options,
        source=path,
        tran=tran,
        ic=ic,
    )


def load(path: str | os.PathLike[str]) -> Netlist:
    """Read and parse a deck file.

    **Arguments:**

    - ``path``: the file.

    **Returns:**

    The parsed :class:`Netlist` (see :func:`parse`).

    **Raises:**

    :class:`~circuitprop._errors.NetlistError` naming the file when it is missing, a directory,
    empty, binary or not UTF-8 text, and for every problem :func:`parse` reports.
    """
    path = os.fspath(path)
    text = _read_text_file(path, None)
    if not text.strip():
        raise NetlistError("empty file", path)
    return parse(text, path)
