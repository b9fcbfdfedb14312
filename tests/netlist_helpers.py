"""Helpers shared by the parser tests: parse a deck body, assert a located refusal."""

from __future__ import annotations

import pytest

from circuitprop._errors import NetlistError
from circuitprop.netlist import Netlist, parse


def deck(body: str, title: str = "title") -> Netlist:
    """Parse ``body`` after a title line (the first line of a deck is always its title)."""
    return parse(f"{title}\n{body}")


def raises(body: str, *fragments: str, line: int | None = None) -> NetlistError:
    """Assert that ``body`` is refused, naming every fragment, at ``FILE:line:``."""
    with pytest.raises(NetlistError) as info:
        deck(body)
    err = info.value
    for frag in fragments:
        assert frag in str(err), (frag, str(err))
    if line is not None:
        assert err.line == line, str(err)
        assert f":{line}: " in str(err)
    return err


def values(nl: Netlist) -> dict[str, float]:
    """Element name -> value."""
    return {e.name: e.value for e in nl.elements}
