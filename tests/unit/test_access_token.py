"""One rule for a usable OAuth token (Account.access_token), asked by every reader."""

from __future__ import annotations

import ssl
from typing import Any

import pytest

from preflight.checks.imap import _ImapProbe
from preflight.checks.roundtrip import _Roundtrip
from preflight.checks.smtp import _SmtpProbe
from preflight.options import CheckOptions
from preflight.payload import Account, access_token_of, parse_account
from preflight.secret import Secret

BODY = {
    "from_name": "Test",
    "from_email": "alice@example.com",
    "user_name": "alice@example.com",
    "smtp_host": "smtp.example.com",
    "smtp_port": 587,
    "imap_host": "imap.example.com",
    "imap_port": 993,
    "warmup_enabled": False,
}

TOKENS: list[tuple[Any, str | None]] = [
    ({"access_token": "ya29.TOKEN-CANARY"}, "ya29.TOKEN-CANARY"),
    ({"access_token": ""}, None),
    ({"access_token": 7}, None),
    ({"access_token": None}, None),
    ({"access_token": ["ya29"]}, None),
    ({"refresh_token": "r"}, None),
    ({}, None),
]


@pytest.mark.parametrize(("token", "expected"), TOKENS)
def test_access_token_rule(token: Any, expected: str | None) -> None:
    """Only a non-empty access_token string counts, raw or wrapped in a Secret."""
    assert access_token_of(token) == expected
    assert access_token_of(Secret(token)) == expected


@pytest.mark.parametrize("token", ["ya29", ["ya29"], None, 7])
def test_access_token_needs_an_object(token: Any) -> None:
    """A token that is not an object has no access token."""
    assert access_token_of(token) is None


def account(**extra: Any) -> Account:
    parsed = parse_account({**BODY, **extra})
    assert parsed.account is not None, parsed.errors
    return parsed.account


@pytest.mark.parametrize(("token", "expected"), TOKENS)
def test_every_reader_follows_the_rule(token: Any, expected: str | None) -> None:
    """Payload check, both probes and the roundtrip agree on which token is usable."""
    with_password = account(password="pw-CANARY", token=token)
    assert with_password.access_token == expected
    context = ssl.create_default_context()
    options = CheckOptions()
    smtp = _SmtpProbe(with_password, options, context)
    imap = _ImapProbe(with_password, options, context)
    trip = _Roundtrip(with_password, options, context)
    assert smtp.token == imap.token == expected
    for secrets in (smtp.state.secrets, imap.state.secrets, trip.state.secrets):
        assert set(secrets) == {"pw-CANARY", expected} - {None}
    # Without a password, the payload check accepts exactly the usable tokens.
    parsed = parse_account({**BODY, "password": "", "token": token})
    assert (parsed.account is not None) == (expected is not None)
