"""Classifying login refusals, and host-to-provider mapping (pure functions)."""

from __future__ import annotations

import base64

import pytest

from preflight.checks._replies import classify_login_refusal, decode_xoauth2_challenge, provider_of
from preflight.report import Code
from preflight.secret import MASK

PASSWORD = 'Qz7"Wv\\  kX3!pL9-mR4#tY8'  # a quote, a backslash, two spaces


def fragments(secret: str, size: int = 5) -> set[str]:
    """Every run of ``size`` characters of the secret and of its collapsed form."""
    found: set[str] = set()
    for form in (secret, " ".join(secret.split())):
        found.update(form[i : i + size] for i in range(len(form) - size + 1))
    return found


@pytest.mark.parametrize(
    ("host", "provider"),
    [
        ("smtp.gmail.com", "google"),
        ("imap.gmail.com.", "google"),
        ("smtp.office365.com", "microsoft"),
        ("outlook.office365.com", "microsoft"),
        ("smtp.mail.yahoo.com", "yahoo"),
        ("smtppro.zoho.eu", "zoho"),
        ("mail.example.com", None),
        ("notgmail.com", None),
    ],
)
def test_provider_of(host: str, provider: str | None) -> None:
    """Provider detection follows the host name's registered domain, not a substring."""
    assert provider_of(host) == provider


@pytest.mark.parametrize(
    ("reply", "host", "code"),
    [
        (
            "NO [AUTHENTICATIONFAILED] Invalid credentials (Failure)",
            "imap.gmail.com",
            Code.AUTH_FAILED,
        ),
        (
            "NO [ALERT] Application-specific password required: "
            "https://support.google.com/accounts/answer/185833 (Failure)",
            "imap.gmail.com",
            Code.AUTH_APP_PASSWORD_REQUIRED,
        ),
        (
            "NO [ALERT] Please log in via your web browser: "
            "https://support.google.com/mail/accounts/answer/78754 (Failure)",
            "imap.gmail.com",
            Code.AUTH_WEB_LOGIN_REQUIRED,
        ),
        ("NO LOGIN failed.", "outlook.office365.com", Code.AUTH_FAILED),
        (
            "NO [AUTHENTICATIONFAILED] LOGIN Invalid credentials",
            "imap.mail.yahoo.com",
            Code.AUTH_FAILED,
        ),
        (
            "NO [PRIVACYREQUIRED] Plaintext authentication disallowed",
            "mail.example.com",
            Code.AUTH_PLAINTEXT_REFUSED,
        ),
        (
            "NO [UNAVAILABLE] Temporary authentication failure",
            "mail.example.com",
            Code.SERVER_UNAVAILABLE,
        ),
        (
            "530 5.7.0 Must issue a STARTTLS command first",
            "mail.example.com",
            Code.AUTH_PLAINTEXT_REFUSED,
        ),
    ],
)
def test_imap_and_generic_replies(reply: str, host: str, code: Code) -> None:
    """IMAP response codes and generic refusals map to the contract's codes."""
    assert classify_login_refusal(reply, host).code is code


def test_temporary_smtp_status_is_server_unavailable() -> None:
    """An unrecognised 4xx refusal is temporary on the server's side: server_unavailable."""
    verdict = classify_login_refusal("454 4.3.0 Try again", "mail.example.com", status=454)
    assert verdict.code is Code.SERVER_UNAVAILABLE
    assert "retry later" in verdict.hint


@pytest.mark.parametrize(
    ("reply", "code"),
    [
        ("435 Unable to authenticate at present", Code.SERVER_UNAVAILABLE),  # Exim
        ("BYE Temporary problem, please try again later", Code.SERVER_UNAVAILABLE),  # Courier
        ("454 4.7.0 Too many login attempts, please try again later.", Code.AUTH_THROTTLED),
        ("NO [UNAVAILABLE] Too many login attempts, try again later", Code.AUTH_THROTTLED),
        (  # Microsoft 365, too many sessions of one mailbox at once
            "432 4.3.2 STOREDRV.ClientSubmit; sender thread limit exceeded",
            Code.AUTH_THROTTLED,
        ),
        ("NO [LIMIT] Too many simultaneous connections", Code.AUTH_THROTTLED),
        ("NO LOGIN Command disabled", Code.AUTH_FAILED),  # alone, the words say nothing more
        ("NO [ALERT] XTLSREQUIRED", Code.AUTH_PLAINTEXT_REFUSED),
    ],
)
def test_temporary_failure_is_not_throttling(reply: str, code: Code) -> None:
    """A server whose password backend is down is server_unavailable, not auth_throttled."""
    status = int(reply[:3]) if reply[:3].isdigit() else None
    verdict = classify_login_refusal(reply, "mail.example.com", status=status)
    assert verdict.code is code


def test_5_7_3_only_means_microsoft_on_microsoft() -> None:
    """The 'check all three' hint of 5.7.3 is for Microsoft hosts only."""
    ms = classify_login_refusal("535 5.7.3 Authentication unsuccessful", "smtp.office365.com")
    other = classify_login_refusal("535 5.7.3 Authentication unsuccessful", "mail.example.com")
    assert "all three" in ms.hint
    assert "all three" not in other.hint


def test_message_is_one_line_and_bounded() -> None:
    """Multi-line replies are folded to one line, and long ones shortened."""
    verdict = classify_login_refusal("535-first\r\n535 " + "x" * 500, "mail.example.com")
    assert "\n" not in verdict.message
    assert len(verdict.message) < 260


def test_decode_xoauth2_challenge() -> None:
    """The base64 JSON of an XOAUTH2 challenge is decoded; anything else gives None."""
    payload = base64.b64encode(b'{"status":"401","schemes":"Bearer"}').decode()
    assert decode_xoauth2_challenge(payload) == '{"schemes": "Bearer", "status": "401"}'
    assert decode_xoauth2_challenge("not base64!") is None
    assert decode_xoauth2_challenge(base64.b64encode(b"[1]").decode()) is None


def test_deeply_nested_xoauth2_challenge_is_no_error() -> None:
    """A challenge of 20,000 nested arrays (json's recursion limit) gives None, not an error."""
    assert decode_xoauth2_challenge(base64.b64encode(b"[" * 20000).decode()) is None


def test_classify_masks_before_cutting() -> None:
    """A refusal echoing the password across the 200-character cut shows none of it."""
    reply = "535 5.7.8 " + "Authentication credentials invalid. " * 5 + PASSWORD
    verdict = classify_login_refusal(reply, "smtp.example.com", status=535, secrets=(PASSWORD,))
    assert verdict.code == Code.AUTH_FAILED
    assert set() == {part for part in fragments(PASSWORD) if part in verdict.message}


def test_classify_masks_before_collapsing() -> None:
    """A refusal echoing a password with two spaces shows it masked, not re-spaced."""
    verdict = classify_login_refusal(
        f"NO [AUTHENTICATIONFAILED] bad password {PASSWORD}",
        "imap.example.com",
        secrets=(PASSWORD,),
    )
    assert f"the server refused the login: NO [AUTHENTICATIONFAILED] bad password {MASK}" == (
        verdict.message
    )
