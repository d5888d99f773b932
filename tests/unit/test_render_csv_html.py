"""The shareable reports: CSV (one row per account, safe in a spreadsheet) and HTML (one
self-contained page, escaped, failing first). Properties over hostile text: strange
bytes, lone surrogates, NUL, terminal escapes, formula injection."""

from __future__ import annotations

import csv
import html.parser
import io
import re
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from preflight._text import printable
from preflight.cli._render import CSV_COLUMNS, CsvWriter, HtmlWriter, make_writer, safe_cell
from preflight.report import AccountReport, CheckResult, Code, Status, skipped
from preflight.smartlead._audit import AuditReport, Platform

PROPERTIES = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

#: What breaks a CSV cell or a page: formulas, lone surrogates, NUL, terminal controls,
#: markup, quotes, line breaks, bidi overrides.
HOSTILE = st.sampled_from(
    [
        '=HYPERLINK("http://x")',
        "+1",
        "-2+3",
        "@SUM(A1)",
        "\t=1",
        "\r=1",
        " =cmd|' /C calc'!A0",
        "＝1",
        "\udcff",
        "\ud800",
        "\x00",
        "\x1b[2J",
        "\x1b]0;title\x07",
        "\x9b31m",
        "<script>alert(1)</script>",
        "</td></tr><tr><td>",
        '"',
        "'",
        "&amp;",
        "\n",
        "\r\n",
        "\u202e",
        ",",
    ]
)
TEXT = st.lists(HOSTILE | st.characters(exclude_categories=()), max_size=10).map("".join)
FORMULA = ("=", "+", "-", "@", "\t", "\r", "＝", "＋", "－", "＠")


def report(index: int, account: str | None, message: str, hint: str, fail: bool) -> AccountReport:
    status = Status.FAIL if fail else Status.PASS
    code = Code.AUTH_FAILED if fail else Code.OK
    checks = (
        CheckResult("payload", Status.PASS, Code.OK, "payload is valid"),
        CheckResult("smtp", status, code, message, hint if fail else None),
        skipped("imap", "not run"),
    )
    return AccountReport(index, account, checks)


REPORTS = st.lists(
    st.builds(report, st.just(0), st.none() | TEXT, TEXT, TEXT, st.booleans()),
    min_size=1,
    max_size=6,
).map(lambda rs: [AccountReport(i, r.account, r.checks) for i, r in enumerate(rs)])


@PROPERTIES
@given(TEXT)
def test_safe_cell_is_inert(text: str) -> None:
    """No cell starts a formula (after spaces too), none holds a control character, a lone
    surrogate or NUL; what is shown is the text, escaped."""
    cell = safe_cell(text)
    assert cell.isprintable()
    assert not cell.lstrip(" ").startswith(FORMULA)
    assert cell in (printable(text), "'" + printable(text))
    cell.encode("utf-8")  # strict: no lone surrogate left


@PROPERTIES
@given(REPORTS)
def test_csv_one_row_per_account_that_reads_back(reports: list[AccountReport]) -> None:
    out = io.StringIO()
    writer = CsvWriter(out)
    for item in reports:
        writer.write(item)
    writer.close()
    text = out.getvalue()
    text.encode("utf-8")
    assert "\x1b" not in text
    assert "\x00" not in text
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows[0] == list(CSV_COLUMNS)
    assert len(rows) == len(reports) + 1
    for item, row in zip(reports, rows[1:], strict=True):
        cells = dict(zip(CSV_COLUMNS, row, strict=True))
        assert cells["address"] == safe_cell(item.account or "")
        assert cells["verdict"] == ("pass" if item.ok else "fail")
        assert cells["code"] == ("ok" if item.ok else "auth_failed")
        for cell in row:
            assert not cell.lstrip(" ").startswith(FORMULA)


