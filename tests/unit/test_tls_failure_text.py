"""What a failed TLS handshake's report says, from the facts alone (no sockets)."""

from __future__ import annotations

import ssl

import pytest

from preflight._tls import handshake_failure, make_context, offered_versions, permissive_context
from preflight.checks._hints import handshake_failure_text, starttls_refused_hint

OFFERED = ("TLSv1.2", "TLSv1.3")


def error(reason: str) -> ssl.SSLError:
    exc = ssl.SSLError(1, f"[SSL: {reason}] ...")
    exc.reason = reason
    return exc


@pytest.mark.parametrize(
    ("reason", "alert", "mismatch"),
    [
        ("TLSV1_ALERT_INTERNAL_ERROR", "internal_error", False),
        ("SSLV3_ALERT_HANDSHAKE_FAILURE", "handshake_failure", True),
        ("TLSV1_ALERT_PROTOCOL_VERSION", "protocol_version", True),
        ("TLSV1_ALERT_INSUFFICIENT_SECURITY", "insufficient_security", True),
        ("TLSV1_UNRECOGNIZED_NAME", "unrecognized_name", False),
        ("TLSV13_ALERT_CERTIFICATE_REQUIRED", "certificate_required", False),
        ("UNSUPPORTED_PROTOCOL", None, True),  # OpenSSL's own refusal: no alert came
        ("NO_CIPHERS_AVAILABLE", None, True),
        ("BAD_RECORD_TYPE", None, False),
    ],
)
def test_handshake_failure_reads_the_alert(reason: str, alert: str | None, mismatch: bool) -> None:
    facts = handshake_failure(error(reason))
    assert (facts.alert, facts.reason, facts.mismatch) == (alert, reason, mismatch)


def test_offered_versions_follow_the_context() -> None:
    assert offered_versions(make_context()) == OFFERED
    context = ssl.create_default_context()
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    assert offered_versions(context) == ("TLSv1.2", "TLSv1.2")


def test_permissive_context_allows_old_versions_without_verifying() -> None:
    context = permissive_context()
    assert context.verify_mode is ssl.CERT_NONE
    assert not context.check_hostname
    assert offered_versions(context)[0] in ("TLSv1", "TLSv1.1")


def text(**facts: object) -> tuple[str, str]:
    defaults: dict[str, object] = {
        "alert": None,
        "reason": None,
        "mismatch": False,
        "offered": OFFERED,
        "server_version": None,
        "server_cipher": None,
        "looked": False,
        "host": "mail.example.net",
        "protocol": "smtp",
    }
    return handshake_failure_text(**{**defaults, **facts})  # type: ignore[arg-type]


def test_internal_error_is_the_providers_fault() -> None:
    message, hint = text(alert="internal_error", reason="TLSV1_ALERT_INTERNAL_ERROR")
    assert "internal_error" in message
    assert "provider's side" in hint
    assert "version" not in hint


def test_old_server_version_is_named() -> None:
    message, hint = text(alert="protocol_version", mismatch=True, server_version="TLSv1.1")
    assert "the server speaks TLSv1.1" in message
    assert "speaks only TLSv1.1" in hint
    assert "TLSv1.2 or later" in hint


def test_weak_cipher_is_named() -> None:
    message, hint = text(
        alert="handshake_failure",
        mismatch=True,
        server_version="TLSv1.2",
        server_cipher="AES128-SHA",
        looked=True,
    )
    assert message.startswith("no cipher in common")
    assert "it chose AES128-SHA" in hint
    assert "speaks only" not in hint


def test_acceptable_cipher_blames_neither_version_nor_cipher() -> None:
    """A second look that found a version and cipher preflight accepts: neither is blamed."""
    message, hint = text(
        alert="handshake_failure",
        mismatch=True,
        server_version="TLSv1.3",
        server_cipher="TLS_AES_256_GCM_SHA384",
        looked=True,
        cipher_refused=False,
    )
    assert "yet completed a second one" in message
    assert "not the TLS version or cipher" in hint
    assert "weak" not in hint


def test_no_look_claims_no_second_handshake() -> None:
    _, unseen = text(alert="handshake_failure", mismatch=True, looked=False)
    _, failed = text(alert="handshake_failure", mismatch=True, looked=True)
    assert "second handshake" not in unseen
    assert "did not complete either" in failed


def test_unknown_reason_blames_no_version() -> None:
    message, hint = text(reason="BAD_RECORD_TYPE")
    assert message == "TLS handshake failed: BAD_RECORD_TYPE"
    assert "old" not in hint


@pytest.mark.parametrize(
    ("protocol", "reply", "temporary", "port"),
    [
        ("smtp", "454 4.7.0 TLS not available due to temporary reason", True, "465"),
        ("smtp", "540 5.7.0 no TLS", False, "465"),
        ("imap", "NO TLS unavailable", False, "993"),
        ("imap", "BAD not supported", False, "993"),
    ],
)
def test_starttls_refused_hint(protocol: str, reply: str, temporary: bool, port: str) -> None:
    hint = starttls_refused_hint(protocol, reply)
    assert ("temporary" in hint) is temporary
    assert f"implicit TLS on {port}" in hint
