"""Property tests (hypothesis) for the parser: numbers, expressions, deck formatting, fuzzing."""

from __future__ import annotations

import contextlib
import decimal
import math
import os
import tempfile
import warnings

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from circuitprop._errors import NetlistError
from circuitprop.netlist import parse
from circuitprop.netlist._values import ExpressionError, evaluate, format_number, parse_number

# ---------------------------------------------------------------------------------------------
# Numbers
# ---------------------------------------------------------------------------------------------

finite = st.floats(allow_nan=False, allow_infinity=False)


@given(finite)
def test_repr_round_trips(x):
    assert parse_number(repr(x)) == x


@given(finite)
def test_format_number_round_trips(x):
    text = format_number(x)
    assert parse_number(text) == x
    assert "M" not in text and "F" not in text


SCALES = {"t": 12, "g": 9, "meg": 6, "k": 3, "": 0, "m": -3, "u": -6, "n": -9, "p": -12, "f": -15}


def random_case(draw, text: str) -> str:
    flips = draw(st.lists(st.booleans(), min_size=len(text), max_size=len(text)))
    return "".join(c.upper() if f else c for c, f in zip(text, flips))


@st.composite
def suffixed_numbers(draw):
    sign = draw(st.sampled_from(["", "+", "-"]))
    whole = draw(st.integers(0, 10**6))
    frac = draw(st.one_of(st.just(""), st.integers(0, 10**4).map(lambda k: f".{k}")))
    mantissa = f"{whole}{frac}" if draw(st.booleans()) or whole else (frac or "0")
    exp = draw(st.one_of(st.just(None), st.integers(-20, 20)))
    exp_letter = draw(st.sampled_from("eEdD"))
    suffix = draw(st.sampled_from(sorted(SCALES)))
    # a unit or any letters after the scale word are ignored (not 'e'/'d' right after the
    # mantissa when there is no scale word: that would be an exponent)
    tail = draw(st.sampled_from(["", "ohm", "v", "a", "hz", "s", "x"]))
    if not suffix and tail == "" and exp is None:
        tail = ""
    exp_text = (
        ""
        if exp is None
        else f"{exp_letter}{exp:+d}"
        if draw(st.booleans())
        else (f"{exp_letter}{exp}")
    )
    text = sign + mantissa + exp_text + random_case(draw, suffix + tail)
    power = (exp or 0) + SCALES[suffix]
    expected = float(decimal.Decimal(f"{sign}{mantissa}e{power}"))
    return text, expected


@given(suffixed_numbers())
def test_suffixed_numbers(case):
    text, expected = case
    assert parse_number(text) == expected


@given(st.floats(min_value=1e-3, max_value=1e3), st.sampled_from(["mil", "MIL", "Mil"]))
def test_mil(x, word):
    text = repr(x)
    assume("e" not in text)
    expected = float(decimal.Decimal(text) * decimal.Decimal("25.4e-6"))
    assert parse_number(text + word) == expected


# ---------------------------------------------------------------------------------------------
# Expressions: random ASTs rendered to text, checked against Python arithmetic
# ---------------------------------------------------------------------------------------------

PARAMS = {"a": 2.0, "b": -0.5, "rval": 1e3}

leaves = st.one_of(
    st.integers(-50, 50).map(float),
    st.floats(min_value=-1e6, max_value=1e6, allow_nan=False),
    st.sampled_from(sorted(PARAMS)),
)


def _trees(children):
    return st.one_of(
        st.tuples(st.sampled_from(["+", "-", "*", "/"]), children, children),
        st.tuples(st.just("neg"), children),
        st.tuples(st.just("?"), children, children, children),
        st.tuples(st.sampled_from(["<", ">", "==", "<=", ">=", "!="]), children, children),
        st.tuples(st.sampled_from(["min", "max"]), children, children),
        st.tuples(st.sampled_from(["abs", "int", "floor"]), children),
        st.tuples(st.just("**"), st.floats(min_value=0.1, max_value=10), st.integers(-3, 3)),
    )


trees = st.recursive(leaves, _trees, max_leaves=12)


