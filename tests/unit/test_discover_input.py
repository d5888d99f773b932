"""discover --input's address reader: one address a line, or a CSV column."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import click
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from preflight.cli._discover import _read_addresses

_LOCAL = st.from_regex(r"[a-z0-9][a-z0-9._+-]{0,15}", fullmatch=True)
_DOMAIN = st.from_regex(r"[a-z0-9]{1,10}\.(test|com|co\.uk)", fullmatch=True)
ADDRESSES = st.lists(st.builds(lambda a, b: f"{a}@{b}", _LOCAL, _DOMAIN), max_size=20)
_CELL = st.text(alphabet=st.characters(exclude_categories=["Cs", "Cc", "Zl", "Zp"]), max_size=12)


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ADDRESSES, st.booleans())
def test_one_address_a_line(tmp_path: Path, addresses: list[str], crlf: bool) -> None:
    """One address a line (comments, blank lines, CRLF): the addresses, in order."""
    path = tmp_path / "leads.txt"
    newline = "\r\n" if crlf else "\n"
    path.write_bytes(("# a comment" + newline + newline.join(addresses) + newline).encode())
    assert [a for _, a in _read_addresses(str(path), None)] == addresses


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ADDRESSES, st.lists(_CELL, max_size=20), st.sampled_from(["Email", "from_email", "mail"]))
def test_csv_column(tmp_path: Path, addresses: list[str], names: list[str], header: str) -> None:
    """A CSV file: the address column by its usual names; quoted commas elsewhere are fine."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["name", header, "notes"])
    for index, address in enumerate(addresses):
        name = names[index] if index < len(names) else ""
        writer.writerow([name, address, "x,y"])
    path = tmp_path / "leads.csv"
    path.write_text(buffer.getvalue(), encoding="utf-8")
    assert [a for _, a in _read_addresses(str(path), None)] == addresses


def test_csv_without_an_address_column_is_a_usage_error(tmp_path: Path) -> None:
    """No address column: exit 2 naming --column; --column picks any column."""
    path = tmp_path / "leads.csv"
    path.write_text("name,company\nAnn,ACME\n")
    with pytest.raises(click.ClickException, match="no address column") as caught:
        list(_read_addresses(str(path), None))
    assert caught.value.exit_code == 2
    assert [a for _, a in _read_addresses(str(path), "company")] == ["ACME"]


def test_unreadable_file_is_a_usage_error(tmp_path: Path) -> None:
    """A file that is not UTF-8 is exit 2, not a traceback."""
    path = tmp_path / "leads.txt"
    path.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(click.ClickException, match="not UTF-8") as caught:
        list(_read_addresses(str(path), None))
    assert caught.value.exit_code == 2
