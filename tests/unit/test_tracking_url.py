"""custom_tracking_url in the payload check (issue 14): a host name, optionally after
http:// or https://, and nothing else; and the warmup numbers against the ranges
SmartLead's warmup endpoint takes (warnings, never errors)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from preflight.payload import WARMUP_RANGES, parse_account, tracking_url_parts
from preflight.runner import validate

CANARY = "CANARY-pw-7f3a"


def body(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "from_name": "Alice Example",
        "from_email": "alice@example.com",
        "user_name": "alice@example.com",
        "password": CANARY,
        "smtp_host": "smtp.example.com",
        "smtp_port": 587,
        "imap_host": "imap.example.com",
        "imap_port": 993,
        "warmup_enabled": True,
    }
    base.update(changes)
    return base


def url_errors(value: object) -> list[str]:
    parsed = parse_account(body(custom_tracking_url=value))
    return [p.message for p in parsed.errors if p.field == "custom_tracking_url"]


# --- custom_tracking_url -------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "parts"),
    [
        ("track.example.com", (None, "track.example.com")),
        ("track.example.com/", (None, "track.example.com")),
        ("https://track.example.com", ("https", "track.example.com")),
        ("HTTPS://Track.Example.COM/", ("https", "track.example.com")),
        ("http://track.example.com", ("http", "track.example.com")),
        ("https://track.example.com.", ("https", "track.example.com")),
        ("https://bücher.example", ("https", "xn--bcher-kva.example")),
    ],
)
def test_valid_tracking_urls(value: str, parts: tuple[str | None, str]) -> None:
    """A host, optionally after http:// or https:// and before one '/', is valid; its
    scheme and ASCII host are what the tracking check uses."""
    assert url_errors(value) == []
    assert tracking_url_parts(value) == parts


def test_empty_tracking_url_means_none() -> None:
    """An empty custom_tracking_url is no tracking domain, not an error."""
    parsed = parse_account(body(custom_tracking_url=""))
    assert parsed.errors == []
    assert parsed.account is not None
    assert parsed.account.custom_tracking_url == ""


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("ftp://track.example.com", "has the scheme 'ftp'"),
        ("javascript://track.example.com", "has the scheme 'javascript'"),
        ("https:/track.example.com", "malformed scheme"),
        ("//track.example.com", "no scheme before //"),
        ("https://track.example.com/click?u=1", "has a path, query or fragment"),
        ("https://track.example.com#x", "has a path, query or fragment"),
        ("https://track.example.com/../evil.example", "has a path, query or fragment"),
        ("https://track.example.com:8443", "includes a port"),
        ("track.example.com:443", "includes a port"),
        ("https://track.example.com\\@evil.example", "contains '@'"),
        ("https://evil.example\\.track.example.com", "backslash"),
        ("https://tr%61ck.example.com", "%-escape"),
        ("https://127.0.0.1", "is an IP address"),
        ("https://[::1]", "is an IP address"),
        ("https://", "has no host"),
        ("https://-bad.example.com", "is not a valid host name"),
        ("https://track .example.com", "contains spaces"),
        (" track.example.com", "contains spaces"),
        ("track.example.com\u2003", "contains spaces"),
        ("https://track.example.com\r\nX: y", "control character"),
        ("track\x00.example.com", "control character"),
        (5, "must be text"),
    ],
)
def test_invalid_tracking_urls(value: object, says: str) -> None:
    """Schemes other than http(s), paths, ports, escapes, IP addresses, spaces and control
    characters are payload errors, each saying what is wrong."""
    errors = url_errors(value)
    assert len(errors) == 1, errors
    assert says in errors[0]


@pytest.mark.parametrize(
    "value",
    [
        f"https://user:{CANARY}@track.example.com",
        f"https://{CANARY}@track.example.com",
        f"{CANARY}@track.example.com",
    ],
)
def test_credentials_in_the_url_are_refused_unshown(value: str) -> None:
    """A user name or password in the URL is refused, and the value is never shown."""
    (error,) = url_errors(value)
    assert "'@'" in error
    assert "not shown" in error
    assert CANARY not in error
    report = validate(body(custom_tracking_url=value))
    assert CANARY not in str(report.to_dict())


def test_no_dot_is_refused_unshown() -> None:
    """A value without a dot may be a password in the wrong column: refused, not shown."""
    (error,) = url_errors("Secret-Word")
    assert "Secret-Word" not in error
    assert "fully qualified" in error


def test_every_problem_at_once() -> None:
    """A bad tracking URL is listed with the payload's other problems, all at once."""
    parsed = parse_account(body(custom_tracking_url="https://x.example.com:1", smtp_port=0))
    assert {p.field for p in parsed.errors} == {"custom_tracking_url", "smtp_port"}


