"""The IMAP client's pieces that need no server: quoting, capabilities, the version pin."""

from __future__ import annotations

import importlib.metadata

import pytest

from preflight.imap_starttls import (
    AIOIMAPLIB_VERSION,
    TESTED_VERSIONS,
    Reply,
    capabilities_in,
    quote,
)


def test_installed_aioimaplib_is_a_tested_version() -> None:
    """The aioimaplib installed is one the STARTTLS extension was tested with."""
    assert importlib.metadata.version("aioimaplib") == AIOIMAPLIB_VERSION
    major, minor = (int(part) for part in AIOIMAPLIB_VERSION.split(".")[:2])
    assert TESTED_VERSIONS[0] <= (major, minor) < TESTED_VERSIONS[1]


@pytest.mark.parametrize(
    ("value", "quoted"),
    [
        ("alice@example.com", '"alice@example.com"'),
        ('a"b', '"a\\"b"'),
        ("a\\b", '"a\\\\b"'),
        ("two words", '"two words"'),
        ("", '""'),
    ],
)
def test_quote_escapes_quotes_and_backslashes(value: str, quoted: str) -> None:
    """Quoted strings escape exactly the two quoted-specials (RFC 3501 §9)."""
    assert quoted == quote(value)


@pytest.mark.parametrize("value", ["a\r\nb", "a\nb", "a\x00b", "pässwörd"])
def test_quote_refuses_what_a_quoted_string_cannot_carry(value: str) -> None:
    """CR, LF, NUL and 8-bit text cannot be quoted (the value is not in the error)."""
    with pytest.raises(ValueError, match="quoted string") as caught:
        quote(value)
    assert value not in str(caught.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("CAPABILITY IMAP4rev1 STARTTLS AUTH=PLAIN", ["IMAP4rev1", "STARTTLS", "AUTH=PLAIN"]),
        ("* OK [CAPABILITY IMAP4rev1 SASL-IR] Dovecot ready.", ["IMAP4rev1", "SASL-IR"]),
        ("OK [capability IMAP4rev1 IDLE] Logged in", ["IMAP4rev1", "IDLE"]),
        ("* OK Gimap ready", None),
        ("3 EXISTS", None),
    ],
)
def test_capabilities_in(text: str, expected: list[str] | None) -> None:
    """Capabilities come from an untagged CAPABILITY line or a [CAPABILITY] response code."""
    assert expected == capabilities_in(text)


def test_reply_line() -> None:
    """A reply shows as the server's tagged line without its tag."""
    reply = Reply("NO", "[AUTHENTICATIONFAILED] Authentication failed.")
    assert not reply.ok
    assert reply.line == "NO [AUTHENTICATIONFAILED] Authentication failed."
