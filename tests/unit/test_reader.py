"""Reading accounts: JSON object, array, JSON Lines, CSV; positions; streaming."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from preflight.payload import RawObject
from preflight.reader import InputError, RawAccount, open_accounts, read_accounts


def read(text: str, source: str = "<input>", fmt: str = "auto") -> list[RawAccount]:
    return list(read_accounts(io.StringIO(text), source=source, fmt=fmt))


def test_single_object_pretty_printed() -> None:
    """A pretty-printed JSON object is one account, at the line of its brace."""
    accounts = read('\n\n{\n  "from_name": "A",\n  "smtp_port": 587\n}\n')
    assert [(a.index, a.line, a.data) for a in accounts] == [
        (0, 3, {"from_name": "A", "smtp_port": 587})
    ]


def test_array_with_lines() -> None:
    """Each element of a JSON array keeps its index and starting line."""
    text = '[\n {"a": 1},\n\n {"a": 2}, {"a": 3}\n]\n'
    accounts = read(text)
    assert [(a.index, a.line, a.data) for a in accounts] == [
        (0, 2, {"a": 1}),
        (1, 4, {"a": 2}),
        (2, 4, {"a": 3}),
    ]


def test_empty_array() -> None:
    """An empty array has no accounts, and is not an error."""
    assert read("[ ]") == []


def test_array_element_not_object_is_a_row() -> None:
    """A non-object element is read (the payload check refuses it), others still read."""
    accounts = read('[1, {"a": 1}]')
    assert [a.data for a in accounts] == [1, {"a": 1}]


def test_jsonl_bad_line_does_not_stop_others() -> None:
    """In JSON Lines a broken line is a failed row; the next lines are read."""
    accounts = read('{"a": 1}\n{"a": \n\n{"a": 3}\n')
    assert [(a.index, a.line) for a in accounts] == [(0, 1), (1, 2), (2, 4)]
    assert accounts[1].error is not None
    assert "line 2" in accounts[1].error
    assert accounts[2].data == {"a": 3}


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ('{"a": ', 1, "invalid JSON"),
        ('[{"a": 1},\n {"a": }]', 2, "invalid JSON"),
        ('[{"a": 1}\n {"a": 2}]', 2, "expected ','"),
        ('[{"a": 1},', 1, "not closed"),
        ('{\n"a": 1\n}\n{', 4, "unexpected text"),
        ('[{"a": 1}] x', 1, "unexpected text"),
    ],
)
def test_unparsable_json_names_position(text: str, line: int, reason: str) -> None:
    """Input that cannot be parsed at all raises InputError with line and reason."""
    with pytest.raises(InputError) as caught:
        read(text, source="f.json")
    assert caught.value.line == line
    assert reason in caught.value.reason
    assert str(caught.value).startswith(f"f.json, line {line}: ")


def test_empty_input() -> None:
    """Empty input is a clear error, not zero accounts."""
    with pytest.raises(InputError, match="empty"):
        read("  \n\n")


def test_csv_values_parsed_by_field_kind() -> None:
    """CSV cells become numbers and booleans by field; empty cells are absent."""
    text = (
        "from_name,smtp_port,warmup_enabled,reply_rate_percentage,password,bcc\n"
        "Ann,587,yes,12.5, pw with spaces ,\n"
        "Bob,587.0,FALSE,0,x,\n"
    )
    accounts = read(text, source="a.csv")
    assert accounts[0].data == {
        "from_name": "Ann",
        "smtp_port": 587,
        "warmup_enabled": True,
        "reply_rate_percentage": 12.5,
        "password": " pw with spaces ",
    }
    assert accounts[1].data == {
        "from_name": "Bob",
        "smtp_port": 587.0,
        "warmup_enabled": False,
        "reply_rate_percentage": 0,
        "password": "x",
    }
    assert [a.line for a in accounts] == [2, 3]


def test_csv_uncoercible_text_is_kept_for_the_payload_check() -> None:
    """Text that is not a number stays text, so the payload check names it."""
    accounts = read("from_name,smtp_port,warmup_enabled\nA,abc,maybe\n")
    assert accounts[0].data == {"from_name": "A", "smtp_port": "abc", "warmup_enabled": "maybe"}


def test_csv_multiline_cell_lines() -> None:
    """A quoted cell spanning lines does not shift the next row's line number."""
    text = 'from_name,signature\nA,"<p>\nhi</p>"\nB,x\n'
    accounts = read(text)
    assert [(a.line, a.data) for a in accounts] == [
        (2, {"from_name": "A", "signature": "<p>\nhi</p>"}),
        (4, {"from_name": "B", "signature": "x"}),
    ]