def test_tracking_url_parts_refuses_an_invalid_value() -> None:
    """tracking_url_parts is only for valid values: anything else is a ValueError."""
    with pytest.raises(ValueError, match="port"):
        tracking_url_parts("https://track.example.com:1")


_LABEL = st.from_regex(r"[a-z0-9](?:[a-z0-9-]{0,20}[a-z0-9])?", fullmatch=True)
_HOST = st.lists(_LABEL, min_size=1, max_size=4).map(lambda labels: ".".join([*labels, "example"]))


@settings(max_examples=200, deadline=None)
@given(
    host=_HOST,
    scheme=st.sampled_from(["", "http://", "https://", "HTTPS://"]),
    slash=st.booleans(),
)
def test_any_host_with_scheme_is_valid_and_parses_back(host: str, scheme: str, slash: bool) -> None:
    """Any host name, with or without a scheme and a trailing '/', is valid, and parses
    back to that host and scheme."""
    value = scheme + host + ("/" if slash else "")
    assert url_errors(value) == []
    assert tracking_url_parts(value) == (scheme[:-3].lower() or None, host)


_ACCEPTED_HOST = re.compile(r"[a-z0-9_.-]+")


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=80))
def test_any_text_is_judged_without_exception(value: str) -> None:
    """Any text gives a valid URL or a payload error, never an exception; what is accepted
    splits into http, https or no scheme and a host with nothing that could carry a
    path, a port, credentials or another host."""
    errors = url_errors(value)
    if errors or value == "":
        return
    scheme, host = tracking_url_parts(value)
    assert scheme in (None, "http", "https")
    assert _ACCEPTED_HOST.fullmatch(host), host
    assert "." in host


@settings(max_examples=200, deadline=None)
@given(
    prefix=st.sampled_from(["https://", "http://", ""]),
    user=st.text(st.characters(blacklist_characters="@/\\", codec="utf-8"), min_size=1),
)
def test_any_userinfo_is_never_echoed(prefix: str, user: str) -> None:
    """Whatever comes before '@' (a password, say) never appears in the message."""
    value = f"{prefix}{user}@track.example.com"
    (error,) = url_errors(value)
    assert "not shown" in error
    if len(user) > 3:
        assert user not in error


# --- warmup numbers against the warmup endpoint's ranges -------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("total_warmup_per_day", 0),
        ("total_warmup_per_day", 51),
        ("daily_rampup", 2),
        ("daily_rampup", 21),
        ("reply_rate_percentage", 10),
        ("reply_rate_percentage", 19.5),
    ],
)
def test_warmup_outside_range_is_a_warning_citing_it(field: str, value: float) -> None:
    """A warmup number outside what the warmup endpoint takes is a warning (the payload
    stays valid) on that field, citing the range, one warning per field."""
    parsed = parse_account(body(max_email_per_day=100, **{field: value}))
    assert parsed.errors == []
    low, high = WARMUP_RANGES[field]
    (warning,) = [w for w in parsed.warnings if w.field == field]
    assert f"outside {low}-{high}" in warning.message
    assert "warmup" in warning.message
    report = validate(body(max_email_per_day=100, **{field: value}))
    payload = report.check("payload")
    assert (payload.status.value, payload.code.value) == ("warn", "ok")
    assert {"field": field, "message": warning.message} in payload.details["warnings"]
    assert report.ok


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("total_warmup_per_day", 1),
        ("total_warmup_per_day", 20),
        ("daily_rampup", 5),
        ("reply_rate_percentage", 20),
        ("reply_rate_percentage", 100),
    ],
)
def test_warmup_at_the_range_bounds_draws_no_warning(field: str, value: int) -> None:
    """The bounds themselves are inside the ranges."""
    parsed = parse_account(body(max_email_per_day=100, **{field: value}))
    assert [w for w in parsed.warnings if "outside" in w.message] == []


def test_range_warnings_all_at_once() -> None:
    """Every warmup number out of range is listed at once."""
    parsed = parse_account(
        body(
            max_email_per_day=100, total_warmup_per_day=60, daily_rampup=1, reply_rate_percentage=5
        )
    )
    assert parsed.errors == []
    assert {w.field for w in parsed.warnings} == set(WARMUP_RANGES)
