"""The corpus of malformed decks in ``tests/bad_decks``: each must raise NetlistError.

Each deck's second line is ``* expect: TEXT``. ``TEXT`` starts with ``:LINE:`` (or
``FILE:LINE:`` for an error inside an included file) and must appear in ``str(err)``, which the
CLI prints. Decks that cannot carry a comment (empty, binary) are written by the tests below.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from circuitprop._errors import NetlistError
from circuitprop.netlist import load, parse

BAD = Path(__file__).resolve().parent / "bad_decks"
DECKS = sorted(BAD.glob("*.cir"))
EXPECT = re.compile(r"^\*\s*expect:\s*(.+?)\s*$")
WHERE = re.compile(r"^(\S*?):(\d+): ")


def expectation(path: Path) -> str:
    lines = path.read_text().splitlines()
    m = EXPECT.match(lines[1]) if len(lines) > 1 else None
    assert m, f"{path.name}: second line must be '* expect: ...'"
    return m.group(1)


def test_corpus_is_large_enough():
    assert len(DECKS) >= 30


@pytest.mark.parametrize("path", DECKS, ids=[p.stem for p in DECKS])
def test_bad_deck(path):
    expected = expectation(path)
    m = WHERE.match(expected)
    assert m, f"{path.name}: the expectation must start with ':LINE: ' or 'FILE:LINE: '"
    file_part, line = m.group(1), int(m.group(2))
    with pytest.raises(NetlistError) as info:
        load(path)
    err = info.value
    text = str(err)
    assert expected in text, f"\nexpected: {expected}\n     got: {text}"
    assert err.line == line
    assert err.file is not None and err.file.endswith(file_part or path.name)
    assert text.startswith(f"{err.file}:{err.line}: ")
    # the same deck given as text fails the same way (includes resolve next to the path)
    with pytest.raises(NetlistError) as again:
        parse(path.read_text(), str(path))
    assert str(again.value) == text


@pytest.mark.parametrize(
    "content, fragment",
    [
        (b"", "empty file"),
        (b"\n\n   \n", "empty file"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary file"),
        (b"\x7fELF\x02\x01\x01\x00", "binary file"),
        (b"title\nR1 a 0 1k\n\xff\xfe garbage\n", "undecodable byte 0xff on line 3"),
    ],
)
def test_unreadable_decks(tmp_path, content, fragment):
    path = tmp_path / "deck.cir"
    path.write_bytes(content)
    with pytest.raises(NetlistError) as info:
        load(path)
    assert str(info.value) == f"{path}: {info.value.message}"
    assert fragment in info.value.message


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(NetlistError, match="no such file") as info:
        load(tmp_path / "nothing.cir")
    assert info.value.file == str(tmp_path / "nothing.cir")
    with pytest.raises(NetlistError, match="is a directory"):
        load(tmp_path)
