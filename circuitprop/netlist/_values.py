"""Numbers with SPICE scale suffixes, and a small, safe expression evaluator.

Plain values follow ngspice's ``INPevaluate``: a mantissa, an optional exponent (``e``, ``E``,
``d``, ``D``), one scale word and anything after it ignored, so ``10kOhm`` is ``1e4``, ``1k5`` is
``1000`` (not 1500), ``1M`` is ``1e-3`` and ``1F`` is ``1e-15``. A trailing part that contains an
operator (``2*3``, ``10k-5``) is refused: ngspice refuses it too, and it is always a forgotten
pair of braces.

Expressions (``{expr}`` and ``'expr'``) follow ngspice's numparam rules, checked against
ngspice 39: ``+ - * / %``, power ``**`` and ``^`` (left associative: ``2^3^2`` is 64, and
binding tighter than unary minus: ``-2^2`` is -4), comparisons, ``&& || !``, ``?:``, and the
functions in :data:`FUNCTIONS`. Numbers inside expressions take scale words (``{2k*3}`` is 6000)
with numparam's quirks: ``mil`` reads as milli, a digit after the scale word (``1k5``) and
``d`` exponents are errors. Nothing here calls Python's ``eval``.
"""

from __future__ import annotations

import decimal
import functools
import math
import re
from collections.abc import Callable

__all__ = [
    "ExpressionError",
    "FUNCTIONS",
    "compile_expression",
    "evaluate",
    "expression_names",
    "format_number",
    "parse_number",
]


class ExpressionError(ValueError):
    """A bad number or expression. The message names the offending text; the parser adds
    the file and line."""


# ---------------------------------------------------------------------------------------------
# Plain numbers
# ---------------------------------------------------------------------------------------------

_NUMBER = re.compile(r"([+-]?)(\d+\.?\d*|\.\d+)(?:[eEdD]([+-]?)(\d*))?")
# A whole token that is a plain decimal number (what :func:`format_number` and generated decks
# write without a scale word): Python's ``float`` reads it exactly as ngspice does.
_PLAIN_DECIMAL = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
# Characters that may not appear in the ignored tail of a plain number.
_BAD_TAIL = re.compile(r"[-+*/^(){}'\"=<>!?:%&|]")

#: Single-letter scale factors as powers of ten (``meg`` and ``mil`` are handled first).
SCALE_EXPONENTS: dict[str, int] = {
    "t": 12,
    "g": 9,
    "k": 3,
    "m": -3,
    "u": -6,
    "\u00b5": -6,  # micro sign, which ngspice accepts
    "\u03bc": -6,  # greek mu
    "n": -9,
    "p": -12,
    "f": -15,
}


_MIL = decimal.Decimal("25.4")


def _scale_exponent(tail: str, *, mil: bool) -> tuple[int, float]:
    """The power of ten of the scale word at the start of ``tail`` (lowercase), and an extra
    factor (``mil`` is 25.4e-6, not a power of ten)."""
    if not tail:
        return 0, 1.0
    if tail.startswith("meg"):
        return 6, 1.0
    if mil and tail.startswith("mil"):
        return -6, 25.4
    return SCALE_EXPONENTS.get(tail[0], 0), 1.0


@functools.lru_cache(maxsize=1 << 16)
def parse_number(text: str) -> float:
    """Read a plain SPICE number such as ``1k``, ``2.2MEG``, ``1e-3k``, ``10kOhm``, ``1mil``.

    **Arguments:**

    - ``text``: the token, any case.

    **Returns:**

    The value as a float (correctly rounded from the decimal text).

    **Raises:**

    :class:`ExpressionError` when ``text`` does not start with a number, or when the ignored
    tail contains an operator (``2*3``).
    """
    if _PLAIN_DECIMAL.fullmatch(text) is not None:
        # the common case (no scale word, no ``d`` exponent): Python reads the same decimal
        # number, correctly rounded, as the general path below
        value = float(text)
        if not math.isfinite(value):
            raise ExpressionError(f"number out of range '{text}'")
        return value
    m = _NUMBER.match(text)
    if m is None:
        raise ExpressionError(f"bad number '{text}'")
    sign, mantissa, esign, edigits = m.groups()
    tail = text[m.end() :].lower()
    if tail and _BAD_TAIL.search(tail):
        raise ExpressionError(
            f"bad number '{text}' (write expressions in braces, e.g. '{{{text}}}')"
        )
    exponent = int(esign + edigits) if edigits else 0
    power, factor = _scale_exponent(tail, mil=True)
    if factor == 1.0:
        value = float(f"{sign}{mantissa}e{exponent + power}")
    else:  # mil: 25.4e-6, correctly rounded
        value = float(decimal.Decimal(f"{sign}{mantissa}e{exponent + power}") * _MIL)
    if not math.isfinite(value):
        raise ExpressionError(f"number out of range '{text}'")
    return value


