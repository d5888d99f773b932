"""Reading accounts: one JSON object, a JSON array, JSON Lines, or CSV.

Accounts stream: a file of 100,000 accounts is never held in memory at once. Each
account keeps its index and the line where it starts, so every message can point
at the row. A row that cannot be decoded (a broken JSON line, a CSV row with too
many cells) becomes a :class:`RawAccount` with an ``error``: it fails on its own
and the rows after it are still read. Input that cannot be parsed at all raises
:class:`InputError`, with the reason and the position.
"""

from __future__ import annotations

import csv
import io
import json
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final, TextIO

from preflight.payload import FIELDS, Kind

__all__ = ["FORMATS", "InputError", "RawAccount", "open_accounts", "read_accounts"]

FORMATS: Final = ("auto", "json", "jsonl", "csv")

# Bounds the memory one account can take while the array reader waits for its end.
MAX_ACCOUNT_CHARS: Final = 1 << 20
_CHUNK: Final = 1 << 16


class InputError(Exception):
    """The input cannot be read or parsed at all (a usage error: exit status 2)."""

    def __init__(self, source: str, message: str, line: int | None = None) -> None:
        self.source = source
        self.reason = message
        self.line = line
        where = f"{source}, line {line}" if line is not None else source
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class RawAccount:
    """One account as read, before validation."""

    index: int
    line: int | None
    data: object
    #: Why the row could not be decoded, when it could not.
    error: str | None = None


@contextmanager
def open_accounts(path: str) -> Iterator[TextIO]:
    """Open a file of accounts as text (``-`` is standard input)."""
    if path == "-":
        stream = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8-sig", newline="")
        try:
            yield stream
        finally:
            stream.detach()
        return
    try:
        handle = open(path, encoding="utf-8-sig", newline="")  # noqa: SIM115
    except OSError as exc:
        raise InputError(path, exc.strerror or str(exc)) from None
    with handle:
        yield handle