class _Page(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.rows: list[list[str]] = []
        self.cell: list[str] | None = None
        self.scripts = 0
        self.external: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag == "tr":
            self.rows.append([])
        if tag == "td":
            self.cell = []
        if tag == "script":
            self.scripts += 1
        for name, value in attrs:
            if name in ("src", "href") and value:
                self.external.append(value)

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self.cell is not None:
            self.rows[-1].append("".join(self.cell))
            self.cell = None

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell.append(data)


@PROPERTIES
@given(REPORTS)
def test_html_page_is_escaped_and_failing_first(reports: list[AccountReport]) -> None:
    out = io.StringIO()
    writer = HtmlWriter(out, title="t")
    for item in reports:
        writer.write(item)
    writer.close()
    page = out.getvalue()
    page.encode("utf-8")
    assert "\x1b" not in page
    assert "\x00" not in page
    parsed = _Page()
    parsed.feed(page)
    parsed.close()
    assert parsed.scripts == 1
    assert parsed.external == []
    assert set(parsed.tags) <= {
        "html", "head", "meta", "title", "style", "body", "h1", "p", "span", "strong",
        "table", "thead", "tbody", "tr", "th", "td", "script",
    }  # fmt: skip
    rows = parsed.rows[1:]  # the first is the header row
    assert len(rows) == len(reports)
    # Failing first, then by index; every cell is the value, escaped, never markup.
    expected = sorted(reports, key=lambda r: (r.ok, r.index))
    assert [int(row[0]) for row in rows] == [r.index for r in expected]
    for item, row in zip(expected, rows, strict=True):
        assert row[1] == printable(item.account or "")
        if not item.ok:
            assert row[6] == printable(item.checks[1].hint or item.checks[1].message)


def test_html_platform_column_only_for_audit() -> None:
    plain = io.StringIO()
    writer = make_writer("html", plain)
    writer.write(report(0, "a@example.com", "m", "h", False))
    writer.close()
    assert "Platform</th>" not in plain.getvalue()
    audited = io.StringIO()
    writer = make_writer("html", audited, audit=True)
    item = report(0, "a@example.com", "m", "h", True)
    writer.write(AuditReport(0, item.account, item.checks, platform=Platform(5, False, True)))
    writer.close()
    page = audited.getvalue()
    assert "<title>preflight audit</title>" in page
    assert '<td class="platform_status">smtp_failing</td>' in page
    assert re.search(r"Content-Security-Policy\" content=\"default-src 'none'", page)


def test_csv_row_for_audit_and_not_checked() -> None:
    failed = CheckResult("fetch", Status.FAIL, Code.FETCH_FAILED, "HTTP 500", "run again")
    item = AuditReport(2, "=a@example.com", (failed,), platform=Platform(9, True, True))
    out = io.StringIO()
    writer: Any = make_writer("csv", out)
    writer.write(item)
    writer.close()
    row = next(iter(csv.DictReader(io.StringIO(out.getvalue(), newline=""))))
    assert row == {
        "index": "2",
        "address": "'=a@example.com",
        "provider": "",
        "platform_status": "connected",
        "verdict": "not checked",
        "code": "fetch_failed",
        "check": "fetch",
        "hint": "run again",
        "problems": "fetch: fetch_failed",
    }


def test_submit_records_have_rows_too() -> None:
    """submit --format csv: the record's verdict, the report's code when it has one."""
    from preflight.smartlead._submit import SubmitRecord

    failed = report(0, "a@example.com", "m", "re-type it", True)
    records = [
        SubmitRecord(0, "a@example.com", "failed_check", "smtp: auth_failed", report=failed),
        SubmitRecord(1, "+b@example.com", "already_saved", "saved in an earlier run"),
    ]
    out = io.StringIO()
    writer = make_writer("csv", out, submit=True)
    for record in records:
        writer.write(record)
    writer.close()
    rows = list(csv.DictReader(io.StringIO(out.getvalue(), newline="")))
    assert [(r["address"], r["verdict"], r["code"], r["hint"]) for r in rows] == [
        ("a@example.com", "failed_check", "auth_failed", "re-type it"),
        ("'+b@example.com", "already_saved", "ok", ""),
    ]
