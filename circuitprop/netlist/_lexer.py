"""Physical lines -> logical lines, and logical lines -> tokens.

The rules (ngspice's; see ``docs/netlists.md``):

- the first line of the top-level file is the title, whatever it says; included files have none;
- ``*`` at the start of a line (after blanks) is a comment line; ``;`` and ``//`` start a
  comment anywhere; ``$`` starts one when preceded by a blank or a comma (or at line start);
- a line starting with ``+`` (blanks allowed before it) continues the previous logical line,
  even across blank and comment lines; a ``+`` with nothing before it is an error;
- ``.control`` ... ``.endc`` blocks are dropped;
- ``.end`` stops the file; anything but comments after it is ignored with a warning;
- everything is lowercased except the original text kept in :attr:`Line.raw`, used for file
  paths in ``.include``/``.lib`` and for the title.
"""

from __future__ import annotations

import re
import warnings

from .._errors import NetlistError
from ._types import Location

__all__ = ["Line", "logical_lines", "tokenize"]


class Line:
    """One logical line.

    **Fields:** ``text`` (lowercase, comments removed, continuations joined with a space),
    ``raw`` (the same in its original case), ``file``, ``line`` (1-based number of the first
    physical line).
    """

    __slots__ = ("text", "raw", "file", "line")

    def __init__(self, text: str, raw: str, file: str, line: int):
        self.text = text
        self.raw = raw
        self.file = file
        self.line = line

    @property
    def location(self) -> Location:
        return Location(self.file, self.line)

    def __repr__(self) -> str:
        return f"Line({self.text!r}, {self.file}:{self.line})"


_DOLLAR = re.compile(r"[ \t,]\$")


def _strip_comment(s: str) -> str:
    """Remove ``;``, ``//`` and `` $`` comments from one physical line."""
    cut = len(s)
    if ";" in s:
        cut = s.index(";")
    if "//" in s:
        cut = min(cut, s.index("//"))
    if "$" in s:
        m = _DOLLAR.search(s)
        if m is not None:
            cut = min(cut, m.start())
    return s[:cut] if cut < len(s) else s


def logical_lines(
    text: str, file: str, *, top: bool
) -> tuple[str | None, list[Line], Location | None]:
    """Split one file's text into logical lines.

    **Arguments:**

    - ``text``: the whole file.
    - ``file``: its name, for locations and messages.
    - ``top``: whether this is the top-level deck (its first line is the title).

    **Returns:**

    ``(title, lines, end)``: the title line (``None`` for an included file), the logical lines
    in order, and the location of ``.end`` (``None`` when absent).

    **Raises:**

    :class:`NetlistError` for a ``+`` continuation with nothing before it, a NUL byte, or an
    unterminated ``.control`` block.
    """
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise NetlistError("binary data (NUL byte): not a netlist", file, line)
    if text.startswith("\ufeff"):
        text = text[1:]
    physical = text.split("\n")
    title: str | None = None
    start = 0
    if top:
        title = physical[0].rstrip("\r").strip() if physical else ""
        start = 1
    lines: list[Line] = []
    raws: list[str] = []  # pieces of the current logical line, original case
    cur_line = 0
    control_since: int | None = None
    end_loc: Location | None = None
    n = len(physical)
    i = start
    while i < n:
        s = physical[i]
        i += 1
        lineno = i
        if s.endswith("\r"):
            s = s[:-1]
        st = s.lstrip()
        if not st:
            continue
        c = st[0]
        if c == "*" or c == "$":
            continue
        st = _strip_comment(st).rstrip()
        if not st:
            continue
        if control_since is not None:
            if st.split(None, 1)[0].lower() == ".endc":
                control_since = None
            continue
        if c == "+":
            if not raws:
                raise NetlistError(
                    "continuation line '+' with no line before it to continue", file, lineno
                )
            piece = st[1:].strip()
            if piece:
                raws.append(piece)
            continue
        # a new logical line starts: flush the previous one
        if raws:
            raw = raws[0] if len(raws) == 1 else " ".join(raws)
            lines.append(Line(raw.lower(), raw, file, cur_line))
            raws = []
        if c == ".":
            word = st.split(None, 1)[0].lower()
        else:
            word = ""
        if word == ".end" or word == ".control":
            if word == ".control":
                control_since = lineno
                continue
            end_loc = Location(file, lineno)
            _warn_after_end(physical, i, file)
            break
        raws = [st]
        cur_line = lineno
    if raws:
        raw = raws[0] if len(raws) == 1 else " ".join(raws)
        lines.append(Line(raw.lower(), raw, file, cur_line))
    if control_since is not None:
        raise NetlistError("'.control' block without '.endc'", file, control_since)
    return title, lines, end_loc


def _warn_after_end(physical: list[str], i: int, file: str) -> None:
    for j in range(i, len(physical)):
        st = physical[j].strip()
        if not st or st[0] in "*$":
            continue
        if not _strip_comment(st).strip():
            continue
        warnings.warn(f"{file}:{j + 1}: text after '.end' is ignored", stacklevel=4)
        return


# ---------------------------------------------------------------------------------------------
# Tokens
# ---------------------------------------------------------------------------------------------

_SIMPLE_TOKENS = re.compile(r"[=()]|[^\s=(),]+")


def tokenize(line: Line, text: str | None = None) -> list[str]:
    """Split a logical line into tokens.

    Tokens are words (nodes, names, numbers), ``=``, ``(`` and ``)``; commas separate like
    blanks; ``{...}`` (nested braces allowed) and ``'...'`` are single expression tokens
    kept with their delimiters; ``"..."`` is a single string token.

    **Arguments:**

    - ``line``: the logical line (for error locations).
    - ``text``: the text to split (default ``line.text``).

    **Returns:**

    The list of tokens.

    **Raises:**

    :class:`NetlistError` for unbalanced braces or an unterminated quote.
    """
    if text is None:
        text = line.text
    if "{" not in text and "'" not in text and '"' not in text and "}" not in text:
        return _SIMPLE_TOKENS.findall(text)
    toks: list[str] = []
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c.isspace() or c == ",":
            i += 1
        elif c in "=()":
            toks.append(c)
            i += 1
        elif c == "{":
            depth = 0
            j = i
            while j < n:
                if text[j] == "{":
                    depth += 1
                elif text[j] == "}":
                    depth -= 1
                    if depth == 0:
                        break
                j += 1
            if j >= n:
                raise NetlistError(
                    f"unbalanced braces: '{text[i:].strip()}' has no closing '}}'",
                    line.file,
                    line.line,
                )
            toks.append(text[i : j + 1])
            i = j + 1
        elif c == "}":
            raise NetlistError(
                f"unbalanced braces: '}}' without '{{' in '{text.strip()}'", line.file, line.line
            )
        elif c in "'\"":
            j = text.find(c, i + 1)
            if j < 0:
                raise NetlistError(
                    f"unterminated quote {c} in '{text[i:].strip()}'", line.file, line.line
                )
            toks.append(text[i : j + 1])
            i = j + 1
        else:
            j = i
            while j < n and not (text[j].isspace() or text[j] in "=(),{}'\""):
                j += 1
            toks.append(text[i:j])
            i = j
    return toks