def test_csv_too_many_cells_is_a_bad_row() -> None:
    """A row with more cells than the header fails alone."""
    accounts = read("from_name,smtp_port\nA,1,extra\nB,2\n")
    assert accounts[0].error is not None
    assert accounts[1].data == {"from_name": "B", "smtp_port": 2}


def test_csv_token_cell_is_json() -> None:
    """A token column holds JSON text that becomes an object."""
    accounts = read('from_name,token\nA,"{""access_token"": ""t""}"\n')
    assert accounts[0].data == {"from_name": "A", "token": {"access_token": "t"}}


def test_not_json_not_csv_header() -> None:
    """Text that is neither JSON nor a CSV with payload columns is a usage error."""
    with pytest.raises(InputError, match="CSV header"):
        read("hello world\nfoo\n")


def test_csv_duplicate_column() -> None:
    """A column named twice is ambiguous: an input error."""
    with pytest.raises(InputError, match="twice"):
        read("from_name,from_name\nA,B\n")


def test_bom_is_ignored() -> None:
    """A UTF-8 byte order mark (Excel's CSV) does not hide the first column."""
    accounts = read("\ufefffrom_name,smtp_port\nA,1\n")
    assert accounts[0].data == {"from_name": "A", "smtp_port": 1}


def test_forced_format_json_refuses_csv() -> None:
    """--input-format json on CSV text is an error."""
    with pytest.raises(InputError, match="JSON object or array"):
        read("from_name\nA\n", fmt="json")


def test_minified_array_streams(tmp_path: Path) -> None:
    """A big one-line JSON array is read lazily: the first account comes early."""
    path = tmp_path / "big.json"
    item = {"from_name": "n", "pad": "x" * 200}
    path.write_text(json.dumps([item] * 20_000))  # ~4.6 MB on one line
    with path.open(encoding="utf-8") as stream:
        accounts = read_accounts(stream, source=str(path))
        assert next(accounts).data == item
        assert stream.tell() < 300_000
        assert sum(1 for _ in accounts) == 19_999


def test_jsonl_from_file_keeps_lines(tmp_path: Path) -> None:
    """JSON Lines read from a file keep line numbers across chunk boundaries."""
    path = tmp_path / "a.jsonl"
    path.write_text("".join(json.dumps({"i": i, "pad": "y" * 300}) + "\n" for i in range(1000)))
    with path.open(encoding="utf-8") as stream:
        accounts = list(read_accounts(stream, source=str(path)))
    assert [(a.index, a.line, a.data["i"]) for a in accounts] == [  # type: ignore[index]
        (i, i + 1, i) for i in range(1000)
    ]


# --- issue 9: bytes, bounded rows, rows that fail alone ------------------------------


def read_bytes(data: bytes, source: str = "<input>", fmt: str = "auto") -> list[RawAccount]:
    return list(read_accounts(io.BytesIO(data), source=source, fmt=fmt))


def test_binary_stream_reads_like_text() -> None:
    """A binary stream (what open_accounts gives) reads exactly as its text does."""
    text = '\ufeff[\n {"a": "é"},\n {"a": 2}\n]\n'
    assert read_bytes(text.encode()) == read(text)


def test_utf8_bom_bytes_are_skipped() -> None:
    """A UTF-8 byte order mark does not hide the first CSV column."""
    accounts = read_bytes(b"\xef\xbb\xbffrom_name,smtp_port\nA,1\n")
    assert accounts[0].data == {"from_name": "A", "smtp_port": 1}