def render(node) -> str:
    if isinstance(node, str):
        return node
    if isinstance(node, float):
        return f"({node!r})" if math.copysign(1, node) < 0 else repr(node)
    op = node[0]
    if op == "neg":
        return f"-({render(node[1])})"
    if op == "?":
        return f"(({render(node[1])}) ? ({render(node[2])}) : ({render(node[3])}))"
    if op in ("min", "max", "abs", "int", "floor"):
        return f"{op}(" + ", ".join(render(c) for c in node[1:]) + ")"
    if op == "**":
        return f"({node[1]!r} ** ({node[2]}))"
    return f"(({render(node[1])}) {op} ({render(node[2])}))"


class _Undefined(Exception):
    pass


def reference(node) -> float:
    """Plain Python arithmetic on the same tree."""
    if isinstance(node, str):
        return PARAMS[node]
    if isinstance(node, float):
        return node
    op = node[0]
    if op == "neg":
        return -reference(node[1])
    if op == "?":
        return reference(node[2]) if reference(node[1]) != 0 else reference(node[3])
    if op == "**":
        return math.pow(node[1], node[2])
    if op in ("abs", "int", "floor"):
        x = reference(node[1])
        return {"abs": abs(x), "int": float(math.trunc(x)), "floor": float(math.floor(x))}[op]
    x, y = reference(node[1]), reference(node[2])
    if op == "+":
        return x + y
    if op == "-":
        return x - y
    if op == "*":
        return x * y
    if op == "/":
        if y == 0:
            raise _Undefined
        return x / y
    if op == "min":
        return min(x, y)
    if op == "max":
        return max(x, y)
    return float(
        {"<": x < y, ">": x > y, "==": x == y, "<=": x <= y, ">=": x >= y, "!=": x != y}[op]
    )


@given(trees)
@settings(max_examples=300)
def test_expression_evaluator_matches_python(tree):
    text = render(tree)
    try:
        expected = reference(tree)
    except (_Undefined, OverflowError):
        with pytest.raises(ExpressionError):
            evaluate(text, PARAMS.__getitem__)
        return
    if not math.isfinite(expected):
        with pytest.raises(ExpressionError, match="not finite"):
            evaluate(text, PARAMS.__getitem__)
        return
    got = evaluate(text, PARAMS.__getitem__)
    assert got == expected or (got == 0 and expected == 0), (text, got, expected)


@given(trees)
@settings(max_examples=100)
def test_expressions_in_braces_and_quotes_agree(tree):
    text = render(tree)
    try:
        expected = evaluate(text, PARAMS.__getitem__)
    except ExpressionError:
        return
    params = " ".join(f"{k}={v!r}" for k, v in PARAMS.items())
    nl = parse(f"t\n.param {params}\nV1 n 0 {{{text}}}\nV2 m 0 '{text}'\n.param p={{{text}}}\n")
    assert nl.element("v1").value == expected
    assert nl.element("v2").value == expected
    assert nl.params["p"] == expected


# ---------------------------------------------------------------------------------------------
# Decks: whitespace, case, continuation and comment variations parse to the same Netlist
# ---------------------------------------------------------------------------------------------

NODES = ["a", "b", "n1", "out", "0", "gnd", "n/1", "x.y", "01", "1"]


@st.composite
def element_cards(draw):
    """A list of element cards as token lists, with unique names."""
    n = draw(st.integers(1, 8))
    cards = []
    names = set()
    for i in range(n):
        letter = draw(st.sampled_from("rrvidcleg"))
        name = f"{letter}{i}"
        names.add(name)
        n1, n2 = draw(st.sampled_from(NODES)), draw(st.sampled_from(NODES))
        value = draw(st.floats(min_value=1e-12, max_value=1e9))
        vtext = format_number(value)
        if letter == "r":
            form = draw(st.sampled_from(["plain", "r=", "m="]))
            toks = [name, n1, n2]
            toks += {"plain": [vtext], "r=": ["r", "=", vtext], "m=": [vtext, "m=1"]}[form]
        elif letter in "vi":
            form = draw(st.sampled_from(["plain", "dc", "dc=", "ac"]))
            toks = [name, n1, n2]
            toks += {
                "plain": [vtext],
                "dc": ["dc", vtext],
                "dc=": ["dc=" + vtext],
                "ac": ["dc", vtext, "ac", "1", "0"],
            }[form]
        elif letter == "d":
            toks = [name, n1, n2, "dmod"] + draw(st.sampled_from([[], ["2"], ["area=2", "m=3"]]))
        elif letter in "cl":
            toks = [name, n1, n2, vtext]
        else:  # e, g
            toks = [name, n1, n2, draw(st.sampled_from(NODES)), draw(st.sampled_from(NODES)), vtext]
        cards.append(toks)
    return cards


