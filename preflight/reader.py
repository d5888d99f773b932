"""Reading accounts: one JSON object, a JSON array, JSON Lines, or CSV.

Accounts stream: a file of 100,000 accounts is never held in memory at once, and no
line or account is ever read whole past :data:`MAX_ACCOUNT_BYTES`. Each account keeps
its index and the line where it starts, so every message can point at the row.

The input is read as bytes and decoded per row, so a row that cannot be decoded (a
broken JSON line, a line that is not UTF-8, nested too deeply, a number too long to
read, a row over the size limit, a CSV row with too many cells) becomes a
:class:`RawAccount` with an ``error``: it fails on its own and the rows after it are
still read. Input that cannot be parsed at all (a JSON document is one unit) raises
:class:`InputError`, with the reason and the line.
"""

from __future__ import annotations

import csv
import io
import json
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final

from preflight.errors import PreflightError
from preflight.payload import FIELDS, Kind, RawObject

__all__ = [
    "FORMATS",
    "InputError",
    "RawAccount",
    "json_object",
    "open_accounts",
    "read_accounts",
]

FORMATS: Final = ("auto", "json", "jsonl", "csv")

#: The most one account (a JSON Lines line, a CSV row, an element of a JSON array)
#: may take; nothing longer is ever held in memory.
MAX_ACCOUNT_BYTES: Final = 1 << 20
_CHUNK: Final = 1 << 16
_NOT_SPACE: Final = re.compile("[^ \t\r\n\ufeff]")
_BOM: Final = b"\xef\xbb\xbf"
_SPACE: Final = b" \t\r\n"


class InputError(PreflightError):
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
def open_accounts(path: str) -> Iterator[IO[bytes]]:
    """Open a file of accounts as bytes (``-`` is standard input).

    :func:`read_accounts` decodes it row by row.
    """
    if path == "-":
        yield sys.stdin.buffer
        return
    try:
        handle = open(path, "rb")  # noqa: SIM115
    except OSError as exc:
        raise InputError(path, exc.strerror or str(exc)) from None
    with handle:
        yield handle