def test_jsonl_invalid_utf8_row_fails_alone() -> None:
    """In JSON Lines a line that is not UTF-8 fails alone, with its line number."""
    accounts = read_bytes(b'{"a": 1}\n{"a": "\xff"}\n{"a": 3}\n', fmt="jsonl")
    assert [(a.line, a.data, a.error) for a in accounts] == [
        (1, {"a": 1}, None),
        (2, None, "line 2 is not UTF-8 text (byte 0xff at column 8)"),
        (3, {"a": 3}, None),
    ]


def test_text_stream_lone_surrogate_fails_its_row() -> None:
    """A lone surrogate in a text stream is not UTF-8: its row fails, the others read."""
    accounts = read('{"a": 1}\n{"a": "\ud800"}\n{"a": 3}\n', fmt="jsonl")
    assert [a.error is None for a in accounts] == [True, False, True]


def test_jsonl_overlong_line_fails_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """A line over the per-account limit fails alone; the next line is read."""
    monkeypatch.setattr("preflight.reader.MAX_ACCOUNT_BYTES", 100)
    long_line = b'{"a": "' + b'"x' * 500_000 + b'"}\n'  # quotes must not matter here
    accounts = read_bytes(b'{"a": 1}\n' + long_line + b'{"a": 3}\n', source="a.jsonl")
    assert [(a.line, a.data, a.error) for a in accounts] == [
        (1, {"a": 1}, None),
        (2, None, "line 2 is longer than 100 bytes, the limit for one account"),
        (3, {"a": 3}, None),
    ]


def test_overlong_first_line_is_a_failed_jsonl_row(monkeypatch: pytest.MonkeyPatch) -> None:
    """An object line over the limit, first in the file, fails alone as JSON Lines."""
    monkeypatch.setattr("preflight.reader.MAX_ACCOUNT_BYTES", 100)
    accounts = read_bytes(b'{"a": "' + b"x" * 1000 + b'"}\n{"a": 2}\n')
    assert [(a.line, a.data) for a in accounts] == [(1, None), (2, {"a": 2})]


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ("[\n" + "[" * 100_000, 2, "an account is nested too deeply"),
        ('{\n"a": ' + "[" * 100_000, 1, "an account is nested too deeply"),
        ('[{"a": 1},\n{"a":\n' + "9" * 5000 + "}]", 3, "a number has more than 4300 digits"),
        ('[{"a": "x"},\n\udcff', 2, "not UTF-8 text (byte 0xff at column 1)"),
    ],
)
def test_unreadable_json_document_names_line(text: str, line: int, reason: str) -> None:
    """Deep nesting, a huge number or a bad byte in a JSON document: InputError, line."""
    with pytest.raises(InputError) as caught:
        read_bytes(text.encode("utf-8", "surrogateescape"), source="f.json")
    assert (caught.value.line, caught.value.reason) == (line, reason)


def test_invalid_utf8_across_chunks_in_json_array() -> None:
    """A character cut by a read chunk decodes; a bad byte far down names its line."""
    item = '{"a": "' + "é" * 40_000 + '"}'
    good = ("[" + ",\n".join([item] * 3) + "]").encode()
    assert [a.data for a in read_bytes(good)] == [{"a": "é" * 40_000}] * 3
    bad = good[:-2] + b"\xff" + good[-2:]
    with pytest.raises(InputError) as caught:
        read_bytes(bad)
    assert caught.value.line == 3


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("[" * 100_000, "is nested too deeply to be an account"),
        ('{"a": ' + "9" * 5000 + "}", "is not readable JSON: a number has more than 4300 digits"),
    ],
)
def test_jsonl_unreadable_row_fails_alone(line: str, reason: str) -> None:
    """Deep nesting or a huge number on one JSON Lines row fails that row only."""
    accounts = read('{"a": 1}\n' + line + '\n{"a": 3}\n', fmt="jsonl")
    assert [(a.data, a.error) for a in accounts] == [
        ({"a": 1}, None),
        (None, f"line 2 {reason}"),
        ({"a": 3}, None),
    ]