MODEL = [".model", "dmod", "d", "(", "is=1e-14", "n=1.5", "rs=2", ")"]


def canonical(cards) -> str:
    lines = ["title"] + [" ".join(MODEL)] + [" ".join(c) for c in cards] + [".op", ".end"]
    return "\n".join(lines) + "\n"


@st.composite
def variant(draw, cards):
    out = ["title"]
    for toks in [MODEL, *cards]:
        toks = [random_case(draw, t) for t in toks]
        seps = [draw(st.sampled_from([" ", "  ", "\t", " \t "])) for _ in toks]
        pieces: list[str] = []
        current = draw(st.sampled_from(["", " ", "\t"])) if toks[0] != ".model" else ""
        for k, tok in enumerate(toks):
            if k > 0 and draw(st.integers(0, 4)) == 0:
                if draw(st.booleans()):
                    current += draw(st.sampled_from(["", " ; comment", " $ comment", " // c"]))
                pieces.append(current)
                pieces += draw(st.lists(st.sampled_from(["", "* comment", "   "]), max_size=2))
                current = draw(st.sampled_from(["+", " +", "\t+ ", "+  "])) + tok
            else:
                current += (seps[k] if k > 0 else "") + tok
        if draw(st.booleans()):
            current += draw(st.sampled_from([" ; tail", " $ tail", "  // tail", "\t;"]))
        pieces.append(current)
        out += pieces
        if draw(st.integers(0, 3)) == 0:
            out.append(draw(st.sampled_from(["", "* between", "  * indented"])))
    out += [random_case(draw, ".op"), random_case(draw, ".end")]
    eol = draw(st.sampled_from(["\n", "\r\n"]))
    return eol.join(out) + eol


def summary(nl):
    return (
        [(e.kind, e.name, e.nodes, e.value, e.control, e.model, e.area, e.m) for e in nl.elements],
        {k: (m.is_, m.n, m.rs, m.bv, m.ibv, m.nbv) for k, m in nl.models.items()},
        nl.op,
    )


@given(st.data())
@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
def test_formatting_variations_parse_identically(data):
    cards = data.draw(element_cards())
    reference_nl = parse(canonical(cards))
    text = data.draw(variant(cards))
    assert summary(parse(text)) == summary(reference_nl), text


@given(element_cards())
def test_canonical_decks_have_expected_values(cards):
    nl = parse(canonical(cards))
    assert len(nl.elements) == len(cards)
    for el, toks in zip(nl.elements, cards):
        assert el.name == toks[0]
        assert all(n != "gnd" for n in el.nodes)


# ---------------------------------------------------------------------------------------------
# Fuzzing: any text either parses or raises NetlistError (never another exception)
# ---------------------------------------------------------------------------------------------

ALPHABET = "rvidcleghfxqbRVID0123456789 .=(){}'\",+-*/;$:\t\nkmupnfMEGa_?<>!&|^%"
WORDS = [
    "R1 a 0 1k",
    "V1 a 0 dc 1",
    ".param a=",
    ".subckt s a",
    ".ends",
    "X1 a s",
    ".model dm D(",
    "D1 a 0 dm",
    "{",
    "}",
    "'",
    "+",
    ".dc v1 0 1 0.1",
    ".end",
    ".control",
    ".endc",
    "params:",
    "sin(",
    "pwl(",
    ")",
    "E1 a 0 b 0",
    "F1 a 0 v1",
    ".lib",
    ".endl",
    ".options gmin=",
    ".title",
    ".temp",
    ".global",
    "gnd",
    "1meg",
    "*",
    " ",
    "\n",
    "\n+",
    "=",
]

fuzz_text = st.one_of(
    st.text(alphabet=ALPHABET, max_size=200),
    st.lists(st.sampled_from(WORDS), max_size=40).map("".join),
    st.lists(st.sampled_from(WORDS + list(ALPHABET)), max_size=60).map(" ".join),
)


@contextlib.contextmanager
def in_empty_dir():
    old = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        try:
            yield
        finally:
            os.chdir(old)


@given(fuzz_text)
@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
def test_fuzz_never_crashes(text):
    with in_empty_dir(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            parse("title\n" + text)
        except NetlistError as err:
            assert str(err)
            assert err.file == "<string>"
