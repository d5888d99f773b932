"""Properties of the writers: any text in any field renders safely, and no secret shows."""

from __future__ import annotations

import io
import json
import re
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from preflight._text import printable
from preflight.cli._render import make_writer
from preflight.payload import parse_account
from preflight.report import AccountReport, CheckResult, Code, Status
from preflight.smartlead._guard import summary
from preflight.smartlead._submit import SubmitRecord

PROPERTIES = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
#: Every verdict a submit record has (what preflight.smartlead._submit.VERDICTS listed).
VERDICTS = ("saved", "already_saved", "dry_run", "failed_check", "rejected", "unknown", "not_sent")

#: Text with what breaks output: lone surrogates, terminal controls, NUL, bidi overrides.
TEXT = st.lists(
    st.sampled_from(["\udcff", "\ud800", "\x1b[2J", "\x1b]0;t\x07", "\x9b", "\x00", "\u202e"])
    | st.characters(exclude_categories=()),
    max_size=12,
).map("".join)

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=8,
)

DETAILS = st.dictionaries(
    st.sampled_from(["errors", "warnings", "reply", "problems", "security"]) | TEXT,
    JSON_VALUES
    | st.lists(
        st.fixed_dictionaries({"message": TEXT}, optional={"field": st.none() | TEXT}),
        max_size=3,
    ),
    max_size=4,
)

CHECKS = st.builds(
    CheckResult,
    name=st.sampled_from(["payload", "mx", "smtp", "imap", "domain", "roundtrip"]) | TEXT,
    status=st.sampled_from(Status),
    code=st.sampled_from(Code),
    message=TEXT,
    hint=st.none() | TEXT,
    elapsed_ms=st.floats(0, 1e6),
    details=DETAILS,
)

SECRET = "Pw-9q7zk2m4x8-secret"
#: A validated account holding the secret: a report carries one, never renders it.
VALIDATED = parse_account(
    {
        "from_name": "Alice",
        "from_email": "alice@example.com",
        "user_name": "alice@example.com",
        "password": SECRET,
        "smtp_host": "smtp.example.com",
        "smtp_port": 587,
        "imap_host": "imap.example.com",
        "imap_port": 993,
        "imap_password": SECRET,
        "warmup_enabled": False,
    }
).account
assert VALIDATED is not None

REPORTS = st.builds(
    AccountReport,
    index=st.integers(0, 10**6),
    account=st.none() | TEXT,
    checks=st.lists(CHECKS, max_size=4).map(tuple),
    line=st.none() | st.integers(1, 10**6),
    validated=st.just(VALIDATED),
)

RECORDS = st.builds(
    SubmitRecord,
    index=st.integers(0, 10**6),
    account=st.none() | TEXT,
    verdict=st.sampled_from(VERDICTS) | TEXT,
    message=TEXT,
    line=st.none() | st.integers(1, 10**6),
    report=st.none() | REPORTS,
    disagreement=st.lists(TEXT, max_size=2).map(tuple),
    payload=st.none() | st.dictionaries(TEXT, JSON_VALUES, max_size=3),
)

#: The colour codes the text writers add themselves (click.style).
OUR_STYLES = re.compile(r"\x1b\[[0-9;]*m")


def render(fmt: str, items: list[Any], *, color: bool = False, submit: bool = False) -> str:
    buffer = io.BytesIO()
    out = io.TextIOWrapper(buffer, encoding="utf-8", errors="strict")
    writer = make_writer(fmt, out, color=color, submit=submit)
    for item in items:
        writer.write(item)
    writer.close()
    out.flush()
    return buffer.getvalue().decode("utf-8")  # strict: the output is valid UTF-8


def assert_inert(text: str) -> None:
    """No control character but newline, no lone surrogate, no format character."""
    bad = [c for c in OUR_STYLES.sub("", text) if c != "\n" and not c.isprintable()]
    assert not bad, bad


def contains_secret(item: Any) -> bool:
    return SECRET in json.dumps(item.to_dict(), default=str)


@PROPERTIES
@given(reports=st.lists(REPORTS, max_size=3), color=st.booleans())
def test_text_writer_output_is_inert(reports: list[AccountReport], color: bool) -> None:
    """Any report, any text: the text writer's output has no raw control character."""
    assume(not any(contains_secret(r) for r in reports))
    text = render("text", reports, color=color)
    assert_inert(text)
    assert SECRET not in text


@PROPERTIES
@given(records=st.lists(RECORDS, max_size=3), color=st.booleans())
def test_submit_text_writer_output_is_inert(records: list[SubmitRecord], color: bool) -> None:
    """Any submit record, any text: the submit writer's output has no raw control character."""
    assume(not any(contains_secret(r) for r in records))
    text = render("text", records, color=color, submit=True)
    assert_inert(text)
    assert SECRET not in text


@PROPERTIES
@given(items=st.lists(REPORTS | RECORDS, max_size=3))
def test_json_writers_round_trip(items: list[AccountReport | SubmitRecord]) -> None:
    """json and jsonl: valid UTF-8 JSON holding exactly each item's to_dict()."""
    assume(not any(contains_secret(item) for item in items))
    expected = [json.loads(json.dumps(item.to_dict(), default=str)) for item in items]
    document = render("json", items)
    assert SECRET not in document
    parsed = json.loads(document)
    assert parsed["accounts"] == expected
    assert parsed["ok"] is all(item.ok for item in items)
    lines = render("jsonl", items)
    assert SECRET not in lines
    assert [json.loads(line) for line in lines.splitlines()] == expected


@PROPERTIES
@given(report=REPORTS)
def test_guard_summary_is_one_inert_line(report: AccountReport) -> None:
    """guard.summary of any report is one line with no control character or secret."""
    line = summary(report)
    assert line.isprintable()
    assert SECRET not in line


@PROPERTIES
@given(text=TEXT | st.text())
def test_printable_is_printable_and_keeps_printable_text(text: str) -> None:
    """printable() of any text is printable; printable text is returned unchanged."""
    shown = printable(text)
    assert shown.isprintable()
    shown.encode("utf-8")  # no lone surrogate left
    if text.isprintable():
        assert shown == text