_NUMBER_START = re.compile(r"[+-]?\.?\d")
_DIGITS = frozenset("0123456789")


def is_number_start(text: str) -> bool:
    """Whether ``text`` starts like a plain number (digit, ``.digit``, or a sign before those)."""
    return text[:1] in _DIGITS or _NUMBER_START.match(text) is not None


_SUFFIX_FORMAT = {
    12: "t",
    9: "g",
    6: "meg",
    3: "k",
    0: "",
    -3: "m",
    -6: "u",
    -9: "n",
    -12: "p",
    -15: "f",
}


def format_number(value: float) -> str:
    """Format ``value`` so that :func:`parse_number` reads it back exactly, with an engineering
    suffix (``1000.0`` -> ``1k``, ``1e6`` -> ``1meg``, ``2.2e-15`` -> ``2.2f``).

    **Arguments:**

    - ``value``: a finite float.

    **Returns:**

    The text (never the ambiguous ``M`` or ``F``: ``meg`` and ``f`` are written lowercase);
    plain ``repr`` for zero, non-finite values and magnitudes far outside the suffix range.
    """
    if value == 0 or not math.isfinite(value):
        return repr(value)
    d = decimal.Decimal(repr(value))  # shortest digits that round-trip
    e3 = max(-15, min(12, (d.adjusted() // 3) * 3))
    text = format(d.scaleb(-e3), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    if len(text) > 24:
        return repr(value)
    return text + _SUFFIX_FORMAT[e3]


# ---------------------------------------------------------------------------------------------
# Expressions
# ---------------------------------------------------------------------------------------------

_ETOKEN = re.compile(
    r"""\s*(?:
      (?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)(?P<suffix>[a-z_\u00b5\u03bc]*)
    | (?P<name>[a-z_][a-z0-9_]*)
    | (?P<op>\*\*|==|!=|<=|>=|&&|\|\||[-+*/^%(),?:<>!])
    )""",
    re.X | re.I,
)


def _sgn(x: float) -> float:
    return (x > 0) - (x < 0)


def _pow(x: float, y: float) -> float:
    if x < 0 and y != int(y):
        raise ValueError("negative base with a non-integer exponent")
    if x == 0 and y < 0:
        raise ZeroDivisionError("zero to a negative power")
    return math.pow(x, y)


def _pwr(x: float, y: float) -> float:
    # ngspice numparam: pwr(x, y) = |x|**y (pwr(-2, 3) is 8, checked against ngspice 39).
    return _pow(abs(x), y)


def _log(x: float) -> float:
    return math.log(x)


#: Functions known inside expressions: name -> (number of arguments, implementation).
FUNCTIONS: dict[str, tuple[int, Callable[..., float]]] = {
    "sqrt": (1, math.sqrt),
    "exp": (1, math.exp),
    "log": (1, _log),  # natural logarithm, as in ngspice
    "ln": (1, _log),
    "log10": (1, math.log10),
    "abs": (1, abs),
    "sin": (1, math.sin),
    "cos": (1, math.cos),
    "tan": (1, math.tan),
    "asin": (1, math.asin),
    "acos": (1, math.acos),
    "atan": (1, math.atan),
    "sinh": (1, math.sinh),
    "cosh": (1, math.cosh),
    "tanh": (1, math.tanh),
    "asinh": (1, math.asinh),
    "acosh": (1, math.acosh),
    "atanh": (1, math.atanh),
    "floor": (1, lambda x: float(math.floor(x))),
    "ceil": (1, lambda x: float(math.ceil(x))),
    "int": (1, lambda x: float(math.trunc(x))),
    "nint": (1, lambda x: float(round(x))),  # round half to even, as C's rint
    "sgn": (1, _sgn),
    "pwr": (2, _pwr),
    "pow": (2, _pow),
    "min": (2, min),
    "max": (2, max),
    # more of ngspice's numparam functions
    "sqr": (1, lambda x: x * x),
    "arctan": (1, math.atan),
    "ternary_fcn": (3, lambda c, a, b: a if c != 0 else b),
}

# AST nodes are tuples: ("num", value) ("var", name) ("neg", a) ("pos", a) ("not", a)
# ("bin", op, a, b) ("if", c, a, b) ("call", name, args)
Node = tuple


class _ExprParser:
    """Recursive-descent parser over the token list of one expression."""

    __slots__ = ("text", "toks", "pos")

    def __init__(self, text: str):
        self.text = text
        self.toks = self._tokenize(text)
        self.pos = 0

    def _error(self, what: str) -> ExpressionError:
        return ExpressionError(f"{what} in expression '{self.text}'")

    def _tokenize(self, text: str) -> list[tuple[str, object]]:
        toks: list[tuple[str, object]] = []
        pos = 0
        end = len(text.rstrip())
        match = _ETOKEN.match
        while pos < end:
            m = match(text, pos)
            if m is None or m.end() == pos:
                bad = text[pos:end].strip()
                raise self._error(f"unexpected '{bad[:20]}'")
            kind = m.lastgroup
            if m.group("num") is not None:
                num, suffix = m.group("num"), m.group("suffix").lower()
                nxt = m.end()
                if nxt < len(text) and (text[nxt].isdigit() or text[nxt] == "."):
                    raise self._error(f"bad number '{text[m.start('num') : nxt + 1]}'")
                power, _ = _scale_exponent(suffix, mil=False)
                mant, _, exp = num.lower().partition("e")
                value = float(f"{mant}e{int(exp or 0) + power}")
                if not math.isfinite(value):
                    raise self._error(f"number out of range '{num}{suffix}'")
                toks.append(("num", value))
            elif kind == "name":
                toks.append(("name", m.group("name").lower()))
            else:
                toks.append(("op", m.group("op")))
            pos = m.end()
        toks.append(("end", None))
        return toks

    # -- helpers --------------------------------------------------------------------------
    def _peek_op(self) -> str | None:
        kind, val = self.toks[self.pos]
        return val if kind == "op" else None  # type: ignore[return-value]

    def _expect(self, op: str) -> None:
        if self._peek_op() != op:
            raise self._error(f"expected '{op}' {self._where()}")
        self.pos += 1

    def _where(self) -> str:
        kind, val = self.toks[self.pos]
        if kind == "end":
            return "at the end"
        if kind == "num":
            return f"before {val!r}"
        return f"before '{val}'"

    # -- grammar --------------------------------------------------------------------------
    def parse(self) -> Node:
        if self.toks[0][0] == "end":
            raise ExpressionError(f"empty expression '{self.text}'")
        node = self._ternary()
        if self.toks[self.pos][0] != "end":
            raise self._error(f"unexpected text {self._where()}")
        return node

    def _ternary(self) -> Node:
        cond = self._binary(0)
        if self._peek_op() == "?":
            self.pos += 1
            a = self._ternary()
            self._expect(":")
            b = self._ternary()
            return ("if", cond, a, b)
        return cond

    _LEVELS: tuple[tuple[str, ...], ...] = (
        ("||",),
        ("&&",),
        ("==", "!="),
        ("<", "<=", ">", ">="),
        ("+", "-"),
        ("*", "/", "%"),
    )

    def _binary(self, level: int) -> Node:
        if level == len(self._LEVELS):
            return self._unary()
        ops = self._LEVELS[level]
        left = self._binary(level + 1)
        while True:
            op = self._peek_op()
            if op not in ops:
                return left
            self.pos += 1
            right = self._binary(level + 1)
            left = ("bin", op, left, right)

    def _unary(self) -> Node:
        op = self._peek_op()
        if op in ("-", "+", "!"):
            self.pos += 1
            operand = self._unary()
            return ({"-": "neg", "+": "pos", "!": "not"}[op], operand)
        return self._power()

    def _power(self) -> Node:
        left = self._atom()
        while self._peek_op() in ("**", "^"):
            self.pos += 1
            right = self._power_operand()
            left = ("bin", "**", left, right)
        return left

    def _power_operand(self) -> Node:
        op = self._peek_op()
        if op in ("-", "+", "!"):
            self.pos += 1
            return ({"-": "neg", "+": "pos", "!": "not"}[op], self._power_operand())
        return self._atom()

    def _atom(self) -> Node:
        kind, val = self.toks[self.pos]
        if kind == "num":
            self.pos += 1
            return ("num", val)
        if kind == "name":
            self.pos += 1
            if self._peek_op() == "(":
                return self._call(val)  # type: ignore[arg-type]
            return ("var", val)
        if val == "(":
            self.pos += 1
            node = self._ternary()
            self._expect(")")
            return node
        raise self._error(f"expected a value {self._where()}")

    def _call(self, name: str) -> Node:
        if name not in FUNCTIONS:
            raise self._error(f"unknown function '{name}'")
        self.pos += 1  # "("
        args: list[Node] = []
        if self._peek_op() != ")":
            args.append(self._ternary())
            while self._peek_op() == ",":
                self.pos += 1
                args.append(self._ternary())
        self._expect(")")
        nargs = FUNCTIONS[name][0]
        if len(args) != nargs:
            raise self._error(
                f"{name}() takes {nargs} argument{'s' if nargs > 1 else ''}, got {len(args)}"
            )
        return ("call", name, tuple(args))


@functools.lru_cache(maxsize=1 << 14)
def compile_expression(text: str) -> Node:
    """Parse an expression (without its braces or quotes) into an AST of tuples.

    **Arguments:**

    - ``text``: e.g. ``"2k*3"`` or ``"a > 1 ? sqrt(b) : -b"``.

    **Returns:**

    The AST (cached per text).

    **Raises:**

    :class:`ExpressionError` naming the expression and the bad part.
    """
    return _ExprParser(text).parse()


@functools.lru_cache(maxsize=1 << 14)
def expression_names(text: str) -> frozenset[str]:
    """The parameter names an expression refers to (empty when it does not parse)."""
    try:
        ast = compile_expression(text)
    except ExpressionError:
        return frozenset()
    names: set[str] = set()
    todo = [ast]
    while todo:
        node = todo.pop()
        tag = node[0]
        if tag == "var":
            names.add(node[1])
        elif tag == "bin":
            todo += (node[2], node[3])
        elif tag in ("neg", "pos", "not"):
            todo.append(node[1])
        elif tag == "if":
            todo += node[1:]
        elif tag == "call":
            todo += node[2]
    return frozenset(names)


def _truth(x: float) -> bool:
    return x != 0.0


def _eval(node: Node, lookup: Callable[[str], float], text: str) -> float:
    tag = node[0]
    if tag == "num":
        return node[1]
    if tag == "var":
        return lookup(node[1])
    if tag == "bin":
        op = node[1]
        if op == "&&":
            return float(
                _truth(_eval(node[2], lookup, text)) and _truth(_eval(node[3], lookup, text))
            )
        if op == "||":
            return float(
                _truth(_eval(node[2], lookup, text)) or _truth(_eval(node[3], lookup, text))
            )
        a = _eval(node[2], lookup, text)
        b = _eval(node[3], lookup, text)
        if op == "+":
            return a + b
        if op == "-":
            return a - b
        if op == "*":
            return a * b
        if op == "/":
            if b == 0:
                raise ExpressionError(f"division by zero in expression '{text}'")
            return a / b
        if op == "%":
            if b == 0:
                raise ExpressionError(f"modulo by zero in expression '{text}'")
            return math.fmod(a, b)
        if op == "**":
            try:
                return _pow(a, b)
            except (ValueError, ZeroDivisionError, OverflowError) as err:
                raise ExpressionError(f"{a!r}**{b!r}: {err} in expression '{text}'") from None
        if op == "==":
            return float(a == b)
        if op == "!=":
            return float(a != b)
        if op == "<":
            return float(a < b)
        if op == "<=":
            return float(a <= b)
        if op == ">":
            return float(a > b)
        if op == ">=":
            return float(a >= b)
        raise AssertionError(op)  # pragma: no cover
    if tag == "neg":
        return -_eval(node[1], lookup, text)
    if tag == "pos":
        return _eval(node[1], lookup, text)
    if tag == "not":
        return float(not _truth(_eval(node[1], lookup, text)))
    if tag == "if":
        if _truth(_eval(node[1], lookup, text)):
            return _eval(node[2], lookup, text)
        return _eval(node[3], lookup, text)
    if tag == "call":
        name = node[1]
        args = [_eval(a, lookup, text) for a in node[2]]
        try:
            return float(FUNCTIONS[name][1](*args))
        except (ValueError, ZeroDivisionError, OverflowError) as err:
            shown = ", ".join(repr(a) for a in args)
            raise ExpressionError(
                f"{name}({shown}): {err or 'math error'} in expression '{text}'"
            ) from None
    raise AssertionError(tag)  # pragma: no cover


def _no_names(name: str) -> float:
    raise KeyError(name)


def evaluate(text: str, lookup: Callable[[str], float] | None = None) -> float:
    """Evaluate an expression.

    **Arguments:**

    - ``text``: the expression without braces or quotes (any case).
    - ``lookup``: maps a lowercase parameter name to its value; raises ``KeyError`` for an
      unknown name. ``None`` means no parameters.

    **Returns:**

    The value, always finite.

    **Raises:**

    :class:`ExpressionError` for syntax errors, unknown names or functions, wrong argument
    counts, division by zero, math domain errors and non-finite results; the message quotes
    the expression.
    """
    ast = compile_expression(text)
    get = lookup or _no_names

    def checked(name: str) -> float:
        try:
            return get(name)
        except KeyError:
            raise ExpressionError(f"unknown parameter '{name}' in expression '{text}'") from None

    value = _eval(ast, checked, text)
    if not math.isfinite(value):
        raise ExpressionError(f"expression '{text}' is not finite ({value!r})")
    return value
