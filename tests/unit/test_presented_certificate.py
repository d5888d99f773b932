"""The certificate a failed verification leaves unreported: read without ssl's help
(preflight/_tls.py describe_der) and named in the hint (preflight/checks/_hints.py)."""

from __future__ import annotations

import datetime
import ssl

import trustme

from preflight._tls import describe_der
from preflight.checks._hints import hint_for
from preflight.report import Code


def _der(*names: str, organization: str = "preflight test CA") -> bytes:
    ca = trustme.CA(organization_name=organization)
    pem = ca.issue_cert(*names).cert_chain_pems[0].bytes().decode()
    return ssl.PEM_cert_to_DER_cert(pem)


def test_describe_der_reads_subject_san_issuer_and_validity() -> None:
    """describe_der gives subject, SANs (names and addresses), issuer and validity."""
    described = describe_der(_der("mail.example.net", "127.0.0.1"))
    assert described is not None
    assert described["san"] == ["mail.example.net", "127.0.0.1"]
    assert "preflight test CA" in described["issuer"]
    assert described["subject"]
    before = datetime.datetime.fromisoformat(described["not_before"])
    after = datetime.datetime.fromisoformat(described["not_after"])
    assert before < datetime.datetime.now(datetime.UTC) < after


def test_describe_der_shows_hostile_text_inert_and_bounded() -> None:
    """A certificate's text is outside text: control characters escaped, length cut."""
    described = describe_der(_der("mail.example.net", organization="evil\x1b[2J" + "x" * 500))
    assert described is not None
    assert "\x1b" not in described["issuer"]
    assert "\\x1b" in described["issuer"]
    assert len(described["issuer"]) <= 200


def test_describe_der_of_garbage_is_none() -> None:
    """Bytes that are not a certificate give None, not an exception."""
    assert describe_der(b"\x30\x03not a certificate") is None


def test_mismatch_hint_names_the_san() -> None:
    """The hostname-mismatch hint names the certificate's name as the host to use."""
    hint = hint_for(
        Code.TLS_HOSTNAME_MISMATCH, "smtp", "mail.example.com", 465, names=["mail.example.net"]
    )
    assert "it is for mail.example.net: use that as smtp_host" in hint


def test_mismatch_hint_prefers_exact_names_over_wildcards() -> None:
    """Exact SANs are offered before wildcards; a wildcard alone asks for a covered name."""
    both = hint_for(
        Code.TLS_HOSTNAME_MISMATCH, "imap", "a.test", 993, names=["*.host.net", "mx.host.net"]
    )
    assert "it is for mx.host.net: use that as imap_host" in both
    wildcard = hint_for(Code.TLS_HOSTNAME_MISMATCH, "imap", "a.test", 993, names=["*.host.net"])
    assert "it is for *.host.net: use a host name it covers as imap_host" in wildcard


def test_mismatch_hint_without_names_is_unchanged() -> None:
    """Without the certificate's names the hint stays the general one."""
    hint = hint_for(Code.TLS_HOSTNAME_MISMATCH, "smtp", "mail.example.com", 465)
    assert "shared hosting" in hint


def test_mode_mismatch_hint_follows_the_starttls_offer() -> None:
    """Implicit TLS met by clear text: STARTTLS is recommended only when offered."""
    offered = hint_for(Code.TLS_MODE_MISMATCH, "smtp", "h.test", 465, spoke="ssl", starttls=True)
    assert "use STARTTLS on it" in offered
    absent = hint_for(Code.TLS_MODE_MISMATCH, "smtp", "h.test", 465, spoke="ssl", starttls=False)
    assert "offers no STARTTLS" in absent
    assert "use STARTTLS" not in absent