def read_accounts(
    stream: IO[bytes] | IO[str], *, source: str = "<input>", fmt: str = "auto"
) -> Iterator[RawAccount]:
    """Yield the accounts of ``stream`` one by one, in input order.

    ``stream`` is binary (as :func:`open_accounts` gives) or text. ``fmt`` is one of
    :data:`FORMATS`; ``auto`` looks at the content (and the file name's suffix, when
    there is one).
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown input format {fmt!r}")
    try:
        yield from _read(_Source(stream), source, fmt)
    except OSError as exc:
        raise InputError(source, f"cannot be read: {exc.strerror or exc}") from None


# --- bytes, lines ------------------------------------------------------------------


class _Source:
    """A byte stream read in chunks, with bounded lines and the current line number."""

    def __init__(self, stream: IO[bytes] | IO[str]) -> None:
        self._read: Callable[[int], bytes]
        if isinstance(stream.read(0), str):
            text = stream

            # Already decoded: back to UTF-8, and a lone surrogate becomes bytes that
            # are not UTF-8, so its row fails like an invalid byte in a file.
            def read_text(size: int) -> bytes:
                return str(text.read(size)).encode("utf-8", "surrogatepass")

            self._read = read_text
        else:
            binary: Any = stream
            self._read = getattr(binary, "read1", binary.read)
        self.buf = b""
        self.pos = 0
        self.eof = False
        #: The line number of the next byte.
        self.line = 1
        # A UTF-8 byte order mark (Excel's CSV) is not part of the first row.
        while len(self.buf) < len(_BOM) and _BOM.startswith(self.buf) and self._fill():
            pass
        if self.buf.startswith(_BOM):
            self.pos = len(_BOM)

    def _fill(self) -> bool:
        """Append a chunk to the buffer; False at the end of the stream."""
        if self.eof:
            return False
        data = self._read(_CHUNK)
        if not data:
            self.eof = True
            return False
        self.buf = self.buf[self.pos :] + data
        self.pos = 0
        return True

    def readline(self, limit: int) -> bytes:
        """The rest of the current line with its newline, or its next ``limit`` bytes."""
        while True:
            end = self.buf.find(b"\n", self.pos, self.pos + limit)
            if end >= 0:
                end += 1
                break
            if len(self.buf) - self.pos >= limit:
                end = self.pos + limit
                break
            if not self._fill():
                end = len(self.buf)
                break
        line = self.buf[self.pos : end]
        self.pos = end
        if line.endswith(b"\n"):
            self.line += 1
        return line

    def skip_line(self, quotes: int | None = None) -> int:
        """Skip to the end of the line, in pieces (memory stays bounded).

        With ``quotes``, the number of ``"`` seen so far in a CSV row, skip to the
        first newline outside quotes. Returns the count of ``"``, odd when the end of
        the input came inside quotes.
        """
        count = quotes or 0
        while True:
            piece = self.readline(_CHUNK)
            if quotes is not None:
                count += piece.count(b'"')
            if not piece or (piece.endswith(b"\n") and count % 2 == 0):
                return count

    def chunk(self) -> bytes:
        """The next bytes, whatever their size (b"" at the end)."""
        if self.pos >= len(self.buf) and not self._fill():
            return b""
        data = self.buf[self.pos :]
        self.buf = b""
        self.pos = 0
        return data

    def push_back(self, data: bytes) -> None:
        """Undo the last :meth:`readline` that returned ``data``."""
        self.buf = data + self.buf[self.pos :]
        self.pos = 0
        self.line -= data.count(b"\n")


def _bad_utf8(data: bytes, exc: UnicodeDecodeError) -> str:
    """Where a row stops being UTF-8, without showing its text."""
    column = data.rfind(b"\n", 0, exc.start) + 1
    return f"not UTF-8 text (byte 0x{data[exc.start]:02x} at column {exc.start - column + 1})"


def _bounded(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


# --- JSON values -------------------------------------------------------------------


def json_object(pairs: list[tuple[str, Any]]) -> RawObject:
    """A JSON object that remembers its duplicated keys (the payload check names them)."""
    obj = RawObject(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        duplicates: list[str] = []
        for key, _ in pairs:
            if key in seen and key not in duplicates:
                duplicates.append(key)
            seen.add(key)
        obj.duplicates = tuple(duplicates)
    return obj


_DECODER: Final = json.JSONDecoder(object_pairs_hook=json_object)
_LONG_NUMBER: Final = re.compile(rf"\d{{{sys.get_int_max_str_digits() + 1},}}")


def _number_too_long() -> str:
    return f"a number has more than {sys.get_int_max_str_digits()} digits"


def _loads(text: str) -> tuple[object, str | None]:
    """One JSON value, or why it cannot be read (never the value itself)."""
    try:
        return _DECODER.decode(text), None
    except json.JSONDecodeError as exc:
        return None, f"is not valid JSON: {exc.msg} (column {exc.colno})"
    except RecursionError:
        return None, "is nested too deeply to be an account"
    except ValueError:  # int() refuses more than sys.get_int_max_str_digits() digits
        return None, f"is not readable JSON: {_number_too_long()}"


# --- formats -----------------------------------------------------------------------


def _read(src: _Source, source: str, fmt: str) -> Iterator[RawAccount]:
    if fmt == "auto":
        suffix = Path(source).suffix.lower()
        fmt = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}.get(suffix, "auto")
    if fmt == "csv":
        yield from _read_csv(src, source)
        return
    if fmt == "jsonl":
        yield from _read_jsonl(src)
        return

    # The first non-blank line decides. A minified JSON array is one line: only its
    # start is looked at here.
    while True:
        line = src.line
        first = src.readline(_CHUNK)
        if not first:
            raise InputError(source, "no accounts: the input is empty")
        if first.strip(_SPACE):
            break
    start = first.lstrip(_SPACE)[:1]
    if start == b"{" and fmt == "auto" and not first.endswith(b"\n"):
        first += src.readline(MAX_ACCOUNT_BYTES + 1 - len(first))
    src.push_back(first)
    if start == b"{" and fmt == "auto" and _is_json_line(first):
        yield from _read_jsonl(src)
    elif start in (b"[", b"{"):
        yield from _read_json(src, source)
    elif fmt == "json":
        raise InputError(source, "expected a JSON object or array", line)
    else:
        yield from _read_csv(src, source)


def _is_json_line(first: bytes) -> bool:
    """Whether the first non-blank line is a whole JSON value on its own (JSON Lines).

    A pretty-printed object spans lines and is read as one document instead. A line
    over the size limit, or too deep or with too long a number but closed on the
    same line, is a bad row of JSON Lines: it fails alone.
    """
    if len(first) > MAX_ACCOUNT_BYTES and not first.endswith(b"\n"):
        return True
    text = first.decode("utf-8", "replace")
    try:
        json.loads(text)
    except json.JSONDecodeError:
        return False
    except (RecursionError, ValueError):
        return text.rstrip().endswith("}")
    return True


def _read_jsonl(src: _Source) -> Iterator[RawAccount]:
    index = 0
    while True:
        line_no = src.line
        data = src.readline(MAX_ACCOUNT_BYTES + 1)
        if not data:
            return
        error: str | None = None
        value: object = None
        if len(data) > MAX_ACCOUNT_BYTES and not data.endswith(b"\n"):
            src.skip_line()
            error = f"is longer than {MAX_ACCOUNT_BYTES} bytes, the limit for one account"
        else:
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError as exc:
                error = f"is {_bad_utf8(data, exc)}"
            else:
                if not text.strip():
                    continue
                value, error = _loads(text)
        if error is None:
            yield RawAccount(index, line_no, value)
        else:
            yield RawAccount(index, line_no, None, f"line {line_no} {error}")
        index += 1


class _Buffer:
    """Text decoded so far from a stream, with the line number of a position."""

    def __init__(self, src: _Source, source: str) -> None:
        self.src = src
        self.source = source
        self.text = ""
        self.eof = False
        self._pending = b""  # the start of a character cut by a chunk boundary
        self._line = src.line  # line number at self._counted
        self._counted = 0

    def more(self) -> bool:
        """Read and decode another chunk; False at the end of the stream."""
        if self.eof:
            return False
        chunk = self.src.chunk()
        if not chunk:
            self.eof = True
        data = self._pending + chunk
        try:
            text = data.decode("utf-8")
            self._pending = b""
        except UnicodeDecodeError as exc:
            if chunk and exc.end == len(data) and len(data) - exc.start < 4:
                text = data[: exc.start].decode("utf-8")
                self._pending = data[exc.start :]
            else:
                line = self.line_at(len(self.text)) + data.count(b"\n", 0, exc.start)
                raise InputError(self.source, _bad_utf8(data, exc), line) from None
        self.text += text
        return bool(chunk)

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
        """The position of the next character that is not white space (may read, and
        forget a long run of white space: positions before the result are void)."""
        while True:
            found = _NOT_SPACE.search(self.text, pos)
            if found:
                return found.start()
            pos = len(self.text)
            if pos > _CHUNK:  # megabytes of blanks between accounts: memory stays bounded
                pos -= self.drop_before(pos)
            if not self.more():
                return pos


def _decode_at(buf: _Buffer, pos: int) -> tuple[object, int]:
    """Decode one JSON value starting at ``pos``, reading more text as needed."""
    while True:
        try:
            value, end = _DECODER.raw_decode(buf.text, pos)
        except json.JSONDecodeError as exc:
            if len(buf.text) - pos > MAX_ACCOUNT_BYTES:
                raise InputError(
                    buf.source,
                    f"an account is larger than {MAX_ACCOUNT_BYTES} bytes",
                    buf.line_at(pos),
                ) from None
            if buf.more():
                continue
            raise InputError(buf.source, f"invalid JSON: {exc.msg}", buf.line_at(exc.pos)) from None
        except RecursionError:
            raise InputError(
                buf.source, "an account is nested too deeply", buf.line_at(pos)
            ) from None
        except ValueError:  # int() refuses more than sys.get_int_max_str_digits() digits
            found = _LONG_NUMBER.search(buf.text, pos)
            line = buf.line_at(found.start() if found else pos)
            raise InputError(buf.source, _number_too_long(), line) from None
        # A number or literal may continue in the next chunk; an object cannot end early.
        if end == len(buf.text) and buf.more():
            continue
        return value, end


def _read_json(src: _Source, source: str) -> Iterator[RawAccount]:
    buf = _Buffer(src, source)
    pos = buf.skip_space(0)
    if buf.text[pos] == "{":
        value, end = _decode_at(buf, pos)
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
        _expect_end(buf, pos + 1)
        return
    while True:
        if pos >= len(buf.text):
            raise InputError(source, "the JSON array is not closed", buf.line_at(pos))
        value, end = _decode_at(buf, pos)
        yield RawAccount(index, buf.line_at(pos), value)
        index += 1
        pos = buf.skip_space(end)
        if pos >= len(buf.text):
            raise InputError(source, "the JSON array is not closed", buf.line_at(pos))
        if buf.text[pos] == "]":
            _expect_end(buf, pos + 1)
            return
        if buf.text[pos] != ",":
            raise InputError(source, "expected ',' or ']' in the JSON array", buf.line_at(pos))
        pos = buf.skip_space(pos + 1)
        pos -= buf.drop_before(pos)


def _expect_end(buf: _Buffer, pos: int) -> None:
    pos = buf.skip_space(pos)
    if pos < len(buf.text):
        raise InputError(buf.source, "unexpected text after the JSON array", buf.line_at(pos))


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
        try:
            if _INT.match(stripped):
                return int(stripped)
            if _FLOAT.match(stripped):
                return float(stripped)
        except ValueError:  # more digits than int() reads: the payload check says so
            pass
        return text
    if spec.kind is Kind.TOKEN:
        value, error = _loads(text)
        return text if error else value
    return text


def _csv_records(src: _Source, source: str) -> Iterator[tuple[int, str | None, str | None]]:
    """The CSV rows as (line, text, error), split at newlines outside quotes.

    Rows are separable this way (a ``"`` inside a quoted cell is doubled, so a row
    ends at a newline after an even number of them): a row over the size limit or
    not UTF-8 fails alone. A quote never closed swallows the rest of the input,
    which then cannot be read: an :class:`InputError`.
    """
    while True:
        line = src.line
        parts: list[bytes] = []
        size = quotes = 0
        error: str | None = None
        while True:
            piece = src.readline(MAX_ACCOUNT_BYTES + 1 - size)
            parts.append(piece)
            size += len(piece)
            quotes += piece.count(b'"')
            if not piece or (piece.endswith(b"\n") and quotes % 2 == 0):
                break
            if size > MAX_ACCOUNT_BYTES:
                quotes = src.skip_line(quotes)
                error = f"is longer than {MAX_ACCOUNT_BYTES} bytes, the limit for one account"
                break
        if quotes % 2:
            raise InputError(source, "a quoted CSV cell is never closed", line)
        if size == 0:
            return
        if error:
            yield line, None, f"line {line} {error}"
            continue
        data = b"".join(parts)
        try:
            yield line, data.decode("utf-8"), None
        except UnicodeDecodeError as exc:
            bad = line + data.count(b"\n", 0, exc.start)
            yield line, None, f"line {bad} is {_bad_utf8(data, exc)}"


def _csv_rows(src: _Source, source: str) -> Iterator[tuple[int, list[str] | None, str | None]]:
    """The rows of a CSV input as (line, cells, error), blank rows left out."""
    for line, text, error in _csv_records(src, source):
        if text is None:
            yield line, None, error
            continue
        # A row may hold several with old Mac line ends ("\r" alone): csv splits them.
        reader = csv.reader(io.StringIO(text, newline=""), strict=True)
        while True:
            row_line = line + reader.line_num
            try:
                row = next(reader, None)
            except csv.Error as exc:
                yield row_line, None, f"line {row_line} is not valid CSV: {exc}"
                break
            if row is None:
                break
            if any(cell.strip() for cell in row):
                yield row_line, row, None


def _read_csv(src: _Source, source: str) -> Iterator[RawAccount]:
    rows = _csv_rows(src, source)
    for header_line, header, error in rows:
        if header is None:
            raise InputError(source, f"the CSV header {error}", header_line)
        break
    else:
        raise InputError(source, "no accounts: the input is empty")
    names = [cell.strip().lstrip("\ufeff") for cell in header]
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
            raise InputError(source, f"CSV column {_bounded(name)!r} appears twice", header_line)
        seen.add(name)

    for index, (line, row, error) in enumerate(rows):
        if row is None:
            yield RawAccount(index, line, None, error)
        elif len(row) > len(names):
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
