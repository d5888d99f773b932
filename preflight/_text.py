"""Showing text that came from outside: inert on a terminal, on one line, bounded.

Addresses, server replies, DNS answers and platform messages are printed, logged and
quoted in reports. Whatever they hold, a terminal must not obey it (``ESC[2J``, an
OSC title, a C1 CSI, a right-to-left override), and no encoder may choke on it (a lone
surrogate). This module is the one home of that idea: the text report, the probes'
details, the payload's messages, ``discover``, the guards and the SmartLead client
show outside text through :func:`printable`, and every JSON output goes through
:func:`json_text` (no lone surrogate, which aiosmtplib keeps for a reply's non-UTF-8
bytes, reaches a strict UTF-8 stream).

What is not printable is shown as the escape Python writes for it (``\\x1b``,
``\\u202e``, ``\\n``), except a lone surrogate in U+DC80-U+DCFF: that is an undecodable
byte kept by ``surrogateescape`` (as aiosmtplib and the reader keep them), shown as
the byte it was, ``\\xff``. Letters, marks and symbols of every script are kept, and
so are backslashes: an escape shown is not an escape typed.
"""

from __future__ import annotations

import json
import re
from typing import Any, Final

__all__ = ["json_text", "one_line", "printable", "shorten", "shown"]

_NAMED: Final = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(char: str) -> str:
    if char in _NAMED:
        return _NAMED[char]
    point = ord(char)
    if 0xDC80 <= point <= 0xDCFF:  # an undecodable byte (surrogateescape)
        return f"\\x{point - 0xDC00:02x}"
    if point < 0x100:
        return f"\\x{point:02x}"
    return f"\\u{point:04x}" if point < 0x10000 else f"\\U{point:08x}"


def printable(text: object, *, keep_newlines: bool = False) -> str:
    """``text`` (anything, shown as ``str()``) with every character that is not
    printable escaped; with ``keep_newlines``, line feeds stay (a reply quoted whole)."""
    if not isinstance(text, str):
        text = str(text)
    if text.isprintable():
        return text
    return "".join(
        char if char.isprintable() or (keep_newlines and char == "\n") else _escape(char)
        for char in text
    )


def one_line(text: str) -> str:
    """Every run of white space (line breaks included) as one space, ends stripped."""
    return " ".join(text.split())


def shorten(text: str, limit: int) -> str:
    """At most ``limit`` characters, ``...`` marking a cut."""
    return text if len(text) <= limit else text[: max(limit - 3, 0)] + "..."


def shown(text: str, limit: int, *, keep_newlines: bool = False) -> str:
    """:func:`printable`, then :func:`shorten` to ``limit``; only the start of a huge
    text is looked at (escaping only lengthens)."""
    return shorten(printable(text[: limit + 1], keep_newlines=keep_newlines), limit)


#: What ``json.dumps(ensure_ascii=False)`` leaves raw and must not: lone surrogates (no
#: UTF-8 stream takes them), DEL and the C1 controls, and the line separators that
#: ``str.splitlines`` and JavaScript take for line breaks.
_JSON_ESCAPE: Final = re.compile("[\ud800-\udfff\x7f-\x9f\u2028\u2029]")


def json_text(value: object, *, ascii_only: bool = False, **options: Any) -> str:
    """``json.dumps(value)`` that any UTF-8 stream can take, on one line.

    Non-ASCII text stays readable (unless ``ascii_only``); a lone surrogate, DEL, a
    C1 control or U+2028/U+2029 is written as its JSON escape (``"\\udcff"``), so
    encoding never raises and a JSON line is never split. A value JSON has no type
    for is written as its ``str()``.
    """
    text = json.dumps(value, ensure_ascii=ascii_only, default=str, **options)
    if ascii_only:
        return text
    return _JSON_ESCAPE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
