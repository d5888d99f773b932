"""The writers (text, json, jsonl, submit text): every shape of report renders, safely."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from preflight._net import ProbeState
from preflight._text import json_text, printable
from preflight.cli._render import (
    JsonLinesWriter,
    JsonWriter,
    SubmitTextWriter,
    TextWriter,
    make_writer,
)
from preflight.report import CHECK_NAMES, AccountReport, CheckResult, Code, Status
from preflight.smartlead._submit import SubmitRecord

ALL_CHECKS = (*CHECK_NAMES, "roundtrip")
#: Every verdict a submit record has (what preflight.smartlead._submit.VERDICTS listed).
VERDICTS = ("saved", "already_saved", "dry_run", "failed_check", "rejected", "unknown", "not_sent")


def strict_stream() -> io.TextIOWrapper:
    """A stream that refuses what strict UTF-8 cannot encode (lone surrogates)."""
    return io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="strict")


def written(stream: io.TextIOWrapper) -> str:
    stream.flush()
    buffer = stream.buffer
    assert isinstance(buffer, io.BytesIO)
    return buffer.getvalue().decode("utf-8")


def render(writer_name: str, items: list[Any], *, color: bool = False) -> str:
    out = strict_stream()
    submit = writer_name == "submit"
    writer = make_writer("text" if submit else writer_name, out, color=color, submit=submit)
    for item in items:
        writer.write(item)
    writer.close()
    return written(out)


def report_of(*checks: CheckResult, account: str | None = "alice@example.com") -> AccountReport:
    return AccountReport(0, account, checks, line=3)


def probe_warning_result(*warnings: str) -> CheckResult:
    state = ProbeState("smtp", details={"security": "starttls", "tls_version": "TLSv1.3"})
    state.warnings.extend(warnings)
    return state.passed("logged in as alice@example.com")


def test_text_report_renders_a_passing_probe_with_warnings() -> None:
    """A passing smtp check with warnings (--insecure, expiry) renders as text, no TypeError."""
    result = probe_warning_result(
        "the certificate was not verified (--insecure)", "the certificate expires in 3 days"
    )
    out = render("text", [report_of(result)])
    assert "WARN  alice@example.com" in out
    assert "the certificate was not verified (--insecure)" in out
    assert "the certificate expires in 3 days" in out


def test_probe_warnings_are_message_objects() -> None:
    """ProbeState.passed stores details.warnings as {"message": ...} objects, like the payload."""
    result = probe_warning_result("the credentials were sent in clear text")
    assert result.status is Status.WARN
    assert result.details["warnings"] == [{"message": "the credentials were sent in clear text"}]
    assert result.hint == "The credentials were sent in clear text."


def test_probe_warning_empty_string_does_not_crash() -> None:
    """An empty warning string still gives a result (no IndexError building the hint)."""
    result = probe_warning_result("")
    assert result.status is Status.WARN
    assert result.details["warnings"] == [{"message": ""}]


def test_text_writer_survives_any_problem_shape() -> None:
    """details.errors/warnings as strings, dicts without message, or not a list: rendered."""
    shapes: list[Any] = [
        ["a plain string"],
        [{"field": "x"}],
        [{"message": 42}],
        "not a list",
        [None, 3, ["nested"]],
        {"message": "a dict, not a list"},
    ]
    for shape in shapes:
        for key in ("errors", "warnings"):
            check = CheckResult("smtp", Status.WARN, Code.OK, "m", "h", 1.0, {key: shape})
            out = render("text", [report_of(check)])
            assert "WARN  alice@example.com" in out
            out = render("submit", [failed_record(report_of(check))])
            assert "alice@example.com" in out


def failed_record(report: AccountReport) -> SubmitRecord:
    return SubmitRecord(0, report.account, "failed_check", "not sent", 3, report)


def results_for(name: str) -> list[CheckResult]:
    """Every status of the check ``name``, with and without errors, warnings and a hint."""
    results = []
    for status in Status:
        code = {
            Status.PASS: Code.OK,
            Status.WARN: Code.DNS_NO_MX if name == "mx" else Code.OK,
            Status.FAIL: Code.AUTH_FAILED,
            Status.SKIP: Code.SKIPPED,
        }[status]
        for hint in (None, f"{name} {status} hint"):
            for details in (
                {},
                {"errors": [{"field": "smtp_port", "message": f"{name} {status} error"}]},
                {"warnings": [{"message": f"{name} {status} warning"}]},
                {
                    "errors": [{"field": None, "message": f"{name} {status} error 1"}],
                    "warnings": [
                        {"field": "max_email_per_day", "message": f"{name} {status} warning 1"},
                        {"message": f"{name} {status} warning 2"},
                    ],
                },
            ):
                message = f"{name} {status} message"
                results.append(CheckResult(name, status, code, message, hint, 2.5, details))
    return results


@pytest.mark.parametrize("writer_name", ["text", "json", "jsonl", "submit"])
@pytest.mark.parametrize("name", ALL_CHECKS)
def test_every_status_of_every_check_in_every_format(writer_name: str, name: str) -> None:
    """Each check name x status x errors/warnings/hint renders with its code and messages."""
    for result in results_for(name):
        report = report_of(result)
        item: Any = failed_record(report) if writer_name == "submit" else report
        for color in (False, True):
            out = render(writer_name, [item], color=color)
            if writer_name == "json":
                document = json.loads(out)
                assert document["accounts"][0]["checks"][0] == result.to_dict()
            elif writer_name == "jsonl":
                assert json.loads(out)["checks"][0] == result.to_dict()
            shown = result.status in (Status.FAIL, Status.WARN)
            if writer_name == "submit":
                shown = result.status is Status.FAIL
            if shown:
                if result.code is not Code.OK:
                    assert result.code.value in out
                assert result.message in out
                for key in ("errors", "warnings"):
                    for problem in result.details.get(key, []):
                        assert problem["message"] in out
                if result.hint:
                    assert result.hint in out


@pytest.mark.parametrize("verdict", VERDICTS)
def test_every_submit_verdict_renders(verdict: str) -> None:
    """Every submit verdict renders as text and as JSON."""
    report = report_of(CheckResult("smtp", Status.FAIL, Code.AUTH_FAILED, "no", "fix it"))
    record = SubmitRecord(
        0, "a@example.com", verdict, f"{verdict} message", 1, report, None, ("disagrees",), {"k": 1}
    )
    out = render("submit", [record])
    assert f"{verdict} message" in out
    assert "disagrees" in out
    assert json.loads(render("jsonl", [record]))["verdict"] == verdict


# --- escaping ---------------------------------------------------------------------------


def test_printable_escapes_controls_and_surrogates() -> None:
    """printable() escapes C0, C1, DEL and lone surrogates; keeps letters and spaces."""
    assert printable("caf\u00e9 ok") == "caf\u00e9 ok"
    assert printable("\x1b[2J") == "\\x1b[2J"
    assert printable("\x1b]0;title\x07") == "\\x1b]0;title\\x07"
    assert printable("\x9b2J\x7f") == "\\x9b2J\\x7f"
    assert printable("a\nb\r\tc\x00") == "a\\nb\\r\\tc\\x00"
    assert printable("\udcff") == "\\xff"  # an undecodable byte, shown as that byte
    assert printable("\ud800") == "\\ud800"  # any other lone surrogate
    assert printable("\u202e") == "\\u202e"  # right-to-left override
    assert printable(None) == "None"


HOSTILE = "evil\x1b[2J\x1b]0;owned\x07\x9b31m\x7f\udcff\r\nFAKE"


def assert_no_controls(text: str) -> None:
    assert not [c for c in text if c != "\n" and not c.isprintable()], repr(text)


def test_text_escapes_terminal_sequences_from_input_and_replies() -> None:
    """A from_email with ESC[2J and a reply with an OSC title are escaped in text output."""
    check = CheckResult(
        "smtp",
        Status.FAIL,
        Code.AUTH_FAILED,
        HOSTILE,
        HOSTILE,
        1.0,
        {"reply": HOSTILE, "errors": [HOSTILE], "warnings": [{"message": HOSTILE}]},
    )
    report = AccountReport(0, HOSTILE, (check,), line=1)
    for color in (False, True):
        out = render("text", [report], color=color)
        assert "evil\\x1b[2J" in out
        if not color:  # colour adds our own SGR sequences; the input's are escaped
            assert_no_controls(out)
        else:
            assert "\x1b[2J" not in out
            assert "\x07" not in out
    record = SubmitRecord(
        0, HOSTILE, "failed_check", HOSTILE, 1, report, None, (HOSTILE,), {"x": HOSTILE}
    )
    assert_no_controls(render("submit", [record]))


@pytest.mark.parametrize("writer_name", ["json", "jsonl"])
def test_json_writers_keep_lone_surrogates_on_a_strict_stream(writer_name: str) -> None:
    """A report holding "\\udcff" writes valid JSON to a strict UTF-8 stream."""
    check = CheckResult("smtp", Status.FAIL, Code.AUTH_FAILED, "bad \udcff reply", "h")
    out = render(writer_name, [report_of(check, account="x\udcff@example.com")])
    data = json.loads(out)
    report = data["accounts"][0] if writer_name == "json" else data
    assert report["account"] == "x\udcff@example.com"
    assert report["checks"][0]["message"] == "bad \udcff reply"


def test_json_writer_on_an_ascii_stream_stays_valid_json() -> None:
    """On a stream that cannot encode non-ASCII, JSON is written with \\u escapes."""
    out = io.TextIOWrapper(io.BytesIO(), encoding="ascii", errors="strict")
    writer = JsonWriter(out)
    writer.write(report_of(CheckResult("mx", Status.PASS, Code.OK, "caf\u00e9 \udcff")))
    writer.close()
    lines = JsonLinesWriter(out)
    lines.write(report_of(CheckResult("mx", Status.PASS, Code.OK, "caf\u00e9")))
    out.flush()
    buffer = out.buffer
    assert isinstance(buffer, io.BytesIO)
    document, line = buffer.getvalue().decode("ascii").rsplit("]}\n", 1)
    assert json.loads(document + "]}")["accounts"][0]["checks"][0]["message"] == "caf\u00e9 \udcff"
    assert json.loads(line)["checks"][0]["message"] == "caf\u00e9"


def test_json_text_escapes_only_lone_surrogates() -> None:
    """json_text keeps non-ASCII text readable; escapes surrogates, C1, DEL, U+2028/9."""
    assert json_text({"a": "caf\u00e9\udcff"}) == '{"a": "caf\u00e9\\udcff"}'
    assert json_text(["\ud83d\ude00"], ascii_only=True) == '["\\ud83d\\ude00"]'
    assert json_text("a\x85b\u2028c\x7f") == '"a\\u0085b\\u2028c\\u007f"'
    assert json.loads(json_text("a\x85b\u2028\udcff")) == "a\x85b\u2028\udcff"


def test_text_writer_summary_and_interrupted_line() -> None:
    """The text summary counts per code, and says so when interrupted."""
    out = strict_stream()
    writer = TextWriter(out)
    writer.write(report_of(CheckResult("smtp", Status.FAIL, Code.AUTH_FAILED, "no", "h")))
    writer.close(interrupted=True)
    text = written(out)
    assert "interrupted: 1 accounts finished" in text
    assert "1  auth_failed" in text
    submit_out = strict_stream()
    SubmitTextWriter(submit_out).close(interrupted=True)
    assert "interrupted" in written(submit_out)