def test_duplicated_keys_are_recorded() -> None:
    """json keeps the last duplicate silently; the reader records the key, at any depth."""
    (account,) = read('{"password": "a", "x": {"k": 1, "k": 2}, "password": "b"}')
    assert isinstance(account.data, RawObject)
    assert account.data.duplicates == ("password",)
    assert account.data["x"].duplicates == ("k",)


def test_csv_huge_number_cell_stays_text() -> None:
    """A CSV number int() refuses to read stays text, for the payload check to name."""
    accounts = read("from_name,smtp_port\nA," + "9" * 5000 + "\n")
    assert accounts[0].data == {"from_name": "A", "smtp_port": "9" * 5000}


def test_csv_rows_after_multiline_cell_fail_alone_with_their_line() -> None:
    """A bad byte after a quoted multi-line cell fails only its row, at its line."""
    data = b'from_name,signature\nA,"<p>\nhi</p>"\nB,\xff\nC,x\n'
    accounts = read_bytes(data)
    assert [(a.index, a.line, a.error) for a in accounts] == [
        (0, 2, None),
        (1, 4, "line 4 is not UTF-8 text (byte 0xff at column 3)"),
        (2, 5, None),
    ]


def test_csv_overlong_row_fails_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """A CSV row over the limit, even a quoted cell spanning lines, fails alone."""
    monkeypatch.setattr("preflight.reader.MAX_ACCOUNT_BYTES", 100)
    cell = '"' + "y\n" * 200 + '"'
    accounts = read(f"from_name,signature\nA,{cell}\nB,x\n")
    assert [(a.line, a.data, a.error) for a in accounts] == [
        (2, None, "line 2 is longer than 100 bytes, the limit for one account"),
        (203, {"from_name": "B", "signature": "x"}, None),
    ]


def test_csv_quote_never_closed_is_input_error() -> None:
    """A quote never closed swallows the rest of the file: an InputError at its line."""
    with pytest.raises(InputError) as caught:
        read('from_name,signature\nA,x\nB,"open\nC,x\n')
    assert (caught.value.line, caught.value.reason) == (3, "a quoted CSV cell is never closed")


def test_csv_invalid_row_fails_alone() -> None:
    """A row csv cannot parse (text after a closing quote) fails alone."""
    accounts = read('from_name,signature\nA,"x"y\nB,x\n')
    assert [(a.line, a.error) for a in accounts] == [
        (2, "line 2 is not valid CSV: ',' expected after '\"'"),
        (3, None),
    ]


def test_csv_old_mac_line_ends() -> None:
    """CR-only line ends (old Mac CSV) still give one row per line."""
    accounts = read("from_name,smtp_port\rA,1\rB,2\r")
    assert [(a.line, a.data) for a in accounts] == [
        (2, {"from_name": "A", "smtp_port": 1}),
        (3, {"from_name": "B", "smtp_port": 2}),
    ]


def test_read_failure_is_input_error() -> None:
    """An I/O error while reading is an InputError naming the source."""

    class Broken(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def readinto(self, buffer: Any) -> int:
            raise OSError(5, "Input/output error")

    with pytest.raises(InputError) as caught:
        list(read_accounts(io.BufferedReader(Broken()), source="f.json"))
    assert str(caught.value) == "f.json: cannot be read: Input/output error"


def test_open_accounts_directory_is_input_error(tmp_path: Path) -> None:
    """A directory given as the file of accounts is an InputError, not a traceback."""
    with pytest.raises(InputError) as caught, open_accounts(str(tmp_path)):
        pass
    assert caught.value.reason == "Is a directory"


def test_blank_flood_in_json_array_is_skipped() -> None:
    """Megabytes of blanks between array elements are skipped; the lines still count."""
    blanks = b" " * (3 << 20) + b"\n" * 5 + b" " * (3 << 20)
    accounts = read_bytes(b'[{"a": 1},' + blanks + b'{"a": 2}]')
    assert [(a.line, a.data) for a in accounts] == [(1, {"a": 1}), (6, {"a": 2})]
