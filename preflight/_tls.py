"""TLS: the client context, what a session looks like, and what a failure means."""

from __future__ import annotations

import functools
import ssl
import time
from typing import Any, TypeVar

from preflight._text import shown
from preflight.report import Code

E = TypeVar("E", bound=BaseException)

__all__ = [
    "EXPIRY_WARN_DAYS",
    "classify_tls_error",
    "describe_der",
    "describe_session",
    "make_context",
]

#: A certificate expiring within this many days makes a passing check a warning.
EXPIRY_WARN_DAYS = 14

# OpenSSL's X509_V_ERR_* numbers (x509_vfy.h).
_EXPIRED = {9, 10}  # not yet valid, has expired
_HOSTNAME_MISMATCH = {62, 64}  # X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH


@functools.lru_cache(maxsize=8)
def make_context(ca_file: str | None = None, insecure: bool = False) -> ssl.SSLContext:
    """The client context: system store plus ``ca_file``; built once per setting.

    Verification of chain and host name is on unless ``insecure``.
    """
    context = ssl.create_default_context()
    if ca_file:
        context.load_verify_locations(cafile=ca_file)
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _name(parts: Any) -> str:
    """'CN=..., O=...' from getpeercert()'s nested tuples."""
    items = [f"{key}={value}" for rdn in parts or () for key, value in rdn]
    return ", ".join(items)


def describe_session(ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> dict[str, Any]:
    """TLS version, cipher and, when verified, the certificate's names and expiry."""
    if ssl_object is None:
        return {}
    cipher = ssl_object.cipher()
    details: dict[str, Any] = {
        "tls_version": ssl_object.version(),
        "cipher": cipher[0] if cipher else None,
    }
    cert = ssl_object.getpeercert()
    if cert:  # empty when verification is off
        not_after = cert.get("notAfter")
        details["cert_subject"] = _name(cert.get("subject"))
        details["cert_issuer"] = _name(cert.get("issuer"))
        if isinstance(not_after, str):
            seconds = ssl.cert_time_to_seconds(not_after) - time.time()
            details["cert_days_left"] = int(seconds // 86400)
    return details


def expiry_warning(details: dict[str, Any]) -> str | None:
    """A warning when the certificate expires soon."""
    days = details.get("cert_days_left")
    if isinstance(days, int) and days < EXPIRY_WARN_DAYS:
        return f"the server's certificate expires in {days} days"
    return None


def classify_tls_error(exc: BaseException) -> tuple[Code, str]:
    """The contract code and a one-line message for a failed TLS handshake."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        number = exc.verify_code
        message = exc.verify_message or "certificate verification failed"
        if number in _EXPIRED:
            return Code.TLS_EXPIRED, f"the certificate is not valid now: {message}"
        if number in _HOSTNAME_MISMATCH:
            return Code.TLS_HOSTNAME_MISMATCH, f"the certificate does not name this host: {message}"
        return Code.TLS_UNTRUSTED, f"the certificate chain is not trusted: {message}"
    if isinstance(exc, ssl.SSLError):
        reason = exc.reason or ""
        if reason in ("WRONG_VERSION_NUMBER", "HTTP_REQUEST", "RECORD_LAYER_FAILURE") or (
            "wrong version number" in str(exc)
        ):
            return Code.TLS_MODE_MISMATCH, "the server answered TLS with clear text"
        return Code.TLS_HANDSHAKE_FAILED, f"TLS handshake failed: {reason or exc}"
    return Code.TLS_HANDSHAKE_FAILED, f"TLS handshake failed: {exc}"


def find_cause(exc: BaseException | None, kind: type[E]) -> E | None:
    """``exc`` or the first exception of its chain (causes, contexts) that is a
    ``kind``: libraries wrap the ssl or socket error that says what happened."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, kind):
            return exc
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


#: At most this many names of a certificate's SAN are reported.
_SAN_LIMIT = 20
#: Each string taken from a certificate is cut to this many characters.
_CERT_TEXT_LIMIT = 200


def describe_der(der: bytes) -> dict[str, Any] | None:
    """Subject, SANs, issuer and validity of a DER certificate, read without
    verifying it (a certificate that failed verification); None when unreadable.

    Parsed with ``cryptography`` (a runtime dependency for this): the stdlib reads a
    certificate's fields only after a verified handshake. Every string is outside
    text, made printable and bounded.
    """
    from cryptography import x509

    try:
        cert = x509.load_der_x509_certificate(der)
        sans: list[str] = []
        try:
            ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        except x509.ExtensionNotFound:
            pass
        else:
            names = ext.value.get_values_for_type(x509.DNSName)
            addresses = [str(a) for a in ext.value.get_values_for_type(x509.IPAddress)]
            sans = [shown(str(n), _CERT_TEXT_LIMIT) for n in [*names, *addresses][:_SAN_LIMIT]]
        return {
            "subject": shown(cert.subject.rfc4514_string(), _CERT_TEXT_LIMIT),
            "san": sans,
            "issuer": shown(cert.issuer.rfc4514_string(), _CERT_TEXT_LIMIT),
            "not_before": cert.not_valid_before_utc.isoformat(),
            "not_after": cert.not_valid_after_utc.isoformat(),
        }
    except (ValueError, TypeError):
        return None
