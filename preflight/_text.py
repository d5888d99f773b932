"""How text that came from input or a server is shown: escaped, on one line.

Everything in a report but its codes may come from the input or from a server (an
address, a reply). Whatever shows such text passes it through :func:`printable`
(for a terminal: no control sequence is obeyed) or :func:`json_text` (for JSON: no
lone surrogate, which aiosmtplib keeps for a reply's non-UTF-8 bytes, reaches a
strict UTF-8 stream). The CLI's writers (``preflight.cli._render``), the guard's
messages, the httpx guard's answers and discover's text use these two.
"""

from __future__ import annotations

import json
import re
from typing import Any, Final

__all__ = ["json_text", "printable"]

_ESCAPES: Final = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(char: str) -> str:
    if char in _ESCAPES:
        return _ESCAPES[char]
    point = ord(char)
    if point < 0x100:
        return f"\\x{point:02x}"
    return f"\\u{point:04x}" if point < 0x10000 else f"\\U{point:08x}"


def printable(text: object) -> str:
    """``text`` (anything, shown as ``str()``) safe to print on a terminal, on one line.

    Every character that is not printable is escaped the way Python writes it:
    C0 and C1 controls (ESC, BEL, CSI, the start of an OSC title), DEL, line breaks,
    lone surrogates, format characters such as a right-to-left override. ``"\\x1b[2J"``
    is shown, not obeyed. Letters, marks and symbols of any script are kept;
    backslashes are kept as they are.
    """
    if not isinstance(text, str):
        text = str(text)
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else _escape(char) for char in text)


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
