"""Reading accounts: JSON object, array, JSON Lines, CSV; positions; streaming."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from preflight.reader import InputError, RawAccount, read_accounts


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