def read_accounts(
    stream: TextIO, *, source: str = "<input>", fmt: str = "auto"
) -> Iterator[RawAccount]:
    """Yield the accounts of ``stream`` one by one, in input order.

    ``fmt`` is one of :data:`FORMATS`; ``auto`` looks at the content (and the file
    name's suffix, when there is one).
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown input format {fmt!r}")
    try:
        yield from _read(stream, source, fmt)
    except UnicodeDecodeError as exc:
        raise InputError(source, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def _read(stream: TextIO, source: str, fmt: str) -> Iterator[RawAccount]:
    if fmt == "auto":
        suffix = Path(source).suffix.lower()
        fmt = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}.get(suffix, "auto")
    if fmt == "csv":
        yield from _read_csv(iter(stream), source)
        return

    # Look at the start without reading line by line: a minified JSON array is one
    # line, and iterating lines would read all of it at once.
    head = _read_head(stream, source)
    first = head.lstrip(" \t\r\n\ufeff")[:1]
    if not first:
        raise InputError(source, "no accounts: the input is empty")
    if fmt == "jsonl" or (fmt == "auto" and first == "{" and _is_json(_first_line(head))):
        yield from _read_jsonl(_lines(head, stream), source)
    elif first in "[{" and fmt in ("auto", "json"):
        yield from _read_json(head, stream, source)
    elif fmt == "json":
        line = head.count("\n", 0, head.index(first)) + 1
        raise InputError(source, "expected a JSON object or array", line)
    else:
        yield from _read_csv(_lines(head, stream), source)


def _read_head(stream: TextIO, source: str) -> str:
    """The start of the input, up to the end of its first non-blank line."""
    head = ""
    while True:
        chunk = stream.read(_CHUNK)
        head += chunk
        text = head.lstrip(" \t\r\n\ufeff")
        if not chunk or "\n" in text:
            return head
        if len(text) > MAX_ACCOUNT_CHARS and text[:1] != "[":
            raise InputError(source, f"line 1 is longer than {MAX_ACCOUNT_CHARS} characters")
        if text[:1] == "[":
            return head


def _first_line(head: str) -> str:
    text = head.lstrip(" \t\r\n\ufeff")
    return text.split("\n", 1)[0]


_LINE: Final = re.compile(r"[^\n]*\n|[^\n]+$")


def _lines(head: str, stream: TextIO) -> Iterator[str]:
    """The lines of ``head`` followed by the rest of ``stream``."""
    lines = _LINE.findall(head)
    tail = lines.pop() if lines and not lines[-1].endswith("\n") else ""
    yield from lines
    for line in stream:
        yield tail + line
        tail = ""
    if tail:
        yield tail


def _is_json(first_line: str) -> bool:
    """Whether the first non-blank line is a whole JSON value on its own (JSON Lines).

    A pretty-printed object spans lines and is read as one document instead.
    """
    try:
        json.loads(first_line)
    except ValueError:
        return False
    return True


def _read_jsonl(lines: Iterator[str], source: str) -> Iterator[RawAccount]:
    del source  # a broken line is a failed row, not an input error
    index = 0
    line_no = 0
    for line in lines:
        line_no += 1
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except ValueError as exc:
            reason = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
            yield RawAccount(index, line_no, None, f"line {line_no} is not valid JSON: {reason}")
        else:
            yield RawAccount(index, line_no, data)
        index += 1


class _Buffer:
    """Text read so far from a stream, with the line number of a position."""

    def __init__(self, text: str, stream: TextIO) -> None:
        self.text = text
        self.stream = stream
        self.eof = False
        self._line = 1  # line number at self._counted
        self._counted = 0

    def more(self) -> bool:
        """Read another chunk; False at the end of the stream."""
        if self.eof:
            return False
        chunk = self.stream.read(_CHUNK)
        if not chunk:
            self.eof = True
            return False
        self.text += chunk
        return True

    def line_at(self, pos: int) -> int:
        self._line += self.text.count("\n", self._counted, pos)
        self._counted = pos
        return self._line

    def drop_before(self, pos: int) -> int:
        """Forget text before ``pos`` (already parsed); returns the shift."""
        self.line_at(pos)
        self.text = self.text[pos:]
        self._counted = 0
        return pos

    def skip_space(self, pos: int) -> int:
        """The position of the next character that is not white space (may read)."""
        while True:
            while pos < len(self.text) and self.text[pos] in " \t\r\n\ufeff":
                pos += 1
            if pos < len(self.text) or not self.more():
                return pos


_DECODER: Final = json.JSONDecoder()


def _decode_at(buf: _Buffer, pos: int, source: str) -> tuple[object, int]:
    """Decode one JSON value starting at ``pos``, reading more text as needed."""
    while True:
        try:
            value, end = _DECODER.raw_decode(buf.text, pos)
        except json.JSONDecodeError as exc:
            if len(buf.text) - pos > MAX_ACCOUNT_CHARS:
                raise InputError(
                    source,
                    f"an account is larger than {MAX_ACCOUNT_CHARS} characters",
                    buf.line_at(pos),
                ) from None
            if buf.more():
                continue
            raise InputError(source, f"invalid JSON: {exc.msg}", buf.line_at(exc.pos)) from None
        # A number or literal may continue in the next chunk; an object cannot end early.
        if end == len(buf.text) and buf.more():
            continue
        return value, end


def _read_json(text: str, stream: TextIO, source: str) -> Iterator[RawAccount]:
    buf = _Buffer(text, stream)
    pos = buf.skip_space(0)
    if buf.text[pos] == "{":
        value, end = _decode_at(buf, pos, source)
        line = buf.line_at(pos)
        rest = buf.skip_space(end)
        if rest < len(buf.text):
            raise InputError(
                source,
                "unexpected text after the JSON object (for several accounts use a JSON "
                "array or one object per line)",
                buf.line_at(rest),
            )
        yield RawAccount(0, line, value)
        return

    pos += 1  # past "["
    index = 0
    pos = buf.skip_space(pos)
    if pos < len(buf.text) and buf.text[pos] == "]":
        _expect_end(buf, pos + 1, source)
        return
    while True:
        if pos >= len(buf.text):
            raise InputError(source, "the JSON array is not closed", buf.line_at(pos))
        value, end = _decode_at(buf, pos, source)
        yield RawAccount(index, buf.line_at(pos), value)
        index += 1
        pos = buf.skip_space(end)
        if pos >= len(buf.text):
            raise InputError(source, "the JSON array is not closed", buf.line_at(pos))
        if buf.text[pos] == "]":
            _expect_end(buf, pos + 1, source)
            return
        if buf.text[pos] != ",":
            raise InputError(source, "expected ',' or ']' in the JSON array", buf.line_at(pos))
        pos = buf.skip_space(pos + 1)
        pos -= buf.drop_before(pos)


def _expect_end(buf: _Buffer, pos: int, source: str) -> None:
    pos = buf.skip_space(pos)
    if pos < len(buf.text):
        raise InputError(source, "unexpected text after the JSON array", buf.line_at(pos))


# --- CSV -------------------------------------------------------------------------

_TRUE: Final = frozenset({"true", "yes", "y", "1", "on"})
_FALSE: Final = frozenset({"false", "no", "n", "0", "off"})
_INT: Final = re.compile(r"^[+-]?\d+$")
_FLOAT: Final = re.compile(r"^[+-]?(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?$")
_NUMERIC: Final = frozenset({Kind.PORT, Kind.COUNT, Kind.NUMBER, Kind.PERCENT})


def _cell(name: str, text: str) -> object:
    """A CSV cell as the JSON value it stands for; text that does not fit stays text
    (and the payload check then says what is wrong with it)."""
    spec = FIELDS.get(name)
    if spec is None or spec.kind in (Kind.SECRET_TEXT, Kind.HTML):
        return text  # passwords are taken byte for byte: spaces may be real
    stripped = text.strip()
    if spec.kind is Kind.BOOL:
        if stripped.lower() in _TRUE:
            return True
        if stripped.lower() in _FALSE:
            return False
        return text
    if spec.kind in _NUMERIC:
        if _INT.match(stripped):
            return int(stripped)
        if _FLOAT.match(stripped):
            return float(stripped)
        return text
    if spec.kind is Kind.TOKEN:
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


def _read_csv(lines: Iterator[str], source: str) -> Iterator[RawAccount]:
    reader = csv.reader(lines, strict=True)
    try:
        header = next(reader, None)
        while header is not None and not any(cell.strip() for cell in header):
            header = next(reader, None)
    except csv.Error as exc:
        raise InputError(source, f"invalid CSV: {exc}", reader.line_num) from None
    if header is None:
        raise InputError(source, "no accounts: the input is empty")
    names = [cell.strip().lstrip("\ufeff") for cell in header]
    header_line = reader.line_num
    if not any(name in FIELDS for name in names):
        raise InputError(
            source,
            "not JSON, and the first line is not a CSV header of payload field names "
            "(from_email, smtp_host, ...)",
            header_line,
        )
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise InputError(source, f"CSV column {name!r} appears twice", header_line)
        seen.add(name)

    index = 0
    last_line = header_line
    while True:
        try:
            row = next(reader, None)
        except csv.Error as exc:
            raise InputError(source, f"invalid CSV: {exc}", reader.line_num) from None
        if row is None:
            return
        line = last_line + 1
        last_line = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if len(row) > len(names):
            yield RawAccount(
                index,
                line,
                None,
                f"line {line} has {len(row)} cells but the header has {len(names)}",
            )
        else:
            data = {
                name: _cell(name, text)
                for name, text in zip(names, row, strict=False)
                if text != ""
            }
            yield RawAccount(index, line, data)
        index += 1
