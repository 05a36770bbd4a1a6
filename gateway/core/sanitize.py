"""Names from the ledger and the keys table are caller-chosen text: made safe where they are
shown. `for_terminal` escapes control characters (a team name cannot move the cursor or forge
a table row); `for_spreadsheet` neutralises a CSV cell that a spreadsheet would run as a
formula (OWASP CSV injection: a leading single quote)."""

from __future__ import annotations

import re
import unicodedata
from typing import Any

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# A plain number ("-0.000120", "+3", "1e-9") is data, not a formula: it stays a number.
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?", re.ASCII)
# Control (Cc), format (Cf: bidi overrides, zero-width) and line/paragraph separators.
_HIDDEN = frozenset(("Cc", "Cf", "Zl", "Zp"))
_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escaped(char: str) -> str:
    if char in _SHORT:
        return _SHORT[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def for_terminal(text: str) -> str:
    """`text` with control and invisible format characters written as repr-style escapes."""
    if text.isprintable():
        return text
    return "".join(_escaped(c) if unicodedata.category(c) in _HIDDEN else c for c in text)


def for_spreadsheet(value: Any) -> Any:
    """A CSV cell: strings that would start a formula get a leading `'`; numbers (also
    numeric strings such as a negative amount) and everything else are left as they are."""
    if (
        isinstance(value, str)
        and value.startswith(_FORMULA_START)
        and _NUMBER.fullmatch(value) is None
    ):
        return "'" + value
    return value
